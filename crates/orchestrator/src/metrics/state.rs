//! [`FleetState`]: the gauges that are a function of state, read afresh at
//! each scrape: runners by pool and state (`gha_runners`), queued jobs by
//! pool (`gha_queued_jobs`), and GitHub's budget per rate-limit bucket
//! (`gha_github_rate_limit_remaining`, `gha_github_rate_limit_limit`).
//!
//! Read from the same sources as `/pools` and `/health` (the registry's
//! live runners, the job book routed with the pools in force, the GitHub
//! client's rate-limit snapshot), and encoded from a registry made for the
//! one scrape, so a figure can never lag behind or outlive what it counts.

use std::collections::BTreeMap;

use api_types::RunnerState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::autoscaler::{JobBook, JobEntry, queued_by_pool};
use crate::github::rate_limit::RateLimitSnapshot;
use crate::pools::Pools;
use crate::runners::{Fleet, RunnerView};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunnerLabels {
    pool: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    /// GitHub's name of the budget (`core`, `actions_runner_registration`, …).
    resource: String,
}

/// One bucket's budget, as GitHub last reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Budget {
    limit: Option<i64>,
    remaining: Option<i64>,
}

/// What the state gauges show at one moment.
#[derive(Debug, Clone, Default)]
pub struct FleetState {
    /// The pools in force, then those only live runners still name (a
    /// removed pool's busy runners): each gets its series, zeros included.
    pools: Vec<String>,
    /// Live runners by (pool, state).
    runners: BTreeMap<(String, RunnerState), i64>,
    /// Queued jobs by the pool they are routed to.
    queued: BTreeMap<String, i64>,
    /// GitHub's budgets by resource name.
    budgets: BTreeMap<String, Budget>,
}

impl FleetState {
    /// Reads the fleet and the job book now.
    pub fn read(fleet: &Fleet, jobs: &JobBook) -> Self {
        Self::of(
            &fleet.pools.current(),
            &fleet.registry.live(),
            &jobs.queued(),
            &fleet.github.rate_limit(),
        )
    }

    /// The state of these pools, live runners, queued jobs and budgets.
    pub fn of(
        pools: &Pools,
        live: &[RunnerView],
        queued: &[JobEntry],
        limits: &RateLimitSnapshot,
    ) -> Self {
        let mut names: Vec<String> = pools.iter().map(|p| p.name.clone()).collect();
        let mut runners = BTreeMap::new();
        for view in live {
            if !names.contains(&view.record.pool) {
                names.push(view.record.pool.clone());
            }
            *runners
                .entry((view.record.pool.clone(), view.state()))
                .or_default() += 1;
        }
        // A job no pool takes is not in the book; one whose pool was
        // removed since is no pool's demand any more.
        let jobs = queued_by_pool(pools, queued)
            .into_iter()
            .map(|(pool, count)| (pool, count as i64))
            .collect();
        let budgets = limits
            .buckets
            .iter()
            .map(|(name, bucket)| {
                (
                    name.clone(),
                    Budget {
                        limit: bucket.limit,
                        remaining: bucket.remaining,
                    },
                )
            })
            .collect();
        Self {
            pools: names,
            runners,
            queued: jobs,
            budgets,
        }
    }

    /// The pools shown, in order.
    pub fn pools(&self) -> &[String] {
        &self.pools
    }

