//! `GET /rate_limit`: the caller's budget (not counted against it).

use axum::extract::{Extension, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::surface::CallerKey;

/// The rate-limit route.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/rate_limit", get(get_rate_limit))
}

/// `GET /rate_limit` → `{"resources": {"core": {...}}, "rate": {...}}`.
async fn get_rate_limit(
    State(state): State<AppState>,
    Extension(CallerKey(key)): Extension<CallerKey>,
) -> Json<Value> {
    let s = state.world().rate.snapshot(&key);
    let core = json!({"limit": s.limit, "remaining": s.remaining, "reset": s.reset, "used": s.used, "resource": "core"});
    Json(json!({"resources": {"core": core}, "rate": core}))
}
