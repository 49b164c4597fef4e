//! `config/policies.yaml` → [`PolicySet`], with every structural problem and every
//! [`policy::check`] issue as a positioned [`Finding`].

use guardrail_core::policy::{
    self, Action, Condition, DefaultRule, Operator, Policy, PolicySet, Scalar, Severity, Threshold,
};

use crate::common::{Diags, Format, Unknown, check_keys, get, parse_as, required, sort_findings, string, suggest};
use crate::error::Finding;
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::{self, Node, NodeValue};
use guardrail_core::freeze::TimeWindow;
use std::sync::Arc;

/// The result of reading a policy file.
///
/// `set` is `Some` whenever the file's structure could be read into rules, even when
/// [`policy::check`] found errors; the caller must refuse to decide when
/// [`has_errors`](crate::has_errors)`(&findings)` is true.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyLoad {
    /// The rules, when the structure could be read.
    pub set: Option<PolicySet>,
    /// Every error and warning, in file order.
    pub findings: Vec<Finding>,
    /// Field path → position.
    pub map: SourceMap,
    /// The `freezes:` and `maintenance:` windows, read from the same parse (empty when the file
    /// has neither block, or when they have errors: those are in `findings`).
    pub windows: Vec<TimeWindow>,
}

/// Keys a rule may have.
const POLICY_KEYS: &[&str] =
    &["id", "name", "priority", "action", "services", "conditions", "reason", "remediation", "delay_minutes"];

/// Priority of a rule that does not say (the seed tool's default).
pub const DEFAULT_PRIORITY: i64 = 99;

/// Reads and lints a policy file (YAML, or JSON when the name ends in `.json`).
///
/// The schema is the seed tool's, read strictly (see the crate docs for every rule), plus the
/// optional top-level `default_action`. After the structure is read, [`policy::check`] runs
/// and each of its issues becomes a finding positioned through the source map. When the
/// structure could not be read, the conditions that could be are still checked
/// ([`policy::check_condition`]) and duplicate ids reported, so one run shows as much as
/// possible.
pub fn load_policies(src: &Source) -> PolicyLoad {
    let root = match parse_as(src, Format::Yaml) {
        Ok(r) => r,
        Err(errs) => {
            return PolicyLoad {
                set: None,
                findings: errs.iter().map(|e| e.to_finding(Severity::Error)).collect(),
                map: SourceMap::new(),
                windows: Vec::new(),
            };
        }
    };
    // The map is walked only when a finding needs a position: a valid file of 10,000 rules
    // never does, and the walk was a tenth of such a gate.
    let root = Arc::new(root);
    let mut d = Diags::new(src, SourceMap::lazy(Arc::clone(&root)));
    let set = read_set(&mut d, &root);
    if let Some(set) = &set {
        for issue in policy::check(set) {
            d.push(issue.severity, issue.path, issue.message);
        }
    }
    let mut findings = d.items;
    // The windows are part of the policy file: their errors are the file's errors, so `policy
    // lint` reports them and the gate refuses to decide on them.
    // Without either block `read_freezes` finds nothing (no window, no finding), but it would
    // still walk the whole tree for its eager source map: a tenth of a 10,000-rule gate.
    let has_windows =
        root.as_map().is_some_and(|top| get(top, "freezes").is_some() || get(top, "maintenance").is_some());
    let windows = if !has_windows {
        Vec::new()
    } else {
        match crate::freezes::read_freezes(src, &root) {
            Ok(loaded) => {
                findings.extend(loaded.warnings.iter().map(|w| w.to_finding(Severity::Warning)));
                loaded.value
            }
            Err(errors) => {
                findings.extend(errors.iter().map(|e| e.to_finding(Severity::Error)));
                Vec::new()
            }
        }
    };
    sort_findings(&mut findings);
    PolicyLoad { set, findings, map: d.map, windows }
}

/// One rule as far as it could be read.
struct Partial {
    id: Option<String>,
    conditions: Vec<Condition>,
    policy: Option<Policy>,
}

