//! `gha-orchestrator`: read the configuration, start logging, serve.
//! `gha-orchestrator healthcheck` probes a running instance (for Docker's
//! HEALTHCHECK, with no curl in the image): its `/readyz`, so that a
//! container that cannot reach Docker shows as unhealthy.

use clap::Parser;
use orchestrator::config::Config;
use orchestrator::startup::Application;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        let port = std::env::var("ORCHESTRATOR_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(8000);
        return match orchestrator::healthcheck(port, "/readyz").await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let config = Config::parse();
    orchestrator::telemetry::init(config.log_format);
    let result = async {
        Application::build(config)
            .await?
            .run_until_stopped(orchestrator::shutdown_signal())
            .await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gha-orchestrator: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
