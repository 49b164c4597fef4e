//! The Elasticsearch audit mirror: one document per audit record in one index (default
//! `guardrail-audit`), for searching and dashboards. The chain stays the record of truth.
//!
//! - **Delivered like a notification.** With an `audit_mirror:` block (or `--audit-es` /
//!   `GUARDRAIL_AUDIT_ES`), every record gets an `elasticsearch` outbox row in its own append
//!   transaction ([`crate::routing::Routes`]), so no record can be in the chain without its
//!   copy being owed; the outbox loop delivers it at least once, with the outbox's retries,
//!   backoff and `guardrail notify status`. A cluster that is down delays the copy; it never
//!   delays, fails or changes a decision.
//! - **Idempotent.** A document's `_id` is the record's id (`seq-hash12`, what `guardrail audit
//!   show` takes) and it is written with a `_bulk` `index` action, so a redelivery, and every
//!   `guardrail audit export --to es`, writes the same document again: re-running is harmless,
//!   and a copy edited in the cluster is put back to the chain's content. (`create` with 409
//!   read as "done" would leave an edited copy edited.)
//! - **Typed documents, no mapping conflicts.** The index is created with an explicit mapping,
//!   `dynamic: strict`: the chain fields (`record_id`, `seq`, `kind`, `recorded_at`, `hash`,
//!   `prev_hash`) and a few keywords read from the body for filtering (`incident_id`, `service`,
//!   `action`). The body itself is an `object` with `enabled: false`: kept in `_source`, never
//!   parsed into fields. Record bodies of different kinds use the same key with different types
//!   (`action` is a string in one, an object in another) and carry open-ended maps; parsing
//!   them would sooner or later be refused with `mapper_parsing_exception` or hit the index's
//!   field limit, dropping exactly the copies nobody notices missing. (`flattened` would make
//!   the leaves searchable, but OpenSearch does not have it.)
//! - **The original's documents, optionally.** With `workflow_events_index` /
//!   `action_executions_index` in the block, each `remediation_decision` also becomes the
//!   original's `workflow_events` payload and `action_executions` document (its fields, read
//!   from the recorded outcome; `_id` the record id here too, where the original let the cluster
//!   pick one, so a redelivery does not duplicate them), in the same `_bulk` call.
//! - **Export.** [`export`] verifies the whole chain first and refuses a broken one (nothing
//!   sent): a mirror rebuilt from records that do not verify would present tampered content as
//!   the audit trail. Then `_bulk` in batches; failed items are named with their record ids.
//!
//! Fail closed: every failure (connection, 401, 429 after retries, 5xx, a failed item) is an
//! error naming what was not copied; nothing is reported as mirrored that was not.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use guardrail_config::AuditMirrorConfig;
use guardrail_core::audit::ChainedRecord;
use guardrail_governor::knowledge_select::{ConnectionSetupError, cluster_connection};
use guardrail_knowledge::elastic::BulkOutcome;
use guardrail_knowledge::{ElasticKnowledgeStore, KnowledgeError};
use guardrail_store::{AuditStore, StoreError};
use serde::{Deserialize, Serialize};

use crate::channel::{Channel, ChannelKind, Delivered, DeliveryContext, DeliveryError, Notification};

/// The index's settings and mapping (see the module documentation).
pub const AUDIT_MAPPING: &str = include_str!("mappings/audit.json");

/// The `workflow_events` index's mapping.
pub const WORKFLOW_EVENTS_MAPPING: &str = include_str!("mappings/workflow_events.json");

/// The `action_executions` index's mapping.
pub const ACTION_EXECUTIONS_MAPPING: &str = include_str!("mappings/action_executions.json");

/// Records per `_bulk` call of an export, unless told.
pub const DEFAULT_EXPORT_BATCH: usize = 500;

/// One record as the mirror stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditDocument {
    /// `seq-hash12`, also the document's `_id`.
    pub record_id: String,
    /// Position in the chain.
    pub seq: i64,
    /// Record kind.
    pub kind: String,
    /// RFC 3339 timestamp.
    pub recorded_at: String,
    /// The record's hash.
    pub hash: String,
    /// The previous record's hash.
    pub prev_hash: String,
    /// The body's `incident_id`, when it has one (governor records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// The service a deploy decision is about, or a body's `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// A deploy decision's action (ALLOW, WARN, DELAY, BLOCK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The record's body, as chained (stored, not indexed).
    pub body: serde_json::Value,
}

