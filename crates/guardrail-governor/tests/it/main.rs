//! guardrail-governor's integration tests, one binary per crate (see guardrail-core's
//! `tests/it/main.rs`). A former `tests/<name>.rs` is the module `<name>`; `common` holds the
//! sample data, the fixed `now` and the contracts' schema checks they share. Fixtures stay in
//! `tests/fixtures`.

mod adversarial;
mod agent_loop;
mod common;
mod contracts;
mod execute;
mod guardrail_tools;
mod injection;
mod pipeline;
mod vectors;
