//! The notification outbox: rows written in the record's own transaction (record present ⇔
//! rows present), the chain's bytes unchanged, per-key ordering, exclusive leases, retries and
//! give-up — on SQLite and on PostgreSQL (`postgres://postgres@127.0.0.1:5432/test` or
//! `GUARDRAIL_TEST_PG_URL`, a fresh schema per test, never skipped).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use guardrail_core::audit::RecordDraft;
use guardrail_store::{
    AuditStore, ChannelKind, OutboxRouter, OutboxState, OutboxTarget, PostgresStore, Retry, SqliteStore,
};
use serde_json::json;

/// Routes `incident_*` records to Jira and Slack, keyed by the body's `incident`; nothing else.
struct TestRouter;

impl OutboxRouter for TestRouter {
    fn route(&self, draft: &RecordDraft) -> Vec<OutboxTarget> {
        if !draft.kind.starts_with("incident_") {
            return Vec::new();
        }
        let key = draft.body.get("incident").and_then(|v| v.as_str()).map(str::to_string);
        vec![
            OutboxTarget { channel: ChannelKind::Jira, ordering_key: key.clone() },
            OutboxTarget { channel: ChannelKind::Slack, ordering_key: key.clone() },
            // A duplicate channel is written once.
            OutboxTarget { channel: ChannelKind::Jira, ordering_key: key },
        ]
    }
}

fn draft(kind: &str, incident: &str, second: u32) -> RecordDraft {
    RecordDraft {
        kind: kind.into(),
        recorded_at: format!("2026-12-06T10:00:{second:02}Z"),
        body: json!({"incident": incident, "n": second}),
    }
}

const T0: i64 = 1_796_551_200_000; // 2026-12-06T10:00:00Z

fn router() -> Option<Arc<dyn OutboxRouter>> {
    Some(Arc::new(TestRouter))
}

/// Routed and unrouted appends: rows only for routed records, the chain's hashes identical to
/// the same drafts appended with no router at all.
fn rows_follow_records(routed: &mut dyn AuditStore, plain: &mut dyn AuditStore) {
    assert_eq!(routed.outbox_status().unwrap(), Default::default(), "no table yet reads as empty");
    routed.set_outbox_router(router());
    let drafts =
        [draft("incident_opened", "inc-1", 0), draft("deploy_decision", "-", 1), draft("incident_step", "inc-1", 2)];
    for d in drafts {
        let a = routed.append(d.clone()).unwrap();
        let b = plain.append(d).unwrap();
        assert_eq!(a, b, "the outbox changes nothing in the chain");
    }
    assert!(routed.verify().unwrap().ok());
    let rows = routed.outbox_entries(None, None, 100).unwrap();
    let mut seen: Vec<(i64, ChannelKind)> = rows.iter().map(|e| (e.record_seq, e.channel)).collect();
    seen.sort();
    let mut want =
        vec![(1, ChannelKind::Slack), (1, ChannelKind::Jira), (3, ChannelKind::Slack), (3, ChannelKind::Jira)];
    want.sort();
    assert_eq!(seen, want);
    assert!(
        rows.iter().all(|e| e.state == OutboxState::Pending && e.attempts == 0 && e.created_ms == e.next_attempt_ms)
    );
    assert_eq!(rows.iter().find(|e| e.record_seq == 1).map(|e| e.created_ms), Some(T0));
    let st = routed.outbox_status().unwrap();
    assert_eq!((st.pending, st.failed, st.delivered, st.oldest_pending_ms), (4, 0, 0, Some(T0)));
    assert!(plain.outbox_entries(None, None, 10).unwrap().is_empty());
}

/// A failing outbox insert fails the append: the record is not in the chain either.
fn same_transaction(store: &mut dyn AuditStore, exec: &mut dyn FnMut(&str)) {
    store.set_outbox_router(router());
    store.append(draft("incident_opened", "inc-1", 0)).unwrap();
    // Sabotage the table so the next row violates a constraint: one row per channel at most.
    exec("CREATE UNIQUE INDEX sabotage ON outbox (channel)");
    let before = store.all().unwrap();
    let err = store.append(draft("incident_step", "inc-1", 1));
    assert!(err.is_err(), "the append must fail with its outbox row: {err:?}");
    assert_eq!(store.all().unwrap(), before, "no record without its rows");
    assert!(store.verify().unwrap().ok(), "head anchor unchanged");
    // An unrouted record is unaffected.
    store.append(draft("deploy_decision", "-", 2)).unwrap();
    assert_eq!(store.all().unwrap().len(), 2);
    let rows = store.outbox_entries(None, None, 10).unwrap();
    assert_eq!(rows.len(), 2);
    // Every record with rows is in the chain, and every routed record has its rows.
    let records = store.all().unwrap();
    for r in &records {
        let n = store.outbox_entries(Some(r.seq), None, 10).unwrap().len();
        assert_eq!(n, if r.kind.starts_with("incident_") { 2 } else { 0 }, "record {}", r.seq);
    }
}

