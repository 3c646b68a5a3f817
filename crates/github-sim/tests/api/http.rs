//! HTTP details a client of api.github.com notices: content type, request ids, the
//! `User-Agent` rule, `per_page` bounds and `Link` headers on every listing.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ORG, REPO, TOKEN, TestSim, start, start_with};

const JSON_UTF8: &str = "application/json; charset=utf-8";

fn is_request_id(id: &str) -> bool {
    let fields: Vec<&str> = id.split(':').collect();
    fields.len() == 5
        && fields.iter().all(|f| {
            !f.is_empty()
                && f.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        })
}

#[tokio::test]
async fn json_content_type_and_request_id_on_every_github_answer() {
    let t = start().await;
    let (job, _) = t.job("octo/app", &["x"], 0).await;
    let mut ids = HashSet::new();
    let answers = [
        t.gh(Method::GET, &format!("{REPO}/actions/runners")),
        t.gh(Method::GET, &format!("/api/v3{REPO}/actions/jobs/{job}")),
        t.gh(Method::GET, "/rate_limit"),
        t.gh(
            Method::POST,
            &format!("{ORG}/actions/runners/registration-token"),
        ),
        // Errors: 404 (route and fallback), 401, 422, 400.
        t.gh(Method::GET, &format!("{REPO}/actions/runners/1")),
        t.gh(Method::GET, "/no/such/route"),
        t.client.get(format!("{}{REPO}/actions/runners", t.base)),
        t.gh(Method::GET, &format!("{REPO}/actions/runs?status=nope")),
        t.gh(
            Method::POST,
            &format!("{REPO}/actions/runners/generate-jitconfig"),
        )
        .header("content-type", "application/json")
        .body("{"),
    ];
    for request in answers {
        let r = request.send().await.unwrap();
        let what = format!("{} {}", r.status(), r.url());
        assert_eq!(r.headers()["content-type"], JSON_UTF8, "{what}");
        let id = r.headers()["x-github-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(is_request_id(&id), "{what}: {id}");
        assert!(ids.insert(id), "{what}: request ids are unique");
        let _: Value = r.json().await.unwrap();
    }
    // A 204 carries the id too.
    let (runner, _) = t.jit(REPO, "gone", &["x"]).await;
    let r = t
        .gh(Method::DELETE, &format!("{REPO}/actions/runners/{runner}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(is_request_id(
        r.headers()["x-github-request-id"].to_str().unwrap()
    ));
    // The control API is not GitHub's surface: no request id, JSON all the same.
    let r = t.raw(Method::GET, "/_sim/stats").send().await.unwrap();
    assert!(r.headers().get("x-github-request-id").is_none());
    assert_eq!(r.headers()["content-type"], JSON_UTF8);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_request_without_user_agent_is_refused_on_githubs_surface_only() {
    let t = start().await;
    let bare = reqwest::Client::new();
    for path in [
        format!("{REPO}/actions/runners"),
        format!("/api/v3{ORG}/actions/runners"),
        "/rate_limit".to_owned(),
    ] {
        let r = bare
            .get(format!("{}{path}", t.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(r.headers().contains_key("x-github-request-id"));
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let text = r.text().await.unwrap();
        assert_eq!(
            text.trim(),
            "Request forbidden by administrative rules. Please make sure your request has a \
             User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). \
             Check https://developer.github.com for other possible causes."
        );
    }
    // The control API and the runner protocol are the simulator's own.
    let r = bare
        .post(format!("{}/_sim/jobs", t.base))
        .json(&json!({"repository": "octo/app", "labels": ["x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = bare
        .post(format!("{}/_runner/connect", t.base))
        .json(&json!({"runner_id": 1, "secret": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    t.sim.shutdown().await;
}

/// `per_page` of a listing: (items on the page, Link header).
async fn page(t: &TestSim, path: &str, key: &str) -> (usize, Option<String>, u64) {
    let r = t.gh(Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    let link = r
        .headers()
        .get("link")
        .map(|l| l.to_str().unwrap().to_owned());
    let body: Value = r.json().await.unwrap();
    (
        body[key].as_array().unwrap().len(),
        link,
        body["total_count"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn every_listing_pages_by_30_up_to_100_with_link_headers() {
    let t = start_with(|c| c.public_url = Some("http://sim.example:{port}".into())).await;
    let public = t.sim.public_url();
    // 105 runs of one job each, a run of 35 jobs, 105 runners.
    let (_, big_run) = t.job("octo/app", &["x"], 0).await;
    for _ in 0..34 {
        let r = t
            .raw(Method::POST, "/_sim/jobs")
            .json(&json!({"repository": "octo/app", "labels": ["x"], "run_id": big_run}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    for _ in 0..104 {
        t.job("octo/app", &["x"], 0).await;
    }
    for i in 0..105 {
        t.jit(REPO, &format!("many-{i}"), &["x"]).await;
    }
    for (path, key, total) in [
        (format!("{REPO}/actions/runs"), "workflow_runs", 105),
        (
            format!("{REPO}/actions/runs?status=queued"),
            "workflow_runs",
            105,
        ),
        (format!("{REPO}/actions/runs/{big_run}/jobs"), "jobs", 35),
        (format!("{REPO}/actions/runners"), "runners", 105),
    ] {
        let join = if path.contains('?') { '&' } else { '?' };
        let (n, link, count) = page(&t, &path, key).await;
        assert_eq!((n, count), (30, total), "{path}: default 30");
        let link = link.expect("a Link header");
        assert!(
            link.contains("rel=\"next\"") && link.contains("rel=\"last\""),
            "{link}"
        );
        assert!(link.starts_with(&format!("<{public}{path}")), "{link}");
        let (n, _, _) = page(&t, &format!("{path}{join}per_page=500"), key).await;
        assert_eq!(n, total.min(100) as usize, "{path}: at most 100");
        let (n, link, _) = page(&t, &format!("/api/v3{path}{join}per_page=100&page=2"), key).await;
        assert_eq!(n, total.saturating_sub(100) as usize, "{path}: page 2");
        if total > 100 {
            let link = link.expect("a Link header on page 2");
            for rel in ["prev", "first"] {
                assert!(link.contains(&format!("rel=\"{rel}\"")), "{link}");
            }
            assert!(!link.contains("rel=\"next\""), "{link}");
            // Under /api/v3 the links keep the prefix.
            assert!(
                link.starts_with(&format!("<{public}/api/v3{path}")),
                "{link}"
            );
        }
    }
    t.sim.shutdown().await;
}
