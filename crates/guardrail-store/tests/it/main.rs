//! guardrail-store's integration tests, one binary per crate (see guardrail-core's
//! `tests/it/main.rs`). A former `tests/<name>.rs` is the module `<name>`; `common` holds the
//! backend-neutral checks that `sqlite` and `postgres` run against their backend.

mod claims;
mod common;
mod encoded;
mod group;
mod mirror;
mod outbox;
mod postgres;
mod sqlite;
mod wal_vfs;
