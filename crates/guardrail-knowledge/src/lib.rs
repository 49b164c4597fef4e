//! The remediation governor's knowledge: runbooks, evidence documents and action policies.
//!
//! [`KnowledgeStore`] is what the governor's tools call; it only retrieves. The default
//! backend, [`SqliteKnowledgeStore`], keeps everything in one SQLite file (e.g.
//! `.guardrail/knowledge.db`, the caller chooses) with FTS5 full-text indexes ranked by BM25.
//! SQLite FTS5 rather than tantivy: it comes with `rusqlite`'s bundled SQLite that the audit
//! store already builds, where tantivy costs about two minutes and 1 GB of RAM to compile on
//! CI's two cores, and the corpus (hundreds of runbooks, not millions of log lines) does not
//! need more. [`ElasticKnowledgeStore`] implements the same trait over Elasticsearch's REST API
//! (`elastic.rs`), for a knowledge base that already lives in a cluster.
//!
//! Field semantics follow the original's Elasticsearch mappings
//! (`mappings/*.mapping.json`): `id`, `service`, `recommended_action`, `stance`,
//! `blocked_actions`, `severities` are keywords (stored as written, matched exactly, never
//! tokenised); `title`, `body`, `text`, `rule` are full text. Searches filter on the keyword
//! `service` (the original's term filters on dynamically mapped text fields never matched a
//! hyphenated service, weakness 17): runbooks of exactly the incident's service; evidence and
//! policies of that service or `*`.
//!
//! Runbooks carry `reviewed` and [`Provenance`]. [`KnowledgeStore::search_runbooks`] returns
//! reviewed runbooks only, so a learned runbook that nobody has reviewed can never be planned
//! from (the original indexed model output as a trusted runbook, weakness 2).
//!
//! Inputs: [`parse::parse_sample_data`] reads the original's `data/sample_data.json` shape
//! (JSON or YAML); [`parse::parse_runbook_file`] reads runbooks a user adds as YAML, JSON or
//! Markdown with front matter. Every error names the file and the field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use guardrail_core::remediation::{ActionPolicy, Incident, Severity, Stance};

pub mod elastic;
mod fts_rank;
pub mod parse;
mod search_cache;
mod sqlite;
pub mod yaml;

pub use elastic::{ElasticAuth, ElasticConfig, ElasticKnowledgeStore};
pub use sqlite::SqliteKnowledgeStore;

/// Where a runbook came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `sample_data`, `file`, `agent_learning`, …
    pub source: String,
    /// The file it was read from, or the incident it was learned from.
    pub origin: Option<String>,
    /// Who reviewed it, when someone did.
    pub reviewed_by: Option<String>,
    /// When it was recorded (RFC 3339, chosen by the caller; nothing here reads a clock).
    pub recorded_at: Option<String>,
    /// For a runbook learned from a resolved incident: where and from whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<LearnedFrom>,
}

/// The provenance of a learned runbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedFrom {
    /// The incident it was learned from.
    pub incident_id: String,
    /// The audit record of the resolution (`SEQ-HASHPREFIX`).
    pub audit_record: String,
    /// Who resolved the incident and wrote the summary.
    pub learned_by: String,
}

/// A runbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runbook {
    /// Identifier (keyword).
    pub id: String,
    /// Service (keyword); never `*`: runbooks are per service.
    pub service: String,
    /// Title (full text, weighted ×2 as in the original's MCP search).
    pub title: String,
    /// The action it recommends (keyword), as written.
    pub recommended_action: String,
    /// Body (full text).
    pub body: String,
    /// Only reviewed runbooks are ever returned to planners.
    pub reviewed: bool,
    /// Where it came from.
    pub provenance: Provenance,
}

/// An evidence document: a past observation for or against an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceDoc {
    /// Identifier (keyword).
    pub id: String,
    /// Service (keyword), or `*`.
    pub service: String,
    /// Recorded stance (keyword).
    pub stance: Stance,
    /// Text (full text).
    pub text: String,
}

/// A runbook search hit; higher scores rank first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunbookHit {
    /// The runbook.
    pub runbook: Runbook,
    /// BM25 score (negated SQLite `bm25()`, so higher is better); 0 for an empty query.
    pub score: f64,
}

/// An evidence search hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceHit {
    /// The document.
    pub doc: EvidenceDoc,
    /// BM25 score, higher is better.
    pub score: f64,
}

/// A batch of documents to add.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KnowledgeDocs {
    /// Runbooks.
    pub runbooks: Vec<Runbook>,
    /// Evidence.
    pub evidence: Vec<EvidenceDoc>,
    /// Action policies.
    pub policies: Vec<ActionPolicy>,
}

