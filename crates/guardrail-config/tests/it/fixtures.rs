//! Every shipped fixture loads; the shipped policies are the expected eight rules.

use std::path::PathBuf;

use guardrail_config::{load_cost, load_metrics, load_policies, load_slos, read_source};
use guardrail_core::policy::{Action, Condition, Operator, Policy, Scalar, Severity, Threshold};
use guardrail_core::slo::Num;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/deploy-gate").join(rel)
}

#[test]
fn shipped_slos_load() {
    let src = read_source(&fixture("config/slos.yaml")).expect("read slos.yaml");
    let loaded = load_slos(&src).expect("slos.yaml loads");
    let s = loaded.value;
    assert_eq!(s.availability_target_pct, Num::float(99.9));
    assert_eq!(s.p95_threshold_ms, Num::int(500));
    assert_eq!(s.p99_threshold_ms, Some(Num::int(1000)));
    assert_eq!((s.burn.medium, s.burn.high, s.burn.critical), (2.0, 5.0, 10.0));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.map.locate("slos.availability.target"), Some((3, 5)));
    assert_eq!(loaded.map.locate("burn_rate.thresholds.high"), Some((23, 5)));
}

#[test]
fn shipped_metrics_load() {
    for rel in [
        "data/metrics.json",
        "docker/scenarios/allow/metrics.json",
        "docker/scenarios/block/metrics.json",
        "docker/scenarios/warn/metrics.json",
    ] {
        let src = read_source(&fixture(rel)).expect("read metrics");
        let loaded = load_metrics(&src).unwrap_or_else(|e| panic!("{rel}: {e:?}"));
        assert!(loaded.warnings.is_empty(), "{rel}: {:?}", loaded.warnings);
        assert_eq!(loaded.value.service, "checkout-api");
        assert_eq!(loaded.value.hourly_burn_rate.len(), 24);
        assert!(loaded.value.collected_at.is_some());
    }
    let src = read_source(&fixture("data/metrics.json")).expect("read");
    let m = load_metrics(&src).expect("loads");
    assert_eq!(m.value.total_requests, 2_592_000);
    assert_eq!(m.value.failed_requests, 2100);
    assert_eq!(m.value.latency_p95_ms, Num::int(480));
    assert!(m.value.latency_p95_ms.integer);
    assert_eq!(m.value.latency_p99_ms, Some(Num::int(890)));
    assert_eq!(m.value.hourly_burn_rate[0].as_f64(), 0.8);
    assert_eq!(m.map.locate("failed_requests"), Some((6, 3)));
    assert_eq!(m.map.locate("hourly_burn_rate[6]"), Some((14, 5)));
}

