//! The audit bodies of a pipeline run — `remediation_error`, `remediation_decision` and the
//! `approval_request` of a blocked action — built in one place for `guardrail incident run`
//! and `guardrail serve`'s `POST /api/incidents`, so the queue fold ([`crate::queue`]) reads
//! the same records whoever wrote them.
//!
//! Every record kind the governor writes ([`RecordKind`]) has one body type here, used by the
//! writers ([`encode`]) and by every reader ([`decode`]: the queue fold, claims, replay, the
//! CLI and HTTP renderers). A body type's serialisation is the record's canonical JSON: its
//! field names, `null` for an absent value and its numbers are what the chain hashes, so they
//! never change (`written_bodies_keep_their_canonical_bytes`, and the old-chain fixture in
//! `tests/fixtures/chain-4b21396`). Bodies are read leniently — unknown fields ignored, missing
//! ones defaulted — so records of older releases still read.

use guardrail_core::approval::{ApprovalPolicy, SeverityApprovers};
use guardrail_core::remediation::{Incident, Severity};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{PipelineFailure, PipelineOutcome};

/// What a run records besides the outcome: who asked and what it ran against.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// Who asked for the remediation (the proposer, who cannot approve it).
    pub proposer: String,
    /// The knowledge base (as the caller names it).
    pub knowledge_base: String,
    /// The live logs source, if any ([`crate::LogsSource::describe`]).
    pub logs: Option<String>,
    /// The deploy signals' provenance, if any.
    pub deploy_signals: Option<Value>,
    /// The governor config in force (file and hash).
    pub governor_config: Value,
}

/// The body of a `remediation_error` record.
pub fn error_body(incident: &Incident, origin: &Value, ctx: &RunContext, failure: &PipelineFailure) -> Value {
    encode(&ErrorBody {
        incident_id: incident.id.clone(),
        incident: encode(incident),
        origin: origin.clone(),
        proposer: ctx.proposer.clone(),
        errors: vec![failure.error.to_string()],
        trace: encode(&failure.trace),
        knowledge_base: ctx.knowledge_base.clone(),
    })
}

/// The body of a `remediation_decision` record. `gate_inputs` is
/// [`crate::replay::gate_inputs_body`]: with the plan, stress and severity in `outcome`, it
/// makes the gate's decision a pure function of the record (`guardrail replay`).
pub fn decision_body(
    incident: &Incident,
    origin: &Value,
    ctx: &RunContext,
    outcome: &PipelineOutcome,
    gate_inputs: Value,
) -> Value {
    decision_body_with_transcript(incident, origin, ctx, outcome, gate_inputs, None)
}

/// [`decision_body`] naming the `planner_transcript` record appended just before it (a
/// model-backed planner's; `None` for the built-in planners, whose bodies are then unchanged).
pub fn decision_body_with_transcript(
    incident: &Incident,
    origin: &Value,
    ctx: &RunContext,
    outcome: &PipelineOutcome,
    gate_inputs: Value,
    planner_transcript: Option<crate::transcript::TranscriptRef>,
) -> Value {
    encode(&DecisionBodyOut {
        incident_id: &incident.id,
        incident,
        origin,
        proposer: &ctx.proposer,
        gated_action: outcome.gated_action(),
        binding_hash: outcome.binding_hash(),
        decision: outcome.gate.output.decision.as_str(),
        rule: &outcome.gate.rule,
        reasons: &outcome.gate.output.reasons,
        requires_force_override: outcome.gate.requires_force_override,
        outcome,
        knowledge_base: &ctx.knowledge_base,
        logs: ctx.logs.as_deref(),
        deploy_signals: ctx.deploy_signals.as_ref(),
        governor_config: &ctx.governor_config,
        gate_inputs,
        planner_transcript,
    })
}

