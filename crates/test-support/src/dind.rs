//! A Docker engine inside a container, as a runner's private engine: the
//! rights it runs with where `--privileged` is refused, waiting for its
//! socket, putting images into it (there is no registry), and removing the
//! containers and volumes a test made for it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::docker_guard::TEST_LABEL;
use crate::images::run;
use crate::wait_for;

/// `docker run` flags that give an engine container what dockerd needs on
/// hosts that refuse `--privileged` (our CI machines, see
/// `../shared/TESTING.md`): every capability but `SYS_RESOURCE` (outside the
/// host engine's own bounding set), no seccomp or AppArmor filter, writable
/// `/proc` and `/sys` paths, and an empty tmpfs on which the entrypoint
/// mounts the cgroup controllers.
pub const ENGINE_RIGHTS: &[&str] = &[
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--security-opt",
    "systempaths=unconfined",
    "--tmpfs",
    "/sys/fs/cgroup:rw",
];

/// Waits until the engine in container `engine` answers on its socket, and
/// returns its version.
///
/// # Panics
/// When the container stops (the message holds its log) or `timeout` passes.
pub async fn wait_for_engine(engine: &str, timeout: Duration) -> String {
    wait_for("the inner Docker engine to answer", timeout, || async {
        let version = tokio::process::Command::new("docker")
            .args([
                "exec",
                engine,
                "docker",
                "version",
                "-f",
                "{{.Server.Version}}",
            ])
            .output()
            .await
            .expect("docker CLI");
        if version.status.success() {
            return Some(String::from_utf8_lossy(&version.stdout).trim().to_owned());
        }
        let running = tokio::process::Command::new("docker")
            .args(["inspect", "-f", "{{.State.Running}}", engine])
            .output()
            .await
            .expect("docker CLI");
        if String::from_utf8_lossy(&running.stdout).trim() != "true" {
            let logs = Command::new("docker")
                .args(["logs", "--tail", "30", engine])
                .output()
                .expect("docker CLI");
            panic!(
                "engine container {engine} stopped:\n{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        None
    })
    .await
}

/// Copies `image` from the host's engine into the engine of container
/// `engine`: `docker save <image> | docker exec -i <engine> docker load`. The
/// engine image ships the docker CLI and points `DOCKER_HOST` at its socket.
///
/// # Panics
/// When either side fails.
pub fn load_image(engine: &str, image: &str) {
    let mut save = Command::new("docker")
        .args(["save", image])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker CLI");
    let archive = save.stdout.take().expect("piped stdout");
    run(
        Command::new("docker")
            .args(["exec", "-i", engine, "docker", "load", "-q"])
            .stdin(archive),
        &format!("load {image} into the engine in {engine}"),
    );
    let saved = save.wait().expect("docker save");
    assert!(saved.success(), "docker save {image}: {saved}");
}

/// Removes, on drop (panics included), every container and then every
/// volume labelled `TEST_LABEL=<id>`: an engine container, its runner and
/// their volumes. The inner engine's own containers live in its storage
/// volume and go with it.
#[derive(Debug)]
pub struct LabelledResources {
    /// The value of [`TEST_LABEL`] on everything this guard removes.
    pub id: String,
}

impl LabelledResources {
    /// A guard for a fresh random id.
    pub fn new() -> Self {
        LabelledResources {
            id: crate::unique_id(),
        }
    }

    /// `--label TEST_LABEL=<id>`, for `docker run` and `docker volume create`.
    pub fn label_args(&self) -> [String; 2] {
        ["--label".into(), format!("{TEST_LABEL}={}", self.id)]
    }

    /// Names of this guard's containers (running or not) and volumes.
    pub fn remaining(&self) -> (Vec<String>, Vec<String>) {
        labelled(&format!("{TEST_LABEL}={}", self.id))
    }
}

/// Names of the containers (running or not) and of the volumes that carry
/// `label` (`key=value`, or a key alone).
///
/// # Panics
/// When the docker CLI cannot run.
pub fn labelled(label: &str) -> (Vec<String>, Vec<String>) {
    let filter = format!("label={label}");
    let list = |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .args(["--filter", &filter])
            .output()
            .expect("docker CLI");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    (
        list(&["ps", "-a", "--format", "{{.Names}}"]),
        list(&["volume", "ls", "-q"]),
    )
}

impl Default for LabelledResources {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LabelledResources {
    fn drop(&mut self) {
        // Containers first: a volume in use cannot be removed.
        let (containers, volumes) = self.remaining();
        if !containers.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f", "-v"])
                .args(&containers)
                .output();
        }
        if !volumes.is_empty() {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f"])
                .args(&volumes)
                .output();
        }
    }
}
