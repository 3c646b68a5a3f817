//! [`JobBook`]: the workflow jobs we have heard of, by id, from webhooks and
//! polling alike (a job seen both ways counts once). A job's status only
//! moves forward (queued → in progress → completed), so a late or replayed
//! delivery never revives it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::scope::Scope;

/// How many delivery ids are remembered to drop redeliveries.
const DELIVERIES_KEPT: usize = 10_000;
/// How long a completed job is remembered (replays of it stay no-ops).
const COMPLETED_KEPT: Duration = Duration::from_secs(3600);

/// Where a job is; ordered so that status only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum JobStatus {
    /// Waiting for a runner.
    Queued,
    /// A runner took it.
    InProgress,
    /// Done (or cancelled, or gone from the queue).
    Completed,
}

impl JobStatus {
    /// Reads GitHub's status; `waiting`/`pending`/`requested` count as queued
    /// only once GitHub says `queued`, so they are `None` here.
    pub fn from_github(status: &str) -> Option<JobStatus> {
        match status {
            "queued" => Some(JobStatus::Queued),
            "in_progress" => Some(JobStatus::InProgress),
            "completed" => Some(JobStatus::Completed),
            _ => None,
        }
    }

    /// GitHub's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::InProgress => "in_progress",
            JobStatus::Completed => "completed",
        }
    }
}

/// What one webhook delivery or poll says about a job.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// GitHub's job id.
    pub id: i64,
    /// Its run.
    pub run_id: Option<i64>,
    /// Its name.
    pub name: Option<String>,
    /// `owner/name` of its repository.
    pub repository: String,
    /// The scope our runner for it registers in.
    pub scope: Scope,
    /// Where it is.
    pub status: JobStatus,
    /// Its conclusion, once completed.
    pub conclusion: Option<String>,
    /// The runner that took it, once assigned.
    pub runner_name: Option<String>,
}

/// One job as we know it.
#[derive(Debug, Clone)]
pub struct JobEntry {
    /// The latest report (status never moves back).
    pub report: JobReport,
    /// When we first heard of it.
    pub first_seen: Instant,
    /// When it last changed.
    pub updated: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<i64, JobEntry>,
    deliveries: HashSet<String>,
    delivery_order: VecDeque<String>,
}

/// The jobs we know of.
#[derive(Debug, Default)]
pub struct JobBook {
    inner: Mutex<Inner>,
}

