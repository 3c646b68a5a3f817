//! Webhook deliveries as real GitHub sends them: either content type the
//! webhook's *Content type* setting picks, redeliveries of refused
//! deliveries, and jobs that do not ask for `self-hosted`.

use std::time::Duration;

use serde_json::{Value, json};
use test_support::wait_for;

use crate::helpers::{Options, REPO, TestEnv, WEBHOOK_SECRET};

fn with_webhooks() -> Options {
    Options {
        webhooks: true,
        ..Options::default()
    }
}

/// Switches how the simulator encodes its deliveries (`json` or `form`).
async fn set_sim_content_type(env: &TestEnv, content_type: &str) {
    let response = env
        .http
        .patch(format!("{}/_sim/settings", env.sim_url()))
        .json(&json!({"webhook_content_type": content_type}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// The simulator's delivery attempts.
async fn deliveries(env: &TestEnv) -> Vec<Value> {
    env.sim_get("/_sim/webhooks")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The simulator's attempts to deliver `action` of job `job`, oldest first.
async fn attempts_for(env: &TestEnv, job: i64, action: &str) -> Vec<Value> {
    deliveries(env)
        .await
        .into_iter()
        .filter(|d| d["job_id"] == job && d["action"] == action)
        .collect()
}

/// Waits until the simulator made `count` attempts at `action` of `job`
/// and each was answered; returns them.
async fn wait_attempts(env: &TestEnv, job: i64, action: &str, count: usize) -> Vec<Value> {
    wait_for(
        &format!("{count} answered deliveries of job {job} {action}"),
        Duration::from_secs(20),
        || async {
            let attempts = attempts_for(env, job, action).await;
            (attempts.len() >= count && attempts.iter().all(|a| a["status_code"].is_u64()))
                .then_some(attempts)
        },
    )
    .await
}

/// Sends one signed `workflow_job` delivery straight to the orchestrator.
async fn deliver(
    env: &TestEnv,
    content_type: Option<&str>,
    delivery: &str,
    body: &str,
) -> (u16, Value) {
    let signature = github_sim::sign_webhook(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
    let mut request = env
        .http
        .post(format!("{}/webhooks/github", env.base))
        .header("x-github-event", "workflow_job")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Checks, two scaling passes later, that no runner was made.
async fn assert_no_runner_made(env: &TestEnv) {
    env.wait_passes("scale", 2).await;
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    assert_eq!(env.jit_calls().await, 0);
}

async fn a_job_runs_with_deliveries_as(content_type: &str) {
    let env = TestEnv::start_with(with_webhooks()).await;
    set_sim_content_type(&env, content_type).await;
    let job = env.queue_job(&["self-hosted", "linux"], 1000).await;
    let done = env.wait_job_completed(job, Duration::from_secs(40)).await;
    assert_eq!(done["conclusion"], "success", "{done}");
    env.wait_nothing_left(Duration::from_secs(15)).await;
    assert_eq!(env.jit_calls().await, 1, "one runner for the job");
    // Every delivery about the job went in that content type, and was taken.
    wait_attempts(&env, job, "completed", 1).await;
    let attempts: Vec<Value> = deliveries(&env)
        .await
        .into_iter()
        .filter(|d| d["job_id"] == job)
        .collect();
    assert!(
        attempts.len() >= 3,
        "queued, in_progress, completed: {attempts:?}"
    );
    for attempt in attempts {
        assert_eq!(attempt["content_type"], content_type, "{attempt}");
        assert_eq!(attempt["status_code"], 200, "{attempt}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_gets_a_runner_from_form_encoded_deliveries() {
    a_job_runs_with_deliveries_as("form").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_gets_a_runner_from_json_deliveries() {
    a_job_runs_with_deliveries_as("json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_content_type_is_refused_with_415_and_changes_nothing() {
    let env = TestEnv::start_with(with_webhooks()).await;
    let payload = json!({
        "action": "queued",
        "workflow_job": {"id": 4242, "run_id": 42, "status": "queued", "labels": ["self-hosted"]},
        "repository": {"full_name": REPO}
    })
    .to_string();
    for content_type in [Some("text/plain"), Some("multipart/form-data"), None] {
        let (status, body) = deliver(&env, content_type, "d-415", &payload).await;
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        for named in [
            "application/json",
            "application/x-www-form-urlencoded",
            "Content type",
        ] {
            assert!(message.contains(named), "{message}");
        }
    }
    assert_no_runner_made(&env).await;
    // The refused delivery was not remembered: sent again as GitHub would
    // (a form, parameters allowed), it is handled, once.
    let form = serde_urlencoded::to_string([("payload", &payload)]).unwrap();
    let content_type = Some("application/x-www-form-urlencoded; charset=utf-8");
    let (status, body) = deliver(&env, content_type, "d-415", &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "recorded", "{body}");
    let (status, body) = deliver(&env, content_type, "d-415", &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "duplicate", "{body}");
    // The OpenAPI document says so.
    let (_, spec) = env.get("/openapi.json").await;
    let post = &spec["paths"]["/webhooks/github"]["post"];
    for content_type in ["application/json", "application/x-www-form-urlencoded"] {
        assert!(
            post["requestBody"]["content"][content_type].is_object(),
            "{post}"
        );
    }
    assert!(post["responses"]["415"].is_object(), "{post}");
    // With an example of the 415 this test met.
    assert_eq!(
        post["responses"]["415"]["content"]["application/json"]["example"]["error"]["code"],
        "unsupported_media_type",
        "{post}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_we_could_not_read_is_processed_when_it_comes_again() {
    let env = TestEnv::start_with(with_webhooks()).await;
    let json = Some("application/json");
    // Signed, but cut short on the way: unreadable, so not remembered.
    let payload = json!({
        "action": "queued",
        "workflow_job": {"id": 4343, "run_id": 43, "status": "queued", "labels": ["self-hosted"]},
        "repository": {"full_name": REPO}
    })
    .to_string();
    let (status, body) = deliver(&env, json, "d-400", &payload[..payload.len() / 2]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "unreadable workflow_job delivery: the payload is not valid JSON: it ends too early (line 1, column"
        ),
        "{message}"
    );
    // Whole, but without the job's id: the field is named, in the API's
    // words rather than serde's.
    let no_id = json!({
        "action": "queued",
        "workflow_job": {"run_id": 43, "status": "queued", "labels": ["self-hosted"]},
        "repository": {"full_name": REPO}
    })
    .to_string();
    let (status, body) = deliver(&env, json, "d-400", &no_id).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "unreadable workflow_job delivery: the payload needs `workflow_job.id` (line 1, column"
        ),
        "{message}"
    );
    for serde_words in ["missing field", " at line "] {
        assert!(!message.contains(serde_words), "{message}");
    }
    assert_no_runner_made(&env).await;
    // The same delivery, whole: handled, then a duplicate.
    let (status, body) = deliver(&env, json, "d-400", &payload).await;
    assert_eq!(
        (status, &body["outcome"]),
        (200, &json!("recorded")),
        "{body}"
    );
    let (status, body) = deliver(&env, json, "d-400", &payload).await;
    assert_eq!(
        (status, &body["outcome"]),
        (200, &json!("duplicate")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delivery_is_processed_when_github_redelivers_it() {
    let env = TestEnv::start_with(with_webhooks()).await;
    let (status, body) = env
        .sim_post("/_sim/webhooks", json!({"corrupt_next": 1}))
        .await;
    assert_eq!(status, 200, "{body}");
    let job = env.queue_job(&["self-hosted"], 1000).await;
    let refused = wait_attempts(&env, job, "queued", 1).await;
    assert_eq!(refused[0]["corrupted"], true, "{refused:?}");
    assert_eq!(refused[0]["status_code"], 401, "{refused:?}");
    let delivery_id = refused[0]["delivery_id"].as_str().unwrap().to_owned();
    assert_no_runner_made(&env).await;
    assert_eq!(env.job(job).await["status"], "queued");

    // GitHub's "Redeliver": the same delivery id, now correctly signed.
    let (status, body) = env
        .sim_post(
            "/_sim/webhooks/redeliver",
            json!({"delivery_id": delivery_id}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let done = env.wait_job_completed(job, Duration::from_secs(40)).await;
    assert_eq!(done["conclusion"], "success", "{done}");
    let attempts = wait_attempts(&env, job, "queued", 2).await;
    assert_eq!(attempts[1]["delivery_id"], delivery_id.as_str());
    assert_eq!(attempts[1]["redelivery"], true, "{attempts:?}");
    assert_eq!(attempts[1]["status_code"], 200, "{attempts:?}");
    env.wait_nothing_left(Duration::from_secs(15)).await;
    assert_eq!(env.jit_calls().await, 1);

    // Redelivering it once more, after it was processed: a duplicate.
    let (status, body) = env
        .sim_post(
            "/_sim/webhooks/redeliver",
            json!({"delivery_id": delivery_id}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let attempts = wait_attempts(&env, job, "queued", 3).await;
    assert_eq!(attempts[2]["delivery_id"], delivery_id.as_str());
    assert_eq!(attempts[2]["status_code"], 200, "{attempts:?}");
    wait_for(
        "the orchestrator to log the redelivery as a duplicate",
        Duration::from_secs(5),
        || async {
            env.log()
                .lines()
                .any(|line| {
                    line.contains("redelivery of a handled delivery ignored")
                        && line.contains(&delivery_id)
                })
                .then_some(())
        },
    )
    .await;
    env.wait_passes("scale", 2).await;
    assert!(env.containers().is_empty());
    assert_eq!(env.jit_calls().await, 1, "nothing made for the duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_need_not_ask_for_self_hosted_but_ubuntu_latest_stays_githubs() {
    let env = TestEnv::start_with(with_webhooks()).await;
    let github_hosted = env.queue_job(&["ubuntu-latest"], 1000).await;
    let answered = wait_attempts(&env, github_hosted, "queued", 1).await;
    assert_eq!(answered[0]["status_code"], 200, "{answered:?}");
    assert_no_runner_made(&env).await;
    assert_eq!(env.job(github_hosted).await["status"], "queued");

    // `runs-on: linux`: our runners carry `linux`, so it is ours.
    let job = env.queue_job(&["linux"], 1000).await;
    let done = env.wait_job_completed(job, Duration::from_secs(40)).await;
    assert_eq!(done["conclusion"], "success", "{done}");
    assert!(
        done["runner_name"]
            .as_str()
            .is_some_and(|r| r.starts_with("gha-runner-")),
        "{done}"
    );
    env.wait_nothing_left(Duration::from_secs(15)).await;
    assert_eq!(
        env.jit_calls().await,
        1,
        "one runner, for the linux job only"
    );
    assert_eq!(env.job(github_hosted).await["status"], "queued");
}
