//! [`IdempotencyStore`]: what each `Idempotency-Key` started, for 24 hours,
//! so that a repeated create joins the first batch instead of making a
//! second one (as in the IETF's `Idempotency-Key` draft,
//! draft-ietf-httpapi-idempotency-key-header, and Stripe's API).
//!
//! In memory and bounded: at most [`MAX_KEYS`] keys are kept, the oldest
//! forgotten first. A key forgotten early loses only its protection against
//! a repeat; the operation it started goes on. A restart forgets every key.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// How long a key is remembered.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Most keys remembered at once. Each costs a few hundred bytes; ten
/// thousand creates a day is far beyond what one orchestrator makes.
pub const MAX_KEYS: usize = 10_000;

/// The key was first used with a different request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this Idempotency-Key was used for a different request")]
pub struct KeyReused;

/// Values of type `T` by key, each with the request `R` that made it.
#[derive(Debug)]
pub struct IdempotencyStore<R, T> {
    entries: HashMap<String, Entry<R, T>>,
    /// Keys oldest first. Every key lives as long, so the oldest is also
    /// the first to expire.
    order: VecDeque<(Instant, String)>,
    lifetime: Duration,
    capacity: usize,
}

#[derive(Debug)]
struct Entry<R, T> {
    /// The request the key was first used with, to refuse another.
    request: R,
    value: T,
    stored_at: Instant,
}

impl<R: PartialEq, T: Clone> IdempotencyStore<R, T> {
    /// An empty store keeping keys for `lifetime`, at most `capacity` of them.
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            lifetime,
            capacity: capacity.max(1),
        }
    }

    /// What `key` holds, when it was first used with `request`; when the
    /// key is new (or expired), `start()`'s value, remembered. The flag says
    /// whether `start` ran. Check and insert happen under the caller's one
    /// `&mut`, so two requests with one key can never both start.
    ///
    /// # Errors
    /// [`KeyReused`] when the key holds a value made for another request.
    pub fn get_or_start(
        &mut self,
        key: &str,
        request: R,
        start: impl FnOnce() -> T,
    ) -> Result<(T, bool), KeyReused> {
        let now = Instant::now();
        self.expire(now);
        if let Some(entry) = self.entries.get(key) {
            return if entry.request == request {
                Ok((entry.value.clone(), false))
            } else {
                Err(KeyReused)
            };
        }
        while self.entries.len() >= self.capacity {
            self.drop_oldest();
        }
        let value = start();
        self.entries.insert(
            key.to_owned(),
            Entry {
                request,
                value: value.clone(),
                stored_at: now,
            },
        );
        self.order.push_back((now, key.to_owned()));
        Ok((value, true))
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= self.lifetime)
        {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some((at, key)) = self.order.pop_front()
            && self.entries.get(&key).is_some_and(|e| e.stored_at == at)
        {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> IdempotencyStore<&'static str, u32> {
        IdempotencyStore::new(KEY_LIFETIME, 3)
    }

    #[test]
    fn a_key_starts_once_and_answers_the_same_after() {
        let mut store = store();
        assert_eq!(store.get_or_start("k", "a", || 1), Ok((1, true)));
        assert_eq!(
            store.get_or_start("k", "a", || unreachable!("started twice")),
            Ok((1, false))
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_key_used_for_another_request_is_refused() {
        let mut store = store();
        store.get_or_start("k", "a", || 1).unwrap();
        assert_eq!(
            store.get_or_start("k", "b", || unreachable!("started for another request")),
            Err(KeyReused)
        );
        // The first request still gets its value.
        assert_eq!(store.get_or_start("k", "a", || 2), Ok((1, false)));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_expire_after_a_day() {
        let mut store = store();
        store.get_or_start("k", "a", || 1).unwrap();
        tokio::time::advance(KEY_LIFETIME - Duration::from_secs(1)).await;
        assert_eq!(store.get_or_start("k", "a", || 2), Ok((1, false)));
        tokio::time::advance(Duration::from_secs(1)).await;
        // Expired: the key is free, even for another request.
        assert_eq!(store.get_or_start("k", "b", || 3), Ok((3, true)));
        assert_eq!(store.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_cap_the_oldest_key_goes_first() {
        let mut store = store();
        for (key, value) in [("a", 1), ("b", 2), ("c", 3)] {
            store.get_or_start(key, "r", || value).unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        store.get_or_start("d", "r", || 4).unwrap();
        assert_eq!(store.len(), 3);
        // "d" pushed out "a", the oldest; "a" again pushes out "b".
        assert_eq!(store.get_or_start("a", "r", || 10), Ok((10, true)));
        assert_eq!(store.get_or_start("c", "r", || 30), Ok((3, false)));
        assert_eq!(store.get_or_start("d", "r", || 40), Ok((4, false)));
        assert_eq!(store.get_or_start("b", "r", || 20), Ok((20, true)));
    }
}
