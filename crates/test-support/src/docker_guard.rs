//! A per-test Docker sandbox: a bridge network of its own and an owner id
//! for labels, both removed on drop, even when the test panics.

use std::net::IpAddr;
use std::process::Command;

use crate::unique_id;

/// Label every test resource carries, valued with the test's id.
pub const TEST_LABEL: &str = "dev.gha-runners.test";

/// One test's corner of the Docker engine.
#[derive(Debug)]
pub struct TestDocker {
    /// Unique id of this test run; use it as the orchestrator's instance id
    /// and in names.
    pub id: String,
    /// Name of the bridge network runner containers join.
    pub network: String,
    /// The network's gateway: the host's address as the containers see it.
    /// Test servers that containers must reach (the simulator) bind here.
    pub gateway: IpAddr,
}

impl TestDocker {
    /// Creates the network `gha-test-<id>`.
    ///
    /// # Panics
    /// When Docker is unreachable.
    pub fn new() -> Self {
        let id = unique_id();
        let network = format!("gha-test-{id}");
        let out = Command::new("docker")
            .args(["network", "create", "--driver", "bridge", "--label"])
            .arg(format!("{TEST_LABEL}={id}"))
            .arg(&network)
            .output()
            .expect("docker CLI");
        assert!(
            out.status.success(),
            "docker network create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let gateway = network_gateway(&network);
        TestDocker {
            id,
            network,
            gateway,
        }
    }

    /// Names of the containers (running or not) that carry `label=value`.
    pub fn containers_with_label(label: &str, value: &str) -> Vec<String> {
        let out = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
            .arg(format!("label={label}={value}"))
            .output()
            .expect("docker CLI");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Names of the containers attached to this test's network or labelled
    /// with its id, or owned by an orchestrator with its id (a runner in
    /// its Docker engine's network namespace is on no network of its own).
    pub fn containers(&self) -> Vec<String> {
        let mut names = Self::containers_with_label(TEST_LABEL, &self.id);
        names.extend(Self::containers_with_label(
            "dev.gha-runners.instance",
            &self.id,
        ));
        let out = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
            .arg(format!("network={}", self.network))
            .output()
            .expect("docker CLI");
        names.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
        names.sort();
        names.dedup();
        names
    }

    /// `docker inspect` of one container, as JSON.
    pub fn inspect(name: &str) -> Option<serde_json::Value> {
        let out = Command::new("docker")
            .args(["inspect", name])
            .output()
            .expect("docker CLI");
        if !out.status.success() {
            return None;
        }
        let mut all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
        all.pop()
    }

    /// Removes every container of this test, by network and by label.
    pub fn remove_containers(&self) {
        let names = self.containers();
        if !names.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f", "-v"])
                .args(&names)
                .output();
        }
    }
}

impl Default for TestDocker {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDocker {
    fn drop(&mut self) {
        self.remove_containers();
        // Volumes a service made under this test's id (an orchestrator's
        // lease, should it have been killed).
        if let Ok(out) = Command::new("docker")
            .args(["volume", "ls", "-q", "--filter"])
            .arg(format!("label=dev.gha-runners.instance={}", self.id))
            .output()
        {
            let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !names.is_empty() {
                let _ = Command::new("docker")
                    .args(["volume", "rm", "-f"])
                    .args(&names)
                    .output();
            }
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
    }
}

fn network_gateway(network: &str) -> IpAddr {
    let out = Command::new("docker")
        .args([
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            network,
        ])
        .output()
        .expect("docker CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("network {network} has no IPv4 gateway: {text:?}"))
}
