//! API keys: both header forms, 401 shape, open paths, auth off.

use reqwest::Method;

use crate::helpers::{KEY, TestGateway, TestUpstream, error_code};

#[tokio::test]
async fn missing_and_wrong_keys_get_401_json_with_challenge() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let attempts = [
        gw.client.get(gw.url("/api/v1/runners")),
        gw.client
            .get(gw.url("/api/v1/runners"))
            .header("x-api-key", "wrong"),
        gw.client
            .get(gw.url("/api/v1/runners"))
            .bearer_auth("wrong"),
        gw.client
            .get(gw.url("/api/v1/runners"))
            .basic_auth("user", Some(KEY)),
    ];
    for attempt in attempts {
        let response = attempt.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("ApiKey"), "{challenge}");
        assert_eq!(error_code(response).await, "unauthorized");
    }
    assert!(
        upstream.received().is_empty(),
        "nothing reaches the orchestrator"
    );
}

#[tokio::test]
async fn right_key_in_either_header_passes_and_is_not_forwarded() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[("API_KEYS", "other, test-key-0123456789")]);
    let response = gw
        .authed(Method::GET, "/api/v1/runners")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = gw
        .client
        .get(gw.url("/api/v1/runners"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = upstream.received();
    assert_eq!(received.len(), 2);
    for request in received {
        assert!(!request.headers.contains_key("x-api-key"));
        assert!(!request.headers.contains_key("authorization"));
    }
}

#[tokio::test]
async fn open_paths_need_no_key() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    for path in ["/health", "/healthz", "/openapi.json", "/docs/", "/redoc"] {
        let response = gw.client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let response = gw
        .client
        .post(gw.url("/api/v1/webhooks/github"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // /api/v1/health is open too (503 here: the stand-in's body is no health document).
    let response = gw
        .client
        .get(gw.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), 401);
}

#[tokio::test]
async fn empty_api_keys_turns_authentication_off() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[("API_KEYS", "")]);
    let response = gw
        .client
        .get(gw.url("/api/v1/runners"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let health: api_types::GatewayHealth = gw
        .client
        .get(gw.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!health.authentication);
}
