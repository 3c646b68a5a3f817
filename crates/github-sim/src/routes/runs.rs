//! Workflow runs and their jobs (polled by clients, with `ETag` / `If-None-Match`).
//!
//! A run listing filtered by `status` is served, on github.com, from a search index: it
//! lags behind (setting `run_listing_lag_seconds`) and stops at 1,000 results. The
//! unfiltered listing, the jobs of a run and a job read directly are always current.

use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use chrono::Utc;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::GitHubError;
use crate::github_json::{self, RUN_STATUS_FILTERS};
use crate::routes::{Page, json_with_etag, query_map};

/// The most runs a filtered (search-backed) listing reaches, as GitHub documents.
const SEARCH_RESULT_CAP: usize = 1000;

/// Routes of the runs and jobs endpoints.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/repos/{owner}/{repo}/actions/runs", get(list_runs))
        .route(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
            get(list_jobs_for_run),
        )
        .route("/repos/{owner}/{repo}/actions/jobs/{job_id}", get(get_job))
}

/// `GET /repos/{owner}/{repo}/actions/runs?status=&per_page=&page=` (newest first).
async fn list_runs(
    State(state): State<AppState>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
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
        let lag = world.settings.run_listing_lag_seconds;
        // Only the search-backed (filtered) listing lags.
        let as_of = (status.is_some() && lag > 0)
            .then(|| Utc::now() - chrono::Duration::seconds(i64::try_from(lag).unwrap_or(0)));
        let runs = world
            .runs
            .values()
            .rev()
            .filter(|r| r.repo_key == key)
            .filter(|r| as_of.is_none_or(|at| r.created_at <= at))
            .filter(|r| status.is_none_or(|s| github_json::run_matches_status(&world, r, s, as_of)))
            .map(|r| github_json::run(&world, r, as_of));
        match status {
            Some(_) => runs.take(SEARCH_RESULT_CAP).collect(),
            None => runs.collect(),
        }
    };
    let body = json!({"total_count": runs.len(), "workflow_runs": page.slice(&runs)});
    Ok(json_with_etag(
        &headers,
        &body,
        page.link(&state.public_url, &uri, runs.len()),
    ))
}

/// `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs?filter=latest|all`.
async fn list_jobs_for_run(
    State(state): State<AppState>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
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
        page.link(&state.public_url, &uri, jobs.len()),
    ))
}

/// `GET /repos/{owner}/{repo}/actions/jobs/{job_id}`: the job as it is now; 404 for an
/// unknown job or one of another repository.
async fn get_job(
    State(state): State<AppState>,
    Path((owner, repo, job_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, GitHubError> {
    let job = {
        let world = state.world();
        let (key, _) = world
            .find_repo(&owner, &repo)
            .ok_or_else(GitHubError::not_found)?;
        let job = job_id
            .parse::<u64>()
            .ok()
            .and_then(|id| world.jobs.get(&id))
            .filter(|j| j.repo_key == key)
            .ok_or_else(GitHubError::not_found)?;
        github_json::job(&world, job)
    };
    Ok(json_with_etag(&headers, &job, None))
}
