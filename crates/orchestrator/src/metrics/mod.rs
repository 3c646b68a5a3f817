//! What `GET /metrics` shows: the orchestrator's Prometheus metrics, in the
//! Prometheus text format (version 0.0.4), encoded by `prometheus-client`.
//!
//! Two kinds of figure, kept apart so that none can drift:
//! - **events**, recorded where they happen with one call on [`Metrics`]
//!   (a job started, a runner came online, a runner failed) or on [`errors`]
//!   (a Docker or GitHub call failed): histograms and counters that only go
//!   up, held in [`Metrics`]'s registry for the life of the process;
//! - **state** ([`state`]): runners by pool and state, queued jobs by pool,
//!   GitHub's budget per rate-limit bucket. These are read from the registry,
//!   the job book and the rate-limit snapshot at each scrape, never kept up
//!   to date by hand, so they cannot disagree with `/pools` or `/health`,
//!   and a pool that was removed leaves no stale series behind.
//!
//! Every name starts with `gha_`, carries its unit (`_seconds`) and, for a
//! counter, ends with `_total` (the library adds it). Labels take a small
//! fixed set of values (a pool's name, a state, a snake-case kind), never a
//! message, so the number of series stays bounded.

pub mod errors;
pub mod state;

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub use state::FleetState;

use api_types::RemovalReason;

/// Every metric's name begins with this (and `_`).
const PREFIX: &str = "gha";

/// Bucket bounds of the time from a job being queued to its start, in
/// seconds: a warm runner takes a job in a second or two, a cold one in
/// tens of seconds, a job behind a full pool in minutes.
const JOB_WAIT_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Bucket bounds of the time from a runner's create to GitHub showing it
/// online, in seconds: the container's start plus the runner's
/// registration, seconds normally, up to `RUNNER_REGISTRATION_TIMEOUT_SECONDS`.
const RUNNER_STARTUP_BUCKETS: [f64; 12] = [
    1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// The label of a per-pool series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    /// The pool's name (`default` without a pools file).
    pool: String,
}

/// The labels of a runner failure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    pool: String,
    reason: FailureReason,
}

/// Why a runner failed: the `reason` label of `gha_runner_failures_total`.
/// A failure is a runner that ends in the API's `failed` state.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum FailureReason {
    /// Its container exited with a non-zero (or unknown) code.
    ExitCode,
    /// It exited with code 7: its runner version is deprecated.
    DeprecatedVersion,
    /// It never came online within `RUNNER_REGISTRATION_TIMEOUT_SECONDS`.
    RegistrationTimeout,
    /// Its own Docker engine stopped while it ran (its job, if any, failed).
    DockerEngine,
}

impl FailureReason {
    /// Every reason, in the order the README lists them.
    pub const ALL: [FailureReason; 4] = [
        FailureReason::ExitCode,
        FailureReason::DeprecatedVersion,
        FailureReason::RegistrationTimeout,
        FailureReason::DockerEngine,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ExitCode => "exit_code",
            FailureReason::DeprecatedVersion => "deprecated_version",
            FailureReason::RegistrationTimeout => "registration_timeout",
            FailureReason::DockerEngine => "docker_engine",
        }
    }

    /// The failure a container's exit code means, if any: 0 is a runner
    /// that ran its job (or was told to stop), 7 the runner's own "my
    /// version is deprecated", anything else (or no code) a failure.
    pub fn of_exit(code: Option<i64>) -> Option<FailureReason> {
        match code {
            Some(0) => None,
            Some(7) => Some(FailureReason::DeprecatedVersion),
            _ => Some(FailureReason::ExitCode),
        }
    }

    /// The failure a removal by the reconcile pass means, if any: only a
    /// runner that never came online. An exited container is counted by its
    /// exit code ([`Self::of_exit`]); a registration gone (most often: the
    /// runner's job finished and GitHub dropped it before the container
    /// exited), a runner at its maximum lifetime or an orphan registration
    /// is housekeeping, not a failure.
    pub fn of_removal(reason: RemovalReason) -> Option<FailureReason> {
        match reason {
            RemovalReason::RegistrationTimeout => Some(FailureReason::RegistrationTimeout),
            _ => None,
        }
    }
}

