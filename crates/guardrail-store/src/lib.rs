//! Guardrail's audit stores: one append-only, hash-chained log of records.
//!
//! The chain itself (canonical bytes, hashes, verification) is pure and lives in
//! [`guardrail_core::audit`]; this crate only decides *where* records live and makes appends
//! safe:
//!
//! - [`AuditStore`] is the backend-neutral, synchronous API (the CLI is synchronous; servers call
//!   it through `spawn_blocking`).
//! - [`SqliteStore`] (the default): WAL, `synchronous=FULL`, a 30 s busy timeout and
//!   `BEGIN IMMEDIATE` appends, so any number of threads and processes can append to one file.
//! - [`PostgresStore`]: appends take `LOCK TABLE chain_head IN EXCLUSIVE MODE` inside a
//!   `READ COMMITTED` transaction, so writers on many machines serialise on the server.
//! - [`open_store`] picks a backend from a spec string (`postgres://…`, `sqlite:PATH`, or a path).
//! - [`mirror_jsonl`] / [`JsonlMirror`] optionally copy each record to the seed tool's
//!   `decisions-YYYY-MM-DD.jsonl` layout; [`append_mirrored`] does both and its
//!   [`AppendError`] tells "not in the chain" apart from "in the chain, mirror copy failed".
//! - [`AuditStore::append_claim`] appends a record only if no record of its kind holds the
//!   same claim key, decided under the append's own lock (the governor's execution claim) by
//!   one lookup in a claim index beside the chain (see the `plan` module).
//! - [`AuditStore::append_linked`] appends a record and a second one built from it as sealed
//!   (a decision and the approval request naming it) in one transaction.
//!
//! - [`checkpoint`] signs the chain a store holds as a C2SP checkpoint (the formats are
//!   `guardrail-checkpoint`'s) and compares a signed checkpoint with it, so a rewrite of the
//!   whole database (records and anchor, hashes recomputed) is still found.
//!
//! Every append reads the chain head, seals the draft with [`guardrail_core::audit::seal`],
//! inserts it and moves a separate *head anchor* (`chain_head`: last seq and hash) in the same
//! transaction, and commits durably before returning. The anchor is what lets
//! [`AuditStore::verify`] notice records removed from the end of the chain, which the hash
//! links alone cannot show.

#![warn(missing_docs)]

pub mod checkpoint;
mod group;
mod mirror;
pub mod outbox;
mod pg;
mod pg_tls;
mod plan;
mod prepared;
mod sqlite;
mod wal_vfs;

use std::path::PathBuf;
use std::sync::Arc;

use guardrail_core::audit::{ChainBreak, ChainedRecord, EncodedDraft, GENESIS_HASH, RecordDraft, VerifyReport};
use guardrail_core::error_text::error_chain;

pub use group::{GroupStats, MAX_BATCH, SharedStore, share};
pub use mirror::{JsonlMirror, mirror_jsonl};
pub use outbox::{
    ChannelKind, DELIVERED_RETENTION_MS, DueEntry, OutboxEntry, OutboxMark, OutboxRouter, OutboxState, OutboxStatus,
    OutboxTarget, PRUNE_BATCH, Retry, install_router, install_router_for,
};
pub use pg::{PostgresStore, SchemaNameError, redact_url};
pub use pg_tls::TlsParamError;
pub use plan::{ClaimGuard, GuardedClaim, LinkedClaim, LinkedDraft};
pub use sqlite::{SqliteStore, use_global_allocator};

/// Schema version this build writes and understands, on both backends.
pub const SCHEMA_VERSION: i64 = 1;

