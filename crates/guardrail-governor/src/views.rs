//! One typed view per governor outcome, rendered alike by every surface: `guardrail incident
//! … --format json` and `guardrail approve --format json` (which add only `exit_code`, see
//! [`WithExit`]), the HTTP governor endpoints (`/api/incidents*`, `/api/approvals`; an error
//! status carries the view's fields in its error envelope) and the MCP tools.
//!
//! One name per field, everywhere:
//! - `binding_hash`: the hash an execution is bound to ([`guardrail_core::approval::binding_hash`]),
//!   the name the records use (HTTP used to say `plan_hash`);
//! - `action`: the action gated, authorised or run (MCP and the incident list used to say
//!   `gated_action`);
//! - `decision`: the gate's verdict (MCP used to say `verdict`);
//! - `audit`: always the record the answer wrote, as [`RecordRef`] `{id, seq}` — the shape the
//!   deploy gate's `audit` has (its `{id, seq, hash, store}` starts the same way), never a bare
//!   id string;
//! - `decision_record`, `request_record`, `claim_record`, `execution_record`: ids of the
//!   records of that kind an answer names besides the one it wrote (the run used to nest
//!   `audit.decision` — now its `audit` — and `audit.approval_request` — now
//!   `request_record`; the CLI list said `pending_request`).
//!
//! Nested parts that are the core's contract objects (plan, stress assessment, gate decision,
//! incident) are carried as their JSON encoding: the core types do not implement
//! `JsonSchema` (their schemas are the contracts, documented with them).

use guardrail_core::audit::ChainedRecord;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::PipelineOutcome;
use crate::claims::ClaimJson;
use crate::pipeline::Execution;
use crate::queue::{IncidentState, IncidentStatus};
use crate::record::{ApprovalRequestBody, DecisionBody, ExecutionBody, RefusalBody, decode, encode};

/// A JSON object (for the schema of a contract object carried as its encoding).
type Object = Map<String, Value>;

/// A record an answer wrote: its id (`SEQ-HASHPREFIX`) and chain position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecordRef {
    /// `SEQ-HASHPREFIX`.
    pub id: String,
    /// Position in the chain.
    pub seq: i64,
}

impl RecordRef {
    /// The reference to a chained record.
    pub fn of(r: &ChainedRecord) -> RecordRef {
        RecordRef { id: r.id(), seq: r.seq }
    }
}

// ---------------------------------------------------------------------------- status constants

/// `"refused"`: something was asked and refused; nothing ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Refused {
    /// Refused.
    #[default]
    Refused,
}

/// `"awaiting_approval"`: the action is blocked and waits for an approver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AwaitingApproval {
    /// Awaiting approval.
    #[default]
    AwaitingApproval,
}

/// `"could_not_decide"`: nothing was decided (fail closed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouldNotDecide {
    /// Could not decide.
    #[default]
    CouldNotDecide,
}

/// `"released"`: a stale execution claim was released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Released {
    /// Released.
    #[default]
    Released,
}

/// `"resolved"`: the incident's resolution is recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolved {
    /// Resolved.
    #[default]
    Resolved,
}

/// `"reviewed"`: a learned runbook was reviewed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reviewed {
    /// Reviewed.
    #[default]
    Reviewed,
}

/// Where a decided run (or a released grant, or an execution) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The action ran (or its dry run was recorded) and succeeded.
    Executed,
    /// The execution step did not succeed (see `execution`).
    ExecutionFailed,
    /// Blocked: the approval request is queued (see `request_record`, `requires`).
    AwaitingApproval,
}

impl RunStatus {
    /// `executed` when the step succeeded, else `execution_failed`.
    pub fn of_execution(succeeded: bool) -> RunStatus {
        if succeeded { RunStatus::Executed } else { RunStatus::ExecutionFailed }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Executed => "executed",
            RunStatus::ExecutionFailed => "execution_failed",
            RunStatus::AwaitingApproval => "awaiting_approval",
        }
    }
}

// ---------------------------------------------------------------------------- the CLI's wrapper

/// A view with the CLI's exit code: `guardrail incident … --format json` and `guardrail
/// approve --format json` print each result as its view plus `exit_code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WithExit<V> {
    /// The view.
    #[serde(flatten)]
    pub view: V,
    /// The process exit code this result alone would have.
    pub exit_code: u8,
}

// ---------------------------------------------------------------------------- execution

/// An execution step that reached the executor or the hash check: the `remediation_execution`
/// record's body, with that record's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecutionView {
    /// The record body (`ran`, `ok`, `report`, `error`, `claim_record`, …).
    #[serde(flatten)]
    pub body: ExecutionBody,
    /// The `remediation_execution` record; `null` when it could not be appended at all.
    pub audit: Option<RecordRef>,
}

/// An execution step that stopped before the executor (CLI only: HTTP answers these as error
/// statuses, 503 or 409 `claim_held`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionNotRun {
    /// Why nothing ran.
    pub error: String,
    /// The `execution_claim` record of the execution that holds the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_held_by: Option<String>,
    /// This step's claim record, when it is in the chain (only its mirror copy failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_record: Option<String>,
}

/// One execution step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ExecutionStep {
    /// Stopped before the executor: nothing ran.
    NotRun(ExecutionNotRun),
    /// The hash check (and, when it passed, the executor) ran; recorded.
    Recorded(Box<ExecutionView>),
}

