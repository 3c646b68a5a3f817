//! Where a runner is destroyed. The order is always: deregister from GitHub
//! (204 or 404), then remove the container. When GitHub says the runner is
//! busy, or cannot be reached, the container stays and is retried later, so
//! no job is ever cut short and no registration is ever left behind.

use std::time::Duration;

use api_types::{RemovalReason, RemovedRunner, RunnerJob};
use tracing::{info, warn};

use super::registry::ContainerPhase;
use super::{Fleet, FleetError};
use crate::engine::RunnerLabels;
use crate::github::client::DeleteOutcome;
use crate::metrics::FailureReason;
use crate::scope::Scope;

/// How long a container gets to exit on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Fleet {
    /// `DELETE /runners/{id}`: deregisters and removes one runner. A busy
    /// runner is refused unless `force`, which stops its container first
    /// (its job fails) and leaves the registration to the reconciler if
    /// GitHub still calls it busy. Run it as an operation of its own
    /// ([`Fleet::start_delete`]) wherever the caller may be dropped midway.
    ///
    /// # Errors
    /// [`FleetError::NotFound`], [`FleetError::Busy`], or what GitHub or
    /// Docker answered; on error the container is kept.
    pub async fn delete_runner(&self, name: &str, force: bool) -> Result<(), FleetError> {
        let view = match self.registry.get_live(name) {
            Some(v) => v,
            None => {
                // Maybe a container the registry has not seen yet.
                match self.engine.inspect_runner(name).await? {
                    Some(c) => {
                        self.registry.adopt(&c);
                        super::RunnerView::from_container(&c)
                    }
                    None => return Err(FleetError::NotFound(name.to_owned())),
                }
            }
        };
        let record = &view.record;
        let github_id = match view.github_runner_id {
            Some(id) => Some(id),
            None => self.find_registration(&record.scope, name).await?,
        };
        // `removing` until this ends, whether it succeeds or not.
        let _removing = self.registry.begin_removal(name);
        if force {
            self.force_remove(record, github_id).await?;
        } else {
            self.deregister_then_remove(record, github_id).await?;
        }
        self.registry.forget(name);
        info!(runner = name, force, "runner deleted");
        Ok(())
    }

    /// Removes an autoscaled runner that stayed idle with no job for it:
    /// deregisters, removes the container, and moves it to history with
    /// `note` as its reason.
    ///
    /// # Errors
    /// As [`Self::deregister_then_remove`]; the runner is then kept, as it was.
    pub async fn retire_idle(
        &self,
        record: &RunnerLabels,
        github_id: Option<i64>,
        note: String,
    ) -> Result<(), FleetError> {
        let name = &record.name;
        let _removing = self.registry.begin_removal(name);
        self.deregister_then_remove(record, github_id).await?;
        self.registry.update(name, |v| v.reason = Some(note));
        self.registry.retire(name);
        info!(runner = %name, "idle runner removed");
        Ok(())
    }

    /// Deregisters (204/404), then removes the container, then the runner's
    /// Docker engine when it has one. Returns whether a registration was
    /// deleted.
    ///
    /// # Errors
    /// [`FleetError::Busy`] when GitHub reports a job running; GitHub or
    /// Docker errors. The container is kept on every error.
    pub async fn deregister_then_remove(
        &self,
        record: &RunnerLabels,
        github_id: Option<i64>,
    ) -> Result<bool, FleetError> {
        let name = &record.name;
        let deleted = match github_id {
            Some(id) => match self.github.delete_runner(&record.scope, id).await? {
                DeleteOutcome::Deleted => true,
                DeleteOutcome::AlreadyGone => false,
                DeleteOutcome::Busy => return Err(FleetError::Busy(name.to_owned())),
            },
            None => false,
        };
        // Give the runner process a moment to exit on its own, then remove.
        self.engine.stop(name, STOP_GRACE).await?;
        self.remove_containers(name, record.docker).await?;
        Ok(deleted)
    }

    /// Removes runner `name`'s container, then its Docker engine (container
    /// and volumes) when `docker`: the engine outlives its runner, never the
    /// other way round.
    ///
    /// # Errors
    /// [`crate::engine::DockerError`]; what is left is the reconciler's.
    pub(crate) async fn remove_containers(
        &self,
        name: &str,
        docker: bool,
    ) -> Result<(), crate::engine::DockerError> {
        self.engine.remove(name).await?;
        if docker {
            self.engine.remove_sidecar(name).await?;
        }
        Ok(())
    }

    /// Stops the container first, then deregisters; a registration GitHub
    /// still calls busy is left for the orphan sweep.
    async fn force_remove(
        &self,
        record: &RunnerLabels,
        github_id: Option<i64>,
    ) -> Result<bool, FleetError> {
        let (name, scope) = (&record.name, &record.scope);
        self.remove_containers(name, record.docker).await?;
        let Some(id) = github_id else {
            return Ok(false);
        };
        match self.github.delete_runner(scope, id).await {
            Ok(DeleteOutcome::Deleted) => Ok(true),
            Ok(DeleteOutcome::AlreadyGone) => Ok(false),
            Ok(DeleteOutcome::Busy) => {
                warn!(
                    runner = name,
                    "GitHub still reports the runner busy; the reconciler deletes its registration once it is offline"
                );
                Ok(false)
            }
            Err(e) => {
                warn!(runner = name, error = %e, "could not delete the registration; the reconciler will retry");
                Ok(false)
            }
        }
    }

    /// Finds a registration's id by name (token mode learns it only from
    /// GitHub).
    async fn find_registration(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<i64>, FleetError> {
        Ok(self
            .github
            .list_runners(scope)
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .map(|r| r.id))
    }

    /// Handles a container that exited: records its exit code, makes sure
    /// its registration is gone, then removes it and moves it to history.
    /// Returns what was removed, or `None` when there was nothing to do.
    ///
    /// # Errors
    /// GitHub or Docker errors; the container is then kept and the next
    /// reconcile pass retries.
    pub async fn retire_exited(&self, name: &str) -> Result<Option<RemovedRunner>, FleetError> {
        if self.registry.get_live(name).is_some_and(|v| v.removing) {
            // A deletion in progress owns this runner.
            return Ok(None);
        }
        let Some(container) = self.engine.inspect_runner(name).await? else {
            // Already removed (by us, or by hand): just move it to history.
            self.registry.retire(name);
            return Ok(None);
        };
        if !container.exited() {
            return Ok(None);
        }
        let code = container.exit_code;
        if self.registry.get_live(name).is_none() {
            // Only this one: a listing of one container is no proof that
            // the others are gone (taking it as one freed their slots).
            self.registry.adopt(&container);
        }
        let mut trigger_pull = false;
        self.registry.update(name, |view| {
            view.phase = ContainerPhase::Exited(code);
            view.online = false;
            view.busy = false;
            if code == Some(7) {
                view.reason =
                    Some("runner version deprecated (exit code 7); pulling a newer image".into());
                trigger_pull = true;
            } else if code != Some(0) && view.reason.is_none() {
                view.reason = Some(format!(
                    "container exited with code {}",
                    code.map_or("unknown".into(), |c| c.to_string())
                ));
            }
            if let Some(job) = &mut view.job
                && job.status != "completed"
            {
                *job = RunnerJob {
                    status: "completed".into(),
                    ..job.clone()
                };
            }
        });
        if trigger_pull {
            self.image.pull_now.notify_one();
        }
        let github_id = match container.record.github_runner_id {
            Some(id) => Some(id),
            None => {
                self.find_registration(&container.record.scope, name)
                    .await?
            }
        };
        let deleted = self
            .deregister_then_remove(&container.record, github_id)
            .await?;
        if self.registry.move_to_history(name).is_some()
            && let Some(failure) = FailureReason::of_exit(code)
        {
            self.metrics.runner_failed(&container.record.pool, failure);
        }
        info!(runner = name, exit_code = ?code, "runner finished and removed");
        Ok(Some(RemovedRunner {
            id: name.to_owned(),
            reason: RemovalReason::Exited,
            container_removed: true,
            registration_deleted: deleted,
        }))
    }

    /// Runner `name`'s Docker engine stopped (or is gone). A runner that is
    /// still alive has lost its Docker, so it is removed at once, and when
    /// it was busy its failure is counted (`docker_engine`); an exited
    /// runner is retired as usual. A create in flight, a removal in
    /// progress or a runner already gone own what is left: nothing is done
    /// here then.
    ///
    /// # Errors
    /// GitHub or Docker errors; the next reconcile pass looks again.
    pub async fn engine_stopped(
        &self,
        name: &str,
        exit_code: Option<i64>,
    ) -> Result<(), FleetError> {
        if self.registry.get_live(name).is_some_and(|v| v.removing)
            || self.registry.in_flight().contains(name)
        {
            return Ok(());
        }
        let Some(container) = self.engine.inspect_runner(name).await? else {
            // The runner is gone: whoever removed it removes its engine
            // next (most often this exit is that removal's own); what a
            // failure there leaves is the reconcile pass's.
            return Ok(());
        };
        if container.exited() {
            // Most likely it exited because its engine (its network) went:
            // that is the reason to show.
            self.registry.update(name, |v| {
                v.reason.get_or_insert_with(|| {
                    format!(
                        "its Docker engine stopped (exit code {})",
                        exit_code.map_or("unknown".into(), |c| c.to_string())
                    )
                });
            });
            self.retire_exited(name).await?;
            return Ok(());
        }
        if self.registry.get_live(name).is_none() {
            self.registry.adopt(&container);
        }
        let _removing = self.registry.begin_removal(name);
        let busy = self
            .registry
            .get_live(name)
            .is_some_and(|v| v.busy || v.job.as_ref().is_some_and(|j| j.status == "in_progress"));
        let note = format!(
            "its Docker engine stopped (exit code {}){}",
            exit_code.map_or("unknown".into(), |c| c.to_string()),
            if busy { "; its job failed" } else { "" }
        );
        warn!(runner = name, busy, "{note}; removing the runner");
        let github_id = match container.record.github_runner_id {
            Some(id) => Some(id),
            None => {
                self.find_registration(&container.record.scope, name)
                    .await?
            }
        };
        self.force_remove(&container.record, github_id).await?;
        self.registry.update(name, |v| {
            v.reason = Some(note);
            v.phase = ContainerPhase::Exited(None);
        });
        if self.registry.move_to_history(name).is_some() && busy {
            self.metrics
                .runner_failed(&container.record.pool, FailureReason::DockerEngine);
        }
        Ok(())
    }
}
