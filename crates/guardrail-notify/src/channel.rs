//! The one trait every notification destination implements, and what it delivers.
//! (Skeleton: the outbox owner refines these types; destinations implement [`Channel`].)

use std::time::Duration;

use guardrail_core::audit::ChainedRecord;

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    /// The incident's Slack message and thread.
    Slack,
    /// The incident's Jira issue.
    Jira,
    /// A deploy decision's Slack message (BLOCK and DELAY).
    SlackDeploy,
}

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

/// A destination.
pub trait Channel: Send + Sync {
    /// Which destination this is.
    fn kind(&self) -> ChannelKind;
    /// Delivers one notification.
    fn deliver(&self, notification: &Notification, context: &DeliveryContext) -> Result<Delivered, DeliveryError>;
}
