//! The stress arithmetic: [`assess_stress`] counts support and contradiction documents by their
//! recorded stance and applies the original's confidence arithmetic.

use serde::{Deserialize, Serialize};

use crate::pyround::py_round;

use super::{ClaimEvidence, Incident, PAUSE_POSITION, PlanOutput, PolicyConflict, RemediationRules, StressOutput};

/// A document's recorded stance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stance {
    /// The document supports the claim's action.
    Support,
    /// The document contradicts it.
    Contradict,
}

impl Stance {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Stance::Support => "support",
            Stance::Contradict => "contradict",
        }
    }

    /// Parses `support` or `contradict` exactly.
    pub fn parse(s: &str) -> Option<Stance> {
        match s {
            "support" => Some(Stance::Support),
            "contradict" => Some(Stance::Contradict),
            _ => None,
        }
    }
}

/// A retrieved evidence document, as far as the arithmetic needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    /// Document id.
    pub id: String,
    /// The document's service (`*` for any).
    pub service: String,
    /// Its recorded stance.
    pub stance: Stance,
}

/// What retrieval found for one claim: the hits of the support-oriented search and of the
/// contradiction-oriented search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRetrieval {
    /// The claim (must equal the plan's claim at the same index).
    pub claim: String,
    /// Hits of the support search.
    pub support_hits: Vec<EvidenceRef>,
    /// Hits of the contradiction search.
    pub contradiction_hits: Vec<EvidenceRef>,
}

/// Guardrail's detail next to the stress contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StressAssessment {
    /// The contract object.
    pub output: StressOutput,
    /// Policy conflicts with what matched.
    pub policy_conflicts: Vec<PolicyConflict>,
    /// Supporting documents counted per claim.
    pub support_count: u32,
    /// Distinct supporting documents.
    pub distinct_support_docs: Vec<String>,
    /// Distinct verified contradicting documents.
    pub distinct_contradiction_docs: Vec<String>,
    /// Policy conflicts or at least `block_at_contradictions` contradictions.
    pub hard_evidence: bool,
    /// Confidence lost to contradictions.
    pub contradiction_penalty: f64,
    /// How the post-stress confidence was reached, in words.
    pub confidence_rule: String,
    /// Hits dropped because their stance or service did not fit the search they came from.
    pub ignored_hits: Vec<String>,
}

/// Why the stress arithmetic could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StressError {
    /// The retrievals do not line up with the plan's claims.
    #[error("retrieval for claim {index} does not match the plan: {message}")]
    Misaligned {
        /// Claim index.
        index: usize,
        /// Details.
        message: String,
    },
    /// The plan violates its contract.
    #[error("the plan violates its contract: {0}")]
    InvalidPlan(String),
}

