//! Decide-and-act in process: the order of effects (decision recorded before anything runs), a
//! decision or claim that is not recorded never runs, the claim lets exactly one of many
//! concurrent executors run, and a proposal needs an identity.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use common::{now, sample_store};
use guardrail_core::approval::GovernorConfig;
use guardrail_core::audit::ChainedRecord;
use guardrail_governor::pipeline::{AuditLog, Execution, Next, Pipeline, RunOutcome, StoreLog, execute_claimed};
use guardrail_governor::queue::{incident_states, kinds};
use guardrail_governor::record::RunContext;
use guardrail_governor::{AuthorisedAction, ExecutionError, ExecutionReport, Executor, Governor};
use guardrail_store::{AppendError, AuditStore, Claim, SqliteStore, StoreError};
use serde_json::{Value, json};

/// Counts how often it really runs.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Executor for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }

    fn execute(&self, a: &AuthorisedAction) -> Result<ExecutionReport, ExecutionError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        // Long enough for racing claimants to overlap.
        std::thread::sleep(std::time::Duration::from_millis(20));
        Ok(ExecutionReport {
            executor: "counting".into(),
            action: a.action().into(),
            binding_hash: a.binding_hash().into(),
            dry_run: false,
            ok: true,
            detail: json!({}),
        })
    }
}

/// An audit log that fails every append of `fail_kind` (not in the chain), or only its mirror
/// copy (`mirror_only`: in the chain).
struct Failing {
    inner: StoreLog,
    fail_kind: &'static str,
    mirror_only: bool,
}

impl AuditLog for Failing {
    fn append(&mut self, kind: &str, body: Value) -> Result<ChainedRecord, AppendError> {
        if kind != self.fail_kind {
            return self.inner.append(kind, body);
        }
        if self.mirror_only {
            let rec = self.inner.append(kind, body)?;
            return Err(AppendError::Mirror {
                record: Box::new(rec),
                store: "test".into(),
                dir: "mirror".into(),
                source: Box::new(StoreError::InvalidRecord("mirror is down".into())),
            });
        }
        Err(AppendError::NotInChain {
            store: "test".into(),
            source: Box::new(StoreError::InvalidRecord("down".into())),
        })
    }

    fn append_claim(&mut self, kind: &str, body: Value, claim: &str) -> Result<Claim, AppendError> {
        if kind == self.fail_kind {
            return Err(AppendError::NotInChain {
                store: "test".into(),
                source: Box::new(StoreError::InvalidRecord("down".into())),
            });
        }
        self.inner.append_claim(kind, body, claim)
    }
}

fn store(dir: &tempfile::TempDir) -> Box<dyn AuditStore> {
    Box::new(SqliteStore::open(dir.path().join("audit.db")).unwrap())
}

fn run_ctx(who: &str) -> RunContext {
    RunContext { proposer: who.into(), knowledge_base: "sample".into(), ..Default::default() }
}

#[test]
fn the_gate_validated_action_runs_once_after_its_decision_and_claim() {
    let (kb, incidents) = sample_store();
    let dir = tempfile::tempdir().unwrap();
    let exec = Counting::default();
    let governor = Governor::default();
    let config = GovernorConfig::default();
    let p = Pipeline {
        governor: &governor,
        config: &config,
        run: run_ctx("dave"),
        knowledge: Some(&kb),
        logs: None,
        signals: None,
        executor: Ok(&exec),
        now: now(),
    };
    let mut log = StoreLog::new(store(&dir), None, now());
    let RunOutcome::Decided { decision, next: Next::Executed(e), .. } =
        p.decide_and_act(&mut log, &incidents[1], json!({"test": true}))
    else {
        panic!("inc-002 executes");
    };
    assert!(e.succeeded());
    assert_eq!(exec.0.load(Ordering::SeqCst), 1);
    let records = log.store().all().unwrap();
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, [kinds::DECISION, kinds::EXECUTION_CLAIM, kinds::EXECUTION]);
    assert_eq!(records[1].body["claim"], format!("{}#0", decision.id()));
    assert_eq!(records[2].body["claim_record"], records[1].id());
    // The same authorisation, attempt 0 again: held, nothing runs.
    let st = &incident_states(&records)["inc-002"];
    assert!(st.authorised.is_none(), "consumed");
}

