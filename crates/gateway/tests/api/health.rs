//! `/health`, `/api/v1/health` and the `healthcheck` subcommand.

use std::collections::BTreeMap;
use std::process::Command;

use api_types::{
    DockerHealth, GatewayHealth, GitHubHealth, HealthStatus, OrchestratorHealth, RunnerImageHealth,
};

use crate::helpers::{TestGateway, TestUpstream, closed_upstream};

fn orchestrator_health(status: HealthStatus) -> OrchestratorHealth {
    OrchestratorHealth {
        status,
        version: "0.1.0".into(),
        docker: DockerHealth {
            reachable: true,
            version: Some("27.0".into()),
            api_version: Some("1.46".into()),
            error: None,
        },
        github: GitHubHealth {
            reachable: status == HealthStatus::Ok,
            api_url: "https://api.github.com".into(),
            rate_limit_remaining: Some(5000),
            rate_limit_reset: None,
            paused_until: None,
            rate_limits: Default::default(),
            error: None,
        },
        runner_image: RunnerImageHealth {
            image: "ghcr.io/actions/actions-runner:latest".into(),
            present: true,
            digest: None,
            last_pulled_at: None,
            last_pull_error: None,
        },
        runners: BTreeMap::new(),
        max_runners: 10,
        loops: Default::default(),
        pools: Default::default(),
    }
}

#[tokio::test]
async fn complete_health_is_200_when_the_orchestrator_is_healthy() {
    let upstream = TestUpstream::start().await;
    let inner = orchestrator_health(HealthStatus::Ok);
    upstream.reply(200, &serde_json::to_string(&inner).unwrap());
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let response = gw
        .client
        .get(gw.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let health: GatewayHealth = response.json().await.unwrap();
    assert_eq!(health.status, HealthStatus::Ok);
    assert!(health.authentication);
    assert_eq!(health.orchestrator, Some(inner));
    assert_eq!(upstream.single().path, "/health");
}

#[tokio::test]
async fn complete_health_is_503_when_the_orchestrator_is_degraded() {
    let upstream = TestUpstream::start().await;
    upstream.reply(
        200,
        &serde_json::to_string(&orchestrator_health(HealthStatus::Degraded)).unwrap(),
    );
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let response = gw
        .client
        .get(gw.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let health: GatewayHealth = response.json().await.unwrap();
    assert_eq!(health.status, HealthStatus::Degraded);
    assert!(health.orchestrator.is_some());
}

#[tokio::test]
async fn complete_health_is_503_when_the_orchestrator_is_down() {
    let gw = TestGateway::spawn(&closed_upstream(), &[]);
    let response = gw
        .client
        .get(gw.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let health: GatewayHealth = response.json().await.unwrap();
    assert_eq!(health.status, HealthStatus::Degraded);
    assert!(health.orchestrator.is_none());
    assert!(health.orchestrator_error.is_some());
    // The gateway's own health does not depend on the orchestrator.
    let response = gw.client.get(gw.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let own: GatewayHealth = response.json().await.unwrap();
    assert_eq!(own.status, HealthStatus::Ok);
}

#[tokio::test]
async fn healthcheck_subcommand_exits_0_when_up_and_1_when_down() {
    let gw = TestGateway::spawn(&closed_upstream(), &[]);
    let probe = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_gha-api-gateway"))
            .arg("healthcheck")
            .env("API_GATEWAY_PORT", port.to_string())
            .output()
            .unwrap()
            .status
    };
    let port = gw.port;
    let up = tokio::task::spawn_blocking(move || probe(port))
        .await
        .unwrap();
    assert!(up.success());
    let closed: u16 = closed_upstream()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let down = tokio::task::spawn_blocking(move || probe(closed))
        .await
        .unwrap();
    assert_eq!(down.code(), Some(1));
}
