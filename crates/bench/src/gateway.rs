//! `bench gateway`: what the gateway costs on the hot read path.
//!
//! `GET /api/v1/runners` through `gha-api-gateway` (valid key, a rate limit
//! too high to throttle) against two baselines measured in the same run with
//! the same load generator: `GET /runners` straight to the orchestrator, and
//! the same through nginx `proxy_pass` (keep-alive upstream, no access log).
//! The orchestrator does no Docker work here: it only lists runners (an
//! empty list), so the figures are the proxies' own overhead.
//!
//! The load generator is in-process (`test_support::http_load`, shared with
//! the gateway's load test): `BENCH_GATEWAY_CONNECTIONS` (default 64)
//! keep-alive HTTP/1.1 connections on loopback, each sending one request
//! after the other for `BENCH_GATEWAY_SECONDS` (default 10), after a one
//! second warm-up. Only 2xx answers count: any other status, broken
//! connection or request unanswered within 10 s fails the run. The three
//! targets are measured in `BENCH_GATEWAY_ROUNDS` rounds (default 5: on a
//! shared machine one round can be a third off the next), the order
//! rotated each round, and the median of each figure is reported. The generator parses just enough HTTP
//! (status, `Content-Length` or chunked) to stay cheap, so the machine's
//! cores go to the servers.
//! Beside throughput and latency it reports the CPU time (user + system,
//! from `/proc/PID/stat`) each proxy spent per request: on a machine whose
//! cores the load generator and the orchestrator share, that is what
//! decides the throughput ratios.
//!
//! `BENCH_GATEWAY_BIN` swaps in another gateway binary, e.g. the one
//! `cargo build --profile profiling -p gateway` makes (symbols and line
//! tables) at `target/profiling/gha-api-gateway`, to profile it with
//! `perf record -p PID` while the benchmark runs.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use github_sim::SimConfig;
use test_support::{TestDocker, ensure_sim_runner_image, workspace_binary};

use test_support::http_load::{self, LoadResult};

use crate::Row;

const TOKEN: &str = "bench-token";
const REPO: &str = "bench/app";
const API_KEY: &str = "bench-key-0123456789";

