//! Guardrail's remediation governor: incident → plan → stress → gate.
//!
//! The original governor asked a model for every number its gate compared. Here:
//! - the **plan** comes from a [`Planner`]; the default [`BuiltinPlanner`] is deterministic and
//!   needs no network (it reproduces the original's first commit offline); [`ModelPlanner`]
//!   lets a model choose among the actions the knowledge base offers, with the read-only tools,
//!   within budgets, failing closed, its context cut by [`compress`] and its whole exchange kept
//!   as a [`Transcript`] that the pipeline records before the decision;
//! - the **stress** phase ([`stress::run_stress`]) computes evidence coverage, support
//!   documents, verified contradictions and policy conflicts from retrieval, through the same
//!   [`tools::ToolRegistry`] a model-backed planner would be given;
//! - the **gate** is [`guardrail_core::remediation::gate`], a pure function whose rules and
//!   thresholds come only from [`RemediationRules`];
//! - **execution** ([`execute`]) runs only an action whose binding hash matches what the gate
//!   (or an approval, [`guardrail_core::approval`]) authorised, on a dry-run, command or webhook
//!   [`Executor`].
//!
//! A retrieval that fails (no knowledge base, a broken index, an unreadable logs file) stops
//! the pipeline with an error; it never reads as "no evidence", and "no evidence" blocks
//! anyway. Nothing here reads a clock: `now` is in the [`ToolContext`].

use serde::Serialize;

use guardrail_core::remediation::{
    GateDecision, Incident, IncidentError, RemediationRules, StressError, check_rules, gate_planned,
};
use guardrail_core::signals::Signals;
use guardrail_knowledge::KnowledgeError;

pub mod approve;
pub mod claims;
pub mod compress;
pub mod contracts;
pub mod execute;
pub mod guardrail_tools;
pub mod knowledge_select;
pub mod learn;
pub mod logs;
pub mod model_planner;
pub mod pipeline;
pub mod planner;
pub mod planner_select;
pub mod queue;
pub mod record;
pub mod replay;
pub mod store_log;
pub mod stress;
pub mod tools;
pub mod transcript;
pub mod views;

pub use execute::{
    AuthorisedAction, CommandExecutor, DryRunExecutor, ExecutionError, ExecutionReport, Executor, WebhookExecutor,
    authorise, execute_checked,
};
pub use knowledge_select::{KnowledgeChoice, LiveLogsSource, select_knowledge};
pub use logs::ElasticLogs;
pub use logs::{LogsSource, NdjsonLogs};
pub use model_planner::{
    AcceptedPlan, Fallback, ModelPlanner, ModelPlannerSettings, PlanRejection, accept_plan, fail_closed_plan,
    offered_actions,
};
pub use planner::{BuiltinPlanner, PlanResult, Planner, RequestedActionPlanner};
pub use stress::{StressResult, StressSettings};
pub use tools::{Tool, ToolContext, ToolError, ToolRegistry, ToolRunner, TraceEntry};
pub use transcript::{PlannerFailure, Transcript, TranscriptRef};

/// Why the pipeline could not reach a decision. None of these is a decision: the caller must
/// treat them as "could not decide" (exit 3 in the CLI), never as "execute".
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The knowledge base lacks what the governor needs to decide safely.
    #[error("knowledge base unusable: {0}")]
    KnowledgeBase(String),
    /// The knowledge store failed.
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    /// A tool call failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A tool returned something its caller cannot read.
    #[error("{tool} returned an unexpected result: {message}")]
    ToolOutput {
        /// The tool.
        tool: String,
        /// What was wrong.
        message: String,
    },
    /// The plan violates its contract.
    #[error("the plan violates its contract: {0}")]
    InvalidPlan(String),
    /// The stress arithmetic refused its inputs.
    #[error(transparent)]
    Stress(#[from] StressError),
    /// The rules are invalid.
    #[error("remediation rules are invalid: {0}")]
    InvalidRules(String),
}

/// A pipeline error with the tool calls made before it (for the audit record).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct PipelineFailure {
    /// What failed.
    pub error: PipelineError,
    /// Tool calls made before the failure.
    pub trace: Vec<TraceEntry>,
}

