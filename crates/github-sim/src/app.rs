//! Shared application state and the router that puts every surface together.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::Response;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::error::GitHubError;
use crate::routes;
use crate::surface;
use crate::world::World;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// The one lock over the simulated world; never held across `.await`.
    pub(crate) world: Arc<Mutex<World>>,
    /// Accepted tokens; callers are identified by index, never by value.
    pub(crate) tokens: Arc<Vec<SecretString>>,
    /// The simulator's public base URL: written into JIT configurations and `Link` headers.
    pub(crate) public_url: Arc<str>,
    /// GitHub-surface requests in flight (the secondary limit on concurrency counts them).
    pub(crate) in_flight: Arc<AtomicUsize>,
    /// Longest a runner poll is held.
    pub(crate) poll_max: Duration,
    /// Fires at shutdown so long polls return at once.
    pub(crate) cancel: CancellationToken,
}

impl AppState {
    /// Locks the world (a panic elsewhere does not make it unusable).
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// GitHub's surface, served at `/` and under `/api/v3`.
fn github_routes() -> Router<AppState> {
    Router::new()
        .merge(routes::runners::router())
        .merge(routes::runs::router())
        .merge(routes::meta::router())
        .merge(routes::apps::router())
}

/// GitHub labels its JSON `application/json; charset=utf-8`; axum's `Json` says only
/// `application/json`. One rewrite for every answer, errors included.
async fn json_charset(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/json")
    {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    response
}

/// The whole application: GitHub's surface (authenticated, rate limited, faultable),
/// `/_sim` (control API) and `/_runner` (runner protocol).
pub(crate) fn app(state: AppState) -> Router {
    let github = Router::new()
        .merge(github_routes())
        .nest("/api/v3", github_routes())
        .fallback(|| async { GitHubError::not_found() })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            surface::github_surface,
        ));
    Router::new()
        .nest("/_sim", routes::control::router())
        .nest("/_runner", routes::runner_protocol::router())
        .merge(github)
        .layer(middleware::map_response(json_charset))
        .with_state(state)
}
