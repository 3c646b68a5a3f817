//! Everything the orchestrator asks GitHub: JIT configurations, registration
//! tokens, runner listings and deletions.
//!
//! - [`client`]: the HTTP client (retries, timeouts, status mapping).
//! - [`pages`]: listings followed through `Link: rel="next"` to the end, and
//!   the ETags of their pages.
//! - [`rate_limit`]: remembers GitHub's rate-limit answers per bucket so that
//!   no call of a bucket is made while GitHub asked us to wait.
//! - [`types`]: the wire shapes GitHub sends.

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