fn read_set(d: &mut Diags, root: &Node) -> Option<PolicySet> {
    let top = match &root.value {
        NodeValue::Map(m) => m,
        NodeValue::Null => {
            d.error("", "holds no policies (it is empty or only comments); expected a mapping with a `policies:` list");
            return None;
        }
        _ => {
            d.error("", format!("must be a mapping with a `policies:` list at the top level, got {}", root.describe()));
            return None;
        }
    };
    // `freezes` and `maintenance` are read by `crate::freezes::read_freezes`.
    check_keys(
        d,
        "",
        top,
        &["version", "description", "policies", "default_action", "freezes", "maintenance"],
        Unknown::Warn,
        |_| false,
    );
    let mut ok = true;

    let version = match get(top, "version").map(|n| &n.value) {
        None | Some(NodeValue::Null) => None,
        Some(NodeValue::Str(s)) => Some(s.clone()),
        Some(NodeValue::Int(i)) => Some(i.to_string()),
        Some(NodeValue::Float(f)) => Some(yaml::fmt_float(*f)),
        Some(_) => {
            let what = get(top, "version").map(Node::describe).unwrap_or_default();
            d.error("version", format!("must be a string or a number, got {what}"));
            ok = false;
            None
        }
    };
    let description = match get(top, "description") {
        None => None,
        Some(n) if n.is_null() => None,
        Some(n) => {
            let s = string(d, "description", n);
            ok &= s.is_some();
            s
        }
    };

    let default_action = match get(top, "default_action") {
        None => None,
        Some(n) => {
            let r = read_default(d, n);
            ok &= r.is_some();
            r
        }
    };

    let policies = match required(d, "", top, "policies", "the list of rules").map(|n| (n, &n.value)) {
        None => None,
        Some((_, NodeValue::Seq(items))) => Some(items),
        Some((_, NodeValue::Null)) => {
            d.error("policies", "is null: write a list of rules (the seed tool crashed on this)");
            None
        }
        Some((n, _)) => {
            d.error("policies", format!("must be a list of rules, got {}", n.describe()));
            None
        }
    };
    let items = policies?;

    let partials: Vec<Partial> = items.iter().enumerate().map(|(i, n)| read_policy(d, i, n)).collect();
    if ok && partials.iter().all(|p| p.policy.is_some()) {
        let policies = partials.into_iter().filter_map(|p| p.policy).collect();
        return Some(PolicySet { version, description, policies, default_action });
    }
    // The set cannot be built: still check what could be read.
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, p) in partials.iter().enumerate() {
        if let Some(id) = &p.id {
            if let Some((_, first)) = seen.iter().find(|(s, _)| s == id) {
                d.error(format!("policies[{i}].id"), format!("duplicate id \"{id}\" (also policies[{first}])"));
            } else {
                seen.push((id.clone(), i));
            }
        }
        for c in &p.conditions {
            for issue in policy::check_condition(i, c) {
                d.push(issue.severity, issue.path, issue.message);
            }
        }
    }
    None
}

/// A field's path, built only when a finding names it: a rule's dozen paths were formatted for
/// every rule of the file, nearly always to name no finding at all.
type LazyPath<'a> = &'a dyn Fn() -> String;

/// [`string`], naming the field only when the value is not a string.
fn text(d: &mut Diags, path: LazyPath<'_>, node: &Node) -> Option<String> {
    match &node.value {
        NodeValue::Str(s) => Some(s.clone()),
        _ => string(d, &path(), node),
    }
}

fn read_action(d: &mut Diags, path: LazyPath<'_>, node: &Node) -> Option<Action> {
    let expected = "expected one of ALLOW, WARN, DELAY, BLOCK";
    let Some(s) = node.as_str() else {
        d.error(path(), format!("must be an action name ({expected}), got {}", node.describe()));
        return None;
    };
    match Action::parse(s) {
        Some(a) => {
            if s != a.as_str() {
                d.warning(path(), format!("read {s:?} as {a}; write {a} in upper case"));
            }
            Some(a)
        }
        None => {
            let mut msg = format!("unknown action {s:?}; {expected}");
            if let Some(g) = suggest(s, &["ALLOW", "WARN", "DELAY", "BLOCK"]) {
                msg.push_str(&format!(" (did you mean {g}?)"));
            }
            d.error(path(), msg);
            None
        }
    }
}

