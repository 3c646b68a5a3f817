//! The scaling decision, apart from Docker and GitHub: given the queued
//! jobs, the live runners and the settings, which runners to create and
//! which idle ones to remove. [`super::Autoscaler::tick`] gathers the
//! inputs and carries the plan out; the decision itself is a plain
//! function, unit-tested here with paused time.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::JobEntry;
use crate::runners::RunnerView;
use crate::scope::Scope;

/// What the settings say about scaling.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// The scope whose warm pool `min_idle` fills.
    pub default_scope: Option<&'a Scope>,
    /// `MIN_IDLE_RUNNERS`.
    pub min_idle: usize,
    /// `RUNNER_IDLE_TIMEOUT_SECONDS`.
    pub idle_timeout: Duration,
    /// Free slots under `MAX_RUNNERS` right now.
    pub free_slots: usize,
    /// Creates asked for and not finished yet, by scope, with the job each
    /// is for: supply as much as the runners that can take a job.
    pub pending: &'a BTreeMap<Scope, Vec<Option<i64>>>,
}

/// What to do this tick.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScalingPlan {
    /// Runners to create: their scope, and the job each is for (`None`
    /// for the warm pool).
    pub creates: Vec<(Scope, Option<i64>)>,
    /// Idle autoscaled runners nobody needs, by name, longest idle first.
    pub removals: Vec<String>,
    /// Runners wanted but waiting for a free slot (`MAX_RUNNERS`).
    pub waiting: usize,
}