/// Everything that can go wrong in a store. Messages name the store (path or redacted URL) and,
/// for damaged data, the record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A SQLite call failed.
    #[error("SQLite {}: {source}", path.display())]
    Sqlite {
        /// Database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A PostgreSQL call failed.
    #[error("PostgreSQL {url}: {}", error_chain(source))]
    Postgres {
        /// Connection URL with any password redacted.
        url: String,
        /// What the client or server said.
        #[source]
        source: postgres::Error,
    },
    /// A stored record cannot be read back, or the chain head is inconsistent.
    #[error("record {seq} is damaged: {reason}")]
    Corrupt {
        /// The record concerned (0 when the store as a whole is concerned).
        seq: i64,
        /// What is wrong.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A store spec, URL or option could not be understood.
    #[error("invalid store spec {spec:?}: {reason}")]
    InvalidSpec {
        /// The spec as given (passwords redacted).
        spec: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A PostgreSQL connection string's TLS parameter (`sslmode`, `sslrootcert`) cannot be used.
    #[error("invalid store spec {spec:?}: {problem}")]
    Tls {
        /// The spec as given (passwords redacted).
        spec: String,
        /// Which parameter, and why.
        #[source]
        problem: pg_tls::TlsParamError,
    },
    /// A PostgreSQL schema name (`?schema=`, `connect_with_schema`) that is not a plain
    /// identifier.
    #[error("invalid store spec {spec:?}: {problem}")]
    SchemaName {
        /// The spec as given (passwords redacted).
        spec: String,
        /// The name and the rule.
        #[source]
        problem: pg::SchemaNameError,
    },
    /// The database is not a Guardrail audit store, or was written by a newer version.
    #[error("{location}: {reason}")]
    Schema {
        /// Path or redacted URL.
        location: String,
        /// What is wrong with the schema.
        reason: String,
    },
    /// A record id matched more than one record (a hash prefix that is too short).
    #[error("record id {id:?} is ambiguous: it matches {matches} or more records; give more hash digits")]
    AmbiguousId {
        /// The id as given.
        id: String,
        /// How many records matched (at least).
        matches: usize,
    },
    /// A record could not be written as asked (e.g. a timestamp that is not RFC 3339).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The group commit this append was part of failed as a whole ([`SharedStore`]): nothing
    /// of it was appended. Every append of that commit gets the same error.
    #[error("{0}")]
    GroupCommit(Arc<StoreError>),
}

/// Filters for [`AuditStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// At most this many records (0 returns none).
    pub limit: usize,
    /// Only records with `seq` strictly below this (for paging backwards).
    pub before_seq: Option<i64>,
    /// Only records of this kind.
    pub kind: Option<String>,
}

/// An append-only, hash-chained audit log.
///
/// All methods are synchronous and may block on I/O or on other writers (appends serialise).
pub trait AuditStore: Send {
    /// Seals `draft` as the record after the current head and stores it. The head read and the
    /// insert are one transaction, committed and flushed to stable storage before this returns,
    /// so concurrent appenders (threads, processes, machines) keep one gap-free chain.
    ///
    /// Refuses (with [`StoreError::Corrupt`]) when the head anchor disagrees with the last
    /// record: appending would otherwise paper over a truncated chain. Rejects (with
    /// [`StoreError::InvalidRecord`]) an empty `kind` or a `recorded_at` that is not RFC 3339.
    fn append(&mut self, draft: RecordDraft) -> Result<ChainedRecord, StoreError>;

    /// Seals `drafts` in order as the records after the current head and stores them in one
    /// transaction with one durable commit (each record's `prev_hash` the previous one's
    /// hash, each record's outbox rows in the same transaction): all of them are appended, or
    /// none. Every draft is checked as [`append`](Self::append) checks it before anything is
    /// written; one invalid draft refuses the whole batch. An empty batch appends nothing.
    fn append_batch(&mut self, drafts: Vec<RecordDraft>) -> Result<Vec<ChainedRecord>, StoreError>;

    /// The record at `seq`, if any.
    fn get(&mut self, seq: i64) -> Result<Option<ChainedRecord>, StoreError>;

    /// The stored hash of the record at `seq` (`None` when there is none), without reading its
    /// body: what a reader that kept a fold checks before reading only the records after it.
    fn hash_at(&mut self, seq: i64) -> Result<Option<String>, StoreError> {
        Ok(self.get(seq)?.map(|r| r.hash))
    }

    /// Looks a record up by what people type: `"42"` (seq), `"42-3fa9c0d1e2b4"` (the
    /// [`ChainedRecord::id`] form; `None` if the hash does not start with that prefix), or a
    /// hash or hash prefix of at least 8 hex digits. A bare number is a seq first; if no such
    /// record exists and it has 8 or more digits it is tried as a hash prefix. Anything else is
    /// `None`; a prefix matching several records is [`StoreError::AmbiguousId`].
    fn find(&mut self, id_or_seq: &str) -> Result<Option<ChainedRecord>, StoreError>;

    /// Records matching `query`, newest first.
    fn list(&mut self, query: &ListQuery) -> Result<Vec<ChainedRecord>, StoreError>;

    /// Every record, in seq order.
    fn all(&mut self) -> Result<Vec<ChainedRecord>, StoreError>;

    /// The records with `seq` above `after`, in seq order: what a reader that keeps state
    /// (an incremental fold) reads instead of [`all`](Self::all).
    fn records_after(&mut self, after: i64) -> Result<Vec<ChainedRecord>, StoreError> {
        let mut all = self.all()?;
        all.retain(|r| r.seq > after);
        Ok(all)
    }

    /// Checks the whole chain ([`guardrail_core::audit::verify_chain`]: seq order, links,
    /// recomputed hashes) and the head anchor (records removed from the end). Damaged rows
    /// (unreadable columns, a body that is not JSON) are reported as breaks, not errors.
    fn verify(&mut self) -> Result<VerifyReport, StoreError>;

    /// [`verify`](Self::verify), and from the same read the stored hash of the record at
    /// `seq` (`None` when there is no such record): what a signed checkpoint of the first
    /// `seq` records is compared with (`guardrail audit verify --checkpoint`). A damaged hash
    /// column reads as `"(unreadable)"`.
    fn verify_at(&mut self, seq: i64) -> Result<(VerifyReport, Option<String>), StoreError>;

    /// Where the records are, for messages: `sqlite:/abs/path.db` or a redacted URL.
    fn describe(&self) -> String;

    /// Appends `draft` only if no record of the same kind already holds `claim` in its body's
    /// `claim` field, deciding inside the append's own transaction (after the write lock, so
    /// of any number of concurrent claimants exactly one wins). `draft.body["claim"]` must be
    /// `claim` (else [`StoreError::InvalidRecord`]). Returns [`Claim::Won`] with the new
    /// record, or [`Claim::Held`] with the record that already holds it (nothing appended).
    fn append_claim(&mut self, draft: RecordDraft, claim: &str) -> Result<Claim, StoreError>;

    /// Appends `first`, then the draft `then` builds from `first` as sealed (its seq, hash and
    /// [`ChainedRecord::id`] known), consecutively (`second.seq == first.seq + 1`,
    /// `second.prev_hash == first.hash`) in one transaction with one durable commit: both are
    /// appended, or neither. Both drafts are checked as [`append`](Self::append) checks them;
    /// an invalid second draft (or a `then` that panics) refuses the pair with
    /// [`StoreError::InvalidRecord`]. `then` runs under the store's write lock (on a
    /// [`SharedStore`], on its writer thread): keep it cheap and free of I/O.
    fn append_linked(
        &mut self,
        first: RecordDraft,
        then: LinkedDraft,
    ) -> Result<(ChainedRecord, ChainedRecord), StoreError>;

    /// Appends one record whose body is given as its canonical text ([`EncodedDraft`]). Stores
    /// that can, seal and keep the text as given without building a value of it, and return the
    /// record with `body` [`serde_json::Value::Null`] (the caller holds the body: decoding
    /// megabytes back is what this saves). The default, and every case a value is needed for
    /// (an outbox router reads the body; a body that may hold a `claim` feeds the claim index),
    /// reads the text back and appends the value, returning it as `body`.
    fn append_encoded(&mut self, draft: EncodedDraft) -> Result<ChainedRecord, StoreError> {
        let draft =
            draft.into_draft().map_err(|e| StoreError::InvalidRecord(format!("the encoded body is not JSON: {e}")))?;
        self.append(draft)
    }

    /// Keeps the text of large inputs apart from the records that name them, each stored once
    /// under its SHA-256 (`sha256` must be the lowercase hex digest of `text`; a text already
    /// held is not written again), durably before this returns, so that a record appended next
    /// may name them instead of carrying them (the deploy gate's `input_content.kept_apart`).
    /// The record's own hash chain covers the digests; [`AuditStore::kept_input`] reads a text
    /// back. `Ok(false)`: this store does not keep inputs apart (the default; the caller puts
    /// the text in the record).
    fn keep_inputs(&mut self, inputs: &[KeptInput<'_>]) -> Result<bool, StoreError> {
        let _ = inputs;
        Ok(false)
    }

    /// The text kept under `sha256` by [`AuditStore::keep_inputs`], if any.
    fn kept_input(&mut self, sha256: &str) -> Result<Option<String>, StoreError> {
        let _ = sha256;
        Ok(None)
    }

    /// Appends `first`, then the claim `then` builds from `first` as sealed (the claim record's
    /// draft and its key, e.g. an approval and the execution claim keyed by the approval's id)
    /// in one transaction with one durable commit: what [`append`](Self::append) followed by
    /// [`append_claim`](Self::append_claim) would do, with one commit instead of two. `first` is
    /// appended either way; the claim is decided right after it as `append_claim` decides it
    /// (appended, consecutively, when it wins; [`Claim::Held`] with the holder otherwise). An
    /// invalid claim draft (as `append_claim` checks it), a `then` that panics, or a damaged
    /// record deciding the claim refuses both. `then` runs under the write lock, as
    /// [`append_linked`](Self::append_linked)'s does.
    fn append_then_claim(
        &mut self,
        first: RecordDraft,
        then: LinkedClaim,
    ) -> Result<(ChainedRecord, Claim), StoreError>;

    /// Appends `first`, then — when `guard` decides so under the write lock — a claim built from
    /// `first` as sealed, in one transaction with one durable commit. The guard is given the
    /// records of its kinds appended after `guard.after` (the end of the chain the caller decided
    /// on; those of this transaction before `first` included), so a condition the caller checked
    /// on its view (e.g. "this approval is the first to answer its request") is checked again on
    /// the chain as it is when `first` is sealed, and the claim is taken only then: of racing
    /// callers, only one whose condition holds can leave a claim. `first` is appended either way
    /// (the answer says `None` when the guard took no claim); a claim is decided as
    /// [`append_claim`](Self::append_claim) decides it. A guard's view that goes past the chain's
    /// end, a damaged record after it, an invalid claim draft (or one not of `guard.claim_kind`),
    /// a `then` that panics, or a damaged record deciding the claim refuses both.
    fn append_guarded_claim(
        &mut self,
        first: RecordDraft,
        guard: ClaimGuard,
    ) -> Result<(ChainedRecord, Option<Claim>), StoreError>;

    /// Sets the [`OutboxRouter`] this store's appends use (`None`: the process's, see
    /// [`install_router`]). Every append then inserts the record's outbox rows in its own
    /// transaction: the record is committed with its rows or not at all.
    fn set_outbox_router(&mut self, router: Option<Arc<dyn OutboxRouter>>);

    /// Pending outbox rows due at `now_ms` (next attempt reached, no live lease, no earlier
    /// undelivered row of the same channel and ordering key), oldest first, with their records.
    fn outbox_due(&mut self, now_ms: i64, limit: usize) -> Result<Vec<DueEntry>, StoreError>;

    /// Takes the delivery lease on a pending row until `until_ms`, unless another deliverer
    /// holds a live one (`false`). Decided by one conditional update, so of two processes
    /// exactly one gets it.
    fn outbox_lease(&mut self, id: i64, now_ms: i64, until_ms: i64) -> Result<bool, StoreError>;

    /// Marks a row delivered at `now_ms`, keeping what the destination named.
    fn outbox_mark_delivered(&mut self, id: i64, reference: Option<&str>, now_ms: i64) -> Result<(), StoreError>;

    /// Records a failed attempt (`attempts` made so far, the error) and when to retry, or that
    /// the row is given up on ([`OutboxState::Failed`]).
    fn outbox_mark_failed(&mut self, id: i64, attempts: u32, retry: Retry, error: &str) -> Result<(), StoreError>;

    /// [`AuditStore::outbox_lease`] for several rows at once; returns the ids leased (the
    /// others are held by another deliverer, or no longer pending). Each row's lease is decided
    /// by the same conditional update, so exclusivity is per row; the backends take all of them
    /// in one transaction (one commit, where one row at a time was one commit each). This
    /// default leases one by one.
    fn outbox_lease_many(&mut self, ids: &[i64], now_ms: i64, until_ms: i64) -> Result<Vec<i64>, StoreError> {
        let mut leased = Vec::with_capacity(ids.len());
        for &id in ids {
            if self.outbox_lease(id, now_ms, until_ms)? {
                leased.push(id);
            }
        }
        Ok(leased)
    }

    /// Records each row's result ([`OutboxMark`]) as [`AuditStore::outbox_mark_delivered`] /
    /// [`AuditStore::outbox_mark_failed`] would; the backends do all of them in one transaction
    /// (all recorded or none). This default marks one by one.
    fn outbox_mark_many(&mut self, marks: &[OutboxMark]) -> Result<(), StoreError> {
        for m in marks {
            match m {
                OutboxMark::Delivered { id, reference, now_ms } => {
                    self.outbox_mark_delivered(*id, reference.as_deref(), *now_ms)?;
                }
                OutboxMark::Failed { id, attempts, retry, error } => {
                    self.outbox_mark_failed(*id, *attempts, retry.clone(), error)?;
                }
            }
        }
        Ok(())
    }

    /// Puts every failed row back to pending, due at `now_ms` with its attempts reset; returns
    /// how many.
    fn outbox_retry_failed(&mut self, now_ms: i64) -> Result<u64, StoreError>;

    /// Counts by state and the oldest pending row's time.
    fn outbox_status(&mut self) -> Result<OutboxStatus, StoreError>;

    /// Outbox rows, newest first: of one record (`record_seq`), in one state, at most `limit`.
    fn outbox_entries(
        &mut self,
        record_seq: Option<i64>,
        state: Option<OutboxState>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// The reference of the first delivered row of `channel` and `ordering_key` that has one
    /// (the incident's Jira key, its Slack thread).
    fn outbox_reference(&mut self, channel: ChannelKind, ordering_key: &str) -> Result<Option<String>, StoreError>;

    /// Deletes at most `limit` delivered rows delivered before `delivered_before_ms` (a
    /// deliverer calls it now and then with [`outbox::DELIVERED_RETENTION_MS`] and a small
    /// limit, so no call holds the write lock long); returns how many. Pending and failed rows
    /// are never deleted, nor the first delivered row of a channel and ordering key that has a
    /// reference: it is what [`outbox_reference`](Self::outbox_reference) answers (the
    /// incident's Jira issue, its Slack thread) for as long as the incident gets notes.
    fn outbox_prune_delivered(&mut self, delivered_before_ms: i64, limit: usize) -> Result<u64, StoreError>;
}

/// What [`AuditStore::append_claim`] came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This draft was appended and holds the claim.
    Won(ChainedRecord),
    /// Another record already holds the claim; nothing was appended.
    Held(ChainedRecord),
}

/// The one record of a one-draft batch.
pub(crate) fn one(mut records: Vec<ChainedRecord>) -> Result<ChainedRecord, StoreError> {
    match (records.pop(), records.is_empty()) {
        (Some(r), true) => Ok(r),
        _ => Err(StoreError::Corrupt {
            seq: 0,
            reason: "one record was appended but the store returned another number".into(),
        }),
    }
}

/// The outcome of the one unit of a one-unit transaction.
pub(crate) fn single(outcomes: Vec<plan::Outcome>) -> Result<plan::Outcome, StoreError> {
    let mut outcomes = outcomes.into_iter();
    match (outcomes.next(), outcomes.next()) {
        (Some(o), None) => Ok(o),
        _ => Err(StoreError::Corrupt {
            seq: 0,
            reason: "one append was made but the store answered another number".into(),
        }),
    }
}

/// Checks every draft and serialises it (before any lock is taken).
pub(crate) fn prepare(drafts: Vec<RecordDraft>) -> Result<Vec<prepared::Prepared>, StoreError> {
    drafts.iter().try_for_each(validate_draft)?;
    drafts.into_iter().map(prepared::Prepared::new).collect()
}

/// Checks a claim draft before any lock is taken.
pub(crate) fn validate_claim(draft: &RecordDraft, claim: &str) -> Result<(), StoreError> {
    validate_draft(draft)?;
    if claim.trim().is_empty() {
        return Err(StoreError::InvalidRecord("claim is empty".into()));
    }
    if draft.body.get("claim").and_then(serde_json::Value::as_str) != Some(claim) {
        return Err(StoreError::InvalidRecord(format!("the claim record's body.claim is not {claim:?}")));
    }
    Ok(())
}

/// Why a record could not be appended *and mirrored*: the two outcomes mean opposite things
/// and must never be reported alike.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Nothing was appended: the record is not in the chain (nothing may act on it).
    #[error("audit store {store}: the record was NOT appended: {source}")]
    NotInChain {
        /// The store (path or redacted URL).
        store: String,
        /// Why.
        #[source]
        source: Box<StoreError>,
    },
    /// The record **is** in the chain (as `record`); only its copy in the JSONL mirror failed.
    #[error(
        "record {} IS in the audit chain ({store}), but its JSONL mirror copy in {} could not be written: {source}",
        record.id(), dir.display()
    )]
    Mirror {
        /// The record, as appended.
        record: Box<ChainedRecord>,
        /// The store (path or redacted URL).
        store: String,
        /// The mirror directory.
        dir: PathBuf,
        /// Why the mirror write failed.
        #[source]
        source: Box<StoreError>,
    },
}

