//! The Docker-inside-jobs benchmark: what a runner's private Docker engine
//! (a pool with `docker = "sidecar"`) adds to the runner's start.
//!
//! One orchestrator, one pools file of two pools that differ only in
//! `docker` (`none` against `sidecar`; and in one label, since two pools
//! with the same label set are refused), so both sides run in the same
//! process on the same engine. Each round, in alternating order, and for
//! each pool:
//!
//! - one runner through `POST /runners/create`: the time to the answer (the
//!   runner's container started; with a sidecar, after its engine answered),
//!   to the runner online at the simulator (its own connection), and to
//!   `idle` in `GET /runners/{id}/status` (which follows GitHub's runner
//!   list, read every reconcile pass: `RECONCILE_INTERVAL_SECONDS=1` here);
//! - a burst of `BENCH_DOCKER_BURST` (5) runners in one create, to the
//!   answer (201; on a 202 the same request is repeated with its
//!   `Idempotency-Key` until the batch's outcome).
//!
//! Every round's runners are deleted, and the next part starts only once no
//! container, engine volume or registration of them is left.
//!
//! Where the sidecar's time goes, for the single runners: Docker's events
//! (the engine's and the runner's create and start, see [`crate::phases`])
//! and the engine's own log (dockerd's "Starting up", "Loading containers"
//! and "API listen on" lines, timestamped by Docker on the same clock), cut
//! at the request's send and the answer's arrival.
//!
//! Knobs (environment): `BENCH_DOCKER_ROUNDS` (5; medians with min–max) and
//! `BENCH_DOCKER_BURST` (5). Everything carries the benchmark's instance id
//! ([`TestDocker`]'s), so its drop removes what is left, engines and their
//! volumes included, even when a part fails. Every wait is bounded.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
};
use chrono::DateTime;
use futures::StreamExt;
use futures::future::join_all;
use github_sim::{RunningSim, SimConfig};
use serde_json::{Value, json};
use test_support::{TestDocker, ensure_dind_image, unique_id};

use crate::phases::{PhaseRecorder, Timelines};
use crate::{ChildGuard, Row, percentile, wait_until};

const TOKEN: &str = "bench-token";
const REPO: &str = "bench/app";
/// The pool without Docker, the baseline.
const PLAIN: &str = "plain";
/// The pool whose runners each get an engine.
const SIDECAR: &str = "docker";
/// The label the orchestrator puts on what it owns, valued with its instance id.
const INSTANCE_LABEL: &str = "dev.gha-runners.instance";
/// The label of an engine's container and volumes, valued with its runner.
const ENGINE_OF_LABEL: &str = "dev.gha-runners.engine-of";
/// Between two looks at a starting runner (the simulator, the orchestrator).
const POLL: Duration = Duration::from_millis(25);
/// How long a runner may take to come online, or a round to be cleared.
const LIMIT: Duration = Duration::from_secs(120);
const GOAL: &str = "report only: the engine's own start";

