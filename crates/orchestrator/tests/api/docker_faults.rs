//! The Docker engine unreachable: clear 503s, fast, and an honest health check.

use std::time::{Duration, Instant};

use serde_json::json;

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
