//! [`JobBook`]: the workflow jobs we have heard of, by id, from webhooks and
//! polling alike (a job seen both ways counts once). A job's status only
//! moves forward (queued → in progress → completed), so a late or replayed
//! delivery never revives it. The book also remembers which webhook
//! deliveries were handled ([`JobBook::claim_delivery`]), so a redelivery of
//! one is a no-op while one we refused or failed on is handled again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How many handled delivery ids are remembered to drop redeliveries.
const DELIVERIES_KEPT: usize = 10_000;
/// How long a completed job is remembered (replays of it stay no-ops).
const COMPLETED_KEPT: Duration = Duration::from_secs(3600);

/// A handled delivery as remembered: the first 16 bytes of the SHA-256 of
/// its id. Ten thousand of them take a third of a megabyte, against twice
/// that and more as `String`s held twice over; two ids share a key with a
/// chance of about 2^-128 per pair.
type DeliveryKey = [u8; 16];

fn delivery_key(delivery_id: &str) -> DeliveryKey {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(delivery_id.as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

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
    /// The labels it asks for (`runs-on`): which pool it goes to is decided
    /// from them with the pools in force at each tick.
    pub labels: Vec<String>,
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
    /// Deliveries handled (answered 2xx): a redelivery of one is a duplicate.
    /// Kept as [`DeliveryKey`]s, 16 bytes each, not as the ids' text.
    deliveries: HashSet<DeliveryKey>,
    /// The same ids, oldest first, so that only the newest
    /// `DELIVERIES_KEPT` are remembered.
    delivery_order: VecDeque<DeliveryKey>,
    /// Deliveries being handled right now, each with a token cancelled when
    /// its claim ends: a copy arriving meanwhile waits for the outcome.
    claimed: HashMap<String, CancellationToken>,
}

impl Inner {
    fn remember_delivery(&mut self, delivery_id: &str) {
        let key = delivery_key(delivery_id);
        if !self.deliveries.insert(key) {
            return;
        }
        self.delivery_order.push_back(key);
        if self.delivery_order.len() > DELIVERIES_KEPT
            && let Some(old) = self.delivery_order.pop_front()
        {
            self.deliveries.remove(&old);
        }
    }
}

/// What [`JobBook::claim_delivery`] found.
#[derive(Debug)]
pub enum Delivery<'a> {
    /// Not handled yet (or every earlier attempt was refused or failed):
    /// handle it and then call [`DeliveryClaim::handled`].
    New(DeliveryClaim<'a>),
    /// Handled already: a redelivery, nothing to do.
    Duplicate,
}

/// The right to handle one delivery, held while it is handled. Ended with
/// [`handled`](Self::handled), the delivery is remembered; dropped without it
/// (refused, failed, or its handler's future dropped), it is released and a
/// redelivery is handled afresh.
#[derive(Debug)]
#[must_use = "a claim dropped without `handled` lets the delivery be handled again"]
pub struct DeliveryClaim<'a> {
    book: &'a JobBook,
    delivery_id: String,
    handled: bool,
}

impl DeliveryClaim<'_> {
    /// Records the delivery as handled: a redelivery of it is a duplicate.
    pub fn handled(mut self) {
        self.handled = true;
        // `drop` records it and releases the claim.
    }
}

impl Drop for DeliveryClaim<'_> {
    fn drop(&mut self) {
        // Never panic here (a drop during a panic would abort): a poisoned
        // lock still holds consistent delivery sets.
        let mut inner = self
            .book
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(waiting) = inner.claimed.remove(&self.delivery_id) {
            waiting.cancel();
        }
        if self.handled {
            inner.remember_delivery(&self.delivery_id);
        }
    }
}

/// The jobs we know of.
#[derive(Debug, Default)]
pub struct JobBook {
    inner: Mutex<Inner>,
}

