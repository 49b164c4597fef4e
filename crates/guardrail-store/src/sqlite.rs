//! The SQLite backend: one file, many writers.
//!
//! Concurrency and durability come from SQLite itself:
//! - WAL journal, so readers never block the writer and vice versa;
//! - `synchronous=FULL`, so every commit is fsynced before `append` returns;
//! - a 30 s busy timeout, so a writer that finds the database locked waits instead of failing;
//! - appends run in `BEGIN IMMEDIATE`, which takes the write lock *before* the head is read,
//!   so two appenders can never seal after the same head (a deferred transaction would read
//!   first and then fail to upgrade, or worse, both would read the same head).
//!
//! The `seq` primary key and the unique `hash` are a second line of defence: a fork could not
//! be inserted even if the locking above were bypassed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guardrail_core::audit::{ChainedRecord, EncodedDraft, GENESIS_HASH, RecordDraft, VerifyReport};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use std::sync::Arc;

use crate::outbox::{
    ChannelKind, DueEntry, OUTBOX_COLUMNS, OutboxEntry, OutboxMark, OutboxRouter, OutboxState, OutboxStatus,
    OutboxTarget, Retry,
};
use crate::plan::{ClaimGuard, ClaimKey, History, IndexRow, Indexed, LinkedClaim, LinkedDraft, Outcome, Unit, Work};
use crate::{
    Anchor, AuditStore, BadCell, Cell, Claim, Decoded, KeptInput, ListQuery, SCHEMA_VERSION, StoreError, build_report,
    check_head, decode_row, find_with, prefix_upper_bound, sql_limit,
};

/// How long a connection waits for another writer's lock before giving up. Appends hold the
/// lock for one insert and an fsync (milliseconds), so 30 s only runs out if something is stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// `PRAGMA application_id` of a Guardrail audit database ("GRD1"), so we never add our tables
/// to some other application's SQLite file given by mistake.
const APPLICATION_ID: i64 = 0x4752_4431;

/// WAL size at which an append, after its commit, checkpoints the WAL into the database and
/// truncates it (`PRAGMA wal_checkpoint(TRUNCATE)`): 64 frames, about a dozen gate records.
///
/// Why not SQLite's own auto-checkpoint: connections do not checkpoint on close (see
/// [`SqliteStore::open`]), so every process is the WAL's first connection and rebuilds the WAL
/// index by reading the whole WAL, and the rebuilt index forgets how much of it was already
/// copied into the database. A PASSIVE auto-checkpoint then copies the whole WAL again on every
/// commit and the WAL never restarts (measured: 900 reads, 300 writes and 4 fsyncs per gate
/// once past the limit). Truncating keeps the WAL short for the next process to scan.
const WAL_TRUNCATE_BYTES: u64 = 32 + 64 * (4096 + 24);

/// How long the post-commit checkpoint waits for readers before giving up until next time (the
/// record is already durable; a checkpoint is housekeeping and must not stall an append).
const CHECKPOINT_BUSY_TIMEOUT: Duration = Duration::from_millis(20);

const COLUMNS: &str = "seq, kind, recorded_at, body, prev_hash, hash";

/// Version 1 schema. `seq` is the rowid alias without AUTOINCREMENT: it is assigned by `seal`,
/// never by SQLite. `chain_head` holds exactly one row (id = 1), the head anchor.
const SCHEMA_V1: &str = "
CREATE TABLE audit_records (
    seq         INTEGER PRIMARY KEY CHECK (seq >= 1),
    kind        TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    body        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_records_kind_seq ON audit_records (kind, seq);
CREATE TABLE chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
";

/// The outbox side table (see [`crate::outbox`]): created by the first append that has rows
/// for it, inside that append's write transaction. No foreign key to `audit_records`: the
/// store writes both in one transaction, and a foreign key would only add a lookup per append.
const OUTBOX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    record_seq      INTEGER NOT NULL,
    channel         TEXT NOT NULL,
    ordering_key    TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    lease_until_ms  INTEGER,
    last_error      TEXT,
    reference       TEXT,
    delivered_ms    INTEGER,
    UNIQUE (record_seq, channel)
);
CREATE INDEX IF NOT EXISTS outbox_state_next ON outbox (state, next_attempt_ms);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (channel, ordering_key, id);
";

/// The claim index (see [`crate::plan`]): beside the chain, no hash covers it. `WITHOUT ROWID`:
/// the key is the row, one B-tree. Created with a new database, and on the first append of this
/// build to an older one (with `chain_head.claims_seq`, NULL until the index is built).
const CLAIMS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_claims (
    kind  TEXT NOT NULL,
    claim TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (kind, claim)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_claim_kinds (
    kind TEXT PRIMARY KEY
) WITHOUT ROWID;
";

/// Records indexed per read while the claim index catches up with the chain.
const INDEX_CHUNK: i64 = 512;

/// An audit store in one SQLite file. Each value owns one connection; open one per thread or
/// process (a connection is `Send` but not `Sync`).
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    described: String,
    router: Option<Arc<dyn OutboxRouter>>,
    /// The outbox table is known to exist (checked once per connection).
    outbox_ready: bool,
    /// `append` checkpoints a long WAL itself (see [`WAL_TRUNCATE_BYTES`]); off for a shared
    /// store's writer, whose checkpoints run beside it ([`SqliteStore::checkpoint`]).
    inline_checkpoint: bool,
    /// The claim index's table and `chain_head.claims_seq` are known to exist.
    claims_ready: bool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, its parent directories and the
    /// schema, and configures the connection (WAL, `synchronous=FULL`, busy timeout).
    ///
    /// Fails with [`StoreError::Schema`] if the file is some other application's database or
    /// was written by a newer Guardrail.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
        if let Some(dir) = &parent {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        }
        let existed = path.exists();
        // No SQLITE_OPEN_URI: a path is a path, even if it starts with `file:`.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        // WAL frames written as a few large writes instead of two per page (see wal_vfs).
        let conn =
            Connection::open_with_flags_and_vfs(&path, flags, crate::wal_vfs::name().map_err(&err)?).map_err(&err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
        enable_wal(&conn).map_err(&err)?;
        // synchronous is per connection (unlike journal_mode), so it is set on every open.
        conn.pragma_update(None, "synchronous", "FULL").map_err(&err)?;
        // A gate process appends one record and exits. By default the last connection to close
        // checkpoints the WAL into the database and deletes it: two more fsyncs, a truncate and
        // two unlinks per process, and the next process recreates the WAL (plus a directory
        // fsync). Committed records are already durable in the fsynced WAL, so the checkpoint
        // is done by `append` instead, once the WAL passes `WAL_TRUNCATE_BYTES` (SQLite's own
        // auto-checkpoint is off: see there why). Copy the `-wal` file with the database (or
        // use `sqlite3 … .backup`) when backing up.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).map_err(&err)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(&err)?;
        // The query planner stability guarantee: a cached statement with a bound range
        // (`WHERE seq > ?1`, the views' incremental reads) keeps its plan instead of being
        // recompiled whenever a value is bound (~4 % of an approval through `serve`). The plans
        // are primary-key and unique-index lookups, right for every value; an SQLite without
        // the option simply recompiles as before.
        let _ = conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true);
        let described = format!("sqlite:{}", std::path::absolute(&path).unwrap_or_else(|_| path.clone()).display());
        let mut store = SqliteStore {
            conn,
            path,
            described,
            router: None,
            outbox_ready: false,
            inline_checkpoint: true,
            claims_ready: false,
        };
        store.ensure_schema()?;
        if !existed {
            // The new file's directory entry must be durable too, or a crash could lose the
            // whole database along with records already reported as written.
            crate::mirror::sync_dir(parent.as_deref().unwrap_or(Path::new(".")))?;
        }
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the schema on a new database, or checks an existing one.
    fn ensure_schema(&mut self) -> Result<(), StoreError> {
        let err = sqlite_err(&self.path);
        // Fast path without a write lock, so readers (list, verify) never queue behind writers
        // and work on a read-only copy.
        if schema_state(&self.conn).map_err(&err)? == (SCHEMA_VERSION, APPLICATION_ID) {
            return Ok(());
        }
        let location = self.described.clone();
        // Re-check under the write lock: another process may be creating the schema right now.
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&err)?;
        let (version, app_id) = schema_state(&tx).map_err(&err)?;
        let problem = match version {
            0 => {
                let tables: i64 = tx
                    .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))
                    .map_err(&err)?;
                if app_id != APPLICATION_ID && (app_id != 0 || tables > 0) {
                    Some("this SQLite file is not a Guardrail audit store (it already holds other tables)".to_string())
                } else {
                    tx.execute_batch(SCHEMA_V1).map_err(&err)?;
                    tx.execute("INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, ?1)", [GENESIS_HASH])
                        .map_err(&err)?;
                    // The claim index from the start (an empty chain: indexed up to 0).
                    tx.execute_batch(CLAIMS_SCHEMA).map_err(&err)?;
                    tx.execute_batch("ALTER TABLE chain_head ADD COLUMN claims_seq INTEGER").map_err(&err)?;
                    tx.execute("UPDATE chain_head SET claims_seq = 0 WHERE id = 1", []).map_err(&err)?;
                    tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(&err)?;
                    tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(&err)?;
                    None
                }
            }
            v if v == SCHEMA_VERSION && app_id == APPLICATION_ID => None,
            v if v > SCHEMA_VERSION => Some(format!(
                "schema version {v} was written by a newer Guardrail; this build understands up to {SCHEMA_VERSION}"
            )),
            v => Some(format!(
                "this SQLite file is not a Guardrail audit store (user_version {v}, application_id {app_id})"
            )),
        };
        match problem {
            None => tx.commit().map_err(&err),
            Some(reason) => Err(StoreError::Schema { location, reason }),
        }
    }

    fn query_strict(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<ChainedRecord>, StoreError> {
        query(&self.conn, sql, params).map_err(sqlite_err(&self.path))?.into_iter().map(Decoded::strict).collect()
    }

    fn by_prefix(&mut self, prefix: &str) -> Result<Vec<ChainedRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_records WHERE hash >= ?1 AND hash < ?2 ORDER BY seq LIMIT 2");
        self.query_strict(&sql, &[&prefix, &prefix_upper_bound(prefix)])
    }
}

