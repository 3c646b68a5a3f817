//! The JSON shapes GitHub's REST API sends and receives, as far as we use them.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// A self-hosted runner registration (`runner` schema).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GitHubRunner {
    /// GitHub's runner id.
    pub id: i64,
    /// The runner's name (ours: the container's name).
    pub name: String,
    /// `online` or `offline`.
    pub status: String,
    /// Whether it runs a job right now.
    pub busy: bool,
    /// Its labels.
    #[serde(default)]
    pub labels: Vec<GitHubLabel>,
}

impl GitHubRunner {
    /// Whether GitHub shows the runner connected.
    pub fn is_online(&self) -> bool {
        self.status.eq_ignore_ascii_case("online")
    }
}

/// One runner label.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GitHubLabel {
    /// The label's text.
    pub name: String,
}

/// `GET …/actions/runners`.
#[derive(Debug, Deserialize)]
pub(crate) struct RunnerPage {
    pub(crate) total_count: i64,
    pub(crate) runners: Vec<GitHubRunner>,
}

/// Body of `POST …/actions/runners/generate-jitconfig`.
#[derive(Debug, Serialize)]
pub(crate) struct JitRequest<'a> {
    pub(crate) name: &'a str,
    pub(crate) runner_group_id: i64,
    pub(crate) labels: &'a [String],
    pub(crate) work_folder: &'a str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct JitResponse {
    pub(crate) runner: GitHubRunner,
    pub(crate) encoded_jit_config: String,
}

/// A runner's single-use just-in-time configuration.
#[derive(Debug)]
pub struct JitConfig {
    /// The registration GitHub created for it.
    pub runner_id: i64,
    /// The base64 configuration the runner reads from
    /// `ACTIONS_RUNNER_INPUT_JITCONFIG`. Secret: it lets one runner connect.
    pub encoded: SecretString,
}

/// A registration token for `config.sh` (one hour).
#[derive(Debug)]
pub struct RegistrationToken {
    /// The token. Secret.
    pub token: SecretString,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) token: String,
    #[serde(default)]
    pub(crate) expires_at: Option<DateTime<Utc>>,
}

/// GitHub's error body (`basic-error` / `validation-error-simple`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GitHubErrorBody {
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) documentation_url: String,
}

/// `GET …/actions/runs`.
#[derive(Debug, Clone, Deserialize)]
pub struct RunsPage {
    /// Runs matching, in all pages.
    pub total_count: i64,
    /// This page's runs.
    pub workflow_runs: Vec<WorkflowRun>,
}

/// A workflow run, as far as polling needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowRun {
    /// The run's id.
    pub id: i64,
    /// `queued`, `in_progress`, `completed`, ...
    #[serde(default)]
    pub status: Option<String>,
}

/// `GET …/actions/runs/{run_id}/jobs`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobsPage {
    /// Jobs in all pages.
    pub total_count: i64,
    /// This page's jobs.
    pub jobs: Vec<WorkflowJob>,
}

/// A workflow job (REST `job` schema, and `workflow_job` in webhooks).
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowJob {
    /// The job's id.
    pub id: i64,
    /// Its run.
    #[serde(default)]
    pub run_id: Option<i64>,
    /// `queued`, `in_progress`, `completed`, `waiting`, ...
    pub status: String,
    /// Set once completed.
    #[serde(default)]
    pub conclusion: Option<String>,
    /// The `runs-on` labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The job's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The runner that took it, once assigned.
    #[serde(default)]
    pub runner_name: Option<String>,
}
