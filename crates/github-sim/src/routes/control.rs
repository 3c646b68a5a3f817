//! The control API under `/_sim` (no auth, no `User-Agent` needed, not counted): jobs,
//! runners, stats, faults, webhooks, settings, GitHub Apps and their installations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

use crate::app::AppState;
use crate::error::GitHubError;
use crate::faults::{ActiveFault, FaultSpec};
use crate::rate_limit::Resource;
use crate::routes::GhJson;
use crate::world::{Job, NewJob, World};

/// The `/_sim` routes (nested by the caller).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", post(create_job).get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/jobs/{id}/cancel", post(cancel_job))
        .route("/runners", get(list_runners))
        .route("/stats", get(get_stats))
        .route(
            "/faults",
            post(create_fault).get(list_faults).delete(clear_faults),
        )
        .route("/webhooks", post(control_webhooks).get(list_deliveries))
        .route("/webhooks/redeliver", post(redeliver_webhook))
        .route("/settings", get(get_settings).patch(patch_settings))
        .route("/apps", post(create_app).get(list_apps))
        .route("/apps/{id}/installations", post(create_installation))
}

fn invalid(message: impl Into<String>) -> GitHubError {
    GitHubError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

fn rfc3339(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))
    })
}

fn job_view(world: &World, job: &Job) -> Value {
    json!({
        "id": job.id,
        "run_id": job.run_id,
        "repository": world.repos.get(&job.repo_key).map(|r| r.full_name()),
        "name": job.name,
        "labels": job.labels,
        "status": job.status.as_str(),
        "conclusion": job.conclusion,
        "runner_id": job.runner_id,
        "runner_name": job.runner_name,
        "queued_at": rfc3339(Some(job.created_at)),
        "started_at": rfc3339(job.started_at),
        "completed_at": rfc3339(job.completed_at),
        "run": job.run,
        "log": job.log,
    })
}

/// `POST /_sim/jobs` `{"repository","labels","duration_ms","conclusion","name"?,"run_id"?,"run"?}`
/// → 201 `{"id","run_id"}`.
///
/// `run` is a bash script, a job's `run:` step: the runner runs it in the job's workspace
/// instead of sleeping `duration_ms`, its exit status decides the conclusion (`success` on
/// 0, `failure` otherwise; `conclusion` is then ignored), and the end of its output becomes
/// the job's `log`.
async fn create_job(
    State(state): State<AppState>,
    GhJson(body): GhJson,
) -> Result<Response, GitHubError> {
    let repository = body["repository"]
        .as_str()
        .ok_or_else(|| invalid("repository must be a string \"OWNER/NAME\""))?
        .to_owned();
    let labels = body["labels"]
        .as_array()
        .ok_or_else(|| invalid("labels must be an array of strings"))?
        .iter()
        .map(|l| l.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid("labels must be an array of strings"))?;
    let duration_ms = match &body["duration_ms"] {
        Value::Null => 0,
        value => value
            .as_u64()
            .ok_or_else(|| invalid("duration_ms must be a non-negative integer"))?,
    };
    let conclusion = match &body["conclusion"] {
        Value::Null => "success".to_owned(),
        value => value
            .as_str()
            .ok_or_else(|| invalid("conclusion must be a string"))?
            .to_owned(),
    };
    let name = match &body["name"] {
        Value::Null => None,
        value => Some(
            value
                .as_str()
                .ok_or_else(|| invalid("name must be a string"))?
                .to_owned(),
        ),
    };
    let run_id = match &body["run_id"] {
        Value::Null => None,
        value => Some(
            value
                .as_u64()
                .ok_or_else(|| invalid("run_id must be an integer"))?,
        ),
    };
    let run = match &body["run"] {
        Value::Null => None,
        value => Some(
            value
                .as_str()
                .ok_or_else(|| invalid("run must be a string (a bash script)"))?
                .to_owned(),
        ),
    };
    let (id, run_id) = state
        .world()
        .create_job(NewJob {
            repository,
            labels,
            duration_ms,
            conclusion,
            name,
            run_id,
            run,
        })
        .map_err(invalid)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "run_id": run_id})),
    )
        .into_response())
}

/// `GET /_sim/jobs` → every job, oldest first.
async fn list_jobs(State(state): State<AppState>) -> Json<Value> {
    let world = state.world();
    Json(Value::Array(
        world.jobs.values().map(|j| job_view(&world, j)).collect(),
    ))
}

/// `GET /_sim/jobs/{id}`: the job, with `run` (its script, or null) and `log` (the end of the
/// script's output, stdout and stderr interleaved, at most 64 KiB; null until a runner
/// reported one).
async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, GitHubError> {
    let world = state.world();
    let job = world.jobs.get(&id).ok_or_else(GitHubError::not_found)?;
    Ok(Json(job_view(&world, job)))
}

