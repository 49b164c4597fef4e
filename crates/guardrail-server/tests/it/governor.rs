//! The governor endpoints through a real loopback socket: incidents proposed, listed and
//! shown; the approval queue; approve / force-override with the approver taken from the token
//! only; every refusal and grant on the one audit chain; no filesystem path in any answer.

use crate::common;

use common::{DEPLOYER, Scratch, Server};
use guardrail_governor::views::{ApprovalRefusalView, ExecutionStep, GrantView, Refused, RunView};
use guardrail_knowledge::KnowledgeStore as _;
use guardrail_server::{GovernorSettings, Role, ServerConfig, Tokens, hash_token};

/// Proposes as `alice` (admin: may ask and approve), so alice approving is self-approval.
const ALICE_ADMIN: &str = "alice-admin-token-0123456789";
/// `bob`, an approver listed for high severity.
const BOB: &str = "bob-approver-token-0123456789";
/// `incident-commander`, listed for force-override.
const IC: &str = "ic-approver-token-0123456789";

fn governor_dir() -> std::path::PathBuf {
    common::examples().join("../governor")
}

fn config(s: &Scratch, with_kb: bool) -> ServerConfig {
    let mut cfg = s.config();
    cfg.tokens = Some(Tokens::from_hashes(&[
        (&hash_token(DEPLOYER), "ci-pipeline", Role::Deployer),
        (&hash_token(ALICE_ADMIN), "alice", Role::Admin),
        (&hash_token(BOB), "bob", Role::Approver),
        (&hash_token(IC), "incident-commander", Role::Approver),
    ]));
    let src = guardrail_config::read_source(&governor_dir().join("governor.yaml")).unwrap();
    let loaded = guardrail_config::load_governor_config(&src).unwrap();
    let kb = s.path("knowledge.db");
    if with_kb {
        let mut store = guardrail_knowledge::SqliteKnowledgeStore::create(&kb).unwrap();
        store.load_sample_data(&governor_dir().join("sample_data.json")).unwrap();
    }
    cfg.governor = GovernorSettings {
        config: loaded.value,
        description: serde_json::json!({"path": "governor.yaml", "sha256": src.sha256}),
        kb: Some(kb),
        ..Default::default()
    };
    cfg
}

fn assert_no_paths(s: &Scratch, what: &str, body: &str) {
    let root = s.root().display().to_string();
    assert!(!body.contains(&root), "{what} leaks {root}: {body}");
    assert!(!body.contains("/tmp/") && !body.contains("/work/"), "{what} leaks a path: {body}");
}

fn scenario(name: &str) -> String {
    std::fs::read_to_string(governor_dir().join("scenarios").join(name)).unwrap()
}

const CRITICAL: &str = r#"{"id": "inc-crit", "service": "billing-batch", "severity": "critical",
    "summary": "Queue lag increased by 35%", "symptoms": "slow workers, no DB saturation"}"#;

async fn text(srv: &Server, path: &str) -> String {
    srv.get_text(path).await.1
}

