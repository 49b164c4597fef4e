//! guardrail-config's integration tests, one binary per crate (see guardrail-core's
//! `tests/it/main.rs`). A former `tests/<name>.rs` is the module `<name>`:
//! `cargo test -p guardrail-config --test it policies::`. The inputs stay in `tests/fixtures`.

mod data;
mod fixtures;
mod no_panic;
mod policies;
mod policy_scale;
mod real_specs;
mod source;
