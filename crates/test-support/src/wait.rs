//! Polling with a deadline: tests wait for an outcome, never for a time.

use std::future::Future;
use std::time::{Duration, Instant};

/// Calls `check` every 100 ms until it returns `Some`, and returns that value.
///
/// # Panics
/// When `timeout` passes first; the message names `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
