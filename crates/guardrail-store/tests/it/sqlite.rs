//! SQLite backend: round trip, tamper detection, schema checks and concurrent appenders.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use guardrail_store::{AuditStore, SqliteStore, StoreError, open_store};

use crate::common;

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("nested").join("dirs").join("guardrail.db")
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Raw SQL on the file, as someone with write access could run it, bypassing the store.
fn raw(path: &Path) -> impl FnMut(&str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    move |sql: &str| conn.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn with_tampering(case: common::TamperCase) {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let mut store = open(&path);
    let mut exec = raw(&path);
    case(&mut store, &mut exec);
}

#[test]
fn tamper_rebuild_shows_only_at_a_signed_position() {
    with_tampering(common::tamper_rebuild);
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let mut store = open(&path);
    common::round_trip(&mut store);
    assert_eq!(store.describe(), format!("sqlite:{}", path.display()));
    assert_eq!(store.path(), path);
}

#[test]
fn hash_at() {
    let dir = tempfile::tempdir().unwrap();
    common::hash_at_is_the_records_hash(&mut open(&db(&dir)));
}

#[test]
fn rejects_invalid_drafts() {
    let dir = tempfile::tempdir().unwrap();
    common::rejects_invalid_drafts(&mut open(&db(&dir)));
}

#[test]
fn records_survive_reopening_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let first = common::fill(&mut open(&path), 3);
    let mut store = open(&path);
    assert_eq!(store.all().unwrap(), first);
    let next = store.append(common::draft(3)).unwrap();
    assert_eq!((next.seq, next.prev_hash.as_str()), (4, first[2].hash.as_str()));
    assert!(store.verify().unwrap().ok());
}

/// One store per "process" (as `guardrail gate` opens it): records are durable in the WAL at
/// close, and the WAL stays short however many processes append (it is checkpointed and
/// truncated by an append once past ~64 frames, so every new process scans little of it).
#[test]
fn the_wal_stays_short_across_many_short_lived_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let wal = dir.path().join("nested/dirs/guardrail.db-wal");
    let big = serde_json::json!({"inputs": "x".repeat(12_000)});
    let mut largest = 0;
    for i in 0..120 {
        let mut store = open(&path);
        store.append(guardrail_core::audit::RecordDraft { body: big.clone(), ..common::draft(i) }).unwrap();
        drop(store);
        // No checkpoint on close: the record's durable copy is the WAL until an append copies it.
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    assert!(largest > 0, "the WAL is kept between processes");
    assert!(largest < 80 * 4120, "the WAL grew to {largest} bytes");
    let mut store = open(&path);
    assert_eq!(store.all().unwrap().len(), 120);
    assert!(store.verify().unwrap().ok());
}

#[test]
fn floats_and_odd_values_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let reopen_path = path.clone();
    common::floats_round_trip(&mut open(&path), &move || Box::new(open(&reopen_path)));
}

#[test]
fn pragmas_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, guardrail_store::SCHEMA_VERSION);
    let head: (i64, String) =
        conn.query_row("SELECT seq, hash FROM chain_head WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(head, (0, guardrail_core::audit::GENESIS_HASH.to_string()));
}

#[test]
fn refuses_newer_schema_and_foreign_databases() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    drop(open(&path));
    rusqlite::Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::Schema { reason, .. }) => assert!(reason.contains("newer"), "{reason}"),
        other => panic!("expected a schema error, got {other:?}"),
    }

    let foreign = dir.path().join("other-app.db");
    rusqlite::Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE customers (id INTEGER)").unwrap();
    match SqliteStore::open(&foreign) {
        Err(StoreError::Schema { reason, .. }) => assert!(reason.contains("not a Guardrail audit store"), "{reason}"),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn open_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = dir.path().join("is-a-dir");
    std::fs::create_dir(&path).unwrap();
    let e = SqliteStore::open(&path).unwrap_err();
    assert!(e.to_string().contains("is-a-dir"), "{e}");
}

