//! The proxied `/api/v1` endpoints and where each goes on the orchestrator
//! (the path each handler forwards to). Each handler is one line of
//! forwarding; its doc comment and `#[utoipa::path]` are the published API
//! documentation, so they speak of the public paths only.

use api_types::{
    CleanupReport, CreateRunnersRequest, CreateRunnersResponse, DeleteRunnerQuery, ErrorBody,
    ListRunnersQuery, PoolList, Runner, RunnerList,
};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::proxy::runner_id_segment;

/// The runner endpoints, behind the API key (each handler takes
/// [`Authenticated`] first).
pub fn runners() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_runners, list_runners))
        .routes(routes!(get_runner, delete_runner))
        .routes(routes!(cleanup_runners))
}

/// The runner pool endpoints, behind the API key.
pub fn pools() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_pools))
        .routes(routes!(reload_pools))
}

/// The Prometheus metrics endpoint, behind the API key.
pub fn metrics() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_metrics))
}

/// The GitHub webhook endpoint: open, since GitHub cannot send an API key;
/// the orchestrator checks `X-Hub-Signature-256` against the raw body. Not
/// rate limited per client either (see [`crate::app`]): GitHub does not
/// retry a delivery answered 429.
pub fn webhooks() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_github_webhook))
}

/// Create runners.
///
/// Registers `count` single-use runners with GitHub and starts a container
/// for each. All or nothing.
#[utoipa::path(
    post, path = "/api/v1/runners", tag = "runners",
    request_body = CreateRunnersRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, max_length = 255, min_length = 1,
            description = "Makes the create safe to repeat: within 24 h, a request with the same key and the same body answers the first one's batch (its runners, its error, or its progress while it runs) and creates nothing more. The same key with another body: 422 `idempotency_key_reused`, as in the IETF's Idempotency-Key draft. 1 to 255 printable ASCII characters (a UUID is a good choice). Forwarded unchanged; the orchestrator keeps keys in memory, so a restart forgets them."),
        ("Prefer" = Option<String>, Header,
            description = "`wait=N` (RFC 7240): answer 202 after N seconds if the batch is still going, rather than after 25 s."),
    ),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "The runners, all `starting`", body = CreateRunnersResponse),
        (status = 202, description = "The batch outlived the request's wait (25 s, or `Prefer: wait=N`) and goes on, whatever becomes of this request; repeat it with the same Idempotency-Key to get its outcome", body = api_types::OperationProgress,
            headers(("Retry-After" = u64, description = "Seconds before asking again"))),
        (status = 400, description = "Unreadable JSON, or an Idempotency-Key that is empty, too long or not printable ASCII", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 409, description = "Not enough free slots under MAX_RUNNERS", body = ErrorBody),
        (status = 413, description = "Body larger than MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Invalid request, image not allowed, unknown repository/organization, or an Idempotency-Key already used with another body (`idempotency_key_reused`)", body = ErrorBody),
        (status = 429, description = "Rate limit reached; see Retry-After", body = ErrorBody),
        (status = 431, description = "Too many or too large headers to forward", body = ErrorBody),
        (status = 500, description = "The batch stopped without an outcome (`GET /api/v1/runners` shows what exists)", body = ErrorBody),
        (status = 502, description = "Orchestrator unreachable, or GitHub failed", body = ErrorBody),
        (status = 503, description = "Docker unreachable, GitHub rate limit, or shutting down", body = ErrorBody),
        (status = 504, description = "The orchestrator did not answer in time (UPSTREAM_TIMEOUT_SECONDS); the batch still finishes: repeat with the same Idempotency-Key to get its outcome", body = ErrorBody),
    )
)]
async fn create_runners(
    _: Authenticated,
    State(state): State<AppState>,
    request: Request,
) -> Response {
    state.upstream.forward(request, "/runners/create").await
}

/// List runners.
///
/// Live runners and recently finished ones, oldest first.
#[utoipa::path(
    get, path = "/api/v1/runners", tag = "runners",
    params(ListRunnersQuery),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Runners", body = RunnerList),
        (status = 400, description = "Unknown filter or value", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 429, description = "Rate limit reached; see Retry-After", body = ErrorBody),
        (status = 431, description = "Too many or too large headers to forward", body = ErrorBody),
        (status = 502, description = "Orchestrator unreachable", body = ErrorBody),
        (status = 504, description = "The orchestrator did not answer in time", body = ErrorBody),
    )
)]
async fn list_runners(
    _: Authenticated,
    State(state): State<AppState>,
    request: Request,
) -> Response {
    state.upstream.forward(request, "/runners").await
}