fn read_delay(d: &mut Diags, path: LazyPath<'_>, node: Option<&Node>) -> Option<u32> {
    let Some(node) = node else { return Some(0) };
    match &node.value {
        NodeValue::Int(i) if *i < 0 => {
            d.error(path(), format!("must not be negative, got {i}"));
            None
        }
        NodeValue::Int(i) => match u32::try_from(*i) {
            Ok(v) => Some(v),
            Err(_) => {
                d.error(path(), format!("{i} minutes is too large"));
                None
            }
        },
        _ => {
            d.error(path(), format!("must be a whole number of minutes, got {}", node.describe()));
            None
        }
    }
}

fn read_default(d: &mut Diags, node: &Node) -> Option<DefaultRule> {
    let p = "default_action";
    let rule = match &node.value {
        NodeValue::Str(_) => {
            let action = read_action(d, &|| p.to_string(), node)?;
            DefaultRule {
                action,
                reason: format!("No rule matched; the policy file's default_action is {action}"),
                remediation: "Review the policies: no rule covers these signals.".to_string(),
                delay_minutes: 0,
            }
        }
        NodeValue::Map(m) => {
            check_keys(d, p, m, &["action", "reason", "remediation", "delay_minutes"], Unknown::Error, |_| false);
            let action = required(d, p, m, "action", "ALLOW, WARN, DELAY or BLOCK")
                .and_then(|n| read_action(d, &|| "default_action.action".to_string(), n));
            let reason = required(d, p, m, "reason", "").and_then(|n| string(d, "default_action.reason", n));
            let remediation =
                required(d, p, m, "remediation", "").and_then(|n| string(d, "default_action.remediation", n));
            let delay = read_delay(d, &|| "default_action.delay_minutes".to_string(), get(m, "delay_minutes"));
            DefaultRule { action: action?, reason: reason?, remediation: remediation?, delay_minutes: delay? }
        }
        _ => {
            d.error(
                p,
                format!(
                    "must be an action (ALLOW, WARN, DELAY, BLOCK) or a mapping {{action, reason, remediation}}, got {}",
                    node.describe()
                ),
            );
            return None;
        }
    };
    if rule.action == Action::Delay && rule.delay_minutes == 0 {
        d.warning(p, "DELAY with 0 minutes: the pipeline is told to wait for nothing");
    }
    if rule.action != Action::Delay && rule.delay_minutes != 0 {
        d.warning("default_action.delay_minutes", format!("delay_minutes is ignored for {}", rule.action));
    }
    Some(rule)
}