/// Wraps rusqlite errors with the database path.
fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |source| StoreError::Sqlite { path: path.clone(), source }
}

fn schema_state(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let app_id: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    Ok((version, app_id))
}

fn query(conn: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> rusqlite::Result<Vec<Decoded>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, decode)?;
    rows.collect()
}

/// Switches the file to WAL (a no-op when it already is). journal_mode is persistent, so only
/// the first opens of a new file change it; that change needs an exclusive lock, and SQLite
/// reports "database is locked" at once instead of calling the busy handler when several
/// connections race for it (seen with 8 threads opening a new file). So it is retried here,
/// within the same budget as the busy timeout.
///
/// If the file system cannot do WAL, SQLite keeps its rollback journal, which is just as safe
/// with BEGIN IMMEDIATE and synchronous=FULL, only slower; that is accepted rather than failed.
fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        let attempt = conn.pragma_query_value(None, "journal_mode", |row| row.get::<_, String>(0)).and_then(|mode| {
            if mode.eq_ignore_ascii_case("wal") {
                Ok(mode)
            } else {
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            }
        });
        match attempt {
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// Reads one column as text; anything else is described rather than failing the whole read.
fn cell(row: &Row<'_>, idx: usize) -> rusqlite::Result<Cell> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Text(t) => String::from_utf8(t.to_vec()).map_err(|_| BadCell::NotUtf8),
        ValueRef::Null => Err(BadCell::Null),
        ValueRef::Integer(n) => Err(BadCell::Integer(n)),
        ValueRef::Real(f) => Err(BadCell::Real(f)),
        ValueRef::Blob(_) => Err(BadCell::Blob),
    })
}

fn decode(row: &Row<'_>) -> rusqlite::Result<Decoded> {
    // `seq` is the rowid alias, always an integer.
    let seq: i64 = row.get(0)?;
    Ok(decode_row(seq, cell(row, 1)?, cell(row, 2)?, cell(row, 3)?, cell(row, 4)?, cell(row, 5)?))
}

fn read_anchor(tx: &Transaction<'_>) -> rusqlite::Result<Option<Anchor>> {
    tx.query_row("SELECT seq, hash FROM chain_head WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?))).optional()
}

/// The anchor and how far the claim index goes (`None`: not built yet, or no anchor row).
fn read_head(tx: &Transaction<'_>) -> rusqlite::Result<(Option<Anchor>, Option<i64>)> {
    let row = tx
        .prepare_cached("SELECT seq, hash, claims_seq FROM chain_head WHERE id = 1")?
        .query_row([], |r| Ok(((r.get(0)?, r.get(1)?), r.get::<_, Option<i64>>(2)?)))
        .optional()?;
    Ok(match row {
        Some((anchor, claims)) => (Some(anchor), claims),
        None => (None, None),
    })
}

/// The last record when the anchor names it ([`crate::anchored_tail`]): two index lookups, no
/// row read.
fn anchored(tx: &Transaction<'_>, anchor: Option<&Anchor>) -> rusqlite::Result<Option<Option<ChainedRecord>>> {
    let Some((_, hash)) = anchor else { return Ok(None) };
    let max_seq: Option<i64> = tx.prepare_cached("SELECT max(seq) FROM audit_records")?.query_row([], |r| r.get(0))?;
    let seq_of_hash: Option<i64> = tx
        .prepare_cached("SELECT seq FROM audit_records WHERE hash = ?1")?
        .query_row([hash], |r| r.get(0))
        .optional()?;
    Ok(crate::anchored_tail(anchor, max_seq, seq_of_hash))
}

/// Both the claim index's table and its `chain_head` column exist.
fn claims_schema_present(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('audit_claims', 'audit_claim_kinds')) \
         + (SELECT count(*) FROM pragma_table_info('chain_head') WHERE name = 'claims_seq')",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n == 3)
}

