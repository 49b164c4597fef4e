//! Parity with the seed tool: every vector of reference note §3.2, computed by the Python
//! original. Vectors for inputs Guardrail refuses on purpose (zero traffic, failures above
//! total, negative counts, empty burn series, cost series shorter than 14 days, a zero or
//! negative prior week) are asserted to be refused, with the field named.

#![allow(clippy::type_complexity)]

use guardrail_core::cost::{self, CostSeries, CostThresholds, CostTrend, DailyCost};
use guardrail_core::policy::{self, Action, Condition, Operator, Policy, PolicySet, Scalar, Threshold};
use guardrail_core::pyround::PyNumber;
use guardrail_core::signals::{SignalValue, Signals};
use guardrail_core::slo::{
    self, BurnLabel, BurnThresholds, CountLiteral, CountLiterals, MetricsSnapshot, Num, SloSpec,
};

fn spec(target: f64) -> SloSpec {
    SloSpec {
        availability_target_pct: Num::float(target),
        p95_threshold_ms: Num::int(500),
        p99_threshold_ms: None,
        burn: BurnThresholds::default(),
    }
}

fn metrics(total: u64, failed: u64, burn: Vec<f64>) -> MetricsSnapshot {
    MetricsSnapshot {
        service: "checkout-api".into(),
        total_requests: total,
        failed_requests: failed,
        latency_p95_ms: Num::int(480),
        latency_p99_ms: Some(Num::int(890)),
        hourly_burn_rate: burn.into_iter().map(PyNumber::Float).collect(),
        collected_at: None,
        count_literals: CountLiterals::default(),
    }
}

#[test]
fn error_budget_vectors() {
    // (total, failed, target, availability, budget, compliant)
    let rows: &[(u64, u64, f64, f64, f64, bool)] = &[
        (2592000, 2100, 99.9, 99.918981, 18.98, true),
        (5000000, 1200, 99.9, 99.976, 76.0, true),
        (2000000, 800, 99.9, 99.96, 60.0, true),
        (1000000, 950, 99.9, 99.905, 5.0, true),
        (2592000, 500, 99.9, 99.98071, 80.71, true),
        (1000000, 999, 99.9, 99.9001, 0.1, true),
        (1000000, 1000, 99.9, 99.9, 0.0, true),
        (1000, 1, 99.9, 99.9, 0.0, true),
        (1000, 2, 99.9, 99.8, 0.0, false),
        (1000, 10, 99.0, 99.0, 0.0, true),
        (1000, 0, 100.0, 100.0, 100.0, true),
        (1000, 1, 100.0, 99.9, 0.0, false),
    ];
    for &(total, failed, target, avail, budget, compliant) in rows {
        let r = slo::evaluate(&spec(target), &metrics(total, failed, vec![1.0; 24])).unwrap();
        assert_eq!(r.availability_pct, avail, "availability for {total}/{failed}@{target}");
        assert_eq!(r.error_budget_pct, budget, "budget for {total}/{failed}@{target}");
        assert_eq!(r.availability_compliant, compliant, "compliance for {total}/{failed}@{target}");
    }
}

/// Issue 10, item 3: above 2^53 the counts must be divided as Python divides them. The
/// seed (ints, exact true division) says 99.929994 % and a 29.99 % budget (DELAY, P005);
/// dividing the counts as f64 gave 99.929995 % and 30.0 % (ALLOW). Written as floats, the
/// seed computes in floats and does get 30.0: each form is followed.
#[test]
fn counts_above_2_pow_53_are_divided_as_python_divides_them() {
    let (total, failed) = (76_375_555_000_000_000, 53_467_089_155_525);
    let r = slo::evaluate(&spec(99.9), &metrics(total, failed, vec![1.0])).unwrap();
    assert_eq!(r.availability_pct, 99.929994);
    assert_eq!(r.error_budget_pct, 29.99);
    for literals in [
        CountLiterals { total: CountLiteral::Float, failed: CountLiteral::Integer },
        CountLiterals { total: CountLiteral::Integer, failed: CountLiteral::Float },
        CountLiterals { total: CountLiteral::Float, failed: CountLiteral::Float },
    ] {
        let m = MetricsSnapshot { count_literals: literals, ..metrics(total, failed, vec![1.0]) };
        let r = slo::evaluate(&spec(99.9), &m).unwrap();
        assert_eq!((r.availability_pct, r.error_budget_pct), (99.929995, 30.0), "{literals:?}");
    }
    // Up to i64::MAX, exactly: 1 failure in 2^63 - 1 requests.
    assert_eq!(slo::availability_pct(i64::MAX as u64, 1), 100.0);
    assert_eq!(slo::availability_pct(i64::MAX as u64, i64::MAX as u64 / 2), 50.0);
}

