//! Workflow runs and jobs: shapes, status derivation, filters, ETag / 304.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{REPO, stand_in, start};

#[tokio::test]
async fn runs_and_jobs_have_githubs_shape_and_status() {
    let t = start().await;
    let (job_a, run) = t.job("octo/app", &["self-hosted", "gpu"], 0).await;
    let r = t
        .raw(Method::POST, "/_sim/jobs")
        .json(&json!({"repository": "octo/app", "labels": ["self-hosted"], "duration_ms": 60000, "name": "build", "run_id": run}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let job_b = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();

    for prefix in ["", "/api/v3"] {
        let body: Value = t
            .gh(
                Method::GET,
                &format!("{prefix}{REPO}/actions/runs?status=queued"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["total_count"], 1);
        let wr = &body["workflow_runs"][0];
        assert_eq!(wr["id"], run);
        assert_eq!(wr["status"], "queued");
        assert_eq!(wr["conclusion"], Value::Null);
        assert_eq!(wr["repository"]["full_name"], "octo/app");
        assert_eq!(wr["repository"]["name"], "app");
        assert!(wr["repository"]["id"].is_u64());
        for key in [
            "name",
            "head_branch",
            "head_sha",
            "event",
            "created_at",
            "updated_at",
            "jobs_url",
            "url",
            "html_url",
        ] {
            assert!(wr[key].is_string(), "{key}");
        }
        assert_eq!(wr["run_attempt"], 1);
    }

    let body: Value = t
        .gh(Method::GET, &format!("{REPO}/actions/runs/{run}/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["total_count"], 2);
    let job = &body["jobs"][0];
    assert_eq!(job["id"], job_a);
    assert_eq!(job["run_id"], run);
    assert_eq!(job["status"], "queued");
    assert_eq!(job["labels"], json!(["self-hosted", "gpu"]));
    for key in [
        "runner_id",
        "runner_name",
        "runner_group_id",
        "runner_group_name",
        "conclusion",
        "completed_at",
    ] {
        assert_eq!(job[key], Value::Null, "{key}");
    }
    for key in [
        "name",
        "created_at",
        "started_at",
        "head_sha",
        "html_url",
        "url",
        "run_url",
        "node_id",
        "check_run_url",
    ] {
        assert!(job[key].is_string(), "{key}");
    }
    assert_eq!(body["jobs"][1]["name"], "build");

    // A runner takes job B: the run is in progress.
    let (runner_id, config) = t.jit(REPO, "runs-runner", &["self-hosted"]).await;
    let (handle, _stop) = stand_in(config);
    t.wait_job_status(job_b, "in_progress").await;
    let body: Value = t
        .gh(Method::GET, &format!("{REPO}/actions/runs/{run}/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b = &body["jobs"][1];
    assert_eq!(b["status"], "in_progress");
    assert_eq!(b["runner_id"], runner_id);
    assert_eq!(b["runner_name"], "runs-runner");
    assert_eq!(b["runner_group_id"], 1);
    assert_eq!(b["runner_group_name"], "Default");
    let body: Value = t
        .gh(
            Method::GET,
            &format!("{REPO}/actions/runs?status=in_progress"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["total_count"], 1);
    let body: Value = t
        .gh(Method::GET, &format!("{REPO}/actions/runs?status=queued"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["total_count"], 0);

    // Cancel both: the run completes with conclusion cancelled.
    for job in [job_a, job_b] {
        let r = t
            .raw(Method::POST, &format!("/_sim/jobs/{job}/cancel"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let a = t.wait_job_status(job_a, "completed").await;
    assert_eq!(a["conclusion"], "cancelled");
    let b = t.wait_job_status(job_b, "completed").await;
    assert_eq!(b["conclusion"], "cancelled");
    let outcome = handle.await.unwrap().unwrap();
    assert!(matches!(
        outcome,
        github_sim::stand_in::Outcome::Completed { .. }
    ));
    let body: Value = t
        .gh(
            Method::GET,
            &format!("{REPO}/actions/runs?status=completed"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["workflow_runs"][0]["status"], "completed");
    assert_eq!(body["workflow_runs"][0]["conclusion"], "cancelled");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn runs_errors() {
    let t = start().await;
    let (_, run) = t.job("acme/web", &["x"], 0).await;
    let r = t
        .gh(Method::GET, &format!("{REPO}/actions/runs?status=bogus"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A run of another repository, an unknown run, an unknown repository.
    for path in [
        format!("{REPO}/actions/runs/{run}/jobs"),
        format!("{REPO}/actions/runs/1/jobs"),
        "/repos/octo/none/actions/runs".to_owned(),
    ] {
        let r = t.gh(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Not Found");
    }
    let r = t
        .gh(
            Method::GET,
            &format!("/repos/acme/web/actions/runs/{run}/jobs?filter=all"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn etag_gives_304_that_do_not_count() {
    let t = start().await;
    t.job("octo/app", &["x"], 0).await;
    let path = format!("{REPO}/actions/runs?status=queued");
    let r = t.gh(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    // Weak, as api.github.com sends them.
    assert!(etag.starts_with("W/\"") && etag.ends_with('"'), "{etag}");
    let remaining: u64 = r.headers()["x-ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    for _ in 0..3 {
        let r = t
            .gh(Method::GET, &path)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
        assert_eq!(
            r.headers()["x-ratelimit-remaining"].to_str().unwrap(),
            remaining.to_string()
        );
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let stats = t.stats().await;
    assert_eq!(stats["not_modified"], 3);
    assert_eq!(stats["rate_limit"]["remaining"], remaining);

    // A change gives a new ETag and a 200.
    t.job("octo/app", &["x"], 0).await;
    let r = t
        .gh(Method::GET, &path)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
    let run_id = r.json::<Value>().await.unwrap()["workflow_runs"][0]["id"]
        .as_u64()
        .unwrap();

    let jobs_path = format!("/api/v3{REPO}/actions/runs/{run_id}/jobs");
    let r = t.gh(Method::GET, &jobs_path).send().await.unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    // The weak form and the strong form of the tag both match (weak comparison).
    for tag in [etag.clone(), etag.trim_start_matches("W/").to_owned()] {
        let r = t
            .gh(Method::GET, &jobs_path)
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{tag}");
    }
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_job_can_be_read_directly_with_etag() {
    let t = start().await;
    let (job, _) = t.job("octo/app", &["x"], 0).await;
    let (other, _) = t.job("acme/web", &["x"], 0).await;
    for prefix in ["", "/api/v3"] {
        let path = format!("{prefix}{REPO}/actions/jobs/{job}");
        let r = t.gh(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            (body["id"].as_u64(), body["status"].as_str()),
            (Some(job), Some("queued"))
        );
        let r = t
            .gh(Method::GET, &path)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(r.headers().contains_key("x-github-request-id"));
    }
    // The current truth: cancelled now is cancelled in the answer, a new ETag.
    t.raw(Method::POST, &format!("/_sim/jobs/{job}/cancel"))
        .send()
        .await
        .unwrap();
    let body: Value = t
        .gh(Method::GET, &format!("{REPO}/actions/jobs/{job}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["conclusion"], "cancelled");
    for path in [
        format!("{REPO}/actions/jobs/{other}"),
        format!("{REPO}/actions/jobs/1"),
        format!("{REPO}/actions/jobs/x"),
        format!("/repos/octo/none/actions/jobs/{job}"),
    ] {
        let r = t.gh(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    t.sim.shutdown().await;
}

async fn run_ids(t: &crate::helpers::TestSim, query: &str) -> Vec<u64> {
    let body: Value = t
        .gh(Method::GET, &format!("{REPO}/actions/runs{query}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["workflow_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn filtered_run_listing_lags_and_the_rest_is_current() {
    let t = start().await;
    let r = t
        .raw(Method::PATCH, "/_sim/settings")
        .json(&json!({"run_listing_lag_seconds": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (runner, config) = t.jit(REPO, "lagging", &["self-hosted"]).await;
    let (handle, _stop) = stand_in(config);
    t.wait_online(runner).await;
    let (job, run) = t.job("octo/app", &["self-hosted"], 60_000).await;
    t.wait_job_status(job, "in_progress").await;

    // Current: the unfiltered listing, the run's jobs and the job itself.
    assert_eq!(run_ids(&t, "").await, [run]);
    let jobs: Value = t
        .gh(Method::GET, &format!("{REPO}/actions/runs/{run}/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["jobs"][0]["status"], "in_progress");
    // The search-backed listing has not seen the run yet...
    assert!(run_ids(&t, "?status=queued").await.is_empty());
    assert!(run_ids(&t, "?status=in_progress").await.is_empty());
    // ...then sees it as it was a second ago: queued, then in progress.
    crate::helpers::wait_for("run listed", std::time::Duration::from_secs(5), || async {
        let queued = run_ids(&t, "?status=queued").await;
        let in_progress = run_ids(&t, "?status=in_progress").await;
        assert!(queued.is_empty() || in_progress.is_empty(), "listed twice");
        (!queued.is_empty() || !in_progress.is_empty()).then_some(())
    })
    .await;
    crate::helpers::wait_for(
        "run in progress",
        std::time::Duration::from_secs(5),
        || async { (run_ids(&t, "?status=in_progress").await == [run]).then_some(()) },
    )
    .await;
    handle.abort();

    // Lag off: current again.
    t.raw(Method::PATCH, "/_sim/settings")
        .json(&json!({"run_listing_lag_seconds": 0}))
        .send()
        .await
        .unwrap();
    let (_, fresh) = t.job("octo/app", &["none"], 0).await;
    assert_eq!(run_ids(&t, "?status=queued").await, [fresh]);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn filtered_run_listing_stops_at_1000() {
    let t = start().await;
    for _ in 0..1003 {
        t.job("octo/app", &["x"], 0).await;
    }
    let total = |query: &'static str| {
        let t = &t;
        async move {
            let r = t
                .gh(Method::GET, &format!("{REPO}/actions/runs{query}"))
                .send()
                .await
                .unwrap();
            let link = r
                .headers()
                .get("link")
                .map(|l| l.to_str().unwrap().to_owned());
            let body: Value = r.json().await.unwrap();
            (
                body["total_count"].as_u64().unwrap(),
                body["workflow_runs"].as_array().unwrap().len(),
                link,
            )
        }
    };
    let (count, _, _) = total("").await;
    assert_eq!(count, 1003, "the unfiltered listing is not search-backed");
    let (count, _, link) = total("?status=queued&per_page=100").await;
    assert_eq!(count, 1000);
    assert!(link.unwrap().contains("page=10>; rel=\"last\""));
    let (_, n, _) = total("?status=queued&per_page=100&page=10").await;
    assert_eq!(n, 100);
    let (_, n, _) = total("?status=queued&per_page=100&page=11").await;
    assert_eq!(n, 0);
    t.sim.shutdown().await;
}
