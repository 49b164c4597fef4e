//! `guardrail approve INCIDENT --as USER [--reason TEXT] [--force-override] [--plan-hash HASH]`.
//!
//! Finds the incident's pending approval request in the audit trail, decides the attempt with
//! [`guardrail_governor::approve::decide_pending`] (shared with `guardrail serve`), that is with
//! the pure [`guardrail_core::approval::decide_approval`] (self-approval, critical severity,
//! the reason of a FORCE_OVERRIDE, the plan hash, the approvers of the governor config), and
//! records the refusal or the grant on the audit chain. A grant then executes the released
//! action, checked against its hash, and records the execution.
//!
//! The execution after a grant is [`guardrail_governor::pipeline::execute_claimed`]: hash
//! check, then the execution claim (so a concurrent `incident execute` cannot run it too).
//!
//! Exit codes: 0 approved and executed (or dry run), 11 refused (recorded) or another execution
//! holds the claim, 12 approved but the execution failed, 13 the grant (or refusal, or
//! execution) IS recorded in the chain but its JSONL mirror copy failed (a grant is then still
//! granted; nothing runs now), 3 could not decide (unreadable store or config, a record NOT
//! appended).

use guardrail_core::approval::ApprovalKind;
use guardrail_gate::audit_cmd::StoreArgs;
use guardrail_gate::inputs::EnvLookup;
use guardrail_governor::approve::{ApprovalInput, ApprovalStep, Granted, decide_pending};
use guardrail_governor::pipeline::{Execution, execute_claimed};
use serde_json::json;

use crate::incident_cmd::{Ctx, Outcome, render_execution, report};
use crate::remediation::{
    Authorisation, ConfigArgs, ExecutorChoice, KbArgs, OutFormat, append_failure, codes, executor, fail, kinds,
    load_states,
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
    let input = ApprovalInput {
        incident_id: a.incident.clone(),
        kind,
        approver: ctx.actor.clone(),
        reason: a.reason.clone(),
        reviewed_hash: a.plan_hash.clone(),
    };
    let step = match decide_pending(&states, &input, &ctx.cfg.config.approvals, ctx.cfg.describe()) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let granted = match step {
        ApprovalStep::Granted(g) => g,
        ApprovalStep::Refused(r) => {
            let message = r.message;
            let (rec, code) = match ctx.append(kinds::APPROVAL_REFUSED, r.body.clone()) {
                Ok(r) => (r, codes::REFUSED),
                Err(e) => match e.in_chain().cloned() {
                    None => return fail(&[format!("refused ({message}), and the refusal could NOT be recorded: {e}")]),
                    Some(rec) => {
                        eprintln!("guardrail: {}", append_failure("the refusal", "the mirror lacks it", &e));
                        (rec, codes::MIRROR_FAILED)
                    }
                },
            };
            let text = vec![
                format!("{}: {} by {} REFUSED (exit {code}): {message}", a.incident, kind.as_str(), ctx.actor),
                format!("  audit       refusal {}", rec.id()),
            ];
            let mut json = r.body;
            json["status"] = "refused".into();
            json["audit"] = rec.id().into();
            json["exit_code"] = code.into();
            return report(&[Outcome { json, text, code }], a.format);
        }
    };
    let Granted { grant, record_kind, body, incident, plan } = *granted;
    let rec = match ctx.append(record_kind, body) {
        Ok(r) => r,
        Err(e) => match e.in_chain() {
            None => {
                return fail(&[format!("the approval was NOT recorded, so it is not granted and nothing runs: {e}")]);
            }
            Some(r) => {
                // The grant is in the chain, so it IS granted; only the mirror lacks it. Nothing
                // runs now (fail closed), and the user is told how to run it.
                eprintln!(
                    "guardrail: {} of {} by {} IS GRANTED and recorded in the audit chain as record {}, but its JSONL \
                     mirror copy failed, so nothing runs now (exit {}): {e}",
                    grant.kind.as_str(),
                    grant.action,
                    grant.approver,
                    r.id(),
                    codes::MIRROR_FAILED
                );
                eprintln!(
                    "  once the mirror is writable: guardrail incident execute {} --as {}",
                    a.incident, grant.approver
                );
                return codes::MIRROR_FAILED;
            }
        },
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
    let mut log = match ctx.log() {
        Ok(l) => l,
        Err(e) => return fail(&[format!("grant {} recorded, but nothing runs: {e}", rec.id())]),
    };
    let exec = executor(&ctx.cfg.config, ctx.executor);
    let exec_ref = match &exec {
        Ok(e) => Ok(e.as_ref()),
        Err(e) => Err(e.clone()),
    };
    let execution = execute_claimed(&mut log, exec_ref, &auth, &incident, &plan, &grant.action, &ctx.actor, 0);
    let (exec_json, exec_text, mut code) = render_execution(&execution, &grant.action);
    let mirror_only = match &execution {
        Execution::Done { record: Err(e), .. } | Execution::ClaimNotRecorded(e) => e.in_chain().is_some(),
        _ => false,
    };
    if mirror_only {
        code = codes::MIRROR_FAILED;
    }
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
