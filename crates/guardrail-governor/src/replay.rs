//! Replay of a `remediation_decision`: the gate ([`guardrail_core::remediation::gate`], pure)
//! re-run on what the record holds, and the result compared with what was recorded.
//!
//! The gate's inputs are the plan and stress contract objects (`outcome.plan.output`,
//! `outcome.stress.assessment.output`), the incident's severity (`incident.severity`), the
//! deploy signals and the rules. The last two are recorded under `gate_inputs`
//! ([`gate_inputs_body`]): the signals losslessly (an unavailable signal keeps its reason, a
//! non-finite number its value), the rules as they serialise.
//!
//! Rules are never built from a record (only configuration builds rules): replay re-runs the
//! gate with the rules in force and compares their serialisation with the recorded one. Equal
//! serialisations are the same rules, so the gate is then a pure function of recorded data;
//! different ones are reported as a difference in `gate_inputs.rules`.

use guardrail_core::audit::ChainedRecord;
use guardrail_core::remediation::{
    GateDecision, Incident, PlanOutput, RemediationRules, Severity, StressOutput, gate_planned,
};
use guardrail_core::signals::{SignalValue, Signals};
use serde::Serialize;
use serde_json::Value;

use crate::queue::kinds;
use crate::record::{DecisionBody, decode, encode};

/// The `gate_inputs` of a `remediation_decision` body: what the gate read besides the plan,
/// the stress output and the severity (which the body holds already).
pub fn gate_inputs_body(deploy_signals: Option<&Signals>, rules: &RemediationRules) -> Value {
    encode(&GateInputs {
        deploy_signals: deploy_signals.map(encode_signals),
        rules: serde_json::to_value(rules).unwrap_or(Value::Null),
    })
}

/// The `gate_inputs` of a `remediation_decision` body (written by [`gate_inputs_body`]).
/// [`replay_decision`] reads it from the body as JSON, since it must tell a missing field
/// (an older record: cannot replay) from a `null` one (no deploy signals).
#[derive(Debug, Clone, Serialize)]
pub struct GateInputs {
    /// [`encode_signals`] of the deploy signals, `null` when there were none.
    pub deploy_signals: Option<Value>,
    /// The rules as serialised.
    pub rules: Value,
}

/// One signal in [`encode_signals`]' lossless form.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
enum EncodedSignal<'a> {
    Number(EncodedNumber),
    Bool(bool),
    Text(&'a str),
    Unavailable(&'a str),
}

/// A finite number as a JSON number, else its name (`NaN`, `inf`, `-inf`).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum EncodedNumber {
    Finite(f64),
    Named(String),
}

/// Signals as `{name: {"number": n} | {"bool": b} | {"text": t} | {"unavailable": why}}`.
/// Lossless, unlike [`Signals`]' own serialisation (which writes an unavailable signal, and a
/// non-finite number, as `null`). A non-finite number is written as the string `NaN`, `inf` or
/// `-inf`.
pub fn encode_signals(s: &Signals) -> Value {
    let mut out = serde_json::Map::new();
    for (name, v) in &s.0 {
        let e = match v {
            SignalValue::Number(n) if n.is_finite() => EncodedSignal::Number(EncodedNumber::Finite(*n)),
            SignalValue::Number(n) => EncodedSignal::Number(EncodedNumber::Named(n.to_string())),
            SignalValue::Bool(b) => EncodedSignal::Bool(*b),
            SignalValue::Text(t) => EncodedSignal::Text(t),
            SignalValue::Unavailable(why) => EncodedSignal::Unavailable(why),
        };
        out.insert(name.clone(), encode(&e));
    }
    Value::Object(out)
}

/// A recorded signal (or the recorded set) that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {why}")]
pub struct SignalsError {
    /// `gate_inputs.deploy_signals` or `gate_inputs.deploy_signals.NAME`.
    pub path: String,
    /// What is wrong.
    pub why: String,
}

