//! Workflow runs and their jobs (polled by clients, with `ETag` / `If-None-Match`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::GitHubError;
use crate::github_json::{self, RUN_STATUS_FILTERS};
use crate::routes::{Page, json_with_etag, query_map};

/// Routes of the runs and jobs listings.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/repos/{owner}/{repo}/actions/runs", get(list_runs))
        .route(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
            get(list_jobs_for_run),
        )
}

/// `GET /repos/{owner}/{repo}/actions/runs?status=&per_page=&page=` (newest first).
async fn list_runs(
    State(state): State<AppState>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, GitHubError> {
    let query = query_map(&uri);
    let status = query.get("status").filter(|s| !s.is_empty());
    if let Some(status) = status
        && !RUN_STATUS_FILTERS.contains(&status.as_str())
    {
        return Err(GitHubError::validation(format!(
            "Invalid input: status {status:?} is not one of the allowed values."
        ))
        .with_docs("https://docs.github.com/rest/actions/workflow-runs"));
    }
    let page = Page::from_query(&query);
    let runs: Vec<Value> = {
        let world = state.world();
        let (key, _) = world
            .find_repo(&owner, &repo)
            .ok_or_else(GitHubError::not_found)?;
        world
            .runs
            .values()
            .rev()
            .filter(|r| r.repo_key == key)
            .filter(|r| status.is_none_or(|s| github_json::run_matches_status(&world, r, s)))
            .map(|r| github_json::run(&world, r))
            .collect()
    };
    let body = json!({"total_count": runs.len(), "workflow_runs": page.slice(&runs)});
    Ok(json_with_etag(
        &headers,
        &body,
        page.link(&headers, &uri, runs.len()),
    ))
}

/// `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs?filter=latest|all`.
async fn list_jobs_for_run(
    State(state): State<AppState>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, GitHubError> {
    let query = query_map(&uri);
    if let Some(filter) = query.get("filter")
        && filter != "latest"
        && filter != "all"
    {
        return Err(GitHubError::validation(format!(
            "Invalid input: filter {filter:?} is not one of latest, all."
        ))
        .with_docs("https://docs.github.com/rest/actions/workflow-jobs"));
    }
    let page = Page::from_query(&query);
    let jobs: Vec<Value> = {
        let world = state.world();
        let (key, _) = world
            .find_repo(&owner, &repo)
            .ok_or_else(GitHubError::not_found)?;
        let run = run_id
            .parse::<u64>()
            .ok()
            .and_then(|id| world.runs.get(&id))
            .filter(|r| r.repo_key == key)
            .ok_or_else(GitHubError::not_found)?;
        run.jobs
            .iter()
            .filter_map(|id| world.jobs.get(id))
            .map(|j| github_json::job(&world, j))
            .collect()
    };
    let body = json!({"total_count": jobs.len(), "jobs": page.slice(&jobs)});
    Ok(json_with_etag(
        &headers,
        &body,
        page.link(&headers, &uri, jobs.len()),
    ))
}
