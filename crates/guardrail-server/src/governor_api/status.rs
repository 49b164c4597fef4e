//! Failures mapped to HTTP statuses (no store, a failed append, a claim conflict, no knowledge base).

use axum::http::StatusCode;
use guardrail_store::AppendError;
use serde_json::{Value, json};

use crate::api::{ApiError, store_unavailable};

pub(super) fn no_store(e: &str) -> ApiError {
    store_unavailable("incidents", e)
}

/// The truth about a failed append, without paths: `what` was not recorded (503), or it IS
/// recorded as record X and only its JSONL mirror copy failed (503 with `status`
/// `recorded_mirror_failed` and the record id, `then` saying what did not happen).
pub(super) fn append_failed(what: &str, then: &str, e: &AppendError) -> ApiError {
    eprintln!("guardrail serve: {what}: {e}");
    match e.in_chain() {
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} was not recorded ({then}): the audit store is unavailable"),
        ),
        Some(rec) => {
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{what} IS recorded in the audit chain as record {}, but its JSONL mirror copy failed ({then})",
                    rec.id()
                ),
            );
            err.extra = Some(json!({"status": "recorded_mirror_failed", "audit": rec.id()}));
            err
        }
    }
}

/// A knowledge base that cannot be opened: logged with its reason, answered as a 503 without
/// its path.
pub(super) fn kb_unavailable(e: guardrail_knowledge::KnowledgeError) -> ApiError {
    eprintln!("guardrail serve: knowledge base: {e}");
    let msg = match e {
        guardrail_knowledge::KnowledgeError::NotFound(_) => {
            "the knowledge base is missing (create it with `guardrail kb load`), so nothing can be decided"
        }
        _ => "the knowledge base cannot be read, so nothing can be decided",
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg)
}

pub(super) fn conflict(code: &str, message: String, extra: Value) -> ApiError {
    let mut err = ApiError::new(StatusCode::CONFLICT, message);
    let mut x = json!({"code": code, "status": "refused"});
    if let (Some(o), Value::Object(more)) = (x.as_object_mut(), extra) {
        o.extend(more);
    }
    err.extra = Some(x);
    err
}
