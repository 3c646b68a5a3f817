//! [`ApiError`]: the one error type at the HTTP boundary. Each variant of
//! the layers below maps to a status and a stable code; 5xx answers say what
//! failed without internals, and their detail goes to the log.

use std::time::Duration;

use api_types::ErrorBody;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::{error, warn};

use crate::engine::DockerError;
use crate::github::GitHubError;
use crate::runners::{FleetError, OperationLost};

/// An error answer: status, code, message, and `Retry-After` where it helps.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Seconds for `Retry-After` (429/503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 for a body or query we cannot read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422: the `Idempotency-Key` was first used with another request body,
    /// as the IETF's draft for the header prescribes.
    pub fn idempotency_key_reused() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used in the last 24 hours for a create with another body; use a new key for a new request",
        )
    }

    fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait.as_secs().max(1));
        self
    }
}

impl From<&DockerError> for ApiError {
    fn from(e: &DockerError) -> Self {
        match e {
            DockerError::Unavailable { .. } => {
                warn!(error = %e, "Docker unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "docker_unavailable",
                    e.to_string(),
                )
                .with_retry_after(Duration::from_secs(5))
            }
            // A configuration fault: no Retry-After, waiting does not cure it.
            DockerError::PermissionDenied { .. } => {
                error!(error = %e, "Docker refuses the orchestrator");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "docker_permission_denied",
                    e.to_string(),
                )
            }
            // The runner's own engine did not come up: its image, or the
            // rights the host gives it (RUNNER_DOCKER_PRIVILEGED).
            DockerError::EngineFailed { .. } => {
                error!(error = %e, "a runner's Docker engine did not start");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "docker_engine_failed",
                    e.to_string(),
                )
            }
            _ => {
                error!(error = %e, "Docker call failed");
                ApiError::new(StatusCode::BAD_GATEWAY, "docker_error", e.to_string())
            }
        }
    }
}

impl From<&GitHubError> for ApiError {
    fn from(e: &GitHubError) -> Self {
        match e {
            GitHubError::Unauthorized => {
                error!("GitHub rejected the configured token");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "github_unauthorized",
                    "GitHub rejected the configured token (check GITHUB_TOKEN)",
                )
            }
            GitHubError::AppRejected(_) => {
                error!(error = %e, "GitHub refused the GitHub App");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "github_app_rejected",
                    e.to_string(),
                )
            }
            GitHubError::AppNotInstalled(scope) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "github_app_not_installed",
                format!(
                    "the GitHub App (GITHUB_APP_ID) is not installed on the owner of {scope}, or its installation cannot see it: install the App on that account with access to the repository (the account's Settings, GitHub Apps)"
                ),
            ),
            GitHubError::NotFound(what) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "github_scope_not_found",
                format!(
                    "GitHub knows no {what} that the configured token can see (or the runner group does not exist)"
                ),
            ),
            GitHubError::Forbidden(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "github_forbidden",
                format!(
                    "GitHub refused: {message} (does the token have admin rights on the repository or organization?)"
                ),
            ),
            GitHubError::Conflict(message) => ApiError::new(
                StatusCode::CONFLICT,
                "github_conflict",
                format!("GitHub answered 409: {message}"),
            ),
            GitHubError::Unprocessable(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "github_rejected",
                format!("GitHub refused the request: {message}"),
            ),
            GitHubError::RateLimited { resource, wait } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "github_rate_limited",
                format!(
                    "GitHub's {resource} rate limit is reached; no such GitHub call is made for {}s",
                    wait.as_secs().max(1)
                ),
            )
            .with_retry_after(*wait),
            GitHubError::Status { .. }
            | GitHubError::Unreachable { .. }
            | GitHubError::Decode(_) => {
                warn!(error = %e, "GitHub call failed");
                ApiError::new(StatusCode::BAD_GATEWAY, "github_error", e.to_string())
            }
        }
    }
}

/// By reference: an operation's outcome may be answered more than once
/// (to each request that waits for it, to each repeat of its
/// `Idempotency-Key`).
impl From<&FleetError> for ApiError {
    fn from(e: &FleetError) -> Self {
        match e {
            FleetError::Invalid(m) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                m.clone(),
            ),
            FleetError::ImageNotAllowed(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "image_not_allowed",
                e.to_string(),
            ),
            FleetError::Capacity { .. } => {
                ApiError::new(StatusCode::CONFLICT, "capacity_exceeded", e.to_string())
            }
            FleetError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                e.to_string(),
            )
            .with_retry_after(Duration::from_secs(30)),
            FleetError::ImageUnavailable(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "image_unavailable",
                m.clone(),
            )
            .with_retry_after(Duration::from_secs(60)),
            FleetError::NotFound(_) => ApiError::not_found(e.to_string()),
            FleetError::Busy(_) => {
                ApiError::new(StatusCode::CONFLICT, "runner_busy", e.to_string())
            }
            FleetError::Docker(d) => d.into(),
            FleetError::GitHub(g) => g.into(),
            FleetError::Batch { context, cause } => {
                let mut inner: ApiError = (&**cause).into();
                inner.message = format!("{context}: {}", inner.message);
                inner
            }
        }
    }
}

impl From<DockerError> for ApiError {
    fn from(e: DockerError) -> Self {
        (&e).into()
    }
}

impl From<GitHubError> for ApiError {
    fn from(e: GitHubError) -> Self {
        (&e).into()
    }
}

impl From<FleetError> for ApiError {
    fn from(e: FleetError) -> Self {
        (&e).into()
    }
}

impl From<OperationLost> for ApiError {
    fn from(e: OperationLost) -> Self {
        error!(error = %e, "an operation ended without an outcome");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            // Clients read it through the gateway: the public path.
            "the operation stopped without an outcome; GET /api/v1/runners shows what exists",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(ErrorBody::new(self.code, self.message))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
