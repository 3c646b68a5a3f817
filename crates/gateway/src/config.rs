//! The gateway's configuration: every environment variable, parsed and
//! checked once at start-up.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether requests to the runner endpoints need an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiAuth {
    /// They do; the gateway refuses to start without a key.
    Required,
    /// They do not: anyone who reaches the gateway can create and delete
    /// runners. Only ever set on purpose (warned at every start).
    Disabled,
}

/// Everything the gateway reads from its environment. `--help` lists each
/// variable with its default.
#[derive(Debug, Clone, Parser)]
#[command(name = "gha-api-gateway", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "API_GATEWAY_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "API_GATEWAY_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Base URL of the orchestrator; every `/api/v1` call is forwarded there.
    #[arg(
        long,
        env = "ORCHESTRATOR_URL",
        default_value = "http://orchestrator:8000"
    )]
    pub orchestrator_url: String,
    /// API keys a client may present (comma-separated). Never logged.
    /// Prefer API_KEYS_FILE, which keeps them out of the environment.
    #[arg(
        long,
        env = "API_KEYS",
        value_delimiter = ',',
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub api_keys: Vec<SecretString>,
    /// A file of API keys, one per line (or comma-separated), read at
    /// start; keys from API_KEYS count too. Empty: none.
    #[arg(long, env = "API_KEYS_FILE", value_parser = parse_path)]
    pub api_keys_file: Option<PathBuf>,
    /// `required`: the gateway refuses to start without an API key;
    /// `disabled`: no key is asked for (a warning at every start).
    #[arg(long, env = "API_AUTH", value_enum, default_value = "required")]
    pub api_auth: ApiAuth,
    /// Requests per second each client may make once its burst is spent.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = 10)]
    pub rate_limit_per_second: u32,
    /// Requests a client may make at once before the per-second rate applies.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 20)]
    pub rate_limit_burst: u32,
    /// Take the client address from `X-Forwarded-For`/`Forwarded` (only
    /// behind a reverse proxy that sets them; otherwise anyone can spoof them).
    #[arg(long, env = "TRUST_PROXY_HEADERS", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_proxy_headers: bool,
    /// Origins allowed by CORS: `*` or a comma-separated list.
    #[arg(long, env = "CORS_ORIGINS", default_value = "*", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// How long one orchestrator call may take, in seconds.
    #[arg(long, env = "UPSTREAM_TIMEOUT_SECONDS", default_value_t = 30)]
    pub upstream_timeout_seconds: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Open client connections at most; at the cap, the next connection is
    /// accepted when one closes.
    #[arg(long, env = "API_GATEWAY_MAX_CONNECTIONS", default_value_t = service_kit::MAX_CONNECTIONS)]
    pub max_connections: u32,
    /// Threads serving requests, each with its own event loop and pool of
    /// connections to the orchestrator. 0: one per CPU core.
    #[arg(long, env = "API_GATEWAY_WORKERS", default_value_t = 0)]
    pub workers: usize,
}

/// A path, or an empty value (which counts as none, as Compose's blanks do).
fn parse_path(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.trim()))
}