/// Why the claim index could not be brought up to the chain.
enum CatchUpError {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for CatchUpError {
    fn from(e: rusqlite::Error) -> Self {
        CatchUpError::Sqlite(e)
    }
}

impl CatchUpError {
    fn into_store(self, path: &Path) -> StoreError {
        match self {
            CatchUpError::Sqlite(source) => StoreError::Sqlite { path: path.to_path_buf(), source },
            CatchUpError::Store(e) => e,
        }
    }
}

/// Indexes the records of the indexed kinds that the index does not cover yet (after
/// `indexed`, up to `last`: those an older build appended), inside the append's transaction.
/// Returns whether there were any to look at.
fn catch_up(tx: &Transaction<'_>, indexed: Option<i64>, last: i64) -> Result<bool, CatchUpError> {
    let after = indexed.unwrap_or(0);
    if after == last {
        return Ok(false);
    }
    if after > last {
        return Err(CatchUpError::Store(StoreError::Corrupt {
            seq: after,
            reason: format!(
                "the claim index covers records up to {after} but the chain ends at {last}: records were removed; \
                 refusing to append (run `guardrail audit verify`)"
            ),
        }));
    }
    let kinds: Vec<String> = {
        let mut st = tx.prepare_cached("SELECT kind FROM audit_claim_kinds")?;
        let rows = st.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for kind in &kinds {
        index_kind(tx, kind, after, last)?;
    }
    Ok(true)
}

/// Indexes the records of `kind` after `after` up to `last` (by the (kind, seq) index: only that
/// kind's records are read).
fn index_kind(tx: &Transaction<'_>, kind: &str, mut after: i64, last: i64) -> rusqlite::Result<()> {
    let sql =
        format!("SELECT {COLUMNS} FROM audit_records WHERE kind = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4");
    loop {
        let rows = query(tx, &sql, &[&kind, &after, &last, &INDEX_CHUNK])?;
        let Some(end) = rows.last().map(|d| d.record.seq) else { break };
        after = end;
        let mut index = Vec::new();
        crate::plan::index_rows(rows, &mut index);
        insert_claims(tx, &crate::plan::first_per_key(index))?;
    }
    Ok(())
}

/// Makes the index hold `kind`'s claims up to `last` (the first claim of a kind this store is
/// asked: its records are read once, as every claim of it used to read them). Returns whether
/// it had to.
fn ensure_kind(tx: &Transaction<'_>, kind: &str, last: i64) -> rusqlite::Result<bool> {
    let known: i64 =
        tx.prepare_cached("SELECT count(*) FROM audit_claim_kinds WHERE kind = ?1")?.query_row([kind], |r| r.get(0))?;
    if known > 0 {
        return Ok(false);
    }
    index_kind(tx, kind, 0, last)?;
    tx.prepare_cached("INSERT INTO audit_claim_kinds (kind) VALUES (?1)")?.execute([kind])?;
    Ok(true)
}

/// The records of the span's kinds after its `after` up to `last`, under the write lock (by the
/// `(kind, seq)` index: only those kinds' records are read), for the guarded claims.
fn read_history(tx: &Transaction<'_>, span: &crate::plan::GuardSpan, last: i64) -> rusqlite::Result<History> {
    let marks = vec!["?"; span.kinds.len()].join(", ");
    let sql =
        format!("SELECT {COLUMNS} FROM audit_records WHERE seq > ?1 AND seq <= ?2 AND kind IN ({marks}) ORDER BY seq");
    let mut st = tx.prepare_cached(&sql)?;
    let mut args: Vec<&dyn rusqlite::ToSql> = vec![&span.after, &last];
    args.extend(span.kinds.iter().map(|k| k as &dyn rusqlite::ToSql));
    let rows = st.query_map(args.as_slice(), decode)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(History::of(rows))
}

/// Inserts claim-index rows; a key already indexed keeps the earlier of its two records (a
/// kind indexed after its later records were: the earlier holder it finds replaces them).
fn insert_claims(tx: &Transaction<'_>, rows: &[IndexRow]) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO audit_claims (kind, claim, seq) VALUES (?1, ?2, ?3) ON CONFLICT (kind, claim) \
         DO UPDATE SET seq = excluded.seq WHERE excluded.seq < audit_claims.seq",
    )?;
    for (kind, claim, seq) in rows {
        st.execute(params![kind, claim, seq])?;
    }
    Ok(())
}

/// What the claim index holds for `key` (its holder, or a damage marker of its kind; the one
/// earlier in the chain when both): one indexed lookup, and the record it names.
fn lookup_claim(tx: &Transaction<'_>, key: &ClaimKey) -> rusqlite::Result<Option<Indexed>> {
    let (kind, claim) = key;
    let mut st = tx.prepare_cached(
        "SELECT c.claim, c.seq, r.seq, r.kind, r.recorded_at, r.body, r.prev_hash, r.hash \
         FROM audit_claims c LEFT JOIN audit_records r ON r.seq = c.seq \
         WHERE c.kind = ?1 AND c.claim IN (?2, '')",
    )?;
    let rows = st.query_map(params![kind, claim], |row| {
        let claim: String = row.get(0)?;
        let seq: i64 = row.get(1)?;
        let record = match row.get::<_, Option<i64>>(2)? {
            Some(rseq) => {
                Some(decode_row(rseq, cell(row, 3)?, cell(row, 4)?, cell(row, 5)?, cell(row, 6)?, cell(row, 7)?))
            }
            None => None,
        };
        Ok(Indexed::from_row(kind, &claim, seq, record))
    })?;
    let mut found: Option<Indexed> = None;
    for r in rows {
        let r = r?;
        found = Some(match found {
            Some(f) => f.earliest(r),
            None => r,
        });
    }
    Ok(found)
}

impl SqliteStore {
    /// The claim index's table and column, created if missing (an existing store, first
    /// append of this build): checked once per connection, created under the write lock in a
    /// transaction of its own. The index itself is built by the next append ([`catch_up`]).
    fn ensure_claims_schema(&mut self) -> Result<(), StoreError> {
        let err = sqlite_err(&self.path);
        if !claims_schema_present(&self.conn).map_err(&err)? {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&err)?;
            if !claims_schema_present(&tx).map_err(&err)? {
                tx.execute_batch(CLAIMS_SCHEMA).map_err(&err)?;
                let has_column: i64 = tx
                    .query_row(
                        "SELECT count(*) FROM pragma_table_info('chain_head') WHERE name = 'claims_seq'",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(&err)?;
                if has_column == 0 {
                    tx.execute_batch("ALTER TABLE chain_head ADD COLUMN claims_seq INTEGER").map_err(&err)?;
                }
            }
            tx.commit().map_err(&err)?;
        }
        self.claims_ready = true;
        Ok(())
    }

