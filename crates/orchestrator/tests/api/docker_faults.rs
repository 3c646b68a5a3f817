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
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["docker"]["reachable"], false);
    assert!(
        health["docker"]["error"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
    let (status, _) = env.get("/healthz").await;
    assert_eq!(status, 200, "liveness stays up");
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
    assert_eq!((status, health["status"].as_str()), (503, Some("degraded")));
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
