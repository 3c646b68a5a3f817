//! The test world: a Docker network of the test's own, the GitHub simulator
//! bound on that network's gateway (so runner containers reach it), the
//! runner stand-in image, and the real `gha-orchestrator` binary as a child
//! process. Everything is removed on drop, panics included.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use github_sim::{RunningSim, SimConfig};
use serde_json::{Value, json};
use test_support::{TestDocker, ensure_sim_runner_image, wait_for};

/// The token the simulator accepts and the orchestrator is given.
pub const TOKEN: &str = "ghp_FAKE-test-token-not-real-must-never-leak";
/// The repository the simulator knows and the orchestrator defaults to.
pub const REPO: &str = "acme/app";
/// An organization the simulator knows.
pub const ORG: &str = "acme";

/// One test's world.
pub struct TestEnv {
    pub docker: TestDocker,
    pub sim: Option<RunningSim>,
    pub orchestrator: Option<Child>,
    pub base: String,
    pub http: reqwest::Client,
    pub log_path: PathBuf,
    port: u16,
    extra_env: Vec<(String, String)>,
    unprivileged: bool,
}

/// How long a test's orchestrator gets to shut down at the end of the test
/// (its drain, its creates under way, its idle runners' removal).
const ORCHESTRATOR_STOP_LIMIT: Duration = Duration::from_secs(15);

/// The webhook secret shared by the simulator and the orchestrator.
pub const WEBHOOK_SECRET: &str = "It's a Secret to Everybody";

/// A change to the simulator's configuration, made before it starts.
pub type SimChange = Arc<dyn Fn(&mut SimConfig) + Send + Sync>;