/// Why a decision cannot be replayed; each names the record and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Not a `remediation_decision`.
    #[error("record {record} is a {kind} record, not a {expected}")]
    WrongKind {
        /// The record.
        record: String,
        /// Its kind.
        kind: String,
        /// `remediation_decision`.
        expected: &'static str,
    },
    /// The body does not read.
    #[error("record {record} is unreadable: {message}")]
    Unreadable {
        /// The record.
        record: String,
        /// Why.
        message: String,
    },
    /// A field the replay needs is missing.
    #[error("record {record}: no {field} in the record")]
    Missing {
        /// The record.
        record: String,
        /// The field (dotted path).
        field: String,
    },
    /// A field the replay needs does not read.
    #[error("record {record}: {field} is unreadable: {message}")]
    UnreadableField {
        /// The record.
        record: String,
        /// The field (dotted path).
        field: String,
        /// Why.
        message: String,
    },
    /// Recorded by a Guardrail that did not record the gate's inputs.
    #[error(
        "record {record}: no gate_inputs (the deploy signals and rules the gate read); it was recorded by a Guardrail \
         that did not record them, so it cannot be replayed exactly"
    )]
    NoGateInputs {
        /// The record.
        record: String,
    },
    /// A recorded signal does not decode.
    #[error("record {record}: {source}")]
    Signals {
        /// The record.
        record: String,
        /// What is wrong.
        source: SignalsError,
    },
    /// The replayed gate decision does not serialise.
    #[error("serialising the replayed gate: {0}")]
    Serialise(String),
}

/// The inverse of [`encode_signals`]; an error names the signal and what is wrong with it.
pub fn decode_signals(v: &Value) -> Result<Signals, SignalsError> {
    let Some(map) = v.as_object() else {
        return Err(SignalsError { path: "gate_inputs.deploy_signals".into(), why: "not an object".into() });
    };
    let mut s = Signals::default();
    for (name, e) in map {
        let bad = |why: &str| SignalsError { path: format!("gate_inputs.deploy_signals.{name}"), why: why.to_string() };
        let Some((kind, val)) = e.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
            return Err(bad("not one of {number|bool|text|unavailable: value}"));
        };
        let value = match (kind.as_str(), val) {
            ("number", Value::Number(n)) => SignalValue::Number(n.as_f64().ok_or_else(|| bad("not an f64"))?),
            ("number", Value::String(t)) => match t.as_str() {
                "NaN" => SignalValue::Number(f64::NAN),
                "inf" => SignalValue::Number(f64::INFINITY),
                "-inf" => SignalValue::Number(f64::NEG_INFINITY),
                _ => return Err(bad(&format!("number {t:?} is not NaN, inf or -inf"))),
            },
            ("bool", Value::Bool(b)) => SignalValue::Bool(*b),
            ("text", Value::String(t)) => SignalValue::Text(t.clone()),
            ("unavailable", Value::String(t)) => SignalValue::Unavailable(t.clone()),
            _ => return Err(bad(&format!("{kind}: {val} is not a valid value"))),
        };
        s.set(name, value);
    }
    Ok(s)
}

/// What a replay came to; serialised (without `replayed`) in [`crate::views::ReplayView`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DecisionReplay {
    /// The record replayed.
    pub record: String,
    /// The incident.
    pub incident_id: String,
    /// Whether the re-run gate and its recorded copies agree in every field.
    pub identical: bool,
    /// The recorded decision (`execute` / `block_and_escalate`; as recorded, `null` when the
    /// record lacks it).
    pub recorded_decision: Value,
    /// The replayed decision.
    pub replayed_decision: String,
    /// The recorded deciding rule.
    pub recorded_rule: Value,
    /// The replayed deciding rule.
    pub replayed_rule: String,
    /// The fields that differ (paths in the record body, e.g. `outcome.gate.output.reasons`).
    pub differing_fields: Vec<String>,
    /// The replayed gate decision (for callers; not part of the printed view).
    #[serde(skip)]
    pub replayed: GateDecision,
}

