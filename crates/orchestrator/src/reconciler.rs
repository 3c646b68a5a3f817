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

use api_types::{CleanupReport, RemovalReason, RemovedRunner};
use chrono::Utc;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::docker::RunnerContainer;
use crate::github::GitHubRunner;
use crate::github::client::DeleteOutcome;
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

        // 1. Which scopes to list: those of our containers, the default one.
        let first = match fleet.docker.list_runners().await {
            Ok(c) => c,
            Err(e) => {
                report.warnings.push(format!("{NO_CONTAINERS}: {e}"));
                return report;
            }
        };
        let mut scopes: BTreeSet<Scope> = first.iter().map(|c| c.record.scope.clone()).collect();
        scopes.extend(fleet.config.default_scope());
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
        let containers = match fleet.docker.list_runners().await {
            Ok(c) => c,
            Err(e) => {
                report.warnings.push(format!("{NO_CONTAINERS}: {e}"));
                return report;
            }
        };
        fleet.registry.sync_with_docker(&containers);
        for runners in listings.values() {
            fleet.registry.apply_github(runners);
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
                    .deregister_then_remove(name, &container.record.scope, github_id)
                    .await
                {
                    Ok(deleted) => {
                        fleet.registry.update(name, |v| {
                            v.reason = Some(removal_note(reason, config_seconds(fleet, reason)));
                            if reason == RemovalReason::RegistrationTimeout {
                                v.phase = ContainerPhase::Exited(None);
                            }
                        });
                        fleet.registry.retire(name);
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
        if !report.removed.is_empty() {
            debug!(report = ?report.by_reason, "reconcile pass done");
        }
        report
    }

    /// Whether a live container must go, and why. `None`: keep it.
    async fn judge(
        &self,
        container: &RunnerContainer,
        runners: &[GitHubRunner],
        listing_started: chrono::DateTime<Utc>,
    ) -> Option<(RemovalReason, Option<i64>)> {
        let config = &self.fleet.config;
        let record = &container.record;
        // A clock gone backwards makes a negative age: read it as none.
        let age = (Utc::now() - record.created_at)
            .to_std()
            .unwrap_or_default();
        let registration = runners.iter().find(|r| r.name == record.name);
        match registration {
            None => {
                // Registered after the listing began? Then the list cannot know it.
                if record.created_at + LISTING_MARGIN > listing_started {
                    return None;
                }
                // Absence from a list is not proof: ask for the runner itself.
                if let Some(id) = record.github_runner_id {
                    match self.fleet.github.get_runner(&record.scope, id).await {
                        Ok(None) => return Some((RemovalReason::RegistrationGone, None)),
                        Ok(Some(_)) => return None,
                        Err(e) => {
                            warn!(runner = %record.name, error = %e, "could not confirm a missing registration");
                            return None;
                        }
                    }
                }
                // Token mode: never registered yet; only the timeout applies.
                (age >= config.runner_registration_timeout)
                    .then_some((RemovalReason::RegistrationTimeout, None))
            }
            Some(gh) => {
                let was_online = self
                    .fleet
                    .registry
                    .get_live(&record.name)
                    .is_some_and(|v| v.was_online);
                if !gh.is_online()
                    && !gh.busy
                    && !was_online
                    && age >= config.runner_registration_timeout
                {
                    return Some((RemovalReason::RegistrationTimeout, Some(gh.id)));
                }
                if !gh.busy && age >= config.runner_max_lifetime {
                    return Some((RemovalReason::MaxLifetime, Some(gh.id)));
                }
                None
            }
        }
    }
}

/// The setting behind a time-based removal, in seconds.
fn config_seconds(fleet: &Fleet, reason: RemovalReason) -> u64 {
    match reason {
        RemovalReason::RegistrationTimeout => fleet.config.runner_registration_timeout.as_secs(),
        RemovalReason::MaxLifetime => fleet.config.runner_max_lifetime.as_secs(),
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
                "removed after its maximum lifetime of {seconds}s (RUNNER_MAX_LIFETIME_SECONDS)"
            )
        }
        RemovalReason::RegistrationGone => "its GitHub registration was gone".to_owned(),
        other => other.as_str().to_owned(),
    }
}
