//! GitHub App authentication: the App's JWT, its installation on each owner,
//! and the installation tokens, cached and renewed before they expire.
//!
//! - The JWT is signed RS256 by `jsonwebtoken` with `iat` a minute in the
//!   past (GitHub's advice for clock drift) and `exp` eight minutes on, so
//!   `exp - iat` stays under GitHub's ten minutes; `iss` is `GITHUB_APP_ID`.
//! - The installation of an owner is `GITHUB_APP_INSTALLATION_ID`, or looked
//!   up once per owner (`GET /repos/{owner}/{repo}/installation`, `GET
//!   /orgs/{org}/installation`), so one App installed on several owners
//!   serves them all.
//! - Each installation's token is kept until [`renewal_margin`] before its
//!   `expires_at` (ten minutes for GitHub's hour), then renewed by the first
//!   request that needs it while the others wait for that one renewal: a
//!   `tokio::sync::OnceCell` per token, swapped for an empty one when the
//!   token is due, so no lock is held across the call to GitHub.
//! - The key and the tokens are never logged: the headers carrying them are
//!   marked sensitive, and [`AppSettings`] and [`InstallationToken`] print
//!   nothing of them.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tracing::{debug, info, warn};

use super::{Acting, Authorization, CredentialKey, bearer};
use crate::github::GitHubError;
use crate::github::client::{refusal, transport_message};
use crate::github::rate_limit::{CORE, RateLimitState};
use crate::github::types::GitHubErrorBody;
use crate::scope::Scope;

/// How far in the past `iat` is set, for clocks that drift (GitHub's advice).
const JWT_BACKDATE: Duration = Duration::from_secs(60);
/// How long after now `exp` is set: `exp - iat` is 9 minutes, under
/// GitHub's 10.
const JWT_LIFETIME: Duration = Duration::from_secs(8 * 60);
/// The most an installation token is renewed ahead of its `expires_at`.
const MAX_RENEWAL_MARGIN: Duration = Duration::from_secs(10 * 60);

/// When to renew a token that lives `lifetime`: ten minutes before it
/// expires (GitHub's tokens live an hour), or a quarter of its life for a
/// short-lived one, so that a token is always renewed well before GitHub
/// refuses it and never at every request.
pub fn renewal_margin(lifetime: Duration) -> Duration {
    MAX_RENEWAL_MARGIN.min(lifetime / 4)
}

/// The App as configured: its id, its private key, and the installation to
/// use for every owner, if one is fixed.
pub struct AppSettings {
    /// `GITHUB_APP_ID`: the App's id or client id, the JWT's `iss`.
    pub app_id: String,
    /// The private key, read from `GITHUB_APP_PRIVATE_KEY_FILE`.
    key: EncodingKey,
    /// `GITHUB_APP_INSTALLATION_ID`: one installation for every owner.
    pub installation_id: Option<u64>,
}

impl fmt::Debug for AppSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSettings")
            .field("app_id", &self.app_id)
            .field("installation_id", &self.installation_id)
            .finish_non_exhaustive()
    }
}

impl AppSettings {
    /// Reads the App's settings; `pem` is the private key's PEM.
    ///
    /// # Errors
    /// A message naming `GITHUB_APP_PRIVATE_KEY_FILE` when `pem` is not an
    /// RSA private key (PKCS#1 as GitHub hands it out, or PKCS#8).
    pub fn new(
        app_id: &str,
        pem: &SecretString,
        installation_id: Option<u64>,
    ) -> Result<Self, String> {
        let key = EncodingKey::from_rsa_pem(pem.expose_secret().trim().as_bytes()).map_err(|e| {
            format!(
                "GITHUB_APP_PRIVATE_KEY_FILE does not hold an RSA private key in PEM form ({e}); use the .pem file GitHub generated for the App (-----BEGIN RSA PRIVATE KEY-----)"
            )
        })?;
        Ok(Self {
            app_id: app_id.trim().to_owned(),
            key,
            installation_id,
        })
    }
}