    /// One append transaction for `work` ([`crate::plan`]): the units sealed in order after the
    /// head, their records, outbox rows and claim-index rows written, one commit (one WAL fsync
    /// for all of them). Claims are decided under the write lock, by the index.
    pub(crate) fn append_tx(&mut self, work: Vec<Work>) -> Result<Vec<Outcome>, StoreError> {
        if !self.claims_ready {
            self.ensure_claims_schema()?;
        }
        let err = sqlite_err(&self.path);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&err)?;
        let (anchor, claims_seq) = read_head(&tx).map_err(&err)?;
        let last = match anchored(&tx, anchor.as_ref()).map_err(&err)? {
            Some(tail) => tail,
            None => {
                // The anchor does not name the last record: read it, to say how they disagree.
                let sql = format!("SELECT {COLUMNS} FROM audit_records ORDER BY seq DESC LIMIT 1");
                let mut stmt = tx.prepare_cached(&sql).map_err(&err)?;
                let last = stmt.query_row([], decode).optional().map_err(&err)?.map(Decoded::strict).transpose()?;
                check_head(anchor.as_ref(), last.as_ref())?;
                last
            }
        };
        let last_seq = last.as_ref().map_or(0, |r| r.seq);
        let caught_up = catch_up(&tx, claims_seq, last_seq).map_err(|e| e.into_store(&self.path))?;
        let mut kinds_indexed = false;
        let mut lookup = |key: &ClaimKey| {
            kinds_indexed |= ensure_kind(&tx, &key.0, last_seq).map_err(&err)?;
            lookup_claim(&tx, key).map_err(&err)
        };
        let history = match crate::plan::guard_span(&work) {
            Some(span) if span.after < last_seq => read_history(&tx, &span, last_seq).map_err(&err)?,
            _ => History::default(),
        };
        let plan = crate::plan::plan(last.as_ref(), work, &self.described, &mut lookup, &history)?;
        let caught_up = caught_up || kinds_indexed;
        let mut routed = false;
        for s in &plan.records {
            let rec = &s.record;
            insert_record(&tx, rec, &s.body).map_err(&err)?;
            if !s.targets.is_empty() {
                // Same transaction as the record: both are committed, or neither.
                insert_outbox(&tx, rec, &s.targets, !(self.outbox_ready || routed)).map_err(&err)?;
                routed = true;
            }
        }
        insert_claims(&tx, &plan.claims).map_err(&err)?;
        match plan.records.last() {
            Some(head) => {
                let (seq, hash) = (head.record.seq, &head.record.hash);
                tx.prepare_cached("UPDATE chain_head SET seq = ?1, hash = ?2, claims_seq = ?1 WHERE id = 1")
                    .and_then(|mut st| st.execute(params![seq, hash]))
                    .map_err(&err)?;
            }
            None if caught_up => {
                tx.execute("UPDATE chain_head SET claims_seq = ?1 WHERE id = 1", [last_seq]).map_err(&err)?;
            }
            // Nothing to write (every claim held): dropping the transaction rolls it back.
            None => return Ok(plan.finish()),
        }
        // With WAL and synchronous=FULL the commit returns only after the WAL is fsynced.
        tx.commit().map_err(&err)?;
        if routed {
            self.outbox_ready = true;
        }
        self.checkpoint_if_long();
        Ok(plan.finish())
    }

    /// After a commit: when the WAL has grown past [`WAL_TRUNCATE_BYTES`], copies it into the
    /// database and truncates it. Best effort: the record is durable whatever happens here, so
    /// a busy reader or a failed checkpoint only postpones it to a later append.
    fn checkpoint_if_long(&mut self) {
        if !self.inline_checkpoint || self.wal_len() <= WAL_TRUNCATE_BYTES {
            return;
        }
        if self.conn.busy_timeout(CHECKPOINT_BUSY_TIMEOUT).is_err() {
            return;
        }
        // Returns (busy, log frames, checkpointed frames); a busy result is simply retried later.
        let _ = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
        let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
    }
}

impl SqliteStore {
    /// The WAL file's length (0 when there is none).
    pub(crate) fn wal_len(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        std::fs::metadata(&wal).map_or(0, |m| m.len())
    }

    /// Stops `append` from checkpointing (a shared store's writer: its commits must not wait
    /// for a checkpoint's two extra fsyncs; [`Self::checkpoint`] runs beside it).
    pub(crate) fn without_inline_checkpoint(mut self) -> Self {
        self.inline_checkpoint = false;
        self
    }

    /// Runs a checkpoint (best effort, as [`Self::checkpoint_if_long`]: committed records are
    /// durable in the WAL either way) and returns how many bytes of the WAL the log holds
    /// afterwards (its frames, not the file's length: a restarted WAL keeps its file and
    /// overwrites it from the beginning), or `None` when the checkpoint could not run.
    ///
    /// `Passive` copies what it can without waiting for anyone. `Restart` and `Truncate` wait
    /// briefly (200 ms) for readers still in the old WAL; after `Restart` the next commit writes
    /// the WAL from its beginning (the file keeps its length: no `ftruncate` of megabytes on the
    /// caller's thread), after `Truncate` the file is emptied (for the next process to find short).
    pub(crate) fn checkpoint(&mut self, mode: CheckpointMode) -> Option<u64> {
        let waits = !matches!(mode, CheckpointMode::Passive);
        if waits && self.conn.busy_timeout(Duration::from_millis(200)).is_err() {
            return None;
        }
        let sql = match mode {
            CheckpointMode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
            CheckpointMode::Restart => "PRAGMA wal_checkpoint(RESTART)",
            CheckpointMode::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
        };
        // (busy, frames in the log, frames checkpointed); -1 frames when not in WAL mode.
        let frames = self.conn.query_row(sql, [], |r| r.get::<_, i64>(1)).ok();
        if waits {
            let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
        }
        let page = self.conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0)).ok()?;
        let frames = u64::try_from(frames?).ok()?;
        // A WAL frame is a 24-byte header and one page; the file starts with a 32-byte header.
        Some(32 + frames * (u64::try_from(page).ok()? + 24))
    }
}

/// How [`SqliteStore::checkpoint`] checkpoints (SQLite's `wal_checkpoint` modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckpointMode {
    /// Copy what no reader still needs; wait for no one.
    Passive,
    /// Copy everything, wait for the readers of the old WAL, and let the next commit start it over.
    Restart,
    /// As `Restart`, and empty the file.
    Truncate,
}

const INSERT_RECORD: &str =
    "INSERT INTO audit_records (seq, kind, recorded_at, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Bodies from this size are bound without SQLite's copy ([`insert_large`]).
const BORROWED_BODY_FROM: usize = 64 << 10;

/// Inserts one sealed record with its body's text.
fn insert_record(tx: &Transaction<'_>, rec: &ChainedRecord, body: &str) -> rusqlite::Result<()> {
    if body.len() >= BORROWED_BODY_FROM {
        return insert_large(tx, rec, body);
    }
    let mut st = tx.prepare_cached(INSERT_RECORD)?;
    st.execute(params![rec.seq, rec.kind, rec.recorded_at, body, rec.prev_hash, rec.hash])?;
    Ok(())
}

/// [`insert_record`] for a large body: the values are bound as `SQLITE_STATIC` (SQLite reads
/// them where they are) instead of rusqlite's `SQLITE_TRANSIENT` (SQLite first copies each
/// into a buffer of its own): for a 10,000-rule gate record, 8.5 MB less to allocate and copy.
fn insert_large(tx: &Transaction<'_>, rec: &ChainedRecord, body: &str) -> rusqlite::Result<()> {
    use Bound::{Int, Text};
    let values =
        [Int(rec.seq), Text(&rec.kind), Text(&rec.recorded_at), Text(body), Text(&rec.prev_hash), Text(&rec.hash)];
    execute_static(tx, INSERT_RECORD, &values)
}

/// A value [`execute_static`] binds.
enum Bound<'a> {
    Int(i64),
    Text(&'a str),
}

