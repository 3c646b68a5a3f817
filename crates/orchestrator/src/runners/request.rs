//! Checks a create request against the configuration and turns it into a
//! [`BatchPlan`]. Nothing is created anywhere until a request passes here.

use std::sync::Arc;

use api_types::CreateRunnersRequest;

use super::FleetError;
use crate::config::Config;
use crate::pools::{Pool, Pools};
use crate::scope::{Scope, validate_label};

/// GitHub's cap on labels per runner.
const MAX_LABELS: usize = 100;

/// A checked create request.
#[derive(Debug, Clone, PartialEq)]
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
    /// The pool: the runners' command, environment, resources, network
    /// and registration mode, and the cap the batch counts against.
    pub pool: Arc<Pool>,
}

/// Checks `request` against the configuration and the pools in force.
///
/// # Errors
/// [`FleetError::Invalid`] or [`FleetError::ImageNotAllowed`], saying what is wrong.
pub fn plan(
    config: &Config,
    pools: &Pools,
    request: &CreateRunnersRequest,
) -> Result<BatchPlan, FleetError> {
    let pool = match &request.pool {
        None => pools.first().clone(),
        Some(name) => pools.get(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
            FleetError::Invalid(format!(
                "pool {name:?} does not exist; the pools are {}",
                names.join(", ")
            ))
        })?,
    };
    let max = (config.max_runners as usize).min(pool.max);
    if request.count == 0 || request.count as usize > max {
        let cap = if max < config.max_runners as usize {
            format!("pool {:?}'s max", pool.name)
        } else {
            "MAX_RUNNERS".to_owned()
        };
        return Err(FleetError::Invalid(format!(
            "count must be between 1 and {max} ({cap}), got {}",
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
        (None, None) => pool.scope.clone().ok_or_else(|| {
            FleetError::Invalid(format!(
                "give repository or organization (pool {:?} has none: no GITHUB_REPOSITORY or GITHUB_ORG is configured)",
                pool.name
            ))
        })?,
    };
    let mut labels = pool.labels.clone();
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
        None => pool.image.clone(),
        Some(image) if allowed_images(config, pools).contains(image) => image.clone(),
        Some(image) => return Err(FleetError::ImageNotAllowed(image.clone())),
    };
    let runner_group_id = request.runner_group_id.unwrap_or(pool.runner_group_id);
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
        pool,
    })
}

/// The images a request may ask for: `RUNNER_IMAGE_ALLOWLIST` when set,
/// else the pools' own images.
fn allowed_images(config: &Config, pools: &Pools) -> Vec<String> {
    if config
        .runner_image_allowlist
        .iter()
        .any(|i| !i.trim().is_empty())
    {
        config.allowed_images()
    } else {
        pools.images()
    }
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

    fn plan(config: &Config, request: &CreateRunnersRequest) -> Result<BatchPlan, FleetError> {
        let pools = crate::pools::PoolSet::load(config).unwrap().current();
        super::plan(config, &pools, request)
    }

    #[test]
    fn a_named_pool_gives_its_labels_image_and_cap() {
        let config = config();
        let pools = crate::pools::file::parse(
            "[[pool]]\nname = \"small\"\nlabels = [\"self-hosted\", \"small\"]\nimage = \"img:1\"\n[[pool]]\nname = \"large\"\nlabels = [\"self-hosted\", \"large\"]\nimage = \"img:2\"\nmax = 2\n",
            &config,
        )
        .unwrap();
        let planned = super::plan(
            &config,
            &pools,
            &request(r#"{"count":2,"pool":"large","labels":["x"]}"#),
        )
        .unwrap();
        assert_eq!(planned.pool.name, "large");
        assert_eq!(planned.labels, ["self-hosted", "large", "x"]);
        assert_eq!(planned.image, "img:2");
        let first = super::plan(&config, &pools, &request(r#"{"count":1}"#)).unwrap();
        assert_eq!(first.pool.name, "small", "the first pool by default");
        for json in [
            r#"{"count":3,"pool":"large"}"#,
            r#"{"count":1,"pool":"huge"}"#,
        ] {
            let error = super::plan(&config, &pools, &request(json)).unwrap_err();
            assert!(matches!(error, FleetError::Invalid(_)), "{json}: {error}");
        }
        let error = super::plan(&config, &pools, &request(r#"{"count":1,"pool":"huge"}"#))
            .unwrap_err()
            .to_string();
        assert!(error.contains("small, large"), "{error}");
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
