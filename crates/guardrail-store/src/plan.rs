//! What one append transaction seals, decided in memory under the store's write lock.
//!
//! An append transaction carries the *units* of one or more waiters (a group commit carries
//! many): plain records ([`Unit::Records`]), a claim ([`Unit::Claim`]) and a linked pair
//! ([`Unit::Linked`]). [`plan`] seals them in arrival order after the chain head and decides
//! each unit's [`Outcome`] before anything is written; the backend then writes every sealed
//! record, its outbox rows and its claim-index entries in that one transaction. So a claim that
//! is held, or a linked pair whose second draft is refused, leaves no gap: the records after it
//! simply seal after the previous one.
//!
//! # Guarded claims
//!
//! A [`Unit::Guarded`] is a record and the claim its [`ClaimGuard`] decides, under the lock, to
//! take right after it: an approval and its execution claim, taken only if the approval is the
//! one that releases the request. The caller decided on a view of the chain up to
//! [`ClaimGuard::after`]; the backend reads the records of the guard's kinds after it (for the
//! whole transaction at once, from the lowest `after`: [`History`]), this transaction's earlier
//! records are added, and the guard re-decides on them with the record as sealed. So racing
//! callers that all decided "mine releases it" on the same view leave exactly one claim: the
//! others' guards see the first one's record. A view past the chain's end, or a damaged record
//! after it, refuses the unit (nothing of it appended).
//!
//! # The claim index
//!
//! A record *holds* the claim `(kind, c)` when its body's `claim` field is the string `c`; the
//! first such record (lowest seq) is the holder. That used to be found by reading and decoding
//! every record of the kind under the write lock, O(chain) per claim. The side table
//! `audit_claims (kind, claim, seq)`, unique on `(kind, claim)`, now holds the first holder of
//! every key, written in the same transaction as the record (for every append, not only
//! claims: a plain record with a `claim` field holds it as before). Like the outbox it is beside
//! the chain, not in it: no hash covers it and `verify` never reads it.
//!
//! The index is built per kind, lazily: `audit_claim_kinds` lists the kinds whose claims it
//! holds completely. The first claim of a kind a store is asked (on a store written before the
//! index, or a kind never claimed) reads that kind's records once, by the `(kind, seq)` index —
//! what every claim of it used to read — and lists the kind; a store of large gate records is
//! never read whole. Records of kinds not listed yet are indexed as they are appended too, and a
//! kind indexed later replaces such a row by an earlier holder it finds (the lowest seq wins).
//!
//! `chain_head.claims_seq` says up to which record the listed kinds are complete. Every append
//! of this build moves it with the head; an append by an older build (which knows nothing of the
//! index) moves only the head, so the next append of this build finds the mark behind and first
//! indexes the listed kinds' records in between. A record that cannot be decoded while indexing
//! gets a *damage marker* for its kind (claim `''`, never a real claim: blank claims are
//! refused): a claim of that kind is then an error, as it was when the damaged record was read at
//! every claim — nobody wins over a damaged record. A marker or holder with a lower seq than the
//! other decides, as the old scan in seq order did. To rebuild the index (after repairing a
//! record), empty `audit_claims` and `audit_claim_kinds` and set `chain_head.claims_seq` to NULL.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use guardrail_core::audit::{ChainedRecord, RecordDraft};

use crate::outbox::{OutboxRouter, OutboxTarget};
use crate::prepared::Prepared;
use crate::{Claim, Decoded, StoreError, validate_draft};

/// Builds the second record of a linked append ([`crate::AuditStore::append_linked`]) from the
/// first one as sealed (its seq and hash known). It runs under the store's write lock (on a
/// shared store, on the writer thread): keep it cheap and free of I/O.
pub type LinkedDraft = Box<dyn FnOnce(&ChainedRecord) -> RecordDraft + Send>;

/// Builds a claim ([`crate::AuditStore::append_then_claim`]) from a record as sealed: the claim
/// record's draft and its claim key (the draft's `body.claim`). Runs under the write lock, as a
/// [`LinkedDraft`] does.
pub type LinkedClaim = Box<dyn FnOnce(&ChainedRecord) -> (RecordDraft, String) + Send>;