/// Runs `sql` once with `values` bound as `SQLITE_STATIC` (see [`insert_large`]). A statement
/// of its own, finalized before returning, so nothing keeps the pointers.
fn execute_static(tx: &Transaction<'_>, sql: &str, values: &[Bound<'_>]) -> rusqlite::Result<()> {
    use rusqlite::ffi;
    use std::ffi::{c_char, c_int};

    /// Finalizes the statement however the insert ends.
    struct Stmt(*mut ffi::sqlite3_stmt);
    impl Drop for Stmt {
        fn drop(&mut self) {
            // SAFETY: prepared by sqlite3_prepare_v2 below (or null, which finalize accepts),
            // finalized once.
            unsafe { ffi::sqlite3_finalize(self.0) };
        }
    }
    // SAFETY: `db` is the transaction's open connection, used on this thread only while the
    // statement lives; every bound pointer (the `values`' strings) outlives the statement,
    // which is finalized (by `Stmt`'s drop) before this function returns, and SQLITE_STATIC
    // promises SQLite exactly that. Lengths are passed, so no text needs a terminating NUL.
    unsafe {
        let db = tx.handle();
        let fail = |code: c_int| {
            // The extended code when it is the same error (a constraint's kind, say).
            let extended = ffi::sqlite3_extended_errcode(db);
            let code = if extended & 0xff == code & 0xff { extended } else { code };
            let msg = std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(db)).to_string_lossy().into_owned();
            rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(msg))
        };
        let mut stmt = Stmt(std::ptr::null_mut());
        let rc = ffi::sqlite3_prepare_v2(
            db,
            sql.as_ptr().cast::<c_char>(),
            c_int::try_from(sql.len()).unwrap_or(c_int::MAX),
            &mut stmt.0,
            std::ptr::null_mut(),
        );
        if rc != ffi::SQLITE_OK {
            return Err(fail(rc));
        }
        for (i, value) in values.iter().enumerate() {
            let index = c_int::try_from(i + 1).unwrap_or(c_int::MAX);
            let rc = match value {
                Bound::Int(v) => ffi::sqlite3_bind_int64(stmt.0, index, *v),
                Bound::Text(t) => ffi::sqlite3_bind_text64(
                    stmt.0,
                    index,
                    t.as_ptr().cast::<c_char>(),
                    t.len() as ffi::sqlite3_uint64,
                    ffi::SQLITE_STATIC(),
                    ffi::SQLITE_UTF8 as u8,
                ),
            };
            if rc != ffi::SQLITE_OK {
                return Err(fail(rc));
            }
        }
        match ffi::sqlite3_step(stmt.0) {
            ffi::SQLITE_DONE => Ok(()),
            rc => Err(fail(rc)),
        }
    }
}

/// The table of input texts kept apart from the records ([`AuditStore::keep_inputs`]), created
/// on first use. Beside the chain, like the outbox: no hash covers a row, but every record that
/// names one holds its SHA-256, and a replay checks the text against it.
const INPUTS_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS audit_inputs (sha256 TEXT PRIMARY KEY NOT NULL, text TEXT NOT NULL)";

/// Whether the kept-inputs table exists (a store that never kept one has none).
fn has_inputs_table(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_inputs'")?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
}

/// The text kept under `sha256`, if any.
fn read_kept_input(conn: &Connection, sha256: &str) -> rusqlite::Result<Option<String>> {
    if !has_inputs_table(conn)? {
        return Ok(None);
    }
    conn.prepare_cached("SELECT text FROM audit_inputs WHERE sha256 = ?1")?.query_row([sha256], |r| r.get(0)).optional()
}

