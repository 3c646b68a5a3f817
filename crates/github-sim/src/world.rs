//! The in-memory world: owners, repositories, runners, runs, jobs and runner sessions.
//!
//! All of it sits behind one `std::sync::Mutex` in `crate::app::AppState`; no code holds
//! that lock across an `.await`. Every change that GitHub would announce by webhook pushes a
//! delivery into the webhook outbox while the lock is held, so deliveries keep their order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::Notify;

use crate::apps::Apps;
use crate::faults::Faults;
use crate::protocol::{AssignedJob, RunnerMessage};
use crate::rate_limit::RateLimiter;
use crate::settings::Settings;
use crate::webhooks::{Outbox, WebhookControl};

/// Id of the runner group every repository and organization has.
pub(crate) const DEFAULT_GROUP_ID: u64 = 1;
/// Name of that group.
pub(crate) const DEFAULT_GROUP_NAME: &str = "Default";

/// A user or organization.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub(crate) id: u64,
    /// Login as configured (case preserved).
    pub(crate) login: String,
    /// Organizations have org-scope runner endpoints and `organization` in webhooks.
    pub(crate) is_org: bool,
}

/// A repository.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub(crate) id: u64,
    /// Lower-case key of the owner in [`World::owners`].
    pub(crate) owner_key: String,
    pub(crate) owner_login: String,
    pub(crate) name: String,
}

impl Repo {
    /// `owner/name` as configured.
    pub(crate) fn full_name(&self) -> String {
        format!("{}/{}", self.owner_login, self.name)
    }
}

/// Where a runner is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Lower-case `owner/name` key of a repository.
    Repo(String),
    /// Lower-case login of an organization.
    Org(String),
}

/// A registered self-hosted runner (always ephemeral: created by JIT).
#[derive(Debug)]
pub(crate) struct Runner {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) scope: Scope,
    /// `(label id, label name)`; all `custom`.
    pub(crate) labels: Vec<(u64, String)>,
    pub(crate) group_id: u64,
    /// Secret in the JIT `.credentials`; the stand-in presents it to connect.
    pub(crate) secret: String,
    /// The JIT configuration is single-use: set by the first successful connect.
    pub(crate) jit_used: bool,
    /// The live session, if the stand-in is connected (this is what `online` means).
    pub(crate) session: Option<String>,
    /// The job this runner runs (this is what `busy` means).
    pub(crate) job_id: Option<u64>,
}

/// A connected stand-in.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) runner_id: u64,
    /// Wakes the session's pending long poll.
    pub(crate) notify: Arc<Notify>,
    /// Last poll start; older than the liveness timeout ⇒ offline.
    pub(crate) last_seen: Instant,
    pub(crate) messages: VecDeque<RunnerMessage>,
    /// Set when the runner was deleted while connected: the next poll says exit.
    pub(crate) removed: bool,
}

/// `status` of a workflow job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobStatus {
    Queued,
    InProgress,
    Completed,
}

impl JobStatus {
    /// GitHub's name of the status.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
        }
    }
}

/// A workflow job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) run_id: u64,
    /// Lower-case key of the repository.
    pub(crate) repo_key: String,
    pub(crate) name: String,
    pub(crate) labels: Vec<String>,
    pub(crate) duration_ms: u64,
    /// Conclusion when the job runs to its end (without `run`).
    pub(crate) planned_conclusion: String,
    /// The job's `run:` step (a bash script), handed to the runner.
    pub(crate) run: Option<String>,
    /// The end of the output the runner reported with the completion.
    pub(crate) log: Option<String>,
    pub(crate) status: JobStatus,
    pub(crate) conclusion: Option<String>,
    pub(crate) runner_id: Option<u64>,
    pub(crate) runner_name: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) completed_at: Option<DateTime<Utc>>,
}

