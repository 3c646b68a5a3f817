//! The JSON shapes of the orchestrator's HTTP API.
//!
//! Both services use these types: the orchestrator serialises them, the
//! gateway documents them in its OpenAPI document (it proxies the bytes
//! unchanged). Keeping one definition means the published schema can never
//! drift from what the orchestrator really sends.
//!
//! # Layout
//! - [`runners`]: a runner as the API shows it, the create / list / delete
//!   request shapes, and the progress of an operation that outlives its request.
//! - [`cleanup`]: the report of a reconcile pass.
//! - [`health`]: the health documents of the orchestrator and the gateway.
//! - [`webhooks`]: the answer to a GitHub webhook delivery.
//! - [`error`]: the one error body every endpoint uses.
//! - [`error_examples`]: an example error body per status and operation,
//!   for both OpenAPI documents.

pub mod cleanup;
pub mod error;
pub mod error_examples;
pub mod health;
pub mod pools;
pub mod runners;
pub mod webhooks;

pub use cleanup::{CleanupReport, RemovalReason, RemovedRunner};
pub use error::{ErrorBody, ErrorDetail};
pub use health::{
    DockerHealth, GatewayHealth, GitHubHealth, HealthStatus, LoopHealth, OrchestratorHealth,
    PoolsHealth, RateLimitBucket, RunnerImageHealth,
};
pub use pools::{PoolDocker, PoolList, PoolReload, PoolStatus};
pub use runners::{
    CreateRunnersRequest, CreateRunnersResponse, DeleteRunnerQuery, ListRunnersQuery,
    OperationKind, OperationProgress, OperationState, RUNNER_ID_RULE, Runner, RunnerJob,
    RunnerList, RunnerState, is_valid_runner_id,
};
pub use webhooks::WebhookAck;
