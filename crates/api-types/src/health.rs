//! Health documents: what `/health` of each service reports.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::RunnerState;

/// Overall verdict of a health document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything the service needs answers.
    Ok,
    /// The service runs but something it needs does not answer; see the parts.
    Degraded,
    /// The service cannot do its work at all (the orchestrator cannot reach
    /// Docker); the answer's status is 503.
    Unhealthy,
}

/// The Docker engine as the orchestrator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DockerHealth {
    /// Whether the engine answered.
    pub reachable: bool,
    /// The engine's version, when it answered.
    pub version: Option<String>,
    /// The API version negotiated with it.
    pub api_version: Option<String>,
    /// Why it is unreachable.
    pub error: Option<String>,
}

/// One of GitHub's rate-limit budgets (`x-ratelimit-resource`: `core`,
/// `actions_runner_registration`, …), as its last answers described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateLimitBucket {
    /// Requests per window.
    pub limit: Option<i64>,
    /// Requests left in the window.
    pub remaining: Option<i64>,
    /// Requests made in the window.
    pub used: Option<i64>,
    /// When the window resets.
    pub reset: Option<DateTime<Utc>>,
    /// While set, no call charged to this budget is made before this time
    /// (the budget is exhausted, or a secondary limit paused every call).
    pub paused_until: Option<DateTime<Utc>>,
}

/// GitHub as the orchestrator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GitHubHealth {
    /// Whether GitHub answered the last call.
    pub reachable: bool,
    /// The API base URL in use.
    pub api_url: String,
    /// Requests left in the current window of the `core` budget, when known.
    pub rate_limit_remaining: Option<i64>,
    /// When the `core` budget's window resets, when known.
    pub rate_limit_reset: Option<DateTime<Utc>>,
    /// While set, some GitHub calls are paused until this time (see
    /// `rate_limits` for which).
    pub paused_until: Option<DateTime<Utc>>,
    /// Each rate-limit budget GitHub told us of, by its name: GitHub keeps
    /// them apart, so an exhausted `actions_runner_registration` stops
    /// creates while listings and deletions go on.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimitBucket>,
    /// The last error, when the last call failed.
    pub error: Option<String>,
}

/// The runner image and its freshness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunnerImageHealth {
    /// The configured `RUNNER_IMAGE`.
    pub image: String,
    /// Whether a local copy exists.
    pub present: bool,
    /// The local copy's digest (or image id when it has no registry digest).
    pub digest: Option<String>,
    /// When the last successful pull finished.
    pub last_pulled_at: Option<DateTime<Utc>>,
    /// Why the last pull failed, when it did.
    pub last_pull_error: Option<String>,
}

/// One background loop of the orchestrator (reconcile, scale, poll, Docker
/// events, image pulls), as its last passes tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoopHealth {
    /// How often the loop is meant to pass; absent for loops driven by events.
    pub interval_seconds: Option<u64>,
    /// Successful passes since the start.
    pub passes: u64,
    /// When the last successful pass ended.
    pub last_pass_at: Option<DateTime<Utc>>,
    /// Overdue by more than twice its interval (intervals under 10 s are
    /// judged as 10 s): the orchestrator is then `degraded`.
    pub late: bool,
}

/// `GET /health` of the orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrchestratorHealth {
    /// `ok`, or `degraded` when Docker or GitHub does not answer or a
    /// background loop is late.
    pub status: HealthStatus,
    /// The orchestrator's version.
    pub version: String,
    /// The Docker engine.
    pub docker: DockerHealth,
    /// GitHub.
    pub github: GitHubHealth,
    /// The runner image.
    pub runner_image: RunnerImageHealth,
    /// How many runners are in each state.
    pub runners: BTreeMap<RunnerState, usize>,
    /// The cap on runners alive at once (`MAX_RUNNERS`).
    pub max_runners: u32,
    /// Each background loop that runs, by name.
    #[serde(default)]
    pub loops: BTreeMap<String, LoopHealth>,
    /// The runner pools in force, and the last reload of the pools file.
    #[serde(default)]
    pub pools: PoolsHealth,
}

/// The runner pools, as `/health` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolsHealth {
    /// The names of the pools in force, in the file's order.
    pub names: Vec<String>,
    /// Each pool's Docker: `none`, or `sidecar` (a private engine per runner).
    #[serde(default)]
    pub docker: BTreeMap<String, String>,
    /// Why the last reload of the pools file was refused (the pools in
    /// force were kept; `status` is then `degraded`), or null.
    pub reload_error: Option<String>,
}

/// `GET /health` of the gateway, and `GET /api/v1/health` with the
/// orchestrator's document inside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GatewayHealth {
    /// `ok`, or `degraded` when the orchestrator is down or degraded.
    pub status: HealthStatus,
    /// The gateway's version.
    pub version: String,
    /// Whether API keys are required.
    pub authentication: bool,
    /// The orchestrator's own health document (only in `/api/v1/health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<OrchestratorHealth>,
    /// Why the orchestrator's health could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_error: Option<String>,
}
