//! Approvals and execution authorisation for the remediation governor. Pure: no I/O, no clock.
//!
//! A blocked remediation waits for a person. Whether a person's approval releases it is
//! decided here, by [`decide_approval`], from three things only: the pending request (what was
//! gated, for which severity, proposed by whom, bound to which hash), the attempt (who, which
//! kind, which reason, which plan hash they reviewed) and the [`ApprovalPolicy`] from
//! configuration. No incident, plan or tool text takes part in the decision.
//!
//! **Binding.** Every gated plan has a [`binding_hash`]: the sha256 of the canonical JSON of
//! `{"action", "incident", "plan"}` (sorted keys, no whitespace; the same canonical form as the
//! audit chain). An approval names that hash; at execution time the hash is recomputed from the
//! action about to run ([`authorise_execution`]), so a plan or action that changed after the
//! gate is never run on an old approval: it goes back through the gate.
//!
//! **Rules** (in this order; the first that applies refuses):
//! 1. the approver is a valid user name (1–64 of `A–Z a–z 0–9 . _ @ -`);
//! 2. the proposer cannot approve or override their own plan (names compare case-insensitively);
//! 3. the plan the approver reviewed is the one that was gated, and the plan on record still
//!    hashes to it;
//! 4. a critical incident, or a block the gate marked `requires_force_override`, refuses
//!    APPROVE: only FORCE_OVERRIDE releases it;
//! 5. FORCE_OVERRIDE needs a non-empty reason;
//! 6. the approver is listed for the incident's severity: in `approvers` for APPROVE, in
//!    `force_override` for FORCE_OVERRIDE.
//!
//! An empty list means nobody: a missing configuration can only refuse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::remediation::{Incident, PlanOutput, Severity};

/// The two ways a person can release a blocked action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// An ordinary approval (refused for critical incidents).
    Approve,
    /// FORCE_OVERRIDE: releases even a critical block; needs a reason.
    ForceOverride,
}

impl ApprovalKind {
    /// `approve` or `force_override`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalKind::Approve => "approve",
            ApprovalKind::ForceOverride => "force_override",
        }
    }
}

/// Who may release a block of one severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityApprovers {
    /// May APPROVE (ignored for critical incidents, which only FORCE_OVERRIDE releases).
    pub approvers: Vec<String>,
    /// May FORCE_OVERRIDE (with a reason).
    pub force_override: Vec<String>,
}

/// Approvers per severity, from configuration. [`ApprovalPolicy::default`] lists nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// Low severity.
    pub low: SeverityApprovers,
    /// Medium severity.
    pub medium: SeverityApprovers,
    /// High severity.
    pub high: SeverityApprovers,
    /// Critical severity.
    pub critical: SeverityApprovers,
}

impl ApprovalPolicy {
    /// The approvers for one severity.
    pub fn for_severity(&self, s: Severity) -> &SeverityApprovers {
        match s {
            Severity::Low => &self.low,
            Severity::Medium => &self.medium,
            Severity::High => &self.high,
            Severity::Critical => &self.critical,
        }
    }

    /// Mutable access for loaders.
    pub fn for_severity_mut(&mut self, s: Severity) -> &mut SeverityApprovers {
        match s {
            Severity::Low => &mut self.low,
            Severity::Medium => &mut self.medium,
            Severity::High => &mut self.high,
            Severity::Critical => &mut self.critical,
        }
    }
}

/// Which executor runs an authorised action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    /// Records what would run; runs nothing (the default).
    #[default]
    DryRun,
    /// Runs the action's command template (argv, never a shell).
    Command,
    /// POSTs the action as JSON to a webhook.
    Webhook,
}

impl ExecutorKind {
    /// `dry-run`, `command` or `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::DryRun => "dry-run",
            ExecutorKind::Command => "command",
            ExecutorKind::Webhook => "webhook",
        }
    }

    /// Parses [`ExecutorKind::as_str`].
    pub fn parse(s: &str) -> Option<ExecutorKind> {
        match s {
            "dry-run" => Some(ExecutorKind::DryRun),
            "command" => Some(ExecutorKind::Command),
            "webhook" => Some(ExecutorKind::Webhook),
            _ => None,
        }
    }
}

