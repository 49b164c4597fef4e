//! HTTP tests through a real socket: a server on an ephemeral loopback port, a reqwest client.

use crate::common;

use common::{ADMIN, APPROVER, DEPLOYER, Scratch, Server};
use serde_json::Value;

fn assert_no_paths(scratch: &Scratch, what: &str, body: &str) {
    let root = scratch.root().display().to_string();
    assert!(!body.contains(&root), "{what} leaks the scratch path {root}: {body}");
    if let Ok(c) = std::fs::canonicalize(scratch.root()) {
        assert!(!body.contains(&c.display().to_string()), "{what} leaks {}: {body}", c.display());
    }
    assert!(!body.contains("/tmp/"), "{what} leaks a /tmp path: {body}");
}

#[tokio::test]
async fn compatibility_endpoints_answer_with_the_original_shapes() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;

    let (st, d) = srv.get("/api/decision").await;
    assert_eq!(st, 200);
    assert_eq!(d["ok"], true);
    let data = &d["data"];
    assert_eq!(data["action"], "DELAY");
    assert_eq!(data["policy_id"], "P005");
    assert_eq!(data["policy_name"], "Moderate error budget consumed");
    assert_eq!(data["delay_minutes"], 15);
    assert_eq!(data["reason"], "Less than 30% error budget remaining");
    let evaluated = data["evaluated_policies"].as_array().unwrap();
    assert_eq!(evaluated.len(), 8);
    let matched: Vec<&str> =
        evaluated.iter().filter(|p| p["matched"] == true).map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(matched, ["P005", "P008"]);
    assert_eq!(data["slo"]["error_budget_pct"], 18.98);
    assert_eq!(data["cost"]["wow_change_pct"], -0.63);
    // The seed's decision keys are all there.
    for k in [
        "action",
        "cost",
        "delay_minutes",
        "evaluated_policies",
        "policy_id",
        "policy_name",
        "reason",
        "remediation",
        "slo",
    ] {
        assert!(data.get(k).is_some(), "decision lacks {k}");
    }
    // Input paths are shown as file names only.
    assert_eq!(data["inputs"]["policies"]["path"], "policies.yaml");

    let (st, slo) = srv.get("/api/slo").await;
    assert_eq!(st, 200);
    assert_eq!(slo, serde_json::json!({"ok": true, "data": data["slo"]}));
    assert_eq!(slo["data"]["availability_pct"], 99.918981);
    assert_eq!(slo["data"]["burn_rate"], "low");

    let (st, cost) = srv.get("/api/cost").await;
    assert_eq!(st, 200);
    assert_eq!(cost["data"]["budget_usd"], 1500.0);
    assert!(cost["data"]["daily_costs"].as_array().is_some_and(|d| d.len() >= 14), "daily_costs for the chart");

    let (st, ex) = srv.get("/api/explain").await;
    assert_eq!(st, 200);
    let text = ex["data"]["text"].as_str().unwrap();
    assert!(text.contains("DELAY"), "{text}");
    assert!(text.contains("policies.yaml"), "{text}");

    let (st, all) = srv.get("/api/all").await;
    assert_eq!(st, 200);
    let keys: Vec<&String> = all["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["cost", "decision", "explanation", "slo"]);
    assert_eq!(all["data"]["decision"], *data);
    assert_eq!(all["data"]["explanation"], text);

    let (st, audit) = srv.get("/api/audit").await;
    assert_eq!(st, 200);
    assert_eq!(audit, serde_json::json!({"ok": true, "data": []}));

    for p in ["/api/decision", "/api/slo", "/api/cost", "/api/explain", "/api/all"] {
        let (_, body) = srv.get_text(p).await;
        assert_no_paths(&s, p, &body);
    }
    // GET /api/decision records nothing.
    let (_, verify) = srv.get("/api/audit/verify").await;
    assert_eq!(verify["data"]["records"], 0);
}

#[tokio::test]
async fn write_endpoints_refuse_missing_wrong_and_underprivileged_tokens() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    for path in ["/api/gate", "/api/simulate"] {
        let r =
            srv.client.post(srv.url(path)).header("content-type", "application/json").body("{}").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path} without a token");
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"guardrail\"");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["ok"], false);
        assert!(v["error"].as_str().unwrap().contains("Bearer"), "{v}");

        let (st, v) = srv.post(path, Some("not-a-token"), "{}").await;
        assert_eq!(st, 401, "{path} with a wrong token");
        assert_eq!(v["error"], "the token is not valid");

        let r = srv
            .client
            .post(srv.url(path))
            .header("content-type", "application/json")
            .header("authorization", format!("Basic {DEPLOYER}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path} with a non-bearer scheme");

        let (st, v) = srv.post(path, Some(APPROVER), "{}").await;
        assert_eq!(st, 403, "{path} with an approver token");
        assert!(v["error"].as_str().unwrap().contains("approver"), "{v}");
    }
    // Nothing was recorded by any refused request.
    let (_, verify) = srv.get("/api/audit/verify").await;
    assert_eq!(verify["data"]["records"], 0);
}

