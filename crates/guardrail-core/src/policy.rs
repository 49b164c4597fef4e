//! The policy language: an ordered list of rules, each an AND of conditions over named
//! signals, evaluated first-match by ascending priority (ties keep file order).
//!
//! Three stages, all pure:
//! 1. the AST below is built by `guardrail-config` from YAML (with source positions kept
//!    there, keyed by the field paths used in [`PolicyIssue::path`]);
//! 2. [`check`] validates a set: unknown signals, operator/type mismatches, labels that do not
//!    exist, duplicate ids, rules that can never match or are shadowed by an earlier rule, and a
//!    set with no catch-all and no explicit `default_action`. The gate refuses to decide on a set
//!    with any error;
//! 3. [`evaluate`] runs the rules over one [`Signals`] snapshot and returns a [`Decision`] that
//!    records the winning rule, every compared value and a trace of all rules.
//!
//! There is no silent fallback: when nothing matches, the set's `default_action` decides, and
//! without one evaluation is an error (the seed tool's "P-FALLBACK" ALLOW does not exist here).

use serde::Serialize;

use crate::signals::{self, SignalKind, SignalValue, Signals};

/// What the gate tells the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    /// Go ahead.
    Allow,
    /// Go ahead, but someone should look.
    Warn,
    /// Wait `delay_minutes` and ask again.
    Delay,
    /// Do not deploy.
    Block,
}

impl Action {
    /// Upper-case name, as in policies and outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Warn => "WARN",
            Action::Delay => "DELAY",
            Action::Block => "BLOCK",
        }
    }

    /// Parses an action name, ignoring ASCII case (the seed accepted `block`).
    pub fn parse(s: &str) -> Option<Action> {
        match s.to_ascii_uppercase().as_str() {
            "ALLOW" => Some(Action::Allow),
            "WARN" => Some(Action::Warn),
            "DELAY" => Some(Action::Delay),
            "BLOCK" => Some(Action::Block),
            _ => None,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Operator {
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `==`
    Eq,
    /// `!=`
    Neq,
    /// membership in a list
    In,
}

impl Operator {
    /// Parses an operator name as written in policies.
    pub fn parse(s: &str) -> Option<Operator> {
        Some(match s {
            "lt" => Operator::Lt,
            "lte" => Operator::Lte,
            "gt" => Operator::Gt,
            "gte" => Operator::Gte,
            "eq" => Operator::Eq,
            "neq" => Operator::Neq,
            "in" => Operator::In,
            _ => return None,
        })
    }

    /// Name as written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Eq => "eq",
            Operator::Neq => "neq",
            Operator::In => "in",
        }
    }

    /// Mathematical symbol, for explanations.
    pub fn symbol(self) -> &'static str {
        match self {
            Operator::Lt => "<",
            Operator::Lte => "<=",
            Operator::Gt => ">",
            Operator::Gte => ">=",
            Operator::Eq => "==",
            Operator::Neq => "!=",
            Operator::In => "in",
        }
    }

    /// All operator names, for error messages.
    pub const NAMES: &'static str = "lt, lte, gt, gte, eq, neq, in";
}

/// A single threshold value.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Text(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Text(t) => write!(f, "{t}"),
        }
    }
}

/// A condition's `value`: one scalar, or a list for `in`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Threshold {
    /// One value.
    Scalar(Scalar),
    /// A list (only meaningful with `in`).
    List(Vec<Scalar>),
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Threshold::Scalar(s) => write!(f, "{s}"),
            Threshold::List(xs) => {
                f.write_str("[")?;
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// One condition: `signal operator value`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Condition {
    /// Signal name (see [`signals::CATALOGUE`]).
    pub signal: String,
    /// Operator (`eq` when the file omits it, as in the seed tool).
    pub operator: Operator,
    /// Threshold.
    pub value: Threshold,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Policy {
    /// Unique id, e.g. `P001`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Ascending evaluation order; ties keep file order.
    pub priority: i64,
    /// Decision when this rule wins.
    pub action: Action,
    /// ANDed conditions; empty means "always matches" (a catch-all).
    pub conditions: Vec<Condition>,
    /// Why, shown to people.
    pub reason: String,
    /// What to do, shown to people.
    pub remediation: String,
    /// For DELAY: minutes to wait before asking again.
    pub delay_minutes: u32,
}

/// What to decide when no rule matches (a Guardrail extension: `default_action:` in the file).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DefaultRule {
    /// The decision.
    pub action: Action,
    /// Why.
    pub reason: String,
    /// What to do.
    pub remediation: String,
    /// For DELAY.
    pub delay_minutes: u32,
}

