//! `POST /slack/interactions` and `/slack/events` through a real socket, signed as Slack signs
//! (the official `slack_sdk` package produces the signatures when it is installed, as
//! `scripts/test` installs it), answering into a loopback Slack Web API: forged, stale and
//! replayed requests refused; a button + the modal's reason approves and executes a blocked
//! incident; a thread reply does the same; an unmapped user and a self-approval are refused and
//! recorded with the Slack ids; a Slack approval racing an HTTP approval: exactly one wins.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use guardrail_core::audit::ChainedRecord;
use guardrail_knowledge::KnowledgeStore as _;
use guardrail_notify::blocks::{ActionValue, Block};
use guardrail_server::{Role, ServerConfig, Tokens, hash_token};
use guardrail_test_support::slack::FakeSlack;

use crate::common::{self, DEPLOYER, Scratch, Server};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const BOB_TOKEN: &str = "bob-approver-token-0123456789";
const ALICE_ADMIN: &str = "alice-admin-token-0123456789";

// ------------------------------------------------------------------------------------------
// Signing: slack_sdk when available, else Guardrail's own (checked equal to slack_sdk's below).

/// A Python with `slack_sdk`: `GUARDRAIL_SLACK_PYTHON`, else the test venv.
fn slack_python() -> Option<String> {
    guardrail_test_support::python_with("GUARDRAIL_SLACK_PYTHON", "slack_sdk.signature")
}