impl EncodeLabelValue for FailureReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// A histogram family whose series are made with `buckets`.
type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// The orchestrator's event metrics, and the registry that encodes them.
/// Clones share the same series (the families are reference-counted).
#[derive(Debug)]
pub struct Metrics {
    /// The event families below, plus [`errors`]'s counters.
    registry: Registry,
    /// `gha_job_wait_seconds{pool}`.
    job_wait: HistogramFamily<PoolLabels>,
    /// `gha_runner_startup_seconds{pool}`.
    runner_startup: HistogramFamily<PoolLabels>,
    /// `gha_runner_failures_total{pool, reason}`.
    runner_failures: Family<FailureLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The families, registered, with no series yet.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let job_wait: HistogramFamily<PoolLabels> =
            Family::new_with_constructor(|| Histogram::new(JOB_WAIT_BUCKETS));
        let runner_startup: HistogramFamily<PoolLabels> =
            Family::new_with_constructor(|| Histogram::new(RUNNER_STARTUP_BUCKETS));
        let runner_failures = Family::<FailureLabels, Counter>::default();
        registry.register_with_unit(
            "job_wait",
            "Time from the orchestrator hearing of a queued job (webhook or poll) to hearing it started, by the pool it was routed to",
            Unit::Seconds,
            job_wait.clone(),
        );
        registry.register_with_unit(
            "runner_startup",
            "Time from a runner's create to GitHub first showing it online, by pool (runners this process created)",
            Unit::Seconds,
            runner_startup.clone(),
        );
        registry.register(
            "runner_failures",
            "Runners that ended failed, by pool and reason: exit_code (non-zero exit), deprecated_version (exit code 7), registration_timeout (never came online)",
            runner_failures.clone(),
        );
        errors::register(&mut registry);
        Self {
            registry,
            job_wait,
            runner_startup,
            runner_failures,
        }
    }

    /// A job routed to `pool` started after waiting `waited` since it was
    /// first heard of as queued.
    pub fn job_started(&self, pool: &str, waited: Duration) {
        self.job_wait
            .get_or_create(&pool_labels(pool))
            .observe(waited.as_secs_f64());
    }

    /// A runner of `pool` came online `since_create` after its create.
    pub fn runner_online(&self, pool: &str, since_create: Duration) {
        self.runner_startup
            .get_or_create(&pool_labels(pool))
            .observe(since_create.as_secs_f64());
    }

    /// A runner of `pool` failed.
    pub fn runner_failed(&self, pool: &str, reason: FailureReason) {
        self.runner_failures
            .get_or_create(&FailureLabels {
                pool: pool.to_owned(),
                reason,
            })
            .inc();
    }

    /// The whole exposition: `state`'s gauges, then the event metrics, in
    /// the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self, state: &FleetState) -> String {
        // Every pool shown gets its event series, at zero until something
        // happens: a rate over a series that does not exist yet is no rate.
        for pool in state.pools() {
            let labels = pool_labels(pool);
            // (`get_or_create` makes the series; its guard is not needed.)
            let _ = self.job_wait.get_or_create(&labels);
            let _ = self.runner_startup.get_or_create(&labels);
            for reason in FailureReason::ALL {
                let _ = self.runner_failures.get_or_create(&FailureLabels {
                    pool: pool.clone(),
                    reason,
                });
            }
        }
        let mut text = String::new();
        // Writing to a String cannot fail; the library's encoders only
        // return what the writer does.
        let _ = prometheus_client::encoding::prometheus_text::encode(
            &mut text,
            &state.registry(PREFIX),
        );
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

