//! On demand: runners appear for queued jobs, from webhooks or polling,
//! within MAX_RUNNERS, with a warm pool, and leave when nobody needs them.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use test_support::wait_for;

use crate::helpers::{Options, REPO, TestEnv, WEBHOOK_SECRET};

fn webhooks(env: Vec<(&'static str, String)>) -> Options {
    Options {
        env,
        webhooks: true,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_gets_a_runner_that_runs_it_and_vanishes() {
    let env = TestEnv::start_with(webhooks(vec![])).await;
    let job = env.queue_job(&["self-hosted", "linux"], 1000).await;
    let done = env.wait_job_completed(job, Duration::from_secs(40)).await;
    assert_eq!(done["conclusion"], "success");
    let runner = done["runner_name"].as_str().unwrap().to_owned();
    assert!(runner.starts_with("gha-runner-"), "{done}");
    env.wait_nothing_left(Duration::from_secs(15)).await;
    assert_eq!(env.jit_calls().await, 1, "exactly one runner for one job");
    let (_, shown) = env.get(&format!("/runners/{runner}/status")).await;
    assert_eq!(shown["job"]["id"], job, "{shown}");
    assert_eq!(shown["state"], "finished", "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_beyond_max_runners_wait_for_free_slots() {
    let env = TestEnv::start_with(webhooks(vec![("MAX_RUNNERS", "10".into())])).await;
    let mut jobs = Vec::new();
    for _ in 0..15 {
        jobs.push(env.queue_job(&["self-hosted"], 2500).await);
    }
    // Sample the containers while the jobs run: never more than 10.
    let mut most = 0;
    let mut done = HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while done.len() < jobs.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 15 jobs completed",
            done.len()
        );
        most = most.max(env.containers().len());
        assert!(most <= 10, "{most} runner containers at once");
        for id in &jobs {
            if !done.contains(id) && env.job(*id).await["status"] == "completed" {
                done.insert(*id);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(most, 10, "the first ten jobs ran side by side");
    for id in &jobs {
        assert_eq!(env.job(*id).await["conclusion"], "success");
    }
    env.wait_nothing_left(Duration::from_secs(30)).await;
    assert_eq!(env.jit_calls().await, 15, "one runner per job, no more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_refused_and_create_nothing() {
    let env = TestEnv::start_with(webhooks(vec![])).await;
    let payload = json!({
        "action": "queued",
        "workflow_job": {"id": 42, "run_id": 1, "status": "queued", "labels": ["self-hosted"]},
        "repository": {"full_name": REPO}
    })
    .to_string();
    let url = format!("{}/webhooks/github", env.base);
    let good = github_sim::sign_webhook(WEBHOOK_SECRET.as_bytes(), payload.as_bytes());
    let other_body = github_sim::sign_webhook(WEBHOOK_SECRET.as_bytes(), b"{}");
    for signature in [
        None,
        Some("sha256=00".to_owned()),
        Some(other_body),
        Some(good.replace("sha256=", "sha1=")),
    ] {
        let mut request = env
            .http
            .post(&url)
            .header("x-github-event", "workflow_job")
            .header("x-github-delivery", "d-1")
            .header("content-type", "application/json")
            .body(payload.clone());
        if let Some(sig) = &signature {
            request = request.header("x-hub-signature-256", sig);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{signature:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_signature");
    }
    // Two scaling passes after the refusals: nothing was made.
    env.wait_passes("scale", 2).await;
    assert!(env.containers().is_empty());
    assert_eq!(env.jit_calls().await, 0);
    // The same delivery, signed: accepted within a second.
    let started = std::time::Instant::now();
    let response = env
        .http
        .post(&url)
        .header("x-github-event", "workflow_job")
        .header("x-github-delivery", "d-2")
        .header("x-hub-signature-256", good)
        .header("content-type", "application/json")
        .body(payload)
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_that_are_not_ours_create_nothing() {
    let env = TestEnv::start_with(webhooks(vec![])).await;
    let url = format!("{}/webhooks/github", env.base);
    let job = |repository: &str| {
        json!({
            "action": "queued",
            "workflow_job": {"id": 77, "run_id": 7, "status": "queued", "labels": ["self-hosted"]},
            "repository": {"full_name": repository}
        })
        .to_string()
    };
    // (event header, body, why it is ignored): a repository we do not
    // serve, an event we do not use, and no event header at all; each
    // correctly signed, so accepted (200) and ignored.
    let cases = [
        (
            Some("workflow_job"),
            job("someone-else/app"),
            "is not served",
        ),
        (Some("push"), job(REPO), "\"push\" is not used"),
        (None, job(REPO), "\"\" is not used"),
    ];
    for (index, (event, body, why)) in cases.iter().enumerate() {
        let signature = github_sim::sign_webhook(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
        let mut request = env
            .http
            .post(&url)
            .header("x-github-delivery", format!("foreign-{index}"))
            .header("x-hub-signature-256", signature)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(event) = event {
            request = request.header("x-github-event", *event);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{event:?}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["outcome"], "ignored", "{event:?}: {answer}");
        assert!(
            answer["detail"].as_str().is_some_and(|d| d.contains(why)),
            "{event:?}: {answer}"
        );
    }
    env.wait_passes("scale", 2).await;
    assert!(env.containers().is_empty());
    assert_eq!(env.jit_calls().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_off_without_a_secret() {
    let env = TestEnv::start().await;
    let (status, body) = env.post("/webhooks/github", json!({})).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_delivery_still_makes_one_runner() {
    let env = TestEnv::start_with(webhooks(vec![])).await;
    env.sim_post("/_sim/webhooks", json!({"duplicate_next": 3}))
        .await;
    let job = env.queue_job(&["self-hosted"], 1000).await;
    env.wait_job_completed(job, Duration::from_secs(40)).await;
    env.wait_nothing_left(Duration::from_secs(15)).await;
    assert_eq!(env.jit_calls().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_delivery_is_recovered_by_polling() {
    let env = TestEnv::start_with(webhooks(vec![(
        "AUTOSCALE_POLL_INTERVAL_SECONDS",
        "1".into(),
    )]))
    .await;
    env.sim_post("/_sim/webhooks", json!({"drop_next": 1}))
        .await;
    let job = env.queue_job(&["self-hosted"], 1000).await;
    env.wait_job_completed(job, Duration::from_secs(40)).await;
    env.wait_nothing_left(Duration::from_secs(15)).await;
    assert_eq!(
        env.jit_calls().await,
        1,
        "seen by polling and webhooks, counted once"
    );
    let stats = env.sim_get("/_sim/stats").await;
    assert!(
        stats["not_modified"].as_i64().unwrap() > 0,
        "conditional requests used: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_labels_we_do_not_serve_gets_no_runner() {
    let env = TestEnv::start_with(webhooks(vec![(
        "AUTOSCALE_POLL_INTERVAL_SECONDS",
        "1".into(),
    )]))
    .await;
    let job = env.queue_job(&["self-hosted", "gpu"], 1000).await;
    // Two polls that saw the job, and a scaling pass after them.
    env.wait_passes("poll", 2).await;
    env.wait_passes("scale", 1).await;
    assert!(env.containers().is_empty());
    assert_eq!(env.jit_calls().await, 0);
    assert_eq!(env.job(job).await["status"], "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warm_pool_refills_after_each_job() {
    let env = TestEnv::start_with(webhooks(vec![("MIN_IDLE_RUNNERS", "2".into())])).await;
    let idle_count = || async {
        let (_, list) = env.get("/runners?state=idle").await;
        list["total"].as_u64().unwrap_or(0)
    };
    wait_for("two idle runners", Duration::from_secs(30), || async {
        (idle_count().await == 2).then_some(())
    })
    .await;
    for _ in 0..2 {
        let before = env.jit_calls().await;
        let job = env.queue_job(&["self-hosted"], 1500).await;
        let done = env.wait_job_completed(job, Duration::from_secs(30)).await;
        // A warm runner took it: no runner was made for the job itself.
        assert!(done["runner_name"].as_str().is_some());
        wait_for(
            "the pool back at two idle runners",
            Duration::from_secs(30),
            || async { (idle_count().await == 2).then_some(()) },
        )
        .await;
        assert_eq!(env.jit_calls().await - before, 1, "exactly one replacement");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_jobs_runner_is_removed_after_the_idle_timeout() {
    let env = TestEnv::start_with(webhooks(vec![
        // A container that never connects keeps the job queued until we cancel it.
        ("RUNNER_IDLE_TIMEOUT_SECONDS", "3".into()),
    ]))
    .await;
    // No idle runner yet: the job gets one created for it.
    let job = env.queue_job(&["self-hosted", "x64"], 60_000).await;
    let runner = wait_for("a runner for the job", Duration::from_secs(20), || async {
        env.containers().into_iter().next()
    })
    .await;
    let (status, _) = env
        .sim_post(&format!("/_sim/jobs/{job}/cancel"), json!({}))
        .await;
    assert!(status < 300);
    let job_now = env.job(job).await;
    if job_now["runner_name"].is_null() {
        // Cancelled before the runner took it: the runner idles, then goes.
        let mut last = serde_json::Value::Null;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            last = env.get(&format!("/runners/{runner}/status")).await.1;
            if last["state"] == "finished" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(last["state"], "finished", "{last}");
        assert!(
            last["reason"].as_str().unwrap_or_default().contains("idle"),
            "{last}"
        );
    }
    env.wait_nothing_left(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_jobs_queued_gives_each_job_exactly_one_runner() {
    let mut env = TestEnv::start_with(webhooks(vec![(
        "AUTOSCALE_POLL_INTERVAL_SECONDS",
        "1".into(),
    )]))
    .await;
    let first = env.queue_job(&["self-hosted"], 4000).await;
    wait_for(
        "a runner for the first job",
        Duration::from_secs(20),
        || async { (!env.containers().is_empty()).then_some(()) },
    )
    .await;
    env.kill_orchestrator();
    let mut jobs = vec![first];
    for _ in 0..3 {
        jobs.push(env.queue_job(&["self-hosted"], 1000).await);
    }
    env.start_orchestrator().await;
    for id in &jobs {
        env.wait_job_completed(*id, Duration::from_secs(60)).await;
    }
    env.wait_nothing_left(Duration::from_secs(30)).await;
    let runners: HashSet<String> = futures::future::join_all(jobs.iter().map(|id| env.job(*id)))
        .await
        .iter()
        .map(|j| j["runner_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(runners.len(), 4, "each job ran on its own runner");
    assert_eq!(env.jit_calls().await, 4, "and no runner more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_state_only_moves_forward_and_replays_change_nothing() {
    let env = TestEnv::start_with(webhooks(vec![])).await;
    let url = format!("{}/webhooks/github", env.base);
    let deliver = |action: &'static str, delivery: &'static str| {
        let payload = json!({
            "action": action,
            "workflow_job": {"id": 777, "run_id": 1, "status": action, "labels": ["self-hosted"],
                             "conclusion": if action == "completed" { json!("success") } else { json!(null) }},
            "repository": {"full_name": REPO}
        })
        .to_string();
        let signature = github_sim::sign_webhook(WEBHOOK_SECRET.as_bytes(), payload.as_bytes());
        env.http
            .post(&url)
            .header("x-github-event", "workflow_job")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .header("content-type", "application/json")
            .body(payload)
            .send()
    };
    // Completed first, then the older in_progress and queued arrive late.
    for (action, delivery) in [
        ("completed", "d-1"),
        ("in_progress", "d-2"),
        ("queued", "d-3"),
    ] {
        let response = deliver(action, delivery).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    // A replayed delivery is recognised as such.
    let replay: serde_json::Value = deliver("queued", "d-3")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay["outcome"], "duplicate");
    env.wait_passes("scale", 2).await;
    assert!(env.containers().is_empty(), "no runner for a completed job");
    assert_eq!(env.jit_calls().await, 0);
}
