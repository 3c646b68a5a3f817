//! Forwarding: path mapping, query, body, headers, status and body back,
//! request ids, 404, 502, 504.

use reqwest::Method;

use crate::helpers::{TestGateway, TestUpstream, closed_upstream, error_code, silent_upstream};

/// Sends one request through the gateway and checks what the orchestrator
/// got and what came back.
#[allow(clippy::too_many_arguments)]
async fn check_mapping(
    method: Method,
    gateway_path: &str,
    body: Option<&str>,
    upstream_path: &str,
    upstream_query: Option<&str>,
    status: u16,
    answer: &str,
) {
    let upstream = TestUpstream::start().await;
    upstream.reply(status, answer);
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let mut request = gw.authed(method.clone(), gateway_path);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), status, "{method} {gateway_path}");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.text().await.unwrap(),
        answer,
        "body passed through"
    );
    let got = upstream.single();
    assert_eq!(got.method, method);
    assert_eq!(got.path, upstream_path);
    assert_eq!(got.query.as_deref(), upstream_query);
    assert_eq!(got.body, body.unwrap_or("").as_bytes());
}

#[tokio::test]
async fn create_goes_to_runners_create() {
    check_mapping(
        Method::POST,
        "/api/v1/runners",
        Some(r#"{"count":2,"labels":["gpu"]}"#),
        "/runners/create",
        None,
        201,
        r#"{"runners":[]}"#,
    )
    .await;
}

#[tokio::test]
async fn create_error_passes_through_unchanged() {
    check_mapping(
        Method::POST,
        "/api/v1/runners",
        Some(r#"{"count":99}"#),
        "/runners/create",
        None,
        409,
        r#"{"error":{"code":"capacity_exceeded","message":"only 3 free"}}"#,
    )
    .await;
}

#[tokio::test]
async fn list_keeps_the_query() {
    check_mapping(
        Method::GET,
        "/api/v1/runners?state=idle&repository=octo-org%2Fhello",
        None,
        "/runners",
        Some("state=idle&repository=octo-org%2Fhello"),
        200,
        r#"{"total":0,"runners":[]}"#,
    )
    .await;
}

#[tokio::test]
async fn get_goes_to_status() {
    check_mapping(
        Method::GET,
        "/api/v1/runners/gha-runner-k3j9x2mq",
        None,
        "/runners/gha-runner-k3j9x2mq/status",
        None,
        404,
        r#"{"error":{"code":"not_found","message":"runner gha-runner-k3j9x2mq does not exist"}}"#,
    )
    .await;
}

#[tokio::test]
async fn delete_keeps_the_query() {
    let upstream = TestUpstream::start().await;
    upstream.reply(204, "");
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let response = gw
        .authed(Method::DELETE, "/api/v1/runners/gha-runner-1?force=true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let got = upstream.single();
    assert_eq!(got.method, Method::DELETE);
    assert_eq!(got.path, "/runners/gha-runner-1");
    assert_eq!(got.query.as_deref(), Some("force=true"));
}

#[tokio::test]
async fn cleanup_goes_to_cleanup() {
    check_mapping(
        Method::POST,
        "/api/v1/runners/cleanup",
        None,
        "/runners/cleanup",
        None,
        200,
        r#"{"removed":[],"by_reason":{},"warnings":[]}"#,
    )
    .await;
}

#[tokio::test]
async fn webhook_body_and_github_headers_arrive_byte_for_byte() {
    let upstream = TestUpstream::start().await;
    upstream.reply(202, r#"{"accepted":true}"#);
    let gw = TestGateway::spawn(&upstream.url, &[]);
    // Odd spacing, key order and a non-ASCII byte: any re-encoding would show.
    let payload: &[u8] =
        b"{\"action\":\"queued\",  \"workflow_job\" : {\"id\":1,\"name\":\"caf\xc3\xa9\"}}\n";
    let response = gw
        .client
        .post(gw.url("/api/v1/webhooks/github"))
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/abc123")
        .header("x-github-event", "workflow_job")
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header("x-hub-signature-256", "sha256=deadbeef")
        .body(payload.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.unwrap(), r#"{"accepted":true}"#);
    let got = upstream.single();
    assert_eq!(got.path, "/webhooks/github");
    assert_eq!(got.body.as_ref(), payload);
    for (name, value) in [
        ("content-type", "application/json"),
        ("user-agent", "GitHub-Hookshot/abc123"),
        ("x-github-event", "workflow_job"),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("x-hub-signature-256", "sha256=deadbeef"),
    ] {
        assert_eq!(got.headers[name], value, "{name}");
    }
}

#[tokio::test]
async fn request_id_is_made_sent_upstream_and_returned_or_kept() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let response = gw
        .authed(Method::GET, "/api/v1/runners")
        .send()
        .await
        .unwrap();
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!made.is_empty());
    assert_eq!(upstream.single().headers["x-request-id"], made.as_str());

    let response = gw
        .authed(Method::GET, "/api/v1/runners")
        .header("x-request-id", "my-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "my-id-42");
    assert_eq!(upstream.received()[1].headers["x-request-id"], "my-id-42");

    // The gateway's own answers carry it too.
    let response = gw
        .client
        .get(gw.url("/api/v1/runners"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn ids_cannot_reach_other_orchestrator_paths() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    for path in [
        "/api/v1/runners/..%2Fcleanup",
        "/api/v1/runners/a%2Fb",
        "/api/v1/runners/..",
        "/api/v1/runners/x%3Fy",
    ] {
        let response = gw.authed(Method::GET, path).send().await.unwrap();
        assert!(
            response.status() == 400 || response.status() == 404,
            "{path}: {}",
            response.status()
        );
        error_code(response).await;
    }
    assert!(upstream.received().is_empty(), "{:#?}", upstream.received());
}

#[tokio::test]
async fn unknown_path_and_method_get_json() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let response = gw
        .authed(Method::GET, "/api/v2/nothing")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(response).await, "not_found");
    let response = gw
        .authed(Method::PUT, "/api/v1/runners")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(error_code(response).await, "method_not_allowed");
}

#[tokio::test]
async fn unreachable_orchestrator_is_502() {
    let gw = TestGateway::spawn(&closed_upstream(), &[]);
    let response = gw
        .authed(Method::GET, "/api/v1/runners")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(error_code(response).await, "orchestrator_unreachable");
}

#[tokio::test]
async fn silent_orchestrator_is_504() {
    let url = silent_upstream().await;
    let gw = TestGateway::spawn(&url, &[("UPSTREAM_TIMEOUT_SECONDS", "1")]);
    let started = std::time::Instant::now();
    let response = gw
        .authed(Method::GET, "/api/v1/runners")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(error_code(response).await, "orchestrator_timeout");
}
