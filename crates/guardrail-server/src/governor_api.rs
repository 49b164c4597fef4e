//! The remediation governor over HTTP: thin adapters over `guardrail-governor`.
//!
//! - `GET /api/incidents`, `GET /api/incidents/{id}`, `GET /api/approvals` read the audit
//!   chain and fold it with [`guardrail_governor::queue::incident_states`] — the same fold as
//!   `guardrail incident list|show` and the MCP `incident_status` tool.
//! - `POST /api/incidents` (role `deployer` or `admin`: whoever may ask the deploy gate may
//!   propose a remediation; the token's identity is the proposer, who can never approve it)
//!   runs [`guardrail_governor::pipeline::Pipeline::decide_and_act`] — the same decide-and-act
//!   as `guardrail incident run` — over the configured knowledge base, the server's live logs
//!   (`--logs`) and, with `--governor-signals`, the deploy gate's signals of the served inputs.
//!   No file path ever comes from a request.
//! - `POST /api/incidents/{id}/approve` and `/force-override` decide with
//!   [`guardrail_governor::approve::decide_pending`] — the same function as `guardrail
//!   approve` — and record the refusal or the grant on the same chain. The approver is the
//!   bearer token's identity (role `approver` or `admin`); a body naming anyone is rejected
//!   (unknown field, 400). A grant that is not in the chain is not granted (503); one in the
//!   chain whose JSONL mirror copy failed IS granted, and the answer says so (503,
//!   `recorded_mirror_failed`, the record id) and runs nothing yet.
//! - `POST /api/incidents/{id}/execute` (role `approver`/`admin`) is `guardrail incident
//!   execute` ([`guardrail_governor::pipeline::Pipeline::execute_incident`]); `POST
//!   /api/incidents/{id}/resolve` (role `approver`/`admin`) is `guardrail incident resolve`
//!   ([`guardrail_governor::learn::resolve`]): an unreviewed runbook with provenance.
//!
//! The governor config is the one in force ([`AppState::refresh_governor`]: reloaded when its
//! file changes). While it does not read or parse, propose, approve, force-override and
//! execute answer 503 (`governor_config_invalid`) naming the file, and record nothing. An
//! approval of an incident the trail does not hold is a 404 and records nothing.
//!
//! Every execution — after the gate, a grant or `/execute` — is
//! [`guardrail_governor::pipeline::execute_claimed`]: hash-checked, then an `execution_claim`
//! appended under the store's lock (one winner among concurrent callers; a loser gets 409
//! `claim_held` naming the claim), with the governor config's `executor.default` (dry-run
//! unless configured), its result recorded as `remediation_execution`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use guardrail_core::approval::ApprovalKind;
use guardrail_core::audit::ChainedRecord;
use guardrail_gate::audit_cmd;
use guardrail_governor::approve::ApprovalInput;
use guardrail_governor::pipeline::{
    ApproveOutcome, AuditLog, ExecuteOutcome, Execution, Next, Pipeline, RunOutcome, StoreLog,
};
use guardrail_governor::queue::{IncidentState, incident_states};
use guardrail_governor::record::{ApprovalRequestBody, DecisionBody, ExecutionBody, RunContext, decode, encode};
use guardrail_store::{AppendError, Claim};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, StrictJson, authenticate, blocking, ok, record_view, requested_by, store_unavailable};
use crate::auth::{Caller, Role};
use crate::state::{AppState, GovernorView};

fn load(state: &AppState) -> Result<std::collections::BTreeMap<String, IncidentState>, String> {
    let spec = state.config().store.clone();
    let mut store = audit_cmd::open(&spec)?;
    let records = store.all().map_err(|e| format!("audit store {spec}: {e}"))?;
    Ok(incident_states(&records))
}

/// The newest decision's body, decoded (`None` without a decision or when it does not decode).
fn decision_body(st: &IncidentState) -> Option<DecisionBody> {
    st.decision.as_ref().and_then(|r| decode(&r.body).ok())
}

