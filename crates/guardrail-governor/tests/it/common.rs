//! Shared fixtures: the original's sample data and scenarios (copied into
//! `examples/governor/`), a fixed `now`, and JSON-schema validation of the contracts.

use std::path::PathBuf;

use guardrail_core::remediation::Incident;
use guardrail_governor::PipelineOutcome;
use guardrail_governor::contracts::{GATE_OUTPUT_SCHEMA, PLAN_OUTPUT_SCHEMA, STRESS_OUTPUT_SCHEMA};
use guardrail_knowledge::{KnowledgeStore, SqliteKnowledgeStore};
use jiff::Timestamp;

pub fn examples() -> PathBuf {
    guardrail_test_support::examples("governor")
}

pub fn now() -> Timestamp {
    "2026-11-24T10:00:00Z".parse().unwrap()
}

/// An in-memory store with the sample data, and the sample incidents.
pub fn sample_store() -> (SqliteKnowledgeStore, Vec<Incident>) {
    let mut s = SqliteKnowledgeStore::open_in_memory().unwrap();
    let (_, incidents) = s.load_sample_data(&examples().join("sample_data.json")).unwrap();
    (s, incidents)
}

/// The two sample incidents followed by the three scenarios.
pub fn all_incidents() -> Vec<Incident> {
    let (_, mut incidents) = sample_store();
    for name in ["incident_high.json", "incident_medium.json", "incident_downloads_503.json"] {
        incidents.extend(guardrail_governor::load_incidents(&examples().join("scenarios").join(name)).unwrap());
    }
    incidents
}

fn validate(schema_text: &str, instance: &serde_json::Value) -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(schema_text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// Validates the three contract objects of an outcome against the copied schemas.
pub fn assert_contracts(o: &PipelineOutcome) {
    let plan = serde_json::to_value(&o.plan.output).unwrap();
    let stress = serde_json::to_value(&o.stress.assessment.output).unwrap();
    let gate = serde_json::to_value(&o.gate.output).unwrap();
    for (name, schema, v) in [
        ("plan", PLAN_OUTPUT_SCHEMA, &plan),
        ("stress", STRESS_OUTPUT_SCHEMA, &stress),
        ("gate", GATE_OUTPUT_SCHEMA, &gate),
    ] {
        let errors = validate(schema, v);
        assert!(errors.is_empty(), "{} {name} output violates its schema: {errors:?}\n{v:#}", o.incident.id);
    }
}

pub fn schema_errors(schema_text: &str, instance: &serde_json::Value) -> Vec<String> {
    validate(schema_text, instance)
}
