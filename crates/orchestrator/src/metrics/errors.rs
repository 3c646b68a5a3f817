//! `gha_docker_errors_total{kind}` and `gha_github_errors_total{kind}`:
//! calls to the Docker engine and to GitHub that failed, by kind (the error
//! enum's variant in snake case).
//!
//! Counted at the one place each client turns an answer into an error (the
//! Docker engine's `timed`, the GitHub client's `request`), which sit below
//! the [`Fleet`](crate::runners::Fleet) and are built before it; so these
//! two counters are the process's own (one engine and one GitHub client per
//! process), rather than a handle threaded through both clients'
//! constructors. Every [`Metrics`](super::Metrics) registers them.
//!
//! Answers about the request rather than the service's health are not
//! counted, as the GitHub client's `/health` error leaves them out too: a
//! 404 (a container or registration already gone), a 409 (a name taken, a
//! removal already under way), GitHub's 422, Docker's 304 (already
//! stopped). Callers expect them in the normal life of every runner, and a
//! counter that rises with every runner would hide the errors that matter.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::engine::DockerError;
use crate::github::GitHubError;

/// The `kind` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// The two families, shared by every registry that registers them.
#[derive(Debug, Default)]
struct ErrorCounters {
    docker: Family<KindLabels, Counter>,
    github: Family<KindLabels, Counter>,
}

static COUNTERS: LazyLock<ErrorCounters> = LazyLock::new(ErrorCounters::default);

/// Counts a failed Docker call, unless it is an answer about the request.
pub fn docker_error(error: &DockerError) {
    if let Some(kind) = docker_kind(error) {
        COUNTERS.docker.get_or_create(&KindLabels { kind }).inc();
    }
}

/// Counts a failed GitHub call, unless it is an answer about the request.
pub fn github_error(error: &GitHubError) {
    if let Some(kind) = github_kind(error) {
        COUNTERS.github.get_or_create(&KindLabels { kind }).inc();
    }
}

/// Registers both counters in `registry`, every kind at zero (so a rate
/// over them is defined from the first scrape on).
pub(super) fn register(registry: &mut Registry) {
    for kind in DOCKER_KINDS {
        let _ = COUNTERS.docker.get_or_create(&KindLabels { kind });
    }
    for kind in GITHUB_KINDS {
        let _ = COUNTERS.github.get_or_create(&KindLabels { kind });
    }
    registry.register(
        "docker_errors",
        "Docker engine calls that failed, by kind: unavailable (no answer, or a timeout), permission_denied (the socket), api (any other refusal); 404, 409 and 304 answers are not counted",
        COUNTERS.docker.clone(),
    );
    registry.register(
        "github_errors",
        "GitHub calls that failed (after retries), by kind: unauthorized, app_rejected (the GitHub App's JWT or installation), forbidden, rate_limited (refused or held back for a rate limit), status (5xx or unexpected), unreachable, decode; 404, 409 and 422 answers (and an App not installed on a scope) are not counted",
        COUNTERS.github.clone(),
    );
}

/// The kinds [`docker_kind`] gives.
const DOCKER_KINDS: [&str; 4] = ["unavailable", "permission_denied", "api", "runner_engine"];

/// The kinds [`github_kind`] gives.
const GITHUB_KINDS: [&str; 7] = [
    "unauthorized",
    "app_rejected",
    "forbidden",
    "rate_limited",
    "status",
    "unreachable",
    "decode",
];

/// The `kind` of a Docker error, or `None` for an answer about the request.
fn docker_kind(error: &DockerError) -> Option<&'static str> {
    match error {
        DockerError::Unavailable { .. } => Some("unavailable"),
        DockerError::PermissionDenied { .. } => Some("permission_denied"),
        DockerError::Api { status: 304, .. }
        | DockerError::NotFound(_)
        | DockerError::Conflict(_) => None,
        DockerError::Api { .. } => Some("api"),
        DockerError::EngineFailed { .. } => Some("runner_engine"),
    }
}

