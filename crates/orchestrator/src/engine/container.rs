//! What the engine is asked for and what it reports: a runner container's
//! specification, Docker's view of one, its exit, the engine's version.

use std::collections::HashMap;
use std::fmt;

use super::labels::RunnerLabels;

/// What a runner container needs to be created.
#[derive(Clone)]
pub struct ContainerSpec {
    /// Container name (= runner name).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command and arguments.
    pub command: Vec<String>,
    /// `KEY=VALUE` pairs; holds the runner's JIT configuration, so never printed.
    pub env: Vec<String>,
    /// Docker labels (the runner's record).
    pub labels: HashMap<String, String>,
    /// The network to join.
    pub network: String,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// Process limit.
    pub pids_limit: Option<i64>,
    /// The runner's own Docker engine, when its pool has one.
    pub sidecar: Option<super::SidecarSpec>,
}

impl fmt::Debug for ContainerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_keys: Vec<&str> = self
            .env
            .iter()
            .map(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k))
            .collect();
        f.debug_struct("ContainerSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("command", &self.command)
            .field("env_keys", &env_keys)
            .field("network", &self.network)
            .field("sidecar", &self.sidecar)
            .finish_non_exhaustive()
    }
}

/// Docker's view of one of our runner containers.
#[derive(Debug, Clone)]
pub struct RunnerContainer {
    /// Docker's id.
    pub id: String,
    /// The record from its labels.
    pub record: RunnerLabels,
    /// The image it runs.
    pub image: String,
    /// Running (or restarting/paused): not yet exited.
    pub running: bool,
    /// Created but never started.
    pub created_only: bool,
    /// Exit code once exited.
    pub exit_code: Option<i64>,
}

impl RunnerContainer {
    /// Whether the container has stopped for good.
    pub fn exited(&self) -> bool {
        !self.running && !self.created_only
    }
}

/// The engine's version, for `/health`.
#[derive(Debug, Clone)]
pub struct EngineVersion {
    /// Engine version, e.g. `20.10.24`.
    pub version: String,
    /// The API version in use.
    pub api_version: String,
}

/// A die event of one of our containers.
#[derive(Debug, Clone)]
pub struct ContainerExit {
    /// The runner's name (the container's, or the runner whose engine it is).
    pub name: String,
    /// Its exit code, when the event carried it.
    pub exit_code: Option<i64>,
    /// Whether it was the runner's Docker engine that exited.
    pub engine: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_debug_hides_values() {
        let spec = ContainerSpec {
            name: "n".into(),
            image: "i".into(),
            command: vec![],
            env: vec!["ACTIONS_RUNNER_INPUT_JITCONFIG=c2VjcmV0".into()],
            labels: HashMap::new(),
            network: "net".into(),
            memory: None,
            nano_cpus: None,
            pids_limit: None,
            sidecar: None,
        };
        let text = format!("{spec:?}");
        assert!(text.contains("ACTIONS_RUNNER_INPUT_JITCONFIG"));
        assert!(!text.contains("c2VjcmV0"));
    }
}
