//! The Docker side: the engine client and the labels that make a container
//! one of our runners.
//!
//! - [`engine`]: bollard calls with timeouts, scoped to our instance's containers.
//! - [`labels`]: the label keys and the runner record they hold.

pub mod engine;
pub mod labels;

pub use engine::{ContainerExit, ContainerSpec, DockerEngine, DockerError, RunnerContainer};
pub use labels::RunnerLabels;
