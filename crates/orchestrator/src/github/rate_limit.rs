//! GitHub's rate-limit answers, remembered per bucket: the last
//! `x-ratelimit-*` figures of each resource GitHub names in
//! `x-ratelimit-resource` (`core`, `actions_runner_registration`, …), and
//! the pauses during which no call of a bucket is made at all.
//!
//! GitHub keeps separate primary budgets per resource: exhausting
//! `actions_runner_registration` (JIT configurations, registration tokens)
//! must not stop the `core` calls that list and delete runners. A secondary
//! limit (too many concurrent requests, too many points per minute) is the
//! account's as a whole, so it pauses every bucket.
//!
//! Values from GitHub's headers are clamped: a `retry-after` of
//! `99999999999` or a reset in the year 3000 waits [`MAX_WAIT`], never
//! overflows.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use http::{HeaderMap, Method};
use serde::Deserialize;

/// The budget most REST calls are charged to.
pub const CORE: &str = "core";
/// The budget of JIT configurations and registration tokens.
pub const RUNNER_REGISTRATION: &str = "actions_runner_registration";
/// The longest pause any answer can impose: GitHub's windows are an hour.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// How long a secondary limit without `retry-after` pauses (GitHub: "at least a minute").
const SECONDARY_DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// The bucket GitHub charges a request to, from its method and path.
pub fn resource_of(method: &Method, path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path);
    if method == Method::POST
        && (path.ends_with("/actions/runners/generate-jitconfig")
            || path.ends_with("/actions/runners/registration-token"))
    {
        RUNNER_REGISTRATION
    } else {
        CORE
    }
}

/// What the last answers said about each budget.
#[derive(Debug, Default)]
pub struct RateLimitState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone)]
struct Inner {
    buckets: BTreeMap<String, Bucket>,
    /// A secondary limit: no call of any bucket before this.
    secondary_until: Option<SystemTime>,
}

#[derive(Debug, Default, Clone)]
struct Bucket {
    limit: Option<i64>,
    remaining: Option<i64>,
    used: Option<i64>,
    reset: Option<DateTime<Utc>>,
    /// The bucket is exhausted: none of its calls before this.
    paused_until: Option<SystemTime>,
}

/// One bucket, for `/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketSnapshot {
    /// Requests per window.
    pub limit: Option<i64>,
    /// Requests left in the window.
    pub remaining: Option<i64>,
    /// Requests made in the window.
    pub used: Option<i64>,
    /// When the window resets.
    pub reset: Option<DateTime<Utc>>,
    /// No call of this bucket before this time.
    pub paused_until: Option<DateTime<Utc>>,
}

/// Every bucket, for `/health`.
#[derive(Debug, Clone, Default)]
pub struct RateLimitSnapshot {
    /// By GitHub's resource name.
    pub buckets: BTreeMap<String, BucketSnapshot>,
    /// A secondary limit pauses every bucket until then.
    pub secondary_paused_until: Option<DateTime<Utc>>,
}

impl RateLimitSnapshot {
    /// The snapshots of several credentials (a GitHub App's installations
    /// and the App itself) in one: each bucket named `{credential}/{bucket}`
    /// (`installation/123/core`), a secondary limit the latest of theirs.
    pub fn merge(parts: Vec<(String, RateLimitSnapshot)>) -> Self {
        let mut merged = Self::default();
        for (credential, part) in parts {
            for (name, bucket) in part.buckets {
                merged
                    .buckets
                    .insert(format!("{credential}/{name}"), bucket);
            }
            merged.secondary_paused_until = merged
                .secondary_paused_until
                .max(part.secondary_paused_until);
        }
        merged
    }

    /// The `core` bucket (the one most calls are charged to); of a merged
    /// snapshot, the installation's `core` with the least left.
    pub fn core(&self) -> BucketSnapshot {
        if let Some(core) = self.buckets.get(CORE) {
            return core.clone();
        }
        let suffix = format!("/{CORE}");
        self.buckets
            .iter()
            .filter(|(name, _)| name.starts_with("installation/") && name.ends_with(&suffix))
            .map(|(_, bucket)| bucket)
            .min_by_key(|bucket| bucket.remaining.unwrap_or(i64::MAX))
            .cloned()
            .unwrap_or_default()
    }

