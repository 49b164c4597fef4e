//! Properties of the SLO maths and the policy evaluation over generated inputs.

use guardrail_core::cost::{self, CostSeries, CostThresholds, DailyCost};
use guardrail_core::pyround::PyNumber;
use guardrail_core::slo::{self, BurnThresholds, CountLiterals, MetricsSnapshot, Num, SloSpec};
use proptest::prelude::*;

fn spec(target: f64) -> SloSpec {
    SloSpec {
        availability_target_pct: Num::float(target),
        p95_threshold_ms: Num::int(500),
        p99_threshold_ms: None,
        burn: BurnThresholds::default(),
    }
}

fn snapshot(total: u64, failed: u64, burn: Vec<f64>) -> MetricsSnapshot {
    MetricsSnapshot {
        service: "svc".into(),
        total_requests: total,
        failed_requests: failed,
        latency_p95_ms: Num::int(100),
        latency_p99_ms: None,
        hourly_burn_rate: burn.into_iter().map(PyNumber::Float).collect(),
        collected_at: None,
        count_literals: CountLiterals::default(),
    }
}

proptest! {
    #[test]
    fn budget_is_a_percentage_for_valid_inputs(
        total in 1u64..10_000_000_000,
        failed_frac in 0.0f64..=1.0,
        target in prop_oneof![Just(99.9), Just(99.0), Just(99.99), Just(100.0), 50.0f64..100.0],
        burn in prop::collection::vec(0.0f64..1000.0, 1..48),
    ) {
        let failed = ((total as f64) * failed_frac) as u64;
        let r = slo::evaluate(&spec(target), &snapshot(total, failed.min(total), burn)).unwrap();
        prop_assert!((0.0..=100.0).contains(&r.error_budget_pct), "budget {}", r.error_budget_pct);
        prop_assert!((0.0..=100.0).contains(&r.availability_pct), "availability {}", r.availability_pct);
        prop_assert!(r.burn_rate_value >= 0.0);
    }

    #[test]
    fn budget_never_grows_with_more_failures(
        total in 1u64..1_000_000_000,
        a in 0.0f64..=1.0,
        b in 0.0f64..=1.0,
        target in prop_oneof![Just(99.9), Just(99.0), 90.0f64..100.0],
    ) {
        let fa = ((total as f64) * a.min(b)) as u64;
        let fb = ((total as f64) * a.max(b)) as u64;
        let ra = slo::evaluate(&spec(target), &snapshot(total, fa, vec![1.0])).unwrap();
        let rb = slo::evaluate(&spec(target), &snapshot(total, fb, vec![1.0])).unwrap();
        prop_assert!(rb.error_budget_pct <= ra.error_budget_pct, "{fa} → {}, {fb} → {}", ra.error_budget_pct, rb.error_budget_pct);
        prop_assert!(rb.availability_pct <= ra.availability_pct);
    }

    #[test]
    fn burn_label_is_monotone(x in 0.0f64..100.0, y in 0.0f64..100.0) {
        let t = BurnThresholds::default();
        let (lo, hi) = (x.min(y), x.max(y));
        prop_assert!(slo::burn_label(lo, &t) as u8 <= slo::burn_label(hi, &t) as u8);
    }

    #[test]
    fn cost_order_of_records_does_not_matter(costs in prop::collection::vec(1.0f64..1000.0, 14..60), seed in any::<u64>()) {
        let start = jiff::civil::date(2026, 1, 1);
        let daily: Vec<DailyCost> = costs.iter().enumerate().map(|(i, c)| DailyCost {
            date: start.checked_add(jiff::Span::new().days(i as i64)).unwrap(),
            cost: *c,
        }).collect();
        let mut shuffled = daily.clone();
        // A deterministic permutation from the seed.
        let n = shuffled.len();
        for i in 0..n {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % n as u64) as usize;
            shuffled.swap(i, j);
        }
        let mk = |d: Vec<DailyCost>| CostSeries { service: "s".into(), currency: "USD".into(), budget_usd_monthly: Some(100.0), daily: d, cost_breakdown: serde_json::json!({}), collected_at: None, estimated_days: vec![] };
        let a = cost::analyse(&mk(daily), &CostThresholds::default()).unwrap();
        let b = cost::analyse(&mk(shuffled), &CostThresholds::default()).unwrap();
        prop_assert_eq!(a.wow_change_pct, b.wow_change_pct);
        prop_assert_eq!(a.trend, b.trend);
    }
}
