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
use guardrail_gate::decide::{self, Decided, GateOutcome, Recorder, RequestedBy, Snapshot, Undecided, Withheld};
use guardrail_gate::gate;
use guardrail_gate::view::{AuditRef, GateView, SimulationView};
use guardrail_store::AppendError;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use tokio_stream::StreamExt as _;

use crate::auth::{Caller, Role};
use crate::state::{AppState, narrative, shown, summary};
use crate::wire::{
    Alive, AllData, Answer, AuditEvent, AuditRecordView, Cached, CostData, DecisionData, Envelope, ErrorBody,
    ErrorStatus, Explanation, Health, Reachable, Ready, RecordRef, SimulationData, SloData, True, Verification,
};

/// Why the deploy-gate endpoints (and the checks every route shares) refuse or fail: one
/// variant per kind of failure, and its one HTTP status ([`Failure::status`]). Handlers name
/// the failure, never a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No, malformed or unknown bearer token, or no tokens file (401).
    Unauthenticated,
    /// The token's role may not (403).
    Forbidden,
    /// The body or query is not of the documented shape (400).
    BadRequest,
    /// The body is over the limit (413).
    TooLarge,
    /// The body is not `application/json` (415).
    NotJson,
    /// No such endpoint (404).
    NoSuchEndpoint,
    /// Wrong method (405).
    MethodNotAllowed,
    /// A `Host` other than the loopback names (421).
    Misdirected,
    /// The policies cannot decide with the simulated signal values (422).
    CannotDecideWith,
    /// The inputs cannot decide, a decision could not be recorded (withheld), the audit store
    /// is unavailable, or the server is not ready (503).
    Unavailable,
    /// The request could not be completed (500; details on stderr).
    Internal,
}

