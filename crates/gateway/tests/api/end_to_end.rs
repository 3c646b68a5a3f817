//! End to end: the real gateway in front of the real `gha-orchestrator`,
//! which talks to the GitHub simulator (in-process, bound on the test
//! network's gateway so runner containers reach it) and to Docker.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use github_sim::{RunningSim, SimConfig};
use reqwest::Method;
use serde_json::{Value, json};
use test_support::{TestDocker, ensure_sim_runner_image, wait_for, workspace_binary};

use crate::helpers::TestGateway;

/// The token the simulator accepts and the orchestrator is given.
const TOKEN: &str = "ghp_FAKE-gateway-e2e-token-not-real";
/// The repository the simulator knows and the orchestrator defaults to.
const REPO: &str = "acme/app";
/// The label the orchestrator puts on its containers, valued with its id.
const INSTANCE_LABEL: &str = "dev.gha-runners.instance";

/// Docker network, simulator, orchestrator process and gateway process of
/// one test. The orchestrator is killed on drop; the gateway kills itself
/// (its own guard); `docker` then removes containers and network, panics
/// included. Also the set-up of the `load` test.
pub(crate) struct World {
    /// The running orchestrator, `None` while a test has it stopped.
    orchestrator: Option<Child>,
    /// Where the orchestrator listens; kept across restarts so the gateway
    /// needs no new configuration.
    orchestrator_port: u16,
    /// Environment the orchestrator starts with.
    orchestrator_env: Vec<(&'static str, String)>,
    /// The orchestrator's stdout and stderr, shown when a test fails.
    log_path: PathBuf,
    pub(crate) gateway: TestGateway,
    /// Stops with the test's runtime; kept so it is not dropped early.
    _sim: RunningSim,
    /// Dropped last: containers and network go after every process.
    docker: TestDocker,
}

impl World {
    async fn start() -> Self {
        Self::start_with_gateway_env(&[]).await
    }

