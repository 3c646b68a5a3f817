//! GitHub failing during a create: a clear error, nothing left behind.

use std::time::Duration;

use serde_json::json;

use crate::helpers::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_500s_during_a_batch_roll_everything_back() {
    let env = TestEnv::start().await;
    // The three JIT calls of the batch run side by side: 7 faults fail all
    // first and second attempts and one third attempt, so exactly one runner
    // fails after its bounded retries while two succeed and must be rolled back.
    let (status, _) = env
        .sim_post(
            "/_sim/faults",
            json!({"path_prefix": "/repos/acme/app/actions/runners/generate-jitconfig", "status": 500, "count": 7}),
        )
        .await;
    assert!(status < 300);
    let (status, body) = env.post("/runners/create", json!({"count": 3})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "github_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("rolled back") && message.contains("500"),
        "{message}"
    );
    env.wait_nothing_left(Duration::from_secs(15)).await;
    // Bounded retries: at most 3 attempts per runner.
    let stats = env.sim_get("/_sim/stats").await;
    let jit = stats["api_calls"]["POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig"]
        .as_i64()
        .unwrap();
    assert!(jit <= 9, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_rate_limit_answers_503_with_retry_after() {
    let env = TestEnv::start().await;
    env.sim_post(
        "/_sim/faults",
        json!({"path_prefix": "/repos/", "status": 429, "count": 1, "retry_after": 2}),
    )
    .await;
    let response = env
        .http
        .post(format!("{}/runners/create", env.base))
        .json(&json!({"count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "github_rate_limited");
    // While paused, no call reaches GitHub.
    let before = env.sim_get("/_sim/stats").await["api_calls_total"]
        .as_i64()
        .unwrap();
    let (status, _) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 503);
    let after = env.sim_get("/_sim/stats").await["api_calls_total"]
        .as_i64()
        .unwrap();
    assert!(
        after - before <= 1,
        "calls made while paused: {}",
        after - before
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 201, "{body}");
    assert!(env.containers().len() == 1);
}
