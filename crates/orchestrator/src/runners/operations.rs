//! Work that must finish once begun. Creates, deletes, idle removals and
//! the reconcile passes asked for over HTTP change Docker and GitHub, and a
//! request handler is dropped the moment its client goes away (its own
//! timeout, the gateway's `UPSTREAM_TIMEOUT_SECONDS`, a closed connection).
//! So none of that work runs in a handler: each operation is a task of its
//! own on one [`TaskTracker`], and a handler only waits for the task's
//! [`Operation`] outcome, up to its deadline. Shutdown closes the tracker
//! and waits for it ([`Fleet::finish_operations`]).
//!
//! Two kinds of repeat join the operation already under way instead of
//! starting another:
//! - a create with an `Idempotency-Key` seen in the last 24 hours
//!   ([`Fleet::start_create_once`], [`super::idempotency`]);
//! - a delete of a runner whose delete (with the same `force`) is under way
//!   ([`Fleet::start_delete`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_types::{CreateRunnersRequest, Runner};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, warn};

use super::idempotency::{IdempotencyStore, KEY_LIFETIME, KeyReused, MAX_KEYS};
use super::request::BatchPlan;
use super::{Fleet, FleetError};

/// What a create ends with: the batch's runners, or why there are none.
pub type CreateOutcome = Result<Vec<Runner>, Arc<FleetError>>;

/// What a delete ends with.
pub type RemovalOutcome = Result<(), Arc<FleetError>>;

/// The operation's task ended without an outcome: it panicked, or the
/// runtime stopped under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operation stopped without an outcome")]
pub struct OperationLost;

/// A handle on one operation's outcome. Clones share it: every request
/// that waits for the same operation gets the same outcome.
pub struct Operation<T> {
    outcome: Shared<BoxFuture<'static, Result<T, OperationLost>>>,
    started_at: DateTime<Utc>,
}

impl<T> Clone for Operation<T> {
    fn clone(&self) -> Self {
        Self {
            outcome: self.outcome.clone(),
            started_at: self.started_at,
        }
    }
}

impl<T> std::fmt::Debug for Operation<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("started_at", &self.started_at)
            .field("finished", &self.outcome.peek().is_some())
            .finish()
    }
}

impl<T: Clone + Send + Sync + 'static> Operation<T> {
    /// The outcome, waiting at most `limit` for it; `None` while the
    /// operation still runs (it goes on regardless).
    pub async fn outcome_within(&self, limit: Duration) -> Option<Result<T, OperationLost>> {
        tokio::time::timeout(limit, self.outcome.clone()).await.ok()
    }

    /// The outcome, however long it takes.
    pub async fn outcome(&self) -> Result<T, OperationLost> {
        self.outcome.clone().await
    }

    /// When the operation began.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }
}

/// How far a batch has come, for the answer to a request that stops
/// waiting before the batch ends.
#[derive(Debug, Default)]
pub struct BatchProgress {
    started: AtomicUsize,
    rolling_back: AtomicBool,
}

impl BatchProgress {
    /// Runners of the batch whose containers have started (none is usable
    /// before the whole batch is).
    pub fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    /// Whether the batch failed and what it made is being undone.
    pub fn rolling_back(&self) -> bool {
        self.rolling_back.load(Ordering::Relaxed)
    }

    pub(crate) fn runner_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn begin_rollback(&self) {
        self.rolling_back.store(true, Ordering::Relaxed);
    }
}

/// A batch being created (or created already).
#[derive(Debug, Clone)]
pub struct CreateOperation {
    /// Its outcome.
    pub operation: Operation<CreateOutcome>,
    /// How far it has come.
    pub progress: Arc<BatchProgress>,
    /// Runners asked for.
    pub count: usize,
}

/// A delete under way, for a repeat of it to join.
#[derive(Debug, Clone)]
struct DeleteEntry {
    /// Tells this delete from a later one of the same runner.
    id: u64,
    force: bool,
    operation: Operation<RemovalOutcome>,
}

/// The operations under way, and what lets a repeat join one.
#[derive(Debug)]
pub struct Operations {
    /// Every operation's task; shutdown waits for them.
    tracker: TaskTracker,
    /// Creates by `Idempotency-Key`.
    creates: Mutex<IdempotencyStore<CreateRunnersRequest, CreateOperation>>,
    /// Deletes under way, by runner name.
    deletes: Mutex<HashMap<String, DeleteEntry>>,
    next_delete: AtomicU64,
}

impl Default for Operations {
    fn default() -> Self {
        Self {
            tracker: TaskTracker::new(),
            creates: Mutex::new(IdempotencyStore::new(KEY_LIFETIME, MAX_KEYS)),
            deletes: Mutex::default(),
            next_delete: AtomicU64::new(0),
        }
    }
}

