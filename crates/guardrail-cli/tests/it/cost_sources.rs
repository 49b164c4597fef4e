//! Cost from billing exports through the real binary: FOCUS 1.x CSV and AWS Cost Explorer
//! JSON, the whole file by default and row selection by application tag (`--cost-tag`) and
//! provider service (`--cost-service`), no budget in an export (the utilisation is
//! unavailable), mixed currencies, duplicate days and gaps, estimated days, and the robust
//! anomaly score as a policy signal.

use crate::common;
use common::*;

fn day(i: usize) -> jiff::civil::Date {
    jiff::civil::date(2026, 1, 22).checked_add(jiff::Span::new().days(i as i64)).unwrap()
}

/// A FOCUS CSV: for each service, its daily amounts split over two line items per day.
fn focus(services: &[(&str, &str, &[f64])]) -> String {
    let mut out = String::from(
        "BillingAccountId,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,BillingCurrency,ServiceName\n",
    );
    for (name, currency, costs) in services {
        for (i, c) in costs.iter().enumerate() {
            let (a, b) = (day(i), day(i + 1));
            for part in [c * 0.25, c * 0.75] {
                out.push_str(&format!("123,{a}T00:00:00Z,{b}T00:00:00Z,{},{part},{currency},{name}\n", part * 2.0));
            }
        }
    }
    out
}

/// A Cost Explorer response grouped by SERVICE; `estimated` marks days by index.
fn ce(services: &[(&str, &[f64])], estimated: &[usize], unit: &str) -> String {
    let n = services.iter().map(|s| s.1.len()).max().unwrap_or(0);
    let results: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let groups: Vec<serde_json::Value> = services
                .iter()
                .filter(|s| i < s.1.len())
                .map(|(name, costs)| {
                    serde_json::json!({"Keys": [name], "Metrics": {"UnblendedCost": {"Amount": format!("{:.10}", costs[i]), "Unit": unit}}})
                })
                .collect();
            serde_json::json!({
                "TimePeriod": {"Start": day(i).to_string(), "End": day(i + 1).to_string()},
                "Total": {},
                "Groups": groups,
                "Estimated": estimated.contains(&i),
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
        "ResultsByTime": results,
        "DimensionValueAttributes": [],
    }))
    .unwrap()
}

/// A scratch copy whose metrics are healthy, so the cost decides.
fn healthy() -> Scratch {
    let s = Scratch::new();
    s.write("data/metrics.json", &metrics_with(2_592_000, 500, 300, &[0.5; 24]));
    s
}

fn rising() -> Vec<f64> {
    [vec![50.0; 7], vec![62.5; 7]].concat()
}

fn refuses(s: &Scratch, extra: &[&str], needles: &[&str]) -> String {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(s.gate(&args));
    assert_eq!(code, 3, "expected exit 3\nstdout: {out}\nstderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    err
}

#[test]
fn focus_csv_with_a_provider_service_selection_decides_like_cost_json() {
    let s = healthy();
    let flat = vec![10.0; 14];
    s.write("data/focus.csv", &focus(&[("search", "USD", &flat), ("checkout-api", "USD", &rising())]));
    let (code, v) =
        gate_json(&s, &["--cost", s.path("data/focus.csv").to_str().unwrap(), "--cost-service", "checkout-api"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["action"], "WARN");
    assert_eq!(v["policy_id"], "P006");
    // A provider service is not the application: only a tag names it.
    assert_eq!(v["cost"]["service"], "unknown");
    // EffectiveCost is preferred over BilledCost (which is twice as large in the fixture).
    assert_eq!(v["cost"]["previous_week_avg_usd"], 50.0);
    assert_eq!(v["cost"]["current_week_avg_usd"], 62.5);
    assert_eq!(v["cost"]["wow_change_pct"], 25.0);
    assert_eq!(v["cost"]["details"]["currency"], "USD");
    assert_eq!(v["settings"]["cost_service"], "checkout-api");
    assert!(v["settings"].get("cost_tag").is_none(), "{}", v["settings"]);
    // The same through the environment variable; the flag wins over it.
    let mut c = s.gate(&["--format", "json", "--cost", s.path("data/focus.csv").to_str().unwrap()]);
    c.env("GUARDRAIL_COST_SERVICE", "checkout-api");
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"P006\""));
    let mut c = s.gate(&[
        "--format",
        "json",
        "--cost",
        s.path("data/focus.csv").to_str().unwrap(),
        "--cost-service",
        "checkout-api",
    ]);
    c.env("GUARDRAIL_COST_SERVICE", "search");
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"P006\""), "{out}");
}

