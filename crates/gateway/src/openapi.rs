//! The OpenAPI document (every `/api/v1` endpoint, the shared `api_types`
//! schemas, the API-key security schemes) and where it is served: Swagger UI
//! at `/docs`, ReDoc at `/redoc`, the JSON at `/openapi.json`. Both UIs are
//! compiled into the binary (utoipa-swagger-ui's `vendored` feature).

use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_redoc::{Redoc, Servable};
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Where the document is served.
pub const SPEC_PATH: &str = "/openapi.json";

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
        (name = "webhooks", description = "GitHub webhooks (signed, no API key)"),
        (name = "health", description = "Health checks")
    ),
    components(schemas(api_types::ErrorBody, api_types::ErrorDetail))
)]
pub struct ApiDoc;

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
    let swagger = SwaggerUi::new("/docs")
        .url(SPEC_PATH, spec.clone())
        .config(Config::new([SPEC_PATH]).persist_authorization(true));
    Router::new()
        .merge(swagger)
        .merge(Redoc::with_url("/redoc", spec))
}
