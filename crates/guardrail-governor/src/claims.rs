//! Execution claims as the trail shows them, and the audited release of a stale one.
//!
//! Every execution first appends an `execution_claim` (see [`crate::pipeline`]); its result is
//! the `remediation_execution` whose `claim_record` names it. A claim without a result means
//! the executor died (or is still running) between claim and result: the authorisation stays
//! claimed and nothing runs again on it (fail closed).
//!
//! [`release_claim`] is the way out, for a person: an approver of the incident's severity (the
//! governor config's `approvers` or `force_override` for that severity), with a reason, and
//! only while the claim has no result. It appends a `claim_release` record through
//! [`crate::pipeline::AuditLog::append_claim`] keyed by the claim, so a claim is released at
//! most once; [`crate::pipeline::attempts`] counts releases, so the next execution of the same
//! authorisation claims the next attempt key. If the executor was in fact alive and records its
//! result later, the trail shows both: the release says who decided it was dead, and why.

use guardrail_core::approval::{ApprovalPolicy, valid_user};
use guardrail_core::audit::ChainedRecord;
use guardrail_store::{AppendError, Claim};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pipeline::AuditLog;
use crate::queue::{IncidentState, kinds};
use crate::record::{ClaimBody, ClaimReleaseBody, ExecutionBody, decode, encode};

/// One `execution_claim` of an incident with what followed it.
#[derive(Debug, Clone)]
pub struct ClaimView {
    /// The claim record.
    pub record: ChainedRecord,
    /// Its body, decoded.
    pub body: ClaimBody,
    /// The execution record naming it as its claim, if any.
    pub result: Option<ChainedRecord>,
    /// The `claim_release` record of it, if any.
    pub released: Option<ChainedRecord>,
}

impl ClaimView {
    /// The claim key (`<authorising record>#<attempt>`).
    pub fn key(&self) -> &str {
        &self.body.claim
    }

    /// `result_recorded`, `released` or `claimed_no_result`.
    pub fn status(&self) -> &'static str {
        self.state().as_str()
    }

    /// Where the claim stands.
    pub fn state(&self) -> ClaimStatus {
        match (&self.result, &self.released) {
            (Some(_), _) => ClaimStatus::ResultRecorded,
            (None, Some(_)) => ClaimStatus::Released,
            (None, None) => ClaimStatus::ClaimedNoResult,
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        let b = &self.body;
        let head = format!("claim {} of {} by {} at {}", self.key(), b.action, b.requested_by, self.record.recorded_at);
        match (&self.result, &self.released) {
            (Some(r), _) => {
                let e: ExecutionBody = decode(&r.body).unwrap_or_default();
                format!("{head}: result {} (ran={}, ok={})", r.id(), e.ran, e.ok)
            }
            (None, Some(rel)) => {
                let release: ClaimReleaseBody = decode(&rel.body).unwrap_or_default();
                format!(
                    "{head}: claimed, no result recorded; released by {} at {} ({}): {}",
                    release.released_by,
                    rel.recorded_at,
                    rel.id(),
                    release.reason
                )
            }
            (None, None) => format!("{head}: claimed, no result recorded (the executor may have died)"),
        }
    }

    /// The view of `incident show --format json`.
    pub fn view(&self) -> ClaimJson {
        let b = &self.body;
        ClaimJson {
            record: self.record.id(),
            claim: b.claim.clone(),
            action: b.action.clone(),
            executor: b.executor.clone(),
            claimed_by: b.requested_by.clone(),
            claimed_at: self.record.recorded_at.clone(),
            authorised_by_record: b.authorised_by_record.clone(),
            status: self.state(),
            result_record: self.result.as_ref().map(ChainedRecord::id),
            result_ok: self.result.as_ref().map(|r| decode::<ExecutionBody>(&r.body).is_ok_and(|e| e.ok)),
            release: self.released.as_ref().map(|r| {
                let rel: ClaimReleaseBody = decode(&r.body).unwrap_or_default();
                ReleaseJson {
                    record: r.id(),
                    released_by: rel.released_by,
                    released_at: r.recorded_at.clone(),
                    reason: rel.reason,
                }
            }),
        }
    }

    /// [`ClaimView::view`] as JSON (keys sorted, as every JSON Guardrail prints).
    pub fn to_json(&self) -> Value {
        encode(&self.view())
    }
}

