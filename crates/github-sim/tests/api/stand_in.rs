//! The `sim-runner` process and the runner lifecycle: job to completion, single-use JIT,
//! bad configurations, SIGTERM, label matching, liveness timeout.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::helpers::{ORG, REPO, sim_runner_command, stand_in, start, start_with, wait_for};

fn sim_runner(config: Option<&str>) -> Child {
    sim_runner_command(config)
        .spawn()
        .expect("sim-runner starts")
}

/// Waits for a `sim-runner` process to exit; returns its exit code and stderr.
pub(crate) async fn finish(child: Child) -> (i32, String) {
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("sim-runner exits")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn process_runs_a_job_then_runner_disappears_and_config_is_single_use() {
    let t = start().await;
    let (id, config) = t.jit(REPO, "proc-1", &["self-hosted", "linux"]).await;
    let (job, _) = t.job("octo/app", &["self-hosted"], 200).await;
    let (code, stderr) = finish(sim_runner(Some(&config))).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr.contains(&config),
        "the JIT config must not be logged"
    );
    let done = t.sim_job(job).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["conclusion"], "success");
    assert_eq!(done["runner_id"], id);
    let list: Value = t
        .gh(Method::GET, &format!("{REPO}/actions/runners"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total_count"], 0);
    let r = t
        .gh(Method::GET, &format!("{REPO}/actions/runners/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Same configuration again: refused (the runner is gone).
    let (code, stderr) = finish(sim_runner(Some(&config))).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("sim-runner: error:"), "{stderr}");

    // A used configuration whose runner still exists (it went offline): refused as used.
    let (id, config) = t.jit(ORG, "proc-2", &["self-hosted"]).await;
    let (handle, stop) = stand_in(config.clone());
    t.wait_online(id).await;
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
    let (code, stderr) = finish(sim_runner(Some(&config))).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("already been used"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn missing_or_malformed_config_exits_1() {
    for config in [None, Some(""), Some("not-base64!"), Some("e30=")] {
        let (code, stderr) = finish(sim_runner(config)).await;
        assert_eq!(code, 1, "{config:?}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("sim-runner: error:"), "{stderr}");
    }
    // --jitconfig on the command line works like run.sh's.
    let output = Command::new(env!("CARGO_BIN_EXE_sim-runner"))
        .args(["--jitconfig", "garbage"])
        .env_remove("ACTIONS_RUNNER_INPUT_JITCONFIG")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("base64"));
}

#[tokio::test]
async fn sigterm_disconnects_promptly_and_runner_goes_offline() {
    let t = start().await;
    let (id, config) = t.jit(REPO, "proc-term", &["self-hosted"]).await;
    let child = sim_runner(Some(&config));
    t.wait_online(id).await;
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let (code, stderr) = finish(child).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Offline at once (well within the 3 s liveness timeout).
    let runner: Value = t
        .gh(Method::GET, &format!("{REPO}/actions/runners/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runner["status"], "offline");
    assert_eq!(runner["busy"], false);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn jobs_go_only_to_runners_with_all_labels() {
    let t = start().await;
    let (id, config) = t.jit(ORG, "labelled", &["self-hosted", "Linux"]).await;
    let (handle, _stop) = stand_in(config);
    t.wait_online(id).await;
    let (gpu, _) = t.job("acme/web", &["self-hosted", "gpu"], 0).await;
    let (other_owner, _) = t.job("octo/app", &["self-hosted"], 0).await;
    let (fits, _) = t.job("acme/web", &["SELF-HOSTED", "linux"], 50).await;
    let done = t.wait_job_status(fits, "completed").await;
    assert_eq!(done["runner_id"], id);
    handle.await.unwrap().unwrap();
    // The runner was online and idle when `gpu` and `other_owner` were queued, yet it took `fits`.
    for job in [gpu, other_owner] {
        let view = t.sim_job(job).await;
        assert_eq!(view["status"], "queued", "{view}");
        assert_eq!(view["runner_id"], Value::Null);
    }
    // A repo runner with the labels takes the GPU job later (FIFO re-evaluated on connect).
    let (id, config) = t
        .jit("/repos/acme/web", "gpu-box", &["self-hosted", "GPU"])
        .await;
    let (handle, _stop) = stand_in(config);
    let done = t.wait_job_status(gpu, "completed").await;
    assert_eq!(done["runner_id"], id);
    handle.await.unwrap().unwrap();
    t.sim.shutdown().await;
}

#[tokio::test]
async fn runner_that_stops_polling_goes_offline_and_its_job_fails() {
    let t = start_with(|c| c.runner_offline_after_ms = 600).await;
    let (id, config) = t.jit(REPO, "vanishing", &["self-hosted"]).await;
    let (handle, _stop) = stand_in(config);
    t.wait_online(id).await;
    let (job, _) = t.job("octo/app", &["self-hosted"], 60_000).await;
    t.wait_job_status(job, "in_progress").await;
    handle.abort(); // like `docker kill`: no goodbye
    let done = t.wait_job_status(job, "completed").await;
    assert_eq!(done["conclusion"], "failure");
    let runner = wait_for("runner offline", Duration::from_secs(5), || async {
        t.sim_runner(id).await.filter(|r| r["status"] == "offline")
    })
    .await;
    assert_eq!(runner["busy"], false);
    assert_eq!(runner["jit_used"], true);
    t.sim.shutdown().await;
}
