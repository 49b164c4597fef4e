//! Policy file findings: every bad-input class, with field path and position.

use guardrail_config::{Finding, PolicyLoad, Source, has_errors, load_policies};
use guardrail_core::policy::{Action, Scalar, Severity, Threshold};

/// A valid two-rule set; line 7 holds the first rule's condition.
const BASE: &str = "\
policies:
  - id: P1
    name: Block on low budget
    priority: 1
    action: BLOCK
    conditions:
      error_budget_pct: {operator: lt, value: 10}
    reason: r
    remediation: m
  - id: P2
    name: Allow
    priority: 99
    action: ALLOW
    conditions: {}
    reason: r
    remediation: m
";

fn load(text: &str) -> PolicyLoad {
    load_policies(&Source::from_text("policies.yaml", text))
}

/// BASE with line 7 (the first rule's condition) replaced.
fn with_condition(line: &str) -> PolicyLoad {
    load(&BASE.replace("      error_budget_pct: {operator: lt, value: 10}", line))
}

#[track_caller]
fn find<'a>(load: &'a PolicyLoad, severity: Severity, field: &str) -> &'a Finding {
    match load.findings.iter().find(|f| f.severity == severity && f.field == field) {
        Some(f) => f,
        None => panic!("no {severity:?} at {field}; findings: {:#?}", load.findings),
    }
}

#[track_caller]
fn at(f: &Finding, line: usize, col: usize) {
    assert_eq!((f.line, f.col), (Some(line), Some(col)), "{f}");
}

#[test]
fn base_is_clean() {
    let l = load(BASE);
    assert!(l.findings.is_empty(), "{:#?}", l.findings);
    assert_eq!(l.set.map(|s| s.policies.len()), Some(2));
}

#[test]
fn malformed_yaml() {
    let l = load("policies:\n  - id: P1\n   name: x\n");
    assert!(l.set.is_none());
    assert!(has_errors(&l.findings));
    let f = &l.findings[0];
    assert_eq!(f.field, "");
    at(f, 3, 4);
    assert!(f.message.contains("YAML syntax error"), "{f}");
    assert!(f.to_string().starts_with("policies.yaml:3:4: error: YAML syntax error"), "{f}");
}

#[test]
fn top_level_must_be_a_mapping_with_policies() {
    let l = load("- a\n- b\n");
    at(find(&l, Severity::Error, ""), 1, 1);
    let l = load("# only a comment\n");
    assert!(find(&l, Severity::Error, "").message.contains("holds no policies"));
    let l = load("version: 1\npolicies:\n");
    let f = find(&l, Severity::Error, "policies");
    at(f, 2, 1);
    assert!(f.message.contains("is null"));
    let l = load("version: 1\n");
    let f = find(&l, Severity::Error, "policies");
    assert!(f.message.contains("is required"));
    assert!(l.set.is_none());
}

#[test]
fn unknown_operator() {
    let l = with_condition("      error_budget_pct: {operator: lessthan, value: 10}");
    let f = find(&l, Severity::Error, "policies[0].conditions.error_budget_pct.operator");
    at(f, 7, 26);
    assert!(f.message.contains("lt, lte, gt, gte, eq, neq, in"), "{f}");
    assert!(l.set.is_none());
}

#[test]
fn operator_case_gets_a_suggestion() {
    let l = with_condition("      error_budget_pct: {operator: LT, value: 10}");
    let f = find(&l, Severity::Error, "policies[0].conditions.error_budget_pct.operator");
    assert!(f.message.contains("did you mean lt?"), "{f}");
}

/// Issue 10: the seed defaulted a missing operator to `eq` with a warning, so deleting
/// `operator: lt` from a rule turned DELAY into ALLOW. It is an error naming the rule.
#[test]
fn missing_operator_is_an_error_naming_the_rule() {
    let l = with_condition("      latency_compliant: {value: false}");
    let f = find(&l, Severity::Error, "policies[0].conditions.latency_compliant.operator");
    at(f, 7, 7);
    assert!(f.message.starts_with("rule P1: is required"), "{f}");
    assert!(f.message.contains("operator"), "{f}");
    assert!(l.set.is_none(), "a set with a condition without operator must not decide");
}

#[test]
fn unknown_signal_from_core_check() {
    let l = with_condition("      error_budget: {operator: lt, value: 10}");
    let f = find(&l, Severity::Error, "policies[0].conditions.error_budget");
    at(f, 7, 7);
    assert!(f.message.contains("unknown signal \"error_budget\""), "{f}");
    // The structure was fine, so the set is there; the caller refuses it because of the error.
    assert!(l.set.is_some());
    assert!(has_errors(&l.findings));
}