/// Show one runner.
#[utoipa::path(
    get, path = "/api/v1/runners/{id}", tag = "runners",
    params(("id" = String, Path, description = "The runner's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The runner", body = Runner),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such runner", body = ErrorBody),
        (status = 429, description = "Rate limit reached; see Retry-After", body = ErrorBody),
        (status = 431, description = "Too many or too large headers to forward", body = ErrorBody),
        (status = 502, description = "Orchestrator unreachable", body = ErrorBody),
        (status = 504, description = "The orchestrator did not answer in time", body = ErrorBody),
    )
)]
async fn get_runner(
    _: Authenticated,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    match runner_path(id) {
        Ok(segment) => {
            let path = format!("/runners/{segment}/status");
            state.upstream.forward(request, &path).await
        }
        Err(e) => e.into_response(),
    }
}

/// Delete a runner.
///
/// Deregisters it from GitHub, then removes its container; a busy runner is
/// refused with 409 unless `force=true`.
#[utoipa::path(
    delete, path = "/api/v1/runners/{id}", tag = "runners",
    params(
        ("id" = String, Path, description = "The runner's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"),
        DeleteRunnerQuery,
        ("Prefer" = Option<String>, Header,
            description = "`wait=N` (RFC 7240): answer 202 after N seconds if the deletion is still going, rather than after 25 s."),
    ),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 202, description = "The deletion outlived the request's wait and goes on; repeat the DELETE to wait again (404 once the runner is gone)", body = api_types::OperationProgress,
            headers(("Retry-After" = u64, description = "Seconds before asking again"))),
        (status = 204, description = "Deregistered and removed"),
        (status = 400, description = "Malformed id or query", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such runner", body = ErrorBody),
        (status = 409, description = "The runner is busy", body = ErrorBody),
        (status = 429, description = "Rate limit reached; see Retry-After", body = ErrorBody),
        (status = 500, description = "The deletion stopped without an outcome", body = ErrorBody),
        (status = 431, description = "Too many or too large headers to forward", body = ErrorBody),
        (status = 502, description = "Orchestrator unreachable, or GitHub failed", body = ErrorBody),
        (status = 503, description = "Docker unreachable or GitHub rate limit", body = ErrorBody),
        (status = 504, description = "The orchestrator did not answer in time", body = ErrorBody),
    )
)]
async fn delete_runner(
    _: Authenticated,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    match runner_path(id) {
        Ok(segment) => {
            let path = format!("/runners/{segment}");
            state.upstream.forward(request, &path).await
        }
        Err(e) => e.into_response(),
    }
}

/// Reconcile now.
///
/// Runs one reconcile pass and reports what it removed, by reason.
#[utoipa::path(
    post, path = "/api/v1/runners/cleanup", tag = "runners",
    params(
        ("Prefer" = Option<String>, Header,
            description = "`wait=N` (RFC 7240): answer 202 after N seconds if the pass is still going, rather than after 25 s."),
    ),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "What the pass removed", body = CleanupReport),
        (status = 202, description = "The pass outlived the request's wait and goes on; its removals show in `GET /api/v1/runners`", body = api_types::OperationProgress,
            headers(("Retry-After" = u64, description = "Seconds before asking again"))),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 429, description = "Rate limit reached; see Retry-After", body = ErrorBody),
        (status = 500, description = "The pass stopped without an outcome", body = ErrorBody),
        (status = 431, description = "Too many or too large headers to forward", body = ErrorBody),
        (status = 502, description = "Orchestrator unreachable", body = ErrorBody),
        (status = 504, description = "The orchestrator did not answer in time", body = ErrorBody),
    )
)]
async fn cleanup_runners(
    _: Authenticated,
    State(state): State<AppState>,
    request: Request,
) -> Response {
    state.upstream.forward(request, "/runners/cleanup").await
}

/// List runner pools.
///
/// Each kind of runner (one pool, `default`, without a pools file), in the
/// file's order: its settings (the names of its extra environment
/// variables, never their values), its live runners by state, the queued
/// jobs that go to it, and its limits.
#[utoipa::path(
    get, path = "/api/v1/pools", tag = "pools",
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The pools in force", body = PoolList),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 429, description = "Rate limit reached; see Retry-After", body = ErrorBody),
        (status = 431, description = "Too many or too large headers to forward", body = ErrorBody),
        (status = 502, description = "Orchestrator unreachable", body = ErrorBody),
        (status = 504, description = "The orchestrator did not answer in time", body = ErrorBody),
    )
)]
async fn list_pools(_: Authenticated, State(state): State<AppState>, request: Request) -> Response {
    state.upstream.forward(request, "/pools").await
}

