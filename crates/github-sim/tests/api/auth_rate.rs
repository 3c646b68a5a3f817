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

async fn jit_status(t: &crate::helpers::TestSim, name: &str) -> reqwest::Response {
    t.gh(
        Method::POST,
        &format!("{REPO}/actions/runners/generate-jitconfig"),
    )
    .json(&serde_json::json!({"name": name, "runner_group_id": 1, "labels": ["x"]}))
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn registration_has_its_own_bucket() {
    let t = start_with(|c| {
        c.rate_limit_per_hour = 100;
        c.registration_rate_limit_per_hour = 2;
    })
    .await;
    for (i, remaining) in [(0, "1"), (1, "0")] {
        let r = jit_status(&t, &format!("bucket-{i}")).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let h = r.headers();
        assert_eq!(h["x-ratelimit-resource"], "actions_runner_registration");
        assert_eq!(h["x-ratelimit-limit"], "2");
        assert_eq!(h["x-ratelimit-remaining"], remaining);
    }
    // registration-token shares the bucket: exhausted.
    for path in [
        format!("{REPO}/actions/runners/registration-token"),
        "/orgs/acme/actions/runners/registration-token".to_owned(),
    ] {
        let r = t.gh(Method::POST, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
        assert_eq!(
            r.headers()["x-ratelimit-resource"],
            "actions_runner_registration"
        );
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("API rate limit exceeded for user ID")
        );
    }
    let r = jit_status(&t, "bucket-2").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Everything else is core, untouched by the exhausted bucket.
    for (method, path) in [
        (Method::GET, format!("{REPO}/actions/runners")),
        (Method::POST, format!("{REPO}/actions/runners/remove-token")),
    ] {
        let r = t.gh(method, &path).send().await.unwrap();
        assert!(r.status().is_success(), "{path}");
        assert_eq!(r.headers()["x-ratelimit-resource"], "core");
        assert_eq!(r.headers()["x-ratelimit-limit"], "100");
    }
    let body: Value = t
        .gh(Method::GET, "/rate_limit")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resources = &body["resources"];
    assert_eq!(resources["actions_runner_registration"]["remaining"], 0);
    assert_eq!(resources["actions_runner_registration"]["used"], 2);
    assert_eq!(resources["core"]["used"], 2);
    assert_eq!(body["rate"], resources["core"]);
    assert!(resources["search"]["limit"].is_u64());

    // A budget raised at run time takes effect at once.
    let r = t
        .raw(Method::PATCH, "/_sim/settings")
        .json(&serde_json::json!({"registration_rate_limit_per_hour": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        jit_status(&t, "bucket-3").await.status(),
        StatusCode::CREATED
    );
    t.sim.shutdown().await;
}

#[tokio::test]
async fn too_many_concurrent_requests_hit_the_secondary_limit() {
    let t = start_with(|c| c.max_concurrent_requests = 1).await;
    let path = format!("{REPO}/actions/runners");
    let r = t
        .raw(Method::POST, "/_sim/faults")
        .json(&serde_json::json!({"path_prefix": "/repos/", "delay_ms": 5000, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let slow = tokio::spawn(t.gh(Method::GET, &path).send());
    crate::helpers::wait_for(
        "a request in flight",
        std::time::Duration::from_secs(5),
        || async { (t.stats().await["in_flight"] == 1).then_some(()) },
    )
    .await;
    let r = t.gh(Method::GET, "/rate_limit").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_ne!(r.headers()["x-ratelimit-remaining"], "0");
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
    // Lifted at run time: the same request goes through while the slow one is held.
    t.raw(Method::PATCH, "/_sim/settings")
        .json(&serde_json::json!({"max_concurrent_requests": 0}))
        .send()
        .await
        .unwrap();
    let r = t.gh(Method::GET, "/rate_limit").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    slow.abort();
    t.sim.shutdown().await;
}

#[tokio::test]
async fn settings_can_be_read_and_changed_with_validation() {
    let t = start().await;
    let get = || async {
        t.raw(Method::GET, "/_sim/settings")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let defaults = serde_json::json!({
        "run_listing_lag_seconds": 0,
        "webhook_content_type": "json",
        "max_concurrent_requests": 0,
        "rate_limit_per_hour": 5000,
        "registration_rate_limit_per_hour": 10000,
        "installation_token_lifetime_seconds": 3600,
        "installation_rate_limit_per_hour": 0,
    });
    assert_eq!(get().await, defaults);
    for (bad, says) in [
        (
            serde_json::json!({"webhook_content_type": "xml"}),
            "webhook_content_type",
        ),
        (
            serde_json::json!({"run_listing_lag_seconds": -2}),
            "run_listing_lag_seconds",
        ),
        (serde_json::json!({"rate_limit": 1}), "unknown setting"),
        (
            serde_json::json!({"max_concurrent_requests": 1, "nope": true}),
            "nope",
        ),
    ] {
        let r = t
            .raw(Method::PATCH, "/_sim/settings")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let message = r.json::<Value>().await.unwrap()["message"].clone();
        assert!(message.as_str().unwrap().contains(says), "{message}");
    }
    assert_eq!(get().await, defaults, "a refused patch changes nothing");
    let r = t
        .raw(Method::PATCH, "/_sim/settings")
        .json(&serde_json::json!({"rate_limit_per_hour": 7, "run_listing_lag_seconds": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let now = get().await;
    assert_eq!(
        (
            now["rate_limit_per_hour"].as_u64(),
            now["run_listing_lag_seconds"].as_u64()
        ),
        (Some(7), Some(2))
    );
    let r = t
        .gh(Method::GET, &format!("{REPO}/actions/runners"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-ratelimit-limit"], "7");
    t.sim.shutdown().await;
}
