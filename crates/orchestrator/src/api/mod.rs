//! The orchestrator's HTTP API: where a request goes.
//!
//! - [`runners`]: `/runners…` handlers.
//! - [`pools`]: `/pools` and `/pools/reload`.
//! - [`health`]: `/health`, `/healthz`.
//! - [`metrics`]: `/metrics`, in the Prometheus text format.
//! - [`webhooks`]: `/webhooks/github`, GitHub's deliveries.
//! - [`error`]: [`ApiError`], the JSON error answer.
//! - [`extract`]: JSON, query and path extractors that answer with [`ApiError`].

pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod pools;
pub mod runners;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

use crate::autoscaler::Autoscaler;
use crate::reconciler::Reconciler;
use crate::runners::Fleet;
use crate::supervisor::Heartbeats;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest webhook payload accepted (GitHub caps deliveries at 25 MB;
/// `workflow_job` payloads are a few kilobytes).
pub const WEBHOOK_MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The runners and the systems they live in.
    pub fleet: Arc<Fleet>,
    /// The reconcile pass, shared with the background loop.
    pub reconciler: Arc<Reconciler>,
    /// Demand from webhooks and polling.
    pub autoscaler: Arc<Autoscaler>,
    /// What each background loop last reported, for `/health`.
    pub loops: Heartbeats,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gha-orchestrator",
        description = "Creates, watches and destroys ephemeral GitHub Actions runner containers. Internal: reach it through the API gateway.",
        license(name = "MIT")
    ),
    tags(
        (name = "runners", description = "Ephemeral runners"),
        (name = "pools", description = "Runner pools: the kinds of runner, chosen by a job's labels"),
        (name = "health", description = "Health checks"),
        (name = "metrics", description = "Prometheus metrics"),
        (name = "webhooks", description = "GitHub webhook deliveries")
    ),
    components(schemas(api_types::ErrorBody))
)]
struct ApiDoc;

/// The routes, with the document their annotations make.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(runners::router())
        .merge(pools::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(webhooks::router().layer(DefaultBodyLimit::max(WEBHOOK_MAX_BODY_BYTES)))
}

/// The document's error responses get an example body per status (see
/// [`api_types::error_examples`], the table the gateway's document shares).
fn with_error_examples(mut spec: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    api_types::error_examples::add(&mut spec, api_types::error_examples::orchestrator);
    spec
}

/// The router and the OpenAPI document it implements.
pub fn router_and_spec(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (router, spec) = routes().split_for_parts();
    (router.with_state(state), with_error_examples(spec))
}

/// The whole OpenAPI document (without serving anything), as
/// `/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, spec) = routes().split_for_parts();
    with_error_examples(spec)
}

/// The whole app: routes, `/openapi.json`, fallback, and the middleware
/// (request id, tracing span, body limit, timeout).
pub fn app(state: AppState) -> Router {
    let (router, spec) = router_and_spec(state);
    let request_id = HeaderName::from_static("x-request-id");
    router
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(spec) }),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(300),
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %request_id,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Answers 413 to a body whose `Content-Length` is over its route's limit,
/// after draining it, so the client reads the answer rather than a reset.
/// (Bodies without a length are cut by `DefaultBodyLimit` as they stream.)
async fn refuse_declared_oversize(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let limit = if request.uri().path() == "/webhooks/github" {
        WEBHOOK_MAX_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    };
    if declared.is_some_and(|n| n > limit) {
        service_kit::discard_body(request.into_body()).await;
        return ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use api_types::ErrorBody;
    use api_types::error_examples::orchestrator;

    use super::ApiError;
    use crate::github::GitHubError;
    use crate::runners::{FleetError, OperationLost};

    #[test]
    fn every_error_status_has_its_own_examples_with_its_codes() {
        let spec = serde_json::to_value(super::openapi_document()).unwrap();
        let checked = api_types::error_examples::check(&spec).unwrap();
        assert!(checked > 25, "only {checked} examples");
        let create = &spec["paths"]["/runners/create"]["post"]["responses"];
        let conflicts = &create["409"]["content"]["application/json"]["examples"];
        assert_eq!(
            conflicts["Pool at its max"]["value"]["error"]["code"], "capacity_exceeded",
            "{conflicts}"
        );
    }

    /// The body the orchestrator answers for `error`.
    fn said(error: impl Into<ApiError>) -> ErrorBody {
        let error = error.into();
        ErrorBody::new(error.code, error.message)
    }

    /// The shared table says what this code says: the examples are the
    /// orchestrator's words, not a paraphrase that drifts.
    #[test]
    fn the_examples_are_what_the_orchestrator_answers() {
        let runner = "gha-runner-k3j9x2mq";
        for (operation, status, summary, answer) in [
            ("create_runners", "500", "No outcome", said(OperationLost)),
            (
                "create_runners",
                "409",
                "No free slot",
                said(FleetError::Capacity {
                    free: 1,
                    max: 10,
                    pool: None,
                }),
            ),
            (
                "delete_runner",
                "409",
                "Busy",
                said(FleetError::Busy(runner.into())),
            ),
            (
                "get_runner_status",
                "404",
                "No such runner",
                said(FleetError::NotFound(runner.into())),
            ),
            (
                "create_runners",
                "422",
                "Image not allowed",
                said(FleetError::ImageNotAllowed("alpine:latest".into())),
            ),
            (
                "create_runners",
                "422",
                "Unknown repository",
                said(GitHubError::NotFound("repository sandbox/missing".into())),
            ),
            (
                "create_runners",
                "422",
                "Idempotency-Key reused",
                said(ApiError::idempotency_key_reused()),
            ),
            (
                "create_runners",
                "502",
                "GitHub failed",
                said(GitHubError::Unauthorized),
            ),
            (
                "create_runners",
                "503",
                "GitHub rate limit",
                said(GitHubError::RateLimited {
                    resource: "core".into(),
                    wait: Duration::from_secs(120),
                }),
            ),
            (
                "receive_github_webhook",
                "503",
                "Shutting down",
                said(FleetError::ShuttingDown),
            ),
        ] {
            let examples = orchestrator(operation, status);
            let example = examples
                .iter()
                .find(|(s, _)| *s == summary)
                .unwrap_or_else(|| panic!("{operation} {status}: no {summary:?}"));
            assert_eq!(example.1, answer, "{operation} {status} {summary}");
        }
    }
}
