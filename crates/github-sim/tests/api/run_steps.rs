//! Jobs with a `run:` script, run by the `sim-runner` process as a runner runs a bash step:
//! the exit status decides the conclusion, the output comes back as the job's `log`, the
//! runner's credentials never reach the script, and a cancel stops it.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tokio::process::Child;

use crate::helpers::{REPO, TestSim, WorkDir, sim_runner_command, start, wait_for};
use crate::stand_in::finish;

/// A `sim-runner` process for `config` working in `work`, with `env` added.
fn sim_runner(config: &str, work: &WorkDir, env: &[(&str, &str)]) -> Child {
    let mut command = sim_runner_command(Some(config));
    command
        .env("RUNNER_WORK_DIR", work.path())
        .envs(env.iter().copied());
    command.spawn().expect("sim-runner starts")
}

/// Runs one job with `script` on a fresh runner (with `env`) to its end; returns the job.
async fn run_script(
    t: &TestSim,
    work: &WorkDir,
    script: &str,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let (_, config) = t
        .jit(
            REPO,
            &format!("step-{}", test_support::unique_id()),
            &["self-hosted"],
        )
        .await;
    let job = t
        .job_with_script("octo/app", &["self-hosted"], script)
        .await;
    let (code, stderr) = finish(sim_runner(&config, work, env)).await;
    assert_eq!(code, 0, "{stderr}");
    let done = t.sim_job(job).await;
    assert_eq!(done["status"], "completed", "{done}");
    done
}

#[tokio::test]
async fn a_script_that_exits_0_succeeds_with_its_output_in_the_log() {
    let t = start().await;
    let work = WorkDir::new();
    let done = run_script(
        &t,
        &work,
        "echo \"workspace $GITHUB_WORKSPACE\"\necho to-stderr >&2\npwd\n",
        &[],
    )
    .await;
    assert_eq!(done["conclusion"], "success");
    let workspace = work.path().join("app/app");
    let workspace = workspace.display();
    // stdout and stderr interleaved in the order they were written.
    assert_eq!(
        done["log"],
        format!("workspace {workspace}\nto-stderr\n{workspace}\n")
    );
    assert_eq!(
        done["run"],
        "echo \"workspace $GITHUB_WORKSPACE\"\necho to-stderr >&2\npwd\n"
    );
    // The script file in _work/_temp is gone; the workspace stays, as on a runner.
    assert!(work.path().join("app/app").is_dir());
    let temp: Vec<_> = std::fs::read_dir(work.path().join("_temp"))
        .unwrap()
        .collect();
    assert!(temp.is_empty(), "{temp:?}");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_failing_script_fails_the_job() {
    let t = start().await;
    let work = WorkDir::new();
    let done = run_script(&t, &work, "echo before\nexit 3\necho after\n", &[]).await;
    assert_eq!(done["conclusion"], "failure");
    assert_eq!(done["log"], "before\n");
    // `-eo pipefail`, as GitHub's bash: a failing command in a pipeline stops the script.
    let done = run_script(&t, &work, "false | cat\necho unreachable\n", &[]).await;
    assert_eq!(done["conclusion"], "failure");
    assert_eq!(done["log"], "");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn the_runner_credentials_never_reach_the_script_but_docker_host_does() {
    let t = start().await;
    let work = WorkDir::new();
    let secrets = [
        ("ACTIONS_RUNNER_INPUT_TOKEN", "registration-token-value"),
        ("RUNNER_TOKEN", "runner-token-value"),
        ("GITHUB_TOKEN", "github-token-value"),
    ];
    let mut env = secrets.to_vec();
    env.push(("DOCKER_HOST", "unix:///run/gha-docker/docker.sock"));
    env.push(("SOME_SETTING", "kept"));
    let (_, config) = t.jit(REPO, "env-check", &["self-hosted"]).await;
    let job = t
        .job_with_script("octo/app", &["self-hosted"], "env\n")
        .await;
    let (code, stderr) = finish(sim_runner(&config, &work, &env)).await;
    assert_eq!(code, 0, "{stderr}");
    let done = t.sim_job(job).await;
    assert_eq!(done["conclusion"], "success");
    let log = done["log"].as_str().unwrap();
    let lines: Vec<&str> = log.lines().collect();
    for expected in [
        "DOCKER_HOST=unix:///run/gha-docker/docker.sock",
        "SOME_SETTING=kept",
        "CI=true",
        "GITHUB_ACTIONS=true",
        "GITHUB_REPOSITORY=octo/app",
    ] {
        assert!(lines.contains(&expected), "{expected} missing from\n{log}");
    }
    let workspace = format!("GITHUB_WORKSPACE={}", work.path().join("app/app").display());
    assert!(lines.contains(&workspace.as_str()), "{log}");
    assert!(
        !log.contains(&config),
        "the JIT configuration reached the script"
    );
    for (name, value) in secrets {
        assert!(!log.contains(value), "{name}'s value reached the script");
    }
    for name in ["ACTIONS_RUNNER_INPUT_", "RUNNER_TOKEN", "GITHUB_TOKEN"] {
        assert!(!log.contains(name), "{name} reached the script:\n{log}");
    }
    t.sim.shutdown().await;
}

/// Whether process `pid` still runs (a zombie waiting for its reaper does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[tokio::test]
async fn a_cancel_stops_the_script_and_its_children_promptly() {
    let t = start().await;
    let work = WorkDir::new();
    let (_, config) = t.jit(REPO, "cancelled-step", &["self-hosted"]).await;
    let script = "echo started\nsleep 600 &\necho $! > \"$GITHUB_WORKSPACE/sleep.pid\"\nwait\n";
    let job = t
        .job_with_script("octo/app", &["self-hosted"], script)
        .await;
    let child = sim_runner(&config, &work, &[]);
    let pid_file = work.path().join("app/app/sleep.pid");
    let sleep_pid: u32 = wait_for("the script's sleep", Duration::from_secs(10), || async {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|pid| pid.trim().parse().ok())
    })
    .await;
    assert!(running(sleep_pid));

    let cancelled_at = Instant::now();
    let r = t
        .raw(Method::POST, &format!("/_sim/jobs/{job}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let done = t.wait_job_status(job, "completed").await;
    assert_eq!(done["conclusion"], "cancelled");
    assert_eq!(done["log"], "started\n");
    let (code, stderr) = finish(child).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "the cancel took {:?}",
        cancelled_at.elapsed()
    );
    wait_for("the sleep to end", Duration::from_secs(5), || async {
        (!running(sleep_pid)).then_some(())
    })
    .await;
    t.sim.shutdown().await;
}
