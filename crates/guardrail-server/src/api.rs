//! HTTP handlers. Each one is a thin adapter: it takes what the request says, calls the gate
//! library (`guardrail_gate::gate`, `audit_cmd`) or the audit store, and shapes the answer as
//! `{"ok": true, "data": …}` / `{"ok": false, "error": "…", "errors": […]}`. No decision is
//! made here; no message leaves without going through the [`crate::redact::Redactor`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use guardrail_core::audit::ChainedRecord;
use guardrail_core::signals::{self, SignalKind, SignalValue};
use guardrail_gate::audit_cmd;
use guardrail_gate::ci::{CiContext, CiRequest};
use guardrail_gate::decide::{
    self, Decided, GateOutcome, Recorder, RequestedBy, Snapshot, Undecided, Withheld, decide_and_record,
};
use guardrail_gate::gate::{self, AuditRef};
use guardrail_store::AppendError;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::StreamExt as _;

use crate::auth::{Caller, Role};
use crate::state::{AppState, Reply, error_value, narrative, summary};

/// An error answer: status, messages (already free of paths) and extra headers.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Messages for the caller.
    pub errors: Vec<String>,
    /// Extra fields of the error envelope (e.g. the audit record of a could-not-decide).
    pub extra: Option<Value>,
    bearer_challenge: bool,
}

impl ApiError {
    /// An error with one message.
    pub fn new(status: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError { status, errors: vec![msg.into()], extra: None, bearer_challenge: false }
    }
    pub(crate) fn many(status: StatusCode, errors: Vec<String>) -> ApiError {
        ApiError { status, errors, extra: None, bearer_challenge: false }
    }
    fn unauthorized(msg: &str) -> ApiError {
        ApiError { bearer_challenge: true, ..ApiError::new(StatusCode::UNAUTHORIZED, msg) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut v = error_value(&self.errors);
        if let (Some(obj), Some(Value::Object(extra))) = (v.as_object_mut(), self.extra) {
            obj.extend(extra);
        }
        let mut r = (self.status, json_bytes(&v)).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.bearer_challenge {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"guardrail\""));
        }
        r
    }
}

fn json_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

fn reply(r: &Reply) -> Response {
    let mut resp = (r.status, r.body.clone()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub(crate) fn ok(data: Value) -> Response {
    let mut resp = (StatusCode::OK, json_bytes(&json!({"ok": true, "data": data}))).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The caller of a write endpoint, from `Authorization: Bearer TOKEN` checked against the
/// tokens file. Rejects with 401 (no, malformed or unknown token; or no tokens file) or 403
/// (a token whose role may not deploy).
#[derive(Debug, Clone)]
pub struct Deployer(pub Caller);

impl FromRequestParts<AppState> for Deployer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(parts, state, Role::Deployer).map(Deployer)
    }
}

/// Checks `Authorization: Bearer TOKEN` against the tokens file and the role an endpoint
/// needs: 401 for no, malformed or unknown token (or no tokens file), 403 for a token whose
/// role does not allow it. The identity comes from the tokens file only, never from the
/// request. (The approval endpoints take `Role::Approver` the same way.)
pub fn authenticate(parts: &Parts, state: &AppState, need: Role) -> Result<Caller, ApiError> {
    let Some(tokens) = state.config().tokens.as_ref() else {
        return Err(ApiError::unauthorized(
            "write endpoints are disabled: the server was started without a tokens file (--tokens)",
        ));
    };
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized("missing Authorization: Bearer TOKEN"));
    };
    let Ok(text) = value.to_str() else {
        return Err(ApiError::unauthorized("the Authorization header is not valid text"));
    };
    let token = match text.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => t.trim(),
        _ => return Err(ApiError::unauthorized("the Authorization header must be `Bearer TOKEN`")),
    };
    let Some(caller) = tokens.check(token) else {
        return Err(ApiError::unauthorized("the token is not valid"));
    };
    if !caller.role.allows(need) {
        let what = match need {
            Role::Viewer => "read",
            Role::Deployer => "ask for deploy decisions",
            Role::Approver => "approve",
            Role::Admin => "do this",
        };
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the token's role ({}) may not {what}", caller.role.as_str()),
        ));
    }
    Ok(caller)
}