/// Decides, under the store's write lock, whether a record as sealed takes a claim right after
/// it, and builds it: given the records of [`ClaimGuard::kinds`] after [`ClaimGuard::after`]
/// (those committed before this transaction, then those sealed before this unit in it, in chain
/// order) and the record as sealed, the claim record's draft and its key — or `None`: no claim
/// (the record alone is appended). Runs on the writer, as a [`LinkedDraft`] does: keep it cheap
/// and free of I/O.
pub type GuardedClaim = Box<dyn FnOnce(&[&ChainedRecord], &ChainedRecord) -> Option<(RecordDraft, String)> + Send>;

/// The condition of [`crate::AuditStore::append_guarded_claim`]: what the caller decided on (the
/// chain up to `after`), which kinds of records can change that decision, and the decision
/// re-made over what was appended since.
pub struct ClaimGuard {
    /// The seq of the last record the caller's view covers.
    pub after: i64,
    /// The kinds of the records after `after` that `then` is given.
    pub kinds: Vec<String>,
    /// The kind of the claim `then` may build (known before it runs, so a store can look up
    /// what its claim index says about the kind with the rest of the transaction's lookups).
    pub claim_kind: String,
    /// The decision.
    pub then: GuardedClaim,
}

/// The records a transaction's guarded claims are decided over ([`ClaimGuard`]): those of the
/// guards' kinds after the lowest `after`, up to the head, read under the write lock.
#[derive(Default)]
pub(crate) struct History {
    /// The records, in chain order.
    pub records: Vec<ChainedRecord>,
    /// The first one that could not be read (its seq, why): a guard whose view ends before it
    /// cannot be decided (refused).
    pub damaged: Option<(i64, String)>,
}

impl History {
    /// From rows read back, in seq order.
    pub(crate) fn of(rows: Vec<Decoded>) -> History {
        let mut h = History::default();
        for d in rows {
            let seq = d.record.seq;
            match d.strict() {
                Ok(r) => h.records.push(r),
                Err(e) => {
                    if h.damaged.is_none() {
                        h.damaged = Some((seq, e.to_string()));
                    }
                }
            }
        }
        h
    }
}

/// What the guarded claims of `work` need read ([`History`], and their claim kinds' state in the
/// index); `None` without a guarded claim.
pub(crate) fn guard_span(work: &[Work]) -> Option<GuardSpan> {
    let mut span: Option<GuardSpan> = None;
    for w in work {
        if let Unit::Guarded(_, g) = &w.unit {
            let s = span.get_or_insert_with(|| GuardSpan { after: g.after, ..GuardSpan::default() });
            s.after = s.after.min(g.after);
            for k in &g.kinds {
                if !s.kinds.contains(k) {
                    s.kinds.push(k.clone());
                }
            }
            if !s.claim_kinds.contains(&g.claim_kind) {
                s.claim_kinds.push(g.claim_kind.clone());
            }
        }
    }
    span
}

/// What a transaction's guarded claims need read before they are planned ([`guard_span`]).
#[derive(Debug, Default)]
pub(crate) struct GuardSpan {
    /// The lowest `after`.
    pub after: i64,
    /// Every kind of record asked for.
    pub kinds: Vec<String>,
    /// Every kind of claim they may take.
    pub claim_kinds: Vec<String>,
}

/// One waiter's part of an append transaction.
pub(crate) enum Unit {
    /// Records appended in order (`append`, `append_batch`).
    Records(Vec<Prepared>),
    /// A record appended only if no record of its kind holds `claim`.
    Claim(Box<Prepared>, String),
    /// A record and the one its [`LinkedDraft`] builds from it, consecutively, or neither.
    Linked(Box<Prepared>, LinkedDraft),
    /// A record, then the claim its [`LinkedClaim`] builds from it: the record is appended and
    /// the claim decided as a [`Unit::Claim`] right after it (appended when it wins).
    LinkedClaim(Box<Prepared>, LinkedClaim),
    /// A record, then the claim its [`ClaimGuard`] decides to take after it, if any (decided
    /// and appended as a [`Unit::LinkedClaim`]'s claim).
    Guarded(Box<Prepared>, ClaimGuard),
}

impl Unit {
    /// Records it appends at most.
    pub(crate) fn records(&self) -> usize {
        match self {
            Unit::Records(r) => r.len(),
            Unit::Claim(..) => 1,
            Unit::Linked(..) | Unit::LinkedClaim(..) | Unit::Guarded(..) => 2,
        }
    }
}

/// A unit and the outbox router its records are routed by.
pub(crate) struct Work {
    pub unit: Unit,
    pub router: Option<Arc<dyn OutboxRouter>>,
}