/// A policy file.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PolicySet {
    /// `version:` as written.
    pub version: Option<String>,
    /// `description:` as written.
    pub description: Option<String>,
    /// Rules in file order.
    pub policies: Vec<Policy>,
    /// Explicit decision when nothing matches.
    pub default_action: Option<DefaultRule>,
}

impl PolicySet {
    /// Rule indices in evaluation order: ascending priority, stable.
    pub fn order(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.policies.len()).collect();
        idx.sort_by_key(|&i| self.policies[i].priority);
        idx
    }
}

/// How serious a finding is: errors stop the gate, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look; the set is still usable.
    Warning,
    /// The set must not be used to decide.
    Error,
}

/// A finding about a policy set. `path` is the field path in the file, e.g.
/// `policies[2].conditions.burn_rate.value`, which `guardrail-config` maps to line and column.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PolicyIssue {
    /// Error or warning.
    pub severity: Severity,
    /// Field path in the file.
    pub path: String,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl PolicyIssue {
    /// An error at `path`.
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyIssue { severity: Severity::Error, path: path.into(), message: message.into() }
    }
    /// A warning at `path`.
    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyIssue { severity: Severity::Warning, path: path.into(), message: message.into() }
    }
}

/// Field path of a policy by file index.
pub fn policy_path(index: usize) -> String {
    format!("policies[{index}]")
}

/// Field path of a condition.
pub fn condition_path(index: usize, signal: &str) -> String {
    format!("policies[{index}].conditions.{signal}")
}

fn kind_name(kind: SignalKind) -> &'static str {
    match kind {
        SignalKind::Number => "a number",
        SignalKind::Bool => "a boolean",
        SignalKind::Label(_) => "a label",
        SignalKind::Text => "text",
    }
}

/// Why a threshold cannot be compared with its signal.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum Misfit {
    #[error("threshold {0} is not a finite number")]
    NotFinite(f64),
    #[error("\"{value}\" is not a possible value; expected one of {}", labels.join(", "))]
    NotALabel { value: String, labels: &'static [&'static str] },
    #[error("expected {} but the threshold {threshold} is {found}", kind_name(*expected))]
    WrongType { expected: SignalKind, threshold: Scalar, found: &'static str },
}

fn scalar_fits(kind: SignalKind, s: &Scalar) -> Result<(), Misfit> {
    match (kind, s) {
        (SignalKind::Number, Scalar::Number(n)) if n.is_finite() => Ok(()),
        (SignalKind::Number, Scalar::Number(n)) => Err(Misfit::NotFinite(*n)),
        (SignalKind::Bool, Scalar::Bool(_)) => Ok(()),
        (SignalKind::Text, Scalar::Text(_)) => Ok(()),
        (SignalKind::Label(labels), Scalar::Text(t)) => {
            if labels.contains(&t.as_str()) {
                Ok(())
            } else {
                Err(Misfit::NotALabel { value: t.clone(), labels })
            }
        }
        (kind, other) => {
            let found = match other {
                Scalar::Number(_) => "a number",
                Scalar::Bool(_) => "a boolean",
                Scalar::Text(_) => "a string",
            };
            Err(Misfit::WrongType { expected: kind, threshold: other.clone(), found })
        }
    }
}