/// Knobs a test may turn.
#[derive(Default, Clone)]
pub struct Options {
    /// Extra environment for the orchestrator (wins over the defaults).
    pub env: Vec<(&'static str, String)>,
    /// Have the simulator send signed webhooks to the orchestrator.
    pub webhooks: bool,
    /// Changes to the simulator's configuration before it starts.
    pub sim: Option<SimChange>,
    /// Run the orchestrator as an unprivileged user (uid 65532, as in its
    /// image) when the tests run as root, so that file and socket modes
    /// apply to it.
    pub unprivileged: bool,
}

/// The uid the orchestrator's image runs as.
pub const IMAGE_UID: u32 = 65532;

/// `program` as an unprivileged user: uid [`IMAGE_UID`] when the tests run
/// as root, otherwise the tests' own user (already unprivileged).
pub fn unprivileged_command(program: &str) -> Command {
    if running_as_root() {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={IMAGE_UID}"))
            .arg(format!("--regid={IMAGE_UID}"))
            .arg("--clear-groups")
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Whether this process runs as root (permission checks do not apply to it).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|ids| ids.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

impl TestEnv {
    /// Starts everything with the defaults.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts everything.
    pub async fn start_with(options: Options) -> Self {
        let image = ensure_sim_runner_image();
        let docker = TestDocker::new();
        let mut config = SimConfig::for_tests(SocketAddr::new(docker.gateway, 0));
        config.tokens = vec![TOKEN.to_owned().into()];
        config.repos = vec![REPO.to_owned(), format!("{ORG}/other")];
        config.orgs = vec![ORG.to_owned()];
        config.runner_offline_after_ms = 2000;
        let port = free_port();
        if options.webhooks {
            config.webhook_url = Some(format!("http://127.0.0.1:{port}/webhooks/github"));
            config.webhook_secret = Some(WEBHOOK_SECRET.to_owned().into());
        }
        if let Some(change) = &options.sim {
            change(&mut config);
        }
        let sim = github_sim::spawn(config).await.expect("simulator starts");
        let log_path = std::env::temp_dir().join(format!("gha-orchestrator-{}.log", docker.id));
        let mut extra_env = vec![
            ("RUNNER_IMAGE".to_owned(), image.to_owned()),
            ("GITHUB_API_URL".to_owned(), sim.url()),
            // Polling off unless a test turns it on: jobs a test queues by
            // hand must not get runners it did not ask for.
            ("AUTOSCALE_POLL_INTERVAL_SECONDS".to_owned(), "0".to_owned()),
        ];
        if options.webhooks {
            extra_env.push((
                "GITHUB_WEBHOOK_SECRET".to_owned(),
                WEBHOOK_SECRET.to_owned(),
            ));
        }
        extra_env.extend(
            options
                .env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone())),
        );
        let mut env = TestEnv {
            docker,
            sim: Some(sim),
            orchestrator: None,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            log_path,
            port,
            extra_env,
            unprivileged: options.unprivileged,
        };
        env.start_orchestrator().await;
        env
    }

    /// The orchestrator's command line with this test's environment,
    /// serving on `port`.
    pub fn orchestrator_command(&self, port: u16) -> Command {
        let binary = env!("CARGO_BIN_EXE_gha-orchestrator");
        let mut command = if self.unprivileged {
            unprivileged_command(binary)
        } else {
            Command::new(binary)
        };
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ORCHESTRATOR_HOST", "127.0.0.1")
            .env("ORCHESTRATOR_PORT", port.to_string())
            .env("ORCHESTRATOR_ID", &self.docker.id)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", REPO)
            .env("RUNNER_NETWORK", &self.docker.network)
            .env("RUNNER_IMAGE_PULL_INTERVAL_SECONDS", "0")
            .env("RECONCILE_INTERVAL_SECONDS", "1")
            .env("RUST_LOG", "trace,hyper=debug,h2=debug")
            .stdin(Stdio::null());
        if let Ok(host) = std::env::var("DOCKER_HOST") {
            command.env("DOCKER_HOST", host);
        }
        for (k, v) in &self.extra_env {
            command.env(k, v);
        }
        command
    }

    /// Sets an environment variable for the next starts of the orchestrator.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts (or restarts) the orchestrator process and waits until it serves.
    pub async fn start_orchestrator(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut command = self.orchestrator_command(self.port);
        command.stdout(log.try_clone().unwrap()).stderr(log);
        self.orchestrator = Some(command.spawn().expect("start gha-orchestrator"));
        let http = self.http.clone();
        let url = format!("{}/healthz", self.base);
        wait_for("the orchestrator to serve", Duration::from_secs(20), || {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            }
        })
        .await;
    }

    /// SIGKILLs the orchestrator.
    pub fn kill_orchestrator(&mut self) {
        if let Some(mut child) = self.orchestrator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the orchestrator as Compose does: SIGTERM, then SIGKILL if it
    /// is still there after `limit`. Its shutdown waits for the creates it
    /// has under way, so that none reaches Docker after the test's clean-up
    /// listed its containers (a SIGKILL mid-create left a container that
    /// Docker made after the listing). Blocks the calling thread, not the
    /// runtime: the simulator it may still call runs meanwhile.
    fn stop_orchestrator(&mut self, limit: Duration) {
        let Some(mut child) = self.orchestrator.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let mut wait = move || {
            let deadline = std::time::Instant::now() + limit;
            while std::time::Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(wait),
            Err(_) => wait(),
        }
    }

    /// SIGTERMs the orchestrator and waits for it to exit (without blocking
    /// the simulator, which shares this runtime); returns how long it took.
    pub async fn terminate_orchestrator(&mut self) -> Duration {
        let mut child = self.orchestrator.take().expect("running");
        let started = std::time::Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        started.elapsed()
    }

    /// The simulator's base URL.
    pub fn sim_url(&self) -> String {
        self.sim.as_ref().unwrap().url()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        status_json(response).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        status_json(response).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        status_json(response).await
    }

    /// `GET` on the simulator's control API.
    pub async fn sim_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sim_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `POST` on the simulator's control API.
    pub async fn sim_post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.sim_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        status_json(response).await
    }