#[test]
fn focus_csv_with_several_services_is_summed_and_service_does_not_pick_rows() {
    let s = healthy();
    let flat = vec![10.0; 14];
    s.write("data/focus.csv", &focus(&[("search", "USD", &flat), ("checkout-api", "USD", &rising())]));
    let csv = s.path("data/focus.csv");
    // No selection: the whole file is the spend, summed per day (60 → 72.5: +20.83 %).
    let (code, v) = gate_json(&s, &["--cost", csv.to_str().unwrap()]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["cost"]["previous_week_avg_usd"], 60.0);
    assert_eq!(v["cost"]["current_week_avg_usd"], 72.5);
    assert_eq!(v["cost"]["service"], "unknown");
    // --service selects the SLO of a Sloth/OpenSLO file, never cost rows: naming one of several
    // provider services with it is refused rather than silently summing the whole file.
    let err = refuses(
        &s,
        &["--cost", csv.to_str().unwrap(), "--service", "checkout-api"],
        &["focus.csv", "ServiceName", "--cost-service \"checkout-api\"", "--cost-tag", "no longer selects"],
    );
    assert!(err.contains("\"checkout-api\", \"search\""), "lists the services: {err}");
    refuses(
        &s,
        &["--cost", csv.to_str().unwrap(), "--cost-service", "payments"],
        &["no provider service \"payments\"", "\"search\""],
    );
}

#[test]
fn focus_mixed_currencies_are_an_error_with_the_line() {
    let s = healthy();
    let mut text = focus(&[("checkout-api", "USD", &rising())]);
    text = text.replacen(",USD,checkout-api\n", ",EUR,checkout-api\n", 1);
    s.write("data/focus.csv", &text);
    refuses(
        &s,
        &["--cost", s.path("data/focus.csv").to_str().unwrap()],
        &["focus.csv:", "BillingCurrency", "mixed currencies", "\"EUR\" (first at line 2)", "\"USD\""],
    );
}

#[test]
fn focus_missing_columns_and_bad_rows_are_named() {
    let s = healthy();
    s.write("data/focus.csv", "ChargePeriodStart,ServiceName,BillingCurrency\n2026-01-22T00:00:00Z,a,USD\n");
    refuses(&s, &["--cost", s.path("data/focus.csv").to_str().unwrap()], &["focus.csv:1:1", "EffectiveCost"]);
    let mut text = focus(&[("checkout-api", "USD", &rising())]);
    text = text.replacen("T00:00:00Z,2026-01-23", "T00:00:00Z,2026-02-23", 1);
    s.write("data/focus.csv", &text);
    refuses(
        &s,
        &["--cost", s.path("data/focus.csv").to_str().unwrap()],
        &["focus.csv:2:1", "ChargePeriodEnd", "longer than one day"],
    );
}

#[test]
fn focus_gap_is_reported_not_bridged() {
    let s = healthy();
    let text = focus(&[("checkout-api", "USD", &rising())]);
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains(",2026-01-25T00:00:00Z,2026-01-26")).collect();
    s.write("data/focus.csv", &(kept.join("\n") + "\n"));
    refuses(
        &s,
        &["--cost", s.path("data/focus.csv").to_str().unwrap()],
        &["focus.csv", "gap", "2026-01-24", "2026-01-26"],
    );
}

