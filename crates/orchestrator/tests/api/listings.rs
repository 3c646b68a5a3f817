//! GitHub's listings as they are on github.com: several pages, and a
//! search-backed run listing that lags behind the truth.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use github_sim::SimConfig;
use orchestrator::github::auth::GitHubAuth;
use orchestrator::github::{GitHub, GitHubClient, PageCache};
use orchestrator::scope::Scope;
use serde_json::{Value, json};
use test_support::wait_for;

use crate::helpers::{Options, REPO, TOKEN, TestEnv};

/// Queues a job in the simulator (in run `run_id` when given); returns (job id, run id).
async fn queue(
    http: &reqwest::Client,
    sim: &str,
    labels: &[&str],
    duration_ms: u64,
    run_id: Option<i64>,
) -> (i64, i64) {
    let mut body = json!({"repository": REPO, "labels": labels, "duration_ms": duration_ms});
    if let Some(run_id) = run_id {
        body["run_id"] = json!(run_id);
    }
    let response = http
        .post(format!("{sim}/_sim/jobs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (
        body["id"].as_i64().unwrap(),
        body["run_id"].as_i64().unwrap(),
    )
}

/// The client reads every page of each listing it uses: 250 runners, a run
/// of 150 jobs and 120 queued runs, where one page holds 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_every_page() {
    let mut config = SimConfig::for_tests(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    config.tokens = vec![TOKEN.to_owned().into()];
    config.repos = vec![REPO.to_owned()];
    let sim = github_sim::spawn(config).await.unwrap();
    let http = reqwest::Client::new();
    let github = GitHubClient::new(
        &sim.url(),
        GitHubAuth::Token(TOKEN.to_owned().into()),
        Duration::from_secs(10),
        &[],
        20,
        Duration::from_secs(25),
    )
    .unwrap();
    let repo = Scope::repository(REPO).unwrap();

    let labels = vec!["self-hosted".to_owned()];
    for i in 0..250 {
        github
            .generate_jit_config(&repo, &format!("paging-{i:03}"), &labels, 1)
            .await
            .unwrap();
    }
    let runners = github.list_runners(&repo).await.unwrap();
    let names: HashSet<String> = runners.iter().map(|r| r.name.clone()).collect();
    assert_eq!(names.len(), 250);
    assert_eq!(
        github
            .find_runner_by_name(&repo, "paging-249")
            .await
            .unwrap()
            .map(|r| r.name),
        Some("paging-249".to_owned())
    );
    assert!(
        github
            .find_runner_by_name(&repo, "paging-999")
            .await
            .unwrap()
            .is_none()
    );

    // Labels no runner has: the jobs stay queued.
    let (_, matrix) = queue(&http, &sim.url(), &["gpu"], 0, None).await;
    for _ in 1..150 {
        queue(&http, &sim.url(), &["gpu"], 0, Some(matrix)).await;
    }
    let mut pages = PageCache::default();
    let jobs = github.list_jobs(&repo, matrix, &mut pages).await.unwrap();
    assert_eq!(jobs.items.len(), 150);
    assert_eq!(jobs.total_count, 150);
    // Read again: every page answers 304 and costs nothing, same jobs.
    let again = github.list_jobs(&repo, matrix, &mut pages).await.unwrap();
    assert!(!again.changed);
    assert_eq!(again.items.len(), 150);

    for _ in 0..119 {
        queue(&http, &sim.url(), &["gpu"], 0, None).await;
    }
    let runs = github
        .list_runs(&repo, "queued", &mut PageCache::default())
        .await
        .unwrap();
    let ids: HashSet<i64> = runs.items.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 120, "the matrix run and 119 more");
    assert!(ids.contains(&matrix));
    sim.shutdown().await;
}

/// A matrix of 150 jobs in one run and 120 more queued runs, found by
/// polling alone: every one of the 270 jobs gets a runner and runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_150_job_matrix_and_120_queued_runs_all_get_runners() {
    let env = TestEnv::start_with(Options {
        env: vec![
            ("AUTOSCALE_POLL_INTERVAL_SECONDS", "1".into()),
            ("MAX_RUNNERS", "30".into()),
            ("RUNNER_IDLE_TIMEOUT_SECONDS", "5".into()),
        ],
        ..Options::default()
    })
    .await;
    let sim = env.sim_url();
    let mut jobs = Vec::new();
    let (first, matrix) = queue(&env.http, &sim, &["self-hosted"], 0, None).await;
    jobs.push(first);
    for _ in 1..150 {
        jobs.push(
            queue(&env.http, &sim, &["self-hosted"], 0, Some(matrix))
                .await
                .0,
        );
    }
    for _ in 0..120 {
        jobs.push(queue(&env.http, &sim, &["self-hosted"], 0, None).await.0);
    }
    wait_for(
        "all 270 jobs to complete",
        Duration::from_secs(280),
        || async {
            let all = env.sim_get("/_sim/jobs").await;
            let done = all
                .as_array()
                .unwrap()
                .iter()
                .filter(|j| j["status"] == "completed")
                .count();
            (done == jobs.len()).then_some(())
        },
    )
    .await;
    let all = env.sim_get("/_sim/jobs").await;
    let mut runners = HashSet::new();
    for job in all.as_array().unwrap() {
        assert_eq!(job["conclusion"], "success", "{job}");
        // One runner per job: a runner never takes a second one.
        assert!(runners.insert(job["runner_name"].as_str().unwrap().to_owned()));
    }
    env.wait_nothing_left(Duration::from_secs(60)).await;
}

/// GitHub's status-filtered run listing is search-backed and lags: with a
/// 20 s lag, jobs announced by webhooks that wait for a free slot (one
/// runner at a time) are missing from every listing for a while. None is
/// concluded finished on that strength: each runs exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_is_lost_while_the_run_listing_lags_20_seconds() {
    let env = TestEnv::start_with(Options {
        webhooks: true,
        env: vec![
            ("AUTOSCALE_POLL_INTERVAL_SECONDS", "1".into()),
            ("MAX_RUNNERS", "1".into()),
        ],
        ..Options::default()
    })
    .await;
    env.sim_settings(json!({"run_listing_lag_seconds": 20}))
        .await;
    let mut jobs = Vec::new();
    for _ in 0..5 {
        jobs.push(env.queue_job(&["self-hosted"], 3000).await);
    }
    for id in &jobs {
        env.wait_job_completed(*id, Duration::from_secs(120)).await;
    }
    let mut runners = HashSet::new();
    for id in &jobs {
        let job = env.job(*id).await;
        eprintln!(
            "job {id}: queued {} started {} completed {}",
            job["queued_at"], job["started_at"], job["completed_at"]
        );
        assert_eq!(job["conclusion"], "success", "{job}");
        assert!(runners.insert(job["runner_name"].as_str().unwrap().to_owned()));
    }
    // The jobs that waited longest were read directly, not dropped.
    assert!(
        env.log().contains("unlisted job read directly"),
        "no direct read happened: the lag was not exercised"
    );
    env.wait_nothing_left(Duration::from_secs(30)).await;
}
