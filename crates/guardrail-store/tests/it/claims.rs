//! The claim index and linked appends, on both backends, alone and through shared stores:
//! many claimants racing on a few keys (one winner each, every loser told the winner), the index
//! built for a store written before it existed and brought up to date after an older build
//! appended, damaged records refusing the claims they could hold, and linked pairs sealed
//! consecutively or not at all.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use guardrail_core::audit::{ChainedRecord, RecordDraft, seal};
use guardrail_store::{AuditStore, Claim, SharedStore, SqliteStore, StoreError, open_store, share};
use serde_json::json;

use crate::postgres::TestSchema;

type Open = Arc<dyn Fn() -> Box<dyn AuditStore> + Send + Sync>;

fn claim_draft(kind: &str, key: &str, who: &str) -> RecordDraft {
    RecordDraft {
        kind: kind.into(),
        recorded_at: "2026-12-06T10:00:00Z".into(),
        body: json!({"claim": key, "who": who}),
    }
}

fn plain(kind: &str, body: serde_json::Value) -> RecordDraft {
    RecordDraft { kind: kind.into(), recorded_at: "2026-12-06T10:00:00Z".into(), body }
}

fn approval_request(decision: &ChainedRecord) -> RecordDraft {
    plain("approval_request", json!({"decision": decision.id(), "incident": decision.body["incident"]}))
}

/// `threads` claimants race on 6 keys (each thread in its own order, with plain and linked
/// appends in between): one winner per key, every loser told the winner, linked pairs
/// consecutive, one valid chain.
fn many_claimants_race(open: Open, threads: usize) {
    const KEYS: usize = 6;
    let barrier = Arc::new(Barrier::new(threads));
    let joins: Vec<_> = (0..threads)
        .map(|t| {
            let (open, barrier) = (open.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut store = open();
                barrier.wait();
                let mut results = Vec::new();
                for i in 0..KEYS {
                    let key = format!("inc-{}#0", (i + t) % KEYS);
                    let c = store
                        .append_claim(claim_draft("execution_claim", &key, &format!("t{t}")), &key)
                        .unwrap_or_else(|e| panic!("thread {t} claim {key}: {e}"));
                    results.push((key, c));
                    if i % 2 == 0 {
                        store.append(plain("deploy_decision", json!({"t": t, "i": i}))).unwrap();
                    } else {
                        let (d, r) = store
                            .append_linked(
                                plain("decision", json!({"incident": format!("inc-{t}-{i}")})),
                                Box::new(approval_request),
                            )
                            .unwrap();
                        assert_eq!((r.seq, &r.prev_hash), (d.seq + 1, &d.hash), "a linked pair is consecutive");
                        assert_eq!(r.body["decision"], json!(d.id()));
                    }
                }
                results
            })
        })
        .collect();
    let mut by_key: BTreeMap<String, Vec<Claim>> = BTreeMap::new();
    for j in joins {
        for (key, c) in j.join().expect("claimant panicked") {
            by_key.entry(key).or_default().push(c);
        }
    }
    assert_eq!(by_key.len(), KEYS);
    for (key, results) in &by_key {
        let won: Vec<&ChainedRecord> =
            results.iter().filter_map(|c| if let Claim::Won(r) = c { Some(r) } else { None }).collect();
        assert_eq!(won.len(), 1, "{key}: exactly one winner among {results:?}");
        for c in results {
            if let Claim::Held(h) = c {
                assert_eq!(h, won[0], "{key}: a loser is told the winning record");
            }
        }
    }
    let mut store = open();
    let rep = store.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    let all = store.all().unwrap();
    assert_eq!(all.iter().filter(|r| r.kind == "execution_claim").count(), KEYS, "losers appended nothing");
    assert_eq!(rep.records, KEYS + threads * KEYS / 2 + threads * KEYS / 2 * 2);
    for r in all.iter().filter(|r| r.kind == "approval_request") {
        assert_eq!(all[(r.seq - 2) as usize].id(), r.body["decision"], "the request follows its decision");
    }
}

