//! Decide and act: plan → stress → gate for one incident, the records on the audit chain, then
//! the hash-checked, claimed execution of what the gate validates or the approval-queue entry
//! of what it blocks. One implementation for `guardrail incident run|execute`, `guardrail
//! approve` (its execution step) and `guardrail serve`'s governor endpoints; each renders the
//! typed outcome its own way.
//!
//! Order of effects (fail closed):
//! 1. the decision (or the error) is appended **before** anything runs; a decision that is not
//!    in the chain, or whose mirror copy failed, is withheld: nothing runs, nothing is queued;
//!    a blocked decision and its approval request are one linked append where the log can
//!    ([`AuditLog::links`]): both in one commit, or neither;
//! 2. an executable action is checked against its binding hash ([`crate::authorise`]);
//! 3. an **execution claim** is appended with [`guardrail_store::AuditStore::append_claim`]:
//!    of any number of concurrent executors of the same authorisation, exactly one wins the
//!    claim (decided under the store's append lock) and only the winner runs the executor;
//! 4. the execution result is appended.
//!
//! An approval decided on a view of the chain that ends at a known record (the server's fold,
//! `guardrail approve`'s read) appends its grant and step 3's claim in one commit
//! ([`AuditLog::append_guarded`]): the claim is taken only if the grant, as sealed, is the one
//! that releases the request, re-decided by the fold's own rule under the store's write lock
//! over what was appended since the view. Same records as the steps one by one.
//!
//! The claim key is `"<authorising record id>#<attempt>"`, where the attempt counts the
//! executions already recorded for that authorisation (an execution that did not start leaves
//! the authorisation open, and the next attempt claims the next key). A winner that dies
//! between its claim and its result leaves the claim held: nothing runs again on that
//! authorisation (a new decision is needed), which is the fail-closed side.
//!
//! Nothing here reads a clock: `now` is given, and records are stamped with it.

use guardrail_core::approval::{GovernorConfig, valid_user};
use guardrail_core::audit::ChainedRecord;
use guardrail_core::remediation::{Incident, PlanOutput, Verdict, normalise_action};
use guardrail_core::signals::Signals;
use guardrail_knowledge::KnowledgeStore;
use guardrail_store::{AppendError, Claim};
use serde_json::Value;

use crate::queue::{Authorisation, IncidentState, TrailError, decision_parts, kinds};
use crate::record::{
    ClaimBody, ExecutionBody, ExecutionRefusedBody, Regate, RegateOrigin, RegateWhy, RunContext, approval_request,
    approval_request_body, decision_body_with_transcript, decode, encode, error_body, requires,
};
use crate::{
    ExecutionError, ExecutionReport, Executor, Governor, LogsSource, PipelineFailure, PipelineOutcome,
    RequestedActionPlanner, ToolContext, ToolRegistry,
};

pub use crate::store_log::{AuditLog, GuardedBody, LinkedBody, StoreLog};

/// Everything one decide-and-act needs besides the incident and the audit log.
pub struct Pipeline<'a> {
    /// Planner, tools, rules.
    pub governor: &'a Governor,
    /// Approvers and executor settings.
    pub config: &'a GovernorConfig,
    /// Who proposes (a valid user name: without one nothing is proposed) and what the run is
    /// against, for the records.
    pub run: RunContext,
    /// The knowledge base; `None` when there is none (then nothing can be decided: a run is
    /// a recorded could-not-decide).
    pub knowledge: Option<&'a dyn KnowledgeStore>,
    /// Live logs for `query_live_logs`, if any.
    pub logs: Option<&'a dyn LogsSource>,
    /// The deploy gate's signals for the signal rules, if any.
    pub signals: Option<&'a Signals>,
    /// The executor, or why there is none (then nothing runs).
    pub executor: Result<&'a dyn Executor, NoExecutor>,
    /// Evaluation time (also the tools' "now").
    pub now: jiff::Timestamp,
}

/// Why the configuration gives no executor: authorised actions are then not run (and no claim
/// is taken), never run by a fallback the operator did not choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoExecutor {
    /// `webhook` was chosen without `executor.webhook_url`.
    #[error("the webhook executor needs executor.webhook_url in the governor config")]
    WebhookUrlMissing,
}

