//! Primary rate limits: an hourly budget per caller (token, installation, App) and bucket (`core`,
//! `actions_runner_registration`), and the `x-ratelimit-*` headers that describe one.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::world::World;

/// Length of a rate-limit window.
const WINDOW_SECS: u64 = 3600;
/// Budget of unauthenticated callers (only reported, on 401 answers).
pub(crate) const UNAUTHENTICATED_LIMIT: u64 = 60;
/// Caller key of requests without valid credentials.
pub(crate) const UNAUTHENTICATED: &str = "unauthenticated";

/// A bucket GitHub charges requests to (`x-ratelimit-resource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Resource {
    /// Everything not charged elsewhere.
    Core,
    /// `generate-jitconfig` and `registration-token`, repository and organization.
    ActionsRunnerRegistration,
}

impl Resource {
    /// The bucket a request is charged to, from its route template (without `/api/v3`).
    pub(crate) fn of(method: &str, template: &str) -> Self {
        let registers = template.ends_with("/actions/runners/generate-jitconfig")
            || template.ends_with("/actions/runners/registration-token");
        if method == "POST" && registers {
            Self::ActionsRunnerRegistration
        } else {
            Self::Core
        }
    }

    /// Its name in headers and in `GET /rate_limit`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Core => "core",
            Self::ActionsRunnerRegistration => "actions_runner_registration",
        }
    }
}

/// The state of one budget, as the headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) resource: Resource,
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    pub(crate) used: u64,
    /// Epoch seconds at which the window resets.
    pub(crate) reset: u64,
}

