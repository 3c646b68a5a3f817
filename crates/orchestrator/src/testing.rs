//! In-memory stand-ins for the container engine and GitHub, for unit tests
//! of the decisions built on them (the reconcile pass). Integration tests
//! use the real Docker engine and the GitHub simulator instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use crate::config::Config;
use crate::engine::{
    Claim, ContainerEngine, ContainerExit, ContainerSpec, DockerError, EngineVersion, Owner,
    RunnerContainer, RunnerLabels, SidecarLeftover,
};
use crate::github::client::DeleteOutcome;
use crate::github::rate_limit::RateLimitSnapshot;
use crate::github::{
    GitHub, GitHubError, GitHubRunner, JitConfig, Listing, PageCache, RegistrationToken,
    WorkflowJob, WorkflowRun,
};
use crate::runners::Fleet;
use crate::scope::Scope;

/// The repository every fake runner is registered to.
pub(crate) const REPO: &str = "octo/app";

/// An engine that holds containers in a map.
#[derive(Debug)]
pub(crate) struct FakeEngine {
    owner: Owner,
    /// By name.
    pub(crate) containers: Arc<Mutex<BTreeMap<String, RunnerContainer>>>,
    /// Runners' Docker engines: runner name → running.
    pub(crate) sidecars: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl FakeEngine {
    fn new() -> Self {
        Self {
            owner: Owner::new("test", "http://github.test", None),
            containers: Arc::default(),
            sidecars: Arc::default(),
        }
    }

    fn get(&self, name: &str) -> Option<RunnerContainer> {
        self.containers.lock().unwrap().get(name).cloned()
    }
}

#[async_trait]
impl ContainerEngine for FakeEngine {
    fn owner(&self) -> &Owner {
        &self.owner
    }
    async fn version(&self) -> Result<EngineVersion, DockerError> {
        Ok(EngineVersion {
            version: "fake".into(),
            api_version: "1.41".into(),
        })
    }
    async fn ensure_network(&self, _name: &str) -> Result<(), DockerError> {
        Ok(())
    }
    async fn container_networks(&self, _id: &str) -> Result<Vec<String>, DockerError> {
        Ok(Vec::new())
    }
    async fn create(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let record = RunnerLabels::from_docker(&spec.labels)
            .ok_or_else(|| DockerError::Conflict("labels".into()))?;
        if spec.sidecar.is_some() {
            self.sidecars
                .lock()
                .unwrap()
                .insert(spec.name.clone(), true);
        }
        let container = RunnerContainer {
            id: format!("id-{}", spec.name),
            record,
            image: spec.image.clone(),
            running: false,
            created_only: true,
            exit_code: None,
        };
        self.containers
            .lock()
            .unwrap()
            .insert(spec.name.clone(), container.clone());
        Ok(container.id)
    }
    async fn start(&self, name: &str) -> Result<(), DockerError> {
        if let Some(c) = self.containers.lock().unwrap().get_mut(name) {
            c.running = true;
            c.created_only = false;
        }
        Ok(())
    }
    async fn stop(&self, _name: &str, _grace: Duration) -> Result<(), DockerError> {
        Ok(())
    }
    async fn remove(&self, name: &str) -> Result<(), DockerError> {
        self.containers.lock().unwrap().remove(name);
        Ok(())
    }
    async fn remove_sidecar(&self, runner: &str) -> Result<(), DockerError> {
        self.sidecars.lock().unwrap().remove(runner);
        Ok(())
    }
    async fn sidecars(&self) -> Result<Vec<SidecarLeftover>, DockerError> {
        Ok(self
            .sidecars
            .lock()
            .unwrap()
            .iter()
            .map(|(runner, running)| SidecarLeftover {
                runner: runner.clone(),
                running: *running,
            })
            .collect())
    }
    async fn list_runners(&self) -> Result<Vec<RunnerContainer>, DockerError> {
        Ok(self.containers.lock().unwrap().values().cloned().collect())
    }
    async fn foreign_runners(&self) -> Result<Vec<String>, DockerError> {
        Ok(Vec::new())
    }
    async fn inspect_runner(&self, name: &str) -> Result<Option<RunnerContainer>, DockerError> {
        Ok(self.get(name))
    }
    fn exits(&self) -> BoxStream<'static, Result<ContainerExit, DockerError>> {
        Box::pin(futures::stream::pending())
    }
    async fn image_digest(&self, image: &str) -> Result<Option<String>, DockerError> {
        Ok(Some(image.to_owned()))
    }
    async fn pull(&self, _image: &str, _limit: Duration) -> Result<(), DockerError> {
        Ok(())
    }
    async fn claim_lease(&self) -> Result<Claim, DockerError> {
        Ok(Claim::Take)
    }
    async fn release_lease(&self) -> Result<(), DockerError> {
        Ok(())
    }
}

