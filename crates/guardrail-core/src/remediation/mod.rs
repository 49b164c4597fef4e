//! The remediation governor's pure part: incidents, the action vocabulary, action-policy
//! matching, the stress arithmetic and the gate.
//!
//! The original governor asked a model for every number its gate compared (support and
//! contradiction counts, policy conflicts, the final position), so a crafted incident could
//! steer the gate by steering the model. Here the adapters (`guardrail-knowledge`,
//! `guardrail-governor`) only *retrieve*: documents with their recorded stance, the action
//! policies for a service, log counts. Everything that turns retrieval into a decision is in
//! this module, over typed values:
//!
//! 1. [`Incident::from_json_value`] refuses anything that is not one of the five fields with
//!    the right type; [`Severity`] is a closed enum.
//! 2. [`normalise_action`] maps prose ("Restart the payments-api pods") and identifiers
//!    (`restart_api_pods`) onto one vocabulary, so [`policy_conflicts`] cannot be dodged by
//!    rewording (the original matched exact tokens and never fired on prose).
//! 3. [`assess_stress`] counts support and contradiction documents by their recorded stance
//!    and applies the original's confidence arithmetic (§2.5 of the reference note).
//! 4. [`gate`] applies the original's rules in its order, then Guardrail's: critical severity
//!    needs FORCE_OVERRIDE, and configurable rules over the deploy gate's
//!    [`Signals`](crate::signals::Signals) (reusing the policy language's
//!    [`Condition`](crate::policy::Condition) and its comparison) can require approval.
//!
//! Rules and thresholds come only from [`RemediationRules`], which only configuration builds;
//! no incident text, document text or model output is ever read as a rule.
//!
//! The contract structs ([`PlanOutput`], [`StressOutput`], [`GateOutput`]) serialise exactly to
//! the original's JSON schemas (`additionalProperties: false`), so Guardrail's own detail lives
//! in sibling structs ([`StressAssessment`], [`GateDecision`]), never inside a contract object.
//!
//! One job per module: `incident` (severity, strict incident reading),
//! `vocabulary` (action normalisation), `action_policy` (policy conflicts), `contracts` (the
//! schema objects), `rules` (the configured rules and their lint), `stress` (the stress
//! arithmetic) and `gate` (the gate, as named steps). Everything is re-exported here, so paths
//! stay `guardrail_core::remediation::…`.

mod action_policy;
mod contracts;
mod gate;
mod incident;
mod rules;
mod stress;
mod vocabulary;

pub use action_policy::*;
pub use contracts::*;
pub use gate::*;
pub use incident::*;
pub use rules::*;
pub use stress::*;
pub use vocabulary::*;

/// The position the original's stress phase takes on hard evidence.
pub const PAUSE_POSITION: &str = "pause_and_request_dba_approval";
/// The action proposed when no reviewed runbook covers the incident's service.
pub const FALLBACK_ACTION: &str = "investigate_and_escalate";
/// `execution_mode` of anything that is not executed.
pub const ESCALATE_TO_HUMAN: &str = "escalate_to_human";

#[cfg(test)]
mod tests;
