//! Wire types of the runner protocol (`/_runner/...`), shared by the server and the stand-in.
//!
//! The protocol is the simulator's own, not part of GitHub's surface:
//! 1. `POST /_runner/connect` `{"runner_id", "secret"}` → 200 `{"session_id"}`; the runner is
//!    `online`. 401 wrong secret, 404 unknown runner, 409 configuration already used.
//! 2. `POST /_runner/poll` `{"session_id", "wait_ms"}` → 200 [`RunnerMessage`] after at most
//!    `wait_ms` (capped by the server); every poll proves liveness. 404 when the session is gone.
//! 3. `POST /_runner/complete` `{"session_id", "job_id", "conclusion"}` → 204; the ephemeral
//!    runner is removed and the session ends.
//! 4. `POST /_runner/disconnect` `{"session_id"}` → 204; the runner is `offline` at once.

use serde::{Deserialize, Serialize};

/// Body of `POST /_runner/connect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// Runner id from `.runner` (`agentId`).
    pub runner_id: u64,
    /// Per-runner secret from `.credentials`.
    pub secret: String,
}

/// Answer of `POST /_runner/connect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectResponse {
    /// Opaque session id presented on every later call.
    pub session_id: String,
}

/// Body of `POST /_runner/poll`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PollRequest {
    /// Session from `connect`.
    pub session_id: String,
    /// How long the server may hold the request when there is nothing to say.
    pub wait_ms: u64,
}

/// Body of `POST /_runner/complete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteRequest {
    /// Session from `connect`.
    pub session_id: String,
    /// The job that finished.
    pub job_id: u64,
    /// `success`, `failure` or `cancelled`.
    pub conclusion: String,
}

/// Body of `POST /_runner/disconnect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DisconnectRequest {
    /// Session from `connect`.
    pub session_id: String,
}

/// A job handed to a runner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AssignedJob {
    /// Workflow job id.
    pub id: u64,
    /// Workflow run id.
    pub run_id: u64,
    /// Job name.
    pub name: String,
    /// How long the job "runs".
    pub duration_ms: u64,
    /// The conclusion the job reports when it ran to the end.
    pub conclusion: String,
}

/// What a poll answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunnerMessage {
    /// Nothing happened within the wait.
    Idle,
    /// Run this job (it is already `in_progress` and the runner `busy`).
    Job {
        /// The job.
        job: AssignedJob,
    },
    /// Stop the running job and report it `cancelled`.
    Cancel {
        /// The job to cancel.
        job_id: u64,
    },
    /// The runner was removed; exit.
    Exit {
        /// Why.
        message: String,
    },
}
