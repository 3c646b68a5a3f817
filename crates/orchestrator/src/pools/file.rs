//! The pools file (`RUNNER_POOLS_FILE`): TOML, a `[defaults]` table and one
//! `[[pool]]` table per kind of runner.
//!
//! ```toml
//! [defaults]
//! organization = "acme"
//! idle_timeout = 300
//!
//! [[pool]]
//! name = "small"
//! labels = ["self-hosted", "linux", "x64", "small"]
//! cpus = 1
//! memory = "2g"
//! min_idle = 1
//! max = 10
//! ```
//!
//! A key a pool leaves out comes from `[defaults]`, then from the variable
//! of the same setting (`RUNNER_IMAGE`, `RUNNER_CPUS`, …); `name` and
//! `labels` have no variable, and `min_idle` is 0 unless the file says
//! otherwise. `repository`/`organization` count as one setting: a pool that
//! gives either takes none from `[defaults]`. Every problem is reported
//! with the pool's name and the key, and the whole file is refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{Pool, Pools};
use crate::config::{
    Config, DockerMode, MAX_SECONDS, RegistrationMode, check_runner_env, parse_command,
    parse_memory,
};
use crate::engine::SidecarSpec;
use crate::scope::{Scope, validate_label};

/// GitHub's cap on labels per runner.
const MAX_LABELS: usize = 100;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolsFile {
    #[serde(default)]
    defaults: Option<toml::Table>,
    #[serde(default)]
    pool: Vec<toml::Table>,
}

/// One `[[pool]]` (or `[defaults]`) table as written: every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolTable {
    name: Option<String>,
    labels: Option<Vec<String>>,
    image: Option<String>,
    command: Option<CommandSetting>,
    env: Option<BTreeMap<String, String>>,
    registration: Option<String>,
    cpus: Option<f64>,
    memory: Option<MemorySetting>,
    pids_limit: Option<i64>,
    min_idle: Option<u32>,
    max: Option<u32>,
    idle_timeout: Option<u64>,
    max_lifetime: Option<u64>,
    repository: Option<String>,
    organization: Option<String>,
    allowed_repositories: Option<Vec<String>>,
    runner_group_id: Option<i64>,
    network: Option<String>,
    docker: Option<String>,
    docker_image: Option<String>,
    docker_privileged: Option<bool>,
    docker_registry_mirror: Option<String>,
}

/// `command = "run.sh --flag"` (split as a shell would) or `["run.sh", "--flag"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum CommandSetting {
    Line(String),
    Args(Vec<String>),
}

/// `memory = "2g"` or a number of bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum MemorySetting {
    Size(String),
    Bytes(i64),
}

/// Reads and checks the pools file at `path`.
///
/// # Errors
/// The first problem, as `RUNNER_POOLS_FILE <path>: pool "<name>": <key>: <what>`.
pub fn load(path: &Path, config: &Config) -> Result<Pools, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("RUNNER_POOLS_FILE: cannot read {}: {e}", path.display()))?;
    parse(&text, config).map_err(|e| format!("RUNNER_POOLS_FILE {}: {e}", path.display()))
}

/// Parses and checks a pools file's text.
///
/// # Errors
/// The first problem, naming the pool and the key.
pub fn parse(text: &str, config: &Config) -> Result<Pools, String> {
    let file: PoolsFile = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
    let defaults = match file.defaults {
        Some(table) => table_of(table).map_err(|e| format!("[defaults]: {e}"))?,
        None => PoolTable::default(),
    };
    if defaults.name.is_some() {
        return Err("[defaults]: name: each pool names itself".to_owned());
    }
    if file.pool.is_empty() {
        return Err("no [[pool]] table: a pools file defines at least one pool".to_owned());
    }
    let mut pools: Vec<Pool> = Vec::with_capacity(file.pool.len());
    for (index, table) in file.pool.into_iter().enumerate() {
        let label = pool_label(&table, index);
        let table = table_of(table).map_err(|e| format!("{label}: {e}"))?;
        let pool = resolve(&table, &defaults, config).map_err(|e| format!("{label}: {e}"))?;
        if pools.iter().any(|p| p.name == pool.name) {
            return Err(format!("{label}: name: another pool has this name"));
        }
        if let Some(twin) = pools.iter().find(|p| same_labels(&p.labels, &pool.labels)) {
            return Err(format!(
                "{label}: labels: pool {:?} has the same label set, so no job could tell them apart",
                twin.name
            ));
        }
        pools.push(pool);
    }
    Ok(Pools::new(pools))
}

/// A TOML error on one line: its message and where it is.
fn syntax_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

