//! `guardrail approve INCIDENT --as USER [--reason TEXT] [--force-override] [--plan-hash HASH]`.
//!
//! Finds the incident's pending approval request in the audit trail, decides the attempt with
//! the pure [`guardrail_core::approval::decide_approval`] (self-approval, critical severity,
//! the reason of a FORCE_OVERRIDE, the plan hash, the approvers of the governor config), and
//! records the refusal or the grant on the audit chain. A grant then executes the released
//! action, checked against its hash, and records the execution.
//!
//! Exit codes: 0 approved and executed (or dry run), 11 refused (recorded), 12 approved but the
//! execution failed, 3 could not decide (unreadable store or config, audit write failed).

use guardrail_core::approval::{ApprovalAttempt, ApprovalKind, PendingApproval, binding_hash, decide_approval};
use guardrail_gate::audit_cmd::StoreArgs;
use guardrail_gate::inputs::EnvLookup;
use serde_json::{Value, json};

use crate::incident_cmd::{Ctx, Outcome, report};
use crate::remediation::{
    Authorisation, ConfigArgs, ExecutorChoice, KbArgs, OutFormat, codes, decision_parts, fail, kinds, load_states,
};

/// `guardrail approve` arguments.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// Incident id.
    pub incident: String,
    /// Who approves (must be listed for the incident's severity; never the proposer).
    #[arg(long = "as", value_name = "USER")]
    pub actor: String,
    /// Why (required with --force-override).
    #[arg(long)]
    pub reason: Option<String>,
    /// FORCE_OVERRIDE: the only release of a critical incident; needs --reason.
    #[arg(long)]
    pub force_override: bool,
    /// The plan hash you reviewed (from `incident show`; a prefix of 12+ hex digits): refused
    /// if the gated plan is another.
    #[arg(long, value_name = "HASH")]
    pub plan_hash: Option<String>,
    /// Executor for the released action [default: the config's executor.default, else dry-run]
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorChoice>,
    /// Time (RFC 3339) [default: now]
    #[arg(long)]
    pub now: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutFormat,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn s<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// Runs `guardrail approve`; returns the exit code.
