//! Guardrail's own tools in the registry (`ToolRegistry::guardrail`): schemas and handlers agree
//! (every tool's generated input schema accepts what its handler accepts and refuses what it
//! refuses; every result validates against the generated output schema), they fail closed
//! without state, `propose_remediation` is the pipeline's decision and never reaches the state's
//! write path, and `incident_status` is the queue fold.

use std::cell::Cell;

use guardrail_core::audit::{ChainedRecord, RecordDraft, seal};
use guardrail_core::cost::CostReport;
use guardrail_core::signals::Signals;
use guardrail_core::slo::SloReport;
use guardrail_gate::ci;
use guardrail_gate::decide::{self, Decided};
use guardrail_gate::inputs::InputArgs;
use guardrail_gate::view::AuditRef;
use guardrail_governor::guardrail_tools::{DecisionExplanation, DeployEvaluation, GuardrailState, StateError};
use guardrail_governor::queue::kinds;
use guardrail_governor::{ToolContext, ToolError, ToolRegistry, run_pipeline};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::common::{now, sample_store};

/// A state that counts what it is asked and answers canned values (a real decision on the
/// example deploy-gate inputs).
struct Fake {
    records_written: Cell<u32>,
    signals_asked: Cell<u32>,
    signals_fail: bool,
    records: Vec<ChainedRecord>,
    decided: Decided,
}

impl Default for Fake {
    fn default() -> Fake {
        let args = InputArgs { root: Some(guardrail_test_support::examples("deploy-gate")), ..Default::default() };
        let snapshot = decide::read_snapshot(&args, &|_| None, now()).unwrap();
        let decided = decide::decide(snapshot, ci::from_env(|_| None), false, None).unwrap();
        Fake {
            records_written: Cell::new(0),
            signals_asked: Cell::new(0),
            signals_fail: false,
            records: Vec::new(),
            decided,
        }
    }
}

impl GuardrailState for Fake {
    fn slo_status(&self, _: Timestamp) -> Result<SloReport, StateError> {
        Ok(self.decided.evaluation.slo.clone())
    }
    fn cost_status(&self, _: Timestamp) -> Result<CostReport, StateError> {
        Err(StateError::Undecided { problems: vec!["data/cost.json: collected_at: too old".into()] })
    }
    fn evaluate_deploy(&self, _: Timestamp, record: bool) -> Result<DeployEvaluation, StateError> {
        let audit = record.then(|| {
            self.records_written.set(self.records_written.get() + 1);
            AuditRef { id: "1-abc".into(), seq: 1, hash: "abc".into(), store: "sqlite:fake.db".into() }
        });
        Ok(DeployEvaluation { decided: self.decided.clone(), audit })
    }
    fn explain_decision(&self, _: Timestamp) -> Result<DecisionExplanation, StateError> {
        Ok(DecisionExplanation {
            action: self.decided.action(),
            policy_id: self.decided.evaluation.decision.policy_id.clone(),
            verdict: "Deploy allowed.".into(),
            contributing_factors: vec![],
            also_noted: vec![],
            recommendations: vec!["none".into()],
            narrative: "Deploy allowed.".into(),
            evaluated_at: now().to_string(),
        })
    }
    fn deploy_signals(&self, _: Timestamp) -> Result<Signals, StateError> {
        self.signals_asked.set(self.signals_asked.get() + 1);
        if self.signals_fail {
            Err(StateError::Undecided { problems: vec!["metrics.json: missing".into()] })
        } else {
            Ok(Signals::default())
        }
    }
    fn records(&self) -> Result<Vec<ChainedRecord>, StateError> {
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
    let e = reg.call("cost_status", &ctx, json!({})).unwrap_err();
    assert!(matches!(e, ToolError::State { .. }), "{e}");
    assert_eq!(e.to_string(), "cost_status: data/cost.json: collected_at: too old");
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
    let recorded = reg.call("evaluate_deploy", &ctx, json!({"record": true})).unwrap();
    assert_eq!(recorded["recorded"], true);
    assert_eq!(recorded["audit"]["id"], "1-abc");
    assert_eq!(fake.records_written.get(), 1);
    // The gate's one view: the `--format json` fields pipelines parse, plus `recorded`.
    let dry = reg.call("evaluate_deploy", &ctx, json!({})).unwrap();
    let view = serde_json::to_value(fake.decided.view()).unwrap();
    for (k, v) in view.as_object().unwrap() {
        assert_eq!(&dry[k], v, "{k}");
    }
    assert_eq!(dry["recorded"], false);
    assert!(dry["audit"].is_null());
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
        assert_eq!(p["decision"], json!(expected.gate.output.decision), "{}", incident.id);
        assert_eq!(p["action"], json!(expected.gated_action()));
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
    assert_eq!(e.to_string(), "propose_remediation: the deploy gate's signals: metrics.json: missing");
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
    assert_eq!(all["incidents"][0]["request_record"], json!(fake.records[1].id()));
    let one = reg.call("incident_status", &ctx, json!({"incident_id": "inc-9"})).unwrap();
    assert_eq!(one["records"].as_array().unwrap().len(), 2);
    assert_eq!(one["decision_record"], json!(d));
    assert_eq!(one["pending"]["request_record"], json!(fake.records[1].id()));
    let e = reg.call("incident_status", &ctx, json!({"incident_id": "inc-404"})).unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { .. }), "{e}");
}

