//! `guardrail notify status|deliver` and the CLI's outbox, through the binary: an incident run
//! while Jira is down decides, records and exits as ever; its notification waits in the
//! outbox (`notify status`); once Jira is back `notify deliver` creates the one issue and the
//! key is recorded in the chain.

use assert_cmd::Command;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::common;

#[derive(Default)]
struct Jira {
    down: bool,
    created: Vec<String>,
    comments: usize,
}

/// A loopback Jira Cloud (REST v3): search/jql, issue, comment; 503 with Jira's error
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
    if line.starts_with("POST /rest/api/3/search/jql ") {
        let found: Vec<Value> = g.created.iter().map(|k| json!({"id": "1", "key": k})).collect();
        return reply(c, "200 OK", &json!({"issues": found, "isLast": true}).to_string());
    }
    if line.starts_with("POST /rest/api/3/issue ") {
        let body: Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(body["fields"]["description"]["type"], "doc", "ADF description");
        let key = format!("SRE-{}", g.created.len() + 1);
        g.created.push(key.clone());
        return reply(c, "201 Created", &json!({"id": "10001", "key": key, "self": "x"}).to_string());
    }
    if line.starts_with("POST /rest/api/3/issue/SRE-1/comment ") {
        g.comments += 1;
        return reply(c, "201 Created", r#"{"id":"20001"}"#);
    }
    reply(c, "404 Not Found", r#"{"errorMessages":["No such endpoint."],"errors":{}}"#)
}

fn cmd(dir: &std::path::Path, jira: &str, args: &[&str]) -> Command {
    let mut c = common::guardrail();
    for k in ["GUARDRAIL_KB", "GUARDRAIL_GOVERNOR_CONFIG", "SLACK_BOT_TOKEN", "JIRA_PROJECT_KEY"] {
        c.env_remove(k);
    }
    c.current_dir(dir)
        .env("JIRA_URL", jira)
        .env("JIRA_EMAIL", "sre-bot@example.com")
        .env("JIRA_API_TOKEN", "jira-token-never-printed")
        .args(args);
    c
}

#[test]
fn an_outage_leaves_the_notification_pending_and_notify_deliver_completes_it() {
    let s = common::Scratch::new();
    let dir = s.root().to_path_buf();
    std::fs::create_dir_all(dir.join(".guardrail")).unwrap();
    let gov = std::fs::read_to_string(common::examples().join("../governor/governor.yaml")).unwrap();
    std::fs::write(dir.join(".guardrail/governor.yaml"), format!("{gov}\njira: {{project_key: SRE}}\n")).unwrap();
    let (url, jira) = fake_jira();
    let sample = common::examples().join("../governor/sample_data.json");
    let (code, _, err) = common::run(cmd(&dir, &url, &["kb", "load", sample.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");

    jira.lock().unwrap().down = true;
    let incident = common::examples().join("../governor/scenarios/incident_high.json");
    let (code, _, err) = common::run(cmd(&dir, &url, &["incident", "run", incident.to_str().unwrap()]));
    assert_eq!(code, 10, "blocked, awaiting approval, as without Jira: {err}");
    assert!(err.contains("notifications: 0 delivered now, 2 pending"), "{err}");
    assert!(!err.contains("jira-token-never-printed"));

    let (code, out, err) = common::run(cmd(&dir, &url, &["notify", "status", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["pending"].as_u64(), v["failed"].as_u64(), v["delivered"].as_u64()),
        (Some(2), Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(v["routed"], json!(["jira"]));
    let tried = v["pending_rows"].as_array().unwrap().iter().find(|r| r["attempts"] == 1).unwrap();
    assert!(tried["last_error"].as_str().unwrap().contains("HTTP 503"), "{tried}");
    assert!(tried["last_error"].as_str().unwrap().contains("Jira is down for maintenance."), "{tried}");
    assert!(!out.contains("jira-token-never-printed"));

    // Back up. The row tried during the outage waits out its backoff (30 s): plain `notify
    // deliver` sends nothing of this incident yet (a comment never goes before its issue);
    // `--retry-failed` makes it due now, and one pass delivers both, in order.
    jira.lock().unwrap().down = false;
    let (code, out, err) = common::run(cmd(&dir, &url, &["notify", "deliver", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["delivered"].as_u64(), v["status"]["pending"].as_u64()), (Some(0), Some(2)), "{v}");
    assert!(jira.lock().unwrap().created.is_empty());
    let (code, out, err) = common::run(cmd(&dir, &url, &["notify", "deliver", "--retry-failed", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["requeued"], 1, "the row waiting on its backoff: {v}");
    assert_eq!((v["delivered"].as_u64(), v["status"]["pending"].as_u64()), (Some(2), Some(0)), "{v}");
    {
        let g = jira.lock().unwrap();
        assert_eq!((g.created.len(), g.comments), (1, 1), "one issue, the approval request as a comment");
    }
    // The key is in the chain, and the chain verifies.
    let (code, out, err) = common::run(cmd(&dir, &url, &["audit", "list", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let records: Vec<Value> = serde_json::from_str(&out).unwrap();
    let link = records.iter().find(|r| r["kind"] == "jira_issue_linked").expect("jira_issue_linked");
    assert!(link.to_string().contains("SRE-1"), "{link}");
    let (code, out, err) = common::run(cmd(&dir, &url, &["audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
}
