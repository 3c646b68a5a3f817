//! Supervised background loops: reconcile, scaling, polling, Docker events,
//! image pulls.
//!
//! Each loop runs as a named task of one [`Supervisor`] (a `JoinSet`). A
//! loop that ends before shutdown, or panics, is a failure: the supervisor
//! reports it, and the process then exits non-zero with a log line naming
//! the loop, so Docker's restart policy brings it back in a known state
//! (the first reconcile pass adopts what the last one left) rather than
//! running on half-blind while `/healthz` still says 200.
//!
//! Each loop also reports its successful passes through a [`Beat`];
//! [`Heartbeats`] keeps the last one per loop for `/health`, which turns
//! `degraded` when a loop is late by more than twice its interval.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use api_types::LoopHealth;
use chrono::{DateTime, Utc};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Intervals shorter than this are judged as if they were this long, so
/// one slow pass on a busy machine does not flap `/health`.
const LATENESS_FLOOR: Duration = Duration::from_secs(10);

/// What each loop last reported.
#[derive(Debug, Clone, Default)]
pub struct Heartbeats {
    loops: Arc<Mutex<BTreeMap<&'static str, LoopRecord>>>,
}

#[derive(Debug, Clone)]
struct LoopRecord {
    /// How often a pass is expected; `None` for loops driven by events.
    interval: Option<Duration>,
    /// When the loop started: lateness before the first pass counts from here.
    started: Instant,
    passes: u64,
    last_pass: Option<(Instant, DateTime<Utc>)>,
}

impl Heartbeats {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, LoopRecord>> {
        // Plain counters: still right after a panic elsewhere.
        self.loops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a loop expected to pass every `interval` (`None`: driven
    /// by events, never late); returns what it reports its passes with.
    pub fn register(&self, name: &'static str, interval: Option<Duration>) -> Beat {
        self.lock().insert(
            name,
            LoopRecord {
                interval,
                started: Instant::now(),
                passes: 0,
                last_pass: None,
            },
        );
        Beat {
            name,
            heartbeats: self.clone(),
        }
    }

    /// Each registered loop as `/health` shows it.
    pub fn snapshot(&self) -> BTreeMap<String, LoopHealth> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|(name, record)| {
                let since = record.last_pass.map_or(record.started, |(at, _)| at);
                let late = record.interval.is_some_and(|interval| {
                    let judged = interval.max(LATENESS_FLOOR);
                    now.saturating_duration_since(since) > judged * 3
                });
                (
                    (*name).to_owned(),
                    LoopHealth {
                        interval_seconds: record.interval.map(|i| i.as_secs()),
                        passes: record.passes,
                        last_pass_at: record.last_pass.map(|(_, at)| at),
                        late,
                    },
                )
            })
            .collect()
    }

    /// How many passes `name` has made (tests wait for passes, not time).
    pub fn passes(&self, name: &str) -> u64 {
        self.lock().get(name).map_or(0, |r| r.passes)
    }
}

/// A loop's way to say "one more pass done".
#[derive(Debug, Clone)]
pub struct Beat {
    name: &'static str,
    heartbeats: Heartbeats,
}

impl Beat {
    /// A beat nobody reads (for a loop run outside the supervisor).
    pub fn detached(name: &'static str) -> Self {
        Heartbeats::default().register(name, None)
    }

    /// Records a successful pass.
    pub fn pass(&self) {
        if let Some(record) = self.heartbeats.lock().get_mut(self.name) {
            record.passes += 1;
            record.last_pass = Some((Instant::now(), Utc::now()));
        }
    }
}

/// A loop that ended before shutdown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("background loop {name} {how}")]
pub struct LoopFailure {
    /// The loop's name.
    pub name: &'static str,
    /// `panicked: <message>`, or `stopped although nothing asked it to`.
    pub how: String,
}

/// The background loops, each a named task.
#[derive(Debug)]
pub struct Supervisor {
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    stop: CancellationToken,
}

