//! On-demand runners: a runner appears when a job is queued, with no API
//! call by anyone.
//!
//! Jobs arrive from webhooks ([`webhook`], through `POST /webhooks/github`)
//! and from polling ([`poller`]); both feed one [`JobBook`] (a job seen both
//! ways counts once, and its status only moves forward). The scaling loop
//! then decides ([`plan`], a plain function of the book, the registry and
//! the settings, unit-tested with paused time): it compares, per scope, the queued jobs (plus the warm pool,
//! `MIN_IDLE_RUNNERS`, in the default scope) with the runners that can still
//! take a job (starting or idle), and creates the difference, up to
//! `MAX_RUNNERS`. Jobs beyond the cap wait for free slots. Idle runners the
//! autoscaler made and nobody needs are removed after
//! `RUNNER_IDLE_TIMEOUT_SECONDS`.
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

/// GitHub's rule for a job's labels (`runs-on`) and a runner's: the job may
/// run there when each label it asks for is one of the runner's, compared
/// case-insensitively. A job with no labels at all is not taken.
fn labels_match(asked: &[String], runner: &[String]) -> bool {
    !asked.is_empty()
        && asked
            .iter()
            .all(|label| runner.iter().any(|ours| ours.eq_ignore_ascii_case(label)))
}

/// The autoscaler: the job book and the loop that acts on it.
#[derive(Debug)]
pub struct Autoscaler {
    fleet: Arc<Fleet>,
    /// Every job we know of.
    pub jobs: JobBook,
    wake: Notify,
    /// The labels autoscaled runners register with.
    runner_labels: Vec<String>,
    /// Creates asked for by a tick and not finished yet.
    pending: PendingCreates,
}

