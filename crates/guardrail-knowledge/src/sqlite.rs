//! The SQLite FTS5 backend.
//!
//! Each kind has a plain table (keyword fields, the primary key on `id`) and an external-content
//! FTS5 table over its full-text fields, kept in step by triggers. The tokenizer is
//! `porter unicode61`: case- and accent-insensitive words with English stemming, so "restarts"
//! finds "restart" as Elasticsearch's standard analysers would come close to. Ranking is FTS5's
//! `bm25()`, with the runbook title weighted ×2 like the original's `title^2`.
//!
//! **Per-service rowid ranges (schema 2).** Runbooks and evidence are numbered so that one
//! service's documents occupy one contiguous rowid range: `rowid = bucket << 32 | n`, where
//! `bucket` is the service's row in the `services` table (`*` has one too) and `n` counts from 1
//! within it. A search hands FTS5 the range (`runbooks_fts.rowid BETWEEN lo AND hi`), so it visits
//! only that service's postings (it seeks each term's doclist to `lo`) instead of scoring every
//! matching document of every service and filtering afterwards: at 100,000 runbooks over 500
//! services a search scores ~200 documents, not ~60,000. **The ranking is unchanged, to the
//! bit**: it is still the one FTS5 table and FTS5's own `bm25()`, whose statistics — row count,
//! average column lengths and each term's document frequency — are those of the whole table, as
//! before (an idf per service would change every score and the recorded decisions that carry
//! them). Evidence of a service is the service's range and `*`'s range searched separately and
//! merged by the same order (`rank`, then `id` by bytes). A schema-1 file (rowids in load order)
//! is renumbered by [`SqliteKnowledgeStore::create`] (i.e. by `kb load`); opened otherwise it is
//! searched as before, without ranges.
//!
//! Queries are never passed to FTS5 as syntax: the text is split into words, each word is
//! quoted, and the words are OR-ed. Incident text cannot inject FTS5 operators (`NEAR`, `*`,
//! column filters) or SQL.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use guardrail_core::remediation::{ActionPolicy, Severity, Stance};

use crate::search_cache::{Query, SearchCache, Table};
use crate::{
    EvidenceDoc, EvidenceHit, KnowledgeDocs, KnowledgeError, KnowledgeStats, KnowledgeStore, LoadReport, Provenance,
    Runbook, RunbookHit, sum,
};

/// Schema version in `PRAGMA user_version`: 2 numbers documents by service (see the module
/// documentation); 1, the same tables with rowids in load order, is still read.
pub const SCHEMA_VERSION: i64 = 2;

/// Bits of a rowid below the service's bucket: up to 2^32 - 1 documents per service.
const BUCKET_SHIFT: u32 = 32;

/// Most words taken from a query (bounds the cost of a long incident text).
pub const MAX_QUERY_WORDS: usize = 64;