    /// The same world with `gateway_env` on top of the test gateway's
    /// defaults (see [`TestGateway::spawn`]).
    pub(crate) async fn start_with_gateway_env(gateway_env: &[(&str, &str)]) -> Self {
        let image = ensure_sim_runner_image();
        let docker = TestDocker::new();
        let mut config = SimConfig::for_tests(SocketAddr::new(docker.gateway, 0));
        config.tokens = vec![TOKEN.to_owned().into()];
        config.repos = vec![REPO.to_owned()];
        let sim = github_sim::spawn(config).await.expect("simulator starts");
        let orchestrator_port = free_port();
        let orchestrator_env = vec![
            ("ORCHESTRATOR_HOST", "127.0.0.1".to_owned()),
            ("ORCHESTRATOR_PORT", orchestrator_port.to_string()),
            ("ORCHESTRATOR_ID", docker.id.clone()),
            ("RUNNER_NETWORK", docker.network.clone()),
            ("RUNNER_IMAGE", image.to_owned()),
            ("GITHUB_API_URL", sim.url()),
            ("GITHUB_TOKEN", TOKEN.to_owned()),
            ("GITHUB_REPOSITORY", REPO.to_owned()),
            ("RUNNER_IMAGE_PULL_INTERVAL_SECONDS", "0".to_owned()),
            ("AUTOSCALE_POLL_INTERVAL_SECONDS", "0".to_owned()),
            ("RECONCILE_INTERVAL_SECONDS", "1".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        let log_path = std::env::temp_dir().join(format!("gateway-e2e-{}.log", docker.id));
        let gateway = TestGateway::spawn(
            &format!("http://127.0.0.1:{orchestrator_port}"),
            gateway_env,
        );
        let mut world = World {
            orchestrator: None,
            orchestrator_port,
            orchestrator_env,
            log_path,
            gateway,
            _sim: sim,
            docker,
        };
        world.start_orchestrator().await;
        world
    }

    /// Starts the orchestrator (again) on its port and waits until it serves.
    async fn start_orchestrator(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("orchestrator log file");
        let mut command = Command::new(workspace_binary("orchestrator", "gha-orchestrator"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.orchestrator_env.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        if let Ok(host) = std::env::var("DOCKER_HOST") {
            command.env("DOCKER_HOST", host);
        }
        self.orchestrator = Some(command.spawn().expect("start gha-orchestrator"));
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/healthz", self.orchestrator_port);
        wait_for("the orchestrator to serve", Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let response = http.get(&url).send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
    }

    /// SIGKILLs the orchestrator: no graceful shutdown, as in a crash.
    fn kill_orchestrator(&mut self) {
        if let Some(mut child) = self.orchestrator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The orchestrator directly, bypassing the gateway.
    fn direct(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.orchestrator_port)
    }

    /// Names of this test's runner containers.
    fn containers(&self) -> Vec<String> {
        TestDocker::containers_with_label(INSTANCE_LABEL, &self.docker.id)
    }

    /// A request through the gateway with the API key, as status and JSON.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.gateway.authed(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.kill_orchestrator();
        if std::thread::panicking() || test_support::test_log() {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- orchestrator log ({}) ---", self.log_path.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_lifecycle_through_the_gateway() {
    let world = World::start().await;

    let (status, body) = world
        .call(Method::POST, "/api/v1/runners", Some(json!({"count": 1})))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["runners"][0]["id"]
        .as_str()
        .expect("a runner id")
        .to_owned();
    assert_eq!(body["runners"][0]["repository"], REPO);
    assert!(
        world.containers().contains(&id),
        "container {id} exists: {:?}",
        world.containers()
    );

    let (status, list) = world.call(Method::GET, "/api/v1/runners", None).await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list["runners"]
            .as_array()
            .is_some_and(|runners| runners.iter().any(|r| r["id"] == id)),
        "{list}"
    );

    let (status, runner) = world
        .call(Method::GET, &format!("/api/v1/runners/{id}"), None)
        .await;
    assert_eq!(status, 200, "{runner}");
    assert_eq!(runner["id"], id);

    let (status, _) = world
        .call(
            Method::DELETE,
            &format!("/api/v1/runners/{id}?force=true"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    wait_for(
        "the container to be removed",
        Duration::from_secs(20),
        || {
            let gone = !world.containers().contains(&id);
            async move { gone.then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_pools_through_the_gateway() {
    let world = World::start().await;
    let anonymous = reqwest::get(world.gateway.url("/api/v1/pools"))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "the pools need the API key");

    // Without a pools file: one pool, `default`, from the variables.
    let (status, listed) = world.call(Method::GET, "/api/v1/pools", None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["pools"][0]["name"], "default", "{listed}");
    assert_eq!(listed["pools"][0]["repository"], REPO, "{listed}");
    let (status, body) = world
        .call(
            Method::POST,
            "/api/v1/runners",
            Some(json!({"count": 1, "pool": "default"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["runners"][0]["pool"], "default");
    let (_, listed) = world.call(Method::GET, "/api/v1/pools", None).await;
    let runners = &listed["pools"][0]["runners"];
    assert_eq!(
        runners["starting"].as_u64().unwrap() + runners["idle"].as_u64().unwrap(),
        1,
        "{listed}"
    );
    // The orchestrator's answers pass through: no pools file to reload,
    // no such pool to create in.
    let (status, body) = world.call(Method::POST, "/api/v1/pools/reload", None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "no_pools_file");
    let (status, body) = world
        .call(
            Method::POST,
            "/api/v1/runners",
            Some(json!({"count": 1, "pool": "huge"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("huge"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_validation_errors_pass_through_unchanged() {
    let world = World::start().await;
    let bad = json!({"count": 0});
    let direct = reqwest::Client::new()
        .post(world.direct("/runners/create"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    let via_gateway = world
        .gateway
        .authed(Method::POST, "/api/v1/runners")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 422);
    assert_eq!(via_gateway.status(), 422);
    assert_eq!(
        via_gateway.headers()["content-type"],
        direct.headers()["content-type"]
    );
    let direct_body = direct.bytes().await.unwrap();
    let gateway_body = via_gateway.bytes().await.unwrap();
    assert_eq!(
        gateway_body,
        direct_body,
        "the orchestrator's body, byte for byte: {}",
        String::from_utf8_lossy(&gateway_body)
    );
    let body: api_types::ErrorBody = serde_json::from_slice(&gateway_body).unwrap();
    assert!(!body.error.message.is_empty());
    assert!(world.containers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_orchestrator_through_a_crash_and_restart() {
    let mut world = World::start().await;
    // The orchestrator may report `degraded` for a moment while it first
    // asks Docker and GitHub.
    let health = wait_for("complete health to be 200", Duration::from_secs(20), || {
        let world = &world;
        async move {
            let (status, body) = world.call(Method::GET, "/api/v1/health", None).await;
            (status == 200).then_some(body)
        }
    })
    .await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["orchestrator"]["status"], "ok", "{health}");
    assert!(
        health["orchestrator"]["docker"]["reachable"]
            .as_bool()
            .unwrap()
    );

    world.kill_orchestrator();
    let (status, health) = world.call(Method::GET, "/api/v1/health", None).await;
    assert_eq!(status, 503, "{health}");
    assert!(health["orchestrator"].is_null(), "{health}");
    assert!(health["orchestrator_error"].is_string(), "{health}");
    let (status, body) = world.call(Method::GET, "/api/v1/runners", None).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["error"]["code"].as_str().map(str::is_empty),
        Some(false)
    );

    // Back on the same port: the same gateway recovers, no restart needed.
    world.start_orchestrator().await;
    wait_for(
        "complete health to be 200 again",
        Duration::from_secs(20),
        || {
            let world = &world;
            async move {
                let (status, _) = world.call(Method::GET, "/api/v1/health", None).await;
                (status == 200).then_some(())
            }
        },
    )
    .await;
    let (status, list) = world.call(Method::GET, "/api/v1/runners", None).await;
    assert_eq!(status, 200, "{list}");
}
