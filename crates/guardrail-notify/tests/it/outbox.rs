//! The outbox end to end: governor records appended to a real store get their rows in the
//! same transaction ([`Routes`]), and the [`Deliverer`] takes them to the loopback Jira —
//! through an outage, a rate limit, give-up and re-delivery, and two deliverers racing.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use guardrail_core::audit::RecordDraft;
use guardrail_notify::channel::Channel;
use guardrail_notify::outbox::{Deliverer, RetryPolicy};
use guardrail_notify::routing::Routes;
use guardrail_store::{AuditStore, ChannelKind, OutboxState, SqliteStore};
use serde_json::{Value, json};

use crate::jira::{FakeJira, Mode, Site as _, decision_body, start_jira};

/// 2026-12-06T10:00:00Z in Unix ms.
const T0: i64 = 1_796_551_200_000;

struct Clock(AtomicI64);

impl Clock {
    fn new() -> Arc<Clock> {
        Arc::new(Clock(AtomicI64::new(T0 + 1_000)))
    }
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.0.load(Ordering::SeqCst)).unwrap()
    }
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, base: Duration::from_secs(30), cap: Duration::from_secs(600) }
}

fn store_at(path: &std::path::Path) -> SqliteStore {
    let mut s = SqliteStore::open(path).unwrap();
    s.set_outbox_router(Some(Arc::new(Routes::new(None, true))));
    s
}

fn append(store: &mut dyn AuditStore, kind: &str, body: Value) -> guardrail_core::audit::ChainedRecord {
    store.append(RecordDraft { kind: kind.into(), recorded_at: "2026-12-06T10:00:00Z".into(), body }).unwrap()
}

fn deliverer(jira: &FakeJira) -> Deliverer {
    let ch: Arc<dyn Channel> = Arc::new(jira.channel());
    Deliverer::new(vec![ch], policy()).with_jira_browse(Some(jira.url.clone()))
}

fn incident_steps(store: &mut dyn AuditStore, incident: &str) {
    append(store, "remediation_decision", decision_body(incident));
    append(
        store,
        "approval_request",
        json!({"incident_id": incident, "severity": "high", "action": "restart_api_pods", "requires": "APPROVE",
               "decision_record": "1-x", "eligible": {"approvers": ["bob"], "force_override": ["carol"]}}),
    );
    // Not routed: an execution claim is bookkeeping.
    append(store, "execution_claim", json!({"incident_id": incident, "claim": format!("{incident}#1")}));
    append(
        store,
        "approval_granted",
        json!({"incident_id": incident, "kind": "APPROVE", "approver": "bob", "reason": "ok", "action": "restart_api_pods"}),
    );
    append(
        store,
        "incident_resolved",
        json!({"incident_id": incident, "by": "bob", "summary": "recovered", "runbook_id": ""}),
    );
}

#[test]
fn records_get_rows_and_jira_follows_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(&dir.path().join("audit.db"));
    incident_steps(&mut store, "inc-100");
    let rows = store.outbox_entries(None, None, 100).unwrap();
    assert_eq!(rows.len(), 4, "decision, request, grant, resolution; not the claim");
    assert!(rows.iter().all(|r| r.channel == ChannelKind::Jira && r.ordering_key.as_deref() == Some("inc-100")));
    // A deploy decision gets no Jira row, and no Slack row without a slack: block.
    append(&mut store, "deploy_decision", json!({"action": "BLOCK"}));
    assert_eq!(store.outbox_entries(None, None, 100).unwrap().len(), 4);

    let jira = start_jira();
    let clock = Clock::new();
    let report = deliverer(&jira).deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!((report.delivered, report.failed, report.retrying), (4, 0, 0), "{report:?}");
    assert_eq!(report.problems, Vec::<String>::new());
    let issues = jira.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].comments.len(), 3, "request, grant, resolution");
    assert_eq!(issues[0].status, "Done");
    // The key is in the chain, once, and the chain verifies.
    let links = store.all().unwrap().into_iter().filter(|r| r.kind == "jira_issue_linked").collect::<Vec<_>>();
    assert_eq!(links.len(), 1);
    assert_eq!(
        (links[0].body["issue_key"].as_str(), links[0].body["incident_id"].as_str()),
        (Some("SRE-1"), Some("inc-100"))
    );
    assert!(store.verify().unwrap().ok());
    let st = store.outbox_status().unwrap();
    assert_eq!((st.pending, st.failed, st.delivered), (0, 0, 4));
    assert!(store.outbox_entries(None, None, 10).unwrap().iter().all(|e| e.reference.as_deref() == Some("SRE-1")));
}

