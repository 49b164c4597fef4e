//! `guardrail approve INCIDENT [--reason TEXT] [--force-override] [--binding-hash HASH]`.
//!
//! The approver is authenticated ([`crate::identity`]): the identity of the `--token` /
//! `GUARDRAIL_TOKEN` when a tokens file is configured (its role must be `approver` or `admin`),
//! else the OS account; `--as` may only restate it. An incident the audit trail does not hold
//! (a mistyped id) is refused without a record (exit 64), naming the id and the incidents that
//! await approval.
//!
//! Finds the incident's pending approval request in the audit trail, decides the attempt with
//! [`guardrail_governor::approve::decide_pending`] (shared with `guardrail serve`), that is with
//! the pure [`guardrail_core::approval::decide_approval`] (self-approval, critical severity,
//! the reason of a FORCE_OVERRIDE, the plan hash, the approvers of the governor config), and
//! records the refusal or the grant on the audit chain. A grant then executes the released
//! action, checked against its hash, and records the execution.
//!
//! The attempt is [`guardrail_governor::pipeline::Pipeline::approve`] (shared with `guardrail
//! serve`); the execution after a grant is [`guardrail_governor::pipeline::execute_claimed`]:
//! hash check, then the execution claim (so a concurrent `incident execute` cannot run it too).
//!
//! Exit codes: 0 approved and executed (or dry run), 11 refused (recorded) or another execution
//! holds the claim, 12 approved but the execution failed, 13 the grant (or refusal, or
//! execution) IS recorded in the chain but its JSONL mirror copy failed (a grant is then still
//! granted; nothing runs now), 3 could not decide (unreadable store or config, a record NOT
//! appended), 64 usage (unknown incident, no token), 14 not authenticated, 15 role not
//! permitted (nothing recorded for these).

use guardrail_core::approval::ApprovalKind;
use guardrail_core::audit::ChainedRecord;
use guardrail_gate::audit_cmd::StoreArgs;
use guardrail_gate::exit::Exit;
use guardrail_gate::inputs::EnvLookup;
use guardrail_governor::Governor;
use guardrail_governor::approve::ApprovalInput;
use guardrail_governor::pipeline::{ApproveOutcome, Execution};
use guardrail_governor::record::encode;
use guardrail_governor::views::{ApprovalRefusalView, GrantView};

use crate::incident_cmd::{Ctx, Outcome, render_execution, report};
use crate::remediation::{ConfigArgs, ExecutorChoice, KbArgs, OutFormat, append_failure, executor, fail};

