//! The gateway's configuration: every environment variable, parsed and
//! checked once at start-up.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

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
    #[arg(
        long,
        value_name = "API_GATEWAY_HOST",
        env = "API_GATEWAY_HOST",
        default_value = "0.0.0.0"
    )]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(
        long,
        value_name = "API_GATEWAY_PORT",
        env = "API_GATEWAY_PORT",
        default_value_t = 8080
    )]
    pub port: u16,
    /// Base URL of the orchestrator (`http://` or `https://`, optionally
    /// with a path, no query); every `/api/v1` call is forwarded there.
    #[arg(
        long,
        value_name = "ORCHESTRATOR_URL",
        env = "ORCHESTRATOR_URL",
        default_value = "http://orchestrator:8000",
        value_parser = parse_orchestrator_url
    )]
    pub orchestrator_url: Url,
    /// API keys a client may present (comma-separated). Never logged.
    /// Prefer API_KEYS_FILE, which keeps them out of the environment.
    #[arg(
        long,
        value_name = "API_KEYS",
        env = "API_KEYS",
        value_delimiter = ',',
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub api_keys: Vec<SecretString>,
    /// A file of API keys, one per line (or comma-separated), read at
    /// start; keys from API_KEYS count too. Empty: none.
    #[arg(long, value_name = "API_KEYS_FILE", env = "API_KEYS_FILE", value_parser = parse_path)]
    pub api_keys_file: Option<PathBuf>,
    /// `required`: the gateway refuses to start without an API key;
    /// `disabled`: no key is asked for (a warning at every start).
    #[arg(
        long,
        value_name = "API_AUTH",
        env = "API_AUTH",
        value_enum,
        default_value = "required"
    )]
    pub api_auth: ApiAuth,
    /// Requests per second each client may make once its burst is spent.
    #[arg(long, value_name = "RATE_LIMIT_PER_SECOND", env = "RATE_LIMIT_PER_SECOND", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_second: u32,
    /// Requests a client may make at once before the per-second rate applies.
    #[arg(long, value_name = "RATE_LIMIT_BURST", env = "RATE_LIMIT_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,
    /// Take the client address from `X-Forwarded-For`/`Forwarded` (only
    /// behind a reverse proxy that sets them; otherwise anyone can spoof them).
    #[arg(long, value_name = "TRUST_PROXY_HEADERS", env = "TRUST_PROXY_HEADERS", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_proxy_headers: bool,
    /// Origins allowed by CORS: `*` or a comma-separated list.
    #[arg(
        long,
        value_name = "CORS_ORIGINS",
        env = "CORS_ORIGINS",
        default_value = "*",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// How long one orchestrator call may take, in whole seconds (at least 1).
    #[arg(
        long = "upstream-timeout-seconds",
        value_name = "UPSTREAM_TIMEOUT_SECONDS",
        env = "UPSTREAM_TIMEOUT_SECONDS",
        default_value = "30",
        value_parser = positive_seconds
    )]
    pub upstream_timeout: Duration,
    /// Largest request body accepted, in bytes.
    #[arg(long, value_name = "MAX_BODY_BYTES", env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// `text` or `json`.
    #[arg(
        long,
        value_name = "LOG_FORMAT",
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Open client connections at most; at the cap, the next connection is
    /// accepted when one closes.
    #[arg(long, value_name = "API_GATEWAY_MAX_CONNECTIONS", env = "API_GATEWAY_MAX_CONNECTIONS", default_value_t = service_kit::MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Threads serving requests, each with its own event loop and pool of
    /// connections to the orchestrator. 0: one per CPU core.
    #[arg(
        long,
        value_name = "API_GATEWAY_WORKERS",
        env = "API_GATEWAY_WORKERS",
        default_value_t = 0
    )]
    pub workers: usize,
}

/// A path, or an empty value (which counts as none, as Compose's blanks do).
fn parse_path(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.trim()))
}

/// `ORCHESTRATOR_URL`, as [`crate::proxy::authority_of`] takes it.
fn parse_orchestrator_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    crate::proxy::authority_of(&url).map_err(|why| format!("{text:?} {why}"))?;
    Ok(url)
}

