//! axum's rejections of a request's JSON body, query string or path,
//! reworded in the API's own words: a client reads "`count` must be a whole
//! number from 0 to 4294967295, not the string \"two\"", never serde's
//! "invalid type: string \"two\", expected u32" or axum's "Failed to
//! deserialize the JSON body into the target type".
//!
//! The reason comes as text only: axum keeps serde's error (and the field
//! path `serde_path_to_error` found) behind its message, so the message is
//! what is reworded. Phrases not known here pass through unchanged.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;

/// A refused request, for a service to answer in its error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 413, 415 or 422.
    pub status: StatusCode,
    /// `invalid_request`, `payload_too_large` or `unsupported_media_type`.
    pub code: &'static str,
    /// What is wrong, in the API's words.
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            status,
            code,
            message,
        }
    }

    fn invalid(status: StatusCode, message: String) -> Self {
        Self::new(status, "invalid_request", message)
    }
}

/// A JSON body refused: 400 when it is not JSON, 422 when it is JSON of
/// the wrong shape, 413 when too large, 415 without a JSON content type.
pub fn json(rejection: &JsonRejection) -> Refusal {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => Refusal::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            json_document("the body", JsonFault::Shape, after_colon(&text)),
        ),
        JsonRejection::JsonSyntaxError(_) => Refusal::invalid(
            StatusCode::BAD_REQUEST,
            json_document("the body", JsonFault::Syntax, after_colon(&text)),
        ),
        JsonRejection::MissingJsonContentType(_) => Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json".into(),
        ),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large".into(),
        ),
        _ => Refusal::invalid(
            StatusCode::BAD_REQUEST,
            "the request body could not be read".into(),
        ),
    }
}

/// What is wrong with a JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFault {
    /// It is not JSON (serde_json's `Syntax` and `Eof` categories).
    Syntax,
    /// It is JSON of the wrong shape (serde_json's `Data` category).
    Shape,
}

/// serde_json's error about a JSON document the caller read itself (not
/// through axum's `Json`), in the words [`json`] uses for a body, with
/// `subject` ("the payload") as what the sentence is about: "the payload
/// needs `workflow_job.id` (line 1, column 42)", "the payload is not valid
/// JSON: it ends too early (line 1, column 60)". `error` is serde_json's
/// message, with the field path `serde_path_to_error` puts in front when
/// there is one.
pub fn json_document(subject: &str, fault: JsonFault, error: &str) -> String {
    match fault {
        JsonFault::Shape => format!("{subject} {}", reword(error)),
        JsonFault::Syntax => format!("{subject} is not valid JSON: {}", syntax(error)),
    }
}

/// A query string refused (400).
pub fn query(rejection: &QueryRejection) -> Refusal {
    let text = rejection.body_text();
    Refusal::invalid(
        StatusCode::BAD_REQUEST,
        format!("the query {}", reword(after_colon(&text))),
    )
}

/// A path refused (400).
pub fn path(rejection: &PathRejection) -> Refusal {
    let message = match rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => {
                format!("`{key}` in the path is not valid UTF-8 once percent-decoded")
            }
            ErrorKind::ParseErrorAtKey {
                key,
                value,
                expected_type,
            } => format!(
                "`{key}` in the path must be {}, not `{value}`",
                expected(expected_type)
            ),
            ErrorKind::ParseError {
                value,
                expected_type,
            }
            | ErrorKind::ParseErrorAtIndex {
                value,
                expected_type,
                ..
            } => format!(
                "the path must hold {}, not `{value}`",
                expected(expected_type)
            ),
            ErrorKind::DeserializeError { key, message, .. } => {
                format!("`{key}` in the path {}", reword(message))
            }
            _ => "the path is not valid".into(),
        },
        _ => "the path is not valid".into(),
    };
    Refusal::invalid(StatusCode::BAD_REQUEST, message)
}

/// What follows axum's "Failed to ...: " prefix.
fn after_colon(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, rest)| rest)
}