fn direct_sqlite(path: std::path::PathBuf) -> Open {
    Arc::new(move || Box::new(SqliteStore::open(&path).unwrap()) as Box<dyn AuditStore>)
}

fn handles(shared: Arc<SharedStore>) -> Open {
    Arc::new(move || Box::new(shared.handle()) as Box<dyn AuditStore>)
}

fn pg_spec(schema: &TestSchema) -> String {
    let sep = if schema.url.contains('?') { '&' } else { '?' };
    format!("{}{sep}schema={}", schema.url, schema.name)
}

#[test]
fn sqlite_claimants_race_alone_and_shared() {
    let dir = tempfile::tempdir().unwrap();
    many_claimants_race(direct_sqlite(dir.path().join("a.db")), 8);
    let shared = share(&format!("sqlite:{}", dir.path().join("b.db").display())).unwrap();
    many_claimants_race(handles(shared.clone()), 16);
    assert!(shared.stats().commits < shared.stats().records, "{:?}", shared.stats());
}

#[test]
fn postgres_claimants_race_alone_and_shared() {
    let schema = TestSchema::new();
    let spec = pg_spec(&schema);
    let direct = spec.clone();
    many_claimants_race(Arc::new(move || open_store(&direct).unwrap()), 8);
    let other = TestSchema::new();
    many_claimants_race(handles(share(&pg_spec(&other)).unwrap()), 16);
}

/// Two replicas (two shared stores, two writers) on one PostgreSQL chain race on the same keys.
#[test]
fn postgres_two_replicas_one_winner_per_claim() {
    let schema = TestSchema::new();
    let a = pg_spec(&schema);
    let b = a.replacen("postgres://", "postgresql://", 1);
    let (sa, sb) = (share(&a).unwrap(), share(&b).unwrap());
    assert!(!Arc::ptr_eq(&sa, &sb));
    let n = std::sync::atomic::AtomicUsize::new(0);
    let open: Open = Arc::new(move || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::new(if i.is_multiple_of(2) { sa.handle() } else { sb.handle() }) as Box<dyn AuditStore>
    });
    many_claimants_race(open, 16);
}

/// Two shared stores (two writers, as two server processes would have) on one SQLite file race
/// on the same keys.
#[test]
fn sqlite_two_writers_one_winner_per_claim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let (a, b) = (format!("sqlite:{}", path.display()), path.display().to_string());
    let (sa, sb) = (share(&a).unwrap(), share(&b).unwrap());
    assert!(!Arc::ptr_eq(&sa, &sb));
    let n = std::sync::atomic::AtomicUsize::new(0);
    let open: Open = Arc::new(move || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::new(if i.is_multiple_of(2) { sa.handle() } else { sb.handle() }) as Box<dyn AuditStore>
    });
    many_claimants_race(open, 12);
}

/// Appends a record as a build without the claim index would: sealed and inserted with the
/// anchor moved, the index (and its mark) left alone.
fn append_as_older_build(store: &mut dyn AuditStore, exec: &mut dyn FnMut(&str), draft: RecordDraft) -> ChainedRecord {
    let last = store.all().unwrap().pop();
    let rec = seal(last.as_ref(), draft);
    let body = serde_json::to_string(&rec.body).unwrap();
    assert!(!body.contains('\''));
    exec(&format!(
        "INSERT INTO audit_records (seq, kind, recorded_at, body, prev_hash, hash) VALUES ({}, '{}', '{}', '{}', '{}', \
         '{}'); UPDATE chain_head SET seq = {}, hash = '{}' WHERE id = 1",
        rec.seq, rec.kind, rec.recorded_at, body, rec.prev_hash, rec.hash, rec.seq, rec.hash
    ));
    rec
}

