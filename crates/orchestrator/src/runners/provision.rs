//! Where a runner is created: a unique name, one GitHub call for its
//! single-use JIT configuration, then the container, created and started.
//! A batch is all or nothing: when one runner fails, the others are rolled
//! back (registration deleted, then container removed).

use std::collections::HashMap;

use api_types::Runner;
use chrono::Utc;
use futures::future::join_all;
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::ExposeSecret;
use tracing::{info, warn};

use super::operations::BatchProgress;
use super::registry::{CreateMark, RunnerView};
use super::request::BatchPlan;
use super::{Fleet, FleetError};
use crate::config::RegistrationMode;
use crate::engine::{ContainerSpec, DockerError, RunnerContainer, RunnerLabels};
use crate::github::DeleteOutcome;
use crate::scope::Scope;

/// Length of the random part of a runner's name.
const SUFFIX_LEN: usize = 10;

/// Registrations tried per runner: a second one only after GitHub
/// confirmed that the first left nothing behind.
const REGISTRATION_ATTEMPTS: u32 = 2;

/// A runner whose container has started.
#[derive(Debug)]
struct Created {
    container: RunnerContainer,
}

/// What GitHub gave for one runner: its container's environment (secret:
/// the JIT configuration or a registration token) and, in JIT mode, its id.
struct Registration {
    env: Vec<String>,
    github_runner_id: Option<i64>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The environment holds the runner's credentials: never printed.
        f.debug_struct("Registration")
            .field("github_runner_id", &self.github_runner_id)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Creates `plan.count` runners, all or nothing. Run it as an operation
    /// of its own ([`Fleet::start_create`]) wherever the caller may be
    /// dropped midway.
    ///
    /// # Errors
    /// [`FleetError`]; for a partial failure, [`FleetError::Batch`] names
    /// the runner that failed and says that the rest were rolled back.
    pub async fn create_runners(&self, plan: BatchPlan) -> Result<Vec<Runner>, FleetError> {
        self.create_batch(plan, &BatchProgress::default()).await
    }