/// Runs the benchmark (`rounds` rounds, bursts of `burst`); returns its
/// table rows.
pub(crate) async fn run(
    orchestrator_bin: &Path,
    image: &str,
    rounds: usize,
    burst: usize,
) -> anyhow::Result<Vec<Row>> {
    let (rounds, burst) = (rounds.max(1), burst.max(1));
    let engine_image = ensure_dind_image();
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
    // Declared before the orchestrator, so dropped after it: on an early
    // return the orchestrator is killed first, then everything is removed.
    let env = TestDocker::new();
    let pools = PoolsFile::write(&env.id, engine_image, burst)?;
    let sim = start_sim(&env).await?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");
    let log = std::env::temp_dir().join(format!("gha-bench-docker-{}.log", env.id));
    let log_file = std::fs::File::create(&log)?;
    let mut orchestrator = ChildGuard(
        Command::new(orchestrator_bin)
            .env("ORCHESTRATOR_HOST", "127.0.0.1")
            .env("ORCHESTRATOR_PORT", port.to_string())
            .env("ORCHESTRATOR_ID", &env.id)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_API_URL", sim.url())
            .env("GITHUB_REPOSITORY", REPO)
            .env("RUNNER_IMAGE", image)
            .env("RUNNER_NETWORK", &env.network)
            .env("RUNNER_POOLS_FILE", &pools.path)
            .env("RUNNER_IMAGE_PULL_INTERVAL_SECONDS", "0")
            .env("AUTOSCALE_POLL_INTERVAL_SECONDS", "0")
            .env("RECONCILE_INTERVAL_SECONDS", "1")
            .env("MAX_RUNNERS", (2 * burst).to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("start gha-orchestrator")?,
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    wait_until(Duration::from_secs(30), || async {
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await
    .with_context(|| format!("the orchestrator did not serve; see {}", log.display()))?;

    let bench = Bench {
        http,
        base,
        sim: sim.url(),
        docker,
        instance: env.id.clone(),
    };
    let recorder = PhaseRecorder::start(&bench.docker, INSTANCE_LABEL, &env.id);
    let mut plain = PoolFigures::default();
    let mut sidecar = PoolFigures::default();
    for round in 0..rounds {
        // Alternate the order so neither pool always runs on a warmer engine.
        let order = if round % 2 == 0 {
            [(PLAIN, &mut plain), (SIDECAR, &mut sidecar)]
        } else {
            [(SIDECAR, &mut sidecar), (PLAIN, &mut plain)]
        };
        for (pool, figures) in order {
            let single = bench
                .single(pool)
                .await
                .with_context(|| format!("pool {pool}, round {}", round + 1))?;
            let burst_ms = bench
                .burst(pool, burst)
                .await
                .with_context(|| format!("pool {pool}, burst, round {}", round + 1))?;
            eprintln!(
                "docker: round {}, pool {pool}: answered {:.0} ms, online {:.0} ms, idle {:.0} ms; burst of {burst} {burst_ms:.0} ms (load {})",
                round + 1,
                single.answered_ms,
                single.online_ms,
                single.idle_ms,
                load_average()
            );
            figures.burst_ms.push(burst_ms);
            figures.singles.push(single);
        }
    }
    let timelines = recorder.finish_by_name();
    orchestrator.stop();
    sim.shutdown().await;
    let _ = std::fs::remove_file(&log);
    Ok(rows(&plain, &sidecar, &timelines, rounds, burst))
}

/// What the rounds talk to.
struct Bench {
    http: reqwest::Client,
    /// The orchestrator's base URL.
    base: String,
    /// The simulator's base URL.
    sim: String,
    docker: Docker,
    /// The orchestrator's instance id (the value of [`INSTANCE_LABEL`]).
    instance: String,
}

/// One pool's figures over the rounds.
#[derive(Debug, Default)]
struct PoolFigures {
    singles: Vec<Single>,
    /// Milliseconds until a burst's create was answered 201.
    burst_ms: Vec<f64>,
}

impl PoolFigures {
    fn samples(&self, of: impl Fn(&Single) -> f64) -> Vec<f64> {
        self.singles.iter().map(of).collect()
    }
}

/// One runner created on its own.
#[derive(Debug)]
struct Single {
    runner: String,
    /// Wall clock (ns since the epoch) when the create was sent and when
    /// its answer came, to cut Docker's events with.
    sent_ns: i64,
    answered_ns: i64,
    answered_ms: f64,
    online_ms: f64,
    idle_ms: f64,
    /// The engine's own start, from its log (sidecar pool only).
    engine: Option<EngineLog>,
}

/// When dockerd in an engine container wrote its milestones (ns since the
/// epoch, as Docker timestamped the lines).
#[derive(Debug, Clone, Copy)]
struct EngineLog {
    starting_up: i64,
    loading_start: i64,
    loading_done: i64,
    api_listen: i64,
}

impl Bench {
    /// One runner of `pool`: created, followed until online and idle, then
    /// deleted and cleared.
    async fn single(&self, pool: &str) -> anyhow::Result<Single> {
        let sent_ns = now_ns();
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/runners/create", self.base))
            .json(&json!({"count": 1, "pool": pool}))
            .send()
            .await?;
        let answered_ms = ms(started.elapsed());
        let answered_ns = now_ns();
        let status = response.status();
        let body: Value = response.json().await?;
        if status != 201 {
            bail!("create answered {status}: {body}");
        }
        let runner = body["runners"][0]["id"]
            .as_str()
            .context("no runner id in the create's answer")?
            .to_owned();
        let (mut online_ms, mut idle_ms) = (None, None);
        let deadline = Instant::now() + LIMIT;
        while online_ms.is_none() || idle_ms.is_none() {
            if online_ms.is_none() && self.online_at_sim(&runner).await? {
                online_ms = Some(ms(started.elapsed()));
            }
            if idle_ms.is_none() {
                let shown = self.get(&format!("/runners/{runner}/status")).await?;
                match shown["state"].as_str() {
                    Some("idle") => idle_ms = Some(ms(started.elapsed())),
                    Some("failed" | "finished" | "removing") => {
                        bail!("runner {runner} stopped before it was idle: {shown}")
                    }
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                bail!("runner {runner} was not online and idle within {LIMIT:?}");
            }
            tokio::time::sleep(POLL).await;
        }
        let engine = if pool == SIDECAR {
            Some(self.engine_log(&format!("{runner}-docker")).await?)
        } else {
            None
        };
        self.delete_and_clear(std::slice::from_ref(&runner)).await?;
        Ok(Single {
            runner,
            sent_ns,
            answered_ns,
            answered_ms,
            online_ms: online_ms.unwrap_or_default(),
            idle_ms: idle_ms.unwrap_or_default(),
            engine,
        })
    }

    /// `size` runners of `pool` in one create, timed to its 201; then
    /// deleted and cleared (untimed).
    async fn burst(&self, pool: &str, size: usize) -> anyhow::Result<f64> {
        let key = unique_id();
        let started = Instant::now();
        let deadline = started + LIMIT;
        let body = loop {
            let response = self
                .http
                .post(format!("{}/runners/create", self.base))
                .header("Idempotency-Key", &key)
                .json(&json!({"count": size, "pool": pool}))
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await?;
            match status.as_u16() {
                201 => break body,
                // The batch outlived the request's wait: ask again for its outcome.
                202 if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => bail!("create of {size} answered {status}: {body}"),
            }
        };
        let elapsed = ms(started.elapsed());
        let runners: Vec<String> = body["runners"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect();
        if runners.len() != size {
            bail!("create of {size} gave {} runners: {body}", runners.len());
        }
        self.delete_and_clear(&runners).await?;
        Ok(elapsed)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await?
            .json()
            .await?)
    }

    async fn registrations(&self) -> anyhow::Result<Vec<Value>> {
        let listed: Value = self
            .http
            .get(format!("{}/_sim/runners", self.sim))
            .send()
            .await?
            .json()
            .await?;
        Ok(listed.as_array().cloned().unwrap_or_default())
    }

    async fn online_at_sim(&self, runner: &str) -> anyhow::Result<bool> {
        Ok(self
            .registrations()
            .await?
            .iter()
            .any(|r| r["name"] == runner && r["status"] == "online"))
    }

    /// Deletes `runners`, then waits until none of the orchestrator's
    /// runners is live and no container, engine volume or registration of
    /// them is left.
    async fn delete_and_clear(&self, runners: &[String]) -> anyhow::Result<()> {
        let answers = join_all(runners.iter().map(|id| {
            self.http
                .delete(format!("{}/runners/{id}?force=true", self.base))
                .send()
        }))
        .await;
        for answer in answers {
            let status = answer?.status();
            if !(status.is_success() || status == 404) {
                bail!("delete answered {status}");
            }
        }
        wait_until(LIMIT, || async { self.cleared().await.unwrap_or(false) })
            .await
            .context("the round's runners, engines and volumes to go")
    }

    async fn cleared(&self) -> anyhow::Result<bool> {
        let listed = self.get("/runners").await?;
        let live = listed["runners"].as_array().into_iter().flatten().any(|r| {
            matches!(
                r["state"].as_str(),
                Some("starting" | "idle" | "busy" | "removing")
            )
        });
        if live || !self.registrations().await?.is_empty() {
            return Ok(false);
        }
        let owned = HashMap::from([("label", vec![format!("{INSTANCE_LABEL}={}", self.instance)])]);
        let containers = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&owned)
                    .build(),
            ))
            .await?;
        if !containers.is_empty() {
            return Ok(false);
        }
        let engine_volumes = HashMap::from([(
            "label",
            vec![
                format!("{INSTANCE_LABEL}={}", self.instance),
                ENGINE_OF_LABEL.to_owned(),
            ],
        )]);
        let volumes = self
            .docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::default()
                    .filters(&engine_volumes)
                    .build(),
            ))
            .await?;
        Ok(volumes.volumes.unwrap_or_default().is_empty())
    }

    /// dockerd's milestones in the log of container `engine`.
    async fn engine_log(&self, engine: &str) -> anyhow::Result<EngineLog> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .build();
        let mut lines = Vec::new();
        let mut logs = self.docker.logs(engine, Some(options));
        let read = async {
            while let Some(line) = logs.next().await {
                lines.push(line?.to_string());
            }
            Ok::<_, bollard::errors::Error>(())
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .context("reading the engine's log")??;
        let when = |marker: &str| {
            lines
                .iter()
                .filter(|l| l.contains(marker))
                .find_map(|l| line_time(l))
                .with_context(|| format!("no {marker:?} in the log of {engine}"))
        };
        Ok(EngineLog {
            starting_up: when("Starting up")?,
            loading_start: when("Loading containers: start")?,
            loading_done: when("Loading containers: done")?,
            api_listen: when("API listen on")?,
        })
    }
}

