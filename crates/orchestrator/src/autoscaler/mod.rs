//! On-demand runners: a runner appears when a job is queued, with no API
//! call by anyone.
//!
//! Jobs arrive from webhooks ([`webhook`], through `POST /webhooks/github`)
//! and from polling ([`poller`]); both feed one [`JobBook`] (a job seen both
//! ways counts once, and its status only moves forward). The scaling loop
//! then decides ([`plan`], a plain function of the book, the registry and
//! the settings, unit-tested with paused time): each queued job is routed
//! to its pool ([`crate::pools::routing`]), and per pool and scope the
//! queued jobs (plus the pool's warm pool, `min_idle`, in its own scope)
//! are compared with the runners that can still take a job (starting or
//! idle); the difference is created, up to the pool's `max` and
//! `MAX_RUNNERS` over all pools. Jobs beyond a cap wait for free slots.
//! Idle runners the autoscaler made and nobody needs are removed after
//! their pool's idle timeout.
//!
//! GitHub gives a queued job to any idle runner whose labels match, so
//! runners are not bound to jobs: counting supply against demand keeps
//! "one queued job, at most one runner in flight", and a warm runner takes
//! a job before any container starts.

pub mod jobs;
pub mod pending;
pub mod plan;
pub mod poller;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use api_types::RunnerJob;
use futures::future::join_all;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use jobs::{Delivery, DeliveryClaim, JobBook, JobEntry, JobReport, JobStatus};
use pending::PendingCreates;

use crate::github::{GitHubError, WorkflowJob};
use crate::pools::routing::{self, Unrouted};
use crate::pools::{Pool, Pools};
use crate::runners::request::BatchPlan;
use crate::runners::{Fleet, FleetError, RunnerView};
use crate::scope::Scope;
use crate::supervisor::Beat;

/// Scaling ticks happen at least this often, even with no news.
pub const TICK: Duration = Duration::from_secs(2);
/// Stale queued jobs re-checked with GitHub per tick, at most.
const STALE_CHECKS_PER_TICK: usize = 5;

/// What became of a job report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Recorded (new, or moved forward).
    Recorded,
    /// Known already, nothing new.
    Unchanged,
    /// Not for us; says why.
    Ignored(String),
}

/// How many of `queued` go to each pool of `pools` (routed as the scaler
/// routes them): a job whose pool was removed since is no pool's demand.
pub fn queued_by_pool(pools: &Pools, queued: &[JobEntry]) -> BTreeMap<String, usize> {
    let mut by_pool = BTreeMap::new();
    for entry in queued {
        if let Ok((pool, _)) = routing::route(pools, &entry.report.repository, &entry.report.labels)
        {
            *by_pool.entry(pool.name.clone()).or_default() += 1;
        }
    }
    by_pool
}

/// The autoscaler: the job book and the loop that acts on it.
#[derive(Debug)]
pub struct Autoscaler {
    fleet: Arc<Fleet>,
    /// Every job we know of.
    pub jobs: JobBook,
    wake: Notify,
    /// Creates asked for by a tick and not finished yet.
    pending: PendingCreates,
}

