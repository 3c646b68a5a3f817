//! A job's `run:` step in the stand-in: a bash script run as the Actions runner runs one,
//! in the job's workspace, without the runner's credentials, its output kept for the
//! completion.
//!
//! As on GitHub, the script is written to a file under `_work/_temp` and run with
//! `bash --noprofile --norc -eo pipefail FILE`, in `_work/NAME/NAME` (`NAME` being the
//! repository's name), with `GITHUB_WORKSPACE` naming that directory. The step inherits the
//! runner's environment (so `DOCKER_HOST` reaches it) except every variable
//! [`is_credential`] names. The script leads a process group of its own: a cancel signals
//! the whole group, and whatever the script left running in it is killed when the step
//! ends, as the runner's orphan-process clean-up does.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::protocol::{AssignedJob, LOG_LIMIT_BYTES, clip_log};

/// How long a cancelled script has between SIGTERM and SIGKILL (the runner's last step
/// before it kills a cancelled step's processes).
const CANCEL_GRACE: Duration = Duration::from_millis(2500);
/// How long the output may still flow once the script ended and its group was killed (a
/// process that left the group may hold the pipe open for ever).
const DRAIN_WAIT: Duration = Duration::from_secs(2);
/// Workspace directory name when the repository is not known (a simulator older than
/// `repository` in [`AssignedJob`]).
const UNKNOWN_REPOSITORY: &str = "workspace";

/// Whether the runner's environment variable `name` is a credential that must not reach a
/// step: the runner's configuration inputs (`ACTIONS_RUNNER_INPUT_*`, which hold the JIT
/// configuration and the registration token) and anything named like a token, secret,
/// password or private key (`RUNNER_TOKEN`, `ACCESS_TOKEN`, `GITHUB_TOKEN`,
/// `APP_PRIVATE_KEY`, …).
pub(crate) fn is_credential(name: &OsStr) -> bool {
    const SECRET_ENDINGS: [&str; 5] = ["TOKEN", "SECRET", "PASSWORD", "PRIVATE_KEY", "JITCONFIG"];
    let name = name.to_string_lossy().to_ascii_uppercase();
    name.starts_with("ACTIONS_RUNNER_INPUT_")
        || SECRET_ENDINGS.iter().any(|ending| name.ends_with(ending))
}