/// What one incident run came to.
// Built once per run and consumed at once: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RunOutcome {
    /// No valid proposer identity: nothing was planned or recorded.
    NoProposer(String),
    /// Plan → stress → gate could not decide; `record` is the `remediation_error` record.
    CouldNotDecide {
        /// The failure.
        failure: PipelineFailure,
        /// The error record, or why it could not be appended.
        record: Result<ChainedRecord, AppendError>,
    },
    /// The decision could not be recorded (see the error: not in the chain at all, or in the
    /// chain with a failed mirror copy), so it is withheld: nothing runs, nothing is queued.
    Withheld {
        /// The decision that was withheld.
        outcome: Box<PipelineOutcome>,
        /// Why.
        error: AppendError,
    },
    /// Decided and recorded.
    Decided {
        /// The run.
        outcome: Box<PipelineOutcome>,
        /// Its `remediation_decision` record.
        decision: ChainedRecord,
        /// What followed.
        next: Next,
    },
}

/// What followed a recorded decision.
// Built once per run and consumed at once: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Next {
    /// The gate validated the action: the execution step.
    Executed(Execution),
    /// Blocked: the approval request is in the queue.
    Queued {
        /// The `approval_request` record.
        request: ChainedRecord,
        /// `approve` or `force_override`.
        requires: &'static str,
    },
    /// Blocked, but the approval request could not be recorded.
    QueueNotRecorded(AppendError),
}

/// The execution step of an authorised action.
// Built once per run and consumed at once: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Execution {
    /// No executor (configuration): nothing ran, no claim was taken.
    Unavailable(NoExecutor),
    /// Another execution holds this authorisation's claim: nothing ran here.
    ClaimHeld {
        /// The `execution_claim` record that holds it.
        holder: ChainedRecord,
    },
    /// The claim could not be recorded (see the error): nothing ran.
    ClaimNotRecorded(AppendError),
    /// The hash check or the executor ran; `body` is the `remediation_execution` record's.
    Done {
        /// The record body (`ran`, `ok`, `report`, `error`, …).
        body: ExecutionBody,
        /// What the executor (or the hash check) said.
        result: Result<ExecutionReport, ExecutionError>,
        /// The claim record, when the hash check passed.
        claim: Option<ChainedRecord>,
        /// The execution record, or why it could not be appended.
        record: Result<ChainedRecord, AppendError>,
    },
}

impl Execution {
    /// Whether the action ran and succeeded (a dry run counts) and that is recorded.
    pub fn succeeded(&self) -> bool {
        matches!(self, Execution::Done { body, record: Ok(_), .. } if body.ok)
    }
}

/// Why `incident execute` has nothing to run (a could-not-decide in the CLI, 409
/// `nothing_authorised` over HTTP).
#[derive(Debug, thiserror::Error)]
pub enum CannotExecute {
    /// Who asks is not a valid user name.
    #[error("requester {requester:?} is not a user name (1-64 of A-Z a-z 0-9 . _ @ -)")]
    InvalidRequester {
        /// As given.
        requester: String,
    },
    /// The incident has a record but no decision (only a could-not-decide).
    #[error("no decision is recorded for {incident}")]
    NoDecision {
        /// The incident.
        incident: String,
    },
    /// Nothing is authorised (and no other action was asked for).
    #[error("nothing is authorised to run for {incident} (status {status})")]
    NothingAuthorised {
        /// The incident.
        incident: String,
        /// Where it stands.
        status: crate::queue::IncidentStatus,
    },
    /// The trail cannot say what was decided.
    #[error(transparent)]
    Trail(#[from] TrailError),
}

/// What `incident execute` (CLI or HTTP) came to.
// Built once per run and consumed at once: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ExecuteOutcome {
    /// Nothing to execute, or the trail cannot say what (a could-not-decide).
    CannotExecute(CannotExecute),
    /// The action is blocked and awaits approval.
    AwaitingApproval {
        /// The gated action.
        action: String,
    },
    /// The authorised action's execution step.
    Executed(Execution),
    /// Nothing is authorised because the newest decision's action already ran (a refusal,
    /// naming the execution record and the claim it ran under).
    AlreadyExecuted {
        /// The consuming `remediation_execution` record.
        execution: ChainedRecord,
    },
    /// Another action than the authorised one: refused (recorded), and gated again.
    Regated {
        /// The action asked for.
        requested: String,
        /// The gated (authorised) action it was not.
        instead_of: String,
        /// The `execution_refused` record, when there was an authorisation.
        refused: Option<ChainedRecord>,
        /// The new run.
        run: Box<RunOutcome>,
    },
    /// Another action than the authorised one, and the refusal could not be recorded.
    RefusalNotRecorded(AppendError),
}