/// Whether a text is kept under `sha256`, without reading it.
fn holds_kept_input(conn: &Connection, sha256: &str) -> rusqlite::Result<bool> {
    if !has_inputs_table(conn)? {
        return Ok(false);
    }
    conn.prepare_cached("SELECT count(*) FROM audit_inputs WHERE sha256 = ?1")?
        .query_row([sha256], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
}

/// Inserts a record's outbox rows (creating the table on first use: we hold the write lock).
fn insert_outbox(
    tx: &Transaction<'_>,
    rec: &ChainedRecord,
    targets: &[OutboxTarget],
    create: bool,
) -> rusqlite::Result<()> {
    if create {
        tx.execute_batch(OUTBOX_SCHEMA)?;
    }
    let at = crate::outbox::recorded_ms(&rec.recorded_at);
    for t in targets {
        tx.execute(
            "INSERT INTO outbox (record_seq, channel, ordering_key, state, attempts, created_ms, next_attempt_ms) \
             VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4)",
            params![rec.seq, t.channel.as_str(), t.ordering_key, at],
        )?;
    }
    Ok(())
}

fn outbox_row(row: &Row<'_>) -> rusqlite::Result<Result<OutboxEntry, StoreError>> {
    Ok(crate::outbox::entry_from(
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

/// Takes a row's lease (?1 id, ?2 now, ?3 until) unless a live one is held.
const SQLITE_LEASE: &str = "UPDATE outbox SET lease_until_ms = ?3 WHERE id = ?1 AND state = 'pending' \
     AND (lease_until_ms IS NULL OR lease_until_ms <= ?2)";

/// Marks a row delivered (?1 id, ?2 reference, ?3 now).
const SQLITE_MARK_DELIVERED: &str = "UPDATE outbox SET state = 'delivered', reference = ?2, delivered_ms = ?3, \
     lease_until_ms = NULL, attempts = attempts + 1, last_error = NULL WHERE id = ?1";

/// Records a failed attempt (?1 id, ?2 state, ?3 attempts, ?4 next attempt or NULL, ?5 error).
const SQLITE_MARK_FAILED: &str = "UPDATE outbox SET state = ?2, attempts = ?3, \
     next_attempt_ms = coalesce(?4, next_attempt_ms), last_error = ?5, lease_until_ms = NULL WHERE id = ?1";

impl SqliteStore {
    /// Whether the outbox table exists (it is created by the first routed append). Reads on a
    /// store without it see an empty outbox.
    fn has_outbox(&mut self) -> Result<bool, StoreError> {
        if !self.outbox_ready {
            let n: i64 = self
                .conn
                .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'outbox'", [], |r| {
                    r.get(0)
                })
                .map_err(sqlite_err(&self.path))?;
            self.outbox_ready = n > 0;
        }
        Ok(self.outbox_ready)
    }

    fn outbox_query(&mut self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<OutboxEntry>, StoreError> {
        if !self.has_outbox()? {
            return Ok(Vec::new());
        }
        let err = sqlite_err(&self.path);
        let mut stmt = self.conn.prepare_cached(sql).map_err(&err)?;
        let rows = stmt.query_map(args, outbox_row).map_err(&err)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(&err)??);
        }
        Ok(out)
    }

    fn outbox_update(&mut self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<usize, StoreError> {
        if !self.has_outbox()? {
            return Ok(0);
        }
        self.conn.execute(sql, args).map_err(sqlite_err(&self.path))
    }
}

impl SqliteStore {
    /// Every row and the head anchor, from one read transaction: the same snapshot, so an
    /// append landing between the two reads cannot look like tampering.
    fn rows_and_anchor(&mut self) -> Result<(Vec<Decoded>, Option<Anchor>), StoreError> {
        let err = sqlite_err(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        let rows = query(&tx, &format!("SELECT {COLUMNS} FROM audit_records ORDER BY seq"), &[]).map_err(&err)?;
        let anchor = read_anchor(&tx).map_err(&err)?;
        tx.finish().map_err(&err)?;
        Ok((rows, anchor))
    }
}

impl SqliteStore {
    /// One unit in a transaction of its own, routed by this store's router.
    fn append_one(&mut self, unit: Unit) -> Result<Outcome, StoreError> {
        crate::single(self.append_tx(vec![Work { unit, router: self.router.clone() }])?)
    }
}

impl AuditStore for SqliteStore {
    fn append(&mut self, draft: RecordDraft) -> Result<ChainedRecord, StoreError> {
        crate::one(self.append_batch(vec![draft])?)
    }

    fn append_batch(&mut self, drafts: Vec<RecordDraft>) -> Result<Vec<ChainedRecord>, StoreError> {
        let drafts = crate::prepare(drafts)?;
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        self.append_one(Unit::Records(drafts))?.appended()
    }

    fn append_claim(&mut self, draft: RecordDraft, claim: &str) -> Result<Claim, StoreError> {
        crate::validate_claim(&draft, claim)?;
        let draft = Box::new(crate::prepared::Prepared::new(draft)?);
        self.append_one(Unit::Claim(draft, claim.to_string()))?.claim()
    }

    fn append_linked(
        &mut self,
        first: RecordDraft,
        then: LinkedDraft,
    ) -> Result<(ChainedRecord, ChainedRecord), StoreError> {
        crate::validate_draft(&first)?;
        let first = Box::new(crate::prepared::Prepared::new(first)?);
        self.append_one(Unit::Linked(first, then))?.linked()
    }

    fn append_then_claim(
        &mut self,
        first: RecordDraft,
        then: LinkedClaim,
    ) -> Result<(ChainedRecord, Claim), StoreError> {
        crate::validate_draft(&first)?;
        let first = Box::new(crate::prepared::Prepared::new(first)?);
        self.append_one(Unit::LinkedClaim(first, then))?.then_claim()
    }

    fn append_guarded_claim(
        &mut self,
        first: RecordDraft,
        guard: ClaimGuard,
    ) -> Result<(ChainedRecord, Option<Claim>), StoreError> {
        crate::validate_draft(&first)?;
        let first = Box::new(crate::prepared::Prepared::new(first)?);
        self.append_one(Unit::Guarded(first, guard))?.guarded()
    }

    fn append_encoded(&mut self, draft: EncodedDraft) -> Result<ChainedRecord, StoreError> {
        // The text as given, unless something must read the body: an outbox router (routing
        // reads the value) or the claim index (a body that may hold `claim`; a false positive
        // inside a string only costs the slower path).
        let routed = crate::outbox::router_for(self.router.as_ref(), &self.described).is_some();
        if routed || draft.body_text.contains("\"claim\":") {
            let draft = draft
                .into_draft()
                .map_err(|e| StoreError::InvalidRecord(format!("the encoded body is not JSON: {e}")))?;
            return self.append(draft);
        }
        let prepared = crate::prepared::Prepared::encoded(draft)?;
        crate::one(self.append_one(Unit::Records(vec![prepared]))?.appended()?)
    }

    fn keep_inputs(&mut self, inputs: &[KeptInput<'_>]) -> Result<bool, StoreError> {
        let err = sqlite_err(&self.path);
        // The steady state (the same policy file every run) writes nothing and takes no lock. A
        // text is never removed once kept, so one found here is still there for the record.
        let mut missing = Vec::new();
        for input in inputs {
            if !holds_kept_input(&self.conn, input.sha256).map_err(&err)? {
                missing.push(input);
            }
        }
        if missing.is_empty() {
            return Ok(true);
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&err)?;
        tx.execute_batch(INPUTS_SCHEMA).map_err(&err)?;
        for input in missing {
            let values = [Bound::Text(input.sha256), Bound::Text(input.text)];
            let sql = "INSERT INTO audit_inputs (sha256, text) VALUES (?1, ?2) ON CONFLICT (sha256) DO NOTHING";
            execute_static(&tx, sql, &values).map_err(&err)?;
        }
        // Durable (WAL fsynced) before the record that names them is appended.
        tx.commit().map_err(&err)?;
        Ok(true)
    }

    fn kept_input(&mut self, sha256: &str) -> Result<Option<String>, StoreError> {
        read_kept_input(&self.conn, sha256).map_err(sqlite_err(&self.path))
    }

    fn get(&mut self, seq: i64) -> Result<Option<ChainedRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_records WHERE seq = ?1");
        Ok(self.query_strict(&sql, &[&seq])?.pop())
    }

    fn hash_at(&mut self, seq: i64) -> Result<Option<String>, StoreError> {
        let err = sqlite_err(&self.path);
        let mut stmt = self.conn.prepare_cached("SELECT hash FROM audit_records WHERE seq = ?1").map_err(&err)?;
        stmt.query_row([seq], |r| r.get::<_, String>(0)).optional().map_err(&err)
    }

    fn find(&mut self, id_or_seq: &str) -> Result<Option<ChainedRecord>, StoreError> {
        find_with(self, id_or_seq, |s, seq| s.get(seq), |s, p| s.by_prefix(p))
    }

    fn list(&mut self, query: &ListQuery) -> Result<Vec<ChainedRecord>, StoreError> {
        let limit = sql_limit(query.limit);
        // Built from fixed fragments (values are bound), so the planner sees only the filters in
        // use and can pick the (kind, seq) index.
        let mut sql = format!("SELECT {COLUMNS} FROM audit_records WHERE 1 = 1");
        let mut args: Vec<&dyn rusqlite::ToSql> = Vec::new();
        if let Some(before) = &query.before_seq {
            args.push(before);
            sql.push_str(&format!(" AND seq < ?{}", args.len()));
        }
        if let Some(kind) = &query.kind {
            args.push(kind);
            sql.push_str(&format!(" AND kind = ?{}", args.len()));
        }
        args.push(&limit);
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
        self.query_strict(&sql, &args)
    }

    fn all(&mut self) -> Result<Vec<ChainedRecord>, StoreError> {
        self.query_strict(&format!("SELECT {COLUMNS} FROM audit_records ORDER BY seq"), &[])
    }

    fn records_after(&mut self, after: i64) -> Result<Vec<ChainedRecord>, StoreError> {
        self.query_strict(&format!("SELECT {COLUMNS} FROM audit_records WHERE seq > ?1 ORDER BY seq"), &[&after])
    }

    fn verify(&mut self) -> Result<VerifyReport, StoreError> {
        let (rows, anchor) = self.rows_and_anchor()?;
        Ok(build_report(rows, anchor))
    }

    fn verify_at(&mut self, seq: i64) -> Result<(VerifyReport, Option<String>), StoreError> {
        let (rows, anchor) = self.rows_and_anchor()?;
        let hash = crate::hash_at(&rows, seq);
        Ok((build_report(rows, anchor), hash))
    }

    fn describe(&self) -> String {
        self.described.clone()
    }

    fn set_outbox_router(&mut self, router: Option<Arc<dyn OutboxRouter>>) {
        self.router = router;
    }

    fn outbox_due(&mut self, now_ms: i64, limit: usize) -> Result<Vec<DueEntry>, StoreError> {
        let limit = sql_limit(limit);
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_ms <= ?1 \
             AND (o.lease_until_ms IS NULL OR o.lease_until_ms <= ?1) \
             AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.channel = o.channel AND p.ordering_key = o.ordering_key \
                             AND p.id < o.id AND p.state <> 'delivered') \
             ORDER BY o.id LIMIT ?2"
        );
        let entries = self.outbox_query(&sql, &[&now_ms, &limit])?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let record = self.get(entry.record_seq)?.ok_or_else(|| StoreError::Corrupt {
                seq: entry.record_seq,
                reason: format!("outbox row {} describes a record that is not in the chain", entry.id),
            })?;
            out.push(DueEntry { entry, record });
        }
        Ok(out)
    }

    fn outbox_lease(&mut self, id: i64, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        let n = self.outbox_update(SQLITE_LEASE, &[&id, &now_ms, &until_ms])?;
        Ok(n == 1)
    }

    fn outbox_mark_delivered(&mut self, id: i64, reference: Option<&str>, now_ms: i64) -> Result<(), StoreError> {
        self.outbox_update(SQLITE_MARK_DELIVERED, &[&id, &reference, &now_ms])?;
        Ok(())
    }

    fn outbox_mark_failed(&mut self, id: i64, attempts: u32, retry: Retry, error: &str) -> Result<(), StoreError> {
        let (state, next) = crate::outbox::failed_columns(&retry);
        self.outbox_update(SQLITE_MARK_FAILED, &[&id, &state.as_str(), &i64::from(attempts), &next, &error])?;
        Ok(())
    }

    fn outbox_lease_many(&mut self, ids: &[i64], now_ms: i64, until_ms: i64) -> Result<Vec<i64>, StoreError> {
        if ids.is_empty() || !self.has_outbox()? {
            return Ok(Vec::new());
        }
        let err = sqlite_err(&self.path);
        // One write transaction (one commit) for the batch; each row is still decided by its own
        // conditional update, and the write lock makes two deliverers' batches take turns.
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&err)?;
        let mut leased = Vec::with_capacity(ids.len());
        {
            let mut stmt = tx.prepare_cached(SQLITE_LEASE).map_err(&err)?;
            for &id in ids {
                if stmt.execute(params![id, now_ms, until_ms]).map_err(&err)? == 1 {
                    leased.push(id);
                }
            }
        }
        tx.commit().map_err(&err)?;
        Ok(leased)
    }

    fn outbox_mark_many(&mut self, marks: &[OutboxMark]) -> Result<(), StoreError> {
        if marks.is_empty() || !self.has_outbox()? {
            return Ok(());
        }
        let err = sqlite_err(&self.path);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&err)?;
        {
            let mut delivered = tx.prepare_cached(SQLITE_MARK_DELIVERED).map_err(&err)?;
            let mut failed = tx.prepare_cached(SQLITE_MARK_FAILED).map_err(&err)?;
            for m in marks {
                match m {
                    OutboxMark::Delivered { id, reference, now_ms } => {
                        delivered.execute(params![id, reference, now_ms]).map_err(&err)?;
                    }
                    OutboxMark::Failed { id, attempts, retry, error } => {
                        let (state, next) = crate::outbox::failed_columns(retry);
                        failed.execute(params![id, state.as_str(), i64::from(*attempts), next, error]).map_err(&err)?;
                    }
                }
            }
        }
        tx.commit().map_err(&err)?;
        Ok(())
    }

    fn outbox_retry_failed(&mut self, now_ms: i64) -> Result<u64, StoreError> {
        let n = self.outbox_update(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_ms = ?1, lease_until_ms = NULL \
             WHERE state = 'failed'",
            &[&now_ms],
        )?;
        Ok(n as u64)
    }

    fn outbox_status(&mut self) -> Result<OutboxStatus, StoreError> {
        if !self.has_outbox()? {
            return Ok(OutboxStatus::default());
        }
        let err = sqlite_err(&self.path);
        let mut status = OutboxStatus::default();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, count(*), min(created_ms) FROM outbox GROUP BY state")
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<i64>>(2)?)))
            .map_err(&err)?;
        for row in rows {
            let (state, n, oldest) = row.map_err(&err)?;
            let n = u64::try_from(n).unwrap_or(0);
            match OutboxState::parse(&state) {
                Some(OutboxState::Pending) => {
                    status.pending = n;
                    status.oldest_pending_ms = oldest;
                }
                Some(OutboxState::Delivered) => status.delivered = n,
                Some(OutboxState::Failed) => status.failed = n,
                None => {}
            }
        }
        Ok(status)
    }

    fn outbox_entries(
        &mut self,
        record_seq: Option<i64>,
        state: Option<OutboxState>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let limit = sql_limit(limit);
        let state = state.map(OutboxState::as_str);
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE (?1 IS NULL OR record_seq = ?1) AND (?2 IS NULL OR state = ?2) \
             ORDER BY id DESC LIMIT ?3"
        );
        self.outbox_query(&sql, &[&record_seq, &state, &limit])
    }

    fn outbox_prune_delivered(&mut self, delivered_before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM outbox WHERE id IN ({})",
            crate::outbox::PRUNABLE.replace("{cutoff}", "?1").replace("{limit}", "?2")
        );
        let n = self.outbox_update(&sql, &[&delivered_before_ms, &sql_limit(limit)])?;
        Ok(n as u64)
    }

    fn outbox_reference(&mut self, channel: ChannelKind, ordering_key: &str) -> Result<Option<String>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE channel = ?1 AND ordering_key = ?2 AND state = 'delivered' \
             AND reference IS NOT NULL ORDER BY id LIMIT 1"
        );
        Ok(self.outbox_query(&sql, &[&channel.as_str(), &ordering_key])?.pop().and_then(|e| e.reference))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_large_body_is_stored_as_given_and_a_conflict_is_an_sqlite_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path().join("big.db")).unwrap();
        // Over BORROWED_BODY_FROM, with text that needs escaping.
        let body = json!({"policies": "rule: \"x\"\n".repeat(20_000), "n": 1});
        let draft = |b: &serde_json::Value| RecordDraft {
            kind: "deploy_decision".into(),
            recorded_at: "2026-12-06T10:00:00Z".into(),
            body: b.clone(),
        };
        let first = s.append(draft(&body)).unwrap();
        assert!(serde_json::to_string(&body).unwrap().len() >= BORROWED_BODY_FROM);
        let second = s.append(draft(&json!({"small": true}))).unwrap();
        let third = s.append(draft(&body)).unwrap();
        for r in [&first, &second, &third] {
            assert_eq!(&s.get(r.seq).unwrap().unwrap(), r);
        }
        assert!(s.verify().unwrap().ok());
        // The same seq again: refused by the primary key, reported as SQLite's constraint error.
        let tx = s.conn.transaction().unwrap();
        let e = insert_large(&tx, &first, &serde_json::to_string(&body).unwrap()).unwrap_err();
        assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation), "{e}");
        assert!(e.to_string().contains("UNIQUE constraint failed"), "{e}");
    }
}

