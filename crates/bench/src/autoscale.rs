//! The on-demand benchmark: how long from a queued job's webhook to its
//! runner container running, and from the job queued to the job started,
//! with no warm pool and with a pool of two; beside the raw Docker
//! create+start time measured in the same run.

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use chrono::{DateTime, Utc};
use github_sim::SimConfig;
use serde_json::{Value, json};
use test_support::TestDocker;

use crate::{ChildGuard, Row, create_and_start_plain, percentile, wait_until};

const TOKEN: &str = "bench-token";
const REPO: &str = "bench/app";
const SECRET: &str = "bench-webhook-secret";

/// Runs the benchmark; returns its table rows.
pub(crate) async fn run(
    orchestrator_bin: &std::path::Path,
    image: &str,
    jobs: usize,
) -> anyhow::Result<Vec<Row>> {
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
    let env = TestDocker::new();
    let raw = raw_create_start(&docker, image, &env, jobs).await?;
    let mut rows = Vec::new();
    let raw_median = percentile(&raw, 50.0);
    let raw_p95 = percentile(&raw, 95.0);
    for pool in [0u32, 2] {
        let (spawn, start, warm_hits) = scenario(orchestrator_bin, image, &env, pool, jobs).await?;
        if pool == 0 {
            let median = percentile(&spawn, 50.0);
            rows.push(Row {
                name: format!("webhook → runner container running, MIN_IDLE_RUNNERS=0 (median; p95 {:.0} ms vs {:.0} ms)", percentile(&spawn, 95.0), raw_p95),
                baseline: format!("Docker create+start: {raw_median:.0} ms"),
                measured: format!("{median:.0} ms"),
                ratio: format!("+{:.0} ms", median - raw_median),
                goal: "≤ +50 ms".into(),
            });
        }
        rows.push(Row {
            name: format!(
                "job queued → job started, MIN_IDLE_RUNNERS={pool} (median; p95 {:.0} ms)",
                percentile(&start, 95.0)
            ),
            baseline: format!("Docker create+start: {raw_median:.0} ms"),
            measured: format!("{:.0} ms", percentile(&start, 50.0)),
            ratio: format!("{:.2}", percentile(&start, 50.0) / raw_median),
            goal: if pool == 0 {
                "—".into()
            } else {
                format!("no container start on the critical path ({warm_hits}/{jobs} jobs took a warm runner)")
            },
        });
    }
    Ok(rows)
}

/// Sequential create+start of single containers: Docker's own latency.
async fn raw_create_start(
    docker: &Docker,
    image: &str,
    env: &TestDocker,
    n: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::new();
    for i in 0..n {
        let name = format!("bench-raw-{}-{i}", env.id);
        let started = Instant::now();
        let id = create_and_start_plain(docker, image, env, &name).await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        docker
            .remove_container(
                &id,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await?;
    }
    Ok(samples)
}

/// One orchestrator with webhooks and a pool of `pool`; `jobs` jobs queued
/// one after another. Returns (webhook → container running) samples for
/// runners made for a job, (queued → started) samples, and how many jobs a
/// runner that existed before the job took.
async fn scenario(
    orchestrator_bin: &std::path::Path,
    image: &str,
    env: &TestDocker,
    pool: u32,
    jobs: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, usize)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");
    let mut config = SimConfig::for_tests(SocketAddr::new(env.gateway, 0));
    config.tokens = vec![TOKEN.to_owned().into()];
    config.repos = vec![REPO.to_owned()];
    config.webhook_url = Some(format!("{base}/webhooks/github"));
    config.webhook_secret = Some(SECRET.to_owned().into());
    let sim = github_sim::spawn(config).await?;
    let instance = format!("{}-p{pool}", env.id);
    let _orchestrator = ChildGuard(
        Command::new(orchestrator_bin)
            .env("ORCHESTRATOR_HOST", "127.0.0.1")
            .env("ORCHESTRATOR_PORT", port.to_string())
            .env("ORCHESTRATOR_ID", &instance)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_API_URL", sim.url())
            .env("GITHUB_REPOSITORY", REPO)
            .env("GITHUB_WEBHOOK_SECRET", SECRET)
            .env("AUTOSCALE_POLL_INTERVAL_SECONDS", "0")
            .env("MIN_IDLE_RUNNERS", pool.to_string())
            .env("RUNNER_IMAGE", image)
            .env("RUNNER_NETWORK", &env.network)
            .env("RUNNER_IMAGE_PULL_INTERVAL_SECONDS", "0")
            .env("RECONCILE_INTERVAL_SECONDS", "1")
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
    if pool > 0 {
        wait_until(Duration::from_secs(60), || async {
            idle_count(&http, &base).await >= pool as u64
        })
        .await?;
    }
    let mut spawn = Vec::new();
    let mut start = Vec::new();
    let mut warm_hits = 0;
    for _ in 0..jobs {
        let existing: Vec<String> =
            TestDocker::containers_with_label("dev.gha-runners.instance", &instance);
        let response = http
            .post(format!("{}/_sim/jobs", sim.url()))
            .json(&json!({"repository": REPO, "labels": ["self-hosted"], "duration_ms": 100}))
            .send()
            .await?;
        let job: Value = response.json().await?;
        let id = job["id"].as_i64().context("job id")?;
        let done = wait_job(&http, &sim.url(), id).await?;
        let queued = timestamp(&done["queued_at"])?;
        let started = timestamp(&done["started_at"])?;
        start.push((started - queued).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        let runner = done["runner_name"].as_str().unwrap_or_default().to_owned();
        if existing.contains(&runner) {
            warm_hits += 1;
        } else if let Some(inspect) = TestDocker::inspect(&runner) {
            let running = timestamp(&inspect["State"]["StartedAt"])?;
            spawn.push((running - queued).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
        if pool > 0 {
            // Let the pool refill before the next job, as between real pushes.
            wait_until(Duration::from_secs(60), || async {
                idle_count(&http, &base).await >= pool as u64
            })
            .await?;
        }
    }
    // Leave nothing behind for the next scenario.
    let list: Value = http
        .get(format!("{base}/runners"))
        .send()
        .await?
        .json()
        .await?;
    for runner in list["runners"].as_array().into_iter().flatten() {
        if !runner["container_id"].is_null()
            && let Some(id) = runner["id"].as_str()
        {
            let _ = http
                .delete(format!("{base}/runners/{id}?force=true"))
                .send()
                .await;
        }
    }
    sim.shutdown().await;
    Ok((spawn, start, warm_hits))
}

async fn idle_count(http: &reqwest::Client, base: &str) -> u64 {
    match http.get(format!("{base}/runners?state=idle")).send().await {
        Ok(r) => r
            .json::<Value>()
            .await
            .map(|v| v["total"].as_u64().unwrap_or(0))
            .unwrap_or(0),
        Err(_) => 0,
    }
}

async fn wait_job(http: &reqwest::Client, sim: &str, id: i64) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job: Value = http
            .get(format!("{sim}/_sim/jobs/{id}"))
            .send()
            .await?
            .json()
            .await?;
        if job["status"] == "completed" && job["started_at"].is_string() {
            return Ok(job);
        }
        if Instant::now() > deadline {
            bail!("job {id} did not complete: {job}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn timestamp(value: &Value) -> anyhow::Result<DateTime<Utc>> {
    let text = value.as_str().context("timestamp")?;
    Ok(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc))
}
