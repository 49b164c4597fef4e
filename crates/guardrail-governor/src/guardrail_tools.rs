//! Guardrail's own tools, beyond the four retrieval tools the planners use: the deploy gate's
//! SLO and cost blocks, a dry-run deploy decision and its explanation, a remediation proposal
//! (plan → stress → gate, never executed) and the approval queue.
//!
//! Like the retrieval tools, each is defined once (name, description, JSON schema,
//! annotations, handler) and registered by [`crate::ToolRegistry::guardrail`]; the MCP server
//! lists and calls exactly these. The handlers validate arguments here; what they read comes
//! through [`GuardrailState`], implemented by an adapter that owns the files and the audit
//! store (`guardrail-mcp`'s `GateState`), so this crate stays free of file and store code.
//!
//! **Nothing a client sends reaches a rule or a threshold.** No tool takes a threshold, a
//! policy or a rule as an argument: the deploy gate evaluates the configured files, and
//! `propose_remediation` runs [`crate::Governor::default`] with its built-in rules. A
//! proposal never executes and records nothing; `evaluate_deploy` writes one audit record
//! only when asked with `record: true`.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use guardrail_core::audit::ChainedRecord;
use guardrail_core::remediation::Incident;
use guardrail_core::signals::Signals;

use crate::queue::{IncidentState, incident_states};
use crate::tools::{Tool, ToolAnnotations, ToolContext, ToolError};
use crate::{Governor, PipelineError};

/// What the Guardrail tools read. Every method evaluates one fresh snapshot of the configured
/// inputs at `now`; errors are messages for the caller (no filesystem paths are needed in them,
/// but adapters may include the configured file names).
pub trait GuardrailState {
    /// The SLO block (`guardrail slo --format json`).
    fn slo_status(&self, now: Timestamp) -> Result<Value, String>;
    /// The cost block (`guardrail cost --format json`).
    fn cost_status(&self, now: Timestamp) -> Result<Value, String>;
    /// The deploy decision (`guardrail gate --format json`), appended to the audit trail only
    /// when `record` is true. An adapter must withhold a decision it was asked to record and
    /// could not (an error, never an unrecorded decision).
    fn evaluate_deploy(&self, now: Timestamp, record: bool) -> Result<Value, String>;
    /// The decision explained in words, with its contributing factors and recommendations.
    fn explain_decision(&self, now: Timestamp) -> Result<Value, String>;
    /// The deploy gate's signals, for the remediation gate's signal rules.
    fn deploy_signals(&self, now: Timestamp) -> Result<Signals, String>;
    /// The audit trail's records, in chain order (the approval queue is folded from them).
    fn records(&self) -> Result<Vec<ChainedRecord>, String>;
}

fn no_args_schema() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": false})
}

const READ_ONLY: ToolAnnotations =
    ToolAnnotations { read_only: true, destructive: false, idempotent: true, open_world: false };

/// The six Guardrail tools, in the order they are listed.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "slo_status",
            description: "The deploy gate's SLO block for the configured service: availability, error budget remaining, burn rate and label, p95/p99 latency against targets.",
            input_schema: no_args_schema(),
            annotations: READ_ONLY,
            handler: slo_status,
        },
        Tool {
            name: "cost_status",
            description: "The deploy gate's cost block: calendar-day spend, week-over-week change, trend and spike detection against the configured thresholds.",
            input_schema: no_args_schema(),
            annotations: READ_ONLY,
            handler: cost_status,
        },
        Tool {
            name: "evaluate_deploy",
            description: "The deploy decision (ALLOW, WARN, DELAY or BLOCK) the gate takes on the configured inputs now, with the deciding rule, the values compared, the trace and what would have to change. A dry run: nothing is recorded unless record is true, in which case one deploy_decision record is appended to the audit trail (and a decision that could not be recorded is withheld as an error).",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "record": {"type": "boolean", "default": false, "description": "Append the decision to the audit trail."}
                },
                "additionalProperties": false
            }),
            // Appends a record when asked: not read-only, not idempotent (each call appends one
            // more), never destructive (the chain is append-only).
            annotations: ToolAnnotations { read_only: false, destructive: false, idempotent: false, open_world: false },
            handler: evaluate_deploy,
        },
        Tool {
            name: "explain_decision",
            description: "The deploy decision explained in plain language: verdict, deciding rule, contributing factors, other matched rules and recommendations. Records nothing.",
            input_schema: no_args_schema(),
            annotations: READ_ONLY,
            handler: explain_decision,
        },
        Tool {
            name: "propose_remediation",
            description: "Runs the remediation governor on an incident — plan (built-in planner), stress (evidence and policy retrieval), gate — and returns the verdict (execute or block_and_escalate), the rule that decided and the binding hash. A proposal only: it never executes anything and records nothing; `guardrail incident run` is the way to act.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "incident": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string", "minLength": 1},
                            "service": {"type": "string"},
                            "severity": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
                            "summary": {"type": "string"},
                            "symptoms": {"type": "string"}
                        },
                        "required": ["id", "service", "severity", "summary", "symptoms"]
                    },
                    "deploy_signals": {
                        "type": "boolean",
                        "default": true,
                        "description": "Feed the deploy gate's SLO/cost signals to the gate's signal rules (an error when they cannot be evaluated); false judges without them."
                    }
                },
                "required": ["incident"],
                "additionalProperties": false
            }),
            // Reads only; the same inputs at the same time give the same proposal.
            annotations: READ_ONLY,
            handler: propose_remediation,
        },
        Tool {
            name: "incident_status",
            description: "The approval queue from the audit trail: every incident's state (awaiting_approval, authorised, executed, execution_failed, resolved, decided, error), or one incident's state, pending request, authorisation and records.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "incident_id": {"type": "string", "minLength": 1}
                },
                "additionalProperties": false
            }),
            annotations: READ_ONLY,
            handler: incident_status,
        },
    ]
}

