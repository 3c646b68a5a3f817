//! The Docker labels that mark a container as one of our runners and carry
//! its record: with no database, these labels *are* the runner's durable state.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::scope::Scope;

/// Prefix of every label key we write.
pub const PREFIX: &str = "dev.gha-runners";
/// `"true"` on everything we create.
pub const MANAGED: &str = "dev.gha-runners.managed";
/// The `ORCHESTRATOR_ID` of the orchestrator that owns it.
pub const INSTANCE: &str = "dev.gha-runners.instance";
/// The runner's name (also the container's and the GitHub runner's).
pub const NAME: &str = "dev.gha-runners.name";
/// `repository` or `organization`.
pub const SCOPE_KIND: &str = "dev.gha-runners.scope";
/// `owner/name` or the organization.
pub const SCOPE_TARGET: &str = "dev.gha-runners.target";
/// Runner labels, comma-separated (GitHub labels cannot hold commas).
pub const RUNNER_LABELS: &str = "dev.gha-runners.labels";
/// RFC 3339 creation time.
pub const CREATED_AT: &str = "dev.gha-runners.created-at";
/// GitHub's runner id, when known at create time (JIT mode).
pub const GITHUB_RUNNER_ID: &str = "dev.gha-runners.github-runner-id";
/// The workflow job the runner was created for, when it was.
pub const FOR_JOB: &str = "dev.gha-runners.for-job";
/// The runner pool the runner belongs to (absent on runners made before
/// pools existed: they belong to `default`).
pub const POOL: &str = "dev.gha-runners.pool";
/// `"true"` when the autoscaler created the runner (the idle timeout applies).
pub const AUTOSCALED: &str = "dev.gha-runners.autoscaled";
/// The GitHub API URL of the orchestrator that owns it (with
/// [`INSTANCE`] and [`HOME_SCOPE`], who owns it).
pub const GITHUB_URL: &str = "dev.gha-runners.github-url";
/// The owner's configured scope (`GITHUB_REPOSITORY` or `GITHUB_ORG` as
/// `repository:owner/name`, `organization:name`, or `none`): not where the
/// runner is registered ([`SCOPE_KIND`]), which a request may choose.
pub const HOME_SCOPE: &str = "dev.gha-runners.home-scope";
/// `"sidecar"` on a runner that has a Docker engine of its own
/// ([`super::sidecar`]); absent on runners without one.
pub const DOCKER: &str = "dev.gha-runners.docker";
/// On a runner's Docker engine container and its volumes: the runner's
/// name. What carries it is never a runner itself.
pub const ENGINE_OF: &str = "dev.gha-runners.engine-of";
/// On the lease volume: who holds the instance id (see `engine::lease`).
pub const LEASE_HOLDER: &str = "dev.gha-runners.lease-holder";

/// Who owns a container: an orchestrator id, on one GitHub, for one
/// configured scope. Two deployments that share an id by mistake (the
/// default `default`) but talk to another GitHub or serve another scope
/// never take each other's runners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `ORCHESTRATOR_ID`.
    pub instance: String,
    /// `GITHUB_API_URL`, without a trailing slash.
    pub github_url: String,
    /// `GITHUB_REPOSITORY` / `GITHUB_ORG`, or `none`.
    pub home_scope: String,
}

impl Owner {
    /// The owner for an id, a GitHub API URL and a configured scope.
    pub fn new(instance: &str, github_url: &str, home_scope: Option<&Scope>) -> Self {
        Self {
            instance: instance.to_owned(),
            github_url: github_url.trim_end_matches('/').to_owned(),
            home_scope: home_scope.map_or_else(
                || "none".to_owned(),
                |s| format!("{}:{}", s.kind(), s.target()),
            ),
        }
    }

    /// The labels that say so, on everything we create.
    pub fn labels(&self) -> [(String, String); 4] {
        [
            (MANAGED.to_owned(), "true".to_owned()),
            (INSTANCE.to_owned(), self.instance.clone()),
            (GITHUB_URL.to_owned(), self.github_url.clone()),
            (HOME_SCOPE.to_owned(), self.home_scope.clone()),
        ]
    }

    /// The label filter that selects what this owner owns.
    pub fn filter(&self) -> Vec<String> {
        self.labels()
            .into_iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect()
    }

    /// Whether `labels` are this owner's.
    pub fn owns(&self, labels: &HashMap<String, String>) -> bool {
        self.labels()
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    }

    /// The label filter for everything with our id, whoever else it names:
    /// the containers of a deployment that shares our id are found with it
    /// and left alone.
    pub fn same_id_filter(&self) -> Vec<String> {
        owned_by(&self.instance)
    }
}

