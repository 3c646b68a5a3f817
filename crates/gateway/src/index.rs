//! `GET /`: where the documentation is. A browser (one that accepts HTML)
//! is redirected to Swagger UI; any other client gets the addresses as
//! JSON. No API key: it tells nothing but where to read.

use axum::Json;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Swagger UI's page, where a browser is sent.
const DOCS: &str = "/docs/";

/// The gateway's addresses for reading about it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "name": "gha-api-gateway", "version": "0.1.0", "docs": "/docs/",
    "redoc": "/redoc", "openapi": "/openapi.json", "health": "/health"
}))]
pub struct ApiIndex {
    /// The service.
    pub name: &'static str,
    /// Its version.
    pub version: &'static str,
    /// Swagger UI.
    pub docs: &'static str,
    /// ReDoc.
    pub redoc: &'static str,
    /// The OpenAPI document.
    pub openapi: &'static str,
    /// The gateway's own health.
    pub health: &'static str,
}

/// `GET /`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(index))
}

/// Where the documentation is.
///
/// A browser (`Accept` naming `text/html`) is redirected (307) to Swagger
/// UI at `/docs/`; other clients get the documentation's addresses.
#[utoipa::path(
    get, path = "/", tag = "health",
    responses(
        (status = 200, description = "The documentation's addresses", body = ApiIndex),
        (status = 307, description = "To Swagger UI, for a browser",
            headers(("Location" = String, description = "`/docs/`"))),
        (status = 429, description = "Rate limit reached; see Retry-After", body = api_types::ErrorBody),
    )
)]
async fn index(headers: HeaderMap) -> Response {
    let wants_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    if wants_html {
        return Redirect::temporary(DOCS).into_response();
    }
    Json(ApiIndex {
        name: "gha-api-gateway",
        version: env!("CARGO_PKG_VERSION"),
        docs: DOCS,
        redoc: crate::openapi::REDOC_PATH,
        openapi: crate::openapi::SPEC_PATH,
        health: "/health",
    })
    .into_response()
}