/// `guardrail approve` arguments.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// Incident id.
    pub incident: String,
    /// Who approves (must be listed for the incident's severity; never the proposer): may only
    /// restate the identity of your token (or, without a tokens file, of your OS account).
    #[arg(long = "as", value_name = "USER")]
    pub actor: Option<String>,
    #[command(flatten)]
    pub auth: crate::identity::AuthArgs,
    /// Why (required with --force-override).
    #[arg(long)]
    pub reason: Option<String>,
    /// FORCE_OVERRIDE: the only release of a critical incident; needs --reason.
    #[arg(long)]
    pub force_override: bool,
    /// The binding hash you reviewed (`binding_hash` of `incident show`; a prefix of 12+ hex
    /// digits): refused if the gated plan is another. `--plan-hash` is its former name.
    #[arg(long, value_name = "HASH", visible_alias = "plan-hash")]
    pub binding_hash: Option<String>,
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
pub fn run(a: ApproveArgs, env: EnvLookup<'_>) -> Exit {
    let ctx = match Ctx::new(
        env,
        &a.store,
        &a.config,
        &KbArgs::default(),
        None,
        a.executor,
        a.now.as_deref(),
        (&a.auth, a.actor.as_deref(), crate::identity::Act::Approve),
    ) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let kind = if a.force_override { ApprovalKind::ForceOverride } else { ApprovalKind::Approve };
    let input = ApprovalInput {
        incident_id: a.incident.clone(),
        kind,
        approver: ctx.actor.clone(),
        reason: a.reason.clone(),
        reviewed_hash: a.binding_hash.clone(),
    };
    let mut log = match ctx.log() {
        Ok(l) => l,
        Err(e) => return fail(&[e]),
    };
    // A mistyped id must not leave a permanent refusal in the chain: an incident the trail
    // does not hold is a usage error, recorded nowhere.
    match log.states() {
        Err(e) => return fail(&[e.to_string()]),
        Ok(states) if !states.contains_key(&a.incident) => {
            return unknown_incident(&a.incident, &states, &a.store, env);
        }
        Ok(_) => {}
    }
    let governor = Governor::default();
    let exec = executor(&ctx.cfg.config, ctx.executor);
    let p = ctx.pipeline(&governor, None, &exec);
    let extra = encode(&RequestedBy { requested_by: requested_by(&ctx.identity) });
    // The queue is read through the log's own connection: one open of the store per attempt.
    let (granted, rec, execution) = match p.approve_on(&mut log, &input, Some(&extra)) {
        ApproveOutcome::CannotDecide(e) => return fail(&[e.to_string()]),
        ApproveOutcome::Refused { refused, record } => {
            let message = refused.message.clone();
            let (rec, code) = match record {
                Ok(r) => (r, Exit::Refused),
                Err(e) => match e.in_chain().cloned() {
                    None => return fail(&[format!("refused ({message}), and the refusal could NOT be recorded: {e}")]),
                    Some(rec) => {
                        eprintln!("guardrail: {}", append_failure("the refusal", "the mirror lacks it", &e));
                        (rec, Exit::MirrorFailed)
                    }
                },
            };
            let text = vec![
                format!("{}: {} by {} REFUSED (exit {code}): {message}", a.incident, kind.as_str(), ctx.actor),
                format!("  audit       refusal {}", rec.id()),
            ];
            return report(&[Outcome::of(ApprovalRefusalView::new(&refused, &rec), text, code)], a.format);
        }
        ApproveOutcome::NotGranted(e) => {
            return fail(&[format!("the approval was NOT recorded, so it is not granted and nothing runs: {e}")]);
        }
        ApproveOutcome::GrantedMirrorFailed { granted, error } => {
            // The grant is in the chain, so it IS granted; only the mirror lacks it. Nothing
            // runs now (fail closed), and the user is told how to run it.
            let g = &granted.grant;
            eprintln!(
                "guardrail: {} of {} by {} IS GRANTED and recorded in the audit chain as record {}, but its JSONL \
                 mirror copy failed, so nothing runs now (exit {}): {error}",
                g.kind.as_str(),
                g.action,
                g.approver,
                error.in_chain().map(ChainedRecord::id).unwrap_or_default(),
                Exit::MirrorFailed
            );
            eprintln!("  once the mirror is writable: guardrail incident execute {} (as {})", a.incident, g.approver);
            return Exit::MirrorFailed;
        }
        ApproveOutcome::ReleasedByAnother { record, by } => {
            eprintln!(
                "guardrail: {} was released by {} first; grant {} releases nothing and nothing runs (exit {})",
                a.incident,
                by.unwrap_or_else(|| "another record".into()),
                record.id(),
                Exit::Refused
            );
            return Exit::Refused;
        }
        ApproveOutcome::Unconfirmed { record, error } => {
            return fail(&[format!(
                "grant {} recorded, but the queue could not be re-read, so nothing runs: {error}",
                record.id()
            )]);
        }
        ApproveOutcome::Released { granted, record, execution } => (granted, record, execution),
    };
    let grant = &granted.grant;
    let record_kind = granted.record_kind;
    let (step, exec_text, mut code) = render_execution(&execution, &grant.action);
    let mirror_only = match &execution {
        Execution::Done { record: Err(e), .. } | Execution::ClaimNotRecorded(e) => e.in_chain().is_some(),
        _ => false,
    };
    if mirror_only {
        code = Exit::MirrorFailed;
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
    let view = GrantView::new(&a.incident, grant, &rec, step, code == Exit::Ok);
    report(&[Outcome::of(view, text, code)], a.format)
}

/// Who asked, merged into the refusal or grant record.
#[derive(serde::Serialize)]
struct RequestedBy {
    requested_by: serde_json::Value,
}

/// Who asked, as recorded with the refusal or grant (as `guardrail serve` records its bearer
/// token's caller): the identity and how it was established.
fn requested_by(actor: &crate::identity::Actor) -> serde_json::Value {
    #[derive(serde::Serialize)]
    struct Cli<'a> {
        /// How the identity was established (`method`, the tokens file, …).
        #[serde(flatten)]
        how: serde_json::Value,
        identity: &'a str,
        via: &'static str,
    }
    encode(&Cli { how: actor.describe(), identity: &actor.name, via: "cli" })
}

/// `approve` of an incident the audit trail does not hold: exit 64, nothing recorded, and the
/// incidents that do await approval.
fn unknown_incident(
    id: &str,
    states: &std::collections::BTreeMap<String, guardrail_governor::queue::IncidentState>,
    store: &StoreArgs,
    env: EnvLookup<'_>,
) -> Exit {
    let pending: Vec<&str> = states.values().filter(|s| s.pending.is_some()).map(|s| s.incident_id.as_str()).collect();
    eprintln!(
        "guardrail: usage error (exit {}): no incident {id:?} in the audit trail ({}); nothing was recorded",
        Exit::Usage,
        guardrail_store::redact_url(&store.spec(env))
    );
    if pending.is_empty() {
        eprintln!("  no incident awaits approval (guardrail incident list shows them all)");
    } else {
        eprintln!("  awaiting approval: {}", pending.join(", "));
    }
    Exit::Usage
}
