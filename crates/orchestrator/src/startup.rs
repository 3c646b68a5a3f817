//! [`Application`]: builds the service from a [`Config`], binds the
//! listener (port 0 works), runs the background loops, and shuts down
//! gracefully when the given signal fires.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::join_all;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::{self, AppState};
use crate::autoscaler::{self, Autoscaler};
use crate::config::Config;
use crate::docker::DockerEngine;
use crate::events;
use crate::github::GitHubClient;
use crate::github::client::load_ca_file;
use crate::reconciler::Reconciler;
use crate::runners::{Fleet, FleetError};

/// How long shutdown may take in all.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(25);

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
        let token = config.resolve_github_token().map_err(anyhow::Error::msg)?;
        let extra_roots = match &config.github_ca_file {
            Some(path) => load_ca_file(path).map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        };
        let github = GitHubClient::new(
            &config.github_api_url,
            &token,
            Duration::from_secs(config.github_timeout_seconds.max(1)),
            &extra_roots,
            usize::from(config.github_max_concurrent_requests),
        )?;
        let docker = DockerEngine::connect(&config.instance_id, config.docker_timeout())
            .context("DOCKER_HOST")?;
        let fleet = Arc::new(Fleet::new(config.clone(), github, docker));
        check_runner_network(&fleet).await?;
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
    /// the requests in flight finish, removes idle runners (busy ones are
    /// left to finish; the next start adopts them), and returns.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let fleet = self.fleet.clone();
        let background = vec![
            tokio::spawn({
                let reconciler = self.reconciler.clone();
                let stop = stop.clone();
                async move { reconciler.run(stop).await }
            }),
            tokio::spawn(events::watch_exits(fleet.clone(), stop.clone())),
            tokio::spawn({
                let fleet = fleet.clone();
                let stop = stop.clone();
                async move { fleet.run_image_puller(stop).await }
            }),
            tokio::spawn({
                let autoscaler = self.autoscaler.clone();
                let stop = stop.clone();
                async move { autoscaler.run(stop).await }
            }),
            tokio::spawn(autoscaler::poller::run(
                self.autoscaler.clone(),
                stop.clone(),
            )),
        ];
        let state = AppState {
            fleet: fleet.clone(),
            reconciler: self.reconciler.clone(),
            autoscaler: self.autoscaler.clone(),
        };
        info!(port = self.port(), instance = %fleet.config.instance_id, "gha-orchestrator listening");
        let shutdown_fleet = fleet.clone();
        service_kit::serve(
            self.listener,
            api::app(state),
            async move {
                shutdown.await;
                info!("shutting down: no new runners; finishing requests in flight");
                shutdown_fleet.begin_shutdown();
            },
            service_kit::HEADER_READ_TIMEOUT,
        )
        .await?;
        stop.cancel();
        if tokio::time::timeout(SHUTDOWN_LIMIT, remove_idle_runners(&fleet))
            .await
            .is_err()
        {
            warn!("shutdown: idle runners not all removed in time; the next start cleans them");
        }
        let _ = tokio::time::timeout(Duration::from_secs(3), join_all(background)).await;
        info!("gha-orchestrator stopped");
        Ok(())
    }
}

/// Makes sure the runner network exists and is not one the orchestrator
/// itself is attached to (runners must not reach it).
async fn check_runner_network(fleet: &Fleet) -> anyhow::Result<()> {
    let network = &fleet.config.runner_network;
    if let Ok(hostname) = std::env::var("HOSTNAME")
        && let Ok(own) = fleet.docker.container_networks(&hostname).await
        && own.iter().any(|n| n == network)
    {
        anyhow::bail!(
            "RUNNER_NETWORK={network} is a network the orchestrator's own container is attached to; runners must not be able to reach the orchestrator: use a separate network"
        );
    }
    if let Err(e) = fleet.docker.ensure_network(network).await {
        warn!(network = %network, error = %e, "could not prepare the runner network yet; creates will retry");
    }
    Ok(())
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
        match fleet
            .deregister_then_remove(name, &view.record.scope, view.github_runner_id)
            .await
        {
            Ok(_) => fleet.registry.retire(name),
            Err(FleetError::Busy(_)) => info!(runner = %name, "left running: it took a job"),
            Err(e) => warn!(runner = %name, error = %e, "could not remove at shutdown"),
        }
    }))
    .await;
}
