//! The project's benchmarks. Each figure is printed beside a baseline
//! measured in the same run, with the ratio and the goal.
//!
//! `bench/run [runners|autoscale|gateway|scale|docker]...` builds in release mode and runs this
//! (no argument: every benchmark). `BENCH_ROUNDS` (default 5) sets the
//! rounds of the runner benchmark and `BENCH_JOBS` (default 10) the jobs of
//! the on-demand one; medians are reported. The scale benchmark's knobs are
//! `BENCH_SCALE_*` (see [`scale`]; `BENCH_SCALE_JOBS`, default 1000), the
//! Docker-inside-jobs one's `BENCH_DOCKER_ROUNDS` (default 5) and
//! `BENCH_DOCKER_BURST` (default 5).
//!
//! - [`runners`]: create+start of 20 runners vs Docker directly; GitHub calls per lifecycle.
//! - [`autoscale`]: webhook → container running and job queued → started, with and without a warm pool.
//! - [`gateway`]: `GET /api/v1/runners` through the gateway vs direct vs nginx.
//! - [`scale`]: one host under churn (1,000 jobs, `MAX_RUNNERS=25`) vs Docker
//!   directly; bursts of 10, 50 and 100 runners; the orchestrator's own cost
//!   (RSS, CPU, reconcile passes, GitHub calls); drift and leaks.
//! - [`docker`]: what a runner's private Docker engine (`docker = "sidecar"`) adds to its
//!   start, against a pool without one in the same orchestrator: to the create's answer, to
//!   online and idle, for a burst; and where the engine's start goes.
//! - [`phases`]: where a container's life goes, from Docker's events (the churn's phases).

mod autoscale;
mod docker;
mod gateway;
mod phases;
mod runners;
mod scale;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::bail;
use test_support::{ensure_sim_runner_image, workspace_binary};

/// One line of the result table.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) baseline: String,
    pub(crate) measured: String,
    pub(crate) ratio: String,
    pub(crate) goal: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let runs = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let number = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let image = ensure_sim_runner_image();
    let orchestrator_bin = workspace_binary("orchestrator", "gha-orchestrator");
    let mut rows = Vec::new();
    if runs("runners") {
        rows.extend(runners::run(&orchestrator_bin, image, number("BENCH_ROUNDS", 5)).await?);
    }
    if runs("autoscale") {
        rows.extend(autoscale::run(&orchestrator_bin, image, number("BENCH_JOBS", 10)).await?);
    }
    if runs("gateway") {
        rows.extend(gateway::run().await?);
    }
    if runs("scale") {
        rows.extend(scale::run(&orchestrator_bin, image).await?);
    }
    if runs("docker") {
        rows.extend(
            docker::run(
                &orchestrator_bin,
                image,
                number("BENCH_DOCKER_ROUNDS", 5),
                number("BENCH_DOCKER_BURST", 5),
            )
            .await?,
        );
    }
    println!();
    println!("| benchmark | baseline | measured | ratio | goal |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.name, row.baseline, row.measured, row.ratio, row.goal
        );
    }
    Ok(())
}

/// Polls `check` every 100 ms until it holds.
pub(crate) async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The `p`th percentile (nearest rank) of `samples`, in their unit.
pub(crate) fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The Docker baseline: creates and starts one plain container of `image`
/// (`sleep`, no JIT config) on the test's network, labelled for clean-up;
/// returns its id.
pub(crate) async fn create_and_start_plain(
    docker: &bollard::Docker,
    image: &str,
    env: &test_support::TestDocker,
    name: &str,
) -> Result<String, bollard::errors::Error> {
    use bollard::models::{ContainerCreateBody, HostConfig};
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec!["sleep".into(), "60".into()]),
        labels: Some(std::collections::HashMap::from([(
            test_support::docker_guard::TEST_LABEL.to_owned(),
            env.id.clone(),
        )])),
        host_config: Some(HostConfig {
            network_mode: Some(env.network.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
        .name(name)
        .build();
    let id = docker.create_container(Some(options), body).await?.id;
    docker
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await?;
    Ok(id)
}

/// A child process (the orchestrator): SIGTERM on `stop`, killed on drop.
pub(crate) struct ChildGuard(pub(crate) Child);

impl ChildGuard {
    pub(crate) fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
