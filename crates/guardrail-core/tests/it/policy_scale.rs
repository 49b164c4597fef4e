//! Issue 14: the indexed shadowing search finds exactly what comparing every pair found, on
//! random sets (with and without `services:` scopes) and on a fleet-shaped set; and scoped
//! rules match, overlap and contradict only for their services.

use guardrail_core::policy::{
    self, Action, Condition, DecidedBy, Operator, Policy, PolicySet, Scalar, Severity, Threshold,
};
use guardrail_core::signals::{SignalValue, Signals};
use proptest::prelude::*;

fn c(signal: &str, op: Operator, v: Threshold) -> Condition {
    Condition { signal: signal.into(), operator: op, value: v }
}
fn num(n: f64) -> Threshold {
    Threshold::Scalar(Scalar::Number(n))
}
fn text(s: &str) -> Threshold {
    Threshold::Scalar(Scalar::Text(s.into()))
}
fn texts(xs: &[&str]) -> Threshold {
    Threshold::List(xs.iter().map(|s| Scalar::Text(s.to_string())).collect())
}
fn scope(xs: &[&str]) -> Condition {
    c("service", Operator::In, Threshold::Services { services: xs.iter().map(|s| s.to_string()).collect() })
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
fn signals(service: &str, budget: f64) -> Signals {
    let mut s = Signals::default();
    s.set("service", SignalValue::Text(service.into()));
    s.set("error_budget_pct", SignalValue::Number(budget));
    s.set("burn_rate", SignalValue::Text("low".into()));
    s
}

const SERVICES: &[&str] = &["a", "b", "pay-1", "pay-2", "payments-api", "payments-db", ""];
const PATTERNS: &[&str] =
    &["pay-*", "payments-*", "p*", "*", "**", "*-1", "*api", "pay*-*", "a", "b", "pay-1", "p*s-*b", "payments-api"];

fn condition() -> impl Strategy<Value = Condition> {
    let budget = prop_oneof![Just(0.0), Just(10.0), Just(20.0), Just(30.0), Just(100.0)];
    let number_op = prop_oneof![
        Just(Operator::Lt),
        Just(Operator::Lte),
        Just(Operator::Gt),
        Just(Operator::Gte),
        Just(Operator::Eq),
        Just(Operator::Neq),
    ];
    let labels = prop::sample::subsequence(vec!["low", "medium", "high", "critical"], 1..=4);
    let names = prop::sample::subsequence(SERVICES.to_vec(), 1..=3);
    prop_oneof![
        (number_op, budget.clone()).prop_map(|(op, v)| c("error_budget_pct", op, num(v))),
        prop::collection::vec(budget, 1..3).prop_map(|xs| c(
            "error_budget_pct",
            Operator::In,
            Threshold::List(xs.into_iter().map(Scalar::Number).collect())
        )),
        (prop::bool::ANY, labels).prop_map(|(eq, xs)| if eq {
            c("burn_rate", Operator::Eq, text(xs[0]))
        } else {
            c("burn_rate", Operator::In, texts(&xs))
        }),
        prop::bool::ANY.prop_map(|b| c("latency_compliant", Operator::Eq, Threshold::Scalar(Scalar::Bool(b)))),
        (0..3usize, names).prop_map(|(op, xs)| match op {
            0 => c("service", Operator::Eq, text(xs[0])),
            1 => c("service", Operator::Neq, text(xs[0])),
            _ => c("service", Operator::In, texts(&xs)),
        }),
    ]
}

/// Priority, action index, an optional `services:` scope, conditions.
type RandomRule = (i64, u8, Option<Vec<&'static str>>, Vec<Condition>);

fn random_rule() -> impl Strategy<Value = RandomRule> {
    (
        0i64..12,
        0u8..4,
        prop::option::weighted(0.4, prop::sample::subsequence(PATTERNS.to_vec(), 1..=2)),
        prop::collection::vec(condition(), 0..3),
    )
}

/// Rules that can never match make the whole set an error (and skip the shadowing search):
/// keep only rules that can match on their own, so most generated sets reach it.
fn satisfiable(p: &Policy) -> bool {
    !errors(&set(vec![p.clone()])).iter().any(|e| e.contains("can never match"))
}

fn build(rules: Vec<RandomRule>) -> PolicySet {
    let actions = [Action::Allow, Action::Warn, Action::Delay, Action::Block];
    let mut policies = Vec::new();
    for (i, (prio, action, sc, mut conditions)) in rules.into_iter().enumerate() {
        if let Some(patterns) = sc {
            conditions.insert(0, scope(&patterns));
        }
        let p = rule(&format!("R{i}"), prio, actions[action as usize], conditions);
        if satisfiable(&p) {
            policies.push(p);
        }
    }
    set(policies)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 768, ..ProptestConfig::default() })]

    /// The tentpole of issue 14's item 1: same findings, same order, as the pairwise search.
    #[test]
    fn indexed_check_finds_what_pairwise_finds(rules in prop::collection::vec(random_rule(), 1..14)) {
        let s = build(rules);
        prop_assert_eq!(policy::check(&s), policy::check_pairwise(&s));
    }

    /// A scoped rule matches exactly the services one of its patterns matches.
    #[test]
    fn scoped_rules_match_their_services(
        patterns in prop::sample::subsequence(PATTERNS.to_vec(), 1..=3),
        service in prop::sample::select(SERVICES.to_vec()),
    ) {
        let s = PolicySet {
            default_action: Some(policy::DefaultRule {
                action: Action::Allow,
                reason: "r".into(),
                remediation: "m".into(),
                delay_minutes: 0,
            }),
            ..set(vec![rule("S", 1, Action::Block, vec![scope(&patterns)])])
        };
        let d = policy::evaluate(&s, &signals(service, 50.0)).expect("decides");
        let expected = patterns.iter().any(|p| glob(p, service));
        prop_assert_eq!(d.action == Action::Block, expected, "{:?} vs {:?}", patterns, service);
    }
}

