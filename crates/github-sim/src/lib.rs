//! A GitHub simulator and runner stand-in: a second implementation of the part of GitHub's
//! REST API that the orchestrator uses (self-hosted runners, workflow runs and jobs, rate
//! limits, webhooks), plus `sim-runner`, which plays an ephemeral runner in a container.
//!
//! Start it in-process with [`spawn`] (tests) or with the `github-sim` binary.
//!
//! # Layout
//! - [`config`]: `SimConfig`, the clap configuration.
//! - `server`: [`spawn`] and [`RunningSim`]: listener, background tasks, shutdown.
//! - `app`: shared state and the router that assembles the surfaces.
//! - `surface`: middleware in front of GitHub's surface (stats, faults, auth, rate limit).
//! - `routes::runners`, `routes::runs`, `routes::meta`: GitHub's endpoints.
//! - `routes::control`: the `/_sim` control API; `routes::runner_protocol`: `/_runner`.
//! - `world`: the in-memory state and its rules (assignment, liveness, single-use JIT).
//! - `github_json`: GitHub's JSON schemas for world objects.
//! - `auth`, `rate_limit`, `faults`, `error`: what their names say.
//! - [`webhooks`]: payloads, signing ([`sign_webhook`]) and the ordered sender.
//! - [`jit_config`]: encoding and decoding of `encoded_jit_config`.
//! - [`protocol`]: wire types of the runner protocol.
//! - [`stand_in`]: the `sim-runner` client logic.
//! - [`telemetry`]: tracing set-up and the shutdown signal shared by the binaries.

mod app;
mod auth;
pub mod config;
mod connection;
mod error;
mod faults;
mod github_json;
pub mod jit_config;
pub mod protocol;
mod rate_limit;
mod routes;
mod server;
pub mod settings;
pub mod stand_in;
mod surface;
pub mod telemetry;
mod tls;
pub mod webhooks;
mod world;

pub use config::SimConfig;
pub use error::GitHubError;
pub use server::{RunningSim, spawn};
pub use settings::WebhookContentType;
pub use webhooks::{sign_webhook, sign_webhook_sha1};
