//! Delivery of the audit store's notification outbox (`guardrail_store::outbox`): due rows
//! are leased, handed to their [`Channel`], and marked delivered, retried or failed.
//!
//! - **Never in the decision path.** Rows are written by the append of the record they
//!   describe; delivery runs afterwards (`guardrail serve` in the background, the CLI best
//!   effort with a short deadline). A slow, failing or rate-limiting Slack or Jira delays a
//!   notification; it never blocks, allows or executes anything, and never drops a row.
//! - **Retries.** Attempt *n* (1-based) that fails with a retryable error is tried again after
//!   `base · 2^(n-1)`, at most `cap` — deterministic, no jitter, so the schedule can be read
//!   off the row. A `Retry-After` from the destination is honoured instead (capped at `cap`)
//!   and does not use up an attempt. After `max_attempts` attempts, or on a permanent error
//!   (bad token, refused payload), the row is `failed`: visible in `guardrail notify status`,
//!   `/metrics` and the dashboard, and put back by `guardrail notify deliver --retry-failed`.
//! - **Order.** The store hands out a row only when every earlier row of the same channel and
//!   incident is delivered, so a Jira comment waits for the issue, a Slack reply for the
//!   thread; a `failed` row holds the incident's later rows of that channel until re-delivered.
//! - **One deliverer per row.** Each row is leased ([`AuditStore::outbox_lease`]) before it is
//!   sent; a process that loses the lease skips it.
//! - **Batches.** A destination that takes several rows at once ([`Channel::batch_size`] > 1:
//!   the audit mirror, one `_bulk` call) gets its due rows without an ordering key in batches:
//!   one lease transaction for the batch ([`AuditStore::outbox_lease_many`], each row still
//!   leased by its own conditional update), one call, one transaction marking every row by its
//!   own result ([`AuditStore::outbox_mark_many`]) — the same per-row states, retries and
//!   backoff as one by one. Ordered rows (Slack, Jira) stay one by one.
//! - **No destination, no attempt.** A row whose channel this process has not configured (a
//!   CLI run without `SLACK_BOT_TOKEN`) is left pending for one that has.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guardrail_core::audit::{ChainedRecord, RecordDraft};
use guardrail_governor::record::RecordKind;
use guardrail_store::{AuditStore, Claim, DueEntry, ListQuery, OutboxMark, Retry, StoreError};

use crate::channel::{Channel, ChannelKind, Delivered, DeliveryContext, DeliveryError, Notification};

/// How often, and how long, a row is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before the row is `failed`.
    pub max_attempts: u32,
    /// The wait after the first failed attempt.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy::from(&guardrail_config::NotifyConfig::default())
    }
}

impl From<&guardrail_config::NotifyConfig> for RetryPolicy {
    fn from(c: &guardrail_config::NotifyConfig) -> RetryPolicy {
        RetryPolicy {
            max_attempts: c.max_attempts,
            base: Duration::from_secs(c.backoff_base_seconds),
            cap: Duration::from_secs(c.backoff_cap_seconds),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed attempt: `base · 2^(attempts-1)`, at most `cap`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doubling = attempts.saturating_sub(1).min(32);
        self.base.saturating_mul(1u32 << doubling.min(31)).min(self.cap)
    }
}

/// What one delivery pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Rows delivered.
    pub delivered: u32,
    /// Rows that failed an attempt and will be retried.
    pub retrying: u32,
    /// Rows given up on in this pass.
    pub failed: u32,
    /// Due rows this process has no destination for (left pending).
    pub no_channel: u32,
    /// Due rows another deliverer holds the lease on.
    pub leased_elsewhere: u32,
    /// Records appended about deliveries (the Jira issue key).
    pub noted: u32,
    /// One line per failed attempt or problem (never a credential).
    pub problems: Vec<String>,
    /// The pass stopped at its deadline with rows still due.
    pub stopped_at_deadline: bool,
    /// The pass made its most rounds and rows may still be due (call again at once).
    pub more_due: bool,
    /// Delivered rows older than the retention deleted after the pass
    /// ([`guardrail_store::DELIVERED_RETENTION_MS`]; at most [`guardrail_store::PRUNE_BATCH`]
    /// per pass, only after a pass that delivered something).
    pub pruned: u64,
}

