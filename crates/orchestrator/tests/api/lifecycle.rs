//! Create, run a job, finish, delete, clean up.

use std::time::Duration;

use serde_json::json;
use test_support::{TestDocker, wait_for};

use crate::helpers::{REPO, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_runners_carry_our_labels_and_are_registered() {
    let env = TestEnv::start().await;
    let (status, body) = env
        .post("/runners/create", json!({"count": 5, "labels": ["gpu"]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let runners = body["runners"].as_array().unwrap();
    assert_eq!(runners.len(), 5);
    let registrations = env.registrations().await;
    for runner in runners {
        let id = runner["id"].as_str().unwrap();
        assert_eq!(runner["repository"], REPO);
        assert_eq!(
            runner["labels"],
            json!(["self-hosted", "linux", "x64", "gpu"])
        );
        let inspect = TestDocker::inspect(id).expect("container exists");
        let labels = &inspect["Config"]["Labels"];
        assert_eq!(labels["dev.gha-runners.managed"], "true");
        assert_eq!(labels["dev.gha-runners.name"], id);
        assert_eq!(labels["dev.gha-runners.target"], REPO);
        assert_eq!(inspect["HostConfig"]["Privileged"], false);
        assert_eq!(inspect["HostConfig"]["RestartPolicy"]["Name"], "no");
        assert!(
            inspect["Mounts"].as_array().unwrap().is_empty(),
            "no mounts, no Docker socket"
        );
        assert!(
            registrations.iter().any(|r| r["name"] == id),
            "{id} registered"
        );
    }
    // The stand-ins connect: every runner goes idle.
    for runner in runners {
        env.wait_state(
            runner["id"].as_str().unwrap(),
            "idle",
            Duration::from_secs(20),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_takes_one_job_and_vanishes() {
    let env = TestEnv::start().await;
    let id = env.create(1).await.remove(0);
    env.wait_state(&id, "idle", Duration::from_secs(20)).await;
    let job = env.queue_job(&["self-hosted", "linux"], 3000).await;
    let busy = env.wait_state(&id, "busy", Duration::from_secs(15)).await;
    assert_eq!(busy["state"], "busy");
    let finished = wait_for(
        "the finished runner's container to be removed",
        Duration::from_secs(20),
        || async {
            let body = env
                .wait_state(&id, "finished", Duration::from_secs(20))
                .await;
            body["container_id"].is_null().then_some(body)
        },
    )
    .await;
    assert_eq!(finished["exit_code"], 0);
    let job = env.job(job).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(job["runner_name"], id.as_str());
    env.wait_nothing_left(Duration::from_secs(10)).await;
    // At most two GitHub calls per lifecycle: the JIT config and one DELETE.
    let stats = env.sim_get("/_sim/stats").await;
    let calls = &stats["api_calls"];
    let jit = calls["POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig"]
        .as_i64()
        .unwrap_or(0);
    let deletes = calls["DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}"]
        .as_i64()
        .unwrap_or(0);
    assert_eq!(jit, 1, "{stats}");
    assert!(deletes <= 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_idle_runner_deregisters_then_removes_it() {
    let env = TestEnv::start().await;
    let id = env.create(1).await.remove(0);
    env.wait_state(&id, "idle", Duration::from_secs(20)).await;
    let (status, body) = env.delete(&format!("/runners/{id}")).await;
    assert_eq!(status, 204, "{body}");
    assert!(TestDocker::inspect(&id).is_none());
    assert!(env.registrations().await.is_empty());
    let (status, _) = env.get(&format!("/runners/{id}/status")).await;
    assert_eq!(status, 404);
    let (status, body) = env.delete(&format!("/runners/{id}")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_runner_is_kept_unless_forced() {
    let env = TestEnv::start().await;
    let id = env.create(1).await.remove(0);
    env.wait_state(&id, "idle", Duration::from_secs(20)).await;
    env.queue_job(&["self-hosted"], 60_000).await;
    env.wait_state(&id, "busy", Duration::from_secs(15)).await;
    let (status, body) = env.delete(&format!("/runners/{id}")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "runner_busy");
    assert!(TestDocker::inspect(&id).is_some(), "busy runner kept");
    let (status, body) = env.delete(&format!("/runners/{id}?force=true")).await;
    assert_eq!(status, 204, "{body}");
    assert!(TestDocker::inspect(&id).is_none());
    // The registration goes once GitHub sees the runner offline.
    env.wait_nothing_left(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_exited_containers_and_orphan_registrations() {
    let env = TestEnv::start_with(crate::helpers::Options {
        // Passes only on request, so the test sees what one pass does.
        env: vec![("RECONCILE_INTERVAL_SECONDS", "3600".into())],
        ..Default::default()
    })
    .await;
    let id = env.create(1).await.remove(0);
    // An orphan: registered with our prefix, no container (a crash between
    // the JIT call and the container create looks like this).
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/repos/{REPO}/actions/runners/generate-jitconfig", env.sim_url()))
        .bearer_auth(crate::helpers::TOKEN)
        .header("user-agent", "orchestrator-tests")
        .json(&json!({"name": "gha-runner-orphan0001", "runner_group_id": 1, "labels": ["self-hosted"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // The runner's container dies without an event reaching us in time:
    // stop it behind the orchestrator's back, then ask for a pass.
    std::process::Command::new("docker")
        .args(["kill", &id])
        .output()
        .unwrap();
    let report = wait_for(
        "a pass that removes both",
        Duration::from_secs(20),
        || async {
            let (status, report) = env.post("/runners/cleanup", json!({})).await;
            assert_eq!(status, 200, "{report}");
            let removed =
                env.registrations().await.is_empty() && TestDocker::inspect(&id).is_none();
            removed.then_some(report)
        },
    )
    .await;
    let _ = report;
    assert!(env.containers().is_empty());
    let (_, listed) = env.get(&format!("/runners/{id}/status")).await;
    assert_eq!(listed["state"], "failed", "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_never_comes_online_is_removed_after_the_timeout() {
    let env = TestEnv::start_with(crate::helpers::Options {
        env: vec![
            // The container runs but never connects to GitHub.
            ("RUNNER_COMMAND", "sleep 600".into()),
            ("RUNNER_REGISTRATION_TIMEOUT_SECONDS", "3".into()),
        ],
        ..Default::default()
    })
    .await;
    let id = env.create(1).await.remove(0);
    let failed = env.wait_state(&id, "failed", Duration::from_secs(20)).await;
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("did not come online"),
        "{failed}"
    );
    env.wait_nothing_left(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_exits_with_an_error_is_failed_and_deregistered() {
    let env = TestEnv::start_with(crate::helpers::Options {
        env: vec![("RUNNER_COMMAND", "false".into())],
        ..Default::default()
    })
    .await;
    let id = env.create(1).await.remove(0);
    let failed = wait_for(
        "the failed runner to be removed",
        Duration::from_secs(20),
        || async {
            let (_, body) = env.get(&format!("/runners/{id}/status")).await;
            (body["state"] == "failed" && body["container_id"].is_null()).then_some(body)
        },
    )
    .await;
    assert_eq!(failed["exit_code"], 1, "{failed}");
    env.wait_nothing_left(Duration::from_secs(10)).await;
    // Exit is final: no container with that name came back.
    assert!(TestDocker::inspect(&id).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_7_marks_the_runner_failed_as_deprecated() {
    let env = TestEnv::start_with(crate::helpers::Options {
        env: vec![("RUNNER_COMMAND", "sh -c 'exit 7'".into())],
        ..Default::default()
    })
    .await;
    let id = env.create(1).await.remove(0);
    let failed = wait_for(
        "the deprecated runner to be removed",
        Duration::from_secs(20),
        || async {
            let (_, body) = env.get(&format!("/runners/{id}/status")).await;
            (body["state"] == "failed" && body["container_id"].is_null()).then_some(body)
        },
    )
    .await;
    assert_eq!(failed["exit_code"], 7, "{failed}");
    assert!(
        failed["reason"].as_str().unwrap().contains("deprecated"),
        "{failed}"
    );
    env.wait_nothing_left(Duration::from_secs(10)).await;
}
