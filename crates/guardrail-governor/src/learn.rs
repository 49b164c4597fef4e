//! Learn: record how an incident was resolved and write an **unreviewed** runbook from it,
//! with provenance (incident, audit record, who). Shared by `guardrail incident resolve` and
//! `POST /api/incidents/{id}/resolve`.
//!
//! Order of effects: the `incident_resolved` record is appended first; only a resolution in the
//! chain is learned from (a record whose mirror copy failed is in the chain: its runbook is
//! written and the failure reported). Learning never changes a rule or a threshold, and the
//! planner ignores the runbook until another person reviews it (`guardrail kb review`).

use std::collections::BTreeMap;

use guardrail_core::approval::valid_user;
use guardrail_core::audit::ChainedRecord;
use guardrail_core::remediation::{MAX_INCIDENT_TEXT, normalise_action};
use guardrail_knowledge::{KnowledgeStore, LearnedFrom, Provenance, Runbook};
use guardrail_store::AppendError;

use crate::pipeline::AuditLog;
use crate::queue::{IncidentState, kinds};
use crate::record::{ExecutionBody, ResolvedBody, decode, encode};

/// What to learn from.
#[derive(Debug, Clone)]
pub struct Resolution<'a> {
    /// Incident id.
    pub incident_id: &'a str,
    /// What resolved it (the learned runbook's body).
    pub summary: &'a str,
    /// Who resolved it (a user name; from `--as` or the bearer token).
    pub by: &'a str,
    /// The action that resolved it; `None`: the last action executed for it.
    pub action: Option<&'a str>,
    /// When (RFC 3339), for the runbook's provenance.
    pub at: &'a str,
}

/// A field of a [`Resolution`] that is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolutionField {
    /// Who resolved it (`by`), with the value given.
    By {
        /// The name as given.
        given: String,
    },
    /// The summary.
    Summary,
    /// The action.
    Action,
}

/// One unusable field of a [`Resolution`], and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", match field { ResolutionField::By { given } => format!("resolved by {given:?}"), ResolutionField::Summary => "summary".into(), ResolutionField::Action => "action".into() })]
pub struct FieldProblem {
    /// The field.
    pub field: ResolutionField,
    /// Why it is unusable.
    pub reason: String,
}

/// Why nothing was learned.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// The request itself is unusable.
    #[error("{0}")]
    Invalid(String),
    /// Fields of the request are unusable (each named, joined by `; `).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Fields(Vec<FieldProblem>),
    /// No such incident, or no (readable) decision recorded for it.
    #[error(transparent)]
    NotFound(#[from] crate::queue::TrailError),
    /// Nothing was executed for the incident and the resolution names no action, so there is
    /// nothing to learn.
    #[error("{incident}: nothing was executed for it; say which action resolved it")]
    NothingExecuted {
        /// The incident.
        incident: String,
    },
    /// The resolution could not be recorded: nothing is learned.
    #[error("the resolution was NOT recorded, so nothing is learned: {0}")]
    NotRecorded(AppendError),
    /// The knowledge base failed.
    #[error("{0}")]
    Knowledge(String),
}

/// What was learned.
#[derive(Debug)]
pub struct Learned {
    /// The `incident_resolved` record.
    pub record: ChainedRecord,
    /// The runbook written (unreviewed).
    pub runbook: Runbook,
    /// Set when the record is in the chain but its JSONL mirror copy failed.
    pub mirror_error: Option<AppendError>,
    /// Set when the record is in the chain but the runbook could not be stored.
    pub runbook_error: Option<String>,
}

/// Records the resolution of `r.incident_id` (folded in `states`) and writes the learned,
/// unreviewed runbook into `knowledge`.
pub fn resolve(
    log: &mut dyn AuditLog,
    states: &BTreeMap<String, IncidentState>,
    knowledge: &mut dyn KnowledgeStore,
    r: &Resolution<'_>,
) -> Result<Learned, LearnError> {
    let who = r.by.trim();
    let mut errors = Vec::new();
    if !valid_user(who) {
        errors.push(FieldProblem {
            field: ResolutionField::By { given: who.to_string() },
            reason: "not a user name (1-64 of A-Z a-z 0-9 . _ @ -)".into(),
        });
    }
    let summary = r.summary.trim();
    if summary.is_empty() {
        errors.push(FieldProblem { field: ResolutionField::Summary, reason: "is empty".into() });
    } else if summary.chars().count() > MAX_INCIDENT_TEXT {
        errors.push(FieldProblem {
            field: ResolutionField::Summary,
            reason: format!("is longer than {MAX_INCIDENT_TEXT} characters"),
        });
    }
    if !errors.is_empty() {
        return Err(LearnError::Fields(errors));
    }
    let id = r.incident_id;
    let st = states.get(id).ok_or_else(|| crate::queue::TrailError::NoIncident { incident: id.to_string() })?;
    let (incident, _, _) = st.decided()?;
    let executed = st
        .records
        .iter()
        .rev()
        .find(|r| r.kind == kinds::EXECUTION && decode::<ExecutionBody>(&r.body).is_ok_and(|b| b.ok));
    let action = match (r.action, executed) {
        (Some(a), _) => normalise_action(a, Some(&incident.service)).id,
        (None, Some(e)) => decode::<ExecutionBody>(&e.body).map(|b| b.action).unwrap_or_default(),
        (None, None) => {
            return Err(LearnError::NothingExecuted { incident: id.to_string() });
        }
    };
    if action.is_empty() {
        let problem = FieldProblem { field: ResolutionField::Action, reason: "has no words".into() };
        return Err(LearnError::Fields(vec![problem]));
    }
    let slug: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let n = st.records.iter().filter(|r| r.kind == kinds::RESOLVED).count() + 1;
    let runbook_id = format!("learned-{slug}-{n}");
    match knowledge.runbook(&runbook_id) {
        Ok(None) => {}
        Ok(Some(_)) => {
            return Err(LearnError::Invalid(format!("runbook {runbook_id} already exists in the knowledge base")));
        }
        Err(e) => return Err(LearnError::Knowledge(e.to_string())),
    }
    let body = encode(&ResolvedBody {
        incident_id: id.to_string(),
        by: who.to_string(),
        summary: summary.to_string(),
        action: action.clone(),
        runbook_id: runbook_id.clone(),
        service: incident.service.clone(),
        decision_record: st.decision.as_ref().map(ChainedRecord::id),
        execution_record: executed.map(ChainedRecord::id),
        reviewed: false,
    });
    let (record, mirror_error) = match log.append(kinds::RESOLVED, body) {
        Ok(rec) => (rec, None),
        Err(e) => match e.in_chain().cloned() {
            Some(rec) => (rec, Some(e)),
            None => return Err(LearnError::NotRecorded(e)),
        },
    };
    let title: String = summary.chars().take(80).collect();
    let runbook = Runbook {
        id: runbook_id,
        service: incident.service.clone(),
        title: format!("Learned from {id}: {title}"),
        recommended_action: action,
        body: summary.to_string(),
        reviewed: false,
        provenance: Provenance {
            source: "learned".into(),
            origin: Some(format!("incident {id}")),
            reviewed_by: None,
            recorded_at: Some(r.at.to_string()),
            learned: Some(LearnedFrom {
                incident_id: id.to_string(),
                audit_record: record.id(),
                learned_by: who.to_string(),
            }),
        },
    };
    let runbook_error = knowledge.add_runbook(&runbook).err().map(|e| e.to_string());
    Ok(Learned { record, runbook, mirror_error, runbook_error })
}