/// One incident as `GET /api/incidents` lists it: its state and latest verdict.
fn summary(st: &IncidentState) -> Value {
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

fn pending_view(state: &AppState, st: &IncidentState) -> Option<Value> {
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

/// The governor's audit log over HTTP: the configured store and mirror, every failed write
/// counted in `guardrail_audit_write_failures`, every record in the chain published as an
/// `audit` event (also one whose mirror copy failed: it is in the chain).
pub(crate) struct ServerLog<'s> {
    inner: StoreLog,
    state: &'s AppState,
}

impl<'s> ServerLog<'s> {
    /// Opens the configured store; records stamped `now`.
    pub(crate) fn open(state: &'s AppState, now: jiff::Timestamp) -> Result<ServerLog<'s>, ApiError> {
        let cfg = state.config();
        let store = guardrail_store::open_store(&cfg.store).map_err(|e| {
            state.metrics().audit_write_failure();
            no_store(&e.to_string())
        })?;
        Ok(ServerLog { inner: StoreLog::new(store, cfg.audit_jsonl.clone(), now), state })
    }

    fn observe(&self, rec: Option<&ChainedRecord>, failed: bool) {
        if failed {
            self.state.metrics().audit_write_failure();
        }
        if let Some(rec) = rec {
            self.state.publish("audit", json!({"id": rec.id(), "seq": rec.seq, "kind": rec.kind}));
        }
    }
}

impl AuditLog for ServerLog<'_> {
    fn append(&mut self, kind: &str, body: Value) -> Result<ChainedRecord, AppendError> {
        let r = self.inner.append(kind, body);
        match &r {
            Ok(rec) => self.observe(Some(rec), false),
            Err(e) => self.observe(e.in_chain(), true),
        }
        r
    }

    fn append_claim(&mut self, kind: &str, body: Value, claim: &str) -> Result<Claim, AppendError> {
        let r = self.inner.append_claim(kind, body, claim);
        match &r {
            Ok(Claim::Won(rec)) => self.observe(Some(rec), false),
            Ok(Claim::Held(_)) => {}
            Err(e) => self.observe(e.in_chain(), true),
        }
        r
    }
}

/// The truth about a failed append, without paths: `what` was not recorded (503), or it IS
/// recorded as record X and only its JSONL mirror copy failed (503 with `status`
/// `recorded_mirror_failed` and the record id, `then` saying what did not happen).
fn append_failed(what: &str, then: &str, e: &AppendError) -> ApiError {
    eprintln!("guardrail serve: {what}: {e}");
    match e.in_chain() {
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} was not recorded ({then}): the audit store is unavailable"),
        ),
        Some(rec) => {
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{what} IS recorded in the audit chain as record {}, but its JSONL mirror copy failed ({then})",
                    rec.id()
                ),
            );
            err.extra = Some(json!({"status": "recorded_mirror_failed", "audit": rec.id()}));
            err
        }
    }
}

fn executor(gov: &GovernorView) -> Result<Box<dyn guardrail_governor::Executor>, String> {
    guardrail_governor::record::executor_for(&gov.config, None)
}

/// The governor config in force, re-read if its file changed; a 503 naming the file (not its
/// directory) while it does not read or parse: nothing is decided on a config the operator
/// did not mean.
fn governor_in_force(state: &AppState) -> Result<std::sync::Arc<GovernorView>, ApiError> {
    let view = state.refresh_governor();
    if let Some(why) = &view.broken {
        let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why.clone());
        err.extra = Some(json!({"code": "governor_config_invalid"}));
        return Err(err);
    }
    Ok(view)
}