impl JobBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves plain records: the supervisor
        // ends the process anyway, so no second panic here.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims a delivery (`X-GitHub-Delivery`) for handling, or says it was
    /// handled already. While another copy of it is being handled, waits for
    /// that one's outcome: handled makes this copy a duplicate, a failure
    /// lets this copy claim it. Two copies arriving at once thus count once.
    pub async fn claim_delivery(&self, delivery_id: &str) -> Delivery<'_> {
        loop {
            let other_copy = {
                let mut inner = self.lock();
                if inner.deliveries.contains(&delivery_key(delivery_id)) {
                    return Delivery::Duplicate;
                }
                match inner.claimed.get(delivery_id) {
                    Some(released) => released.clone(),
                    None => {
                        inner
                            .claimed
                            .insert(delivery_id.to_owned(), CancellationToken::new());
                        return Delivery::New(DeliveryClaim {
                            book: self,
                            delivery_id: delivery_id.to_owned(),
                            handled: false,
                        });
                    }
                }
            };
            // Cancelled when the other copy's claim ends (the token is taken
            // under the lock, so its end cannot be missed); then look again.
            other_copy.cancelled().await;
        }
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

    /// Queued jobs of `repository` first seen before `listed_before` that a
    /// complete listing did not show as queued, least recently checked
    /// first, at most `limit`. GitHub's run listings lag behind the truth,
    /// so such a job is only concluded finished after a direct read of it.
    pub fn unlisted_queued(
        &self,
        repository: &str,
        listed_before: Instant,
        still_queued: &HashSet<i64>,
        limit: usize,
    ) -> Vec<JobEntry> {
        let inner = self.lock();
        let mut unlisted: Vec<JobEntry> = inner
            .jobs
            .values()
            .filter(|e| {
                e.report.status == JobStatus::Queued
                    && e.report.repository.eq_ignore_ascii_case(repository)
                    && e.first_seen < listed_before
                    && !still_queued.contains(&e.report.id)
            })
            .cloned()
            .collect();
        unlisted.sort_by_key(|e| (e.updated, e.report.id));
        unlisted.truncate(limit);
        unlisted
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

    /// Forgets completed jobs after an hour, and any job first heard of
    /// longer than `max_age` ago whatever its state (a runner lives no
    /// longer than that, so nothing acts on such a job any more): the book
    /// stays bounded even when a job's last delivery never comes.
    pub fn prune(&self, max_age: Duration) {
        self.lock().jobs.retain(|_, e| {
            e.first_seen.elapsed() < max_age
                && (e.report.status != JobStatus::Completed || e.updated.elapsed() < COMPLETED_KEPT)
        });
    }

    /// How many jobs the book holds.
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Whether the book holds no job.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
            labels: vec!["self-hosted".into()],
            status,
            conclusion: None,
            runner_name: None,
        }
    }

    #[test]
    fn the_book_forgets_jobs_older_than_a_runners_lifetime_whatever_their_state() {
        let book = JobBook::default();
        book.observe(report(1, JobStatus::Queued));
        book.observe(report(2, JobStatus::InProgress));
        book.observe(report(3, JobStatus::Completed));
        book.prune(Duration::from_secs(3600));
        assert_eq!(book.len(), 3, "young jobs stay, completed ones for an hour");
        book.prune(Duration::ZERO);
        assert!(book.is_empty());
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

    async fn claim<'a>(book: &'a JobBook, id: &str) -> DeliveryClaim<'a> {
        match book.claim_delivery(id).await {
            Delivery::New(claim) => claim,
            Delivery::Duplicate => panic!("{id} claimed as a duplicate"),
        }
    }

    async fn is_duplicate(book: &JobBook, id: &str) -> bool {
        matches!(book.claim_delivery(id).await, Delivery::Duplicate)
    }

    #[tokio::test]
    async fn a_handled_delivery_is_a_duplicate_the_next_time() {
        let book = JobBook::default();
        claim(&book, "a").await.handled();
        assert!(is_duplicate(&book, "a").await);
        claim(&book, "b").await.handled();
    }

    #[tokio::test]
    async fn a_delivery_refused_or_failed_on_is_handled_when_it_comes_again() {
        let book = JobBook::default();
        drop(claim(&book, "a").await);
        let again = claim(&book, "a").await;
        again.handled();
        assert!(is_duplicate(&book, "a").await);
    }

    #[tokio::test]
    async fn a_cancelled_handler_releases_its_claim() {
        let book = JobBook::default();
        // A handler that claimed, then was dropped at an await point.
        let handler = async {
            let _claim = claim(&book, "a").await;
            std::future::pending::<()>().await;
        };
        let timed_out = tokio::time::timeout(Duration::from_millis(10), handler).await;
        assert!(timed_out.is_err());
        claim(&book, "a").await.handled();
    }

    #[tokio::test]
    async fn a_copy_arriving_meanwhile_waits_for_the_first_outcome() {
        let book = JobBook::default();
        // The first copy is handled: the second is a duplicate.
        let first = claim(&book, "a").await;
        let second = book.claim_delivery("a");
        tokio::pin!(second);
        assert!(futures::poll!(&mut second).is_pending(), "waits");
        first.handled();
        assert!(matches!(second.await, Delivery::Duplicate));
        // The first copy fails: the second gets the claim.
        let first = claim(&book, "b").await;
        let second = book.claim_delivery("b");
        tokio::pin!(second);
        assert!(futures::poll!(&mut second).is_pending(), "waits");
        drop(first);
        let Delivery::New(second) = second.await else {
            panic!("the second copy of a failed delivery is handled");
        };
        second.handled();
        assert!(is_duplicate(&book, "b").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_copies_at_once_are_handled_once() {
        let book = std::sync::Arc::new(JobBook::default());
        let handled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let copies: Vec<_> = (0..16)
            .map(|_| {
                let (book, handled) = (book.clone(), handled.clone());
                tokio::spawn(async move {
                    if let Delivery::New(claim) = book.claim_delivery("d").await {
                        tokio::task::yield_now().await;
                        handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        claim.handled();
                    }
                })
            })
            .collect();
        for copy in copies {
            copy.await.unwrap();
        }
        assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn only_the_newest_handled_deliveries_are_remembered() {
        let book = JobBook::default();
        for i in 0..=DELIVERIES_KEPT {
            claim(&book, &format!("d-{i}")).await.handled();
        }
        {
            let inner = book.lock();
            assert_eq!(inner.deliveries.len(), DELIVERIES_KEPT);
            assert_eq!(inner.delivery_order.len(), DELIVERIES_KEPT);
            assert!(inner.claimed.is_empty());
        }
        // The oldest is forgotten (handled again if redelivered); the newest is not.
        claim(&book, "d-0").await.handled();
        assert!(is_duplicate(&book, &format!("d-{DELIVERIES_KEPT}")).await);
    }

    #[test]
    fn jobs_missing_from_a_listing_are_only_candidates() {
        let book = JobBook::default();
        book.observe(report(1, JobStatus::Queued));
        book.observe(report(2, JobStatus::Queued));
        book.observe(report(3, JobStatus::Queued));
        let later = Instant::now() + Duration::from_millis(1);
        let unlisted = book.unlisted_queued("o/r", later, &HashSet::from([2]), 1);
        assert_eq!(unlisted.len(), 1, "bounded by the limit");
        let unlisted = book.unlisted_queued("O/R", later, &HashSet::from([2]), 10);
        let ids: Vec<i64> = unlisted.iter().map(|e| e.report.id).collect();
        assert_eq!(ids, [1, 3]);
        // Being unlisted changes nothing by itself: only a direct read does.
        assert_eq!(book.queued().len(), 3);
        book.checked(1);
        let ids: Vec<i64> = book
            .unlisted_queued("o/r", Instant::now(), &HashSet::new(), 10)
            .iter()
            .map(|e| e.report.id)
            .collect();
        assert_eq!(ids.last(), Some(&1), "the job just checked goes last");
    }
}