/// Issue 10, item 4: the seed runs on Python 3.12, whose `sum()` of floats is compensated.
/// 3.11's left-to-right sum gave 14.999999999999998 / 3 = 4.999999999999999 ("medium").
#[test]
fn burn_means_use_python_3_12_sum() {
    let r = slo::evaluate(&spec(99.9), &metrics(1_000_000, 100, vec![6.35, 6.05, 2.6])).unwrap();
    assert_eq!(r.burn_rate, BurnLabel::High);
    assert_eq!(r.burn_rate_value, 5.0);
    // Ints stay ints: [4, 5, 6] sums to the int 15, divided exactly.
    let m = MetricsSnapshot {
        hourly_burn_rate: vec![PyNumber::Int(4), PyNumber::Int(5), PyNumber::Int(6)],
        ..metrics(1_000_000, 100, vec![])
    };
    let r = slo::evaluate(&spec(99.9), &m).unwrap();
    assert_eq!((r.burn_rate, r.burn_rate_value), (BurnLabel::High, 5.0));
}

#[test]
fn impossible_counts_are_refused_not_defaulted() {
    // The seed answered 100 % for zero traffic, 0 % for failures above total.
    let e = slo::evaluate(&spec(99.9), &metrics(0, 0, vec![1.0])).unwrap_err();
    assert_eq!(e.field, "total_requests");
    let e = slo::evaluate(&spec(99.9), &metrics(0, 5, vec![1.0])).unwrap_err();
    assert_eq!(e.field, "total_requests");
    let e = slo::evaluate(&spec(99.9), &metrics(100, 200, vec![1.0])).unwrap_err();
    assert_eq!(e.field, "failed_requests");
    let e = slo::evaluate(&spec(99.9), &metrics(100, 1, vec![])).unwrap_err();
    assert_eq!(e.field, "hourly_burn_rate");
    let e = slo::evaluate(&spec(99.9), &metrics(100, 1, vec![1.0, f64::NAN])).unwrap_err();
    assert_eq!(e.field, "hourly_burn_rate[1]");
    let e = slo::evaluate(&spec(99.9), &metrics(100, 1, vec![-20.0; 3])).unwrap_err();
    assert_eq!(e.field, "hourly_burn_rate[0]");
}

#[test]
fn burn_label_vectors() {
    let shipped = vec![
        0.8, 0.9, 1.0, 1.1, 0.9, 0.8, 1.2, 1.4, 1.8, 2.4, 3.1, 2.8, 2.5, 2.1, 1.9, 1.7, 1.5, 1.4, 1.2, 1.1, 1.0, 0.9,
        0.8, 0.9,
    ];
    let rows: Vec<(Vec<f64>, f64, f64, BurnLabel)> = vec![
        (vec![1.0; 24], 1.0, 1.0, BurnLabel::Low),
        (vec![1.99; 3], 1.99, 1.99, BurnLabel::Low),
        (vec![2.0; 3], 2.0, 2.0, BurnLabel::Medium),
        (vec![4.99, 5.0, 5.01], 5.0, 5.0, BurnLabel::High),
        (vec![9.99; 3], 9.99, 9.99, BurnLabel::High),
        (vec![10.0; 3], 10.0, 10.0, BurnLabel::Critical),
        (vec![9.5, 10.0, 10.5], 10.0, 10.0, BurnLabel::Critical),
        (vec![100.0, 0.0, 0.0, 0.0], 0.0, 25.0, BurnLabel::Low),
        (vec![7.0], 7.0, 7.0, BurnLabel::High),
        (vec![4.0, 6.0], 5.0, 5.0, BurnLabel::High),
        (vec![3.3, 3.3, 3.4], 3.33, 3.33, BurnLabel::Medium),
        (vec![1.005; 3], 1.0, 1.0, BurnLabel::Low),
        (shipped, 0.87, 1.47, BurnLabel::Low),
    ];
    for (burn, value, avg, label) in rows {
        let r = slo::evaluate(&spec(99.9), &metrics(2592000, 2100, burn.clone())).unwrap();
        assert_eq!(r.burn_rate_value, value, "{burn:?}");
        assert_eq!(r.details.avg_burn_rate, avg, "{burn:?}");
        assert_eq!(r.burn_rate, label, "{burn:?}");
    }
}

