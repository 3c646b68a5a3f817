//! Integration tests: the real `gha-api-gateway` binary over real sockets,
//! in front of a recording stand-in or (in `end_to_end` and `load`) the
//! real `gha-orchestrator` with the GitHub simulator and Docker.

mod auth;
mod connections;
mod docs;
mod end_to_end;
mod health;
mod helpers;
mod hostile;
mod limits;
mod load;
mod metrics;
mod proxy;
mod slow_clients;
