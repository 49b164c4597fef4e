//! The original governor's output contracts (JSON Schema draft 2020-12), copied verbatim into
//! `contracts/` so the build does not depend on anything outside the repository.
//!
//! Every object in them declares `additionalProperties: false`: Guardrail's extra detail lives
//! next to the contract objects (`PlanResult`, `StressAssessment`, `GateDecision`), never inside.

/// `plan_output.schema.json`.
pub const PLAN_OUTPUT_SCHEMA: &str = include_str!("../contracts/plan_output.schema.json");
/// `stress_output.schema.json`.
pub const STRESS_OUTPUT_SCHEMA: &str = include_str!("../contracts/stress_output.schema.json");
/// `gate_output.schema.json`.
pub const GATE_OUTPUT_SCHEMA: &str = include_str!("../contracts/gate_output.schema.json");