impl ExecutionView {
    /// The view of an execution body and its record (`None`: not appended at all).
    pub fn new(body: &ExecutionBody, record: Option<&ChainedRecord>) -> ExecutionView {
        ExecutionView { body: body.clone(), audit: record.map(RecordRef::of) }
    }
}

impl ExecutionStep {
    /// The step as the CLI reports it; `not_recorded` renders an append failure (the CLI's
    /// wording). A result whose record is in the chain with a failed mirror copy names it.
    pub fn of(e: &Execution, not_recorded: impl Fn(&guardrail_store::AppendError) -> String) -> ExecutionStep {
        match e {
            Execution::Unavailable(msg) => ExecutionStep::NotRun(ExecutionNotRun {
                error: msg.to_string(),
                claim_held_by: None,
                claim_record: None,
            }),
            Execution::ClaimHeld { holder } => ExecutionStep::NotRun(ExecutionNotRun {
                error: "claimed by another execution".into(),
                claim_held_by: Some(holder.id()),
                claim_record: None,
            }),
            Execution::ClaimNotRecorded(err) => ExecutionStep::NotRun(ExecutionNotRun {
                error: not_recorded(err),
                claim_held_by: None,
                claim_record: err.in_chain().map(ChainedRecord::id),
            }),
            Execution::Done { body, record, .. } => {
                let rec = match record {
                    Ok(r) => Some(r),
                    Err(e) => e.in_chain(),
                };
                ExecutionStep::Recorded(Box::new(ExecutionView::new(body, rec)))
            }
        }
    }
}

// ---------------------------------------------------------------------------- run

/// Another action than the authorised one, sent through the gate again (`incident execute
/// --action`, `POST /api/incidents/{id}/execute` with `action`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegateView {
    /// The action asked for.
    pub requested_action: String,
    /// The authorised (gated) action it is not.
    pub instead_of: String,
    /// The `execution_refused` record, when there was an authorisation to refuse.
    pub refusal_record: Option<String>,
}

/// One decided incident run: `guardrail incident run` (each of `results`), `POST
/// /api/incidents`, and a re-gate of `execute`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunView {
    /// The incident.
    pub incident_id: String,
    /// `executed`, `execution_failed` or `awaiting_approval`.
    pub status: RunStatus,
    /// The incident's service.
    pub service: String,
    /// The incident's severity (`low` … `critical`).
    pub severity: String,
    /// Who proposed it (the CLI's identity, the bearer token's identity).
    pub proposer: String,
    /// The gate's verdict (`execute`, `block_and_escalate`, …).
    pub decision: String,
    /// The gate rule that decided.
    pub rule: String,
    /// The gate's reasons.
    pub reasons: Vec<String>,
    /// The action the gate checked (the plan's proposed action).
    pub action: String,
    /// What an execution or an approval is bound to.
    pub binding_hash: String,
    /// For a blocked action: `approve` or `force_override`; `null` otherwise.
    pub requires: Option<String>,
    /// The plan (`planner`, `output`, `runbook`, …).
    #[schemars(with = "Object")]
    pub plan: Value,
    /// The stress assessment (`output`: coverage, contradictions, policy conflicts, …).
    #[schemars(with = "Object")]
    pub stress: Value,
    /// The gate decision (`rule`, `fired`, `output`, …).
    #[schemars(with = "Object")]
    pub gate: Value,
    /// The `remediation_decision` record this run wrote.
    pub audit: RecordRef,
    /// The `approval_request` record of a blocked action; `null` otherwise.
    pub request_record: Option<String>,
    /// The execution step of an executed decision; `null` when blocked.
    pub execution: Option<ExecutionStep>,
    /// Set when this run re-gated another action (`execute` with `action`); `null` otherwise.
    pub regate: Option<RegateView>,
    /// A model-backed planner's transcript, as the decision names it (record, hash, model, how
    /// it ended and why); absent for the built-in planners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner_transcript: Option<crate::transcript::TranscriptRef>,
}

impl RunView {
    /// A recorded decision, before what followed it: call [`RunView::executed`] or
    /// [`RunView::queued`].
    pub fn decided(outcome: &PipelineOutcome, decision: &ChainedRecord, proposer: &str) -> RunView {
        RunView::of_decision(outcome, decision, proposer, DecisionParts::from(&decision.body, outcome))
    }

    /// [`RunView::decided`] taking the decision record, whose body's parts are moved into the
    /// view rather than copied (copying them was ~5 % of a proposal's server CPU): for a caller
    /// that has no further use for the record.
    pub fn decided_from(outcome: &PipelineOutcome, mut decision: ChainedRecord, proposer: &str) -> RunView {
        let mut body = std::mem::take(&mut decision.body);
        let parts = DecisionParts::from(&mut body, outcome);
        decision.body = body;
        RunView::of_decision(outcome, &decision, proposer, parts)
    }

