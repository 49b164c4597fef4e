//! The SQLite FTS5 backend.
//!
//! Each kind has a plain table (keyword fields, the primary key on `id`) and an external-content
//! FTS5 table over its full-text fields, kept in step by triggers. The tokenizer is
//! `porter unicode61`: case- and accent-insensitive words with English stemming, so "restarts"
//! finds "restart" as Elasticsearch's standard analysers would come close to. Ranking is FTS5's
//! `bm25()`, with the runbook title weighted ×2 like the original's `title^2`.
//!
//! Queries are never passed to FTS5 as syntax: the text is split into words, each word is
//! quoted, and the words are OR-ed. Incident text cannot inject FTS5 operators (`NEAR`, `*`,
//! column filters) or SQL.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use guardrail_core::remediation::{ActionPolicy, Severity, Stance};

use crate::{
    EvidenceDoc, EvidenceHit, KnowledgeDocs, KnowledgeError, KnowledgeStats, KnowledgeStore, LoadReport, Provenance,
    Runbook, RunbookHit, sum,
};

/// Schema version in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

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

const TABLES: &[&str] = &["runbooks", "runbooks_fts", "evidence", "evidence_fts", "policies", "policies_fts"];

/// The FTS5 query for free text: every word quoted, OR-ed; `None` when there is no word.
pub fn fts_query(text: &str) -> Option<String> {
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
    // Words hold only letters and digits, so quoting cannot be escaped.
    (!words.is_empty()).then(|| words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" OR "))
}