impl Job {
    /// Status and conclusion the job had at `at`; `None` when it did not exist yet. Derived
    /// from its timestamps, so any past moment can be answered.
    pub(crate) fn state_at(&self, at: DateTime<Utc>) -> Option<(JobStatus, Option<String>)> {
        if self.completed_at.is_some_and(|t| t <= at) {
            Some((JobStatus::Completed, self.conclusion.clone()))
        } else if self.started_at.is_some_and(|t| t <= at) {
            Some((JobStatus::InProgress, None))
        } else if self.created_at <= at {
            Some((JobStatus::Queued, None))
        } else {
            None
        }
    }
}

/// A workflow run: a group of jobs.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) id: u64,
    pub(crate) repo_key: String,
    pub(crate) name: String,
    pub(crate) head_sha: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) jobs: Vec<u64>,
}

/// Why a JIT registration was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegisterError {
    #[error("a runner with this name already exists")]
    NameTaken,
    #[error("unknown runner group")]
    UnknownGroup,
}

/// Why a runner could not be deleted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeleteError {
    #[error("not found")]
    NotFound,
    #[error("Runner \"{0}\" is still running a job")]
    Busy(String),
}

/// Why a stand-in could not connect.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("runner is not registered")]
    UnknownRunner,
    #[error("invalid runner credentials")]
    BadSecret,
    #[error("this JIT configuration has already been used")]
    AlreadyUsed,
}

/// A job requested through the control API.
#[derive(Debug, Clone)]
pub(crate) struct NewJob {
    pub(crate) repository: String,
    pub(crate) labels: Vec<String>,
    pub(crate) duration_ms: u64,
    pub(crate) conclusion: String,
    pub(crate) name: Option<String>,
    pub(crate) run_id: Option<u64>,
    /// A bash script the runner runs; its exit status decides the conclusion.
    pub(crate) run: Option<String>,
}

/// API call counters for `/_sim/stats`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) api_calls_total: u64,
    pub(crate) api_calls: BTreeMap<String, u64>,
    pub(crate) not_modified: u64,
}

/// The whole simulated state.
#[derive(Debug)]
pub(crate) struct World {
    /// Keyed by lower-case login (GitHub names are case-insensitive).
    pub(crate) owners: BTreeMap<String, Owner>,
    /// Keyed by lower-case `owner/name`.
    pub(crate) repos: BTreeMap<String, Repo>,
    pub(crate) runners: BTreeMap<u64, Runner>,
    pub(crate) jobs: BTreeMap<u64, Job>,
    pub(crate) runs: BTreeMap<u64, Run>,
    pub(crate) sessions: HashMap<String, Session>,
    /// Stable ids for label names (lower-case).
    label_ids: HashMap<String, u64>,
    next_runner_id: u64,
    next_job_id: u64,
    next_run_id: u64,
    next_label_id: u64,
    pub(crate) rate: RateLimiter,
    /// GitHub Apps, their installations and the installation tokens handed out.
    pub(crate) apps: Apps,
    /// What `PATCH /_sim/settings` may change at run time.
    pub(crate) settings: Settings,
    pub(crate) faults: Faults,
    pub(crate) stats: Stats,
    pub(crate) webhooks: WebhookControl,
    pub(crate) outbox: Outbox,
    /// The simulator's public base URL, used in `url` fields (like `https://api.github.com`).
    pub(crate) api_url: String,
}

/// Formats a timestamp as GitHub does (`2020-01-22T19:33:08Z`).
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random lower-case hex string of `len` characters.
pub(crate) fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