#[test]
fn cost_explorer_estimated_days_are_flagged_and_the_spike_still_counts() {
    let s = healthy();
    // The last two days are estimated, and they carry the spike.
    let mut costs = vec![50.0; 12];
    costs.extend([100.0, 100.0]);
    s.write("data/ce.json", &ce(&[("checkout-api", &costs), ("Amazon S3", &[1.0; 14])], &[12, 13], "USD"));
    let (code, v) =
        gate_json(&s, &["--cost", s.path("data/ce.json").to_str().unwrap(), "--cost-service", "checkout-api"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["action"], "WARN", "the spike on estimated days is not dropped: {v}");
    assert_eq!(v["cost"]["estimated_days"], serde_json::json!(["2026-02-03", "2026-02-04"]));
    assert_eq!(v["signals"]["cost_has_estimated_days"], true);
    // (50×5 + 100×2)/7 vs 50 → +28.57 %.
    assert_eq!(v["cost"]["wow_change_pct"], 28.57);
    // The text report flags them too.
    let (_, out, _) =
        run(s.gate(&["--cost", s.path("data/ce.json").to_str().unwrap(), "--cost-service", "checkout-api"]));
    assert!(out.contains("Estimated days     2 (not final: 2026-02-03, 2026-02-04)"), "{out}");
}

#[test]
fn cost_explorer_is_detected_by_content_and_a_missing_group_is_a_zero_day() {
    let s = healthy();
    // "Amazon S3" has no group on the last day: that day is 0, not a gap.
    let mut v = serde_json::from_str::<serde_json::Value>(&ce(
        &[("Amazon S3", &[5.0; 14]), ("Amazon Elastic Compute Cloud - Compute", &[20.0; 14])],
        &[],
        "USD",
    ))
    .unwrap();
    v["ResultsByTime"][13]["Groups"] = serde_json::json!([v["ResultsByTime"][13]["Groups"][1].clone()]);
    s.write("data/ce.json", &v.to_string());
    // A provider service is selected with --cost-service and is not compared with the metrics'
    // service (checkout-api): the issue's case, refused before as "two services".
    let (code, v) = gate_json(&s, &["--cost", s.path("data/ce.json").to_str().unwrap(), "--cost-service", "Amazon S3"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["cost"]["daily_costs"][13]["cost"], 0.0);
    assert_eq!(v["cost"]["daily_costs"][12]["cost"], 5.0);
    // The whole file: both services per day.
    let (code, v) = gate_json(&s, &["--cost", s.path("data/ce.json").to_str().unwrap()]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["cost"]["daily_costs"][12]["cost"], 25.0);
    assert_eq!(v["cost"]["daily_costs"][13]["cost"], 20.0);
}

#[test]
fn cost_explorer_duplicate_day_mixed_units_and_paging_are_errors() {
    let s = healthy();
    let mut v: serde_json::Value = serde_json::from_str(&ce(&[("checkout-api", &rising())], &[], "USD")).unwrap();
    v["ResultsByTime"][5]["TimePeriod"] = v["ResultsByTime"][4]["TimePeriod"].clone();
    s.write("data/ce.json", &serde_json::to_string_pretty(&v).unwrap());
    refuses(
        &s,
        &["--cost", s.path("data/ce.json").to_str().unwrap()],
        &["ce.json:", "ResultsByTime[5].TimePeriod.Start", "appears twice (first as ResultsByTime[4])"],
    );

    let mut v: serde_json::Value = serde_json::from_str(&ce(&[("checkout-api", &rising())], &[], "USD")).unwrap();
    v["ResultsByTime"][3]["Groups"][0]["Metrics"]["UnblendedCost"]["Unit"] = "EUR".into();
    s.write("data/ce.json", &v.to_string());
    refuses(&s, &["--cost", s.path("data/ce.json").to_str().unwrap()], &["mixed currencies", "\"EUR\"", "\"USD\""]);

    let mut v: serde_json::Value = serde_json::from_str(&ce(&[("checkout-api", &rising())], &[], "USD")).unwrap();
    v["NextPageToken"] = "abc".into();
    s.write("data/ce.json", &v.to_string());
    refuses(&s, &["--cost", s.path("data/ce.json").to_str().unwrap()], &["NextPageToken", "every page"]);

    let mut v: serde_json::Value = serde_json::from_str(&ce(&[("checkout-api", &rising())], &[], "USD")).unwrap();
    v["ResultsByTime"][2]["Groups"][0]["Metrics"]["UnblendedCost"]["Amount"] = "12,5".into();
    s.write("data/ce.json", &serde_json::to_string_pretty(&v).unwrap());
    refuses(
        &s,
        &["--cost", s.path("data/ce.json").to_str().unwrap()],
        &["ResultsByTime[2].Groups[0].Metrics.UnblendedCost.Amount", "\"12,5\""],
    );
}

const ANOMALY_POLICY: &str = r#"version: "1.0"
policies:
  - id: C1
    name: "Cost anomaly"
    action: BLOCK
    conditions:
      cost_anomaly_score:
        operator: gte
        value: 3.5
    reason: "Newest day's spend is an outlier"
    remediation: "Look at the bill"
default_action:
  action: ALLOW
  reason: "ok"
  remediation: "none"
"#;

#[test]
fn anomaly_score_blocks_through_a_policy_and_records_the_values() {
    let s = healthy();
    s.write("config/anomaly.yaml", ANOMALY_POLICY);
    // 28 days alternating 48/52 then 90 on the newest: median 50, MAD 2 → (90−50)/(1.4826×2) = 13.49.
    let mut costs: Vec<f64> = (0..28).map(|i| if i % 2 == 0 { 48.0 } else { 52.0 }).collect();
    costs.push(90.0);
    s.write("data/cost.json", &cost_with(&costs));
    let (code, v) = gate_json(&s, &["--policies", s.path("config/anomaly.yaml").to_str().unwrap()]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["policy_id"], "C1");
    assert_eq!(v["signals"]["cost_anomaly_score"], 13.49);
    assert_eq!(v["cost"]["anomaly"]["median"], 50.0);
    assert_eq!(v["cost"]["anomaly"]["mad"], 2.0);
    assert_eq!(v["cost"]["anomaly"]["scale_method"], "mad");
    assert_eq!(v["conditions"][0]["signal"], "cost_anomaly_score");

    // A 7-day baseline is configurable: the last 7 days before the newest are 52,48,…
    let (code, v) =
        gate_json(&s, &["--policies", s.path("config/anomaly.yaml").to_str().unwrap(), "--cost-baseline-days", "7"]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["cost"]["anomaly"]["baseline_days"], 7);
    assert_eq!(v["settings"]["cost"]["anomaly_baseline_days"], 7);

    // Flat spend: MAD 0 and mean deviation 0 — a score of 0, not NaN, and ALLOW.
    s.write("data/cost.json", &cost_with(&[50.0; 29]));
    let (code, v) = gate_json(&s, &["--policies", s.path("config/anomaly.yaml").to_str().unwrap()]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["signals"]["cost_anomaly_score"], 0.0);
    assert_eq!(v["cost"]["anomaly"]["scale_method"], "constant_baseline");
}

#[test]
fn anomaly_rule_without_enough_days_cannot_decide() {
    let s = healthy();
    s.write("config/anomaly.yaml", ANOMALY_POLICY);
    // 14 days are fewer than the 28-day baseline needs: the rule cannot be decided.
    s.write("data/cost.json", &cost_with(&[50.0; 14]));
    let (code, out, err) =
        run(s.gate(&["--format", "json", "--policies", s.path("config/anomaly.yaml").to_str().unwrap()]));
    assert_eq!(code, 3, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("cost_anomaly_score"), "{err}");
}

#[test]
fn bad_cost_settings_are_refused() {
    let s = healthy();
    // Bad flag values are usage errors (exit 64), not "cannot decide".
    let (code, _, err) = run(s.gate(&["--cost-format", "xls"]));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--cost-format") && err.contains("unknown cost format"), "{err}");
    let (code, _, err) = run(s.gate(&["--cost-baseline-days", "1"]));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--cost-baseline-days"), "{err}");
}

#[test]
fn forced_format_reads_a_file_without_the_extension() {
    let s = healthy();
    s.write("data/export.txt", &focus(&[("checkout-api", "USD", &rising())]));
    let (code, v) = gate_json(&s, &["--cost", s.path("data/export.txt").to_str().unwrap(), "--cost-format", "focus"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["policy_id"], "P006");
}

#[test]
fn a_decision_from_an_export_replays_identically() {
    let s = healthy();
    let flat = vec![10.0; 14];
    s.write("data/focus.txt", &focus(&[("search", "USD", &flat), ("checkout-api", "USD", &rising())]));
    let csv = s.path("data/focus.txt");
    let (code, v) =
        gate_json(&s, &["--cost", csv.to_str().unwrap(), "--cost-format", "focus", "--cost-service", "checkout-api"]);
    assert_eq!((code, v["policy_id"].as_str()), (0, Some("P006")), "{v}");
    let id = v["audit"]["id"].as_str().unwrap().to_string();
    // The file changes on disk; the record holds its text, the service and the format.
    std::fs::remove_file(&csv).unwrap();
    let mut c = guardrail();
    c.args(["replay", &id, "--format", "json", "--store"]).arg(s.store());
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["identical"], true, "{r}");
    assert_eq!(r["replayed_action"], "WARN");
}

/// A FOCUS CSV with a Tags column: per (provider service, tags JSON or "", daily amounts).
fn focus_tagged(rows: &[(&str, &str, &[f64])]) -> String {
    let mut out = String::from("ChargePeriodStart,ChargePeriodEnd,EffectiveCost,BillingCurrency,ServiceName,Tags\n");
    for (service, tags, costs) in rows {
        for (i, c) in costs.iter().enumerate() {
            let tags = tags.replace('"', "\"\"");
            out.push_str(&format!("{}T00:00:00Z,{}T00:00:00Z,{c},USD,{service},\"{tags}\"\n", day(i), day(i + 1)));
        }
    }
    out
}

const EC2: &str = "Amazon Elastic Compute Cloud";
const S3: &str = "Amazon Simple Storage Service";

/// checkout-api runs on EC2 and S3 (rising 40+10 → 50+12.5), search on EC2 (flat 100).
fn two_apps() -> String {
    focus_tagged(&[
        (EC2, r#"{"app": "checkout-api", "env": "prod"}"#, &[[40.0; 7], [50.0; 7]].concat()),
        (S3, r#"{"app": "checkout-api"}"#, &[[10.0; 7], [12.5; 7]].concat()),
        (EC2, r#"{"app": "search"}"#, &[100.0; 14]),
        (S3, "", &[1.0; 14]),
    ])
}

const BUDGET_POLICY: &str = r#"version: "1.0"
policies:
  - id: B1
    name: "Over budget"
    action: BLOCK
    conditions:
      cost_budget_utilisation_pct:
        operator: gte
        value: 100
    reason: "Monthly budget spent"
    remediation: "Raise the budget or cut spend"
default_action:
  action: ALLOW
  reason: "ok"
  remediation: "none"
"#;

#[test]
fn a_budget_rule_cannot_decide_on_a_billing_export_which_has_no_budget() {
    let s = healthy();
    s.write("config/budget.yaml", BUDGET_POLICY);
    let policies = s.path("config/budget.yaml");
    s.write("data/focus.csv", &focus(&[(EC2, "USD", &[130.0; 14])]));
    s.write("data/ce.json", &ce(&[(EC2, &[130.0; 14])], &[], "USD"));
    for file in ["data/focus.csv", "data/ce.json"] {
        let cost = s.path(file);
        // Before: utilisation 0 %, the rule never fired and the gate said ALLOW (exit 0).
        let err = refuses(
            &s,
            &["--policies", policies.to_str().unwrap(), "--cost", cost.to_str().unwrap()],
            &["cost_budget_utilisation_pct", "no monthly budget"],
        );
        assert!(err.contains("B1"), "names the rule: {err}");
        // `guardrail cost` says the budget is not known, never "of $0.00 monthly budget (0.00%)".
        let mut c = guardrail();
        c.args(["cost", "--root"]).arg(s.root()).arg("--cost").arg(&cost);
        let (code, out, err) = run(c);
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains("of $") && !out.contains("(0.00%)"), "{out}");
        assert!(out.contains("Service            unknown (the cost data names no application; --cost-tag"), "{out}");
        assert!(out.contains("Spend in series    $1820.00") && out.contains("Monthly budget     unavailable"), "{out}");
        let mut c = guardrail();
        c.args(["cost", "--format", "json", "--root"]).arg(s.root()).arg("--cost").arg(&cost);
        let (_, out, _) = run(c);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v["budget_usd"].is_null() && v["budget_utilisation_pct"].is_null(), "{v}");
        assert!(v["budget_unavailable"].as_str().unwrap().contains("no monthly budget"), "{v}");
    }
    // A cost.json without budget_usd_monthly: the same (the seed assumed 0 and said 0 %).
    let mut no_budget: serde_json::Value = serde_json::from_str(&cost_with(&[130.0; 14])).unwrap();
    no_budget.as_object_mut().unwrap().remove("budget_usd_monthly");
    s.write("data/cost.json", &no_budget.to_string());
    refuses(&s, &["--policies", policies.to_str().unwrap()], &["cost_budget_utilisation_pct", "no monthly budget"]);
    // With a budget the rule decides: 1820 of 1500 is 121.33 %.
    s.write("data/cost.json", &cost_with(&[130.0; 14]));
    let (code, v) = gate_json(&s, &["--policies", policies.to_str().unwrap()]);
    assert_eq!((code, v["policy_id"].as_str()), (2, Some("B1")), "{v}");
    assert_eq!(v["signals"]["cost_budget_utilisation_pct"], 121.33);
}

#[test]
fn a_metrics_file_without_service_makes_the_service_signal_unavailable() {
    let s = healthy();
    s.write(
        "config/svc.yaml",
        "version: \"1.0\"\npolicies:\n  - id: S1\n    name: not checkout\n    action: BLOCK\n    conditions:\n      service: {operator: neq, value: checkout-api}\n    reason: r\n    remediation: m\ndefault_action: {action: ALLOW, reason: ok, remediation: none}\n",
    );
    let policies = s.path("config/svc.yaml");
    let (code, v) = gate_json(&s, &["--policies", policies.to_str().unwrap()]);
    assert_eq!((code, v["signals"]["service"].as_str()), (0, Some("checkout-api")), "{v}");
    s.write(
        "data/metrics.json",
        &metrics_with(2_592_000, 500, 300, &[0.5; 24]).replace("\"service\":\"checkout-api\",", ""),
    );
    // Before: "unknown" neq checkout-api → BLOCK on a name nobody gave.
    refuses(&s, &["--policies", policies.to_str().unwrap()], &["service", "the metrics name no service"]);
}

#[test]
fn the_whole_export_is_the_spend_and_a_cost_tag_selects_the_application() {
    let s = healthy();
    s.write("data/focus.csv", &two_apps());
    let csv = s.path("data/focus.csv");
    let csv = csv.to_str().unwrap();
    // Default: every row (151 → 163.5 a day, +8.28 %): stable.
    let (code, v) = gate_json(&s, &["--cost", csv]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["cost"]["previous_week_avg_usd"], 151.0);
    assert_eq!(v["cost"]["current_week_avg_usd"], 163.5);
    assert_eq!(v["cost"]["service"], "unknown");
    // The application's rows over both provider services: 50 → 62.5, +25 %: WARN P006.
    let (code, v) = gate_json(&s, &["--cost", csv, "--cost-tag", "app=checkout-api"]);
    assert_eq!((code, v["policy_id"].as_str()), (0, Some("P006")), "{v}");
    assert_eq!(v["cost"]["previous_week_avg_usd"], 50.0);
    assert_eq!(v["cost"]["current_week_avg_usd"], 62.5);
    assert_eq!(v["cost"]["service"], "checkout-api");
    assert_eq!(v["settings"]["cost_tag"], "app=checkout-api");
    // A provider service alone (the issue's case: refused before, as not the metrics' service).
    let (code, v) = gate_json(&s, &["--cost", csv, "--cost-service", EC2]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["cost"]["previous_week_avg_usd"], 140.0);
    assert_eq!(v["cost"]["service"], "unknown");
    // Tag and provider service together: checkout-api's EC2 rows only (40 → 50).
    let (code, v) = gate_json(&s, &["--cost", csv, "--cost-tag", "app=checkout-api", "--cost-service", EC2]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["cost"]["current_week_avg_usd"], 50.0);
    assert_eq!(v["settings"]["cost_service"], EC2);
    // Through the environment, and the flag over it.
    let mut c = s.gate(&["--format", "json", "--cost", csv]);
    c.env("GUARDRAIL_COST_TAG", "app=checkout-api");
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"cost_tag\": \"app=checkout-api\""), "{out}");
    let mut c = s.gate(&["--format", "json", "--cost", csv, "--cost-tag", "app=checkout-api"]);
    c.env("GUARDRAIL_COST_TAG", "app=search");
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"cost_tag\": \"app=checkout-api\""), "{out}");
    // The tag's value is the application: another service's rows are refused as today.
    refuses(&s, &["--cost", csv, "--cost-tag", "app=search"], &["tagged app=search", "\"search\"", "same service"]);
    // A value or key the file does not have: the error lists what it has.
    refuses(
        &s,
        &["--cost", csv, "--cost-tag", "app=payments"],
        &["focus.csv", "no row tagged app=payments", "\"checkout-api\", \"search\""],
    );
    refuses(&s, &["--cost", csv, "--cost-tag", "team=checkout-api"], &["no row has the tag \"team\""]);
    // Tags that are not a JSON object are an error on their line, when a tag is asked for.
    s.write(
        "data/focus.csv",
        &two_apps().replacen(
            "\"{\"\"app\"\": \"\"checkout-api\"\", \"\"env\"\": \"\"prod\"\"}\"",
            "app=checkout-api",
            1,
        ),
    );
    refuses(&s, &["--cost", csv, "--cost-tag", "app=checkout-api"], &["focus.csv:2:1", "Tags", "JSON object"]);
    let (code, v) = gate_json(&s, &["--cost", csv]);
    assert_eq!(code, 0, "an unused Tags column does not refuse the file: {v}");
}

