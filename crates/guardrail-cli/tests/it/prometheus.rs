//! `guardrail gate` deciding from a live Prometheus (the fixture's known history: a healthy, a
//! burning, a low-traffic and a silent service). No data, stale data and low traffic never
//! ALLOW: they DELAY through a rule that tests `no_data` / `burn_rate_insufficient_data`, or
//! exit 3 when no rule does. There is no skipping: without Debian's `prometheus` package
//! (`scripts/test` installs it) these tests fail. The `https://` tests use their own loopback
//! HTTPS server behind a CA made at test time (`tls_server`), not the fixture.

use crate::common;
use crate::tls_server;

use common::Scratch;
use guardrail_gate::prometheus::fixture::LocalPrometheus;

fn prom() -> &'static LocalPrometheus {
    LocalPrometheus::shared().unwrap_or_else(|e| panic!("the local Prometheus could not be started: {e}"))
}

const POLICIES: &str = r#"policies:
  - id: P000
    name: SLO data unavailable
    priority: 0
    action: DELAY
    conditions:
      no_data: {operator: eq, value: true}
    reason: The SLO signals could not be read from Prometheus
    remediation: Check Prometheus and the queries, then retry.
    delay_minutes: 15
  - id: P001
    name: Too little traffic to judge the burn rate
    priority: 1
    action: DELAY
    conditions:
      burn_rate_insufficient_data: {operator: eq, value: true}
    reason: Too few events in the burn-rate windows
    remediation: Wait for more traffic or lower prometheus.min_events.
    delay_minutes: 10
  - id: P002
    name: Fast burn
    priority: 2
    action: BLOCK
    conditions:
      burn_rate: {operator: in, value: [critical, high]}
    reason: The error budget is burning fast
    remediation: Stop and fix the errors.
  - id: P003
    name: Budget nearly gone
    priority: 3
    action: BLOCK
    conditions:
      error_budget_pct: {operator: lt, value: 10}
    reason: Error budget exhausted
    remediation: Freeze deployments.
  - id: P999
    name: Healthy
    priority: 99
    action: ALLOW
    conditions: {}
    reason: Signals healthy
    remediation: None
"#;

/// A scratch root whose SLO file reads `service` from Prometheus (URL given by flag).
fn scratch(service: &str, extra: &str) -> Scratch {
    let s = Scratch::new();
    s.write("config/policies.yaml", POLICIES);
    s.write(
        "config/slos.yaml",
        &format!(
            "slos:\n  availability: {{target: 99.9}}\n  latency: {{p95_threshold_ms: 1500, p99_threshold_ms: 2000}}\nprometheus:\n  service: checkout-api\n  error_query: 'sum(increase(http_requests_total{{service=\"{service}\",code=\"500\"}}[{{{{.window}}}}]))'\n  total_query: 'sum(increase(http_requests_total{{service=\"{service}\"}}[{{{{.window}}}}]))'\n  latency:\n    histogram: 'http_request_duration_seconds_bucket{{service=\"{service}\"}}'\n  retries: 0\n{extra}"
        ),
    );
    // The metrics file is not read when the SLO file names a Prometheus source.
    std::fs::remove_file(s.path("data/metrics.json")).unwrap();
    s
}

