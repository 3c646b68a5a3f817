//! The orchestrator's configuration: every environment variable, parsed and
//! checked once at start-up.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

use crate::engine::SidecarSpec;
use crate::github::auth::{AppSettings, GitHubAuth};
use crate::scope::{Scope, validate_label};

/// How a runner container gets its GitHub registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegistrationMode {
    /// A single-use just-in-time configuration (`ACTIONS_RUNNER_INPUT_JITCONFIG`).
    Jit,
    /// A registration token, URL, name and labels, for images that run
    /// `config.sh` themselves (e.g. myoung34/github-runner).
    Token,
}

/// Whether a runner gets a Docker engine of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DockerMode {
    /// No Docker in the runner (jobs cannot use `services:`, `container:`,
    /// container actions or `docker`).
    None,
    /// A private Docker engine per runner, in a container created and
    /// removed with it (`engine::sidecar`).
    Sidecar,
}

impl DockerMode {
    /// As the pools file and the API write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Sidecar => "sidecar",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything the orchestrator reads from its environment. `--help` lists
/// each variable with its default.
#[derive(Debug, Clone, Parser)]
#[command(name = "gha-orchestrator", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ORCHESTRATOR_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "ORCHESTRATOR_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Open connections at most (the gateway's pool and health checks);
    /// the next one is accepted when one closes.
    #[arg(
        long,
        env = "ORCHESTRATOR_MAX_CONNECTIONS",
        default_value_t = service_kit::MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,
    /// Marks the containers and networks this orchestrator owns, with the
    /// GitHub API URL and the configured scope; a second orchestrator with
    /// the same id on one Docker engine refuses to start.
    #[arg(long, env = "ORCHESTRATOR_ID", default_value = "default")]
    pub instance_id: String,

    /// GitHub token (PAT with `repo`/`admin:org`, or fine-grained with
    /// Administration: write). Never logged, never given to a runner.
    /// Give this or `GITHUB_TOKEN_FILE`.
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<SecretString>,
    /// A file holding the GitHub token (e.g. a Compose secret at
    /// `/run/secrets/github_token`), so the token is not in the container's
    /// environment.
    #[arg(long, env = "GITHUB_TOKEN_FILE")]
    pub github_token_file: Option<std::path::PathBuf>,
    /// A GitHub App instead of a token: the App's id (or client id). With
    /// `GITHUB_APP_PRIVATE_KEY_FILE`; a token or an App, not both.
    #[arg(long, env = "GITHUB_APP_ID")]
    pub github_app_id: Option<String>,
    /// The GitHub App's private key (the PEM file GitHub generated), e.g. a
    /// Compose secret at `/run/secrets/github_app_private_key`. Never logged.
    #[arg(long, env = "GITHUB_APP_PRIVATE_KEY_FILE")]
    pub github_app_private_key_file: Option<std::path::PathBuf>,
    /// The App's installation to use for every owner; unset, each owner's
    /// installation is looked up (one App installed on several owners).
    #[arg(long, env = "GITHUB_APP_INSTALLATION_ID")]
    pub github_app_installation_id: Option<String>,
    /// GitHub REST API base URL (`https://HOST/api/v3` for GitHub Enterprise Server).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,
    /// Default repository (`owner/name`) for runners when a request names none.
    #[arg(long, env = "GITHUB_REPOSITORY", value_parser = parse_repository)]
    pub github_repository: Option<Scope>,
    /// Default organization for runners when a request names none.
    #[arg(long, env = "GITHUB_ORG", value_parser = parse_organization)]
    pub github_org: Option<Scope>,
    /// A PEM file of CA certificates to trust for `GITHUB_API_URL` beside
    /// the system's store and the bundled roots (a GitHub Enterprise Server
    /// whose certificate a private CA signed).
    #[arg(long, env = "GITHUB_CA_FILE")]
    pub github_ca_file: Option<std::path::PathBuf>,
    /// At shutdown, how long requests in flight may take to finish before
    /// they are cut off; idle runners are removed after it. Keep it below
    /// the container's stop grace period (Compose: 30 s) minus 8 s.
    #[arg(long = "shutdown-drain-seconds", value_name = "SHUTDOWN_DRAIN_SECONDS", env = "SHUTDOWN_DRAIN_SECONDS", default_value = "20", value_parser = positive_seconds)]
    pub shutdown_drain: Duration,
    /// GitHub requests in flight at once, at most (GitHub's secondary
    /// limits refuse clients with too many concurrent requests).
    #[arg(long, env = "GITHUB_MAX_CONCURRENT_REQUESTS", default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub github_max_concurrent_requests: u16,
    /// The most one GitHub call may take, retries included, in seconds:
    /// keep it below the gateway's `UPSTREAM_TIMEOUT_SECONDS` (30).
    #[arg(long = "github-retry-deadline-seconds", value_name = "GITHUB_RETRY_DEADLINE_SECONDS", env = "GITHUB_RETRY_DEADLINE_SECONDS", default_value = "25", value_parser = positive_seconds)]
    pub github_retry_deadline: Duration,
    /// Timeout of one GitHub API call, in seconds.
    #[arg(long = "github-timeout-seconds", value_name = "GITHUB_TIMEOUT_SECONDS", env = "GITHUB_TIMEOUT_SECONDS", default_value = "15", value_parser = positive_seconds)]
    pub github_timeout: Duration,

