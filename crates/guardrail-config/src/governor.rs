//! The remediation governor's config file → [`GovernorConfig`]: who may approve or
//! force-override per severity, and how authorised actions are executed.
//!
//! ```yaml
//! approvals:
//!   high:     { approvers: [alice, bob], force_override: [carol] }
//!   critical: { force_override: [carol] }        # critical refuses APPROVE: approvers are ignored
//! tokens: tokens.yaml                            # optional: who is acting, by token (see below)
//! executor:
//!   default: dry-run                              # dry-run | command | webhook
//!   timeout_seconds: 30
//!   webhook_url: https://hooks.internal/remediate  # http:// or https://
//!   webhook_ca_file: certs/internal-ca.pem        # optional: PEM CA(s) to trust for https, besides
//!                                                 # the built-in roots; relative to this file
//!   commands:                                     # per canonical action id; argv, never a shell
//!     scale_worker_pool: [kubectl, scale, "deployment/{service}-workers", "--replicas=6"]
//! ```
//!
//! Every key is checked (unknown keys are errors: a misspelt `aprovers` must not silently
//! leave a severity without approvers, nor grant anything); a severity left out lists nobody,
//! but a key written with no value (`tokens:`) is an error, not an absent key.
//! Nothing in this file can change a gate rule or threshold: it has no key for one.
//!
//! This is one of Guardrail's own formats: it derives `Deserialize` and is read through
//! [`crate::de`] with the YAML 1.2 core schema (a user named `on` or `no` is a name, not a
//! boolean); the shape is checked by serde, then every value (user names, executor, URL, CA
//! file, command templates) is checked and all problems are reported together.
//!
//! `tokens:` names a tokens file (the format of `guardrail serve --tokens`,
//! [`crate::tokens`]), relative to this file's directory. With one, every governor command
//! needs a token and the identity and role are the token's; without one, the identity is the
//! OS account running the command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use guardrail_core::approval::{
    ApprovalPolicy, ExecutorKind, ExecutorSettings, GovernorConfig, SeverityApprovers, check_template, valid_user,
};
use guardrail_core::remediation::Severity;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use crate::common::{Diags, Loaded};
use crate::de::{StringList, from_node, parse_own, present};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::Node;

/// Longest timeout accepted, seconds.
pub const MAX_TIMEOUT_SECONDS: u64 = 600;

/// A governor config file: the config, and the tokens file it names (resolved against the
/// config file's directory), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GovernorFile {
    /// Approvers and executors.
    pub config: GovernorConfig,
    /// The `tokens:` file, if named.
    pub tokens: Option<PathBuf>,
    /// `planner:` (absent: the built-in planner, unless the environment or a flag says otherwise).
    pub planner: Option<crate::governor_planner::PlannerConfig>,
    /// `slack:` (absent: no Slack messages, `/slack/*` refuses).
    pub slack: Option<crate::governor_slack::SlackConfig>,
    /// `jira:` (absent: no Jira tickets).
    pub jira: Option<crate::governor_jira::JiraConfig>,
    /// `notify:` (absent: the outbox's default retries).
    pub notify: Option<crate::governor_notify::NotifyConfig>,
    /// `knowledge:` (absent: the SQLite knowledge file named on the command line).
    pub knowledge: Option<crate::governor_knowledge::KnowledgeConfig>,
    /// `audit_mirror:` (absent: no Elasticsearch copy of the audit records).
    pub audit_mirror: Option<crate::audit_mirror::AuditMirrorConfig>,
}

/// Reads a governor config file (YAML, or JSON when the name ends in `.json`).
pub fn load_governor_config(src: &Source) -> Result<Loaded<GovernorConfig>, Vec<ConfigError>> {
    load_governor_file(src).map(|l| Loaded { value: l.value.config, map: l.map, file: l.file, warnings: l.warnings })
}

/// [`load_governor_config`] with the `tokens:` key.
pub fn load_governor_file(src: &Source) -> Result<Loaded<GovernorFile>, Vec<ConfigError>> {
    let root = parse_own(src)?;
    let mut d = Diags::new(src, SourceMap::from_node(&root));
    let cfg = read(&mut d, &root, src.path.parent());
    d.finish(cfg)
}