impl Config {
    /// Checks what clap cannot: values that parse but make no sense.
    ///
    /// # Errors
    /// A message naming the variable at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate_limit_per_second == 0 {
            return Err("RATE_LIMIT_PER_SECOND must be at least 1".into());
        }
        if self.rate_limit_burst == 0 {
            return Err("RATE_LIMIT_BURST must be at least 1".into());
        }
        if self.max_connections == 0 {
            return Err("API_GATEWAY_MAX_CONNECTIONS must be at least 1".into());
        }
        if self.upstream_timeout_seconds == 0 {
            return Err("UPSTREAM_TIMEOUT_SECONDS must be at least 1".into());
        }
        let url = reqwest::Url::parse(&self.orchestrator_url)
            .map_err(|e| format!("ORCHESTRATOR_URL={}: {e}", self.orchestrator_url))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(format!(
                "ORCHESTRATOR_URL={} must be an http:// or https:// URL",
                self.orchestrator_url
            ));
        }
        Ok(())
    }

    /// The number of serving threads: `API_GATEWAY_WORKERS`, or one per
    /// core the process may run on.
    pub fn worker_threads(&self) -> std::num::NonZeroUsize {
        std::num::NonZeroUsize::new(self.workers).unwrap_or_else(|| {
            std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN)
        })
    }

    /// The upstream timeout as a [`Duration`].
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_secs(self.upstream_timeout_seconds)
    }

    /// The API keys to accept: those of `API_KEYS` and those read from
    /// `API_KEYS_FILE`, blanks dropped; none with `API_AUTH=disabled`.
    ///
    /// # Errors
    /// A key file that cannot be read (naming it); no key while `API_AUTH`
    /// is `required`; keys while it is `disabled`. Each message names the
    /// variables to set.
    pub fn accepted_keys(&self) -> Result<Vec<SecretString>, String> {
        let mut keys: Vec<SecretString> = self
            .api_keys
            .iter()
            .filter(|k| !k.expose_secret().is_empty())
            .cloned()
            .collect();
        let file = self
            .api_keys_file
            .as_ref()
            .filter(|path| !path.as_os_str().is_empty());
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("API_KEYS_FILE: cannot read {}: {e}", path.display()))?;
            keys.extend(
                text.split(['\n', ','])
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| SecretString::from(k.to_owned())),
            );
        }
        match (self.api_auth, keys.is_empty()) {
            (ApiAuth::Required, false) | (ApiAuth::Disabled, true) => Ok(keys),
            (ApiAuth::Required, true) => {
                let file = file.map_or(String::new(), |path| {
                    format!(" (API_KEYS_FILE={} holds none)", path.display())
                });
                Err(format!(
                    "no API key{file}: put one in the file API_KEYS_FILE names (one per line; under Compose secrets/api_keys, e.g. `openssl rand -hex 32 > secrets/api_keys`) or in API_KEYS; or set API_AUTH=disabled to serve without authentication, letting anyone who reaches the gateway create and delete runners"
                ))
            }
            (ApiAuth::Disabled, false) => Err(
                "API_AUTH=disabled, yet API_KEYS or API_KEYS_FILE gives keys: remove API_AUTH to require them, or the keys to serve without authentication".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(env: &[&str]) -> Config {
        let mut args = vec!["gha-api-gateway"];
        args.extend_from_slice(env);
        Config::try_parse_from(args).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let config = parse(&[]);
        config.validate().unwrap();
        assert_eq!(config.port, 8080);
        assert_eq!(config.cors_origins, vec!["*"]);
        assert_eq!(config.api_auth, ApiAuth::Required);
        assert!(config.worker_threads().get() >= 1);
        assert_eq!(parse(&["--workers", "3"]).worker_threads().get(), 3);
    }

    #[test]
    fn keys_split_on_commas_and_blanks_are_dropped() {
        let config = parse(&["--api-keys", "a, b,,"]);
        assert_eq!(config.accepted_keys().unwrap().len(), 2);
    }

    #[test]
    fn no_key_is_refused_unless_authentication_is_disabled() {
        let refused = parse(&["--api-keys", " ,"]).accepted_keys().unwrap_err();
        for variable in ["API_KEYS_FILE", "API_KEYS", "API_AUTH=disabled"] {
            assert!(
                refused.contains(variable),
                "{variable} not named: {refused}"
            );
        }
        let disabled = parse(&["--api-auth", "disabled", "--api-keys-file", ""]);
        assert!(disabled.accepted_keys().unwrap().is_empty());
        let both = parse(&["--api-auth", "disabled", "--api-keys", "k"]);
        assert!(
            both.accepted_keys()
                .unwrap_err()
                .contains("API_AUTH=disabled")
        );
    }

    #[test]
    fn zero_rate_is_refused() {
        let config = parse(&["--rate-limit-per-second", "0"]);
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("RATE_LIMIT_PER_SECOND")
        );
    }
}