/// An execution step as the API answers it: the `remediation_execution` body (with `audit`),
/// or an error (409 another execution holds the claim; 503 no executor, or a record not
/// written).
fn execution_view(exec: Execution) -> Result<Value, ApiError> {
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

fn approve_blocking(
    state: &AppState,
    caller: &Caller,
    id: String,
    kind: ApprovalKind,
    req: ApproveRequest,
) -> Result<Value, ApiError> {
    let view = governor_in_force(state)?;
    // A mistyped id must not leave a permanent refusal in the chain.
    if !load(state).map_err(|e| no_store(&e))?.contains_key(&id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such incident in the audit trail (nothing was recorded); GET /api/approvals lists those awaiting approval",
        ));
    }
    let now = jiff::Timestamp::now();
    let mut log = ServerLog::open(state, now)?;
    let input = ApprovalInput {
        incident_id: id.clone(),
        kind,
        approver: caller.identity.clone(),
        reason: req.reason,
        reviewed_hash: Some(req.plan_hash),
    };
    let governor = guardrail_governor::Governor::default();
    let exec = executor(&view);
    let p = pipeline(state, &view, caller, &governor, None, &exec, None, now);
    let mut read = || load(state);
    let extra = json!({"requested_by": requested_by(caller)});
    let (granted, rec, execution) = match p.approve(&mut log, &mut read, &input, Some(&extra)) {
        ApproveOutcome::CannotDecide(e) => {
            eprintln!("guardrail serve: approval of {id}: {e}");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the incident's records cannot be read, so nothing is approved",
            ));
        }
        ApproveOutcome::Refused { refused: r, record } => {
            let rec = record.map_err(|e| {
                append_failed("the refusal", &format!("refused: {}", state.redactor().text(&r.message)), &e)
            })?;
            state.publish(
                "approval",
                json!({"incident_id": id, "status": "refused", "code": r.code, "audit": rec.id()}),
            );
            let mut err = ApiError::new(StatusCode::CONFLICT, state.redactor().text(&r.message));
            err.extra = Some(json!({"code": r.code, "status": "refused", "audit": rec.id()}));
            return Err(err);
        }
        ApproveOutcome::NotGranted(e) => {
            return Err(append_failed("the approval", "so it is not granted and nothing runs", &e));
        }
        ApproveOutcome::GrantedMirrorFailed { error, .. } => {
            return Err(append_failed(
                "the approval",
                &format!("it IS granted; nothing runs now: POST /api/incidents/{id}/execute runs it"),
                &error,
            ));
        }
        ApproveOutcome::ReleasedByAnother { record, .. } => {
            let mut err = ApiError::new(StatusCode::CONFLICT, "the incident was released by another grant first");
            err.extra = Some(json!({"code": "already_released", "status": "refused", "audit": record.id()}));
            return Err(err);
        }
        ApproveOutcome::Unconfirmed { error, .. } => return Err(no_store(&error)),
        ApproveOutcome::Released { granted, record, execution } => (granted, record, execution),
    };
    let g = &granted.grant;
    state.publish(
        "approval",
        json!({"incident_id": id, "status": "authorised", "kind": g.kind.as_str(), "audit": rec.id()}),
    );
    let succeeded = execution.succeeded();
    let execution = execution_view(execution)?;
    let status = if succeeded { "executed" } else { "execution_failed" };
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

/// Opens the configured knowledge base for writing (learning: `resolve`); a missing or
/// unreadable one is a 503 without its path.
fn open_kb(path: &std::path::Path) -> Result<guardrail_knowledge::SqliteKnowledgeStore, ApiError> {
    guardrail_knowledge::SqliteKnowledgeStore::open(path).map_err(kb_unavailable)
}

/// Opens the configured knowledge base read-only
/// ([`guardrail_knowledge::SqliteKnowledgeStore::open_read_only`]), for what only plans and
/// searches (propose, execute's re-gate); the same 503 as [`open_kb`].
fn open_kb_read_only(path: &std::path::Path) -> Result<guardrail_knowledge::SqliteKnowledgeStore, ApiError> {
    guardrail_knowledge::SqliteKnowledgeStore::open_read_only(path).map_err(kb_unavailable)
}

