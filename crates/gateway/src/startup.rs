//! [`Application`]: builds the gateway from a [`Config`], binds the
//! listener (port 0 works), serves with the peer address available to the
//! rate limiter, and shuts down gracefully when the given signal fires.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::auth::ApiKeys;
use crate::config::Config;
use crate::proxy::Upstream;
use crate::{AppState, app};

/// A built, bound, not yet running gateway.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Checks the configuration, builds the app and binds the listener.
    /// Must run inside a Tokio runtime (the rate limiter starts its
    /// clean-up task here).
    ///
    /// # Errors
    /// An invalid configuration (naming the variable) or a port that cannot
    /// be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let keys = ApiKeys::new(config.keys());
        if !keys.enabled() {
            warn!(
                "API_KEYS is empty: authentication is OFF, anyone who can reach the gateway can create and delete runners"
            );
        }
        let upstream = Upstream::new(
            &config.orchestrator_url,
            config.upstream_timeout(),
            config.max_body_bytes,
        )
        .context("cannot build the HTTP client for ORCHESTRATOR_URL")?;
        let router = app(&config, AppState { upstream, keys }).map_err(anyhow::Error::msg)?;
        let address = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(address).await.with_context(|| {
            format!("cannot listen on {address} (API_GATEWAY_HOST/API_GATEWAY_PORT)")
        })?;
        info!(
            orchestrator = %config.orchestrator_url,
            rate_limit_per_second = config.rate_limit_per_second,
            rate_limit_burst = config.rate_limit_burst,
            trust_proxy_headers = config.trust_proxy_headers,
            "gateway configured"
        );
        Ok(Self { listener, router })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` completes, lets the requests in flight
    /// finish, and returns.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        info!(port = self.port(), "gha-api-gateway listening");
        // Like axum::serve, plus a deadline on reading request headers so a
        // client trickling them (slowloris) cannot hold a connection.
        service_kit::serve(
            self.listener,
            self.router,
            async move {
                shutdown.await;
                info!("shutting down: finishing requests in flight");
            },
            service_kit::HEADER_READ_TIMEOUT,
        )
        .await?;
        info!("gha-api-gateway stopped");
        Ok(())
    }
}
