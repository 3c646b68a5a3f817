//! The runner stand-in (`sim-runner`): decode the JIT configuration, connect, run one job, exit.
//!
//! The configuration comes from `--jitconfig` or `ACTIONS_RUNNER_INPUT_JITCONFIG`. The real
//! runner removes that variable from its environment; a Rust 2024 program cannot do that
//! without `unsafe` (forbidden here), so instead the stand-in never logs the value and
//! removes it, with every other credential, from the environment of the one child it
//! starts: a job's `run:` script (see [`crate::step`]). The secret goes nowhere.
//!
//! A job without `run` "runs" by sleeping its `duration_ms` and reports its planned
//! conclusion. A job with `run` runs the script in `WORK/NAME/NAME` (`WORK` is
//! `RUNNER_WORK_DIR`, by default `$HOME/_work`; `NAME` the repository's name) and reports
//! `success` when it exits 0, `failure` otherwise, `cancelled` when cancelled (the script's
//! whole process group is stopped), with the end of the script's output.
//!
//! Exit codes: 0 after the job (any conclusion), after SIGTERM/SIGINT, or when the runner was
//! removed through the REST API while connected; 1 for a missing, malformed or already used
//! configuration, an unreachable simulator, or a lost session.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::jit_config::{JitConfig, JitConfigError};
use crate::protocol::{
    AssignedJob, CompleteRequest, ConnectRequest, ConnectResponse, DisconnectRequest, PollRequest,
    RunnerMessage,
};
use crate::step::Step;

/// How long connection errors are retried.
const RETRY_WINDOW: Duration = Duration::from_secs(10);
/// Pause between retries.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Long-poll wait requested while idle.
const IDLE_WAIT: Duration = Duration::from_secs(2);
/// Long-poll wait requested while a job runs (cancellations arrive this way).
const BUSY_WAIT: Duration = Duration::from_millis(1000);

/// Command line of `sim-runner` (mirrors `run.sh --jitconfig`).
#[derive(Parser, Debug)]
#[command(
    name = "sim-runner",
    version,
    about = "Stand-in for the GitHub Actions runner (one job, then exit)"
)]
pub struct StandInArgs {
    /// The `encoded_jit_config` from generate-jitconfig.
    #[arg(long, env = "ACTIONS_RUNNER_INPUT_JITCONFIG", hide_env_values = true, value_parser = parse_secret)]
    pub jitconfig: Option<SecretString>,
    /// The runner's work directory: a job's `run:` script runs in `WORK_DIR/NAME/NAME`
    /// (`NAME` being the repository's name). Default: `$HOME/_work`.
    #[arg(long, env = "RUNNER_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
}

impl StandInArgs {
    /// The work directory: `--work-dir`, else `$HOME/_work` (`./_work` without `HOME`), as
    /// the Actions runner's `_work` beside its home.
    pub fn effective_work_dir(&self) -> PathBuf {
        self.work_dir.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map_or_else(PathBuf::new, PathBuf::from)
                .join("_work")
        })
    }
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.trim()))
}

/// How a stand-in run ended without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The job ran and was reported with this conclusion.
    Completed {
        /// The job.
        job_id: u64,
        /// Reported conclusion.
        conclusion: String,
    },
    /// The runner was removed through the REST API.
    Removed(String),
    /// SIGTERM/SIGINT: disconnected.
    Interrupted,
}