#[test]
fn shipped_slo_report_serialises_like_the_seed() {
    let shipped = vec![
        0.8, 0.9, 1.0, 1.1, 0.9, 0.8, 1.2, 1.4, 1.8, 2.4, 3.1, 2.8, 2.5, 2.1, 1.9, 1.7, 1.5, 1.4, 1.2, 1.1, 1.0, 0.9,
        0.8, 0.9,
    ];
    let r = slo::evaluate(&spec(99.9), &metrics(2592000, 2100, shipped)).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    // The seed's /api/slo body (reference §4.4), key for key.
    let expected = serde_json::json!({"availability_compliant":true,"availability_pct":99.918981,"burn_rate":"low","burn_rate_value":0.87,"details":{"availability_target_pct":99.9,"avg_burn_rate":1.47,"failed_requests":2100,"hourly_burn_rates":[0.8,0.9,1.0,1.1,0.9,0.8,1.2,1.4,1.8,2.4,3.1,2.8,2.5,2.1,1.9,1.7,1.5,1.4,1.2,1.1,1.0,0.9,0.8,0.9],"latency_target_p95_ms":500,"recent_burn_rate":0.87,"service":"checkout-api","total_requests":2592000},"error_budget_pct":18.98,"healthy":false,"latency_compliant":true,"latency_p95_ms":480,"latency_p99_ms":890});
    assert_eq!(v, expected);
}

fn series(costs: &[f64]) -> CostSeries {
    let start = jiff::civil::date(2026, 1, 22);
    CostSeries {
        service: "checkout-api".into(),
        currency: "USD".into(),
        budget_usd_monthly: Some(1500.0),
        daily: costs
            .iter()
            .enumerate()
            .map(|(i, c)| DailyCost { date: start.checked_add(jiff::Span::new().days(i as i64)).unwrap(), cost: *c })
            .collect(),
        cost_breakdown: serde_json::json!({}),
        collected_at: None,
        estimated_days: vec![],
    }
}

fn rep(v: f64, n: usize) -> Vec<f64> {
    vec![v; n]
}

#[test]
fn cost_vectors() {
    let shipped = [
        44.20, 45.10, 44.80, 45.50, 46.00, 45.80, 46.20, 46.50, 47.30, 47.80, 48.10, 48.90, 49.20, 50.10, 51.30, 52.40,
        53.10, 54.80, 56.20, 57.90, 58.40, 58.90, 59.20, 58.80, 58.50, 58.10, 58.30, 58.00,
    ];
    let _ = shipped; // the real shipped file is covered by the CLI parity tests
    let cat = |a: Vec<f64>, b: Vec<f64>| [a, b].concat();
    // (series, prev, curr, wow, trend, spike, mtd, util)
    let rows: Vec<(Vec<f64>, f64, f64, f64, CostTrend, bool, f64, f64)> = vec![
        (cat(rep(50.0, 7), rep(60.0, 7)), 50.0, 60.0, 20.0, CostTrend::Rising, true, 770.0, 51.33),
        (cat(rep(50.0, 7), rep(65.0, 7)), 50.0, 65.0, 30.0, CostTrend::Spiking, true, 805.0, 53.67),
        (cat(rep(50.0, 7), rep(64.99, 7)), 50.0, 64.99, 29.98, CostTrend::Rising, true, 804.93, 53.66),
        (cat(rep(50.0, 7), rep(59.99, 7)), 50.0, 59.99, 19.98, CostTrend::Stable, false, 769.93, 51.33),
        (cat(rep(50.0, 7), rep(57.5, 7)), 50.0, 57.5, 15.0, CostTrend::Stable, false, 752.5, 50.17),
        (cat(rep(50.0, 7), rep(45.0, 7)), 50.0, 45.0, -10.0, CostTrend::Falling, false, 665.0, 44.33),
        (cat(rep(50.0, 7), rep(45.01, 7)), 50.0, 45.01, -9.98, CostTrend::Stable, false, 665.07, 44.34),
        (cat(cat(rep(10.0, 16), rep(20.0, 7)), rep(30.0, 7)), 20.0, 30.0, 50.0, CostTrend::Spiking, true, 510.0, 34.0),
        // tests/conftest.py builders: 45.0 + 0.1·i, and the spike variant.
        ((0..30).map(|i| 45.0 + 0.1 * i as f64).collect(), 46.9, 47.6, 1.49, CostTrend::Stable, false, 1393.5, 92.9),
        (
            (0..30).map(|i| if i >= 21 { 45.0 * 1.4 + 0.5 * i as f64 } else { 45.0 + 0.1 * i as f64 }).collect(),
            54.5,
            76.0,
            39.45,
            CostTrend::Spiking,
            true,
            1645.5,
            109.7,
        ),
    ];
    for (costs, prev, curr, wow, trend, spike, mtd, util) in rows {
        let r = cost::analyse(&series(&costs), &CostThresholds::default()).unwrap();
        assert_eq!(r.previous_week_avg_usd, prev, "{costs:?}");
        assert_eq!(r.current_week_avg_usd, curr, "{costs:?}");
        assert_eq!(r.wow_change_pct, wow, "{costs:?}");
        assert_eq!(r.trend, trend, "{costs:?}");
        assert_eq!(r.spike_detected, spike, "{costs:?}");
        assert_eq!(r.mtd_spend_usd, mtd, "{costs:?}");
        assert_eq!(r.budget_utilisation_pct, Some(util), "{costs:?}");
    }
}

