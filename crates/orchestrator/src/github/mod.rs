//! Everything the orchestrator asks GitHub: JIT configurations, registration
//! tokens, runner listings and deletions, behind the [`GitHub`] trait (the
//! lifecycle is written against it; [`GitHubClient`] is the REST client).
//!
//! - [`auth`]: who we are on GitHub: a personal access token, or a GitHub
//!   App with an installation token per owner, renewed before it expires.
//! - [`client`]: the HTTP client (retries, timeouts, status mapping).
//! - [`pages`]: listings followed through `Link: rel="next"` to the end, and
//!   the ETags of their pages.
//! - [`rate_limit`]: remembers GitHub's rate-limit answers per bucket so that
//!   no call of a bucket is made while GitHub asked us to wait.
//! - [`types`]: the wire shapes GitHub sends.

pub mod auth;
pub mod client;
pub mod pages;
pub mod rate_limit;
pub mod types;

pub use client::DeleteOutcome;
pub use client::{GitHubClient, GitHubError};
pub use pages::{Listing, PageCache};
pub use types::{
    GitHubRunner, JitConfig, JobsPage, RegistrationToken, RunsPage, WorkflowJob, WorkflowRun,
};

use std::time::Duration;

use crate::scope::Scope;
use rate_limit::RateLimitSnapshot;

/// What the orchestrator asks GitHub. [`GitHubClient`] answers it over
/// REST with a token; the decisions built on it are unit-tested with an
/// in-memory one.
#[async_trait::async_trait]
pub trait GitHub: std::fmt::Debug + Send + Sync {
    /// The API base URL in use.
    fn base_url(&self) -> &str;

    /// What the last answers said about each rate-limit bucket.
    fn rate_limit(&self) -> RateLimitSnapshot;

    /// Whether the `core` calls (listings, deletions) are paused by a rate
    /// limit, and for how long.
    fn paused_for(&self) -> Option<Duration>;

    /// The last call's failure, if the last call failed.
    fn last_error(&self) -> Option<String>;

    /// Asks for a single-use JIT configuration. One POST, never repeated
    /// here: when its answer is lost ([`GitHubError::answer_may_be_lost`]),
    /// look the runner up with [`GitHub::find_runner_by_name`].
    ///
    /// # Errors
    /// [`GitHubError`]; 404 means the scope or the runner group is unknown.
    async fn generate_jit_config(
        &self,
        scope: &Scope,
        name: &str,
        labels: &[String],
        runner_group_id: i64,
    ) -> Result<JitConfig, GitHubError>;

    /// Asks for a registration token for `config.sh` (one POST; a token
    /// whose answer is lost expires unused within the hour).
    ///
    /// # Errors
    /// [`GitHubError`].
    async fn registration_token(&self, scope: &Scope) -> Result<RegistrationToken, GitHubError>;

    /// Every runner registered to `scope`, all pages, 100 per call.
    ///
    /// Runners registered or removed while the pages are read can shift
    /// between pages, so a runner missing from this listing is not proof
    /// that it is gone: confirm with [`GitHub::get_runner`].
    ///
    /// # Errors
    /// [`GitHubError`]; a listing that cannot be read to its end is an error
    /// as a whole, never a partial answer.
    async fn list_runners(&self, scope: &Scope) -> Result<Vec<GitHubRunner>, GitHubError>;

    /// The runner of `scope` named `name` (GitHub's `name` filter), if any.
    ///
    /// # Errors
    /// [`GitHubError`].
    async fn find_runner_by_name(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<GitHubRunner>, GitHubError>;

    /// One runner by id; `None` when GitHub answers 404.
    ///
    /// # Errors
    /// [`GitHubError`] other than 404.
    async fn get_runner(&self, scope: &Scope, id: i64)
    -> Result<Option<GitHubRunner>, GitHubError>;

    /// Deletes a registration: 204 → deleted, 404 → already gone, 422 → busy.
    ///
    /// # Errors
    /// [`GitHubError`] for any other answer.
    async fn delete_runner(&self, scope: &Scope, id: i64) -> Result<DeleteOutcome, GitHubError>;

    /// Workflow runs of `repo` in `status`, every page (at most GitHub's
    /// 1,000 for a filtered listing; see [`pages::FILTERED_RUNS_CAP`]).
    /// Pages unchanged since `cache` last saw them cost no rate limit.
    ///
    /// GitHub's filtered listing is search-backed and lags: a run missing
    /// from it is not proof of anything.
    ///
    /// # Errors
    /// [`GitHubError`].
    async fn list_runs(
        &self,
        repo: &Scope,
        status: &str,
        cache: &mut PageCache,
    ) -> Result<Listing<WorkflowRun>, GitHubError>;

    /// Jobs of one workflow run (latest attempt), every page; pages
    /// unchanged since `cache` last saw them cost no rate limit.
    ///
    /// # Errors
    /// [`GitHubError`].
    async fn list_jobs(
        &self,
        repo: &Scope,
        run_id: i64,
        cache: &mut PageCache,
    ) -> Result<Listing<WorkflowJob>, GitHubError>;

    /// One job, read directly (`GET …/actions/jobs/{job_id}`): unlike the
    /// run listings this is never behind. `None` when GitHub answers 404.
    ///
    /// # Errors
    /// [`GitHubError`] other than 404.
    async fn get_job(&self, repo: &Scope, job_id: i64) -> Result<Option<WorkflowJob>, GitHubError>;

    /// `GET /rate_limit` (free of charge): refreshes every bucket's figures
    /// for `/health`.
    ///
    /// # Errors
    /// [`GitHubError`].
    async fn check_rate_limit(&self) -> Result<(), GitHubError>;
}
