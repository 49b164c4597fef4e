//! The remediation governor over HTTP: thin adapters over `guardrail-governor`.
//!
//! - `GET /api/incidents`, `GET /api/incidents/{id}`, `GET /api/approvals` read the audit
//!   chain and fold it with [`guardrail_governor::queue::incident_states`] — the same fold as
//!   `guardrail incident list|show` and the MCP `incident_status` tool.
//! - `POST /api/incidents` (role `deployer` or `admin`: whoever may ask the deploy gate may
//!   propose a remediation; the token's identity is the proposer, who can never approve it)
//!   runs plan → stress → gate with [`guardrail_governor::Governor`] over the configured
//!   knowledge base and records the run with [`guardrail_governor::record`] — the same
//!   bodies as `guardrail incident run` — plus the approval request of a blocked action.
//! - `POST /api/incidents/{id}/approve` and `/force-override` decide with
//!   [`guardrail_governor::approve::decide_pending`] — the same function as `guardrail
//!   approve` — and record the refusal or the grant on the same chain. The approver is the
//!   bearer token's identity (role `approver` or `admin`); a body naming anyone is rejected
//!   (unknown field, 400). A grant that could not be recorded is not granted (503).
//!
//! An action the gate validates, or one a grant releases, then runs exactly as after
//! `guardrail incident run` / `guardrail approve`: hash-checked, with the governor config's
//! `executor.default` (dry-run unless configured), and its result recorded as
//! `remediation_execution` ([`guardrail_governor::record::execute_authorised`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use guardrail_core::approval::ApprovalKind;
use guardrail_core::audit::{ChainedRecord, RecordDraft};
use guardrail_gate::audit_cmd;
use guardrail_governor::approve::{ApprovalInput, ApprovalStep, decide_pending};
use guardrail_governor::queue::{IncidentState, incident_states, kinds};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, StrictJson, authenticate, blocking, ok, record_view, requested_by, store_unavailable};
use crate::auth::{Caller, Role};
use crate::state::AppState;

fn load(state: &AppState) -> Result<std::collections::BTreeMap<String, IncidentState>, String> {
    let spec = state.config().store.clone();
    let mut store = audit_cmd::open(&spec)?;
    let records = store.all().map_err(|e| format!("audit store {spec}: {e}"))?;
    Ok(incident_states(&records))
}

fn at(v: &Value, pointer: &str) -> Value {
    v.pointer(pointer).cloned().unwrap_or(Value::Null)
}

/// One incident as `GET /api/incidents` lists it: its state and latest verdict.
fn summary(st: &IncidentState) -> Value {
    let d = st.decision.as_ref();
    let b = d.map(|r| &r.body).unwrap_or(&Value::Null);
    json!({
        "incident_id": st.incident_id,
        "status": st.status(),
        "service": at(b, "/incident/service"),
        "severity": at(b, "/incident/severity"),
        "decision": at(b, "/decision"),
        "rule": at(b, "/rule"),
        "gated_action": at(b, "/gated_action"),
        "plan_hash": at(b, "/binding_hash"),
        "reasons": at(b, "/reasons"),
        "decided_at": d.map(|r| r.recorded_at.clone()),
        "decision_record": d.map(ChainedRecord::id),
        "awaiting_approval": st.pending.is_some(),
        "last_record": st.last_record(),
    })
}

fn pending_view(state: &AppState, st: &IncidentState) -> Option<Value> {
    let p = st.pending.as_ref()?;
    let b = &p.body;
    let mut v = json!({
        "incident_id": st.incident_id,
        "request_record": p.id(),
        "requested_at": p.recorded_at,
        "severity": at(b, "/severity"),
        "proposer": at(b, "/proposer"),
        "action": at(b, "/action"),
        "plan_hash": at(b, "/binding_hash"),
        "requires": at(b, "/requires"),
        "reasons": at(b, "/reasons"),
        "eligible": at(b, "/eligible"),
    });
    state.redactor().value(&mut v);
    Some(v)
}