/// The original's `workflow_events` payload of a remediation decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowEvent {
    /// The decision record's id.
    pub record_id: String,
    /// Its time.
    pub recorded_at: String,
    /// Incident.
    pub incident_id: String,
    /// The incident's service.
    pub service: String,
    /// The incident's severity.
    pub severity: String,
    /// `execute` or `block_and_escalate`.
    pub decision: String,
    /// What would run: the final position when executing, else `escalate_to_human`.
    pub execution_mode: String,
    /// The gate's reasons.
    pub reasons: Vec<String>,
    /// The plan's confidence.
    pub confidence_initial: f64,
    /// After the stress phase.
    pub confidence_final: f64,
    /// Initial minus final.
    pub confidence_delta: f64,
    /// Position changed or confidence fell by the disagreement delta.
    pub disagreement_detected: bool,
    /// `accept_planner_action`, `execute_with_guardrails` or `escalate_for_human_approval`.
    pub arbiter_resolution: String,
    /// Share of claims with a document.
    pub integration_quality: f64,
    /// Distinct supporting documents over all claims.
    pub support_docs_count: u32,
    /// Verified contradicting documents (the stress phase's count).
    pub contradiction_docs_count: u32,
    /// Conflicting action policies.
    pub policy_conflicts_count: u32,
    /// No fabricated authority was accepted.
    pub fabrication_trap_rejected: bool,
    /// The plan's action when blocked, else "".
    pub unsafe_action_rejected: String,
}

/// The original's `action_executions` document of a remediation decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionExecution {
    /// The decision record's id.
    pub record_id: String,
    /// Its time.
    pub recorded_at: String,
    /// Incident.
    pub incident_id: String,
    /// Service.
    pub service: String,
    /// Severity.
    pub severity: String,
    /// `execute` or `block_and_escalate`.
    pub decision: String,
    /// As in the workflow event.
    pub execution_mode: String,
    /// The gate's reasons.
    pub reasons: Vec<String>,
    /// Initial minus final confidence.
    pub confidence_delta: f64,
    /// As in the workflow event.
    pub disagreement_detected: bool,
    /// As in the workflow event.
    pub arbiter_resolution: String,
    /// `execute_action` or `escalation_ticket`.
    pub action_type: String,
}

/// The parts of a `remediation_decision` body the original's documents need.
#[derive(Deserialize)]
struct DecisionView {
    incident_id: String,
    #[serde(default)]
    incident: IncidentView,
    decision: String,
    #[serde(default)]
    gated_action: String,
    outcome: OutcomeView,
}

#[derive(Default, Deserialize)]
struct IncidentView {
    #[serde(default)]
    service: String,
    #[serde(default)]
    severity: String,
}

#[derive(Deserialize)]
struct OutcomeView {
    gate: GateView,
    stress: StressView,
}

#[derive(Deserialize)]
struct GateView {
    output: GateOutputView,
    #[serde(default)]
    disagreement_detected: bool,
    #[serde(default)]
    arbiter_resolution: String,
    #[serde(default)]
    execution_mode: String,
}

#[derive(Deserialize)]
struct GateOutputView {
    confidence_initial: f64,
    confidence_final: f64,
    confidence_delta: f64,
    #[serde(default)]
    reasons: Vec<String>,
}

#[derive(Deserialize)]
struct StressView {
    assessment: AssessmentView,
}

#[derive(Deserialize)]
struct AssessmentView {
    output: StressOutputView,
}

#[derive(Deserialize)]
struct StressOutputView {
    #[serde(default)]
    claim_evidence: Vec<ClaimView>,
    #[serde(default)]
    contradiction_count: u32,
    #[serde(default)]
    policy_conflicts: Vec<String>,
    #[serde(default)]
    fabricated_authority_rejected: bool,
    #[serde(default)]
    integration_quality: f64,
}

#[derive(Deserialize)]
struct ClaimView {
    #[serde(default)]
    support_docs: Vec<String>,
}