/// What one unit came to.
pub(crate) enum Outcome {
    /// Its records, as appended.
    Appended(Vec<ChainedRecord>),
    /// A claim already held by this record: nothing appended.
    Held(ChainedRecord),
    /// A linked claim's record (appended) and its claim's holder (the claim not appended).
    FirstHeld(ChainedRecord, ChainedRecord),
    /// This unit alone was refused (a damaged record decides its claim, a linked second draft
    /// is invalid); nothing of it appended, the rest of the transaction unaffected.
    Refused(StoreError),
}

impl Outcome {
    pub(crate) fn appended(self) -> Result<Vec<ChainedRecord>, StoreError> {
        match self {
            Outcome::Appended(r) => Ok(r),
            Outcome::Refused(e) => Err(e),
            Outcome::Held(r) | Outcome::FirstHeld(_, r) => {
                Err(StoreError::Corrupt { seq: r.seq, reason: "unexpected claim holder".into() })
            }
        }
    }

    pub(crate) fn then_claim(self) -> Result<(ChainedRecord, Claim), StoreError> {
        match self {
            Outcome::FirstHeld(first, holder) => Ok((first, Claim::Held(holder))),
            other => other.linked().map(|(first, claim)| (first, Claim::Won(claim))),
        }
    }

    /// A guarded claim's outcome: the first record, and the claim when the guard asked for one.
    pub(crate) fn guarded(self) -> Result<(ChainedRecord, Option<Claim>), StoreError> {
        match self {
            Outcome::FirstHeld(first, holder) => Ok((first, Some(Claim::Held(holder)))),
            other => {
                let mut records = other.appended()?.into_iter();
                match (records.next(), records.next(), records.next()) {
                    (Some(first), None, None) => Ok((first, None)),
                    (Some(first), Some(claim), None) => Ok((first, Some(Claim::Won(claim)))),
                    _ => Err(StoreError::Corrupt {
                        seq: 0,
                        reason: "a guarded claim was appended but the store returned another number of records".into(),
                    }),
                }
            }
        }
    }

    pub(crate) fn claim(self) -> Result<Claim, StoreError> {
        match self {
            Outcome::Held(r) => Ok(Claim::Held(r)),
            Outcome::Appended(r) => crate::one(r).map(Claim::Won),
            Outcome::Refused(e) => Err(e),
            Outcome::FirstHeld(..) => Err(StoreError::Corrupt { seq: 0, reason: "unexpected linked claim".into() }),
        }
    }

    pub(crate) fn linked(self) -> Result<(ChainedRecord, ChainedRecord), StoreError> {
        let mut records = self.appended()?.into_iter();
        match (records.next(), records.next(), records.next()) {
            (Some(a), Some(b), None) => Ok((a, b)),
            _ => Err(StoreError::Corrupt {
                seq: 0,
                reason: "two linked records were appended but the store returned another number".into(),
            }),
        }
    }
}

/// A claim key: the record's kind and its body's `claim`.
pub(crate) type ClaimKey = (String, String);

/// A row of the claim index: kind, claim (`''` for a damage marker), seq.
pub(crate) type IndexRow = (String, String, i64);

/// What the index says about a key before this transaction.
#[derive(Clone)]
pub(crate) enum Indexed {
    /// Held by this record.
    Held(ChainedRecord),
    /// Cannot be decided: a damaged record of the kind, or an index entry that does not match
    /// its record.
    Broken { seq: i64, reason: String },
}

impl Indexed {
    fn seq(&self) -> i64 {
        match self {
            Indexed::Held(r) => r.seq,
            Indexed::Broken { seq, .. } => *seq,
        }
    }

    /// Keeps whichever of `self` and `other` comes first in the chain (the old scan in seq
    /// order stopped at the first holder or the first damaged record).
    pub(crate) fn earliest(self, other: Indexed) -> Indexed {
        if other.seq() < self.seq() { other } else { self }
    }