/// Runs the benchmark and returns its rows of the result table.
///
/// # Errors
/// When a process does not start or answer, or nginx is not installed.
pub(crate) async fn run() -> anyhow::Result<Vec<Row>> {
    let connections = env_number("BENCH_GATEWAY_CONNECTIONS", 64);
    let seconds = env_number("BENCH_GATEWAY_SECONDS", 10) as u64;
    let duration = Duration::from_secs(seconds);
    let round_count = env_number("BENCH_GATEWAY_ROUNDS", 5);

    let image = ensure_sim_runner_image();
    let docker_env = TestDocker::new();
    let mut sim_config = SimConfig::for_tests("127.0.0.1:0".parse()?);
    sim_config.tokens = vec![TOKEN.to_owned().into()];
    sim_config.repos = vec![REPO.to_owned()];
    let sim = github_sim::spawn(sim_config).await?;

    let orchestrator_port = free_port()?;
    let orchestrator = Process::spawn(
        Command::new(workspace_binary("orchestrator", "gha-orchestrator"))
            .env("ORCHESTRATOR_HOST", "127.0.0.1")
            .env("ORCHESTRATOR_PORT", orchestrator_port.to_string())
            .env("ORCHESTRATOR_ID", &docker_env.id)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_API_URL", sim.url())
            .env("GITHUB_REPOSITORY", REPO)
            .env("RUNNER_IMAGE", image)
            .env("RUNNER_NETWORK", &docker_env.network)
            .env("RUNNER_IMAGE_PULL_INTERVAL_SECONDS", "0")
            .env("AUTOSCALE_POLL_INTERVAL_SECONDS", "0")
            .env("RUST_LOG", "warn"),
        "gha-orchestrator",
    )?;
    let direct = SocketAddr::from(([127, 0, 0, 1], orchestrator_port));
    wait_serving(direct, "/healthz").await?;

    let gateway_port = free_port()?;
    let gateway = Process::spawn(
        Command::new(std::env::var_os("BENCH_GATEWAY_BIN").map_or_else(
            || workspace_binary("gateway", "gha-api-gateway"),
            PathBuf::from,
        ))
        .env("API_GATEWAY_HOST", "127.0.0.1")
        .env("API_GATEWAY_PORT", gateway_port.to_string())
        .env("ORCHESTRATOR_URL", format!("http://{direct}"))
        .env("API_KEYS", API_KEY)
        .env("RATE_LIMIT_PER_SECOND", "1000000")
        .env("RATE_LIMIT_BURST", "1000000")
        .env_remove("RUST_LOG")
        .env_remove("TRUST_PROXY_HEADERS"),
        "gha-api-gateway",
    )?;
    let through_gateway = SocketAddr::from(([127, 0, 0, 1], gateway_port));
    wait_serving(through_gateway, "/healthz").await?;

    let nginx_port = free_port()?;
    let nginx = Nginx::start(nginx_port, direct)?;
    let through_nginx = SocketAddr::from(([127, 0, 0, 1], nginx_port));
    wait_serving(through_nginx, "/api/v1/runners").await?;

    // Every target must answer the real thing before it is timed.
    for (addr, path) in [
        (direct, "/runners"),
        (through_nginx, "/api/v1/runners"),
        (through_gateway, "/api/v1/runners"),
    ] {
        let (status, body) = one_request(addr, path).await?;
        if status != 200 || !body.contains("runners") {
            bail!("GET {path} on {addr} answered {status}: {body}");
        }
    }
    let rss_idle = rss_kib(gateway.id())?;

    let targets = [
        ("orchestrator direct", direct, "/runners"),
        ("nginx proxy_pass", through_nginx, "/api/v1/runners"),
        ("gateway", through_gateway, "/api/v1/runners"),
    ];
    // The processes whose CPU time is the proxying itself (none for the
    // direct target): nginx's master and workers, the gateway.
    let proxy_pids: [Vec<u32>; 3] = [Vec::new(), nginx.pids(), vec![gateway.id()]];
    // Per target: (throughput, p99 in ms, proxy CPU µs per request) of each round.
    let mut rounds: [Vec<(f64, f64, f64)>; 3] = Default::default();
    for round in 0..round_count {
        // Rotate the order so each target runs first, second and last in turn.
        for slot in 0..targets.len() {
            let index = (slot + round) % targets.len();
            let (name, addr, path) = targets[index];
            load(addr, path, connections, Duration::from_secs(1)).await;
            let cpu_before = cpu_ticks(&proxy_pids[index]);
            let result = load(addr, path, connections, duration).await;
            let cpu_us = cpu_ticks(&proxy_pids[index]).saturating_sub(cpu_before) as f64 * 1e6
                / TICKS_PER_SECOND
                / result.answers().max(1) as f64;
            // Anything but a 2xx answer fails the run, broken connections too.
            let errors = result.errors + result.count_outside(200..300);
            eprintln!(
                "round {}: {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                round + 1,
                result.throughput(),
                result.percentile_ms(50.0),
                result.percentile_ms(99.0),
                errors
            );
            if errors > 0 {
                bail!("{name}: {errors} failed requests");
            }
            rounds[index].push((result.throughput(), result.percentile_ms(99.0), cpu_us));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss_kib(gateway.id())?;
    drop(nginx);
    drop(gateway);
    drop(orchestrator);
    drop(docker_env);

    let median = |index: usize| -> (f64, f64, f64) {
        let of = |pick: fn(&(f64, f64, f64)) -> f64| {
            let values: Vec<f64> = rounds[index].iter().map(pick).collect();
            crate::percentile(&values, 50.0)
        };
        (of(|r| r.0), of(|r| r.1), of(|r| r.2))
    };
    let [
        (direct_rps, direct_p99, _),
        (nginx_rps, nginx_p99, nginx_cpu),
        (gateway_rps, gateway_p99, gateway_cpu),
    ] = [median(0), median(1), median(2)];
    let what =
        format!("GET /api/v1/runners, {connections} conns × {seconds} s, median of {round_count}");
    let row = |name: &str, baseline: String, measured: String, ratio: String, goal: &str| Row {
        name: name.to_owned(),
        baseline,
        measured,
        ratio,
        goal: goal.to_owned(),
    };
    Ok(vec![
        row(
            &format!("{what}: throughput"),
            format!("nginx proxy_pass: {nginx_rps:.0} req/s"),
            format!("gateway: {gateway_rps:.0} req/s"),
            format!("{:.2}", gateway_rps / nginx_rps),
            "≥ 0.8",
        ),
        row(
            &format!("{what}: p99 latency"),
            format!("nginx proxy_pass: {nginx_p99:.2} ms"),
            format!("gateway: {gateway_p99:.2} ms"),
            format!("{:.2}", gateway_p99 / nginx_p99),
            "≤ 1.25",
        ),
        row(
            &format!("{what}: throughput"),
            format!("orchestrator direct: {direct_rps:.0} req/s"),
            format!("gateway: {gateway_rps:.0} req/s"),
            format!("{:.2}", gateway_rps / direct_rps),
            "—",
        ),
        row(
            &format!("{what}: p99 latency"),
            format!("orchestrator direct: {direct_p99:.2} ms"),
            format!("gateway: {gateway_p99:.2} ms"),
            format!("{:.2}", gateway_p99 / direct_p99),
            "—",
        ),
        row(
            &format!("{what}: CPU time of the proxy per request (user + system, /proc)"),
            format!("nginx proxy_pass: {nginx_cpu:.1} µs"),
            format!("gateway: {gateway_cpu:.1} µs"),
            format!("{:.2}", gateway_cpu / nginx_cpu),
            "—",
        ),
        row(
            "gateway memory (VmRSS) idle after start / after the load",
            "—".to_owned(),
            format!(
                "{:.1} MB / {:.1} MB",
                rss_idle as f64 / 1024.0,
                rss_after as f64 / 1024.0
            ),
            "—".to_owned(),
            "idle ≤ 20 MB",
        ),
    ])
}

/// Per-request limit of the load loop: a request with no complete answer
/// by then counts as failed (so a hung server fails the run, not hangs it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `connections` keep-alive connections to `addr`, each sending
/// `GET path` back to back until `duration` is over.
async fn load(addr: SocketAddr, path: &str, connections: usize, duration: Duration) -> LoadResult {
    let request = request_bytes(addr, path);
    http_load::load(addr, connections, duration, REQUEST_TIMEOUT, |_| {
        request.clone()
    })
    .await
}

/// The request every load connection sends; the key is sent to all three
/// targets so they read the same bytes.
fn request_bytes(addr: SocketAddr, path: &str) -> Vec<u8> {
    http_load::get_request(
        addr,
        path,
        &[("X-API-Key", API_KEY), ("Accept", "application/json")],
    )
}

/// One request on a fresh connection: status and body.
async fn one_request(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    Ok(http_load::one_request(addr, &request_bytes(addr, path), Duration::from_secs(10)).await?)
}

/// Waits until `GET path` on `addr` answers 200.
async fn wait_serving(addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    http_load::wait_serving(addr, &request_bytes(addr, path), Duration::from_secs(30))
        .await
        .with_context(|| format!("{addr}{path} did not answer 200 within 30 s"))
}

/// Resident memory of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    http_load::rss_kib(pid).with_context(|| format!("read VmRSS of process {pid}"))
}

/// `/proc/PID/stat` counts CPU time in clock ticks of 1/100 s (Linux's
/// `USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time (user + system, in ticks) used so far by `pids`, threads
/// included; a process that is gone counts 0.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name, which may hold spaces: state is
            // field 3, utime 14, stime 15.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .sum()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// A child process with its output discarded, killed on drop.
#[derive(Debug)]
struct Process(Child);

impl Process {
    fn spawn(command: &mut Command, name: &str) -> anyhow::Result<Self> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {name}"))?;
        Ok(Self(child))
    }

    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx in the foreground with a configuration of its own in a temporary
/// directory (pid file, logs and temp paths included), removed on drop.
#[derive(Debug)]
struct Nginx {
    process: Process,
    dir: PathBuf,
}

impl Nginx {
    fn start(port: u16, upstream: SocketAddr) -> anyhow::Result<Self> {
        let binary =
            find_on_path("nginx").context("nginx is not installed (apt-get install -y nginx)")?;
        let dir = std::env::temp_dir().join(format!("bench-nginx-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs"))?;
        let config = dir.join("nginx.conf");
        std::fs::write(&config, nginx_config(&dir, port, upstream))?;
        let process = Process::spawn(
            Command::new(binary)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&config)
                .args(["-g", "daemon off;"]),
            "nginx",
        )?;
        Ok(Self { process, dir })
    }
}

impl Nginx {
    /// The master and its worker processes.
    fn pids(&self) -> Vec<u32> {
        let master = self.process.id();
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default();
        std::iter::once(master)
            .chain(children.split_whitespace().filter_map(|p| p.parse().ok()))
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL of the master leaves the workers; SIGQUIT makes them all go.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.process.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.process.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain reverse proxy, tuned the way one would for this: as many workers
/// as cores, keep-alive to the upstream, no access log.
fn nginx_config(dir: &Path, port: u16, upstream: SocketAddr) -> String {
    let dir = dir.display();
    format!(
        r#"worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/logs/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream orchestrator {{
        server {upstream};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /api/v1/runners {{
            proxy_pass http://orchestrator/runners;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#
    )
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
