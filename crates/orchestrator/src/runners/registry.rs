//! The in-memory view of our runners: a cache of what Docker labels and
//! GitHub's runner list say, rebuilt from them at start and on every
//! reconcile pass. It also holds what only this process can know: creates in
//! flight, removals in progress, capacity reservations, and the recent
//! history of finished runners.
//!
//! Each piece of that process-only state is set through a guard whose `Drop`
//! undoes it ([`Reservation`], [`CreateMark`], [`RemovalMark`]): however an
//! operation ends (an early return, an error, a panic, a cancelled future),
//! no slot stays reserved, no name stays in flight and no runner stays
//! marked as being removed.
//!
//! Nothing here is the source of truth; losing it (a crash) loses nothing
//! that the next start cannot rebuild, except the history.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
// Tokio's clock, so that paused time in tests moves idle times too.
use tokio::time::Instant;

use api_types::{ListRunnersQuery, Runner, RunnerJob, RunnerState};
use chrono::{DateTime, Utc};

use crate::engine::{RunnerContainer, RunnerLabels};
use crate::github::GitHubRunner;

/// Where the container is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerPhase {
    /// Created or running.
    Alive,
    /// Exited with this code; waiting for its registration to be cleared.
    Exited(Option<i64>),
}

/// What we know of one live runner.
#[derive(Debug, Clone)]
pub struct RunnerView {
    /// The record from the container's labels.
    pub record: RunnerLabels,
    /// The image it runs.
    pub image: String,
    /// Docker's id of its container.
    pub container_id: String,
    /// Where the container is.
    pub phase: ContainerPhase,
    /// GitHub's runner id (from labels, or learned from a listing).
    pub github_runner_id: Option<i64>,
    /// Online on GitHub, as of the last listing.
    pub online: bool,
    /// Busy on GitHub, as of the last listing.
    pub busy: bool,
    /// Whether GitHub has ever shown it online.
    pub was_online: bool,
    /// Whether GitHub has ever shown it busy: a single-use runner that has
    /// taken its job never takes another, so it is never idle again, even
    /// in the moment between its job's end and its exit.
    pub was_busy: bool,
    /// Since when it has been online and not busy.
    pub idle_since: Option<Instant>,
    /// Being deregistered and removed.
    pub removing: bool,
    /// The job it runs or ran, when known.
    pub job: Option<RunnerJob>,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
    /// When this process first knew it (filled by a create, or adopted):
    /// a listing of containers begun before then cannot show it.
    pub known_since: Instant,
    /// Whether this process created it: only then is the time it took to
    /// come online known (an adopted runner may have been online for hours).
    pub started_here: bool,
}

/// A runner GitHub showed online for the first time: what
/// `gha_runner_startup_seconds` observes.
#[derive(Debug, Clone, PartialEq)]
pub struct CameOnline {
    /// Its pool.
    pub pool: String,
    /// How long after its create (its `created_at` label).
    pub after: Duration,
}

impl RunnerView {
    /// A view of a container just created or found in Docker.
    pub fn from_container(container: &RunnerContainer) -> Self {
        Self {
            github_runner_id: container.record.github_runner_id,
            record: container.record.clone(),
            image: container.image.clone(),
            container_id: container.id.clone(),
            phase: if container.exited() {
                ContainerPhase::Exited(container.exit_code)
            } else {
                ContainerPhase::Alive
            },
            online: false,
            busy: false,
            was_online: false,
            was_busy: false,
            idle_since: None,
            removing: false,
            job: None,
            reason: None,
            updated_at: Utc::now(),
            known_since: Instant::now(),
            started_here: false,
        }
    }

    /// Records GitHub's online/busy flags, tracking when idleness began.
    /// Returns the runner's coming online when this is the first time,
    /// for a runner this process created.
    pub fn set_github_status(&mut self, online: bool, busy: bool) -> Option<CameOnline> {
        let first_online = online && !self.was_online && self.started_here;
        self.was_busy |= busy;
        let idle = online && !busy && !self.was_busy;
        let was_idle = self.online && !self.busy;
        if idle && !was_idle {
            self.idle_since = Some(Instant::now());
        } else if !idle {
            self.idle_since = None;
        }
        self.online = online;
        self.busy = busy;
        self.was_online |= online;
        first_online.then(|| CameOnline {
            pool: self.record.pool.clone(),
            after: (Utc::now() - self.record.created_at)
                .to_std()
                .unwrap_or_default(),
        })
    }

