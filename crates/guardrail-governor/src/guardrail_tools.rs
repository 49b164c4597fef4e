//! Guardrail's own tools, beyond the four retrieval tools the planners use: the deploy gate's
//! SLO and cost blocks, a dry-run deploy decision and its explanation, a remediation proposal
//! (plan → stress → gate, never executed) and the approval queue.
//!
//! Like the retrieval tools, each is one [`ToolSpec`] (name, description, annotations, argument
//! and result types, handler) registered by [`crate::ToolRegistry::guardrail`]; the MCP server
//! lists and calls exactly these, with schemas generated from the types. The handlers validate
//! arguments here; what they read comes through [`GuardrailState`], implemented by an adapter
//! that owns the files and the audit store (`guardrail-mcp`'s `GateState`), so this crate stays
//! free of file and store code.
//!
//! The results are the governor's own views where one exists, so a field has the name it has
//! in `guardrail incident … --format json` and over HTTP: `incident_status` renders
//! [`IncidentSummary`] and [`IncidentDetail`]; `propose_remediation` renders a
//! [`ProposalView`] whose fields are [`crate::views::RunView`]'s (`decision`, `action`,
//! `binding_hash`, `requires`, `plan`, `stress`, `gate`) minus what only a recorded run has.
//!
//! **Nothing a client sends reaches a rule or a threshold.** No tool takes a threshold, a
//! policy or a rule as an argument: the deploy gate evaluates the configured files, and
//! `propose_remediation` runs the server's planner ([`GuardrailState::planner`]) with the
//! built-in rules. A
//! proposal never executes and records nothing; `evaluate_deploy` writes one audit record
//! only when asked with `record: true`.

use std::borrow::Cow;

use jiff::Timestamp;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use guardrail_core::audit::ChainedRecord;
use guardrail_core::cost::CostReport;
use guardrail_core::policy::Action;
use guardrail_core::remediation::{Incident, MAX_INCIDENT_TEXT, Severity};
use guardrail_core::signals::Signals;
use guardrail_core::slo::SloReport;
use guardrail_gate::decide::{Decided, Withheld};
use guardrail_gate::gate::Problem;
use guardrail_gate::inputs::{InputError, SettingsErrors};
use guardrail_gate::view::{AuditRef, EvaluateDeployView};
use guardrail_store::{AppendError, StoreError};

use crate::queue::incident_states;
use crate::record::{encode, requires};
use crate::tools::{READ_ONLY, SERVICE_PATTERN, Tool, ToolAnnotations, ToolContext, ToolError, ToolSpec, TraceEntry};
use crate::views::{IncidentDetail, IncidentSummary};
use crate::{Governor, PipelineError};

/// A JSON object: the schema of the plan, stress and gate contract objects, carried as their
/// encoding as in [`crate::views::RunView`] (their schemas are the contracts, documented with them).
type Object = Map<String, Value>;

/// What the Guardrail tools read. Every method evaluates one fresh snapshot of the configured
/// inputs at `now`; errors say what could not be read or decided (no filesystem paths are needed
/// in them, but adapters may include the configured file names).
pub trait GuardrailState {
    /// The SLO block (`guardrail slo --format json`).
    fn slo_status(&self, now: Timestamp) -> Result<SloReport, StateError>;
    /// The cost block (`guardrail cost --format json`).
    fn cost_status(&self, now: Timestamp) -> Result<CostReport, StateError>;
    /// The deploy decision (`guardrail gate --format json`), appended to the audit trail only
    /// when `record` is true. An adapter must withhold a decision it was asked to record and
    /// could not (an error, never an unrecorded decision).
    fn evaluate_deploy(&self, now: Timestamp, record: bool) -> Result<DeployEvaluation, StateError>;
    /// The decision explained in words, with its contributing factors and recommendations.
    fn explain_decision(&self, now: Timestamp) -> Result<DecisionExplanation, StateError>;
    /// The deploy gate's signals, for the remediation gate's signal rules.
    fn deploy_signals(&self, now: Timestamp) -> Result<Signals, StateError>;
    /// The audit trail's records, in chain order (the approval queue is folded from them).
    fn records(&self) -> Result<Vec<ChainedRecord>, StateError>;
    /// Who plans for `propose_remediation` (`guardrail mcp --planner`, `GUARDRAIL_PLANNER`, the
    /// governor config's `planner:`; [`crate::planner_select`]); the built-in planner by default.
    fn planner(&self) -> crate::planner_select::PlannerChoice {
        crate::planner_select::PlannerChoice::builtin()
    }
}

