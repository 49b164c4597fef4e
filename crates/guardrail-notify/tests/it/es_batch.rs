//! Batched delivery of the Elasticsearch audit mirror against the loopback cluster: one
//! `_bulk` call per batch of outbox rows, each row marked by its own item's result (delivered,
//! retried, failed), a failed call marking every row of its batch alike, `batch_size`
//! respected, and a batch's leases exclusive between two deliverers on one store (SQLite and
//! PostgreSQL).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use guardrail_config::AuditMirrorConfig;
use guardrail_core::audit::{ChainedRecord, RecordDraft};
use guardrail_notify::outbox::{Deliverer, RetryPolicy};
use guardrail_notify::routing::{Routes, mirror_channel};
use guardrail_store::{AuditStore, OutboxEntry, OutboxMark, OutboxState, Retry, SqliteStore};
use guardrail_test_support::elastic::FakeEs;
use serde_json::{Value, json};

const T0: i64 = 1_796_551_200_000;

struct Clock(AtomicI64);

impl Clock {
    fn new() -> Clock {
        Clock(AtomicI64::new(T0 + 1_000))
    }
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.0.load(Ordering::SeqCst)).unwrap()
    }
    fn ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn cfg(url: &str, batch: usize) -> AuditMirrorConfig {
    AuditMirrorConfig { retries: 0, timeout_ms: 5_000, batch_size: batch, ..AuditMirrorConfig::at(url) }
}

fn router(url: &str) -> Arc<Routes> {
    Arc::new(Routes::new(None, false).with_mirror(Some(cfg(url, 500))))
}

fn policy() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, base: Duration::from_secs(30), cap: Duration::from_secs(600) }
}

fn deliverer(url: &str, batch: usize) -> Deliverer {
    let env = BTreeMap::new();
    Deliverer::new(vec![mirror_channel(Some(&cfg(url, batch)), &env, None).unwrap().unwrap()], policy())
}

fn append_n(store: &mut dyn AuditStore, n: usize) -> Vec<ChainedRecord> {
    let drafts = (0..n)
        .map(|i| RecordDraft {
            kind: "deploy_decision".into(),
            recorded_at: "2026-12-06T10:00:00Z".into(),
            body: json!({"action": "ALLOW", "i": i}),
        })
        .collect();
    store.append_batch(drafts).unwrap()
}

/// Rows by record seq.
fn rows(store: &mut dyn AuditStore) -> BTreeMap<i64, OutboxEntry> {
    store.outbox_entries(None, None, 100_000).unwrap().into_iter().map(|r| (r.record_seq, r)).collect()
}

