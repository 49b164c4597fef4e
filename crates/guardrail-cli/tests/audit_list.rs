//! `guardrail audit list` as text: every governor record kind shows what it is about (the
//! action and verdict or result), its rule or outcome, and who acted — not `-` — on a chain
//! built by the real binary (propose, refused self-approval, grant, claimed execution, a
//! gate-validated execution, resolution, review, a deploy decision and a deploy error).

mod common;

use std::path::{Path, PathBuf};

fn governor() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/governor")
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut c = common::guardrail();
        for k in ["GUARDRAIL_KB", "GUARDRAIL_GOVERNOR_CONFIG", "GUARDRAIL_USER", "USER", "GUARDRAIL_STORE"] {
            c.env_remove(k);
        }
        c.current_dir(self.0.path()).args(args);
        common::run(c)
    }
}

/// The line of `out` for record kind `kind` (the first, i.e. newest).
fn line<'a>(out: &'a str, kind: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(2) == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} line in\n{out}"))
}

#[test]
fn governor_records_show_action_rule_and_who_in_the_text_list() {
    let d = Dir(tempfile::tempdir().unwrap());
    let g = governor();
    let (code, out, err) = d.run(&["kb", "load", g.join("sample_data.json").to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::copy(g.join("governor.yaml"), d.0.path().join(".guardrail/governor.yaml")).unwrap();
    let high = g.join("scenarios/incident_high.json");
    let medium = g.join("scenarios/incident_medium.json");
    let (code, out, err) = d.run(&["incident", "run", high.to_str().unwrap(), "--as", "alice", "--format", "json"]);
    assert_eq!(code, 10, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let hash = v["results"][0]["binding_hash"].as_str().unwrap()[..16].to_string();
    let (code, _, _) = d.run(&["approve", "inc-live-001", "--as", "alice", "--plan-hash", &hash]);
    assert_eq!(code, 11, "self-approval is refused");
    let (code, out, err) =
        d.run(&["approve", "inc-live-001", "--as", "bob", "--plan-hash", &hash, "--reason", "checked"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = d.run(&["incident", "run", medium.to_str().unwrap(), "--as", "alice"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) =
        d.run(&["incident", "resolve", "inc-live-002", "--summary", "scaled the pool", "--as", "bob"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = d.run(&["kb", "review", "learned-inc-live-002-1", "--as", "carol"]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = d.run(&["audit", "list", "--limit", "100"]);
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap();
    for col in ["ID", "RECORDED AT", "KIND", "ACTION", "RULE / OUTCOME", "BY", "SUBJECT"] {
        assert!(header.contains(col), "{header}");
    }
    let gated = v["results"][0]["action"].as_str().unwrap();
    let cells = |kind: &str| line(&out, kind).split_whitespace().skip(3).collect::<Vec<_>>().join(" ");
    // Newest first: the medium incident's decision (validated, executed) is the first found.
    assert_eq!(cells("remediation_decision"), "scale_worker_pool → execute validated alice incident inc-live-002");
    assert_eq!(cells("approval_request"), format!("{gated} needs approve alice incident inc-live-001"));
    assert_eq!(cells("approval_refused"), "refused self_approval alice incident inc-live-001");
    assert_eq!(cells("approval_granted"), format!("{gated} approved: checked bob incident inc-live-001"));
    assert!(cells("execution_claim").starts_with("scale_worker_pool claim "), "{out}");
    assert!(cells("execution_claim").ends_with(" alice incident inc-live-002"), "{out}");
    assert_eq!(cells("remediation_execution"), "scale_worker_pool (ok) executor dry-run alice incident inc-live-002");
    assert_eq!(
        cells("incident_resolved"),
        "scale_worker_pool learned learned-inc-live-002-1 bob incident inc-live-002"
    );
    assert_eq!(
        cells("runbook_reviewed"),
        "scale_worker_pool reviewed learned-inc-live-002-1 carol incident inc-live-002"
    );
    // The older execution is the granted one, run for bob.
    let bob_ran = out
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("remediation_execution"))
        .any(|l| l.contains(&format!("{gated} (ok)")) && l.contains(" bob "));
    assert!(bob_ran, "{out}");
    // Every governor row names its action and who acted.
    for l in out.lines().skip(1) {
        let c: Vec<&str> = l.split_whitespace().collect();
        assert_ne!(c[3], "-", "no action in {l}");
        assert!(!l.contains(" - "), "a '-' cell in {l}");
    }
}

#[test]
fn deploy_records_show_action_rule_and_service_and_an_error_says_so() {
    let s = common::Scratch::new();
    let (code, out, err) = common::run(s.gate(&[]));
    assert_eq!(code, 1, "{out}{err}");
    s.write("data/metrics.json", "{ bad");
    assert_eq!(common::run(s.gate(&[])).0, 3);
    let mut c = common::guardrail();
    c.args(["audit", "list", "--store", &s.store()]);
    let (code, out, err) = common::run(c);
    assert_eq!(code, 0, "{err}");
    let decision = line(&out, "deploy_decision");
    assert!(decision.contains(" DELAY ") && decision.contains(" P005 "), "{out}");
    assert!(decision.trim_end().ends_with("checkout-api"), "{out}");
    let error = line(&out, "deploy_error");
    assert!(error.contains(" NO DECISION ") && error.contains(" could not decide"), "{out}");
}