impl AppendError {
    /// The record when it is in the chain despite the error (a mirror failure).
    pub fn in_chain(&self) -> Option<&ChainedRecord> {
        match self {
            AppendError::NotInChain { .. } => None,
            AppendError::Mirror { record, .. } => Some(record),
        }
    }
}

/// Appends `draft` to `store`, then copies it to the JSONL mirror `mirror` when given.
pub fn append_mirrored(
    store: &mut dyn AuditStore,
    mirror: Option<&std::path::Path>,
    draft: RecordDraft,
) -> Result<ChainedRecord, AppendError> {
    let rec = store
        .append(draft)
        .map_err(|source| AppendError::NotInChain { store: store.describe(), source: Box::new(source) })?;
    mirror_appended(store, mirror, rec)
}

/// [`AuditStore::append_claim`], then the mirror copy of a won claim.
pub fn append_claim_mirrored(
    store: &mut dyn AuditStore,
    mirror: Option<&std::path::Path>,
    draft: RecordDraft,
    claim: &str,
) -> Result<Claim, AppendError> {
    match store.append_claim(draft, claim) {
        Ok(Claim::Won(rec)) => mirror_appended(store, mirror, rec).map(Claim::Won),
        Ok(held) => Ok(held),
        Err(source) => Err(AppendError::NotInChain { store: store.describe(), source: Box::new(source) }),
    }
}

