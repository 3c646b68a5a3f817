//! `GET /metrics`: the figures move as a job runs, and failed Docker and
//! GitHub calls are counted by kind. The text is read back with a
//! Prometheus text parser, as Prometheus would read it.

use std::time::Duration;

use serde_json::json;
use test_support::{DockerProxy, wait_for};

use crate::helpers::{Options, REPO, TestEnv};

/// One scrape, parsed.
struct Scrape(Vec<prometheus_parse::Sample>);

impl Scrape {
    /// The value of the sample `name` whose labels include `labels`, when
    /// exactly one has them.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .0
            .iter()
            .filter(|s| s.metric == name && has(s, labels))
            .map(|s| plain(&s.value))
            .collect();
        match found[..] {
            [value] => Some(value),
            [] => None,
            _ => panic!("{name} {labels:?} matches {} samples", found.len()),
        }
    }

    /// Like [`Self::value`], and present.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in the scrape"))
    }

    /// The default pool's live runners in a state that can still run a job
    /// or is running one.
    fn live_runners(&self) -> f64 {
        ["starting", "idle", "busy", "removing"]
            .iter()
            .map(|state| self.get("gha_runners", &[("pool", "default"), ("state", state)]))
            .sum()
    }

    /// Every `resource` label of `name`.
    fn resources(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|s| s.metric == name)
            .filter_map(|s| s.labels.get("resource").map(str::to_owned))
            .collect()
    }
}

fn has(sample: &prometheus_parse::Sample, labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
}

/// A sample's value (a histogram's `_count` and `_sum` are plain samples).
fn plain(value: &prometheus_parse::Value) -> f64 {
    match value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        other => panic!("not a plain sample: {other:?}"),
    }
}