/// Re-runs the gate on the inputs `rec` (a `remediation_decision`) recorded, with `rules` the
/// rules in force, and compares. `Err` (could not replay) names the unreadable field.
pub fn replay_decision(rec: &ChainedRecord, rules: &RemediationRules) -> Result<DecisionReplay, ReplayError> {
    if rec.kind != kinds::DECISION {
        return Err(ReplayError::WrongKind { record: rec.id(), kind: rec.kind.clone(), expected: kinds::DECISION });
    }
    let b = &rec.body;
    let body: DecisionBody =
        decode(b).map_err(|e| ReplayError::Unreadable { record: rec.id(), message: e.to_string() })?;
    let missing = |field: &str| ReplayError::Missing { record: rec.id(), field: field.to_string() };
    let field =
        |path: &str| -> Result<&Value, ReplayError> { b.pointer(path).ok_or_else(|| missing(&path_name(path))) };
    let unreadable = |path: &str, e: serde_json::Error| ReplayError::UnreadableField {
        record: rec.id(),
        field: path_name(path),
        message: e.to_string(),
    };
    let plan: PlanOutput = serde_json::from_value(field("/outcome/plan/output")?.clone())
        .map_err(|e| unreadable("/outcome/plan/output", e))?;
    let stress: StressOutput = serde_json::from_value(field("/outcome/stress/assessment/output")?.clone())
        .map_err(|e| unreadable("/outcome/stress/assessment/output", e))?;
    let severity: Severity = serde_json::from_value(field("/incident/severity")?.clone())
        .map_err(|e| unreadable("/incident/severity", e))?;
    let inputs =
        b.get("gate_inputs").filter(|v| v.is_object()).ok_or_else(|| ReplayError::NoGateInputs { record: rec.id() })?;
    let signals = match inputs.get("deploy_signals") {
        None => return Err(missing("gate_inputs.deploy_signals")),
        Some(Value::Null) => None,
        Some(v) => Some(decode_signals(v).map_err(|source| ReplayError::Signals { record: rec.id(), source })?),
    };
    let recorded_rules = inputs.get("rules").filter(|v| !v.is_null()).ok_or_else(|| missing("gate_inputs.rules"))?;
    // A model-backed planner's failure is part of the plan the gate read (it blocks); the
    // model is never called again.
    let planner_failure = match b.pointer("/outcome/plan/failure") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<crate::transcript::PlannerFailure>(v.clone())
                .map_err(|e| unreadable("/outcome/plan/failure", e))?
                .to_string(),
        ),
    };
    let replayed = gate_planned(&plan, &stress, severity, signals.as_ref(), rules, planner_failure.as_deref());

    let mut differing = Vec::new();
    if serde_json::to_value(rules).ok().as_ref() != Some(recorded_rules) {
        differing.push("gate_inputs.rules".to_string());
    }
    let now = serde_json::to_value(&replayed).map_err(|e| ReplayError::Serialise(e.to_string()))?;
    let then = b.pointer("/outcome/gate").cloned().unwrap_or(Value::Null);
    match (now.as_object(), then.as_object()) {
        (Some(n), Some(t)) => {
            let mut keys: Vec<&String> = n.keys().chain(t.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                if n.get(k) != t.get(k) {
                    differing.push(format!("outcome.gate.{k}"));
                }
            }
        }
        _ => differing.push("outcome.gate".into()),
    }
    // The body's own copies of the verdict (what `incident list|show` and the queue read); a
    // copy missing from the record differs, whatever the replay says.
    for (k, same) in [
        ("decision", body.decision == replayed.output.decision.as_str()),
        ("rule", body.rule == replayed.rule),
        ("reasons", body.reasons == replayed.output.reasons),
        ("requires_force_override", body.requires_force_override == replayed.requires_force_override),
    ] {
        if !same || b.get(k).is_none() {
            differing.push(k.to_string());
        }
    }
    Ok(DecisionReplay {
        record: rec.id(),
        incident_id: body.incident_id,
        identical: differing.is_empty(),
        recorded_decision: b.get("decision").cloned().unwrap_or(Value::Null),
        replayed_decision: replayed.output.decision.as_str().to_string(),
        recorded_rule: b.get("rule").cloned().unwrap_or(Value::Null),
        replayed_rule: replayed.rule.clone(),
        differing_fields: differing,
        replayed,
    })
}

/// What checking a decision's planner transcript came to ([`replay_transcript`]).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TranscriptReplay {
    /// The `planner_transcript` record.
    pub record: String,
    /// Whether the record found is the one the decision names (id and full hash).
    pub hash_matches: bool,
    /// How the loop ended, as recorded (`accepted`, `failed`, `fallback`).
    pub outcome: String,
    /// Whether re-checking the recorded final answer against the recorded offered actions
    /// ([`crate::model_planner::accept_plan`], no model call) gives the recorded plan (or the
    /// recorded failure). `None` for a fallback, whose plan came from the knowledge base.
    pub plan_reproduced: Option<bool>,
    /// What differs.
    pub differing_fields: Vec<String>,
}

