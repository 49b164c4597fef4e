//! Opening the audit store and appending records; `guardrail audit …` and `guardrail replay`.

use std::path::PathBuf;

use guardrail_core::audit::{ChainedRecord, EncodedDraft, RecordDraft};
use guardrail_store::{AuditStore, KeptInput};

/// Where records go.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreArgs {
    /// Audit store: a SQLite path (`sqlite:PATH` or plain) or `postgres://…`
    /// [env: GUARDRAIL_STORE] [default: .guardrail/guardrail.db]
    #[arg(long, value_name = "SPEC", global = true)]
    pub store: Option<String>,
    /// Also mirror each record to DIR/decisions-YYYY-MM-DD.jsonl (the seed tool's layout)
    /// [env: GUARDRAIL_AUDIT_JSONL]
    #[arg(long, value_name = "DIR", global = true)]
    pub audit_jsonl: Option<PathBuf>,
    /// Also copy each record to the Elasticsearch audit mirror at URL (delivered through the
    /// notification outbox; the governor config's audit_mirror: block gives the index and
    /// credentials) [env: GUARDRAIL_AUDIT_ES]
    #[arg(long, value_name = "URL", global = true)]
    pub audit_es: Option<String>,
}

/// Default SQLite location, relative to the working directory.
pub const DEFAULT_STORE: &str = ".guardrail/guardrail.db";

