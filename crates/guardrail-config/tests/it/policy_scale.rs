//! Issue 14: fleet-sized policy files load (the alias-bomb guard bounds alias expansion, not
//! honest size), alias bombs are still refused, and `services:` scopes are read, positioned
//! and checked.

use guardrail_config::{Finding, PolicyLoad, Source, has_errors, load_policies};
use guardrail_core::policy::{self, Action, Operator, Severity, Threshold};
use guardrail_core::signals::{SignalValue, Signals};

fn load(text: &str) -> PolicyLoad {
    load_policies(&Source::from_text("policies.yaml", text))
}

#[track_caller]
fn error<'a>(l: &'a PolicyLoad, field: &str) -> &'a Finding {
    match l.findings.iter().find(|f| f.severity == Severity::Error && f.field == field) {
        Some(f) => f,
        None => panic!("no error at {field}; findings: {:#?}", l.findings),
    }
}

/// The shape `scripts/gen-policies RULES` writes: per-service rules, then a catch-all.
fn fleet_yaml(rules: usize) -> String {
    let mut y = String::from("version: \"1.0\"\npolicies:\n");
    for i in 0..rules - 1 {
        y.push_str(&format!(
            "  - id: S{i:05}\n    name: \"svc-{i:05} error budget guard\"\n    priority: {}\n    action: BLOCK\n    conditions:\n      service: {{operator: eq, value: \"svc-{i:05}\"}}\n      error_budget_pct: {{operator: lt, value: {}}}\n    reason: \"svc-{i:05} keeps budget\"\n    remediation: \"wait\"\n",
            10 + i,
            31 + i % 30
        ));
    }
    y.push_str("  - id: ALLOW\n    name: all\n    priority: 100000\n    action: ALLOW\n    conditions: {}\n    reason: r\n    remediation: m\n");
    y
}

#[test]
fn ten_thousand_rules_load() {
    // ~230,000 written values and no alias: refused before issue 14 ("expands to more than
    // 200000 values").
    let l = load(&fleet_yaml(10_000));
    assert!(!has_errors(&l.findings), "{:#?}", &l.findings[..l.findings.len().min(3)]);
    assert_eq!(l.set.as_ref().map(|s| s.policies.len()), Some(10_000));
}

#[test]
fn billion_laughs_is_refused_by_the_alias_guard() {
    let mut text = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let items = vec![format!("*l{}", i - 1); 10].join(", ");
        text.push_str(&format!("l{i}: &l{i} [{items}]\n"));
    }
    text.push_str("policies: []\n");
    let l = load(&text);
    assert!(l.set.is_none());
    let f = &l.findings[0];
    assert!(f.message.contains("more than 200000 values through aliases (an alias bomb"), "{f}");
    // It stops at the first level whose copies pass the bound (10^5 nodes each on line 6),
    // long before the 10^10 the document describes.
    assert_eq!(f.line, Some(6), "{f}");
    // A few aliases in an honest file are fine: anchors and merge keys still resolve.
    let ok = load(
        "policies:\n  - &base {id: A, name: a, priority: 1, action: BLOCK, reason: r, remediation: m, conditions: {error_budget_pct: {operator: lt, value: 5}}}\n  - {<<: *base, id: B, priority: 2, action: ALLOW, conditions: {}}\n",
    );
    assert!(!has_errors(&ok.findings), "{:#?}", ok.findings);
}

const FIXTURE: &str = include_str!("../fixtures/policies/fleet-scoped.yaml");

fn signals(service: &str, budget: f64) -> Signals {
    let mut s = Signals::default();
    s.set("service", SignalValue::Text(service.into()));
    s.set("error_budget_pct", SignalValue::Number(budget));
    s.set("in_freeze", SignalValue::Bool(false));
    s
}

