//! The deploy-gate side's answers as types: the envelopes (`{"ok": true, "data": …}`,
//! `{"ok": false, "error": …, "errors": […]}`) and every `data` the handlers in [`crate::api`]
//! and [`crate::state`] send. Each derives `Serialize` (what is sent) and `JsonSchema` (what
//! [`crate::openapi`] documents), so the document describes exactly what is serialized.
//!
//! Bytes: an answer is serialized through a `serde_json::Value` (redacted there), whose maps are
//! ordered by key, so the bytes are those the handlers sent when they assembled `json!` values
//! (the seed-compatible shapes are pinned by `tests/it/http.rs`).

use std::borrow::Cow;
use std::marker::PhantomData;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::openapi::{Content, DocReturn, OperationDoc, schema_of};
use crate::redact::Redactor;
use crate::state::Reply;

macro_rules! constant {
    ($(#[$doc:meta])* $name:ident, $value:expr, $schema:tt) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $value.serialize(s)
            }
        }

        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

constant!(
    /// `true` (the success envelope's `ok`).
    True, true, {"const": true}
);
constant!(
    /// `false` (the error envelope's `ok`).
    False, false, {"const": false}
);
constant!(
    /// `"alive"` (`/healthz`).
    Alive, "alive", {"const": "alive"}
);
constant!(
    /// `"reachable"` (`/readyz`: the audit store opened).
    Reachable, "reachable", {"const": "reachable"}
);

/// `{"ok": true, "data": T}`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Ok_{T}")]
pub struct Envelope<T> {
    /// Always `true`.
    pub ok: True,
    /// The answer.
    pub data: T,
}

/// Why an error answer carries a record although it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorStatus {
    /// The record is in the audit chain but its JSONL mirror copy failed.
    RecordedMirrorFailed,
    /// `POST /api/incidents/{id}/resolve`: the resolution is recorded but the runbook could
    /// not be learned.
    RecordedNotLearned,
}

/// A record named in an answer (the governor's views name theirs the same way).
pub use guardrail_governor::views::RecordRef;

/// `{"ok": false, "error": "…", "errors": […]}`: what every failure starts with.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub ok: False,
    /// All messages, one per line.
    pub error: String,
    /// The messages (never a filesystem path).
    pub errors: Vec<String>,
}

/// A failure that is an outcome with a view of its own (the governor's refusals: an approval
/// refused, nothing to execute, a run that could not decide): the error envelope with the
/// view's fields.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Error_{V}")]
pub struct Refusal<V> {
    /// `ok`, `error`, `errors`.
    #[serde(flatten)]
    pub envelope: ErrorEnvelope,
    /// The outcome.
    #[serde(flatten)]
    pub view: V,
}

/// `{"ok": false, "error": "…", "errors": […]}`: every failure. The governor's refusals add
/// fields of their own (documented per status); the deploy gate's add `audit` (the
/// could-not-decide record, or the record of a decision withheld because its mirror copy
/// failed) and `status`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub ok: False,
    /// All messages, one per line.
    pub error: String,
    /// The messages (never a filesystem path).
    pub errors: Vec<String>,
    /// Set when the failure was recorded all the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ErrorStatus>,
    /// The record this failure wrote, when one was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<RecordRef>,
}

impl ErrorBody {
    /// The envelope of these messages.
    pub fn new(errors: &[String]) -> ErrorBody {
        ErrorBody { ok: False, error: errors.join("\n"), errors: errors.to_vec(), status: None, audit: None }
    }
}

/// The schema of `guardrail_gate::ci::CiRequest` (the `ci` object of `POST /api/gate`), built
/// from [`CiContext::field_names`](guardrail_gate::ci::CiContext::field_names) — the names its
/// deserializer accepts — each a string or `null`, nothing else. (The recorded `CiContext` is
/// another schema: as a response its `provider` is always present.)
pub struct CiRequestSchema;

impl JsonSchema for CiRequestSchema {
    fn schema_name() -> Cow<'static, str> {
        "CiRequest".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let props: Map<String, Value> = guardrail_gate::ci::CiContext::field_names()
            .into_iter()
            .map(|f| (f, serde_json::json!({"type": ["string", "null"]})))
            .collect();
        json_schema!({
            "type": "object",
            "description": "The pipeline's context, recorded with the decision (blank values dropped; provider `http` when not given).",
            "properties": props,
            "additionalProperties": false,
        })
    }
}

