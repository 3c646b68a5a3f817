//! [`Application`]: builds the service from a [`Config`], binds the
//! listener (port 0 works), runs the background loops, and shuts down
//! gracefully when the given signal fires.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::join_all;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::{self, AppState};
use crate::autoscaler::{self, Autoscaler};
use crate::config::Config;
use crate::engine::{Claim, DockerEngine, Owner, lease};
use crate::events;
use crate::github::auth::AppCredentials;
use crate::github::client::load_ca_file;
use crate::github::{GitHubClient, GitHubError};
use crate::pools::PoolSet;
use crate::reconciler::Reconciler;
use crate::runners::{Fleet, FleetError};
use crate::supervisor::{Heartbeats, Supervisor};

/// The least time operations in flight get at shutdown, even when the
/// requests took all of the drain.
const OPERATIONS_FLOOR: Duration = Duration::from_secs(1);
/// How long the background loops get to stop at shutdown.
const LOOPS_STOP_LIMIT: Duration = Duration::from_secs(2);
/// How long removing idle runners may take at shutdown: with the default
/// drain of 20 s, shutdown ends within 28 s, inside Compose's 30 s grace.
const IDLE_REMOVAL_LIMIT: Duration = Duration::from_secs(5);

/// A built, bound, not yet running orchestrator.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    fleet: Arc<Fleet>,
    reconciler: Arc<Reconciler>,
    autoscaler: Arc<Autoscaler>,
}

