//! A runner's private Docker engine, the "sidecar": a container of its own,
//! created and started before its runner, removed after it.
//!
//! - The engine listens on a Unix socket only ([`DOCKER_HOST`]), in a volume
//!   shared with its one runner; no TCP port, so no other runner reaches it.
//! - The runner joins the engine container's network namespace, so a
//!   published port of a `services:` container is `localhost` for the job.
//! - The runner's work directory ([`WORK_DIR`]) is one volume mounted at the
//!   same path in both, so `container:` jobs and container actions find
//!   their files; so is its `externals` directory ([`EXTERNALS_DIR`]: the
//!   runner's own node, which it mounts into a `container:` job for
//!   JavaScript actions), filled from the runner's image by Docker when the
//!   runner's container is created; the engine's storage is a fourth volume.
//! - The engine also serves its default socket inside its own container
//!   (`/var/run/docker.sock`), which the runner mounts into job containers,
//!   as GitHub's hosted runners give theirs.
//! - The engine container, its volumes and nothing else carry
//!   [`labels::ENGINE_OF`] with the runner's name (and the owner's labels);
//!   the runner carries [`labels::DOCKER`].
//!
//! The engine needs elevated rights: `--privileged`, or where the host
//! refuses it, the explicit set of [`SidecarSpec::privileged`]` = false`.
//! The runner container itself stays unprivileged, with no host socket.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::exec::StartExecResults;
use bollard::models::{
    ContainerCreateBody, ExecConfig, HostConfig, Mount, MountType, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use futures::StreamExt;
use tracing::{info, warn};

use super::ContainerEngine;
use super::container::ContainerSpec;
use super::docker::{Change, DockerEngine, base_host_config};
use super::error::DockerError;
use super::labels;

/// Where the engine's socket is, in both containers: a directory of its
/// own, so the engine's other state (pid files, containerd's socket) stays
/// out of the runner's sight.
pub const SOCKET_DIR: &str = "/run/gha-docker";
/// The runner's `DOCKER_HOST`.
pub const DOCKER_HOST: &str = "unix:///run/gha-docker/docker.sock";
/// The runner's work directory (the official runner image's `_work`), the
/// same path in the engine container.
pub const WORK_DIR: &str = "/home/runner/_work";
/// The runner's `externals` (node for JavaScript actions), the same path in
/// the engine container.
pub const EXTERNALS_DIR: &str = "/home/runner/externals";
/// The group that owns the socket (mode 0660): `docker` in the official
/// runner image, which its user `runner` belongs to.
pub const SOCKET_GID: &str = "123";
/// The engine's storage.
const STORAGE_DIR: &str = "/var/lib/docker";
/// How long an engine may take to answer on its socket after its start.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Between two looks at a starting engine.
const READY_POLL: Duration = Duration::from_millis(250);

/// A runner's Docker engine, as a pool asks for it (`docker = "sidecar"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarSpec {
    /// The engine's image (default the official `docker:dind`).
    pub image: String,
    /// `--privileged` (default); `false`: every capability but
    /// `SYS_RESOURCE`, no seccomp or AppArmor profile, writable `/proc` and
    /// `/sys` paths and an empty tmpfs at `/sys/fs/cgroup` for the image to
    /// mount its cgroups on, for hosts that refuse `--privileged` (the
    /// image must do that mounting, as `docker/dind` does).
    pub privileged: bool,
    /// Passed to the engine as `--registry-mirror`.
    pub registry_mirror: Option<String>,
}

/// The engine container's name for runner `runner`.
pub fn engine_name(runner: &str) -> String {
    format!("{runner}-docker")
}

