//! Operations that finish what they start: a client that gives up (its own
//! timeout, the gateway's `UPSTREAM_TIMEOUT_SECONDS`, a closed connection)
//! cuts neither a create nor a delete, and an `Idempotency-Key` makes a
//! repeated create answer the first one's batch instead of making another.
//!
//! GitHub is made slow with the simulator's faults; an impatient client
//! (one second) gives up while the orchestrator waits for it.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use test_support::{TestDocker, wait_for};

use crate::helpers::{Options, TestEnv};

const JIT_PATH: &str = "/repos/acme/app/actions/runners/generate-jitconfig";
const RUNNERS_PATH: &str = "/repos/acme/app/actions/runners/";

/// A client that gives up after one second.
fn impatient() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// Sends `request` and checks that the client gave up before any answer.
async fn give_up(request: reqwest::RequestBuilder) {
    match request.send().await {
        Err(e) => assert!(e.is_timeout(), "{e}"),
        Ok(response) => panic!("answered before the client gave up: {response:?}"),
    }
}

async fn fault(env: &TestEnv, fault: Value) {
    let (status, body) = env.sim_post("/_sim/faults", fault).await;
    assert_eq!(status, 201, "{body}");
}

/// Registration names GitHub holds.
async fn registrations(env: &TestEnv) -> BTreeSet<String> {
    env.registrations()
        .await
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect()
}