/// How many executions and claim releases ([`crate::claims::release_claim`]) are already
/// recorded for an authorisation: the next claim's attempt. A claim ends with its execution
/// result or, when it has none (the executor died), with its release.
pub fn attempts(st: &IncidentState, auth: &Authorisation) -> usize {
    st.records
        .iter()
        .filter(|r| {
            #[derive(serde::Deserialize)]
            struct ByRecord {
                authorised_by_record: Option<String>,
            }
            (r.kind == kinds::EXECUTION || r.kind == kinds::CLAIM_RELEASE)
                && decode::<ByRecord>(&r.body).is_ok_and(|b| b.authorised_by_record.as_ref() == Some(&auth.record))
        })
        .count()
}

impl Pipeline<'_> {
    /// Plan → stress → gate for one incident, recorded; then the execution step or the queue.
    /// `origin` says where the incident came from (file, HTTP, a re-gate), for the records.
    pub fn decide_and_act(&self, log: &mut dyn AuditLog, incident: &Incident, origin: Value) -> RunOutcome {
        self.decide_with(self.governor, log, incident, origin)
    }

    fn decide_with(
        &self,
        governor: &Governor,
        log: &mut dyn AuditLog,
        incident: &Incident,
        origin: Value,
    ) -> RunOutcome {
        if !valid_user(&self.run.proposer) {
            return RunOutcome::NoProposer(format!(
                "proposer {:?} is not a user name (1-64 of A-Z a-z 0-9 . _ @ -), so nothing is proposed",
                self.run.proposer
            ));
        }
        let Some(knowledge) = self.knowledge else {
            let failure = PipelineFailure {
                error: crate::PipelineError::KnowledgeBase("no knowledge base is open".into()),
                trace: Vec::new(),
            };
            let record = log.append(kinds::ERROR, error_body(incident, &origin, &self.run, &failure));
            return RunOutcome::CouldNotDecide { failure, record };
        };
        let mut ctx = ToolContext::new(knowledge, self.now);
        if let Some(l) = self.logs {
            ctx = ctx.with_logs(l);
        }
        let outcome = match governor.run(incident, &ctx, self.signals) {
            Ok(o) => o,
            Err(failure) => {
                let record = log.append(kinds::ERROR, error_body(incident, &origin, &self.run, &failure));
                return RunOutcome::CouldNotDecide { failure, record };
            }
        };
        // A model-backed planner's transcript goes on the chain first, as a record of its own,
        // and the decision names it. A transcript that cannot be recorded withholds the decision
        // (nothing runs on a plan whose making is not on the record).
        let transcript = match &outcome.plan.transcript {
            None => None,
            Some(t) => {
                let body =
                    crate::transcript::TranscriptBody { incident_id: incident.id.clone(), transcript: (**t).clone() };
                match log.append(crate::transcript::PLANNER_TRANSCRIPT, encode(&body)) {
                    Ok(r) => Some(crate::transcript::TranscriptRef {
                        record: r.id(),
                        hash: r.hash.clone(),
                        planner: t.planner.clone(),
                        model: t.answered_by.clone().unwrap_or_else(|| t.model.clone()),
                        outcome: t.outcome.as_str().to_string(),
                        reason: t.reason(),
                    }),
                    Err(error) => return RunOutcome::Withheld { outcome: Box::new(outcome), error },
                }
            }
        };
        let inputs = crate::replay::gate_inputs_body(self.signals, &governor.rules);
        let body = decision_body_with_transcript(incident, &origin, &self.run, &outcome, inputs, transcript);
        if outcome.gate.output.decision != Verdict::Execute && log.links() {
            // The decision and its approval request in one commit (the request names the
            // decision as sealed): both in the chain or neither, and one durable commit to wait
            // for instead of two.
            let mut request = approval_request(incident, &outcome, &self.run, "", &self.config.approvals);
            let then: LinkedBody = Box::new(move |decision: &ChainedRecord| {
                request.decision_record = decision.id();
                encode(&request)
            });
            return match log.append_linked(kinds::DECISION, body, kinds::APPROVAL_REQUEST, then) {
                Ok((decision, request)) => {
                    let next = Next::Queued { request, requires: requires(incident, &outcome) };
                    RunOutcome::Decided { outcome: Box::new(outcome), decision, next }
                }
                // Neither is in the chain: withheld, nothing queued.
                Err(error) => RunOutcome::Withheld { outcome: Box::new(outcome), error },
            };
        }
        let decision = match log.append(kinds::DECISION, body) {
            Ok(r) => r,
            Err(error) => return RunOutcome::Withheld { outcome: Box::new(outcome), error },
        };
        let next = if outcome.gate.output.decision == Verdict::Execute {
            let auth = Authorisation {
                record: decision.id(),
                by: "gate".into(),
                approver: None,
                action: outcome.gated_action().to_string(),
                binding_hash: outcome.binding_hash(),
            };
            Next::Executed(self.execute(log, &auth, &outcome.incident, &outcome.plan.output, &auth.action, 0))
        } else {
            let body = approval_request_body(incident, &outcome, &self.run, &decision.id(), &self.config.approvals);
            match log.append(kinds::APPROVAL_REQUEST, body) {
                Ok(request) => Next::Queued { request, requires: requires(incident, &outcome) },
                Err(e) => Next::QueueNotRecorded(e),
            }
        };
        RunOutcome::Decided { outcome: Box::new(outcome), decision, next }
    }

    /// The execution step: hash check, claim, executor, record. `attempt` is
    /// [`attempts`] for this authorisation (0 right after the authorising record).
    pub fn execute(
        &self,
        log: &mut dyn AuditLog,
        auth: &Authorisation,
        incident: &Incident,
        plan: &PlanOutput,
        action: &str,
        attempt: usize,
    ) -> Execution {
        execute_claimed(log, self.executor, auth, incident, plan, action, &self.run.proposer, attempt)
    }

    /// `incident execute`: the authorised action of `incident_id` as folded from `states`
    /// (read just before), or — when `requested` names another action — a recorded refusal and
    /// a re-gate of that action.
    pub fn execute_incident(
        &self,
        log: &mut dyn AuditLog,
        states: &std::collections::BTreeMap<String, IncidentState>,
        incident_id: &str,
        requested: Option<&str>,
    ) -> ExecuteOutcome {
        if !valid_user(&self.run.proposer) {
            return ExecuteOutcome::CannotExecute(CannotExecute::InvalidRequester {
                requester: self.run.proposer.clone(),
            });
        }
        let Some(st) = states.get(incident_id) else {
            let missing = TrailError::NoIncident { incident: incident_id.to_string() };
            return ExecuteOutcome::CannotExecute(missing.into());
        };
        let Some(d) = &st.decision else {
            return ExecuteOutcome::CannotExecute(CannotExecute::NoDecision { incident: incident_id.to_string() });
        };
        let (incident, plan, gated) = match decision_parts(d) {
            Ok(p) => p,
            Err(e) => return ExecuteOutcome::CannotExecute(e.into()),
        };
        let wanted = requested.map(|a| normalise_action(a, Some(&incident.service)).id);
        let Some(auth) = st.authorised.clone() else {
            if st.pending.is_some() && wanted.as_deref().is_none_or(|a| a == gated) {
                return ExecuteOutcome::AwaitingApproval { action: gated };
            }
            let ran = st.execution.as_ref().filter(|e| decode::<ExecutionBody>(&e.body).is_ok_and(|b| b.ran));
            if let (Some(e), None) = (ran, wanted.as_deref().filter(|a| *a != gated)) {
                return ExecuteOutcome::AlreadyExecuted { execution: e.clone() };
            }
            let Some(raw) = requested else {
                return ExecuteOutcome::CannotExecute(CannotExecute::NothingAuthorised {
                    incident: incident_id.to_string(),
                    status: st.status_kind(),
                });
            };
            return self.regate(log, &incident, &gated, raw, None, "no authorisation".into());
        };
        let wanted = wanted.unwrap_or_else(|| auth.action.clone());
        match crate::authorise(&auth.binding_hash, &incident, &plan, &wanted) {
            Ok(_) => ExecuteOutcome::Executed(self.execute(log, &auth, &incident, &plan, &wanted, attempts(st, &auth))),
            Err(mismatch) => {
                let body = encode(&ExecutionRefusedBody {
                    incident_id: incident_id.to_string(),
                    requested_action: wanted.clone(),
                    authorised_action: auth.action.clone(),
                    authorised_by_record: auth.record.clone(),
                    binding_hash: auth.binding_hash.clone(),
                    found_hash: mismatch.found.clone(),
                    requested_by: self.run.proposer.clone(),
                    message: ExecutionError::Mismatch(mismatch.clone()).to_string(),
                });
                let refused = match log.append(kinds::EXECUTION_REFUSED, body) {
                    Ok(r) => r,
                    Err(e) => return ExecuteOutcome::RefusalNotRecorded(e),
                };
                let raw = requested.unwrap_or_default();
                self.regate(log, &incident, &auth.action, raw, Some(refused), mismatch.to_string())
            }
        }
    }

    /// Sends another action for the same incident back through the whole gate.
    fn regate(
        &self,
        log: &mut dyn AuditLog,
        incident: &Incident,
        gated: &str,
        action: &str,
        refused: Option<ChainedRecord>,
        reason: String,
    ) -> ExecuteOutcome {
        let governor = Governor {
            registry: ToolRegistry::builtin(),
            planner: Box::new(RequestedActionPlanner { base: Default::default(), action: action.to_string() }),
            rules: self.governor.rules.clone(),
            stress: self.governor.stress,
        };
        let origin = encode(&RegateOrigin {
            regate: Regate {
                requested_action: action.to_string(),
                instead_of: gated.to_string(),
                why: RegateWhy { reason },
            },
        });
        let run = self.decide_with(&governor, log, incident, origin);
        ExecuteOutcome::Regated {
            requested: action.to_string(),
            instead_of: gated.to_string(),
            refused,
            run: Box::new(run),
        }
    }
}