/// An independent glob matcher (regex-free recursion) for the property above.
fn glob(p: &str, t: &str) -> bool {
    match p.strip_prefix('*') {
        Some(rest) => (0..=t.len()).filter(|&i| t.is_char_boundary(i)).any(|i| glob(rest, &t[i..])),
        None => match (p.chars().next(), t.chars().next()) {
            (None, None) => true,
            (Some(a), Some(b)) if a == b => glob(&p[a.len_utf8()..], &t[b.len_utf8()..]),
            _ => false,
        },
    }
}

#[test]
fn service_matches_globs() {
    assert!(policy::service_matches("payments-*", "payments-api"));
    assert!(policy::service_matches("payments-*", "payments-"));
    assert!(!policy::service_matches("payments-*", "payment-api"));
    assert!(policy::service_matches("*-api", "checkout-api"));
    assert!(policy::service_matches("p*-*i", "payments-api"));
    assert!(policy::service_matches("*", ""));
    assert!(policy::service_matches("checkout-api", "checkout-api"));
    assert!(!policy::service_matches("checkout-api", "checkout-api2"));
    assert!(policy::service_matches("zürich-*", "zürich-eu"));
    // `?` and `[` are ordinary characters.
    assert!(!policy::service_matches("svc-?", "svc-1"));
    assert!(policy::service_matches("svc-?", "svc-?"));
}

