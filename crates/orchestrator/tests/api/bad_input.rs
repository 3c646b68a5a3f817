//! Bad input gets a JSON error with a code, the right status, and changes nothing.

use serde_json::{Value, json};

use crate::helpers::TestEnv;

async fn assert_nothing_created(env: &TestEnv) {
    assert!(env.containers().is_empty(), "no container");
    assert!(env.registrations().await.is_empty(), "no registration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_create_requests_are_refused_and_change_nothing() {
    let env = TestEnv::start().await;
    let cases: Vec<(Value, u16)> = vec![
        (json!({"count": 0}), 422),
        (json!({"count": 11}), 422),
        (json!({"count": -1}), 422),
        (json!({"count": "two"}), 422),
        (json!({"count": 1, "colour": "red"}), 422),
        (json!({"count": 1, "repository": "not-a-repo"}), 422),
        (
            json!({"count": 1, "repository": "a/b", "organization": "a"}),
            422,
        ),
        (json!({"count": 1, "labels": [""]}), 422),
        (json!({"count": 1, "labels": ["has space"]}), 422),
        (json!({"count": 1, "labels": ["a,b"]}), 422),
        (json!({"count": 1, "labels": ["x".repeat(101)]}), 422),
        (
            json!({"count": 1, "labels": (0..100).map(|i| format!("l{i}")).collect::<Vec<_>>()}),
            422,
        ),
        (json!({"count": 1, "image": "alpine:latest"}), 422),
        (json!({"count": 1, "repository": "acme/unknown"}), 422),
    ];
    for (body, expected) in cases {
        let (status, answer) = env.post("/runners/create", body.clone()).await;
        assert_eq!(status, expected, "{body} → {answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    // Unreadable JSON.
    let response = env
        .http
        .post(format!("{}/runners/create", env.base))
        .header("content-type", "application/json")
        .body("{\"count\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_nothing_created(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runners_and_odd_ids_are_clear_errors() {
    let env = TestEnv::start().await;
    let (status, body) = env.get("/runners/gha-runner-nope/status").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    for id in ["..", "a%2Fb", "%2E%2E", &"x".repeat(300)] {
        let (status, body) = env.get(&format!("/runners/{id}/status")).await;
        assert!(status == 400 || status == 404, "{id}: {status} {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    let (status, body) = env.get("/runners?state=sleeping").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = env.get("/runners?state=idle").await;
    assert_eq!(status, 200);
    let (status, body) = env.get("/nowhere").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_image_that_cannot_be_had_answers_503() {
    let env = TestEnv::start_with(crate::helpers::Options {
        env: vec![(
            "RUNNER_IMAGE_ALLOWLIST",
            format!(
                "{},gha-test-absent:never",
                test_support::images::SIM_RUNNER_IMAGE
            ),
        )],
        ..Default::default()
    })
    .await;
    let (status, body) = env
        .post(
            "/runners/create",
            json!({"count": 1, "image": "gha-test-absent:never"}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "image_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gha-test-absent:never")
    );
    assert_nothing_created(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_github_rejects_answers_502_and_creates_nothing() {
    let env = TestEnv::start_with(crate::helpers::Options {
        env: vec![("GITHUB_TOKEN", "ghp_wrong".into())],
        ..Default::default()
    })
    .await;
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "github_unauthorized");
    assert_nothing_created(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_clear_errors_and_the_service_keeps_serving() {
    let env = TestEnv::start().await;
    let send = |body: Vec<u8>| {
        env.http
            .post(format!("{}/runners/create", env.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Deeply nested JSON: refused by the parser's depth limit, not a stack overflow.
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes();
    let response = send(nested).await.unwrap();
    assert!(
        [400, 422].contains(&response.status().as_u16()),
        "{}",
        response.status()
    );
    assert!(response.json::<Value>().await.unwrap()["error"]["code"].is_string());
    // A huge body: 413 before it is read to the end.
    let huge = format!(
        "{{\"count\": 1, \"labels\": [\"{}\"]}}",
        "x".repeat(2 << 20)
    )
    .into_bytes();
    let response = send(huge).await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );
    // Invalid UTF-8.
    let response = send(b"{\"count\": 1, \"repository\": \"\xff\xfe\"}".to_vec())
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_request"
    );
    // Nothing was created, and everyone else is still served.
    assert_nothing_created(&env).await;
    let (status, _) = env.get("/health").await;
    assert_eq!(status, 200);
}
