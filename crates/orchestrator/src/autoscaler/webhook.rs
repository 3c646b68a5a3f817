//! GitHub webhook deliveries: the signature check (HMAC-SHA256 over the raw
//! body, compared in constant time), the two ways GitHub encodes a payload
//! (the webhook's *Content type* setting), and the `workflow_job` payload.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde::de::DeserializeOwned;
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

/// How a delivery's body carries its JSON payload. GitHub's webhook setting
/// *Content type* chooses; a new webhook defaults to the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// `application/json`: the body is the payload.
    Json,
    /// `application/x-www-form-urlencoded`: the payload is the body's
    /// percent-encoded `payload` field.
    Form,
}

impl PayloadFormat {
    /// Reads a `Content-Type` value (parameters such as `charset` allowed);
    /// `None` for any other media type, or none at all.
    pub fn from_content_type(value: Option<&str>) -> Option<Self> {
        let media: mime::Mime = value?.parse().ok()?;
        match (media.type_(), media.subtype()) {
            (mime::APPLICATION, mime::JSON) => Some(PayloadFormat::Json),
            (mime::APPLICATION, mime::WWW_FORM_URLENCODED) => Some(PayloadFormat::Form),
            _ => None,
        }
    }

    /// Decodes a payload of type `T` from a body in this format. Only after
    /// the signature was checked over the body as sent.
    ///
    /// # Errors
    ///
    /// [`PayloadError`] when the form has no `payload` field or the JSON is
    /// not a `T`.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, PayloadError> {
        // serde_path_to_error names the field at fault (`workflow_job.id`),
        // as axum's `Json` does for the API's bodies.
        match self {
            PayloadFormat::Json => Ok(serde_path_to_error::deserialize(
                &mut serde_json::Deserializer::from_slice(body),
            )?),
            PayloadFormat::Form => {
                let form: FormBody = serde_urlencoded::from_bytes(body)?;
                Ok(serde_path_to_error::deserialize(
                    &mut serde_json::Deserializer::from_str(&form.payload),
                )?)
            }
        }
    }
}

/// A form-encoded delivery: the JSON payload in one field.
#[derive(Debug, Deserialize)]
struct FormBody {
    payload: String,
}

/// Why a signed delivery's payload could not be read. Its message is in
/// the API's words (see [`service_kit::rejection`]), not serde's: it is the
/// answer GitHub shows under the webhook's *Recent Deliveries*.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The form body is not URL-encoded or has no `payload` field.
    #[error(
        "the form {} (GitHub puts the JSON payload in its `payload` field)",
        service_kit::rejection::reword(&.0.to_string())
    )]
    Form(#[from] serde_urlencoded::de::Error),
    /// The JSON is not what the event should carry.
    #[error("{}", json_fault(.0))]
    Json(#[from] serde_path_to_error::Error<serde_json::Error>),
}

/// serde_json's error, with the field path in front, in the API's words.
fn json_fault(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    use service_kit::rejection::{JsonFault, json_document};
    let fault = match error.inner().classify() {
        serde_json::error::Category::Data => JsonFault::Shape,
        _ => JsonFault::Syntax,
    };
    json_document("the payload", fault, &error.to_string())
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

    const JOB: &str = r#"{"action":"queued","workflow_job":{"id":7,"status":"queued","labels":["self-hosted","linux"]},"repository":{"full_name":"acme/app"}}"#;

    #[test]
    fn both_of_githubs_content_types_are_read_with_or_without_parameters() {
        use PayloadFormat::{Form, Json};
        for (value, format) in [
            ("application/json", Some(Json)),
            ("application/json; charset=utf-8", Some(Json)),
            ("Application/JSON;charset=UTF-8", Some(Json)),
            ("application/x-www-form-urlencoded", Some(Form)),
            (
                "application/x-www-form-urlencoded; charset=utf-8",
                Some(Form),
            ),
            ("text/plain", None),
            ("application/jsonp", None),
            ("multipart/form-data; boundary=x", None),
            ("", None),
            ("not a media type", None),
        ] {
            assert_eq!(
                PayloadFormat::from_content_type(Some(value)),
                format,
                "{value}"
            );
        }
        assert_eq!(PayloadFormat::from_content_type(None), None);
    }

    #[test]
    fn a_form_delivery_decodes_to_the_same_payload_as_json() {
        let from_json: WorkflowJobEvent = PayloadFormat::Json.decode(JOB.as_bytes()).unwrap();
        let form = serde_urlencoded::to_string([("payload", JOB)]).unwrap();
        assert!(form.starts_with("payload=%7B%22action%22"), "{form}");
        let from_form: WorkflowJobEvent = PayloadFormat::Form.decode(form.as_bytes()).unwrap();
        for event in [from_json, from_form] {
            assert_eq!(event.action, "queued");
            assert_eq!(event.workflow_job.id, 7);
            assert_eq!(event.workflow_job.labels, ["self-hosted", "linux"]);
            assert_eq!(event.repository.full_name, "acme/app");
        }
    }

    #[test]
    fn a_form_without_a_payload_or_with_bad_json_is_refused() {
        let missing = PayloadFormat::Form
            .decode::<WorkflowJobEvent>(b"other=1")
            .unwrap_err();
        assert!(matches!(missing, PayloadError::Form(_)), "{missing}");
        assert!(missing.to_string().contains("payload"), "{missing}");
        let bad_json = PayloadFormat::Form
            .decode::<WorkflowJobEvent>(b"payload=%7Bnope")
            .unwrap_err();
        assert!(matches!(bad_json, PayloadError::Json(_)), "{bad_json}");
        assert_eq!(
            missing.to_string(),
            "the form needs `payload` (GitHub puts the JSON payload in its `payload` field)"
        );
        assert_eq!(
            bad_json.to_string(),
            "the payload is not valid JSON: key must be a string (line 1, column 2)"
        );
        // A JSON body sent as a form, or a form body sent as JSON, is unreadable.
        assert!(
            PayloadFormat::Form
                .decode::<WorkflowJobEvent>(JOB.as_bytes())
                .is_err()
        );
        let form = serde_urlencoded::to_string([("payload", JOB)]).unwrap();
        assert!(
            PayloadFormat::Json
                .decode::<WorkflowJobEvent>(form.as_bytes())
                .is_err()
        );
    }

    #[test]
    fn a_payload_of_the_wrong_shape_names_the_field_in_the_apis_words() {
        for (payload, message) in [
            (
                r#"{"action":"queued","workflow_job":{"status":"queued","labels":[]},"repository":{"full_name":"a/b"}}"#,
                "the payload needs `workflow_job.id` (line 1, column 65)",
            ),
            (
                r#"{"action":"queued","workflow_job":{"id":"seven","status":"queued","labels":[]},"repository":{"full_name":"a/b"}}"#,
                "the payload `workflow_job.id` must be a whole number from -9223372036854775808 to 9223372036854775807, not the string \"seven\" (line 1, column 47)",
            ),
            (
                r#"{"action":"queued","workflow_job":{"id":7,"#,
                "the payload is not valid JSON: it ends too early (line 1, column 42)",
            ),
        ] {
            let error = PayloadFormat::Json
                .decode::<WorkflowJobEvent>(payload.as_bytes())
                .unwrap_err();
            assert_eq!(error.to_string(), message, "{payload}");
        }
    }

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
