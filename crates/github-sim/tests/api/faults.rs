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
