//! The WAL write-coalescing VFS (`src/wal_vfs.rs`, compiled in here: the library keeps it
//! crate-private) against SQLite's default VFS, on the 10,000-rule gate record's append: an
//! 8.5 MB body inserted in one transaction into the store's schema, with the store's
//! connection settings (WAL, `synchronous=FULL`, no auto-checkpoint, no checkpoint on close),
//! then the store's inline `wal_checkpoint(TRUNCATE)` (the WAL is past its 64 frames).
//!
//! - `fresh`: a new database per run (open, schema, append, checkpoint, close), as a gate
//!   process with a fresh store;
//! - `reused`: one more record appended to a database that already holds some.
//!
//! The two VFSes alternate run by run; medians and minimums in ms. Not a criterion bench: one
//! run is ~30 ms of I/O and the comparison wants both sides under the same load.
//!
//! `cargo bench -p guardrail-store --bench wal_vfs [-- RUNS]`; `WAL_VFS_BENCH_DIR` (default
//! `/dev/shm`, tmpfs, else the system temp directory); `WAL_VFS_BENCH_ONLY=plain|vfs` runs one
//! side only, once (for `strace -c -f`).

// Until Cargo.toml names this bench with `harness = false`, cargo builds it with the test
// harness, which has its own `main`.
#![cfg_attr(test, allow(dead_code, unused_imports))]

#[path = "../src/wal_vfs.rs"]
#[allow(dead_code)]
mod vfs;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

const BODY: usize = 8_500_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_records (
    seq         INTEGER PRIMARY KEY CHECK (seq >= 1),
    kind        TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    body        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_records_kind_seq ON audit_records (kind, seq);
CREATE TABLE IF NOT EXISTS chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
";

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Plain,
    Vfs,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Plain => "default VFS",
            Side::Vfs => "coalescing VFS",
        }
    }
}

fn open(path: &Path, side: Side) -> Connection {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match side {
        Side::Plain => Connection::open_with_flags(path, flags),
        Side::Vfs => Connection::open_with_flags_and_vfs(path, flags, vfs::name().expect("register the VFS")),
    }
    .expect("open");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    let _: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).expect("WAL");
    conn.pragma_update(None, "synchronous", "FULL").expect("synchronous");
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).expect("no ckpt on close");
    conn.pragma_update(None, "wal_autocheckpoint", 0).expect("autocheckpoint");
    conn.execute_batch(SCHEMA).expect("schema");
    conn
}

/// Appends one record as the store does (one transaction: the row and the chain head), and
/// returns (commit time, checkpoint time).
fn append(conn: &mut Connection, body: &str) -> (Duration, Duration) {
    let t0 = Instant::now();
    let tx = conn.transaction().expect("begin");
    let seq: i64 = tx.query_row("SELECT coalesce(max(seq), 0) + 1 FROM audit_records", [], |r| r.get(0)).expect("seq");
    let hash = format!("{seq:064x}");
    tx.execute(
        "INSERT INTO audit_records (seq, kind, recorded_at, body, prev_hash, hash) VALUES (?1, 'deploy_decision', '2026-12-07T00:00:00Z', ?2, ?3, ?4)",
        rusqlite::params![seq, body, format!("{:064x}", seq - 1), hash],
    )
    .expect("insert");
    tx.execute("INSERT OR REPLACE INTO chain_head (id, seq, hash) VALUES (1, ?1, ?2)", rusqlite::params![seq, hash])
        .expect("head");
    tx.commit().expect("commit");
    let t1 = Instant::now();
    let _: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).expect("checkpoint");
    (t1 - t0, t1.elapsed())
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

#[derive(Default)]
struct Times {
    commit: Vec<f64>,
    checkpoint: Vec<f64>,
    total: Vec<f64>,
}

impl Times {
    fn push(&mut self, commit: Duration, checkpoint: Duration, total: Duration) {
        self.commit.push(commit.as_secs_f64() * 1e3);
        self.checkpoint.push(checkpoint.as_secs_f64() * 1e3);
        self.total.push(total.as_secs_f64() * 1e3);
    }
}

fn stat(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return "-".into();
    }
    format!("{:7.2} ({:6.2})", s[s.len() / 2], s[0])
}

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(30);
    let only = std::env::var("WAL_VFS_BENCH_ONLY").ok();
    let sides: Vec<Side> = match only.as_deref() {
        Some("plain") => vec![Side::Plain],
        Some("vfs") => vec![Side::Vfs],
        _ => vec![Side::Plain, Side::Vfs],
    };
    let runs = if only.is_some() { 1 } else { runs };
    let base = std::env::var_os("WAL_VFS_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() { shm } else { std::env::temp_dir() }
    });
    let dir = tempfile::tempdir_in(&base).expect("bench dir");
    let unit = "{\"rule\":\"r-00000000\",\"verdict\":\"allow\",\"why\":[\"matched\"]},";
    let body = unit.repeat(BODY / unit.len() + 1)[..BODY].to_string();

    // Reused stores: a few records in already, checkpointed.
    let mut reused: Vec<(Side, PathBuf, Connection)> = sides
        .iter()
        .map(|&side| {
            let path = dir.path().join(format!("reused-{}.db", side as u8));
            let mut conn = open(&path, side);
            for _ in 0..3 {
                append(&mut conn, &body);
            }
            (side, path, conn)
        })
        .collect();

    let mut fresh_t: Vec<Times> = sides.iter().map(|_| Times::default()).collect();
    let mut reused_t: Vec<Times> = sides.iter().map(|_| Times::default()).collect();
    for run in 0..runs {
        // Alternate which side goes first, so neither always follows the other.
        let order: Vec<usize> =
            if run % 2 == 0 { (0..sides.len()).collect() } else { (0..sides.len()).rev().collect() };
        for i in order {
            let side = sides[i];
            let path = dir.path().join(format!("fresh-{}.db", side as u8));
            remove(&path);
            let t0 = Instant::now();
            let mut conn = open(&path, side);
            let (commit, checkpoint) = append(&mut conn, &body);
            drop(conn);
            fresh_t[i].push(commit, checkpoint, t0.elapsed());

            let (_, _, conn) = &mut reused[i];
            let t0 = Instant::now();
            let (commit, checkpoint) = append(conn, &body);
            reused_t[i].push(commit, checkpoint, t0.elapsed());
        }
    }
    for (_, path, conn) in reused.drain(..) {
        let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check");
        assert_eq!(ok, "ok", "{}", path.display());
    }

    println!("8.5 MB record, {runs} runs each, {}: median (min) ms", base.display());
    println!("{:<16} {:<8} {:>16} {:>16} {:>16}", "", "store", "commit", "checkpoint", "total");
    for (i, &side) in sides.iter().enumerate() {
        for (store, t) in [("fresh", &fresh_t[i]), ("reused", &reused_t[i])] {
            println!(
                "{:<16} {:<8} {:>16} {:>16} {:>16}",
                side.label(),
                store,
                stat(&t.commit),
                stat(&t.checkpoint),
                stat(&t.total)
            );
        }
    }
}