/// Everything one run produced. Serialises for the audit record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineOutcome {
    /// The incident.
    pub incident: Incident,
    /// The plan (contract object in `plan.output`).
    pub plan: PlanResult,
    /// The stress phase (contract object in `stress.assessment.output`).
    pub stress: StressResult,
    /// The gate's decision (contract object in `gate.output`).
    pub gate: GateDecision,
    /// Every tool call, in order.
    pub trace: Vec<TraceEntry>,
}

impl PipelineOutcome {
    /// The action the gate checked: the plan's proposed action. An execute decision runs it;
    /// an approval of a block releases it.
    pub fn gated_action(&self) -> &str {
        &self.plan.output.proposed_action
    }

    /// [`guardrail_core::approval::binding_hash`] of the incident, the plan and the gated action.
    pub fn binding_hash(&self) -> String {
        guardrail_core::approval::binding_hash(&self.incident, &self.plan.output, self.gated_action())
    }
}

/// The governor's configuration: tools, planner, rules.
pub struct Governor {
    /// The tools.
    pub registry: ToolRegistry,
    /// The planner.
    pub planner: Box<dyn Planner>,
    /// Gate rules and stress arithmetic.
    pub rules: RemediationRules,
    /// Stress retrieval settings.
    pub stress: StressSettings,
}

impl Default for Governor {
    /// Built-in tools and planner, [`RemediationRules::default`].
    fn default() -> Self {
        Governor {
            registry: ToolRegistry::builtin(),
            planner: Box::new(BuiltinPlanner::default()),
            rules: RemediationRules::default(),
            stress: StressSettings::default(),
        }
    }
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("planner", &self.planner.name())
            .field("rules", &self.rules)
            .field("stress", &self.stress)
            .finish_non_exhaustive()
    }
}

impl Governor {
    /// Runs plan → stress → gate for one incident. `deploy_signals` are the deploy gate's
    /// signals for the service, when the caller has them (the signal rules need them).
    pub fn run(
        &self,
        incident: &Incident,
        ctx: &ToolContext<'_>,
        deploy_signals: Option<&Signals>,
    ) -> Result<PipelineOutcome, PipelineFailure> {
        let mut runner = ToolRunner::new(&self.registry, ctx);
        match self.run_with(incident, ctx, deploy_signals, &mut runner) {
            Ok((plan, stress, gate)) => {
                Ok(PipelineOutcome { incident: incident.clone(), plan, stress, gate, trace: runner.into_trace() })
            }
            Err(error) => Err(PipelineFailure { error, trace: runner.into_trace() }),
        }
    }

    fn run_with(
        &self,
        incident: &Incident,
        ctx: &ToolContext<'_>,
        deploy_signals: Option<&Signals>,
        runner: &mut ToolRunner<'_, '_>,
    ) -> Result<(PlanResult, StressResult, GateDecision), PipelineError> {
        let errors: Vec<String> = check_rules(&self.rules)
            .into_iter()
            .filter(|i| i.severity == guardrail_core::policy::Severity::Error)
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect();
        if !errors.is_empty() {
            return Err(PipelineError::InvalidRules(errors.join("; ")));
        }
        let stats = ctx.store.stats()?;
        if stats.runbooks_reviewed == 0 {
            return Err(PipelineError::KnowledgeBase(
                "it holds no reviewed runbook; load runbooks (e.g. the sample data) first".into(),
            ));
        }
        if stats.policies == 0 {
            return Err(PipelineError::KnowledgeBase(
                "it holds no action policy, so no policy conflict could ever be found; load policies first".into(),
            ));
        }
        let plan = self.planner.plan(incident, runner)?;
        let violations = plan.output.contract_violations();
        if !violations.is_empty() {
            return Err(PipelineError::InvalidPlan(violations.join("; ")));
        }
        if plan.output.incident_id != incident.id {
            return Err(PipelineError::InvalidPlan(format!(
                "plan is for {}, the incident is {}",
                plan.output.incident_id, incident.id
            )));
        }
        let stress = stress::run_stress(incident, &plan, runner, &self.rules, self.stress)?;
        let failure = plan.failure.as_ref().map(ToString::to_string);
        let decision = gate_planned(
            &plan.output,
            &stress.assessment.output,
            incident.severity,
            deploy_signals,
            &self.rules,
            failure.as_deref(),
        );
        Ok((plan, stress, decision))
    }
}