/// Executor settings, from configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorSettings {
    /// The executor used unless the command line picks another.
    pub default: ExecutorKind,
    /// Command templates per canonical action id: argv, with `{param}` placeholders from
    /// [`TEMPLATE_PARAMS`] only.
    pub commands: BTreeMap<String, Vec<String>>,
    /// The webhook URL (`http://` or `https://host[:port]/path`).
    pub webhook_url: Option<String>,
    /// A PEM file of CA certificates the webhook executor trusts for `https://`, besides the
    /// compiled-in Mozilla roots (resolved against the config file's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_ca_file: Option<std::path::PathBuf>,
    /// Longest a command or webhook call may take, seconds.
    pub timeout_seconds: u32,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            default: ExecutorKind::DryRun,
            commands: BTreeMap::new(),
            webhook_url: None,
            webhook_ca_file: None,
            timeout_seconds: 30,
        }
    }
}

/// The governor's configuration file: approvers and executors. Thresholds and gate rules are
/// not in it and cannot be.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernorConfig {
    /// Who may approve or force-override, per severity.
    pub approvals: ApprovalPolicy,
    /// How authorised actions run.
    pub executor: ExecutorSettings,
}

/// The only parameters a command template may use. Their values come from the gated incident
/// and action, which are validated names (never free text).
pub const TEMPLATE_PARAMS: &[&str] = &["incident_id", "service", "severity", "action"];

/// A command template that cannot be used, or a value that cannot be put into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// No argv at all.
    #[error("the command is empty")]
    EmptyCommand,
    /// An empty first argument.
    #[error("the program (first argument) is empty")]
    EmptyProgram,
    /// A `{param}` in the program position.
    #[error("the program (first argument) cannot be a parameter")]
    ParameterAsProgram,
    /// A `}` with no `{` before it.
    #[error("argument {arg:?} has a '}}' without a '{{'")]
    UnopenedBrace {
        /// The argument.
        arg: String,
    },
    /// A `{` with no `}` after it.
    #[error("argument {arg:?} has a '{{' without a '}}'")]
    UnclosedBrace {
        /// The argument.
        arg: String,
    },
    /// A parameter other than [`TEMPLATE_PARAMS`].
    #[error(
        "argument {arg:?} uses the parameter {{{name}}}; only {} are allowed",
        TEMPLATE_PARAMS.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ")
    )]
    UnknownParameter {
        /// The argument.
        arg: String,
        /// The parameter's name.
        name: String,
    },
    /// Every problem of a template ([`check_template`]), refused as one.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Template(Vec<TemplateError>),
    /// A parameter the action gives no value for.
    #[error("parameter {{{name}}} has no value")]
    NoValue {
        /// The parameter's name.
        name: String,
    },
    /// A value that could become an option or carry shell syntax.
    #[error("parameter {{{name}}} = {value:?} is not a plain name; refusing to run")]
    NotPlain {
        /// The parameter's name.
        name: String,
        /// Its value.
        value: String,
    },
}

/// Splits a template argument into literal text and `{param}` names, refusing unknown
/// parameters, unbalanced braces and empty names.
fn template_parts(arg: &str) -> Result<Vec<(bool, String)>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(TemplateError::UnopenedBrace { arg: arg.to_string() });
        }
        let (lit, tail) = rest.split_at(open);
        if !lit.is_empty() {
            parts.push((false, lit.to_string()));
        }
        let Some(close) = tail.find('}') else {
            return Err(TemplateError::UnclosedBrace { arg: arg.to_string() });
        };
        let name = &tail[1..close];
        if !TEMPLATE_PARAMS.contains(&name) {
            return Err(TemplateError::UnknownParameter { arg: arg.to_string(), name: name.to_string() });
        }
        parts.push((true, name.to_string()));
        rest = &tail[close + 1..];
    }
    if !rest.is_empty() {
        parts.push((false, rest.to_string()));
    }
    Ok(parts)
}

