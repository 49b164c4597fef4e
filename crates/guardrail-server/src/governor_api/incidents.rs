//! `GET /api/incidents`, `GET /api/incidents/{id}` and `POST /api/incidents` (propose).

use axum::extract::{Path, State};
use guardrail_governor::views::{IncidentDetail, IncidentSummary, RunView};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{ApiError, StrictJson, blocking, requested_by};
use crate::auth::Caller;
use crate::state::AppState;
use crate::wire::Answer;

use super::audit_log::ServerLog;
use super::status::{GovernorFailure, no_store, no_such_incident};
use super::views::{load, run_view};
use super::wiring::{
    Retrieval, deploy_signals, executor, governor_in_force, knowledge, live_logs, open_kb_read_only, planning_pipeline,
};

/// `GET /api/incidents`: every incident in the audit chain with its state and latest verdict.
pub async fn list(State(s): State<AppState>) -> Result<Answer<Vec<IncidentSummary>>, ApiError> {
    let st = s.clone();
    let states = blocking(move || load(&st)).await?.map_err(|e| no_store(&e.to_string()))?;
    let list: Vec<IncidentSummary> = states.values().map(IncidentSummary::new).collect();
    Ok(Answer::new(s.redactor(), &list))
}

/// `GET /api/incidents/{id}`: the latest plan, stress result, gate decision (with reasons),
/// evidence, binding hash, the pending approval, the claims, and every record about the
/// incident.
pub async fn show(State(s): State<AppState>, Path(id): Path<String>) -> Result<Answer<IncidentDetail>, ApiError> {
    let st = s.clone();
    let detail = blocking(move || super::wiring::incident_detail(&st, &id)).await?;
    let Some(detail) = detail.map_err(|e| no_store(&e.to_string()))? else {
        return Err(no_such_incident());
    };
    Ok(Answer::new(s.redactor(), &detail))
}

/// A service name: 1-128 of `A-Z a-z 0-9 - _ . : /` (never the policies' wildcard `*`).
const SERVICE_PATTERN: &str = "^[A-Za-z0-9._:/-]{1,128}$";
/// Non-empty, not only blanks, no control characters.
const ID_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x1f\\x7f-\\x9f\\s][^\\x00-\\x1f\\x7f-\\x9f]*$";

/// The severities an incident may have.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeverityName {
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `critical` (only a force-override releases a block).
    Critical,
}

/// Body of `POST /api/incidents`: an incident, the scenario shape of `guardrail incident run`.
/// Every field is required; any other field is refused (400), as `POST /api/gate` refuses
/// one: nothing a request says is recorded unless it is read.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentRequest {
    /// Identifier, e.g. `inc-001` (not blank, no control characters).
    #[schemars(regex(pattern = ID_PATTERN))]
    pub id: String,
    /// The affected service.
    #[schemars(regex(pattern = SERVICE_PATTERN))]
    pub service: String,
    /// Severity.
    pub severity: SeverityName,
    /// One line, as reported (data only; at most 8192 characters).
    #[schemars(length(max = 8192))]
    pub summary: String,
    /// As reported (data only; at most 8192 characters).
    #[schemars(length(max = 8192))]
    pub symptoms: String,
}

/// Where a proposal came from, recorded as the decision's `origin`.
#[derive(Serialize)]
struct HttpOrigin {
    http: &'static str,
    requested_by: Value,
}

fn propose_blocking(state: &AppState, caller: &Caller, req: IncidentRequest) -> Result<Answer<RunView>, ApiError> {
    // The core's reading of an incident is the one rule (the same as `incident run`'s files).
    let incident = guardrail_core::remediation::Incident::from_json_value(&guardrail_governor::record::encode(&req))
        .map_err(|e| {
            GovernorFailure::BadRequest.error(format!("invalid incident: {}", state.redactor().text(&e.to_string())))
        })?;
    let view = governor_in_force(state)?;
    // A knowledge base or live logs that cannot answer decide nothing (503, nothing recorded).
    let choice = knowledge(state, &view)?;
    let kb = open_kb_read_only(state, &choice)?;
    let logs = live_logs(state, &choice)?;
    let now = jiff::Timestamp::now();
    let governor = super::wiring::governor(state, &view)?;
    let exec = executor(&view);
    let signals = deploy_signals(state)?;
    let retrieval = Retrieval { choice: Some(&choice), store: Some(&*kb), logs: logs.as_ref() };
    let pipeline = planning_pipeline(state, &view, caller, &governor, retrieval, &exec, signals.as_ref(), now);
    let mut log = ServerLog::open(state, now)?;
    let origin = guardrail_governor::record::encode(&HttpOrigin {
        http: "POST /api/incidents",
        requested_by: requested_by(caller),
    });
    let run = pipeline.decide_and_act(&mut log, &incident, origin);
    Ok(Answer::new(state.redactor(), &run_view(state, caller, run)?))
}

/// `POST /api/incidents`: an incident (the scenario shape of `guardrail incident run`) through
/// plan → stress → gate, recorded; a blocked action enters the approval queue. Role
/// `deployer` (or `admin`); the token's identity is the proposer.
pub async fn propose(
    State(s): State<AppState>,
    crate::api::Deployer(caller): crate::api::Deployer,
    StrictJson(incident): StrictJson<IncidentRequest>,
) -> Result<Answer<RunView>, ApiError> {
    blocking(move || propose_blocking(&s, &caller, incident)).await?
}
