//! The runner benchmark: 20 runners through `POST /runners/create` against
//! the same 20 containers created and started directly through the Docker
//! API, as fast as the engine allows (all at once), in the same run; and the
//! GitHub API calls one runner lifecycle costs, from the simulator's counters.

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use futures::future::join_all;
use github_sim::SimConfig;
use serde_json::{Value, json};
use test_support::TestDocker;

use crate::{ChildGuard, Row, create_and_start_plain, wait_until};

const TOKEN: &str = "bench-token";
const REPO: &str = "bench/app";
const BATCH: usize = 20;

/// Runs the benchmark (`rounds` rounds); returns its table rows.
pub(crate) async fn run(
    orchestrator_bin: &std::path::Path,
    image: &str,
    rounds: usize,
) -> anyhow::Result<Vec<Row>> {
    let docker_env = TestDocker::new();
    let mut sim_config = SimConfig::for_tests(SocketAddr::new(docker_env.gateway, 0));
    sim_config.tokens = vec![TOKEN.to_owned().into()];
    sim_config.repos = vec![REPO.to_owned()];
    let sim = github_sim::spawn(sim_config).await?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");
    let mut orchestrator = ChildGuard(
        Command::new(orchestrator_bin)
            .env("ORCHESTRATOR_HOST", "127.0.0.1")
            .env("ORCHESTRATOR_PORT", port.to_string())
            .env("ORCHESTRATOR_ID", &docker_env.id)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_API_URL", sim.url())
            .env("GITHUB_REPOSITORY", REPO)
            .env("RUNNER_IMAGE", image)
            .env("RUNNER_NETWORK", &docker_env.network)
            .env("RUNNER_IMAGE_PULL_INTERVAL_SECONDS", "0")
            .env("MAX_RUNNERS", BATCH.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("start gha-orchestrator")?,
    );
    let http = reqwest::Client::new();
    wait_until(Duration::from_secs(20), || async {
        http.get(format!("{base}/healthz")).send().await.is_ok()
    })
    .await?;
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;

    let mut direct = Vec::new();
    let mut through_api = Vec::new();
    for round in 0..rounds {
        // Alternate the order so neither side always runs on a warmer engine.
        if round % 2 == 0 {
            direct.push(direct_round(&docker, image, &docker_env).await?);
            through_api.push(api_round(&http, &base, &sim.url()).await?);
        } else {
            through_api.push(api_round(&http, &base, &sim.url()).await?);
            direct.push(direct_round(&docker, image, &docker_env).await?);
        }
        eprintln!(
            "round {}: docker {:?}, orchestrator {:?}",
            round + 1,
            direct[round],
            through_api[round]
        );
    }
    let calls = calls_per_lifecycle(&http, &base, &sim.url()).await?;
    orchestrator.stop();

    let direct_ms = median_ms(&direct);
    let api_ms = median_ms(&through_api);
    drop(docker_env);
    Ok(vec![
        Row {
            name: format!("create+start {BATCH} runners (median of {rounds})"),
            baseline: format!("Docker API direct: {direct_ms:.0} ms"),
            measured: format!("POST /runners/create: {api_ms:.0} ms"),
            ratio: format!("{:.2}", api_ms / direct_ms),
            goal: "≤ 1.25".into(),
        },
        Row {
            name: "GitHub API calls per runner lifecycle (create, job, removal)".into(),
            baseline: "—".into(),
            measured: format!("{calls:.2}"),
            ratio: "—".into(),
            goal: "≤ 2".into(),
        },
    ])
}

/// Creates and starts `BATCH` containers at once through the Docker API,
/// timed, then removes them (untimed).
async fn direct_round(docker: &Docker, image: &str, env: &TestDocker) -> anyhow::Result<Duration> {
    let names: Vec<String> = (0..BATCH)
        .map(|i| format!("bench-direct-{}-{i}", env.id))
        .collect();
    let started = Instant::now();
    let results = join_all(names.iter().map(|name| async move {
        create_and_start_plain(docker, image, env, name).await?;
        Ok::<_, bollard::errors::Error>(())
    }))
    .await;
    let elapsed = started.elapsed();
    for r in results {
        r?;
    }
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    join_all(
        names
            .iter()
            .map(|n| docker.remove_container(n, Some(remove.clone()))),
    )
    .await;
    Ok(elapsed)
}

/// One `POST /runners/create` of `BATCH` runners, timed; then every runner
/// deleted (untimed) and the simulator checked empty.
async fn api_round(http: &reqwest::Client, base: &str, sim: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = http
        .post(format!("{base}/runners/create"))
        .json(&json!({"count": BATCH}))
        .send()
        .await?;
    let elapsed = started.elapsed();
    let status = response.status();
    let body: Value = response.json().await?;
    if status != 201 {
        bail!("create answered {status}: {body}");
    }
    delete_all(http, base, sim).await?;
    Ok(elapsed)
}

async fn delete_all(http: &reqwest::Client, base: &str, sim: &str) -> anyhow::Result<()> {
    let list: Value = http
        .get(format!("{base}/runners"))
        .send()
        .await?
        .json()
        .await?;
    let ids: Vec<String> = list["runners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !r["container_id"].is_null())
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    join_all(ids.iter().map(|id| {
        http.delete(format!("{base}/runners/{id}?force=true"))
            .send()
    }))
    .await;
    wait_until(Duration::from_secs(60), || async {
        let regs: Value = match http.get(format!("{sim}/_sim/runners")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => return false,
        };
        if regs.as_array().is_some_and(|a| !a.is_empty()) {
            let _ = http.post(format!("{base}/runners/cleanup")).send().await;
            return false;
        }
        true
    })
    .await
}

/// Creates 5 runners, gives each a job, waits until all are gone, and
/// divides the per-runner GitHub calls (JIT, get, delete; not the shared
/// reconcile listings) by 5.
async fn calls_per_lifecycle(http: &reqwest::Client, base: &str, sim: &str) -> anyhow::Result<f64> {
    const RUNNERS: usize = 5;
    let before: Value = http
        .get(format!("{sim}/_sim/stats"))
        .send()
        .await?
        .json()
        .await?;
    let response = http
        .post(format!("{base}/runners/create"))
        .json(&json!({"count": RUNNERS}))
        .send()
        .await?;
    if response.status() != 201 {
        bail!("create answered {}", response.status());
    }
    for _ in 0..RUNNERS {
        http.post(format!("{sim}/_sim/jobs"))
            .json(&json!({"repository": REPO, "labels": ["self-hosted"], "duration_ms": 200}))
            .send()
            .await?;
    }
    wait_until(Duration::from_secs(60), || async {
        let list: Value = match http.get(format!("{base}/runners")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => return false,
        };
        let regs: Value = match http.get(format!("{sim}/_sim/runners")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => return false,
        };
        list["runners"]
            .as_array()
            .is_some_and(|a| a.iter().all(|r| r["container_id"].is_null()))
            && regs.as_array().is_some_and(Vec::is_empty)
    })
    .await?;
    let after: Value = http
        .get(format!("{sim}/_sim/stats"))
        .send()
        .await?
        .json()
        .await?;
    let per_runner_calls = |stats: &Value| -> i64 {
        stats["api_calls"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(route, _)| {
                route.contains("generate-jitconfig") || route.contains("{runner_id}")
            })
            .map(|(_, n)| n.as_i64().unwrap_or(0))
            .sum()
    };
    Ok((per_runner_calls(&after) - per_runner_calls(&before)) as f64 / RUNNERS as f64)
}

fn median_ms(samples: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    }
}