#[test]
fn nothing_runs_when_the_decision_or_the_claim_is_not_recorded() {
    let (kb, incidents) = sample_store();
    let governor = Governor::default();
    let config = GovernorConfig::default();
    for (fail_kind, mirror_only) in [(kinds::DECISION, false), (kinds::DECISION, true), (kinds::EXECUTION_CLAIM, false)]
    {
        let dir = tempfile::tempdir().unwrap();
        let exec = Counting::default();
        let p = Pipeline {
            governor: &governor,
            config: &config,
            run: run_ctx("dave"),
            knowledge: Some(&kb),
            logs: None,
            signals: None,
            executor: Ok(&exec),
            now: now(),
        };
        let mut log = Failing { inner: StoreLog::new(store(&dir), None, now()), fail_kind, mirror_only };
        let out = p.decide_and_act(&mut log, &incidents[1], json!({}));
        match (&out, fail_kind) {
            (RunOutcome::Withheld { error, .. }, kinds::DECISION) => {
                assert_eq!(error.in_chain().is_some(), mirror_only, "{error}");
            }
            (
                RunOutcome::Decided { next: Next::Executed(Execution::ClaimNotRecorded(_)), .. },
                kinds::EXECUTION_CLAIM,
            ) => {}
            other => panic!("{fail_kind}: {other:?}"),
        }
        assert_eq!(exec.0.load(Ordering::SeqCst), 0, "{fail_kind}: nothing ran");
    }
}

#[test]
fn a_blocked_action_is_queued_and_an_anonymous_proposal_is_refused() {
    let (kb, incidents) = sample_store();
    let dir = tempfile::tempdir().unwrap();
    let exec = Counting::default();
    let governor = Governor::default();
    let config = GovernorConfig::default();
    let mut p = Pipeline {
        governor: &governor,
        config: &config,
        run: run_ctx(""),
        knowledge: Some(&kb),
        logs: None,
        signals: None,
        executor: Ok(&exec),
        now: now(),
    };
    let mut log = StoreLog::new(store(&dir), None, now());
    assert!(matches!(p.decide_and_act(&mut log, &incidents[0], json!({})), RunOutcome::NoProposer(_)));
    assert!(log.store().all().unwrap().is_empty(), "nothing recorded without a proposer");
    p.run = run_ctx("alice");
    let RunOutcome::Decided { next: Next::Queued { request, .. }, .. } =
        p.decide_and_act(&mut log, &incidents[0], json!({}))
    else {
        panic!("inc-001 is blocked");
    };
    assert_eq!(request.body["proposer"], "alice");
    assert_eq!(exec.0.load(Ordering::SeqCst), 0);
    // No knowledge base: a recorded could-not-decide, never an execution.
    p.knowledge = None;
    assert!(matches!(
        p.decide_and_act(&mut log, &incidents[1], json!({})),
        RunOutcome::CouldNotDecide { record: Ok(_), .. }
    ));
    assert_eq!(exec.0.load(Ordering::SeqCst), 0);
}