fn contains_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(key) || m.values().any(|x| contains_key(x, key)),
        Value::Array(xs) => xs.iter().any(|x| contains_key(x, key)),
        _ => false,
    }
}

#[test]
fn every_schema_is_generated_inline_with_an_object_root() {
    for t in ToolRegistry::guardrail().tools() {
        for (which, schema) in [("input", &t.input_schema), ("output", &t.output_schema)] {
            jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("{} {which}: {e}", t.name));
            assert_eq!(schema["type"], "object", "{} {which}: MCP wants an object root", t.name);
            // Inline: no references a client would have to resolve.
            assert!(!contains_key(schema, "$ref") && !contains_key(schema, "$defs"), "{} {which}", t.name);
            assert!(schema.get("$schema").is_none() && schema.get("title").is_none(), "{} {which}", t.name);
        }
        assert_eq!(t.input_schema["additionalProperties"], false, "{}", t.name);
    }
    let list = ToolRegistry::guardrail().mcp_tools_list();
    for t in list["tools"].as_array().unwrap() {
        assert!(t["outputSchema"].is_object() && t["inputSchema"].is_object(), "{t}");
    }
}

/// Arguments on both sides of every bound the handlers check: the generated schema and the
/// handler must give the same answer for each.
#[test]
fn generated_input_schemas_and_handlers_agree_on_every_bound() {
    let (store, incidents) = sample_store();
    let fake = Fake::default();
    let ctx = ToolContext::new(&store, now()).with_guardrail(&fake);
    let reg = ToolRegistry::guardrail();
    let incident = serde_json::to_value(&incidents[0]).unwrap();
    let with = |field: &str, value: Value| {
        let mut i = incident.clone();
        i[field] = value;
        json!({"incident": i, "deploy_signals": false})
    };
    let without = |field: &str| {
        let mut i = incident.clone();
        i.as_object_mut().unwrap().remove(field);
        json!({"incident": i, "deploy_signals": false})
    };
    let long = "x".repeat(8193);
    let service_128 = "s".repeat(128);
    let service_129 = "s".repeat(129);
    let cases = [
        ("search_runbooks", json!({"query": "db", "service": "payments-api", "top_k": 1}), true),
        ("search_runbooks", json!({"query": "db", "service": "payments-api", "top_k": 20}), true),
        ("search_runbooks", json!({"query": "db", "service": "payments-api", "top_k": 0}), false),
        ("search_runbooks", json!({"query": "db", "service": "payments-api", "top_k": 21}), false),
        ("search_runbooks", json!({"query": "db", "service": "payments-api", "top_k": -1}), false),
        ("search_runbooks", json!({"query": "db", "service": "payments-api", "top_k": 2.5}), false),
        ("search_runbooks", json!({"query": "db", "service": "payments-api", "top_k": "3"}), false),
        ("search_runbooks", json!({"query": "db", "service": ""}), false),
        ("search_runbooks", json!({"query": "db", "service": "*"}), false),
        ("search_runbooks", json!({"query": "db", "service": "pay ments"}), false),
        ("search_runbooks", json!({"query": "db", "service": "payments-api\n"}), false),
        ("search_runbooks", json!({"query": "db", "service": service_128}), true),
        ("search_runbooks", json!({"query": "db", "service": service_129}), false),
        ("search_runbooks", json!({"query": "db", "service": "ns/payments:api_v1.2"}), true),
        ("search_runbooks", json!({"query": "db", "service": "paymënts"}), false),
        ("search_evidence", json!({"query": "db", "service": "*"}), true),
        ("search_evidence", json!({"query": "db", "service": "**"}), false),
        ("search_evidence", json!({"query": "db", "service": "payments-api", "stance": null}), true),
        ("search_evidence", json!({"query": "db", "service": "payments-api", "stance": "support"}), true),
        ("search_evidence", json!({"query": "db", "service": "payments-api", "stance": "neutral"}), false),
        ("search_evidence", json!({"query": "db", "service": "payments-api", "top_k": 21}), false),
        ("check_policy_conflicts", json!({"service": "payments-api", "action": "restart", "severity": "low"}), true),
        ("check_policy_conflicts", json!({"service": "payments-api", "action": "restart", "severity": "HIGH"}), false),
        ("check_policy_conflicts", json!({"service": "payments-api", "action": " ", "severity": "low"}), false),
        ("check_policy_conflicts", json!({"service": "payments-api", "action": "", "severity": "low"}), false),
        ("check_policy_conflicts", json!({"service": "*", "action": "restart", "severity": "low"}), false),
        ("query_live_logs", Value::Null, true),
        ("query_live_logs", json!({"service": null, "window_minutes": null}), true),
        ("query_live_logs", json!({"window_minutes": 1}), true),
        ("query_live_logs", json!({"window_minutes": 1440}), true),
        ("query_live_logs", json!({"window_minutes": 0}), false),
        ("query_live_logs", json!({"window_minutes": 1441}), false),
        ("query_live_logs", json!({"service": ""}), false),
        ("query_live_logs", json!({"service": "payments-api", "query": "x"}), false),
        ("cost_status", json!({"x": 1}), false),
        ("explain_decision", json!({}), true),
        ("explain_decision", json!({"now": "2026-01-01T00:00:00Z"}), false),
        ("evaluate_deploy", json!({"record": null}), false),
        ("propose_remediation", json!({"incident": incident, "deploy_signals": false}), true),
        ("propose_remediation", json!({"incident": incident, "deploy_signals": "no"}), false),
        ("propose_remediation", json!({"incident": "inc-1"}), false),
        ("propose_remediation", with("id", json!("")), false),
        ("propose_remediation", with("id", json!("   ")), false),
        ("propose_remediation", with("id", json!("inc\u{1}9")), false),
        ("propose_remediation", with("id", json!("inc 9 ü")), true),
        ("propose_remediation", with("id", json!(9)), false),
        ("propose_remediation", with("service", json!("*")), false),
        ("propose_remediation", with("severity", json!("High")), false),
        ("propose_remediation", with("summary", json!(long)), false),
        ("propose_remediation", with("symptoms", json!("")), true),
        ("propose_remediation", with("notes", json!("scenario files carry notes")), true),
        ("propose_remediation", without("symptoms"), false),
        ("incident_status", json!({"incident_id": null}), true),
        ("incident_status", json!({"incident_id": 7}), false),
        ("incident_status", json!({"incident": "inc-1"}), false),
    ];
    for (name, args, valid) in cases {
        let tool = reg.get(name).unwrap();
        let schema_args = if args.is_null() { json!({}) } else { args.clone() };
        let by_schema = jsonschema::validator_for(&tool.input_schema).unwrap().is_valid(&schema_args);
        let by_handler = reg.call(name, &ctx, args.clone());
        assert_eq!(by_schema, valid, "schema: {name} {args}");
        assert_eq!(by_handler.is_ok(), valid, "handler: {name} {args}: {by_handler:?}");
        if let Err(e) = by_handler {
            assert!(matches!(e, ToolError::InvalidArguments { .. }), "{name} {args}: {e}");
        }
    }
}