    /// Runner image.
    #[arg(
        long,
        env = "RUNNER_IMAGE",
        default_value = "ghcr.io/actions/actions-runner:latest"
    )]
    pub runner_image: String,
    /// Images a create request may ask for (comma-separated); default: `RUNNER_IMAGE` only.
    #[arg(long, env = "RUNNER_IMAGE_ALLOWLIST", value_delimiter = ',')]
    pub runner_image_allowlist: Vec<String>,
    /// Command the runner container runs, split as a POSIX shell would
    /// (quotes keep spaces; no shell runs it).
    #[arg(long, env = "RUNNER_COMMAND", default_value = "/home/runner/run.sh", value_parser = parse_command)]
    pub runner_command: RunnerCommand,
    /// Extra environment for runner containers, `KEY=VALUE` pairs, comma-separated.
    #[arg(long, env = "RUNNER_ENV", value_delimiter = ',')]
    pub runner_env: Vec<String>,
    /// Prefix of runner names (a random suffix follows).
    #[arg(long, env = "RUNNER_NAME_PREFIX", default_value = "gha-runner")]
    pub runner_name_prefix: String,
    /// Labels every runner gets after `self-hosted`, `linux`, `x64` (comma-separated).
    #[arg(long, env = "RUNNER_LABELS", value_delimiter = ',')]
    pub runner_labels: Vec<String>,
    /// Runner group runners register into.
    #[arg(long, env = "RUNNER_GROUP_ID", default_value_t = 1)]
    pub runner_group_id: i64,
    /// Docker network runner containers join (a bridge, created when missing).
    #[arg(long, env = "RUNNER_NETWORK", default_value = "gha-runners")]
    pub runner_network: String,
    /// Memory limit of a runner container, e.g. `2g`, `512m` (none by default).
    #[arg(long, env = "RUNNER_MEMORY", value_parser = parse_memory)]
    pub runner_memory: Option<i64>,
    /// CPU limit of a runner container, e.g. `1.5` (none by default).
    #[arg(long, env = "RUNNER_CPUS")]
    pub runner_cpus: Option<f64>,
    /// Process limit of a runner container (none by default).
    #[arg(long, env = "RUNNER_PIDS_LIMIT")]
    pub runner_pids_limit: Option<i64>,
    /// `sidecar`: each runner gets a private Docker engine (a container of
    /// `RUNNER_DOCKER_IMAGE` created and removed with it), so jobs can use
    /// `services:`, `container:`, container actions and `docker build`.
    #[arg(long, env = "RUNNER_DOCKER", value_enum, default_value_t = DockerMode::None)]
    pub runner_docker: DockerMode,
    /// The image of a runner's Docker engine (`RUNNER_DOCKER=sidecar`).
    #[arg(long, env = "RUNNER_DOCKER_IMAGE", default_value = "docker:dind")]
    pub runner_docker_image: String,
    /// Run a runner's Docker engine with `--privileged` (default); `false`:
    /// an explicit capability set, for hosts that refuse `--privileged`.
    #[arg(long, value_name = "RUNNER_DOCKER_PRIVILEGED", env = "RUNNER_DOCKER_PRIVILEGED", default_value_t = true, action = clap::ArgAction::Set)]
    pub runner_docker_privileged: bool,
    /// A registry mirror for runners' Docker engines (e.g.
    /// `https://mirror.example.com`), so images are not fetched from the
    /// internet for every job.
    #[arg(long, env = "RUNNER_DOCKER_REGISTRY_MIRROR", value_parser = parse_registry_mirror)]
    pub runner_docker_registry_mirror: Option<String>,
    /// How runners register: `jit` (default) or `token`.
    #[arg(long, env = "RUNNER_REGISTRATION", value_enum, default_value_t = RegistrationMode::Jit)]
    pub runner_registration: RegistrationMode,
    /// Cap on runners alive at once, over all pools.
    #[arg(long, env = "MAX_RUNNERS", default_value_t = 10)]
    pub max_runners: u32,
    /// A TOML file of runner pools (several kinds of runner, chosen by a
    /// job's labels); without it the `RUNNER_*` variables define one pool,
    /// `default`. Read again on SIGHUP and `POST /pools/reload`.
    #[arg(long, env = "RUNNER_POOLS_FILE", value_parser = path_or_empty)]
    pub runner_pools_file: Option<std::path::PathBuf>,

    /// Seconds between background pulls of `RUNNER_IMAGE` (0: never pull).
    #[arg(
        long = "runner-image-pull-interval-seconds",
        value_name = "RUNNER_IMAGE_PULL_INTERVAL_SECONDS",
        env = "RUNNER_IMAGE_PULL_INTERVAL_SECONDS",
        default_value = "21600",
        value_parser = seconds
    )]
    pub runner_image_pull_interval: Duration,
    /// Seconds a finished runner stays visible through the API.
    #[arg(long = "runner-history-seconds", value_name = "RUNNER_HISTORY_SECONDS", env = "RUNNER_HISTORY_SECONDS", default_value = "600", value_parser = seconds)]
    pub runner_history: Duration,
    /// Seconds between reconcile passes.
    #[arg(long = "reconcile-interval-seconds", value_name = "RECONCILE_INTERVAL_SECONDS", env = "RECONCILE_INTERVAL_SECONDS", default_value = "30", value_parser = positive_seconds)]
    pub reconcile_interval: Duration,
    /// Seconds a runner may take to come online before it is removed.
    #[arg(
        long = "runner-registration-timeout-seconds",
        value_name = "RUNNER_REGISTRATION_TIMEOUT_SECONDS",
        env = "RUNNER_REGISTRATION_TIMEOUT_SECONDS",
        default_value = "600",
        value_parser = positive_seconds
    )]
    pub runner_registration_timeout: Duration,
    /// Seconds after which a runner that is not busy is removed.
    #[arg(long = "runner-max-lifetime-seconds", value_name = "RUNNER_MAX_LIFETIME_SECONDS", env = "RUNNER_MAX_LIFETIME_SECONDS", default_value = "86400", value_parser = positive_seconds)]
    pub runner_max_lifetime: Duration,
    /// Timeout of one Docker API call, in seconds.
    #[arg(long = "docker-timeout-seconds", value_name = "DOCKER_TIMEOUT_SECONDS", env = "DOCKER_TIMEOUT_SECONDS", default_value = "20", value_parser = positive_seconds)]
    pub docker_timeout: Duration,

    /// Secret GitHub signs webhook deliveries with; without it (unset or
    /// empty) `POST /webhooks/github` answers 404 (webhooks off).
    /// Give this or `GITHUB_WEBHOOK_SECRET_FILE`.
    #[arg(long, env = "GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<SecretString>,
    /// A file holding the webhook secret (e.g. a Compose secret at
    /// `/run/secrets/github_webhook_secret`), so it is not in the container's
    /// environment; an empty file turns webhooks off.
    // `Config::load_secret_files` reads it into `github_webhook_secret`.
    #[arg(long, env = "GITHUB_WEBHOOK_SECRET_FILE")]
    pub github_webhook_secret_file: Option<std::path::PathBuf>,
    /// More repositories (`owner/name`, comma-separated) whose jobs get runners.
    #[arg(long, env = "ALLOWED_REPOSITORIES", value_delimiter = ',', value_parser = parse_repository)]
    pub allowed_repositories: Vec<Scope>,
    /// Seconds between polls of queued jobs (0: no polling; webhooks only).
    #[arg(long = "autoscale-poll-interval-seconds", value_name = "AUTOSCALE_POLL_INTERVAL_SECONDS", env = "AUTOSCALE_POLL_INTERVAL_SECONDS", default_value = "30", value_parser = seconds)]
    pub autoscale_poll_interval: Duration,
    /// Idle runners kept online in the default scope, ready for the next job.
    #[arg(long, env = "MIN_IDLE_RUNNERS", default_value_t = 0)]
    pub min_idle_runners: u32,
    /// Seconds an idle runner above the warm pool may wait for a job before it is removed.
    #[arg(long = "runner-idle-timeout-seconds", value_name = "RUNNER_IDLE_TIMEOUT_SECONDS", env = "RUNNER_IDLE_TIMEOUT_SECONDS", default_value = "300", value_parser = positive_seconds)]
    pub runner_idle_timeout: Duration,

    /// Log format: `text` or `json`. Verbosity comes from `RUST_LOG` (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// Reads `GITHUB_WEBHOOK_SECRET_FILE` into `github_webhook_secret` (an
    /// empty file: webhooks off) and clears the file field; an empty
    /// `GITHUB_WEBHOOK_SECRET` counts as unset. (The GitHub token's file is
    /// read by [`Config::resolve_github_token`].)
    ///
    /// # Errors
    /// Both a secret and a file, or a file that cannot be read.
    pub fn load_secret_files(&mut self) -> Result<(), String> {
        if self
            .github_webhook_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().trim().is_empty())
        {
            self.github_webhook_secret = None;
        }
        if let Some(path) = &self.github_webhook_secret_file {
            if self.github_webhook_secret.is_some() {
                return Err(
                    "set GITHUB_WEBHOOK_SECRET or GITHUB_WEBHOOK_SECRET_FILE, not both".into(),
                );
            }
            let text = read_secret_file("GITHUB_WEBHOOK_SECRET_FILE", path)?;
            let secret = text.trim();
            self.github_webhook_secret =
                (!secret.is_empty()).then(|| SecretString::from(secret.to_owned()));
            self.github_webhook_secret_file = None;
        }
        Ok(())
    }

    /// Checks what clap cannot: scopes, label syntax, limits.
    ///
    /// # Errors
    /// A message that names the offending variable.
    pub fn validate(&self) -> Result<(), String> {
        self.resolve_github_auth()?;
        if self.github_webhook_secret_file.is_some() {
            return Err(
                "GITHUB_WEBHOOK_SECRET_FILE was not read: call load_secret_files first".into(),
            );
        }
        if self
            .github_webhook_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().trim().is_empty())
        {
            // An empty HMAC key would let anyone sign a delivery.
            return Err("GITHUB_WEBHOOK_SECRET is empty: unset it to turn webhooks off".into());
        }
        if self.github_repository.is_some() && self.github_org.is_some() {
            return Err("set GITHUB_REPOSITORY or GITHUB_ORG, not both".into());
        }
        if !(self.github_api_url.starts_with("http://")
            || self.github_api_url.starts_with("https://"))
        {
            return Err(format!(
                "GITHUB_API_URL must start with http:// or https://, got {:?}",
                self.github_api_url
            ));
        }
        if self.max_runners == 0 {
            return Err("MAX_RUNNERS must be at least 1".into());
        }
        if self.instance_id.is_empty() || self.instance_id.len() > 63 {
            return Err("ORCHESTRATOR_ID must be 1 to 63 characters".into());
        }
        validate_name_prefix(&self.runner_name_prefix)
            .map_err(|e| format!("RUNNER_NAME_PREFIX: {e}"))?;
        for label in &self.runner_labels {
            validate_label(label).map_err(|e| format!("RUNNER_LABELS: {e}"))?;
        }
        check_runner_env(&self.runner_env).map_err(|e| format!("RUNNER_ENV: {e}"))?;
        if let Some(cpus) = self.runner_cpus
            && !(cpus > 0.0 && cpus.is_finite())
        {
            return Err("RUNNER_CPUS must be a positive number".into());
        }
        if let Some(pids) = self.runner_pids_limit
            && pids < 1
        {
            return Err("RUNNER_PIDS_LIMIT must be at least 1".into());
        }
        if self.min_idle_runners > self.max_runners {
            return Err(format!(
                "MIN_IDLE_RUNNERS ({}) is above MAX_RUNNERS ({}): the warm pool could never be filled",
                self.min_idle_runners, self.max_runners
            ));
        }
        if self.min_idle_runners > 0 && self.default_scope().is_none() {
            return Err(
                "MIN_IDLE_RUNNERS needs GITHUB_REPOSITORY or GITHUB_ORG: the warm pool registers there".into(),
            );
        }
        Ok(())
    }

    /// The runner's Docker engine the variables ask for (`RUNNER_DOCKER`).
    pub fn runner_sidecar(&self) -> Option<SidecarSpec> {
        (self.runner_docker == DockerMode::Sidecar).then(|| SidecarSpec {
            image: self.runner_docker_image.clone(),
            privileged: self.runner_docker_privileged,
            registry_mirror: self.runner_docker_registry_mirror.clone(),
        })
    }

    /// The pools file, when `RUNNER_POOLS_FILE` names one (empty: none).
    pub fn pools_file(&self) -> Option<&std::path::Path> {
        self.runner_pools_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }

    /// The GitHub token, from `GITHUB_TOKEN` or the file `GITHUB_TOKEN_FILE` names.
    ///
    /// # Errors
    /// A message naming the variable when neither or both are set, or the
    /// file cannot be read or is empty.
    pub fn resolve_github_token(&self) -> Result<SecretString, String> {
        let from_env = self
            .github_token
            .as_ref()
            .filter(|t| !t.expose_secret().trim().is_empty());
        match (from_env, &self.github_token_file) {
            (Some(_), Some(_)) => Err("set GITHUB_TOKEN or GITHUB_TOKEN_FILE, not both".into()),
            (Some(token), None) => Ok(SecretString::from(token.expose_secret().trim().to_owned())),
            (None, Some(path)) => {
                let text = read_secret_file("GITHUB_TOKEN_FILE", path)?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(format!("GITHUB_TOKEN_FILE: {} is empty", path.display()));
                }
                Ok(SecretString::from(token.to_owned()))
            }
            (None, None) => Err("GITHUB_TOKEN (or GITHUB_TOKEN_FILE) is required".into()),
        }
    }

    /// How the orchestrator authenticates: the token, or the GitHub App
    /// (`GITHUB_APP_ID` with its key in `GITHUB_APP_PRIVATE_KEY_FILE`). An
    /// empty variable or an empty token file counts as unset (Compose gives
    /// both secret files, one of them empty).
    ///
    /// # Errors
    /// A message naming the variables when both a token and an App are set,
    /// or neither, or the App's settings or key are unusable.
    pub fn resolve_github_auth(&self) -> Result<GitHubAuth, String> {
        let app_id = self
            .github_app_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty());
        let installation_id = match self.github_app_installation_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(text.parse::<u64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                format!("GITHUB_APP_INSTALLATION_ID must be an installation's id, a positive whole number, not {text:?}")
            })?),
        };
        let key_file = self
            .github_app_private_key_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty());
        let Some(app_id) = app_id else {
            if installation_id.is_some() {
                return Err("GITHUB_APP_INSTALLATION_ID needs GITHUB_APP_ID".into());
            }
            return self.resolve_github_token().map_err(|error| {
                // A key without its App id is most likely the App half-configured.
                match key_file.and_then(|path| std::fs::read_to_string(path).ok()) {
                    Some(pem) if !pem.trim().is_empty() => format!(
                        "{error}; GITHUB_APP_PRIVATE_KEY_FILE holds a key: to use the GitHub App, set GITHUB_APP_ID too"
                    ),
                    _ => error,
                }
            }).map(GitHubAuth::Token);
        };
        if !app_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!(
                "GITHUB_APP_ID must be the App's id (a number) or its client id (Iv…), not {app_id:?}"
            ));
        }
        let token_set = self
            .github_token
            .as_ref()
            .is_some_and(|t| !t.expose_secret().trim().is_empty())
            || match &self.github_token_file {
                Some(path) => !read_secret_file("GITHUB_TOKEN_FILE", path)?
                    .trim()
                    .is_empty(),
                None => false,
            };
        if token_set {
            return Err("set a token (GITHUB_TOKEN or GITHUB_TOKEN_FILE) or a GitHub App (GITHUB_APP_ID), not both: empty the token file, or unset GITHUB_APP_ID".into());
        }
        let path = key_file.ok_or(
            "GITHUB_APP_ID needs GITHUB_APP_PRIVATE_KEY_FILE, the file holding the App's private key (PEM)",
        )?;
        let pem = SecretString::from(read_secret_file("GITHUB_APP_PRIVATE_KEY_FILE", path)?);
        if pem.expose_secret().trim().is_empty() {
            return Err(format!(
                "GITHUB_APP_PRIVATE_KEY_FILE: {} is empty; put the App's private key (PEM) in it",
                path.display()
            ));
        }
        AppSettings::new(app_id, &pem, installation_id)
            .map(GitHubAuth::App)
            .map_err(|e| format!("{e} ({})", path.display()))
    }

    /// The scope used when a request names none.
    pub fn default_scope(&self) -> Option<Scope> {
        self.github_repository
            .clone()
            .or_else(|| self.github_org.clone())
    }

    /// Images a create request may use.
    pub fn allowed_images(&self) -> Vec<String> {
        let mut images: Vec<String> = self
            .runner_image_allowlist
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if images.is_empty() {
            images.push(self.runner_image.clone());
        }
        images
    }

    /// Labels every runner gets before the request's own.
    pub fn base_labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = ["self-hosted", "linux", "x64"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for label in &self.runner_labels {
            let label = label.trim();
            if !label.is_empty() && !labels.iter().any(|l| l.eq_ignore_ascii_case(label)) {
                labels.push(label.to_owned());
            }
        }
        labels
    }

    /// `RUNNER_COMMAND` split into arguments: on whitespace, except inside
    /// single or double quotes (no other shell syntax).
    pub fn runner_command_args(&self) -> Vec<String> {
        self.runner_command.0.clone()
    }

    /// How often the runner image is pulled; `None`: never.
    pub fn image_pull_interval(&self) -> Option<Duration> {
        Some(self.runner_image_pull_interval).filter(|d| !d.is_zero())
    }

    /// How often queued jobs are polled; `None`: never (webhooks only).
    pub fn poll_interval(&self) -> Option<Duration> {
        Some(self.autoscale_poll_interval).filter(|d| !d.is_zero())
    }
}