/// The time Docker put in front of a log line (`--timestamps`), in ns.
fn line_time(line: &str) -> Option<i64> {
    let (stamp, _) = line.split_once(' ')?;
    DateTime::parse_from_rfc3339(stamp)
        .ok()?
        .timestamp_nanos_opt()
}

/// The pools file the orchestrator reads, removed on drop.
struct PoolsFile {
    path: PathBuf,
}

impl PoolsFile {
    fn write(id: &str, engine_image: &str, max: usize) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("gha-bench-pools-{id}.toml"));
        // The same pool twice but for `docker` (and one label: two pools
        // with the same label set are refused).
        let text = format!(
            r#"
[[pool]]
name = "{PLAIN}"
labels = ["self-hosted", "linux", "x64"]
docker = "none"
max = {max}

[[pool]]
name = "{SIDECAR}"
labels = ["self-hosted", "linux", "x64", "docker"]
docker = "sidecar"
docker_image = "{engine_image}"
# This host refuses --privileged: the explicit capability set.
docker_privileged = false
max = {max}
"#
        );
        std::fs::write(&path, text)?;
        Ok(Self { path })
    }
}

impl Drop for PoolsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The simulator on the benchmark's network, with budgets no run reaches.
async fn start_sim(env: &TestDocker) -> anyhow::Result<RunningSim> {
    let mut config = SimConfig::for_tests(SocketAddr::new(env.gateway, 0));
    config.tokens = vec![TOKEN.to_owned().into()];
    config.repos = vec![REPO.to_owned()];
    config.rate_limit_per_hour = 1_000_000;
    config.registration_rate_limit_per_hour = 1_000_000;
    Ok(github_sim::spawn(config).await?)
}

