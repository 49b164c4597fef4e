//! Every class of bad input exits 3 ("could not decide") with an error naming the file, the
//! field and the reason on stderr, prints nothing on stdout in JSON mode, and is audited.

mod common;
use common::*;

/// Runs the gate in JSON mode and asserts a fail-closed outcome whose stderr contains every
/// needle.
fn refuses(s: &Scratch, extra: &[&str], needles: &[&str]) -> String {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(s.gate(&args));
    assert_eq!(code, 3, "expected exit 3\nstdout: {out}\nstderr: {err}");
    assert!(out.trim().is_empty(), "nothing on stdout when no decision: {out}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    err
}

#[test]
fn missing_files() {
    let s = Scratch::new();
    std::fs::remove_file(s.path("config/policies.yaml")).unwrap();
    refuses(&s, &[], &["policies.yaml"]);
    let s = Scratch::new();
    std::fs::remove_file(s.path("data/cost.json")).unwrap();
    refuses(&s, &[], &["cost.json"]);
    let s = Scratch::new();
    s.write("data/metrics.json", "");
    refuses(&s, &[], &["metrics.json", "empty"]);
}

#[test]
fn malformed_json_and_yaml_give_line_and_column() {
    let s = Scratch::new();
    s.write("data/metrics.json", "{ bad");
    refuses(&s, &[], &["metrics.json:1:"]);
    let s = Scratch::new();
    s.write("config/policies.yaml", "policies:\n  - id: P1\n    name: [unclosed\n");
    refuses(&s, &[], &["policies.yaml:"]);
    let s = Scratch::new();
    s.write("config/slos.yaml", "slos:\n  availability:\n    target: 99.9\n   latency: x\n");
    refuses(&s, &[], &["slos.yaml:"]);
}

#[test]
fn missing_keys() {
    let s = Scratch::new();
    s.edit("data/metrics.json", "\"total_requests\": 2592000,", "");
    refuses(&s, &[], &["metrics.json", "total_requests"]);
    let s = Scratch::new();
    s.edit("config/slos.yaml", "p95_threshold_ms: 500", "p96_threshold_ms: 500");
    refuses(&s, &[], &["slos.yaml", "p95_threshold_ms"]);
    let s = Scratch::new();
    s.edit("config/policies.yaml", "    remediation: \"Proceed with caution. Consider a canary deployment.\"\n", "");
    refuses(&s, &[], &["policies.yaml", "remediation"]);
}

#[test]
fn wrong_types() {
    let s = Scratch::new();
    s.edit("config/policies.yaml", "value: 10", "value: \"10\"");
    refuses(&s, &[], &["policies.yaml:12:", "policies[0].conditions.error_budget_pct.value"]);
    let s = Scratch::new();
    s.edit("data/metrics.json", "\"total_requests\": 2592000", "\"total_requests\": \"2592000\"");
    refuses(&s, &[], &["metrics.json", "total_requests"]);
    let s = Scratch::new();
    s.edit("config/slos.yaml", "target: 99.9", "target: \"99.9\"");
    refuses(&s, &[], &["slos.yaml", "slos.availability.target"]);
    let s = Scratch::new();
    s.edit("data/cost.json", "\"cost\": 44.20", "\"cost\": \"44.20\"");
    refuses(&s, &[], &["cost.json", "daily_costs[0].cost"]);
}

#[test]
fn impossible_counts() {
    for (total, failed, field) in [
        (2592000, -500, "failed_requests"),
        (-5, 0, "total_requests"),
        (0, 0, "total_requests"),
        (100, 200, "failed_requests"),
    ] {
        let s = Scratch::new();
        s.write("data/metrics.json", &metrics_with(total, failed, 480, &[1.0; 24]));
        refuses(&s, &[], &["metrics.json", field]);
    }
    let s = Scratch::new();
    s.edit("data/metrics.json", "\"failed_requests\": 2100", "\"failed_requests\": NaN");
    refuses(&s, &[], &["metrics.json", "NaN"]);
    let s = Scratch::new();
    s.edit("data/metrics.json", "\"failed_requests\": 2100", "\"failed_requests\": Infinity");
    refuses(&s, &[], &["metrics.json"]);
    let s = Scratch::new();
    s.edit("data/metrics.json", "\"failed_requests\": 2100", "\"failed_requests\": 21.5");
    refuses(&s, &[], &["metrics.json", "failed_requests"]);
}

#[test]
fn impossible_window_and_mismatched_services() {
    let s = Scratch::new();
    s.edit("data/metrics.json", "\"window_days\": 30", "\"window_days\": 0");
    refuses(&s, &[], &["metrics.json", "window_days"]);
    let s = Scratch::new();
    s.edit("data/metrics.json", "\"window_days\": 30", "\"window_days\": \"30\"");
    refuses(&s, &[], &["metrics.json", "window_days"]);
    let s = Scratch::new();
    s.edit("data/cost.json", "\"service\": \"checkout-api\"", "\"service\": \"payments\"");
    refuses(&s, &[], &["cost.json", "payments", "checkout-api"]);
}

#[test]
fn burn_series() {
    let s = Scratch::new();
    s.write("data/metrics.json", &metrics_with(1000, 1, 480, &[]));
    refuses(&s, &[], &["metrics.json", "hourly_burn_rate"]);
    let s = Scratch::new();
    let text = metrics_with(1000, 1, 480, &[1.0]).replace(",\"hourly_burn_rate\":[1.0]", "");
    assert!(!text.contains("hourly_burn_rate"));
    s.write("data/metrics.json", &text);
    refuses(&s, &[], &["metrics.json", "hourly_burn_rate"]);
    let s = Scratch::new();
    s.write("data/metrics.json", &metrics_with(1000, 1, 480, &[1.0]).replace("[1.0]", "null"));
    refuses(&s, &[], &["metrics.json", "hourly_burn_rate"]);
}

#[test]
fn cost_series() {
    let cases: Vec<(String, &str)> = vec![
        (cost_with(&[]), "daily_costs"),
        (cost_with(&(1..=10).map(f64::from).collect::<Vec<_>>()), "daily_costs"),
        (cost_with(&[[0.0; 7], [100.0; 7]].concat()), "previous week"),
    ];
    for (text, needle) in cases {
        let s = Scratch::new();
        s.write("data/cost.json", &text);
        refuses(&s, &[], &["cost.json", needle]);
    }
    // A gap.
    let s = Scratch::new();
    s.edit("data/cost.json", "{\"date\": \"2026-02-10\", \"cost\": 61.30},", "");
    refuses(&s, &[], &["cost.json", "gap"]);
    // A duplicate date.
    let s = Scratch::new();
    s.edit("data/cost.json", "\"2026-02-10\"", "\"2026-02-09\"");
    refuses(&s, &[], &["cost.json", "2026-02-09"]);
    // A non-ISO date.
    let s = Scratch::new();
    s.edit("data/cost.json", "\"2026-02-10\"", "\"02/10/2026\"");
    refuses(&s, &[], &["cost.json", "date"]);
}

#[test]
fn stale_and_future_data() {
    let s = Scratch::new();
    refuses(
        &s,
        &["--max-age", "24h", "--now", "2026-02-22T00:00:00Z"],
        &["metrics.json", "collected_at", "older than"],
    );
    let mut c = s.gate(&["--format", "json"]);
    c.env("GUARDRAIL_MAX_AGE", "2d");
    let (code, _, _) = run(c);
    assert_eq!(code, 1, "collected 1 day before --now: fresh enough");
    let s = Scratch::new();
    s.edit("data/metrics.json", "2026-02-20T00:00:00Z", "2027-01-01T00:00:00Z");
    refuses(&s, &[], &["metrics.json", "collected_at", "future"]);
    let s = Scratch::new();
    s.edit("data/metrics.json", "2026-02-20T00:00:00Z", "20 Feb 2026");
    refuses(&s, &[], &["metrics.json", "collected_at"]);
    let s = Scratch::new();
    refuses(&s, &["--max-age", "soon"], &["--max-age"]);
}

#[test]
fn policy_language_errors() {
    let s = Scratch::new();
    s.edit("config/policies.yaml", "operator: lt\n        value: 10", "operator: less_than\n        value: 10");
    refuses(&s, &[], &["policies.yaml:11:", "less_than"]);
    let s = Scratch::new();
    s.edit(
        "config/policies.yaml",
        "      error_budget_pct:\n        operator: lt\n        value: 10",
        "      error_budget_pc:\n        operator: lt\n        value: 10",
    );
    refuses(&s, &[], &["policies.yaml:10:", "error_budget_pc"]);
    let s = Scratch::new();
    s.edit("config/policies.yaml", "action: BLOCK", "action: HALT");
    refuses(&s, &[], &["policies.yaml:", "HALT"]);
    let s = Scratch::new();
    s.edit("config/policies.yaml", "    conditions: {}", "    conditions: null");
    refuses(&s, &[], &["policies.yaml:", "conditions"]);
    let s = Scratch::new();
    s.edit("config/policies.yaml", "id: P002", "id: P001");
    refuses(&s, &[], &["policies.yaml:", "duplicate"]);
    let s = Scratch::new();
    s.edit("config/policies.yaml", "value: [\"high\", \"critical\"]", "value: [\"hgh\", \"critical\"]");
    refuses(&s, &[], &["policies.yaml:", "hgh"]);
}

#[test]
fn missing_catch_all_is_an_error_unless_default_action_is_declared() {
    let s = Scratch::new();
    let text = s.read("config/policies.yaml");
    let cut = text.find("  - id: P008").unwrap();
    s.write("config/policies.yaml", &text[..cut]);
    refuses(&s, &[], &["policies.yaml", "catch-all"]);
    s.write(
        "config/policies.yaml",
        &format!(
            "default_action:\n  action: BLOCK\n  reason: No rule matched\n  remediation: Fix the policies\n{}",
            &text[..cut]
        ),
    );
    // The shipped data matches P005, so the default is not needed…
    let (code, v) = gate_json(&s, &[]);
    assert_eq!((code, v["policy_id"].as_str()), (1, Some("P005")));
    // …and healthy data matches nothing, so the explicit default decides.
    s.write("data/metrics.json", &metrics_with(5_000_000, 1200, 320, &[0.5; 24]));
    let (code, v) = gate_json(&s, &[]);
    assert_eq!((code, v["policy_id"].as_str(), v["decided_by"].as_str()), (2, Some("DEFAULT"), Some("default_action")));
}

#[test]
fn slo_thresholds_in_the_wrong_order() {
    let s = Scratch::new();
    s.edit("config/slos.yaml", "high: 5.0", "high: 20.0");
    refuses(&s, &[], &["slos.yaml", "burn_rate.thresholds"]);
    let s = Scratch::new();
    s.edit("config/slos.yaml", "target: 99.9", "target: 120");
    refuses(&s, &[], &["slos.yaml", "slos.availability.target"]);
}

#[test]
fn bad_environment_settings() {
    let s = Scratch::new();
    let mut c = s.gate(&["--format", "json"]);
    c.env("COST_WARN_PCT", "abc");
    let (code, out, err) = run(c);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("COST_WARN_PCT"), "{err}");
    let mut c = s.gate(&["--format", "json"]);
    c.env("COST_WARN_PCT", "40").env("COST_BLOCK_PCT", "30");
    let (code, _, err) = run(c);
    assert_eq!(code, 3);
    assert!(err.contains("wrong order"), "{err}");
}

