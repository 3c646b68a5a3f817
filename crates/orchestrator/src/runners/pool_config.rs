//! The fleet's side of runner pools: checking a pool's network before its
//! runners join it, and reloading the pools file (SIGHUP,
//! `POST /pools/reload`) without a restart.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::Fleet;
use crate::pools::Pools;
use crate::supervisor::Beat;

impl Fleet {
    /// Makes sure each pool's network exists and is not one the
    /// orchestrator itself is attached to (runners must not reach it).
    ///
    /// # Errors
    /// A pool's network is one of the orchestrator's own.
    pub async fn check_networks(&self, pools: &Pools) -> Result<(), String> {
        let own = match std::env::var("HOSTNAME") {
            Ok(hostname) => self
                .engine
                .container_networks(&hostname)
                .await
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for pool in pools.iter() {
            if own.contains(&pool.network) {
                let setting = if self.pools.file().is_some() {
                    format!("pool {:?}: network", pool.name)
                } else {
                    "RUNNER_NETWORK".to_owned()
                };
                return Err(format!(
                    "{setting}={} is a network the orchestrator's own container is attached to; runners must not be able to reach the orchestrator: use a separate network",
                    pool.network
                ));
            }
        }
        for network in pools.networks() {
            if let Err(e) = self.engine.ensure_network(&network).await {
                warn!(network = %network, error = %e, "could not prepare a runner network yet; creates will retry");
            }
        }
        Ok(())
    }

    /// Reads the pools file again and puts its pools in force. A bad file
    /// keeps the pools in force, and says why in the log and in `/health`.
    /// A pool removed takes no new jobs; the scaler removes its idle
    /// runners and lets its busy ones finish.
    ///
    /// # Errors
    /// Why the file was refused.
    pub async fn reload_pools(&self) -> Result<Arc<Pools>, String> {
        let checked = match self.pools.read_file(&self.config) {
            Ok(pools) => self.check_networks(&pools).await.map(|()| pools),
            Err(e) => Err(e),
        };
        match checked {
            Ok(pools) => {
                let pools = self.pools.put(pools);
                let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
                info!(pools = ?names, "pools file reloaded");
                Ok(pools)
            }
            Err(e) => {
                warn!(error = %e, "pools file refused; the pools in force are kept");
                self.pools.refuse(&e);
                Err(e)
            }
        }
    }

    /// Reloads the pools file on each SIGHUP until `stop`; each reload,
    /// taken or refused, is a `beat`. Run only when there is a pools file.
    pub async fn reload_on_sighup(&self, stop: CancellationToken, beat: Beat) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(e) => {
                error!(error = %e, "cannot listen for SIGHUP; reload the pools file with POST /pools/reload");
                stop.cancelled().await;
                return;
            }
        };
        loop {
            tokio::select! {
                _ = hangups.recv() => {
                    info!("SIGHUP: reloading the pools file");
                    // Refused files are logged and kept for `/health` there.
                    let _ = self.reload_pools().await;
                    beat.pass();
                }
                _ = stop.cancelled() => return,
            }
        }
    }
}
