//! Runner endpoints: success and error codes, validation, pagination, busy delete.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ORG, REPO, stand_in, start};

#[tokio::test]
async fn runner_endpoints_work_at_both_prefixes_and_scopes() {
    let t = start().await;
    let mut n = 0;
    for prefix in ["", "/api/v3"] {
        for scope in [REPO, ORG] {
            n += 1;
            let base = format!("{prefix}{scope}/actions/runners");
            for token_kind in ["registration-token", "remove-token"] {
                let r = t
                    .gh(Method::POST, &format!("{base}/{token_kind}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED, "{base}/{token_kind}");
                let body: Value = r.json().await.unwrap();
                assert!(body["token"].as_str().unwrap().len() >= 20);
                let expires =
                    chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap())
                        .unwrap();
                let ahead = expires
                    .signed_duration_since(chrono::Utc::now())
                    .num_minutes();
                assert!((58..=60).contains(&ahead), "{ahead}");
            }

            let name = format!("runner-{n}");
            let r = t
                .gh(Method::POST, &format!("{base}/generate-jitconfig"))
                .json(&json!({"name": name, "runner_group_id": 1, "labels": ["self-hosted", "linux"], "work_folder": "_work"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            let body: Value = r.json().await.unwrap();
            assert!(body["encoded_jit_config"].is_string());
            let runner = &body["runner"];
            let id = runner["id"].as_u64().unwrap();
            assert_eq!(
                runner,
                &json!({
                    "id": id, "name": name, "os": "linux", "status": "offline", "busy": false,
                    "ephemeral": true, "runner_group_id": 1,
                    "labels": [
                        {"id": runner["labels"][0]["id"], "name": "self-hosted", "type": "custom"},
                        {"id": runner["labels"][1]["id"], "name": "linux", "type": "custom"},
                    ],
                })
            );
            assert!(runner["labels"][0]["id"].is_u64());

            let r = t.gh(Method::GET, &base).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let list: Value = r.json().await.unwrap();
            assert!(list["total_count"].is_u64());
            assert!(
                list["runners"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["id"] == id)
            );

            let r = t
                .gh(Method::GET, &format!("{base}/{id}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.json::<Value>().await.unwrap(), *runner);

            let r = t
                .gh(Method::GET, &format!("{base}/999999"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["message"], "Not Found");
            assert!(body["documentation_url"].is_string());

            let r = t
                .gh(Method::DELETE, &format!("{base}/{id}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
            assert!(r.bytes().await.unwrap().is_empty());
            let r = t
                .gh(Method::DELETE, &format!("{base}/{id}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
            let r = t
                .gh(Method::GET, &format!("{base}/{id}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
        }
    }
    // A repo runner is not visible at the org scope, and vice versa.
    let (id, _) = t.jit(REPO, "scoped", &["x"]).await;
    let r = t
        .gh(Method::GET, &format!("{ORG}/actions/runners/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    t.sim.shutdown().await;
}

async fn jit_status(t: &crate::helpers::TestSim, scope: &str, body: &str) -> (StatusCode, Value) {
    let r = t
        .gh(
            Method::POST,
            &format!("{scope}/actions/runners/generate-jitconfig"),
        )
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn jit_validation_follows_github() {
    let t = start().await;
    let labels_101: Vec<String> = (0..101).map(|i| format!("l{i}")).collect();
    let cases = [
        (r#"{"runner_group_id":1,"labels":["a"]}"#.to_owned(), "name"),
        (
            r#"{"name":5,"runner_group_id":1,"labels":["a"]}"#.to_owned(),
            "name",
        ),
        (
            r#"{"name":"a","labels":["a"]}"#.to_owned(),
            "runner_group_id",
        ),
        (
            r#"{"name":"a","runner_group_id":"1","labels":["a"]}"#.to_owned(),
            "runner_group_id",
        ),
        (
            r#"{"name":"a","runner_group_id":1.5,"labels":["a"]}"#.to_owned(),
            "runner_group_id",
        ),
        (r#"{"name":"a","runner_group_id":1}"#.to_owned(), "labels"),
        (
            r#"{"name":"a","runner_group_id":1,"labels":[]}"#.to_owned(),
            "labels",
        ),
        (
            json!({"name":"a","runner_group_id":1,"labels":labels_101}).to_string(),
            "labels",
        ),
        (
            r#"{"name":"a","runner_group_id":1,"labels":[3]}"#.to_owned(),
            "labels",
        ),
    ];
    for (i, scope) in [REPO, ORG, "/api/v3/repos/acme/web"]
        .into_iter()
        .enumerate()
    {
        for (body, field) in &cases {
            let (status, error) = jit_status(&t, scope, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(
                error["message"].as_str().unwrap().contains(field),
                "{error}"
            );
            assert!(
                error["documentation_url"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://docs.github.com/")
            );
            assert!(
                error["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(Value::is_string)
            );
        }
        let (status, error) = jit_status(&t, scope, "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["message"], "Problems parsing JSON");

        let (status, _) = jit_status(
            &t,
            scope,
            r#"{"name":"g","runner_group_id":2,"labels":["a"]}"#,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let ok =
            json!({"name": format!("dup-{i}"), "runner_group_id": 1, "labels": ["a"]}).to_string();
        assert_eq!(jit_status(&t, scope, &ok).await.0, StatusCode::CREATED);
        let (status, error) = jit_status(&t, scope, &ok).await;
        assert_eq!(status, StatusCode::CONFLICT, "{error}");
        assert!(error["message"].is_string());
    }
    // Unknown repository / organization, and org endpoints of a user.
    for scope in [
        "/repos/octo/nope",
        "/repos/nobody/app",
        "/orgs/nobody",
        "/orgs/octo",
    ] {
        let (status, error) = jit_status(
            &t,
            scope,
            r#"{"name":"x","runner_group_id":1,"labels":["a"]}"#,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{scope}");
        assert_eq!(error["message"], "Not Found");
    }
    // Names are case-insensitive: OCTO/APP is octo/app.
    let (status, _) = jit_status(
        &t,
        "/repos/OCTO/App",
        r#"{"name":"DUP-0","runner_group_id":1,"labels":["a"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn pagination_and_link_header() {
    let t = start().await;
    for i in 0..5 {
        t.jit(REPO, &format!("page-{i}"), &["x"]).await;
    }
    let base = format!("{REPO}/actions/runners");
    let r = t
        .gh(Method::GET, &format!("{base}?per_page=2"))
        .send()
        .await
        .unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["total_count"], 5);
    assert_eq!(body["runners"].as_array().unwrap().len(), 2);
    assert_eq!(body["runners"][0]["name"], "page-0");
    assert!(link.contains("per_page=2&page=2>; rel=\"next\""), "{link}");
    assert!(link.contains("per_page=2&page=3>; rel=\"last\""), "{link}");
    assert!(!link.contains("rel=\"prev\""));
    assert!(link.starts_with(&format!("<{}{base}?", t.base)), "{link}");

    let r = t
        .gh(Method::GET, &format!("{base}?per_page=2&page=2"))
        .send()
        .await
        .unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["runners"][0]["name"], "page-2");
    for rel in ["prev", "next", "last", "first"] {
        assert!(link.contains(&format!("rel=\"{rel}\"")), "{link}");
    }

    let r = t
        .gh(Method::GET, &format!("{base}?per_page=2&page=3"))
        .send()
        .await
        .unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["runners"].as_array().unwrap().len(), 1);
    assert!(link.contains("page=2>; rel=\"prev\"") && link.contains("page=1>; rel=\"first\""));
    assert!(!link.contains("rel=\"next\""));

    let r = t
        .gh(Method::GET, &format!("{base}?per_page=500"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("link").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["runners"].as_array().unwrap().len(), 5);

    let body: Value = t
        .gh(Method::GET, &format!("{base}?name=page-3"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["total_count"], 1);
    assert_eq!(body["runners"][0]["name"], "page-3");

    let body: Value = t
        .gh(Method::GET, &format!("{base}?page=9"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["total_count"], 5);
    assert!(body["runners"].as_array().unwrap().is_empty());
    t.sim.shutdown().await;
}

#[tokio::test]
async fn busy_runner_cannot_be_deleted_and_connected_runner_is_told_to_exit() {
    let t = start().await;
    let (busy_id, config) = t.jit(ORG, "busy-one", &["self-hosted"]).await;
    let (handle, _stop) = stand_in(config);
    t.wait_online(busy_id).await;
    let (job, _) = t.job("acme/web", &["self-hosted"], 60_000).await;
    t.wait_job_status(job, "in_progress").await;

    let runner: Value = t
        .gh(Method::GET, &format!("{ORG}/actions/runners/{busy_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (runner["status"].as_str(), runner["busy"].as_bool()),
        (Some("online"), Some(true))
    );
    let r = t
        .gh(Method::DELETE, &format!("{ORG}/actions/runners/{busy_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Runner \"busy-one\" is still running a job"
    );
    handle.abort();

    // An idle connected runner deleted through the API is told to exit.
    let (idle_id, config) = t.jit(REPO, "idle-one", &["self-hosted"]).await;
    let (handle, _stop) = stand_in(config);
    t.wait_online(idle_id).await;
    let r = t
        .gh(Method::DELETE, &format!("{REPO}/actions/runners/{idle_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, github_sim::stand_in::Outcome::Removed(_)),
        "{outcome:?}"
    );
    t.sim.shutdown().await;
}
