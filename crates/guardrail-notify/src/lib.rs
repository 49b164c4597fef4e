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
//! client and ADF; `outbox` the delivery loop over the store's outbox (retries, backoff).

pub mod channel;
pub mod blocks;
pub mod slack;
pub mod slack_verify;
