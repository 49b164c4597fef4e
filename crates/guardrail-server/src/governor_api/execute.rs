//! `POST /api/incidents/{id}/execute`.

use axum::extract::{Path, State};
use guardrail_governor::pipeline::{ExecuteOutcome, RunOutcome};
use guardrail_governor::views::{ExecuteRefusal, ExecuteView, ExecutedView, Refused, RegateView, RunStatus};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::api::{ApiError, StrictJson, blocking};
use crate::auth::Caller;
use crate::state::AppState;
use crate::wire::Answer;

use super::approvals::Approver;
use super::audit_log::ServerLog;
use super::status::{ErrorAnswer, GovernorFailure, append_failed, no_store, no_such_incident};
use super::views::{GovernorEvent, execution_step, load_one, run_view};
use super::wiring::{
    Retrieval, deploy_signals, executor, governor_in_force, knowledge, live_logs, open_kb_read_only, planning_pipeline,
};

/// An action (of `execute` and `resolve`) has a word: at least one letter or digit. Without
/// one the plan contract refuses it ("the requested action has no words") only after a
/// could-not-decide is recorded; the request is refused first, with nothing recorded. ASCII,
/// so the rule reads the same in every regex dialect a client may check it with.
pub(super) const ACTION_PATTERN: &str = "[A-Za-z0-9]";

/// [`ACTION_PATTERN`] and 1-200 characters: the one check of a requested action (400).
pub(super) fn check_action(action: Option<&str>) -> Result<(), ApiError> {
    match action {
        Some(a) if a.chars().count() > 200 || !a.chars().any(|c| c.is_ascii_alphanumeric()) => {
            Err(GovernorFailure::BadRequest
                .error("action: must be 1-200 characters with at least one letter or digit (A-Z, a-z, 0-9)"))
        }
        _ => Ok(()),
    }
}

/// Body of `POST /api/incidents/{id}/execute`. There is no field naming who asks: it is the
/// token's identity.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The action to run [default: the authorised one]: 1-200 characters with at least one
    /// letter or digit. Another action than the authorised one is not run: the refusal is
    /// recorded and the action goes through the gate again.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200), regex(pattern = ACTION_PATTERN))]
    pub action: Option<String>,
}

fn execute_blocking(
    state: &AppState,
    caller: &Caller,
    id: String,
    req: ExecuteRequest,
) -> Result<Answer<ExecuteView>, ApiError> {
    check_action(req.action.as_deref())?;
    // Only this incident is looked up (the pipeline and the answer).
    let states = load_one(state, &id).map_err(|e| no_store(&e.to_string()))?;
    if !states.contains_key(&id) {
        return Err(no_such_incident());
    }
    let view = governor_in_force(state)?;
    let now = jiff::Timestamp::now();
    // The knowledge base and live logs are needed only to gate another action again: one that
    // cannot be had does not stop an authorised execution (a re-gate without it cannot decide,
    // and the answer says why below).
    let choice = knowledge(state, &view);
    let regate = |c: &guardrail_governor::KnowledgeChoice| {
        Ok::<_, ApiError>((open_kb_read_only(state, c)?, live_logs(state, c)?))
    };
    let opened = match (&choice, req.action.is_some()) {
        (Ok(c), true) => Some(regate(c)),
        _ => None,
    };
    let (kb, logs) = match &opened {
        Some(Ok((kb, logs))) => (Some(&**kb), logs.as_ref()),
        _ => (None, None),
    };
    let governor = guardrail_governor::Governor::default();
    let exec = executor(&view);
    let signals = if req.action.is_some() { deploy_signals(state)? } else { None };
    let retrieval = Retrieval { choice: choice.as_ref().ok(), store: kb, logs };
    let pipeline = planning_pipeline(state, &view, caller, &governor, retrieval, &exec, signals.as_ref(), now);
    let mut log = ServerLog::open(state, now)?;
    let out = pipeline.execute_incident(&mut log, &states, &id, req.action.as_deref());
    let answer = match out {
        ExecuteOutcome::CannotExecute(e) => {
            let refusal = ExecuteRefusal::NothingAuthorised {
                incident_id: id.clone(),
                status: Refused::Refused,
                message: state.redactor().text(&e.to_string()),
            };
            return Err(refusal.answer(state));
        }
        ExecuteOutcome::AwaitingApproval { action } => {
            return Err(ExecuteRefusal::awaiting_approval(states.get(&id), &id, &action).answer(state));
        }
        ExecuteOutcome::AlreadyExecuted { execution } => {
            return Err(ExecuteRefusal::already_executed(&id, &execution).answer(state));
        }
        ExecuteOutcome::RefusalNotRecorded(e) => {
            return Err(append_failed("the refusal of the other action", "it is not gated again", &e));
        }
        ExecuteOutcome::Executed(exec) => {
            let (execution, succeeded) = execution_step(state, &id, exec)?;
            ExecuteView::Executed(ExecutedView {
                incident_id: id.clone(),
                status: RunStatus::of_execution(succeeded),
                execution,
            })
        }
        ExecuteOutcome::Regated { requested, instead_of, refused, run } => {
            if kb.is_none() && matches!(*run, RunOutcome::CouldNotDecide { .. }) {
                // Recorded as a could-not-decide; say why (without the path).
                match (choice, opened) {
                    (Err(e), _) | (_, Some(Err(e))) => return Err(e),
                    _ => {}
                }
            }
            let mut v = run_view(state, caller, *run)?;
            v.regate =
                Some(RegateView { requested_action: requested, instead_of, refusal_record: refused.map(|r| r.id()) });
            ExecuteView::Regated(Box::new(v))
        }
    };
    let status = match &answer {
        ExecuteView::Executed(e) => e.status,
        ExecuteView::Regated(r) => r.status,
    };
    GovernorEvent::new(&id, status.as_str()).publish(state, "incident");
    Ok(Answer::new(state.redactor(), &answer))
}

/// `POST /api/incidents/{id}/execute`: runs the authorised action (the gate's, or an
/// approval's) exactly as `guardrail incident execute`: hash-checked, claimed (one winner among
/// concurrent executors; a loser gets 409 `claim_held` naming the claim record), with the
/// governor config's executor, recorded. Another `action` is refused (recorded) and gated
/// again. Role `approver` (or `admin`); who asks is the token's identity.
pub async fn execute(
    State(s): State<AppState>,
    Approver(caller): Approver,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<ExecuteRequest>,
) -> Result<Answer<ExecuteView>, ApiError> {
    blocking(move || execute_blocking(&s, &caller, id, req)).await?
}