/// Problems with a command template (empty argv, empty program, a parameter in the program
/// position, unknown parameters); empty when it is usable.
pub fn check_template(argv: &[String]) -> Vec<TemplateError> {
    let mut out = Vec::new();
    match argv.first() {
        None => out.push(TemplateError::EmptyCommand),
        Some(p) if p.trim().is_empty() => out.push(TemplateError::EmptyProgram),
        Some(p) if p.contains(['{', '}']) => out.push(TemplateError::ParameterAsProgram),
        Some(_) => {}
    }
    for a in argv {
        if let Err(e) = template_parts(a) {
            out.push(e);
        }
    }
    out
}

/// Fills a command template. Every value must be a plain name (letters, digits, `- _ . : /`,
/// not starting with `-`), so no value can become an option or carry shell syntax; the result
/// is an argv for direct execution, never a shell line.
pub fn fill_template(argv: &[String], params: &BTreeMap<&str, &str>) -> Result<Vec<String>, TemplateError> {
    let problems = check_template(argv);
    if !problems.is_empty() {
        return Err(TemplateError::Template(problems));
    }
    let mut out = Vec::with_capacity(argv.len());
    for a in argv {
        let mut s = String::new();
        for (is_param, text) in template_parts(a)? {
            if !is_param {
                s.push_str(&text);
                continue;
            }
            let v = params.get(text.as_str()).ok_or_else(|| TemplateError::NoValue { name: text.clone() })?;
            let plain = !v.is_empty()
                && !v.starts_with('-')
                && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'));
            if !plain {
                return Err(TemplateError::NotPlain { name: text, value: (*v).to_string() });
            }
            s.push_str(v);
        }
        out.push(s);
    }
    Ok(out)
}

/// [`fill_template`] with the error as text.
// Transitional: guardrail-governor's execute.rs records the message; remove once it takes
// `TemplateError`.
pub fn render_template(argv: &[String], params: &BTreeMap<&str, &str>) -> Result<Vec<String>, String> {
    fill_template(argv, params).map_err(|e| e.to_string())
}

/// sha256 (hex) of the canonical JSON of `{"action", "incident", "plan"}`: what an approval is
/// bound to and what execution re-checks.
pub fn binding_hash(incident: &Incident, plan: &PlanOutput, action: &str) -> String {
    let v = serde_json::json!({ "action": action, "incident": incident, "plan": plan });
    // Serialising a Value cannot fail; keys are sorted (no preserve_order in this workspace).
    hex::encode(Sha256::digest(serde_json::to_vec(&v).unwrap_or_default()))
}

/// True for a user name Guardrail accepts: 1–64 characters of `A–Z a–z 0–9 . _ @ -`.
pub fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
}

fn same_user(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// A blocked action waiting for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// Incident id.
    pub incident_id: String,
    /// Incident severity.
    pub severity: Severity,
    /// Who asked for the remediation (the `--as` of `incident run`).
    pub proposer: String,
    /// The gated action.
    pub action: String,
    /// [`binding_hash`] of the gated incident, plan and action.
    pub binding_hash: String,
    /// The gate said only FORCE_OVERRIDE releases it.
    pub requires_force_override: bool,
}

/// One person's attempt to release a pending action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAttempt {
    /// Approve or force-override.
    pub kind: ApprovalKind,
    /// Who.
    pub approver: String,
    /// Why (required for FORCE_OVERRIDE).
    pub reason: Option<String>,
    /// The plan hash the approver reviewed, when they named one (a full hash or a prefix of at
    /// least 12 hex digits); `None` approves the pending request as recorded.
    pub reviewed_hash: Option<String>,
    /// [`binding_hash`] recomputed now from the plan and action on record.
    pub recorded_hash: String,
}