/// Checks a runner's extra environment: `KEY=VALUE` pairs that set neither
/// the GitHub token nor the runner's own registration inputs.
///
/// # Errors
/// The first pair that is wrong, and why.
pub(crate) fn check_runner_env(pairs: &[String]) -> Result<(), String> {
    for pair in pairs {
        match pair.split_once('=') {
            Some((key, _)) if !key.is_empty() => {
                if key.eq_ignore_ascii_case("GITHUB_TOKEN")
                    || key
                        .to_ascii_uppercase()
                        .starts_with("ACTIONS_RUNNER_INPUT_")
                {
                    return Err(format!("may not set {key}"));
                }
            }
            _ => return Err(format!("entries must be KEY=VALUE, got {pair:?}")),
        }
    }
    Ok(())
}

/// Reads the secret file `variable` names. A file the process may not read
/// says which user must read it and how, since under Compose the host
/// file's owner and mode apply inside the container.
fn read_secret_file(variable: &str, path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        let mut message = format!("{variable}: cannot read {}: {e}", path.display());
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            let user = current_uid().map_or_else(
                || "the orchestrator's user".to_owned(),
                |uid| format!("the orchestrator's user (uid {uid})"),
            );
            message.push_str(&format!(
                "; {user} must be able to read it: make the host file readable (e.g. chmod 0644) and keep other host users out with its directory (e.g. chmod 0700 secrets)"
            ));
        }
        message
    })
}

