//! HTTP handlers, one module per surface, plus the extractors and helpers they share.

pub(crate) mod apps;
pub(crate) mod control;
pub(crate) mod meta;
pub(crate) mod runner_protocol;
pub(crate) mod runners;
pub(crate) mod runs;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::GitHubError;
use crate::world::Scope;

/// A JSON body parsed as GitHub does: malformed JSON ⇒ 400 `Problems parsing JSON`.
#[derive(Debug)]
pub(crate) struct GhJson(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for GhJson {
    type Rejection = GitHubError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| GitHubError::bad_json())?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Value::Object(serde_json::Map::new())));
        }
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|_| GitHubError::bad_json())
    }
}

/// The repository or organization named in the path; 404 when it is not configured.
#[derive(Debug)]
pub(crate) struct RunnerScope {
    pub(crate) scope: Scope,
    /// Path parameters (e.g. `runner_id`).
    pub(crate) params: HashMap<String, String>,
}

impl FromRequestParts<AppState> for RunnerScope {
    type Rejection = GitHubError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| GitHubError::not_found())?;
        let world = state.world();
        let scope = if let Some(org) = params.get("org") {
            let key = org.to_lowercase();
            match world.owners.get(&key) {
                Some(owner) if owner.is_org => Scope::Org(key),
                _ => return Err(GitHubError::not_found()),
            }
        } else {
            let owner = params.get("owner").map_or("", String::as_str);
            let repo = params.get("repo").map_or("", String::as_str);
            let (key, _) = world
                .find_repo(owner, repo)
                .ok_or_else(GitHubError::not_found)?;
            Scope::Repo(key)
        };
        drop(world);
        Ok(Self { scope, params })
    }
}

/// `per_page` (1..=100, default 30) and `page` (default 1) as GitHub reads them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    pub(crate) per_page: usize,
    pub(crate) page: usize,
}

impl Page {
    /// Reads the pagination parameters; unparsable values fall back to the defaults.
    pub(crate) fn from_query(query: &HashMap<String, String>) -> Self {
        let per_page = query
            .get("per_page")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|v| *v > 0)
            .map_or(30, |v| v.min(100));
        let page = query
            .get("page")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(1);
        Self { per_page, page }
    }

    /// The items of this page.
    pub(crate) fn slice<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .skip((self.page - 1).saturating_mul(self.per_page))
            .take(self.per_page)
            .cloned()
            .collect()
    }

    /// GitHub's `Link` header (`prev`, `next`, `last`, `first`), none for a single page.
    /// Built on `base`, the simulator's public URL, and the request's full path
    /// (`original`: with `/api/v3` when the request came under it).
    pub(crate) fn link(&self, base: &str, original: &Uri, total: usize) -> Option<String> {
        let last = total.div_ceil(self.per_page).max(1);
        if last <= 1 && self.page <= 1 {
            return None;
        }
        let uri = original;
        let kept: Vec<&str> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("page="))
            .collect();
        let url = |page: usize| {
            let mut query = kept.clone();
            let page = format!("page={page}");
            query.push(&page);
            format!("<{base}{}?{}>", uri.path(), query.join("&"))
        };
        let mut links = Vec::new();
        if self.page > 1 {
            links.push(format!("{}; rel=\"prev\"", url((self.page - 1).min(last))));
        }
        if self.page < last {
            links.push(format!("{}; rel=\"next\"", url(self.page + 1)));
            links.push(format!("{}; rel=\"last\"", url(last)));
        }
        if self.page > 1 {
            links.push(format!("{}; rel=\"first\"", url(1)));
        }
        (!links.is_empty()).then(|| links.join(", "))
    }
}

/// Query string as a map (last value wins).
pub(crate) fn query_map(uri: &Uri) -> HashMap<String, String> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0.into_iter().collect())
        .unwrap_or_default()
}

/// A 200 JSON answer with a weak `ETag` (`W/"…"`, as api.github.com sends), or 304 with no
/// body when `If-None-Match` names it, weak or strong (the weak comparison of RFC 9110).
pub(crate) fn json_with_etag(
    request_headers: &HeaderMap,
    value: &Value,
    link: Option<String>,
) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let opaque = format!("\"{}\"", hex::encode(Sha256::digest(&body)));
    let etag = format!("W/{opaque}");
    let matches = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == opaque);
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if !matches && let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_has_githubs_relations() {
        let uri: Uri = "/api/v3/repos/o/r/actions/runners?per_page=2&page=2"
            .parse()
            .unwrap();
        let page = Page::from_query(&query_map(&uri));
        let link = page.link("https://h:1", &uri, 5).unwrap();
        assert_eq!(
            link,
            "<https://h:1/api/v3/repos/o/r/actions/runners?per_page=2&page=1>; rel=\"prev\", \
             <https://h:1/api/v3/repos/o/r/actions/runners?per_page=2&page=3>; rel=\"next\", \
             <https://h:1/api/v3/repos/o/r/actions/runners?per_page=2&page=3>; rel=\"last\", \
             <https://h:1/api/v3/repos/o/r/actions/runners?per_page=2&page=1>; rel=\"first\""
        );
        assert!(Page::from_query(&query_map(&"/x?per_page=500".parse().unwrap())).per_page == 100);
    }
}
