//! Webhooks: signature vectors, signed ordered deliveries to a receiver, JSON and form
//! bodies, drop, duplicate, corrupted signatures, redeliveries.

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

/// Both signatures, over the body exactly as received.
fn check_signature(headers: &HeaderMap, body: &[u8]) {
    let signature = headers["x-hub-signature-256"].to_str().unwrap();
    assert_eq!(signature, github_sim::sign_webhook(SECRET.as_bytes(), body));
    let legacy = headers["x-hub-signature"].to_str().unwrap();
    assert_eq!(
        legacy,
        github_sim::sign_webhook_sha1(SECRET.as_bytes(), body)
    );
}

fn signatures_fail(headers: &HeaderMap, body: &[u8]) -> bool {
    headers["x-hub-signature-256"] != github_sim::sign_webhook(SECRET.as_bytes(), body).as_str()
        && headers["x-hub-signature"]
            != github_sim::sign_webhook_sha1(SECRET.as_bytes(), body).as_str()
}

async fn webhook_log(t: &TestSim) -> Vec<Value> {
    t.raw(Method::GET, "/_sim/webhooks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn switch(t: &TestSim, body: Value) -> reqwest::Response {
    t.raw(Method::POST, "/_sim/webhooks")
        .json(&body)
        .send()
        .await
        .unwrap()
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

/// The payload of a form-encoded body: its single `payload` field, parsed.
fn form_payload(body: &[u8]) -> Value {
    let text = std::str::from_utf8(body).unwrap();
    assert!(text.starts_with("payload="), "{text}");
    assert!(!text.contains('{'), "the JSON is percent-encoded: {text}");
    let fields: Vec<(String, String)> = url_decode_fields(text);
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert_eq!(fields[0].0, "payload");
    serde_json::from_str(&fields[0].1).unwrap()
}

/// `application/x-www-form-urlencoded` fields, decoded by reqwest's own form parser
/// (`serde_urlencoded` through `url`), not by the simulator's encoder.
fn url_decode_fields(text: &str) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{text}")).unwrap();
    url.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn form_content_type_sends_the_payload_field_signed_as_sent() {
    let (url, received) = receiver().await;
    let t = start_with(|c| {
        c.webhook_url = Some(url);
        c.webhook_secret = Some(SECRET.into());
        c.webhook_content_type = github_sim::WebhookContentType::Form;
    })
    .await;
    let got = wait_deliveries(&received, 1).await;
    let (headers, body) = &got[0];
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    check_signature(headers, body);
    let ping = form_payload(body);
    assert_eq!(ping["hook"]["config"]["content_type"], "form");

    let (job, _) = t.job("octo/app", &["a b"], 0).await;
    let got = wait_deliveries(&received, 2).await;
    check_signature(&got[1].0, &got[1].1);
    let payload = form_payload(&got[1].1);
    assert_eq!(payload["workflow_job"]["id"], job);
    assert_eq!(payload["workflow_job"]["labels"], json!(["a b"]));

    // Switched back at run time: the next event is JSON.
    let r = t
        .raw(Method::PATCH, "/_sim/settings")
        .json(&json!({"webhook_content_type": "json"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["webhook_content_type"],
        "json"
    );
    t.job("octo/app", &["x"], 0).await;
    let got = wait_deliveries(&received, 3).await;
    assert_eq!(got[2].0["content-type"], "application/json");
    check_signature(&got[2].0, &got[2].1);
    let _: Value = serde_json::from_slice(&got[2].1).unwrap();
    let log = webhook_log(&t).await;
    let types: Vec<&str> = log
        .iter()
        .map(|d| d["content_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["form", "form", "json"]);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn corrupted_then_redelivered_with_the_same_id_and_body() {
    let (t, received) = sim_with_hook().await;
    let ping = wait_deliveries(&received, 1).await;
    let ping_json: Value = serde_json::from_slice(&ping[0].1).unwrap();
    assert_eq!(ping_json["hook"]["config"]["content_type"], "json");

    let r = switch(&t, json!({"corrupt_next": 1})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["corrupt_next"], 1);
    let (job, _) = t.job("octo/app", &["x"], 0).await;
    let got = wait_deliveries(&received, 2).await;
    let (headers, body) = &got[1];
    assert!(signatures_fail(headers, body), "the signatures are wrong");
    let id = headers["x-github-delivery"].to_str().unwrap().to_owned();

    let r = t
        .raw(Method::POST, "/_sim/webhooks/redeliver")
        .json(&json!({"delivery_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["delivery_id"], id.as_str());
    assert_eq!(record["job_id"], job);
    let got = wait_deliveries(&received, 3).await;
    let (again, again_body) = &got[2];
    assert_eq!(again["x-github-delivery"], id.as_str());
    assert_eq!(again_body, body, "the same bytes");
    check_signature(again, again_body);

    // A dropped delivery can be redelivered too (the usual way to recover one).
    switch(&t, json!({"drop_next": 1})).await;
    t.job("octo/app", &["x"], 0).await;
    let dropped = wait_for("a dropped delivery", Duration::from_secs(10), || async {
        webhook_log(&t)
            .await
            .into_iter()
            .find(|d| d["dropped"] == true)
    })
    .await;
    let dropped_id = dropped["delivery_id"].as_str().unwrap();
    let r = t
        .raw(Method::POST, "/_sim/webhooks/redeliver")
        .json(&json!({"delivery_id": dropped_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let got = wait_deliveries(&received, 4).await;
    assert_eq!(got[3].0["x-github-delivery"], dropped_id);
    check_signature(&got[3].0, &got[3].1);

    let log = webhook_log(&t).await;
    let flags: Vec<(bool, bool)> = log
        .iter()
        .map(|d| (d["corrupted"] == true, d["redelivery"] == true))
        .collect();
    // ping, corrupted, its redelivery, dropped, its redelivery.
    assert_eq!(
        flags,
        [
            (false, false),
            (true, false),
            (false, true),
            (false, false),
            (false, true)
        ]
    );
    let stats = t.stats().await;
    assert_eq!(stats["webhooks"]["corrupted"], 1);
    assert_eq!(stats["webhooks"]["redelivered"], 2);

    for (body, status) in [
        (json!({"delivery_id": "no-such-delivery"}), 404),
        (json!({"delivery_id": 7}), 422),
    ] {
        let r = t
            .raw(Method::POST, "/_sim/webhooks/redeliver")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
    }
    for bad in [
        json!({"corrupt_next": -1}),
        json!({"corrupt": 1}),
        json!([1]),
    ] {
        assert_eq!(
            switch(&t, bad.clone()).await.status().as_u16(),
            422,
            "{bad}"
        );
    }
    t.sim.shutdown().await;
}
