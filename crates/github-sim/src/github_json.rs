//! JSON views of world objects in GitHub's schemas: `runner`, `job`, `workflow-run`,
//! `minimal-repository`, `simple-user`, `installation`, `installation-token`, and the
//! webhook `organization`.
//!
//! Every field a schema requires is present (the conformance test in
//! `tests/api/schemas.rs` checks them against GitHub's published description).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::apps::{App, Installation};
use crate::world::{
    DEFAULT_GROUP_ID, DEFAULT_GROUP_NAME, Job, JobStatus, Owner, Repo, Run, Runner, World,
    timestamp,
};

/// Login and id of the user every simulated event is attributed to.
const SIM_USER: (&str, u64) = ("sim-user", 1);
/// Path of the one workflow every run belongs to.
const WORKFLOW_PATH: &str = ".github/workflows/ci.yml";

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

/// A `simple-user` (an organization as an owner has this shape too, with `type`
/// `Organization`).
fn simple_user(api: &str, login: &str, id: u64, kind: &str) -> Value {
    let user = format!("{api}/users/{login}");
    json!({
        "login": login,
        "id": id,
        "node_id": format!("U_sim{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": user,
        "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{user}/followers"),
        "following_url": format!("{user}/following{{/other_user}}"),
        "gists_url": format!("{user}/gists{{/gist_id}}"),
        "starred_url": format!("{user}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{user}/subscriptions"),
        "organizations_url": format!("{user}/orgs"),
        "repos_url": format!("{user}/repos"),
        "events_url": format!("{user}/events{{/privacy}}"),
        "received_events_url": format!("{user}/received_events"),
        "type": kind,
        "user_view_type": "public",
        "site_admin": false,
    })
}

/// The `simple-user` of an owner.
pub(crate) fn owner(world: &World, owner: &Owner) -> Value {
    let kind = if owner.is_org { "Organization" } else { "User" };
    simple_user(&world.api_url, &owner.login, owner.id, kind)
}

/// The permissions the simulated Apps are granted: what runners need, for repositories
/// (Administration, Actions: read) and organizations (Self-hosted runners).
fn app_permissions() -> Value {
    json!({
        "actions": "read",
        "administration": "write",
        "metadata": "read",
        "organization_self_hosted_runners": "write",
    })
}

/// The `installation` schema.
pub(crate) fn installation(world: &World, app: &App, installation: &Installation) -> Value {
    let owner = world.owners.get(&installation.owner_key);
    let account = owner.map_or(Value::Null, |o| self::owner(world, o));
    let (target_id, login, is_org) = owner.map_or((0, "", false), |o| (o.id, &*o.login, o.is_org));
    let html_url = if is_org {
        format!(
            "https://github.com/organizations/{login}/settings/installations/{}",
            installation.id
        )
    } else {
        format!(
            "https://github.com/settings/installations/{}",
            installation.id
        )
    };
    let created = timestamp(installation.created_at);
    json!({
        "id": installation.id,
        "account": account,
        "repository_selection": "all",
        "access_tokens_url": format!("{}/app/installations/{}/access_tokens", world.api_url, installation.id),
        "repositories_url": format!("{}/installation/repositories", world.api_url),
        "html_url": html_url,
        "app_id": app.id,
        "client_id": app.client_id,
        "app_slug": app.slug,
        "target_id": target_id,
        "target_type": if is_org { "Organization" } else { "User" },
        "permissions": app_permissions(),
        "events": ["workflow_job"],
        "created_at": created,
        "updated_at": created,
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_by": null,
        "suspended_at": null,
    })
}

/// The `installation-token` schema (`POST /app/installations/{id}/access_tokens`).
pub(crate) fn installation_token(token: &str, expires_at: DateTime<Utc>) -> Value {
    json!({
        "token": token,
        "expires_at": timestamp(expires_at),
        "permissions": app_permissions(),
        "repository_selection": "all",
    })
}

/// The `simple-user` that webhooks name as `sender` and runs as `actor`.
pub(crate) fn sender(world: &World) -> Value {
    simple_user(&world.api_url, SIM_USER.0, SIM_USER.1, "User")
}

