//! The Jira channel against the loopback Jira Cloud site of guardrail-test-support (REST v3 as
//! Atlassian documents it: Basic auth, `search/jql`, `issue` (201 `{id, key, self}`), `comment`,
//! `transitions` (GET list, POST 204), the error collection `{"errorMessages": [...],
//! "errors": {...}}` with 400/401/404, 429 with `Retry-After`, 503, and a server that hangs).

use std::collections::BTreeMap;
use std::time::Duration;

use guardrail_core::audit::ChainedRecord;
use guardrail_notify::adf::Doc;
use guardrail_notify::channel::{Channel, DeliveryContext, DeliveryError, Notification};
use guardrail_notify::jira::{CreateIssue, JiraChannel, JiraClient, JiraSettings, incident_label};
use guardrail_store::ChannelKind;
pub use guardrail_test_support::jira::{FakeJira, Issue, Mode};
use serde_json::{Value, json};

pub const EMAIL: &str = "sre-bot@example.com";
pub const TOKEN: &str = "ATATT3xFfGF0-not-a-real-token";

/// A site that takes [`EMAIL`] and [`TOKEN`].
pub fn start_jira() -> FakeJira {
    FakeJira::start(EMAIL, TOKEN)
}

/// The channel's settings and channel for a site.
pub trait Site {
    fn settings(&self) -> JiraSettings;
    fn channel(&self) -> JiraChannel;
}

impl Site for FakeJira {
    fn settings(&self) -> JiraSettings {
        let mut s = JiraSettings::new(&self.url, EMAIL, TOKEN, "SRE");
        s.timeout = Duration::from_secs(2);
        s
    }

    fn channel(&self) -> JiraChannel {
        JiraChannel::new(JiraClient::new(self.settings()).unwrap())
    }
}

/// The create request an issue came from, read back as the channel's type.
fn created(issue: &Issue) -> CreateIssue {
    serde_json::from_value(issue.create.clone()).expect("the channel's create request")
}

/// An issue's comments as ADF documents.
fn comments(issue: &Issue) -> Vec<Doc> {
    issue.comments.iter().map(|c| serde_json::from_value(c.clone()).expect("an ADF comment")).collect()
}

fn basic(email: &str, token: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}")))
}

/// A chained record (hashes are irrelevant to delivery).
pub fn record(seq: i64, kind: &str, body: Value) -> ChainedRecord {
    ChainedRecord {
        seq,
        kind: kind.into(),
        recorded_at: "2026-12-06T10:00:00Z".into(),
        body,
        prev_hash: "0".repeat(64),
        hash: format!("{seq:064x}"),
    }
}

pub fn decision_body(incident: &str) -> Value {
    json!({"incident_id": incident, "incident": {"id": incident, "service": "payments-api", "severity": "high",
        "summary": "error rate above SLO after deploy", "symptoms": "5xx"},
        "origin": null, "proposer": "alice", "gated_action": "restart_api_pods", "binding_hash": "ab12cd34",
        "decision": "BLOCK", "rule": "contradicting_evidence", "reasons": ["3 contradicting documents"],
        "requires_force_override": false, "outcome": {}, "knowledge_base": "kb", "logs": null,
        "deploy_signals": null, "governor_config": null, "gate_inputs": null})
}

fn notification(r: ChainedRecord) -> Notification {
    Notification { outbox_id: r.seq, channel: ChannelKind::Jira, record: r, attempts: 0 }
}

