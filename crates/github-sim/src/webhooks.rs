//! Webhook deliveries: payloads, HMAC signing (SHA-256 and the legacy SHA-1), JSON or form
//! bodies, the ordered background sender, and the test switches: drop, duplicate, corrupt
//! the signature, redeliver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::github_json;
use crate::settings::WebhookContentType;
use crate::world::World;

/// `X-GitHub-Hook-ID` of the simulator's single webhook.
pub(crate) const HOOK_ID: u64 = 424_242;
/// Per-delivery timeout (GitHub gives receivers 10 s).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// `X-Hub-Signature-256` of `body`: `"sha256=" + hex(HMAC-SHA256(secret, body))`.
pub fn sign_webhook(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The legacy `X-Hub-Signature` of `body`: `"sha1=" + hex(HMAC-SHA1(secret, body))`.
/// GitHub still sends it beside `X-Hub-Signature-256`.
pub fn sign_webhook_sha1(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body GitHub sends for `payload`: the JSON itself, or (`form`) the form field
/// `payload` holding it, percent-encoded.
fn encode_body(payload: &Value, content_type: WebhookContentType) -> Vec<u8> {
    let json = serde_json::to_string(payload).unwrap_or_default();
    match content_type {
        WebhookContentType::Json => json.into_bytes(),
        WebhookContentType::Form => form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &json)
            .finish()
            .into_bytes(),
    }
}

/// A delivery waiting to be sent (and, once sent, kept for redelivery).
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) event: &'static str,
    pub(crate) action: Option<String>,
    pub(crate) job_id: Option<u64>,
    /// `X-GitHub-Hook-Installation-Target-Type`.
    pub(crate) target_type: &'static str,
    pub(crate) target_id: u64,
    /// How `body` is encoded (fixed when the event happened).
    pub(crate) content_type: WebhookContentType,
    /// The exact bytes sent, and signed.
    pub(crate) body: Vec<u8>,
    /// Set on a redelivery: the `X-GitHub-Delivery` it repeats.
    pub(crate) redelivery_of: Option<String>,
}

/// Where the world puts deliveries; disabled without `--webhook-url`.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: Option<mpsc::UnboundedSender<Delivery>>,
}

impl Outbox {
    /// An outbox that discards everything.
    pub(crate) fn disabled() -> Self {
        Self { tx: None }
    }

    /// An outbox and the receiving end for [`deliver_all`].
    pub(crate) fn channel() -> (Self, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx: Some(tx) }, rx)
    }

    fn send(&self, delivery: Delivery) {
        if let Some(tx) = &self.tx {
            // The receiver only goes away at shutdown.
            let _ = tx.send(delivery);
        }
    }
}

/// One delivery attempt, as `GET /_sim/webhooks` lists it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeliveryRecord {
    pub(crate) delivery_id: String,
    pub(crate) event: &'static str,
    pub(crate) action: Option<String>,
    pub(crate) job_id: Option<u64>,
    /// Receiver's HTTP status.
    pub(crate) status_code: Option<u16>,
    /// Transport error, or `dropped`.
    pub(crate) error: Option<String>,
    pub(crate) dropped: bool,
    /// The second send of a duplicated delivery.
    pub(crate) duplicate: bool,
    /// A resend through `POST /_sim/webhooks/redeliver` (same delivery id and body).
    pub(crate) redelivery: bool,
    /// Sent with wrong signatures (`corrupt_next`).
    pub(crate) corrupted: bool,
    /// `json` or `form`.
    pub(crate) content_type: &'static str,
}

/// The test switches, counters, the delivery log and the sent deliveries (for redelivery).
#[derive(Debug, Default)]
pub(crate) struct WebhookControl {
    pub(crate) drop_next: u64,
    pub(crate) duplicate_next: u64,
    /// The next N sends carry wrong signatures, as if a proxy had altered the body.
    pub(crate) corrupt_next: u64,
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    pub(crate) dropped: u64,
    pub(crate) duplicated: u64,
    pub(crate) corrupted: u64,
    pub(crate) redelivered: u64,
    pub(crate) log: Vec<DeliveryRecord>,
    /// Every delivery by id, as first sent (GitHub keeps them for redelivery too).
    pub(crate) stored: HashMap<String, Delivery>,
}

