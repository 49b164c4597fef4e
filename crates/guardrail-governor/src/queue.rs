//! The approval queue, folded from the audit trail.
//!
//! A pending approval is an `approval_request` record not yet followed by a grant, a newer
//! decision for the same incident, or a consuming execution. The queue has no table of its own:
//! [`incident_states`] folds the governor's records, in chain order, into one [`IncidentState`]
//! per incident. Shared by the CLI (`incident list|show|execute`, `approve`) and the MCP
//! server's `incident_status` tool, so both read the same states from the same records.

use std::collections::BTreeMap;

use guardrail_core::audit::ChainedRecord;
use guardrail_core::remediation::{Incident, PlanOutput};
use serde::Deserialize;
use serde_json::Value;

use crate::record::{ApprovalRequestBody, DecisionBody, ExecutionBody, GrantBody, decode};

/// Audit record kinds written by the governor.
pub mod kinds {
    use crate::record::RecordKind;

    /// One pipeline run: incident, plan, stress, gate, trace, binding hash.
    pub const DECISION: &str = RecordKind::RemediationDecision.as_str();
    /// A pipeline run that could not decide.
    pub const ERROR: &str = RecordKind::RemediationError.as_str();
    /// A blocked action entering the approval queue.
    pub const APPROVAL_REQUEST: &str = RecordKind::ApprovalRequest.as_str();
    /// An approval attempt that was refused.
    pub const APPROVAL_REFUSED: &str = RecordKind::ApprovalRefused.as_str();
    /// An APPROVE that was granted.
    pub const APPROVAL_GRANTED: &str = RecordKind::ApprovalGranted.as_str();
    /// A FORCE_OVERRIDE that was granted.
    pub const FORCE_OVERRIDE: &str = RecordKind::ForceOverride.as_str();
    /// An execution (or dry run) and its result.
    pub const EXECUTION: &str = RecordKind::RemediationExecution.as_str();
    /// The claim an executor takes before running an authorised action (one winner per
    /// authorisation and attempt; see `guardrail_governor::pipeline`).
    pub const EXECUTION_CLAIM: &str = RecordKind::ExecutionClaim.as_str();
    /// A person's release of an execution claim that has no result (the executor is believed
    /// dead), so the authorisation can be claimed again (see `guardrail_governor::claims`).
    pub const CLAIM_RELEASE: &str = RecordKind::ClaimRelease.as_str();
    /// An execution refused because the action is not the authorised one.
    pub const EXECUTION_REFUSED: &str = RecordKind::ExecutionRefused.as_str();
    /// An incident resolved, with what was learned.
    pub const RESOLVED: &str = RecordKind::IncidentResolved.as_str();
    /// A learned runbook reviewed.
    pub const RUNBOOK_REVIEWED: &str = RecordKind::RunbookReviewed.as_str();

    /// Every kind the queue reads.
    pub const ALL: &[&str] = &[
        DECISION,
        ERROR,
        APPROVAL_REQUEST,
        APPROVAL_REFUSED,
        APPROVAL_GRANTED,
        FORCE_OVERRIDE,
        EXECUTION_CLAIM,
        CLAIM_RELEASE,
        EXECUTION,
        EXECUTION_REFUSED,
        RESOLVED,
    ];
}

/// Why the audit trail cannot say what was decided or requested for an incident: a
/// could-not-decide, never "nothing pending".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrailError {
    /// The audit store could not be read.
    #[error("audit store {store}: {message}")]
    Store {
        /// The store (described without credentials).
        store: String,
        /// What failed.
        message: String,
    },
    /// The audit log cannot read its own records (an adapter without a store to read).
    #[error("this audit log cannot read its records")]
    CannotRead,
    /// The trail holds no record of the incident.
    #[error("no incident {incident} in the audit trail")]
    NoIncident {
        /// The incident.
        incident: String,
    },
    /// No decision is recorded for the incident.
    #[error("no decision is recorded for incident {incident}")]
    NoDecision {
        /// The incident.
        incident: String,
    },
    /// A part of a decision record does not read.
    #[error("decision record {record} has an unreadable {part}: {message}")]
    Unreadable {
        /// The decision record.
        record: String,
        /// `body`, `incident` or `plan`.
        part: &'static str,
        /// Why.
        message: String,
    },
    /// A decision record without its gated action.
    #[error("decision record {record} has no gated_action")]
    NoGatedAction {
        /// The decision record.
        record: String,
    },
    /// A pending approval request whose incident has no decision.
    #[error("request {request} has no decision record")]
    RequestWithoutDecision {
        /// The approval request record.
        request: String,
    },
    /// A pending approval request that does not read.
    #[error("approval request {request} is unreadable: {message}")]
    UnreadableRequest {
        /// The approval request record.
        request: String,
        /// Why.
        message: String,
    },
}