/// This process's real uid, from `/proc/self/status`.
fn current_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The longest any `*_SECONDS` setting may be: ten years, far past any use,
/// and far from what `Instant` arithmetic could overflow.
pub(crate) const MAX_SECONDS: u64 = 10 * 365 * 86_400;

/// A `*_SECONDS` setting: whole seconds, 0 allowed (it means "off" where
/// the variable says so).
fn seconds(text: &str) -> Result<Duration, String> {
    let value: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of seconds"))?;
    if value > MAX_SECONDS {
        return Err(format!("{value} s is more than ten years"));
    }
    Ok(Duration::from_secs(value))
}

/// A `*_SECONDS` setting that must be at least 1.
fn positive_seconds(text: &str) -> Result<Duration, String> {
    let value = seconds(text)?;
    if value.is_zero() {
        return Err("must be at least 1 second".to_owned());
    }
    Ok(value)
}

/// A registry mirror's URL: `http://` or `https://`, nothing else (it is
/// passed to dockerd as `--registry-mirror`).
pub(crate) fn parse_registry_mirror(url: &str) -> Result<String, String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} is not a registry URL"));
    }
    Ok(url.to_owned())
}

/// A path that may be empty (`RUNNER_POOLS_FILE=` in `.env`: none).
fn path_or_empty(text: &str) -> Result<std::path::PathBuf, String> {
    Ok(std::path::PathBuf::from(text.trim()))
}

