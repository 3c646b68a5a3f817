//! Handlers of `/runners`: create, list, show, delete, clean up.
//!
//! A create, a delete and a cleanup change Docker and GitHub, so each runs
//! as an operation of its own ([`crate::runners::operations`]): the handler
//! only waits for its outcome, up to [`Wait`] (25 s, or less with
//! `Prefer: wait=N`), and answers `202 Accepted` with the operation's
//! progress ([`OperationProgress`]) when the wait ends first. A client that
//! gives up cuts nothing.

use api_types::{
    CleanupReport, CreateRunnersRequest, CreateRunnersResponse, DeleteRunnerQuery, ErrorBody,
    ListRunnersQuery, OperationKind, OperationProgress, OperationState, Runner, RunnerList,
};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::extract::{IdempotencyKey, Json, Path, Query, Wait};
use crate::runners::request;

/// `Retry-After` of a 202: when asking again is worth it.
const RETRY_AFTER_SECONDS: u64 = 5;

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
///
/// The batch runs on its own, whatever becomes of this request. The request
/// waits for it up to 25 s (`Prefer: wait=N` shortens that); a batch still
/// going then is answered `202 Accepted` with its progress. With an
/// `Idempotency-Key`, the same request within 24 h joins the first one's
/// batch instead of making another: it waits for it in the same way and
/// answers its outcome (201, or its error), or 202 while it still runs.
#[utoipa::path(
    post, path = "/runners/create", tag = "runners",
    request_body = CreateRunnersRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, max_length = 255, min_length = 1,
            description = "Makes the create safe to repeat: within 24 h, a request with the same key and the same body answers the first one's batch (its runners, its error, or its progress) and creates nothing more. The same key with another body: 422. 1 to 255 printable ASCII characters (a UUID is a good choice). Keys live in memory: a restart forgets them."),
        ("Prefer" = Option<String>, Header,
            description = "`wait=N` (RFC 7240): answer 202 after N seconds if the batch is still going, rather than after 25 s."),
    ),
    responses(
        (status = 201, description = "Runners created", body = CreateRunnersResponse),
        (status = 202, description = "The batch outlived the request's wait and goes on; `Retry-After` says when to ask again (with the same Idempotency-Key)", body = OperationProgress,
            headers(("Retry-After" = u64, description = "Seconds before asking again"))),
        (status = 400, description = "Unreadable JSON, or an Idempotency-Key that is empty, too long or not printable ASCII", body = ErrorBody),
        (status = 409, description = "Not enough free slots under MAX_RUNNERS", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Invalid request, image not allowed, unknown repository/organization, or an Idempotency-Key already used with another body (`idempotency_key_reused`)", body = ErrorBody),
        (status = 500, description = "The batch stopped without an outcome (`GET /runners` shows what exists)", body = ErrorBody),
        (status = 502, description = "GitHub rejected the token or failed", body = ErrorBody),
        (status = 503, description = "Docker unreachable, image unavailable, GitHub rate limit, or shutting down", body = ErrorBody),
    )
)]
async fn create_runners(
    State(state): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    Wait(wait): Wait,
    Json(body): Json<CreateRunnersRequest>,
) -> Result<Response, ApiError> {
    let pools = state.fleet.pools.current();
    let plan = request::plan(&state.fleet.config, &pools, &body)?;
    let create = match &key {
        Some(key) => state
            .fleet
            .start_create_once(key, &body, plan)
            .map_err(|_| ApiError::idempotency_key_reused())?,
        None => state.fleet.start_create(plan),
    };
    let Some(outcome) = create.operation.outcome_within(wait).await else {
        let message = if key.is_some() {
            "the batch goes on after this answer; repeat the request with the same Idempotency-Key to wait for it again and get its outcome"
        } else {
            "the batch goes on after this answer; GET /api/v1/runners lists its runners once all have started (none if it fails and is rolled back); send an Idempotency-Key to be able to ask for its outcome"
        };
        return Ok(accepted(OperationProgress {
            operation: OperationKind::CreateRunners,
            state: if create.progress.rolling_back() {
                OperationState::RollingBack
            } else {
                OperationState::InProgress
            },
            started_at: create.operation.started_at(),
            idempotency_key: key,
            count: Some(create.count as u32),
            runners_started: Some(create.progress.started() as u32),
            runner: None,
            message: message.to_owned(),
        }));
    };
    let runners = outcome?.map_err(|e| ApiError::from(&*e))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreateRunnersResponse { runners }),
    )
        .into_response())
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
///
/// The deletion runs on its own, whatever becomes of this request; the
/// request waits for it up to 25 s (`Prefer: wait=N` shortens that) and
/// answers 202 with its progress when it is still going. The same DELETE
/// again while it goes on joins it rather than starting another.
#[utoipa::path(
    delete, path = "/runners/{id}", tag = "runners",
    params(
        ("id" = String, Path, description = "The runner's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"),
        DeleteRunnerQuery,
        ("Prefer" = Option<String>, Header,
            description = "`wait=N` (RFC 7240): answer 202 after N seconds if the deletion is still going, rather than after 25 s."),
    ),
    responses(
        (status = 202, description = "The deletion outlived the request's wait and goes on; repeat the DELETE to wait again (404 once the runner is gone)", body = OperationProgress,
            headers(("Retry-After" = u64, description = "Seconds before asking again"))),
        (status = 204, description = "Deregistered and removed"),
        (status = 400, description = "Malformed id or query", body = ErrorBody),
        (status = 404, description = "No such runner", body = ErrorBody),
        (status = 409, description = "The runner is busy", body = ErrorBody),
        (status = 500, description = "The deletion stopped without an outcome", body = ErrorBody),
        (status = 502, description = "GitHub failed; the runner is kept", body = ErrorBody),
        (status = 503, description = "Docker unreachable or GitHub rate limit; the runner is kept", body = ErrorBody),
    )
)]
async fn delete_runner(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<DeleteRunnerQuery>,
    Wait(wait): Wait,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let delete = state.fleet.start_delete(&id, query.force);
    let Some(outcome) = delete.outcome_within(wait).await else {
        return Ok(accepted(OperationProgress {
            operation: OperationKind::DeleteRunner,
            state: OperationState::InProgress,
            started_at: delete.started_at(),
            idempotency_key: None,
            count: None,
            runners_started: None,
            runner: Some(id),
            message: "the deletion goes on after this answer; repeat the DELETE to wait for it again (404 once the runner is gone)".to_owned(),
        }));
    };
    outcome?.map_err(|e| ApiError::from(&*e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Reconcile now.
///
/// Runs one reconcile pass and reports what it removed, by reason: exited
/// containers, orphan registrations, runners whose registration is gone,
/// runners that never came online, runners past their lifetime; and which
/// runners it left alone because they were being created.
///
/// The pass runs on its own, whatever becomes of this request; the request
/// waits for it up to 25 s (`Prefer: wait=N` shortens that) and answers 202
/// when it is still going.
#[utoipa::path(
    post, path = "/runners/cleanup", tag = "runners",
    params(
        ("Prefer" = Option<String>, Header,
            description = "`wait=N` (RFC 7240): answer 202 after N seconds if the pass is still going, rather than after 25 s."),
    ),
    responses(
        (status = 200, description = "What the pass removed", body = CleanupReport),
        (status = 202, description = "The pass outlived the request's wait and goes on; its removals show in `GET /runners`", body = OperationProgress,
            headers(("Retry-After" = u64, description = "Seconds before asking again"))),
        (status = 500, description = "The pass stopped without an outcome", body = ErrorBody),
    )
)]
async fn cleanup_runners(
    State(state): State<AppState>,
    Wait(wait): Wait,
) -> Result<Response, ApiError> {
    let reconciler = state.reconciler.clone();
    let pass = state
        .fleet
        .operations
        .spawn(async move { reconciler.pass().await });
    let Some(outcome) = pass.outcome_within(wait).await else {
        return Ok(accepted(OperationProgress {
            operation: OperationKind::Cleanup,
            state: OperationState::InProgress,
            started_at: pass.started_at(),
            idempotency_key: None,
            count: None,
            runners_started: None,
            runner: None,
            message: "the reconcile pass goes on after this answer; what it removes shows in GET /api/v1/runners".to_owned(),
        }));
    };
    Ok(axum::Json(outcome?).into_response())
}

/// `202 Accepted` with an operation's progress and when to ask again.
fn accepted(progress: OperationProgress) -> Response {
    let mut response = (StatusCode::ACCEPTED, axum::Json(progress)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}

/// Runner ids are runner names; see [`api_types::is_valid_runner_id`].
fn check_id(id: &str) -> Result<(), ApiError> {
    if api_types::is_valid_runner_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(api_types::RUNNER_ID_RULE))
    }
}