    /// Whether it can still take a job: starting or idle, not leaving.
    pub fn available(&self) -> bool {
        !self.removing && !self.took_its_job() && self.phase == ContainerPhase::Alive
    }

    /// Whether it is running its one job, or ran it and has not exited yet.
    fn took_its_job(&self) -> bool {
        self.busy || self.was_busy || self.job.as_ref().is_some_and(|j| j.status == "completed")
    }

    /// The state the API shows.
    pub fn state(&self) -> RunnerState {
        if self.removing {
            return RunnerState::Removing;
        }
        match self.phase {
            ContainerPhase::Exited(Some(0)) => RunnerState::Finished,
            ContainerPhase::Exited(_) => RunnerState::Failed,
            // Busy until it exits: not `idle` in the moment after its job.
            ContainerPhase::Alive if self.took_its_job() => RunnerState::Busy,
            ContainerPhase::Alive if self.online => RunnerState::Idle,
            ContainerPhase::Alive => RunnerState::Starting,
        }
    }

    /// The runner as the API shows it.
    pub fn to_api(&self) -> Runner {
        let (repository, organization) = match &self.record.scope {
            crate::scope::Scope::Repository { .. } => (Some(self.record.scope.target()), None),
            crate::scope::Scope::Organization(org) => (None, Some(org.clone())),
        };
        Runner {
            id: self.record.name.clone(),
            github_runner_id: self.github_runner_id,
            repository,
            organization,
            labels: self.record.labels.clone(),
            image: self.image.clone(),
            pool: self.record.pool.clone(),
            container_id: Some(self.container_id.clone()),
            state: self.state(),
            exit_code: match self.phase {
                ContainerPhase::Exited(code) => code,
                ContainerPhase::Alive => None,
            },
            reason: self.reason.clone(),
            created_at: self.record.created_at,
            updated_at: self.updated_at,
            job: self.job.clone(),
        }
    }
}

/// Capacity is full: how many slots are free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityExceeded {
    /// Slots free right now.
    pub free: usize,
    /// The cap.
    pub max: usize,
    /// Whether the cap reached is the pool's (not `MAX_RUNNERS`).
    pub pool: bool,
}

#[derive(Debug, Default)]
struct Inner {
    live: BTreeMap<String, RunnerView>,
    /// Slots promised to creates in flight.
    reserved: usize,
    /// The same, by pool.
    reserved_by_pool: HashMap<String, usize>,
    /// Names whose JIT call may have happened but whose container may not
    /// exist yet: the orphan sweep must not touch them. Held by [`CreateMark`]s.
    in_flight: HashSet<String>,
    /// Runners being deregistered and removed, with how many removals of
    /// each are under way (a delete and a reconcile pass may overlap). Held
    /// by [`RemovalMark`]s; a live view's `removing` mirrors it.
    removals: HashMap<String, usize>,
    /// Finished runners, newest last, with when they entered history.
    history: VecDeque<(Instant, Runner)>,
}

impl Inner {
    /// Gives back `slots` reserved slots of `pool`.
    fn unreserve(&mut self, pool: &str, slots: usize) {
        self.reserved -= slots;
        if let Some(count) = self.reserved_by_pool.get_mut(pool) {
            *count -= slots;
            if *count == 0 {
                self.reserved_by_pool.remove(pool);
            }
        }
    }

    /// Adds a live view, marked as being removed if a removal holds its name.
    fn insert_live(&mut self, mut view: RunnerView) {
        view.removing = self.removals.contains_key(&view.record.name);
        self.live.insert(view.record.name.clone(), view);
    }
}

/// The runners this process knows of.
#[derive(Debug)]
pub struct Registry {
    inner: Mutex<Inner>,
    max_runners: usize,
    history_for: Duration,
    /// Told whenever a runner leaves the live set, so that the scaler fills
    /// its slot at once instead of at its next tick.
    freed: Notify,
}

/// Slots reserved for a create; released on drop unless turned into runners.
#[derive(Debug)]
pub struct Reservation<'a> {
    registry: &'a Registry,
    pool: String,
    slots: usize,
}

