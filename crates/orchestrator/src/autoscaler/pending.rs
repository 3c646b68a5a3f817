//! [`PendingCreates`]: the runners the scaler has asked for and that do not
//! exist yet. The scaler does not wait for its creates (a tick that waited
//! left every slot freed meanwhile empty until the slowest create of the
//! tick was done); it counts these as supply instead, so that the next
//! tick does not ask again for the same job.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::scope::Scope;

/// A pool's name and a scope: where a create is under way.
pub type PoolScope = (String, Scope);

/// Creates under way, by pool and scope: the job each one is for (`None`:
/// the warm pool).
#[derive(Debug, Default)]
pub struct PendingCreates {
    /// Shared with each [`PendingCreate`], which outlives the tick that
    /// made it (it lives in the task that waits for the create).
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    creates: BTreeMap<u64, (PoolScope, Option<i64>)>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PendingCreates {
    /// Counts a create as under way until the returned guard is dropped.
    pub fn begin(&self, at: PoolScope, for_job: Option<i64>) -> PendingCreate {
        let mut inner = lock(&self.inner);
        let token = inner.next;
        inner.next += 1;
        inner.creates.insert(token, (at, for_job));
        PendingCreate {
            inner: self.inner.clone(),
            token,
        }
    }

    /// The creates under way, by pool and scope.
    pub fn by_pool(&self) -> BTreeMap<PoolScope, Vec<Option<i64>>> {
        let mut by_pool: BTreeMap<PoolScope, Vec<Option<i64>>> = BTreeMap::new();
        for (at, job) in lock(&self.inner).creates.values() {
            by_pool.entry(at.clone()).or_default().push(*job);
        }
        by_pool
    }
}

/// One create under way; dropping it (the create ended, however) ends it.
#[derive(Debug)]
#[must_use = "the create counts as under way only while this lives"]
pub struct PendingCreate {
    inner: Arc<Mutex<Inner>>,
    token: u64,
}

impl Drop for PendingCreate {
    fn drop(&mut self) {
        lock(&self.inner).creates.remove(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_counts_until_its_guard_goes() {
        let pending = PendingCreates::default();
        let at = ("small".to_owned(), Scope::repository("acme/app").unwrap());
        let first = pending.begin(at.clone(), Some(7));
        let second = pending.begin(at.clone(), None);
        assert_eq!(pending.by_pool()[&at], vec![Some(7), None]);
        drop(first);
        assert_eq!(pending.by_pool()[&at], vec![None]);
        drop(second);
        assert!(pending.by_pool().is_empty());
    }
}
