//! GitHub-shaped error responses (`{"message", "documentation_url", "status", "errors"?}`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Documentation URL GitHub puts in generic errors.
pub(crate) const DOCS_REST: &str = "https://docs.github.com/rest";
/// Documentation URL of primary rate-limit errors.
pub(crate) const DOCS_PRIMARY_RATE: &str =
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#primary-rate-limit";
/// Documentation URL of secondary rate-limit errors.
pub(crate) const DOCS_SECONDARY_RATE: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits";
/// Documentation URL of the self-hosted runner endpoints.
pub(crate) const DOCS_RUNNERS: &str = "https://docs.github.com/rest/actions/self-hosted-runners";

/// An error answered with GitHub's JSON error body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct GitHubError {
    /// HTTP status of the response.
    pub status: StatusCode,
    /// `message` field.
    pub message: String,
    /// `documentation_url` field.
    pub documentation_url: String,
    /// `errors` field of 422 `validation-error-simple` bodies.
    pub errors: Option<Vec<String>>,
    /// Value of a `retry-after` header, in seconds.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    documentation_url: &'a str,
    /// The HTTP status as a string, as GitHub now adds it (`"404"`).
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [String]>,
}

impl GitHubError {
    /// An error with `status`, `message` and the generic documentation URL.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            documentation_url: DOCS_REST.to_owned(),
            errors: None,
            retry_after: None,
        }
    }

    /// 404 `Not Found`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found")
    }

    /// 401 `Bad credentials`.
    pub fn bad_credentials() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Bad credentials")
    }

    /// 400 `Problems parsing JSON`.
    pub fn bad_json() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Problems parsing JSON")
    }

    /// 422 with a single validation error repeated in `errors`.
    pub fn validation(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            errors: Some(vec![message.clone()]),
            documentation_url: DOCS_RUNNERS.to_owned(),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
        }
    }

    /// Replaces the documentation URL.
    pub fn with_docs(mut self, url: &str) -> Self {
        url.clone_into(&mut self.documentation_url);
        self
    }
}

impl IntoResponse for GitHubError {
    fn into_response(self) -> Response {
        let body = Body {
            message: &self.message,
            documentation_url: &self.documentation_url,
            status: self.status.as_str(),
            errors: self.errors.as_deref(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