/// The `kind` of a GitHub error, or `None` for an answer about the request.
fn github_kind(error: &GitHubError) -> Option<&'static str> {
    match error {
        GitHubError::Unauthorized => Some("unauthorized"),
        GitHubError::AppRejected(_) => Some("app_rejected"),
        GitHubError::Forbidden(_) => Some("forbidden"),
        GitHubError::RateLimited { .. } => Some("rate_limited"),
        GitHubError::Status { .. } => Some("status"),
        GitHubError::Unreachable { .. } => Some("unreachable"),
        GitHubError::Decode(_) => Some("decode"),
        GitHubError::NotFound(_)
        | GitHubError::AppNotInstalled(_)
        | GitHubError::Conflict(_)
        | GitHubError::Unprocessable(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_docker_error_has_a_listed_kind_or_none() {
        let api = |status| DockerError::Api {
            operation: "create container",
            status,
            message: "m".into(),
        };
        let cases = [
            (
                DockerError::Unavailable {
                    operation: "version",
                    message: "refused".into(),
                },
                Some("unavailable"),
            ),
            (
                DockerError::PermissionDenied {
                    operation: "version",
                    socket: "/var/run/docker.sock".into(),
                },
                Some("permission_denied"),
            ),
            (api(500), Some("api")),
            (api(304), None),
            (DockerError::NotFound("container x".into()), None),
            (DockerError::Conflict("name taken".into()), None),
        ];
        for (error, kind) in cases {
            assert_eq!(docker_kind(&error), kind, "{error}");
            assert!(kind.is_none_or(|k| DOCKER_KINDS.contains(&k)));
        }
    }

    #[test]
    fn every_github_error_has_a_listed_kind_or_none() {
        let cases = [
            (GitHubError::Unauthorized, Some("unauthorized")),
            (
                GitHubError::AppRejected("bad JWT".into()),
                Some("app_rejected"),
            ),
            (GitHubError::AppNotInstalled("octo".into()), None),
            (GitHubError::Forbidden("no admin".into()), Some("forbidden")),
            (
                GitHubError::RateLimited {
                    resource: "core".into(),
                    wait: Duration::from_secs(1),
                },
                Some("rate_limited"),
            ),
            (
                GitHubError::Status {
                    status: 502,
                    message: "m".into(),
                    attempts: 3,
                },
                Some("status"),
            ),
            (
                GitHubError::Unreachable {
                    message: "m".into(),
                    attempts: 3,
                },
                Some("unreachable"),
            ),
            (GitHubError::Decode("m".into()), Some("decode")),
            (GitHubError::NotFound("runner 1".into()), None),
            (GitHubError::Conflict("name".into()), None),
            (GitHubError::Unprocessable("busy".into()), None),
        ];
        for (error, kind) in cases {
            assert_eq!(github_kind(&error), kind, "{error}");
            assert!(kind.is_none_or(|k| GITHUB_KINDS.contains(&k)));
        }
    }

    #[test]
    fn counted_errors_show_in_every_registry_by_kind() {
        let metrics = crate::metrics::Metrics::new();
        let count = |name: &str, kind: &str| {
            let text = metrics.encode(&crate::metrics::FleetState::default());
            crate::metrics::tests::Values::of(&text).get(name, &[("kind", kind)])
        };
        // Other tests count too (the counters are the process's): compare.
        let before = count("gha_github_errors_total", "unauthorized");
        github_error(&GitHubError::Unauthorized);
        github_error(&GitHubError::NotFound("x".into()));
        assert_eq!(
            count("gha_github_errors_total", "unauthorized"),
            before + 1.0
        );
        let before = count("gha_docker_errors_total", "unavailable");
        docker_error(&DockerError::Unavailable {
            operation: "version",
            message: "m".into(),
        });
        assert_eq!(
            count("gha_docker_errors_total", "unavailable"),
            before + 1.0
        );
    }
}
