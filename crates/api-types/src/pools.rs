//! Runner pools as `GET /pools` shows them: each kind of runner's settings
//! (never its environment's values, which may hold secrets), its runners
//! by state, the jobs waiting for it, and its limits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "large", "labels": ["self-hosted", "linux", "x64", "large"],
    "image": "ghcr.io/actions/actions-runner:latest", "command": ["/home/runner/run.sh"],
    "env_keys": ["BUILD_CACHE"], "registration": "jit", "cpus": 4.0, "memory_bytes": 8589934592_i64,
    "pids_limit": null, "min_idle": 0, "max": 4, "idle_timeout_seconds": 300,
    "max_lifetime_seconds": 86400, "repository": null, "organization": "acme",
    "allowed_repositories": [], "runner_group_id": 1, "network": "gha-runners",
    "docker": {"mode": "sidecar", "image": "docker:dind", "privileged": true, "registry_mirror": null},
    "runners": {"starting": 1, "idle": 0, "busy": 2}, "queued_jobs": 3
}))]
pub struct PoolStatus {
    /// The pool's name (`default` without a pools file).
    pub name: String,
    /// The full label set of its runners.
    pub labels: Vec<String>,
    /// The image its runners run.
    pub image: String,
    /// The command its runner containers run.
    pub command: Vec<String>,
    /// The names of the extra environment variables its runners get (their
    /// values are not shown: they may be secrets).
    pub env_keys: Vec<String>,
    /// `jit` or `token`.
    pub registration: String,
    /// CPU limit per runner.
    pub cpus: Option<f64>,
    /// Memory limit per runner, in bytes.
    pub memory_bytes: Option<i64>,
    /// Process limit per runner.
    pub pids_limit: Option<i64>,
    /// Idle runners kept ready (the warm pool).
    pub min_idle: usize,
    /// Runners of this pool alive at once, at most.
    pub max: usize,
    /// Seconds an idle runner above the warm pool waits for a job.
    pub idle_timeout_seconds: u64,
    /// Seconds a runner that is not busy may live.
    pub max_lifetime_seconds: u64,
    /// The repository its runners register to by default.
    pub repository: Option<String>,
    /// The organization its runners register to by default.
    pub organization: Option<String>,
    /// More repositories whose jobs it serves.
    pub allowed_repositories: Vec<String>,
    /// The runner group its runners join.
    pub runner_group_id: i64,
    /// The Docker network its runners join.
    pub network: String,
    /// Whether its runners get a Docker engine of their own.
    pub docker: PoolDocker,
    /// Its live runners by state (`starting`, `idle`, `busy`, `removing`).
    pub runners: BTreeMap<String, usize>,
    /// Queued jobs that go to this pool and have no runner yet.
    pub queued_jobs: usize,
}

/// A pool's Docker: none, or a private engine per runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolDocker {
    /// `none` (no Docker in its jobs) or `sidecar` (each runner gets its own
    /// engine, in a container created and removed with it).
    pub mode: String,
    /// The engine's image (`sidecar` only).
    pub image: Option<String>,
    /// Whether the engine runs `--privileged` (else an explicit capability
    /// set); `sidecar` only.
    pub privileged: Option<bool>,
    /// The registry mirror its engines use, if any.
    pub registry_mirror: Option<String>,
}

/// Every pool in force, in the file's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PoolList {
    /// The pools file, when pools come from one (`RUNNER_POOLS_FILE`).
    pub file: Option<String>,
    /// Runners alive at once over all pools, at most (`MAX_RUNNERS`).
    pub max_runners: usize,
    /// The pools.
    pub pools: Vec<PoolStatus>,
    /// What the last reload did, if one happened.
    pub last_reload: Option<PoolReload>,
}

/// The outcome of a reload of the pools file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolReload {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Why the file was refused (the pools in force were kept), or null
    /// when it was taken.
    pub error: Option<String>,
}
