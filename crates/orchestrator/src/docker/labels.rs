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
/// `"true"` when the autoscaler created the runner (the idle timeout applies).
pub const AUTOSCALED: &str = "dev.gha-runners.autoscaled";

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
}

impl RunnerLabels {
    /// The Docker labels for this record, owned by `instance`.
    pub fn to_docker(&self, instance: &str) -> HashMap<String, String> {
        let mut map = HashMap::from([
            (MANAGED.to_owned(), "true".to_owned()),
            (INSTANCE.to_owned(), instance.to_owned()),
            (NAME.to_owned(), self.name.clone()),
            (SCOPE_KIND.to_owned(), self.scope.kind().to_owned()),
            (SCOPE_TARGET.to_owned(), self.scope.target()),
            (RUNNER_LABELS.to_owned(), self.labels.join(",")),
            (CREATED_AT.to_owned(), self.created_at.to_rfc3339()),
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
        map
    }

    /// Reads a record back; `None` when a label is missing or unreadable
    /// (then the container is not a runner we can manage).
    pub fn from_docker(labels: &HashMap<String, String>) -> Option<Self> {
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
        })
    }
}

/// The label filter that selects what `instance` owns.
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
        };
        let docker = record.to_docker("test");
        assert!(docker.keys().all(|k| k.starts_with(PREFIX)));
        assert_eq!(docker[INSTANCE], "test");
        assert_eq!(RunnerLabels::from_docker(&docker), Some(record));
    }

    #[test]
    fn foreign_containers_are_not_records() {
        assert_eq!(RunnerLabels::from_docker(&HashMap::new()), None);
    }
}
