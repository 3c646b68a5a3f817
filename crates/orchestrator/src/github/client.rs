//! The GitHub REST client: one pooled reqwest client, the API version
//! headers, listings read to their last page ([`super::pages`]), rate
//! limits honoured per bucket (no call of a bucket while GitHub asked us to
//! wait), and retries only where a repeat cannot duplicate anything.
//!
//! Only idempotent requests (GET, DELETE) are retried on a 5xx or a lost
//! connection. A POST is sent once: when its answer is lost, the caller
//! finds out by other means what GitHub did (see
//! `runners::provision`, which looks the runner up by name).
//!
//! Each request carries the credential of what it acts on ([`super::auth`]):
//! the token, or with a GitHub App the installation token of the scope's
//! owner. Rate limits are remembered per credential, so each installation
//! has its own budgets. A 401 to an installation token renews it once and
//! sends the request again, whatever its method: GitHub authenticates a
//! request before it acts on it, so a refused one did nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use reqwest::{Certificate, Method, Response};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::GitHub;
use super::auth::{Acting, AppCredentials, CredentialKey, Credentials, GitHubAuth};
use super::pages::{self, Listing, MAX_PAGES, PER_PAGE, PageBody, PageCache};
use super::rate_limit::{RateLimitOverview, RateLimitSnapshot, RateLimitState, resource_of};
use super::types::{
    GitHubErrorBody, GitHubRunner, JitConfig, JitRequest, JitResponse, JobsPage, RegistrationToken,
    RunnerPage, RunsPage, TokenResponse, WorkflowJob, WorkflowRun,
};
use crate::scope::Scope;

