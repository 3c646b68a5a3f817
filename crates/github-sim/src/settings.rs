//! Settings a test may change while the simulator runs (`GET`/`PATCH /_sim/settings`).
//!
//! Each starts from its `SimConfig` flag. They live in the world, under its one lock, so a
//! change takes effect for the very next request or event.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::SimConfig;

/// The longest listing lag accepted (a day): longer is surely a mistake.
const MAX_LAG_SECONDS: u64 = 86_400;
/// The longest installation token lifetime accepted: GitHub's hour.
pub(crate) const MAX_TOKEN_LIFETIME_SECONDS: u64 = 3600;

/// How webhook bodies are encoded, as a GitHub hook's `content_type` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WebhookContentType {
    /// `application/json`: the payload is the body.
    Json,
    /// `application/x-www-form-urlencoded`: the body is `payload=<percent-encoded JSON>`
    /// (GitHub's default for a new hook).
    Form,
}

impl WebhookContentType {
    /// The name GitHub uses in `hook.config.content_type`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Form => "form",
        }
    }

    /// The `Content-Type` header of a delivery.
    pub(crate) fn mime(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Form => "application/x-www-form-urlencoded",
        }
    }
}

/// The runtime settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Run listings filtered by `status` answer as of this many seconds ago (GitHub serves
    /// them from a search index that lags); 0 = current.
    pub(crate) run_listing_lag_seconds: u64,
    /// Encoding of webhook bodies emitted from now on.
    pub(crate) webhook_content_type: WebhookContentType,
    /// GitHub-surface requests allowed in flight at once (secondary limit); 0 = no limit.
    pub(crate) max_concurrent_requests: u64,
    /// Hourly budget of the `core` bucket, per token.
    pub(crate) rate_limit_per_hour: u64,
    /// Hourly budget of the `actions_runner_registration` bucket, per token.
    pub(crate) registration_rate_limit_per_hour: u64,
    /// How long an installation token lives (GitHub: an hour); tests shorten it to seconds.
    pub(crate) installation_token_lifetime_seconds: u64,
    /// Hourly `core` budget of each installation; 0: GitHub's rule (5,000, plus 50 per
    /// repository of the owner beyond 20, at most 12,500).
    pub(crate) installation_rate_limit_per_hour: u64,
}

impl Settings {
    /// The settings a configuration starts with.
    pub(crate) fn from_config(config: &SimConfig) -> Self {
        Self {
            run_listing_lag_seconds: config.run_listing_lag_seconds,
            webhook_content_type: config.webhook_content_type,
            max_concurrent_requests: config.max_concurrent_requests,
            rate_limit_per_hour: config.rate_limit_per_hour,
            registration_rate_limit_per_hour: config.registration_rate_limit_per_hour,
            installation_token_lifetime_seconds: config.installation_token_lifetime_seconds,
            installation_rate_limit_per_hour: config.installation_rate_limit_per_hour,
        }
    }

    /// The settings as `GET /_sim/settings` shows them.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "run_listing_lag_seconds": self.run_listing_lag_seconds,
            "webhook_content_type": self.webhook_content_type.as_str(),
            "max_concurrent_requests": self.max_concurrent_requests,
            "rate_limit_per_hour": self.rate_limit_per_hour,
            "registration_rate_limit_per_hour": self.registration_rate_limit_per_hour,
            "installation_token_lifetime_seconds": self.installation_token_lifetime_seconds,
            "installation_rate_limit_per_hour": self.installation_rate_limit_per_hour,
        })
    }

    /// Applies a `PATCH` body: all of it, or (on any error) none of it.
    ///
    /// # Errors
    /// A body that is not an object, an unknown key, or a value of the wrong type or range;
    /// the message names the key.
    pub(crate) fn patch(&mut self, body: &Value) -> Result<(), String> {
        let Some(object) = body.as_object() else {
            return Err("the body must be a JSON object of settings".to_owned());
        };
        let mut next = self.clone();
        for (key, value) in object {
            match key.as_str() {
                "run_listing_lag_seconds" => {
                    let lag = count(key, value)?;
                    if lag > MAX_LAG_SECONDS {
                        return Err(format!("{key} must be at most {MAX_LAG_SECONDS}"));
                    }
                    next.run_listing_lag_seconds = lag;
                }
                "webhook_content_type" => {
                    next.webhook_content_type = match value.as_str() {
                        Some("json") => WebhookContentType::Json,
                        Some("form") => WebhookContentType::Form,
                        _ => return Err(format!("{key} must be \"json\" or \"form\"")),
                    };
                }
                "max_concurrent_requests" => next.max_concurrent_requests = count(key, value)?,
                "rate_limit_per_hour" => next.rate_limit_per_hour = count(key, value)?,
                "registration_rate_limit_per_hour" => {
                    next.registration_rate_limit_per_hour = count(key, value)?;
                }
                "installation_token_lifetime_seconds" => {
                    let lifetime = count(key, value)?;
                    if !(1..=MAX_TOKEN_LIFETIME_SECONDS).contains(&lifetime) {
                        return Err(format!(
                            "{key} must be from 1 to {MAX_TOKEN_LIFETIME_SECONDS}"
                        ));
                    }
                    next.installation_token_lifetime_seconds = lifetime;
                }
                "installation_rate_limit_per_hour" => {
                    next.installation_rate_limit_per_hour = count(key, value)?;
                }
                other => {
                    let known = known_keys(&self.to_json());
                    return Err(format!("unknown setting {other:?}; known: {known}"));
                }
            }
        }
        *self = next;
        Ok(())
    }
}

fn count(key: &str, value: &Value) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("{key} must be a non-negative integer"))
}

fn known_keys(view: &Value) -> String {
    view.as_object()
        .map(Map::keys)
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn a_patch_applies_whole_or_not_at_all() {
        let config = SimConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut settings = Settings::from_config(&config);
        let before = settings.clone();
        for bad in [
            json!([]),
            json!({"run_listing_lag_seconds": -1}),
            json!({"run_listing_lag_seconds": 1, "webhook_content_type": "xml"}),
            json!({"max_concurrent_requests": "2"}),
            json!({"nope": 1}),
            json!({"run_listing_lag_seconds": MAX_LAG_SECONDS + 1}),
            json!({"installation_token_lifetime_seconds": 0}),
            json!({"installation_token_lifetime_seconds": 3601}),
        ] {
            assert!(settings.patch(&bad).is_err(), "{bad}");
            assert_eq!(settings, before, "{bad}");
        }
        settings
            .patch(&json!({"run_listing_lag_seconds": 5, "webhook_content_type": "form"}))
            .unwrap();
        assert_eq!(settings.run_listing_lag_seconds, 5);
        assert_eq!(settings.webhook_content_type, WebhookContentType::Form);
        let unknown = settings.patch(&json!({"lag": 1})).unwrap_err();
        assert!(unknown.contains("run_listing_lag_seconds"), "{unknown}");
    }
}