impl World {
    /// Builds the world with the configured owners and repositories.
    ///
    /// # Errors
    /// A repository that is not `OWNER/NAME`.
    pub(crate) fn new(
        orgs: &[String],
        repos: &[String],
        settings: Settings,
        api_url: String,
        outbox: Outbox,
    ) -> Result<Self, String> {
        let mut world = Self {
            owners: BTreeMap::new(),
            repos: BTreeMap::new(),
            runners: BTreeMap::new(),
            jobs: BTreeMap::new(),
            runs: BTreeMap::new(),
            sessions: HashMap::new(),
            label_ids: HashMap::new(),
            // Distinct ranges so a client that mixes up runner, job and run ids fails.
            next_runner_id: 1001,
            next_job_id: 500_001,
            next_run_id: 9_000_001,
            next_label_id: 1,
            rate: RateLimiter::default(),
            apps: Apps::default(),
            settings,
            faults: Faults::default(),
            stats: Stats::default(),
            webhooks: WebhookControl::default(),
            outbox,
            api_url,
        };
        let mut next_owner_id = 100;
        for org in orgs {
            let org = org.trim();
            if org.is_empty() || org.contains('/') {
                return Err(format!("invalid organization name {org:?}"));
            }
            next_owner_id += 1;
            world.owners.insert(
                org.to_lowercase(),
                Owner {
                    id: next_owner_id,
                    login: org.to_owned(),
                    is_org: true,
                },
            );
        }
        for (next_repo_id, full) in (7001..).zip(repos) {
            let Some((owner, name)) = full.trim().split_once('/') else {
                return Err(format!("invalid repository {full:?}: expected OWNER/NAME"));
            };
            if owner.is_empty() || name.is_empty() || name.contains('/') {
                return Err(format!("invalid repository {full:?}: expected OWNER/NAME"));
            }
            let owner_key = owner.to_lowercase();
            let owner_login = world
                .owners
                .entry(owner_key.clone())
                .or_insert_with(|| {
                    next_owner_id += 1;
                    Owner {
                        id: next_owner_id,
                        login: owner.to_owned(),
                        is_org: false,
                    }
                })
                .login
                .clone();
            world.repos.insert(
                format!("{owner_key}/{}", name.to_lowercase()),
                Repo {
                    id: next_repo_id,
                    owner_key,
                    owner_login,
                    name: name.to_owned(),
                },
            );
        }
        Ok(world)
    }

    /// The repository `owner/name` (case-insensitive), with its key.
    pub(crate) fn find_repo(&self, owner: &str, name: &str) -> Option<(String, &Repo)> {
        let key = format!("{}/{}", owner.to_lowercase(), name.to_lowercase());
        self.repos.get(&key).map(|repo| (key, repo))
    }

    /// Whether a runner registered at `scope` may run jobs of repository `repo_key`.
    pub(crate) fn scope_covers(&self, scope: &Scope, repo_key: &str) -> bool {
        match scope {
            Scope::Repo(key) => key == repo_key,
            Scope::Org(org) => self
                .repos
                .get(repo_key)
                .is_some_and(|r| &r.owner_key == org),
        }
    }

    /// `https://github.com/OWNER[/REPO]` for a scope.
    pub(crate) fn github_url(&self, scope: &Scope) -> String {
        match scope {
            Scope::Repo(key) => match self.repos.get(key) {
                Some(repo) => format!("https://github.com/{}", repo.full_name()),
                None => format!("https://github.com/{key}"),
            },
            Scope::Org(org) => match self.owners.get(org) {
                Some(owner) => format!("https://github.com/{}", owner.login),
                None => format!("https://github.com/{org}"),
            },
        }
    }

    /// Human form of a scope: `repo:OWNER/NAME` or `org:NAME`.
    pub(crate) fn scope_label(&self, scope: &Scope) -> String {
        match scope {
            Scope::Repo(key) => format!(
                "repo:{}",
                self.repos.get(key).map_or(key.clone(), Repo::full_name)
            ),
            Scope::Org(org) => format!(
                "org:{}",
                self.owners
                    .get(org)
                    .map_or(org.clone(), |o| o.login.clone())
            ),
        }
    }

    fn label_id(&mut self, name: &str) -> u64 {
        let key = name.to_lowercase();
        if let Some(id) = self.label_ids.get(&key) {
            return *id;
        }
        let id = self.next_label_id;
        self.next_label_id += 1;
        self.label_ids.insert(key, id);
        id
    }

