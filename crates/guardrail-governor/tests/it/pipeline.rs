//! Decide-and-act in process: the order of effects (decision recorded before anything runs), a
//! decision or claim that is not recorded never runs, the claim lets exactly one of many
//! concurrent executors run, and a proposal needs an identity.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use guardrail_core::approval::GovernorConfig;
use guardrail_core::audit::ChainedRecord;
use guardrail_governor::pipeline::{
    AuditLog, Execution, Next, NoExecutor, Pipeline, RunOutcome, StoreLog, execute_claimed,
};
use guardrail_governor::queue::{incident_states, kinds};
use guardrail_governor::record::RunContext;
use guardrail_governor::{AuthorisedAction, ExecutionError, ExecutionReport, Executor, Governor};
use guardrail_store::{AppendError, AuditStore, Claim, SqliteStore, StoreError};
use serde_json::{Value, json};

use crate::common::{now, sample_store};

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

/// A blocked decision and its approval request are one linked append: through a shared store
/// (group commit, as `guardrail serve` writes) one commit holds both, the request right after
/// the decision and naming it. A log that cannot link (an adapter) appends them one after the
/// other: the same kinds, times and bodies.
#[test]
fn a_blocked_decision_and_its_request_are_one_commit() {
    let (kb, incidents) = sample_store();
    let governor = Governor::default();
    let config = GovernorConfig::default();
    let exec = Counting::default();
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
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("linked.db").display().to_string();
    let shared = guardrail_store::share(&spec).unwrap();
    let mut log = StoreLog::new(Box::new(shared.handle()), None, now());
    assert!(log.links());
    let RunOutcome::Decided { decision, next: Next::Queued { request, .. }, .. } =
        p.decide_and_act(&mut log, &incidents[0], json!({}))
    else {
        panic!("inc-001 is blocked");
    };
    let stats = shared.stats();
    assert_eq!((stats.commits, stats.records), (1, 2), "one commit, two records");
    assert_eq!((request.seq, &request.prev_hash), (decision.seq + 1, &decision.hash));
    assert_eq!(request.body["decision_record"], decision.id());
    let linked = log.store().all().unwrap();
    // Appended one after the other by a log that cannot link.
    let plain = tempfile::tempdir().unwrap();
    let mut unlinked =
        Failing { inner: StoreLog::new(store(&plain), None, now()), fail_kind: "none", mirror_only: false };
    assert!(!unlinked.links());
    p.decide_and_act(&mut unlinked, &incidents[0], json!({}));
    let one_by_one = unlinked.inner.store().all().unwrap();
    assert_eq!(linked, one_by_one, "the same records, hashes included");
    assert_eq!(exec.0.load(Ordering::SeqCst), 0);
}

/// Resolving a queued incident (nothing executed) without naming the action is the typed
/// `NothingExecuted` (the CLI and the server branch on the variant, never on the text).
#[test]
fn resolving_with_nothing_executed_and_no_action_is_nothing_executed() {
    use guardrail_governor::learn::{LearnError, Resolution, resolve};
    let (mut kb, incidents) = sample_store();
    let dir = tempfile::tempdir().unwrap();
    let exec = Counting::default();
    let governor = Governor::default();
    let config = GovernorConfig::default();
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
    p.decide_and_act(&mut log, &incidents[0], json!({}));
    let states = log.states().unwrap();
    let r =
        Resolution { incident_id: "inc-001", summary: "fixed", by: "bob", action: None, at: "2026-02-21T00:00:00Z" };
    let e = resolve(&mut log, &states, &mut kb, &r).unwrap_err();
    assert!(matches!(&e, LearnError::NothingExecuted { incident } if incident == "inc-001"), "{e:?}");
    assert_eq!(e.to_string(), "inc-001: nothing was executed for it; say which action resolved it");
}

