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
use serde_json::Value;

/// Audit record kinds written by the governor.
pub mod kinds {
    /// One pipeline run: incident, plan, stress, gate, trace, binding hash.
    pub const DECISION: &str = "remediation_decision";
    /// A pipeline run that could not decide.
    pub const ERROR: &str = "remediation_error";
    /// A blocked action entering the approval queue.
    pub const APPROVAL_REQUEST: &str = "approval_request";
    /// An approval attempt that was refused.
    pub const APPROVAL_REFUSED: &str = "approval_refused";
    /// An APPROVE that was granted.
    pub const APPROVAL_GRANTED: &str = "approval_granted";
    /// A FORCE_OVERRIDE that was granted.
    pub const FORCE_OVERRIDE: &str = "force_override";
    /// An execution (or dry run) and its result.
    pub const EXECUTION: &str = "remediation_execution";
    /// The claim an executor takes before running an authorised action (one winner per
    /// authorisation and attempt; see `guardrail_governor::pipeline`).
    pub const EXECUTION_CLAIM: &str = "execution_claim";
    /// A person's release of an execution claim that has no result (the executor is believed
    /// dead), so the authorisation can be claimed again (see `guardrail_governor::claims`).
    pub const CLAIM_RELEASE: &str = "claim_release";
    /// An execution refused because the action is not the authorised one.
    pub const EXECUTION_REFUSED: &str = "execution_refused";
    /// An incident resolved, with what was learned.
    pub const RESOLVED: &str = "incident_resolved";
    /// A learned runbook reviewed.
    pub const RUNBOOK_REVIEWED: &str = "runbook_reviewed";

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

fn s<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

impl IncidentState {
    /// `awaiting_approval`, `authorised`, `executed`, `execution_failed`, `resolved`, `decided`
    /// or `error`.
    pub fn status(&self) -> &'static str {
        let after = |r: &Option<ChainedRecord>| match (r, &self.decision) {
            (Some(r), Some(d)) => r.seq > d.seq,
            (Some(_), None) => true,
            _ => false,
        };
        if after(&self.resolved) {
            "resolved"
        } else if self.pending.is_some() {
            "awaiting_approval"
        } else if self.authorised.is_some() {
            "authorised"
        } else if let Some(e) = &self.execution {
            if e.body.get("ok").and_then(Value::as_bool) == Some(true) { "executed" } else { "execution_failed" }
        } else if self.decision.is_some() {
            "decided"
        } else {
            "error"
        }
    }

    /// The incident, plan and gated action of the newest decision.
    pub fn decided(&self) -> Result<(Incident, PlanOutput, String), String> {
        let d = self
            .decision
            .as_ref()
            .ok_or_else(|| format!("no decision is recorded for incident {}", self.incident_id))?;
        decision_parts(d)
    }

    /// The newest record's id.
    pub fn last_record(&self) -> String {
        self.records.last().map(ChainedRecord::id).unwrap_or_default()
    }
}

/// The incident, the plan and the gated action recorded in a decision record.
pub fn decision_parts(d: &ChainedRecord) -> Result<(Incident, PlanOutput, String), String> {
    let bad =
        |what: &str, e: &dyn std::fmt::Display| format!("decision record {} has an unreadable {what}: {e}", d.id());
    let incident =
        Incident::from_json_value(d.body.get("incident").unwrap_or(&Value::Null)).map_err(|e| bad("incident", &e))?;
    let plan: PlanOutput =
        serde_json::from_value(d.body.pointer("/outcome/plan/output").cloned().unwrap_or(Value::Null))
            .map_err(|e| bad("plan", &e))?;
    let action = s(&d.body, "gated_action").to_string();
    if action.is_empty() {
        return Err(format!("decision record {} has no gated_action", d.id()));
    }
    Ok((incident, plan, action))
}

/// Folds the governor's records into one state per incident.
pub fn incident_states(records: &[ChainedRecord]) -> BTreeMap<String, IncidentState> {
    let mut out: BTreeMap<String, IncidentState> = BTreeMap::new();
    for r in records.iter().filter(|r| kinds::ALL.contains(&r.kind.as_str())) {
        let id = s(&r.body, "incident_id");
        if id.is_empty() {
            continue;
        }
        let st =
            out.entry(id.to_string()).or_insert_with(|| IncidentState { incident_id: id.into(), ..Default::default() });
        st.records.push(r.clone());
        match r.kind.as_str() {
            kinds::DECISION => {
                st.decision = Some(r.clone());
                st.pending = None;
                st.execution = None;
                st.authorised = (s(&r.body, "decision") == "execute").then(|| Authorisation {
                    record: r.id(),
                    by: "gate".into(),
                    approver: None,
                    action: s(&r.body, "gated_action").into(),
                    binding_hash: s(&r.body, "binding_hash").into(),
                });
            }
            kinds::APPROVAL_REQUEST => {
                let current = st.decision.as_ref().is_some_and(|d| d.id() == s(&r.body, "decision_record"));
                if current {
                    st.pending = Some(r.clone());
                }
            }
            kinds::APPROVAL_GRANTED | kinds::FORCE_OVERRIDE => {
                let matches = st.pending.as_ref().is_some_and(|p| p.id() == s(&r.body, "request_record"));
                if matches {
                    st.pending = None;
                    st.authorised = Some(Authorisation {
                        record: r.id(),
                        by: s(&r.body, "kind").into(),
                        approver: Some(s(&r.body, "approver").into()),
                        action: s(&r.body, "action").into(),
                        binding_hash: s(&r.body, "binding_hash").into(),
                    });
                }
            }
            kinds::EXECUTION => {
                let consumed = r.body.get("ran").and_then(Value::as_bool) == Some(true);
                let this = st.authorised.as_ref().is_some_and(|a| a.record == s(&r.body, "authorised_by_record"));
                if this && consumed {
                    st.authorised = None;
                }
                st.execution = Some(r.clone());
            }
            kinds::RESOLVED => st.resolved = Some(r.clone()),
            _ => {}
        }
    }
    out
}
