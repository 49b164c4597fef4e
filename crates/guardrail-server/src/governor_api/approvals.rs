//! `GET /api/approvals`, `POST /api/incidents/{id}/approve` and `/force-override`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use guardrail_core::approval::ApprovalKind;
use guardrail_governor::approve::ApprovalInput;
use guardrail_governor::pipeline::ApproveOutcome;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, StrictJson, authenticate, blocking, ok, requested_by};
use crate::auth::{Caller, Role};
use crate::state::AppState;

use super::audit_log::ServerLog;
use super::status::{append_failed, no_store};
use super::views::{execution_view, load, pending_view};
use super::wiring::{executor, governor_in_force, pipeline};

/// `GET /api/approvals`: the pending approval queue, oldest request first.
pub async fn approvals(State(s): State<AppState>) -> Result<Response, ApiError> {
    let st = s.clone();
    let states = blocking(move || load(&st)).await?.map_err(|e| no_store(&e))?;
    let mut pending: Vec<Value> = states.values().filter_map(|i| pending_view(&s, i)).collect();
    pending.sort_by_key(|p| p["request_record"].as_str().and_then(|r| r.split('-').next()?.parse::<u64>().ok()));
    Ok(ok(Value::Array(pending)))
}

/// Body of `POST /api/incidents/{id}/approve` and `/force-override`. There is deliberately no
/// field naming the approver: it is the token's identity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The plan hash the approver reviewed (from `GET /api/incidents/{id}`; a prefix of 12+
    /// hex digits): refused if the gated plan is another.
    pub plan_hash: String,
    /// Why (required for a force-override).
    #[serde(default)]
    pub reason: Option<String>,
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

fn approve_blocking(
    state: &AppState,
    caller: &Caller,
    id: String,
    kind: ApprovalKind,
    req: ApproveRequest,
) -> Result<Value, ApiError> {
    let view = governor_in_force(state)?;
    // A mistyped id must not leave a permanent refusal in the chain.
    if !load(state).map_err(|e| no_store(&e))?.contains_key(&id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such incident in the audit trail (nothing was recorded); GET /api/approvals lists those awaiting approval",
        ));
    }
    let now = jiff::Timestamp::now();
    let mut log = ServerLog::open(state, now)?;
    let input = ApprovalInput {
        incident_id: id.clone(),
        kind,
        approver: caller.identity.clone(),
        reason: req.reason,
        reviewed_hash: Some(req.plan_hash),
    };
    let governor = guardrail_governor::Governor::default();
    let exec = executor(&view);
    let p = pipeline(state, &view, caller, &governor, None, &exec, None, now);
    let mut read = || load(state);
    let extra = json!({"requested_by": requested_by(caller)});
    let (granted, rec, execution) = match p.approve(&mut log, &mut read, &input, Some(&extra)) {
        ApproveOutcome::CannotDecide(e) => {
            eprintln!("guardrail serve: approval of {id}: {e}");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the incident's records cannot be read, so nothing is approved",
            ));
        }
        ApproveOutcome::Refused { refused: r, record } => {
            let rec = record.map_err(|e| {
                append_failed("the refusal", &format!("refused: {}", state.redactor().text(&r.message)), &e)
            })?;
            state.publish(
                "approval",
                json!({"incident_id": id, "status": "refused", "code": r.code, "audit": rec.id()}),
            );
            let mut err = ApiError::new(StatusCode::CONFLICT, state.redactor().text(&r.message));
            err.extra = Some(json!({"code": r.code, "status": "refused", "audit": rec.id()}));
            return Err(err);
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
        ApproveOutcome::ReleasedByAnother { record, .. } => {
            let mut err = ApiError::new(StatusCode::CONFLICT, "the incident was released by another grant first");
            err.extra = Some(json!({"code": "already_released", "status": "refused", "audit": record.id()}));
            return Err(err);
        }
        ApproveOutcome::Unconfirmed { error, .. } => return Err(no_store(&error)),
        ApproveOutcome::Released { granted, record, execution } => (granted, record, execution),
    };
    let g = &granted.grant;
    state.publish(
        "approval",
        json!({"incident_id": id, "status": "authorised", "kind": g.kind.as_str(), "audit": rec.id()}),
    );
    let succeeded = execution.succeeded();
    let execution = execution_view(execution)?;
    let status = if succeeded { "executed" } else { "execution_failed" };
    let mut v = json!({
        "incident_id": id,
        "status": status,
        "execution": execution,
        "grant": {
            "kind": g.kind.as_str(), "approver": g.approver, "reason": g.reason,
            "action": g.action, "plan_hash": g.binding_hash, "audit": rec.id(),
        },
    });
    state.redactor().value(&mut v);
    Ok(v)
}

/// `POST /api/incidents/{id}/approve`: an APPROVE by the token's identity.
pub async fn approve(
    State(s): State<AppState>,
    Approver(caller): Approver,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<ApproveRequest>,
) -> Result<Response, ApiError> {
    let st = s.clone();
    blocking(move || approve_blocking(&st, &caller, id, ApprovalKind::Approve, req)).await?.map(ok)
}

/// `POST /api/incidents/{id}/force-override`: a FORCE_OVERRIDE (needs a reason) by the
/// token's identity.
pub async fn force_override(
    State(s): State<AppState>,
    Approver(caller): Approver,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<ApproveRequest>,
) -> Result<Response, ApiError> {
    let st = s.clone();
    blocking(move || approve_blocking(&st, &caller, id, ApprovalKind::ForceOverride, req)).await?.map(ok)
}
