//! Who the orchestrator is on GitHub: a personal access token, or a GitHub
//! App (see [`app`]), and the `Authorization` header each request carries.
//!
//! A token is one credential for every scope. An App acts on an owner
//! (user or organization) through that owner's installation, each with a
//! token of its own that expires within the hour; [`Credentials::authorize`]
//! picks the installation from the scope a request is about. The key a
//! request was made with ([`CredentialKey`]) also names the rate-limit
//! budgets it is charged to: an App's installations have budgets of their
//! own.

pub mod app;

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use super::GitHubError;
use crate::scope::Scope;
pub use app::{AppCredentials, AppSettings};

/// How the orchestrator authenticates, as configured.
#[derive(Debug)]
pub enum GitHubAuth {
    /// A personal access token (`GITHUB_TOKEN`, `GITHUB_TOKEN_FILE`).
    Token(SecretString),
    /// A GitHub App (`GITHUB_APP_ID`, `GITHUB_APP_PRIVATE_KEY_FILE`).
    App(AppSettings),
}

/// Which credential a request was sent with: what its rate-limit budgets
/// are filed under, and what a 401 renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialKey {
    /// The personal access token.
    Token,
    /// The App itself, by JWT (installation look-ups, minting tokens).
    App,
    /// An installation token of the installation with this id.
    Installation(u64),
}

impl fmt::Display for CredentialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token => f.write_str("token"),
            Self::App => f.write_str("app"),
            Self::Installation(id) => write!(f, "installation/{id}"),
        }
    }
}

/// What a request acts on, which decides the credential it needs.
#[derive(Debug, Clone, Copy)]
pub enum Acting<'a> {
    /// A repository's or an organization's endpoints: with an App, the
    /// installation on its owner.
    On(&'a Scope),
    /// A given installation (`/rate_limit` of each installation).
    AsInstallation(u64),
    /// The App itself (or the token): `/rate_limit` when no installation is
    /// known yet.
    AsApp,
}

/// The `Authorization` header of one request and the credential behind it.
#[derive(Clone)]
pub struct Authorization {
    /// `Bearer …`, marked sensitive so no layer prints it.
    pub header: HeaderValue,
    /// The credential, for the rate-limit budgets and a renewal.
    pub key: CredentialKey,
    /// The installation token used, so a 401 renews only that one.
    pub(crate) token: Option<Arc<app::InstallationToken>>,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The credentials in use.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `Bearer <token>` for every request.
    Token(HeaderValue),
    /// A GitHub App and its installations.
    App(Arc<AppCredentials>),
}

/// `Bearer <secret>`, marked sensitive.
///
/// # Errors
/// When the secret holds bytes a header cannot carry.
pub(crate) fn bearer(secret: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut header = HeaderValue::from_str(&format!("Bearer {secret}"))?;
    header.set_sensitive(true);
    Ok(header)
}

impl Credentials {
    /// A personal access token's credentials.
    ///
    /// # Errors
    /// When the token holds characters a header cannot carry.
    pub fn token(token: &SecretString) -> anyhow::Result<Self> {
        let header = bearer(token.expose_secret().trim())
            .map_err(|_| anyhow::anyhow!("GITHUB_TOKEN holds characters a header cannot carry"))?;
        Ok(Self::Token(header))
    }

    /// The header for a request `acting` on something: the token, or the
    /// installation token of the scope's owner (looked up and minted when
    /// needed, one renewal at a time), or the App's JWT.
    ///
    /// # Errors
    /// [`GitHubError::AppNotInstalled`], [`GitHubError::AppRejected`], or
    /// what the look-up or the minting met.
    pub async fn authorize(&self, acting: Acting<'_>) -> Result<Authorization, GitHubError> {
        match self {
            Self::Token(header) => Ok(Authorization {
                header: header.clone(),
                key: CredentialKey::Token,
                token: None,
            }),
            Self::App(app) => app.authorize(acting).await,
        }
    }

    /// After a 401 to `used`: whether it was an installation token, now
    /// dropped so that the next [`Credentials::authorize`] mints a fresh one.
    pub fn renew_after_refusal(&self, used: &Authorization) -> bool {
        match (self, &used.token) {
            (Self::App(app), Some(token)) => {
                app.forget_token(token);
                true
            }
            _ => false,
        }
    }

    /// The App, when authenticating as one.
    pub fn app(&self) -> Option<&AppCredentials> {
        match self {
            Self::App(app) => Some(app),
            Self::Token(_) => None,
        }
    }
}
