//! The governor config's `jira:` block: the Jira ticket lifecycle (issue 13).
//!
//! ```yaml
//! jira:
//!   url: https://example.atlassian.net   # else JIRA_URL
//!   project_key: SRE                      # else JIRA_PROJECT_KEY, else SRE (the original's default)
//!   issue_type: Task                      # default Task
//!   labels: [guardrail]                   # added to every issue, besides guardrail-incident-<id>
//!   priorities:                           # severity → Jira priority name; a severity left out
//!     critical: Highest                   # sets no priority (default: the four below)
//!     high: High
//!     medium: Medium
//!     low: Low
//!   resolve_transition: Done              # the transition taken when the incident is resolved
//!   timeout_seconds: 10
//! ```
//!
//! Credentials are never in this file: `JIRA_EMAIL` and `JIRA_API_TOKEN` (Basic auth, as the
//! original) come from the environment. Jira is on when this block is present or `JIRA_URL` is
//! set; nothing here can change a gate rule, an approver or an executor.

use std::collections::BTreeMap;
use std::path::Path;

use guardrail_core::remediation::Severity;
use serde::{Deserialize, Deserializer};

use crate::common::Diags;
use crate::de::{StringList, present};

/// The issue type when the block names none.
pub const DEFAULT_ISSUE_TYPE: &str = "Task";
/// The transition taken on resolution when the block names none.
pub const DEFAULT_RESOLVE_TRANSITION: &str = "Done";
/// Seconds one Jira call may take when the block says nothing (the original's 10 s).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;

/// The `jira:` block, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JiraConfig {
    /// The site, e.g. `https://example.atlassian.net` (`None`: `JIRA_URL`).
    pub url: Option<String>,
    /// Project key (`None`: `JIRA_PROJECT_KEY`, else [`JiraConfig::DEFAULT_PROJECT_KEY`]).
    pub project_key: Option<String>,
    /// Issue type name.
    pub issue_type: String,
    /// Labels on every issue.
    pub labels: Vec<String>,
    /// Jira priority name per severity.
    pub priorities: BTreeMap<Severity, String>,
    /// The transition (by name, case-insensitive) taken when the incident is resolved.
    pub resolve_transition: String,
    /// Seconds per call.
    pub timeout_seconds: u64,
}

impl JiraConfig {
    /// The project key when neither the block nor `JIRA_PROJECT_KEY` names one (the original's).
    pub const DEFAULT_PROJECT_KEY: &str = "SRE";
}

impl Default for JiraConfig {
    fn default() -> JiraConfig {
        JiraConfig {
            url: None,
            project_key: None,
            issue_type: DEFAULT_ISSUE_TYPE.into(),
            labels: Vec::new(),
            priorities: default_priorities(),
            resolve_transition: DEFAULT_RESOLVE_TRANSITION.into(),
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
        }
    }
}

/// Jira Cloud's default priority scheme, by severity.
fn default_priorities() -> BTreeMap<Severity, String> {
    [(Severity::Critical, "Highest"), (Severity::High, "High"), (Severity::Medium, "Medium"), (Severity::Low, "Low")]
        .into_iter()
        .map(|(s, p)| (s, p.to_string()))
        .collect()
}

/// The `jira:` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JiraSpec {
    #[serde(default, deserialize_with = "present")]
    url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    project_key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    issue_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    labels: Option<Labels>,
    #[serde(default, deserialize_with = "present")]
    priorities: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "present")]
    resolve_transition: Option<String>,
    #[serde(default, deserialize_with = "present")]
    timeout_seconds: Option<u64>,
}

#[derive(Debug)]
struct Labels(Vec<String>);

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(StringList("a list of Jira labels")).map(Labels)
    }
}

/// A Jira label: no whitespace (Jira splits on it), at most 255 characters.
pub fn valid_label(label: &str) -> bool {
    !label.is_empty() && label.len() <= 255 && !label.chars().any(char::is_whitespace)
}