/// Checks one condition on its own; returns the issues found.
pub fn check_condition(index: usize, c: &Condition) -> Vec<PolicyIssue> {
    let path = condition_path(index, &c.signal);
    let mut out = Vec::new();
    let Some(def) = signals::lookup(&c.signal) else {
        let known: Vec<&str> = signals::CATALOGUE.iter().map(|d| d.name).collect();
        out.push(PolicyIssue::error(
            path,
            format!("unknown signal \"{}\"; known signals: {}", c.signal, known.join(", ")),
        ));
        return out;
    };
    let ordered = matches!(c.operator, Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte);
    if ordered && def.kind != SignalKind::Number {
        out.push(PolicyIssue::error(
            format!("{path}.operator"),
            format!("operator {} needs a number, but {} is {}", c.operator.as_str(), c.signal, kind_name(def.kind)),
        ));
        return out;
    }
    match (&c.operator, &c.value) {
        (Operator::In, Threshold::List(items)) => {
            if items.is_empty() {
                out.push(PolicyIssue::error(format!("{path}.value"), "an empty list never matches"));
            }
            for (i, s) in items.iter().enumerate() {
                if let Err(e) = scalar_fits(def.kind, s) {
                    out.push(PolicyIssue::error(format!("{path}.value[{i}]"), e.to_string()));
                }
            }
        }
        (Operator::In, Threshold::Scalar(s)) => out.push(PolicyIssue::error(
            format!("{path}.value"),
            format!("operator in needs a list, e.g. [\"{s}\"]; a single value (the seed tool did substring matching on strings) is refused"),
        )),
        (op, Threshold::List(_)) => out.push(PolicyIssue::error(
            format!("{path}.value"),
            format!("operator {} compares with one value, not a list (use in for lists)", op.as_str()),
        )),
        (_, Threshold::Scalar(s)) => {
            if let Err(e) = scalar_fits(def.kind, s) {
                out.push(PolicyIssue::error(format!("{path}.value"), e.to_string()));
            }
        }
    }
    out
}

/// Validates a whole set. Errors make the set unusable; see the module docs.
pub fn check(set: &PolicySet) -> Vec<PolicyIssue> {
    let mut out = Vec::new();
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, p) in set.policies.iter().enumerate() {
        let path = policy_path(i);
        if p.id.trim().is_empty() {
            out.push(PolicyIssue::error(format!("{path}.id"), "id is empty"));
        }
        if let Some(first) = seen.insert(p.id.as_str(), i) {
            out.push(PolicyIssue::error(
                format!("{path}.id"),
                format!("duplicate id \"{}\" (also policies[{first}])", p.id),
            ));
        }
        let mut cond_ok = true;
        for c in &p.conditions {
            let issues = check_condition(i, c);
            cond_ok &= issues.is_empty();
            out.extend(issues);
        }
        if p.action == Action::Delay && p.delay_minutes == 0 {
            out.push(PolicyIssue::warning(
                format!("{path}.delay_minutes"),
                "DELAY with 0 minutes: the pipeline is told to wait for nothing",
            ));
        }
        if p.action != Action::Delay && p.delay_minutes != 0 {
            out.push(PolicyIssue::warning(
                format!("{path}.delay_minutes"),
                format!("delay_minutes is ignored for {}", p.action),
            ));
        }
        if cond_ok && rule_set(p).is_none() {
            out.push(PolicyIssue::error(
                path.clone(),
                format!(
                    "rule {} can never match: its conditions contradict each other or the signal's possible values",
                    p.id
                ),
            ));
        }
    }
    // Priority ties are legal (file order decides) but easy to get wrong.
    let mut by_priority: std::collections::BTreeMap<i64, Vec<&str>> = std::collections::BTreeMap::new();
    for p in &set.policies {
        by_priority.entry(p.priority).or_default().push(&p.id);
    }
    for (prio, ids) in by_priority {
        if ids.len() > 1
            && let Some(pos) = set.policies.iter().position(|p| p.priority == prio)
        {
            out.push(PolicyIssue::warning(
                format!("{}.priority", policy_path(pos)),
                format!("priority {prio} is shared by {}; file order decides between them", ids.join(", ")),
            ));
        }
    }
    // Shadowing: B is unreachable when every input matching B matches an earlier A.
    if out.iter().all(|i| i.severity != Severity::Error) {
        let order = set.order();
        for (pos, &b) in order.iter().enumerate() {
            let Some(bset) = rule_set(&set.policies[b]) else { continue };
            for &a in &order[..pos] {
                let Some(aset) = rule_set(&set.policies[a]) else { continue };
                if rule_subset(&bset, &aset) {
                    let pb = &set.policies[b];
                    let pa = &set.policies[a];
                    out.push(PolicyIssue::error(
                        policy_path(b),
                        format!(
                            "rule {} ({}) is unreachable: every input it matches is already matched by {} ({}), which is evaluated first",
                            pb.id, pb.action, pa.id, pa.action
                        ),
                    ));
                    break;
                }
            }
        }
        let has_catch_all =
            set.policies.iter().any(|p| rule_set(p).is_some_and(|s| s.iter().all(|(_, c)| c.is_everything())));
        if !has_catch_all && set.default_action.is_none() {
            out.push(PolicyIssue::error(
                "policies",
                "no catch-all rule (a rule with `conditions: {}`) and no `default_action`: some inputs would match nothing. Add a last rule with empty conditions, or a top-level `default_action: {action: BLOCK, reason: …, remediation: …}`",
            ));
        }
        if has_catch_all && set.default_action.is_some() {
            out.push(PolicyIssue::warning("default_action", "never used: a catch-all rule always matches first"));
        }
    }
    out
}

