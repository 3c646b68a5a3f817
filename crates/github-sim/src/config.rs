//! Command-line and environment configuration of the simulator (`SimConfig`).

use std::net::SocketAddr;

use clap::Parser;
use secrecy::SecretString;

/// Everything the simulator needs at start-up; every flag also reads an environment variable.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "github-sim",
    version,
    about = "A GitHub REST API simulator for self-hosted runners"
)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// Base URL that runner stand-ins (e.g. in containers) use to reach the simulator.
    /// Defaults to `http://<listen>` (127.0.0.1 when listening on an unspecified address).
    /// `{port}` is replaced by the bound port (useful with port 0).
    #[arg(long, env = "SIM_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// A token accepted in `Authorization: Bearer <token>` (repeatable; env is comma-separated).
    #[arg(long = "token", env = "SIM_TOKENS", value_delimiter = ',', hide_env_values = true, value_parser = parse_secret)]
    pub tokens: Vec<SecretString>,

    /// An organization that exists (repeatable; env is comma-separated).
    #[arg(long = "org", env = "SIM_ORGS", value_delimiter = ',')]
    pub orgs: Vec<String>,

    /// A repository `OWNER/NAME` that exists (repeatable; env is comma-separated).
    /// An owner that is not also given with `--org` is a user.
    #[arg(long = "repo", env = "SIM_REPOS", value_delimiter = ',')]
    pub repos: Vec<String>,

    /// URL that receives the webhook deliveries (`ping`, `workflow_job`).
    #[arg(long, env = "SIM_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Secret used to sign webhook deliveries (`X-Hub-Signature-256`).
    #[arg(long, env = "SIM_WEBHOOK_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub webhook_secret: Option<SecretString>,

    /// Primary rate-limit budget per token per hour.
    #[arg(long, env = "SIM_RATE_LIMIT_PER_HOUR", default_value_t = 5000)]
    pub rate_limit_per_hour: u64,

    /// A connected runner that has not polled for this long goes offline (its job fails).
    #[arg(long, env = "SIM_RUNNER_OFFLINE_AFTER_MS", default_value_t = 3000)]
    pub runner_offline_after_ms: u64,
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

impl SimConfig {
    /// A configuration for in-process tests: listens on `listen`, accepts the token
    /// `test-token`, 5000 requests per hour, no owners (push into `repos`/`orgs`), no webhooks.
    pub fn for_tests(listen: SocketAddr) -> Self {
        Self {
            listen,
            public_url: None,
            tokens: vec![SecretString::from("test-token")],
            orgs: Vec::new(),
            repos: Vec::new(),
            webhook_url: None,
            webhook_secret: None,
            rate_limit_per_hour: 5000,
            runner_offline_after_ms: 3000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repeatable_flags() {
        let config = SimConfig::try_parse_from([
            "github-sim",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "a",
            "--token",
            "b",
            "--repo",
            "o/r",
            "--org",
            "acme",
        ])
        .unwrap();
        assert_eq!(config.tokens.len(), 2);
        assert_eq!(config.repos, ["o/r"]);
        assert_eq!(config.orgs, ["acme"]);
        assert_eq!(config.rate_limit_per_hour, 5000);
        assert!(!format!("{config:?}").contains("\"a\""));
    }
}
