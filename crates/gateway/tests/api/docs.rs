//! The OpenAPI document, Swagger UI and ReDoc.

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
    for status in ["401", "409", "413", "422", "429", "502", "503"] {
        assert_eq!(
            post["responses"][status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{status}"
        );
    }
    let security = post["security"].as_array().unwrap();
    assert!(security.iter().any(|s| s.get("api_key").is_some()));
    assert!(paths["/api/v1/webhooks/github"]["post"]["security"].is_null());

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