/// SQLite's large allocations through Rust's global allocator ([`use_global_allocator`]).
mod memory {
    use std::alloc::{Layout, alloc, dealloc, realloc};
    use std::ffi::{c_int, c_void};

    use rusqlite::ffi;

    /// Each allocation starts with its size (what `xSize` answers, and what tells which
    /// allocator holds it), in a header of SQLite's strictest alignment, so the caller's part
    /// stays 16-aligned.
    const HEADER: usize = 16;

    /// Blocks from this size come from Rust's allocator, smaller ones from the C library's
    /// `malloc` as before (its threshold for a fresh `mmap`: below it glibc reuses its heap,
    /// and SQLite's many small blocks would only spread over fresh huge pages elsewhere).
    const LARGE: usize = 128 << 10;

    unsafe extern "C" {
        fn malloc(n: usize) -> *mut c_void;
        fn free(p: *mut c_void);
    }

    fn layout(n: usize) -> Option<Layout> {
        Layout::from_size_align(n.checked_add(HEADER)?, HEADER).ok()
    }

    /// A new block of `n` bytes (the caller's part), or null.
    fn allocate(n: usize) -> *mut c_void {
        let Some(l) = layout(n) else { return std::ptr::null_mut() };
        // SAFETY: `l` has a non-zero size (HEADER at least); glibc's malloc returns 16-aligned
        // blocks on 64-bit systems, as the layout asks of Rust's; the header is written inside
        // the new block.
        unsafe {
            let base: *mut u8 = if n >= LARGE { alloc(l) } else { malloc(l.size()).cast() };
            if base.is_null() {
                return std::ptr::null_mut();
            }
            base.cast::<usize>().write(n);
            base.add(HEADER).cast()
        }
    }

