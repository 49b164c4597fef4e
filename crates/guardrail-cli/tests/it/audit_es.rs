//! The Elasticsearch audit mirror through the binary, against the loopback cluster of
//! guardrail-notify's tests: a gate decision is copied by the inline pass; with the cluster
//! down the gate exits as ever and the copy waits in the outbox (`notify status`) until
//! `notify deliver`; `audit export --to es` rebuilds an emptied index, refuses a broken chain
//! (exit 1, nothing sent), names refused records and fails closed on 401 (exit 3).

use guardrail_test_support::elastic::FakeEs;
use serde_json::Value;

use crate::common::{self, Scratch, run};

const INDEX: &str = "guardrail-audit";

/// `guardrail ARGS` in the scratch directory (no governor config found by default).
fn cmd(s: &Scratch, args: &[&str]) -> assert_cmd::Command {
    let mut c = common::guardrail();
    c.env_remove("GUARDRAIL_AUDIT_ES").current_dir(s.root()).args(args).arg("--store").arg(s.store());
    c
}

fn gate(s: &Scratch, es: &str) -> (i32, String, String) {
    let mut c = s.gate(&["--format", "json"]);
    c.env_remove("GUARDRAIL_AUDIT_ES").current_dir(s.root()).env("GUARDRAIL_AUDIT_ES", es);
    run(c)
}

#[test]
fn a_gate_decision_is_copied_and_an_outage_only_delays_the_copy() {
    let es = FakeEs::start();
    let s = Scratch::new();
    let (code, out, err) = gate(&s, &es.url);
    assert_eq!(code, 1, "DELAY as ever: {err}");
    let id = serde_json::from_str::<Value>(&out).unwrap()["audit"]["id"].as_str().unwrap().to_string();
    let docs = es.docs(INDEX);
    let doc = docs.get(&id).unwrap_or_else(|| panic!("{id} mirrored by the inline pass: {docs:?} {err}"));
    assert_eq!(
        (doc["kind"].as_str(), doc["action"].as_str(), doc["seq"].as_i64()),
        (Some("deploy_decision"), Some("DELAY"), Some(1))
    );
    assert_eq!(doc["body"]["policy_id"], "P005");

    // Down: same exit code, the copy waits.
    let (code, _, err) = gate(&s, "http://127.0.0.1:1");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("notifications: 0 delivered now, 1 pending"), "{err}");
    let (code, out, _) = run(cmd(&s, &["notify", "status", "--format", "json", "--audit-es", &es.url]));
    assert_eq!(code, 0);
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["routed"], serde_json::json!(["elasticsearch"]), "{st}");
    assert_eq!((st["pending"].as_u64(), st["delivered"].as_u64()), (Some(1), Some(1)), "{st}");
    assert_eq!(st["pending_rows"][0]["channel"], "elasticsearch", "{st}");
    assert!(
        st["pending_rows"][0]["last_error"].as_str().unwrap().contains("audit mirror http://127.0.0.1:1 unavailable"),
        "{st}"
    );

    // Back: delivered (made due now: its retry is 30 s away).
    let (code, out, err) = run(cmd(&s, &["notify", "deliver", "--retry-failed", "--audit-es", &es.url]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("delivered 1,"), "{out}");
    assert_eq!(es.docs(INDEX).len(), 2);
}

#[test]
fn export_rebuilds_refuses_a_broken_chain_and_names_what_failed() {
    let es = FakeEs::start();
    let s = Scratch::new();
    for _ in 0..3 {
        // No mirror while recording: the export builds it from nothing.
        let (code, _) = common::gate_json(&s, &[]);
        assert_eq!(code, 1);
    }
    let export = |extra: &[&str]| {
        let mut args = vec!["audit", "export", "--to", "es", "--url", es.url.as_str()];
        args.extend_from_slice(extra);
        run(cmd(&s, &args))
    };
    let (code, out, err) = export(&["--batch", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("exported 3 of 3 record(s) from sqlite:"), "{out}");
    assert!(out.contains(&format!("to {}/{INDEX} in 2 _bulk call(s) (index created)", es.url)), "{out}");
    let first = es.docs(INDEX);
    assert_eq!(first.len(), 3);
    // Again: harmless, the same documents.
    let (code, out, _) = export(&["--format", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["written"].as_u64(), v["created_index"].as_bool()), (Some(3), Some(false)), "{v}");
    assert_eq!(es.docs(INDEX), first);

    // A refused record is named, exit 3.
    let refused = first.keys().nth(1).unwrap().clone();
    es.fail_item(&refused, 400);
    let (code, out, err) = export(&[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains(&format!("not written: record {refused} ({INDEX}): 400 mapper_parsing_exception")), "{out}");
    assert!(err.contains("1 record(s) not written"), "{err}");
    es.heal_items();

    // A cluster that refuses the credentials: exit 3, the key never printed.
    es.require_auth("ApiKey right");
    s.write("governor.yaml", &format!("audit_mirror:\n  url: {}\n  api_key_env: MIRROR_KEY\n", es.url));
    let mut c = cmd(&s, &["audit", "export", "--to", "es", "--governor-config", "governor.yaml"]);
    c.env("MIRROR_KEY", "wr0ng-s3cret");
    let (code, out, err) = run(c);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("(HTTP 401): security_exception") && !format!("{out}{err}").contains("s3cret"), "{err}");
    let mut c = cmd(&s, &["audit", "export", "--to", "es", "--governor-config", "governor.yaml"]);
    c.env("MIRROR_KEY", "right");
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}{err}");

    // Nothing named: a usage error.
    let (code, _, err) = run(cmd(&s, &["audit", "export", "--to", "es"]));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("no cluster"), "{err}");

    // A broken chain: exit 1, not one request.
    let db = rusqlite::Connection::open(s.path("audit.db")).unwrap();
    db.execute("UPDATE audit_records SET body = replace(body, '\"DELAY\"', '\"ALLOW\"') WHERE seq = 2", []).unwrap();
    drop(db);
    let before = es.log().len();
    let (code, out, err) = export(&[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("the chain does not verify") && err.contains("seq 2") && err.contains("nothing exported"),
        "{err}"
    );
    assert_eq!(es.log().len(), before, "nothing sent");
}

