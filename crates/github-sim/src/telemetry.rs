//! Tracing set-up shared by both binaries: `EnvFilter` (default `info`), JSON when `LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

/// Installs a global subscriber writing to stderr (stdout is kept for the binaries' own output).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Resolves on Ctrl-C or SIGTERM.
pub use service_kit::shutdown_signal;