/// A `*_SECONDS` setting: whole seconds, at least 1, at most a day (a
/// longer wait for one call is a mistake, and far from any overflow).
fn positive_seconds(text: &str) -> Result<Duration, String> {
    const MAX: u64 = 86_400;
    let value: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of seconds"))?;
    match value {
        0 => Err("must be at least 1 second".into()),
        v if v > MAX => Err(format!("{v} s is more than a day ({MAX} s)")),
        v => Ok(Duration::from_secs(v)),
    }
}

/// The user the gateway runs as in its image (distroless's `nonroot`).
pub const IMAGE_UID: u32 = 65532;

/// Why `API_KEYS_FILE` could not be read, and what it needs: to be
/// readable by the user the gateway runs as.
fn unreadable_keys(path: &Path, error: &std::io::Error) -> String {
    use std::os::unix::fs::MetadataExt;
    // The owner of /proc/self is the process's effective user.
    let user = std::fs::metadata("/proc/self").map_or_else(
        |_| "the gateway's user".to_owned(),
        |m| format!("uid {}", m.uid()),
    );
    format!(
        "API_KEYS_FILE={}: cannot read it ({error}). The gateway runs as {user} (uid {IMAGE_UID} in its image) and must be able to read the file: e.g. mode 0644 on the file, kept in a directory of mode 0700 so that other users of the host cannot reach it (Compose mounts the file itself), or `chown {IMAGE_UID}` it and keep mode 0600",
        path.display()
    )
}

/// The port `gha-api-gateway healthcheck` probes: `API_GATEWAY_PORT`, or
/// 8080 when unset.
///
/// # Errors
/// `API_GATEWAY_PORT` set to something that is not a port, naming it.
pub fn healthcheck_port() -> Result<u16, String> {
    match std::env::var("API_GATEWAY_PORT") {
        Err(std::env::VarError::NotPresent) => Ok(8080),
        Err(std::env::VarError::NotUnicode(_)) => Err("API_GATEWAY_PORT is not valid UTF-8".into()),
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("API_GATEWAY_PORT={text:?} is not a port number (0 to 65535)")),
    }
}

impl Config {
    /// The address to listen on: `API_GATEWAY_HOST` and `API_GATEWAY_PORT`.
    pub fn listen_address(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The number of serving threads: `API_GATEWAY_WORKERS`, or one per
    /// core the process may run on.
    pub fn worker_threads(&self) -> std::num::NonZeroUsize {
        std::num::NonZeroUsize::new(self.workers).unwrap_or_else(|| {
            std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN)
        })
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
            let text = std::fs::read_to_string(path).map_err(|e| unreadable_keys(path, &e))?;
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
        assert_eq!(config.port, 8080);
        assert_eq!(config.upstream_timeout, Duration::from_secs(30));
        assert_eq!(
            config.orchestrator_url.as_str(),
            "http://orchestrator:8000/"
        );
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
    fn every_bad_value_is_refused_naming_its_variable() {
        for (flag, value, variable) in [
            ("--rate-limit-per-second", "0", "RATE_LIMIT_PER_SECOND"),
            ("--rate-limit-burst", "0", "RATE_LIMIT_BURST"),
            ("--max-connections", "0", "API_GATEWAY_MAX_CONNECTIONS"),
            (
                "--upstream-timeout-seconds",
                "0",
                "UPSTREAM_TIMEOUT_SECONDS",
            ),
            (
                "--upstream-timeout-seconds",
                "1.5",
                "UPSTREAM_TIMEOUT_SECONDS",
            ),
            ("--orchestrator-url", "ftp://x", "ORCHESTRATOR_URL"),
            ("--orchestrator-url", "http://x/?q=1", "ORCHESTRATOR_URL"),
            (
                "--orchestrator-url",
                "orchestrator:8000",
                "ORCHESTRATOR_URL",
            ),
            ("--host", "localhost", "API_GATEWAY_HOST"),
            ("--port", "80000", "API_GATEWAY_PORT"),
        ] {
            let error = Config::try_parse_from(["gha-api-gateway", flag, value])
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{flag}={value}: {error}");
        }
    }

    #[test]
    fn an_unreadable_key_file_is_named_with_what_it_needs() {
        let missing = parse(&["--api-keys-file", "/nonexistent/api_keys"]);
        let error = missing.accepted_keys().unwrap_err();
        for words in [
            "API_KEYS_FILE=/nonexistent/api_keys",
            "No such file",
            "65532",
            "0644",
        ] {
            assert!(error.contains(words), "{words:?} not in {error}");
        }
    }
}
