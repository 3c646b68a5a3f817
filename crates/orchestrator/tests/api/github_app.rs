//! GitHub App authentication (issue #17): the orchestrator as a GitHub App
//! against the simulator, which checks its JWTs as GitHub does and hands out
//! installation tokens that expire. Creates go on while the tokens expire
//! every few seconds, each owner gets its own installation's token, and a
//! wrong key, an unknown App or a missing installation each say so.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use github_sim::SimConfig;
use serde_json::{Value, json};
use test_support::{RsaKeyPair, TestDocker, wait_for};

use crate::helpers::{Options, REPO, TestEnv};

/// The App id the simulator knows.
pub const APP_ID: u64 = 31_337;

/// An App's key pair in files of a test's own directory, removed on drop.
pub struct AppKeys {
    dir: PathBuf,
    pub pair: RsaKeyPair,
    /// The private key, as the orchestrator reads it.
    pub private_key_file: PathBuf,
    /// The public key, as the simulator reads it.
    pub public_key_file: PathBuf,
}

impl AppKeys {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("gha-app-{}", test_support::unique_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pair = RsaKeyPair::generate();
        let private_key_file = dir.join("github_app_private_key");
        let public_key_file = dir.join("app.pub.pem");
        std::fs::write(&private_key_file, &pair.private_pem).unwrap();
        std::fs::write(&public_key_file, &pair.public_pem).unwrap();
        Self {
            dir,
            pair,
            private_key_file,
            public_key_file,
        }
    }

    /// A file in this test's directory holding `text`.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A line from the middle of the private key's PEM: if the key leaked
    /// anywhere, this would be in it.
    pub fn key_fragment(&self) -> String {
        let lines: Vec<&str> = self.pair.private_pem.lines().collect();
        lines[lines.len() / 2].to_owned()
    }
}

impl Drop for AppKeys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The orchestrator's environment for the App (and no token).
pub fn app_env(keys: &AppKeys) -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_TOKEN", String::new()),
        ("GITHUB_APP_ID", APP_ID.to_string()),
        (
            "GITHUB_APP_PRIVATE_KEY_FILE",
            keys.private_key_file.display().to_string(),
        ),
    ]
}

/// Options that make the simulator know the App, installed on `owners`,
/// with installation tokens living `token_seconds`, and repositories
/// `extra_repos` besides the defaults.
pub fn app_options(
    keys: &AppKeys,
    owners: &[&str],
    token_seconds: u64,
    extra_repos: &[&str],
) -> Options {
    let public = keys.public_key_file.clone();
    let owners: Vec<String> = owners.iter().map(|o| (*o).to_owned()).collect();
    let repos: Vec<String> = extra_repos.iter().map(|r| (*r).to_owned()).collect();
    Options {
        env: app_env(keys),
        sim: Some(Arc::new(move |c: &mut SimConfig| {
            c.app_id = Some(APP_ID);
            c.app_public_key_file = Some(public.clone());
            c.app_installations = owners.clone();
            c.installation_token_lifetime_seconds = token_seconds;
            c.repos.extend(repos.iter().cloned());
        })),
        ..Options::default()
    }
}