fn rows(
    plain: &PoolFigures,
    sidecar: &PoolFigures,
    timelines: &Timelines,
    rounds: usize,
    burst: usize,
) -> Vec<Row> {
    let compare = |name: String, base: Vec<f64>, measured: Vec<f64>| {
        let (b, m) = (percentile(&base, 50.0), percentile(&measured, 50.0));
        Row {
            name,
            baseline: format!("`docker = \"none\"`: {}", spread(&base)),
            measured: format!("`docker = \"sidecar\"`: {}", spread(&measured)),
            ratio: format!("{:.2} (+{:.0} ms)", m / b, m - b),
            goal: GOAL.into(),
        }
    };
    let of = |what: &str| format!("Docker inside jobs: {what} (median of {rounds}, min–max)");
    let mut rows = vec![
        compare(
            of("create 1 runner → `POST /runners/create` answered"),
            plain.samples(|s| s.answered_ms),
            sidecar.samples(|s| s.answered_ms),
        ),
        compare(
            of("create 1 runner → online at GitHub (the simulator)"),
            plain.samples(|s| s.online_ms),
            sidecar.samples(|s| s.online_ms),
        ),
        compare(
            of("create 1 runner → `idle` in `GET /runners/{id}/status` (reconcile every 1 s)"),
            plain.samples(|s| s.idle_ms),
            sidecar.samples(|s| s.idle_ms),
        ),
        compare(
            of(&format!(
                "burst of {burst} runners in one create → answered"
            )),
            plain.burst_ms.clone(),
            sidecar.burst_ms.clone(),
        ),
    ];
    rows.push(Row {
        name: "Docker inside jobs: where 1 runner's create goes (medians; Docker's events and the engine's log)".into(),
        baseline: show(&plain_steps(plain, timelines)),
        measured: show(&sidecar_steps(sidecar, timelines)),
        ratio: "—".into(),
        goal: "—".into(),
    });
    rows
}

/// Median, then min–max, in ms.
fn spread(samples: &[f64]) -> String {
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.0} ms ({min:.0}–{max:.0})", percentile(samples, 50.0))
}

