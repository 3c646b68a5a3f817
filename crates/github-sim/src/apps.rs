//! GitHub Apps: each App with its public key, its installations on owners, the JWT check
//! GitHub makes for App-authenticated requests, and the installation tokens it hands out.
//!
//! As on GitHub: a JWT must be RS256, signed with the key of the App its `iss` names (the
//! App's id or its client id), with an `iat` not in the future beyond [`JWT_CLOCK_SKEW`]
//! and an `exp` in the future and at most ten minutes after `iat`. An installation token
//! opens only its own account's repositories and organization, and is refused (401) once
//! its `expires_at` has passed. Tokens are kept as SHA-256 digests, never in clear.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::world::{World, random_hex};

/// How far in the future an `iat` may be (the clocks of GitHub and the App's host differ).
pub(crate) const JWT_CLOCK_SKEW: i64 = 30;
/// The longest a JWT may live: `exp` at most ten minutes after `iat`.
pub(crate) const JWT_MAX_LIFETIME: i64 = 600;
/// GitHub's answer to a JWT it cannot verify (bad signature, unknown `iss`, not a JWT).
pub(crate) const JWT_UNDECODABLE: &str = "A JSON web token could not be decoded";

/// A registered GitHub App.
pub(crate) struct App {
    pub(crate) id: u64,
    /// The App's client id (`Iv23li…`), also accepted as `iss`.
    pub(crate) client_id: String,
    pub(crate) slug: String,
    key: DecodingKey,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// An App installed on an owner (a user or an organization).
#[derive(Debug, Clone)]
pub(crate) struct Installation {
    pub(crate) id: u64,
    pub(crate) app_id: u64,
    /// Lower-case key of the owner in `World::owners`.
    pub(crate) owner_key: String,
    pub(crate) created_at: DateTime<Utc>,
}

/// An installation token handed out, known by its digest.
#[derive(Debug, Clone)]
struct IssuedToken {
    installation_id: u64,
    expires_at: DateTime<Utc>,
}

/// Who a request authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The configured token at this index (a personal access token).
    Token(usize),
    /// An installation token: the installation and the owner it opens.
    Installation { id: u64, owner_key: String },
    /// A GitHub App, by JWT.
    App(u64),
}

impl Caller {
    /// The key of the caller's rate-limit budgets (never the credential itself).
    pub(crate) fn key(&self) -> String {
        match self {
            Self::Token(index) => format!("token#{index}"),
            Self::Installation { id, .. } => format!("installation#{id}"),
            Self::App(id) => format!("app#{id}"),
        }
    }
}

/// What a presented installation token turned out to be.
#[derive(Debug)]
pub(crate) enum TokenCheck {
    /// Valid: the caller it authenticates.
    Valid(Caller),
    /// Ours, but past its `expires_at`.
    Expired,
    /// Not an installation token we handed out.
    Unknown,
}

/// The claims GitHub reads from an App's JWT.
#[derive(Debug, Deserialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: Issuer,
}

/// `iss` as a number (the App id) or a string (the App id or its client id).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Issuer {
    Number(u64),
    Text(String),
}

/// Every App, installation and installation token.
#[derive(Debug)]
pub(crate) struct Apps {
    apps: BTreeMap<u64, App>,
    pub(crate) installations: BTreeMap<u64, Installation>,
    /// By SHA-256 of the token.
    tokens: HashMap<[u8; 32], IssuedToken>,
    /// Installation tokens handed out, per installation (`/_sim/stats`, `/_sim/apps`).
    pub(crate) tokens_issued: BTreeMap<u64, u64>,
    next_installation_id: u64,
}