impl Snapshot {
    /// The `rate-limit` schema object.
    pub(crate) fn to_json(self) -> Value {
        json!({"limit": self.limit, "remaining": self.remaining, "reset": self.reset,
               "used": self.used})
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    window_start: u64,
    used: u64,
}

/// Usage keyed by caller (`token#N`, `installation#ID`, `app#ID` or `unauthenticated`,
/// never the credential itself) and
/// bucket. The limits are not kept here: they are settings, passed in on each call.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: HashMap<(String, Resource), Bucket>,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl RateLimiter {
    fn bucket(&mut self, key: &str, resource: Resource) -> &mut Bucket {
        let now = now_secs();
        let bucket = self
            .buckets
            .entry((key.to_owned(), resource))
            .or_insert(Bucket {
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

    /// The current state of `key`'s `resource` budget of `limit`.
    pub(crate) fn snapshot(&mut self, key: &str, resource: Resource, limit: u64) -> Snapshot {
        let bucket = *self.bucket(key, resource);
        Snapshot {
            resource,
            limit,
            remaining: limit.saturating_sub(bucket.used),
            used: bucket.used,
            reset: bucket.window_start + WINDOW_SECS,
        }
    }

    /// Spends one request; `Err` (nothing spent) when the budget is exhausted.
    pub(crate) fn take(
        &mut self,
        key: &str,
        resource: Resource,
        limit: u64,
    ) -> Result<Snapshot, Snapshot> {
        let bucket = self.bucket(key, resource);
        if bucket.used >= limit {
            return Err(self.snapshot(key, resource, limit));
        }
        bucket.used += 1;
        Ok(self.snapshot(key, resource, limit))
    }

    /// Spends one request even past the limit (used for reporting unauthenticated calls).
    pub(crate) fn count(&mut self, key: &str, resource: Resource, limit: u64) -> Snapshot {
        self.bucket(key, resource).used += 1;
        self.snapshot(key, resource, limit)
    }

    /// Gives back one request (a 304 answer does not count).
    pub(crate) fn refund(&mut self, key: &str, resource: Resource, limit: u64) -> Snapshot {
        let bucket = self.bucket(key, resource);
        bucket.used = bucket.used.saturating_sub(1);
        self.snapshot(key, resource, limit)
    }
}

impl World {
    /// The hourly limit of `key`'s `resource` bucket, from the settings.
    pub(crate) fn rate_limit(&self, key: &str, resource: Resource) -> u64 {
        match resource {
            _ if key == UNAUTHENTICATED => UNAUTHENTICATED_LIMIT,
            Resource::Core => match key.strip_prefix("installation#") {
                Some(id) => self.installation_rate_limit(id.parse().unwrap_or(0)),
                None => self.settings.rate_limit_per_hour,
            },
            Resource::ActionsRunnerRegistration => self.settings.registration_rate_limit_per_hour,
        }
    }

    /// The hourly `core` budget of installation `id`: the setting, or GitHub's rule for
    /// installations (5,000, plus 50 per repository of the owner beyond 20, at most 12,500).
    pub(crate) fn installation_rate_limit(&self, id: u64) -> u64 {
        if self.settings.installation_rate_limit_per_hour > 0 {
            return self.settings.installation_rate_limit_per_hour;
        }
        let repositories = self.apps.installations.get(&id).map_or(0, |i| {
            self.repos
                .values()
                .filter(|r| r.owner_key == i.owner_key)
                .count() as u64
        });
        (5000 + 50 * repositories.saturating_sub(20)).min(12_500)
    }

    /// The state of `key`'s `resource` bucket.
    pub(crate) fn rate_snapshot(&mut self, key: &str, resource: Resource) -> Snapshot {
        let limit = self.rate_limit(key, resource);
        self.rate.snapshot(key, resource, limit)
    }

    /// Charges one request to `key`'s `resource` bucket; `Err` when it is exhausted.
    pub(crate) fn rate_take(
        &mut self,
        key: &str,
        resource: Resource,
    ) -> Result<Snapshot, Snapshot> {
        let limit = self.rate_limit(key, resource);
        self.rate.take(key, resource, limit)
    }

    /// Counts one request to `key`'s `resource` bucket even past its limit.
    pub(crate) fn rate_count(&mut self, key: &str, resource: Resource) -> Snapshot {
        let limit = self.rate_limit(key, resource);
        self.rate.count(key, resource, limit)
    }

    /// Gives back one request to `key`'s `resource` bucket.
    pub(crate) fn rate_refund(&mut self, key: &str, resource: Resource) -> Snapshot {
        let limit = self.rate_limit(key, resource);
        self.rate.refund(key, resource, limit)
    }

    /// The `resources` of `GET /rate_limit` for `key`: the modelled buckets as they are,
    /// the others GitHub lists (search is required by the schema) at their fresh budgets.
    pub(crate) fn rate_resources(&mut self, key: &str) -> Value {
        let core = self.rate_snapshot(key, Resource::Core).to_json();
        let registration = self
            .rate_snapshot(key, Resource::ActionsRunnerRegistration)
            .to_json();
        let now = now_secs();
        let fresh = |limit: u64, window: u64| json!({"limit": limit, "remaining": limit, "reset": now + window, "used": 0});
        json!({
            "core": core,
            "search": fresh(30, 60),
            "graphql": fresh(5000, WINDOW_SECS),
            "code_search": fresh(10, 60),
            "integration_manifest": fresh(5000, WINDOW_SECS),
            "actions_runner_registration": registration,
        })
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
    headers.insert(
        "x-ratelimit-resource",
        HeaderValue::from_static(snapshot.resource.name()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausts_and_refunds_each_bucket_on_its_own() {
        let mut limiter = RateLimiter::default();
        let core = Resource::Core;
        assert_eq!(limiter.take("t", core, 2).unwrap().remaining, 1);
        assert_eq!(limiter.take("t", core, 2).unwrap().remaining, 0);
        let denied = limiter.take("t", core, 2).unwrap_err();
        assert_eq!((denied.remaining, denied.used), (0, 2));
        let registration = Resource::ActionsRunnerRegistration;
        assert_eq!(limiter.take("t", registration, 2).unwrap().remaining, 1);
        assert_eq!(limiter.refund("t", core, 2).remaining, 1);
        assert!(limiter.snapshot("t", core, 2).reset > now_secs());
    }

    #[test]
    fn registration_routes_have_their_own_bucket() {
        for template in [
            "/repos/{owner}/{repo}/actions/runners/generate-jitconfig",
            "/orgs/{org}/actions/runners/registration-token",
        ] {
            assert_eq!(
                Resource::of("POST", template),
                Resource::ActionsRunnerRegistration
            );
        }
        for (method, template) in [
            ("POST", "/orgs/{org}/actions/runners/remove-token"),
            ("GET", "/repos/{owner}/{repo}/actions/runners"),
        ] {
            assert_eq!(Resource::of(method, template), Resource::Core);
        }
    }
}