/// Named steps, each with its samples in ms. Each step runs from the end of
/// the one before: for a sidecar runner, the request's send → the engine
/// container's `create` event ("to engine create": the JIT configuration,
/// three volumes and the create call) → its `start` → dockerd's "Starting
/// up" ("entrypoint": the cgroup mounts) → "Loading containers: start"
/// ("containerd": containerd and the storage driver) → "Loading containers:
/// done" ("networks": the engine's bridge and iptables rules) → "API listen
/// on" → the runner's `create` ("readiness poll": until the orchestrator's
/// `docker version` by exec succeeds, every 250 ms) → its `start` → the
/// answer.
type Steps = Vec<(&'static str, Vec<f64>)>;

fn show(steps: &Steps) -> String {
    steps
        .iter()
        .map(|(name, samples)| format!("{name} {:.0}", percentile(samples, 50.0)))
        .collect::<Vec<_>>()
        .join(" / ")
        + " ms"
}

/// Adds one runner's step durations (from consecutive instants) to `steps`.
fn push_steps(steps: &mut Steps, names: &[&'static str], instants: &[i64]) {
    if steps.is_empty() {
        steps.extend(names.iter().map(|n| (*n, Vec::new())));
    }
    for (i, pair) in instants.windows(2).enumerate() {
        steps[i].1.push((pair[1] - pair[0]) as f64 / 1e6);
    }
}

fn plain_steps(figures: &PoolFigures, timelines: &Timelines) -> Steps {
    let names = ["to runner create", "runner start", "answer"];
    let mut steps = Steps::new();
    for single in &figures.singles {
        let Some(runner) = timelines.get(&single.runner) else {
            continue;
        };
        let (Some(create), Some(start)) = (runner.get("create"), runner.get("start")) else {
            continue;
        };
        push_steps(
            &mut steps,
            &names,
            &[single.sent_ns, *create, *start, single.answered_ns],
        );
    }
    steps
}

fn sidecar_steps(figures: &PoolFigures, timelines: &Timelines) -> Steps {
    let names = [
        "to engine create",
        "engine start",
        "entrypoint",
        "containerd",
        "networks",
        "API",
        "readiness poll",
        "runner start",
        "answer",
    ];
    let mut steps = Steps::new();
    for single in &figures.singles {
        let engine_name = format!("{}-docker", single.runner);
        let (Some(runner), Some(engine), Some(log)) = (
            timelines.get(&single.runner),
            timelines.get(&engine_name),
            single.engine,
        ) else {
            continue;
        };
        let instants = [
            Some(single.sent_ns),
            engine.get("create").copied(),
            engine.get("start").copied(),
            Some(log.starting_up),
            Some(log.loading_start),
            Some(log.loading_done),
            Some(log.api_listen),
            runner.get("create").copied(),
            runner.get("start").copied(),
            Some(single.answered_ns),
        ];
        let Some(instants) = instants.into_iter().collect::<Option<Vec<i64>>>() else {
            continue;
        };
        push_steps(&mut steps, &names, &instants);
    }
    steps
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The 1-minute load average, as `/proc/loadavg` gives it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_runners_steps_pair_it_with_its_engine_and_its_log() {
        let ms = |n: i64| n * 1_000_000;
        let timeline = |create: i64, start: i64| {
            HashMap::from([
                ("create".to_owned(), ms(create)),
                ("start".to_owned(), ms(start)),
            ])
        };
        let timelines = Timelines::from([
            ("r1".to_owned(), timeline(2000, 2100)),
            ("r1-docker".to_owned(), timeline(50, 500)),
            // Another runner's engine, not paired with r1.
            ("r2-docker".to_owned(), timeline(0, 1)),
        ]);
        let figures = PoolFigures {
            singles: vec![Single {
                runner: "r1".into(),
                sent_ns: 0,
                answered_ns: ms(2110),
                answered_ms: 2110.0,
                online_ms: 2200.0,
                idle_ms: 3000.0,
                engine: Some(EngineLog {
                    starting_up: ms(900),
                    loading_start: ms(1200),
                    loading_done: ms(1600),
                    api_listen: ms(1700),
                }),
            }],
            burst_ms: vec![],
        };
        let steps = sidecar_steps(&figures, &timelines);
        let medians: Vec<f64> = steps.iter().map(|(_, s)| s[0]).collect();
        assert_eq!(
            medians,
            [50.0, 450.0, 400.0, 300.0, 400.0, 100.0, 300.0, 100.0, 10.0]
        );
        assert_eq!(
            medians.iter().sum::<f64>(),
            2110.0,
            "the steps add up to the answer"
        );
    }

    #[test]
    fn a_log_lines_time_is_dockers_timestamp() {
        let line = r#"2026-12-03T07:57:57.554779756Z time="2026-12-03T07:57:57.55Z" level=info msg="API listen on /run/gha-docker/docker.sock""#;
        assert_eq!(line_time(line), Some(1_796_284_677_554_779_756));
        assert_eq!(line_time("no timestamp"), None);
    }
}