/// The `_bulk` calls the cluster saw, each as the `_id`s of its actions.
fn bulk_ids(es: &FakeEs) -> Vec<Vec<String>> {
    es.log()
        .into_iter()
        .filter(|(line, _)| line.contains("/_bulk"))
        .map(|(_, body)| {
            body.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter_map(|v| v.get("index").and_then(|a| a.get("_id")).and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .collect()
}

#[test]
fn one_bulk_call_marks_each_row_by_its_own_item() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("a.db")).unwrap();
    store.set_outbox_router(Some(router(&es.url)));
    let recs = append_n(&mut store, 6);
    es.fail_item(&recs[1].id(), 400);
    es.fail_item(&recs[3].id(), 429);
    let clock = Clock::new();
    let r = deliverer(&es.url, 500).deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!((r.delivered, r.retrying, r.failed, r.leased_elsewhere), (4, 1, 1, 0), "{r:?}");
    let calls = bulk_ids(&es);
    assert_eq!(calls.len(), 1, "one _bulk for the six rows: {:?}", es.lines());
    assert_eq!(calls[0], recs.iter().map(ChainedRecord::id).collect::<Vec<_>>());
    let marked = rows(&mut store);
    for (i, rec) in recs.iter().enumerate() {
        let row = &marked[&rec.seq];
        match i {
            1 => {
                assert_eq!((row.state, row.attempts), (OutboxState::Failed, 1), "{row:?}");
                let e = row.last_error.as_deref().unwrap();
                assert!(e.contains("400 mapper_parsing_exception") && e.contains(&rec.id()), "{e}");
            }
            3 => {
                assert_eq!((row.state, row.attempts), (OutboxState::Pending, 1), "{row:?}");
                assert_eq!(row.next_attempt_ms, clock.ms() + 30_000, "the first backoff step");
                assert!(row.last_error.as_deref().unwrap().contains("429 es_rejected_execution_exception"));
            }
            _ => {
                assert_eq!((row.state, row.attempts), (OutboxState::Delivered, 1), "{row:?}");
                assert_eq!(row.reference.as_deref(), Some(format!("guardrail-audit/{}", rec.id()).as_str()));
                assert_eq!(row.delivered_ms, Some(clock.ms()));
                assert_eq!(es.doc("guardrail-audit", &rec.id()).unwrap()["seq"], json!(rec.seq));
            }
        }
    }
    assert!(es.doc("guardrail-audit", &recs[1].id()).is_none() && es.doc("guardrail-audit", &recs[3].id()).is_none());
    // The retried row goes out alone when due; the refused one waits for --retry-failed.
    es.heal_items();
    clock.0.fetch_add(30_000, Ordering::SeqCst);
    let r = deliverer(&es.url, 500).deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!((r.delivered, r.failed, r.retrying), (1, 0, 0), "{r:?}");
    assert_eq!(bulk_ids(&es).last().unwrap(), &vec![recs[3].id()]);
    assert_eq!(store.outbox_retry_failed(clock.ms()).unwrap(), 1);
    let r = deliverer(&es.url, 500).deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!(r.delivered, 1);
    assert!(rows(&mut store).values().all(|r| r.state == OutboxState::Delivered));
}

#[test]
fn batch_size_bounds_each_call() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("a.db")).unwrap();
    store.set_outbox_router(Some(router(&es.url)));
    let recs = append_n(&mut store, 7);
    let clock = Clock::new();
    let r = deliverer(&es.url, 3).deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!(r.delivered, 7, "{r:?}");
    let sizes: Vec<usize> = bulk_ids(&es).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(bulk_ids(&es).concat(), recs.iter().map(ChainedRecord::id).collect::<Vec<_>>(), "in row order");
}

/// The cluster's `Retry-After` on a rate-limited call schedules the batch's rows then (as
/// Slack's and Jira's do), instead of the mirror's own 30 s backoff.
#[test]
fn a_rate_limited_call_waits_the_clusters_retry_after() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("a.db")).unwrap();
    store.set_outbox_router(Some(router(&es.url)));
    append_n(&mut store, 1);
    let clock = Clock::new();
    let d = deliverer(&es.url, 500);
    assert_eq!(d.deliver_due(&mut store, &|| clock.now(), None).unwrap().delivered, 1);

    let recs = append_n(&mut store, 2);
    es.retry_after(Some("120"));
    es.fail_next(&[429]);
    let r = d.deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!((r.delivered, r.retrying, r.failed), (0, 2, 0), "{r:?}");
    let all = rows(&mut store);
    for rec in &recs {
        let row = &all[&rec.seq];
        assert_eq!((row.state, row.next_attempt_ms), (OutboxState::Pending, clock.ms() + 120_000), "{row:?}");
        assert!(row.last_error.as_deref().unwrap().contains("retry after 120 s"), "{row:?}");
    }
    // Not before the pause; then delivered.
    clock.0.fetch_add(60_000, Ordering::SeqCst);
    assert_eq!(d.deliver_due(&mut store, &|| clock.now(), None).unwrap().delivered, 0);
    clock.0.fetch_add(60_000, Ordering::SeqCst);
    assert_eq!(d.deliver_due(&mut store, &|| clock.now(), None).unwrap().delivered, 2);
}

