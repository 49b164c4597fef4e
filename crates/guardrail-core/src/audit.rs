//! Audit records and the hash chain every store keeps.
//!
//! A record is hashed over its canonical bytes: the JSON serialisation of
//! `{"body", "kind", "prev_hash", "recorded_at", "seq"}` with object keys sorted
//! (serde_json's map is a `BTreeMap` in this workspace: the `preserve_order` feature must never
//! be enabled, or key order, and so every hash, would change) and no insignificant whitespace.
//! `hash = sha256(canonical bytes)` in lower-case hex; the first record's `prev_hash` is
//! [`GENESIS_HASH`]. Editing, deleting or reordering any record breaks either its own hash or
//! the next record's link, which [`verify_chain`] reports.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first record in a chain: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a caller asks a store to append. The store assigns `seq`, `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecordDraft {
    /// Record kind, e.g. `deploy_decision`, `approval`, `execution`.
    pub kind: String,
    /// RFC 3339 UTC timestamp chosen by the caller (the core never reads a clock).
    pub recorded_at: String,
    /// The record's content.
    pub body: serde_json::Value,
}

/// A [`RecordDraft`] whose body is given as its stored text: exactly
/// `serde_json::to_string(&body)` of the body value (compact, object keys sorted: what
/// [`crate::canonical_json::to_string`] writes). The chain hashes that text as it is, so a text
/// that is not canonical would not verify; stores that take it (instead of a value) save
/// building and serialising a `Value` tree — megabytes for a gate decision at fleet scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedDraft {
    /// Record kind.
    pub kind: String,
    /// RFC 3339 UTC timestamp chosen by the caller.
    pub recorded_at: String,
    /// The body's canonical text.
    pub body_text: String,
    /// The hash state of the record's canonical bytes up to the end of `body_text`, when it was
    /// computed while the text was written ([`BodyHead::encode`]); it must be that text's.
    pub body_head: Option<BodyHead>,
}

/// The bytes a record's canonical text starts with, before its body's text: the body is its
/// first key.
pub const BODY_PREFIX: &[u8] = b"{\"body\":";

/// The SHA-256 state of a record's canonical bytes up to the end of its body: [`BODY_PREFIX`]
/// and the body's canonical text. A store continues it with the record's other fields instead
/// of hashing the body's megabytes after the text is written.
#[derive(Clone)]
pub struct BodyHead(Sha256);

impl BodyHead {
    /// The canonical text of `body` ([`crate::canonical_json::to_string_with_capacity`]) and its
    /// head, hashed on another thread while the text is written
    /// ([`crate::canonical_json::to_string_hashed`]).
    pub fn encode<T: Serialize + ?Sized>(
        body: &T,
        capacity: usize,
    ) -> Result<(String, BodyHead), crate::canonical_json::Error> {
        let (text, state) = crate::canonical_json::to_string_hashed(body, capacity, BODY_PREFIX)?;
        Ok((text, BodyHead(state)))
    }

    /// The head of `body_text`, hashed here.
    pub fn of(body_text: &str) -> BodyHead {
        let mut state = Sha256::new();
        state.update(BODY_PREFIX);
        state.update(body_text.as_bytes());
        BodyHead(state)
    }

    /// The hash state, to be continued with the record's other fields.
    pub fn into_state(self) -> Sha256 {
        self.0
    }

    /// The hex digest of the state as it is (for comparisons).
    fn digest(&self) -> String {
        hex::encode(self.0.clone().finalize())
    }
}

impl PartialEq for BodyHead {
    fn eq(&self, other: &BodyHead) -> bool {
        self.digest() == other.digest()
    }
}

impl Eq for BodyHead {}

impl std::fmt::Debug for BodyHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BodyHead").field(&self.digest()).finish()
    }
}

impl EncodedDraft {
    /// The draft with its body read back as a value (what a store that cannot take the text
    /// appends).
    pub fn into_draft(self) -> Result<RecordDraft, serde_json::Error> {
        let body = serde_json::from_str(&self.body_text)?;
        Ok(RecordDraft { kind: self.kind, recorded_at: self.recorded_at, body })
    }