/// Unusable fields of a resolution are typed (`LearnError::Fields`, each `FieldProblem` naming
/// its field), so the CLI names its flags and the server the request's fields without
/// rewriting text; the message is what it was.
#[test]
fn unusable_resolution_fields_are_typed_and_keep_their_message() {
    use guardrail_governor::learn::{FieldProblem, LearnError, Resolution, ResolutionField, resolve};
    let (mut kb, _) = sample_store();
    let dir = tempfile::tempdir().unwrap();
    let mut log = StoreLog::new(store(&dir), None, now());
    let states = log.states().unwrap();
    let r = Resolution { incident_id: "inc-001", summary: " ", by: "b b", action: None, at: "2026-02-21T00:00:00Z" };
    let e = resolve(&mut log, &states, &mut kb, &r).unwrap_err();
    let LearnError::Fields(problems) = &e else { panic!("{e:?}") };
    let fields: Vec<&ResolutionField> = problems.iter().map(|p: &FieldProblem| &p.field).collect();
    assert_eq!(fields, [&ResolutionField::By { given: "b b".into() }, &ResolutionField::Summary]);
    assert_eq!(e.to_string(), "resolved by \"b b\": not a user name (1-64 of A-Z a-z 0-9 . _ @ -); summary: is empty");
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
        executor: Err(NoExecutor::WebhookUrlMissing),
        now: now(),
    };
    let mut log = StoreLog::new(store(&dir), None, now());
    let RunOutcome::Decided { next: Next::Executed(Execution::Unavailable(NoExecutor::WebhookUrlMissing)), .. } =
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
    // The grant and its claim were one append: consecutive, the claim keyed by the grant.
    let all = log.store().all().unwrap();
    let claim = all.iter().find(|r| r.kind == kinds::EXECUTION_CLAIM).unwrap();
    assert_eq!((claim.seq, &claim.prev_hash), (record.seq + 1, &record.hash));
    assert_eq!(claim.body["claim"], json!(format!("{}#0", record.id())));
    let st = &log.states().unwrap()["inc-001"];
    assert_eq!(st.status(), "executed");
    assert_eq!(st.execution.as_ref().unwrap().body["authorised_by_record"], record.id());
    // Nothing is pending any more: a second approval releases nothing, and nothing runs again.
    let again = p.approve_on(&mut log, &input("bob"), None);
    assert!(matches!(again, ApproveOutcome::Refused { .. } | ApproveOutcome::CannotDecide(_)), "{again:?}");
    assert_eq!(exec.0.load(Ordering::SeqCst), 1);
}

/// The old-chain fixture (written by release 4b21396; see its README).
fn old_chain() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chain-4b21396")
}

/// Everything [`incident_states`] and the claims fold say about a chain, one line per fact.
fn fold_report(records: &[ChainedRecord]) -> String {
    let id = |r: &Option<ChainedRecord>| r.as_ref().map(ChainedRecord::id).unwrap_or_else(|| "-".into());
    let mut out = String::new();
    for (incident, st) in incident_states(records) {
        out.push_str(&format!("incident {incident}\n  status {}\n", st.status()));
        let ids: Vec<String> = st.records.iter().map(|r| format!("{}:{}", r.id(), r.kind)).collect();
        out.push_str(&format!("  records {}\n  last {}\n", ids.join(" "), st.last_record()));
        out.push_str(&format!(
            "  decision {}\n  pending {}\n  execution {}\n  resolved {}\n",
            id(&st.decision),
            id(&st.pending),
            id(&st.execution),
            id(&st.resolved)
        ));
        out.push_str(&format!("  authorised {:?}\n", st.authorised));
        match st.decided() {
            Ok((inc, plan, action)) => out.push_str(&format!(
                "  decided {} {:?} plan {} {:?} action {action}\n",
                inc.id, inc.severity, plan.proposed_action, plan.confidence_initial
            )),
            Err(e) => out.push_str(&format!("  decided error {e}\n")),
        }
        for c in guardrail_governor::claims::claims(&st) {
            out.push_str(&format!(
                "  claim {} key {} status {} result {} released {}\n",
                c.record.id(),
                c.key(),
                c.status(),
                id(&c.result),
                id(&c.released)
            ));
        }
    }
    out
}

