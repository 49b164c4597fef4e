//! Backend-neutral checks, run against SQLite and PostgreSQL by the `sqlite` and `postgres`
//! modules. Tamper checks take an `exec` closure that runs raw SQL on the backend's tables; the
//! SQL is written to be valid on both.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use guardrail_core::audit::{ChainedRecord, GENESIS_HASH, RecordDraft, record_hash};
use guardrail_store::{AuditStore, ListQuery, StoreError};
use serde_json::json;

/// A tamper check: gets a fresh, empty store and a way to run raw SQL on its tables.
pub type TamperCase = fn(&mut dyn AuditStore, &mut dyn FnMut(&str));

pub fn draft(n: i64) -> RecordDraft {
    RecordDraft {
        kind: if n % 2 == 0 { "deploy_decision".into() } else { "gate_error".into() },
        recorded_at: format!("2026-11-24T10:00:{:02}Z", n % 60),
        body: json!({"n": n, "action": "ALLOW", "nested": {"z": [1, 2.5, null], "a": true}}),
    }
}

/// Appends `n` records built by [`draft`] (0-based numbers) and returns them.
pub fn fill(store: &mut dyn AuditStore, n: i64) -> Vec<ChainedRecord> {
    (0..n).map(|i| store.append(draft(i)).expect("append")).collect()
}

fn seqs(records: &[ChainedRecord]) -> Vec<i64> {
    records.iter().map(|r| r.seq).collect()
}

fn q(limit: usize, before_seq: Option<i64>, kind: Option<&str>) -> ListQuery {
    ListQuery { limit, before_seq, kind: kind.map(str::to_string) }
}

pub fn rejects_invalid_drafts(store: &mut dyn AuditStore) {
    for (kind, at) in [("", "2026-11-24T10:00:00Z"), ("deploy_decision", "yesterday"), ("k", "2026-11-24 10:00")] {
        let d = RecordDraft { kind: kind.into(), recorded_at: at.into(), body: json!({}) };
        match store.append(d) {
            Err(StoreError::InvalidRecord(_)) => {}
            other => panic!("{kind:?} {at:?}: expected InvalidRecord, got {other:?}"),
        }
    }
    assert!(store.all().unwrap().is_empty(), "nothing was written");
    assert_eq!(store.append(draft(0)).unwrap().seq, 1);
}