/// The original's two documents for a `remediation_decision` record (`None` for any other
/// record, or a body without a recorded outcome).
pub fn original_documents(record: &ChainedRecord) -> Option<(WorkflowEvent, ActionExecution)> {
    if record.kind != guardrail_governor::record::RecordKind::RemediationDecision.as_str() {
        return None;
    }
    let d = DecisionView::deserialize(&record.body).ok()?;
    let stress = d.outcome.stress.assessment.output;
    let gate = d.outcome.gate;
    let support: std::collections::BTreeSet<&String> =
        stress.claim_evidence.iter().flat_map(|c| c.support_docs.iter()).collect();
    let executes = d.decision == "execute";
    let event = WorkflowEvent {
        record_id: record.id(),
        recorded_at: record.recorded_at.clone(),
        incident_id: d.incident_id,
        service: d.incident.service,
        severity: d.incident.severity,
        decision: d.decision,
        execution_mode: gate.execution_mode,
        reasons: gate.output.reasons,
        confidence_initial: gate.output.confidence_initial,
        confidence_final: gate.output.confidence_final,
        confidence_delta: gate.output.confidence_delta,
        disagreement_detected: gate.disagreement_detected,
        arbiter_resolution: gate.arbiter_resolution,
        integration_quality: stress.integration_quality,
        support_docs_count: u32::try_from(support.len()).unwrap_or(u32::MAX),
        contradiction_docs_count: stress.contradiction_count,
        policy_conflicts_count: u32::try_from(stress.policy_conflicts.len()).unwrap_or(u32::MAX),
        fabrication_trap_rejected: stress.fabricated_authority_rejected,
        unsafe_action_rejected: if executes { String::new() } else { d.gated_action },
    };
    let action = ActionExecution {
        record_id: event.record_id.clone(),
        recorded_at: event.recorded_at.clone(),
        incident_id: event.incident_id.clone(),
        service: event.service.clone(),
        severity: event.severity.clone(),
        decision: event.decision.clone(),
        execution_mode: event.execution_mode.clone(),
        reasons: event.reasons.clone(),
        confidence_delta: event.confidence_delta,
        disagreement_detected: event.disagreement_detected,
        arbiter_resolution: event.arbiter_resolution.clone(),
        action_type: if executes { "execute_action" } else { "escalation_ticket" }.to_string(),
    };
    Some((event, action))
}

/// The part of a governor record's body the mirror indexes.
#[derive(Deserialize)]
struct Keys {
    #[serde(default)]
    incident_id: Option<serde_json::Value>,
    #[serde(default)]
    service: Option<serde_json::Value>,
}

impl AuditDocument {
    /// The document for `record`.
    pub fn of(record: &ChainedRecord) -> AuditDocument {
        let keys = Keys::deserialize(&record.body).unwrap_or(Keys { incident_id: None, service: None });
        let text = |v: Option<serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        };
        let (mut service, mut action) = (text(keys.service), None);
        if record.kind == guardrail_gate::gate::RECORD_KIND
            && let Ok(d) = guardrail_gate::gate::decode_decision(&record.body)
        {
            service = d.run.ci.service.clone().or_else(|| d.service()).or(service);
            action = d.verdict.action.map(|a| a.as_str().to_string());
        }
        AuditDocument {
            record_id: record.id(),
            seq: record.seq,
            kind: record.kind.clone(),
            recorded_at: record.recorded_at.clone(),
            hash: record.hash.clone(),
            prev_hash: record.prev_hash.clone(),
            incident_id: text(keys.incident_id),
            service,
            action,
            body: record.body.clone(),
        }
    }
}

/// The mirror cannot be set up (before anything is sent).
#[derive(Debug, thiserror::Error)]
pub enum MirrorSetupError {
    /// A credential variable the config names is unset or empty.
    #[error("audit mirror: {var} (named by audit_mirror's {field}) is not set")]
    MissingSecret {
        /// The config field.
        field: &'static str,
        /// The variable.
        var: String,
    },
    /// The CA file cannot be read.
    #[error("audit mirror: the CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The client refused the settings (a bad URL, a CA file without certificates).
    #[error("{}", say(.0))]
    Client(KnowledgeError),
}

/// One record the cluster did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFailure {
    /// The record's id (`seq-hash12`).
    pub record_id: String,
    /// The index the document was for.
    pub index: String,
    /// The item's HTTP status.
    pub status: u16,
    /// Elasticsearch's `error.type`.
    pub kind: String,
    /// Its `error.reason`.
    pub reason: String,
}

impl ItemFailure {
    /// Worth retrying: the cluster was busy or unwell (429, 5xx), not the document refused.
    pub fn retryable(&self) -> bool {
        self.status == 429 || self.status >= 500
    }
}

impl std::fmt::Display for ItemFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {} ({}): {} {}: {}", self.record_id, self.index, self.status, self.kind, self.reason)
    }
}

