//! The notification outbox: a side table of the audit store, beside the chain and not part of
//! it (no hash covers it, `verify` never reads it).
//!
//! Why in the store: a notification describes a record, and must exist exactly when the record
//! does. So the append that inserts the record inserts its outbox rows in the same transaction
//! (SQLite `BEGIN IMMEDIATE`, PostgreSQL under the `chain_head` lock): either both are
//! committed or neither is. Which rows a record gets is decided by an [`OutboxRouter`] — set on
//! a store ([`crate::AuditStore::set_outbox_router`]) or for the whole process
//! ([`install_router`], what `guardrail serve` and the CLI do from the governor config) — so
//! every append path (the governor's `StoreLog`, the deploy gate's `decide_and_record`, the
//! server's `ServerLog`) enqueues without knowing about notifications. With no router, no row
//! is written and the table is not even created: a store without Slack or Jira is unchanged.
//!
//! Delivery (`guardrail-notify`'s `outbox` module) reads due rows ([`crate::AuditStore::outbox_due`]),
//! takes a lease on one so two deliverers never send the same row at once
//! ([`crate::AuditStore::outbox_lease`]), and marks it delivered or failed. Rows with the same
//! channel and ordering key (the incident) are delivered in order: a row is not due while an
//! earlier one of its channel and key is undelivered (so a Jira comment waits for the create,
//! and a failed create holds the incident's later rows until it is re-delivered).
//!
//! Times are Unix milliseconds passed in by the caller: the store reads no clock.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use guardrail_core::audit::{ChainedRecord, RecordDraft};

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    /// The incident's Slack message and thread.
    Slack,
    /// The incident's Jira issue.
    Jira,
    /// A deploy decision's Slack message (BLOCK and DELAY).
    SlackDeploy,
    /// The record's copy in the Elasticsearch audit mirror (every record, when configured).
    Elasticsearch,
}

impl ChannelKind {
    /// Every channel.
    pub const ALL: [ChannelKind; 4] =
        [ChannelKind::Slack, ChannelKind::Jira, ChannelKind::SlackDeploy, ChannelKind::Elasticsearch];

    /// The name stored in the outbox's `channel` column (and shown by `guardrail notify status`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Jira => "jira",
            ChannelKind::SlackDeploy => "slack_deploy",
            ChannelKind::Elasticsearch => "elasticsearch",
        }
    }

    /// The channel named `name`.
    pub fn parse(name: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One outbox row a record gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxTarget {
    /// Destination.
    pub channel: ChannelKind,
    /// Rows with the same channel and key are delivered in record order (the incident id);
    /// `None`: no order with any other row.
    pub ordering_key: Option<String>,
}

/// Decides which outbox rows a record gets. Pure: it sees only the draft (kind and body).
pub trait OutboxRouter: Send + Sync {
    /// The rows for `draft` (empty: none).
    fn route(&self, draft: &RecordDraft) -> Vec<OutboxTarget>;
}

type Routers = BTreeMap<Option<String>, Arc<dyn OutboxRouter>>;

/// The process's routers: per store (by [`crate::AuditStore::describe`]) and a default (key
/// `None`).
static PROCESS_ROUTERS: RwLock<Routers> = RwLock::new(BTreeMap::new());

fn routers_mut(f: impl FnOnce(&mut Routers)) {
    // A poisoned lock only means a panic elsewhere while holding it; the map is still whole.
    let mut map = PROCESS_ROUTERS.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut map);
}

/// Sets (or with `None` clears) the router every store of this process uses when neither the
/// store nor [`install_router_for`] sets one. The CLI calls it once, from the governor config,
/// before opening a store; tests set routers on their stores instead.
pub fn install_router(router: Option<Arc<dyn OutboxRouter>>) {
    routers_mut(|m| match router {
        Some(r) => drop(m.insert(None, r)),
        None => drop(m.remove(&None)),
    });
}

