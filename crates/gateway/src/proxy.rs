//! [`Upstream`]: the one pooled HTTP client to the orchestrator, and the
//! forwarding of a request to it: method, mapped path, query, body and
//! end-to-end headers out; status, headers and body back unchanged.
//!
//! The client is hyper's pooled one (`hyper_util`'s legacy client, HTTP/1.1
//! keep-alive; HTTP/2 when a TLS orchestrator offers it), driven directly:
//! the orchestrator's scheme and authority are parsed once at start-up, so a
//! request costs one string for its path and no URL parsing, and the answer's
//! body is hyper's own, streamed through as it arrives.

use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::{Instant, Sleep};
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

/// How long an unused pooled connection to the orchestrator is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The pooled client: plain TCP for `http://`, rustls for `https://`.
type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The orchestrator as the gateway reaches it.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// One client for all requests, so connections are pooled and reused.
    client: HttpClient,
    /// `ORCHESTRATOR_URL`'s scheme, parsed once.
    scheme: Scheme,
    /// `ORCHESTRATOR_URL`'s host and port, parsed once.
    authority: Authority,
    /// `ORCHESTRATOR_URL`'s path without a trailing slash (usually empty),
    /// put in front of every forwarded path.
    prefix: String,
    /// `UPSTREAM_TIMEOUT_SECONDS`: for a whole call, answer body included.
    timeout: Duration,
    /// `MAX_BODY_BYTES`.
    max_body_bytes: usize,
}

/// The host and port of the orchestrator at `url`, which must be an
/// `http://` or `https://` URL with a host and no query or fragment (its
/// path is put in front of every forwarded one). The one check of
/// `ORCHESTRATOR_URL`, at start-up.
///
/// # Errors
/// What is wrong with `url`.
pub fn authority_of(url: &reqwest::Url) -> Result<Authority, String> {
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err("must be an http:// or https:// URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("has no host")?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    Authority::try_from(authority).map_err(|e| e.to_string())
}

/// Why [`Upstream::new`] refused `ORCHESTRATOR_URL`.
#[derive(Debug)]
pub struct InvalidBase(String);

impl std::fmt::Display for InvalidBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for InvalidBase {}

impl Upstream {
    /// A client for the orchestrator at `url` (see [`authority_of`]).
    ///
    /// # Errors
    /// When `url` is not such a URL (the configuration checks it first).
    pub fn new(
        url: &reqwest::Url,
        timeout: Duration,
        max_body_bytes: usize,
    ) -> Result<Self, InvalidBase> {
        let authority = authority_of(url)
            .map_err(|why| InvalidBase(format!("ORCHESTRATOR_URL={url}: {why}")))?;
        let scheme = if url.scheme() == "https" {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(5))));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(usize::MAX)
            .build(connector);
        Ok(Self {
            client,
            scheme,
            authority,
            prefix: url.path().trim_end_matches('/').to_owned(),
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
        let (mut parts, body) = request.into_parts();
        let body = self.read_body(&parts.headers, body).await?;
        parts.uri = self.uri(path, parts.uri.query())?;
        parts.version = Version::HTTP_11;
        parts.extensions.clear();
        strip_hop_by_hop(&mut parts.headers, &NOT_FORWARDED);
        // What the previous client (reqwest) sent when the caller had not.
        parts
            .headers
            .entry(header::ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        self.check_head_fits(&parts, body.len())?;
        let request_id = parts.headers.get(crate::REQUEST_ID).cloned();
        let request = hyper::Request::from_parts(parts, Full::new(body));
        self.send(request, request_id).await
    }

    /// Refuses (431) a request whose head, as forwarded, the orchestrator
    /// might refuse. It parses requests with the gateway's own limits
    /// ([`service_kit::serve`]), but forwarding changes the head: the
    /// client's Host, API key and hop-by-hop lines go, and Host, Accept,
    /// X-Request-Id and Content-Length may come. Without this, a request
    /// at the gateway's limits would get the orchestrator's hyper's 431,
    /// which has no body. Counted as hyper's HTTP/1.1 client writes it.
    fn check_head_fits(
        &self,
        parts: &axum::http::request::Parts,
        body_len: usize,
    ) -> Result<(), ApiError> {
        const CRLF: usize = 2;
        // The lines the client adds: Host, and Content-Length for a body.
        let mut lines = parts.headers.len() + 1;
        let mut bytes = "host: ".len() + self.authority.as_str().len() + CRLF;
        if body_len > 0 {
            lines += 1;
            let digits = body_len.checked_ilog10().map_or(1, |d| d as usize + 1);
            bytes += "content-length: ".len() + digits + CRLF;
        }
        let target = parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
        bytes += parts.method.as_str().len() + 1 + target + " HTTP/1.1".len() + CRLF;
        bytes += parts
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + ": ".len() + value.len() + CRLF)
            .sum::<usize>();
        bytes += CRLF;
        if lines > service_kit::MAX_HEADERS || bytes > service_kit::MAX_HEAD_BYTES {
            return Err(ApiError::request_headers_too_large());
        }
        Ok(())
    }

    /// `scheme://authority` + prefix + `path` + `?query`.
    fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, ApiError> {
        let mut target = String::with_capacity(
            self.prefix.len() + path.len() + query.map_or(0, |q| q.len() + 1),
        );
        target.push_str(&self.prefix);
        target.push_str(path);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        let path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(target))
            .map_err(|_| ApiError::bad_request("the request target cannot be forwarded"))?;
        let mut uri = axum::http::uri::Parts::default();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = Some(path_and_query);
        Uri::from_parts(uri)
            .map_err(|_| ApiError::bad_request("the request target cannot be forwarded"))
    }

    /// Sends `request` and relays the answer, all within the timeout: the
    /// same deadline bounds the wait for the headers and then the body.
    /// `request_id` goes into the warnings logged about this call.
    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
        request_id: Option<HeaderValue>,
    ) -> Result<Response, ApiError> {
        let id = RequestIdField(request_id.as_ref());
        let mut deadline = Box::pin(tokio::time::sleep(self.timeout));
        let answer = tokio::select! {
            biased;
            answer = self.client.request(request) => answer,
            () = deadline.as_mut() => return Err(self.timed_out(&"no answer in time", id)),
        };
        let upstream = answer.map_err(|e| self.send_error(&e, id))?;
        let (mut parts, body) = upstream.into_parts();
        strip_hop_by_hop(&mut parts.headers, &[]);
        let body = Body::new(Deadline {
            body,
            request_id,
            deadline,
            timeout: self.timeout,
        });
        let mut response = Response::new(body);
        *response.status_mut() = parts.status;
        *response.headers_mut() = parts.headers;
        Ok(response)
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
            service_kit::discard_body(body).await;
            return Err(ApiError::payload_too_large(limit));
        }
        if hyper::body::Body::is_end_stream(&body) {
            return Ok(Bytes::new());
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
    pub async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), ApiError> {
        let mut request = hyper::Request::new(Full::new(Bytes::new()));
        *request.method_mut() = Method::GET;
        *request.uri_mut() = self.uri(path, None)?;
        request
            .headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let response = self.send(request, None).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.body_error(&e))?
            .to_bytes();
        Ok((status, body))
    }

    fn send_error(&self, e: &hyper_util::client::legacy::Error, id: RequestIdField) -> ApiError {
        if is_timeout(e) {
            self.timed_out(e, id)
        } else {
            warn!(request_id = %id, error = %ErrorChain(e), "orchestrator unreachable");
            ApiError::orchestrator_unreachable()
        }
    }

    fn body_error(&self, e: &axum::Error) -> ApiError {
        let id = RequestIdField(None);
        if is_timeout(e) {
            self.timed_out(e, id)
        } else {
            warn!(request_id = %id, error = %ErrorChain(e), "orchestrator unreachable");
            ApiError::orchestrator_unreachable()
        }
    }

    fn timed_out(&self, e: &dyn std::fmt::Display, id: RequestIdField) -> ApiError {
        warn!(request_id = %id, error = %e, "orchestrator timed out");
        ApiError::orchestrator_timeout(self.timeout.as_secs())
    }
}