/// A JSON body, strictly: `Content-Type: application/json` (else 415), at most the configured
/// size (else 413), and a body that parses into `T` with no unknown fields (else 400).
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {} bytes", state.config().max_body_bytes),
                ));
            }
            Err(_) => return Err(ApiError::new(StatusCode::BAD_REQUEST, "the body could not be read")),
        };
        // serde would also accept a struct written as an array; only an object is a request.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid request body: expected a JSON object"));
        }
        match serde_json::from_slice::<T>(&bytes) {
            Ok(v) => Ok(StrictJson(v)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, format!("invalid request body: {e}"))),
        }
    }
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the request could not be completed"))
}

// ---------------------------------------------------------------- compatibility endpoints

/// `GET /api/slo`: the SLO block of the current snapshot.
pub async fn slo(State(s): State<AppState>) -> Response {
    reply(&s.snapshot().replies.slo)
}

/// `GET /api/cost`: the cost block (with `daily_costs`, for the chart).
pub async fn cost(State(s): State<AppState>) -> Response {
    reply(&s.snapshot().replies.cost)
}

/// `GET /api/decision`: what the gate would decide on the current snapshot (records nothing).
pub async fn decision(State(s): State<AppState>) -> Response {
    reply(&s.snapshot().replies.decision)
}

/// `GET /api/explain`: `{"text": narrative}`.
pub async fn explain(State(s): State<AppState>) -> Response {
    reply(&s.snapshot().replies.explain)
}

/// `GET /api/all`: slo, cost, decision and explanation from one snapshot.
pub async fn all(State(s): State<AppState>) -> Response {
    reply(&s.snapshot().replies.all)
}

/// Query of `GET /api/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// How many records, newest first (1–500, default 50).
    pub limit: Option<usize>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only records with a smaller sequence number (paging).
    pub before_seq: Option<i64>,
}

pub(crate) fn store_unavailable(what: &str, e: &str) -> ApiError {
    // The full message (with the store's location) is for the operator, not the caller.
    eprintln!("guardrail serve: {what}: {e}");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{what}: the audit store is unavailable"))
}

/// A record as `/api/audit` shows it: the body's fields (without the inputs' full text, and
/// with file names instead of paths) plus `timestamp`, `id`, `seq`, `kind`, `hash`, `prev_hash`.
pub fn record_view(state: &AppState, r: &ChainedRecord) -> Value {
    let mut body = r.body.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.remove("input_content");
        if let Some(Value::Object(ins)) = obj.get_mut("inputs") {
            for (_, d) in ins.iter_mut() {
                if let Some(Value::String(p)) = d.get_mut("path") {
                    *p = std::path::Path::new(p.as_str())
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                }
            }
        }
        if let Some(Value::Array(ins)) = obj.get_mut("inputs") {
            for d in ins.iter_mut() {
                if let Some(Value::String(p)) = d.get_mut("path") {
                    *p = std::path::Path::new(p.as_str())
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                }
            }
        }
        if let Some(Value::Object(audit)) = obj.get_mut("audit") {
            audit.remove("store");
        }
    }
    let mut v = match body {
        Value::Object(o) => Value::Object(o),
        other => json!({"body": other}),
    };
    if let Some(obj) = v.as_object_mut() {
        obj.insert("timestamp".into(), r.recorded_at.clone().into());
        obj.insert("id".into(), r.id().into());
        obj.insert("seq".into(), r.seq.into());
        obj.insert("kind".into(), r.kind.clone().into());
        obj.insert("hash".into(), r.hash.clone().into());
        obj.insert("prev_hash".into(), r.prev_hash.clone().into());
    }
    state.redactor().value(&mut v);
    v
}

