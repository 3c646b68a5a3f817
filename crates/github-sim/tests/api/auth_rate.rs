//! Authentication (401/404), rate-limit headers, `/rate_limit`, exhaustion, API version.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{REPO, start, start_with};

const RATE_HEADERS: [&str; 5] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-used",
    "x-ratelimit-reset",
    "x-ratelimit-resource",
];

#[tokio::test]
async fn bad_credentials_and_unknown_owners() {
    let t = start().await;
    let path = format!("{}{REPO}/actions/runners", t.base);
    let attempts = [
        t.client.get(&path),
        t.client.get(&path).bearer_auth("wrong"),
        t.client
            .get(&path)
            .header("authorization", "Basic dGVzdC10b2tlbg=="),
        t.client
            .get(format!("{}/api/v3{REPO}/actions/runners", t.base)),
        t.client.post(format!(
            "{}/orgs/acme/actions/runners/registration-token",
            t.base
        )),
    ];
    for attempt in attempts {
        let r = attempt.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        for h in RATE_HEADERS {
            assert!(r.headers().contains_key(h), "{h}");
        }
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["message"], "Bad credentials");
        assert_eq!(body["documentation_url"], "https://docs.github.com/rest");
    }
    let r = t
        .client
        .get(&path)
        .header("authorization", "token test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    for path in [
        "/repos/ghost/app/actions/runners",
        "/orgs/ghost/actions/runners",
        "/orgs/octo/actions/runners",
        "/nope",
    ] {
        let r = t.gh(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(r.headers().contains_key("x-ratelimit-remaining"));
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Not Found");
    }

    let r = t
        .gh(Method::GET, &format!("{REPO}/actions/runners"))
        .header("x-github-api-version", "2022-11-28")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = t
        .gh(Method::GET, &format!("{REPO}/actions/runners"))
        .header("x-github-api-version", "1999-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn rate_limit_headers_endpoint_and_exhaustion() {
    let t = start_with(|c| c.rate_limit_per_hour = 3).await;
    let path = format!("{REPO}/actions/runners");

    let r = t.gh(Method::GET, "/rate_limit").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resources"]["core"]["limit"], 3);
    assert_eq!(body["resources"]["core"]["remaining"], 3);
    assert_eq!(body["rate"]["used"], 0);
    assert!(body["rate"]["reset"].as_u64().unwrap() > 1_700_000_000);

    for used in 1..=3u64 {
        let r = t.gh(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(h["x-ratelimit-limit"], "3");
        assert_eq!(h["x-ratelimit-used"], used.to_string().as_str());
        assert_eq!(h["x-ratelimit-remaining"], (3 - used).to_string().as_str());
        assert_eq!(h["x-ratelimit-resource"], "core");
        let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!(reset > chrono::Utc::now().timestamp().unsigned_abs());
    }
    for _ in 0..2 {
        let r = t
            .gh(Method::GET, &format!("/api/v3{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("API rate limit exceeded")
        );
        assert!(
            body["documentation_url"]
                .as_str()
                .unwrap()
                .ends_with("#primary-rate-limit")
        );
    }
    // /rate_limit still answers and does not count.
    let r = t
        .gh(Method::GET, "/api/v3/rate_limit")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resources"]["core"]["remaining"], 0);
    assert_eq!(body["resources"]["core"]["used"], 3);
    let stats = t.stats().await;
    assert_eq!(stats["rate_limit"]["used"], 3);
    assert_eq!(stats["rate_limit"]["remaining"], 0);
    t.sim.shutdown().await;
}
