//! The scaling decision, apart from Docker and GitHub: given the queued
//! jobs (each routed to its pool), the live runners, the pools and the
//! settings, which runners to create and which idle ones to remove.
//! [`super::Autoscaler::tick`] gathers the inputs and carries the plan out;
//! the decision itself is a plain function, unit-tested here with paused
//! time.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::JobEntry;
use super::pending::PoolScope;
use crate::pools::{Pool, Pools};
use crate::runners::RunnerView;
use crate::scope::Scope;

/// A queued job and where it goes: its pool and the scope its runner
/// registers in.
#[derive(Debug, Clone)]
pub struct Routed<'a> {
    /// The pool whose runner it waits for.
    pub pool: &'a Pool,
    /// Where that runner registers.
    pub scope: Scope,
    /// The job.
    pub entry: &'a JobEntry,
}

/// What the scaler knows besides jobs and runners.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// The pools in force: their warm pools, caps and idle timeouts.
    pub pools: &'a Pools,
    /// Free slots under `MAX_RUNNERS` (all pools) right now.
    pub free_slots: usize,
    /// Creates asked for and not finished yet, by pool and scope, with the
    /// job each is for: supply as much as the runners that can take a job.
    pub pending: &'a BTreeMap<PoolScope, Vec<Option<i64>>>,
}

/// One runner to create: its pool, its scope, and the job it is for
/// (`None` for a warm pool).
pub type PlannedCreate = (String, Scope, Option<i64>);

/// What to do this tick.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScalingPlan {
    /// Runners to create.
    pub creates: Vec<PlannedCreate>,
    /// Idle runners nobody needs, by name: autoscaled ones past their
    /// pool's idle timeout, longest idle first, then those of pools no
    /// longer in force.
    pub removals: Vec<String>,
    /// Runners wanted but waiting for a free slot (`MAX_RUNNERS`, or their
    /// pool's `max`).
    pub waiting: usize,
}