impl Autoscaler {
    /// An autoscaler over `fleet`.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        Self {
            fleet,
            jobs: JobBook::default(),
            wake: Notify::new(),
            pending: PendingCreates::default(),
        }
    }

    /// Whether any way of finding demand is configured: webhooks, polling,
    /// a warm pool, or a pools file (a reload may add a warm pool).
    pub fn enabled(&self) -> bool {
        let c = &self.fleet.config;
        c.github_webhook_secret.is_some()
            || c.poll_interval().is_some()
            || c.pools_file().is_some()
            || self.fleet.pools.current().iter().any(|p| p.min_idle > 0)
    }

    /// Takes what a webhook or a poll says about a job.
    pub fn ingest(&self, repository: &str, job: &WorkflowJob) -> Ingested {
        let Some(status) = JobStatus::from_github(&job.status) else {
            return Ingested::Ignored(format!("job status {} is not acted on", job.status));
        };
        // When it was first heard of as queued, for `gha_job_wait_seconds`.
        let queued_since = self
            .jobs
            .get(job.id)
            .filter(|e| e.report.status == JobStatus::Queued)
            .map(|e| e.first_seen);
        // The job book first, the runner second: `tick` reads them in the
        // opposite order, so it can never see the runner busy with a job it
        // still counts as queued.
        let outcome = self.record_job(repository, job, status);
        if let (Ingested::Recorded, JobStatus::InProgress, Some(since)) =
            (&outcome, status, queued_since)
            && let Ok((pool, _)) =
                routing::route(&self.fleet.pools.current(), repository, &job.labels)
        {
            self.fleet.metrics.job_started(&pool.name, since.elapsed());
        }
        // A late report (the book knows the job further along) changes nothing.
        let late = self
            .jobs
            .get(job.id)
            .is_some_and(|e| e.report.status > status);
        // Whatever the job, a runner of ours that took it is busy now.
        if let Some(runner) = job.runner_name.as_ref().filter(|_| !late) {
            let mut came_online = None;
            self.fleet.registry.update(runner, |view| {
                came_online = match status {
                    JobStatus::InProgress => view.set_github_status(true, true),
                    JobStatus::Completed => view.set_github_status(view.online, false),
                    JobStatus::Queued => None,
                };
                view.job = Some(RunnerJob {
                    id: job.id,
                    run_id: job.run_id,
                    name: job.name.clone(),
                    status: status.as_str().to_owned(),
                    conclusion: job.conclusion.clone(),
                });
            });
            if let Some(online) = came_online {
                self.fleet.metrics.runner_online(&online.pool, online.after);
            }
        }
        if outcome == Ingested::Recorded {
            self.wake.notify_one();
        }
        outcome
    }

    /// Records a job in the book when a pool serves its repository and
    /// fits its labels (GitHub's rule: every label it asks for is one of the
    /// pool's, case-insensitive; `runs-on: [linux, x64]` reaches self-hosted
    /// runners too, `ubuntu-latest` stays GitHub's).
    fn record_job(&self, repository: &str, job: &WorkflowJob, status: JobStatus) -> Ingested {
        let pools = self.fleet.pools.current();
        // A job already in the book keeps being followed, even when a
        // reload took its pool away: its end must still be recorded.
        let known = self.jobs.get(job.id).is_some();
        let why = match routing::route(&pools, repository, &job.labels) {
            Ok(_) => None,
            Err(Unrouted::Repository) => Some(format!("repository {repository} is not served")),
            Err(Unrouted::Labels) => Some(format!("no pool has every label of {:?}", job.labels)),
        };
        if let Some(why) = why.filter(|_| !known) {
            debug!(job = job.id, repository, reason = %why, "job left alone (it may be another system's)");
            return Ingested::Ignored(why);
        }
        let report = JobReport {
            id: job.id,
            run_id: job.run_id,
            name: job.name.clone(),
            repository: repository.to_owned(),
            labels: job.labels.clone(),
            status,
            conclusion: job.conclusion.clone(),
            runner_name: job.runner_name.clone(),
        };
        if self.jobs.observe(report) {
            Ingested::Recorded
        } else {
            Ingested::Unchanged
        }
    }

    /// Scales every tick, or at once when a job is recorded or a slot
    /// frees up, until `stop`; each tick is a `beat`. Run only when [`Self::enabled`].
    pub async fn run(&self, stop: CancellationToken, beat: Beat) {
        loop {
            self.tick().await;
            beat.pass();
            tokio::select! {
                _ = self.wake.notified() => {}
                // A runner gone is a slot a queued job may be waiting for.
                _ = self.fleet.registry.slot_freed() => {}
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One scaling decision per pool and scope.
    pub async fn tick(&self) {
        let pools = self.fleet.pools.current();
        self.jobs.prune(
            self.fleet
                .config
                .runner_max_lifetime
                .max(pools.longest_lifetime()),
        );
        if self.fleet.is_shutting_down() {
            return;
        }
        self.recheck_stale_jobs().await;
        // Runners first, jobs second (`ingest` writes them in the opposite
        // order): a job that just started can then only be missed for one
        // tick, never counted twice (queued *and* holding a runner), which
        // would create a runner too many.
        // Creates under way before the runners: a create that ends in
        // between is then counted twice (one tick asks for one runner too
        // few), never missed (which would ask for a runner too many).
        let pending = self.pending.by_pool();
        let live = self.fleet.registry.live();
        let queued = self.jobs.queued();
        // Routed with the pools in force now: a reload moves waiting jobs.
        let routed: Vec<plan::Routed<'_>> = queued
            .iter()
            .filter_map(|entry| {
                let (pool, scope) =
                    routing::route(&pools, &entry.report.repository, &entry.report.labels).ok()?;
                let pool = pools.get(&pool.name)?;
                Some(plan::Routed { pool, scope, entry })
            })
            .collect();
        let decided = plan::plan(
            &routed,
            &live,
            &plan::Settings {
                pools: &pools,
                free_slots: self.fleet.registry.free_slots(),
                pending: &pending,
            },
            tokio::time::Instant::now(),
        );
        if decided.waiting > 0 {
            debug!(
                waiting = decided.waiting,
                "jobs wait for free runner slots (MAX_RUNNERS or their pool's max)"
            );
        }
        let idle: Vec<&RunnerView> = decided
            .removals
            .iter()
            .filter_map(|name| live.iter().find(|v| &v.record.name == name))
            .collect();
        for (pool, scope, for_job) in decided.creates {
            if let Some(pool) = pools.get(&pool) {
                self.start_create(pool.clone(), scope, for_job);
            }
        }
        self.remove_idle(&idle, &pools).await;
    }

    /// Starts creating one runner and returns without waiting for it: the
    /// create is an operation of its own (shutdown waits for it rather
    /// than cutting it between GitHub and Docker), counted as under way
    /// until it ends, and its outcome is logged by a task of its own.
    fn start_create(&self, pool: Arc<Pool>, scope: Scope, for_job: Option<i64>) {
        let under_way = self
            .pending
            .begin((pool.name.clone(), scope.clone()), for_job);
        let create = self.create_runner(pool, scope, for_job);
        self.fleet.operations.spawn(async move {
            create.await;
            drop(under_way);
        });
    }

    fn create_runner(
        &self,
        pool: Arc<Pool>,
        scope: Scope,
        for_job: Option<i64>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let plan = BatchPlan {
            count: 1,
            scope: scope.clone(),
            labels: pool.labels.clone(),
            image: pool.image.clone(),
            runner_group_id: pool.runner_group_id,
            for_job,
            autoscaled: true,
            pool: pool.clone(),
        };
        let create = self.fleet.start_create(plan);
        let pool = pool.name.clone();
        async move {
            match create.operation.outcome().await {
                Ok(Ok(runners)) => {
                    info!(runner = %runners[0].id, pool = %pool, scope = %scope, job = ?for_job, "runner created on demand");
                }
                Ok(Err(e)) => match &*e {
                    FleetError::Capacity { .. }
                    | FleetError::ShuttingDown
                    | FleetError::GitHub(GitHubError::RateLimited { .. }) => {
                        debug!(pool = %pool, scope = %scope, job = ?for_job, "runner creation deferred (capacity, shutdown or GitHub rate limit)");
                    }
                    e => {
                        warn!(pool = %pool, scope = %scope, job = ?for_job, error = %e, "could not create a runner on demand; retrying next tick")
                    }
                },
                Err(lost) => {
                    warn!(pool = %pool, scope = %scope, job = ?for_job, error = %lost, "could not create a runner on demand; retrying next tick")
                }
            }
        }
    }

    /// Removes the idle runners the plan found surplus, each as an
    /// operation of its own: shutdown waits for it rather than cutting it
    /// between GitHub and Docker.
    async fn remove_idle(&self, idle: &[&RunnerView], pools: &Pools) {
        let removals: Vec<_> = idle
            .iter()
            .map(|view| {
                let fleet = self.fleet.clone();
                let name = view.record.name.clone();
                let record = view.record.clone();
                let github_id = view.github_runner_id;
                let note = match pools.get(&view.record.pool) {
                    Some(pool) => format!(
                        "idle for {}s with no job for it (its pool's idle timeout)",
                        pool.idle_timeout.as_secs()
                    ),
                    None => format!(
                        "its pool {:?} was taken out of the pools file",
                        view.record.pool
                    ),
                };
                let removal = self.fleet.operations.spawn(async move {
                    match fleet.retire_idle(&record, github_id, note).await {
                        Ok(()) | Err(FleetError::Busy(_)) => {}
                        Err(e) => {
                            warn!(runner = %name, error = %e, "could not remove an idle runner")
                        }
                    }
                });
                async move { removal.outcome().await }
            })
            .collect();
        join_all(removals).await;
    }

    /// Asks GitHub about jobs queued longer than the idle timeout: a lost
    /// `completed` delivery must not keep demand alive forever.
    async fn recheck_stale_jobs(&self) {
        let after = self.fleet.config.runner_idle_timeout;
        let stale: Vec<JobEntry> = self
            .jobs
            .queued()
            .into_iter()
            .filter(|e| e.updated.elapsed() >= after)
            .take(STALE_CHECKS_PER_TICK)
            .collect();
        for entry in stale {
            let Ok(repo) = Scope::repository(&entry.report.repository) else {
                continue;
            };
            self.jobs.checked(entry.report.id);
            match self.fleet.github.get_job(&repo, entry.report.id).await {
                Ok(Some(job)) => {
                    self.ingest(&entry.report.repository, &job);
                }
                Ok(None) => self.jobs.mark_gone(entry.report.id),
                Err(e) => {
                    debug!(job = entry.report.id, error = %e, "could not re-check a stale job")
                }
            }
        }
    }
}
