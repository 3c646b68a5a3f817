//! The OpenAPI document, Swagger UI and ReDoc, including Swagger UI as a
//! person sees it (headless Chromium, when installed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::{TestGateway, TestUpstream};

#[tokio::test]
async fn openapi_document_lists_every_path_schema_and_security_scheme() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let spec: serde_json::Value = gw
        .client
        .get(gw.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/runners", &["get", "post"][..]),
        ("/api/v1/runners/{id}", &["get", "delete"]),
        ("/api/v1/runners/cleanup", &["post"]),
        ("/api/v1/webhooks/github", &["post"]),
        ("/api/v1/health", &["get"]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "{method} {path} missing");
        }
    }
    let post = &paths["/api/v1/runners"]["post"];
    assert_eq!(
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CreateRunnersRequest"
    );
    for status in ["401", "409", "413", "422", "429", "431", "502", "503"] {
        assert_eq!(
            post["responses"][status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{status}"
        );
    }
    let security = post["security"].as_array().unwrap();
    assert!(security.iter().any(|s| s.get("api_key").is_some()));
    assert!(paths["/api/v1/webhooks/github"]["post"]["security"].is_null());
    // GitHub sends either content type, as the webhook's setting chooses.
    let webhook = &paths["/api/v1/webhooks/github"]["post"];
    for content_type in ["application/json", "application/x-www-form-urlencoded"] {
        assert!(
            webhook["requestBody"]["content"][content_type].is_object(),
            "{content_type}"
        );
    }
    assert!(webhook["responses"]["415"].is_object());

    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    for name in [
        "CreateRunnersRequest",
        "CreateRunnersResponse",
        "Runner",
        "RunnerList",
        "CleanupReport",
        "ErrorBody",
        "GatewayHealth",
        "OrchestratorHealth",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
}

#[tokio::test]
async fn swagger_ui_and_redoc_are_served_from_the_binary() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let response = gw.client.get(gw.url("/docs")).send().await.unwrap();
    assert!(response.status().is_redirection());
    for path in ["/docs/", "/redoc"] {
        let response = gw.client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = response.text().await.unwrap();
        assert!(
            html.contains("<html") || html.contains("<!DOCTYPE"),
            "{path}"
        );
    }
    let response = gw
        .client
        .get(gw.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let config = gw
        .client
        .get(gw.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(config.contains("/openapi.json"), "{config}");
}

/// The first of `chromium` / `chromium-browser` found on `PATH`.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// `target/test-artifacts`, next to the profile directory this test runs
/// from (so `CARGO_TARGET_DIR` is honoured).
pub(crate) fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/api-<hash>
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test runs from target/<profile>/deps");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

/// Runs headless Chromium on `url` with `mode_args`, giving the page five
/// seconds of virtual time to fetch the document and render; returns stdout.
async fn headless_chromium(chromium: &Path, url: &str, mode_args: &[String]) -> String {
    // A profile of its own, so parallel runs do not share a lock.
    let profile = std::env::temp_dir().join(format!(
        "gateway-chromium-{}-{}",
        std::process::id(),
        mode_args.len()
    ));
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1280,1600",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(mode_args)
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished within 90s")
    .expect("chromium starts");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn swagger_ui_renders_the_operations_in_headless_chromium() {
    let Some(chromium) = find_chromium() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but no chromium or chromium-browser on PATH (CI installs it)"
        );
        eprintln!(
            "SKIPPED swagger_ui_renders_the_operations_in_headless_chromium: no chromium on PATH"
        );
        return;
    };
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let url = gw.url("/docs/");

    let dom = headless_chromium(&chromium, &url, &["--dump-dom".to_owned()]).await;
    assert!(dom.contains("swagger-ui"), "not Swagger UI:\n{dom}");
    assert!(
        dom.contains("opblock"),
        "no operation rendered (did /openapi.json load?):\n{dom}"
    );
    for path in [
        "/api/v1/runners",
        "/api/v1/runners/{id}",
        "/api/v1/webhooks/github",
        "/api/v1/health",
    ] {
        assert!(dom.contains(path), "{path} not rendered");
    }
    assert!(dom.contains("Authorize"), "no Authorize button");

    let screenshot = artifacts_dir().join("swagger-ui.png");
    let _ = std::fs::remove_file(&screenshot);
    headless_chromium(
        &chromium,
        &url,
        &[format!("--screenshot={}", screenshot.display())],
    )
    .await;
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(png.len() > 10_000, "suspiciously small screenshot");
    eprintln!("screenshot: {}", screenshot.display());
}