/// A Cost Explorer response grouped by `defs`, one group per (keys, daily amounts).
fn ce_grouped(defs: serde_json::Value, groups: &[(Vec<&str>, &[f64])]) -> String {
    let results: Vec<serde_json::Value> = (0..14)
        .map(|i| {
            let g: Vec<serde_json::Value> = groups
                .iter()
                .map(|(keys, costs)| serde_json::json!({"Keys": keys, "Metrics": {"UnblendedCost": {"Amount": costs[i].to_string(), "Unit": "USD"}}}))
                .collect();
            serde_json::json!({"TimePeriod": {"Start": day(i).to_string(), "End": day(i + 1).to_string()}, "Total": {}, "Groups": g, "Estimated": false})
        })
        .collect();
    serde_json::json!({"GroupDefinitions": defs, "ResultsByTime": results}).to_string()
}

#[test]
fn cost_explorer_grouped_by_tag_selects_the_application_and_refuses_other_groupings() {
    let s = healthy();
    let rising = rising();
    let by_tag = serde_json::json!([{"Type": "TAG", "Key": "app"}]);
    s.write(
        "data/ce.json",
        &ce_grouped(
            by_tag,
            &[(vec!["app$checkout-api"], &rising), (vec!["app$search"], &[100.0; 14]), (vec!["app$"], &[3.0; 14])],
        ),
    );
    let ce = s.path("data/ce.json");
    let ce = ce.to_str().unwrap();
    let (code, v) = gate_json(&s, &["--cost", ce, "--cost-tag", "app=checkout-api"]);
    assert_eq!((code, v["policy_id"].as_str()), (0, Some("P006")), "{v}");
    assert_eq!(v["cost"]["current_week_avg_usd"], 62.5);
    assert_eq!(v["cost"]["service"], "checkout-api");
    let (code, v) = gate_json(&s, &["--cost", ce]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["cost"]["previous_week_avg_usd"], 153.0);
    refuses(
        &s,
        &["--cost", ce, "--cost-tag", "app=payments"],
        &["no row tagged app=payments", "\"(untagged)\"", "\"search\""],
    );
    // Not grouped by that tag key (or by service): refused, saying how to request it.
    refuses(&s, &["--cost", ce, "--cost-tag", "team=checkout-api"], &["GroupDefinitions", "not", "Type=TAG,Key=team"]);
    refuses(&s, &["--cost", ce, "--cost-service", EC2], &["GroupDefinitions", "Key=SERVICE"]);
    // A response grouped by SERVICE only cannot give the application's rows.
    s.write("data/ce.json", &self::ce(&[(EC2, &rising)], &[], "USD"));
    refuses(
        &s,
        &["--cost", ce, "--cost-tag", "app=checkout-api"],
        &["groups by DIMENSION SERVICE", "Type=TAG,Key=app"],
    );
    // Grouped by tag and service: both selections apply together.
    let both = serde_json::json!([{"Type": "TAG", "Key": "app"}, {"Type": "DIMENSION", "Key": "SERVICE"}]);
    s.write(
        "data/ce.json",
        &ce_grouped(
            both,
            &[
                (vec!["app$checkout-api", EC2], &rising),
                (vec!["app$checkout-api", S3], &[7.0; 14]),
                (vec!["app$search", EC2], &[100.0; 14]),
            ],
        ),
    );
    let (code, v) = gate_json(&s, &["--cost", ce, "--cost-tag", "app=checkout-api", "--cost-service", EC2]);
    assert_eq!((code, v["cost"]["current_week_avg_usd"].as_f64()), (0, Some(62.5)), "{v}");
    let (code, v) = gate_json(&s, &["--cost", ce, "--cost-tag", "app=checkout-api"]);
    assert_eq!((code, v["cost"]["current_week_avg_usd"].as_f64()), (0, Some(69.5)), "{v}");
    // Another dimension than SERVICE is refused, as before.
    s.write(
        "data/ce.json",
        &ce_grouped(serde_json::json!([{"Type": "DIMENSION", "Key": "REGION"}]), &[(vec!["us-east-1"], &rising)]),
    );
    refuses(&s, &["--cost", ce], &["GroupDefinitions[0]", "REGION"]);
}