/// Attempts per idempotent call for 5xx answers and connection errors.
const MAX_ATTEMPTS: u32 = 3;
/// First retry delay; doubled for each further attempt, with jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Why a GitHub call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GitHubError {
    /// 401: the token is wrong, expired or revoked.
    #[error("GitHub rejected the configured token (401 Bad credentials)")]
    Unauthorized,
    /// GitHub refused the GitHub App: its JWT (a wrong id or key), its
    /// installation, or a fresh installation token. Says which.
    #[error("{0}")]
    AppRejected(String),
    /// The GitHub App is not installed on the owner of this scope (or the
    /// installation cannot see the repository).
    #[error("the GitHub App is not installed on the owner of {0}")]
    AppNotInstalled(String),
    /// 404 on a scope path: the repository/organization does not exist or
    /// the token cannot see it.
    #[error("GitHub answered 404 for {0}")]
    NotFound(String),
    /// 403 that is not a rate limit: missing permission.
    #[error("GitHub refused the request (403): {0}")]
    Forbidden(String),
    /// 409: a runner with that name exists.
    #[error("GitHub answered 409 Conflict: {0}")]
    Conflict(String),
    /// 422: GitHub refused the request's content.
    #[error("GitHub refused the request (422): {0}")]
    Unprocessable(String),
    /// A rate limit of one bucket (or a secondary limit); no call of that
    /// bucket is made before the wait is over.
    #[error("GitHub's {resource} rate limit is reached; those calls resume in {}s", .wait.as_secs().max(1))]
    RateLimited {
        /// GitHub's name of the budget (`core`, `actions_runner_registration`, …).
        resource: String,
        /// How long until calls of that budget resume.
        wait: Duration,
    },
    /// 5xx or another unexpected status after every retry.
    #[error("GitHub answered {status} after {attempts} attempt(s): {message}")]
    Status {
        /// The last status.
        status: u16,
        /// GitHub's message.
        message: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// No answer (connection refused, timeout, TLS).
    #[error("GitHub could not be reached after {attempts} attempt(s): {message}")]
    Unreachable {
        /// What the transport said.
        message: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// An answer we could not read.
    #[error("unexpected answer from GitHub: {0}")]
    Decode(String),
}

impl GitHubError {
    /// Whether GitHub may have carried out the request although its answer
    /// did not reach us (a timeout, a dropped connection, a 5xx from a proxy,
    /// a body cut short). For a POST, only a look at GitHub tells.
    pub fn answer_may_be_lost(&self) -> bool {
        match self {
            GitHubError::Unreachable { .. } | GitHubError::Decode(_) => true,
            GitHubError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// The result of deleting a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// 204: it existed and is gone.
    Deleted,
    /// 404: it was already gone.
    AlreadyGone,
    /// 422: GitHub says the runner is still running a job.
    Busy,
}

/// GitHub's REST API, authenticated with the configured token or App.
#[derive(Debug, Clone)]
pub struct GitHubClient {
    http: reqwest::Client,
    base_url: String,
    /// The token, or the App and its installations' tokens.
    credentials: Credentials,
    /// What GitHub's answers said about the budgets, per credential: each
    /// installation of an App has its own.
    rate_limits: Arc<Mutex<BTreeMap<CredentialKey, Arc<RateLimitState>>>>,
    /// Caps the requests in flight at once: GitHub's secondary limits refuse
    /// a client with too many concurrent requests (a burst of 100 creates
    /// would otherwise send 100 POSTs together).
    in_flight: Arc<Semaphore>,
    /// The most one call may take, retries included: shorter than the
    /// gateway's upstream timeout, so an answer comes before it gives up.
    deadline: Duration,
    /// The last call's failure, for `/health`; `None` after a success.
    last_error: Arc<Mutex<Option<String>>>,
}

/// Reads the certificates of a PEM file (one or more) to trust beside the
/// system's store and the bundled roots.
///
/// # Errors
/// A message naming `GITHUB_CA_FILE` and the file when it cannot be read
/// or holds no certificate.
pub fn load_ca_file(path: &Path) -> Result<Vec<Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "GITHUB_CA_FILE {}: cannot read it ({e}); the orchestrator needs read access to the CA's PEM file",
            path.display()
        )
    })?;
    let certificates = Certificate::from_pem_bundle(&pem).map_err(|e| {
        format!(
            "GITHUB_CA_FILE {}: not a PEM certificate bundle ({e})",
            path.display()
        )
    })?;
    if certificates.is_empty() {
        return Err(format!(
            "GITHUB_CA_FILE {}: holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certificates)
}

impl GitHubClient {
    /// Builds the client. TLS trusts the bundled roots, the system's store
    /// and `extra_roots` (from `GITHUB_CA_FILE`).
    ///
    /// # Errors
    /// When the token holds bytes an HTTP header cannot carry, or TLS cannot
    /// be set up.
    pub fn new(
        base_url: &str,
        auth: GitHubAuth,
        timeout: Duration,
        extra_roots: &[Certificate],
        max_concurrent_requests: usize,
        deadline: Duration,
    ) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static("2022-11-28"),
        );
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("gha-orchestrator/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60));
        for root in extra_roots {
            builder = builder.add_root_certificate(root.clone());
        }
        let http = builder.build()?;
        let credentials = match auth {
            GitHubAuth::Token(token) => Credentials::token(&token)?,
            GitHubAuth::App(settings) => Credentials::App(Arc::new(AppCredentials::new(
                settings,
                http.clone(),
                base_url,
            ))),
        };
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials,
            rate_limits: Arc::default(),
            in_flight: Arc::new(Semaphore::new(max_concurrent_requests.max(1))),
            deadline,
            last_error: Arc::default(),
        })
    }

    /// The GitHub App, when authenticating as one.
    pub fn app(&self) -> Option<&AppCredentials> {
        self.credentials.app()
    }

    /// The budgets of the credential `key`.
    fn rate_state(&self, key: CredentialKey) -> Arc<RateLimitState> {
        self.rate_limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }

    /// Every credential's budgets so far.
    fn rate_states(&self) -> Vec<(CredentialKey, Arc<RateLimitState>)> {
        self.rate_limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(key, state)| (*key, state.clone()))
            .collect()
    }

    /// `GET /rate_limit` acting as `acting`, filed under its credential.
    async fn read_rate_limit(&self, acting: Acting<'_>) -> Result<(), GitHubError> {
        let overview: RateLimitOverview = self
            .send_json(Method::GET, "/rate_limit", None, "rate limit", acting)
            .await?;
        let key = self.credentials.authorize(acting).await?.key;
        self.rate_state(key).observe_overview(&overview);
        Ok(())
    }

    /// Reads a listing page after page, following `Link: rel="next"`.
    async fn list_pages<P: PageBody>(
        &self,
        first_path: &str,
        what: &str,
        mut cache: Option<&mut PageCache>,
        acting: Acting<'_>,
    ) -> Result<Listing<P::Item>, GitHubError> {
        let mut url = self.url(first_path);
        let mut items = Vec::new();
        let mut total_count = 0;
        let mut changed = cache.is_none();
        let mut read = Vec::new();
        for _ in 0..MAX_PAGES {
            let etag = cache
                .as_deref()
                .and_then(|c| c.etag(&url))
                .map(str::to_owned);
            let response = self
                .request(Method::GET, &url, None, what, etag.as_deref(), acting)
                .await?;
            let (body, next): (Bytes, Option<String>) =
                if response.status() == StatusCode::NOT_MODIFIED {
                    // A 304 need not carry `Link`: the cached page knows its next.
                    let page = cache.as_deref().and_then(|c| c.page(&url)).ok_or_else(|| {
                        GitHubError::Decode(format!("{what}: 304 for a page never read"))
                    })?;
                    (page.body, page.next)
                } else {
                    changed = true;
                    let next = pages::next_link(response.headers())
                        .map_err(|e| GitHubError::Decode(format!("{what}: {e}")))?;
                    let etag = response
                        .headers()
                        .get(header::ETAG)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let body = response
                        .bytes()
                        .await
                        .map_err(|e| GitHubError::Decode(format!("reading {what}: {e}")))?;
                    if let Some(cache) = cache.as_deref_mut() {
                        cache.store(&url, etag.as_deref(), &body, next.as_deref());
                    }
                    (body, next)
                };
            let page: P = serde_json::from_slice(&body)
                .map_err(|e| GitHubError::Decode(format!("{what}: {e}")))?;
            total_count = page.total_count();
            items.extend(page.into_items());
            read.push(url);
            match next {
                None => {
                    if let Some(cache) = cache {
                        cache.keep_only(&read);
                    }
                    return Ok(Listing {
                        items,
                        total_count,
                        changed,
                    });
                }
                Some(next) if pages::same_origin(&self.base_url, &next) => url = next,
                Some(next) => {
                    return Err(GitHubError::Decode(format!(
                        "{what}: the next page is on another host ({}), not followed",
                        next.split('?').next().unwrap_or_default()
                    )));
                }
            }
        }
        Err(GitHubError::Decode(format!(
            "{what} has more than {MAX_PAGES} pages of {PER_PAGE} ({total_count} in all)"
        )))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        what: &str,
        acting: Acting<'_>,
    ) -> Result<T, GitHubError> {
        let response = self.send(method, path, body, what, acting).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| GitHubError::Decode(format!("reading {what}: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| GitHubError::Decode(format!("{what}: {e}")))
    }

    /// Sends one request to `path` (retried when idempotent); returns the
    /// successful response.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        what: &str,
        acting: Acting<'_>,
    ) -> Result<Response, GitHubError> {
        self.request(method, &self.url(path), body, what, None, acting)
            .await
    }

    /// Sends one request to `url` with an optional `If-None-Match` (a 304
    /// counts as success), and remembers its failure for `/health`.
    async fn request(
        &self,
        method: Method,
        url: &str,
        body: Option<serde_json::Value>,
        what: &str,
        if_none_match: Option<&str>,
        acting: Acting<'_>,
    ) -> Result<Response, GitHubError> {
        let result = self
            .send_with_retries(method, url, body, what, if_none_match, acting)
            .await;
        if let Err(e) = &result {
            crate::metrics::errors::github_error(e);
        }
        let mut last_error = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(_) => *last_error = None,
            // A 404/409/422 is an answer about the request, not GitHub's health;
            // a paused bucket made no call at all.
            Err(
                GitHubError::NotFound(_)
                | GitHubError::Conflict(_)
                | GitHubError::Unprocessable(_)
                | GitHubError::AppNotInstalled(_)
                | GitHubError::RateLimited { .. },
            ) => {}
            Err(e) => *last_error = Some(e.to_string()),
        }
        result
    }

    /// Sends the request; an idempotent one is tried again (with jittered
    /// exponential backoff, by `backon`) after a 5xx or a lost connection,
    /// all within the client's overall deadline per call.
    async fn send_with_retries(
        &self,
        method: Method,
        url: &str,
        body: Option<serde_json::Value>,
        what: &str,
        if_none_match: Option<&str>,
        acting: Acting<'_>,
    ) -> Result<Response, GitHubError> {
        let path = url.strip_prefix(&self.base_url).unwrap_or(url);
        let resource = resource_of(&method, path);
        // A repeat of a POST could register a second runner or spend a
        // second token: only requests that mean the same twice are retried.
        let idempotent = method == Method::GET || method == Method::DELETE;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(FIRST_BACKOFF)
            .with_max_times(if idempotent {
                MAX_ATTEMPTS as usize - 1
            } else {
                0
            })
            .with_jitter();
        let attempts = AtomicU32::new(0);
        let attempt = || async {
            let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            self.attempt(
                &method,
                url,
                body.as_ref(),
                what,
                if_none_match,
                resource,
                attempt,
                acting,
            )
            .await
        };
        let retried = attempt
            .retry(backoff)
            .when(|e| {
                matches!(e, GitHubError::Unreachable { .. })
                    || matches!(e, GitHubError::Status { status, .. } if *status >= 500)
            })
            .notify(|error, delay| {
                debug!(%method, path = path.split('?').next().unwrap_or_default(), %error, delay_ms = delay.as_millis() as u64, "retrying GitHub call");
            });
        match tokio::time::timeout(self.deadline, retried).await {
            Ok(result) => result,
            Err(_) => Err(GitHubError::Unreachable {
                message: format!(
                    "no answer within {}s (GITHUB_RETRY_DEADLINE_SECONDS)",
                    self.deadline.as_secs()
                ),
                attempts: attempts.load(Ordering::Relaxed),
            }),
        }
    }

    /// One attempt: the answer's status read as GitHub documents it. A 401
    /// to an installation token renews the token and sends once more.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        method: &Method,
        url: &str,
        body: Option<&serde_json::Value>,
        what: &str,
        if_none_match: Option<&str>,
        resource: &str,
        attempt: u32,
        acting: Acting<'_>,
    ) -> Result<Response, GitHubError> {
        let mut renewed = false;
        let (response, rate_limit) = loop {
            let authorization = self.credentials.authorize(acting).await?;
            let rate_limit = self.rate_state(authorization.key);
            if let Some(wait) = rate_limit.paused_for(resource) {
                return Err(GitHubError::RateLimited {
                    resource: resource.to_owned(),
                    wait,
                });
            }
            // Held until the answer's head is in; reading the body after it
            // needs no slot. The semaphore is never closed.
            let _slot = self.in_flight.acquire().await;
            let mut request = self
                .http
                .request(method.clone(), url)
                .header(header::AUTHORIZATION, authorization.header.clone());
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(etag) = if_none_match {
                request = request.header(header::IF_NONE_MATCH, etag);
            }
            let response = request.send().await.map_err(|e| GitHubError::Unreachable {
                message: transport_message(&e),
                attempts: attempt,
            })?;
            rate_limit.observe(response.headers(), resource);
            if response.status() != StatusCode::UNAUTHORIZED {
                break (response, rate_limit);
            }
            // GitHub authenticates before it acts: a refused request did
            // nothing, so sending it again with a fresh token is safe.
            if !renewed && self.credentials.renew_after_refusal(&authorization) {
                renewed = true;
                debug!(%method, credential = %authorization.key, "GitHub refused an installation token; renewing it once");
                continue;
            }
            return Err(match authorization.key {
                CredentialKey::Installation(id) => GitHubError::AppRejected(format!(
                    "GitHub refused a fresh installation token of the GitHub App's installation {id} (401)"
                )),
                _ => GitHubError::Unauthorized,
            });
        };
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let error: GitHubErrorBody = response.json().await.unwrap_or_default();
        Err(match status {
            StatusCode::NOT_FOUND => GitHubError::NotFound(what.to_owned()),
            StatusCode::CONFLICT => GitHubError::Conflict(error.message),
            StatusCode::UNPROCESSABLE_ENTITY => GitHubError::Unprocessable(error.message),
            _ => refusal(status, &headers, error, resource, &rate_limit, attempt),
        })
    }
}