fn args<T: for<'de> Deserialize<'de>>(tool: &'static str, v: Value) -> Result<T, ToolError> {
    let v = if v.is_null() { json!({}) } else { v };
    serde_json::from_value(v).map_err(|e| ToolError::InvalidArguments { tool, message: e.to_string() })
}

fn state<'a>(tool: &'static str, ctx: &ToolContext<'a>) -> Result<&'a dyn GuardrailState, ToolError> {
    ctx.guardrail.ok_or(ToolError::Unavailable { tool, message: "no Guardrail state is configured".into() })
}

fn failed(tool: &'static str) -> impl Fn(String) -> ToolError {
    move |message| ToolError::Unavailable { tool, message }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

fn slo_status(ctx: &ToolContext<'_>, v: Value) -> Result<Value, ToolError> {
    const TOOL: &str = "slo_status";
    let NoArgs {} = args(TOOL, v)?;
    state(TOOL, ctx)?.slo_status(ctx.now).map_err(failed(TOOL))
}

fn cost_status(ctx: &ToolContext<'_>, v: Value) -> Result<Value, ToolError> {
    const TOOL: &str = "cost_status";
    let NoArgs {} = args(TOOL, v)?;
    state(TOOL, ctx)?.cost_status(ctx.now).map_err(failed(TOOL))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployArgs {
    #[serde(default)]
    record: bool,
}

fn evaluate_deploy(ctx: &ToolContext<'_>, v: Value) -> Result<Value, ToolError> {
    const TOOL: &str = "evaluate_deploy";
    let a: DeployArgs = args(TOOL, v)?;
    state(TOOL, ctx)?.evaluate_deploy(ctx.now, a.record).map_err(failed(TOOL))
}

fn explain_decision(ctx: &ToolContext<'_>, v: Value) -> Result<Value, ToolError> {
    const TOOL: &str = "explain_decision";
    let NoArgs {} = args(TOOL, v)?;
    state(TOOL, ctx)?.explain_decision(ctx.now).map_err(failed(TOOL))
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeArgs {
    incident: Value,
    #[serde(default = "default_true")]
    deploy_signals: bool,
}

fn propose_remediation(ctx: &ToolContext<'_>, v: Value) -> Result<Value, ToolError> {
    const TOOL: &str = "propose_remediation";
    let a: ProposeArgs = args(TOOL, v)?;
    let incident = Incident::from_json_value_at(&a.incident, "incident")
        .map_err(|e| ToolError::InvalidArguments { tool: TOOL, message: e.to_string() })?;
    let signals =
        if a.deploy_signals { Some(state(TOOL, ctx)?.deploy_signals(ctx.now).map_err(failed(TOOL))?) } else { None };
    // The retrieval tools only: a proposal cannot reach the deploy gate or the audit trail.
    let retrieval = ToolContext { guardrail: None, ..*ctx };
    let governor = Governor::default();
    let outcome = governor.run(&incident, &retrieval, signals.as_ref()).map_err(|f| match f.error {
        PipelineError::Tool(e) => e,
        e => ToolError::Unavailable { tool: TOOL, message: e.to_string() },
    })?;
    Ok(json!({
        "incident_id": incident.id,
        "verdict": outcome.gate.output.decision,
        "rule": outcome.gate.rule,
        "fired": outcome.gate.fired,
        "requires_approval": outcome.gate.requires_approval,
        "requires_force_override": outcome.gate.requires_force_override,
        "gated_action": outcome.gated_action(),
        "binding_hash": outcome.binding_hash(),
        "deploy_signals_used": signals.is_some(),
        "executed": false,
        "recorded": false,
        "note": "a proposal only: nothing was executed or recorded; `guardrail incident run` decides, records and acts",
        "outcome": outcome,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentArgs {
    #[serde(default)]
    incident_id: Option<String>,
}

fn summary(st: &IncidentState) -> Value {
    json!({
        "incident_id": st.incident_id,
        "status": st.status(),
        "decision": st.decision.as_ref().and_then(|d| d.body.get("decision")).cloned(),
        "gated_action": st.decision.as_ref().and_then(|d| d.body.get("gated_action")).cloned(),
        "pending_request": st.pending.as_ref().map(ChainedRecord::id),
        "authorised": st.authorised.as_ref().map(|a| json!({
            "record": a.record, "by": a.by, "approver": a.approver, "action": a.action, "binding_hash": a.binding_hash,
        })),
        "last_record": st.last_record(),
        "records": st.records.len(),
    })
}

fn incident_status(ctx: &ToolContext<'_>, v: Value) -> Result<Value, ToolError> {
    const TOOL: &str = "incident_status";
    let a: IncidentArgs = args(TOOL, v)?;
    let records = state(TOOL, ctx)?.records().map_err(failed(TOOL))?;
    let states = incident_states(&records);
    match a.incident_id {
        None => Ok(json!({"incidents": states.values().map(summary).collect::<Vec<_>>()})),
        Some(id) => {
            let st = states.get(&id).ok_or_else(|| ToolError::InvalidArguments {
                tool: TOOL,
                message: format!("incident_id: no record of incident \"{id}\" in the audit trail"),
            })?;
            let mut out = summary(st);
            if let Value::Object(m) = &mut out {
                let recs: Vec<Value> = st
                    .records
                    .iter()
                    .map(|r| json!({"id": r.id(), "kind": r.kind, "recorded_at": r.recorded_at}))
                    .collect();
                m.insert("records".into(), json!(recs));
                m.insert("pending".into(), json!(st.pending.as_ref().map(|p| &p.body)));
            }
            Ok(out)
        }
    }
}
