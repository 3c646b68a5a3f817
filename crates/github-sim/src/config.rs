//! Command-line and environment configuration of the simulator (`SimConfig`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use secrecy::SecretString;

use crate::settings::WebhookContentType;

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

    /// Base URL of the simulator as clients and runner stand-ins (e.g. in containers) reach
    /// it: written into JIT configurations, `url` fields and `Link` headers, like
    /// `https://api.github.com` on github.com. Defaults to `http://<listen>` (`https://` with
    /// TLS; 127.0.0.1 when listening on an unspecified address). `{port}` is replaced by the
    /// bound port (useful with port 0).
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

    /// Secret used to sign webhook deliveries (`X-Hub-Signature-256` and `X-Hub-Signature`).
    #[arg(long, env = "SIM_WEBHOOK_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub webhook_secret: Option<SecretString>,

    /// How webhook bodies are encoded: `json`, or `form` (`payload=<JSON>`, form-encoded).
    /// Changeable at run time (`PATCH /_sim/settings`).
    #[arg(
        long,
        env = "SIM_WEBHOOK_CONTENT_TYPE",
        value_enum,
        default_value = "json"
    )]
    pub webhook_content_type: WebhookContentType,

    /// Primary rate-limit budget of the `core` bucket, per token per hour.
    #[arg(long, env = "SIM_RATE_LIMIT_PER_HOUR", default_value_t = 5000)]
    pub rate_limit_per_hour: u64,

    /// Budget of the `actions_runner_registration` bucket (generate-jitconfig and
    /// registration-token), per token per hour.
    #[arg(
        long,
        env = "SIM_REGISTRATION_RATE_LIMIT_PER_HOUR",
        default_value_t = 10_000
    )]
    pub registration_rate_limit_per_hour: u64,

    /// Secondary rate limit: GitHub-surface requests allowed in flight at once; a request
    /// beyond it gets 403 with `retry-after`. 0 = no limit.
    #[arg(long, env = "SIM_MAX_CONCURRENT_REQUESTS", default_value_t = 0)]
    pub max_concurrent_requests: u64,

    /// Run listings filtered by `status` answer as of this many seconds ago, as GitHub's
    /// search-backed listing lags behind. 0 = always current.
    #[arg(long, env = "SIM_RUN_LISTING_LAG_SECONDS", default_value_t = 0)]
    pub run_listing_lag_seconds: u64,

    /// PEM certificate chain to serve HTTPS with (with `--tls-key-file`); the simulator then
    /// serves HTTPS only, like a GitHub Enterprise Server behind a private CA.
    #[arg(long, env = "SIM_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of `--tls-cert-file`.
    #[arg(long, env = "SIM_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// A connected runner that has not polled for this long goes offline (its job fails).
    #[arg(long, env = "SIM_RUNNER_OFFLINE_AFTER_MS", default_value_t = 3000)]
    pub runner_offline_after_ms: u64,

    /// A GitHub App the simulator knows, by id (with `--app-public-key-file`). More can be
    /// added at run time (`POST /_sim/apps`).
    #[arg(long, env = "SIM_APP_ID", requires = "app_public_key_file")]
    pub app_id: Option<u64>,

    /// The public key (PEM) of `--app-id`, which checks the signatures of its JWTs.
    #[arg(long, env = "SIM_APP_PUBLIC_KEY_FILE", requires = "app_id")]
    pub app_public_key_file: Option<PathBuf>,

    /// An owner (user or organization) `--app-id` is installed on (repeatable; env is
    /// comma-separated). It must exist (`--org` or the owner of a `--repo`).
    #[arg(
        long = "app-installation",
        env = "SIM_APP_INSTALLATIONS",
        value_delimiter = ',',
        requires = "app_id"
    )]
    pub app_installations: Vec<String>,

    /// How long an installation token lives, in seconds (GitHub: 3600). Changeable at run
    /// time (`PATCH /_sim/settings`).
    #[arg(
        long,
        env = "SIM_INSTALLATION_TOKEN_LIFETIME_SECONDS",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub installation_token_lifetime_seconds: u64,

    /// Hourly `core` budget of each installation; 0: GitHub's rule (5,000, plus 50 per
    /// repository of the owner beyond 20, at most 12,500).
    #[arg(
        long,
        env = "SIM_INSTALLATION_RATE_LIMIT_PER_HOUR",
        default_value_t = 0
    )]
    pub installation_rate_limit_per_hour: u64,
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