#[test]
fn a_jira_outage_leaves_the_outbox_pending_and_a_later_delivery_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(&dir.path().join("audit.db"));
    incident_steps(&mut store, "inc-200");
    let jira = start_jira();
    jira.set_mode(Mode::Down);
    let clock = Clock::new();
    let d = deliverer(&jira);
    let report = d.deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!((report.delivered, report.retrying, report.failed), (0, 1, 0), "{report:?}");
    assert!(report.problems[0].contains("HTTP 503"), "{:?}", report.problems);
    // Only the first row was tried: comments wait for the issue.
    assert_eq!(jira.log().len(), 1, "{:?}", jira.log());
    let st = store.outbox_status().unwrap();
    assert_eq!((st.pending, st.failed, st.delivered), (4, 0, 0));
    assert_eq!(st.oldest_pending_ms, Some(T0));
    // Nothing is due until the backoff has passed (30 s after attempt 1).
    clock.advance(Duration::from_secs(29));
    assert!(d.deliver_due(&mut store, &|| clock.now(), None).unwrap() == Default::default());
    // Jira is back; the next pass completes every row, in order.
    jira.set_mode(Mode::Normal);
    clock.advance(Duration::from_secs(1));
    let report = d.deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!(report.delivered, 4, "{report:?}");
    assert_eq!(jira.issues().len(), 1);
    assert_eq!(jira.issues()[0].comments.len(), 3);
    assert_eq!(store.outbox_status().unwrap().pending, 0);
}

#[test]
fn retry_after_is_honoured_without_using_up_attempts_and_failures_are_redeliverable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(&dir.path().join("audit.db"));
    append(&mut store, "remediation_decision", decision_body("inc-300"));
    let jira = start_jira();
    let clock = Clock::new();
    let d = deliverer(&jira);
    jira.set_mode(Mode::RateLimited(120));
    for _ in 0..5 {
        let r = d.deliver_due(&mut store, &|| clock.now(), None).unwrap();
        assert_eq!(r.retrying, 1, "{r:?}");
        let row = &store.outbox_entries(None, None, 1).unwrap()[0];
        assert_eq!(row.attempts, 0, "a rate limit is not a failed attempt");
        assert_eq!(row.next_attempt_ms, clock.now().as_millisecond() + 120_000, "Retry-After: 120");
        clock.advance(Duration::from_secs(120));
    }
    // An outage uses attempts up: 3 attempts, then failed, visible.
    jira.set_mode(Mode::Down);
    for wait in [30, 60] {
        d.deliver_due(&mut store, &|| clock.now(), None).unwrap();
        clock.advance(Duration::from_secs(wait));
    }
    let r = d.deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!(r.failed, 1, "{r:?}");
    assert!(r.problems[0].contains("given up"), "{:?}", r.problems);
    let row = &store.outbox_entries(None, None, 1).unwrap()[0];
    assert_eq!((row.state, row.attempts), (OutboxState::Failed, 3));
    assert!(row.last_error.as_deref().is_some_and(|e| e.contains("503")));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(d.deliver_due(&mut store, &|| clock.now(), None).unwrap(), Default::default(), "failed rows wait");
    // Re-delivery.
    jira.set_mode(Mode::Normal);
    assert_eq!(store.outbox_retry_failed(clock.now().as_millisecond()).unwrap(), 1);
    assert_eq!(d.deliver_due(&mut store, &|| clock.now(), None).unwrap().delivered, 1);
    assert_eq!(jira.issues().len(), 1);
}

#[test]
fn rows_without_a_destination_stay_pending() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(&dir.path().join("audit.db"));
    append(&mut store, "remediation_decision", decision_body("inc-400"));
    let clock = Clock::new();
    let r = Deliverer::new(Vec::new(), policy()).deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!((r.no_channel, r.delivered), (1, 0));
    let row = &store.outbox_entries(None, None, 1).unwrap()[0];
    assert_eq!((row.state, row.attempts), (OutboxState::Pending, 0));
}

