//! `GET /api/approvals`, `POST /api/incidents/{id}/approve` and `/force-override`.

use axum::extract::{Path, State};
use guardrail_core::approval::ApprovalKind;
use guardrail_governor::approve::ApprovalInput;
use guardrail_governor::pipeline::ApproveOutcome;
use guardrail_governor::queue::release_view;
use guardrail_governor::views::{ApprovalRefusalView, GrantView, PendingApprovalView, RecordRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{ApiError, StrictJson, authenticate, blocking, requested_by};
use crate::auth::{Caller, Role};
use crate::state::AppState;
use crate::wire::Answer;

use super::audit_log::ServerLog;
use super::status::{ErrorAnswer, GovernorFailure, append_failed, no_store};
use super::views::{GovernorEvent, execution_step, load};
use super::wiring::{executor, governor_in_force, pipeline};

/// `GET /api/approvals`: the pending approval queue, oldest request first.
pub async fn approvals(State(s): State<AppState>) -> Result<Answer<Vec<PendingApprovalView>>, ApiError> {
    let st = s.clone();
    let states = blocking(move || load(&st)).await?.map_err(|e| no_store(&e.to_string()))?;
    Ok(Answer::new(s.redactor(), &PendingApprovalView::queue(states.values())))
}

/// A hash the approver reviewed: 12 to 64 hex digits (a prefix of the binding hash).
const HASH_PATTERN: &str = "^[0-9a-fA-F]{12,64}$";

/// Body of `POST /api/incidents/{id}/approve` and `/force-override`. There is deliberately no
/// field naming the approver: it is the token's identity.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The binding hash the approver reviewed (`binding_hash` of `GET /api/incidents/{id}` or
    /// `/api/approvals`; a prefix of 12+ hex digits): refused if the gated plan is another.
    /// `plan_hash`, its name before 0.x, is still accepted.
    #[serde(alias = "plan_hash")]
    #[schemars(regex(pattern = HASH_PATTERN))]
    pub binding_hash: String,
    /// Why (required for a force-override).
    #[serde(default)]
    pub reason: Option<String>,
}

impl ApproveRequest {
    /// The checks its schema states, so the server refuses (400, nothing recorded) exactly
    /// what the document says is invalid.
    fn check(&self) -> Result<(), ApiError> {
        let h = &self.binding_hash;
        if !(12..=64).contains(&h.len()) || !h.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(GovernorFailure::BadRequest.error("binding_hash: must be 12-64 hex digits"));
        }
        Ok(())
    }
}

/// The caller of an approval endpoint: a token whose role may approve.
#[derive(Debug, Clone)]
pub struct Approver(pub Caller);

impl axum::extract::FromRequestParts<AppState> for Approver {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state, Role::Approver).map(Approver)
    }
}

/// Who asked over HTTP, merged into the refusal or grant record.
#[derive(Serialize)]
struct RequestedBy {
    requested_by: Value,
}

