//! guardrail-prometheus's integration tests, one binary per crate (see guardrail-core's
//! `tests/it/main.rs`). A former `tests/<name>.rs` is the module `<name>`: `client` against a
//! scripted loopback server, `live` against a real Prometheus (`guardrail_prometheus::fixture`).

mod client;
mod live;
