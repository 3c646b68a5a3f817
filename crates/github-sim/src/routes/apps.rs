//! GitHub App endpoints, authenticated with the App's JWT (the surface checks it): the
//! installation look-ups and the installation tokens.

use axum::extract::{Extension, OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Duration as ChronoDuration;
use serde_json::Value;

use crate::app::AppState;
use crate::apps::Caller;
use crate::error::GitHubError;
use crate::github_json;
use crate::routes::{Page, json_with_etag, query_map};
use crate::world::World;

/// The App routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/app/installations", get(list_installations))
        .route(
            "/app/installations/{installation_id}/access_tokens",
            post(create_installation_access_token),
        )
        .route(
            "/repos/{owner}/{repo}/installation",
            get(get_repo_installation),
        )
        .route("/orgs/{org}/installation", get(get_org_installation))
        .route("/users/{username}/installation", get(get_user_installation))
}

/// The App a request authenticated as (the surface lets only JWTs reach these routes).
fn app_of(caller: &Caller) -> Result<u64, GitHubError> {
    match caller {
        Caller::App(id) => Ok(*id),
        _ => Err(GitHubError::not_found()),
    }
}

/// The `installation` of App `app_id` on `owner_key`, or 404 as GitHub answers when the
/// App is not installed there.
fn installation_view(world: &World, app_id: u64, owner_key: &str) -> Result<Value, GitHubError> {
    let app = world.apps.app(app_id).ok_or_else(GitHubError::not_found)?;
    let installation = world
        .apps
        .installation_on(app_id, owner_key)
        .ok_or_else(GitHubError::not_found)?;
    Ok(github_json::installation(world, app, installation))
}

/// `GET /app/installations?per_page=&page=` → the App's installations.
async fn list_installations(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, GitHubError> {
    let app_id = app_of(&caller)?;
    let page = Page::from_query(&query_map(&uri));
    let world = state.world();
    let app = world.apps.app(app_id).ok_or_else(GitHubError::not_found)?;
    let all: Vec<Value> = world
        .apps
        .installations
        .values()
        .filter(|i| i.app_id == app_id)
        .map(|i| github_json::installation(&world, app, i))
        .collect();
    let link = page.link(&state.public_url, &uri, all.len());
    Ok(json_with_etag(
        &headers,
        &Value::Array(page.slice(&all)),
        link,
    ))
}

/// `POST /app/installations/{installation_id}/access_tokens` → 201 `installation-token`;
/// 404 for an installation that is not this App's.
async fn create_installation_access_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(installation_id): Path<String>,
) -> Result<Response, GitHubError> {
    let app_id = app_of(&caller)?;
    let installation_id: u64 = installation_id
        .parse()
        .map_err(|_| GitHubError::not_found())?;
    let mut world = state.world();
    let ours = world
        .apps
        .installations
        .get(&installation_id)
        .is_some_and(|i| i.app_id == app_id);
    if !ours {
        return Err(GitHubError::not_found());
    }
    let lifetime = i64::try_from(world.settings.installation_token_lifetime_seconds)
        .unwrap_or(3600)
        .max(1);
    let (token, expires_at) = world
        .apps
        .issue_token(installation_id, ChronoDuration::seconds(lifetime));
    tracing::debug!(installation_id, %expires_at, "installation token issued");
    Ok((
        StatusCode::CREATED,
        Json(github_json::installation_token(&token, expires_at)),
    )
        .into_response())
}

/// `GET /repos/{owner}/{repo}/installation`.
async fn get_repo_installation(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Json<Value>, GitHubError> {
    let app_id = app_of(&caller)?;
    let world = state.world();
    let (_, repository) = world
        .find_repo(&owner, &repo)
        .ok_or_else(GitHubError::not_found)?;
    let owner_key = repository.owner_key.clone();
    installation_view(&world, app_id, &owner_key).map(Json)
}

/// `GET /orgs/{org}/installation`.
async fn get_org_installation(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
) -> Result<Json<Value>, GitHubError> {
    let app_id = app_of(&caller)?;
    let world = state.world();
    let key = org.to_lowercase();
    if !world.owners.get(&key).is_some_and(|o| o.is_org) {
        return Err(GitHubError::not_found());
    }
    installation_view(&world, app_id, &key).map(Json)
}

/// `GET /users/{username}/installation`.
async fn get_user_installation(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
) -> Result<Json<Value>, GitHubError> {
    let app_id = app_of(&caller)?;
    let world = state.world();
    let key = username.to_lowercase();
    if !world.owners.contains_key(&key) {
        return Err(GitHubError::not_found());
    }
    installation_view(&world, app_id, &key).map(Json)
}
