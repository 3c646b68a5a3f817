//! MAX_RUNNERS holds even under concurrent creates.

use serde_json::json;

use crate::helpers::{Options, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_exceed_max_runners() {
    let env = TestEnv::start_with(Options {
        env: vec![("MAX_RUNNERS", "3".into())],
        ..Default::default()
    })
    .await;
    let attempts = (0..5).map(|_| env.post("/runners/create", json!({"count": 2})));
    let results = futures::future::join_all(attempts).await;
    let created: usize = results
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b["runners"].as_array().unwrap().len())
        .sum();
    for (status, body) in &results {
        assert!(*status == 201 || *status == 409, "{status} {body}");
        if *status == 409 {
            assert_eq!(body["error"]["code"], "capacity_exceeded");
            assert!(
                body["error"]["message"].as_str().unwrap().contains("free"),
                "{body}"
            );
        }
    }
    assert_eq!(created, 2, "only one batch of two fits under 3");
    assert!(env.containers().len() <= 3);
    let (status, body) = env.post("/runners/create", json!({"count": 2})).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 201);
    assert_eq!(env.containers().len(), 3);
}
