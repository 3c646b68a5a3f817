//! API-key authentication: a key in `X-API-Key` or `Authorization: Bearer`,
//! checked in constant time against the keys of `API_KEYS_FILE` and
//! `API_KEYS`.
//!
//! Only the handlers that need a key take [`Authenticated`] (the runner
//! routes), so the open paths — health, docs, `/openapi.json` and the
//! GitHub webhook, which GitHub cannot send a key to and whose signature the
//! orchestrator checks — are open by construction, not by a list of
//! prefixes that could match more than meant.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::AppState;
use crate::error::ApiError;

/// The header a client puts its key in (or `Authorization: Bearer KEY`).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The message of the 401 for a request without a key.
pub const MISSING_KEY: &str =
    "an API key is required: send it in X-API-Key or Authorization: Bearer";

/// The message of the 401 for a key that is not one of the accepted ones.
pub const WRONG_KEY: &str = "the API key is not valid";

/// The accepted keys, kept only as SHA-256 digests: comparing fixed-length
/// digests means the comparison takes the same time whatever the length or
/// content of the key presented.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Arc<[[u8; 32]]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.digests.len())
            .finish()
    }
}

impl ApiKeys {
    /// The accepted keys.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a SecretString>) -> Self {
        Self {
            digests: keys
                .into_iter()
                .map(|k| digest(k.expose_secret()))
                .collect(),
        }
    }

    /// Whether `presented`, the key a request came with, lets it in:
    /// any request while authentication is off, else one with a key.
    ///
    /// # Errors
    /// The 401 to answer.
    pub fn check(&self, presented: Option<&str>) -> Result<(), ApiError> {
        if !self.enabled() {
            return Ok(());
        }
        match presented {
            Some(key) if self.accepts(key) => Ok(()),
            Some(_) => Err(ApiError::unauthorized(WRONG_KEY)),
            None => Err(ApiError::unauthorized(MISSING_KEY)),
        }
    }

    /// How many keys are accepted.
    pub fn count(&self) -> usize {
        self.digests.len()
    }

    /// Whether any key is required at all.
    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys. Every key is compared, with
    /// no early exit.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        let matched = self
            .digests
            .iter()
            .fold(Choice::from(0), |acc, key| acc | key.ct_eq(&presented));
        matched.into()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The key a request presents: the (first) `X-API-Key` value or, failing
/// that, an `Authorization: Bearer` one; `None` when absent or not visible
/// ASCII.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// A request that presented an accepted key (or came while authentication
/// is off). A handler requires a key by taking this as its first argument:
/// the check runs before any other extractor, and a missing or wrong key
/// is a 401 with `WWW-Authenticate`.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated;

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !state.keys.enabled() {
            return Ok(Self);
        }
        state
            .keys
            .check(presented_key(&parts.headers))
            .map(|()| Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn accepts_only_configured_keys() {
        let secrets = [SecretString::from("alpha"), SecretString::from("beta")];
        let keys = ApiKeys::new(&secrets);
        assert!(keys.enabled());
        assert!(keys.accepts("alpha"));
        assert!(keys.accepts("beta"));
        assert!(!keys.accepts("alph"));
        assert!(!keys.accepts(""));
    }

    #[test]
    fn reads_both_header_forms() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  k1 "),
        );
        assert_eq!(presented_key(&headers), Some("k1"));
        headers.insert(API_KEY_HEADER, HeaderValue::from_static("k2"));
        assert_eq!(presented_key(&headers), Some("k2"));
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(presented_key(&basic), None);
    }

    #[test]
    fn debug_does_not_show_keys() {
        let keys = ApiKeys::new(&[SecretString::from("hunter2")]);
        assert!(!format!("{keys:?}").contains("hunter2"));
    }
}
