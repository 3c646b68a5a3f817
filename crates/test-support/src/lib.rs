//! What the integration tests of every crate share.
//!
//! The machines that run the tests can reach no container registry, so every
//! image is built locally; tests run as separate processes (nextest), so each
//! helper is idempotent and serialised with a file lock. Everything a test
//! creates in Docker carries a label unique to that test, and the guards here
//! remove it on drop, panics included.
//!
//! # Layout
//! - [`images`]: the Debian base image, the runner stand-in image and the
//!   Docker engine image.
//! - [`dind`]: a Docker engine inside a container (a runner's private
//!   engine): its rights, its socket, loading images into it.
//! - [`docker_guard`]: per-test Docker networks and clean-up by label.
//! - [`docker_proxy`]: a cuttable proxy in front of the Docker socket.
//! - [`http_load`]: an in-process HTTP/1.1 load generator (benchmark and
//!   load tests).
//! - [`keys`]: RSA key pairs for the GitHub App tests, made at test time.
//! - [`wait`]: polling with a deadline instead of blind sleeps.

pub mod dind;
pub mod docker_guard;
pub mod docker_proxy;
pub mod http_load;
pub mod images;
pub mod keys;
pub mod wait;

use std::path::PathBuf;

pub use docker_guard::TestDocker;
pub use docker_proxy::DockerProxy;
pub use images::{ensure_base_image, ensure_dind_image, ensure_sim_runner_image, workspace_binary};
pub use keys::RsaKeyPair;
pub use wait::wait_for;

/// The repository's root directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// A short random id for names that must not clash between tests.
pub fn unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

/// Whether `TEST_LOG` asks for the services' logs on the test's output.
pub fn test_log() -> bool {
    std::env::var_os("TEST_LOG").is_some()
}