pub fn round_trip(store: &mut dyn AuditStore) {
    // Empty store.
    let rep = store.verify().expect("verify empty");
    assert!(rep.ok(), "{:?}", rep.breaks);
    assert_eq!((rep.records, rep.head.clone()), (0, None));
    assert!(store.all().unwrap().is_empty());
    assert!(store.list(&q(10, None, None)).unwrap().is_empty());
    assert_eq!(store.get(1).unwrap(), None);
    assert_eq!(store.find("1").unwrap(), None);

    let recs = fill(store, 5);
    assert_eq!(seqs(&recs), vec![1, 2, 3, 4, 5]);
    assert_eq!(store.records_after(0).unwrap(), recs);
    assert_eq!(store.records_after(3).unwrap(), recs[3..]);
    assert!(store.records_after(5).unwrap().is_empty());
    assert_eq!(recs[0].prev_hash, GENESIS_HASH);
    for (i, r) in recs.iter().enumerate() {
        if i > 0 {
            assert_eq!(r.prev_hash, recs[i - 1].hash, "link at {}", r.seq);
        }
        let d = draft(i as i64);
        assert_eq!((&r.kind, &r.recorded_at, &r.body), (&d.kind, &d.recorded_at, &d.body));
        assert_eq!(r.hash, record_hash(r.seq, &r.prev_hash, &d));
    }

    // get / all return exactly what append returned.
    assert_eq!(store.get(3).unwrap().as_ref(), Some(&recs[2]));
    assert_eq!(store.get(6).unwrap(), None);
    assert_eq!(store.get(0).unwrap(), None);
    assert_eq!(store.all().unwrap(), recs);

    // find, every accepted form.
    let r3 = &recs[2];
    let found = |store: &mut dyn AuditStore, id: &str| store.find(id).unwrap().map(|r| r.seq);
    assert_eq!(found(store, "3"), Some(3));
    assert_eq!(found(store, " 3 "), Some(3));
    assert_eq!(found(store, &r3.id()), Some(3));
    assert_eq!(found(store, &r3.id().to_uppercase()), Some(3));
    assert_eq!(found(store, &format!("3-{}", &r3.hash[..4])), Some(3));
    assert_eq!(found(store, &format!("3-{}", r3.hash)), Some(3));
    let wrong = if r3.hash.starts_with('0') { "3-111111111111" } else { "3-000000000000" };
    assert_eq!(found(store, wrong), None, "mismatched hash prefix");
    assert_eq!(found(store, &format!("4-{}", &r3.hash[..12])), None, "prefix of another record");
    assert_eq!(found(store, &r3.hash[..8]), Some(3));
    assert_eq!(found(store, &r3.hash[..8].to_uppercase()), Some(3));
    assert_eq!(found(store, &r3.hash), Some(3));
    assert_eq!(found(store, &r3.hash[..7]), None, "7 hex digits is too short");
    assert_eq!(found(store, "99"), None);
    assert_eq!(found(store, "nonsense"), None);
    assert_eq!(found(store, ""), None);
    assert_eq!(found(store, "-3"), None);
    // A bare number that is no seq falls back to a hash prefix when long enough.
    if let Some(digits) = recs.iter().find(|r| r.hash[..8].chars().all(|c| c.is_ascii_digit())) {
        assert_eq!(found(store, &digits.hash[..8]), Some(digits.seq));
    }

    // list: newest first, limit, paging, kind.
    assert_eq!(seqs(&store.list(&q(2, None, None)).unwrap()), vec![5, 4]);
    assert_eq!(seqs(&store.list(&q(10, Some(4), None)).unwrap()), vec![3, 2, 1]);
    assert_eq!(seqs(&store.list(&q(10, None, Some("deploy_decision"))).unwrap()), vec![5, 3, 1]);
    assert_eq!(seqs(&store.list(&q(1, Some(5), Some("gate_error"))).unwrap()), vec![4]);
    assert_eq!(seqs(&store.list(&q(10, None, Some("nope"))).unwrap()), Vec::<i64>::new());
    assert!(store.list(&q(0, None, None)).unwrap().is_empty());
    assert_eq!(store.list(&q(usize::MAX, None, None)).unwrap().len(), 5);
    assert_eq!(store.list(&q(10, None, None)).unwrap()[0], recs[4]);

    let rep = store.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    assert_eq!(rep.records, 5);
    assert_eq!(rep.head.as_deref(), Some(recs[4].hash.as_str()));
}

/// A body full of awkward numbers and strings: everything must come back bit for bit, or the
/// hash would not match.
pub fn awkward_body() -> serde_json::Value {
    let mut s: u64 = 0x2545_F491_4F6C_DD1D;
    let mut random = Vec::new();
    while random.len() < 500 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let f = f64::from_bits(s);
        if f.is_finite() {
            random.push(f);
        }
    }
    json!({
        "fee": 18.98,
        "availability": 99.918981,
        "sum": 0.1 + 0.2,
        "edge": [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 1e16, 1e-7, 123456789.12345679],
        "ints": [u64::MAX, i64::MIN, 0, -1],
        "random": random,
        "text": "é 😀 \u{0} \u{1f} \"quoted\" back\\slash \u{2028} <tag> 'single'",
        "empty": {},
        "nested": [[], [{}], {"b": 1, "a": 2}],
    })
}

pub fn floats_round_trip(store: &mut dyn AuditStore, reopen: &dyn Fn() -> Box<dyn AuditStore>) {
    let body = awkward_body();
    let d =
        RecordDraft { kind: "deploy_decision".into(), recorded_at: "2026-11-24T10:00:00.123456+00:00".into(), body };
    store.append(draft(0)).unwrap();
    let rec = store.append(d.clone()).unwrap();
    let mut fresh = reopen();
    let got = fresh.get(rec.seq).unwrap().expect("record");
    assert_eq!(got, rec);
    assert_eq!(serde_json::to_string(&got.body).unwrap(), serde_json::to_string(&d.body).unwrap());
    let bits = |v: &serde_json::Value| -> Vec<u64> {
        v["random"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap().to_bits()).collect()
    };
    assert_eq!(bits(&got.body), bits(&d.body));
    assert_eq!(got.body["fee"].as_f64(), Some(18.98));
    assert_eq!(got.body["availability"].as_f64(), Some(99.918981));
    assert_eq!(got.body["sum"].as_f64(), Some(0.1 + 0.2));
    assert_eq!(got.body["ints"][0].as_u64(), Some(u64::MAX));
    assert_eq!(got.body["ints"][1].as_i64(), Some(i64::MIN));
    assert_eq!(got.hash, record_hash(got.seq, &got.prev_hash, &d));
    let rep = fresh.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);

    // Non-object bodies are fine too.
    for body in [json!([1, "two", 3.0]), json!("just text"), json!(null), json!(42)] {
        let rec = fresh.append(RecordDraft { body: body.clone(), ..draft(1) }).unwrap();
        assert_eq!(fresh.get(rec.seq).unwrap().map(|r| r.body), Some(body));
    }
    assert!(fresh.verify().unwrap().ok());
}

