//! Whole-process parity with the seed tool's runs (reference note §4.1 and §4.4).

use crate::common;
use common::*;

#[test]
fn shipped_data_delays_on_p005() {
    let s = Scratch::new();
    let (code, v) = gate_json(&s, &[]);
    assert_eq!(code, 1);
    assert_eq!(v["action"], "DELAY");
    assert_eq!(v["policy_id"], "P005");
    assert_eq!(v["delay_minutes"], 15);
    assert_eq!(v["retry_after"], "2026-02-21T00:15:00Z");
    assert_eq!(v["reason"], "Less than 30% error budget remaining");
    // The seed's /api/decision blocks, value for value (reference §4.4).
    assert_eq!(v["slo"]["availability_pct"], 99.918981);
    assert_eq!(v["slo"]["error_budget_pct"], 18.98);
    assert_eq!(v["slo"]["burn_rate"], "low");
    assert_eq!(v["slo"]["burn_rate_value"], 0.87);
    assert_eq!(v["slo"]["latency_p95_ms"], 480);
    assert_eq!(v["slo"]["latency_p99_ms"], 890);
    assert_eq!(v["slo"]["details"]["avg_burn_rate"], 1.47);
    assert_eq!(v["cost"]["current_week_avg_usd"], 58.34);
    assert_eq!(v["cost"]["previous_week_avg_usd"], 58.71);
    assert_eq!(v["cost"]["wow_change_pct"], -0.63);
    assert_eq!(v["cost"]["trend"], "stable");
    assert_eq!(v["cost"]["spike_detected"], false);
    assert_eq!(v["cost"]["mtd_spend_usd"], 1573.6);
    assert_eq!(v["cost"]["budget_utilisation_pct"], 104.91);
    assert_eq!(v["cost"]["budget_usd"], 1500.0);
    let matched: Vec<&str> = v["evaluated_policies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["matched"] == true)
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(matched, ["P005", "P008"]);
    assert_eq!(v["counterfactual"]["summary"], "ALLOW needs error_budget_pct >= 30; now 18.98");
    assert_eq!(v["conditions"][0]["signal"], "error_budget_pct");
    assert_eq!(v["conditions"][0]["operator"], "lt");
    assert_eq!(v["conditions"][0]["threshold"], 30.0);
    assert_eq!(v["conditions"][0]["actual"], 18.98);
    assert_eq!(v["conditions"][0]["result"], true);
    for name in ["policies", "slos", "metrics", "cost"] {
        assert_eq!(v["inputs"][name]["sha256"].as_str().unwrap().len(), 64, "{name}");
    }
}

fn scenario(name: &str) -> String {
    std::fs::read_to_string(examples().join(format!("scenarios/{name}/metrics.json"))).unwrap()
}

#[test]
fn scenario_allow() {
    let s = Scratch::new();
    s.write("data/metrics.json", &scenario("allow"));
    let (code, v) = gate_json(&s, &[]);
    assert_eq!((code, v["action"].as_str(), v["policy_id"].as_str()), (0, Some("ALLOW"), Some("P008")));
    assert_eq!(v["slo"]["error_budget_pct"], 76.0);
    assert!(v["counterfactual"].is_null());
}

#[test]
fn scenario_warn_is_allow_as_in_the_seed() {
    let s = Scratch::new();
    s.write("data/metrics.json", &scenario("warn"));
    let (code, v) = gate_json(&s, &[]);
    assert_eq!((code, v["action"].as_str(), v["policy_id"].as_str()), (0, Some("ALLOW"), Some("P008")));
    assert_eq!(v["slo"]["error_budget_pct"], 60.0);
}

#[test]
fn scenario_block() {
    let s = Scratch::new();
    s.write("data/metrics.json", &scenario("block"));
    let (code, v) = gate_json(&s, &[]);
    assert_eq!((code, v["action"].as_str(), v["policy_id"].as_str()), (2, Some("BLOCK"), Some("P001")));
    assert_eq!(v["slo"]["burn_rate"], "critical");
    assert_eq!(v["slo"]["latency_compliant"], false);
    let matched: Vec<&str> = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["matched"] == true)
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(matched, ["P001", "P002", "P004", "P005", "P007", "P008"]);
}

#[test]
fn scenario_allow_with_rising_cost_warns() {
    let s = Scratch::new();
    s.write("data/metrics.json", &scenario("allow"));
    let costs: Vec<f64> = [vec![50.0; 7], vec![62.5; 7]].concat();
    s.write("data/cost.json", &cost_with(&costs));
    let (code, v) = gate_json(&s, &[]);
    assert_eq!((code, v["action"].as_str(), v["policy_id"].as_str()), (0, Some("WARN"), Some("P006")));
    assert_eq!(v["cost"]["wow_change_pct"], 25.0);
    assert_eq!(v["cost"]["trend"], "rising");
    let (code, _) = gate_json(&s, &["--fail-on-warn"]);
    assert_eq!(code, 1);
}