/// `GET /api/audit`: the newest records of the audit store.
pub async fn audit(
    State(s): State<AppState>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) =
        q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid query: {}", e.body_text())))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "limit must be between 1 and 500"));
    }
    let spec = s.config().store.clone();
    let query = guardrail_store::ListQuery { limit, before_seq: q.before_seq, kind: q.kind };
    let records = blocking(move || -> Result<Vec<ChainedRecord>, String> {
        let mut store = audit_cmd::open(&spec)?;
        store.list(&query).map_err(|e| e.to_string())
    })
    .await?
    .map_err(|e| store_unavailable("audit", &e))?;
    Ok(ok(Value::Array(records.iter().map(|r| record_view(&s, r)).collect())))
}

/// `GET /api/audit/verify`: recomputes every hash of the chain.
pub async fn audit_verify(State(s): State<AppState>) -> Result<Response, ApiError> {
    let spec = s.config().store.clone();
    let rep = blocking(move || -> Result<guardrail_core::audit::VerifyReport, String> {
        let mut store = audit_cmd::open(&spec)?;
        store.verify().map_err(|e| e.to_string())
    })
    .await?
    .map_err(|e| store_unavailable("audit verify", &e))?;
    let mut v = json!({"intact": rep.ok(), "records": rep.records, "head": rep.head, "breaks": rep.breaks});
    s.redactor().value(&mut v);
    Ok(ok(v))
}

// ---------------------------------------------------------------- deciding and recording

/// Body of `POST /api/gate`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRequest {
    /// The pipeline's context, recorded with the decision: [`CiContext`]'s own fields, read
    /// strictly by [`CiRequest`] (blank values dropped, provider `http` when not given). Who
    /// triggered the pipeline (`actor`) is as the pipeline says; the token's identity is
    /// recorded separately as `requested_by`.
    #[serde(default)]
    pub ci: Option<CiRequest>,
    /// Report exit code 1 for WARN (as `guardrail gate --fail-on-warn`).
    #[serde(default)]
    pub fail_on_warn: bool,
}

/// Body of `POST /api/simulate`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// Signal values to use instead of the measured ones (names from the signal catalogue).
    #[serde(default)]
    pub signals: BTreeMap<String, Value>,
}

/// Audit record kind of a simulation (never a deploy decision; `replay` ignores it).
pub const SIMULATION_KIND: &str = "deploy_simulation";

fn store_label(described: &str) -> String {
    if described.starts_with("postgres") { "postgres".into() } else { "sqlite".into() }
}

/// Who asked, as recorded with a decision (the token's identity and role).
fn requester(c: &Caller) -> RequestedBy {
    RequestedBy { identity: Some(c.identity.clone()), role: Some(c.role), via: "http" }
}

pub(crate) fn requested_by(c: &Caller) -> Value {
    serde_json::to_value(requester(c)).unwrap_or(Value::Null)
}

/// The current inputs with the clock now (the snapshot `state` holds, re-read if changed).
fn snapshot_now(state: &AppState) -> Result<Snapshot, Undecided> {
    state.refresh();
    let sources = state.snapshot().sources().map_err(|e| Undecided::before_reading(e, &state.0.paths, None))?;
    let settings = state.settings_now().map_err(|e| Undecided::after_reading(e, &sources, None))?;
    Ok(Snapshot { sources, settings })
}

/// The answer to a run that could not decide (its `deploy_error` record attempted, as
/// `guardrail gate` does): 503 with the reasons (without paths) and the record.
fn cannot_decide(
    state: &AppState,
    endpoint: &str,
    undecided: &Undecided,
    record: Result<ChainedRecord, AppendError>,
) -> ApiError {
    state.metrics().undecided(endpoint);
    let mut shown: Vec<String> = undecided.errors.iter().map(|e| state.redactor().text(e)).collect();
    let mut err = ApiError::many(StatusCode::SERVICE_UNAVAILABLE, Vec::new());
    let in_chain = match &record {
        Ok(rec) => Some(rec),
        Err(e) => {
            state.metrics().audit_write_failure();
            eprintln!("guardrail serve: {endpoint}: could not record the error: {e}");
            // In the chain with a failed mirror copy: recorded all the same, and named.
            match e.in_chain() {
                Some(rec) => shown.push(format!(
                    "this error IS recorded in the audit chain as record {}, but its JSONL mirror copy failed",
                    rec.id()
                )),
                None => shown.push("the audit store could not record this error".into()),
            }
            e.in_chain()
        }
    };
    if let Some(rec) = in_chain {
        state.publish("audit", json!({"id": rec.id(), "seq": rec.seq, "kind": rec.kind}));
        let mut extra = json!({"audit": {"id": rec.id(), "seq": rec.seq}});
        if record.is_err() {
            extra["status"] = "recorded_mirror_failed".into();
        }
        err.extra = Some(extra);
    }
    shown.insert(0, "could not decide".into());
    err.errors = shown;
    err
}

