//! Where the pipeline's records go: the [`AuditLog`] trait and [`StoreLog`], its plain
//! implementation over an open store and an optional JSONL mirror.

use std::path::PathBuf;

use guardrail_core::audit::{ChainedRecord, RecordDraft};
use guardrail_store::{AppendError, AuditStore, Claim};
use serde_json::Value;

use crate::queue::{IncidentState, TrailError};

/// Builds the body of the second record of [`AuditLog::append_linked`] from the first as
/// sealed. It may run on the store's writer thread, under the append lock: it only fills in
/// what it captured.
pub type LinkedBody = Box<dyn FnOnce(&ChainedRecord) -> Value + Send>;

/// The guard of [`AuditLog::append_guarded`]: the store's [`guardrail_store::ClaimGuard`] with
/// the claim given as its body and key (the log stamps and kinds it).
pub struct GuardedBody {
    /// The seq of the last record the caller decided on.
    pub after: i64,
    /// The kinds of the records after it that `then` is given.
    pub kinds: Vec<String>,
    /// The claim record's kind.
    pub claim_kind: String,
    /// From those records and the first record as sealed: the claim's body and key, or `None`.
    pub then: GuardedClaimBody,
}

/// [`GuardedBody::then`]: from the records after the view and the first record as sealed, the
/// claim's body and key, or `None` (no claim).
pub type GuardedClaimBody = Box<dyn FnOnce(&[&ChainedRecord], &ChainedRecord) -> Option<(Value, String)> + Send>;

/// Where the pipeline's records go. [`StoreLog`] is the plain implementation; adapters wrap
/// it to count failures or publish events.
pub trait AuditLog {
    /// Appends one record.
    fn append(&mut self, kind: &str, body: Value) -> Result<ChainedRecord, AppendError>;
    /// Appends a claim record unless a record of the same kind holds `claim`
    /// ([`guardrail_store::AuditStore::append_claim`]).
    fn append_claim(&mut self, kind: &str, body: Value, claim: &str) -> Result<Claim, AppendError>;
    /// Whether [`AuditLog::append_linked`] appends both records in one commit here.
    fn links(&self) -> bool {
        false
    }
    /// Appends a `kind` record and, right after it in the same commit, a `then_kind` record whose
    /// body `then` builds from the first as sealed (its id): both are in the chain or neither.
    /// Only where [`AuditLog::links`] says so; elsewhere nothing is appended and the answer is
    /// an error (the caller appends the two one after the other instead).
    fn append_linked(
        &mut self,
        kind: &str,
        body: Value,
        then_kind: &str,
        then: LinkedBody,
    ) -> Result<(ChainedRecord, ChainedRecord), AppendError> {
        let _ = (kind, body, then_kind, then);
        Err(AppendError::NotInChain {
            store: "(this audit log)".into(),
            source: Box::new(guardrail_store::StoreError::InvalidRecord(
                "this audit log cannot append linked records; nothing was appended".into(),
            )),
        })
    }
    /// Appends a `kind` record and, in the same commit, the claim `guard` decides to take right
    /// after it ([`guardrail_store::AuditStore::append_guarded_claim`]): the record is appended
    /// either way; the claim only when the guard, re-deciding under the store's write lock over
    /// what was appended since its view, builds one. Only where [`AuditLog::links`] says so;
    /// elsewhere nothing is appended and the answer is an error.
    fn append_guarded(
        &mut self,
        kind: &str,
        body: Value,
        guard: GuardedBody,
    ) -> Result<(ChainedRecord, Option<Claim>), AppendError> {
        let _ = (kind, body, guard);
        Err(AppendError::NotInChain {
            store: "(this audit log)".into(),
            source: Box::new(guardrail_store::StoreError::InvalidRecord(
                "this audit log cannot append guarded claims; nothing was appended".into(),
            )),
        })
    }
    /// The incidents' states folded from the records this log appends to, when it can read
    /// them itself ([`StoreLog`] does, over its one connection); `None` when it cannot.
    fn read_states(&mut self) -> Option<Result<std::collections::BTreeMap<String, IncidentState>, TrailError>> {
        None
    }
}