    /// The latest time before which some call is paused, if any.
    pub fn paused_until(&self) -> Option<DateTime<Utc>> {
        self.buckets
            .values()
            .filter_map(|b| b.paused_until)
            .chain(self.secondary_paused_until)
            .max()
    }
}

/// How a 403/429 answer is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// Primary limit of one bucket exhausted: wait for its reset.
    Primary(Duration),
    /// Secondary limit: wait `retry-after` (or a minute), every bucket.
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

/// `GET /rate_limit`'s body, as far as we read it.
#[derive(Debug, Deserialize)]
pub(crate) struct RateLimitOverview {
    pub(crate) resources: BTreeMap<String, RateLimitFigures>,
}

/// One resource of `GET /rate_limit`.
#[derive(Debug, Deserialize)]
pub(crate) struct RateLimitFigures {
    pub(crate) limit: i64,
    pub(crate) remaining: i64,
    #[serde(default)]
    pub(crate) used: Option<i64>,
    pub(crate) reset: i64,
}

impl RateLimitState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain numbers behind: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the `x-ratelimit-*` headers of an answer to a request charged
    /// to `charged_to` (GitHub's `x-ratelimit-resource` wins when present).
    pub fn observe(&self, headers: &HeaderMap, charged_to: &str) {
        let resource = header_str(headers, "x-ratelimit-resource").unwrap_or(charged_to);
        let limit = header_i64(headers, "x-ratelimit-limit");
        let remaining = header_i64(headers, "x-ratelimit-remaining");
        let used = header_i64(headers, "x-ratelimit-used");
        let reset = header_i64(headers, "x-ratelimit-reset").and_then(epoch_to_datetime);
        if limit.is_none() && remaining.is_none() && reset.is_none() {
            return;
        }
        let mut inner = self.lock();
        let bucket = inner.buckets.entry(resource.to_owned()).or_default();
        bucket.limit = limit.or(bucket.limit);
        bucket.remaining = remaining.or(bucket.remaining);
        bucket.used = used.or(bucket.used);
        bucket.reset = reset.or(bucket.reset);
    }

    /// Records `GET /rate_limit`'s figures for every bucket it lists.
    pub(crate) fn observe_overview(&self, overview: &RateLimitOverview) {
        let mut inner = self.lock();
        for (name, figures) in &overview.resources {
            let bucket = inner.buckets.entry(name.clone()).or_default();
            bucket.limit = Some(figures.limit);
            bucket.remaining = Some(figures.remaining);
            bucket.used = figures.used.or(bucket.used);
            bucket.reset = epoch_to_datetime(figures.reset);
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
        Self::classify_at(
            status,
            headers,
            documentation_url,
            message,
            SystemTime::now(),
        )
    }

    fn classify_at(
        status: u16,
        headers: &HeaderMap,
        documentation_url: &str,
        message: &str,
        now: SystemTime,
    ) -> Option<Throttle> {
        if status != 403 && status != 429 {
            return None;
        }
        let retry_after = header_i64(headers, "retry-after").map(seconds_clamped);
        let remaining = header_i64(headers, "x-ratelimit-remaining");
        let secondary = documentation_url.ends_with("secondary-rate-limits")
            || documentation_url.ends_with("#abuse-rate-limits")
            || message
                .to_ascii_lowercase()
                .contains("secondary rate limit");
        if remaining == Some(0) && !secondary {
            let until_reset = header_i64(headers, "x-ratelimit-reset")
                .map(|reset| until_epoch(reset, now))
                .unwrap_or(SECONDARY_DEFAULT_WAIT);
            return Some(Throttle::Primary(retry_after.unwrap_or(until_reset)));
        }
        if secondary || retry_after.is_some() || status == 429 {
            let wait = retry_after.unwrap_or_else(|| {
                // GitHub: without retry-after, a secondary limit with no
                // requests left waits for the reset; otherwise a minute.
                match (remaining, header_i64(headers, "x-ratelimit-reset")) {
                    (Some(0), Some(reset)) => until_epoch(reset, now),
                    _ => SECONDARY_DEFAULT_WAIT,
                }
            });
            return Some(Throttle::Secondary(wait));
        }
        None
    }

    /// Pauses calls for `wait`: those of `resource` for a primary limit,
    /// every call for a secondary one.
    pub fn pause(&self, throttle: Throttle, resource: &str) {
        let until = SystemTime::now() + throttle.wait().min(MAX_WAIT);
        let mut inner = self.lock();
        let slot = match throttle {
            Throttle::Primary(_) => {
                &mut inner
                    .buckets
                    .entry(resource.to_owned())
                    .or_default()
                    .paused_until
            }
            Throttle::Secondary(_) => &mut inner.secondary_until,
        };
        if slot.is_none_or(|t| t < until) {
            *slot = Some(until);
        }
    }

    /// How long calls charged to `resource` are still paused, if they are.
    pub fn paused_for(&self, resource: &str) -> Option<Duration> {
        let inner = self.lock();
        let now = SystemTime::now();
        inner
            .buckets
            .get(resource)
            .and_then(|b| b.paused_until)
            .into_iter()
            .chain(inner.secondary_until)
            .filter_map(|until| until.duration_since(now).ok())
            .filter(|d| !d.is_zero())
            .max()
    }

    /// A snapshot for `/health`.
    pub fn snapshot(&self) -> RateLimitSnapshot {
        let inner = self.lock().clone();
        let now = SystemTime::now();
        let live = |t: Option<SystemTime>| t.filter(|t| *t > now).map(DateTime::<Utc>::from);
        RateLimitSnapshot {
            buckets: inner
                .buckets
                .into_iter()
                .map(|(name, b)| {
                    (
                        name,
                        BucketSnapshot {
                            limit: b.limit,
                            remaining: b.remaining,
                            used: b.used,
                            reset: b.reset,
                            paused_until: live(b.paused_until),
                        },
                    )
                })
                .collect(),
            secondary_paused_until: live(inner.secondary_until),
        }
    }
}