/// An existing store (written before the index: no table, no mark) is indexed by its first
/// append, with `verify` never needing the index; records appended by an older build later are
/// indexed by the next append; a damaged record of a kind refuses the claims of that kind that it
/// could hold (not those decided by an earlier holder), and a damaged holder its own claim.
fn index_is_built_and_kept_up(open: Open, exec: &mut dyn FnMut(&str)) {
    let mut store = open();
    let Claim::Won(first) = store.append_claim(claim_draft("execution_claim", "a", "x"), "a").unwrap() else {
        panic!("a new claim wins")
    };
    // A plain record with a claim field holds it too, as it always did.
    let plain_holder = store.append(claim_draft("execution_claim", "b", "plain")).unwrap();
    store.append(claim_draft("claim_release", "a", "x")).unwrap();
    drop(store);
    exec("DROP TABLE audit_claims; DROP TABLE audit_claim_kinds; ALTER TABLE chain_head DROP COLUMN claims_seq");
    let mut store = open();
    assert!(store.verify().unwrap().ok(), "verify does not need the index");
    assert_eq!(store.append_claim(claim_draft("execution_claim", "a", "y"), "a").unwrap(), Claim::Held(first.clone()));
    assert_eq!(store.append_claim(claim_draft("execution_claim", "b", "y"), "b").unwrap(), Claim::Held(plain_holder));
    assert!(matches!(store.append_claim(claim_draft("execution_claim", "c", "y"), "c").unwrap(), Claim::Won(_)));
    // The same key of another kind is another claim.
    assert!(matches!(store.append_claim(claim_draft("claim_release", "a", "y"), "a").unwrap(), Claim::Held(_)));

    let old = append_as_older_build(store.as_mut(), exec, claim_draft("execution_claim", "old", "older build"));
    assert_eq!(store.append_claim(claim_draft("execution_claim", "old", "y"), "old").unwrap(), Claim::Held(old));
    // A kind nobody claimed yet is indexed when first claimed: an older build's record holds its
    // key even though a later record of this build repeating the key was indexed first.
    let older = append_as_older_build(store.as_mut(), exec, claim_draft("jira_note", "inc-9", "older build"));
    store.append(claim_draft("jira_note", "inc-9", "repeat")).unwrap();
    assert_eq!(store.append_claim(claim_draft("jira_note", "inc-9", "y"), "inc-9").unwrap(), Claim::Held(older));
    assert!(store.verify().unwrap().ok());

    // A damaged record: claims of its kind it might hold are refused, once the index is rebuilt.
    let damaged = store.append(claim_draft("execution_claim", "d", "to be damaged")).unwrap();
    // (Not the last record: the tests of a damaged tail are the tamper tests'.)
    store.append(plain("deploy_decision", json!({"n": 1}))).unwrap();
    exec(&format!("UPDATE audit_records SET body = 'not json' WHERE seq = {}", damaged.seq));
    exec("DELETE FROM audit_claims; DELETE FROM audit_claim_kinds; UPDATE chain_head SET claims_seq = NULL");
    drop(store);
    let mut store = open();
    match store.append_claim(claim_draft("execution_claim", "e", "y"), "e") {
        Err(StoreError::Corrupt { seq, .. }) => assert_eq!(seq, damaged.seq),
        other => panic!("a damaged record of the kind must refuse the claim: {other:?}"),
    }
    // A guarded claim of that kind is refused too, its first record with it.
    let n = store.verify().unwrap().records;
    match store.append_guarded_claim(plain("grant", json!({"request": "r"})), first_answer(0)) {
        Err(StoreError::Corrupt { seq, .. }) => assert_eq!(seq, damaged.seq),
        other => panic!("a damaged record of the kind must refuse the guarded claim: {other:?}"),
    }
    assert_eq!(store.verify().unwrap().records, n, "nothing appended");
    // Decided by a holder before the damaged record, as the scan in seq order decided it.
    assert_eq!(store.append_claim(claim_draft("execution_claim", "a", "z"), "a").unwrap(), Claim::Held(first.clone()));
    assert!(matches!(store.append_claim(claim_draft("other_claim", "e", "y"), "e").unwrap(), Claim::Won(_)));
    // A damaged holder refuses its own claim.
    exec(&format!("UPDATE audit_records SET body = 'not json' WHERE seq = {}", first.seq));
    assert!(matches!(
        store.append_claim(claim_draft("execution_claim", "a", "z"), "a"),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn sqlite_index_is_built_and_kept_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut exec = |sql: &str| conn.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    index_is_built_and_kept_up(direct_sqlite(path.clone()), &mut exec);
}

#[test]
fn sqlite_index_is_built_through_a_shared_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let spec = format!("sqlite:{}", path.display());
    {
        let mut s = SqliteStore::open(&path).unwrap();
        s.append(claim_draft("execution_claim", "a", "x")).unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE audit_claims; DROP TABLE audit_claim_kinds; ALTER TABLE chain_head DROP COLUMN claims_seq",
    )
    .unwrap();
    let shared = share(&spec).unwrap();
    let mut h = shared.handle();
    assert!(
        matches!(h.append_claim(claim_draft("execution_claim", "a", "y"), "a").unwrap(), Claim::Held(r) if r.seq == 1)
    );
    assert!(
        matches!(h.append_claim(claim_draft("execution_claim", "b", "y"), "b").unwrap(), Claim::Won(r) if r.seq == 2)
    );
}

#[test]
fn postgres_index_is_built_and_kept_up() {
    let schema = TestSchema::new();
    let spec = pg_spec(&schema);
    drop(open_store(&spec).unwrap());
    let mut exec = schema.raw();
    index_is_built_and_kept_up(Arc::new(move || open_store(&spec).unwrap()), &mut exec);
}

/// A linked pair is consecutive, its second draft is checked (an invalid one appends neither),
/// and a later append follows it.
fn linked_pairs(store: &mut dyn AuditStore) {
    store.append(plain("deploy_decision", json!({"n": 0}))).unwrap();
    let (d, r) =
        store.append_linked(plain("decision", json!({"incident": "INC-1"})), Box::new(approval_request)).unwrap();
    assert_eq!((d.seq, r.seq, &r.prev_hash), (2, 3, &d.hash));
    assert_eq!(r.body, json!({"decision": d.id(), "incident": "INC-1"}));
    assert_eq!(store.all().unwrap()[1..], [d.clone(), r.clone()]);
    let bad = store.append_linked(
        plain("decision", json!({})),
        Box::new(|_| RecordDraft { kind: "approval_request".into(), recorded_at: "later".into(), body: json!({}) }),
    );
    assert!(matches!(bad, Err(StoreError::InvalidRecord(_))), "{bad:?}");
    let bad = store.append_linked(plain("", json!({})), Box::new(approval_request));
    assert!(matches!(bad, Err(StoreError::InvalidRecord(_))), "{bad:?}");
    assert_eq!(store.all().unwrap().len(), 3, "a refused pair appends neither");
    assert_eq!(store.append(plain("deploy_decision", json!({"n": 1}))).unwrap().seq, 4);
    assert!(store.verify().unwrap().ok());
}

#[test]
fn sqlite_linked_pairs() {
    let dir = tempfile::tempdir().unwrap();
    linked_pairs(&mut SqliteStore::open(dir.path().join("a.db")).unwrap());
    let shared = share(&format!("sqlite:{}", dir.path().join("b.db").display())).unwrap();
    linked_pairs(&mut shared.handle());
}

#[test]
fn postgres_linked_pairs() {
    let schema = TestSchema::new();
    linked_pairs(open_store(&pg_spec(&schema)).unwrap().as_mut());
    let other = TestSchema::new();
    linked_pairs(&mut share(&pg_spec(&other)).unwrap().handle());
}

/// The mirrored variant copies both records to the JSONL mirror.
#[test]
fn linked_pairs_are_mirrored() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("a.db")).unwrap();
    let mirror = dir.path().join("mirror");
    let (d, r) = guardrail_store::append_linked_mirrored(
        &mut store,
        Some(&mirror),
        plain("decision", json!({"incident": "INC-1"})),
        Box::new(approval_request),
    )
    .unwrap();
    let text = std::fs::read_to_string(mirror.join("decisions-2026-12-06.jsonl")).unwrap();
    let seqs: Vec<i64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["audit_seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [d.seq, r.seq]);
}