    fn of_decision(
        outcome: &PipelineOutcome,
        decision: &ChainedRecord,
        proposer: &str,
        parts: DecisionParts,
    ) -> RunView {
        RunView {
            incident_id: outcome.incident.id.clone(),
            status: RunStatus::AwaitingApproval,
            service: outcome.incident.service.clone(),
            severity: outcome.incident.severity.as_str().to_string(),
            proposer: proposer.to_string(),
            decision: outcome.gate.output.decision.as_str().to_string(),
            rule: outcome.gate.rule.clone(),
            reasons: outcome.gate.output.reasons.clone(),
            action: outcome.gated_action().to_string(),
            binding_hash: parts.binding_hash,
            requires: None,
            plan: parts.plan,
            stress: parts.stress,
            gate: parts.gate,
            audit: RecordRef::of(decision),
            request_record: None,
            execution: None,
            regate: None,
            planner_transcript: parts.planner_transcript,
        }
    }

    /// The decision was executed: its step and whether it succeeded.
    pub fn executed(mut self, step: ExecutionStep, succeeded: bool) -> RunView {
        self.status = RunStatus::of_execution(succeeded);
        self.execution = Some(step);
        self
    }

    /// The decision blocked the action: the queued request and what it requires.
    pub fn queued(mut self, request: &ChainedRecord, requires: &str) -> RunView {
        self.status = RunStatus::AwaitingApproval;
        self.request_record = Some(request.id());
        self.requires = Some(requires.to_string());
        self
    }
}

/// What a run's view takes from its decision's body: the outcome as the pipeline encoded it
/// ([`crate::record::decision_body`], the same serializer as [`encode`]) and the binding hash
/// it computed, rather than encoding and hashing them again (~4 % of a proposal's server CPU).
/// A body that is not this outcome's decision (another incident or action, parts missing) is
/// not read: those parts are encoded from the outcome.
struct DecisionParts {
    binding_hash: String,
    plan: Value,
    stress: Value,
    gate: Value,
    planner_transcript: Option<crate::transcript::TranscriptRef>,
}

/// A body borrowed for copying its parts, or mutably for taking them.
trait BodyRef {
    fn read(&self) -> &Value;
    fn part(&mut self, pointer: &str) -> Option<Value>;
}

impl BodyRef for &Value {
    fn read(&self) -> &Value {
        self
    }
    fn part(&mut self, pointer: &str) -> Option<Value> {
        self.pointer(pointer).cloned()
    }
}

impl BodyRef for &mut Value {
    fn read(&self) -> &Value {
        self
    }
    fn part(&mut self, pointer: &str) -> Option<Value> {
        self.pointer_mut(pointer).map(std::mem::take)
    }
}

impl DecisionParts {
    fn from<B: BodyRef>(mut body: B, outcome: &PipelineOutcome) -> DecisionParts {
        let read = body.read();
        let ours = read.get("incident_id").and_then(Value::as_str) == Some(outcome.incident.id.as_str())
            && read.get("gated_action").and_then(Value::as_str) == Some(outcome.gated_action());
        let binding_hash = match read.get("binding_hash").and_then(Value::as_str) {
            Some(h) if ours => h.to_string(),
            _ => outcome.binding_hash(),
        };
        // Read as a `DecisionBody` would be, without copying the body's values.
        let planner_transcript = decode::<crate::queue::DecisionShape>(read).ok().and_then(|b| b.planner_transcript);
        let mut part = |pointer: &str, encoded: &dyn Fn() -> Value| match ours.then(|| body.part(pointer)).flatten() {
            Some(v) => v,
            None => encoded(),
        };
        DecisionParts {
            binding_hash,
            plan: part("/outcome/plan", &|| encode(&outcome.plan)),
            stress: part("/outcome/stress/assessment", &|| encode(&outcome.stress.assessment)),
            gate: part("/outcome/gate", &|| encode(&outcome.gate)),
            planner_transcript,
        }
    }
}

/// A run that could not decide (nothing runs, nothing is queued). HTTP answers it 422 (503 if
/// not even the error is recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CouldNotDecideView {
    /// The incident.
    pub incident_id: String,
    /// `could_not_decide`.
    pub status: CouldNotDecide,
    /// What failed.
    pub errors: Vec<String>,
    /// The `remediation_error` record, when one was written.
    pub audit: Option<RecordRef>,
}

// ---------------------------------------------------------------------------- execute

/// `incident execute` ran the authorised action (`guardrail incident execute`, `POST
/// /api/incidents/{id}/execute`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecutedView {
    /// The incident.
    pub incident_id: String,
    /// `executed` or `execution_failed`.
    pub status: RunStatus,
    /// The step.
    pub execution: ExecutionStep,
}

/// What `incident execute` answers when something ran or was gated again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ExecuteView {
    /// Another action was gated again: the new run (with `regate`).
    Regated(Box<RunView>),
    /// The authorised action's execution step.
    Executed(ExecutedView),
}

/// Why `incident execute` ran nothing. HTTP answers each 409 (with `errors` holding the
/// message); the CLI exits 10 for `awaiting_approval`, 11 otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ExecuteRefusal {
    /// Nothing is authorised to run for the incident (status `refused`).
    NothingAuthorised {
        /// The incident.
        incident_id: String,
        /// `refused`.
        status: Refused,
        /// Why.
        message: String,
    },
    /// The gated action is blocked and waits for an approver (status `awaiting_approval`):
    /// `POST /api/incidents/{id}/approve` (or `guardrail approve`) releases it.
    AwaitingApproval {
        /// The incident.
        incident_id: String,
        /// `awaiting_approval`.
        status: AwaitingApproval,
        /// The blocked action.
        action: String,
        /// The pending `approval_request` record, when the trail names it.
        request_record: Option<String>,
        /// Why.
        message: String,
    },
    /// The newest decision's action already ran; a new run needs a new decision (status
    /// `refused`).
    AlreadyExecuted {
        /// The incident.
        incident_id: String,
        /// `refused`.
        status: Refused,
        /// The consuming `remediation_execution` record.
        execution_record: String,
        /// The claim it ran under.
        claim_record: Option<String>,
        /// Why.
        message: String,
    },
    /// Another execution of this authorisation holds the claim; nothing ran here (status
    /// `refused`).
    ClaimHeld {
        /// The incident.
        incident_id: String,
        /// `refused`.
        status: Refused,
        /// The `execution_claim` record that holds it.
        claim_held_by: String,
        /// Why.
        message: String,
    },
}