#[test]
fn tamper_edit_body() {
    with_tampering(common::tamper_edit_body);
}

#[test]
fn tamper_edit_other_columns() {
    with_tampering(common::tamper_edit_other_columns);
}

#[test]
fn tamper_body_not_json() {
    with_tampering(common::tamper_body_not_json);
}

#[test]
fn tamper_column_type() {
    with_tampering(|store, exec| {
        common::fill(store, 3);
        // TEXT affinity would turn a number into text; a blob stays a blob.
        exec("UPDATE audit_records SET kind = x'6b696e64' WHERE seq = 2");
        let rep = store.verify().unwrap();
        assert!(rep.breaks.iter().all(|b| b.seq == 2), "{:?}", rep.breaks);
        assert!(rep.breaks.iter().any(|b| b.problem.contains("blob")), "{:?}", rep.breaks);
    });
}

#[test]
fn tamper_delete_middle() {
    with_tampering(common::tamper_delete_middle);
}

#[test]
fn tamper_swap() {
    with_tampering(common::tamper_swap);
}

#[test]
fn tamper_truncate_tail() {
    with_tampering(common::tamper_truncate_tail);
}

#[test]
fn tamper_anchor() {
    with_tampering(common::tamper_anchor);
}

#[test]
fn concurrent_threads_with_own_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let p = path.clone();
    common::concurrent_appends(Arc::new(move || Box::new(open(&p)) as Box<dyn AuditStore>), 8, 50);
}

#[test]
fn concurrent_claims_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let p = db(&dir);
    common::concurrent_claims(Arc::new(move || Box::new(open(&p)) as Box<dyn AuditStore>), 12);
}

/// Child half of `concurrent_processes`: does nothing unless started by it (by its name,
/// `sqlite::child_appender`, in this binary).
#[test]
fn child_appender() {
    let Ok(path) = std::env::var("GUARDRAIL_STORE_TEST_CHILD_DB") else { return };
    let id: i64 = std::env::var("GUARDRAIL_STORE_TEST_CHILD_ID").unwrap().parse().unwrap();
    let mut store = open(Path::new(&path));
    for i in 0..50 {
        store
            .append(guardrail_core::audit::RecordDraft {
                kind: "deploy_decision".into(),
                recorded_at: "2026-11-24T10:00:00Z".into(),
                body: serde_json::json!({"thread": id, "i": i}),
            })
            .unwrap();
    }
}

#[test]
fn concurrent_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|id| {
            std::process::Command::new(&exe)
                .args(["--exact", "sqlite::child_appender", "--test-threads=1", "--quiet"])
                .env("GUARDRAIL_STORE_TEST_CHILD_DB", &path)
                .env("GUARDRAIL_STORE_TEST_CHILD_ID", id.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a child appender failed");
    }
    let mut store = open(&path);
    let all = store.all().unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=200).collect::<Vec<_>>());
    assert!(store.verify().unwrap().ok());
}

#[test]
fn open_store_specs() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.db");
    let mut s = open_store(plain.to_str().unwrap()).unwrap();
    s.append(common::draft(0)).unwrap();
    assert_eq!(s.describe(), format!("sqlite:{}", plain.display()));

    // sqlite:PATH and sqlite://PATH name the same file.
    let spec = format!("sqlite:{}", plain.display());
    assert_eq!(open_store(&spec).unwrap().all().unwrap().len(), 1);
    let spec = format!("sqlite://{}", plain.display());
    assert_eq!(open_store(&spec).unwrap().all().unwrap().len(), 1);

    for bad in ["", "  ", "sqlite:", "mysql://host/db"] {
        match open_store(bad) {
            Err(StoreError::InvalidSpec { .. }) => {}
            Err(e) => panic!("{bad:?}: wrong error {e}"),
            Ok(s) => panic!("{bad:?}: opened {}", s.describe()),
        }
    }
}