/// An approval and the execution claim keyed by it, in one commit: the claim is consecutive
/// when it wins; when the key is held the approval is appended alone and the holder returned;
/// an invalid claim draft appends neither. Then `threads` claimants race with linked claims on
/// one key: one winner, every first record appended.
fn then_claim(open: Open, threads: usize) {
    let mut store = open();
    let claim_for = |key: String| -> guardrail_store::LinkedClaim {
        Box::new(move |a: &ChainedRecord| (claim_draft("execution_claim", &key, &a.id()), key.clone()))
    };
    let (a, c) = store.append_then_claim(plain("approval", json!({"n": 1})), claim_for("k#0".into())).unwrap();
    let Claim::Won(won) = c else { panic!("a new key wins") };
    assert_eq!((won.seq, &won.prev_hash, &won.body["who"]), (a.seq + 1, &a.hash, &json!(a.id())));
    let (a2, c) = store.append_then_claim(plain("approval", json!({"n": 2})), claim_for("k#0".into())).unwrap();
    assert_eq!((a2.seq, c), (won.seq + 1, Claim::Held(won.clone())), "the approval alone is appended");
    let bad: guardrail_store::LinkedClaim = Box::new(|_| (claim_draft("execution_claim", "x", "y"), "other".into()));
    let r = store.append_then_claim(plain("approval", json!({"n": 3})), bad);
    assert!(matches!(r, Err(StoreError::InvalidRecord(_))), "{r:?}");
    assert_eq!(store.all().unwrap().len(), 3, "a refused pair appends neither");

    let barrier = Arc::new(Barrier::new(threads));
    let joins: Vec<_> = (0..threads)
        .map(|t| {
            let (open, barrier) = (open.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut s = open();
                barrier.wait();
                let claim: guardrail_store::LinkedClaim =
                    Box::new(|a: &ChainedRecord| (claim_draft("execution_claim", "race#0", &a.id()), "race#0".into()));
                s.append_then_claim(plain("approval", json!({"t": t})), claim).unwrap()
            })
        })
        .collect();
    let results: Vec<(ChainedRecord, Claim)> = joins.into_iter().map(|j| j.join().unwrap()).collect();
    let won: Vec<&ChainedRecord> =
        results.iter().filter_map(|(_, c)| if let Claim::Won(r) = c { Some(r) } else { None }).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for (a, c) in &results {
        match c {
            Claim::Won(r) => assert_eq!((r.seq, &r.body["who"]), (a.seq + 1, &json!(a.id()))),
            Claim::Held(h) => assert_eq!(h, won[0]),
        }
    }
    let rep = store.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    assert_eq!(rep.records, 3 + threads + 1);
}

