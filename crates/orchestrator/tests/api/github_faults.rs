//! GitHub failing during a create: a clear error, nothing left behind.

use std::time::Duration;

use serde_json::json;
use test_support::wait_for;

use crate::helpers::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_500s_during_a_batch_roll_everything_back() {
    let env = TestEnv::start().await;
    // A POST is never repeated blindly: after a 500, the runner is looked up
    // by name, and only when GitHub holds none is one more registration
    // tried under a new name. The three JIT calls of the batch run side by
    // side: 4 faults fail all three first attempts and one second attempt,
    // so exactly one runner fails while two succeed and must be rolled back.
    let (status, _) = env
        .sim_post(
            "/_sim/faults",
            json!({"path_prefix": "/repos/acme/app/actions/runners/generate-jitconfig", "status": 500, "count": 4}),
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
    // Two registrations per runner at most, each second one after a
    // lookup. (Usually 6 calls; under load one runner's first call can come
    // after the others' retries have used the faults up, and then succeed.)
    let calls = env.jit_calls().await;
    assert!((5..=6).contains(&calls), "{calls} registrations");
    let stats = env.sim_get("/_sim/stats").await;
    let lookups = stats["api_calls"]["GET /repos/{owner}/{repo}/actions/runners"]
        .as_i64()
        .unwrap_or(0);
    assert!(lookups >= calls - 3, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_rate_limit_answers_503_with_retry_after() {
    let env = TestEnv::start().await;
    // On the create's own call: a reconcile pass (every second here) lists
    // runners under /repos/ too, and could meet the fault while the create
    // goes through.
    env.sim_post(
        "/_sim/faults",
        json!({"path_prefix": "/repos/acme/app/actions/runners/generate-jitconfig", "status": 429, "count": 1, "retry_after": 2}),
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
    // Once the pause is over (as /health tells), creates work again.
    wait_for("the pause to end", Duration::from_secs(10), || async {
        let (_, health) = env.get("/health").await;
        health["github"]["paused_until"].is_null().then_some(())
    })
    .await;
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 201, "{body}");
    assert!(env.containers().len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_creates_under_github_faults_stays_bounded_and_leaks_nothing() {
    let env = TestEnv::start().await;
    // 500s first, then a secondary rate limit: every create of the burst
    // meets one or the other.
    env.sim_post(
        "/_sim/faults",
        json!({"path_prefix": "/repos/acme/app/actions/runners/generate-jitconfig", "status": 500, "count": 4}),
    )
    .await;
    env.sim_post(
        "/_sim/faults",
        json!({"path_prefix": "/repos/acme/app/actions/runners/generate-jitconfig", "status": 403, "count": 1, "retry_after": 3}),
    )
    .await;
    let before = env.sim_get("/_sim/stats").await["api_calls_total"]
        .as_i64()
        .unwrap();
    let burst = (0..5).map(|_| env.post("/runners/create", json!({"count": 2})));
    let results = futures::future::join_all(burst).await;
    for (status, body) in &results {
        assert!([201, 502, 503].contains(status), "{status} {body}");
        if *status == 503 {
            assert_eq!(body["error"]["code"], "github_rate_limited");
        }
    }
    let after = env.sim_get("/_sim/stats").await["api_calls_total"]
        .as_i64()
        .unwrap();
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    eprintln!(
        "figure: GitHub 500 ×4 then secondary limit: burst of 5 creates × 2 runners answered {statuses:?} with {} GitHub calls",
        after - before
    );
    // 10 runners asked for, at most two registrations each (each second
    // one after a lookup by name), and none while paused: no runaway loop.
    assert!(
        after - before <= 30,
        "{} GitHub calls for a burst of 10 runners",
        after - before
    );
    assert!(
        results.iter().any(|(s, _)| *s == 503),
        "the secondary limit reached a caller as 503"
    );
    // Whatever failed was rolled back: every registration has its container.
    // A rollback that met the secondary limit's pause leaves its registration
    // to the reconciler: passes that can read GitHub settle it.
    wait_for(
        "every registration to have its container",
        Duration::from_secs(30),
        || async {
            let (_, report) = env.post("/runners/cleanup", json!({})).await;
            if !report["warnings"].as_array().is_some_and(|w| w.is_empty()) {
                return None;
            }
            let registrations: Vec<String> = env
                .registrations()
                .await
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect();
            let mut containers = env.containers();
            let mut names = registrations.clone();
            names.sort();
            containers.sort();
            (names == containers).then_some(())
        },
    )
    .await;
}
