//! Self-hosted runner endpoints for repositories and organizations.

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{Duration as ChronoDuration, SecondsFormat, Utc};
use rand::Rng;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::{DOCS_RUNNERS, GitHubError};
use crate::github_json;
use crate::jit_config::JitConfig;
use crate::routes::{GhJson, Page, RunnerScope, json_with_etag, query_map};
use crate::world::{DeleteError, RegisterError};

/// Routes for both `/repos/{owner}/{repo}` and `/orgs/{org}`.
pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/repos/{owner}/{repo}", "/orgs/{org}"] {
        router = router
            .route(&format!("{prefix}/actions/runners"), get(list_runners))
            .route(
                &format!("{prefix}/actions/runners/registration-token"),
                post(create_registration_token),
            )
            .route(
                &format!("{prefix}/actions/runners/remove-token"),
                post(create_remove_token),
            )
            .route(
                &format!("{prefix}/actions/runners/generate-jitconfig"),
                post(generate_jitconfig),
            )
            .route(
                &format!("{prefix}/actions/runners/{{runner_id}}"),
                get(get_runner).delete(delete_runner),
            );
    }
    router
}

fn authentication_token() -> Response {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let token: String = (0..29)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    let expires_at =
        (Utc::now() + ChronoDuration::hours(1)).to_rfc3339_opts(SecondsFormat::Millis, false);
    (
        StatusCode::CREATED,
        axum::Json(json!({"token": token, "expires_at": expires_at})),
    )
        .into_response()
}

/// `POST …/actions/runners/registration-token`.
async fn create_registration_token(_scope: RunnerScope) -> Response {
    authentication_token()
}

/// `POST …/actions/runners/remove-token`.
async fn create_remove_token(_scope: RunnerScope) -> Response {
    authentication_token()
}

/// `GET …/actions/runners?name=&per_page=&page=`.
async fn list_runners(
    State(state): State<AppState>,
    scope: RunnerScope,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let query = query_map(&uri);
    let page = Page::from_query(&query);
    let runners: Vec<Value> = {
        let world = state.world();
        world
            .runners_in(&scope.scope)
            .filter(|r| query.get("name").is_none_or(|n| &r.name == n))
            .map(github_json::runner)
            .collect()
    };
    let body = json!({"total_count": runners.len(), "runners": page.slice(&runners)});
    let link = page.link(&state.public_url, &uri, runners.len());
    json_with_etag(&headers, &body, link)
}

fn runner_id(scope: &RunnerScope) -> Result<u64, GitHubError> {
    scope
        .params
        .get("runner_id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(GitHubError::not_found)
}

/// `GET …/actions/runners/{runner_id}`.
async fn get_runner(
    State(state): State<AppState>,
    scope: RunnerScope,
    headers: HeaderMap,
) -> Result<Response, GitHubError> {
    let id = runner_id(&scope)?;
    let runner = {
        let world = state.world();
        let runner = world
            .runners
            .get(&id)
            .filter(|r| r.scope == scope.scope)
            .ok_or_else(GitHubError::not_found)?;
        github_json::runner(runner)
    };
    Ok(json_with_etag(&headers, &runner, None))
}

/// `DELETE …/actions/runners/{runner_id}`: 204, 404, or 422 while the runner is busy.
async fn delete_runner(
    State(state): State<AppState>,
    scope: RunnerScope,
) -> Result<StatusCode, GitHubError> {
    let id = runner_id(&scope)?;
    match state.world().delete_runner(&scope.scope, id) {
        Ok(()) => {
            tracing::info!(runner = id, "runner deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(DeleteError::NotFound) => Err(GitHubError::not_found()),
        Err(busy @ DeleteError::Busy(_)) => Err(GitHubError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            busy.to_string(),
        )
        .with_docs(DOCS_RUNNERS)),
    }
}

/// A validated JIT request.
#[derive(Debug)]
struct JitRequest {
    name: String,
    runner_group_id: u64,
    labels: Vec<String>,
    work_folder: String,
}

fn missing(key: &str) -> GitHubError {
    GitHubError::validation(format!(
        "Invalid input: object is missing required key: {key}."
    ))
}

fn validate_jit(body: &Value) -> Result<JitRequest, GitHubError> {
    let Some(object) = body.as_object() else {
        return Err(GitHubError::new(
            StatusCode::BAD_REQUEST,
            "Body should be a JSON object",
        ));
    };
    let name = match object.get("name") {
        None | Some(Value::Null) => return Err(missing("name")),
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        Some(Value::String(_)) => {
            return Err(GitHubError::validation(
                "Invalid input: name must not be empty.",
            ));
        }
        Some(_) => {
            return Err(GitHubError::validation(
                "Invalid input: name is not a string.",
            ));
        }
    };
    let runner_group_id = match object.get("runner_group_id") {
        None | Some(Value::Null) => return Err(missing("runner_group_id")),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => {
            // A negative id is a well-formed integer naming no group.
            n.as_u64().unwrap_or(u64::MAX)
        }
        Some(_) => {
            return Err(GitHubError::validation(
                "Invalid input: runner_group_id is not an integer.",
            ));
        }
    };
    let labels = match object.get("labels") {
        None | Some(Value::Null) => return Err(missing("labels")),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(GitHubError::validation(
                "Invalid input: labels is not an array.",
            ));
        }
    };
    if labels.is_empty() {
        return Err(GitHubError::validation(
            "Invalid input: labels must contain at least 1 item.",
        ));
    }
    if labels.len() > 100 {
        return Err(GitHubError::validation(
            "Invalid input: labels must contain at most 100 items.",
        ));
    }
    let labels = labels
        .iter()
        .map(|l| match l.as_str() {
            Some(l) if !l.trim().is_empty() => Ok(l.to_owned()),
            _ => Err(GitHubError::validation(
                "Invalid input: labels must be non-empty strings.",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let work_folder = match object.get("work_folder") {
        None | Some(Value::Null) => "_work".to_owned(),
        Some(Value::String(folder)) => folder.clone(),
        Some(_) => {
            return Err(GitHubError::validation(
                "Invalid input: work_folder is not a string.",
            ));
        }
    };
    Ok(JitRequest {
        name,
        runner_group_id,
        labels,
        work_folder,
    })
}

/// `POST …/actions/runners/generate-jitconfig`: 201 `{runner, encoded_jit_config}`.
async fn generate_jitconfig(
    State(state): State<AppState>,
    scope: RunnerScope,
    GhJson(body): GhJson,
) -> Result<Response, GitHubError> {
    let request = validate_jit(&body)?;
    let mut world = state.world();
    let id = world
        .register_runner(
            scope.scope.clone(),
            &request.name,
            &request.labels,
            request.runner_group_id,
        )
        .map_err(|error| match error {
            RegisterError::NameTaken => GitHubError::new(
                StatusCode::CONFLICT,
                "Already exists - A runner with the same name already exists.",
            )
            .with_docs(DOCS_RUNNERS),
            RegisterError::UnknownGroup => GitHubError::not_found(),
        })?;
    let github_url = world.github_url(&scope.scope);
    let runner = &world.runners[&id];
    let encoded = JitConfig {
        runner_id: id,
        runner_name: runner.name.clone(),
        server_url: state.public_url.to_string(),
        github_url,
        secret: runner.secret.as_str().into(),
    }
    .encode(&request.work_folder);
    let body = json!({"runner": github_json::runner(runner), "encoded_jit_config": encoded});
    drop(world);
    tracing::info!(runner = id, name = %request.name, "runner registered");
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}