/// Decides, per pool and scope, how many runners to create (queued jobs
/// plus the warm pool, less the runners that can still take a job) and
/// which idle runners past their pool's idle timeout are surplus. A pool
/// at its `max` waits; it never takes another pool's slots.
pub fn plan(
    queued: &[Routed<'_>],
    live: &[RunnerView],
    settings: &Settings<'_>,
    now: Instant,
) -> ScalingPlan {
    let pools: Vec<&Pool> = settings.pools.iter().map(|p| &**p).collect();
    let index_of = |name: &str| pools.iter().position(|p| p.name == name);
    // Keyed by the pool's place in the file, so that pools are served in
    // the file's order when slots are short.
    let mut demand: BTreeMap<(usize, &Scope), Vec<&JobEntry>> = BTreeMap::new();
    for job in queued {
        if let Some(index) = index_of(&job.pool.name) {
            demand
                .entry((index, &job.scope))
                .or_default()
                .push(job.entry);
        }
    }
    for (index, pool) in pools.iter().enumerate() {
        if pool.min_idle > 0
            && let Some(scope) = &pool.scope
        {
            demand.entry((index, scope)).or_default();
        }
    }
    // Pools with autoscaled runners but no demand: their idle runners may be surplus.
    for view in live.iter().filter(|v| v.record.autoscaled) {
        if let Some(index) = index_of(&view.record.pool) {
            demand.entry((index, &view.record.scope)).or_default();
        }
    }
    // Each pool's room under its own `max`: its live runners, whatever
    // their state, and its creates under way take it.
    let mut pool_free: Vec<usize> = pools
        .iter()
        .map(|pool| {
            let alive = live.iter().filter(|v| v.record.pool == pool.name).count();
            let under_way: usize = settings
                .pending
                .iter()
                .filter(|((name, _), _)| *name == pool.name)
                .map(|(_, jobs)| jobs.len())
                .sum();
            pool.max.saturating_sub(alive + under_way)
        })
        .collect();

    let mut plan = ScalingPlan::default();
    let mut free = settings.free_slots;
    for ((index, scope), jobs) in demand {
        let pool = pools[index];
        let warm = if Some(scope) == pool.scope.as_ref() {
            pool.min_idle
        } else {
            0
        };
        let available: Vec<&RunnerView> = live
            .iter()
            .filter(|v| v.record.pool == pool.name && &v.record.scope == scope && v.available())
            .collect();
        let pending = settings
            .pending
            .get(&(pool.name.clone(), scope.clone()))
            .map_or(&[][..], Vec::as_slice);
        let wanted = jobs.len() + warm;
        let supply = available.len() + pending.len();
        let deficit = wanted.saturating_sub(supply);
        let surplus = supply.saturating_sub(wanted);
        if deficit > 0 {
            let count = deficit.min(free).min(pool_free[index]);
            free -= count;
            pool_free[index] -= count;
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
            plan.creates.extend(
                uncovered
                    .take(count)
                    .map(|job| (pool.name.clone(), scope.clone(), job)),
            );
        } else if surplus > 0 {
            let mut idle: Vec<&RunnerView> = available
                .into_iter()
                .filter(|v| {
                    v.record.autoscaled
                        && v.idle_since
                            .is_some_and(|t| now.saturating_duration_since(t) >= pool.idle_timeout)
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
    // A pool taken out of the file takes no new job: its idle runners go
    // at once (whoever made them); its busy ones finish their job.
    plan.removals.extend(
        live.iter()
            .filter(|v| index_of(&v.record.pool).is_none() && v.available() && v.online)
            .map(|v| v.record.name.clone()),
    );
    plan
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::autoscaler::{JobReport, JobStatus};
    use crate::config::RegistrationMode;
    use crate::engine::{RunnerContainer, RunnerLabels};

    fn scope() -> Scope {
        Scope::repository("acme/app").unwrap()
    }

    /// A pool serving `acme/app` with a warm pool and a cap.
    fn pool(name: &str, min_idle: usize, max: usize) -> Pool {
        Pool {
            name: name.to_owned(),
            labels: vec!["self-hosted".into(), name.to_owned()],
            image: "runner:test".into(),
            command: vec!["run.sh".into()],
            env: Vec::new(),
            registration: RegistrationMode::Jit,
            cpus: None,
            memory: None,
            pids_limit: None,
            min_idle,
            max,
            idle_timeout: Duration::from_secs(300),
            max_lifetime: Duration::from_secs(86_400),
            scope: Some(scope()),
            allowed_repositories: Vec::new(),
            runner_group_id: 1,
            network: "gha-runners".into(),
            docker: None,
        }
    }

    /// One pool, `small`, with no warm pool and room for 100.
    static ONE: LazyLock<Pools> = LazyLock::new(|| Pools::new(vec![pool("small", 0, 100)]));

    fn job(id: i64) -> JobEntry {
        let now = std::time::Instant::now();
        JobEntry {
            report: JobReport {
                id,
                run_id: Some(1),
                name: None,
                repository: "acme/app".into(),
                labels: vec!["self-hosted".into()],
                status: JobStatus::Queued,
                conclusion: None,
                runner_name: None,
            },
            first_seen: now,
            updated: now,
        }
    }

    /// Jobs routed to the pool named `name` of `pools`.
    fn routed<'a>(pools: &'a Pools, name: &str, jobs: &'a [JobEntry]) -> Vec<Routed<'a>> {
        let pool = pools.get(name).unwrap();
        jobs.iter()
            .map(|entry| Routed {
                pool,
                scope: scope(),
                entry,
            })
            .collect()
    }

    /// A live runner of pool `small`: starting, or idle since `idle_since`.
    fn runner(name: &str, for_job: Option<i64>, idle_since: Option<Instant>) -> RunnerView {
        runner_of("small", name, for_job, idle_since)
    }

    fn runner_of(
        pool: &str,
        name: &str,
        for_job: Option<i64>,
        idle_since: Option<Instant>,
    ) -> RunnerView {
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
                pool: pool.to_owned(),
                docker: false,
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
    static NONE_PENDING: BTreeMap<PoolScope, Vec<Option<i64>>> = BTreeMap::new();

    fn settings(free_slots: usize) -> Settings<'static> {
        Settings {
            pools: &ONE,
            free_slots,
            pending: &NONE_PENDING,
        }
    }

    fn create(pool: &str, job: Option<i64>) -> PlannedCreate {
        (pool.to_owned(), scope(), job)
    }

    #[tokio::test(start_paused = true)]
    async fn creates_under_way_count_as_supply_and_cover_their_jobs() {
        let jobs = [job(1), job(2), job(3)];
        let queued = routed(&ONE, "small", &jobs);
        // A create for job 2 and one for the warm pool are under way: job 2
        // is covered, and one more runner (not two) is needed for 1 and 3.
        let pending = BTreeMap::from([(("small".to_owned(), scope()), vec![Some(2), None])]);
        let under_way = Settings {
            pending: &pending,
            ..settings(10)
        };
        let planned = plan(&queued, &[], &under_way, Instant::now());
        assert_eq!(planned.creates, [create("small", Some(1))]);
        // Covered in full: nothing more is asked for.
        let pending = BTreeMap::from([(
            ("small".to_owned(), scope()),
            vec![Some(1), Some(2), Some(3)],
        )]);
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
        let jobs = [job(1), job(2), job(3)];
        let queued = routed(&ONE, "small", &jobs);
        // Runner "a" is starting for job 1: only jobs 2 and 3 need one.
        let live = [runner("a", Some(1), None)];
        let planned = plan(&queued, &live, &settings(10), Instant::now());
        assert_eq!(
            planned.creates,
            [create("small", Some(2)), create("small", Some(3))]
        );
        assert_eq!(planned.waiting, 0);
        let planned = plan(&queued, &live, &settings(1), Instant::now());
        assert_eq!(planned.creates, [create("small", Some(2))]);
        assert_eq!(planned.waiting, 1, "the third job waits for a slot");
    }

    #[tokio::test(start_paused = true)]
    async fn each_pool_fills_its_own_warm_pool() {
        let pools = Pools::new(vec![pool("small", 2, 10), pool("large", 1, 10)]);
        let warm = Settings {
            pools: &pools,
            ..settings(10)
        };
        let planned = plan(&[], &[], &warm, Instant::now());
        assert_eq!(
            planned.creates,
            [
                create("small", None),
                create("small", None),
                create("large", None)
            ]
        );
        // An idle runner of `small` does not fill `large`'s warm pool.
        let one_idle = [runner("a", None, Some(Instant::now()))];
        let planned = plan(&[], &one_idle, &warm, Instant::now());
        assert_eq!(
            planned.creates,
            [create("small", None), create("large", None)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pool_at_its_max_waits_while_another_pool_still_starts_runners() {
        let pools = Pools::new(vec![pool("small", 0, 1), pool("large", 0, 10)]);
        let small_jobs = [job(1), job(2)];
        let large_jobs = [job(3)];
        let mut queued = routed(&pools, "small", &small_jobs);
        queued.extend(routed(&pools, "large", &large_jobs));
        let both = Settings {
            pools: &pools,
            ..settings(10)
        };
        let planned = plan(&queued, &[], &both, Instant::now());
        assert_eq!(
            planned.creates,
            [create("small", Some(1)), create("large", Some(3))]
        );
        assert_eq!(planned.waiting, 1, "job 2 waits for `small`'s one slot");
        // A busy runner of `small` holds its slot: job 2 still waits.
        let mut busy = runner_of("small", "b", Some(1), None);
        busy.set_github_status(true, true);
        let planned = plan(&queued[1..], &[busy], &both, Instant::now());
        assert_eq!(planned.creates, [create("large", Some(3))]);
        assert_eq!(planned.waiting, 1);
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
        let jobs = [job(9)];
        let queued = routed(&ONE, "small", &jobs);
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
    async fn a_removed_pools_idle_runners_go_at_once_and_its_busy_ones_stay() {
        let idle = runner_of("gone", "idle", None, Some(Instant::now()));
        let mut busy = runner_of("gone", "busy", Some(4), None);
        busy.set_github_status(true, true);
        let starting = runner_of("gone", "starting", None, None);
        let planned = plan(&[], &[idle, busy, starting], &settings(10), Instant::now());
        assert_eq!(planned.removals, ["idle"]);
    }

    #[tokio::test(start_paused = true)]
    async fn slots_are_shared_across_pools_not_counted_twice() {
        let pools = Pools::new(vec![pool("small", 0, 10), pool("large", 0, 10)]);
        let small_jobs = [job(1)];
        let large_jobs = [job(7)];
        let mut queued = routed(&pools, "small", &small_jobs);
        queued.extend(routed(&pools, "large", &large_jobs));
        let one_slot = Settings {
            pools: &pools,
            ..settings(1)
        };
        let planned = plan(&queued, &[], &one_slot, Instant::now());
        assert_eq!(planned.creates, [create("small", Some(1))], "file order");
        assert_eq!(planned.waiting, 1);
    }
}
