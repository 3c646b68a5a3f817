//! Test harness: the real `gha-api-gateway` binary on a free port, a
//! recording stand-in for the orchestrator's HTTP surface, and upstreams
//! that never answer or do not exist.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// The key every test gateway accepts unless a test says otherwise.
pub(crate) const KEY: &str = "test-key-0123456789";

/// Every variable the gateway reads; cleared so the caller's environment
/// cannot change a test.
const GATEWAY_VARS: [&str; 17] = [
    "API_GATEWAY_HOST",
    "API_GATEWAY_PORT",
    "API_GATEWAY_WORKERS",
    "API_GATEWAY_MAX_CONNECTIONS",
    "ORCHESTRATOR_URL",
    "API_KEYS",
    "API_KEYS_FILE",
    "API_AUTH",
    "RATE_LIMIT_PER_SECOND",
    "RATE_LIMIT_BURST",
    "TRUST_PROXY_HEADERS",
    "CORS_ORIGINS",
    "UPSTREAM_TIMEOUT_SECONDS",
    "MAX_BODY_BYTES",
    "LOG_FORMAT",
    "RUST_LOG",
    "NO_COLOR",
];

/// A running gateway process, killed when dropped.
#[derive(Debug)]
pub(crate) struct TestGateway {
    child: Child,
    /// The port it bound.
    pub(crate) port: u16,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// A client that follows no redirects.
    pub(crate) client: reqwest::Client,
    /// Every line of its log.
    log: Arc<Mutex<Vec<String>>>,
}

/// The gateway's command in front of `orchestrator_url`, with
/// `API_KEYS=KEY`, a generous rate limit, and `env` on top.
fn command(orchestrator_url: &str, env: &[(&str, &str)]) -> Command {
    command_as(&[], orchestrator_url, env)
}

/// [`command`], run through `runner` (e.g. `setpriv` and its arguments)
/// when it is not empty.
fn command_as(runner: &[&str], orchestrator_url: &str, env: &[(&str, &str)]) -> Command {
    let binary = env!("CARGO_BIN_EXE_gha-api-gateway");
    let mut command = match runner {
        [] => Command::new(binary),
        [program, args @ ..] => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
    };
    for var in GATEWAY_VARS {
        command.env_remove(var);
    }
    command
        .env("API_GATEWAY_HOST", "127.0.0.1")
        .env("API_GATEWAY_PORT", "0")
        .env("ORCHESTRATOR_URL", orchestrator_url)
        .env("API_KEYS", KEY)
        .env("RATE_LIMIT_PER_SECOND", "1000")
        .env("RATE_LIMIT_BURST", "1000")
        .env("UPSTREAM_TIMEOUT_SECONDS", "5")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    for (name, value) in env {
        command.env(name, value);
    }
    command.stdin(Stdio::null()).stdout(Stdio::null());
    command
}

/// Runs the gateway with `env` (as [`TestGateway::spawn`] would) when it is
/// expected to refuse to start: its exit status and what it wrote to stderr.
pub(crate) fn refused_start(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    refused_start_as(&[], env)
}

/// [`refused_start`], run through `runner` (see [`command_as`]).
pub(crate) fn refused_start_as(
    runner: &[&str],
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    let mut child = command_as(runner, &closed_upstream(), env)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gha-api-gateway");
    let mut stderr = child.stderr.take().expect("stderr");
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        let _ = done_tx.send(text);
    });
    // stderr closes when the process exits.
    let Ok(stderr) = done_rx.recv_timeout(Duration::from_secs(15)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the gateway did not exit within 15 s");
    };
    (child.wait().expect("wait for the gateway"), stderr)
}

impl TestGateway {
    /// Starts the gateway in front of `orchestrator_url` with `API_KEYS=KEY`,
    /// a generous rate limit, and `env` on top.
    pub(crate) fn spawn(orchestrator_url: &str, env: &[(&str, &str)]) -> Self {
        let mut child = command(orchestrator_url, env)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gha-api-gateway");
        let stderr = child.stderr.take().expect("stderr");
        let (port_tx, port_rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            let show = std::env::var_os("TEST_LOG").is_some();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if show {
                    eprintln!("[gateway] {line}");
                }
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                    && event["message"] == "gha-api-gateway listening"
                    && let Some(port) = event["port"].as_u64()
                {
                    let _ = port_tx.send(port as u16);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let port = match port_rx.recv_timeout(Duration::from_secs(15)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!("the gateway did not report its port within 15s (TEST_LOG=1 shows its log)");
            }
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            client,
            log,
        }
    }

    /// The lines the gateway has logged so far (every line up to
    /// "listening" once [`Self::spawn`] has returned).
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The gateway process's id (for `/proc/PID/status`).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as `docker stop` does.
    pub(crate) fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the gateway") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the test key in `X-API-Key`.
    pub(crate) fn authed(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("x-api-key", KEY)
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request as the stand-in orchestrator received it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// What the stand-in answers.
#[derive(Debug, Clone)]
struct Reply {
    status: StatusCode,
    body: String,
}

#[derive(Debug, Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Recorded>>>,
    reply: Arc<Mutex<Option<Reply>>>,
}

/// A real HTTP server standing in for the orchestrator's HTTP surface: it
/// records every request and answers with the chosen status and JSON body.
#[derive(Debug)]
pub(crate) struct TestUpstream {
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    shared: Shared,
}

impl TestUpstream {
    /// Starts answering `200 {"ok":true}` to everything.
    pub(crate) async fn start() -> Self {
        let shared = Shared::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(record).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, shared }
    }

    /// Answers `status` with `body` (as JSON) from now on.
    pub(crate) fn reply(&self, status: u16, body: &str) {
        *self.shared.reply.lock().unwrap() = Some(Reply {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.to_owned(),
        });
    }

    /// Everything received so far.
    pub(crate) fn received(&self) -> Vec<Recorded> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The only request received so far.
    pub(crate) fn single(&self) -> Recorded {
        let received = self.received();
        assert_eq!(
            received.len(),
            1,
            "expected one upstream request: {received:#?}"
        );
        received.into_iter().next().unwrap()
    }
}

async fn record(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    shared.received.lock().unwrap().push(Recorded {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    });
    let reply = shared.reply.lock().unwrap().clone().unwrap_or(Reply {
        status: StatusCode::OK,
        body: r#"{"ok":true}"#.to_owned(),
    });
    (
        reply.status,
        [("content-type", "application/json")],
        reply.body,
    )
        .into_response()
}

/// An upstream that accepts connections and never answers.
pub(crate) async fn silent_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// A URL where nothing listens.
pub(crate) fn closed_upstream() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Reads a JSON error body and returns its code, checking the house shape.
pub(crate) async fn error_code(response: reqwest::Response) -> String {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}"
    );
    let body: api_types::ErrorBody = response.json().await.expect("house error shape");
    assert!(!body.error.message.is_empty());
    body.error.code
}

/// A file in the temporary directory, removed when dropped.
#[derive(Debug)]
pub(crate) struct TempFile(pub(crate) std::path::PathBuf);

impl TempFile {
    /// A new file holding `text`.
    pub(crate) fn with(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("gateway-test-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).expect("write a temporary file");
        Self(path)
    }

    /// Its path, as text.
    pub(crate) fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
