//! A JSONL mirror that cannot be written after the chain append succeeded: every command tells
//! the truth — the record IS in the chain (named by id), only its mirror copy failed — and
//! nothing further happens on the strength of it. Nothing is ever reported as "not recorded"
//! or "not granted" when it is in the chain.

use crate::common;

use std::path::Path;

use common::{Scratch, run};
use serde_json::Value;

fn governor_examples() -> std::path::PathBuf {
    guardrail_test_support::examples("governor")
}

/// A file where the mirror directory should be.
fn blocked_mirror(s: &Scratch) -> String {
    s.write("mirror", "not a directory");
    s.path("mirror").display().to_string()
}

/// A listed record's id (`SEQ-HASH12`).
fn id(r: &Value) -> String {
    format!("{}-{}", r["seq"], &r["hash"].as_str().unwrap()[..12])
}

fn records(dir: &Path, store: &str) -> Vec<Value> {
    let mut c = common::guardrail();
    c.current_dir(dir).args(["audit", "list", "--limit", "100", "--format", "json", "--store", store]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let mut v: Vec<Value> = serde_json::from_str(&out).unwrap();
    v.reverse();
    v
}

#[test]
fn gate_decision_in_the_chain_with_a_failed_mirror_copy_is_withheld_and_named() {
    let s = Scratch::new();
    let mirror = blocked_mirror(&s);
    let (code, out, err) = run(s.gate(&["--audit-jsonl", &mirror]));
    assert_eq!(code, 3, "{out}{err}");
    let recs = records(s.root(), &s.store());
    assert_eq!(recs.len(), 1, "the decision is in the chain");
    let id = id(&recs[0]);
    assert!(err.contains(&format!("IS recorded in the audit chain as record {id}")), "{err}");
    assert!(err.contains("mirror") && err.contains(&mirror), "names the mirror path: {err}");
    assert!(!err.contains("NOT recorded"), "{err}");
    assert!(out.is_empty(), "the decision is withheld: {out}");
}

#[test]
fn gate_error_in_the_chain_with_a_failed_mirror_copy_names_its_record() {
    let s = Scratch::new();
    let mirror = blocked_mirror(&s);
    let missing = s.path("missing.yaml").display().to_string();
    let (code, out, err) = run(s.gate(&["--audit-jsonl", &mirror, "--policies", &missing, "--format", "json"]));
    assert_eq!(code, 3, "{out}{err}");
    let recs = records(s.root(), &s.store());
    assert_eq!((recs.len(), recs[0]["kind"].as_str()), (1, Some("deploy_error")), "the error is in the chain");
    let id = id(&recs[0]);
    assert!(err.contains(&format!("record {id} IS in the audit chain")), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["audit_record"], id.as_str(), "the JSON error names the record: {v}");
}

struct Gov {
    dir: tempfile::TempDir,
}

impl Gov {
    fn new() -> Gov {
        let g = Gov { dir: tempfile::tempdir().unwrap() };
        let (code, out, err) =
            g.run(&["kb", "load", &governor_examples().join("sample_data.json").display().to_string()]);
        assert_eq!(code, 0, "{out}{err}");
        std::fs::copy(governor_examples().join("governor.yaml"), g.dir.path().join(".guardrail/governor.yaml"))
            .unwrap();
        g
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut c = common::guardrail();
        for k in ["GUARDRAIL_KB", "GUARDRAIL_GOVERNOR_CONFIG", "GUARDRAIL_USER", "USER", "GUARDRAIL_STORE"] {
            c.env_remove(k);
        }
        // Acting "--as NAME" presents NAME's token from the test tokens file.
        let tokens = common::write_test_tokens(self.dir.path());
        c.env("GUARDRAIL_TOKENS", tokens).current_dir(self.dir.path()).args(common::as_token(args));
        run(c)
    }

    fn blocked_mirror(&self) -> String {
        let p = self.dir.path().join("mirror");
        std::fs::write(&p, "not a directory").unwrap();
        p.display().to_string()
    }

    fn records(&self) -> Vec<Value> {
        records(self.dir.path(), ".guardrail/guardrail.db")
    }
}

fn scenario(name: &str) -> String {
    governor_examples().join("scenarios").join(name).display().to_string()
}

#[test]
fn incident_run_names_the_recorded_decision_and_runs_nothing() {
    let g = Gov::new();
    let mirror = g.blocked_mirror();
    // The gate validates inc-live-002: with a working mirror it would run.
    let (code, out, err) =
        g.run(&["incident", "run", &scenario("incident_medium.json"), "--as", "dave", "--audit-jsonl", &mirror]);
    assert_eq!(code, 3, "{out}{err}");
    let recs = g.records();
    let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["remediation_decision"], "nothing ran, nothing was claimed");
    let id = id(&recs[0]);
    assert!(err.contains(&format!("IS recorded in the audit chain as record {id}")), "{err}");
    assert!(err.contains("mirror") && err.contains(&mirror) && err.contains("nothing runs"), "{err}");
    assert!(!err.contains("NOT recorded"), "{err}");
}