/// The end of a byte stream, at most [`LOG_LIMIT_BYTES`] of it.
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        // Trimmed only past twice the limit, so a chatty script does not move 64 KiB for
        // every line it prints.
        if self.bytes.len() > 2 * LOG_LIMIT_BYTES {
            let excess = self.bytes.len() - LOG_LIMIT_BYTES;
            self.bytes.drain(..excess);
        }
    }

    /// The kept end as text: starts at a whole UTF-8 character, invalid bytes replaced.
    fn text(&self) -> String {
        let mut end = &self.bytes[self.bytes.len().saturating_sub(LOG_LIMIT_BYTES)..];
        // Skip the continuation bytes of a character cut by the limit (at most 3).
        for _ in 0..3 {
            match end.first() {
                Some(byte) if byte & 0b1100_0000 == 0b1000_0000 => end = &end[1..],
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(end);
        // A replacement character is longer than the byte it replaces.
        clip_log(&text).to_owned()
    }
}

/// Where a step runs, below the runner's work directory.
#[derive(Debug)]
struct Workspace {
    /// `WORK/NAME/NAME`: the step's working directory and `GITHUB_WORKSPACE`.
    dir: PathBuf,
    /// `WORK/_temp`: the script file and `RUNNER_TEMP`.
    temp: PathBuf,
}

impl Workspace {
    fn create(work_dir: &Path, repository: Option<&str>) -> io::Result<Self> {
        let name = repository
            .and_then(|full| full.rsplit('/').next())
            .filter(|name| !name.is_empty() && *name != "." && *name != "..")
            .unwrap_or(UNKNOWN_REPOSITORY);
        let dir = work_dir.join(name).join(name);
        let temp = work_dir.join("_temp");
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(&temp)?;
        Ok(Self { dir, temp })
    }
}

/// A running `run:` step. Dropping it kills the script's whole process group and removes
/// the script file, whatever way the runner leaves the job.
#[derive(Debug)]
pub(crate) struct Step {
    child: Child,
    /// The script's process group (its id is the `bash` process's).
    group: Pid,
    /// The end of the output so far, filled by `reader`.
    output: Arc<Mutex<Tail>>,
    reader: JoinHandle<()>,
    script_file: PathBuf,
}

impl Step {
    /// Writes the script to a file and starts it for `job` below `work_dir`.
    ///
    /// # Errors
    /// When the workspace, the script file or the output pipe cannot be made, or `bash`
    /// cannot be started.
    pub(crate) fn start(work_dir: &Path, job: &AssignedJob, script: &str) -> io::Result<Self> {
        let workspace = Workspace::create(work_dir, job.repository.as_deref())?;
        let script_file = workspace
            .temp
            .join(format!("{}.sh", uuid::Uuid::new_v4().simple()));
        std::fs::write(&script_file, script)?;
        let started = Self::spawn(job, &workspace, script_file.clone());
        if started.is_err() {
            let _ = std::fs::remove_file(&script_file);
        }
        started
    }

    /// Starts `bash` on `script_file` and the task that collects its output.
    fn spawn(job: &AssignedJob, workspace: &Workspace, script_file: PathBuf) -> io::Result<Self> {
        // One pipe for stdout and stderr, so the log interleaves them as they were written.
        let (read_end, write_end) = io::pipe()?;
        let mut receiver = pipe::Receiver::from_owned_fd(OwnedFd::from(read_end))?;
        let mut command = Command::new("bash");
        command
            .args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script_file)
            .current_dir(&workspace.dir)
            .stdin(Stdio::null())
            .stdout(write_end.try_clone()?)
            .stderr(write_end)
            .process_group(0)
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if is_credential(&name) {
                command.env_remove(name);
            }
        }
        command
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", &workspace.dir)
            .env("GITHUB_RUN_ID", job.run_id.to_string())
            .env("RUNNER_TEMP", &workspace.temp);
        if let Some(repository) = &job.repository {
            command.env("GITHUB_REPOSITORY", repository);
        }
        let spawned = command.spawn();
        // The command holds our copies of the pipe's write end: without dropping them the
        // output would never end.
        drop(command);
        let child = spawned?;
        let group = Pid::from_raw(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .unwrap_or(0),
        );
        let output = Arc::new(Mutex::new(Tail::default()));
        let sink = Arc::clone(&output);
        let reader = tokio::spawn(async move {
            let mut chunk = vec![0; 16 * 1024];
            while let Ok(n @ 1..) = receiver.read(&mut chunk).await {
                if let Ok(mut tail) = sink.lock() {
                    tail.push(&chunk[..n]);
                }
            }
        });
        Ok(Self {
            child,
            group,
            output,
            reader,
            script_file,
        })
    }

    /// Waits for the script to exit. Cancel-safe: a `select!` may drop it and call again.
    ///
    /// # Errors
    /// When waiting for the process fails.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Once the script exited: kills what it left running and returns the end of its
    /// output.
    pub(crate) async fn finish(&mut self) -> String {
        self.signal(Signal::SIGKILL);
        self.collect_output().await
    }

    /// Stops the script: SIGTERM to its process group, SIGKILL after [`CANCEL_GRACE`];
    /// returns the end of its output.
    pub(crate) async fn cancel(&mut self) -> String {
        self.signal(Signal::SIGTERM);
        if tokio::time::timeout(CANCEL_GRACE, self.child.wait())
            .await
            .is_err()
        {
            tracing::debug!("the step ignored SIGTERM; killing it");
        }
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait().await;
        self.collect_output().await
    }

    /// Signals the script's process group; a group that is gone already is no error.
    fn signal(&self, signal: Signal) {
        if self.group.as_raw() > 0 {
            let _ = killpg(self.group, signal);
        }
    }

    async fn collect_output(&mut self) -> String {
        if tokio::time::timeout(DRAIN_WAIT, &mut self.reader)
            .await
            .is_err()
        {
            self.reader.abort();
        }
        self.output
            .lock()
            .map(|tail| tail.text())
            .unwrap_or_default()
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
        self.reader.abort();
        let _ = std::fs::remove_file(&self.script_file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_recognised_by_name() {
        for secret in [
            "ACTIONS_RUNNER_INPUT_JITCONFIG",
            "ACTIONS_RUNNER_INPUT_TOKEN",
            "ACTIONS_RUNNER_INPUT_URL",
            "RUNNER_TOKEN",
            "ACCESS_TOKEN",
            "GITHUB_TOKEN",
            "gh_token",
            "APP_PRIVATE_KEY",
            "WEBHOOK_SECRET",
            "REGISTRY_PASSWORD",
        ] {
            assert!(is_credential(OsStr::new(secret)), "{secret}");
        }
        for plain in [
            "DOCKER_HOST",
            "HOME",
            "PATH",
            "RUNNER_NAME",
            "TOKENIZER_MODE",
        ] {
            assert!(!is_credential(OsStr::new(plain)), "{plain}");
        }
    }

    #[test]
    fn the_tail_keeps_the_end_and_starts_at_a_whole_character() {
        let mut tail = Tail::default();
        tail.push("é".as_bytes());
        for _ in 0..3 {
            tail.push(&vec![b'x'; LOG_LIMIT_BYTES]);
        }
        tail.push(b"end");
        let text = tail.text();
        assert_eq!(text.len(), LOG_LIMIT_BYTES);
        assert!(text.ends_with("xend"));

        let mut cut = Tail::default();
        cut.push("é".as_bytes());
        cut.push(&vec![b'y'; LOG_LIMIT_BYTES - 1]);
        // The limit falls inside `é`: its second byte is skipped, not shown as U+FFFD.
        assert_eq!(cut.text(), "y".repeat(LOG_LIMIT_BYTES - 1));
    }

    #[test]
    fn the_workspace_is_named_after_the_repository() {
        let work = std::env::temp_dir().join(format!("sim-step-{}", uuid::Uuid::new_v4()));
        let known = Workspace::create(&work, Some("acme/web")).unwrap();
        assert_eq!(known.dir, work.join("web/web"));
        assert!(known.dir.is_dir() && known.temp.is_dir());
        for unknown in [None, Some("acme/.."), Some("acme/")] {
            let ws = Workspace::create(&work, unknown).unwrap();
            assert_eq!(ws.dir, work.join("workspace/workspace"), "{unknown:?}");
        }
        std::fs::remove_dir_all(&work).unwrap();
    }

    #[tokio::test]
    async fn a_background_process_left_behind_does_not_hold_the_step_open() {
        let work = std::env::temp_dir().join(format!("sim-step-{}", uuid::Uuid::new_v4()));
        let job = AssignedJob {
            id: 1,
            run_id: 2,
            name: "bg".to_owned(),
            duration_ms: 0,
            conclusion: "success".to_owned(),
            run: None,
            repository: Some("acme/web".to_owned()),
        };
        let mut step = Step::start(&work, &job, "sleep 600 &\necho left it\n").unwrap();
        let status = step.wait().await.unwrap();
        assert!(status.success());
        let log = tokio::time::timeout(Duration::from_secs(1), step.finish())
            .await
            .expect("the leftover sleep was killed, so the output ended");
        assert_eq!(log, "left it\n");
        drop(step);
        std::fs::remove_dir_all(&work).unwrap();
    }
}