impl Default for Apps {
    fn default() -> Self {
        Self {
            apps: BTreeMap::new(),
            installations: BTreeMap::new(),
            tokens: HashMap::new(),
            tokens_issued: BTreeMap::new(),
            // A range of their own, so a client that mixes up App, installation and
            // runner ids fails.
            next_installation_id: 40_000_001,
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether a credential has the shape of a JWT (three base64url parts, a JSON header).
pub(crate) fn looks_like_jwt(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.split('.').count() == 3
}

impl Apps {
    /// Registers App `id` with its public key (PEM, `PUBLIC KEY` or `RSA PUBLIC KEY`).
    ///
    /// # Errors
    /// An id of 0, an id already registered, or a key that is not an RSA public key.
    pub(crate) fn add_app(&mut self, id: u64, public_key_pem: &[u8]) -> Result<&App, String> {
        if id == 0 {
            return Err("an App id is a positive integer".to_owned());
        }
        if self.apps.contains_key(&id) {
            return Err(format!("App {id} already exists"));
        }
        let key = DecodingKey::from_rsa_pem(public_key_pem)
            .map_err(|e| format!("the App's public key is not an RSA public key in PEM: {e}"))?;
        let app = App {
            id,
            client_id: format!("Iv23li{}", random_hex(14)),
            slug: format!("sim-app-{id}"),
            key,
        };
        Ok(self.apps.entry(id).or_insert(app))
    }

    /// Every App, by id.
    pub(crate) fn apps(&self) -> impl Iterator<Item = &App> {
        self.apps.values()
    }

    /// App `id`, if registered.
    pub(crate) fn app(&self, id: u64) -> Option<&App> {
        self.apps.get(&id)
    }

    /// Installs App `app_id` on the owner `owner_key` (an existing installation is
    /// returned as it is); returns the installation's id.
    ///
    /// # Errors
    /// An unknown App.
    pub(crate) fn install(&mut self, app_id: u64, owner_key: &str) -> Result<u64, String> {
        if !self.apps.contains_key(&app_id) {
            return Err(format!("unknown App {app_id}"));
        }
        if let Some(existing) = self.installation_on(app_id, owner_key) {
            return Ok(existing.id);
        }
        let id = self.next_installation_id;
        self.next_installation_id += 1;
        self.installations.insert(
            id,
            Installation {
                id,
                app_id,
                owner_key: owner_key.to_owned(),
                created_at: Utc::now(),
            },
        );
        Ok(id)
    }

    /// App `app_id`'s installation on owner `owner_key`, if it is installed there.
    pub(crate) fn installation_on(&self, app_id: u64, owner_key: &str) -> Option<&Installation> {
        self.installations
            .values()
            .find(|i| i.app_id == app_id && i.owner_key == owner_key)
    }

    /// Checks an App's JWT as GitHub does, at `now` (epoch seconds); returns the App's id.
    ///
    /// # Errors
    /// GitHub's message for the first rule the JWT breaks.
    pub(crate) fn verify_jwt(&self, jwt: &str, now: i64) -> Result<u64, &'static str> {
        // The key to check the signature with is the one of the App `iss` names, so the
        // claims are read first, unverified, only to find it.
        let claims: Claims = jwt
            .split('.')
            .nth(1)
            .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(JWT_UNDECODABLE)?;
        let app = match &claims.iss {
            Issuer::Number(id) => self.apps.get(id),
            Issuer::Text(text) => match text.parse::<u64>() {
                Ok(id) => self.apps.get(&id),
                Err(_) => self.apps.values().find(|a| a.client_id == *text),
            },
        }
        .ok_or(JWT_UNDECODABLE)?;
        let mut validation = Validation::new(Algorithm::RS256);
        // The time claims are checked below, with GitHub's own rules and messages.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(jwt, &app.key, &validation)
            .map_err(|_| JWT_UNDECODABLE)?;
        if claims.iat > now + JWT_CLOCK_SKEW {
            return Err(
                "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
            );
        }
        if claims.exp <= now {
            return Err(
                "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
            );
        }
        if claims.exp - claims.iat > JWT_MAX_LIFETIME {
            return Err("'Expiration time' claim ('exp') is too far in the future");
        }
        Ok(app.id)
    }

    /// Hands out a token for installation `id`, valid for `lifetime`; returns it with its
    /// `expires_at`.
    pub(crate) fn issue_token(
        &mut self,
        installation_id: u64,
        lifetime: ChronoDuration,
    ) -> (String, DateTime<Utc>) {
        let token = format!("ghs_{}", random_hex(36));
        let expires_at = Utc::now() + lifetime;
        let now = Utc::now();
        // Forget the long expired, so a long run does not grow without bound.
        self.tokens
            .retain(|_, t| t.expires_at + ChronoDuration::hours(1) > now);
        self.tokens.insert(
            digest(&token),
            IssuedToken {
                installation_id,
                expires_at,
            },
        );
        *self.tokens_issued.entry(installation_id).or_default() += 1;
        (token, expires_at)
    }

    /// What `token` is: a valid installation token, an expired one, or none of ours.
    pub(crate) fn check_token(&self, token: &str, now: DateTime<Utc>) -> TokenCheck {
        let Some(issued) = self.tokens.get(&digest(token)) else {
            return TokenCheck::Unknown;
        };
        if issued.expires_at <= now {
            return TokenCheck::Expired;
        }
        match self.installations.get(&issued.installation_id) {
            Some(installation) => TokenCheck::Valid(Caller::Installation {
                id: installation.id,
                owner_key: installation.owner_key.clone(),
            }),
            None => TokenCheck::Unknown,
        }
    }
}

impl World {
    /// Installs App `app_id` on the owner `login` (case-insensitive); returns the
    /// installation's id.
    ///
    /// # Errors
    /// An unknown App or owner.
    pub(crate) fn install_app(&mut self, app_id: u64, login: &str) -> Result<u64, String> {
        let owner_key = login.to_lowercase();
        if !self.owners.contains_key(&owner_key) {
            return Err(format!(
                "unknown owner {login:?}: installations go on an organization or on the owner of a repository"
            ));
        }
        self.apps.install(app_id, &owner_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_have_budget_keys_of_their_own() {
        assert_eq!(Caller::Token(0).key(), "token#0");
        assert_eq!(Caller::App(7).key(), "app#7");
        let installation = Caller::Installation {
            id: 9,
            owner_key: "acme".into(),
        };
        assert_eq!(installation.key(), "installation#9");
    }

    #[test]
    fn only_jwt_shaped_credentials_are_read_as_jwts() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjF9.c2ln"));
        assert!(!looks_like_jwt("ghs_0123"));
        assert!(!looks_like_jwt("eyJhbGciOiJSUzI1NiJ9"));
    }

    #[test]
    fn garbage_is_not_a_jwt_of_any_app() {
        let apps = Apps::default();
        assert_eq!(
            apps.verify_jwt("eyJ.eyJ.x", 1_700_000_000),
            Err(JWT_UNDECODABLE)
        );
    }

    #[test]
    fn installation_tokens_expire_and_open_only_their_owner() {
        let mut apps = Apps::default();
        // No key needed for the token bookkeeping: install on a bare App entry.
        apps.apps.insert(
            1,
            App {
                id: 1,
                client_id: "Iv23lix".into(),
                slug: "s".into(),
                key: DecodingKey::from_secret(b"unused"),
            },
        );
        let id = apps.install(1, "acme").unwrap();
        assert_eq!(apps.install(1, "acme").unwrap(), id, "installing twice");
        let (token, expires_at) = apps.issue_token(id, ChronoDuration::seconds(5));
        match apps.check_token(&token, Utc::now()) {
            TokenCheck::Valid(Caller::Installation { owner_key, .. }) => {
                assert_eq!(owner_key, "acme");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            apps.check_token(&token, expires_at),
            TokenCheck::Expired
        ));
        assert!(matches!(
            apps.check_token("ghs_nope", Utc::now()),
            TokenCheck::Unknown
        ));
        assert_eq!(apps.tokens_issued[&id], 1);
    }
}