impl WebhookControl {
    fn record(&mut self, id: &str, delivery: &Delivery) -> DeliveryRecord {
        DeliveryRecord {
            delivery_id: id.to_owned(),
            event: delivery.event,
            action: delivery.action.clone(),
            job_id: delivery.job_id,
            status_code: None,
            error: None,
            dropped: false,
            duplicate: false,
            redelivery: delivery.redelivery_of.is_some(),
            corrupted: false,
            content_type: delivery.content_type.as_str(),
        }
    }
}

impl World {
    /// Queues a `workflow_job` delivery describing the job as it is now.
    pub(crate) fn emit_job_event(&mut self, job_id: u64, action: &str) {
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        let Some(repo) = self.repos.get(&job.repo_key) else {
            return;
        };
        let owner = self.owners.get(&repo.owner_key);
        let mut payload = json!({
            "action": action,
            "workflow_job": github_json::job(self, job),
            "repository": github_json::repository(self, repo),
            "sender": github_json::sender(self),
        });
        let (target_type, target_id) = match owner {
            Some(org) if org.is_org => {
                payload["organization"] = github_json::organization(self, org);
                ("organization", org.id)
            }
            _ => ("repository", repo.id),
        };
        let content_type = self.settings.webhook_content_type;
        self.outbox.send(Delivery {
            event: "workflow_job",
            action: Some(action.to_owned()),
            job_id: Some(job_id),
            target_type,
            target_id,
            content_type,
            body: encode_body(&payload, content_type),
            redelivery_of: None,
        });
    }

    /// Queues the `ping` sent when the hook starts (its `hook.config.content_type` says how
    /// bodies are encoded).
    pub(crate) fn emit_ping(&mut self, hook_url: &str) {
        let content_type = self.settings.webhook_content_type;
        let payload = json!({
            "zen": "Design for failure.",
            "hook_id": HOOK_ID,
            "hook": {
                "type": "Organization",
                "id": HOOK_ID,
                "name": "web",
                "active": true,
                "events": ["workflow_job"],
                "config": {"content_type": content_type.as_str(), "insecure_ssl": "0", "url": hook_url},
            },
            "sender": github_json::sender(self),
        });
        self.outbox.send(Delivery {
            event: "ping",
            action: None,
            job_id: None,
            target_type: "integration",
            target_id: HOOK_ID,
            content_type,
            body: encode_body(&payload, content_type),
            redelivery_of: None,
        });
    }

    /// Queues a redelivery of `delivery_id`: the same body, the same `X-GitHub-Delivery`,
    /// fresh signatures. Returns the delivery's first record; `None` for an unknown id.
    pub(crate) fn redeliver(&mut self, delivery_id: &str) -> Option<DeliveryRecord> {
        let stored = self.webhooks.stored.get(delivery_id)?;
        let again = Delivery {
            redelivery_of: Some(delivery_id.to_owned()),
            ..stored.clone()
        };
        let record = self
            .webhooks
            .log
            .iter()
            .find(|r| r.delivery_id == delivery_id)
            .cloned();
        self.outbox.send(again);
        record
    }
}

