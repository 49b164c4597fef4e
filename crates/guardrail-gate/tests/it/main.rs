//! guardrail-gate's integration tests: one binary (see ARCHITECTURE.md, "Where tests live").

mod golden;
mod policy_cache;
mod prepared;
mod records;
