//! Polling for queued jobs: for deployments GitHub cannot reach (no public
//! URL) and to recover lost webhooks. Every
//! `AUTOSCALE_POLL_INTERVAL_SECONDS` it lists the queued and in-progress
//! workflow runs of each served repository and their jobs, every page
//! (`Link: rel="next"`), with `If-None-Match` per page, so an unchanged
//! page costs no rate limit.
//!
//! GitHub's `status`-filtered run listing is search-backed: it lags behind
//! the truth and stops at 1,000 runs. So a queued job the book knows of
//! (from a webhook, or an earlier poll) that the listing does not show is
//! never concluded gone on that strength: it is read directly
//! (`GET …/actions/jobs/{id}`), and only that answer moves it on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Autoscaler;
use crate::config::Config;
use crate::github::pages::FILTERED_RUNS_CAP;
use crate::github::{GitHub, GitHubError, PageCache};
use crate::pools::Pools;
use crate::scope::Scope;
use crate::supervisor::Beat;

/// Run statuses whose jobs may still be queued.
const RUN_STATUSES: [&str; 2] = ["queued", "in_progress"];

/// A job delivered moments before a listing is not expected in it yet:
/// only jobs known this much longer are read directly when unlisted.
const LISTING_MARGIN: Duration = Duration::from_secs(10);

/// Direct reads of unlisted queued jobs per repository and poll, at most
/// (the least recently checked first; the rest wait for the next poll).
const DIRECT_READS_PER_POLL: usize = 20;

/// The pages last read, per listing, for conditional requests.
#[derive(Debug, Default)]
struct Cache {
    /// (repository, run status) → the pages of that listing.
    runs: HashMap<(String, &'static str), PageCache>,
    /// (repository, run id) → the pages of its jobs.
    jobs: HashMap<(String, i64), PageCache>,
    /// Listings past GitHub's 1,000-run cap (warned about once).
    capped: HashSet<(String, &'static str)>,
}

/// Whether polling runs: it is on (`AUTOSCALE_POLL_INTERVAL_SECONDS`) and
/// a pool names a repository, or a pools file may name one after a reload
/// (warns when it is on with none).
pub fn enabled(config: &Config, pools: &Pools) -> bool {
    if config.poll_interval().is_none() {
        return false;
    }
    if pools.served_repositories().is_empty() && config.pools_file().is_none() {
        match (&config.github_org, config.github_webhook_secret.is_some()) {
            (Some(org), true) => info!(
                organization = %org,
                "polling is off: no repository is named (GITHUB_REPOSITORY or ALLOWED_REPOSITORIES); the organization's jobs are found through webhooks"
            ),
            (Some(org), false) => warn!(
                organization = %org,
                "no runners start on demand: polling needs a repository (GITHUB_REPOSITORY or ALLOWED_REPOSITORIES) and webhooks are off (no GITHUB_WEBHOOK_SECRET); name the repositories to poll or set up the organization's webhook"
            ),
            (None, _) => info!(
                "polling is off: no repository is configured (GITHUB_REPOSITORY or ALLOWED_REPOSITORIES); runners start through the API only"
            ),
        }
        return false;
    }
    true
}

/// Polls until `stop`; a round that read every repository is a `beat`.
/// Run only when [`enabled`].
pub async fn run(autoscaler: Arc<Autoscaler>, stop: CancellationToken, beat: Beat) {
    let config = autoscaler.fleet.config.clone();
    let interval = config.autoscale_poll_interval;
    let mut cache = Cache::default();
    loop {
        // Read at each round: a reload may name other repositories.
        let repositories = autoscaler.fleet.pools.current().served_repositories();
        let mut complete = true;
        for repo in &repositories {
            if let Err(e) = poll_repository(&autoscaler, &mut cache, repo).await {
                complete = false;
                debug!(repository = %repo.target(), error = %e, "poll failed; next interval retries");
            }
        }
        if complete {
            beat.pass();
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One poll of one repository.
async fn poll_repository(
    autoscaler: &Autoscaler,
    cache: &mut Cache,
    repo: &Scope,
) -> Result<(), GitHubError> {
    let github: &dyn GitHub = &*autoscaler.fleet.github;
    let name = repo.target();
    let listed_at = Instant::now();
    let mut run_ids = Vec::new();
    for status in RUN_STATUSES {
        let key = (name.clone(), status);
        let listing = github
            .list_runs(repo, status, cache.runs.entry(key.clone()).or_default())
            .await?;
        if listing.total_count > FILTERED_RUNS_CAP {
            if cache.capped.insert(key) {
                warn!(
                    repository = %name,
                    status,
                    runs = listing.total_count,
                    "GitHub lists at most 1,000 runs per status: the runs beyond are found through webhooks and direct reads of known jobs only"
                );
            }
        } else {
            cache.capped.remove(&key);
        }
        run_ids.extend(listing.items.iter().map(|r| r.id));
    }
    run_ids.sort_unstable();
    run_ids.dedup();
    let mut still_queued = HashSet::new();
    for run_id in &run_ids {
        let pages = cache.jobs.entry((name.clone(), *run_id)).or_default();
        let listing = github.list_jobs(repo, *run_id, pages).await?;
        for job in &listing.items {
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
    confirm_unlisted(autoscaler, repo, listed_at, &still_queued).await;
    Ok(())
}

/// Reads directly the queued jobs the listings did not show, and takes
/// what GitHub says of each: still queued, started, done, or gone (404).
async fn confirm_unlisted(
    autoscaler: &Autoscaler,
    repo: &Scope,
    listed_at: Instant,
    still_queued: &HashSet<i64>,
) {
    let name = repo.target();
    let settled = listed_at.checked_sub(LISTING_MARGIN).unwrap_or(listed_at);
    let unlisted =
        autoscaler
            .jobs
            .unlisted_queued(&name, settled, still_queued, DIRECT_READS_PER_POLL);
    for entry in unlisted {
        let id = entry.report.id;
        autoscaler.jobs.checked(id);
        match autoscaler.fleet.github.get_job(repo, id).await {
            Ok(Some(job)) => {
                let outcome = autoscaler.ingest(&name, &job);
                debug!(job = id, status = %job.status, ?outcome, "unlisted job read directly");
            }
            Ok(None) => {
                debug!(job = id, "unlisted job is gone (404)");
                autoscaler.jobs.mark_gone(id);
            }
            Err(e) => {
                debug!(job = id, error = %e, "could not read an unlisted job; kept as queued")
            }
        }
    }
}
