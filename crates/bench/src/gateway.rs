//! `bench gateway`: what the gateway costs on the hot read path.
//!
//! `GET /api/v1/runners` through `gha-api-gateway` (valid key, a rate limit
//! too high to throttle) against two baselines measured in the same run with
//! the same load generator: `GET /runners` straight to the orchestrator, and
//! the same through nginx `proxy_pass` (keep-alive upstream, no access log).
//! The orchestrator does no Docker work here: it only lists runners (an
//! empty list), so the figures are the proxies' own overhead.
//!
//! The load generator is in-process: `BENCH_GATEWAY_CONNECTIONS` (default
//! 64) keep-alive HTTP/1.1 connections on loopback, each sending one request
//! after the other for `BENCH_GATEWAY_SECONDS` (default 10), after a one
//! second warm-up. The three targets are measured in 3 rounds, the order
//! rotated each round, and the median of each figure is reported. It parses just enough HTTP (status, `Content-Length` or
//! chunked) to stay cheap, so the machine's cores go to the servers.
//! `BENCH_GATEWAY_BIN` swaps in another gateway binary (e.g. one built with
//! symbols, to profile it with `perf` while the benchmark runs).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use github_sim::SimConfig;
use test_support::{TestDocker, ensure_sim_runner_image, workspace_binary};

use crate::Row;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TOKEN: &str = "bench-token";
const REPO: &str = "bench/app";
const API_KEY: &str = "bench-key-0123456789";

/// Rounds per target; the median of each figure is reported.
const ROUNDS: usize = 3;

/// Runs the benchmark and returns its rows of the result table.
///
/// # Errors
/// When a process does not start or answer, or nginx is not installed.
pub(crate) async fn run() -> anyhow::Result<Vec<Row>> {
    let connections = env_number("BENCH_GATEWAY_CONNECTIONS", 64);
    let seconds = env_number("BENCH_GATEWAY_SECONDS", 10) as u64;
    let duration = Duration::from_secs(seconds);

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
    // Per target: (throughput, p99 in ms) of each round.
    let mut rounds: [Vec<(f64, f64)>; 3] = Default::default();
    for round in 0..ROUNDS {
        // Rotate the order so each target runs first, second and last once.
        for slot in 0..targets.len() {
            let index = (slot + round) % targets.len();
            let (name, addr, path) = targets[index];
            load(addr, path, connections, Duration::from_secs(1)).await?;
            let result = load(addr, path, connections, duration).await?;
            eprintln!(
                "round {}: {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                round + 1,
                result.throughput(),
                result.percentile_ms(50.0),
                result.percentile_ms(99.0),
                result.errors
            );
            if result.errors > 0 {
                bail!("{name}: {} failed requests", result.errors);
            }
            rounds[index].push((result.throughput(), result.percentile_ms(99.0)));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss_kib(gateway.id())?;
    drop(nginx);
    drop(gateway);
    drop(orchestrator);
    drop(docker_env);

    let median = |index: usize| -> (f64, f64) {
        let throughputs: Vec<f64> = rounds[index].iter().map(|r| r.0).collect();
        let p99s: Vec<f64> = rounds[index].iter().map(|r| r.1).collect();
        (
            crate::percentile(&throughputs, 50.0),
            crate::percentile(&p99s, 50.0),
        )
    };
    let [
        (direct_rps, direct_p99),
        (nginx_rps, nginx_p99),
        (gateway_rps, gateway_p99),
    ] = [median(0), median(1), median(2)];
    let what =
        format!("GET /api/v1/runners, {connections} conns × {seconds} s, median of {ROUNDS}");
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
            format!("orchestrator direct: {direct_rps:.0} req/s"),
            format!("gateway: {gateway_rps:.0} req/s"),
            format!("{:.2}", gateway_rps / direct_rps),
            "≥ 0.8",
        ),
        row(
            &format!("{what}: throughput"),
            format!("nginx proxy_pass: {nginx_rps:.0} req/s"),
            format!("gateway: {gateway_rps:.0} req/s"),
            format!("{:.2}", gateway_rps / nginx_rps),
            "≥ 1.0",
        ),
        row(
            &format!("{what}: p99 latency"),
            format!("nginx proxy_pass: {nginx_p99:.2} ms"),
            format!("gateway: {gateway_p99:.2} ms"),
            format!("{:.2}", gateway_p99 / nginx_p99),
            "≤ 1.0",
        ),
        row(
            &format!("{what}: p99 latency"),
            format!("orchestrator direct: {direct_p99:.2} ms"),
            format!("gateway: {gateway_p99:.2} ms"),
            format!("{:.2}", gateway_p99 / direct_p99),
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

/// What one load run measured.
#[derive(Debug)]
struct LoadResult {
    /// Successful (2xx) requests.
    requests: u64,
    /// Non-2xx answers and broken connections.
    errors: u64,
    elapsed: Duration,
    /// Latency of every successful request, in microseconds, sorted.
    latencies_us: Vec<u32>,
}

impl LoadResult {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, percent: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = (percent / 100.0 * self.latencies_us.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies_us.len()) - 1;
        f64::from(self.latencies_us[index]) / 1000.0
    }
}

/// `connections` keep-alive connections to `addr`, each sending
/// `GET path` back to back until `duration` is over.
async fn load(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let request = request_bytes(addr, path);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move { connection_loop(addr, &request, deadline).await })
        })
        .collect();
    let mut result = LoadResult {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (latencies, errors) = task.await?;
        result.requests += latencies.len() as u64;
        result.errors += errors;
        result.latencies_us.extend(latencies);
    }
    result.elapsed = started.elapsed();
    result.latencies_us.sort_unstable();
    Ok(result)
}

