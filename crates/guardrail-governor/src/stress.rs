//! The stress phase: every gate input is computed here from retrieval, never reported.
//!
//! For each claim of the plan, two evidence searches (the first commit's support-oriented and
//! contradiction-oriented searches), each restricted to one recorded stance so that supporting
//! documents cannot crowd contradicting ones out of the top k; then the action policies for
//! the proposed action; and the live logs, recorded as telemetry. The arithmetic is
//! [`guardrail_core::remediation::assess_stress`].
//!
//! Live telemetry is recorded, not counted as support: a log full of 5xx shows that something
//! is wrong, not that the proposed action fixes it (the first commit counted 5xx log hits as
//! supporting documents when evidence search came back empty).

use serde::Serialize;

use guardrail_core::remediation::{
    ClaimRetrieval, EvidenceRef, Incident, PolicyConflict, RemediationRules, Stance, StressAssessment, assess_stress,
};

use crate::PipelineError;
use crate::planner::PlanResult;
use crate::tools::{
    CheckPolicyConflicts, EvidenceArgs, LogsArgs, Phase, PolicyArgs, QueryLiveLogs, SearchEvidence, SeverityArg,
    ToolRunner,
};

/// Stress settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StressSettings {
    /// Documents per evidence search (the first commit's top 3).
    pub evidence_k: u32,
}

impl Default for StressSettings {
    fn default() -> Self {
        StressSettings { evidence_k: 3 }
    }
}

/// The stress phase's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StressResult {
    /// The arithmetic's result, with the contract object in `assessment.output`.
    pub assessment: StressAssessment,
    /// What retrieval returned per claim.
    pub retrievals: Vec<ClaimRetrieval>,
    /// The `query_live_logs` result (its JSON is the tool's answer in the trace).
    pub telemetry: crate::tools::LiveLogs,
}

fn evidence(
    tools: &mut ToolRunner<'_, '_>,
    claim: &str,
    service: &str,
    k: u32,
    stance: Stance,
) -> Result<Vec<EvidenceRef>, PipelineError> {
    let args = EvidenceArgs { query: claim.to_string(), service: service.to_string(), top_k: k, stance: Some(stance) };
    let hits = tools.call_tool::<SearchEvidence>(Phase::Stress, &args)?;
    Ok(hits.into_iter().map(|h| EvidenceRef { id: h.id, service: h.service, stance: h.stance }).collect())
}

/// Runs the stress phase for a plan.
pub fn run_stress(
    incident: &Incident,
    plan: &PlanResult,
    tools: &mut ToolRunner<'_, '_>,
    rules: &RemediationRules,
    settings: StressSettings,
) -> Result<StressResult, PipelineError> {
    let service = incident.service.as_str();
    let logs = LogsArgs { service: Some(service.to_string()), window_minutes: None };
    // Kept as it came: recorded, never counted (see the module doc).
    let telemetry = tools.call_tool::<QueryLiveLogs>(Phase::Stress, &logs)?;
    let mut retrievals = Vec::with_capacity(plan.output.key_claims.len());
    for claim in &plan.output.key_claims {
        let support_hits = evidence(tools, claim, service, settings.evidence_k, Stance::Support)?;
        let contradiction_hits = evidence(tools, claim, service, settings.evidence_k, Stance::Contradict)?;
        retrievals.push(ClaimRetrieval { claim: claim.clone(), support_hits, contradiction_hits });
    }
    let args = PolicyArgs {
        service: service.to_string(),
        action: plan.output.proposed_action.clone(),
        severity: SeverityArg(incident.severity),
    };
    let conflicts: Vec<PolicyConflict> = tools.call_tool::<CheckPolicyConflicts>(Phase::Stress, &args)?;
    let assessment = assess_stress(incident, &plan.output, &retrievals, &conflicts, rules)?;
    Ok(StressResult { assessment, retrievals, telemetry })
}