/// Installation tokens the simulator handed out: in all, and per installation.
async fn tokens_issued(env: &TestEnv) -> (u64, Value) {
    let stats = env.sim_get("/_sim/stats").await;
    (
        stats["installation_tokens_issued_total"].as_u64().unwrap(),
        stats["installation_tokens_issued"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_app_a_burst_of_creates_while_tokens_expire_sees_no_401() {
    const TOKEN_SECONDS: u64 = 4;
    const BURST: Duration = Duration::from_secs(16);
    let keys = AppKeys::new();
    let env = TestEnv::start_with(app_options(&keys, &["acme"], TOKEN_SECONDS, &[])).await;
    let started = Instant::now();
    let calls_before = env.sim_get("/_sim/stats").await["api_calls_total"]
        .as_u64()
        .unwrap();
    // Two clients create and delete runners without a pause, while the
    // reconcile pass lists them every second: GitHub calls all along.
    let worker = || async {
        let mut answers = Vec::new();
        while started.elapsed() < BURST {
            let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
            answers.push((status, body.clone()));
            if status == 201 {
                let id = body["runners"][0]["id"].as_str().unwrap().to_owned();
                let (status, body) = env.delete(&format!("/runners/{id}?force=true")).await;
                answers.push((status, body));
            }
        }
        answers
    };
    let (a, b) = tokio::join!(worker(), worker());
    let elapsed = started.elapsed().as_secs_f64();
    let answers: Vec<(u16, Value)> = a.into_iter().chain(b).collect();
    let refused: Vec<&(u16, Value)> = answers
        .iter()
        .filter(|(status, _)| !matches!(status, 201 | 204))
        .collect();
    assert!(
        refused.is_empty(),
        "every create and delete succeeds (no 401 reaches the caller): {refused:?}"
    );
    let creates = answers.iter().filter(|(s, _)| *s == 201).count();
    assert!(creates >= 4, "a burst: {creates} creates in {elapsed:.0} s");

    let (minted, _) = tokens_issued(&env).await;
    let calls = env.sim_get("/_sim/stats").await["api_calls_total"]
        .as_u64()
        .unwrap()
        - calls_before;
    // Renewed a quarter of a lifetime before expiry: one token per 3 s.
    let renewal_period = TOKEN_SECONDS as f64 * 0.75;
    let expected = elapsed / renewal_period;
    assert!(
        minted as f64 >= expected - 1.0,
        "tokens were renewed as they expired: {minted} in {elapsed:.1} s"
    );
    assert!(
        minted as f64 <= expected + 3.0,
        "once per expiry, not per request: {minted} tokens for {calls} GitHub calls in {elapsed:.1} s"
    );
    assert!(calls > 5 * minted, "{calls} calls, {minted} tokens");
    env.wait_nothing_left(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_app_two_owners_get_their_own_installation_tokens() {
    let keys = AppKeys::new();
    let env = TestEnv::start_with(app_options(
        &keys,
        &["acme", "octo"],
        3600,
        &["octo/tools", "stranger/lib"],
    ))
    .await;
    let (status, first) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 201, "{first}");
    let (status, second) = env
        .post(
            "/runners/create",
            json!({"count": 1, "repository": "octo/tools"}),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    // The simulator opens an installation token to its own account only: a
    // runner registered in octo/tools was registered with octo's token.
    let registrations = env.registrations().await;
    let scopes: Vec<&str> = registrations
        .iter()
        .filter_map(|r| r["scope"].as_str())
        .collect();
    assert!(
        scopes.contains(&format!("repo:{REPO}").as_str()),
        "{scopes:?}"
    );
    assert!(scopes.contains(&"repo:octo/tools"), "{scopes:?}");
    let (minted, per_installation) = tokens_issued(&env).await;
    let per_installation = per_installation.as_object().unwrap();
    assert_eq!(per_installation.len(), 2, "{per_installation:?}");
    assert!(
        per_installation.values().all(|n| n == 1),
        "{per_installation:?}"
    );
    assert_eq!(minted, 2);

    // Each installation's budgets, side by side.
    let (_, health) = env.get("/health").await;
    assert_eq!(health["github"]["reachable"], true, "{health}");
    for id in per_installation.keys() {
        let core = &health["github"]["rate_limits"][format!("installation/{id}/core")];
        assert!(core["remaining"].as_i64().unwrap() > 0, "{health}");
    }

    // An owner the App is not installed on: a clear refusal, no runner.
    let (status, body) = env
        .post(
            "/runners/create",
            json!({"count": 1, "repository": "stranger/lib"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "github_app_not_installed", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("stranger/lib"), "{message}");

    for runner in [&first, &second] {
        let id = runner["runners"][0]["id"].as_str().unwrap();
        let (status, body) = env.delete(&format!("/runners/{id}")).await;
        assert_eq!(status, 204, "{body}");
    }
    env.wait_nothing_left(Duration::from_secs(30)).await;
}

/// One environment variable of the orchestrator.
type Var = (&'static str, String);

/// Runs the orchestrator against `sim_url` with `env` until it exits (it
/// must: each case here is refused at start); its standard error.
async fn refused_start(docker: &TestDocker, sim_url: &str, env: &[(&str, String)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gha-orchestrator"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ORCHESTRATOR_ID", &docker.id)
        .env("ORCHESTRATOR_PORT", "0")
        .env("ORCHESTRATOR_HOST", "127.0.0.1")
        .env("RUNNER_NETWORK", &docker.network)
        .env("GITHUB_API_URL", sim_url)
        .env("GITHUB_REPOSITORY", REPO)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command.spawn().unwrap();
    let pid = child.id();
    let waited = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await;
    let output = match waited {
        Ok(done) => done.unwrap().unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("the orchestrator started although it should have refused: {env:?}");
        }
    };
    assert!(!output.status.success(), "it must not start: {env:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_app_a_wrong_key_an_unknown_app_or_a_missing_installation_stop_the_start() {
    let keys = AppKeys::new();
    let other = AppKeys::new();
    let docker = TestDocker::new();
    let mut config = SimConfig::for_tests("127.0.0.1:0".parse().unwrap());
    config.repos = vec![REPO.to_owned(), "octo/tools".to_owned()];
    config.orgs = vec!["acme".to_owned()];
    config.app_id = Some(APP_ID);
    config.app_public_key_file = Some(keys.public_key_file.clone());
    config.app_installations = vec!["acme".to_owned()];
    let sim = github_sim::spawn(config).await.unwrap();
    let url = sim.url();
    let with = |changes: &[(&'static str, String)]| {
        let mut env = app_env(&keys);
        for (key, value) in changes {
            env.retain(|(k, _)| k != key);
            env.push((key, value.clone()));
        }
        // An empty value here means the variable is not set at all.
        env.retain(|(_, value)| !value.is_empty());
        env
    };
    let key_of_another_app = other.private_key_file.display().to_string();
    let not_a_key = keys.file(
        "not_a_key",
        "-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----\n",
    );
    let token_file = keys.file("github_token", "ghp_also-a-token");
    let cases: Vec<(&str, Vec<Var>, Vec<&str>)> = vec![
        (
            "a key that is not the App's",
            with(&[("GITHUB_APP_PRIVATE_KEY_FILE", key_of_another_app)]),
            vec![
                "refused the GitHub App",
                "A JSON web token could not be decoded",
                "GITHUB_APP_PRIVATE_KEY_FILE",
            ],
        ),
        (
            "an App GitHub does not know",
            with(&[("GITHUB_APP_ID", "999999".to_owned())]),
            vec!["refused the GitHub App 999999", "GITHUB_APP_ID"],
        ),
        (
            "an App not installed on the default repository's owner",
            with(&[("GITHUB_REPOSITORY", "octo/tools".to_owned())]),
            vec![
                "not installed on the owner of repository octo/tools",
                "install the App",
            ],
        ),
        (
            "an installation id that is not the App's",
            with(&[("GITHUB_APP_INSTALLATION_ID", "77".to_owned())]),
            vec!["GITHUB_APP_INSTALLATION_ID=77 is not an installation"],
        ),
        (
            "a file that is not an RSA key",
            with(&[(
                "GITHUB_APP_PRIVATE_KEY_FILE",
                not_a_key.display().to_string(),
            )]),
            vec!["GITHUB_APP_PRIVATE_KEY_FILE does not hold an RSA private key"],
        ),
        (
            "a token and an App",
            with(&[("GITHUB_TOKEN_FILE", token_file.display().to_string())]),
            vec!["not both"],
        ),
        (
            "an App without its key",
            with(&[("GITHUB_APP_PRIVATE_KEY_FILE", String::new())]),
            vec!["GITHUB_APP_ID needs GITHUB_APP_PRIVATE_KEY_FILE"],
        ),
    ];
    for (what, env, says) in cases {
        let said = refused_start(&docker, &url, &env).await;
        for words in says {
            assert!(said.contains(words), "{what}: {words:?} not in: {said}");
        }
        assert!(
            !said.contains(&keys.key_fragment()),
            "{what}: the key in: {said}"
        );
        assert!(
            !said.contains(&other.key_fragment()),
            "{what}: the key in: {said}"
        );
    }
    // The well-configured App starts (and is stopped here).
    let (minted, _) = {
        let stats: Value = reqwest::get(format!("{url}/_sim/stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            stats["installation_tokens_issued_total"].as_u64().unwrap(),
            (),
        )
    };
    assert_eq!(minted, 0, "no case got as far as a token");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_app_webhooks_polling_and_reconcile_work_as_with_a_token() {
    let keys = AppKeys::new();
    let mut options = app_options(&keys, &["acme"], 3600, &[]);
    options.webhooks = true;
    options
        .env
        .push(("AUTOSCALE_POLL_INTERVAL_SECONDS", "1".to_owned()));
    let env = TestEnv::start_with(options).await;
    // A queued job gets a runner (webhook and polling, both with installation
    // tokens), runs, and everything is cleaned up by the reconcile pass.
    let job = env.queue_job(&["self-hosted"], 500).await;
    let done = env.wait_job_completed(job, Duration::from_secs(60)).await;
    assert_eq!(done["conclusion"], "success", "{done}");
    env.wait_nothing_left(Duration::from_secs(30)).await;
    let (status, report) = env.post("/runners/cleanup", json!({})).await;
    assert_eq!(status, 200, "{report}");
    wait_for(
        "a healthy GitHub in /health",
        Duration::from_secs(10),
        || async {
            let (_, health) = env.get("/health").await;
            (health["github"]["reachable"] == true).then_some(())
        },
    )
    .await;
    let (minted, _) = tokens_issued(&env).await;
    assert_eq!(minted, 1, "one installation, one token for its hour");
}