fn gate(s: &Scratch, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let p = prom();
    let now = p.end.to_string();
    let mut args = vec!["--now", now.as_str(), "--prometheus", p.url.as_str(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = s.gate(&args).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (code, json, stderr)
}

#[test]
fn healthy_service_is_allowed_with_the_values_compared() {
    let s = scratch("healthy", "");
    let (code, j, err) = gate(&s, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(j["action"], "ALLOW");
    assert_eq!(j["policy_id"], "P999");
    assert_eq!(j["slo"]["availability_pct"], 99.958333);
    assert_eq!(j["slo"]["error_budget_pct"], 58.33);
    assert_eq!(j["slo"]["burn_rate"], "low");
    assert_eq!(j["signals"]["no_data"], false);
    assert_eq!(j["signals"]["burn_rate_insufficient_data"], false);
    let tiers = j["slo"]["prometheus"]["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 4);
    assert!(tiers.iter().all(|t| t["state"] == "quiet"));
    // The input recorded is the snapshot of the three queries.
    assert!(j["inputs"]["metrics"]["path"].as_str().unwrap().starts_with("prometheus:http://127.0.0.1:"));
    // Every P002 comparison recorded: the label seen and the threshold.
    let p002 = j["trace"].as_array().unwrap().iter().find(|t| t["id"] == "P002").unwrap();
    assert_eq!(p002["conditions"][0]["actual"], "low");
}

#[test]
fn burning_service_is_blocked() {
    let s = scratch("burning", "");
    let (code, j, err) = gate(&s, &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(j["policy_id"], "P002");
    assert_eq!(j["slo"]["burn_rate"], "critical");
    assert_eq!(j["slo"]["burn_rate_value"], 20.0);
    assert_eq!(j["slo"]["prometheus"]["tiers"][0]["state"], "firing");
    assert_eq!(j["conditions"][0]["actual"], "critical");
}

#[test]
fn low_traffic_is_delayed_by_the_insufficient_data_rule() {
    let s = scratch("low-traffic", "");
    let (code, j, err) = gate(&s, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(j["policy_id"], "P001");
    assert_eq!(j["signals"]["burn_rate_insufficient_data"], true);
    assert!(j["signals"]["burn_rate"].is_null(), "unavailable signals are null");
    assert_eq!(j["slo"]["prometheus"]["insufficient_data"], true);
}

#[test]
fn silent_service_is_delayed_by_the_no_data_rule() {
    let s = scratch("silent", "");
    let (code, j, err) = gate(&s, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(j["action"], "DELAY");
    assert_eq!(j["policy_id"], "P000");
    assert_eq!(j["signals"]["no_data"], true);
    assert!(j["slo"]["availability_pct"].is_null());
    assert!(j["slo"]["error_budget_pct"].is_null());
    assert_eq!(j["slo"]["prometheus"]["no_data"], true);
}

#[test]
fn without_a_no_data_rule_missing_data_cannot_decide() {
    // Silent: P002 needs burn_rate, which is unavailable → exit 3.
    let s = scratch("silent", "");
    s.edit(
        "config/policies.yaml",
        "      no_data: {operator: eq, value: true}",
        "      no_data: {operator: eq, value: false}\n      cost_spike_pct: {operator: gt, value: 1000}",
    );
    let (code, _, err) = gate(&s, &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("rule P001 needs signal burn_rate_insufficient_data, which is unavailable"), "{err}");
    // A policy set that never looks at the SLO signals still may not ALLOW on no data.
    s.write(
        "config/policies.yaml",
        "policies:\n  - id: C1\n    name: Cost spike\n    priority: 1\n    action: BLOCK\n    conditions:\n      cost_spike_pct: {operator: gt, value: 1000}\n    reason: Spend spike\n    remediation: Look at the bill\n  - id: OK\n    name: Anything else\n    priority: 2\n    action: ALLOW\n    conditions: {}\n    reason: ok\n    remediation: none\n",
    );
    let (code, _, err) = gate(&s, &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("could not be read (no_data), and rule OK would ALLOW without testing no_data"), "{err}");
    // Low traffic with the same cost-only set: too few events never ALLOWs either.
    let s = scratch("low-traffic", "");
    s.write(
        "config/policies.yaml",
        "policies:\n  - id: OK\n    name: Anything\n    priority: 2\n    action: ALLOW\n    conditions: {}\n    reason: ok\n    remediation: none\n",
    );
    let (code, _, err) = gate(&s, &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("burn_rate_insufficient_data"), "{err}");
}

#[test]
fn stale_and_unreachable_prometheus_are_no_data() {
    // Four minutes after the newest sample with a two-minute freshness limit.
    let s = scratch("healthy", "  max_sample_age: 2m\n");
    let p = prom();
    let later = p.end.checked_add(jiff::SignedDuration::from_secs(240)).unwrap().to_string();
    let out = s.gate(&["--now", &later, "--prometheus", &p.url, "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["policy_id"], "P000");
    let reasons = j["slo"]["prometheus"]["no_data_reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r.as_str().unwrap().contains("older than the freshness limit 2m")), "{reasons:?}");

    // Nothing listening: the queries fail, which is no data, never ALLOW.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{closed}");
    let s = scratch("healthy", "");
    let now = p.end.to_string();
    let out = s.gate(&["--now", &now, "--prometheus", &url, "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["policy_id"], "P000");
    assert_eq!(j["signals"]["no_data"], true);
}

#[test]
fn url_comes_from_the_environment_and_decisions_replay_without_prometheus() {
    let s = scratch("burning", "");
    let p = prom();
    let now = p.end.to_string();
    let out = s.gate(&["--now", &now, "--format", "json"]).env("GUARDRAIL_PROMETHEUS_URL", &p.url).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    // Replay re-evaluates the recorded snapshot: no query is sent.
    let out = common::guardrail().args(["replay", "1", "--store", &s.store()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("identical (BLOCK by P002)"));
    // No URL anywhere: a configuration error, exit 3.
    let s = scratch("healthy", "");
    let out = s.gate(&["--now", &now]).env_remove("GUARDRAIL_PROMETHEUS_URL").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("prometheus: no URL"));
}

#[test]
fn slo_command_reads_prometheus_too() {
    let s = scratch("burning", "");
    let p = prom();
    let now = p.end.to_string();
    let out = common::guardrail()
        .args(["slo", "--root"])
        .arg(s.root())
        .args(["--now", &now, "--prometheus", &p.url, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["burn_rate"], "critical");
    assert_eq!(j["prometheus"]["windows"].as_array().unwrap().len(), 8);
}

#[test]
fn explain_names_the_missing_data_instead_of_breaches() {
    let s = scratch("silent", "");
    let p = prom();
    let now = p.end.to_string();
    let out = common::guardrail()
        .args(["explain", "--root"])
        .arg(s.root())
        .args(["--now", &now, "--prometheus", &p.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("could not be read from"), "{text}");
    assert!(text.contains("Check that Prometheus answers"), "{text}");
    assert!(!text.contains("NaN"), "{text}");
}

#[test]
fn github_summary_says_no_data_and_insufficient_data() {
    let p = prom();
    let now = p.end.to_string();
    for (service, needle) in [
        ("silent", "| SLO signals | **no data** from prometheus:"),
        ("low-traffic", "| burn rate | **insufficient data** |"),
    ] {
        let s = scratch(service, "");
        let summary = s.path("summary.md");
        let out = s
            .gate(&["--now", &now, "--prometheus", &p.url, "--format", "github"])
            .env("GITHUB_STEP_SUMMARY", &summary)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&summary).unwrap();
        assert!(text.contains(needle), "{service}: {text}");
        assert!(!text.contains("NaN"), "{service}: {text}");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(!report.contains("NaN"), "{service}: {report}");
    }
}

#[test]
fn a_prometheus_url_without_a_prometheus_block_is_a_usage_mistake() {
    // The bundled slos.yaml has no prometheus: block; a URL given anyway is refused (exit 3),
    // not silently ignored in favour of the metrics file. No server is needed for this.
    let s = Scratch::new();
    let out = s.gate(&["--prometheus", "http://127.0.0.1:9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no prometheus: block"));
    // A URL that is neither http:// nor https:// is a bad flag value: a usage error, by name.
    let s = scratch("healthy", "");
    let out = s.gate(&["--prometheus", "ftp://prom.example"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must start with http:// or https://"));
}

/// A policy set that never tests `no_data`: a Prometheus that cannot be read cannot decide.
const ALLOW_ONLY: &str = "policies:\n  - id: OK\n    name: Anything\n    priority: 2\n    action: ALLOW\n    conditions: {}\n    reason: ok\n    remediation: none\n";

fn run_gate(c: &mut assert_cmd::Command) -> (i32, serde_json::Value, String) {
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn an_https_prometheus_behind_an_internal_ca_decides_when_the_ca_is_given() {
    let tls = tls_server::start();
    // ca_file in the prometheus: block, relative to the SLO file's directory.
    let s = scratch("healthy", "  ca_file: internal-ca.pem\n");
    s.write("config/internal-ca.pem", &tls.ca_pem);
    let (code, j, err) = run_gate(&mut s.gate(&["--prometheus", &tls.url, "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(j["action"], "ALLOW");
    assert_eq!(j["signals"]["no_data"], false);
    assert_eq!(j["slo"]["availability_pct"], 99.99);
    assert_eq!(j["inputs"]["metrics"]["path"], format!("prometheus:{}", tls.url));

    // --prometheus-ca, then GUARDRAIL_PROMETHEUS_CA, for a block without ca_file.
    let s = scratch("healthy", "");
    s.write("ca.pem", &tls.ca_pem);
    let ca = s.path("ca.pem").display().to_string();
    let (code, _, err) = run_gate(&mut s.gate(&["--prometheus", &tls.url, "--prometheus-ca", &ca]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_gate(s.gate(&["--prometheus", &tls.url]).env("GUARDRAIL_PROMETHEUS_CA", &ca));
    assert_eq!(code, 0, "{err}");
    // The flag wins over the variable (which is then not even read) and over the file's ca_file.
    let s = scratch("healthy", "  ca_file: missing.pem\n");
    s.write("ca.pem", &tls.ca_pem);
    let (code, _, err) = run_gate(
        s.gate(&["--prometheus", &tls.url, "--prometheus-ca", &ca]).env("GUARDRAIL_PROMETHEUS_CA", s.path("nope.pem")),
    );
    assert_eq!(code, 3, "the file's ca_file is still checked at load: {err}");
    let s = scratch("healthy", "");
    s.write("ca.pem", &tls.ca_pem);
    let (code, _, err) = run_gate(
        s.gate(&["--prometheus", &tls.url, "--prometheus-ca", &ca]).env("GUARDRAIL_PROMETHEUS_CA", s.path("nope.pem")),
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_untrusted_certificate_is_no_data_naming_the_url_and_the_tls_reason() {
    let tls = tls_server::start();
    // Without a rule for no_data: exit 3, and the message says which URL and why.
    let s = scratch("healthy", "");
    s.write("config/policies.yaml", ALLOW_ONLY);
    let (code, _, err) = run_gate(&mut s.gate(&["--prometheus", &tls.url]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no_data"), "{err}");
    assert!(err.contains(&format!("{}/api/v1/query", tls.url)), "{err}");
    assert!(
        err.contains("failed TLS verification, the server's certificate is not trusted")
            && err.contains("UnknownIssuer"),
        "{err}"
    );
    // With the no-data rule: DELAY (never ALLOW), the reasons recorded. Two retries allowed,
    // but a refused certificate is not retried: one connection per query (three).
    let s = scratch("healthy", "");
    s.edit("config/slos.yaml", "  retries: 0\n", "  retries: 2\n");
    let before = tls.connections();
    let (code, j, err) = run_gate(&mut s.gate(&["--prometheus", &tls.url, "--format", "json"]));
    assert_eq!(tls.connections() - before, 3, "a refused certificate is not retried");
    assert_eq!(code, 1, "{err}");
    assert_eq!(j["policy_id"], "P000");
    let reasons = j["slo"]["prometheus"]["no_data_reasons"].to_string();
    assert!(reasons.contains("certificate is not trusted"), "{reasons}");
}

#[test]
fn a_bad_ca_file_cannot_decide_and_names_the_field_or_flag() {
    let tls = tls_server::start();
    for (file, says) in [(None, "cannot be read"), (Some("hello\n"), "not a PEM file")] {
        let s = scratch("healthy", "  ca_file: ca.pem\n");
        if let Some(text) = file {
            s.write("config/ca.pem", text);
        }
        let (code, _, err) = run_gate(&mut s.gate(&["--prometheus", &tls.url]));
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("slos.yaml:11:3: prometheus.ca_file"), "{err}");
        assert!(err.contains(says), "{err}");
        // The same file given by flag or variable: named by the flag or the variable.
        let s = scratch("healthy", "");
        if let Some(text) = file {
            s.write("ca.pem", text);
        }
        let ca = s.path("ca.pem").display().to_string();
        let (code, _, err) = run_gate(&mut s.gate(&["--prometheus", &tls.url, "--prometheus-ca", &ca]));
        assert_eq!(code, 3, "{err}");
        assert!(err.contains(&format!("--prometheus-ca: {ca}: {says}")), "{err}");
        let (code, _, err) = run_gate(s.gate(&["--prometheus", &tls.url]).env("GUARDRAIL_PROMETHEUS_CA", &ca));
        assert_eq!(code, 3, "{err}");
        assert!(err.contains(&format!("GUARDRAIL_PROMETHEUS_CA: {ca}: {says}")), "{err}");
    }
}
