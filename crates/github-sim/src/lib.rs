//! A GitHub simulator and runner stand-in: a second implementation of the part of GitHub's
//! REST API that the orchestrator uses (self-hosted runners, workflow runs and jobs, rate
//! limits, webhooks), plus `sim-runner`, which plays an ephemeral runner in a container.
//!
//! It answers like api.github.com wherever a client could notice: bodies in GitHub's
//! schemas (checked against the published OpenAPI description by `tests/api/schemas.rs`),
//! weak ETags, request ids, the `User-Agent` rule, `Link` headers, separate rate-limit
//! buckets and a secondary limit, a lagging search-backed run listing, form or JSON webhooks
//! with both signatures, faults that lose an answer after the request was applied, and
//! GitHub Apps (JWTs checked as GitHub checks them, installations, installation tokens that
//! expire). A simulated job may carry a `run:` script, which the stand-in runs with bash
//! as a runner runs a step; the end of its output comes back as the job's `log`.
//!
//! Start it in-process with [`spawn`] (tests) or with the `github-sim` binary. For HTTPS
//! (a GitHub Enterprise Server behind a private CA), set [`SimConfig::tls_cert_file`] and
//! [`SimConfig::tls_key_file`] to PEM files: [`RunningSim::url`] is then `https://…`, and
//! a test in another crate trusts its own CA (e.g. made with `rcgen`) in its client.
//!
//! # Layout
//! - [`config`]: `SimConfig`, the clap configuration.
//! - [`settings`]: what `PATCH /_sim/settings` changes at run time.
//! - `server`: [`spawn`] and [`RunningSim`]: listener, background tasks, shutdown.
//! - `connection`: the listener (plain or TLS) and the handle that lets a fault cut a
//!   connection; `tls`: the rustls configuration from PEM files.
//! - `app`: shared state and the router that assembles the surfaces.
//! - `surface`: middleware in front of GitHub's surface (request id, `User-Agent`, stats,
//!   concurrency limit, faults, auth, rate-limit buckets).
//! - `routes::runners`, `routes::runs`, `routes::meta`, `routes::apps`: GitHub's endpoints.
//! - `routes::control`: the `/_sim` control API; `routes::runner_protocol`: `/_runner`.
//! - `world`: the in-memory state and its rules (assignment, liveness, single-use JIT).
//! - `github_json`: GitHub's JSON schemas for world objects.
//! - `apps`: GitHub Apps, their installations, the JWT check and installation tokens;
//!   `routes::apps` serves the App endpoints.
//! - `auth`, `rate_limit`, `faults`, `error`: what their names say.
//! - [`webhooks`]: payloads, signing ([`sign_webhook`], [`sign_webhook_sha1`]), the ordered
//!   sender, redeliveries.
//! - [`jit_config`]: encoding and decoding of `encoded_jit_config`.
//! - [`protocol`]: wire types of the runner protocol.
//! - [`stand_in`]: the `sim-runner` client logic; `step`: a job's `run:` script in the
//!   stand-in (its workspace, its environment without credentials, its process group and
//!   output).
//! - [`telemetry`]: tracing set-up and the shutdown signal shared by the binaries.

mod app;
mod apps;
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
mod step;
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