impl Reservation<'_> {
    /// Turns one slot into a live runner (one this process created).
    pub fn fill(&mut self, mut view: RunnerView) {
        view.started_here = true;
        let mut inner = self.registry.lock();
        if self.slots > 0 {
            self.slots -= 1;
            inner.unreserve(&self.pool, 1);
        }
        inner.insert_live(view);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.slots > 0 {
            // Not a `freed` signal: slots given back by a create that
            // failed would wake the scaler straight into the same failure.
            // The next tick takes them.
            self.registry.lock().unreserve(&self.pool, self.slots);
        }
    }
}

/// A name marked in flight: its registration may exist at GitHub before its
/// container exists, so the orphan sweep leaves it alone. The mark goes when
/// this is dropped, whatever became of the create.
#[derive(Debug)]
#[must_use = "the name is in flight only while the mark lives"]
pub struct CreateMark<'a> {
    registry: &'a Registry,
    name: String,
}

impl CreateMark<'_> {
    /// The name marked.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for CreateMark<'_> {
    fn drop(&mut self) {
        self.registry.lock().in_flight.remove(&self.name);
    }
}

/// A runner marked as being removed (state `removing`, not available to
/// jobs, left alone by the exit handler). The mark goes when this is
/// dropped: a removal that failed leaves the runner as it was.
#[derive(Debug)]
#[must_use = "the runner is marked as being removed only while the mark lives"]
pub struct RemovalMark<'a> {
    registry: &'a Registry,
    name: String,
}

impl Drop for RemovalMark<'_> {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        let last = match inner.removals.get_mut(&self.name) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            _ => true,
        };
        if last {
            inner.removals.remove(&self.name);
            if let Some(view) = inner.live.get_mut(&self.name) {
                view.removing = false;
                view.updated_at = Utc::now();
            }
        }
    }
}

