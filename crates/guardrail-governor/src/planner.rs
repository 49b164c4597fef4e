//! Planners: from an incident to a proposed action and the claims it relies on.
//!
//! A plan is a *proposal*. Nothing in it decides: the stress phase re-derives every gate input
//! from retrieval, and the gate's rules come from configuration. That is why a model-backed
//! planner ([`crate::model_planner::ModelPlanner`]) sits behind [`Planner`] without widening
//! what a model can influence — at worst it chooses a bad one of the actions the knowledge base
//! offers, which the policies, the evidence and the gate then judge; a plan it could not make
//! carries its [`PlanResult::failure`], which the gate turns into a block.
//!
//! [`BuiltinPlanner`] is the default and needs no network. It reproduces the first commit's
//! offline fallback: the top-ranked runbook of the incident's service gives the action,
//! `investigate_and_escalate` when there is none, and the confidence is the neutral 5.0.

use serde::Serialize;

use guardrail_core::remediation::{FALLBACK_ACTION, Incident, NormalisedAction, PlanOutput, normalise_action};

use crate::PipelineError;
use crate::tools::{Phase, RunbookArgs, SearchRunbooks, ToolRunner};

/// The runbook a plan was taken from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChosenRunbook {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// The action as written in the runbook.
    pub recommended_action: String,
    /// Its BM25 score.
    pub score: f64,
}

/// A plan: the contract object plus how it was reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanResult {
    /// The contract object (`plan_output.schema.json`).
    pub output: PlanOutput,
    /// Which planner made it.
    pub planner: String,
    /// The rule that set `confidence_initial`, in words.
    pub confidence_rule: String,
    /// The runbook the action came from, if any.
    pub runbook: Option<ChosenRunbook>,
    /// The proposed action, normalised against the vocabulary.
    pub action: NormalisedAction,
    /// Why a model-backed planner's plan was not used, when it was not and no fallback
    /// planned instead: the gate blocks (`planner_failed`). Absent for every other plan, so
    /// their recorded bytes are unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<crate::transcript::PlannerFailure>,
    /// A model-backed planner's transcript. Not part of the recorded outcome: the pipeline
    /// appends it as a `planner_transcript` record of its own before the decision, which names it.
    #[serde(skip)]
    pub transcript: Option<Box<crate::transcript::Transcript>>,
}

/// Makes plans. Implementations reach knowledge only through the [`ToolRunner`] (so every call
/// is traced and a model-backed planner sees the same tools).
pub trait Planner {
    /// A short name for the record, e.g. `builtin`.
    fn name(&self) -> &str;

    /// Plans for one incident.
    fn plan(&self, incident: &Incident, tools: &mut ToolRunner<'_, '_>) -> Result<PlanResult, PipelineError>;
}

/// The deterministic default planner.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinPlanner {
    /// Runbooks retrieved (the first commit's top 3).
    pub runbooks_k: u32,
    /// The confidence every plan starts with (the original's 5.0 when no model answers).
    pub initial_confidence: f64,
}

impl Default for BuiltinPlanner {
    fn default() -> Self {
        BuiltinPlanner { runbooks_k: 3, initial_confidence: 5.0 }
    }
}

impl Planner for BuiltinPlanner {
    fn name(&self) -> &str {
        "builtin"
    }

