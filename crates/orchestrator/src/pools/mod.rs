//! Runner pools: the kinds of runner this orchestrator starts, each with its
//! own labels, image, resources, warm pool and limits.
//!
//! Without a pools file the variables (`RUNNER_IMAGE`, `RUNNER_LABELS`,
//! `MIN_IDLE_RUNNERS`, …) define one pool named `default`; with one
//! (`RUNNER_POOLS_FILE`, read by [`file`]), each `[[pool]]` is a kind of
//! runner. A queued job goes to the pool that fits it best ([`routing`]).
//! [`PoolSet`] holds the pools in force and swaps them on reload (SIGHUP or
//! `POST /pools/reload`), keeping the old ones when the new file is bad.

pub mod file;
pub mod routing;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Config, DockerMode, RegistrationMode};
use crate::engine::SidecarSpec;
use crate::scope::Scope;

/// The pool the variables define when there is no pools file, and the pool
/// of runners created before pools existed.
pub const DEFAULT_POOL: &str = "default";

/// One kind of runner, every setting resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Its name: in the API, the metrics and each runner's container labels.
    pub name: String,
    /// The runner's full label set.
    pub labels: Vec<String>,
    /// The image its runners run.
    pub image: String,
    /// The command its runner containers run.
    pub command: Vec<String>,
    /// Extra environment of its runner containers, `KEY=VALUE` (may hold
    /// secrets: never shown by the API).
    pub env: Vec<String>,
    /// How its runners register.
    pub registration: RegistrationMode,
    /// CPU limit per runner.
    pub cpus: Option<f64>,
    /// Memory limit per runner, in bytes.
    pub memory: Option<i64>,
    /// Process limit per runner.
    pub pids_limit: Option<i64>,
    /// Idle runners kept online in its scope.
    pub min_idle: usize,
    /// Runners of this pool alive at once, at most (`MAX_RUNNERS` caps all pools).
    pub max: usize,
    /// How long an idle runner above the warm pool may wait for a job.
    pub idle_timeout: Duration,
    /// How long a runner that is not busy may live.
    pub max_lifetime: Duration,
    /// Where its runners register by default (`repository` or `organization`).
    pub scope: Option<Scope>,
    /// More repositories whose jobs it serves.
    pub allowed_repositories: Vec<Scope>,
    /// The runner group its runners join.
    pub runner_group_id: i64,
    /// The Docker network its runners join.
    pub network: String,
    /// Each runner's own Docker engine (`docker = "sidecar"`); `None`: no Docker.
    pub docker: Option<SidecarSpec>,
}

impl Pool {
    /// The pool today's variables define: what runs without a pools file.
    pub fn from_config(config: &Config) -> Self {
        Self {
            name: DEFAULT_POOL.to_owned(),
            labels: config.base_labels(),
            image: config.runner_image.clone(),
            command: config.runner_command_args(),
            env: config.runner_env.clone(),
            registration: config.runner_registration,
            cpus: config.runner_cpus,
            memory: config.runner_memory,
            pids_limit: config.runner_pids_limit,
            min_idle: config.min_idle_runners as usize,
            max: config.max_runners as usize,
            idle_timeout: config.runner_idle_timeout,
            max_lifetime: config.runner_max_lifetime,
            scope: config.default_scope(),
            allowed_repositories: config.allowed_repositories.clone(),
            runner_group_id: config.runner_group_id,
            network: config.runner_network.clone(),
            docker: config.runner_sidecar(),
        }
    }

    /// `none` or `sidecar`.
    pub fn docker_mode(&self) -> DockerMode {
        if self.docker.is_some() {
            DockerMode::Sidecar
        } else {
            DockerMode::None
        }
    }

    /// The scope a job of repository `full_name` gets its runner in, when
    /// this pool serves that repository: its organization's, or the
    /// repository itself when it is the pool's or one of its allowed ones.
    pub fn scope_for_job(&self, full_name: &str) -> Option<Scope> {
        if let Some(org @ Scope::Organization(_)) = &self.scope
            && org.covers_repository(full_name)
        {
            return Some(org.clone());
        }
        self.scope
            .iter()
            .chain(&self.allowed_repositories)
            .find(|s| matches!(s, Scope::Repository { .. }) && s.covers_repository(full_name))
            .cloned()
    }
}

/// The pools in force, in the file's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Pools {
    pools: Vec<Arc<Pool>>,
}

impl Pools {
    /// Pools in this order. Callers have checked them ([`file::load`]).
    pub fn new(pools: Vec<Pool>) -> Self {
        Self {
            pools: pools.into_iter().map(Arc::new).collect(),
        }
    }