/// The delivery loop's configuration: the destinations this process can reach and the policy.
#[derive(Clone)]
pub struct Deliverer {
    channels: BTreeMap<ChannelKind, Arc<dyn Channel>>,
    policy: RetryPolicy,
    lease: Duration,
    dashboard_url: Option<String>,
    jira_browse: Option<String>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("channels", &self.channels.keys().collect::<Vec<_>>())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Rows looked at per store query.
const BATCH: usize = 50;

/// Passes over the due rows in one call (each pass can release the next row of an incident).
const MAX_ROUNDS: usize = 32;

impl Deliverer {
    /// A deliverer over `channels` (one per kind; a later one of the same kind replaces it).
    pub fn new(channels: Vec<Arc<dyn Channel>>, policy: RetryPolicy) -> Deliverer {
        Deliverer {
            channels: channels.into_iter().map(|c| (c.kind(), c)).collect(),
            policy,
            // Longer than any one delivery can take (a few calls with their own timeouts), so a
            // live deliverer never loses its lease; a dead one's rows come back after it.
            lease: Duration::from_secs(300),
            dashboard_url: None,
            jira_browse: None,
        }
    }

    /// Adds (or replaces) the destination of `channel`'s kind.
    pub fn with_channel(mut self, channel: Arc<dyn Channel>) -> Deliverer {
        self.channels.insert(channel.kind(), channel);
        self
    }

    /// Links to the dashboard in messages.
    pub fn with_dashboard_url(mut self, url: Option<String>) -> Deliverer {
        self.dashboard_url = url;
        self
    }

    /// The Jira site, for browse links to the incident's issue (`{base}/browse/{key}`).
    pub fn with_jira_browse(mut self, base: Option<String>) -> Deliverer {
        self.jira_browse = base.map(|b| b.trim_end_matches('/').to_string());
        self
    }

    /// A lease length other than the default 5 minutes.
    pub fn with_lease(mut self, lease: Duration) -> Deliverer {
        self.lease = lease;
        self
    }

    /// The retry policy.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The destinations configured.
    pub fn kinds(&self) -> Vec<ChannelKind> {
        self.channels.keys().copied().collect()
    }

    /// Delivers the rows due now, until none is left or `deadline` passes (checked between
    /// rows). `now` is read for every row. Store errors end the pass (the rows stay as they
    /// were; a lease taken runs out by itself).
    ///
    /// A pass that delivered something then prunes one batch of delivered rows older than the
    /// retention, so the outbox does not grow with every record ever mirrored (best effort: a
    /// failed prune is a problem line, the deliveries stand).
    pub fn deliver_due(
        &self,
        store: &mut dyn AuditStore,
        now: &dyn Fn() -> jiff::Timestamp,
        deadline: Option<Instant>,
    ) -> Result<PassReport, StoreError> {
        let mut report = self.deliver_rounds(store, now, deadline)?;
        if report.delivered > 0 {
            let cutoff = now().as_millisecond().saturating_sub(guardrail_store::DELIVERED_RETENTION_MS);
            match store.outbox_prune_delivered(cutoff, guardrail_store::PRUNE_BATCH) {
                Ok(n) => report.pruned = n,
                Err(e) => report.problems.push(format!("pruning delivered outbox rows: {e}")),
            }
        }
        Ok(report)
    }

