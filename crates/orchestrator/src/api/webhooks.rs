//! `POST /webhooks/github`: GitHub's deliveries. The signature is checked
//! over the raw body before anything else, then the body is read in either
//! content type GitHub sends (JSON, or a form with a `payload` field); the
//! answer comes at once and the scaling happens in the background.

use api_types::{ErrorBody, WebhookAck};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use secrecy::ExposeSecret;
use tracing::{debug, info};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use crate::autoscaler::webhook::{PayloadFormat, WorkflowJobEvent, signature_is_valid};
use crate::autoscaler::{Delivery, Ingested};

/// The webhook route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_github_webhook))
}

/// Receive a GitHub webhook delivery.
///
/// Verifies `X-Hub-Signature-256` with `GITHUB_WEBHOOK_SECRET` over the body
/// exactly as sent, before decoding it. The body is GitHub's JSON payload
/// (`application/json`) or a form whose `payload` field holds it
/// (`application/x-www-form-urlencoded`, the default for a new webhook): the
/// webhook's *Content type* setting on GitHub chooses, and both work. `ping`
/// is answered; `workflow_job` deliveries for served repositories and labels
/// are recorded, and a runner is made sure to exist for each queued job.
/// A delivery (`X-GitHub-Delivery`) is remembered once it was handled (2xx):
/// redelivering it then changes nothing (`duplicate`), while one refused or
/// failed on is handled when GitHub redelivers it.
#[utoipa::path(
    post, path = "/webhooks/github", tag = "webhooks",
    request_body(
        description = "GitHub's payload, byte for byte: the JSON itself, or a form whose `payload` field is the JSON (the webhook's Content type setting chooses)",
        content(
            (String = "application/json"),
            (String = "application/x-www-form-urlencoded"),
        )
    ),
    params(
        ("X-GitHub-Event" = String, Header, description = "Event name, e.g. workflow_job"),
        ("X-GitHub-Delivery" = String, Header, description = "Delivery GUID; the same on a redelivery"),
        ("X-Hub-Signature-256" = String, Header, description = "sha256=HMAC of the body as sent"),
    ),
    responses(
        (status = 200, description = "Delivery handled", body = WebhookAck),
        (status = 400, description = "Unreadable payload", body = ErrorBody),
        (status = 401, description = "Missing or wrong signature", body = ErrorBody),
        (status = 404, description = "Webhooks are off (no GITHUB_WEBHOOK_SECRET)", body = ErrorBody),
        (status = 415, description = "Content-Type is neither application/json nor application/x-www-form-urlencoded", body = ErrorBody),
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
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let Some(format) = PayloadFormat::from_content_type(content_type) else {
        info!(content_type = ?content_type, "webhook refused: unsupported content type");
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "webhook bodies must be application/json or application/x-www-form-urlencoded \
                 (GitHub's webhook setting 'Content type' chooses which; both work), not {}",
                content_type
                    .map_or_else(|| "a missing Content-Type".to_owned(), |t| format!("{t:?}"))
            ),
        ));
    };
    let event = header(&headers, "x-github-event").unwrap_or_default();
    match event.as_str() {
        "ping" => Ok(ack("pong", None)),
        "workflow_job" => {
            let delivery = header(&headers, "x-github-delivery");
            let claim = match &delivery {
                Some(id) => match state.autoscaler.jobs.claim_delivery(id).await {
                    Delivery::New(claim) => Some(claim),
                    Delivery::Duplicate => {
                        debug!(delivery = %id, "redelivery of a handled delivery ignored");
                        return Ok(ack("duplicate", None));
                    }
                },
                None => None,
            };
            // On an error the claim is dropped, released: a redelivery is
            // handled afresh.
            let answer = ingest_workflow_job(&state, format, &body)?;
            if let Some(claim) = claim {
                claim.handled();
            }
            Ok(answer)
        }
        other => Ok(ack("ignored", Some(format!("event {other:?} is not used")))),
    }
}

/// Reads a signed `workflow_job` payload and hands the job to the autoscaler.
fn ingest_workflow_job(
    state: &AppState,
    format: PayloadFormat,
    body: &[u8],
) -> Result<Json<WebhookAck>, ApiError> {
    let payload: WorkflowJobEvent = format
        .decode(body)
        .map_err(|e| ApiError::bad_request(format!("unreadable workflow_job delivery: {e}")))?;
    let outcome = state
        .autoscaler
        .ingest(&payload.repository.full_name, &payload.workflow_job);
    debug!(
        job = payload.workflow_job.id,
        action = %payload.action,
        repository = %payload.repository.full_name,
        format = ?format,
        outcome = ?outcome,
        "workflow_job delivery"
    );
    Ok(match outcome {
        Ingested::Recorded => ack("recorded", None),
        Ingested::Unchanged => ack("unchanged", None),
        Ingested::Ignored(why) => ack("ignored", Some(why)),
    })
}

fn ack(outcome: &str, detail: Option<String>) -> Json<WebhookAck> {
    Json(WebhookAck {
        outcome: outcome.to_owned(),
        detail,
    })
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
