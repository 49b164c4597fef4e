//! `policy::check`: what makes a set unusable, and what is only worth a warning.

use guardrail_core::policy::{
    self, Action, Condition, DefaultRule, Operator, Policy, PolicySet, Scalar, Severity, Threshold,
};
use guardrail_core::signals::{SignalValue, Signals};

fn c(signal: &str, op: Operator, v: Threshold) -> Condition {
    Condition { signal: signal.into(), operator: op, value: v }
}
fn num(n: f64) -> Threshold {
    Threshold::Scalar(Scalar::Number(n))
}
fn labels(xs: &[&str]) -> Threshold {
    Threshold::List(xs.iter().map(|s| Scalar::Text(s.to_string())).collect())
}
fn rule(id: &str, prio: i64, action: Action, conditions: Vec<Condition>) -> Policy {
    Policy {
        id: id.into(),
        name: id.into(),
        priority: prio,
        action,
        conditions,
        reason: "r".into(),
        remediation: "m".into(),
        delay_minutes: if action == Action::Delay { 10 } else { 0 },
    }
}
fn set(policies: Vec<Policy>) -> PolicySet {
    PolicySet { version: None, description: None, policies, default_action: None }
}
fn errors(s: &PolicySet) -> Vec<String> {
    policy::check(s)
        .into_iter()
        .filter(|i| i.severity == Severity::Error)
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect()
}

#[test]
fn unknown_signal_and_type_mismatches() {
    let s = set(vec![
        rule("A", 1, Action::Block, vec![c("error_budget", Operator::Lt, num(10.0))]),
        rule("B", 2, Action::Block, vec![c("burn_rate", Operator::Lt, num(10.0))]),
        rule(
            "C",
            3,
            Action::Block,
            vec![c("latency_compliant", Operator::Eq, Threshold::Scalar(Scalar::Text("false".into())))],
        ),
        rule("D", 4, Action::Block, vec![c("burn_rate", Operator::In, Threshold::Scalar(Scalar::Text("hi".into())))]),
        rule("E", 5, Action::Block, vec![c("error_budget_pct", Operator::Lt, labels(&["1"]))]),
        rule("Z", 99, Action::Allow, vec![]),
    ]);
    let e = errors(&s);
    assert!(
        e.iter().any(|m| m.starts_with("policies[0].conditions.error_budget") && m.contains("unknown signal")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.starts_with("policies[1].conditions.burn_rate.operator")), "{e:?}");
    assert!(e.iter().any(|m| m.starts_with("policies[2].conditions.latency_compliant.value")), "{e:?}");
    assert!(
        e.iter().any(|m| m.starts_with("policies[3].conditions.burn_rate.value") && m.contains("needs a list")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.starts_with("policies[4].conditions.error_budget_pct.value")), "{e:?}");
}

#[test]
fn impossible_and_shadowed_rules() {
    // Budget is a percentage: "> 100" can never hold.
    let s = set(vec![
        rule("A", 1, Action::Block, vec![c("error_budget_pct", Operator::Gt, num(100.0))]),
        rule("Z", 99, Action::Allow, vec![]),
    ]);
    assert!(errors(&s).iter().any(|m| m.contains("can never match")), "{:?}", errors(&s));
    // A BLOCK at < 5 placed after a DELAY at < 10 is unreachable.
    let s = set(vec![
        rule("D", 1, Action::Delay, vec![c("error_budget_pct", Operator::Lt, num(10.0))]),
        rule("B", 2, Action::Block, vec![c("error_budget_pct", Operator::Lt, num(5.0))]),
        rule("Z", 99, Action::Allow, vec![]),
    ]);
    assert!(errors(&s).iter().any(|m| m.starts_with("policies[1]") && m.contains("unreachable")), "{:?}", errors(&s));
    // Not shadowed when the later rule can match something the earlier one does not.
    let s = set(vec![
        rule("D", 1, Action::Delay, vec![c("error_budget_pct", Operator::Lt, num(5.0))]),
        rule("B", 2, Action::Block, vec![c("error_budget_pct", Operator::Lt, num(10.0))]),
        rule("Z", 99, Action::Allow, vec![]),
    ]);
    assert!(errors(&s).is_empty(), "{:?}", errors(&s));
    // Label sets: [high] is inside [high, critical].
    let s = set(vec![
        rule("D", 1, Action::Delay, vec![c("burn_rate", Operator::In, labels(&["high", "critical"]))]),
        rule("B", 2, Action::Block, vec![c("burn_rate", Operator::Eq, Threshold::Scalar(Scalar::Text("high".into())))]),
        rule("Z", 99, Action::Allow, vec![]),
    ]);
    assert!(errors(&s).iter().any(|m| m.contains("unreachable")), "{:?}", errors(&s));
    // neq covers everything but one label.
    let s = set(vec![
        rule("D", 1, Action::Delay, vec![c("burn_rate", Operator::Neq, Threshold::Scalar(Scalar::Text("low".into())))]),
        rule("B", 2, Action::Block, vec![c("burn_rate", Operator::In, labels(&["medium", "critical"]))]),
        rule("Z", 99, Action::Allow, vec![]),
    ]);
    assert!(errors(&s).iter().any(|m| m.contains("unreachable")), "{:?}", errors(&s));
}