#[tokio::test]
async fn without_a_tokens_file_every_write_is_refused() {
    let s = Scratch::new();
    let mut cfg = s.config();
    cfg.tokens = None;
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!(st, 401);
    assert!(v["error"].as_str().unwrap().contains("--tokens"), "{v}");
}

#[tokio::test]
async fn post_bodies_are_strict() {
    let s = Scratch::new();
    let mut cfg = s.config();
    cfg.max_body_bytes = 1024;
    let srv = Server::start(cfg).await;
    for path in ["/api/gate", "/api/simulate"] {
        // No content type, then a form post (what a cross-site form can send).
        let r = srv.client.post(srv.url(path)).bearer_auth(DEPLOYER).body("{}").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 415, "{path} without Content-Type");
        let r = srv
            .client
            .post(srv.url(path))
            .bearer_auth(DEPLOYER)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("ci=1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 415, "{path} as a form");
        let r = srv
            .client
            .post(srv.url(path))
            .bearer_auth(DEPLOYER)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 415, "{path} as text/plain");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["ok"], false);

        let big = format!("{{\"ci\": {{\"branch\": \"{}\"}}}}", "x".repeat(4096));
        let (st, v) = srv.post(path, Some(DEPLOYER), &big).await;
        assert_eq!(st, 413, "{path} with a large body");
        assert_eq!(v["error"], "the body is larger than 1024 bytes");

        let (st, v) = srv.post(path, Some(DEPLOYER), "{not json").await;
        assert_eq!(st, 400, "{path} with invalid JSON");
        assert!(v["error"].as_str().unwrap().starts_with("invalid request body"), "{v}");
        let (st, _) = srv.post(path, Some(DEPLOYER), "").await;
        assert_eq!(st, 400, "{path} with an empty body");
        let (st, v) = srv.post(path, Some(DEPLOYER), r#"{"surprise": 1}"#).await;
        assert_eq!(st, 400, "{path} with an unknown field");
        assert!(v["error"].as_str().unwrap().contains("unknown field `surprise`"), "{v}");
        let (st, _) = srv.post(path, Some(DEPLOYER), "[]").await;
        assert_eq!(st, 400, "{path} with an array");
    }
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), r#"{"ci": {"branch": "main", "approver": "me"}}"#).await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("unknown field `approver`"), "{v}");
    let (st, _) = srv.post("/api/gate", Some(DEPLOYER), r#"{"fail_on_warn": "yes"}"#).await;
    assert_eq!(st, 400);
    let (_, verify) = srv.get("/api/audit/verify").await;
    assert_eq!(verify["data"]["records"], 0, "no bad request was recorded");
}