/// An installation token, with when to renew it.
pub struct InstallationToken {
    /// The installation it opens.
    installation_id: u64,
    /// `Bearer ghs_…`, marked sensitive.
    header: HeaderValue,
    /// GitHub's `expires_at`, for the log.
    expires_at: DateTime<Utc>,
    /// From then on the next request renews it ([`renewal_margin`] before
    /// it expires, measured on this host's monotonic clock from receipt).
    renew_at: Instant,
}

impl fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstallationToken")
            .field("installation_id", &self.installation_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The current token of one installation: a cell filled once by whichever
/// request renews it; swapped for an empty one when the token is due.
type TokenCell = Arc<OnceCell<Arc<InstallationToken>>>;

/// `POST /app/installations/{id}/access_tokens`'s answer, as far as we read it.
#[derive(Deserialize)]
struct AccessToken {
    #[serde(deserialize_with = "secret")]
    token: SecretString,
    expires_at: DateTime<Utc>,
}

/// Reads a string straight into a [`SecretString`].
fn secret<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    String::deserialize(deserializer).map(SecretString::from)
}

/// An installation look-up's answer.
#[derive(Deserialize)]
struct InstallationBody {
    id: u64,
}

/// The JWT's claims.
#[derive(Serialize)]
struct Claims<'a> {
    iat: u64,
    exp: u64,
    iss: &'a str,
}