/// Why a [`GuardrailState`] could not answer. The text is what the tool reports (`isError`).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The deploy gate's settings (flags, environment) are invalid.
    #[error(transparent)]
    Settings(#[from] SettingsErrors),
    /// An input could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The SLO or cost block could not be computed: every problem, at its file and field.
    #[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Block {
        /// The problems.
        problems: Vec<Problem>,
    },
    /// The gate could not decide on the inputs: every problem (file, position and field in each).
    #[error("{}", .problems.join("; "))]
    Undecided {
        /// The problems.
        problems: Vec<String>,
    },
    /// Asked to record, the gate could not decide; a `deploy_error` record was attempted.
    #[error("{}", cannot_decide(problems, record))]
    NotDecided {
        /// Why it could not decide.
        problems: Vec<String>,
        /// The `deploy_error` record, or why it could not be appended and mirrored (boxed: an
        /// error stays small).
        record: Box<Result<ChainedRecord, AppendError>>,
    },
    /// Decided, but the decision could not be recorded: it is withheld.
    #[error(transparent)]
    Withheld(Box<Withheld>),
    /// The audit store could not be opened or read.
    #[error("audit store {store}: {source}")]
    Store {
        /// The store spec.
        store: String,
        /// The store's error.
        source: StoreError,
    },
    /// The deploy gate's signals (for `propose_remediation`'s signal rules) could not be had.
    #[error("the deploy gate's signals: {0}")]
    Signals(Box<StateError>),
}

fn cannot_decide(problems: &[String], record: &Result<ChainedRecord, AppendError>) -> String {
    let reason = problems.join("; ");
    let kind = guardrail_gate::gate::ERROR_KIND;
    match record {
        Ok(rec) => format!("could not decide: {reason} (recorded as {kind} audit record {})", rec.id()),
        Err(e) => match e.in_chain() {
            Some(r) => format!(
                "could not decide: {reason} (recorded as {kind} audit record {}; its JSONL mirror copy failed: {e})",
                r.id()
            ),
            None => format!("could not decide: {reason}; the {kind} record could not be written either: {e}"),
        },
    }
}

/// The six Guardrail tools, in the order they are listed.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool::of::<SloStatus>(),
        Tool::of::<CostStatus>(),
        Tool::of::<EvaluateDeploy>(),
        Tool::of::<ExplainDecision>(),
        Tool::of::<ProposeRemediation>(),
        Tool::of::<IncidentStatusTool>(),
    ]
}

fn state<'a>(tool: &'static str, ctx: &ToolContext<'a>) -> Result<&'a dyn GuardrailState, ToolError> {
    ctx.guardrail.ok_or(ToolError::Unavailable { tool, message: "no Guardrail state is configured".into() })
}

fn failed(tool: &'static str) -> impl Fn(StateError) -> ToolError {
    move |source| ToolError::State { tool, source: Box::new(source) }
}

/// No arguments (an empty object, or none at all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

// ---------------------------------------------------------------------------------------
// slo_status, cost_status

/// `slo_status`.
#[derive(Debug, Clone, Copy)]
pub struct SloStatus;

impl ToolSpec for SloStatus {
    const NAME: &'static str = "slo_status";
    const DESCRIPTION: &'static str = "The deploy gate's SLO block for the configured service: availability, error budget remaining, burn rate and label, p95/p99 latency against targets.";
    const ANNOTATIONS: ToolAnnotations = READ_ONLY;
    type Args = NoArgs;
    type Output = SloReport;

    fn run(ctx: &ToolContext<'_>, NoArgs {}: NoArgs) -> Result<SloReport, ToolError> {
        state(Self::NAME, ctx)?.slo_status(ctx.now).map_err(failed(Self::NAME))
    }
}

/// `cost_status`.
#[derive(Debug, Clone, Copy)]
pub struct CostStatus;

impl ToolSpec for CostStatus {
    const NAME: &'static str = "cost_status";
    const DESCRIPTION: &'static str = "The deploy gate's cost block: calendar-day spend, week-over-week change, trend and spike detection against the configured thresholds.";
    const ANNOTATIONS: ToolAnnotations = READ_ONLY;
    type Args = NoArgs;
    type Output = CostReport;