fn check_fold_golden(name: &str, actual: &str) {
    let path = old_chain().join(name);
    if std::env::var_os("GUARDRAIL_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap();
    assert!(golden == actual, "{} differs from today's fold:\n{actual}", path.display());
}

#[test]
fn old_chain_folds_identically_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("guardrail.db");
    std::fs::copy(old_chain().join("guardrail.db"), &db).unwrap();
    let mut store = SqliteStore::open(&db).unwrap();
    assert!(store.verify().unwrap().ok(), "the fixture chain must verify");
    let records = store.all().unwrap();
    assert_eq!(records.len(), 31);
    check_fold_golden("golden-fold-sqlite.txt", &fold_report(&records));
}

#[test]
fn old_chain_folds_identically_postgres() {
    let base =
        std::env::var("GUARDRAIL_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("gr_old_fold_{}_{}", std::process::id(), jiff::Timestamp::now().as_nanosecond() % 1_000_000_000);
    let psql = |url: &str, args: &[&str]| {
        let out = std::process::Command::new("psql")
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", url])
            .args(args)
            .output()
            .expect("psql is required to restore the PostgreSQL fixture");
        assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    };
    psql(&base, &["-c", &format!("CREATE DATABASE {name}")]);
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    psql(&url, &["-f", &old_chain().join("postgres.sql").display().to_string()]);
    let report = {
        let mut store = guardrail_store::open_store(&url).unwrap();
        assert!(store.verify().unwrap().ok(), "the fixture chain must verify");
        let records = store.all().unwrap();
        assert_eq!(records.len(), 31);
        fold_report(&records)
    };
    psql(&base, &["-c", &format!("DROP DATABASE {name} WITH (FORCE)")]);
    check_fold_golden("golden-fold-postgres.txt", &report);
}

/// An executor that cannot start anything (a connection refused, say).
struct NotStarting;

impl Executor for NotStarting {
    fn name(&self) -> &'static str {
        "not-starting"
    }

    fn execute(&self, _: &AuthorisedAction) -> Result<ExecutionReport, ExecutionError> {
        Err(ExecutionError::Failed { executor: "not-starting", message: "connection refused".into() })
    }
}

