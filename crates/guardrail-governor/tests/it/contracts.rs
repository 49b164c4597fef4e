//! The copied contracts are the original's, they are strict, and the tool definitions keep
//! the original MCP server's names and arguments.

use guardrail_governor::contracts::{GATE_OUTPUT_SCHEMA, PLAN_OUTPUT_SCHEMA, STRESS_OUTPUT_SCHEMA};
use guardrail_governor::{ToolContext, ToolRegistry, run_pipeline};
use serde_json::{Value, json};

use crate::common::{now, sample_store, schema_errors};

#[test]
fn copied_contracts_are_identical_to_the_reference_fixtures_when_present() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/governor/contracts");
    if !shared.is_dir() {
        return; // The repository must not depend on shared/; compare only when it is there.
    }
    for (name, ours) in [
        ("plan_output.schema.json", PLAN_OUTPUT_SCHEMA),
        ("stress_output.schema.json", STRESS_OUTPUT_SCHEMA),
        ("gate_output.schema.json", GATE_OUTPUT_SCHEMA),
    ] {
        let theirs = std::fs::read_to_string(shared.join(name)).unwrap();
        let a: Value = serde_json::from_str(ours).unwrap();
        let b: Value = serde_json::from_str(&theirs).unwrap();
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn guardrail_detail_stays_outside_the_contract_objects() {
    let (store, incidents) = sample_store();
    let o = run_pipeline(&incidents[0], &ToolContext::new(&store, now())).unwrap();
    // The contract objects pass; the detail structs around them would not.
    assert!(schema_errors(GATE_OUTPUT_SCHEMA, &serde_json::to_value(&o.gate.output).unwrap()).is_empty());
    assert!(!schema_errors(GATE_OUTPUT_SCHEMA, &serde_json::to_value(&o.gate).unwrap()).is_empty());
    assert!(!schema_errors(PLAN_OUTPUT_SCHEMA, &serde_json::to_value(&o.plan).unwrap()).is_empty());
    assert!(!schema_errors(STRESS_OUTPUT_SCHEMA, &serde_json::to_value(&o.stress).unwrap()).is_empty());
    // The fields the original emitted beyond its own schema are in the detail, not the output.
    let gate = serde_json::to_value(&o.gate.output).unwrap();
    assert!(gate.get("disagreement_detected").is_none() && gate.get("arbiter_resolution").is_none());
}

#[test]
fn tools_keep_the_original_mcp_names_and_arguments() {
    let list = ToolRegistry::builtin().mcp_tools_list();
    let tools = list["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["search_runbooks", "search_evidence", "check_policy_conflicts", "query_live_logs"]);
    let required = |i: usize| -> Vec<&str> {
        tools[i]["inputSchema"]["required"]
            .as_array()
            .map(|r| r.iter().map(|x| x.as_str().unwrap()).collect())
            .unwrap_or_default()
    };
    assert_eq!(required(0), vec!["query", "service"]);
    assert_eq!(required(1), vec!["query", "service"]);
    assert_eq!(required(2), vec!["service", "action", "severity"]);
    assert!(required(3).is_empty());
    assert_eq!(tools[0]["inputSchema"]["properties"]["top_k"]["default"], 3);
    for t in tools {
        assert_eq!(t["annotations"]["readOnlyHint"], true);
        assert_eq!(t["annotations"]["destructiveHint"], false);
        // Every input schema is itself a valid schema.
        jsonschema::validator_for(&t["inputSchema"]).unwrap();
    }
}

#[test]
fn search_evidence_star_means_every_service() {
    let (store, _) = sample_store();
    let ctx = ToolContext::new(&store, now());
    let reg = ToolRegistry::builtin();
    let services = |args: serde_json::Value| -> Vec<String> {
        let out = reg.call("search_evidence", &ctx, args.clone()).unwrap_or_else(|e| panic!("{args}: {e}"));
        let mut s: Vec<String> =
            out.as_array().unwrap().iter().map(|h| h["service"].as_str().unwrap().to_string()).collect();
        s.sort();
        s.dedup();
        s
    };
    // The sample's evidence is for payments-api and billing-batch: "*" finds both…
    assert_eq!(
        services(json!({"query": "restart scaling DB", "service": "*", "top_k": 20})),
        ["billing-batch", "payments-api"]
    );
    assert_eq!(services(json!({"query": "", "service": "*", "top_k": 20})), ["billing-batch", "payments-api"]);
    // …a named service only its own (and any "*" documents).
    assert_eq!(
        services(json!({"query": "restart scaling DB", "service": "billing-batch", "top_k": 20})),
        ["billing-batch"]
    );
    // A stance filter still applies.
    let contradict = reg
        .call("search_evidence", &ctx, json!({"query": "", "service": "*", "stance": "contradict", "top_k": 20}))
        .unwrap();
    assert!(contradict.as_array().unwrap().iter().all(|h| h["stance"] == "contradict"), "{contradict}");
    assert_eq!(contradict.as_array().unwrap().len(), 2, "{contradict}");
}

#[test]
fn schemas_and_handlers_agree_on_arguments() {
    let (store, _) = sample_store();
    let ctx = ToolContext::new(&store, now());
    let reg = ToolRegistry::builtin();
    let cases = [
        ("search_runbooks", json!({"query": "latency", "service": "payments-api"}), true),
        ("search_runbooks", json!({"query": "latency", "service": "payments-api", "top_k": 2}), true),
        ("search_runbooks", json!({"query": "latency"}), false),
        ("search_runbooks", json!({"query": "latency", "service": "payments-api", "extra": 1}), false),
        ("search_runbooks", json!({"query": 1, "service": "payments-api"}), false),
        ("search_evidence", json!({"query": "db", "service": "payments-api", "stance": "contradict"}), true),
        ("search_evidence", json!({"query": "db", "service": "payments-api", "stance": "both"}), false),
        ("search_evidence", json!({"query": "db", "service": "*"}), true),
        (
            "check_policy_conflicts",
            json!({"service": "payments-api", "action": "restart_api_pods", "severity": "high"}),
            true,
        ),
        ("check_policy_conflicts", json!({"service": "payments-api", "action": "restart_api_pods"}), false),
        ("check_policy_conflicts", json!({"service": "payments-api", "action": "x", "severity": "urgent"}), false),
        ("query_live_logs", json!({}), true),
        ("query_live_logs", json!({"service": "payments-api", "window_minutes": 30}), true),
        ("query_live_logs", json!({"window_minutes": 5000}), false),
    ];
    for (name, args, valid) in cases {
        let tool = reg.get(name).unwrap();
        let by_schema = jsonschema::validator_for(&tool.input_schema).unwrap().is_valid(&args);
        let by_handler = reg.call(name, &ctx, args.clone()).is_ok();
        assert_eq!(by_schema, valid, "schema: {name} {args}");
        assert_eq!(by_handler, valid, "handler: {name} {args}");
    }
}
