//! GitHub's rate-limit answers, remembered: the last `x-ratelimit-*` figures,
//! and a pause during which no call is made at all.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use http::HeaderMap;

/// What the last answers said about the budget.
#[derive(Debug, Default)]
pub struct RateLimitState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone)]
struct Inner {
    remaining: Option<i64>,
    reset: Option<DateTime<Utc>>,
    paused_until: Option<SystemTime>,
}

/// A snapshot for `/health`.
#[derive(Debug, Clone, Default)]
pub struct RateLimitSnapshot {
    /// Requests left in the window.
    pub remaining: Option<i64>,
    /// When the window resets.
    pub reset: Option<DateTime<Utc>>,
    /// No call before this time.
    pub paused_until: Option<DateTime<Utc>>,
}

/// How a 403/429 answer is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// Primary limit exhausted: wait for the reset.
    Primary(Duration),
    /// Secondary limit: wait `retry-after` (or a minute).
    Secondary(Duration),
}

impl Throttle {
    /// How long to wait.
    pub fn wait(self) -> Duration {
        match self {
            Throttle::Primary(d) | Throttle::Secondary(d) => d,
        }
    }
}

impl RateLimitState {
    /// Records the `x-ratelimit-*` headers of an answer.
    pub fn observe(&self, headers: &HeaderMap) {
        let remaining = header_i64(headers, "x-ratelimit-remaining");
        let reset = header_i64(headers, "x-ratelimit-reset")
            .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0));
        let mut inner = self.inner.lock().expect("rate limit lock");
        if remaining.is_some() {
            inner.remaining = remaining;
        }
        if reset.is_some() {
            inner.reset = reset;
        }
    }

    /// Classifies a 403/429 answer as GitHub documents it; `None` when it is
    /// an ordinary permission error.
    pub fn classify(
        status: u16,
        headers: &HeaderMap,
        documentation_url: &str,
        message: &str,
    ) -> Option<Throttle> {
        if status != 403 && status != 429 {
            return None;
        }
        let retry_after = header_i64(headers, "retry-after")
            .filter(|s| *s >= 0)
            .map(|s| Duration::from_secs(s as u64));
        let remaining = header_i64(headers, "x-ratelimit-remaining");
        let secondary = documentation_url.ends_with("secondary-rate-limits")
            || documentation_url.ends_with("#abuse-rate-limits")
            || message
                .to_ascii_lowercase()
                .contains("secondary rate limit");
        if remaining == Some(0) && !secondary {
            let until_reset = header_i64(headers, "x-ratelimit-reset")
                .map(|reset| {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs() as i64;
                    Duration::from_secs((reset - now).max(1) as u64)
                })
                .unwrap_or(Duration::from_secs(60));
            return Some(Throttle::Primary(retry_after.unwrap_or(until_reset)));
        }
        if secondary || retry_after.is_some() || status == 429 {
            return Some(Throttle::Secondary(
                retry_after.unwrap_or(Duration::from_secs(60)),
            ));
        }
        None
    }

    /// Pauses every call for `wait`.
    pub fn pause(&self, wait: Duration) {
        let until = SystemTime::now() + wait;
        let mut inner = self.inner.lock().expect("rate limit lock");
        if inner.paused_until.is_none_or(|t| t < until) {
            inner.paused_until = Some(until);
        }
    }

    /// How long calls are still paused, if they are.
    pub fn paused_for(&self) -> Option<Duration> {
        let inner = self.inner.lock().expect("rate limit lock");
        inner
            .paused_until
            .and_then(|until| until.duration_since(SystemTime::now()).ok())
            .filter(|d| !d.is_zero())
    }

    /// A snapshot for `/health`.
    pub fn snapshot(&self) -> RateLimitSnapshot {
        let inner = self.inner.lock().expect("rate limit lock").clone();
        RateLimitSnapshot {
            remaining: inner.remaining,
            reset: inner.reset,
            paused_until: inner
                .paused_until
                .filter(|t| *t > SystemTime::now())
                .map(DateTime::<Utc>::from),
        }
    }
}

fn header_i64(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn primary_limit_waits_for_reset() {
        let reset = (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60)
            .to_string();
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ]);
        match RateLimitState::classify(
            403,
            &h,
            "https://docs.github.com/rest#primary-rate-limit",
            "API rate limit exceeded",
        ) {
            Some(Throttle::Primary(d)) => assert!(d.as_secs() >= 58 && d.as_secs() <= 61, "{d:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secondary_limit_honours_retry_after() {
        let h = headers(&[("retry-after", "3"), ("x-ratelimit-remaining", "4000")]);
        assert_eq!(
            RateLimitState::classify(
                403,
                &h,
                "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                "You have exceeded a secondary rate limit"
            ),
            Some(Throttle::Secondary(Duration::from_secs(3)))
        );
    }

    #[test]
    fn plain_403_is_not_a_throttle() {
        let h = headers(&[("x-ratelimit-remaining", "4000")]);
        assert_eq!(
            RateLimitState::classify(
                403,
                &h,
                "https://docs.github.com/rest",
                "Resource not accessible"
            ),
            None
        );
    }

    #[test]
    fn pause_is_remembered() {
        let state = RateLimitState::default();
        assert!(state.paused_for().is_none());
        state.pause(Duration::from_secs(5));
        assert!(state.paused_for().unwrap() > Duration::from_secs(3));
    }
}