/// How a pool is named in errors: by its name when it has a readable one,
/// else by its place in the file.
fn pool_label(table: &toml::Table, index: usize) -> String {
    match table.get("name").and_then(toml::Value::as_str) {
        Some(name) => format!("pool {name:?}"),
        None => format!("[[pool]] number {}", index + 1),
    }
}

/// A table's keys, with the key named in a type error.
fn table_of(table: toml::Table) -> Result<PoolTable, String> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner().message().to_owned();
        if key == "." {
            inner
        } else {
            format!("{key}: {inner}")
        }
    })
}

/// Two label sets equal as GitHub compares labels (case-insensitive, any order).
fn same_labels(a: &[String], b: &[String]) -> bool {
    let set = |labels: &[String]| {
        let mut set: Vec<String> = labels.iter().map(|l| l.to_ascii_lowercase()).collect();
        set.sort();
        set.dedup();
        set
    };
    set(a) == set(b)
}

/// One pool's settings: the table's, else the defaults', else the variables'.
fn resolve(table: &PoolTable, defaults: &PoolTable, config: &Config) -> Result<Pool, String> {
    let base = Pool::from_config(config);
    macro_rules! pick {
        ($key:ident) => {
            table.$key.clone().or_else(|| defaults.$key.clone())
        };
    }
    let name = table.name.clone().ok_or("name: missing")?;
    check_pool_name(&name).map_err(|e| format!("name: {e}"))?;

    let labels = pick!(labels).ok_or("labels: missing (the runner's full label set)")?;
    let labels = check_labels(labels).map_err(|e| format!("labels: {e}"))?;

    let image = pick!(image).unwrap_or(base.image);
    if image.trim().is_empty() {
        return Err("image: empty".to_owned());
    }
    if !config.runner_image_allowlist.is_empty() && !config.allowed_images().contains(&image) {
        return Err(format!("image: {image:?} is not in RUNNER_IMAGE_ALLOWLIST"));
    }
    let command = match pick!(command) {
        None => base.command,
        Some(CommandSetting::Line(line)) => {
            parse_command(&line).map_err(|e| format!("command: {e}"))?.0
        }
        Some(CommandSetting::Args(args)) if args.is_empty() => {
            return Err("command: must name a command".to_owned());
        }
        Some(CommandSetting::Args(args)) => args,
    };
    let env = match pick!(env) {
        None => base.env,
        Some(map) => map.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
    };
    check_runner_env(&env).map_err(|e| format!("env: {e}"))?;
    let registration = match pick!(registration).as_deref() {
        None => base.registration,
        Some("jit") => RegistrationMode::Jit,
        Some("token") => RegistrationMode::Token,
        Some(other) => {
            return Err(format!(
                "registration: {other:?} is not \"jit\" or \"token\""
            ));
        }
    };
    let cpus = pick!(cpus).or(base.cpus);
    if let Some(cpus) = cpus
        && !(cpus > 0.0 && cpus.is_finite())
    {
        return Err("cpus: must be a positive number".to_owned());
    }
    let memory = match pick!(memory) {
        None => base.memory,
        Some(MemorySetting::Size(text)) => {
            Some(parse_memory(&text).map_err(|e| format!("memory: {e}"))?)
        }
        Some(MemorySetting::Bytes(bytes)) => {
            Some(parse_memory(&bytes.to_string()).map_err(|e| format!("memory: {e}"))?)
        }
    };
    let pids_limit = pick!(pids_limit).or(base.pids_limit);
    if pids_limit.is_some_and(|p| p < 1) {
        return Err("pids_limit: must be at least 1".to_owned());
    }
    let max = pick!(max).map_or(base.max, |m| m as usize);
    if max == 0 {
        return Err("max: must be at least 1".to_owned());
    }
    let min_idle = pick!(min_idle).unwrap_or(0) as usize;
    if min_idle > max {
        return Err(format!(
            "min_idle: {min_idle} is above max ({max}): the warm pool could never be filled"
        ));
    }
    let idle_timeout = seconds("idle_timeout", pick!(idle_timeout))?.unwrap_or(base.idle_timeout);
    let max_lifetime = seconds("max_lifetime", pick!(max_lifetime))?.unwrap_or(base.max_lifetime);

    let (repository, organization) = if table.repository.is_some() || table.organization.is_some() {
        (table.repository.clone(), table.organization.clone())
    } else if defaults.repository.is_some() || defaults.organization.is_some() {
        (defaults.repository.clone(), defaults.organization.clone())
    } else {
        (None, None)
    };
    let scope = match (repository, organization) {
        (Some(_), Some(_)) => {
            return Err("repository, organization: give one, not both".to_owned());
        }
        (Some(repo), None) => {
            Some(Scope::repository(repo.trim()).map_err(|e| format!("repository: {e}"))?)
        }
        (None, Some(org)) => {
            Some(Scope::organization(org.trim()).map_err(|e| format!("organization: {e}"))?)
        }
        (None, None) => base.scope,
    };
    let allowed_repositories = match pick!(allowed_repositories) {
        None => base.allowed_repositories,
        Some(repos) => repos
            .iter()
            .map(|r| Scope::repository(r.trim()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("allowed_repositories: {e}"))?,
    };
    if min_idle > 0 && scope.is_none() {
        return Err(
            "min_idle: a warm pool needs repository or organization (here, in [defaults], or GITHUB_REPOSITORY/GITHUB_ORG): it registers there"
                .to_owned(),
        );
    }
    let runner_group_id = pick!(runner_group_id).unwrap_or(base.runner_group_id);
    if runner_group_id < 1 {
        return Err("runner_group_id: must be a positive integer".to_owned());
    }
    let network = pick!(network).unwrap_or(base.network);
    check_network(&network).map_err(|e| format!("network: {e}"))?;
    let docker = sidecar(table, defaults, config)?;
    Ok(Pool {
        name,
        labels,
        image,
        command,
        env,
        registration,
        cpus,
        memory,
        pids_limit,
        min_idle,
        max,
        idle_timeout,
        max_lifetime,
        scope,
        allowed_repositories,
        runner_group_id,
        network,
        docker,
    })
}

/// The pool's Docker engine: `docker` (`"none"` or `"sidecar"`) and, with
/// `"sidecar"`, its image, rights and registry mirror; each key falls back
/// to `[defaults]`, then to its `RUNNER_DOCKER*` variable.
fn sidecar(
    table: &PoolTable,
    defaults: &PoolTable,
    config: &Config,
) -> Result<Option<SidecarSpec>, String> {
    macro_rules! pick {
        ($key:ident) => {
            table.$key.clone().or_else(|| defaults.$key.clone())
        };
    }
    let mode = match pick!(docker).as_deref() {
        None => config.runner_docker,
        Some("none") => DockerMode::None,
        Some("sidecar") => DockerMode::Sidecar,
        Some(other) => {
            return Err(format!("docker: {other:?} is not \"none\" or \"sidecar\""));
        }
    };
    if mode == DockerMode::None {
        return Ok(None);
    }
    let image = pick!(docker_image).unwrap_or_else(|| config.runner_docker_image.clone());
    if image.trim().is_empty() {
        return Err("docker_image: empty".to_owned());
    }
    let registry_mirror = match pick!(docker_registry_mirror) {
        None => config.runner_docker_registry_mirror.clone(),
        Some(url) => Some(
            crate::config::parse_registry_mirror(&url)
                .map_err(|e| format!("docker_registry_mirror: {e}"))?,
        ),
    };
    Ok(Some(SidecarSpec {
        image,
        privileged: pick!(docker_privileged).unwrap_or(config.runner_docker_privileged),
        registry_mirror,
    }))
}

/// A whole number of seconds, at least 1.
fn seconds(key: &str, value: Option<u64>) -> Result<Option<Duration>, String> {
    match value {
        None => Ok(None),
        Some(0) => Err(format!("{key}: must be at least 1 second")),
        Some(s) if s > MAX_SECONDS => Err(format!("{key}: {s} s is more than ten years")),
        Some(s) => Ok(Some(Duration::from_secs(s))),
    }
}

/// Pool names go into container labels, metrics and URLs: keep them plain.
fn check_pool_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 40 {
        return Err("must be 1 to 40 characters".to_owned());
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "{name:?} may hold only lowercase letters, digits, '-' and '_', and starts with a letter or digit"
        ));
    }
    Ok(())
}

