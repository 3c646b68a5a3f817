//! Logging: `tracing` with an `EnvFilter` (`RUST_LOG`, default `info`), as
//! text or, with `LOG_FORMAT=json`, one JSON object per line.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Crates whose debug output would print request or response bodies (the
/// Docker client logs whole container configurations, runner JIT
/// configurations included): capped at `info` whatever `RUST_LOG` says.
const CAPPED: [&str; 3] = ["bollard=info", "hyper=info", "h2=info"];

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in CAPPED {
        filter = filter.add_directive(directive.parse().expect("valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
