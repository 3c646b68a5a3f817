//! Webhook deliveries: payloads, HMAC signing, the ordered background sender, drop/duplicate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::github_json;
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

/// A delivery waiting to be sent.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) event: &'static str,
    pub(crate) action: Option<String>,
    pub(crate) job_id: Option<u64>,
    /// `X-GitHub-Hook-Installation-Target-Type`.
    pub(crate) target_type: &'static str,
    pub(crate) target_id: u64,
    pub(crate) body: Vec<u8>,
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
}

/// Drop/duplicate switches, counters and the delivery log.
#[derive(Debug, Default)]
pub(crate) struct WebhookControl {
    pub(crate) drop_next: u64,
    pub(crate) duplicate_next: u64,
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    pub(crate) dropped: u64,
    pub(crate) duplicated: u64,
    pub(crate) log: Vec<DeliveryRecord>,
}

fn sender() -> Value {
    json!({"login": "sim-user", "id": 1, "node_id": "U_sim1", "type": "User", "site_admin": false})
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
            "sender": sender(),
        });
        let (target_type, target_id) = match owner {
            Some(org) if org.is_org => {
                payload["organization"] = github_json::organization(self, org);
                ("organization", org.id)
            }
            _ => ("repository", repo.id),
        };
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        self.outbox.send(Delivery {
            event: "workflow_job",
            action: Some(action.to_owned()),
            job_id: Some(job_id),
            target_type,
            target_id,
            body,
        });
    }

    /// Queues the `ping` sent when the hook starts.
    pub(crate) fn emit_ping(&mut self, hook_url: &str) {
        let payload = json!({
            "zen": "Design for failure.",
            "hook_id": HOOK_ID,
            "hook": {
                "type": "Organization",
                "id": HOOK_ID,
                "name": "web",
                "active": true,
                "events": ["workflow_job"],
                "config": {"content_type": "json", "insecure_ssl": "0", "url": hook_url},
            },
            "sender": sender(),
        });
        self.outbox.send(Delivery {
            event: "ping",
            action: None,
            job_id: None,
            target_type: "integration",
            target_id: HOOK_ID,
            body: serde_json::to_vec(&payload).unwrap_or_default(),
        });
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
        let delivery_id = uuid::Uuid::new_v4().to_string();
        let sends = {
            let mut world = world.lock().unwrap_or_else(|e| e.into_inner());
            let control = &mut world.webhooks;
            if control.drop_next > 0 {
                control.drop_next -= 1;
                control.dropped += 1;
                control.log.push(DeliveryRecord {
                    delivery_id: delivery_id.clone(),
                    event: delivery.event,
                    action: delivery.action.clone(),
                    job_id: delivery.job_id,
                    status_code: None,
                    error: Some("dropped".to_owned()),
                    dropped: true,
                    duplicate: false,
                });
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
            let signature = secret
                .as_ref()
                .map(|s| sign_webhook(s.expose_secret().as_bytes(), &delivery.body));
            let mut request = client
                .post(&url)
                .header("content-type", "application/json")
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
            if let Some(signature) = signature {
                request = request.header("x-hub-signature-256", signature);
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
            control.log.push(DeliveryRecord {
                delivery_id: delivery_id.clone(),
                event: delivery.event,
                action: delivery.action.clone(),
                job_id: delivery.job_id,
                status_code,
                error,
                dropped: false,
                duplicate: attempt > 0,
            });
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
    }
}
