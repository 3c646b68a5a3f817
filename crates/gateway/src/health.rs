//! Health: `/health` (the gateway alone), `/healthz` (liveness, for Docker's
//! HEALTHCHECK) and `/api/v1/health` (the gateway with the orchestrator's
//! `/health` inside; 503 when the orchestrator is down or degraded).

use api_types::{GatewayHealth, HealthStatus, OrchestratorHealth};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Seconds a client should wait before asking again after a 503.
const RETRY_AFTER_SECONDS: u32 = 5;

/// `/health` and `/healthz`: cheap, never rate limited.
pub fn probes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(healthz))
}

/// `/api/v1/health`: asks the orchestrator, so it sits behind the rate limit.
pub fn complete() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(api_health))
}

/// The gateway's own health.
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses((status = 200, description = "The gateway serves", body = GatewayHealth))
)]
async fn health(State(state): State<AppState>) -> Json<GatewayHealth> {
    Json(gateway_health(&state, HealthStatus::Ok))
}

/// Liveness: 200 while the process serves requests.
#[utoipa::path(
    get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = String))
)]
async fn healthz() -> &'static str {
    "ok"
}

/// Health of the gateway and the orchestrator behind it.
///
/// 200 when the orchestrator answers and reports `ok`; 503 when it cannot be
/// reached or reports `degraded` (its document is included when it answered).
#[utoipa::path(
    get, path = "/api/v1/health", tag = "health",
    responses(
        (status = 200, description = "Gateway and orchestrator healthy", body = GatewayHealth),
        (status = 429, description = "Rate limit reached; see Retry-After", body = api_types::ErrorBody),
        (status = 503, description = "Orchestrator unreachable or degraded", body = GatewayHealth),
    )
)]
async fn api_health(State(state): State<AppState>) -> Response {
    let mut document = gateway_health(&state, HealthStatus::Degraded);
    match state.upstream.get("/health").await {
        Ok((status, body)) => match serde_json::from_slice::<OrchestratorHealth>(&body) {
            Ok(orchestrator) => {
                if status.is_success() && orchestrator.status == HealthStatus::Ok {
                    document.status = HealthStatus::Ok;
                }
                document.orchestrator = Some(orchestrator);
            }
            Err(_) => {
                document.orchestrator_error = Some(format!(
                    "the orchestrator answered {status} with an unreadable health document"
                ));
            }
        },
        Err(e) => document.orchestrator_error = Some(e.message),
    }
    if document.status == HealthStatus::Ok {
        Json(document).into_response()
    } else {
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(document)).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        response
    }
}

fn gateway_health(state: &AppState, status: HealthStatus) -> GatewayHealth {
    GatewayHealth {
        status,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        authentication: state.keys.enabled(),
        orchestrator: None,
        orchestrator_error: None,
    }
}