/// One client connection: requests until `deadline`, reconnecting after a
/// failure or `Connection: close`. Returns the latencies and the failures.
async fn connection_loop(addr: SocketAddr, request: &[u8], deadline: Instant) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(64 * 1024);
    let mut errors = 0;
    let mut stream: Option<BufReader<TcpStream>> = None;
    while Instant::now() < deadline {
        let mut connection = match stream.take() {
            Some(connection) => connection,
            None => match TcpStream::connect(addr).await {
                Ok(socket) => {
                    let _ = socket.set_nodelay(true);
                    BufReader::new(socket)
                }
                Err(_) => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        let answer = async {
            connection.get_mut().write_all(request).await?;
            read_response(&mut connection, None).await
        }
        .await;
        match answer {
            Ok(response) if (200..300).contains(&response.status) => {
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                if response.keep_alive {
                    stream = Some(connection);
                }
            }
            _ => errors += 1,
        }
    }
    (latencies, errors)
}

/// The request every load connection sends; the key is sent to all three
/// targets so they read the same bytes.
fn request_bytes(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {API_KEY}\r\nAccept: application/json\r\n\r\n"
    )
    .into_bytes()
}

/// A parsed response: status, whether the connection stays open, and (when
/// asked for) the body.
#[derive(Debug)]
struct Response {
    status: u16,
    keep_alive: bool,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 response (`Content-Length` or chunked). The body is
/// kept only when `keep_body` is given, to spare the load loop the copy.
async fn read_response(
    reader: &mut BufReader<TcpStream>,
    keep_body: Option<()>,
) -> std::io::Result<Response> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("status line"))?;
    let mut content_length = None;
    let mut chunked = false;
    let mut keep_alive = true;
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid("header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().map_err(|_| invalid("length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let size_text = line.trim_end().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("chunk size"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    reader.read_line(&mut line).await?;
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await?;
            if keep_body.is_some() {
                body.extend_from_slice(&chunk[..size]);
            }
        }
    } else if let Some(length) = content_length {
        let mut buffer = vec![0; length];
        reader.read_exact(&mut buffer).await?;
        if keep_body.is_some() {
            body = buffer;
        }
    } else if status >= 200 && status != 204 && status != 304 {
        // Delimited by the end of the connection.
        reader.read_to_end(&mut body).await?;
        keep_alive = false;
    }
    Ok(Response {
        status,
        keep_alive,
        body,
    })
}

/// One request on a fresh connection: status and body.
async fn one_request(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let socket = TcpStream::connect(addr).await?;
    let mut reader = BufReader::new(socket);
    reader
        .get_mut()
        .write_all(&request_bytes(addr, path))
        .await?;
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        read_response(&mut reader, Some(())),
    )
    .await
    .context("no answer within 10 s")??;
    Ok((
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    ))
}

/// Waits until `GET path` on `addr` answers 200.
async fn wait_serving(addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = one_request(addr, path).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{addr}{path} did not answer 200 within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resident memory of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
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
