//! The background loops under supervision, and a shutdown that fits in the
//! container's stop grace period.

use std::time::Duration;

use serde_json::json;
use test_support::wait_for;

use crate::helpers::{Options, TestEnv};

/// `/health` shows each loop that runs, with its passes; loops that are
/// off (no webhooks, no polling, no warm pool: no scaling) are absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_each_running_loop_and_its_passes() {
    let env = TestEnv::start().await;
    let health = wait_for("two reconcile passes", Duration::from_secs(20), || async {
        let (status, health) = env.get("/health").await;
        assert_eq!(status, 200, "{health}");
        (health["loops"]["reconcile"]["passes"].as_u64() >= Some(2)).then_some(health)
    })
    .await;
    let loops = health["loops"].as_object().unwrap();
    assert!(loops.contains_key("docker_events"), "{health}");
    assert!(!loops.contains_key("scale"), "{health}");
    assert!(!loops.contains_key("poll"), "{health}");
    assert_eq!(health["loops"]["reconcile"]["interval_seconds"], 1);
    assert_eq!(health["loops"]["reconcile"]["late"], false);
    assert!(health["loops"]["reconcile"]["last_pass_at"].is_string());
    assert_eq!(health["status"], "ok", "{health}");
}

/// SIGTERM while a create waits on a slow GitHub: the request is cut at
/// `SHUTDOWN_DRAIN_SECONDS`, the idle runner is removed, and the process
/// exits well inside Compose's 30 s grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_slow_request_in_flight_exits_within_the_deadline() {
    let mut env = TestEnv::start_with(Options {
        env: vec![("SHUTDOWN_DRAIN_SECONDS", "3".into())],
        ..Options::default()
    })
    .await;
    let idle = env.create(1).await.remove(0);
    env.wait_state(&idle, "idle", Duration::from_secs(30)).await;
    // GitHub holds the next registration for a minute.
    let (status, body) = env
        .sim_post(
            "/_sim/faults",
            json!({"path_prefix": "/repos/acme/app/actions/runners/generate-jitconfig", "method": "POST", "delay_ms": 60000, "count": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let slow = tokio::spawn({
        let http = env.http.clone();
        let url = format!("{}/runners/create", env.base);
        async move { http.post(url).json(&json!({"count": 1})).send().await }
    });
    wait_for(
        "the slow create to reach GitHub",
        Duration::from_secs(10),
        || async {
            let stats = env.sim_get("/_sim/stats").await;
            (stats["in_flight"].as_u64() >= Some(1)).then_some(())
        },
    )
    .await;
    let took = env.terminate_orchestrator().await;
    assert!(
        took < Duration::from_secs(20),
        "shutdown took {took:?} with a 3 s drain"
    );
    assert!(
        env.containers().is_empty(),
        "the idle runner was not removed"
    );
    // The slow request did not get a success.
    let answer = slow.await.unwrap();
    assert!(
        answer.as_ref().map_or(true, |r| !r.status().is_success()),
        "{answer:?}"
    );
}