/// Decides, per scope, how many runners to create (queued jobs plus the
/// warm pool, less the runners that can still take a job) and which idle
/// runners past the idle timeout are surplus.
pub fn plan(
    queued: &[JobEntry],
    live: &[RunnerView],
    settings: &Settings<'_>,
    now: Instant,
) -> ScalingPlan {
    let mut demand: BTreeMap<&Scope, Vec<&JobEntry>> = BTreeMap::new();
    for entry in queued {
        demand.entry(&entry.report.scope).or_default().push(entry);
    }
    if settings.min_idle > 0
        && let Some(scope) = settings.default_scope
    {
        demand.entry(scope).or_default();
    }
    // Scopes with autoscaled runners but no demand: their idle runners may be surplus.
    for view in live.iter().filter(|v| v.record.autoscaled) {
        demand.entry(&view.record.scope).or_default();
    }
    let mut plan = ScalingPlan::default();
    let mut free = settings.free_slots;
    for (scope, jobs) in demand {
        let pool = if Some(scope) == settings.default_scope {
            settings.min_idle
        } else {
            0
        };
        let available: Vec<&RunnerView> = live
            .iter()
            .filter(|v| &v.record.scope == scope && v.available())
            .collect();
        let pending = settings.pending.get(scope).map_or(&[][..], Vec::as_slice);
        let wanted = jobs.len() + pool;
        let supply = available.len() + pending.len();
        let deficit = wanted.saturating_sub(supply);
        let surplus = supply.saturating_sub(wanted);
        if deficit > 0 {
            let count = deficit.min(free);
            free -= count;
            plan.waiting += deficit - count;
            // A job a starting runner, or a create under way, was made for
            // is covered already.
            let uncovered = jobs
                .iter()
                .filter(|job| {
                    let id = Some(job.report.id);
                    !available.iter().any(|r| r.record.for_job == id) && !pending.contains(&id)
                })
                .map(|job| Some(job.report.id))
                .chain(std::iter::repeat(None));
            plan.creates
                .extend(uncovered.take(count).map(|job| (scope.clone(), job)));
        } else if surplus > 0 {
            let mut idle: Vec<&RunnerView> = available
                .into_iter()
                .filter(|v| {
                    v.record.autoscaled
                        && v.idle_since.is_some_and(|t| {
                            now.saturating_duration_since(t) >= settings.idle_timeout
                        })
                })
                .collect();
            idle.sort_by_key(|v| v.idle_since);
            plan.removals.extend(
                idle.into_iter()
                    .take(surplus)
                    .map(|v| v.record.name.clone()),
            );
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::autoscaler::{JobReport, JobStatus};
    use crate::engine::{RunnerContainer, RunnerLabels};

    fn scope() -> Scope {
        Scope::repository("acme/app").unwrap()
    }

    fn job(id: i64) -> JobEntry {
        let now = std::time::Instant::now();
        JobEntry {
            report: JobReport {
                id,
                run_id: Some(1),
                name: None,
                repository: "acme/app".into(),
                scope: scope(),
                status: JobStatus::Queued,
                conclusion: None,
                runner_name: None,
            },
            first_seen: now,
            updated: now,
        }
    }

    /// A live runner of ours: starting, or idle since `idle_since`.
    fn runner(name: &str, for_job: Option<i64>, idle_since: Option<Instant>) -> RunnerView {
        let container = RunnerContainer {
            id: format!("id-{name}"),
            record: RunnerLabels {
                name: name.to_owned(),
                scope: scope(),
                labels: vec!["self-hosted".into()],
                created_at: Utc::now(),
                github_runner_id: Some(1),
                for_job,
                autoscaled: true,
            },
            image: "runner:test".into(),
            running: true,
            created_only: false,
            exit_code: None,
        };
        let mut view = RunnerView::from_container(&container);
        if let Some(since) = idle_since {
            view.set_github_status(true, false);
            view.idle_since = Some(since);
        }
        view
    }

    /// No create under way.
    static NONE_PENDING: BTreeMap<Scope, Vec<Option<i64>>> = BTreeMap::new();

    fn settings(free_slots: usize) -> Settings<'static> {
        Settings {
            default_scope: None,
            min_idle: 0,
            idle_timeout: Duration::from_secs(300),
            free_slots,
            pending: &NONE_PENDING,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn creates_under_way_count_as_supply_and_cover_their_jobs() {
        let queued = [job(1), job(2), job(3)];
        // A create for job 2 and one for the warm pool are under way: job 2
        // is covered, and one more runner (not two) is needed for 1 and 3.
        let pending = BTreeMap::from([(scope(), vec![Some(2), None])]);
        let under_way = Settings {
            pending: &pending,
            ..settings(10)
        };
        let planned = plan(&queued, &[], &under_way, Instant::now());
        assert_eq!(planned.creates, [(scope(), Some(1))]);
        // Covered in full: nothing more is asked for.
        let pending = BTreeMap::from([(scope(), vec![Some(1), Some(2), Some(3)])]);
        let covered = Settings {
            pending: &pending,
            ..settings(10)
        };
        assert!(
            plan(&queued, &[], &covered, Instant::now())
                .creates
                .is_empty()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn each_uncovered_job_gets_one_runner_up_to_the_free_slots() {
        let queued = [job(1), job(2), job(3)];
        // Runner "a" is starting for job 1: only jobs 2 and 3 need one.
        let live = [runner("a", Some(1), None)];
        let planned = plan(&queued, &live, &settings(10), Instant::now());
        assert_eq!(planned.creates, [(scope(), Some(2)), (scope(), Some(3))]);
        assert_eq!(planned.waiting, 0);
        let planned = plan(&queued, &live, &settings(1), Instant::now());
        assert_eq!(planned.creates, [(scope(), Some(2))]);
        assert_eq!(planned.waiting, 1, "the third job waits for a slot");
    }

    #[tokio::test(start_paused = true)]
    async fn the_warm_pool_is_filled_in_the_default_scope_only() {
        let default = scope();
        let warm = Settings {
            default_scope: Some(&default),
            min_idle: 2,
            ..settings(10)
        };
        let planned = plan(&[], &[], &warm, Instant::now());
        assert_eq!(planned.creates, [(scope(), None), (scope(), None)]);
        let one_idle = [runner("a", None, Some(Instant::now()))];
        let planned = plan(&[], &one_idle, &warm, Instant::now());
        assert_eq!(planned.creates, [(scope(), None)]);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_runners_nobody_needs_go_after_the_timeout_longest_idle_first() {
        let start = Instant::now();
        tokio::time::advance(Duration::from_secs(100)).await;
        let live = [
            runner("older", None, Some(start)),
            runner("newer", None, Some(Instant::now())),
        ];
        // One job queued: one of the two idle runners is surplus, but not yet.
        let queued = [job(9)];
        assert!(
            plan(&queued, &live, &settings(10), Instant::now())
                .removals
                .is_empty()
        );
        tokio::time::advance(Duration::from_secs(200)).await;
        let planned = plan(&queued, &live, &settings(10), Instant::now());
        assert_eq!(planned.removals, ["older"], "idle 300 s: removed");
        assert!(planned.creates.is_empty());
        tokio::time::advance(Duration::from_secs(100)).await;
        let planned = plan(&queued, &live, &settings(10), Instant::now());
        assert_eq!(planned.removals, ["older"], "one runner stays for the job");
        let planned = plan(&[], &live, &settings(10), Instant::now());
        assert_eq!(planned.removals, ["older", "newer"]);
    }

    #[tokio::test(start_paused = true)]
    async fn slots_are_shared_across_scopes_not_counted_twice() {
        let other = Scope::repository("acme/other").unwrap();
        let mut elsewhere = job(7);
        elsewhere.report.scope = other.clone();
        elsewhere.report.repository = "acme/other".into();
        let queued = [job(1), elsewhere];
        let planned = plan(&queued, &[], &settings(1), Instant::now());
        assert_eq!(planned.creates.len(), 1, "{planned:?}");
        assert_eq!(planned.waiting, 1);
    }
}