/// The breaks `verify` reports, as (seq, problem) for messages.
fn breaks(store: &mut dyn AuditStore) -> Vec<(i64, String)> {
    store.verify().expect("verify must report, not fail").breaks.into_iter().map(|b| (b.seq, b.problem)).collect()
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn tamper_edit_body(store: &mut dyn AuditStore, exec: &mut dyn FnMut(&str)) {
    fill(store, 5);
    exec(r#"UPDATE audit_records SET body = '{"action":"BLOCK","n":2}' WHERE seq = 3"#);
    let b = breaks(store);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].0, 3);
    assert!(b[0].1.contains("edited"), "{b:?}");
}

pub fn tamper_edit_other_columns(store: &mut dyn AuditStore, exec: &mut dyn FnMut(&str)) {
    fill(store, 5);
    exec("UPDATE audit_records SET kind = 'approval' WHERE seq = 2");
    exec("UPDATE audit_records SET recorded_at = '2020-01-01T00:00:00Z' WHERE seq = 4");
    let b = breaks(store);
    assert_eq!(b.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 4], "{b:?}");
}

pub fn tamper_body_not_json(store: &mut dyn AuditStore, exec: &mut dyn FnMut(&str)) {
    fill(store, 3);
    exec("UPDATE audit_records SET body = 'not json {' WHERE seq = 2");
    let b = breaks(store);
    assert!(!b.is_empty() && b.iter().all(|x| x.0 == 2), "{b:?}");
    assert!(b.iter().any(|x| x.1.contains("not valid JSON")), "{b:?}");
    match store.get(2) {
        Err(StoreError::Corrupt { seq: 2, reason }) => assert!(reason.contains("JSON"), "{reason}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(store.all(), Err(StoreError::Corrupt { seq: 2, .. })));
}

pub fn tamper_delete_middle(store: &mut dyn AuditStore, exec: &mut dyn FnMut(&str)) {
    fill(store, 5);
    exec("DELETE FROM audit_records WHERE seq = 3");
    let rep = store.verify().unwrap();
    assert_eq!(rep.records, 4);
    assert!(rep.breaks.iter().any(|b| b.seq == 4 && b.problem.contains("prev_hash")), "{:?}", rep.breaks);
}

pub fn tamper_swap(store: &mut dyn AuditStore, exec: &mut dyn FnMut(&str)) {
    let recs = fill(store, 5);
    let (a, b) = (&recs[1], &recs[3]);
    let set = |r: &ChainedRecord| {
        format!(
            "kind = {}, recorded_at = {}, body = {}, prev_hash = {}, hash = {}",
            sql_str(&r.kind),
            sql_str(&r.recorded_at),
            sql_str(&serde_json::to_string(&r.body).unwrap()),
            sql_str(&r.prev_hash),
            sql_str(&r.hash)
        )
    };
    // Via a placeholder hash, since `hash` is unique.
    exec("UPDATE audit_records SET hash = 'swap-placeholder' WHERE seq = 4");
    exec(&format!("UPDATE audit_records SET {} WHERE seq = 2", set(b)));
    exec(&format!("UPDATE audit_records SET {} WHERE seq = 4", set(a)));
    let moved = store.get(2).unwrap().unwrap();
    assert_eq!(moved.body, b.body, "the swap happened");
    let bs = breaks(store);
    for seq in [2, 3, 4, 5] {
        assert!(bs.iter().any(|x| x.0 == seq), "no break at {seq}: {bs:?}");
    }
}

pub fn tamper_truncate_tail(store: &mut dyn AuditStore, exec: &mut dyn FnMut(&str)) {
    fill(store, 5);
    exec("DELETE FROM audit_records WHERE seq = 5");
    let rep = store.verify().unwrap();
    assert_eq!(rep.records, 4);
    assert_eq!(rep.breaks.len(), 1, "{:?}", rep.breaks);
    assert_eq!(rep.breaks[0].seq, 5);
    assert!(rep.breaks[0].problem.contains("removed from the end"), "{:?}", rep.breaks);
    // Appending now would re-use seq 5 and hide the truncation, so it is refused.
    match store.append(draft(9)) {
        Err(StoreError::Corrupt { seq: 5, reason }) => assert!(reason.contains("refusing to append"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(store.all().unwrap().len(), 4);

    // Deleting everything is caught the same way.
    exec("DELETE FROM audit_records");
    let b = breaks(store);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].0, 5);
}

pub fn tamper_anchor(store: &mut dyn AuditStore, exec: &mut dyn FnMut(&str)) {
    fill(store, 3);
    exec(&format!("UPDATE chain_head SET hash = {} WHERE id = 1", sql_str(GENESIS_HASH)));
    let b = breaks(store);
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(b[0].1.contains("replaced"), "{b:?}");
    exec("DELETE FROM chain_head");
    let b = breaks(store);
    assert!(b.len() == 1 && b[0].1.contains("missing"), "{b:?}");
    assert!(matches!(store.append(draft(7)), Err(StoreError::Corrupt { .. })));
}

/// Someone with write access rebuilds the chain with record 2 edited and every hash recomputed:
/// the chain verifies, and only the hash at a signed position (`verify_at`, what a checkpoint
/// is compared with) shows the rewrite.
pub fn tamper_rebuild(store: &mut dyn AuditStore, exec: &mut dyn FnMut(&str)) {
    let recs = fill(store, 5);
    let (rep, at3) = store.verify_at(3).unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    assert_eq!(at3.as_deref(), Some(recs[2].hash.as_str()));
    assert_eq!(store.verify_at(6).unwrap().1, None);

    let mut rebuilt: Vec<ChainedRecord> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let mut d = RecordDraft { kind: r.kind.clone(), recorded_at: r.recorded_at.clone(), body: r.body.clone() };
        if i == 1 {
            d.body = json!({"n": 1, "action": "BLOCK"});
        }
        rebuilt.push(guardrail_core::audit::seal(rebuilt.last(), d));
    }
    exec("DELETE FROM audit_records");
    for r in &rebuilt {
        exec(&format!(
            "INSERT INTO audit_records (seq, kind, recorded_at, body, prev_hash, hash) VALUES ({}, {}, {}, {}, {}, {})",
            r.seq,
            sql_str(&r.kind),
            sql_str(&r.recorded_at),
            sql_str(&serde_json::to_string(&r.body).unwrap()),
            sql_str(&r.prev_hash),
            sql_str(&r.hash)
        ));
    }
    let last = rebuilt.last().unwrap();
    exec(&format!("UPDATE chain_head SET seq = {}, hash = {} WHERE id = 1", last.seq, sql_str(&last.hash)));

    let (rep, now3) = store.verify_at(3).unwrap();
    assert!(rep.ok(), "a rebuilt chain verifies on its own: {:?}", rep.breaks);
    assert_eq!(now3.as_deref(), Some(rebuilt[2].hash.as_str()));
    assert_ne!(now3, at3, "the hash at a signed position shows the rewrite");
    // Position 1 was not touched: its hash (and so a checkpoint of size 1) still holds.
    assert_eq!(store.verify_at(1).unwrap().1.as_deref(), Some(recs[0].hash.as_str()));
}

/// `threads` threads, each with its own store from `open`, append `per_thread` records at once.
/// The result must be one gap-free, valid chain holding every record exactly once.
pub fn concurrent_appends(open: Arc<dyn Fn() -> Box<dyn AuditStore> + Send + Sync>, threads: i64, per_thread: i64) {
    let barrier = Arc::new(Barrier::new(threads as usize));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (open, barrier) = (Arc::clone(&open), Arc::clone(&barrier));
            std::thread::spawn(move || {
                // Open after the barrier too, so schema creation races as well.
                barrier.wait();
                let mut store = open();
                let mut mine = Vec::new();
                for i in 0..per_thread {
                    let rec = store
                        .append(RecordDraft {
                            kind: "deploy_decision".into(),
                            recorded_at: "2026-11-24T10:00:00Z".into(),
                            body: json!({"thread": t, "i": i}),
                        })
                        .unwrap_or_else(|e| panic!("thread {t} append {i}: {e}"));
                    mine.push(rec.seq);
                }
                mine
            })
        })
        .collect();
    let mut per_thread_seqs = Vec::new();
    for h in handles {
        per_thread_seqs.push(h.join().expect("appender thread panicked"));
    }
    for mine in &per_thread_seqs {
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "a thread's own appends are ordered");
    }
    let mut store = open();
    let all = store.all().unwrap();
    let total = threads * per_thread;
    assert_eq!(all.len() as i64, total);
    assert_eq!(seqs(&all), (1..=total).collect::<Vec<_>>());
    let seen: BTreeSet<(i64, i64)> =
        all.iter().map(|r| (r.body["thread"].as_i64().unwrap(), r.body["i"].as_i64().unwrap())).collect();
    assert_eq!(seen.len() as i64, total, "every append is stored exactly once");
    let rep = store.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    assert_eq!(rep.records as i64, total);
}