/// A Jira project key: an upper-case letter, then upper-case letters, digits or `_`.
pub fn valid_project_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && key.len() <= 255
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Checks the block, reporting every problem through `d` (fields under `jira.`); `dir` is the
/// config file's directory, for relative paths.
pub(crate) fn read_jira(d: &mut Diags, spec: &JiraSpec, dir: Option<&Path>) -> JiraConfig {
    let _ = dir;
    let mut cfg = JiraConfig::default();
    if let Some(url) = &spec.url {
        let u = url.trim().trim_end_matches('/');
        if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() <= "https://".len() {
            d.error("jira.url", format!("{url:?} is not an http:// or https:// URL"));
        } else {
            cfg.url = Some(u.to_string());
        }
    }
    if let Some(k) = &spec.project_key {
        if valid_project_key(k.trim()) {
            cfg.project_key = Some(k.trim().to_string());
        } else {
            d.error("jira.project_key", format!("{k:?} is not a Jira project key (A-Z, then A-Z 0-9 _)"));
        }
    }
    if let Some(t) = &spec.issue_type {
        if t.trim().is_empty() {
            d.error("jira.issue_type", "must name an issue type");
        } else {
            cfg.issue_type = t.trim().to_string();
        }
    }
    if let Some(Labels(labels)) = &spec.labels {
        for (i, l) in labels.iter().enumerate() {
            if valid_label(l) {
                cfg.labels.push(l.clone());
            } else {
                d.error(
                    format!("jira.labels[{i}]"),
                    format!("{l:?} is not a Jira label (no spaces, 1-255 characters)"),
                );
            }
        }
    }
    if let Some(p) = &spec.priorities {
        cfg.priorities.clear();
        for (sev, name) in p {
            let field = format!("jira.priorities.{sev}");
            match Severity::ALL.into_iter().find(|s| s.as_str() == sev) {
                None => d.error(&field, format!("{sev:?} is not a severity ({})", Severity::NAMES)),
                Some(_) if name.trim().is_empty() => d.error(&field, "must name a Jira priority"),
                Some(s) => {
                    cfg.priorities.insert(s, name.trim().to_string());
                }
            }
        }
    }
    if let Some(t) = &spec.resolve_transition {
        if t.trim().is_empty() {
            d.error("jira.resolve_transition", "must name a transition");
        } else {
            cfg.resolve_transition = t.trim().to_string();
        }
    }
    if let Some(t) = spec.timeout_seconds {
        if t == 0 || t > crate::governor::MAX_TIMEOUT_SECONDS {
            d.error("jira.timeout_seconds", format!("must be 1..={}", crate::governor::MAX_TIMEOUT_SECONDS));
        } else {
            cfg.timeout_seconds = t;
        }
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Source, load_governor_file};

    fn load(text: &str) -> Result<crate::GovernorFile, Vec<String>> {
        load_governor_file(&Source::from_text("g.yaml", text))
            .map(|l| l.value)
            .map_err(|es| es.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn reads_the_block_with_defaults() {
        let f = load("approvals: {}\njira: {}\n").unwrap();
        assert_eq!(f.jira, Some(JiraConfig::default()));
        let f = load(
            "approvals: {}\njira:\n  url: https://x.atlassian.net/\n  project_key: OPS\n  issue_type: Incident\n  \
             labels: [guardrail, sre]\n  priorities: {critical: P1, high: P2}\n  resolve_transition: Resolved\n  \
             timeout_seconds: 5\n",
        )
        .unwrap();
        let j = f.jira.unwrap();
        assert_eq!(j.url.as_deref(), Some("https://x.atlassian.net"));
        assert_eq!(j.project_key.as_deref(), Some("OPS"));
        assert_eq!(
            (j.issue_type.as_str(), j.resolve_transition.as_str(), j.timeout_seconds),
            ("Incident", "Resolved", 5)
        );
        assert_eq!(j.labels, vec!["guardrail", "sre"]);
        assert_eq!(j.priorities.get(&Severity::Critical).map(String::as_str), Some("P1"));
        assert_eq!(j.priorities.get(&Severity::Low), None, "a severity left out sets no priority");
    }

    #[test]
    fn every_problem_is_reported_at_its_field() {
        let e = load(
            "approvals: {}\njira:\n  url: ftp://x\n  project_key: ops\n  labels: [\"two words\"]\n  \
             priorities: {urgent: P1}\n  timeout_seconds: 0\n  api_token: secret\n",
        )
        .unwrap_err()
        .join("\n");
        for field in [
            "jira.url",
            "jira.project_key",
            "jira.labels[0]",
            "jira.priorities.urgent",
            "jira.timeout_seconds",
            "api_token",
        ] {
            assert!(e.contains(field), "{field} missing in:\n{e}");
        }
    }

    #[test]
    fn the_notify_block() {
        let f = load("approvals: {}\nnotify: {max_attempts: 4, backoff_base_seconds: 10, backoff_cap_seconds: 60}\n")
            .unwrap();
        let n = f.notify.unwrap();
        assert_eq!((n.max_attempts, n.backoff_base_seconds, n.backoff_cap_seconds), (4, 10, 60));
        let e = load("approvals: {}\nnotify: {max_attempts: 0, backoff_base_seconds: 100, backoff_cap_seconds: 10}\n")
            .unwrap_err()
            .join("\n");
        assert!(e.contains("notify.max_attempts") && e.contains("notify.backoff_cap_seconds"), "{e}");
    }
}