impl Registry {
    /// An empty registry with a cap and a history retention.
    pub fn new(max_runners: usize, history_for: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            max_runners,
            history_for,
            freed: Notify::new(),
        }
    }

    /// Completes when a slot has been freed since the last call (or is
    /// freed from now on): what the scaler waits on beside its tick.
    pub async fn slot_freed(&self) {
        self.freed.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it is a bug the supervisor or the task's
        // owner reports; a second panic here would only hide it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cap on live runners.
    pub fn max_runners(&self) -> usize {
        self.max_runners
    }

    /// Reserves `count` slots of `pool` (whose cap is `pool_max`),
    /// atomically with the checks against both caps, so two concurrent
    /// creates can never pass one together.
    ///
    /// # Errors
    /// [`CapacityExceeded`] with the number of free slots under the cap
    /// that is reached.
    pub fn reserve(
        &self,
        pool: &str,
        pool_max: usize,
        count: usize,
    ) -> Result<Reservation<'_>, CapacityExceeded> {
        let mut inner = self.lock();
        let used = inner.live.len() + inner.reserved;
        let free = self.max_runners.saturating_sub(used);
        let pool_used = inner
            .live
            .values()
            .filter(|v| v.record.pool == pool)
            .count()
            + inner.reserved_by_pool.get(pool).copied().unwrap_or(0);
        let pool_free = pool_max.saturating_sub(pool_used);
        if count > pool_free && pool_free < free {
            return Err(CapacityExceeded {
                free: pool_free,
                max: pool_max,
                pool: true,
            });
        }
        if count > free {
            return Err(CapacityExceeded {
                free,
                max: self.max_runners,
                pool: false,
            });
        }
        inner.reserved += count;
        *inner.reserved_by_pool.entry(pool.to_owned()).or_default() += count;
        Ok(Reservation {
            registry: self,
            pool: pool.to_owned(),
            slots: count,
        })
    }

    /// Slots free right now.
    pub fn free_slots(&self) -> usize {
        let inner = self.lock();
        self.max_runners
            .saturating_sub(inner.live.len() + inner.reserved)
    }

    /// Marks a name as being created (before its JIT call) until the mark
    /// is dropped.
    pub fn begin_create(&self, name: &str) -> CreateMark<'_> {
        self.lock().in_flight.insert(name.to_owned());
        CreateMark {
            registry: self,
            name: name.to_owned(),
        }
    }

    /// Marks a runner as being removed until the mark is dropped.
    pub fn begin_removal(&self, name: &str) -> RemovalMark<'_> {
        let mut inner = self.lock();
        *inner.removals.entry(name.to_owned()).or_default() += 1;
        if let Some(view) = inner.live.get_mut(name) {
            view.removing = true;
            view.updated_at = Utc::now();
        }
        RemovalMark {
            registry: self,
            name: name.to_owned(),
        }
    }

    /// Names being created right now.
    pub fn in_flight(&self) -> HashSet<String> {
        self.lock().in_flight.clone()
    }

    /// One live runner.
    pub fn get_live(&self, name: &str) -> Option<RunnerView> {
        self.lock().live.get(name).cloned()
    }

    /// Every live runner.
    pub fn live(&self) -> Vec<RunnerView> {
        self.lock().live.values().cloned().collect()
    }

    /// A runner as the API shows it, live or from history.
    pub fn get(&self, name: &str) -> Option<Runner> {
        let mut inner = self.lock();
        self.prune(&mut inner);
        if let Some(view) = inner.live.get(name) {
            return Some(view.to_api());
        }
        inner
            .history
            .iter()
            .rev()
            .find(|(_, r)| r.id == name)
            .map(|(_, r)| r.clone())
    }

    /// Runners matching `query`, live and recent history, oldest first.
    pub fn list(&self, query: &ListRunnersQuery) -> Vec<Runner> {
        let mut inner = self.lock();
        self.prune(&mut inner);
        let mut all: Vec<Runner> = inner.live.values().map(RunnerView::to_api).collect();
        all.extend(
            inner
                .history
                .iter()
                .filter(|(_, r)| !inner.live.contains_key(&r.id))
                .map(|(_, r)| r.clone()),
        );
        all.retain(|r| {
            query.state.is_none_or(|s| r.state == s)
                && query.repository.as_ref().is_none_or(|repo| {
                    r.repository
                        .as_ref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(repo))
                })
                && query.organization.as_ref().is_none_or(|org| {
                    r.organization
                        .as_ref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(org))
                })
                && query.pool.as_ref().is_none_or(|pool| &r.pool == pool)
        });
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        all
    }

    /// How many runners are in each state, live and recent history (what
    /// [`Self::list`] would show), counted in place: `/health` asks for it
    /// on every probe, and copying and sorting the whole fleet for a count
    /// made its cost grow with the fleet.
    pub fn counts(&self) -> BTreeMap<RunnerState, usize> {
        let mut inner = self.lock();
        self.prune(&mut inner);
        let mut counts: BTreeMap<RunnerState, usize> =
            RunnerState::ALL.iter().map(|s| (*s, 0)).collect();
        for view in inner.live.values() {
            *counts.entry(view.state()).or_default() += 1;
        }
        for (_, runner) in &inner.history {
            if !inner.live.contains_key(&runner.id) {
                *counts.entry(runner.state).or_default() += 1;
            }
        }
        counts
    }

    /// Applies `change` to a live runner; returns whether it exists.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut RunnerView)) -> bool {
        let mut inner = self.lock();
        match inner.live.get_mut(name) {
            Some(view) => {
                change(view);
                view.updated_at = Utc::now();
                true
            }
            None => false,
        }
    }

    /// Brings the live set in line with Docker's listing of *all* our
    /// containers, begun at `listed_at`: adopts containers we did not know
    /// (a previous run's survivors), drops views whose container is gone.
    /// A view the listing could not show is kept: one being created right
    /// now, or one this process came to know after the listing began (a
    /// create that finished meanwhile; dropping it would free its slot while
    /// its container runs, and the scaler would pass `MAX_RUNNERS`).
    pub fn sync_with_docker(&self, containers: &[RunnerContainer], listed_at: Instant) {
        let mut inner = self.lock();
        let present: HashSet<&str> = containers.iter().map(|c| c.record.name.as_str()).collect();
        let in_flight = inner.in_flight.clone();
        // A runner being removed leaves with its removal, which records how
        // it ended (its container may be gone already).
        let removing: HashSet<String> = inner.removals.keys().cloned().collect();
        let before = inner.live.len();
        inner.live.retain(|name, view| {
            present.contains(name.as_str())
                || in_flight.contains(name)
                || removing.contains(name)
                || view.known_since >= listed_at
        });
        if inner.live.len() < before {
            self.freed.notify_one();
        }
        for container in containers {
            match inner.live.get_mut(&container.record.name) {
                Some(view) => {
                    if container.exited() && view.phase == ContainerPhase::Alive {
                        view.phase = ContainerPhase::Exited(container.exit_code);
                        view.updated_at = Utc::now();
                    }
                }
                None => inner.insert_live(RunnerView::from_container(container)),
            }
        }
    }

    /// Adds one container found in Docker to the live set, if it is not
    /// there yet; nothing else changes (unlike [`Self::sync_with_docker`],
    /// which takes the whole listing).
    pub fn adopt(&self, container: &RunnerContainer) {
        let mut inner = self.lock();
        if !inner.live.contains_key(&container.record.name) {
            inner.insert_live(RunnerView::from_container(container));
        }
    }

    /// Records what a GitHub listing says of our runners; returns those it
    /// shows online for the first time.
    pub fn apply_github(&self, runners: &[GitHubRunner]) -> Vec<CameOnline> {
        let mut came_online = Vec::new();
        let mut inner = self.lock();
        for gh in runners {
            if let Some(view) = inner.live.get_mut(&gh.name) {
                let online = gh.is_online();
                if view.online != online
                    || view.busy != gh.busy
                    || view.github_runner_id != Some(gh.id)
                {
                    came_online.extend(view.set_github_status(online, gh.busy));
                    view.github_runner_id = Some(gh.id);
                    view.updated_at = Utc::now();
                }
            }
        }
        came_online
    }

    /// Moves a live runner to history (its container is gone).
    pub fn retire(&self, name: &str) {
        self.move_to_history(name);
    }

    /// As [`Self::retire`], returning the runner as history keeps it when
    /// it was live: the one caller that moved it learns how it ended (two
    /// removals racing, only one does).
    pub fn move_to_history(&self, name: &str) -> Option<Runner> {
        let mut inner = self.lock();
        let mut moved = None;
        if let Some(mut view) = inner.live.remove(name) {
            self.freed.notify_one();
            view.removing = false;
            view.updated_at = Utc::now();
            let mut runner = view.to_api();
            runner.container_id = None;
            if !runner.state.is_terminal() {
                // Removed while alive (e.g. shut down): it finished its life.
                runner.state = RunnerState::Finished;
            }
            moved = Some(runner.clone());
            inner.history.push_back((Instant::now(), runner));
        }
        self.prune(&mut inner);
        moved
    }

    /// Drops a live runner without history (deleted on request).
    pub fn forget(&self, name: &str) {
        if self.lock().live.remove(name).is_some() {
            self.freed.notify_one();
        }
    }

    fn prune(&self, inner: &mut Inner) {
        while let Some((at, _)) = inner.history.front() {
            if at.elapsed() > self.history_for {
                inner.history.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::scope::Scope;

    fn container(name: &str, running: bool, exit_code: Option<i64>) -> RunnerContainer {
        RunnerContainer {
            id: format!("id-{name}"),
            record: RunnerLabels {
                name: name.into(),
                scope: Scope::repository("o/r").unwrap(),
                labels: vec!["self-hosted".into()],
                created_at: Utc::now(),
                github_runner_id: Some(1),
                for_job: None,
                autoscaled: false,
                pool: "default".into(),
                docker: false,
            },
            image: "img".into(),
            running,
            created_only: false,
            exit_code,
        }
    }

    #[test]
    fn reservations_never_pass_the_cap() {
        let registry = Registry::new(3, Duration::from_secs(60));
        let a = registry.reserve("default", 10, 2).unwrap();
        assert_eq!(
            registry.reserve("default", 10, 2).unwrap_err(),
            CapacityExceeded {
                free: 1,
                max: 3,
                pool: false
            }
        );
        drop(a);
        assert_eq!(registry.free_slots(), 3);
    }

    #[test]
    fn a_pool_at_its_max_refuses_while_other_pools_still_reserve() {
        let registry = Registry::new(10, Duration::from_secs(60));
        // `default` (the test containers' pool) holds one live runner and one
        // reserved slot: its max of 2 is reached.
        let mut live = registry.reserve("default", 2, 1).unwrap();
        live.fill(RunnerView::from_container(&container("a", true, None)));
        let pending = registry.reserve("default", 2, 1).unwrap();
        assert_eq!(
            registry.reserve("default", 2, 1).unwrap_err(),
            CapacityExceeded {
                free: 0,
                max: 2,
                pool: true
            }
        );
        // Another pool's slots are its own, under MAX_RUNNERS over all.
        let large = registry.reserve("large", 8, 8).unwrap();
        assert_eq!(
            registry.reserve("small", 5, 1).unwrap_err(),
            CapacityExceeded {
                free: 0,
                max: 10,
                pool: false
            }
        );
        // A reservation given back frees its pool's slot too.
        drop(pending);
        drop(large);
        assert!(registry.reserve("default", 2, 1).is_ok());
    }

    #[test]
    fn filled_reservations_count_as_live() {
        let registry = Registry::new(2, Duration::from_secs(60));
        let mut r = registry.reserve("default", 10, 2).unwrap();
        r.fill(RunnerView::from_container(&container("a", true, None)));
        drop(r);
        assert_eq!(registry.free_slots(), 1);
    }

    #[test]
    fn a_runner_created_here_comes_online_once_and_an_adopted_one_never() {
        let registry = Registry::new(5, Duration::from_secs(60));
        let mut created = container("a", true, None);
        created.record.created_at = Utc::now() - chrono::Duration::seconds(4);
        let mut r = registry.reserve("default", 10, 1).unwrap();
        r.fill(RunnerView::from_container(&created));
        drop(r);
        registry.adopt(&container("b", true, None));
        let listing = |status: &str, busy: bool| {
            ["a", "b"].map(|name| GitHubRunner {
                id: 1,
                name: name.into(),
                status: status.into(),
                busy,
                labels: vec![],
            })
        };
        assert!(registry.apply_github(&listing("offline", false)).is_empty());
        let online = registry.apply_github(&listing("online", false));
        assert_eq!(online.len(), 1, "only the runner made here: {online:?}");
        assert_eq!(online[0].pool, "default");
        assert!((4..10).contains(&online[0].after.as_secs()), "{online:?}");
        assert!(registry.apply_github(&listing("online", true)).is_empty());
        assert!(registry.apply_github(&listing("offline", false)).is_empty());
        assert!(registry.apply_github(&listing("online", false)).is_empty());
    }

    #[test]
    fn a_runner_moves_to_history_once() {
        let registry = Registry::new(5, Duration::from_secs(60));
        registry.adopt(&container("a", false, Some(1)));
        let moved = registry.move_to_history("a").expect("it was live");
        assert_eq!(moved.state, RunnerState::Failed);
        assert!(
            registry.move_to_history("a").is_none(),
            "a second removal learns nothing"
        );
    }

    #[test]
    fn a_create_mark_ends_the_flight_when_dropped() {
        let registry = Registry::new(5, Duration::from_secs(60));
        let mark = registry.begin_create("a");
        assert_eq!(mark.name(), "a");
        assert!(registry.in_flight().contains("a"));
        drop(mark);
        assert!(registry.in_flight().is_empty());
    }

    #[test]
    fn overlapping_removals_unmark_the_runner_when_the_last_ends() {
        let registry = Registry::new(5, Duration::from_secs(60));
        registry.sync_with_docker(&[container("a", true, None)], Instant::now());
        let delete = registry.begin_removal("a");
        let pass = registry.begin_removal("a");
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Removing);
        drop(delete);
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Removing);
        drop(pass);
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Starting);
        assert!(registry.get_live("a").unwrap().available());
    }

    #[test]
    fn a_runner_seen_during_its_removal_shows_it() {
        let registry = Registry::new(5, Duration::from_secs(60));
        let removing = registry.begin_removal("a");
        registry.sync_with_docker(&[container("a", true, None)], Instant::now());
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Removing);
        drop(removing);
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Starting);
    }

    #[test]
    fn a_finished_removal_leaves_nothing_behind() {
        let registry = Registry::new(5, Duration::from_secs(60));
        registry.sync_with_docker(&[container("a", true, None)], Instant::now());
        let removing = registry.begin_removal("a");
        registry.forget("a");
        drop(removing);
        assert!(registry.get("a").is_none());
        assert!(registry.lock().removals.is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_operation_releases_every_mark() {
        let registry = Arc::new(Registry::new(2, Duration::from_secs(60)));
        registry.sync_with_docker(&[container("a", true, None)], Instant::now());
        let (marked, is_marked) = tokio::sync::oneshot::channel();
        let operation = tokio::spawn({
            let registry = registry.clone();
            async move {
                let _slot = registry.reserve("default", 10, 1).unwrap();
                let _name = registry.begin_create("b");
                let _removing = registry.begin_removal("a");
                marked.send(()).unwrap();
                std::future::pending::<()>().await;
            }
        });
        is_marked.await.unwrap();
        assert_eq!(registry.free_slots(), 0);
        assert!(registry.in_flight().contains("b"));
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Removing);

        operation.abort();
        assert!(operation.await.unwrap_err().is_cancelled());
        assert_eq!(registry.free_slots(), 1);
        assert!(registry.in_flight().is_empty());
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Starting);
    }

    #[test]
    fn states_follow_github_and_docker() {
        let registry = Registry::new(5, Duration::from_secs(60));
        registry.sync_with_docker(&[container("a", true, None)], Instant::now());
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Starting);
        let gh = GitHubRunner {
            id: 1,
            name: "a".into(),
            status: "online".into(),
            busy: false,
            labels: vec![],
        };
        registry.apply_github(std::slice::from_ref(&gh));
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Idle);
        registry.apply_github(&[GitHubRunner {
            busy: true,
            ..gh.clone()
        }]);
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Busy);
        // Its job over, GitHub shows it online and not busy until it exits:
        // still busy, never idle again, and no candidate for another job.
        registry.apply_github(std::slice::from_ref(&gh));
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Busy);
        assert!(!registry.get_live("a").unwrap().available());
        assert_eq!(registry.get_live("a").unwrap().idle_since, None);
        registry.sync_with_docker(&[container("a", false, Some(1))], Instant::now());
        assert_eq!(registry.get("a").unwrap().state, RunnerState::Failed);
        registry.retire("a");
        let a = registry.get("a").unwrap();
        assert_eq!(
            (a.state, a.exit_code, a.container_id),
            (RunnerState::Failed, Some(1), None)
        );
    }

    #[tokio::test]
    async fn a_runner_leaving_wakes_whoever_waits_for_a_slot() {
        let registry = Registry::new(1, Duration::from_secs(60));
        registry.sync_with_docker(&[container("a", true, None)], Instant::now());
        let waiting = registry.slot_freed();
        tokio::pin!(waiting);
        assert!(
            futures::poll!(waiting.as_mut()).is_pending(),
            "nothing freed yet"
        );
        registry.retire("a");
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("retiring a runner frees its slot");
        // A reservation given back (a create that failed) wakes nobody: a
        // scaler woken by it would retry into the same failure at once.
        let reservation = registry.reserve("default", 10, 1).unwrap();
        drop(reservation);
        assert_eq!(registry.free_slots(), 1);
        let waiting = registry.slot_freed();
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
    }

    #[test]
    fn a_listing_begun_before_a_runner_was_known_does_not_drop_it() {
        let registry = Registry::new(2, Duration::from_secs(60));
        let listed_at = Instant::now();
        // A create finishes after the listing began: the listing has only "a".
        std::thread::sleep(Duration::from_millis(2));
        registry.adopt(&container("new", true, None));
        registry.sync_with_docker(&[container("a", true, None)], listed_at);
        assert!(
            registry.get_live("new").is_some(),
            "kept: the listing could not show it"
        );
        assert_eq!(registry.free_slots(), 0);
        // A later listing without it is proof it is gone.
        registry.sync_with_docker(&[container("a", true, None)], Instant::now());
        assert!(registry.get_live("new").is_none());
    }

    #[test]
    fn adopting_one_container_leaves_the_others() {
        let registry = Registry::new(5, Duration::from_secs(60));
        registry.sync_with_docker(
            &[container("a", true, None), container("b", true, None)],
            Instant::now(),
        );
        registry.adopt(&container("c", false, Some(0)));
        assert_eq!(registry.live().len(), 3);
        assert_eq!(registry.free_slots(), 2);
    }

    #[test]
    fn history_expires() {
        let registry = Registry::new(5, Duration::ZERO);
        registry.sync_with_docker(&[container("a", false, Some(0))], Instant::now());
        registry.retire("a");
        std::thread::sleep(Duration::from_millis(5));
        assert!(registry.get("a").is_none());
    }
}
