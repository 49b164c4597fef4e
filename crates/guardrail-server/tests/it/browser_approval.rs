//! An approval performed in a real browser: headless Chromium, driven over the DevTools
//! protocol ([`crate::cdp`]), opens the dashboard, enters an
//! approver token, opens the pending incident and clicks Approve; the grant is then checked
//! through the API and a screenshot is kept in `target/guardrail-server-screenshots/`.
//!
//! Needs `chromium`; without it the test says so and passes, unless
//! `GUARDRAIL_REQUIRE_BROWSER=1`.

use crate::cdp::{Page, chromium};
use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{DEPLOYER, Scratch, Server};
use guardrail_knowledge::KnowledgeStore as _;
use guardrail_server::{GovernorSettings, Role, Tokens, hash_token};
use serde_json::{Value, json};

const BOB: &str = "bob-approver-token-0123456789";

const FLOW: &str = r##"(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (what, f) => {
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) { const v = f(); if (v) return v; await sleep(50); }
    throw new Error("timed out after 60 s waiting for " + what);
  };
  const details = await until("the incidents table", () => document.querySelector("#incidents button"));
  document.getElementById("token").value = "TOKEN";
  details.click();
  const approve = await until("the approve button", () => document.getElementById("approve"));
  document.getElementById("approve-reason").value = "reviewed in the browser";
  approve.click();
  const shown = await until("the result", () => {
    const e = document.getElementById("approve-result");
    return e && e.textContent.length > 0 ? e.textContent : null;
  });
  // The governor's records reach the audit table over the live events.
  await until("the execution in the audit table", () => document.querySelector('#audit tr[data-kind="remediation_execution"]'));
  const audit = {};
  for (const tr of document.querySelectorAll("#audit tr[data-kind]")) {
    audit[tr.dataset.kind] = Array.from(tr.children).slice(3).map((td) => td.textContent);
  }
  const label = document.getElementById("incident-awaiting");
  const page = {
    shown,
    label: label ? label.textContent : null,
    heading: document.querySelector("#incident-detail h3").textContent,
    buttons_disabled: Array.from(document.querySelectorAll("#incident-detail button")).every((b) => b.disabled),
    audit,
  };
  document.getElementById("incidents-card").scrollIntoView();
  return JSON.stringify(page);
})()"##;