/// [`DecisionBody`] as a writer builds it, borrowing the run's parts, which are serialised
/// straight into the body: the same value as a [`DecisionBody`] of parts encoded first (the
/// same serializer builds both; `decision_bodies_borrowing_their_parts_are_the_same` checks),
/// without copying the whole outcome (plan, stress, gate, every tool call's result) a second
/// time, which was ~4 % of a proposal's server CPU. Field names, types and the omitted
/// `planner_transcript` are [`DecisionBody`]'s.
#[derive(Serialize)]
struct DecisionBodyOut<'a> {
    incident_id: &'a str,
    incident: &'a Incident,
    origin: &'a Value,
    proposer: &'a str,
    gated_action: &'a str,
    binding_hash: String,
    decision: &'a str,
    rule: &'a str,
    reasons: &'a [String],
    requires_force_override: bool,
    outcome: &'a PipelineOutcome,
    knowledge_base: &'a str,
    logs: Option<&'a str>,
    deploy_signals: Option<&'a Value>,
    governor_config: &'a Value,
    gate_inputs: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    planner_transcript: Option<crate::transcript::TranscriptRef>,
}

/// `force_override` when the gate says so or the incident is critical, else `approve`.
pub fn requires(incident: &Incident, outcome: &PipelineOutcome) -> &'static str {
    if outcome.gate.requires_force_override || incident.severity == Severity::Critical {
        "force_override"
    } else {
        "approve"
    }
}

/// The body of the `approval_request` of a blocked action, following decision record
/// `decision_record`.
pub fn approval_request_body(
    incident: &Incident,
    outcome: &PipelineOutcome,
    ctx: &RunContext,
    decision_record: &str,
    policy: &ApprovalPolicy,
) -> Value {
    encode(&approval_request(incident, outcome, ctx, decision_record, policy))
}

/// [`approval_request_body`] as its typed body, for a caller that learns `decision_record`
/// later (a linked append names the decision once it is sealed).
pub fn approval_request(
    incident: &Incident,
    outcome: &PipelineOutcome,
    ctx: &RunContext,
    decision_record: &str,
    policy: &ApprovalPolicy,
) -> ApprovalRequestBody {
    let requires = requires(incident, outcome);
    ApprovalRequestBody {
        incident_id: incident.id.clone(),
        severity: incident.severity.as_str().to_string(),
        proposer: ctx.proposer.clone(),
        action: outcome.gated_action().to_string(),
        binding_hash: outcome.binding_hash(),
        decision_record: decision_record.to_string(),
        requires: requires.to_string(),
        requires_force_override: requires == "force_override",
        reasons: outcome.gate.output.reasons.clone(),
        eligible: policy.for_severity(incident.severity).clone(),
    }
}

/// The executor for `kind`, else the config's `executor.default` (dry-run unless configured).
pub fn executor_for(
    cfg: &guardrail_core::approval::GovernorConfig,
    kind: Option<guardrail_core::approval::ExecutorKind>,
) -> Result<Box<dyn crate::Executor>, crate::pipeline::NoExecutor> {
    use guardrail_core::approval::ExecutorKind;
    let timeout = std::time::Duration::from_secs(u64::from(cfg.executor.timeout_seconds.max(1)));
    Ok(match kind.unwrap_or(cfg.executor.default) {
        ExecutorKind::DryRun => Box::new(crate::DryRunExecutor { commands: cfg.executor.commands.clone() }),
        ExecutorKind::Command => Box::new(crate::CommandExecutor { commands: cfg.executor.commands.clone(), timeout }),
        ExecutorKind::Webhook => {
            let url = cfg.executor.webhook_url.clone().ok_or(crate::pipeline::NoExecutor::WebhookUrlMissing)?;
            Box::new(crate::WebhookExecutor { url, timeout, ca_file: cfg.executor.webhook_ca_file.clone() })
        }
    })
}