/// `GITHUB_REPOSITORY` and each of `ALLOWED_REPOSITORIES`: `owner/name`.
fn parse_repository(text: &str) -> Result<Scope, String> {
    Scope::repository(text.trim())
}

/// `GITHUB_ORG`.
fn parse_organization(text: &str) -> Result<Scope, String> {
    Scope::organization(text.trim())
}

/// `RUNNER_COMMAND`, split into the container's argument vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerCommand(pub Vec<String>);

/// Splits `RUNNER_COMMAND` with POSIX shell rules (`shlex`).
pub(crate) fn parse_command(line: &str) -> Result<RunnerCommand, String> {
    let args =
        shlex::split(line).ok_or_else(|| "unbalanced quotes or a trailing backslash".to_owned())?;
    if args.is_empty() {
        return Err("must name a command".to_owned());
    }
    Ok(RunnerCommand(args))
}

/// Names become container names and GitHub runner names: keep to what both accept.
fn validate_name_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > 40 {
        return Err("must be 1 to 40 characters".into());
    }
    if !prefix.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or digit".into());
    }
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err("may hold only letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// Parses `512m`, `2g`, `1073741824` into bytes.
pub(crate) fn parse_memory(text: &str) -> Result<i64, String> {
    let text = text.trim().to_ascii_lowercase();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text.as_str(), ""),
    };
    let value: i64 = digits
        .parse()
        .map_err(|_| format!("not a memory size: {text:?} (use e.g. 512m or 2g)"))?;
    let factor: i64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(format!("unknown memory unit in {text:?} (use k, m or g)")),
    };
    let bytes = value
        .checked_mul(factor)
        .ok_or_else(|| format!("memory size too large: {text:?}"))?;
    if bytes < 6 * (1 << 20) {
        return Err("must be at least 6m (Docker's minimum)".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["gha-orchestrator", "--github-token", "t"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).unwrap()
    }

    #[test]
    fn commands_split_like_a_shell_would() {
        let split = |line: &str| parse_command(line).map(|c| c.0);
        assert_eq!(
            split("/home/runner/run.sh").unwrap(),
            ["/home/runner/run.sh"]
        );
        assert_eq!(split("sh -c 'exit 7'").unwrap(), ["sh", "-c", "exit 7"]);
        assert_eq!(split(r#"a "b c"  d ''"#).unwrap(), ["a", "b c", "d", ""]);
        assert_eq!(split(r#"echo a\ b"#).unwrap(), ["echo", "a b"]);
        assert!(split("sh -c 'unclosed").is_err());
        assert!(split("   ").is_err());
        let error = Config::try_parse_from([
            "gha-orchestrator",
            "--github-token",
            "t",
            "--runner-command",
            "sh -c 'oops",
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("unbalanced quotes"), "{error}");
    }

    #[test]
    fn the_connection_cap_is_a_positive_number() {
        assert_eq!(config(&[]).max_connections, service_kit::MAX_CONNECTIONS);
        assert_eq!(config(&["--max-connections", "64"]).max_connections, 64);
        for bad in ["0", "lots"] {
            let error = Config::try_parse_from([
                "gha-orchestrator",
                "--github-token",
                "t",
                "--max-connections",
                bad,
            ])
            .unwrap_err()
            .to_string();
            assert!(error.contains("max-connections"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_token_comes_from_the_environment_or_a_file() {
        let dir = std::env::temp_dir().join(format!("gha-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "ghp_fromfile\n").unwrap();
        let c =
            Config::try_parse_from(["o", "--github-token-file", file.to_str().unwrap()]).unwrap();
        assert_eq!(
            c.resolve_github_token().unwrap().expose_secret(),
            "ghp_fromfile"
        );
        let both = config(&["--github-token-file", file.to_str().unwrap()]);
        assert!(both.validate().unwrap_err().contains("not both"));
        let neither = Config::try_parse_from(["o"]).unwrap();
        assert!(neither.validate().unwrap_err().contains("GITHUB_TOKEN"));
        std::fs::write(&file, "  \n").unwrap();
        assert!(c.resolve_github_token().unwrap_err().contains("empty"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_empty_token_variable_counts_as_unset_beside_a_file() {
        // docker-compose.yml passes GITHUB_TOKEN="" with GITHUB_TOKEN_FILE.
        let file = std::env::temp_dir().join(format!("gha-token-empty-{}", std::process::id()));
        std::fs::write(&file, "ghp_fromfile").unwrap();
        let c = Config::try_parse_from([
            "o",
            "--github-token",
            "",
            "--github-token-file",
            file.to_str().unwrap(),
        ])
        .unwrap();
        assert_eq!(
            c.resolve_github_token().unwrap().expose_secret(),
            "ghp_fromfile"
        );
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn the_webhook_secret_comes_from_the_environment_or_a_file() {
        let dir = std::env::temp_dir().join(format!("gha-webhook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        let path = file.to_str().unwrap();
        std::fs::write(&file, "s3cret\n").unwrap();
        let loaded = |args: &[&str]| {
            let mut c = config(args);
            c.load_secret_files().map(|()| c)
        };
        // The file is read, trimmed; an empty variable beside it counts as unset.
        let c = loaded(&[
            "--github-webhook-secret",
            "",
            "--github-webhook-secret-file",
            path,
        ])
        .unwrap();
        let secret = c.github_webhook_secret.as_ref().unwrap();
        assert_eq!(secret.expose_secret(), "s3cret");
        assert!(c.github_webhook_secret_file.is_none());
        c.validate().unwrap();
        // Not both; a file that cannot be read is an error naming the variable.
        let both = loaded(&[
            "--github-webhook-secret",
            "x",
            "--github-webhook-secret-file",
            path,
        ]);
        assert!(both.unwrap_err().contains("not both"));
        let missing = dir.join("missing");
        let error =
            loaded(&["--github-webhook-secret-file", missing.to_str().unwrap()]).unwrap_err();
        assert!(
            error.contains("GITHUB_WEBHOOK_SECRET_FILE: cannot read"),
            "{error}"
        );
        // An empty file, or an empty variable: webhooks off.
        std::fs::write(&file, " \n").unwrap();
        let c = loaded(&["--github-webhook-secret-file", path]).unwrap();
        assert!(c.github_webhook_secret.is_none());
        let c = loaded(&["--github-webhook-secret", ""]).unwrap();
        assert!(c.github_webhook_secret.is_none());
        // Neither an empty secret (anyone could sign with it) nor an unread
        // file passes validation.
        let mut c = config(&[]);
        c.github_webhook_secret = Some(SecretString::from(" "));
        assert!(
            c.validate()
                .unwrap_err()
                .contains("GITHUB_WEBHOOK_SECRET is empty")
        );
        c.github_webhook_secret = None;
        c.github_webhook_secret_file = Some(file.clone());
        assert!(
            c.validate()
                .unwrap_err()
                .contains("GITHUB_WEBHOOK_SECRET_FILE")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn memory_sizes_parse() {
        assert_eq!(parse_memory("512m"), Ok(512 << 20));
        assert_eq!(parse_memory("2G"), Ok(2 << 30));
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("1k").is_err());
    }

    #[test]
    fn both_scopes_are_refused() {
        let c = config(&["--github-repository", "o/r", "--github-org", "o"]);
        assert!(c.validate().unwrap_err().contains("not both"));
    }

    #[test]
    fn durations_are_parsed_once_and_named_by_their_variable() {
        let c = config(&["--reconcile-interval-seconds", "7"]);
        assert_eq!(c.reconcile_interval, Duration::from_secs(7));
        assert_eq!(config(&[]).poll_interval(), Some(Duration::from_secs(30)));
        let off = config(&[
            "--autoscale-poll-interval-seconds",
            "0",
            "--runner-image-pull-interval-seconds",
            "0",
        ]);
        assert_eq!(off.poll_interval(), None);
        assert_eq!(off.image_pull_interval(), None);
        for (flag, value, variable) in [
            (
                "--reconcile-interval-seconds",
                "0",
                "RECONCILE_INTERVAL_SECONDS",
            ),
            (
                "--runner-idle-timeout-seconds",
                "soon",
                "RUNNER_IDLE_TIMEOUT_SECONDS",
            ),
            ("--docker-timeout-seconds", "1.5", "DOCKER_TIMEOUT_SECONDS"),
            (
                "--runner-history-seconds",
                "99999999999999",
                "RUNNER_HISTORY_SECONDS",
            ),
        ] {
            let error =
                Config::try_parse_from(["gha-orchestrator", "--github-token", "t", flag, value])
                    .unwrap_err()
                    .to_string();
            assert!(error.contains(variable), "{error}");
        }
    }

    #[test]
    fn bad_scopes_are_refused_at_parse_time_naming_the_variable() {
        for (flag, value, variable) in [
            ("--github-repository", "not-a-repo", "GITHUB_REPOSITORY"),
            ("--github-org", "a/b", "GITHUB_ORG"),
            ("--allowed-repositories", "o/r,nope", "ALLOWED_REPOSITORIES"),
        ] {
            let error =
                Config::try_parse_from(["gha-orchestrator", "--github-token", "t", flag, value])
                    .unwrap_err()
                    .to_string();
            assert!(error.contains(variable), "{error}");
        }
        let c = config(&["--allowed-repositories", " o/r , o/s "]);
        assert_eq!(c.allowed_repositories.len(), 2);
    }

    #[test]
    fn runner_env_may_not_smuggle_the_token() {
        let c = config(&["--runner-env", "GITHUB_TOKEN=x"]);
        assert!(c.validate().is_err());
    }

    #[test]
    fn base_labels_dedupe() {
        let c = config(&["--runner-labels", "docker,Linux"]);
        assert_eq!(c.base_labels(), ["self-hosted", "linux", "x64", "docker"]);
    }

    #[test]
    fn warm_pool_must_fit_under_the_cap() {
        let c = config(&["--github-repository", "o/r", "--min-idle-runners", "11"]);
        assert!(c.validate().unwrap_err().contains("MIN_IDLE_RUNNERS"));
        let c = config(&["--min-idle-runners", "1"]);
        assert!(
            c.validate()
                .unwrap_err()
                .contains("GITHUB_REPOSITORY or GITHUB_ORG")
        );
    }

    #[test]
    fn allowlist_defaults_to_runner_image() {
        let c = config(&["--runner-image", "img:1"]);
        assert_eq!(c.allowed_images(), ["img:1"]);
    }
}