#[test]
fn usage_errors_exit_64_not_2() {
    let (code, _, _) = run({
        let mut c = guardrail();
        c.args(["gate", "--no-such-flag"]);
        c
    });
    assert_eq!(code, 64);
    let (code, _, _) = run({
        let mut c = guardrail();
        c.args(["gate", "--format", "yaml"]);
        c
    });
    assert_eq!(code, 64);
    let (code, _, _) = run(guardrail());
    assert_eq!(code, 64);
    let (code, out, _) = run({
        let mut c = guardrail();
        c.arg("--help");
        c
    });
    assert_eq!(code, 0);
    assert!(out.contains("gate"));
}

#[test]
fn failures_are_audited() {
    let s = Scratch::new();
    s.write("data/metrics.json", "{ bad");
    refuses(&s, &[], &["metrics.json"]);
    let mut c = guardrail();
    c.args(["audit", "list", "--format", "json", "--store"]).arg(s.store());
    let (code, out, _) = run(c);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["kind"], "deploy_error");
    assert_eq!(v[0]["body"]["outcome"], "error");
    assert!(v[0]["body"]["errors"][0].as_str().unwrap().contains("metrics.json"));
}

#[test]
fn unwritable_audit_store_withholds_the_decision() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("blocked")).unwrap();
    // A directory where the database file should be: SQLite cannot open it.
    std::fs::create_dir_all(s.path("blocked/audit.db")).unwrap();
    let mut c = guardrail();
    c.arg("gate").arg("--root").arg(s.root()).arg("--store").arg(s.path("blocked/audit.db")).args(["--format", "json"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.trim().is_empty());
    assert!(err.contains("NOT recorded") || err.contains("audit store"), "{err}");
}
