//! The Docker engine, through bollard: every call has a timeout named after
//! its operation, the API version is negotiated (our engines may be older
//! than bollard), "not found" on removal means "already gone", and the calls
//! that create, start or remove containers go to the engine a bounded number
//! at a time (see [`DockerEngine::connect_with_limit`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, EventMessage, HostConfig, NetworkCreateRequest,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    InspectContainerOptions, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::error::{caused_by_io, with_causes};
use super::labels::{self, Owner, RunnerLabels};
use super::lease::{self, Claim, Holder, Liveness};
use super::sidecar::{self, SidecarLeftover};
use super::{
    ContainerEngine, ContainerExit, ContainerSpec, DockerError, EngineVersion, RunnerContainer,
};

/// Where bollard connects unless `DOCKER_HOST` says otherwise.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How many calls of each kind that changes containers (create, start,
/// remove) are sent to the engine at once unless told otherwise
/// ([`DockerEngine::connect_with_limit`]).
///
/// Measured on a 2-core host with Docker 20.10: the engine works through
/// about three such calls at a time, so a burst of 100 creates and starts
/// takes as long in total with 8 in flight as with all 200 calls sent at
/// once, while the slowest single call falls from nearly the whole burst
/// (17–22 s) to about 2 s.
pub const DEFAULT_MAX_CONCURRENT_CHANGES: usize = 8;

/// A kind of call that changes containers; each has slots of its own.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    /// Creating a container (or the runner network): a runner's first step.
    Create,
    /// Starting a created container: what makes a runner usable.
    Start,
    /// Removing a container: what frees a slot under `MAX_RUNNERS`.
    Remove,
}

/// The slots of each kind of change ([`Change`]).
#[derive(Debug)]
struct Lanes {
    create: Semaphore,
    start: Semaphore,
    remove: Semaphore,
}

impl Lanes {
    fn new(per_kind: usize) -> Self {
        let per_kind = per_kind.max(1);
        Self {
            create: Semaphore::new(per_kind),
            start: Semaphore::new(per_kind),
            remove: Semaphore::new(per_kind),
        }
    }

    fn of(&self, change: Change) -> &Semaphore {
        match change {
            Change::Create => &self.create,
            Change::Start => &self.start,
            Change::Remove => &self.remove,
        }
    }
}

/// The Docker engine, scoped to what one orchestrator instance owns.
#[derive(Debug)]
pub struct DockerEngine {
    pub(super) docker: Docker,
    negotiated: AtomicBool,
    /// The most one call may take once sent.
    pub(super) timeout: Duration,
    /// Whose containers these are: every listing is filtered by it.
    pub(super) owner: Owner,
    /// What we connect to (`DOCKER_HOST`, or the default socket), named in
    /// errors.
    endpoint: String,
    /// Slots for the calls that create, start or remove containers: the
    /// engine does that work a few at a time, so calls sent beyond that only
    /// queue inside the engine, where each one's wait counts against its
    /// timeout (see [`DockerEngine::connect_with_limit`]).
    lanes: Lanes,
}

impl DockerEngine {
    /// Connects through `DOCKER_HOST` (default: the local socket) with
    /// [`DEFAULT_MAX_CONCURRENT_CHANGES`]. No I/O happens here; the API
    /// version is negotiated on first use.
    ///
    /// # Errors
    /// When `DOCKER_HOST` is malformed.
    pub fn connect(owner: Owner, timeout: Duration) -> Result<Self, DockerError> {
        Self::connect_with_limit(owner, timeout, DEFAULT_MAX_CONCURRENT_CHANGES)
    }

