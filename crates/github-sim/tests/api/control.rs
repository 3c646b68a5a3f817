//! The `/_sim` control API: jobs, cancel, runners, validation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ORG, stand_in, start, start_with};

#[tokio::test]
async fn jobs_and_runners_views() {
    let t = start().await;
    for bad in [
        json!({"repository": "octo/none", "labels": ["x"]}),
        json!({"repository": "octo/app", "labels": []}),
        json!({"repository": "octo/app", "labels": "x"}),
        json!({"labels": ["x"]}),
        json!({"repository": "octo/app", "labels": ["x"], "run_id": 1}),
        json!({"repository": "octo/app", "labels": ["x"], "run": ["echo", "hi"]}),
    ] {
        let r = t
            .raw(Method::POST, "/_sim/jobs")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let (queued, run_id) = t.job("acme/web", &["self-hosted"], 0).await;
    let job = t.sim_job(queued).await;
    assert_eq!(job["id"], queued);
    assert_eq!(job["run_id"], run_id);
    assert_eq!(job["repository"], "acme/web");
    assert_eq!(job["labels"], json!(["self-hosted"]));
    assert_eq!(job["status"], "queued");
    for key in [
        "conclusion",
        "runner_id",
        "runner_name",
        "started_at",
        "completed_at",
        "run",
        "log",
    ] {
        assert_eq!(job[key], Value::Null, "{key}");
    }
    assert!(job["queued_at"].is_string());
    let all: Value = t
        .raw(Method::GET, "/_sim/jobs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(
        t.raw(Method::GET, "/_sim/jobs/1")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    let r = t
        .raw(Method::POST, &format!("/_sim/jobs/{queued}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job = t.sim_job(queued).await;
    assert_eq!(
        (job["status"].as_str(), job["conclusion"].as_str()),
        (Some("completed"), Some("cancelled"))
    );

    let (id, config) = t.jit(ORG, "viewed", &["self-hosted", "Linux"]).await;
    let runner = t.sim_runner(id).await.unwrap();
    assert_eq!(
        runner,
        json!({"id": id, "name": "viewed", "scope": "org:acme", "status": "offline", "busy": false,
               "labels": ["self-hosted", "Linux"], "jit_used": false, "connected": false, "job_id": null})
    );
    let (handle, _stop) = stand_in(config);
    t.wait_online(id).await;
    let (job_id, _) = t.job("acme/web", &["LINUX"], 50).await;
    let done = t.wait_job_status(job_id, "completed").await;
    assert_eq!(done["conclusion"], "success");
    assert_eq!(done["runner_name"], "viewed");
    assert!(done["started_at"].is_string() && done["completed_at"].is_string());
    handle.await.unwrap().unwrap();
    assert!(t.sim_runner(id).await.is_none());
    t.sim.shutdown().await;
}

#[tokio::test]
async fn public_url_port_placeholder_reaches_the_jit_config() {
    let t = start_with(|c| c.public_url = Some("http://sim.invalid:{port}/".into())).await;
    let expected = format!("http://sim.invalid:{}", t.sim.addr().port());
    assert_eq!(t.sim.public_url(), expected);
    let (_, encoded) = t.jit(ORG, "placeholder", &["x"]).await;
    let config = github_sim::jit_config::JitConfig::decode(&encoded).unwrap();
    assert_eq!(config.server_url, expected);
    assert_eq!(config.github_url, "https://github.com/acme");
    t.sim.shutdown().await;
}
