//! `gha-api-gateway`: read the configuration, start logging, serve.
//! `gha-api-gateway healthcheck` probes a running instance (for Docker's
//! HEALTHCHECK, with no curl in the image).

use clap::Parser;
use gateway::config::Config;
use gateway::startup::Application;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        let checked = match gateway::config::healthcheck_port() {
            Ok(port) => gateway::healthcheck(port, "/healthz").await,
            Err(e) => Err(e),
        };
        return match checked {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let config = Config::parse();
    gateway::telemetry::init(config.log_format);
    let result = async {
        Application::build(config)
            .await?
            .run_until_stopped(gateway::shutdown_signal())
            .await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gha-api-gateway: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
