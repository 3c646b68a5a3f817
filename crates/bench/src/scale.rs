//! The scale benchmark (issue 15, "Scale on one host"): throughput under
//! churn, how the orchestrator's own cost grows with the fleet, and what
//! drifts over a long run; each figure beside a baseline measured in the same
//! run.
//!
//! - **Growth**: bursts of 10, 50 and 100 runners through
//!   `POST /runners/create` against the same number of containers created and
//!   started at once straight through the Docker API; time per runner at each
//!   size, and the ratio of the per-runner ratios at the largest and the
//!   smallest size. The orchestrator's CPU time per runner of each burst, and
//!   the slowest single Docker call of the direct burst (the call that passes
//!   `DOCKER_TIMEOUT_SECONDS` when everything is sent at once).
//! - **Own cost**, with the largest burst alive: the orchestrator's RSS, a
//!   reconcile pass (`POST /runners/cleanup`) against the time GitHub (the
//!   simulator) takes to answer the same listing, the GitHub calls per pass at
//!   each size, and `GET /runners` against `GET /healthz`.
//! - **Churn**: jobs of 1 s queued in waves, `MAX_RUNNERS=25`, webhooks on
//!   (polling off: every runner comes from a webhook); jobs per minute, the
//!   queued → started wait, every job run exactly once, the orchestrator's CPU
//!   time per runner lifecycle. Its baseline creates, starts, waits for and
//!   removes as many containers of the same image, running as long as a job,
//!   at the same concurrency, fed by the same waves.
//! - **Drift**: RSS after the churn against after its first 100 jobs; what the
//!   registry holds against `RUNNER_HISTORY_SECONDS` (and after it); no
//!   container, network, volume or registration left.
//!
//! Knobs (environment): `BENCH_SCALE_JOBS` (1000), `BENCH_SCALE_MAX_RUNNERS`
//! (25), `BENCH_SCALE_WAVE` (100 jobs; the next wave is queued once fewer than
//! `MAX_RUNNERS` jobs wait), `BENCH_SCALE_JOB_MS` (1000),
//! `BENCH_SCALE_BURSTS` (`10,50,100`), `BENCH_SCALE_ROUNDS` (3; medians),
//! `BENCH_SCALE_HISTORY_SECONDS` (60, the orchestrator's
//! `RUNNER_HISTORY_SECONDS`), `BENCH_SCALE_PARTS` (`growth,churn`),
//! `BENCH_SCALE_ORCHESTRATOR_BIN` (another build to measure, e.g. an older
//! one), `BENCH_SCALE_RUST_LOG` (the orchestrator's `RUST_LOG`, default
//! `warn`; when set, its logs are kept and their paths printed) and
//! `BENCH_SCALE_RUNNER_COMMAND` (the bursts' `RUNNER_COMMAND`, e.g.
//! `sleep 600`: runners that do what the direct containers do, so that the
//! comparison leaves out the runner stand-ins' own work of connecting to the
//! simulator and polling it). A quick run: `BENCH_SCALE_JOBS=100 BENCH_SCALE_BURSTS=10,50
//! BENCH_SCALE_ROUNDS=1 bench/run scale`.
//!
//! Everything runs on the benchmark's own Docker network (the simulator
//! listens on its gateway); every container carries the benchmark's label or
//! sits on that network, so [`TestDocker`]'s drop removes what is left even
//! when a part fails. Every wait is bounded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptions,
    ListVolumesOptions, RemoveContainerOptionsBuilder, StartContainerOptions, WaitContainerOptions,
};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use futures::{StreamExt, stream};
use github_sim::{RunningSim, SimConfig};
use serde_json::{Value, json};
use test_support::TestDocker;
use test_support::docker_guard::TEST_LABEL;

use crate::phases::{PhaseRecorder, Phases};
use crate::{ChildGuard, Row, percentile, wait_until};

const TOKEN: &str = "bench-token";
const REPO: &str = "bench/app";
const SECRET: &str = "bench-webhook-secret";
/// The label the orchestrator puts on what it owns, valued with its instance id.
const INSTANCE_LABEL: &str = "dev.gha-runners.instance";
/// The simulator's route that hands out JIT configurations (one per runner).
const JIT_ROUTE: &str = "POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig";
/// Reconcile passes timed at each burst size.
const PASSES: usize = 5;
/// Requests per latency sample of `GET /runners` and `GET /healthz`.
const LATENCY_REQUESTS: usize = 200;
/// Concurrent removals when clearing a burst (untimed).
const CLEAR_CONCURRENCY: usize = 16;

/// What the environment asks of this run.
#[derive(Debug, Clone)]
struct Knobs {
    jobs: usize,
    max_runners: usize,
    wave: usize,
    job_ms: u64,
    bursts: Vec<usize>,
    rounds: usize,
    history_seconds: u64,
    /// `RUNNER_COMMAND` of the bursts' runners, when not the stand-in's own.
    runner_command: Option<String>,
    growth: bool,
    churn: bool,
    orchestrator: PathBuf,
}