/// The execution step on its own (for an approval's release): hash check, then the claim
/// `"<auth.record>#<attempt>"`, then — only for the claim's winner — the executor, then the
/// `remediation_execution` record. `requested_by` is who asked for it.
#[allow(clippy::too_many_arguments)]
pub fn execute_claimed(
    log: &mut dyn AuditLog,
    executor: Result<&dyn Executor, NoExecutor>,
    auth: &Authorisation,
    incident: &Incident,
    plan: &PlanOutput,
    action: &str,
    requested_by: &str,
    attempt: usize,
) -> Execution {
    let executor = match executor {
        Ok(e) => e,
        Err(e) => return Execution::Unavailable(e),
    };
    let body = |ran: bool,
                ok: bool,
                report: Option<&ExecutionReport>,
                error: Option<String>,
                claim: Option<&ChainedRecord>| {
        ExecutionBody {
            incident_id: incident.id.clone(),
            action: action.to_string(),
            binding_hash: auth.binding_hash.clone(),
            authorised_by: auth.by.clone(),
            authorised_by_record: auth.record.clone(),
            approver: auth.approver.clone(),
            requested_by: requested_by.to_string(),
            executor: executor.name().to_string(),
            claim_record: claim.map(ChainedRecord::id),
            ran,
            ok,
            report: report.map(encode),
            error,
        }
    };
    let authorised = match crate::authorise(&auth.binding_hash, incident, plan, action) {
        Ok(a) => a,
        Err(mismatch) => {
            let err = ExecutionError::Mismatch(mismatch);
            let b = body(false, false, None, Some(err.to_string()), None);
            let record = log.append(kinds::EXECUTION, encode(&b));
            return Execution::Done { body: b, result: Err(err), claim: None, record };
        }
    };
    let key = format!("{}#{attempt}", auth.record);
    let claim_body = encode(&ClaimBody {
        incident_id: incident.id.clone(),
        claim: key.clone(),
        action: action.to_string(),
        binding_hash: auth.binding_hash.clone(),
        authorised_by_record: auth.record.clone(),
        requested_by: requested_by.to_string(),
        executor: executor.name().to_string(),
    });
    let claim = match log.append_claim(kinds::EXECUTION_CLAIM, claim_body, &key) {
        Ok(Claim::Won(r)) => r,
        Ok(Claim::Held(holder)) => return Execution::ClaimHeld { holder },
        Err(e) => return Execution::ClaimNotRecorded(e),
    };
    let result = executor.execute(&authorised);
    let b = match &result {
        Ok(r) => body(true, r.ok, Some(r), None, Some(&claim)),
        Err(e) => body(false, false, None, Some(e.to_string()), Some(&claim)),
    };
    let record = log.append(kinds::EXECUTION, encode(&b));
    Execution::Done { body: b, result, claim: Some(claim), record }
}

