//! The runner lifecycle: where runners are created, watched and destroyed.
//!
//! - [`fleet`]: [`Fleet`], the shared handle every part of the service uses
//!   (configuration, GitHub, Docker, the registry).
//! - [`request`]: checks a create request and turns it into a plan.
//! - [`provision`]: creates a batch of runners, all or nothing.
//! - [`removal`]: deregisters from GitHub, then removes the container.
//! - [`registry`]: the in-memory view rebuilt from Docker and GitHub, and
//!   the guards that set what only this process knows.
//! - [`operations`]: creates, deletes and removals run as tasks of their
//!   own, so no client that goes away can cut one; shutdown waits for them.
//! - [`idempotency`]: what each `Idempotency-Key` started, for 24 hours.
//! - [`image`]: keeps the runner images fresh.
//! - [`pool_config`]: checks pools' networks and reloads the pools file.

pub mod fleet;
pub mod idempotency;
pub mod image;
pub mod operations;
pub mod pool_config;
pub mod provision;
pub mod registry;
pub mod removal;
pub mod request;

pub use fleet::{Fleet, FleetError};
pub use operations::{CreateOperation, Operation, OperationLost, Operations};
pub use registry::{Registry, RunnerView};