#[tokio::test]
async fn an_incident_is_proposed_queued_shown_and_approved_by_the_token_identity() {
    let s = Scratch::new();
    let srv = Server::start(config(&s, true)).await;

    let (st, v) = srv.get("/api/incidents").await;
    assert_eq!((st, v), (200, serde_json::json!({"ok": true, "data": []})));

    // Proposing needs a deployer (or admin) token.
    let body = scenario("incident_high.json");
    let (st, _) = srv.post("/api/incidents", None, &body).await;
    assert_eq!(st, 401);
    let (st, v) = srv.post("/api/incidents", Some(BOB), &body).await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), "{\"id\": 3}").await;
    assert_eq!(st, 400, "{v}");

    let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &body).await;
    assert_eq!(st, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["incident_id"], "inc-live-001");
    assert_eq!(d["status"], "awaiting_approval");
    assert_eq!(d["proposer"], "alice");
    assert_eq!(d["requires"], "approve");
    assert!(d["reasons"].as_array().is_some_and(|r| !r.is_empty()), "{d}");
    let hash = d["binding_hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);
    // The answer is the view the CLI and MCP render.
    let run: RunView = serde_json::from_value(d.clone()).unwrap();
    assert_eq!((run.request_record.is_some(), run.execution.is_none()), (true, true));

    // Listed with its latest verdict; shown with plan, stress, gate, evidence and queue.
    let (st, v) = srv.get("/api/incidents").await;
    assert_eq!(st, 200);
    let list = v["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "awaiting_approval");
    assert_eq!(list[0]["decision"], d["decision"]);
    assert_eq!(list[0]["binding_hash"], hash.as_str());
    let (st, v) = srv.get("/api/incidents/inc-live-001").await;
    assert_eq!(st, 200);
    let inc = &v["data"];
    for k in ["plan", "stress", "gate", "evidence", "reasons", "pending", "records", "incident"] {
        assert!(!inc[k].is_null(), "incident lacks {k}: {inc}");
    }
    assert_eq!(inc["pending"]["binding_hash"], hash.as_str());
    assert_eq!(inc["pending"]["proposer"], "alice");
    let (st, v) = srv.get("/api/incidents/no-such").await;
    assert_eq!(st, 404, "{v}");

    let (st, v) = srv.get("/api/approvals").await;
    assert_eq!(st, 200);
    let q = v["data"].as_array().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["incident_id"], "inc-live-001");
    assert_eq!(q[0]["requires"], "approve");

    let path = "/api/incidents/inc-live-001/approve";
    // `plan_hash`, the request field's old name, is still accepted.
    let ok_body = format!(r#"{{"plan_hash": "{hash}", "reason": "reviewed"}}"#);
    // 401 / 403 / 400 before anything is decided.
    let (st, _) = srv.post(path, None, &ok_body).await;
    assert_eq!(st, 401);
    let (st, _) = srv.post(path, Some(DEPLOYER), &ok_body).await;
    assert_eq!(st, 403);
    // The approver comes from the token: a body naming one is rejected.
    let (st, v) = srv.post(path, Some(BOB), &format!(r#"{{"binding_hash": "{hash}", "approver": "mallory"}}"#)).await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("unknown field"), "{v}");
    let (st, _) = srv.post(path, Some(BOB), r#"{"reason": "no hash"}"#).await;
    assert_eq!(st, 400);
    let (st, _) = srv.post(path, Some(BOB), "[]").await;
    assert_eq!(st, 400);
    let r = srv.client.post(srv.url(path)).bearer_auth(BOB).body(ok_body.clone()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 415, "no Content-Type");
    let big = format!(r#"{{"binding_hash": "{hash}", "reason": "{}"}}"#, "x".repeat(70 * 1024));
    let (st, _) = srv.post(path, Some(BOB), &big).await;
    assert_eq!(st, 413);

    // Self-approval: alice proposed it.
    let (st, v) = srv.post(path, Some(ALICE_ADMIN), &ok_body).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "self_approval");
    assert!(v["audit"]["id"].is_string(), "{v}");
    let refusal: ApprovalRefusalView = serde_json::from_value(v.clone()).unwrap();
    assert_eq!((refusal.body.approver.as_str(), refusal.status), ("alice", Refused::Refused));
    // A changed plan (another hash) is refused.
    let (st, v) = srv.post(path, Some(BOB), r#"{"binding_hash": "0000000000000000"}"#).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "plan_changed");
    // Not listed for high severity.
    let (st, v) = srv.post(path, Some(IC), &ok_body).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "not_authorised");

    // bob, listed, approves the hash he reviewed.
    let (st, v) = srv.post(path, Some(BOB), &ok_body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["status"], "executed");
    assert_eq!(v["data"]["grant"]["approver"], "bob");
    // The bundled config's executor is dry-run: recorded, nothing run.
    assert_eq!(v["data"]["execution"]["executor"], "dry-run");
    assert_eq!(v["data"]["execution"]["report"]["dry_run"], true);
    assert_eq!(v["data"]["execution"]["authorised_by"], "approve");
    assert_eq!(v["data"]["grant"]["binding_hash"], hash.as_str());
    let grant: GrantView = serde_json::from_value(v["data"].clone()).unwrap();
    assert!(matches!(grant.execution, ExecutionStep::Recorded(ref e) if e.audit.is_some()), "{v}");
    // Released once: a second approval finds nothing pending.
    let (st, v) = srv.post(path, Some(BOB), &ok_body).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "not_pending");
    let (_, v) = srv.get("/api/approvals").await;
    assert_eq!(v["data"], serde_json::json!([]));
    let (_, v) = srv.get("/api/incidents/inc-live-001").await;
    assert_eq!(v["data"]["status"], "executed");
    assert!(v["data"]["authorised"].is_null());

    // Every request, refusal and grant is on the one intact chain.
    let (_, audit) = srv.get("/api/audit?limit=500").await;
    let kinds: Vec<&str> =
        audit["data"].as_array().unwrap().iter().rev().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "remediation_decision",
            "approval_request",
            "approval_refused",
            "approval_refused",
            "approval_refused",
            "approval_granted",
            "execution_claim",
            "remediation_execution",
            "approval_refused"
        ]
    );
    let refusal = &audit["data"][6];
    assert_eq!(refusal["approver"], "alice");
    assert_eq!(refusal["requested_by"]["identity"], "alice");
    let (_, verify) = srv.get("/api/audit/verify").await;
    assert_eq!(verify["data"]["records"], 9);
    assert_eq!(verify["data"]["intact"], true, "{verify}");

    for p in ["/api/incidents", "/api/incidents/inc-live-001", "/api/approvals", "/api/audit?limit=500"] {
        assert_no_paths(&s, p, &text(&srv, p).await);
    }
}

#[tokio::test]
async fn a_critical_incident_refuses_approve_and_accepts_a_reasoned_force_override() {
    let s = Scratch::new();
    let srv = Server::start(config(&s, true)).await;
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), CRITICAL).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["requires"], "force_override");
    assert_eq!(v["data"]["proposer"], "ci-pipeline");
    let hash = v["data"]["binding_hash"].as_str().unwrap().to_string();
    let short = &hash[..12];

    let (st, v) = srv
        .post(
            "/api/incidents/inc-crit/approve",
            Some(BOB),
            &format!(r#"{{"binding_hash": "{short}", "reason": "fine"}}"#),
        )
        .await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "force_override_required");
    let fo = "/api/incidents/inc-crit/force-override";
    let (st, v) = srv.post(fo, Some(IC), &format!(r#"{{"binding_hash": "{short}"}}"#)).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "reason_required");
    let (st, v) = srv.post(fo, Some(IC), &format!(r#"{{"binding_hash": "{short}", "reason": "   "}}"#)).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "reason_required");
    let (st, v) =
        srv.post(fo, Some(IC), &format!(r#"{{"plan_hash": "{short}", "reason": "customer impact, CAB-123"}}"#)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["grant"]["kind"], "force_override");
    assert_eq!(v["data"]["grant"]["approver"], "incident-commander");
    assert_eq!(v["data"]["grant"]["reason"], "customer impact, CAB-123");
    let (_, audit) = srv.get("/api/audit?kind=force_override").await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1);
    assert_eq!(audit["data"][0]["approver"], "incident-commander");
    let (_, verify) = srv.get("/api/audit/verify").await;
    assert_eq!(verify["data"]["intact"], true, "{verify}");
}

#[tokio::test]
async fn a_missing_knowledge_base_is_a_503_without_paths_and_records_nothing() {
    let s = Scratch::new();
    let srv = Server::start(config(&s, false)).await;
    let r = srv
        .client
        .post(srv.url("/api/incidents"))
        .header("content-type", "application/json")
        .bearer_auth(DEPLOYER)
        .body(scenario("incident_high.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("knowledge base is missing"), "{body}");
    assert_no_paths(&s, "POST /api/incidents", &body);
    let (_, verify) = srv.get("/api/audit/verify").await;
    assert_eq!(verify["data"]["records"], 0);
    // Without a governor config, nobody may approve (refused, recorded) — not a 5xx.
    let mut cfg = config(&s, true);
    cfg.governor.config = Default::default();
    drop(srv);
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &scenario("incident_high.json")).await;
    assert_eq!(st, 200, "{v}");
    let hash = v["data"]["binding_hash"].as_str().unwrap().to_string();
    let (st, v) =
        srv.post("/api/incidents/inc-live-001/approve", Some(BOB), &format!(r#"{{"binding_hash": "{hash}"}}"#)).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "not_authorised");
}

#[tokio::test]
async fn an_action_the_gate_validates_runs_with_the_configured_dry_run_executor() {
    let s = Scratch::new();
    let srv = Server::start(config(&s, true)).await;
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &scenario("incident_medium.json")).await;
    assert_eq!(st, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["decision"], "execute", "{d}");
    assert_eq!(d["status"], "executed");
    assert_eq!(d["execution"]["executor"], "dry-run");
    assert_eq!(d["execution"]["authorised_by"], "gate");
    assert_eq!(d["execution"]["requested_by"], "ci-pipeline");
    let (_, v) = srv.get("/api/approvals").await;
    assert_eq!(v["data"], serde_json::json!([]));
    let (_, v) = srv.get("/api/incidents").await;
    assert_eq!(v["data"][0]["status"], "executed");
    let (_, audit) = srv.get("/api/audit").await;
    let kinds: Vec<&str> =
        audit["data"].as_array().unwrap().iter().rev().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["remediation_decision", "execution_claim", "remediation_execution"]);
}

#[tokio::test]
async fn an_approval_whose_mirror_copy_fails_is_granted_says_so_and_nothing_runs_yet() {
    let s = Scratch::new();
    let mut cfg = config(&s, true);
    let mirror = s.path("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    cfg.audit_jsonl = Some(mirror.clone());
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &scenario("incident_high.json")).await;
    assert_eq!(st, 200, "{v}");
    let hash = v["data"]["binding_hash"].as_str().unwrap().to_string();
    // The mirror becomes unwritable (a file where its directory was): the chain append
    // succeeds, the mirror copy fails.
    std::fs::remove_dir_all(&mirror).unwrap();
    std::fs::write(&mirror, "not a directory").unwrap();
    let r = srv
        .client
        .post(srv.url("/api/incidents/inc-live-001/approve"))
        .header("content-type", "application/json")
        .bearer_auth(BOB)
        .body(format!(r#"{{"plan_hash": "{hash}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body = r.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    // The truth: granted, recorded as that record, only the mirror copy failed.
    assert_eq!(v["status"], "recorded_mirror_failed", "{body}");
    let grant = v["audit"]["id"].as_str().unwrap().to_string();
    assert!(body.contains(&format!("IS recorded in the audit chain as record {grant}")), "{body}");
    assert!(body.contains("IS granted") && !body.contains("not granted"), "{body}");
    assert_no_paths(&s, "approve", &body);
    let (_, g) = srv.get("/api/audit?kind=approval_granted").await;
    assert_eq!(g["data"].as_array().unwrap().len(), 1, "the grant is in the chain");
    let (_, v) = srv.get("/api/audit?kind=remediation_execution").await;
    assert_eq!(v["data"], serde_json::json!([]), "nothing ran");
    let (_, v) = srv.get("/api/incidents/inc-live-001").await;
    assert_eq!(v["data"]["status"], "authorised");
    let (_, m) = srv.get_text("/metrics").await;
    assert!(m.lines().any(|l| l.starts_with("guardrail_audit_write_failures") && !l.ends_with(" 0")), "{m}");
}

/// inc-live-002 decided `execute` with an executor that cannot start (webhook without a URL):
/// recorded, authorised, not run. Then the server restarts with the bundled (dry-run) config.
async fn authorised_but_not_run(s: &Scratch) -> Server {
    let mut cfg = config(s, true);
    cfg.governor.config.executor.default = guardrail_core::approval::ExecutorKind::Webhook;
    cfg.governor.config.executor.webhook_url = None;
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &scenario("incident_medium.json")).await;
    assert_eq!(st, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("NOT executed"), "{v}");
    drop(srv);
    let srv = Server::start(config(s, true)).await;
    let (_, v) = srv.get("/api/incidents/inc-live-002").await;
    assert_eq!(v["data"]["status"], "authorised", "{v}");
    srv
}

#[tokio::test]
async fn execute_runs_the_authorised_action_once_among_racing_callers() {
    let s = Scratch::new();
    let srv = authorised_but_not_run(&s).await;
    let path = "/api/incidents/inc-live-002/execute";
    // Refusals before anything is decided.
    assert_eq!(srv.post(path, None, "{}").await.0, 401);
    assert_eq!(srv.post(path, Some(DEPLOYER), "{}").await.0, 403);
    let (st, v) = srv.post(path, Some(BOB), r#"{"requested_by": "mallory"}"#).await;
    assert_eq!(st, 400, "who asks is the token, never the body: {v}");
    assert_eq!(srv.post(path, Some(BOB), "[]").await.0, 400);
    assert_eq!(srv.post(path, Some(BOB), r#"{"action": "  "}"#).await.0, 400);
    assert_eq!(srv.post("/api/incidents/no-such/execute", Some(BOB), "{}").await.0, 404);
    // Eight callers at once: one runs it, the others are refused naming the claim or the run.
    let calls = (0..8).map(|_| srv.post(path, Some(BOB), "{}"));
    let answers = futures_join(calls).await;
    let winners: Vec<_> = answers.iter().filter(|(st, _)| *st == 200).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    let won = &winners[0].1["data"];
    assert_eq!(won["status"], "executed");
    assert_eq!(won["execution"]["requested_by"], "bob");
    assert_eq!(won["execution"]["executor"], "dry-run");
    let claim = won["execution"]["claim_record"].as_str().unwrap().to_string();
    for (st, v) in answers.iter().filter(|(st, _)| *st != 200) {
        assert_eq!(*st, 409, "{v}");
        let code = v["code"].as_str().unwrap();
        assert!(code == "claim_held" || code == "already_executed", "{v}");
        let named = v["claim_held_by"].as_str().or(v["claim_record"].as_str());
        assert_eq!(named, Some(claim.as_str()), "{v}");
    }
    let (_, a) = srv.get("/api/audit?kind=remediation_execution").await;
    assert_eq!(a["data"].as_array().unwrap().len(), 1);
    let (_, a) = srv.get("/api/audit?kind=execution_claim").await;
    assert_eq!(a["data"].as_array().unwrap().len(), 1);
    // Consumed.
    let (st, v) = srv.post(path, Some(BOB), "{}").await;
    assert_eq!((st, v["code"].as_str()), (409, Some("already_executed")), "{v}");
    let (_, verify) = srv.get("/api/audit/verify").await;
    assert_eq!(verify["data"]["intact"], true, "{verify}");
}

/// Approvers racing on one pending incident: the chain decides — exactly one grant releases
/// it and runs once (one claim, one execution); every other attempt is refused (409: not
/// pending any more, or granted after another grant released it), and the chain stays intact.
#[tokio::test]
async fn racing_approvals_release_one_execution() {
    let s = Scratch::new();
    let srv = Server::start(config(&s, true)).await;
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &scenario("incident_high.json")).await;
    assert_eq!(st, 200, "{v}");
    let hash = v["data"]["binding_hash"].as_str().unwrap().to_string();
    let body = format!(r#"{{"binding_hash": "{hash}", "reason": "race"}}"#);
    let path = "/api/incidents/inc-live-001/approve";
    let calls = (0..8).map(|i| srv.post(path, Some(if i % 2 == 0 { BOB } else { ALICE_ADMIN }), &body));
    let answers = futures_join(calls).await;
    let winners: Vec<_> = answers.iter().filter(|(st, _)| *st == 200).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    assert_eq!(winners[0].1["data"]["status"], "executed", "{answers:?}");
    for (st, v) in answers.iter().filter(|(st, _)| *st != 200) {
        assert_eq!(*st, 409, "{v}");
        let code = v["code"].as_str().unwrap();
        assert!(code == "not_pending" || code == "already_released", "{v}");
    }
    let kinds = |k: &'static str| {
        let srv = &srv;
        async move { srv.get(&format!("/api/audit?kind={k}")).await.1["data"].as_array().unwrap().len() }
    };
    assert_eq!(kinds("execution_claim").await, 1);
    assert_eq!(kinds("remediation_execution").await, 1);
    let grants = kinds("approval_granted").await;
    let refused = kinds("approval_refused").await;
    assert_eq!(grants + refused, 8, "every attempt is recorded");
    let (_, verify) = srv.get("/api/audit/verify").await;
    assert_eq!(verify["data"]["intact"], true, "{verify}");
}

async fn futures_join<F: std::future::Future<Output = (u16, serde_json::Value)>>(
    calls: impl Iterator<Item = F>,
) -> Vec<(u16, serde_json::Value)> {
    let mut set = Vec::new();
    for c in calls {
        set.push(c);
    }
    let mut out = Vec::new();
    // Poll them together on this task.
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = set.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<(u16, serde_json::Value)>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.extend(done.into_iter().flatten());
    out
}

#[tokio::test]
async fn another_action_is_refused_and_gated_again() {
    let s = Scratch::new();
    let srv = authorised_but_not_run(&s).await;
    let (st, v) = srv.post("/api/incidents/inc-live-002/execute", Some(BOB), r#"{"action": "restart_api_pods"}"#).await;
    assert_eq!(st, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["regate"]["requested_action"], "restart_api_pods");
    assert_eq!(d["regate"]["instead_of"], "scale_worker_pool");
    assert!(d["regate"]["refusal_record"].is_string(), "{d}");
    assert_eq!(d["status"], "awaiting_approval");
    assert_eq!(d["proposer"], "bob");
    let (_, a) = srv.get("/api/audit?kind=remediation_execution").await;
    assert_eq!(a["data"], serde_json::json!([]), "nothing ran");
}

/// Proposing and re-gating only read the knowledge base (opened read-only): the file is not
/// written and no journal or WAL appears; resolving (learning) writes it.
#[tokio::test]
async fn proposals_and_regates_leave_the_knowledge_base_untouched_and_resolve_writes_it() {
    let s = Scratch::new();
    let srv = Server::start(config(&s, true)).await;
    let kb = s.path("knowledge.db");
    let state = || (std::fs::read(&kb).unwrap(), std::fs::metadata(&kb).unwrap().modified().unwrap());
    let before = state();
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &scenario("incident_medium.json")).await;
    assert_eq!((st, v["data"]["status"].as_str()), (200, Some("executed")), "{v}");
    let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &scenario("incident_high.json")).await;
    assert_eq!((st, v["data"]["status"].as_str()), (200, Some("awaiting_approval")), "{v}");
    let (st, v) = srv.post("/api/incidents/inc-live-001/execute", Some(BOB), r#"{"action": "restart_api_pods"}"#).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["data"]["regate"].is_object(), "{v}");
    assert!(state() == before, "the knowledge base changed");
    for suffix in ["-journal", "-wal"] {
        assert!(!s.path(&format!("knowledge.db{suffix}")).exists(), "{suffix} appeared");
    }
    let body = r#"{"summary": "Scaled the worker pool; lag recovered in 5 minutes"}"#;
    let (st, v) = srv.post("/api/incidents/inc-live-002/resolve", Some(BOB), body).await;
    assert_eq!(st, 200, "{v}");
    assert!(state().0 != before.0, "resolve learned nothing into the file");
}

#[tokio::test]
async fn resolve_learns_an_unreviewed_runbook_with_the_token_identity() {
    let s = Scratch::new();
    let srv = Server::start(config(&s, true)).await;
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &scenario("incident_medium.json")).await;
    assert_eq!(st, 200, "{v}");
    let path = "/api/incidents/inc-live-002/resolve";
    let body = r#"{"summary": "Scaled the worker pool; lag recovered in 5 minutes"}"#;
    assert_eq!(srv.post(path, None, body).await.0, 401);
    assert_eq!(srv.post(path, Some(DEPLOYER), body).await.0, 403);
    let (st, v) = srv.post(path, Some(BOB), r#"{"summary": "x", "by": "mallory"}"#).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = srv.post(path, Some(BOB), r#"{"summary": "   "}"#).await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("summary"), "{v}");
    assert_eq!(srv.post("/api/incidents/no-such/resolve", Some(BOB), body).await.0, 404);
    let (st, v) = srv.post(path, Some(BOB), body).await;
    assert_eq!(st, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["status"], "resolved");
    assert_eq!(d["resolved_by"], "bob");
    assert_eq!(d["runbook"]["reviewed"], false);
    assert_eq!(d["runbook"]["recommended_action"], "scale_worker_pool");
    assert_eq!(d["runbook"]["provenance"]["learned"]["learned_by"], "bob");
    assert_eq!(d["runbook"]["provenance"]["learned"]["audit_record"], d["audit"]["id"]);
    let id = d["runbook"]["id"].as_str().unwrap().to_string();
    // In the knowledge base, unreviewed (the planner ignores it until a person reviews it).
    let kb = guardrail_knowledge::SqliteKnowledgeStore::open(&s.path("knowledge.db")).unwrap();
    let rb = kb.runbook(&id).unwrap().expect("learned runbook stored");
    assert!(!rb.reviewed);
    let (_, a) = srv.get("/api/audit?kind=incident_resolved").await;
    assert_eq!(a["data"][0]["by"], "bob");
    let (_, v) = srv.get("/api/incidents/inc-live-002").await;
    assert_eq!(v["data"]["status"], "resolved");
    // Nothing executed and no action named: nothing to learn.
    let (st, _) = srv.post("/api/incidents", Some(ALICE_ADMIN), &scenario("incident_high.json")).await;
    assert_eq!(st, 200);
    let (st, v) = srv.post("/api/incidents/inc-live-001/resolve", Some(BOB), body).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("nothing_to_learn")), "{v}");
    assert_no_paths(&s, "resolve", &v.to_string());
}

#[tokio::test]
async fn proposals_use_the_servers_logs_and_deploy_signals_never_request_paths() {
    let s = Scratch::new();
    let mut cfg = config(&s, true);
    cfg.governor.logs = Some(guardrail_governor::NdjsonLogs::from_text("served-logs", ""));
    cfg.governor.deploy_signals = true;
    let srv = Server::start(cfg).await;
    // A body naming a logs file is refused (an unknown field, nothing recorded): the logs are
    // the server's.
    let mut with_path: serde_json::Value = serde_json::from_str(&scenario("incident_medium.json")).unwrap();
    with_path["logs"] = "/etc/passwd".into();
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &with_path.to_string()).await;
    assert_eq!(st, 400, "{v}");
    assert!(!v.to_string().contains("/etc/passwd"), "{v}");
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &scenario("incident_medium.json")).await;
    assert_eq!(st, 200, "{v}");
    let (_, a) = srv.get("/api/audit?kind=remediation_decision").await;
    let d = &a["data"][0];
    assert_eq!(d["logs"], "ndjson:served-logs", "{d}");
    assert!(d["deploy_signals"]["signals"].is_object(), "{d}");
    assert_no_paths(&s, "decision record", &a.to_string());
}

#[tokio::test]
async fn a_gate_decision_whose_mirror_copy_fails_is_withheld_and_named_as_recorded() {
    let s = Scratch::new();
    let mut cfg = config(&s, false);
    let mirror = s.path("mirror");
    std::fs::write(&mirror, "not a directory").unwrap();
    cfg.audit_jsonl = Some(mirror);
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["status"], "recorded_mirror_failed", "{v}");
    let id = v["audit"]["id"].as_str().unwrap();
    assert!(v["error"].as_str().unwrap().contains(&format!("IS recorded in the audit chain as record {id}")), "{v}");
    assert_no_paths(&s, "gate", &v.to_string());
    let (_, verify) = srv.get("/api/audit/verify").await;
    assert_eq!(verify["data"]["records"], 1, "the decision is in the chain");
}

async fn records(srv: &Server) -> u64 {
    let (_, verify) = srv.get("/api/audit/verify").await;
    verify["data"]["records"].as_u64().unwrap()
}

#[tokio::test]
async fn approving_an_unknown_incident_is_a_404_that_records_nothing() {
    let s = Scratch::new();
    let srv = Server::start(config(&s, true)).await;
    let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &scenario("incident_high.json")).await;
    assert_eq!(st, 200, "{v}");
    let before = records(&srv).await;
    for path in ["/api/incidents/inc-live-0001/approve", "/api/incidents/inc-live-0001/force-override"] {
        let (st, v) = srv.post(path, Some(BOB), r#"{"binding_hash": "2b2d51dee91a", "reason": "typo"}"#).await;
        assert_eq!(st, 404, "{v}");
        assert!(v["error"].as_str().unwrap().contains("nothing was recorded"), "{v}");
    }
    assert_eq!(records(&srv).await, before, "a mistyped id leaves no refusal in the chain");
}

#[tokio::test]
async fn the_governor_config_is_reloaded_when_it_changes_and_a_broken_one_refuses_governor_actions() {
    let s = Scratch::new();
    let mut cfg = config(&s, true);
    // Served before the config exists, as in the README's tour (which copies it in later).
    let path = s.path("governor.yaml");
    cfg.governor.config = Default::default();
    cfg.governor.description = serde_json::json!({"path": null, "sha256": null});
    cfg.governor.source = Some(guardrail_server::state::GovernorSource { path: path.clone(), required: false });
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &scenario("incident_high.json")).await;
    assert_eq!(st, 200, "{v}");
    let hash = v["data"]["binding_hash"].as_str().unwrap().to_string();
    let body = format!(r#"{{"binding_hash": "{hash}", "reason": "DBA agrees"}}"#);
    let approve = "/api/incidents/inc-live-001/approve";
    // No config yet: nobody may approve (a recorded refusal).
    let (st, v) = srv.post(approve, Some(BOB), &body).await;
    assert_eq!(st, 409, "{v}");
    // The config appears: the next approval is decided on it, without a restart.
    std::fs::copy(governor_dir().join("governor.yaml"), &path).unwrap();
    let (st, v) = srv.post(approve, Some(BOB), &body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["grant"]["approver"], "bob");
    let (_, audit) = srv.get("/api/audit?kind=approval_granted").await;
    assert!(audit.to_string().contains("governor.yaml"), "the grant names the config in force: {audit}");
    // A config that no longer parses: governor actions are refused naming the file (not its
    // directory) and nothing is recorded; the last good config is not used for them.
    std::fs::write(&path, "approvals:\n  high: {aprovers: [mallory]}\n").unwrap();
    let before = records(&srv).await;
    let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &scenario("incident_medium.json")).await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["code"], "governor_config_invalid", "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("governor.yaml") && !msg.contains(&s.root().display().to_string()), "{msg}");
    let (st, v) = srv.post("/api/incidents/inc-live-001/execute", Some(BOB), "{}").await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(records(&srv).await, before, "nothing recorded while the config is broken");
    // The deploy gate carries on.
    let (st, _) = srv.get("/api/decision").await;
    assert_ne!(st, 503);
    // Fixed: decided again.
    std::fs::copy(governor_dir().join("governor.yaml"), &path).unwrap();
    let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &scenario("incident_medium.json")).await;
    assert_eq!(st, 200, "{v}");
}

/// The request bodies are refused exactly where their schemas say (400, nothing recorded):
/// an unknown field (as `POST /api/gate` refuses one), a missing field, a blank id, a hash that
/// is not hex, a blank action; and the 409 of `execute` on a blocked action says
/// `awaiting_approval` (its documented status), not `refused`.
#[tokio::test]
async fn governor_requests_are_refused_where_their_schemas_say() {
    let s = Scratch::new();
    let srv = Server::start(config(&s, true)).await;
    let incident: serde_json::Value = serde_json::from_str(&scenario("incident_high.json")).unwrap();
    let with = |k: &str, v: serde_json::Value| {
        let mut i = incident.clone();
        i[k] = v;
        i.to_string()
    };
    let without = |k: &str| {
        let mut i = incident.clone();
        i.as_object_mut().unwrap().remove(k);
        i.to_string()
    };
    for (body, what) in [
        (with("notes", "recorded?".into()), "unknown field"),
        (without("symptoms"), "missing field"),
        (with("id", "   ".into()), "id"),
        (with("severity", "High".into()), "severity"),
        (with("service", "*".into()), "service"),
    ] {
        let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &body).await;
        assert_eq!(st, 400, "{what}: {v}");
    }
    assert_eq!(records(&srv).await, 0, "nothing refused is recorded");

    let (st, v) = srv.post("/api/incidents", Some(ALICE_ADMIN), &scenario("incident_high.json")).await;
    assert_eq!(st, 200, "{v}");
    let before = records(&srv).await;
    let approve = "/api/incidents/inc-live-001/approve";
    for body in [r#"{"binding_hash": "not-hex-at-all!"}"#, r#"{"binding_hash": "abc"}"#, r#"{"binding_hash": ""}"#] {
        let (st, v) = srv.post(approve, Some(BOB), body).await;
        assert_eq!(st, 400, "{body}: {v}");
    }
    let execute = "/api/incidents/inc-live-001/execute";
    // A blank action, one without a word (the plan contract's rule, checked before anything is
    // recorded), an unknown field.
    for body in [r#"{"action": "  "}"#, r#"{"action": "^-^ \udbaf\uddfe"}"#, r#"{"action": "x", "extra": 1}"#] {
        let (st, v) = srv.post(execute, Some(BOB), body).await;
        assert_eq!(st, 400, "{body}: {v}");
    }
    let resolve = "/api/incidents/inc-live-001/resolve";
    for body in [r#"{"summary": " "}"#, r#"{"summary": "ok", "action": "--"}"#, r#"{}"#] {
        let (st, v) = srv.post(resolve, Some(BOB), body).await;
        assert_eq!(st, 400, "{body}: {v}");
    }
    assert_eq!(records(&srv).await, before, "nothing refused is recorded");

    let (st, v) = srv.post(execute, Some(BOB), "{}").await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(
        (v["code"].as_str(), v["status"].as_str()),
        (Some("awaiting_approval"), Some("awaiting_approval")),
        "{v}"
    );
    assert!(v["request_record"].is_string(), "{v}");
    assert_eq!(v["ok"], false);
}

