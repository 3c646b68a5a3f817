//! The middleware in front of GitHub's surface, in the order GitHub's edge and API apply
//! them: request id, stats, `User-Agent`, the secondary limit on concurrent requests,
//! injected faults (before), API version, auth (a token, an installation token, or an App's
//! JWT, each only where GitHub accepts it), the rate-limit bucket of the route, the
//! handler, injected faults (after), and the `x-ratelimit-*` headers of that bucket.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;

use crate::app::AppState;
use crate::apps::{Caller, JWT_UNDECODABLE, TokenCheck, looks_like_jwt};
use crate::auth;
use crate::connection::ConnectionHandle;
use crate::error::{DOCS_PRIMARY_RATE, DOCS_SECONDARY_RATE, GitHubError};
use crate::faults::FaultMode;
use crate::rate_limit::{Resource, Snapshot, UNAUTHENTICATED, apply_headers, now_secs};

/// API versions GitHub currently serves.
const API_VERSIONS: &[&str] = &["2022-11-28", "2026-03-10"];

/// What GitHub's edge answers (403, `text/html`) to a request without a `User-Agent`.
const NO_USER_AGENT: &str = "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n";

/// `retry-after` seconds of a secondary-limit (concurrency) refusal.
const CONCURRENCY_RETRY_AFTER: u64 = 1;

/// Which budget a request is charged to, for handlers such as `GET /rate_limit`.
#[derive(Debug, Clone)]
pub(crate) struct CallerKey(pub(crate) String);

/// A random request id shaped like GitHub's `X-GitHub-Request-Id`
/// (`CA0E:3E6E:1B4C1B6:1BF2C5A:6650F0A1`: hex fields, the last one a clock).
fn request_id() -> String {
    let mut rng = rand::rng();
    format!(
        "{:04X}:{:04X}:{:07X}:{:07X}:{:08X}",
        rng.random_range(0..0x1_0000u32),
        rng.random_range(0..0x1_0000u32),
        rng.random_range(0..0x1000_0000u32),
        rng.random_range(0..0x1000_0000u32),
        now_secs() & 0xFFFF_FFFF,
    )
}

