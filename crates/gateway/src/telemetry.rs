//! Logging: `tracing` with an `EnvFilter` (`RUST_LOG`, default `info`), as
//! text or, with `LOG_FORMAT=json`, one JSON object per line; and the span
//! each request is logged in.

use axum::http::Request;
use tracing::Span;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Crates whose debug output would print headers (API keys included):
/// capped at `info` whatever `RUST_LOG` says.
const CAPPED: [&str; 4] = ["hyper=info", "h2=info", "reqwest=info", "hyper_util=info"];

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

/// One span per request, at `debug`: method, path and request id (the id is
/// set by the layer outside this one, so it is the same one the orchestrator
/// logs). At the default `info` no span is made: making and entering one was
/// a tenth of the gateway's CPU time per proxied request (`perf`, `bench/run
/// gateway`); the warnings logged about a request carry its `request_id`
/// themselves.
pub fn request_span<B>(request: &Request<B>) -> Span {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return Span::none();
    }
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}
