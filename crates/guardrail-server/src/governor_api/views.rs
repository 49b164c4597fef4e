//! The answers' shapes: an incident's summary and pending approval, an execution, a run.

use axum::http::StatusCode;
use guardrail_core::audit::ChainedRecord;
use guardrail_gate::audit_cmd;
use guardrail_governor::pipeline::{Execution, Next, RunOutcome};
use guardrail_governor::queue::{IncidentState, incident_states};
use guardrail_governor::record::{ApprovalRequestBody, DecisionBody, decode, encode};
use serde_json::{Value, json};

use crate::api::ApiError;
use crate::auth::Caller;
use crate::state::AppState;

use super::status::append_failed;

pub(super) fn load(state: &AppState) -> Result<std::collections::BTreeMap<String, IncidentState>, String> {
    let spec = state.config().store.clone();
    let mut store = audit_cmd::open(&spec)?;
    let records = store.all().map_err(|e| format!("audit store {spec}: {e}"))?;
    Ok(incident_states(&records))
}

/// The newest decision's body, decoded (`None` without a decision or when it does not decode).
pub(super) fn decision_body(st: &IncidentState) -> Option<DecisionBody> {
    st.decision.as_ref().and_then(|r| decode(&r.body).ok())
}

/// One incident as `GET /api/incidents` lists it: its state and latest verdict.
pub(super) fn summary(st: &IncidentState) -> Value {
    let d = st.decision.as_ref();
    let b = decision_body(st);
    let b = b.as_ref();
    json!({
        "incident_id": st.incident_id,
        "status": st.status(),
        "service": b.and_then(DecisionBody::service),
        "severity": b.and_then(DecisionBody::severity),
        "decision": b.map(|b| &b.decision),
        "rule": b.map(|b| &b.rule),
        "gated_action": b.map(|b| &b.gated_action),
        "plan_hash": b.map(|b| &b.binding_hash),
        "reasons": b.map(|b| &b.reasons),
        "decided_at": d.map(|r| r.recorded_at.clone()),
        "decision_record": d.map(ChainedRecord::id),
        "awaiting_approval": st.pending.is_some(),
        "last_record": st.last_record(),
    })
}

pub(super) fn pending_view(state: &AppState, st: &IncidentState) -> Option<Value> {
    let p = st.pending.as_ref()?;
    let b: ApprovalRequestBody = decode(&p.body).unwrap_or_default();
    let mut v = json!({
        "incident_id": st.incident_id,
        "request_record": p.id(),
        "requested_at": p.recorded_at,
        "severity": b.severity,
        "proposer": b.proposer,
        "action": b.action,
        "plan_hash": b.binding_hash,
        "requires": b.requires,
        "reasons": b.reasons,
        "eligible": b.eligible,
    });
    state.redactor().value(&mut v);
    Some(v)
}

/// An execution step as the API answers it: the `remediation_execution` body (with `audit`),
/// or an error (409 another execution holds the claim; 503 no executor, or a record not
/// written).
pub(super) fn execution_view(exec: Execution) -> Result<Value, ApiError> {
    match exec {
        Execution::Unavailable(e) => {
            eprintln!("guardrail serve: executor: {e}");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "authorised, but NOT executed: the executor is not configured",
            ))
        }
        Execution::ClaimHeld { holder } => {
            let mut err = ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "another execution of this authorisation holds the claim (record {}); nothing ran here",
                    holder.id()
                ),
            );
            err.extra = Some(json!({"code": "claim_held", "status": "refused", "claim_held_by": holder.id()}));
            Err(err)
        }
        Execution::ClaimNotRecorded(e) => Err(append_failed("the execution claim", "nothing ran", &e)),
        Execution::Done { body, claim, record, .. } => {
            let mut body = encode(&body);
            let rec = record
                .map_err(|e| append_failed("the execution result", "the action's result is not in the mirror", &e))?;
            body["audit"] = rec.id().into();
            body["claim_record"] = claim.map(|c| c.id()).into();
            Ok(body)
        }
    }
}

/// A run as the API answers it.
pub(super) fn run_view(state: &AppState, caller: &Caller, run: RunOutcome) -> Result<Value, ApiError> {
    let (outcome, rec, next) = match run {
        RunOutcome::NoProposer(e) => return Err(ApiError::new(StatusCode::FORBIDDEN, e)),
        RunOutcome::CouldNotDecide { failure, record } => {
            let rec = record.map_err(|e| append_failed("could not decide, and that", "nothing was decided", &e))?;
            let mut err =
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, state.redactor().text(&failure.error.to_string()));
            err.extra = Some(json!({"status": "could_not_decide", "audit": rec.id()}));
            return Err(err);
        }
        RunOutcome::Withheld { error, .. } => {
            return Err(append_failed("the decision", "it is withheld and nothing runs", &error));
        }
        RunOutcome::Decided { outcome, decision, next } => (outcome, decision, next),
    };
    let incident = &outcome.incident;
    let verdict = outcome.gate.output.decision;
    let mut v = json!({
        "incident_id": incident.id,
        "service": incident.service,
        "severity": incident.severity,
        "proposer": caller.identity,
        "decision": verdict.as_str(),
        "rule": outcome.gate.rule,
        "reasons": outcome.gate.output.reasons,
        "action": outcome.gated_action(),
        "plan_hash": outcome.binding_hash(),
        "plan": outcome.plan,
        "stress": outcome.stress.assessment,
        "gate": outcome.gate,
        "audit": {"decision": rec.id()},
    });
    match next {
        Next::Executed(exec) => {
            let succeeded = exec.succeeded();
            let execution = execution_view(exec)?;
            v["status"] = if succeeded { "executed".into() } else { "execution_failed".into() };
            v["execution"] = execution;
        }
        Next::Queued { request, requires } => {
            v["status"] = "awaiting_approval".into();
            v["requires"] = requires.into();
            v["audit"]["approval_request"] = request.id().into();
        }
        Next::QueueNotRecorded(e) => return Err(append_failed("the approval request", "the action is not queued", &e)),
    }
    state.publish(
        "incident",
        json!({"incident_id": incident.id, "status": v["status"], "decision": verdict.as_str(), "audit": rec.id()}),
    );
    state.redactor().value(&mut v);
    Ok(v)
}
