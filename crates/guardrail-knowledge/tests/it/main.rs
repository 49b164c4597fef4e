//! guardrail-knowledge's integration tests, one binary per crate (see guardrail-core's
//! `tests/it/main.rs`). A former `tests/<name>.rs` is the module `<name>`.

mod conformance;
mod elastic;
mod store;
