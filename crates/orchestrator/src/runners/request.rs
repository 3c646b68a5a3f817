//! Checks a create request against the configuration and turns it into a
//! [`BatchPlan`]. Nothing is created anywhere until a request passes here.

use api_types::CreateRunnersRequest;

use super::FleetError;
use crate::config::Config;
use crate::scope::{Scope, validate_label};

/// GitHub's cap on labels per runner.
const MAX_LABELS: usize = 100;

/// A checked create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// How many runners.
    pub count: usize,
    /// Where they register.
    pub scope: Scope,
    /// Every label: the defaults, `RUNNER_LABELS`, then the request's.
    pub labels: Vec<String>,
    /// The image.
    pub image: String,
    /// The runner group.
    pub runner_group_id: i64,
    /// The job the runners are for, when the autoscaler asks.
    pub for_job: Option<i64>,
    /// Whether the autoscaler asks (the idle timeout then applies).
    pub autoscaled: bool,
}

/// Checks `request`.
///
/// # Errors
/// [`FleetError::Invalid`] or [`FleetError::ImageNotAllowed`], saying what is wrong.
pub fn plan(config: &Config, request: &CreateRunnersRequest) -> Result<BatchPlan, FleetError> {
    let max = config.max_runners;
    if request.count == 0 || request.count > max {
        return Err(FleetError::Invalid(format!(
            "count must be between 1 and {max} (MAX_RUNNERS), got {}",
            request.count
        )));
    }
    let scope = match (&request.repository, &request.organization) {
        (Some(_), Some(_)) => {
            return Err(FleetError::Invalid(
                "give repository or organization, not both".into(),
            ));
        }
        (Some(repo), None) => Scope::repository(repo).map_err(|e| FleetError::Invalid(format!("repository: {e}")))?,
        (None, Some(org)) => Scope::organization(org).map_err(|e| FleetError::Invalid(format!("organization: {e}")))?,
        (None, None) => config.default_scope().ok_or_else(|| {
            FleetError::Invalid(
                "give repository or organization (no GITHUB_REPOSITORY or GITHUB_ORG is configured)".into(),
            )
        })?,
    };
    let mut labels = config.base_labels();
    for label in &request.labels {
        validate_label(label).map_err(FleetError::Invalid)?;
        if !labels.iter().any(|l| l.eq_ignore_ascii_case(label)) {
            labels.push(label.clone());
        }
    }
    if labels.len() > MAX_LABELS {
        return Err(FleetError::Invalid(format!(
            "a runner takes at most {MAX_LABELS} labels, this one would have {}",
            labels.len()
        )));
    }
    let image = match &request.image {
        None => config.runner_image.clone(),
        Some(image) if config.allowed_images().contains(image) => image.clone(),
        Some(image) => return Err(FleetError::ImageNotAllowed(image.clone())),
    };
    let runner_group_id = request.runner_group_id.unwrap_or(config.runner_group_id);
    if runner_group_id < 1 {
        return Err(FleetError::Invalid(format!(
            "runner_group_id must be a positive integer, got {runner_group_id}"
        )));
    }
    Ok(BatchPlan {
        count: request.count as usize,
        scope,
        labels,
        image,
        runner_group_id,
        for_job: None,
        autoscaled: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config() -> Config {
        Config::try_parse_from([
            "o",
            "--github-token",
            "t",
            "--github-repository",
            "acme/app",
            "--max-runners",
            "5",
            "--runner-image",
            "img:1",
            "--runner-image-allowlist",
            "img:1,img:2",
        ])
        .unwrap()
    }

    fn request(json: &str) -> CreateRunnersRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_fill_in() {
        let plan = plan(&config(), &request(r#"{"count":2,"labels":["gpu"]}"#)).unwrap();
        assert_eq!(plan.scope, Scope::repository("acme/app").unwrap());
        assert_eq!(plan.labels, ["self-hosted", "linux", "x64", "gpu"]);
        assert_eq!((plan.image.as_str(), plan.runner_group_id), ("img:1", 1));
    }

    #[test]
    fn bad_requests_are_refused() {
        for json in [
            r#"{"count":0}"#,
            r#"{"count":6}"#,
            r#"{"count":1,"repository":"a/b","organization":"a"}"#,
            r#"{"count":1,"repository":"nope"}"#,
            r#"{"count":1,"labels":[""]}"#,
            r#"{"count":1,"labels":["a,b"]}"#,
            r#"{"count":1,"runner_group_id":0}"#,
        ] {
            assert!(
                matches!(plan(&config(), &request(json)), Err(FleetError::Invalid(_))),
                "{json}"
            );
        }
        let too_many: Vec<String> = (0..100).map(|i| format!("l{i}")).collect();
        let json = serde_json::json!({"count": 1, "labels": too_many}).to_string();
        assert!(matches!(
            plan(&config(), &request(&json)),
            Err(FleetError::Invalid(_))
        ));
    }

    #[test]
    fn images_must_be_allowed() {
        assert!(plan(&config(), &request(r#"{"count":1,"image":"img:2"}"#)).is_ok());
        assert!(matches!(
            plan(&config(), &request(r#"{"count":1,"image":"evil:latest"}"#)),
            Err(FleetError::ImageNotAllowed(_))
        ));
    }
}
