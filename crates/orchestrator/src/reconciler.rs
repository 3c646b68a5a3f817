//! The reconcile pass: brings Docker, GitHub and the registry into line.
//! It runs at start, every `RECONCILE_INTERVAL_SECONDS`, and on
//! `POST /runners/cleanup`.
//!
//! Each pass reads GitHub's runner list (one call per 100 runners, per scope),
//! then Docker's containers, and then:
//! - retires exited containers (deregister, then remove);
//! - deletes offline registrations with our prefix that have no container
//!   and are not being created (a crash between the JIT call and the
//!   container create leaves one);
//! - removes containers whose registration GitHub no longer has (confirmed
//!   with a GET: absence from a list is not proof);
//! - removes runners that never came online in time, and runners past their
//!   maximum lifetime that are not busy.
//!
//! A scope whose listing failed is "unknown": nothing that depends on
//! GitHub's view of it is removed in that pass.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use api_types::{CleanupReport, RemovalReason, RemovedRunner};
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::engine::{DockerError, RunnerContainer, RunnerLabels};
use crate::github::GitHubRunner;
use crate::github::client::DeleteOutcome;
use crate::metrics::FailureReason;
use crate::runners::registry::ContainerPhase;
use crate::runners::{Fleet, FleetError};
use crate::scope::Scope;
use crate::supervisor::Beat;

/// A container younger than this is not judged by a listing taken before it
/// was registered.
const LISTING_MARGIN: chrono::Duration = chrono::Duration::seconds(10);

/// The warning of a pass that could not read Docker's containers (and so
/// did nothing).
const NO_CONTAINERS: &str = "could not list containers";

/// Runs reconcile passes one at a time.
#[derive(Debug)]
pub struct Reconciler {
    fleet: Arc<Fleet>,
    /// Passes never overlap: the loop and `POST /runners/cleanup` share it.
    running: Mutex<()>,
}