#[test]
fn the_fleet_fixture_is_clean_and_scopes_decide() {
    let l = load(FIXTURE);
    assert!(l.findings.is_empty(), "{:#?}", l.findings);
    let set = l.set.expect("reads");
    let pay = &set.policies[1];
    assert_eq!(pay.conditions[0].signal, "service");
    assert_eq!(pay.conditions[0].operator, Operator::In);
    assert_eq!(pay.conditions[0].value, Threshold::Services { services: vec!["payments-*".into(), "ledger".into()] });
    assert_eq!(pay.conditions[1].signal, "error_budget_pct");
    let d = policy::evaluate(&set, &signals("payments-api", 35.0)).expect("decides");
    assert_eq!((d.action, d.policy_id.as_str(), d.delay_minutes), (Action::Delay, "PAY-BUDGET", 30));
    let d = policy::evaluate(&set, &signals("ledger", 35.0)).expect("decides");
    assert_eq!(d.policy_id, "PAY-BUDGET");
    // checkout-api is in no scope; search-* needs cost_spike_pct, which is not read for it.
    let d = policy::evaluate(&set, &signals("checkout-api", 35.0)).expect("decides");
    assert_eq!((d.action, d.policy_id.as_str()), (Action::Allow, "ALLOW"));
    let e = policy::evaluate(&set, &signals("search-eu", 35.0)).expect_err("cost_spike_pct is unavailable");
    assert!(e.to_string().contains("rule SEARCH-COST needs signal cost_spike_pct"), "{e}");
}

#[test]
fn scope_errors_are_positioned() {
    let rule = |services: &str| {
        format!(
            "policies:\n  - id: A\n    name: a\n    priority: 1\n    action: BLOCK\n    services: {services}\n    conditions: {{}}\n    reason: r\n    remediation: m\n  - {{id: Z, name: z, priority: 9, action: ALLOW, conditions: {{}}, reason: r, remediation: m}}\n"
        )
    };
    let l = load(&rule("payments-*"));
    let f = error(&l, "policies[0].services");
    assert!(f.message.starts_with("must be a list of service names or globs"), "{f}");
    assert_eq!((f.line, f.col), (Some(6), Some(5)));
    let l = load(&rule("[payments-*, 7]"));
    assert!(error(&l, "policies[0].services[1]").message.contains("got the integer 7"), "{:#?}", l.findings);
    let l = load(&rule("[]"));
    let f = error(&l, "policies[0].services");
    assert_eq!(f.message, "an empty list of services never matches");
    assert_eq!(f.line, Some(6));
    let l = load(&rule("['']"));
    assert_eq!(error(&l, "policies[0].services[0]").message, "an empty pattern matches no service");
    // A scoped rule that covers a later one makes it unreachable, as any rule does.
    let l = load(&rule("['*']"));
    let f = error(&l, "policies[1]");
    assert!(f.message.contains("rule Z (ALLOW) is unreachable") && f.message.contains("by A (BLOCK)"), "{f}");
    // A misspelt key is still refused with a suggestion.
    let l = load(&rule("[x]").replace("services:", "service:"));
    assert!(error(&l, "policies[0].service").message.contains("did you mean"), "{:#?}", l.findings);
}

/// Mappings are indexed by a scan while small and a hash map past 16 keys: duplicates and
/// merge keys behave the same on both sides of the switch.
#[test]
fn duplicate_and_merged_keys_in_large_mappings() {
    for keys in [3usize, 16, 17, 40] {
        let mut text = String::from("base: &b {k1: merged, extra: merged}\nm:\n  <<: *b\n");
        for k in 0..keys {
            text.push_str(&format!("  k{k}: {k}\n"));
        }
        text.push_str("  k1: again\npolicies: []\n");
        let l = load(&text);
        let f = l.findings.iter().find(|f| f.message.starts_with("duplicate key \"k1\"")).expect("duplicate found");
        assert_eq!(f.field, "m.k1", "{keys} keys");
        assert!(f.message.contains(&format!("(lines 5 and {})", 4 + keys)), "{keys} keys: {f}");
        // Without the duplicate, the explicit k1 wins over the merged one and `extra` is merged.
        let ok = text.replace("  k1: again\n", "");
        let root = guardrail_config::yaml::parse_yaml(&Source::from_text("x.yaml", &ok)).expect("parses");
        let m = root.as_map().and_then(|m| m.iter().find(|(k, _)| k == "m")).map(|(_, v)| v).expect("m");
        let entries = m.as_map().expect("a mapping");
        assert_eq!(entries.len(), keys + 1, "{keys} keys");
        let get = |name: &str| entries.iter().find(|(k, _)| k == name).map(|(_, v)| v.describe());
        assert_eq!(get("extra").as_deref(), Some("the string \"merged\""));
        assert_eq!(get("k1").as_deref(), Some("the integer 1"));
    }
}