#[async_trait::async_trait]
impl GitHub for GitHubClient {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn rate_limit(&self) -> RateLimitSnapshot {
        match &self.credentials {
            Credentials::Token(_) => self.rate_state(CredentialKey::Token).snapshot(),
            // Each installation's budgets, and the App's own, side by side.
            Credentials::App(app) => RateLimitSnapshot::merge(
                std::iter::once((CredentialKey::App.to_string(), app.rate_limit().snapshot()))
                    .chain(
                        self.rate_states()
                            .into_iter()
                            .map(|(key, state)| (key.to_string(), state.snapshot())),
                    )
                    .collect(),
            ),
        }
    }

    fn paused_for(&self) -> Option<Duration> {
        let core = super::rate_limit::CORE;
        match &self.credentials {
            Credentials::Token(_) => self.rate_state(CredentialKey::Token).paused_for(core),
            Credentials::App(app) => self
                .rate_states()
                .iter()
                .filter_map(|(_, state)| state.paused_for(core))
                .chain(app.rate_limit().paused_for(core))
                .max(),
        }
    }

    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn generate_jit_config(
        &self,
        scope: &Scope,
        name: &str,
        labels: &[String],
        runner_group_id: i64,
    ) -> Result<JitConfig, GitHubError> {
        let body = JitRequest {
            name,
            runner_group_id,
            labels,
            work_folder: "_work",
        };
        let path = format!("{}/actions/runners/generate-jitconfig", scope.api_path());
        let response: JitResponse = self
            .send_json(
                Method::POST,
                &path,
                Some(serde_json::to_value(&body).map_err(|e| GitHubError::Decode(e.to_string()))?),
                &scope.to_string(),
                Acting::On(scope),
            )
            .await?;
        Ok(JitConfig {
            runner_id: response.runner.id,
            encoded: SecretString::from(response.encoded_jit_config),
        })
    }