    fn deliver_rounds(
        &self,
        store: &mut dyn AuditStore,
        now: &dyn Fn() -> jiff::Timestamp,
        deadline: Option<Instant>,
    ) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        let mut skipped: std::collections::BTreeSet<i64> = std::collections::BTreeSet::new();
        // A query returns at least one whole batch of the largest batching destination.
        let fetch = self.channels.values().map(|c| c.batch_size()).max().unwrap_or(1).max(BATCH);
        for _ in 0..MAX_ROUNDS {
            let due = store.outbox_due(now().as_millisecond(), fetch + skipped.len())?;
            let due: Vec<DueEntry> = due.into_iter().filter(|d| !skipped.contains(&d.entry.id)).collect();
            if due.is_empty() {
                return Ok(report);
            }
            let mut batches: BTreeMap<ChannelKind, Vec<DueEntry>> = BTreeMap::new();
            let mut single = Vec::new();
            for d in due {
                match self.channels.get(&d.entry.channel) {
                    Some(c) if c.batch_size() > 1 && d.entry.ordering_key.is_none() => {
                        batches.entry(d.entry.channel).or_default().push(d);
                    }
                    _ => single.push(d),
                }
            }
            for (kind, rows) in batches {
                let Some(channel) = self.channels.get(&kind).cloned() else { continue };
                let size = channel.batch_size();
                let mut rows = rows.into_iter().peekable();
                while rows.peek().is_some() {
                    if deadline.is_some_and(|t| Instant::now() >= t) {
                        report.stopped_at_deadline = true;
                        return Ok(report);
                    }
                    let chunk: Vec<DueEntry> = rows.by_ref().take(size).collect();
                    skipped.extend(self.deliver_many(store, channel.as_ref(), chunk, now, &mut report)?);
                }
            }
            for d in single {
                if deadline.is_some_and(|t| Instant::now() >= t) {
                    report.stopped_at_deadline = true;
                    return Ok(report);
                }
                let id = d.entry.id;
                if !self.deliver_one(store, d, now, &mut report)? {
                    skipped.insert(id);
                }
            }
        }
        report.more_due = true;
        Ok(report)
    }

    /// One batch of one channel's rows: leased together, delivered in one call, marked together;
    /// returns the rows not attempted (leased elsewhere).
    fn deliver_many(
        &self,
        store: &mut dyn AuditStore,
        channel: &dyn Channel,
        rows: Vec<DueEntry>,
        now: &dyn Fn() -> jiff::Timestamp,
        report: &mut PassReport,
    ) -> Result<Vec<i64>, StoreError> {
        let t = now().as_millisecond();
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let ids: Vec<i64> = rows.iter().map(|d| d.entry.id).collect();
        let leased: std::collections::BTreeSet<i64> =
            store.outbox_lease_many(&ids, t, t.saturating_add(lease_ms))?.into_iter().collect();
        let mut not_attempted = Vec::new();
        let mut batch = Vec::with_capacity(leased.len());
        for DueEntry { entry, record } in rows {
            if !leased.contains(&entry.id) {
                report.leased_elsewhere += 1;
                not_attempted.push(entry.id);
                continue;
            }
            batch.push(Notification { outbox_id: entry.id, channel: entry.channel, record, attempts: entry.attempts });
        }
        if batch.is_empty() {
            return Ok(not_attempted);
        }
        // Rows without an ordering key: no incident, so nothing earlier deliveries left.
        let context = DeliveryContext { dashboard_url: self.dashboard_url.clone(), ..DeliveryContext::default() };
        let mut outcomes = channel.deliver_batch(&batch, &context);
        // A destination that answered for fewer rows has not said what became of the rest:
        // they are retried, never taken as delivered.
        outcomes.truncate(batch.len());
        while outcomes.len() < batch.len() {
            outcomes.push(Err(DeliveryError::Retryable {
                reason: format!("{}: no result for this row in its batch", channel.kind()),
                retry_after: None,
            }));
        }
        let at = now();
        let mut marks = Vec::with_capacity(batch.len());
        for (n, outcome) in batch.iter().zip(outcomes) {
            let mark = match outcome {
                Ok(delivered) => match self.note(store, channel, n, &context, &delivered, at) {
                    Ok(reference) => {
                        report.delivered += 1;
                        OutboxMark::Delivered { id: n.outbox_id, reference, now_ms: at.as_millisecond() }
                    }
                    Err(problem) => {
                        report.problems.push(problem.clone());
                        let e = DeliveryError::Retryable { reason: problem, retry_after: None };
                        self.failure(n, e, at, report)
                    }
                },
                Err(e) => self.failure(n, e, at, report),
            };
            marks.push(mark);
        }
        store.outbox_mark_many(&marks)?;
        Ok(not_attempted)
    }

