//! Guardrail's own tools in the registry (`ToolRegistry::guardrail`): schemas and handlers agree,
//! they fail closed without state, `propose_remediation` is the pipeline's decision and never
//! reaches the state's write path, and `incident_status` is the queue fold.

use std::cell::Cell;

use guardrail_core::audit::{ChainedRecord, RecordDraft, seal};
use guardrail_core::signals::Signals;
use guardrail_governor::guardrail_tools::GuardrailState;
use guardrail_governor::queue::kinds;
use guardrail_governor::{ToolContext, ToolError, ToolRegistry, run_pipeline};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::common::{now, sample_store};

/// A state that counts what it is asked and answers canned values.
#[derive(Default)]
struct Fake {
    records_written: Cell<u32>,
    signals_asked: Cell<u32>,
    signals_fail: bool,
    records: Vec<ChainedRecord>,
}

impl GuardrailState for Fake {
    fn slo_status(&self, _: Timestamp) -> Result<Value, String> {
        Ok(json!({"burn_rate": 1.0}))
    }
    fn cost_status(&self, _: Timestamp) -> Result<Value, String> {
        Err("data/cost.json: collected_at: too old".into())
    }
    fn evaluate_deploy(&self, _: Timestamp, record: bool) -> Result<Value, String> {
        if record {
            self.records_written.set(self.records_written.get() + 1);
        }
        Ok(json!({"action": "ALLOW", "recorded": record}))
    }
    fn explain_decision(&self, _: Timestamp) -> Result<Value, String> {
        Ok(json!({"action": "ALLOW"}))
    }
    fn deploy_signals(&self, _: Timestamp) -> Result<Signals, String> {
        self.signals_asked.set(self.signals_asked.get() + 1);
        if self.signals_fail { Err("metrics.json: missing".into()) } else { Ok(Signals::default()) }
    }
    fn records(&self) -> Result<Vec<ChainedRecord>, String> {
        Ok(self.records.clone())
    }
}

#[test]
fn the_guardrail_registry_is_the_builtin_one_plus_six_with_honest_annotations() {
    let all = ToolRegistry::guardrail();
    let builtin = ToolRegistry::builtin();
    let names: Vec<&str> = all.tools().iter().map(|t| t.name).collect();
    assert_eq!(&names[..4], builtin.tools().iter().map(|t| t.name).collect::<Vec<_>>().as_slice());
    assert_eq!(
        &names[4..],
        ["slo_status", "cost_status", "evaluate_deploy", "explain_decision", "propose_remediation", "incident_status"]
    );
    // The planners' registry does not hold the gate or the audit trail.
    assert!(builtin.get("evaluate_deploy").is_none() && builtin.get("propose_remediation").is_none());
    for t in all.tools() {
        jsonschema::validator_for(&t.input_schema).unwrap();
        assert_eq!(t.input_schema["additionalProperties"], false, "{}", t.name);
        assert!(!t.annotations.destructive && !t.annotations.open_world, "{}", t.name);
        assert_eq!(t.annotations.read_only, t.name != "evaluate_deploy", "{}", t.name);
        assert_eq!(t.annotations.idempotent, t.annotations.read_only, "{}", t.name);
    }
    let list = all.mcp_tools_list();
    assert_eq!(list["tools"][6]["annotations"]["readOnlyHint"], false);
    assert_eq!(list["tools"][6]["annotations"]["openWorldHint"], false);
}

#[test]
fn without_state_the_guardrail_tools_fail_closed() {
    let (store, _) = sample_store();
    let ctx = ToolContext::new(&store, now());
    let reg = ToolRegistry::guardrail();
    for name in ["slo_status", "cost_status", "evaluate_deploy", "explain_decision", "incident_status"] {
        let e = reg.call(name, &ctx, json!({})).unwrap_err();
        assert!(matches!(e, ToolError::Unavailable { .. }), "{name}: {e}");
    }
}

#[test]
fn schemas_and_handlers_agree_on_the_guardrail_tools_arguments() {
    let (store, incidents) = sample_store();
    let fake = Fake::default();
    let ctx = ToolContext::new(&store, now()).with_guardrail(&fake);
    let reg = ToolRegistry::guardrail();
    let incident = serde_json::to_value(&incidents[0]).unwrap();
    let cases = [
        ("slo_status", json!({}), true),
        ("slo_status", Value::Null, true),
        ("slo_status", json!({"burn_rate_threshold": 1}), false),
        ("evaluate_deploy", json!({}), true),
        ("evaluate_deploy", json!({"record": false}), true),
        ("evaluate_deploy", json!({"record": "yes"}), false),
        ("evaluate_deploy", json!({"cost_block_pct": 99}), false),
        ("explain_decision", json!({}), true),
        ("propose_remediation", json!({"incident": incident}), true),
        ("propose_remediation", json!({"incident": incident, "deploy_signals": false}), true),
        ("propose_remediation", json!({}), false),
        ("propose_remediation", json!({"incident": incident, "rules": {}}), false),
        (
            "propose_remediation",
            json!({"incident": {"id": "i", "service": "payments-api", "severity": "urgent", "summary": "s", "symptoms": "s"}}),
            false,
        ),
        ("incident_status", json!({}), true),
        ("incident_status", json!({"incident_id": ""}), false),
    ];
    for (name, args, valid) in cases {
        let tool = reg.get(name).unwrap();
        let schema_args = if args.is_null() { json!({}) } else { args.clone() };
        let by_schema = jsonschema::validator_for(&tool.input_schema).unwrap().is_valid(&schema_args);
        let by_handler = reg.call(name, &ctx, args.clone()).is_ok();
        assert_eq!(by_schema, valid, "schema: {name} {args}");
        assert_eq!(by_handler, valid, "handler: {name} {args}");
    }
    // A state error is the tool's error, never a result.
    assert!(matches!(reg.call("cost_status", &ctx, json!({})), Err(ToolError::Unavailable { .. })));
}