    async fn registration_token(&self, scope: &Scope) -> Result<RegistrationToken, GitHubError> {
        let path = format!("{}/actions/runners/registration-token", scope.api_path());
        let response: TokenResponse = self
            .send_json(
                Method::POST,
                &path,
                None,
                &scope.to_string(),
                Acting::On(scope),
            )
            .await?;
        Ok(RegistrationToken {
            token: SecretString::from(response.token),
            expires_at: response.expires_at,
        })
    }

    async fn list_runners(&self, scope: &Scope) -> Result<Vec<GitHubRunner>, GitHubError> {
        let path = format!("{}/actions/runners?per_page={PER_PAGE}", scope.api_path());
        let listing: Listing<GitHubRunner> = self
            .list_pages::<RunnerPage>(
                &path,
                &format!("runners of {scope}"),
                None,
                Acting::On(scope),
            )
            .await?;
        let mut runners = listing.items;
        // A runner that moved to a later page while we read shows twice.
        let mut seen = std::collections::HashSet::new();
        runners.retain(|r| seen.insert(r.id));
        Ok(runners)
    }

    async fn find_runner_by_name(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<GitHubRunner>, GitHubError> {
        let query = serde_urlencoded::to_string([("name", name)])
            .map_err(|e| GitHubError::Decode(e.to_string()))?;
        let path = format!(
            "{}/actions/runners?{query}&per_page={PER_PAGE}",
            scope.api_path()
        );
        let listing = self
            .list_pages::<RunnerPage>(
                &path,
                &format!("runner {name} of {scope}"),
                None,
                Acting::On(scope),
            )
            .await?;
        // Names are unique per scope and compared without case by GitHub.
        Ok(listing
            .items
            .into_iter()
            .find(|r| r.name.eq_ignore_ascii_case(name)))
    }

    async fn get_runner(
        &self,
        scope: &Scope,
        id: i64,
    ) -> Result<Option<GitHubRunner>, GitHubError> {
        let path = format!("{}/actions/runners/{id}", scope.api_path());
        match self
            .send_json::<GitHubRunner>(
                Method::GET,
                &path,
                None,
                &format!("runner {id}"),
                Acting::On(scope),
            )
            .await
        {
            Ok(runner) => Ok(Some(runner)),
            Err(GitHubError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_runner(&self, scope: &Scope, id: i64) -> Result<DeleteOutcome, GitHubError> {
        let path = format!("{}/actions/runners/{id}", scope.api_path());
        match self
            .send(
                Method::DELETE,
                &path,
                None,
                &format!("runner {id}"),
                Acting::On(scope),
            )
            .await
        {
            Ok(_) => Ok(DeleteOutcome::Deleted),
            Err(GitHubError::NotFound(_)) => Ok(DeleteOutcome::AlreadyGone),
            Err(GitHubError::Unprocessable(message)) => {
                debug!(runner_id = id, %message, "GitHub refused to delete a busy runner");
                Ok(DeleteOutcome::Busy)
            }
            Err(e) => Err(e),
        }
    }

    async fn list_runs(
        &self,
        repo: &Scope,
        status: &str,
        cache: &mut PageCache,
    ) -> Result<Listing<WorkflowRun>, GitHubError> {
        let path = format!(
            "{}/actions/runs?status={status}&per_page={PER_PAGE}",
            repo.api_path()
        );
        self.list_pages::<RunsPage>(
            &path,
            &format!("{status} runs of {repo}"),
            Some(cache),
            Acting::On(repo),
        )
        .await
    }

    async fn list_jobs(
        &self,
        repo: &Scope,
        run_id: i64,
        cache: &mut PageCache,
    ) -> Result<Listing<WorkflowJob>, GitHubError> {
        let path = format!(
            "{}/actions/runs/{run_id}/jobs?filter=latest&per_page={PER_PAGE}",
            repo.api_path()
        );
        self.list_pages::<JobsPage>(
            &path,
            &format!("jobs of run {run_id}"),
            Some(cache),
            Acting::On(repo),
        )
        .await
    }

    async fn get_job(&self, repo: &Scope, job_id: i64) -> Result<Option<WorkflowJob>, GitHubError> {
        let path = format!("{}/actions/jobs/{job_id}", repo.api_path());
        match self
            .send_json::<WorkflowJob>(
                Method::GET,
                &path,
                None,
                &format!("job {job_id}"),
                Acting::On(repo),
            )
            .await
        {
            Ok(job) => Ok(Some(job)),
            Err(GitHubError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn check_rate_limit(&self) -> Result<(), GitHubError> {
        let installations = self
            .credentials
            .app()
            .map(AppCredentials::known_installations)
            .unwrap_or_default();
        if installations.is_empty() {
            // The token, or the App itself until an installation is in use.
            return self.read_rate_limit(Acting::AsApp).await;
        }
        for id in installations {
            self.read_rate_limit(Acting::AsInstallation(id)).await?;
        }
        Ok(())
    }
}

/// What a refusal other than 401, 404, 409 and 422 means: a rate limit
/// (403 or 429 read as GitHub documents them, which pauses that budget of
/// `rate_limit`), a plain 403, or another status. One reading for every
/// call, the App's own included.
pub(crate) fn refusal(
    status: StatusCode,
    headers: &HeaderMap,
    error: GitHubErrorBody,
    resource: &str,
    rate_limit: &RateLimitState,
    attempts: u32,
) -> GitHubError {
    if matches!(
        status,
        StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    ) {
        let Some(throttle) = RateLimitState::classify(
            status.as_u16(),
            headers,
            &error.documentation_url,
            &error.message,
        ) else {
            return GitHubError::Forbidden(error.message);
        };
        let charged = headers
            .get("x-ratelimit-resource")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(resource)
            .to_owned();
        warn!(
            status = status.as_u16(),
            resource = %charged,
            kind = ?throttle,
            wait_seconds = throttle.wait().as_secs(),
            "GitHub rate limit reached; pausing those GitHub calls"
        );
        rate_limit.pause(throttle, &charged);
        return GitHubError::RateLimited {
            resource: charged,
            wait: throttle.wait(),
        };
    }
    GitHubError::Status {
        status: status.as_u16(),
        message: if error.message.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            error.message
        },
        attempts,
    }
}

/// A transport error without the URL's query or anything secret; a TLS
/// certificate problem says how to fix it.
pub(crate) fn transport_message(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    if let Some(problem) = certificate_problem(error) {
        return format!(
            "GitHub's TLS certificate is not trusted ({problem}); for a GitHub Enterprise Server with a private CA, set GITHUB_CA_FILE to the CA's PEM file or add the CA to the system's certificate store"
        );
    }
    if error.is_connect() {
        "connection failed".to_owned()
    } else {
        error.to_string()
    }
}

/// The certificate complaint somewhere in the error's chain of causes.
fn certificate_problem(error: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if text.contains("certificate") || text.contains("UnknownIssuer") {
            return Some(text);
        }
        source = cause.source();
    }
    None
}