impl Autoscaler {
    /// An autoscaler over `fleet`.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        let runner_labels = fleet.config.base_labels();
        Self {
            fleet,
            jobs: JobBook::default(),
            wake: Notify::new(),
            runner_labels,
            pending: PendingCreates::default(),
        }
    }

    /// Whether any way of finding demand is configured.
    pub fn enabled(&self) -> bool {
        let c = &self.fleet.config;
        c.github_webhook_secret.is_some() || c.poll_interval().is_some() || c.min_idle_runners > 0
    }

    /// Whether our runners can run a job with `labels`, as GitHub matches
    /// them: every label the job asks for is one of ours (case-insensitive).
    /// The job need not ask for `self-hosted` (`runs-on: [linux, x64]` reaches
    /// self-hosted runners too); `ubuntu-latest` is not among our labels, so
    /// such jobs stay GitHub's.
    pub fn serves_labels(&self, labels: &[String]) -> bool {
        labels_match(labels, &self.runner_labels)
    }

    /// Takes what a webhook or a poll says about a job.
    pub fn ingest(&self, repository: &str, job: &WorkflowJob) -> Ingested {
        let Some(status) = JobStatus::from_github(&job.status) else {
            return Ingested::Ignored(format!("job status {} is not acted on", job.status));
        };
        // The job book first, the runner second: `tick` reads them in the
        // opposite order, so it can never see the runner busy with a job it
        // still counts as queued.
        let outcome = self.record_job(repository, job, status);
        // A late report (the book knows the job further along) changes nothing.
        let late = self
            .jobs
            .get(job.id)
            .is_some_and(|e| e.report.status > status);
        // Whatever the job, a runner of ours that took it is busy now.
        if let Some(runner) = job.runner_name.as_ref().filter(|_| !late) {
            self.fleet.registry.update(runner, |view| {
                match status {
                    JobStatus::InProgress => view.set_github_status(true, true),
                    JobStatus::Completed => view.set_github_status(view.online, false),
                    JobStatus::Queued => {}
                }
                view.job = Some(RunnerJob {
                    id: job.id,
                    run_id: job.run_id,
                    name: job.name.clone(),
                    status: status.as_str().to_owned(),
                    conclusion: job.conclusion.clone(),
                });
            });
        }
        if outcome == Ingested::Recorded {
            self.wake.notify_one();
        }
        outcome
    }

    /// Records a job of a repository and labels we serve in the book.
    fn record_job(&self, repository: &str, job: &WorkflowJob, status: JobStatus) -> Ingested {
        let Some(scope) = self.fleet.config.scope_for_job(repository) else {
            return Ingested::Ignored(format!("repository {repository} is not served"));
        };
        if !self.serves_labels(&job.labels) {
            return Ingested::Ignored(format!(
                "labels {:?} are not all among ours {:?}",
                job.labels, self.runner_labels
            ));
        }
        let report = JobReport {
            id: job.id,
            run_id: job.run_id,
            name: job.name.clone(),
            repository: repository.to_owned(),
            scope,
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

    /// One scaling decision per scope.
    pub async fn tick(&self) {
        self.jobs.prune(self.fleet.config.runner_max_lifetime);
        if self.fleet.is_shutting_down() {
            return;
        }
        self.recheck_stale_jobs().await;
        let config = &self.fleet.config;
        // Runners first, jobs second (`ingest` writes them in the opposite
        // order): a job that just started can then only be missed for one
        // tick, never counted twice (queued *and* holding a runner), which
        // would create a runner too many.
        // Creates under way before the runners: a create that ends in
        // between is then counted twice (one tick asks for one runner too
        // few), never missed (which would ask for a runner too many).
        let pending = self.pending.by_scope();
        let live = self.fleet.registry.live();
        let queued = self.jobs.queued();
        let default_scope = config.default_scope();
        let decided = plan::plan(
            &queued,
            &live,
            &plan::Settings {
                default_scope: default_scope.as_ref(),
                min_idle: config.min_idle_runners as usize,
                idle_timeout: config.runner_idle_timeout,
                free_slots: self.fleet.registry.free_slots(),
                pending: &pending,
            },
            tokio::time::Instant::now(),
        );
        if decided.waiting > 0 {
            debug!(
                waiting = decided.waiting,
                "jobs wait for free runner slots (MAX_RUNNERS)"
            );
        }
        let idle: Vec<&RunnerView> = decided
            .removals
            .iter()
            .filter_map(|name| live.iter().find(|v| &v.record.name == name))
            .collect();
        for (scope, for_job) in decided.creates {
            self.start_create(scope, for_job);
        }
        self.remove_idle(&idle).await;
    }

    /// Starts creating one runner and returns without waiting for it: the
    /// create is an operation of its own (shutdown waits for it rather
    /// than cutting it between GitHub and Docker), counted as under way
    /// until it ends, and its outcome is logged by a task of its own.
    fn start_create(&self, scope: Scope, for_job: Option<i64>) {
        let under_way = self.pending.begin(scope.clone(), for_job);
        let create = self.create_runner(scope.clone(), for_job);
        self.fleet.operations.spawn(async move {
            create.await;
            drop(under_way);
        });
    }

    fn create_runner(
        &self,
        scope: Scope,
        for_job: Option<i64>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let config = &self.fleet.config;
        let plan = BatchPlan {
            count: 1,
            scope: scope.clone(),
            labels: self.runner_labels.clone(),
            image: config.runner_image.clone(),
            runner_group_id: config.runner_group_id,
            for_job,
            autoscaled: true,
        };
        let create = self.fleet.start_create(plan);
        async move {
            match create.operation.outcome().await {
                Ok(Ok(runners)) => {
                    info!(runner = %runners[0].id, scope = %scope, job = ?for_job, "runner created on demand");
                }
                Ok(Err(e)) => match &*e {
                    FleetError::Capacity { .. }
                    | FleetError::ShuttingDown
                    | FleetError::GitHub(GitHubError::RateLimited { .. }) => {
                        debug!(scope = %scope, job = ?for_job, "runner creation deferred (capacity, shutdown or GitHub rate limit)");
                    }
                    e => {
                        warn!(scope = %scope, job = ?for_job, error = %e, "could not create a runner on demand; retrying next tick")
                    }
                },
                Err(lost) => {
                    warn!(scope = %scope, job = ?for_job, error = %lost, "could not create a runner on demand; retrying next tick")
                }
            }
        }
    }

    /// Removes the idle runners the plan found surplus, each as an
    /// operation of its own: shutdown waits for it rather than cutting it
    /// between GitHub and Docker.
    async fn remove_idle(&self, idle: &[&RunnerView]) {
        let timeout = self.fleet.config.runner_idle_timeout;
        let removals: Vec<_> = idle
            .iter()
            .map(|view| {
                let fleet = self.fleet.clone();
                let name = view.record.name.clone();
                let scope = view.record.scope.clone();
                let github_id = view.github_runner_id;
                let note = format!(
                    "idle for {}s with no job for it (RUNNER_IDLE_TIMEOUT_SECONDS)",
                    timeout.as_secs()
                );
                let removal = self.fleet.operations.spawn(async move {
                    match fleet.retire_idle(&name, &scope, github_id, note).await {
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

#[cfg(test)]
mod tests {
    use super::labels_match;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_job_is_ours_when_every_label_it_asks_for_is_ours() {
        let ours = labels(&["self-hosted", "linux", "x64", "docker"]);
        for asked in [
            &["self-hosted"][..],
            &["self-hosted", "linux", "x64", "docker"],
            // No `self-hosted`: GitHub still gives it to a runner with these.
            &["linux"],
            &["linux", "x64"],
            &["docker"],
            // Case-insensitive, as GitHub compares.
            &["Self-Hosted", "LINUX"],
        ] {
            assert!(labels_match(&labels(asked), &ours), "{asked:?}");
        }
    }

    #[test]
    fn a_job_asking_for_a_label_we_lack_is_not_ours() {
        let ours = labels(&["self-hosted", "linux", "x64"]);
        for asked in [
            &["ubuntu-latest"][..],
            &["self-hosted", "gpu"],
            &["linux", "arm64"],
            &["self-hosted", "linux", "x64", "docker"],
            &[],
        ] {
            assert!(!labels_match(&labels(asked), &ours), "{asked:?}");
        }
    }
}
