//! [`Upstream`]: the one pooled HTTP client to the orchestrator, and the
//! forwarding of a request to it: method, mapped path, query, body and
//! end-to-end headers out; status, headers and body back unchanged.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};
use futures::stream;
use tracing::warn;

use crate::error::ApiError;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// and so are never forwarded in either direction.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Request headers the orchestrator must not see: the client's credentials
/// for the gateway (the orchestrator has no use for them, and a log line
/// there must not be able to leak them), and the ones the client library
/// sets itself for the new connection.
const NOT_FORWARDED: [HeaderName; 5] = [
    header::AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    header::HOST,
    header::CONTENT_LENGTH,
    header::UPGRADE,
];

/// How much of a refused (too large) body is read and dropped so the client
/// gets to read the 413; past it the connection is simply closed.
const DISCARD_MAX_BYTES: usize = 8 * 1024 * 1024;
/// How long reading a refused body may take.
const DISCARD_TIMEOUT: Duration = Duration::from_secs(5);

/// The orchestrator as the gateway reaches it.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// One client for all requests, so connections are pooled and reused.
    client: reqwest::Client,
    /// `ORCHESTRATOR_URL` without a trailing slash.
    base: String,
    /// `UPSTREAM_TIMEOUT_SECONDS`, for the 504 message.
    timeout: Duration,
    /// `MAX_BODY_BYTES`.
    max_body_bytes: usize,
}

impl Upstream {
    /// A client for the orchestrator at `base`.
    ///
    /// # Errors
    /// When the TLS back end cannot be initialised.
    pub fn new(base: &str, timeout: Duration, max_body_bytes: usize) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            timeout,
            max_body_bytes,
        })
    }

    /// Forwards `request` to `path` on the orchestrator (the query string is
    /// kept) and returns its answer, or a 413, 502 or 504 of our own.
    pub async fn forward(&self, request: Request, path: &str) -> Response {
        match self.try_forward(request, path).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    }

    async fn try_forward(&self, request: Request, path: &str) -> Result<Response, ApiError> {
        let (parts, body) = request.into_parts();
        let body = self.read_body(&parts.headers, body).await?;
        let mut url = format!("{}{path}", self.base);
        if let Some(query) = parts.uri.query() {
            url.push('?');
            url.push_str(query);
        }
        let upstream = self
            .client
            .request(parts.method, url)
            .headers(end_to_end(&parts.headers, &NOT_FORWARDED))
            .body(body)
            .send()
            .await
            .map_err(|e| self.send_error(&e))?;
        Ok(relay(upstream))
    }

    /// Reads the whole body, refusing it with 413 past `MAX_BODY_BYTES`
    /// (at once when `Content-Length` says so, otherwise as soon as the
    /// stream crosses the limit). Buffering keeps webhook bodies byte-exact
    /// and lets the client see a 413 instead of a half-forwarded request.
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
        let limit = self.max_body_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            discard(body).await;
            return Err(ApiError::payload_too_large(limit));
        }
        axum::body::to_bytes(body, limit).await.map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::payload_too_large(limit)
            } else {
                ApiError::bad_request("the request body could not be read")
            }
        })
    }

    /// Sends `GET path` and returns status and body (for `/api/v1/health`).
    ///
    /// # Errors
    /// The 502 or 504 to answer when the orchestrator does not.
    pub async fn get(&self, path: &str) -> Result<(reqwest::StatusCode, Bytes), ApiError> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| self.send_error(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.send_error(&e))?;
        Ok((status, body))
    }

    fn send_error(&self, e: &reqwest::Error) -> ApiError {
        if e.is_timeout() {
            warn!(error = %e, "orchestrator timed out");
            ApiError::orchestrator_timeout(self.timeout.as_secs())
        } else {
            warn!(error = %e, "orchestrator unreachable");
            ApiError::orchestrator_unreachable()
        }
    }
}

/// Reads and drops a refused body (at most [`DISCARD_MAX_BYTES`], for at
/// most [`DISCARD_TIMEOUT`]) before the 413 goes out. Closing a connection
/// with unread data in it makes the kernel reset it, and a client still
/// sending then sees "connection reset" instead of our answer (nginx's
/// "lingering close" exists for the same reason).
async fn discard(body: Body) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let _ = tokio::time::timeout(DISCARD_TIMEOUT, async {
        let mut seen = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > DISCARD_MAX_BYTES {
                break;
            }
        }
    })
    .await;
}

/// The orchestrator's answer as ours: same status, end-to-end headers, and
/// the body streamed through as it arrives.
fn relay(upstream: reqwest::Response) -> Response {
    let status = upstream.status();
    let headers = end_to_end(upstream.headers(), &[]);
    let body = stream::try_unfold(upstream, |mut upstream| async move {
        Ok::<_, reqwest::Error>(upstream.chunk().await?.map(|chunk| (chunk, upstream)))
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `headers` without hop-by-hop headers (the fixed ones and any that
/// `Connection` names) and without `also_drop`.
fn end_to_end(headers: &HeaderMap, also_drop: &[HeaderName]) -> HeaderMap {
    let named_by_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if HOP_BY_HOP.contains(name)
            || also_drop.contains(name)
            || named_by_connection.contains(name)
        {
            continue;
        }
        kept.append(name.clone(), value.clone());
    }
    kept
}

/// Checks a runner id the way the orchestrator does (letters, digits, `-`,
/// `_`, `.`; not starting with `.`; at most 100) and percent-encodes it for
/// use as one path segment, so no id can reach another orchestrator path.
///
/// # Errors
/// A 400 for an id the orchestrator would refuse anyway.
pub fn runner_id_segment(id: &str) -> Result<String, ApiError> {
    let valid = !id.is_empty()
        && id.len() <= 100
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(ApiError::bad_request(
            "a runner id holds 1 to 100 letters, digits, '-', '_' or '.', and does not start with '.'",
        ));
    }
    // Defence in depth: should the rule above ever loosen, anything outside
    // the unreserved set is still encoded.
    Ok(id
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-github-event", HeaderValue::from_static("workflow_job"));
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        let kept = end_to_end(&headers, &NOT_FORWARDED);
        assert_eq!(kept.len(), 1);
        assert!(kept.contains_key("x-github-event"));
    }

    #[test]
    fn ids_that_could_escape_are_refused() {
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "a%2Fb",
            "a?b",
            "a b",
            &"x".repeat(101),
        ] {
            assert!(runner_id_segment(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            runner_id_segment("gha-runner-k3j9_x.2").unwrap(),
            "gha-runner-k3j9_x.2"
        );
    }
}