fn drive(browser: &Path, url: &str, out: &Path, flow: &str) -> String {
    let mut page = Page::open(browser, url, 1400, 1800);
    let r = page.eval(flow);
    let result = r.as_str().map(str::to_string).unwrap_or_else(|| format!("{r}"));
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(out, page.screenshot()).unwrap();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_approves_a_pending_incident_from_the_dashboard() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("GUARDRAIL_REQUIRE_BROWSER").is_err(),
            "chromium is not installed (apt-get install chromium)"
        );
        eprintln!("browser test skipped: chromium is not installed (scripts/test installs it)");
        return;
    };
    let s = Scratch::new();
    let gov = common::examples().join("../governor");
    let mut cfg = s.config();
    cfg.tokens = Some(Tokens::from_hashes(&[
        (&hash_token(DEPLOYER), "ci-pipeline", Role::Deployer),
        (&hash_token(BOB), "bob", Role::Approver),
    ]));
    let src = guardrail_config::read_source(&gov.join("governor.yaml")).unwrap();
    let kb = s.path("knowledge.db");
    let mut store = guardrail_knowledge::SqliteKnowledgeStore::create(&kb).unwrap();
    store.load_sample_data(&gov.join("sample_data.json")).unwrap();
    cfg.governor = GovernorSettings {
        config: guardrail_config::load_governor_config(&src).unwrap().value,
        description: json!({"path": "governor.yaml", "sha256": src.sha256}),
        kb: Some(kb),
        ..Default::default()
    };
    let srv = Server::start(cfg).await;
    let incident = std::fs::read_to_string(gov.join("scenarios/incident_high.json")).unwrap();
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &incident).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["status"], "awaiting_approval");

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guardrail-server-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("dashboard-approval.png");
    let (b, u, o) = (browser.clone(), srv.url("/"), out.clone());
    let page = tokio::task::spawn_blocking(move || drive(&b, &u, &o, &FLOW.replace("TOKEN", BOB))).await.unwrap();
    let page: Value = serde_json::from_str(&page).unwrap_or_else(|e| panic!("{e}: the page gave {page}"));
    let shown = page["shown"].as_str().unwrap_or_default();
    assert!(shown.contains("approve by bob") && shown.contains("executed"), "the page showed: {page}");
    // No stale "Awaiting approve" once the action has run.
    assert_eq!(page["label"], "No longer awaiting approval: executed", "{page}");
    assert_eq!(page["heading"], "inc-live-001 — executed", "{page}");
    assert_eq!(page["buttons_disabled"], true, "{page}");
    // The audit table's Action / Rule / Requested-by cells for the governor's records: the
    // gated action, not "—".
    let audit = &page["audit"];
    let decision = audit["remediation_decision"].as_array().unwrap_or_else(|| panic!("{page}"));
    assert!(decision[0].as_str().unwrap().ends_with("→ block_and_escalate"), "{page}");
    assert!(!decision[0].as_str().unwrap().starts_with('—'), "{page}");
    assert_ne!(decision[1], "—", "the rule that decided: {page}");
    assert_eq!(decision[2], "ci-pipeline", "{page}");
    let gated = decision[0].as_str().unwrap().split(" →").next().unwrap().to_string();
    assert_eq!(audit["approval_request"][0], gated.as_str(), "{page}");
    assert!(audit["approval_request"][1].as_str().unwrap().starts_with("needs "), "{page}");
    assert_eq!(audit["approval_granted"][0], gated.as_str(), "{page}");
    assert_eq!(audit["approval_granted"][1], "approved: reviewed in the browser", "{page}");
    assert_eq!(audit["approval_granted"][2], "bob", "{page}");
    assert_eq!(audit["remediation_execution"][0], format!("{gated} (ok)"), "{page}");
    for (kind, cells) in audit.as_object().unwrap() {
        assert!(cells.as_array().unwrap().iter().any(|c| c != "—"), "{kind}: {page}");
    }
    assert!(std::fs::metadata(&out).unwrap().len() > 10_000, "screenshot too small");

    let (_, v) = srv.get("/api/incidents/inc-live-001").await;
    assert_eq!(v["data"]["status"], "executed", "{v}");
    let (_, audit) = srv.get("/api/audit?kind=approval_granted").await;
    assert_eq!(audit["data"][0]["approver"], "bob");
    assert_eq!(audit["data"][0]["reason"], "reviewed in the browser");
}

