//! The WAL write-coalescing VFS (`src/wal_vfs.rs`, compiled into this binary as `vfs`: the
//! library keeps it crate-private). Connections are opened through it directly, configured as
//! the SQLite store configures its own (WAL, `synchronous=FULL`, no auto-checkpoint); what they
//! write is read back through SQLite's default VFS, in this process and in others.

#[path = "../../src/wal_vfs.rs"]
#[allow(dead_code)]
mod vfs;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::{Connection, OpenFlags};

/// About the size of a 10,000-rule gate record's body.
const LARGE: usize = 8_500_000;

fn flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// A connection through the VFS, set up as the store sets up its own.
fn open_vfs(path: &Path, synchronous: &str) -> Connection {
    let conn = Connection::open_with_flags_and_vfs(path, flags(), vfs::name().unwrap()).unwrap();
    setup(&conn, synchronous);
    conn
}

/// A connection through SQLite's default VFS.
fn open_plain(path: &Path) -> Connection {
    let conn = Connection::open_with_flags(path, flags()).unwrap();
    setup(&conn, "FULL");
    conn
}

fn setup(conn: &Connection, synchronous: &str) {
    conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "synchronous", synchronous).unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).unwrap();
    conn.execute_batch("CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)").unwrap();
}

/// A body of `len` bytes, different for each `seq` (so a page from the wrong record shows).
fn body(seq: i64, len: usize) -> String {
    let unit = format!("{{\"seq\":{seq},\"rule\":\"r-{seq:08}\"}},");
    unit.repeat(len / unit.len() + 1)[..len].to_string()
}

fn append(conn: &mut Connection, seq: i64, len: usize) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute("INSERT INTO records (seq, body) VALUES (?1, ?2)", rusqlite::params![seq, body(seq, len)])?;
    tx.commit()
}

/// Checks that `conn` sees exactly `expected` (seq, body length) rows with the right bodies and
/// that the database passes `PRAGMA integrity_check`.
fn check(conn: &Connection, expected: &[(i64, usize)]) {
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let mut stmt = conn.prepare("SELECT seq, body FROM records ORDER BY seq").unwrap();
    let rows: Vec<(i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), expected.iter().map(|e| e.0).collect::<Vec<_>>());
    for ((seq, text), (_, len)) in rows.iter().zip(expected) {
        assert!(*text == body(*seq, *len), "record {seq}'s body differs");
    }
}

fn wal_len(path: &Path) -> u64 {
    std::fs::metadata(wal_path(path)).map(|m| m.len()).unwrap_or(0)
}

fn wal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

#[test]
fn small_and_large_transactions_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut conn = open_vfs(&path, "FULL");
    let mut expected = Vec::new();
    for (seq, len) in [(1, 100), (2, LARGE), (3, 10), (4, 5_000), (5, LARGE / 3), (6, 1)] {
        append(&mut conn, seq, len).unwrap();
        expected.push((seq, len));
        // The writer and a reader through the default VFS (its own file descriptors) agree
        // after every commit.
        check(&conn, &expected);
        check(&open_plain(&path), &expected);
    }
    assert!(wal_len(&path) > LARGE as u64, "the records are in the WAL, not yet checkpointed");
    // The checkpoint reads the frames back through the VFS and copies them to the database.
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).unwrap();
    assert_eq!(busy, 0);
    assert_eq!(wal_len(&path), 0);
    append(&mut conn, 7, LARGE).unwrap();
    expected.push((7, LARGE));
    drop(conn);
    check(&open_plain(&path), &expected);
    check(&open_vfs(&path, "FULL"), &expected);
}