/// A GitHub App's credentials and its installations' tokens.
pub struct AppCredentials {
    settings: AppSettings,
    http: reqwest::Client,
    base_url: String,
    /// Owner (lower case) → its installation, looked up once.
    installations: Mutex<HashMap<String, Arc<OnceCell<u64>>>>,
    /// Installation → its current token.
    tokens: Mutex<HashMap<u64, TokenCell>>,
    /// Budgets of the App's own (JWT) calls.
    rate_limit: RateLimitState,
    /// Installation tokens minted since start (for the log).
    minted: AtomicU64,
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials")
            .field("settings", &self.settings)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The owner of a scope: the repository's owner, or the organization.
fn owner_of(scope: &Scope) -> &str {
    match scope {
        Scope::Repository { owner, .. } => owner,
        Scope::Organization(org) => org,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain maps of cells: still usable after a panic elsewhere.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl AppCredentials {
    /// The App's credentials, calling GitHub at `base_url` with `http`.
    pub fn new(settings: AppSettings, http: reqwest::Client, base_url: &str) -> Self {
        Self {
            settings,
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            installations: Mutex::default(),
            tokens: Mutex::default(),
            rate_limit: RateLimitState::default(),
            minted: AtomicU64::new(0),
        }
    }

    /// The budgets of the App's own calls.
    pub fn rate_limit(&self) -> &RateLimitState {
        &self.rate_limit
    }

    /// The installations whose tokens were minted so far.
    pub fn known_installations(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = lock(&self.tokens).keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The header for a request acting on a scope, an installation, or as
    /// the App.
    pub(super) async fn authorize(&self, acting: Acting<'_>) -> Result<Authorization, GitHubError> {
        let installation = match acting {
            Acting::On(scope) => self.installation_for(scope).await?,
            Acting::AsInstallation(id) => id,
            Acting::AsApp => {
                return Ok(Authorization {
                    header: self.jwt_header()?,
                    key: CredentialKey::App,
                    token: None,
                });
            }
        };
        let token = self.token(installation).await?;
        Ok(Authorization {
            header: token.header.clone(),
            key: CredentialKey::Installation(installation),
            token: Some(token),
        })
    }

    /// The installation serving `scope`'s owner.
    ///
    /// # Errors
    /// [`GitHubError::AppNotInstalled`] when the App is not installed there.
    pub async fn installation_for(&self, scope: &Scope) -> Result<u64, GitHubError> {
        if let Some(id) = self.settings.installation_id {
            return Ok(id);
        }
        let owner = owner_of(scope).to_ascii_lowercase();
        let cell = lock(&self.installations).entry(owner).or_default().clone();
        // A failed look-up leaves the cell empty: the next request asks again
        // (the App may have been installed meanwhile).
        cell.get_or_try_init(|| self.look_up_installation(scope))
            .await
            .copied()
    }

    /// `GET /repos/{owner}/{repo}/installation` or `GET /orgs/{org}/installation`.
    async fn look_up_installation(&self, scope: &Scope) -> Result<u64, GitHubError> {
        let path = format!("{}/installation", scope.api_path());
        let response = self.app_call(Method::GET, &path).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(GitHubError::AppNotInstalled(scope.to_string()));
        }
        let body: InstallationBody = read_success(response, "the App's installation").await?;
        info!(%scope, installation_id = body.id, "found the GitHub App's installation");
        Ok(body.id)
    }

    /// A token of `installation` that is not due for renewal; the first
    /// request that finds it due renews it, the others wait for that.
    async fn token(&self, installation: u64) -> Result<Arc<InstallationToken>, GitHubError> {
        loop {
            let cell = lock(&self.tokens).entry(installation).or_default().clone();
            let mut minted_here = false;
            let token = cell
                .get_or_try_init(|| {
                    minted_here = true;
                    self.mint(installation)
                })
                .await?
                .clone();
            // A token just minted is as fresh as GitHub makes them.
            if minted_here || Instant::now() < token.renew_at {
                return Ok(token);
            }
            self.forget_token(&token);
        }
    }

    /// Drops `token` (due, or refused with a 401) so that the next request
    /// mints a new one; a newer token already in place is kept.
    pub fn forget_token(&self, token: &Arc<InstallationToken>) {
        let mut tokens = lock(&self.tokens);
        if let Some(cell) = tokens.get(&token.installation_id)
            && cell
                .get()
                .is_some_and(|current| Arc::ptr_eq(current, token))
        {
            tokens.insert(token.installation_id, TokenCell::default());
        }
    }

    /// `POST /app/installations/{id}/access_tokens`.
    async fn mint(&self, installation: u64) -> Result<Arc<InstallationToken>, GitHubError> {
        let path = format!("/app/installations/{installation}/access_tokens");
        let response = self.app_call(Method::POST, &path).await?;
        if response.status() == StatusCode::NOT_FOUND {
            // An installation removed since it was looked up: ask again next time.
            lock(&self.installations).retain(|_, cell| cell.get() != Some(&installation));
            return Err(GitHubError::AppRejected(
                match self.settings.installation_id {
                    Some(_) => format!(
                        "GITHUB_APP_INSTALLATION_ID={installation} is not an installation of the GitHub App {} (GitHub answered 404)",
                        self.settings.app_id
                    ),
                    None => format!(
                        "installation {installation} of the GitHub App {} is gone (GitHub answered 404); it is looked up again at the next request",
                        self.settings.app_id
                    ),
                },
            ));
        }
        let received = Instant::now();
        let body: AccessToken = read_success(response, "an installation token").await?;
        let lifetime = (body.expires_at - Utc::now()).to_std().unwrap_or_default();
        let header = bearer(body.token.expose_secret()).map_err(|_| {
            GitHubError::Decode("an installation token a header cannot carry".to_owned())
        })?;
        let minted = self.minted.fetch_add(1, Ordering::Relaxed) + 1;
        debug!(
            installation_id = installation,
            expires_at = %body.expires_at,
            renew_in_seconds = lifetime.saturating_sub(renewal_margin(lifetime)).as_secs(),
            minted,
            "installation token minted"
        );
        Ok(Arc::new(InstallationToken {
            installation_id: installation,
            header,
            expires_at: body.expires_at,
            renew_at: received + lifetime.saturating_sub(renewal_margin(lifetime)),
        }))
    }

    /// `Bearer <JWT>` for the App's own calls.
    fn jwt_header(&self) -> Result<HeaderValue, GitHubError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            iat: now.saturating_sub(JWT_BACKDATE.as_secs()),
            exp: now + JWT_LIFETIME.as_secs(),
            iss: &self.settings.app_id,
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.settings.key)
            .map_err(|e| GitHubError::AppRejected(format!("cannot sign the App's JWT: {e}")))?;
        bearer(&jwt).map_err(|_| GitHubError::Decode("a JWT a header cannot carry".to_owned()))
    }

    /// One call as the App (JWT). A 401 means GitHub refused the App: its id
    /// or its key is wrong. Rate limits are honoured as for the other calls.
    async fn app_call(&self, method: Method, path: &str) -> Result<reqwest::Response, GitHubError> {
        if let Some(wait) = self.rate_limit.paused_for(CORE) {
            return Err(GitHubError::RateLimited {
                resource: CORE.to_owned(),
                wait,
            });
        }
        let response = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header(http::header::AUTHORIZATION, self.jwt_header()?)
            .send()
            .await
            .map_err(|e| GitHubError::Unreachable {
                message: transport_message(&e),
                attempts: 1,
            })?;
        self.rate_limit.observe(response.headers(), CORE);
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let error: GitHubErrorBody = response.json().await.unwrap_or_default();
        Err(match status {
            StatusCode::UNAUTHORIZED => {
                warn!(app_id = %self.settings.app_id, message = %error.message, "GitHub refused the GitHub App's JWT");
                GitHubError::AppRejected(format!(
                    "GitHub refused the GitHub App {}'s JWT ({}): check that GITHUB_APP_ID is the App's id or client id and that GITHUB_APP_PRIVATE_KEY_FILE holds a current private key of that App",
                    self.settings.app_id, error.message
                ))
            }
            _ => refusal(status, &headers, error, CORE, &self.rate_limit, 1),
        })
    }

    /// Checks the App at start: GitHub accepts its JWT, and the installation
    /// of `default_scope` (or `GITHUB_APP_INSTALLATION_ID`) gives a token.
    ///
    /// # Errors
    /// What GitHub answered: [`GitHubError::AppRejected`],
    /// [`GitHubError::AppNotInstalled`], or a transport or server error.
    pub async fn check(&self, default_scope: Option<&Scope>) -> Result<(), GitHubError> {
        let response = self
            .app_call(Method::GET, "/app/installations?per_page=1")
            .await?;
        let _: serde_json::Value = read_success(response, "the App's installations").await?;
        let installation = match (self.settings.installation_id, default_scope) {
            (Some(id), _) => id,
            (None, Some(scope)) => self.installation_for(scope).await?,
            (None, None) => return Ok(()),
        };
        self.token(installation).await.map(|_| ())
    }
}

/// The body of a successful answer (404 was handled by the caller).
async fn read_success<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, GitHubError> {
    let status = response.status();
    if !status.is_success() {
        return Err(GitHubError::NotFound(what.to_owned()));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| GitHubError::Decode(format!("reading {what}: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| GitHubError::Decode(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_well_before_they_expire_and_not_at_every_request() {
        let hour = Duration::from_secs(3600);
        assert_eq!(renewal_margin(hour), Duration::from_secs(600));
        assert!(
            renewal_margin(hour) >= Duration::from_secs(300),
            "at least 5 minutes"
        );
        // A token of a few seconds (the tests' simulator) is kept for 3/4 of its life.
        assert_eq!(
            renewal_margin(Duration::from_secs(4)),
            Duration::from_secs(1)
        );
        assert_eq!(renewal_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_key_that_is_not_an_rsa_pem_names_the_variable() {
        for bad in [
            "",
            "not a key",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        ] {
            let error = AppSettings::new("1", &SecretString::from(bad), None).unwrap_err();
            assert!(error.contains("GITHUB_APP_PRIVATE_KEY_FILE"), "{error}");
            assert!(
                !error.contains(bad) || bad.is_empty(),
                "the key is not echoed"
            );
        }
    }

    #[test]
    fn owners_come_from_scopes() {
        let repo = Scope::repository("Acme/app").unwrap();
        assert_eq!(owner_of(&repo), "Acme");
        assert_eq!(owner_of(&Scope::organization("acme").unwrap()), "acme");
    }
}