/// Every governor body written by today's builders from fixed inputs — decisions (executed,
/// queued, re-gated, failed), requests, a refusal, a grant, a force override, claims, executions
/// (dry run, not started, result not recorded), a refused execution, a claim release and a
/// resolution — byte for byte (canonical JSON and the chain's hashes) what the `json!` builders
/// wrote before the typed records (`golden-bodies.txt`, captured with them).
#[test]
fn written_bodies_keep_their_canonical_bytes() {
    use guardrail_core::approval::{ApprovalKind, SeverityApprovers};
    use guardrail_governor::approve::ApprovalInput;
    use guardrail_governor::claims::{ReleaseInput, release_claim};
    use guardrail_governor::learn::{Resolution, resolve};
    let (mut kb, mut incidents) = sample_store();
    incidents.push(
        guardrail_core::remediation::Incident::from_json_value(&json!({
            "id": "inc-crit", "service": "payments-api", "severity": "critical",
            "summary": "Checkout failing for all users", "symptoms": "timeouts, db connection saturation"
        }))
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let governor = Governor::default();
    let mut config = GovernorConfig::default();
    let who = SeverityApprovers { approvers: vec!["bob".into()], force_override: vec!["ic".into()] };
    config.approvals.low = who.clone();
    config.approvals.medium = who.clone();
    config.approvals.high = who.clone();
    config.approvals.critical = SeverityApprovers { approvers: vec![], force_override: vec!["ic".into()] };
    let dry = guardrail_governor::DryRunExecutor { commands: Default::default() };
    let mut log = StoreLog::new(store(&dir), None, now());
    {
        let kb = &kb;
        let p = |proposer: &str, executor: &'static dyn Executor| Pipeline {
            governor: &governor,
            config: &config,
            run: RunContext {
                proposer: proposer.into(),
                knowledge_base: "sample".into(),
                logs: Some("logs.ndjson".into()),
                deploy_signals: None,
                governor_config: json!({"file": "governor.yaml", "sha256": "00ff"}),
            },
            knowledge: Some(kb),
            logs: None,
            signals: None,
            executor: Ok(executor),
            now: now(),
        };
        let dry: &'static guardrail_governor::DryRunExecutor =
            Box::leak(Box::new(guardrail_governor::DryRunExecutor { commands: Default::default() }));
        let approval = |id: &str, kind, approver: &str, reason: Option<&str>| ApprovalInput {
            incident_id: id.into(),
            kind,
            approver: approver.into(),
            reason: reason.map(str::to_string),
            reviewed_hash: None,
        };
        // inc-001 (high): queued; the proposer's approval refused; bob's granted, a dry run.
        p("alice", dry).decide_and_act(&mut log, &incidents[0], json!({"file": "inc-001.json"}));
        p("alice", dry).approve_on(&mut log, &approval("inc-001", ApprovalKind::Approve, "alice", None), None);
        p("alice", dry).approve_on(&mut log, &approval("inc-001", ApprovalKind::Approve, "bob", Some("ok")), None);
        // inc-002 (medium): executes, but its result is not recorded: a claim with no result,
        // released; the next attempt does not start; another action is refused and re-gated.
        let mut failing = Failing { inner: log, fail_kind: kinds::EXECUTION, mirror_only: false };
        p("dave", dry).decide_and_act(&mut failing, &incidents[1], json!({"http": true}));
        log = failing.inner;
        let states = log.states().unwrap();
        let release = ReleaseInput { incident_id: "inc-002".into(), by: "bob".into(), reason: "executor died".into() };
        release_claim(&mut log, &states, &release, &config.approvals);
        let states = log.states().unwrap();
        p("dave", &NotStarting).execute_incident(&mut log, &states, "inc-002", None);
        let states = log.states().unwrap();
        p("dave", dry).execute_incident(&mut log, &states, "inc-002", Some("restart_api_pods"));
        // inc-crit (critical): queued; force override by ic, a dry run.
        p("dave", dry).decide_and_act(&mut log, &incidents[2], json!({}));
        let force = approval("inc-crit", ApprovalKind::ForceOverride, "ic", Some("checkout down"));
        p("dave", dry).approve_on(&mut log, &force, Some(&json!({"via": "test"})));
    }
    // A run with no knowledge base cannot decide: remediation_error.
    let no_kb = Pipeline {
        governor: &governor,
        config: &config,
        run: run_ctx("dave"),
        knowledge: None,
        logs: None,
        signals: None,
        executor: Ok(&dry),
        now: now(),
    };
    no_kb.decide_and_act(&mut log, &incidents[0], json!({}));
    let states = log.states().unwrap();
    let resolution = Resolution {
        incident_id: "inc-001",
        summary: "Throttled and tuned the pool",
        by: "bob",
        action: None,
        at: "2026-02-21T00:00:00Z",
    };
    resolve(&mut log, &states, &mut kb, &resolution).unwrap();
    let records = log.store().all().unwrap();
    let mut report = String::new();
    for r in &records {
        report.push_str(&format!("{} {} {}\n{}\n", r.seq, r.kind, r.hash, serde_json::to_string(&r.body).unwrap()));
    }
    let kinds_written: std::collections::BTreeSet<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    for k in kinds::ALL {
        assert!(kinds_written.contains(k), "{k} not written:\n{report}");
    }
    check_fold_golden("golden-bodies.txt", &report);
}

