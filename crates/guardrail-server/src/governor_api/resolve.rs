//! `POST /api/incidents/{id}/resolve`.

use axum::extract::{Path, State};
use guardrail_governor::views::{RecordRef, Refused, ResolveRefusal, ResolveView};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, StrictJson, blocking};
use crate::auth::Caller;
use crate::state::AppState;
use crate::wire::Answer;

use super::approvals::Approver;
use super::audit_log::ServerLog;
use super::execute::{ACTION_PATTERN, check_action};
use super::status::{ErrorAnswer, GovernorFailure, append_failed, no_store, no_such_incident};
use super::views::{GovernorEvent, load_one};
use super::wiring::open_kb;

/// Not blank.
const TEXT_PATTERN: &str = "\\S";

/// Body of `POST /api/incidents/{id}/resolve`. Who resolved it is the token's identity.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// What resolved it (the learned runbook's body): not blank, at most 8192 characters.
    #[schemars(length(min = 1, max = 8192), regex(pattern = TEXT_PATTERN))]
    pub summary: String,
    /// The action that resolved it [default: the last action executed for it]: 1-200
    /// characters with at least one letter or digit.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200), regex(pattern = ACTION_PATTERN))]
    pub action: Option<String>,
}

impl ResolveRequest {
    /// The checks its schema states (400, nothing recorded).
    fn check(&self) -> Result<(), ApiError> {
        let bad = |m: &str| Err(GovernorFailure::BadRequest.error(m.to_string()));
        // Blank as any regex dialect's `\s` reads it (Rust's, ECMA's U+FEFF, Python's
        // U+001C-U+001F), so no client's check of the schema passes what this refuses.
        let blank = |c: char| c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}' | '\u{feff}');
        if self.summary.chars().all(blank) || self.summary.chars().count() > 8192 {
            return bad("summary: must be 1-8192 characters, not blank");
        }
        check_action(self.action.as_deref())
    }
}

/// A resolution in the chain whose runbook could not be stored.
#[derive(Serialize)]
struct RecordedNotLearned {
    /// `recorded_not_learned`.
    status: &'static str,
    audit: RecordRef,
}

fn resolve_blocking(
    state: &AppState,
    caller: &Caller,
    id: String,
    req: ResolveRequest,
) -> Result<Answer<ResolveView>, ApiError> {
    use guardrail_governor::learn::{LearnError, Resolution, resolve};
    req.check()?;
    // Only this incident is looked up (the pipeline and the answer).
    let states = load_one(state, &id).map_err(|e| no_store(&e.to_string()))?;
    if !states.contains_key(&id) {
        return Err(no_such_incident());
    }
    let view = super::wiring::governor_in_force(state)?;
    let mut kb = open_kb(state, &super::wiring::knowledge(state, &view)?)?;
    let now = jiff::Timestamp::now();
    let at = now.to_string();
    let mut log = ServerLog::open(state, now)?;
    let r = Resolution {
        incident_id: &id,
        summary: &req.summary,
        by: &caller.identity,
        action: req.action.as_deref(),
        at: &at,
    };
    let nothing_to_learn = |message: String| {
        ResolveRefusal::NothingToLearn {
            incident_id: id.clone(),
            status: Refused::Refused,
            message: state.redactor().text(&message),
        }
        .answer(state)
    };
    let learned = resolve(&mut log, &states, &mut *kb, &r).map_err(|e| match e {
        LearnError::Invalid(m) => GovernorFailure::BadRequest.error(state.redactor().text(&m)),
        e @ LearnError::Fields(_) => GovernorFailure::BadRequest.error(state.redactor().text(&e.to_string())),
        LearnError::NotFound(e) => nothing_to_learn(e.to_string()),
        e @ LearnError::NothingExecuted { .. } => nothing_to_learn(e.to_string()),
        LearnError::NotRecorded(e) => append_failed("the resolution", "nothing is learned", &e),
        LearnError::Knowledge(m) => {
            eprintln!("guardrail serve: knowledge base: {m}");
            GovernorFailure::Unavailable.error("the knowledge base cannot be written, so nothing is learned")
        }
    })?;
    if let Some(e) = &learned.mirror_error {
        return Err(append_failed("the resolution", "the runbook was learned; only the mirror lacks the record", e));
    }
    if let Some(e) = &learned.runbook_error {
        eprintln!("guardrail serve: learned runbook: {e}");
        let mut err = GovernorFailure::Unavailable.error(format!(
            "the resolution is recorded as {}, but the runbook could not be stored",
            learned.record.id()
        ));
        let extra = RecordedNotLearned { status: "recorded_not_learned", audit: RecordRef::of(&learned.record) };
        err.extra = Some(guardrail_governor::record::encode(&extra));
        return Err(err);
    }
    let view = ResolveView::new(&id, &caller.identity, &learned);
    GovernorEvent { audit: Some(&view.audit), ..GovernorEvent::new(&id, "resolved") }.publish(state, "incident");
    Ok(Answer::new(state.redactor(), &view))
}

/// `POST /api/incidents/{id}/resolve`: records the resolution and learns an **unreviewed**
/// runbook from it, with provenance (incident, audit record, the token's identity), exactly as
/// `guardrail incident resolve`. The planner ignores it until another person reviews it.
/// Role `approver` (or `admin`).
pub async fn resolve(
    State(s): State<AppState>,
    Approver(caller): Approver,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<ResolveRequest>,
) -> Result<Answer<ResolveView>, ApiError> {
    blocking(move || resolve_blocking(&s, &caller, id, req)).await?
}