/// The kinds of record the governor writes. The names in the chain never change: a record's
/// kind is [`RecordKind::as_str`], and [`crate::queue::kinds`] holds the same names as constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// One pipeline run: incident, plan, stress, gate, trace, binding hash ([`DecisionBody`]).
    RemediationDecision,
    /// A pipeline run that could not decide ([`ErrorBody`]).
    RemediationError,
    /// A blocked action entering the approval queue ([`ApprovalRequestBody`]).
    ApprovalRequest,
    /// An approval attempt that was refused ([`RefusalBody`]).
    ApprovalRefused,
    /// An APPROVE that was granted ([`GrantBody`]).
    ApprovalGranted,
    /// A FORCE_OVERRIDE that was granted ([`GrantBody`]).
    ForceOverride,
    /// The claim an executor takes before running ([`ClaimBody`]).
    ExecutionClaim,
    /// A person's release of a claim with no result ([`ClaimReleaseBody`]).
    ClaimRelease,
    /// An execution (or dry run) and its result ([`ExecutionBody`]).
    RemediationExecution,
    /// An execution refused because the action is not the authorised one ([`ExecutionRefusedBody`]).
    ExecutionRefused,
    /// An incident resolved, with what was learned ([`ResolvedBody`]).
    IncidentResolved,
    /// A learned runbook reviewed (written by `kb review`) ([`ReviewedBody`]).
    RunbookReviewed,
}

impl RecordKind {
    /// Every kind, in the order above.
    pub const ALL: [RecordKind; 12] = [
        RecordKind::RemediationDecision,
        RecordKind::RemediationError,
        RecordKind::ApprovalRequest,
        RecordKind::ApprovalRefused,
        RecordKind::ApprovalGranted,
        RecordKind::ForceOverride,
        RecordKind::ExecutionClaim,
        RecordKind::ClaimRelease,
        RecordKind::RemediationExecution,
        RecordKind::ExecutionRefused,
        RecordKind::IncidentResolved,
        RecordKind::RunbookReviewed,
    ];

    /// The kind's name in the chain.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordKind::RemediationDecision => "remediation_decision",
            RecordKind::RemediationError => "remediation_error",
            RecordKind::ApprovalRequest => "approval_request",
            RecordKind::ApprovalRefused => "approval_refused",
            RecordKind::ApprovalGranted => "approval_granted",
            RecordKind::ForceOverride => "force_override",
            RecordKind::ExecutionClaim => "execution_claim",
            RecordKind::ClaimRelease => "claim_release",
            RecordKind::RemediationExecution => "remediation_execution",
            RecordKind::ExecutionRefused => "execution_refused",
            RecordKind::IncidentResolved => "incident_resolved",
            RecordKind::RunbookReviewed => "runbook_reviewed",
        }
    }

    /// The kind named `name`, if the governor writes it (deploy records are not its kinds).
    pub fn parse(name: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Decodes a record body into its typed form. Unknown fields are ignored and missing ones take
/// their defaults (empty, `false`, `null`), as the string-key readers before did, so records
/// written by older releases still read.
pub fn decode<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(body)
}

/// Encodes a typed body for appending. The canonical bytes are those the `json!` builders
/// wrote: same names, `null` for an absent value (never an omitted field), same numbers.
pub fn encode<T: Serialize>(body: &T) -> Value {
    // A body is plain strings, numbers, booleans and already-encoded values: nothing in it can
    // fail to serialise (no non-string map keys, no non-finite floats).
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// The `origin` of a decision that re-gated another action than the authorised one
/// (`incident execute --action`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RegateOrigin {
    pub regate: Regate,
}

/// What was asked for instead of what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Regate {
    pub requested_action: String,
    /// The gated (or authorised) action it replaces.
    pub instead_of: String,
    pub why: RegateWhy,
}

/// Why it went back through the gate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RegateWhy {
    /// `no authorisation`, or the hash mismatch.
    pub reason: String,
}

/// The body of a `remediation_error` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ErrorBody {
    pub incident_id: String,
    /// The incident as submitted.
    pub incident: Value,
    /// Where the incident came from (file, HTTP request, re-gate).
    pub origin: Value,
    pub proposer: String,
    pub errors: Vec<String>,
    /// The tool calls made before the failure.
    pub trace: Value,
    pub knowledge_base: String,
}