#[tokio::test]
async fn gate_decides_and_records_like_the_cli() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    let body = r#"{"ci": {"provider": "github-actions", "repository": "acme/shop", "branch": "main",
        "commit": "abc123", "actor": "octocat", "service": "checkout-api"}, "fail_on_warn": false}"#;
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), body).await;
    assert_eq!(st, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["action"], "DELAY");
    assert_eq!(d["policy_id"], "P005");
    assert_eq!(d["exit_code"], 1);
    assert_eq!(d["retry_after"], "2026-02-21T00:15:00Z");
    assert_eq!(d["ci"]["repository"], "acme/shop");
    assert_eq!(d["requested_by"]["identity"], "ci-pipeline");
    assert_eq!(d["audit"]["seq"], 1);
    assert_eq!(d["audit"]["store"], "sqlite");
    assert_no_paths(&s, "gate", &v.to_string());

    // The record in the store is the CLI's: the output, the inputs' full text, plus who asked.
    let mut store = guardrail_store::open_store(&s.store()).unwrap();
    let rec = store.get(1).unwrap().unwrap();
    assert_eq!(rec.kind, "deploy_decision");
    assert_eq!(rec.body["action"], "DELAY");
    assert_eq!(rec.body["outcome"], "decided");
    assert_eq!(rec.body["ci"]["commit"], "abc123");
    assert_eq!(rec.body["requested_by"]["identity"], "ci-pipeline");
    assert_eq!(rec.body["requested_by"]["role"], "deployer");
    let policies = std::fs::read_to_string(s.path("config/policies.yaml")).unwrap();
    assert_eq!(rec.body["input_content"]["policies"], policies);
    assert_eq!(d["audit"]["hash"], rec.hash);
    drop(store);

    // An admin may deploy too; the record names the admin.
    let (st, v) = srv.post("/api/gate", Some(ADMIN), "{}").await;
    assert_eq!(st, 200);
    assert_eq!(v["data"]["audit"]["seq"], 2);
    assert_eq!(v["data"]["ci"]["provider"], "http");

    let (st, a) = srv.get("/api/audit").await;
    assert_eq!(st, 200);
    let recs = a["data"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["seq"], 2, "newest first");
    assert_eq!(recs[0]["requested_by"]["identity"], "root");
    assert_eq!(recs[1]["action"], "DELAY");
    assert_eq!(recs[1]["kind"], "deploy_decision");
    assert!(recs[1]["timestamp"].as_str().is_some());
    assert!(recs[1].get("input_content").is_none(), "the list leaves the inputs' text out");
    assert_eq!(recs[1]["inputs"]["metrics"]["path"], "metrics.json");
    let (_, text) = srv.get_text("/api/audit").await;
    assert_no_paths(&s, "audit", &text);
    let (st, one) = srv.get("/api/audit?limit=1").await;
    assert_eq!(st, 200);
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    let (st, _) = srv.get("/api/audit?limit=0").await;
    assert_eq!(st, 400);
    let (st, _) = srv.get("/api/audit?limit=lots").await;
    assert_eq!(st, 400);
    let (st, _) = srv.get("/api/audit?sort=asc").await;
    assert_eq!(st, 400);

    let (st, vr) = srv.get("/api/audit/verify").await;
    assert_eq!(st, 200);
    assert_eq!(vr["data"]["intact"], true);
    assert_eq!(vr["data"]["records"], 2);
    assert_eq!(vr["data"]["head"], recs[0]["hash"]);

    let (st, m) = srv.get_text("/metrics").await;
    assert_eq!(st, 200);
    assert!(m.contains("guardrail_decisions_total{endpoint=\"gate\",action=\"DELAY\",rule=\"P005\"} 2"), "{m}");
    assert!(m.contains("guardrail_audit_write_failures_total 0"), "{m}");
}

/// `POST /api/gate`'s `ci` is `guardrail_gate::ci::CiContext` itself: every field of it is
/// accepted and recorded as sent (a struct literal without `..`, so a new field does not
/// compile here until it is sent too), blanks are dropped, and nothing else is accepted.
#[tokio::test]
async fn gate_accepts_every_ci_context_field_and_records_it() {
    use guardrail_gate::ci::CiContext;
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    let full = CiContext {
        provider: "gitlab-ci".into(),
        service: Some("checkout-api".into()),
        repository: Some("acme/shop".into()),
        branch: Some("release/1".into()),
        commit: Some("def456".into()),
        actor: Some("bob".into()),
        pipeline_url: Some("https://gitlab.example/acme/shop/-/pipelines/7".into()),
    };
    let sent = serde_json::to_value(&full).unwrap();
    assert_eq!(sent.as_object().unwrap().len(), CiContext::field_names().len());
    let body = serde_json::json!({"ci": sent}).to_string();
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), &body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["ci"], sent, "the answer echoes every field");
    let mut store = guardrail_store::open_store(&s.store()).unwrap();
    let rec = store.get(1).unwrap().unwrap();
    assert_eq!(rec.body["ci"], sent, "the record holds every field");
    let back: CiContext = serde_json::from_value(rec.body["ci"].clone()).unwrap();
    assert_eq!(back, full);

    // Blanks are absent, the provider defaults to http, an unknown or mistyped field is refused.
    let (st, v) =
        srv.post("/api/gate", Some(DEPLOYER), r#"{"ci": {"provider": "", "branch": " ", "commit": null}}"#).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["ci"]["provider"], "http");
    assert!(v["data"]["ci"]["branch"].is_null() && v["data"]["ci"]["commit"].is_null(), "{v}");
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), r#"{"ci": {"branch": 3}}"#).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), r#"{"ci": {"requested_by": "mallory"}}"#).await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("unknown field `requested_by`"), "{v}");
}

/// The shipped freeze policies with one freeze that is always in force (a daily 24 h window
/// from 2026-01-01 UTC), so it covers both the fixed `--now` and the wall clock.
fn always_frozen_policies() -> String {
    let shipped = std::fs::read_to_string(common::examples().join("config/policies-with-freezes.yaml")).unwrap();
    let from = shipped.find("freezes:").unwrap();
    let to = shipped.find("maintenance:").unwrap();
    let always = "freezes:\n  - name: always\n    timezone: UTC\n    rrule: FREQ=DAILY\n    dtstart: 2026-01-01T00:00:00\n    duration: 24h\n";
    format!("{}{always}{}", &shipped[..from], &shipped[to..])
}

