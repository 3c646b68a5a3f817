//! Shared test set-up: a running simulator, an authenticated client, polling with deadlines.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;

use github_sim::{RunningSim, SimConfig, spawn};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

pub(crate) const TOKEN: &str = "test-token";
pub(crate) const REPO: &str = "/repos/octo/app";
pub(crate) const ORG: &str = "/orgs/acme";

/// A simulator with `octo/app` (user-owned), organization `acme` with `acme/web`.
pub(crate) struct TestSim {
    pub(crate) sim: RunningSim,
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
}

fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        github_sim::telemetry::init_tracing();
    }
}

pub(crate) async fn start() -> TestSim {
    start_with(|_| {}).await
}

pub(crate) async fn start_with(configure: impl FnOnce(&mut SimConfig)) -> TestSim {
    init_test_log();
    let mut config = SimConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.repos = vec!["octo/app".into(), "acme/web".into()];
    config.orgs = vec!["acme".into()];
    configure(&mut config);
    let sim = spawn(config).await.expect("simulator starts");
    let base = sim.url();
    TestSim {
        sim,
        client: client(),
        base,
    }
}

/// A client that sends a `User-Agent`, as GitHub requires (reqwest sends none by default).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .build()
        .expect("client builds")
}

/// The `User-Agent` of the tests' requests.
pub(crate) const USER_AGENT: &str = "github-sim-tests";

impl TestSim {
    /// An authenticated GitHub-surface request.
    pub(crate) fn gh(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("accept", "application/vnd.github+json")
    }

    /// A control/other request without auth.
    pub(crate) fn raw(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Registers a JIT runner at `scope` (e.g. [`REPO`]); returns (runner id, encoded config).
    pub(crate) async fn jit(&self, scope: &str, name: &str, labels: &[&str]) -> (u64, String) {
        let response = self
            .gh(
                Method::POST,
                &format!("{scope}/actions/runners/generate-jitconfig"),
            )
            .json(&json!({"name": name, "runner_group_id": 1, "labels": labels}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        (
            body["runner"]["id"].as_u64().unwrap(),
            body["encoded_jit_config"].as_str().unwrap().to_owned(),
        )
    }

    /// Queues a job through the control API; returns (job id, run id).
    pub(crate) async fn job(
        &self,
        repository: &str,
        labels: &[&str],
        duration_ms: u64,
    ) -> (u64, u64) {
        let response = self
            .raw(Method::POST, "/_sim/jobs")
            .json(&json!({"repository": repository, "labels": labels, "duration_ms": duration_ms, "conclusion": "success"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        (
            body["id"].as_u64().unwrap(),
            body["run_id"].as_u64().unwrap(),
        )
    }

    /// Queues a job whose `run:` step is `script`; returns its id.
    pub(crate) async fn job_with_script(
        &self,
        repository: &str,
        labels: &[&str],
        script: &str,
    ) -> u64 {
        let response = self
            .raw(Method::POST, "/_sim/jobs")
            .json(&json!({"repository": repository, "labels": labels, "run": script}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_u64().unwrap()
    }

    pub(crate) async fn sim_job(&self, id: u64) -> Value {
        self.raw(Method::GET, &format!("/_sim/jobs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The `/_sim/runners` entry of runner `id`, if it still exists.
    pub(crate) async fn sim_runner(&self, id: u64) -> Option<Value> {
        let runners: Vec<Value> = self
            .raw(Method::GET, "/_sim/runners")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        runners.into_iter().find(|r| r["id"] == id)
    }

    pub(crate) async fn stats(&self) -> Value {
        self.raw(Method::GET, "/_sim/stats")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until runner `id` is connected.
    pub(crate) async fn wait_online(&self, id: u64) {
        wait_for("runner online", Duration::from_secs(10), || async {
            self.sim_runner(id)
                .await
                .filter(|r| r["status"] == "online")
                .map(|_| ())
        })
        .await;
    }

    /// Waits until job `id` has `status`.
    pub(crate) async fn wait_job_status(&self, id: u64, status: &str) -> Value {
        wait_for(
            &format!("job {id} {status}"),
            Duration::from_secs(10),
            || async {
                let job = self.sim_job(id).await;
                (job["status"] == status).then_some(job)
            },
        )
        .await
    }
}

/// Polls `check` every 25 ms until it returns `Some`, failing after `timeout`.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A `sim-runner` process (not started yet) with no JIT configuration in its environment
/// unless `config` is given, quiet logs, stderr piped and killed when dropped.
pub(crate) fn sim_runner_command(config: Option<&str>) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sim-runner"));
    command
        .env_remove("ACTIONS_RUNNER_INPUT_JITCONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(config) = config {
        command.env("ACTIONS_RUNNER_INPUT_JITCONFIG", config);
    }
    command
}

/// A stand-in's work directory under the system's temporary directory, removed on drop.
pub(crate) struct WorkDir(PathBuf);

impl WorkDir {
    pub(crate) fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("sim-runner-work-{}", test_support::unique_id()));
        std::fs::create_dir_all(&dir).expect("create work directory");
        // Canonical, so it compares equal to what `pwd` prints in a script.
        Self(dir.canonicalize().expect("work directory exists"))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs an in-process stand-in for `config` (abort the handle to simulate a killed runner).
pub(crate) fn stand_in(
    config: String,
) -> (
    tokio::task::JoinHandle<
        Result<github_sim::stand_in::Outcome, github_sim::stand_in::StandInError>,
    >,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let secret = secrecy::SecretString::from(config);
        // Jobs of these stand-ins carry no script: nothing is ever created there.
        let work_dir = std::env::temp_dir().join("sim-runner-work-unused");
        github_sim::stand_in::run(&secret, &work_dir, async {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
    });
    (handle, stop)
}

/// What a webhook receiver got: each delivery's headers and raw body, in order.
#[derive(Clone, Default)]
pub(crate) struct Received(Arc<Mutex<Vec<(HeaderMap, Bytes)>>>);

impl Received {
    pub(crate) fn snapshot(&self) -> Vec<(HeaderMap, Bytes)> {
        self.0.lock().unwrap().clone()
    }
}

/// A webhook receiver on 127.0.0.1:0 answering 200; returns its URL and what it got.
pub(crate) async fn receiver() -> (String, Received) {
    let received = Received::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                store.0.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// Waits until `received` holds at least `n` deliveries.
pub(crate) async fn wait_deliveries(received: &Received, n: usize) -> Vec<(HeaderMap, Bytes)> {
    wait_for(
        &format!("{n} deliveries"),
        Duration::from_secs(10),
        || async {
            let got = received.snapshot();
            (got.len() >= n).then_some(got)
        },
    )
    .await
}