/// serde's message of a value of the wrong shape, as a predicate: "`count`
/// must be a whole number from 0 to 4294967295, not the string \"two\" (line
/// 1, column 14)". Its subject is the field path serde_path_to_error put in
/// front (`labels[0]`, `job.id`), or what the caller puts before.
pub fn reword(text: &str) -> String {
    let (text, position) = split_position(text);
    let (field, reason) = match text.split_once(": ") {
        Some((path, reason)) if !path.is_empty() && !path.contains(' ') && path != "." => {
            (Some(path), reason)
        }
        Some((".", reason)) => (None, reason),
        _ => (None, text),
    };
    let subject = |what: &str| match field {
        Some(path) => format!("`{path}` {what}"),
        None => what.to_owned(),
    };
    let within = |name: &str| match field {
        Some(path) => format!("`{path}.{name}`"),
        None => format!("`{name}`"),
    };
    let reworded = if let Some(rest) = reason
        .strip_prefix("invalid type: ")
        .or_else(|| reason.strip_prefix("invalid value: "))
    {
        match rest.split_once(", expected ") {
            Some((got, want)) => subject(&format!(
                "must be {}, not {}",
                expected(want),
                got_value(got)
            )),
            None => subject(&format!("is not valid: {rest}")),
        }
    } else if let Some(rest) = reason.strip_prefix("unknown variant ") {
        match rest.split_once(", expected ") {
            Some((got, want)) => subject(&format!("must be {}, not {got}", want.replace('`', ""))),
            None => subject(&format!("cannot be {rest}")),
        }
    } else if let Some(rest) = reason.strip_prefix("unknown field ") {
        match rest.split_once(", expected ") {
            Some((got, want)) => format!(
                "has no field {got}; {} {}",
                if want.starts_with("one of") {
                    "the fields are"
                } else {
                    "the field is"
                },
                want.trim_start_matches("one of ")
            ),
            None => format!("has no field {}", rest.split(',').next().unwrap_or(rest)),
        }
    } else if let Some(name) = reason.strip_prefix("missing field ") {
        format!("needs {}", within(name.trim_matches('`')))
    } else if let Some(name) = reason.strip_prefix("duplicate field ") {
        format!("gives {} twice", within(name.trim_matches('`')))
    } else {
        match reason {
            "invalid digit found in string" | "cannot parse integer from empty string" => {
                subject("must be a whole number")
            }
            "number too large to fit in target type" => subject("is too large"),
            "number too small to fit in target type" => subject("is too small"),
            "provided string was not `true` or `false`" => subject("must be true or false"),
            other => subject(&format!("is not valid: {other}")),
        }
    };
    format!("{reworded}{position}")
}

/// serde_json's syntax error ("expected `,` or `}` at line 1 column 12"),
/// with its position as "(line 1, column 12)".
fn syntax(text: &str) -> String {
    let (reason, position) = split_position(text);
    // The field path serde_path_to_error puts in front says little here.
    let reason = match reason.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => rest,
        _ => reason,
    };
    let reason = match reason {
        "EOF while parsing a value"
        | "EOF while parsing an object"
        | "EOF while parsing a list"
        | "EOF while parsing a string" => "it ends too early",
        "trailing characters" => "more follows the JSON value",
        "expected value" => "a value was expected",
        other => other,
    };
    format!("{reason}{position}")
}

/// `text` without serde_json's " at line L column C", and that position
/// as " (line L, column C)" (empty when there is none).
fn split_position(text: &str) -> (&str, String) {
    if let Some((reason, at)) = text.rsplit_once(" at line ")
        && let Some((line, column)) = at.split_once(" column ")
        && line.parse::<u64>().is_ok()
        && column.parse::<u64>().is_ok()
    {
        return (reason, format!(" (line {line}, column {column})"));
    }
    (text, String::new())
}

/// What serde says it expected, as a reader would say it.
fn expected(want: &str) -> String {
    macro_rules! whole {
        ($($t:ident),*) => {
            match want {
                $(stringify!($t) => return format!(
                    "a whole number from {} to {}", $t::MIN, $t::MAX
                ),)*
                _ => {}
            }
        };
    }
    whole!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);
    match want {
        "f32" | "f64" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a string" | "a borrowed string" | "String" | "string" => "a string".into(),
        "a sequence" => "a list".into(),
        "a map" => "an object".into(),
        "char" | "a character" => "one character".into(),
        other if other.starts_with("struct ") => "an object".into(),
        other => other.to_owned(),
    }
}