/// An approval decided on the fold up to a record appends its grant and execution claim in one
/// commit (no re-read: the guard re-decides under the write lock), and the chain it leaves is
/// byte for byte the one the steps taken one by one leave. An approver whose view is stale (a
/// grant appended since) is recorded, releases nothing and claims nothing: the executor runs
/// once.
#[test]
fn a_grant_and_its_claim_are_one_commit_and_the_same_records() {
    use guardrail_core::approval::{ApprovalKind, SeverityApprovers};
    use guardrail_governor::approve::ApprovalInput;
    use guardrail_governor::pipeline::ApproveOutcome;
    let (kb, incidents) = sample_store();
    let exec = Counting::default();
    let governor = Governor::default();
    let mut config = GovernorConfig::default();
    config.approvals.high = SeverityApprovers { approvers: vec!["bob".into(), "carol".into()], force_override: vec![] };
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
    let input = |who: &str| ApprovalInput {
        incident_id: "inc-001".into(),
        kind: ApprovalKind::Approve,
        approver: who.into(),
        reason: None,
        reviewed_hash: None,
    };
    let propose = |dir: &tempfile::TempDir| {
        let mut log = StoreLog::new(store(dir), None, now());
        assert!(matches!(
            p.decide_and_act(&mut log, &incidents[0], json!({})),
            RunOutcome::Decided { next: Next::Queued { .. }, .. }
        ));
        log
    };
    let view = |log: &mut StoreLog| {
        let last = log.store().all().unwrap().last().unwrap().seq;
        (log.states(), last)
    };
    let no_reread = &mut || -> Result<Option<guardrail_governor::queue::Authorisation>, _> {
        panic!("the guarded grant is not confirmed by a re-read")
    };

    let (one_by_one, guarded) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut log = propose(&one_by_one);
    assert!(matches!(p.approve_on(&mut log, &input("bob"), None), ApproveOutcome::Released { .. }));
    let mut log = propose(&guarded);
    let (states, after) = view(&mut log);
    let out = p.approve_states_after(&mut log, states, after, no_reread, &input("bob"), Some(&json!({"via": "t"})));
    let ApproveOutcome::Released { record, execution, .. } = out else { panic!("released: {out:?}") };
    assert!(execution.succeeded());
    assert_eq!(exec.0.load(Ordering::SeqCst), 2);
    let (a, b) = (store(&one_by_one).all().unwrap(), store(&guarded).all().unwrap());
    assert_eq!(a.len(), b.len());
    let kinds_of = |rs: &[ChainedRecord]| rs.iter().map(|r| r.kind.clone()).collect::<Vec<_>>();
    assert_eq!(kinds_of(&a), kinds_of(&b));
    assert_eq!(b[b.len() - 3].id(), record.id());
    assert_eq!(b[b.len() - 3].body["via"], json!("t"), "the extra fields are merged into the grant");
    for (x, y) in a.iter().zip(&b).take(a.len() - 3) {
        assert_eq!(x, y, "the records before the grant are the same");
    }
    // Without the merged field the grant, and so everything after it, is the same record.
    let plain = tempfile::tempdir().unwrap();
    let mut log = propose(&plain);
    let (states, after) = view(&mut log);
    assert!(matches!(
        p.approve_states_after(&mut log, states, after, no_reread, &input("bob"), None),
        ApproveOutcome::Released { .. }
    ));
    assert_eq!(store(&plain).all().unwrap(), a, "byte-identical chain");

    // A stale view: carol's grant was appended after it; bob's grant is recorded, claims nothing.
    let racing = tempfile::tempdir().unwrap();
    let mut log = propose(&racing);
    let (states, after) = view(&mut log);
    let (states2, _) = view(&mut log);
    let first = p.approve_states_after(&mut log, states2, after, no_reread, &input("carol"), None);
    let ApproveOutcome::Released { record: carols, .. } = first else { panic!("{first:?}") };
    let late = p.approve_states_after(&mut log, states, after, no_reread, &input("bob"), None);
    let ApproveOutcome::ReleasedByAnother { record: bobs, by } = late else { panic!("{late:?}") };
    assert_eq!(by, Some(carols.id()));
    assert_eq!(exec.0.load(Ordering::SeqCst), 4, "carol's ran, bob's did not");
    let records = store(&racing).all().unwrap();
    assert_eq!(records.last().unwrap(), &bobs, "bob's grant is recorded, alone");
    assert_eq!(records.iter().filter(|r| r.kind == kinds::EXECUTION_CLAIM).count(), 1);
    assert_eq!(log.states().unwrap()["inc-001"].status(), "executed");
}
