//! [`Fleet`]: the one shared handle on our runners and the systems they live
//! in, and [`FleetError`], every way a lifecycle operation can fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use super::image::ImageStatus;
use super::operations::Operations;
use super::registry::Registry;
use crate::config::Config;
use crate::engine::{ContainerEngine, DockerError};
use crate::github::{GitHub, GitHubError};
use crate::metrics::Metrics;
use crate::pools::PoolSet;

/// Everything the lifecycle operations need.
#[derive(Debug)]
pub struct Fleet {
    /// The configuration, read once at start.
    pub config: Arc<Config>,
    /// The kinds of runner, swapped whole on reload.
    pub pools: PoolSet,
    /// GitHub, with the configured token.
    pub github: Box<dyn GitHub>,
    /// Where runner containers run, scoped to what this orchestrator owns.
    pub engine: Box<dyn ContainerEngine>,
    /// What we know of our runners.
    pub registry: Registry,
    /// The runner image's freshness.
    pub image: ImageStatus,
    /// Creates, deletes and removals under way, each a task of its own.
    pub operations: Operations,
    /// Set on SIGTERM: creates are refused from then on.
    shutting_down: AtomicBool,
    /// Wakes the reconcile loop for an immediate pass.
    pub reconcile_now: Notify,
    /// What `/metrics` counts: jobs started, runners online or failed.
    pub metrics: Metrics,
}

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The request asks for something impossible.
    #[error("{0}")]
    Invalid(String),
    /// The requested image is not in `RUNNER_IMAGE_ALLOWLIST`.
    #[error("image {0:?} is not allowed (see RUNNER_IMAGE_ALLOWLIST)")]
    ImageNotAllowed(String),
    /// Not enough free slots under `MAX_RUNNERS`, or under the pool's `max`.
    #[error("{}", capacity_message(*free, *max, pool.as_deref()))]
    Capacity {
        /// Free slots.
        free: usize,
        /// The cap.
        max: usize,
        /// The pool whose `max` is reached, when it is a pool's cap (not
        /// `MAX_RUNNERS`).
        pool: Option<String>,
    },
    /// The service is shutting down.
    #[error("the orchestrator is shutting down and takes no new runners")]
    ShuttingDown,
    /// The runner image is neither present nor pullable.
    #[error("{0}")]
    ImageUnavailable(String),
    /// No such runner.
    #[error("runner {0} does not exist")]
    NotFound(String),
    /// GitHub reports the runner busy.
    #[error("runner {0} is running a job; use ?force=true to remove it anyway")]
    Busy(String),
    /// Docker failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// GitHub failed.
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    /// A batch failed and was rolled back; `cause` says what failed.
    #[error("{context}: {cause}")]
    Batch {
        /// Which runner of the batch failed and what was rolled back.
        context: String,
        /// The failure itself.
        #[source]
        cause: Box<FleetError>,
    },
}

/// What [`FleetError::Capacity`] says.
fn capacity_message(free: usize, max: usize, pool: Option<&str>) -> String {
    match pool {
        Some(pool) => {
            format!("only {free} of pool {pool:?}'s {max} runner slots are free (its max)")
        }
        None => format!("only {free} of {max} runner slots are free (MAX_RUNNERS={max})"),
    }
}

impl FleetError {
    /// The failure under any batch context.
    pub fn root(&self) -> &FleetError {
        match self {
            FleetError::Batch { cause, .. } => cause.root(),
            other => other,
        }
    }
}

impl Fleet {
    /// Assembles the fleet.
    pub fn new(
        config: Arc<Config>,
        pools: PoolSet,
        github: Box<dyn GitHub>,
        engine: Box<dyn ContainerEngine>,
    ) -> Self {
        let registry = Registry::new(config.max_runners as usize, config.runner_history);
        // `/health` follows the first pool's image (RUNNER_IMAGE without a pools file).
        let image = ImageStatus::new(&pools.current().first().image);
        Self {
            config,
            pools,
            github,
            engine,
            registry,
            image,
            operations: Operations::default(),
            shutting_down: AtomicBool::new(false),
            reconcile_now: Notify::new(),
            metrics: Metrics::new(),
        }
    }

    /// Refuses creates from now on.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether creates are refused.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
