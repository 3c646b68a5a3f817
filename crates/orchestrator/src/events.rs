//! Watches Docker's events for our containers' exits and retires each one
//! (record the exit code, make sure the registration is gone, remove the
//! container); a runner whose own Docker engine exits is removed with it.
//! A missed event is caught by the next reconcile pass.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::runners::Fleet;
use crate::supervisor::Beat;

/// Follows exits until `stop`; reconnects when the event stream drops.
/// Each event taken is a `beat` (the loop is driven by events, so it is
/// never "late").
pub async fn watch_exits(fleet: Arc<Fleet>, stop: CancellationToken, beat: Beat) {
    let tasks = TaskTracker::new();
    loop {
        let mut exits = Box::pin(fleet.engine.exits());
        loop {
            let next = tokio::select! {
                next = exits.next() => next,
                _ = stop.cancelled() => {
                    tasks.close();
                    tasks.wait().await;
                    return;
                }
            };
            match next {
                Some(Ok(exit)) => {
                    beat.pass();
                    debug!(runner = %exit.name, exit_code = ?exit.exit_code, engine = exit.engine, "runner container exited");
                    let fleet = fleet.clone();
                    tasks.spawn(async move {
                        let outcome = if exit.engine {
                            fleet.engine_stopped(&exit.name, exit.exit_code).await
                        } else {
                            fleet.retire_exited(&exit.name).await.map(drop)
                        };
                        if let Err(e) = outcome {
                            warn!(runner = %exit.name, error = %e, "exited runner kept; the reconciler retries");
                        }
                    });
                }
                Some(Err(e)) => {
                    debug!(error = %e, "Docker event stream failed");
                    break;
                }
                None => break,
            }
        }
        // Events may have been missed while disconnected: reconcile.
        fleet.reconcile_now.notify_one();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => {
                tasks.close();
                tasks.wait().await;
                return;
            }
        }
    }
}