#[test]
fn unknown_signal_still_reported_when_the_structure_fails() {
    let text = BASE
        .replace("      error_budget_pct: {operator: lt, value: 10}", "      error_budget: {operator: lt, value: 10}");
    let text = text.replace("action: ALLOW", "action: PERMIT");
    let l = load(&text);
    assert!(l.set.is_none());
    at(find(&l, Severity::Error, "policies[0].conditions.error_budget"), 7, 7);
    at(find(&l, Severity::Error, "policies[1].action"), 13, 5);
}

#[test]
fn unknown_action() {
    let l = load(&BASE.replace("action: BLOCK", "action: DENY"));
    let f = find(&l, Severity::Error, "policies[0].action");
    at(f, 5, 5);
    assert!(f.message.contains("ALLOW, WARN, DELAY, BLOCK"), "{f}");
    assert!(l.set.is_none());
}

#[test]
fn lower_case_action_is_read_with_a_warning() {
    let l = load(&BASE.replace("action: BLOCK", "action: block"));
    at(find(&l, Severity::Warning, "policies[0].action"), 5, 5);
    assert!(!has_errors(&l.findings));
    assert_eq!(l.set.map(|s| s.policies[0].action), Some(Action::Block));
}

#[test]
fn null_conditions_is_an_error() {
    let l = load(&BASE.replace("    conditions: {}\n", "    conditions:\n"));
    let f = find(&l, Severity::Error, "policies[1].conditions");
    at(f, 14, 5);
    assert!(f.message.contains("null conditions would match everything; write {} for a catch-all"), "{f}");
    assert!(l.set.is_none());
}

#[test]
fn absent_conditions_is_a_catch_all_with_a_warning() {
    let l = load(&BASE.replace("    conditions: {}\n", ""));
    let f = find(&l, Severity::Warning, "policies[1].conditions");
    at(f, 10, 5); // positioned at the rule
    assert!(f.message.contains("conditions: {}"), "{f}");
    assert!(!has_errors(&l.findings), "{:#?}", l.findings);
    assert_eq!(l.set.map(|s| s.policies[1].conditions.len()), Some(0));
}

#[test]
fn conditions_as_a_list_is_an_error() {
    let l = load(&BASE.replace("    conditions: {}\n", "    conditions: [error_budget_pct]\n"));
    at(find(&l, Severity::Error, "policies[1].conditions"), 14, 5);
}

#[test]
fn a_condition_that_is_not_a_mapping() {
    let l = with_condition("      error_budget_pct: 10");
    let f = find(&l, Severity::Error, "policies[0].conditions.error_budget_pct");
    at(f, 7, 7);
    assert!(f.message.contains("{operator, value}"), "{f}");
}

#[test]
fn unknown_key_in_a_condition() {
    let l = with_condition("      error_budget_pct: {operator: lt, value: 10, unit: pct}");
    at(find(&l, Severity::Error, "policies[0].conditions.error_budget_pct.unit"), 7, 51);
}

#[test]
fn missing_and_null_value() {
    let l = with_condition("      error_budget_pct: {operator: lt}");
    let f = find(&l, Severity::Error, "policies[0].conditions.error_budget_pct.value");
    at(f, 7, 7); // the condition: its value is missing
    let l = with_condition("      error_budget_pct: {operator: lt, value: null}");
    at(find(&l, Severity::Error, "policies[0].conditions.error_budget_pct.value"), 7, 40);
    let l = with_condition("      error_budget_pct: {operator: lt, value: {a: 1}}");
    at(find(&l, Severity::Error, "policies[0].conditions.error_budget_pct.value"), 7, 40);
    let l = with_condition("      burn_rate: {operator: in, value: [[high]]}");
    at(find(&l, Severity::Error, "policies[0].conditions.burn_rate.value[0]"), 7, 41);
}

#[test]
fn threshold_as_string_is_refused_by_the_core_check() {
    let l = with_condition("      error_budget_pct: {operator: lt, value: \"10\"}");
    let f = find(&l, Severity::Error, "policies[0].conditions.error_budget_pct.value");
    at(f, 7, 40);
    assert!(f.message.contains("expected a number"), "{f}");
}

#[test]
fn in_with_a_scalar() {
    let l = with_condition("      burn_rate: {operator: in, value: high}");
    let f = find(&l, Severity::Error, "policies[0].conditions.burn_rate.value");
    at(f, 7, 33);
    assert!(f.message.contains("operator in needs a list"), "{f}");
}

#[test]
fn label_typo() {
    let l = with_condition("      burn_rate: {operator: in, value: [high, hgh]}");
    let f = find(&l, Severity::Error, "policies[0].conditions.burn_rate.value[1]");
    at(f, 7, 47);
    assert!(f.message.contains("\"hgh\" is not a possible value"), "{f}");
}