/// Who the request authenticates as: `Ok(None)` without a credential we know, `Err` with
/// GitHub's answer for one it refuses (a JWT that fails a check, an expired installation
/// token).
fn identify(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Option<Caller>, GitHubError> {
    if let Some(index) = auth::identify(headers, &state.tokens) {
        return Ok(Some(Caller::Token(index)));
    }
    let Some(credential) = auth::credential(headers) else {
        return Ok(None);
    };
    let world = state.world();
    if looks_like_jwt(credential) {
        let now = i64::try_from(now_secs()).unwrap_or(i64::MAX);
        return match world.apps.verify_jwt(credential, now) {
            Ok(app) => Ok(Some(Caller::App(app))),
            Err(message) => Err(GitHubError::new(StatusCode::UNAUTHORIZED, message)),
        };
    }
    match world.apps.check_token(credential, chrono::Utc::now()) {
        TokenCheck::Valid(caller) => Ok(Some(caller)),
        TokenCheck::Expired => Err(GitHubError::bad_credentials()),
        TokenCheck::Unknown => Ok(None),
    }
}

/// Routes that take an App's JWT, and only that: `/app…` and the installation look-ups.
fn is_app_route(template: &str) -> bool {
    template == "/app" || template.starts_with("/app/") || template.ends_with("/installation")
}

/// The owner a path is about (`/repos/{owner}/…`, `/orgs/{org}/…`, `/users/{user}/…`).
fn owner_in_path(path: &str) -> Option<&str> {
    let path = path.strip_prefix("/api/v3").unwrap_or(path);
    let mut segments = path.split('/').skip(1);
    match segments.next()? {
        "repos" | "orgs" | "users" => segments.next().filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// Why a caller may not make this request, if it may not: a JWT opens only the App routes
/// (and `/rate_limit`), the App routes need a JWT, and an installation token opens only its
/// own account.
fn refusal(caller: &Caller, template: &str, path: &str) -> Option<GitHubError> {
    if template == "/rate_limit" {
        return None;
    }
    match caller {
        Caller::App(_) if !is_app_route(template) => Some(GitHubError::new(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        )),
        Caller::App(_) => None,
        _ if is_app_route(template) => {
            Some(GitHubError::new(StatusCode::UNAUTHORIZED, JWT_UNDECODABLE))
        }
        Caller::Installation { owner_key, .. } => owner_in_path(path)
            .filter(|owner| !owner.eq_ignore_ascii_case(owner_key))
            .map(|_| GitHubError::not_found()),
        Caller::Token(_) => None,
    }
}

fn with_rate_headers(mut response: Response, snapshot: Snapshot) -> Response {
    apply_headers(response.headers_mut(), snapshot);
    response.headers_mut().insert(
        "x-github-api-version-selected",
        HeaderValue::from_static("2022-11-28"),
    );
    response
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Counts one more; returns the guard and how many are in flight with it.
    fn enter(counter: &Arc<AtomicUsize>) -> (Self, usize) {
        let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
        (Self(counter.clone()), now)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits `ms`, or less when the simulator shuts down.
async fn hold(state: &AppState, ms: u64) {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => {}
        () = state.cancel.cancelled() => {}
    }
}

/// Cuts the connection (see [`ConnectionHandle::abort`]); the response returned with it is
/// never written.
fn drop_connection(connection: Option<&ConnectionHandle>) -> Response {
    match connection {
        Some(connection) => connection.abort(),
        None => tracing::warn!("no connection handle: cannot drop the connection"),
    }
    StatusCode::BAD_GATEWAY.into_response()
}

/// Runs in front of every GitHub-surface request and stamps its `X-GitHub-Request-Id`.
pub(crate) async fn github_surface(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let id = request_id();
    let mut response = guarded(&state, request, next, &id).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-github-request-id", value);
    }
    response
}

async fn guarded(state: &AppState, mut request: Request, next: Next, request_id: &str) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    let template = template
        .strip_prefix("/api/v3")
        .unwrap_or(template)
        .to_owned();
    let counts_against_budget = template != "/rate_limit";
    let resource = Resource::of(&method, &template);
    let connection = request
        .extensions()
        .get::<ConnectInfo<ConnectionHandle>>()
        .map(|c| c.0.clone());
    let identified = identify(state, request.headers());
    let caller = identified.as_ref().ok().cloned().flatten();
    let key = caller.as_ref().map(Caller::key);
    let snapshot_key = key.clone().unwrap_or_else(|| UNAUTHENTICATED.to_owned());

    let (_in_flight, in_flight) = InFlight::enter(&state.in_flight);
    let (fault, max_in_flight) = {
        let mut world = state.world();
        world.stats.api_calls_total += 1;
        *world
            .stats
            .api_calls
            .entry(format!("{method} {template}"))
            .or_default() += 1;
        let has_user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .is_some_and(|v| !v.as_bytes().trim_ascii().is_empty());
        if !has_user_agent {
            drop(world);
            return (
                StatusCode::FORBIDDEN,
                [
                    (header::CONTENT_TYPE, "text/html"),
                    (header::CONNECTION, "close"),
                ],
                NO_USER_AGENT,
            )
                .into_response();
        }
        let fault = world.faults.take(&method, &path);
        (fault, world.settings.max_concurrent_requests)
    };

    if max_in_flight > 0 && in_flight as u64 > max_in_flight {
        let snapshot = state.world().rate_snapshot(&snapshot_key, resource);
        tracing::info!(%method, %path, in_flight, "secondary rate limit: too many concurrent requests");
        let error = GitHubError {
            retry_after: Some(CONCURRENCY_RETRY_AFTER),
            ..GitHubError::new(
                StatusCode::FORBIDDEN,
                format!("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID {request_id}."),
            )
            .with_docs(DOCS_SECONDARY_RATE)
        };
        return with_rate_headers(error.into_response(), snapshot);
    }

    let after = match fault {
        Some(fault) if fault.mode == FaultMode::After => Some(fault),
        Some(fault) => {
            if let Some(delay) = fault.delay_ms {
                hold(state, delay).await;
            }
            if fault.drop {
                tracing::info!(%method, %path, "injected fault: connection dropped, not applied");
                return drop_connection(connection.as_ref());
            }
            if let Some(error) = fault.error() {
                tracing::info!(%method, %path, status = %error.status, "injected fault");
                let snapshot = state.world().rate_snapshot(&snapshot_key, resource);
                return with_rate_headers(error.into_response(), snapshot);
            }
            None
        }
        None => None,
    };

    let (Some(key), Some(caller)) = (key, caller) else {
        let refused = identified
            .err()
            .unwrap_or_else(GitHubError::bad_credentials);
        let snapshot = state.world().rate_count(UNAUTHENTICATED, Resource::Core);
        return with_rate_headers(refused.into_response(), snapshot);
    };

    if let Some(version) = request.headers().get("x-github-api-version") {
        let version = version.to_str().unwrap_or_default();
        if !API_VERSIONS.contains(&version) {
            let snapshot = state.world().rate_snapshot(&key, resource);
            let error = GitHubError::new(
                StatusCode::BAD_REQUEST,
                format!("API version {version} is not supported."),
            )
            .with_docs("https://docs.github.com/rest/overview/api-versions");
            return with_rate_headers(error.into_response(), snapshot);
        }
    }

    let snapshot = {
        let mut world = state.world();
        if counts_against_budget {
            world.rate_take(&key, resource)
        } else {
            Ok(world.rate_snapshot(&key, resource))
        }
    };
    let snapshot = match snapshot {
        Ok(snapshot) => snapshot,
        Err(snapshot) => {
            let who = match &caller {
                Caller::Token(index) => format!("user ID {}", index + 1),
                Caller::Installation { id, .. } => format!("installation ID {id}"),
                Caller::App(id) => format!("integration ID {id}"),
            };
            let error = GitHubError::new(
                StatusCode::FORBIDDEN,
                format!("API rate limit exceeded for {who}. If you reach out to GitHub Support for help, please include the request ID {request_id}."),
            )
            .with_docs(DOCS_PRIMARY_RATE);
            return with_rate_headers(error.into_response(), snapshot);
        }
    };

    if let Some(error) = refusal(&caller, &template, &path) {
        return with_rate_headers(error.into_response(), snapshot);
    }

    request.extensions_mut().insert(CallerKey(key.clone()));
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;

    if let Some(fault) = after {
        // Applied; now its answer is lost.
        if let Some(delay) = fault.delay_ms {
            hold(state, delay).await;
        }
        if fault.drop {
            tracing::info!(%method, %path, status = %response.status(), "injected fault: applied, connection dropped");
            return drop_connection(connection.as_ref());
        }
        if let Some(error) = fault.error() {
            tracing::info!(%method, %path, real = %response.status(), status = %error.status, "injected fault: applied, answer replaced");
            return with_rate_headers(error.into_response(), snapshot);
        }
    }

    let snapshot = if response.status() == StatusCode::NOT_MODIFIED && counts_against_budget {
        let mut world = state.world();
        world.stats.not_modified += 1;
        world.rate_refund(&key, resource)
    } else {
        snapshot
    };
    with_rate_headers(response, snapshot)
}