#[test]
fn a_cost_selection_on_cost_json_is_refused() {
    let s = healthy();
    refuses(&s, &["--cost-tag", "app=checkout-api"], &["cost.json", "billing export", "remove the selection"]);
    refuses(&s, &["--cost-service", EC2], &["cost.json", "provider service", "billing export"]);
}

#[test]
fn bad_cost_tag_values_are_usage_errors_and_record_nothing() {
    let s = healthy();
    for bad in ["novalue", "app=", "=checkout-api", " = "] {
        let (code, out, err) = run(s.gate(&["--cost-tag", bad]));
        assert_eq!(code, 64, "--cost-tag {bad:?}\nstdout: {out}\nstderr: {err}");
        assert!(err.contains("--cost-tag") && err.contains("KEY=VALUE"), "{err}");
    }
    let mut c = s.gate(&[]);
    c.env("GUARDRAIL_COST_TAG", "novalue");
    let (code, _, err) = run(c);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("GUARDRAIL_COST_TAG"), "{err}");
    // Nothing was recorded: the store holds no record at all.
    let mut c = guardrail();
    c.args(["audit", "list", "--format", "json", "--store"]).arg(s.store());
    let (_, out, _) = run(c);
    assert!(!out.contains("deploy_error") && !out.contains("deploy_decision"), "{out}");
}