/// [`AuditStore::append_linked`], then both records copied to the JSONL mirror `mirror` when
/// given (the first, then the second). [`AppendError::Mirror`] means both records ARE in the
/// chain; its `record` is the first one whose copy failed (the other is still copied).
pub fn append_linked_mirrored(
    store: &mut dyn AuditStore,
    mirror: Option<&std::path::Path>,
    first: RecordDraft,
    then: LinkedDraft,
) -> Result<(ChainedRecord, ChainedRecord), AppendError> {
    let (a, b) = store
        .append_linked(first, then)
        .map_err(|source| AppendError::NotInChain { store: store.describe(), source: Box::new(source) })?;
    let first_copy = mirror_appended(store, mirror, a);
    let second_copy = mirror_appended(store, mirror, b);
    match (first_copy, second_copy) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// [`AuditStore::append_then_claim`], then the mirror copies of what was appended (the first
/// record, and the claim record when it won). [`AppendError::Mirror`]: everything appended IS in
/// the chain (the claim's outcome is then not returned: read it from the chain).
pub fn append_then_claim_mirrored(
    store: &mut dyn AuditStore,
    mirror: Option<&std::path::Path>,
    first: RecordDraft,
    then: LinkedClaim,
) -> Result<(ChainedRecord, Claim), AppendError> {
    let (a, claim) = store
        .append_then_claim(first, then)
        .map_err(|source| AppendError::NotInChain { store: store.describe(), source: Box::new(source) })?;
    let first_copy = mirror_appended(store, mirror, a);
    let claim = match claim {
        Claim::Won(rec) => mirror_appended(store, mirror, rec).map(Claim::Won),
        held => Ok(held),
    };
    match (first_copy, claim) {
        (Ok(a), Ok(c)) => Ok((a, c)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// [`AuditStore::append_guarded_claim`], then the mirror copies of what was appended (the first
/// record, and the claim record when it won). [`AppendError::Mirror`]: everything appended IS in
/// the chain (the claim's outcome is then not returned: read it from the chain).
pub fn append_guarded_claim_mirrored(
    store: &mut dyn AuditStore,
    mirror: Option<&std::path::Path>,
    first: RecordDraft,
    guard: ClaimGuard,
) -> Result<(ChainedRecord, Option<Claim>), AppendError> {
    let (a, claim) = store
        .append_guarded_claim(first, guard)
        .map_err(|source| AppendError::NotInChain { store: store.describe(), source: Box::new(source) })?;
    let first_copy = mirror_appended(store, mirror, a);
    let claim = match claim {
        Some(Claim::Won(rec)) => mirror_appended(store, mirror, rec).map(|r| Some(Claim::Won(r))),
        other => Ok(other),
    };
    match (first_copy, claim) {
        (Ok(a), Ok(c)) => Ok((a, c)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

fn mirror_appended(
    store: &dyn AuditStore,
    mirror: Option<&std::path::Path>,
    rec: ChainedRecord,
) -> Result<ChainedRecord, AppendError> {
    if let Some(dir) = mirror
        && let Err(source) = mirror_jsonl(dir, &rec)
    {
        return Err(AppendError::Mirror {
            record: Box::new(rec),
            store: store.describe(),
            dir: dir.to_path_buf(),
            source: Box::new(source),
        });
    }
    Ok(rec)
}

/// Opens the store a spec names: `postgres://…` / `postgresql://…` → [`PostgresStore`]
/// (an optional `schema=NAME` query parameter selects a schema); `sqlite:PATH`,
/// `sqlite://PATH` or a plain path → [`SqliteStore`].
///
/// While this process [`share`]s the store under exactly this spec (a `guardrail serve`), the
/// store returned is a handle on that [`SharedStore`]: appends go through its one writer
/// (group commit), reads through its pool of connections.
pub fn open_store(spec: &str) -> Result<Box<dyn AuditStore>, StoreError> {
    if let Some(shared) = group::shared(spec) {
        return Ok(Box::new(shared.handle()));
    }
    Ok(match open_backend(spec)? {
        Backend::Sqlite(s) => Box::new(s),
        Backend::Postgres(p) => p,
    })
}

/// An input's text for [`AuditStore::keep_inputs`], and its SHA-256 (lowercase hex).
#[derive(Debug, Clone, Copy)]
pub struct KeptInput<'a> {
    /// The digest the record names it by.
    pub sha256: &'a str,
    /// The text.
    pub text: &'a str,
}

/// A store opened on its own connection, by backend.
pub(crate) enum Backend {
    Sqlite(SqliteStore),
    Postgres(Box<PostgresStore>),
}

impl Backend {
    pub(crate) fn store(&mut self) -> &mut dyn AuditStore {
        match self {
            Backend::Sqlite(s) => s,
            Backend::Postgres(p) => p.as_mut(),
        }
    }

    /// One append transaction for `work` (see [`plan`]): every unit's outcome, or the error
    /// that failed the transaction as a whole (nothing of it is in the chain).
    pub(crate) fn append_tx(&mut self, work: Vec<plan::Work>) -> Result<Vec<plan::Outcome>, StoreError> {
        match self {
            Backend::Sqlite(s) => s.append_tx(work),
            Backend::Postgres(p) => p.append_tx(work),
        }
    }
}

/// [`open_store`] without the shared stores: a connection of its own.
pub(crate) fn open_backend(spec: &str) -> Result<Backend, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidSpec { spec: redact_url(spec), reason: reason.to_string() };
    if spec.trim().is_empty() {
        return Err(invalid("empty store spec"));
    }
    let lower = spec.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Ok(Backend::Postgres(Box::new(PostgresStore::connect(spec)?)));
    }
    if lower.starts_with("sqlite:") {
        // `sqlite:///abs/path` and `sqlite://rel` are common spellings; `sqlite:path` is ours.
        let rest = &spec["sqlite:".len()..];
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(invalid("no path after `sqlite:`"));
        }
        return Ok(Backend::Sqlite(SqliteStore::open(path)?));
    }
    if let Some((scheme, _)) = spec.split_once("://")
        && !scheme.is_empty()
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(invalid(&format!(
            "unsupported scheme `{scheme}://` (use postgres://…, sqlite:PATH or a file path)"
        )));
    }
    Ok(Backend::Sqlite(SqliteStore::open(spec)?))
}

/// What a record id typed by a person means (see [`AuditStore::find`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdQuery {
    /// A bare number; `hash_fallback` when it is also long enough to be a hash prefix.
    Seq { seq: i64, hash_fallback: Option<String> },
    /// `SEQ-HEXPREFIX`.
    SeqWithPrefix { seq: i64, prefix: String },
    /// A lower-case hash prefix of 8..=64 hex digits.
    HashPrefix(String),
    /// Not an id at all.
    Invalid,
}

/// Shortest hash prefix accepted on its own: 8 hex digits (32 bits) makes accidental
/// collisions rare in any realistic log, and `find` reports the ones that happen.
pub(crate) const MIN_HASH_PREFIX: usize = 8;

pub(crate) fn parse_id(input: &str) -> IdQuery {
    let s = input.trim();
    let is_hex = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_hexdigit());
    let prefix_ok = |t: &str| is_hex(t) && (MIN_HASH_PREFIX..=64).contains(&t.len());
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        let fallback = prefix_ok(s).then(|| s.to_string());
        return match s.parse::<i64>() {
            Ok(seq) => IdQuery::Seq { seq, hash_fallback: fallback },
            Err(_) => fallback.map_or(IdQuery::Invalid, IdQuery::HashPrefix),
        };
    }
    if let Some((seq, prefix)) = s.split_once('-') {
        if !seq.is_empty() && seq.chars().all(|c| c.is_ascii_digit()) && is_hex(prefix) && prefix.len() <= 64 {
            return match seq.parse::<i64>() {
                Ok(seq) => IdQuery::SeqWithPrefix { seq, prefix: prefix.to_ascii_lowercase() },
                Err(_) => IdQuery::Invalid,
            };
        }
        return IdQuery::Invalid;
    }
    if prefix_ok(s) {
        return IdQuery::HashPrefix(s.to_ascii_lowercase());
    }
    IdQuery::Invalid
}