#[test]
fn shipped_cost_loads() {
    let src = read_source(&fixture("data/cost.json")).expect("read cost.json");
    let loaded = load_cost(&src).expect("cost.json loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.value;
    assert_eq!(c.service, "checkout-api");
    assert_eq!(c.currency, "USD");
    assert_eq!(c.daily.len(), 30);
    assert_eq!(c.daily[0].date, jiff::civil::date(2026, 1, 22));
    assert_eq!(c.daily[0].cost, 44.2);
    assert!(c.cost_breakdown.is_object());
    // Positions for errors the core finds later.
    assert_eq!(loaded.map.locate("daily_costs[3].cost"), Some((9, 28)));
    assert_eq!(loaded.map.locate("daily_costs[3]"), Some((9, 5)));
    // The analysis the CLI runs succeeds on the shipped data.
    assert!(guardrail_core::cost::analyse(&c, &Default::default()).is_ok());
}

#[allow(clippy::too_many_arguments)] // mirrors the eight fields of a rule
fn rule(
    id: &str,
    name: &str,
    priority: i64,
    action: Action,
    conditions: Vec<Condition>,
    reason: &str,
    remediation: &str,
    delay_minutes: u32,
) -> Policy {
    Policy {
        id: id.into(),
        name: name.into(),
        priority,
        action,
        conditions,
        reason: reason.into(),
        remediation: remediation.into(),
        delay_minutes,
    }
}

fn lt(signal: &str, v: f64) -> Condition {
    Condition { signal: signal.into(), operator: Operator::Lt, value: Threshold::Scalar(Scalar::Number(v)) }
}
fn gte(signal: &str, v: f64) -> Condition {
    Condition { signal: signal.into(), operator: Operator::Gte, value: Threshold::Scalar(Scalar::Number(v)) }
}
fn burn_high() -> Condition {
    Condition {
        signal: "burn_rate".into(),
        operator: Operator::In,
        value: Threshold::List(vec![Scalar::Text("high".into()), Scalar::Text("critical".into())]),
    }
}

#[test]
fn shipped_policies_load_without_errors() {
    let src = read_source(&fixture("config/policies.yaml")).expect("read policies.yaml");
    let load = load_policies(&src);
    let errors: Vec<_> = load.findings.iter().filter(|f| f.severity == Severity::Error).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!guardrail_config::has_errors(&load.findings));
    let set = load.set.expect("set");
    assert_eq!(set.version.as_deref(), Some("1.0"));
    assert_eq!(
        set.description.as_deref(),
        Some("Deployment guardrail policies — evaluated top-to-bottom, first match wins")
    );
    assert_eq!(set.default_action, None);
    let expected = vec![
        rule(
            "P001",
            "Critical error budget exhaustion",
            1,
            Action::Block,
            vec![lt("error_budget_pct", 10.0)],
            "Error budget critically exhausted — service stability is at severe risk",
            "Freeze all deployments. Investigate and fix error sources immediately.",
            0,
        ),
        rule(
            "P002",
            "Low error budget with high burn rate",
            2,
            Action::Block,
            vec![lt("error_budget_pct", 20.0), burn_high()],
            "Error budget below 20% with high burn rate — imminent SLO breach",
            "Hold all deployments. Reduce traffic or roll back recent changes.",
            0,
        ),
        rule(
            "P003",
            "Cost spike during reliability incident",
            3,
            Action::Block,
            vec![gte("cost_spike_pct", 30.0), burn_high()],
            "Cloud costs spiking while reliability is degraded — compound risk",
            "Investigate cost anomaly and service errors before deploying.",
            0,
        ),
        rule(
            "P004",
            "High burn rate",
            4,
            Action::Delay,
            vec![burn_high()],
            "Error budget burning at high rate — deployment risk is elevated",
            "Wait for burn rate to normalize. Check recent error trends.",
            30,
        ),
        rule(
            "P005",
            "Moderate error budget consumed",
            5,
            Action::Delay,
            vec![lt("error_budget_pct", 30.0)],
            "Less than 30% error budget remaining",
            "Proceed with caution. Consider a canary deployment.",
            15,
        ),
        rule(
            "P006",
            "Significant cost spike",
            6,
            Action::Warn,
            vec![gte("cost_spike_pct", 20.0)],
            "Cloud costs increased significantly week-over-week",
            "Review resource usage and scaling events before proceeding.",
            0,
        ),
        rule(
            "P007",
            "Latency SLO breach",
            7,
            Action::Delay,
            vec![Condition {
                signal: "latency_compliant".into(),
                operator: Operator::Eq,
                value: Threshold::Scalar(Scalar::Bool(false)),
            }],
            "p95 latency is above target threshold",
            "Investigate latency regression before deploying new changes.",
            20,
        ),
        rule(
            "P008",
            "All signals healthy",
            99,
            Action::Allow,
            vec![],
            "All reliability and cost signals within acceptable thresholds",
            "No action required.",
            0,
        ),
    ];
    assert_eq!(set.policies, expected);
    // Positions for core paths.
    assert_eq!(load.map.locate("policies[1].conditions.burn_rate.value[1]"), Some((26, 25)));
    assert_eq!(load.map.locate("policies[7]"), Some((91, 5)));
}

/// The shipped governor examples load through the serde reader (YAML 1.2 core), and the
/// policy file's dialect is unchanged: the same word is a string in an own format, a boolean
/// in the seed's.
#[test]
fn shipped_governor_examples_load_and_the_dialect_goes_with_the_file() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/governor");
    let gov = guardrail_config::read_governor(&examples.join("governor.yaml")).expect("governor.yaml loads");
    assert!(gov.file.config.approvals.high.approvers.contains(&"alice".to_string()));
    let tokens = guardrail_config::tokens::Tokens::load(&examples.join("tokens.yaml")).expect("tokens.yaml loads");
    assert!(!tokens.is_empty());

    // A public entry point for new own formats.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Own {
        switch: String,
    }
    let own = guardrail_config::de::load_own::<Own>(&guardrail_config::Source::from_text("own.yaml", "switch: on\n"));
    assert_eq!(own.map(|l| l.value.switch).ok().as_deref(), Some("on"));
    let e = guardrail_config::de::load_own::<Own>(&guardrail_config::Source::from_text("own.yaml", "swich: on\n"))
        .err()
        .map(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>());
    assert_eq!(
        e.as_deref(),
        Some(
            &[
                "own.yaml:1:1: swich: unknown key \"swich\"; did you mean \"switch\"?".to_string(),
                "own.yaml:1:1: switch: is required".to_string()
            ][..]
        )
    );
    let seed = guardrail_config::yaml::parse_yaml(&guardrail_config::Source::from_text("p.yaml", "switch: on\n"))
        .expect("parses");
    assert_eq!(seed.get("switch").map(|n| n.value.clone()), Some(guardrail_config::yaml::NodeValue::Bool(true)));
}