#[test]
fn of_many_concurrent_executors_exactly_one_runs() {
    let (kb, incidents) = sample_store();
    let dir = tempfile::tempdir().unwrap();
    // A decision that authorises inc-002, recorded without running it.
    let governor = Governor::default();
    let config = GovernorConfig::default();
    let p = Pipeline {
        governor: &governor,
        config: &config,
        run: run_ctx("dave"),
        knowledge: Some(&kb),
        logs: None,
        signals: None,
        executor: Err("no executor in this step".into()),
        now: now(),
    };
    let mut log = StoreLog::new(store(&dir), None, now());
    let RunOutcome::Decided { next: Next::Executed(Execution::Unavailable(_)), .. } =
        p.decide_and_act(&mut log, &incidents[1], json!({}))
    else {
        panic!("inc-002 is authorised");
    };
    let states = incident_states(&log.store().all().unwrap());
    let st = states["inc-002"].clone();
    let auth = st.authorised.clone().expect("authorised");
    let (incident, plan, _) = st.decided().unwrap();
    let exec = Arc::new(Counting::default());
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (exec, barrier, auth, incident, plan) =
                (Arc::clone(&exec), Arc::clone(&barrier), auth.clone(), incident.clone(), plan.clone());
            let path = dir.path().join("audit.db");
            std::thread::spawn(move || {
                let mut log = StoreLog::new(Box::new(SqliteStore::open(&path).unwrap()), None, now());
                barrier.wait();
                let e: &dyn Executor = exec.as_ref();
                let out = execute_claimed(&mut log, Ok(e), &auth, &incident, &plan, &auth.action, &format!("op{t}"), 0);
                match out {
                    Execution::Done { record: Ok(_), .. } => "ran",
                    Execution::ClaimHeld { .. } => "held",
                    other => panic!("{other:?}"),
                }
            })
        })
        .collect();
    let outcomes: Vec<&str> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "ran").count(), 1, "{outcomes:?}");
    assert_eq!(exec.0.load(Ordering::SeqCst), 1, "the executor ran once");
    let records = SqliteStore::open(dir.path().join("audit.db")).unwrap().all().unwrap();
    assert_eq!(records.iter().filter(|r| r.kind == kinds::EXECUTION_CLAIM).count(), 1);
    assert_eq!(records.iter().filter(|r| r.kind == kinds::EXECUTION).count(), 1);
}

/// An approval attempt over a [`StoreLog`] reads the queue through the log's own store (one
/// connection for the read, the grant, the re-read and the execution records), and releases
/// the blocked action exactly once.
#[test]
fn an_approval_reads_the_queue_through_the_logs_own_store() {
    use guardrail_core::approval::{ApprovalKind, SeverityApprovers};
    use guardrail_governor::approve::ApprovalInput;
    use guardrail_governor::pipeline::ApproveOutcome;
    let (kb, incidents) = sample_store();
    let dir = tempfile::tempdir().unwrap();
    let exec = Counting::default();
    let governor = Governor::default();
    let mut config = GovernorConfig::default();
    config.approvals.high = SeverityApprovers { approvers: vec!["bob".into()], force_override: vec![] };
    let p = Pipeline {
        governor: &governor,
        config: &config,
        run: run_ctx("alice"),
        knowledge: Some(&kb),
        logs: None,
        signals: None,
        executor: Ok(&exec),
        now: now(),
    };
    let mut log = StoreLog::new(store(&dir), None, now());
    assert!(matches!(
        p.decide_and_act(&mut log, &incidents[0], json!({})),
        RunOutcome::Decided { next: Next::Queued { .. }, .. }
    ));
    assert_eq!(log.states().unwrap()["inc-001"].status(), "awaiting_approval");
    let input = |who: &str| ApprovalInput {
        incident_id: "inc-001".into(),
        kind: ApprovalKind::Approve,
        approver: who.into(),
        reason: None,
        reviewed_hash: None,
    };
    // The proposer cannot approve: refused and recorded, nothing ran.
    assert!(matches!(p.approve_on(&mut log, &input("alice"), None), ApproveOutcome::Refused { record: Ok(_), .. }));
    assert_eq!(exec.0.load(Ordering::SeqCst), 0);
    let ApproveOutcome::Released { record, execution, .. } = p.approve_on(&mut log, &input("bob"), None) else {
        panic!("bob may approve a high incident");
    };
    assert!(execution.succeeded());
    assert_eq!(exec.0.load(Ordering::SeqCst), 1);
    let st = &log.states().unwrap()["inc-001"];
    assert_eq!(st.status(), "executed");
    assert_eq!(st.execution.as_ref().unwrap().body["authorised_by_record"], record.id());
    // Nothing is pending any more: a second approval releases nothing, and nothing runs again.
    let again = p.approve_on(&mut log, &input("bob"), None);
    assert!(matches!(again, ApproveOutcome::Refused { .. } | ApproveOutcome::CannotDecide(_)), "{again:?}");
    assert_eq!(exec.0.load(Ordering::SeqCst), 1);
}