/// The body of a `remediation_decision` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DecisionBody {
    pub incident_id: String,
    /// The incident ([`Incident`], read back with [`Incident::from_json_value`]).
    pub incident: Value,
    pub origin: Value,
    pub proposer: String,
    /// The plan's proposed action: what an `execute` decision runs.
    pub gated_action: String,
    /// [`guardrail_core::approval::binding_hash`] of the incident, plan and gated action.
    pub binding_hash: String,
    /// `execute` or `block_and_escalate`.
    pub decision: String,
    pub rule: String,
    pub reasons: Vec<String>,
    pub requires_force_override: bool,
    /// The whole [`PipelineOutcome`]: plan, stress, gate, trace.
    pub outcome: Value,
    pub knowledge_base: String,
    pub logs: Option<String>,
    pub deploy_signals: Option<Value>,
    pub governor_config: Value,
    /// [`crate::replay::gate_inputs_body`]; `null` in records older than replay.
    pub gate_inputs: Value,
    /// The `planner_transcript` record of a model-backed planner, appended just before this
    /// decision (id, hash, model, how it ended). Absent (not `null`) for the built-in planners,
    /// so bodies written before it keep their canonical bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planner_transcript: Option<crate::transcript::TranscriptRef>,
}

impl DecisionBody {
    /// The recorded incident's service, if it has one.
    pub fn service(&self) -> Option<&str> {
        self.incident.get("service").and_then(Value::as_str)
    }

    /// The recorded incident's severity, if it has one.
    pub fn severity(&self) -> Option<&str> {
        self.incident.get("severity").and_then(Value::as_str)
    }

    /// A part of the recorded outcome (`/plan`, `/stress/assessment`, `/gate`, …), `null` when
    /// the record lacks it.
    pub fn outcome_part(&self, pointer: &str) -> Value {
        self.outcome.pointer(pointer).cloned().unwrap_or(Value::Null)
    }
}

/// The body of the `approval_request` of a blocked action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ApprovalRequestBody {
    pub incident_id: String,
    pub severity: String,
    pub proposer: String,
    pub action: String,
    pub binding_hash: String,
    /// The id of the decision record it follows.
    pub decision_record: String,
    /// `approve` or `force_override`.
    pub requires: String,
    /// Missing reads as `true`: a request that does not say it accepts an APPROVE only
    /// accepts a FORCE_OVERRIDE (fail closed).
    #[serde(default = "fail_closed")]
    pub requires_force_override: bool,
    pub reasons: Vec<String>,
    /// Who may release it (the governor config's entry for the severity).
    #[schemars(with = "EligibleSchema")]
    pub eligible: SeverityApprovers,
}

/// The schema of [`SeverityApprovers`] as recorded (the core type has no schema of its own).
#[derive(JsonSchema)]
#[allow(dead_code)] // only its schema is used
struct EligibleSchema {
    /// May APPROVE.
    approvers: Vec<String>,
    /// May FORCE_OVERRIDE.
    force_override: Vec<String>,
}

/// The JSON Schema of each governor record kind's body, for documents that describe the audit
/// records.
pub fn body_schemas() -> Vec<(RecordKind, schemars::Schema)> {
    use schemars::schema_for;
    vec![
        (RecordKind::RemediationDecision, schema_for!(DecisionBody)),
        (RecordKind::RemediationError, schema_for!(ErrorBody)),
        (RecordKind::ApprovalRequest, schema_for!(ApprovalRequestBody)),
        (RecordKind::ApprovalRefused, schema_for!(RefusalBody)),
        (RecordKind::ApprovalGranted, schema_for!(GrantBody)),
        (RecordKind::ForceOverride, schema_for!(GrantBody)),
        (RecordKind::ExecutionClaim, schema_for!(ClaimBody)),
        (RecordKind::ClaimRelease, schema_for!(ClaimReleaseBody)),
        (RecordKind::RemediationExecution, schema_for!(ExecutionBody)),
        (RecordKind::ExecutionRefused, schema_for!(ExecutionRefusedBody)),
        (RecordKind::IncidentResolved, schema_for!(ResolvedBody)),
        (RecordKind::RunbookReviewed, schema_for!(ReviewedBody)),
    ]
}

fn fail_closed() -> bool {
    true
}