#[test]
fn serve_mirrors_what_its_api_records() {
    let es = FakeEs::start();
    let s = Scratch::new();
    // sha256("test")
    s.write(
        "tokens.yaml",
        "tokens:\n  - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n    identity: ci\n    role: deployer\n",
    );
    s.write("governor.yaml", &format!("audit_mirror:\n  url: {}\n  index: audit-served\n", es.url));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("guardrail"))
        .current_dir(s.root())
        .arg("serve")
        .arg("--root")
        .arg(s.root())
        .arg("--store")
        .arg(s.store())
        .args(["--now", "2026-02-21T00:00:00Z", "--bind", "127.0.0.1:0", "--tokens", "tokens.yaml"])
        .args(["--governor-config", "governor.yaml"])
        .env_remove("GUARDRAIL_AUDIT_ES")
        .env_remove("GUARDRAIL_TOKENS")
        .env_remove("GUARDRAIL_GOVERNOR_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let (addr, seen) = common::serve_address(&mut err);
    let answer = common::http_post(&addr, "/api/gate", "test", r#"{"ci": {}}"#);
    // The outbox thread delivers on its tick (every 5 s by default): wait for it, generously.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while es.docs("audit-served").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let docs = es.docs("audit-served");
    assert_eq!(docs.len(), 1, "{docs:?} {seen}");
    let doc = docs.values().next().unwrap();
    assert_eq!((doc["kind"].as_str(), doc["seq"].as_i64()), (Some("deploy_decision"), Some(1)), "{doc}");
}

/// With the original's indices named, a remediation decision is also its `workflow_events`
/// payload and `action_executions` document (the original's fields), every value read from the
/// recorded outcome, under the record's id.
#[test]
fn a_remediation_decision_is_also_the_originals_workflow_event_and_action_document() {
    let es = FakeEs::start();
    let s = Scratch::new();
    std::fs::create_dir_all(s.path(".guardrail")).unwrap();
    let gov = std::fs::read_to_string(common::examples().join("../governor/governor.yaml")).unwrap();
    s.write(
        ".guardrail/governor.yaml",
        &format!(
            "{gov}\naudit_mirror:\n  url: {}\n  workflow_events_index: workflow_events\n  action_executions_index: action_executions\n",
            es.url
        ),
    );
    let sample = common::examples().join("../governor/sample_data.json");
    let mut c = common::guardrail();
    c.env_remove("GUARDRAIL_KB").current_dir(s.root()).args(["kb", "load", sample.to_str().unwrap()]);
    let (code, _, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let incident = common::examples().join("../governor/scenarios/incident_high.json");
    let mut c = cmd(&s, &["incident", "run", incident.to_str().unwrap()]);
    c.env_remove("GUARDRAIL_KB");
    let (code, _, err) = run(c);
    assert_eq!(code, 10, "blocked, awaiting approval, as without the mirror: {err}");

    let events = es.docs("workflow_events");
    assert_eq!(events.len(), 1, "one decision: {events:?} {err}");
    let (id, e) = events.iter().next().unwrap();
    assert_eq!(es.docs(INDEX)[id]["kind"], "remediation_decision");
    // Every value as the recorded outcome has it.
    let body = &es.docs(INDEX)[id]["body"];
    let (gate, stress) = (&body["outcome"]["gate"], &body["outcome"]["stress"]["assessment"]["output"]);
    assert_eq!(
        (e["decision"].as_str(), e["execution_mode"].as_str()),
        (Some("block_and_escalate"), Some("escalate_to_human"))
    );
    assert_eq!((&e["decision"], &e["unsafe_action_rejected"]), (&body["decision"], &body["gated_action"]));
    assert_eq!((&e["service"], &e["severity"]), (&body["incident"]["service"], &body["incident"]["severity"]));
    for k in ["confidence_initial", "confidence_final", "confidence_delta", "reasons"] {
        assert_eq!(e[k], gate["output"][k], "{k}: {e}");
    }
    for k in ["disagreement_detected", "arbiter_resolution", "execution_mode"] {
        assert_eq!(e[k], gate[k], "{k}: {e}");
    }
    assert_eq!(e["integration_quality"], stress["integration_quality"]);
    assert_eq!(e["contradiction_docs_count"], stress["contradiction_count"]);
    assert_eq!(e["fabrication_trap_rejected"], stress["fabricated_authority_rejected"]);
    assert_eq!(e["policy_conflicts_count"].as_u64(), stress["policy_conflicts"].as_array().map(|a| a.len() as u64));
    let mut support: Vec<&str> = stress["claim_evidence"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["support_docs"].as_array().unwrap().iter().filter_map(Value::as_str))
        .collect();
    support.sort_unstable();
    support.dedup();
    assert_eq!(e["support_docs_count"].as_u64(), Some(support.len() as u64), "{e}");
    let a = &es.docs("action_executions")[id];
    assert_eq!(
        (a["action_type"].as_str(), a["incident_id"].as_str()),
        (Some("escalation_ticket"), e["incident_id"].as_str())
    );
    assert_eq!(es.mapping("workflow_events").unwrap()["mappings"]["dynamic"], "strict");
}