/// `threads` threads, each with its own store, race to claim the same key (and interleave
/// plain appends): exactly one claim record is stored, every loser is told which record holds
/// it, a claim on another key is independent, and the chain stays valid.
pub fn concurrent_claims(open: Arc<dyn Fn() -> Box<dyn AuditStore> + Send + Sync>, threads: usize) {
    use guardrail_store::Claim;
    let claim = |key: &str, t: usize| RecordDraft {
        kind: "execution_claim".into(),
        recorded_at: "2026-11-24T10:00:00Z".into(),
        body: json!({"claim": key, "thread": t}),
    };
    {
        // The first open creates the schema; a plain record of the same kind without a claim
        // field holds nothing.
        let mut s = open();
        s.append(RecordDraft { body: json!({"thread": "setup"}), ..claim("x", 0) }).unwrap();
    }
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (open, barrier) = (Arc::clone(&open), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut store = open();
                barrier.wait();
                store
                    .append(RecordDraft {
                        kind: "deploy_decision".into(),
                        recorded_at: "2026-11-24T10:00:00Z".into(),
                        body: json!({"thread": t}),
                    })
                    .unwrap_or_else(|e| panic!("thread {t} append: {e}"));
                store.append_claim(claim("7-abc#0", t), "7-abc#0").unwrap_or_else(|e| panic!("thread {t} claim: {e}"))
            })
        })
        .collect();
    let results: Vec<Claim> = handles.into_iter().map(|h| h.join().expect("claimant panicked")).collect();
    let won: Vec<&ChainedRecord> =
        results.iter().filter_map(|c| if let Claim::Won(r) = c { Some(r) } else { None }).collect();
    assert_eq!(won.len(), 1, "exactly one claimant wins: {results:?}");
    for c in &results {
        if let Claim::Held(h) = c {
            assert_eq!(h, won[0], "losers are told the winning record");
        }
    }
    let mut store = open();
    let claims: Vec<_> = store.all().unwrap().into_iter().filter(|r| r.body.get("claim").is_some()).collect();
    assert_eq!(claims.len(), 1);
    // Another key is another claim; the same key again is held.
    assert!(matches!(store.append_claim(claim("7-abc#1", 99), "7-abc#1").unwrap(), Claim::Won(_)));
    assert!(matches!(store.append_claim(claim("7-abc#0", 99), "7-abc#0").unwrap(), Claim::Held(_)));
    // A draft whose body does not carry the claim is refused.
    assert!(matches!(store.append_claim(claim("a", 0), "b"), Err(StoreError::InvalidRecord(_))));
    let rep = store.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    assert_eq!(rep.records, threads + 3);
}

/// `hash_at` answers the stored hash of a record without its body, and nothing past the head.
pub fn hash_at_is_the_records_hash(store: &mut dyn AuditStore) {
    assert_eq!(store.hash_at(1).unwrap(), None, "an empty chain");
    let recs = fill(store, 3);
    for r in &recs {
        assert_eq!(store.hash_at(r.seq).unwrap().as_deref(), Some(r.hash.as_str()));
    }
    assert_eq!(store.hash_at(4).unwrap(), None);
    assert_eq!(store.hash_at(0).unwrap(), None);
}
