//! A policy set reads back what it serialises (the gate's policy cache keeps checked sets as
//! JSON): every kind of threshold, floats to the bit, and nothing else.

use guardrail_core::policy::{Action, Condition, DefaultRule, Operator, Policy, PolicySet, Scalar, Threshold};

fn set() -> PolicySet {
    let cond = |signal: &str, operator, value| Condition { signal: signal.into(), operator, value };
    let values = [
        Threshold::Scalar(Scalar::Number(0.1)),
        Threshold::Scalar(Scalar::Number(33.333333333333336)),
        Threshold::Scalar(Scalar::Number(1e-7)),
        Threshold::Scalar(Scalar::Number(-0.0)),
        Threshold::Scalar(Scalar::Number(12.0)),
        Threshold::Scalar(Scalar::Number(9007199254740993.0)),
        Threshold::Scalar(Scalar::Bool(true)),
        Threshold::Scalar(Scalar::Text("high \"quoted\" é\n".into())),
        Threshold::List(vec![Scalar::Text("high".into()), Scalar::Number(2.5), Scalar::Bool(false)]),
        Threshold::List(Vec::new()),
        Threshold::Services { services: vec!["pay-*".into(), "checkout-api".into()] },
    ];
    PolicySet {
        version: Some("1.0".into()),
        description: None,
        policies: values
            .into_iter()
            .enumerate()
            .map(|(i, v)| Policy {
                id: format!("P{i}"),
                name: format!("rule {i}"),
                priority: i as i64 - 3,
                action: [Action::Allow, Action::Warn, Action::Delay, Action::Block][i % 4],
                conditions: vec![
                    cond("error_budget_pct", Operator::Lt, v),
                    cond("freeze_active", Operator::Eq, Threshold::Scalar(Scalar::Bool(false))),
                ],
                reason: "r".into(),
                remediation: "m".into(),
                delay_minutes: i as u32,
            })
            .collect(),
        default_action: Some(DefaultRule {
            action: Action::Delay,
            reason: "d".into(),
            remediation: "m".into(),
            delay_minutes: 5,
        }),
    }
}

#[test]
fn a_policy_set_reads_back_what_it_serialises() {
    let s = set();
    let text = serde_json::to_string(&s).unwrap();
    let back: PolicySet = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
    // To the bit: -0.0 == 0.0 for PartialEq.
    let bits = |s: &PolicySet| -> Vec<u64> {
        s.policies
            .iter()
            .filter_map(|p| match &p.conditions[0].value {
                Threshold::Scalar(Scalar::Number(n)) => Some(n.to_bits()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(bits(&back), bits(&s));
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
}

#[test]
fn only_a_thresholds_own_shapes_read_back() {
    for bad in
        [r#"{"x": ["a"]}"#, r#"{"services": 1}"#, r#"{}"#, r#"{"services": [], "services": []}"#, r#"[[1]]"#, r#"null"#]
    {
        assert!(serde_json::from_str::<Threshold>(bad).is_err(), "{bad}");
    }
    assert!(serde_json::from_str::<Scalar>("[1]").is_err());
    assert_eq!(serde_json::from_str::<Scalar>("3").unwrap(), Scalar::Number(3.0));
}