/// A governor config read from disk, with what identifies it (for records and logs).
#[derive(Debug, Clone)]
pub struct ReadGovernorConfig {
    /// The config and its tokens file.
    pub file: GovernorFile,
    /// The path it was read from.
    pub path: PathBuf,
    /// The sha256 of its text.
    pub sha256: String,
    /// Warnings, as text (file, field, line).
    pub warnings: Vec<String>,
}

/// Reads and checks the governor config at `path`; every error names the file (and the field,
/// line and column when it is about one).
pub fn read_governor(path: &Path) -> Result<ReadGovernorConfig, Vec<ConfigError>> {
    let src = crate::read_source(path).map_err(|e| vec![e])?;
    let loaded = load_governor_file(&src)?;
    Ok(ReadGovernorConfig {
        file: loaded.value,
        path: path.to_path_buf(),
        sha256: src.sha256.clone(),
        warnings: loaded.warnings.iter().map(|w| w.to_string()).collect(),
    })
}

/// The file as written. Values are checked after deserializing ([`read`]), so that all of
/// their problems are reported, not only the first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GovernorSpec {
    #[serde(default, deserialize_with = "present")]
    approvals: Option<ApprovalsSpec>,
    #[serde(default, deserialize_with = "present")]
    executor: Option<ExecutorSpec>,
    #[serde(default, deserialize_with = "present")]
    tokens: Option<String>,
    #[serde(default, deserialize_with = "present")]
    planner: Option<crate::governor_planner::PlannerSpec>,
    #[serde(default, deserialize_with = "present")]
    slack: Option<crate::governor_slack::SlackSpec>,
    #[serde(default, deserialize_with = "present")]
    jira: Option<crate::governor_jira::JiraSpec>,
    #[serde(default, deserialize_with = "present")]
    notify: Option<crate::governor_notify::NotifySpec>,
    #[serde(default, deserialize_with = "present")]
    knowledge: Option<crate::governor_knowledge::KnowledgeSpec>,
    #[serde(default, deserialize_with = "present")]
    audit_mirror: Option<crate::audit_mirror::AuditMirrorSpec>,
    /// Free-form, for the people who keep the file.
    #[serde(default, rename = "version")]
    _version: Option<IgnoredAny>,
    #[serde(default, rename = "description")]
    _description: Option<IgnoredAny>,
}

/// `approvals:` (the keys are [`Severity::ALL`]'s names).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalsSpec {
    #[serde(default, deserialize_with = "present")]
    low: Option<SeveritySpec>,
    #[serde(default, deserialize_with = "present")]
    medium: Option<SeveritySpec>,
    #[serde(default, deserialize_with = "present")]
    high: Option<SeveritySpec>,
    #[serde(default, deserialize_with = "present")]
    critical: Option<SeveritySpec>,
}