#[test]
fn two_processes_racing_produce_one_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    {
        let mut store = store_at(&path);
        for i in 0..3 {
            incident_steps(&mut store, &format!("inc-race-{i}"));
        }
    }
    let jira = start_jira();
    // Slow creates widen the window in which a second deliverer could create again.
    jira.slow_creates(Duration::from_millis(200));
    let clock = Clock::new();
    let reports: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (path, clock, jira) = (&path, &clock, &jira);
                s.spawn(move || {
                    let mut store = store_at(path);
                    deliverer(jira).deliver_due(&mut store, &|| clock.now(), None).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let delivered: u32 = reports.iter().map(|r| r.delivered).sum();
    let issues = jira.issues();
    assert_eq!(issues.len(), 3, "one ticket per incident: {:?}", issues.iter().map(|i| &i.key).collect::<Vec<_>>());
    let mut store = store_at(&path);
    // Whatever a racer skipped (leased elsewhere, not yet due) a later pass finishes.
    let rest = deliverer(&jira).deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!(delivered + rest.delivered, 12, "{reports:?} {rest:?}");
    assert_eq!(jira.issues().len(), 3);
    assert!(jira.issues().iter().all(|i| i.comments.len() == 3 && i.status == "Done"));
    let links = store.all().unwrap().into_iter().filter(|r| r.kind == "jira_issue_linked").count();
    assert_eq!(links, 3);
}

#[test]
fn routes_follow_the_config() {
    use guardrail_store::OutboxRouter;
    let draft =
        |kind: &str, body: Value| RecordDraft { kind: kind.into(), recorded_at: "2026-12-06T10:00:00Z".into(), body };
    let off = Routes::new(None, false);
    assert!(off.is_empty());
    assert!(off.route(&draft("remediation_decision", decision_body("i"))).is_empty());
    let jira = Routes::new(None, true);
    let t = jira.route(&draft("remediation_decision", decision_body("i")));
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].channel, t[0].ordering_key.as_deref()), (ChannelKind::Jira, Some("i")));
    assert!(jira.route(&draft("execution_claim", json!({"incident_id": "i"}))).is_empty());
    assert!(
        jira.route(&draft("jira_issue_linked", json!({"incident_id": "i"}))).is_empty(),
        "never routes its own notes"
    );
    assert!(jira.route(&draft("remediation_decision", json!({"incident_id": ""}))).is_empty());
}

/// A fresh PostgreSQL schema (`postgres://postgres@127.0.0.1:5432/test` or
/// `GUARDRAIL_TEST_PG_URL`), dropped at the end; never skipped.
struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    fn new() -> PgSchema {
        let url = std::env::var("GUARDRAIL_TEST_PG_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        PgSchema { url, name: format!("gr_notify_{}_{nanos}", std::process::id()) }
    }
    fn open(&self) -> guardrail_store::PostgresStore {
        let mut s = guardrail_store::PostgresStore::connect_with_schema(&self.url, &self.name)
            .unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
        s.set_outbox_router(Some(Arc::new(Routes::new(None, true))));
        s
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}

#[test]
fn two_processes_racing_on_postgresql_produce_one_ticket() {
    let pg = PgSchema::new();
    {
        let mut store = pg.open();
        for i in 0..2 {
            incident_steps(&mut store, &format!("inc-pg-{i}"));
        }
        // Rows and records in the same transaction: every routed record has its row.
        let records = store.all().unwrap();
        let routed = records.iter().filter(|r| r.kind != "execution_claim").count();
        assert_eq!(store.outbox_entries(None, None, 100).unwrap().len(), routed);
    }
    let jira = start_jira();
    jira.slow_creates(Duration::from_millis(200));
    let clock = Clock::new();
    let delivered: u32 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (pg, clock, jira) = (&pg, &clock, &jira);
                s.spawn(move || deliverer(jira).deliver_due(&mut pg.open(), &|| clock.now(), None).unwrap().delivered)
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let mut store = pg.open();
    let rest = deliverer(&jira).deliver_due(&mut store, &|| clock.now(), None).unwrap();
    assert_eq!(delivered + rest.delivered, 8);
    assert_eq!(jira.issues().len(), 2, "one ticket per incident");
    assert_eq!(store.all().unwrap().iter().filter(|r| r.kind == "jira_issue_linked").count(), 2);
    assert!(store.verify().unwrap().ok());
}
