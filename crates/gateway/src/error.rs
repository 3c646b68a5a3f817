//! [`ApiError`]: every answer the gateway makes up itself (as opposed to
//! the orchestrator's answers, which pass through untouched) in the house
//! shape `{"error": {"code": "...", "message": "..."}}`.

use api_types::ErrorBody;
use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The `WWW-Authenticate` challenge of a 401.
pub const AUTH_CHALLENGE: &str =
    r#"ApiKey realm="gha-api-gateway", header="X-API-Key", Bearer realm="gha-api-gateway""#;

/// An error answer: status, stable code, message, and the headers the
/// status calls for.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code a client can match on.
    pub code: &'static str,
    /// Human-readable message; never internals or secrets.
    pub message: String,
    /// Extra headers (`WWW-Authenticate`, `Retry-After`, `x-ratelimit-*`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header to the answer.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 400: the request cannot be forwarded as it is.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401 with the challenge saying how to authenticate.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(AUTH_CHALLENGE),
        )
    }

    /// 404 for a path the gateway does not serve.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    /// 405 for a known path with another method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method",
        )
    }

    /// 413 for a body over `MAX_BODY_BYTES`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 431 for a request whose headers, once forwarded, would be more than
    /// the orchestrator takes.
    pub fn request_headers_too_large() -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_headers_too_large",
            format!(
                "the request's headers are too many or too large to forward: at most {} lines and {} bytes, counting the Host, Accept, X-Request-Id and Content-Length lines the gateway adds",
                service_kit::MAX_HEADERS,
                service_kit::MAX_HEAD_BYTES
            ),
        )
    }

    /// 502: the orchestrator could not be reached.
    pub fn orchestrator_unreachable() -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "orchestrator_unreachable",
            "the orchestrator is not reachable; retry shortly",
        )
    }

    /// 504: the orchestrator did not answer within `UPSTREAM_TIMEOUT_SECONDS`.
    pub fn orchestrator_timeout(seconds: u64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "orchestrator_timeout",
            format!("the orchestrator did not answer within {seconds}s"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(ErrorBody::new(self.code, self.message))).into_response();
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}