/// A policy file whose freeze is in force: `GET /api/decision` and `POST /api/gate` say
/// `in_freeze` and name the window, the freeze rule wins although the budget rules that decide
/// without a freeze also match, and the record holds the same.
#[tokio::test]
async fn an_active_freeze_blocks_and_its_rule_wins_over_the_other_matches() {
    let s = Scratch::new();
    s.write("config/policies.yaml", &always_frozen_policies());
    for now in [Some("2026-02-21T00:00:00Z"), None] {
        let mut cfg = s.config();
        cfg.inputs.now = now.map(str::to_string);
        let srv = Server::start(cfg).await;
        let (st, v) = srv.get("/api/decision").await;
        assert_eq!(st, 200, "{now:?}: {v}");
        let d = &v["data"];
        assert_eq!((d["action"].as_str(), d["policy_id"].as_str()), (Some("BLOCK"), Some("F002")), "{now:?}: {d}");
        assert_eq!(d["reason"], "A change freeze is in force");
        assert_eq!(d["signals"]["in_freeze"], true, "{d}");
        assert_eq!(d["signals"]["freeze_name"], "always", "{d}");
        assert_eq!(d["freeze"]["active"][0]["name"], "always", "{d}");
        assert_eq!(d["conditions"][0]["signal"], "in_freeze", "{d}");
        // P005 (DELAY without the freeze) matches too, but the freeze rule comes first.
        let matched: Vec<&str> = d["evaluated_policies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["matched"] == true)
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(matched.first(), Some(&"F002"), "{matched:?}");
        assert!(matched.contains(&"P005"), "{matched:?}");
        assert!(!matched.contains(&"F001"), "checkout-api is not on the emergency list: {matched:?}");
        let (_, ex) = srv.get("/api/explain").await;
        assert!(ex["data"]["text"].as_str().unwrap().contains("BLOCK"), "{ex}");

        let (st, g) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
        assert_eq!(st, 200, "{g}");
        assert_eq!((g["data"]["action"].as_str(), g["data"]["policy_id"].as_str()), (Some("BLOCK"), Some("F002")));
        assert_eq!(g["data"]["exit_code"], 2);
        assert_eq!(g["data"]["signals"]["in_freeze"], true);
        let seq = g["data"]["audit"]["seq"].as_i64().unwrap();
        let mut store = guardrail_store::open_store(&s.store()).unwrap();
        let rec = store.get(seq).unwrap().unwrap();
        assert_eq!(rec.body["policy_id"], "F002");
        assert_eq!(rec.body["signals"]["in_freeze"], true);
        assert_eq!(rec.body["signals"]["freeze_name"], "always");
    }
}

#[tokio::test]
async fn a_tampered_chain_is_reported_broken() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    assert_eq!(srv.post("/api/gate", Some(DEPLOYER), "{}").await.0, 200);
    assert_eq!(srv.post("/api/gate", Some(DEPLOYER), "{}").await.0, 200);
    let db = rusqlite::Connection::open(s.store()).unwrap();
    db.execute("UPDATE audit_records SET body = replace(body, 'DELAY', 'ALLOW') WHERE seq = 1", []).unwrap();
    drop(db);
    let (st, v) = srv.get("/api/audit/verify").await;
    assert_eq!(st, 200);
    assert_eq!(v["data"]["intact"], false, "{v}");
    assert_eq!(v["data"]["breaks"][0]["seq"], 1, "{v}");
}