/// The `execution_claim` body of the first attempt (`#0`) of `auth`: what [`execute_claimed`]
/// appends for it.
fn claim_body(auth: &Authorisation, incident_id: &str, action: &str, requested_by: &str, executor: &str) -> ClaimBody {
    ClaimBody {
        incident_id: incident_id.to_string(),
        claim: format!("{}#0", auth.record),
        action: action.to_string(),
        binding_hash: auth.binding_hash.clone(),
        authorised_by_record: auth.record.clone(),
        requested_by: requested_by.to_string(),
        executor: executor.to_string(),
    }
}

/// After a claim of `auth`'s first attempt was won with its grant (one commit): what
/// [`execute_claimed`] does once it holds the claim — the executor runs, its result is
/// appended.
fn run_claimed(
    log: &mut dyn AuditLog,
    executor: &dyn Executor,
    auth: &Authorisation,
    incident_id: &str,
    authorised: &crate::AuthorisedAction,
    requested_by: &str,
    claim: ChainedRecord,
) -> Execution {
    let result = executor.execute(authorised);
    let (ran, ok, report, error) = match &result {
        Ok(r) => (true, r.ok, Some(encode(r)), None),
        Err(e) => (false, false, None, Some(e.to_string())),
    };
    let b = ExecutionBody {
        incident_id: incident_id.to_string(),
        action: auth.action.clone(),
        binding_hash: auth.binding_hash.clone(),
        authorised_by: auth.by.clone(),
        authorised_by_record: auth.record.clone(),
        approver: auth.approver.clone(),
        requested_by: requested_by.to_string(),
        executor: executor.name().to_string(),
        claim_record: Some(claim.id()),
        ran,
        ok,
        report,
        error,
    };
    let record = log.append(kinds::EXECUTION, encode(&b));
    Execution::Done { body: b, result, claim: Some(claim), record }
}

