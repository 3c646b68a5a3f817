//! The OpenAPI document, Swagger UI and ReDoc, including both pages as a
//! person sees them: headless Chromium with every host but the gateway
//! unreachable (skipped without Chromium, except under `CI=true`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::{TestGateway, TestUpstream};

/// The gateway's `/openapi.json`.
async fn document(gw: &TestGateway) -> serde_json::Value {
    let response = gw.client.get(gw.url("/openapi.json")).send().await.unwrap();
    response.json().await.unwrap()
}

#[tokio::test]
async fn openapi_document_lists_every_path_schema_and_security_scheme() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let spec = document(&gw).await;
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
    for (path, content_type) in [
        ("/docs/", "text/html"),
        ("/redoc", "text/html"),
        ("/docs/swagger-ui-bundle.js", "text/javascript"),
        ("/redoc/redoc.standalone.js", "text/javascript"),
        ("/redoc/init.js", "text/javascript"),
    ] {
        let response = gw.client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        let served_as = headers["content-type"].to_str().unwrap();
        assert!(served_as.starts_with(content_type), "{path}: {served_as}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("default-src 'self'"), "{path}: {policy}");
    }
    let redoc = gw
        .client
        .get(gw.url("/redoc"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !redoc.contains("//"),
        "the ReDoc page names another host:\n{redoc}"
    );
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

#[tokio::test]
async fn the_root_points_to_the_docs_without_a_key() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    // A browser is sent to Swagger UI.
    let response = gw
        .client
        .get(gw.url("/"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    assert_eq!(response.headers()["location"], "/docs/");
    // Anything else gets the addresses.
    let response = gw.client.get(gw.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let index: serde_json::Value = response.json().await.unwrap();
    for (name, path) in [
        ("docs", "/docs/"),
        ("redoc", "/redoc"),
        ("openapi", "/openapi.json"),
        ("health", "/health"),
    ] {
        assert_eq!(index[name], path, "{index}");
        let status = gw.client.get(gw.url(path)).send().await.unwrap().status();
        assert_eq!(status, 200, "{path}");
    }
    let spec = document(&gw).await;
    assert!(spec["paths"]["/"]["get"].is_object(), "GET / undocumented");
    assert!(
        upstream.received().is_empty(),
        "GET / reached the orchestrator"
    );
}

/// The first of `chromium` / `chromium-browser` found on `PATH`; `None`
/// (the test is skipped, saying so) when there is none, except under
/// `CI=true`, where CI installs Chromium and a missing one fails the test.
fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but no chromium or chromium-browser on PATH (CI installs it)"
        );
        eprintln!("SKIPPED {test}: no chromium on PATH");
    }
    found
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

/// The name the browser knows the gateway by. Not `127.0.0.1` nor
/// `localhost`: Swagger UI skips some outside calls (its validator badge)
/// for those, which a real deployment's name would not.
const GATEWAY_HOST: &str = "gateway.test";

/// What headless Chromium made of a page.
struct Visit {
    /// stdout: the DOM with `--dump-dom`.
    stdout: String,
    /// Every URL the page asked for (requests of the page's own origin or
    /// of its main frame; not the browser's own background calls).
    requests: Vec<String>,
}

/// Runs headless Chromium on `path` of the gateway listening on `port`,
/// reached as `http://gateway.test:PORT`, with every other host name
/// unresolvable (so a page that needs a CDN or web fonts fails as it
/// would offline), giving the page five seconds of virtual time to fetch
/// the document and render.
async fn headless_chromium(chromium: &Path, port: u16, path: &str, mode_args: &[String]) -> Visit {
    let origin = format!("http://{GATEWAY_HOST}:{port}");
    // A profile of its own, so parallel runs do not share a lock.
    let scratch = std::env::temp_dir().join(format!(
        "gateway-chromium-{}-{}",
        std::process::id(),
        path.replace('/', "_")
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("create the browser's scratch directory");
    let net_log = scratch.join("net-log.json");
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--hide-scrollbars",
                "--window-size=1280,1600",
                "--virtual-time-budget=5000",
            ])
            .arg(format!(
                "--host-resolver-rules=MAP {GATEWAY_HOST} 127.0.0.1, MAP * ~NOTFOUND"
            ))
            .arg(format!(
                "--user-data-dir={}",
                scratch.join("profile").display()
            ))
            .arg(format!("--log-net-log={}", net_log.display()))
            .args(mode_args)
            .arg(format!("{origin}{path}"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished within 90s")
    .expect("chromium starts");
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let log = std::fs::read_to_string(&net_log).expect("chromium wrote its net log");
    let _ = std::fs::remove_dir_all(&scratch);
    Visit {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        requests: page_requests(&log, &origin),
    }
}

/// The URLs of the requests in a Chromium net log that the page at
/// `origin` made: its main frame, and every request it initiated (the
/// browser's own calls, to update or sync, say "not an origin").
fn page_requests(net_log: &str, origin: &str) -> Vec<String> {
    let log: serde_json::Value = serde_json::from_str(net_log).expect("a JSON net log");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("the net log names its event types");
    let mut urls: Vec<String> = log["events"]
        .as_array()
        .expect("net log events")
        .iter()
        .filter(|event| event["type"].as_u64() == Some(start_job))
        .map(|event| &event["params"])
        .filter(|params| {
            let initiator = params["initiator"].as_str().unwrap_or_default();
            initiator != "not an origin" || params["request_type"] == "main frame"
        })
        .filter_map(|params| params["url"].as_str().map(str::to_owned))
        .collect();
    urls.sort();
    urls.dedup();
    assert!(
        urls.iter().any(|url| url.starts_with(origin)),
        "the net log shows no request to the page itself: {urls:?}"
    );
    urls
}

/// Asserts that `visit` asked the gateway at `port` for the document and
/// asked no other host for anything.
fn assert_only_the_gateway_was_asked(visit: &Visit, port: u16) {
    let origin = format!("http://{GATEWAY_HOST}:{port}/");
    let elsewhere: Vec<&String> = visit
        .requests
        .iter()
        .filter(|url| !url.starts_with(&origin))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the page asked another host: {elsewhere:?}"
    );
    let document = format!("{origin}openapi.json");
    assert!(
        visit.requests.contains(&document),
        "the page never fetched the document: {:?}",
        visit.requests
    );
}

/// Headless Chromium in front of a test gateway, every other host
/// unreachable.
struct OfflineBrowser {
    chromium: PathBuf,
    gw: TestGateway,
    _upstream: TestUpstream,
}

impl OfflineBrowser {
    /// `None` when the test is skipped (see [`chromium_or_skip`]).
    async fn start(test: &str) -> Option<Self> {
        let chromium = chromium_or_skip(test)?;
        let upstream = TestUpstream::start().await;
        let gw = TestGateway::spawn(&upstream.url, &[]);
        Some(Self {
            chromium,
            gw,
            _upstream: upstream,
        })
    }

    /// The DOM of the page at `path` once rendered, after checking that it
    /// fetched the document and asked no other host for anything.
    async fn rendered(&self, path: &str) -> String {
        let visit = headless_chromium(
            &self.chromium,
            self.gw.port,
            path,
            &["--dump-dom".to_owned()],
        )
        .await;
        assert_only_the_gateway_was_asked(&visit, self.gw.port);
        visit.stdout
    }
}

#[tokio::test]
async fn swagger_ui_renders_the_operations_with_no_other_host_reachable() {
    let Some(browser) =
        OfflineBrowser::start("swagger_ui_renders_the_operations_with_no_other_host_reachable")
            .await
    else {
        return;
    };
    let dom = browser.rendered("/docs/").await;
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
        &browser.chromium,
        browser.gw.port,
        "/docs/",
        &[format!("--screenshot={}", screenshot.display())],
    )
    .await;
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(png.len() > 10_000, "suspiciously small screenshot");
    eprintln!("screenshot: {}", screenshot.display());
}

#[tokio::test]
async fn redoc_renders_the_operations_with_no_other_host_reachable() {
    let Some(browser) =
        OfflineBrowser::start("redoc_renders_the_operations_with_no_other_host_reachable").await
    else {
        return;
    };
    let dom = browser.rendered("/redoc").await;
    assert!(
        dom.contains("redoc-wrap"),
        "ReDoc did not start (did its bundle load?):\n{dom}"
    );
    // The operations, by their summaries and paths, as ReDoc lists them.
    for text in [
        "Create runners",
        "List runners",
        "Delete a runner",
        "Receive a GitHub webhook",
        "/api/v1/runners/{id}",
    ] {
        assert!(dom.contains(text), "{text:?} not rendered:\n{dom}");
    }
}
