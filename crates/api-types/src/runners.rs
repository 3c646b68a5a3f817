//! A runner as the API shows it, and the requests that create, list and
//! delete runners.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What a runner id (= runner name) may hold, for error messages.
pub const RUNNER_ID_RULE: &str =
    "a runner id holds 1 to 100 letters, digits, '-', '_' or '.', and does not start with '.'";

/// Whether `id` can be a runner id: the names the orchestrator makes, and
/// nothing that could walk another path (`..`, `/`, encoded characters).
/// The OpenAPI documents state the same rule as a pattern.
pub fn is_valid_runner_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Where a runner is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RunnerState {
    /// The container exists but GitHub does not show the runner online yet.
    Starting,
    /// Online on GitHub and waiting for a job.
    Idle,
    /// Running a job.
    Busy,
    /// The container exited with code 0 (it ran its job, or was told to stop).
    Finished,
    /// The container exited with a non-zero code, or never came online.
    Failed,
    /// Being deregistered from GitHub and removed.
    Removing,
}

impl RunnerState {
    /// Every state, in lifecycle order.
    pub const ALL: [RunnerState; 6] = [
        RunnerState::Starting,
        RunnerState::Idle,
        RunnerState::Busy,
        RunnerState::Finished,
        RunnerState::Failed,
        RunnerState::Removing,
    ];

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerState::Starting => "starting",
            RunnerState::Idle => "idle",
            RunnerState::Busy => "busy",
            RunnerState::Finished => "finished",
            RunnerState::Failed => "failed",
            RunnerState::Removing => "removing",
        }
    }

    /// Whether the runner's container is gone for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, RunnerState::Finished | RunnerState::Failed)
    }
}

/// A create: how many runners, for which repository or organization, with
/// which extra labels. (The schema's descriptions are shared by the
/// gateway's and the orchestrator's documents, so they name no path.)
///
/// The example works as it is in the sandbox, whose GitHub simulator knows
/// the repository `sandbox/app`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"count": 1, "repository": "sandbox/app", "labels": ["docs-example"]}))]
pub struct CreateRunnersRequest {
    /// How many runners to create: 1 to `MAX_RUNNERS` and to the pool's `max`.
    #[schema(minimum = 1)]
    pub count: u32,
    /// The runner pool whose kind of runner to create (its labels, image,
    /// resources and limits); default: the first pool (`default` without a
    /// pools file). See `GET /pools`.
    #[serde(default)]
    pub pool: Option<String>,
    /// `owner/name` of the repository the runners register to. Give this or
    /// `organization`, not both; with neither, the pool's scope
    /// (`GITHUB_REPOSITORY` or `GITHUB_ORG` without a pools file) is used.
    #[serde(default)]
    pub repository: Option<String>,
    /// Organization the runners register to, instead of a repository.
    #[serde(default)]
    pub organization: Option<String>,
    /// Labels added after the pool's (`self-hosted`, `linux`, `x64` and
    /// `RUNNER_LABELS` without a pools file).
    #[serde(default)]
    #[schema(max_items = 100)]
    pub labels: Vec<String>,
    /// Runner group to register into (default: the pool's, `RUNNER_GROUP_ID`).
    #[serde(default)]
    pub runner_group_id: Option<i64>,
    /// Runner image; must be in `RUNNER_IMAGE_ALLOWLIST` (default: the
    /// pool's image, `RUNNER_IMAGE` without a pools file).
    #[serde(default)]
    pub image: Option<String>,
}

/// The answer to a successful create: every runner of the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateRunnersResponse {
    /// The runners created, all in state `starting`.
    pub runners: Vec<Runner>,
}

/// The job a runner took, as far as the orchestrator knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunnerJob {
    /// GitHub's workflow job id.
    pub id: i64,
    /// The workflow run the job belongs to, when known.
    #[serde(default)]
    pub run_id: Option<i64>,
    /// The job's name, when known.
    #[serde(default)]
    pub name: Option<String>,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    /// `success`, `failure`, `cancelled`, ... once completed.
    #[serde(default)]
    pub conclusion: Option<String>,
}

