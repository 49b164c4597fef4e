//! [`ServerLog`]: the governor's audit log over the server's store, metrics and events.

use guardrail_core::audit::ChainedRecord;
use guardrail_governor::pipeline::{AuditLog, GuardedBody, LinkedBody, StoreLog};
use guardrail_store::{AppendError, Claim};
use serde_json::Value;

use crate::api::ApiError;
use crate::state::AppState;

use super::status::no_store;

/// The governor's audit log over HTTP: the configured store and mirror, every failed write
/// counted in `guardrail_audit_write_failures`, every record in the chain published as an
/// `audit` event (also one whose mirror copy failed: it is in the chain).
pub(crate) struct ServerLog<'s> {
    inner: StoreLog,
    state: &'s AppState,
}

impl<'s> ServerLog<'s> {
    /// Opens the configured store; records stamped `now`.
    pub(crate) fn open(state: &'s AppState, now: jiff::Timestamp) -> Result<ServerLog<'s>, ApiError> {
        let cfg = state.config();
        // Through the shared store (group commit, pooled reads) when it opens.
        let store = state.share_store().map(|s| Ok(Box::new(s.handle()) as Box<dyn guardrail_store::AuditStore>));
        let store = store.unwrap_or_else(|| guardrail_store::open_store(&cfg.store)).map_err(|e| {
            state.metrics().audit_write_failure();
            no_store(&e.to_string())
        })?;
        Ok(ServerLog { inner: StoreLog::new(store, cfg.audit_jsonl.clone(), now), state })
    }

    fn observe(&self, rec: Option<&ChainedRecord>, failed: bool) {
        if failed {
            self.state.metrics().audit_write_failure();
        }
        if let Some(rec) = rec {
            /// The `audit` event: which record was appended.
            #[derive(serde::Serialize)]
            struct Appended<'a> {
                id: String,
                seq: i64,
                kind: &'a str,
            }
            self.state.publish_with("audit", || {
                guardrail_governor::record::encode(&Appended { id: rec.id(), seq: rec.seq, kind: &rec.kind })
            });
        }
    }
}

impl AuditLog for ServerLog<'_> {
    fn append(&mut self, kind: &str, body: Value) -> Result<ChainedRecord, AppendError> {
        let r = self.inner.append(kind, body);
        match &r {
            Ok(rec) => self.observe(Some(rec), false),
            Err(e) => self.observe(e.in_chain(), true),
        }
        r
    }

    fn links(&self) -> bool {
        self.inner.links()
    }

    fn append_linked(
        &mut self,
        kind: &str,
        body: Value,
        then_kind: &str,
        then: LinkedBody,
    ) -> Result<(ChainedRecord, ChainedRecord), AppendError> {
        let r = self.inner.append_linked(kind, body, then_kind, then);
        match &r {
            Ok((first, second)) => {
                self.observe(Some(first), false);
                self.observe(Some(second), false);
            }
            Err(e) => self.observe(e.in_chain(), true),
        }
        r
    }

    fn append_guarded(
        &mut self,
        kind: &str,
        body: Value,
        guard: GuardedBody,
    ) -> Result<(ChainedRecord, Option<Claim>), AppendError> {
        let r = self.inner.append_guarded(kind, body, guard);
        match &r {
            Ok((first, claim)) => {
                self.observe(Some(first), false);
                if let Some(Claim::Won(rec)) = claim {
                    self.observe(Some(rec), false);
                }
            }
            Err(e) => self.observe(e.in_chain(), true),
        }
        r
    }

    fn append_claim(&mut self, kind: &str, body: Value, claim: &str) -> Result<Claim, AppendError> {
        let r = self.inner.append_claim(kind, body, claim);
        match &r {
            Ok(Claim::Won(rec)) => self.observe(Some(rec), false),
            Ok(Claim::Held(_)) => {}
            Err(e) => self.observe(e.in_chain(), true),
        }
        r
    }
}