fn no_store(e: &str) -> ApiError {
    store_unavailable("incidents", e)
}

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
    let b = inc.decision.as_ref().map(|r| r.body.clone()).unwrap_or(Value::Null);
    let mut v = summary(inc);
    if let Some(o) = v.as_object_mut() {
        o.insert("incident".into(), at(&b, "/incident"));
        o.insert("plan".into(), at(&b, "/outcome/plan"));
        o.insert("stress".into(), at(&b, "/outcome/stress"));
        o.insert("gate".into(), at(&b, "/outcome/gate"));
        o.insert(
            "evidence".into(),
            json!({
                "key_claims": at(&b, "/outcome/plan/output/key_claims"),
                "retrieved_context_ids": at(&b, "/outcome/plan/output/retrieved_context_ids"),
                "assessment": at(&b, "/outcome/stress/assessment"),
            }),
        );
        o.insert("requires_force_override".into(), at(&b, "/requires_force_override"));
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

/// `GET /api/approvals`: the pending approval queue, oldest request first.
pub async fn approvals(State(s): State<AppState>) -> Result<Response, ApiError> {
    let st = s.clone();
    let states = blocking(move || load(&st)).await?.map_err(|e| no_store(&e))?;
    let mut pending: Vec<Value> = states.values().filter_map(|i| pending_view(&s, i)).collect();
    pending.sort_by_key(|p| p["request_record"].as_str().and_then(|r| r.split('-').next()?.parse::<u64>().ok()));
    Ok(ok(Value::Array(pending)))
}

/// Body of `POST /api/incidents/{id}/approve` and `/force-override`. There is deliberately no
/// field naming the approver: it is the token's identity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The plan hash the approver reviewed (from `GET /api/incidents/{id}`; a prefix of 12+
    /// hex digits): refused if the gated plan is another.
    pub plan_hash: String,
    /// Why (required for a force-override).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The caller of an approval endpoint: a token whose role may approve.
#[derive(Debug, Clone)]
pub struct Approver(pub Caller);

impl axum::extract::FromRequestParts<AppState> for Approver {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state, Role::Approver).map(Approver)
    }
}

fn append(state: &AppState, kind: &str, body: Value) -> Result<ChainedRecord, String> {
    let cfg = state.config();
    let draft = RecordDraft { kind: kind.into(), recorded_at: jiff::Timestamp::now().to_string(), body };
    let rec = audit_cmd::append(&cfg.store, cfg.audit_jsonl.as_ref(), draft).map(|(r, _)| r).inspect_err(|_| {
        state.metrics().audit_write_failure();
    })?;
    state.publish("audit", json!({"id": rec.id(), "seq": rec.seq, "kind": rec.kind}));
    Ok(rec)
}

fn not_recorded(what: &str, e: &str) -> ApiError {
    eprintln!("guardrail serve: {what}: {e}");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{what}: the audit store is unavailable"))
}

/// Runs an authorised action with the configured executor and records the result.
fn execute(
    state: &AppState,
    auth: &guardrail_governor::queue::Authorisation,
    incident: &guardrail_core::remediation::Incident,
    plan: &guardrail_core::remediation::PlanOutput,
    caller: &Caller,
) -> Result<Value, ApiError> {
    let gov = &state.config().governor;
    let exec = guardrail_governor::record::executor_for(&gov.config, None)
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("authorised, but NOT executed: {e}")))?;
    let (mut body, _) = guardrail_governor::record::execute_authorised(
        exec.as_ref(),
        auth,
        incident,
        plan,
        &auth.action,
        &caller.identity,
    );
    let rec = append(state, kinds::EXECUTION, body.clone())
        .map_err(|e| not_recorded("the execution result was not recorded", &e))?;
    body["audit"] = rec.id().into();
    Ok(body)
}

fn approve_blocking(
    state: &AppState,
    caller: &Caller,
    id: String,
    kind: ApprovalKind,
    req: ApproveRequest,
) -> Result<Value, ApiError> {
    let states = load(state).map_err(|e| no_store(&e))?;
    let input = ApprovalInput {
        incident_id: id.clone(),
        kind,
        approver: caller.identity.clone(),
        reason: req.reason,
        reviewed_hash: Some(req.plan_hash),
    };
    let gov = &state.config().governor;
    let step = decide_pending(&states, &input, &gov.config.approvals, gov.description.clone()).map_err(|e| {
        eprintln!("guardrail serve: approval of {id}: {e}");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the incident's records cannot be read, so nothing is approved")
    })?;
    let granted = match step {
        ApprovalStep::Refused(r) => {
            let mut body = r.body;
            if let Some(o) = body.as_object_mut() {
                o.insert("requested_by".into(), requested_by(caller));
            }
            let rec = append(state, kinds::APPROVAL_REFUSED, body)
                .map_err(|e| not_recorded("refused, and the refusal could not be recorded", &e))?;
            state.publish(
                "approval",
                json!({"incident_id": id, "status": "refused", "code": r.code, "audit": rec.id()}),
            );
            let mut err = ApiError::new(StatusCode::CONFLICT, state.redactor().text(&r.message));
            err.extra = Some(json!({"code": r.code, "status": "refused", "audit": rec.id()}));
            return Err(err);
        }
        ApprovalStep::Granted(g) => g,
    };
    let mut body = granted.body;
    if let Some(o) = body.as_object_mut() {
        o.insert("requested_by".into(), requested_by(caller));
    }
    let rec = append(state, granted.record_kind, body)
        .map_err(|e| not_recorded("the approval was not recorded, so it is not granted", &e))?;
    // Two approvers racing both append a grant; only the first after the request releases it.
    let first = load(state).map_err(|e| no_store(&e))?.get(&id).and_then(|st| st.authorised.clone());
    if first.as_ref().is_none_or(|a| a.record != rec.id()) {
        let mut err = ApiError::new(StatusCode::CONFLICT, "the incident was released by another grant first");
        err.extra = Some(json!({"code": "already_released", "status": "refused", "audit": rec.id()}));
        return Err(err);
    }
    let Some(auth) = first else {
        return Err(ApiError::new(StatusCode::CONFLICT, "the incident was released by another grant first"));
    };
    let g = &granted.grant;
    state.publish(
        "approval",
        json!({"incident_id": id, "status": "authorised", "kind": g.kind.as_str(), "audit": rec.id()}),
    );
    let execution = execute(state, &auth, &granted.incident, &granted.plan, caller)?;
    let status = if execution["ok"] == true { "executed" } else { "execution_failed" };
    let mut v = json!({
        "incident_id": id,
        "status": status,
        "execution": execution,
        "grant": {
            "kind": g.kind.as_str(), "approver": g.approver, "reason": g.reason,
            "action": g.action, "plan_hash": g.binding_hash, "audit": rec.id(),
        },
    });
    state.redactor().value(&mut v);
    Ok(v)
}