/// GitHub with one repository's runners in a map; listings can be made to fail.
#[derive(Debug, Default)]
pub(crate) struct FakeGitHub {
    /// By GitHub id.
    pub(crate) runners: Arc<Mutex<BTreeMap<i64, GitHubRunner>>>,
    /// Listings answer 502 while set.
    pub(crate) listings_fail: Arc<Mutex<bool>>,
}

impl FakeGitHub {
    fn outage() -> GitHubError {
        GitHubError::Status {
            status: 502,
            message: "fake outage".into(),
            attempts: 1,
        }
    }
}

#[async_trait]
impl GitHub for FakeGitHub {
    fn base_url(&self) -> &str {
        "http://github.test"
    }
    fn rate_limit(&self) -> RateLimitSnapshot {
        RateLimitSnapshot::default()
    }
    fn paused_for(&self) -> Option<Duration> {
        None
    }
    fn last_error(&self) -> Option<String> {
        None
    }
    async fn generate_jit_config(
        &self,
        _scope: &Scope,
        name: &str,
        _labels: &[String],
        _group: i64,
    ) -> Result<JitConfig, GitHubError> {
        let mut runners = self.runners.lock().unwrap();
        let id = runners.keys().last().map_or(1, |last| last + 1);
        runners.insert(id, registration(id, name, "offline", false));
        Ok(JitConfig {
            runner_id: id,
            encoded: "jit".to_owned().into(),
        })
    }
    async fn registration_token(&self, _scope: &Scope) -> Result<RegistrationToken, GitHubError> {
        Err(Self::outage())
    }
    async fn list_runners(&self, _scope: &Scope) -> Result<Vec<GitHubRunner>, GitHubError> {
        if *self.listings_fail.lock().unwrap() {
            return Err(Self::outage());
        }
        Ok(self.runners.lock().unwrap().values().cloned().collect())
    }
    async fn find_runner_by_name(
        &self,
        _scope: &Scope,
        name: &str,
    ) -> Result<Option<GitHubRunner>, GitHubError> {
        let runners = self.runners.lock().unwrap();
        Ok(runners.values().find(|r| r.name == name).cloned())
    }
    async fn get_runner(
        &self,
        _scope: &Scope,
        id: i64,
    ) -> Result<Option<GitHubRunner>, GitHubError> {
        Ok(self.runners.lock().unwrap().get(&id).cloned())
    }
    async fn delete_runner(&self, _scope: &Scope, id: i64) -> Result<DeleteOutcome, GitHubError> {
        let mut runners = self.runners.lock().unwrap();
        Ok(match runners.get(&id) {
            Some(r) if r.busy => DeleteOutcome::Busy,
            Some(_) => {
                runners.remove(&id);
                DeleteOutcome::Deleted
            }
            None => DeleteOutcome::AlreadyGone,
        })
    }
    async fn list_runs(
        &self,
        _repo: &Scope,
        _status: &str,
        _cache: &mut PageCache,
    ) -> Result<Listing<WorkflowRun>, GitHubError> {
        Err(Self::outage())
    }
    async fn list_jobs(
        &self,
        _repo: &Scope,
        _run_id: i64,
        _cache: &mut PageCache,
    ) -> Result<Listing<WorkflowJob>, GitHubError> {
        Err(Self::outage())
    }
    async fn get_job(&self, _repo: &Scope, _id: i64) -> Result<Option<WorkflowJob>, GitHubError> {
        Ok(None)
    }
    async fn check_rate_limit(&self) -> Result<(), GitHubError> {
        Ok(())
    }
}

