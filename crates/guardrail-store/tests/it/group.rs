//! Group commit ([`guardrail_store::share`]): `append_batch` on both backends, and many threads
//! appending and claiming through one shared store — every record in the chain exactly once,
//! in one valid chain, outbox rows in the batch's transaction, a failed batch failing every
//! waiter, two writers (replicas) on one PostgreSQL chain.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use guardrail_core::audit::{ChainedRecord, RecordDraft};
use guardrail_store::{
    AuditStore, ChannelKind, OutboxRouter, OutboxTarget, SharedStore, StoreError, open_store, share,
};
use serde_json::json;

use crate::common;
use crate::postgres::TestSchema;

fn draft(kind: &str, body: serde_json::Value) -> RecordDraft {
    RecordDraft { kind: kind.into(), recorded_at: "2026-11-24T10:00:00Z".into(), body }
}

fn sqlite_spec(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("audit.db").display())
}

fn pg_spec(schema: &TestSchema) -> String {
    let sep = if schema.url.contains('?') { '&' } else { '?' };
    format!("{}{sep}schema={}", schema.url, schema.name)
}

/// Routes every `incident_*` record to Jira and Slack (keyed by its incident).
struct Router;

impl OutboxRouter for Router {
    fn route(&self, d: &RecordDraft) -> Vec<OutboxTarget> {
        if !d.kind.starts_with("incident_") {
            return Vec::new();
        }
        let key = d.body.get("incident").and_then(|v| v.as_str()).map(str::to_string);
        vec![
            OutboxTarget { channel: ChannelKind::Jira, ordering_key: key.clone() },
            OutboxTarget { channel: ChannelKind::Slack, ordering_key: key },
        ]
    }
}

/// A batch is sealed in order after the head, each record linked to the one before, with the
/// outbox rows of each routed record; an invalid draft refuses the whole batch.
fn batch_is_one_chain(store: &mut dyn AuditStore) {
    store.append(draft("deploy_decision", json!({"n": 0}))).unwrap();
    store.set_outbox_router(Some(Arc::new(Router)));
    let drafts = vec![
        draft("incident_opened", json!({"incident": "INC-1"})),
        draft("deploy_decision", json!({"n": 1})),
        draft("incident_opened", json!({"incident": "INC-2"})),
    ];
    let recs = store.append_batch(drafts).unwrap();
    assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
    let all = store.all().unwrap();
    assert_eq!(all[1..], recs[..], "the batch's records are what is stored");
    for w in all.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash, "record {} links to the one before", w[1].seq);
    }
    let rows = store.outbox_entries(None, None, 100).unwrap();
    let mut routed: Vec<(i64, &str)> = rows.iter().map(|e| (e.record_seq, e.channel.as_str())).collect();
    routed.sort();
    assert_eq!(routed, vec![(2, "jira"), (2, "slack"), (4, "jira"), (4, "slack")]);

    let bad = vec![draft("deploy_decision", json!({"n": 9})), draft("", json!({}))];
    assert!(matches!(store.append_batch(bad), Err(StoreError::InvalidRecord(_))));
    assert!(store.append_batch(Vec::new()).unwrap().is_empty());
    let rep = store.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    assert_eq!(rep.records, 4, "nothing of a refused batch is stored");
}

#[test]
fn sqlite_batch_is_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    batch_is_one_chain(open_store(&sqlite_spec(&dir)).unwrap().as_mut());
}

#[test]
fn postgres_batch_is_one_chain() {
    let schema = TestSchema::new();
    batch_is_one_chain(open_store(&pg_spec(&schema)).unwrap().as_mut());
}

/// `threads` threads append `per_thread` records each through handles of `shared`; each is
/// answered with its own record, and the chain holds every one exactly once, in order.
fn many_writers(shared: &Arc<SharedStore>, spec: &str, threads: usize, per_thread: usize) {
    let barrier = Arc::new(Barrier::new(threads));
    let joins: Vec<_> = (0..threads)
        .map(|t| {
            let (shared, barrier) = (shared.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                (0..per_thread)
                    .map(|i| {
                        // Each append a short-lived handle, as each request has.
                        let mut h = shared.handle();
                        h.append(draft("deploy_decision", json!({"t": t, "i": i}))).unwrap()
                    })
                    .collect::<Vec<ChainedRecord>>()
            })
        })
        .collect();
    let answered: Vec<ChainedRecord> = joins.into_iter().flat_map(|j| j.join().unwrap()).collect();
    let mut store = open_store(spec).unwrap();
    let all = store.all().unwrap();
    assert_eq!(all.len(), threads * per_thread);
    for rec in &answered {
        assert_eq!(&all[(rec.seq - 1) as usize], rec, "an answer is the stored record");
    }
    let seen: BTreeSet<(i64, i64)> =
        all.iter().map(|r| (r.body["t"].as_i64().unwrap(), r.body["i"].as_i64().unwrap())).collect();
    assert_eq!(seen.len(), threads * per_thread, "every append is stored exactly once");
    let rep = store.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    let stats = shared.stats();
    assert_eq!(stats.records as usize, threads * per_thread);
    assert!(stats.commits <= stats.records);
}