/// What is authorised to run for an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorisation {
    /// The record that authorised it (the execute decision, or the grant).
    pub record: String,
    /// `gate`, `approve` or `force_override`.
    pub by: String,
    /// The approver, for a grant.
    pub approver: Option<String>,
    /// The action.
    pub action: String,
    /// The hash it is bound to.
    pub binding_hash: String,
}

/// One incident's state, folded from its records.
#[derive(Debug, Clone, Default)]
pub struct IncidentState {
    /// Incident id.
    pub incident_id: String,
    /// Every record about it, in chain order.
    pub records: Vec<ChainedRecord>,
    /// The newest decision.
    pub decision: Option<ChainedRecord>,
    /// The pending approval request, if any.
    pub pending: Option<ChainedRecord>,
    /// What may run now, if anything.
    pub authorised: Option<Authorisation>,
    /// The newest execution since the newest decision.
    pub execution: Option<ChainedRecord>,
    /// The newest resolution.
    pub resolved: Option<ChainedRecord>,
}

/// The field every governor body has.
#[derive(Default, serde::Deserialize)]
struct Subject {
    #[serde(default)]
    incident_id: String,
}

/// An incident's state as its records fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Resolved after its newest decision.
    Resolved,
    /// A blocked action waits for an approver.
    AwaitingApproval,
    /// Something is authorised to run (the gate's execute, or a grant) and has not run.
    Authorised,
    /// The newest execution succeeded.
    Executed,
    /// The newest execution did not succeed.
    ExecutionFailed,
    /// Decided, nothing pending, authorised or run.
    Decided,
    /// Only a could-not-decide is recorded.
    Error,
}

impl IncidentStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Resolved => "resolved",
            IncidentStatus::AwaitingApproval => "awaiting_approval",
            IncidentStatus::Authorised => "authorised",
            IncidentStatus::Executed => "executed",
            IncidentStatus::ExecutionFailed => "execution_failed",
            IncidentStatus::Decided => "decided",
            IncidentStatus::Error => "error",
        }
    }
}

impl std::fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl IncidentState {
    /// `awaiting_approval`, `authorised`, `executed`, `execution_failed`, `resolved`, `decided`
    /// or `error` ([`IncidentState::status_kind`] as its wire name).
    pub fn status(&self) -> &'static str {
        self.status_kind().as_str()
    }

    /// Where the incident stands.
    pub fn status_kind(&self) -> IncidentStatus {
        let after = |r: &Option<ChainedRecord>| match (r, &self.decision) {
            (Some(r), Some(d)) => r.seq > d.seq,
            (Some(_), None) => true,
            _ => false,
        };
        if after(&self.resolved) {
            IncidentStatus::Resolved
        } else if self.pending.is_some() {
            IncidentStatus::AwaitingApproval
        } else if self.authorised.is_some() {
            IncidentStatus::Authorised
        } else if let Some(e) = &self.execution {
            if decode::<ExecutionBody>(&e.body).is_ok_and(|b| b.ok) {
                IncidentStatus::Executed
            } else {
                IncidentStatus::ExecutionFailed
            }
        } else if self.decision.is_some() {
            IncidentStatus::Decided
        } else {
            IncidentStatus::Error
        }
    }

    /// The incident, plan and gated action of the newest decision.
    pub fn decided(&self) -> Result<(Incident, PlanOutput, String), TrailError> {
        let d = self.decision.as_ref().ok_or_else(|| TrailError::NoDecision { incident: self.incident_id.clone() })?;
        decision_parts(d)
    }

    /// A copy without the record list (`records` empty; everything else as it is): what
    /// deciding an approval reads ([`crate::approve::decide_pending`]: the queue entry, the
    /// decision, where the incident stands), without copying every record about the incident.
    pub fn without_records(&self) -> IncidentState {
        IncidentState {
            incident_id: self.incident_id.clone(),
            records: Vec::new(),
            decision: self.decision.clone(),
            pending: self.pending.clone(),
            authorised: self.authorised.clone(),
            execution: self.execution.clone(),
            resolved: self.resolved.clone(),
        }
    }

    /// The newest record's id.
    pub fn last_record(&self) -> String {
        self.records.last().map(ChainedRecord::id).unwrap_or_default()
    }
}