/// The record a runner container carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerLabels {
    /// The runner's name.
    pub name: String,
    /// Where it is registered.
    pub scope: Scope,
    /// Its GitHub labels.
    pub labels: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// GitHub's runner id, when known.
    pub github_runner_id: Option<i64>,
    /// The job it was created for, when it was.
    pub for_job: Option<i64>,
    /// Whether the autoscaler created it.
    pub autoscaled: bool,
    /// The pool it belongs to.
    pub pool: String,
    /// Whether it has a Docker engine of its own ([`super::sidecar`]).
    pub docker: bool,
}

impl RunnerLabels {
    /// The Docker labels for this record, owned by `owner`.
    pub fn to_docker(&self, owner: &Owner) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = owner.labels().into_iter().collect();
        map.extend([
            (NAME.to_owned(), self.name.clone()),
            (SCOPE_KIND.to_owned(), self.scope.kind().to_owned()),
            (SCOPE_TARGET.to_owned(), self.scope.target()),
            (RUNNER_LABELS.to_owned(), self.labels.join(",")),
            (CREATED_AT.to_owned(), self.created_at.to_rfc3339()),
            (POOL.to_owned(), self.pool.clone()),
        ]);
        if let Some(id) = self.github_runner_id {
            map.insert(GITHUB_RUNNER_ID.to_owned(), id.to_string());
        }
        if let Some(job) = self.for_job {
            map.insert(FOR_JOB.to_owned(), job.to_string());
        }
        if self.autoscaled {
            map.insert(AUTOSCALED.to_owned(), "true".to_owned());
        }
        if self.docker {
            map.insert(DOCKER.to_owned(), "sidecar".to_owned());
        }
        map
    }

    /// Reads a record back; `None` when a label is missing or unreadable
    /// (then the container is not a runner we can manage).
    pub fn from_docker(labels: &HashMap<String, String>) -> Option<Self> {
        if labels.contains_key(ENGINE_OF) {
            return None;
        }
        let scope = Scope::from_parts(labels.get(SCOPE_KIND)?, labels.get(SCOPE_TARGET)?)?;
        Some(Self {
            name: labels.get(NAME)?.clone(),
            scope,
            labels: labels
                .get(RUNNER_LABELS)?
                .split(',')
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            created_at: DateTime::parse_from_rfc3339(labels.get(CREATED_AT)?)
                .ok()?
                .with_timezone(&Utc),
            github_runner_id: labels.get(GITHUB_RUNNER_ID).and_then(|v| v.parse().ok()),
            for_job: labels.get(FOR_JOB).and_then(|v| v.parse().ok()),
            autoscaled: labels.get(AUTOSCALED).is_some_and(|v| v == "true"),
            pool: labels
                .get(POOL)
                .cloned()
                .unwrap_or_else(|| crate::pools::DEFAULT_POOL.to_owned()),
            docker: labels.get(DOCKER).is_some_and(|v| v == "sidecar"),
        })
    }
}

/// The label filter that selects everything with the id `instance`.
pub fn owned_by(instance: &str) -> Vec<String> {
    vec![format!("{MANAGED}=true"), format!("{INSTANCE}={instance}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        let record = RunnerLabels {
            name: "gha-runner-abc".into(),
            scope: Scope::repository("o/r").unwrap(),
            labels: vec!["self-hosted".into(), "gpu".into()],
            created_at: DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            github_runner_id: Some(7),
            for_job: Some(9),
            autoscaled: true,
            pool: "large".into(),
            docker: true,
        };
        let owner = Owner::new("test", "https://api.github.com/", None);
        let docker = record.to_docker(&owner);
        assert!(docker.keys().all(|k| k.starts_with(PREFIX)));
        assert_eq!(docker[INSTANCE], "test");
        assert_eq!(docker[GITHUB_URL], "https://api.github.com");
        assert_eq!(docker[HOME_SCOPE], "none");
        assert!(owner.owns(&docker));
        assert_eq!(RunnerLabels::from_docker(&docker), Some(record));
    }

    #[test]
    fn a_shared_id_is_not_shared_ownership() {
        let repo = Scope::repository("o/r").unwrap();
        let ours = Owner::new("default", "https://api.github.com", Some(&repo));
        let labels: HashMap<String, String> = ours.labels().into_iter().collect();
        assert!(ours.owns(&labels));
        let other_github = Owner::new("default", "http://github-sim:9000", Some(&repo));
        assert!(!other_github.owns(&labels));
        let other_scope = Owner::new("default", "https://api.github.com", None);
        assert!(!other_scope.owns(&labels));
        assert_eq!(ours.home_scope, "repository:o/r");
        assert!(
            ours.filter()
                .contains(&format!("{HOME_SCOPE}=repository:o/r"))
        );
    }

    #[test]
    fn foreign_containers_are_not_records() {
        assert_eq!(RunnerLabels::from_docker(&HashMap::new()), None);
    }
}