/// The original's `sample_data.json`: documents plus incidents.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SampleData {
    /// Documents for the store.
    pub docs: KnowledgeDocs,
    /// Incidents (not stored: they are pipeline inputs).
    pub incidents: Vec<Incident>,
}

/// How many documents of each kind the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KnowledgeStats {
    /// Reviewed runbooks.
    pub runbooks_reviewed: u64,
    /// Runbooks awaiting review.
    pub runbooks_unreviewed: u64,
    /// Evidence documents.
    pub evidence: u64,
    /// Action policies.
    pub policies: u64,
}

/// Counts of one load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    /// Documents added.
    pub added: u64,
    /// Documents already present with identical content (loading is idempotent).
    pub unchanged: u64,
}

/// Why the knowledge store could not answer. Every variant is an error for the pipeline:
/// failed retrieval never reads as "no evidence".
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The index file does not exist.
    #[error("knowledge base not found at {0}: load documents into it first (e.g. the sample data)")]
    NotFound(PathBuf),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Text that is not valid JSON, YAML or Markdown front matter.
    #[error("{origin}: {message}")]
    Syntax {
        /// File or source name.
        origin: String,
        /// What is wrong, with line and column when known.
        message: String,
    },
    /// A document field is missing or wrong.
    #[error("{origin}: {field}: {message}")]
    Invalid {
        /// File or source name.
        origin: String,
        /// Field path, e.g. `policies[0].severities[1]`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A document with the same id but different content exists; the store never silently
    /// replaces a document (a learned runbook must not overwrite a reviewed one).
    #[error("{kind} \"{id}\" already exists with different content")]
    Conflict {
        /// `runbook`, `evidence` or `policy`.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A remote knowledge backend (Elasticsearch) could not answer: unreachable, timed out,
    /// refused the credentials, rate-limited after retries, failed, or answered something that
    /// does not parse. `status` is the HTTP status when there was one. Never "no documents".
    #[error("knowledge backend {location} unavailable{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Unavailable {
        /// The cluster's URL.
        location: String,
        /// HTTP status, if an answer came.
        status: Option<u16>,
        /// What failed (Elasticsearch's `error.type: reason` when it said).
        message: String,
        /// The pause the cluster asked for (`Retry-After` on a 429 or 503) when it was longer
        /// than this call would wait: a queue retries then, not sooner.
        retry_after: Option<std::time::Duration>,
    },
    /// Some documents of a bulk load failed (other than "exists already"); the rest were added.
    #[error("knowledge backend {location}: {} document(s) failed to load ({added} added): {}", failed.len(), failed.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; "))]
    Bulk {
        /// The cluster's URL.
        location: String,
        /// Documents added by the same call.
        added: u64,
        /// Every failed document.
        failed: Vec<elastic::BulkFailure>,
    },
    /// The index is missing, corrupt, of another schema version, or SQLite failed.
    #[error("knowledge index {location}: {message}")]
    Index {
        /// The index file (or `:memory:`).
        location: String,
        /// What failed.
        message: String,
    },
}

/// Retrieval over runbooks, evidence and action policies. Synchronous: every backend is
/// local or answers in milliseconds, and the pipeline is sequential.
pub trait KnowledgeStore {
    /// Up to `k` **reviewed** runbooks of exactly `service`, best BM25 match over title and
    /// body first (ties by id). A query without words returns the service's runbooks by id.
    fn search_runbooks(&self, query: &str, service: &str, k: usize) -> Result<Vec<RunbookHit>, KnowledgeError>;

    /// Up to `k` evidence documents of `service` or `*` (of every service when `service` is
    /// `*`), optionally of one recorded stance, best BM25 match over the text first (ties by id).
    fn search_evidence(
        &self,
        query: &str,
        service: &str,
        k: usize,
        stance: Option<Stance>,
    ) -> Result<Vec<EvidenceHit>, KnowledgeError>;

    /// Every action policy for `service` or `*`, by id.
    fn policies_for(&self, service: &str) -> Result<Vec<ActionPolicy>, KnowledgeError>;

    /// One runbook by id, reviewed or not.
    fn runbook(&self, id: &str) -> Result<Option<Runbook>, KnowledgeError>;

    /// Counts per kind.
    fn stats(&self) -> Result<KnowledgeStats, KnowledgeError>;

    /// Adds a runbook. Adding an identical document again is a no-op; a different one with the
    /// same id is [`KnowledgeError::Conflict`].
    fn add_runbook(&mut self, runbook: &Runbook) -> Result<LoadReport, KnowledgeError>;

    /// Adds an evidence document (same rules as [`KnowledgeStore::add_runbook`]).
    fn add_evidence(&mut self, doc: &EvidenceDoc) -> Result<LoadReport, KnowledgeError>;

    /// Adds an action policy (same rules as [`KnowledgeStore::add_runbook`]).
    fn add_policy(&mut self, policy: &ActionPolicy) -> Result<LoadReport, KnowledgeError>;

