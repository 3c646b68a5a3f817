//! gha-api-gateway: the only public entry point of the runner service. It
//! checks API keys, limits each client's request rate, answers CORS, serves
//! the OpenAPI document with Swagger UI and ReDoc, and forwards everything
//! else to the orchestrator, whose answers pass through unchanged.
//!
//! # Layout
//! - [`config`]: every environment variable, parsed once.
//! - [`startup`]: [`startup::Application`], which binds, serves and shuts down.
//! - [`routes`]: the proxied `/api/v1` endpoints and where each goes.
//! - [`health`]: `/health`, `/healthz`, `/api/v1/health`.
//! - [`index`]: `GET /`, pointing to the documentation.
//! - [`proxy`]: the pooled client to the orchestrator and the forwarding.
//! - [`auth`]: API keys.
//! - [`rate_limit`]: per-client limits (tower_governor).
//! - [`cors`]: the CORS layer from `CORS_ORIGINS`.
//! - [`openapi`]: the document, `/docs`, `/redoc`, `/openapi.json`.
//! - [`error`]: [`error::ApiError`], the gateway's own JSON error answers.
//! - [`telemetry`]: logging set-up and the request span.
//!
//! # Middleware, outermost first
//! request id (made when absent — see [`RequestIds`] — and returned) → trace
//! span (at `debug`) → CORS (for requests with `Origin`; answers preflights)
//! → rate limit (not on `/health`, `/healthz` or the GitHub webhook) → API
//! key (the runner handlers' first extractor, [`auth::Authenticated`]) →
//! handler. Each wraps the whole router once, not each route.
//!
//! # Threads
//! [`startup::Application`] serves with `service_kit::serve_on_threads`:
//! `API_GATEWAY_WORKERS` threads, each with its own [`app`] (so its own
//! orchestrator connections); the limiter and the request ids are shared.

pub mod auth;
pub mod config;
pub mod cors;
pub mod error;
pub mod health;
pub mod index;
pub mod openapi;
pub mod proxy;
pub mod rate_limit;
pub mod routes;
pub mod startup;
pub mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderName, HeaderValue, Request};
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::ApiKeys;
use crate::config::Config;
use crate::error::ApiError;
use crate::proxy::Upstream;
use crate::rate_limit::RateLimit;

/// The body of the gateway's answers: axum's, as the trace layer wraps it.
pub type ResponseBody = tower_http::trace::ResponseBody<
    axum::body::Body,
    tower_http::classify::NeverClassifyEos<tower_http::classify::ServerErrorsFailureClass>,
>;

/// The request id header, made when absent, sent to the orchestrator and
/// returned to the client.
pub const REQUEST_ID: &str = "x-request-id";

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The orchestrator (one pooled client per serving thread; shared by
    /// reference so a request clones a pointer, not the client).
    pub upstream: Arc<Upstream>,
    /// The accepted API keys.
    pub keys: ApiKeys,
}

/// The whole OpenAPI document (without serving anything), e.g. to write it
/// to a file or snapshot-test it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, spec) = api_routes().split_for_parts();
    openapi::with_error_examples(spec)
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::runners())
        .merge(routes::pools())
        .merge(routes::metrics())
        .merge(routes::webhooks())
        .merge(health::complete())
        .merge(health::probes())
        .merge(index::router())
}

/// The whole app: routes, docs, fallbacks and middleware. `limit` and
/// `request_ids` are shared by every serving thread's app.
///
/// # Errors
/// An invalid `CORS_ORIGINS`.
pub fn app(
    config: &Config,
    state: AppState,
    limit: &RateLimit,
    request_ids: RequestIds,
) -> Result<impl service_kit::HttpService<ResponseBody> + use<>, String> {
    let cors = cors::layer(&config.cors_origins)?;
    // One document for every route, but two routers. Outside the rate limit:
    // the probes, so Docker's health check and load balancers are never
    // throttled, and the GitHub webhook, because GitHub sends bursts of
    // deliveries from a few addresses and never retries one answered 429
    // (a throttled delivery is a lost job). The webhook keeps the body limit
    // (the proxy enforces it) and the orchestrator checks its signature.
    let (unlimited, _) = OpenApiRouter::new()
        .merge(health::probes())
        .merge(routes::webhooks())
        .split_for_parts();
    let spec = openapi_document();
    let (api, _) = OpenApiRouter::new()
        .merge(routes::runners())
        .merge(routes::pools())
        .merge(routes::metrics())
        .merge(health::complete())
        .merge(index::router())
        .split_for_parts();

    let limited = api
        .merge(openapi::router(spec))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .fallback(|| async { ApiError::not_found() })
        .with_state(state.clone());
    let limited = limit.apply(limited);
    let unlimited = unlimited
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state);

    let request_id = HeaderName::from_static(REQUEST_ID);
    // Around the whole router as one service (see `RateLimit::apply`).
    let edge = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), request_ids))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(TraceLayer::new_for_http().make_span_with(telemetry::request_span))
        .layer(cors)
        .service(unlimited.merge(limited));
    Ok(edge)
}

/// Makes the request ids of requests that come without one: UUID-shaped
/// (version 4 and RFC 4122 variant bits set, lower-case hyphenated), built
/// from a random prefix drawn once per process and a counter that starts
/// at a random value, so making one costs no system call. Ids are unique
/// within a process (the counter has 62 bits) and, with 60 random bits of
/// prefix, across processes; unlike true v4 UUIDs they are not
/// unpredictable, which an id for correlating log lines need not be.
#[derive(Debug, Clone)]
pub struct RequestIds {
    /// The high 64 bits of every id, version nibble included.
    prefix: u64,
    /// The next value of the low 62 bits.
    counter: Arc<AtomicU64>,
}

impl RequestIds {
    /// A generator with a fresh random prefix and counter start.
    pub fn new() -> Self {
        let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
        Self {
            prefix: (high & !0xF000) | 0x4000,
            counter: Arc::new(AtomicU64::new(low)),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> HeaderValue {
        const VARIANT: u64 = 0b10 << 62;
        const COUNTER_BITS: u64 = (1 << 62) - 1;
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = uuid::Uuid::from_u64_pair(self.prefix, VARIANT | (count & COUNTER_BITS));
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
            .expect("a hyphenated UUID is a valid header value")
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        Some(RequestId::new(self.next_id()))
    }
}

pub use service_kit::{healthcheck, shutdown_signal};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_uuids() {
        let ids = RequestIds::new();
        let other = RequestIds::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            for id in [ids.next_id(), other.next_id()] {
                let text = id.to_str().unwrap();
                let parsed = uuid::Uuid::parse_str(text).unwrap();
                assert_eq!(parsed.get_version_num(), 4);
                assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
                assert_eq!(parsed.hyphenated().to_string(), text);
                assert!(seen.insert(text.to_owned()), "{text} made twice");
            }
        }
    }

    #[test]
    fn document_lists_every_api_path() {
        let spec = openapi_document();
        for path in [
            "/api/v1/runners",
            "/api/v1/runners/{id}",
            "/api/v1/runners/cleanup",
            "/api/v1/webhooks/github",
            "/api/v1/health",
        ] {
            assert!(spec.paths.paths.contains_key(path), "{path} missing");
        }
    }
}