/// The exclusive upper bound of the hash range sharing `prefix`: `'g'` sorts after every
/// lower-case hex digit (byte order), so `prefix <= hash < prefix + "g"` is a prefix match that
/// can use the unique index on `hash`.
pub(crate) fn prefix_upper_bound(prefix: &str) -> String {
    format!("{prefix}g")
}

/// The shared `find` logic; `get` and `by_prefix` are the backend's lookups (the latter returns
/// at most two matches, enough to detect ambiguity).
pub(crate) fn find_with<S>(
    store: &mut S,
    input: &str,
    get: impl Fn(&mut S, i64) -> Result<Option<ChainedRecord>, StoreError>,
    by_prefix: impl Fn(&mut S, &str) -> Result<Vec<ChainedRecord>, StoreError>,
) -> Result<Option<ChainedRecord>, StoreError> {
    let unique = |mut found: Vec<ChainedRecord>| -> Result<Option<ChainedRecord>, StoreError> {
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            n => Err(StoreError::AmbiguousId { id: input.trim().to_string(), matches: n }),
        }
    };
    match parse_id(input) {
        IdQuery::Seq { seq, hash_fallback } => match get(store, seq)? {
            Some(r) => Ok(Some(r)),
            None => match hash_fallback {
                Some(prefix) => unique(by_prefix(store, &prefix)?),
                None => Ok(None),
            },
        },
        IdQuery::SeqWithPrefix { seq, prefix } => {
            Ok(get(store, seq)?.filter(|r| r.hash.to_ascii_lowercase().starts_with(&prefix)))
        }
        IdQuery::HashPrefix(prefix) => unique(by_prefix(store, &prefix)?),
        IdQuery::Invalid => Ok(None),
    }
}

