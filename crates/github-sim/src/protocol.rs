//! Wire types of the runner protocol (`/_runner/...`), shared by the server and the stand-in.
//!
//! The protocol is the simulator's own, not part of GitHub's surface:
//! 1. `POST /_runner/connect` `{"runner_id", "secret"}` → 200 `{"session_id"}`; the runner is
//!    `online`. 401 wrong secret, 404 unknown runner, 409 configuration already used.
//! 2. `POST /_runner/poll` `{"session_id", "wait_ms"}` → 200 [`RunnerMessage`] after at most
//!    `wait_ms` (capped by the server); every poll proves liveness. 404 when the session is gone.
//! 3. `POST /_runner/complete` `{"session_id", "job_id", "conclusion", "log"?}` → 204; the
//!    ephemeral runner is removed and the session ends.
//! 4. `POST /_runner/disconnect` `{"session_id"}` → 204; the runner is `offline` at once.
//!
//! Fields added later (`run`, `repository`, `log`) are optional and left out when absent, so
//! a stand-in and a simulator of different ages still understand each other.

use serde::{Deserialize, Serialize};

/// Most bytes of a job's output that travel with its completion and stay on the job: the
/// end of the output, where the reason a step failed usually is.
pub const LOG_LIMIT_BYTES: usize = 64 * 1024;

/// The end of `log` that fits in [`LOG_LIMIT_BYTES`], cut at a character boundary.
pub fn clip_log(log: &str) -> &str {
    let mut start = log.len().saturating_sub(LOG_LIMIT_BYTES);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}

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
    /// The end of the job's output (stdout and stderr interleaved, at most
    /// [`LOG_LIMIT_BYTES`]); absent when the job ran no script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
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
    /// The conclusion the job reports when it ran to the end (without `run`).
    pub conclusion: String,
    /// The job's `run:` step, a bash script. When present the stand-in runs it instead of
    /// sleeping `duration_ms`, and its exit status decides the conclusion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// `OWNER/NAME` of the job's repository: the stand-in names the job's workspace after
    /// it (`_work/NAME/NAME`), as the Actions runner does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(run: Option<&str>) -> AssignedJob {
        AssignedJob {
            id: 1,
            run_id: 2,
            name: "build".to_owned(),
            duration_ms: 10,
            conclusion: "success".to_owned(),
            run: run.map(str::to_owned),
            repository: run.map(|_| "acme/web".to_owned()),
        }
    }

    #[test]
    fn a_job_without_a_script_looks_as_it_did_before_scripts() {
        let wire = serde_json::to_value(job(None)).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({"id": 1, "run_id": 2, "name": "build", "duration_ms": 10, "conclusion": "success"})
        );
        let old: AssignedJob = serde_json::from_value(wire).unwrap();
        assert_eq!(old, job(None));
    }

    #[test]
    fn a_script_and_a_log_travel_when_present() {
        let wire = serde_json::to_value(job(Some("echo hi"))).unwrap();
        assert_eq!(wire["run"], "echo hi");
        assert_eq!(wire["repository"], "acme/web");
        let complete: CompleteRequest =
            serde_json::from_str(r#"{"session_id": "s", "job_id": 1, "conclusion": "success"}"#)
                .unwrap();
        assert_eq!(complete.log, None);
    }

    #[test]
    fn a_long_log_keeps_its_end_and_whole_characters() {
        assert_eq!(clip_log("short"), "short");
        let long = format!("{}é{}", "a".repeat(10), "b".repeat(LOG_LIMIT_BYTES - 1));
        let clipped = clip_log(&long);
        // The cut fell inside `é` (2 bytes): it starts after it.
        assert_eq!(clipped.len(), LOG_LIMIT_BYTES - 1);
        assert!(clipped.chars().all(|c| c == 'b'));
    }
}
