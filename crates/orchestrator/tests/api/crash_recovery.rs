//! The orchestrator killed in the middle of a batch, then started again:
//! after one reconcile pass nothing leaks; survivors are adopted.

use std::time::Duration;

use serde_json::json;
use test_support::wait_for;

use crate::helpers::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_batch_leaks_nothing_after_restart() {
    let mut env = TestEnv::start_with(crate::helpers::Options {
        env: vec![("MAX_RUNNERS", "20".into())],
        ..Default::default()
    })
    .await;
    // Slow GitHub down so the kill lands while JIT calls are in flight.
    env.sim_post(
        "/_sim/faults",
        json!({"path_prefix": "/repos/", "delay_ms": 300, "count": 20, "status": 0}),
    )
    .await;
    let base = env.base.clone();
    let http = env.http.clone();
    let batch = tokio::spawn(async move {
        http.post(format!("{base}/runners/create"))
            .json(&json!({"count": 20}))
            .send()
            .await
    });
    // Kill it as soon as the batch's first container exists: registrations
    // made, containers half made, nothing answered yet.
    wait_for(
        "the batch's first container",
        Duration::from_secs(20),
        || async { (!env.containers().is_empty()).then_some(()) },
    )
    .await;
    env.kill_orchestrator();
    let _ = batch.await;
    env.sim_post("/_sim/faults", json!({})).await;
    let _ = env
        .http
        .delete(format!("{}/_sim/faults", env.sim_url()))
        .send()
        .await;
    let (containers, registrations) = (env.containers().len(), env.registrations().await.len());
    env.start_orchestrator().await;
    let (status, report) = env.post("/runners/cleanup", json!({})).await;
    assert_eq!(status, 200, "{report}");
    eprintln!(
        "figure: SIGKILL during 20 creates: {containers} containers and {registrations} registrations at the restart; after it and one cleanup: {} containers, {} registrations",
        env.containers().len(),
        env.registrations().await.len()
    );
    // Every registration left has a container, and every container is a runner we list.
    wait_for(
        "registrations and containers to agree",
        Duration::from_secs(30),
        || async {
            let _ = env.post("/runners/cleanup", json!({})).await;
            let registrations = env.registrations().await;
            let containers = env.containers();
            let (_, listed) = env.get("/runners").await;
            let listed: Vec<String> = listed["runners"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| !r["container_id"].is_null())
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            let all_registered_have_containers = registrations.iter().all(|r| {
                containers
                    .iter()
                    .any(|c| Some(c.as_str()) == r["name"].as_str())
            });
            let all_containers_listed = containers.iter().all(|c| listed.contains(c));
            (all_registered_have_containers && all_containers_listed).then_some(())
        },
    )
    .await;
    // Survivors are usable runners: delete them all, nothing remains.
    let (_, listed) = env.get("/runners").await;
    for runner in listed["runners"].as_array().unwrap() {
        if !runner["container_id"].is_null() {
            let id = runner["id"].as_str().unwrap();
            let (status, body) = env.delete(&format!("/runners/{id}")).await;
            assert!(status == 204 || status == 404, "{body}");
        }
    }
    env.wait_nothing_left(Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_removes_idle_runners_and_exits_promptly() {
    let mut env = TestEnv::start().await;
    let ids = env.create(2).await;
    for id in &ids {
        env.wait_state(id, "idle", Duration::from_secs(20)).await;
    }
    let took = env.terminate_orchestrator().await;
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(env.containers().is_empty());
    assert!(env.registrations().await.is_empty());
}