fn read_policy(d: &mut Diags, i: usize, node: &Node) -> Partial {
    let p = format!("policies[{i}]");
    let field = |k: &str| format!("{p}.{k}");
    let mut partial = Partial { id: None, conditions: Vec::new(), policy: None };
    let Some(m) = node.as_map() else {
        d.error(
            &p,
            format!(
                "a rule must be a mapping (id, name, priority, action, conditions, reason, remediation), got {}",
                node.describe()
            ),
        );
        return partial;
    };
    check_keys(d, &p, m, POLICY_KEYS, Unknown::Error, |_| false);

    let id = required(d, &p, m, "id", "a unique rule id, e.g. P001").and_then(|n| match &n.value {
        NodeValue::Str(s) => Some(s.clone()),
        NodeValue::Int(i) => Some(i.to_string()),
        _ => {
            d.error(field("id"), format!("must be a string, got {}", n.describe()));
            None
        }
    });
    partial.id = id.clone();
    let name = required(d, &p, m, "name", "").and_then(|n| text(d, &|| field("name"), n));
    let priority = match get(m, "priority") {
        None => {
            d.warning(field("priority"), format!("no priority; defaults to {DEFAULT_PRIORITY} like the seed tool"));
            Some(DEFAULT_PRIORITY)
        }
        Some(n) => match n.value {
            NodeValue::Int(v) => Some(v),
            _ => {
                d.error(field("priority"), format!("must be an integer, got {}", n.describe()));
                None
            }
        },
    };
    let action = required(d, &p, m, "action", "ALLOW, WARN, DELAY or BLOCK")
        .and_then(|n| read_action(d, &|| field("action"), n));
    // `services:` scopes the rule to a fleet's services: it becomes the rule's first condition,
    // `service in services matching [...]`, so the trace shows it and nothing else is read for
    // a service out of scope.
    let scope = match get(m, "services") {
        None => Some(None),
        Some(n) => read_scope(d, &field("services"), n).map(Some),
    };
    let conditions = match get(m, "conditions") {
        None => {
            d.warning(
                field("conditions"),
                "no conditions: this rule always matches; write `conditions: {}` to make a catch-all explicit",
            );
            Some(Vec::new())
        }
        Some(n) => match &n.value {
            NodeValue::Null => {
                d.error(field("conditions"), "null conditions would match everything; write {} for a catch-all");
                None
            }
            NodeValue::Map(entries) => {
                let mut ok = true;
                for (signal, c) in entries {
                    match read_condition(d, &|| field("conditions"), id.as_deref(), signal, c) {
                        Some(c) => partial.conditions.push(c),
                        None => ok = false,
                    }
                }
                ok.then(|| partial.conditions.clone())
            }
            _ => {
                d.error(
                    field("conditions"),
                    format!("must be a mapping of signal → {{operator, value}}, got {}", n.describe()),
                );
                None
            }
        },
    };
    let reason =
        required(d, &p, m, "reason", "shown when the rule decides").and_then(|n| text(d, &|| field("reason"), n));
    let remediation = required(d, &p, m, "remediation", "shown when the rule decides")
        .and_then(|n| text(d, &|| field("remediation"), n));
    let delay = read_delay(d, &|| field("delay_minutes"), get(m, "delay_minutes"));

    if let Some(Some(c)) = &scope {
        // Checked with the rest when the set cannot be built.
        partial.conditions.insert(0, c.clone());
    }
    let conditions = match (scope, conditions) {
        (Some(Some(scope)), Some(mut rest)) => {
            rest.insert(0, scope);
            Some(rest)
        }
        (Some(None), rest) => rest,
        (None, _) | (Some(Some(_)), None) => None,
    };
    if let (
        Some(id),
        Some(name),
        Some(priority),
        Some(action),
        Some(conditions),
        Some(reason),
        Some(remediation),
        Some(delay_minutes),
    ) = (id, name, priority, action, conditions, reason, remediation, delay)
    {
        partial.policy = Some(Policy { id, name, priority, action, conditions, reason, remediation, delay_minutes });
    }
    partial
}

/// A rule's `services:` list: names and globs (`*`), as the scope condition on `service`.
fn read_scope(d: &mut Diags, path: &str, node: &Node) -> Option<Condition> {
    let NodeValue::Seq(items) = &node.value else {
        d.error(
            path,
            format!("must be a list of service names or globs, e.g. [\"payments-*\"], got {}", node.describe()),
        );
        return None;
    };
    let mut services = Vec::with_capacity(items.len());
    let mut ok = true;
    for (j, item) in items.iter().enumerate() {
        match &item.value {
            NodeValue::Str(s) => services.push(s.clone()),
            _ => {
                d.error(
                    format!("{path}[{j}]"),
                    format!("must be a service name or glob (a string), got {}; quote it", item.describe()),
                );
                ok = false;
            }
        }
    }
    ok.then(|| Condition {
        signal: "service".to_string(),
        operator: Operator::In,
        value: Threshold::Services { services },
    })
}

