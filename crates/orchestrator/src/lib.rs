//! gha-orchestrator: turns "I need N runners" into N single-use GitHub
//! Actions runner containers that take one job each and vanish, without
//! leaking a container or a GitHub registration.
//!
//! # Layout
//! - [`config`]: every environment variable, parsed once.
//! - [`startup`]: [`startup::Application`], which binds, serves and shuts down.
//! - [`api`]: the HTTP API (where a request goes).
//! - [`runners`]: the lifecycle (where a runner is created and destroyed)
//!   and [`runners::Registry`], the in-memory view.
//! - [`reconciler`]: the pass that keeps Docker, GitHub and the view in line.
//! - [`autoscaler`]: runners on demand (webhooks, polling, warm pool).
//! - [`events`]: Docker's exit events.
//! - [`github`]: the GitHub REST client.
//! - [`docker`]: the Docker engine client and our labels (where state lives:
//!   on the containers themselves).
//! - [`scope`]: repositories, organizations, labels.
//! - [`telemetry`]: logging set-up.

pub mod api;
pub mod autoscaler;
pub mod config;
pub mod docker;
pub mod events;
pub mod github;
pub mod reconciler;
pub mod runners;
pub mod scope;
pub mod startup;
pub mod telemetry;

/// Probes `http://127.0.0.1:PORT/healthz` for Docker's HEALTHCHECK:
/// `Ok` when it answers 200 within two seconds.
///
/// # Errors
/// A message saying why the probe failed.
pub async fn healthcheck(port: u16) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .map_err(|e| format!("no answer on port {port}: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("/healthz answered {}", response.status()))
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
