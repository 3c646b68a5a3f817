//! Polling for queued jobs: for deployments GitHub cannot reach (no public
//! URL) and to recover lost webhooks. Every
//! `AUTOSCALE_POLL_INTERVAL_SECONDS` it lists the queued and in-progress
//! workflow runs of each served repository and their jobs, with
//! `If-None-Match`, so an unchanged answer costs no rate limit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Autoscaler;
use crate::github::{Conditional, GitHubClient, WorkflowJob};
use crate::scope::Scope;

/// Run statuses whose jobs may still be queued.
const RUN_STATUSES: [&str; 2] = ["queued", "in_progress"];

/// How long a newly queued job may be missing from GitHub's listings.
const LISTING_LAG: Duration = Duration::from_secs(10);

/// An answer kept with its ETag, for the next conditional request.
type Tagged<T> = (Option<String>, T);

/// The last answers and their ETags.
#[derive(Debug, Default)]
struct Cache {
    /// (repository, run status) → run ids.
    runs: HashMap<(String, &'static str), Tagged<Vec<i64>>>,
    /// (repository, run id) → jobs.
    jobs: HashMap<(String, i64), Tagged<Vec<WorkflowJob>>>,
}

/// Polls until `stop`; does nothing when polling is off.
pub async fn run(autoscaler: Arc<Autoscaler>, stop: CancellationToken) {
    let config = autoscaler.fleet.config.clone();
    let interval = config.autoscale_poll_interval_seconds;
    if interval == 0 {
        return;
    }
    let repositories = config.served_repositories();
    if repositories.is_empty() {
        warn!(
            "polling is on but no repository is named (GITHUB_REPOSITORY or ALLOWED_REPOSITORIES): organization jobs are found through webhooks only"
        );
        return;
    }
    let mut cache = Cache::default();
    loop {
        for repo in &repositories {
            if let Err(e) = poll_repository(&autoscaler, &mut cache, repo).await {
                debug!(repository = %repo.target(), error = %e, "poll failed; next interval retries");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(interval)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One poll of one repository.
async fn poll_repository(
    autoscaler: &Autoscaler,
    cache: &mut Cache,
    repo: &Scope,
) -> Result<(), crate::github::GitHubError> {
    let github: &GitHubClient = &autoscaler.fleet.github;
    let name = repo.target();
    let listed_at = Instant::now();
    let mut run_ids = Vec::new();
    for status in RUN_STATUSES {
        let key = (name.clone(), status);
        let etag = cache.runs.get(&key).and_then(|(e, _)| e.clone());
        match github.list_runs(repo, status, etag.as_deref()).await? {
            Conditional::NotModified => {
                run_ids.extend(
                    cache
                        .runs
                        .get(&key)
                        .map(|(_, ids)| ids.clone())
                        .unwrap_or_default(),
                );
            }
            Conditional::Fresh { body, etag } => {
                let ids: Vec<i64> = body.workflow_runs.iter().map(|r| r.id).collect();
                run_ids.extend(ids.iter().copied());
                cache.runs.insert(key, (etag, ids));
            }
        }
    }
    run_ids.sort_unstable();
    run_ids.dedup();
    let mut still_queued = HashSet::new();
    for run_id in &run_ids {
        let key = (name.clone(), *run_id);
        let etag = cache.jobs.get(&key).and_then(|(e, _)| e.clone());
        let jobs = match github.list_jobs(repo, *run_id, etag.as_deref()).await? {
            Conditional::NotModified => cache
                .jobs
                .get(&key)
                .map(|(_, j)| j.clone())
                .unwrap_or_default(),
            Conditional::Fresh { body, etag } => {
                cache.jobs.insert(key, (etag, body.jobs.clone()));
                body.jobs
            }
        };
        for job in &jobs {
            if job.status == "queued" {
                still_queued.insert(job.id);
            }
            autoscaler.ingest(&name, job);
        }
    }
    // Forget runs that left both listings.
    cache
        .jobs
        .retain(|(repo_name, run_id), _| repo_name != &name || run_ids.contains(run_id));
    // The listing was complete: queued jobs it no longer shows have left the queue.
    // A job delivered moments ago may not be listed yet: give it a margin.
    let settled = listed_at.checked_sub(LISTING_LAG).unwrap_or(listed_at);
    let dropped = autoscaler.jobs.drop_unlisted(&name, settled, &still_queued);
    if dropped > 0 {
        debug!(repository = %name, dropped, "jobs left the queue without a delivery");
    }
    Ok(())
}
