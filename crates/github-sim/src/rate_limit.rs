//! Primary rate limit: an hourly request budget per token, and its `x-ratelimit-*` headers.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};

/// Length of a rate-limit window.
const WINDOW_SECS: u64 = 3600;
/// Budget of unauthenticated callers (only reported, on 401 answers).
pub(crate) const UNAUTHENTICATED_LIMIT: u64 = 60;

/// The state of one budget, as the headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    pub(crate) used: u64,
    /// Epoch seconds at which the window resets.
    pub(crate) reset: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    window_start: u64,
    used: u64,
}

/// Budgets keyed by caller (`token#N` or `unauthenticated`, never the token itself).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u64,
    buckets: HashMap<String, Bucket>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl RateLimiter {
    /// A limiter granting `limit` requests per hour and token.
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            buckets: HashMap::new(),
        }
    }

    fn limit_for(&self, key: &str) -> u64 {
        if key == "unauthenticated" {
            UNAUTHENTICATED_LIMIT
        } else {
            self.limit
        }
    }

    fn bucket(&mut self, key: &str) -> &mut Bucket {
        let now = now_secs();
        let bucket = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            window_start: now,
            used: 0,
        });
        if now >= bucket.window_start + WINDOW_SECS {
            *bucket = Bucket {
                window_start: now,
                used: 0,
            };
        }
        bucket
    }

    /// The current state of `key`'s budget.
    pub(crate) fn snapshot(&mut self, key: &str) -> Snapshot {
        let limit = self.limit_for(key);
        let bucket = *self.bucket(key);
        Snapshot {
            limit,
            remaining: limit.saturating_sub(bucket.used),
            used: bucket.used,
            reset: bucket.window_start + WINDOW_SECS,
        }
    }

    /// Spends one request; `Err` (nothing spent) when the budget is exhausted.
    pub(crate) fn take(&mut self, key: &str) -> Result<Snapshot, Snapshot> {
        let limit = self.limit_for(key);
        let bucket = self.bucket(key);
        if bucket.used >= limit {
            return Err(self.snapshot(key));
        }
        bucket.used += 1;
        Ok(self.snapshot(key))
    }

    /// Spends one request even past the limit (used for reporting unauthenticated calls).
    pub(crate) fn count(&mut self, key: &str) -> Snapshot {
        self.bucket(key).used += 1;
        self.snapshot(key)
    }

    /// Gives back one request (a 304 answer does not count).
    pub(crate) fn refund(&mut self, key: &str) -> Snapshot {
        let bucket = self.bucket(key);
        bucket.used = bucket.used.saturating_sub(1);
        self.snapshot(key)
    }
}

/// Writes the `x-ratelimit-*` headers of `snapshot`.
pub(crate) fn apply_headers(headers: &mut HeaderMap, snapshot: Snapshot) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(snapshot.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(snapshot.remaining),
    );
    headers.insert("x-ratelimit-used", HeaderValue::from(snapshot.used));
    headers.insert("x-ratelimit-reset", HeaderValue::from(snapshot.reset));
    headers.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausts_and_refunds() {
        let mut limiter = RateLimiter::new(2);
        assert_eq!(limiter.take("t").unwrap().remaining, 1);
        assert_eq!(limiter.take("t").unwrap().remaining, 0);
        let denied = limiter.take("t").unwrap_err();
        assert_eq!((denied.remaining, denied.used), (0, 2));
        assert_eq!(limiter.refund("t").remaining, 1);
        assert!(limiter.snapshot("t").reset > now_secs());
    }
}