    fn run(ctx: &ToolContext<'_>, NoArgs {}: NoArgs) -> Result<CostReport, ToolError> {
        state(Self::NAME, ctx)?.cost_status(ctx.now).map_err(failed(Self::NAME))
    }
}

// ---------------------------------------------------------------------------------------
// evaluate_deploy

/// `evaluate_deploy`.
#[derive(Debug, Clone, Copy)]
pub struct EvaluateDeploy;

/// `evaluate_deploy`'s arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployArgs {
    /// Append the decision to the audit trail.
    #[serde(default)]
    pub record: bool,
}

/// `evaluate_deploy`'s result: a decision and, when it was recorded, its record. It serialises
/// as the deploy gate's one view ([`EvaluateDeployView`]: the fields of `guardrail gate --format
/// json` and `POST /api/gate`, plus `recorded`), and its schema is that view's.
#[derive(Debug, Clone)]
pub struct DeployEvaluation {
    /// The decision.
    pub decided: Decided,
    /// Its `deploy_decision` record, when it was asked to record (and did: a decision that could
    /// not be recorded is an error, never a result).
    pub audit: Option<AuditRef>,
}

impl DeployEvaluation {
    /// The view the tool answers.
    pub fn view(&self) -> EvaluateDeployView<'_> {
        let mut view = self.decided.view();
        view.audit = self.audit.clone();
        EvaluateDeployView { view, recorded: self.audit.is_some() }
    }
}

impl Serialize for DeployEvaluation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

impl JsonSchema for DeployEvaluation {
    fn schema_name() -> Cow<'static, str> {
        EvaluateDeployView::<'static>::schema_name()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        EvaluateDeployView::<'static>::json_schema(g)
    }
}

impl ToolSpec for EvaluateDeploy {
    const NAME: &'static str = "evaluate_deploy";
    const DESCRIPTION: &'static str = "The deploy decision (ALLOW, WARN, DELAY or BLOCK) the gate takes on the configured inputs now, with the deciding rule, the values compared, the trace and what would have to change. A dry run: nothing is recorded unless record is true, in which case one deploy_decision record is appended to the audit trail (and a decision that could not be recorded is withheld as an error).";
    // Appends a record when asked: not read-only, not idempotent (each call appends one more),
    // never destructive (the chain is append-only).
    const ANNOTATIONS: ToolAnnotations =
        ToolAnnotations { read_only: false, destructive: false, idempotent: false, open_world: false };
    type Args = DeployArgs;
    type Output = DeployEvaluation;

    fn run(ctx: &ToolContext<'_>, a: DeployArgs) -> Result<DeployEvaluation, ToolError> {
        let evaluation = state(Self::NAME, ctx)?.evaluate_deploy(ctx.now, a.record).map_err(failed(Self::NAME))?;
        // An adapter that answers an unrecorded decision to `record: true` breaks the contract:
        // fail closed rather than let a caller believe it is on the chain.
        if a.record && evaluation.audit.is_none() {
            return Err(ToolError::Unavailable {
                tool: Self::NAME,
                message: "the decision was not recorded; it is withheld".into(),
            });
        }
        Ok(evaluation)
    }
}

// ---------------------------------------------------------------------------------------
// explain_decision

/// The deploy decision explained: `explain_decision`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DecisionExplanation {
    /// The decided action.
    pub action: Action,
    /// The deciding rule (or the default action's id).
    pub policy_id: String,
    /// The verdict in words.
    pub verdict: String,
    /// What made the decision.
    pub contributing_factors: Vec<String>,
    /// Other matched rules and signals worth knowing.
    pub also_noted: Vec<String>,
    /// What to do.
    pub recommendations: Vec<String>,
    /// The whole explanation as text (as `guardrail explain` prints it).
    pub narrative: String,
    /// The evaluation time, RFC 3339.
    pub evaluated_at: String,
}

/// `explain_decision`.
#[derive(Debug, Clone, Copy)]
pub struct ExplainDecision;

impl ToolSpec for ExplainDecision {
    const NAME: &'static str = "explain_decision";
    const DESCRIPTION: &'static str = "The deploy decision explained in plain language: verdict, deciding rule, contributing factors, other matched rules and recommendations. Records nothing.";
    const ANNOTATIONS: ToolAnnotations = READ_ONLY;
    type Args = NoArgs;
    type Output = DecisionExplanation;

