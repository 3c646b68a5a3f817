//! The GitHub REST client: one pooled reqwest client, the API version
//! headers, bounded retries for 5xx and connection errors, and rate limits
//! honoured (no call at all while GitHub asked us to wait).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use reqwest::{Method, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::rate_limit::{RateLimitSnapshot, RateLimitState};
use super::types::{
    GitHubErrorBody, GitHubRunner, JitConfig, JitRequest, JitResponse, JobsPage, RegistrationToken,
    RunnerPage, RunsPage, TokenResponse,
};
use crate::scope::Scope;

/// Attempts per call for 5xx answers and connection errors.
const MAX_ATTEMPTS: u32 = 3;
/// First retry delay; doubled for each further attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Runners per listing page (GitHub's maximum).
const PAGE_SIZE: usize = 100;
/// A listing longer than this is treated as a failure rather than followed.
const MAX_PAGES: usize = 50;

/// Why a GitHub call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GitHubError {
    /// 401: the token is wrong, expired or revoked.
    #[error("GitHub rejected the configured token (401 Bad credentials)")]
    Unauthorized,
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
    /// A rate limit; no call is made before the wait is over.
    #[error("GitHub rate limit reached; calls resume in {}s", .0.as_secs().max(1))]
    RateLimited(Duration),
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