    /// Frees the block at `base` of `n` bytes (the caller's part).
    ///
    /// # Safety
    /// `base` is the start of a block [`allocate`] returned for `n` bytes, not freed.
    unsafe fn release(base: *mut u8, n: usize) {
        // SAFETY: the caller's; the same allocator and layout as in `allocate`.
        unsafe {
            if n < LARGE {
                free(base.cast());
            } else if let Some(l) = layout(n) {
                dealloc(base, l);
            }
        }
    }

    pub(super) unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
        match usize::try_from(n) {
            Ok(n) if n > 0 => allocate(n),
            _ => std::ptr::null_mut(),
        }
    }

    /// The start and the size of a block `x_malloc` or `x_realloc` returned.
    ///
    /// # Safety
    /// `p` is such a block, not freed.
    unsafe fn base(p: *mut c_void) -> (*mut u8, usize) {
        // SAFETY: the caller's block starts HEADER bytes after its header.
        unsafe {
            let base = p.cast::<u8>().sub(HEADER);
            (base, base.cast::<usize>().read())
        }
    }

    pub(super) unsafe extern "C" fn x_free(p: *mut c_void) {
        if p.is_null() {
            return;
        }
        // SAFETY: SQLite frees only what its xMalloc/xRealloc returned, once.
        unsafe {
            let (base, n) = base(p);
            release(base, n);
        }
    }

    pub(super) unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        if p.is_null() {
            // SAFETY: as x_malloc.
            return unsafe { x_malloc(n) };
        }
        let Some(new) = usize::try_from(n).ok().filter(|&n| n > 0) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `p` came from xMalloc/xRealloc (SQLite's contract), its size is in its header.
        // Within Rust's allocator the block is resized in place or moved by `realloc` (the old
        // layout, the new size, the same alignment); otherwise a new block gets the contents and
        // the old one is freed. On failure the old block is left as it was, as SQLite expects.
        unsafe {
            let (base, old) = base(p);
            if old >= LARGE
                && new >= LARGE
                && let (Some(from), Some(to)) = (layout(old), layout(new))
            {
                let moved = realloc(base, from, to.size());
                if moved.is_null() {
                    return std::ptr::null_mut();
                }
                moved.cast::<usize>().write(new);
                return moved.add(HEADER).cast();
            }
            let q = allocate(new);
            if q.is_null() {
                return std::ptr::null_mut();
            }
            q.cast::<u8>().copy_from_nonoverlapping(p.cast::<u8>(), old.min(new));
            release(base, old);
            q
        }
    }

    pub(super) unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
        if p.is_null() {
            return 0;
        }
        // SAFETY: as in x_free. The size was a c_int when it was asked for.
        c_int::try_from(unsafe { base(p) }.1).unwrap_or(c_int::MAX)
    }

    pub(super) unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
        // Rust's allocators report no size classes; 8 is SQLite's own rounding.
        n.checked_add(7).map_or(n, |m| m & !7)
    }

    pub(super) unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
        ffi::SQLITE_OK
    }

    pub(super) unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

    pub(super) fn methods() -> ffi::sqlite3_mem_methods {
        ffi::sqlite3_mem_methods {
            xMalloc: Some(x_malloc),
            xFree: Some(x_free),
            xRealloc: Some(x_realloc),
            xSize: Some(x_size),
            xRoundup: Some(x_roundup),
            xInit: Some(x_init),
            xShutdown: Some(x_shutdown),
            pAppData: std::ptr::null_mut(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn blocks_keep_their_size_and_contents_through_realloc() {
            unsafe {
                assert!(x_malloc(0).is_null() && x_malloc(-1).is_null());
                let p = x_malloc(24);
                assert!(!p.is_null() && (p as usize).is_multiple_of(16));
                assert_eq!(x_size(p), 24);
                p.cast::<u8>().copy_from(b"0123456789abcdefghijklmn".as_ptr(), 24);
                let q = x_realloc(p, 10 << 20);
                assert!(!q.is_null() && (q as usize).is_multiple_of(16));
                assert_eq!(x_size(q), 10 << 20);
                assert_eq!(std::slice::from_raw_parts(q.cast::<u8>(), 24), b"0123456789abcdefghijklmn");
                // Large to larger (Rust's realloc), then back to small (the C library's malloc).
                let q = x_realloc(q, 20 << 20);
                assert_eq!(x_size(q), 20 << 20);
                assert_eq!(std::slice::from_raw_parts(q.cast::<u8>(), 24), b"0123456789abcdefghijklmn");
                let r = x_realloc(q, 5);
                assert_eq!((x_size(r), std::slice::from_raw_parts(r.cast::<u8>(), 5)), (5, &b"01234"[..]));
                x_free(r);
                x_free(std::ptr::null_mut());
                assert_eq!((x_roundup(1), x_roundup(8), x_roundup(9)), (8, 8, 16));
            }
        }
    }
}

/// Makes SQLite take its large blocks (from 128 KiB) from Rust's global allocator instead of the
/// C library's `malloc`, for the whole process. Call it first thing in `main`, before any connection is opened (SQLite
/// takes its allocator when it initialises; later calls change nothing and return `false`).
///
/// Why: appending a record of megabytes (a 10,000-rule gate decision: 8.5 MB), SQLite builds
/// the row in one buffer of that size, and glibc serves buffers that large with a fresh `mmap`
/// each time: 2,100 page faults for every one, its pages zeroed by the kernel, and an `munmap`
/// after. The binary's allocator (mimalloc) reuses memory, on transparent huge pages where the
/// kernel allows them (measured: 5,000 → 300 page faults for a 10,000-rule gate). Small blocks
/// stay with `malloc`: in mimalloc they would first touch fresh 2 MiB pages of their own (a
/// shipped-size gate measured 0.5 ms more system time that way). SQLite's own
/// memory statistics are turned off too (they take a global mutex on every allocation, and
/// nothing here reads them).
pub fn use_global_allocator() -> bool {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ONCE.get_or_init(|| {
        let methods = memory::methods();
        let p: *const rusqlite::ffi::sqlite3_mem_methods = &methods;
        // SAFETY: sqlite3_config is only valid before sqlite3_initialize; called later it returns
        // SQLITE_MISUSE and changes nothing. SQLite copies the methods struct during the call.
        // The OnceLock keeps two threads of this process from configuring at once (the caller's
        // contract is to call it before any other thread uses SQLite).
        unsafe {
            use rusqlite::ffi::{SQLITE_CONFIG_MALLOC, SQLITE_CONFIG_MEMSTATUS, SQLITE_OK, sqlite3_config};
            sqlite3_config(SQLITE_CONFIG_MALLOC, p) == SQLITE_OK
                && sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int) == SQLITE_OK
        }
    })
}