impl JobBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("job book lock")
    }

    /// Remembers a delivery id; `false` when it was seen before (a redelivery).
    pub fn first_delivery(&self, delivery_id: &str) -> bool {
        let mut inner = self.lock();
        if !inner.deliveries.insert(delivery_id.to_owned()) {
            return false;
        }
        inner.delivery_order.push_back(delivery_id.to_owned());
        if inner.delivery_order.len() > DELIVERIES_KEPT
            && let Some(old) = inner.delivery_order.pop_front()
        {
            inner.deliveries.remove(&old);
        }
        true
    }

    /// Records a report; returns whether anything changed. Status only moves
    /// forward; a report behind what we know is ignored.
    pub fn observe(&self, report: JobReport) -> bool {
        let mut inner = self.lock();
        let now = Instant::now();
        match inner.jobs.get_mut(&report.id) {
            None => {
                inner.jobs.insert(
                    report.id,
                    JobEntry {
                        report,
                        first_seen: now,
                        updated: now,
                    },
                );
                true
            }
            Some(entry) => {
                if report.status < entry.report.status {
                    return false;
                }
                let changed = report.status > entry.report.status
                    || (report.runner_name.is_some()
                        && report.runner_name != entry.report.runner_name)
                    || (report.conclusion.is_some()
                        && report.conclusion != entry.report.conclusion);
                if changed {
                    let runner_name = report
                        .runner_name
                        .clone()
                        .or(entry.report.runner_name.take());
                    entry.report = JobReport {
                        runner_name,
                        ..report
                    };
                    entry.updated = now;
                }
                changed
            }
        }
    }

    /// Marks queued jobs of `repository` first seen before `listed_at` and
    /// absent from a complete listing as gone from the queue (started by a
    /// runner we did not see, or cancelled). Returns how many.
    pub fn drop_unlisted(
        &self,
        repository: &str,
        listed_at: Instant,
        still_queued: &HashSet<i64>,
    ) -> usize {
        let mut inner = self.lock();
        let mut dropped = 0;
        for entry in inner.jobs.values_mut() {
            if entry.report.status == JobStatus::Queued
                && entry.report.repository.eq_ignore_ascii_case(repository)
                && entry.first_seen < listed_at
                && !still_queued.contains(&entry.report.id)
            {
                entry.report.status = JobStatus::Completed;
                entry.updated = Instant::now();
                dropped += 1;
            }
        }
        dropped
    }

    /// Marks one queued job as gone from the queue (GitHub no longer lists it).
    pub fn mark_gone(&self, id: i64) {
        if let Some(entry) = self.lock().jobs.get_mut(&id)
            && entry.report.status == JobStatus::Queued
        {
            entry.report.status = JobStatus::Completed;
            entry.updated = Instant::now();
        }
    }

    /// Records that a job was just re-checked with GitHub (so the next
    /// re-check waits a full period).
    pub fn checked(&self, id: i64) {
        if let Some(entry) = self.lock().jobs.get_mut(&id) {
            entry.updated = Instant::now();
        }
    }

    /// Queued jobs, oldest first.
    pub fn queued(&self) -> Vec<JobEntry> {
        let inner = self.lock();
        let mut queued: Vec<JobEntry> = inner
            .jobs
            .values()
            .filter(|e| e.report.status == JobStatus::Queued)
            .cloned()
            .collect();
        queued.sort_by_key(|e| (e.first_seen, e.report.id));
        queued
    }

    /// One job.
    pub fn get(&self, id: i64) -> Option<JobEntry> {
        self.lock().jobs.get(&id).cloned()
    }

    /// Forgets completed jobs after an hour.
    pub fn prune(&self) {
        self.lock().jobs.retain(|_, e| {
            e.report.status != JobStatus::Completed || e.updated.elapsed() < COMPLETED_KEPT
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: i64, status: JobStatus) -> JobReport {
        JobReport {
            id,
            run_id: Some(1),
            name: None,
            repository: "o/r".into(),
            scope: Scope::repository("o/r").unwrap(),
            status,
            conclusion: None,
            runner_name: None,
        }
    }

    #[test]
    fn status_only_moves_forward() {
        let book = JobBook::default();
        assert!(book.observe(report(1, JobStatus::Completed)));
        assert!(!book.observe(report(1, JobStatus::InProgress)));
        assert!(!book.observe(report(1, JobStatus::Queued)));
        assert_eq!(book.get(1).unwrap().report.status, JobStatus::Completed);
        assert!(book.queued().is_empty());
    }

    #[test]
    fn a_job_seen_twice_counts_once() {
        let book = JobBook::default();
        assert!(book.observe(report(1, JobStatus::Queued)));
        assert!(!book.observe(report(1, JobStatus::Queued)));
        assert_eq!(book.queued().len(), 1);
    }

    #[test]
    fn redeliveries_are_recognised() {
        let book = JobBook::default();
        assert!(book.first_delivery("a"));
        assert!(!book.first_delivery("a"));
        assert!(book.first_delivery("b"));
    }

    #[test]
    fn jobs_missing_from_a_listing_leave_the_queue() {
        let book = JobBook::default();
        book.observe(report(1, JobStatus::Queued));
        book.observe(report(2, JobStatus::Queued));
        let later = Instant::now() + Duration::from_millis(1);
        assert_eq!(book.drop_unlisted("o/r", later, &HashSet::from([2])), 1);
        assert_eq!(book.queued().len(), 1);
        assert_eq!(book.queued()[0].report.id, 2);
    }
}