/// The incident fold is read by one call at a time for all the calls waiting (group reads), and
/// each call still sees every record committed before it began: threads each append a record,
/// then find it folded, at a seq no lower than its own.
#[test]
fn concurrent_fold_reads_each_see_what_was_committed_before_them() {
    use guardrail_core::audit::RecordDraft;
    use guardrail_store::AuditStore as _;
    let s = Scratch::new();
    let state = guardrail_server::AppState::new(s.config());
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (state, barrier) = (&state, barrier.clone());
            scope.spawn(move || {
                let mut store = state.share_store().expect("the store is shared").handle();
                barrier.wait();
                for n in 0..25 {
                    let id = format!("fold-{t}-{n}");
                    let body = serde_json::json!({"incident_id": id, "decision_record": "none"});
                    let draft = RecordDraft {
                        kind: "approval_request".into(),
                        recorded_at: "2026-12-06T10:00:00Z".into(),
                        body,
                    };
                    let rec = store.append(draft).unwrap();
                    let (seen, at) = state.with_incident_states_at(|all, at| (all.contains_key(&id), at)).unwrap();
                    assert!(seen, "{id} (seq {}) is folded", rec.seq);
                    assert!(at.is_some_and(|at| at >= rec.seq), "{at:?} >= {}", rec.seq);
                }
            });
        }
    });
    let all = state.incident_states().unwrap();
    assert_eq!(all.keys().filter(|k| k.starts_with("fold-")).count(), 200);
}