/// True when any issue is an error.
pub fn has_errors(issues: &[PolicyIssue]) -> bool {
    issues.iter().any(|i| i.severity == Severity::Error)
}

// ---------------------------------------------------------------------------------------
// Sets of values a condition accepts, for shadowing and satisfiability analysis.

#[derive(Debug, Clone, Copy, PartialEq)]
struct Interval {
    lo: f64,
    lo_incl: bool,
    hi: f64,
    hi_incl: bool,
}

impl Interval {
    fn is_empty(&self) -> bool {
        self.lo > self.hi || (self.lo == self.hi && !(self.lo_incl && self.hi_incl))
    }
    fn intersect(&self, o: &Interval) -> Interval {
        let (lo, lo_incl) = if self.lo > o.lo {
            (self.lo, self.lo_incl)
        } else if o.lo > self.lo {
            (o.lo, o.lo_incl)
        } else {
            (self.lo, self.lo_incl && o.lo_incl)
        };
        let (hi, hi_incl) = if self.hi < o.hi {
            (self.hi, self.hi_incl)
        } else if o.hi < self.hi {
            (o.hi, o.hi_incl)
        } else {
            (self.hi, self.hi_incl && o.hi_incl)
        };
        Interval { lo, lo_incl, hi, hi_incl }
    }
}

const ALL_REALS: Interval = Interval { lo: f64::NEG_INFINITY, lo_incl: true, hi: f64::INFINITY, hi_incl: true };

/// The values a set of conditions on one signal accepts.
#[derive(Debug, Clone, PartialEq)]
enum ValueSet {
    /// Union of intervals (numbers).
    Numbers(Vec<Interval>),
    /// Exactly these values (bools and labels, as text), or everything but them (free text).
    Discrete { values: Vec<String>, complement: bool, domain: Option<Vec<String>> },
}

impl ValueSet {
    fn is_empty(&self) -> bool {
        match self {
            ValueSet::Numbers(v) => v.iter().all(Interval::is_empty),
            ValueSet::Discrete { values, complement: false, .. } => values.is_empty(),
            ValueSet::Discrete { values, complement: true, domain } => {
                domain.as_ref().is_some_and(|d| d.iter().all(|x| values.contains(x)))
            }
        }
    }
    fn is_everything(&self) -> bool {
        match self {
            ValueSet::Numbers(v) => complement_numbers(v).iter().all(Interval::is_empty),
            ValueSet::Discrete { values, complement: true, .. } => values.is_empty(),
            ValueSet::Discrete { values, complement: false, domain } => {
                domain.as_ref().is_some_and(|d| d.iter().all(|x| values.contains(x)))
            }
        }
    }
}

fn complement_numbers(v: &[Interval]) -> Vec<Interval> {
    // complement(A ∪ B) = complement(A) ∩ complement(B); each complement is ≤ 2 intervals.
    let mut acc = vec![ALL_REALS];
    for i in v {
        if i.is_empty() {
            continue;
        }
        let mut comp = Vec::new();
        if i.lo > f64::NEG_INFINITY || !i.lo_incl {
            comp.push(Interval { lo: f64::NEG_INFINITY, lo_incl: true, hi: i.lo, hi_incl: !i.lo_incl });
        }
        if i.hi < f64::INFINITY || !i.hi_incl {
            comp.push(Interval { lo: i.hi, lo_incl: !i.hi_incl, hi: f64::INFINITY, hi_incl: true });
        }
        let mut next = Vec::new();
        for a in &acc {
            for c in &comp {
                let x = a.intersect(c);
                if !x.is_empty() {
                    next.push(x);
                }
            }
        }
        acc = next;
    }
    acc
}

