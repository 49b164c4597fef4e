//! CI context read from the environment, recorded with every decision.
//!
//! The same type is the wire format of a CI context sent over HTTP (`POST /api/gate`'s `ci`):
//! [`CiRequest`] reads it strictly (unknown fields refused, the field names taken from
//! [`CiContext`] itself), so the request cannot drift from what is recorded.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Who and what asked for a decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

impl CiContext {
    /// The field names of the wire format, as serde writes them (sorted). Taken from a
    /// serialised default, so they are the struct's own: a new field is a new name here.
    pub fn field_names() -> Vec<String> {
        match serde_json::to_value(CiContext::default()) {
            Ok(Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The context with blank values dropped and `default_provider` for a blank provider.
    pub fn normalised(self, default_provider: &str) -> CiContext {
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let provider = if self.provider.trim().is_empty() { default_provider.to_string() } else { self.provider };
        CiContext {
            provider,
            service: nonempty(self.service),
            repository: nonempty(self.repository),
            branch: nonempty(self.branch),
            commit: nonempty(self.commit),
            actor: nonempty(self.actor),
            pipeline_url: nonempty(self.pipeline_url),
        }
    }
}

/// A [`CiContext`] as a client sends it (the `ci` object of `POST /api/gate`): a JSON object
/// whose fields are exactly [`CiContext`]'s (each optional, `null` as absent), anything else
/// refused with serde's "unknown field" error. [`CiContext`] itself stays lenient, so a record
/// written by another version still reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CiRequest(pub CiContext);

impl CiRequest {
    /// The context, normalised ([`CiContext::normalised`]) with `default_provider`.
    pub fn into_context(self, default_provider: &str) -> CiContext {
        self.0.normalised(default_provider)
    }
}

impl<'de> Deserialize<'de> for CiRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::<String, Value>::deserialize(d)?;
        let known = CiContext::field_names();
        if let Some(k) = map.keys().find(|k| !known.contains(k)) {
            let expected: Vec<String> = known.iter().map(|f| format!("`{f}`")).collect();
            return Err(D::Error::custom(format!("unknown field `{k}`, expected one of {}", expected.join(", "))));
        }
        map.retain(|_, v| !v.is_null());
        serde_json::from_value(Value::Object(map)).map(CiRequest).map_err(D::Error::custom)
    }
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

/// The warning for an `EXPLAINER_BACKEND` that names no explainer, for the commands that start
/// with it set (`gate`, `serve`, `mcp`); `None` when it is unset or one of the seed's values,
/// lower-cased as the seed did: `rule` / `rule_based` (the default), `openai`, `anthropic` (the
/// model explainer of `guardrail explain`, crate guardrail-model, which names its own problems).
/// The seed fell back to rules silently for anything else; Guardrail says so.
pub fn explainer_warning(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let backend = get("EXPLAINER_BACKEND").filter(|v| !v.trim().is_empty())?;
    let lower = backend.trim().to_lowercase();
    if matches!(
        lower.as_str(),
        "rule" | "rule_based" | "rule-based" | "rules" | "deterministic" | "openai" | "anthropic"
    ) {
        return None;
    }
    Some(format!("EXPLAINER_BACKEND={backend} is unknown (rule, openai, anthropic); using the rule-based explainer"))
}

/// The seed dashboard's variables that `guardrail serve` does not read, with what to use.
pub fn dashboard_warnings(get: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(port) = get("DASHBOARD_PORT").filter(|v| !v.trim().is_empty()) {
        w.push(format!("DASHBOARD_PORT={port} is not read; use --bind 127.0.0.1:{}", port.trim()));
    }
    if get("FLASK_DEBUG").is_some_and(|v| !v.trim().is_empty()) {
        w.push("FLASK_DEBUG is not read: there is no debug mode".to_string());
    }
    w
}

/// `SERVICE_NAME` is the service the pipeline deploys (recorded as the CI context's
/// `service`). The gate decides on the signals of the service its metrics name; when the two
/// differ, the decision may not be about the service being deployed: a warning that names both
/// (recorded with the decision).
pub fn service_mismatch(ci: &CiContext, decided_for: &str) -> Option<String> {
    let deploying = ci.service.as_deref()?;
    (deploying != decided_for).then(|| {
        format!(
            "SERVICE_NAME is {deploying:?} but the signals are {decided_for:?}'s: this decision is about {decided_for:?}"
        )
    })
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

    /// Every field set (a struct literal without `..`: a new field does not compile here
    /// until it is added).
    fn full() -> CiContext {
        CiContext {
            provider: "github-actions".into(),
            service: Some("checkout-api".into()),
            repository: Some("acme/shop".into()),
            branch: Some("main".into()),
            commit: Some("abc123".into()),
            actor: Some("octocat".into()),
            pipeline_url: Some("https://ci.example/runs/1".into()),
        }
    }

    #[test]
    fn a_request_accepts_every_field_of_the_context_and_nothing_else() {
        let wire = serde_json::to_value(full()).unwrap();
        assert_eq!(CiContext::field_names(), wire.as_object().unwrap().keys().cloned().collect::<Vec<_>>());
        assert_eq!(CiContext::field_names().len(), 7);
        let r: CiRequest = serde_json::from_value(wire).unwrap();
        assert_eq!(r.into_context("http"), full());

        let e = serde_json::from_str::<CiRequest>(r#"{"branch": "main", "approver": "me"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `approver`, expected one of `actor`, `branch`"), "{e}");
        assert!(serde_json::from_str::<CiRequest>(r#"{"branch": 3}"#).is_err());
        assert!(serde_json::from_str::<CiRequest>("[]").is_err());
    }

    #[test]
    fn a_request_drops_blanks_and_nulls_and_defaults_the_provider() {
        let r: CiRequest =
            serde_json::from_str(r#"{"provider": " ", "branch": "", "commit": null, "actor": "a"}"#).unwrap();
        let c = r.into_context("http");
        assert_eq!(c, CiContext { provider: "http".into(), actor: Some("a".into()), ..CiContext::default() });
        let empty: CiRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.into_context("http").provider, "http");
    }

    #[test]
    fn explainer_backends_that_do_not_exist_are_named() {
        assert_eq!(explainer_warning(env(&[])), None);
        for known in ["rule_based", "RULE", "OpenAI", "anthropic"] {
            assert_eq!(explainer_warning(env(&[("EXPLAINER_BACKEND", known)])), None, "{known}");
        }
        let w = explainer_warning(env(&[("EXPLAINER_BACKEND", "llama")])).unwrap();
        assert_eq!(w, "EXPLAINER_BACKEND=llama is unknown (rule, openai, anthropic); using the rule-based explainer");
        let d = dashboard_warnings(env(&[("DASHBOARD_PORT", "5000"), ("FLASK_DEBUG", "true")]));
        assert_eq!(d.len(), 2);
        assert!(d[0].contains("--bind 127.0.0.1:5000"), "{d:?}");
    }

    #[test]
    fn service_name_is_recorded_and_a_mismatch_is_named() {
        let c = from_env(env(&[("SERVICE_NAME", "payments-api"), ("BRANCH_NAME", "main")]));
        assert_eq!(c.service.as_deref(), Some("payments-api"));
        assert_eq!(service_mismatch(&c, "payments-api"), None);
        let w = service_mismatch(&c, "checkout-api").unwrap();
        assert!(w.contains("\"payments-api\"") && w.contains("\"checkout-api\"'s"), "{w}");
        assert_eq!(service_mismatch(&from_env(env(&[])), "checkout-api"), None);
    }

    #[test]
    fn seed_wrapper_variables() {
        let c = from_env(env(&[("BRANCH_NAME", "main"), ("COMMIT_SHA", "abc")]));
        assert_eq!(c.provider, "generic");
        assert_eq!(c.branch.as_deref(), Some("main"));
    }
}