/// The fleet shape of `scripts/gen-policies`: per-service rules, the seed's rules, fleet
/// scopes, and a few planted shadows; both searches agree and find the planted ones.
#[test]
fn fleet_set_agrees_with_pairwise() {
    let mut policies = vec![
        rule("P001", 1, Action::Block, vec![c("error_budget_pct", Operator::Lt, num(10.0))]),
        rule("P004", 4, Action::Delay, vec![c("burn_rate", Operator::In, texts(&["high", "critical"]))]),
        rule("P005", 5, Action::Delay, vec![c("error_budget_pct", Operator::Lt, num(30.0))]),
    ];
    for i in 0..600 {
        let svc = format!("svc-{i:04}");
        let conditions = if i % 5 == 4 {
            vec![scope(&[&format!("team-{}-*", i / 5)]), c("error_budget_pct", Operator::Lt, num(40.0))]
        } else {
            vec![
                c("service", Operator::Eq, text(&svc)),
                c("error_budget_pct", Operator::Lt, num(31.0 + (i % 29) as f64)),
            ]
        };
        policies.push(rule(&format!("S{i}"), 10 + i, Action::Block, conditions));
    }
    // Planted: shadowed by P005 (budget < 20 ⊆ budget < 30), by S3 (same service, tighter),
    // by a fleet scope (team-7-* covers team-7-api-*), and a scope of names inside a glob.
    policies.push(rule(
        "X1",
        700,
        Action::Warn,
        vec![c("service", Operator::Eq, text("svc-0001")), c("error_budget_pct", Operator::Lt, num(20.0))],
    ));
    policies.push(rule(
        "X2",
        701,
        Action::Warn,
        vec![c("service", Operator::In, texts(&["svc-0003"])), c("error_budget_pct", Operator::Lt, num(33.0))],
    ));
    policies.push(rule(
        "X3",
        702,
        Action::Warn,
        vec![scope(&["team-7-api-*"]), c("error_budget_pct", Operator::Lt, num(35.0))],
    ));
    policies.push(rule(
        "X4",
        703,
        Action::Warn,
        vec![scope(&["team-7-db", "team-7-web"]), c("error_budget_pct", Operator::Lt, num(39.0))],
    ));
    policies.push(rule("ALLOW", 10_000, Action::Allow, vec![]));
    let s = set(policies);
    let fast = policy::check(&s);
    assert_eq!(fast, policy::check_pairwise(&s));
    let e = errors(&s);
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(e[0].contains("rule X1 (WARN) is unreachable") && e[0].contains("by P005"), "{e:?}");
    assert!(e[1].contains("rule X2 (WARN) is unreachable") && e[1].contains("by S3 "), "{e:?}");
    assert!(e[2].contains("rule X3 (WARN) is unreachable") && e[2].contains("by S39 "), "{e:?}");
    assert!(e[3].contains("rule X4 (WARN) is unreachable") && e[3].contains("by S39 "), "{e:?}");
}

#[test]
fn scoped_rules_decide_only_for_their_services() {
    let s = set(vec![
        rule(
            "PAY",
            1,
            Action::Block,
            vec![scope(&["payments-*", "ledger"]), c("error_budget_pct", Operator::Lt, num(40.0))],
        ),
        rule("ALL", 2, Action::Delay, vec![c("error_budget_pct", Operator::Lt, num(30.0))]),
        rule("OK", 99, Action::Allow, vec![]),
    ]);
    assert!(errors(&s).is_empty(), "{:?}", errors(&s));
    let pay = policy::evaluate(&s, &signals("payments-api", 35.0)).expect("decides");
    assert_eq!((pay.action, pay.policy_id.as_str()), (Action::Block, "PAY"));
    // The scope is the first compared condition, with the service it was compared with.
    assert_eq!(pay.conditions[0].threshold.to_string(), "services matching [payments-*, ledger]");
    assert_eq!(pay.conditions[0].actual, SignalValue::Text("payments-api".into()));
    // What would allow it is the budget, not deploying another service.
    assert_eq!(pay.counterfactual_summary().as_deref(), Some("ALLOW needs error_budget_pct >= 40; now 35"));
    let only =
        set(vec![rule("FROZEN", 1, Action::Block, vec![scope(&["legacy-*"])]), rule("OK", 9, Action::Allow, vec![])]);
    let d = policy::evaluate(&only, &signals("legacy-billing", 35.0)).expect("decides");
    assert_eq!(
        d.counterfactual_summary().as_deref(),
        Some("ALLOW needs service not in services matching [legacy-*]; now legacy-billing")
    );
    let ledger = policy::evaluate(&s, &signals("ledger", 35.0)).expect("decides");
    assert_eq!(ledger.policy_id, "PAY");
    let other = policy::evaluate(&s, &signals("checkout-api", 35.0)).expect("decides");
    assert_eq!((other.action, other.policy_id.as_str()), (Action::Allow, "OK"));
    assert_eq!(other.trace[0].conditions.len(), 1, "out of scope: nothing else is read");
    assert!(
        other.trace[0].why.contains("service in services matching [payments-*, ledger] (actual checkout-api): false")
    );
    let json = serde_json::to_value(&other.trace[0].conditions[0]).expect("serialises");
    assert_eq!(json["threshold"], serde_json::json!({"services": ["payments-*", "ledger"]}));
}