/// What one approval attempt came to ([`Pipeline::approve`]).
// Built once per attempt and consumed at once: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ApproveOutcome {
    /// The trail cannot say what is pending (could not decide): nothing recorded.
    CannotDecide(TrailError),
    /// Refused by the rules; `record` is the `approval_refused` record or why it is not one.
    Refused {
        /// The refusal.
        refused: crate::approve::Refused,
        /// Its record.
        record: Result<ChainedRecord, AppendError>,
    },
    /// The grant is not in the chain: it is NOT granted and nothing ran.
    NotGranted(AppendError),
    /// The grant IS in the chain (so it is granted) but its mirror copy failed: nothing ran
    /// now (fail closed); `incident execute` runs it.
    GrantedMirrorFailed {
        /// The grant.
        granted: Box<crate::approve::Granted>,
        /// Why the mirror copy failed (holds the record).
        error: AppendError,
    },
    /// Another grant released the incident first: this grant releases nothing, nothing ran.
    ReleasedByAnother {
        /// This grant's record.
        record: ChainedRecord,
        /// The record that released it, if the trail says.
        by: Option<String>,
    },
    /// Granted, but the queue could not be re-read to confirm this grant released it: nothing
    /// ran.
    Unconfirmed {
        /// This grant's record.
        record: ChainedRecord,
        /// Why.
        error: TrailError,
    },
    /// Granted and released: the execution step ([`execute_claimed`]).
    Released {
        /// The grant.
        granted: Box<crate::approve::Granted>,
        /// Its record.
        record: ChainedRecord,
        /// The execution.
        execution: Execution,
    },
}