impl Reconciler {
    /// A reconciler for `fleet`.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        Self {
            fleet,
            running: Mutex::new(()),
        }
    }

    /// Passes every interval (or when woken) until `stop`; each pass that
    /// could read Docker's containers is a `beat`.
    pub async fn run(&self, stop: CancellationToken, beat: Beat) {
        let interval = self.fleet.config.reconcile_interval;
        loop {
            let report = self.pass().await;
            if !report.warnings.iter().any(|w| w.starts_with(NO_CONTAINERS)) {
                beat.pass();
            }
            if !report.removed.is_empty() {
                info!(removed = report.removed.len(), by_reason = ?report.by_reason, "reconcile pass removed runners");
            }
            for warning in &report.warnings {
                debug!(%warning, "reconcile warning");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.fleet.reconcile_now.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One pass; what it removed and what it could not do.
    pub async fn pass(&self) -> CleanupReport {
        let _one_at_a_time = self.running.lock().await;
        let fleet = &self.fleet;
        let mut report = CleanupReport::default();

        // 1. Which scopes to list: those of our containers, each pool's.
        let first = match fleet.engine.list_runners().await {
            Ok(c) => c,
            Err(e) => {
                report.warnings.push(format!("{NO_CONTAINERS}: {e}"));
                return report;
            }
        };
        let mut scopes: BTreeSet<Scope> = first.iter().map(|c| c.record.scope.clone()).collect();
        scopes.extend(fleet.config.default_scope());
        scopes.extend(fleet.pools.current().iter().filter_map(|p| p.scope.clone()));
        scopes.extend(fleet.registry.live().into_iter().map(|v| v.record.scope));

        // 2. GitHub's view, per scope; a failed listing makes the scope unknown.
        let listing_started = Utc::now();
        let mut listings: HashMap<Scope, Vec<GitHubRunner>> = HashMap::new();
        for scope in &scopes {
            match fleet.github.list_runners(scope).await {
                Ok(runners) => {
                    listings.insert(scope.clone(), runners);
                }
                Err(e) => report
                    .warnings
                    .push(format!("could not list GitHub runners of {scope}: {e}")),
            }
        }

        // 3. Creates in flight, then Docker again: a runner registered before
        //    the listing is either still in flight or has its container now.
        let in_flight = fleet.registry.in_flight();
        report.in_flight = in_flight.iter().cloned().collect();
        report.in_flight.sort();
        let listed_at = tokio::time::Instant::now();
        let containers = match fleet.engine.list_runners().await {
            Ok(c) => c,
            Err(e) => {
                report.warnings.push(format!("{NO_CONTAINERS}: {e}"));
                return report;
            }
        };
        fleet.registry.sync_with_docker(&containers, listed_at);
        for runners in listings.values() {
            for online in fleet.registry.apply_github(runners) {
                fleet.metrics.runner_online(&online.pool, online.after);
            }
        }

        // 3b. Containers created and never started, whose create is not in
        //     flight here: a process that stopped between creating and
        //     starting them (a crash mid-create). Their JIT configuration is
        //     unused, so finish the create; left as they are, they would
        //     count as starting runners until the registration timeout
        //     while the jobs they stand for wait.
        let in_flight_now = fleet.registry.in_flight();
        for container in containers
            .iter()
            .filter(|c| c.created_only && !in_flight_now.contains(&c.record.name))
        {
            let name = &container.record.name;
            match fleet.engine.start(name).await {
                // 304: started meanwhile.
                Ok(()) | Err(DockerError::Api { status: 304, .. }) => {
                    info!(runner = %name, "started a runner whose create was cut short between creating and starting its container");
                }
                Err(e) => report.warnings.push(format!(
                    "could not start runner {name}, created and never started: {e}"
                )),
            }
        }

        // 4. Exited containers.
        for container in containers.iter().filter(|c| c.exited()) {
            match fleet.retire_exited(&container.record.name).await {
                Ok(Some(removed)) => report.push(removed),
                Ok(None) => {}
                Err(e) => report.warnings.push(format!(
                    "exited runner {} kept for now: {e}",
                    container.record.name
                )),
            }
        }

        // 5. Registrations of ours with no container.
        let container_names: HashSet<&str> =
            containers.iter().map(|c| c.record.name.as_str()).collect();
        let prefix = format!("{}-", fleet.config.runner_name_prefix);
        for (scope, runners) in &listings {
            for gh in runners {
                if !gh.name.starts_with(&prefix)
                    || container_names.contains(gh.name.as_str())
                    || in_flight.contains(&gh.name)
                    || gh.is_online()
                    || gh.busy
                {
                    continue;
                }
                match fleet.github.delete_runner(scope, gh.id).await {
                    Ok(DeleteOutcome::Deleted) => report.push(RemovedRunner {
                        id: gh.name.clone(),
                        reason: RemovalReason::OrphanRegistration,
                        container_removed: false,
                        registration_deleted: true,
                    }),
                    Ok(_) => {}
                    Err(e) => report
                        .warnings
                        .push(format!("orphan registration {} kept for now: {e}", gh.name)),
                }
            }
        }

        // 6. Live containers judged against GitHub's view.
        for container in containers.iter().filter(|c| !c.exited()) {
            let Some(runners) = listings.get(&container.record.scope) else {
                continue;
            };
            if let Some((reason, github_id)) = self.judge(container, runners, listing_started).await
            {
                let name = &container.record.name;
                // `removing` until this ends, whatever the outcome.
                let _removing = fleet.registry.begin_removal(name);
                match fleet
                    .deregister_then_remove(&container.record, github_id)
                    .await
                {
                    Ok(deleted) => {
                        fleet.registry.update(name, |v| {
                            v.reason = Some(removal_note(
                                reason,
                                config_seconds(fleet, reason, &container.record.pool),
                            ));
                            if reason == RemovalReason::RegistrationTimeout {
                                v.phase = ContainerPhase::Exited(None);
                            }
                        });
                        if fleet.registry.move_to_history(name).is_some()
                            && let Some(failure) = FailureReason::of_removal(reason)
                        {
                            fleet.metrics.runner_failed(&container.record.pool, failure);
                        }
                        report.push(RemovedRunner {
                            id: name.clone(),
                            reason,
                            container_removed: true,
                            registration_deleted: deleted,
                        });
                    }
                    Err(FleetError::Busy(_)) => {}
                    Err(e) => {
                        report.warnings.push(format!(
                            "runner {name} ({}) kept for now: {e}",
                            reason.as_str()
                        ));
                    }
                }
            }
        }
        // 7. Runners' own Docker engines: an engine (or its volumes) whose
        //    runner is gone, and a live runner whose engine is not running.
        self.check_sidecars(&containers, &mut report).await;
        if !report.removed.is_empty() {
            debug!(report = ?report.by_reason, "reconcile pass done");
        }
        report
    }

    /// Step 7 of a pass: what is left of engines whose runner is gone is
    /// removed; a live runner whose engine stopped or vanished is removed
    /// ([`crate::runners::Fleet::engine_stopped`]). `containers` is the
    /// pass's listing; creates in flight and runners the registry knows
    /// are left alone (their engine is made before their container).
    async fn check_sidecars(&self, containers: &[RunnerContainer], report: &mut CleanupReport) {
        let fleet = &self.fleet;
        let engines = match fleet.engine.sidecars().await {
            Ok(engines) => engines,
            Err(e) => {
                report
                    .warnings
                    .push(format!("could not list runners' Docker engines: {e}"));
                return;
            }
        };
        let in_flight = fleet.registry.in_flight();
        let running: HashSet<&str> = engines
            .iter()
            .filter(|e| e.running)
            .map(|e| e.runner.as_str())
            .collect();
        let listed: HashSet<&str> = containers.iter().map(|c| c.record.name.as_str()).collect();
        for engine in &engines {
            let runner = engine.runner.as_str();
            if listed.contains(runner)
                || in_flight.contains(runner)
                || fleet.registry.get_live(runner).is_some()
            {
                continue;
            }
            match fleet.engine.remove_sidecar(runner).await {
                Ok(()) => info!(runner, "removed a Docker engine whose runner is gone"),
                Err(e) => report.warnings.push(format!(
                    "the Docker engine of runner {runner}, which is gone, kept for now: {e}"
                )),
            }
        }
        for container in containers
            .iter()
            .filter(|c| c.record.docker && !c.exited() && !running.contains(c.record.name.as_str()))
        {
            let name = &container.record.name;
            if let Err(e) = fleet.engine_stopped(name, None).await {
                report.warnings.push(format!(
                    "runner {name}, whose Docker engine stopped, kept for now: {e}"
                ));
            }
        }
    }

    /// Whether a live container must go, and why. `None`: keep it. The
    /// decision is [`verdict`]'s; this only asks GitHub when it says a
    /// missing registration must be confirmed.
    async fn judge(
        &self,
        container: &RunnerContainer,
        runners: &[GitHubRunner],
        listing_started: DateTime<Utc>,
    ) -> Option<(RemovalReason, Option<i64>)> {
        let record = &container.record;
        let registration = runners.iter().find(|r| r.name == record.name);
        let was_online = self
            .fleet
            .registry
            .get_live(&record.name)
            .is_some_and(|v| v.was_online);
        let limits = Limits {
            registration_timeout: self.fleet.config.runner_registration_timeout,
            max_lifetime: max_lifetime(&self.fleet, &record.pool),
        };
        match verdict(
            record,
            registration,
            was_online,
            listing_started,
            Utc::now(),
            &limits,
        ) {
            Verdict::Keep => None,
            Verdict::Remove(reason, id) => Some((reason, id)),
            // Absence from a list is not proof: ask for the runner itself.
            Verdict::ConfirmGone(id) => match self.fleet.github.get_runner(&record.scope, id).await
            {
                Ok(None) => Some((RemovalReason::RegistrationGone, None)),
                Ok(Some(_)) => None,
                Err(e) => {
                    warn!(runner = %record.name, error = %e, "could not confirm a missing registration");
                    None
                }
            },
        }
    }
}

/// The time limits a live runner is judged by.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `RUNNER_REGISTRATION_TIMEOUT_SECONDS`.
    pub registration_timeout: Duration,
    /// `RUNNER_MAX_LIFETIME_SECONDS`.
    pub max_lifetime: Duration,
}

/// What a listing says about one live container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Keep,
    /// Remove it, for this reason; the registration's id when it has one.
    Remove(RemovalReason, Option<i64>),
    /// Its registration (this id) is missing from the listing: remove it
    /// only if a direct read confirms it is gone.
    ConfirmGone(i64),
}

