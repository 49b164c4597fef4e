//! Cost from billing exports through the real binary: FOCUS 1.x CSV and AWS Cost Explorer
//! JSON, service selection, mixed currencies, duplicate days and gaps, estimated days, and the
//! robust anomaly score as a policy signal.

mod common;
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
fn focus_csv_with_service_selection_decides_like_cost_json() {
    let s = healthy();
    let flat = vec![10.0; 14];
    s.write("data/focus.csv", &focus(&[("search", "USD", &flat), ("checkout-api", "USD", &rising())]));
    let (code, v) = gate_json(&s, &["--cost", s.path("data/focus.csv").to_str().unwrap(), "--service", "checkout-api"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["action"], "WARN");
    assert_eq!(v["policy_id"], "P006");
    assert_eq!(v["cost"]["service"], "checkout-api");
    // EffectiveCost is preferred over BilledCost (which is twice as large in the fixture).
    assert_eq!(v["cost"]["previous_week_avg_usd"], 50.0);
    assert_eq!(v["cost"]["current_week_avg_usd"], 62.5);
    assert_eq!(v["cost"]["wow_change_pct"], 25.0);
    assert_eq!(v["cost"]["details"]["currency"], "USD");
    assert_eq!(v["settings"]["service"], "checkout-api");
    // The same through the environment variable.
    let mut c = s.gate(&["--format", "json", "--cost", s.path("data/focus.csv").to_str().unwrap()]);
    c.env("GUARDRAIL_SERVICE", "checkout-api");
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"P006\""));
}

#[test]
fn focus_csv_with_several_services_needs_a_selection() {
    let s = healthy();
    let flat = vec![10.0; 14];
    s.write("data/focus.csv", &focus(&[("search", "USD", &flat), ("checkout-api", "USD", &rising())]));
    let csv = s.path("data/focus.csv");
    let err = refuses(&s, &["--cost", csv.to_str().unwrap()], &["focus.csv", "ServiceName", "--service"]);
    assert!(err.contains("\"checkout-api\", \"search\""), "lists the services: {err}");
    refuses(
        &s,
        &["--cost", csv.to_str().unwrap(), "--service", "payments"],
        &["no service \"payments\"", "\"search\""],
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
    let (code, v) = gate_json(&s, &["--cost", s.path("data/ce.json").to_str().unwrap(), "--service", "checkout-api"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["action"], "WARN", "the spike on estimated days is not dropped: {v}");
    assert_eq!(v["cost"]["estimated_days"], serde_json::json!(["2026-02-03", "2026-02-04"]));
    assert_eq!(v["signals"]["cost_has_estimated_days"], true);
    // (50×5 + 100×2)/7 vs 50 → +28.57 %.
    assert_eq!(v["cost"]["wow_change_pct"], 28.57);
    // The text report flags them too.
    let (_, out, _) = run(s.gate(&["--cost", s.path("data/ce.json").to_str().unwrap(), "--service", "checkout-api"]));
    assert!(out.contains("Estimated days     2 (not final: 2026-02-03, 2026-02-04)"), "{out}");
}

#[test]
fn cost_explorer_is_detected_by_content_and_a_missing_group_is_a_zero_day() {
    let s = healthy();
    // "Amazon S3" has no group on the last day: that day is 0, not a gap.
    let mut v = serde_json::from_str::<serde_json::Value>(&ce(&[("Amazon S3", &[5.0; 14])], &[], "USD")).unwrap();
    v["ResultsByTime"][13]["Groups"] = serde_json::json!([]);
    s.write("data/ce.json", &v.to_string());
    let (code, out, err) = run(s.gate(&[
        "--format",
        "json",
        "--cost",
        s.path("data/ce.json").to_str().unwrap(),
        "--service",
        "Amazon S3",
    ]));
    // The metrics are checkout-api's, the cost Amazon S3's: refused as two services.
    assert_eq!(code, 3, "{out}");
    assert!(err.contains("\"Amazon S3\"") && err.contains("same service"), "{err}");
    // Seen as Amazon S3's metrics, it decides; the day without a group is a day of 0 spend.
    s.write("data/metrics.json", &metrics_with(2_592_000, 500, 300, &[0.5; 24]).replace("checkout-api", "Amazon S3"));
    let (code, v) = gate_json(&s, &["--cost", s.path("data/ce.json").to_str().unwrap(), "--service", "Amazon S3"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["cost"]["daily_costs"][13]["cost"], 0.0);
    assert_eq!(v["cost"]["daily_costs"][12]["cost"], 5.0);
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
        gate_json(&s, &["--cost", csv.to_str().unwrap(), "--cost-format", "focus", "--service", "checkout-api"]);
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
