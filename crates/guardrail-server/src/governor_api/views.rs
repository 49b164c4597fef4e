//! The answers: the governor's views ([`guardrail_governor::views`]) over the server's state,
//! redacted; the events the governor endpoints publish; the failures of an execution step or
//! a run as their HTTP statuses.

use guardrail_governor::pipeline::{Execution, Next, RunOutcome};
use guardrail_governor::queue::{IncidentState, TrailError};
use guardrail_governor::views::{
    CouldNotDecide, CouldNotDecideView, ExecuteRefusal, ExecutionStep, ExecutionView, RecordRef, RunView,
};
use serde::Serialize;
use serde_json::Value;

use crate::api::ApiError;
use crate::auth::Caller;
use crate::state::AppState;

use super::status::{ErrorAnswer, GovernorFailure, append_failed};

/// The incidents folded from the configured store's records, incrementally
/// ([`AppState::incident_states`]: only the records appended since the last call are read).
pub(crate) fn load(state: &AppState) -> Result<std::collections::BTreeMap<String, IncidentState>, TrailError> {
    state.incident_states()
}

/// [`load`] narrowed to one incident: a map holding only `id`'s state (empty when the trail
/// has no such incident). What decides about one incident (an approval, an execution) looks
/// up only that one, and copying every incident's records for it took seconds at a few
/// thousand incidents.
pub(crate) fn load_one(
    state: &AppState,
    id: &str,
) -> Result<std::collections::BTreeMap<String, IncidentState>, TrailError> {
    state.with_incident_states(|all| all.get_key_value(id).map(|(k, v)| (k.clone(), v.clone())).into_iter().collect())
}

/// A view as the wire carries it: encoded, then redacted (no secret or path leaves).
pub(super) fn render<V: Serialize + ?Sized>(state: &AppState, view: &V) -> Value {
    // A view is strings, numbers, booleans and encoded values: nothing in it fails to encode.
    let mut v = serde_json::to_value(view).unwrap_or(Value::Null);
    state.redactor().value(&mut v);
    v
}

/// An `incident` or `approval` event on `/api/events`: which incident, where it stands, and
/// the record that says so.
#[derive(Debug, Serialize)]
pub(super) struct GovernorEvent<'a> {
    pub incident_id: &'a str,
    pub status: &'a str,
    /// The gate's verdict (a run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'a str>,
    /// The grant's kind (an approval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'a str>,
    /// The refusal's code (an approval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<&'a RecordRef>,
}

impl<'a> GovernorEvent<'a> {
    pub(super) fn new(incident_id: &'a str, status: &'a str) -> GovernorEvent<'a> {
        GovernorEvent { incident_id, status, decision: None, kind: None, code: None, audit: None }
    }

    pub(super) fn publish(&self, state: &AppState, kind: &'static str) {
        state.publish_with(kind, || render(state, self));
    }
}

/// An execution step as the API answers it: the recorded step (and whether it succeeded), or
/// an error (409 another execution holds the claim; 503 no executor, or a record not written).
pub(super) fn execution_step(
    state: &AppState,
    incident_id: &str,
    exec: Execution,
) -> Result<(ExecutionStep, bool), ApiError> {
    let succeeded = exec.succeeded();
    match exec {
        Execution::Unavailable(e) => {
            eprintln!("guardrail serve: executor: {e}");
            Err(GovernorFailure::Unavailable.error("authorised, but NOT executed: the executor is not configured"))
        }
        Execution::ClaimHeld { holder } => Err(ExecuteRefusal::claim_held(incident_id, &holder).answer(state)),
        Execution::ClaimNotRecorded(e) => Err(append_failed("the execution claim", "nothing ran", &e)),
        Execution::Done { body, record, .. } => {
            let rec = record
                .map_err(|e| append_failed("the execution result", "the action's result is not in the mirror", &e))?;
            Ok((ExecutionStep::Recorded(Box::new(ExecutionView::new(&body, Some(&rec)))), succeeded))
        }
    }
}

/// A run as the API answers it.
pub(super) fn run_view(state: &AppState, caller: &Caller, run: RunOutcome) -> Result<RunView, ApiError> {
    let (outcome, rec, next) = match run {
        RunOutcome::NoProposer(e) => return Err(GovernorFailure::NoProposer.error(e)),
        RunOutcome::CouldNotDecide { failure, record } => {
            let rec = record.map_err(|e| append_failed("could not decide, and that", "nothing was decided", &e))?;
            let view = CouldNotDecideView {
                incident_id: failure_incident(&rec),
                status: CouldNotDecide::CouldNotDecide,
                errors: vec![state.redactor().text(&failure.error.to_string())],
                audit: Some(RecordRef::of(&rec)),
            };
            return Err(view.answer(state));
        }
        RunOutcome::Withheld { error, .. } => {
            return Err(append_failed("the decision", "it is withheld and nothing runs", &error));
        }
        RunOutcome::Decided { outcome, decision, next } => (outcome, decision, next),
    };
    let audit = RecordRef::of(&rec);
    // The record is not used again: its body's parts move into the view.
    let view = RunView::decided_from(&outcome, rec, &caller.identity);
    let view = match next {
        Next::Executed(exec) => {
            let (step, succeeded) = execution_step(state, &outcome.incident.id, exec)?;
            view.executed(step, succeeded)
        }
        Next::Queued { request, requires } => view.queued(&request, requires),
        Next::QueueNotRecorded(e) => return Err(append_failed("the approval request", "the action is not queued", &e)),
    };
    GovernorEvent {
        decision: Some(&view.decision),
        audit: Some(&audit),
        ..GovernorEvent::new(&view.incident_id, view.status.as_str())
    }
    .publish(state, "incident");
    Ok(view)
}

/// The incident a `remediation_error` record is about.
fn failure_incident(rec: &guardrail_core::audit::ChainedRecord) -> String {
    guardrail_governor::record::decode::<guardrail_governor::record::ErrorBody>(&rec.body)
        .map(|b| b.incident_id)
        .unwrap_or_default()
}