    /// The pools, in the file's order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.pools.iter()
    }

    /// The pool named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The pool a create request that names none gets: the first.
    pub fn first(&self) -> &Arc<Pool> {
        &self.pools[0]
    }

    /// Every image a pool's runners run (what a create may ask for when
    /// `RUNNER_IMAGE_ALLOWLIST` is unset; never an engine's image).
    pub fn images(&self) -> Vec<String> {
        let mut images: Vec<String> = self.pools.iter().map(|p| p.image.clone()).collect();
        images.sort();
        images.dedup();
        images
    }

    /// The images of the pools' runner engines (`docker = "sidecar"`).
    pub fn engine_images(&self) -> Vec<String> {
        let mut images: Vec<String> = self
            .pools
            .iter()
            .filter_map(|p| p.docker.as_ref().map(|d| d.image.clone()))
            .collect();
        images.sort();
        images.dedup();
        images
    }

    /// Every repository a pool names (`repository` or
    /// `allowed_repositories`): the ones polling reads. An organization's
    /// repositories are found through its webhook.
    pub fn served_repositories(&self) -> Vec<Scope> {
        let mut repos: Vec<Scope> = self
            .pools
            .iter()
            .flat_map(|p| p.scope.iter().chain(&p.allowed_repositories))
            .filter(|s| matches!(s, Scope::Repository { .. }))
            .cloned()
            .collect();
        repos.sort();
        repos.dedup();
        repos
    }

    /// The longest `max_lifetime` of any pool.
    pub fn longest_lifetime(&self) -> Duration {
        self.pools
            .iter()
            .map(|p| p.max_lifetime)
            .max()
            .unwrap_or_default()
    }

    /// Every network a pool's runners join.
    pub fn networks(&self) -> Vec<String> {
        let mut networks: Vec<String> = self.pools.iter().map(|p| p.network.clone()).collect();
        networks.sort();
        networks.dedup();
        networks
    }
}

/// What the last reload of the pools file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadStatus {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Why the file was refused (the pools in force were kept), or `None`
    /// when it was taken.
    pub error: Option<String>,
}

/// The pools in force, swapped whole on reload.
#[derive(Debug)]
pub struct PoolSet {
    current: RwLock<Arc<Pools>>,
    /// `RUNNER_POOLS_FILE`, when pools come from a file.
    file: Option<PathBuf>,
    last_reload: RwLock<Option<ReloadStatus>>,
}

impl PoolSet {
    /// The pools of `config`: from its pools file, or the one `default` pool.
    ///
    /// # Errors
    /// The file's first problem, naming the pool and the key.
    pub fn load(config: &Config) -> Result<Self, String> {
        let pools = match config.pools_file() {
            Some(path) => file::load(path, config)?,
            None => Pools::new(vec![Pool::from_config(config)]),
        };
        Ok(Self {
            current: RwLock::new(Arc::new(pools)),
            file: config.pools_file().map(std::path::Path::to_path_buf),
            last_reload: RwLock::new(None),
        })
    }

    /// The pools in force now.
    pub fn current(&self) -> Arc<Pools> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The pools file, when there is one.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// Reads the pools file again, for a reload: the pools it defines,
    /// not yet in force ([`Self::put`] puts them in force, [`Self::refuse`]
    /// records why they were not).
    ///
    /// # Errors
    /// No pools file is configured, or the file's first problem.
    pub fn read_file(&self, config: &Config) -> Result<Pools, String> {
        let Some(path) = &self.file else {
            return Err(
                "no pools file is configured (RUNNER_POOLS_FILE): the variables define the one pool"
                    .to_owned(),
            );
        };
        file::load(path, config)
    }

    /// Puts `pools` in force.
    pub fn put(&self, pools: Pools) -> Arc<Pools> {
        let pools = Arc::new(pools);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = pools.clone();
        self.record(None);
        pools
    }

    /// Records that a reload was refused, and why; the pools in force stay.
    pub fn refuse(&self, error: &str) {
        self.record(Some(error.to_owned()));
    }

    fn record(&self, error: Option<String>) {
        *self
            .last_reload
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ReloadStatus {
            at: Utc::now(),
            error,
        });
    }

    /// What the last reload did, if one happened.
    pub fn last_reload(&self) -> Option<ReloadStatus> {
        self.last_reload
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn a_pool_serves_its_organization_and_its_repositories() {
        let config = Config::try_parse_from([
            "o",
            "--github-token",
            "t",
            "--github-org",
            "acme",
            "--allowed-repositories",
            "other/x",
            // Compose passes an unset variable as empty: no pools file.
            "--runner-pools-file",
            "",
        ])
        .unwrap();
        let set = PoolSet::load(&config).unwrap();
        let pools = set.current();
        let pool = pools.first();
        assert_eq!(
            pool.scope_for_job("acme/app"),
            Some(Scope::organization("acme").unwrap())
        );
        assert_eq!(
            pool.scope_for_job("other/x"),
            Some(Scope::repository("other/x").unwrap())
        );
        assert_eq!(pool.scope_for_job("other/y"), None);
        assert_eq!(
            pools.served_repositories(),
            [Scope::repository("other/x").unwrap()]
        );
    }

    #[test]
    fn without_a_file_the_variables_make_the_default_pool() {
        let config = Config::try_parse_from([
            "o",
            "--github-token",
            "t",
            "--github-org",
            "acme",
            "--runner-labels",
            "docker",
            "--min-idle-runners",
            "2",
            "--runner-memory",
            "1g",
        ])
        .unwrap();
        let set = PoolSet::load(&config).unwrap();
        let pools = set.current();
        let pool = pools.first();
        assert_eq!(pool.name, DEFAULT_POOL);
        assert_eq!(pool.labels, ["self-hosted", "linux", "x64", "docker"]);
        assert_eq!((pool.min_idle, pool.max), (2, 10));
        assert_eq!(pool.memory, Some(1 << 30));
        assert_eq!(
            pool.scope_for_job("acme/app"),
            Some(Scope::organization("acme").unwrap())
        );
        assert_eq!(pool.scope_for_job("other/app"), None);
        assert!(
            set.read_file(&config)
                .unwrap_err()
                .contains("RUNNER_POOLS_FILE")
        );
        assert_eq!(set.file(), None);
    }
}