    /// Whether `body_text` is canonical: what reading it back and writing it again gives (as
    /// costly as the value it saves; for tests and debug builds).
    pub fn is_canonical(&self) -> bool {
        serde_json::from_str::<serde_json::Value>(&self.body_text)
            .ok()
            .and_then(|v| serde_json::to_string(&v).ok())
            .is_some_and(|again| again == self.body_text)
    }
}

/// A record as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChainedRecord {
    /// Position in the chain, starting at 1, without gaps.
    pub seq: i64,
    /// Record kind.
    pub kind: String,
    /// RFC 3339 UTC timestamp.
    pub recorded_at: String,
    /// Content.
    pub body: serde_json::Value,
    /// Hash of the previous record ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// sha256 of this record's canonical bytes.
    pub hash: String,
}

impl ChainedRecord {
    /// A short, stable identifier for people: `seq` and the first 12 hex digits of the hash,
    /// e.g. `42-3fa9c0d1e2b4`. `guardrail audit show` and `replay` accept it, or the bare seq.
    pub fn id(&self) -> String {
        format!("{}-{}", self.seq, &self.hash[..12.min(self.hash.len())])
    }
}

#[derive(Serialize)]
struct Canonical<'a> {
    body: &'a serde_json::Value,
    kind: &'a str,
    prev_hash: &'a str,
    recorded_at: &'a str,
    seq: i64,
}

/// The canonical bytes that are hashed for a record at position `seq` after `prev_hash`.
pub fn canonical_bytes(seq: i64, prev_hash: &str, draft: &RecordDraft) -> Vec<u8> {
    let c = Canonical { body: &draft.body, kind: &draft.kind, prev_hash, recorded_at: &draft.recorded_at, seq };
    // Serialising a struct of plain strings and a Value cannot fail.
    serde_json::to_vec(&c).unwrap_or_default()
}

/// The hash a record at `seq` after `prev_hash` must carry: sha256 of [`canonical_bytes`],
/// written straight into the hasher (a decision at 10,000 rules has megabytes of canonical
/// bytes; there is no need to hold them).
pub fn record_hash(seq: i64, prev_hash: &str, draft: &RecordDraft) -> String {
    let c = Canonical { body: &draft.body, kind: &draft.kind, prev_hash, recorded_at: &draft.recorded_at, seq };
    let mut hasher = std::io::BufWriter::with_capacity(64 * 1024, Sha256::new());
    // Writing into a hasher cannot fail, nor can serialising plain strings and a Value.
    let _ = serde_json::to_writer(&mut hasher, &c);
    let hasher = hasher.into_inner().unwrap_or_else(|e| e.into_inner().into_parts().0);
    hex::encode(hasher.finalize())
}

/// Seals a draft as the record following `prev` (or the first one when `prev` is `None`).
pub fn seal(prev: Option<&ChainedRecord>, draft: RecordDraft) -> ChainedRecord {
    let (seq, prev_hash) = match prev {
        Some(p) => (p.seq + 1, p.hash.clone()),
        None => (1, GENESIS_HASH.to_string()),
    };
    let hash = record_hash(seq, &prev_hash, &draft);
    ChainedRecord { seq, kind: draft.kind, recorded_at: draft.recorded_at, body: draft.body, prev_hash, hash }
}

/// One problem found by [`verify_chain`].
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ChainBreak {
    /// The record at which the chain breaks.
    pub seq: i64,
    /// What is wrong.
    pub problem: String,
}

/// Result of verifying a chain.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    /// Records checked.
    pub records: usize,
    /// Hash of the last record (the chain head), if any.
    pub head: Option<String>,
    /// Every break found, in order; empty means the chain is intact.
    pub breaks: Vec<ChainBreak>,
}

impl VerifyReport {
    /// True when no break was found.
    pub fn ok(&self) -> bool {
        self.breaks.is_empty()
    }
}

