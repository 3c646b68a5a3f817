//! `GET /rate_limit`: the caller's budgets, one per bucket (not counted against them).

use axum::extract::{Extension, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::rate_limit::Resource;
use crate::surface::CallerKey;

/// The rate-limit route.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/rate_limit", get(get_rate_limit))
}

/// `GET /rate_limit` → `rate-limit-overview`: `{"resources": {"core", "search",
/// "actions_runner_registration", …}, "rate": <core>}`.
async fn get_rate_limit(
    State(state): State<AppState>,
    Extension(CallerKey(key)): Extension<CallerKey>,
) -> Json<Value> {
    let mut world = state.world();
    let resources = world.rate_resources(&key);
    let core = world.rate_snapshot(&key, Resource::Core).to_json();
    Json(json!({"resources": resources, "rate": core}))
}
