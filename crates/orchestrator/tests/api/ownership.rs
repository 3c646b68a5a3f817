//! Which containers are an orchestrator's: one orchestrator per id on an
//! engine (a lease), and containers with our id but another GitHub or
//! another configured scope are another deployment's, left alone.

use std::process::Stdio;
use std::time::Duration;

use test_support::{TestDocker, wait_for};

use crate::helpers::{ORG, TestEnv, free_port};

/// The lease volume of an orchestrator id.
fn lease_volume(instance: &str) -> String {
    format!("gha-orchestrator-lease-{instance}")
}

fn volume_exists(name: &str) -> bool {
    std::process::Command::new("docker")
        .args(["volume", "inspect", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The id of the container named `name`, `None` when there is none.
fn container_id(name: &str) -> Option<String> {
    TestDocker::inspect(name).and_then(|c| c["Id"].as_str().map(str::to_owned))
}

/// Runs a second orchestrator with `env`'s settings on another port and
/// waits for it to exit; its exit status and what it printed.
async fn second_orchestrator(env: &TestEnv) -> (std::process::ExitStatus, String) {
    let mut command = env.orchestrator_command(free_port());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().expect("start a second orchestrator");
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("the second orchestrator exits within 30 s")
    .unwrap()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_orchestrator_with_the_same_id_refuses_to_start() {
    let mut env = TestEnv::start().await;
    let runner = env.create(1).await.remove(0);
    env.wait_state(&runner, "idle", Duration::from_secs(20))
        .await;
    let lease = lease_volume(&env.docker.id);
    assert!(
        volume_exists(&lease),
        "the running orchestrator holds a lease"
    );

    let (status, output) = second_orchestrator(&env).await;
    assert!(!status.success(), "the second one must not start: {output}");
    assert!(
        output.contains(&format!(
            "another orchestrator with ORCHESTRATOR_ID={} is running",
            env.docker.id
        )),
        "{output}"
    );
    assert!(
        output.contains(&lease),
        "says how to clear a stale lease: {output}"
    );
    // The first one and its runner were not touched.
    let (_, body) = env.get(&format!("/runners/{runner}/status")).await;
    assert_eq!(body["state"], "idle", "{body}");
    assert_eq!(env.containers(), vec![runner.clone()]);

    // A clean stop gives the id back...
    env.terminate_orchestrator().await;
    assert!(!volume_exists(&lease), "the lease is released at shutdown");
    // ...and a crash leaves a lease whose holder is gone, which the next
    // start takes over.
    env.start_orchestrator().await;
    assert!(volume_exists(&lease));
    env.kill_orchestrator();
    assert!(volume_exists(&lease), "SIGKILL leaves the lease behind");
    env.start_orchestrator().await;
    let (status, health) = env.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert!(
        env.log().contains("taking over the lease"),
        "the stale lease was taken over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_another_github_or_scope_are_left_alone() {
    let mut env = TestEnv::start().await;
    let runner = env.create(1).await.remove(0);
    env.wait_state(&runner, "idle", Duration::from_secs(20))
        .await;
    let before = container_id(&runner);
    // The same id, another configured scope: another deployment.
    env.kill_orchestrator();
    env.set_env("GITHUB_REPOSITORY", &format!("{ORG}/other"));
    env.start_orchestrator().await;
    let passes = env.passes("reconcile").await;
    env.wait_passes("reconcile", passes + 3).await;
    let (_, listed) = env.get("/runners").await;
    assert_eq!(
        listed["runners"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    assert!(before.is_some());
    assert_eq!(
        container_id(&runner),
        before,
        "the other deployment's runner is untouched"
    );
    let log = env.log();
    assert!(
        log.contains("belong to another GitHub or another configured scope")
            && log.contains(&runner),
        "named at start"
    );
    let registrations = env.registrations().await;
    assert_eq!(
        registrations.len(),
        1,
        "its registration stays: {registrations:?}"
    );

    // Back with the first configuration, it is ours again.
    env.terminate_orchestrator().await;
    env.set_env("GITHUB_REPOSITORY", crate::helpers::REPO);
    env.start_orchestrator().await;
    wait_for(
        "the runner to be adopted again",
        Duration::from_secs(20),
        || async {
            let (_, body) = env.get(&format!("/runners/{runner}/status")).await;
            (body["state"] == "idle").then_some(())
        },
    )
    .await;
}
