//! JSON views of world objects in GitHub's schemas (runner, workflow job and run, repository).

use serde_json::{Value, json};

use crate::world::{
    DEFAULT_GROUP_ID, DEFAULT_GROUP_NAME, Job, JobStatus, Owner, Repo, Run, Runner, World,
    timestamp,
};

/// The `runner` schema.
pub(crate) fn runner(runner: &Runner) -> Value {
    json!({
        "id": runner.id,
        "name": runner.name,
        "os": "linux",
        "status": if runner.session.is_some() { "online" } else { "offline" },
        "busy": runner.job_id.is_some(),
        "ephemeral": true,
        "runner_group_id": runner.group_id,
        "labels": runner
            .labels
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name, "type": "custom"}))
            .collect::<Vec<_>>(),
    })
}

/// A `simple-user` for an owner.
pub(crate) fn owner(owner: &Owner) -> Value {
    json!({
        "login": owner.login,
        "id": owner.id,
        "node_id": format!("U_sim{}", owner.id),
        "type": if owner.is_org { "Organization" } else { "User" },
        "site_admin": false,
        "url": format!("https://api.github.com/users/{}", owner.login),
        "html_url": format!("https://github.com/{}", owner.login),
    })
}

/// The `repository` object (the fields clients and webhook consumers read).
pub(crate) fn repository(world: &World, repo: &Repo) -> Value {
    let owner_value = world
        .owners
        .get(&repo.owner_key)
        .map(owner)
        .unwrap_or(Value::Null);
    json!({
        "id": repo.id,
        "node_id": format!("R_sim{}", repo.id),
        "name": repo.name,
        "full_name": repo.full_name(),
        "private": false,
        "owner": owner_value,
        "html_url": format!("https://github.com/{}", repo.full_name()),
        "url": format!("{}/repos/{}", world.api_url, repo.full_name()),
    })
}

/// The `organization` object of webhook payloads.
pub(crate) fn organization(world: &World, org: &Owner) -> Value {
    json!({
        "login": org.login,
        "id": org.id,
        "node_id": format!("O_sim{}", org.id),
        "url": format!("{}/orgs/{}", world.api_url, org.login),
        "description": null,
    })
}

/// The `job` schema (REST and the `workflow_job` webhook object).
pub(crate) fn job(world: &World, job: &Job) -> Value {
    let full_name = world
        .repos
        .get(&job.repo_key)
        .map_or_else(|| job.repo_key.clone(), Repo::full_name);
    let head_sha = world
        .runs
        .get(&job.run_id)
        .map(|r| r.head_sha.clone())
        .unwrap_or_default();
    let assigned = job.runner_id.is_some();
    json!({
        "id": job.id,
        "run_id": job.run_id,
        "run_attempt": 1,
        "run_url": format!("{}/repos/{full_name}/actions/runs/{}", world.api_url, job.run_id),
        "node_id": format!("CR_sim{}", job.id),
        "head_sha": head_sha,
        "head_branch": "main",
        "url": format!("{}/repos/{full_name}/actions/jobs/{}", world.api_url, job.id),
        "html_url": format!("https://github.com/{full_name}/actions/runs/{}/job/{}", job.run_id, job.id),
        "check_run_url": format!("{}/repos/{full_name}/check-runs/{}", world.api_url, job.id),
        "status": job.status.as_str(),
        "conclusion": job.conclusion,
        "created_at": timestamp(job.created_at),
        // GitHub fills started_at with the creation time while a job is queued.
        "started_at": timestamp(job.started_at.unwrap_or(job.created_at)),
        "completed_at": job.completed_at.map(timestamp),
        "name": job.name,
        "steps": [],
        "labels": job.labels,
        "runner_id": job.runner_id,
        "runner_name": job.runner_name,
        "runner_group_id": assigned.then_some(DEFAULT_GROUP_ID),
        "runner_group_name": assigned.then_some(DEFAULT_GROUP_NAME),
        "workflow_name": world.runs.get(&job.run_id).map(|r| r.name.clone()),
    })
}

/// The `workflow-run` schema (the fields clients read).
pub(crate) fn run(world: &World, run: &Run) -> Value {
    let (status, conclusion) = world.run_status(run);
    let repo = world.repos.get(&run.repo_key);
    let full_name = repo.map_or_else(|| run.repo_key.clone(), Repo::full_name);
    let updated_at = run
        .jobs
        .iter()
        .filter_map(|id| world.jobs.get(id))
        .flat_map(|j| [Some(j.created_at), j.started_at, j.completed_at])
        .flatten()
        .max()
        .unwrap_or(run.created_at);
    let url = format!(
        "{}/repos/{full_name}/actions/runs/{}",
        world.api_url, run.id
    );
    json!({
        "id": run.id,
        "name": run.name,
        "node_id": format!("WFR_sim{}", run.id),
        "status": status.as_str(),
        "conclusion": conclusion,
        "head_branch": "main",
        "head_sha": run.head_sha,
        "run_number": run.id % 100_000,
        "run_attempt": 1,
        "event": "push",
        "created_at": timestamp(run.created_at),
        "updated_at": timestamp(updated_at),
        "run_started_at": timestamp(run.created_at),
        "repository": {
            "id": repo.map(|r| r.id),
            "name": repo.map(|r| r.name.clone()),
            "full_name": full_name,
        },
        "jobs_url": format!("{url}/jobs"),
        "url": url,
        "html_url": format!("https://github.com/{full_name}/actions/runs/{}", run.id),
    })
}

/// Whether a run matches the `status` query filter (a status or a conclusion).
pub(crate) fn run_matches_status(world: &World, run: &Run, filter: &str) -> bool {
    let (status, conclusion) = world.run_status(run);
    match filter {
        "queued" | "requested" | "waiting" | "pending" => {
            status == JobStatus::Queued && filter == "queued"
        }
        "in_progress" => status == JobStatus::InProgress,
        "completed" => status == JobStatus::Completed,
        other => conclusion.as_deref() == Some(other),
    }
}

/// Values GitHub accepts for the runs `status` filter.
pub(crate) const RUN_STATUS_FILTERS: &[&str] = &[
    "completed",
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "skipped",
    "stale",
    "success",
    "timed_out",
    "in_progress",
    "queued",
    "requested",
    "waiting",
    "pending",
];