impl ExecuteRefusal {
    /// The machine-readable code (the `code` field).
    pub fn code(&self) -> &'static str {
        match self {
            ExecuteRefusal::NothingAuthorised { .. } => "nothing_authorised",
            ExecuteRefusal::AwaitingApproval { .. } => "awaiting_approval",
            ExecuteRefusal::AlreadyExecuted { .. } => "already_executed",
            ExecuteRefusal::ClaimHeld { .. } => "claim_held",
        }
    }

    /// The readable message.
    pub fn message(&self) -> &str {
        match self {
            ExecuteRefusal::NothingAuthorised { message, .. }
            | ExecuteRefusal::AwaitingApproval { message, .. }
            | ExecuteRefusal::AlreadyExecuted { message, .. }
            | ExecuteRefusal::ClaimHeld { message, .. } => message,
        }
    }

    /// The refusal of an execute whose newest decision's action already ran (`execution`).
    pub fn already_executed(incident_id: &str, execution: &ChainedRecord) -> ExecuteRefusal {
        let claim_record = decode::<ExecutionBody>(&execution.body).ok().and_then(|b| b.claim_record);
        ExecuteRefusal::AlreadyExecuted {
            incident_id: incident_id.to_string(),
            status: Refused::Refused,
            message: format!("it already ran as record {}; a new run needs a new decision", execution.id()),
            execution_record: execution.id(),
            claim_record,
        }
    }

    /// The refusal of an execute whose action awaits approval.
    pub fn awaiting_approval(st: Option<&IncidentState>, incident_id: &str, action: &str) -> ExecuteRefusal {
        ExecuteRefusal::AwaitingApproval {
            incident_id: incident_id.to_string(),
            status: AwaitingApproval::AwaitingApproval,
            action: action.to_string(),
            request_record: st.and_then(|s| s.pending.as_ref()).map(ChainedRecord::id),
            message: format!("{action} is blocked and awaits approval"),
        }
    }

    /// The refusal of an execution step whose claim another execution holds.
    pub fn claim_held(incident_id: &str, holder: &ChainedRecord) -> ExecuteRefusal {
        ExecuteRefusal::ClaimHeld {
            incident_id: incident_id.to_string(),
            status: Refused::Refused,
            claim_held_by: holder.id(),
            message: format!(
                "another execution of this authorisation holds the claim (record {}); nothing ran here",
                holder.id()
            ),
        }
    }
}

// ---------------------------------------------------------------------------- approve

/// What a granted approval or force-override released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrantSummary {
    /// `approve` or `force_override`.
    pub kind: String,
    /// Who granted it.
    pub approver: String,
    /// Why (required for a force-override).
    pub reason: Option<String>,
    /// The released action.
    pub action: String,
    /// What the grant is bound to.
    pub binding_hash: String,
    /// The `approval_granted` or `force_override` record.
    pub audit: RecordRef,
}

/// A granted approval or force-override and its execution (`guardrail approve`, `POST
/// /api/incidents/{id}/approve|force-override`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrantView {
    /// The incident.
    pub incident_id: String,
    /// `executed` or `execution_failed`.
    pub status: RunStatus,
    /// The grant.
    pub grant: GrantSummary,
    /// The execution step it started.
    pub execution: ExecutionStep,
}

impl GrantView {
    /// A released grant (recorded as `record`) and its step.
    pub fn new(
        incident_id: &str,
        grant: &guardrail_core::approval::ApprovalGrant,
        record: &ChainedRecord,
        execution: ExecutionStep,
        succeeded: bool,
    ) -> GrantView {
        GrantView {
            incident_id: incident_id.to_string(),
            status: RunStatus::of_execution(succeeded),
            grant: GrantSummary {
                kind: grant.kind.as_str().to_string(),
                approver: grant.approver.clone(),
                reason: grant.reason.clone(),
                action: grant.action.clone(),
                binding_hash: grant.binding_hash.clone(),
                audit: RecordRef::of(record),
            },
            execution,
        }
    }
}

/// A refused approval or force-override: the `approval_refused` record's body with that
/// record's id (HTTP 409, CLI exit 11). `already_released` (another grant released the
/// incident first) has this shape too: `audit` is then this grant's record and
/// `authorised_by_record` the one that released it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRefusalView {
    /// The refusal (`code`, `message`, `kind`, `approver`, `request_record`, `binding_hash`,
    /// `reviewed_hash`, …).
    #[serde(flatten)]
    pub body: RefusalBody,
    /// `refused`.
    pub status: Refused,
    /// The record this answer wrote (the refusal; for `already_released`, the grant).
    pub audit: RecordRef,
    /// For `already_released`: the grant that released the incident first, when the trail says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorised_by_record: Option<String>,
}