impl SimConfig {
    /// A configuration for in-process tests: listens on `listen`, accepts the token
    /// `test-token`, 5000 core and 10000 registration requests per hour, no owners (push
    /// into `repos`/`orgs`), no webhooks, plain HTTP, no listing lag, no concurrency limit,
    /// no GitHub App (set `app_id` and `app_public_key_file`, or use `POST /_sim/apps`).
    ///
    /// For HTTPS, set [`SimConfig::tls_cert_file`] and [`SimConfig::tls_key_file`] to PEM
    /// files (e.g. a leaf for `127.0.0.1`/`localhost` signed by a CA the test makes with
    /// `rcgen`); [`crate::RunningSim::url`] is then `https://…` and clients must trust that CA.
    pub fn for_tests(listen: SocketAddr) -> Self {
        Self {
            listen,
            public_url: None,
            tokens: vec![SecretString::from("test-token")],
            orgs: Vec::new(),
            repos: Vec::new(),
            webhook_url: None,
            webhook_secret: None,
            webhook_content_type: WebhookContentType::Json,
            rate_limit_per_hour: 5000,
            registration_rate_limit_per_hour: 10_000,
            max_concurrent_requests: 0,
            run_listing_lag_seconds: 0,
            tls_cert_file: None,
            tls_key_file: None,
            runner_offline_after_ms: 3000,
            app_id: None,
            app_public_key_file: None,
            app_installations: Vec::new(),
            installation_token_lifetime_seconds: 3600,
            installation_rate_limit_per_hour: 0,
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
        assert_eq!(config.installation_token_lifetime_seconds, 3600);
        assert!(config.app_id.is_none());
        assert_eq!(config.registration_rate_limit_per_hour, 10_000);
        assert_eq!(config.webhook_content_type, WebhookContentType::Json);
        assert!(!format!("{config:?}").contains("\"a\""));
    }

    #[test]
    fn an_app_comes_with_its_key() {
        let base = ["github-sim", "--listen", "127.0.0.1:0"];
        let no_key = [&base[..], &["--app-id", "7"]].concat();
        assert!(SimConfig::try_parse_from(no_key).is_err());
        let no_app = [&base[..], &["--app-installation", "acme"]].concat();
        assert!(SimConfig::try_parse_from(no_app).is_err());
        let app = [
            &base[..],
            &["--app-id", "7", "--app-public-key-file", "k.pem"],
            &["--app-installation", "acme", "--app-installation", "octo"],
        ]
        .concat();
        let config = SimConfig::try_parse_from(app).unwrap();
        assert_eq!(config.app_installations, ["acme", "octo"]);
        let too_long = [
            &base[..],
            &["--installation-token-lifetime-seconds", "3601"],
        ]
        .concat();
        assert!(SimConfig::try_parse_from(too_long).is_err());
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let base = ["github-sim", "--listen", "127.0.0.1:0"];
        let only_cert = [&base[..], &["--tls-cert-file", "c.pem"]].concat();
        assert!(SimConfig::try_parse_from(only_cert).is_err());
        let both = [
            &base[..],
            &["--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"],
            &[
                "--webhook-content-type",
                "form",
                "--run-listing-lag-seconds",
                "3",
            ],
        ]
        .concat();
        let config = SimConfig::try_parse_from(both).unwrap();
        assert_eq!(config.tls_key_file, Some(PathBuf::from("k.pem")));
        assert_eq!(config.webhook_content_type, WebhookContentType::Form);
        assert_eq!(config.run_listing_lag_seconds, 3);
    }
}
