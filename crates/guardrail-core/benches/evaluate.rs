//! In-process cost of one deploy decision on the seed's shipped data: SLO maths, cost analysis,
//! policy validation and first-match evaluation (file reading and parsing are measured by the
//! whole-process benchmark in scripts/bench).

use criterion::{Criterion, criterion_group, criterion_main};
use guardrail_core::cost::{self, CostSeries, CostThresholds, DailyCost};
use guardrail_core::policy::{self, Action, Condition, Operator, Policy, PolicySet, Scalar, Threshold};
use guardrail_core::pyround::PyNumber;
use guardrail_core::signals::Signals;
use guardrail_core::slo::{self, BurnThresholds, CountLiterals, MetricsSnapshot, Num, SloSpec};
use std::hint::black_box;

fn shipped() -> (SloSpec, MetricsSnapshot, CostSeries, PolicySet) {
    let spec = SloSpec {
        availability_target_pct: Num::float(99.9),
        p95_threshold_ms: Num::int(500),
        p99_threshold_ms: Some(Num::int(1000)),
        burn: BurnThresholds::default(),
    };
    let metrics = MetricsSnapshot {
        service: "checkout-api".into(),
        total_requests: 2_592_000,
        failed_requests: 2100,
        latency_p95_ms: Num::int(480),
        latency_p99_ms: Some(Num::int(890)),
        hourly_burn_rate: vec![
            0.8, 0.9, 1.0, 1.1, 0.9, 0.8, 1.2, 1.4, 1.8, 2.4, 3.1, 2.8, 2.5, 2.1, 1.9, 1.7, 1.5, 1.4, 1.2, 1.1, 1.0,
            0.9, 0.8, 0.9,
        ]
        .into_iter()
        .map(PyNumber::Float)
        .collect(),
        collected_at: None,
        count_literals: CountLiterals::default(),
    };
    let start = jiff::civil::date(2026, 1, 22);
    let cost = CostSeries {
        service: "checkout-api".into(),
        currency: "USD".into(),
        budget_usd_monthly: Some(1500.0),
        daily: (0..30)
            .map(|i| DailyCost {
                date: start.checked_add(jiff::Span::new().days(i)).unwrap_or(start),
                cost: 44.0 + (i as f64) * 0.5,
            })
            .collect(),
        cost_breakdown: serde_json::json!({}),
        collected_at: None,
        estimated_days: vec![],
    };
    let num = |n: f64| Threshold::Scalar(Scalar::Number(n));
    let hot = || Threshold::List(vec![Scalar::Text("high".into()), Scalar::Text("critical".into())]);
    let c = |s: &str, op: Operator, v: Threshold| Condition { signal: s.into(), operator: op, value: v };
    let p = |id: &str, prio: i64, action: Action, conditions: Vec<Condition>| Policy {
        id: id.into(),
        name: id.into(),
        priority: prio,
        action,
        conditions,
        reason: "r".into(),
        remediation: "m".into(),
        delay_minutes: if action == Action::Delay { 15 } else { 0 },
    };
    let set = PolicySet {
        version: None,
        description: None,
        default_action: None,
        policies: vec![
            p("P001", 1, Action::Block, vec![c("error_budget_pct", Operator::Lt, num(10.0))]),
            p(
                "P002",
                2,
                Action::Block,
                vec![c("error_budget_pct", Operator::Lt, num(20.0)), c("burn_rate", Operator::In, hot())],
            ),
            p(
                "P003",
                3,
                Action::Block,
                vec![c("cost_spike_pct", Operator::Gte, num(30.0)), c("burn_rate", Operator::In, hot())],
            ),
            p("P004", 4, Action::Delay, vec![c("burn_rate", Operator::In, hot())]),
            p("P005", 5, Action::Delay, vec![c("error_budget_pct", Operator::Lt, num(30.0))]),
            p("P006", 6, Action::Warn, vec![c("cost_spike_pct", Operator::Gte, num(20.0))]),
            p(
                "P007",
                7,
                Action::Delay,
                vec![c("latency_compliant", Operator::Eq, Threshold::Scalar(Scalar::Bool(false)))],
            ),
            p("P008", 99, Action::Allow, vec![]),
        ],
    };
    (spec, metrics, cost, set)
}

fn bench(c: &mut Criterion) {
    let (spec, metrics, series, set) = shipped();
    c.bench_function("decision (slo + cost + check + evaluate), shipped data", |b| {
        b.iter(|| {
            let s = slo::evaluate(black_box(&spec), black_box(&metrics)).ok();
            let k = cost::analyse(black_box(&series), &CostThresholds::default()).ok();
            match (s, k) {
                (Some(s), Some(k)) => policy::evaluate(black_box(&set), &Signals::from_reports(&s, &k)).ok(),
                _ => None,
            }
        })
    });
    c.bench_function("policy check (lint incl. shadowing), 8 rules", |b| b.iter(|| policy::check(black_box(&set))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