/// The stress phase's arithmetic over retrieval results (reference note §2.5 and §2.12).
///
/// Support documents are the support-search hits whose recorded stance is `support`;
/// verified contradictions are the contradiction-search hits whose recorded stance is
/// `contradict`. A hit for another service (other than `*`) is ignored, whatever the
/// retrieval layer did. Counts are per claim, as in the first commit (one document retrieved
/// for two claims counts twice), which is the conservative reading.
pub fn assess_stress(
    incident: &Incident,
    plan: &PlanOutput,
    retrievals: &[ClaimRetrieval],
    conflicts: &[PolicyConflict],
    rules: &RemediationRules,
) -> Result<StressAssessment, StressError> {
    let violations = plan.contract_violations();
    if !violations.is_empty() {
        return Err(StressError::InvalidPlan(violations.join("; ")));
    }
    if retrievals.len() != plan.key_claims.len() {
        return Err(StressError::Misaligned {
            index: retrievals.len().min(plan.key_claims.len()),
            message: format!("{} retrievals for {} claims", retrievals.len(), plan.key_claims.len()),
        });
    }
    let service_ok = |e: &EvidenceRef| e.service == incident.service || e.service == "*";
    let mut claim_evidence = Vec::with_capacity(retrievals.len());
    let mut ignored = Vec::new();
    let mut support_count: u32 = 0;
    let mut contradiction_count: u32 = 0;
    let mut covered = 0usize;
    let mut distinct_support: Vec<String> = Vec::new();
    let mut distinct_contra: Vec<String> = Vec::new();
    for (i, (r, claim)) in retrievals.iter().zip(&plan.key_claims).enumerate() {
        if &r.claim != claim {
            return Err(StressError::Misaligned { index: i, message: format!("claim text differs: {:?}", r.claim) });
        }
        let mut support_docs = Vec::new();
        for h in &r.support_hits {
            if h.stance == Stance::Support && service_ok(h) {
                if !support_docs.contains(&h.id) {
                    support_docs.push(h.id.clone());
                }
            } else {
                ignored.push(format!(
                    "claim {i}: {} ({}, {}) in the support search",
                    h.id,
                    h.stance.as_str(),
                    h.service
                ));
            }
        }
        let mut contradiction_docs = Vec::new();
        for h in &r.contradiction_hits {
            if h.stance == Stance::Contradict && service_ok(h) {
                if !contradiction_docs.contains(&h.id) {
                    contradiction_docs.push(h.id.clone());
                }
            } else {
                ignored.push(format!(
                    "claim {i}: {} ({}, {}) in the contradiction search",
                    h.id,
                    h.stance.as_str(),
                    h.service
                ));
            }
        }
        if !support_docs.is_empty() || !contradiction_docs.is_empty() {
            covered += 1;
        }
        support_count += support_docs.len() as u32;
        contradiction_count += contradiction_docs.len() as u32;
        for d in &support_docs {
            if !distinct_support.contains(d) {
                distinct_support.push(d.clone());
            }
        }
        for d in &contradiction_docs {
            if !distinct_contra.contains(d) {
                distinct_contra.push(d.clone());
            }
        }
        claim_evidence.push(ClaimEvidence { claim: claim.clone(), support_docs, contradiction_docs });
    }
    distinct_support.sort();
    distinct_contra.sort();

    let initial = plan.confidence_initial;
    let penalty = rules.contradiction_penalty * f64::from(contradiction_count);
    let mut conf = (initial - penalty).max(rules.confidence_floor);
    let mut rule = format!(
        "{initial:.2} − {:.2}×{contradiction_count} contradictions = {:.2}, floor {:.2} → {conf:.2}",
        rules.contradiction_penalty,
        initial - penalty,
        rules.confidence_floor
    );
    let hard = !conflicts.is_empty() || contradiction_count >= rules.block_at_contradictions;
    let mut position = plan.proposed_action.clone();
    if hard {
        position = PAUSE_POSITION.to_string();
        conf = (conf - rules.hard_evidence_penalty).max(rules.confidence_floor);
        rule.push_str(&format!(
            "; hard evidence − {:.2}, floor {:.2} → {conf:.2}",
            rules.hard_evidence_penalty, rules.confidence_floor
        ));
    }
    // Stress can only lower confidence (the original let a verifier raise it, and a floor above
    // a low initial confidence would too, which gives the negative deltas its schema forbids).
    if conf > initial {
        conf = initial;
        rule.push_str(&format!("; capped at the initial {initial:.2}"));
    }
    let n = plan.key_claims.len().max(1);
    let integration_quality = (covered as f64 / n as f64).min(1.0);
    let output = StressOutput {
        incident_id: plan.incident_id.clone(),
        claim_evidence,
        contradiction_count,
        policy_conflicts: conflicts.iter().map(|c| c.id.clone()).collect(),
        fabricated_authority_rejected: true,
        confidence_post_stress: py_round(conf, 2),
        position_after_stress: position,
        integration_quality,
    };
    Ok(StressAssessment {
        output,
        policy_conflicts: conflicts.to_vec(),
        support_count,
        distinct_support_docs: distinct_support,
        distinct_contradiction_docs: distinct_contra,
        hard_evidence: hard,
        contradiction_penalty: penalty,
        confidence_rule: rule,
        ignored_hits: ignored,
    })
}
