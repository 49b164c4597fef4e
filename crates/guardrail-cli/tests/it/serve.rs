//! `guardrail serve` and `guardrail token hash` as a user runs them.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use common::{Scratch, guardrail, run};

#[test]
fn token_hash_prints_the_sha256_of_stdin() {
    let mut c = guardrail();
    c.args(["token", "hash"]).write_stdin("test\n");
    let (code, out, _) = run(c);
    assert_eq!(code, 0);
    // printf %s test | sha256sum
    assert_eq!(out.trim(), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");

    let mut c = guardrail();
    c.args(["token", "hash", "--identity", "ci", "--role", "deployer"]).write_stdin("test");
    let (code, out, _) = run(c);
    assert_eq!(code, 0);
    assert!(out.contains("sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"), "{out}");
    assert!(out.contains("role: deployer"), "{out}");

    let mut c = guardrail();
    c.args(["token", "hash"]).write_stdin("");
    assert_eq!(run(c).0, 64);
    let mut c = guardrail();
    c.args(["token", "hash", "--identity", "ci", "--role", "boss"]).write_stdin("x");
    assert_eq!(run(c).0, 64);
}

#[test]
fn serve_refuses_bad_arguments_and_bad_token_files() {
    let mut c = guardrail();
    c.args(["serve", "--bind", "not-an-address"]);
    assert_eq!(run(c).0, 64);

    let s = Scratch::new();
    s.write("tokens.yaml", "tokens:\n  - sha256: short\n    identity: ci\n    role: deployer\n");
    let mut c = guardrail();
    c.arg("serve").arg("--root").arg(s.root()).arg("--tokens").arg(s.path("tokens.yaml"));
    c.args(["--bind", "127.0.0.1:0"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("tokens.yaml:2:") && err.contains("64 hex digits"), "{err}");
}

#[test]
fn serve_refuses_an_invalid_governor_config() {
    let s = Scratch::new();
    s.write("governor.yaml", "approvals:\n  high:\n    approverz: [bob]\n");
    let mut c = guardrail();
    c.arg("serve").arg("--root").arg(s.root()).arg("--governor-config").arg(s.path("governor.yaml"));
    c.args(["--bind", "127.0.0.1:0"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("governor config") && err.contains("approverz"), "{err}");
}

#[test]
fn serve_refuses_a_missing_logs_file() {
    // The governor endpoints' logs source is fixed at start; a configured but missing one is an
    // error, never "no errors in the logs".
    let s = Scratch::new();
    let mut c = guardrail();
    c.arg("serve").arg("--root").arg(s.root()).arg("--logs").arg(s.path("no-such.ndjson"));
    c.args(["--bind", "127.0.0.1:0"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--logs") && err.contains("no-such.ndjson"), "{err}");
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    // Generous: CI runs this on two loaded cores.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_answers_on_loopback_with_the_bundled_examples() {
    let s = Scratch::new();
    let bin = assert_cmd::cargo::cargo_bin("guardrail");
    let mut child = StdCommand::new(bin)
        .arg("serve")
        .arg("--root")
        .arg(s.root())
        .arg("--store")
        .arg(s.store())
        .args(["--now", "2026-02-21T00:00:00Z", "--bind", "127.0.0.1:0"])
        .env_remove("GUARDRAIL_TOKENS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let health = http_get(&addr, "/healthz");
    let decision = http_get(&addr, "/api/decision");
    let page = http_get(&addr, "/");
    let _ = child.kill();
    let _ = child.wait();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(decision.starts_with("HTTP/1.1 200"), "{decision}");
    assert!(decision.contains("\"action\":\"DELAY\"") && decision.contains("\"policy_id\":\"P005\""), "{decision}");
    assert!(page.contains("text/html"), "{page}");
}

#[test]
fn serve_writes_signed_checkpoints_to_a_directory() {
    let s = Scratch::new();
    let mut c = guardrail();
    c.args(["audit", "keygen"]).arg(s.path("ck")).args(["--name", "example.com/serve-audit"]);
    assert_eq!(run(c).0, 0);
    let (code, _, err) = run(s.gate(&["--format", "json"]));
    assert_eq!(code, 1, "{err}");

    // Usage: a directory without a key; a key that cannot be read.
    let mut c = guardrail();
    c.arg("serve").arg("--root").arg(s.root()).arg("--checkpoint-dir").arg(s.path("cps"));
    c.args(["--bind", "127.0.0.1:0"]);
    assert_eq!(run(c).0, 64);
    let mut c = guardrail();
    c.arg("serve").arg("--root").arg(s.root()).arg("--checkpoint-dir").arg(s.path("cps"));
    c.arg("--checkpoint-key").arg(s.path("ck.pub")).args(["--bind", "127.0.0.1:0"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--checkpoint-key") && err.contains("ck.pub"), "{err}");

    let bin = assert_cmd::cargo::cargo_bin("guardrail");
    let mut child = StdCommand::new(bin)
        .arg("serve")
        .arg("--root")
        .arg(s.root())
        .arg("--store")
        .arg(s.store())
        .arg("--checkpoint-key")
        .arg(s.path("ck.key"))
        .arg("--checkpoint-dir")
        .arg(s.path("cps"))
        .args(["--now", "2026-02-21T00:00:00Z", "--bind", "127.0.0.1:0"])
        .env_remove("GUARDRAIL_TOKENS")
        .env_remove("GUARDRAIL_CHECKPOINT_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = s.path("cps/checkpoint-1.txt");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !s.path("cps/latest").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.exists(), "serve wrote no checkpoint at start");
    let mut c = guardrail();
    c.args(["audit", "verify", "--checkpoint"]).arg(s.path("cps/latest")).arg("--public-key").arg(s.path("ck.pub"));
    c.arg("--store").arg(s.store());
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("checkpoint example.com/serve-audit (1 record(s)"), "{out}");
}

#[test]
fn serve_logs_the_governor_config_in_force_and_reloads_it_when_it_changes() {
    let s = Scratch::new();
    let gov = s.path("governor.yaml");
    let good = "approvals:\n  high: {approvers: [bob]}\n";
    s.write("governor.yaml", good);
    let sha = |text: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    };
    let bin = assert_cmd::cargo::cargo_bin("guardrail");
    let mut child = StdCommand::new(bin)
        .arg("serve")
        .arg("--root")
        .arg(s.root())
        .arg("--store")
        .arg(s.store())
        .arg("--governor-config")
        .arg(&gov)
        .args(["--bind", "127.0.0.1:0", "--reload-interval-ms", "50"])
        .env_remove("GUARDRAIL_TOKENS")
        .env_remove("GUARDRAIL_GOVERNOR_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Generous: CI runs this on two loaded cores.
    let wait_for = |what: &dyn Fn(&str) -> bool| -> Result<String, String> {
        let mut seen = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if what(&l) => return Ok(l),
                Ok(l) => seen.push_str(&format!("{l}\n")),
                Err(_) => break,
            }
        }
        Err(seen)
    };
    let path = gov.display().to_string();
    let first = wait_for(&|l| l.contains("governor config in force"));
    // A broken config is logged with its error; fixing it logs the config in force again.
    std::fs::write(&gov, "approvals:\n  high: {aprovers: [bob]}\n").unwrap();
    let broken = wait_for(&|l| l.contains("cannot be used"));
    let error = wait_for(&|l| l.contains("aprovers"));
    let fixed = "approvals:\n  high: {approvers: [alice]}\n";
    std::fs::write(&gov, fixed).unwrap();
    let again = wait_for(&|l| l.contains("governor config in force"));
    let _ = child.kill();
    let _ = child.wait();
    let first = first.unwrap_or_else(|e| panic!("no start-up line in:\n{e}"));
    assert!(first.contains(&path) && first.contains(&sha(good)), "{first}");
    let broken = broken.unwrap_or_else(|e| panic!("no broken-config line in:\n{e}"));
    assert!(broken.contains(&path) && broken.contains("refused until it is fixed"), "{broken}");
    error.unwrap_or_else(|e| panic!("the error is not named in:\n{e}"));
    let again = again.unwrap_or_else(|e| panic!("no reload line in:\n{e}"));
    assert!(again.contains(&path) && again.contains(&sha(fixed)), "{again}");
}

/// `serve` takes the tokens file the governor config names (`tokens:`) when neither --tokens nor
/// GUARDRAIL_TOKENS does, as every governor command does: a config that names its tokens
/// serves with them instead of refusing every token.
#[test]
fn serve_takes_the_governor_configs_tokens_file() {
    let s = Scratch::new();
    let tokens = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/governor/tokens.yaml"),
    )
    .unwrap();
    s.write("tokens.yaml", &tokens);
    s.write("governor.yaml", "tokens: tokens.yaml\n");
    let bin = assert_cmd::cargo::cargo_bin("guardrail");
    let mut child = StdCommand::new(bin)
        .arg("serve")
        .arg("--root")
        .arg(s.root())
        .arg("--store")
        .arg(s.store())
        .arg("--governor-config")
        .arg(s.path("governor.yaml"))
        .args(["--now", "2026-02-21T00:00:00Z", "--bind", "127.0.0.1:0"])
        .env_remove("GUARDRAIL_TOKENS")
        .env_remove("GUARDRAIL_GOVERNOR_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let (addr, seen) = common::serve_address(&mut err);
    let known = common::http_post(&addr, "/api/gate", "demo-token-dave", "{}");
    let unknown = common::http_post(&addr, "/api/gate", "not-a-token-of-the-file", "{}");
    let _ = child.kill();
    let _ = child.wait();
    assert!(known.starts_with("HTTP/1.1 200"), "{seen}\n{known}");
    assert!(known.contains("\"policy_id\":\"P005\""), "{known}");
    assert!(unknown.starts_with("HTTP/1.1 401"), "{unknown}");
}