/// The body of an `approval_refused` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RefusalBody {
    pub incident_id: String,
    /// `approve` or `force_override`: what was attempted.
    pub kind: String,
    pub approver: String,
    pub reason: Option<String>,
    pub code: String,
    pub message: String,
    pub request_record: Option<String>,
    pub binding_hash: Option<String>,
    pub reviewed_hash: Option<String>,
}

/// The body of an `approval_granted` or `force_override` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct GrantBody {
    pub incident_id: String,
    /// `approve` or `force_override`.
    pub kind: String,
    pub approver: String,
    pub reason: Option<String>,
    pub action: String,
    pub binding_hash: String,
    pub request_record: String,
    pub decision_record: String,
    pub proposer: String,
    pub severity: String,
    pub governor_config: Value,
}

/// The body of an `execution_claim` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ClaimBody {
    pub incident_id: String,
    /// `<authorising record id>#<attempt>`.
    pub claim: String,
    pub action: String,
    pub binding_hash: String,
    pub authorised_by_record: String,
    pub requested_by: String,
    pub executor: String,
}

/// The body of a `remediation_execution` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ExecutionBody {
    pub incident_id: String,
    pub action: String,
    pub binding_hash: String,
    /// `gate`, `approve` or `force_override`.
    pub authorised_by: String,
    pub authorised_by_record: String,
    pub approver: Option<String>,
    pub requested_by: String,
    pub executor: String,
    pub claim_record: Option<String>,
    /// Whether the executor ran (a run that did not start leaves the authorisation open).
    pub ran: bool,
    /// Whether it ran and succeeded (a dry run counts).
    pub ok: bool,
    /// The executor's report ([`crate::ExecutionReport`]).
    pub report: Option<Value>,
    pub error: Option<String>,
}

/// The body of an `execution_refused` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ExecutionRefusedBody {
    pub incident_id: String,
    pub requested_action: String,
    pub authorised_action: String,
    pub authorised_by_record: String,
    pub binding_hash: String,
    pub found_hash: String,
    pub requested_by: String,
    pub message: String,
}

/// The body of a `claim_release` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ClaimReleaseBody {
    pub incident_id: String,
    pub claim: String,
    pub claim_record: String,
    /// Copied from the claim (`null` if the claim lacked it).
    pub authorised_by_record: Option<String>,
    pub action: Option<String>,
    pub claimed_by: Option<String>,
    pub severity: String,
    pub released_by: String,
    pub reason: String,
    #[schemars(with = "EligibleSchema")]
    pub eligible: SeverityApprovers,
}

/// The body of an `incident_resolved` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ResolvedBody {
    pub incident_id: String,
    pub by: String,
    pub summary: String,
    pub action: String,
    pub runbook_id: String,
    pub service: String,
    pub decision_record: Option<String>,
    pub execution_record: Option<String>,
    pub reviewed: bool,
}