    /// One row; `false` when it was not attempted (no channel, leased elsewhere).
    fn deliver_one(
        &self,
        store: &mut dyn AuditStore,
        due: DueEntry,
        now: &dyn Fn() -> jiff::Timestamp,
        report: &mut PassReport,
    ) -> Result<bool, StoreError> {
        let DueEntry { entry, record } = due;
        let Some(channel) = self.channels.get(&entry.channel) else {
            report.no_channel += 1;
            return Ok(false);
        };
        let t = now().as_millisecond();
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        if !store.outbox_lease(entry.id, t, t.saturating_add(lease_ms))? {
            report.leased_elsewhere += 1;
            return Ok(false);
        }
        let context = self.context(store, entry.channel, entry.ordering_key.as_deref(), &record)?;
        let n = Notification { outbox_id: entry.id, channel: entry.channel, record, attempts: entry.attempts };
        let outcome = channel.deliver(&n, &context);
        let t = now();
        match outcome {
            Ok(delivered) => {
                let reference = match self.note(store, channel.as_ref(), &n, &context, &delivered, t) {
                    Ok(r) => r,
                    Err(problem) => {
                        // The destination has it but the chain does not say so yet: retry; the
                        // next attempt finds it (the Jira issue by its label) instead of
                        // creating it again.
                        report.problems.push(problem.clone());
                        self.failed(
                            store,
                            &n,
                            DeliveryError::Retryable { reason: problem, retry_after: None },
                            t,
                            report,
                        )?;
                        return Ok(true);
                    }
                };
                store.outbox_mark_delivered(n.outbox_id, reference.as_deref(), t.as_millisecond())?;
                report.delivered += 1;
            }
            Err(e) => self.failed(store, &n, e, t, report)?,
        }
        Ok(true)
    }

    /// Appends the channel's chain note, if any; the reference to keep (the held one when
    /// another delivery recorded it first).
    fn note(
        &self,
        store: &mut dyn AuditStore,
        channel: &dyn Channel,
        n: &Notification,
        ctx: &DeliveryContext,
        delivered: &Delivered,
        at: jiff::Timestamp,
    ) -> Result<Option<String>, String> {
        let Some(note) = channel.chain_note(n, ctx, delivered) else { return Ok(delivered.reference.clone()) };
        let draft = RecordDraft { kind: note.kind.clone(), recorded_at: at.to_string(), body: note.body };
        match store.append_claim(draft, &note.claim) {
            Ok(Claim::Won(_)) => Ok(delivered.reference.clone()),
            Ok(Claim::Held(holder)) => {
                let held = holder.body.get("issue_key").and_then(|v| v.as_str()).map(str::to_string);
                if held.is_some() && held != delivered.reference {
                    return Err(format!(
                        "outbox row {}: {} already holds {} (record {}) but this delivery got {:?}",
                        n.outbox_id,
                        note.kind,
                        note.claim,
                        holder.id(),
                        delivered.reference
                    ));
                }
                Ok(delivered.reference.clone())
            }
            Err(e) => Err(format!("outbox row {}: the {} record could not be appended: {e}", n.outbox_id, note.kind)),
        }
    }

