//! The one trait every notification destination implements, and what it delivers.
//!
//! The outbox loop (`crate::outbox`) hands each destination one [`Notification`] (an outbox
//! row and the chained record it describes) with a [`DeliveryContext`] (what earlier
//! deliveries of the same incident left: the Slack thread, the Jira key; the incident's
//! decision record). A destination returns [`Delivered`] or a [`DeliveryError`] saying whether
//! a retry can help; it never decides anything.

use std::time::Duration;

use guardrail_core::audit::ChainedRecord;

/// Where a notification goes: the store's outbox names it (`slack`, `jira`, `slack_deploy`).
pub use guardrail_store::ChannelKind;

/// One notification: an outbox entry and the record it describes.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The outbox entry's id.
    pub outbox_id: i64,
    /// Destination.
    pub channel: ChannelKind,
    /// The record, as chained.
    pub record: ChainedRecord,
    /// Delivery attempts so far.
    pub attempts: u32,
}

/// What earlier deliveries left that this one needs (the Slack thread, the Jira key).
#[derive(Debug, Clone, Default)]
pub struct DeliveryContext {
    /// The incident's first Slack message, `channel` and `ts`, once posted.
    pub slack_thread: Option<(String, String)>,
    /// The incident's Jira issue key, once created.
    pub jira_key: Option<String>,
    /// The dashboard's base URL, for links.
    pub dashboard_url: Option<String>,
    /// The incident's Jira issue as a browser link (`{JIRA_URL}/browse/{key}`), once created.
    pub jira_url: Option<String>,
    /// The incident's newest `remediation_decision` at or before the record delivered.
    pub decision: Option<ChainedRecord>,
}

/// A delivery that worked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// What the destination named (Slack `channel/ts`, a Jira key), kept with the entry.
    pub reference: Option<String>,
}

/// A delivery that did not work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying (timeouts, 5xx, 429 with its `Retry-After`).
    #[error("{reason} (will retry)")]
    Retryable {
        /// Why.
        reason: String,
        /// The destination's own wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Not worth retrying (bad token, channel not found, a payload refused).
    #[error("{reason}")]
    Permanent {
        /// Why.
        reason: String,
    },
}

/// A record a delivery asks to be appended to the audit chain (e.g. the Jira issue key), as a
/// claim so that an incident gets at most one ([`guardrail_store::AuditStore::append_claim`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ChainNote {
    /// Record kind.
    pub kind: String,
    /// Record body (its `claim` field is `claim`).
    pub body: serde_json::Value,
    /// The claim key.
    pub claim: String,
}

impl DeliveryError {
    /// Why, without the retry note of `Display`.
    pub fn reason(&self) -> &str {
        match self {
            DeliveryError::Retryable { reason, .. } | DeliveryError::Permanent { reason } => reason,
        }
    }
}

/// A destination.
pub trait Channel: Send + Sync {
    /// Which destination this is.
    fn kind(&self) -> ChannelKind;
    /// Delivers one notification.
    fn deliver(&self, notification: &Notification, context: &DeliveryContext) -> Result<Delivered, DeliveryError>;
    /// Rows this destination takes in one [`Channel::deliver_batch`] call (1: one by one, the
    /// default). Only rows without an ordering key are batched: ordered rows (an incident's
    /// Slack thread, its Jira issue) need what the previous one left, so they stay one by one.
    fn batch_size(&self) -> usize {
        1
    }

    /// Delivers several notifications at once (the audit mirror: one `_bulk` call), one result
    /// per notification in the same order. The default delivers them one by one.
    fn deliver_batch(
        &self,
        notifications: &[Notification],
        context: &DeliveryContext,
    ) -> Vec<Result<Delivered, DeliveryError>> {
        notifications.iter().map(|n| self.deliver(n, context)).collect()
    }

    /// After a delivery: a record to append to the chain about it (the Jira channel's
    /// `jira_issue_linked`), if any. The loop appends it before marking the row delivered.
    fn chain_note(
        &self,
        notification: &Notification,
        context: &DeliveryContext,
        delivered: &Delivered,
    ) -> Option<ChainNote> {
        let _ = (notification, context, delivered);
        None
    }
}
