//! The contract objects ([`PlanOutput`], [`StressOutput`], [`GateOutput`]): they serialise
//! exactly to the original's `contracts/*.schema.json` (`additionalProperties: false`).

use serde::{Deserialize, Serialize};

/// `plan_output.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanOutput {
    /// Incident id.
    pub incident_id: String,
    /// The action, normalised.
    pub proposed_action: String,
    /// Why, in words.
    pub rationale: String,
    /// What the action relies on; at least one.
    pub key_claims: Vec<String>,
    /// 0–10.
    pub confidence_initial: f64,
    /// Ids of the runbooks retrieved.
    pub retrieved_context_ids: Vec<String>,
}

/// One claim's evidence in `stress_output.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimEvidence {
    /// The claim.
    pub claim: String,
    /// Supporting document ids.
    pub support_docs: Vec<String>,
    /// Verified contradicting document ids.
    pub contradiction_docs: Vec<String>,
}

/// `stress_output.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StressOutput {
    /// Incident id.
    pub incident_id: String,
    /// One entry per plan claim, in order.
    pub claim_evidence: Vec<ClaimEvidence>,
    /// Verified contradicting documents, counted per claim (the first commit's count).
    pub contradiction_count: u32,
    /// Ids of the conflicting action policies.
    pub policy_conflicts: Vec<String>,
    /// Always true: no model takes part in Guardrail's stress phase, so no fabricated
    /// authority can be accepted.
    pub fabricated_authority_rejected: bool,
    /// 0–10.
    pub confidence_post_stress: f64,
    /// The plan's action, or [`PAUSE_POSITION`](super::PAUSE_POSITION) on hard evidence.
    pub position_after_stress: String,
    /// Share of claims with at least one document, 0–1.
    pub integration_quality: f64,
}

/// The gate's two outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Go ahead automatically.
    Execute,
    /// Do not act automatically; a human decides.
    BlockAndEscalate,
}

impl Verdict {
    /// As in the contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Execute => "execute",
            Verdict::BlockAndEscalate => "block_and_escalate",
        }
    }
}

/// `gate_output.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateOutput {
    /// Incident id.
    pub incident_id: String,
    /// The plan's action.
    pub initial_position: String,
    /// The stress phase's position.
    pub final_position: String,
    /// 0–10.
    pub confidence_initial: f64,
    /// 0–10.
    pub confidence_final: f64,
    /// Initial minus final, 0–10, two decimals.
    pub confidence_delta: f64,
    /// 1 when the position changed or confidence fell by at least `act_delta`.
    pub act: u8,
    /// Integration quality (= evidence coverage).
    pub iii: f64,
    /// 0 when the position changed, else 0.7.
    pub ri: f64,
    /// 0.2 when the plan's output contract holds, else 0.6.
    pub per: f64,
    /// `act × iii × (1 − ri) × (1 − per)`, four decimals.
    pub adaptability_score: f64,
    /// The decision.
    pub decision: Verdict,
    /// Why, in order.
    pub reasons: Vec<String>,
}

fn range_violation(out: &mut Vec<String>, name: &str, v: f64, lo: f64, hi: f64) {
    if !(v.is_finite() && (lo..=hi).contains(&v)) {
        out.push(format!("{name} {v} is outside [{lo}, {hi}]"));
    }
}

impl PlanOutput {
    /// Violations of the contract that the types do not already rule out (ranges, sizes).
    pub fn contract_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.key_claims.is_empty() {
            out.push("key_claims is empty (the contract needs at least one)".into());
        }
        range_violation(&mut out, "confidence_initial", self.confidence_initial, 0.0, 10.0);
        out
    }
}

impl StressOutput {
    /// Violations of the contract that the types do not already rule out.
    pub fn contract_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        range_violation(&mut out, "confidence_post_stress", self.confidence_post_stress, 0.0, 10.0);
        range_violation(&mut out, "integration_quality", self.integration_quality, 0.0, 1.0);
        out
    }
}