#[test]
fn lifecycle_creates_comments_and_transitions() {
    let jira = start_jira();
    let ch = jira.channel();
    let decision = record(1, "remediation_decision", decision_body("inc-001"));
    let d = ch.deliver(&notification(decision.clone()), &DeliveryContext::default()).unwrap();
    assert_eq!(d.reference.as_deref(), Some("SRE-1"));
    let issues = jira.issues();
    assert_eq!(issues.len(), 1);
    let create = created(&issues[0]);
    let f = &create.fields;
    assert_eq!(f.project.key, "SRE");
    assert_eq!(f.issuetype.name, "Task");
    assert_eq!(f.priority.as_ref().map(|p| p.name.as_str()), Some("High"), "priority from severity");
    assert_eq!(f.labels, vec![incident_label("inc-001")]);
    assert!(f.summary.contains("inc-001") && f.summary.contains("payments-api"), "{}", f.summary);
    let text = f.description.plain_text();
    assert!(text.contains("Gate verdict: BLOCK") && text.contains("contradicting_evidence"), "{text}");
    assert!(text.contains(&decision.id()), "the description names the audit record: {text}");
    // The link record for the chain.
    let note = ch.chain_note(&notification(decision.clone()), &DeliveryContext::default(), &d).unwrap();
    assert_eq!((note.kind.as_str(), note.claim.as_str()), ("jira_issue_linked", "jira:inc-001"));
    assert_eq!(note.body["issue_key"], "SRE-1");
    assert_eq!(note.body["issue_url"], format!("{}/browse/SRE-1", jira.url));

    // Later steps comment on the issue.
    let ctx = DeliveryContext { jira_key: Some("SRE-1".into()), decision: Some(decision), ..Default::default() };
    let grant = record(
        3,
        "approval_granted",
        json!({"incident_id": "inc-001", "kind": "APPROVE", "approver": "bob", "reason": "checked the dashboards",
               "action": "restart_api_pods", "binding_hash": "ab12cd34"}),
    );
    assert!(ch.chain_note(&notification(grant.clone()), &ctx, &Default::default()).is_none());
    ch.deliver(&notification(grant.clone()), &ctx).unwrap();
    let exec = record(
        5,
        "remediation_execution",
        json!({"incident_id": "inc-001", "action": "restart_api_pods", "ran": true, "ok": true, "executor": "dry-run",
               "authorised_by": "APPROVE"}),
    );
    ch.deliver(&notification(exec.clone()), &ctx).unwrap();
    let resolved = record(
        6,
        "incident_resolved",
        json!({"incident_id": "inc-001", "by": "bob", "summary": "pods restarted, errors gone", "runbook_id": "learned-inc-001"}),
    );
    ch.deliver(&notification(resolved.clone()), &ctx).unwrap();
    let issue = &jira.issues()[0];
    let comments: Vec<String> = comments(issue).iter().map(Doc::plain_text).collect();
    assert_eq!(comments.len(), 3, "{comments:#?}");
    assert!(comments[0].contains("Approved by bob") && comments[0].contains(&grant.id()), "{}", comments[0]);
    assert!(comments[1].contains("Execution succeeded") && comments[1].contains(&exec.id()));
    assert!(comments[2].contains("Resolved by bob") && comments[2].contains(&resolved.id()));
    assert_eq!(issue.status, "Done", "resolved → transitioned by name");
    let log = jira.log();
    let gets = log.iter().filter(|l| l.starts_with("GET") && l.ends_with("/transitions")).count();
    assert_eq!(gets, 1, "{log:?}");
    // Basic auth with email:token on every call; the token appears in no error.
    assert!(jira.auth_headers().iter().all(|a| *a == basic(EMAIL, TOKEN)));
}

#[test]
fn an_issue_created_before_a_crash_is_found_not_created_again() {
    let jira = start_jira();
    let ch = jira.channel();
    let decision = record(1, "remediation_decision", decision_body("inc-002"));
    ch.deliver(&notification(decision.clone()), &DeliveryContext::default()).unwrap();
    // The process died before recording SRE-1: the retry has no key in its context.
    let again = ch.deliver(&notification(decision), &DeliveryContext::default()).unwrap();
    assert_eq!(again.reference.as_deref(), Some("SRE-1"));
    assert_eq!(jira.issues().len(), 1, "one ticket per incident");
}