/// A knowledge base that cannot be opened: logged with its reason, answered as a 503 without
/// its path.
fn kb_unavailable(e: guardrail_knowledge::KnowledgeError) -> ApiError {
    eprintln!("guardrail serve: knowledge base: {e}");
    let msg = match e {
        guardrail_knowledge::KnowledgeError::NotFound(_) => {
            "the knowledge base is missing (create it with `guardrail kb load`), so nothing can be decided"
        }
        _ => "the knowledge base cannot be read, so nothing can be decided",
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg)
}

/// The deploy gate's signals from the server's own inputs (the snapshot `GET /api/decision`
/// answers from), when `guardrail serve --governor-signals` is on; an input problem is a 503
/// (could not decide), never "no signals".
fn deploy_signals(state: &AppState) -> Result<Option<(guardrail_core::signals::Signals, Value)>, ApiError> {
    if !state.config().governor.deploy_signals {
        return Ok(None);
    }
    state.refresh();
    let snap = state.snapshot();
    let undecidable = |e: Vec<String>| {
        eprintln!("guardrail serve: deploy signals: {}", e.join("; "));
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the deploy gate's inputs cannot be evaluated, so nothing can be decided",
        )
    };
    let sources = snap.sources().map_err(undecidable)?;
    let digests: Vec<_> = [&sources.policies, &sources.slos, &sources.metrics, &sources.cost]
        .into_iter()
        .map(guardrail_gate::inputs::digest)
        .collect();
    // The same settings (and clock, or the server's --now) as GET /api/decision.
    let settings = state.settings_now().map_err(undecidable)?;
    let ev = guardrail_gate::gate::evaluate(sources, settings).map_err(undecidable)?;
    let mut meta = json!({"source": "guardrail serve inputs", "inputs": digests, "signals": ev.signals});
    state.redactor().value(&mut meta);
    Ok(Some((ev.signals, meta)))
}

/// The pipeline over the server's configuration, proposed (or requested) by the token's
/// identity.
#[allow(clippy::too_many_arguments)]
fn pipeline<'p>(
    state: &'p AppState,
    view: &'p GovernorView,
    caller: &Caller,
    governor: &'p guardrail_governor::Governor,
    kb: Option<&'p dyn guardrail_knowledge::KnowledgeStore>,
    exec: &'p Result<Box<dyn guardrail_governor::Executor>, String>,
    signals: Option<&'p (guardrail_core::signals::Signals, Value)>,
    now: jiff::Timestamp,
) -> Pipeline<'p> {
    let gov = &state.config().governor;
    let kb_name =
        gov.kb.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Pipeline {
        governor,
        config: &view.config,
        run: RunContext {
            proposer: caller.identity.clone(),
            knowledge_base: kb_name,
            logs: gov.logs.as_ref().map(|l| {
                let mut d = Value::String(guardrail_governor::LogsSource::describe(l));
                state.redactor().value(&mut d);
                d.as_str().unwrap_or_default().to_string()
            }),
            deploy_signals: signals.map(|(_, m)| m.clone()),
            governor_config: view.description.clone(),
        },
        knowledge: kb,
        logs: gov.logs.as_ref().map(|l| l as &dyn guardrail_governor::LogsSource),
        signals: signals.map(|(s, _)| s),
        executor: match exec {
            Ok(e) => Ok(e.as_ref()),
            Err(e) => Err(e.clone()),
        },
        now,
    }
}

/// A run as the API answers it.
fn run_view(state: &AppState, caller: &Caller, run: RunOutcome) -> Result<Value, ApiError> {
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

/// Body of `POST /api/incidents/{id}/execute`. There is no field naming who asks: it is the
/// token's identity.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The action to run [default: the authorised one]. Another action than the authorised
    /// one is not run: the refusal is recorded and the action goes through the gate again.
    #[serde(default)]
    pub action: Option<String>,
}

