//! Webhooks: signature vector, signed ordered deliveries to a receiver, drop and duplicate.

use std::time::Duration;

use axum::http::HeaderMap;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    ORG, Received, TestSim, receiver, stand_in, start_with, wait_deliveries, wait_for,
};

const SECRET: &str = "hook-secret";

async fn sim_with_hook() -> (TestSim, Received) {
    let (url, received) = receiver().await;
    let t = start_with(|c| {
        c.webhook_url = Some(url);
        c.webhook_secret = Some(SECRET.into());
    })
    .await;
    (t, received)
}

fn check_signature(headers: &HeaderMap, body: &[u8]) {
    let signature = headers["x-hub-signature-256"].to_str().unwrap();
    assert_eq!(signature, github_sim::sign_webhook(SECRET.as_bytes(), body));
}

#[test]
fn signature_matches_githubs_test_vector() {
    assert_eq!(
        github_sim::sign_webhook(b"It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[tokio::test]
async fn ping_then_signed_workflow_job_lifecycle() {
    let (t, received) = sim_with_hook().await;
    let ping = wait_deliveries(&received, 1).await;
    assert_eq!(ping[0].0["x-github-event"], "ping");
    check_signature(&ping[0].0, &ping[0].1);

    let (runner_id, config) = t.jit(ORG, "hooked", &["self-hosted"]).await;
    let (job_id, run_id) = t.job("acme/web", &["self-hosted"], 50).await;
    let (handle, _stop) = stand_in(config);
    handle.await.unwrap().unwrap();
    let got = wait_deliveries(&received, 4).await;
    let mut ids = std::collections::HashSet::new();
    let mut actions = Vec::new();
    for (headers, body) in &got[1..] {
        check_signature(headers, body);
        assert_eq!(headers["x-github-event"], "workflow_job");
        assert_eq!(headers["content-type"], "application/json");
        assert!(
            headers["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("GitHub-Hookshot/")
        );
        assert!(headers.contains_key("x-github-hook-id"));
        assert!(ids.insert(headers["x-github-delivery"].to_str().unwrap().to_owned()));
        let payload: Value = serde_json::from_slice(body).unwrap();
        let job = &payload["workflow_job"];
        assert_eq!(job["id"], job_id);
        assert_eq!(job["run_id"], run_id);
        assert_eq!(payload["repository"]["full_name"], "acme/web");
        assert_eq!(payload["repository"]["name"], "web");
        assert_eq!(payload["repository"]["owner"]["login"], "acme");
        assert_eq!(payload["organization"]["login"], "acme");
        assert!(payload["sender"]["login"].is_string());
        for key in [
            "run_attempt",
            "run_url",
            "node_id",
            "head_sha",
            "url",
            "html_url",
            "status",
            "started_at",
            "created_at",
            "name",
            "steps",
            "check_run_url",
            "labels",
        ] {
            assert!(!job[key].is_null(), "{key}");
        }
        actions.push((payload["action"].as_str().unwrap().to_owned(), job.clone()));
    }
    assert_eq!(
        actions.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["queued", "in_progress", "completed"]
    );
    assert_eq!(actions[0].1["runner_id"], Value::Null);
    assert_eq!(actions[1].1["runner_id"], runner_id);
    assert_eq!(actions[1].1["runner_name"], "hooked");
    assert_eq!(actions[1].1["runner_group_id"], 1);
    assert_eq!(actions[1].1["runner_group_name"], "Default");
    assert_eq!(actions[2].1["status"], "completed");
    assert_eq!(actions[2].1["conclusion"], "success");

    let stats = t.stats().await;
    assert_eq!(
        stats["webhooks"],
        json!({"sent": 4, "failed": 0, "dropped": 0, "duplicated": 0, "corrupted": 0, "redelivered": 0})
    );
    t.sim.shutdown().await;
}

#[tokio::test]
async fn drop_and_duplicate_next() {
    let (t, received) = sim_with_hook().await;
    wait_deliveries(&received, 1).await;
    let r = t
        .raw(Method::POST, "/_sim/webhooks")
        .json(&json!({"drop_next": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (dropped_job, _) = t.job("octo/app", &["a"], 0).await;
    let r = t
        .raw(Method::POST, "/_sim/webhooks")
        .json(&json!({"duplicate_next": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (doubled_job, _) = t.job("octo/app", &["a"], 0).await;
    let (plain_job, _) = t.job("octo/app", &["a"], 0).await;

    // ping, doubled ×2, plain: the dropped delivery never arrives.
    let got = wait_deliveries(&received, 4).await;
    let jobs: Vec<(u64, String)> = got[1..]
        .iter()
        .map(|(h, b)| {
            let p: Value = serde_json::from_slice(b).unwrap();
            assert!(p.get("organization").is_none());
            (
                p["workflow_job"]["id"].as_u64().unwrap(),
                h["x-github-delivery"].to_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        jobs.iter().map(|(j, _)| *j).collect::<Vec<_>>(),
        [doubled_job, doubled_job, plain_job]
    );
    assert_eq!(jobs[0].1, jobs[1].1, "a duplicate reuses the delivery id");
    assert_ne!(jobs[1].1, jobs[2].1);

    let log: Vec<Value> = t
        .raw(Method::GET, "/_sim/webhooks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dropped: Vec<&Value> = log.iter().filter(|d| d["dropped"] == true).collect();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["job_id"], dropped_job);
    assert_eq!(dropped[0]["action"], "queued");
    let stats = t.stats().await;
    assert_eq!(
        stats["webhooks"],
        json!({"sent": 4, "failed": 0, "dropped": 1, "duplicated": 1, "corrupted": 0, "redelivered": 0})
    );
    t.sim.shutdown().await;
}

#[tokio::test]
async fn failed_deliveries_are_recorded() {
    let t = start_with(|c| {
        c.webhook_url = Some("http://127.0.0.1:9/unreachable".into());
        c.webhook_secret = Some(SECRET.into());
    })
    .await;
    wait_for("failed ping", Duration::from_secs(10), || async {
        let stats = t.stats().await;
        (stats["webhooks"]["failed"] == 1).then_some(())
    })
    .await;
    let log: Vec<Value> = t
        .raw(Method::GET, "/_sim/webhooks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log[0]["event"], "ping");
    assert!(log[0]["error"].is_string());
    t.sim.shutdown().await;
}
