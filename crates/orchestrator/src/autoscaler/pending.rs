//! [`PendingCreates`]: the runners the scaler has asked for and that do not
//! exist yet. The scaler does not wait for its creates (a tick that waited
//! left every slot freed meanwhile empty until the slowest create of the
//! tick was done); it counts these as supply instead, so that the next
//! tick does not ask again for the same job.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::scope::Scope;

/// Creates under way, by scope: the job each one is for (`None`: the warm pool).
#[derive(Debug, Default)]
pub struct PendingCreates {
    /// Shared with each [`PendingCreate`], which outlives the tick that
    /// made it (it lives in the task that waits for the create).
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    creates: BTreeMap<u64, (Scope, Option<i64>)>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PendingCreates {
    /// Counts a create as under way until the returned guard is dropped.
    pub fn begin(&self, scope: Scope, for_job: Option<i64>) -> PendingCreate {
        let mut inner = lock(&self.inner);
        let token = inner.next;
        inner.next += 1;
        inner.creates.insert(token, (scope, for_job));
        PendingCreate {
            inner: self.inner.clone(),
            token,
        }
    }

    /// The creates under way, by scope.
    pub fn by_scope(&self) -> BTreeMap<Scope, Vec<Option<i64>>> {
        let mut by_scope: BTreeMap<Scope, Vec<Option<i64>>> = BTreeMap::new();
        for (scope, job) in lock(&self.inner).creates.values() {
            by_scope.entry(scope.clone()).or_default().push(*job);
        }
        by_scope
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
        let scope = Scope::repository("acme/app").unwrap();
        let first = pending.begin(scope.clone(), Some(7));
        let second = pending.begin(scope.clone(), None);
        assert_eq!(pending.by_scope()[&scope], vec![Some(7), None]);
        drop(first);
        assert_eq!(pending.by_scope()[&scope], vec![None]);
        drop(second);
        assert!(pending.by_scope().is_empty());
    }
}