#[tokio::test]
async fn simulate_evaluates_what_if_signals_and_records_a_simulation() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    let (st, v) = srv.post("/api/simulate", Some(DEPLOYER), "{}").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["action"], "DELAY");
    assert_eq!(v["data"]["simulated"], true);
    assert!(v["data"]["explanation"].as_str().unwrap().contains("DELAY"));
    for k in [
        "action",
        "cost",
        "delay_minutes",
        "evaluated_policies",
        "explanation",
        "policy_id",
        "policy_name",
        "reason",
        "remediation",
        "slo",
    ] {
        assert!(v["data"].get(k).is_some(), "simulate lacks the original's {k}");
    }

    let (st, v) = srv
        .post("/api/simulate", Some(DEPLOYER), r#"{"signals": {"error_budget_pct": 5, "burn_rate": "critical"}}"#)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["action"], "BLOCK");
    assert_eq!(v["data"]["policy_id"], "P001");
    assert_eq!(v["data"]["signals"]["error_budget_pct"], 5.0);
    assert_eq!(v["data"]["simulated_signals"]["burn_rate"], "critical");

    for (body, needle) in [
        (r#"{"signals": {"nope": 1}}"#, "unknown signal"),
        (r#"{"signals": {"error_budget_pct": "low"}}"#, "expected a number"),
        (r#"{"signals": {"error_budget_pct": 250}}"#, "outside"),
        (r#"{"signals": {"burn_rate": "extreme"}}"#, "expected one of low, medium, high, critical"),
        (r#"{"signals": {"latency_compliant": 1}}"#, "true or false"),
    ] {
        let (st, v) = srv.post("/api/simulate", Some(DEPLOYER), body).await;
        assert_eq!(st, 400, "{body}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{body}: {v}");
    }

    // The what-if decides through the gate's own rule: no data never lets a deploy through.
    let (st, v) =
        srv.post("/api/simulate", Some(DEPLOYER), r#"{"signals": {"error_budget_pct": 90, "no_data": true}}"#).await;
    assert_eq!(st, 422, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("could not decide with these signals"), "{v}");

    // Two simulations on the chain, as simulations; the deploy decision is unchanged.
    let mut store = guardrail_store::open_store(&s.store()).unwrap();
    let recs = store.all().unwrap();
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r.kind == "deploy_simulation"));
    assert_eq!(recs[1].body["simulated_signals"]["error_budget_pct"], 5.0);
    assert_eq!(srv.get("/api/decision").await.1["data"]["action"], "DELAY");
}

/// Reads the event stream until both `kinds` have been seen with `needle` somewhere, or fails
/// after the deadline.
async fn read_events_until(events: &mut reqwest::Response, kinds: &[&str], needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    let mut seen = String::new();
    while !(kinds.iter().all(|k| seen.contains(&format!("event: {k}"))) && seen.contains(needle)) {
        let chunk = tokio::time::timeout_at(deadline, events.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {kinds:?} event with {needle} before the deadline: {seen}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the event stream ended: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

#[tokio::test]
async fn inputs_are_reloaded_on_change_and_an_invalid_set_never_allows() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    assert_eq!(srv.state.snapshot().version, 1);
    let mut events = srv.client.get(srv.url("/api/events")).send().await.unwrap();
    assert_eq!(events.status().as_u16(), 200);
    assert!(events.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let hello = read_events_until(&mut events, &["hello"], "\"action\":\"DELAY\"").await;
    assert!(hello.contains("event: hello"), "{hello}");

    // Healthy metrics → ALLOW.
    let allow = std::fs::read_to_string(common::examples().join("scenarios/allow/metrics.json")).unwrap();
    s.write("data/metrics.json", &allow);
    srv.wait_for("/api/decision", 200, |v| v["data"]["action"] == "ALLOW").await;
    assert!(srv.state.snapshot().version >= 2);
    let seen = read_events_until(&mut events, &["inputs", "decision"], "\"action\":\"ALLOW\"").await;
    assert!(seen.contains("event: inputs") && seen.contains("\"action\":\"ALLOW\""), "{seen}");

    // A broken file: ok:false with the file named (not its path), never ALLOW.
    s.write("data/metrics.json", "{ bad");
    let v =
        srv.wait_for("/api/decision", 503, |v| v["error"].as_str().is_some_and(|e| e.contains("metrics.json"))).await;
    assert_eq!(v["ok"], false);
    assert!(v.get("data").is_none());
    let (_, text) = srv.get_text("/api/decision").await;
    assert_no_paths(&s, "decision with broken metrics", &text);
    for p in ["/api/slo", "/api/explain", "/api/all", "/readyz"] {
        let (st, v) = srv.get(p).await;
        assert_eq!(st, 503, "{p}");
        assert_eq!(v["ok"], false, "{p}");
    }
    // The cost block does not depend on the metrics.
    assert_eq!(srv.get("/api/cost").await.0, 200);

    // POST /api/gate: no decision, and the could-not-decide is recorded like the CLI does.
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["ok"], false);
    assert!(v.get("data").is_none());
    assert!(v["error"].as_str().unwrap().starts_with("could not decide"), "{v}");
    assert_eq!(v["audit"]["seq"], 1);
    assert_no_paths(&s, "gate with broken metrics", &v.to_string());
    let mut store = guardrail_store::open_store(&s.store()).unwrap();
    assert_eq!(store.get(1).unwrap().unwrap().kind, "deploy_error");
    let (_, m) = srv.get_text("/metrics").await;
    assert!(m.contains("guardrail_undecided_total{endpoint=\"gate\"} 1"), "{m}");
    assert!(m.contains("guardrail_inputs_valid 0"), "{m}");

    // A missing policy file (two changes, which a refresh may see one at a time: wait for the
    // second, not for a version number).
    s.write("data/metrics.json", &allow);
    std::fs::remove_file(s.path("config/policies.yaml")).unwrap();
    srv.wait_for("/api/decision", 503, |v| v["error"].as_str().is_some_and(|e| e.contains("policies.yaml"))).await;
    let (_, text) = srv.get_text("/api/decision").await;
    assert_no_paths(&s, "decision without policies", &text);
}

/// A file rewritten in place with the same size and its modification time put back (what a
/// coarse file-time clock shows for a second write within one tick) is still re-read.
#[tokio::test]
async fn a_same_size_rewrite_that_keeps_the_modification_time_is_seen() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    assert_eq!(srv.get("/api/decision").await.1["data"]["action"], "DELAY");
    let policies = std::fs::read_to_string(s.path("config/policies.yaml")).unwrap();
    // P005 delays by 15 minutes; 45 keeps the length.
    assert!(policies.contains("delay_minutes: 15"), "the example policy delays by 15 minutes");
    let changed = policies.replacen("delay_minutes: 15", "delay_minutes: 45", 1);
    s.rewrite_keeping_mtime("config/policies.yaml", &changed);
    let v = srv.wait_for("/api/decision", 200, |v| v["data"]["delay_minutes"] == 45).await;
    assert_eq!(v["data"]["policy_id"], "P005");
    assert_eq!(srv.state.snapshot().version, 2, "one change, one new version");

    // And again once the file has been quiet for the racy window (its stamp is trusted on its
    // own again): back to 15, same size, same modification time; the change time shows it.
    tokio::time::sleep(guardrail_server::RACY_WINDOW + std::time::Duration::from_secs(1)).await;
    assert_eq!(srv.state.snapshot().version, 2, "an unchanged file makes no new version");
    s.rewrite_keeping_mtime("config/policies.yaml", &policies);
    srv.wait_for("/api/decision", 200, |v| v["data"]["delay_minutes"] == 15).await;
    assert_eq!(srv.state.snapshot().version, 3);
}

#[tokio::test]
async fn a_could_not_decide_in_the_chain_with_a_failed_mirror_copy_names_its_record() {
    let s = Scratch::new();
    s.write("data/metrics.json", "{ bad");
    std::fs::write(s.path("mirror"), "not a directory").unwrap();
    let mut cfg = s.config();
    cfg.audit_jsonl = Some(s.path("mirror"));
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!(st, 503, "{v}");
    let mut store = guardrail_store::open_store(&s.store()).unwrap();
    let rec = store.get(1).unwrap().unwrap();
    assert_eq!(rec.kind, "deploy_error");
    assert_eq!(
        (v["audit"]["id"].as_str(), &v["status"]),
        (Some(rec.id().as_str()), &serde_json::json!("recorded_mirror_failed"))
    );
    assert!(v.to_string().contains(&format!("IS recorded in the audit chain as record {}", rec.id())), "{v}");
    assert!(!v.to_string().contains("could not record this error"), "{v}");
    assert_no_paths(&s, "gate error with a failed mirror", &v.to_string());
}

#[tokio::test]
async fn a_decision_that_cannot_be_recorded_is_withheld() {
    let s = Scratch::new();
    let mut cfg = s.config();
    // A store under a regular file can never be created.
    std::fs::write(s.path("not-a-dir"), "x").unwrap();
    cfg.store = s.path("not-a-dir/audit.db").display().to_string();
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["ok"], false);
    assert!(v.get("data").is_none(), "no decision without a record: {v}");
    assert_eq!(v["error"], "the decision could not be recorded in the audit trail, so it is withheld");
    assert!(!v.to_string().contains("DELAY"), "the action is withheld: {v}");
    let (_, m) = srv.get_text("/metrics").await;
    assert!(m.contains("guardrail_audit_write_failures_total 1"), "{m}");
    assert!(!m.contains("guardrail_decisions_total{"), "{m}");
    let (st, v) = srv.get("/readyz").await;
    assert_eq!(st, 503);
    assert_eq!(v["errors"], serde_json::json!(["audit store: unavailable"]));
    let (st, v) = srv.get("/api/audit").await;
    assert_eq!(st, 503);
    assert_no_paths(&s, "audit with a broken store", &v.to_string());
    let (st, _) = srv.get("/api/audit/verify").await;
    assert_eq!(st, 503);
}

#[tokio::test]
async fn operational_endpoints() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    assert_eq!(srv.get("/healthz").await, (200, serde_json::json!({"ok": true, "data": {"status": "alive"}})));
    let (st, r) = srv.get("/readyz").await;
    assert_eq!(st, 200);
    assert_eq!(r["data"]["inputs"]["valid"], true);
    assert_eq!(r["data"]["store"], "reachable");

    let r = srv.client.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let m = r.text().await.unwrap();
    for name in [
        "# TYPE guardrail_decisions_total counter",
        "# TYPE guardrail_evaluation_duration_seconds histogram",
        "guardrail_evaluation_duration_seconds_bucket{le=\"+Inf\"}",
        "# TYPE guardrail_audit_write_failures_total counter",
        "guardrail_inputs_valid 1",
    ] {
        assert!(m.contains(name), "metrics lack {name}: {m}");
    }
    // Every sample line is `name{labels} value` with a numeric value.
    for line in m.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line}");
    }

    let (st, v) = srv.get("/nope").await;
    assert_eq!(st, 404);
    assert_eq!(v["ok"], false);
    let r = srv.client.delete(srv.url("/api/decision")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ok"], false);
    let (st, _) = srv.get("/api/simulate").await;
    assert_eq!(st, 405);
    let r = srv.client.get(srv.url("/api/decision")).send().await.unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["content-type"], "application/json");
}
#[tokio::test]
async fn dashboard_is_served_from_the_binary() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    let r = srv.client.get(srv.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("<script src=\"/assets/dashboard.js\""), "{html}");
    let (st, js) = srv.get_text("/assets/dashboard.js").await;
    assert_eq!(st, 200);
    assert!(js.contains("/api/events"), "live updates over SSE");
    assert!(!js.contains("innerHTML"), "all text goes in with textContent");
    assert!(!js.contains("eval("));
}

