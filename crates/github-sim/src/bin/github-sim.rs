//! `github-sim`: parse the configuration, serve until Ctrl-C or SIGTERM.

use clap::Parser;
use github_sim::{SimConfig, spawn, telemetry};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    telemetry::init_tracing();
    let sim = spawn(SimConfig::parse()).await?;
    println!("github-sim listening on {}", sim.url());
    telemetry::shutdown_signal().await;
    sim.shutdown().await;
    Ok(())
}