/// Why a stand-in failed.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    /// No configuration given.
    #[error("no JIT configuration: set ACTIONS_RUNNER_INPUT_JITCONFIG or pass --jitconfig")]
    Missing,
    /// The configuration cannot be decoded.
    #[error(transparent)]
    Config(#[from] JitConfigError),
    /// The simulator refused the connection (e.g. the configuration was already used).
    #[error("connection refused by {url} ({status}): {message}")]
    Refused {
        /// Server URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The simulator could not be reached within the retry window.
    #[error("cannot reach {url}: {detail}")]
    Unreachable {
        /// Server URL.
        url: String,
        /// Last error.
        detail: String,
    },
    /// The session ended on the server (runner declared offline).
    #[error("the session was closed by the server (runner offline)")]
    SessionLost,
}

enum CallError {
    /// Worth retrying: connection problems, 5xx.
    Transient(String),
    /// Final: 4xx with the server's message.
    Status(u16, String),
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call_once<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<reqwest::Response, CallError> {
        let response = self
            .http
            .post(format!("{}/_runner/{path}", self.base))
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| CallError::Transient(e.to_string()))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(CallError::Transient(format!("HTTP {status}")));
        }
        if status.is_client_error() {
            let message = response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| status.to_string());
            return Err(CallError::Status(status.as_u16(), message));
        }
        Ok(response)
    }

    /// Retries transient failures for [`RETRY_WINDOW`].
    async fn call<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<reqwest::Response, CallError> {
        let deadline = Instant::now() + RETRY_WINDOW;
        loop {
            match self.call_once(path, body, timeout).await {
                Err(CallError::Transient(detail)) if Instant::now() < deadline => {
                    tracing::debug!(%detail, path, "retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                other => return other,
            }
        }
    }

    fn failure(&self, error: CallError) -> StandInError {
        match error {
            CallError::Transient(detail) => StandInError::Unreachable {
                url: self.base.clone(),
                detail,
            },
            CallError::Status(404, _) => StandInError::SessionLost,
            CallError::Status(status, message) => StandInError::Refused {
                url: self.base.clone(),
                status,
                message,
            },
        }
    }

    async fn poll(&self, session_id: &str, wait: Duration) -> Result<RunnerMessage, StandInError> {
        let request = PollRequest {
            session_id: session_id.to_owned(),
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        let response = self
            .call("poll", &request, wait + Duration::from_secs(5))
            .await
            .map_err(|e| self.failure(e))?;
        response
            .json()
            .await
            .map_err(|e| StandInError::Unreachable {
                url: self.base.clone(),
                detail: e.to_string(),
            })
    }

    async fn disconnect(&self, session_id: &str) {
        let request = DisconnectRequest {
            session_id: session_id.to_owned(),
        };
        let _ = self
            .call_once("disconnect", &request, Duration::from_secs(2))
            .await;
    }

    async fn complete(
        &self,
        session_id: &str,
        job: &AssignedJob,
        conclusion: &str,
        log: Option<String>,
    ) -> Result<Outcome, StandInError> {
        let request = CompleteRequest {
            session_id: session_id.to_owned(),
            job_id: job.id,
            conclusion: conclusion.to_owned(),
            log,
        };
        self.call("complete", &request, Duration::from_secs(5))
            .await
            .map_err(|e| self.failure(e))?;
        tracing::info!(job = job.id, conclusion, "job finished");
        Ok(Outcome::Completed {
            job_id: job.id,
            conclusion: conclusion.to_owned(),
        })
    }
}

/// Runs one ephemeral runner life from an encoded JIT configuration until the job is
/// done, the runner is removed, or `shutdown` resolves. A job's `run:` script runs below
/// `work_dir` (see [`StandInArgs::effective_work_dir`]).
///
/// # Errors
/// See [`StandInError`].
pub async fn run(
    encoded: &SecretString,
    work_dir: &Path,
    shutdown: impl Future<Output = ()>,
) -> Result<Outcome, StandInError> {
    let config = JitConfig::decode(encoded.expose_secret())?;
    let client = Client {
        http: reqwest::Client::new(),
        base: config.server_url.clone(),
    };
    tokio::pin!(shutdown);

    let connect = ConnectRequest {
        runner_id: config.runner_id,
        secret: config.secret.expose_secret().to_owned(),
    };
    let session_id = tokio::select! {
        () = &mut shutdown => return Ok(Outcome::Interrupted),
        response = client.call("connect", &connect, Duration::from_secs(5)) => {
            let response = response.map_err(|e| match e {
                CallError::Status(status, message) => StandInError::Refused { url: client.base.clone(), status, message },
                other => client.failure(other),
            })?;
            response
                .json::<ConnectResponse>()
                .await
                .map_err(|e| StandInError::Unreachable { url: client.base.clone(), detail: e.to_string() })?
                .session_id
        }
    };
    tracing::info!(runner = config.runner_id, name = %config.runner_name, "connected, listening for jobs");

    let job = loop {
        let message = tokio::select! {
            () = &mut shutdown => {
                client.disconnect(&session_id).await;
                return Ok(Outcome::Interrupted);
            }
            message = client.poll(&session_id, IDLE_WAIT) => message?,
        };
        match message {
            RunnerMessage::Job { job } => break job,
            RunnerMessage::Exit { message } => return Ok(Outcome::Removed(message)),
            RunnerMessage::Idle | RunnerMessage::Cancel { .. } => {}
        }
    };
    tracing::info!(
        job = job.id,
        duration_ms = job.duration_ms,
        script = job.run.is_some(),
        "running job"
    );
    if let Some(script) = &job.run {
        return run_script(&client, &session_id, &job, script, work_dir, shutdown).await;
    }

    let finish_at = Instant::now() + Duration::from_millis(job.duration_ms);
    loop {
        let wait = finish_at
            .saturating_duration_since(Instant::now())
            .min(BUSY_WAIT);
        tokio::select! {
            () = &mut shutdown => {
                client.disconnect(&session_id).await;
                return Ok(Outcome::Interrupted);
            }
            () = tokio::time::sleep_until(finish_at) => {
                return client.complete(&session_id, &job, &job.conclusion, None).await;
            }
            message = client.poll(&session_id, wait.max(Duration::from_millis(10))) => match message? {
                RunnerMessage::Cancel { job_id } if job_id == job.id => {
                    return client.complete(&session_id, &job, "cancelled", None).await;
                }
                RunnerMessage::Exit { message } => return Ok(Outcome::Removed(message)),
                _ => {}
            },
        }
    }
}

/// Runs `job`'s script to its end or its cancel, polling meanwhile (cancels arrive that
/// way). Leaving early (shutdown, removal, a lost session) drops the [`Step`], which kills
/// the script's process group.
async fn run_script(
    client: &Client,
    session_id: &str,
    job: &AssignedJob,
    script: &str,
    work_dir: &Path,
    shutdown: impl Future<Output = ()>,
) -> Result<Outcome, StandInError> {
    tokio::pin!(shutdown);
    let mut step = match Step::start(work_dir, job, script) {
        Ok(step) => step,
        Err(error) => {
            // As on GitHub: a step that cannot start fails the job, with the reason in its log.
            let log = format!("sim-runner: cannot start the step: {error}\n");
            return client.complete(session_id, job, "failure", Some(log)).await;
        }
    };
    loop {
        tokio::select! {
            () = &mut shutdown => {
                drop(step);
                client.disconnect(session_id).await;
                return Ok(Outcome::Interrupted);
            }
            status = step.wait() => {
                let conclusion = match status {
                    Ok(status) if status.success() => "success",
                    _ => "failure",
                };
                let log = step.finish().await;
                return client.complete(session_id, job, conclusion, Some(log)).await;
            }
            message = client.poll(session_id, BUSY_WAIT) => match message? {
                RunnerMessage::Cancel { job_id } if job_id == job.id => {
                    let log = step.cancel().await;
                    return client.complete(session_id, job, "cancelled", Some(log)).await;
                }
                RunnerMessage::Exit { message } => return Ok(Outcome::Removed(message)),
                _ => {}
            },
        }
    }
}

/// The whole `sim-runner` program after argument parsing: one line on stderr on failure.
pub async fn main(args: StandInArgs, shutdown: impl Future<Output = ()>) -> ExitCode {
    let work_dir = args.effective_work_dir();
    let result = match args.jitconfig.filter(|c| !c.expose_secret().is_empty()) {
        None => Err(StandInError::Missing),
        Some(config) => run(&config, &work_dir, shutdown).await,
    };
    match result {
        Ok(Outcome::Removed(message)) => {
            eprintln!("sim-runner: {message}; exiting");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Interrupted) => {
            eprintln!("sim-runner: interrupted; disconnected");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Completed { .. }) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sim-runner: error: {error}");
            ExitCode::FAILURE
        }
    }
}