#[test]
fn yaml11_boolean_word_warns() {
    let l = with_condition("      latency_compliant: {operator: eq, value: no}");
    let f = find(&l, Severity::Warning, "policies[0].conditions.latency_compliant.value");
    at(f, 7, 41);
    assert_eq!(f.message, "read as boolean false, as PyYAML does; quote it if you meant the string");
    assert!(!has_errors(&l.findings), "{:#?}", l.findings);
    let set = l.set.expect("set");
    assert_eq!(set.policies[0].conditions[0].value, Threshold::Scalar(Scalar::Bool(false)));
    // `false` itself is not a YAML-1.1-only word: no warning.
    let l = with_condition("      latency_compliant: {operator: eq, value: false}");
    assert!(l.findings.is_empty(), "{:#?}", l.findings);
    // Quoted, it is a string: no warning.
    let l = with_condition("      service: {operator: eq, value: \"no\"}");
    assert!(l.findings.iter().all(|f| f.severity != Severity::Warning || !f.message.contains("PyYAML")));
}

#[test]
fn yaml11_boolean_word_in_a_list_warns() {
    let l = with_condition("      service: {operator: in, value: [api, on]}");
    at(find(&l, Severity::Warning, "policies[0].conditions.service.value[1]"), 7, 44);
}

#[test]
fn duplicate_policy_ids() {
    let l = load(&BASE.replace("id: P2", "id: P1"));
    let f = find(&l, Severity::Error, "policies[1].id");
    at(f, 10, 5);
    assert!(f.message.contains("duplicate id \"P1\""), "{f}");
}

#[test]
fn duplicate_yaml_keys() {
    let l = load(&BASE.replace("    priority: 1\n", "    priority: 1\n    priority: 5\n"));
    let f = find(&l, Severity::Error, "policies[0].priority");
    at(f, 5, 5);
    assert!(f.message.contains("lines 4 and 5"), "{f}");
    assert!(l.set.is_none());
}

#[test]
fn shadowed_rule() {
    let text = BASE.replace("priority: 99", "priority: 0");
    let l = load(&text);
    let f = find(&l, Severity::Error, "policies[0]");
    at(f, 2, 5);
    assert!(f.message.contains("unreachable"), "{f}");
}

#[test]
fn missing_catch_all() {
    let text = BASE.replace("    conditions: {}\n", "    conditions:\n      burn_rate: {operator: eq, value: low}\n");
    let l = load(&text);
    let f = find(&l, Severity::Error, "policies");
    at(f, 1, 1);
    assert!(f.message.contains("no catch-all"), "{f}");
    // An explicit default_action makes the set complete.
    let l = load(&format!("default_action: BLOCK\n{text}"));
    assert!(!has_errors(&l.findings), "{:#?}", l.findings);
    let d = l.set.and_then(|s| s.default_action).expect("default action");
    assert_eq!(d.action, Action::Block);
    assert!(!d.reason.is_empty() && !d.remediation.is_empty());
}

#[test]
fn default_action_mapping() {
    let text = BASE.replace("    conditions: {}\n", "    conditions:\n      burn_rate: {operator: eq, value: low}\n");
    let l = load(&format!(
        "default_action:\n  action: DELAY\n  reason: nothing matched\n  remediation: wait\n  delay_minutes: 10\n{text}"
    ));
    assert!(!has_errors(&l.findings), "{:#?}", l.findings);
    let d = l.set.and_then(|s| s.default_action).expect("default action");
    assert_eq!((d.action, d.delay_minutes), (Action::Delay, 10));
    let l = load(&format!("default_action:\n  action: BLOCK\n{text}"));
    at(find(&l, Severity::Error, "default_action.reason"), 1, 1); // the block that lacks it
    let l = load(&format!("default_action:\n{text}"));
    at(find(&l, Severity::Error, "default_action"), 1, 1);
}

#[test]
fn missing_required_keys_and_priority_default() {
    let l = load(&BASE.replace("    reason: r\n    remediation: m\n  - id: P2", "  - id: P2"));
    for field in ["policies[0].reason", "policies[0].remediation"] {
        let f = find(&l, Severity::Error, field);
        at(f, 2, 5); // positioned at the rule that lacks it
        assert!(f.message.starts_with("is required"), "{f}");
    }
    let l = load(&BASE.replace("    priority: 99\n", ""));
    let f = find(&l, Severity::Warning, "policies[1].priority");
    assert_eq!(f.message, "no priority; defaults to 99 like the seed tool");
    assert_eq!(l.set.map(|s| s.policies[1].priority), Some(99));
}

