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
//! - [`proxy`]: the pooled client to the orchestrator and the forwarding.
//! - [`auth`]: API keys.
//! - [`rate_limit`]: per-client limits (tower_governor).
//! - [`cors`]: the CORS layer from `CORS_ORIGINS`.
//! - [`openapi`]: the document, `/docs`, `/redoc`, `/openapi.json`.
//! - [`error`]: [`error::ApiError`], the gateway's own JSON error answers.
//! - [`telemetry`]: logging set-up and the request span.
//!
//! # Middleware, outermost first
//! request id (made when absent, returned) → trace span → CORS (answers
//! preflights) → rate limit (not on `/health`, `/healthz` or the GitHub
//! webhook) → API key (only on the runner routes) → handler.

pub mod auth;
pub mod config;
pub mod cors;
pub mod error;
pub mod health;
pub mod openapi;
pub mod proxy;
pub mod rate_limit;
pub mod routes;
pub mod startup;
pub mod telemetry;

use axum::Router;
use axum::http::HeaderName;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::ApiKeys;
use crate::config::Config;
use crate::error::ApiError;
use crate::proxy::Upstream;

/// The request id header, made when absent, sent to the orchestrator and
/// returned to the client.
pub const REQUEST_ID: &str = "x-request-id";

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The orchestrator.
    pub upstream: Upstream,
    /// The accepted API keys.
    pub keys: ApiKeys,
}

/// The whole OpenAPI document (without serving anything), e.g. to write it
/// to a file or snapshot-test it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, spec) = api_routes(ApiKeys::new([])).split_for_parts();
    spec
}

fn api_routes(keys: ApiKeys) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::runners(keys))
        .merge(routes::webhooks())
        .merge(health::complete())
        .merge(health::probes())
}

/// The whole app: routes, docs, fallbacks and middleware.
///
/// # Errors
/// An invalid `CORS_ORIGINS`.
pub fn app(config: &Config, state: AppState) -> Result<Router, String> {
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
    let (_, spec) = api_routes(state.keys.clone()).split_for_parts();
    let (api, _) = OpenApiRouter::new()
        .merge(routes::runners(state.keys.clone()))
        .merge(health::complete())
        .split_for_parts();

    let limited = api
        .merge(openapi::router(spec))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .fallback(|| async { ApiError::not_found() })
        .with_state(state.clone());
    let limited = rate_limit::apply(
        limited,
        config.rate_limit_per_second,
        config.rate_limit_burst,
        config.trust_proxy_headers,
    );
    let unlimited = unlimited
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state);

    let request_id = HeaderName::from_static(REQUEST_ID);
    Ok(unlimited
        .merge(limited)
        .layer(cors)
        .layer(TraceLayer::new_for_http().make_span_with(telemetry::request_span))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid)))
}

/// Probes `http://127.0.0.1:PORT/healthz` for Docker's HEALTHCHECK:
/// `Ok` when it answers 200 within two seconds.
///
/// # Errors
/// A message saying why the probe failed.
pub async fn healthcheck(port: u16) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .map_err(|e| format!("no answer on port {port}: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("/healthz answered {}", response.status()))
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
