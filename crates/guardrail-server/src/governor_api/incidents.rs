//! `GET /api/incidents`, `GET /api/incidents/{id}` and `POST /api/incidents` (propose).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::api::{ApiError, StrictJson, blocking, ok, record_view, requested_by};
use crate::auth::Caller;
use crate::state::AppState;

use super::audit_log::ServerLog;
use super::status::no_store;
use super::views::{decision_body, load, pending_view, run_view, summary};
use super::wiring::{deploy_signals, executor, governor_in_force, open_kb_read_only, pipeline};

/// `GET /api/incidents`: every incident in the audit chain with its state and latest verdict.
pub async fn list(State(s): State<AppState>) -> Result<Response, ApiError> {
    let st = s.clone();
    let states = blocking(move || load(&st)).await?.map_err(|e| no_store(&e))?;
    let mut v = Value::Array(states.values().map(summary).collect());
    s.redactor().value(&mut v);
    Ok(ok(v))
}

/// `GET /api/incidents/{id}`: the latest plan, stress result, gate decision (with reasons),
/// evidence, plan hash, the queue state, and every record about the incident.
pub async fn show(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let st = s.clone();
    let states = blocking(move || load(&st)).await?.map_err(|e| no_store(&e))?;
    let Some(inc) = states.get(&id) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such incident in the audit trail"));
    };
    let b = decision_body(inc);
    let part = |pointer: &str| b.as_ref().map(|b| b.outcome_part(pointer)).unwrap_or(Value::Null);
    let mut v = summary(inc);
    if let Some(o) = v.as_object_mut() {
        o.insert("incident".into(), b.as_ref().map(|b| b.incident.clone()).unwrap_or(Value::Null));
        o.insert("plan".into(), part("/plan"));
        o.insert("stress".into(), part("/stress"));
        o.insert("gate".into(), part("/gate"));
        o.insert(
            "evidence".into(),
            json!({
                "key_claims": part("/plan/output/key_claims"),
                "retrieved_context_ids": part("/plan/output/retrieved_context_ids"),
                "assessment": part("/stress/assessment"),
            }),
        );
        o.insert("requires_force_override".into(), Value::from(b.as_ref().map(|b| b.requires_force_override)));
        o.insert(
            "queue".into(),
            json!({
                "pending": pending_view(&s, inc),
                "authorised": inc.authorised.as_ref().map(|a| json!({
                    "record": a.record, "by": a.by, "approver": a.approver,
                    "action": a.action, "plan_hash": a.binding_hash,
                })),
            }),
        );
        o.insert("records".into(), Value::Array(inc.records.iter().map(|r| record_view(&s, r)).collect()));
    }
    s.redactor().value(&mut v);
    Ok(ok(v))
}

fn propose_blocking(state: &AppState, caller: &Caller, incident: Value) -> Result<Value, ApiError> {
    let incident = guardrail_core::remediation::Incident::from_json_value(&incident).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("invalid incident: {}", state.redactor().text(&e.to_string())))
    })?;
    let view = governor_in_force(state)?;
    let gov = &state.config().governor;
    let Some(kb_path) = gov.kb.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no knowledge base is configured (guardrail serve --kb)",
        ));
    };
    let kb = open_kb_read_only(kb_path)?;
    let now = jiff::Timestamp::now();
    let governor = guardrail_governor::Governor::default();
    let exec = executor(&view);
    let signals = deploy_signals(state)?;
    let pipeline = pipeline(state, &view, caller, &governor, Some(&kb), &exec, signals.as_ref(), now);
    let mut log = ServerLog::open(state, now)?;
    let origin = json!({"http": "POST /api/incidents", "requested_by": requested_by(caller)});
    let run = pipeline.decide_and_act(&mut log, &incident, origin);
    let v = run_view(state, caller, run)?;
    Ok(v)
}

/// `POST /api/incidents`: an incident (the scenario shape of `guardrail incident run`) through
/// plan → stress → gate, recorded; a blocked action enters the approval queue. Role
/// `deployer` (or `admin`); the token's identity is the proposer.
pub async fn propose(
    State(s): State<AppState>,
    crate::api::Deployer(caller): crate::api::Deployer,
    StrictJson(incident): StrictJson<Value>,
) -> Result<Response, ApiError> {
    let st = s.clone();
    blocking(move || propose_blocking(&st, &caller, incident)).await?.map(ok)
}