#[test]
fn cost_series_the_seed_mishandled_are_refused() {
    let t = CostThresholds::default();
    let cat = |a: Vec<f64>, b: Vec<f64>| [a, b].concat();
    // Overlapping windows under 14 records, single record, empty series.
    for costs in [(1..=10).map(f64::from).collect::<Vec<_>>(), (1..=6).map(f64::from).collect(), vec![5.0], vec![]] {
        let e = cost::analyse(&series(&costs), &t).unwrap_err();
        assert_eq!(e.field, "daily_costs", "{costs:?}: {e}");
    }
    // A zero prior week hid a spike; a negative one too.
    let e = cost::analyse(&series(&cat(rep(0.0, 7), rep(100.0, 7))), &t).unwrap_err();
    assert!(e.reason.contains("undefined"), "{e}");
    let e = cost::analyse(&series(&cat(rep(-50.0, 7), rep(500.0, 7))), &t).unwrap_err();
    assert_eq!(e.field, "daily_costs[0].cost");
    // Gaps and duplicates.
    let mut s = series(&rep(50.0, 20));
    s.daily.remove(10);
    assert!(cost::analyse(&s, &t).unwrap_err().reason.contains("gap"));
    let mut s = series(&rep(50.0, 20));
    s.daily[5].date = s.daily[4].date;
    assert!(cost::analyse(&s, &t).unwrap_err().reason.contains("more than once"));
}

#[test]
fn cost_dates_sort_as_dates_not_strings() {
    // Records given newest first must give the same answer as oldest first.
    let costs: Vec<f64> = [rep(50.0, 7), rep(60.0, 7)].concat();
    let mut s = series(&costs);
    s.daily.reverse();
    let r = cost::analyse(&s, &CostThresholds::default()).unwrap();
    assert_eq!(r.wow_change_pct, 20.0);
}

pub fn shipped_policies() -> PolicySet {
    let num = |n: f64| Threshold::Scalar(Scalar::Number(n));
    let hot = Threshold::List(vec![Scalar::Text("high".into()), Scalar::Text("critical".into())]);
    let c = |s: &str, op: Operator, v: Threshold| Condition { signal: s.into(), operator: op, value: v };
    let p = |id: &str, prio: i64, action: Action, conditions: Vec<Condition>, delay: u32| Policy {
        id: id.into(),
        name: format!("{id} name"),
        priority: prio,
        action,
        conditions,
        reason: format!("{id} reason"),
        remediation: format!("{id} remediation"),
        delay_minutes: delay,
    };
    PolicySet {
        version: Some("1.0".into()),
        description: None,
        default_action: None,
        policies: vec![
            p("P001", 1, Action::Block, vec![c("error_budget_pct", Operator::Lt, num(10.0))], 0),
            p(
                "P002",
                2,
                Action::Block,
                vec![c("error_budget_pct", Operator::Lt, num(20.0)), c("burn_rate", Operator::In, hot.clone())],
                0,
            ),
            p(
                "P003",
                3,
                Action::Block,
                vec![c("cost_spike_pct", Operator::Gte, num(30.0)), c("burn_rate", Operator::In, hot.clone())],
                0,
            ),
            p("P004", 4, Action::Delay, vec![c("burn_rate", Operator::In, hot)], 30),
            p("P005", 5, Action::Delay, vec![c("error_budget_pct", Operator::Lt, num(30.0))], 15),
            p("P006", 6, Action::Warn, vec![c("cost_spike_pct", Operator::Gte, num(20.0))], 0),
            p(
                "P007",
                7,
                Action::Delay,
                vec![c("latency_compliant", Operator::Eq, Threshold::Scalar(Scalar::Bool(false)))],
                20,
            ),
            p("P008", 99, Action::Allow, vec![], 0),
        ],
    }
}

fn signals(budget: f64, burn: &str, cost: f64, latency_ok: bool) -> Signals {
    let mut s = Signals::default();
    s.set("error_budget_pct", SignalValue::Number(budget));
    s.set("burn_rate", SignalValue::Text(burn.into()));
    s.set("cost_spike_pct", SignalValue::Number(cost));
    s.set("latency_compliant", SignalValue::Bool(latency_ok));
    s
}