#[tokio::test]
async fn concurrent_gate_requests_each_get_one_record_on_an_intact_chain() {
    let s = Scratch::new();
    let srv = std::sync::Arc::new(Server::start(s.config()).await);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let srv = srv.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!("{{\"ci\": {{\"commit\": \"c{i}\"}}}}");
            srv.post("/api/gate", Some(DEPLOYER), &body).await
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        let (st, v) = t.await.unwrap();
        assert_eq!(st, 200, "{v}");
        seqs.push(v["data"]["audit"]["seq"].as_i64().unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=24).collect::<Vec<i64>>());
    let (_, v) = srv.get("/api/audit/verify").await;
    assert_eq!(v["data"]["intact"], true);
    assert_eq!(v["data"]["records"], 24);
}

#[tokio::test]
async fn shutdown_ends_open_event_streams() {
    let s = Scratch::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = guardrail_server::AppState::new(s.config());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(guardrail_server::serve(listener, state, async {
        let _ = rx.await;
    }));
    let mut events = reqwest::get(format!("http://{addr}/api/events")).await.unwrap();
    assert!(events.chunk().await.unwrap().is_some(), "hello");
    tx.send(()).unwrap();
    let done = tokio::time::timeout(common::DEADLINE, server).await;
    assert!(done.is_ok(), "the server did not stop while an event stream was open");
}

