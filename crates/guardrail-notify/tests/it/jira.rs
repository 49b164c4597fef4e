//! The Jira channel against a loopback server that speaks Jira Cloud REST v3 as Atlassian
//! documents it: Basic auth, `search/jql`, `issue` (201 `{id, key, self}`), `comment`,
//! `transitions` (GET list, POST 204), the error collection `{"errorMessages": [...],
//! "errors": {...}}` with 400/401/404, 429 with `Retry-After`, 503, and a server that hangs.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardrail_core::audit::ChainedRecord;
use guardrail_notify::adf::Doc;
use guardrail_notify::channel::{Channel, DeliveryContext, DeliveryError, Notification};
use guardrail_notify::jira::{
    CreateIssue, DoTransition, JiraChannel, JiraClient, JiraSettings, SearchJql, incident_label,
};
use guardrail_store::ChannelKind;
use serde_json::{Value, json};

pub const EMAIL: &str = "sre-bot@example.com";
pub const TOKEN: &str = "ATATT3xFfGF0-not-a-real-token";

/// How the fake answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// As Jira does.
    Normal,
    /// 503 with an error collection (an outage).
    Down,
    /// 429 with `Retry-After: n`.
    RateLimited(u64),
    /// Accepts the connection and answers nothing for this long.
    Hang(Duration),
}

/// One issue as the fake keeps it.
#[derive(Debug, Clone)]
pub struct Issue {
    pub id: u64,
    pub key: String,
    pub create: CreateIssue,
    pub comments: Vec<Doc>,
    pub status: String,
}

#[derive(Debug)]
pub struct State {
    pub mode: Mode,
    pub issues: Vec<Issue>,
    /// `METHOD path` of every request, in order.
    pub log: Vec<String>,
    /// Every Authorization header seen.
    pub auth: Vec<String>,
    /// Slow down issue creation (to widen race windows).
    pub create_delay: Duration,
}

/// A Jira Cloud site on 127.0.0.1.
pub struct FakeJira {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

fn basic(email: &str, token: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}")))
}

fn respond(s: &mut TcpStream, status: u16, reason: &str, headers: &[(&str, String)], body: &str) {
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !body.is_empty() {
        head.push_str("Content-Type: application/json;charset=UTF-8\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body.as_bytes());
    let _ = s.flush();
}

fn errors(messages: &[&str], fields: &[(&str, &str)]) -> String {
    let errors: BTreeMap<&str, &str> = fields.iter().copied().collect();
    json!({"errorMessages": messages, "errors": errors}).to_string()
}

impl FakeJira {
    pub fn start() -> FakeJira {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Normal,
            issues: Vec::new(),
            log: Vec::new(),
            auth: Vec::new(),
            create_delay: Duration::ZERO,
        }));
        let st = state.clone();
        let base = url.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let st = st.clone();
                let base = base.clone();
                std::thread::spawn(move || handle(&mut s, &st, &base));
            }
        });
        FakeJira { url, state }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub fn issues(&self) -> Vec<Issue> {
        self.state.lock().unwrap().issues.clone()
    }

    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn settings(&self) -> JiraSettings {
        let mut s = JiraSettings::new(&self.url, EMAIL, TOKEN, "SRE");
        s.timeout = Duration::from_secs(2);
        s
    }

    pub fn channel(&self) -> JiraChannel {
        JiraChannel::new(JiraClient::new(self.settings()).unwrap())
    }
}