    fn failed(
        &self,
        store: &mut dyn AuditStore,
        n: &Notification,
        e: DeliveryError,
        at: jiff::Timestamp,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        if let OutboxMark::Failed { id, attempts, retry, error } = self.failure(n, e, at, report) {
            store.outbox_mark_failed(id, attempts, retry, &error)?;
        }
        Ok(())
    }

    /// What a failed attempt leaves on its row (counted and described in `report`).
    fn failure(&self, n: &Notification, e: DeliveryError, at: jiff::Timestamp, report: &mut PassReport) -> OutboxMark {
        let t = at.as_millisecond();
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let (attempts, retry) = match &e {
            // The destination said when: that is not a failed attempt, only a later one.
            DeliveryError::Retryable { retry_after: Some(wait), .. } => {
                (n.attempts, Retry::At(t.saturating_add(ms((*wait).min(self.policy.cap)))))
            }
            DeliveryError::Retryable { retry_after: None, .. } => {
                let attempts = n.attempts.saturating_add(1);
                if attempts >= self.policy.max_attempts {
                    (attempts, Retry::GiveUp)
                } else {
                    (attempts, Retry::At(t.saturating_add(ms(self.policy.backoff(attempts)))))
                }
            }
            DeliveryError::Permanent { .. } => (n.attempts.saturating_add(1), Retry::GiveUp),
        };
        let line = format!(
            "outbox row {} ({} for record {}): {e}{}",
            n.outbox_id,
            n.channel,
            n.record.id(),
            if retry == Retry::GiveUp { " — given up (guardrail notify deliver --retry-failed)" } else { "" }
        );
        match retry {
            Retry::GiveUp => report.failed += 1,
            Retry::At(_) => report.retrying += 1,
        }
        report.problems.push(line);
        OutboxMark::Failed { id: n.outbox_id, attempts, retry, error: e.reason().to_string() }
    }

    /// What earlier deliveries of the same incident left.
    fn context(
        &self,
        store: &mut dyn AuditStore,
        _channel: ChannelKind,
        key: Option<&str>,
        record: &ChainedRecord,
    ) -> Result<DeliveryContext, StoreError> {
        let mut ctx = DeliveryContext { dashboard_url: self.dashboard_url.clone(), ..DeliveryContext::default() };
        let Some(key) = key else { return Ok(ctx) };
        ctx.slack_thread = store
            .outbox_reference(ChannelKind::Slack, key)?
            .and_then(|r| r.split_once('/').map(|(c, ts)| (c.to_string(), ts.to_string())));
        ctx.jira_key = store.outbox_reference(ChannelKind::Jira, key)?;
        ctx.jira_url = match (&self.jira_browse, &ctx.jira_key) {
            (Some(base), Some(k)) => Some(format!("{base}/browse/{k}")),
            _ => None,
        };
        ctx.decision = latest_decision(store, key, record)?;
        Ok(ctx)
    }
}

/// The incident's newest `remediation_decision` at or before `record`.
fn latest_decision(
    store: &mut dyn AuditStore,
    incident: &str,
    record: &ChainedRecord,
) -> Result<Option<ChainedRecord>, StoreError> {
    let kind = RecordKind::RemediationDecision.as_str();
    if record.kind == kind {
        return Ok(Some(record.clone()));
    }
    let mut before = Some(record.seq);
    loop {
        let page = store.list(&ListQuery { limit: 200, before_seq: before, kind: Some(kind.to_string()) })?;
        if page.is_empty() {
            return Ok(None);
        }
        before = page.last().map(|r| r.seq);
        if let Some(found) =
            page.into_iter().find(|r| r.body.get("incident_id").and_then(|v| v.as_str()) == Some(incident))
        {
            return Ok(Some(found));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy { max_attempts: 8, base: Duration::from_secs(30), cap: Duration::from_secs(3600) };
        let waits: Vec<u64> = (1..=9).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(p.backoff(1000).as_secs(), 3600);
    }
}
