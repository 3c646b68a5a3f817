//! The report of one reconcile pass.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why the reconciler removed a runner or a registration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// The container had exited; its registration was made sure gone.
    Exited,
    /// A GitHub registration with our name prefix, offline, with no container
    /// (for example a crash between the JIT call and the container create).
    OrphanRegistration,
    /// A container of ours with no GitHub registration any more (its job
    /// finished or someone deleted the runner on GitHub).
    RegistrationGone,
    /// The runner never came online within `RUNNER_REGISTRATION_TIMEOUT_SECONDS`.
    RegistrationTimeout,
    /// The runner outlived `RUNNER_MAX_LIFETIME_SECONDS` and was not busy.
    MaxLifetime,
    /// An idle runner above the warm pool, idle past `RUNNER_IDLE_TIMEOUT_SECONDS`.
    IdleTimeout,
}

impl RemovalReason {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::Exited => "exited",
            RemovalReason::OrphanRegistration => "orphan_registration",
            RemovalReason::RegistrationGone => "registration_gone",
            RemovalReason::RegistrationTimeout => "registration_timeout",
            RemovalReason::MaxLifetime => "max_lifetime",
            RemovalReason::IdleTimeout => "idle_timeout",
        }
    }
}

/// One thing a reconcile pass removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RemovedRunner {
    /// The runner's name.
    pub id: String,
    /// Why it was removed.
    pub reason: RemovalReason,
    /// Whether a container was removed (false for a lone registration).
    pub container_removed: bool,
    /// Whether a GitHub registration was deleted (false when it was already gone).
    pub registration_deleted: bool,
}

/// What one reconcile pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CleanupReport {
    /// Everything removed, in the order it was removed.
    pub removed: Vec<RemovedRunner>,
    /// How many removals per reason.
    pub by_reason: BTreeMap<RemovalReason, usize>,
    /// Problems met on the way (a failed GitHub listing, a removal to retry
    /// later). A pass that could not list GitHub removes nothing that depends
    /// on GitHub's view.
    pub warnings: Vec<String>,
    /// Runners being created when the pass looked: their registrations may
    /// exist before their containers do, so the pass left them alone. Empty
    /// once every create has ended, however it ended.
    #[serde(default)]
    pub in_flight: Vec<String>,
}

impl CleanupReport {
    /// Records one removal.
    pub fn push(&mut self, removed: RemovedRunner) {
        *self.by_reason.entry(removed.reason).or_default() += 1;
        self.removed.push(removed);
    }
}