/// One ephemeral runner: its container, its GitHub registration, its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "gha-runner-k3j9x2mq", "github_runner_id": 42, "repository": "sandbox/app",
    "organization": null, "labels": ["self-hosted", "linux", "x64"],
    "image": "ghcr.io/actions/actions-runner:latest", "pool": "default", "container_id": "4f1c0d...",
    "state": "idle", "exit_code": null, "reason": null,
    "created_at": "2026-11-28T10:00:00Z", "updated_at": "2026-11-28T10:00:04Z", "job": null
}))]
pub struct Runner {
    /// The runner's name: also its container name and its GitHub runner name.
    pub id: String,
    /// The id GitHub gave the registration.
    pub github_runner_id: Option<i64>,
    /// `owner/name` when the runner is registered to a repository.
    pub repository: Option<String>,
    /// The organization when the runner is registered to an organization.
    pub organization: Option<String>,
    /// Every label the runner registered with.
    pub labels: Vec<String>,
    /// The image its container runs.
    pub image: String,
    /// The runner pool it belongs to (`default` without a pools file).
    pub pool: String,
    /// Docker's id of its container (absent once removed).
    pub container_id: Option<String>,
    /// Where the runner is in its life.
    pub state: RunnerState,
    /// The container's exit code, once it exited.
    pub exit_code: Option<i64>,
    /// Why the runner failed or was removed, when it did.
    pub reason: Option<String>,
    /// When the runner was created.
    pub created_at: DateTime<Utc>,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
    /// The job it ran or is running, when known.
    pub job: Option<RunnerJob>,
}

/// The runners that match a list's filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunnerList {
    /// How many runners match.
    pub total: usize,
    /// The runners, oldest first.
    pub runners: Vec<Runner>,
}

/// Filters of the runner list; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListRunnersQuery {
    /// Only runners in this state.
    pub state: Option<RunnerState>,
    /// Only runners of this repository (`owner/name`).
    pub repository: Option<String>,
    /// Only runners of this organization.
    pub organization: Option<String>,
    /// Only runners of this pool.
    pub pool: Option<String>,
}

/// Options of a runner's deletion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteRunnerQuery {
    /// Remove the runner even when GitHub reports it busy (its job fails).
    #[serde(default)]
    pub force: bool,
}

/// Which operation an [`OperationProgress`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Creating runners.
    CreateRunners,
    /// Deleting a runner.
    DeleteRunner,
    /// A reconcile pass.
    Cleanup,
}

/// Where an operation under way is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// Under way.
    InProgress,
    /// A batch that failed: the runners it made are being removed
    /// (registration first, then container); it will answer the error.
    RollingBack,
}

/// The `202 Accepted` answer of a create, delete or cleanup that outlived
/// the request's wait (25 s, or less with `Prefer: wait=N`). The operation
/// goes on regardless: a client that stops waiting never cuts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "operation": "create_runners", "state": "in_progress",
    "started_at": "2026-11-28T10:00:00Z", "idempotency_key": "4f7c2a9e-batch-17",
    "count": 3, "runners_started": 1,
    "message": "the batch goes on after this answer; repeat the request with the same Idempotency-Key to wait for it again and get its outcome"
}))]
pub struct OperationProgress {
    /// Which operation.
    pub operation: OperationKind,
    /// Where it is.
    pub state: OperationState,
    /// When it began.
    pub started_at: DateTime<Utc>,
    /// A create's `Idempotency-Key`: the same request with it answers the
    /// batch's outcome (201 or the error) once the batch has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// A create: how many runners the batch asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// A create: the batch's runners whose containers have started so far
    /// (the batch is all or nothing: none is listed before all are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runners_started: Option<u32>,
    /// A delete: the runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// How to learn the outcome.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_rejects_unknown_fields() {
        let err = serde_json::from_str::<CreateRunnersRequest>(r#"{"count":1,"colour":"red"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn runner_ids_follow_the_rule() {
        assert!(is_valid_runner_id("gha-runner-k3j9x2mq"));
        for bad in ["", ".", "..", ".hidden", "a/b", "a%2Fb", "a b", "ç"] {
            assert!(!is_valid_runner_id(bad), "{bad:?}");
        }
        assert!(!is_valid_runner_id(&"x".repeat(101)));
    }

    #[test]
    fn state_names_match_serde() {
        for state in RunnerState::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
    }
}