fn intersect_numbers(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let z = x.intersect(y);
            if !z.is_empty() {
                out.push(z);
            }
        }
    }
    out
}

fn scalar_key(s: &Scalar) -> String {
    match s {
        Scalar::Bool(b) => b.to_string(),
        Scalar::Text(t) => t.clone(),
        Scalar::Number(n) => n.to_string(),
    }
}

fn condition_set(c: &Condition) -> Option<ValueSet> {
    let def = signals::lookup(&c.signal)?;
    match def.kind {
        SignalKind::Number => {
            let point = |n: f64| Interval { lo: n, lo_incl: true, hi: n, hi_incl: true };
            let single = match &c.value {
                Threshold::Scalar(Scalar::Number(n)) => Some(*n),
                _ => None,
            };
            let set = match (c.operator, single) {
                (Operator::Lt, Some(n)) => {
                    vec![Interval { lo: f64::NEG_INFINITY, lo_incl: true, hi: n, hi_incl: false }]
                }
                (Operator::Lte, Some(n)) => {
                    vec![Interval { lo: f64::NEG_INFINITY, lo_incl: true, hi: n, hi_incl: true }]
                }
                (Operator::Gt, Some(n)) => vec![Interval { lo: n, lo_incl: false, hi: f64::INFINITY, hi_incl: true }],
                (Operator::Gte, Some(n)) => vec![Interval { lo: n, lo_incl: true, hi: f64::INFINITY, hi_incl: true }],
                (Operator::Eq, Some(n)) => vec![point(n)],
                (Operator::Neq, Some(n)) => complement_numbers(&[point(n)]),
                (Operator::In, None) => match &c.value {
                    Threshold::List(xs) => xs
                        .iter()
                        .filter_map(|x| match x {
                            Scalar::Number(n) => Some(point(*n)),
                            _ => None,
                        })
                        .collect(),
                    Threshold::Scalar(_) => return None,
                },
                _ => return None,
            };
            let (lo, hi) = def.range.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
            let domain = [Interval { lo, lo_incl: true, hi, hi_incl: true }];
            Some(ValueSet::Numbers(intersect_numbers(&set, &domain)))
        }
        SignalKind::Bool | SignalKind::Label(_) | SignalKind::Text => {
            let domain: Option<Vec<String>> = match def.kind {
                SignalKind::Bool => Some(vec!["true".into(), "false".into()]),
                SignalKind::Label(ls) => Some(ls.iter().map(|s| s.to_string()).collect()),
                _ => None,
            };
            let (values, complement) = match (&c.operator, &c.value) {
                (Operator::Eq, Threshold::Scalar(s)) => (vec![scalar_key(s)], false),
                (Operator::Neq, Threshold::Scalar(s)) => (vec![scalar_key(s)], true),
                (Operator::In, Threshold::List(xs)) => (xs.iter().map(scalar_key).collect(), false),
                _ => return None,
            };
            Some(ValueSet::Discrete { values, complement, domain })
        }
    }
}

fn intersect_sets(a: &ValueSet, b: &ValueSet) -> ValueSet {
    match (a, b) {
        (ValueSet::Numbers(x), ValueSet::Numbers(y)) => ValueSet::Numbers(intersect_numbers(x, y)),
        (
            ValueSet::Discrete { values: va, complement: ca, domain },
            ValueSet::Discrete { values: vb, complement: cb, .. },
        ) => match (ca, cb) {
            (false, false) => ValueSet::Discrete {
                values: va.iter().filter(|v| vb.contains(v)).cloned().collect(),
                complement: false,
                domain: domain.clone(),
            },
            (false, true) => ValueSet::Discrete {
                values: va.iter().filter(|v| !vb.contains(v)).cloned().collect(),
                complement: false,
                domain: domain.clone(),
            },
            (true, false) => ValueSet::Discrete {
                values: vb.iter().filter(|v| !va.contains(v)).cloned().collect(),
                complement: false,
                domain: domain.clone(),
            },
            (true, true) => {
                let mut v = va.clone();
                v.extend(vb.iter().filter(|x| !va.contains(x)).cloned());
                ValueSet::Discrete { values: v, complement: true, domain: domain.clone() }
            }
        },
        // Mixed kinds cannot happen for one signal.
        _ => a.clone(),
    }
}

