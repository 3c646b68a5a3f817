//! Handlers of `/pools`: the runner pools in force with their runners and
//! waiting jobs, and a reload of the pools file.

use std::collections::BTreeMap;

use api_types::{ErrorBody, PoolDocker, PoolList, PoolReload, PoolStatus};
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use crate::autoscaler::queued_by_pool;
use crate::config::{DockerMode, RegistrationMode};
use crate::pools::{Pool, Pools};
use crate::scope::Scope;

/// The `/pools` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_pools))
        .routes(routes!(reload_pools))
}

/// List runner pools.
///
/// Each pool in force, in the pools file's order (one pool, `default`,
/// without a file): its settings (the names of its extra environment
/// variables, not their values), its live runners by state, the queued
/// jobs that go to it, and its limits.
#[utoipa::path(
    get, path = "/pools", tag = "pools",
    responses((status = 200, description = "The pools in force", body = PoolList))
)]
async fn list_pools(State(state): State<AppState>) -> axum::Json<PoolList> {
    axum::Json(pool_list(&state, &state.fleet.pools.current()))
}

/// Reload the pools file.
///
/// Reads `RUNNER_POOLS_FILE` again, as SIGHUP does. A good file is put in
/// force at once: a new pool takes jobs, a changed pool's new runners get
/// its new settings, a removed pool takes no new jobs (its idle runners
/// are removed, its busy ones finish). A bad file changes nothing: the
/// answer, the log and `/health` say why.
#[utoipa::path(
    post, path = "/pools/reload", tag = "pools",
    responses(
        (status = 200, description = "The file was taken; the pools now in force", body = PoolList),
        (status = 409, description = "No pools file is configured (`no_pools_file`)", body = ErrorBody),
        (status = 422, description = "The file was refused (`invalid_pools_file`); the message names the pool and the key; the pools in force are kept", body = ErrorBody),
    )
)]
async fn reload_pools(State(state): State<AppState>) -> Result<axum::Json<PoolList>, ApiError> {
    if state.fleet.pools.file().is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_pools_file",
            "no pools file is configured (RUNNER_POOLS_FILE): the variables define the one pool, and a restart reads them",
        ));
    }
    match state.fleet.reload_pools().await {
        Ok(pools) => Ok(axum::Json(pool_list(&state, &pools))),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pools_file",
            format!("{e}; the pools in force are kept"),
        )),
    }
}

/// The answer of both routes: `pools` with their runners and queued jobs.
fn pool_list(state: &AppState, pools: &Pools) -> PoolList {
    let live = state.fleet.registry.live();
    let queued = queued_by_pool(pools, &state.autoscaler.jobs.queued());
    PoolList {
        file: state.fleet.pools.file().map(|p| p.display().to_string()),
        max_runners: state.fleet.config.max_runners as usize,
        pools: pools
            .iter()
            .map(|pool| {
                let mut runners: BTreeMap<String, usize> = ["starting", "idle", "busy"]
                    .into_iter()
                    .map(|s| (s.to_owned(), 0))
                    .collect();
                for view in live.iter().filter(|v| v.record.pool == pool.name) {
                    *runners.entry(view.state().as_str().to_owned()).or_default() += 1;
                }
                status(pool, runners, queued.get(&pool.name).copied().unwrap_or(0))
            })
            .collect(),
        last_reload: state.fleet.pools.last_reload().map(|r| PoolReload {
            at: r.at,
            error: r.error,
        }),
    }
}

/// One pool as the API shows it.
fn status(pool: &Pool, runners: BTreeMap<String, usize>, queued_jobs: usize) -> PoolStatus {
    let (repository, organization) = match &pool.scope {
        Some(scope @ Scope::Repository { .. }) => (Some(scope.target()), None),
        Some(Scope::Organization(org)) => (None, Some(org.clone())),
        None => (None, None),
    };
    PoolStatus {
        name: pool.name.clone(),
        labels: pool.labels.clone(),
        image: pool.image.clone(),
        command: pool.command.clone(),
        env_keys: pool
            .env
            .iter()
            .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.to_owned()))
            .collect(),
        registration: match pool.registration {
            RegistrationMode::Jit => "jit",
            RegistrationMode::Token => "token",
        }
        .to_owned(),
        cpus: pool.cpus,
        memory_bytes: pool.memory,
        pids_limit: pool.pids_limit,
        min_idle: pool.min_idle,
        max: pool.max,
        idle_timeout_seconds: pool.idle_timeout.as_secs(),
        max_lifetime_seconds: pool.max_lifetime.as_secs(),
        repository,
        organization,
        allowed_repositories: pool
            .allowed_repositories
            .iter()
            .map(Scope::target)
            .collect(),
        runner_group_id: pool.runner_group_id,
        network: pool.network.clone(),
        docker: match &pool.docker {
            None => PoolDocker {
                mode: DockerMode::None.as_str().to_owned(),
                image: None,
                privileged: None,
                registry_mirror: None,
            },
            Some(sidecar) => PoolDocker {
                mode: DockerMode::Sidecar.as_str().to_owned(),
                image: Some(sidecar.image.clone()),
                privileged: Some(sidecar.privileged),
                registry_mirror: sidecar.registry_mirror.clone(),
            },
        },
        runners,
        queued_jobs,
    }
}
