//! CORS from `CORS_ORIGINS`: `*` or a list of origins. Preflight requests
//! are answered here, before authentication, since browsers never send
//! credentials on a preflight.
//!
//! Only requests that carry `Origin` (a browser's) go through tower-http's
//! CORS service; the others (curl, CI scripts, other services) only get the
//! `Vary` header it would add, so a shared cache never hands their answer to
//! a browser. That skips building a header map per request that only a
//! browser would read (a twentieth of the gateway's CPU time per proxied
//! request, measured with `bench/run gateway`).

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use futures::FutureExt;
use futures::future::{Either, Map};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, Any, Cors, CorsLayer};

/// Headers a browser may send.
const ALLOWED_HEADERS: [HeaderName; 6] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("x-request-id"),
    // A create that is safe to repeat, and how long a request waits.
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("prefer"),
];

/// Headers a browser script may read.
const EXPOSED_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("x-request-id"),
    header::RETRY_AFTER,
    HeaderName::from_static("x-ratelimit-limit"),
    HeaderName::from_static("x-ratelimit-remaining"),
    HeaderName::from_static("x-ratelimit-after"),
];

/// What tower-http's CORS service puts in `Vary`, for the answers that skip it.
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// The CORS layer for the configured origins.
///
/// # Errors
/// An origin that is not a valid header value, naming `CORS_ORIGINS`.
pub fn layer(origins: &[String]) -> Result<BrowserCorsLayer, String> {
    cors_layer(origins).map(|cors| BrowserCorsLayer { cors })
}

fn cors_layer(origins: &[String]) -> Result<CorsLayer, String> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    let allow_origin = if origins.is_empty() || origins.contains(&"*") {
        AllowOrigin::from(Any)
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| format!("CORS_ORIGINS: {o:?} is not a valid origin"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        .max_age(Duration::from_secs(600)))
}

/// [`CorsLayer`] applied to browser requests only (see the module docs).
#[derive(Debug, Clone)]
pub struct BrowserCorsLayer {
    cors: CorsLayer,
}

impl<S: Clone> Layer<S> for BrowserCorsLayer {
    type Service = BrowserCors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BrowserCors {
            cors: self.cors.layer(inner.clone()),
            inner,
        }
    }
}

/// The service of [`BrowserCorsLayer`]: requests with `Origin` (and every
/// `OPTIONS`) go through `cors`, the others straight to `inner` and get
/// [`VARY`].
#[derive(Debug, Clone)]
pub struct BrowserCors<S> {
    cors: Cors<S>,
    inner: S,
}

type WithVary<F> = Map<F, fn(Result<Response, Infallible>) -> Result<Response, Infallible>>;

fn with_vary(answer: Result<Response, Infallible>) -> Result<Response, Infallible> {
    answer.map(|mut response| {
        response.headers_mut().append(header::VARY, VARY);
        response
    })
}

impl<S> Service<Request> for BrowserCors<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<<Cors<S> as Service<Request>>::Future, WithVary<S::Future>>;

    /// Both paths are made ready, so whichever `call` takes was polled
    /// (axum's routes are always ready).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.cors.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // OPTIONS too, so tower-http answers it as before even from a
        // client that sends no Origin.
        if request.method() == Method::OPTIONS || request.headers().contains_key(header::ORIGIN) {
            Either::Left(self.cors.call(request))
        } else {
            Either::Right(self.inner.call(request).map(with_vary as fn(_) -> _))
        }
    }
}
