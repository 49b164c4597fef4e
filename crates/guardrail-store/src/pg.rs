//! The PostgreSQL backend, for teams whose gates run on many machines.
//!
//! Appends serialise on the server: each runs in a `READ COMMITTED` transaction that first
//! takes `LOCK TABLE chain_head IN EXCLUSIVE MODE` (conflicts with itself, not with plain
//! reads), then reads the head, inserts and moves the anchor. Because the lock comes before the
//! first read, and each READ COMMITTED statement sees everything committed before it started,
//! the head read is always the latest one. The isolation level is set explicitly: under a
//! server default of REPEATABLE READ the snapshot would be taken too early.
//!
//! The lock is on `chain_head` rather than `audit_records` because `LOCK TABLE` in that mode
//! needs UPDATE (or DELETE/TRUNCATE) on the table: an appender must be able to update the
//! anchor anyway, but it never needs to update or delete records. So an append-only role needs
//! only `SELECT, INSERT ON audit_records`, `SELECT, UPDATE ON chain_head` and
//! `SELECT ON guardrail_schema` (plus `USAGE` on the schema). An advisory lock would need no
//! grant at all, but its key is database-wide and shared with every other application.
//!
//! Bodies are stored as `TEXT`, not `jsonb`: jsonb normalises numbers and key order, and the
//! exact text has to come back for the hash to match.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use guardrail_core::audit::{ChainedRecord, GENESIS_HASH, RecordDraft, VerifyReport};
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, IsolationLevel, NoTls, Row, SimpleQueryMessage, SimpleQueryRow};
use tokio_postgres_rustls::MakeRustlsConnect;

use std::sync::Arc;

use crate::outbox::{
    ChannelKind, DueEntry, OUTBOX_COLUMNS, OutboxEntry, OutboxMark, OutboxRouter, OutboxState, OutboxStatus,
    OutboxTarget, Retry,
};
use crate::pg_tls::split_tls_params;

use crate::plan::{ClaimGuard, ClaimKey, History, IndexRow, Indexed, LinkedClaim, LinkedDraft, Outcome, Unit, Work};
use crate::{
    Anchor, AuditStore, BadCell, Cell, Claim, Decoded, ListQuery, SCHEMA_VERSION, StoreError, build_report, check_head,
    decode_row, find_with, prefix_upper_bound, sql_limit,
};

/// Advisory lock key held while creating the schema, so concurrent first connections do not
/// race on `CREATE … IF NOT EXISTS` (which is not safe against concurrent creation).
/// Held only during schema creation, never while appending.
/// The bytes spell "grdschem".
const SCHEMA_LOCK_KEY: i64 = 0x6772_6473_6368_656d;

/// Used when the URL sets no `connect_timeout`: an unreachable server should fail the gate in
/// seconds, not hang it.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const COLUMNS: &str = "seq, kind, recorded_at, body, prev_hash, hash";

/// Version 1 schema. `hash` uses the "C" collation so the prefix range lookup in `find` is a
/// plain byte comparison and can use the unique index.
fn schema_v1() -> String {
    format!(
        r#"
CREATE TABLE IF NOT EXISTS audit_records (
    seq         BIGINT PRIMARY KEY CHECK (seq >= 1),
    kind        TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    body        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT COLLATE "C" NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_records_kind_seq ON audit_records (kind, seq);
CREATE TABLE IF NOT EXISTS chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL,
    claims_seq BIGINT
);
INSERT INTO chain_head (id, seq, hash, claims_seq) VALUES (1, 0, '{GENESIS_HASH}', 0) ON CONFLICT (id) DO NOTHING;
{CLAIMS_SCHEMA}
CREATE TABLE IF NOT EXISTS guardrail_schema (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO guardrail_schema (id, version) VALUES (1, {SCHEMA_VERSION}) ON CONFLICT (id) DO NOTHING;
"#
    )
}

/// The claim index (see [`crate::plan`]): beside the chain, no hash covers it. Created with a
/// new store, and on the first append of this build to an older one (with
/// `chain_head.claims_seq`, NULL until the index is built), under the `chain_head` lock. That
/// needs CREATE on the schema and ownership of `chain_head`; a role without them appends as
/// before the index (claims decided by reading the records of their kind) until someone who
/// may creates it (the owner's next append, or a DBA running this DDL and
/// `ALTER TABLE chain_head ADD COLUMN claims_seq BIGINT`); once it exists an append-only role
/// needs `SELECT, INSERT ON audit_claims`.
const CLAIMS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_claims (
    kind  TEXT NOT NULL,
    claim TEXT NOT NULL,
    seq   BIGINT NOT NULL,
    PRIMARY KEY (kind, claim)
);
CREATE TABLE IF NOT EXISTS audit_claim_kinds (
    kind TEXT PRIMARY KEY
);
";

/// The claim index's mark on an older store's anchor row.
const ADD_CLAIMS_COLUMN: &str = "ALTER TABLE chain_head ADD COLUMN IF NOT EXISTS claims_seq BIGINT";

/// Whether the claim index's table and `chain_head` column exist.
const CLAIMS_SCHEMA_PRESENT: &str = "SELECT to_regclass('audit_claims') IS NOT NULL \
     AND to_regclass('audit_claim_kinds') IS NOT NULL AND EXISTS (SELECT 1 FROM \
     pg_attribute WHERE attrelid = to_regclass('chain_head') AND attname = 'claims_seq' AND NOT attisdropped)";

/// Records indexed per read while the claim index catches up with the chain.
const INDEX_CHUNK: i64 = 512;

/// The outbox side table (see [`crate::outbox`]), created by the first append that has rows for
/// it, under the `chain_head` lock (so appenders never race on it). An append-only role needs
/// `SELECT, INSERT, UPDATE ON outbox` and `USAGE` on its sequence once it exists (a DBA can
/// create it in advance with this DDL).
const OUTBOX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id              BIGSERIAL PRIMARY KEY,
    record_seq      BIGINT NOT NULL,
    channel         TEXT NOT NULL,
    ordering_key    TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_ms      BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    lease_until_ms  BIGINT,
    last_error      TEXT,
    reference       TEXT,
    delivered_ms    BIGINT,
    UNIQUE (record_seq, channel)
);
CREATE INDEX IF NOT EXISTS outbox_state_next ON outbox (state, next_attempt_ms);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (channel, ordering_key, id);
";