#[tokio::test]
async fn a_steady_decision_sends_no_events_even_as_the_clock_moves() {
    let s = Scratch::new();
    let mut cfg = s.config();
    cfg.inputs.now = None; // the wall clock: retry_after moves at every re-evaluation
    let srv = Server::start(cfg).await;
    let mut rx = srv.state.subscribe();
    let first = srv.get("/api/decision").await.1;
    assert_eq!(first["data"]["action"], "DELAY");
    // Wait for re-evaluations by counting them (each builds a new snapshot), not by sleeping:
    // on a loaded machine a fixed sleep may cover none. The first seconds also cover the files'
    // racy window, where they are re-read and hashed at every refresh.
    let mut built = vec![srv.state.snapshot().built_at];
    let state = srv.state.clone();
    common::wait_until("8 re-evaluations", || {
        let b = state.snapshot().built_at;
        if built.last() != Some(&b) {
            built.push(b);
        }
        let n = built.len();
        async move { n > 8 }
    })
    .await;
    assert!(
        matches!(rx.try_recv(), Err(tokio::sync::broadcast::error::TryRecvError::Empty)),
        "no event without a change"
    );
    assert_eq!(srv.state.snapshot().version, 1, "the inputs did not change");
    let later = srv.get("/api/decision").await.1;
    assert_ne!(first["data"]["evaluated_at"], later["data"]["evaluated_at"], "re-evaluated with the clock");
}