impl Failure {
    /// The HTTP status of this failure.
    pub const fn status(self) -> StatusCode {
        match self {
            Failure::Unauthenticated => StatusCode::UNAUTHORIZED,
            Failure::Forbidden => StatusCode::FORBIDDEN,
            Failure::BadRequest => StatusCode::BAD_REQUEST,
            Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Failure::NoSuchEndpoint => StatusCode::NOT_FOUND,
            Failure::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Failure::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            Failure::CannotDecideWith => StatusCode::UNPROCESSABLE_ENTITY,
            Failure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer: status, messages (already free of paths) and extra headers.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Messages for the caller.
    pub errors: Vec<String>,
    /// Extra fields of the error envelope (the governor's refusals: `code`, …).
    pub extra: Option<Value>,
    /// The record this failure wrote, and whether only its mirror copy failed.
    record: Option<(Option<ErrorStatus>, RecordRef)>,
    bearer_challenge: bool,
}

impl ApiError {
    /// An error with one message.
    pub fn new(status: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError::many(status, vec![msg.into()])
    }
    pub(crate) fn many(status: StatusCode, errors: Vec<String>) -> ApiError {
        ApiError { status, errors, extra: None, record: None, bearer_challenge: false }
    }
    /// A failure with one message.
    pub fn of(failure: Failure, msg: impl Into<String>) -> ApiError {
        ApiError::new(failure.status(), msg)
    }
    /// A failure with several messages.
    pub fn of_many(failure: Failure, errors: Vec<String>) -> ApiError {
        ApiError::many(failure.status(), errors)
    }
    fn unauthorized(msg: &str) -> ApiError {
        ApiError { bearer_challenge: true, ..ApiError::of(Failure::Unauthenticated, msg) }
    }
    /// Names the record this failure wrote (`audit`), with `status: recorded_mirror_failed`
    /// when only its JSONL mirror copy failed.
    fn recorded(mut self, rec: &ChainedRecord, mirror_failed: bool) -> ApiError {
        self.record = Some((mirror_failed.then_some(ErrorStatus::RecordedMirrorFailed), RecordRef::of(rec)));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = ErrorBody::new(&self.errors);
        if let Some((status, audit)) = self.record {
            body.status = status;
            body.audit = Some(audit);
        }
        let mut v = serde_json::to_value(&body).unwrap_or(Value::Null);
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

pub(crate) fn ok(data: Value) -> Response {
    // Through a `Value`: its keys are ordered, as the answers have always been. `data` is
    // moved into the envelope's map, not serialised into a second tree.
    let v = match serde_json::to_value(Envelope { ok: True, data: () }) {
        Ok(Value::Object(mut env)) => {
            env.insert("data".into(), data);
            Value::Object(env)
        }
        _ => Value::Null,
    };
    let mut resp = (StatusCode::OK, json_bytes(&v)).into_response();
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
        return Err(ApiError::of(
            Failure::Forbidden,
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
            return Err(ApiError::of(
                Failure::NotJson,
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::of(
                    Failure::TooLarge,
                    format!("the body is larger than {} bytes", state.config().max_body_bytes),
                ));
            }
            Err(_) => return Err(ApiError::of(Failure::BadRequest, "the body could not be read")),
        };
        // serde would also accept a struct written as an array; only an object is a request.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::of(Failure::BadRequest, "invalid request body: expected a JSON object"));
        }
        match serde_json::from_slice::<T>(&bytes) {
            Ok(v) => Ok(StrictJson(v)),
            Err(e) => Err(ApiError::of(Failure::BadRequest, format!("invalid request body: {e}"))),
        }
    }
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::of(Failure::Internal, "the request could not be completed"))
}

// ---------------------------------------------------------------- compatibility endpoints

/// `GET /api/slo`: the SLO block of the current snapshot.
pub async fn slo(State(s): State<AppState>) -> Cached<SloData> {
    Cached::new(&s.snapshot().replies.slo)
}

/// `GET /api/cost`: the cost block (with `daily_costs`, for the chart).
pub async fn cost(State(s): State<AppState>) -> Cached<CostData> {
    Cached::new(&s.snapshot().replies.cost)
}

/// `GET /api/decision`: what the gate would decide on the current snapshot (records nothing).
pub async fn decision(State(s): State<AppState>) -> Cached<DecisionData> {
    Cached::new(&s.snapshot().replies.decision)
}

/// `GET /api/explain`: `{"text": narrative}`; with a model explainer (EXPLAINER_BACKEND) the
/// model's labelled narrative, one per decision, or the rule text and `explainer_warning`.
pub async fn explain(State(s): State<AppState>) -> Cached<Explanation> {
    let snap = s.snapshot();
    if s.explainer().explainer().backend() == guardrail_model::explainer::Backend::Rule {
        return Cached::new(&snap.replies.explain);
    }
    let st = s.clone();
    let fallback = snap.replies.explain.clone();
    match blocking(move || crate::state::model_explanation(&st, &snap)).await {
        Ok(reply) => Cached::new(&reply),
        Err(_) => Cached::new(&fallback),
    }
}

/// `GET /api/all`: slo, cost, decision and explanation from one snapshot.
pub async fn all(State(s): State<AppState>) -> Cached<AllData> {
    Cached::new(&s.snapshot().replies.all)
}

/// Query of `GET /api/audit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// How many records, newest first (1–500, default 50).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<usize>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only records with a smaller sequence number (paging).
    pub before_seq: Option<i64>,
}

pub(crate) fn store_unavailable(what: &str, e: &str) -> ApiError {
    // The full message (with the store's location) is for the operator, not the caller.
    eprintln!("guardrail serve: {what}: {e}");
    ApiError::of(Failure::Unavailable, format!("{what}: the audit store is unavailable"))
}

/// A record as `/api/audit` shows it: the body's fields (without the inputs' full text, and
/// with file names instead of paths) plus `timestamp`, `id`, `seq`, `kind`, `hash`, `prev_hash`.
pub fn record_view(state: &AppState, r: &ChainedRecord) -> Value {
    let mut v = serde_json::to_value(record_data(r)).unwrap_or(Value::Null);
    state.redactor().value(&mut v);
    v
}

/// A deploy record's body as shown, decoded into its type (`shown()`: without the inputs'
/// text, file names for paths); `None` for another kind or a body that does not decode.
fn deploy_body_shown(r: &ChainedRecord) -> Option<Value> {
    match r.kind.as_str() {
        gate::RECORD_KIND => gate::decode::<gate::DecisionRecordBody>(&r.body).ok().map(|b| gate::encode(&b.shown())),
        gate::SIMULATION_KIND => {
            gate::decode::<gate::SimulationRecordBody>(&r.body).ok().map(|b| gate::encode(&b.shown()))
        }
        gate::ERROR_KIND => gate::decode::<gate::ErrorRecordBody>(&r.body).ok().map(|b| gate::encode(&b.shown())),
        _ => None,
    }
}

/// A record as `/api/audit` shows it, before redaction.
pub fn record_data(r: &ChainedRecord) -> AuditRecordView {
    let mut body = deploy_body_shown(r).unwrap_or_else(|| r.body.clone());
    // Any other kind (and a deploy body that does not decode): the same, by its keys.
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
    let mut body = match body {
        Value::Object(o) => o,
        other => std::iter::once(("body".to_string(), other)).collect(),
    };
    // The chain's fields win over a body field of the same name (as they always have).
    for k in ["timestamp", "id", "seq", "kind", "hash", "prev_hash"] {
        body.remove(k);
    }
    AuditRecordView {
        body,
        timestamp: r.recorded_at.clone(),
        id: r.id(),
        seq: r.seq,
        kind: r.kind.clone(),
        hash: r.hash.clone(),
        prev_hash: r.prev_hash.clone(),
    }
}

/// `GET /api/audit`: the newest records of the audit store.
pub async fn audit(
    State(s): State<AppState>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Answer<Vec<AuditRecordView>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::of(Failure::BadRequest, format!("invalid query: {}", e.body_text())))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::of(Failure::BadRequest, "limit must be between 1 and 500"));
    }
    let spec = s.config().store.clone();
    let query = guardrail_store::ListQuery { limit, before_seq: q.before_seq, kind: q.kind };
    let records = blocking(move || -> Result<Vec<ChainedRecord>, String> {
        let mut store = audit_cmd::open(&spec).map_err(|e| e.to_string())?;
        store.list(&query).map_err(|e| e.to_string())
    })
    .await?
    .map_err(|e| store_unavailable("audit", &e))?;
    let views: Vec<AuditRecordView> = records.iter().map(record_data).collect();
    Ok(Answer::new(s.redactor(), &views))
}