/// `POST /_sim/jobs/{id}/cancel` → 202 with the job as it is now.
async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Response, GitHubError> {
    let mut world = state.world();
    if !world.cancel_job(id) {
        return Err(GitHubError::not_found());
    }
    let view = job_view(&world, &world.jobs[&id]);
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// `GET /_sim/runners` → every runner of every scope.
async fn list_runners(State(state): State<AppState>) -> Json<Value> {
    let world = state.world();
    let runners = world
        .runners
        .values()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "scope": world.scope_label(&r.scope),
                "status": if r.session.is_some() { "online" } else { "offline" },
                "busy": r.job_id.is_some(),
                "labels": r.labels.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(),
                "jit_used": r.jit_used,
                "connected": r.session.is_some(),
                "job_id": r.job_id,
            })
        })
        .collect();
    Json(Value::Array(runners))
}

/// `GET /_sim/stats`: call counts, the first token's `core` budget (`rate_limit`) and all
/// its buckets (`rate_limits`), requests in flight, webhook counters, and the installation
/// tokens handed out (per installation id, and in all).
async fn get_stats(State(state): State<AppState>) -> Json<Value> {
    let mut world = state.world();
    let rate = world.rate_snapshot("token#0", Resource::Core);
    let registration = world.rate_snapshot("token#0", Resource::ActionsRunnerRegistration);
    let hooks = &world.webhooks;
    Json(json!({
        "api_calls_total": world.stats.api_calls_total,
        "api_calls": world.stats.api_calls,
        "not_modified": world.stats.not_modified,
        "in_flight": state.in_flight.load(Ordering::SeqCst),
        "rate_limit": {"limit": rate.limit, "used": rate.used, "remaining": rate.remaining, "reset": rate.reset},
        "rate_limits": {"core": rate.to_json(), "actions_runner_registration": registration.to_json()},
        "installation_tokens_issued": world.apps.tokens_issued.iter()
            .map(|(id, n)| (id.to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        "installation_tokens_issued_total": world.apps.tokens_issued.values().sum::<u64>(),
        "webhooks": {"sent": hooks.sent, "failed": hooks.failed, "dropped": hooks.dropped,
                     "duplicated": hooks.duplicated, "corrupted": hooks.corrupted,
                     "redelivered": hooks.redelivered},
    }))
}

/// `POST /_sim/faults` `{"path_prefix", "method"?, "mode"?: "before"|"after", "status"?,
/// "drop"?, "delay_ms"?, "count"?, "retry_after"?}` → 201 with the fault as stored; 422
/// with what is wrong.
async fn create_fault(
    State(state): State<AppState>,
    GhJson(body): GhJson,
) -> Result<Response, GitHubError> {
    let spec: FaultSpec = serde_json::from_value(body).map_err(|e| {
        invalid(format!(
            "invalid fault: {e}; the fields are path_prefix, method, mode (\"before\" or \"after\"), status, drop, delay_ms, count, retry_after"
        ))
    })?;
    spec.validate().map_err(invalid)?;
    let fault = ActiveFault {
        remaining: spec.count,
        spec,
    };
    let view = serde_json::to_value(&fault).unwrap_or_default();
    state.world().faults.active.push(fault);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /_sim/faults` → active faults.
async fn list_faults(State(state): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(&state.world().faults.active).unwrap_or_default())
}

/// `DELETE /_sim/faults` → 204.
async fn clear_faults(State(state): State<AppState>) -> StatusCode {
    state.world().faults.active.clear();
    StatusCode::NO_CONTENT
}

/// `POST /_sim/webhooks` with any of `{"drop_next": N, "duplicate_next": N,
/// "corrupt_next": N}` → 200 with the switches.
async fn control_webhooks(
    State(state): State<AppState>,
    GhJson(body): GhJson,
) -> Result<Json<Value>, GitHubError> {
    const SWITCHES: [&str; 3] = ["drop_next", "duplicate_next", "corrupt_next"];
    let Some(object) = body.as_object() else {
        return Err(invalid("the body must be a JSON object"));
    };
    if let Some(unknown) = object.keys().find(|k| !SWITCHES.contains(&k.as_str())) {
        return Err(invalid(format!(
            "unknown switch {unknown:?}; known: {}",
            SWITCHES.join(", ")
        )));
    }
    let read = |key: &str| match &body[key] {
        Value::Null => Ok(None),
        value => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{key} must be a non-negative integer"))),
    };
    let (drop_next, duplicate_next, corrupt_next) = (
        read("drop_next")?,
        read("duplicate_next")?,
        read("corrupt_next")?,
    );
    let mut world = state.world();
    let hooks = &mut world.webhooks;
    if let Some(n) = drop_next {
        hooks.drop_next = n;
    }
    if let Some(n) = duplicate_next {
        hooks.duplicate_next = n;
    }
    if let Some(n) = corrupt_next {
        hooks.corrupt_next = n;
    }
    Ok(Json(json!({
        "drop_next": hooks.drop_next,
        "duplicate_next": hooks.duplicate_next,
        "corrupt_next": hooks.corrupt_next,
    })))
}

/// `POST /_sim/webhooks/redeliver` `{"delivery_id": "<guid>"}` → 202 with that delivery's
/// first record; it is sent again (same body and `X-GitHub-Delivery`, fresh signatures)
/// and logged with `redelivery: true`. 404 for an unknown id.
async fn redeliver_webhook(
    State(state): State<AppState>,
    GhJson(body): GhJson,
) -> Result<Response, GitHubError> {
    let delivery_id = body["delivery_id"]
        .as_str()
        .ok_or_else(|| invalid("delivery_id must be a string (a delivery GUID)"))?;
    let record = state
        .world()
        .redeliver(delivery_id)
        .ok_or_else(GitHubError::not_found)?;
    let view = serde_json::to_value(record).unwrap_or_default();
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// `GET /_sim/settings` → the runtime settings.
async fn get_settings(State(state): State<AppState>) -> Json<Value> {
    Json(state.world().settings.to_json())
}

/// `PATCH /_sim/settings` with any of the settings → 200 with all of them; 422 (nothing
/// changed) for an unknown key or a bad value.
async fn patch_settings(
    State(state): State<AppState>,
    GhJson(body): GhJson,
) -> Result<Json<Value>, GitHubError> {
    let mut world = state.world();
    world.settings.patch(&body).map_err(invalid)?;
    tracing::info!(settings = %world.settings.to_json(), "settings changed");
    Ok(Json(world.settings.to_json()))
}

/// `GET /_sim/webhooks` → every delivery attempt, in order.
async fn list_deliveries(State(state): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(&state.world().webhooks.log).unwrap_or_default())
}

/// An App as `/_sim/apps` shows it: ids, and each installation with its account, the
/// tokens handed out and its `core` budget (never a token or a key).
fn app_view(world: &mut World, app_id: u64) -> Value {
    let (client_id, slug) = world
        .apps
        .app(app_id)
        .map(|a| (a.client_id.clone(), a.slug.clone()))
        .unwrap_or_default();
    let installations: Vec<(u64, String)> = world
        .apps
        .installations
        .values()
        .filter(|i| i.app_id == app_id)
        .map(|i| (i.id, i.owner_key.clone()))
        .collect();
    let installations: Vec<Value> = installations
        .into_iter()
        .map(|(id, owner_key)| {
            let account = world
                .owners
                .get(&owner_key)
                .map_or(owner_key.clone(), |o| o.login.clone());
            let core = world.rate_snapshot(&format!("installation#{id}"), Resource::Core);
            json!({
                "id": id,
                "account": account,
                "tokens_issued": world.apps.tokens_issued.get(&id).copied().unwrap_or(0),
                "rate_limit": core.to_json(),
            })
        })
        .collect();
    json!({"id": app_id, "client_id": client_id, "slug": slug, "installations": installations})
}

/// `POST /_sim/apps` `{"id", "public_key_pem", "installations"?: ["OWNER", …]}` → 201 with
/// the App (its `client_id`, which a JWT's `iss` may name too, and its installations); 422
/// for a bad key, a known id or an unknown owner (nothing is changed then).
async fn create_app(
    State(state): State<AppState>,
    GhJson(body): GhJson,
) -> Result<Response, GitHubError> {
    let id = body["id"]
        .as_u64()
        .ok_or_else(|| invalid("id must be the App's id, a positive integer"))?;
    let pem = body["public_key_pem"]
        .as_str()
        .ok_or_else(|| invalid("public_key_pem must be the App's public key in PEM"))?;
    let owners: Vec<String> = match &body["installations"] {
        Value::Null => Vec::new(),
        value => value
            .as_array()
            .and_then(|a| a.iter().map(|o| o.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| invalid("installations must be an array of owner logins"))?,
    };
    let mut world = state.world();
    if let Some(unknown) = owners
        .iter()
        .find(|o| !world.owners.contains_key(&o.to_lowercase()))
    {
        return Err(invalid(format!("unknown owner {unknown:?}")));
    }
    world.apps.add_app(id, pem.as_bytes()).map_err(invalid)?;
    for owner in &owners {
        world.install_app(id, owner).map_err(invalid)?;
    }
    let view = app_view(&mut world, id);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /_sim/apps` → every App with its installations.
async fn list_apps(State(state): State<AppState>) -> Json<Value> {
    let mut world = state.world();
    let ids: Vec<u64> = world.apps.apps().map(|a| a.id).collect();
    Json(Value::Array(
        ids.into_iter().map(|id| app_view(&mut world, id)).collect(),
    ))
}

/// `POST /_sim/apps/{id}/installations` `{"account": "OWNER"}` → 201 `{"id", "account"}`
/// (the existing installation when the App is installed there already); 404 for an
/// unknown App, 422 for an unknown owner.
async fn create_installation(
    State(state): State<AppState>,
    Path(app_id): Path<u64>,
    GhJson(body): GhJson,
) -> Result<Response, GitHubError> {
    let account = body["account"]
        .as_str()
        .ok_or_else(|| invalid("account must be an owner's login"))?;
    let mut world = state.world();
    if world.apps.app(app_id).is_none() {
        return Err(GitHubError::not_found());
    }
    let id = world.install_app(app_id, account).map_err(invalid)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "account": account})),
    )
        .into_response())
}