/// The runner's volumes (name, where they are mounted): the socket's, the
/// work directory's, the runner's externals, the engine's storage.
fn volumes(runner: &str) -> [(String, &'static str); 4] {
    [
        (format!("{runner}-docker-socket"), SOCKET_DIR),
        (format!("{runner}-work"), WORK_DIR),
        (format!("{runner}-externals"), EXTERNALS_DIR),
        (format!("{runner}-docker-storage"), STORAGE_DIR),
    ]
}

fn volume_mount(name: &str, target: &str) -> Mount {
    Mount {
        target: Some(target.to_owned()),
        source: Some(name.to_owned()),
        typ: Some(MountType::VOLUME),
        ..Default::default()
    }
}

/// What is left of some runner's engine: its container, its volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarLeftover {
    /// The runner it belongs to.
    pub runner: String,
    /// Whether its container exists and runs.
    pub running: bool,
}

impl DockerEngine {
    /// Creates the volumes and the engine container of runner `spec.name`,
    /// starts it and waits until the engine answers; returns the engine
    /// container's name. What it made stays on error: the caller removes
    /// it with [`DockerEngine::remove_sidecar_of`].
    pub(super) async fn create_sidecar(
        &self,
        spec: &ContainerSpec,
        sidecar: &SidecarSpec,
    ) -> Result<String, DockerError> {
        let docker = self.client().await?;
        let mut owned: HashMap<String, String> = self.owner.labels().into_iter().collect();
        owned.insert(labels::ENGINE_OF.to_owned(), spec.name.clone());
        for (volume, _) in volumes(&spec.name) {
            let request = VolumeCreateRequest {
                name: Some(volume),
                labels: Some(owned.clone()),
                ..Default::default()
            };
            self.limited(
                Change::Create,
                "create volume",
                docker.create_volume(request),
            )
            .await?;
        }
        // The shared socket for the runner, and the engine's default one
        // for job containers (the runner mounts `/var/run/docker.sock`
        // into them, a path of the engine's own file system).
        let mut command = vec![
            "dockerd".to_owned(),
            format!("--host={DOCKER_HOST}"),
            "--host=unix:///var/run/docker.sock".to_owned(),
            format!("--group={SOCKET_GID}"),
        ];
        if let Some(mirror) = &sidecar.registry_mirror {
            command.push(format!("--registry-mirror={mirror}"));
        }
        let name = engine_name(&spec.name);
        let body = ContainerCreateBody {
            image: Some(sidecar.image.clone()),
            cmd: Some(command),
            // The official image makes TLS certificates for a TCP port
            // unless told not to; the CLI inside finds the socket.
            env: Some(vec![
                "DOCKER_TLS_CERTDIR=".to_owned(),
                format!("DOCKER_HOST={DOCKER_HOST}"),
            ]),
            labels: Some(owned),
            hostname: Some(spec.name.chars().take(63).collect()),
            host_config: Some(HostConfig {
                mounts: Some(
                    volumes(&spec.name)
                        .iter()
                        .map(|(volume, target)| volume_mount(volume, target))
                        .collect(),
                ),
                ..engine_rights(sidecar.privileged, base_host_config(spec))
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        self.limited(
            Change::Create,
            "create Docker engine container",
            docker.create_container(Some(options), body),
        )
        .await?;
        self.limited(
            Change::Start,
            "start Docker engine container",
            docker.start_container(
                &name,
                None::<bollard::query_parameters::StartContainerOptions>,
            ),
        )
        .await?;
        self.wait_until_ready(docker, &spec.name, &name, &sidecar.image)
            .await
            // Counted here: this one does not come from a single call.
            .inspect_err(crate::metrics::errors::docker_error)?;
        Ok(name)
    }

    /// Waits until the engine in container `engine` answers on its socket,
    /// opening the work directory to the runner's user on the way (the
    /// volume is created root-owned).
    async fn wait_until_ready(
        &self,
        docker: &Docker,
        runner: &str,
        engine: &str,
        image: &str,
    ) -> Result<(), DockerError> {
        let probe = format!("chmod 0777 {WORK_DIR} && docker version >/dev/null 2>&1");
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if self.exec_succeeds(docker, engine, &probe).await? {
                return Ok(());
            }
            let state = self
                .timed(
                    "inspect Docker engine container",
                    docker.inspect_container(engine, None::<InspectContainerOptions>),
                )
                .await?
                .state
                .unwrap_or_default();
            if !state.running.unwrap_or(false) {
                let tail = self.log_tail(docker, engine).await;
                warn!(runner, engine, log = %tail, "the runner's Docker engine stopped while starting");
                return Err(DockerError::EngineFailed {
                    runner: runner.to_owned(),
                    message: format!(
                        "its Docker engine (image {image}) exited with code {} while starting; its last lines are in the orchestrator's log",
                        state.exit_code.unwrap_or(-1)
                    ),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DockerError::EngineFailed {
                    runner: runner.to_owned(),
                    message: format!(
                        "its Docker engine did not answer within {} s",
                        READY_TIMEOUT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Runs `sh -c script` in `container` as root; whether it exited 0.
    async fn exec_succeeds(
        &self,
        docker: &Docker,
        container: &str,
        script: &str,
    ) -> Result<bool, DockerError> {
        let exec = self
            .timed(
                "create exec",
                docker.create_exec(
                    container,
                    ExecConfig {
                        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        user: Some("0".into()),
                        ..Default::default()
                    },
                ),
            )
            .await;
        let exec = match exec {
            Ok(exec) => exec,
            // Not running (any more): the caller looks at its state.
            Err(DockerError::Conflict(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        match self
            .timed("start exec", docker.start_exec(&exec.id, None))
            .await?
        {
            StartExecResults::Attached { mut output, .. } => {
                let drain = async { while output.next().await.is_some() {} };
                if tokio::time::timeout(self.timeout, drain).await.is_err() {
                    return Ok(false);
                }
            }
            StartExecResults::Detached => {}
        }
        let inspect = self
            .timed("inspect exec", docker.inspect_exec(&exec.id))
            .await?;
        Ok(inspect.exit_code == Some(0))
    }

    /// The last lines of a container's log, for the orchestrator's own log
    /// (an engine's log holds no secret of the runner's).
    async fn log_tail(&self, docker: &Docker, container: &str) -> String {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail("8")
            .build();
        let mut lines = Vec::new();
        let mut logs = docker.logs(container, Some(options));
        let read = async {
            while let Some(Ok(line)) = logs.next().await {
                lines.push(line.to_string().trim_end().to_owned());
            }
        };
        let _ = tokio::time::timeout(self.timeout, read).await;
        lines.join(" | ")
    }

    /// Removes runner `runner`'s engine container and its volumes; gone
    /// already is fine. Call it once the runner's container is removed
    /// (a volume in use cannot be removed).
    pub(super) async fn remove_sidecar_of(&self, runner: &str) -> Result<(), DockerError> {
        self.remove(&engine_name(runner)).await?;
        let docker = self.client().await?;
        for (volume, _) in volumes(runner) {
            let options = RemoveVolumeOptionsBuilder::default().force(true).build();
            match self
                .timed(
                    "remove volume",
                    docker.remove_volume(&volume, Some(options)),
                )
                .await
            {
                Ok(()) | Err(DockerError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        info!(runner, "removed the runner's Docker engine");
        Ok(())
    }

    /// Every runner engine of the owner's that exists, container or
    /// volumes, by runner.
    pub(super) async fn sidecar_leftovers(&self) -> Result<Vec<SidecarLeftover>, DockerError> {
        let docker = self.client().await?;
        let mut filter = self.owner.filter();
        filter.push(labels::ENGINE_OF.to_owned());
        let filters = HashMap::from([("label".to_owned(), filter)]);
        let containers = self
            .timed(
                "list Docker engine containers",
                docker.list_containers(Some(
                    ListContainersOptionsBuilder::default()
                        .all(true)
                        .filters(&filters)
                        .build(),
                )),
            )
            .await?;
        let volumes = self
            .timed(
                "list volumes",
                docker.list_volumes(Some(
                    ListVolumesOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                )),
            )
            .await?;
        let mut found: HashMap<String, bool> = HashMap::new();
        for container in containers {
            if let Some(runner) = container
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::ENGINE_OF))
            {
                let running =
                    container.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING);
                *found.entry(runner.clone()).or_default() |= running;
            }
        }
        for volume in volumes.volumes.unwrap_or_default() {
            if let Some(runner) = volume.labels.get(labels::ENGINE_OF) {
                found.entry(runner.clone()).or_default();
            }
        }
        Ok(found
            .into_iter()
            .map(|(runner, running)| SidecarLeftover { runner, running })
            .collect())
    }
}

/// The engine container's rights: `--privileged`, or the explicit set that
/// works where the host refuses it.
fn engine_rights(privileged: bool, base: HostConfig) -> HostConfig {
    if privileged {
        return HostConfig {
            privileged: Some(true),
            ..base
        };
    }
    HostConfig {
        privileged: Some(false),
        cap_add: Some(vec!["ALL".into()]),
        // Outside the bounding set of a host engine that refuses
        // `--privileged` (see TESTING.md); dockerd does without it.
        cap_drop: Some(vec!["SYS_RESOURCE".into()]),
        security_opt: Some(vec![
            "seccomp=unconfined".into(),
            "apparmor=unconfined".into(),
        ]),
        // `--security-opt systempaths=unconfined`, which the CLI turns into
        // these: `/proc` and `/sys` paths neither masked nor read-only.
        masked_paths: Some(Vec::new()),
        readonly_paths: Some(Vec::new()),
        tmpfs: Some(HashMap::from([(
            "/sys/fs/cgroup".to_owned(),
            "rw".to_owned(),
        )])),
        ..base
    }
}

/// What a runner container gets when it has an engine: the engine's network
/// namespace, the socket's and the work directory's volumes, the socket's
/// group and `DOCKER_HOST`.
pub(super) fn runner_side(runner: &str, host: &mut HostConfig, env: &mut Vec<String>) {
    host.network_mode = Some(format!("container:{}", engine_name(runner)));
    host.mounts = Some(
        volumes(runner)
            .iter()
            .filter(|(_, target)| *target != STORAGE_DIR)
            .map(|(volume, target)| volume_mount(volume, target))
            .collect(),
    );
    host.group_add = Some(vec![SOCKET_GID.to_owned()]);
    env.push(format!("DOCKER_HOST={DOCKER_HOST}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_sees_the_socket_and_work_dir_but_not_the_storage() {
        let mut host = HostConfig::default();
        let mut env = Vec::new();
        runner_side("r-1", &mut host, &mut env);
        assert_eq!(host.network_mode.as_deref(), Some("container:r-1-docker"));
        let targets: Vec<_> = host
            .mounts
            .unwrap()
            .into_iter()
            .map(|m| (m.source.unwrap(), m.target.unwrap()))
            .collect();
        assert_eq!(
            targets,
            [
                ("r-1-docker-socket".to_owned(), SOCKET_DIR.to_owned()),
                ("r-1-work".to_owned(), WORK_DIR.to_owned()),
                ("r-1-externals".to_owned(), EXTERNALS_DIR.to_owned()),
            ]
        );
        assert_eq!(env, [format!("DOCKER_HOST={DOCKER_HOST}")]);
        assert_eq!(host.privileged, None);
    }

    #[test]
    fn without_privileged_the_engine_gets_the_explicit_set() {
        let rights = engine_rights(false, HostConfig::default());
        assert_eq!(rights.privileged, Some(false));
        assert_eq!(rights.cap_add.unwrap(), ["ALL"]);
        assert!(rights.tmpfs.unwrap().contains_key("/sys/fs/cgroup"));
        assert_eq!(
            engine_rights(true, HostConfig::default()).privileged,
            Some(true)
        );
    }
}