/// Most hits one search returns.
pub const MAX_K: usize = 100;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runbooks (
    id TEXT PRIMARY KEY NOT NULL,
    service TEXT NOT NULL,
    title TEXT NOT NULL,
    recommended_action TEXT NOT NULL,
    body TEXT NOT NULL,
    reviewed INTEGER NOT NULL CHECK (reviewed IN (0, 1)),
    provenance TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS runbooks_fts USING fts5(
    title, body, content='runbooks', content_rowid='rowid', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS runbooks_ai AFTER INSERT ON runbooks BEGIN
    INSERT INTO runbooks_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER IF NOT EXISTS runbooks_ad AFTER DELETE ON runbooks BEGIN
    INSERT INTO runbooks_fts(runbooks_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
END;
CREATE TRIGGER IF NOT EXISTS runbooks_au AFTER UPDATE ON runbooks BEGIN
    INSERT INTO runbooks_fts(runbooks_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
    INSERT INTO runbooks_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;

CREATE TABLE IF NOT EXISTS evidence (
    id TEXT PRIMARY KEY NOT NULL,
    service TEXT NOT NULL,
    stance TEXT NOT NULL CHECK (stance IN ('support', 'contradict')),
    text TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS evidence_fts USING fts5(
    text, content='evidence', content_rowid='rowid', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS evidence_ai AFTER INSERT ON evidence BEGIN
    INSERT INTO evidence_fts(rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS evidence_ad AFTER DELETE ON evidence BEGIN
    INSERT INTO evidence_fts(evidence_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER IF NOT EXISTS evidence_au AFTER UPDATE ON evidence BEGIN
    INSERT INTO evidence_fts(evidence_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO evidence_fts(rowid, text) VALUES (new.rowid, new.text);
END;

CREATE TABLE IF NOT EXISTS policies (
    id TEXT PRIMARY KEY NOT NULL,
    service TEXT NOT NULL,
    blocked_actions TEXT NOT NULL,
    severities TEXT NOT NULL,
    rule TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS policies_fts USING fts5(
    rule, content='policies', content_rowid='rowid', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS policies_ai AFTER INSERT ON policies BEGIN
    INSERT INTO policies_fts(rowid, rule) VALUES (new.rowid, new.rule);
END;
CREATE TRIGGER IF NOT EXISTS policies_ad AFTER DELETE ON policies BEGIN
    INSERT INTO policies_fts(policies_fts, rowid, rule) VALUES ('delete', old.rowid, old.rule);
END;
CREATE TRIGGER IF NOT EXISTS policies_au AFTER UPDATE ON policies BEGIN
    INSERT INTO policies_fts(policies_fts, rowid, rule) VALUES ('delete', old.rowid, old.rule);
    INSERT INTO policies_fts(rowid, rule) VALUES (new.rowid, new.rule);
END;
";

// One row per service name (and `*`): its id is the bucket of its documents' rowids.
// `doc_counts`, kept by triggers, answers `stats` (which every incident run asks: are there
// reviewed runbooks?) without counting: counting read the whole 120 MB file at 100,000
// runbooks, and still 100,000 index entries with the `reviewed` index.
// `fts_df` / `fts_df_state`: each term's document count per FTS5 index, rebuilt from `fts5vocab`
// after every write, for `guardrail_bm25` (`fts_rank.rs`), with the row and token counts it was
// built at (a mismatch sends the function back to FTS5's own count).
const SCHEMA_2: &str = "
CREATE TABLE IF NOT EXISTS services (
    id INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS runbooks_reviewed ON runbooks (reviewed);

CREATE VIRTUAL TABLE IF NOT EXISTS runbooks_vocab USING fts5vocab(runbooks_fts, row);
CREATE VIRTUAL TABLE IF NOT EXISTS evidence_vocab USING fts5vocab(evidence_fts, row);
CREATE TABLE IF NOT EXISTS fts_df (
    tbl TEXT NOT NULL,
    term TEXT NOT NULL,
    docs INTEGER NOT NULL,
    cnt INTEGER NOT NULL,
    PRIMARY KEY (tbl, term)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fts_df_state (
    tbl TEXT PRIMARY KEY NOT NULL,
    rows INTEGER NOT NULL,
    tokens INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS doc_counts (kind TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS runbooks_count_ai AFTER INSERT ON runbooks BEGIN
    UPDATE doc_counts SET n = n + 1
     WHERE kind = CASE new.reviewed WHEN 1 THEN 'runbooks_reviewed' ELSE 'runbooks_unreviewed' END;
END;
CREATE TRIGGER IF NOT EXISTS runbooks_count_ad AFTER DELETE ON runbooks BEGIN
    UPDATE doc_counts SET n = n - 1
     WHERE kind = CASE old.reviewed WHEN 1 THEN 'runbooks_reviewed' ELSE 'runbooks_unreviewed' END;
END;
CREATE TRIGGER IF NOT EXISTS runbooks_count_au AFTER UPDATE OF reviewed ON runbooks BEGIN
    UPDATE doc_counts SET n = n - 1
     WHERE kind = CASE old.reviewed WHEN 1 THEN 'runbooks_reviewed' ELSE 'runbooks_unreviewed' END;
    UPDATE doc_counts SET n = n + 1
     WHERE kind = CASE new.reviewed WHEN 1 THEN 'runbooks_reviewed' ELSE 'runbooks_unreviewed' END;
END;
CREATE TRIGGER IF NOT EXISTS evidence_count_ai AFTER INSERT ON evidence BEGIN
    UPDATE doc_counts SET n = n + 1 WHERE kind = 'evidence';
END;
CREATE TRIGGER IF NOT EXISTS evidence_count_ad AFTER DELETE ON evidence BEGIN
    UPDATE doc_counts SET n = n - 1 WHERE kind = 'evidence';
END;
CREATE TRIGGER IF NOT EXISTS policies_count_ai AFTER INSERT ON policies BEGIN
    UPDATE doc_counts SET n = n + 1 WHERE kind = 'policies';
END;
CREATE TRIGGER IF NOT EXISTS policies_count_ad AFTER DELETE ON policies BEGIN
    UPDATE doc_counts SET n = n - 1 WHERE kind = 'policies';
END;
";

/// Recounts `doc_counts` (each `create`, so a file written by an older Guardrail is right).
const RECOUNT: &str = "
INSERT OR REPLACE INTO doc_counts (kind, n) VALUES
    ('runbooks_reviewed', (SELECT count(*) FROM runbooks WHERE reviewed = 1)),
    ('runbooks_unreviewed', (SELECT count(*) FROM runbooks WHERE reviewed = 0)),
    ('evidence', (SELECT count(*) FROM evidence)),
    ('policies', (SELECT count(*) FROM policies));
";

const TABLES: &[&str] = &["runbooks", "runbooks_fts", "evidence", "evidence_fts", "policies", "policies_fts"];

/// A service's reviewed runbooks matching an FTS5 query (`?1`), in its rowid range (`?4`–`?5`),
/// best first; see `search_runbooks` for the CROSS JOIN and the `+`. `{rank}` is `bm25(...)` or
/// the same with document counts from `fts_df` ([`crate::fts_rank`]).
macro_rules! search_runbooks {
    ($rank:literal) => {
        concat!(
            "SELECT r.id, r.service, r.title, r.recommended_action, r.body, r.reviewed, r.provenance, ",
            $rank,
            " AS rank
 FROM runbooks_fts CROSS JOIN runbooks r ON r.rowid = runbooks_fts.rowid
 WHERE runbooks_fts MATCH ?1 AND runbooks_fts.rowid BETWEEN ?4 AND ?5
   AND r.service = ?2 AND +r.reviewed = 1
 ORDER BY rank, r.id LIMIT ?3"
        )
    };
}
const SEARCH_RUNBOOKS: &str = search_runbooks!("bm25(runbooks_fts, 2.0, 1.0)");
const SEARCH_RUNBOOKS_DF: &str = search_runbooks!("guardrail_bm25(runbooks_fts, 'runbooks', 2.0, 1.0)");

macro_rules! search_evidence {
    ($rank:literal) => {
        concat!(
            "SELECT e.id, e.service, e.stance, e.text, ",
            $rank,
            " AS rank
 FROM evidence_fts CROSS JOIN evidence e ON e.rowid = evidence_fts.rowid
 WHERE evidence_fts MATCH ?1 AND evidence_fts.rowid BETWEEN ?5 AND ?6
   AND (?2 = '*' OR e.service = ?2 OR e.service = '*')
   AND (?4 IS NULL OR e.stance = ?4)
 ORDER BY rank, e.id LIMIT ?3"
        )
    };
}
const SEARCH_EVIDENCE: &str = search_evidence!("bm25(evidence_fts)");
const SEARCH_EVIDENCE_DF: &str = search_evidence!("guardrail_bm25(evidence_fts, 'evidence')");

/// Documents of one kind up to which every write that adds any merges that kind's FTS5 index
/// into one segment ([`SqliteKnowledgeStore::merge_small_indexes`]).
const MERGE_AFTER_WRITE_ROWS: i64 = 10_000;

/// The first and last rowid of a bucket.
fn bucket_range(bucket: i64) -> (i64, i64) {
    (bucket << BUCKET_SHIFT, (bucket << BUCKET_SHIFT) | ((1i64 << BUCKET_SHIFT) - 1))
}

/// Merges the top `k` of two lists each already in (`rank`, `id`) order, keeping that order:
/// the same order one `ORDER BY rank, id` over both would give (ids compare by bytes, like
/// SQLite's BINARY collation; ranks are finite).
fn merge_ranked<T>(a: Vec<(T, f64, String)>, b: Vec<(T, f64, String)>, k: usize) -> Vec<(T, f64, String)> {
    let mut all: Vec<(T, f64, String)> = a.into_iter().chain(b).collect();
    all.sort_by(|x, y| x.1.total_cmp(&y.1).then_with(|| x.2.as_bytes().cmp(y.2.as_bytes())));
    all.truncate(k);
    all
}

/// The FTS5 query for free text: every word quoted, OR-ed; `None` when there is no word.
pub fn fts_query(text: &str) -> Option<String> {
    quoted_or(&query_words(text))
}

/// The words of free text a search uses: split at anything not a letter or digit, lowercased,
/// each once, in order, at most [`MAX_QUERY_WORDS`].
fn query_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let w = w.to_lowercase();
        if !words.contains(&w) {
            words.push(w);
        }
        if words.len() == MAX_QUERY_WORDS {
            break;
        }
    }
    words
}

/// Words, each quoted, OR-ed; `None` when there is none.
fn quoted_or<W: AsRef<str>>(words: &[W]) -> Option<String> {
    // Words hold only letters and digits, so quoting cannot be escaped.
    (!words.is_empty()).then(|| words.iter().map(|w| format!("\"{}\"", w.as_ref())).collect::<Vec<_>>().join(" OR "))
}

/// What a search on a cached connection looks up and runs ([`SqliteKnowledgeStore::effective_query`]).
enum Effective {
    /// The query as given (outside a held read, or a text without words).
    AsGiven,
    /// The FTS5 query of the words the table holds (and of every word not plain ASCII).
    Fts(String),
    /// The table holds none of the words: nothing matches.
    Nothing,
}

/// Plans that do not depend on the values bound (SQLite's query planner stability guarantee).
/// Without it, SQLite 3.54 marks a statement to be compiled again whenever a parameter that
/// its plan peeked at is bound anew (`LIMIT ?`, `?2 = '*'`): every search re-prepared its
/// statement, and that was ~45 % of a proposal's time in `guardrail serve` even with the
/// statements cached. The searches' order is fixed by their `ORDER BY` (rank, then the unique
/// id), so the rows are the same under any plan; the ranking tests pin it. Best effort: a
/// SQLite that refuses the setting plans as before.
fn stable_plans(conn: &Connection) {
    let _ = conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true);
}

/// A knowledge store in one SQLite file.
pub struct SqliteKnowledgeStore {
    /// Boxed: `guardrail_bm25` is registered with the connection's address
    /// ([`crate::fts_rank::register`]), which must not change when the store is moved (pools).
    conn: Box<Connection>,
    location: String,
    /// Schema 2: documents numbered by service, searched by rowid range.
    bucketed: bool,
    /// `guardrail_bm25` is registered and the `fts_df` tables exist.
    df: bool,
    /// `doc_counts` exists.
    counted: bool,
    /// Services' bucket numbers already read ([`SqliteKnowledgeStore::service_range`]): a
    /// service keeps its number for the file's life (rows of `services` are only ever added),
    /// and every search asks for it. Only numbers read outside a write are kept.
    buckets: std::cell::RefCell<std::collections::HashMap<String, i64>>,
    /// Answers already given, on a read-only connection ([`crate::search_cache`]); `None` on
    /// a writable one.
    /// Boxed: a store is moved around by value (pools), and most of this is empty maps.
    cache: Option<Box<std::cell::RefCell<SearchCache>>>,
    /// A read transaction is held ([`SqliteKnowledgeStore::begin_read`]): the file cannot
    /// change under it, so the cache's version, read when it began, holds until it ends.
    reading: std::cell::Cell<bool>,
}

impl std::fmt::Debug for SqliteKnowledgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteKnowledgeStore").field("location", &self.location).finish()
    }
}

impl SqliteKnowledgeStore {
    /// Opens an existing knowledge base. A missing file is [`KnowledgeError::NotFound`]; a file
    /// that is not one (another schema version, missing tables, not SQLite) is
    /// [`KnowledgeError::Index`]. Never creates anything: the governor must not run on a
    /// knowledge base that appeared empty by accident.
    pub fn open(path: &Path) -> Result<SqliteKnowledgeStore, KnowledgeError> {
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// [`SqliteKnowledgeStore::open`] for reading only (`SQLITE_OPEN_READ_ONLY`): for runs
    /// that plan and stress but learn nothing (`incident run|execute`, `kb search|stats`). No
    /// schema is written and nothing is synced; a write through it (`add`, `mark_reviewed`)
    /// is an error, never a silent change.
    pub fn open_read_only(path: &Path) -> Result<SqliteKnowledgeStore, KnowledgeError> {
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    fn open_with(path: &Path, mode: OpenFlags) -> Result<SqliteKnowledgeStore, KnowledgeError> {
        if !path.is_file() {
            return Err(KnowledgeError::NotFound(path.to_path_buf()));
        }
        let location = path.display().to_string();
        // No SQLITE_OPEN_URI: a path is a path, even if it starts with `file:`.
        let conn = Connection::open_with_flags(path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| KnowledgeError::Index { location: location.clone(), message: e.to_string() })?;
        stable_plans(&conn);
        let mut store = SqliteKnowledgeStore {
            conn: Box::new(conn),
            location,
            bucketed: false,
            df: false,
            counted: false,
            buckets: Default::default(),
            cache: None,
            reading: Default::default(),
        };
        let (version, names) = store.check_schema()?;
        store.bucketed = version == SCHEMA_VERSION;
        store.counted = store.bucketed && names.iter().any(|n| n == "doc_counts");
        store.df = store.bucketed && names.iter().any(|n| n == "fts_df") && store.register_rank();
        if mode.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
            store.cache = Some(Default::default());
        }
        Ok(store)
    }

    /// Opens a knowledge base, creating the file (and its directory) and the schema if needed.
    pub fn create(path: &Path) -> Result<SqliteKnowledgeStore, KnowledgeError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| KnowledgeError::Io { path: dir.to_path_buf(), source })?;
        }
        let location = path.display().to_string();
        let conn = Connection::open(path)
            .map_err(|e| KnowledgeError::Index { location: location.clone(), message: e.to_string() })?;
        stable_plans(&conn);
        let mut store = SqliteKnowledgeStore {
            conn: Box::new(conn),
            location,
            bucketed: true,
            df: false,
            counted: false,
            buckets: Default::default(),
            cache: None,
            reading: Default::default(),
        };
        store.init_schema()?;
        Ok(store)
    }

    /// A fresh in-memory knowledge base (tests, one-shot runs).
    pub fn open_in_memory() -> Result<SqliteKnowledgeStore, KnowledgeError> {
        let conn = Connection::open_in_memory()
            .map_err(|e| KnowledgeError::Index { location: ":memory:".into(), message: e.to_string() })?;
        stable_plans(&conn);
        let mut store = SqliteKnowledgeStore {
            conn: Box::new(conn),
            location: ":memory:".into(),
            bucketed: true,
            df: false,
            counted: false,
            buckets: Default::default(),
            cache: None,
            reading: Default::default(),
        };
        store.init_schema()?;
        Ok(store)
    }

    /// Where the index lives.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> KnowledgeError {
        KnowledgeError::Index { location: self.location.clone(), message: format!("{what}: {e}") }
    }

    /// Whether this SQLite was built with FTS5 (which the index needs).
    fn has_fts5(&self) -> bool {
        self.conn
            .query_row("SELECT sqlite_compileoption_used('ENABLE_FTS5')", [], |r| r.get::<_, i64>(0))
            .is_ok_and(|used| used == 1)
    }

    fn init_schema(&mut self) -> Result<(), KnowledgeError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err("reading the schema version", e))?;
        if !(0..=SCHEMA_VERSION).contains(&version) {
            return Err(self.err("schema", format!("version {version}, this Guardrail reads {SCHEMA_VERSION}")));
        }
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err("starting a transaction", e))?;
        tx.execute_batch(SCHEMA).map_err(|e| {
            // Asked of SQLite, not read from the error's text (a missing module is a plain
            // SQLITE_ERROR).
            if self.has_fts5() {
                self.err("creating the schema", e)
            } else {
                self.err("creating the FTS5 index (is SQLite built with FTS5?)", e)
            }
        })?;
        tx.execute_batch(SCHEMA_2).map_err(|e| self.err("creating the schema", e))?;
        if version == 1 {
            self.renumber(&tx)?;
        }
        tx.execute_batch(RECOUNT).map_err(|e| self.err("counting documents", e))?;
        self.refresh_df(&tx)?;
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(|e| self.err("setting the schema version", e))?;
        tx.commit().map_err(|e| self.err("committing the schema", e))?;
        self.bucketed = true;
        self.counted = true;
        self.df = self.register_rank();
        Ok(())
    }

    /// Registers `guardrail_bm25`; false (searches use `bm25()`) if this SQLite cannot.
    fn register_rank(&self) -> bool {
        crate::fts_rank::register(&self.conn).is_ok()
    }

    /// Rebuilds `fts_df` and `fts_df_state` from the FTS5 indexes (one pass over each index's
    /// vocabulary: 0.35 s at 100,000 runbooks), inside the caller's transaction.
    fn refresh_df(&self, conn: &Connection) -> Result<(), KnowledgeError> {
        for (tbl, table, vocab) in
            [("runbooks", "runbooks", "runbooks_vocab"), ("evidence", "evidence", "evidence_vocab")]
        {
            conn.execute_batch(&format!(
                "DELETE FROM fts_df WHERE tbl = '{tbl}';
                 INSERT INTO fts_df (tbl, term, docs, cnt) SELECT '{tbl}', term, doc, cnt FROM {vocab};
                 INSERT OR REPLACE INTO fts_df_state (tbl, rows, tokens) VALUES ('{tbl}',
                     (SELECT count(*) FROM {table}),
                     (SELECT coalesce(sum(cnt), 0) FROM fts_df WHERE tbl = '{tbl}'));"
            ))
            .map_err(|e| self.err(&format!("counting the terms of {table}"), e))?;
        }
        Ok(())
    }

    /// After a write that added documents: a small index is merged into one segment, and the
    /// term counts follow (schema 2 files only).
    fn after_write(&self, conn: &Connection, report: LoadReport) -> Result<(), KnowledgeError> {
        if report.added == 0 {
            return Ok(());
        }
        self.merge_small_indexes(conn)?;
        if self.bucketed { self.refresh_df(conn) } else { Ok(()) }
    }

    /// Merges each FTS5 index of at most [`MERGE_AFTER_WRITE_ROWS`] documents into one segment
    /// (`optimize`), inside the caller's transaction. FTS5 flushes a new segment whenever a
    /// rowid is not above the last one written, and schema 2 numbers each service's documents in
    /// its own range, so a load across services wrote one segment per document: the sample
    /// knowledge base's 5 evidence documents were 5 segments, and every word of every search
    /// was looked up in each (~25 % of a proposal in `guardrail serve`). Results and scores do
    /// not change (the statistics bm25 reads are the index's, not its segments'); a larger index
    /// is left to FTS5's automerge and `kb load`'s optimize after a large load, since merging it
    /// costs time in proportion to its size at every write.
    fn merge_small_indexes(&self, conn: &Connection) -> Result<(), KnowledgeError> {
        for table in ["runbooks", "evidence", "policies"] {
            let rows: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .map_err(|e| self.err(&format!("counting {table}"), e))?;
            if rows <= MERGE_AFTER_WRITE_ROWS {
                conn.execute(&format!("INSERT INTO {table}_fts({table}_fts) VALUES ('optimize')"), [])
                    .map_err(|e| self.err(&format!("optimizing {table}_fts"), e))?;
            }
        }
        Ok(())
    }

    /// Schema 1 → 2: gives every runbook and evidence document its service's rowid. The update
    /// triggers move each FTS5 row with it (delete at the old rowid, insert at the new), so the
    /// index's content and statistics, hence every score, stay the same. New rowids start at
    /// 2^32, above any schema-1 rowid, so no update collides with a row not yet moved.
    fn renumber(&self, conn: &Connection) -> Result<(), KnowledgeError> {
        for table in ["runbooks", "evidence"] {
            conn.execute(&format!("INSERT OR IGNORE INTO services (name) SELECT DISTINCT service FROM {table}"), [])
                .map_err(|e| self.err("numbering services", e))?;
            // One pass over the table into a temporary map, then one update by it (a correlated
            // window query per row would be quadratic).
            conn.execute_batch(&format!(
                "DROP TABLE IF EXISTS temp.renumber;
                 CREATE TEMP TABLE renumber (rid INTEGER PRIMARY KEY, nid INTEGER NOT NULL);
                 INSERT INTO temp.renumber (rid, nid)
                     SELECT t.rowid, (s.id << {BUCKET_SHIFT}) + row_number() OVER (PARTITION BY t.service ORDER BY t.rowid)
                     FROM {table} t JOIN services s ON s.name = t.service;
                 UPDATE {table} SET rowid = (SELECT nid FROM temp.renumber WHERE rid = {table}.rowid);
                 DROP TABLE temp.renumber;"
            ))
            .map_err(|e| self.err(&format!("renumbering {table} by service"), e))?;
            // Moving every row left the index in many segments full of delete markers (a
            // search over the migrated 100,000 runbooks took 16 ms instead of 2): merge them.
            conn.execute(&format!("INSERT INTO {table}_fts({table}_fts) VALUES ('optimize')"), [])
                .map_err(|e| self.err(&format!("optimizing {table}_fts"), e))?;
        }
        Ok(())
    }

    /// The bucket of a service, creating it when `create` (for an insert).
    fn bucket(&self, conn: &Connection, service: &str, create: bool) -> Result<Option<i64>, KnowledgeError> {
        if create {
            conn.prepare_cached("INSERT OR IGNORE INTO services (name) VALUES (?1)")
                .and_then(|mut st| st.execute([service]))
                .map_err(|e| self.err("numbering a service", e))?;
        }
        conn.prepare_cached("SELECT id FROM services WHERE name = ?1")
            .and_then(|mut st| st.query_row([service], |r| r.get::<_, i64>(0)).optional())
            .map_err(|e| self.err("reading a service's number", e))
    }

    /// The rowid for a new document of `service` in `table`, or `None` in a schema-1 file
    /// (SQLite picks it).
    fn next_rowid(&self, conn: &Connection, table: &str, service: &str) -> Result<Option<i64>, KnowledgeError> {
        if !self.bucketed {
            return Ok(None);
        }
        let Some(bucket) = self.bucket(conn, service, true)? else {
            return Err(self.err("numbering a service", format!("no number for {service:?}")));
        };
        let (lo, hi) = bucket_range(bucket);
        let last: Option<i64> = conn
            .prepare_cached(&format!("SELECT max(rowid) FROM {table} WHERE rowid BETWEEN ?1 AND ?2"))
            .and_then(|mut st| st.query_row([lo, hi], |r| r.get(0)))
            .map_err(|e| self.err("numbering a document", e))?;
        match last {
            None => Ok(Some(lo + 1)),
            Some(n) if n < hi => Ok(Some(n + 1)),
            Some(_) => Err(self.err("numbering a document", format!("service {service:?} has 2^32 - 1 documents"))),
        }
    }

    /// The rowid range of a service's documents; `None` when no document of it was ever added.
    fn service_range(&self, service: &str) -> Result<Option<(i64, i64)>, KnowledgeError> {
        if let Some(b) = self.buckets.borrow().get(service) {
            return Ok(Some(bucket_range(*b)));
        }
        let bucket = self.bucket(&self.conn, service, false)?;
        // A service without a number yet may get one by a later load: not kept.
        if let Some(b) = bucket {
            self.buckets.borrow_mut().insert(service.to_string(), b);
        }
        Ok(bucket.map(bucket_range))
    }

    /// Merges FTS5's segments into one (`optimize`): after a large load, a search reads one
    /// b-tree per term instead of merging many. Optional; results do not change.
    pub fn optimize(&self) -> Result<(), KnowledgeError> {
        for t in ["runbooks_fts", "evidence_fts", "policies_fts"] {
            self.conn
                .execute(&format!("INSERT INTO {t}({t}) VALUES ('optimize')"), [])
                .map_err(|e| self.err(&format!("optimizing {t}"), e))?;
        }
        Ok(())
    }

    /// Checks the file is a knowledge base of a version this reads; returns the version and
    /// its tables.
    fn check_schema(&self) -> Result<(i64, Vec<String>), KnowledgeError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err("reading the schema version", e))?;
        if !(1..=SCHEMA_VERSION).contains(&version) {
            return Err(self.err(
                "schema",
                format!("version {version}, expected {SCHEMA_VERSION}: not a Guardrail knowledge base"),
            ));
        }
        // One read of the schema table for all of them (it is parsed once per connection anyway).
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .map_err(|e| self.err("reading the schema", e))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(|e| self.err("reading the schema", e))?;
        let needed = TABLES.iter().chain((version >= 2).then_some(&"services"));
        match needed.into_iter().find(|t| !names.iter().any(|n| n == *t)) {
            Some(t) => Err(self.err("schema", format!("table {t} is missing"))),
            None => Ok((version, names)),
        }
    }

    /// Runs FTS5's integrity check on every index; an index out of step with its table is an
    /// error.
    pub fn verify(&self) -> Result<(), KnowledgeError> {
        for t in ["runbooks_fts", "evidence_fts", "policies_fts"] {
            self.conn
                .execute(&format!("INSERT INTO {t}({t}) VALUES ('integrity-check')"), [])
                .map_err(|e| self.err(&format!("integrity check of {t}"), e))?;
        }
        Ok(())
    }

    /// Evidence of `service` (or `*`) in one rowid range, in (`rank`, `id`) order, with the
    /// raw `bm25()` rank (0 without a query).
    fn evidence_in(
        &self,
        fts: Option<&str>,
        service: &str,
        k: usize,
        stance: Option<Stance>,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(EvidenceRowRaw, f64, String)>, KnowledgeError> {
        let mut all = Vec::new();
        self.evidence_rows(fts, service, bounded(k), stance.map(Stance::as_str), lo, hi, &mut |row| {
            all.push(row);
            true
        })?;
        Ok(all)
    }

    /// [`SqliteKnowledgeStore::evidence_in`] of both stances from one query: `[support,
    /// contradict]`, each the first `k` rows of its stance in the query's order (`rank`, `id`),
    /// which is what the query filtered by that stance and limited to `k` returns. The query runs
    /// unlimited and unfiltered (`LIMIT -1`, no stance) and stops once both have `k`. A row of
    /// another stance (the table's CHECK allows none) is in neither, as no stance's query
    /// returns it.
    fn evidence_in_per_stance(
        &self,
        fts: Option<&str>,
        service: &str,
        k: usize,
        lo: i64,
        hi: i64,
    ) -> Result<[Vec<RankedEvidence>; 2], KnowledgeError> {
        let k = bounded(k) as usize;
        let mut dealt: [Vec<RankedEvidence>; 2] = [Vec::new(), Vec::new()];
        self.evidence_rows(fts, service, -1, None, lo, hi, &mut |row| {
            let i = match Stance::parse(&row.0.2) {
                Some(Stance::Support) => 0,
                Some(Stance::Contradict) => 1,
                None => return true,
            };
            if dealt[i].len() < k {
                dealt[i].push(row);
            }
            dealt.iter().any(|d| d.len() < k)
        })?;
        Ok(dealt)
    }

    /// Evidence of `service` (or `*`) in one rowid range, optionally of one stance, in (`rank`,
    /// `id`) order with the raw `bm25()` rank (0 without a query), at most `limit` rows (-1: no
    /// limit), each handed to `sink` until it returns false.
    #[allow(clippy::too_many_arguments)]
    fn evidence_rows(
        &self,
        fts: Option<&str>,
        service: &str,
        limit: i64,
        stance: Option<&str>,
        lo: i64,
        hi: i64,
        sink: &mut dyn FnMut((EvidenceRowRaw, f64, String)) -> bool,
    ) -> Result<(), KnowledgeError> {
        let row_of = |row: &rusqlite::Row<'_>, rank: f64| -> rusqlite::Result<(EvidenceRowRaw, f64, String)> {
            let id: String = row.get(0)?;
            Ok(((id.clone(), row.get(1)?, row.get(2)?, row.get(3)?), rank, id))
        };
        let (what, mut stmt) = match fts {
            Some(_) => (
                "searching evidence",
                self.conn.prepare_cached(if self.df { SEARCH_EVIDENCE_DF } else { SEARCH_EVIDENCE }),
            ),
            None => (
                "listing evidence",
                self.conn.prepare_cached(
                    "SELECT id, service, stance, text FROM evidence
                     WHERE rowid BETWEEN ?4 AND ?5 AND (?1 = '*' OR service = ?1 OR service = '*')
                       AND (?3 IS NULL OR stance = ?3)
                     ORDER BY id LIMIT ?2",
                ),
            ),
        };
        let stmt = stmt.as_mut().map_err(|e| self.err(what, e))?;
        let mut rows = match fts {
            Some(q) => stmt.query(params![q, service, limit, stance, lo, hi]),
            None => stmt.query(params![service, limit, stance, lo, hi]),
        }
        .map_err(|e| self.err(what, e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(what, e))? {
            let rank = if fts.is_some() { row.get::<_, f64>(4).map_err(|e| self.err(what, e))? } else { 0.0 };
            if !sink(row_of(row, rank).map_err(|e| self.err(what, e))?) {
                break;
            }
        }
        Ok(())
    }

    fn insert_runbook(&self, conn: &Connection, r: &Runbook) -> Result<LoadReport, KnowledgeError> {
        let provenance = serde_json::to_string(&r.provenance).map_err(|e| self.err("encoding provenance", e))?;
        if let Some(existing) = self.runbook_on(conn, &r.id)? {
            return if &existing == r { Ok(unchanged()) } else { Err(conflict("runbook", &r.id)) };
        }
        let rowid = self.next_rowid(conn, "runbooks", &r.service)?;
        conn.prepare_cached(
            "INSERT INTO runbooks (rowid, id, service, title, recommended_action, body, reviewed, provenance)
             VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut st| {
            st.execute(params![r.id, r.service, r.title, r.recommended_action, r.body, r.reviewed, provenance, rowid])
        })
        .map_err(|e| self.err("adding a runbook", e))?;
        Ok(added())
    }

    fn insert_evidence(&self, conn: &Connection, d: &EvidenceDoc) -> Result<LoadReport, KnowledgeError> {
        let existing = conn
            .prepare_cached("SELECT id, service, stance, text FROM evidence WHERE id = ?1")
            .and_then(|mut st| {
                st.query_row([&d.id], |row| {
                    Ok((row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, String>(3)?))
                })
                .optional()
            })
            .map_err(|e| self.err("reading evidence", e))?;
        if let Some((service, stance, text)) = existing {
            let same = service == d.service && stance == d.stance.as_str() && text == d.text;
            return if same { Ok(unchanged()) } else { Err(conflict("evidence", &d.id)) };
        }
        let rowid = self.next_rowid(conn, "evidence", &d.service)?;
        conn.prepare_cached("INSERT INTO evidence (rowid, id, service, stance, text) VALUES (?5, ?1, ?2, ?3, ?4)")
            .and_then(|mut st| st.execute(params![d.id, d.service, d.stance.as_str(), d.text, rowid]))
            .map_err(|e| self.err("adding evidence", e))?;
        Ok(added())
    }

    fn insert_policy(&self, conn: &Connection, p: &ActionPolicy) -> Result<LoadReport, KnowledgeError> {
        let blocked = serde_json::to_string(&p.blocked_actions).map_err(|e| self.err("encoding a policy", e))?;
        let severities = serde_json::to_string(&p.severities).map_err(|e| self.err("encoding a policy", e))?;
        let existing = conn
            .query_row(
                "SELECT service, blocked_actions, severities, rule FROM policies WHERE id = ?1",
                [&p.id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err("reading a policy", e))?;
        if let Some(row) = existing {
            let same = row == (p.service.clone(), blocked, severities, p.rule.clone());
            return if same { Ok(unchanged()) } else { Err(conflict("policy", &p.id)) };
        }
        conn.execute(
            "INSERT INTO policies (id, service, blocked_actions, severities, rule) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![p.id, p.service, blocked, severities, p.rule],
        )
        .map_err(|e| self.err("adding a policy", e))?;
        Ok(added())
    }

    fn runbook_on(&self, conn: &Connection, id: &str) -> Result<Option<Runbook>, KnowledgeError> {
        let row = conn
            .prepare_cached(
                "SELECT id, service, title, recommended_action, body, reviewed, provenance FROM runbooks WHERE id = ?1",
            )
            .and_then(|mut st| st.query_row([id], runbook_row).optional())
            .map_err(|e| self.err("reading a runbook", e))?;
        row.map(|(r, p)| self.finish_runbook(r, &p)).transpose()
    }

    fn finish_runbook(&self, mut r: Runbook, provenance: &str) -> Result<Runbook, KnowledgeError> {
        r.provenance = serde_json::from_str::<Provenance>(provenance)
            .map_err(|e| self.err(&format!("runbook {} has corrupt provenance", r.id), e))?;
        Ok(r)
    }
}

fn added() -> LoadReport {
    LoadReport { added: 1, unchanged: 0 }
}

fn unchanged() -> LoadReport {
    LoadReport { added: 0, unchanged: 1 }
}

fn conflict(kind: &'static str, id: &str) -> KnowledgeError {
    KnowledgeError::Conflict { kind, id: id.to_string() }
}

type RunbookRow = (Runbook, String);

/// An evidence row as read: id, service, stance, text.
type EvidenceRowRaw = (String, String, String, String);

/// An evidence row with its raw rank and its id (the merge's tie-break).
type RankedEvidence = (EvidenceRowRaw, f64, String);

fn runbook_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunbookRow> {
    Ok((
        Runbook {
            id: row.get(0)?,
            service: row.get(1)?,
            title: row.get(2)?,
            recommended_action: row.get(3)?,
            body: row.get(4)?,
            reviewed: row.get(5)?,
            provenance: Provenance {
                source: String::new(),
                origin: None,
                reviewed_by: None,
                recorded_at: None,
                learned: None,
            },
        },
        row.get(6)?,
    ))
}

fn bounded(k: usize) -> i64 {
    k.min(MAX_K) as i64
}

/// The searches as SQLite answers them now; [`KnowledgeStore`]'s methods add the cache.
impl SqliteKnowledgeStore {
    fn search_runbooks_now(&self, query: &str, service: &str, k: usize) -> Result<Vec<RunbookHit>, KnowledgeError> {
        self.search_runbooks_fts(fts_query(query).as_deref(), service, k)
    }

    /// A runbook search by its FTS5 query (`None`: no word, the service's reviewed runbooks
    /// by id).
    fn search_runbooks_fts(
        &self,
        fts: Option<&str>,
        service: &str,
        k: usize,
    ) -> Result<Vec<RunbookHit>, KnowledgeError> {
        // Schema 2: only the service's range; a service nothing was ever added for has no
        // runbooks. Schema 1: every rowid, filtered by service as before.
        let (lo, hi) = if self.bucketed {
            match self.service_range(service)? {
                Some(r) => r,
                None => return Ok(Vec::new()),
            }
        } else {
            (i64::MIN, i64::MAX)
        };
        let rows: Vec<(RunbookRow, f64)> = match fts {
            Some(q) => {
                // The range is on `runbooks_fts.rowid`, so FTS5 itself sees it (xBestIndex) and
                // seeks its doclists to the service's rows. CROSS JOIN keeps FTS5 the outer loop
                // and `+r.reviewed` keeps the planner off the `reviewed` index (made for
                // `stats`): scanning 100,000 reviewed runbooks and probing FTS5 for each took
                // 0.4 s.
                let mut stmt = self
                    .conn
                    .prepare_cached(if self.df { SEARCH_RUNBOOKS_DF } else { SEARCH_RUNBOOKS })
                    .map_err(|e| self.err("searching runbooks", e))?;
                stmt.query_map(params![q, service, bounded(k), lo, hi], |row| {
                    Ok((runbook_row(row)?, -row.get::<_, f64>(7)?))
                })
                .and_then(|rows| rows.collect())
                .map_err(|e| self.err("searching runbooks", e))?
            }
            None => {
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT id, service, title, recommended_action, body, reviewed, provenance FROM runbooks
                         WHERE rowid BETWEEN ?3 AND ?4 AND service = ?1 AND +reviewed = 1 ORDER BY id LIMIT ?2",
                    )
                    .map_err(|e| self.err("listing runbooks", e))?;
                stmt.query_map(params![service, bounded(k), lo, hi], |row| Ok((runbook_row(row)?, 0.0)))
                    .and_then(|rows| rows.collect())
                    .map_err(|e| self.err("listing runbooks", e))?
            }
        };
        rows.into_iter().map(|((r, p), score)| Ok(RunbookHit { runbook: self.finish_runbook(r, &p)?, score })).collect()
    }

    fn search_evidence_now(
        &self,
        query: &str,
        service: &str,
        k: usize,
        stance: Option<Stance>,
    ) -> Result<Vec<EvidenceHit>, KnowledgeError> {
        self.search_evidence_fts(fts_query(query).as_deref(), service, k, stance)
    }

    /// An evidence search by its FTS5 query (`None`: no word, by id).
    fn search_evidence_fts(
        &self,
        fts: Option<&str>,
        service: &str,
        k: usize,
        stance: Option<Stance>,
    ) -> Result<Vec<EvidenceHit>, KnowledgeError> {
        let mut merged: Vec<(EvidenceRowRaw, f64, String)> = Vec::new();
        for (lo, hi) in self.evidence_ranges(service)? {
            let rows = self.evidence_in(fts, service, k, stance, lo, hi)?;
            merged = merge_ranked(merged, rows, bounded(k) as usize);
        }
        self.evidence_hits(merged)
    }

    /// [`SqliteKnowledgeStore::search_evidence_now`] for both stances at once, `(support,
    /// contradict)`: each range is searched once, unfiltered by stance and in the searches'
    /// order (`rank`, then `id`), and its rows are dealt to their stance until each has `k` —
    /// exactly the rows, order and scores each stance's own search returns (a row's rank does not
    /// depend on the other rows the query returns), from one FTS5 query per range instead of
    /// two. The stress phase asks for both of every claim, one after the other.
    fn search_evidence_both_now(
        &self,
        fts: Option<&str>,
        service: &str,
        k: usize,
    ) -> Result<(Vec<EvidenceHit>, Vec<EvidenceHit>), KnowledgeError> {
        let (mut support, mut contradict) = (Vec::new(), Vec::new());
        for (lo, hi) in self.evidence_ranges(service)? {
            let [s, c] = self.evidence_in_per_stance(fts, service, k, lo, hi)?;
            support = merge_ranked(support, s, bounded(k) as usize);
            contradict = merge_ranked(contradict, c, bounded(k) as usize);
        }
        Ok((self.evidence_hits(support)?, self.evidence_hits(contradict)?))
    }

    /// The rowid ranges an evidence search of `service` reads: every rowid for `*` (all
    /// services) or a schema-1 file; else the service's range and `*`'s, each searched alone
    /// and merged in the one query's order.
    fn evidence_ranges(&self, service: &str) -> Result<Vec<(i64, i64)>, KnowledgeError> {
        Ok(if service == "*" || !self.bucketed {
            vec![(i64::MIN, i64::MAX)]
        } else {
            [self.service_range(service)?, self.service_range("*")?].into_iter().flatten().collect()
        })
    }

    fn evidence_hits(&self, merged: Vec<(EvidenceRowRaw, f64, String)>) -> Result<Vec<EvidenceHit>, KnowledgeError> {
        merged
            .into_iter()
            .map(|((id, service, stance, text), rank, _)| {
                let stance = Stance::parse(&stance)
                    .ok_or_else(|| self.err(&format!("evidence {id}"), format!("corrupt stance \"{stance}\"")))?;
                // bm25() is negative, better is lower; negated (`0.0 - rank`, so an empty query scores
                // 0.0 rather than -0.0, as before).
                Ok(EvidenceHit { doc: EvidenceDoc { id, service, stance, text }, score: 0.0 - rank })
            })
            .collect()
    }

    fn policies_for_now(&self, service: &str) -> Result<Vec<ActionPolicy>, KnowledgeError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, service, blocked_actions, severities, rule FROM policies
                 WHERE service = ?1 OR service = '*' ORDER BY id",
            )
            .map_err(|e| self.err("reading policies", e))?;
        let rows: Vec<(String, String, String, String, String)> = stmt
            .query_map([service], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err("reading policies", e))?;
        rows.into_iter()
            .map(|(id, service, blocked, severities, rule)| {
                let blocked_actions: Vec<String> = serde_json::from_str(&blocked)
                    .map_err(|e| self.err(&format!("policy {id} has corrupt blocked_actions"), e))?;
                let severities: Vec<Severity> = serde_json::from_str(&severities)
                    .map_err(|e| self.err(&format!("policy {id} has corrupt severities"), e))?;
                Ok(ActionPolicy { id, service, blocked_actions, severities, rule })
            })
            .collect()
    }

    fn stats_now(&self) -> Result<KnowledgeStats, KnowledgeError> {
        let count = |sql: &str| -> Result<u64, KnowledgeError> {
            let n: i64 = self.conn.query_row(sql, [], |r| r.get(0)).map_err(|e| self.err("counting documents", e))?;
            Ok(n.max(0) as u64)
        };
        if self.counted {
            // One cached statement (every incident run asks): a kind without a row counts 0.
            let mut stmt = self
                .conn
                .prepare_cached("SELECT kind, n FROM doc_counts")
                .map_err(|e| self.err("counting documents", e))?;
            let rows: Vec<(String, i64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(|e| self.err("counting documents", e))?;
            let n = |kind: &str| rows.iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| (*n).max(0) as u64);
            return Ok(KnowledgeStats {
                runbooks_reviewed: n("runbooks_reviewed"),
                runbooks_unreviewed: n("runbooks_unreviewed"),
                evidence: n("evidence"),
                policies: n("policies"),
            });
        }
        Ok(KnowledgeStats {
            runbooks_reviewed: count("SELECT count(*) FROM runbooks WHERE reviewed = 1")?,
            runbooks_unreviewed: count("SELECT count(*) FROM runbooks WHERE reviewed = 0")?,
            evidence: count("SELECT count(*) FROM evidence")?,
            policies: count("SELECT count(*) FROM policies")?,
        })
    }

    /// The connection's `PRAGMA data_version` with its cache, when it keeps answers; `None`
    /// (search without the cache) when it does not or the version cannot be read.
    fn cache_at_version(&self) -> Option<std::cell::RefMut<'_, SearchCache>> {
        let cache = self.cache.as_ref()?;
        if self.reading.get() {
            if !self.conn.is_autocommit() {
                // Set when the read transaction began; nothing can commit while it is held.
                return Some(cache.borrow_mut());
            }
            // SQLite ended it (some errors roll a transaction back): check at each search.
            self.reading.set(false);
        }
        let version: i64 =
            self.conn.prepare_cached("PRAGMA data_version").and_then(|mut st| st.query_row([], |r| r.get(0))).ok()?;
        let mut cache = cache.borrow_mut();
        cache.at_version(version);
        Some(cache)
    }

    /// Holds one read transaction until [`SqliteKnowledgeStore::end_read`], for the searches
    /// of one request (a proposal's plan and stress phases): they all read the file as it is
    /// now — another connection's commit waits for the transaction to end (rollback journal:
    /// it needs every reader gone; WAL: the reader keeps its snapshot) — and the cache checks
    /// the file's `data_version` once, here, instead of at every search (each check was a
    /// read transaction of its own: file locks and a header read, ~12 % of a proposal's
    /// server CPU once the answers were cached). True when held; false, with nothing held,
    /// for a connection without a cache (writable), one already in a transaction, or when the
    /// transaction cannot begin (the searches then check at each call, as without this).
    pub fn begin_read(&self) -> bool {
        let Some(cache) = self.cache.as_ref() else { return false };
        if self.reading.get() || !self.conn.is_autocommit() {
            return false;
        }
        // Cached statements: one request each, parsed once per connection.
        let version = self.conn.prepare_cached("BEGIN DEFERRED").and_then(|mut st| st.execute([])).and_then(|_| {
            // The first read takes the transaction's lock (waiting out a writer's commit).
            self.conn.prepare_cached("PRAGMA data_version").and_then(|mut st| st.query_row([], |r| r.get::<_, i64>(0)))
        });
        match version {
            Ok(v) => {
                cache.borrow_mut().at_version(v);
                self.reading.set(true);
                true
            }
            Err(_) => {
                self.end_read();
                false
            }
        }
    }

    /// Ends the read transaction of [`SqliteKnowledgeStore::begin_read`] (nothing was written:
    /// a rollback ends it). True when the connection is out of any transaction after, i.e. fit
    /// to be used again.
    pub fn end_read(&self) -> bool {
        self.reading.set(false);
        if !self.conn.is_autocommit() {
            let _ = self.conn.prepare_cached("ROLLBACK").and_then(|mut st| st.execute([]));
        }
        self.conn.is_autocommit()
    }

    /// What a search of `table` (`runbooks_fts` or `evidence_fts`) for `query` looks up and runs
    /// on a cached connection. Inside a held read transaction: the FTS5 query of its words
    /// without those no document of the table holds — each asked of FTS5 once per file version
    /// (`MATCH '"word"'`, the same tokenizer and index as the search), then kept. Exactly the
    /// same answer: the search ORs the words, so such a word matches no row, and `bm25()` (and
    /// `guardrail_bm25`) adds `idf × 0 × (k1 + 1) / (…) = +0.0` for it to every score, which
    /// leaves each sum's bits as they are; the other words' idf, the row count and the average
    /// length do not depend on it. One snapshot: outside a held read, a commit between the
    /// question and the search could add the word, so the query is used as given. Only words
    /// of ASCII letters and digits are asked about (each is one token to `unicode61`); any
    /// other is kept. An answer from this is what the given query returns now, and an incident
    /// text with a word of its own (an id, a number, a host name) finds the answer kept for the
    /// same text without it. What a text came to is kept too (a repeated text is one lookup).
    fn effective_query(&self, cache: &mut SearchCache, table: Table, query: &str) -> Result<Effective, KnowledgeError> {
        if !self.reading.get() || self.conn.is_autocommit() {
            return Ok(Effective::AsGiven);
        }
        if let Some(known) = cache.text(table, query) {
            return Ok(match known {
                Some(fts) => Effective::Fts(fts),
                None => {
                    cache.hits += 1;
                    Effective::Nothing
                }
            });
        }
        let words = query_words(query);
        if words.is_empty() {
            return Ok(Effective::AsGiven);
        }
        let mut asked = false;
        let mut held: Vec<&str> = Vec::with_capacity(words.len());
        for w in &words {
            if !w.bytes().all(|b| b.is_ascii_alphanumeric()) {
                held.push(w);
                continue;
            }
            let has = match cache.word(table, w) {
                Some(has) => has,
                None => {
                    asked = true;
                    let has = self.table_holds(table, w)?;
                    cache.keep_word(table, w, has);
                    has
                }
            };
            if has {
                held.push(w);
            }
        }
        let fts = quoted_or(&held);
        cache.keep_text(table, query, fts.as_deref());
        Ok(match fts {
            Some(fts) => Effective::Fts(fts),
            None => {
                // Answered from what is kept when no word had to be asked about (tests count it).
                cache.hits += u64::from(!asked);
                Effective::Nothing
            }
        })
    }

    /// Whether any document of `table` holds `word` (ASCII letters and digits only).
    fn table_holds(&self, table: Table, word: &str) -> Result<bool, KnowledgeError> {
        let sql = match table {
            Table::Runbooks => "SELECT 1 FROM runbooks_fts WHERE runbooks_fts MATCH ?1 LIMIT 1",
            Table::Evidence => "SELECT 1 FROM evidence_fts WHERE evidence_fts MATCH ?1 LIMIT 1",
        };
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.exists([format!("\"{word}\"")]))
            .map_err(|e| self.err("searching", e))
    }

    /// Answers served from the cache so far (tests).
    #[cfg(test)]
    pub(crate) fn cache_hits(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.borrow().hits)
    }
}