/// The answer to a conditional GET.
#[derive(Debug)]
pub enum Conditional<T> {
    /// 304: unchanged since the ETag given.
    NotModified,
    /// A new answer and its ETag.
    Fresh {
        /// The body.
        body: T,
        /// Its ETag, for the next request.
        etag: Option<String>,
    },
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

/// GitHub's REST API, authenticated with the configured token.
#[derive(Debug, Clone)]
pub struct GitHubClient {
    http: reqwest::Client,
    base_url: String,
    /// `Bearer <token>`, marked sensitive so no layer prints it.
    authorization: HeaderValue,
    rate_limit: Arc<RateLimitState>,
    /// The last call's failure, for `/health`; `None` after a success.
    last_error: Arc<Mutex<Option<String>>>,
}

impl GitHubClient {
    /// Builds the client.
    ///
    /// # Errors
    /// When the token holds bytes an HTTP header cannot carry, or TLS cannot
    /// be set up.
    pub fn new(base_url: &str, token: &SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", token.expose_secret().trim())).map_err(
                |_| anyhow::anyhow!("GITHUB_TOKEN holds characters a header cannot carry"),
            )?;
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static("2022-11-28"),
        );
        let http = reqwest::Client::builder()
            .user_agent(concat!("gha-orchestrator/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            authorization,
            rate_limit: Arc::default(),
            last_error: Arc::default(),
        })
    }

    /// The API base URL in use.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// What the last answers said about the rate limit.
    pub fn rate_limit(&self) -> RateLimitSnapshot {
        self.rate_limit.snapshot()
    }

    /// Whether calls are paused by a rate limit, and for how long.
    pub fn paused_for(&self) -> Option<Duration> {
        self.rate_limit.paused_for()
    }

    /// The last call's failure, if the last call failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("last error lock").clone()
    }

    /// Asks for a single-use JIT configuration (one call).
    ///
    /// # Errors
    /// [`GitHubError`]; 404 means the scope or the runner group is unknown.
    pub async fn generate_jit_config(
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
            )
            .await?;
        Ok(JitConfig {
            runner_id: response.runner.id,
            encoded: SecretString::from(response.encoded_jit_config),
        })
    }

    /// Asks for a registration token for `config.sh` (one call).
    ///
    /// # Errors
    /// [`GitHubError`].
    pub async fn registration_token(
        &self,
        scope: &Scope,
    ) -> Result<RegistrationToken, GitHubError> {
        let path = format!("{}/actions/runners/registration-token", scope.api_path());
        let response: TokenResponse = self
            .send_json(Method::POST, &path, None, &scope.to_string())
            .await?;
        Ok(RegistrationToken {
            token: SecretString::from(response.token),
            expires_at: response.expires_at,
        })
    }

    /// Every runner registered to `scope`, all pages, 100 per call.
    ///
    /// # Errors
    /// [`GitHubError`]; a listing that cannot be completed is an error as a
    /// whole, never a partial answer.
    pub async fn list_runners(&self, scope: &Scope) -> Result<Vec<GitHubRunner>, GitHubError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = format!(
                "{}/actions/runners?per_page={PAGE_SIZE}&page={page}",
                scope.api_path()
            );
            let body: RunnerPage = self
                .send_json(Method::GET, &path, None, &scope.to_string())
                .await?;
            let got = body.runners.len();
            all.extend(body.runners);
            if got < PAGE_SIZE || all.len() as i64 >= body.total_count {
                if (all.len() as i64) < body.total_count && got < PAGE_SIZE {
                    // The list shrank while we paged: don't trust it.
                    return Err(GitHubError::Decode(format!(
                        "runner listing of {scope} changed while paging ({} of {})",
                        all.len(),
                        body.total_count
                    )));
                }
                return Ok(all);
            }
        }
        Err(GitHubError::Decode(format!(
            "runner listing of {scope} has more than {} pages",
            MAX_PAGES
        )))
    }

    /// One runner by id; `None` when GitHub answers 404.
    ///
    /// # Errors
    /// [`GitHubError`] other than 404.
    pub async fn get_runner(
        &self,
        scope: &Scope,
        id: i64,
    ) -> Result<Option<GitHubRunner>, GitHubError> {
        let path = format!("{}/actions/runners/{id}", scope.api_path());
        match self
            .send_json::<GitHubRunner>(Method::GET, &path, None, &format!("runner {id}"))
            .await
        {
            Ok(runner) => Ok(Some(runner)),
            Err(GitHubError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a registration: 204 → deleted, 404 → already gone, 422 → busy.
    ///
    /// # Errors
    /// [`GitHubError`] for any other answer.
    pub async fn delete_runner(
        &self,
        scope: &Scope,
        id: i64,
    ) -> Result<DeleteOutcome, GitHubError> {
        let path = format!("{}/actions/runners/{id}", scope.api_path());
        match self
            .send(Method::DELETE, &path, None, &format!("runner {id}"))
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

    /// Workflow runs of `repo` in `status`, first 100 (a conditional request:
    /// an unchanged answer costs no rate limit).
    ///
    /// # Errors
    /// [`GitHubError`].
    pub async fn list_runs(
        &self,
        repo: &Scope,
        status: &str,
        etag: Option<&str>,
    ) -> Result<Conditional<RunsPage>, GitHubError> {
        let path = format!(
            "{}/actions/runs?status={status}&per_page=100",
            repo.api_path()
        );
        self.get_conditional(&path, etag, &format!("runs of {repo}"))
            .await
    }

    /// Jobs of one workflow run (latest attempt), first 100, conditional.
    ///
    /// # Errors
    /// [`GitHubError`].
    pub async fn list_jobs(
        &self,
        repo: &Scope,
        run_id: i64,
        etag: Option<&str>,
    ) -> Result<Conditional<JobsPage>, GitHubError> {
        let path = format!(
            "{}/actions/runs/{run_id}/jobs?per_page=100",
            repo.api_path()
        );
        self.get_conditional(&path, etag, &format!("jobs of run {run_id}"))
            .await
    }

    async fn get_conditional<T: DeserializeOwned>(
        &self,
        path: &str,
        etag: Option<&str>,
        what: &str,
    ) -> Result<Conditional<T>, GitHubError> {
        let response = self
            .send_conditional(Method::GET, path, None, what, etag)
            .await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(Conditional::NotModified);
        }
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| GitHubError::Decode(format!("reading {what}: {e}")))?;
        let body = serde_json::from_slice(&bytes)
            .map_err(|e| GitHubError::Decode(format!("{what}: {e}")))?;
        Ok(Conditional::Fresh { body, etag })
    }

    /// `GET /rate_limit` (free of charge): refreshes the figures for `/health`.
    ///
    /// # Errors
    /// [`GitHubError`].
    pub async fn check_rate_limit(&self) -> Result<(), GitHubError> {
        self.send(Method::GET, "/rate_limit", None, "rate limit")
            .await
            .map(|_| ())
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        what: &str,
    ) -> Result<T, GitHubError> {
        let response = self.send(method, path, body, what).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| GitHubError::Decode(format!("reading {what}: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| GitHubError::Decode(format!("{what}: {e}")))
    }

    /// Sends one request with retries; returns the successful response.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        what: &str,
    ) -> Result<Response, GitHubError> {
        self.send_conditional(method, path, body, what, None).await
    }

    /// [`Self::send`] with an optional `If-None-Match`; a 304 counts as success.
    async fn send_conditional(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        what: &str,
        if_none_match: Option<&str>,
    ) -> Result<Response, GitHubError> {
        let result = self
            .send_with_retries(method, path, body, what, if_none_match)
            .await;
        let mut last_error = self.last_error.lock().expect("last error lock");
        match &result {
            Ok(_) => *last_error = None,
            // A 404/409/422 is an answer about the request, not GitHub's health.
            Err(
                GitHubError::NotFound(_) | GitHubError::Conflict(_) | GitHubError::Unprocessable(_),
            ) => *last_error = None,
            Err(e) => *last_error = Some(e.to_string()),
        }
        result
    }

    async fn send_with_retries(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        what: &str,
        if_none_match: Option<&str>,
    ) -> Result<Response, GitHubError> {
        let url = format!("{}{}", self.base_url, path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(wait) = self.rate_limit.paused_for() {
                return Err(GitHubError::RateLimited(wait));
            }
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header(header::AUTHORIZATION, self.authorization.clone());
            if let Some(body) = &body {
                request = request.json(body);
            }
            if let Some(etag) = if_none_match {
                request = request.header(header::IF_NONE_MATCH, etag);
            }
            let retry = match request.send().await {
                Ok(response) => {
                    self.rate_limit.observe(response.headers());
                    let status = response.status();
                    if status.is_success() || status == StatusCode::NOT_MODIFIED {
                        return Ok(response);
                    }
                    let headers = response.headers().clone();
                    let error: GitHubErrorBody = response.json().await.unwrap_or_default();
                    match status {
                        StatusCode::UNAUTHORIZED => return Err(GitHubError::Unauthorized),
                        StatusCode::NOT_FOUND => {
                            return Err(GitHubError::NotFound(what.to_owned()));
                        }
                        StatusCode::CONFLICT => return Err(GitHubError::Conflict(error.message)),
                        StatusCode::UNPROCESSABLE_ENTITY => {
                            return Err(GitHubError::Unprocessable(error.message));
                        }
                        StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
                            match RateLimitState::classify(
                                status.as_u16(),
                                &headers,
                                &error.documentation_url,
                                &error.message,
                            ) {
                                Some(throttle) => {
                                    warn!(
                                        status = status.as_u16(),
                                        wait_seconds = throttle.wait().as_secs(),
                                        "GitHub rate limit reached; pausing GitHub calls"
                                    );
                                    self.rate_limit.pause(throttle.wait());
                                    return Err(GitHubError::RateLimited(throttle.wait()));
                                }
                                None => return Err(GitHubError::Forbidden(error.message)),
                            }
                        }
                        s if s.is_server_error() => GitHubError::Status {
                            status: s.as_u16(),
                            message: if error.message.is_empty() {
                                s.canonical_reason().unwrap_or("server error").to_owned()
                            } else {
                                error.message
                            },
                            attempts: attempt,
                        },
                        s => {
                            return Err(GitHubError::Status {
                                status: s.as_u16(),
                                message: error.message,
                                attempts: attempt,
                            });
                        }
                    }
                }
                Err(e) => GitHubError::Unreachable {
                    message: transport_message(&e),
                    attempts: attempt,
                },
            };
            if attempt >= MAX_ATTEMPTS {
                return Err(retry);
            }
            let delay = FIRST_BACKOFF * 2u32.pow(attempt - 1);
            debug!(%method, path, attempt, error = %retry, "retrying GitHub call");
            tokio::time::sleep(delay).await;
        }
    }
}

/// A transport error without the URL's query or anything secret.
fn transport_message(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        error.to_string()
    }
}