/// `POST /api/incidents/{id}/approve`: an APPROVE by the token's identity.
pub async fn approve(
    State(s): State<AppState>,
    Approver(caller): Approver,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<ApproveRequest>,
) -> Result<Response, ApiError> {
    let st = s.clone();
    blocking(move || approve_blocking(&st, &caller, id, ApprovalKind::Approve, req)).await?.map(ok)
}

/// `POST /api/incidents/{id}/force-override`: a FORCE_OVERRIDE (needs a reason) by the
/// token's identity.
pub async fn force_override(
    State(s): State<AppState>,
    Approver(caller): Approver,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<ApproveRequest>,
) -> Result<Response, ApiError> {
    let st = s.clone();
    blocking(move || approve_blocking(&st, &caller, id, ApprovalKind::ForceOverride, req)).await?.map(ok)
}

fn propose_blocking(state: &AppState, caller: &Caller, incident: Value) -> Result<Value, ApiError> {
    use guardrail_governor::record::{RunContext, approval_request_body, decision_body, error_body, requires};
    let incident = guardrail_core::remediation::Incident::from_json_value(&incident).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("invalid incident: {}", state.redactor().text(&e.to_string())))
    })?;
    let gov = &state.config().governor;
    let Some(kb_path) = gov.kb.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no knowledge base is configured (guardrail serve --kb)",
        ));
    };
    let kb = guardrail_knowledge::SqliteKnowledgeStore::open(kb_path).map_err(|e| {
        eprintln!("guardrail serve: knowledge base: {e}");
        let msg = match e {
            guardrail_knowledge::KnowledgeError::NotFound(_) => {
                "the knowledge base is missing (create it with `guardrail kb load`), so nothing can be decided"
            }
            _ => "the knowledge base cannot be read, so nothing can be decided",
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg)
    })?;
    let kb_name = kb_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let run = RunContext {
        proposer: caller.identity.clone(),
        knowledge_base: kb_name,
        logs: None,
        deploy_signals: None,
        governor_config: gov.description.clone(),
    };
    let origin = json!({"http": "POST /api/incidents", "requested_by": requested_by(caller)});
    let ctx = guardrail_governor::ToolContext::new(&kb, jiff::Timestamp::now());
    let outcome = match guardrail_governor::Governor::default().run(&incident, &ctx, None) {
        Ok(o) => o,
        Err(f) => {
            let rec = append(state, kinds::ERROR, error_body(&incident, &origin, &run, &f))
                .map_err(|e| not_recorded("could not decide, and that could not be recorded", &e))?;
            let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, state.redactor().text(&f.error.to_string()));
            err.extra = Some(json!({"status": "could_not_decide", "audit": rec.id()}));
            return Err(err);
        }
    };
    let rec = append(state, kinds::DECISION, decision_body(&incident, &origin, &run, &outcome))
        .map_err(|e| not_recorded("the decision was not recorded, so it is withheld", &e))?;
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
    if verdict == guardrail_core::remediation::Verdict::Execute {
        let auth = guardrail_governor::queue::Authorisation {
            record: rec.id(),
            by: "gate".into(),
            approver: None,
            action: outcome.gated_action().to_string(),
            binding_hash: outcome.binding_hash(),
        };
        let execution = execute(state, &auth, &outcome.incident, &outcome.plan.output, caller)?;
        v["status"] = if execution["ok"] == true { "executed".into() } else { "execution_failed".into() };
        v["execution"] = execution;
    } else {
        let body = approval_request_body(&incident, &outcome, &run, &rec.id(), &gov.config.approvals);
        let req = append(state, kinds::APPROVAL_REQUEST, body)
            .map_err(|e| not_recorded("the approval request was not recorded", &e))?;
        v["status"] = "awaiting_approval".into();
        v["requires"] = requires(&incident, &outcome).into();
        v["audit"]["approval_request"] = req.id().into();
    }
    state.publish(
        "incident",
        json!({"incident_id": incident.id, "status": v["status"], "decision": verdict.as_str(), "audit": rec.id()}),
    );
    state.redactor().value(&mut v);
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
