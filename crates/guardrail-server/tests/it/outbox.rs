//! Jira follows an incident through `guardrail serve`: the records the HTTP governor
//! endpoints append get their outbox rows in the same transaction, and the server's outbox
//! worker delivers them to a loopback Jira Cloud (REST v3 wire format) — one issue, a comment
//! per step, the Done transition on resolution — through an outage, with `/metrics` showing
//! what waits.

use common::{DEPLOYER, Scratch, Server};
use guardrail_notify::adf::Doc;
use guardrail_notify::jira::CreateIssue;
use guardrail_server::{Role, ServerConfig, Tokens, hash_token};
use guardrail_test_support::jira::{FakeJira, Mode};

use crate::common;

const BOB: &str = "bob-approver-token-0123456789";
const ALICE_ADMIN: &str = "alice-admin-token-0123456789";
const EMAIL: &str = "sre-bot@example.com";
const TOKEN: &str = "jira-api-token-for-tests";

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
    let jira = FakeJira::start(EMAIL, TOKEN);
    let url = jira.url.clone();
    let s = Scratch::new();
    let srv = Server::start(config(&s, &url)).await;
    // Jira is down while the incident is proposed: the decision is recorded and answered at once.
    jira.set_mode(Mode::Down);
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
    assert!(jira.issues().is_empty());
    // Back up: the issue is created from the decision.
    jira.set_mode(Mode::Normal);
    common::wait_until("the Jira issue", || {
        let n = jira.issues().len();
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
        let done = jira.issues().first().is_some_and(|i| i.status == "Done");
        async move { done }
    })
    .await;
    let issues = jira.issues();
    assert_eq!(issues.len(), 1, "one ticket");
    assert_eq!(issues[0].key, "SRE-1");
    let create: CreateIssue = serde_json::from_value(issues[0].create.clone()).unwrap();
    let comments: Vec<Doc> = issues[0].comments.iter().map(|c| serde_json::from_value(c.clone()).unwrap()).collect();
    assert!(create.fields.labels.iter().any(|l| l == "guardrail-incident-inc-live-001"));
    let texts: Vec<String> = comments.iter().map(Doc::plain_text).collect();
    assert!(texts.iter().any(|t| t.contains("Approved by bob")), "{texts:#?}");
    assert!(texts.iter().any(|t| t.contains("Execution")), "{texts:#?}");
    assert!(texts.last().is_some_and(|t| t.contains("Resolved by bob")), "{texts:#?}");
    let records = guardrail_store::open_store(&s.store()).unwrap().all().unwrap();
    let links: Vec<_> = records.iter().filter(|r| r.kind == "jira_issue_linked").collect();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].body["issue_key"], "SRE-1");
}