/// The labels, each valid, no duplicates, at most GitHub's 100.
fn check_labels(labels: Vec<String>) -> Result<Vec<String>, String> {
    let mut kept: Vec<String> = Vec::with_capacity(labels.len());
    for label in labels {
        let label = label.trim().to_owned();
        validate_label(&label)?;
        if !kept.iter().any(|l| l.eq_ignore_ascii_case(&label)) {
            kept.push(label);
        }
    }
    if kept.is_empty() {
        return Err("empty: a runner needs at least one label".to_owned());
    }
    if kept.len() > MAX_LABELS {
        return Err(format!(
            "{} labels, GitHub takes at most {MAX_LABELS}",
            kept.len()
        ));
    }
    Ok(kept)
}

/// Docker's rule for network names.
fn check_network(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a Docker network name"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config(extra: &[&str]) -> Config {
        let mut args = vec!["o", "--github-token", "t", "--github-org", "acme"];
        args.extend_from_slice(extra);
        Config::try_parse_from(args).unwrap()
    }

    const THREE: &str = r#"
[defaults]
idle_timeout = 120
memory = "1g"

[[pool]]
name = "small"
labels = ["self-hosted", "linux", "x64", "small"]
min_idle = 1
max = 5

[[pool]]
name = "large"
labels = ["self-hosted", "linux", "x64", "large"]
cpus = 4
memory = "8g"
max = 2
command = ["/home/runner/run.sh", "--once"]
env = { BUILD_CACHE = "/cache" }

