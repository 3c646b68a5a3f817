//! An example error body for each error status of each operation, for
//! both OpenAPI documents: Swagger UI and ReDoc then show, under 404, a
//! 404's code and message, and not one example for every status.
//!
//! [`orchestrator`] is the table of the orchestrator's answers, as it words
//! them (its tests check the wording against the code that makes it); the
//! gateway puts its own answers (API keys, rate limit, an unreachable
//! orchestrator) in front of it. [`add`] writes a table into a document, and
//! [`check`] is the test both services run on their document.

use std::collections::BTreeSet;

use serde_json::Value;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::{OpenApi, RefOr};

use crate::{ErrorBody, RUNNER_ID_RULE};

/// The `ErrorBody` schema reference an error response's content points to.
pub const ERROR_BODY_REF: &str = "#/components/schemas/ErrorBody";

/// One example: a short summary (the name ReDoc and Swagger UI show) and
/// the body.
pub type ErrorExample = (&'static str, ErrorBody);

/// The runner the examples name.
const RUNNER: &str = "gha-runner-k3j9x2mq";

/// The orchestrator's answers of `status` in the operation `operation`
/// (its handler's name, the gateway's or the orchestrator's: `get_runner`
/// and `get_runner_status` are one operation), the most common first.
/// Empty for a status the orchestrator does not answer there.
pub fn orchestrator(operation: &str, status: &str) -> Vec<ErrorExample> {
    match (operation, status) {
        ("receive_github_webhook", "401") => vec![(
            "Missing or wrong signature",
            body(
                "invalid_signature",
                "X-Hub-Signature-256 is missing or does not match the body",
            ),
        )],
        ("create_runners", "400") => vec![
            (
                "Unreadable JSON",
                body(
                    "invalid_request",
                    "the body is not valid JSON: expected `,` or `}` (line 1, column 12)",
                ),
            ),
            (
                "Bad Idempotency-Key",
                body(
                    "invalid_request",
                    "an Idempotency-Key holds 1 to 255 printable ASCII characters (a UUID is a good choice)",
                ),
            ),
        ],
        ("list_runners", "400") => vec![(
            "Unknown filter or value",
            body(
                "invalid_request",
                "the query `state` must be one of starting, idle, busy, finished, failed, removing, not `sleeping`",
            ),
        )],
        ("get_runner" | "get_runner_status", "400") => {
            vec![("Malformed id", body("invalid_request", RUNNER_ID_RULE))]
        }
        ("delete_runner", "400") => vec![
            ("Malformed id", body("invalid_request", RUNNER_ID_RULE)),
            (
                "Malformed query",
                body("invalid_request", "the query `force` must be true or false"),
            ),
        ],
        ("receive_github_webhook", "400") => vec![
            (
                "Payload of the wrong shape",
                body(
                    "invalid_request",
                    "unreadable workflow_job delivery: the payload needs `workflow_job.id` (line 1, column 65)",
                ),
            ),
            (
                "Form without a payload",
                body(
                    "invalid_request",
                    "unreadable workflow_job delivery: the form needs `payload` (GitHub puts the JSON payload in its `payload` field)",
                ),
            ),
        ],
        ("receive_github_webhook", "404") => vec![(
            "Webhooks are off",
            body(
                "not_found",
                "webhooks are off: set GITHUB_WEBHOOK_SECRET to receive them",
            ),
        )],
        (_, "404") => vec![(
            "No such runner",
            body("not_found", format!("runner {RUNNER} does not exist")),
        )],
        ("delete_runner", "409") => vec![(
            "Busy",
            body(
                "runner_busy",
                format!("runner {RUNNER} is running a job; use ?force=true to remove it anyway"),
            ),
        )],
        ("reload_pools", "409") => vec![(
            "No pools file",
            body(
                "no_pools_file",
                "no pools file is configured (RUNNER_POOLS_FILE): the variables define the one pool, and a restart reads them",
            ),
        )],
        ("reload_pools", "422") => vec![(
            "Bad pools file",
            body(
                "invalid_pools_file",
                "RUNNER_POOLS_FILE /etc/gha-runners/pools/pools.toml: pool \"large\": min_idle: 5 is above max (2): the warm pool could never be filled; the pools in force are kept",
            ),
        )],
        (_, "409") => vec![
            (
                "No free slot",
                body(
                    "capacity_exceeded",
                    "only 1 of 10 runner slots are free (MAX_RUNNERS=10)",
                ),
            ),
            (
                "Pool at its max",
                body(
                    "capacity_exceeded",
                    "only 0 of pool \"large\"'s 2 runner slots are free (its max)",
                ),
            ),
        ],
        (_, "413") => vec![(
            "Body too large",
            body("payload_too_large", "the request body is too large"),
        )],
        ("receive_github_webhook", "415") => vec![(
            "Not JSON nor a form",
            body(
                "unsupported_media_type",
                "webhook bodies must be application/json or application/x-www-form-urlencoded (GitHub's webhook setting 'Content type' chooses which; both work), not \"text/plain\"",
            ),
        )],
        (_, "415") => vec![(
            "Not JSON",
            body(
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
        )],
        (_, "422") => vec![
            (
                "Invalid request",
                body(
                    "invalid_request",
                    "count must be between 1 and 10 (MAX_RUNNERS), got 0",
                ),
            ),
            (
                "Wrong type",
                body(
                    "invalid_request",
                    "the body `count` must be a whole number from 0 to 4294967295, not the string \"two\" (line 1, column 15)",
                ),
            ),
            (
                "Image not allowed",
                body(
                    "image_not_allowed",
                    "image \"alpine:latest\" is not allowed (see RUNNER_IMAGE_ALLOWLIST)",
                ),
            ),
            (
                "Unknown repository",
                body(
                    "github_scope_not_found",
                    "GitHub knows no repository sandbox/missing that the configured token can see (or the runner group does not exist)",
                ),
            ),
            (
                "Idempotency-Key reused",
                body(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used in the last 24 hours for a create with another body; use a new key for a new request",
                ),
            ),
            (
                "GitHub App not installed",
                body(
                    "github_app_not_installed",
                    "the GitHub App (GITHUB_APP_ID) is not installed on the owner of repository sandbox/other, or its installation cannot see it: install the App on that account with access to the repository (the account's Settings, GitHub Apps)",
                ),
            ),
            (
                "Unknown pool",
                body(
                    "invalid_request",
                    "pool \"huge\" does not exist; the pools are small, large, node",
                ),
            ),
        ],
        (_, "500") => vec![(
            "No outcome",
            body(
                "internal_error",
                "the operation stopped without an outcome; GET /api/v1/runners shows what exists",
            ),
        )],
        ("create_runners" | "delete_runner", "502") => vec![
            (
                "GitHub failed",
                body(
                    "github_unauthorized",
                    "GitHub rejected the configured token (check GITHUB_TOKEN)",
                ),
            ),
            (
                "GitHub App refused",
                body(
                    "github_app_rejected",
                    "GitHub refused the GitHub App 123456's JWT (A JSON web token could not be decoded): check that GITHUB_APP_ID is the App's id or client id and that GITHUB_APP_PRIVATE_KEY_FILE holds a current private key of that App",
                ),
            ),
            (
                "Runner's Docker engine did not start",
                body(
                    "docker_engine_failed",
                    "runner gha-runner-x1y2z3a4b5: its Docker engine (image docker:dind) exited with code 1 while starting; its last lines are in the orchestrator's log",
                ),
            ),
        ],
        ("receive_github_webhook", "503") => vec![(
            "Shutting down",
            body(
                "shutting_down",
                "the orchestrator is shutting down and takes no new runners",
            ),
        )],
        ("readyz", "503") => vec![(
            "Docker unreachable",
            body(
                "docker_unavailable",
                "the Docker engine is unreachable (version): no answer within 10s",
            ),
        )],
        (_, "503") => vec![
            (
                "Docker unreachable",
                body(
                    "docker_unavailable",
                    "the Docker engine is unreachable (create container): no answer within 10s",
                ),
            ),
            (
                "GitHub rate limit",
                body(
                    "github_rate_limited",
                    "GitHub's core rate limit is reached; no such GitHub call is made for 120s",
                ),
            ),
        ],
        _ => Vec::new(),
    }
}

fn body(code: &str, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}

/// Puts the examples `examples(operation, status)` gives on every error
/// response of `spec` whose body is an `ErrorBody`: one `example`, or named
/// `examples` where a status has several causes.
pub fn add(spec: &mut OpenApi, examples: impl Fn(&str, &str) -> Vec<ErrorExample>) {
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
                let mut examples = examples(&id, status);
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

/// The codes an answer of each status may carry, from either service.
fn codes_of(status: &str) -> Option<&'static [&'static str]> {
    Some(match status {
        "400" => &["invalid_request"],
        "401" => &["unauthorized", "invalid_signature"],
        "404" => &["not_found"],
        "409" => &["capacity_exceeded", "runner_busy", "no_pools_file"],
        "413" => &["payload_too_large"],
        "415" => &["unsupported_media_type"],
        "422" => &[
            "invalid_request",
            "image_not_allowed",
            "github_scope_not_found",
            "idempotency_key_reused",
            "github_app_not_installed",
            "invalid_pools_file",
        ],
        "429" => &["rate_limited"],
        "431" => &["request_headers_too_large"],
        "500" => &["internal_error"],
        "502" => &[
            "orchestrator_unreachable",
            "github_unauthorized",
            "github_app_rejected",
            "docker_engine_failed",
        ],
        "503" => &["docker_unavailable", "github_rate_limited", "shutting_down"],
        "504" => &["orchestrator_timeout"],
        _ => return None,
    })
}

/// Checks a document as served (its JSON): every error response with an
/// `ErrorBody` has at least one example, each example's code is one its
/// status may carry, and no message of an operation is listed under two
/// statuses. Returns how many examples it read.
///
/// # Errors
/// The first fault found, naming the operation and the status.
pub fn check(spec: &Value) -> Result<usize, String> {
    let mut checked = 0;
    let paths = spec["paths"]
        .as_object()
        .ok_or("the document has no paths")?;
    for (path, item) in paths {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let mut seen = BTreeSet::new();
            let responses = operation["responses"].as_object().into_iter().flatten();
            for (status, response) in responses {
                let content = &response["content"]["application/json"];
                if content["schema"]["$ref"] != ERROR_BODY_REF {
                    continue;
                }
                let at = format!("{method} {path} {status}");
                let bodies: Vec<&Value> = match content["examples"].as_object() {
                    Some(named) => named.values().map(|e| &e["value"]).collect(),
                    None => vec![&content["example"]],
                };
                if bodies.is_empty() || !bodies.iter().all(|b| b.is_object()) {
                    return Err(format!("{at}: no example"));
                }
                let codes = codes_of(status).ok_or(format!("{at}: no codes listed"))?;
                for body in bodies {
                    let code = body["error"]["code"].as_str().unwrap_or_default();
                    let message = body["error"]["message"].as_str().unwrap_or_default();
                    if !codes.contains(&code) {
                        return Err(format!("{at}: code {code:?}"));
                    }
                    if message.is_empty() || !seen.insert(message.to_owned()) {
                        return Err(format!("{at}: message {message:?} empty or seen before"));
                    }
                    checked += 1;
                }
            }
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_carries_a_code_of_its_status() {
        let operations = [
            "create_runners",
            "list_runners",
            "get_runner",
            "get_runner_status",
            "delete_runner",
            "cleanup_runners",
            "receive_github_webhook",
            "readyz",
            "list_pools",
            "reload_pools",
        ];
        for operation in operations {
            for status in [
                "400", "401", "404", "409", "413", "415", "422", "500", "502", "503",
            ] {
                for (summary, body) in orchestrator(operation, status) {
                    let codes = codes_of(status).unwrap();
                    assert!(
                        codes.contains(&body.error.code.as_str()),
                        "{operation} {status} {summary}: {}",
                        body.error.code
                    );
                }
            }
        }
    }

    #[test]
    fn the_examples_speak_the_apis_words_and_name_public_paths() {
        for status in [
            "400", "404", "409", "413", "415", "422", "500", "502", "503",
        ] {
            for (_, body) in orchestrator("create_runners", status)
                .into_iter()
                .chain(orchestrator("receive_github_webhook", status))
            {
                let message = &body.error.message;
                for foreign in [" at line ", "invalid type", "missing field", "GET /runners"] {
                    assert!(!message.contains(foreign), "{foreign:?} in {message:?}");
                }
            }
        }
    }
}
