//! guardrail-mcp's integration tests, one binary per crate (see guardrail-core's
//! `tests/it/main.rs`). The former `tests/http.rs` is the module `http`:
//! `cargo test -p guardrail-mcp --test it http::`.

mod http;