impl Operations {
    /// Runs `work` as a task of its own, tracked for shutdown, in the
    /// caller's tracing span. Dropping the returned handle does not stop it.
    pub fn spawn<T>(&self, work: impl Future<Output = T> + Send + 'static) -> Operation<T>
    where
        T: Clone + Send + Sync + 'static,
    {
        let task = self
            .tracker
            .spawn(work.instrument(tracing::Span::current()));
        let outcome = task
            .map(|joined| {
                joined.map_err(|e| {
                    if e.is_panic() {
                        error!(error = %e, "an operation panicked");
                    }
                    OperationLost
                })
            })
            .boxed()
            .shared();
        Operation {
            outcome,
            started_at: Utc::now(),
        }
    }

    /// Operations under way.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Closes the tracker and waits, at most `limit`, for every operation
    /// to end; whether all did. Operations started after this are waited
    /// for too, when they start before the wait ends.
    async fn finish(&self, limit: Duration) -> bool {
        let tracker = &self.tracker;
        tracker.close();
        if tracker.is_empty() {
            return true;
        }
        info!(
            running = tracker.len(),
            "waiting for the operations under way to finish"
        );
        if tokio::time::timeout(limit, tracker.wait()).await.is_ok() {
            true
        } else {
            warn!(
                left = tracker.len(),
                "operations still under way at the shutdown deadline; the next start reconciles what they leave"
            );
            false
        }
    }
}

/// Removes a delete from [`Operations::deletes`] when its task ends, however
/// it ends.
struct DeleteSlot<'a> {
    deletes: &'a Mutex<HashMap<String, DeleteEntry>>,
    name: String,
    id: u64,
}

impl Drop for DeleteSlot<'_> {
    fn drop(&mut self) {
        let mut deletes = self.deletes.lock().expect("deletes lock");
        if deletes.get(&self.name).is_some_and(|e| e.id == self.id) {
            deletes.remove(&self.name);
        }
    }
}

impl Fleet {
    /// Starts creating the batch `plan` as an operation of its own.
    pub fn start_create(self: &Arc<Self>, plan: BatchPlan) -> CreateOperation {
        let progress = Arc::new(BatchProgress::default());
        let count = plan.count;
        let fleet = self.clone();
        let report = progress.clone();
        let operation = self
            .operations
            .spawn(async move { fleet.create_batch(plan, &report).await.map_err(Arc::new) });
        CreateOperation {
            operation,
            progress,
            count,
        }
    }

    /// Like [`Self::start_create`], once per `key`: a key used in the last
    /// 24 hours with the same `request` gives the batch it started (under
    /// way, or ended, successfully or not), and nothing new is started.
    ///
    /// # Errors
    /// [`KeyReused`] when the key was used with another request.
    pub fn start_create_once(
        self: &Arc<Self>,
        key: &str,
        request: &CreateRunnersRequest,
        plan: BatchPlan,
    ) -> Result<CreateOperation, KeyReused> {
        let mut creates = self.operations.creates.lock().expect("creates lock");
        let (operation, first) =
            creates.get_or_start(key, request.clone(), || self.start_create(plan))?;
        if !first {
            info!(
                idempotency_key = key,
                "create repeated: answering the first batch"
            );
        }
        Ok(operation)
    }

    /// Starts deleting the runner `name` (see [`Self::delete_runner`]) as an
    /// operation of its own, or joins its delete already under way.
    pub fn start_delete(self: &Arc<Self>, name: &str, force: bool) -> Operation<RemovalOutcome> {
        let mut deletes = self.operations.deletes.lock().expect("deletes lock");
        if let Some(entry) = deletes.get(name).filter(|e| e.force == force) {
            info!(runner = name, "delete repeated: joining the one under way");
            return entry.operation.clone();
        }
        let id = self.operations.next_delete.fetch_add(1, Ordering::Relaxed);
        let fleet = self.clone();
        let runner = name.to_owned();
        let operation = self.operations.spawn(async move {
            let _slot = DeleteSlot {
                deletes: &fleet.operations.deletes,
                name: runner.clone(),
                id,
            };
            fleet.delete_runner(&runner, force).await.map_err(Arc::new)
        });
        deletes.insert(
            name.to_owned(),
            DeleteEntry {
                id,
                force,
                operation: operation.clone(),
            },
        );
        operation
    }

    /// Shutdown: waits, at most `limit`, for every operation under way
    /// (creates, deletes, idle removals, requested reconcile passes) to
    /// end. Call it once no request can start one any more (after the
    /// server stopped). Returns whether all ended in time.
    pub async fn finish_operations(&self, limit: Duration) -> bool {
        self.operations.finish(limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_operation_outlives_whoever_waits_for_it() {
        let operations = Operations::default();
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let operation = operations.spawn(async move {
            finished.await.unwrap();
            7
        });
        // A waiter that gives up, or is dropped mid-wait, stops nothing.
        assert_eq!(operation.outcome_within(Duration::from_secs(1)).await, None);
        let waiter = tokio::spawn({
            let operation = operation.clone();
            async move { operation.outcome().await }
        });
        tokio::task::yield_now().await;
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(operations.running(), 1);
        finish.send(()).unwrap();
        assert_eq!(operation.outcome().await, Ok(7));
        assert_eq!(
            operation.outcome_within(Duration::ZERO).await,
            Some(Ok(7)),
            "every waiter gets the outcome"
        );
    }

    #[tokio::test]
    async fn a_panicking_operation_ends_without_an_outcome() {
        let operations = Operations::default();
        let operation = operations.spawn(async { panic!("boom") });
        let lost: Result<(), OperationLost> = operation.outcome().await;
        assert_eq!(lost, Err(OperationLost));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_operations_up_to_its_deadline() {
        let operations = Operations::default();
        operations.spawn(tokio::time::sleep(Duration::from_secs(5)));
        assert!(!operations.finish(Duration::from_secs(1)).await);
        assert_eq!(operations.running(), 1, "still under way, not cut");
        assert!(operations.finish(Duration::from_secs(10)).await);
        assert_eq!(operations.running(), 0);
        assert!(operations.finish(Duration::ZERO).await, "nothing left");
    }
}