/// Under `synchronous=NORMAL` no `xSync` follows a commit: the frames must still be in the file
/// once the commit returns, for a reader with its own descriptor. A small page cache makes
/// SQLite spill pages mid-transaction and rewrite some of those frames in place (the path that
/// rewrites frame headers at commit).
#[test]
fn commit_without_sync_is_visible_to_other_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    let mut conn = open_vfs(&path, "NORMAL");
    conn.pragma_update(None, "cache_size", 50).unwrap();
    let reader = open_plain(&path);
    let mut expected = Vec::new();
    for seq in 1..=4 {
        let len = if seq % 2 == 0 { LARGE / 4 } else { 3_000 };
        let tx = conn.transaction().unwrap();
        // Written, overwritten and rewritten within one transaction.
        for round in 0..3 {
            tx.execute(
                "INSERT OR REPLACE INTO records (seq, body) VALUES (?1, ?2)",
                rusqlite::params![seq, body(seq + round, len)],
            )
            .unwrap();
        }
        tx.execute("UPDATE records SET body = ?2 WHERE seq = ?1", rusqlite::params![seq, body(seq, len)]).unwrap();
        tx.commit().unwrap();
        expected.push((seq, len));
        check(&reader, &expected);
    }
    drop(conn);
    check(&open_plain(&path), &expected);
}

/// Child half of `crash_after_commit_loses_nothing`: appends through the VFS, says so on stdout
/// and waits to be killed (its connection never closes, so nothing is flushed on close).
#[test]
fn child_writer() {
    let Ok(path) = std::env::var("GUARDRAIL_WAL_VFS_CHILD_DB") else { return };
    let synchronous = std::env::var("GUARDRAIL_WAL_VFS_CHILD_SYNC").unwrap();
    let mut conn = open_vfs(Path::new(&path), &synchronous);
    for (seq, len) in [(1, 200), (2, LARGE), (3, 50)] {
        append(&mut conn, seq, len).unwrap();
    }
    println!("committed");
    std::thread::sleep(std::time::Duration::from_secs(120));
}

#[test]
fn crash_after_commit_loses_nothing() {
    for synchronous in ["FULL", "NORMAL"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "wal_vfs::child_writer", "--test-threads=1", "--nocapture", "--quiet"])
            .env("GUARDRAIL_WAL_VFS_CHILD_DB", &path)
            .env("GUARDRAIL_WAL_VFS_CHILD_SYNC", synchronous)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("committed") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "the child exited before committing");
        }
        // SIGKILL, with the child's connection still open.
        child.kill().unwrap();
        assert!(!child.wait().unwrap().success());
        check(&open_plain(&path), &[(1, 200), (2, LARGE), (3, 50)]);
    }
}

/// Child half of `write_error_fails_the_commit`: runs under a file size limit that the large
/// record's WAL frames exceed, and reports what each append returned.
#[test]
fn child_limited_writer() {
    let Ok(path) = std::env::var("GUARDRAIL_WAL_VFS_LIMITED_DB") else { return };
    let mut conn = open_vfs(Path::new(&path), "FULL");
    append(&mut conn, 1, 100).unwrap();
    match append(&mut conn, 2, LARGE) {
        Ok(()) => println!("large: ok"),
        Err(e) => println!("large: {:?}", e.sqlite_error_code()),
    }
    // The connection is still usable, and the failed transaction left nothing behind.
    match append(&mut conn, 3, 100) {
        Ok(()) => println!("small: ok"),
        Err(e) => println!("small: {:?}", e.sqlite_error_code()),
    }
}

/// A write the file system refuses (here `EFBIG` past `RLIMIT_FSIZE`, with `SIGXFSZ` ignored)
/// while the buffered frames are written: the commit fails, and the records committed before and
/// after it are intact.
#[test]
fn write_error_fails_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.db");
    // 4,096 blocks: 2 MiB for dash (512-byte blocks), 4 MiB for bash; the large record's frames
    // are ~8.6 MB, the small ones a few KiB.
    let out = Command::new("sh")
        .args(["-c", "trap '' XFSZ; ulimit -f 4096 && exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "wal_vfs::child_limited_writer", "--test-threads=1", "--nocapture", "--quiet"])
        .env("GUARDRAIL_WAL_VFS_LIMITED_DB", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("large: ok"), "the large append reported success: {stdout}");
    assert!(stdout.contains("large: Some(DiskFull)") || stdout.contains("large: Some(SystemIoFailure)"), "{stdout}");
    assert!(stdout.contains("small: ok"), "{stdout}");
    check(&open_plain(&path), &[(1, 100), (3, 100)]);
}

#[test]
fn name_registers_once() {
    let a = vfs::name().unwrap();
    let b = vfs::name().unwrap();
    assert_eq!(a, b);
    assert!(std::ptr::eq(a, b));
}
