//! Jira follows an incident through `guardrail serve`: the records the HTTP governor
//! endpoints append get their outbox rows in the same transaction, and the server's outbox
//! worker delivers them to a loopback Jira Cloud (REST v3 wire format) — one issue, a comment
//! per step, the Done transition on resolution — through an outage, with `/metrics` showing
//! what waits.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::{DEPLOYER, Scratch, Server};
use guardrail_notify::adf::Doc;
use guardrail_notify::jira::{CreateIssue, DoTransition, SearchJql};
use guardrail_server::{Role, ServerConfig, Tokens, hash_token};
use serde_json::json;

use crate::common;

const BOB: &str = "bob-approver-token-0123456789";
const ALICE_ADMIN: &str = "alice-admin-token-0123456789";
const EMAIL: &str = "sre-bot@example.com";
const TOKEN: &str = "jira-api-token-for-tests";

#[derive(Default)]
struct Jira {
    down: bool,
    issues: Vec<(String, CreateIssue, Vec<Doc>, String)>,
}

/// A minimal Jira Cloud: search/jql, issue, comment, transitions; 503 with Jira's error
/// collection while `down`.
fn fake_jira() -> (String, Arc<Mutex<Jira>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let st = Arc::new(Mutex::new(Jira::default()));
    let s2 = st.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let st = s2.clone();
            std::thread::spawn(move || answer(&mut c, &st));
        }
    });
    (url, st)
}

