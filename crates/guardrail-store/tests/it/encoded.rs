//! `append_encoded`: a body given as its canonical text seals, stores and verifies exactly as the
//! same body given as a value; where something must read the body (an outbox router, a body
//! that may hold a claim) the store reads it back, so nothing is skipped.

use std::sync::Arc;

use guardrail_core::audit::{BodyHead, EncodedDraft, RecordDraft};
use guardrail_store::{AuditStore, ChannelKind, OutboxRouter, OutboxTarget, SqliteStore};
use serde_json::{Value, json};

fn body(n: i64) -> Value {
    json!({"n": n, "z": [1, 2.5, -0.0, 1e300, null], "a": {"é": "\"\\\u{0001}</x>", "policies": "line\n"}})
}

/// The draft of `body` as its text, with the hash state written along with it for an even `n`
/// (as `guardrail gate` appends it) and without for an odd one (the store hashes the text).
fn encoded(kind: &str, body: &Value) -> EncodedDraft {
    let (body_text, head) = BodyHead::encode(body, 0).unwrap();
    assert_eq!(body_text, serde_json::to_string(body).unwrap());
    let hashed = body["n"].as_i64().is_some_and(|n| n % 2 == 0);
    EncodedDraft {
        kind: kind.into(),
        recorded_at: "2026-12-06T10:00:00Z".into(),
        body_text,
        body_head: hashed.then_some(head),
    }
}

fn value(kind: &str, body: &Value) -> RecordDraft {
    RecordDraft { kind: kind.into(), recorded_at: "2026-12-06T10:00:00Z".into(), body: body.clone() }
}

#[test]
fn an_encoded_body_seals_stores_and_verifies_as_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut by_text = SqliteStore::open(dir.path().join("text.db")).unwrap();
    let mut by_value = SqliteStore::open(dir.path().join("value.db")).unwrap();
    for n in 0..3 {
        let b = body(n);
        let ours = by_text.append_encoded(encoded("deploy_decision", &b)).unwrap();
        let theirs = by_value.append(value("deploy_decision", &b)).unwrap();
        assert_eq!((ours.seq, &ours.hash, &ours.prev_hash), (theirs.seq, &theirs.hash, &theirs.prev_hash));
        assert_eq!(ours.body, Value::Null, "the caller holds the body; it is not decoded back");
        assert_eq!(by_text.get(ours.seq).unwrap().unwrap(), theirs, "stored as the value's record");
    }
    assert!(by_text.verify().unwrap().ok());
    // Checked as any draft is.
    let bad = EncodedDraft { recorded_at: "yesterday".into(), ..encoded("deploy_decision", &body(9)) };
    assert!(by_text.append_encoded(bad).is_err());
    assert_eq!(by_text.verify().unwrap().records, 3);
}

struct Everything;

impl OutboxRouter for Everything {
    fn route(&self, draft: &RecordDraft) -> Vec<OutboxTarget> {
        // Reads the body: an encoded draft must reach it as a value.
        let key = draft.body.get("n").map(Value::to_string);
        vec![OutboxTarget { channel: ChannelKind::SlackDeploy, ordering_key: key }]
    }
}

#[test]
fn a_routed_store_reads_the_body_back_and_routes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("a.db")).unwrap();
    store.set_outbox_router(Some(Arc::new(Everything)));
    let rec = store.append_encoded(encoded("deploy_decision", &body(7))).unwrap();
    assert_eq!(rec.body, body(7));
    let rows = store.outbox_entries(None, None, 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].ordering_key.as_deref(), Some("7"), "routed by the body's value");
}

#[test]
fn a_body_that_may_hold_a_claim_is_indexed_as_a_claim() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("a.db")).unwrap();
    let claimed = json!({"claim": "inc-1#0", "action": "restart"});
    let rec = store.append_encoded(encoded("execution_claim", &claimed)).unwrap();
    assert_eq!(rec.body, claimed);
    // The claim index knows it: a later claim of the same key is held by that record.
    match store.append_claim(value("execution_claim", &claimed), "inc-1#0").unwrap() {
        guardrail_store::Claim::Held(holder) => assert_eq!(holder.seq, rec.seq),
        other => panic!("a second claimant won: {other:?}"),
    }
}

/// Inputs kept apart: a SQLite store keeps each text once under its digest, durably, and reads it
/// back; a store that never kept one has none (and no table yet).
#[test]
fn a_sqlite_store_keeps_each_input_once_and_reads_it_back() {
    use guardrail_store::KeptInput;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.kept_input("ab").unwrap(), None, "no table yet");
    let big = "policies: []\n".repeat(10_000);
    let inputs = [KeptInput { sha256: "d1", text: &big }, KeptInput { sha256: "d2", text: "small" }];
    assert!(store.keep_inputs(&inputs).unwrap());
    assert!(store.keep_inputs(&inputs[..1]).unwrap(), "kept again: nothing written");
    drop(store);
    let mut store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.kept_input("d1").unwrap().as_deref(), Some(big.as_str()));
    assert_eq!(store.kept_input("d2").unwrap().as_deref(), Some("small"));
    assert_eq!(store.kept_input("d3").unwrap(), None);
    let db = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = db.query_row("SELECT count(*) FROM audit_inputs", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2);
    // The chain is untouched: still empty and intact.
    assert!(store.verify().unwrap().ok());
    assert!(store.all().unwrap().is_empty());
}