fn conflict(code: &str, message: String, extra: Value) -> ApiError {
    let mut err = ApiError::new(StatusCode::CONFLICT, message);
    let mut x = json!({"code": code, "status": "refused"});
    if let (Some(o), Value::Object(more)) = (x.as_object_mut(), extra) {
        o.extend(more);
    }
    err.extra = Some(x);
    err
}

fn execute_blocking(state: &AppState, caller: &Caller, id: String, req: ExecuteRequest) -> Result<Value, ApiError> {
    let states = load(state).map_err(|e| no_store(&e))?;
    if !states.contains_key(&id) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such incident in the audit trail"));
    }
    if let Some(a) = &req.action
        && (a.trim().is_empty() || a.chars().count() > 200)
    {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "action: must be 1-200 characters"));
    }
    let view = governor_in_force(state)?;
    let now = jiff::Timestamp::now();
    let gov = &state.config().governor;
    // The knowledge base is needed only to gate another action again.
    let kb = gov.kb.as_ref().and_then(|p| guardrail_knowledge::SqliteKnowledgeStore::open_read_only(p).ok());
    let governor = guardrail_governor::Governor::default();
    let exec = executor(&view);
    let signals = if req.action.is_some() { deploy_signals(state)? } else { None };
    let pipeline = pipeline(
        state,
        &view,
        caller,
        &governor,
        kb.as_ref().map(|k| k as &dyn guardrail_knowledge::KnowledgeStore),
        &exec,
        signals.as_ref(),
        now,
    );
    let mut log = ServerLog::open(state, now)?;
    let out = pipeline.execute_incident(&mut log, &states, &id, req.action.as_deref());
    let mut v = match out {
        ExecuteOutcome::CannotExecute(e) => {
            return Err(conflict("nothing_authorised", state.redactor().text(&e), Value::Null));
        }
        ExecuteOutcome::AwaitingApproval { action } => {
            return Err(conflict(
                "awaiting_approval",
                format!("{action} is blocked and awaits approval"),
                json!({"status": "awaiting_approval"}),
            ));
        }
        ExecuteOutcome::AlreadyExecuted { execution } => {
            let claim = decode::<ExecutionBody>(&execution.body).ok().and_then(|b| b.claim_record);
            return Err(conflict(
                "already_executed",
                format!("it already ran as record {}; a new run needs a new decision", execution.id()),
                json!({"execution_record": execution.id(), "claim_record": claim}),
            ));
        }
        ExecuteOutcome::RefusalNotRecorded(e) => {
            return Err(append_failed("the refusal of the other action", "it is not gated again", &e));
        }
        ExecuteOutcome::Executed(exec) => {
            let succeeded = exec.succeeded();
            let execution = execution_view(exec)?;
            let status = if succeeded { "executed" } else { "execution_failed" };
            json!({"incident_id": id, "status": status, "execution": execution})
        }
        ExecuteOutcome::Regated { requested, instead_of, refused, run } => {
            if kb.is_none() && matches!(*run, RunOutcome::CouldNotDecide { .. }) {
                // Recorded as a could-not-decide; say why without the path.
                let _ = open_kb_read_only(gov.kb.as_deref().unwrap_or(std::path::Path::new("")))?;
            }
            let mut v = run_view(state, caller, *run)?;
            v["regate"] = json!({
                "requested_action": requested,
                "instead_of": instead_of,
                "refusal_record": refused.map(|r| r.id()),
            });
            v
        }
    };
    state.publish("incident", json!({"incident_id": id, "status": v["status"]}));
    state.redactor().value(&mut v);
    Ok(v)
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
) -> Result<Response, ApiError> {
    let st = s.clone();
    blocking(move || execute_blocking(&st, &caller, id, req)).await?.map(ok)
}

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
