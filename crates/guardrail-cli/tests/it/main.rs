//! The CLI's (package `guardrail`) integration tests, one binary per crate (see
//! guardrail-core's `tests/it/main.rs`). A former `tests/<name>.rs` is the module `<name>`:
//! `cargo test -p guardrail --test it mcp::`. `common` runs the built `guardrail` binary in a
//! scratch directory; `tls_server` is a loopback HTTPS server for the TLS tests.

mod audit;
mod audit_es;
mod audit_list;
mod common;
mod cost_sources;
mod explainer;
mod fail_closed;
mod freezes;
mod governor;
mod kb_config;
mod kb_scale;
mod lint;
mod mcp;
mod mirror_failures;
mod notify;
mod parity;
mod planner;
mod prometheus;
mod serve;
mod slo_specs;
mod tls_server;