impl Pipeline<'_> {
    /// One approval attempt, as `guardrail approve` and `POST /api/incidents/{id}/approve`
    /// make it: decided by [`crate::approve::decide_pending`] on the states `read` returns,
    /// the refusal or grant recorded (with `extra` fields merged into its body, e.g. who
    /// asked over HTTP), the queue re-read so only the first grant after the request releases
    /// it, then the claimed execution. `self.run.governor_config` is recorded with the grant.
    pub fn approve(
        &self,
        log: &mut dyn AuditLog,
        read: &mut dyn FnMut() -> Result<std::collections::BTreeMap<String, IncidentState>, TrailError>,
        input: &crate::approve::ApprovalInput,
        extra: Option<&Value>,
    ) -> ApproveOutcome {
        let states = read();
        let id = &input.incident_id;
        let mut confirm = |_: &mut dyn AuditLog| read().map(|s| s.get(id).and_then(|st| st.authorised.clone()));
        self.approve_with(log, states, None, &mut confirm, input, extra)
    }

    /// [`Pipeline::approve`] reading the queue through the log's own store connection
    /// ([`StoreLog::states`]): one open of the store for the whole attempt, and (without a JSONL
    /// mirror) the grant and its execution claim in one commit, as
    /// [`Pipeline::approve_states_after`].
    pub fn approve_on(
        &self,
        log: &mut StoreLog,
        input: &crate::approve::ApprovalInput,
        extra: Option<&Value>,
    ) -> ApproveOutcome {
        // The states and where the chain they were folded from ends: the grant and its claim
        // are then one commit (see [`Pipeline::approve_states_after`]).
        let (states, after) = match log.states_at() {
            Ok((states, after)) => (Ok(states), Some(after)),
            Err(e) => (Err(e), None),
        };
        let id = &input.incident_id;
        let mut confirm = |l: &mut dyn AuditLog| {
            let states = l.read_states().unwrap_or(Err(TrailError::CannotRead))?;
            Ok(states.get(id).and_then(|st| st.authorised.clone()))
        };
        self.approve_with(log, states, after, &mut confirm, input, extra)
    }

    /// [`Pipeline::approve`] deciding on `states` (the incident's state as just read: the queue
    /// entry and the decision it follows; its record list is not read), and confirming the grant
    /// by `confirm`, which reads what is authorised for the incident now. What a server that
    /// keeps the fold reads instead of copying the incident's whole state twice.
    pub fn approve_states(
        &self,
        log: &mut dyn AuditLog,
        states: Result<std::collections::BTreeMap<String, IncidentState>, TrailError>,
        confirm: &mut dyn FnMut() -> Result<Option<Authorisation>, TrailError>,
        input: &crate::approve::ApprovalInput,
        extra: Option<&Value>,
    ) -> ApproveOutcome {
        self.approve_with(log, states, None, &mut |_| confirm(), input, extra)
    }

    /// [`Pipeline::approve_states`] where `states` is the fold of the chain up to record `after`
    /// (its seq): the grant and its execution claim are then appended in one commit, the claim
    /// taken only if the grant, as sealed, releases the request (re-decided under the store's
    /// write lock over the records appended after `after`; see [`AuditLog::append_guarded`]).
    /// Where the log cannot (a JSONL mirror), or nothing would be claimed (no executor, a
    /// failed hash check), the steps are taken one by one, confirming with `confirm`.
    pub fn approve_states_after(
        &self,
        log: &mut dyn AuditLog,
        states: Result<std::collections::BTreeMap<String, IncidentState>, TrailError>,
        after: i64,
        confirm: &mut dyn FnMut() -> Result<Option<Authorisation>, TrailError>,
        input: &crate::approve::ApprovalInput,
        extra: Option<&Value>,
    ) -> ApproveOutcome {
        self.approve_with(log, states, Some(after), &mut |_| confirm(), input, extra)
    }

    #[allow(clippy::type_complexity)]
    fn approve_with(
        &self,
        log: &mut dyn AuditLog,
        states: Result<std::collections::BTreeMap<String, IncidentState>, TrailError>,
        after: Option<i64>,
        confirm: &mut dyn FnMut(&mut dyn AuditLog) -> Result<Option<Authorisation>, TrailError>,
        input: &crate::approve::ApprovalInput,
        extra: Option<&Value>,
    ) -> ApproveOutcome {
        let states = match states {
            Ok(s) => s,
            Err(e) => return ApproveOutcome::CannotDecide(e),
        };
        let step = self.decide_approval(&states, input);
        let view = match (after, states.get(&input.incident_id)) {
            (Some(after), Some(st)) => Some((crate::queue::release_view(st), after)),
            _ => None,
        };
        drop(states);
        self.approve_decided(log, step, view, confirm, input, extra)
    }

    /// What an approval attempt comes to on `states` ([`crate::approve::decide_pending`] with
    /// this pipeline's approvers and governor config): the first half of
    /// [`Pipeline::approve_decided`], for a caller that holds the states only briefly (a
    /// server's fold, under its lock: deciding there copies nothing out of it).
    pub fn decide_approval(
        &self,
        states: &std::collections::BTreeMap<String, IncidentState>,
        input: &crate::approve::ApprovalInput,
    ) -> Result<crate::approve::ApprovalStep, TrailError> {
        crate::approve::decide_pending(states, input, &self.config.approvals, self.run.governor_config.clone())
    }

    /// The rest of an approval attempt once decided ([`Pipeline::decide_approval`]): the refusal
    /// or grant recorded, then the claimed execution. With `view` — the incident as
    /// [`crate::queue::release_view`] gives it and the seq of the last record its states were
    /// folded from — the grant and its claim are one commit (see
    /// [`Pipeline::approve_states_after`]); without, the grant is confirmed by `confirm`.
    #[allow(clippy::type_complexity)]
    pub fn approve_decided(
        &self,
        log: &mut dyn AuditLog,
        step: Result<crate::approve::ApprovalStep, TrailError>,
        view: Option<(IncidentState, i64)>,
        confirm: &mut dyn FnMut(&mut dyn AuditLog) -> Result<Option<Authorisation>, TrailError>,
        input: &crate::approve::ApprovalInput,
        extra: Option<&Value>,
    ) -> ApproveOutcome {
        use crate::approve::ApprovalStep;
        let merge = |mut body: Value| {
            if let (Some(o), Some(Value::Object(more))) = (body.as_object_mut(), extra) {
                o.extend(more.clone());
            }
            body
        };
        let step = match step {
            Ok(s) => s,
            Err(e) => return ApproveOutcome::CannotDecide(e),
        };
        let granted = match step {
            ApprovalStep::Refused(refused) => {
                let record = log.append(kinds::APPROVAL_REFUSED, merge(encode(&refused.body)));
                return ApproveOutcome::Refused { refused, record };
            }
            ApprovalStep::Granted(g) => g,
        };
        let granted = match view {
            Some((state, after)) => {
                let body = merge(encode(&granted.body));
                match self.grant_and_claim(log, granted, body, state, after, &input.approver) {
                    Ok(outcome) => return outcome,
                    Err(granted) => granted,
                }
            }
            None => granted,
        };
        let record = match log.append(granted.record_kind, merge(encode(&granted.body))) {
            Ok(r) => r,
            Err(error) if error.in_chain().is_some() => return ApproveOutcome::GrantedMirrorFailed { granted, error },
            Err(error) => return ApproveOutcome::NotGranted(error),
        };
        // Two approvers racing both append a grant; the chain decides: only the first grant
        // after the request releases it (the fold ignores later ones).
        let open = match confirm(log) {
            Ok(a) => a,
            Err(error) => return ApproveOutcome::Unconfirmed { record, error },
        };
        let auth = match open {
            Some(a) if a.record == record.id() => a,
            other => return ApproveOutcome::ReleasedByAnother { record, by: other.map(|a| a.record) },
        };
        let execution = self.execute_as(log, &auth, &granted.incident, &granted.plan, &input.approver);
        ApproveOutcome::Released { granted, record, execution }
    }

    /// The grant and, in the same commit, its execution claim — taken only if the grant, as
    /// sealed, is the one that releases the request: re-decided under the store's write lock
    /// over what was appended since `after` (the end of the chain `granted` was decided on), by
    /// the fold's own rule ([`crate::queue::authorised_after`]). Of racing approvers, only the
    /// one whose grant releases the request leaves a claim; the others' grants are recorded as
    /// before and answer "released by another". Then the executor runs and its result is
    /// appended: two commits where the grant, the confirming read and the claim took three.
    /// The same records as [`Pipeline::approve`]'s steps one by one. `None` (nothing appended)
    /// where this does not apply — a log that cannot append both in one commit (a JSONL
    /// mirror), no executor, an action that fails its hash check (its refusal is recorded by
    /// the steps one by one, as before) — and the caller takes those steps.
    fn grant_and_claim(
        &self,
        log: &mut dyn AuditLog,
        granted: Box<crate::approve::Granted>,
        body: Value,
        state: IncidentState,
        after: i64,
        requested_by: &str,
    ) -> Result<ApproveOutcome, Box<crate::approve::Granted>> {
        let Ok(executor) = self.executor else { return Err(granted) };
        if !log.links() {
            return Err(granted);
        }
        let g = &granted.body;
        let Ok(authorised) = crate::authorise(&g.binding_hash, &granted.incident, &granted.plan, &g.action) else {
            return Err(granted);
        };
        // Who released it instead, when the guard finds it was not this grant.
        let other: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
        let (seen_other, incident_id) = (other.clone(), granted.incident.id.clone());
        let (requested, executor_name) = (requested_by.to_string(), executor.name().to_string());
        let guard = GuardedBody {
            after,
            kinds: crate::queue::RELEASE_KINDS.iter().map(|k| k.to_string()).collect(),
            claim_kind: kinds::EXECUTION_CLAIM.to_string(),
            then: Box::new(move |newer, sealed| match crate::queue::authorised_after(state, newer, sealed) {
                Some(a) if a.record == sealed.id() => {
                    let b = claim_body(&a, &incident_id, &a.action, &requested, &executor_name);
                    let key = b.claim.clone();
                    Some((encode(&b), key))
                }
                other => {
                    *seen_other.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = other.map(|a| a.record);
                    None
                }
            }),
        };
        let (record, claim) = match log.append_guarded(granted.record_kind, body, guard) {
            Ok(done) => done,
            Err(error) if error.in_chain().is_some() => {
                return Ok(ApproveOutcome::GrantedMirrorFailed { granted, error });
            }
            Err(error) => return Ok(ApproveOutcome::NotGranted(error)),
        };
        let g = &granted.body;
        let auth = Authorisation {
            record: record.id(),
            by: g.kind.clone(),
            approver: Some(g.approver.clone()),
            action: g.action.clone(),
            binding_hash: g.binding_hash.clone(),
        };
        let execution = match claim {
            None => {
                let by = other.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                return Ok(ApproveOutcome::ReleasedByAnother { record, by });
            }
            Some(Claim::Held(holder)) => Execution::ClaimHeld { holder },
            Some(Claim::Won(claim)) => {
                run_claimed(log, executor, &auth, &granted.incident.id, &authorised, requested_by, claim)
            }
        };
        Ok(ApproveOutcome::Released { granted, record, execution })
    }

    fn execute_as(
        &self,
        log: &mut dyn AuditLog,
        auth: &Authorisation,
        incident: &Incident,
        plan: &PlanOutput,
        requested_by: &str,
    ) -> Execution {
        execute_claimed(log, self.executor, auth, incident, plan, &auth.action, requested_by, 0)
    }
}