/// `GET /metrics`, checked for the text format's content type and parsed.
async fn scrape(env: &TestEnv) -> Scrape {
    let response = env
        .http
        .get(format!("{}/metrics", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    // Histograms' buckets come back as one sample each; keep the plain ones.
    Scrape(
        parsed
            .samples
            .into_iter()
            .filter(|s| {
                !matches!(
                    s.value,
                    prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_)
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_move_as_a_job_runs() {
    let env = TestEnv::start_with(Options {
        webhooks: true,
        ..Options::default()
    })
    .await;
    let pool = [("pool", "default")];
    let before = scrape(&env).await;
    // The default pool's series exist from the start, at zero.
    assert_eq!(before.get("gha_job_wait_seconds_count", &pool), 0.0);
    assert_eq!(before.get("gha_runner_startup_seconds_count", &pool), 0.0);
    assert_eq!(before.get("gha_queued_jobs", &pool), 0.0);
    assert_eq!(before.live_runners(), 0.0);
    assert_eq!(
        before.get(
            "gha_runner_failures_total",
            &[("pool", "default"), ("reason", "exit_code")]
        ),
        0.0
    );

    // The runner's JIT call is held 3 s: the job stays queued meanwhile,
    // and waits at least that long for its start.
    let (status, body) = env
        .sim_post(
            "/_sim/faults",
            json!({"path_prefix": format!("/repos/{REPO}/actions/runners/generate-jitconfig"), "delay_ms": 3000, "count": 1}),
        )
        .await;
    assert!(status < 300, "{body}");
    let job = env.queue_job(&["self-hosted", "linux"], 2000).await;
    wait_for(
        "the job counted as queued",
        Duration::from_secs(10),
        || async { (scrape(&env).await.get("gha_queued_jobs", &pool) == 1.0).then_some(()) },
    )
    .await;
    wait_for("a live runner counted", Duration::from_secs(30), || async {
        (scrape(&env).await.live_runners() >= 1.0).then_some(())
    })
    .await;
    let done = env.wait_job_completed(job, Duration::from_secs(60)).await;
    assert_eq!(done["conclusion"], "success");
    env.wait_nothing_left(Duration::from_secs(30)).await;

    let after = wait_for(
        "the job's wait and the runner's startup observed, and no runner left",
        Duration::from_secs(15),
        || async {
            let now = scrape(&env).await;
            (now.get("gha_job_wait_seconds_count", &pool) == 1.0
                && now.get("gha_runner_startup_seconds_count", &pool) == 1.0
                && now.live_runners() == 0.0)
                .then_some(now)
        },
    )
    .await;
    let waited = after.get("gha_job_wait_seconds_sum", &pool);
    assert!(
        (3.0..60.0).contains(&waited),
        "the job waited {waited} s, and its runner's JIT call was held 3 s"
    );
    let startup = after.get("gha_runner_startup_seconds_sum", &pool);
    assert!((0.0..60.0).contains(&startup), "startup {startup} s");
    assert_eq!(after.get("gha_queued_jobs", &pool), 0.0);
    assert_eq!(
        after.get(
            "gha_runner_failures_total",
            &[("pool", "default"), ("reason", "exit_code")]
        ),
        0.0,
        "the runner ran its job and exited 0"
    );

    // GitHub's budgets: a gauge for every bucket GitHub has reported.
    let (_, health) = env.get("/health").await;
    let buckets: Vec<String> = health["github"]["rate_limits"]
        .as_object()
        .expect("rate limits in /health")
        .keys()
        .cloned()
        .collect();
    assert!(buckets.contains(&"core".to_owned()), "{health}");
    let budgets = scrape(&env).await;
    let remaining = budgets.resources("gha_github_rate_limit_remaining");
    let limits = budgets.resources("gha_github_rate_limit_limit");
    for bucket in &buckets {
        assert!(
            remaining.contains(bucket),
            "no remaining budget of {bucket}"
        );
        assert!(limits.contains(bucket), "no limit of {bucket}");
    }
    let core = budgets.get("gha_github_rate_limit_remaining", &[("resource", "core")]);
    let core_limit = budgets.get("gha_github_rate_limit_limit", &[("resource", "core")]);
    assert!(0.0 < core && core <= core_limit, "{core} of {core_limit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_docker_and_github_calls_are_counted_by_kind() {
    let proxy = DockerProxy::start();
    let env = TestEnv::start_with(Options {
        env: vec![("DOCKER_HOST", proxy.docker_host())],
        ..Options::default()
    })
    .await;
    let before = scrape(&env).await;
    let docker = |s: &Scrape| s.get("gha_docker_errors_total", &[("kind", "unavailable")]);
    let github = |s: &Scrape| s.get("gha_github_errors_total", &[("kind", "unauthorized")]);
    assert_eq!(github(&before), 0.0);

    // Docker goes away: `/health` asks it and fails.
    proxy.cut();
    let (status, health) = env.get("/health").await;
    assert_eq!(status, 503, "{health}");
    proxy.restore();
    let after = scrape(&env).await;
    assert!(
        docker(&after) > docker(&before),
        "unavailable: {} then {}",
        docker(&before),
        docker(&after)
    );

    // GitHub refuses the token once, on the reconcile pass's listing.
    let (status, body) = env
        .sim_post(
            "/_sim/faults",
            json!({"path_prefix": format!("/repos/{REPO}/actions/runners"), "method": "GET", "status": 401, "count": 1}),
        )
        .await;
    assert!(status < 300, "{body}");
    wait_for("the 401 counted", Duration::from_secs(20), || async {
        (github(&scrape(&env).await) == 1.0).then_some(())
    })
    .await;
    // Answers about a request are not failures of the service: none of
    // the 404s of a normal run is counted (only these kinds exist).
    let kinds: Vec<String> = scrape(&env)
        .await
        .0
        .iter()
        .filter(|s| s.metric == "gha_github_errors_total")
        .filter_map(|s| s.labels.get("kind").map(str::to_owned))
        .collect();
    assert!(!kinds.iter().any(|k| k == "not_found"), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_exits_with_an_error_is_counted_as_failed_once() {
    let env = TestEnv::start_with(Options {
        env: vec![("RUNNER_COMMAND", "false".into())],
        ..Options::default()
    })
    .await;
    let id = env.create(1).await.remove(0);
    env.wait_state(&id, "failed", Duration::from_secs(20)).await;
    env.wait_nothing_left(Duration::from_secs(15)).await;
    // The exit event and the reconcile pass may both handle the exit: one
    // failure all the same, once the runner is gone.
    env.wait_passes("reconcile", 2).await;
    let now = scrape(&env).await;
    let failures = |reason| {
        now.get(
            "gha_runner_failures_total",
            &[("pool", "default"), ("reason", reason)],
        )
    };
    assert_eq!(failures("exit_code"), 1.0);
    assert_eq!(failures("deprecated_version"), 0.0);
    assert_eq!(failures("registration_timeout"), 0.0);
    assert_eq!(now.live_runners(), 0.0);
    assert_eq!(
        now.get("gha_runner_startup_seconds_count", &[("pool", "default")]),
        0.0
    );
}