#[test]
fn sqlite_shared_store_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sqlite_spec(&dir);
    let shared = share(&spec).unwrap();
    many_writers(&shared, &spec, 16, 40);
}

#[test]
fn postgres_shared_store_group_commits() {
    let schema = TestSchema::new();
    let spec = pg_spec(&schema);
    let shared = share(&spec).unwrap();
    many_writers(&shared, &spec, 16, 25);
}

#[test]
fn open_store_returns_handles_while_shared() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sqlite_spec(&dir);
    let shared = share(&spec).unwrap();
    assert!(Arc::ptr_eq(&shared, &share(&spec).unwrap()), "one shared store per spec");
    let mut h = open_store(&spec).unwrap();
    h.append(draft("deploy_decision", json!({"n": 1}))).unwrap();
    assert_eq!(shared.stats().records, 1, "open_store's handle appended through the writer");
    assert_eq!(h.describe(), format!("sqlite:{}", dir.path().join("audit.db").display()));
    drop(h);
    drop(shared);
    // No longer shared: a plain connection again, which sees the record.
    let mut s = open_store(&spec).unwrap();
    assert_eq!(s.all().unwrap().len(), 1);
}

#[test]
fn sqlite_claims_through_the_writer_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sqlite_spec(&dir);
    let shared = share(&spec).unwrap();
    let open: Arc<dyn Fn() -> Box<dyn AuditStore> + Send + Sync> = {
        let shared = shared.clone();
        Arc::new(move || Box::new(shared.handle()))
    };
    common::concurrent_claims(open, 12);
    let other = tempfile::tempdir().unwrap();
    let shared = share(&sqlite_spec(&other)).unwrap();
    common::concurrent_appends(Arc::new(move || Box::new(shared.handle())), 8, 10);
}

#[test]
fn postgres_claims_through_the_writer_have_one_winner() {
    let schema = TestSchema::new();
    let shared = share(&pg_spec(&schema)).unwrap();
    let open: Arc<dyn Fn() -> Box<dyn AuditStore> + Send + Sync> = Arc::new(move || Box::new(shared.handle()));
    common::concurrent_claims(open, 12);
}

/// A batch that cannot be appended (here: the head anchor was moved, so the store refuses to
/// seal after it) fails every waiter, and nothing of it is stored.
fn failed_batch_fails_everyone(spec: &str, exec: &mut dyn FnMut(&str)) {
    let shared = share(spec).unwrap();
    shared.handle().append(draft("deploy_decision", json!({"n": 0}))).unwrap();
    exec("UPDATE chain_head SET seq = 7 WHERE id = 1");
    let barrier = Arc::new(Barrier::new(8));
    let joins: Vec<_> = (0..8)
        .map(|t| {
            let (shared, barrier) = (shared.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                shared.handle().append(draft("deploy_decision", json!({"t": t})))
            })
        })
        .collect();
    for j in joins {
        let e = j.join().unwrap().expect_err("an append after a moved anchor must fail");
        let inner = match &e {
            StoreError::GroupCommit(inner) => inner.as_ref(),
            other => other,
        };
        assert!(matches!(inner, StoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("refusing to append"), "{e}");
    }
    exec("UPDATE chain_head SET seq = 1 WHERE id = 1");
    let mut s = shared.handle();
    assert_eq!(s.all().unwrap().len(), 1, "nothing of the failed batches is stored");
    // The writer carries on once the store is sound again.
    s.append(draft("deploy_decision", json!({"n": 1}))).unwrap();
    assert!(s.verify().unwrap().ok());
}

#[test]
fn sqlite_failed_batch_fails_every_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let spec = sqlite_spec(&dir);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mut exec = |sql: &str| raw.execute_batch(sql).unwrap();
    // Create the file first so the raw connection sees the schema.
    drop(open_store(&spec).unwrap());
    failed_batch_fails_everyone(&spec, &mut exec);
}

#[test]
fn postgres_failed_batch_fails_every_waiter() {
    let schema = TestSchema::new();
    let spec = pg_spec(&schema);
    drop(open_store(&spec).unwrap());
    let mut exec = schema.raw();
    failed_batch_fails_everyone(&spec, &mut exec);
}

