//! API keys: both header forms, 401 shape, open paths; keys from a file;
//! no start without a key unless `API_AUTH=disabled`.

use reqwest::Method;

use crate::helpers::{
    KEY, TempFile, TestGateway, TestUpstream, error_code, refused_start, refused_start_as,
};

#[tokio::test]
async fn missing_and_wrong_keys_get_401_json_with_challenge() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let attempts = [
        gw.client.get(gw.url("/api/v1/runners")),
        gw.client
            .get(gw.url("/api/v1/runners"))
            .header("x-api-key", "wrong"),
        gw.client
            .get(gw.url("/api/v1/runners"))
            .bearer_auth("wrong"),
        gw.client
            .get(gw.url("/api/v1/runners"))
            .basic_auth("user", Some(KEY)),
    ];
    for attempt in attempts {
        let response = attempt.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("ApiKey"), "{challenge}");
        assert_eq!(error_code(response).await, "unauthorized");
    }
    assert!(
        upstream.received().is_empty(),
        "nothing reaches the orchestrator"
    );
}

#[tokio::test]
async fn right_key_in_either_header_passes_and_is_not_forwarded() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[("API_KEYS", "other, test-key-0123456789")]);
    let response = gw
        .authed(Method::GET, "/api/v1/runners")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = gw
        .client
        .get(gw.url("/api/v1/runners"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = upstream.received();
    assert_eq!(received.len(), 2);
    for request in received {
        assert!(!request.headers.contains_key("x-api-key"));
        assert!(!request.headers.contains_key("authorization"));
    }
}

#[tokio::test]
async fn open_paths_need_no_key() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    for path in ["/health", "/healthz", "/openapi.json", "/docs/", "/redoc"] {
        let response = gw.client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let response = gw
        .client
        .post(gw.url("/api/v1/webhooks/github"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // /api/v1/health is open too (503 here: the stand-in's body is no health document).
    let response = gw
        .client
        .get(gw.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), 401);
}

#[test]
fn without_a_key_the_gateway_refuses_to_start_naming_the_variables() {
    for env in [
        vec![("API_KEYS", "")],
        vec![("API_KEYS", " , "), ("API_AUTH", "required")],
    ] {
        let (status, stderr) = refused_start(&env);
        assert!(!status.success(), "started with {env:?}");
        for variable in ["API_KEYS_FILE", "API_KEYS", "API_AUTH=disabled"] {
            assert!(stderr.contains(variable), "{variable} not named: {stderr}");
        }
    }
}

#[tokio::test]
async fn api_auth_disabled_serves_without_a_key_and_warns_at_start() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[("API_KEYS", ""), ("API_AUTH", "disabled")]);
    let warned = gw
        .log()
        .iter()
        .any(|line| line.contains(r#""level":"WARN""#) && line.contains("API_AUTH=disabled"));
    assert!(warned, "no warning at start: {:#?}", gw.log());
    let response = gw
        .client
        .get(gw.url("/api/v1/runners"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let health: api_types::GatewayHealth = gw
        .client
        .get(gw.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!health.authentication);
}

#[test]
fn api_auth_disabled_with_keys_is_refused() {
    let (status, stderr) = refused_start(&[("API_AUTH", "disabled")]);
    assert!(!status.success());
    assert!(stderr.contains("API_AUTH=disabled"), "{stderr}");
}

#[tokio::test]
async fn keys_come_from_the_file_and_the_variable() {
    let upstream = TestUpstream::start().await;
    let file = TempFile::with("file-key-1\n\n  file-key-2  \nfile-key-3,file-key-4\n");
    let gw = TestGateway::spawn(&upstream.url, &[("API_KEYS_FILE", file.path())]);
    for key in [KEY, "file-key-1", "file-key-2", "file-key-3", "file-key-4"] {
        let response = gw
            .client
            .get(gw.url("/api/v1/runners"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{key}");
    }
    let response = gw
        .client
        .get(gw.url("/api/v1/runners"))
        .header("x-api-key", "file-key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The file alone is enough (as under Compose, which blanks API_KEYS).
    let gw = TestGateway::spawn(
        &upstream.url,
        &[("API_KEYS", ""), ("API_KEYS_FILE", file.path())],
    );
    let response = gw
        .client
        .get(gw.url("/api/v1/runners"))
        .bearer_auth("file-key-2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn an_unreadable_or_empty_key_file_stops_the_start_naming_it() {
    let missing = std::env::temp_dir().join(format!("gateway-test-missing-{}", std::process::id()));
    let missing = missing.to_str().unwrap();
    let directory = std::env::temp_dir();
    let directory = directory.to_str().unwrap();
    for path in [missing, directory] {
        let (status, stderr) = refused_start(&[("API_KEYS", ""), ("API_KEYS_FILE", path)]);
        assert!(!status.success(), "started with API_KEYS_FILE={path}");
        assert!(
            stderr.contains(&format!("API_KEYS_FILE={path}: cannot read it")),
            "{stderr}"
        );
    }
    let empty = TempFile::with("\n  \n");
    let (status, stderr) = refused_start(&[("API_KEYS", ""), ("API_KEYS_FILE", empty.path())]);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("API_KEYS_FILE={} holds none", empty.path())),
        "{stderr}"
    );
}

/// A key file that exists but the gateway's user may not read (mode 0600,
/// another owner) stops the start with a message naming the file, the
/// error, and what the file needs. As root (CI), the gateway runs as the
/// image's user through `setpriv`; otherwise the file is made unreadable.
#[test]
fn a_key_file_the_gateway_may_not_read_says_what_it_needs() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let file = TempFile::with("k\n");
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let mode = if root { 0o600 } else { 0o000 };
    std::fs::set_permissions(&file.0, std::fs::Permissions::from_mode(mode)).unwrap();
    let runner: &[&str] = if root {
        &[
            "setpriv",
            "--reuid=65532",
            "--regid=65532",
            "--clear-groups",
        ]
    } else {
        &[]
    };
    let (status, stderr) =
        refused_start_as(runner, &[("API_KEYS", ""), ("API_KEYS_FILE", file.path())]);
    assert!(!status.success(), "started: {stderr}");
    for words in [
        &format!("API_KEYS_FILE={}: cannot read it", file.path()),
        "Permission denied",
        "uid 65532 in its image",
        "0644",
    ] {
        assert!(stderr.contains(words), "{words:?} not in {stderr}");
    }
    if root {
        assert!(stderr.contains("runs as uid 65532"), "{stderr}");
    }
}