impl Supervisor {
    /// A supervisor whose loops end when `stop` is cancelled.
    pub fn new(stop: CancellationToken) -> Self {
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            stop,
        }
    }

    /// Starts a loop under `name`.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Completes when a loop ends although `stop` was not cancelled (or
    /// panics at any time); pending for ever while all loops run.
    pub async fn first_failure(&mut self) -> LoopFailure {
        loop {
            let Some(joined) = self.tasks.join_next_with_id().await else {
                // No loop left to fail.
                return std::future::pending().await;
            };
            let (id, how) = match joined {
                Ok((id, ())) if self.stop.is_cancelled() => {
                    self.names.remove(&id);
                    continue;
                }
                Ok((id, ())) => (id, "stopped although nothing asked it to".to_owned()),
                Err(e) if e.is_cancelled() => {
                    self.names.remove(&e.id());
                    continue;
                }
                Err(e) => {
                    let id = e.id();
                    (id, format!("panicked: {}", panic_message(e.into_panic())))
                }
            };
            let name = self.names.remove(&id).unwrap_or("unknown");
            return LoopFailure { name, how };
        }
    }

    /// Cancels `stop` and waits up to `limit` for every loop to end;
    /// returns the loops still running then (they are aborted).
    pub async fn stop(mut self, limit: Duration) -> Vec<&'static str> {
        self.stop.cancel();
        let all_done = async {
            while let Some(joined) = self.tasks.join_next_with_id().await {
                let id = match joined {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                self.names.remove(&id);
            }
        };
        if tokio::time::timeout(limit, all_done).await.is_err() {
            self.tasks.abort_all();
        }
        self.names.into_values().collect()
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_loop_is_late_when_overdue_by_more_than_twice_its_interval() {
        let heartbeats = Heartbeats::default();
        let beat = heartbeats.register("reconcile", Some(Duration::from_secs(30)));
        let events = heartbeats.register("events", None);
        assert!(!heartbeats.snapshot()["reconcile"].late);
        beat.pass();
        tokio::time::advance(Duration::from_secs(89)).await;
        assert!(!heartbeats.snapshot()["reconcile"].late, "89 s: on time");
        tokio::time::advance(Duration::from_secs(2)).await;
        let snapshot = heartbeats.snapshot();
        assert!(snapshot["reconcile"].late, "91 s: late");
        assert_eq!(snapshot["reconcile"].passes, 1);
        assert_eq!(snapshot["reconcile"].interval_seconds, Some(30));
        beat.pass();
        assert!(!heartbeats.snapshot()["reconcile"].late);
        // An event-driven loop is never late.
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert!(!heartbeats.snapshot()["events"].late);
        events.pass();
        assert_eq!(heartbeats.passes("events"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn short_intervals_are_judged_against_the_floor() {
        let heartbeats = Heartbeats::default();
        heartbeats.register("scale", Some(Duration::from_secs(2)));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(!heartbeats.snapshot()["scale"].late);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(heartbeats.snapshot()["scale"].late);
    }

    #[tokio::test]
    async fn a_panicking_loop_is_reported_by_name() {
        let stop = CancellationToken::new();
        let mut supervisor = Supervisor::new(stop.clone());
        supervisor.spawn("steady", {
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        supervisor.spawn("fragile", async { panic!("lost its footing") });
        let failure = supervisor.first_failure().await;
        assert_eq!(failure.name, "fragile");
        assert_eq!(failure.how, "panicked: lost its footing");
        assert!(supervisor.stop(Duration::from_secs(1)).await.is_empty());
    }

    #[tokio::test]
    async fn a_loop_that_returns_early_is_a_failure_but_one_that_stops_is_not() {
        let stop = CancellationToken::new();
        let mut supervisor = Supervisor::new(stop.clone());
        supervisor.spawn("quitter", async {});
        let failure = supervisor.first_failure().await;
        assert_eq!(
            failure.to_string(),
            "background loop quitter stopped although nothing asked it to"
        );

        let stop = CancellationToken::new();
        let mut supervisor = Supervisor::new(stop.clone());
        supervisor.spawn("polite", {
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        stop.cancel();
        let quiet = tokio::time::timeout(Duration::from_millis(200), supervisor.first_failure());
        assert!(
            quiet.await.is_err(),
            "a loop that stops on request is no failure"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_ignores_stop_is_aborted_after_the_limit() {
        let mut supervisor = Supervisor::new(CancellationToken::new());
        supervisor.spawn("stubborn", std::future::pending());
        let left = supervisor.stop(Duration::from_secs(2)).await;
        assert_eq!(left, ["stubborn"]);
    }
}