/// Verifies records given in storage order: sequence numbers 1, 2, 3… without gaps, each
/// hash recomputed from its content, each `prev_hash` equal to the previous record's hash.
pub fn verify_chain(records: &[ChainedRecord]) -> VerifyReport {
    let mut breaks = Vec::new();
    let mut expected_prev = GENESIS_HASH.to_string();
    for (i, r) in records.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if r.seq != expected_seq {
            breaks.push(ChainBreak {
                seq: r.seq,
                problem: format!(
                    "sequence number {} where {} was expected (a record was deleted or reordered)",
                    r.seq, expected_seq
                ),
            });
        }
        if r.prev_hash != expected_prev {
            breaks.push(ChainBreak {
                seq: r.seq,
                problem:
                    "prev_hash does not match the previous record's hash (a record was deleted, inserted or reordered)"
                        .into(),
            });
        }
        let draft = RecordDraft { kind: r.kind.clone(), recorded_at: r.recorded_at.clone(), body: r.body.clone() };
        let recomputed = record_hash(r.seq, &r.prev_hash, &draft);
        if recomputed != r.hash {
            breaks.push(ChainBreak {
                seq: r.seq,
                problem: "content does not match its hash (the record was edited)".into(),
            });
        }
        expected_prev = r.hash.clone();
    }
    VerifyReport { records: records.len(), head: records.last().map(|r| r.hash.clone()), breaks }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(n: i64) -> RecordDraft {
        RecordDraft {
            kind: "deploy_decision".into(),
            recorded_at: "2026-11-24T10:00:00Z".into(),
            body: serde_json::json!({"n": n, "action": "ALLOW"}),
        }
    }

    fn chain(n: i64) -> Vec<ChainedRecord> {
        let mut out: Vec<ChainedRecord> = Vec::new();
        for i in 0..n {
            let r = seal(out.last(), draft(i));
            out.push(r);
        }
        out
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        let rep = verify_chain(&c);
        assert!(rep.ok(), "{:?}", rep.breaks);
        assert_eq!(rep.records, 5);
        assert_eq!(c[0].prev_hash, GENESIS_HASH);
    }

    #[test]
    fn edit_delete_and_reorder_are_detected() {
        let mut edited = chain(5);
        edited[2].body = serde_json::json!({"n": 2, "action": "BLOCK"});
        assert!(!verify_chain(&edited).ok());

        let mut deleted = chain(5);
        deleted.remove(2);
        assert!(!verify_chain(&deleted).ok());

        let mut reordered = chain(5);
        reordered.swap(1, 3);
        assert!(!verify_chain(&reordered).ok());

        let mut truncated_head = chain(5);
        truncated_head.remove(0);
        assert!(!verify_chain(&truncated_head).ok());
    }

    #[test]
    fn the_streamed_hash_is_the_hash_of_the_canonical_bytes() {
        let odd = RecordDraft {
            kind: "k\"\u{1}é".into(),
            recorded_at: "2026-11-24T10:00:00Z".into(),
            body: serde_json::json!({"b": [1.5, -0.0, 1e300, null, true], "a": "x\n\"y\"\u{7f}", "": {}}),
        };
        for (i, d) in [draft(1), draft(2), odd].into_iter().enumerate() {
            let prev = if i == 0 { GENESIS_HASH.to_string() } else { "ab".repeat(32) };
            let seq = i as i64 * 1_000_000_007 + 1;
            let expected = hex::encode(Sha256::digest(canonical_bytes(seq, &prev, &d)));
            assert_eq!(record_hash(seq, &prev, &d), expected);
        }
    }

    #[test]
    fn canonical_bytes_sort_keys() {
        let d = RecordDraft { kind: "k".into(), recorded_at: "t".into(), body: serde_json::json!({"b": 1, "a": 2}) };
        let s = String::from_utf8(canonical_bytes(1, GENESIS_HASH, &d)).unwrap();
        assert!(s.starts_with(r#"{"body":{"a":2,"b":1},"kind":"k""#), "{s}");
    }
}
