//! CI context read from the environment, recorded with every decision.

use serde::{Deserialize, Serialize};

/// Who and what asked for a decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CiContext {
    /// `github-actions`, `gitlab-ci`, `generic` or `local`.
    pub provider: String,
    /// Service being deployed (`SERVICE_NAME`), when set.
    pub service: Option<String>,
    /// Repository or project path.
    pub repository: Option<String>,
    /// Branch or ref name.
    pub branch: Option<String>,
    /// Commit SHA.
    pub commit: Option<String>,
    /// User or bot that triggered the run.
    pub actor: Option<String>,
    /// Link to the pipeline run.
    pub pipeline_url: Option<String>,
}

/// Reads the context with `get` (normally `std::env::var`), so tests can pass a map.
pub fn from_env(get: impl Fn(&str) -> Option<String>) -> CiContext {
    let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let service = get("SERVICE_NAME");
    if get("GITHUB_ACTIONS").as_deref() == Some("true") {
        let server = get("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
        let repo = get("GITHUB_REPOSITORY");
        let url = match (&repo, get("GITHUB_RUN_ID")) {
            (Some(r), Some(id)) => Some(format!("{server}/{r}/actions/runs/{id}")),
            _ => None,
        };
        return CiContext {
            provider: "github-actions".into(),
            service,
            repository: repo,
            branch: get("GITHUB_HEAD_REF").or_else(|| get("GITHUB_REF_NAME")),
            commit: get("GITHUB_SHA"),
            actor: get("GITHUB_ACTOR"),
            pipeline_url: url,
        };
    }
    if get("GITLAB_CI").as_deref() == Some("true") {
        return CiContext {
            provider: "gitlab-ci".into(),
            service,
            repository: get("CI_PROJECT_PATH"),
            branch: get("CI_COMMIT_REF_NAME"),
            commit: get("CI_COMMIT_SHA"),
            actor: get("GITLAB_USER_LOGIN"),
            pipeline_url: get("CI_PIPELINE_URL"),
        };
    }
    // The seed's deploy_guard.sh variables.
    let branch = get("BRANCH_NAME");
    let commit = get("COMMIT_SHA");
    let provider = if branch.is_some() || commit.is_some() || get("CI").is_some() { "generic" } else { "local" };
    CiContext {
        provider: provider.into(),
        service,
        repository: None,
        branch,
        commit,
        actor: get("USER"),
        pipeline_url: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn github_actions() {
        let c = from_env(env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_SHA", "abc123"),
            ("GITHUB_ACTOR", "alice"),
            ("GITHUB_RUN_ID", "42"),
            ("SERVICE_NAME", "checkout-api"),
        ]));
        assert_eq!(c.provider, "github-actions");
        assert_eq!(c.pipeline_url.as_deref(), Some("https://github.com/acme/shop/actions/runs/42"));
        assert_eq!(c.branch.as_deref(), Some("main"));
        assert_eq!(c.service.as_deref(), Some("checkout-api"));
    }

    #[test]
    fn gitlab_ci() {
        let c = from_env(env(&[
            ("GITLAB_CI", "true"),
            ("CI_PROJECT_PATH", "acme/shop"),
            ("CI_COMMIT_REF_NAME", "release/1"),
            ("CI_COMMIT_SHA", "def456"),
            ("GITLAB_USER_LOGIN", "bob"),
            ("CI_PIPELINE_URL", "https://gitlab.example/acme/shop/-/pipelines/7"),
        ]));
        assert_eq!(c.provider, "gitlab-ci");
        assert_eq!(c.actor.as_deref(), Some("bob"));
        assert_eq!(c.commit.as_deref(), Some("def456"));
    }

    #[test]
    fn seed_wrapper_variables() {
        let c = from_env(env(&[("BRANCH_NAME", "main"), ("COMMIT_SHA", "abc")]));
        assert_eq!(c.provider, "generic");
        assert_eq!(c.branch.as_deref(), Some("main"));
    }
}
