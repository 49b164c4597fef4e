//! Issue 14: `policy::check` (the load-time lint, shadowing included) and `policy::evaluate`
//! (which re-runs the check) on fleet-sized sets of the shape `scripts/gen-policies` writes:
//! the seed's seven rules, one `service eq svc-N and error_budget_pct lt X` rule per service,
//! a catch-all. The pairwise search it replaced (`check_pairwise`) runs at 1,000 rules for the
//! before/after comparison; at 10,000 it takes seconds. YAML reading is in the whole-process
//! rows of scripts/bench.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use guardrail_core::policy::{self, Action, Condition, Operator, Policy, PolicySet, Scalar, Threshold};
use guardrail_core::signals::{SignalValue, Signals};
use std::hint::black_box;

fn fleet(rules: usize, scoped: bool) -> PolicySet {
    let num = |n: f64| Threshold::Scalar(Scalar::Number(n));
    let hot = || Threshold::List(vec![Scalar::Text("high".into()), Scalar::Text("critical".into())]);
    let c = |s: &str, op: Operator, v: Threshold| Condition { signal: s.into(), operator: op, value: v };
    let p = |id: String, prio: i64, action: Action, conditions: Vec<Condition>| Policy {
        id: id.clone(),
        name: id,
        priority: prio,
        action,
        conditions,
        reason: "r".into(),
        remediation: "m".into(),
        delay_minutes: if action == Action::Delay { 20 } else { 0 },
    };
    let mut policies = vec![
        p("P001".into(), 1, Action::Block, vec![c("error_budget_pct", Operator::Lt, num(10.0))]),
        p(
            "P002".into(),
            2,
            Action::Block,
            vec![c("error_budget_pct", Operator::Lt, num(20.0)), c("burn_rate", Operator::In, hot())],
        ),
        p(
            "P003".into(),
            3,
            Action::Block,
            vec![c("cost_spike_pct", Operator::Gte, num(30.0)), c("burn_rate", Operator::In, hot())],
        ),
        p("P004".into(), 4, Action::Delay, vec![c("burn_rate", Operator::In, hot())]),
        p("P005".into(), 5, Action::Delay, vec![c("error_budget_pct", Operator::Lt, num(30.0))]),
        p("P006".into(), 6, Action::Warn, vec![c("cost_spike_pct", Operator::Gte, num(20.0))]),
        p(
            "P007".into(),
            7,
            Action::Delay,
            vec![c("latency_compliant", Operator::Eq, Threshold::Scalar(Scalar::Bool(false)))],
        ),
    ];
    let actions = [Action::Block, Action::Delay, Action::Warn];
    for i in 0..rules.saturating_sub(8) {
        let conditions = if scoped && i % 4 == 3 {
            let scope = Threshold::Services { services: vec![format!("team-{}-*", i / 4)] };
            vec![c("service", Operator::In, scope), c("cost_spike_pct", Operator::Gte, num(5.0 + (i % 15) as f64))]
        } else {
            vec![
                c("service", Operator::Eq, Threshold::Scalar(Scalar::Text(format!("svc-{i:05}")))),
                c("error_budget_pct", Operator::Lt, num(31.0 + (i % 30) as f64)),
            ]
        };
        policies.push(p(format!("S{i:05}"), 10 + i as i64, actions[i % 3], conditions));
    }
    policies.push(p("P-ALLOW".into(), 10 + rules as i64 + 10, Action::Allow, vec![]));
    PolicySet { version: None, description: None, policies, default_action: None }
}

fn signals() -> Signals {
    let mut s = Signals::default();
    for (name, v) in [
        ("service", SignalValue::Text("svc-00042".into())),
        ("error_budget_pct", SignalValue::Number(45.0)),
        ("burn_rate", SignalValue::Text("low".into())),
        ("cost_spike_pct", SignalValue::Number(5.0)),
        ("latency_compliant", SignalValue::Bool(true)),
    ] {
        s.set(name, v);
    }
    s
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy scale");
    g.sample_size(20);
    let sig = signals();
    for rules in [1_000, 10_000] {
        let set = fleet(rules, false);
        assert!(!policy::has_errors(&policy::check(&set)), "the generated set is valid");
        g.bench_with_input(BenchmarkId::new("check (indexed)", rules), &set, |b, s| {
            b.iter(|| policy::check(black_box(s)))
        });
        g.bench_with_input(BenchmarkId::new("evaluate (check + first match + trace)", rules), &set, |b, s| {
            b.iter(|| policy::evaluate(black_box(s), &sig))
        });
        let scoped = fleet(rules, true);
        assert!(!policy::has_errors(&policy::check(&scoped)), "the generated scoped set is valid");
        g.bench_with_input(
            BenchmarkId::new("check (indexed), every 4th rule a services: glob", rules),
            &scoped,
            |b, s| b.iter(|| policy::check(black_box(s))),
        );
    }
    let set = fleet(1_000, false);
    g.bench_with_input(BenchmarkId::new("check (pairwise, before issue 14)", 1_000), &set, |b, s| {
        b.iter(|| policy::check_pairwise(black_box(s)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