/// An [`AuditLog`] over an open store and an optional JSONL mirror, stamping every record with
/// one time.
pub struct StoreLog {
    store: Box<dyn AuditStore>,
    mirror: Option<PathBuf>,
    recorded_at: String,
}

impl StoreLog {
    /// Records go to `store` (and `mirror`), stamped `recorded_at`.
    pub fn new(store: Box<dyn AuditStore>, mirror: Option<PathBuf>, recorded_at: jiff::Timestamp) -> StoreLog {
        StoreLog { store, mirror, recorded_at: recorded_at.to_string() }
    }

    /// The store, for reads.
    pub fn store(&mut self) -> &mut dyn AuditStore {
        self.store.as_mut()
    }

    /// The incidents' states folded from this store's records ([`crate::queue::incident_states`]),
    /// read over the connection the records are appended through, so one command opens its
    /// store once.
    pub fn states(&mut self) -> Result<std::collections::BTreeMap<String, IncidentState>, TrailError> {
        self.states_at().map(|(states, _)| states)
    }

    /// [`StoreLog::states`] and the seq of the last record they were folded from (0 for an
    /// empty chain).
    pub fn states_at(&mut self) -> Result<(std::collections::BTreeMap<String, IncidentState>, i64), TrailError> {
        let records =
            self.store.all().map_err(|e| TrailError::Store { store: self.store.describe(), message: e.to_string() })?;
        let last = records.last().map_or(0, |r| r.seq);
        Ok((crate::queue::incident_states(&records), last))
    }

    fn draft(&self, kind: &str, body: Value) -> RecordDraft {
        RecordDraft { kind: kind.into(), recorded_at: self.recorded_at.clone(), body }
    }
}

impl AuditLog for StoreLog {
    fn append(&mut self, kind: &str, body: Value) -> Result<ChainedRecord, AppendError> {
        let d = self.draft(kind, body);
        guardrail_store::append_mirrored(self.store.as_mut(), self.mirror.as_deref(), d)
    }

    fn append_claim(&mut self, kind: &str, body: Value, claim: &str) -> Result<Claim, AppendError> {
        let d = self.draft(kind, body);
        guardrail_store::append_claim_mirrored(self.store.as_mut(), self.mirror.as_deref(), d, claim)
    }

    /// Linked in one commit only without a JSONL mirror: with one, a failed mirror copy of the
    /// first record would leave the second in the chain where two appends leave it out, and
    /// what a failure means must not depend on that.
    fn links(&self) -> bool {
        self.mirror.is_none()
    }

    fn append_linked(
        &mut self,
        kind: &str,
        body: Value,
        then_kind: &str,
        then: LinkedBody,
    ) -> Result<(ChainedRecord, ChainedRecord), AppendError> {
        let first = self.draft(kind, body);
        let (then_kind, recorded_at) = (then_kind.to_string(), self.recorded_at.clone());
        let second: guardrail_store::LinkedDraft =
            Box::new(move |sealed| RecordDraft { kind: then_kind, recorded_at, body: then(sealed) });
        guardrail_store::append_linked_mirrored(self.store.as_mut(), self.mirror.as_deref(), first, second)
    }

    fn append_guarded(
        &mut self,
        kind: &str,
        body: Value,
        guard: GuardedBody,
    ) -> Result<(ChainedRecord, Option<Claim>), AppendError> {
        let first = self.draft(kind, body);
        let GuardedBody { after, kinds, claim_kind, then } = guard;
        let (claim_kind_draft, recorded_at) = (claim_kind.clone(), self.recorded_at.clone());
        let guard = guardrail_store::ClaimGuard {
            after,
            kinds,
            claim_kind,
            then: Box::new(move |seen, sealed| {
                then(seen, sealed).map(|(body, key)| (RecordDraft { kind: claim_kind_draft, recorded_at, body }, key))
            }),
        };
        guardrail_store::append_guarded_claim_mirrored(self.store.as_mut(), self.mirror.as_deref(), first, guard)
    }

    fn read_states(&mut self) -> Option<Result<std::collections::BTreeMap<String, IncidentState>, TrailError>> {
        Some(self.states())
    }
}