/// `sub ⊆ sup` for two sets over the same signal.
fn set_subset(sub: &ValueSet, sup: &ValueSet) -> bool {
    match (sub, sup) {
        (ValueSet::Numbers(s), ValueSet::Numbers(p)) => intersect_numbers(s, &complement_numbers(p)).is_empty(),
        (
            ValueSet::Discrete { values: vs, complement: cs, domain },
            ValueSet::Discrete { values: vp, complement: cp, .. },
        ) => {
            // Turn complements into explicit sets where the domain is finite.
            let explicit = |v: &Vec<String>, c: bool| -> Option<Vec<String>> {
                if !c {
                    Some(v.clone())
                } else {
                    domain.as_ref().map(|d| d.iter().filter(|x| !v.contains(x)).cloned().collect())
                }
            };
            match (explicit(vs, *cs), explicit(vp, *cp)) {
                (Some(s), Some(p)) => s.iter().all(|x| p.contains(x)),
                (Some(s), None) => s.iter().all(|x| !vp.contains(x)),
                (None, Some(_)) => false,
                (None, None) => vp.iter().all(|x| vs.contains(x)),
            }
        }
        _ => false,
    }
}

/// The per-signal sets a rule accepts; `None` when the rule can never match (or cannot be
/// analysed because a condition is invalid).
fn rule_set(p: &Policy) -> Option<Vec<(String, ValueSet)>> {
    let mut sets: Vec<(String, ValueSet)> = Vec::new();
    for c in &p.conditions {
        let s = condition_set(c)?;
        if let Some(slot) = sets.iter_mut().find(|(n, _)| *n == c.signal) {
            slot.1 = intersect_sets(&slot.1, &s);
        } else {
            sets.push((c.signal.clone(), s));
        }
    }
    if sets.iter().any(|(_, s)| s.is_empty()) {
        return None;
    }
    Some(sets)
}

/// True when every input accepted by `b` is accepted by `a`.
fn rule_subset(b: &[(String, ValueSet)], a: &[(String, ValueSet)]) -> bool {
    a.iter().all(|(signal, aset)| match b.iter().find(|(n, _)| n == signal) {
        Some((_, bset)) => set_subset(bset, aset),
        None => aset.is_everything(),
    })
}

// ---------------------------------------------------------------------------------------
// Evaluation.

/// One compared condition, with the exact values compared.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ConditionOutcome {
    /// Signal name.
    pub signal: String,
    /// Operator.
    pub operator: Operator,
    /// Threshold from the policy.
    pub threshold: Threshold,
    /// The signal's value in this evaluation.
    pub actual: SignalValue,
    /// Whether the condition held.
    pub result: bool,
}

impl ConditionOutcome {
    /// `error_budget_pct < 30 (actual 18.98): true`
    pub fn describe(&self) -> String {
        format!(
            "{} {} {} (actual {}): {}",
            self.signal,
            self.operator.symbol(),
            self.threshold,
            self.actual,
            self.result
        )
    }
}

/// One rule in the trace.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RuleTrace {
    /// Rule id.
    pub id: String,
    /// Rule name.
    pub name: String,
    /// Rule action.
    pub action: Action,
    /// Rule priority.
    pub priority: i64,
    /// All conditions held.
    pub matched: bool,
    /// This rule decided.
    pub winner: bool,
    /// Why it matched or not, in words.
    pub why: String,
    /// Every condition compared (stops at the first unavailable signal).
    pub conditions: Vec<ConditionOutcome>,
}

/// What would have to change for the deploy to be allowed.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Counterfactual {
    /// A rule that matched before any ALLOW could be reached.
    pub rule_id: String,
    /// Its action.
    pub action: Action,
    /// Any one of these would stop it matching (e.g. `error_budget_pct >= 30; now 18.98`).
    pub any_of: Vec<String>,
}