/// Seconds from GitHub, negative ones as zero and huge ones as [`MAX_WAIT`].
fn seconds_clamped(seconds: i64) -> Duration {
    Duration::from_secs(seconds.clamp(0, MAX_WAIT.as_secs() as i64) as u64)
}

/// The wait until an epoch-seconds reset: at least a second (the reset is
/// inclusive), at most [`MAX_WAIT`].
fn until_epoch(reset: i64, now: SystemTime) -> Duration {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs().min(i64::MAX as u64) as i64);
    seconds_clamped(reset.saturating_sub(now).max(1))
}

fn epoch_to_datetime(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(seconds, 0)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn header_i64(headers: &HeaderMap, name: &str) -> Option<i64> {
    header_str(headers, name)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    fn epoch_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn primary_limit_waits_for_reset() {
        let reset = (epoch_now() + 60).to_string();
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
    fn absurd_values_are_clamped() {
        let h = headers(&[("retry-after", "99999999999")]);
        assert_eq!(
            RateLimitState::classify(429, &h, "", ""),
            Some(Throttle::Secondary(MAX_WAIT))
        );
        // The year 3000.
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "32503680000"),
        ]);
        assert_eq!(
            RateLimitState::classify(403, &h, "", "API rate limit exceeded"),
            Some(Throttle::Primary(MAX_WAIT))
        );
        let h = headers(&[("retry-after", "-5")]);
        assert_eq!(
            RateLimitState::classify(429, &h, "", ""),
            Some(Throttle::Secondary(Duration::ZERO))
        );
    }

    #[test]
    fn an_exhausted_bucket_pauses_only_itself() {
        let state = RateLimitState::default();
        state.pause(
            Throttle::Primary(Duration::from_secs(30)),
            RUNNER_REGISTRATION,
        );
        assert!(state.paused_for(RUNNER_REGISTRATION).unwrap() > Duration::from_secs(25));
        assert_eq!(state.paused_for(CORE), None);
        state.pause(Throttle::Secondary(Duration::from_secs(5)), CORE);
        assert!(state.paused_for(CORE).unwrap() > Duration::from_secs(3));
        assert!(state.paused_for(RUNNER_REGISTRATION).unwrap() > Duration::from_secs(25));
    }

    #[test]
    fn answers_are_filed_under_their_resource() {
        let state = RateLimitState::default();
        state.observe(
            &headers(&[
                ("x-ratelimit-limit", "10000"),
                ("x-ratelimit-remaining", "9999"),
                ("x-ratelimit-used", "1"),
                ("x-ratelimit-reset", "1700000000"),
                ("x-ratelimit-resource", "actions_runner_registration"),
            ]),
            CORE,
        );
        state.observe(
            &headers(&[
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", "42"),
            ]),
            CORE,
        );
        let snapshot = state.snapshot();
        assert_eq!(snapshot.buckets[RUNNER_REGISTRATION].remaining, Some(9999));
        assert_eq!(snapshot.core().remaining, Some(42));
    }

    #[test]
    fn each_installations_budgets_are_kept_apart() {
        let busy = RateLimitState::default();
        busy.observe(
            &headers(&[
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", "10"),
            ]),
            CORE,
        );
        let quiet = RateLimitState::default();
        quiet.observe(
            &headers(&[
                ("x-ratelimit-limit", "12500"),
                ("x-ratelimit-remaining", "12000"),
            ]),
            CORE,
        );
        quiet.pause(Throttle::Secondary(Duration::from_secs(30)), CORE);
        let merged = RateLimitSnapshot::merge(vec![
            ("installation/1".to_owned(), busy.snapshot()),
            ("installation/2".to_owned(), quiet.snapshot()),
        ]);
        assert_eq!(merged.buckets["installation/2/core"].limit, Some(12500));
        assert_eq!(merged.core().remaining, Some(10), "the one with least left");
        assert!(merged.secondary_paused_until.is_some());
        assert_eq!(
            RateLimitSnapshot::default().core(),
            BucketSnapshot::default()
        );
    }

    #[test]
    fn requests_are_charged_like_github_charges_them() {
        let jit = "/repos/o/r/actions/runners/generate-jitconfig";
        assert_eq!(resource_of(&Method::POST, jit), RUNNER_REGISTRATION);
        assert_eq!(
            resource_of(&Method::POST, "/orgs/o/actions/runners/registration-token"),
            RUNNER_REGISTRATION
        );
        assert_eq!(
            resource_of(&Method::GET, "/orgs/o/actions/runners?per_page=100"),
            CORE
        );
        assert_eq!(
            resource_of(&Method::DELETE, "/orgs/o/actions/runners/7"),
            CORE
        );
    }

    proptest! {
        /// Whatever GitHub (or a proxy) puts in these headers, reading them
        /// never panics and never asks for a wait longer than an hour.
        #[test]
        fn header_parsing_never_panics_and_stays_bounded(
            status in prop_oneof![Just(403u16), Just(429u16), 100u16..600],
            retry_after in proptest::option::of(any::<i64>().prop_map(|n| n.to_string())),
            remaining in proptest::option::of(any::<i64>().prop_map(|n| n.to_string())),
            reset in proptest::option::of(any::<i64>().prop_map(|n| n.to_string())),
            garbage in "[ -~]{0,24}",
        ) {
            let mut h = HeaderMap::new();
            if let Some(v) = &retry_after { h.insert("retry-after", v.parse().unwrap()); }
            if let Some(v) = &remaining { h.insert("x-ratelimit-remaining", v.parse().unwrap()); }
            if let Some(v) = &reset { h.insert("x-ratelimit-reset", v.parse().unwrap()); }
            if let Ok(v) = garbage.parse() { h.insert("x-ratelimit-limit", v); }
            if let Some(t) = RateLimitState::classify(status, &h, "", &garbage) {
                prop_assert!(t.wait() <= MAX_WAIT);
            }
            let state = RateLimitState::default();
            state.observe(&h, CORE);
            if let Some(t) = RateLimitState::classify(status, &h, "", "") {
                state.pause(t, CORE);
                prop_assert!(state.paused_for(CORE).unwrap_or_default() <= MAX_WAIT);
            }
            let _ = state.snapshot();
        }
    }
}