/// The answer to a decision whose record failed: 503, withheld (naming the record when it is
/// in the chain, never the mirror's path).
fn withheld(state: &AppState, endpoint: &str, reason: &Withheld) -> ApiError {
    state.metrics().audit_write_failure();
    state.metrics().undecided(endpoint);
    eprintln!("guardrail serve: {endpoint}: {}", reason.source);
    let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason.public());
    if let Some(rec) = reason.in_chain() {
        err.extra = Some(json!({"status": "recorded_mirror_failed", "audit": rec.id()}));
    }
    err
}

/// A recorded decision's answer: the output with its record (the store named by kind only),
/// counted and published.
fn recorded(state: &AppState, endpoint: &str, decided: &Decided, rec: &ChainedRecord, audit: AuditRef) -> Value {
    let action = decided.action();
    state.metrics().decision(endpoint, action.as_str(), &decided.evaluation.decision.policy_id);
    state.publish("audit", json!({"id": rec.id(), "seq": rec.seq, "kind": rec.kind, "action": action}));
    let mut out = decided.output();
    out.audit = Some(AuditRef { store: store_label(&audit.store), ..audit });
    serde_json::to_value(&out).unwrap_or(Value::Null)
}

fn gate_blocking(state: &AppState, caller: &Caller, req: GateRequest) -> Result<Value, ApiError> {
    let ci = req.ci.unwrap_or_default().into_context("http");
    let who = requester(caller);
    let cfg = state.config();
    let recorder = Recorder { store: &cfg.store, jsonl: cfg.audit_jsonl.as_deref(), requested_by: Some(&who) };
    let outcome = decide_and_record(snapshot_now(state), ci, req.fail_on_warn, &recorder);
    if let Some(t) = outcome.evaluated_in() {
        state.metrics().observe_evaluation(t);
    }
    let mut v = match outcome {
        GateOutcome::Recorded { decided, record, audit } => recorded(state, "gate", &decided, &record, audit),
        GateOutcome::Withheld { reason, .. } => return Err(withheld(state, "gate", &reason)),
        GateOutcome::CannotDecide { undecided, record } => {
            return Err(cannot_decide(state, "gate", &undecided, record));
        }
    };
    state.redactor().value(&mut v);
    Ok(v)
}

/// `POST /api/gate`: a pipeline asks for a decision; it is recorded like `guardrail gate`
/// records it (plus the token's identity as `requested_by`). A decision that could not be
/// recorded is withheld (503).
pub async fn gate_endpoint(
    State(s): State<AppState>,
    Deployer(caller): Deployer,
    StrictJson(req): StrictJson<GateRequest>,
) -> Result<Response, ApiError> {
    let st = s.clone();
    blocking(move || gate_blocking(&st, &caller, req)).await?.map(ok)
}