#[test]
fn out_of_scope_rules_need_none_of_their_signals() {
    let s = set(vec![
        rule("PAY", 1, Action::Block, vec![scope(&["payments-*"]), c("cost_spike_pct", Operator::Gte, num(40.0))]),
        rule("OK", 99, Action::Allow, vec![]),
    ]);
    // `cost_spike_pct` is not provided: a payments service cannot be decided, others can.
    let d = policy::evaluate(&s, &signals("search", 50.0)).expect("decides");
    assert_eq!(d.decided_by, DecidedBy::Rule);
    assert_eq!(d.policy_id, "OK");
    let e = policy::evaluate(&s, &signals("payments-api", 50.0)).expect_err("needs cost_spike_pct");
    assert!(matches!(e, policy::EvalError::Unavailable { ref signal, .. } if signal == "cost_spike_pct"), "{e}");
    // Without a service signal no scoped rule can be decided: fail closed.
    let mut none = signals("x", 50.0);
    none.set("service", SignalValue::Unavailable("no service in the metrics".into()));
    assert!(matches!(policy::evaluate(&s, &none), Err(policy::EvalError::Unavailable { .. })));
}

#[test]
fn scopes_in_the_lint() {
    // A scope that contradicts the rule's own service condition can never match.
    let s = set(vec![
        rule("A", 1, Action::Block, vec![scope(&["payments-*"]), c("service", Operator::Eq, text("checkout"))]),
        rule("OK", 99, Action::Allow, vec![]),
    ]);
    assert!(errors(&s).iter().any(|e| e.starts_with("policies[0]: rule A can never match")), "{:?}", errors(&s));
    // Rules for different fleets do not overlap; the same fleet's broader rule shadows.
    let s = set(vec![
        rule("PAY", 1, Action::Block, vec![scope(&["payments-*"])]),
        rule("SEARCH", 2, Action::Block, vec![scope(&["search-*"])]),
        rule("PAY-API", 3, Action::Warn, vec![scope(&["payments-api"]), c("error_budget_pct", Operator::Lt, num(5.0))]),
        rule("OK", 99, Action::Allow, vec![]),
    ]);
    let e = errors(&s);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("policies[2]: rule PAY-API (WARN) is unreachable") && e[0].contains("by PAY (BLOCK)"));
    // An all-star scope is a catch-all.
    let s = set(vec![rule("ANY", 1, Action::Allow, vec![scope(&["*"])])]);
    assert!(errors(&s).is_empty(), "{:?}", errors(&s));
    // Empty scopes and patterns, two scopes, a scope on another signal.
    let s = set(vec![
        rule("E", 1, Action::Block, vec![scope(&[])]),
        rule("F", 2, Action::Block, vec![scope(&["a", ""])]),
        rule("G", 3, Action::Block, vec![scope(&["a"]), scope(&["b"])]),
        rule(
            "H",
            4,
            Action::Block,
            vec![c("burn_rate", Operator::In, Threshold::Services { services: vec!["high".into()] })],
        ),
        rule("OK", 99, Action::Allow, vec![]),
    ]);
    let e = errors(&s);
    assert!(e.contains(&"policies[0].services: an empty list of services never matches".to_string()), "{e:?}");
    assert!(e.contains(&"policies[1].services[1]: an empty pattern matches no service".to_string()), "{e:?}");
    assert!(e.contains(&"policies[2].services: a rule has at most one services scope".to_string()), "{e:?}");
    assert!(e.iter().any(|m| m.starts_with("policies[3].services: a services scope compares the service signal")));
}