/// `GET /api/audit/verify`: recomputes every hash of the chain.
pub async fn audit_verify(State(s): State<AppState>) -> Result<Answer<Verification>, ApiError> {
    let spec = s.config().store.clone();
    let rep = blocking(move || -> Result<guardrail_core::audit::VerifyReport, String> {
        let mut store = audit_cmd::open(&spec).map_err(|e| e.to_string())?;
        store.verify().map_err(|e| e.to_string())
    })
    .await?
    .map_err(|e| store_unavailable("audit verify", &e))?;
    Ok(Answer::new(s.redactor(), &Verification { intact: rep.ok(), report: rep }))
}

// ---------------------------------------------------------------- deciding and recording

/// Body of `POST /api/gate`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateRequest {
    /// The pipeline's context, recorded with the decision: [`CiContext`]'s own fields, read
    /// strictly by [`CiRequest`] (blank values dropped, provider `http` when not given). Who
    /// triggered the pipeline (`actor`) is as the pipeline says; the token's identity is
    /// recorded separately as `requested_by`.
    #[serde(default)]
    #[schemars(with = "Option<crate::wire::CiRequestSchema>")]
    pub ci: Option<CiRequest>,
    /// Report exit code 1 for WARN (as `guardrail gate --fail-on-warn`).
    #[serde(default)]
    pub fail_on_warn: bool,
}

/// Body of `POST /api/simulate`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// Signal values to use instead of the measured ones (names from the signal catalogue).
    #[serde(default)]
    #[schemars(with = "crate::wire::SignalOverridesSchema")]
    pub signals: BTreeMap<String, Value>,
}

/// Audit record kind of a simulation (never a deploy decision; `replay` ignores it).
pub use guardrail_gate::gate::SIMULATION_KIND;

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

/// The current inputs with the clock now (the snapshot `state` holds, re-read if changed; live
/// metrics fetched for this decision: [`AppState::sources_now`]). Also makes sure the store is
/// shared, so the decision's record goes through the group commit.
fn snapshot_now(state: &AppState) -> Result<Snapshot, Undecided> {
    state.share_store();
    // The snapshot keeps each read's typed problem: the record and answer have them as the CLI's.
    let sources = state.sources_now().map_err(|e| Undecided::before_reading(e, &state.0.paths, None))?;
    let settings = state.settings_now().map_err(|e| Undecided::after_reading(e, &sources, None))?;
    Ok(Snapshot { sources, settings })
}