fn approve_blocking(
    state: &AppState,
    caller: &Caller,
    id: String,
    kind: ApprovalKind,
    req: ApproveRequest,
) -> Result<Answer<GrantView>, ApiError> {
    req.check()?;
    let view = governor_in_force(state)?;
    let now = jiff::Timestamp::now();
    let input = ApprovalInput {
        incident_id: id.clone(),
        kind,
        approver: caller.identity.clone(),
        reason: req.reason,
        reviewed_hash: Some(req.binding_hash),
    };
    let governor = guardrail_governor::Governor::default();
    let exec = executor(&view);
    let p = pipeline(state, &view, caller, &governor, None, &exec, None, now);
    // One read decides the attempt, on the fold itself (under its lock: nothing of the
    // incident's state is copied out but what the grant's claim is guarded by, ids only), and
    // says where the chain it decided on ends.
    let decided = state
        .with_incident_states_at(|all, at| {
            all.get(&id).map(|st| (p.decide_approval(all, &input), at.map(|at| (release_view(st), at))))
        })
        .map_err(|e| no_store(&e.to_string()))?;
    // A mistyped id must not leave a permanent refusal in the chain.
    let Some((step, view_at)) = decided else {
        return Err(GovernorFailure::NoSuchIncident.error("no such incident in the audit trail (nothing was recorded); GET /api/approvals lists those awaiting approval",
        ));
    };
    let mut log = ServerLog::open(state, now)?;
    // The grant's confirmation (where the grant and its claim cannot be one commit) reads only
    // what is authorised for this incident now.
    let mut confirm = |_: &mut dyn guardrail_governor::pipeline::AuditLog| {
        state.with_incident_states(|all| all.get(&id).and_then(|st| st.authorised.clone()))
    };
    let extra = guardrail_governor::record::encode(&RequestedBy { requested_by: requested_by(caller) });
    // Decided on the fold up to `view_at`: the grant and its claim in one commit, the claim taken
    // only if the grant releases the request as the chain stands when it is sealed.
    let outcome = p.approve_decided(&mut log, step, view_at, &mut confirm, &input, Some(&extra));
    let (granted, rec, execution) = match outcome {
        ApproveOutcome::CannotDecide(e) => {
            eprintln!("guardrail serve: approval of {id}: {e}");
            return Err(
                GovernorFailure::Unavailable.error("the incident's records cannot be read, so nothing is approved")
            );
        }
        ApproveOutcome::Refused { refused: r, record } => {
            let rec = record.map_err(|e| {
                append_failed("the refusal", &format!("refused: {}", state.redactor().text(&r.message)), &e)
            })?;
            let refusal = ApprovalRefusalView::new(&r, &rec);
            GovernorEvent {
                code: Some(&refusal.body.code),
                audit: Some(&refusal.audit),
                ..GovernorEvent::new(&id, "refused")
            }
            .publish(state, "approval");
            return Err(refusal.answer(state));
        }
        ApproveOutcome::NotGranted(e) => {
            return Err(append_failed("the approval", "so it is not granted and nothing runs", &e));
        }
        ApproveOutcome::GrantedMirrorFailed { error, .. } => {
            return Err(append_failed(
                "the approval",
                &format!("it IS granted; nothing runs now: POST /api/incidents/{id}/execute runs it"),
                &error,
            ));
        }
        ApproveOutcome::ReleasedByAnother { record, by } => {
            return Err(ApprovalRefusalView::released_by_another(&input, &record, by).answer(state));
        }
        ApproveOutcome::Unconfirmed { error, .. } => return Err(no_store(&error.to_string())),
        ApproveOutcome::Released { granted, record, execution } => (granted, record, execution),
    };
    let g = &granted.grant;
    let audit = RecordRef::of(&rec);
    GovernorEvent { kind: Some(g.kind.as_str()), audit: Some(&audit), ..GovernorEvent::new(&id, "authorised") }
        .publish(state, "approval");
    let (step, succeeded) = execution_step(state, &id, execution)?;
    Ok(Answer::new(state.redactor(), &GrantView::new(&id, g, &rec, step, succeeded)))
}

/// Both approval endpoints: the attempt of `kind`, decided off the async runtime.
async fn attempt(
    s: AppState,
    caller: Caller,
    id: String,
    kind: ApprovalKind,
    req: ApproveRequest,
) -> Result<Answer<GrantView>, ApiError> {
    blocking(move || approve_blocking(&s, &caller, id, kind, req)).await?
}

/// `POST /api/incidents/{id}/approve`: an APPROVE by the token's identity.
pub async fn approve(
    State(s): State<AppState>,
    Approver(caller): Approver,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<ApproveRequest>,
) -> Result<Answer<GrantView>, ApiError> {
    attempt(s, caller, id, ApprovalKind::Approve, req).await
}

/// `POST /api/incidents/{id}/force-override`: a FORCE_OVERRIDE (needs a reason) by the
/// token's identity.
pub async fn force_override(
    State(s): State<AppState>,
    Approver(caller): Approver,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<ApproveRequest>,
) -> Result<Answer<GrantView>, ApiError> {
    attempt(s, caller, id, ApprovalKind::ForceOverride, req).await
}
