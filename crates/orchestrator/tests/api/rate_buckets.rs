//! GitHub's separate rate-limit budgets and its secondary limit on
//! concurrent requests.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Options, TestEnv};

/// With the runner-registration budget spent, creates wait, while the
/// `core` calls that list and delete runners go on; `/health` shows each
/// budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_registration_budget_stops_only_creates() {
    let env = TestEnv::start().await;
    env.sim_settings(json!({"registration_rate_limit_per_hour": 2}))
        .await;
    let ids = env.create(2).await;
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "github_rate_limited");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("actions_runner_registration"), "{message}");

    let (status, health) = env.get("/health").await;
    assert_eq!(status, 200, "{health}");
    let limits = &health["github"]["rate_limits"];
    assert_eq!(
        limits["actions_runner_registration"]["remaining"], 0,
        "{health}"
    );
    assert!(
        limits["actions_runner_registration"]["paused_until"].is_string(),
        "{health}"
    );
    assert!(
        limits["core"]["remaining"].as_i64().unwrap() > 0,
        "{health}"
    );
    assert!(limits["core"]["paused_until"].is_null(), "{health}");

    // Listings and deletions are `core` calls: they go on.
    let (status, report) = env.post("/runners/cleanup", json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{report}"
    );
    for id in &ids {
        let (status, body) = env.delete(&format!("/runners/{id}")).await;
        assert!(status < 300, "{body}");
    }
    env.wait_nothing_left(Duration::from_secs(30)).await;
}

/// GitHub refuses a client with too many requests in flight (a secondary
/// limit). A burst of creates stays under the cap the orchestrator keeps
/// (`GITHUB_MAX_CONCURRENT_REQUESTS`), so none is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_stays_under_githubs_concurrency_limit() {
    let env = TestEnv::start_with(Options {
        env: vec![
            ("GITHUB_MAX_CONCURRENT_REQUESTS", "3".into()),
            ("MAX_RUNNERS", "12".into()),
        ],
        ..Options::default()
    })
    .await;
    env.sim_settings(json!({"max_concurrent_requests": 3}))
        .await;
    // Each registration is slow enough that 12 at once would overlap.
    env.sim_post(
        "/_sim/faults",
        json!({"path_prefix": "/repos/acme/app/actions/runners/generate-jitconfig", "delay_ms": 200, "count": 12}),
    )
    .await;
    let ids = env.create(12).await;
    assert_eq!(ids.len(), 12);
    assert!(
        !env.log().contains("rate limit reached"),
        "a request was refused by the concurrency limit"
    );
    for id in &ids {
        env.delete(&format!("/runners/{id}")).await;
    }
    env.wait_nothing_left(Duration::from_secs(30)).await;
}