fn read_condition(
    d: &mut Diags,
    parent: LazyPath<'_>,
    rule_id: Option<&str>,
    signal: &str,
    node: &Node,
) -> Option<Condition> {
    let cp = || format!("{}.{signal}", parent());
    let Some(m) = node.as_map() else {
        d.error(
            cp(),
            format!(
                "a condition must be a mapping {{operator, value}}, got {}; e.g. `{signal}: {{operator: lt, value: 10}}`",
                node.describe()
            ),
        );
        return None;
    };
    const CONDITION_KEYS: &[&str] = &["operator", "value"];
    // `check_keys` reports only keys outside the list: no path to build when there is none.
    if m.iter().any(|(k, _)| !CONDITION_KEYS.contains(&k.as_str())) {
        check_keys(d, &cp(), m, CONDITION_KEYS, Unknown::Error, |_| false);
    }
    let operator = match get(m, "operator") {
        // The seed tool compared with `eq` when the operator was missing, so deleting one
        // line (`operator: lt`) silently turned a DELAY rule into one that never matches.
        // Its own files always state the operator; Guardrail requires it.
        None => {
            let rule = rule_id.map(|id| format!("rule {id}: ")).unwrap_or_default();
            d.error(
                format!("{}.operator", cp()),
                format!(
                    "{rule}is required: the condition on {signal} has no operator (the seed tool silently \
                     compared with eq); write one of {}, e.g. `{signal}: {{operator: lt, value: …}}`",
                    Operator::NAMES
                ),
            );
            None
        }
        Some(n) => match n.as_str() {
            Some(s) => match Operator::parse(s) {
                Some(op) => Some(op),
                None => {
                    let mut msg = format!("unknown operator {s:?}; expected one of {}", Operator::NAMES);
                    let names: Vec<&str> = Operator::NAMES.split(", ").collect();
                    if let Some(g) = suggest(s, &names) {
                        msg.push_str(&format!(" (did you mean {g}?)"));
                    }
                    d.error(format!("{}.operator", cp()), msg);
                    None
                }
            },
            None => {
                d.error(
                    format!("{}.operator", cp()),
                    format!("must be one of {}, got {}", Operator::NAMES, n.describe()),
                );
                None
            }
        },
    };
    let vp = || format!("{}.value", cp());
    let value = match get(m, "value") {
        None => {
            d.error(vp(), "is required: the value to compare the signal with");
            None
        }
        Some(n) => threshold(d, &vp, n),
    };
    Some(Condition { signal: signal.to_string(), operator: operator?, value: value? })
}

fn scalar(d: &mut Diags, path: LazyPath<'_>, node: &Node) -> Option<Scalar> {
    match &node.value {
        NodeValue::Int(i) => Some(Scalar::Number(*i as f64)),
        NodeValue::Float(f) => Some(Scalar::Number(*f)),
        NodeValue::Str(s) => Some(Scalar::Text(s.clone())),
        NodeValue::Bool(b) => {
            if node.yaml11_bool {
                d.warning(path(), format!("read as boolean {b}, as PyYAML does; quote it if you meant the string"));
            }
            Some(Scalar::Bool(*b))
        }
        NodeValue::Null => {
            d.error(path(), "is null: a condition needs a value to compare the signal with");
            None
        }
        NodeValue::Seq(_) | NodeValue::Map(_) => {
            d.error(path(), format!("must be a single value (number, boolean or string), got {}", node.describe()));
            None
        }
    }
}

fn threshold(d: &mut Diags, path: LazyPath<'_>, node: &Node) -> Option<Threshold> {
    match &node.value {
        NodeValue::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut ok = true;
            for (j, item) in items.iter().enumerate() {
                match scalar(d, &|| format!("{}[{j}]", path()), item) {
                    Some(s) => out.push(s),
                    None => ok = false,
                }
            }
            ok.then_some(Threshold::List(out))
        }
        NodeValue::Map(_) => {
            d.error(path(), "must be a single value or a list of values, got a mapping");
            None
        }
        _ => scalar(d, path, node).map(Threshold::Scalar),
    }
}