/// One stored column as read from the database: its text, or why it is not text (wrong type,
/// NULL) so `verify` can report it instead of failing.
pub(crate) type Cell = Result<String, BadCell>;

/// Why a stored column is not text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum BadCell {
    #[error("is NULL")]
    Null,
    #[error("is not valid UTF-8 text")]
    NotUtf8,
    #[error("holds the integer {0} instead of text")]
    Integer(i64),
    #[error("holds the number {0} instead of text")]
    Real(f64),
    #[error("holds a blob instead of text")]
    Blob,
}

/// A row decoded into a record. `problems` lists what was wrong with the stored columns; the
/// record then carries best-effort placeholders (a non-JSON body becomes a JSON string of its
/// text), which `verify_chain` will also flag because the hash no longer matches.
pub(crate) struct Decoded {
    pub record: ChainedRecord,
    pub problems: Vec<String>,
}

pub(crate) fn decode_row(seq: i64, kind: Cell, recorded_at: Cell, body: Cell, prev_hash: Cell, hash: Cell) -> Decoded {
    let mut problems = Vec::new();
    let mut take = |name: &str, cell: Cell| match cell {
        Ok(s) => s,
        Err(why) => {
            problems.push(format!("column {name} {why}"));
            String::new()
        }
    };
    let kind = take("kind", kind);
    let recorded_at = take("recorded_at", recorded_at);
    let body_text = take("body", body);
    let prev_hash = take("prev_hash", prev_hash);
    let hash = take("hash", hash);
    let body = match serde_json::from_str::<serde_json::Value>(&body_text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("body is not valid JSON ({e})"));
            serde_json::Value::String(body_text)
        }
    };
    Decoded { record: ChainedRecord { seq, kind, recorded_at, body, prev_hash, hash }, problems }
}

