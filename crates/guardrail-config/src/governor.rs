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
//! leave a severity without approvers, nor grant anything); a severity left out lists nobody.
//! Nothing in this file can change a gate rule or threshold: it has no key for one.
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

use crate::common::{Diags, Format, Loaded, Unknown, check_keys, count, get, mapping, parse_as, string};
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
}

/// Reads a governor config file (YAML, or JSON when the name ends in `.json`).
pub fn load_governor_config(src: &Source) -> Result<Loaded<GovernorConfig>, Vec<ConfigError>> {
    load_governor_file(src).map(|l| Loaded { value: l.value.config, map: l.map, file: l.file, warnings: l.warnings })
}

/// [`load_governor_config`] with the `tokens:` key.
pub fn load_governor_file(src: &Source) -> Result<Loaded<GovernorFile>, Vec<ConfigError>> {
    let root = parse_as(src, Format::Yaml)?;
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

/// Reads and checks the governor config at `path`; every error names the file.
pub fn read_governor_config(path: &Path) -> Result<ReadGovernorConfig, Vec<String>> {
    let src = crate::read_source(path).map_err(|e| vec![e.to_string()])?;
    let loaded = load_governor_file(&src).map_err(|es| es.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    Ok(ReadGovernorConfig {
        file: loaded.value,
        path: path.to_path_buf(),
        sha256: src.sha256.clone(),
        warnings: loaded.warnings.iter().map(|w| w.to_string()).collect(),
    })
}

fn read(d: &mut Diags, root: &Node, dir: Option<&Path>) -> Option<GovernorFile> {
    let top = mapping(d, "", root)?;
    check_keys(d, "", top, &["approvals", "executor", "tokens", "version", "description"], Unknown::Error, |_| false);
    let mut cfg = GovernorConfig::default();
    let mut tokens = None;
    let mut ok = true;
    if let Some(n) = get(top, "tokens") {
        match string(d, "tokens", n) {
            Some(t) if !t.trim().is_empty() => {
                let p = PathBuf::from(t.trim());
                tokens = Some(match dir {
                    Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
                    _ => p,
                });
            }
            Some(_) => {
                d.error("tokens", "must name a tokens file (the format of `guardrail serve --tokens`)");
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = get(top, "approvals") {
        match read_approvals(d, n) {
            Some(a) => cfg.approvals = a,
            None => ok = false,
        }
    } else {
        d.warning("approvals", "is absent: nobody may approve or force-override anything");
    }
    if let Some(n) = get(top, "executor") {
        match read_executor(d, n) {
            Some(e) => cfg.executor = e,
            None => ok = false,
        }
    }
    (ok && !d.has_errors()).then_some(GovernorFile { config: cfg, tokens })
}

fn users(d: &mut Diags, path: &str, node: &Node) -> Option<Vec<String>> {
    let Some(items) = node.as_seq() else {
        d.error(path, format!("must be a list of user names, got {}", node.describe()));
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, n) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match string(d, &p, n) {
            Some(u) if valid_user(u.trim()) => {
                if out.iter().any(|x: &String| x.eq_ignore_ascii_case(u.trim())) {
                    d.warning(&p, format!("{u:?} is listed twice"));
                } else {
                    out.push(u.trim().to_string());
                }
            }
            Some(u) => {
                d.error(&p, format!("{u:?} is not a user name (1-64 of A-Z a-z 0-9 . _ @ -)"));
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_approvals(d: &mut Diags, node: &Node) -> Option<ApprovalPolicy> {
    let m = mapping(d, "approvals", node)?;
    let names: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    check_keys(d, "approvals", m, &names, Unknown::Error, |_| false);
    let mut policy = ApprovalPolicy::default();
    let mut ok = true;
    for sev in Severity::ALL {
        let p = format!("approvals.{}", sev.as_str());
        let Some(n) = get(m, sev.as_str()) else { continue };
        let Some(e) = mapping(d, &p, n) else {
            ok = false;
            continue;
        };
        check_keys(d, &p, e, &["approvers", "force_override"], Unknown::Error, |_| false);
        let mut a = SeverityApprovers::default();
        if let Some(n) = get(e, "approvers") {
            match users(d, &format!("{p}.approvers"), n) {
                Some(u) => a.approvers = u,
                None => ok = false,
            }
        }
        if let Some(n) = get(e, "force_override") {
            match users(d, &format!("{p}.force_override"), n) {
                Some(u) => a.force_override = u,
                None => ok = false,
            }
        }
        if sev == Severity::Critical && !a.approvers.is_empty() {
            d.warning(
                format!("{p}.approvers"),
                "is ignored: a critical incident refuses APPROVE and accepts only FORCE_OVERRIDE",
            );
        }
        *policy.for_severity_mut(sev) = a;
    }
    ok.then_some(policy)
}

fn read_executor(d: &mut Diags, node: &Node) -> Option<ExecutorSettings> {
    let m = mapping(d, "executor", node)?;
    check_keys(
        d,
        "executor",
        m,
        &["default", "timeout_seconds", "webhook_url", "webhook_ca_file", "commands"],
        Unknown::Error,
        |_| false,
    );
    let mut e = ExecutorSettings::default();
    let mut ok = true;
    if let Some(n) = get(m, "default") {
        match string(d, "executor.default", n).map(|s| (ExecutorKind::parse(&s), s)) {
            Some((Some(k), _)) => e.default = k,
            Some((None, s)) => {
                d.error("executor.default", format!("{s:?} is not one of dry-run, command, webhook"));
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = get(m, "timeout_seconds") {
        match count(d, "executor.timeout_seconds", n) {
            Some(t) if (1..=MAX_TIMEOUT_SECONDS).contains(&t) => e.timeout_seconds = t as u32,
            Some(t) => {
                d.error("executor.timeout_seconds", format!("{t} is outside 1-{MAX_TIMEOUT_SECONDS}"));
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = get(m, "webhook_url") {
        match string(d, "executor.webhook_url", n) {
            Some(u) => match crate::prometheus::check_url(&u).and_then(|()| no_credentials(&u)) {
                Ok(()) => e.webhook_url = Some(u),
                Err(reason) => {
                    d.error("executor.webhook_url", reason);
                    ok = false;
                }
            },
            None => ok = false,
        }
    }
    if let Some(n) = get(m, "webhook_ca_file") {
        match crate::prometheus::ca_file(d, "executor.webhook_ca_file", n) {
            Some(f) => e.webhook_ca_file = Some(f),
            None => ok = false,
        }
    }
    if let Some(n) = get(m, "commands") {
        match read_commands(d, n) {
            Some(c) => e.commands = c,
            None => ok = false,
        }
    }
    if e.default == ExecutorKind::Webhook && e.webhook_url.is_none() {
        d.error("executor.default", "is webhook but executor.webhook_url is not set");
        ok = false;
    }
    ok.then_some(e)
}

/// A webhook URL must not carry `user:password@`: it would be written into every execution
/// record.
fn no_credentials(url: &str) -> Result<(), String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("{url:?} carries credentials, which are not supported (they would be recorded)"));
    }
    Ok(())
}

fn read_commands(d: &mut Diags, node: &Node) -> Option<BTreeMap<String, Vec<String>>> {
    let m = mapping(d, "executor.commands", node)?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (action, n) in m {
        let p = format!("executor.commands.{action}");
        let Some(items) = n.as_seq() else {
            d.error(&p, format!("must be a list of arguments (argv, no shell), got {}", n.describe()));
            ok = false;
            continue;
        };
        let mut argv = Vec::new();
        for (i, a) in items.iter().enumerate() {
            match string(d, &format!("{p}[{i}]"), a) {
                Some(s) => argv.push(s),
                None => ok = false,
            }
        }
        for problem in check_template(&argv) {
            d.error(&p, problem);
            ok = false;
        }
        out.insert(action.clone(), argv);
    }
    ok.then_some(out)
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
}