/// A connection to the mirror's index.
pub struct EsMirror {
    client: ElasticKnowledgeStore,
    index: String,
    workflow_events: Option<String>,
    action_executions: Option<String>,
    /// Outbox rows per `_bulk` call (`audit_mirror.batch_size`).
    batch_size: usize,
    /// The index is known to exist (created or found) by this process.
    ensured: AtomicBool,
}

impl std::fmt::Debug for EsMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsMirror").field("url", &self.client.config().url).field("index", &self.index).finish()
    }
}

impl EsMirror {
    /// A client for `cfg` with credentials read from `env` now; sends nothing. `timeout`
    /// shortens the per-request timeout and turns the client's own retries off (the CLI's
    /// inline pass: one short try; the outbox retries later).
    pub fn connect(
        cfg: &AuditMirrorConfig,
        env: &BTreeMap<String, String>,
        timeout: Option<Duration>,
    ) -> Result<EsMirror, MirrorSetupError> {
        let lookup = |var: &str| env.get(var).cloned();
        let mut es = cluster_connection(
            &cfg.url,
            cfg.credentials.as_ref(),
            cfg.ca_file.as_deref(),
            cfg.timeout_ms,
            cfg.retries,
            &lookup,
        )
        .map_err(|e| match e {
            ConnectionSetupError::MissingSecret { field, var } => MirrorSetupError::MissingSecret { field, var },
            ConnectionSetupError::CaFile { path, reason } => MirrorSetupError::CaFile { path, reason },
        })?;
        if let Some(t) = timeout {
            es.timeout = es.timeout.min(t);
            es.retries = 0;
        }
        let client = ElasticKnowledgeStore::connect(es).map_err(MirrorSetupError::Client)?;
        Ok(EsMirror {
            client,
            index: cfg.index.clone(),
            workflow_events: cfg.workflow_events_index.clone(),
            action_executions: cfg.action_executions_index.clone(),
            batch_size: cfg.batch_size.max(1),
            ensured: AtomicBool::new(false),
        })
    }

    /// The index written to.
    pub fn index(&self) -> &str {
        &self.index
    }

    /// The cluster's URL (never with credentials).
    pub fn url(&self) -> &str {
        &self.client.config().url
    }

    /// Creates the index with [`AUDIT_MAPPING`] unless this process already saw it; `true`
    /// when this call created it. An index that exists is left as it is.
    pub fn ensure_index(&self) -> Result<bool, KnowledgeError> {
        if self.ensured.load(Ordering::Acquire) {
            return Ok(false);
        }
        let created = self.client.ensure_index(&self.index, AUDIT_MAPPING)?;
        for (index, mapping) in
            [(&self.workflow_events, WORKFLOW_EVENTS_MAPPING), (&self.action_executions, ACTION_EXECUTIONS_MAPPING)]
        {
            if let Some(index) = index {
                self.client.ensure_index(index, mapping)?;
            }
        }
        self.ensured.store(true, Ordering::Release);
        Ok(created)
    }

    /// Writes `records` with one `_bulk` call of `index` actions (`refresh` waits until they
    /// are searchable). `Ok` with the items the cluster refused (empty: all written); `Err`
    /// when the call itself failed (nothing can be assumed written).
    pub fn write(&self, records: &[ChainedRecord], refresh: bool) -> Result<Vec<ItemFailure>, KnowledgeError> {
        self.write_all(records.iter(), refresh)
    }

