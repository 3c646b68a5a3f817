//! Which pool a queued job goes to.
//!
//! GitHub gives a job to a runner whose labels include every label the job
//! asks for (`runs-on`, case-insensitive). Of the pools that serve the
//! job's repository and whose labels fit, the job goes to the closest fit:
//! the pool with the fewest labels beyond the job's; on a tie, the first in
//! the file. For pools `small` = `[self-hosted, linux, x64]` and `large` =
//! `[self-hosted, linux, x64, large]`:
//! - `runs-on: [self-hosted, linux]` fits both; `small` has one label beyond
//!   the job's, `large` two: `small`.
//! - `runs-on: [self-hosted, large]` fits `large` only.
//! - `runs-on: [self-hosted, gpu]` fits neither: the job is left alone (it
//!   may be another system's).

use std::sync::Arc;

use super::{Pool, Pools};
use crate::scope::Scope;

/// GitHub's rule for a job's labels and a runner's: each label the job asks
/// for is one of the runner's. A job with no labels at all is not taken.
pub fn labels_fit(asked: &[String], runner: &[String]) -> bool {
    !asked.is_empty()
        && asked
            .iter()
            .all(|label| runner.iter().any(|ours| ours.eq_ignore_ascii_case(label)))
}

/// Why no pool takes a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrouted {
    /// No pool serves the repository.
    Repository,
    /// Pools serve the repository, but none has every label the job asks for.
    Labels,
}

/// The pool a job of `repository` asking for `labels` goes to, with the
/// scope its runner registers in.
///
/// # Errors
/// [`Unrouted`] says whether the repository or the labels found no pool.
pub fn route(
    pools: &Pools,
    repository: &str,
    labels: &[String],
) -> Result<(Arc<Pool>, Scope), Unrouted> {
    let serving: Vec<(&Arc<Pool>, Scope)> = pools
        .iter()
        .filter_map(|pool| pool.scope_for_job(repository).map(|scope| (pool, scope)))
        .collect();
    if serving.is_empty() {
        return Err(Unrouted::Repository);
    }
    serving
        .into_iter()
        .filter(|(pool, _)| labels_fit(labels, &pool.labels))
        // `min_by_key` keeps the first of equals: the file's order breaks ties.
        .min_by_key(|(pool, _)| pool.labels.len())
        .map(|(pool, scope)| (pool.clone(), scope))
        .ok_or(Unrouted::Labels)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Config;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn pools() -> Pools {
        let config =
            Config::try_parse_from(["o", "--github-token", "t", "--github-org", "acme"]).unwrap();
        super::super::file::parse(
            r#"
[[pool]]
name = "large"
labels = ["self-hosted", "linux", "x64", "large"]
[[pool]]
name = "small"
labels = ["self-hosted", "linux", "x64"]
[[pool]]
name = "also-small"
labels = ["self-hosted", "linux", "arm64"]
[[pool]]
name = "web"
labels = ["self-hosted", "linux", "x64", "node"]
repository = "friends/web"
"#,
            &config,
        )
        .unwrap()
    }

    fn routed(repository: &str, asked: &[&str]) -> Result<String, Unrouted> {
        route(&pools(), repository, &labels(asked)).map(|(pool, _)| pool.name.clone())
    }

    #[test]
    fn labels_fit_as_github_matches_them() {
        let ours = labels(&["self-hosted", "linux", "x64", "docker"]);
        // No `self-hosted` needed; case-insensitive.
        for asked in [
            &["self-hosted"][..],
            &["self-hosted", "linux", "x64", "docker"],
            &["linux", "x64"],
            &["docker"],
            &["Self-Hosted", "LINUX"],
        ] {
            assert!(labels_fit(&labels(asked), &ours), "{asked:?}");
        }
        for asked in [
            &["ubuntu-latest"][..],
            &["self-hosted", "gpu"],
            &["linux", "arm64"],
            &[],
        ] {
            assert!(!labels_fit(&labels(asked), &ours), "{asked:?}");
        }
    }

    #[test]
    fn the_closest_fit_wins_then_the_file_order() {
        assert_eq!(
            routed("acme/app", &["self-hosted", "linux"]).unwrap(),
            "small"
        );
        assert_eq!(
            routed("acme/app", &["self-hosted", "LARGE"]).unwrap(),
            "large"
        );
        assert_eq!(routed("acme/app", &["arm64"]).unwrap(), "also-small");
        // Two pools of three labels fit `self-hosted`: the first in the file.
        assert_eq!(routed("acme/app", &["self-hosted"]).unwrap(), "small");
    }

    #[test]
    fn a_pool_serves_only_its_own_repositories() {
        assert_eq!(routed("friends/web", &["node"]).unwrap(), "web");
        assert_eq!(routed("acme/app", &["node"]), Err(Unrouted::Labels));
        assert_eq!(
            routed("strangers/x", &["self-hosted"]),
            Err(Unrouted::Repository)
        );
    }

    #[test]
    fn a_job_no_pool_fits_is_left_alone() {
        assert_eq!(
            routed("acme/app", &["self-hosted", "gpu"]),
            Err(Unrouted::Labels)
        );
        assert_eq!(
            routed("acme/app", &["ubuntu-latest"]),
            Err(Unrouted::Labels)
        );
        assert_eq!(routed("acme/app", &[]), Err(Unrouted::Labels));
    }
}
