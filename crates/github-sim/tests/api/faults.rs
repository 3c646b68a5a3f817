//! Fault injection: failing statuses, secondary rate limits, delays, clearing.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{REPO, TestSim, start};

async fn fault(t: &TestSim, spec: Value) {
    let r = t
        .raw(Method::POST, "/_sim/faults")
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{spec}");
}

#[tokio::test]
async fn server_errors_then_success() {
    let t = start().await;
    fault(
        &t,
        json!({"path_prefix": "/repos/", "method": "POST", "status": 500, "count": 2}),
    )
    .await;
    let path = format!("{REPO}/actions/runners/registration-token");
    // A GET does not match the POST-only fault.
    let r = t
        .gh(Method::GET, &format!("{REPO}/actions/runners"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..2 {
        let r = t
            .gh(Method::POST, &format!("/api/v3{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.headers().contains_key("x-ratelimit-remaining"));
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Server Error");
    }
    let r = t.gh(Method::POST, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let stats = t.stats().await;
    assert_eq!(
        stats["api_calls"]["POST /repos/{owner}/{repo}/actions/runners/registration-token"],
        3
    );
    assert_eq!(
        stats["api_calls"]["GET /repos/{owner}/{repo}/actions/runners"],
        1
    );
    assert_eq!(stats["api_calls_total"], 4);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn secondary_rate_limits_delays_and_clearing() {
    let t = start().await;
    let path = format!("{REPO}/actions/runners");
    fault(
        &t,
        json!({"path_prefix": "/repos/", "status": 429, "count": 1, "retry_after": 2}),
    )
    .await;
    fault(
        &t,
        json!({"path_prefix": "/repos/", "status": 403, "count": 1}),
    )
    .await;
    let r = t.gh(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "2");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("You have exceeded a secondary rate limit")
    );
    assert!(
        body["documentation_url"]
            .as_str()
            .unwrap()
            .ends_with("#about-secondary-rate-limits")
    );
    let r = t.gh(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_ne!(r.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(
        t.gh(Method::GET, &path).send().await.unwrap().status(),
        StatusCode::OK
    );

    fault(
        &t,
        json!({"path_prefix": "/repos/", "delay_ms": 300, "count": 1}),
    )
    .await;
    let started = Instant::now();
    assert_eq!(
        t.gh(Method::GET, &path).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    fault(
        &t,
        json!({"path_prefix": "/orgs/", "status": 502, "count": 5}),
    )
    .await;
    let listed: Value = t
        .raw(Method::GET, "/_sim/faults")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let r = t.raw(Method::DELETE, "/_sim/faults").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        t.gh(Method::GET, "/orgs/acme/actions/runners")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    for bad in [
        json!({"path_prefix": "/x", "status": 200}),
        json!({"path_prefix": "x", "status": 500}),
        json!({"path_prefix": "/x"}),
    ] {
        let r = t
            .raw(Method::POST, "/_sim/faults")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    t.sim.shutdown().await;
}

async fn registered(t: &TestSim, name: &str) -> bool {
    let runners: Vec<Value> = t
        .raw(Method::GET, "/_sim/runners")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    runners.iter().any(|r| r["name"] == name)
}

async fn jit(t: &TestSim, name: &str) -> reqwest::Result<reqwest::Response> {
    t.gh(
        Method::POST,
        &format!("{REPO}/actions/runners/generate-jitconfig"),
    )
    .json(&json!({"name": name, "runner_group_id": 1, "labels": ["x"]}))
    .send()
    .await
}

#[tokio::test]
async fn after_mode_applies_the_request_then_loses_its_answer() {
    let t = start().await;
    let prefix = format!("{REPO}/actions/runners/generate-jitconfig");

    // A 502 instead of the 201: the runner exists all the same.
    fault(
        &t,
        json!({"path_prefix": prefix, "method": "POST", "mode": "after", "status": 502}),
    )
    .await;
    let r = jit(&t, "after-502").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.headers().contains_key("x-ratelimit-remaining"));
    assert!(registered(&t, "after-502").await);
    // Mode before (the default) does not apply it.
    fault(&t, json!({"path_prefix": prefix, "status": 502})).await;
    assert_eq!(
        jit(&t, "before-502").await.unwrap().status(),
        StatusCode::BAD_GATEWAY
    );
    assert!(!registered(&t, "before-502").await);

    // No answer at all: a transport error, not a status.
    fault(
        &t,
        json!({"path_prefix": prefix, "mode": "after", "drop": true}),
    )
    .await;
    let error = jit(&t, "after-drop").await.unwrap_err();
    assert!(error.status().is_none(), "{error:?}");
    assert!(
        error.is_request() || error.is_connect() || error.is_body(),
        "{error:?}"
    );
    assert!(registered(&t, "after-drop").await);
    fault(&t, json!({"path_prefix": prefix, "drop": true})).await;
    jit(&t, "before-drop").await.unwrap_err();
    assert!(!registered(&t, "before-drop").await);

    // The real answer held past the client's timeout; the runner is there meanwhile.
    fault(
        &t,
        json!({"path_prefix": prefix, "mode": "after", "delay_ms": 3000}),
    )
    .await;
    let impatient = t
        .gh(Method::POST, &prefix)
        .timeout(Duration::from_millis(300))
        .json(&json!({"name": "after-slow", "runner_group_id": 1, "labels": ["x"]}))
        .send()
        .await
        .unwrap_err();
    assert!(impatient.is_timeout(), "{impatient:?}");
    assert!(registered(&t, "after-slow").await);

    // And the connection pool recovers: the next call is answered.
    assert_eq!(
        jit(&t, "afterwards").await.unwrap().status(),
        StatusCode::CREATED
    );
    t.sim.shutdown().await;
}

#[tokio::test]
async fn fault_specs_are_validated() {
    let t = start().await;
    for (bad, says) in [
        (
            json!({"path_prefix": "/x", "drop": true, "status": 502}),
            "drop",
        ),
        (json!({"path_prefix": "/x", "mode": "after"}), "status"),
        (
            json!({"path_prefix": "/x", "mode": "sometime", "status": 502}),
            "mode",
        ),
        (json!({"path_prefix": "/x", "stauts": 502}), "stauts"),
    ] {
        let r = t
            .raw(Method::POST, "/_sim/faults")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let message = r.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(says), "{bad}: {message}");
    }
    let r = t
        .raw(Method::POST, "/_sim/faults")
        .json(&json!({"path_prefix": "/x", "mode": "after", "drop": true, "delay_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let stored: Value = r.json().await.unwrap();
    assert_eq!(
        (stored["mode"].as_str(), stored["drop"].as_bool()),
        (Some("after"), Some(true))
    );
    t.sim.shutdown().await;
}
