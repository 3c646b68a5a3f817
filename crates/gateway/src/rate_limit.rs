//! Per-client rate limiting with tower_governor: who a client is
//! ([`ClientKey`]), the quota from `RATE_LIMIT_PER_SECOND` and
//! `RATE_LIMIT_BURST`, and the JSON 429 answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use governor::middleware::StateInformationMiddleware;
use tower::Layer;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::error::ApiError;

/// How often the limiter forgets clients whose bucket is full again, so
/// its memory does not grow with every address ever seen.
const FORGET_INTERVAL: Duration = Duration::from_secs(60);

/// Who a client is for rate limiting: the peer address, or, when the
/// gateway runs behind a trusted reverse proxy, the client the proxy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKey {
    /// Whether `X-Forwarded-For` / `Forwarded` are believed
    /// (`TRUST_PROXY_HEADERS`). Without a proxy that overwrites them, any
    /// client could pick a new address per request and never be limited.
    pub trust_proxy_headers: bool,
}

impl KeyExtractor for ClientKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let forwarded = if self.trust_proxy_headers {
            forwarded_client(req.headers())
        } else {
            None
        };
        forwarded.or(peer).ok_or(GovernorError::UnableToExtractKey)
    }
}

/// The client address a reverse proxy reports. Proxies append the address
/// they saw to `X-Forwarded-For`, so the last entry is the one our proxy
/// wrote; earlier entries are whatever the client sent and can be forged.
fn forwarded_client(headers: &HeaderMap) -> Option<IpAddr> {
    let text = |name| {
        headers
            .get_all(name)
            .into_iter()
            .filter_map(|v| v.to_str().ok())
    };
    let from_xff = text("x-forwarded-for")
        .flat_map(|v| v.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .next_back();
    from_xff.or_else(|| {
        text(header::FORWARDED.as_str())
            .flat_map(|v| v.split([',', ';']))
            .filter_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_forwarded_node(value.trim()))
                    .flatten()
            })
            .next_back()
    })
}

/// A `for=` node of `Forwarded`: `1.2.3.4`, `"1.2.3.4:80"`, `"[::1]:80"`.
fn parse_forwarded_node(value: &str) -> Option<IpAddr> {
    let value = value.trim_matches('"');
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .and_then(|v| v.parse().ok())
}

/// The time between two tokens for `per_second` requests a second.
/// (tower_governor's `per_second(n)` means one token every *n* seconds.)
pub fn replenish_period(per_second: u32) -> Duration {
    Duration::from_nanos(1_000_000_000 / u64::from(per_second.max(1)))
}

/// The per-client limiter: one for the whole process, so a client has one
/// bucket whichever serving thread its connection lands on.
#[derive(Debug, Clone)]
pub struct RateLimit {
    config: Arc<GovernorConfig<ClientKey, StateInformationMiddleware>>,
}

impl RateLimit {
    /// A limiter for `per_second` requests a second after a `burst`, and
    /// the task (on the current runtime) that forgets idle clients.
    ///
    /// # Panics
    /// When `per_second` or `burst` is 0 (the configuration refuses both).
    pub fn new(per_second: u32, burst: u32, trust_proxy_headers: bool) -> Self {
        let config = Arc::new(
            GovernorConfigBuilder::default()
                .key_extractor(ClientKey {
                    trust_proxy_headers,
                })
                .period(replenish_period(per_second))
                .burst_size(burst)
                .use_headers()
                .finish()
                .expect("rate and burst are checked to be non-zero at start-up"),
        );
        let limiter = config.limiter().clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FORGET_INTERVAL);
            loop {
                tick.tick().await;
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
        Self { config }
    }

    /// Wraps `router`, as one service, in the limiter; the result answers
    /// every path (as the fallback of an empty router). One wrapper around
    /// the whole router, not one per route as `Router::layer` makes: each
    /// of those costs a boxed clone and a future per request.
    pub fn apply(&self, router: Router) -> Router {
        let limited = GovernorLayer::new(self.config.clone())
            .error_handler(rate_limited)
            .layer(router);
        Router::new().fallback_service(limited)
    }
}

/// The 429 for a client that must wait `wait` seconds (its headers come
/// with the limiter's).
pub fn too_many_requests(wait: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests; retry in {wait}s"),
    )
}

/// The 429 (and the rare failure to tell who the client is) as house JSON.
fn rate_limited(error: GovernorError) -> Response<Body> {
    match error {
        GovernorError::TooManyRequests { wait_time, headers } => {
            let wait = wait_time.max(1);
            let mut answer = too_many_requests(wait);
            for (name, value) in headers.iter().flatten() {
                answer = answer.with_header(name.clone(), value.clone());
            }
            answer
                .with_header(header::RETRY_AFTER, HeaderValue::from(wait))
                .with_header(
                    HeaderName::from_static("x-ratelimit-after"),
                    HeaderValue::from(wait),
                )
                .into_response()
        }
        GovernorError::UnableToExtractKey => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "client_unknown",
            "the client address could not be determined",
        )
        .into_response(),
        GovernorError::Other { code, msg, .. } => {
            ApiError::new(code, "rate_limit_error", msg.unwrap_or_default()).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn period_is_the_inverse_of_the_rate() {
        assert_eq!(replenish_period(10), Duration::from_millis(100));
        assert_eq!(replenish_period(1), Duration::from_secs(1));
        assert_eq!(replenish_period(3000), Duration::from_nanos(333_333));
    }

    #[test]
    fn last_forwarded_for_entry_wins() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 10.0.0.7")]);
        assert_eq!(forwarded_client(&h), Some("10.0.0.7".parse().unwrap()));
    }

    #[test]
    fn forwarded_header_is_read() {
        let h = headers(&[(
            "forwarded",
            r#"for=1.1.1.1, for="[2001:db8::1]:4711";proto=https"#,
        )]);
        assert_eq!(forwarded_client(&h), Some("2001:db8::1".parse().unwrap()));
        let h = headers(&[("forwarded", "for=192.0.2.60:8080;by=203.0.113.43")]);
        assert_eq!(forwarded_client(&h), Some("192.0.2.60".parse().unwrap()));
    }

    #[test]
    fn garbage_is_ignored() {
        let h = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(forwarded_client(&h), None);
    }
}