#[test]
fn errors_are_classified_with_jiras_messages_and_no_token() {
    let jira = start_jira();
    let decision = record(1, "remediation_decision", decision_body("inc-003"));
    let n = notification(decision);
    let ctx = DeliveryContext::default();

    // Wrong token: 401, permanent, Jira's message kept, the token nowhere.
    let mut bad = jira.settings();
    bad.email = "someone-else@example.com".into();
    let e = JiraChannel::new(JiraClient::new(bad).unwrap()).deliver(&n, &ctx).unwrap_err();
    match &e {
        DeliveryError::Permanent { reason } => {
            assert!(reason.contains("HTTP 401") && reason.contains("not authenticated"), "{reason}");
            assert!(!reason.contains(TOKEN));
        }
        other => panic!("{other:?}"),
    }

    // A refused field: 400 with errors.priority, permanent, named.
    let mut s = jira.settings();
    s.priorities.insert(guardrail_core::remediation::Severity::High, "Blocker".into());
    let e = JiraChannel::new(JiraClient::new(s).unwrap()).deliver(&n, &ctx).unwrap_err();
    assert!(
        matches!(&e, DeliveryError::Permanent { reason } if reason.contains("priority: Field 'priority' cannot be set")),
        "{e:?}"
    );

    // Wrong project: 400 errors.project.
    let mut s = jira.settings();
    s.project_key = "OPS".into();
    let e = JiraChannel::new(JiraClient::new(s).unwrap()).deliver(&n, &ctx).unwrap_err();
    assert!(
        matches!(&e, DeliveryError::Permanent { reason } if reason.contains("project: valid project is required")),
        "{e:?}"
    );

    // A comment on an issue Jira does not know: 404, permanent.
    let ctx404 = DeliveryContext { jira_key: Some("SRE-404".into()), ..Default::default() };
    let e = jira.channel().deliver(&n, &ctx404).unwrap_err();
    assert!(
        matches!(&e, DeliveryError::Permanent { reason } if reason.contains("HTTP 404") && reason.contains("does not exist")),
        "{e:?}"
    );

    // 429 with Retry-After: retryable, the wait kept.
    jira.set_mode(Mode::RateLimited(17));
    let e = jira.channel().deliver(&n, &ctx).unwrap_err();
    assert!(
        matches!(&e, DeliveryError::Retryable { retry_after: Some(d), reason } if d.as_secs() == 17 && reason.contains("Rate limit exceeded")),
        "{e:?}"
    );

    // 503: retryable.
    jira.set_mode(Mode::Down);
    let e = jira.channel().deliver(&n, &ctx).unwrap_err();
    assert!(
        matches!(&e, DeliveryError::Retryable { retry_after: None, reason } if reason.contains("HTTP 503")),
        "{e:?}"
    );

    // A server that answers nothing: the per-call timeout, retryable.
    jira.set_mode(Mode::Hang(Duration::from_secs(5)));
    let mut s = jira.settings();
    s.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let e = JiraChannel::new(JiraClient::new(s).unwrap()).deliver(&n, &ctx).unwrap_err();
    assert!(matches!(&e, DeliveryError::Retryable { reason, .. } if reason.contains("timed out")), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(jira.issues().is_empty(), "nothing was created by any failing call");
}

#[test]
fn a_missing_resolution_transition_fails_before_commenting() {
    let jira = start_jira();
    let decision = record(1, "remediation_decision", decision_body("inc-004"));
    jira.channel().deliver(&notification(decision), &DeliveryContext::default()).unwrap();
    let mut s = jira.settings();
    s.resolve_transition = "Closed".into();
    let ctx = DeliveryContext { jira_key: Some("SRE-1".into()), ..Default::default() };
    let resolved = record(2, "incident_resolved", json!({"incident_id": "inc-004", "by": "bob", "summary": "ok"}));
    let e = JiraChannel::new(JiraClient::new(s).unwrap()).deliver(&notification(resolved), &ctx).unwrap_err();
    assert!(
        matches!(&e, DeliveryError::Permanent { reason } if reason.contains("\"Closed\"") && reason.contains("To Do, In Progress, Done")),
        "{e:?}"
    );
    assert!(jira.issues()[0].comments.is_empty(), "no comment a re-delivery would repeat");
}

#[test]
fn settings_come_from_the_block_and_the_environment() {
    let env =
        |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    assert!(JiraSettings::resolve(None, &env(&[])).unwrap().is_none(), "off without block and JIRA_URL");
    let e = JiraSettings::resolve(None, &env(&[("JIRA_URL", "https://x.atlassian.net")])).unwrap_err();
    assert!(e.to_string().contains("JIRA_EMAIL"), "{e}");
    let s = JiraSettings::resolve(
        None,
        &env(&[
            ("JIRA_URL", "https://x.atlassian.net/"),
            ("JIRA_EMAIL", EMAIL),
            ("JIRA_API_TOKEN", TOKEN),
            ("JIRA_PROJECT_KEY", "OPS"),
        ]),
    )
    .unwrap()
    .unwrap();
    assert_eq!((s.base_url.as_str(), s.project_key.as_str()), ("https://x.atlassian.net", "OPS"));
    assert!(!format!("{s:?}").contains(TOKEN));
}
