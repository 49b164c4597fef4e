//! Humans where they work: Slack and Jira adapters and the delivery of the notification outbox.
//!
//! Nothing here decides. A notification describes a record that is already in the audit chain;
//! delivering it (or failing to) never blocks, allows or executes anything. Inbound Slack
//! requests are verified here (`slack_verify`) and then handed to the same approval function
//! as the CLI and the HTTP API.
//!
//! Modules (one job each): `channel` the [`channel::Channel`] trait every destination implements
//! and the typed notification it delivers; `slack` the Slack Web API client and Block Kit
//! messages; `slack_verify` request signatures and replay refusal; `jira` the Jira Cloud REST v3
//! client, `adf` the Atlassian Document Format it writes; `outbox` the delivery loop over the
//! store's outbox (retries, backoff, leases, order); `routing` which records get outbox rows
//! and the process's destinations, from the governor config and the environment; `es_mirror` the
//! Elasticsearch audit mirror (an outbox destination) and `guardrail audit export --to es`.

pub mod adf;
pub mod blocks;
pub mod channel;
pub mod es_mirror;
pub mod jira;
pub mod outbox;
pub mod routing;
pub mod slack;
pub mod slack_verify;
