//! Extractors that answer bad input with the API's JSON error shape
//! instead of axum's plain-text rejections, and the headers that shape how
//! an operation is answered (`Idempotency-Key`, `Prefer: wait`).

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `axum::Json` with JSON errors: 400 for unreadable JSON, 422 for JSON of
/// the wrong shape, 413 for a body over the limit, 415 without a JSON
/// content type.
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
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", text)
        }
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(text),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        ),
        _ => ApiError::bad_request(text),
    }
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
            .map_err(|r: QueryRejection| ApiError::bad_request(r.body_text()))
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
            .map_err(|r: PathRejection| ApiError::bad_request(r.body_text()))
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
}