/// `slack_sdk.signature.SignatureVerifier(secret).generate_signature(timestamp=, body=)`.
fn sdk_signature(py: &str, ts: &str, body: &str) -> String {
    let script = "import sys; from slack_sdk.signature import SignatureVerifier as V; \
                  print(V(sys.argv[1]).generate_signature(timestamp=sys.argv[2], body=sys.stdin.read()), end='')";
    let mut child = std::process::Command::new(py)
        .args(["-c", script, SECRET, ts])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn sign(ts: &str, body: &str) -> String {
    match slack_python() {
        Some(py) => sdk_signature(&py, ts, body),
        None => guardrail_notify::slack_verify::signature(SECRET.as_bytes(), ts, body.as_bytes()),
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

async fn send(
    srv: &Server,
    path: &str,
    content_type: &str,
    body: &str,
    sig: Option<(String, String)>,
) -> (u16, String) {
    let mut req = srv.client.post(srv.url(path)).header("content-type", content_type).body(body.to_string());
    if let Some((ts, s)) = sig {
        req = req.header("X-Slack-Request-Timestamp", ts).header("X-Slack-Signature", s);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A request signed now.
async fn signed(srv: &Server, path: &str, body: &str) -> (u16, String) {
    let ts = now().to_string();
    let s = sign(&ts, body);
    let ct = if path.ends_with("interactions") { "application/x-www-form-urlencoded" } else { "application/json" };
    send(srv, path, ct, body, Some((ts, s))).await
}

fn form(payload: &str) -> String {
    let mut out = String::from("payload=");
    for b in payload.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn wait_for_call(fake: &FakeSlack, method: &str, n: usize) -> Vec<serde_json::Value> {
    let f = fake.clone();
    let m = method.to_string();
    common::wait_until(&format!("{n} {method} call(s)"), || {
        let ok = f.bodies(&m).len() >= n;
        async move { ok }
    })
    .await;
    fake.bodies(method)
}

// ------------------------------------------------------------------------------------------
// The server.

const GOVERNOR: &str = "approvals:
  high: {approvers: [alice, bob], force_override: [incident-commander]}
  critical: {force_override: [incident-commander]}
executor: {default: dry-run}
notify: {interval_seconds: 1}
slack:
  channel: C0INCIDENTS
  team: T0TEAM
  users: {U0BOB: bob, U0ALICE: alice}
";

fn config(s: &Scratch, fake: Option<&FakeSlack>) -> ServerConfig {
    let mut cfg = s.config();
    cfg.tokens = Some(Tokens::from_hashes(&[
        (&hash_token(DEPLOYER), "ci-pipeline", Role::Deployer),
        (&hash_token(ALICE_ADMIN), "alice", Role::Admin),
        (&hash_token(BOB_TOKEN), "bob", Role::Approver),
    ]));
    let gov_dir = common::examples().join("../governor");
    let kb = s.path("knowledge.db");
    let mut store = guardrail_knowledge::SqliteKnowledgeStore::create(&kb).unwrap();
    store.load_sample_data(&gov_dir.join("sample_data.json")).unwrap();
    std::fs::write(s.path("governor.yaml"), GOVERNOR).unwrap();
    cfg.governor.kb = Some(kb);
    cfg.governor.source =
        Some(guardrail_server::state::GovernorSource { path: s.path("governor.yaml"), required: true });
    cfg.env.insert("SLACK_SIGNING_SECRET".into(), SECRET.into());
    if let Some(f) = fake {
        cfg.env.insert("SLACK_BOT_TOKEN".into(), "xoxb-test".into());
        cfg.env.insert("SLACK_API_URL".into(), f.url.clone());
    }
    cfg
}

fn records(s: &Scratch) -> Vec<ChainedRecord> {
    guardrail_store::open_store(&s.store()).unwrap().all().unwrap()
}

fn of_kind(s: &Scratch, kind: &str) -> Vec<ChainedRecord> {
    records(s).into_iter().filter(|r| r.kind == kind).collect()
}

/// Proposes the high-severity scenario (blocked, awaiting approval) as `token`; `serve`'s
/// outbox posts its incident message to the fake Slack: its `ts` and the buttons' value.
async fn blocked_incident(srv: &Server, s: &Scratch, fake: &FakeSlack, token: &str) -> (String, ActionValue) {
    let body = std::fs::read_to_string(common::examples().join("../governor/scenarios/incident_high.json")).unwrap();
    let (st, v) = srv.post("/api/incidents", Some(token), &body).await;
    assert_eq!((st, v["data"]["status"].as_str()), (200, Some("awaiting_approval")), "{v}");
    incident_message(s, fake).await
}

/// The incident message the outbox posted (one pass here as well, so the test does not wait
/// for the worker's next tick; the lease keeps it to one delivery).
async fn incident_message(s: &Scratch, fake: &FakeSlack) -> (String, ActionValue) {
    deliver_outbox(s, fake).await;
    let posted = wait_for_call(fake, "chat.postMessage", 1).await;
    let roots: Vec<&serde_json::Value> = posted.iter().filter(|m| m["thread_ts"].is_null()).collect();
    assert_eq!(roots.len(), 1, "one incident message: {posted:?}");
    assert_eq!(roots[0]["channel"], "C0INCIDENTS");
    let blocks: Vec<Block> = serde_json::from_value(roots[0]["blocks"].clone()).unwrap();
    let value: ActionValue = blocks
        .iter()
        .find_map(|b| match b {
            Block::Actions { elements, .. } => elements.first().and_then(|e| e.value.as_deref()),
            _ => None,
        })
        .map(|v| serde_json::from_str(v).unwrap())
        .unwrap();
    let ts = fake.messages().iter().find(|(_, b)| **b == roots[0]["blocks"]).map(|(ts, _)| ts.clone()).unwrap();
    (ts, value)
}

fn block_actions(user: &str, action_id: &str, value: &ActionValue, ts: &str, trigger: &str) -> String {
    let v = serde_json::to_string(value).unwrap();
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": "T0TEAM"},
        "api_app_id": "A0APP", "token": "legacy-verification-token",
        "team": {"id": "T0TEAM", "domain": "example"},
        "trigger_id": trigger,
        "container": {"type": "message", "message_ts": ts, "channel_id": "C0INCIDENTS", "is_ephemeral": false},
        "channel": {"id": "C0INCIDENTS", "name": "incidents"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/x",
        "actions": [{"action_id": action_id, "block_id": "guardrail_actions", "type": "button",
                     "text": {"type": "plain_text", "text": "Approve"}, "value": v, "action_ts": format!("{trigger}.9")}]
    });
    form(&payload.to_string())
}

fn view_submission(user: &str, view_id: &str, private_metadata: &str, reason: &str) -> String {
    let payload = serde_json::json!({
        "type": "view_submission",
        "team": {"id": "T0TEAM", "domain": "example"},
        "user": {"id": user, "username": "someone", "team_id": "T0TEAM"},
        "api_app_id": "A0APP", "token": "legacy-verification-token", "trigger_id": "5.6.x",
        "view": {"id": view_id, "type": "modal", "callback_id": "guardrail_decision", "private_metadata": private_metadata,
                 "hash": "1.abc", "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}}},
        "response_urls": []
    });
    form(&payload.to_string())
}

fn message_event(event_id: &str, user: &str, text: &str, thread_ts: &str) -> String {
    serde_json::json!({
        "token": "legacy", "team_id": "T0TEAM", "api_app_id": "A0APP", "type": "event_callback",
        "event_id": event_id, "event_time": now(),
        "event": {"type": "message", "channel": "C0INCIDENTS", "user": user, "text": text,
                  "ts": "1765000099.000100", "thread_ts": thread_ts, "event_ts": "1765000099.000100", "channel_type": "channel"}
    })
    .to_string()
}

async fn wait_kind(s: &Scratch, kind: &str, n: usize) -> Vec<ChainedRecord> {
    common::wait_until(&format!("{n} {kind} record(s)"), || {
        let ok = of_kind(s, kind).len() >= n;
        async move { ok }
    })
    .await;
    of_kind(s, kind)
}

// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn slack_sdk_signatures_are_accepted_and_forged_stale_replayed_refused() {
    let s = Scratch::new();
    let srv = Server::start(config(&s, None)).await;
    let body = r#"{"token":"legacy","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = now().to_string();
    match slack_python() {
        Some(py) => {
            // Interoperability: slack_sdk's signature is Guardrail's, and the server takes it.
            let sdk = sdk_signature(&py, &ts, body);
            assert_eq!(sdk, guardrail_notify::slack_verify::signature(SECRET.as_bytes(), &ts, body.as_bytes()));
        }
        None => {
            assert!(
                std::env::var("GUARDRAIL_REQUIRE_SLACK_PYTHON").is_err(),
                "GUARDRAIL_REQUIRE_SLACK_PYTHON is set but no python with slack_sdk was found"
            );
            eprintln!("skipping the slack_sdk comparison: no python with slack_sdk (scripts/test installs it)");
        }
    }
    let sig = sign(&ts, body);
    let (st, text) = send(&srv, "/slack/events", "application/json", body, Some((ts.clone(), sig.clone()))).await;
    assert_eq!((st, text.as_str()), (200, r#"{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#));
    // The same request again: a replay.
    let (st, text) = send(&srv, "/slack/events", "application/json", body, Some((ts.clone(), sig.clone()))).await;
    assert_eq!(st, 401, "{text}");
    assert!(text.contains("already received"), "{text}");
    // Forged: another body under the signature, or another secret.
    let other = body.replace("3eZ", "XXX");
    let (st, _) = send(&srv, "/slack/events", "application/json", &other, Some((ts.clone(), sig))).await;
    assert_eq!(st, 401);
    let forged = guardrail_notify::slack_verify::signature(b"not-the-secret", &ts, other.as_bytes());
    let (st, _) = send(&srv, "/slack/events", "application/json", &other, Some((ts, forged))).await;
    assert_eq!(st, 401);
    // Stale (6 minutes old) and unsigned.
    let old = (now() - 360).to_string();
    let (st, text) =
        send(&srv, "/slack/events", "application/json", &other, Some((old.clone(), sign(&old, &other)))).await;
    assert_eq!(st, 401, "{text}");
    let (st, _) = send(&srv, "/slack/events", "application/json", &other, None).await;
    assert_eq!(st, 401);
    let (st, _) = send(&srv, "/slack/interactions", "application/x-www-form-urlencoded", "payload=%7B%7D", None).await;
    assert_eq!(st, 401);
    // Nothing was recorded by any of them.
    assert!(records(&s).is_empty());

    // Without a signing secret the endpoints do not exist.
    let s2 = Scratch::new();
    let mut cfg = config(&s2, None);
    cfg.env.remove("SLACK_SIGNING_SECRET");
    let srv2 = Server::start(cfg).await;
    let (st, _) = signed(&srv2, "/slack/events", body).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn a_button_and_the_modal_reason_approve_and_execute() {
    let s = Scratch::new();
    let fake = FakeSlack::start();
    let srv = Server::start(config(&s, Some(&fake))).await;
    let (ts, value) = blocked_incident(&srv, &s, &fake, ALICE_ADMIN).await;

    let started = std::time::Instant::now();
    let (st, _) =
        signed(&srv, "/slack/interactions", &block_actions("U0BOB", "guardrail_approve", &value, &ts, "1.2.a")).await;
    assert_eq!(st, 200);
    assert!(started.elapsed() < Duration::from_secs(3), "answered within Slack's 3 s");
    let views = wait_for_call(&fake, "views.open", 1).await;
    assert_eq!(views[0]["trigger_id"], "1.2.a");
    let meta = views[0]["view"]["private_metadata"].as_str().unwrap().to_string();

    // No reason: the modal shows the error, nothing is recorded.
    let (st, text) = signed(&srv, "/slack/interactions", &view_submission("U0BOB", "V1", &meta, "  ")).await;
    assert_eq!(st, 200);
    assert!(text.contains(r#""response_action":"errors""#), "{text}");
    let (st, text) =
        signed(&srv, "/slack/interactions", &view_submission("U0BOB", "V1", &meta, "db failover verified")).await;
    assert_eq!((st, text.as_str()), (200, ""));

    let grants = wait_kind(&s, "approval_granted", 1).await;
    let g = &grants[0].body;
    assert_eq!(g["approver"], "bob");
    assert_eq!(g["reason"], "db failover verified");
    assert_eq!(g["binding_hash"], value.binding_hash.as_str());
    assert_eq!(g["requested_by"]["via"], "slack");
    assert_eq!(g["requested_by"]["slack_user_id"], "U0BOB");
    assert_eq!(g["requested_by"]["slack_team_id"], "T0TEAM");
    let exec = wait_kind(&s, "remediation_execution", 1).await;
    assert_eq!((exec[0].body["ran"].as_bool(), exec[0].body["ok"].as_bool()), (Some(true), Some(true)));
    // The buttons are replaced by who decided.
    let updates = wait_for_call(&fake, "chat.update", 1).await;
    assert_eq!(updates[0]["ts"], ts.as_str());
    let text = updates[0].to_string();
    assert!(text.contains("*bob* approved") && !text.contains("guardrail_approve"), "{text}");
}

#[tokio::test]
async fn a_thread_reply_approves_once_even_when_slack_retries() {
    let s = Scratch::new();
    let fake = FakeSlack::start();
    let srv = Server::start(config(&s, Some(&fake))).await;
    let (ts, _) = blocked_incident(&srv, &s, &fake, ALICE_ADMIN).await;
    let event = message_event("Ev0001", "U0BOB", "APPROVE rollback checked with the DBA", &ts);
    let (st, _) = signed(&srv, "/slack/events", &event).await;
    assert_eq!(st, 200);
    // Slack's retry of the same event: new signature, same event id.
    let t2 = now().to_string();
    let retry = srv
        .client
        .post(srv.url("/slack/events"))
        .header("content-type", "application/json")
        .header("X-Slack-Retry-Num", "1")
        .header("X-Slack-Retry-Reason", "http_timeout")
        .header("X-Slack-Request-Timestamp", &t2)
        .header("X-Slack-Signature", sign(&t2, &format!("{event} ")))
        .body(format!("{event} "))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status().as_u16(), 200);
    let grants = wait_kind(&s, "approval_granted", 1).await;
    assert_eq!(grants[0].body["reason"], "rollback checked with the DBA");
    assert_eq!(grants[0].body["requested_by"]["slack_user_id"], "U0BOB");
    wait_kind(&s, "remediation_execution", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(of_kind(&s, "approval_granted").len(), 1, "the retry acted once");
    assert_eq!(of_kind(&s, "approval_refused").len(), 0);
}

#[tokio::test]
async fn unmapped_users_and_self_approval_are_refused_and_recorded() {
    let s = Scratch::new();
    let fake = FakeSlack::start();
    let srv = Server::start(config(&s, Some(&fake))).await;
    let (ts, value) = blocked_incident(&srv, &s, &fake, ALICE_ADMIN).await;

    // Unmapped: no modal, a refusal recorded with the Slack ids, answered to the clicker only.
    let (st, _) =
        signed(&srv, "/slack/interactions", &block_actions("U0EVE", "guardrail_approve", &value, &ts, "7.7.a")).await;
    assert_eq!(st, 200);
    let refused = wait_kind(&s, "approval_refused", 1).await;
    assert_eq!(refused[0].body["code"], "slack_user_not_mapped");
    assert_eq!(refused[0].body["requested_by"]["slack_user_id"], "U0EVE");
    assert_eq!(refused[0].body["requested_by"]["slack_team_id"], "T0TEAM");
    let eph = wait_for_call(&fake, "chat.postEphemeral", 1).await;
    assert_eq!(eph[0]["user"], "U0EVE");
    assert!(fake.bodies("views.open").is_empty());

    // alice proposed it: her thread reply is a self-approval, refused exactly as over HTTP.
    let (st, _) = signed(&srv, "/slack/events", &message_event("Ev0002", "U0ALICE", "APPROVE looks fine", &ts)).await;
    assert_eq!(st, 200);
    let refused = wait_kind(&s, "approval_refused", 2).await;
    assert_eq!(refused[1].body["code"], "self_approval");
    assert_eq!(refused[1].body["approver"], "alice");
    assert_eq!(refused[1].body["requested_by"]["slack_user_id"], "U0ALICE");
    let (st, v) = srv
        .post(
            "/api/incidents/inc-live-001/approve",
            Some(ALICE_ADMIN),
            &format!(r#"{{"binding_hash":"{}"}}"#, value.binding_hash),
        )
        .await;
    assert_eq!(st, 409, "{v}");
    assert!(v.to_string().contains("self_approval"), "{v}");
    assert!(of_kind(&s, "approval_granted").is_empty());
}

#[tokio::test]
async fn a_slack_approval_racing_an_http_approval_executes_once() {
    let s = Scratch::new();
    let fake = FakeSlack::start();
    let srv = Server::start(config(&s, Some(&fake))).await;
    // Proposed by the pipeline's token, so bob (Slack) and alice (HTTP) may both approve.
    let (ts, value) = blocked_incident(&srv, &s, &fake, DEPLOYER).await;
    let (st, _) =
        signed(&srv, "/slack/interactions", &block_actions("U0BOB", "guardrail_approve", &value, &ts, "9.9.a")).await;
    assert_eq!(st, 200);
    let views = wait_for_call(&fake, "views.open", 1).await;
    let meta = views[0]["view"]["private_metadata"].as_str().unwrap().to_string();
    let body = view_submission("U0BOB", "V9", &meta, "race: slack side");
    let http_body = format!(r#"{{"binding_hash":"{}","reason":"race: http side"}}"#, value.binding_hash);
    let (slack, http) = tokio::join!(
        signed(&srv, "/slack/interactions", &body),
        srv.post("/api/incidents/inc-live-001/approve", Some(ALICE_ADMIN), &http_body)
    );
    assert_eq!(slack.0, 200);
    // Wait until the Slack side has been decided too (granted, or refused as not pending).
    common::wait_until("both approvals decided", || {
        let n = of_kind(&s, "approval_granted").len() + of_kind(&s, "approval_refused").len();
        async move { n >= 2 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let executions = of_kind(&s, "remediation_execution");
    assert_eq!(executions.len(), 1, "exactly one execution: {executions:?} (http answered {http:?})");
    let claims = of_kind(&s, "execution_claim");
    assert_eq!(claims.len(), 1, "one claim");
}

#[tokio::test]
async fn a_button_for_another_plan_is_refused_as_over_http() {
    let s = Scratch::new();
    let fake = FakeSlack::start();
    let srv = Server::start(config(&s, Some(&fake))).await;
    let (ts, value) = blocked_incident(&srv, &s, &fake, ALICE_ADMIN).await;
    // The message a person saw was for another plan (its hash differs from the gated one).
    let stale = ActionValue { binding_hash: "0".repeat(64), ..value };
    // (A thread reply takes the hash from the message it answers; a modal carries it.)
    let meta = serde_json::json!({"incident_id": stale.incident_id, "binding_hash": stale.binding_hash,
        "kind": "approve", "channel": "C0INCIDENTS", "message_ts": ts})
    .to_string();
    let (st, _) = signed(&srv, "/slack/interactions", &view_submission("U0BOB", "V7", &meta, "go")).await;
    assert_eq!(st, 200);
    let refused = wait_kind(&s, "approval_refused", 1).await;
    let http = srv
        .post(
            "/api/incidents/inc-live-001/approve",
            Some(BOB_TOKEN),
            &format!(r#"{{"binding_hash":"{}","reason":"go"}}"#, stale.binding_hash),
        )
        .await;
    assert_eq!(http.0, 409, "{:?}", http.1);
    let refused_http = wait_kind(&s, "approval_refused", 2).await;
    assert_eq!(refused[0].body["code"], refused_http[1].body["code"], "the same refusal as over HTTP");
    assert_eq!(refused[0].body["requested_by"]["slack_user_id"], "U0BOB");
    assert!(of_kind(&s, "approval_granted").is_empty());
    let eph = wait_for_call(&fake, "chat.postEphemeral", 1).await;
    assert_eq!(eph[0]["user"], "U0BOB");
}

#[tokio::test]
async fn reject_is_recorded_and_a_reply_without_reason_records_nothing() {
    let s = Scratch::new();
    let fake = FakeSlack::start();
    let srv = Server::start(config(&s, Some(&fake))).await;
    let (ts, value) = blocked_incident(&srv, &s, &fake, ALICE_ADMIN).await;

    // `APPROVE` alone: answered to the person, nothing recorded.
    let (st, _) = signed(&srv, "/slack/events", &message_event("Ev0100", "U0BOB", "APPROVE", &ts)).await;
    assert_eq!(st, 200);
    let eph = wait_for_call(&fake, "chat.postEphemeral", 1).await;
    assert!(eph[0]["text"].as_str().unwrap().contains("needs a reason"), "{}", eph[0]);
    // Chatter in the thread is not a command.
    let (st, _) = signed(&srv, "/slack/events", &message_event("Ev0101", "U0BOB", "approve? not yet", &ts)).await;
    assert_eq!(st, 200);

    // Reject: a modal, then recorded with the reason; the action stays blocked.
    let (st, _) =
        signed(&srv, "/slack/interactions", &block_actions("U0BOB", "guardrail_reject", &value, &ts, "3.3.r")).await;
    assert_eq!(st, 200);
    let views = wait_for_call(&fake, "views.open", 1).await;
    let meta = views[0]["view"]["private_metadata"].as_str().unwrap().to_string();
    let (st, _) = signed(&srv, "/slack/interactions", &view_submission("U0BOB", "V3", &meta, "wrong runbook")).await;
    assert_eq!(st, 200);
    let refused = wait_kind(&s, "approval_refused", 1).await;
    assert_eq!(
        (refused[0].body["code"].as_str(), refused[0].body["kind"].as_str()),
        (Some("rejected"), Some("reject"))
    );
    assert_eq!(refused[0].body["approver"], "bob");
    assert_eq!(refused[0].body["reason"], "wrong runbook");
    let (_, v) = srv.get("/api/incidents/inc-live-001").await;
    assert_eq!(v["data"]["status"], "awaiting_approval", "{v}");
    let f = fake.clone();
    let t = ts.clone();
    common::wait_until("the rejection in the thread", || {
        let seen = f
            .bodies("chat.postMessage")
            .iter()
            .any(|m| m["thread_ts"] == t.as_str() && m["text"].as_str().is_some_and(|x| x.contains("rejected")));
        async move { seen }
    })
    .await;
    assert!(of_kind(&s, "approval_granted").is_empty());
}

/// One delivery pass of the outbox, with the Slack destination pointed at the fake (what
/// `serve`'s outbox thread does with `SLACK_BOT_TOKEN` and `SLACK_API_URL` set).
async fn deliver_outbox(s: &Scratch, fake: &FakeSlack) {
    let cfg = guardrail_config::read_governor(&s.path("governor.yaml")).unwrap().file.slack.unwrap();
    let env: BTreeMap<String, String> =
        [("SLACK_BOT_TOKEN".to_string(), "xoxb-test".to_string()), ("SLACK_API_URL".to_string(), fake.url.clone())]
            .into();
    let store = s.store();
    tokio::task::spawn_blocking(move || {
        let d = guardrail_notify::routing::deliverer_from(Some(&cfg), None, None, &env, None).unwrap();
        let mut store = guardrail_store::open_store(&store).unwrap();
        d.deliver_due(store.as_mut(), &jiff::Timestamp::now, None).unwrap();
    })
    .await
    .unwrap();
}

/// The issue's whole path: a blocked incident is posted to Slack from the outbox; an
/// approver's button + reason (or a thread reply) approves and executes it; the message loses
/// its buttons and the thread says who approved and how the execution went.
async fn end_to_end(by_thread_reply: bool) {
    let s = Scratch::new();
    let fake = FakeSlack::start();
    let srv = Server::start(config(&s, Some(&fake))).await;
    let body = std::fs::read_to_string(common::examples().join("../governor/scenarios/incident_high.json")).unwrap();
    let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &body).await;
    assert_eq!(st, 200, "{v}");
    let (ts, value) = incident_message(&s, &fake).await;

    if by_thread_reply {
        let ev = message_event("Ev0900", "U0BOB", "APPROVE confirmed with the DBA", &ts);
        assert_eq!(signed(&srv, "/slack/events", &ev).await.0, 200);
    } else {
        let click = block_actions("U0BOB", "guardrail_approve", &value, &ts, "8.8.e");
        assert_eq!(signed(&srv, "/slack/interactions", &click).await.0, 200);
        let views = wait_for_call(&fake, "views.open", 1).await;
        let meta = views[0]["view"]["private_metadata"].as_str().unwrap().to_string();
        let submit = view_submission("U0BOB", "V8", &meta, "confirmed with the DBA");
        assert_eq!(signed(&srv, "/slack/interactions", &submit).await.0, 200);
    }
    let grants = wait_kind(&s, "approval_granted", 1).await;
    assert_eq!(grants[0].body["approver"], "bob");
    let exec = wait_kind(&s, "remediation_execution", 1).await;
    assert_eq!(exec[0].body["ok"], true);

    // `serve`'s outbox thread delivers the grant and the execution (no pass from the test).
    let f = fake.clone();
    let t = ts.clone();
    common::wait_until("the execution reported in the thread", || {
        let done = f
            .bodies("chat.postMessage")
            .iter()
            .any(|m| m["thread_ts"] == t.as_str() && m["text"].as_str().is_some_and(|x| x.contains("Execution of")));
        async move { done }
    })
    .await;
    let updates = fake.bodies("chat.update");
    assert!(!updates.is_empty() && updates.iter().all(|u| u["ts"] == ts.as_str()));
    let last = updates.last().unwrap().to_string();
    assert!(last.contains("*bob* approved") && !last.contains("guardrail_approve"), "{last}");
    let thread: Vec<String> = fake
        .bodies("chat.postMessage")
        .into_iter()
        .filter(|m| m["thread_ts"] == ts.as_str())
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(thread.iter().any(|t| t.contains("*bob* approved")), "{thread:?}");
    assert!(thread.iter().any(|t| t.contains("Execution of") && t.contains("succeeded")), "{thread:?}");
    // Delivered once: another pass sends nothing new.
    let before = fake.calls().len();
    deliver_outbox(&s, &fake).await;
    assert_eq!(fake.calls().len(), before);
}

#[tokio::test]
async fn end_to_end_button_and_modal() {
    end_to_end(false).await;
}

#[tokio::test]
async fn end_to_end_thread_reply() {
    end_to_end(true).await;
}

/// A deploy BLOCK from `POST /api/gate` goes to the service's deploy channel with the rule,
/// the values compared and the counterfactual; an ALLOW goes nowhere.
#[tokio::test]
async fn a_deploy_block_is_posted_to_the_services_channel() {
    let s = Scratch::new();
    let fake = FakeSlack::start();
    let cfg = config(&s, Some(&fake));
    std::fs::write(s.path("governor.yaml"), format!("{GOVERNOR}  deploy_channels: {{checkout-api: C0DEPLOYS}}\n"))
        .unwrap();
    let srv = Server::start(cfg).await;
    let block = std::fs::read_to_string(common::examples().join("scenarios/block/metrics.json")).unwrap();
    s.write("data/metrics.json", &block);
    let v = srv.wait_for("/api/decision", 200, |v| v["data"]["action"] == "BLOCK").await;
    let rule = v["data"]["policy_id"].as_str().unwrap().to_string();
    let (st, g) = srv.post("/api/gate", Some(DEPLOYER), r#"{"ci": {"service": "checkout-api"}}"#).await;
    assert_eq!((st, g["data"]["action"].as_str()), (200, Some("BLOCK")), "{g}");
    deliver_outbox(&s, &fake).await;
    let posted = wait_for_call(&fake, "chat.postMessage", 1).await;
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0]["channel"], "C0DEPLOYS");
    let text = posted[0].to_string();
    assert!(text.contains("Deploy BLOCK: checkout-api") && text.contains(&rule), "{text}");
    assert!(text.contains("Values compared") && text.contains("What would change it"), "{text}");
}

#[tokio::test]
async fn a_broken_governor_config_decides_nothing_from_slack() {
    let s = Scratch::new();
    let fake = FakeSlack::start();
    let srv = Server::start(config(&s, Some(&fake))).await;
    let (ts, _) = blocked_incident(&srv, &s, &fake, ALICE_ADMIN).await;
    let n = records(&s).len();
    s.write("governor.yaml", &GOVERNOR.replace("approvals:", "aprovals:"));
    let ev = message_event("Ev0500", "U0BOB", "APPROVE go", &ts);
    let (st, text) = signed(&srv, "/slack/events", &ev).await;
    assert_eq!(st, 503, "{text}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(records(&s).len(), n, "nothing recorded");
}
