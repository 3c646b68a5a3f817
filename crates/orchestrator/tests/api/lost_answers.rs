//! A POST that GitHub carried out but whose answer never arrived: a 502
//! from a proxy, a dropped connection, an answer later than our timeout,
//! or a 409 for a runner our own lost attempt made. The registration is
//! never left behind and never duplicated.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Options, TestEnv};

const JIT_PATH: &str = "/repos/acme/app/actions/runners/generate-jitconfig";

fn names(values: &[Value], key: &str) -> BTreeSet<String> {
    values
        .iter()
        .filter_map(|v| v[key].as_str().map(str::to_owned))
        .collect()
}

/// Registrations GitHub holds and runner containers, by name.
async fn registrations_and_containers(env: &TestEnv) -> (BTreeSet<String>, BTreeSet<String>) {
    let registrations = names(&env.registrations().await, "name");
    let containers: BTreeSet<String> = env.containers().into_iter().collect();
    (registrations, containers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_under_lost_answers_leaves_registrations_equal_to_containers() {
    let env = TestEnv::start_with(Options {
        env: vec![
            ("GITHUB_TIMEOUT_SECONDS", "2".into()),
            // Only the passes this test asks for.
            ("RECONCILE_INTERVAL_SECONDS", "3600".into()),
        ],
        ..Options::default()
    })
    .await;
    // Each fault applies the registration at GitHub, then loses its answer.
    for fault in [
        json!({"path_prefix": JIT_PATH, "method": "POST", "mode": "after", "status": 502, "count": 2}),
        json!({"path_prefix": JIT_PATH, "method": "POST", "mode": "after", "drop": true, "count": 1}),
        json!({"path_prefix": JIT_PATH, "method": "POST", "mode": "after", "delay_ms": 4000, "count": 1}),
        json!({"path_prefix": JIT_PATH, "method": "POST", "mode": "after", "status": 409, "count": 1}),
    ] {
        let (status, body) = env.sim_post("/_sim/faults", fault).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = env.post("/runners/create", json!({"count": 8})).await;
    assert_eq!(status, 201, "{body}");
    let created: BTreeSet<String> = body["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(created.len(), 8);
    assert!(
        env.sim_get("/_sim/faults")
            .await
            .as_array()
            .unwrap()
            .is_empty(),
        "every fault was exercised"
    );
    // Five registrations were made whose answers were lost: each was found
    // by name and deleted, so GitHub holds exactly the runners that exist.
    let (registrations, containers) = registrations_and_containers(&env).await;
    assert_eq!(registrations, created);
    assert_eq!(containers, created);
    assert_eq!(env.jit_calls().await, 13, "8 runners, 5 second attempts");

    // One reconcile pass finds nothing to remove.
    let (status, report) = env.post("/runners/cleanup", json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert!(report["removed"].as_array().unwrap().is_empty(), "{report}");
    for id in &created {
        let (status, body) = env.delete(&format!("/runners/{id}")).await;
        assert!(status < 300, "{body}");
    }
    env.wait_nothing_left(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_github_cannot_explain_is_swept_by_the_next_pass() {
    let env = TestEnv::start_with(Options {
        env: vec![("RECONCILE_INTERVAL_SECONDS", "3600".into())],
        ..Options::default()
    })
    .await;
    // The registration is made and its answer lost; then the lookup by
    // name fails too (every retry), so the orchestrator cannot tell. The
    // GET fault is ample: a background pass may list runners meanwhile.
    env.sim_post(
        "/_sim/faults",
        json!({"path_prefix": JIT_PATH, "method": "POST", "mode": "after", "status": 502, "count": 1}),
    )
    .await;
    env.sim_post(
        "/_sim/faults",
        json!({"path_prefix": "/repos/acme/app/actions/runners", "method": "GET", "status": 503, "count": 100}),
    )
    .await;
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 502, "{body}");
    assert!(env.containers().is_empty());
    let response = env
        .http
        .delete(format!("{}/_sim/faults", env.sim_url()))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let (registrations, _) = registrations_and_containers(&env).await;
    assert_eq!(registrations.len(), 1, "GitHub made the runner");
    // One pass: an offline registration with our prefix, no container and
    // no create in flight is an orphan, and it goes.
    let (status, report) = env.post("/runners/cleanup", json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["removed"][0]["reason"], "orphan_registration",
        "{report}"
    );
    env.wait_nothing_left(Duration::from_secs(10)).await;
}