#[test]
fn approve_says_granted_names_the_grant_and_runs_nothing_yet() {
    let g = Gov::new();
    let (code, out, err) = g.run(&["incident", "run", &scenario("incident_high.json"), "--as", "alice"]);
    assert_eq!(code, 10, "{out}{err}");
    let mirror = g.blocked_mirror();
    let (code, out, err) = g.run(&["approve", "inc-live-001", "--as", "bob", "--audit-jsonl", &mirror]);
    assert_eq!(code, 13, "{out}{err}");
    let recs = g.records();
    let grant = recs.iter().find(|r| r["kind"] == "approval_granted").expect("the grant is in the chain");
    let id = id(grant);
    assert!(err.contains(&format!("IS GRANTED and recorded in the audit chain as record {id}")), "{err}");
    assert!(err.contains(&mirror) && err.contains("nothing runs now"), "{err}");
    assert!(err.contains("guardrail incident execute inc-live-001"), "says how to run it: {err}");
    assert!(!err.contains("NOT recorded") && !err.contains("not granted"), "{err}");
    assert!(recs.iter().all(|r| r["kind"] != "remediation_execution"), "nothing ran");
    // The chain says it is authorised; once the mirror works, it runs exactly once.
    std::fs::remove_file(&mirror).unwrap();
    let (code, out, err) = g.run(&["incident", "execute", "inc-live-001", "--as", "bob", "--audit-jsonl", &mirror]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(g.records().iter().filter(|r| r["kind"] == "remediation_execution").count(), 1);
}

#[test]
fn incident_resolve_and_kb_review_tell_the_truth_about_the_mirror() {
    let g = Gov::new();
    let (code, out, err) = g.run(&["incident", "run", &scenario("incident_medium.json"), "--as", "dave"]);
    assert_eq!(code, 0, "{out}{err}");
    let mirror = g.blocked_mirror();
    // The resolution is in the chain: the runbook is learned, the mirror failure reported.
    let (code, out, err) = g.run(&[
        "incident",
        "resolve",
        "inc-live-002",
        "--summary",
        "scaled the pool",
        "--as",
        "dave",
        "--audit-jsonl",
        &mirror,
    ]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("learned runbook learned-inc-live-002-1"), "{out}");
    let resolved = g.records().into_iter().find(|r| r["kind"] == "incident_resolved").unwrap();
    assert!(err.contains(&format!("IS recorded in the audit chain as record {}", id(&resolved))), "{err}");
    // The review is in the chain: applied, exit 13, never "NOT recorded".
    let (code, out, err) = g.run(&["kb", "review", "learned-inc-live-002-1", "--as", "erin", "--audit-jsonl", &mirror]);
    assert_eq!(code, 13, "{out}{err}");
    assert!(out.contains("reviewed by erin"), "{out}");
    assert!(err.contains("IS recorded in the audit chain") && !err.contains("NOT recorded"), "{err}");
}
