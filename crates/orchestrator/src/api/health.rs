//! `/health` (Docker, GitHub, the image, runner counts), `/readyz` (Docker
//! answers: the container's health check) and `/healthz` (liveness).

use api_types::{
    DockerHealth, GitHubHealth, HealthStatus, OrchestratorHealth, PoolsHealth, RateLimitBucket,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use tracing::warn;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;

/// The health routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(readyz))
        .routes(routes!(healthz))
}

/// Health of the orchestrator and what it depends on.
///
/// 200 when Docker answers; 503 (`unhealthy`, with the reason) when it
/// does not, whatever the reason. GitHub's
/// state, each background loop's last pass and the pools in force are
/// reported; a GitHub outage, a late loop or a refused reload of the pools
/// file makes it `degraded` but leaves it at 200:
/// existing runners keep working without them.
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "Healthy", body = OrchestratorHealth),
        (status = 503, description = "Docker unreachable (`unhealthy`); `docker.error` says why", body = OrchestratorHealth),
    )
)]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<OrchestratorHealth>) {
    let fleet = &state.fleet;
    let (docker, digest) = match fleet.engine.version().await {
        Ok(v) => {
            let digest = fleet
                .engine
                .image_digest(fleet.image.image())
                .await
                .ok()
                .flatten();
            (
                DockerHealth {
                    reachable: true,
                    version: Some(v.version),
                    api_version: Some(v.api_version),
                    error: None,
                },
                digest,
            )
        }
        Err(e) => (
            DockerHealth {
                reachable: false,
                version: None,
                api_version: None,
                error: Some(e.to_string()),
            },
            None,
        ),
    };
    // `GET /rate_limit` costs nothing against the budget; skip it while paused.
    let github_error = if fleet.github.paused_for().is_some() {
        fleet.github.last_error()
    } else {
        fleet
            .github
            .check_rate_limit()
            .await
            .err()
            .map(|e| e.to_string())
    };
    let limits = fleet.github.rate_limit();
    let core = limits.core();
    let github = GitHubHealth {
        reachable: github_error.is_none(),
        api_url: fleet.github.base_url().to_owned(),
        rate_limit_remaining: core.remaining,
        rate_limit_reset: core.reset,
        paused_until: limits.paused_until(),
        rate_limits: limits
            .buckets
            .iter()
            .map(|(name, bucket)| {
                (
                    name.clone(),
                    RateLimitBucket {
                        limit: bucket.limit,
                        remaining: bucket.remaining,
                        used: bucket.used,
                        reset: bucket.reset,
                        paused_until: bucket.paused_until.max(limits.secondary_paused_until),
                    },
                )
            })
            .collect(),
        error: github_error,
    };
    let loops = state.loops.snapshot();
    for (name, record) in loops.iter().filter(|(_, r)| r.late) {
        warn!(loop_name = %name, last_pass_at = ?record.last_pass_at, "background loop is late");
    }
    let pools = PoolsHealth {
        names: fleet
            .pools
            .current()
            .iter()
            .map(|p| p.name.clone())
            .collect(),
        docker: fleet
            .pools
            .current()
            .iter()
            .map(|p| (p.name.clone(), p.docker_mode().as_str().to_owned()))
            .collect(),
        reload_error: fleet.pools.last_reload().and_then(|r| r.error),
    };
    let status = if !docker.reachable {
        HealthStatus::Unhealthy
    } else if github.reachable && !loops.values().any(|l| l.late) && pools.reload_error.is_none() {
        HealthStatus::Ok
    } else {
        HealthStatus::Degraded
    };
    let code = if docker.reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(OrchestratorHealth {
            status,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            runner_image: fleet.image.health(digest),
            docker,
            github,
            runners: fleet.registry.counts(),
            max_runners: fleet.config.max_runners,
            loops,
            pools,
        }),
    )
}

/// Readiness: 200 when the Docker engine answers, 503 with the reason
/// otherwise (a socket the orchestrator may not open names `DOCKER_GID`).
///
/// The container's health check probes it: an orchestrator that cannot
/// reach Docker can do nothing, and `docker compose ps` should say so. It
/// asks GitHub nothing, so a slow GitHub does not fail the check.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Docker answers", body = String),
        (status = 503, description = "Docker cannot be reached, and why", body = api_types::ErrorBody),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.fleet.engine.version().await?;
    Ok("ready")
}

/// Liveness: 200 while the process serves requests.
#[utoipa::path(
    get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = String))
)]
async fn healthz() -> &'static str {
    "ok"
}