/// The SLO card over a Sloth file without Guardrail's latency extension (a live Prometheus):
/// latency says "not read" and why, the health badge is unknown — no "null ms" — and the
/// bundled policies' latency rule makes the gate unable to decide (fail closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slo_card_says_latency_is_not_read_for_a_spec_without_a_latency_source() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("GUARDRAIL_REQUIRE_BROWSER").is_err(),
            "chromium is not installed (apt-get install chromium)"
        );
        eprintln!("browser test skipped: chromium is not installed (scripts/test installs it)");
        return;
    };
    let prom = tokio::task::spawn_blocking(|| {
        guardrail_prometheus::fixture::LocalPrometheus::shared()
            .unwrap_or_else(|e| panic!("the local Prometheus could not be started: {e}"))
    })
    .await
    .unwrap();
    let s = Scratch::new();
    s.write(
        "config/slos.yaml",
        "version: prometheus/v1\nservice: healthy\nslos:\n  - name: availability\n    objective: 99.9\n    sli:\n      events:\n        error_query: sum(rate(http_requests_total{service=\"healthy\",code=\"500\"}[{{.window}}]))\n        total_query: sum(rate(http_requests_total{service=\"healthy\"}[{{.window}}]))\n",
    );
    let cost = std::fs::read_to_string(s.path("data/cost.json")).unwrap().replace("checkout-api", "healthy");
    s.write("data/cost.json", &cost);
    let mut cfg = s.config();
    cfg.inputs.now = Some(prom.end.to_string());
    cfg.inputs.prometheus = Some(prom.url.clone());
    // The queries answer in milliseconds, but on a loaded CI machine a spec's default five
    // seconds can pass, and a timed-out query is "no data": another page.
    cfg.inputs.prometheus_timeout_ms = Some("60000".into());
    let srv = Server::start(cfg).await;
    let flow = r##"(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    const p95 = document.getElementById("slo-p95").textContent;
    if (p95 && p95 !== "—") break;
    await sleep(50);
  }
  return JSON.stringify({
    p95: document.getElementById("slo-p95").textContent,
    p99: document.getElementById("slo-p99").textContent,
    health: document.getElementById("slo-health").textContent,
    avail: document.getElementById("slo-avail").textContent,
    banner: document.getElementById("banner").textContent,
  });
})()"##;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guardrail-server-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let (b, u, o) = (browser.clone(), srv.url("/"), dir.join("dashboard-slo-spec.png"));
    let page = tokio::task::spawn_blocking(move || drive(&b, &u, &o, flow)).await.unwrap();
    let page: Value = serde_json::from_str(&page).unwrap_or_else(|e| panic!("{e}: the page gave {page}"));
    assert!(page["p95"].as_str().unwrap().starts_with("not read: the SLO spec names no latency source"), "{page}");
    assert_eq!(page["p99"], "not read", "{page}");
    assert_eq!(page["health"], "Unknown (latency not read)", "{page}");
    assert_eq!(page["avail"], "99.9583 % (target 99.9 %)", "{page}");
    // The bundled policies reach their latency rule for this healthy service: no decision.
    let banner = page["banner"].as_str().unwrap();
    assert!(banner.contains("NO DECISION"), "{page}");
    assert!(banner.contains("rule P007 needs signal latency_compliant, which is unavailable"), "{page}");
    assert!(!page.to_string().contains("null"), "{page}");
}

/// A `claim_release` row of the audit table (a record as `guardrail incident release-claim`
/// appends it): the action, the released claim and the reason, and who released it, as
/// `guardrail audit list` shows them; the reason is text, never markup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_table_shows_a_claim_release_as_audit_list_does() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("GUARDRAIL_REQUIRE_BROWSER").is_err(),
            "chromium is not installed (apt-get install chromium)"
        );
        eprintln!("browser test skipped: chromium is not installed (scripts/test installs it)");
        return;
    };
    let s = Scratch::new();
    let reason = "executor died <img src=x onerror=\"window.__injected = 1\">";
    let body = json!({
        "incident_id": "inc-1", "claim": "7-abcdef012345#0", "claim_record": "7-abcdef012345",
        "authorised_by_record": "5-0123456789ab", "action": "throttle",
        "claimed_by": {"identity": "bob", "via": "cli"}, "severity": "high",
        "released_by": "carol", "reason": reason, "eligible": ["carol"],
    });
    let mut store = guardrail_store::open_store(&s.store()).unwrap();
    let draft = guardrail_core::audit::RecordDraft {
        kind: "claim_release".into(),
        recorded_at: "2026-11-24T10:00:00Z".into(),
        body,
    };
    store.append(draft).unwrap();
    drop(store);
    let srv = Server::start(s.config()).await;
    let flow = r##"(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const deadline = Date.now() + 60000;
  let tr = null;
  while (Date.now() < deadline && !tr) {
    tr = document.querySelector('#audit tr[data-kind="claim_release"]');
    await sleep(50);
  }
  return JSON.stringify({
    cells: tr ? Array.from(tr.children).slice(3).map((td) => td.textContent) : null,
    markup: document.querySelectorAll("#audit img").length,
    injected: window.__injected === 1,
  });
})()"##;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guardrail-server-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let (b, u, o) = (browser.clone(), srv.url("/"), dir.join("dashboard-claim-release.png"));
    let page = tokio::task::spawn_blocking(move || drive(&b, &u, &o, flow)).await.unwrap();
    let page: Value = serde_json::from_str(&page).unwrap_or_else(|e| panic!("{e}: the page gave {page}"));
    assert_eq!(page["cells"], json!(["throttle", format!("released 7-abcdef012345#0: {reason}"), "carol"]), "{page}");
    assert_eq!((page["markup"].as_u64(), page["injected"].as_bool()), (Some(0), Some(false)), "{page}");
}