#[test]
fn a_decision_on_tagged_rows_replays_with_the_same_rows() {
    let s = healthy();
    s.write("data/focus.csv", &two_apps());
    let csv = s.path("data/focus.csv");
    let (code, v) = gate_json(&s, &["--cost", csv.to_str().unwrap(), "--cost-tag", "app=checkout-api"]);
    assert_eq!((code, v["policy_id"].as_str()), (0, Some("P006")), "{v}");
    let id = v["audit"]["id"].as_str().unwrap().to_string();
    std::fs::remove_file(&csv).unwrap();
    let mut c = guardrail();
    c.args(["replay", &id, "--format", "json", "--store"]).arg(s.store());
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["identical"], true, "the recorded tag selects the same rows: {r}");
}

#[test]
fn the_example_focus_export_tagged_decides_like_the_shipped_cost_json() {
    // examples/deploy-gate/data/focus.csv: checkout-api's days of cost.json split over EC2 and
    // S3 rows tagged app=checkout-api, plus search's EC2 rows and untagged support rows.
    let s = Scratch::new();
    let export = examples().join("data/focus.csv");
    let export = export.to_str().unwrap();
    let (code, native) = gate_json(&s, &[]);
    assert_eq!((code, native["policy_id"].as_str()), (1, Some("P005")), "{native}");
    let (code, tagged) = gate_json(&s, &["--cost", export, "--cost-tag", "app=checkout-api"]);
    assert_eq!((code, tagged["policy_id"].as_str()), (1, Some("P005")), "{tagged}");
    for k in ["previous_week_avg_usd", "current_week_avg_usd", "wow_change_pct", "trend", "mtd_spend_usd", "service"] {
        assert_eq!(tagged["cost"][k], native["cost"][k], "{k}");
    }
    // Each day is the sum of its line items in floating point (33.80 + 12.40 is 46.199999999999996).
    let days = |v: &serde_json::Value| -> Vec<f64> {
        v["cost"]["daily_costs"].as_array().unwrap().iter().map(|d| d["cost"].as_f64().unwrap()).collect()
    };
    let (t, n) = (days(&tagged), days(&native));
    assert_eq!(t.len(), n.len());
    assert!(t.iter().zip(&n).all(|(a, b)| (a - b).abs() < 1e-9), "{t:?} vs {n:?}");
    // The export has no budget; cost.json has one.
    assert!(tagged["cost"]["budget_utilisation_pct"].is_null());
    assert_eq!(native["cost"]["budget_utilisation_pct"], 104.91);
    // The whole file is everyone's spend.
    let (code, all) = gate_json(&s, &["--cost", export]);
    assert_eq!(code, 1, "{all}");
    assert_eq!(all["cost"]["mtd_spend_usd"], 2625.1);
}
