//! `POST /api/incidents/{id}/resolve`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, StrictJson, blocking, ok};
use crate::auth::Caller;
use crate::state::AppState;

use super::approvals::Approver;
use super::audit_log::ServerLog;
use super::status::{append_failed, conflict, no_store};
use super::views::load;
use super::wiring::open_kb;

/// Body of `POST /api/incidents/{id}/resolve`. Who resolved it is the token's identity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// What resolved it (the learned runbook's body).
    pub summary: String,
    /// The action that resolved it [default: the last action executed for it].
    #[serde(default)]
    pub action: Option<String>,
}

fn resolve_blocking(state: &AppState, caller: &Caller, id: String, req: ResolveRequest) -> Result<Value, ApiError> {
    use guardrail_governor::learn::{LearnError, Resolution, resolve};
    let states = load(state).map_err(|e| no_store(&e))?;
    if !states.contains_key(&id) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such incident in the audit trail"));
    }
    let Some(kb_path) = state.config().governor.kb.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no knowledge base is configured (guardrail serve --kb)",
        ));
    };
    let mut kb = open_kb(kb_path)?;
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
    let learned = resolve(&mut log, &states, &mut kb, &r).map_err(|e| match e {
        LearnError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, state.redactor().text(&m)),
        e @ LearnError::Fields(_) => ApiError::new(StatusCode::BAD_REQUEST, state.redactor().text(&e.to_string())),
        LearnError::NotFound(m) => conflict("nothing_to_learn", state.redactor().text(&m), Value::Null),
        e @ LearnError::NothingExecuted { .. } => {
            conflict("nothing_to_learn", state.redactor().text(&e.to_string()), Value::Null)
        }
        LearnError::NotRecorded(e) => append_failed("the resolution", "nothing is learned", &e),
        LearnError::Knowledge(m) => {
            eprintln!("guardrail serve: knowledge base: {m}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the knowledge base cannot be written, so nothing is learned",
            )
        }
    })?;
    if let Some(e) = &learned.mirror_error {
        return Err(append_failed("the resolution", "the runbook was learned; only the mirror lacks the record", e));
    }
    if let Some(e) = &learned.runbook_error {
        eprintln!("guardrail serve: learned runbook: {e}");
        let mut err = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the resolution is recorded as {}, but the runbook could not be stored", learned.record.id()),
        );
        err.extra = Some(json!({"status": "recorded_not_learned", "audit": learned.record.id()}));
        return Err(err);
    }
    let rb = &learned.runbook;
    let mut v = json!({
        "incident_id": id,
        "status": "resolved",
        "resolved_by": caller.identity,
        "audit": learned.record.id(),
        "runbook": {
            "id": rb.id, "service": rb.service, "title": rb.title,
            "recommended_action": rb.recommended_action, "reviewed": rb.reviewed,
            "provenance": rb.provenance,
        },
    });
    state.publish("incident", json!({"incident_id": id, "status": "resolved", "audit": learned.record.id()}));
    state.redactor().value(&mut v);
    Ok(v)
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
) -> Result<Response, ApiError> {
    let st = s.clone();
    blocking(move || resolve_blocking(&st, &caller, id, req)).await?.map(ok)
}