impl StoreArgs {
    /// The store spec in force.
    pub fn spec(&self, env: crate::inputs::EnvLookup<'_>) -> String {
        self.store
            .clone()
            .or_else(|| env("GUARDRAIL_STORE").filter(|v| !v.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_STORE.to_string())
    }
    /// The Elasticsearch audit mirror's URL the flag or `GUARDRAIL_AUDIT_ES` names, if any.
    pub fn es(&self, env: crate::inputs::EnvLookup<'_>) -> Option<String> {
        self.audit_es.clone().or_else(|| env("GUARDRAIL_AUDIT_ES")).filter(|v| !v.trim().is_empty())
    }
    /// The JSONL mirror directory, if any.
    pub fn jsonl(&self, env: crate::inputs::EnvLookup<'_>) -> Option<PathBuf> {
        self.audit_jsonl
            .clone()
            .or_else(|| env("GUARDRAIL_AUDIT_JSONL").filter(|v| !v.trim().is_empty()).map(PathBuf::from))
    }
}

/// The audit store a spec names cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("audit store {store}: {source}")]
pub struct OpenError {
    /// The spec, with any password redacted: the message goes to logs and HTTP answers.
    pub store: String,
    /// Why it cannot be opened.
    #[source]
    pub source: guardrail_store::StoreError,
}

/// Opens the store.
pub fn open(spec: &str) -> Result<Box<dyn AuditStore>, OpenError> {
    guardrail_store::open_store(spec).map_err(|source| OpenError { store: guardrail_store::redact_url(spec), source })
}

/// A store being opened ahead of its first use ([`open_ahead`]): its spec, and the opening.
type Opening = (String, std::thread::JoinHandle<Result<Box<dyn AuditStore>, guardrail_store::StoreError>>);
static AHEAD: std::sync::Mutex<Option<Opening>> = std::sync::Mutex::new(None);

/// Starts opening the store `spec` names on a thread of its own, for this process's next append
/// to that spec ([`append_typed`], [`append_encoded`]), which then takes it instead of opening
/// the store itself. A one-shot gate opens its store (configures the connection, checks the
/// schema, creates a new store's) while it reads and evaluates its inputs: 1–3 ms off a run
/// that had nothing else to do with the second core. The result is the same store, or the
/// same error, as opening it then.
pub fn open_ahead(spec: &str) {
    let owned = spec.to_string();
    let opening =
        std::thread::Builder::new().name("store-open".into()).spawn(move || guardrail_store::open_store(&owned));
    if let (Ok(h), Ok(mut slot)) = (opening, AHEAD.lock()) {
        *slot = Some((spec.to_string(), h));
    }
}

/// The store `spec` names: the one [`open_ahead`] opened for it, else opened now.
fn open_store(spec: &str) -> Result<Box<dyn AuditStore>, guardrail_store::StoreError> {
    let mut slot = AHEAD.lock().ok();
    let ahead = match slot.as_mut().map(|s| s.take()) {
        Some(Some((s, h))) if s == spec => Some(h),
        // Opened for another spec: left for its own append.
        Some(Some(other)) => {
            if let Some(s) = slot.as_mut() {
                **s = Some(other);
            }
            None
        }
        _ => None,
    };
    drop(slot);
    match ahead.map(std::thread::JoinHandle::join) {
        Some(Ok(opened)) => opened,
        // No thread, or it died: open here, as without one.
        _ => guardrail_store::open_store(spec),
    }
}

/// Appends one record durably (and mirrors it when asked). Any failure is an error — the gate
/// must not report a decision it could not record — and says which:
/// [`guardrail_store::AppendError::NotInChain`] (nothing was appended) or
/// [`guardrail_store::AppendError::Mirror`] (the record IS in the chain, only its JSONL mirror
/// copy failed).
pub fn append_typed(
    spec: &str,
    jsonl: Option<&PathBuf>,
    draft: RecordDraft,
) -> Result<(ChainedRecord, String), guardrail_store::AppendError> {
    let mut store = open_store(spec).map_err(|e| guardrail_store::AppendError::NotInChain {
        store: guardrail_store::redact_url(spec),
        source: Box::new(e),
    })?;
    let rec = guardrail_store::append_mirrored(store.as_mut(), jsonl.map(PathBuf::as_path), draft)?;
    Ok((rec, store.describe()))
}

/// [`append_typed`] of a draft whose body is its canonical text
/// ([`guardrail_store::AuditStore::append_encoded`]: the returned record's body is `null` unless
/// the store parsed the text), without a JSONL mirror. `kept` are the inputs the body leaves
/// out (`input_content.kept_apart`): the store keeps them first
/// ([`guardrail_store::AuditStore::keep_inputs`]); `Ok(None)` when it does not keep inputs, and
/// nothing was appended (the caller appends the body with their text instead).
pub fn append_encoded(
    spec: &str,
    draft: EncodedDraft,
    kept: &[KeptInput<'_>],
) -> Result<Option<(ChainedRecord, String)>, guardrail_store::AppendError> {
    let not_in_chain = |store: String, e: guardrail_store::StoreError| guardrail_store::AppendError::NotInChain {
        store,
        source: Box::new(e),
    };
    let mut store = open_store(spec).map_err(|e| not_in_chain(guardrail_store::redact_url(spec), e))?;
    if !kept.is_empty() && !store.keep_inputs(kept).map_err(|e| not_in_chain(store.describe(), e))? {
        return Ok(None);
    }
    let rec = store.append_encoded(draft).map_err(|e| not_in_chain(store.describe(), e))?;
    Ok(Some((rec, store.describe())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> RecordDraft {
        RecordDraft { kind: "note".into(), recorded_at: "2026-12-06T10:00:00Z".into(), body: serde_json::json!({}) }
    }

    #[test]
    fn a_store_opened_ahead_is_the_one_appended_to_and_fails_as_it_would_have() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("ahead.db").display().to_string();
        let other = dir.path().join("other.db").display().to_string();
        open_ahead(&spec);
        // An append to another store opens its own, and leaves the one opened ahead alone.
        assert_eq!(append_typed(&other, None, draft()).unwrap().0.seq, 1);
        let (rec, described) = append_typed(&spec, None, draft()).unwrap();
        assert_eq!(rec.seq, 1);
        assert!(described.ends_with("ahead.db"), "{described}");
        assert_eq!(append_typed(&spec, None, draft()).unwrap().0.seq, 2, "opened here once the one ahead is used");
        // A spec that does not open: the same error as opening it then.
        open_ahead(" ");
        let Err(guardrail_store::AppendError::NotInChain { source, .. }) = append_typed(" ", None, draft()) else {
            panic!("an empty spec opened")
        };
        assert!(matches!(*source, guardrail_store::StoreError::InvalidSpec { .. }), "{source:?}");
    }

    #[test]
    fn a_store_that_does_not_open_is_named_without_its_password() {
        // Nothing listens on port 1: the connection is refused at once.
        let Err(e) = open("postgres://gate:hunter2@127.0.0.1:1/audit") else { panic!("port 1 answered") };
        assert!(matches!(e.source, guardrail_store::StoreError::Postgres { .. }), "{e:?}");
        assert!(!e.store.contains("hunter2") && e.store.contains("127.0.0.1:1/audit"), "{}", e.store);
        let m = e.to_string();
        assert!(m.starts_with(&format!("audit store {}: ", e.store)) && !m.contains("hunter2"), "{m}");

        let Err(e) = open(" ") else { panic!("an empty spec opened") };
        assert!(matches!(e.source, guardrail_store::StoreError::InvalidSpec { .. }), "{e:?}");
    }
}