    /// What an index row says, given the record it names (`None`: no such record). `claim` is
    /// the row's claim (`''` for a damage marker).
    pub(crate) fn from_row(kind: &str, claim: &str, seq: i64, record: Option<Decoded>) -> Indexed {
        if claim.is_empty() {
            return Indexed::Broken {
                seq,
                reason: format!(
                    "a record of kind {kind:?} is damaged, so which claims it holds cannot be told and no claim of \
                     this kind can be decided (run `guardrail audit verify`)"
                ),
            };
        }
        let Some(decoded) = record else {
            return Indexed::Broken {
                seq,
                reason: format!("the claim index says it holds claim {claim:?} but there is no such record"),
            };
        };
        match decoded.strict() {
            Err(StoreError::Corrupt { seq, reason }) => Indexed::Broken { seq, reason },
            Err(other) => Indexed::Broken { seq, reason: other.to_string() },
            Ok(rec) if rec.kind == kind && record_claim(&rec.body) == Some(claim) => Indexed::Held(rec),
            Ok(_) => Indexed::Broken {
                seq,
                reason: format!(
                    "the claim index says it holds claim {claim:?} of kind {kind:?} but the record does not \
                     (run `guardrail audit verify`)"
                ),
            },
        }
    }
}

/// The claim a record's body holds: its `claim` field when that is a string that is not blank
/// (a blank claim can never be asked for, so it is not indexed).
pub(crate) fn record_claim(body: &serde_json::Value) -> Option<&str> {
    body.get("claim").and_then(serde_json::Value::as_str).filter(|c| !c.trim().is_empty())
}

/// The index rows of records read back from the store (indexing records written by an older
/// build, or a whole existing chain): a holder row per claim, a damage marker per damaged record
/// whose kind could be read.
pub(crate) fn index_rows(rows: Vec<Decoded>, out: &mut Vec<IndexRow>) {
    for d in rows {
        if d.problems.is_empty() {
            if let Some(c) = record_claim(&d.record.body) {
                out.push((d.record.kind.clone(), c.to_string(), d.record.seq));
            }
        } else if !d.record.kind.is_empty() {
            out.push((d.record.kind, String::new(), d.record.seq));
        }
    }
}

/// Keeps the first row of each key (the rows are in seq order): what the index's uniqueness
/// keeps, decided here so no insert depends on how a database orders a conflict.
pub(crate) fn first_per_key(rows: Vec<IndexRow>) -> Vec<IndexRow> {
    let mut seen = HashSet::new();
    rows.into_iter().filter(|(k, c, _)| seen.insert((k.clone(), c.clone()))).collect()
}