/// A [`DecisionBody`] read for its shape only: every field of the same type, the free-form
/// values (`serde::de::IgnoredAny`) checked as `Value` checks them (anything) but not copied.
/// It refuses exactly the bodies `DecisionBody` refuses (`decision_shape_refuses_what_the_body_refuses`).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
#[allow(dead_code)] // read for the check; only `gated_action` and `planner_transcript` are used
pub(crate) struct DecisionShape {
    incident_id: String,
    incident: serde::de::IgnoredAny,
    origin: serde::de::IgnoredAny,
    proposer: String,
    gated_action: String,
    binding_hash: String,
    decision: String,
    rule: String,
    reasons: Vec<String>,
    requires_force_override: bool,
    outcome: serde::de::IgnoredAny,
    knowledge_base: String,
    logs: Option<String>,
    deploy_signals: Option<serde::de::IgnoredAny>,
    governor_config: serde::de::IgnoredAny,
    gate_inputs: serde::de::IgnoredAny,
    pub(crate) planner_transcript: Option<crate::transcript::TranscriptRef>,
}

/// The incident, the plan and the gated action recorded in a decision record.
pub fn decision_parts(d: &ChainedRecord) -> Result<(Incident, PlanOutput, String), TrailError> {
    let bad = |part: &'static str, e: &dyn std::fmt::Display| TrailError::Unreadable {
        record: d.id(),
        part,
        message: e.to_string(),
    };
    // The body reads as a `DecisionBody` would (the same fields of the same types), without
    // copying its values: the incident and the plan are read where they lie.
    let body: DecisionShape = decode(&d.body).map_err(|e| bad("body", &e))?;
    let incident =
        Incident::from_json_value(d.body.get("incident").unwrap_or(&Value::Null)).map_err(|e| bad("incident", &e))?;
    let output = d.body.get("outcome").and_then(|o| o.pointer("/plan/output")).unwrap_or(&Value::Null);
    let plan = PlanOutput::deserialize(output).map_err(|e| bad("plan", &e))?;
    let action = body.gated_action;
    if action.is_empty() {
        return Err(TrailError::NoGatedAction { record: d.id() });
    }
    Ok((incident, plan, action))
}

/// Folds the governor's records into one state per incident.
pub fn incident_states(records: &[ChainedRecord]) -> BTreeMap<String, IncidentState> {
    let mut out: BTreeMap<String, IncidentState> = BTreeMap::new();
    for r in records {
        fold_record(&mut out, r);
    }
    out
}

/// [`incident_states`] kept between reads of a growing chain: the states and the record the
/// fold stopped at, so a long-lived reader (`guardrail serve`'s incident and approval views)
/// folds only the records appended since instead of the whole chain at every call.
#[derive(Debug, Clone, Default)]
pub struct IncidentFold {
    states: BTreeMap<String, IncidentState>,
    /// Seq and hash of the last record folded in.
    last: Option<(i64, String)>,
}

impl IncidentFold {
    /// The seq of the last record folded in (0 before any).
    pub fn last_seq(&self) -> i64 {
        self.last.as_ref().map_or(0, |(seq, _)| *seq)
    }

    /// The hash of the last record folded in (`None` before any).
    pub fn last_hash(&self) -> Option<&str> {
        self.last.as_ref().map(|(_, hash)| hash.as_str())
    }