#[test]
fn scenario_allow_with_hot_last_hours_delays_on_p004() {
    let s = Scratch::new();
    let mut burn = vec![0.6; 21];
    burn.extend([6.0, 6.0, 6.0]);
    s.write("data/metrics.json", &metrics_with(5_000_000, 1200, 320, &burn));
    let (code, v) = gate_json(&s, &[]);
    assert_eq!((code, v["action"].as_str(), v["policy_id"].as_str()), (1, Some("DELAY"), Some("P004")));
    assert_eq!(v["delay_minutes"], 30);
}

/// Issue 10, item 3, differentially: the original (Python ints, exact true division) says
/// DELAY P005 at a 29.99 % budget for these counts; dividing them as f64 gave ALLOW at 30.0.
/// Written as a float the total is a Python float, and the original's float arithmetic
/// does give 30.0 and ALLOW: each form decides as the original decides it.
#[test]
fn counts_above_2_pow_53_decide_as_the_original() {
    let s = Scratch::new();
    s.write("data/metrics.json", &metrics_with(76_375_555_000_000_000, 53_467_089_155_525, 480, &[0.9]));
    let (code, v) = gate_json(&s, &[]);
    assert_eq!((code, v["action"].as_str(), v["policy_id"].as_str()), (1, Some("DELAY"), Some("P005")), "{v}");
    assert_eq!(v["slo"]["error_budget_pct"], 29.99);
    assert_eq!(v["slo"]["availability_pct"], 99.929994);
    let as_float = metrics_with(76_375_555_000_000_000, 53_467_089_155_525, 480, &[0.9])
        .replace("76375555000000000", "76375555000000000.0");
    s.write("data/metrics.json", &as_float);
    let (code, v) = gate_json(&s, &[]);
    assert_eq!((code, v["action"].as_str(), v["policy_id"].as_str()), (0, Some("ALLOW"), Some("P008")), "{v}");
    assert_eq!(v["slo"]["error_budget_pct"], 30.0);
}

/// Issue 10, item 4: the original runs on Python 3.12, whose `sum()` is compensated:
/// (6.35 + 6.05 + 2.6) / 3 is 5.0 there ("high", DELAY P004); 3.11's left-to-right sum gave
/// 4.999999999999999 ("medium", ALLOW P008).
#[test]
fn burn_mean_is_python_3_12s_sum() {
    let s = Scratch::new();
    s.write("data/metrics.json", &metrics_with(1_000_000, 100, 480, &[6.35, 6.05, 2.6]));
    let (code, v) = gate_json(&s, &[]);
    assert_eq!((code, v["action"].as_str(), v["policy_id"].as_str()), (1, Some("DELAY"), Some("P004")), "{v}");
    assert_eq!(v["slo"]["burn_rate"], "high");
    assert_eq!(v["slo"]["burn_rate_value"], 5.0);
}