impl KnowledgeStore for SqliteKnowledgeStore {
    fn search_runbooks(&self, query: &str, service: &str, k: usize) -> Result<Vec<RunbookHit>, KnowledgeError> {
        let Some(mut cache) = self.cache_at_version() else {
            return self.search_runbooks_now(query, service, k);
        };
        let (key, fts) = match self.effective_query(&mut cache, Table::Runbooks, query)? {
            Effective::AsGiven => (Query::Text(query.to_string()), fts_query(query)),
            Effective::Fts(fts) => (Query::Fts(fts.clone()), Some(fts)),
            Effective::Nothing => return Ok(Vec::new()),
        };
        if let Some(hits) = cache.runbooks(&key, service, k) {
            return Ok(hits);
        }
        let hits = self.search_runbooks_fts(fts.as_deref(), service, k)?;
        cache.keep_runbooks(&key, service, k, &hits);
        Ok(hits)
    }

    fn search_evidence(
        &self,
        query: &str,
        service: &str,
        k: usize,
        stance: Option<Stance>,
    ) -> Result<Vec<EvidenceHit>, KnowledgeError> {
        let Some(mut cache) = self.cache_at_version() else {
            return self.search_evidence_now(query, service, k, stance);
        };
        let (key, fts) = match self.effective_query(&mut cache, Table::Evidence, query)? {
            Effective::AsGiven => (Query::Text(query.to_string()), fts_query(query)),
            Effective::Fts(fts) => (Query::Fts(fts.clone()), Some(fts)),
            Effective::Nothing => return Ok(Vec::new()),
        };
        if let Some(hits) = cache.evidence(&key, service, k, stance) {
            return Ok(hits);
        }
        let Some(asked) = stance else {
            let hits = self.search_evidence_fts(fts.as_deref(), service, k, None)?;
            cache.keep_evidence(&key, service, k, None, &hits);
            return Ok(hits);
        };
        // One stance asked: both found by one query per range and both kept, since the other
        // is asked next (the stress phase searches every claim for support, then contradiction).
        let (support, contradict) = self.search_evidence_both_now(fts.as_deref(), service, k)?;
        cache.keep_evidence(&key, service, k, Some(Stance::Support), &support);
        cache.keep_evidence(&key, service, k, Some(Stance::Contradict), &contradict);
        Ok(match asked {
            Stance::Support => support,
            Stance::Contradict => contradict,
        })
    }

