//! `guardrail audit list` as text: every governor record kind shows what it is about (the
//! action and verdict or result), its rule or outcome, and who acted — not `-` — on a chain
//! built by the real binary (propose, refused self-approval, grant, claimed execution, a
//! gate-validated execution, resolution, review, a deploy decision and a deploy error).

use crate::common;

use std::path::{Path, PathBuf};

fn governor() -> PathBuf {
    guardrail_test_support::examples("governor")
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut c = common::guardrail();
        for k in ["GUARDRAIL_KB", "GUARDRAIL_GOVERNOR_CONFIG", "GUARDRAIL_USER", "USER", "GUARDRAIL_STORE"] {
            c.env_remove(k);
        }
        // Acting "--as NAME" presents NAME's token from the test tokens file.
        let tokens = common::write_test_tokens(self.0.path());
        c.env("GUARDRAIL_TOKENS", tokens).current_dir(self.0.path()).args(common::as_token(args));
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

/// Runs `guardrail ARGS` in `dir` with standard output a pipe whose reading end is already
/// closed (as `… | head -1` leaves it once head has its line): every write fails with EPIPE,
/// deterministically. Returns (exit code, stderr).
fn run_with_closed_stdout(dir: &Path, args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    // std's Command: assert_cmd's does not hand over a stdout of our own.
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_guardrail"));
    for k in
        ["GUARDRAIL_KB", "GUARDRAIL_GOVERNOR_CONFIG", "GUARDRAIL_STORE", "POLICIES_PATH", "SLO_METRICS", "COST_DATA"]
    {
        c.env_remove(k);
    }
    c.current_dir(dir).args(args).stdout(std::process::Stdio::from(writer));
    let out = c.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_closed_stdout_pipe_ends_every_command_quietly_with_its_own_exit_code() {
    let d = Dir(tempfile::tempdir().unwrap());
    let root = common::examples();
    let root = root.to_str().unwrap();
    let (code, out, err) = d.run(&["gate", "--root", root, "--now", "2026-02-21T00:00:00Z"]);
    assert_eq!(code, 1, "the examples DELAY: {out}{err}");
    let g = governor();
    assert_eq!(d.run(&["kb", "load", g.join("sample_data.json").to_str().unwrap()]).0, 0);
    let policies = root.to_string() + "/config/policies.yaml";
    // (args, the exit code the command has whoever reads its output)
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["audit", "list"], 0),
        (vec!["audit", "list", "--format", "json"], 0),
        (vec!["audit", "verify"], 0),
        (vec!["gate", "--root", root, "--now", "2026-02-21T00:00:00Z"], 1),
        (vec!["gate", "--root", root, "--now", "2026-02-21T00:00:00Z", "--format", "json"], 1),
        (vec!["slo", "--root", root, "--now", "2026-02-21T00:00:00Z"], 0),
        (vec!["cost", "--root", root, "--now", "2026-02-21T00:00:00Z"], 0),
        (vec!["explain", "--root", root, "--now", "2026-02-21T00:00:00Z"], 0),
        (vec!["policy", "lint", &policies], 0),
        (vec!["kb", "search", "database", "--service", "payments-api"], 0),
        (vec!["kb", "stats"], 0),
        (vec!["--help"], 0),
        (vec!["gate", "--help"], 0),
    ];
    for (args, expected) in cases {
        let (code, err) = run_with_closed_stdout(d.0.path(), &args);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert_eq!(code, expected, "{args:?} keeps its own exit code (not 134, not 141): {err}");
    }
}

#[test]
fn serve_keeps_serving_when_its_stderr_is_a_closed_pipe() {
    use std::io::{Read, Write};
    let d = Dir(tempfile::tempdir().unwrap());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .current_dir(d.0.path())
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--root"])
        .arg(common::examples())
        .env_remove("GUARDRAIL_TOKENS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(writer))
        .spawn()
        .unwrap();
    // The server logs on stderr as it starts ("listening on …"): std's eprintln! would panic
    // there. It must answer instead.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let answer = loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("guardrail serve exited ({status}) with its stderr closed");
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(s, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            if !text.is_empty() {
                break text;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no answer from guardrail serve");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(alive, "still serving");
}
