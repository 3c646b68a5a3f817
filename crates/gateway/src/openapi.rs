//! The OpenAPI document (every `/api/v1` endpoint, the shared `api_types`
//! schemas, the API-key security schemes) and where it is served: Swagger UI
//! at `/docs`, ReDoc at `/redoc`, the JSON at `/openapi.json`.
//!
//! Both UIs are compiled into the binary and make no request to another
//! host, so they work offline and behind corporate proxies: Swagger UI from
//! utoipa-swagger-ui's `vendored` feature (its validator badge, which would
//! call swagger.io, turned off), ReDoc from the bundle the `aide` crate ships
//! (see [`REDOC_VERSION`]), with the system's fonts rather than Google's.
//! Every docs answer carries a [`CONTENT_SECURITY_POLICY`] that lets the page
//! load nothing from another origin, whatever a bundle would try.

mod error_examples;

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Where the document is served.
pub const SPEC_PATH: &str = "/openapi.json";

/// The ReDoc page.
pub const REDOC_PATH: &str = "/redoc";

/// ReDoc's standalone bundle, served by the gateway itself.
pub const REDOC_JS_PATH: &str = "/redoc/redoc.standalone.js";

/// The script that starts ReDoc on the page (a file, not inline, so the
/// policy can forbid inline scripts).
pub const REDOC_INIT_PATH: &str = "/redoc/init.js";

/// The ReDoc release in the bundle: the one `aide` (pinned to an exact
/// version in the workspace's `Cargo.toml`) ships. A test checks the bundle
/// says so, so a dependency update cannot change it unnoticed.
pub const REDOC_VERSION: &str = "2.0.0";

/// The policy of every docs answer: scripts, styles, images, fonts and
/// fetches from this origin only (inline styles and `data:` images, which
/// both UIs make, included). A bundle's attempt to reach another host (ReDoc
/// 2.0's sidebar logo is an image on its CDN) is refused by the browser
/// before any request is sent.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; \
form-action 'self'; frame-ancestors 'self'";

/// The document's fixed part; the paths come from the routers.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "gha-api-gateway",
        description = "Ephemeral GitHub Actions runners on demand. Every `/api/v1/runners` call needs an API key, in `X-API-Key` or `Authorization: Bearer`. Errors are `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "MIT")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "runners", description = "Ephemeral runners"),
        (name = "pools", description = "Runner pools: the kinds of runner, chosen by a job's labels"),
        (name = "metrics", description = "Prometheus metrics (API key)"),
        (name = "webhooks", description = "GitHub webhooks (signed, no API key)"),
        (name = "health", description = "Health checks")
    ),
    components(schemas(api_types::ErrorBody, api_types::ErrorDetail))
)]
pub struct ApiDoc;

/// `spec` with an example error body for each error status of each
/// operation (see [`error_examples`]).
pub fn with_error_examples(mut spec: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    error_examples::add(&mut spec);
    spec
}

/// Adds the two ways to present a key: the `X-API-Key` header and a bearer
/// token. Swagger UI's "Authorize" offers both.
#[derive(Debug)]
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "One of the gateway's API keys (API_KEYS_FILE or API_KEYS)",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("One of the gateway's API keys (API_KEYS_FILE or API_KEYS), as a bearer token"))
                    .build(),
            ),
        );
    }
}

/// `/docs`, `/redoc` and `/openapi.json` for `spec`.
pub fn router<S>(spec: utoipa::openapi::OpenApi) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let swagger = SwaggerUi::new("/docs").url(SPEC_PATH, spec).config(
        Config::new([SPEC_PATH])
            .persist_authorization(true)
            // Swagger UI otherwise shows a badge fetched from swagger.io's
            // validator, sending it the document's address.
            .validator_url("none"),
    );
    let docs = Router::new()
        .merge(swagger)
        .route(REDOC_PATH, get(redoc_page))
        .route(REDOC_JS_PATH, get(redoc_js))
        .route(REDOC_INIT_PATH, get(redoc_init));
    docs.layer(axum::middleware::map_response(with_policy))
}

async fn with_policy(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// The ReDoc page: only same-origin URLs.
const REDOC_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>gha-api-gateway API (ReDoc)</title>
    <style>body { margin: 0; padding: 0; }</style>
  </head>
  <body>
    <div id="redoc-container"></div>
    <script src="/redoc/redoc.standalone.js"></script>
    <script src="/redoc/init.js"></script>
  </body>
</html>
"#;

/// Starts ReDoc on the document, in the system's fonts (ReDoc's defaults,
/// Roboto and Montserrat, are usually loaded from Google).
const REDOC_INIT_JS: &str = r#"Redoc.init("/openapi.json", {
  theme: {
    typography: {
      fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
      headings: { fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif' },
      code: { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace' }
    }
  }
}, document.getElementById("redoc-container"));
"#;

/// Seconds a browser may keep the docs' static files.
const STATIC_MAX_AGE: HeaderValue = HeaderValue::from_static("public, max-age=3600");

async fn redoc_page() -> Html<&'static str> {
    Html(REDOC_HTML)
}

async fn redoc_js() -> Response {
    javascript(redoc_bundle())
}

async fn redoc_init() -> Response {
    javascript(REDOC_INIT_JS)
}

fn javascript(source: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, STATIC_MAX_AGE),
        ],
        source,
    )
        .into_response()
}

/// ReDoc's standalone bundle, as `aide` ships it. aide only exposes it
/// inlined in a page of its own (`Redoc::html`), so it is taken out of that
/// page once: the script between its `<script>` tag and the `Redoc.init`
/// call aide appends.
pub fn redoc_bundle() -> &'static str {
    static BUNDLE: LazyLock<String> = LazyLock::new(|| {
        const MARKER: &str = "/gateway-redoc-marker.json";
        let page = aide::redoc::Redoc::new(MARKER).html();
        let start = page.find("<script>").expect("aide's page has a script") + "<script>".len();
        let end = page
            .rfind(&format!("Redoc.init(\"{MARKER}\""))
            .expect("aide's page calls Redoc.init");
        page[start..end].trim().to_owned()
    });
    BUNDLE.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redoc_bundle_is_the_pinned_release_and_nothing_else() {
        let bundle = redoc_bundle();
        assert!(
            bundle.starts_with("/*! For license information"),
            "{}",
            &bundle[..80]
        );
        assert!(bundle.len() > 500_000, "{} bytes", bundle.len());
        assert!(
            bundle.contains(&format!("ReDoc Version: \",\"{REDOC_VERSION}\"")),
            "the bundle is not ReDoc {REDOC_VERSION}"
        );
        assert!(!bundle.contains("</script>"));
        assert!(!bundle.contains("gateway-redoc-marker"));
    }

    #[test]
    fn the_redoc_page_names_only_this_origin() {
        for text in [REDOC_HTML, REDOC_INIT_JS] {
            assert!(!text.contains("//"), "{text}");
        }
        assert!(REDOC_HTML.contains(REDOC_JS_PATH));
        assert!(REDOC_HTML.contains(REDOC_INIT_PATH));
        assert!(REDOC_INIT_JS.contains(SPEC_PATH));
    }
}
