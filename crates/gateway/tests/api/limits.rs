//! Rate limits (per client, proxy headers only when trusted), CORS, body size.

use reqwest::Method;

use crate::helpers::{TestGateway, TestUpstream, error_code};

const TIGHT: [(&str, &str); 2] = [("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "3")];

/// Sends requests (with the given `X-Forwarded-For`) until one is limited;
/// returns how many passed before, and the 429.
async fn until_limited(
    gw: &TestGateway,
    forwarded_for: Option<&str>,
) -> (usize, reqwest::Response) {
    for passed in 0..10 {
        let mut request = gw.authed(Method::GET, "/api/v1/runners");
        if let Some(xff) = forwarded_for {
            request = request.header("x-forwarded-for", xff);
        }
        let response = request.send().await.unwrap();
        if response.status() == 429 {
            return (passed, response);
        }
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-ratelimit-remaining"));
    }
    panic!("never limited");
}

#[tokio::test]
async fn burst_then_429_with_retry_after_and_json() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &TIGHT);
    let (passed, response) = until_limited(&gw, None).await;
    assert!((3..=4).contains(&passed), "{passed} passed");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(response.headers()["x-ratelimit-limit"], "3");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(error_code(response).await, "rate_limited");
    // Liveness probes are never throttled.
    for _ in 0..5 {
        let response = gw.client.get(gw.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn spoofed_forwarded_for_does_not_escape_the_limit() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &TIGHT);
    let mut limited = false;
    for i in 0..8 {
        let response = gw
            .authed(Method::GET, "/api/v1/runners")
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .header("forwarded", format!("for=198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(
        limited,
        "fresh X-Forwarded-For values must not give fresh buckets"
    );
}

#[tokio::test]
async fn trusted_proxy_headers_give_each_client_its_own_bucket() {
    let upstream = TestUpstream::start().await;
    let mut env = TIGHT.to_vec();
    env.push(("TRUST_PROXY_HEADERS", "true"));
    let gw = TestGateway::spawn(&upstream.url, &env);
    let (passed, _) = until_limited(&gw, Some("203.0.113.1")).await;
    assert!(passed >= 3);
    let response = gw
        .authed(Method::GET, "/api/v1/runners")
        .header("x-forwarded-for", "203.0.113.2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "another client has its own bucket");
}

#[tokio::test]
async fn cors_preflight_allows_listed_origin_and_refuses_others() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[("CORS_ORIGINS", "https://ok.example")]);
    let preflight = |origin: &'static str| {
        gw.client
            .request(Method::OPTIONS, gw.url("/api/v1/runners"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-api-key, content-type")
            .send()
    };
    let response = preflight("https://ok.example").await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://ok.example"
    );
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("x-api-key") && allowed.contains("content-type"),
        "{allowed}"
    );
    let response = preflight("https://evil.example").await.unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert!(
        upstream.received().is_empty(),
        "preflights stay at the gateway"
    );
}

#[tokio::test]
async fn cors_headers_go_to_browsers_and_vary_to_everyone() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[("CORS_ORIGINS", "https://ok.example")]);
    let vary = |response: &reqwest::Response| {
        response
            .headers()
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // A browser's request: allowed origin echoed, the CORS headers exposed.
    let response = gw
        .authed(Method::GET, "/api/v1/runners")
        .header("origin", "https://ok.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://ok.example"
    );
    assert!(
        response
            .headers()
            .contains_key("access-control-expose-headers")
    );
    assert!(vary(&response).contains("origin"), "{}", vary(&response));
    // curl's: no CORS headers, but Vary: Origin, so no cache hands it to a
    // browser.
    let response = gw
        .authed(Method::GET, "/api/v1/runners")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert!(vary(&response).contains("origin"), "{}", vary(&response));
    // An OPTIONS without Origin is still answered at the gateway.
    let response = gw
        .client
        .request(Method::OPTIONS, gw.url("/api/v1/runners"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        upstream.received().len(),
        2,
        "only the two GETs went upstream"
    );
}

#[tokio::test]
async fn body_over_the_limit_gets_413_json() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let big = vec![b'x'; 2 * 1024 * 1024];
    let response = gw
        .authed(Method::POST, "/api/v1/runners")
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");
    // The open webhook path has the same limit.
    let response = gw
        .client
        .post(gw.url("/api/v1/webhooks/github"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn github_webhook_bursts_are_not_rate_limited() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &TIGHT);
    // GitHub delivers bursts from a few addresses and never retries a
    // delivery answered 429, so every one of them must reach the
    // orchestrator (which checks the signature).
    for i in 0..50 {
        let response = gw
            .client
            .post(gw.url("/api/v1/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "workflow_job")
            .header("x-github-delivery", format!("delivery-{i}"))
            .header("x-hub-signature-256", "sha256=00")
            .body(format!(r#"{{"n":{i}}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "delivery {i}");
    }
    let received = upstream.received();
    assert_eq!(received.len(), 50);
    assert!(received.iter().all(|r| r.path == "/webhooks/github"));
    assert_eq!(received[49].body, r#"{"n":49}"#);
    // The same client is still limited everywhere else.
    let (passed, response) = until_limited(&gw, None).await;
    assert!((3..=4).contains(&passed), "{passed} passed");
    assert_eq!(error_code(response).await, "rate_limited");
}

#[tokio::test]
async fn guessing_api_keys_is_rate_limited_like_any_request() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &TIGHT);
    let mut statuses = Vec::new();
    for guess in 0..10 {
        let response = gw
            .client
            .get(gw.url("/api/v1/runners"))
            .header("x-api-key", format!("guess-{guess}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    assert!((3..=4).contains(&unauthorized), "{statuses:?}");
    assert!(statuses.ends_with(&[429; 6]), "{statuses:?}");
    // The right key from the same client is throttled too until tokens return.
    let response = gw
        .authed(Method::GET, "/api/v1/runners")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(
        upstream.received().is_empty(),
        "no guess reached the orchestrator"
    );
}