/// A pass that delivers prunes delivered rows older than the retention (a week), one batch
/// at a time; younger delivered rows and pending ones stay.
#[test]
fn a_delivering_pass_prunes_rows_delivered_before_the_retention() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("a.db")).unwrap();
    store.set_outbox_router(Some(router(&es.url)));
    let old = append_n(&mut store, 3);
    let clock = Clock::new();
    let d = deliverer(&es.url, 500);
    let r = d.deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!((r.delivered, r.pruned), (3, 0), "{r:?}");

    // A week and a minute later: the next delivering pass deletes the three old rows.
    clock.0.fetch_add(guardrail_store::DELIVERED_RETENTION_MS + 60_000, Ordering::SeqCst);
    let young = append_n(&mut store, 2);
    let r = d.deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!((r.delivered, r.pruned), (2, 3), "{r:?}");
    let left = rows(&mut store);
    assert!(old.iter().all(|rec| !left.contains_key(&rec.seq)), "{left:?}");
    assert!(young.iter().all(|rec| left[&rec.seq].state == OutboxState::Delivered), "{left:?}");
    // A pass with nothing to deliver prunes nothing (and costs no write).
    assert_eq!(d.deliver_due(&mut store, &|| clock.now(), None).unwrap().pruned, 0);
}

#[test]
fn a_failed_call_marks_every_row_of_its_batch() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("a.db")).unwrap();
    store.set_outbox_router(Some(router(&es.url)));
    append_n(&mut store, 1);
    let clock = Clock::new();
    let d = deliverer(&es.url, 500);
    // The index exists (created by this deliverer's first call), so the next request is a _bulk.
    assert_eq!(d.deliver_due(&mut store, &|| clock.now(), None).unwrap().delivered, 1);

    let recs = append_n(&mut store, 4);
    es.fail_next(&[503]);
    let r = d.deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!((r.delivered, r.retrying, r.failed), (0, 4, 0), "{r:?}");
    let all = rows(&mut store);
    for rec in &recs {
        let row = &all[&rec.seq];
        assert_eq!((row.state, row.attempts, row.next_attempt_ms), (OutboxState::Pending, 1, clock.ms() + 30_000));
        assert!(row.last_error.as_deref().unwrap().contains("(HTTP 503)"), "{row:?}");
    }

    es.fail_next(&[401]);
    clock.0.fetch_add(30_000, Ordering::SeqCst);
    let r = d.deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!((r.delivered, r.retrying, r.failed), (0, 0, 4), "{r:?}");
    let all = rows(&mut store);
    for rec in &recs {
        let row = &all[&rec.seq];
        assert_eq!((row.state, row.attempts), (OutboxState::Failed, 2), "{row:?}");
        assert!(row.last_error.as_deref().unwrap().contains("(HTTP 401)"), "{row:?}");
    }
    assert_eq!(bulk_ids(&es).len(), 3, "one call per pass: {:?}", es.lines());
}