/// Where an execution claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// Its execution result is recorded.
    ResultRecorded,
    /// It has no result and was released by a person.
    Released,
    /// It has no result (the executor may have died, or still runs).
    ClaimedNoResult,
}

impl ClaimStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStatus::ResultRecorded => "result_recorded",
            ClaimStatus::Released => "released",
            ClaimStatus::ClaimedNoResult => "claimed_no_result",
        }
    }
}

/// A claim as `incident show --format json` (and `GET /api/incidents/{id}`) shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimJson {
    /// The claim record's id.
    pub record: String,
    /// `<authorising record>#<attempt>`.
    pub claim: String,
    pub action: String,
    pub executor: String,
    pub claimed_by: String,
    pub claimed_at: String,
    pub authorised_by_record: String,
    /// `result_recorded`, `released` or `claimed_no_result`.
    pub status: ClaimStatus,
    pub result_record: Option<String>,
    pub result_ok: Option<bool>,
    pub release: Option<ReleaseJson>,
}

/// The release of a claim, in [`ClaimJson`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseJson {
    /// The `claim_release` record's id.
    pub record: String,
    pub released_by: String,
    pub released_at: String,
    pub reason: String,
}

/// The record a result or release names as its claim.
#[derive(serde::Deserialize)]
struct NamesClaim {
    claim_record: Option<String>,
}

/// Every execution claim of the incident, in chain order, with its result and release.
pub fn claims(st: &IncidentState) -> Vec<ClaimView> {
    let named = |kind: &str, claim: &str| {
        st.records
            .iter()
            .find(|r| {
                r.kind == kind && decode::<NamesClaim>(&r.body).is_ok_and(|n| n.claim_record.as_deref() == Some(claim))
            })
            .cloned()
    };
    st.records
        .iter()
        .filter(|r| r.kind == kinds::EXECUTION_CLAIM)
        .map(|c| {
            let id = c.id();
            ClaimView {
                record: c.clone(),
                body: decode(&c.body).unwrap_or_default(),
                result: named(kinds::EXECUTION, &id),
                released: named(kinds::CLAIM_RELEASE, &id),
            }
        })
        .collect()
}

/// A request to release the incident's newest claim.
#[derive(Debug, Clone)]
pub struct ReleaseInput {
    /// Incident id.
    pub incident_id: String,
    /// Who releases it (an approver of the incident's severity).
    pub by: String,
    /// Why (required: the executor is believed dead, and how that was established).
    pub reason: String,
}

/// Why a release was refused (nothing was recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseRefusal {
    /// No reason given.
    NoReason,
    /// Not a user name.
    InvalidUser,
    /// Not an approver (nor a force-overrider) of the incident's severity.
    NotApprover,
    /// The incident has no execution claim.
    NoClaim,
    /// The newest claim has an execution result: there is nothing stale to release.
    ResultExists,
    /// The newest claim is already released.
    AlreadyReleased,
}

impl ReleaseRefusal {
    /// Stable code, for JSON.
    pub fn code(self) -> &'static str {
        match self {
            ReleaseRefusal::NoReason => "no_reason",
            ReleaseRefusal::InvalidUser => "invalid_user",
            ReleaseRefusal::NotApprover => "not_approver",
            ReleaseRefusal::NoClaim => "no_claim",
            ReleaseRefusal::ResultExists => "result_exists",
            ReleaseRefusal::AlreadyReleased => "already_released",
        }
    }
}