/// Why an approval was refused. Serialises as a snake_case code for the audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ApprovalRefusal {
    /// Not a valid user name.
    #[error("approver {approver:?} is not a valid user name (1-64 of A-Z a-z 0-9 . _ @ -)")]
    InvalidApprover {
        /// As given.
        approver: String,
    },
    /// The proposer tried to approve their own plan.
    #[error("{approver} proposed this remediation and cannot approve it; another person must")]
    SelfApproval {
        /// Who.
        approver: String,
    },
    /// The plan the approver reviewed, or the plan on record, is not the one gated.
    #[error(
        "the plan changed: the gated plan has hash {gated}, but {which} has hash {found}; review the current plan (guardrail incident show) and approve that"
    )]
    PlanChanged {
        /// The hash the request was bound to.
        gated: String,
        /// The other hash.
        found: String,
        /// `the plan you reviewed` or `the plan on record`.
        which: String,
    },
    /// APPROVE where only FORCE_OVERRIDE releases.
    #[error("{why}: APPROVE is refused; only --force-override with a reason releases it")]
    ForceOverrideRequired {
        /// Why.
        why: String,
    },
    /// FORCE_OVERRIDE without a reason.
    #[error("FORCE_OVERRIDE needs a non-empty --reason")]
    ReasonRequired,
    /// The approver is not listed for this severity and kind.
    #[error(
        "{approver} may not {kind} {severity} incidents (not listed in approvals.{severity}.{list} of the governor config)"
    )]
    NotAuthorised {
        /// Who.
        approver: String,
        /// `approve` or `force_override`.
        kind: String,
        /// Severity.
        severity: Severity,
        /// The config list consulted.
        list: String,
    },
}

impl ApprovalRefusal {
    /// The snake_case code, as in the audit record.
    pub fn code(&self) -> &'static str {
        match self {
            ApprovalRefusal::InvalidApprover { .. } => "invalid_approver",
            ApprovalRefusal::SelfApproval { .. } => "self_approval",
            ApprovalRefusal::PlanChanged { .. } => "plan_changed",
            ApprovalRefusal::ForceOverrideRequired { .. } => "force_override_required",
            ApprovalRefusal::ReasonRequired => "reason_required",
            ApprovalRefusal::NotAuthorised { .. } => "not_authorised",
        }
    }
}

/// A granted approval: what it releases and who released it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalGrant {
    /// Approve or force-override.
    pub kind: ApprovalKind,
    /// Who.
    pub approver: String,
    /// Why, trimmed (always present for FORCE_OVERRIDE).
    pub reason: Option<String>,
    /// The action released.
    pub action: String,
    /// The hash it is bound to.
    pub binding_hash: String,
}

/// Smallest hash prefix an approver may type.
pub const MIN_REVIEWED_PREFIX: usize = 12;

fn hash_matches(full: &str, given: &str) -> bool {
    let g = given.trim().to_ascii_lowercase();
    g.len() >= MIN_REVIEWED_PREFIX
        && g.len() <= full.len()
        && g.chars().all(|c| c.is_ascii_hexdigit())
        && full.starts_with(&g)
}

