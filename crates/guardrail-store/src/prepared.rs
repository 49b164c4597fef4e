//! A draft serialised once, before any lock is taken.
//!
//! A record's hash is the sha256 of its canonical bytes
//! ([`guardrail_core::audit::canonical_bytes`]): `{"body":…,"kind":…,"prev_hash":…,
//! "recorded_at":…,"seq":…}`, compact, keys in that order. Everything up to `"prev_hash":`
//! depends on the draft alone, so [`Prepared::new`] serialises the body once (the text the
//! store keeps) and hashes that prefix on the caller's thread; sealing under the store's lock
//! ([`Prepared::seal`]) then only hashes the short tail (the previous hash, the time, the seq).
//! Before, the body was serialised twice under the lock (once for the hash, once for the
//! column) — for a gate record of ~14 KB the larger part of a group commit's CPU.
//!
//! The bytes hashed are the same as `canonical_bytes`' (serde_json writes a struct's fields in
//! declaration order, and a string the same way alone or as a field); a test pins it.

use guardrail_core::audit::{BodyHead, ChainedRecord, EncodedDraft, GENESIS_HASH, RecordDraft};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// A checked draft, its body's text and the hash state of its canonical bytes up to
/// `"prev_hash":`.
#[derive(Clone)]
pub(crate) struct Prepared {
    pub draft: RecordDraft,
    /// The body as stored (`serde_json::to_string`).
    pub body: String,
    head: Sha256,
}

fn json_str(s: &str) -> String {
    // A string always serialises.
    serde_json::to_string(s).unwrap_or_default()
}

impl Prepared {
    /// Serialises the body and hashes the position-independent prefix. Does not validate the
    /// draft (callers do, before anything is queued).
    pub(crate) fn new(draft: RecordDraft) -> Result<Prepared, StoreError> {
        let body = crate::body_text(&draft.body)?;
        Ok(Prepared::hashed(draft, body))
    }

    /// A draft whose body is already its canonical text ([`EncodedDraft`]): checked as
    /// [`crate::validate_draft`] checks a draft, and hashed from the text as given, without a
    /// value (the draft's `body` is `Value::Null`, and so is the sealed record's: the caller holds
    /// the body). Debug builds check that the text is canonical (the bytes `verify` recomputes).
    /// A head hashed while the text was written ([`EncodedDraft::body_head`]) is continued
    /// instead of hashing the text again.
    pub(crate) fn encoded(draft: EncodedDraft) -> Result<Prepared, StoreError> {
        debug_assert!(draft.is_canonical(), "an EncodedDraft's body text is not canonical JSON");
        let EncodedDraft { kind, recorded_at, body_text, body_head } = draft;
        debug_assert!(
            body_head.as_ref().is_none_or(|h| *h == BodyHead::of(&body_text)),
            "an EncodedDraft's body head is not its text's"
        );
        let draft = RecordDraft { kind, recorded_at, body: serde_json::Value::Null };
        crate::validate_draft(&draft)?;
        let head = body_head.unwrap_or_else(|| BodyHead::of(&body_text));
        Ok(Prepared::continued(draft, body_text, head))
    }

    fn hashed(draft: RecordDraft, body: String) -> Prepared {
        let head = BodyHead::of(&body);
        Prepared::continued(draft, body, head)
    }

    /// The prefix's hash, from the state after the body ([`BodyHead`]).
    fn continued(draft: RecordDraft, body: String, head: BodyHead) -> Prepared {
        let mut head = head.into_state();
        head.update(b",\"kind\":");
        head.update(json_str(&draft.kind).as_bytes());
        head.update(b",\"prev_hash\":");
        Prepared { draft, body, head }
    }

    /// Seals the draft as the record following `prev` (or the first when `None`), as
    /// [`guardrail_core::audit::seal`] does; returns the record and its body's text.
    pub(crate) fn seal(self, prev: Option<&ChainedRecord>) -> (ChainedRecord, String) {
        let (seq, prev_hash) = match prev {
            Some(p) => (p.seq + 1, p.hash.clone()),
            None => (1, GENESIS_HASH.to_string()),
        };
        let mut h = self.head;
        h.update(json_str(&prev_hash).as_bytes());
        h.update(b",\"recorded_at\":");
        h.update(json_str(&self.draft.recorded_at).as_bytes());
        h.update(b",\"seq\":");
        h.update(seq.to_string().as_bytes());
        h.update(b"}");
        let hash = format!("{:x}", h.finalize());
        let RecordDraft { kind, recorded_at, body } = self.draft;
        (ChainedRecord { seq, kind, recorded_at, body, prev_hash, hash }, self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardrail_core::audit::seal;
    use serde_json::json;

    #[test]
    fn seals_exactly_as_the_core_does() {
        let drafts = [
            RecordDraft { kind: "deploy_decision".into(), recorded_at: "2026-02-21T00:00:00Z".into(), body: json!({}) },
            RecordDraft {
                kind: "k\"ind\u{1F600}\n".into(),
                recorded_at: "2026-02-21T00:00:00.123456789Z".into(),
                body: json!({"z": [1, 2.5, -0.0, 1e300, null, true], "a": {"é": "\"\\\u{0001}</x>"}, "n": 12345678901234i64}),
            },
            RecordDraft { kind: "x".into(), recorded_at: "2026-02-21T00:00:00Z".into(), body: json!("just text") },
        ];
        let mut prev_core: Option<ChainedRecord> = None;
        let mut prev_ours: Option<ChainedRecord> = None;
        for d in drafts {
            let core = seal(prev_core.as_ref(), d.clone());
            let (ours, text) = Prepared::new(d).unwrap().seal(prev_ours.as_ref());
            assert_eq!(ours, core);
            assert_eq!(text, serde_json::to_string(&core.body).unwrap());
            prev_core = Some(core);
            prev_ours = Some(ours);
        }
        assert_eq!(prev_ours.unwrap().seq, 3);
    }

    #[test]
    fn an_encoded_draft_seals_as_its_value_does() {
        let body = json!({"z": [1, 2.5, -0.0, 1e300, null], "a": {"é": "\"\\\u{0001}</x>"}});
        let text = serde_json::to_string(&body).unwrap();
        let d = RecordDraft { kind: "k".into(), recorded_at: "2026-02-21T00:00:00Z".into(), body };
        let first = seal(None, d.clone());
        let enc = EncodedDraft {
            kind: d.kind.clone(),
            recorded_at: d.recorded_at.clone(),
            body_text: text.clone(),
            body_head: None,
        };
        let (ours, stored) = Prepared::encoded(enc.clone()).unwrap().seal(None);
        assert_eq!((ours.seq, &ours.hash, &ours.prev_hash), (first.seq, &first.hash, &first.prev_hash));
        assert_eq!((stored, ours.body), (text.clone(), serde_json::Value::Null));
        let second = seal(Some(&first), d);
        let (ours, _) = Prepared::encoded(enc.clone()).unwrap().seal(Some(&first));
        assert_eq!(ours.hash, second.hash);
        // Checked as any draft is.
        let bad = EncodedDraft { recorded_at: "yesterday".into(), ..enc };
        assert!(matches!(Prepared::encoded(bad), Err(StoreError::InvalidRecord(_))));
    }
}