/// Checks simulated signal values against the catalogue (names, kinds, ranges, labels).
pub fn parse_overrides(raw: &BTreeMap<String, Value>) -> Result<Vec<(String, SignalValue)>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, v) in raw {
        let Some(def) = signals::lookup(name) else {
            let known: Vec<&str> = signals::CATALOGUE.iter().map(|d| d.name).collect();
            errors.push(format!("signals.{name}: unknown signal (known: {})", known.join(", ")));
            continue;
        };
        let value = match (def.kind, v) {
            (SignalKind::Number, Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() => match def.range {
                    Some((lo, hi)) if x < lo || x > hi => {
                        errors.push(format!("signals.{name}: {x} is outside {lo}..={hi}"));
                        continue;
                    }
                    _ => SignalValue::Number(x),
                },
                _ => {
                    errors.push(format!("signals.{name}: expected a finite number"));
                    continue;
                }
            },
            (SignalKind::Bool, Value::Bool(b)) => SignalValue::Bool(*b),
            (SignalKind::Label(labels), Value::String(s)) if labels.contains(&s.as_str()) => {
                SignalValue::Text(s.clone())
            }
            (SignalKind::Label(labels), _) => {
                errors.push(format!("signals.{name}: expected one of {}", labels.join(", ")));
                continue;
            }
            (SignalKind::Text, Value::String(s)) => SignalValue::Text(s.clone()),
            (kind, _) => {
                let want = match kind {
                    SignalKind::Number => "a number",
                    SignalKind::Bool => "true or false",
                    _ => "a string",
                };
                errors.push(format!("signals.{name}: expected {want}"));
                continue;
            }
        };
        out.push((name.clone(), value));
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn simulate_blocking(
    state: &AppState,
    caller: &Caller,
    overrides: Vec<(String, SignalValue)>,
) -> Result<Value, ApiError> {
    let ci = read_only_ci_for(caller);
    let who = requester(caller);
    let cfg = state.config();
    let recorder = Recorder { store: &cfg.store, jsonl: cfg.audit_jsonl.as_deref(), requested_by: Some(&who) };
    let decided = snapshot_now(state).and_then(|s| decide::decide(s, ci.clone(), false, Some(&who)));
    let mut decided = match decided {
        Ok(d) => {
            state.metrics().observe_evaluation(d.evaluated_in);
            d
        }
        Err(undecided) => {
            if let Some(t) = undecided.evaluated_in {
                state.metrics().observe_evaluation(t);
            }
            let record = decide::record_undecided(&undecided, &ci, &recorder);
            return Err(cannot_decide(state, "simulate", &undecided, record));
        }
    };
    if !overrides.is_empty() {
        let ev = &mut decided.evaluation;
        let mut sig = ev.signals.clone();
        for (name, v) in &overrides {
            sig.set(name, v.clone());
        }
        let started = Instant::now();
        let decision = gate::decide(&ev.policies, &sig);
        state.metrics().observe_evaluation(started.elapsed());
        ev.decision = decision.map_err(|e| {
            state.metrics().undecided("simulate");
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("could not decide with these signals: {e}"))
        })?;
        ev.signals = sig;
    }
    let explanation = narrative(&decided.evaluation);
    let overrides_v: BTreeMap<&str, &SignalValue> = overrides.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut body = decided.record_body();
    if let Some(o) = body.as_object_mut() {
        o.insert("simulated_signals".into(), serde_json::to_value(&overrides_v).unwrap_or(Value::Null));
    }
    let (rec, audit) = decide::record_decided(&decided, SIMULATION_KIND, body, &recorder)
        .map_err(|reason| withheld(state, "simulate", &reason))?;
    let mut v = recorded(state, "simulate", &decided, &rec, audit);
    if let Some(o) = v.as_object_mut() {
        o.insert("explanation".into(), explanation.into());
        o.insert("simulated".into(), true.into());
        o.insert("simulated_signals".into(), serde_json::to_value(&overrides_v).unwrap_or(Value::Null));
    }
    state.redactor().value(&mut v);
    Ok(v)
}

fn read_only_ci_for(caller: &Caller) -> CiContext {
    CiContext { actor: Some(caller.identity.clone()), ..crate::state::read_only_ci() }
}