/// Where the decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// A rule matched.
    Rule,
    /// No rule matched; the set's `default_action` applied.
    DefaultAction,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Decision {
    /// The decision.
    pub action: Action,
    /// Winning rule id (`DEFAULT` for the default action).
    pub policy_id: String,
    /// Winning rule name.
    pub policy_name: String,
    /// Why.
    pub reason: String,
    /// What to do.
    pub remediation: String,
    /// For DELAY.
    pub delay_minutes: u32,
    /// Rule or default action.
    pub decided_by: DecidedBy,
    /// The winning rule's conditions with the compared values.
    pub conditions: Vec<ConditionOutcome>,
    /// Every rule in evaluation order.
    pub trace: Vec<RuleTrace>,
    /// For non-ALLOW outcomes: what would need to change to reach ALLOW.
    pub counterfactual: Vec<Counterfactual>,
}

impl Decision {
    /// One-line counterfactual summary, e.g. `ALLOW needs error_budget_pct >= 30; now 18.98`.
    pub fn counterfactual_summary(&self) -> Option<String> {
        if self.counterfactual.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .counterfactual
            .iter()
            .map(|c| if c.any_of.len() == 1 { c.any_of[0].clone() } else { format!("({})", c.any_of.join(" or ")) })
            .collect();
        Some(format!("ALLOW needs {}", parts.join(" and ")))
    }
}

/// Why an evaluation could not decide.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The set failed [`check`].
    #[error("the policy set is invalid: {0}")]
    InvalidSet(String),
    /// A rule that had to be evaluated needs a signal the inputs do not provide.
    #[error("rule {rule} needs signal {signal}, which is unavailable: {why}")]
    Unavailable {
        /// Rule id.
        rule: String,
        /// Signal name.
        signal: String,
        /// Why it is unavailable.
        why: String,
    },
    /// A signal value has the wrong type for the condition (cannot happen after [`check`]).
    #[error("rule {rule}: {message}")]
    TypeMismatch {
        /// Rule id.
        rule: String,
        /// Details.
        message: String,
    },
    /// Nothing matched and the set has no default action.
    #[error("no rule matched and the policy set declares no default_action")]
    NoMatch,
}

fn compare(rule: &str, actual: &SignalValue, op: Operator, threshold: &Threshold) -> Result<bool, EvalError> {
    let mismatch = || EvalError::TypeMismatch {
        rule: rule.to_string(),
        message: format!("cannot compare {actual} with {threshold} using {}", op.as_str()),
    };
    let eq = |a: &SignalValue, s: &Scalar| -> Option<bool> {
        match (a, s) {
            (SignalValue::Number(x), Scalar::Number(y)) => Some(x == y),
            (SignalValue::Bool(x), Scalar::Bool(y)) => Some(x == y),
            (SignalValue::Text(x), Scalar::Text(y)) => Some(x == y),
            _ => None,
        }
    };
    match (op, threshold) {
        (Operator::In, Threshold::List(items)) => {
            let mut any = false;
            for s in items {
                any |= eq(actual, s).ok_or_else(mismatch)?;
            }
            Ok(any)
        }
        (Operator::Eq, Threshold::Scalar(s)) => eq(actual, s).ok_or_else(mismatch),
        (Operator::Neq, Threshold::Scalar(s)) => eq(actual, s).map(|b| !b).ok_or_else(mismatch),
        (op, Threshold::Scalar(Scalar::Number(y))) => {
            let SignalValue::Number(x) = actual else { return Err(mismatch()) };
            Ok(match op {
                Operator::Lt => x < y,
                Operator::Lte => x <= y,
                Operator::Gt => x > y,
                Operator::Gte => x >= y,
                _ => return Err(mismatch()),
            })
        }
        _ => Err(mismatch()),
    }
}

fn negation(c: &ConditionOutcome) -> String {
    let t = &c.threshold;
    let now = &c.actual;
    match c.operator {
        Operator::Lt => format!("{} >= {t}; now {now}", c.signal),
        Operator::Lte => format!("{} > {t}; now {now}", c.signal),
        Operator::Gt => format!("{} <= {t}; now {now}", c.signal),
        Operator::Gte => format!("{} < {t}; now {now}", c.signal),
        Operator::Eq => format!("{} != {t}; now {now}", c.signal),
        Operator::Neq => format!("{} == {t}; now {now}", c.signal),
        Operator::In => format!("{} not in {t}; now {now}", c.signal),
    }
}