    /// The states so far.
    pub fn states(&self) -> &BTreeMap<String, IncidentState> {
        &self.states
    }

    /// Folds in `newer`, the records after [`last_seq`](Self::last_seq) in chain order. Returns
    /// false, folding nothing, when they do not continue the chain where this fold stopped (a
    /// first seq that is not the next one, or a `prev_hash` that is not the last hash folded:
    /// the store was replaced or rewritten): the caller then folds again from the start.
    pub fn extend(&mut self, newer: &[ChainedRecord]) -> bool {
        let Some(expect) = self.continued(newer) else { return false };
        for r in newer {
            fold_record(&mut self.states, r);
        }
        self.last = expect;
        true
    }

    /// Where the fold ends once `newer` is folded in, if they continue it (see
    /// [`IncidentFold::extend`]); `None` when they do not.
    fn continued(&self, newer: &[ChainedRecord]) -> Option<Option<(i64, String)>> {
        let mut at = self.last.as_ref().map(|(seq, hash)| (*seq, hash.as_str()));
        for r in newer {
            let continues = match at {
                None => r.seq == 1,
                Some((seq, hash)) => r.seq == seq + 1 && r.prev_hash == hash,
            };
            if !continues {
                return None;
            }
            at = Some((r.seq, r.hash.as_str()));
        }
        Some(match newer.last() {
            Some(r) => Some((r.seq, r.hash.clone())),
            None => self.last.clone(),
        })
    }
}

/// The kinds of records that can change what an incident's grant releases (its decision, its
/// request, the grants): what a grant's claim is re-decided over ([`authorised_after`]).
pub const RELEASE_KINDS: [&str; 4] =
    [kinds::DECISION, kinds::APPROVAL_REQUEST, kinds::APPROVAL_GRANTED, kinds::FORCE_OVERRIDE];

/// What is authorised for `st`'s incident once `newer` (records after those `st` was folded
/// from, in chain order; other incidents' records are skipped) and then `grant` are folded in:
/// the fold's own rule, so "this grant released the request" reads the same here as in every
/// view of the chain.
pub fn authorised_after(st: IncidentState, newer: &[&ChainedRecord], grant: &ChainedRecord) -> Option<Authorisation> {
    let id = st.incident_id.clone();
    let mut states = BTreeMap::from([(id.clone(), st)]);
    let about = |r: &ChainedRecord| r.body.get("incident_id").and_then(serde_json::Value::as_str) == Some(&id);
    for r in newer.iter().copied().chain(std::iter::once(grant)).filter(|r| about(r)) {
        fold_record(&mut states, r);
    }
    states.remove(&id).and_then(|s| s.authorised)
}

/// `st` as far as what a grant releases goes ([`authorised_after`]): its decision and request
/// by their ids alone (all the fold compares of them: seq and hash, no body copied: a decision
/// carries its whole transcript) and what is authorised.
pub fn release_view(st: &IncidentState) -> IncidentState {
    let id_only = |r: &ChainedRecord| ChainedRecord {
        seq: r.seq,
        kind: r.kind.clone(),
        recorded_at: String::new(),
        body: serde_json::Value::Null,
        prev_hash: String::new(),
        hash: r.hash.clone(),
    };
    IncidentState {
        incident_id: st.incident_id.clone(),
        records: Vec::new(),
        decision: st.decision.as_ref().map(id_only),
        pending: st.pending.as_ref().map(id_only),
        authorised: st.authorised.clone(),
        execution: None,
        resolved: None,
    }
}

/// One record into the states (records of other kinds, or without an incident, change nothing).
fn fold_record(out: &mut BTreeMap<String, IncidentState>, r: &ChainedRecord) {
    // Copied only when it is kept (as [`fold_owned`] keeps it).
    if kinds::ALL.contains(&r.kind.as_str()) && !subject(&r.body).is_empty() {
        fold_owned(out, r.clone());
    }
}