    fn run(ctx: &ToolContext<'_>, NoArgs {}: NoArgs) -> Result<DecisionExplanation, ToolError> {
        state(Self::NAME, ctx)?.explain_decision(ctx.now).map_err(failed(Self::NAME))
    }
}

// ---------------------------------------------------------------------------------------
// propose_remediation

/// `propose_remediation`.
#[derive(Debug, Clone, Copy)]
pub struct ProposeRemediation;

fn default_true() -> bool {
    true
}

/// `propose_remediation`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeArgs {
    /// The incident: id, service, severity, summary and symptoms (other fields are ignored).
    // Read by [`Incident::from_json_value_at`], whose messages name the field
    // (`incident.severity`, …); `IncidentSchema` is its schema.
    #[schemars(with = "IncidentSchema")]
    pub incident: Value,
    /// Feed the deploy gate's SLO/cost signals to the gate's signal rules (an error when they
    /// cannot be evaluated); false judges without them.
    #[serde(default = "default_true")]
    pub deploy_signals: bool,
}

/// An incident.
// The schema of an incident as [`Incident::from_json_value_at`] reads it (the core type has no
// schema of its own; the agreement test checks the two against each other). Other fields are
// ignored, as in scenario files.
#[derive(JsonSchema)]
#[allow(dead_code)] // only its schema is used
struct IncidentSchema {
    /// Identifier, e.g. `inc-001`: not blank, no control characters.
    #[schemars(regex(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    ))]
    id: String,
    /// The affected service.
    #[schemars(regex(pattern = SERVICE_PATTERN))]
    service: String,
    /// Severity.
    severity: Severity,
    /// One line, as reported.
    #[schemars(length(max = MAX_INCIDENT_TEXT))]
    summary: String,
    /// As reported.
    #[schemars(length(max = MAX_INCIDENT_TEXT))]
    symptoms: String,
}

/// `propose_remediation`'s result: the decision the governor would take, unrecorded. Field
/// names are [`crate::views::RunView`]'s.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ProposalView {
    /// The incident.
    pub incident_id: String,
    /// The incident's service.
    pub service: String,
    /// The incident's severity.
    pub severity: String,
    /// The gate's verdict: `execute` or `block_and_escalate`.
    pub decision: String,
    /// The gate rule that decided.
    pub rule: String,
    /// Every gate rule that fired.
    pub fired: Vec<String>,
    /// The gate's reasons.
    pub reasons: Vec<String>,
    /// The action the gate checked (the plan's proposed action).
    pub action: String,
    /// What an execution or an approval would be bound to.
    pub binding_hash: String,
    /// A human must approve before anything runs.
    pub requires_approval: bool,
    /// Only a FORCE_OVERRIDE would release it.
    pub requires_force_override: bool,
    /// For a blocked action: `approve` or `force_override`; `null` otherwise.
    pub requires: Option<String>,
    /// The plan (`planner`, `output`, `runbook`, …).
    #[schemars(with = "Object")]
    pub plan: Value,
    /// The stress assessment.
    #[schemars(with = "Object")]
    pub stress: Value,
    /// The gate decision (`rule`, `fired`, `compared`, `output`, …).
    #[schemars(with = "Object")]
    pub gate: Value,
    /// Every tool call the pipeline made, in order.
    pub trace: Vec<TraceEntry>,
    /// Whether the deploy gate's signals were fed to the signal rules.
    pub deploy_signals_used: bool,
    /// Always false: a proposal executes nothing.
    #[schemars(extend("const" = false))]
    pub executed: bool,
    /// Always false: a proposal records nothing.
    #[schemars(extend("const" = false))]
    pub recorded: bool,
    /// What a proposal is.
    pub note: String,
}

