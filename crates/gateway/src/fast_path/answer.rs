//! Writing the fast path's answers in HTTP/1.1, with the headers the full
//! stack's middleware adds to every answer: `x-ratelimit-limit` and
//! `x-ratelimit-remaining` (the rate limit), `x-request-id` (when the answer
//! has none), `Vary` (CORS, for requests without `Origin`) and `Date`
//! (hyper's, when the answer has none).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::upstream::AnswerHead;
use crate::cors::VARY;
use crate::proxy::HOP_BY_HOP;

/// What the middleware of the full stack adds to an answer.
pub(super) struct Added<'a> {
    /// `x-ratelimit-limit` and `x-ratelimit-remaining`, when the request
    /// took a token (not on the limiter's own 429).
    pub rate: Option<(u32, u32)>,
    /// The request's id.
    pub request_id: &'a HeaderValue,
}

/// `HTTP/1.1 {code} {reason}`, as hyper writes it.
pub(super) fn status_line(out: &mut Vec<u8>, code: u16) {
    let reason = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(b"HTTP/1.1 ");
    number(out, u64::from(code));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One header line.
pub(super) fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether an answer header is one [`Added`] replaces (the rate limit's).
pub(super) fn replaced(name: &str) -> bool {
    name.eq_ignore_ascii_case("x-ratelimit-limit")
        || name.eq_ignore_ascii_case("x-ratelimit-remaining")
}

/// The added headers, after the answer's own; `has_request_id` and
/// `has_date` say whether the answer already had those.
pub(super) fn added_lines(
    out: &mut Vec<u8>,
    added: &Added<'_>,
    has_request_id: bool,
    has_date: bool,
) {
    if let Some((limit, remaining)) = added.rate {
        number_line(out, b"x-ratelimit-limit", u64::from(limit));
        number_line(out, b"x-ratelimit-remaining", u64::from(remaining));
    }
    if !has_request_id {
        header_line(
            out,
            crate::REQUEST_ID.as_bytes(),
            added.request_id.as_bytes(),
        );
    }
    header_line(out, b"vary", VARY.as_bytes());
    if !has_date {
        let now = httpdate::fmt_http_date(std::time::SystemTime::now());
        header_line(out, b"date", now.as_bytes());
    }
}

/// The head of a relayed answer, but for its last empty line (and, when the
/// answer has no length, the `content-length` the caller adds once it has
/// read the body): the status line and the orchestrator's headers, minus
/// hop-by-hop ones (and those its `Connection` names), then [`Added`].
pub(super) fn relayed_head(out: &mut Vec<u8>, head: &AnswerHead<'_>, added: &Added<'_>) {
    status_line(out, head.status);
    let connection_named: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    let keeps_length = head.has_length();
    let mut has_request_id = false;
    let mut has_date = false;
    for h in head.headers {
        let name = h.name;
        let dropped = HOP_BY_HOP
            .iter()
            .any(|hop| name.eq_ignore_ascii_case(hop.as_str()))
            || connection_named
                .iter()
                .any(|named| named.eq_ignore_ascii_case(name.as_bytes()))
            || (added.rate.is_some() && replaced(name))
            || (!keeps_length && name.eq_ignore_ascii_case("content-length"));
        if dropped {
            continue;
        }
        has_request_id |= name.eq_ignore_ascii_case(crate::REQUEST_ID);
        has_date |= name.eq_ignore_ascii_case("date");
        header_line(out, name.as_bytes(), h.value);
    }
    added_lines(out, added, has_request_id, has_date);
}

/// The whole of one of the gateway's own answers (an `ApiError` or the
/// limiter's 429), made by the same code as the full stack's.
pub(super) async fn own(out: &mut Vec<u8>, answer: Response, added: &Added<'_>) {
    let (parts, body) = answer.into_parts();
    // Built in memory (JSON): complete at once.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    status_line(out, parts.status.as_u16());
    let mut has_request_id = false;
    let mut has_date = false;
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || (added.rate.is_some() && replaced(name.as_str())) {
            continue;
        }
        has_request_id |= name.as_str() == crate::REQUEST_ID;
        has_date |= name == header::DATE;
        header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    added_lines(out, added, has_request_id, has_date);
    number_line(out, b"content-length", body.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
}

/// Writes `n` in decimal.
pub(super) fn number(out: &mut Vec<u8>, n: u64) {
    use std::io::Write;
    let _ = write!(out, "{n}");
}

/// One header line with a number as its value.
pub(super) fn number_line(out: &mut Vec<u8>, name: &[u8], n: u64) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    number(out, n);
    out.extend_from_slice(b"\r\n");
}