/// Reload the pools file.
///
/// Reads the pools file again, as `SIGHUP` to the orchestrator does. A good
/// file is put in force at once (a removed pool takes no new jobs, its idle
/// runners are removed, its busy ones finish); a bad one changes nothing,
/// and the error names the pool and the key.
#[utoipa::path(
    post, path = "/api/v1/pools/reload", tag = "pools",
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The file was taken; the pools now in force", body = PoolList),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 409, description = "No pools file is configured (`no_pools_file`)", body = ErrorBody),
        (status = 422, description = "The file was refused (`invalid_pools_file`); the pools in force are kept", body = ErrorBody),
        (status = 429, description = "Rate limit reached; see Retry-After", body = ErrorBody),
        (status = 431, description = "Too many or too large headers to forward", body = ErrorBody),
        (status = 502, description = "Orchestrator unreachable", body = ErrorBody),
        (status = 504, description = "The orchestrator did not answer in time", body = ErrorBody),
    )
)]
async fn reload_pools(
    _: Authenticated,
    State(state): State<AppState>,
    request: Request,
) -> Response {
    state.upstream.forward(request, "/pools/reload").await
}

/// Prometheus metrics.
///
/// The orchestrator's metrics in the Prometheus text format, version 0.0.4
/// (`text/plain; version=0.0.4; charset=utf-8`), passed through unchanged:
/// per pool, live runners by state, queued jobs, the time from a job being
/// queued to its start and from a runner's create to its coming online
/// (histograms), runner failures by reason; GitHub's budget per rate-limit
/// bucket; failed Docker and GitHub calls by kind. Scrape it with the API
/// key as a bearer token (Prometheus's `authorization.credentials_file`).
#[utoipa::path(
    get, path = "/api/v1/metrics", tag = "metrics",
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The metrics, in the Prometheus text format (version 0.0.4)",
            body = String, content_type = "text/plain"),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 429, description = "Rate limit reached; see Retry-After", body = ErrorBody),
        (status = 431, description = "Too many or too large headers to forward", body = ErrorBody),
        (status = 502, description = "Orchestrator unreachable", body = ErrorBody),
        (status = 504, description = "The orchestrator did not answer in time", body = ErrorBody),
    )
)]
async fn get_metrics(
    _: Authenticated,
    State(state): State<AppState>,
    request: Request,
) -> Response {
    state.upstream.forward(request, "/metrics").await
}

/// Receive a GitHub webhook.
///
/// No API key: GitHub signs the body instead. Not rate limited per client:
/// GitHub sends bursts of deliveries and never retries one answered 429.
/// The body and GitHub's headers are forwarded byte for byte to the
/// orchestrator, which checks `X-Hub-Signature-256`.
#[utoipa::path(
    post, path = "/api/v1/webhooks/github", tag = "webhooks",
    params(
        ("X-GitHub-Event" = String, Header, description = "The event name, e.g. `workflow_job`"),
        ("X-GitHub-Delivery" = String, Header, description = "GitHub's delivery id"),
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=` HMAC of the body with the webhook secret"),
    ),
    request_body(
        description = "GitHub's payload, forwarded unchanged: the JSON itself, or a form whose `payload` field is the JSON (the webhook's Content type setting chooses)",
        content(
            (String = "application/json"),
            (String = "application/x-www-form-urlencoded"),
        )
    ),
    responses(
        (status = 200, description = "Handled"),
        (status = 202, description = "Accepted"),
        (status = 400, description = "Unreadable payload", body = ErrorBody),
        (status = 401, description = "Missing or wrong signature", body = ErrorBody),
        (status = 404, description = "Webhooks are off (no webhook secret)", body = ErrorBody),
        (status = 413, description = "Body larger than MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "Content-Type is neither application/json nor application/x-www-form-urlencoded", body = ErrorBody),
        (status = 431, description = "Too many or too large headers to forward", body = ErrorBody),
        (status = 502, description = "Orchestrator unreachable", body = ErrorBody),
        (status = 503, description = "The orchestrator cannot act on it now", body = ErrorBody),
        (status = 504, description = "The orchestrator did not answer in time", body = ErrorBody),
    )
)]
async fn receive_github_webhook(State(state): State<AppState>, request: Request) -> Response {
    state.upstream.forward(request, "/webhooks/github").await
}

fn runner_path(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = id.map_err(|r| {
        let refusal = service_kit::rejection::path(&r);
        ApiError::new(refusal.status, refusal.code, refusal.message)
    })?;
    runner_id_segment(&id)
}