/// What serde says it got ("string \"two\"", "integer `-1`"), as a
/// reader would say it.
fn got_value(got: &str) -> String {
    let quoted = |prefix: &str| {
        got.strip_prefix(prefix)
            .map(|value| value.trim_matches('`').to_owned())
    };
    if let Some(value) = got.strip_prefix("string ") {
        return format!("the string {value}");
    }
    for prefix in ["integer ", "floating point ", "boolean ", "character "] {
        if let Some(value) = quoted(prefix) {
            return value;
        }
    }
    match got {
        "null" | "unit value" => "null".into(),
        "sequence" => "a list".into(),
        "map" => "an object".into(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::rejection::PathRejection;
    use axum::extract::{FromRequest, FromRequestParts, Path, Query};
    use axum::routing::get;
    use axum::{Json, Router};
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Create {
        count: u32,
        #[serde(default)]
        labels: Vec<String>,
        #[serde(default)]
        group: Option<i64>,
        #[serde(default)]
        state: Option<State>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum State {
        Idle,
        Busy,
    }

    async fn json_refusal(body: &str) -> Refusal {
        let request = axum::http::Request::builder()
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        let rejection = Json::<Create>::from_request(request, &())
            .await
            .unwrap_err();
        json(&rejection)
    }

    #[tokio::test]
    async fn json_bodies_are_refused_in_the_apis_words() {
        for (body, status, message) in [
            (
                r#"{"count": "two"}"#,
                422,
                "the body `count` must be a whole number from 0 to 4294967295, not the string \"two\" (line 1, column 15)",
            ),
            (
                r#"{"count": -1}"#,
                422,
                "the body `count` must be a whole number from 0 to 4294967295, not -1 (line 1, column 12)",
            ),
            (
                r#"{"count": 1, "labels": [1]}"#,
                422,
                "the body `labels[0]` must be a string, not 1 (line 1, column 25)",
            ),
            (
                r#"{"count": 1, "labels": "gpu"}"#,
                422,
                "the body `labels` must be a list, not the string \"gpu\" (line 1, column 28)",
            ),
            (
                r#"{"count": 1, "state": "asleep"}"#,
                422,
                "the body `state` must be idle or busy, not `asleep` (line 1, column 30)",
            ),
            (
                r#"{"count": 1, "colour": "red"}"#,
                422,
                "the body has no field `colour`; the fields are `count`, `labels`, `group`, `state` (line 1, column 21)",
            ),
            (
                r#"{"labels": []}"#,
                422,
                "the body needs `count` (line 1, column 14)",
            ),
            (
                r#""x""#,
                422,
                "the body must be an object, not the string \"x\" (line 1, column 3)",
            ),
            (
                r#"{"count": 1,"#,
                400,
                "the body is not valid JSON: it ends too early (line 1, column 12)",
            ),
            (
                r#"{"count": "#,
                400,
                "the body is not valid JSON: it ends too early (line 1, column 10)",
            ),
            (
                r#"{"count" 1}"#,
                400,
                "the body is not valid JSON: expected `:` (line 1, column 10)",
            ),
        ] {
            let refusal = json_refusal(body).await;
            assert_eq!(refusal.status.as_u16(), status, "{body}: {refusal:?}");
            assert_eq!(refusal.code, "invalid_request");
            assert_eq!(refusal.message, message, "{body}");
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct List {
        state: Option<State>,
        #[serde(default)]
        force: bool,
        limit: Option<u32>,
    }

    async fn query_refusal(query: &str) -> String {
        let (mut parts, ()) = axum::http::Request::builder()
            .uri(format!("/x?{query}"))
            .body(())
            .unwrap()
            .into_parts();
        let rejection = Query::<List>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        query_refusal_message(&rejection)
    }

    fn query_refusal_message(rejection: &QueryRejection) -> String {
        let refusal = query(rejection);
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        refusal.message
    }

    #[tokio::test]
    async fn queries_are_refused_in_the_apis_words() {
        for (query, message) in [
            (
                "state=asleep",
                "the query `state` must be idle or busy, not `asleep`",
            ),
            ("force=yes", "the query `force` must be true or false"),
            ("limit=ten", "the query `limit` must be a whole number"),
            (
                "colour=red",
                "the query has no field `colour`; the fields are `state`, `force`, `limit`",
            ),
        ] {
            assert_eq!(query_refusal(query).await, message, "{query}");
        }
    }

    #[tokio::test]
    async fn paths_are_refused_in_the_apis_words() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;

        async fn handler(id: Result<Path<u32>, PathRejection>) -> String {
            id.map_or_else(|r| path(&r).message, |_| "ok".into())
        }
        let app: Router = Router::new().route("/runners/{id}", get(handler));
        let request = axum::http::Request::builder()
            .uri("/runners/abc")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            body,
            "the path must hold a whole number from 0 to 4294967295, not `abc`"
        );
    }

    #[test]
    fn documents_read_by_hand_are_worded_as_bodies_are() {
        assert_eq!(
            json_document(
                "the payload",
                JsonFault::Shape,
                "workflow_job: missing field `id` at line 1 column 42"
            ),
            "the payload needs `workflow_job.id` (line 1, column 42)"
        );
        assert_eq!(
            json_document(
                "the payload",
                JsonFault::Syntax,
                "EOF while parsing a string at line 1 column 60"
            ),
            "the payload is not valid JSON: it ends too early (line 1, column 60)"
        );
    }

    #[test]
    fn messages_without_a_known_phrase_pass_through() {
        assert_eq!(
            reword("count: something odd"),
            "`count` is not valid: something odd"
        );
        assert_eq!(
            syntax("key must be a string at line 1 column 2"),
            "key must be a string (line 1, column 2)"
        );
    }
}
