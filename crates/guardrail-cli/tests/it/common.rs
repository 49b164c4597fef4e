//! Shared helpers for the CLI tests: a scratch copy of the bundled seed data and a command
//! with a clean environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The bundled example data (a copy of the seed tool's shipped files).
pub fn examples() -> PathBuf {
    guardrail_test_support::examples("deploy-gate")
}

/// A scratch directory holding config/ and data/ copied from the examples.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        guardrail_test_support::copy_deploy_gate_inputs(dir.path());
        Scratch { dir }
    }
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }
    /// Replace the first occurrence of `from` with `to` in a file; panics if absent.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }
    pub fn store(&self) -> String {
        self.path("audit.db").display().to_string()
    }
    /// `guardrail gate --root SCRATCH --store SCRATCH/audit.db --now 2026-02-21T00:00:00Z ARGS`
    pub fn gate(&self, args: &[&str]) -> Command {
        let mut c = guardrail();
        c.arg("gate").arg("--root").arg(self.root()).arg("--store").arg(self.store());
        if !args.contains(&"--now") {
            c.args(["--now", "2026-02-21T00:00:00Z"]);
        }
        c.args(args);
        c
    }
}

/// The binary with every variable that changes its behaviour removed.
pub fn guardrail() -> Command {
    let mut c = Command::cargo_bin("guardrail").unwrap();
    for k in [
        "POLICIES_PATH",
        "SLO_CONFIG",
        "SLO_METRICS",
        "COST_DATA",
        "COST_WARN_PCT",
        "COST_BLOCK_PCT",
        "GUARDRAIL_STORE",
        "GUARDRAIL_MAX_AGE",
        "GUARDRAIL_AUDIT_JSONL",
        "GUARDRAIL_PROMETHEUS_URL",
        "GUARDRAIL_PROMETHEUS_TIMEOUT_MS",
        "GUARDRAIL_SERVICE",
        "GUARDRAIL_SLO_NAME",
        "GUARDRAIL_COST_FORMAT",
        "GUARDRAIL_COST_BASELINE_DAYS",
        "GUARDRAIL_COST_TAG",
        "GUARDRAIL_COST_SERVICE",
        "GUARDRAIL_FREEZES",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "SERVICE_NAME",
        "BRANCH_NAME",
        "COMMIT_SHA",
        "NO_COLOR",
        "GUARDRAIL_TOKEN",
        "GUARDRAIL_TOKENS",
        "GUARDRAIL_CHECKPOINT_KEY",
        // A runner's own model, Kibana, Slack or Jira settings must not reach a test's process:
        // they would choose a planner or start a delivery pass the test did not ask for.
        "GUARDRAIL_PLANNER",
        "GUARDRAIL_MODEL",
        "EXPLAINER_BACKEND",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ELASTIC_KIBANA_URL",
        "ELASTIC_API_KEY",
        "ELASTIC_AGENT_ID",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_API_URL",
        "JIRA_URL",
        "JIRA_EMAIL",
        "JIRA_API_TOKEN",
        "JIRA_PROJECT_KEY",
        "GUARDRAIL_GOVERNOR_CONFIG",
        "GUARDRAIL_KB",
        // A runner's audit mirror would receive every test's records.
        "GUARDRAIL_AUDIT_ES",
        "XDG_CACHE_HOME",
    ] {
        c.env_remove(k);
    }
    // The gate's policy cache: this test binary's own directory, never the runner's home, so the
    // tests see cold and warm runs of one cache and leave nothing behind them. A test of the
    // cache sets its own.
    c.env("GUARDRAIL_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/policy-cache"));
    c
}

/// Runs and returns (exit code, stdout, stderr).
pub fn run(mut c: Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `gate --format json` and parses stdout.
pub fn gate_json(s: &Scratch, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(s.gate(&args));
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out}\nstderr: {err}"));
    (code, v)
}

/// Metrics JSON with the given fields replaced (a small builder over the shipped file).
pub fn metrics_with(total: i64, failed: i64, p95: i64, burn: &[f64]) -> String {
    serde_json::json!({
        "service": "checkout-api",
        "window_days": 30,
        "collected_at": "2026-02-20T00:00:00Z",
        "total_requests": total,
        "failed_requests": failed,
        "latency_percentiles": {"p50_ms": 120, "p95_ms": p95, "p99_ms": 890},
        "hourly_burn_rate": burn,
    })
    .to_string()
}

/// Cost JSON with consecutive days from 2026-01-22.
pub fn cost_with(costs: &[f64]) -> String {
    let start = jiff::civil::date(2026, 1, 22);
    let days: Vec<serde_json::Value> = costs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let d = start.checked_add(jiff::Span::new().days(i as i64)).unwrap();
            serde_json::json!({"date": d.to_string(), "cost": c})
        })
        .collect();
    serde_json::json!({"service": "checkout-api", "currency": "USD", "collected_at": "2026-02-20T00:00:00Z", "budget_usd_monthly": 1500, "daily_costs": days}).to_string()
}

/// The people of the governor tests. Each has a token in [`write_test_tokens`]'s file, role
/// `admin` (so every command is open to them and only the governor config's approver lists and
/// the self-approval rule decide), plus `viewer-vic` (viewer), `deployer-dan` (deployer) and
/// `approver-ann` (approver) for the role checks.
pub const TEST_USERS: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "mallory",
    "incident-commander",
    "sre-oncall",
    "op0",
    "op1",
    "op2",
    "op3",
    "op4",
    "op5",
    "op6",
    "op7",
];

/// The token of a test user (a plaintext only tests use).
pub fn test_token(user: &str) -> String {
    format!("test-token-{user}")
}

/// Writes `DIR/tokens.yaml` (hashed, the format of `guardrail serve --tokens`) with a token
/// for every [`TEST_USERS`] entry and the three role-check users; returns its path.
pub fn write_test_tokens(dir: &Path) -> PathBuf {
    let entry = |user: &str, role: &str| {
        use sha2::Digest;
        let hash = hex::encode(sha2::Sha256::digest(test_token(user).as_bytes()));
        format!("  - sha256: {hash}\n    identity: {user}\n    role: {role}\n")
    };
    let mut text = String::from("tokens:\n");
    for u in TEST_USERS {
        text.push_str(&entry(u, "admin"));
    }
    for (u, role) in [("viewer-vic", "viewer"), ("deployer-dan", "deployer"), ("approver-ann", "approver")] {
        text.push_str(&entry(u, role));
    }
    let p = dir.join("tokens.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `args` with every `--as NAME` turned into `--token <NAME's token>`: in the governor tests
/// "acting as NAME" means presenting NAME's token (the identity is the token's).
pub fn as_token(args: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "--as" {
            if let Some(who) = it.next() {
                out.push("--token".to_string());
                out.push(test_token(who));
            }
        } else {
            out.push((*a).to_string());
        }
    }
    out
}

/// `POST` with a bearer token over a fresh connection to a `guardrail serve`; the whole answer.
pub fn http_post(addr: &str, path: &str, token: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    // Generous: CI runs this on two loaded cores.
    s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The `host:port` a starting `guardrail serve` listens on, read from its standard error (the
/// first lines may be about the config in force; the address line says `http://`), and every
/// line read up to it (for a failure's message). Panics if serve stops before it listens.
pub fn serve_address(stderr: &mut impl std::io::BufRead) -> (String, String) {
    let mut seen = String::new();
    let mut line = String::new();
    while !line.contains("http://") {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("serve stopped before listening:\n{seen}");
        }
        seen.push_str(&line);
    }
    let addr = line.split("http://").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "no address in {line:?}");
    (addr, seen)
}