#[test]
fn catch_all_or_default_is_required() {
    let s = set(vec![rule("A", 1, Action::Block, vec![c("error_budget_pct", Operator::Lt, num(10.0))])]);
    assert!(errors(&s).iter().any(|m| m.contains("catch-all")), "{:?}", errors(&s));
    assert!(policy::evaluate(&s, &Signals::default()).unwrap_err().to_string().contains("catch-all"));
    let mut s = s;
    s.default_action = Some(DefaultRule {
        action: Action::Block,
        reason: "none matched".into(),
        remediation: "fix".into(),
        delay_minutes: 0,
    });
    assert!(errors(&s).is_empty());
    let mut sig = Signals::default();
    sig.set("error_budget_pct", SignalValue::Number(50.0));
    let d = policy::evaluate(&s, &sig).unwrap();
    assert_eq!((d.action, d.policy_id.as_str()), (Action::Block, "DEFAULT"));
    // A rule whose conditions cover every value of the signal is a catch-all too.
    let s = set(vec![rule(
        "Z",
        1,
        Action::Allow,
        vec![c("latency_compliant", Operator::In, Threshold::List(vec![Scalar::Bool(true), Scalar::Bool(false)]))],
    )]);
    assert!(errors(&s).is_empty(), "{:?}", errors(&s));
}

#[test]
fn duplicate_ids() {
    let s = set(vec![
        rule("A", 1, Action::Block, vec![c("error_budget_pct", Operator::Lt, num(10.0))]),
        rule("A", 2, Action::Delay, vec![c("error_budget_pct", Operator::Lt, num(20.0))]),
        rule("Z", 99, Action::Allow, vec![]),
    ]);
    assert!(errors(&s).iter().any(|m| m.contains("duplicate id")), "{:?}", errors(&s));
}

#[test]
fn unavailable_signal_needed_before_a_match_cannot_decide() {
    let s = set(vec![
        rule(
            "P99",
            1,
            Action::Delay,
            vec![c("latency_p99_compliant", Operator::Eq, Threshold::Scalar(Scalar::Bool(false)))],
        ),
        rule("Z", 99, Action::Allow, vec![]),
    ]);
    let mut sig = Signals::default();
    sig.set("latency_p99_compliant", SignalValue::Unavailable("no p99".into()));
    let e = policy::evaluate(&s, &sig).unwrap_err();
    assert!(e.to_string().contains("latency_p99_compliant"), "{e}");
    // After an earlier match, the same rule is only noted in the trace.
    let s = set(vec![
        rule("Z0", 0, Action::Block, vec![]),
        rule(
            "P99",
            1,
            Action::Delay,
            vec![c("latency_p99_compliant", Operator::Eq, Threshold::Scalar(Scalar::Bool(false)))],
        ),
    ]);
    let issues = policy::check(&s);
    assert!(policy::has_errors(&issues), "P99 is shadowed by the catch-all Z0");
}