fn raw_get(addr: std::net::SocketAddr, host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(common::DEADLINE)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn on_loopback_only_loopback_host_names_are_answered() {
    let s = Scratch::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = s.config();
    cfg.allowed_hosts = Some(guardrail_server::loopback_hosts(addr.port()));
    let state = guardrail_server::AppState::new(cfg);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(guardrail_server::serve(listener, state, async {
        let _ = rx.await;
    }));
    let port = addr.port();
    let ok = tokio::task::spawn_blocking(move || {
        (
            raw_get(addr, &format!("127.0.0.1:{port}"), "/api/decision"),
            raw_get(addr, &format!("localhost:{port}"), "/healthz"),
            raw_get(addr, &format!("evil.example:{port}"), "/api/audit"),
            raw_get(addr, "127.0.0.1", "/api/decision"),
        )
    })
    .await
    .unwrap();
    assert!(ok.0.starts_with("HTTP/1.1 200"), "{}", ok.0);
    assert!(ok.1.starts_with("HTTP/1.1 200"), "{}", ok.1);
    // A rebound DNS name (or a wrong port) gets nothing but a refusal.
    assert!(ok.2.starts_with("HTTP/1.1 421"), "{}", ok.2);
    assert!(ok.2.contains("\"ok\":false") && !ok.2.contains("evil.example"), "{}", ok.2);
    assert!(ok.3.starts_with("HTTP/1.1 421"), "{}", ok.3);
    let _ = tx.send(());
}

/// `serve --checkpoint-key/--checkpoint-dir`: the writer signs at start, after every N new
/// records and after M minutes of growth, atomically into the directory, and never signs a
/// chain that does not verify.
#[test]
fn checkpoint_writer_signs_the_chain_every_n_records_and_refuses_a_broken_one() {
    use guardrail_server::checkpoints::{CheckpointOptions, CheckpointWriter};
    use guardrail_store::checkpoint::compare_store;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let out = dir.path().join("checkpoints");
    let spec = db.display().to_string();
    let mut store = guardrail_store::SqliteStore::open(&db).unwrap();
    let mut append = |n: i64| {
        for i in 0..n {
            let body = serde_json::json!({"n": i});
            let d = guardrail_core::audit::RecordDraft {
                kind: "test".into(),
                recorded_at: "2026-12-06T10:00:00Z".into(),
                body,
            };
            guardrail_store::AuditStore::append(&mut store, d).unwrap();
        }
    };
    let wait_for = |p: &std::path::Path| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !p.exists() {
            assert!(Instant::now() < deadline, "{} was not written", p.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let key = guardrail_checkpoint::SigningKey::from_seed("example.com/audit", [5; 32]).unwrap();
    let vkey = key.verifier();
    let opts = CheckpointOptions {
        key: key.clone(),
        dir: out.clone(),
        every_records: 3,
        every: Duration::from_secs(3600),
        poll: Duration::from_millis(10),
    };

    append(2);
    let writer = CheckpointWriter::spawn(spec.clone(), opts.clone()).unwrap();
    wait_for(&out.join("checkpoint-2.txt"));
    append(2);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!out.join("checkpoint-4.txt").exists(), "only 2 new records: not due yet");
    append(1);
    wait_for(&out.join("checkpoint-5.txt"));
    // `latest` is renamed into place just after the numbered file.
    let five = std::fs::read_to_string(out.join("checkpoint-5.txt")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(out.join("latest")).unwrap() != five {
        assert!(Instant::now() < deadline, "latest is not checkpoint 5");
        std::thread::sleep(Duration::from_millis(10));
    }
    let latest = five;
    let cp = guardrail_checkpoint::Checkpoint::open(&latest, &vkey).unwrap();
    assert_eq!((cp.origin.as_str(), cp.size), ("example.com/audit", 5));
    let mut check = guardrail_store::SqliteStore::open(&db).unwrap();
    assert!(compare_store(&mut check, &cp).unwrap().ok());
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "no temporary file left: {names:?}");
    writer.stop();

    // Time-based: one new record and `every` elapsed.
    let timed = CheckpointWriter::spawn(
        spec.clone(),
        CheckpointOptions { every_records: 1000, every: Duration::from_millis(100), ..opts.clone() },
    )
    .unwrap();
    append(1);
    wait_for(&out.join("checkpoint-6.txt"));
    timed.stop();

    // A record edited in place: the chain no longer verifies, so nothing more is signed.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE audit_records SET body = '{\"n\":99}' WHERE seq = 2", [])
        .unwrap();
    append(3);
    let refusing = CheckpointWriter::spawn(spec, opts).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    refusing.stop();
    assert!(!out.join("checkpoint-9.txt").exists(), "a broken chain must not be signed");
    assert_eq!(
        std::fs::read_to_string(out.join("latest")).unwrap(),
        std::fs::read_to_string(out.join("checkpoint-6.txt")).unwrap()
    );
}