    /// [`Self::create_runners`], telling `progress` how far it has come.
    pub(crate) async fn create_batch(
        &self,
        plan: BatchPlan,
        progress: &BatchProgress,
    ) -> Result<Vec<Runner>, FleetError> {
        if self.is_shutting_down() {
            return Err(FleetError::ShuttingDown);
        }
        let mut reservation = self
            .registry
            .reserve(&plan.pool.name, plan.pool.max, plan.count)
            .map_err(|c| FleetError::Capacity {
                free: c.free,
                max: c.max,
                pool: c.pool.then(|| plan.pool.name.clone()),
            })?;
        self.ensure_image(&plan.image, "runner image").await?;
        if let Some(sidecar) = &plan.pool.docker {
            self.ensure_image(&sidecar.image, "Docker engine image")
                .await?;
        }

        let attempts = join_all((0..plan.count).map(|_| self.create_one(&plan, progress))).await;
        // Each runner's name (a lost answer means a new name) stays in
        // flight, its mark held here, until the runner is in the registry
        // or rolled back.
        let (marks, outcomes): (Vec<CreateMark<'_>>, Vec<Result<Created, FleetError>>) =
            attempts.into_iter().unzip();

        let failed = outcomes.iter().position(Result::is_err);
        let mut created = Vec::new();
        let mut first_error = None;
        for outcome in outcomes {
            match outcome {
                Ok(c) => created.push(c),
                Err(e) if first_error.is_none() => first_error = Some(e),
                Err(_) => {}
            }
        }
        if let Some(error) = first_error {
            progress.begin_rollback();
            let rolled_back = created.len();
            for c in created {
                self.roll_back(&c.container.record).await;
            }
            let index = failed.unwrap_or(0);
            let failed_name = marks[index].name().to_owned();
            drop(marks);
            return Err(if plan.count == 1 {
                error
            } else {
                FleetError::Batch {
                    context: format!(
                        "runner {} of {} ({failed_name}) could not be created; the {rolled_back} created with it were rolled back",
                        index + 1,
                        plan.count,
                    ),
                    cause: Box::new(error),
                }
            });
        }

        let mut runners = Vec::with_capacity(created.len());
        for c in created {
            let view = RunnerView::from_container(&c.container);
            runners.push(view.to_api());
            reservation.fill(view);
        }
        drop(marks);
        info!(count = runners.len(), pool = %plan.pool.name, scope = %plan.scope, "runners created");
        Ok(runners)
    }

    /// `RUNNER_NAME_PREFIX-` and a random lowercase suffix.
    fn new_runner_name(&self) -> String {
        let suffix: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(SUFFIX_LEN)
            .map(|c| char::from(c).to_ascii_lowercase())
            .collect();
        format!("{}-{suffix}", self.config.runner_name_prefix)
    }

    /// Creates one runner under a new name; on failure, undoes its own
    /// partial work. Returns the mark of the name it used last (in flight
    /// until the caller drops it) with the outcome.
    ///
    /// A registration whose answer was lost (timeout, dropped connection,
    /// 5xx) or that GitHub says exists already (409) is never simply sent
    /// again: the runner is looked up by name and deleted if GitHub made it
    /// (its JIT configuration never reached us, so no container can use it),
    /// and only then is one more attempt made under a fresh name. When
    /// GitHub cannot tell, the create fails and the registration, offline
    /// and without a container, is an orphan for the next reconcile pass.
    async fn create_one(
        &self,
        plan: &BatchPlan,
        progress: &BatchProgress,
    ) -> (CreateMark<'_>, Result<Created, FleetError>) {
        let mut mark = self.registry.begin_create(&self.new_runner_name());
        let mut attempt = 1;
        loop {
            let name = mark.name().to_owned();
            let env = match self.register(&name, plan).await {
                Ok(env) => env,
                Err(error)
                    if attempt < REGISTRATION_ATTEMPTS
                        && self.resolve_failed_registration(&name, plan, &error).await =>
                {
                    warn!(runner = %name, error = %error, "registration answer lost; GitHub holds no runner by that name now; trying once more under a new name");
                    // The old name leaves flight as the new one enters it.
                    mark = self.registry.begin_create(&self.new_runner_name());
                    attempt += 1;
                    continue;
                }
                Err(error) => return (mark, Err(error.into())),
            };
            let outcome = self.start_registered(&name, plan, env).await;
            if outcome.is_ok() {
                progress.runner_started();
            }
            return (mark, outcome);
        }
    }

    /// Registers `name` with GitHub: the runner's environment (its JIT
    /// configuration, or a registration token and its settings) and the
    /// registration's id in JIT mode.
    async fn register(
        &self,
        name: &str,
        plan: &BatchPlan,
    ) -> Result<Registration, crate::github::GitHubError> {
        let mut env = Vec::new();
        let mut github_runner_id = None;
        match plan.pool.registration {
            RegistrationMode::Jit => {
                let jit = self
                    .github
                    .generate_jit_config(&plan.scope, name, &plan.labels, plan.runner_group_id)
                    .await?;
                github_runner_id = Some(jit.runner_id);
                env.push(format!(
                    "ACTIONS_RUNNER_INPUT_JITCONFIG={}",
                    jit.encoded.expose_secret()
                ));
            }
            RegistrationMode::Token => {
                let token = self.github.registration_token(&plan.scope).await?;
                env.extend(token_mode_env(
                    &plan.scope,
                    &self.config.github_api_url,
                    name,
                    &plan.labels,
                    plan.runner_group_id,
                    token.token.expose_secret(),
                ));
            }
        }
        Ok(Registration {
            env,
            github_runner_id,
        })
    }

    /// After a failed registration of `name`: whether GitHub now certainly
    /// holds no runner by that name (none was made, or the one made was
    /// deleted), so that another attempt cannot leave a second registration.
    async fn resolve_failed_registration(
        &self,
        name: &str,
        plan: &BatchPlan,
        error: &crate::github::GitHubError,
    ) -> bool {
        use crate::github::GitHubError;
        let ambiguous = error.answer_may_be_lost() || matches!(error, GitHubError::Conflict(_));
        if !ambiguous {
            return false;
        }
        if plan.pool.registration == RegistrationMode::Token {
            // A registration token whose answer was lost registers nothing;
            // it expires unused within the hour.
            return !matches!(error, GitHubError::Conflict(_));
        }
        match self.github.find_runner_by_name(&plan.scope, name).await {
            Ok(None) => true,
            Ok(Some(runner)) => match self.github.delete_runner(&plan.scope, runner.id).await {
                Ok(DeleteOutcome::Deleted | DeleteOutcome::AlreadyGone) => {
                    info!(runner = %name, github_runner_id = runner.id, "deleted the registration whose answer was lost");
                    true
                }
                Ok(DeleteOutcome::Busy) => false,
                Err(e) => {
                    warn!(runner = %name, error = %e, "could not delete a registration whose answer was lost; the reconciler will");
                    false
                }
            },
            Err(e) => {
                warn!(runner = %name, error = %e, "could not tell whether GitHub registered a runner whose answer was lost; the reconciler will look again");
                false
            }
        }
    }

    /// Creates and starts the container of a registered runner; on failure
    /// deregisters it and removes what was made.
    async fn start_registered(
        &self,
        name: &str,
        plan: &BatchPlan,
        registration: Registration,
    ) -> Result<Created, FleetError> {
        let Registration {
            mut env,
            github_runner_id,
        } = registration;
        env.extend(plan.pool.env.iter().cloned());
        let record = RunnerLabels {
            name: name.to_owned(),
            scope: plan.scope.clone(),
            labels: plan.labels.clone(),
            created_at: Utc::now(),
            github_runner_id,
            for_job: plan.for_job,
            autoscaled: plan.autoscaled,
            pool: plan.pool.name.clone(),
            docker: plan.pool.docker.is_some(),
        };
        let spec = ContainerSpec {
            name: name.to_owned(),
            image: plan.image.clone(),
            command: plan.pool.command.clone(),
            env,
            labels: record.to_docker(self.engine.owner()),
            network: plan.pool.network.clone(),
            memory: plan.pool.memory,
            nano_cpus: plan.pool.cpus.map(|c| (c * 1e9) as i64),
            pids_limit: plan.pool.pids_limit,
            sidecar: plan.pool.docker.clone(),
        };
        let id = match self.create_container(&spec).await {
            Ok(id) => id,
            Err(e) => {
                self.roll_back(&record).await;
                return Err(e.into());
            }
        };
        if let Err(e) = self.engine.start(&id).await {
            self.roll_back(&record).await;
            return Err(e.into());
        }
        Ok(Created {
            container: RunnerContainer {
                id,
                record,
                image: plan.image.clone(),
                running: true,
                created_only: false,
                exit_code: None,
            },
        })
    }

    /// Creates the container, creating the runner network first if it
    /// vanished since start-up.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        match self.engine.create(spec).await {
            Err(DockerError::NotFound(message)) if message.contains("network") => {
                self.engine.ensure_network(&spec.network).await?;
                self.engine.create(spec).await
            }
            other => other,
        }
    }

    /// Undoes a create: deregisters first, then removes the container and
    /// the runner's Docker engine. A failure here is left to the reconciler
    /// (the registration is then an orphan with our prefix, which the sweep
    /// deletes; an engine without its runner is removed too).
    async fn roll_back(&self, record: &RunnerLabels) {
        let name = record.name.as_str();
        if let Some(id) = record.github_runner_id
            && let Err(e) = self.github.delete_runner(&record.scope, id).await
        {
            warn!(runner = name, error = %e, "rollback: could not delete the registration; the reconciler will");
        }
        if let Err(e) = self.remove_containers(name, record.docker).await {
            warn!(runner = name, error = %e, "rollback: could not remove the container; the reconciler will");
        }
        self.registry.forget(name);
    }
}