fn pool_labels(pool: &str) -> PoolLabels {
    PoolLabels {
        pool: pool.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A series: its name and its labels, sorted.
    type Series = (String, Vec<(String, String)>);

    /// An exposition parsed back, as Prometheus would read it: each plain
    /// sample's value (a histogram's `_count` and `_sum` included).
    #[derive(Debug)]
    pub(crate) struct Values(HashMap<Series, f64>);

    impl Values {
        pub(crate) fn of(text: &str) -> Self {
            let lines = text.lines().map(|l| Ok(l.to_owned()));
            let scrape = prometheus_parse::Scrape::parse(lines).expect("the text parses");
            let mut values = HashMap::new();
            for sample in scrape.samples {
                let labels = sample.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let value = match sample.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => continue,
                };
                values.insert(series(&sample.metric, labels), value);
            }
            Self(values)
        }

        /// The value of `name` with exactly the labels `pairs`, if shown.
        pub(crate) fn find(&self, name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
            self.0.get(&series(name, pairs.iter().copied())).copied()
        }

        /// The same, when it must be shown.
        pub(crate) fn get(&self, name: &str, pairs: &[(&str, &str)]) -> f64 {
            self.find(name, pairs)
                .unwrap_or_else(|| panic!("no {name} {pairs:?} in {self:?}"))
        }
    }

    fn series<'a>(name: &str, labels: impl Iterator<Item = (&'a str, &'a str)>) -> Series {
        let mut labels: Vec<(String, String)> =
            labels.map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        labels.sort();
        (name.to_owned(), labels)
    }

    #[test]
    fn events_are_counted_per_pool_under_prefixed_names_with_units() {
        let metrics = Metrics::new();
        metrics.job_started("small", Duration::from_millis(1500));
        metrics.job_started("small", Duration::from_secs(4));
        metrics.job_started("large", Duration::from_secs(90));
        metrics.runner_online("small", Duration::from_secs(3));
        metrics.runner_failed("large", FailureReason::RegistrationTimeout);
        metrics.runner_failed("large", FailureReason::RegistrationTimeout);
        let text = metrics.encode(&FleetState::default());
        let values = Values::of(&text);
        let get = |name: &str, pairs: &[(&str, &str)]| values.get(name, pairs);
        assert_eq!(get("gha_job_wait_seconds_count", &[("pool", "small")]), 2.0);
        assert_eq!(get("gha_job_wait_seconds_sum", &[("pool", "small")]), 5.5);
        assert_eq!(get("gha_job_wait_seconds_count", &[("pool", "large")]), 1.0);
        assert_eq!(
            get("gha_runner_startup_seconds_count", &[("pool", "small")]),
            1.0
        );
        assert_eq!(
            get(
                "gha_runner_failures_total",
                &[("pool", "large"), ("reason", "registration_timeout")]
            ),
            2.0
        );
        // A bucket's count includes every smaller observation.
        let buckets = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .unwrap()
            .samples
            .into_iter()
            .find(|s| s.metric == "gha_job_wait_seconds" && s.labels.get("pool") == Some("small"))
            .expect("the small pool's histogram");
        let prometheus_parse::Value::Histogram(buckets) = buckets.value else {
            panic!("not a histogram: {buckets:?}");
        };
        let at = |le: f64| buckets.iter().find(|b| b.less_than == le).unwrap().count;
        assert_eq!((at(1.0), at(2.0), at(5.0)), (0.0, 1.0, 2.0));
        assert!(text.contains("# TYPE gha_runner_failures_total counter"));
    }

    #[test]
    fn exit_codes_and_removals_map_to_failure_reasons() {
        assert_eq!(FailureReason::of_exit(Some(0)), None);
        assert_eq!(
            FailureReason::of_exit(Some(7)),
            Some(FailureReason::DeprecatedVersion)
        );
        for code in [Some(1), Some(137), None] {
            assert_eq!(FailureReason::of_exit(code), Some(FailureReason::ExitCode));
        }
        assert_eq!(
            FailureReason::of_removal(RemovalReason::RegistrationTimeout),
            Some(FailureReason::RegistrationTimeout)
        );
        for housekeeping in [
            RemovalReason::RegistrationGone,
            RemovalReason::MaxLifetime,
            RemovalReason::OrphanRegistration,
            RemovalReason::Exited,
            RemovalReason::IdleTimeout,
        ] {
            assert_eq!(FailureReason::of_removal(housekeeping), None);
        }
        let names: Vec<&str> = FailureReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "exit_code",
                "deprecated_version",
                "registration_timeout",
                "docker_engine"
            ]
        );
    }
}
