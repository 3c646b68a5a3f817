//! Integration tests: the real `gha-api-gateway` binary over real sockets.

mod auth;
mod docs;
mod health;
mod helpers;
mod limits;
mod proxy;