/// Sets (or clears) the router of every connection to one store, named as its
/// [`crate::AuditStore::describe`] says: what `guardrail serve` does, so that each server (and
/// each test server in one process) routes its own store's records by its own config.
pub fn install_router_for(store: &str, router: Option<Arc<dyn OutboxRouter>>) {
    routers_mut(|m| match router {
        Some(r) => drop(m.insert(Some(store.to_string()), r)),
        None => drop(m.remove(&Some(store.to_string()))),
    });
}

/// The router in force for a store: its own, else the one installed for it, else the process's.
pub(crate) fn router_for(own: Option<&Arc<dyn OutboxRouter>>, store: &str) -> Option<Arc<dyn OutboxRouter>> {
    if let Some(r) = own {
        return Some(r.clone());
    }
    let map = PROCESS_ROUTERS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    if map.is_empty() {
        return None;
    }
    map.get(&Some(store.to_string())).or_else(|| map.get(&None)).cloned()
}

/// The rows `draft` gets under `router` (deduplicated by channel: the table holds one row per
/// record and channel).
pub(crate) fn targets(router: Option<&Arc<dyn OutboxRouter>>, store: &str, draft: &RecordDraft) -> Vec<OutboxTarget> {
    let Some(router) = router_for(router, store) else { return Vec::new() };
    let mut out: Vec<OutboxTarget> = Vec::new();
    for t in router.route(draft) {
        if !out.iter().any(|o| o.channel == t.channel) {
            out.push(t);
        }
    }
    out
}

/// A row's delivery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxState {
    /// Not delivered yet; retried at `next_attempt_ms`.
    Pending,
    /// Delivered (`reference` names what the destination created).
    Delivered,
    /// Gave up after the last attempt or a permanent error; `guardrail notify deliver
    /// --retry-failed` puts it back to pending.
    Failed,
}

impl OutboxState {
    /// The name stored in the `state` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<OutboxState> {
        [OutboxState::Pending, OutboxState::Delivered, OutboxState::Failed].into_iter().find(|x| x.as_str() == s)
    }
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Row id (increasing in append order).
    pub id: i64,
    /// The record it describes.
    pub record_seq: i64,
    /// Destination.
    pub channel: ChannelKind,
    /// Ordering key (the incident), if any.
    pub ordering_key: Option<String>,
    /// Delivery state.
    pub state: OutboxState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the record was written (its `recorded_at`), Unix ms.
    pub created_ms: i64,
    /// Not before this (Unix ms).
    pub next_attempt_ms: i64,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// What the destination named (a Jira key, a Slack `channel/ts`), once delivered.
    pub reference: Option<String>,
    /// When it was delivered, Unix ms.
    pub delivered_ms: Option<i64>,
}

/// A due row and the record it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct DueEntry {
    /// The row.
    pub entry: OutboxEntry,
    /// The record, as chained.
    pub record: ChainedRecord,
}

/// Counts by state, for `guardrail notify status`, `/metrics` and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStatus {
    /// Rows not delivered yet.
    pub pending: u64,
    /// Rows given up on.
    pub failed: u64,
    /// Rows delivered.
    pub delivered: u64,
    /// The oldest pending row's record time (Unix ms), if any.
    pub oldest_pending_ms: Option<i64>,
}

/// A record's `recorded_at` as Unix ms (validated by `validate_draft` before this is called).
pub(crate) fn recorded_ms(recorded_at: &str) -> i64 {
    recorded_at.parse::<jiff::Timestamp>().map_or(0, |t| t.as_millisecond())
}

/// How a failed attempt is recorded ([`crate::AuditStore::outbox_mark_failed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time (Unix ms).
    At(i64),
    /// Give up: the row becomes [`OutboxState::Failed`].
    GiveUp,
}

