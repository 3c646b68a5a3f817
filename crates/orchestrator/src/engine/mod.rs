//! Where runner containers run: the [`ContainerEngine`] trait, what the
//! lifecycle asks of an engine, and its implementation on one Docker host,
//! [`DockerEngine`] (a Swarm would be a second one).
//!
//! - [`docker`]: bollard calls with timeouts, scoped to our containers.
//! - [`labels`]: the label keys, the runner record they hold, and [`Owner`],
//!   which containers are ours.
//! - [`lease`]: one orchestrator per id on an engine.
//! - [`container`]: a container's specification and Docker's view of one.
//! - [`sidecar`]: a runner's private Docker engine, created and removed with it.
//! - [`error`]: every way an engine call fails ([`DockerError`]).

use std::time::Duration;

use futures::stream::BoxStream;

pub mod container;
pub mod docker;
pub mod error;
pub mod labels;
pub mod lease;
pub mod sidecar;

pub use container::{ContainerExit, ContainerSpec, EngineVersion, RunnerContainer};
pub use docker::DockerEngine;
pub use error::DockerError;
pub use labels::{Owner, RunnerLabels};
pub use lease::Claim;
pub use sidecar::{SidecarLeftover, SidecarSpec};

/// What the runner lifecycle needs from wherever containers run. Every
/// call is scoped to the containers of one [`Owner`]: an implementation
/// never lists, inspects or reports another's.
#[async_trait::async_trait]
pub trait ContainerEngine: std::fmt::Debug + Send + Sync {
    /// Whose containers these are.
    fn owner(&self) -> &Owner;

    /// The engine's version, for `/health`.
    ///
    /// # Errors
    /// [`DockerError::Unavailable`] or [`DockerError::PermissionDenied`]
    /// when the engine cannot be reached.
    async fn version(&self) -> Result<EngineVersion, DockerError>;

    /// Creates the runner network unless it exists.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn ensure_network(&self, name: &str) -> Result<(), DockerError>;

    /// The networks of the container `id_or_name` (any container: used for
    /// the orchestrator's own).
    ///
    /// # Errors
    /// [`DockerError`]; `NotFound` when there is no such container.
    async fn container_networks(&self, id_or_name: &str) -> Result<Vec<String>, DockerError>;

    /// Creates a runner container (never privileged, no restart policy, no
    /// mounts but its own engine's), labelled as the owner's, and returns
    /// its id; does not start it. With [`ContainerSpec::sidecar`], the
    /// runner's Docker engine is created first and started, and answers
    /// before the runner's container is created ([`sidecar`]).
    ///
    /// # Errors
    /// [`DockerError`]; `Conflict` when the name is taken;
    /// [`DockerError::EngineFailed`] when the runner's engine did not start.
    /// What was made stays: the caller removes it ([`Self::remove`], then
    /// [`Self::remove_sidecar`]).
    async fn create(&self, spec: &ContainerSpec) -> Result<String, DockerError>;

    /// Removes runner `runner`'s Docker engine container and its volumes;
    /// gone already is fine. Called after the runner's container is removed.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn remove_sidecar(&self, runner: &str) -> Result<(), DockerError>;

    /// What exists of the owner's runner engines (containers or volumes),
    /// by runner: the reconciler removes those whose runner is gone.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn sidecars(&self) -> Result<Vec<SidecarLeftover>, DockerError>;

    /// Starts a created container.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn start(&self, id_or_name: &str) -> Result<(), DockerError>;

    /// Stops a container, giving it `grace` to exit; gone or stopped is fine.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn stop(&self, id_or_name: &str, grace: Duration) -> Result<(), DockerError>;

    /// Removes a container, killing it if it runs; gone already is fine.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn remove(&self, id_or_name: &str) -> Result<(), DockerError>;

    /// Every runner container of the owner, running or not.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn list_runners(&self) -> Result<Vec<RunnerContainer>, DockerError>;

    /// Containers with the owner's id that another deployment owns (another
    /// GitHub or another configured scope): left alone, named at start.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn foreign_runners(&self) -> Result<Vec<String>, DockerError>;

    /// One of the owner's runner containers by name; `None` when it does not
    /// exist or is not the owner's.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn inspect_runner(&self, name: &str) -> Result<Option<RunnerContainer>, DockerError>;

    /// The owner's containers' exits, as they happen (a runner's engine's
    /// exit names its runner, with [`ContainerExit::engine`]). The stream ends when
    /// the connection drops; the caller asks again.
    fn exits(&self) -> BoxStream<'static, Result<ContainerExit, DockerError>>;

    /// The local image's digest (or id); `None` when absent.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn image_digest(&self, image: &str) -> Result<Option<String>, DockerError>;

    /// Pulls `image` within `limit`.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn pull(&self, image: &str, limit: Duration) -> Result<(), DockerError>;

    /// Claims the owner's id on this engine ([`lease`]): [`Claim::Refuse`]
    /// when another orchestrator with the id is running.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn claim_lease(&self) -> Result<Claim, DockerError>;

    /// Gives the lease back at shutdown.
    ///
    /// # Errors
    /// [`DockerError`].
    async fn release_lease(&self) -> Result<(), DockerError>;
}
