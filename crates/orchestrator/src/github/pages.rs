//! Paginated listings: GitHub's `Link: <…>; rel="next"` followed to the
//! end, 100 items a page, and the ETags of the pages last read so that an
//! unchanged page costs no rate limit.
//!
//! GitHub's `next` links are absolute and may name another path than the
//! one asked (`/repositories/{id}/…` for `/repos/{owner}/{name}/…`); they
//! are followed only on the API's own origin, so the token never goes
//! anywhere else.

use std::collections::HashMap;

use bytes::Bytes;
use http::HeaderMap;
use serde::de::DeserializeOwned;

use super::GitHubRunner;
use super::types::{JobsPage, RunnerPage, RunsPage, WorkflowJob, WorkflowRun};

/// Items per page: GitHub's maximum (its default is 30).
pub const PER_PAGE: usize = 100;
/// A listing longer than this many pages is refused rather than followed
/// (10,000 items: far beyond what one orchestrator serves).
pub const MAX_PAGES: usize = 100;
/// GitHub answers at most this many workflow runs for a `status`-filtered
/// listing (it is search-backed): past it, runs are missing from the listing.
pub const FILTERED_RUNS_CAP: i64 = 1000;

/// One page of a listing.
pub(crate) trait PageBody: DeserializeOwned {
    /// What the listing lists.
    type Item;
    /// The listing's length over all pages, as this page says.
    fn total_count(&self) -> i64;
    /// This page's items.
    fn into_items(self) -> Vec<Self::Item>;
}

impl PageBody for RunnerPage {
    type Item = GitHubRunner;
    fn total_count(&self) -> i64 {
        self.total_count
    }
    fn into_items(self) -> Vec<GitHubRunner> {
        self.runners
    }
}

impl PageBody for RunsPage {
    type Item = WorkflowRun;
    fn total_count(&self) -> i64 {
        self.total_count
    }
    fn into_items(self) -> Vec<WorkflowRun> {
        self.workflow_runs
    }
}

impl PageBody for JobsPage {
    type Item = WorkflowJob;
    fn total_count(&self) -> i64 {
        self.total_count
    }
    fn into_items(self) -> Vec<WorkflowJob> {
        self.jobs
    }
}

/// A listing read to its last page.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    /// Every item of every page, in GitHub's order.
    pub items: Vec<T>,
    /// GitHub's `total_count` on the last page read.
    pub total_count: i64,
    /// Whether any page differed from the one cached (always true without a cache).
    pub changed: bool,
}

/// The pages of one listing last read, by URL.
#[derive(Debug, Default)]
pub struct PageCache {
    pages: HashMap<String, CachedPage>,
}

/// One page as last read.
#[derive(Debug, Clone)]
pub(crate) struct CachedPage {
    /// Its ETag, for `If-None-Match`.
    pub(crate) etag: String,
    /// Its body.
    pub(crate) body: Bytes,
    /// Its `rel="next"` link: a 304 need not repeat the `Link` header.
    pub(crate) next: Option<String>,
}

impl PageCache {
    /// The ETag to send for `url`, if the page was read before.
    pub(crate) fn etag(&self, url: &str) -> Option<&str> {
        self.pages.get(url).map(|page| page.etag.as_str())
    }

    /// The page cached for `url`.
    pub(crate) fn page(&self, url: &str) -> Option<CachedPage> {
        self.pages.get(url).cloned()
    }

    /// Remembers a page that came with an ETag.
    pub(crate) fn store(
        &mut self,
        url: &str,
        etag: Option<&str>,
        body: &Bytes,
        next: Option<&str>,
    ) {
        match etag {
            Some(etag) => {
                self.pages.insert(
                    url.to_owned(),
                    CachedPage {
                        etag: etag.to_owned(),
                        body: body.clone(),
                        next: next.map(str::to_owned),
                    },
                );
            }
            None => {
                self.pages.remove(url);
            }
        }
    }

    /// Forgets pages not read in the last pass (the listing got shorter).
    pub(crate) fn keep_only(&mut self, urls: &[String]) {
        self.pages.retain(|url, _| urls.contains(url));
    }
}

/// The `rel="next"` URL of an answer, if any.
///
/// # Errors
/// A `Link` header that cannot be parsed.
pub(crate) fn next_link(headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(value) = headers.get(http::header::LINK) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "a Link header that is not text".to_owned())?;
    let links = parse_link_header::parse_with_rel(value)
        .map_err(|e| format!("an unreadable Link header ({e:?})"))?;
    Ok(links.get("next").map(|link| link.raw_uri.clone()))
}

/// Whether `url` is on the same origin (scheme, host, port) as `base`.
pub(crate) fn same_origin(base: &str, url: &str) -> bool {
    fn origin(url: &str) -> Option<(String, String)> {
        let uri: http::Uri = url.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let host = uri.host()?.to_ascii_lowercase();
        Some((scheme, format!("{host}:{port}")))
    }
    matches!((origin(base), origin(url)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_read_from_githubs_link_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::LINK,
            "<https://api.github.com/repositories/1296269/actions/runs?status=queued&per_page=100&page=2>; rel=\"next\", \
             <https://api.github.com/repositories/1296269/actions/runs?status=queued&per_page=100&page=5>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).unwrap().as_deref(),
            Some(
                "https://api.github.com/repositories/1296269/actions/runs?status=queued&per_page=100&page=2"
            )
        );
        headers.insert(
            http::header::LINK,
            "<https://api.github.com/x?page=1>; rel=\"prev\", <https://api.github.com/x?page=1>; rel=\"first\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&headers).unwrap(), None);
        assert_eq!(next_link(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn next_links_are_followed_only_on_the_apis_own_origin() {
        let base = "https://ghes.example.com/api/v3";
        assert!(same_origin(
            base,
            "https://ghes.example.com/api/v3/repositories/1/actions/runs?page=2"
        ));
        assert!(same_origin(
            base,
            "https://GHES.example.com:443/api/v3/x?page=2"
        ));
        assert!(!same_origin(base, "https://evil.example.com/api/v3/x"));
        assert!(!same_origin(base, "http://ghes.example.com/api/v3/x"));
        assert!(!same_origin(base, "https://ghes.example.com:8443/x"));
        assert!(!same_origin(base, "not a url"));
    }

    #[test]
    fn the_cache_keeps_only_what_was_read() {
        let mut cache = PageCache::default();
        cache.store("a", Some("W/\"1\""), &Bytes::from_static(b"{}"), Some("b"));
        cache.store("b", Some("W/\"2\""), &Bytes::from_static(b"{}"), None);
        cache.store("c", None, &Bytes::from_static(b"{}"), None);
        assert_eq!(cache.etag("a"), Some("W/\"1\""));
        assert_eq!(cache.page("a").unwrap().next.as_deref(), Some("b"));
        assert_eq!(cache.etag("c"), None);
        cache.keep_only(&["b".to_owned()]);
        assert_eq!(cache.etag("a"), None);
        assert!(cache.page("b").is_some());
    }
}