/// Checks the `planner_transcript` a decision names, found in `records`: its id and hash, and —
/// without calling the model — that the recorded final answer, checked again against the
/// recorded offered actions, gives the recorded plan or failure. `Ok(None)` for a decision
/// without a transcript (the built-in planners).
pub fn replay_transcript(
    decision: &ChainedRecord,
    records: &[ChainedRecord],
) -> Result<Option<TranscriptReplay>, ReplayError> {
    use crate::transcript::{PLANNER_TRANSCRIPT, TranscriptBody, TranscriptOutcome};
    let body: DecisionBody = decode(&decision.body)
        .map_err(|e| ReplayError::Unreadable { record: decision.id(), message: e.to_string() })?;
    let Some(r) = body.planner_transcript else { return Ok(None) };
    let found = records.iter().find(|x| x.kind == PLANNER_TRANSCRIPT && x.id() == r.record);
    let Some(t) = found else {
        return Err(ReplayError::Missing { record: decision.id(), field: format!("planner_transcript {}", r.record) });
    };
    let tb: TranscriptBody =
        decode(&t.body).map_err(|e| ReplayError::Unreadable { record: t.id(), message: e.to_string() })?;
    let mut differing = Vec::new();
    let hash_matches = t.hash == r.hash;
    if !hash_matches {
        differing.push("planner_transcript.hash".to_string());
    }
    let tr = tb.transcript;
    let recorded_plan: Option<PlanOutput> =
        decision.body.pointer("/outcome/plan/output").and_then(|v| serde_json::from_value(v.clone()).ok());
    let incident = Incident::from_json_value(&body.incident).ok();
    let plan_reproduced = match (tr.outcome, &tr.final_answer, incident) {
        (TranscriptOutcome::Fallback, _, _) => None,
        (_, None, _) => Some(tr.outcome == TranscriptOutcome::Failed),
        (_, Some(raw), Some(incident)) => {
            let again = crate::model_planner::accept_plan(raw, &incident, &tr.offered_actions, 0.0, &tr.planner);
            let same = match (again, tr.outcome) {
                (Ok(a), TranscriptOutcome::Accepted) => recorded_plan.as_ref().is_some_and(|p| {
                    p.proposed_action == a.plan.output.proposed_action && p.key_claims == a.plan.output.key_claims
                }),
                (Err(rej), TranscriptOutcome::Failed) => tr.failure.as_ref() == Some(&rej.failure),
                // A final answer that passed but the loop failed afterwards (a budget) is a
                // recorded failure too.
                (Ok(_), TranscriptOutcome::Failed) => tr.failure.is_some(),
                _ => false,
            };
            Some(same)
        }
        (_, Some(_), None) => Some(false),
    };
    if plan_reproduced == Some(false) {
        differing.push("outcome.plan".to_string());
    }
    Ok(Some(TranscriptReplay {
        record: t.id(),
        hash_matches,
        outcome: tr.outcome.as_str().to_string(),
        plan_reproduced,
        differing_fields: differing,
    }))
}

fn path_name(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The typed encoding writes the bytes the `json!` one did (they are in hashed records).
    #[test]
    fn encoded_signals_keep_their_bytes() {
        let mut s = Signals::default();
        s.set("a", SignalValue::Number(1.5));
        s.set("b", SignalValue::Number(f64::NAN));
        s.set("c", SignalValue::Bool(true));
        s.set("d", SignalValue::Text("x".into()));
        s.set("e", SignalValue::Unavailable("why".into()));
        s.set("f", SignalValue::Number(3.0));
        s.set("g", SignalValue::Number(f64::NEG_INFINITY));
        let rules = RemediationRules::default();
        assert_eq!(
            serde_json::to_string(&gate_inputs_body(Some(&s), &rules)).unwrap(),
            serde_json::to_string(&json!({
                "deploy_signals": {
                    "a": {"number": 1.5}, "b": {"number": "NaN"}, "c": {"bool": true}, "d": {"text": "x"},
                    "e": {"unavailable": "why"}, "f": {"number": 3.0}, "g": {"number": "-inf"},
                },
                "rules": serde_json::to_value(&rules).unwrap(),
            }))
            .unwrap()
        );
    }

    #[test]
    fn signals_round_trip_losslessly() {
        let mut s = Signals::default();
        s.set("burn_rate", SignalValue::Text("critical".into()));
        s.set("error_budget_pct", SignalValue::Number(12.5));
        s.set("latency_compliant", SignalValue::Bool(true));
        s.set("p99_latency_ms", SignalValue::Unavailable("no latency source".into()));
        s.set("cost_delta_pct", SignalValue::Number(f64::INFINITY));
        let back = decode_signals(&encode_signals(&s)).unwrap();
        assert_eq!(back, s);
        let mut nan = Signals::default();
        nan.set("x", SignalValue::Number(f64::NAN));
        let back = decode_signals(&encode_signals(&nan)).unwrap();
        assert!(matches!(back.get("x"), Some(SignalValue::Number(n)) if n.is_nan()));
        for bad in [json!([]), json!({"x": 1}), json!({"x": {"number": "7"}}), json!({"x": {"text": 1, "bool": true}})]
        {
            assert!(decode_signals(&bad).is_err(), "{bad}");
        }
    }
}
