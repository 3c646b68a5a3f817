//! Integration tests: the real simulator on 127.0.0.1:0, driven over HTTP.

mod apps;
mod auth_rate;
mod control;
mod faults;
mod helpers;
mod http;
mod image;
mod run_steps;
mod runners;
mod runs;
mod schemas;
mod stand_in;
mod tls;
mod webhooks;