#[test]
fn shipped_policies_are_clean() {
    let issues = policy::check(&shipped_policies());
    assert!(!policy::has_errors(&issues), "{issues:?}");
}

#[test]
fn policy_selection_vectors() {
    use Action::*;
    #[rustfmt::skip]
    let rows: &[(f64, &str, f64, bool, &str, Action, u32, &[&str])] = &[
        (60.0, "low", 5.0, true, "P008", Allow, 0, &["P008"]),
        (60.0, "low", 22.0, true, "P006", Warn, 0, &["P006", "P008"]),
        (40.0, "high", 5.0, true, "P004", Delay, 30, &["P004", "P008"]),
        (60.0, "low", 5.0, false, "P007", Delay, 20, &["P007", "P008"]),
        (5.0, "critical", 5.0, true, "P001", Block, 0, &["P001", "P002", "P004", "P005", "P008"]),
        (18.0, "high", 35.0, true, "P002", Block, 0, &["P002", "P003", "P004", "P005", "P006", "P008"]),
        (10.0, "low", 0.0, true, "P005", Delay, 15, &["P005", "P008"]),
        (9.99, "low", 0.0, true, "P001", Block, 0, &["P001", "P005", "P008"]),
        (0.0, "low", 0.0, true, "P001", Block, 0, &["P001", "P005", "P008"]),
        (19.99, "high", 0.0, true, "P002", Block, 0, &["P002", "P004", "P005", "P008"]),
        (20.0, "high", 0.0, true, "P004", Delay, 30, &["P004", "P005", "P008"]),
        (19.99, "critical", 0.0, true, "P002", Block, 0, &["P002", "P004", "P005", "P008"]),
        (19.99, "medium", 0.0, true, "P005", Delay, 15, &["P005", "P008"]),
        (50.0, "high", 30.0, true, "P003", Block, 0, &["P003", "P004", "P006", "P008"]),
        (50.0, "high", 29.99, true, "P004", Delay, 30, &["P004", "P006", "P008"]),
        (50.0, "critical", 100.0, true, "P003", Block, 0, &["P003", "P004", "P006", "P008"]),
        (29.99, "low", 50.0, true, "P005", Delay, 15, &["P005", "P006", "P008"]),
        (30.0, "low", 0.0, true, "P008", Allow, 0, &["P008"]),
        (30.0, "low", 20.0, true, "P006", Warn, 0, &["P006", "P008"]),
        (30.0, "low", 19.99, true, "P008", Allow, 0, &["P008"]),
        (50.0, "low", 25.0, false, "P006", Warn, 0, &["P006", "P007", "P008"]),
        (50.0, "medium", 0.0, false, "P007", Delay, 20, &["P007", "P008"]),
        (50.0, "medium", 0.0, true, "P008", Allow, 0, &["P008"]),
        (100.0, "low", -50.0, true, "P008", Allow, 0, &["P008"]),
        (18.98, "low", -0.63, true, "P005", Delay, 15, &["P005", "P008"]),
        (76.0, "low", -0.63, true, "P008", Allow, 0, &["P008"]),
        (60.0, "low", -0.63, true, "P008", Allow, 0, &["P008"]),
        (5.0, "critical", -0.63, false, "P001", Block, 0, &["P001", "P002", "P004", "P005", "P007", "P008"]),
    ];
    let set = shipped_policies();
    for &(budget, burn, cost, lat, id, action, delay, matching) in rows {
        let d = policy::evaluate(&set, &signals(budget, burn, cost, lat)).unwrap();
        let ctx = format!("{budget} {burn} {cost} {lat}");
        assert_eq!(d.policy_id, id, "{ctx}");
        assert_eq!(d.action, action, "{ctx}");
        assert_eq!(d.delay_minutes, delay, "{ctx}");
        let matched: Vec<&str> = d.trace.iter().filter(|t| t.matched).map(|t| t.id.as_str()).collect();
        assert_eq!(matched, matching, "{ctx}");
        assert_eq!(d.trace.iter().filter(|t| t.winner).count(), 1);
        assert_eq!(d.counterfactual.is_empty(), action == Allow, "{ctx}");
    }
}

#[test]
fn counterfactual_names_the_threshold_and_the_value() {
    let d = policy::evaluate(&shipped_policies(), &signals(18.98, "low", -0.63, true)).unwrap();
    assert_eq!(d.counterfactual_summary().as_deref(), Some("ALLOW needs error_budget_pct >= 30; now 18.98"));
}