#[test]
fn env_variables_of_the_seed_are_honoured_and_flags_win() {
    let s = Scratch::new();
    let other = tempfile::tempdir().unwrap();
    let block = other.path().join("block.json");
    std::fs::write(&block, scenario("block")).unwrap();
    let allow = other.path().join("allow.json");
    std::fs::write(&allow, scenario("allow")).unwrap();
    // SLO_METRICS is honoured by the gate itself (the seed ignored it).
    let mut c = s.gate(&["--format", "json"]);
    c.env("SLO_METRICS", &block);
    let (code, out, _) = run(c);
    assert_eq!(code, 2, "{out}");
    // The flag wins over the variable.
    let mut c = s.gate(&["--format", "json", "--metrics"]);
    c.arg(&allow).env("SLO_METRICS", &block);
    let (code, _, _) = run(c);
    assert_eq!(code, 0);
    // COST_WARN_PCT changes the spike label.
    let costs: Vec<f64> = [vec![50.0; 7], vec![57.5; 7]].concat();
    s.write("data/cost.json", &cost_with(&costs));
    let mut c = s.gate(&["--format", "json"]);
    c.env("COST_WARN_PCT", "10");
    let (_, out, _) = run(c);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cost"]["spike_detected"], true);
    assert_eq!(v["cost"]["trend"], "rising");
    // POLICIES_PATH is honoured too.
    let p = other.path().join("p.yaml");
    std::fs::write(&p, "policies:\n  - id: ONLY\n    name: Always block\n    priority: 1\n    action: BLOCK\n    conditions: {}\n    reason: r\n    remediation: m\n").unwrap();
    let mut c = s.gate(&["--format", "json"]);
    c.env("POLICIES_PATH", &p);
    let (code, out, _) = run(c);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn text_report_and_explain() {
    let s = Scratch::new();
    let (code, out, _) = run(s.gate(&[]));
    assert_eq!(code, 1);
    assert!(out.contains("DELAY"), "{out}");
    assert!(out.contains("[P005] Moderate error budget consumed"), "{out}");
    assert!(out.contains("ALLOW needs error_budget_pct >= 30; now 18.98"), "{out}");
    assert!(!out.contains("\x1b["), "no colour when not a terminal");
    let mut c = guardrail();
    c.arg("explain").arg("--root").arg(s.root()).args(["--now", "2026-02-21T00:00:00Z"]);
    let (code, out, _) = run(c);
    assert_eq!(code, 0);
    assert!(out.contains("Deployment has been DELAYED by 15 minutes."), "{out}");
    assert!(out.contains("Error budget left is 18.98%, below 30%"), "{out}");
    assert!(!out.contains("recovering"), "no contradictory bullets: {out}");
}

#[test]
fn slo_and_cost_subcommands() {
    let s = Scratch::new();
    let mut c = guardrail();
    c.arg("slo").arg("--root").arg(s.root()).args(["--format", "json"]);
    let (code, out, _) = run(c);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error_budget_pct"], 18.98);
    let mut c = guardrail();
    c.arg("cost").arg("--root").arg(s.root());
    let (code, out, _) = run(c);
    assert_eq!(code, 0);
    assert!(out.contains("-0.63%"), "{out}");
}

#[test]
fn github_format_writes_outputs_and_summary() {
    let s = Scratch::new();
    let gh_out = s.path("gh_output");
    let gh_sum = s.path("gh_summary.md");
    let mut c = s.gate(&["--format", "github"]);
    c.env("GITHUB_OUTPUT", &gh_out).env("GITHUB_STEP_SUMMARY", &gh_sum);
    let (code, out, _) = run(c);
    assert_eq!(code, 1);
    assert!(out.contains("::warning title=Deployment Delayed 15 min (P005)::"), "{out}");
    let outputs = std::fs::read_to_string(&gh_out).unwrap();
    assert_eq!(outputs, "decision=DELAY\ndelay_minutes=15\npolicy_id=P005\n");
    let summary = std::fs::read_to_string(&gh_sum).unwrap();
    assert!(summary.contains("## Guardrail: ⏳ DELAY"), "{summary}");
    // Markdown text is HTML-escaped (policy text is user-controlled); GitHub renders `&gt;` as `>`.
    assert!(summary.contains("ALLOW needs error_budget_pct &gt;= 30; now 18.98"), "{summary}");
}

/// `guardrail gate` with its policy cache: without it, on the first run (which writes the
/// entry) and on the next (which reads it) the output is the same to the byte — the audit id
/// in it too, so the record's canonical bytes are the same — and a corrupt entry is rebuilt.
/// A file with errors is never kept and fails with the same message.
#[test]
fn a_cached_policy_set_decides_and_records_as_its_text() {
    let s = Scratch::new();
    let cache = s.path("cache");
    let run = |dir: &str| {
        let _ = std::fs::remove_file(s.path("audit.db"));
        let out = s.gate(&["--format", "json"]).env("GUARDRAIL_CACHE_DIR", dir).output().unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let dir = cache.display().to_string();
    let off = run("off");
    assert_eq!(off.0, Some(1), "{off:?}");
    assert!(!cache.exists(), "off writes nothing");
    assert_eq!(run(&dir), off, "the run that writes the entry");
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(run(&dir), off, "the run that reads it");
    let good = std::fs::read(&entries[0]).unwrap();
    std::fs::write(&entries[0], &good[..good.len() / 2]).unwrap();
    assert_eq!(run(&dir), off, "a truncated entry is ignored");
    assert_eq!(std::fs::read(&entries[0]).unwrap(), good, "and rebuilt");

    s.edit("config/policies.yaml", "action: BLOCK", "action: EXPLODE");
    let bad_off = run("off");
    assert_eq!(bad_off.0, Some(3), "{bad_off:?}");
    assert!(bad_off.2.contains("policies.yaml:") && bad_off.2.contains("EXPLODE"), "{}", bad_off.2);
    // The audit id of the deploy_error record differs with the time it was written.
    let same = |a: &(Option<i32>, String, String), b: &(Option<i32>, String, String)| {
        let lines = |t: &str| {
            t.lines()
                .filter(|l| !l.contains("audit record") && !l.contains("\"audit_record\""))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        a.0 == b.0 && lines(&a.1) == lines(&b.1) && lines(&a.2) == lines(&b.2)
    };
    for _ in 0..2 {
        let bad = run(&dir);
        assert!(same(&bad, &bad_off), "{bad:?}\n{bad_off:?}");
    }
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "a file with errors is not kept");
}