impl Application {
    /// Checks the configuration, connects to Docker and GitHub (lazily),
    /// prepares the runner network and binds the listener.
    ///
    /// # Errors
    /// An invalid configuration (naming the variable), a runner network that
    /// is the orchestrator's own, or a port that cannot be bound.
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        config.load_secret_files().map_err(anyhow::Error::msg)?;
        config.validate().map_err(anyhow::Error::msg)?;
        let config = Arc::new(config);
        let auth = config.resolve_github_auth().map_err(anyhow::Error::msg)?;
        let extra_roots = match &config.github_ca_file {
            Some(path) => load_ca_file(path).map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        };
        let github = GitHubClient::new(
            &config.github_api_url,
            auth,
            config.github_timeout,
            &extra_roots,
            usize::from(config.github_max_concurrent_requests),
            config.github_retry_deadline,
        )?;
        if let Some(app) = github.app() {
            check_github_app(app, config.default_scope().as_ref()).await?;
        }
        let owner = Owner::new(
            &config.instance_id,
            &config.github_api_url,
            config.default_scope().as_ref(),
        );
        let engine = DockerEngine::connect(owner, config.docker_timeout).context("DOCKER_HOST")?;
        let pools = PoolSet::load(&config).map_err(anyhow::Error::msg)?;
        let fleet = Arc::new(Fleet::new(
            config.clone(),
            pools,
            Box::new(github),
            Box::new(engine),
        ));
        // Before the lease: a start stopped here leaves nothing behind.
        check_engine_images(&fleet).await?;
        claim_instance_id(&fleet).await?;
        let pools = fleet.pools.current();
        fleet
            .check_networks(&pools)
            .await
            .map_err(anyhow::Error::msg)?;
        let address = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(address).await.with_context(|| {
            format!("cannot listen on {address} (ORCHESTRATOR_HOST/ORCHESTRATOR_PORT)")
        })?;
        let reconciler = Arc::new(Reconciler::new(fleet.clone()));
        let autoscaler = Arc::new(Autoscaler::new(fleet.clone()));
        Ok(Self {
            listener,
            fleet,
            reconciler,
            autoscaler,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` completes, then stops taking creates, lets
    /// the requests in flight finish for at most `SHUTDOWN_DRAIN_SECONDS`,
    /// stops the background loops, removes idle runners (busy ones are left
    /// to finish; the next start adopts them), and returns: all within
    /// Compose's 30 s stop grace period with the default drain of 20 s.
    ///
    /// # Errors
    /// When the server fails, or a background loop dies (panics or ends on
    /// its own): the process must then exit non-zero so that Docker's
    /// restart policy brings it back.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let fleet = self.fleet.clone();
        let config = fleet.config.clone();
        let heartbeats = Heartbeats::default();
        let mut loops = Supervisor::new(stop.clone());
        loops.spawn("reconcile", {
            let reconciler = self.reconciler.clone();
            let beat = heartbeats.register("reconcile", Some(config.reconcile_interval));
            let stop = stop.clone();
            async move { reconciler.run(stop, beat).await }
        });
        loops.spawn(
            "docker_events",
            events::watch_exits(
                fleet.clone(),
                stop.clone(),
                heartbeats.register("docker_events", None),
            ),
        );
        if let Some(interval) = config.image_pull_interval() {
            loops.spawn("image_pull", {
                let fleet = fleet.clone();
                let beat = heartbeats.register("image_pull", Some(interval));
                let stop = stop.clone();
                async move { fleet.run_image_puller(stop, beat).await }
            });
        }
        if fleet.pools.file().is_some() {
            loops.spawn("pools_reload", {
                let fleet = fleet.clone();
                let beat = heartbeats.register("pools_reload", None);
                let stop = stop.clone();
                async move { fleet.reload_on_sighup(stop, beat).await }
            });
        }
        if self.autoscaler.enabled() {
            loops.spawn("scale", {
                let autoscaler = self.autoscaler.clone();
                let beat = heartbeats.register("scale", Some(autoscaler::TICK));
                let stop = stop.clone();
                async move { autoscaler.run(stop, beat).await }
            });
        }
        if autoscaler::poller::enabled(&config, &fleet.pools.current()) {
            loops.spawn(
                "poll",
                autoscaler::poller::run(
                    self.autoscaler.clone(),
                    stop.clone(),
                    heartbeats.register("poll", config.poll_interval()),
                ),
            );
        }
        let state = AppState {
            fleet: fleet.clone(),
            reconciler: self.reconciler.clone(),
            autoscaler: self.autoscaler.clone(),
            loops: heartbeats,
        };
        info!(port = self.port(), instance = %config.instance_id, "gha-orchestrator listening");

        let drain = config.shutdown_drain;
        let draining = Arc::new(Notify::new());
        let drain_started = Arc::new(OnceLock::new());
        let server = service_kit::serve(
            self.listener,
            api::app(state),
            {
                let fleet = fleet.clone();
                let draining = draining.clone();
                let drain_started = drain_started.clone();
                async move {
                    shutdown.await;
                    let _ = drain_started.set(Instant::now());
                    info!(
                        drain_seconds = drain.as_secs(),
                        "shutting down: no new runners; finishing requests in flight"
                    );
                    fleet.begin_shutdown();
                    draining.notify_one();
                }
            },
            service_kit::Limits {
                header_read_timeout: service_kit::HEADER_READ_TIMEOUT,
                max_connections: config.max_connections,
            },
        );
        let deadline = async {
            draining.notified().await;
            tokio::time::sleep(drain).await;
        };
        let failure = tokio::select! {
            served = server => {
                served?;
                None
            }
            () = deadline => {
                warn!(drain_seconds = drain.as_secs(), "shutdown: requests still in flight after SHUTDOWN_DRAIN_SECONDS are cut off");
                None
            }
            failure = loops.first_failure() => Some(failure),
        };
        if let Some(failure) = &failure {
            error!(loop_name = failure.name, reason = %failure.how, "a background loop died; exiting so that the container is restarted");
            fleet.begin_shutdown();
        }
        // Creates and deletes run as tasks of their own: a cut request's
        // work goes on, within what is left of the drain.
        let left = drain_started
            .get()
            .map_or(drain, |started| drain.saturating_sub(started.elapsed()))
            .max(OPERATIONS_FLOOR);
        if !fleet.finish_operations(left).await {
            warn!(
                "shutdown: creates or deletes still running after SHUTDOWN_DRAIN_SECONDS; the next start's reconcile pass cleans up after them"
            );
        }
        let still_running = loops.stop(LOOPS_STOP_LIMIT).await;
        if !still_running.is_empty() {
            warn!(loops = ?still_running, "shutdown: background loops did not stop in time; aborted");
        }
        if failure.is_none()
            && tokio::time::timeout(IDLE_REMOVAL_LIMIT, remove_idle_runners(&fleet))
                .await
                .is_err()
        {
            warn!("shutdown: idle runners not all removed in time; the next start cleans them");
        }
        // A restart after a failure takes the lease over anyway (its holder
        // is gone); giving it back lets another orchestrator use the id.
        match tokio::time::timeout(LOOPS_STOP_LIMIT, fleet.engine.release_lease()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "shutdown: could not give ORCHESTRATOR_ID's lease back; the next start takes it over")
            }
            Err(_) => warn!(
                "shutdown: giving ORCHESTRATOR_ID's lease back timed out; the next start takes it over"
            ),
        }
        match failure {
            Some(failure) => Err(failure.into()),
            None => {
                info!("gha-orchestrator stopped");
                Ok(())
            }
        }
    }
}

/// Makes sure the image of every pool's runner engine (`docker =
/// "sidecar"`) is present, pulling it when it is not; one that is neither
/// stops the start, naming it. Docker out of reach does not (as in
/// [`claim_instance_id`]).
async fn check_engine_images(fleet: &Fleet) -> anyhow::Result<()> {
    for image in fleet.pools.current().engine_images() {
        match fleet.ensure_image(&image, "Docker engine image").await {
            Ok(()) => info!(image = %image, "runners' Docker engine image is present"),
            Err(FleetError::ImageUnavailable(_)) => anyhow::bail!(
                "the Docker engine image {image} of a pool with docker = \"sidecar\" is not present and could not be pulled: load it into the host's engine (docker load) or give a registry it can be pulled from (RUNNER_DOCKER_IMAGE / docker_image)"
            ),
            Err(e) => {
                warn!(image = %image, error = %e, "could not check the runners' Docker engine image; starting without the check");
            }
        }
    }
    Ok(())
}

/// Claims `ORCHESTRATOR_ID` on the engine (one orchestrator per id), and
/// names the containers with our id that another deployment owns.
///
/// When Docker cannot be reached yet, the start goes on (and `/health`
/// says why) without the check: refusing to start over a Docker hiccup
/// would make the orchestrator less available than the engine.
async fn claim_instance_id(fleet: &Fleet) -> anyhow::Result<()> {
    let instance = &fleet.config.instance_id;
    match fleet.engine.claim_lease().await {
        Ok(Claim::Take) => {}
        Ok(Claim::Refuse(holder)) => anyhow::bail!(lease::refusal(instance, &holder)),
        Err(e) => {
            warn!(error = %e, "could not claim ORCHESTRATOR_ID on the Docker engine; starting without the check");
            return Ok(());
        }
    }
    match fleet.engine.foreign_runners().await {
        Ok(foreign) if !foreign.is_empty() => warn!(
            containers = ?foreign,
            instance = %instance,
            "containers with this ORCHESTRATOR_ID belong to another GitHub or another configured scope (another deployment, or this one before GITHUB_API_URL, GITHUB_REPOSITORY or GITHUB_ORG changed): they are left alone; remove them by hand once they are not needed"
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "could not look for other deployments' containers"),
    }
    Ok(())
}

/// Checks the GitHub App before serving. GitHub refusing the App (a key
/// that is not the App's, an unknown App id) or an App not installed on the
/// default scope's owner stops the start with what GitHub said; GitHub out
/// of reach does not (as with Docker, `/health` says why meanwhile).
async fn check_github_app(
    app: &AppCredentials,
    default_scope: Option<&crate::scope::Scope>,
) -> anyhow::Result<()> {
    match app.check(default_scope).await {
        Ok(()) => {
            info!("GitHub accepts the GitHub App");
            Ok(())
        }
        Err(e @ GitHubError::AppNotInstalled(_)) => anyhow::bail!(
            "{e} (GITHUB_REPOSITORY / GITHUB_ORG): install the App on that account, with access to the repository"
        ),
        Err(e @ (GitHubError::AppRejected(_) | GitHubError::Forbidden(_))) => {
            anyhow::bail!("{e}")
        }
        Err(e) => {
            warn!(error = %e, "could not check the GitHub App with GitHub yet; starting without the check");
            Ok(())
        }
    }
}

/// Deregisters and removes every runner that is not busy.
async fn remove_idle_runners(fleet: &Fleet) {
    let idle: Vec<_> = fleet
        .registry
        .live()
        .into_iter()
        .filter(|v| !v.busy && !v.removing)
        .collect();
    if idle.is_empty() {
        return;
    }
    info!(count = idle.len(), "shutdown: removing idle runners");
    join_all(idle.iter().map(|view| async move {
        let name = &view.record.name;
        // Shown as `removing` meanwhile; released however this ends.
        let _removing = fleet.registry.begin_removal(name);
        match fleet
            .deregister_then_remove(&view.record, view.github_runner_id)
            .await
        {
            Ok(_) => fleet.registry.retire(name),
            Err(FleetError::Busy(_)) => info!(runner = %name, "left running: it took a job"),
            Err(e) => warn!(runner = %name, error = %e, "could not remove at shutdown"),
        }
    }))
    .await;
}
