//! `sim-runner`: the runner stand-in; see `github_sim::stand_in` for its behaviour and exit codes.

use std::process::ExitCode;

use clap::Parser;
use github_sim::{stand_in, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_tracing();
    let args = stand_in::StandInArgs::parse();
    stand_in::main(args, telemetry::shutdown_signal()).await
}