/// The keys the claim units of `work` ask about (each once).
pub(crate) fn claim_keys(work: &[Work]) -> Vec<ClaimKey> {
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    for w in work {
        if let Unit::Claim(p, claim) = &w.unit {
            let key = (p.draft.kind.clone(), claim.clone());
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
    }
    keys
}

/// A record sealed by [`plan`], with its stored body text and outbox rows.
pub(crate) struct SealedRecord {
    pub record: ChainedRecord,
    pub body: String,
    pub targets: Vec<OutboxTarget>,
}

enum Planned {
    Appended(Range<usize>),
    Held(ChainedRecord),
    /// The first record appended, the claim held by this record.
    FirstHeld(ChainedRecord),
    Refused(StoreError),
}

/// The records one transaction writes and what each unit came to.
pub(crate) struct Plan {
    /// Every record to insert, in chain order.
    pub records: Vec<SealedRecord>,
    /// The claim index rows of those records (first per key).
    pub claims: Vec<IndexRow>,
    planned: Vec<Planned>,
}

impl Plan {
    /// Each unit's outcome, once the records are committed.
    pub(crate) fn finish(self) -> Vec<Outcome> {
        let mut records = self.records.into_iter().map(|s| s.record);
        self.planned
            .into_iter()
            .map(|p| match p {
                Planned::Appended(range) => Outcome::Appended(records.by_ref().take(range.len()).collect()),
                Planned::Held(r) => Outcome::Held(r),
                // The records are in unit order, so the first is the next one; a record the
                // iterator no longer has cannot happen (one per planned index).
                Planned::FirstHeld(holder) => match records.next() {
                    Some(first) => Outcome::FirstHeld(first, holder),
                    None => Outcome::Refused(StoreError::Corrupt { seq: 0, reason: "linked claim lost".into() }),
                },
                Planned::Refused(e) => Outcome::Refused(e),
            })
            .collect()
    }
}

/// What the claim index held before this transaction for a key (`None`: free); an error fails
/// the transaction.
pub(crate) type Lookup<'a> = dyn FnMut(&ClaimKey) -> Result<Option<Indexed>, StoreError> + 'a;

/// Seals `work` in order after `last` (the chain head), asking `lookup` (once per key) what the
/// claim index held before this transaction. `store` names the store for routing
/// ([`crate::outbox::targets`]).
pub(crate) fn plan(
    last: Option<&ChainedRecord>,
    work: Vec<Work>,
    store: &str,
    lookup: &mut Lookup<'_>,
    history: &History,
) -> Result<Plan, StoreError> {
    let last_seq = last.map_or(0, |r| r.seq);
    let mut indexed: HashMap<ClaimKey, Option<Indexed>> = HashMap::new();
    let mut index = |key: &ClaimKey| -> Result<Option<Indexed>, StoreError> {
        if let Some(found) = indexed.get(key) {
            return Ok(found.clone());
        }
        let found = lookup(key)?;
        indexed.insert(key.clone(), found.clone());
        Ok(found)
    };
    let mut records: Vec<SealedRecord> = Vec::new();
    let mut planned = Vec::with_capacity(work.len());
    // Keys taken earlier in this transaction, by index into `records`.
    let mut taken: HashMap<ClaimKey, usize> = HashMap::new();
    let seal = |records: &mut Vec<SealedRecord>, p: Prepared, router: Option<&Arc<dyn OutboxRouter>>| {
        let targets = crate::outbox::targets(router, store, &p.draft);
        let (record, body) = p.seal(records.last().map(|s| &s.record).or(last));
        records.push(SealedRecord { record, body, targets });
    };
    let take = |records: &[SealedRecord], taken: &mut HashMap<ClaimKey, usize>, from: usize| {
        for (i, s) in records.iter().enumerate().skip(from) {
            if let Some(c) = record_claim(&s.record.body) {
                taken.entry((s.record.kind.clone(), c.to_string())).or_insert(i);
            }
        }
    };
    // A claim decided right after its unit's first record (sealed at `start`): held by the index
    // or by a record earlier in this transaction, refused with the first on a damage marker
    // (neither is appended), else sealed after it.
    let claim_after_first = |records: &mut Vec<SealedRecord>,
                             taken: &mut HashMap<ClaimKey, usize>,
                             index: &mut dyn FnMut(&ClaimKey) -> Result<Option<Indexed>, StoreError>,
                             start: usize,
                             p: Prepared,
                             claim: String,
                             router: Option<&Arc<dyn OutboxRouter>>|
     -> Result<Planned, StoreError> {
        // The first record may hold the key itself (a claim field of the same kind).
        take(records, taken, start);
        let key = (p.draft.kind.clone(), claim);
        Ok(match index(&key)? {
            Some(Indexed::Held(r)) => Planned::FirstHeld(r),
            Some(Indexed::Broken { seq, reason }) => {
                // Refused as a claim alone would be; the first goes with it.
                records.truncate(start);
                taken.retain(|_, i| *i < start);
                Planned::Refused(StoreError::Corrupt { seq, reason })
            }
            None => match taken.get(&key) {
                Some(&i) => Planned::FirstHeld(records[i].record.clone()),
                None => {
                    seal(records, p, router);
                    take(records, taken, start + 1);
                    Planned::Appended(start..records.len())
                }
            },
        })
    };
    for Work { unit, router } in work {
        let start = records.len();
        match unit {
            Unit::Records(drafts) => {
                for p in drafts {
                    seal(&mut records, p, router.as_ref());
                }
                take(&records, &mut taken, start);
                planned.push(Planned::Appended(start..records.len()));
            }
            Unit::Claim(p, claim) => {
                let key = (p.draft.kind.clone(), claim);
                match index(&key)? {
                    Some(Indexed::Held(r)) => planned.push(Planned::Held(r)),
                    Some(Indexed::Broken { seq, reason }) => {
                        planned.push(Planned::Refused(StoreError::Corrupt { seq, reason }))
                    }
                    None => match taken.get(&key) {
                        Some(&i) => planned.push(Planned::Held(records[i].record.clone())),
                        None => {
                            seal(&mut records, *p, router.as_ref());
                            take(&records, &mut taken, start);
                            planned.push(Planned::Appended(start..records.len()));
                        }
                    },
                }
            }
            Unit::LinkedClaim(first, then) => {
                seal(&mut records, *first, router.as_ref());
                let built = {
                    let sealed = &records[start].record;
                    std::panic::catch_unwind(AssertUnwindSafe(|| then(sealed))).map_err(|_| {
                        StoreError::InvalidRecord("building the linked claim panicked; neither was appended".into())
                    })
                };
                let claim = built.and_then(|(d, claim)| {
                    crate::validate_claim(&d, &claim)?;
                    Ok((Prepared::new(d)?, claim))
                });
                let (p, claim) = match claim {
                    Ok(c) => c,
                    Err(e) => {
                        records.truncate(start);
                        planned.push(Planned::Refused(e));
                        continue;
                    }
                };
                planned.push(claim_after_first(
                    &mut records,
                    &mut taken,
                    &mut index,
                    start,
                    p,
                    claim,
                    router.as_ref(),
                )?);
            }
            Unit::Guarded(first, guard) => {
                if guard.after > last_seq {
                    // The caller's view is of records this chain does not have (another store,
                    // or one cut short): nothing can be decided on it.
                    planned.push(Planned::Refused(StoreError::InvalidRecord(format!(
                        "the claim's condition was read from a chain up to record {} but this one ends at \
                         {last_seq}; nothing was appended",
                        guard.after
                    ))));
                    continue;
                }
                if let Some((seq, reason)) = history.damaged.as_ref().filter(|(seq, _)| *seq > guard.after) {
                    planned.push(Planned::Refused(StoreError::Corrupt { seq: *seq, reason: reason.clone() }));
                    continue;
                }
                seal(&mut records, *first, router.as_ref());
                let ClaimGuard { after, kinds, claim_kind, then } = guard;
                let built = {
                    let of_kind = |r: &&ChainedRecord| kinds.contains(&r.kind);
                    let seen: Vec<&ChainedRecord> = history
                        .records
                        .iter()
                        .filter(|r| r.seq > after)
                        .chain(records[..start].iter().map(|s| &s.record))
                        .filter(of_kind)
                        .collect();
                    let sealed = &records[start].record;
                    std::panic::catch_unwind(AssertUnwindSafe(|| then(&seen, sealed))).map_err(|_| {
                        StoreError::InvalidRecord("deciding the guarded claim panicked; nothing was appended".into())
                    })
                };
                let claim = built.and_then(|c| {
                    c.map(|(d, claim)| {
                        if d.kind != claim_kind {
                            return Err(StoreError::InvalidRecord(format!(
                                "the guarded claim is of kind {:?}, not the {claim_kind:?} its guard names; nothing \
                                 was appended",
                                d.kind
                            )));
                        }
                        crate::validate_claim(&d, &claim)?;
                        Ok((Prepared::new(d)?, claim))
                    })
                    .transpose()
                });
                match claim {
                    Ok(None) => {
                        take(&records, &mut taken, start);
                        planned.push(Planned::Appended(start..records.len()));
                    }
                    Ok(Some((p, claim))) => planned.push(claim_after_first(
                        &mut records,
                        &mut taken,
                        &mut index,
                        start,
                        p,
                        claim,
                        router.as_ref(),
                    )?),
                    Err(e) => {
                        records.truncate(start);
                        planned.push(Planned::Refused(e));
                    }
                }
            }
            Unit::Linked(first, then) => {
                seal(&mut records, *first, router.as_ref());
                let built = {
                    let sealed = &records[start].record;
                    // A panicking builder refuses its own pair, not the whole group commit.
                    std::panic::catch_unwind(AssertUnwindSafe(|| then(sealed))).map_err(|_| {
                        StoreError::InvalidRecord("building the linked record panicked; neither was appended".into())
                    })
                };
                let second = built.and_then(|d| {
                    validate_draft(&d)?;
                    Prepared::new(d)
                });
                match second {
                    Ok(p) => {
                        seal(&mut records, p, router.as_ref());
                        take(&records, &mut taken, start);
                        planned.push(Planned::Appended(start..records.len()));
                    }
                    Err(e) => {
                        // The first is dropped with it: both, or neither.
                        records.truncate(start);
                        planned.push(Planned::Refused(e));
                    }
                }
            }
        }
    }
    let claims = first_per_key(
        records
            .iter()
            .filter_map(|s| record_claim(&s.record.body).map(|c| (s.record.kind.clone(), c.to_string(), s.record.seq)))
            .collect(),
    );
    Ok(Plan { records, claims, planned })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draft(kind: &str, body: serde_json::Value) -> Prepared {
        Prepared::new(RecordDraft { kind: kind.into(), recorded_at: "2026-12-06T00:00:00Z".into(), body }).unwrap()
    }

    fn work(unit: Unit) -> Work {
        Work { unit, router: None }
    }

    #[test]
    fn claims_in_one_batch_are_decided_in_arrival_order() {
        let claim = |c: &str| Unit::Claim(Box::new(draft("execution_claim", json!({"claim": c}))), c.into());
        let units = vec![
            work(claim("a")),
            work(Unit::Records(vec![draft("x", json!({}))])),
            work(claim("a")),
            work(claim("b")),
            // A plain record with a claim field holds it too (as it always did).
            work(Unit::Records(vec![draft("execution_claim", json!({"claim": "c"}))])),
            work(claim("c")),
            work(claim("held")),
            // A linked claim: its first record is appended whether or not the claim is free.
            work(Unit::LinkedClaim(
                Box::new(draft("approval", json!({}))),
                Box::new(|_| {
                    (
                        RecordDraft {
                            kind: "execution_claim".into(),
                            recorded_at: "2026-12-06T00:00:00Z".into(),
                            body: json!({"claim": "b"}),
                        },
                        "b".into(),
                    )
                }),
            )),
            work(Unit::LinkedClaim(
                Box::new(draft("approval", json!({}))),
                Box::new(|_| {
                    (
                        RecordDraft {
                            kind: "execution_claim".into(),
                            recorded_at: "2026-12-06T00:00:00Z".into(),
                            body: json!({"claim": "d"}),
                        },
                        "d".into(),
                    )
                }),
            )),
            work(claim("d")),
        ];
        let holder = guardrail_core::audit::seal(
            None,
            RecordDraft { kind: "execution_claim".into(), recorded_at: "t".into(), body: json!({"claim": "held"}) },
        );
        let mut asked = Vec::new();
        let mut lookup = |key: &ClaimKey| {
            asked.push(key.1.clone());
            Ok((key.1 == "held").then(|| Indexed::Held(holder.clone())))
        };
        let plan = plan(None, units, "s", &mut lookup, &History::default()).unwrap();
        assert_eq!(asked, ["a", "b", "c", "held", "d"], "each key looked up once");
        assert_eq!(plan.records.len(), 7);
        assert_eq!(plan.claims.len(), 4);
        let out = plan.finish();
        let seqs = |o: &Outcome| match o {
            Outcome::Appended(r) => format!("won {:?}", r.iter().map(|r| r.seq).collect::<Vec<_>>()),
            Outcome::Held(r) => format!("held {}", r.seq),
            Outcome::FirstHeld(a, h) => format!("first {} held {}", a.seq, h.seq),
            Outcome::Refused(e) => format!("refused {e}"),
        };
        let got: Vec<String> = out.iter().map(seqs).collect();
        assert_eq!(
            got,
            [
                "won [1]",
                "won [2]",
                "held 1",
                "won [3]",
                "won [4]",
                "held 4",
                "held 1",
                "first 5 held 3",
                "won [6, 7]",
                "held 7"
            ]
        );
    }

    #[test]
    fn a_refused_linked_pair_leaves_no_gap() {
        let units = vec![
            work(Unit::Linked(
                Box::new(draft("decision", json!({}))),
                Box::new(|_| RecordDraft { kind: String::new(), recorded_at: "x".into(), body: json!({}) }),
            )),
            work(Unit::Linked(
                Box::new(draft("decision", json!({}))),
                Box::new(|d| RecordDraft {
                    kind: "approval_request".into(),
                    recorded_at: d.recorded_at.clone(),
                    body: json!({"decision": d.id()}),
                }),
            )),
            work(Unit::Linked(Box::new(draft("decision", json!({}))), Box::new(|_| panic!("builder")))),
        ];
        let plan = plan(None, units, "s", &mut |_| Ok(None), &History::default()).unwrap();
        assert_eq!(plan.records.iter().map(|s| s.record.seq).collect::<Vec<_>>(), [1, 2]);
        let out = plan.finish();
        assert!(matches!(&out[0], Outcome::Refused(StoreError::InvalidRecord(_))));
        assert!(matches!(&out[2], Outcome::Refused(StoreError::InvalidRecord(_))));
        let Outcome::Appended(pair) = &out[1] else { panic!("the valid pair is appended") };
        assert_eq!(pair[1].body["decision"], json!(pair[0].id()));
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
}