/// An audit store in a PostgreSQL database (one connection; TLS as its `sslmode` says).
pub struct PostgresStore {
    client: Client,
    /// Redacted URL for error messages.
    url: String,
    /// Redacted URL including the schema, usable as a store spec.
    described: String,
    schema: Option<String>,
    router: Option<Arc<dyn OutboxRouter>>,
    /// The outbox table is known to exist (checked once per connection).
    outbox_ready: bool,
    /// The append's statements, once prepared.
    statements: Option<AppendStatements>,
    /// The incremental reads' statements (`records_after`, `hash_at`), once prepared.
    reads: Option<ReadStatements>,
    /// The claim index's table and `chain_head.claims_seq` were checked for (and created when
    /// missing and allowed).
    claims_ready: bool,
    /// This connection keeps the claim index. `false` when it is missing and this role may not
    /// create it (a least-privilege appender on a store an older build created): claims are then
    /// decided by reading the records of their kind, as before the index, and the index's mark
    /// stays behind, so an index created later is brought up to date by its next appender.
    claims_index: bool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("url", &self.described).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`, or a key=value string) and creates
    /// the schema if missing. A `schema=NAME` query parameter puts the tables in that schema
    /// (created if missing); otherwise they go in the first schema of the server's search_path.
    /// TLS follows libpq's `sslmode` (default `prefer`) and `sslrootcert` parameters, in the URL
    /// or the key=value form (see the `pg_tls` module).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let (clean, schema) = split_schema_param(url)?;
        Self::connect_inner(&clean, schema, redact_url(url))
    }

    /// Like [`connect`](Self::connect), with the tables in `schema` (created if missing, and
    /// set as the connection's `search_path`). Tests use this to get an isolated store.
    /// `schema` must be a plain identifier (letters, digits, `_`); it is used verbatim, quoted.
    pub fn connect_with_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        let (clean, from_url) = split_schema_param(url)?;
        if from_url.as_deref().is_some_and(|s| s != schema) {
            return Err(StoreError::InvalidSpec {
                spec: redact_url(url),
                reason: format!("the URL names schema {from_url:?} but {schema:?} was asked for"),
            });
        }
        let sep = if clean.contains('?') { '&' } else { '?' };
        let described = redact_url(&format!("{clean}{sep}schema={schema}"));
        Self::connect_inner(&clean, Some(schema.to_string()), described)
    }

    /// The schema the tables live in, when one was chosen.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    fn connect_inner(url: &str, schema: Option<String>, described: String) -> Result<Self, StoreError> {
        let redacted = redact_url(url);
        if let Some(s) = &schema {
            validate_schema_name(s).map_err(|problem| StoreError::SchemaName { spec: described.clone(), problem })?;
        }
        let err = |source| StoreError::Postgres { url: redacted.clone(), source };
        let invalid = |problem| StoreError::Tls { spec: described.clone(), problem };
        let (url, tls) = split_tls_params(url).map_err(invalid)?;
        let mut config = Config::from_str(&url).map_err(err)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        config.ssl_mode(tls.wire_mode());
        if only_unix_sockets(&config) {
            // As libpq: TLS is never used over a Unix socket (the server refuses it there).
            config.ssl_mode(postgres::config::SslMode::Disable);
        }
        let mut client = match tls.client_config().map_err(invalid)? {
            Some(tls_config) => config.connect(MakeRustlsConnect::new(tls_config)),
            None => config.connect(NoTls),
        }
        .map_err(err)?;
        // NOTICEs ("relation already exists, skipping") are noise for a CLI.
        client.batch_execute("SET client_min_messages = warning").map_err(err)?;
        // A gate record's body (~14 KB) is compressed when stored out of line; pglz, the
        // server's default, was half of the server's CPU at a few hundred records a second,
        // lz4 a fraction of it. Only where the server has lz4 (PostgreSQL 14+ built with it;
        // otherwise the default stays): the stored text and so every hash are the same.
        let _ = client.batch_execute("SET default_toast_compression = 'lz4'");
        if let Some(s) = &schema {
            // Session-wide, so every later statement (including in transactions) resolves our
            // unqualified table names in this schema. Setting it before the schema exists is
            // fine: search_path is resolved at each lookup.
            client.batch_execute(&format!("SET search_path TO {}", quote_ident(s))).map_err(err)?;
        }
        let mut store = PostgresStore {
            client,
            url: redacted,
            described,
            schema,
            router: None,
            outbox_ready: false,
            statements: None,
            reads: None,
            claims_ready: false,
            claims_index: true,
        };
        store.ensure_schema()?;
        Ok(store)
    }

    fn err(&self) -> impl Fn(postgres::Error) -> StoreError + use<> {
        let url = self.url.clone();
        move |source| StoreError::Postgres { url: url.clone(), source }
    }

    fn ensure_schema(&mut self) -> Result<(), StoreError> {
        let err = self.err();
        let location = self.described.clone();
        // Fast path without DDL or locks, so a role with only read/write grants can use a
        // store a DBA created.
        if let Some(v) = stored_version(&mut self.client).map_err(&err)? {
            return check_version(&location, v);
        }
        // A session-level lock taken outside the DDL transaction, not pg_advisory_xact_lock:
        // a transaction started *after* waiting for the lock is guaranteed to see the catalog
        // as the previous holder committed it. Inside one transaction, an advisory lock does
        // not refresh the backend's catalog caches, so the re-check below could miss the
        // tables just created and run the DDL again, which locks audit_records before
        // chain_head (the reverse of append's order) and deadlocks with running appenders.
        self.client.execute("SELECT pg_advisory_lock($1)", &[&SCHEMA_LOCK_KEY]).map_err(&err)?;
        let created = self.create_schema_locked(&location);
        let unlocked = self.client.execute("SELECT pg_advisory_unlock($1)", &[&SCHEMA_LOCK_KEY]).map_err(&err);
        created?;
        unlocked.map(|_| ())
    }

    /// Creates the schema unless whoever held the lock before us already did.
    fn create_schema_locked(&mut self, location: &str) -> Result<(), StoreError> {
        let err = self.err();
        let mut tx = self.client.transaction().map_err(&err)?;
        if let Some(v) = stored_version(&mut tx).map_err(&err)? {
            tx.commit().map_err(&err)?;
            return check_version(location, v);
        }
        if let Some(s) = &self.schema {
            // CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database, so only ask for it
            // when the schema is really missing.
            let present = tx.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[s]).map_err(&err)?;
            if present.is_none() {
                tx.batch_execute(&format!("CREATE SCHEMA {}", quote_ident(s))).map_err(&err)?;
            }
        }
        tx.batch_execute(&schema_v1()).map_err(&err)?;
        let version = stored_version(&mut tx).map_err(&err)?;
        tx.commit().map_err(&err)?;
        check_version(location, version.unwrap_or(0))
    }

    fn query_strict(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<ChainedRecord>, StoreError> {
        let err = self.err();
        let rows = self.client.query(sql, params).map_err(&err)?;
        rows.iter().map(|r| decode(r).map_err(&err)?.strict()).collect()
    }

    fn by_prefix(&mut self, prefix: &str) -> Result<Vec<ChainedRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_records WHERE hash >= $1 AND hash < $2 ORDER BY seq LIMIT 2");
        self.query_strict(&sql, &[&prefix, &prefix_upper_bound(prefix)])
    }
}

/// The schema version recorded in the store; `None` when the store has not been created yet.
fn stored_version(c: &mut impl GenericClient) -> Result<Option<i32>, postgres::Error> {
    let exists: bool = c.query_one("SELECT to_regclass('guardrail_schema') IS NOT NULL", &[])?.try_get(0)?;
    if !exists {
        return Ok(None);
    }
    c.query_opt("SELECT version FROM guardrail_schema WHERE id = 1", &[])?.map(|r| r.try_get(0)).transpose()
}

/// Whether the claim index's table and `chain_head` column exist.
fn claims_schema_present(c: &mut impl GenericClient) -> Result<bool, postgres::Error> {
    c.query_one(CLAIMS_SCHEMA_PRESENT, &[])?.try_get(0)
}

fn check_version(location: &str, version: i32) -> Result<(), StoreError> {
    let reason = match i64::from(version) {
        v if v == SCHEMA_VERSION => return Ok(()),
        v if v > SCHEMA_VERSION => {
            format!(
                "schema version {v} was written by a newer Guardrail; this build understands up to {SCHEMA_VERSION}"
            )
        }
        v => format!("unknown schema version {v}"),
    };
    Err(StoreError::Schema { location: location.to_string(), reason })
}

fn cell(row: &Row, idx: usize) -> Result<Cell, postgres::Error> {
    Ok(row.try_get::<_, Option<String>>(idx)?.ok_or(BadCell::Null))
}

fn decode(row: &Row) -> Result<Decoded, postgres::Error> {
    let seq: i64 = row.try_get(0)?;
    Ok(decode_row(seq, cell(row, 1)?, cell(row, 2)?, cell(row, 3)?, cell(row, 4)?, cell(row, 5)?))
}

fn anchor_from(row: Option<Row>) -> Result<Option<Anchor>, postgres::Error> {
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

impl PostgresStore {
    /// One append transaction for `work` ([`crate::plan`]), committed once under the head
    /// lock: the units sealed in order, their records, outbox rows and claim-index rows written
    /// in one statement, claims decided under the lock by the index. On any error the
    /// transaction is rolled back (nothing of it is in the chain).
    pub(crate) fn append_tx(&mut self, work: Vec<Work>) -> Result<Vec<Outcome>, StoreError> {
        if !self.claims_ready {
            self.ensure_claims_schema()?;
        }
        let result = self.append_in_tx(work);
        if result.is_err() {
            // Best effort: a broken connection has no transaction left to roll back.
            let _ = self.client.batch_execute("ROLLBACK");
        }
        result
    }

    /// The claim index's table and column, created if missing (an existing store, first append
    /// of this build), under the `chain_head` lock in a transaction of their own, so appenders
    /// of this build never race on it. Checked once per connection; the index itself is built
    /// by the next append ([`Self::catch_up`]).
    fn ensure_claims_schema(&mut self) -> Result<(), StoreError> {
        let err = self.err();
        if !claims_schema_present(&mut self.client).map_err(&err)? {
            let mut tx = self.client.transaction().map_err(&err)?;
            tx.batch_execute("SET LOCAL lock_timeout = '30s'; LOCK TABLE chain_head IN EXCLUSIVE MODE")
                .map_err(&err)?;
            if !claims_schema_present(&mut tx).map_err(&err)? {
                let created = tx.batch_execute(CLAIMS_SCHEMA).and_then(|()| tx.batch_execute(ADD_CLAIMS_COLUMN));
                if let Err(e) = &created
                    && e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
                {
                    // Not this role's to create: decide claims as before the index (dropping
                    // the transaction rolls it back).
                    drop(tx);
                    self.claims_index = false;
                    self.claims_ready = true;
                    return Ok(());
                }
                let created = created.map_err(|e| StoreError::Schema {
                    location: self.described.clone(),
                    reason: format!(
                        "this version keeps a claim index beside the chain and could not create it ({}); have \
                             the store's owner run: {} {ADD_CLAIMS_COLUMN}; and grant SELECT, INSERT ON audit_claims \
                             to the appending role",
                        guardrail_core::error_text::error_chain(&e),
                        CLAIMS_SCHEMA.split_whitespace().collect::<Vec<_>>().join(" ")
                    ),
                });
                created?;
            }
            tx.commit().map_err(&err)?;
        }
        self.claims_ready = true;
        Ok(())
    }

    /// The statement of an append, prepared once per connection (the search path is fixed
    /// for the connection's life, so the names it resolves do not move).
    fn statements(&mut self) -> Result<AppendStatements, StoreError> {
        if let Some(s) = &self.statements {
            return Ok(s.clone());
        }
        let err = self.err();
        if !self.claims_index {
            let insert = self
                .client
                .prepare(
                    "WITH ins AS (INSERT INTO audit_records (seq, kind, recorded_at, body, prev_hash, hash) \
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
                     $6::text[])) UPDATE chain_head SET seq = $7, hash = $8 WHERE id = 1",
                )
                .map_err(&err)?;
            let history = self.client.prepare(HISTORY).map_err(&err)?;
            let s = AppendStatements { insert, upsert: None, lookup: None, history };
            self.statements = Some(s.clone());
            return Ok(s);
        }
        // The claim rows are deduplicated before (first per key), so `DO NOTHING` only ever
        // skips a key indexed by an earlier transaction (a plain record repeating a claim).
        let insert = self
            .client
            .prepare(
                "WITH ins AS (INSERT INTO audit_records (seq, kind, recorded_at, body, prev_hash, hash) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])), \
                 cl AS (INSERT INTO audit_claims (kind, claim, seq) \
                 SELECT * FROM unnest($9::text[], $10::text[], $11::bigint[]) ON CONFLICT DO NOTHING \
                 RETURNING kind, claim), \
                 hd AS (UPDATE chain_head SET seq = $7, hash = $8, claims_seq = $7 WHERE id = 1) \
                 SELECT kind, claim FROM cl",
            )
            .map_err(&err)?;
        let upsert = self
            .client
            .prepare(
                "INSERT INTO audit_claims (kind, claim, seq) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) \
                 ON CONFLICT (kind, claim) DO UPDATE SET seq = EXCLUDED.seq WHERE EXCLUDED.seq < audit_claims.seq",
            )
            .map_err(&err)?;
        let lookup = self.client.prepare(CLAIM_LOOKUP).map_err(&err)?;
        let history = self.client.prepare(HISTORY).map_err(&err)?;
        let s = AppendStatements { insert, upsert: Some(upsert), lookup: Some(lookup), history };
        self.statements = Some(s.clone());
        Ok(s)
    }

    /// Indexes the records of the indexed kinds that the index does not cover yet (after
    /// `indexed`, up to `last`: those an older build appended), inside the append's
    /// transaction. Returns whether there were any to look at.
    fn catch_up(&mut self, st: &AppendStatements, indexed: Option<i64>, last: i64) -> Result<bool, StoreError> {
        let after = indexed.unwrap_or(0);
        if after > last {
            return Err(StoreError::Corrupt {
                seq: after,
                reason: format!(
                    "the claim index covers records up to {after} but the chain ends at {last}: records were \
                     removed; refusing to append (run `guardrail audit verify`)"
                ),
            });
        }
        if after == last {
            return Ok(false);
        }
        let err = self.err();
        let kinds: Vec<String> = self
            .client
            .query("SELECT kind FROM audit_claim_kinds", &[])
            .map_err(&err)?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(&err)?;
        for kind in &kinds {
            self.index_kind(st, kind, after, last)?;
        }
        Ok(true)
    }

    /// Indexes the records of `kind` after `after` up to `last` (by the (kind, seq) index: only
    /// that kind's records are read).
    fn index_kind(&mut self, st: &AppendStatements, kind: &str, mut after: i64, last: i64) -> Result<(), StoreError> {
        let err = self.err();
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_records WHERE kind = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
        );
        loop {
            let rows = self.client.query(&sql, &[&kind, &after, &last, &INDEX_CHUNK]).map_err(&err)?;
            let decoded = rows.iter().map(decode).collect::<Result<Vec<_>, _>>().map_err(&err)?;
            let Some(end) = decoded.last().map(|d| d.record.seq) else { break };
            after = end;
            let mut index = Vec::new();
            crate::plan::index_rows(decoded, &mut index);
            self.upsert_claims(st, &crate::plan::first_per_key(index))?;
        }
        Ok(())
    }

    /// Inserts claim-index rows (first per key); a key already indexed keeps the earlier of its
    /// two records.
    fn upsert_claims(&mut self, st: &AppendStatements, rows: &[IndexRow]) -> Result<(), StoreError> {
        let Some(upsert) = &st.upsert else { return Ok(()) };
        if rows.is_empty() {
            return Ok(());
        }
        let kinds: Vec<&str> = rows.iter().map(|(k, _, _)| k.as_str()).collect();
        let claims: Vec<&str> = rows.iter().map(|(_, c, _)| c.as_str()).collect();
        let seqs: Vec<i64> = rows.iter().map(|(_, _, s)| *s).collect();
        self.client.execute(upsert, &[&kinds, &claims, &seqs]).map_err(self.err())?;
        Ok(())
    }

    /// Makes the index hold `kind`'s claims up to `last` (the first claim of a kind this store
    /// is asked: its records are read once, as every claim of it used to read them). Returns
    /// whether it had to.
    ///
    /// `listed` is what `audit_claim_kinds` held when the transaction took the chain lock (read
    /// with the head, in the same round trip), and what this transaction has listed since.
    fn ensure_kind(
        &mut self,
        st: &AppendStatements,
        kind: &str,
        last: i64,
        listed: &mut HashSet<String>,
    ) -> Result<bool, StoreError> {
        if listed.contains(kind) {
            return Ok(false);
        }
        let err = self.err();
        self.index_kind(st, kind, 0, last)?;
        self.client.execute("INSERT INTO audit_claim_kinds (kind) VALUES ($1)", &[&kind]).map_err(&err)?;
        listed.insert(kind.to_string());
        Ok(true)
    }

    /// What the claim index holds for each of `keys` (its holder, or a damage marker of its
    /// kind; the one earlier in the chain when both): one round trip for all of them.
    fn lookup_claims(
        &mut self,
        st: &AppendStatements,
        keys: &[ClaimKey],
    ) -> Result<HashMap<ClaimKey, Indexed>, StoreError> {
        let mut found: HashMap<ClaimKey, Indexed> = HashMap::new();
        if keys.is_empty() {
            return Ok(found);
        }
        let err = self.err();
        let kinds: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let claims: Vec<&str> = keys.iter().map(|(_, c)| c.as_str()).collect();
        let Some(lookup) = &st.lookup else {
            return self.scan_claims(keys);
        };
        let rows = self.client.query(lookup, &[&kinds, &claims]).map_err(&err)?;
        let mut add = |key: ClaimKey, entry: Indexed| {
            let entry = match found.remove(&key) {
                Some(f) => f.earliest(entry),
                None => entry,
            };
            found.insert(key, entry);
        };
        for row in &rows {
            let kind: String = row.try_get(0).map_err(&err)?;
            let claim: String = row.try_get(1).map_err(&err)?;
            let seq: i64 = row.try_get(2).map_err(&err)?;
            let record = match row.try_get::<_, Option<i64>>(3).map_err(&err)? {
                Some(rseq) => Some(decode_row(
                    rseq,
                    cell(row, 4).map_err(&err)?,
                    cell(row, 5).map_err(&err)?,
                    cell(row, 6).map_err(&err)?,
                    cell(row, 7).map_err(&err)?,
                    cell(row, 8).map_err(&err)?,
                )),
                None => None,
            };
            if claim.is_empty() {
                // A damage marker concerns every asked key of its kind.
                for key in keys.iter().filter(|(k, _)| *k == kind) {
                    add(key.clone(), Indexed::from_row(&kind, "", seq, None));
                }
            } else {
                add((kind.clone(), claim.clone()), Indexed::from_row(&kind, &claim, seq, record));
            }
        }
        Ok(found)
    }

    /// Without the index: each key decided by reading every record of its kind, in seq order,
    /// up to the first that holds it or is damaged (what a claim did before the index).
    fn scan_claims(&mut self, keys: &[ClaimKey]) -> Result<HashMap<ClaimKey, Indexed>, StoreError> {
        let err = self.err();
        let mut found = HashMap::new();
        for (kind, claim) in keys {
            let rows = self
                .client
                .query(&format!("SELECT {COLUMNS} FROM audit_records WHERE kind = $1 ORDER BY seq"), &[kind])
                .map_err(&err)?;
            for row in &rows {
                let d = decode(row).map_err(&err)?;
                let seq = d.record.seq;
                let entry = match d.strict() {
                    Err(StoreError::Corrupt { seq, reason }) => Some(Indexed::Broken { seq, reason }),
                    Err(other) => Some(Indexed::Broken { seq, reason: other.to_string() }),
                    Ok(rec) if crate::plan::record_claim(&rec.body) == Some(claim.as_str()) => Some(Indexed::Held(rec)),
                    Ok(_) => None,
                };
                if let Some(entry) = entry {
                    found.insert((kind.clone(), claim.clone()), entry);
                    break;
                }
            }
        }
        Ok(found)
    }

    fn append_in_tx(&mut self, work: Vec<Work>) -> Result<Vec<Outcome>, StoreError> {
        let err = self.err();
        let st = self.statements()?;
        // One round trip to open the transaction, take the lock and read the anchor, the last
        // record and how far the claim index goes (simple query protocol: several statements,
        // no parameters). READ COMMITTED explicitly (see the module documentation);
        // synchronous_commit: durability must not depend on the server's default;
        // lock_timeout: wait for other appenders about as long as SQLite's busy timeout, then
        // fail loudly. Under the lock, each later statement (the claim lookup below too) sees
        // everything committed before it.
        let head_sql = if self.claims_index { HEAD_UNDER_LOCK } else { HEAD_UNDER_LOCK_NO_INDEX };
        let messages = self.client.simple_query(head_sql).map_err(&err)?;
        // The head's row, then (with the index) one row per kind the index lists.
        let mut rows = messages.into_iter().filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        });
        let Some(row) = rows.next() else {
            return Err(StoreError::Corrupt { seq: 0, reason: "the chain head query returned no row".into() });
        };
        // Each listed kind with the seq of its damage marker, if it has one.
        let mut listed: HashSet<String> = HashSet::new();
        let mut markers: HashMap<String, i64> = HashMap::new();
        for r in rows {
            let Some(kind) = r.get(0) else { continue };
            if let Some(seq) = r.get(1) {
                let seq = seq.parse::<i64>().map_err(|_| StoreError::Corrupt {
                    seq: 0,
                    reason: format!("the claim index's damage marker of {kind:?} has the seq {seq:?}"),
                })?;
                markers.insert(kind.to_string(), seq);
            }
            listed.insert(kind.to_string());
        }
        let (anchor, max_seq, seq_of_hash, claims_seq) = head_of(&row)?;
        let last = match crate::anchored_tail(anchor.as_ref(), max_seq, seq_of_hash) {
            Some(tail) => tail,
            None => {
                // The anchor does not name the last record: read it, to say how they disagree.
                let rows = self
                    .client
                    .query(&format!("SELECT {COLUMNS} FROM audit_records ORDER BY seq DESC LIMIT 1"), &[])
                    .map_err(&err)?;
                let last = rows.first().map(decode).transpose().map_err(&err)?.map(Decoded::strict).transpose()?;
                check_head(anchor.as_ref(), last.as_ref())?;
                last
            }
        };
        let last_seq = last.as_ref().map_or(0, |r| r.seq);
        let mut caught_up = self.claims_index && self.catch_up(&st, claims_seq, last_seq)?;
        // The claim units' keys in one round trip; a linked claim's key (known only once its
        // first record is sealed) in one of its own. A kind asked for the first time is indexed
        // first.
        let keys = crate::plan::claim_keys(&work);
        // Guarded claims: the records their guards decide over, and their claim kinds' damage
        // markers — as read with the head, unless this transaction indexed records (a kind
        // listed now, or records an older build appended): then asked as the blank key, which
        // no claim can be, with the other keys.
        let span = crate::plan::guard_span(&work);
        let guard_kinds: Vec<String> = span.as_ref().map(|s| s.claim_kinds.clone()).unwrap_or_default();
        let mut asked = keys.clone();
        let mut known_markers = !caught_up;
        if self.claims_index {
            let mut kinds: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
            kinds.extend(guard_kinds.iter().map(String::as_str));
            kinds.sort_unstable();
            kinds.dedup();
            for kind in kinds {
                if self.ensure_kind(&st, kind, last_seq, &mut listed)? {
                    caught_up = true;
                    known_markers = false;
                }
            }
            if !known_markers {
                asked.extend(guard_kinds.iter().map(|k| (k.clone(), String::new())));
            }
        }
        let history = match &span {
            Some(span) if span.after < last_seq => {
                let rows = self.client.query(&st.history, &[&span.after, &last_seq, &span.kinds]).map_err(&err)?;
                History::of(rows.iter().map(decode).collect::<Result<Vec<_>, _>>().map_err(&err)?)
            }
            _ => History::default(),
        };
        let mut prefetched = self.lookup_claims(&st, &asked)?;
        if self.claims_index && known_markers {
            for kind in &guard_kinds {
                if let Some(seq) = markers.get(kind) {
                    prefetched.insert((kind.clone(), String::new()), Indexed::from_row(kind, "", *seq, None));
                }
            }
        }
        let described = self.described.clone();
        let claims_index = self.claims_index;
        // A guarded claim's key is known only once its first record is sealed (it names it): a
        // new record's id, which no earlier record can hold unless it was forged to. Rather than
        // a round trip per such key under the lock, it is taken as free here and checked by the
        // insert itself (`ON CONFLICT DO NOTHING` returns the index rows it wrote): a key found
        // held there fails the whole transaction (nothing appended). A kind with a damage
        // marker is looked up as before.
        let mut deferred: Vec<ClaimKey> = Vec::new();
        let mut lookup = |key: &ClaimKey| -> Result<Option<Indexed>, StoreError> {
            if keys.contains(key) {
                return Ok(prefetched.remove(key));
            }
            let marker = (key.0.clone(), String::new());
            if claims_index && guard_kinds.contains(&key.0) && !prefetched.contains_key(&marker) {
                deferred.push(key.clone());
                return Ok(None);
            }
            if claims_index {
                caught_up |= self.ensure_kind(&st, &key.0, last_seq, &mut listed)?;
            }
            Ok(self.lookup_claims(&st, std::slice::from_ref(key))?.remove(key))
        };
        let plan = crate::plan::plan(last.as_ref(), work, &described, &mut lookup, &history)?;
        let claims = &plan.claims;
        let claim_kinds: Vec<&str> = claims.iter().map(|(k, _, _)| k.as_str()).collect();
        let claim_keys: Vec<&str> = claims.iter().map(|(_, c, _)| c.as_str()).collect();
        let claim_seqs: Vec<i64> = claims.iter().map(|(_, _, s)| *s).collect();
        let Some(head) = plan.records.last().map(|s| &s.record) else {
            if caught_up {
                self.client
                    .execute("UPDATE chain_head SET claims_seq = $1 WHERE id = 1", &[&last_seq])
                    .map_err(&err)?;
                self.client.batch_execute("COMMIT").map_err(&err)?;
            } else {
                self.client.batch_execute("ROLLBACK").map_err(&err)?;
            }
            return Ok(plan.finish());
        };
        // One statement for the whole batch (arrays unnested in order), its claim-index rows
        // and the anchor's move: one round trip however many records the group commit carries.
        let seqs: Vec<i64> = plan.records.iter().map(|s| s.record.seq).collect();
        let kinds: Vec<&str> = plan.records.iter().map(|s| s.record.kind.as_str()).collect();
        let ats: Vec<&str> = plan.records.iter().map(|s| s.record.recorded_at.as_str()).collect();
        let bodies: Vec<&str> = plan.records.iter().map(|s| s.body.as_str()).collect();
        let prevs: Vec<&str> = plan.records.iter().map(|s| s.record.prev_hash.as_str()).collect();
        let hashes: Vec<&str> = plan.records.iter().map(|s| s.record.hash.as_str()).collect();
        let mut args: Vec<&(dyn ToSql + Sync)> =
            vec![&seqs, &kinds, &ats, &bodies, &prevs, &hashes, &head.seq, &head.hash];
        if st.upsert.is_some() {
            args.extend([&claim_kinds as &(dyn ToSql + Sync), &claim_keys, &claim_seqs]);
        }
        if st.upsert.is_some() {
            let written = self.client.query(&st.insert, &args).map_err(&err)?;
            let written = written
                .iter()
                .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, String>(1)?)))
                .collect::<Result<HashSet<ClaimKey>, postgres::Error>>()
                .map_err(&err)?;
            if let Some(key) = deferred
                .iter()
                .find(|k| claims.iter().any(|(kind, c, _)| *kind == k.0 && *c == k.1) && !written.contains(*k))
            {
                return Err(StoreError::InvalidRecord(format!(
                    "claim {:?} of kind {:?} is already held by an earlier record; nothing of this group commit \
                     was appended",
                    key.1, key.0
                )));
            }
        } else {
            self.client.execute(&st.insert, &args).map_err(&err)?;
        }
        let outbox: Vec<(i64, &OutboxTarget, i64)> = plan
            .records
            .iter()
            .flat_map(|s| {
                let at = crate::outbox::recorded_ms(&s.record.recorded_at);
                s.targets.iter().map(move |t| (s.record.seq, t, at))
            })
            .collect();
        if !outbox.is_empty() {
            // Same transaction as the records: all are committed, or none.
            if !self.outbox_ready {
                self.client.batch_execute(OUTBOX_SCHEMA).map_err(&err)?;
            }
            for (seq, t, at) in &outbox {
                self.client
                    .execute(
                        "INSERT INTO outbox (record_seq, channel, ordering_key, state, attempts, created_ms, \
                         next_attempt_ms) VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
                        &[seq, &t.channel.as_str(), &t.ordering_key, at],
                    )
                    .map_err(&err)?;
            }
        }
        // Returns once the commit record is flushed (synchronous_commit = on).
        self.client.batch_execute("COMMIT").map_err(&err)?;
        if !outbox.is_empty() {
            self.outbox_ready = true;
        }
        Ok(plan.finish())
    }
}

/// The claim index's entries for a batch's keys ($1 kinds, $2 claims, pairwise), with the
/// records they name, and the damage markers (`claim = ''`) of their kinds. Two index-driven
/// halves (each key looked up by the primary key; the markers by kind and '') rather than one
/// `WHERE (kind, claim) IN (…) OR …`: the planner cannot use an index for that OR and scanned
/// the whole index table under the chain lock, at every group commit with a claim — a cost
/// that grew with every execution ever claimed (one row each).
const CLAIM_LOOKUP: &str = "SELECT c.kind, c.claim, c.seq, r.seq, r.kind, r.recorded_at, r.body, r.prev_hash, r.hash \
     FROM unnest($1::text[], $2::text[]) AS k(kind, claim) \
     JOIN audit_claims c ON c.kind = k.kind AND c.claim = k.claim \
     LEFT JOIN audit_records r ON r.seq = c.seq \
     UNION ALL \
     SELECT c.kind, c.claim, c.seq, NULL, NULL, NULL, NULL, NULL, NULL \
     FROM audit_claims c WHERE c.kind = ANY($1::text[]) AND c.claim = ''";

/// Records after a seq, in chain order, at most [`AFTER_CHUNK`] per statement (a literal, so
/// even a generic plan sees it). Without the limit, a store whose statistics are stale or
/// missing (autovacuum off, or not yet run on a table that grew fast) estimates `seq > $1` as a
/// third of the table and plans a (parallel) scan and a sort: ~15 ms at 30,000 records for a
/// read that returns a handful, twice per approval. With it, the primary key's order is the
/// cheapest plan at any table size.
const RECORDS_AFTER: &str =
    "SELECT seq, kind, recorded_at, body, prev_hash, hash FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT 1024";

/// [`RECORDS_AFTER`]'s limit.
const AFTER_CHUNK: usize = 1024;

/// The statements of the server's incremental reads, prepared once per connection (a read is
/// then one round trip, not a parse and an execute).
#[derive(Clone)]
struct ReadStatements {
    /// [`RECORDS_AFTER`].
    after: postgres::Statement,
    /// A record's stored hash by seq.
    hash_at: postgres::Statement,
}

impl PostgresStore {
    fn read_statements(&mut self) -> Result<ReadStatements, StoreError> {
        if let Some(s) = &self.reads {
            return Ok(s.clone());
        }
        let err = self.err();
        let after = self.client.prepare(RECORDS_AFTER).map_err(&err)?;
        let hash_at = self.client.prepare("SELECT hash FROM audit_records WHERE seq = $1").map_err(&err)?;
        let s = ReadStatements { after, hash_at };
        self.reads = Some(s.clone());
        Ok(s)
    }
}

/// The prepared statement of an append ([`PostgresStore::statements`]).
#[derive(Clone)]
struct AppendStatements {
    /// The batch's records, their claim-index rows and the anchor's move.
    insert: postgres::Statement,
    /// Claim-index rows inserted, a key already indexed keeping the earlier of its records
    /// (indexing a kind, or records an older build appended); `None` without the index.
    upsert: Option<postgres::Statement>,
    /// The claim index's entries for a batch's claim keys, with the records they name; `None`
    /// without the index.
    lookup: Option<postgres::Statement>,
    /// [`HISTORY`].
    history: postgres::Statement,
}

/// The records of some kinds ($3) after a seq ($1) up to the head ($2), for guarded claims
/// ([`crate::plan::History`]): a range on both sides, so even without statistics it is planned
/// on an index, not as a scan of the table.
const HISTORY: &str = "SELECT seq, kind, recorded_at, body, prev_hash, hash FROM audit_records \
     WHERE seq > $1 AND seq <= $2 AND kind = ANY($3::text[]) ORDER BY seq";

/// Opens an append's transaction, takes the chain lock and reads the anchor (`h.*`, NULL when
/// the row is missing), the highest seq stored and the seq of the record with the anchor's hash
/// (both by index: the last record's body, megabytes for a large gate decision, is not sent;
/// see [`crate::anchored_tail`]) and the claim index's mark, then the kinds the index lists with
/// their damage markers (a subquery per kind, so the primary key finds them: no claim asks
/// whether its kind is indexed, nor a guarded claim for its kind's marker, by a round trip of
/// its own): one round trip.
const HEAD_UNDER_LOCK: &str = "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = on; \
     SET LOCAL lock_timeout = '30s'; LOCK TABLE chain_head IN EXCLUSIVE MODE; \
     SELECT h.seq, h.hash, (SELECT max(seq) FROM audit_records), \
     (SELECT seq FROM audit_records WHERE hash = h.hash), h.claims_seq \
     FROM (SELECT 1) AS one LEFT JOIN chain_head h ON h.id = 1; \
     SELECT k.kind, (SELECT c.seq FROM audit_claims c WHERE c.kind = k.kind AND c.claim = '') \
     FROM audit_claim_kinds k";

/// [`HEAD_UNDER_LOCK`] on a store without the claim index (`NULL` for its mark).
const HEAD_UNDER_LOCK_NO_INDEX: &str = "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = on; \
     SET LOCAL lock_timeout = '30s'; LOCK TABLE chain_head IN EXCLUSIVE MODE; \
     SELECT h.seq, h.hash, (SELECT max(seq) FROM audit_records), \
     (SELECT seq FROM audit_records WHERE hash = h.hash), NULL::bigint \
     FROM (SELECT 1) AS one LEFT JOIN chain_head h ON h.id = 1";

/// The anchor, the highest seq, the seq of the anchor's hash and how far the claim index goes,
/// from [`HEAD_UNDER_LOCK`]'s row (text values).
type Head = (Option<Anchor>, Option<i64>, Option<i64>, Option<i64>);

fn head_of(row: &SimpleQueryRow) -> Result<Head, StoreError> {
    let text = |i: usize| row.get(i).map(str::to_string);
    let int = |i: usize| -> Result<Option<i64>, StoreError> {
        row.get(i)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| StoreError::Corrupt { seq: 0, reason: format!("the chain head's seq {v:?}") })
            })
            .transpose()
    };
    let anchor = int(0)?.map(|seq| (seq, text(1).unwrap_or_default()));
    Ok((anchor, int(2)?, int(3)?, int(4)?))
}

impl PostgresStore {
    /// One unit in a transaction of its own, routed by this store's router.
    fn append_one(&mut self, unit: Unit) -> Result<Outcome, StoreError> {
        crate::single(self.append_tx(vec![Work { unit, router: self.router.clone() }])?)
    }
}

impl AuditStore for PostgresStore {
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

    fn get(&mut self, seq: i64) -> Result<Option<ChainedRecord>, StoreError> {
        Ok(self.query_strict(&format!("SELECT {COLUMNS} FROM audit_records WHERE seq = $1"), &[&seq])?.pop())
    }

    fn hash_at(&mut self, seq: i64) -> Result<Option<String>, StoreError> {
        let err = self.err();
        let st = self.read_statements()?;
        let row = self.client.query_opt(&st.hash_at, &[&seq]).map_err(&err)?;
        row.map(|r| r.try_get::<_, String>(0)).transpose().map_err(&err)
    }

    fn find(&mut self, id_or_seq: &str) -> Result<Option<ChainedRecord>, StoreError> {
        find_with(self, id_or_seq, |s, seq| s.get(seq), |s, p| s.by_prefix(p))
    }

    fn list(&mut self, query: &ListQuery) -> Result<Vec<ChainedRecord>, StoreError> {
        let limit = sql_limit(query.limit);
        let mut sql = format!("SELECT {COLUMNS} FROM audit_records WHERE TRUE");
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(before) = &query.before_seq {
            args.push(before);
            sql.push_str(&format!(" AND seq < ${}", args.len()));
        }
        if let Some(kind) = &query.kind {
            args.push(kind);
            sql.push_str(&format!(" AND kind = ${}", args.len()));
        }
        args.push(&limit);
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", args.len()));
        self.query_strict(&sql, &args)
    }

    fn all(&mut self) -> Result<Vec<ChainedRecord>, StoreError> {
        self.query_strict(&format!("SELECT {COLUMNS} FROM audit_records ORDER BY seq"), &[])
    }

    fn records_after(&mut self, after: i64) -> Result<Vec<ChainedRecord>, StoreError> {
        let err = self.err();
        let st = self.read_statements()?;
        let mut out = Vec::new();
        let mut from = after;
        // Chunk after chunk, each continuing where the last ended: the chain only grows at its
        // end (seqs are given under the chain lock and committed in order), so the chunks read
        // one run of records with no gap, as one statement would.
        loop {
            let rows = self.client.query(&st.after, &[&from]).map_err(&err)?;
            let n = rows.len();
            for row in &rows {
                out.push(decode(row).map_err(&err)?.strict()?);
            }
            match out.last() {
                Some(last) if n == AFTER_CHUNK => from = last.seq,
                _ => return Ok(out),
            }
        }
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
            "SELECT {OUTBOX_COLUMNS} FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_ms <= $1 \
             AND (o.lease_until_ms IS NULL OR o.lease_until_ms <= $1) \
             AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.channel = o.channel AND p.ordering_key = o.ordering_key \
                             AND p.id < o.id AND p.state <> 'delivered') \
             ORDER BY o.id LIMIT $2"
        );
        let entries = self.outbox_query(&sql, &[&now_ms, &limit])?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // The records in one query (a batch of the audit mirror is hundreds of rows: one round
        // trip, not one per row).
        let seqs: Vec<i64> = entries.iter().map(|e| e.record_seq).collect();
        let mut records: std::collections::BTreeMap<i64, ChainedRecord> = self
            .query_strict(&format!("SELECT {COLUMNS} FROM audit_records WHERE seq = ANY($1)"), &[&seqs])?
            .into_iter()
            .map(|r| (r.seq, r))
            .collect();
        // Rows of one record (one per channel) share it: cloned for all but its last row.
        let mut uses: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
        for s in &seqs {
            *uses.entry(*s).or_default() += 1;
        }
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let left = uses.entry(entry.record_seq).or_default();
            *left = left.saturating_sub(1);
            let record =
                if *left > 0 { records.get(&entry.record_seq).cloned() } else { records.remove(&entry.record_seq) };
            let record = record.ok_or_else(|| StoreError::Corrupt {
                seq: entry.record_seq,
                reason: format!("outbox row {} describes a record that is not in the chain", entry.id),
            })?;
            out.push(DueEntry { entry, record });
        }
        Ok(out)
    }

    fn outbox_lease(&mut self, id: i64, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        // READ COMMITTED re-checks the WHERE clause on the row after waiting for a concurrent
        // update of it, so of two deliverers exactly one sees its update count as 1.
        let n = self.outbox_update(
            "UPDATE outbox SET lease_until_ms = $3 WHERE id = $1 AND state = 'pending' \
             AND (lease_until_ms IS NULL OR lease_until_ms <= $2)",
            &[&id, &now_ms, &until_ms],
        )?;
        Ok(n == 1)
    }

    fn outbox_mark_delivered(&mut self, id: i64, reference: Option<&str>, now_ms: i64) -> Result<(), StoreError> {
        self.outbox_update(
            "UPDATE outbox SET state = 'delivered', reference = $2, delivered_ms = $3, lease_until_ms = NULL, \
             attempts = attempts + 1, last_error = NULL WHERE id = $1",
            &[&id, &reference, &now_ms],
        )?;
        Ok(())
    }

    fn outbox_mark_failed(&mut self, id: i64, attempts: u32, retry: Retry, error: &str) -> Result<(), StoreError> {
        let (state, next) = crate::outbox::failed_columns(&retry);
        self.outbox_update(PG_MARK_FAILED, &[&id, &state.as_str(), &i64::from(attempts), &next, &error])?;
        Ok(())
    }

    fn outbox_lease_many(&mut self, ids: &[i64], now_ms: i64, until_ms: i64) -> Result<Vec<i64>, StoreError> {
        if ids.is_empty() || !self.has_outbox()? {
            return Ok(Vec::new());
        }
        let err = self.err();
        // One statement (one round trip, one commit). Under READ COMMITTED a row another
        // deliverer updated meanwhile is re-checked against the WHERE clause after its commit,
        // so each row goes to exactly one of two concurrent batches.
        let rows = self
            .client
            .query(
                "UPDATE outbox SET lease_until_ms = $3 WHERE id = ANY($1) AND state = 'pending' \
                 AND (lease_until_ms IS NULL OR lease_until_ms <= $2) RETURNING id",
                &[&ids, &now_ms, &until_ms],
            )
            .map_err(&err)?;
        let mut leased = rows.iter().map(|r| r.try_get::<_, i64>(0)).collect::<Result<Vec<_>, _>>().map_err(&err)?;
        leased.sort_unstable();
        Ok(leased)
    }

    fn outbox_mark_many(&mut self, marks: &[OutboxMark]) -> Result<(), StoreError> {
        if marks.is_empty() || !self.has_outbox()? {
            return Ok(());
        }
        let err = self.err();
        let (mut ids, mut refs, mut times) = (Vec::new(), Vec::new(), Vec::new());
        let mut failed = Vec::new();
        for m in marks {
            match m {
                OutboxMark::Delivered { id, reference, now_ms } => {
                    ids.push(*id);
                    refs.push(reference.as_deref());
                    times.push(*now_ms);
                }
                OutboxMark::Failed { .. } => failed.push(m),
            }
        }
        // One transaction: the delivered rows in one statement (the common case: a whole
        // batch taken), the failed ones each in their own (rarer, and each has its own error).
        let mut tx = self.client.transaction().map_err(&err)?;
        if !ids.is_empty() {
            tx.execute(
                "UPDATE outbox o SET state = 'delivered', reference = v.reference, delivered_ms = v.at, \
                 lease_until_ms = NULL, attempts = o.attempts + 1, last_error = NULL \
                 FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS v(id, reference, at) WHERE o.id = v.id",
                &[&ids, &refs, &times],
            )
            .map_err(&err)?;
        }
        for m in failed {
            if let OutboxMark::Failed { id, attempts, retry, error } = m {
                let (state, next) = crate::outbox::failed_columns(retry);
                tx.execute(PG_MARK_FAILED, &[id, &state.as_str(), &i64::from(*attempts), &next, error])
                    .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)?;
        Ok(())
    }

    fn outbox_retry_failed(&mut self, now_ms: i64) -> Result<u64, StoreError> {
        self.outbox_update(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_ms = $1, lease_until_ms = NULL \
             WHERE state = 'failed'",
            &[&now_ms],
        )
    }

    fn outbox_status(&mut self) -> Result<OutboxStatus, StoreError> {
        if !self.has_outbox()? {
            return Ok(OutboxStatus::default());
        }
        let err = self.err();
        let rows = self
            .client
            .query("SELECT state, count(*), min(created_ms) FROM outbox GROUP BY state", &[])
            .map_err(&err)?;
        let mut status = OutboxStatus::default();
        for row in rows {
            let state: String = row.try_get(0).map_err(&err)?;
            let n: i64 = row.try_get(1).map_err(&err)?;
            let oldest: Option<i64> = row.try_get(2).map_err(&err)?;
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
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE ($1::BIGINT IS NULL OR record_seq = $1) \
             AND ($2::TEXT IS NULL OR state = $2) ORDER BY id DESC LIMIT $3"
        );
        self.outbox_query(&sql, &[&record_seq, &state, &limit])
    }

    fn outbox_prune_delivered(&mut self, delivered_before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM outbox WHERE id IN ({})",
            crate::outbox::PRUNABLE.replace("{cutoff}", "$1").replace("{limit}", "$2")
        );
        self.outbox_update(&sql, &[&delivered_before_ms, &sql_limit(limit)])
    }

    fn outbox_reference(&mut self, channel: ChannelKind, ordering_key: &str) -> Result<Option<String>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE channel = $1 AND ordering_key = $2 AND state = 'delivered' \
             AND reference IS NOT NULL ORDER BY id LIMIT 1"
        );
        Ok(self.outbox_query(&sql, &[&channel.as_str(), &ordering_key])?.pop().and_then(|e| e.reference))
    }
}

/// Records a failed attempt ($1 id, $2 state, $3 attempts, $4 next attempt or NULL, $5 error).
const PG_MARK_FAILED: &str = "UPDATE outbox SET state = $2, attempts = $3, \
     next_attempt_ms = coalesce($4, next_attempt_ms), last_error = $5, lease_until_ms = NULL WHERE id = $1";

fn outbox_row(row: &Row) -> Result<Result<OutboxEntry, StoreError>, postgres::Error> {
    Ok(crate::outbox::entry_from(
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
        row.try_get(8)?,
        row.try_get(9)?,
        row.try_get(10)?,
    ))
}

impl PostgresStore {
    /// Whether the outbox table exists (created by the first routed append). Reads on a store
    /// without it see an empty outbox.
    fn has_outbox(&mut self) -> Result<bool, StoreError> {
        if !self.outbox_ready {
            let err = self.err();
            let row = self.client.query_one("SELECT to_regclass('outbox') IS NOT NULL", &[]).map_err(&err)?;
            self.outbox_ready = row.try_get(0).map_err(&err)?;
        }
        Ok(self.outbox_ready)
    }

    fn outbox_query(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<OutboxEntry>, StoreError> {
        if !self.has_outbox()? {
            return Ok(Vec::new());
        }
        let err = self.err();
        let rows = self.client.query(sql, args).map_err(&err)?;
        rows.iter().map(|r| outbox_row(r).map_err(&err)?).collect()
    }

    fn outbox_update(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        if !self.has_outbox()? {
            return Ok(0);
        }
        let err = self.err();
        self.client.execute(sql, args).map_err(&err)
    }
}

impl PostgresStore {
    /// Every row and the head anchor, from one snapshot.
    fn rows_and_anchor(&mut self) -> Result<(Vec<Decoded>, Option<Anchor>), StoreError> {
        let err = self.err();
        // One snapshot for the rows and the anchor, so a concurrent append cannot look like
        // tampering.
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(&err)?;
        let rows = tx.query(&format!("SELECT {COLUMNS} FROM audit_records ORDER BY seq"), &[]).map_err(&err)?;
        let decoded = rows.iter().map(decode).collect::<Result<Vec<_>, _>>().map_err(&err)?;
        let anchor = anchor_from(tx.query_opt("SELECT seq, hash FROM chain_head WHERE id = 1", &[]).map_err(&err)?)
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok((decoded, anchor))
    }
}

/// True when every host of `config` is a Unix socket directory.
fn only_unix_sockets(config: &Config) -> bool {
    #[cfg(unix)]
    let unix = |h: &postgres::config::Host| matches!(h, postgres::config::Host::Unix(_));
    #[cfg(not(unix))]
    let unix = |_: &postgres::config::Host| false;
    !config.get_hosts().is_empty() && config.get_hosts().iter().all(unix)
}

/// `"name"` with embedded quotes doubled (names are validated first; this is belt and braces).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A schema name that is not a plain PostgreSQL identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema name {name:?} must be 1-63 characters: a letter or `_`, then letters, digits or `_`")]
pub struct SchemaNameError {
    /// The name given.
    pub name: String,
}

fn validate_schema_name(name: &str) -> Result<(), SchemaNameError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && name.len() <= 63 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(SchemaNameError { name: name.to_string() })
    }
}

/// Removes our `schema=NAME` query parameter (the postgres client rejects unknown ones) and
/// returns it separately.
fn split_schema_param(url: &str) -> Result<(String, Option<String>), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    if !url.contains("://") {
        return Ok((url.to_string(), None));
    }
    let mut schema = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("schema", value)) => {
                if schema.replace(value.to_string()).is_some() {
                    return Err(StoreError::InvalidSpec {
                        spec: redact_url(url),
                        reason: "`schema` is given more than once".into(),
                    });
                }
            }
            _ => kept.push(pair),
        }
    }
    let clean = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((clean, schema))
}

/// A connection string with any password replaced by `***`: the `user:password@` part of a
/// URL, a `password=` query parameter, or a `password=` key in the key=value form.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        // The last `@` before the query ends the user info (a password may contain `@` or `/`).
        let before_query = match before_query.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***@{host}"),
                None => format!("{userinfo}@{host}"),
            },
            None => before_query.to_string(),
        };
        let query = query.map(|q| {
            q.split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => pair.to_string(),
                })
                .collect::<Vec<_>>()
                .join("&")
        });
        match query {
            Some(q) => format!("{scheme}://{before_query}?{q}"),
            None => format!("{scheme}://{before_query}"),
        }
    } else {
        redact_key_value(url)
    }
}

/// Redacts `password=…` in the libpq key=value form (values may be single-quoted, with `\'`).
fn redact_key_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = find_password_key(rest) {
        let (head, tail) = rest.split_at(pos);
        out.push_str(head);
        let after_key = &tail["password".len()..];
        let trimmed = after_key.trim_start();
        let Some(value) = trimmed.strip_prefix('=') else {
            out.push_str("password");
            rest = after_key;
            continue;
        };
        out.push_str("password=***");
        let value = value.trim_start();
        rest = if let Some(quoted) = value.strip_prefix('\'') {
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '\'' {
                    end = i + 1;
                    break;
                }
            }
            &quoted[end..]
        } else {
            let end = value.find(char::is_whitespace).unwrap_or(value.len());
            &value[end..]
        };
    }
    out.push_str(rest);
    out
}