impl ApprovalRefusalView {
    /// A recorded refusal.
    pub fn new(refused: &crate::approve::Refused, record: &ChainedRecord) -> ApprovalRefusalView {
        ApprovalRefusalView {
            body: refused.body.clone(),
            status: Refused::Refused,
            audit: RecordRef::of(record),
            authorised_by_record: None,
        }
    }

    /// A grant (recorded as `record`) that released nothing: `by` released the incident first.
    pub fn released_by_another(
        input: &crate::approve::ApprovalInput,
        record: &ChainedRecord,
        by: Option<String>,
    ) -> ApprovalRefusalView {
        ApprovalRefusalView {
            body: RefusalBody {
                incident_id: input.incident_id.clone(),
                kind: input.kind.as_str().to_string(),
                approver: input.approver.clone(),
                reason: input.reason.clone(),
                code: "already_released".into(),
                message: "the incident was released by another grant first".into(),
                request_record: None,
                binding_hash: None,
                reviewed_hash: input.reviewed_hash.clone(),
            },
            status: Refused::Refused,
            audit: RecordRef::of(record),
            authorised_by_record: by,
        }
    }
}

// ---------------------------------------------------------------------------- release-claim

/// A released execution claim (`guardrail incident release-claim`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseClaimView {
    /// The incident.
    pub incident_id: String,
    /// `released`.
    pub status: Released,
    /// The claim that was released.
    pub claim: ClaimJson,
    /// The `claim_release` record this answer wrote.
    pub audit: RecordRef,
}

/// A refused claim release (CLI exit 11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseRefusalView {
    /// The incident.
    pub incident_id: String,
    /// `refused`.
    pub status: Refused,
    /// `invalid_user`, `not_eligible`, `no_claim`, `already_released`, …
    pub code: String,
    /// Why.
    pub message: String,
    /// For `already_released`: the `claim_release` record that released it first.
    pub release_record: Option<String>,
}

// ---------------------------------------------------------------------------- resolve, review

/// The runbook learned from a resolution (unreviewed until another person reviews it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LearnedRunbookView {
    /// Runbook id.
    pub id: String,
    /// Its service.
    pub service: String,
    /// Its title.
    pub title: String,
    /// The action it recommends.
    pub recommended_action: String,
    /// `false`: the planner ignores it until reviewed.
    pub reviewed: bool,
    /// Where it came from (`source`, `learned`: incident, audit record, learned by).
    #[schemars(with = "Object")]
    pub provenance: Value,
}

/// A recorded resolution (`POST /api/incidents/{id}/resolve`, `guardrail incident resolve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResolveView {
    /// The incident.
    pub incident_id: String,
    /// `resolved`.
    pub status: Resolved,
    /// Who resolved it.
    pub resolved_by: String,
    /// The `incident_resolved` record.
    pub audit: RecordRef,
    /// The learned, unreviewed runbook.
    pub runbook: LearnedRunbookView,
}

impl ResolveView {
    /// The view of a resolution learned as `learned`, by `by`.
    pub fn new(incident_id: &str, by: &str, learned: &crate::learn::Learned) -> ResolveView {
        let rb = &learned.runbook;
        ResolveView {
            incident_id: incident_id.to_string(),
            status: Resolved::Resolved,
            resolved_by: by.trim().to_string(),
            audit: RecordRef::of(&learned.record),
            runbook: LearnedRunbookView {
                id: rb.id.clone(),
                service: rb.service.clone(),
                title: rb.title.clone(),
                recommended_action: rb.recommended_action.clone(),
                reviewed: rb.reviewed,
                provenance: encode(&rb.provenance),
            },
        }
    }
}

/// Why a resolution was not recorded. HTTP answers it 409.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ResolveRefusal {
    /// Nothing to learn from: the incident has no decision, or nothing was executed for it and
    /// no `action` says what resolved it (status `refused`).
    NothingToLearn {
        /// The incident.
        incident_id: String,
        /// `refused`.
        status: Refused,
        /// Why.
        message: String,
    },
}

impl ResolveRefusal {
    /// The readable message.
    pub fn message(&self) -> &str {
        match self {
            ResolveRefusal::NothingToLearn { message, .. } => message,
        }
    }
}

/// A reviewed runbook (`guardrail kb review`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReviewView {
    /// The runbook.
    pub runbook_id: String,
    /// `reviewed`.
    pub status: Reviewed,
    /// Who reviewed it.
    pub reviewed_by: String,
    /// The `runbook_reviewed` record.
    pub audit: RecordRef,
}

/// A replayed remediation decision (`guardrail replay SEQ --format json`): the recorded
/// inputs through the rules in force, compared with what was recorded.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReplayView<'a> {
    /// The replay (`record`, `incident_id`, `identical`, recorded and replayed decision and
    /// rule, `differing_fields`).
    #[serde(flatten)]
    pub replay: &'a crate::replay::DecisionReplay,
    /// The replayed record's kind (`remediation_decision`).
    pub kind: &'a str,
}

impl<'a> ReplayView<'a> {
    /// The view of the replay `r` of `rec`.
    pub fn new(rec: &'a ChainedRecord, r: &'a crate::replay::DecisionReplay) -> ReplayView<'a> {
        ReplayView { replay: r, kind: &rec.kind }
    }
}