/// The environment of images that run `config.sh` themselves: the
/// variables myoung34/github-runner reads, and the runner's own
/// `ACTIONS_RUNNER_INPUT_*` fallbacks. Never the GitHub token itself.
fn token_mode_env(
    scope: &Scope,
    api_url: &str,
    name: &str,
    labels: &[String],
    runner_group_id: i64,
    registration_token: &str,
) -> Vec<String> {
    let url = scope.html_url(api_url);
    let labels = labels.join(",");
    let mut env: HashMap<&str, String> = HashMap::from([
        ("RUNNER_NAME", name.to_owned()),
        ("RUNNER_TOKEN", registration_token.to_owned()),
        ("LABELS", labels.clone()),
        ("EPHEMERAL", "true".to_owned()),
        ("DISABLE_AUTO_UPDATE", "true".to_owned()),
        ("RUNNER_GROUP_ID", runner_group_id.to_string()),
        ("ACTIONS_RUNNER_INPUT_URL", url.clone()),
        ("ACTIONS_RUNNER_INPUT_TOKEN", registration_token.to_owned()),
        ("ACTIONS_RUNNER_INPUT_NAME", name.to_owned()),
        ("ACTIONS_RUNNER_INPUT_LABELS", labels),
        ("ACTIONS_RUNNER_INPUT_EPHEMERAL", "true".to_owned()),
        ("ACTIONS_RUNNER_INPUT_UNATTENDED", "true".to_owned()),
        ("ACTIONS_RUNNER_INPUT_DISABLEUPDATE", "true".to_owned()),
        ("ACTIONS_RUNNER_INPUT_REPLACE", "true".to_owned()),
    ]);
    match scope {
        Scope::Repository { .. } => {
            env.insert("RUNNER_SCOPE", "repo".to_owned());
            env.insert("REPO_URL", url);
        }
        Scope::Organization(org) => {
            env.insert("RUNNER_SCOPE", "org".to_owned());
            env.insert("ORG_NAME", org.clone());
        }
    }
    let mut pairs: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_mode_env_carries_the_registration_not_the_token() {
        let env = token_mode_env(
            &Scope::organization("acme").unwrap(),
            "https://api.github.com",
            "gha-runner-x",
            &["self-hosted".into(), "linux".into()],
            1,
            "REGTOKEN",
        );
        assert!(env.contains(&"ORG_NAME=acme".to_owned()));
        assert!(env.contains(&"ACTIONS_RUNNER_INPUT_URL=https://github.com/acme".to_owned()));
        assert!(env.contains(&"LABELS=self-hosted,linux".to_owned()));
        assert!(env.contains(&"EPHEMERAL=true".to_owned()));
    }
}