    /// Marks an unreviewed runbook reviewed by `reviewer` (at `reviewed_at`, RFC 3339), making it
    /// visible to planners; returns the runbook as it now is. A runbook that does not exist or
    /// is already reviewed is an error. Backends that cannot do this refuse (the default).
    fn mark_reviewed(&mut self, id: &str, reviewer: &str, reviewed_at: &str) -> Result<Runbook, KnowledgeError> {
        let _ = (reviewer, reviewed_at);
        Err(KnowledgeError::Index {
            location: "knowledge store".into(),
            message: format!("this backend cannot mark runbook {id} reviewed"),
        })
    }

    /// Adds a batch. Backends that can should make it atomic (SQLite does).
    fn add_docs(&mut self, docs: &KnowledgeDocs) -> Result<LoadReport, KnowledgeError> {
        let mut total = LoadReport::default();
        for r in &docs.runbooks {
            total = sum(total, self.add_runbook(r)?);
        }
        for e in &docs.evidence {
            total = sum(total, self.add_evidence(e)?);
        }
        for p in &docs.policies {
            total = sum(total, self.add_policy(p)?);
        }
        Ok(total)
    }

    /// Reads the original's `sample_data.json` shape (JSON, or YAML by extension) and adds its
    /// runbooks, evidence and policies. Incidents are returned, not stored.
    fn load_sample_data(&mut self, path: &Path) -> Result<(LoadReport, Vec<Incident>), KnowledgeError> {
        let text = read_text(path)?;
        let data = parse::parse_sample_data(&text, &path.display().to_string(), parse::Format::from_path(path))?;
        let report = self.add_docs(&data.docs)?;
        Ok((report, data.incidents))
    }

    /// Streams a JSON file of the `sample_data.json` shape of any size
    /// ([`parse::stream_sample_data`]), adding documents in batches of [`STREAM_BATCH`] through
    /// [`KnowledgeStore::add_docs`]; `progress` is called after each batch with the documents
    /// read so far. Returns the counts and how many incidents the file held (not stored).
    /// Backends with transactions load the whole file or nothing (SQLite overrides this);
    /// this default stops at the first error with the earlier batches added.
    fn load_stream(
        &mut self,
        reader: &mut dyn std::io::Read,
        origin: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(LoadReport, usize), KnowledgeError> {
        let mut total = LoadReport::default();
        let mut batch = KnowledgeDocs::default();
        let mut read = 0u64;
        let incidents = parse::stream_sample_data(reader, origin, &mut |doc| {
            push_doc(&mut batch, doc);
            read += 1;
            if batch_len(&batch) >= STREAM_BATCH {
                total = sum(total, self.add_docs(&std::mem::take(&mut batch))?);
                progress(read);
            }
            Ok(())
        })?;
        total = sum(total, self.add_docs(&batch)?);
        progress(read);
        Ok((total, incidents))
    }

    /// Reads one runbook file a user adds (`.yaml`/`.yml`, `.json`, `.md`/`.markdown`) and adds
    /// its runbooks.
    fn add_runbook_file(&mut self, path: &Path) -> Result<LoadReport, KnowledgeError> {
        let text = read_text(path)?;
        let runbooks = parse::parse_runbook_file(&text, path)?;
        self.add_docs(&KnowledgeDocs { runbooks, ..KnowledgeDocs::default() })
    }
}

/// Documents per batch of [`KnowledgeStore::load_stream`] (one `_bulk` request for
/// Elasticsearch; one progress step).
pub const STREAM_BATCH: usize = 1000;

pub(crate) fn push_doc(docs: &mut KnowledgeDocs, doc: parse::Doc) {
    match doc {
        parse::Doc::Runbook(r) => docs.runbooks.push(r),
        parse::Doc::Evidence(e) => docs.evidence.push(e),
        parse::Doc::Policy(p) => docs.policies.push(p),
    }
}

pub(crate) fn batch_len(docs: &KnowledgeDocs) -> usize {
    docs.runbooks.len() + docs.evidence.len() + docs.policies.len()
}

pub(crate) fn sum(a: LoadReport, b: LoadReport) -> LoadReport {
    LoadReport { added: a.added + b.added, unchanged: a.unchanged + b.unchanged }
}

/// Largest file the loaders read (16 MiB): knowledge files are text written by people.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a UTF-8 text file, refusing anything over [`MAX_FILE_BYTES`].
pub fn read_text(path: &Path) -> Result<String, KnowledgeError> {
    let io = |source| KnowledgeError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(KnowledgeError::Syntax {
            origin: path.display().to_string(),
            message: format!("file is {} bytes, over the {MAX_FILE_BYTES}-byte limit", meta.len()),
        });
    }
    std::fs::read_to_string(path).map_err(io)
}