    /// Outbox rows the destination sends per `_bulk` call.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// [`EsMirror::write`] over borrowed records.
    fn write_all<'r>(
        &self,
        records: impl ExactSizeIterator<Item = &'r ChainedRecord>,
        refresh: bool,
    ) -> Result<Vec<ItemFailure>, KnowledgeError> {
        if records.len() == 0 {
            return Ok(Vec::new());
        }
        self.ensure_index()?;
        let count = records.len();
        // Written straight into one buffer, sized after the first document: a batch of hundreds
        // of ~10 KB documents otherwise spends its time growing (copying) the buffer.
        let mut ndjson: Vec<u8> = Vec::new();
        // Per action: the record and the index, to name a failed item.
        let mut actions: Vec<(String, &str)> = Vec::with_capacity(count);
        // Serialising typed documents of strings, numbers and JSON values into a Vec cannot fail.
        let push = |ndjson: &mut Vec<u8>, index: &'_ str, id: &str, source: &dyn erased::Doc| {
            let action = BulkAction { index: BulkTarget { index, id } };
            let _ = serde_json::to_writer(&mut *ndjson, &action);
            ndjson.push(b'\n');
            source.write(ndjson);
            ndjson.push(b'\n');
        };
        for (i, r) in records.enumerate() {
            let doc = AuditDocument::of(r);
            push(&mut ndjson, &self.index, &doc.record_id, &doc);
            if i == 0 {
                ndjson.reserve(ndjson.len().saturating_mul(count + count / 4));
            }
            actions.push((doc.record_id.clone(), &self.index));
            if let Some((event, action)) = original_documents(r) {
                if let Some(ix) = &self.workflow_events {
                    push(&mut ndjson, ix, &event.record_id, &event);
                    actions.push((event.record_id.clone(), ix));
                }
                if let Some(ix) = &self.action_executions {
                    push(&mut ndjson, ix, &action.record_id, &action);
                    actions.push((action.record_id.clone(), ix));
                }
            }
        }
        // serde_json writes UTF-8 only.
        let ndjson = String::from_utf8(ndjson).unwrap_or_default();
        let items = match self.client.bulk_items(ndjson, actions.len(), refresh) {
            Err(e) => {
                if matches!(e, KnowledgeError::Unavailable { status: Some(404), .. }) {
                    // The index was deleted under us: create it again next time.
                    self.ensured.store(false, Ordering::Release);
                }
                return Err(e);
            }
            Ok(items) => items,
        };
        let mut failed = Vec::new();
        for ((record_id, index), BulkOutcome { status, error, .. }) in actions.into_iter().zip(items) {
            if (200..300).contains(&status) && error.is_none() {
                continue;
            }
            if status == 404 {
                self.ensured.store(false, Ordering::Release);
            }
            let (kind, reason) = error.unwrap_or_else(|| ("unknown".into(), String::new()));
            failed.push(ItemFailure { record_id, index: index.to_string(), status, kind, reason });
        }
        Ok(failed)
    }
}

/// A document to serialise into the `_bulk` body.
mod erased {
    /// Writes itself as JSON.
    pub(super) trait Doc {
        fn write(&self, out: &mut Vec<u8>);
    }

    impl<T: serde::Serialize> Doc for T {
        fn write(&self, out: &mut Vec<u8>) {
            let _ = serde_json::to_writer(out, self);
        }
    }
}

#[derive(Serialize)]
struct BulkAction<'a> {
    index: BulkTarget<'a>,
}

#[derive(Serialize)]
struct BulkTarget<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: &'a str,
}

/// A client error in the mirror's words (the client's own say "knowledge backend").
pub fn say(e: &KnowledgeError) -> String {
    match e {
        KnowledgeError::Unavailable { location, status, message, .. } => format!(
            "audit mirror {location} unavailable{}: {message}",
            status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
        ),
        other => format!("audit mirror: {other}"),
    }
}

/// Whether a failed call is worth retrying: connection failures, timeouts, 404 (the index
/// vanished; it is created again), 429 and 5xx are; 400/401/403 (a refused request, bad
/// credentials) need a person.
fn call_error(e: &KnowledgeError) -> DeliveryError {
    let reason = say(e);
    match e {
        KnowledgeError::Unavailable { status: None, .. } => DeliveryError::Retryable { reason, retry_after: None },
        // The cluster's Retry-After (a 429 or 503 asking for longer than the call waits)
        // schedules the row's next attempt, as Slack's and Jira's do.
        KnowledgeError::Unavailable { status: Some(s), retry_after, .. }
            if *s == 404 || *s == 408 || *s == 429 || *s >= 500 =>
        {
            DeliveryError::Retryable { reason, retry_after: *retry_after }
        }
        _ => DeliveryError::Permanent { reason },
    }
}

/// The outbox destination `elasticsearch`: one record's document per row, up to
/// `audit_mirror.batch_size` rows per `_bulk` call.
#[derive(Debug, Clone)]
pub struct EsMirrorChannel {
    mirror: Arc<EsMirror>,
}

impl EsMirrorChannel {
    /// A destination writing through `mirror`.
    pub fn new(mirror: Arc<EsMirror>) -> EsMirrorChannel {
        EsMirrorChannel { mirror }
    }
}