/// What a release attempt came to.
#[derive(Debug)]
pub enum ReleaseOutcome {
    /// The trail cannot say (no such incident, no readable decision).
    CannotDecide(crate::queue::TrailError),
    /// Refused; nothing recorded.
    Refused {
        /// Why, as a code.
        refusal: ReleaseRefusal,
        /// Why, for people.
        message: String,
    },
    /// Released: the `claim_release` record.
    Released {
        /// The claim released.
        claim: Box<ClaimView>,
        /// The release record.
        record: ChainedRecord,
    },
    /// Another release of the same claim was recorded first.
    AlreadyReleasedBy(ChainedRecord),
    /// The release could not be recorded (see the error: not in the chain, or in it with a
    /// failed mirror copy).
    NotRecorded(AppendError),
}

fn refused(refusal: ReleaseRefusal, message: String) -> ReleaseOutcome {
    ReleaseOutcome::Refused { refusal, message }
}

/// Releases the newest execution claim of `input.incident_id` (as folded in `states`, read just
/// before), under the rules in the module documentation.
pub fn release_claim(
    log: &mut dyn AuditLog,
    states: &std::collections::BTreeMap<String, IncidentState>,
    input: &ReleaseInput,
    policy: &ApprovalPolicy,
) -> ReleaseOutcome {
    let by = input.by.trim();
    let reason = input.reason.trim();
    if reason.is_empty() {
        return refused(ReleaseRefusal::NoReason, "a claim is released only with a reason".into());
    }
    if !valid_user(by) {
        return refused(
            ReleaseRefusal::InvalidUser,
            format!("{by:?} is not a user name (1-64 of A-Z a-z 0-9 . _ @ -)"),
        );
    }
    let Some(st) = states.get(&input.incident_id) else {
        return ReleaseOutcome::CannotDecide(crate::queue::TrailError::NoIncident {
            incident: input.incident_id.clone(),
        });
    };
    let (incident, _, _) = match st.decided() {
        Ok(p) => p,
        Err(e) => return ReleaseOutcome::CannotDecide(e),
    };
    let eligible = policy.for_severity(incident.severity);
    if !eligible.approvers.iter().chain(&eligible.force_override).any(|a| a == by) {
        return refused(
            ReleaseRefusal::NotApprover,
            format!("{by} is not an approver of {} incidents (the governor config lists: {})", incident.severity, {
                let all: Vec<&str> =
                    eligible.approvers.iter().chain(&eligible.force_override).map(String::as_str).collect();
                if all.is_empty() { "nobody".to_string() } else { all.join(", ") }
            }),
        );
    }
    let Some(claim) = claims(st).pop() else {
        return refused(ReleaseRefusal::NoClaim, format!("{} has no execution claim", input.incident_id));
    };
    if let Some(r) = &claim.result {
        return refused(
            ReleaseRefusal::ResultExists,
            format!("claim {} has an execution result (record {}): nothing to release", claim.record.id(), r.id()),
        );
    }
    if let Some(r) = &claim.released {
        return refused(
            ReleaseRefusal::AlreadyReleased,
            format!("claim {} was already released (record {})", claim.record.id(), r.id()),
        );
    }
    // Copied from the claim as it reads (`null` where it lacks the field).
    #[derive(serde::Deserialize)]
    struct Copied {
        authorised_by_record: Option<String>,
        action: Option<String>,
        requested_by: Option<String>,
    }
    let copied: Copied =
        decode(&claim.record.body).unwrap_or(Copied { authorised_by_record: None, action: None, requested_by: None });
    let body = encode(&ClaimReleaseBody {
        incident_id: input.incident_id.clone(),
        claim: claim.key().to_string(),
        claim_record: claim.record.id(),
        authorised_by_record: copied.authorised_by_record,
        action: copied.action,
        claimed_by: copied.requested_by,
        severity: incident.severity.as_str().to_string(),
        released_by: by.to_string(),
        reason: reason.to_string(),
        eligible: eligible.clone(),
    });
    let key = claim.key().to_string();
    match log.append_claim(kinds::CLAIM_RELEASE, body, &key) {
        Ok(Claim::Won(record)) => ReleaseOutcome::Released { claim: Box::new(claim), record },
        Ok(Claim::Held(holder)) => ReleaseOutcome::AlreadyReleasedBy(holder),
        Err(e) => ReleaseOutcome::NotRecorded(e),
    }
}