impl Knobs {
    fn from_env(default_bin: &Path) -> Self {
        let number = |var: &str, default: usize| {
            std::env::var(var)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        let list = |var: &str, default: &str| -> Vec<String> {
            std::env::var(var)
                .unwrap_or_else(|_| default.to_owned())
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let mut bursts: Vec<usize> = list("BENCH_SCALE_BURSTS", "10,50,100")
            .iter()
            .filter_map(|s| s.parse().ok())
            .filter(|n| *n > 0)
            .collect();
        bursts.sort_unstable();
        bursts.dedup();
        let parts = list("BENCH_SCALE_PARTS", "growth,churn");
        Self {
            jobs: number("BENCH_SCALE_JOBS", 1000),
            max_runners: number("BENCH_SCALE_MAX_RUNNERS", 25),
            wave: number("BENCH_SCALE_WAVE", 100),
            job_ms: number("BENCH_SCALE_JOB_MS", 1000) as u64,
            bursts,
            rounds: number("BENCH_SCALE_ROUNDS", 3),
            history_seconds: number("BENCH_SCALE_HISTORY_SECONDS", 60) as u64,
            runner_command: std::env::var("BENCH_SCALE_RUNNER_COMMAND")
                .ok()
                .filter(|c| !c.trim().is_empty()),
            growth: parts.iter().any(|p| p == "growth"),
            churn: parts.iter().any(|p| p == "churn"),
            orchestrator: std::env::var_os("BENCH_SCALE_ORCHESTRATOR_BIN")
                .map_or_else(|| default_bin.to_owned(), PathBuf::from),
        }
    }
}

/// Runs the benchmark; returns its table rows.
pub(crate) async fn run(orchestrator_bin: &Path, image: &str) -> anyhow::Result<Vec<Row>> {
    let knobs = Knobs::from_env(orchestrator_bin);
    eprintln!("scale: {knobs:?}");
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
    let env = TestDocker::new();
    let mut rows = Vec::new();
    if knobs.growth && !knobs.bursts.is_empty() {
        rows.extend(growth(&knobs, &docker, image, &env).await?);
    }
    if knobs.churn {
        rows.extend(churn(&knobs, &docker, image, &env).await?);
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------
// The orchestrator process and what /proc says of it.

/// One orchestrator process of the benchmark, its log in a file.
struct Orchestrator {
    process: ChildGuard,
    base: String,
    instance: String,
    log: PathBuf,
}

impl Orchestrator {
    /// Starts `bin` on `port` against `sim`, on the benchmark's network, and
    /// waits until it serves.
    async fn start(
        bin: &Path,
        port: u16,
        instance: &str,
        sim: &RunningSim,
        image: &str,
        env: &TestDocker,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let log = std::env::temp_dir().join(format!("gha-bench-scale-{instance}.log"));
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(bin);
        command
            .env("ORCHESTRATOR_HOST", "127.0.0.1")
            .env("ORCHESTRATOR_PORT", port.to_string())
            .env("ORCHESTRATOR_ID", instance)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_API_URL", sim.url())
            .env("GITHUB_REPOSITORY", REPO)
            .env("AUTOSCALE_POLL_INTERVAL_SECONDS", "0")
            .env("RUNNER_IMAGE", image)
            .env("RUNNER_NETWORK", &env.network)
            .env("RUNNER_IMAGE_PULL_INTERVAL_SECONDS", "0")
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SCALE_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        for (key, value) in extra {
            command.env(key, value);
        }
        let process = ChildGuard(
            command
                .spawn()
                .with_context(|| format!("start {}", bin.display()))?,
        );
        let orchestrator = Self {
            process,
            base: format!("http://127.0.0.1:{port}"),
            instance: instance.to_owned(),
            log,
        };
        let http = reqwest::Client::new();
        wait_until(Duration::from_secs(30), || async {
            http.get(format!("{}/healthz", orchestrator.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await
        .with_context(|| {
            format!(
                "the orchestrator did not serve; see {}",
                log_path(&orchestrator)
            )
        })?;
        Ok(orchestrator)
    }

    fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// Resident memory (VmRSS), in MB.
    fn rss_mb(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .context("no VmRSS in /proc/PID/status")?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kb / 1024.0)
    }

    /// CPU time used so far (user + system), in seconds.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Field 2, the command, is in parentheses and may hold spaces: count
        // from the last `)`. What follows starts at field 3; utime and stime
        // are fields 14 and 15, in clock ticks.
        let (_, rest) = stat.rsplit_once(')').context("malformed /proc/PID/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11).context("no utime")?.parse()?;
        let stime: u64 = fields.get(12).context("no stime")?.parse()?;
        Ok((utime + stime) as f64 / clock_ticks())
    }

    /// Stops the process (SIGTERM); its log is kept only when asked for.
    fn stop(mut self) {
        self.process.stop();
        if std::env::var_os("BENCH_SCALE_RUST_LOG").is_some() {
            eprintln!("scale: the orchestrator's log: {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

fn log_path(orchestrator: &Orchestrator) -> String {
    orchestrator.log.display().to_string()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux when unknown).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The simulator on the benchmark's network, with budgets no run reaches
/// (the benchmark measures the orchestrator, not GitHub's rate limits).
async fn start_sim(env: &TestDocker, webhook_to: Option<&str>) -> anyhow::Result<RunningSim> {
    let mut config = SimConfig::for_tests(SocketAddr::new(env.gateway, 0));
    config.tokens = vec![TOKEN.to_owned().into()];
    config.repos = vec![REPO.to_owned()];
    config.rate_limit_per_hour = 1_000_000;
    config.registration_rate_limit_per_hour = 1_000_000;
    if let Some(url) = webhook_to {
        config.webhook_url = Some(url.to_owned());
        config.webhook_secret = Some(SECRET.to_owned().into());
    }
    Ok(github_sim::spawn(config).await?)
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?)
}

async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    Ok(http.get(url).send().await?.json().await?)
}

/// REST calls the simulator has answered, by route, but `GET /rate_limit`
/// (which `/health` makes and which costs no budget).
async fn rest_calls(http: &reqwest::Client, sim: &str) -> anyhow::Result<HashMap<String, i64>> {
    let stats = get_json(http, &format!("{sim}/_sim/stats")).await?;
    Ok(stats["api_calls"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(route, _)| route.as_str() != "GET /rate_limit")
        .map(|(route, n)| (route.clone(), n.as_i64().unwrap_or(0)))
        .collect())
}

fn total(calls: &HashMap<String, i64>) -> i64 {
    calls.values().sum()
}

// ---------------------------------------------------------------------------
// Docker directly.

/// A plain container of `image` running `command`, labelled for clean-up, on
/// the benchmark's network.
fn plain_container(image: &str, env: &TestDocker, command: Vec<String>) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(command),
        labels: Some(HashMap::from([(TEST_LABEL.to_owned(), env.id.clone())])),
        host_config: Some(HostConfig {
            network_mode: Some(env.network.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates and starts a plain container; returns how long each call took.
async fn create_and_start(
    docker: &Docker,
    name: &str,
    body: ContainerCreateBody,
) -> Result<(Duration, Duration), bollard::errors::Error> {
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    let at = Instant::now();
    docker.create_container(Some(options), body).await?;
    let create = at.elapsed();
    let at = Instant::now();
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await?;
    Ok((create, at.elapsed()))
}

async fn remove_all(docker: &Docker, names: &[String]) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    stream::iter(names)
        .for_each_concurrent(CLEAR_CONCURRENCY, |name| {
            let options = options.clone();
            async move {
                let _ = docker.remove_container(name, Some(options)).await;
            }
        })
        .await;
}

/// `size` containers created and started at once; returns the time until
/// the last one started and the slowest single call. Removed afterwards
/// (untimed).
async fn direct_burst(
    docker: &Docker,
    image: &str,
    env: &TestDocker,
    size: usize,
    tag: &str,
) -> anyhow::Result<(Duration, Duration)> {
    let names: Vec<String> = (0..size)
        .map(|i| format!("bench-scale-{}-{tag}-{i}", env.id))
        .collect();
    let started = Instant::now();
    let results = join_all(names.iter().map(|name| {
        let body = plain_container(image, env, vec!["sleep".into(), "600".into()]);
        create_and_start(docker, name, body)
    }))
    .await;
    let elapsed = started.elapsed();
    remove_all(docker, &names).await;
    let mut slowest = Duration::ZERO;
    for result in results {
        let (create, start) = result.context("direct create+start")?;
        slowest = slowest.max(create).max(start);
    }
    Ok((elapsed, slowest))
}

/// Names of the containers the orchestrator `instance` owns, running or not.
async fn instance_containers(docker: &Docker, instance: &str) -> anyhow::Result<Vec<String>> {
    let filters = HashMap::from([("label", vec![format!("{INSTANCE_LABEL}={instance}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    Ok(docker
        .list_containers(Some(options))
        .await?
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect())
}

// ---------------------------------------------------------------------------
// Growth and own cost.

/// What one burst size gave over the rounds.
#[derive(Debug, Default)]
struct Burst {
    size: usize,
    /// Seconds until the last direct container started.
    direct: Vec<f64>,
    /// The slowest single create or start call of the direct burst, seconds.
    direct_slowest_call: Vec<f64>,
    /// Seconds until `POST /runners/create` answered 201; or why it failed.
    api: Vec<Result<f64, String>>,
    /// The orchestrator's CPU seconds over each create.
    api_cpu: Vec<f64>,
    /// GitHub calls per reconcile pass with the burst alive.
    calls_per_pass: Vec<f64>,
    /// Reconcile pass durations with the burst alive, ms.
    pass_ms: Vec<f64>,
}

impl Burst {
    fn api_ok(&self) -> Vec<f64> {
        self.api
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect()
    }
}

/// What was measured with the largest burst alive.
#[derive(Debug, Default)]
struct OwnCost {
    alive: usize,
    rss_idle_mb: f64,
    rss_alive_mb: f64,
    github_listing_ms: Vec<f64>,
    docker_listing_ms: Vec<f64>,
    runners_ms: Vec<f64>,
    healthz_ms: Vec<f64>,
}

async fn growth(
    knobs: &Knobs,
    docker: &Docker,
    image: &str,
    env: &TestDocker,
) -> anyhow::Result<Vec<Row>> {
    let largest = *knobs.bursts.last().context("no burst size")?;
    let sim = start_sim(env, None).await?;
    let port = free_port()?;
    let instance = format!("{}-g", env.id);
    let mut settings = vec![
        ("MAX_RUNNERS", largest.to_string()),
        // Passes only when the benchmark asks (`POST /runners/cleanup`),
        // so that none overlaps one being timed.
        ("RECONCILE_INTERVAL_SECONDS", "3600".to_owned()),
    ];
    if let Some(command) = &knobs.runner_command {
        settings.push(("RUNNER_COMMAND", command.clone()));
    }
    let orchestrator = Orchestrator::start(
        &knobs.orchestrator,
        port,
        &instance,
        &sim,
        image,
        env,
        &settings,
    )
    .await?;
    let http = http_client()?;
    let base = orchestrator.base.clone();
    let sim_url = sim.url();
    let mut own = OwnCost {
        rss_idle_mb: orchestrator.rss_mb()?,
        ..OwnCost::default()
    };
    let mut bursts = Vec::new();
    for &size in &knobs.bursts {
        let mut burst = Burst {
            size,
            ..Burst::default()
        };
        for round in 0..knobs.rounds {
            let tag = format!("{size}-{round}");
            // Alternate the order so neither side always meets a warmer engine.
            if round % 2 == 1 {
                let (elapsed, slowest) = direct_burst(docker, image, env, size, &tag).await?;
                burst.direct.push(elapsed.as_secs_f64());
                burst.direct_slowest_call.push(slowest.as_secs_f64());
            }
            let cpu = orchestrator.cpu_seconds()?;
            let outcome = api_burst(&http, &base, size).await?;
            burst.api_cpu.push(orchestrator.cpu_seconds()? - cpu);
            if outcome.is_ok() && round + 1 == knobs.rounds {
                measure_passes(&http, &base, &sim_url, &mut burst).await?;
                if size == largest {
                    own.alive = size;
                    if knobs.runner_command.is_none() {
                        wait_online(&http, &sim_url, size).await;
                    }
                    own.rss_alive_mb = orchestrator.rss_mb()?;
                    measure_own_cost(&http, &base, &sim_url, docker, &instance, &mut own).await?;
                }
            }
            burst.api.push(outcome.map(|d| d.as_secs_f64()));
            clear(&http, &base, &sim_url, docker, &instance).await?;
            if round % 2 == 0 {
                let (elapsed, slowest) = direct_burst(docker, image, env, size, &tag).await?;
                burst.direct.push(elapsed.as_secs_f64());
                burst.direct_slowest_call.push(slowest.as_secs_f64());
            }
            eprintln!(
                "growth {size}, round {}: docker {:.2} s (slowest call {:.2} s), orchestrator {:?}",
                round + 1,
                burst.direct.last().unwrap_or(&f64::NAN),
                burst.direct_slowest_call.last().unwrap_or(&f64::NAN),
                burst.api.last()
            );
        }
        bursts.push(burst);
    }
    orchestrator.stop();
    sim.shutdown().await;
    Ok(growth_rows(knobs, &bursts, &own))
}

/// One `POST /runners/create` of `size`, timed until its 201. A batch that
/// outlives the request's wait is answered 202; the same request with the
/// same `Idempotency-Key` then waits for that batch again. A failure (the
/// whole batch rolled back) is returned as its status and code.
async fn api_burst(
    http: &reqwest::Client,
    base: &str,
    size: usize,
) -> anyhow::Result<Result<Duration, String>> {
    let key = format!("bench-scale-{}", test_support::unique_id());
    let started = Instant::now();
    loop {
        let response = http
            .post(format!("{base}/runners/create"))
            .header("idempotency-key", &key)
            .json(&json!({"count": size}))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            201 => return Ok(Ok(started.elapsed())),
            202 if started.elapsed() < Duration::from_secs(600) => {}
            _ => {
                return Ok(Err(format!(
                    "{status} {} after {:.1} s",
                    body["error"]["code"].as_str().unwrap_or("?"),
                    started.elapsed().as_secs_f64()
                )));
            }
        }
    }
}

/// Waits (bounded) until `count` runners are online at GitHub; runners
/// that connect later only make the figures taken next more conservative.
async fn wait_online(http: &reqwest::Client, sim: &str, count: usize) {
    let online = || async {
        get_json(http, &format!("{sim}/_sim/runners"))
            .await
            .ok()
            .and_then(|v| v.as_array().cloned())
            .map_or(0, |a| a.iter().filter(|r| r["status"] == "online").count())
    };
    if wait_until(Duration::from_secs(90), || async {
        online().await >= count
    })
    .await
    .is_err()
    {
        eprintln!(
            "scale: only {} of {count} runners online after 90 s",
            online().await
        );
    }
}

/// Times reconcile passes (`POST /runners/cleanup`) and counts the GitHub
/// calls each makes (nothing else calls GitHub meanwhile: polling and
/// autoscaling are off, the interval is an hour).
async fn measure_passes(
    http: &reqwest::Client,
    base: &str,
    sim: &str,
    burst: &mut Burst,
) -> anyhow::Result<()> {
    for _ in 0..PASSES {
        let before = rest_calls(http, sim).await?;
        let at = Instant::now();
        let response = http.post(format!("{base}/runners/cleanup")).send().await?;
        let elapsed = at.elapsed();
        if response.status() != 200 {
            bail!("cleanup answered {}", response.status());
        }
        let after = rest_calls(http, sim).await?;
        burst.pass_ms.push(elapsed.as_secs_f64() * 1000.0);
        burst
            .calls_per_pass
            .push((total(&after) - total(&before)) as f64);
    }
    Ok(())
}

/// With the largest burst alive: what GitHub and Docker take for the
/// listings a pass makes, and `GET /runners` against `GET /healthz`.
async fn measure_own_cost(
    http: &reqwest::Client,
    base: &str,
    sim: &str,
    docker: &Docker,
    instance: &str,
    own: &mut OwnCost,
) -> anyhow::Result<()> {
    for _ in 0..PASSES {
        own.github_listing_ms
            .push(github_listing_ms(http, sim).await?);
        let at = Instant::now();
        instance_containers(docker, instance).await?;
        own.docker_listing_ms
            .push(at.elapsed().as_secs_f64() * 1000.0);
    }
    own.runners_ms = latencies(http, &format!("{base}/runners")).await?;
    own.healthz_ms = latencies(http, &format!("{base}/healthz")).await?;
    Ok(())
}

/// Reads every page of the repository's runners from the simulator as the
/// orchestrator does (`per_page=100`, following `Link: rel="next"`); ms.
async fn github_listing_ms(http: &reqwest::Client, sim: &str) -> anyhow::Result<f64> {
    let at = Instant::now();
    let mut next = Some(format!("{sim}/repos/{REPO}/actions/runners?per_page=100"));
    while let Some(url) = next {
        let response = http
            .get(&url)
            .bearer_auth(TOKEN)
            .header("user-agent", "gha-bench")
            .header("accept", "application/vnd.github+json")
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("listing runners answered {}", response.status());
        }
        next = response
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(next_link);
        response.bytes().await?;
    }
    Ok(at.elapsed().as_secs_f64() * 1000.0)
}

/// The `rel="next"` target of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| target.trim().trim_matches(['<', '>']).to_owned())
    })
}

/// `LATENCY_REQUESTS` sequential GETs of `url`; each in ms.
async fn latencies(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(LATENCY_REQUESTS);
    for _ in 0..LATENCY_REQUESTS {
        let at = Instant::now();
        let response = http.get(url).send().await?;
        if !response.status().is_success() {
            bail!("GET {url} answered {}", response.status());
        }
        response.bytes().await?;
        samples.push(at.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(samples)
}

/// Deletes every live runner (force) and waits until neither a container
/// nor a registration of the instance is left; untimed.
async fn clear(
    http: &reqwest::Client,
    base: &str,
    sim: &str,
    docker: &Docker,
    instance: &str,
) -> anyhow::Result<()> {
    let list = get_json(http, &format!("{base}/runners")).await?;
    let ids: Vec<String> = list["runners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !r["container_id"].is_null())
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    stream::iter(&ids)
        .for_each_concurrent(CLEAR_CONCURRENCY, |id| async move {
            let _ = http
                .delete(format!("{base}/runners/{id}?force=true"))
                .header("prefer", "wait=1")
                .send()
                .await;
        })
        .await;
    let mut checks = 0u32;
    wait_until(Duration::from_secs(180), || {
        checks += 1;
        let nudge = checks.is_multiple_of(50);
        async move {
            if nudge {
                let _ = http.post(format!("{base}/runners/cleanup")).send().await;
            }
            let containers = instance_containers(docker, instance)
                .await
                .map_or(usize::MAX, |c| c.len());
            let registrations = get_json(http, &format!("{sim}/_sim/runners"))
                .await
                .ok()
                .and_then(|v| v.as_array().map(Vec::len))
                .unwrap_or(usize::MAX);
            containers == 0 && registrations == 0
        }
    })
    .await
    .context("clearing a burst")
}

fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

fn growth_rows(knobs: &Knobs, bursts: &[Burst], own: &OwnCost) -> Vec<Row> {
    let rounds = knobs.rounds;
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    for burst in bursts {
        let n = burst.size as f64;
        let direct = median(&burst.direct);
        let ok = burst.api_ok();
        let failures: Vec<&String> = burst.api.iter().filter_map(|r| r.as_ref().err()).collect();
        let failed = if failures.is_empty() {
            String::new()
        } else {
            format!(
                "; {} of {rounds} failed: {}",
                failures.len(),
                failures
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let (measured, ratio) = if ok.is_empty() {
            (format!("failed{failed}"), "—".to_owned())
        } else {
            let api = median(&ok);
            ratios.push((burst.size, api / direct));
            (
                format!(
                    "POST /runners/create: {:.0} ms/runner ({api:.1} s){failed}",
                    api / n * 1000.0
                ),
                format!("{:.2}", api / direct),
            )
        };
        rows.push(Row {
            name: format!(
                "burst of {} runners, time per runner (median of {rounds}; slowest single Docker call of the direct burst {:.1} s)",
                burst.size,
                burst
                    .direct_slowest_call
                    .iter()
                    .copied()
                    .fold(0.0, f64::max)
            ),
            baseline: format!(
                "Docker direct, all at once: {:.0} ms/runner ({direct:.1} s)",
                direct / n * 1000.0
            ),
            measured,
            ratio,
            goal: "—".into(),
        });
    }
    if let (Some((small, first)), Some((large, last))) = (ratios.first(), ratios.last())
        && small != large
    {
        rows.push(Row {
            name: format!("growth: per-runner ratio at {large} ÷ at {small}"),
            baseline: format!("at {small}: {first:.2}"),
            measured: format!("at {large}: {last:.2}"),
            ratio: format!("{:.2}", last / first),
            goal: "≤ 1.2".into(),
        });
    }
    rows.push(Row {
        name: "orchestrator CPU per runner created (user + system, median), by burst size".into(),
        baseline: "—".into(),
        measured: bursts
            .iter()
            .map(|b| {
                format!(
                    "{}: {:.1} ms",
                    b.size,
                    median(&b.api_cpu) / b.size as f64 * 1000.0
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        ratio: "—".into(),
        goal: "flat".into(),
    });
    let measured_sizes: Vec<&Burst> = bursts.iter().filter(|b| !b.pass_ms.is_empty()).collect();
    if !measured_sizes.is_empty() {
        rows.push(Row {
            name: format!("GitHub calls per reconcile pass (median of {PASSES}), by runners alive"),
            baseline: format!(
                "pages of 100 runners: {}",
                measured_sizes
                    .iter()
                    .map(|b| format!("{}: {}", b.size, b.size.div_ceil(100)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            measured: measured_sizes
                .iter()
                .map(|b| format!("{}: {:.0}", b.size, median(&b.calls_per_pass)))
                .collect::<Vec<_>>()
                .join(", "),
            ratio: "—".into(),
            goal: "grows with pages, not runners".into(),
        });
    }
    if own.alive > 0 {
        let pass = bursts
            .iter()
            .find(|b| b.size == own.alive)
            .map_or(f64::NAN, |b| median(&b.pass_ms));
        let github = median(&own.github_listing_ms);
        let by_size = bursts
            .iter()
            .filter(|b| !b.pass_ms.is_empty())
            .map(|b| format!("{}: {:.0} ms", b.size, median(&b.pass_ms)))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(Row {
            name: format!(
                "reconcile pass with {} runners alive (median of {PASSES}; Docker's listing {:.0} ms, made twice; by runners alive {by_size})",
                own.alive,
                median(&own.docker_listing_ms)
            ),
            baseline: format!("GitHub's own time for the same listing: {github:.0} ms"),
            measured: format!("{pass:.0} ms"),
            ratio: format!("+{:.0} ms", pass - github),
            goal: "≤ +200 ms".into(),
        });
        rows.push(Row {
            name: format!("orchestrator RSS with {} runners alive", own.alive),
            baseline: format!("idle, no runner: {:.1} MB", own.rss_idle_mb),
            measured: format!("{:.1} MB", own.rss_alive_mb),
            ratio: "—".into(),
            goal: "≤ 64 MB".into(),
        });
        let runners = median(&own.runners_ms);
        let healthz = median(&own.healthz_ms);
        rows.push(Row {
            name: format!(
                "GET /runners with {} alive (median of {LATENCY_REQUESTS}; p95 {:.2} ms vs {:.2} ms)",
                own.alive,
                percentile(&own.runners_ms, 95.0),
                percentile(&own.healthz_ms, 95.0)
            ),
            baseline: format!("GET /healthz: {healthz:.2} ms"),
            measured: format!("{runners:.2} ms"),
            ratio: format!("{:.2}", runners / healthz),
            goal: "—".into(),
        });
    }
    rows
}

// ---------------------------------------------------------------------------
// Churn and drift.

/// What the orchestrator's churn gave.
#[derive(Debug, Default)]
struct Churn {
    /// First wave queued → last job completed, and → nothing left.
    until_completed: Duration,
    until_clean: Duration,
    /// Queued → started, ms.
    waits_ms: Vec<f64>,
    completed_success: usize,
    distinct_runners: usize,
    jit_calls: i64,
    github_calls: i64,
    cpu_seconds: f64,
    rss_after_first_100_mb: f64,
    rss_end_mb: f64,
    rss_max_mb: f64,
    /// Runner containers alive, sampled every 250 ms while jobs were left.
    occupancy: Vec<f64>,
    /// What `GET /runners` held right after the churn.
    history: usize,
    live_after: usize,
    oldest_history_age: f64,
    runners_ms_after: Vec<f64>,
    /// After another `RUNNER_HISTORY_SECONDS`.
    history_expired: Option<usize>,
    runners_ms_expired: Vec<f64>,
    rss_expired_mb: Option<f64>,
    leaks: Leaks,
}

/// What was left behind.
#[derive(Debug, Default)]
struct Leaks {
    containers: usize,
    networks: usize,
    volumes: Vec<String>,
    registrations: usize,
}

async fn churn(
    knobs: &Knobs,
    docker: &Docker,
    image: &str,
    env: &TestDocker,
) -> anyhow::Result<Vec<Row>> {
    let volumes_before = volume_names(docker).await?;
    let recorder = PhaseRecorder::start(docker, TEST_LABEL, &env.id);
    let direct = churn_direct(knobs, docker, image, env).await?;
    let direct_phases = recorder.finish();
    eprintln!(
        "churn direct: {} containers in {:.1} s, {:.1} alive on average",
        knobs.jobs,
        direct.elapsed.as_secs_f64(),
        mean(&direct.occupancy)
    );
    let recorder = PhaseRecorder::start(docker, INSTANCE_LABEL, &format!("{}-c", env.id));
    let mut figures = churn_orchestrator(knobs, docker, image, env).await?;
    let phases = recorder.finish();
    let new_volumes: Vec<String> = volume_names(docker)
        .await?
        .difference(&volumes_before)
        .cloned()
        .collect();
    figures.leaks.volumes = new_volumes;
    eprintln!(
        "churn orchestrator: {} jobs in {:.1} s, {:.1} runners alive on average",
        knobs.jobs,
        figures.until_clean.as_secs_f64(),
        mean(&figures.occupancy)
    );
    let mut rows = churn_rows(knobs, &direct, &figures);
    rows.insert(3, phase_row(&direct_phases, &phases));
    Ok(rows)
}

fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len().max(1) as f64
}

async fn volume_names(docker: &Docker) -> anyhow::Result<HashSet<String>> {
    Ok(docker
        .list_volumes(None::<ListVolumesOptions>)
        .await?
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect())
}

/// The jobs released so far, by wave, for the direct baseline.
#[derive(Debug, Default)]
struct Feed {
    waiting: VecDeque<Instant>,
    released: usize,
    /// Workers with a container right now.
    busy: usize,
}

/// What the direct baseline of the churn gave.
#[derive(Debug)]
struct DirectChurn {
    /// First wave → last container removed.
    elapsed: Duration,
    /// Wave released → container started, ms.
    waits_ms: Vec<f64>,
    /// Containers alive, sampled every 250 ms while jobs were left.
    occupancy: Vec<f64>,
}

/// The baseline: `MAX_RUNNERS` workers take jobs released in the same waves
/// as the orchestrator's, each creating, starting, waiting for and removing
/// one container of the image that sleeps as long as a job runs. Returns the
/// time until the last container was removed and each job's wait from its
/// release to its container started.
async fn churn_direct(
    knobs: &Knobs,
    docker: &Docker,
    image: &str,
    env: &TestDocker,
) -> anyhow::Result<DirectChurn> {
    let feed = Arc::new(Mutex::new(Feed::default()));
    let sleep = format!("{:.3}", knobs.job_ms as f64 / 1000.0);
    let started = Instant::now();
    let deadline = started + churn_deadline(knobs);
    let mut occupancy = Vec::new();
    let feeder = async {
        loop {
            {
                let mut feed = feed.lock().expect("feed");
                if feed.released == knobs.jobs && feed.waiting.is_empty() {
                    return;
                }
                occupancy.push(feed.busy as f64);
                if feed.waiting.len() < knobs.max_runners && feed.released < knobs.jobs {
                    let n = knobs.wave.min(knobs.jobs - feed.released);
                    let now = Instant::now();
                    feed.waiting.extend(std::iter::repeat_n(now, n));
                    feed.released += n;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let next_id = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = (0..knobs.max_runners).map(|_| {
        let feed = feed.clone();
        let next_id = next_id.clone();
        let sleep = sleep.clone();
        async move {
            let mut waits = Vec::new();
            loop {
                let job = {
                    let mut feed = feed.lock().expect("feed");
                    match feed.waiting.pop_front() {
                        Some(queued) => {
                            feed.busy += 1;
                            Some(queued)
                        }
                        None if feed.released == knobs.jobs => return Ok(waits),
                        None => None,
                    }
                };
                let Some(queued) = job else {
                    if Instant::now() > deadline {
                        bail!("the direct churn did not finish in time");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let i = next_id.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let name = format!("bench-churn-{}-{i}", env.id);
                let body = plain_container(image, env, vec!["sleep".into(), sleep.clone()]);
                create_and_start(docker, &name, body)
                    .await
                    .context("direct churn: create+start")?;
                waits.push(queued.elapsed().as_secs_f64() * 1000.0);
                let mut wait = docker.wait_container(&name, None::<WaitContainerOptions>);
                while let Some(status) = wait.next().await {
                    status.context("direct churn: wait")?;
                }
                docker
                    .remove_container(
                        &name,
                        Some(RemoveContainerOptionsBuilder::default().v(true).build()),
                    )
                    .await
                    .context("direct churn: remove")?;
                feed.lock().expect("feed").busy -= 1;
            }
        }
    });
    let (_, results) = tokio::join!(feeder, join_all(workers));
    let elapsed = started.elapsed();
    let mut waits_ms = Vec::new();
    for result in results {
        waits_ms.extend(result?);
    }
    Ok(DirectChurn {
        elapsed,
        waits_ms,
        occupancy,
    })
}

/// How long a churn may take before the benchmark gives up.
fn churn_deadline(knobs: &Knobs) -> Duration {
    Duration::from_secs((knobs.jobs as u64 * (knobs.job_ms / 1000 + 2)).max(600))
}

async fn churn_orchestrator(
    knobs: &Knobs,
    docker: &Docker,
    image: &str,
    env: &TestDocker,
) -> anyhow::Result<Churn> {
    let port = free_port()?;
    let sim = start_sim(
        env,
        Some(&format!("http://127.0.0.1:{port}/webhooks/github")),
    )
    .await?;
    let sim_url = sim.url();
    let instance = format!("{}-c", env.id);
    let orchestrator = Orchestrator::start(
        &knobs.orchestrator,
        port,
        &instance,
        &sim,
        image,
        env,
        &[
            ("MAX_RUNNERS", knobs.max_runners.to_string()),
            ("GITHUB_WEBHOOK_SECRET", SECRET.to_owned()),
            ("RUNNER_HISTORY_SECONDS", knobs.history_seconds.to_string()),
        ],
    )
    .await?;
    let outcome = drive_churn(knobs, docker, &orchestrator, &sim_url).await;
    if outcome.is_err() {
        // Dropping the guard kills the process and keeps its log.
        eprintln!(
            "scale: the churn failed; the orchestrator's log: {}",
            log_path(&orchestrator)
        );
        return outcome;
    }
    orchestrator.stop();
    sim.shutdown().await;
    outcome
}

async fn drive_churn(
    knobs: &Knobs,
    docker: &Docker,
    orchestrator: &Orchestrator,
    sim: &str,
) -> anyhow::Result<Churn> {
    let http = http_client()?;
    let base = &orchestrator.base;
    let mut figures = Churn::default();
    let calls_before = rest_calls(&http, sim).await?;
    let cpu_before = orchestrator.cpu_seconds()?;
    let first_hundred = knobs.jobs.min(100);
    let mut queued_total = 0;
    let mut rss_after_first = None;
    let started = Instant::now();
    let deadline = started + churn_deadline(knobs);
    loop {
        let jobs = get_json(&http, &format!("{sim}/_sim/jobs")).await?;
        let jobs = jobs.as_array().context("job list")?;
        let waiting = jobs.iter().filter(|j| j["status"] == "queued").count();
        let completed = jobs.iter().filter(|j| j["status"] == "completed").count();
        let rss = orchestrator.rss_mb()?;
        figures.rss_max_mb = figures.rss_max_mb.max(rss);
        figures.occupancy.push(
            instance_containers(docker, &orchestrator.instance)
                .await?
                .len() as f64,
        );
        if rss_after_first.is_none() && completed >= first_hundred {
            rss_after_first = Some(rss);
        }
        if completed == knobs.jobs {
            break;
        }
        if waiting < knobs.max_runners && queued_total < knobs.jobs {
            let n = knobs.wave.min(knobs.jobs - queued_total);
            for _ in 0..n {
                let response = http
                    .post(format!("{sim}/_sim/jobs"))
                    .json(&json!({"repository": REPO, "labels": ["self-hosted"],
                                  "duration_ms": knobs.job_ms, "conclusion": "success"}))
                    .send()
                    .await?;
                if response.status() != 201 {
                    bail!("queueing a job answered {}", response.status());
                }
            }
            queued_total += n;
        }
        if Instant::now() > deadline {
            bail!(
                "{completed} of {} jobs completed in {:?}",
                knobs.jobs,
                deadline - started
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    figures.until_completed = started.elapsed();
    wait_until(Duration::from_secs(120), || async {
        let containers = instance_containers(docker, &orchestrator.instance)
            .await
            .map_or(usize::MAX, |c| c.len());
        let registrations = get_json(&http, &format!("{sim}/_sim/runners"))
            .await
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(usize::MAX);
        containers == 0 && registrations == 0
    })
    .await
    .context("containers or registrations left after the churn")?;
    figures.until_clean = started.elapsed();
    figures.cpu_seconds = orchestrator.cpu_seconds()? - cpu_before;
    figures.rss_after_first_100_mb = rss_after_first.unwrap_or(f64::NAN);
    figures.rss_end_mb = orchestrator.rss_mb()?;
    let calls_after = rest_calls(&http, sim).await?;
    figures.github_calls = total(&calls_after) - total(&calls_before);
    figures.jit_calls = calls_after.get(JIT_ROUTE).copied().unwrap_or(0)
        - calls_before.get(JIT_ROUTE).copied().unwrap_or(0);

    // Every job ran once, on a runner of its own.
    let jobs = get_json(&http, &format!("{sim}/_sim/jobs")).await?;
    let jobs = jobs.as_array().context("job list")?;
    let mut runners = HashSet::new();
    for job in jobs {
        if job["status"] == "completed" && job["conclusion"] == "success" {
            figures.completed_success += 1;
        }
        if let Some(runner) = job["runner_name"].as_str() {
            runners.insert(runner.to_owned());
        }
        if let (Some(queued), Some(started)) =
            (timestamp(&job["queued_at"]), timestamp(&job["started_at"]))
        {
            figures
                .waits_ms
                .push((started - queued).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    figures.distinct_runners = runners.len();

    // What the registry holds: live runners and the history.
    let list = get_json(&http, &format!("{base}/runners")).await?;
    let now = Utc::now();
    for runner in list["runners"].as_array().into_iter().flatten() {
        if runner["container_id"].is_null() {
            figures.history += 1;
            if let Some(at) = timestamp(&runner["updated_at"]) {
                let age = (now - at).num_milliseconds() as f64 / 1000.0;
                figures.oldest_history_age = figures.oldest_history_age.max(age);
            }
        } else {
            figures.live_after += 1;
        }
    }
    figures.runners_ms_after = latencies(&http, &format!("{base}/runners")).await?;
    if knobs.history_seconds <= 120 {
        tokio::time::sleep(Duration::from_secs(knobs.history_seconds + 2)).await;
        let list = get_json(&http, &format!("{base}/runners")).await?;
        figures.history_expired = list["total"].as_u64().map(|n| n as usize);
        figures.runners_ms_expired = latencies(&http, &format!("{base}/runners")).await?;
        figures.rss_expired_mb = Some(orchestrator.rss_mb()?);
    }

    // Nothing left behind.
    figures.leaks.containers = instance_containers(docker, &orchestrator.instance)
        .await?
        .len();
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{INSTANCE_LABEL}={}", orchestrator.instance)],
    )]);
    figures.leaks.networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters),
        }))
        .await?
        .len();
    figures.leaks.registrations = get_json(&http, &format!("{sim}/_sim/runners"))
        .await?
        .as_array()
        .map_or(0, Vec::len);
    Ok(figures)
}

fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    Some(
        DateTime::parse_from_rfc3339(value.as_str()?)
            .ok()?
            .with_timezone(&Utc),
    )
}

/// Where a container's life went under churn, on the engine's clock.
fn phase_row(direct: &Phases, runners: &Phases) -> Row {
    let show = |p: &Phases| {
        format!(
            "{:.0} / {:.0} / {:.0} / {:.0} ms (life {:.0} ms; {} containers)",
            p.create_to_start,
            p.start_to_die,
            p.die_to_destroy,
            p.destroy_to_next_create,
            p.create_to_destroy,
            p.containers
        )
    };
    Row {
        name: "churn: a container's life, medians from Docker's events: create → start / start → exit (the job; a runner also connects and reports) / exit → removed / removed → next create".into(),
        baseline: format!("Docker direct: {}", show(direct)),
        measured: show(runners),
        ratio: format!("{:.2}", runners.create_to_destroy / direct.create_to_destroy),
        goal: "—".into(),
    }
}

fn churn_rows(knobs: &Knobs, direct: &DirectChurn, churn: &Churn) -> Vec<Row> {
    let jobs = knobs.jobs;
    let per_minute = |d: Duration| jobs as f64 / d.as_secs_f64() * 60.0;
    let direct_rate = per_minute(direct.elapsed);
    let direct_waits = &direct.waits_ms;
    let rate = per_minute(churn.until_clean);
    let waits = |s: &[f64]| {
        format!(
            "{:.1} / {:.1} / {:.1} s",
            percentile(s, 50.0) / 1000.0,
            percentile(s, 95.0) / 1000.0,
            percentile(s, 100.0) / 1000.0
        )
    };
    let mut exactly_once = format!(
        "{}/{jobs} completed `success`, on {} distinct runners; {} JIT configurations",
        churn.completed_success, churn.distinct_runners, churn.jit_calls
    );
    let once = churn.completed_success == jobs
        && churn.distinct_runners == jobs
        && churn.jit_calls == jobs as i64;
    if !once {
        exactly_once.push_str(" (NOT exactly once)");
    }
    let mut retained = format!(
        "{} finished runners in history, the oldest {:.0} s old; {} live",
        churn.history, churn.oldest_history_age, churn.live_after
    );
    if let Some(expired) = churn.history_expired {
        let _ = write!(
            retained,
            "; {expired} after another {} s",
            knobs.history_seconds
        );
    }
    let leaks = &churn.leaks;
    let mut rows = vec![
        Row {
            name: format!(
                "churn: {jobs} jobs of {:.1} s in waves of {}, MAX_RUNNERS={}, webhooks: jobs per minute (first wave → nothing left; {:.1} s to the last job's end; containers alive on average, most)",
                knobs.job_ms as f64 / 1000.0,
                knobs.wave,
                knobs.max_runners,
                churn.until_completed.as_secs_f64()
            ),
            baseline: format!(
                "Docker direct, {} at a time: {direct_rate:.0}/min ({:.1} s; {:.1}, {:.0})",
                knobs.max_runners,
                direct.elapsed.as_secs_f64(),
                mean(&direct.occupancy),
                percentile(&direct.occupancy, 100.0)
            ),
            measured: format!(
                "{rate:.0}/min ({:.1} s; {:.1}, {:.0})",
                churn.until_clean.as_secs_f64(),
                mean(&churn.occupancy),
                percentile(&churn.occupancy, 100.0)
            ),
            ratio: format!("{:.2}", rate / direct_rate),
            goal: "≥ 0.9".into(),
        },
        Row {
            name: "churn: job queued → started (median / p95 / max)".into(),
            baseline: format!(
                "Docker direct, wave → container started: {}",
                waits(direct_waits)
            ),
            measured: waits(&churn.waits_ms),
            ratio: format!(
                "{:.2}",
                percentile(&churn.waits_ms, 50.0) / percentile(direct_waits, 50.0)
            ),
            goal: "—".into(),
        },
        Row {
            name: "churn: every job run exactly once".into(),
            baseline: "—".into(),
            measured: exactly_once,
            ratio: "—".into(),
            goal: "each job once, one runner each".into(),
        },
        Row {
            name: "churn: orchestrator CPU per runner lifecycle (user + system); GitHub calls per job".into(),
            baseline: "—".into(),
            measured: format!(
                "{:.1} ms; {:.2} calls",
                churn.cpu_seconds / jobs as f64 * 1000.0,
                churn.github_calls as f64 / jobs as f64
            ),
            ratio: "—".into(),
            goal: "—".into(),
        },
        Row {
            name: format!("drift: orchestrator RSS after the churn (max during it {:.1} MB)", churn.rss_max_mb),
            baseline: format!("after the first {} jobs: {:.1} MB", jobs.min(100), churn.rss_after_first_100_mb),
            measured: format!(
                "{:.1} MB{}",
                churn.rss_end_mb,
                churn
                    .rss_expired_mb
                    .map_or(String::new(), |r| format!(" ({r:.1} MB once the history expired)"))
            ),
            ratio: format!("{:.2}", churn.rss_end_mb / churn.rss_after_first_100_mb),
            goal: "≤ 1.10".into(),
        },
        Row {
            name: format!(
                "drift: what GET /runners holds after the churn (RUNNER_HISTORY_SECONDS={})",
                knobs.history_seconds
            ),
            baseline: "—".into(),
            measured: retained,
            ratio: "—".into(),
            goal: format!("only runners finished in the last {} s", knobs.history_seconds),
        },
        Row {
            name: "drift: left behind after the churn: containers / networks / volumes / registrations".into(),
            baseline: "—".into(),
            measured: format!(
                "{} / {} / {} / {}",
                leaks.containers,
                leaks.networks,
                leaks.volumes.len(),
                leaks.registrations
            ),
            ratio: "—".into(),
            goal: "0 / 0 / 0 / 0".into(),
        },
    ];
    if !churn.runners_ms_after.is_empty() {
        let expired = if churn.runners_ms_expired.is_empty() {
            String::new()
        } else {
            format!(
                "; {:.2} ms once it expired",
                median(&churn.runners_ms_expired)
            )
        };
        rows.push(Row {
            name: format!(
                "drift: GET /runners with {} runners in history (median of {LATENCY_REQUESTS})",
                churn.history
            ),
            baseline: "—".into(),
            measured: format!("{:.2} ms{expired}", median(&churn.runners_ms_after)),
            ratio: "—".into(),
            goal: "—".into(),
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn the_next_link_is_found_among_others() {
        let header = "<http://h/r?page=2>; rel=\"next\", <http://h/r?page=5>; rel=\"last\"";
        assert_eq!(next_link(header).as_deref(), Some("http://h/r?page=2"));
        assert_eq!(next_link("<http://h/r?page=1>; rel=\"prev\""), None);
    }
}
