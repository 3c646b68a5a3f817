//! [`Application`]: builds the gateway from a [`Config`], binds the
//! listener (port 0 works), serves with the peer address available to the
//! rate limiter, and shuts down gracefully when the given signal fires.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::auth::ApiKeys;
use crate::config::{ApiAuth, Config};
use crate::proxy::Upstream;
use crate::rate_limit::RateLimit;
use crate::{AppState, RequestIds, app};

/// A built, bound, not yet running gateway.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    config: Config,
    keys: ApiKeys,
    limit: RateLimit,
    request_ids: RequestIds,
}

impl Application {
    /// Reads the API keys, builds the app once (so a bad setting
    /// fails here) and binds the listener. Must run inside a Tokio runtime
    /// (the rate limiter starts its clean-up task here).
    ///
    /// # Errors
    /// An invalid configuration (naming the variable), no API key while
    /// `API_AUTH` requires one, an unreadable `API_KEYS_FILE`, or a port
    /// that cannot be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let keys = ApiKeys::new(&config.accepted_keys().map_err(anyhow::Error::msg)?);
        if config.api_auth == ApiAuth::Disabled {
            warn!(
                "API_AUTH=disabled: authentication is OFF, anyone who can reach the gateway can create and delete runners"
            );
        }
        let limit = RateLimit::new(
            config.rate_limit_per_second,
            config.rate_limit_burst,
            config.trust_proxy_headers,
        );
        let request_ids = RequestIds::new();
        let _checked = make_app(&config, &keys, &limit, &request_ids)?;
        let address = config.listen_address();
        let listener = TcpListener::bind(address).await.with_context(|| {
            format!("cannot listen on {address} (API_GATEWAY_HOST/API_GATEWAY_PORT)")
        })?;
        info!(
            orchestrator = %config.orchestrator_url,
            rate_limit_per_second = config.rate_limit_per_second,
            rate_limit_burst = config.rate_limit_burst,
            trust_proxy_headers = config.trust_proxy_headers,
            api_keys = keys.count(),
            max_connections = config.max_connections,
            workers = config.worker_threads().get(),
            "gateway configured"
        );
        Ok(Self {
            listener,
            config,
            keys,
            limit,
            request_ids,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` completes, lets the requests in flight
    /// finish, and returns.
    ///
    /// # Errors
    /// When the serving threads cannot start.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        info!(port = self.port(), "gha-api-gateway listening");
        let Self {
            listener,
            config,
            keys,
            limit,
            request_ids,
        } = self;
        let threads = config.worker_threads();
        let max_connections = config.max_connections;
        // Each serving thread gets its own app, so its own pooled
        // connections to the orchestrator: a request never waits on
        // another thread.
        let make_thread = move || {
            make_app(&config, &keys, &limit, &request_ids)
                .expect("the same settings built an app at start-up")
        };
        // Like axum::serve, plus a deadline on reading request headers so a
        // client trickling them (slowloris) cannot hold a connection, and a
        // cap on open connections.
        service_kit::serve_on_threads(
            listener,
            threads,
            make_thread,
            async move {
                shutdown.await;
                info!("shutting down: finishing requests in flight");
            },
            service_kit::Limits {
                header_read_timeout: service_kit::HEADER_READ_TIMEOUT,
                max_connections,
            },
        )
        .await?;
        info!("gha-api-gateway stopped");
        Ok(())
    }
}

/// The app of one serving thread: a new client to the orchestrator, and
/// the shared keys, limiter and request ids.
fn make_app(
    config: &Config,
    keys: &ApiKeys,
    limit: &RateLimit,
    request_ids: &RequestIds,
) -> anyhow::Result<impl service_kit::HttpService<crate::ResponseBody> + use<>> {
    let upstream = Upstream::new(
        &config.orchestrator_url,
        config.upstream_timeout,
        config.max_body_bytes,
    )
    .context("cannot build the HTTP client for ORCHESTRATOR_URL")?;
    let state = AppState {
        upstream: Arc::new(upstream),
        keys: keys.clone(),
    };
    app(config, state, limit, request_ids.clone()).map_err(anyhow::Error::msg)
}
