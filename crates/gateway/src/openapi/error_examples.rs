//! An example error body for each error status of each operation, so that
//! Swagger UI and ReDoc show, under 404, a 404's code and message, and not
//! one example for every status. The gateway's own answers are built by the
//! functions that make them ([`ApiError`]), so their examples cannot drift;
//! the orchestrator's come from the table both documents share
//! ([`api_types::error_examples`]).

use api_types::ErrorBody;
use api_types::error_examples::{self, ErrorExample};
use utoipa::openapi::OpenApi;

use crate::error::ApiError;

/// The examples of `status` in the operation `operation` (its handler's
/// name): `(summary, body)` pairs, the first the most common. Empty for a
/// status with no error body.
pub(super) fn error_examples(operation: &str, status: &str) -> Vec<ErrorExample> {
    let orchestrator = || error_examples::orchestrator(operation, status);
    match status {
        "401" if operation != "receive_github_webhook" => vec![
            (
                "No key",
                own(ApiError::unauthorized(crate::auth::MISSING_KEY)),
            ),
            (
                "Wrong key",
                own(ApiError::unauthorized(crate::auth::WRONG_KEY)),
            ),
        ],
        "413" => vec![(
            "Body too large",
            own(ApiError::payload_too_large(1024 * 1024)),
        )],
        "429" => vec![(
            "Rate limit reached",
            own(crate::rate_limit::too_many_requests(1)),
        )],
        "431" => vec![(
            "Headers too large",
            own(ApiError::request_headers_too_large()),
        )],
        "502" => {
            let mut examples = vec![(
                "Orchestrator unreachable",
                own(ApiError::orchestrator_unreachable()),
            )];
            examples.extend(orchestrator());
            examples
        }
        "504" => vec![(
            "Orchestrator too slow",
            own(ApiError::orchestrator_timeout(30)),
        )],
        _ => orchestrator(),
    }
}

/// The body of one of the gateway's own answers.
fn own(error: ApiError) -> ErrorBody {
    ErrorBody::new(error.code, error.message)
}

/// Puts [`error_examples`] on every error response of `spec` whose body is
/// an `ErrorBody`.
pub(super) fn add(spec: &mut OpenApi) {
    error_examples::add(spec, error_examples);
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_error_status_has_its_own_examples_with_its_codes() {
        let spec = serde_json::to_value(crate::openapi_document()).unwrap();
        let checked = api_types::error_examples::check(&spec).unwrap();
        assert!(checked > 40, "only {checked} examples");
    }

    #[test]
    fn the_document_names_only_public_paths() {
        let text = serde_json::to_string(&crate::openapi_document()).unwrap();
        for internal in ["/runners", "/webhooks/github"] {
            for (at, _) in text.match_indices(internal) {
                let before = &text[..at];
                assert!(
                    before.ends_with("/api/v1") || before.ends_with("/api/v1/runners"),
                    "an orchestrator path in the document: …{}",
                    &text[at.saturating_sub(60)..(at + 40).min(text.len())]
                );
            }
        }
        assert!(!text.contains(":8000"), "the orchestrator's port");
    }

    #[test]
    fn the_create_example_is_the_sandbox_repository() {
        let spec = serde_json::to_value(crate::openapi_document()).unwrap();
        let example = &spec["components"]["schemas"]["CreateRunnersRequest"]["example"];
        assert_eq!(example["repository"], "sandbox/app");
        let request: api_types::CreateRunnersRequest =
            serde_json::from_value(example.clone()).unwrap();
        assert_eq!(request.count, 1);
    }
}