    fn policies_for(&self, service: &str) -> Result<Vec<ActionPolicy>, KnowledgeError> {
        let Some(mut cache) = self.cache_at_version() else {
            return self.policies_for_now(service);
        };
        if let Some(policies) = cache.policies(service) {
            return Ok(policies);
        }
        let policies = self.policies_for_now(service)?;
        cache.keep_policies(service, &policies);
        Ok(policies)
    }

    fn runbook(&self, id: &str) -> Result<Option<Runbook>, KnowledgeError> {
        self.runbook_on(&self.conn, id)
    }

    fn stats(&self) -> Result<KnowledgeStats, KnowledgeError> {
        let Some(mut cache) = self.cache_at_version() else {
            return self.stats_now();
        };
        if let Some(stats) = cache.stats() {
            return Ok(stats);
        }
        let stats = self.stats_now()?;
        cache.keep_stats(stats);
        Ok(stats)
    }

    fn add_runbook(&mut self, runbook: &Runbook) -> Result<LoadReport, KnowledgeError> {
        self.add_docs(&KnowledgeDocs { runbooks: vec![runbook.clone()], ..KnowledgeDocs::default() })
    }

    fn add_evidence(&mut self, doc: &EvidenceDoc) -> Result<LoadReport, KnowledgeError> {
        self.add_docs(&KnowledgeDocs { evidence: vec![doc.clone()], ..KnowledgeDocs::default() })
    }

