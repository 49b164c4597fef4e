//! The `guardrail` binary's library half: wiring between the pure core, the config loaders,
//! the audit stores and the process (files, environment, clock, exit codes).
//!
//! Everything that reads the outside world lives here or in the adapter crates; the decision
//! itself is `guardrail_core::policy::evaluate`. One [`gate::Evaluation`] is computed once per
//! run from one snapshot of the inputs, and that same snapshot is what gets printed and audited.

// The gate's wiring lives in `guardrail-gate` (shared with `guardrail-server`); re-exported
// here so `guardrail::gate`, `guardrail::inputs`, … keep their paths.
pub use guardrail_gate::{audit_cmd, ci, exit, gate, inputs};
pub mod approve_cmd;
pub mod incident_cmd;
pub mod kb_cmd;
pub mod mcp_cmd;
pub mod remediation;
pub mod render;
