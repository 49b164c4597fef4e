//! Every class of bad input exits 3 ("could not decide") with an error naming the file, the
//! field and the reason on stderr — and in JSON mode as an error object on stdout — and is
//! audited. A bad flag or environment variable value is a usage error: exit 64, nothing
//! recorded.

use crate::common;
use common::*;

/// Runs the gate in JSON mode and asserts a fail-closed outcome whose stderr contains every
/// needle.
fn refuses(s: &Scratch, extra: &[&str], needles: &[&str]) -> String {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(s.gate(&args));
    assert_eq!(code, 3, "expected exit 3\nstdout: {out}\nstderr: {err}");
    // stdout holds the reason as a JSON error object, never a decision.
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out}"));
    assert_eq!(v["exit_code"], 3, "{v}");
    assert_eq!(v["error"]["kind"], "cannot_decide", "{v}");
    assert!(v.get("action").is_none(), "{v}");
    let messages: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
        assert!(messages.iter().any(|m| m.contains(n)), "the JSON errors lack {n:?}: {v}");
    }
    err
}

/// Runs the gate and asserts a usage error: exit 64, stderr naming every needle, and no audit
/// record (the store file is not even created).
fn usage_error(s: &Scratch, extra: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let mut c = s.gate(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    let (code, out, err) = run(c);
    assert_eq!(code, 64, "{extra:?} {env:?}: expected exit 64\nstdout: {out}\nstderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    assert!(err.contains("usage error") && !err.contains("recorded as"), "{err}");
    assert!(!s.path("audit.db").exists(), "{extra:?} {env:?}: a usage error records nothing");
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
    usage_error(&s, &["--max-age", "soon"], &[], &["--max-age"]);
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
    usage_error(&s, &[], &[("COST_WARN_PCT", "abc")], &["COST_WARN_PCT", "\"abc\""]);
    usage_error(&s, &[], &[("COST_WARN_PCT", "40"), ("COST_BLOCK_PCT", "30")], &["wrong order"]);
}

#[test]
fn bad_flag_and_variable_values_are_usage_errors_that_record_nothing() {
    let s = Scratch::new();
    for (args, env, needle) in [
        (&["--cost-warn-pct", "abc"][..], &[][..], "--cost-warn-pct"),
        (&["--cost-block-pct", "thirty"], &[], "--cost-block-pct"),
        (&["--now", "yesterday"], &[], "--now"),
        (&["--max-age", "a while"], &[], "--max-age"),
        (&["--cost-format", "xls"], &[], "--cost-format"),
        (&["--cost-baseline-days", "1"], &[], "--cost-baseline-days"),
        (&["--prometheus-timeout-ms", "0"], &[], "--prometheus-timeout-ms"),
        (&[], &[("COST_BLOCK_PCT", "NaN")], "COST_BLOCK_PCT"),
        (&[], &[("GUARDRAIL_MAX_AGE", "soon")], "GUARDRAIL_MAX_AGE"),
        (&[], &[("GUARDRAIL_COST_FORMAT", "xls")], "GUARDRAIL_COST_FORMAT"),
        (&[], &[("GUARDRAIL_COST_BASELINE_DAYS", "x")], "GUARDRAIL_COST_BASELINE_DAYS"),
        (&[], &[("GUARDRAIL_PROMETHEUS_TIMEOUT_MS", "-1")], "GUARDRAIL_PROMETHEUS_TIMEOUT_MS"),
    ] {
        usage_error(&s, args, env, &[needle]);
    }
    // The same for the commands that read the same flags.
    for cmd in ["slo", "cost", "explain"] {
        let mut c = guardrail();
        c.args([cmd, "--root"]).arg(s.root()).args(["--cost-warn-pct", "abc"]);
        let (code, out, err) = run(c);
        assert_eq!(code, 64, "{cmd}: {out}{err}");
        assert!(err.contains("--cost-warn-pct"), "{cmd}: {err}");
    }
}

#[test]
fn gate_json_prints_an_error_object_on_stdout_when_it_cannot_decide() {
    let s = Scratch::new();
    s.edit("config/policies.yaml", "operator: lt\n        value: 10", "operator: less\n        value: 10");
    let (code, out, _) = run(s.gate(&["--format", "json"]));
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["exit_code"], 3);
    let e = &v["error"];
    assert_eq!(e["kind"], "cannot_decide");
    assert!(e["file"].as_str().unwrap().ends_with("config/policies.yaml"), "{v}");
    assert_eq!((e["line"].as_u64(), e["column"].as_u64()), (Some(11), Some(9)), "{v}");
    assert_eq!(e["field"], "policies[0].conditions.error_budget_pct.operator", "{v}");
    assert!(e["message"].as_str().unwrap().contains("unknown operator \"less\""), "{v}");
    // The failure is recorded, and the object names the record.
    let record = v["audit_record"].as_str().unwrap();
    let mut c = guardrail();
    c.args(["audit", "show", record, "--store"]).arg(s.store());
    let (code, shown, _) = run(c);
    assert_eq!(code, 0);
    assert!(shown.contains("deploy_error"), "{shown}");

    // A bad value: kind usage, exit 64, no record.
    let s = Scratch::new();
    let (code, out, _) = run(s.gate(&["--format", "json", "--now", "yesterday"]));
    assert_eq!(code, 64);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["exit_code"].as_i64(), v["error"]["kind"].as_str()), (Some(64), Some("usage")), "{v}");
    assert_eq!(v["error"]["field"], "--now", "{v}");
    assert!(v["audit_record"].is_null() && !s.path("audit.db").exists(), "{v}");
    // A command line clap refuses, still under --format json.
    let (code, out, err) = run(s.gate(&["--format", "json", "--no-such-flag"]));
    assert_eq!(code, 64, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["error"]["kind"], "usage", "{v}");
    assert!(err.contains("--no-such-flag"), "{err}");
    // Text mode keeps stdout empty.
    let (code, out, _) = run(s.gate(&["--now", "yesterday"]));
    assert_eq!((code, out.as_str()), (64, ""));
}