/// How long delivered rows are kept before [`crate::AuditStore::outbox_prune_delivered`] may
/// delete them: 7 days, time enough to look at what was sent (`guardrail notify status`,
/// `outbox_entries`) while the table stays the size of a week of records, not of the chain.
pub const DELIVERED_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// Rows one [`crate::AuditStore::outbox_prune_delivered`] call deletes at most, as a deliverer
/// calls it: small, so the delete holds the write lock about as long as an append does.
pub const PRUNE_BATCH: usize = 500;

/// The delivered rows [`crate::AuditStore::outbox_prune_delivered`] may delete (`?1`/`$1` the
/// cutoff): every delivered row but the first one with a reference of its channel and ordering
/// key. Without an ORDER BY, so the (state, next_attempt_ms) index gives the oldest rows first
/// and the scan stops at the limit.
pub(crate) const PRUNABLE: &str = "SELECT o.id FROM outbox o WHERE o.state = 'delivered' AND o.delivered_ms < {cutoff} \
     AND (o.reference IS NULL OR o.ordering_key IS NULL OR EXISTS (SELECT 1 FROM outbox p WHERE p.channel = o.channel \
     AND p.ordering_key = o.ordering_key AND p.id < o.id AND p.state = 'delivered' AND p.reference IS NOT NULL)) \
     LIMIT {limit}";

/// Column list shared by both backends' reads.
pub(crate) const OUTBOX_COLUMNS: &str = "id, record_seq, channel, ordering_key, state, attempts, created_ms, \
     next_attempt_ms, last_error, reference, delivered_ms";

/// Builds an entry from its columns, refusing values this build does not know (fail closed: an
/// unknown channel or state is not delivered as something else).
#[allow(clippy::too_many_arguments)]
pub(crate) fn entry_from(
    id: i64,
    record_seq: i64,
    channel: String,
    ordering_key: Option<String>,
    state: String,
    attempts: i64,
    created_ms: i64,
    next_attempt_ms: i64,
    last_error: Option<String>,
    reference: Option<String>,
    delivered_ms: Option<i64>,
) -> Result<OutboxEntry, crate::StoreError> {
    let bad = |what: String| crate::StoreError::Corrupt { seq: record_seq, reason: format!("outbox row {id}: {what}") };
    Ok(OutboxEntry {
        id,
        record_seq,
        channel: ChannelKind::parse(&channel).ok_or_else(|| bad(format!("unknown channel {channel:?}")))?,
        ordering_key,
        state: OutboxState::parse(&state).ok_or_else(|| bad(format!("unknown state {state:?}")))?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        created_ms,
        next_attempt_ms,
        last_error,
        reference,
        delivered_ms,
    })
}

/// One row's result in a batch ([`crate::AuditStore::outbox_mark_many`]): what
/// [`crate::AuditStore::outbox_mark_delivered`] or [`crate::AuditStore::outbox_mark_failed`]
/// would record for it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxMark {
    /// Delivered at `now_ms`, keeping what the destination named.
    Delivered {
        /// Row id.
        id: i64,
        /// What the destination named.
        reference: Option<String>,
        /// When, Unix ms.
        now_ms: i64,
    },
    /// A failed attempt: attempts so far, when to retry (or give up), why.
    Failed {
        /// Row id.
        id: i64,
        /// Attempts made so far.
        attempts: u32,
        /// Retry time, or give up.
        retry: Retry,
        /// The error.
        error: String,
    },
}

impl OutboxMark {
    /// The row it marks.
    pub fn id(&self) -> i64 {
        match self {
            OutboxMark::Delivered { id, .. } | OutboxMark::Failed { id, .. } => *id,
        }
    }
}

/// The state and next attempt a failed attempt leaves (both backends' mark-failed updates).
pub(crate) fn failed_columns(retry: &Retry) -> (OutboxState, Option<i64>) {
    match retry {
        Retry::At(ms) => (OutboxState::Pending, Some(*ms)),
        Retry::GiveUp => (OutboxState::Failed, None),
    }
}