// ---------------------------------------------------------------------------- incidents

/// What may run now for an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorisationView {
    /// The authorising record (the execute decision, or the grant).
    pub record: String,
    /// `gate`, `approve` or `force_override`.
    pub by: String,
    /// The approver, for a grant.
    pub approver: Option<String>,
    /// The authorised action.
    pub action: String,
    /// What it is bound to.
    pub binding_hash: String,
}

/// One incident as `guardrail incident list`, `GET /api/incidents` and the MCP
/// `incident_status` tool list it: its state and latest verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IncidentSummary {
    /// The incident.
    pub incident_id: String,
    /// Its state folded from the trail.
    pub status: IncidentStatus,
    /// Service of the newest decision.
    pub service: Option<String>,
    /// Severity of the newest decision.
    pub severity: Option<String>,
    /// The newest decision's verdict.
    pub decision: Option<String>,
    /// The rule that decided.
    pub rule: Option<String>,
    /// The action gated by the newest decision.
    pub action: Option<String>,
    /// Its binding hash.
    pub binding_hash: Option<String>,
    /// The gate's reasons.
    pub reasons: Option<Vec<String>>,
    /// When the newest decision was recorded.
    pub decided_at: Option<String>,
    /// The newest `remediation_decision` record.
    pub decision_record: Option<String>,
    /// The pending `approval_request` record.
    pub request_record: Option<String>,
    /// What the pending request requires (`approve` or `force_override`).
    pub requires: Option<String>,
    /// Whether an approval request is pending.
    pub awaiting_approval: bool,
    /// What may run now, if anything.
    pub authorised: Option<AuthorisationView>,
    /// The newest record about the incident.
    pub last_record: String,
}

impl IncidentSummary {
    /// The summary of one folded incident.
    pub fn new(st: &IncidentState) -> IncidentSummary {
        let b: Option<DecisionBody> = st.decision.as_ref().and_then(|r| decode(&r.body).ok());
        let b = b.as_ref();
        let pending: Option<ApprovalRequestBody> = st.pending.as_ref().and_then(|p| decode(&p.body).ok());
        IncidentSummary {
            incident_id: st.incident_id.clone(),
            status: st.status_kind(),
            service: b.and_then(DecisionBody::service).map(str::to_string),
            severity: b.and_then(DecisionBody::severity).map(str::to_string),
            decision: b.map(|b| b.decision.clone()),
            rule: b.map(|b| b.rule.clone()),
            action: b.map(|b| b.gated_action.clone()),
            binding_hash: b.map(|b| b.binding_hash.clone()),
            reasons: b.map(|b| b.reasons.clone()),
            decided_at: st.decision.as_ref().map(|r| r.recorded_at.clone()),
            decision_record: st.decision.as_ref().map(ChainedRecord::id),
            request_record: st.pending.as_ref().map(ChainedRecord::id),
            requires: pending.map(|p| p.requires),
            awaiting_approval: st.pending.is_some(),
            authorised: st.authorised.as_ref().map(|a| AuthorisationView {
                record: a.record.clone(),
                by: a.by.clone(),
                approver: a.approver.clone(),
                action: a.action.clone(),
                binding_hash: a.binding_hash.clone(),
            }),
            last_record: st.last_record(),
        }
    }
}

/// A pending approval: `GET /api/approvals` (oldest first), `pending` of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PendingApprovalView {
    /// The incident.
    pub incident_id: String,
    /// The `approval_request` record.
    pub request_record: String,
    /// Its chain position (the queue's order).
    pub request_seq: i64,
    /// When it was requested.
    pub requested_at: String,
    /// The incident's severity.
    pub severity: String,
    /// Who proposed it (who can never approve it).
    pub proposer: String,
    /// The blocked action.
    pub action: String,
    /// What an approval must name (`binding_hash` of the approve request; a prefix of 12+ hex
    /// digits is enough).
    pub binding_hash: String,
    /// `approve` or `force_override`.
    pub requires: String,
    /// The gate's reasons.
    pub reasons: Vec<String>,
    /// Who may release it.
    #[schemars(with = "Object")]
    pub eligible: Value,
}

impl PendingApprovalView {
    /// The pending approval of an incident, if any.
    pub fn new(st: &IncidentState) -> Option<PendingApprovalView> {
        let p = st.pending.as_ref()?;
        let b: ApprovalRequestBody = decode(&p.body).unwrap_or_default();
        Some(PendingApprovalView {
            incident_id: st.incident_id.clone(),
            request_record: p.id(),
            request_seq: p.seq,
            requested_at: p.recorded_at.clone(),
            severity: b.severity,
            proposer: b.proposer,
            action: b.action,
            binding_hash: b.binding_hash,
            requires: b.requires,
            reasons: b.reasons,
            eligible: encode(&b.eligible),
        })
    }

    /// Every pending approval, oldest request first.
    pub fn queue<'a>(states: impl IntoIterator<Item = &'a IncidentState>) -> Vec<PendingApprovalView> {
        let mut out: Vec<_> = states.into_iter().filter_map(PendingApprovalView::new).collect();
        out.sort_by_key(|p| p.request_seq);
        out
    }
}