/// A knowledge store in one SQLite file.
pub struct SqliteKnowledgeStore {
    conn: Connection,
    location: String,
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
        let store = SqliteKnowledgeStore { conn, location };
        store.check_schema()?;
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
        let store = SqliteKnowledgeStore { conn, location };
        store.init_schema()?;
        Ok(store)
    }

    /// A fresh in-memory knowledge base (tests, one-shot runs).
    pub fn open_in_memory() -> Result<SqliteKnowledgeStore, KnowledgeError> {
        let conn = Connection::open_in_memory()
            .map_err(|e| KnowledgeError::Index { location: ":memory:".into(), message: e.to_string() })?;
        let store = SqliteKnowledgeStore { conn, location: ":memory:".into() };
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

    fn init_schema(&self) -> Result<(), KnowledgeError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err("reading the schema version", e))?;
        if version != 0 && version != SCHEMA_VERSION {
            return Err(self.err("schema", format!("version {version}, this Guardrail reads {SCHEMA_VERSION}")));
        }
        self.conn.execute_batch(SCHEMA).map_err(|e| {
            // Asked of SQLite, not read from the error's text (a missing module is a plain
            // SQLITE_ERROR).
            if self.has_fts5() {
                self.err("creating the schema", e)
            } else {
                self.err("creating the FTS5 index (is SQLite built with FTS5?)", e)
            }
        })?;
        self.conn
            .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(|e| self.err("setting the schema version", e))?;
        Ok(())
    }

    fn check_schema(&self) -> Result<(), KnowledgeError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err("reading the schema version", e))?;
        if version != SCHEMA_VERSION {
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
        match TABLES.iter().find(|t| !names.iter().any(|n| n == *t)) {
            Some(t) => Err(self.err("schema", format!("table {t} is missing"))),
            None => Ok(()),
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

    fn insert_runbook(&self, conn: &Connection, r: &Runbook) -> Result<LoadReport, KnowledgeError> {
        let provenance = serde_json::to_string(&r.provenance).map_err(|e| self.err("encoding provenance", e))?;
        if let Some(existing) = self.runbook_on(conn, &r.id)? {
            return if &existing == r { Ok(unchanged()) } else { Err(conflict("runbook", &r.id)) };
        }
        conn.execute(
            "INSERT INTO runbooks (id, service, title, recommended_action, body, reviewed, provenance)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![r.id, r.service, r.title, r.recommended_action, r.body, r.reviewed, provenance],
        )
        .map_err(|e| self.err("adding a runbook", e))?;
        Ok(added())
    }

    fn insert_evidence(&self, conn: &Connection, d: &EvidenceDoc) -> Result<LoadReport, KnowledgeError> {
        let existing = conn
            .query_row("SELECT id, service, stance, text FROM evidence WHERE id = ?1", [&d.id], |row| {
                Ok((row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, String>(3)?))
            })
            .optional()
            .map_err(|e| self.err("reading evidence", e))?;
        if let Some((service, stance, text)) = existing {
            let same = service == d.service && stance == d.stance.as_str() && text == d.text;
            return if same { Ok(unchanged()) } else { Err(conflict("evidence", &d.id)) };
        }
        conn.execute(
            "INSERT INTO evidence (id, service, stance, text) VALUES (?1, ?2, ?3, ?4)",
            params![d.id, d.service, d.stance.as_str(), d.text],
        )
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
            .query_row(
                "SELECT id, service, title, recommended_action, body, reviewed, provenance FROM runbooks WHERE id = ?1",
                [id],
                runbook_row,
            )
            .optional()
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

impl KnowledgeStore for SqliteKnowledgeStore {
    fn search_runbooks(&self, query: &str, service: &str, k: usize) -> Result<Vec<RunbookHit>, KnowledgeError> {
        let mut out = Vec::new();
        let rows: Vec<(RunbookRow, f64)> = match fts_query(query) {
            Some(q) => {
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT r.id, r.service, r.title, r.recommended_action, r.body, r.reviewed, r.provenance,
                                bm25(runbooks_fts, 2.0, 1.0) AS rank
                         FROM runbooks_fts JOIN runbooks r ON r.rowid = runbooks_fts.rowid
                         WHERE runbooks_fts MATCH ?1 AND r.service = ?2 AND r.reviewed = 1
                         ORDER BY rank, r.id LIMIT ?3",
                    )
                    .map_err(|e| self.err("searching runbooks", e))?;
                stmt.query_map(params![q, service, bounded(k)], |row| Ok((runbook_row(row)?, -row.get::<_, f64>(7)?)))
                    .and_then(|rows| rows.collect())
                    .map_err(|e| self.err("searching runbooks", e))?
            }
            None => {
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT id, service, title, recommended_action, body, reviewed, provenance FROM runbooks
                         WHERE service = ?1 AND reviewed = 1 ORDER BY id LIMIT ?2",
                    )
                    .map_err(|e| self.err("listing runbooks", e))?;
                stmt.query_map(params![service, bounded(k)], |row| Ok((runbook_row(row)?, 0.0)))
                    .and_then(|rows| rows.collect())
                    .map_err(|e| self.err("listing runbooks", e))?
            }
        };
        for ((r, p), score) in rows {
            out.push(RunbookHit { runbook: self.finish_runbook(r, &p)?, score });
        }
        Ok(out)
    }

    fn search_evidence(
        &self,
        query: &str,
        service: &str,
        k: usize,
        stance: Option<Stance>,
    ) -> Result<Vec<EvidenceHit>, KnowledgeError> {
        let stance = stance.map(Stance::as_str);
        let row_of = |row: &rusqlite::Row<'_>, score: f64| -> rusqlite::Result<(String, String, String, String, f64)> {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, score))
        };
        let rows: Vec<(String, String, String, String, f64)> = match fts_query(query) {
            Some(q) => {
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT e.id, e.service, e.stance, e.text, bm25(evidence_fts) AS rank
                         FROM evidence_fts JOIN evidence e ON e.rowid = evidence_fts.rowid
                         WHERE evidence_fts MATCH ?1 AND (?2 = '*' OR e.service = ?2 OR e.service = '*')
                           AND (?4 IS NULL OR e.stance = ?4)
                         ORDER BY rank, e.id LIMIT ?3",
                    )
                    .map_err(|e| self.err("searching evidence", e))?;
                stmt.query_map(params![q, service, bounded(k), stance], |row| {
                    let rank: f64 = row.get(4)?;
                    row_of(row, -rank)
                })
                .and_then(|rows| rows.collect())
                .map_err(|e| self.err("searching evidence", e))?
            }
            None => {
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT id, service, stance, text FROM evidence
                         WHERE (?1 = '*' OR service = ?1 OR service = '*') AND (?3 IS NULL OR stance = ?3)
                         ORDER BY id LIMIT ?2",
                    )
                    .map_err(|e| self.err("listing evidence", e))?;
                stmt.query_map(params![service, bounded(k), stance], |row| row_of(row, 0.0))
                    .and_then(|rows| rows.collect())
                    .map_err(|e| self.err("listing evidence", e))?
            }
        };
        rows.into_iter()
            .map(|(id, service, stance, text, score)| {
                let stance = Stance::parse(&stance)
                    .ok_or_else(|| self.err(&format!("evidence {id}"), format!("corrupt stance \"{stance}\"")))?;
                Ok(EvidenceHit { doc: EvidenceDoc { id, service, stance, text }, score })
            })
            .collect()
    }

    fn policies_for(&self, service: &str) -> Result<Vec<ActionPolicy>, KnowledgeError> {
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

    fn runbook(&self, id: &str) -> Result<Option<Runbook>, KnowledgeError> {
        self.runbook_on(&self.conn, id)
    }

    fn stats(&self) -> Result<KnowledgeStats, KnowledgeError> {
        let count = |sql: &str| -> Result<u64, KnowledgeError> {
            let n: i64 = self.conn.query_row(sql, [], |r| r.get(0)).map_err(|e| self.err("counting documents", e))?;
            Ok(n.max(0) as u64)
        };
        Ok(KnowledgeStats {
            runbooks_reviewed: count("SELECT count(*) FROM runbooks WHERE reviewed = 1")?,
            runbooks_unreviewed: count("SELECT count(*) FROM runbooks WHERE reviewed = 0")?,
            evidence: count("SELECT count(*) FROM evidence")?,
            policies: count("SELECT count(*) FROM policies")?,
        })
    }

    fn add_runbook(&mut self, runbook: &Runbook) -> Result<LoadReport, KnowledgeError> {
        self.insert_runbook(&self.conn, runbook)
    }

    fn add_evidence(&mut self, doc: &EvidenceDoc) -> Result<LoadReport, KnowledgeError> {
        self.insert_evidence(&self.conn, doc)
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
}