/// Per (channel, key) order, leases, retries, give-up and re-delivery.
fn delivery_states(store: &mut dyn AuditStore) {
    store.set_outbox_router(router());
    store.append(draft("incident_opened", "inc-1", 0)).unwrap(); // seq 1
    store.append(draft("incident_opened", "inc-2", 1)).unwrap(); // seq 2
    store.append(draft("incident_step", "inc-1", 2)).unwrap(); // seq 3
    let due = store.outbox_due(T0 + 10_000, 100).unwrap();
    let ids: Vec<(i64, ChannelKind)> = due.iter().map(|d| (d.entry.record_seq, d.entry.channel)).collect();
    // Record 3 waits for record 1 on both channels; record 2 is another incident.
    assert_eq!(ids.iter().filter(|(s, _)| *s == 3).count(), 0, "{ids:?}");
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(due[0].record.seq, due[0].entry.record_seq);
    assert_eq!(due[0].record.body["incident"], "inc-1");

    let jira1 = due.iter().find(|d| d.entry.record_seq == 1 && d.entry.channel == ChannelKind::Jira).unwrap();
    let id = jira1.entry.id;
    // Two deliverers: one lease.
    assert!(store.outbox_lease(id, T0, T0 + 60_000).unwrap());
    assert!(!store.outbox_lease(id, T0 + 1, T0 + 60_000).unwrap(), "a live lease is exclusive");
    assert!(!store.outbox_due(T0 + 10_000, 100).unwrap().iter().any(|d| d.entry.id == id), "leased rows are not due");
    // A failed attempt: retried later, the row keeps its place in the order.
    store.outbox_mark_failed(id, 1, Retry::At(T0 + 20_000), "Jira answered 503").unwrap();
    assert!(!store.outbox_due(T0 + 19_999, 100).unwrap().iter().any(|d| d.entry.id == id));
    assert!(store.outbox_due(T0 + 20_000, 100).unwrap().iter().any(|d| d.entry.id == id));
    let row = store.outbox_entries(Some(1), None, 10).unwrap().into_iter().find(|e| e.id == id).unwrap();
    assert_eq!((row.attempts, row.last_error.as_deref()), (1, Some("Jira answered 503")));
    // Given up: failed, visible, and it still holds the incident's later Jira rows.
    store.outbox_mark_failed(id, 5, Retry::GiveUp, "gave up").unwrap();
    let st = store.outbox_status().unwrap();
    assert_eq!((st.pending, st.failed), (5, 1));
    assert!(
        !store
            .outbox_due(T0 + 99_000, 100)
            .unwrap()
            .iter()
            .any(|d| d.entry.record_seq == 3 && d.entry.channel == ChannelKind::Jira)
    );
    // Re-delivery puts it back; delivered, it releases record 3's Jira row.
    assert_eq!(store.outbox_retry_failed(T0 + 100_000).unwrap(), 1);
    assert!(store.outbox_lease(id, T0 + 100_000, T0 + 160_000).unwrap());
    store.outbox_mark_delivered(id, Some("SRE-7"), T0 + 100_500).unwrap();
    assert_eq!(store.outbox_reference(ChannelKind::Jira, "inc-1").unwrap().as_deref(), Some("SRE-7"));
    assert_eq!(store.outbox_reference(ChannelKind::Jira, "inc-2").unwrap(), None);
    let due = store.outbox_due(T0 + 100_500, 100).unwrap();
    assert!(due.iter().any(|d| d.entry.record_seq == 3 && d.entry.channel == ChannelKind::Jira));
    let st = store.outbox_status().unwrap();
    assert_eq!((st.pending, st.failed, st.delivered), (5, 0, 1));
}