impl Decoded {
    /// The record, or [`StoreError::Corrupt`] if any column was damaged.
    pub(crate) fn strict(self) -> Result<ChainedRecord, StoreError> {
        if self.problems.is_empty() {
            Ok(self.record)
        } else {
            Err(StoreError::Corrupt {
                seq: self.record.seq,
                reason: format!("{} (run `guardrail audit verify`)", self.problems.join("; ")),
            })
        }
    }
}

/// The head anchor as stored: last seq and hash (`0` and [`GENESIS_HASH`] for an empty chain).
pub(crate) type Anchor = (i64, String);

/// Builds the verify report: `verify_chain` over every row, plus a break per damaged row and
/// one if the head anchor disagrees with the last record.
pub(crate) fn build_report(rows: Vec<Decoded>, anchor: Option<Anchor>) -> VerifyReport {
    let mut damaged = Vec::new();
    let mut records = Vec::with_capacity(rows.len());
    for d in rows {
        for p in d.problems {
            damaged.push(ChainBreak { seq: d.record.seq, problem: format!("stored record is damaged: {p}") });
        }
        records.push(d.record);
    }
    let mut report = guardrail_core::audit::verify_chain(&records);
    report.breaks.extend(damaged);
    if let Some(b) = anchor_break(anchor.as_ref(), records.last()) {
        report.breaks.push(b);
    }
    // Keep breaks in chain order so reports read top to bottom; the sort is stable, so several
    // problems at one record keep their order.
    report.breaks.sort_by_key(|b| b.seq);
    report
}

/// The stored hash of the record at `seq` among `rows`, for [`AuditStore::verify_at`].
pub(crate) fn hash_at(rows: &[Decoded], seq: i64) -> Option<String> {
    let row = rows.iter().find(|d| d.record.seq == seq)?;
    Some(if row.record.hash.is_empty() { "(unreadable)".to_string() } else { row.record.hash.clone() })
}

/// Compares the head anchor with the last stored record; `None` when they agree.
pub(crate) fn anchor_break(anchor: Option<&Anchor>, last: Option<&ChainedRecord>) -> Option<ChainBreak> {
    let last_seq = last.map_or(0, |r| r.seq);
    let last_hash = last.map_or(GENESIS_HASH, |r| r.hash.as_str());
    let Some((a_seq, a_hash)) = anchor else {
        return Some(ChainBreak {
            seq: last_seq,
            problem: "the chain head anchor (table chain_head) is missing, so truncation cannot be ruled out".into(),
        });
    };
    if *a_seq == last_seq && a_hash == last_hash {
        return None;
    }
    let problem = if *a_seq > last_seq {
        format!(
            "the chain head anchor says the chain ends at record {a_seq} (hash {a_hash}) but the last stored record \
             is {last_seq}: records were removed from the end of the chain"
        )
    } else if *a_seq < last_seq {
        format!(
            "the chain head anchor says the chain ends at record {a_seq} but records up to {last_seq} are stored: \
             records were added without going through the store"
        )
    } else {
        format!(
            "the chain head anchor records hash {a_hash} for record {a_seq} but the stored record has hash \
             {last_hash}: the last record was replaced"
        )
    };
    Some(ChainBreak { seq: (*a_seq).max(last_seq), problem })
}

/// The chain's last record as an append needs it: to seal after it and to check it against the
/// anchor, only its seq and hash matter. When the anchor's hash is found (by the unique hash
/// index) at the anchor's seq and that is the highest seq stored, the anchor IS the last record,
/// and reading its body — megabytes for a large gate decision, parsed for nothing — is skipped.
/// The other fields are empty: this value is never stored or returned.
pub(crate) fn tail(seq: i64, hash: &str) -> ChainedRecord {
    ChainedRecord {
        seq,
        kind: String::new(),
        recorded_at: String::new(),
        body: serde_json::Value::Null,
        prev_hash: String::new(),
        hash: hash.to_string(),
    }
}