/// One audit record about an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordEntry {
    /// `SEQ-HASHPREFIX`.
    pub id: String,
    /// Chain position.
    pub seq: i64,
    /// Record kind.
    pub kind: String,
    /// When it was recorded.
    pub recorded_at: String,
    /// Its body.
    #[schemars(with = "Object")]
    pub body: Value,
}

impl RecordEntry {
    /// The entry of a record.
    pub fn new(r: &ChainedRecord) -> RecordEntry {
        RecordEntry {
            id: r.id(),
            seq: r.seq,
            kind: r.kind.clone(),
            recorded_at: r.recorded_at.clone(),
            body: r.body.clone(),
        }
    }
}

/// The evidence the newest decision weighed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvidenceView {
    /// The plan's key claims.
    pub key_claims: Value,
    /// The knowledge-base documents the plan retrieved.
    pub retrieved_context_ids: Value,
    /// The stress assessment.
    pub assessment: Value,
}

/// One incident in full: `guardrail incident show`, `GET /api/incidents/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IncidentDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: IncidentSummary,
    /// The incident as recorded with the newest decision.
    pub incident: Value,
    /// The newest plan.
    pub plan: Value,
    /// The newest stress result.
    pub stress: Value,
    /// The newest gate decision.
    pub gate: Value,
    /// The evidence it weighed.
    pub evidence: EvidenceView,
    /// Whether only a force-override releases it.
    pub requires_force_override: Option<bool>,
    /// The pending approval, if any.
    pub pending: Option<PendingApprovalView>,
    /// Its execution claims and what followed each.
    pub claims: Vec<ClaimJson>,
    /// Every record about it, in chain order.
    pub records: Vec<RecordEntry>,
    /// The newest decision's planner transcript (a model-backed planner's: record, hash, model,
    /// how it ended and why); absent for the built-in planners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner_transcript: Option<crate::transcript::TranscriptRef>,
    /// That transcript in full, when the caller attached it ([`IncidentDetail::with_transcript`]:
    /// the queue fold does not hold transcript records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<crate::transcript::Transcript>,
}

impl IncidentDetail {
    /// The detail with the newest decision's transcript attached, found in `records` (the whole
    /// trail, as read for the fold) by the id and hash the decision names. A transcript that is
    /// missing or whose hash differs is not attached (the reference still says which it was).
    pub fn with_transcript(mut self, records: &[guardrail_core::audit::ChainedRecord]) -> IncidentDetail {
        if let Some(r) = &self.planner_transcript {
            self.transcript = records
                .iter()
                .find(|x| x.kind == crate::transcript::PLANNER_TRANSCRIPT && x.id() == r.record && x.hash == r.hash)
                .and_then(|x| decode::<crate::transcript::TranscriptBody>(&x.body).ok())
                .map(|b| b.transcript);
        }
        self
    }