/// Sends deliveries one after another (so each job's events keep their order) until
/// `cancel` fires; failures are recorded and not retried, as GitHub does.
pub(crate) async fn deliver_all(
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    world: Arc<Mutex<World>>,
    url: String,
    secret: Option<SecretString>,
    cancel: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(DELIVERY_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client");
            return;
        }
    };
    loop {
        let delivery = tokio::select! {
            () = cancel.cancelled() => return,
            next = rx.recv() => match next {
                Some(delivery) => delivery,
                None => return,
            },
        };
        let delivery_id = delivery
            .redelivery_of
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let sends = {
            let mut world = world.lock().unwrap_or_else(|e| e.into_inner());
            let control = &mut world.webhooks;
            if delivery.redelivery_of.is_some() {
                control.redelivered += 1;
            } else {
                control.stored.insert(delivery_id.clone(), delivery.clone());
            }
            if control.drop_next > 0 {
                control.drop_next -= 1;
                control.dropped += 1;
                let record = DeliveryRecord {
                    error: Some("dropped".to_owned()),
                    dropped: true,
                    ..control.record(&delivery_id, &delivery)
                };
                control.log.push(record);
                0
            } else if control.duplicate_next > 0 {
                control.duplicate_next -= 1;
                control.duplicated += 1;
                2
            } else {
                1
            }
        };
        for attempt in 0..sends {
            let corrupt = {
                let mut world = world.lock().unwrap_or_else(|e| e.into_inner());
                let control = &mut world.webhooks;
                let corrupt = control.corrupt_next > 0;
                if corrupt {
                    control.corrupt_next -= 1;
                    control.corrupted += 1;
                }
                corrupt
            };
            let mut request = client
                .post(&url)
                .header("content-type", delivery.content_type.mime())
                .header("user-agent", "GitHub-Hookshot/sim")
                .header("x-github-event", delivery.event)
                .header("x-github-delivery", &delivery_id)
                .header("x-github-hook-id", HOOK_ID.to_string())
                .header(
                    "x-github-hook-installation-target-type",
                    delivery.target_type,
                )
                .header(
                    "x-github-hook-installation-target-id",
                    delivery.target_id.to_string(),
                )
                .body(delivery.body.clone());
            if let Some(secret) = &secret {
                let key = secret.expose_secret().as_bytes();
                // A proxy that altered the body: signatures of other bytes.
                let signed: &[u8] = if corrupt {
                    b"altered in transit"
                } else {
                    &delivery.body
                };
                request = request
                    .header("x-hub-signature-256", sign_webhook(key, signed))
                    .header("x-hub-signature", sign_webhook_sha1(key, signed));
            }
            let result = tokio::select! {
                () = cancel.cancelled() => return,
                result = request.send() => result,
            };
            let (status_code, error) = match result {
                Ok(response) => (Some(response.status().as_u16()), None),
                Err(error) => (None, Some(error.to_string())),
            };
            let ok = status_code.is_some_and(|s| (200..300).contains(&s));
            tracing::debug!(event = delivery.event, delivery = %delivery_id, ?status_code, "webhook delivered");
            let mut world = world.lock().unwrap_or_else(|e| e.into_inner());
            let control = &mut world.webhooks;
            if ok {
                control.sent += 1;
            } else {
                control.failed += 1;
            }
            let record = DeliveryRecord {
                status_code,
                error,
                duplicate: attempt > 0,
                corrupted: corrupt,
                ..control.record(&delivery_id, &delivery)
            };
            control.log.push(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_githubs_published_vector() {
        assert_eq!(
            sign_webhook(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        // RFC 2202 test case 2 (HMAC-SHA1).
        assert_eq!(
            sign_webhook_sha1(b"Jefe", b"what do ya want for nothing?"),
            "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn form_bodies_carry_the_json_in_one_percent_encoded_field() {
        let payload = json!({"a": "b c&d"});
        let body = encode_body(&payload, WebhookContentType::Form);
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.starts_with("payload=%7B%22a%22"), "{text}");
        let fields: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        assert_eq!(fields.len(), 1);
        assert_eq!(
            serde_json::from_str::<Value>(&fields[0].1).unwrap(),
            payload
        );
        assert_eq!(
            encode_body(&payload, WebhookContentType::Json),
            br#"{"a":"b c&d"}"#
        );
    }
}
