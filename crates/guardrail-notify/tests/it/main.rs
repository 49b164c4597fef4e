//! guardrail-notify's integration tests (one binary; one module per area).
mod es_batch;
mod es_mirror;
mod jira;
mod outbox;
mod slack;
