//! Bad input gets a JSON error with a code, the right status, and changes nothing.

use serde_json::{Value, json};

use crate::helpers::TestEnv;

async fn assert_nothing_created(env: &TestEnv) {
    assert!(env.containers().is_empty(), "no container");
    assert!(env.registrations().await.is_empty(), "no registration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_create_requests_are_refused_and_change_nothing() {
    let env = TestEnv::start().await;
    let cases: Vec<(Value, u16)> = vec![
        (json!({"count": 0}), 422),
        (json!({"count": 11}), 422),
        (json!({"count": -1}), 422),
        (json!({"count": "two"}), 422),
        (json!({"count": 1, "colour": "red"}), 422),
        (json!({"count": 1, "repository": "not-a-repo"}), 422),
        (
            json!({"count": 1, "repository": "a/b", "organization": "a"}),
            422,
        ),
        (json!({"count": 1, "labels": [""]}), 422),
        (json!({"count": 1, "labels": ["has space"]}), 422),
        (json!({"count": 1, "labels": ["a,b"]}), 422),
        (json!({"count": 1, "labels": ["x".repeat(101)]}), 422),
        (
            json!({"count": 1, "labels": (0..100).map(|i| format!("l{i}")).collect::<Vec<_>>()}),
            422,
        ),
        (json!({"count": 1, "image": "alpine:latest"}), 422),
        (json!({"count": 1, "repository": "acme/unknown"}), 422),
    ];
    for (body, expected) in cases {
        let (status, answer) = env.post("/runners/create", body.clone()).await;
        assert_eq!(status, expected, "{body} → {answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    // Unreadable JSON.
    let response = env
        .http
        .post(format!("{}/runners/create", env.base))
        .header("content-type", "application/json")
        .body("{\"count\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_nothing_created(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runners_and_odd_ids_are_clear_errors() {
    let env = TestEnv::start().await;
    let (status, body) = env.get("/runners/gha-runner-nope/status").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    for id in ["..", "a%2Fb", "%2E%2E", &"x".repeat(300)] {
        let (status, body) = env.get(&format!("/runners/{id}/status")).await;
        assert!(status == 400 || status == 404, "{id}: {status} {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    let (status, body) = env.get("/runners?state=sleeping").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = env.get("/runners?state=idle").await;
    assert_eq!(status, 200);
    let (status, body) = env.get("/nowhere").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_image_that_cannot_be_had_answers_503() {
    let env = TestEnv::start_with(crate::helpers::Options {
        env: vec![(
            "RUNNER_IMAGE_ALLOWLIST",
            format!(
                "{},gha-test-absent:never",
                test_support::images::SIM_RUNNER_IMAGE
            ),
        )],
        ..Default::default()
    })
    .await;
    let (status, body) = env
        .post(
            "/runners/create",
            json!({"count": 1, "image": "gha-test-absent:never"}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "image_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gha-test-absent:never")
    );
    assert_nothing_created(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_github_rejects_answers_502_and_creates_nothing() {
    let env = TestEnv::start_with(crate::helpers::Options {
        env: vec![("GITHUB_TOKEN", "ghp_wrong".into())],
        ..Default::default()
    })
    .await;
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "github_unauthorized");
    assert_nothing_created(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_clear_errors_and_the_service_keeps_serving() {
    let env = TestEnv::start().await;
    let send = |body: Vec<u8>| {
        env.http
            .post(format!("{}/runners/create", env.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Deeply nested JSON: refused by the parser's depth limit, not a stack overflow.
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes();
    let response = send(nested).await.unwrap();
    assert!(
        [400, 422].contains(&response.status().as_u16()),
        "{}",
        response.status()
    );
    assert!(response.json::<Value>().await.unwrap()["error"]["code"].is_string());
    // A huge body: 413 before it is read to the end.
    let huge = format!(
        "{{\"count\": 1, \"labels\": [\"{}\"]}}",
        "x".repeat(2 << 20)
    )
    .into_bytes();
    let response = send(huge).await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );
    // Invalid UTF-8.
    let response = send(b"{\"count\": 1, \"repository\": \"\xff\xfe\"}".to_vec())
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_request"
    );
    // Nothing was created, and everyone else is still served.
    assert_nothing_created(&env).await;
    let (status, _) = env.get("/health").await;
    assert_eq!(status, 200);
}

/// Sends `request` over a raw socket (writing alongside the reading, since
/// the answer may come before the request is all out) and returns what was
/// read until the orchestrator closed the connection.
async fn raw_exchange(port: u16, request: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        // Fails once the orchestrator has answered and closed: expected.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut read = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => read.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection was still open after 10 s: {read:?}"),
        }
    }
    drop(write.await);
    String::from_utf8_lossy(&read).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_floods_get_431_and_the_service_keeps_serving() {
    let env = TestEnv::start().await;
    let port: u16 = env.base.rsplit(':').next().unwrap().parse().unwrap();
    let with_headers = |extra: String| {
        format!("GET /health HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").into_bytes()
    };
    // More than 100 header lines, and one header value larger than the
    // request-head buffer (`service_kit::MAX_HEAD_BYTES`): hyper answers
    // 431 itself, with no body, and closes the connection.
    for (what, extra) in [
        (
            "200 lines",
            (0..200).map(|i| format!("X-Flood-{i}: v\r\n")).collect(),
        ),
        (
            "10 000 lines",
            (0..10_000).map(|i| format!("X-Flood-{i}: v\r\n")).collect(),
        ),
        ("1 MiB value", format!("X-Big: {}\r\n", "v".repeat(1 << 20))),
    ] {
        let answer = raw_exchange(port, with_headers(extra)).await;
        assert!(
            answer.starts_with("HTTP/1.1 431 "),
            "{what}: {:?}",
            &answer[..answer.len().min(200)]
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-length: 0\r\n"),
            "{what}: {answer:?}"
        );
    }
    // Exactly 100 lines are taken.
    let fits: String = (0..98).map(|i| format!("X-Flood-{i}: v\r\n")).collect();
    let answer = raw_exchange(port, with_headers(fits)).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    // And everyone else is still served, promptly.
    let (status, _) = tokio::time::timeout(std::time::Duration::from_secs(2), env.get("/health"))
        .await
        .expect("/health within 2 s after the floods");
    assert_eq!(status, 200);
}