/// Runs the default governor (built-in planner, default rules, no deploy signals).
pub fn run_pipeline(incident: &Incident, ctx: &ToolContext<'_>) -> Result<PipelineOutcome, PipelineFailure> {
    Governor::default().run(incident, ctx, None)
}

/// Why an incident file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IncidentFileError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_INCIDENT_FILE_BYTES`].
    #[error("{path}: is too large (more than {limit} bytes); an incident file holds at most 16 MiB")]
    TooLarge {
        /// The file.
        path: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// An incident in it is invalid.
    #[error("{path}: {source}")]
    Incident {
        /// The file.
        path: String,
        /// The error, naming the field.
        source: IncidentError,
    },
}

/// Largest incident file read, in bytes (16 MiB, the limit of every other input). Real files
/// hold a few incidents in a few kilobytes.
pub const MAX_INCIDENT_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Most incidents one file (or text) may hold. Each is planned, stressed, gated and recorded
/// in turn, so a file of 262,144 incidents would run for hours and flood the audit chain.
pub const MAX_INCIDENTS_PER_FILE: usize = 1000;

/// The error for a list longer than [`MAX_INCIDENTS_PER_FILE`], at its first extra item.
fn too_many(prefix: &str, count: usize) -> IncidentError {
    IncidentError::Field {
        field: format!("{prefix}[{MAX_INCIDENTS_PER_FILE}]"),
        message: format!(
            "one file holds at most {MAX_INCIDENTS_PER_FILE} incidents, this one holds {count}; split it into smaller files"
        ),
    }
}

/// Reads incidents from JSON text: one incident object (the original's `scenarios/*.json`), a
/// list of them, or an object with an `incidents` list (`sample_data.json`); at most
/// [`MAX_INCIDENTS_PER_FILE`].
pub fn parse_incidents(text: &str) -> Result<Vec<Incident>, IncidentError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| IncidentError::Syntax(e.to_string()))?;
    match &v {
        serde_json::Value::Array(xs) if xs.len() > MAX_INCIDENTS_PER_FILE => Err(too_many("", xs.len())),
        serde_json::Value::Array(xs) => {
            xs.iter().enumerate().map(|(i, x)| Incident::from_json_value_at(x, &format!("[{i}]"))).collect()
        }
        serde_json::Value::Object(m) if m.contains_key("incidents") => match m.get("incidents") {
            Some(serde_json::Value::Array(xs)) if xs.len() > MAX_INCIDENTS_PER_FILE => {
                Err(too_many("incidents", xs.len()))
            }
            Some(serde_json::Value::Array(xs)) => xs
                .iter()
                .enumerate()
                .map(|(i, x)| Incident::from_json_value_at(x, &format!("incidents[{i}]")))
                .collect(),
            _ => Err(IncidentError::Field { field: "incidents".into(), message: "must be a list".into() }),
        },
        other => Incident::from_json_value(other).map(|i| vec![i]),
    }
}

/// Reads an incident file (see [`parse_incidents`]) of at most [`MAX_INCIDENT_FILE_BYTES`].
pub fn load_incidents(path: &std::path::Path) -> Result<Vec<Incident>, IncidentFileError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let io = |source| IncidentFileError::Io { path: shown.clone(), source };
    // Read one byte past the limit instead of trusting the size the file system reports
    // (a pipe or a growing file has none).
    let mut text = String::new();
    std::fs::File::open(path).map_err(io)?.take(MAX_INCIDENT_FILE_BYTES + 1).read_to_string(&mut text).map_err(io)?;
    if text.len() as u64 > MAX_INCIDENT_FILE_BYTES {
        return Err(IncidentFileError::TooLarge { path: shown, limit: MAX_INCIDENT_FILE_BYTES });
    }
    parse_incidents(&text).map_err(|source| IncidentFileError::Incident { path: shown, source })
}