    /// Registers a JIT runner (offline until its stand-in connects).
    pub(crate) fn register_runner(
        &mut self,
        scope: Scope,
        name: &str,
        labels: &[String],
        group_id: u64,
    ) -> Result<u64, RegisterError> {
        if group_id != DEFAULT_GROUP_ID {
            return Err(RegisterError::UnknownGroup);
        }
        // Runner names are case-insensitively unique in their scope.
        if self
            .runners
            .values()
            .any(|r| r.scope == scope && r.name.eq_ignore_ascii_case(name))
        {
            return Err(RegisterError::NameTaken);
        }
        let mut unique: Vec<(u64, String)> = Vec::new();
        for label in labels {
            if !unique.iter().any(|(_, l)| l.eq_ignore_ascii_case(label)) {
                let id = self.label_id(label);
                unique.push((id, label.clone()));
            }
        }
        let id = self.next_runner_id;
        self.next_runner_id += 1;
        self.runners.insert(
            id,
            Runner {
                id,
                name: name.to_owned(),
                scope,
                labels: unique,
                group_id,
                secret: random_hex(48),
                jit_used: false,
                session: None,
                job_id: None,
            },
        );
        Ok(id)
    }

    /// Runners registered at `scope`, by id.
    pub(crate) fn runners_in<'a>(&'a self, scope: &'a Scope) -> impl Iterator<Item = &'a Runner> {
        self.runners.values().filter(move |r| &r.scope == scope)
    }

    /// Deletes a runner through the REST API; a connected stand-in is told to exit.
    pub(crate) fn delete_runner(&mut self, scope: &Scope, id: u64) -> Result<(), DeleteError> {
        let runner = self
            .runners
            .get(&id)
            .filter(|r| &r.scope == scope)
            .ok_or(DeleteError::NotFound)?;
        if runner.job_id.is_some() {
            return Err(DeleteError::Busy(runner.name.clone()));
        }
        if let Some(runner) = self.runners.remove(&id)
            && let Some(session_id) = runner.session
            && let Some(session) = self.sessions.get_mut(&session_id)
        {
            session.removed = true;
            session.notify.notify_one();
        }
        Ok(())
    }

