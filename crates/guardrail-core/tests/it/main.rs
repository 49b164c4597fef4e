//! guardrail-core's integration tests, one binary (each test binary links the crate and its
//! dependencies again; one per crate keeps the link count down). A former `tests/<name>.rs`
//! is the module `<name>`: `cargo test -p guardrail-core --test it parity::`.

mod parity;
mod policy_check;
mod policy_scale;
mod policy_serde;
mod properties;