#[test]
fn sqlite_then_claim() {
    let dir = tempfile::tempdir().unwrap();
    then_claim(direct_sqlite(dir.path().join("a.db")), 6);
    then_claim(handles(share(&format!("sqlite:{}", dir.path().join("b.db").display())).unwrap()), 16);
}

#[test]
fn postgres_then_claim() {
    let schema = TestSchema::new();
    let spec = pg_spec(&schema);
    then_claim(Arc::new(move || open_store(&spec).unwrap()), 6);
    let other = TestSchema::new();
    then_claim(handles(share(&pg_spec(&other)).unwrap()), 16);
}

/// A least-privilege appender on a store an older build created (no index, and no right to
/// create it) decides claims as before the index, by reading the records; the owner's next
/// append then creates the index and indexes everything, the appender's records included.
#[test]
fn postgres_appender_without_ddl_rights_decides_claims_without_the_index() {
    let schema = TestSchema::new();
    let spec = pg_spec(&schema);
    let mut owner = open_store(&spec).unwrap();
    let Claim::Won(a) = owner.append_claim(claim_draft("execution_claim", "a", "owner"), "a").unwrap() else {
        panic!("a new claim wins")
    };
    drop(owner);
    let mut exec = schema.raw();
    exec("DROP TABLE audit_claims; DROP TABLE audit_claim_kinds; ALTER TABLE chain_head DROP COLUMN claims_seq");
    let role = crate::postgres::TestRole { url: schema.url.clone(), name: format!("{}_appender", schema.name) };
    let (r, s) = (&role.name, &schema.name);
    exec(&format!(
        "CREATE ROLE {r} LOGIN PASSWORD 'appender-pw'; GRANT USAGE ON SCHEMA {s} TO {r}; \
         GRANT SELECT, INSERT ON audit_records TO {r}; GRANT SELECT, UPDATE ON chain_head TO {r}; \
         GRANT SELECT ON guardrail_schema TO {r}"
    ));
    let sep = if schema.url.contains('?') { '&' } else { '?' };
    let appender_url = format!("{}{sep}user={r}&password=appender-pw", schema.url);
    let mut appender = guardrail_store::PostgresStore::connect_with_schema(&appender_url, s).unwrap();
    assert_eq!(appender.append_claim(claim_draft("execution_claim", "a", "app"), "a").unwrap(), Claim::Held(a.clone()));
    let Claim::Won(b) = appender.append_claim(claim_draft("execution_claim", "b", "app"), "b").unwrap() else {
        panic!("a new claim wins without the index")
    };
    let (first, c) = appender
        .append_then_claim(
            plain("approval", json!({})),
            Box::new(|_| (claim_draft("execution_claim", "b", "x"), "b".into())),
        )
        .unwrap();
    assert_eq!((first.seq, c), (b.seq + 1, Claim::Held(b.clone())));
    drop(appender);
    // The owner creates the index and indexes the whole chain, the appender's claims included.
    let mut owner = open_store(&spec).unwrap();
    assert_eq!(owner.append_claim(claim_draft("execution_claim", "b", "owner"), "b").unwrap(), Claim::Held(b));
    assert_eq!(owner.append_claim(claim_draft("execution_claim", "a", "owner"), "a").unwrap(), Claim::Held(a));
    let rep = owner.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
}