#[test]
fn evaluate_deploy_records_only_when_asked() {
    let (store, _) = sample_store();
    let fake = Fake::default();
    let ctx = ToolContext::new(&store, now()).with_guardrail(&fake);
    let reg = ToolRegistry::guardrail();
    reg.call("evaluate_deploy", &ctx, json!({})).unwrap();
    reg.call("evaluate_deploy", &ctx, json!({"record": false})).unwrap();
    assert_eq!(fake.records_written.get(), 0);
    assert_eq!(reg.call("evaluate_deploy", &ctx, json!({"record": true})).unwrap()["recorded"], true);
    assert_eq!(fake.records_written.get(), 1);
}

#[test]
fn a_proposal_is_the_pipelines_decision_and_writes_nothing() {
    let (store, incidents) = sample_store();
    let fake = Fake::default();
    let ctx = ToolContext::new(&store, now()).with_guardrail(&fake);
    let reg = ToolRegistry::guardrail();
    for incident in &incidents {
        let expected = run_pipeline(incident, &ToolContext::new(&store, now())).unwrap();
        let args = json!({"incident": incident, "deploy_signals": false});
        let p = reg.call("propose_remediation", &ctx, args).unwrap();
        assert_eq!(p["verdict"], json!(expected.gate.output.decision), "{}", incident.id);
        assert_eq!(p["rule"], json!(expected.gate.rule));
        assert_eq!(p["binding_hash"], json!(expected.binding_hash()));
        assert_eq!(p["executed"], false);
        assert_eq!(p["recorded"], false);
    }
    assert_eq!(fake.signals_asked.get(), 0, "deploy_signals: false reads no signals");
    let p = reg.call("propose_remediation", &ctx, json!({"incident": incidents[0]})).unwrap();
    assert_eq!(p["deploy_signals_used"], true);
    assert_eq!(fake.signals_asked.get(), 1);
    assert_eq!(fake.records_written.get(), 0, "a proposal never reaches the write path");
    // Signals asked for but unreadable: no proposal (the signal rules could not be checked).
    let broken = Fake { signals_fail: true, ..Fake::default() };
    let ctx = ToolContext::new(&store, now()).with_guardrail(&broken);
    let e = reg.call("propose_remediation", &ctx, json!({"incident": incidents[0]})).unwrap_err();
    assert!(e.to_string().contains("metrics.json"), "{e}");
}

#[test]
fn incident_status_is_the_queue_fold() {
    let (store, _) = sample_store();
    let mut records: Vec<ChainedRecord> = Vec::new();
    let blocked = json!({"incident_id": "inc-9", "decision": "block_and_escalate", "gated_action": "restart_service", "binding_hash": "h"});
    records.push(seal(
        records.last(),
        RecordDraft { kind: kinds::DECISION.into(), recorded_at: "2026-11-24T10:00:00Z".into(), body: blocked },
    ));
    let d = records[0].id();
    let req = json!({"incident_id": "inc-9", "decision_record": d, "binding_hash": "h"});
    records.push(seal(
        records.last(),
        RecordDraft { kind: kinds::APPROVAL_REQUEST.into(), recorded_at: "2026-11-24T10:00:01Z".into(), body: req },
    ));
    let fake = Fake { records, ..Fake::default() };
    let ctx = ToolContext::new(&store, now()).with_guardrail(&fake);
    let reg = ToolRegistry::guardrail();
    let all = reg.call("incident_status", &ctx, json!({})).unwrap();
    assert_eq!(all["incidents"][0]["incident_id"], "inc-9");
    assert_eq!(all["incidents"][0]["status"], "awaiting_approval");
    assert_eq!(all["incidents"][0]["pending_request"], json!(fake.records[1].id()));
    let one = reg.call("incident_status", &ctx, json!({"incident_id": "inc-9"})).unwrap();
    assert_eq!(one["records"].as_array().unwrap().len(), 2);
    assert_eq!(one["pending"]["decision_record"], json!(d));
    let e = reg.call("incident_status", &ctx, json!({"incident_id": "inc-404"})).unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { .. }), "{e}");
}