/// Pruning delivered rows: only delivered ones older than the cutoff, at most `limit` a call,
/// never pending or failed rows, nor the first delivered row with a reference of a channel and
/// key (the incident's Jira issue and Slack thread stay known).
fn pruning(store: &mut dyn AuditStore) {
    assert_eq!(store.outbox_prune_delivered(T0, 10).unwrap(), 0, "no table yet: nothing to prune");
    store.set_outbox_router(router());
    store.append(draft("incident_opened", "inc-1", 0)).unwrap(); // seq 1
    store.append(draft("incident_step", "inc-1", 1)).unwrap(); // seq 2
    store.append(draft("incident_opened", "inc-2", 2)).unwrap(); // seq 3
    store.append(draft("incident_step", "inc-1", 3)).unwrap(); // seq 4
    let rows = store.outbox_entries(None, None, 100).unwrap();
    let id = |seq: i64, ch: ChannelKind| rows.iter().find(|e| e.record_seq == seq && e.channel == ch).unwrap().id;
    let (j, s) = (ChannelKind::Jira, ChannelKind::Slack);
    store.outbox_mark_delivered(id(1, j), Some("SRE-1"), T0 + 1_000).unwrap();
    store.outbox_mark_delivered(id(1, s), Some("C1/1.0"), T0 + 1_000).unwrap();
    store.outbox_mark_delivered(id(2, j), Some("comment-2"), T0 + 2_000).unwrap();
    store.outbox_mark_delivered(id(2, s), None, T0 + 2_000).unwrap();
    store.outbox_mark_failed(id(3, j), 5, Retry::GiveUp, "gave up").unwrap();
    store.outbox_mark_delivered(id(4, j), None, T0 + 9_000).unwrap();
    assert_eq!(store.outbox_prune_delivered(T0 + 1_500, 100).unwrap(), 0, "the first references are kept");
    assert_eq!(store.outbox_prune_delivered(T0 + 5_000, 1).unwrap(), 1, "at most `limit` a call");
    assert_eq!(store.outbox_prune_delivered(T0 + 5_000, 100).unwrap(), 1);
    assert_eq!(store.outbox_prune_delivered(T0 + 5_000, 100).unwrap(), 0);
    let left: Vec<(i64, ChannelKind)> =
        store.outbox_entries(None, None, 100).unwrap().iter().map(|e| (e.record_seq, e.channel)).collect();
    assert_eq!(left, [(4, s), (4, j), (3, s), (3, j), (1, s), (1, j)]);
    assert_eq!(store.outbox_reference(j, "inc-1").unwrap().as_deref(), Some("SRE-1"));
    assert_eq!(store.outbox_reference(s, "inc-1").unwrap().as_deref(), Some("C1/1.0"));
    let st = store.outbox_status().unwrap();
    assert_eq!((st.pending, st.failed, st.delivered), (2, 1, 3));
    assert!(store.verify().unwrap().ok(), "the chain does not see the outbox");
}

fn sqlite_store(dir: &tempfile::TempDir, name: &str) -> SqliteStore {
    SqliteStore::open(dir.path().join(name)).unwrap()
}

#[test]
fn sqlite_rows_follow_records_and_leave_the_chain_alone() {
    let dir = tempfile::tempdir().unwrap();
    rows_follow_records(&mut sqlite_store(&dir, "a.db"), &mut sqlite_store(&dir, "b.db"));
}

#[test]
fn sqlite_outbox_rows_are_written_in_the_records_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = SqliteStore::open(&path).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    same_transaction(&mut store, &mut |sql| {
        raw.execute_batch(sql).unwrap();
    });
}

#[test]
fn sqlite_delivery_states() {
    let dir = tempfile::tempdir().unwrap();
    delivery_states(&mut sqlite_store(&dir, "a.db"));
}

#[test]
fn sqlite_pruning() {
    let dir = tempfile::tempdir().unwrap();
    pruning(&mut sqlite_store(&dir, "a.db"));
}

/// A shared SQLite store's outbox writes go through its writer: the same results.
#[test]
fn sqlite_shared_outbox_writes_go_through_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let shared = guardrail_store::share(&format!("sqlite:{}", dir.path().join("a.db").display())).unwrap();
    delivery_states(&mut shared.handle());
    let other = guardrail_store::share(&format!("sqlite:{}", dir.path().join("b.db").display())).unwrap();
    pruning(&mut other.handle());
}