/// Two replicas of a server on one PostgreSQL chain: two shared stores (two writers, the spec
/// spelled two ways so each process-like store is its own), both under load at once.
#[test]
fn postgres_two_writers_keep_one_chain() {
    let schema = TestSchema::new();
    let a = pg_spec(&schema);
    let b = a.replacen("postgres://", "postgresql://", 1);
    assert_ne!(a, b);
    let (sa, sb) = (share(&a).unwrap(), share(&b).unwrap());
    assert!(!Arc::ptr_eq(&sa, &sb));
    let run = |shared: Arc<SharedStore>, tag: &'static str| {
        std::thread::spawn(move || {
            let joins: Vec<_> = (0..8)
                .map(|t| {
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        for i in 0..25 {
                            shared
                                .handle()
                                .append(draft("deploy_decision", json!({"r": tag, "t": t, "i": i})))
                                .unwrap();
                        }
                    })
                })
                .collect();
            joins.into_iter().for_each(|j| j.join().unwrap());
        })
    };
    let (ja, jb) = (run(sa.clone(), "a"), run(sb.clone(), "b"));
    ja.join().unwrap();
    jb.join().unwrap();
    let mut s = open_store(&a).unwrap();
    let rep = s.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    assert_eq!(rep.records, 400);
    assert_eq!(sa.stats().records + sb.stats().records, 400);
}

/// A shared SQLite store's writer never checkpoints inline; its checkpointer copies the WAL
/// beside it, and truncates it when the store stops being shared (a short WAL for the next
/// process).
#[test]
fn sqlite_checkpoints_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sqlite_spec(&dir);
    let shared = share(&spec).unwrap();
    let mut h = shared.handle();
    for i in 0..100 {
        h.append(draft("deploy_decision", json!({"i": i, "pad": "x".repeat(4000)}))).unwrap();
    }
    assert_eq!(shared.stats().commits, 100);
    drop(h);
    drop(shared);
    let wal = dir.path().join("audit.db-wal");
    assert_eq!(std::fs::metadata(&wal).map_or(0, |m| m.len()), 0, "the WAL is truncated at the end");
    let mut s = open_store(&spec).unwrap();
    let rep = s.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    assert_eq!(rep.records, 100);
}

/// Under constant appends and reads some reader always holds a snapshot in the WAL, so passive
/// checkpoints alone never let the writer start the WAL over and it grew without bound
/// (hundreds of MB under `serve`). Past its limit the checkpointer truncates it: while many
/// times the limit is written, with readers busy all along, the file never gets far past it.
#[test]
fn sqlite_wal_stays_bounded_under_appends_and_reads() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const LIMIT: u64 = 1 << 20;
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let spec = sqlite_spec(&dir);
    let shared = share(&spec).unwrap();
    shared.set_wal_limit(LIMIT);
    let wal = dir.path().join("audit.db-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let stop = AtomicBool::new(false);
    let longest = AtomicU64::new(0);
    let head = AtomicU64::new(0);
    std::thread::scope(|s| {
        // Readers: the latest records, over and over, each on its own pooled connection.
        for _ in 0..4 {
            let mut h = shared.handle();
            let (stop, head) = (&stop, &head);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let from = head.load(Ordering::Relaxed).saturating_sub(4) as i64;
                    let read = h.records_after(from).unwrap();
                    assert!(read.iter().all(|r| r.seq > from));
                }
            });
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let mut h = shared.handle();
                let (head, longest, wal_len) = (&head, &longest, &wal_len);
                s.spawn(move || {
                    for i in 0..PER_WRITER {
                        let body = json!({"w": w, "i": i, "pad": "x".repeat(8000)});
                        let rec = h.append(draft("deploy_decision", body)).unwrap();
                        head.fetch_max(rec.seq as u64, Ordering::Relaxed);
                        longest.fetch_max(wal_len(), Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let written = (WRITERS * PER_WRITER * 8000) as u64;
    let longest = longest.into_inner();
    // The bound: the limit, plus what is appended until the next truncation (the writer wakes
    // the checkpointer every 32 commits; a truncation that found a reader too slow is retried
    // at the next pass): a few MiB here. Without the truncating checkpoint the WAL ended up
    // longer than everything written (each record's pages, the index pages of every commit):
    // 25 MB for 9.6 MB of records.
    assert!(written > 12 * LIMIT, "the test writes many times the limit ({written} bytes)");
    assert!(longest <= LIMIT + 8 * (1 << 20), "the WAL reached {longest} bytes (limit {LIMIT}, {written} written)");
    drop(shared);
    let mut s = open_store(&spec).unwrap();
    let rep = s.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
    assert_eq!(rep.records, WRITERS * PER_WRITER);
}
