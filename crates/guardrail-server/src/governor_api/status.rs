//! The governor endpoints' failures as HTTP statuses: one [`ErrorAnswer::status`] per refusal view
//! (the error envelope carries the view's fields), and the statuses of what is no outcome at
//! all (no store, a failed append, no knowledge base).

use axum::http::StatusCode;
use guardrail_governor::views::{ApprovalRefusalView, CouldNotDecideView, ExecuteRefusal, RecordRef, ResolveRefusal};
use guardrail_store::AppendError;
use serde::Serialize;

use crate::api::{ApiError, store_unavailable};
use crate::state::AppState;

use super::views::render;

/// Why a governor request fails without an outcome of its own (no refusal, no decision): one
/// variant per kind of failure, and its one status ([`GovernorFailure::status`]). Handlers
/// name the failure, never a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GovernorFailure {
    /// The body breaks a rule its schema states (400; nothing recorded).
    BadRequest,
    /// The caller's identity may not propose (403; nothing recorded).
    NoProposer,
    /// No such incident in the audit trail (404; nothing recorded).
    NoSuchIncident,
    /// What deciding or recording needs is missing: knowledge base, executor, audit store,
    /// governor config, deploy inputs (503).
    Unavailable,
}

impl GovernorFailure {
    /// The HTTP status of this failure.
    pub(super) const fn status(self) -> StatusCode {
        match self {
            GovernorFailure::BadRequest => StatusCode::BAD_REQUEST,
            GovernorFailure::NoProposer => StatusCode::FORBIDDEN,
            GovernorFailure::NoSuchIncident => StatusCode::NOT_FOUND,
            GovernorFailure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The error answer of this failure with one message.
    pub(super) fn error(self, msg: impl Into<String>) -> ApiError {
        ApiError::new(self.status(), msg)
    }
}

/// 404 for an incident id the trail does not hold.
pub(super) fn no_such_incident() -> ApiError {
    GovernorFailure::NoSuchIncident.error("no such incident in the audit trail")
}

/// A governor outcome that is answered with an error status: the status, the message of the
/// envelope's `errors`, and the view's own fields beside them.
pub(super) trait ErrorAnswer: Serialize {
    /// The one HTTP status of this outcome.
    fn status(&self) -> StatusCode;
    /// The message for `error` / `errors`.
    fn message(&self) -> String;
    /// The error answer: the envelope with the view's fields (redacted).
    fn answer(&self, state: &AppState) -> ApiError {
        let mut err = ApiError::new(self.status(), state.redactor().text(&self.message()));
        err.extra = Some(render(state, self));
        err
    }
}

/// Every refusal of `execute` is a conflict with the incident's state: 409.
impl ErrorAnswer for ExecuteRefusal {
    fn status(&self) -> StatusCode {
        StatusCode::CONFLICT
    }
    fn message(&self) -> String {
        self.message().to_string()
    }
}

/// A refused approval (recorded): 409.
impl ErrorAnswer for ApprovalRefusalView {
    fn status(&self) -> StatusCode {
        StatusCode::CONFLICT
    }
    fn message(&self) -> String {
        self.body.message.clone()
    }
}

/// Nothing to learn from (no execution, no such incident's decision): 409.
impl ErrorAnswer for ResolveRefusal {
    fn status(&self) -> StatusCode {
        StatusCode::CONFLICT
    }
    fn message(&self) -> String {
        self.message().to_string()
    }
}

/// The pipeline could not decide (recorded): 422.
impl ErrorAnswer for CouldNotDecideView {
    fn status(&self) -> StatusCode {
        StatusCode::UNPROCESSABLE_ENTITY
    }
    fn message(&self) -> String {
        self.errors.join("\n")
    }
}

pub(super) fn no_store(e: &str) -> ApiError {
    store_unavailable("incidents", e)
}

/// Why a 503 names a record: it IS in the chain, only its JSONL mirror copy failed.
#[derive(Serialize)]
struct RecordedMirrorFailed {
    /// `recorded_mirror_failed`.
    status: &'static str,
    audit: RecordRef,
}

/// The truth about a failed append, without paths: `what` was not recorded (503), or it IS
/// recorded as record X and only its JSONL mirror copy failed (503 with `status`
/// `recorded_mirror_failed` and the record as `audit`, `then` saying what did not happen).
pub(super) fn append_failed(what: &str, then: &str, e: &AppendError) -> ApiError {
    eprintln!("guardrail serve: {what}: {e}");
    match e.in_chain() {
        None => GovernorFailure::Unavailable
            .error(format!("{what} was not recorded ({then}): the audit store is unavailable")),
        Some(rec) => {
            let mut err = GovernorFailure::Unavailable.error(format!(
                "{what} IS recorded in the audit chain as record {}, but its JSONL mirror copy failed ({then})",
                rec.id()
            ));
            let extra = RecordedMirrorFailed { status: "recorded_mirror_failed", audit: RecordRef::of(rec) };
            err.extra = Some(guardrail_governor::record::encode(&extra));
            err
        }
    }
}

/// A 503 with a machine-readable `code` (e.g. `governor_config_invalid`).
pub(super) fn unavailable_with_code(code: &'static str, message: String) -> ApiError {
    #[derive(Serialize)]
    struct Code {
        code: &'static str,
    }
    let mut err = GovernorFailure::Unavailable.error(message);
    err.extra = Some(guardrail_governor::record::encode(&Code { code }));
    err
}

/// A knowledge base that cannot be opened: logged with its reason, answered as a 503
/// (`knowledge_unavailable`) without its path; a cluster that does not answer is named by what
/// it said (status and reason), never read as an empty knowledge base.
pub(super) fn kb_unavailable(state: &AppState, e: guardrail_knowledge::KnowledgeError) -> ApiError {
    use guardrail_knowledge::KnowledgeError;
    eprintln!("guardrail serve: knowledge base: {e}");
    let msg = match &e {
        KnowledgeError::NotFound(_) => {
            "the knowledge base is missing (create it with `guardrail kb load`), so nothing can be decided".to_string()
        }
        KnowledgeError::Unavailable { status, message, .. } => state.redactor().text(&format!(
            "the knowledge base (Elasticsearch) cannot answer{}: {message}; nothing can be decided",
            status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
        )),
        _ => "the knowledge base cannot be read, so nothing can be decided".to_string(),
    };
    unavailable_with_code("knowledge_unavailable", msg)
}
