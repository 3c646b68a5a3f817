//! The GitHub token never leaks: not in containers, not in logs, not in answers.
//! Nor do a GitHub App's private key, its JWTs and its installation tokens.

use std::time::Duration;

use serde_json::json;
use test_support::TestDocker;

use crate::helpers::{TOKEN, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_appears_nowhere() {
    let env = TestEnv::start().await;
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 201);
    assert!(!body.to_string().contains(TOKEN));
    let id = body["runners"][0]["id"].as_str().unwrap().to_owned();
    env.wait_state(&id, "idle", Duration::from_secs(20)).await;
    let inspect = TestDocker::inspect(&id).unwrap().to_string();
    assert!(!inspect.contains(TOKEN), "token in docker inspect");
    assert!(inspect.contains("ACTIONS_RUNNER_INPUT_JITCONFIG"));
    let (_, health) = env.get("/health").await;
    assert!(!health.to_string().contains(TOKEN));
    let (_, list) = env.get("/runners").await;
    assert!(!list.to_string().contains(TOKEN));
    let jit = inspect
        .split("ACTIONS_RUNNER_INPUT_JITCONFIG=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let (status, _) = env.delete(&format!("/runners/{id}")).await;
    assert_eq!(status, 204);
    // Logged at trace level: neither the token nor the JIT configuration.
    let log = env.log();
    assert!(!log.is_empty());
    assert!(!log.contains(TOKEN), "token in the orchestrator's log");
    assert!(
        !log.contains(&jit),
        "JIT configuration in the orchestrator's log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_key_jwts_and_installation_tokens_appear_nowhere() {
    use crate::github_app::{AppKeys, app_options};
    let keys = AppKeys::new();
    // Tokens of a few seconds: several are minted while the test runs.
    let env = TestEnv::start_with(app_options(&keys, &["acme"], 3, &[])).await;
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 201, "{body}");
    let id = body["runners"][0]["id"].as_str().unwrap().to_owned();
    env.wait_state(&id, "idle", Duration::from_secs(20)).await;
    let minted = || async {
        env.sim_get("/_sim/stats").await["installation_tokens_issued_total"]
            .as_u64()
            .unwrap()
    };
    let first = minted().await;
    // The reconcile pass lists runners every second: a renewal comes.
    test_support::wait_for(
        "an installation token renewed",
        Duration::from_secs(20),
        || async { (minted().await > first).then_some(()) },
    )
    .await;
    let fragment = keys.key_fragment();
    // What each secret looks like: installation tokens start `ghs_`, the
    // App's JWTs with the base64 of `{"typ":"JWT","alg":"RS256"}`.
    let secrets = [fragment.as_str(), "ghs_", "eyJ0eXAiOiJKV1Qi", "PRIVATE KEY"];
    let inspect = TestDocker::inspect(&id).unwrap().to_string();
    let (_, health) = env.get("/health").await;
    let (_, list) = env.get("/runners").await;
    let (status, _) = env.delete(&format!("/runners/{id}")).await;
    assert_eq!(status, 204);
    let log = env.log();
    assert!(!log.is_empty());
    for secret in secrets {
        assert!(!inspect.contains(secret), "{secret:?} in docker inspect");
        assert!(
            !body.to_string().contains(secret),
            "{secret:?} in an answer"
        );
        assert!(
            !health.to_string().contains(secret),
            "{secret:?} in /health"
        );
        assert!(!list.to_string().contains(secret), "{secret:?} in the list");
        assert!(
            !log.contains(secret),
            "{secret:?} in the orchestrator's log"
        );
    }
    assert!(
        log.contains("installation token minted"),
        "renewals are logged, without the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_docker_github_and_counts() {
    let env = TestEnv::start().await;
    let (status, health) = env.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["docker"]["reachable"], true);
    assert!(health["docker"]["version"].is_string());
    assert_eq!(health["github"]["reachable"], true);
    assert!(health["github"]["rate_limit_remaining"].as_i64().unwrap() > 0);
    assert_eq!(health["runner_image"]["present"], true);
    assert_eq!(health["runners"]["idle"], 0);
    assert_eq!(health["max_runners"], 10);
    let (status, spec) = env.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        spec["paths"]["/runners/create"]["post"].is_object(),
        "{spec}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_can_come_from_a_file_instead_of_the_environment() {
    let file = std::env::temp_dir().join(format!("gha-token-{}", test_support::unique_id()));
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let env = TestEnv::start_with(crate::helpers::Options {
        env: vec![
            ("GITHUB_TOKEN", String::new()),
            ("GITHUB_TOKEN_FILE", file.display().to_string()),
        ],
        ..Default::default()
    })
    .await;
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 201, "{body}");
    let _ = std::fs::remove_file(file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_the_orchestrator_may_not_read_names_the_file_and_the_mode() {
    use std::os::unix::fs::PermissionsExt;
    let file = std::env::temp_dir().join(format!("gha-token-{}", test_support::unique_id()));
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let mode = if crate::helpers::running_as_root() {
        0o600
    } else {
        0o000
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    let docker = TestDocker::new();
    let output = crate::helpers::unprivileged_command(env!("CARGO_BIN_EXE_gha-orchestrator"))
        .env_clear()
        .env("ORCHESTRATOR_ID", &docker.id)
        .env("ORCHESTRATOR_PORT", "0")
        .env("GITHUB_TOKEN_FILE", &file)
        .env("RUNNER_NETWORK", &docker.network)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(!output.status.success(), "it must not start");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("GITHUB_TOKEN_FILE"), "{said}");
    assert!(said.contains(&file.display().to_string()), "{said}");
    assert!(said.contains("must be able to read it"), "{said}");
    assert!(said.contains("chmod 0644"), "{said}");
    if crate::helpers::running_as_root() {
        assert!(said.contains("uid 65532"), "{said}");
    }
    assert!(!said.contains(TOKEN), "{said}");
}
