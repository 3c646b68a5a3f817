//! Everything the orchestrator asks GitHub: JIT configurations, registration
//! tokens, runner listings and deletions.
//!
//! - [`client`]: the HTTP client (retries, timeouts, status mapping).
//! - [`rate_limit`]: remembers GitHub's rate-limit answers so that no call is
//!   made while GitHub asked us to wait.
//! - [`types`]: the wire shapes GitHub sends.

pub mod client;
pub mod rate_limit;
pub mod types;

pub use client::{Conditional, DeleteOutcome};
pub use client::{GitHubClient, GitHubError};
pub use types::{
    GitHubRunner, JitConfig, JobsPage, RegistrationToken, RunsPage, WorkflowJob, WorkflowRun,
};