/// The incident a record is about, as `Subject` decodes it (empty when it names none): read in
/// place from an object body (a missing or non-string `incident_id` decodes as empty), decoded
/// from any other body.
fn subject(body: &Value) -> std::borrow::Cow<'_, str> {
    match body {
        Value::Object(o) => {
            std::borrow::Cow::Borrowed(o.get("incident_id").and_then(Value::as_str).unwrap_or_default())
        }
        other => std::borrow::Cow::Owned(decode::<Subject>(other).unwrap_or_default().incident_id),
    }
}

/// [`fold_record`] of a record the states may keep as it is.
fn fold_owned(out: &mut BTreeMap<String, IncidentState>, r: ChainedRecord) {
    if !kinds::ALL.contains(&r.kind.as_str()) {
        return;
    }
    let id = subject(&r.body);
    if id.is_empty() {
        return;
    }
    // Looked up by the borrowed id: a String is made only for an incident first seen.
    if !out.contains_key(id.as_ref()) {
        let id = id.to_string();
        out.insert(id.clone(), IncidentState { incident_id: id, ..Default::default() });
    }
    let Some(st) = out.get_mut(id.as_ref()) else { return };
    // A body that does not decode reads as empty (as a missing field did): it authorises
    // nothing and matches no request or grant.
    match r.kind.as_str() {
        kinds::DECISION => {
            let b: DecisionBody = decode(&r.body).unwrap_or_default();
            st.decision = Some(r.clone());
            st.pending = None;
            st.execution = None;
            st.authorised = (b.decision == "execute").then(|| Authorisation {
                record: r.id(),
                by: "gate".into(),
                approver: None,
                action: b.gated_action,
                binding_hash: b.binding_hash,
            });
        }
        kinds::APPROVAL_REQUEST => {
            let b: ApprovalRequestBody = decode(&r.body).unwrap_or_default();
            let current = st.decision.as_ref().is_some_and(|d| d.id() == b.decision_record);
            if current {
                st.pending = Some(r.clone());
            }
        }
        kinds::APPROVAL_GRANTED | kinds::FORCE_OVERRIDE => {
            let b: GrantBody = decode(&r.body).unwrap_or_default();
            let matches = st.pending.as_ref().is_some_and(|p| p.id() == b.request_record);
            if matches {
                st.pending = None;
                st.authorised = Some(Authorisation {
                    record: r.id(),
                    by: b.kind,
                    approver: Some(b.approver),
                    action: b.action,
                    binding_hash: b.binding_hash,
                });
            }
        }
        kinds::EXECUTION => {
            let b: ExecutionBody = decode(&r.body).unwrap_or_default();
            let this = st.authorised.as_ref().is_some_and(|a| a.record == b.authorised_by_record);
            if this && b.ran {
                st.authorised = None;
            }
            st.execution = Some(r.clone());
        }
        kinds::RESOLVED => st.resolved = Some(r.clone()),
        _ => {}
    }
    st.records.push(r);
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardrail_core::audit::{RecordDraft, seal};

    fn chain(bodies: &[(&str, serde_json::Value)]) -> Vec<ChainedRecord> {
        let mut out: Vec<ChainedRecord> = Vec::new();
        for (kind, body) in bodies {
            let draft =
                RecordDraft { kind: (*kind).into(), recorded_at: "2026-11-24T10:00:00Z".into(), body: body.clone() };
            out.push(seal(out.last(), draft));
        }
        out
    }

    fn summary(states: &BTreeMap<String, IncidentState>) -> Vec<(String, usize, Option<String>, Option<String>)> {
        states
            .values()
            .map(|s| {
                let auth = s.authorised.as_ref().map(|a| a.record.clone());
                (s.incident_id.clone(), s.records.len(), s.decision.as_ref().map(ChainedRecord::id), auth)
            })
            .collect()
    }

    /// The shape check refuses exactly what decoding the whole `DecisionBody` refuses: every
    /// field given a value of each JSON type, one at a time, and bodies that are not objects.
    #[test]
    fn decision_shape_refuses_what_the_body_refuses() {
        let full =
            crate::record::encode(&DecisionBody { planner_transcript: Some(Default::default()), ..Default::default() });
        let keys: Vec<String> = full.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 17, "a field was added to DecisionBody: add it to DecisionShape");
        let values = [
            serde_json::json!(null),
            serde_json::json!(true),
            serde_json::json!(1),
            serde_json::json!(-1.5),
            serde_json::json!("x"),
            serde_json::json!(["x"]),
            serde_json::json!([1]),
            serde_json::json!({"x": 1}),
            serde_json::json!({"record": "1-ab", "hash": "ab", "planner": "p", "model": "m", "outcome": "ok"}),
        ];
        let mut bodies: Vec<Value> = vec![serde_json::json!([]), serde_json::json!("body"), serde_json::json!(null)];
        for k in &keys {
            for v in &values {
                let mut b = full.clone();
                b[k.as_str()] = v.clone();
                bodies.push(b);
            }
        }
        for b in &bodies {
            let whole = decode::<DecisionBody>(b).is_ok();
            assert_eq!(decode::<DecisionShape>(b).is_ok(), whole, "{b}");
        }
    }

    #[test]
    fn the_incremental_fold_is_the_whole_fold() {
        let d = |inc: &str, decision: &str| serde_json::json!({"incident_id": inc, "decision": decision, "gated_action": "restart", "binding_hash": "h"});
        let records = chain(&[
            (kinds::DECISION, d("INC-1", "execute")),
            ("deploy_decision", serde_json::json!({"action": "ALLOW"})),
            (kinds::DECISION, d("INC-2", "block")),
            (kinds::DECISION, d("INC-1", "block")),
            (kinds::RESOLVED, serde_json::json!({"incident_id": "INC-2"})),
        ]);
        let whole = incident_states(&records);
        let mut fold = IncidentFold::default();
        assert!(fold.extend(&records[..2]));
        assert!(fold.extend(&[]));
        assert!(fold.extend(&records[2..]));
        assert_eq!(fold.last_seq(), 5);
        assert_eq!(summary(fold.states()), summary(&whole));
        // Records that do not continue where the fold stopped are refused, nothing folded.
        let other = chain(&vec![(kinds::DECISION, d("INC-9", "execute")); 6]);
        assert!(!fold.extend(&other[5..]), "a seq 6 whose prev_hash is another chain's");
        assert!(!fold.extend(&records[3..]), "records already folded");
        assert_eq!(summary(fold.states()), summary(&whole));
        assert!(!IncidentFold::default().extend(&records[1..]), "a fresh fold starts at seq 1");
    }

    /// The fold reads the incident a body names exactly as decoding `Subject` does, whatever
    /// the body, and keeps each record once in its incident's list.
    #[test]
    fn the_fold_reads_the_subject_as_decoding_does() {
        let bodies = [
            serde_json::json!({"incident_id": "INC-1"}),
            serde_json::json!({"incident_id": ""}),
            serde_json::json!({"incident_id": null}),
            serde_json::json!({"incident_id": 7}),
            serde_json::json!({"incident_id": ["INC-1"]}),
            serde_json::json!({"other": "INC-1"}),
            serde_json::json!(["INC-3"]),
            serde_json::json!(["INC-3", "block"]),
            serde_json::json!([["INC-3"]]),
            serde_json::json!([]),
            serde_json::json!("INC-1"),
            serde_json::json!(null),
            serde_json::json!(3),
        ];
        for b in &bodies {
            assert_eq!(subject(b), decode::<Subject>(b).unwrap_or_default().incident_id, "{b}");
        }
        let d = |inc: &str, decision: &str| serde_json::json!({"incident_id": inc, "decision": decision, "gated_action": "restart", "binding_hash": "h"});
        let mut steps = vec![
            (kinds::DECISION, d("INC-1", "block")),
            (kinds::DECISION, d("INC-2", "execute")),
            ("deploy_decision", serde_json::json!({"incident_id": "INC-1"})),
            (kinds::RESOLVED, serde_json::json!({"incident_id": "INC-2"})),
            (kinds::DECISION, serde_json::json!(["INC-3", "block"])),
        ];
        steps.extend(bodies.iter().map(|b| (kinds::EXECUTION, b.clone())));
        let records = chain(&steps);
        let mut fold = IncidentFold::default();
        assert!(fold.extend(&records[..3]) && fold.extend(&records[3..]));
        let states = fold.states();
        assert_eq!(states.keys().collect::<Vec<_>>(), ["INC-1", "INC-2", "INC-3"]);
        // INC-1: its decision and the execution whose body names it; INC-3: only the execution
        // whose one-element array body decodes as naming it (a longer array does not decode).
        let seqs = |id: &str| states[id].records.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs("INC-1"), [1, 6]);
        assert_eq!(seqs("INC-2"), [2, 4]);
        assert_eq!(seqs("INC-3"), [12]);
        assert_eq!(states["INC-1"].decision.as_ref().map(|r| r.seq), Some(1));
        assert_eq!(states["INC-1"].execution.as_ref().map(|r| r.seq), Some(6));
        assert_eq!(states["INC-2"].resolved.as_ref().map(|r| r.seq), Some(4));
        assert_eq!(summary(states), summary(&incident_states(&records)));
    }

    /// What a grant releases, re-decided from an id-only view of the state before it and the
    /// records since, reads as the whole fold reads it: the first grant of the current request
    /// releases it; a later grant, a grant of a superseded request, or one after a new decision
    /// does not.
    #[test]
    fn a_grant_releases_by_the_folds_own_rule_from_an_id_only_view() {
        use serde_json::json;
        let mut recs = chain(&[
            (kinds::DECISION, json!({"incident_id": "i", "decision": "approval_required"})),
            (kinds::DECISION, json!({"incident_id": "other", "decision": "execute"})),
        ]);
        let push = |recs: &mut Vec<ChainedRecord>, kind: &str, body: serde_json::Value| {
            let d = RecordDraft { kind: kind.into(), recorded_at: "2026-11-24T10:00:00Z".into(), body };
            let r = seal(recs.last(), d);
            recs.push(r.clone());
            r
        };
        let d1 = recs[0].id();
        let req = push(&mut recs, kinds::APPROVAL_REQUEST, json!({"incident_id": "i", "decision_record": d1}));
        let view_at = recs.len();
        let grant = |req: &ChainedRecord, who: &str| {
            json!({"incident_id": "i", "kind": "approve", "approver": who, "action": "a", "binding_hash": "h",
                   "request_record": req.id()})
        };
        let check = |recs: &[ChainedRecord], at: usize, g: &ChainedRecord| {
            let before = incident_states(&recs[..at]);
            let newer: Vec<&ChainedRecord> = recs[at..].iter().filter(|r| r.seq < g.seq).collect();
            let got = authorised_after(release_view(&before["i"]), &newer, g);
            let whole = incident_states(&recs[..g.seq as usize]);
            assert_eq!(got.as_ref().map(|a| &a.record), whole["i"].authorised.as_ref().map(|a| &a.record));
            got.is_some_and(|a| a.record == g.id())
        };
        let first = push(&mut recs, kinds::APPROVAL_GRANTED, grant(&req, "bob"));
        assert!(check(&recs, view_at, &first), "the first grant releases");
        push(&mut recs, kinds::DECISION, json!({"incident_id": "other", "decision": "execute"}));
        let second = push(&mut recs, kinds::FORCE_OVERRIDE, grant(&req, "carol"));
        assert!(!check(&recs, view_at, &second), "a later grant does not");
        // A new decision and request: a grant of the old request releases nothing.
        let d2 = push(&mut recs, kinds::DECISION, json!({"incident_id": "i", "decision": "approval_required"}));
        let req2 = push(&mut recs, kinds::APPROVAL_REQUEST, json!({"incident_id": "i", "decision_record": d2.id()}));
        let stale = push(&mut recs, kinds::APPROVAL_GRANTED, grant(&req, "dave"));
        assert!(!check(&recs, view_at, &stale), "a grant of a superseded request does not");
        let fresh = push(&mut recs, kinds::APPROVAL_GRANTED, grant(&req2, "erin"));
        assert!(check(&recs, view_at, &fresh), "the first grant of the new request does");
    }
}
