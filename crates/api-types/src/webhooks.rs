//! The answer to a GitHub webhook delivery.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the orchestrator did with a delivery. GitHub only needs a 2xx; the
/// body helps whoever reads the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"outcome": "recorded", "detail": null}))]
pub struct WebhookAck {
    /// `recorded` (acted on), `unchanged` (known already), `duplicate`
    /// (a redelivery), `ignored` (not for us), or `pong` (a ping).
    pub outcome: String,
    /// Why it was ignored, when it was.
    pub detail: Option<String>,
}