/// The inputs of a decision made now, evaluated at `now` ([`decide::decide_prepared`]): the
/// snapshot's prepared inputs while the files have not changed and the settings are those they
/// were prepared with ([`AppState::prepared_now`]), so nothing is parsed again per request;
/// otherwise (live metrics, unreadable inputs, bad settings) [`snapshot_now`] prepared here, with
/// the problems it has always had.
fn decide_now(state: &AppState, ci: CiContext, fail_on_warn: bool, who: &RequestedBy) -> Result<Decided, Undecided> {
    if let Some(p) = state.prepared_now() {
        state.share_store();
        if let Ok(settings) = state.settings_now()
            && p.settings_at(settings.now) == settings
        {
            return decide::decide_prepared(&p, settings.now, ci, fail_on_warn, Some(who));
        }
    }
    snapshot_now(state).and_then(|s| decide::decide(s, ci, fail_on_warn, Some(who)))
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
    let mut shown: Vec<String> = undecided.messages().iter().map(|e| state.redactor().text(e)).collect();
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
    shown.insert(0, "could not decide".into());
    let err = ApiError::of_many(Failure::Unavailable, shown);
    match in_chain {
        Some(rec) => {
            state.publish("audit", AuditEvent::of(rec, None));
            err.recorded(rec, record.is_err())
        }
        None => err,
    }
}

/// The answer to a decision whose record failed: 503, withheld (naming the record when it is
/// in the chain, never the mirror's path).
fn withheld(state: &AppState, endpoint: &str, reason: &Withheld) -> ApiError {
    state.metrics().audit_write_failure();
    state.metrics().undecided(endpoint);
    eprintln!("guardrail serve: {endpoint}: {}", reason.source);
    let err = ApiError::of(Failure::Unavailable, reason.public());
    match reason.in_chain() {
        Some(rec) => err.recorded(rec, true),
        None => err,
    }
}

/// A recorded decision's answer: the output with its record (the store named by kind only),
/// counted and published.
fn recorded<'d>(
    state: &AppState,
    endpoint: &str,
    decided: &'d Decided,
    rec: &ChainedRecord,
    audit: AuditRef,
) -> GateView<'d> {
    let action = decided.action();
    state.metrics().decision(endpoint, action.as_str(), &decided.evaluation.decision.policy_id);
    state.publish("audit", AuditEvent::of(rec, Some(action)));
    let mut view = decided.view();
    view.audit = Some(AuditRef { store: store_label(&audit.store), ..audit });
    view
}

fn gate_blocking(state: &AppState, caller: &Caller, req: GateRequest) -> Result<Answer<DecisionData>, ApiError> {
    let ci = req.ci.unwrap_or_default().into_context("http");
    let who = requester(caller);
    let cfg = state.config();
    let recorder = Recorder { store: &cfg.store, jsonl: cfg.audit_jsonl.as_deref(), requested_by: Some(&who) };
    let decided = decide_now(state, ci.clone(), req.fail_on_warn, &who);
    let outcome = decide::record_outcome(decided, &ci, &recorder);
    if let Some(t) = outcome.evaluated_in() {
        state.metrics().observe_evaluation(t);
    }
    match outcome {
        GateOutcome::Recorded { decided, record, audit } => {
            Ok(Answer::new(state.redactor(), &recorded(state, "gate", &decided, &record, audit)))
        }
        GateOutcome::Withheld { reason, .. } => Err(withheld(state, "gate", &reason)),
        GateOutcome::CannotDecide { undecided, record } => Err(cannot_decide(state, "gate", &undecided, record)),
    }
}

