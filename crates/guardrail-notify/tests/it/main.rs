//! guardrail-notify's integration tests (one binary; one module per area).
mod jira;
mod outbox;
mod slack;
