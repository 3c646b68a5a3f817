//! Where a runner registers (a repository or an organization) and the
//! syntax rules GitHub applies to names and labels.

use std::fmt;

/// A repository or an organization: the GitHub scope of a runner.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `owner/name`.
    Repository {
        /// The account that owns the repository.
        owner: String,
        /// The repository's name.
        name: String,
    },
    /// An organization's login.
    Organization(String),
}

impl Scope {
    /// Parses `owner/name`.
    ///
    /// # Errors
    /// A message saying what is wrong with `text`.
    pub fn repository(text: &str) -> Result<Scope, String> {
        let (owner, name) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not of the form owner/name"))?;
        validate_owner(owner).map_err(|e| format!("{text:?}: owner {e}"))?;
        if name.is_empty()
            || name.len() > 100
            || name == "."
            || name == ".."
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "{text:?} is not of the form owner/name (the name takes letters, digits, '-', '_', '.')"
            ));
        }
        Ok(Scope::Repository {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Parses an organization login.
    ///
    /// # Errors
    /// A message saying what is wrong with `text`.
    pub fn organization(text: &str) -> Result<Scope, String> {
        validate_owner(text).map_err(|e| format!("organization {text:?}: {e}"))?;
        Ok(Scope::Organization(text.to_owned()))
    }

    /// Rebuilds a scope from its kind and target, as stored in labels.
    pub fn from_parts(kind: &str, target: &str) -> Option<Scope> {
        match kind {
            "repository" => Scope::repository(target).ok(),
            "organization" => Scope::organization(target).ok(),
            _ => None,
        }
    }

    /// `repository` or `organization`.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Repository { .. } => "repository",
            Scope::Organization(_) => "organization",
        }
    }

    /// `owner/name` or the organization's login.
    pub fn target(&self) -> String {
        match self {
            Scope::Repository { owner, name } => format!("{owner}/{name}"),
            Scope::Organization(org) => org.clone(),
        }
    }

    /// The REST path prefix: `/repos/{owner}/{repo}` or `/orgs/{org}`.
    pub fn api_path(&self) -> String {
        match self {
            Scope::Repository { owner, name } => format!("/repos/{owner}/{name}"),
            Scope::Organization(org) => format!("/orgs/{org}"),
        }
    }

    /// The URL a runner's `config.sh --url` takes, given the API base URL.
    pub fn html_url(&self, api_url: &str) -> String {
        let web = web_base_url(api_url);
        format!("{web}/{}", self.target())
    }

    /// Whether a job of repository `full_name` can run on a runner of this scope.
    pub fn covers_repository(&self, full_name: &str) -> bool {
        match self {
            Scope::Repository { owner, name } => {
                full_name.eq_ignore_ascii_case(&format!("{owner}/{name}"))
            }
            Scope::Organization(org) => full_name
                .split_once('/')
                .is_some_and(|(owner, _)| owner.eq_ignore_ascii_case(org)),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.target())
    }
}

/// `https://api.github.com` → `https://github.com`; `https://HOST/api/v3` → `https://HOST`.
fn web_base_url(api_url: &str) -> String {
    let trimmed = api_url.trim_end_matches('/');
    if let Some(base) = trimmed.strip_suffix("/api/v3") {
        return base.to_owned();
    }
    trimmed.replacen("://api.", "://", 1)
}

/// GitHub logins: 1–39 characters, letters, digits and single inner hyphens.
fn validate_owner(owner: &str) -> Result<(), String> {
    if owner.is_empty() || owner.len() > 39 {
        return Err("must be 1 to 39 characters".into());
    }
    if owner.starts_with('-')
        || owner.ends_with('-')
        || !owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err("may hold only letters, digits and inner hyphens".into());
    }
    Ok(())
}

/// Runner labels: GitHub refuses commas (the runner's own separator), control
/// characters and labels over 100 characters; we also refuse whitespace,
/// which `runs-on` cannot express.
///
/// # Errors
/// A message saying what is wrong with `label`.
pub fn validate_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("labels must not be empty".into());
    }
    if label.chars().count() > 100 {
        return Err(format!("label {label:?} is longer than 100 characters"));
    }
    if label
        .chars()
        .any(|c| c == ',' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "label {label:?} holds a character GitHub refuses (comma, space or control character)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_parse() {
        assert_eq!(
            Scope::repository("octo-org/hello.world")
                .unwrap()
                .api_path(),
            "/repos/octo-org/hello.world"
        );
        for bad in [
            "noslash", "/r", "o/", "o/r/x", "-o/r", "o/..", "o/r r", "o%2F/r",
        ] {
            assert!(Scope::repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn html_urls_follow_the_api_url() {
        let repo = Scope::repository("o/r").unwrap();
        assert_eq!(
            repo.html_url("https://api.github.com"),
            "https://github.com/o/r"
        );
        assert_eq!(
            repo.html_url("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com/o/r"
        );
    }

    #[test]
    fn org_scope_covers_its_repositories() {
        let org = Scope::organization("Acme").unwrap();
        assert!(org.covers_repository("acme/x"));
        assert!(!org.covers_repository("other/x"));
        let repo = Scope::repository("acme/x").unwrap();
        assert!(repo.covers_repository("ACME/X"));
        assert!(!repo.covers_repository("acme/y"));
    }

    #[test]
    fn labels_are_checked() {
        assert!(validate_label("gpu").is_ok());
        assert!(validate_label("").is_err());
        assert!(validate_label("a,b").is_err());
        assert!(validate_label("a b").is_err());
        assert!(validate_label(&"x".repeat(101)).is_err());
    }
}