/// `POST /api/gate`: a pipeline asks for a decision; it is recorded like `guardrail gate`
/// records it (plus the token's identity as `requested_by`). A decision that could not be
/// recorded is withheld (503).
pub async fn gate_endpoint(
    State(s): State<AppState>,
    Deployer(caller): Deployer,
    StrictJson(req): StrictJson<GateRequest>,
) -> Result<Answer<DecisionData>, ApiError> {
    let st = s.clone();
    blocking(move || gate_blocking(&st, &caller, req)).await?
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
) -> Result<Answer<SimulationData>, ApiError> {
    let ci = read_only_ci_for(caller);
    let who = requester(caller);
    let cfg = state.config();
    let recorder = Recorder { store: &cfg.store, jsonl: cfg.audit_jsonl.as_deref(), requested_by: Some(&who) };
    let mut decided = match decide_now(state, ci.clone(), false, &who) {
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
            ApiError::of(Failure::CannotDecideWith, format!("could not decide with these signals: {e}"))
        })?;
        ev.signals = sig;
    }
    let overrides_v: BTreeMap<&str, &SignalValue> = overrides.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let body = gate::SimulationRecordBody {
        decision: decided.record(),
        simulated_signals: overrides.iter().map(|(k, v)| (k.clone(), gate::encode(v))).collect(),
    };
    let (rec, audit) = decide::record_decided(&decided, gate::SIMULATION_KIND, gate::encode(&body), &recorder)
        .map_err(|reason| withheld(state, "simulate", &reason))?;
    let view = recorded(state, "simulate", &decided, &rec, audit);
    // EXPLAINER_BACKEND: a model writes the what-if's narrative from its view (redacted), or the
    // rule text on any failure; the decision and the status are the gate's either way.
    let mut shown = serde_json::to_value(&view).unwrap_or(Value::Null);
    state.redactor().value(&mut shown);
    let d = &decided.evaluation.decision;
    let n = state
        .explainer()
        .explainer()
        .explain(&shown, &format!("{} by policy {}", d.action, d.policy_id), || narrative(&decided.evaluation));
    if let Some(w) = &n.warning {
        eprintln!("guardrail serve: warning: /api/simulate: {w}");
    }
    let simulation = SimulationView { view, explanation: n.text, simulated: true, simulated_signals: overrides_v };
    Ok(Answer::new(state.redactor(), &simulation))
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
) -> Result<Answer<SimulationData>, ApiError> {
    let overrides = parse_overrides(&req.signals).map_err(|e| ApiError::of_many(Failure::BadRequest, e))?;
    let st = s.clone();
    blocking(move || simulate_blocking(&st, &caller, overrides)).await?
}

// ---------------------------------------------------------------- operations

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Answer<Health> {
    Answer::unredacted(&Health { status: Alive })
}

/// `GET /readyz`: 200 when the inputs can decide and the audit store opens; 503 otherwise.
pub async fn readyz(State(s): State<AppState>) -> Result<Answer<Ready>, ApiError> {
    let snap = s.snapshot();
    let spec = s.config().store.clone();
    // A query, not just an open: a handle on the server's shared store opens without touching
    // the database (its connections are pooled), so readiness asks the store something.
    let store = blocking(move || {
        let mut store = audit_cmd::open(&spec).map_err(|e| e.to_string())?;
        store.records_after(i64::MAX).map(|_| ()).map_err(|e| e.to_string())
    })
    .await?;
    let mut errors = Vec::new();
    if let Err(e) = &snap.evaluation {
        errors.extend(shown(s.redactor(), e).iter().map(|m| format!("inputs: {m}")));
    }
    if let Err(e) = store {
        eprintln!("guardrail serve: readyz: {e}");
        errors.push("audit store: unavailable".into());
    }
    if errors.is_empty() {
        Ok(Answer::new(s.redactor(), &Ready { inputs: summary(s.redactor(), &snap), store: Reachable }))
    } else {
        Err(ApiError::of_many(Failure::Unavailable, errors))
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(s): State<AppState>) -> Response {
    let mut r = (StatusCode::OK, s.metrics().render()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

/// `GET /api/openapi.json`: generated from the route table and the types ([`crate::openapi`]),
/// once per process.
pub async fn openapi() -> Response {
    static DOC: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| json_bytes(&crate::openapi::document()));
    let mut r = (StatusCode::OK, doc.clone()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `GET /api/events`: server-sent events. `hello` at once with the current state, then
/// `inputs` when the files change, `decision` when the current decision changes and `audit`
/// when a record is appended.
pub async fn events(State(s): State<AppState>) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let hello = serde_json::to_string(&summary(s.redactor(), &s.snapshot())).unwrap_or_default();
    let hello = Event::default().event("hello").data(hello);
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
pub async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD_HTML)
}

/// `GET /assets/dashboard.js`.
pub async fn dashboard_js() -> Response {
    let mut r = (StatusCode::OK, DASHBOARD_JS).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r
}

/// Unknown path.
pub async fn not_found() -> ApiError {
    ApiError::of(Failure::NoSuchEndpoint, "no such endpoint (see /api/openapi.json)")
}

/// Known path, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::of(Failure::MethodNotAllowed, "method not allowed on this endpoint (see /api/openapi.json)")
}
