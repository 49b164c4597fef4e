//! What the route table says about the governor routes beyond their handlers' signatures: the
//! success bodies (the governor's views) and the failures only the handlers know. The handlers
//! live in [`crate::governor_api`].

use guardrail_governor::views::{
    ApprovalRefusalView, CouldNotDecideView, ExecuteRefusal, ExecuteView, GrantView, IncidentDetail, IncidentSummary,
    PendingApprovalView, ResolveRefusal, ResolveView, RunView,
};
use schemars::JsonSchema;

use crate::openapi::{Content, OperationDoc, schema_of};
use crate::wire::{Envelope, Refusal};

const STORE_UNAVAILABLE: &str = "The audit store is unavailable.";
const CONFIG_INVALID: &str = "The governor config does not read or parse: `code: governor_config_invalid`, naming the file; nothing is recorded.";

/// What an approval's 409 is: the refusal recorded, or (`claim_held`) the released action
/// already being executed by another grant. Documentation only.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ApproveConflict {
    /// Refused by the approval rules (recorded).
    Refused(Refusal<ApprovalRefusalView>),
    /// Granted, but another execution holds the claim.
    ClaimHeld(Refusal<ExecuteRefusal>),
}

/// The success: `{"ok": true, "data": V}` with the governor's view `V`.
fn ok<V: JsonSchema>(mut doc: OperationDoc, description: &'static str) -> OperationDoc {
    doc.respond(200, description, Content::Json(schema_of::<Envelope<V>>()));
    doc
}

pub(crate) fn list() -> OperationDoc {
    ok::<Vec<IncidentSummary>>(
        OperationDoc::default()
            .summary("Every incident in the audit chain with its state and latest verdict (folded from the chain like `guardrail incident list`).")
            .fails(&[(503, STORE_UNAVAILABLE)]),
        "Incidents.",
    )
}

pub(crate) fn show() -> OperationDoc {
    ok::<IncidentDetail>(
        OperationDoc::default()
            .summary("One incident: latest plan, stress result, gate decision and reasons, evidence, plan hash, queue state (pending request / authorisation) and every record about it.")
            .fails(&[(404, "No such incident in the audit trail."), (503, STORE_UNAVAILABLE)]),
        "The incident.",
    )
}

pub(crate) fn approvals() -> OperationDoc {
    ok::<Vec<PendingApprovalView>>(
        OperationDoc::default()
            .summary("The pending approval queue (derived from the audit chain), oldest request first.")
            .fails(&[(503, STORE_UNAVAILABLE)]),
        "Pending approvals.",
    )
}

pub(crate) fn propose() -> OperationDoc {
    ok::<RunView>(
        OperationDoc::default().summary(
            "Run an incident through plan → stress → gate over the configured knowledge base (`serve --kb`, else `GUARDRAIL_KB`, else the governor config's `knowledge:` block in force, else `.guardrail/knowledge.db`: a SQLite file or an Elasticsearch cluster) and record it like `guardrail incident run`; the token's identity is the proposer (who can never approve it). The live logs are the server's (`guardrail serve --logs`), else an Elasticsearch knowledge base's logs index (`knowledge.indices.logs`, unless `knowledge.live_logs: false`), and, with `--governor-signals`, the deploy gate's signals of the served inputs feed the signal rules (recorded as `deploy_signals`); no file path ever comes from a request.",
        )
        .fails(&[
            (503, "The knowledge base is missing/unreadable or its Elasticsearch cluster cannot answer, or the credentials variable the `knowledge:` block names is unset (`code: knowledge_unavailable`: nothing is planned on empty knowledge), the live logs index cannot be reached (`code: logs_unavailable`), the deploy gate's inputs cannot be evaluated (with `--governor-signals`), the audit store is unavailable, or the decision could not be recorded (then it is withheld and nothing runs; with `status` `recorded_mirror_failed` it IS in the chain as `audit` and only its JSONL mirror copy failed). Or: the governor config does not read or parse (`code: governor_config_invalid`)."),
        ])
        .fails_with::<Refusal<CouldNotDecideView>>(422, "The pipeline could not decide (recorded as `remediation_error`, see `audit`)."),
        "Recorded: `remediation_decision`, plus an `approval_request` when blocked (`status` `awaiting_approval`); an action the gate validates runs hash-checked with the governor config's executor (dry-run unless configured), recorded as `remediation_execution`.",
    )
}