    /// How many passes the background loop `name` has made (`/health`).
    pub async fn passes(&self, name: &str) -> u64 {
        let (_, health) = self.get("/health").await;
        health["loops"][name]["passes"].as_u64().unwrap_or(0)
    }

    /// Waits until the loop `name` has made `count` more passes: whatever it
    /// would have done about what happened before, it has done by then.
    pub async fn wait_passes(&self, name: &str, count: u64) {
        let from = self.passes(name).await;
        wait_for(
            &format!("{count} more passes of the {name} loop"),
            Duration::from_secs(60),
            || async { (self.passes(name).await >= from + count).then_some(()) },
        )
        .await;
    }

    /// `PATCH /_sim/settings`: changes the simulator's behaviour while it runs.
    pub async fn sim_settings(&self, body: Value) {
        let response = self
            .http
            .patch(format!("{}/_sim/settings", self.sim_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, body) = status_json(response).await;
        assert_eq!(status, 200, "{body}");
    }

    /// Every runner registration the simulator holds.
    pub async fn registrations(&self) -> Vec<Value> {
        let body = self.sim_get("/_sim/runners").await;
        body.as_array()
            .cloned()
            .or_else(|| body["runners"].as_array().cloned())
            .unwrap_or_default()
    }

    /// How many JIT configurations the simulator has handed out.
    pub async fn jit_calls(&self) -> i64 {
        self.sim_get("/_sim/stats").await["api_calls"]
            ["POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig"]
            .as_i64()
            .unwrap_or(0)
    }

    /// Waits until the simulator reports job `id` completed.
    pub async fn wait_job_completed(&self, id: i64, timeout: Duration) -> Value {
        wait_for(&format!("job {id} to complete"), timeout, || async {
            let job = self.job(id).await;
            (job["status"] == "completed").then_some(job)
        })
        .await
    }

    /// Queues a job in the simulator; returns its id.
    pub async fn queue_job(&self, labels: &[&str], duration_ms: u64) -> i64 {
        let (status, body) = self
            .sim_post(
                "/_sim/jobs",
                json!({"repository": REPO, "labels": labels, "duration_ms": duration_ms, "conclusion": "success"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// The job as the simulator sees it.
    pub async fn job(&self, id: i64) -> Value {
        self.sim_get(&format!("/_sim/jobs/{id}")).await
    }

    /// Names of this test's runner containers.
    pub fn containers(&self) -> Vec<String> {
        TestDocker::containers_with_label("dev.gha-runners.instance", &self.docker.id)
    }

    /// Creates `count` runners and returns their ids.
    pub async fn create(&self, count: u32) -> Vec<String> {
        self.create_with(json!({"count": count})).await
    }

    /// Creates runners as `request` asks (it must succeed) and returns their ids.
    pub async fn create_with(&self, request: Value) -> Vec<String> {
        let (status, body) = self.post("/runners/create", request).await;
        assert_eq!(status, 201, "{body}");
        body["runners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits until the runner is in `state` and returns it.
    pub async fn wait_state(&self, id: &str, state: &str, timeout: Duration) -> Value {
        wait_for(&format!("runner {id} to be {state}"), timeout, || async {
            let (code, body) = self.get(&format!("/runners/{id}/status")).await;
            (code == 200 && body["state"] == state).then_some(body)
        })
        .await
    }

    /// Waits until neither containers nor registrations of ours remain.
    pub async fn wait_nothing_left(&self, timeout: Duration) {
        wait_for("no container and no registration left", timeout, || async {
            let regs = self.registrations().await;
            (self.containers().is_empty() && regs.is_empty()).then_some(())
        })
        .await;
    }

    /// The orchestrator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.stop_orchestrator(ORCHESTRATOR_STOP_LIMIT);
        if std::thread::panicking() || std::env::var_os("TEST_LOG").is_some() {
            eprintln!("--- orchestrator log ({}) ---", self.log_path.display());
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
        // The simulator stops with the runtime; containers and network go
        // with `self.docker`'s own drop.
    }
}

async fn status_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