/// Position of a `password` key: at the start or after whitespace.
fn find_password_key(s: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find("password") {
        let at = from + i;
        if at == 0 || s[..at].ends_with(char::is_whitespace) {
            return Some(at);
        }
        from = at + "password".len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:s3cr@t@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact_url("postgresql://u@db/x"), "postgresql://u@db/x");
        assert_eq!(
            redact_url("postgres://db/x?user=u&password=p&schema=s"),
            "postgres://db/x?user=u&password=***&schema=s"
        );
        assert_eq!(redact_url("postgres://u:p/q@db/x"), "postgres://u:***@db/x");
        assert_eq!(redact_url("host=db password=secret user=u"), "host=db password=*** user=u");
        assert_eq!(redact_url("host=db password = 'se cr\\'et' user=u"), "host=db password=*** user=u");
        assert_eq!(redact_url("host=db user=u"), "host=db user=u");
    }

    #[test]
    fn schema_param_is_split_off() {
        let (u, s) = split_schema_param("postgres://h/db?schema=abc&connect_timeout=3").unwrap();
        assert_eq!((u.as_str(), s.as_deref()), ("postgres://h/db?connect_timeout=3", Some("abc")));
        let (u, s) = split_schema_param("postgres://h/db?schema=abc").unwrap();
        assert_eq!((u.as_str(), s.as_deref()), ("postgres://h/db", Some("abc")));
        assert!(split_schema_param("postgres://h/db?schema=a&schema=b").is_err());
        assert_eq!(split_schema_param("postgres://h/db").unwrap().1, None);
    }

    #[test]
    fn schema_names() {
        assert!(validate_schema_name("gr_test_1").is_ok());
        assert!(validate_schema_name("1abc").is_err());
        assert!(validate_schema_name("a\"b").is_err());
        assert!(validate_schema_name("").is_err());
        assert!(validate_schema_name(&"a".repeat(64)).is_err());
    }
}