/// Runner ids the orchestrator lists as alive (not finished or failed).
async fn live_runners(env: &TestEnv) -> BTreeSet<String> {
    let (status, body) = env.get("/runners").await;
    assert_eq!(status, 200, "{body}");
    body["runners"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !matches!(r["state"].as_str(), Some("finished" | "failed")))
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs one reconcile pass, which must remove nothing; whether it found
/// no create in flight.
async fn nothing_in_flight(env: &TestEnv) -> bool {
    let (status, report) = env.post("/runners/cleanup", json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["removed"], json!([]), "{report}");
    report["in_flight"].as_array().unwrap().is_empty()
}

/// Waits until the runners of the orchestrator, its containers and GitHub's
/// registrations are the same `count`, and no create is in flight; returns
/// their names.
async fn wait_settled(env: &TestEnv, count: usize) -> BTreeSet<String> {
    wait_for(
        &format!("{count} runners, registered, and no create in flight"),
        Duration::from_secs(30),
        || async {
            let containers: BTreeSet<String> = env.containers().into_iter().collect();
            let settled = containers.len() == count
                && registrations(env).await == containers
                && live_runners(env).await == containers
                && nothing_in_flight(env).await;
            settled.then_some(containers)
        },
    )
    .await
}

fn ids(body: &Value) -> BTreeSet<String> {
    body["runners"]
        .as_array()
        .unwrap_or_else(|| panic!("no runners in {body}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_client_gives_up_still_completes_whole() {
    let env = TestEnv::start_with(Options {
        // Passes every second go on meanwhile: each sees registrations
        // with our prefix and no container, and must leave them alone.
        env: vec![("MAX_RUNNERS", "3".into())],
        ..Options::default()
    })
    .await;
    // GitHub registers each runner at once but answers three seconds later.
    fault(
        &env,
        json!({"path_prefix": JIT_PATH, "method": "POST", "mode": "after", "delay_ms": 3000, "count": 3}),
    )
    .await;
    give_up(
        impatient()
            .post(format!("{}/runners/create", env.base))
            .json(&json!({"count": 3})),
    )
    .await;

    // The batch completes after its client left: three runners, each
    // registered once, none in flight.
    let created = wait_settled(&env, 3).await;
    assert_eq!(env.jit_calls().await, 3);

    // Capacity counts the three: not one more fits, and once they are
    // deleted the whole capacity is free again.
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "capacity_exceeded");
    for id in &created {
        let (status, body) = env.delete(&format!("/runners/{id}")).await;
        assert_eq!(status, 204, "{body}");
    }
    assert_eq!(env.create(3).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_client_gives_up_and_that_fails_is_rolled_back_whole() {
    let env = TestEnv::start_with(Options {
        env: vec![("MAX_RUNNERS", "3".into())],
        ..Options::default()
    })
    .await;
    // One registration of three is refused, late; the other two are made
    // and answered late. Nothing of the batch may stay.
    fault(
        &env,
        json!({"path_prefix": JIT_PATH, "method": "POST", "status": 422, "delay_ms": 3000, "count": 1}),
    )
    .await;
    fault(
        &env,
        json!({"path_prefix": JIT_PATH, "method": "POST", "mode": "after", "delay_ms": 3000, "count": 2}),
    )
    .await;
    give_up(
        impatient()
            .post(format!("{}/runners/create", env.base))
            .json(&json!({"count": 3})),
    )
    .await;

    wait_for(
        "every fault to be used",
        Duration::from_secs(10),
        || async {
            let faults = env.sim_get("/_sim/faults").await;
            faults.as_array().unwrap().is_empty().then_some(())
        },
    )
    .await;
    // Rolled back whole: nothing at GitHub, in Docker, in the list or in flight.
    wait_settled(&env, 0).await;
    // The batch's reservation was released: the whole capacity is free.
    assert_eq!(env.create(3).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_twice_makes_one_batch() {
    let env = TestEnv::start().await;
    fault(
        &env,
        json!({"path_prefix": JIT_PATH, "method": "POST", "mode": "after", "delay_ms": 3000, "count": 2}),
    )
    .await;
    let create = |key: &'static str, wait: Option<u32>| {
        let mut request = env
            .http
            .post(format!("{}/runners/create", env.base))
            .header("idempotency-key", key)
            .json(&json!({"count": 2, "labels": ["gpu"]}));
        if let Some(seconds) = wait {
            request = request.header("prefer", format!("wait={seconds}"));
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            (status, response.json::<Value>().await.unwrap(), retry_after)
        }
    };

    // The batch outlives the one second this request will wait: 202, and
    // how it is going.
    let (status, progress, retry_after) = create("batch-1", Some(1)).await;
    assert_eq!(status, 202, "{progress}");
    assert_eq!(progress["operation"], "create_runners", "{progress}");
    assert_eq!(progress["state"], "in_progress", "{progress}");
    assert_eq!(progress["idempotency_key"], "batch-1", "{progress}");
    assert_eq!(progress["count"], 2, "{progress}");
    assert!(retry_after.is_some(), "202 says when to ask again");

    // The same request again waits for the first batch and answers it.
    let (status, first, _) = create("batch-1", None).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(ids(&first).len(), 2);
    // And again, at once, the same runners.
    let (status, again, _) = create("batch-1", None).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(ids(&again), ids(&first));

    // Two at the same time with a new key: one batch, both answered with it.
    let (a, b) = tokio::join!(create("batch-2", None), create("batch-2", None));
    assert_eq!((a.0, b.0), (201, 201), "{} {}", a.1, b.1);
    assert_eq!(ids(&a.1), ids(&b.1));

    assert_eq!(env.jit_calls().await, 4, "two batches of two");
    let containers: BTreeSet<String> = env.containers().into_iter().collect();
    let expected: BTreeSet<String> = ids(&first).union(&ids(&a.1)).cloned().collect();
    assert_eq!(containers, expected);
    assert_eq!(registrations(&env).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_reused_idempotency_key_is_refused() {
    let env = TestEnv::start().await;
    let create = |key: String, count: u32| {
        env.http
            .post(format!("{}/runners/create", env.base))
            .header("idempotency-key", key)
            .json(&json!({"count": count}))
            .send()
    };
    for key in [String::new(), "k".repeat(256)] {
        let response = create(key, 1).await.unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{body}"
        );
    }
    assert!(env.containers().is_empty());

    let response = create("k".repeat(255), 1).await.unwrap();
    assert_eq!(response.status(), 201);
    // The same key for another request: refused, and nothing more is made.
    let response = create("k".repeat(255), 2).await.unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "idempotency_key_reused", "{body}");
    assert_eq!(env.containers().len(), 1);
    assert_eq!(env.jit_calls().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_client_gives_up_still_finishes() {
    let env = TestEnv::start_with(Options {
        // Only the passes this test asks for: the delete alone must finish.
        env: vec![("RECONCILE_INTERVAL_SECONDS", "3600".into())],
        ..Options::default()
    })
    .await;
    let id = env.create(1).await.remove(0);
    wait_for(
        "the runner to be registered",
        Duration::from_secs(20),
        || async {
            let (_, body) = env.get(&format!("/runners/{id}/status")).await;
            body["github_runner_id"].is_i64().then_some(())
        },
    )
    .await;

    // GitHub refuses the deregistration, late (it says the runner is busy):
    // the runner is kept and is no longer marked as being removed.
    fault(
        &env,
        json!({"path_prefix": RUNNERS_PATH, "method": "DELETE", "status": 422, "delay_ms": 3000, "count": 1}),
    )
    .await;
    give_up(impatient().delete(format!("{}/runners/{id}", env.base))).await;
    wait_for(
        "the refused delete to end",
        Duration::from_secs(20),
        || async {
            let faults = env.sim_get("/_sim/faults").await;
            let (_, body) = env.get(&format!("/runners/{id}/status")).await;
            (faults.as_array().unwrap().is_empty() && body["state"] != "removing").then_some(())
        },
    )
    .await;
    assert!(TestDocker::inspect(&id).is_some(), "the runner is kept");
    assert_eq!(registrations(&env).await.len(), 1);

    // GitHub deletes the registration and answers late: the container goes too.
    fault(
        &env,
        json!({"path_prefix": RUNNERS_PATH, "method": "DELETE", "mode": "after", "delay_ms": 3000, "count": 1}),
    )
    .await;
    give_up(impatient().delete(format!("{}/runners/{id}", env.base))).await;
    wait_for(
        "the delete to finish after its client left",
        Duration::from_secs(30),
        || async {
            let (status, _) = env.get(&format!("/runners/{id}/status")).await;
            (status == 404 && TestDocker::inspect(&id).is_none()).then_some(())
        },
    )
    .await;
    wait_settled(&env, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_key_the_wait_and_the_202() {
    let env = TestEnv::start().await;
    let (status, spec) = env.get("/openapi.json").await;
    assert_eq!(status, 200);
    let create = &spec["paths"]["/runners/create"]["post"];
    let params = create["parameters"].as_array().unwrap();
    let key = params
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("Idempotency-Key documented");
    assert_eq!(key["in"], "header");
    assert_eq!(key["required"], false);
    assert_eq!(key["schema"]["maxLength"], 255);
    assert!(params.iter().any(|p| p["name"] == "Prefer"));
    for path in ["/runners/create", "/runners/{id}", "/runners/cleanup"] {
        let operation = spec["paths"][path]
            .as_object()
            .unwrap()
            .values()
            .find(|o| o["responses"]["202"].is_object())
            .unwrap_or_else(|| panic!("{path} documents no 202"));
        assert_eq!(
            operation["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/OperationProgress",
            "{path}"
        );
    }
    assert_eq!(
        create["responses"]["422"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let progress = &spec["components"]["schemas"]["OperationProgress"];
    assert!(
        progress["properties"]["idempotency_key"].is_object(),
        "{progress}"
    );
}