    /// Queues a job (in a new run unless `run_id` names one of the same repository).
    pub(crate) fn create_job(&mut self, new: NewJob) -> Result<(u64, u64), String> {
        let Some((owner, name)) = new.repository.split_once('/') else {
            return Err(format!("unknown repository {:?}", new.repository));
        };
        let Some((repo_key, _)) = self.find_repo(owner, name) else {
            return Err(format!("unknown repository {:?}", new.repository));
        };
        if new.labels.is_empty() || new.labels.iter().any(|l| l.trim().is_empty()) {
            return Err("labels must be a non-empty list of non-empty strings".to_owned());
        }
        if !matches!(
            new.conclusion.as_str(),
            "success" | "failure" | "cancelled" | "skipped" | "neutral" | "timed_out"
        ) {
            return Err(format!("unsupported conclusion {:?}", new.conclusion));
        }
        let now = Utc::now();
        let run_id = match new.run_id {
            Some(run_id) => {
                let run = self
                    .runs
                    .get(&run_id)
                    .ok_or_else(|| format!("unknown run {run_id}"))?;
                if run.repo_key != repo_key {
                    return Err(format!("run {run_id} belongs to another repository"));
                }
                run_id
            }
            None => {
                let run_id = self.next_run_id;
                self.next_run_id += 1;
                self.runs.insert(
                    run_id,
                    Run {
                        id: run_id,
                        repo_key: repo_key.clone(),
                        name: "CI".to_owned(),
                        head_sha: random_hex(40),
                        created_at: now,
                        jobs: Vec::new(),
                    },
                );
                run_id
            }
        };
        let id = self.next_job_id;
        self.next_job_id += 1;
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.jobs.push(id);
        }
        self.jobs.insert(
            id,
            Job {
                id,
                run_id,
                repo_key,
                name: new.name.unwrap_or_else(|| format!("job-{id}")),
                labels: new.labels,
                duration_ms: new.duration_ms,
                planned_conclusion: new.conclusion,
                run: new.run,
                log: None,
                status: JobStatus::Queued,
                conclusion: None,
                runner_id: None,
                runner_name: None,
                created_at: now,
                started_at: None,
                completed_at: None,
            },
        );
        self.emit_job_event(id, "queued");
        self.assign();
        Ok((id, run_id))
    }

    /// Hands queued jobs (oldest first) to online, idle runners whose scope covers the
    /// job's repository and whose labels include all of the job's labels (case-insensitive).
    pub(crate) fn assign(&mut self) {
        let queued: Vec<u64> = self
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Queued)
            .map(|j| j.id)
            .collect();
        for job_id in queued {
            let Some(job) = self.jobs.get(&job_id) else {
                continue;
            };
            let runner_id = self
                .runners
                .values()
                .find(|r| {
                    r.session.is_some()
                        && r.job_id.is_none()
                        && self.scope_covers(&r.scope, &job.repo_key)
                        && job
                            .labels
                            .iter()
                            .all(|l| r.labels.iter().any(|(_, rl)| rl.eq_ignore_ascii_case(l)))
                })
                .map(|r| r.id);
            let Some(runner_id) = runner_id else { continue };
            self.start_job(job_id, runner_id);
        }
    }

    fn start_job(&mut self, job_id: u64, runner_id: u64) {
        let (Some(job), Some(runner)) =
            (self.jobs.get_mut(&job_id), self.runners.get_mut(&runner_id))
        else {
            return;
        };
        job.status = JobStatus::InProgress;
        job.started_at = Some(Utc::now());
        job.runner_id = Some(runner.id);
        job.runner_name = Some(runner.name.clone());
        runner.job_id = Some(job_id);
        let assigned = AssignedJob {
            id: job.id,
            run_id: job.run_id,
            name: job.name.clone(),
            duration_ms: job.duration_ms,
            conclusion: job.planned_conclusion.clone(),
            run: job.run.clone(),
            repository: self.repos.get(&job.repo_key).map(Repo::full_name),
        };
        if let Some(session) = runner
            .session
            .as_ref()
            .and_then(|s| self.sessions.get_mut(s))
        {
            session
                .messages
                .push_back(RunnerMessage::Job { job: assigned });
            session.notify.notify_one();
        }
        tracing::info!(job = job_id, runner = runner_id, "job assigned");
        self.emit_job_event(job_id, "in_progress");
    }

    /// Completes a job, keeping the end of its output when the runner sent it; an ephemeral
    /// runner that ran it to the end is removed.
    fn finish_job(
        &mut self,
        job_id: u64,
        conclusion: &str,
        log: Option<String>,
        remove_runner: bool,
    ) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        if job.status == JobStatus::Completed {
            return;
        }
        job.status = JobStatus::Completed;
        job.conclusion = Some(conclusion.to_owned());
        job.completed_at = Some(Utc::now());
        job.log = log;
        let runner_id = job.runner_id;
        if let Some(runner_id) = runner_id {
            if remove_runner {
                if let Some(runner) = self.runners.remove(&runner_id)
                    && let Some(session) = runner.session
                {
                    self.sessions.remove(&session);
                }
            } else if let Some(runner) = self.runners.get_mut(&runner_id) {
                runner.job_id = None;
            }
        }
        tracing::info!(job = job_id, conclusion, "job completed");
        self.emit_job_event(job_id, "completed");
    }

    /// Cancels a job: a queued one completes `cancelled` at once, a running one is told to
    /// its runner. Returns false for an unknown job.
    pub(crate) fn cancel_job(&mut self, job_id: u64) -> bool {
        let Some(job) = self.jobs.get(&job_id) else {
            return false;
        };
        match job.status {
            JobStatus::Completed => {}
            JobStatus::Queued => self.finish_job(job_id, "cancelled", None, false),
            JobStatus::InProgress => {
                let session = job
                    .runner_id
                    .and_then(|id| self.runners.get(&id))
                    .and_then(|r| r.session.clone())
                    .and_then(|s| self.sessions.get_mut(&s));
                match session {
                    Some(session) => {
                        session.messages.push_back(RunnerMessage::Cancel { job_id });
                        session.notify.notify_one();
                    }
                    None => self.finish_job(job_id, "cancelled", None, false),
                }
            }
        }
        true
    }

    /// Opens a session for a stand-in presenting the JIT credentials of `runner_id`.
    pub(crate) fn connect(&mut self, runner_id: u64, secret: &str) -> Result<String, ConnectError> {
        let runner = self
            .runners
            .get_mut(&runner_id)
            .ok_or(ConnectError::UnknownRunner)?;
        if runner.secret != secret {
            return Err(ConnectError::BadSecret);
        }
        if runner.jit_used {
            return Err(ConnectError::AlreadyUsed);
        }
        runner.jit_used = true;
        let session_id = uuid::Uuid::new_v4().to_string();
        runner.session = Some(session_id.clone());
        self.sessions.insert(
            session_id.clone(),
            Session {
                runner_id,
                notify: Arc::new(Notify::new()),
                last_seen: Instant::now(),
                messages: VecDeque::new(),
                removed: false,
            },
        );
        tracing::info!(runner = runner_id, "runner online");
        self.assign();
        Ok(session_id)
    }

    /// Ends a session: the runner goes offline and a job it was running fails.
    pub(crate) fn end_session(&mut self, session_id: &str, reason: &str) {
        let Some(session) = self.sessions.remove(session_id) else {
            return;
        };
        let job_id = self.runners.get_mut(&session.runner_id).and_then(|runner| {
            runner.session = None;
            runner.job_id
        });
        tracing::info!(runner = session.runner_id, reason, "runner offline");
        if let Some(job_id) = job_id {
            self.finish_job(job_id, "failure", None, false);
        }
    }

    /// The stand-in reports a job finished, with the end of its output if it ran a script.
    pub(crate) fn complete(
        &mut self,
        session_id: &str,
        job_id: u64,
        conclusion: &str,
        log: Option<String>,
    ) -> Result<(), &'static str> {
        let session = self.sessions.get(session_id).ok_or("unknown session")?;
        let runner = self
            .runners
            .get(&session.runner_id)
            .ok_or("runner no longer registered")?;
        if runner.job_id != Some(job_id) {
            return Err("job is not assigned to this runner");
        }
        self.finish_job(job_id, conclusion, log, true);
        Ok(())
    }

    /// Marks sessions that stopped polling for longer than `offline_after` as gone.
    pub(crate) fn reap(&mut self, offline_after: Duration) {
        let now = Instant::now();
        let stale: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_seen) > offline_after)
            .map(|(id, _)| id.clone())
            .collect();
        for session_id in stale {
            self.end_session(&session_id, "stopped polling");
        }
    }

    /// Status of a run derived from its jobs, and its conclusion when completed: as it is
    /// now, or as it was at `as_of` (jobs created later do not count).
    pub(crate) fn run_status(
        &self,
        run: &Run,
        as_of: Option<DateTime<Utc>>,
    ) -> (JobStatus, Option<String>) {
        let jobs: Vec<(JobStatus, Option<String>)> = run
            .jobs
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .filter_map(|j| match as_of {
                None => Some((j.status, j.conclusion.clone())),
                Some(at) => j.state_at(at),
            })
            .collect();
        if jobs.is_empty() {
            (JobStatus::Queued, None)
        } else if jobs.iter().all(|(s, _)| *s == JobStatus::Completed) {
            let conclusion = ["failure", "timed_out", "cancelled", "neutral", "skipped"]
                .into_iter()
                .find(|c| jobs.iter().any(|(_, j)| j.as_deref() == Some(*c)))
                .unwrap_or("success");
            (JobStatus::Completed, Some(conclusion.to_owned()))
        } else if jobs.iter().all(|(s, _)| *s == JobStatus::Queued) {
            (JobStatus::Queued, None)
        } else {
            (JobStatus::InProgress, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        let config = crate::SimConfig::for_tests(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        World::new(
            &["acme".to_owned()],
            &["acme/app".to_owned(), "alice/tool".to_owned()],
            Settings::from_config(&config),
            "http://sim".to_owned(),
            Outbox::disabled(),
        )
        .unwrap()
    }

    fn job(repo: &str, labels: &[&str]) -> NewJob {
        NewJob {
            repository: repo.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            duration_ms: 10,
            conclusion: "success".to_owned(),
            name: None,
            run_id: None,
            run: None,
        }
    }

    #[test]
    fn assigns_only_when_all_labels_match_case_insensitively() {
        let mut w = world();
        let r = w
            .register_runner(
                Scope::Org("acme".into()),
                "r1",
                &["Self-Hosted".into(), "linux".into()],
                1,
            )
            .unwrap();
        let secret = w.runners[&r].secret.clone();
        w.connect(r, &secret).unwrap();
        let (gpu, _) = w
            .create_job(job("acme/app", &["self-hosted", "gpu"]))
            .unwrap();
        assert_eq!(w.jobs[&gpu].status, JobStatus::Queued);
        let (ok, _) = w
            .create_job(job("ACME/App", &["self-hosted", "LINUX"]))
            .unwrap();
        assert_eq!(w.jobs[&ok].status, JobStatus::InProgress);
        assert_eq!(w.jobs[&gpu].status, JobStatus::Queued);
    }

    #[test]
    fn org_runner_does_not_take_other_owners_jobs() {
        let mut w = world();
        let r = w
            .register_runner(Scope::Org("acme".into()), "r1", &["x".into()], 1)
            .unwrap();
        let secret = w.runners[&r].secret.clone();
        w.connect(r, &secret).unwrap();
        let (j, _) = w.create_job(job("alice/tool", &["x"])).unwrap();
        assert_eq!(w.jobs[&j].status, JobStatus::Queued);
    }

    #[test]
    fn jit_is_single_use_and_names_unique() {
        let mut w = world();
        let scope = Scope::Repo("acme/app".into());
        let r = w
            .register_runner(scope.clone(), "r1", &["x".into()], 1)
            .unwrap();
        assert!(matches!(
            w.register_runner(scope, "R1", &["x".into()], 1),
            Err(RegisterError::NameTaken)
        ));
        let secret = w.runners[&r].secret.clone();
        let s = w.connect(r, &secret).unwrap();
        w.end_session(&s, "test");
        assert!(matches!(
            w.connect(r, &secret),
            Err(ConnectError::AlreadyUsed)
        ));
        assert!(matches!(w.connect(r, "nope"), Err(ConnectError::BadSecret)));
    }

    #[test]
    fn a_run_status_can_be_read_as_of_a_past_moment() {
        let mut w = world();
        let (id, run_id) = w.create_job(job("acme/app", &["x"])).unwrap();
        let created = w.jobs[&id].created_at;
        let second = chrono::Duration::seconds(1);
        let job = w.jobs.get_mut(&id).unwrap();
        job.status = JobStatus::Completed;
        job.conclusion = Some("failure".into());
        job.started_at = Some(created + second);
        job.completed_at = Some(created + second * 2);
        let run = w.runs[&run_id].clone();
        let at = |s: i32| Some(created + second * s);
        assert_eq!(w.run_status(&run, at(0)), (JobStatus::Queued, None));
        assert_eq!(w.run_status(&run, at(1)), (JobStatus::InProgress, None));
        let failed = (JobStatus::Completed, Some("failure".to_owned()));
        assert_eq!(w.run_status(&run, at(2)), failed);
        assert_eq!(w.run_status(&run, None), failed);
        assert_eq!(w.jobs[&id].state_at(created - second), None);
    }
}
