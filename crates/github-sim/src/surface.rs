//! The middleware in front of GitHub's surface: stats, faults, API version, auth, rate limit.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth;
use crate::error::{DOCS_PRIMARY_RATE, GitHubError};
use crate::rate_limit::{Snapshot, apply_headers};

/// API versions GitHub currently serves.
const API_VERSIONS: &[&str] = &["2022-11-28", "2026-03-10"];

/// Which budget a request is charged to, for handlers such as `GET /rate_limit`.
#[derive(Debug, Clone)]
pub(crate) struct CallerKey(pub(crate) String);

fn with_rate_headers(mut response: Response, snapshot: Snapshot) -> Response {
    apply_headers(response.headers_mut(), snapshot);
    response.headers_mut().insert(
        "x-github-api-version-selected",
        HeaderValue::from_static("2022-11-28"),
    );
    response
}

/// Runs in front of every GitHub-surface request.
pub(crate) async fn github_surface(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
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
    let key = auth::identify(request.headers(), &state.tokens).map(|i| format!("token#{i}"));
    let snapshot_key = key.clone().unwrap_or_else(|| "unauthenticated".to_owned());

    let fault = {
        let mut world = state.world();
        world.stats.api_calls_total += 1;
        *world
            .stats
            .api_calls
            .entry(format!("{method} {template}"))
            .or_default() += 1;
        world.faults.take(&method, &path)
    };
    if let Some(fault) = fault {
        if let Some(delay) = fault.delay_ms {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        if let Some(error) = fault.error() {
            tracing::info!(%method, %path, status = %error.status, "injected fault");
            let snapshot = state.world().rate.snapshot(&snapshot_key);
            return with_rate_headers(error.into_response(), snapshot);
        }
    }

    let Some(key) = key else {
        let snapshot = state.world().rate.count("unauthenticated");
        return with_rate_headers(GitHubError::bad_credentials().into_response(), snapshot);
    };

    if let Some(version) = request.headers().get("x-github-api-version") {
        let version = version.to_str().unwrap_or_default();
        if !API_VERSIONS.contains(&version) {
            let snapshot = state.world().rate.snapshot(&key);
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
            world.rate.take(&key)
        } else {
            Ok(world.rate.snapshot(&key))
        }
    };
    let snapshot = match snapshot {
        Ok(snapshot) => snapshot,
        Err(snapshot) => {
            let error = GitHubError::new(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)",
            )
            .with_docs(DOCS_PRIMARY_RATE);
            return with_rate_headers(error.into_response(), snapshot);
        }
    };

    request.extensions_mut().insert(CallerKey(key.clone()));
    let response = next.run(request).await;
    let snapshot = if response.status() == StatusCode::NOT_MODIFIED && counts_against_budget {
        let mut world = state.world();
        world.stats.not_modified += 1;
        world.rate.refund(&key)
    } else {
        snapshot
    };
    with_rate_headers(response, snapshot)
}