impl ToolSpec for ProposeRemediation {
    const NAME: &'static str = "propose_remediation";
    const DESCRIPTION: &'static str = "Runs the remediation governor on an incident — plan (the server's planner: built-in unless `--planner` chose a model), stress (evidence and policy retrieval), gate — and returns the decision (execute or block_and_escalate), the rule that decided and the binding hash. A proposal only: it never executes anything and records nothing; `guardrail incident run` is the way to act.";
    // Reads only; the same inputs at the same time give the same proposal.
    const ANNOTATIONS: ToolAnnotations = READ_ONLY;
    type Args = ProposeArgs;
    type Output = ProposalView;

    fn run(ctx: &ToolContext<'_>, a: ProposeArgs) -> Result<ProposalView, ToolError> {
        const TOOL: &str = ProposeRemediation::NAME;
        let incident = Incident::from_json_value_at(&a.incident, "incident")
            .map_err(|e| ToolError::InvalidArguments { tool: TOOL, message: e.to_string() })?;
        let signals = if a.deploy_signals {
            let signals = state(TOOL, ctx)?.deploy_signals(ctx.now);
            Some(signals.map_err(|e| failed(TOOL)(StateError::Signals(Box::new(e))))?)
        } else {
            None
        };
        // The retrieval tools only: a proposal cannot reach the deploy gate or the audit trail.
        let retrieval = ToolContext { guardrail: None, ..*ctx };
        // The server's planner (a model only proposes; the built-in rules decide).
        let governor = match ctx.guardrail {
            Some(s) => s.planner().governor(),
            None => Governor::default(),
        };
        let outcome = governor.run(&incident, &retrieval, signals.as_ref()).map_err(|f| match f.error {
            PipelineError::Tool(e) => e,
            e => ToolError::Unavailable { tool: TOOL, message: e.to_string() },
        })?;
        let blocked = outcome.gate.requires_approval;
        Ok(ProposalView {
            incident_id: incident.id.clone(),
            service: incident.service.clone(),
            severity: incident.severity.as_str().to_string(),
            decision: outcome.gate.output.decision.as_str().to_string(),
            rule: outcome.gate.rule.clone(),
            fired: outcome.gate.fired.clone(),
            reasons: outcome.gate.output.reasons.clone(),
            action: outcome.gated_action().to_string(),
            binding_hash: outcome.binding_hash(),
            requires_approval: outcome.gate.requires_approval,
            requires_force_override: outcome.gate.requires_force_override,
            requires: blocked.then(|| requires(&incident, &outcome).to_string()),
            plan: encode(&outcome.plan),
            stress: encode(&outcome.stress.assessment),
            gate: encode(&outcome.gate),
            trace: outcome.trace.clone(),
            deploy_signals_used: signals.is_some(),
            executed: false,
            recorded: false,
            note:
                "a proposal only: nothing was executed or recorded; `guardrail incident run` decides, records and acts"
                    .into(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// incident_status

/// `incident_status`.
#[derive(Debug, Clone, Copy)]
pub struct IncidentStatusTool;

/// `incident_status`'s arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentArgs {
    /// One incident; every incident when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub incident_id: Option<String>,
}

/// `incident_status`'s result: every incident's summary, or one incident in full.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(extend("type" = "object"))]
pub enum IncidentStatusResult {
    /// Every incident (`guardrail incident list`, `GET /api/incidents`).
    All {
        /// One summary per incident.
        incidents: Vec<IncidentSummary>,
    },
    /// One incident (`guardrail incident show`, `GET /api/incidents/{id}`).
    One(Box<IncidentDetail>),
}

impl ToolSpec for IncidentStatusTool {
    const NAME: &'static str = "incident_status";
    const DESCRIPTION: &'static str = "The approval queue from the audit trail: every incident's state (awaiting_approval, authorised, executed, execution_failed, resolved, decided, error), or one incident's state, pending request, authorisation, execution claims and records.";
    const ANNOTATIONS: ToolAnnotations = READ_ONLY;
    type Args = IncidentArgs;
    type Output = IncidentStatusResult;

    fn run(ctx: &ToolContext<'_>, a: IncidentArgs) -> Result<IncidentStatusResult, ToolError> {
        const TOOL: &str = IncidentStatusTool::NAME;
        if a.incident_id.as_deref() == Some("") {
            return Err(ToolError::InvalidArguments { tool: TOOL, message: "incident_id: is empty".into() });
        }
        let records = state(TOOL, ctx)?.records().map_err(failed(TOOL))?;
        let states = incident_states(&records);
        match a.incident_id {
            None => Ok(IncidentStatusResult::All { incidents: states.values().map(IncidentSummary::new).collect() }),
            Some(id) => {
                let st = states.get(&id).ok_or_else(|| ToolError::InvalidArguments {
                    tool: TOOL,
                    message: format!("incident_id: no record of incident \"{id}\" in the audit trail"),
                })?;
                Ok(IncidentStatusResult::One(Box::new(IncidentDetail::new(st))))
            }
        }
    }
}
