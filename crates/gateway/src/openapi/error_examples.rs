//! An example error body for each error status of each operation, so that
//! Swagger UI and ReDoc show, under 404, a 404's code and message, and not
//! one example for every status. The gateway's own answers are built by the
//! functions that make them ([`ApiError`]), so their examples cannot drift;
//! the orchestrator's are written as it words them.

use api_types::{ErrorBody, RUNNER_ID_RULE};
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::{OpenApi, RefOr};

use crate::error::ApiError;

/// The `ErrorBody` schema reference an error response's content points to.
const ERROR_BODY_REF: &str = "#/components/schemas/ErrorBody";

/// The examples of `status` in the operation `operation` (its handler's
/// name): `(summary, body)` pairs, the first the most common. Empty for a
/// status with no error body.
pub(super) fn error_examples(operation: &str, status: &str) -> Vec<(&'static str, ErrorBody)> {
    let orchestrator = |code: &str, message: &str| ErrorBody::new(code, message);
    let runner = "gha-runner-k3j9x2mq";
    match (operation, status) {
        (_, "401") if operation == "receive_github_webhook" => vec![(
            "Missing or wrong signature",
            orchestrator(
                "invalid_signature",
                "X-Hub-Signature-256 is missing or does not match the body",
            ),
        )],
        (_, "401") => vec![
            (
                "No key",
                own(ApiError::unauthorized(crate::auth::MISSING_KEY)),
            ),
            (
                "Wrong key",
                own(ApiError::unauthorized(crate::auth::WRONG_KEY)),
            ),
        ],
        ("create_runners", "400") => vec![
            (
                "Unreadable JSON",
                orchestrator(
                    "invalid_request",
                    "the body is not valid JSON: expected `,` or `}` (line 1, column 12)",
                ),
            ),
            (
                "Bad Idempotency-Key",
                orchestrator(
                    "invalid_request",
                    "an Idempotency-Key holds 1 to 255 printable ASCII characters (a UUID is a good choice)",
                ),
            ),
        ],
        ("list_runners", "400") => vec![(
            "Unknown filter or value",
            orchestrator(
                "invalid_request",
                "the query `state` must be one of starting, idle, busy, finished, failed, removing, not `sleeping`",
            ),
        )],
        ("get_runner" | "delete_runner", "400") => {
            vec![("Malformed id", own(ApiError::bad_request(RUNNER_ID_RULE)))]
        }
        ("receive_github_webhook", "400") => vec![(
            "Unreadable payload",
            orchestrator(
                "invalid_request",
                "unreadable workflow_job delivery: missing field `workflow_job` at line 1 column 42",
            ),
        )],
        ("receive_github_webhook", "404") => vec![(
            "Webhooks are off",
            orchestrator(
                "not_found",
                "webhooks are off: set GITHUB_WEBHOOK_SECRET to receive them",
            ),
        )],
        (_, "404") => vec![(
            "No such runner",
            orchestrator("not_found", &format!("runner {runner} does not exist")),
        )],
        ("delete_runner", "409") => vec![(
            "Busy",
            orchestrator(
                "runner_busy",
                &format!("runner {runner} is running a job; use ?force=true to remove it anyway"),
            ),
        )],
        (_, "409") => vec![(
            "No free slot",
            orchestrator(
                "capacity_exceeded",
                "only 1 of 10 runner slots are free (MAX_RUNNERS=10)",
            ),
        )],
        (_, "413") => vec![(
            "Body too large",
            own(ApiError::payload_too_large(1024 * 1024)),
        )],
        ("receive_github_webhook", "415") => vec![(
            "Not JSON nor a form",
            orchestrator(
                "unsupported_media_type",
                "webhook bodies must be application/json or application/x-www-form-urlencoded (GitHub's webhook setting 'Content type' chooses which; both work), not \"text/plain\"",
            ),
        )],
        (_, "415") => vec![(
            "Not JSON",
            orchestrator(
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
        )],
        (_, "422") => vec![
            (
                "Invalid request",
                orchestrator(
                    "invalid_request",
                    "count must be between 1 and 10 (MAX_RUNNERS), got 0",
                ),
            ),
            (
                "Wrong type",
                orchestrator(
                    "invalid_request",
                    "the body `count` must be a whole number from 0 to 4294967295, not the string \"two\" (line 1, column 15)",
                ),
            ),
            (
                "Image not allowed",
                orchestrator(
                    "image_not_allowed",
                    "image \"alpine:latest\" is not allowed (see RUNNER_IMAGE_ALLOWLIST)",
                ),
            ),
            (
                "Unknown repository",
                orchestrator(
                    "github_scope_not_found",
                    "GitHub knows no repository sandbox/missing that the configured token can see (or the runner group does not exist)",
                ),
            ),
            (
                "Idempotency-Key reused",
                orchestrator(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used in the last 24 hours for a create with another body; use a new key for a new request",
                ),
            ),
        ],
        (_, "429") => vec![(
            "Rate limit reached",
            own(crate::rate_limit::too_many_requests(1)),
        )],
        (_, "431") => vec![(
            "Headers too large",
            own(ApiError::request_headers_too_large()),
        )],
        (_, "500") => vec![(
            "No outcome",
            orchestrator(
                "internal_error",
                "the operation stopped without an outcome; GET /api/v1/runners shows what exists",
            ),
        )],
        (_, "502") => {
            let mut examples = vec![(
                "Orchestrator unreachable",
                own(ApiError::orchestrator_unreachable()),
            )];
            if matches!(operation, "create_runners" | "delete_runner") {
                examples.push((
                    "GitHub failed",
                    orchestrator(
                        "github_unauthorized",
                        "GitHub rejected the configured token (check GITHUB_TOKEN)",
                    ),
                ));
            }
            examples
        }
        ("receive_github_webhook", "503") => vec![(
            "Shutting down",
            orchestrator(
                "shutting_down",
                "the orchestrator is shutting down and takes no new runners",
            ),
        )],
        (_, "503") => vec![
            (
                "Docker unreachable",
                orchestrator(
                    "docker_unavailable",
                    "the Docker engine is not answering; retry shortly",
                ),
            ),
            (
                "GitHub rate limit",
                orchestrator(
                    "github_rate_limited",
                    "GitHub's core rate limit is reached; no such GitHub call is made for 120s",
                ),
            ),
        ],
        (_, "504") => vec![(
            "Orchestrator too slow",
            own(ApiError::orchestrator_timeout(30)),
        )],
        _ => Vec::new(),
    }
}

/// The body of one of the gateway's own answers.
fn own(error: ApiError) -> ErrorBody {
    ErrorBody::new(error.code, error.message)
}

/// Puts [`error_examples`] on every error response of `spec` whose body is
/// an `ErrorBody`: one `example`, or named `examples` where a status has
/// several causes.
pub(super) fn add(spec: &mut OpenApi) {
    for item in spec.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let id = operation.operation_id.clone().unwrap_or_default();
            for (status, response) in &mut operation.responses.responses {
                let RefOr::T(response) = response else {
                    continue;
                };
                let Some(RefOr::T(content)) = response.content.get_mut("application/json") else {
                    continue;
                };
                let is_error = matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location == ERROR_BODY_REF);
                if !is_error {
                    continue;
                }
                let mut examples = error_examples(&id, status);
                if examples.len() == 1 {
                    let (_, body) = examples.remove(0);
                    content.example = Some(serde_json::to_value(body).expect("plain JSON"));
                } else {
                    for (summary, body) in examples {
                        let example = ExampleBuilder::new()
                            .summary(summary)
                            .value(Some(serde_json::to_value(body).expect("plain JSON")))
                            .build();
                        content
                            .examples
                            .insert(summary.to_owned(), RefOr::T(example));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    /// The codes an answer of each status may carry.
    fn codes_of(status: &str) -> &'static [&'static str] {
        match status {
            "400" => &["invalid_request"],
            "401" => &["unauthorized", "invalid_signature"],
            "404" => &["not_found"],
            "409" => &["capacity_exceeded", "runner_busy"],
            "413" => &["payload_too_large"],
            "415" => &["unsupported_media_type"],
            "422" => &[
                "invalid_request",
                "image_not_allowed",
                "github_scope_not_found",
                "idempotency_key_reused",
            ],
            "429" => &["rate_limited"],
            "431" => &["request_headers_too_large"],
            "500" => &["internal_error"],
            "502" => &["orchestrator_unreachable", "github_unauthorized"],
            "503" => &["docker_unavailable", "github_rate_limited", "shutting_down"],
            "504" => &["orchestrator_timeout"],
            other => panic!("no codes listed for {other}"),
        }
    }

    #[test]
    fn every_error_status_has_its_own_examples_with_its_codes() {
        let spec = serde_json::to_value(crate::openapi_document()).unwrap();
        let mut checked = 0;
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let mut seen = BTreeSet::new();
                for (status, response) in operation["responses"].as_object().unwrap() {
                    let content = &response["content"]["application/json"];
                    if content["schema"]["$ref"] != super::ERROR_BODY_REF {
                        continue;
                    }
                    let bodies: Vec<&Value> = match content["examples"].as_object() {
                        Some(named) => named.values().map(|e| &e["value"]).collect(),
                        None => vec![&content["example"]],
                    };
                    assert!(
                        !bodies.is_empty() && bodies.iter().all(|b| b.is_object()),
                        "{method} {path} {status}: no example"
                    );
                    for body in bodies {
                        let code = body["error"]["code"].as_str().unwrap();
                        let message = body["error"]["message"].as_str().unwrap();
                        assert!(
                            codes_of(status).contains(&code),
                            "{method} {path} {status}: code {code}"
                        );
                        assert!(
                            seen.insert(message.to_owned()),
                            "{method} {path}: {message:?} under two statuses"
                        );
                        checked += 1;
                    }
                }
            }
        }
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
