//! The audit bodies of a pipeline run — `remediation_error`, `remediation_decision` and the
//! `approval_request` of a blocked action — built in one place for `guardrail incident run`
//! and `guardrail serve`'s `POST /api/incidents`, so the queue fold ([`crate::queue`]) reads
//! the same records whoever wrote them.

use guardrail_core::approval::ApprovalPolicy;
use guardrail_core::remediation::{Incident, Severity};
use serde_json::{Value, json};

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
    json!({
        "incident_id": incident.id, "incident": incident, "origin": origin,
        "proposer": ctx.proposer, "errors": [failure.error.to_string()], "trace": failure.trace,
        "knowledge_base": ctx.knowledge_base,
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
    json!({
        "incident_id": incident.id,
        "incident": incident,
        "origin": origin,
        "proposer": ctx.proposer,
        "gated_action": outcome.gated_action(),
        "binding_hash": outcome.binding_hash(),
        "decision": outcome.gate.output.decision.as_str(),
        "rule": outcome.gate.rule,
        "reasons": outcome.gate.output.reasons,
        "requires_force_override": outcome.gate.requires_force_override,
        "outcome": outcome,
        "knowledge_base": ctx.knowledge_base,
        "logs": ctx.logs,
        "deploy_signals": ctx.deploy_signals,
        "governor_config": ctx.governor_config,
        "gate_inputs": gate_inputs,
    })
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
    let requires = requires(incident, outcome);
    json!({
        "incident_id": incident.id,
        "severity": incident.severity,
        "proposer": ctx.proposer,
        "action": outcome.gated_action(),
        "binding_hash": outcome.binding_hash(),
        "decision_record": decision_record,
        "requires": requires,
        "requires_force_override": requires == "force_override",
        "reasons": outcome.gate.output.reasons,
        "eligible": policy.for_severity(incident.severity),
    })
}

/// The executor for `kind`, else the config's `executor.default` (dry-run unless configured).
pub fn executor_for(
    cfg: &guardrail_core::approval::GovernorConfig,
    kind: Option<guardrail_core::approval::ExecutorKind>,
) -> Result<Box<dyn crate::Executor>, String> {
    use guardrail_core::approval::ExecutorKind;
    let timeout = std::time::Duration::from_secs(u64::from(cfg.executor.timeout_seconds.max(1)));
    Ok(match kind.unwrap_or(cfg.executor.default) {
        ExecutorKind::DryRun => Box::new(crate::DryRunExecutor { commands: cfg.executor.commands.clone() }),
        ExecutorKind::Command => Box::new(crate::CommandExecutor { commands: cfg.executor.commands.clone(), timeout }),
        ExecutorKind::Webhook => {
            let url = cfg
                .executor
                .webhook_url
                .clone()
                .ok_or("the webhook executor needs executor.webhook_url in the governor config")?;
            Box::new(crate::WebhookExecutor { url, timeout, ca_file: cfg.executor.webhook_ca_file.clone() })
        }
    })
}
