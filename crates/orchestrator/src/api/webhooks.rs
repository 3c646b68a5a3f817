//! `POST /webhooks/github`: GitHub's deliveries. The signature is checked
//! over the raw body before anything else; the answer comes at once and the
//! scaling happens in the background.

use api_types::{ErrorBody, WebhookAck};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use secrecy::ExposeSecret;
use tracing::{debug, info};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use crate::autoscaler::Ingested;
use crate::autoscaler::webhook::{WorkflowJobEvent, signature_is_valid};

/// The webhook route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_github_webhook))
}

/// Receive a GitHub webhook delivery.
///
/// Verifies `X-Hub-Signature-256` with `GITHUB_WEBHOOK_SECRET`. `ping` is
/// answered; `workflow_job` deliveries for served repositories and labels
/// are recorded, and a runner is made sure to exist for each queued job. A
/// redelivery (same `X-GitHub-Delivery`) changes nothing.
#[utoipa::path(
    post, path = "/webhooks/github", tag = "webhooks",
    request_body(content = String, description = "GitHub's JSON payload, byte for byte", content_type = "application/json"),
    params(
        ("X-GitHub-Event" = String, Header, description = "Event name, e.g. workflow_job"),
        ("X-GitHub-Delivery" = String, Header, description = "Delivery GUID"),
        ("X-Hub-Signature-256" = String, Header, description = "sha256=HMAC of the body"),
    ),
    responses(
        (status = 200, description = "Delivery handled", body = WebhookAck),
        (status = 400, description = "Unreadable payload", body = ErrorBody),
        (status = 401, description = "Missing or wrong signature", body = ErrorBody),
        (status = 404, description = "Webhooks are off (no GITHUB_WEBHOOK_SECRET)", body = ErrorBody),
    )
)]
async fn receive_github_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    let Some(secret) = &state.fleet.config.github_webhook_secret else {
        return Err(ApiError::not_found(
            "webhooks are off: set GITHUB_WEBHOOK_SECRET to receive them",
        ));
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !signature_is_valid(secret.expose_secret().as_bytes(), &body, signature) {
        info!("webhook refused: missing or wrong signature");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "X-Hub-Signature-256 is missing or does not match the body",
        ));
    }
    let event = header(&headers, "x-github-event").unwrap_or_default();
    let delivery = header(&headers, "x-github-delivery");
    let ack = |outcome: &str, detail: Option<String>| {
        Json(WebhookAck {
            outcome: outcome.to_owned(),
            detail,
        })
    };
    match event.as_str() {
        "ping" => Ok(ack("pong", None)),
        "workflow_job" => {
            if let Some(id) = &delivery
                && !state.autoscaler.jobs.first_delivery(id)
            {
                debug!(delivery = %id, "redelivery ignored");
                return Ok(ack("duplicate", None));
            }
            let payload: WorkflowJobEvent = serde_json::from_slice(&body).map_err(|e| {
                ApiError::bad_request(format!("unreadable workflow_job payload: {e}"))
            })?;
            let outcome = state
                .autoscaler
                .ingest(&payload.repository.full_name, &payload.workflow_job);
            debug!(
                job = payload.workflow_job.id,
                action = %payload.action,
                repository = %payload.repository.full_name,
                outcome = ?outcome,
                "workflow_job delivery"
            );
            Ok(match outcome {
                Ingested::Recorded => ack("recorded", None),
                Ingested::Unchanged => ack("unchanged", None),
                Ingested::Ignored(why) => ack("ignored", Some(why)),
            })
        }
        other => Ok(ack("ignored", Some(format!("event {other:?} is not used")))),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