impl Channel for EsMirrorChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Elasticsearch
    }

    fn deliver(&self, n: &Notification, context: &DeliveryContext) -> Result<Delivered, DeliveryError> {
        self.deliver_batch(std::slice::from_ref(n), context).pop().unwrap_or_else(|| {
            Err(DeliveryError::Retryable { reason: "audit mirror: no result".into(), retry_after: None })
        })
    }

    fn batch_size(&self) -> usize {
        self.mirror.batch_size
    }

    /// One `_bulk` call for the rows; each row's result is its own documents' items: all
    /// written → delivered; any refused (400 mapper_parsing_exception…) → failed; only busy
    /// items (429, 5xx) → retried. A failed call (connection, 429/5xx on the request, 401…)
    /// is every row's result.
    fn deliver_batch(
        &self,
        notifications: &[Notification],
        _context: &DeliveryContext,
    ) -> Vec<Result<Delivered, DeliveryError>> {
        let failed = match self.mirror.write_all(notifications.iter().map(|n| &n.record), false) {
            Err(e) => {
                let e = call_error(&e);
                return notifications.iter().map(|_| Err(e.clone())).collect();
            }
            Ok(failed) => failed,
        };
        let mut by_record: BTreeMap<String, Vec<ItemFailure>> = BTreeMap::new();
        for f in failed {
            by_record.entry(f.record_id.clone()).or_default().push(f);
        }
        notifications
            .iter()
            .map(|n| {
                let id = n.record.id();
                let Some(failed) = by_record.get(&id) else {
                    return Ok(Delivered { reference: Some(format!("{}/{id}", self.mirror.index)) });
                };
                // The whole row again, later: the documents written already are written
                // again, the same (idempotent by id).
                let reason = failed.iter().map(|f| format!("audit mirror: {f}")).collect::<Vec<_>>().join("; ");
                if failed.iter().all(ItemFailure::retryable) {
                    Err(DeliveryError::Retryable { reason, retry_after: None })
                } else {
                    Err(DeliveryError::Permanent { reason })
                }
            })
            .collect()
    }
}

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Records in the chain (all verified).
    pub records: usize,
    /// Records whose documents were all written.
    pub written: usize,
    /// `_bulk` calls made.
    pub batches: usize,
    /// Whether this export created the index.
    pub created_index: bool,
    /// Records with a document the cluster refused.
    pub refused_records: usize,
    /// Every refused document, with why.
    pub failed: Vec<ItemFailure>,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store could not be read.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The chain does not verify; nothing was sent.
    #[error(
        "the chain does not verify ({} break(s), the first at seq {first_seq}: {first_problem}); nothing exported (guardrail audit verify)",
        breaks
    )]
    BrokenChain {
        /// How many breaks.
        breaks: usize,
        /// The first break's seq.
        first_seq: i64,
        /// What is wrong there.
        first_problem: String,
    },
    /// The cluster failed a call; what was written before stays (`partial`).
    #[error("{} (after {} of {records} records written; run the export again)", say(error), partial.written)]
    Cluster {
        /// The cluster's error.
        error: KnowledgeError,
        /// What was done before.
        partial: Box<ExportReport>,
        /// Records in the chain.
        records: usize,
    },
}

/// Verifies the chain, then writes every record's document to the mirror in `_bulk` calls of
/// `batch` records (the last with `refresh=wait_for`, so the counts are visible when this
/// returns). Failed items are collected and the export goes on; a failed call stops it.
pub fn export(
    store: &mut dyn AuditStore,
    mirror: &EsMirror,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ExportReport, ExportError> {
    let verified = store.verify()?;
    if let Some(first) = verified.breaks.first() {
        return Err(ExportError::BrokenChain {
            breaks: verified.breaks.len(),
            first_seq: first.seq,
            first_problem: first.problem.clone(),
        });
    }
    let records = store.all()?;
    // Records appended after the verification are exported too: each was sealed onto a head
    // the store checks, and the next export verifies them.
    let total = records.len();
    let mut report = ExportReport { records: total, ..ExportReport::default() };
    report.created_index = match mirror.ensure_index() {
        Ok(c) => c,
        Err(error) => return Err(ExportError::Cluster { error, partial: Box::new(report), records: total }),
    };
    let batch = batch.max(1);
    let chunks = total.div_ceil(batch);
    for (i, chunk) in records.chunks(batch).enumerate() {
        match mirror.write(chunk, i + 1 == chunks) {
            Ok(failed) => {
                let refused: std::collections::BTreeSet<&str> = failed.iter().map(|f| f.record_id.as_str()).collect();
                report.written += chunk.len() - refused.len();
                report.refused_records += refused.len();
                report.failed.extend(failed);
                report.batches += 1;
            }
            Err(error) => return Err(ExportError::Cluster { error, partial: Box::new(report), records: total }),
        }
        progress(report.written + report.refused_records, total);
    }
    Ok(report)
}
