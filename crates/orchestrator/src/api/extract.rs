//! Extractors that answer bad input with the API's JSON error shape
//! instead of axum's plain-text rejections, and the headers that shape how
//! an operation is answered (`Idempotency-Key`, `Prefer: wait`).

use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `axum::Json` with JSON errors in the API's words: 400 for unreadable
/// JSON, 422 for JSON of the wrong shape, 413 for a body over the limit,
/// 415 without a JSON content type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(refused(service_kit::rejection::json(&rejection))),
        }
    }
}

/// A refusal of the request, in the API's words (see
/// [`service_kit::rejection`]), as an [`ApiError`].
fn refused(refusal: service_kit::rejection::Refusal) -> ApiError {
    ApiError::new(refusal.status, refusal.code, refusal.message)
}

/// `axum::extract::Query` with JSON errors (400).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|r: QueryRejection| refused(service_kit::rejection::query(&r)))
    }
}

/// `axum::extract::Path` with JSON errors (400).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|r: PathRejection| refused(service_kit::rejection::path(&r)))
    }
}

/// Longest `Idempotency-Key` accepted, as Stripe's API (a UUID takes 36).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The `Idempotency-Key` header, when sent: 1 to
/// [`MAX_IDEMPOTENCY_KEY_LEN`] printable ASCII characters, taken as they
/// are (no quotes removed). A key that is empty, too long, not printable
/// ASCII or sent twice is refused with 400.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all("idempotency-key").iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                "send one Idempotency-Key header, not several",
            ));
        }
        let key = value.to_str().unwrap_or_default().trim();
        let printable = key.bytes().all(|b| (b' '..=b'~').contains(&b));
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || !printable {
            return Err(ApiError::bad_request(format!(
                "an Idempotency-Key holds 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters (a UUID is a good choice)"
            )));
        }
        Ok(Self(Some(key.to_owned())))
    }
}

/// How long a request waits for the operation it starts (or joins) before
/// answering `202 Accepted`: below the gateway's default
/// `UPSTREAM_TIMEOUT_SECONDS` (30), so a client behind it gets the 202
/// rather than the gateway's 504.
pub const OPERATION_WAIT: Duration = Duration::from_secs(25);

/// How long this request waits for its operation: [`OPERATION_WAIT`], or
/// less when the client asks with `Prefer: wait=N` (RFC 7240, seconds). A
/// `wait` that is not a number of seconds is ignored, as the RFC says of
/// preferences a server does not understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub Duration);

impl<S: Send + Sync> FromRequestParts<S> for Wait {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let asked = preferred_wait(&parts.headers).map(Duration::from_secs);
        Ok(Self(
            asked.map_or(OPERATION_WAIT, |w| w.min(OPERATION_WAIT)),
        ))
    }
}