/// Whether `e` (or what caused it) is a timeout, e.g. of the connect.
fn is_timeout(e: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<UpstreamTimeout>()
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A request id as a log field: the header's text, or `-` when there is
/// none (the request span, which also carries it, exists only at `debug`).
#[derive(Debug, Clone, Copy)]
struct RequestIdField<'a>(Option<&'a HeaderValue>);

impl std::fmt::Display for RequestIdField<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.and_then(|v| v.to_str().ok()).unwrap_or("-"))
    }
}

/// An error and its causes, `: `-separated, for the log.
struct ErrorChain<'a>(&'a (dyn StdError + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// The orchestrator's answer body, cut off with [`UpstreamTimeout`] when the
/// call's deadline passes before it is complete.
struct Deadline {
    body: Incoming,
    /// The request's id, for the warning should the deadline pass.
    request_id: Option<HeaderValue>,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

/// The answer body did not arrive within `UPSTREAM_TIMEOUT_SECONDS`.
#[derive(Debug)]
struct UpstreamTimeout(Duration);

impl std::fmt::Display for UpstreamTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the orchestrator's answer took longer than {}s",
            self.0.as_secs()
        )
    }
}

impl StdError for UpstreamTimeout {}

impl hyper::body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(this.deadline.as_mut().poll(cx));
        warn!(
            request_id = %RequestIdField(this.request_id.as_ref()),
            timeout_seconds = this.timeout.as_secs(),
            "orchestrator timed out sending its answer"
        );
        // Pushed far out so a caller that polls again does not spin.
        this.deadline
            .as_mut()
            .reset(Instant::now() + Duration::from_secs(86_400));
        Poll::Ready(Some(Err(UpstreamTimeout(this.timeout).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Removes, in place, the hop-by-hop headers (the fixed ones and any that
/// `Connection` names) and `also_drop`.
fn strip_hop_by_hop(headers: &mut HeaderMap, also_drop: &[HeaderName]) {
    if headers.contains_key(header::CONNECTION) {
        let named_by_connection: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in &named_by_connection {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP.iter().chain(also_drop) {
        headers.remove(name);
    }
}

/// Checks a runner id the way the orchestrator does (letters, digits, `-`,
/// `_`, `.`; not starting with `.`; at most 100) and percent-encodes it for
/// use as one path segment, so no id can reach another orchestrator path.
///
/// # Errors
/// A 400 for an id the orchestrator would refuse anyway.
pub fn runner_id_segment(id: &str) -> Result<String, ApiError> {
    if !api_types::is_valid_runner_id(id) {
        return Err(ApiError::bad_request(api_types::RUNNER_ID_RULE));
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
        strip_hop_by_hop(&mut headers, &NOT_FORWARDED);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-github-event"));
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