/// `POST /api/simulate`: the original's "Run Deployment Gate": evaluates the current inputs,
/// optionally with some signal values replaced (`{"signals": {"error_budget_pct": 5}}`), and
/// returns the decision with its explanation. Recorded as a `deploy_simulation` record, so a
/// what-if is on the chain but never mistaken for a deploy decision.
pub async fn simulate(
    State(s): State<AppState>,
    Deployer(caller): Deployer,
    StrictJson(req): StrictJson<SimulateRequest>,
) -> Result<Response, ApiError> {
    let overrides = parse_overrides(&req.signals).map_err(|e| ApiError::many(StatusCode::BAD_REQUEST, e))?;
    let st = s.clone();
    blocking(move || simulate_blocking(&st, &caller, overrides)).await?.map(ok)
}

// ---------------------------------------------------------------- operations

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Response {
    ok(json!({"status": "alive"}))
}

/// `GET /readyz`: 200 when the inputs can decide and the audit store opens; 503 otherwise.
pub async fn readyz(State(s): State<AppState>) -> Result<Response, ApiError> {
    let snap = s.snapshot();
    let spec = s.config().store.clone();
    let store = blocking(move || audit_cmd::open(&spec).map(|_| ())).await?;
    let mut errors = Vec::new();
    if let Err(e) = &snap.evaluation {
        errors.extend(e.iter().map(|m| format!("inputs: {m}")));
    }
    if let Err(e) = store {
        eprintln!("guardrail serve: readyz: {e}");
        errors.push("audit store: unavailable".into());
    }
    if errors.is_empty() {
        Ok(ok(json!({"inputs": summary(&snap), "store": "reachable"})))
    } else {
        Err(ApiError::many(StatusCode::SERVICE_UNAVAILABLE, errors))
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(s): State<AppState>) -> Response {
    let mut r = (StatusCode::OK, s.metrics().render()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

/// The OpenAPI 3.1 document (hand-written; `tests/it/openapi.rs` keeps it true).
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /api/openapi.json`.
pub async fn openapi() -> Response {
    let mut r = (StatusCode::OK, OPENAPI).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `GET /api/events`: server-sent events. `hello` at once with the current state, then
/// `inputs` when the files change, `decision` when the current decision changes and `audit`
/// when a record is appended.
pub async fn events(State(s): State<AppState>) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let hello = Event::default().event("hello").data(summary(&s.snapshot()).to_string());
    let redactor = s.redactor().clone();
    let rx = tokio_stream::wrappers::BroadcastStream::new(s.subscribe());
    let stream = tokio_stream::once(Ok(hello)).chain(rx.filter_map(move |e| match e {
        Ok(ev) => {
            let mut data = ev.data;
            redactor.value(&mut data);
            Some(Ok(Event::default().event(ev.kind).data(data.to_string())))
        }
        // A slow client missed events: tell it to reload everything.
        Err(_) => Some(Ok(Event::default().event("inputs").data("{}"))),
    }));
    // End with the server: a graceful shutdown waits for open responses.
    let stream = UntilShutdown { inner: Box::pin(stream), stop: Box::pin(s.shutting_down()), done: false };
    Sse::new(stream).keep_alive(KeepAlive::default())
}

type BoxStream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = T> + Send>>;

/// A stream that ends when the server shuts down.
struct UntilShutdown<T> {
    inner: BoxStream<T>,
    stop: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    done: bool,
}

impl<T> tokio_stream::Stream for UntilShutdown<T> {
    type Item = T;
    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
        if self.done || self.stop.as_mut().poll(cx).is_ready() {
            self.done = true;
            return std::task::Poll::Ready(None);
        }
        self.inner.as_mut().poll_next(cx)
    }
}

/// The dashboard page.
pub const DASHBOARD_HTML: &str = include_str!("dashboard/index.html");
/// The dashboard script.
pub const DASHBOARD_JS: &str = include_str!("dashboard/dashboard.js");

/// `GET /`: the dashboard.
pub async fn dashboard() -> Response {
    Html(DASHBOARD_HTML).into_response()
}

/// `GET /assets/dashboard.js`.
pub async fn dashboard_js() -> Response {
    let mut r = (StatusCode::OK, DASHBOARD_JS).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r
}

/// Unknown path.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint (see /api/openapi.json)")
}

/// Known path, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint (see /api/openapi.json)")
}