    fn plan(&self, incident: &Incident, tools: &mut ToolRunner<'_, '_>) -> Result<PlanResult, PipelineError> {
        // The service is a filter, not query words: its words would only favour runbooks that
        // repeat the service name.
        let query = format!("{} {}", incident.summary, incident.symptoms);
        let args = RunbookArgs { query, service: incident.service.clone(), top_k: self.runbooks_k };
        let hits = tools.call_tool::<SearchRunbooks>(Phase::Plan, &args)?;
        let retrieved_context_ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
        // The store returns reviewed runbooks of the service only; check again rather than trust.
        let chosen = hits.iter().find(|h| h.reviewed && h.service == incident.service);
        let (action, key_claims, rationale, runbook) = match chosen {
            Some(rb) => {
                let action = normalise_action(&rb.action, Some(&incident.service));
                let how = if rb.body.trim().is_empty() { rb.title.as_str() } else { rb.body.as_str() };
                let claims = vec![
                    format!(
                        "The incident matches runbook {} ({}): {}; {}",
                        rb.id, rb.title, incident.summary, incident.symptoms
                    ),
                    format!("{} resolves it: {how}", action.id),
                ];
                let rationale = format!(
                    "Top-ranked reviewed runbook {} (\"{}\") of {} among {} retrieved recommends {}.",
                    rb.id,
                    rb.title,
                    incident.service,
                    hits.len(),
                    action.id
                );
                let chosen = ChosenRunbook {
                    id: rb.id.clone(),
                    title: rb.title.clone(),
                    recommended_action: rb.action.clone(),
                    score: rb.score,
                };
                (action, claims, rationale, Some(chosen))
            }
            None => {
                let action = normalise_action(FALLBACK_ACTION, Some(&incident.service));
                let claims = vec![format!(
                    "No reviewed runbook of {} matches the incident, so a human must investigate: {}; {}",
                    incident.service, incident.summary, incident.symptoms
                )];
                let rationale =
                    format!("No reviewed runbook of {} matched the incident; escalating to a human.", incident.service);
                (action, claims, rationale, None)
            }
        };
        let output = PlanOutput {
            incident_id: incident.id.clone(),
            proposed_action: action.id.clone(),
            rationale,
            key_claims,
            confidence_initial: self.initial_confidence,
            retrieved_context_ids,
        };
        Ok(PlanResult {
            output,
            planner: self.name().to_string(),
            confidence_rule: format!(
                "builtin planner: fixed {:.2}, the original's confidence when no model answers; recorded, never decisive",
                self.initial_confidence
            ),
            runbook,
            action,
            failure: None,
            transcript: None,
        })
    }
}

/// A plan for an action someone asks to run instead of the gated one. The built-in planner
/// retrieves for the incident as usual; the action is replaced and the claims are restated
/// for it, so the stress phase looks for evidence about *this* action and the gate judges it
/// from scratch. Nothing of the earlier decision or approval carries over.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedActionPlanner {
    /// Retrieval and confidence as the built-in planner.
    pub base: BuiltinPlanner,
    /// The action asked for (prose or identifier; normalised against the vocabulary).
    pub action: String,
}

impl Planner for RequestedActionPlanner {
    fn name(&self) -> &str {
        "requested-action"
    }

    fn plan(&self, incident: &Incident, tools: &mut ToolRunner<'_, '_>) -> Result<PlanResult, PipelineError> {
        let mut p = self.base.plan(incident, tools)?;
        let action = normalise_action(&self.action, Some(&incident.service));
        if action.id.is_empty() {
            return Err(PipelineError::InvalidPlan("the requested action has no words".into()));
        }
        p.planner = self.name().to_string();
        if p.action.id == action.id {
            return Ok(p);
        }
        let previous = std::mem::replace(&mut p.output.proposed_action, action.id.clone());
        // One claim, in the action's own words only: evidence must be about this action. The
        // incident's words (and the runbook match) would find documents about the incident,
        // which support the runbook's action, not this one.
        let words = if action.words.is_empty() { action.id.replace('_', " ") } else { action.words.join(" ") };
        p.output.key_claims = vec![words];
        p.output.rationale = format!(
            "{} was requested at execution time instead of {previous}; it is gated on its own evidence.",
            action.id
        );
        if p.runbook
            .as_ref()
            .is_some_and(|r| normalise_action(&r.recommended_action, Some(&incident.service)).id != action.id)
        {
            p.runbook = None;
        }
        p.action = action;
        Ok(p)
    }
}