/// Two deliverers, each with its own connection to one store, race over the same backlog:
/// every row's document is sent exactly once.
fn race(open: &(dyn Fn() -> Box<dyn AuditStore> + Sync), es: &FakeEs) {
    let recs = {
        let mut s = open();
        append_n(s.as_mut(), 120)
    };
    // Slow answers, so the two passes overlap.
    es.delay(Duration::from_millis(30));
    let clock = Clock::new();
    let reports: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let clock = &clock;
                sc.spawn(move || {
                    let mut s = open();
                    deliverer(&es.url, 20).deliver_due(s.as_mut(), &|| clock.now(), None).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let delivered: u32 = reports.iter().map(|r| r.delivered).sum();
    assert_eq!(delivered, 120, "{reports:?}");
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    for id in bulk_ids(es).concat() {
        *sent.entry(id).or_default() += 1;
    }
    assert_eq!(sent.len(), 120);
    assert!(sent.values().all(|&n| n == 1), "a row sent twice: {sent:?}");
    assert!(reports.iter().all(|r| r.delivered > 0), "both took part: {reports:?}");
    let mut s = open();
    let all = rows(s.as_mut());
    assert!(recs.iter().all(|r| all[&r.seq].state == OutboxState::Delivered && all[&r.seq].attempts == 1));
}

#[test]
fn two_deliverers_never_send_a_row_twice_sqlite() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let url = es.url.clone();
    race(
        &|| {
            let mut s = SqliteStore::open(&path).unwrap();
            s.set_outbox_router(Some(router(&url)));
            Box::new(s)
        },
        &es,
    );
}

#[test]
fn two_deliverers_never_send_a_row_twice_postgres() {
    let es = FakeEs::start();
    let pg = PgSchema::new();
    let url = es.url.clone();
    race(
        &|| {
            let mut s = pg.open();
            s.set_outbox_router(Some(router(&url)));
            Box::new(s)
        },
        &es,
    );
}

/// The store's batch calls directly: leases exclusive per row, marks as the single calls.
fn lease_and_mark(a: &mut dyn AuditStore, b: &mut dyn AuditStore) {
    let recs = append_n(a, 4);
    let by_seq = rows(a);
    let ids: Vec<i64> = recs.iter().map(|r| by_seq[&r.seq].id).collect();
    let now = T0 + 5_000;
    assert_eq!(a.outbox_lease_many(&ids[..2], now, now + 60_000).unwrap(), ids[..2].to_vec());
    assert_eq!(b.outbox_lease_many(&ids, now, now + 60_000).unwrap(), ids[2..].to_vec(), "only the free rows");
    assert!(a.outbox_lease_many(&ids, now + 1, now + 60_000).unwrap().is_empty(), "all held");
    assert!(a.outbox_due(now, 10).unwrap().is_empty(), "leased rows are not due");
    a.outbox_mark_many(&[
        OutboxMark::Delivered { id: ids[0], reference: Some("ix/a".into()), now_ms: now + 10 },
        OutboxMark::Delivered { id: ids[1], reference: None, now_ms: now + 11 },
        OutboxMark::Failed { id: ids[2], attempts: 1, retry: Retry::At(now + 30_000), error: "busy".into() },
        OutboxMark::Failed { id: ids[3], attempts: 1, retry: Retry::GiveUp, error: "refused".into() },
    ])
    .unwrap();
    let all = rows(b);
    let got: Vec<_> = recs
        .iter()
        .map(|r| {
            let e = &all[&r.seq];
            (e.state, e.attempts, e.reference.clone(), e.delivered_ms, e.last_error.clone())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (OutboxState::Delivered, 1, Some("ix/a".into()), Some(now + 10), None),
            (OutboxState::Delivered, 1, None, Some(now + 11), None),
            (OutboxState::Pending, 1, None, None, Some("busy".into())),
            (OutboxState::Failed, 1, None, None, Some("refused".into())),
        ]
    );
    assert_eq!(all[&recs[2].seq].next_attempt_ms, now + 30_000);
    // The lease is released with the mark: the retried row is due again at its time.
    let due = b.outbox_due(now + 30_000, 10).unwrap();
    assert_eq!(due.iter().map(|d| d.entry.id).collect::<Vec<_>>(), vec![ids[2]]);
    assert!(b.outbox_lease_many(&[], now, now).unwrap().is_empty());
    b.outbox_mark_many(&[]).unwrap();
}

#[test]
fn batch_lease_and_mark_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut a = SqliteStore::open(&path).unwrap();
    a.set_outbox_router(Some(router("http://127.0.0.1:9")));
    let mut b = SqliteStore::open(&path).unwrap();
    lease_and_mark(&mut a, &mut b);
}

#[test]
fn batch_lease_and_mark_postgres() {
    let pg = PgSchema::new();
    let mut a = pg.open();
    a.set_outbox_router(Some(router("http://127.0.0.1:9")));
    let mut b = pg.open();
    lease_and_mark(&mut a, &mut b);
}

/// A fresh PostgreSQL schema (`postgres://postgres@127.0.0.1:5432/test` or
/// `GUARDRAIL_TEST_PG_URL`), dropped at the end; never skipped.
struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    fn new() -> PgSchema {
        let url = std::env::var("GUARDRAIL_TEST_PG_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string());
        static N: AtomicI64 = AtomicI64::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        PgSchema { url, name: format!("gr_esbatch_{}_{n}_{nanos}", std::process::id()) }
    }
    fn open(&self) -> guardrail_store::PostgresStore {
        guardrail_store::PostgresStore::connect_with_schema(&self.url, &self.name)
            .unwrap_or_else(|e| panic!("PostgreSQL: {e}"))
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}
