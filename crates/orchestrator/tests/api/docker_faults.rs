//! The Docker engine unreachable: clear 503s, fast, and an honest health check.

use std::time::{Duration, Instant};

use serde_json::json;
use test_support::{DockerProxy, wait_for};

use crate::helpers::{Options, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_answers_503_quickly_and_health_says_so() {
    // A socket path that exists but where no engine listens.
    let dead = std::env::temp_dir().join(format!("gha-dead-{}.sock", test_support::unique_id()));
    std::fs::write(&dead, b"").unwrap();
    let env = TestEnv::start_with(Options {
        env: vec![("DOCKER_HOST", format!("unix://{}", dead.display()))],
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    eprintln!(
        "figure: no engine: POST /runners/create answered {status} in {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "docker_unavailable");
    assert!(env.registrations().await.is_empty(), "no registration made");
    let (status, health) = env.get("/health").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["docker"]["reachable"], false);
    assert!(
        health["docker"]["error"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
    let (status, _) = env.get("/healthz").await;
    assert_eq!(status, 200, "liveness stays up");
    let (status, ready) = env.get("/readyz").await;
    assert_eq!(status, 503, "the container's health check fails: {ready}");
    let _ = std::fs::remove_file(dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_going_away_and_back_is_survived_without_leaks() {
    let proxy = DockerProxy::start();
    let env = TestEnv::start_with(Options {
        env: vec![("DOCKER_HOST", proxy.docker_host())],
        ..Default::default()
    })
    .await;
    let first = env.create(1).await.remove(0);
    env.wait_state(&first, "idle", Duration::from_secs(20))
        .await;

    proxy.cut();
    // The runner takes a job and exits while we cannot see Docker.
    let job = env.queue_job(&["self-hosted"], 500).await;
    let started = Instant::now();
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    eprintln!(
        "figure: engine cut: POST /runners/create answered {status} in {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "docker_unavailable");
    let (status, health) = env.get("/health").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (503, Some("unhealthy"))
    );
    let (status, _) = env.get("/runners").await;
    assert_eq!(status, 200, "listing is served from the view");
    env.wait_job_completed(job, Duration::from_secs(20)).await;

    proxy.restore();
    let restored = Instant::now();
    // Everything recovers by itself: the exited runner is cleaned up...
    wait_for(
        "the exited runner to be retired",
        Duration::from_secs(20),
        || async {
            let (_, body) = env.get(&format!("/runners/{first}/status")).await;
            (body["state"] == "finished" && body["container_id"].is_null()).then_some(())
        },
    )
    .await;
    let (status, health) = env.get("/health").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );
    eprintln!(
        "figure: engine back: exited runner retired and /health ok {:?} after the restore",
        restored.elapsed()
    );
    // ...and creates work again, with nothing leaked or duplicated.
    let second = env.create(1).await.remove(0);
    assert_eq!(env.containers(), vec![second.clone()]);
    let registrations = env.registrations().await;
    assert_eq!(registrations.len(), 1, "{registrations:?}");
    assert_eq!(registrations[0]["name"], second.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_the_orchestrator_may_not_open_names_docker_gid() {
    use std::os::unix::fs::PermissionsExt;
    // The engine behind a socket only its owner may open: the orchestrator
    // runs as another user (uid 65532 when the tests run as root), as with
    // a wrong DOCKER_GID under Compose.
    let proxy = DockerProxy::start();
    let mode = if crate::helpers::running_as_root() {
        0o600
    } else {
        0o000
    };
    std::fs::set_permissions(proxy.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    let env = TestEnv::start_with(Options {
        env: vec![("DOCKER_HOST", proxy.docker_host())],
        unprivileged: true,
        ..Default::default()
    })
    .await;
    let socket = proxy.path().display().to_string();
    let names_the_fix = |text: &str| {
        text.contains("permission denied")
            && text.contains("DOCKER_GID")
            && text.contains(&format!("stat -c %g {socket}"))
    };

    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "docker_permission_denied");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(names_the_fix(message), "{message}");
    assert!(
        !message.contains("retry"),
        "waiting does not cure it: {message}"
    );
    assert!(env.registrations().await.is_empty(), "no registration made");

    let (status, health) = env.get("/health").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unhealthy");
    assert!(
        names_the_fix(health["docker"]["error"].as_str().unwrap()),
        "{health}"
    );
    let (status, ready) = env.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["error"]["code"], "docker_permission_denied");

    // The image's health check (what `docker compose ps` shows) fails, saying why.
    let probe = std::process::Command::new(env!("CARGO_BIN_EXE_gha-orchestrator"))
        .arg("healthcheck")
        .env("ORCHESTRATOR_PORT", env.base.rsplit(':').next().unwrap())
        .output()
        .unwrap();
    assert!(!probe.status.success(), "healthcheck must fail");
    let said = String::from_utf8_lossy(&probe.stderr);
    assert!(said.contains("/readyz answered 503"), "{said}");
    assert!(names_the_fix(&env.log()), "the log names the fix");
}