/// Whether the anchor names the last record: `max_seq` the highest seq stored (`None`: no
/// record), `seq_of_hash` the seq of the record whose hash is the anchor's (`None`: none).
/// `Some(tail)` when it does (`Some(None)` for an empty chain at genesis); `None` when the full
/// last record must be read (to report how they disagree).
pub(crate) fn anchored_tail(
    anchor: Option<&Anchor>,
    max_seq: Option<i64>,
    seq_of_hash: Option<i64>,
) -> Option<Option<ChainedRecord>> {
    let (a_seq, a_hash) = anchor?;
    match max_seq {
        None if *a_seq == 0 && a_hash == GENESIS_HASH => Some(None),
        Some(m) if m == *a_seq && seq_of_hash == Some(m) => Some(Some(tail(m, a_hash))),
        _ => None,
    }
}

/// Append's guard: the record to seal after must be the one the anchor names.
pub(crate) fn check_head(anchor: Option<&Anchor>, last: Option<&ChainedRecord>) -> Result<(), StoreError> {
    match anchor_break(anchor, last) {
        None => Ok(()),
        Some(b) => Err(StoreError::Corrupt {
            seq: b.seq,
            reason: format!("{}; refusing to append (run `guardrail audit verify`)", b.problem),
        }),
    }
}

/// Rejects drafts that would put something permanent but unusable in the chain: an empty kind,
/// or a `recorded_at` that is not an RFC 3339 timestamp (the mirror derives its file date from
/// it, and readers sort and filter on it).
pub(crate) fn validate_draft(draft: &RecordDraft) -> Result<(), StoreError> {
    if draft.kind.trim().is_empty() {
        return Err(StoreError::InvalidRecord("kind is empty".into()));
    }
    if let Err(e) = draft.recorded_at.parse::<jiff::Timestamp>() {
        return Err(StoreError::InvalidRecord(format!(
            "recorded_at {:?} is not an RFC 3339 timestamp ({e})",
            draft.recorded_at
        )));
    }
    Ok(())
}

/// The JSON text stored for a body. serde_json's map is sorted in this workspace, so this is
/// exactly the body's canonical form, and parsing it back gives an equal value (floats
/// included, with the `float_roundtrip` feature this crate enables).
pub(crate) fn body_text(body: &serde_json::Value) -> Result<String, StoreError> {
    serde_json::to_string(body).map_err(|e| StoreError::InvalidRecord(format!("body cannot be serialised: {e}")))
}

/// `usize` limit → SQL `LIMIT` value (SQLite and PostgreSQL both take a signed 64-bit value).
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_forms() {
        assert_eq!(parse_id("42"), IdQuery::Seq { seq: 42, hash_fallback: None });
        assert_eq!(parse_id(" 7 "), IdQuery::Seq { seq: 7, hash_fallback: None });
        assert_eq!(parse_id("12345678"), IdQuery::Seq { seq: 12345678, hash_fallback: Some("12345678".into()) });
        assert_eq!(parse_id("42-3FA9c0d1e2b4"), IdQuery::SeqWithPrefix { seq: 42, prefix: "3fa9c0d1e2b4".into() });
        assert_eq!(parse_id("3fa9c0d1"), IdQuery::HashPrefix("3fa9c0d1".into()));
        assert_eq!(parse_id("3fa9c0d"), IdQuery::Invalid);
        assert_eq!(parse_id(&"a".repeat(65)), IdQuery::Invalid);
        assert_eq!(parse_id(""), IdQuery::Invalid);
        assert_eq!(parse_id("42-"), IdQuery::Invalid);
        assert_eq!(parse_id("-5"), IdQuery::Invalid);
        assert_eq!(parse_id("42-xyz"), IdQuery::Invalid);
        assert_eq!(parse_id("hello"), IdQuery::Invalid);
        // Too big for a seq but a fine (all-digit) hash prefix.
        assert_eq!(parse_id("99999999999999999999"), IdQuery::HashPrefix("99999999999999999999".into()));
    }

    #[test]
    fn find_reports_ambiguous_prefixes() {
        let rec = |seq: i64, hash: &str| ChainedRecord {
            seq,
            kind: "k".into(),
            recorded_at: "t".into(),
            body: serde_json::Value::Null,
            prev_hash: GENESIS_HASH.into(),
            hash: hash.into(),
        };
        let records = vec![rec(1, "abcdef0011"), rec(2, "abcdef0022")];
        let get = |r: &mut Vec<ChainedRecord>, seq: i64| Ok(r.iter().find(|x| x.seq == seq).cloned());
        let by_prefix = |r: &mut Vec<ChainedRecord>, p: &str| {
            Ok(r.iter().filter(|x| x.hash.starts_with(p)).take(2).cloned().collect::<Vec<_>>())
        };
        let mut store = records;
        match find_with(&mut store, "abcdef00", get, by_prefix) {
            Err(StoreError::AmbiguousId { matches: 2, .. }) => {}
            other => panic!("expected AmbiguousId, got {other:?}"),
        }
        let one = find_with(&mut store, "abcdef001", get, by_prefix).unwrap();
        assert_eq!(one.map(|r| r.seq), Some(1));
    }

    #[test]
    fn anchor_comparison() {
        assert!(anchor_break(Some(&(0, GENESIS_HASH.into())), None).is_none());
        assert!(anchor_break(None, None).is_some());
        let b = anchor_break(Some(&(3, "abc".into())), None).map(|b| b.seq);
        assert_eq!(b, Some(3));
    }

    #[test]
    fn error_messages_carry_context() {
        let e = StoreError::Corrupt { seq: 4, reason: "body is not valid JSON".into() };
        assert_eq!(e.to_string(), "record 4 is damaged: body is not valid JSON");
        let e = StoreError::InvalidSpec { spec: "x".into(), reason: "empty".into() };
        assert!(e.to_string().contains("\"x\""));
    }
}
