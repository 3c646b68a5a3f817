//! The orchestrator's configuration: every environment variable, parsed and
//! checked once at start-up.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use secrecy::SecretString;

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
    /// Marks the containers and networks this orchestrator owns; two
    /// orchestrators on one Docker engine need different values.
    #[arg(long, env = "ORCHESTRATOR_ID", default_value = "default")]
    pub instance_id: String,

    /// GitHub token (PAT with `repo`/`admin:org`, or fine-grained with
    /// Administration: write). Never logged, never given to a runner.
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: SecretString,
    /// GitHub REST API base URL (`https://HOST/api/v3` for GitHub Enterprise Server).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,
    /// Default repository (`owner/name`) for runners when a request names none.
    #[arg(long, env = "GITHUB_REPOSITORY")]
    pub github_repository: Option<String>,
    /// Default organization for runners when a request names none.
    #[arg(long, env = "GITHUB_ORG")]
    pub github_org: Option<String>,
    /// Timeout of one GitHub API call, in seconds.
    #[arg(long, env = "GITHUB_TIMEOUT_SECONDS", default_value_t = 15)]
    pub github_timeout_seconds: u64,

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
    /// Command the runner container runs (split on whitespace).
    #[arg(long, env = "RUNNER_COMMAND", default_value = "/home/runner/run.sh")]
    pub runner_command: String,
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
    /// How runners register: `jit` (default) or `token`.
    #[arg(long, env = "RUNNER_REGISTRATION", value_enum, default_value_t = RegistrationMode::Jit)]
    pub runner_registration: RegistrationMode,
    /// Cap on runners alive at once.
    #[arg(long, env = "MAX_RUNNERS", default_value_t = 10)]
    pub max_runners: u32,

    /// Seconds between background pulls of `RUNNER_IMAGE` (0: never pull).
    #[arg(
        long,
        env = "RUNNER_IMAGE_PULL_INTERVAL_SECONDS",
        default_value_t = 21600
    )]
    pub runner_image_pull_interval_seconds: u64,
    /// Seconds a finished runner stays visible through the API.
    #[arg(long, env = "RUNNER_HISTORY_SECONDS", default_value_t = 600)]
    pub runner_history_seconds: u64,
    /// Seconds between reconcile passes.
    #[arg(long, env = "RECONCILE_INTERVAL_SECONDS", default_value_t = 30)]
    pub reconcile_interval_seconds: u64,
    /// Seconds a runner may take to come online before it is removed.
    #[arg(
        long,
        env = "RUNNER_REGISTRATION_TIMEOUT_SECONDS",
        default_value_t = 600
    )]
    pub runner_registration_timeout_seconds: u64,
    /// Seconds after which a runner that is not busy is removed.
    #[arg(long, env = "RUNNER_MAX_LIFETIME_SECONDS", default_value_t = 86400)]
    pub runner_max_lifetime_seconds: u64,
    /// Timeout of one Docker API call, in seconds.
    #[arg(long, env = "DOCKER_TIMEOUT_SECONDS", default_value_t = 20)]
    pub docker_timeout_seconds: u64,

    /// Log format: `text` or `json`. Verbosity comes from `RUST_LOG` (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// Checks what clap cannot: scopes, label syntax, limits.
    ///
    /// # Errors
    /// A message that names the offending variable.
    pub fn validate(&self) -> Result<(), String> {
        if self.github_repository.is_some() && self.github_org.is_some() {
            return Err("set GITHUB_REPOSITORY or GITHUB_ORG, not both".into());
        }
        if let Some(repo) = &self.github_repository {
            Scope::repository(repo).map_err(|e| format!("GITHUB_REPOSITORY: {e}"))?;
        }
        if let Some(org) = &self.github_org {
            Scope::organization(org).map_err(|e| format!("GITHUB_ORG: {e}"))?;
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
        if self.reconcile_interval_seconds == 0 {
            return Err("RECONCILE_INTERVAL_SECONDS must be at least 1".into());
        }
        if self.runner_command.split_whitespace().next().is_none() {
            return Err("RUNNER_COMMAND must not be empty".into());
        }
        if self.instance_id.is_empty() || self.instance_id.len() > 63 {
            return Err("ORCHESTRATOR_ID must be 1 to 63 characters".into());
        }
        validate_name_prefix(&self.runner_name_prefix)
            .map_err(|e| format!("RUNNER_NAME_PREFIX: {e}"))?;
        for label in &self.runner_labels {
            validate_label(label).map_err(|e| format!("RUNNER_LABELS: {e}"))?;
        }
        for pair in &self.runner_env {
            match pair.split_once('=') {
                Some((key, _)) if !key.is_empty() => {
                    if key.eq_ignore_ascii_case("GITHUB_TOKEN")
                        || key
                            .to_ascii_uppercase()
                            .starts_with("ACTIONS_RUNNER_INPUT_")
                    {
                        return Err(format!("RUNNER_ENV may not set {key}"));
                    }
                }
                _ => {
                    return Err(format!(
                        "RUNNER_ENV entries must be KEY=VALUE, got {pair:?}"
                    ));
                }
            }
        }
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
        Ok(())
    }

    /// The scope used when a request names none.
    pub fn default_scope(&self) -> Option<Scope> {
        if let Some(repo) = &self.github_repository {
            return Scope::repository(repo).ok();
        }
        self.github_org
            .as_deref()
            .and_then(|org| Scope::organization(org).ok())
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

    /// The per-call Docker timeout.
    pub fn docker_timeout(&self) -> Duration {
        Duration::from_secs(self.docker_timeout_seconds.max(1))
    }
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
fn parse_memory(text: &str) -> Result<i64, String> {
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
    fn bad_repository_names_the_variable() {
        let c = config(&["--github-repository", "not-a-repo"]);
        assert!(c.validate().unwrap_err().starts_with("GITHUB_REPOSITORY"));
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
    fn allowlist_defaults_to_runner_image() {
        let c = config(&["--runner-image", "img:1"]);
        assert_eq!(c.allowed_images(), ["img:1"]);
    }
}