fn assert_fits_output_schema(reg: &ToolRegistry, name: &str, result: &Value) {
    let tool = reg.get(name).unwrap();
    let structured = tool.structured(result.clone());
    assert!(structured.is_object(), "{name}: structuredContent must be an object");
    let validator = jsonschema::validator_for(&tool.output_schema).unwrap();
    let errors: Vec<String> =
        validator.iter_errors(&structured).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{name}: result violates its outputSchema: {errors:?}\n{structured:#}");
}

#[test]
fn every_result_fits_its_generated_output_schema() {
    let (store, incidents) = sample_store();
    let logs = guardrail_governor::NdjsonLogs::open(&crate::common::examples().join("logs.ndjson")).unwrap();
    let reg = ToolRegistry::guardrail();
    let mut records: Vec<ChainedRecord> = Vec::new();
    // A real decision and approval request, as `incident run` writes them.
    let outcome = run_pipeline(&incidents[0], &ToolContext::new(&store, now())).unwrap();
    let body = json!({
        "incident_id": incidents[0].id, "incident": incidents[0], "decision": outcome.gate.output.decision,
        "gated_action": outcome.gated_action(), "binding_hash": outcome.binding_hash(), "rule": outcome.gate.rule,
        "reasons": outcome.gate.output.reasons, "outcome": outcome,
    });
    records.push(seal(
        records.last(),
        RecordDraft { kind: kinds::DECISION.into(), recorded_at: "2026-11-24T10:00:00Z".into(), body },
    ));
    let fake = Fake { records, ..Fake::default() };
    for ctx in [
        ToolContext::new(&store, now()).with_guardrail(&fake),
        ToolContext::new(&store, now()).with_guardrail(&fake).with_logs(&logs),
    ] {
        let incident = serde_json::to_value(&incidents[0]).unwrap();
        for (name, args) in [
            ("search_runbooks", json!({"query": "latency errors", "service": "payments-api", "top_k": 5})),
            ("search_evidence", json!({"query": "restart", "service": "*", "top_k": 20})),
            (
                "check_policy_conflicts",
                json!({"service": "payments-api", "action": "restart_api_pods", "severity": "high"}),
            ),
            ("query_live_logs", json!({})),
            ("query_live_logs", json!({"service": "payments-api", "window_minutes": 1440})),
            ("slo_status", json!({})),
            ("evaluate_deploy", json!({})),
            ("explain_decision", json!({})),
            ("propose_remediation", json!({"incident": incident})),
            ("incident_status", json!({})),
            ("incident_status", json!({"incident_id": incidents[0].id})),
        ] {
            let result = reg.call(name, &ctx, args.clone()).unwrap_or_else(|e| panic!("{name} {args}: {e}"));
            assert_fits_output_schema(&reg, name, &result);
        }
        // The planner's and stress phase's own calls, as traced, fit too.
        for incident in &incidents {
            let o = run_pipeline(incident, &ctx).unwrap();
            for call in o.trace.iter().filter(|c| c.ok) {
                assert_fits_output_schema(&reg, &call.tool, &call.result);
            }
        }
    }
}

#[test]
fn a_list_result_is_wrapped_and_an_object_result_is_not() {
    let reg = ToolRegistry::guardrail();
    let runbooks = reg.get("search_runbooks").unwrap();
    assert_eq!(runbooks.structured(json!([])), json!({"result": []}));
    assert_eq!(runbooks.output_schema["required"], json!(["result"]));
    let explain = reg.get("explain_decision").unwrap();
    assert_eq!(explain.structured(json!({"action": "ALLOW"})), json!({"action": "ALLOW"}));
}

/// `evaluate_deploy`'s outputSchema is the gate's view: the fields pipelines parse from `guardrail
/// gate --format json` are required (nullable where the gate prints null), plus `recorded`.
#[test]
fn evaluate_deploys_output_schema_is_the_gate_view() {
    let reg = ToolRegistry::guardrail();
    let schema = &reg.get("evaluate_deploy").unwrap().output_schema;
    let required: Vec<&str> = schema["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for field in ["action", "policy_id", "reason", "delay_minutes", "retry_after", "exit_code", "audit", "recorded"] {
        assert!(required.contains(&field), "{field} not required: {required:?}");
    }
    let action = jsonschema::validator_for(&schema["properties"]["action"]).unwrap();
    for a in ["ALLOW", "WARN", "DELAY", "BLOCK"] {
        assert!(action.is_valid(&json!(a)), "{a}");
    }
    assert!(!action.is_valid(&json!("allow")) && !action.is_valid(&Value::Null));
    let retry = jsonschema::validator_for(&schema["properties"]["retry_after"]).unwrap();
    assert!(retry.is_valid(&Value::Null) && retry.is_valid(&json!("2026-11-24T10:30:00Z")));
}

/// A valid call of every tool: the base the schema-driven mutations start from.
fn valid_example(name: &str, incident: &Value) -> Value {
    match name {
        "search_runbooks" => json!({"query": "latency", "service": "payments-api", "top_k": 3}),
        "search_evidence" => json!({"query": "restart", "service": "payments-api", "top_k": 3, "stance": "support"}),
        "check_policy_conflicts" => json!({"service": "payments-api", "action": "restart_service", "severity": "high"}),
        "query_live_logs" => json!({"service": "payments-api", "window_minutes": 30}),
        "slo_status" | "cost_status" | "explain_decision" => json!({}),
        "evaluate_deploy" => json!({"record": false}),
        "propose_remediation" => json!({"incident": incident, "deploy_signals": true}),
        "incident_status" => json!({"incident_id": "inc-9"}),
        other => panic!("a new tool, {other}: give it a valid example here"),
    }
}

/// For every tool, whatever its schema says about each argument is what the handler does:
/// dropping it (allowed only when not required), a value of another type, an unknown argument,
/// and both sides of every integer bound.
#[test]
fn schema_driven_mutations_of_every_tools_arguments_agree_with_the_handler() {
    let (store, incidents) = sample_store();
    let blocked = json!({"incident_id": "inc-9", "decision": "block_and_escalate", "gated_action": "restart_service", "binding_hash": "h"});
    let records = vec![seal(
        None,
        RecordDraft { kind: kinds::DECISION.into(), recorded_at: "2026-11-24T10:00:00Z".into(), body: blocked },
    )];
    let fake = Fake { records, ..Fake::default() };
    let ctx = ToolContext::new(&store, now()).with_guardrail(&fake);
    let reg = ToolRegistry::guardrail();
    let incident = serde_json::to_value(&incidents[0]).unwrap();
    let mut checked = 0;
    for tool in reg.tools() {
        let schema = jsonschema::validator_for(&tool.input_schema).unwrap();
        let base = valid_example(tool.name, &incident);
        let mut variants: Vec<(Value, String)> = vec![(base.clone(), "the example".into())];
        let mut unknown = base.clone();
        unknown["threshold"] = json!(1);
        variants.push((unknown, "an unknown argument".into()));
        let required: Vec<&str> = tool.input_schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let properties = tool.input_schema["properties"].as_object().cloned().unwrap_or_default();
        for (prop, p) in &properties {
            let mut dropped = base.clone();
            dropped.as_object_mut().unwrap().remove(prop);
            variants.push((dropped, format!("{prop} dropped (required: {})", required.contains(&prop.as_str()))));
            let types: Vec<&str> = match &p["type"] {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let wrong = if types.contains(&"object") { json!([1]) } else { json!({"x": 1}) };
            let mut mistyped = base.clone();
            mistyped[prop] = wrong;
            variants.push((mistyped, format!("{prop} of another type")));
            if types.contains(&"integer") {
                for key in ["minimum", "maximum"] {
                    if let Some(bound) = p[key].as_i64() {
                        let outside = if key == "minimum" { bound - 1 } else { bound + 1 };
                        for v in [bound, outside] {
                            let mut b = base.clone();
                            b[prop] = json!(v);
                            variants.push((b, format!("{prop} = {v} ({key} {bound})")));
                        }
                    }
                }
            }
        }
        for (args, what) in variants {
            let by_schema = schema.is_valid(&args);
            // Accepted unless refused as arguments (the fake's cost_status fails on its input,
            // after the arguments passed).
            let by_handler = reg.call(tool.name, &ctx, args.clone());
            let accepted = !matches!(by_handler, Err(ToolError::InvalidArguments { .. }));
            assert_eq!(by_schema, accepted, "{}: {what}: schema {by_schema}, handler {by_handler:?}", tool.name);
            checked += 1;
        }
    }
    assert!(checked > 60, "{checked} variants");
}

/// The service-name pattern in the schemas is `valid_service_name`, character for character and
/// at both ends of the length range.
#[test]
fn the_service_pattern_is_valid_service_name() {
    use guardrail_core::remediation::valid_service_name;
    let pattern = json!({"type": "string", "pattern": guardrail_governor::tools::SERVICE_PATTERN});
    let schema = jsonschema::validator_for(&pattern).unwrap();
    let mut names: Vec<String> = (0u32..0x250).filter_map(char::from_u32).map(|c| format!("a{c}b")).collect();
    names.extend(["".into(), "x".repeat(128), "x".repeat(129), "é".repeat(10), "a\nb\n".into(), "*".into()]);
    for name in names {
        assert_eq!(schema.is_valid(&json!(name)), valid_service_name(&name), "{name:?}");
    }
}

/// The incident id pattern in `propose_remediation`'s schema is the core's rule (not blank, no
/// control characters), character for character.
#[test]
fn the_incident_id_pattern_is_the_cores_rule() {
    use guardrail_core::remediation::Incident;
    let reg = ToolRegistry::guardrail();
    let id_schema =
        reg.get("propose_remediation").unwrap().input_schema["properties"]["incident"]["properties"]["id"].clone();
    let schema = jsonschema::validator_for(&id_schema).unwrap();
    let mut ids: Vec<String> =
        (0u32..0x3000).filter_map(char::from_u32).flat_map(|c| [format!("{c}"), format!("i{c}9")]).collect();
    ids.extend(["".into(), "   ".into(), "\u{a0}".into(), "\u{2003}x".into(), "inc-001".into()]);
    for id in ids {
        let incident = json!({"id": id, "service": "payments-api", "severity": "low", "summary": "s", "symptoms": "s"});
        assert_eq!(schema.is_valid(&json!(id)), Incident::from_json_value(&incident).is_ok(), "{id:?}");
    }
}