/// Evaluates a set over one snapshot of signals. The set is checked first; a set with errors
/// is refused.
pub fn evaluate(set: &PolicySet, signals: &Signals) -> Result<Decision, EvalError> {
    let issues = check(set);
    if let Some(first) = issues.iter().find(|i| i.severity == Severity::Error) {
        return Err(EvalError::InvalidSet(format!("{}: {}", first.path, first.message)));
    }
    let mut trace = Vec::with_capacity(set.policies.len());
    let mut winner: Option<usize> = None;
    for i in set.order() {
        let p = &set.policies[i];
        let mut conditions = Vec::with_capacity(p.conditions.len());
        let mut matched = true;
        let mut unavailable: Option<(String, String)> = None;
        for c in &p.conditions {
            let actual = signals
                .get(&c.signal)
                .cloned()
                .unwrap_or_else(|| SignalValue::Unavailable("not provided by the inputs".into()));
            if let SignalValue::Unavailable(why) = &actual {
                unavailable = Some((c.signal.clone(), why.clone()));
                matched = false;
                break;
            }
            let result = compare(&p.id, &actual, c.operator, &c.value)?;
            matched &= result;
            conditions.push(ConditionOutcome {
                signal: c.signal.clone(),
                operator: c.operator,
                threshold: c.value.clone(),
                actual,
                result,
            });
        }
        let why = if let Some((signal, reason)) = &unavailable {
            if winner.is_none() {
                // This rule had to be decided before any later rule could win.
                return Err(EvalError::Unavailable { rule: p.id.clone(), signal: signal.clone(), why: reason.clone() });
            }
            format!("not evaluated: signal {signal} is unavailable ({reason})")
        } else if p.conditions.is_empty() {
            "no conditions: always matches".to_string()
        } else if matched {
            "all conditions hold".to_string()
        } else {
            let failed: Vec<String> = conditions.iter().filter(|c| !c.result).map(|c| c.describe()).collect();
            format!("not matched: {}", failed.join("; "))
        };
        let is_winner = matched && winner.is_none();
        if is_winner {
            winner = Some(trace.len());
        }
        trace.push(RuleTrace {
            id: p.id.clone(),
            name: p.name.clone(),
            action: p.action,
            priority: p.priority,
            matched,
            winner: is_winner,
            why,
            conditions,
        });
    }

    let (action, policy_id, policy_name, reason, remediation, delay_minutes, decided_by, conditions) = match winner {
        Some(w) => {
            let t = &trace[w];
            let p = set.policies.iter().find(|p| p.id == t.id).ok_or(EvalError::NoMatch)?;
            (
                p.action,
                p.id.clone(),
                p.name.clone(),
                p.reason.clone(),
                p.remediation.clone(),
                p.delay_minutes,
                DecidedBy::Rule,
                t.conditions.clone(),
            )
        }
        None => match &set.default_action {
            Some(d) => (
                d.action,
                "DEFAULT".to_string(),
                "Default action (no rule matched)".to_string(),
                d.reason.clone(),
                d.remediation.clone(),
                d.delay_minutes,
                DecidedBy::DefaultAction,
                Vec::new(),
            ),
            None => return Err(EvalError::NoMatch),
        },
    };
    let delay_minutes = if action == Action::Delay { delay_minutes } else { 0 };

    // Counterfactual: every matched non-ALLOW rule ahead of the first matched ALLOW rule must
    // stop matching for an ALLOW to be reached.
    let mut counterfactual = Vec::new();
    if action != Action::Allow {
        for t in &trace {
            if !t.matched {
                continue;
            }
            if t.action == Action::Allow {
                break;
            }
            counterfactual.push(Counterfactual {
                rule_id: t.id.clone(),
                action: t.action,
                any_of: t.conditions.iter().map(negation).collect(),
            });
        }
    }

    Ok(Decision {
        action,
        policy_id,
        policy_name,
        reason,
        remediation,
        delay_minutes,
        decided_by,
        conditions,
        trace,
        counterfactual,
    })
}