    /// The detail of one folded incident.
    pub fn new(st: &IncidentState) -> IncidentDetail {
        let b: Option<DecisionBody> = st.decision.as_ref().and_then(|r| decode(&r.body).ok());
        let part = |pointer: &str| b.as_ref().map(|b| b.outcome_part(pointer)).unwrap_or(Value::Null);
        IncidentDetail {
            summary: IncidentSummary::new(st),
            incident: b.as_ref().map(|b| b.incident.clone()).unwrap_or(Value::Null),
            plan: part("/plan"),
            stress: part("/stress"),
            gate: part("/gate"),
            evidence: EvidenceView {
                key_claims: part("/plan/output/key_claims"),
                retrieved_context_ids: part("/plan/output/retrieved_context_ids"),
                assessment: part("/stress/assessment"),
            },
            requires_force_override: b.as_ref().map(|b| b.requires_force_override),
            pending: PendingApprovalView::new(st),
            claims: crate::claims::claims(st).iter().map(crate::claims::ClaimView::view).collect(),
            records: st.records.iter().map(RecordEntry::new).collect(),
            planner_transcript: b.as_ref().and_then(|b| b.planner_transcript.clone()),
            transcript: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The renamed names are the only names: no view schema says `plan_hash` or
    /// `gated_action`, and every `audit` is a record reference.
    #[test]
    fn one_name_per_field() {
        let schemas = [
            schemars::schema_for!(RunView),
            schemars::schema_for!(ExecuteView),
            schemars::schema_for!(ExecuteRefusal),
            schemars::schema_for!(GrantView),
            schemars::schema_for!(ApprovalRefusalView),
            schemars::schema_for!(ReleaseClaimView),
            schemars::schema_for!(ReleaseRefusalView),
            schemars::schema_for!(ResolveView),
            schemars::schema_for!(ResolveRefusal),
            schemars::schema_for!(IncidentSummary),
            schemars::schema_for!(IncidentDetail),
            schemars::schema_for!(PendingApprovalView),
            schemars::schema_for!(CouldNotDecideView),
        ];
        for s in &schemas {
            let text = serde_json::to_string(s).unwrap();
            assert!(!text.contains("\"plan_hash\""), "{text}");
            assert!(!text.contains("\"gated_action\""), "{text}");
            assert!(!text.contains("\"pending_request\""), "{text}");
            walk(s.as_value(), &mut |k, v| {
                if k == "audit" {
                    let t = serde_json::to_string(v).unwrap();
                    assert!(t.contains("RecordRef"), "audit is {t}");
                }
            });
        }
    }

    fn walk(v: &Value, f: &mut dyn FnMut(&str, &Value)) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(props)) = m.get("properties") {
                    for (k, p) in props {
                        f(k, p);
                    }
                }
                m.values().for_each(|x| walk(x, f));
            }
            Value::Array(xs) => xs.iter().for_each(|x| walk(x, f)),
            _ => {}
        }
    }

    /// Each refusal of `execute` says its code and its status, and `awaiting_approval` is not
    /// called `refused`.
    #[test]
    fn execute_refusals_document_themselves() {
        let r = ExecuteRefusal::NothingAuthorised {
            incident_id: "i".into(),
            status: Refused::Refused,
            message: "m".into(),
        };
        let v = encode(&r);
        assert_eq!((v["code"].as_str(), v["status"].as_str()), (Some("nothing_authorised"), Some("refused")));
        let a = ExecuteRefusal::awaiting_approval(None, "i", "restart");
        let v = encode(&a);
        assert_eq!((v["code"].as_str(), v["status"].as_str()), (Some("awaiting_approval"), Some("awaiting_approval")));
        assert_eq!(a.code(), "awaiting_approval");
        let back: ExecuteRefusal = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }

    /// The CLI's wrapper adds `exit_code` and nothing else.
    #[test]
    fn with_exit_flattens() {
        let v = encode(&WithExit {
            view: CouldNotDecideView {
                incident_id: "i".into(),
                status: CouldNotDecide::CouldNotDecide,
                errors: vec!["e".into()],
                audit: None,
            },
            exit_code: 3,
        });
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["audit", "errors", "exit_code", "incident_id", "status"]);
    }

    /// An execution that stopped before the executor reads back as such, a recorded one as
    /// recorded.
    #[test]
    fn execution_steps_read_back() {
        let not_run = ExecutionStep::NotRun(ExecutionNotRun {
            error: "claimed by another execution".into(),
            claim_held_by: Some("4-abc".into()),
            claim_record: None,
        });
        let back: ExecutionStep = serde_json::from_value(encode(&not_run)).unwrap();
        assert_eq!(back, not_run);
        let done = ExecutionStep::Recorded(Box::new(ExecutionView {
            body: ExecutionBody { incident_id: "i".into(), ran: true, ok: true, ..Default::default() },
            audit: Some(RecordRef { id: "5-def".into(), seq: 5 }),
        }));
        let back: ExecutionStep = serde_json::from_value(encode(&done)).unwrap();
        assert_eq!(back, done);
    }

    /// A run's view copies the plan, stress, gate and binding hash from its decision's body:
    /// the same view as encoding them from the outcome, for every sample incident; a record
    /// that is not the outcome's decision is not read from.
    #[test]
    fn a_run_view_from_its_decision_is_the_view_from_its_outcome() {
        use guardrail_knowledge::{KnowledgeStore, SqliteKnowledgeStore};
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/governor");
        let mut kb = SqliteKnowledgeStore::open_in_memory().unwrap();
        let (_, mut incidents) = kb.load_sample_data(&examples.join("sample_data.json")).unwrap();
        incidents.extend(crate::load_incidents(&examples.join("scenarios").join("incident_critical.json")).unwrap());
        let now: jiff::Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
        let ctx = crate::tools::ToolContext::new(&kb, now);
        let run = crate::record::RunContext { proposer: "alice".into(), ..Default::default() };
        let record = |body: Value| ChainedRecord {
            seq: 3,
            kind: "remediation_decision".into(),
            recorded_at: "2026-11-24T10:00:00Z".into(),
            body,
            prev_hash: "0".repeat(64),
            hash: "ab".repeat(32),
        };
        let outcomes: Vec<PipelineOutcome> =
            incidents.iter().map(|i| crate::Governor::default().run(i, &ctx, None).unwrap()).collect();
        for (n, outcome) in outcomes.iter().enumerate() {
            let body = crate::record::decision_body(&outcome.incident, &Value::Null, &run, outcome, Value::Null);
            let view = RunView::decided(outcome, &record(body), "alice");
            let expected = RunView {
                binding_hash: outcome.binding_hash(),
                plan: encode(&outcome.plan),
                stress: encode(&outcome.stress.assessment),
                gate: encode(&outcome.gate),
                ..view.clone()
            };
            assert_eq!(encode(&view).to_string(), encode(&expected).to_string(), "{}", outcome.incident.id);
            // Taking the record: the same view, its parts moved out of the body.
            let body = crate::record::decision_body(&outcome.incident, &Value::Null, &run, outcome, Value::Null);
            let taken = RunView::decided_from(outcome, record(body), "alice");
            assert_eq!(encode(&taken).to_string(), encode(&expected).to_string(), "{}", outcome.incident.id);
            // Another incident's decision (or a body without the parts): encoded from the outcome.
            let other = &outcomes[(n + 1) % outcomes.len()];
            let body = crate::record::decision_body(&other.incident, &Value::Null, &run, other, Value::Null);
            for body in [body, serde_json::json!({})] {
                for view in [
                    RunView::decided(outcome, &record(body.clone()), "alice"),
                    RunView::decided_from(outcome, record(body), "alice"),
                ] {
                    assert_eq!(encode(&view.plan), encode(&expected.plan));
                    assert_eq!((&view.stress, &view.gate), (&expected.stress, &expected.gate));
                    assert_eq!(view.binding_hash, expected.binding_hash);
                }
            }
        }
    }
}
