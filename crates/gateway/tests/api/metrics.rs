//! `GET /api/v1/metrics`: behind the API key, forwarded to the
//! orchestrator's `/metrics`, its Prometheus text passed back unchanged
//! (not JSON: the proxy forwards bytes and the content type).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::routing::get;

use crate::helpers::{KEY, TestGateway, error_code};

/// What a Prometheus text answer looks like, labels with spaces and quotes
/// included.
const TEXT: &str = "# HELP gha_runners Live runners by pool and state.\n\
# TYPE gha_runners gauge\n\
gha_runners{pool=\"default\",state=\"idle\"} 2\n\
gha_runners{pool=\"large builds\",state=\"busy\"} 1\n\
# HELP gha_job_wait_seconds Time from a job being queued to its start.\n\
# TYPE gha_job_wait_seconds histogram\n\
gha_job_wait_seconds_bucket{pool=\"default\",le=\"1\"} 3\n\
gha_job_wait_seconds_bucket{pool=\"default\",le=\"+Inf\"} 4\n\
gha_job_wait_seconds_sum{pool=\"default\"} 6.5\n\
gha_job_wait_seconds_count{pool=\"default\"} 4\n";

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The headers of each request the stand-in received.
type Received = Arc<Mutex<Vec<HeaderMap>>>;

/// A stand-in for the orchestrator that serves only `GET /metrics`.
async fn metrics_upstream() -> (String, Received) {
    let received = Received::default();
    let app = Router::new()
        .route(
            "/metrics",
            get(
                |State(received): State<Received>, request: Request| async move {
                    received.lock().unwrap().push(request.headers().clone());
                    ([("content-type", CONTENT_TYPE)], TEXT)
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn metrics_need_the_key_and_come_back_as_the_orchestrator_wrote_them() {
    let (upstream, received) = metrics_upstream().await;
    let gw = TestGateway::spawn(&upstream, &[]);

    let response = gw
        .client
        .get(gw.url("/api/v1/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(error_code(response).await, "unauthorized");
    let response = gw
        .client
        .get(gw.url("/api/v1/metrics"))
        .bearer_auth("wrong-key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(received.lock().unwrap().is_empty(), "nothing forwarded");

    // As Prometheus sends it: `Authorization: Bearer KEY`.
    let response = gw
        .client
        .get(gw.url("/api/v1/metrics"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
    let text = response.text().await.unwrap();
    assert_eq!(text, TEXT, "the text passes through byte for byte");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text");
    let large = scrape
        .samples
        .iter()
        .find(|s| s.metric == "gha_runners" && s.labels.get("pool") == Some("large builds"))
        .expect("the large pool's runners");
    assert_eq!(large.value, prometheus_parse::Value::Gauge(1.0));

    // The key in `X-API-Key` works too; neither reaches the orchestrator.
    let response = gw
        .authed(reqwest::Method::GET, "/api/v1/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2);
    for headers in received.iter() {
        assert!(!headers.contains_key("authorization"));
        assert!(!headers.contains_key("x-api-key"));
    }
}

#[test]
fn the_document_lists_metrics_behind_the_key_as_text() {
    let spec = serde_json::to_value(gateway::openapi_document()).unwrap();
    let get = &spec["paths"]["/api/v1/metrics"]["get"];
    assert!(
        get["responses"]["200"]["content"]["text/plain"].is_object(),
        "{get}"
    );
    assert_eq!(
        get["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let security = get["security"].as_array().expect("security");
    assert!(security.iter().any(|s| s.get("bearer").is_some()), "{get}");
}