/// `/api/slo`'s data.
pub type SloData = guardrail_core::slo::SloReport;
/// `/api/cost`'s data.
pub type CostData = guardrail_core::cost::CostReport;
/// A decision as `/api/decision`, `POST /api/gate` and `POST /api/simulate` show it: the deploy
/// gate's one view (`guardrail gate --format json`).
pub type DecisionData = guardrail_gate::view::GateView<'static>;

/// The schema of `POST /api/simulate`'s `signals`: one optional property per signal of the
/// catalogue (`guardrail_core::signals::CATALOGUE`, the one [`crate::api::parse_overrides`]
/// checks against), typed by its kind (a number within its range, a boolean, one of its labels,
/// a string); no other name.
pub struct SignalOverridesSchema;

impl JsonSchema for SignalOverridesSchema {
    fn schema_name() -> Cow<'static, str> {
        "SignalOverrides".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        use guardrail_core::signals::{CATALOGUE, SignalKind};
        let mut props = Map::new();
        for def in CATALOGUE {
            let mut p = match def.kind {
                SignalKind::Number => serde_json::json!({"type": "number"}),
                SignalKind::Bool => serde_json::json!({"type": "boolean"}),
                SignalKind::Label(labels) => serde_json::json!({"type": "string", "enum": labels}),
                SignalKind::Text => serde_json::json!({"type": "string"}),
            };
            if let (SignalKind::Number, Some((lo, hi))) = (def.kind, def.range) {
                if lo.is_finite() {
                    p["minimum"] = lo.into();
                }
                if hi.is_finite() {
                    p["maximum"] = hi.into();
                }
            }
            p["description"] = def.description.into();
            props.insert(def.name.to_string(), p);
        }
        json_schema!({
            "type": "object",
            "description": "Signal values to use instead of the measured ones, by name (the signal catalogue).",
            "properties": props,
            "additionalProperties": false,
        })
    }
}

/// `/api/explain`'s data.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Explanation {
    /// The narrative (markdown). With a model explainer (EXPLAINER_BACKEND=openai|anthropic) the
    /// model's text under a first line saying so; the rule-based text otherwise.
    pub text: String,
    /// `provider/model` when a model wrote `text` (absent for the rule-based text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_by: Option<String>,
    /// Why the rule-based text is shown although a model explainer is configured (absent
    /// otherwise). The decision is the gate's either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explainer_warning: Option<String>,
}

impl Explanation {
    /// The rule-based narrative (the seed's `{"text": …}`).
    pub fn rule(text: String) -> Explanation {
        Explanation { text, written_by: None, explainer_warning: None }
    }
}

/// `/api/all`'s data: everything the dashboard shows, from one snapshot.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct All<S, C, D> {
    /// As `/api/slo`.
    pub slo: S,
    /// As `/api/cost`.
    pub cost: C,
    /// As `/api/decision`.
    pub decision: D,
    /// As `/api/explain`'s `text`.
    pub explanation: String,
}

/// `/api/all` as served.
pub type AllData = All<SloData, CostData, DecisionData>;

/// `/healthz`'s data.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Health {
    /// Always `alive`.
    pub status: Alive,
}

/// The inputs in force (`/readyz`, the `hello`/`inputs`/`decision` events).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum InputsSummary {
    /// The inputs decide.
    Valid {
        /// Bumped each time the input files change.
        version: u64,
        /// Always `true`.
        valid: True,
        /// The current decision's action.
        action: guardrail_core::policy::Action,
        /// The current decision's rule.
        policy_id: String,
    },
    /// The inputs cannot decide.
    Invalid {
        /// Bumped each time the input files change.
        version: u64,
        /// Always `false`.
        valid: False,
        /// Why (no paths).
        errors: Vec<String>,
    },
}

/// `/readyz`'s data.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Ready {
    /// The inputs in force.
    pub inputs: InputsSummary,
    /// Always `reachable`.
    pub store: Reachable,
}

