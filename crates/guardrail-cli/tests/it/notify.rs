//! `guardrail notify status|deliver` and the CLI's outbox, through the binary: an incident run
//! while Jira is down decides, records and exits as ever; its notification waits in the
//! outbox (`notify status`); once Jira is back `notify deliver` creates the one issue and the
//! key is recorded in the chain.

use assert_cmd::Command;
use guardrail_test_support::jira::{FakeJira, Mode};
use serde_json::{Value, json};

use crate::common;

/// The credentials the commands run with (`JIRA_EMAIL`, `JIRA_API_TOKEN`).
const EMAIL: &str = "sre-bot@example.com";
const TOKEN: &str = "jira-token-never-printed";

fn cmd(dir: &std::path::Path, jira: &str, args: &[&str]) -> Command {
    let mut c = common::guardrail();
    for k in ["GUARDRAIL_KB", "GUARDRAIL_GOVERNOR_CONFIG", "SLACK_BOT_TOKEN", "JIRA_PROJECT_KEY"] {
        c.env_remove(k);
    }
    c.current_dir(dir).env("JIRA_URL", jira).env("JIRA_EMAIL", EMAIL).env("JIRA_API_TOKEN", TOKEN).args(args);
    c
}

#[test]
fn an_outage_leaves_the_notification_pending_and_notify_deliver_completes_it() {
    let s = common::Scratch::new();
    let dir = s.root().to_path_buf();
    std::fs::create_dir_all(dir.join(".guardrail")).unwrap();
    let gov = std::fs::read_to_string(common::examples().join("../governor/governor.yaml")).unwrap();
    std::fs::write(dir.join(".guardrail/governor.yaml"), format!("{gov}\njira: {{project_key: SRE}}\n")).unwrap();
    let jira = FakeJira::start(EMAIL, TOKEN);
    let url = jira.url.clone();
    let sample = common::examples().join("../governor/sample_data.json");
    let (code, _, err) = common::run(cmd(&dir, &url, &["kb", "load", sample.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");

    jira.set_mode(Mode::Down);
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
    jira.set_mode(Mode::Normal);
    let (code, out, err) = common::run(cmd(&dir, &url, &["notify", "deliver", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["delivered"].as_u64(), v["status"]["pending"].as_u64()), (Some(0), Some(2)), "{v}");
    assert!(jira.issues().is_empty());
    let (code, out, err) = common::run(cmd(&dir, &url, &["notify", "deliver", "--retry-failed", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["requeued"], 1, "the row waiting on its backoff: {v}");
    assert_eq!((v["delivered"].as_u64(), v["status"]["pending"].as_u64()), (Some(2), Some(0)), "{v}");
    let issues = jira.issues();
    assert_eq!(
        (issues.len(), issues.iter().map(|i| i.comments.len()).sum::<usize>()),
        (1, 1),
        "one issue, the approval request as a comment"
    );
    // The key is in the chain, and the chain verifies.
    let (code, out, err) = common::run(cmd(&dir, &url, &["audit", "list", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let records: Vec<Value> = serde_json::from_str(&out).unwrap();
    let link = records.iter().find(|r| r["kind"] == "jira_issue_linked").expect("jira_issue_linked");
    assert!(link.to_string().contains("SRE-1"), "{link}");
    let (code, out, err) = common::run(cmd(&dir, &url, &["audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
}