impl ApprovalsSpec {
    fn get(&self, sev: Severity) -> Option<&SeveritySpec> {
        match sev {
            Severity::Low => self.low.as_ref(),
            Severity::Medium => self.medium.as_ref(),
            Severity::High => self.high.as_ref(),
            Severity::Critical => self.critical.as_ref(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeveritySpec {
    #[serde(default, deserialize_with = "present")]
    approvers: Option<UserNames>,
    #[serde(default, deserialize_with = "present")]
    force_override: Option<UserNames>,
}

/// A list of user names (checked by [`users`]).
#[derive(Debug)]
struct UserNames(Vec<String>);

impl<'de> Deserialize<'de> for UserNames {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(StringList("a list of user names")).map(UserNames)
    }
}

/// One action's command line.
#[derive(Debug)]
struct Argv(Vec<String>);

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(StringList("a list of arguments (argv, no shell)")).map(Argv)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutorSpec {
    #[serde(default, deserialize_with = "present")]
    default: Option<String>,
    #[serde(default, deserialize_with = "present")]
    timeout_seconds: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    webhook_url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    webhook_ca_file: Option<String>,
    #[serde(default, deserialize_with = "present")]
    commands: Option<BTreeMap<String, Argv>>,
}

/// Deserializes the file, then checks every value, collecting every problem.
fn read(d: &mut Diags, root: &Node, dir: Option<&Path>) -> Option<GovernorFile> {
    let spec: GovernorSpec = from_node(d, root)?;
    let mut cfg = GovernorConfig::default();
    let mut tokens = None;
    if let Some(t) = &spec.tokens {
        if t.trim().is_empty() {
            d.error("tokens", "must name a tokens file (the format of `guardrail serve --tokens`)");
        } else {
            let p = PathBuf::from(t.trim());
            tokens = Some(match dir {
                Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
                _ => p,
            });
        }
    }
    match &spec.approvals {
        Some(a) => cfg.approvals = read_approvals(d, a),
        None => d.warning("approvals", "is absent: nobody may approve or force-override anything"),
    }
    if let Some(e) = &spec.executor {
        cfg.executor = read_executor(d, e);
    }
    let planner = spec.planner.as_ref().map(|p| crate::governor_planner::read_planner(d, p, dir));
    let slack = spec.slack.as_ref().map(|p| crate::governor_slack::read_slack(d, p, dir));
    let jira = spec.jira.as_ref().map(|p| crate::governor_jira::read_jira(d, p, dir));
    let notify = spec.notify.as_ref().map(|p| crate::governor_notify::read_notify(d, p, dir));
    let knowledge = spec.knowledge.as_ref().map(|p| crate::governor_knowledge::read_knowledge(d, p, dir));
    let audit_mirror =
        spec.audit_mirror.as_ref().and_then(|p| crate::audit_mirror::read_audit_mirror(d, p, knowledge.as_ref()));
    (!d.has_errors()).then_some(GovernorFile {
        config: cfg,
        tokens,
        planner,
        slack,
        jira,
        notify,
        knowledge,
        audit_mirror,
    })
}

fn users(d: &mut Diags, path: &str, names: &UserNames) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, u) in names.0.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if !valid_user(u.trim()) {
            d.error(&p, format!("{u:?} is not a user name (1-64 of A-Z a-z 0-9 . _ @ -)"));
        } else if out.iter().any(|x| x.eq_ignore_ascii_case(u.trim())) {
            d.warning(&p, format!("{u:?} is listed twice"));
        } else {
            out.push(u.trim().to_string());
        }
    }
    out
}

fn read_approvals(d: &mut Diags, spec: &ApprovalsSpec) -> ApprovalPolicy {
    let mut policy = ApprovalPolicy::default();
    for sev in Severity::ALL {
        let Some(e) = spec.get(sev) else { continue };
        let p = format!("approvals.{}", sev.as_str());
        let mut a = SeverityApprovers::default();
        if let Some(u) = &e.approvers {
            a.approvers = users(d, &format!("{p}.approvers"), u);
        }
        if let Some(u) = &e.force_override {
            a.force_override = users(d, &format!("{p}.force_override"), u);
        }
        if sev == Severity::Critical && !a.approvers.is_empty() {
            d.warning(
                format!("{p}.approvers"),
                "is ignored: a critical incident refuses APPROVE and accepts only FORCE_OVERRIDE",
            );
        }
        *policy.for_severity_mut(sev) = a;
    }
    policy
}

fn read_executor(d: &mut Diags, spec: &ExecutorSpec) -> ExecutorSettings {
    let mut e = ExecutorSettings::default();
    if let Some(s) = &spec.default {
        match ExecutorKind::parse(s) {
            Some(k) => e.default = k,
            None => d.error("executor.default", format!("{s:?} is not one of dry-run, command, webhook")),
        }
    }
    if let Some(t) = spec.timeout_seconds {
        if (1..=MAX_TIMEOUT_SECONDS).contains(&t) {
            e.timeout_seconds = t as u32;
        } else {
            d.error("executor.timeout_seconds", format!("{t} is outside 1-{MAX_TIMEOUT_SECONDS}"));
        }
    }
    if let Some(u) = &spec.webhook_url {
        let problem = match crate::prometheus::check_url(u) {
            Err(e) => Some(e.to_string()),
            Ok(()) => no_credentials(u).err().map(|e| e.to_string()),
        };
        match problem {
            None => e.webhook_url = Some(u.clone()),
            Some(reason) => d.error("executor.webhook_url", reason),
        }
    }
    if let Some(f) = &spec.webhook_ca_file {
        e.webhook_ca_file = crate::prometheus::ca_file_text(d, "executor.webhook_ca_file", f);
    }
    if let Some(commands) = &spec.commands {
        for (action, Argv(argv)) in commands {
            for problem in check_template(argv) {
                d.error(format!("executor.commands.{action}"), problem.to_string());
            }
            e.commands.insert(action.clone(), argv.clone());
        }
    }
    if e.default == ExecutorKind::Webhook && spec.webhook_url.is_none() {
        d.error("executor.default", "is webhook but executor.webhook_url is not set");
    }
    e
}

