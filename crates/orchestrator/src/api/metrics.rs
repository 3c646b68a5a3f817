//! `GET /metrics`: the Prometheus metrics ([`crate::metrics`]).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::metrics::{CONTENT_TYPE, FleetState};

/// The metrics route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics.
///
/// In the Prometheus text format, version 0.0.4 (`text/plain;
/// version=0.0.4; charset=utf-8`). Per pool: live runners by state
/// (`gha_runners`), queued jobs (`gha_queued_jobs`), the time from a job
/// being queued to its start (`gha_job_wait_seconds`, a histogram), from a
/// runner's create to its coming online (`gha_runner_startup_seconds`), and
/// runner failures by reason (`gha_runner_failures_total`); GitHub's budget
/// per rate-limit bucket (`gha_github_rate_limit_remaining`,
/// `gha_github_rate_limit_limit`); failed Docker and GitHub calls by kind
/// (`gha_docker_errors_total`, `gha_github_errors_total`).
#[utoipa::path(
    get, path = "/metrics", tag = "metrics",
    responses(
        (status = 200, description = "The metrics, in the Prometheus text format (version 0.0.4)",
            body = String, content_type = "text/plain"),
    )
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let now = FleetState::read(&state.fleet, &state.autoscaler.jobs);
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.fleet.metrics.encode(&now),
    )
}