/// A guard that claims for a `grant` only when no grant naming the same request came before it
/// since the view (`after`): "only the first answer to a request releases it".
fn first_answer(after: i64) -> guardrail_store::ClaimGuard {
    guardrail_store::ClaimGuard {
        after,
        kinds: vec!["grant".into()],
        claim_kind: "execution_claim".into(),
        then: Box::new(|seen: &[&ChainedRecord], sealed: &ChainedRecord| {
            assert!(seen.iter().all(|r| r.kind == "grant" && r.seq < sealed.seq), "only the kinds asked, before it");
            let first = !seen.iter().any(|r| r.body["request"] == sealed.body["request"]);
            first.then(|| {
                let key = format!("{}#0", sealed.id());
                (claim_draft("execution_claim", &key, &sealed.id()), key)
            })
        }),
    }
}

/// Guarded claims: one answer claims, a later one (committed before it, read under the lock)
/// does not; a view past the chain's end, or a claim of another kind than the guard names,
/// appends nothing. Then `threads` answers race on one request from the same view: every
/// grant appended, exactly one claim — right after the first grant in the chain.
fn guarded_claims(open: Open, threads: usize) {
    let mut store = open();
    let req = store.append(plain("approval_request", json!({"n": 1}))).unwrap();
    let (g, c) =
        store.append_guarded_claim(plain("grant", json!({"request": req.id()})), first_answer(req.seq)).unwrap();
    let Some(Claim::Won(claim)) = c else { panic!("the first answer claims: {c:?}") };
    assert_eq!((claim.seq, &claim.prev_hash, &claim.body["who"]), (g.seq + 1, &g.hash, &json!(g.id())));
    store.append(plain("noise", json!({"request": req.id()}))).unwrap();
    let (g2, c) =
        store.append_guarded_claim(plain("grant", json!({"request": req.id()})), first_answer(req.seq)).unwrap();
    assert_eq!((g2.seq, c), (claim.seq + 2, None), "a later answer is appended alone");
    let n = store.all().unwrap().len();
    let ahead = store.append_guarded_claim(plain("grant", json!({"request": "x"})), first_answer(n as i64 + 1));
    assert!(matches!(ahead, Err(StoreError::InvalidRecord(_))), "{ahead:?}");
    let mut other_kind = first_answer(0);
    other_kind.claim_kind = "other_claim".into();
    let r = store.append_guarded_claim(plain("grant", json!({"request": "y"})), other_kind);
    assert!(matches!(r, Err(StoreError::InvalidRecord(_))), "{r:?}");
    assert_eq!(store.all().unwrap().len(), n, "refused units append nothing");

    let req = store.append(plain("approval_request", json!({"n": 2}))).unwrap();
    let barrier = Arc::new(Barrier::new(threads));
    let joins: Vec<_> = (0..threads)
        .map(|t| {
            let (open, barrier, req) = (open.clone(), barrier.clone(), req.clone());
            std::thread::spawn(move || {
                let mut s = open();
                barrier.wait();
                s.append_guarded_claim(plain("grant", json!({"request": req.id(), "t": t})), first_answer(req.seq))
                    .unwrap()
            })
        })
        .collect();
    let results: Vec<(ChainedRecord, Option<Claim>)> = joins.into_iter().map(|j| j.join().unwrap()).collect();
    let won: Vec<(&ChainedRecord, &ChainedRecord)> =
        results.iter().filter_map(|(g, c)| if let Some(Claim::Won(r)) = c { Some((g, r)) } else { None }).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(results.iter().all(|(_, c)| !matches!(c, Some(Claim::Held(_)))), "no claim key is ever shared");
    let first_grant = results.iter().map(|(g, _)| g).min_by_key(|g| g.seq).unwrap();
    assert_eq!(won[0].0, first_grant, "the first grant in the chain claims");
    assert_eq!((won[0].1.seq, &won[0].1.prev_hash), (first_grant.seq + 1, &first_grant.hash));
    let rep = store.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    assert_eq!(rep.records, n + 1 + threads + 1);
    let all = store.all().unwrap();
    assert_eq!(all.iter().filter(|r| r.kind == "execution_claim").count(), 2, "one claim per request");
}