#[test]
fn service_name_is_recorded_and_unsupported_seed_variables_are_named() {
    let s = Scratch::new();
    let mut c = s.gate(&["--format", "json"]);
    c.env("SERVICE_NAME", "checkout-api").env("EXPLAINER_BACKEND", "llama");
    let (code, out, err) = run(c);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ci"]["service"], "checkout-api");
    assert!(
        err.contains("EXPLAINER_BACKEND=llama is unknown (rule, openai, anthropic); using the rule-based explainer"),
        "{err}"
    );
    // openai and anthropic are explainers now (guardrail explain): nothing to warn about in gate.
    let mut c = s.gate(&["--format", "json"]);
    c.env("EXPLAINER_BACKEND", "openai");
    assert!(!run(c).2.contains("EXPLAINER_BACKEND"));
    assert!(!err.contains("SERVICE_NAME"), "the same service: no warning: {err}");
    let mut c = guardrail();
    c.args(["audit", "show", "1", "--store"]).arg(s.store());
    let (_, shown, _) = run(c);
    let rec: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(rec["body"]["ci"]["service"], "checkout-api", "recorded: {shown}");
    // Another service than the signals': a warning on stderr, in the output and the record.
    let mut c = s.gate(&["--format", "json"]);
    c.env("SERVICE_NAME", "payments-api");
    let (code, out, err) = run(c);
    assert_eq!(code, 1, "the decision itself is unchanged: {err}");
    assert!(err.contains("SERVICE_NAME is \"payments-api\" but the signals are \"checkout-api\"'s"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["warnings"].to_string().contains("SERVICE_NAME"), "{v}");
    // explain without the model's key: the rule text, a warning naming the variable, exit 0;
    // rule_based (the seed's default) is quiet. (tests/it/explainer.rs has the model cases.)
    let mut c = guardrail();
    c.args(["explain", "--root"]).arg(s.root()).env("EXPLAINER_BACKEND", "anthropic").env_remove("ANTHROPIC_API_KEY");
    let (code, out, err) = run(c);
    assert_eq!(code, 0);
    assert!(out.contains("DEPLOYMENT DECISION EXPLAINED"), "{out}");
    assert!(err.contains("no API key: set ANTHROPIC_API_KEY); using the rule-based explainer"), "{err}");
    let mut c = guardrail();
    c.args(["explain", "--root"]).arg(s.root()).env("EXPLAINER_BACKEND", "rule_based");
    assert!(run(c).2.is_empty());
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
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["exit_code"], 3, "no decision on stdout, only why: {v}");
    assert!(v.get("action").is_none(), "{v}");
    assert!(err.contains("NOT recorded") || err.contains("audit store"), "{err}");
}

/// Issue 10: without `operator` the seed compared with `eq`, so deleting `operator: lt` from
/// P005 turned the shipped data's DELAY into ALLOW. Guardrail cannot decide (exit 3) and
/// names the file, the rule and the field.
#[test]
fn a_condition_without_operator_cannot_decide() {
    let s = Scratch::new();
    s.edit("config/policies.yaml", "        operator: lt\n        value: 30\n", "        value: 30\n");
    refuses(&s, &[], &["policies.yaml", "rule P005", "policies[4].conditions.error_budget_pct.operator"]);
}

#[test]
fn a_bad_now_is_a_usage_error_for_the_governor_commands_too() {
    let dir = tempfile::tempdir().unwrap();
    let incident = examples().join("../governor/scenarios/incident_high.json");
    let incident = incident.to_str().unwrap();
    for args in [
        vec!["incident", "run", incident, "--now", "yesterday"],
        vec!["incident", "execute", "inc-live-001", "--now", "yesterday"],
        vec!["incident", "resolve", "inc-live-001", "--summary", "s", "--action", "a", "--now", "yesterday"],
        vec!["approve", "inc-live-001", "--reason", "r", "--now", "yesterday"],
        vec!["kb", "review", "learned-1", "--now", "yesterday"],
    ] {
        let mut c = guardrail();
        for k in ["GUARDRAIL_KB", "GUARDRAIL_GOVERNOR_CONFIG", "GUARDRAIL_TOKENS", "GUARDRAIL_TOKEN"] {
            c.env_remove(k);
        }
        c.current_dir(dir.path()).args(&args);
        let (code, out, err) = run(c);
        assert_eq!(code, 64, "{args:?}: {out}{err}");
        assert!(err.contains("--now") && err.contains("usage error"), "{args:?}: {err}");
        assert!(!dir.path().join(".guardrail/guardrail.db").exists(), "{args:?}: nothing recorded");
    }
}