fn reply(c: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        c,
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

fn answer(c: &mut TcpStream, st: &Arc<Mutex<Jira>>) {
    let Some(req) = guardrail_test_support::http::read_request(c) else { return };
    let line = req.head.lines().next().unwrap_or_default().to_string();
    let mut g = st.lock().unwrap();
    if g.down {
        return reply(
            c,
            "503 Service Unavailable",
            r#"{"errorMessages":["Jira is down for maintenance."],"errors":{}}"#,
        );
    }
    // base64("sre-bot@example.com:jira-api-token-for-tests"): Basic auth as Jira Cloud takes it.
    let auth = "Basic c3JlLWJvdEBleGFtcGxlLmNvbTpqaXJhLWFwaS10b2tlbi1mb3ItdGVzdHM=";
    let authed = req
        .head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .any(|(k, v)| k.eq_ignore_ascii_case("authorization") && v.trim() == auth);
    if !authed {
        return reply(c, "401 Unauthorized", r#"{"errorMessages":["You are not authenticated."],"errors":{}}"#);
    }
    let path = line.split(' ').nth(1).unwrap_or_default().to_string();
    if line.starts_with("POST /rest/api/3/search/jql") {
        let q: SearchJql = serde_json::from_str(&req.body).unwrap();
        let label = q.jql.split("labels = \"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_string();
        let found: Vec<_> = g
            .issues
            .iter()
            .filter(|i| i.1.fields.labels.contains(&label))
            .map(|i| json!({"id": "1", "key": i.0}))
            .collect();
        return reply(c, "200 OK", &json!({"issues": found, "isLast": true}).to_string());
    }
    if line.starts_with("POST /rest/api/3/issue ") {
        let create: CreateIssue = serde_json::from_str(&req.body).unwrap();
        let key = format!("SRE-{}", g.issues.len() + 1);
        g.issues.push((key.clone(), create, Vec::new(), "To Do".into()));
        return reply(c, "201 Created", &json!({"id": "10001", "key": key, "self": "x"}).to_string());
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let ["rest", "api", "3", "issue", key, what] = segs.as_slice() {
        let Some(issue) = g.issues.iter_mut().find(|i| i.0 == *key) else {
            return reply(c, "404 Not Found", r#"{"errorMessages":["Issue does not exist."],"errors":{}}"#);
        };
        match (line.starts_with("GET"), *what) {
            (false, "comment") => {
                #[derive(serde::Deserialize)]
                struct B {
                    body: Doc,
                }
                issue.2.push(serde_json::from_str::<B>(&req.body).unwrap().body);
                return reply(c, "201 Created", r#"{"id":"20001"}"#);
            }
            (true, "transitions") => {
                return reply(c, "200 OK", r#"{"transitions":[{"id":"11","name":"To Do"},{"id":"31","name":"Done"}]}"#);
            }
            (false, "transitions") => {
                let t: DoTransition = serde_json::from_str(&req.body).unwrap();
                issue.3 = if t.transition.id == "31" { "Done".into() } else { "To Do".into() };
                return reply(c, "204 No Content", "");
            }
            _ => {}
        }
    }
    reply(c, "404 Not Found", r#"{"errorMessages":["No such endpoint."],"errors":{}}"#)
}

const GOVERNOR: &str = "approvals:
  high: {approvers: [alice, bob]}
executor: {default: dry-run}
jira: {project_key: SRE}
notify: {interval_seconds: 1, backoff_base_seconds: 1, backoff_cap_seconds: 2}
";

fn config(s: &Scratch, jira_url: &str) -> ServerConfig {
    let mut cfg = s.config();
    cfg.tokens = Some(Tokens::from_hashes(&[
        (&hash_token(DEPLOYER), "ci-pipeline", Role::Deployer),
        (&hash_token(ALICE_ADMIN), "alice", Role::Admin),
        (&hash_token(BOB), "bob", Role::Approver),
    ]));
    let gov_dir = common::examples().join("../governor");
    let kb = s.path("knowledge.db");
    let mut store = guardrail_knowledge::SqliteKnowledgeStore::create(&kb).unwrap();
    guardrail_knowledge::KnowledgeStore::load_sample_data(&mut store, &gov_dir.join("sample_data.json")).unwrap();
    std::fs::write(s.path("governor.yaml"), GOVERNOR).unwrap();
    cfg.governor.kb = Some(kb);
    cfg.governor.source =
        Some(guardrail_server::state::GovernorSource { path: s.path("governor.yaml"), required: true });
    for (k, v) in [("JIRA_URL", jira_url), ("JIRA_EMAIL", EMAIL), ("JIRA_API_TOKEN", TOKEN)] {
        cfg.env.insert(k.into(), v.into());
    }
    cfg
}

#[tokio::test]
async fn jira_follows_every_step_through_serve_and_survives_an_outage() {
    let (url, jira) = fake_jira();
    let s = Scratch::new();
    let srv = Server::start(config(&s, &url)).await;
    // Jira is down while the incident is proposed: the decision is recorded and answered at once.
    jira.lock().unwrap().down = true;
    let body = std::fs::read_to_string(common::examples().join("../governor/scenarios/incident_high.json")).unwrap();
    let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &body).await;
    assert_eq!((st, v["data"]["status"].as_str()), (200, Some("awaiting_approval")), "{v}");
    let hash = v["data"]["binding_hash"].as_str().unwrap().to_string();
    // /metrics shows what waits.
    common::wait_until("the outbox gauges", || {
        let srv_url = srv.url("/metrics");
        let client = srv.client.clone();
        async move {
            let t = client.get(srv_url).send().await.unwrap().text().await.unwrap();
            t.lines().any(|l| l.starts_with("guardrail_outbox_pending ") && l != "guardrail_outbox_pending 0")
        }
    })
    .await;
    assert!(jira.lock().unwrap().issues.is_empty());
    // Back up: the issue is created from the decision.
    jira.lock().unwrap().down = false;
    common::wait_until("the Jira issue", || {
        let n = jira.lock().unwrap().issues.len();
        async move { n == 1 }
    })
    .await;
    // Approve (and execute, dry-run), then resolve: each step is a comment; resolved → Done.
    let (st, v) = srv
        .post(
            "/api/incidents/inc-live-001/approve",
            Some(BOB),
            &format!(r#"{{"binding_hash": "{hash}", "reason": "ok"}}"#),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) =
        srv.post("/api/incidents/inc-live-001/resolve", Some(BOB), r#"{"summary": "restarted; errors gone"}"#).await;
    assert_eq!(st, 200, "{v}");
    common::wait_until("the Done transition", || {
        let done = jira.lock().unwrap().issues.first().is_some_and(|i| i.3 == "Done");
        async move { done }
    })
    .await;
    let g = jira.lock().unwrap();
    assert_eq!(g.issues.len(), 1, "one ticket");
    let (key, create, comments, _) = &g.issues[0];
    assert_eq!(key, "SRE-1");
    assert!(create.fields.labels.iter().any(|l| l == "guardrail-incident-inc-live-001"));
    let texts: Vec<String> = comments.iter().map(Doc::plain_text).collect();
    assert!(texts.iter().any(|t| t.contains("Approved by bob")), "{texts:#?}");
    assert!(texts.iter().any(|t| t.contains("Execution")), "{texts:#?}");
    assert!(texts.last().is_some_and(|t| t.contains("Resolved by bob")), "{texts:#?}");
    drop(g);
    let records = guardrail_store::open_store(&s.store()).unwrap().all().unwrap();
    let links: Vec<_> = records.iter().filter(|r| r.kind == "jira_issue_linked").collect();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].body["issue_key"], "SRE-1");
}