    /// Connects as [`Self::connect`] does, with at most `max_concurrent_changes`
    /// (at least 1) creates, as many starts and as many removals of
    /// containers in flight at once.
    ///
    /// Why a limit: the engine works through such calls a few at a time
    /// (creating a container's layer, its network endpoint, starting its
    /// process), so a call sent while a hundred others are in flight waits
    /// inside the engine for most of them, and that wait counts against its
    /// timeout: a burst of 100 runners has single calls that take nearly the
    /// whole burst (17–22 s on a 2-core host), past `DOCKER_TIMEOUT_SECONDS`
    /// (20 s), and the batch then fails. Holding the calls beyond the limit
    /// here instead keeps every call's time in the engine short and
    /// independent of the burst's size, and the burst as fast as before (the
    /// engine is as busy either way).
    ///
    /// `timeout` applies to each call once it holds a slot and is sent, not
    /// to the time it waits for a slot: that wait is not the engine failing
    /// to answer. It is bounded all the same, by the calls ahead of it, each
    /// of which holds its slot for at most `timeout`; slots are handed out in
    /// the order they were asked for.
    ///
    /// Creates, starts and removals have slots of their own, so that the
    /// later steps never queue behind the first steps of the runners that
    /// come after: a start (which makes a runner usable) does not wait for
    /// the creates of a whole burst, and a removal (which frees the capacity
    /// that queued creates wait for) does not wait behind them. With one
    /// queue for all three, a churn of 1-second jobs took 1.1 s instead of
    /// 0.36 s (median) from a runner's exit to its slot being free.
    ///
    /// Reads (listings, inspections, the version) take no slot: the engine
    /// answers them beside the changes, and the reconcile pass and `/health`
    /// must not wait behind a burst. Neither does a stop, whose time is the
    /// container's grace period rather than the engine's work, nor the
    /// event stream and image pulls, which are long by nature.
    ///
    /// # Errors
    /// When `DOCKER_HOST` is malformed.
    pub fn connect_with_limit(
        owner: Owner,
        timeout: Duration,
        max_concurrent_changes: usize,
    ) -> Result<Self, DockerError> {
        let endpoint = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .map_or_else(
                || DEFAULT_SOCKET.to_owned(),
                |h| h.strip_prefix("unix://").unwrap_or(&h).to_owned(),
            );
        let docker = Docker::connect_with_defaults()
            .map_err(|e| to_docker_error("connect", &endpoint, e))?
            .with_timeout(timeout);
        Ok(Self {
            docker,
            negotiated: AtomicBool::new(false),
            timeout,
            owner,
            endpoint,
            lanes: Lanes::new(max_concurrent_changes),
        })
    }

    fn error(&self, operation: &'static str, error: BollardError) -> DockerError {
        to_docker_error(operation, &self.endpoint, error)
    }

    /// This orchestrator as a lease holder: its container, when it runs in
    /// one of this engine's (`HOSTNAME` is the container's id there),
    /// otherwise its process.
    async fn this_holder(&self, docker: &Docker) -> Holder {
        if std::path::Path::new("/.dockerenv").exists()
            && let Ok(hostname) = std::env::var("HOSTNAME")
            && let Ok(Ok(inspect)) = tokio::time::timeout(
                self.timeout,
                docker.inspect_container(&hostname, None::<InspectContainerOptions>),
            )
            .await
            && let Some(id) = inspect.id
            && id.starts_with(&hostname)
        {
            return Holder::Container(id);
        }
        Holder::this_process()
    }

    async fn liveness(&self, docker: &Docker, holder: &Holder) -> Result<Liveness, DockerError> {
        match holder {
            Holder::Container(id) => {
                match self
                    .timed(
                        "inspect container",
                        docker.inspect_container(id, None::<InspectContainerOptions>),
                    )
                    .await
                {
                    Ok(inspect) => Ok(if inspect.state.and_then(|s| s.running).unwrap_or(false) {
                        Liveness::Alive
                    } else {
                        Liveness::Gone
                    }),
                    Err(DockerError::NotFound(_)) => Ok(Liveness::Gone),
                    Err(e) => Err(e),
                }
            }
            Holder::Process { host, pid, started } => {
                Ok(lease::process_liveness(host, *pid, *started))
            }
        }
    }

