//! One approval attempt against the queue folded from the audit trail: find the incident's
//! pending request, rebuild what was gated, and let the pure
//! [`guardrail_core::approval::decide_approval`] decide (self-approval, critical severity, the
//! reason of a FORCE_OVERRIDE, the plan hash, the approvers of the governor config).
//!
//! Shared by `guardrail approve` and `guardrail serve`'s `POST /api/incidents/{id}/approve`
//! and `/force-override`, so both refuse and grant exactly alike and record the same bodies.
//! Recording (and, for the CLI, executing) is the caller's: a grant that could not be recorded
//! is not granted.

use std::collections::BTreeMap;

use guardrail_core::approval::{
    ApprovalAttempt, ApprovalGrant, ApprovalKind, ApprovalPolicy, PendingApproval, binding_hash, decide_approval,
};
use guardrail_core::remediation::{Incident, PlanOutput};
use serde_json::Value;

use crate::queue::{IncidentState, TrailError, decision_parts, kinds};
use crate::record::{ApprovalRequestBody, GrantBody, RefusalBody, decode};

/// Who tries to release which incident, and how.
#[derive(Debug, Clone)]
pub struct ApprovalInput {
    /// Incident id.
    pub incident_id: String,
    /// Approve or force-override.
    pub kind: ApprovalKind,
    /// The approver (from `--as`, or from the bearer token over HTTP — never a request body).
    pub approver: String,
    /// Why (required for a FORCE_OVERRIDE).
    pub reason: Option<String>,
    /// The plan hash the approver reviewed, if named.
    pub reviewed_hash: Option<String>,
}

/// An attempt that was refused: what to record as `approval_refused`.
#[derive(Debug, Clone)]
pub struct Refused {
    /// Machine-readable code (`not_pending`, `self_approval`, `force_override_required`, …).
    pub code: String,
    /// Readable message.
    pub message: String,
    /// The pending request it was aimed at, if any.
    pub request_record: Option<String>,
    /// The pending request's plan hash, if any.
    pub binding_hash: Option<String>,
    /// The body of the `approval_refused` record.
    pub body: RefusalBody,
}

/// An attempt that was granted (once recorded).
#[derive(Debug, Clone)]
pub struct Granted {
    /// The grant.
    pub grant: ApprovalGrant,
    /// `approval_granted` or `force_override`.
    pub record_kind: &'static str,
    /// The body of that record.
    pub body: GrantBody,
    /// The gated incident.
    pub incident: Incident,
    /// The gated plan.
    pub plan: PlanOutput,
}

/// What an attempt comes to.
// Built once per attempt and consumed at once: boxing the refusal buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ApprovalStep {
    /// Refused (to be recorded).
    Refused(Refused),
    /// Granted (to be recorded before anything runs).
    Granted(Box<Granted>),
}

impl ApprovalInput {
    fn refused(&self, code: &str, message: String, request: Option<String>, hash: Option<String>) -> ApprovalStep {
        let body = RefusalBody {
            incident_id: self.incident_id.clone(),
            kind: self.kind.as_str().to_string(),
            approver: self.approver.clone(),
            reason: self.reason.clone(),
            code: code.to_string(),
            message: message.clone(),
            request_record: request.clone(),
            binding_hash: hash.clone(),
            reviewed_hash: self.reviewed_hash.clone(),
        };
        ApprovalStep::Refused(Refused { code: code.into(), message, request_record: request, binding_hash: hash, body })
    }
}

/// Decides one attempt against the folded states. `governor_config` describes the config in
/// force (file and hash) for the grant record. `Err` means the trail itself is unreadable
/// (could not decide).
pub fn decide_pending(
    states: &BTreeMap<String, IncidentState>,
    input: &ApprovalInput,
    policy: &ApprovalPolicy,
    governor_config: Value,
) -> Result<ApprovalStep, TrailError> {
    let id = &input.incident_id;
    let Some(st) = states.get(id) else {
        return Ok(input.refused("not_pending", format!("no incident {id} in the audit trail"), None, None));
    };
    let Some(request) = &st.pending else {
        return Ok(input.refused(
            "not_pending",
            format!("no blocked action awaits approval for {id} (status {})", st.status()),
            None,
            None,
        ));
    };
    let Some(decision) = &st.decision else {
        return Err(TrailError::RequestWithoutDecision { request: request.id() });
    };
    let (incident, plan, _) = decision_parts(decision)?;
    let rb: ApprovalRequestBody = decode(&request.body)
        .map_err(|e| TrailError::UnreadableRequest { request: request.id(), message: e.to_string() })?;
    let pending = PendingApproval {
        incident_id: id.clone(),
        severity: incident.severity,
        proposer: rb.proposer,
        action: rb.action,
        binding_hash: rb.binding_hash,
        requires_force_override: rb.requires_force_override,
    };
    let attempt = ApprovalAttempt {
        kind: input.kind,
        approver: input.approver.clone(),
        reason: input.reason.clone(),
        reviewed_hash: input.reviewed_hash.clone(),
        recorded_hash: binding_hash(&incident, &plan, &pending.action),
    };
    let grant = match decide_approval(&pending, &attempt, policy) {
        Ok(g) => g,
        Err(r) => {
            return Ok(input.refused(r.code(), r.to_string(), Some(request.id()), Some(pending.binding_hash.clone())));
        }
    };
    let record_kind = match grant.kind {
        ApprovalKind::Approve => kinds::APPROVAL_GRANTED,
        ApprovalKind::ForceOverride => kinds::FORCE_OVERRIDE,
    };
    let body = GrantBody {
        incident_id: id.clone(),
        kind: grant.kind.as_str().to_string(),
        approver: grant.approver.clone(),
        reason: grant.reason.clone(),
        action: grant.action.clone(),
        binding_hash: grant.binding_hash.clone(),
        request_record: request.id(),
        decision_record: decision.id(),
        proposer: pending.proposer.clone(),
        severity: incident.severity.as_str().to_string(),
        governor_config,
    };
    Ok(ApprovalStep::Granted(Box::new(Granted { grant, record_kind, body, incident, plan })))
}