/// `/api/audit/verify`'s data: the verification and whether it found the chain intact.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Verification {
    /// True when no break was found.
    pub intact: bool,
    /// Records checked, the head, every break.
    #[serde(flatten)]
    pub report: guardrail_core::audit::VerifyReport,
}

/// The `audit` event of `/api/events`: a record was appended (with the decision's action for a
/// deploy decision or simulation).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditEvent {
    /// `SEQ-HASHPREFIX`.
    pub id: String,
    /// Position in the chain.
    pub seq: i64,
    /// Record kind.
    pub kind: String,
    /// The decision's action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<guardrail_core::policy::Action>,
}

impl AuditEvent {
    /// The event of an appended record.
    pub fn of(rec: &guardrail_core::audit::ChainedRecord, action: Option<guardrail_core::policy::Action>) -> Value {
        let ev = AuditEvent { id: rec.id(), seq: rec.seq, kind: rec.kind.clone(), action };
        serde_json::to_value(ev).unwrap_or(Value::Null)
    }
}

/// A record as `/api/audit` (and an incident's `records`) shows it: the body's fields, without
/// the inputs' full text and with file names instead of paths, plus the chain's fields. The
/// body is each kind's own (the deploy gate's decision, an incident's run, a grant, …): its
/// fields are described by the record kinds, not here.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditRecordView {
    /// The body's fields (a body that is not an object shows as `body`).
    #[serde(flatten)]
    pub body: Map<String, Value>,
    /// When it was recorded (RFC 3339, UTC).
    pub timestamp: String,
    /// `SEQ-HASHPREFIX`.
    pub id: String,
    /// Position in the chain.
    pub seq: i64,
    /// Record kind (`deploy_decision`, `incident_run`, …).
    pub kind: String,
    /// sha256 of the record's canonical bytes.
    pub hash: String,
    /// The previous record's hash.
    pub prev_hash: String,
}

/// `POST /api/simulate`'s data: the deploy gate's view of the what-if.
pub type SimulationData = guardrail_gate::view::SimulationView<'static>;

/// A `200 {"ok": true, "data": T}` answer, already serialized and redacted; documents itself
/// as `Envelope<T>`.
pub struct Answer<T> {
    data: Value,
    _t: PhantomData<fn() -> T>,
}

impl<T> Answer<T> {
    /// The answer of `data`, serialized as `T` and redacted.
    pub fn new<U: Serialize + ?Sized>(redactor: &Redactor, data: &U) -> Answer<T> {
        let mut data = serde_json::to_value(data).unwrap_or(Value::Null);
        redactor.value(&mut data);
        Answer { data, _t: PhantomData }
    }

    /// The answer of `data`, which never holds a path (`/healthz`).
    pub fn unredacted<U: Serialize + ?Sized>(data: &U) -> Answer<T> {
        Answer { data: serde_json::to_value(data).unwrap_or(Value::Null), _t: PhantomData }
    }
}

impl<T> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        crate::api::ok(self.data)
    }
}

impl<T: JsonSchema> DocReturn for Answer<T> {
    fn document(op: &mut OperationDoc) {
        op.respond(200, "The answer.", Content::Json(schema_of::<Envelope<T>>()));
    }
}

/// A precomputed read answer ([`crate::state::Replies`]): 200 with `T`, or 503 when the
/// inputs cannot decide.
pub struct Cached<T> {
    reply: Reply,
    _t: PhantomData<fn() -> T>,
}

impl<T> Cached<T> {
    /// The answer of a precomputed reply.
    pub fn new(reply: &Reply) -> Cached<T> {
        Cached { reply: reply.clone(), _t: PhantomData }
    }
}

impl<T> IntoResponse for Cached<T> {
    fn into_response(self) -> Response {
        let mut resp = (self.reply.status, self.reply.body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

impl<T: JsonSchema> DocReturn for Cached<T> {
    fn document(op: &mut OperationDoc) {
        op.respond(
            200,
            "The answer, from the current snapshot of the inputs.",
            Content::Json(schema_of::<Envelope<T>>()),
        );
        op.fail(
            StatusCode::SERVICE_UNAVAILABLE.as_u16(),
            "The inputs cannot decide (the reasons name the file, field and line, never a path): never ALLOW.",
        );
    }
}