#[test]
fn wrong_types_in_a_rule() {
    let l = load(&BASE.replace("priority: 1\n", "priority: \"1\"\n").replace("id: P2", "id: 2"));
    at(find(&l, Severity::Error, "policies[0].priority"), 4, 5);
    // An integer id is accepted and read as text.
    assert!(l.findings.iter().all(|f| f.field != "policies[1].id"));
    let l = load(
        &BASE.replace("    remediation: m\n  - id: P2", "    remediation: m\n    delay_minutes: \"15\"\n  - id: P2"),
    );
    at(find(&l, Severity::Error, "policies[0].delay_minutes"), 10, 5);
    let l =
        load(&BASE.replace("    remediation: m\n  - id: P2", "    remediation: m\n    delay_minutes: -5\n  - id: P2"));
    assert!(find(&l, Severity::Error, "policies[0].delay_minutes").message.contains("negative"));
    let l =
        load(&BASE.replace("    remediation: m\n  - id: P2", "    remediation: m\n    delay_minutes: 1.5\n  - id: P2"));
    assert!(find(&l, Severity::Error, "policies[0].delay_minutes").message.contains("whole number"));
}

#[test]
fn unknown_keys() {
    let l = load(&BASE.replace("    remediation: m\n  - id: P2", "    remediaton: m\n  - id: P2"));
    let f = find(&l, Severity::Error, "policies[0].remediaton");
    at(f, 9, 5);
    assert!(f.message.contains("did you mean \"remediation\"?"), "{f}");
    let l = load(&format!("owner: sre\n{BASE}"));
    at(find(&l, Severity::Warning, "owner"), 1, 1);
    assert!(!has_errors(&l.findings));
}

#[test]
fn alias_bomb() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let prev = format!("*a{}", i - 1);
        let items = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    text.push_str("policies: []\n");
    let l = load(&text);
    assert!(l.set.is_none());
    let f = &l.findings[0];
    assert!(f.message.contains("more than 200000 values"), "{f}");
    assert_eq!(f.line, Some(6));
}

#[test]
fn aliases_and_merge_keys_are_resolved() {
    let text = "\
common: &common
  reason: r
  remediation: m
policies:
  - id: P1
    name: Allow
    priority: 1
    action: ALLOW
    conditions: {}
    <<: *common
";
    let l = load(text);
    assert!(!has_errors(&l.findings), "{:#?}", l.findings);
    let set = l.set.expect("set");
    assert_eq!(set.policies[0].reason, "r");
    // Fields copied by a merge point at their definition.
    assert_eq!(l.map.locate("policies[0].reason"), Some((2, 3)));
}

#[test]
fn tags() {
    let l = with_condition("      service: {operator: eq, value: !!str 10}");
    assert!(!has_errors(&l.findings), "{:#?}", l.findings);
    assert_eq!(
        l.set.map(|s| s.policies[0].conditions[0].value.clone()),
        Some(Threshold::Scalar(Scalar::Text("10".into())))
    );
    let l = with_condition("      service: {operator: eq, value: !secret x}");
    let f = find(&l, Severity::Error, "policies[0].conditions.service.value");
    at(f, 7, 38);
    assert!(f.message.contains("unsupported tag !secret"), "{f}");
}

#[test]
fn non_string_keys_and_multiple_documents() {
    let l = with_condition("      1: {operator: eq, value: 1}");
    let f = find(&l, Severity::Error, "policies[0].conditions");
    at(f, 7, 7);
    assert!(f.message.contains("keys must be strings"), "{f}");
    let l = load(&format!("{BASE}---\npolicies: []\n"));
    let f = find(&l, Severity::Error, "");
    at(f, 17, 1);
    assert!(f.message.contains("more than one YAML document"), "{f}");
}

#[test]
fn display_format() {
    let l = load(&BASE.replace("action: BLOCK", "action: DENY"));
    let f = find(&l, Severity::Error, "policies[0].action");
    assert_eq!(
        f.to_string(),
        "policies.yaml:5:5: error: policies[0].action: unknown action \"DENY\"; expected one of ALLOW, WARN, DELAY, BLOCK (did you mean DELAY?)"
    );
}

#[test]
fn json_policy_files_are_read_too() {
    let text = r#"{"policies": [{"id": "P1", "name": "a", "priority": 1, "action": "ALLOW", "conditions": {},
 "reason": "r", "remediation": "m", "delay_minutes": "x"}]}"#;
    let l = load_policies(&Source::from_text("p.json", text));
    at(find(&l, Severity::Error, "policies[0].delay_minutes"), 2, 37);
}
