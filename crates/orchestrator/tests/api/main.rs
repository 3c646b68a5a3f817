#![allow(unreachable_pub, missing_debug_implementations)]
//! Integration tests of gha-orchestrator: the real binary, the real Docker
//! engine, the GitHub simulator and the runner stand-in image.

mod helpers;

mod autoscale;
mod bad_input;
mod capacity;
mod churn;
mod crash_recovery;
mod docker_faults;
mod docker_sidecar;
mod github_app;
mod github_faults;
mod lifecycle;
mod listings;
mod lost_answers;
mod metrics;
mod operations;
mod ownership;
mod pools;
mod private_ca;
mod rate_buckets;
mod secrets;
mod supervision;
mod webhooks;