[[pool]]
name = "other-image"
labels = ["self-hosted", "linux", "x64", "node"]
image = "runner:node"
repository = "acme/web"
allowed_repositories = ["friends/site"]
registration = "token"
"#;

    #[test]
    fn docker_keys_take_defaults_then_variables() {
        let text = r#"
[defaults]
docker_registry_mirror = "https://mirror.example.com"

[[pool]]
name = "plain"
labels = ["self-hosted", "plain"]

[[pool]]
name = "builds"
labels = ["self-hosted", "builds"]
docker = "sidecar"
docker_privileged = false

[[pool]]
name = "own-engine"
labels = ["self-hosted", "own"]
docker = "sidecar"
docker_image = "engine:test"
"#;
        let pools = parse(text, &config(&["--runner-docker-image", "engine:var"])).unwrap();
        let [plain, builds, own] = [0, 1, 2].map(|i| Pool::clone(pools.iter().nth(i).unwrap()));
        assert_eq!(plain.docker, None);
        assert_eq!(
            builds.docker,
            Some(SidecarSpec {
                image: "engine:var".into(),
                privileged: false,
                registry_mirror: Some("https://mirror.example.com".into()),
            })
        );
        let own = own.docker.unwrap();
        assert_eq!((own.image.as_str(), own.privileged), ("engine:test", true));
        assert_eq!(pools.engine_images(), ["engine:test", "engine:var"]);
        // An engine's image is never one a create may ask a runner to run.
        assert_eq!(pools.images(), ["ghcr.io/actions/actions-runner:latest"]);

        // RUNNER_DOCKER=sidecar makes it every pool's default.
        let pools = parse(text, &config(&["--runner-docker", "sidecar"])).unwrap();
        assert!(pools.iter().all(|p| p.docker.is_some()));
    }

    #[test]
    fn three_pools_take_defaults_then_variables() {
        let pools = parse(THREE, &config(&["--runner-cpus", "0.5"])).unwrap();
        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["small", "large", "other-image"]);
        let small = pools.get("small").unwrap();
        assert_eq!(small.idle_timeout, Duration::from_secs(120));
        assert_eq!(small.memory, Some(1 << 30));
        assert_eq!(small.cpus, Some(0.5), "from RUNNER_CPUS");
        assert_eq!((small.min_idle, small.max), (1, 5));
        assert_eq!(small.scope, Some(Scope::organization("acme").unwrap()));
        let large = pools.get("large").unwrap();
        assert_eq!((large.cpus, large.memory), (Some(4.0), Some(8 << 30)));
        assert_eq!(large.command, ["/home/runner/run.sh", "--once"]);
        assert_eq!(large.env, ["BUILD_CACHE=/cache"]);
        assert_eq!(large.min_idle, 0);
        let other = pools.get("other-image").unwrap();
        assert_eq!(other.image, "runner:node");
        assert_eq!(other.registration, RegistrationMode::Token);
        assert_eq!(other.max, 10, "MAX_RUNNERS");
        assert_eq!(other.scope_for_job("acme/web"), other.scope);
        assert!(other.scope_for_job("friends/site").is_some());
        assert_eq!(other.scope_for_job("acme/app"), None);
        assert_eq!(
            pools.images(),
            ["ghcr.io/actions/actions-runner:latest", "runner:node"]
        );
    }

    /// The error for `text`, which must name `pool` and `key`.
    fn refused(text: &str, config: &Config, pool: &str, key: &str) {
        let error = parse(text, config).unwrap_err();
        assert!(error.contains(pool) && error.contains(key), "{error}");
    }

    #[test]
    fn every_problem_names_the_pool_and_the_key() {
        let c = config(&[]);
        let pool = |body: &str| format!("[[pool]]\nname = \"p\"\nlabels = [\"a\"]\n{body}\n");
        refused(&pool("max = 0"), &c, "\"p\"", "max");
        refused(&pool("max = 2\nmin_idle = 3"), &c, "\"p\"", "min_idle");
        refused(&pool("cpus = -1"), &c, "\"p\"", "cpus");
        refused(&pool("memory = \"lots\""), &c, "\"p\"", "memory");
        refused(&pool("max = \"ten\""), &c, "\"p\"", "max");
        refused(&pool("cpu = 1"), &c, "\"p\"", "cpu");
        refused(&pool("registration = \"pat\""), &c, "\"p\"", "registration");
        refused(&pool("idle_timeout = 0"), &c, "\"p\"", "idle_timeout");
        refused(&pool("repository = \"nope\""), &c, "\"p\"", "repository");
        refused(&pool("env = { GITHUB_TOKEN = \"x\" }"), &c, "\"p\"", "env");
        refused(&pool("network = \"bad name\""), &c, "\"p\"", "network");
        refused(&pool("docker = \"host\""), &c, "\"p\"", "docker");
        refused(
            &pool("docker = \"sidecar\"\ndocker_registry_mirror = \"mirror:5000\""),
            &c,
            "\"p\"",
            "docker_registry_mirror",
        );
        refused(
            &pool("docker_privileged = \"no\""),
            &c,
            "\"p\"",
            "docker_privileged",
        );
        refused(&pool("command = \"sh -c 'open\""), &c, "\"p\"", "command");
        refused(&pool("runner_group_id = 0"), &c, "\"p\"", "runner_group_id");
        refused(
            "[[pool]]\nname = \"Big Pool\"\nlabels = [\"a\"]",
            &c,
            "Big Pool",
            "name",
        );
        refused("[[pool]]\nname = \"p\"", &c, "\"p\"", "labels");
        refused("[[pool]]\nlabels = [\"a\"]", &c, "number 1", "name");
        refused(
            "[[pool]]\nname = \"p\"\nlabels = [\"a,b\"]",
            &c,
            "\"p\"",
            "labels",
        );
        let no_scope = Config::try_parse_from(["o", "--github-token", "t"]).unwrap();
        refused(&pool("min_idle = 1"), &no_scope, "\"p\"", "min_idle");
    }

    #[test]
    fn twins_unknown_images_and_empty_files_are_refused() {
        let c = config(&[]);
        refused(
            "[[pool]]\nname = \"a\"\nlabels = [\"x\", \"y\"]\n[[pool]]\nname = \"b\"\nlabels = [\"Y\", \"x\"]",
            &c,
            "\"b\"",
            "same label set",
        );
        refused(
            "[[pool]]\nname = \"a\"\nlabels = [\"x\"]\n[[pool]]\nname = \"a\"\nlabels = [\"y\"]",
            &c,
            "\"a\"",
            "name",
        );
        let allow = config(&["--runner-image-allowlist", "runner:ok"]);
        refused(
            "[[pool]]\nname = \"a\"\nlabels = [\"x\"]\nimage = \"evil:latest\"",
            &allow,
            "\"a\"",
            "RUNNER_IMAGE_ALLOWLIST",
        );
        assert!(parse("", &c).unwrap_err().contains("[[pool]]"));
        assert!(parse("[pool", &c).is_err());
        assert!(parse("[other]\n", &c).unwrap_err().contains("other"));
        refused(
            "[defaults]\nname = \"x\"\n[[pool]]\nname = \"a\"\nlabels = [\"x\"]",
            &c,
            "[defaults]",
            "name",
        );
    }

    #[test]
    fn the_shipped_example_is_a_valid_pools_file() {
        let text = include_str!("../../../../pools.example.toml");
        let pools = parse(text, &config(&[])).unwrap();
        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["small", "large", "node"]);
        let routed = |labels: &[&str]| {
            let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
            super::super::routing::route(&pools, "acme/web", &labels)
                .map(|(pool, _)| pool.name.clone())
                .ok()
        };
        // What the example's comment says.
        assert_eq!(routed(&["self-hosted", "linux"]).as_deref(), Some("small"));
        assert_eq!(routed(&["self-hosted", "large"]).as_deref(), Some("large"));
        assert_eq!(routed(&["self-hosted", "node"]).as_deref(), Some("node"));
        assert_eq!(routed(&["self-hosted", "gpu"]), None);
    }

    #[test]
    fn a_pool_scope_replaces_the_defaults_scope_whole() {
        let text = "[defaults]\norganization = \"acme\"\n[[pool]]\nname = \"a\"\nlabels = [\"x\"]\nrepository = \"acme/app\"";
        let pools = parse(text, &config(&[])).unwrap();
        assert_eq!(
            pools.first().scope,
            Some(Scope::repository("acme/app").unwrap())
        );
    }
}