/// A registration as GitHub lists it.
pub(crate) fn registration(id: i64, name: &str, status: &str, busy: bool) -> GitHubRunner {
    GitHubRunner {
        id,
        name: name.to_owned(),
        status: status.to_owned(),
        busy,
        labels: Vec::new(),
    }
}

/// A runner container of ours, registered to [`REPO`] as `github_id`,
/// created at `created_at`; `exit_code` makes it exited.
pub(crate) fn container(
    name: &str,
    github_id: i64,
    created_at: DateTime<Utc>,
    exit_code: Option<i64>,
) -> RunnerContainer {
    RunnerContainer {
        id: format!("id-{name}"),
        record: RunnerLabels {
            name: name.to_owned(),
            scope: Scope::repository(REPO).unwrap(),
            labels: vec!["self-hosted".into()],
            created_at,
            github_runner_id: Some(github_id),
            for_job: None,
            autoscaled: false,
            pool: "default".into(),
            docker: false,
        },
        image: "runner:test".into(),
        running: exit_code.is_none(),
        created_only: false,
        exit_code,
    }
}

/// A fleet on the fakes, configured for [`REPO`], with handles on both.
pub(crate) fn fleet() -> (Arc<Fleet>, FakeHandles) {
    use clap::Parser;
    let config = Config::try_parse_from([
        "gha-orchestrator",
        "--github-repository",
        REPO,
        "--runner-image",
        "runner:test",
    ])
    .expect("a valid configuration");
    let engine = FakeEngine::new();
    let github = FakeGitHub::default();
    let handles = FakeHandles {
        containers: engine.containers.clone(),
        registrations: github.runners.clone(),
        listings_fail: github.listings_fail.clone(),
        sidecars: engine.sidecars.clone(),
    };
    let pools = crate::pools::PoolSet::load(&config).expect("the default pool");
    let fleet = Fleet::new(Arc::new(config), pools, Box::new(github), Box::new(engine));
    (Arc::new(fleet), handles)
}

/// What a test sees of the fakes behind a fleet.
#[derive(Debug, Clone)]
pub(crate) struct FakeHandles {
    /// The engine's containers, by name.
    pub(crate) containers: Arc<Mutex<BTreeMap<String, RunnerContainer>>>,
    /// GitHub's registrations, by id.
    pub(crate) registrations: Arc<Mutex<BTreeMap<i64, GitHubRunner>>>,
    /// Make GitHub's listings fail.
    pub(crate) listings_fail: Arc<Mutex<bool>>,
    /// Runners' Docker engines: runner name → running.
    pub(crate) sidecars: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl FakeHandles {
    /// Puts a container in the engine.
    pub(crate) fn add_container(&self, container: RunnerContainer) {
        self.containers
            .lock()
            .unwrap()
            .insert(container.record.name.clone(), container);
    }

    /// Puts a runner's Docker engine in the engine, running or stopped.
    pub(crate) fn add_sidecar(&self, runner: &str, running: bool) {
        self.sidecars
            .lock()
            .unwrap()
            .insert(runner.to_owned(), running);
    }

    /// Puts a registration on GitHub.
    pub(crate) fn add_registration(&self, runner: GitHubRunner) {
        self.registrations.lock().unwrap().insert(runner.id, runner);
    }

    /// The names of the engine's containers.
    pub(crate) fn container_names(&self) -> Vec<String> {
        self.containers.lock().unwrap().keys().cloned().collect()
    }

    /// The ids of GitHub's registrations.
    pub(crate) fn registration_ids(&self) -> Vec<i64> {
        self.registrations.lock().unwrap().keys().copied().collect()
    }
}