    fn add_policy(&mut self, policy: &ActionPolicy) -> Result<LoadReport, KnowledgeError> {
        self.insert_policy(&self.conn, policy)
    }

    /// One transaction: reads the runbook, refuses a missing or already reviewed one, and
    /// updates `reviewed` and the provenance's `reviewed_by` / `recorded_at` together.
    fn mark_reviewed(&mut self, id: &str, reviewer: &str, reviewed_at: &str) -> Result<Runbook, KnowledgeError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err("starting a transaction", e))?;
        let Some(mut r) = self.runbook_on(&tx, id)? else {
            return Err(KnowledgeError::Invalid {
                origin: self.location.clone(),
                field: "runbook".into(),
                message: format!("no runbook {id:?}"),
            });
        };
        if r.reviewed {
            return Err(KnowledgeError::Invalid {
                origin: self.location.clone(),
                field: "runbook".into(),
                message: format!(
                    "runbook {id} is already reviewed (by {})",
                    r.provenance.reviewed_by.as_deref().unwrap_or("its source")
                ),
            });
        }
        r.reviewed = true;
        r.provenance.reviewed_by = Some(reviewer.to_string());
        r.provenance.recorded_at = Some(reviewed_at.to_string());
        let provenance = serde_json::to_string(&r.provenance).map_err(|e| self.err("encoding provenance", e))?;
        tx.execute("UPDATE runbooks SET reviewed = 1, provenance = ?2 WHERE id = ?1", params![id, provenance])
            .map_err(|e| self.err("marking a runbook reviewed", e))?;
        tx.commit().map_err(|e| self.err("committing", e))?;
        Ok(r)
    }

    /// One transaction for the whole stream: a file loads whole or not at all, however large.
    fn load_stream(
        &mut self,
        reader: &mut dyn std::io::Read,
        origin: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(LoadReport, usize), KnowledgeError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err("starting a transaction", e))?;
        let mut total = LoadReport::default();
        let mut read = 0u64;
        let incidents = crate::parse::stream_sample_data(reader, origin, &mut |doc| {
            let report = match &doc {
                crate::parse::Doc::Runbook(r) => self.insert_runbook(&tx, r)?,
                crate::parse::Doc::Evidence(e) => self.insert_evidence(&tx, e)?,
                crate::parse::Doc::Policy(p) => self.insert_policy(&tx, p)?,
            };
            total = sum(total, report);
            read += 1;
            if read.is_multiple_of(crate::STREAM_BATCH as u64) {
                progress(read);
            }
            Ok(())
        })?;
        self.after_write(&tx, total)?;
        tx.commit().map_err(|e| self.err("committing", e))?;
        progress(read);
        Ok((total, incidents))
    }

    /// One transaction: a batch loads whole or not at all.
    fn add_docs(&mut self, docs: &KnowledgeDocs) -> Result<LoadReport, KnowledgeError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err("starting a transaction", e))?;
        let mut total = LoadReport::default();
        for r in &docs.runbooks {
            total = sum(total, self.insert_runbook(&tx, r)?);
        }
        for e in &docs.evidence {
            total = sum(total, self.insert_evidence(&tx, e)?);
        }
        for p in &docs.policies {
            total = sum(total, self.insert_policy(&tx, p)?);
        }
        self.after_write(&tx, total)?;
        tx.commit().map_err(|e| self.err("committing", e))?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_sqlite_has_fts5_and_the_check_says_so() {
        let store = SqliteKnowledgeStore::open_in_memory().expect("in-memory store");
        assert!(store.has_fts5());
    }

    /// A small deterministic corpus over a few services (xorshift, no dependency).
    fn corpus(runbooks: usize, evidence: usize, services: usize) -> KnowledgeDocs {
        const WORDS: &[&str] = &[
            "latency",
            "spike",
            "restart",
            "pods",
            "api",
            "database",
            "connection",
            "pool",
            "saturation",
            "timeout",
            "queue",
            "backlog",
            "worker",
            "scale",
            "throttle",
            "traffic",
            "rollback",
            "memory",
            "leak",
            "cache",
            "restarts",
            "restarted",
            "dns",
            "tls",
            "disk",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let text = |next: &mut dyn FnMut(usize) -> usize, n: usize| {
            (0..n).map(|_| WORDS[next(WORDS.len())]).collect::<Vec<_>>().join(" ")
        };
        let service = |i: usize| if i == 0 { "*".to_string() } else { format!("svc-{i}") };
        let mut docs = KnowledgeDocs::default();
        for i in 0..runbooks {
            let n = 3 + next(20);
            docs.runbooks.push(Runbook {
                id: format!("rb-{:05}", next(100_000) * 10 + i % 10),
                service: service(1 + next(services)),
                title: text(&mut next, 2),
                recommended_action: "restart_api_pods".into(),
                body: text(&mut next, n),
                reviewed: next(10) != 0,
                provenance: Provenance {
                    source: "test".into(),
                    origin: None,
                    reviewed_by: None,
                    recorded_at: None,
                    learned: None,
                },
            });
        }
        docs.runbooks.sort_by(|a, b| a.id.cmp(&b.id));
        docs.runbooks.dedup_by(|a, b| a.id == b.id);
        for i in 0..evidence {
            let n = 3 + next(12);
            docs.evidence.push(EvidenceDoc {
                id: format!("ev-{i:05}"),
                service: service(next(services + 1)),
                stance: if next(2) == 0 { Stance::Support } else { Stance::Contradict },
                text: text(&mut next, n),
            });
        }
        docs
    }

    fn runbook_ids(hits: &[RunbookHit]) -> Vec<(String, u64)> {
        hits.iter().map(|h| (h.runbook.id.clone(), h.score.to_bits())).collect()
    }

    fn evidence_ids(hits: &[EvidenceHit]) -> Vec<(String, u64)> {
        hits.iter().map(|h| (h.doc.id.clone(), h.score.to_bits())).collect()
    }

    const QUERIES: &[&str] =
        &["latency spike restart", "db connection saturation timeout", "restarts", "cache", "", "zzz"];

    /// A small index is merged into one segment by the write that fills it, and searches over
    /// it answer exactly as over the unmerged index (a load across services wrote one segment
    /// per document): same ids, order and score bits.
    #[test]
    fn a_small_index_is_merged_and_answers_the_same() {
        let docs = corpus(300, 200, 12);
        let mut merged = SqliteKnowledgeStore::open_in_memory().unwrap();
        merged.add_docs(&docs).unwrap();
        // The same documents written without the merge.
        let mut unmerged = SqliteKnowledgeStore::open_in_memory().unwrap();
        {
            let tx = unmerged.conn.unchecked_transaction().unwrap();
            for r in &docs.runbooks {
                unmerged.insert_runbook(&tx, r).unwrap();
            }
            for e in &docs.evidence {
                unmerged.insert_evidence(&tx, e).unwrap();
            }
            for p in &docs.policies {
                unmerged.insert_policy(&tx, p).unwrap();
            }
            unmerged.refresh_df(&tx).unwrap();
            tx.commit().unwrap();
        }
        let pages = |s: &SqliteKnowledgeStore, t: &str| -> i64 {
            s.conn.query_row(&format!("SELECT count(*) FROM {t}_fts_data"), [], |r| r.get(0)).unwrap()
        };
        for t in ["runbooks", "evidence"] {
            assert!(pages(&merged, t) < pages(&unmerged, t), "{t}: {} vs {}", pages(&merged, t), pages(&unmerged, t));
        }
        for q in QUERIES {
            for svc in (0..=13).map(|i| if i == 0 { "*".to_string() } else { format!("svc-{i}") }) {
                for k in [1, 5, 100] {
                    let (a, b) = (&mut merged, &mut unmerged);
                    assert_eq!(
                        runbook_ids(&a.search_runbooks(q, &svc, k).unwrap()),
                        runbook_ids(&b.search_runbooks(q, &svc, k).unwrap()),
                        "{q} {svc} {k}"
                    );
                    for stance in [None, Some(Stance::Support), Some(Stance::Contradict)] {
                        assert_eq!(
                            evidence_ids(&a.search_evidence(q, &svc, k, stance).unwrap()),
                            evidence_ids(&b.search_evidence(q, &svc, k, stance).unwrap()),
                            "{q} {svc} {k} {stance:?}"
                        );
                    }
                }
            }
        }
        merged.verify().unwrap();
    }

    /// Searching by the service's rowid range, ranked by `guardrail_bm25` with document counts
    /// from `fts_df`, returns exactly what the schema-1 query (every matching row, `bm25()`,
    /// filtered by service afterwards) returns: same ids, same order, same score bits — also
    /// after single adds and reviews (FTS5 delete markers).
    #[test]
    fn ranged_search_equals_the_unranged_query_to_the_bit() {
        let mut s = SqliteKnowledgeStore::open_in_memory().unwrap();
        assert!(s.df && s.counted && s.bucketed);
        let mut docs = corpus(3000, 1500, 12);
        let late: Vec<Runbook> = docs.runbooks.split_off(2900);
        s.add_docs(&docs).unwrap();
        for mut r in late {
            r.reviewed = false;
            s.add_runbook(&r).unwrap();
            s.mark_reviewed(&r.id, "bob", "2026-01-01T00:00:00Z").unwrap();
        }
        s.verify().unwrap();
        let check = |s: &mut SqliteKnowledgeStore, what: &str| {
            for q in QUERIES {
                for svc in (0..=13).map(|i| if i == 0 { "*".to_string() } else { format!("svc-{i}") }) {
                    for k in [1, 5, 100] {
                        (s.bucketed, s.df) = (true, true);
                        let (r, e) =
                            (s.search_runbooks(q, &svc, k).unwrap(), s.search_evidence(q, &svc, k, None).unwrap());
                        let es = s.search_evidence(q, &svc, k, Some(Stance::Support)).unwrap();
                        (s.bucketed, s.df) = (false, false);
                        let old_r = s.search_runbooks(q, &svc, k).unwrap();
                        assert_eq!(runbook_ids(&r), runbook_ids(&old_r), "{what}: {q} {svc} {k}");
                        let old_e = s.search_evidence(q, &svc, k, None).unwrap();
                        assert_eq!(evidence_ids(&e), evidence_ids(&old_e), "{what}: {q} {svc}");
                        let old = s.search_evidence(q, &svc, k, Some(Stance::Support)).unwrap();
                        assert_eq!(evidence_ids(&es), evidence_ids(&old), "{what}: {q} {svc} support");
                        // svc-13 has no documents (a service nothing was added for).
                        if !q.is_empty() && *q != "zzz" && svc != "*" && svc != "svc-13" && k == 100 {
                            assert!(!r.is_empty() && !e.is_empty(), "{q} {svc}: the corpus is meant to match");
                        }
                    }
                }
            }
            (s.bucketed, s.df) = (true, true);
        };
        check(&mut s, "fts_df current");
        // A stale table (counts of another index state) is not used: still bm25()'s scores.
        s.conn.execute_batch("UPDATE fts_df SET docs = 1; UPDATE fts_df_state SET rows = rows + 1").unwrap();
        check(&mut s, "fts_df stale");
        // And the table is what the current one answers from: wrong counts with a matching
        // state change the scores (so the equality above is not bm25() running anyway).
        s.conn.execute_batch("UPDATE fts_df_state SET rows = rows - 1").unwrap();
        let q = "latency spike restart";
        (s.bucketed, s.df) = (true, true);
        let with_table = runbook_ids(&s.search_runbooks(q, "svc-2", 5).unwrap());
        s.df = false;
        assert_ne!(with_table, runbook_ids(&s.search_runbooks(q, "svc-2", 5).unwrap()));
    }

    /// Repeated searches run their cached statements without compiling them again (without the
    /// planner stability guarantee SQLite recompiled a statement whose plan peeked at a bound
    /// value on every new binding), and plans that ignore the bound values find exactly what
    /// value-dependent plans find: same ids, order and score bits.
    #[test]
    fn searches_are_not_recompiled_and_stable_plans_find_the_same() {
        use rusqlite::StatementStatus::RePrepare;
        use rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG;
        let mut s = SqliteKnowledgeStore::open_in_memory().unwrap();
        assert!(s.df && s.bucketed);
        s.add_docs(&corpus(600, 300, 6)).unwrap();
        let run = |s: &SqliteKnowledgeStore| {
            let mut all = Vec::new();
            for q in QUERIES {
                for svc in ["*", "svc-1", "svc-4", "svc-9"] {
                    for k in [1, 5, 100] {
                        let r = s.search_runbooks(q, svc, k).unwrap();
                        let e = s.search_evidence(q, svc, k, None).unwrap();
                        let es = s.search_evidence(q, svc, k, Some(Stance::Contradict)).unwrap();
                        let bits = |h: &[EvidenceHit]| h.iter().map(|h| h.score.to_bits()).collect::<Vec<_>>();
                        let rbits = r.iter().map(|h| h.score.to_bits()).collect::<Vec<_>>();
                        all.push((runbook_ids(&r), rbits, evidence_ids(&e), bits(&e), evidence_ids(&es)));
                    }
                }
            }
            all
        };
        let stable = run(&s);
        for sql in [SEARCH_RUNBOOKS_DF, SEARCH_EVIDENCE_DF] {
            assert_eq!(s.conn.prepare_cached(sql).unwrap().get_status(RePrepare), 0, "{sql}");
        }
        s.conn.set_db_config(SQLITE_DBCONFIG_ENABLE_QPSG, false).unwrap();
        s.conn.flush_prepared_statement_cache();
        assert_eq!(run(&s), stable);
        // What the setting avoids: without it the statement is compiled again per binding.
        assert!(s.conn.prepare_cached(SEARCH_EVIDENCE_DF).unwrap().get_status(RePrepare) > 0);
    }

    /// `guardrail_bm25` reads `fts_df` through the connection's cached statements (each query
    /// prepared them afresh), also once the store has moved: it is registered with the
    /// connection's address, which the box keeps.
    #[test]
    fn the_rank_reads_fts_df_through_cached_statements_after_a_move() {
        use rusqlite::StatementStatus::Run;
        let mut s = SqliteKnowledgeStore::open_in_memory().unwrap();
        s.add_docs(&corpus(200, 100, 4)).unwrap();
        let q = "latency spike restart";
        let first = s.search_runbooks(q, "svc-2", 5).unwrap();
        assert!(!first.is_empty());
        let moved = [s];
        let s = &moved[0];
        for _ in 0..3 {
            let again = s.search_runbooks(q, "svc-2", 5).unwrap();
            assert_eq!(runbook_ids(&again), runbook_ids(&first));
            let bits = |h: &[RunbookHit]| h.iter().map(|h| h.score.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&again), bits(&first));
        }
        let runs = |sql: &str| s.conn.prepare_cached(sql).unwrap().get_status(Run);
        assert_eq!(runs(crate::fts_rank::DF_STATE), 4, "one state check per query, on one statement");
        assert_eq!(runs(crate::fts_rank::DF_DOCS), 12, "one count per word per query, on one statement");
    }

    /// The contradiction searches of [`answers`]: each found with its support search (one
    /// query for both stances), so a hit of the cache the first time it is asked.
    fn paired() -> u64 {
        (QUERIES.len() * 5 * 3) as u64
    }

    /// Everything a read-only connection reads through its cache, for comparison.
    fn answers(s: &SqliteKnowledgeStore) -> Vec<String> {
        let mut all = Vec::new();
        for q in QUERIES {
            for svc in ["*", "svc-1", "svc-2", "svc-5", "svc-9"] {
                for k in [1, 5, 100] {
                    all.push(format!("{:?}", runbook_ids(&s.search_runbooks(q, svc, k).unwrap())));
                    for stance in [None, Some(Stance::Support), Some(Stance::Contradict)] {
                        all.push(format!("{:?}", evidence_ids(&s.search_evidence(q, svc, k, stance).unwrap())));
                    }
                }
            }
        }
        for svc in ["svc-1", "svc-3"] {
            all.push(format!("{:?}", s.policies_for(svc).unwrap()));
        }
        all.push(format!("{:?}", s.stats().unwrap()));
        all
    }

    /// A read-only connection answers repeated searches from its cache with exactly what a
    /// connection without one answers (ids, order, score bits, policies, counts), and a commit
    /// by another connection — a load, a review — is in its very next answer.
    #[test]
    fn a_read_only_connection_caches_answers_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.db");
        let mut writer = SqliteKnowledgeStore::create(&path).unwrap();
        let mut docs = corpus(600, 300, 6);
        let late: Vec<Runbook> = docs.runbooks.split_off(550);
        docs.policies.push(ActionPolicy {
            id: "pol-1".into(),
            service: "svc-1".into(),
            blocked_actions: vec!["restart_api_pods".into()],
            severities: vec![Severity::High],
            rule: "no restarts at high severity".into(),
        });
        writer.add_docs(&docs).unwrap();
        let reader = SqliteKnowledgeStore::open_read_only(&path).unwrap();
        assert!(writer.cache.is_none() && reader.cache.is_some());
        let fresh = answers(&writer);
        assert_eq!(answers(&reader), fresh);
        assert_eq!(reader.cache_hits(), paired(), "the first pass computes all but the paired answers");
        assert_eq!(answers(&reader), fresh);
        assert_eq!(reader.cache_hits(), fresh.len() as u64 + paired(), "the second pass is all kept answers");

        // Another connection commits: the reader's next answers are the new ones.
        for mut r in late {
            r.reviewed = false;
            writer.add_runbook(&r).unwrap();
            writer.mark_reviewed(&r.id, "bob", "2026-01-01T00:00:00Z").unwrap();
        }
        writer
            .add_evidence(&EvidenceDoc {
                id: "ev-new".into(),
                service: "*".into(),
                stance: Stance::Contradict,
                text: "latency spike restart cache restarts".into(),
            })
            .unwrap();
        writer
            .add_policy(&ActionPolicy {
                id: "pol-2".into(),
                service: "*".into(),
                blocked_actions: vec!["scale_up".into()],
                severities: vec![Severity::Critical],
                rule: "no scaling when critical".into(),
            })
            .unwrap();
        let changed = answers(&writer);
        assert_ne!(changed, fresh, "the writes change some answers");
        assert_eq!(answers(&reader), changed);
        // One more commit that changes nothing a search returns still drops the kept answers.
        let hits = reader.cache_hits();
        writer.conn.execute_batch("CREATE TABLE unrelated (x)").unwrap();
        assert_eq!(answers(&reader), changed);
        assert_eq!(reader.cache_hits(), hits + paired(), "recomputed after the commit");
    }

    /// Both stances from one query per range are, each, exactly what that stance's own search
    /// returns (ids, order, score bits), ranked by `guardrail_bm25` or `bm25()`, by range or over
    /// every rowid, with and without query words, for every service and `k`.
    #[test]
    fn both_stances_from_one_query_are_each_stances_own_search() {
        let mut s = SqliteKnowledgeStore::open_in_memory().unwrap();
        s.add_docs(&corpus(400, 1200, 8)).unwrap();
        let mut compared = 0;
        for (bucketed, df) in [(true, true), (true, false), (false, false)] {
            (s.bucketed, s.df) = (bucketed, df);
            for q in QUERIES {
                for svc in (0..=9).map(|i| if i == 0 { "*".to_string() } else { format!("svc-{i}") }) {
                    for k in [1, 3, 5, 100, 1000] {
                        let (support, contradict) =
                            s.search_evidence_both_now(fts_query(q).as_deref(), &svc, k).unwrap();
                        let own = |stance| evidence_ids(&s.search_evidence_now(q, &svc, k, Some(stance)).unwrap());
                        assert_eq!(evidence_ids(&support), own(Stance::Support), "{q} {svc} {k} {bucketed} {df}");
                        assert_eq!(evidence_ids(&contradict), own(Stance::Contradict), "{q} {svc} {k} {bucketed} {df}");
                        assert!(support.iter().all(|h| h.doc.stance == Stance::Support));
                        assert!(contradict.iter().all(|h| h.doc.stance == Stance::Contradict));
                        compared += usize::from(!support.is_empty() && !contradict.is_empty());
                    }
                }
            }
        }
        assert!(compared > 100, "the corpus matches both stances often: {compared}");
    }

    /// Within a held read (`begin_read`, one request's searches) every answer is of the file as
    /// it was when the read began, without a version check per search; another connection's
    /// commit waits for the read to end, and the next answers after it are the new ones.
    #[test]
    fn a_held_read_answers_from_one_state_and_a_commit_lands_after_it() {
        use rusqlite::StatementStatus::Run;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.db");
        let mut writer = SqliteKnowledgeStore::create(&path).unwrap();
        writer.add_docs(&corpus(300, 150, 6)).unwrap();
        assert!(!writer.begin_read(), "a writable connection keeps no cache and holds no read");
        let reader = SqliteKnowledgeStore::open_read_only(&path).unwrap();
        let checks = |s: &SqliteKnowledgeStore| s.conn.prepare_cached("PRAGMA data_version").unwrap().get_status(Run);
        assert!(reader.begin_read());
        assert!(!reader.begin_read(), "already held");
        let before = answers(&writer);
        assert_eq!(answers(&reader), before);
        assert_eq!(answers(&reader), before);
        // "zzz" is a word neither table holds: inside the held read its 60 searches of a pass
        // (5 services, 3 k, runbooks and 3 evidence stances) are answered from the kept fact,
        // all but the first runbook and the first evidence search, which ask FTS5; `paired`
        // counted 15 of them (the second stance).
        let unheld = 5 * 3 * 4 - 2 - 5 * 3;
        assert_eq!(reader.cache_hits(), before.len() as u64 + paired() + unheld);
        assert_eq!(checks(&reader), 1, "one version check, when the read began");

        // A commit cannot land while the read is held (no busy wait here: refused at once).
        writer.conn.busy_timeout(std::time::Duration::ZERO).unwrap();
        let late = EvidenceDoc {
            id: "ev-late".into(),
            service: "*".into(),
            stance: Stance::Support,
            text: "latency spike restart cache".into(),
        };
        assert!(writer.add_evidence(&late).is_err());
        assert_eq!(answers(&reader), before);
        assert!(reader.end_read());
        assert!(reader.end_read(), "ending it twice is harmless");
        writer.add_evidence(&late).unwrap();
        let after = answers(&writer);
        assert_ne!(after, before);
        assert_eq!(answers(&reader), after, "checked at each search again");
        assert!(reader.begin_read());
        assert_eq!(answers(&reader), after);
        assert!(reader.end_read());
    }

    /// Inside a held read, words the index does not hold are dropped before the search: the
    /// answers are those of the query as given on a connection without a cache (ids, order,
    /// score bits), for queries mixing held and unheld words, words that are only unheld in one
    /// table, non-ASCII words, and queries of unheld words only; and a text that differs from an
    /// earlier one only by unheld words is answered from the kept answer without a search.
    #[test]
    fn words_the_index_does_not_hold_are_dropped_with_the_same_answers() {
        use rusqlite::StatementStatus::Run;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.db");
        let mut writer = SqliteKnowledgeStore::create(&path).unwrap();
        let mut docs = corpus(400, 300, 6);
        // A word only evidence holds, and one only a runbook's title holds.
        docs.evidence[0].text.push_str(" onlyevidence");
        docs.runbooks[0].title.push_str(" onlytitle");
        writer.add_docs(&docs).unwrap();
        let reader = SqliteKnowledgeStore::open_read_only(&path).unwrap();
        let texts: Vec<String> = [
            "latency spike restart",
            "P99 latency jumped from 220ms to 1400ms case 0x1 timeouts, db connection saturation",
            "P99 latency jumped from 220ms to 1400ms case 0x2 timeouts, db connection saturation",
            "zzz qqq 0x3",
            "onlyevidence restarts",
            "onlytitle cache",
            "caf\u{e9} latency na\u{ef}ve restarts",
            "RESTARTS Restarted restarting 17f3",
            "",
        ]
        .iter()
        .map(ToString::to_string)
        .chain((0..70).map(|i| format!("w{i} latency")))
        .collect();
        let all = |s: &SqliteKnowledgeStore| -> Vec<String> {
            let mut out = Vec::new();
            for q in &texts {
                for svc in ["*", "svc-1", "svc-4"] {
                    for k in [1, 5, 100] {
                        out.push(format!("{q} {svc} {k} {:?}", runbook_ids(&s.search_runbooks(q, svc, k).unwrap())));
                        for stance in [None, Some(Stance::Support), Some(Stance::Contradict)] {
                            let hits = s.search_evidence(q, svc, k, stance).unwrap();
                            out.push(format!("{q} {svc} {k} {stance:?} {:?}", evidence_ids(&hits)));
                        }
                    }
                }
            }
            out
        };
        let given = all(&writer);
        assert!(given.iter().filter(|a| !a.ends_with("[]")).count() > 500, "most searches find something");
        assert!(reader.begin_read());
        assert_eq!(all(&reader), given);
        assert_eq!(all(&reader), given, "kept answers");
        assert!(reader.end_read());
        // Outside a held read the query is used as given.
        assert_eq!(all(&reader), given);

        // A unique word costs one question per table, not a search.
        let searches = |s: &SqliteKnowledgeStore| {
            let run = |sql: &str| s.conn.prepare_cached(sql).unwrap().get_status(Run);
            run(SEARCH_RUNBOOKS_DF) + run(SEARCH_EVIDENCE_DF)
        };
        assert!(reader.begin_read());
        let base = "P99 latency jumped from 220ms to 1400ms case 0x1 timeouts, db connection saturation";
        let first = (
            reader.search_runbooks(base, "svc-1", 3).unwrap(),
            reader.search_evidence(base, "svc-1", 3, None).unwrap(),
        );
        let before = searches(&reader);
        for n in 0..20 {
            let q = base.replace("0x1", &format!("{n}x{n}"));
            assert_eq!(runbook_ids(&reader.search_runbooks(&q, "svc-1", 3).unwrap()), runbook_ids(&first.0));
            assert_eq!(evidence_ids(&reader.search_evidence(&q, "svc-1", 3, None).unwrap()), evidence_ids(&first.1));
        }
        assert_eq!(searches(&reader), before, "no search ran again");
        assert!(reader.end_read());
    }

    /// FTS5 is handed the rowid range (its plan string has the rowid bounds) and stays the outer
    /// loop, so it does not score other services' documents; `stats` counts from the index.
    #[test]
    fn fts5_sees_the_rowid_range_and_stats_count_from_the_index() {
        let mut s = SqliteKnowledgeStore::open_in_memory().unwrap();
        s.add_docs(&corpus(500, 10, 4)).unwrap();
        let plan = |sql: &str| -> Vec<String> {
            s.conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params!["x", "s", 5, 1, 2], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let p = plan(SEARCH_RUNBOOKS);
        assert!(p[0].starts_with("SCAN runbooks_fts VIRTUAL TABLE") && p[0].contains("><"), "{p:?}");
        assert_eq!(p[1], "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)", "{p:?}");
        let count = s
            .conn
            .prepare("EXPLAIN QUERY PLAN SELECT count(*) FROM runbooks WHERE reviewed = 1")
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert!(count[0].contains("COVERING INDEX runbooks_reviewed"), "{count:?}");
    }

    /// `create` renumbers a schema-1 file: the same searches give the same results after.
    #[test]
    fn a_schema_1_file_is_renumbered_by_create_with_identical_results() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.db");
        {
            // A schema-1 file: the tables without `services`, rowids in load order.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute_batch("PRAGMA user_version = 1").unwrap();
            let old = SqliteKnowledgeStore {
                conn: Box::new(conn),
                location: "v1".into(),
                bucketed: false,
                df: false,
                counted: false,
                buckets: Default::default(),
                cache: None,
                reading: Default::default(),
            };
            let tx = old.conn.unchecked_transaction().unwrap();
            let docs = corpus(800, 400, 6);
            for r in &docs.runbooks {
                old.insert_runbook(&tx, r).unwrap();
            }
            for e in &docs.evidence {
                old.insert_evidence(&tx, e).unwrap();
            }
            tx.commit().unwrap();
        }
        let v1 = SqliteKnowledgeStore::open_read_only(&path).unwrap();
        assert!(!v1.bucketed);
        let before: Vec<_> = QUERIES
            .iter()
            .map(|q| {
                (
                    runbook_ids(&v1.search_runbooks(q, "svc-2", 10).unwrap()),
                    evidence_ids(&v1.search_evidence(q, "svc-3", 10, None).unwrap()),
                )
            })
            .collect();
        drop(v1);
        SqliteKnowledgeStore::create(&path).unwrap().verify().unwrap();
        let v2 = SqliteKnowledgeStore::open_read_only(&path).unwrap();
        assert!(v2.bucketed);
        let after: Vec<_> = QUERIES
            .iter()
            .map(|q| {
                (
                    runbook_ids(&v2.search_runbooks(q, "svc-2", 10).unwrap()),
                    evidence_ids(&v2.search_evidence(q, "svc-3", 10, None).unwrap()),
                )
            })
            .collect();
        assert_eq!(before, after);
        let min: i64 = v2.conn.query_row("SELECT min(rowid) FROM runbooks", [], |r| r.get(0)).unwrap();
        assert!(min >= 1 << BUCKET_SHIFT, "renumbered: {min}");
    }
}