/// The body of a `runbook_reviewed` record (`guardrail kb review`): who made a learned runbook
/// usable by the planner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ReviewedBody {
    pub runbook_id: String,
    /// The reviewer (never the person who learned it).
    pub by: String,
    pub service: String,
    pub recommended_action: String,
    /// The runbook's provenance before the review (`guardrail_knowledge::Provenance`).
    pub provenance: Value,
    /// The incident it was learned from, when it was learned.
    pub incident_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records of older releases read: unknown fields are ignored, missing ones defaulted — and
    /// a request that does not say whether it accepts an APPROVE accepts only a FORCE_OVERRIDE.
    #[test]
    fn bodies_read_leniently_and_fail_closed() {
        let old = serde_json::json!({
            "incident_id": "inc-1", "action": "restart", "decision_record": "3-abc",
            "eligible": {"approvers": ["bob"], "force_override": []}, "added_later": {"x": 1},
        });
        let b: ApprovalRequestBody = decode(&old).unwrap();
        assert_eq!((b.incident_id.as_str(), b.decision_record.as_str()), ("inc-1", "3-abc"));
        assert!(b.requires_force_override, "missing reads as true");
        let e: ExecutionBody = decode(&serde_json::json!({"incident_id": "inc-1"})).unwrap();
        assert!(!e.ran && !e.ok, "missing ran/ok read as not run");
    }

    /// The schemas name every field a body writes, and require none (bodies read leniently).
    #[test]
    fn body_schemas_describe_the_written_fields() {
        let schemas = body_schemas();
        let kinds: Vec<RecordKind> = schemas.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, RecordKind::ALL, "every kind, in order");
        for (kind, schema) in schemas {
            let v = schema.as_value();
            assert!(v.get("required").is_none(), "{kind:?} requires fields");
            let props = v.get("properties").and_then(Value::as_object).unwrap();
            assert!(props.contains_key("incident_id"), "{kind:?}");
        }
        let written = encode(&ExecutionBody::default());
        let schema = schemars::schema_for!(ExecutionBody);
        let props = schema.as_value()["properties"].as_object().unwrap().clone();
        let keys: Vec<&String> = written.as_object().unwrap().keys().collect();
        assert_eq!(keys, props.keys().collect::<Vec<_>>());
    }

    /// A `runbook_reviewed` body as `kb review` wrote it with `json!` before the type existed
    /// (release c139dc0) decodes and re-encodes to the same canonical JSON, with and without an
    /// incident.
    #[test]
    fn reviewed_bodies_keep_their_canonical_bytes() {
        let learned = serde_json::json!({
            "runbook_id": "learned-inc-7", "by": "carol", "service": "checkout-api", "recommended_action": "scale",
            "provenance": {"source": "agent_learning", "origin": "inc-7", "reviewed_by": null,
                "recorded_at": "2026-02-21T00:00:00Z",
                "learned": {"incident_id": "inc-7", "audit_record": "9-abc", "learned_by": "bob"}},
            "incident_id": "inc-7",
        });
        let filed = serde_json::json!({
            "runbook_id": "rb-1", "by": "carol", "service": "api", "recommended_action": "restart",
            "provenance": {"source": "file", "origin": "rb-1.yaml", "reviewed_by": null, "recorded_at": null},
            "incident_id": null,
        });
        for before in [learned, filed] {
            let body: ReviewedBody = decode(&before).unwrap();
            assert_eq!(serde_json::to_vec(&encode(&body)).unwrap(), serde_json::to_vec(&before).unwrap());
        }
    }

    /// Every governor record of the old-chain fixture (a store written by release 4b21396)
    /// decodes into its kind's body type and re-encodes to the same canonical JSON.
    #[test]
    fn the_old_chains_bodies_reencode_to_their_canonical_bytes() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chain-4b21396/guardrail.db");
        // A copy: opening a store may write to it.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("guardrail.db");
        std::fs::copy(fixture, &db).unwrap();
        let records = guardrail_store::open_store(&db.display().to_string()).unwrap().all().unwrap();
        let mut kinds = std::collections::BTreeSet::new();
        for r in &records {
            let Some(kind) = RecordKind::parse(&r.kind) else { continue };
            let again = match kind {
                RecordKind::RemediationDecision => encode(&decode::<DecisionBody>(&r.body).unwrap()),
                RecordKind::RemediationError => encode(&decode::<ErrorBody>(&r.body).unwrap()),
                RecordKind::ApprovalRequest => encode(&decode::<ApprovalRequestBody>(&r.body).unwrap()),
                RecordKind::ApprovalRefused => encode(&decode::<RefusalBody>(&r.body).unwrap()),
                RecordKind::ApprovalGranted | RecordKind::ForceOverride => {
                    encode(&decode::<GrantBody>(&r.body).unwrap())
                }
                RecordKind::ExecutionClaim => encode(&decode::<ClaimBody>(&r.body).unwrap()),
                RecordKind::ClaimRelease => encode(&decode::<ClaimReleaseBody>(&r.body).unwrap()),
                RecordKind::RemediationExecution => encode(&decode::<ExecutionBody>(&r.body).unwrap()),
                RecordKind::ExecutionRefused => encode(&decode::<ExecutionRefusedBody>(&r.body).unwrap()),
                RecordKind::IncidentResolved => encode(&decode::<ResolvedBody>(&r.body).unwrap()),
                RecordKind::RunbookReviewed => encode(&decode::<ReviewedBody>(&r.body).unwrap()),
            };
            let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
            assert!(bytes(&again) == bytes(&r.body), "#{} {}", r.seq, r.kind);
            kinds.insert(kind.as_str());
        }
        assert!(kinds.len() >= 11 && kinds.contains("runbook_reviewed"), "{kinds:?}");
    }

    /// The decision body built from borrowed parts is the value (hence the canonical bytes)
    /// the body of parts encoded one by one was, for every sample incident (queued, executed,
    /// no runbook), with and without the optional context and a transcript reference.
    #[test]
    fn decision_bodies_borrowing_their_parts_are_the_same() {
        use guardrail_knowledge::{KnowledgeStore, SqliteKnowledgeStore};
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/governor");
        let mut kb = SqliteKnowledgeStore::open_in_memory().unwrap();
        let (_, mut incidents) = kb.load_sample_data(&examples.join("sample_data.json")).unwrap();
        for name in ["incident_high.json", "incident_critical.json", "incident_downloads_503.json"] {
            incidents.extend(crate::load_incidents(&examples.join("scenarios").join(name)).unwrap());
        }
        let now: jiff::Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
        let ctx = crate::tools::ToolContext::new(&kb, now);
        let governor = crate::Governor::default();
        let plain = RunContext { proposer: "alice".into(), ..RunContext::default() };
        let full = RunContext {
            proposer: "bob".into(),
            knowledge_base: "kb.db".into(),
            logs: Some("logs.ndjson".into()),
            deploy_signals: Some(serde_json::json!({"source": "s", "inputs": [1.5, "x"]})),
            governor_config: serde_json::json!({"file": "g.yaml", "sha256": "ab"}),
        };
        let transcript = crate::transcript::TranscriptRef {
            record: "7-abc".into(),
            hash: "ab".repeat(32),
            planner: "openai".into(),
            model: "m".into(),
            outcome: "accepted".into(),
            reason: None,
        };
        let mut verdicts = std::collections::BTreeSet::new();
        for incident in &incidents {
            let outcome = governor.run(incident, &ctx, None).unwrap();
            verdicts.insert(outcome.gate.output.decision.as_str());
            let origin = serde_json::json!({"http": "POST /api/incidents", "n": 0.1});
            for run in [&plain, &full] {
                for t in [None, Some(transcript.clone())] {
                    let inputs = serde_json::json!({"rules": {"min": 0.25}});
                    let before = encode(&DecisionBody {
                        incident_id: incident.id.clone(),
                        incident: encode(incident),
                        origin: origin.clone(),
                        proposer: run.proposer.clone(),
                        gated_action: outcome.gated_action().to_string(),
                        binding_hash: outcome.binding_hash(),
                        decision: outcome.gate.output.decision.as_str().to_string(),
                        rule: outcome.gate.rule.clone(),
                        reasons: outcome.gate.output.reasons.clone(),
                        requires_force_override: outcome.gate.requires_force_override,
                        outcome: encode(&outcome),
                        knowledge_base: run.knowledge_base.clone(),
                        logs: run.logs.clone(),
                        deploy_signals: run.deploy_signals.clone(),
                        governor_config: run.governor_config.clone(),
                        gate_inputs: inputs.clone(),
                        planner_transcript: t.clone(),
                    });
                    let now = decision_body_with_transcript(incident, &origin, run, &outcome, inputs, t);
                    assert_eq!(now, before, "{}", incident.id);
                    assert_eq!(now.to_string(), before.to_string(), "{}", incident.id);
                }
            }
        }
        assert!(verdicts.len() > 1, "the incidents reach more than one verdict: {verdicts:?}");
    }

    #[test]
    fn kinds_keep_their_names() {
        for k in RecordKind::ALL {
            assert_eq!(RecordKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(RecordKind::parse("deploy_decision"), None);
    }
}