#[test]
fn sqlite_guarded_claims() {
    let dir = tempfile::tempdir().unwrap();
    guarded_claims(direct_sqlite(dir.path().join("a.db")), 6);
    guarded_claims(handles(share(&format!("sqlite:{}", dir.path().join("b.db").display())).unwrap()), 16);
    // Two writers on one file.
    let path = dir.path().join("c.db");
    let (sa, sb) = (share(&format!("sqlite:{}", path.display())).unwrap(), share(&path.display().to_string()).unwrap());
    let n = std::sync::atomic::AtomicUsize::new(0);
    guarded_claims(
        Arc::new(move || {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::new(if i.is_multiple_of(2) { sa.handle() } else { sb.handle() }) as Box<dyn AuditStore>
        }),
        12,
    );
}

#[test]
fn postgres_guarded_claims() {
    let schema = TestSchema::new();
    let spec = pg_spec(&schema);
    guarded_claims(Arc::new(move || open_store(&spec).unwrap()), 6);
    let other = TestSchema::new();
    guarded_claims(handles(share(&pg_spec(&other)).unwrap()), 16);
    // Two replicas (two writers) on one chain.
    let third = TestSchema::new();
    let a = pg_spec(&third);
    let b = a.replacen("postgres://", "postgresql://", 1);
    let (sa, sb) = (share(&a).unwrap(), share(&b).unwrap());
    let n = std::sync::atomic::AtomicUsize::new(0);
    guarded_claims(
        Arc::new(move || {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::new(if i.is_multiple_of(2) { sa.handle() } else { sb.handle() }) as Box<dyn AuditStore>
        }),
        16,
    );
}