/// Judges one live container against GitHub's listing taken at
/// `listing_started`, at `now`: a plain function of what is known.
pub fn verdict(
    record: &RunnerLabels,
    registration: Option<&GitHubRunner>,
    was_online: bool,
    listing_started: DateTime<Utc>,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Verdict {
    // A clock gone backwards makes a negative age: read it as none.
    let age = (now - record.created_at).to_std().unwrap_or_default();
    match registration {
        None => {
            // Registered after the listing began? Then the list cannot know it.
            if record.created_at + LISTING_MARGIN > listing_started {
                return Verdict::Keep;
            }
            if let Some(id) = record.github_runner_id {
                return Verdict::ConfirmGone(id);
            }
            // Token mode: never registered yet; only the timeout applies.
            if age >= limits.registration_timeout {
                Verdict::Remove(RemovalReason::RegistrationTimeout, None)
            } else {
                Verdict::Keep
            }
        }
        Some(gh) => {
            if !gh.is_online() && !gh.busy && !was_online && age >= limits.registration_timeout {
                return Verdict::Remove(RemovalReason::RegistrationTimeout, Some(gh.id));
            }
            if !gh.busy && age >= limits.max_lifetime {
                return Verdict::Remove(RemovalReason::MaxLifetime, Some(gh.id));
            }
            Verdict::Keep
        }
    }
}

/// The longest a runner of `pool` that is not busy may live: its pool's
/// `max_lifetime`, or `RUNNER_MAX_LIFETIME_SECONDS` once its pool is gone.
fn max_lifetime(fleet: &Fleet, pool: &str) -> Duration {
    fleet
        .pools
        .current()
        .get(pool)
        .map_or(fleet.config.runner_max_lifetime, |p| p.max_lifetime)
}

/// The setting behind a time-based removal of a runner of `pool`, in seconds.
fn config_seconds(fleet: &Fleet, reason: RemovalReason, pool: &str) -> u64 {
    match reason {
        RemovalReason::RegistrationTimeout => fleet.config.runner_registration_timeout.as_secs(),
        RemovalReason::MaxLifetime => max_lifetime(fleet, pool).as_secs(),
        _ => 0,
    }
}

/// What the API shows as the removed runner's `reason`.
fn removal_note(reason: RemovalReason, seconds: u64) -> String {
    match reason {
        RemovalReason::RegistrationTimeout => {
            format!("did not come online within {seconds}s (RUNNER_REGISTRATION_TIMEOUT_SECONDS)")
        }
        RemovalReason::MaxLifetime => {
            format!(
                "removed after its maximum lifetime of {seconds}s (its pool's max_lifetime; RUNNER_MAX_LIFETIME_SECONDS without a pools file)"
            )
        }
        RemovalReason::RegistrationGone => "its GitHub registration was gone".to_owned(),
        other => other.as_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::types::GitHubLabel;

    const LIMITS: Limits = Limits {
        registration_timeout: Duration::from_secs(600),
        max_lifetime: Duration::from_secs(86_400),
    };

    fn record(created_at: DateTime<Utc>, github_runner_id: Option<i64>) -> RunnerLabels {
        RunnerLabels {
            name: "gha-runner-a".into(),
            scope: Scope::repository("acme/app").unwrap(),
            labels: vec!["self-hosted".into()],
            created_at,
            github_runner_id,
            for_job: None,
            autoscaled: false,
            pool: "default".into(),
            docker: false,
        }
    }

    fn registration(status: &str, busy: bool) -> GitHubRunner {
        GitHubRunner {
            id: 7,
            name: "gha-runner-a".into(),
            status: status.into(),
            busy,
            labels: vec![GitHubLabel {
                name: "self-hosted".into(),
            }],
        }
    }

    /// One fixed "now" for a whole test, so that ages are exact.
    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn ago(seconds: i64) -> DateTime<Utc> {
        now() - chrono::Duration::seconds(seconds)
    }

    #[test]
    fn a_missing_registration_is_confirmed_before_anything_is_removed() {
        let now = now();
        let old = record(ago(60), Some(7));
        assert_eq!(
            verdict(&old, None, true, now, now, &LIMITS),
            Verdict::ConfirmGone(7)
        );
        // Made after the listing began (within the margin): not judged by it.
        let young = record(ago(2), Some(7));
        assert_eq!(
            verdict(&young, None, false, now, now, &LIMITS),
            Verdict::Keep
        );
        // Token mode, no id: only the registration timeout removes it.
        assert_eq!(
            verdict(&record(ago(60), None), None, false, now, now, &LIMITS),
            Verdict::Keep
        );
        assert_eq!(
            verdict(&record(ago(601), None), None, false, now, now, &LIMITS),
            Verdict::Remove(RemovalReason::RegistrationTimeout, None)
        );
    }

    #[test]
    fn a_runner_that_never_came_online_goes_after_the_timeout_but_not_before() {
        let now = now();
        let offline = registration("offline", false);
        let early = record(ago(599), Some(7));
        assert_eq!(
            verdict(&early, Some(&offline), false, now, now, &LIMITS),
            Verdict::Keep
        );
        let late = record(ago(600), Some(7));
        assert_eq!(
            verdict(&late, Some(&offline), false, now, now, &LIMITS),
            Verdict::Remove(RemovalReason::RegistrationTimeout, Some(7))
        );
        // It was online once (now between polls, or finishing): kept.
        assert_eq!(
            verdict(&late, Some(&offline), true, now, now, &LIMITS),
            Verdict::Keep
        );
    }

    #[test]
    fn a_busy_runner_is_never_removed_for_its_age() {
        let now = now();
        let ancient = record(ago(100_000), Some(7));
        assert_eq!(
            verdict(
                &ancient,
                Some(&registration("online", true)),
                true,
                now,
                now,
                &LIMITS
            ),
            Verdict::Keep
        );
        assert_eq!(
            verdict(
                &ancient,
                Some(&registration("online", false)),
                true,
                now,
                now,
                &LIMITS
            ),
            Verdict::Remove(RemovalReason::MaxLifetime, Some(7))
        );
    }

    #[test]
    fn a_clock_gone_backwards_reads_as_no_age() {
        let now = now();
        let future = record(now + chrono::Duration::hours(1), Some(7));
        assert_eq!(
            verdict(
                &future,
                Some(&registration("offline", false)),
                false,
                now,
                now,
                &LIMITS
            ),
            Verdict::Keep
        );
    }

    /// A whole pass on the in-memory engine and GitHub: what it removes,
    /// and in which order of GitHub then Docker, with no Docker at all.
    mod pass {
        use super::*;
        use crate::testing::{self, container, registration};

        #[tokio::test]
        async fn a_pass_retires_the_exited_removes_the_gone_and_deletes_orphans() {
            let (fleet, fakes) = testing::fleet();
            let hour_ago = Utc::now() - chrono::Duration::hours(1);
            // Exited after its job: deregistered, then removed.
            fakes.add_container(container("gha-runner-done", 1, hour_ago, Some(0)));
            fakes.add_registration(registration(1, "gha-runner-done", "offline", false));
            // Registered once, gone from GitHub (confirmed by a direct read).
            fakes.add_container(container("gha-runner-gone", 2, hour_ago, None));
            // Online and idle: kept.
            fakes.add_container(container("gha-runner-fine", 3, hour_ago, None));
            fakes.add_registration(registration(3, "gha-runner-fine", "online", false));
            // Ours by its prefix, offline, with no container: an orphan.
            fakes.add_registration(registration(4, "gha-runner-orphan", "offline", false));
            // Someone else's runner in the same repository: not ours to touch.
            fakes.add_registration(registration(5, "laptop", "offline", false));

            let report = Reconciler::new(fleet.clone()).pass().await;

            assert!(report.warnings.is_empty(), "{:?}", report.warnings);
            let mut removed: Vec<(String, RemovalReason)> = report
                .removed
                .iter()
                .map(|r| (r.id.clone(), r.reason))
                .collect();
            removed.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(
                removed,
                vec![
                    ("gha-runner-done".into(), RemovalReason::Exited),
                    ("gha-runner-gone".into(), RemovalReason::RegistrationGone),
                    (
                        "gha-runner-orphan".into(),
                        RemovalReason::OrphanRegistration
                    ),
                ]
            );
            assert_eq!(fakes.container_names(), vec!["gha-runner-fine".to_owned()]);
            assert_eq!(fakes.registration_ids(), vec![3, 5]);
            // The view agrees: one live runner, idle; the others in history.
            let live = fleet.registry.live();
            assert_eq!(live.len(), 1);
            assert_eq!(live[0].state(), api_types::RunnerState::Idle);
        }

        #[tokio::test]
        async fn engines_without_runners_and_runners_without_engines_go() {
            let (fleet, fakes) = testing::fleet();
            let hour_ago = Utc::now() - chrono::Duration::hours(1);
            let with_engine = |name: &str, id: i64| {
                let mut c = container(name, id, hour_ago, None);
                c.record.docker = true;
                c
            };
            // Its engine runs: kept, with it.
            fakes.add_container(with_engine("gha-runner-whole", 1));
            fakes.add_registration(registration(1, "gha-runner-whole", "online", false));
            fakes.add_sidecar("gha-runner-whole", true);
            // Its engine stopped: the runner goes, then what is left of the engine.
            fakes.add_container(with_engine("gha-runner-lost", 2));
            fakes.add_registration(registration(2, "gha-runner-lost", "online", false));
            fakes.add_sidecar("gha-runner-lost", false);
            // No engine left at all: the runner goes too.
            fakes.add_container(with_engine("gha-runner-bare", 3));
            fakes.add_registration(registration(3, "gha-runner-bare", "online", false));
            // An engine whose runner is gone (a crash between the two creates).
            fakes.add_sidecar("gha-runner-crashed", true);
            // An engine whose runner's create is still in flight: kept.
            let _in_flight = fleet.registry.begin_create("gha-runner-coming");
            fakes.add_sidecar("gha-runner-coming", true);

            let report = Reconciler::new(fleet.clone()).pass().await;

            assert!(report.warnings.is_empty(), "{:?}", report.warnings);
            assert_eq!(fakes.container_names(), vec!["gha-runner-whole".to_owned()]);
            let engines: Vec<String> = fakes.sidecars.lock().unwrap().keys().cloned().collect();
            assert_eq!(engines, ["gha-runner-coming", "gha-runner-whole"]);
            assert_eq!(fakes.registration_ids(), vec![1]);
            let lost = fleet.registry.get("gha-runner-lost").expect("in history");
            assert!(
                lost.reason
                    .as_deref()
                    .unwrap_or("")
                    .contains("Docker engine stopped"),
                "{lost:?}"
            );
        }

        #[tokio::test]
        async fn a_container_created_and_never_started_is_started() {
            let (fleet, fakes) = testing::fleet();
            // A crash between `docker create` and `docker start`.
            let mut cut_short = container("gha-runner-cut", 1, Utc::now(), None);
            cut_short.running = false;
            cut_short.created_only = true;
            fakes.add_container(cut_short);
            fakes.add_registration(registration(1, "gha-runner-cut", "offline", false));

            let report = Reconciler::new(fleet).pass().await;

            assert!(report.removed.is_empty(), "{:?}", report.removed);
            let started = fakes.containers.lock().unwrap()["gha-runner-cut"].clone();
            assert!(started.running && !started.created_only, "{started:?}");
        }

        #[tokio::test]
        async fn an_unreadable_listing_removes_nothing_that_depends_on_it() {
            let (fleet, fakes) = testing::fleet();
            let hour_ago = Utc::now() - chrono::Duration::hours(1);
            fakes.add_container(container("gha-runner-gone", 2, hour_ago, None));
            fakes.add_registration(registration(4, "gha-runner-orphan", "offline", false));
            *fakes.listings_fail.lock().unwrap() = true;

            let report = Reconciler::new(fleet).pass().await;

            assert!(report.removed.is_empty(), "{:?}", report.removed);
            assert!(
                report
                    .warnings
                    .iter()
                    .any(|w| w.contains("could not list GitHub runners")),
                "{:?}",
                report.warnings
            );
            assert_eq!(fakes.container_names(), vec!["gha-runner-gone".to_owned()]);
            assert_eq!(fakes.registration_ids(), vec![4]);
        }

        #[tokio::test]
        async fn a_runner_that_never_registers_in_time_is_removed_with_its_registration() {
            let (fleet, fakes) = testing::fleet();
            let timeout = fleet.config.runner_registration_timeout;
            let created = |ago: Duration| Utc::now() - chrono::Duration::from_std(ago).unwrap();
            // Offline since its create, past the timeout: removed; just
            // under it: kept.
            fakes.add_container(container(
                "gha-runner-late",
                1,
                created(timeout + Duration::from_secs(1)),
                None,
            ));
            fakes.add_registration(registration(1, "gha-runner-late", "offline", false));
            fakes.add_container(container(
                "gha-runner-early",
                2,
                created(timeout.saturating_sub(Duration::from_secs(30))),
                None,
            ));
            fakes.add_registration(registration(2, "gha-runner-early", "offline", false));

            let report = Reconciler::new(fleet).pass().await;

            let removed: Vec<_> = report
                .removed
                .iter()
                .map(|r| (r.id.as_str(), r.reason))
                .collect();
            assert_eq!(
                removed,
                vec![("gha-runner-late", RemovalReason::RegistrationTimeout)]
            );
            assert_eq!(fakes.container_names(), vec!["gha-runner-early".to_owned()]);
            assert_eq!(fakes.registration_ids(), vec![2]);
        }
    }
}