/// The `wait` preference of the `Prefer` headers, in seconds: preferences
/// are comma-separated, each `name[=value]` with `;`-separated parameters.
fn preferred_wait(headers: &HeaderMap) -> Option<u64> {
    headers
        .get_all(header::HeaderName::from_static("prefer"))
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|preference| {
            let preference = preference.split(';').next()?;
            let (name, value) = preference.split_once('=')?;
            name.trim().eq_ignore_ascii_case("wait").then_some(())?;
            value.trim().trim_matches('"').parse().ok()
        })
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    async fn extract<T: FromRequestParts<()>>(headers: &[(&str, &str)]) -> Result<T, T::Rejection> {
        let mut request = axum::http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        T::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn idempotency_keys_are_checked() {
        let key = extract::<IdempotencyKey>;
        assert_eq!(key(&[]).await.unwrap(), IdempotencyKey(None));
        assert_eq!(
            key(&[("idempotency-key", "8e03978e-40d5")]).await.unwrap(),
            IdempotencyKey(Some("8e03978e-40d5".into()))
        );
        let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN);
        assert!(key(&[("idempotency-key", longest.as_str())]).await.is_ok());
        let too_long = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1);
        for bad in [
            &[("idempotency-key", "")][..],
            &[("idempotency-key", "  ")],
            &[("idempotency-key", too_long.as_str())],
            &[("idempotency-key", "a"), ("idempotency-key", "b")],
        ] {
            let refused = key(bad).await.unwrap_err();
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn prefer_wait_shortens_the_wait_never_lengthens_it() {
        async fn wait(headers: &[(&str, &str)]) -> Duration {
            extract::<Wait>(headers).await.unwrap().0
        }
        assert_eq!(wait(&[]).await, OPERATION_WAIT);
        assert_eq!(wait(&[("prefer", "wait=3")]).await, Duration::from_secs(3));
        assert_eq!(
            wait(&[("prefer", "respond-async, Wait = 0 ; x=y")]).await,
            Duration::ZERO
        );
        assert_eq!(wait(&[("prefer", "wait=3600")]).await, OPERATION_WAIT);
        assert_eq!(wait(&[("prefer", "wait=soon")]).await, OPERATION_WAIT);
        assert_eq!(
            wait(&[("prefer", "return=minimal"), ("prefer", "wait=1")]).await,
            Duration::from_secs(1)
        );
    }

    /// Words a client must never read: Rust's and serde's, not the API's.
    const FOREIGN: [&str; 7] = [
        "u32",
        "i64",
        "Failed to",
        "invalid type",
        "expected",
        "struct ",
        "Option<",
    ];

    /// Asserts `message` says `words` and nothing in [`FOREIGN`].
    fn assert_in_api_words(message: &str, words: &str) {
        assert!(message.contains(words), "{words:?} not in {message:?}");
        for foreign in FOREIGN {
            assert!(!message.contains(foreign), "{foreign:?} in {message:?}");
        }
    }

    #[tokio::test]
    async fn json_errors_are_in_the_apis_words() {
        async fn create(body: &str) -> ApiError {
            let request = axum::http::Request::builder()
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_owned()))
                .unwrap();
            Json::<api_types::CreateRunnersRequest>::from_request(request, &())
                .await
                .unwrap_err()
        }
        for (body, status, words) in [
            (r#"{"count": "two"}"#, 422, "`count` must be a whole number"),
            (r#"{"count": -1}"#, 422, "`count` must be a whole number"),
            (
                r#"{"count": 1, "runner_group_id": 1.5}"#,
                422,
                "`runner_group_id` must be a whole number",
            ),
            (
                r#"{"count": 1, "labels": "gpu"}"#,
                422,
                "`labels` must be a list",
            ),
            (
                r#"{"count": 1, "colour": "red"}"#,
                422,
                "has no field `colour`",
            ),
            (r#"{"labels": []}"#, 422, "needs `count`"),
            (
                r#"{"count": "#,
                400,
                "the body is not valid JSON: it ends too early (line 1, column 10)",
            ),
        ] {
            let refused = create(body).await;
            assert_eq!(refused.status.as_u16(), status, "{body}: {refused:?}");
            assert_eq!(refused.code, "invalid_request", "{body}");
            assert_in_api_words(&refused.message, words);
        }
    }

    #[tokio::test]
    async fn query_errors_are_in_the_apis_words() {
        for (query, words) in [
            (
                "state=sleeping",
                "`state` must be one of starting, idle, busy, finished, failed, removing, not `sleeping`",
            ),
            ("colour=red", "has no field `colour`"),
        ] {
            let (mut parts, ()) = axum::http::Request::builder()
                .uri(format!("/runners?{query}"))
                .body(())
                .unwrap()
                .into_parts();
            let refused = Query::<api_types::ListRunnersQuery>::from_request_parts(&mut parts, &())
                .await
                .unwrap_err();
            assert_eq!(refused.status, StatusCode::BAD_REQUEST);
            assert_in_api_words(&refused.message, words);
        }
    }
}