/// A webhook URL with `user:password@`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} carries credentials, which are not supported (they would be recorded)")]
struct CarriesCredentials {
    url: String,
}

/// A webhook URL must not carry `user:password@`: it would be written into every execution
/// record.
fn no_credentials(url: &str) -> Result<(), CarriesCredentials> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(CarriesCredentials { url: url.to_string() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, text: &str) -> Result<GovernorConfig, Vec<String>> {
        load_governor_config(&Source::from_text(name, text))
            .map(|l| l.value)
            .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn reads_approvers_and_executors() {
        let cfg = load(
            "g.yaml",
            "approvals:\n  high: {approvers: [alice, bob], force_override: [carol]}\n  critical: {force_override: [carol]}\nexecutor:\n  default: command\n  commands:\n    scale_worker_pool: [echo, '{service}']\n",
        )
        .unwrap();
        assert_eq!(cfg.approvals.high.approvers, ["alice", "bob"]);
        assert!(cfg.approvals.low.approvers.is_empty());
        assert_eq!(cfg.executor.default, ExecutorKind::Command);
        assert_eq!(cfg.executor.commands["scale_worker_pool"], ["echo", "{service}"]);
    }

    #[test]
    fn tokens_key_is_relative_to_the_config_file() {
        let f =
            load_governor_file(&Source::from_text("/etc/guardrail/governor.yaml", "tokens: tokens.yaml\n")).unwrap();
        assert_eq!(f.value.tokens, Some(PathBuf::from("/etc/guardrail/tokens.yaml")));
        let f = load_governor_file(&Source::from_text("g.yaml", "tokens: /srv/t.yaml\n")).unwrap();
        assert_eq!(f.value.tokens, Some(PathBuf::from("/srv/t.yaml")));
        let f = load_governor_file(&Source::from_text("g.yaml", "approvals: {}\n")).unwrap();
        assert_eq!(f.value.tokens, None);
        let e = load_governor_file(&Source::from_text("g.yaml", "tokens: ''\n")).unwrap_err();
        assert!(e[0].to_string().contains("tokens"), "{e:?}");
        let e = load_governor_file(&Source::from_text("g.yaml", "tokens: [a]\n")).unwrap_err();
        assert!(e[0].to_string().contains("tokens"), "{e:?}");
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = load("g.yaml", "approvals:\n  high: {aprovers: [alice]}\n").unwrap_err();
        assert!(e[0].contains("g.yaml:2") && e[0].contains("approvals.high.aprovers"), "{e:?}");
        let e = load("g.yaml", "approvals:\n  urgent: {approvers: [a]}\n").unwrap_err();
        assert!(e[0].contains("approvals.urgent"), "{e:?}");
        let e = load("g.yaml", "approvals:\n  low: {approvers: ['a b']}\n").unwrap_err();
        assert!(e[0].contains("approvals.low.approvers[0]"), "{e:?}");
        let e = load("g.yaml", "executor:\n  commands:\n    x: [sh, '{command}']\n").unwrap_err();
        assert!(e[0].contains("executor.commands.x") && e[0].contains("{command}"), "{e:?}");
        let e = load("g.yaml", "executor: {default: webhook}\n").unwrap_err();
        assert!(e[0].contains("webhook_url"), "{e:?}");
        let e = load("g.yaml", "block_at_contradictions: 99\n").unwrap_err();
        assert!(e[0].contains("block_at_contradictions"), "{e:?}");
        let e = load("g.json", "{\"approvals\": ").unwrap_err();
        assert!(e[0].contains("g.json"), "{e:?}");
    }

    #[test]
    fn webhook_https_and_ca_file_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("certs/ca.pem"), cert).unwrap();
        let path = dir.path().join("governor.yaml");
        let text =
            "executor:\n  default: webhook\n  webhook_url: https://hooks.internal/x\n  webhook_ca_file: certs/ca.pem\n";
        let cfg = load_governor_config(&Source::from_text(path.to_str().unwrap(), text)).unwrap().value;
        assert_eq!(cfg.executor.webhook_url.as_deref(), Some("https://hooks.internal/x"));
        assert_eq!(cfg.executor.webhook_ca_file, Some(dir.path().join("certs/ca.pem")));
        // A missing CA file, another scheme, credentials: errors at the field.
        let text = "executor:\n  webhook_url: https://h/x\n  webhook_ca_file: nope.pem\n";
        let e = load_governor_config(&Source::from_text(path.to_str().unwrap(), text)).unwrap_err();
        assert!(
            e[0].to_string().contains("executor.webhook_ca_file") && e[0].to_string().contains("nope.pem"),
            "{e:?}"
        );
        for url in ["ftp://h/x", "https://u:p@h/x", "https://"] {
            let e = load("g.yaml", &format!("executor: {{webhook_url: '{url}'}}\n")).unwrap_err();
            assert!(e[0].contains("executor.webhook_url"), "{url}: {e:?}");
        }
    }

    /// Own format: YAML 1.2 core schema, every problem of the file in one report, each with
    /// its line and column, and `null` is not "absent".
    #[test]
    fn every_problem_is_reported_with_its_position_in_yaml_1_2() {
        let cfg = load("g.yaml", "approvals:\n  high: {approvers: [on, 'off'], force_override: [yes]}\n").unwrap();
        assert_eq!(cfg.approvals.high.approvers, ["on", "off"]);
        assert_eq!(cfg.approvals.high.force_override, ["yes"]);
        let text = "approvals:\n  high:\n    aprovers: [alice]\n    force_override: [carol, 'b c']\n  \
                    urgent: {}\nexecutor:\n  default: webhok\n  timeout_seconds: 0\n  commands:\n    \
                    restart: restart-it\n";
        let e = load("g.yaml", text).unwrap_err();
        assert_eq!(
            e,
            [
                "g.yaml:3:5: approvals.high.aprovers: unknown key \"aprovers\"; did you mean \"approvers\"?",
                "g.yaml:5:3: approvals.urgent: unknown key \"urgent\"",
                "g.yaml:10:5: executor.commands.restart: must be a list of arguments (argv, no shell), got the string \"restart-it\"",
            ]
        );
        // Past the shape, every value is checked.
        let text =
            "approvals:\n  high:\n    approvers: [alice, 'b c']\nexecutor:\n  default: webhok\n  timeout_seconds: 0\n";
        let e = load("g.yaml", text).unwrap_err();
        assert_eq!(
            e,
            [
                "g.yaml:3:24: approvals.high.approvers[1]: \"b c\" is not a user name (1-64 of A-Z a-z 0-9 . _ @ -)",
                "g.yaml:5:3: executor.default: \"webhok\" is not one of dry-run, command, webhook",
                "g.yaml:6:3: executor.timeout_seconds: 0 is outside 1-600",
            ]
        );
        let e = load("g.yaml", "approvals:\n  high: {approvers: alice}\n").unwrap_err();
        assert_eq!(
            e,
            ["g.yaml:2:10: approvals.high.approvers: must be a list of user names, got the string \"alice\""]
        );
        let e = load("g.yaml", "executor: {timeout_seconds: '30'}\n").unwrap_err();
        assert_eq!(e, ["g.yaml:1:12: executor.timeout_seconds: must be a whole number, got the string \"30\""]);
        // An empty key is not an absent one: `tokens:` must not quietly fall back to the OS account.
        let e = load("g.yaml", "tokens:\napprovals: {}\n").unwrap_err();
        assert_eq!(e, ["g.yaml:1:1: tokens: must be a string, got null"]);
        let e = load("g.yaml", "approvals:\n").unwrap_err();
        assert_eq!(e, ["g.yaml:1:1: approvals: must be a mapping, got null"]);
        let e = load("g.json", "{\"approvals\": {\"low\": {\"approvers\": [1]}}}").unwrap_err();
        assert_eq!(e, ["g.json:1:38: approvals.low.approvers[0]: must be a string, got the integer 1"]);
    }
}
