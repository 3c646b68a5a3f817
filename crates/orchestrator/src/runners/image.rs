//! Keeps the runner images fresh: pulls every pool's image at start and every
//! `RUNNER_IMAGE_PULL_INTERVAL_SECONDS` in the background, and remembers the
//! outcome for `/health`. A failed pull with a local copy is only a warning
//! (air-gapped hosts have no registry).

use std::sync::Mutex;
use std::time::Duration;

use api_types::RunnerImageHealth;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Fleet, FleetError};
use crate::supervisor::Beat;

/// How long one pull may take.
const PULL_LIMIT: Duration = Duration::from_secs(1800);
/// How long a create waits for a pull of an image that is not there at all.
const CREATE_PULL_LIMIT: Duration = Duration::from_secs(300);

/// The image's freshness.
#[derive(Debug)]
pub struct ImageStatus {
    image: String,
    inner: Mutex<ImageInner>,
    /// Wakes the puller for an immediate pull (e.g. a runner exited with 7).
    pub pull_now: Notify,
}

#[derive(Debug, Default, Clone)]
struct ImageInner {
    last_pulled_at: Option<DateTime<Utc>>,
    last_pull_error: Option<String>,
}

impl ImageStatus {
    /// Status for `image`, nothing known yet.
    pub fn new(image: &str) -> Self {
        Self {
            image: image.to_owned(),
            inner: Mutex::default(),
            pull_now: Notify::new(),
        }
    }

    /// The image followed for `/health`.
    pub fn image(&self) -> &str {
        &self.image
    }

    fn record(&self, result: &Result<(), String>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => {
                inner.last_pulled_at = Some(Utc::now());
                inner.last_pull_error = None;
            }
            Err(e) => inner.last_pull_error = Some(e.clone()),
        }
    }

    /// The `/health` part, given the local digest (when Docker answered).
    pub fn health(&self, digest: Option<String>) -> RunnerImageHealth {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone();
        RunnerImageHealth {
            image: self.image.clone(),
            present: digest.is_some(),
            digest,
            last_pulled_at: inner.last_pulled_at,
            last_pull_error: inner.last_pull_error,
        }
    }
}

impl Fleet {
    /// Makes sure `image` exists locally before a create; pulls it only when
    /// there is no local copy at all. `what` names it in logs and errors
    /// (`"runner image"`, `"Docker engine image"`).
    ///
    /// # Errors
    /// [`FleetError::ImageUnavailable`] when it is neither present nor
    /// pullable; [`FleetError::Docker`] when Docker does not answer.
    pub async fn ensure_image(&self, image: &str, what: &str) -> Result<(), FleetError> {
        if self.engine.image_digest(image).await?.is_some() {
            return Ok(());
        }
        info!(image, "{what} not present locally; pulling it now");
        let result = self
            .engine
            .pull(image, CREATE_PULL_LIMIT)
            .await
            .map_err(|e| e.to_string());
        if image == self.image.image {
            self.image.record(&result);
        }
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(FleetError::ImageUnavailable(format!(
                "{what} {image} is not present locally and could not be pulled: {e}"
            ))),
        }
    }

    /// Pulls every pool's image now and every interval until `stop`; each
    /// round in which every pull succeeded is a `beat`. Run only when the
    /// interval is not 0.
    pub async fn run_image_puller(&self, stop: CancellationToken, beat: Beat) {
        let interval = self.config.runner_image_pull_interval;
        loop {
            let mut all_pulled = true;
            let pools = self.pools.current();
            for image in pools.images().into_iter().chain(pools.engine_images()) {
                info!(image = %image, "pulling runner image");
                let result = tokio::select! {
                    r = self.engine.pull(&image, PULL_LIMIT) => r.map_err(|e| e.to_string()),
                    _ = stop.cancelled() => return,
                };
                match &result {
                    Ok(()) => info!(image = %image, "runner image is up to date"),
                    Err(e) => {
                        all_pulled = false;
                        let present = matches!(self.engine.image_digest(&image).await, Ok(Some(_)));
                        if present {
                            warn!(image = %image, error = %e, "runner image pull failed; using the local copy");
                        } else {
                            warn!(image = %image, error = %e, "runner image pull failed and there is no local copy; creates will fail until it can be pulled");
                        }
                    }
                }
                if image == self.image.image {
                    self.image.record(&result);
                }
            }
            if all_pulled {
                beat.pass();
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.image.pull_now.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
