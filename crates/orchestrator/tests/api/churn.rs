//! Churn, the short version of `bench/run scale`: a hundred jobs queued in
//! waves through ten runner slots, with webhooks. Every job runs exactly once
//! on a runner of its own, nothing is left behind, and what the orchestrator
//! keeps afterwards is only what its retention settings allow.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use test_support::wait_for;

use crate::helpers::{Options, TestEnv};

const JOBS: usize = 100;
const MAX_RUNNERS: usize = 10;
/// Jobs queued at once; the next wave goes when fewer than `MAX_RUNNERS` wait.
const WAVE: usize = 25;
/// Short, so that the test sees the history expire.
const HISTORY_SECONDS: u64 = 10;

fn count(jobs: &[Value], status: &str) -> usize {
    jobs.iter().filter(|j| j["status"] == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_jobs_through_ten_slots_run_once_each_and_leave_nothing() {
    let env = TestEnv::start_with(Options {
        env: vec![
            ("MAX_RUNNERS", MAX_RUNNERS.to_string()),
            ("RUNNER_HISTORY_SECONDS", HISTORY_SECONDS.to_string()),
        ],
        webhooks: true,
        ..Options::default()
    })
    .await;
    let mut ids = Vec::new();
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let jobs = env.sim_get("/_sim/jobs").await;
        let jobs = jobs.as_array().expect("a job list");
        let completed = count(jobs, "completed");
        if completed == JOBS {
            break;
        }
        if count(jobs, "queued") < MAX_RUNNERS && ids.len() < JOBS {
            for _ in 0..WAVE.min(JOBS - ids.len()) {
                ids.push(env.queue_job(&["self-hosted"], 500).await);
            }
        }
        most = most.max(env.containers().len());
        assert!(
            Instant::now() < deadline,
            "only {completed} of {JOBS} jobs completed in 150 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(most <= MAX_RUNNERS, "{most} runner containers at once");

    // Exactly once: each job succeeded on a runner of its own, and no
    // runner was made beyond one per job.
    let mut runners = HashSet::new();
    for id in &ids {
        let job = env.job(*id).await;
        assert_eq!(job["conclusion"], "success", "{job}");
        let runner = job["runner_name"].as_str().expect("a runner took it");
        assert!(runners.insert(runner.to_owned()), "{runner} ran two jobs");
    }
    env.wait_nothing_left(Duration::from_secs(30)).await;
    assert_eq!(env.jit_calls().await, JOBS as i64, "one runner per job");

    // Retained: only runners that finished within RUNNER_HISTORY_SECONDS...
    let (status, list) = env.get("/runners").await;
    assert_eq!(status, 200, "{list}");
    let now = Utc::now();
    for runner in list["runners"].as_array().expect("runners") {
        assert!(runner["container_id"].is_null(), "still live: {runner}");
        let finished: DateTime<Utc> = runner["updated_at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("updated_at");
        let age = (now - finished).to_std().unwrap_or_default();
        assert!(
            age <= Duration::from_secs(HISTORY_SECONDS + 2),
            "kept {age:?} after it finished: {runner}"
        );
    }
    // ...and none once that time has passed.
    wait_for(
        "the history to expire",
        Duration::from_secs(HISTORY_SECONDS + 10),
        || async { (env.get("/runners").await.1["total"] == 0).then_some(()) },
    )
    .await;
}