    /// Removes the lease volume, whoever it names.
    async fn remove_lease(&self, docker: &Docker) -> Result<(), DockerError> {
        let name = lease::volume_name(&self.owner.instance);
        match self
            .timed(
                "remove volume",
                docker.remove_volume(
                    &name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                ),
            )
            .await
        {
            Ok(()) | Err(DockerError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every container (running or not) carrying all of `labels`
    /// (`key=value` filters).
    async fn containers_labelled(
        &self,
        labels: Vec<String>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, DockerError> {
        let docker = self.client().await?;
        let filters = HashMap::from([("label", labels)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.timed("list containers", docker.list_containers(Some(options)))
            .await
    }

    /// The holder the lease volume names, `None` when there is no lease.
    async fn lease_holder(&self, docker: &Docker) -> Result<Option<Holder>, DockerError> {
        let name = lease::volume_name(&self.owner.instance);
        match self
            .timed("inspect volume", docker.inspect_volume(&name))
            .await
        {
            Ok(volume) => Ok(volume
                .labels
                .get(labels::LEASE_HOLDER)
                .and_then(|h| Holder::parse(h))),
            Err(DockerError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn client(&self) -> Result<&Docker, DockerError> {
        if !self.negotiated.load(Ordering::Acquire) {
            // Negotiation updates the version shared by every clone.
            self.timed(
                "negotiate API version",
                self.docker.clone().negotiate_version(),
            )
            .await?;
            self.negotiated.store(true, Ordering::Release);
        }
        Ok(&self.docker)
    }

    /// A call that changes containers: waits for a slot of its kind
    /// (untimed), then runs under the timeout. `call` does nothing until
    /// awaited (bollard's futures are lazy), so neither our timeout nor
    /// bollard's own starts while it waits.
    pub(super) async fn limited<T>(
        &self,
        change: Change,
        operation: &'static str,
        call: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, DockerError> {
        let _slot = self
            .lanes
            .of(change)
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.timed(operation, call).await
    }

    pub(super) async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, DockerError> {
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|e| self.error(operation, e)),
            Err(_) => Err(DockerError::Unavailable {
                operation,
                message: format!("no answer within {}s", self.timeout.as_secs()),
            }),
        };
        // Every timed call passes here: `gha_docker_errors_total`.
        result.inspect_err(crate::metrics::errors::docker_error)
    }
}

#[async_trait::async_trait]
impl ContainerEngine for DockerEngine {
    fn owner(&self) -> &Owner {
        &self.owner
    }

    async fn version(&self) -> Result<EngineVersion, DockerError> {
        let docker = self.client().await?;
        let version = self.timed("version", docker.version()).await?;
        Ok(EngineVersion {
            version: version.version.unwrap_or_default(),
            api_version: docker.client_version().to_string(),
        })
    }

    async fn ensure_network(&self, name: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        match self
            .timed(
                "inspect network",
                docker.inspect_network(
                    name,
                    None::<bollard::query_parameters::InspectNetworkOptions>,
                ),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(DockerError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".to_owned()),
            labels: Some(self.owner.labels().into_iter().collect()),
            ..Default::default()
        };
        match self
            .limited(
                Change::Create,
                "create network",
                docker.create_network(request),
            )
            .await
        {
            Ok(_) => {
                info!(network = name, "created runner network");
                Ok(())
            }
            // Someone created it in between.
            Err(DockerError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn container_networks(&self, id_or_name: &str) -> Result<Vec<String>, DockerError> {
        let docker = self.client().await?;
        let inspect = self
            .timed(
                "inspect container",
                docker.inspect_container(id_or_name, None::<InspectContainerOptions>),
            )
            .await?;
        Ok(inspect
            .network_settings
            .and_then(|n| n.networks)
            .map(|n| n.into_keys().collect())
            .unwrap_or_default())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let docker = self.client().await?;
        if let Some(sidecar) = &spec.sidecar {
            self.create_sidecar(spec, sidecar).await?;
        }
        let mut env = spec.env.clone();
        let mut host_config = base_host_config(spec);
        // In the engine's network namespace, a container has no hostname
        // of its own: the engine container carries the runner's.
        let mut hostname = Some(spec.name.chars().take(63).collect());
        if spec.sidecar.is_some() {
            sidecar::runner_side(&spec.name, &mut host_config, &mut env);
            hostname = None;
        }
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.command.clone()),
            env: Some(env),
            labels: Some(spec.labels.clone()),
            hostname,
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = self
            .limited(
                Change::Create,
                "create container",
                docker.create_container(Some(options), body),
            )
            .await?;
        Ok(created.id)
    }

    async fn start(&self, id_or_name: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        self.limited(
            Change::Start,
            "start container",
            docker.start_container(
                id_or_name,
                None::<bollard::query_parameters::StartContainerOptions>,
            ),
        )
        .await
    }

    async fn stop(&self, id_or_name: &str, grace: Duration) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let options = StopContainerOptionsBuilder::default()
            .t(grace.as_secs() as i32)
            .build();
        match self
            .timed(
                "stop container",
                docker.stop_container(id_or_name, Some(options)),
            )
            .await
        {
            Ok(()) | Err(DockerError::NotFound(_)) => Ok(()),
            Err(DockerError::Api { status: 304, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn remove(&self, id_or_name: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self
            .limited(
                Change::Remove,
                "remove container",
                docker.remove_container(id_or_name, Some(options)),
            )
            .await
        {
            Ok(()) | Err(DockerError::NotFound(_)) => Ok(()),
            // "removal already in progress"
            Err(DockerError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn remove_sidecar(&self, runner: &str) -> Result<(), DockerError> {
        self.remove_sidecar_of(runner).await
    }

    async fn sidecars(&self) -> Result<Vec<SidecarLeftover>, DockerError> {
        self.sidecar_leftovers().await
    }

    async fn list_runners(&self) -> Result<Vec<RunnerContainer>, DockerError> {
        let summaries = self.containers_labelled(self.owner.filter()).await?;
        Ok(summaries
            .into_iter()
            .filter_map(|s| {
                let record = RunnerLabels::from_docker(s.labels.as_ref()?)?;
                let state = s.state.unwrap_or(ContainerSummaryStateEnum::EMPTY);
                Some(RunnerContainer {
                    id: s.id.unwrap_or_default(),
                    record,
                    image: s.image.unwrap_or_default(),
                    running: matches!(
                        state,
                        ContainerSummaryStateEnum::RUNNING
                            | ContainerSummaryStateEnum::RESTARTING
                            | ContainerSummaryStateEnum::PAUSED
                    ),
                    created_only: state == ContainerSummaryStateEnum::CREATED,
                    exit_code: s.status.as_deref().and_then(parse_exit_code),
                })
            })
            .collect())
    }

    async fn inspect_runner(&self, name: &str) -> Result<Option<RunnerContainer>, DockerError> {
        let docker = self.client().await?;
        let inspect = match self
            .timed(
                "inspect container",
                docker.inspect_container(name, None::<InspectContainerOptions>),
            )
            .await
        {
            Ok(i) => i,
            Err(DockerError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let config = inspect.config.unwrap_or_default();
        let Some(labels) = config.labels.as_ref().filter(|l| self.owner.owns(l)) else {
            return Ok(None);
        };
        let Some(record) = RunnerLabels::from_docker(labels) else {
            return Ok(None);
        };
        let state = inspect.state.unwrap_or_default();
        let running = state.running.unwrap_or(false)
            || state.restarting.unwrap_or(false)
            || state.paused.unwrap_or(false);
        let created_only = !running
            && state
                .status
                .is_some_and(|s| s == bollard::models::ContainerStateStatusEnum::CREATED);
        Ok(Some(RunnerContainer {
            id: inspect.id.unwrap_or_default(),
            record,
            image: config.image.unwrap_or_default(),
            running,
            created_only,
            exit_code: if running || created_only {
                None
            } else {
                state.exit_code
            },
        }))
    }

    fn exits(&self) -> BoxStream<'static, Result<ContainerExit, DockerError>> {
        let mut filters = HashMap::from([
            ("type", vec!["container".to_owned()]),
            ("event", vec!["die".to_owned()]),
        ]);
        filters.insert("label", self.owner.filter());
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        let endpoint = self.endpoint.clone();
        // The stream is long-lived: no per-call timeout here.
        self.docker
            .events(Some(options))
            .map(move |event| {
                event
                    .map(exit_from_event)
                    .map_err(|e| to_docker_error("watch events", &endpoint, e))
            })
            .filter_map(|e| async move { e.transpose() })
            .boxed()
    }

    async fn foreign_runners(&self) -> Result<Vec<String>, DockerError> {
        let summaries = self
            .containers_labelled(self.owner.same_id_filter())
            .await?;
        Ok(summaries
            .into_iter()
            .filter(|s| !s.labels.as_ref().is_some_and(|l| self.owner.owns(l)))
            .filter_map(|s| s.names?.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_owned())
            .collect())
    }

    async fn claim_lease(&self) -> Result<Claim, DockerError> {
        let docker = self.client().await?;
        let me = self.this_holder(docker).await;
        if let Some(holder) = self.lease_holder(docker).await? {
            let liveness = self.liveness(docker, &holder).await?;
            match lease::decide(Some(&holder), &me, liveness) {
                Claim::Refuse(holder) => return Ok(Claim::Refuse(holder)),
                Claim::Take if holder != me => {
                    warn!(previous = %holder.describe(), "taking over the lease of an orchestrator that is gone");
                    self.remove_lease(docker).await?;
                }
                Claim::Take => return Ok(Claim::Take),
            }
        }
        let mut volume_labels: HashMap<String, String> = self.owner.labels().into_iter().collect();
        volume_labels.insert(labels::LEASE_HOLDER.to_owned(), me.to_string());
        let request = bollard::models::VolumeCreateRequest {
            name: Some(lease::volume_name(&self.owner.instance)),
            labels: Some(volume_labels),
            ..Default::default()
        };
        self.timed("create volume", docker.create_volume(request))
            .await?;
        // Two starting at once both "create" it; the engine keeps the first
        // one's labels, so whoever the volume names holds the lease.
        match self.lease_holder(docker).await? {
            Some(holder) if holder == me => Ok(Claim::Take),
            Some(holder) => Ok(Claim::Refuse(holder)),
            None => Ok(Claim::Take),
        }
    }

    async fn release_lease(&self) -> Result<(), DockerError> {
        let docker = self.client().await?;
        // Only our own: one that started while Docker was away holds none,
        // and must not remove the lease of another that took the id since.
        match self.lease_holder(docker).await? {
            Some(holder) if holder == self.this_holder(docker).await => {}
            _ => return Ok(()),
        }
        self.remove_lease(docker).await
    }

    async fn image_digest(&self, image: &str) -> Result<Option<String>, DockerError> {
        let docker = self.client().await?;
        match self
            .timed("inspect image", docker.inspect_image(image))
            .await
        {
            Ok(inspect) => Ok(inspect
                .repo_digests
                .and_then(|d| d.into_iter().next())
                .or(inspect.id)),
            Err(DockerError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn pull(&self, image: &str, limit: Duration) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let (from_image, tag) = split_image(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(from_image)
            .tag(tag)
            .build();
        let mut stream = docker.create_image(Some(options), None, None);
        let pull = async {
            let mut last_status = String::new();
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| self.error("pull image", e))?;
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    return Err(DockerError::Api {
                        operation: "pull image",
                        status: 500,
                        message: error,
                    });
                }
                if let Some(status) = info.status
                    && status != last_status
                {
                    debug!(image, status = %status, "pulling");
                    if status.starts_with("Status:") || status.starts_with("Digest:") {
                        info!(image, status = %status, "pull progress");
                    }
                    last_status = status;
                }
            }
            Ok(())
        };
        match tokio::time::timeout(limit, pull).await {
            Ok(result) => result,
            Err(_) => Err(DockerError::Unavailable {
                operation: "pull image",
                message: format!("not finished within {}s", limit.as_secs()),
            }),
        }
    }
}

/// bollard's error as ours: 404 and 409 by name, a socket we may not open
/// as [`DockerError::PermissionDenied`], a failure to connect with its causes.
fn to_docker_error(operation: &'static str, endpoint: &str, error: BollardError) -> DockerError {
    match error {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => DockerError::NotFound(message),
        BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        } => DockerError::Conflict(message),
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => DockerError::Api {
            operation,
            status: status_code,
            message,
        },
        other if caused_by_io(&other, std::io::ErrorKind::PermissionDenied) => {
            DockerError::PermissionDenied {
                operation,
                socket: endpoint.to_owned(),
            }
        }
        other => DockerError::Unavailable {
            operation,
            message: format!("{endpoint}: {}", with_causes(&other)),
        },
    }
}

/// What every container of a runner starts from (its engine's too): the
/// pool's network and limits, unprivileged, no mounts, no restart policy.
pub(super) fn base_host_config(spec: &ContainerSpec) -> HostConfig {
    HostConfig {
        network_mode: Some(spec.network.clone()),
        privileged: Some(false),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        memory: spec.memory,
        nano_cpus: spec.nano_cpus,
        pids_limit: spec.pids_limit,
        binds: Some(Vec::new()),
        mounts: Some(Vec::new()),
        ..Default::default()
    }
}

fn exit_from_event(event: EventMessage) -> Option<ContainerExit> {
    let attributes = event.actor?.attributes?;
    let exit_code = attributes.get("exitCode").and_then(|c| c.parse().ok());
    if let Some(runner) = attributes.get(labels::ENGINE_OF) {
        return Some(ContainerExit {
            name: runner.clone(),
            exit_code,
            engine: true,
        });
    }
    let name = attributes
        .get(labels::NAME)
        .or_else(|| attributes.get("name"))?
        .clone();
    Some(ContainerExit {
        name,
        exit_code,
        engine: false,
    })
}

/// `Exited (137) 3 seconds ago` → 137.
fn parse_exit_code(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split(')').next()?.parse().ok()
}

/// `repo/img:tag` → (`repo/img`, `tag`); digests and registry ports kept intact.
fn split_image(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_parse_from_status() {
        assert_eq!(parse_exit_code("Exited (137) 3 seconds ago"), Some(137));
        assert_eq!(
            parse_exit_code("Exited (0) Less than a second ago"),
            Some(0)
        );
        assert_eq!(parse_exit_code("Up 2 minutes"), None);
    }

    #[test]
    fn image_references_split() {
        assert_eq!(
            split_image("ghcr.io/actions/actions-runner:latest"),
            ("ghcr.io/actions/actions-runner", "latest")
        );
        assert_eq!(
            split_image("localhost:5000/img"),
            ("localhost:5000/img", "latest")
        );
        assert_eq!(split_image("img@sha256:abc"), ("img@sha256:abc", ""));
    }

    #[tokio::test(start_paused = true)]
    async fn changes_take_turns_and_the_timeout_starts_with_the_turn() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        // No I/O: bollard connects on the first request.
        let engine = DockerEngine::connect_with_limit(
            Owner::new("test", "http://github.test", None),
            Duration::from_secs(1),
            2,
        )
        .unwrap();
        let in_flight = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let call = || async {
            most.fetch_max(in_flight.fetch_add(1, SeqCst) + 1, SeqCst);
            tokio::time::sleep(Duration::from_millis(400)).await;
            in_flight.fetch_sub(1, SeqCst);
            Ok::<_, BollardError>(())
        };
        // Six calls of 0.4 s, two at a time: the last two wait 0.8 s for a
        // slot, 1.2 s in all, past the 1 s timeout, and still succeed.
        let results = futures::future::join_all(
            (0..6).map(|_| engine.limited(Change::Create, "test", call())),
        )
        .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(most.load(SeqCst), 2);
        // A call that itself outlasts the timeout fails, named.
        let slow = engine
            .limited(Change::Create, "slow call", async {
                tokio::time::sleep(Duration::from_millis(1100)).await;
                Ok::<_, BollardError>(())
            })
            .await;
        assert!(
            matches!(
                slow,
                Err(DockerError::Unavailable {
                    operation: "slow call",
                    ..
                })
            ),
            "{slow:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn starts_and_removals_do_not_queue_behind_creates() {
        use tokio::time::Instant;
        let engine = DockerEngine::connect_with_limit(
            Owner::new("test", "http://github.test", None),
            Duration::from_secs(30),
            1,
        )
        .unwrap();
        let began = Instant::now();
        let step = |change, seconds| {
            engine.limited(change, "step", async move {
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                Ok::<_, BollardError>(began.elapsed())
            })
        };
        let (first, second, start, removal) = tokio::join!(
            step(Change::Create, 5),
            step(Change::Create, 5),
            step(Change::Start, 1),
            step(Change::Remove, 1),
        );
        // The creates take turns; the start and the removal go at once.
        assert_eq!(first.unwrap(), Duration::from_secs(5));
        assert_eq!(second.unwrap(), Duration::from_secs(10));
        assert_eq!(start.unwrap(), Duration::from_secs(1));
        assert_eq!(removal.unwrap(), Duration::from_secs(1));
    }
}