pub(crate) fn approve(force: bool) -> OperationDoc {
    let summary = if force {
        "FORCE_OVERRIDE (the only release of a critical incident or a block the gate marks force-override; `reason` required) as the bearer token's identity, decided by the same rules as `guardrail approve` (self-approval refused, approver listed for the severity in the governor config, the reviewed plan hash must be the gated one)."
    } else {
        "APPROVE the pending action as the bearer token's identity, decided by the same rules as `guardrail approve` (self-approval refused, approver listed for the severity in the governor config, the reviewed plan hash must be the gated one)."
    };
    ok::<GrantView>(
        OperationDoc::default().summary(summary).fails(&[
            (404, "No such incident in the audit trail (a mistyped id): nothing is recorded."),
            (503, "The audit store is unavailable, the grant or refusal could not be recorded (then nothing is granted), or the governor config does not read or parse (`code: governor_config_invalid`, naming the file; nothing is recorded)."),
        ])
        .fails_with::<ApproveConflict>(409, "Refused by the approval rules and recorded as `approval_refused`: `code` is `not_pending`, `self_approval`, `plan_changed`, `force_override_required`, `reason_required`, `not_authorised` or `invalid_approver` (or `already_released` when another grant came first); `audit` names the record."),
        "Granted and recorded (`approval_granted` / `force_override`), then the released action run hash-checked with the governor config's executor (dry-run unless configured) and recorded as `remediation_execution` — exactly as `guardrail approve`.",
    )
}

pub(crate) fn execute() -> OperationDoc {
    ok::<ExecuteView>(
        OperationDoc::default().summary(
            "Execute the incident's authorised action (the gate's execute decision, or a grant) exactly as `guardrail incident execute`: hash-checked against its authorisation, then an `execution_claim` is appended under the store's append lock — of concurrent executors exactly one wins — and the result is recorded as `remediation_execution`. Another `action` than the authorised one is not run: `execution_refused` is recorded and the action goes through the gate again (the answer is then that run, with `regate`).",
        )
        .fails(&[
            (404, "No such incident in the audit trail."),
            (503, CONFIG_INVALID),
        ])
        .fails_with::<Refusal<CouldNotDecideView>>(
            422,
            "Another action than the authorised one went through the gate again and the pipeline could not decide (recorded as `remediation_error`, see `audit`).",
        )
        .fails_with::<Refusal<ExecuteRefusal>>(409, "Nothing ran: `code` is `claim_held` (another execution of this authorisation holds the claim), `already_executed`, `awaiting_approval` or `nothing_authorised`."),
        "Executed (or dry run) and recorded; `status` is `executed` or `execution_failed`. After a re-gate: the new run with `regate`.",
    )
}

pub(crate) fn resolve() -> OperationDoc {
    ok::<ResolveView>(
        OperationDoc::default().summary(
            "Record how the incident was resolved (`incident_resolved`) and learn an UNREVIEWED runbook from it with provenance (incident id, audit record, the token's identity), exactly as `guardrail incident resolve`. The planner ignores the runbook until another person reviews it (`guardrail kb review`).",
        )
        .fails(&[
            (404, "No such incident in the audit trail."),
            (503, "The knowledge base cannot be opened or written, or its Elasticsearch cluster cannot answer (`code: knowledge_unavailable`), or the resolution could not be recorded (then nothing is learned); with `status` `recorded_mirror_failed` it IS in the chain and only its mirror copy failed."),
        ])
        .fails_with::<Refusal<ResolveRefusal>>(409, "Nothing to learn (`code` `nothing_to_learn`)."),
        "Recorded and learned.",
    )
}
