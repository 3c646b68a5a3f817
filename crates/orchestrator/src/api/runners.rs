//! Handlers of `/runners`: create, list, show, delete, clean up.

use api_types::{
    CleanupReport, CreateRunnersRequest, CreateRunnersResponse, DeleteRunnerQuery, ErrorBody,
    ListRunnersQuery, Runner, RunnerList,
};
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::extract::{Json, Path, Query};
use crate::runners::request;

/// The `/runners` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_runners))
        .routes(routes!(list_runners))
        .routes(routes!(get_runner_status))
        .routes(routes!(delete_runner))
        .routes(routes!(cleanup_runners))
}

/// Create runners.
///
/// Registers `count` single-use runners with GitHub (one JIT configuration
/// each) and starts a container for each. All or nothing: when one fails,
/// the others are rolled back and the error says which failed and why.
#[utoipa::path(
    post, path = "/runners/create", tag = "runners",
    request_body = CreateRunnersRequest,
    responses(
        (status = 201, description = "Runners created", body = CreateRunnersResponse),
        (status = 400, description = "Unreadable JSON", body = ErrorBody),
        (status = 409, description = "Not enough free slots under MAX_RUNNERS", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Invalid request, image not allowed, or unknown repository/organization", body = ErrorBody),
        (status = 502, description = "GitHub rejected the token or failed", body = ErrorBody),
        (status = 503, description = "Docker unreachable, image unavailable, GitHub rate limit, or shutting down", body = ErrorBody),
    )
)]
async fn create_runners(
    State(state): State<AppState>,
    Json(body): Json<CreateRunnersRequest>,
) -> Result<(StatusCode, axum::Json<CreateRunnersResponse>), ApiError> {
    let plan = request::plan(&state.fleet.config, &body)?;
    let runners = state.fleet.create_runners(plan).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreateRunnersResponse { runners }),
    ))
}

/// List runners.
///
/// Live runners and those finished within `RUNNER_HISTORY_SECONDS`, oldest
/// first. `idle`/`busy` come from GitHub's runner list, refreshed every
/// reconcile pass.
#[utoipa::path(
    get, path = "/runners", tag = "runners",
    params(ListRunnersQuery),
    responses(
        (status = 200, description = "Runners", body = RunnerList),
        (status = 400, description = "Unknown filter or value", body = ErrorBody),
    )
)]
async fn list_runners(
    State(state): State<AppState>,
    Query(query): Query<ListRunnersQuery>,
) -> axum::Json<RunnerList> {
    let runners = state.fleet.registry.list(&query);
    axum::Json(RunnerList {
        total: runners.len(),
        runners,
    })
}

/// Show one runner.
#[utoipa::path(
    get, path = "/runners/{id}/status", tag = "runners",
    params(("id" = String, Path, description = "The runner's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")),
    responses(
        (status = 200, description = "The runner", body = Runner),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such runner", body = ErrorBody),
    )
)]
async fn get_runner_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Runner>, ApiError> {
    check_id(&id)?;
    state
        .fleet
        .registry
        .get(&id)
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found(format!("runner {id} does not exist")))
}

/// Delete a runner.
///
/// Deregisters it from GitHub, then removes its container. A runner GitHub
/// reports busy is refused with 409 unless `force=true`, which stops its
/// container (failing its job).
#[utoipa::path(
    delete, path = "/runners/{id}", tag = "runners",
    params(("id" = String, Path, description = "The runner's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"), DeleteRunnerQuery),
    responses(
        (status = 204, description = "Deregistered and removed"),
        (status = 400, description = "Malformed id or query", body = ErrorBody),
        (status = 404, description = "No such runner", body = ErrorBody),
        (status = 409, description = "The runner is busy", body = ErrorBody),
        (status = 502, description = "GitHub failed; the runner is kept", body = ErrorBody),
        (status = 503, description = "Docker unreachable or GitHub rate limit; the runner is kept", body = ErrorBody),
    )
)]
async fn delete_runner(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<DeleteRunnerQuery>,
) -> Result<StatusCode, ApiError> {
    check_id(&id)?;
    state.fleet.delete_runner(&id, query.force).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reconcile now.
///
/// Runs one reconcile pass and reports what it removed, by reason: exited
/// containers, orphan registrations, runners whose registration is gone,
/// runners that never came online, runners past their lifetime.
#[utoipa::path(
    post, path = "/runners/cleanup", tag = "runners",
    responses((status = 200, description = "What the pass removed", body = CleanupReport))
)]
async fn cleanup_runners(State(state): State<AppState>) -> axum::Json<CleanupReport> {
    axum::Json(state.reconciler.pass().await)
}

/// Runner ids are runner names; see [`api_types::is_valid_runner_id`].
fn check_id(id: &str) -> Result<(), ApiError> {
    if api_types::is_valid_runner_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(api_types::RUNNER_ID_RULE))
    }
}