    /// The gauges, in a registry of their own (names prefixed `prefix_`).
    pub(super) fn registry(&self, prefix: &str) -> Registry {
        let mut registry = Registry::with_prefix(prefix);
        let runners = Family::<RunnerLabels, Gauge>::default();
        let queued = Family::<PoolLabels, Gauge>::default();
        for pool in &self.pools {
            for state in RunnerState::ALL {
                let count = self
                    .runners
                    .get(&(pool.clone(), state))
                    .copied()
                    .unwrap_or(0);
                runners
                    .get_or_create(&RunnerLabels {
                        pool: pool.clone(),
                        state: state.as_str(),
                    })
                    .set(count);
            }
            queued
                .get_or_create(&PoolLabels { pool: pool.clone() })
                .set(self.queued.get(pool).copied().unwrap_or(0));
        }
        let remaining = Family::<BucketLabels, Gauge>::default();
        let limit = Family::<BucketLabels, Gauge>::default();
        for (resource, budget) in &self.budgets {
            let labels = BucketLabels {
                resource: resource.clone(),
            };
            // A budget GitHub has not reported has no series: unknown is not 0.
            if let Some(value) = budget.remaining {
                remaining.get_or_create(&labels).set(value);
            }
            if let Some(value) = budget.limit {
                limit.get_or_create(&labels).set(value);
            }
        }
        registry.register(
            "runners",
            "Live runners (their containers exist) by pool and state: starting, idle, busy, removing, and finished or failed until their container is removed",
            runners,
        );
        registry.register(
            "queued_jobs",
            "Queued jobs waiting for a runner, by the pool they are routed to",
            queued,
        );
        registry.register(
            "github_rate_limit_remaining",
            "Requests left in GitHub's current rate-limit window, per bucket (resource), as GitHub last reported",
            remaining,
        );
        registry.register(
            "github_rate_limit_limit",
            "Requests allowed per GitHub rate-limit window, per bucket (resource), as GitHub last reported",
            limit,
        );
        registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscaler::{JobReport, JobStatus};
    use crate::github::rate_limit::BucketSnapshot;
    use crate::metrics::Metrics;
    use crate::metrics::tests::Values;
    use crate::pools::Pool;

    fn pool(name: &str, labels: &[&str]) -> Pool {
        use clap::Parser;
        let config = crate::config::Config::try_parse_from([
            "gha-orchestrator",
            "--github-repository",
            crate::testing::REPO,
        ])
        .expect("a valid configuration");
        let mut pool = Pool::from_config(&config);
        pool.name = name.to_owned();
        pool.labels = labels.iter().map(|l| (*l).to_owned()).collect();
        pool
    }

    fn job(id: i64, labels: &[&str]) -> JobEntry {
        JobEntry {
            report: JobReport {
                id,
                run_id: None,
                name: None,
                repository: crate::testing::REPO.to_owned(),
                labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                status: JobStatus::Queued,
                conclusion: None,
                runner_name: None,
            },
            first_seen: std::time::Instant::now(),
            updated: std::time::Instant::now(),
        }
    }

    /// A live runner of `pool`, starting.
    fn view(name: &str, pool: &str) -> RunnerView {
        let container = crate::testing::container(name, 1, chrono::Utc::now(), None);
        let mut view = RunnerView::from_container(&container);
        view.record.pool = pool.to_owned();
        view
    }

    /// What a scrape shows of `state`.
    fn scrape(pools: &Pools, live: &[RunnerView], queued: &[JobEntry]) -> Values {
        let mut limits = RateLimitSnapshot::default();
        limits.buckets.insert(
            "core".into(),
            BucketSnapshot {
                limit: Some(5000),
                remaining: Some(4990),
                ..BucketSnapshot::default()
            },
        );
        limits
            .buckets
            .insert("search".into(), BucketSnapshot::default());
        let state = FleetState::of(pools, live, queued, &limits);
        Values::of(&Metrics::new().encode(&state))
    }

    #[test]
    fn runners_jobs_and_budgets_are_counted_per_pool_and_bucket() {
        let pools = Pools::new(vec![
            pool("small", &["self-hosted", "linux"]),
            pool("large", &["self-hosted", "linux", "large"]),
        ]);
        let mut busy = view("gha-runner-a", "small");
        busy.set_github_status(true, true);
        let live = [
            busy,
            view("gha-runner-b", "small"),
            view("gha-runner-c", "removed"),
        ];
        let queued = [
            job(1, &["self-hosted"]),
            job(2, &["large"]),
            job(3, &["linux", "large"]),
        ];
        let state = FleetState::of(&pools, &live, &queued, &RateLimitSnapshot::default());
        assert_eq!(state.pools(), ["small", "large", "removed"]);
        let values = scrape(&pools, &live, &queued);
        let runners = |pool: &str, state: &str| {
            values.get("gha_runners", &[("pool", pool), ("state", state)])
        };
        assert_eq!(runners("small", "busy"), 1.0);
        assert_eq!(runners("small", "starting"), 1.0);
        assert_eq!(runners("small", "idle"), 0.0);
        assert_eq!(runners("large", "busy"), 0.0);
        assert_eq!(runners("removed", "starting"), 1.0);
        let queued = |pool: &str| values.get("gha_queued_jobs", &[("pool", pool)]);
        assert_eq!(
            (queued("small"), queued("large"), queued("removed")),
            (1.0, 2.0, 0.0)
        );
        let core = [("resource", "core")];
        assert_eq!(values.get("gha_github_rate_limit_remaining", &core), 4990.0);
        assert_eq!(values.get("gha_github_rate_limit_limit", &core), 5000.0);
        assert_eq!(
            values.find("gha_github_rate_limit_remaining", &[("resource", "search")]),
            None,
            "an unreported budget is unknown, not 0"
        );
        // Every pool shown has its event series from the first scrape on.
        assert_eq!(
            values.get("gha_job_wait_seconds_count", &[("pool", "large")]),
            0.0
        );
        let failures = [("pool", "removed"), ("reason", "exit_code")];
        assert_eq!(values.get("gha_runner_failures_total", &failures), 0.0);
    }

    #[test]
    fn a_pool_with_nothing_has_zeros_and_a_removed_one_goes() {
        let values = scrape(
            &Pools::new(vec![pool("default", &["self-hosted"])]),
            &[],
            &[],
        );
        for state in RunnerState::ALL {
            let labels = [("pool", "default"), ("state", state.as_str())];
            assert_eq!(values.get("gha_runners", &labels), 0.0);
        }
        let values = scrape(&Pools::new(vec![pool("other", &["self-hosted"])]), &[], &[]);
        let labels = [("pool", "default"), ("state", "idle")];
        assert_eq!(
            values.find("gha_runners", &labels),
            None,
            "a pool no longer in force and with no runner left has no state series"
        );
        assert_eq!(values.find("gha_queued_jobs", &[("pool", "default")]), None);
    }
}
