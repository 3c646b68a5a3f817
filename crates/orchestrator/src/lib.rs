//! gha-orchestrator: turns "I need N runners" into N single-use GitHub
//! Actions runner containers that take one job each and vanish, without
//! leaking a container or a GitHub registration.
//!
//! # Layout
//! - [`config`]: every environment variable, parsed once.
//! - [`startup`]: [`startup::Application`], which binds, serves and shuts down.
//! - [`supervisor`]: the background loops, supervised, and their heartbeats.
//! - [`api`]: the HTTP API (where a request goes).
//! - [`runners`]: the lifecycle (where a runner is created and destroyed)
//!   and [`runners::Registry`], the in-memory view.
//! - [`reconciler`]: the pass that keeps Docker, GitHub and the view in line.
//! - [`pools`]: the kinds of runner (pools file or variables) and which
//!   one a job goes to.
//! - [`autoscaler`]: runners on demand (webhooks, polling, warm pools).
//! - [`events`]: Docker's exit events.
//! - [`metrics`]: what `/metrics` shows (Prometheus).
//! - [`github`]: the GitHub REST client.
//! - [`engine`]: where containers run (a trait; Docker today) and our labels (where state lives:
//!   on the containers themselves).
//! - [`scope`]: repositories, organizations, labels.
//! - [`telemetry`]: logging set-up.

pub mod api;
pub mod autoscaler;
pub mod config;
pub mod engine;
pub mod events;
pub mod github;
pub mod metrics;
pub mod pools;
pub mod reconciler;
pub mod runners;
pub mod scope;
pub mod startup;
pub mod supervisor;
pub mod telemetry;
#[cfg(test)]
mod testing;

pub use service_kit::{healthcheck, shutdown_signal};
