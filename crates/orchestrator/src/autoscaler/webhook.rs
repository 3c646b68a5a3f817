//! GitHub webhook deliveries: the signature check (HMAC-SHA256 over the raw
//! body, compared in constant time) and the `workflow_job` payload.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::github::WorkflowJob;

/// Checks `X-Hub-Signature-256` (`sha256=<hex>`) against the raw body.
pub fn signature_is_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).is_ok()
}

/// A `workflow_job` delivery, as far as we use it.
#[derive(Debug, Deserialize)]
pub struct WorkflowJobEvent {
    /// `queued`, `waiting`, `in_progress`, `completed`.
    pub action: String,
    /// The job.
    pub workflow_job: WorkflowJob,
    /// Its repository.
    pub repository: EventRepository,
}

/// The repository of a delivery.
#[derive(Debug, Deserialize)]
pub struct EventRepository {
    /// `owner/name`.
    pub full_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_published_vector_verifies() {
        let secret = b"It's a Secret to Everybody";
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_is_valid(secret, b"Hello, World!", Some(header)));
        assert!(!signature_is_valid(secret, b"Hello, World?", Some(header)));
        assert!(!signature_is_valid(
            b"other",
            b"Hello, World!",
            Some(header)
        ));
        assert!(!signature_is_valid(secret, b"Hello, World!", None));
        assert!(!signature_is_valid(
            secret,
            b"Hello, World!",
            Some("sha1=abc")
        ));
        assert!(!signature_is_valid(
            secret,
            b"Hello, World!",
            Some("sha256=zz")
        ));
    }
}