fn handle(s: &mut TcpStream, st: &Arc<Mutex<State>>, base: &str) {
    let Some(req) = guardrail_test_support::http::read_request(s) else { return };
    let line = req.head.lines().next().unwrap_or_default().to_string();
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
    let auth = req
        .head
        .lines()
        .find_map(|l| l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: ")))
        .unwrap_or_default()
        .to_string();
    let mode = {
        let mut g = st.lock().unwrap();
        g.log.push(format!("{method} {path}"));
        g.auth.push(auth.clone());
        g.mode.clone()
    };
    match mode {
        Mode::Normal => {}
        Mode::Down => {
            return respond(s, 503, "Service Unavailable", &[], &errors(&["Jira is temporarily unavailable."], &[]));
        }
        Mode::RateLimited(secs) => {
            return respond(
                s,
                429,
                "Too Many Requests",
                &[("Retry-After", secs.to_string()), ("X-RateLimit-Reason", "jira-burst-based".into())],
                &errors(&["Rate limit exceeded."], &[]),
            );
        }
        Mode::Hang(d) => {
            std::thread::sleep(d);
            return;
        }
    }
    if auth != basic(EMAIL, TOKEN) {
        return respond(
            s,
            401,
            "Unauthorized",
            &[("WWW-Authenticate", "Basic realm=\"protected-area\"".into())],
            &errors(&["You are not authenticated. Authentication required to perform this operation."], &[]),
        );
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("POST", ["rest", "api", "3", "search", "jql"]) => {
            let Ok(q) = serde_json::from_str::<SearchJql>(&req.body) else {
                return respond(s, 400, "Bad Request", &[], &errors(&["Invalid request payload."], &[]));
            };
            // Only the shape Guardrail sends: project = "K" AND labels = "L" ….
            let label = q.jql.split("labels = \"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
            let g = st.lock().unwrap();
            let issues: Vec<Value> = g
                .issues
                .iter()
                .filter(|i| i.create.fields.labels.iter().any(|l| l == label))
                .map(|i| json!({"id": i.id.to_string(), "key": i.key, "self": format!("{base}/rest/api/3/issue/{}", i.id)}))
                .collect();
            respond(s, 200, "OK", &[], &json!({"issues": issues, "isLast": true}).to_string())
        }
        ("POST", ["rest", "api", "3", "issue"]) => {
            let create = match serde_json::from_str::<CreateIssue>(&req.body) {
                Ok(c) => c,
                Err(e) => {
                    return respond(s, 400, "Bad Request", &[], &errors(&[&format!("Invalid payload: {e}")], &[]));
                }
            };
            if create.fields.project.key != "SRE" {
                return respond(s, 400, "Bad Request", &[], &errors(&[], &[("project", "valid project is required")]));
            }
            if create.fields.priority.as_ref().is_some_and(|p| p.name == "Blocker") {
                return respond(
                    s,
                    400,
                    "Bad Request",
                    &[],
                    &errors(
                        &[],
                        &[(
                            "priority",
                            "Field 'priority' cannot be set. It is not on the appropriate screen, or unknown.",
                        )],
                    ),
                );
            }
            let delay = st.lock().unwrap().create_delay;
            std::thread::sleep(delay);
            let mut g = st.lock().unwrap();
            let id = 10_000 + g.issues.len() as u64;
            let key = format!("SRE-{}", g.issues.len() + 1);
            g.issues.push(Issue { id, key: key.clone(), create, comments: Vec::new(), status: "To Do".into() });
            let body = json!({"id": id.to_string(), "key": key, "self": format!("{base}/rest/api/3/issue/{id}")});
            respond(s, 201, "Created", &[], &body.to_string())
        }
        (m, ["rest", "api", "3", "issue", key, what]) => {
            let mut g = st.lock().unwrap();
            let Some(issue) = g.issues.iter_mut().find(|i| i.key == *key) else {
                return respond(
                    s,
                    404,
                    "Not Found",
                    &[],
                    &errors(&["Issue does not exist or you do not have permission to see it."], &[]),
                );
            };
            match (m, *what) {
                ("POST", "comment") => {
                    #[derive(serde::Deserialize)]
                    #[serde(deny_unknown_fields)]
                    struct Body {
                        body: Doc,
                    }
                    let Ok(b) = serde_json::from_str::<Body>(&req.body) else {
                        return respond(
                            s,
                            400,
                            "Bad Request",
                            &[],
                            &errors(&[], &[("comment", "Comment body is not valid ADF.")]),
                        );
                    };
                    issue.comments.push(b.body);
                    let n = issue.comments.len();
                    let body = json!({"id": format!("{}", 20_000 + n), "self": format!("{base}/rest/api/3/issue/{}/comment/{}", issue.id, 20_000 + n),
                        "author": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Guardrail"},
                        "created": "2026-12-06T10:00:00.000+0000"});
                    respond(s, 201, "Created", &[], &body.to_string())
                }
                ("GET", "transitions") => {
                    let t = |id: &str, name: &str| {
                        json!({"id": id, "name": name, "hasScreen": false, "isGlobal": true,
                        "isInitial": false, "isAvailable": true, "isConditional": false,
                        "to": {"self": format!("{base}/rest/api/3/status/{id}"), "name": name, "id": id,
                               "statusCategory": {"id": 3, "key": "done", "name": name}}})
                    };
                    let body = json!({"expand": "transitions", "transitions": [t("11", "To Do"), t("21", "In Progress"), t("31", "Done")]});
                    respond(s, 200, "OK", &[], &body.to_string())
                }
                ("POST", "transitions") => {
                    let Ok(b) = serde_json::from_str::<DoTransition>(&req.body) else {
                        return respond(s, 400, "Bad Request", &[], &errors(&["Invalid transition payload."], &[]));
                    };
                    let name = match b.transition.id.as_str() {
                        "11" => "To Do",
                        "21" => "In Progress",
                        "31" => "Done",
                        _ => {
                            return respond(
                                s,
                                400,
                                "Bad Request",
                                &[],
                                &errors(&["Transition id '99' is not valid for this issue."], &[]),
                            );
                        }
                    };
                    issue.status = name.into();
                    respond(s, 204, "No Content", &[], "")
                }
                _ => respond(s, 404, "Not Found", &[], &errors(&["No such endpoint."], &[])),
            }
        }
        _ => respond(s, 404, "Not Found", &[], &errors(&["No such endpoint."], &[])),
    }
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
    let jira = FakeJira::start();
    let ch = jira.channel();
    let decision = record(1, "remediation_decision", decision_body("inc-001"));
    let d = ch.deliver(&notification(decision.clone()), &DeliveryContext::default()).unwrap();
    assert_eq!(d.reference.as_deref(), Some("SRE-1"));
    let issues = jira.issues();
    assert_eq!(issues.len(), 1);
    let f = &issues[0].create.fields;
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
    let comments: Vec<String> = issue.comments.iter().map(Doc::plain_text).collect();
    assert_eq!(comments.len(), 3, "{comments:#?}");
    assert!(comments[0].contains("Approved by bob") && comments[0].contains(&grant.id()), "{}", comments[0]);
    assert!(comments[1].contains("Execution succeeded") && comments[1].contains(&exec.id()));
    assert!(comments[2].contains("Resolved by bob") && comments[2].contains(&resolved.id()));
    assert_eq!(issue.status, "Done", "resolved → transitioned by name");
    let log = jira.log();
    let gets = log.iter().filter(|l| l.starts_with("GET") && l.ends_with("/transitions")).count();
    assert_eq!(gets, 1, "{log:?}");
    // Basic auth with email:token on every call; the token appears in no error.
    assert!(jira.state.lock().unwrap().auth.iter().all(|a| *a == basic(EMAIL, TOKEN)));
}

#[test]
fn an_issue_created_before_a_crash_is_found_not_created_again() {
    let jira = FakeJira::start();
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
    let jira = FakeJira::start();
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
    let jira = FakeJira::start();
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