pub fn run(a: ApproveArgs, env: EnvLookup<'_>) -> i32 {
    let ctx = match Ctx::new(
        env,
        &a.store,
        &a.config,
        &KbArgs::default(),
        None,
        a.executor,
        a.now.as_deref(),
        Some(&a.actor),
    ) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let kind = if a.force_override { ApprovalKind::ForceOverride } else { ApprovalKind::Approve };
    let states = match load_states(&a.store, env) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let refuse = |code: &str, message: String, request: Option<String>, hash: Option<String>| -> i32 {
        let body = json!({
            "incident_id": a.incident,
            "kind": kind.as_str(),
            "approver": ctx.actor,
            "reason": a.reason,
            "code": code,
            "message": message,
            "request_record": request,
            "binding_hash": hash,
            "reviewed_hash": a.plan_hash,
        });
        let rec = match ctx.append(kinds::APPROVAL_REFUSED, body.clone()) {
            Ok(r) => r,
            Err(e) => return fail(&[format!("refused ({message}), and the refusal could NOT be recorded: {e}")]),
        };
        let text = vec![
            format!("{}: {} by {} REFUSED (exit {}): {message}", a.incident, kind.as_str(), ctx.actor, codes::REFUSED),
            format!("  audit       refusal {}", rec.id()),
        ];
        let mut json = body;
        json["status"] = "refused".into();
        json["audit"] = rec.id().into();
        json["exit_code"] = codes::REFUSED.into();
        report(&[Outcome { json, text, code: codes::REFUSED }], a.format)
    };
    let Some(st) = states.get(&a.incident) else {
        return refuse("not_pending", format!("no incident {} in the audit trail", a.incident), None, None);
    };
    let Some(request) = st.pending.clone() else {
        return refuse(
            "not_pending",
            format!("no blocked action awaits approval for {} (status {})", a.incident, st.status()),
            None,
            None,
        );
    };
    let Some(decision) = &st.decision else {
        return fail(&[format!("request {} has no decision record", request.id())]);
    };
    let (incident, plan, _) = match decision_parts(decision) {
        Ok(p) => p,
        Err(e) => return fail(&[e]),
    };
    let rb = &request.body;
    let pending = PendingApproval {
        incident_id: a.incident.clone(),
        severity: incident.severity,
        proposer: s(rb, "proposer").to_string(),
        action: s(rb, "action").to_string(),
        binding_hash: s(rb, "binding_hash").to_string(),
        requires_force_override: rb.get("requires_force_override").and_then(Value::as_bool).unwrap_or(true),
    };
    let attempt = ApprovalAttempt {
        kind,
        approver: ctx.actor.clone(),
        reason: a.reason.clone(),
        reviewed_hash: a.plan_hash.clone(),
        recorded_hash: binding_hash(&incident, &plan, &pending.action),
    };
    let grant = match decide_approval(&pending, &attempt, &ctx.cfg.config.approvals) {
        Ok(g) => g,
        Err(r) => return refuse(r.code(), r.to_string(), Some(request.id()), Some(pending.binding_hash.clone())),
    };
    let record_kind = match grant.kind {
        ApprovalKind::Approve => kinds::APPROVAL_GRANTED,
        ApprovalKind::ForceOverride => kinds::FORCE_OVERRIDE,
    };
    let body = json!({
        "incident_id": a.incident,
        "kind": grant.kind.as_str(),
        "approver": grant.approver,
        "reason": grant.reason,
        "action": grant.action,
        "binding_hash": grant.binding_hash,
        "request_record": request.id(),
        "decision_record": decision.id(),
        "proposer": pending.proposer,
        "severity": incident.severity,
        "governor_config": ctx.cfg.describe(),
    });
    let rec = match ctx.append(record_kind, body) {
        Ok(r) => r,
        Err(e) => return fail(&[format!("the approval was NOT recorded, so nothing runs: {e}")]),
    };
    // Two approvers racing both append a grant; the chain decides: only the first grant after
    // the request releases it (the fold ignores later ones), and only its approver executes.
    match load_states(&a.store, env).map(|s| s.get(&a.incident).and_then(|st| st.authorised.clone())) {
        Ok(Some(open)) if open.record == rec.id() => {}
        Ok(other) => {
            let by = other.map(|o| o.record).unwrap_or_else(|| "another record".into());
            eprintln!(
                "guardrail: {} was released by {by} first; grant {} releases nothing and nothing runs (exit {})",
                a.incident,
                rec.id(),
                codes::REFUSED
            );
            return codes::REFUSED;
        }
        Err(e) => {
            return fail(&[format!(
                "grant {} recorded, but the queue could not be re-read, so nothing runs: {e}",
                rec.id()
            )]);
        }
    }
    let auth = Authorisation {
        record: rec.id(),
        by: grant.kind.as_str().into(),
        approver: Some(grant.approver.clone()),
        action: grant.action.clone(),
        binding_hash: grant.binding_hash.clone(),
    };
    let (exec_json, exec_text, code) = ctx.run_executor(&auth, &incident, &plan, &grant.action);
    let mut text = vec![
        format!(
            "{}: {} of {} by {} GRANTED — {}",
            a.incident,
            grant.kind.as_str(),
            grant.action,
            grant.approver,
            exec_text.first().cloned().unwrap_or_default()
        ),
        format!("  audit       {} {}", record_kind, rec.id()),
        format!("  plan hash   {}", grant.binding_hash),
    ];
    text.extend(exec_text.into_iter().skip(1));
    let json = json!({
        "incident_id": a.incident,
        "status": if code == codes::EXECUTED { "executed" } else { "execution_failed" },
        "grant": {"kind": grant.kind.as_str(), "approver": grant.approver, "reason": grant.reason, "action": grant.action, "binding_hash": grant.binding_hash, "audit": rec.id()},
        "execution": exec_json,
        "exit_code": code,
    });
    report(&[Outcome { json, text, code }], a.format)
}