/// Decides one approval attempt (rules in the module documentation).
pub fn decide_approval(
    pending: &PendingApproval,
    attempt: &ApprovalAttempt,
    policy: &ApprovalPolicy,
) -> Result<ApprovalGrant, ApprovalRefusal> {
    let approver = attempt.approver.trim();
    if !valid_user(approver) {
        return Err(ApprovalRefusal::InvalidApprover { approver: attempt.approver.clone() });
    }
    if same_user(approver, &pending.proposer) {
        return Err(ApprovalRefusal::SelfApproval { approver: approver.to_string() });
    }
    if let Some(reviewed) = &attempt.reviewed_hash
        && !hash_matches(&pending.binding_hash, reviewed)
    {
        return Err(ApprovalRefusal::PlanChanged {
            gated: pending.binding_hash.clone(),
            found: reviewed.trim().to_string(),
            which: "the plan you reviewed".into(),
        });
    }
    if attempt.recorded_hash != pending.binding_hash {
        return Err(ApprovalRefusal::PlanChanged {
            gated: pending.binding_hash.clone(),
            found: attempt.recorded_hash.clone(),
            which: "the plan on record".into(),
        });
    }
    if attempt.kind == ApprovalKind::Approve {
        if pending.severity == Severity::Critical {
            return Err(ApprovalRefusal::ForceOverrideRequired { why: "the incident is critical".into() });
        }
        if pending.requires_force_override {
            return Err(ApprovalRefusal::ForceOverrideRequired {
                why: "the gate requires FORCE_OVERRIDE for this block".into(),
            });
        }
    }
    let reason = attempt.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
    if attempt.kind == ApprovalKind::ForceOverride && reason.is_none() {
        return Err(ApprovalRefusal::ReasonRequired);
    }
    let listed = policy.for_severity(pending.severity);
    let (list, name) = match attempt.kind {
        ApprovalKind::Approve => (&listed.approvers, "approvers"),
        ApprovalKind::ForceOverride => (&listed.force_override, "force_override"),
    };
    if !list.iter().any(|u| same_user(u, approver)) {
        return Err(ApprovalRefusal::NotAuthorised {
            approver: approver.to_string(),
            kind: attempt.kind.as_str().replace('_', "-"),
            severity: pending.severity,
            list: name.into(),
        });
    }
    Ok(ApprovalGrant {
        kind: attempt.kind,
        approver: approver.to_string(),
        reason,
        action: pending.action.clone(),
        binding_hash: pending.binding_hash.clone(),
    })
}

/// Why an action may not run on an authorisation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "action {action} does not match what was authorised (hash {found}, authorised {authorised}); it must go through the gate again"
)]
pub struct ExecutionMismatch {
    /// The action asked for.
    pub action: String,
    /// Its hash.
    pub found: String,
    /// The authorised hash.
    pub authorised: String,
}