#[test]
fn sqlite_leases_are_exclusive_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut a = SqliteStore::open(&path).unwrap();
    a.set_outbox_router(router());
    a.append(draft("incident_opened", "inc-1", 0)).unwrap();
    let id = a.outbox_due(T0, 1).unwrap()[0].entry.id;
    let won: Vec<bool> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                s.spawn(move || SqliteStore::open(&path).unwrap().outbox_lease(id, T0, T0 + 60_000).unwrap())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
}

#[test]
fn process_router_applies_to_stores_without_their_own() {
    // The process-wide router is the CLI's and the server's; this test clears it again and
    // uses a record kind no other test routes.
    struct Only;
    impl OutboxRouter for Only {
        fn route(&self, draft: &RecordDraft) -> Vec<OutboxTarget> {
            if draft.kind == "process_router_probe" {
                vec![OutboxTarget { channel: ChannelKind::SlackDeploy, ordering_key: None }]
            } else {
                Vec::new()
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = sqlite_store(&dir, "a.db");
    guardrail_store::install_router(Some(Arc::new(Only)));
    let rec = s.append(RecordDraft {
        kind: "process_router_probe".into(),
        recorded_at: "2026-12-06T10:00:00Z".into(),
        body: json!({}),
    });
    guardrail_store::install_router(None);
    let rec = rec.unwrap();
    let rows = s.outbox_entries(Some(rec.seq), None, 10).unwrap();
    assert_eq!(rows.iter().map(|e| e.channel).collect::<Vec<_>>(), vec![ChannelKind::SlackDeploy]);

    // Per store: a router installed for one store's description routes only that store's
    // records (every connection to it), not another's.
    let (mut one, mut other) = (sqlite_store(&dir, "one.db"), sqlite_store(&dir, "other.db"));
    guardrail_store::install_router_for(&one.describe(), Some(Arc::new(Only)));
    let probe = || RecordDraft {
        kind: "process_router_probe".into(),
        recorded_at: "2026-12-06T10:00:00Z".into(),
        body: json!({}),
    };
    let a = one.append(probe());
    let b = SqliteStore::open(dir.path().join("one.db")).and_then(|mut again| again.append(probe()));
    let c = other.append(probe());
    guardrail_store::install_router_for(&one.describe(), None);
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(one.outbox_entries(Some(a.seq), None, 10).unwrap().len(), 1);
    assert_eq!(one.outbox_entries(Some(b.seq), None, 10).unwrap().len(), 1, "another connection to it");
    assert!(other.outbox_entries(Some(c.seq), None, 10).unwrap().is_empty());
}

fn pg_url() -> String {
    std::env::var("GUARDRAIL_TEST_PG_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh PostgreSQL schema, dropped at the end.
struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    fn new() -> PgSchema {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("gr_outbox_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        PgSchema { url: pg_url(), name }
    }
    fn open(&self) -> PostgresStore {
        PostgresStore::connect_with_schema(&self.url, &self.name).unwrap_or_else(|e| panic!("PostgreSQL: {e}"))
    }
    fn raw(&self) -> postgres::Client {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        c.batch_execute(&format!("SET search_path TO \"{}\"", self.name)).unwrap();
        c
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}

#[test]
fn pg_rows_follow_records_and_leave_the_chain_alone() {
    let (a, b) = (PgSchema::new(), PgSchema::new());
    rows_follow_records(&mut a.open(), &mut b.open());
}

#[test]
fn pg_outbox_rows_are_written_in_the_records_transaction() {
    let s = PgSchema::new();
    let mut store = s.open();
    let mut raw = s.raw();
    same_transaction(&mut store, &mut |sql| raw.batch_execute(sql).unwrap());
}

#[test]
fn pg_delivery_states() {
    let s = PgSchema::new();
    delivery_states(&mut s.open());
}

#[test]
fn pg_pruning() {
    let s = PgSchema::new();
    pruning(&mut s.open());
}

#[test]
fn pg_leases_are_exclusive_across_connections() {
    let s = PgSchema::new();
    let mut a = s.open();
    a.set_outbox_router(router());
    a.append(draft("incident_opened", "inc-1", 0)).unwrap();
    let id = a.outbox_due(T0, 1).unwrap()[0].entry.id;
    let won: Vec<bool> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4).map(|_| sc.spawn(|| s.open().outbox_lease(id, T0, T0 + 60_000).unwrap())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
}
