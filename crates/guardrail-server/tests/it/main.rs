//! guardrail-server's integration tests, one binary per crate (see guardrail-core's
//! `tests/it/main.rs`). A former `tests/<name>.rs` is the module `<name>`:
//! `cargo test -p guardrail-server --test it browser::`. `common` holds the scratch
//! directory, tokens and the spawned server the modules share.

mod browser;
mod browser_approval;
mod cdp;
mod common;
mod explainer;
mod governor;
mod http;
mod keepalive;
mod knowledge_es;
mod openapi;
mod outbox;
mod planner;
mod prometheus;
mod recording;
mod slack;