/// Checks, at execution time, that `action` for `incident` and `plan` is exactly what was
/// authorised (by the gate or by an approval). Returns the hash.
pub fn authorise_execution(
    authorised_hash: &str,
    incident: &Incident,
    plan: &PlanOutput,
    action: &str,
) -> Result<String, ExecutionMismatch> {
    let found = binding_hash(incident, plan, action);
    if found == authorised_hash {
        Ok(found)
    } else {
        Err(ExecutionMismatch { action: action.to_string(), found, authorised: authorised_hash.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(sev: Severity) -> Incident {
        Incident {
            id: "inc-1".into(),
            service: "payments-api".into(),
            severity: sev,
            summary: "latency".into(),
            symptoms: "timeouts".into(),
        }
    }

    fn plan(action: &str) -> PlanOutput {
        PlanOutput {
            incident_id: "inc-1".into(),
            proposed_action: action.into(),
            rationale: "r".into(),
            key_claims: vec!["c".into()],
            confidence_initial: 5.0,
            retrieved_context_ids: vec![],
        }
    }

    fn policy() -> ApprovalPolicy {
        let mut p = ApprovalPolicy::default();
        for s in Severity::ALL {
            *p.for_severity_mut(s) = SeverityApprovers {
                approvers: vec!["alice".into(), "bob".into()],
                force_override: vec!["carol".into()],
            };
        }
        p
    }

    fn pending(sev: Severity) -> PendingApproval {
        let (i, p) = (incident(sev), plan("restart_api_pods"));
        PendingApproval {
            incident_id: "inc-1".into(),
            severity: sev,
            proposer: "alice".into(),
            action: "restart_api_pods".into(),
            binding_hash: binding_hash(&i, &p, "restart_api_pods"),
            requires_force_override: sev == Severity::Critical,
        }
    }

    fn attempt(p: &PendingApproval, kind: ApprovalKind, who: &str, reason: Option<&str>) -> ApprovalAttempt {
        ApprovalAttempt {
            kind,
            approver: who.into(),
            reason: reason.map(str::to_string),
            reviewed_hash: None,
            recorded_hash: p.binding_hash.clone(),
        }
    }

    #[test]
    fn another_listed_person_may_approve() {
        let p = pending(Severity::High);
        let g = decide_approval(&p, &attempt(&p, ApprovalKind::Approve, "bob", None), &policy()).unwrap();
        assert_eq!(g.approver, "bob");
        assert_eq!(g.binding_hash, p.binding_hash);
        assert_eq!(g.action, "restart_api_pods");
    }

    #[test]
    fn self_approval_is_refused_case_insensitively() {
        let p = pending(Severity::High);
        for who in ["alice", "ALICE", " Alice "] {
            let e = decide_approval(&p, &attempt(&p, ApprovalKind::Approve, who, None), &policy()).unwrap_err();
            assert_eq!(e.code(), "self_approval", "{who}");
        }
        // Not even with a force-override.
        let mut pol = policy();
        pol.high.force_override.push("alice".into());
        let e = decide_approval(&p, &attempt(&p, ApprovalKind::ForceOverride, "alice", Some("x")), &pol).unwrap_err();
        assert_eq!(e.code(), "self_approval");
    }

    #[test]
    fn critical_refuses_approve_and_needs_a_reasoned_override() {
        let p = pending(Severity::Critical);
        let mut pol = policy();
        pol.critical.approvers.push("dave".into());
        let e = decide_approval(&p, &attempt(&p, ApprovalKind::Approve, "dave", None), &pol).unwrap_err();
        assert_eq!(e.code(), "force_override_required");
        for reason in [None, Some(""), Some("   ")] {
            let e = decide_approval(&p, &attempt(&p, ApprovalKind::ForceOverride, "carol", reason), &pol).unwrap_err();
            assert_eq!(e, ApprovalRefusal::ReasonRequired);
        }
        let g = decide_approval(&p, &attempt(&p, ApprovalKind::ForceOverride, "carol", Some(" db ok ")), &pol).unwrap();
        assert_eq!(g.reason.as_deref(), Some("db ok"));
        assert_eq!(g.kind, ApprovalKind::ForceOverride);
    }

    #[test]
    fn gate_marked_force_override_refuses_approve_at_any_severity() {
        let mut p = pending(Severity::Medium);
        p.requires_force_override = true;
        let e = decide_approval(&p, &attempt(&p, ApprovalKind::Approve, "bob", None), &policy()).unwrap_err();
        assert_eq!(e.code(), "force_override_required");
    }

    #[test]
    fn unauthorised_approvers_are_refused() {
        let p = pending(Severity::High);
        let e = decide_approval(&p, &attempt(&p, ApprovalKind::Approve, "mallory", None), &policy()).unwrap_err();
        assert_eq!(e.code(), "not_authorised");
        assert!(e.to_string().contains("approvals.high.approvers"), "{e}");
        // An approver is not a force-overrider.
        let e =
            decide_approval(&p, &attempt(&p, ApprovalKind::ForceOverride, "bob", Some("r")), &policy()).unwrap_err();
        assert_eq!(e.code(), "not_authorised");
        // The default policy lists nobody.
        let e = decide_approval(&p, &attempt(&p, ApprovalKind::Approve, "bob", None), &ApprovalPolicy::default())
            .unwrap_err();
        assert_eq!(e.code(), "not_authorised");
        for bad in ["", "a b", "x;rm -rf", &"a".repeat(65)] {
            let e = decide_approval(&p, &attempt(&p, ApprovalKind::Approve, bad, None), &policy()).unwrap_err();
            assert_eq!(e.code(), "invalid_approver", "{bad:?}");
        }
    }

    #[test]
    fn approval_for_a_changed_plan_is_refused() {
        let p = pending(Severity::High);
        // The approver reviewed another plan.
        let other = binding_hash(&incident(Severity::High), &plan("scale_worker_pool"), "scale_worker_pool");
        let mut a = attempt(&p, ApprovalKind::Approve, "bob", None);
        a.reviewed_hash = Some(other.clone());
        let e = decide_approval(&p, &a, &policy()).unwrap_err();
        assert_eq!(e.code(), "plan_changed");
        // The plan on record no longer hashes to the request.
        let mut a = attempt(&p, ApprovalKind::Approve, "bob", None);
        a.recorded_hash = other;
        assert_eq!(decide_approval(&p, &a, &policy()).unwrap_err().code(), "plan_changed");
        // A prefix of the right hash is accepted; a short one is not.
        let mut a = attempt(&p, ApprovalKind::Approve, "bob", None);
        a.reviewed_hash = Some(p.binding_hash[..12].to_uppercase());
        assert!(decide_approval(&p, &a, &policy()).is_ok());
        a.reviewed_hash = Some(p.binding_hash[..8].into());
        assert_eq!(decide_approval(&p, &a, &policy()).unwrap_err().code(), "plan_changed");
    }

    #[test]
    fn binding_hash_covers_incident_plan_and_action() {
        let (i, p) = (incident(Severity::High), plan("restart_api_pods"));
        let h = binding_hash(&i, &p, "restart_api_pods");
        assert_eq!(h.len(), 64);
        assert_eq!(h, binding_hash(&i, &p, "restart_api_pods"));
        assert_ne!(h, binding_hash(&i, &p, "scale_worker_pool"));
        let mut p2 = p.clone();
        p2.rationale.push('!');
        assert_ne!(h, binding_hash(&i, &p2, "restart_api_pods"));
        assert_ne!(h, binding_hash(&incident(Severity::Low), &p, "restart_api_pods"));
        assert!(authorise_execution(&h, &i, &p, "restart_api_pods").is_ok());
        let e = authorise_execution(&h, &i, &p, "drop_database").unwrap_err();
        assert_eq!(e.authorised, h);
    }

    #[test]
    fn templates_allow_listed_parameters_only() {
        let t: Vec<String> =
            ["kubectl", "scale", "deploy/{service}", "--reason={incident_id}"].map(String::from).into();
        assert!(check_template(&t).is_empty());
        let mut params = BTreeMap::new();
        params.insert("service", "billing-batch");
        params.insert("incident_id", "inc-002");
        let argv = render_template(&t, &params).unwrap();
        assert_eq!(argv, ["kubectl", "scale", "deploy/billing-batch", "--reason=inc-002"]);
        for bad in [vec!["x", "{token}"], vec!["{service}"], vec![], vec!["x", "{service"], vec!["x", "a}"]] {
            let bad: Vec<String> = bad.into_iter().map(String::from).collect();
            assert!(!check_template(&bad).is_empty(), "{bad:?}");
        }
        assert_eq!(fill_template(&t, &params).unwrap(), argv);
        let token: Vec<String> = ["x", "{token}"].map(String::from).into();
        assert_eq!(
            check_template(&token),
            [TemplateError::UnknownParameter { arg: "{token}".into(), name: "token".into() }]
        );
        assert_eq!(
            fill_template(&token, &params).unwrap_err().to_string(),
            "argument \"{token}\" uses the parameter {token}; only {incident_id}, {service}, {severity}, {action} are allowed"
        );
        let both: Vec<String> = ["{service}", "a}"].map(String::from).into();
        assert_eq!(
            render_template(&both, &params).unwrap_err(),
            "the program (first argument) cannot be a parameter; argument \"a}\" has a '}' without a '{'"
        );
        params.insert("service", "--all");
        let e = fill_template(&t, &params).unwrap_err();
        assert_eq!(e, TemplateError::NotPlain { name: "service".into(), value: "--all".into() });
        assert_eq!(e.to_string(), "parameter {service} = \"--all\" is not a plain name; refusing to run");
        params.insert("service", "a;rm -rf /");
        assert!(render_template(&t, &params).is_err());
        params.remove("service");
        assert_eq!(fill_template(&t, &params), Err(TemplateError::NoValue { name: "service".into() }));
    }
}
