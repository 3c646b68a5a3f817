//! Injected faults: the next N matching GitHub-surface requests fail, are delayed, or lose
//! their connection, either before the request is applied or after (its answer is lost).

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::{DOCS_SECONDARY_RATE, GitHubError};

/// When a fault strikes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FaultMode {
    /// Before the request is handled: it has no effect.
    #[default]
    Before,
    /// After the request is handled (e.g. the runner is registered): only its answer is
    /// lost, replaced by `status`, held for `delay_ms`, or cut off (`drop`).
    After,
}

/// A fault as posted to `POST /_sim/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    /// Matches request paths starting with this (with or without the `/api/v3` prefix).
    pub(crate) path_prefix: String,
    /// Only this method (case-insensitive), when given.
    #[serde(default)]
    pub(crate) method: Option<String>,
    /// Before or after the request is applied.
    #[serde(default)]
    pub(crate) mode: FaultMode,
    /// Status to answer instead; absent ⇒ only delay or drop.
    #[serde(default)]
    pub(crate) status: Option<u16>,
    /// Close the connection with no answer at all (the client sees a transport error).
    #[serde(default)]
    pub(crate) drop: bool,
    /// How many matching requests are affected.
    #[serde(default = "one")]
    pub(crate) count: u32,
    /// Delay before answering (mode `before`: before handling; mode `after`: the real
    /// answer, or the `status`/`drop`, comes this much later).
    #[serde(default)]
    pub(crate) delay_ms: Option<u64>,
    /// `retry-after` seconds for 403/429 (default 1).
    #[serde(default)]
    pub(crate) retry_after: Option<u64>,
}

fn one() -> u32 {
    1
}

/// A fault with the requests it still affects.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ActiveFault {
    #[serde(flatten)]
    pub(crate) spec: FaultSpec,
    pub(crate) remaining: u32,
}

/// The active faults, in the order they were posted.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) active: Vec<ActiveFault>,
}

impl FaultSpec {
    /// Checks the spec.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !self.path_prefix.starts_with('/') {
            return Err("path_prefix must start with '/'".to_owned());
        }
        if let Some(status) = self.status
            && !(400..=599).contains(&status)
        {
            return Err("status must be between 400 and 599".to_owned());
        }
        if self.drop && self.status.is_some() {
            return Err(
                "drop closes the connection with no answer: give no status with it".to_owned(),
            );
        }
        if self.status.is_none() && self.delay_ms.is_none() && !self.drop {
            return Err(
                "give a status, a delay_ms, drop: true, or a status with a delay_ms".to_owned(),
            );
        }
        if self.count == 0 {
            return Err("count must be at least 1".to_owned());
        }
        Ok(())
    }

    /// The error a faulted request gets, if the fault has a status.
    pub(crate) fn error(&self) -> Option<GitHubError> {
        let status = StatusCode::from_u16(self.status?).ok()?;
        Some(match status.as_u16() {
            403 | 429 => GitHubError {
                retry_after: Some(self.retry_after.unwrap_or(1)),
                ..GitHubError::new(
                    status,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.",
                )
                .with_docs(DOCS_SECONDARY_RATE)
            },
            500..=599 => GitHubError::new(status, "Server Error"),
            _ => GitHubError::new(status, status.canonical_reason().unwrap_or("Error")),
        })
    }
}

impl Faults {
    /// Consumes one use of the first fault matching the request.
    pub(crate) fn take(&mut self, method: &str, path: &str) -> Option<FaultSpec> {
        let folded = path.strip_prefix("/api/v3").unwrap_or(path);
        let index = self.active.iter().position(|f| {
            (path.starts_with(&f.spec.path_prefix) || folded.starts_with(&f.spec.path_prefix))
                && f.spec
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        let fault = &mut self.active[index];
        fault.remaining -= 1;
        let spec = fault.spec.clone();
        if fault.remaining == 0 {
            self.active.remove(index);
        }
        Some(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_goes_alone_and_unknown_fields_are_refused() {
        let parse = |text: &str| {
            serde_json::from_str::<FaultSpec>(text)
                .map_err(|e| e.to_string())
                .and_then(|spec| spec.validate().map(|()| spec))
        };
        assert!(parse(r#"{"path_prefix":"/x","drop":true}"#).is_ok());
        let after = parse(r#"{"path_prefix":"/x","mode":"after","drop":true}"#).unwrap();
        assert_eq!(after.mode, FaultMode::After);
        assert!(parse(r#"{"path_prefix":"/x","mode":"after","drop":true,"status":502}"#).is_err());
        assert!(parse(r#"{"path_prefix":"/x","mode":"later","status":502}"#).is_err());
        assert!(parse(r#"{"path_prefix":"/x","mode":"after"}"#).is_err());
        assert!(parse(r#"{"path_prefix":"/x","stauts":502}"#).is_err());
    }

    #[test]
    fn counts_down_and_matches_ghes_paths() {
        let mut faults = Faults::default();
        let spec: FaultSpec = serde_json::from_str(
            r#"{"path_prefix":"/repos/","method":"post","status":500,"count":2}"#,
        )
        .unwrap();
        spec.validate().unwrap();
        faults.active.push(ActiveFault { spec, remaining: 2 });
        assert!(faults.take("GET", "/repos/o/r").is_none());
        assert!(faults.take("POST", "/api/v3/repos/o/r").is_some());
        assert!(faults.take("POST", "/repos/o/r").is_some());
        assert!(faults.take("POST", "/repos/o/r").is_none());
    }
}