/// The `minimal-repository` schema (in runs, and in webhooks as `repository`).
pub(crate) fn repository(world: &World, repo: &Repo) -> Value {
    let owner_value = world
        .owners
        .get(&repo.owner_key)
        .map_or(Value::Null, |o| owner(world, o));
    let full_name = repo.full_name();
    let url = format!("{}/repos/{full_name}", world.api_url);
    let mut value = json!({
        "id": repo.id,
        "node_id": format!("R_sim{}", repo.id),
        "name": repo.name,
        "full_name": full_name,
        "private": false,
        "owner": owner_value,
        "html_url": format!("https://github.com/{full_name}"),
        "description": null,
        "fork": false,
        "url": url,
        "git_url": format!("git://github.com/{full_name}.git"),
        "ssh_url": format!("git@github.com:{full_name}.git"),
        "clone_url": format!("https://github.com/{full_name}.git"),
        "default_branch": "main",
        "visibility": "public",
        "archived": false,
        "disabled": false,
    });
    // GitHub's hypermedia links, with their URI-template suffixes.
    for (field, suffix) in [
        ("archive_url", "/{archive_format}{/ref}"),
        ("assignees_url", "/assignees{/user}"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("branches_url", "/branches{/branch}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("comments_url", "/comments{/number}"),
        ("commits_url", "/commits{/sha}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("contents_url", "/contents/{+path}"),
        ("contributors_url", "/contributors"),
        ("deployments_url", "/deployments"),
        ("downloads_url", "/downloads"),
        ("events_url", "/events"),
        ("forks_url", "/forks"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("hooks_url", "/hooks"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("issue_events_url", "/issues/events{/number}"),
        ("issues_url", "/issues{/number}"),
        ("keys_url", "/keys{/key_id}"),
        ("labels_url", "/labels{/name}"),
        ("languages_url", "/languages"),
        ("merges_url", "/merges"),
        ("milestones_url", "/milestones{/number}"),
        (
            "notifications_url",
            "/notifications{?since,all,participating}",
        ),
        ("pulls_url", "/pulls{/number}"),
        ("releases_url", "/releases{/id}"),
        ("stargazers_url", "/stargazers"),
        ("statuses_url", "/statuses/{sha}"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("tags_url", "/tags"),
        ("teams_url", "/teams"),
        ("trees_url", "/git/trees{/sha}"),
    ] {
        value[field] = Value::String(format!("{url}{suffix}"));
    }
    value
}

/// The `organization` object of webhook payloads (`organization-simple-webhooks`).
pub(crate) fn organization(world: &World, org: &Owner) -> Value {
    let url = format!("{}/orgs/{}", world.api_url, org.login);
    json!({
        "login": org.login,
        "id": org.id,
        "node_id": format!("O_sim{}", org.id),
        "url": url,
        "repos_url": format!("{url}/repos"),
        "events_url": format!("{url}/events"),
        "hooks_url": format!("{url}/hooks"),
        "issues_url": format!("{url}/issues"),
        "members_url": format!("{url}/members{{/member}}"),
        "public_members_url": format!("{url}/public_members{{/member}}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", org.id),
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

/// The `workflow-run` schema, as the run is now or (`as_of`) as it was then.
pub(crate) fn run(world: &World, run: &Run, as_of: Option<DateTime<Utc>>) -> Value {
    let (status, conclusion) = world.run_status(run, as_of);
    let repo = world.repos.get(&run.repo_key);
    let full_name = repo.map_or_else(|| run.repo_key.clone(), Repo::full_name);
    let updated_at = run
        .jobs
        .iter()
        .filter_map(|id| world.jobs.get(id))
        .flat_map(|j| [Some(j.created_at), j.started_at, j.completed_at])
        .flatten()
        .filter(|t| as_of.is_none_or(|at| *t <= at))
        .max()
        .unwrap_or(run.created_at);
    let api = &world.api_url;
    let url = format!("{api}/repos/{full_name}/actions/runs/{}", run.id);
    let repository = repo.map_or(Value::Null, |r| repository(world, r));
    let workflow_id = 16_000_000 + repo.map_or(0, |r| r.id);
    let check_suite_id = 20_000_000_000 + run.id;
    let title = format!(
        "Simulated commit {}",
        &run.head_sha[..7.min(run.head_sha.len())]
    );
    let tree_id: String = run.head_sha.chars().rev().collect();
    json!({
        "id": run.id,
        "name": run.name,
        "node_id": format!("WFR_sim{}", run.id),
        "check_suite_id": check_suite_id,
        "check_suite_node_id": format!("CS_sim{check_suite_id}"),
        "head_branch": "main",
        "head_sha": run.head_sha,
        "path": WORKFLOW_PATH,
        "display_title": title,
        "run_number": run.id % 100_000,
        "run_attempt": 1,
        "referenced_workflows": [],
        "event": "push",
        "status": status.as_str(),
        "conclusion": conclusion,
        "workflow_id": workflow_id,
        "url": url,
        "html_url": format!("https://github.com/{full_name}/actions/runs/{}", run.id),
        "pull_requests": [],
        "created_at": timestamp(run.created_at),
        "updated_at": timestamp(updated_at),
        "actor": sender(world),
        "triggering_actor": sender(world),
        "run_started_at": timestamp(run.created_at),
        "jobs_url": format!("{url}/jobs"),
        "logs_url": format!("{url}/logs"),
        "check_suite_url": format!("{api}/repos/{full_name}/check-suites/{check_suite_id}"),
        "artifacts_url": format!("{url}/artifacts"),
        "cancel_url": format!("{url}/cancel"),
        "rerun_url": format!("{url}/rerun"),
        "previous_attempt_url": null,
        "workflow_url": format!("{api}/repos/{full_name}/actions/workflows/{workflow_id}"),
        "head_commit": {
            "id": run.head_sha,
            "tree_id": tree_id,
            "message": title,
            "timestamp": timestamp(run.created_at),
            "author": {"name": "Sim User", "email": "sim-user@users.noreply.github.com"},
            "committer": {"name": "GitHub", "email": "noreply@github.com"},
        },
        "repository": repository,
        "head_repository": repository,
    })
}

/// Whether a run, as it is or was `as_of`, matches the `status` query filter (a status or
/// a conclusion).
pub(crate) fn run_matches_status(
    world: &World,
    run: &Run,
    filter: &str,
    as_of: Option<DateTime<Utc>>,
) -> bool {
    let (status, conclusion) = world.run_status(run, as_of);
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
