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

use serde::{Deserialize, Serialize};

use crate::signals::{self, SignalKind, SignalValue, Signals};

/// What the gate tells the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// A rule's `services:` scope: service names and globs (`*` stands for any run of
    /// characters, every other character is itself), compared with the `service` signal by
    /// `in`. The policy file writes it as the rule's `services:` key, never as a condition's
    /// `value`; it serialises as `{"services": [...]}` so a trace cannot be mistaken for a
    /// literal `in` list.
    Services {
        /// The names and globs as written.
        services: Vec<String>,
    },
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
            Threshold::Services { services } => write!(f, "services matching [{}]", services.join(", ")),
        }
    }
}

// `Scalar` and `Threshold` read back what they serialise (the policy cache of `guardrail gate`
// keeps checked sets as JSON) with visitors instead of serde's untagged derive, which buffers
// every value before trying each variant: a tenth of reading a 10,000-rule set back.
impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ThresholdVisitor).and_then(|t| match t {
            Threshold::Scalar(s) => Ok(s),
            _ => Err(serde::de::Error::custom("expected a number, a boolean or a string")),
        })
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Threshold, D::Error> {
        d.deserialize_any(ThresholdVisitor)
    }
}

/// A [`Threshold`] as serialised: a scalar, a list of scalars, or `{"services": [...]}`.
struct ThresholdVisitor;

impl<'de> serde::de::Visitor<'de> for ThresholdVisitor {
    type Value = Threshold;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number, a boolean, a string, a list of them or {\"services\": [...]}")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Threshold, E> {
        Ok(Threshold::Scalar(Scalar::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Threshold, E> {
        Ok(Threshold::Scalar(Scalar::Number(v as f64)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Threshold, E> {
        Ok(Threshold::Scalar(Scalar::Number(v as f64)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Threshold, E> {
        Ok(Threshold::Scalar(Scalar::Number(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Threshold, E> {
        Ok(Threshold::Scalar(Scalar::Text(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Threshold, E> {
        Ok(Threshold::Scalar(Scalar::Text(v)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Threshold, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(x) = seq.next_element::<Scalar>()? {
            items.push(x);
        }
        Ok(Threshold::List(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Threshold, A::Error> {
        let mut services = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != "services" || services.is_some() {
                return Err(serde::de::Error::custom(format!("unexpected key {key:?} in a threshold")));
            }
            services = Some(map.next_value::<Vec<String>>()?);
        }
        services
            .map(|services| Threshold::Services { services })
            .ok_or_else(|| serde::de::Error::missing_field("services"))
    }
}

/// Whether `service` matches a `services:` pattern: `*` stands for any run of characters
/// (none included), every other character must be equal. Linear in practice: the usual
/// backtracking over the last `*` only.
pub fn service_matches(pattern: &str, service: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), service.as_bytes());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was seen, and the text position it currently covers up to.
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == t[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            // Let the last `*` cover one more byte. Byte-wise is exact for UTF-8: a literal
            // character cannot match starting inside another character.
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&b| b == b'*')
}

/// One condition: `signal operator value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Condition {
    /// Signal name (see [`signals::CATALOGUE`]).
    pub signal: String,
    /// Operator (`eq` when the file omits it, as in the seed tool).
    pub operator: Operator,
    /// Threshold.
    pub value: Threshold,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Field path of a rule's `services:` scope.
pub fn scope_path(index: usize) -> String {
    format!("policies[{index}].services")
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

/// Whether [`check_condition`] finds nothing wrong with `c` (a scope aside).
fn condition_fits(c: &Condition) -> bool {
    let Some(def) = signals::lookup(&c.signal) else { return false };
    let ordered = matches!(c.operator, Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte);
    if ordered && def.kind != SignalKind::Number {
        return false;
    }
    match (c.operator, &c.value) {
        (Operator::In, Threshold::List(items)) => {
            !items.is_empty() && items.iter().all(|s| scalar_fits(def.kind, s).is_ok())
        }
        (_, Threshold::Scalar(s)) if c.operator != Operator::In => scalar_fits(def.kind, s).is_ok(),
        _ => false,
    }
}

/// Checks one condition on its own; returns the issues found.
pub fn check_condition(index: usize, c: &Condition) -> Vec<PolicyIssue> {
    let mut out = Vec::new();
    if let Threshold::Services { services } = &c.value {
        // A scope is the rule's `services:` key: its findings are placed there.
        let path = scope_path(index);
        if c.signal != "service" || c.operator != Operator::In {
            out.push(PolicyIssue::error(
                path,
                format!(
                    "a services scope compares the service signal with in, not {} with {}",
                    c.signal,
                    c.operator.as_str()
                ),
            ));
            return out;
        }
        if services.is_empty() {
            out.push(PolicyIssue::error(path.clone(), "an empty list of services never matches"));
        }
        for (j, pattern) in services.iter().enumerate() {
            if pattern.is_empty() {
                out.push(PolicyIssue::error(format!("{path}[{j}]"), "an empty pattern matches no service"));
            }
        }
        return out;
    }
    // The usual case, a valid condition, allocates nothing (a fleet's set has tens of
    // thousands); the findings below are only built for an invalid one.
    if condition_fits(c) {
        return out;
    }
    let path = condition_path(index, &c.signal);
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
        // Checked above.
        (_, Threshold::Services { .. }) => {}
    }
    out
}

/// Validates a whole set. Errors make the set unusable; see the module docs.
///
/// Shadowing is found through an index of the rules by the literal values they test (e.g.
/// `service eq svc-42`, a `services:` scope): a rule is compared only with the earlier rules
/// that could contain it, so a fleet's set of thousands of per-service rules is checked in
/// near-linear time. The findings are exactly those of comparing every pair
/// ([`check_pairwise`], kept as the reference the differential tests compare against).
pub fn check(set: &PolicySet) -> Vec<PolicyIssue> {
    check_with(set, Shadowing::Indexed)
}

/// [`check`] with the pairwise shadowing search it replaced (quadratic, allocating per pair).
/// Kept as the reference for the differential tests and benchmarks; do not use it to decide.
#[doc(hidden)]
pub fn check_pairwise(set: &PolicySet) -> Vec<PolicyIssue> {
    check_with(set, Shadowing::Pairwise)
}

#[derive(Clone, Copy, PartialEq)]
enum Shadowing {
    Indexed,
    Pairwise,
}

fn check_with(set: &PolicySet, shadowing: Shadowing) -> Vec<PolicyIssue> {
    let mut out = Vec::new();
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    // Each rule's accepted values, analysed once (None: invalid or never matches).
    let mut analysed: Vec<Option<Analysed>> = Vec::with_capacity(set.policies.len());
    for (i, p) in set.policies.iter().enumerate() {
        let path = || policy_path(i);
        if p.id.trim().is_empty() {
            out.push(PolicyIssue::error(format!("{}.id", path()), "id is empty"));
        }
        if let Some(first) = seen.insert(p.id.as_str(), i) {
            out.push(PolicyIssue::error(
                format!("{}.id", path()),
                format!("duplicate id \"{}\" (also policies[{first}])", p.id),
            ));
        }
        let mut cond_ok = true;
        for c in &p.conditions {
            let issues = check_condition(i, c);
            cond_ok &= issues.is_empty();
            out.extend(issues);
        }
        // The file has one `services:` key per rule; the set analysis relies on it.
        if p.conditions.iter().filter(|c| matches!(c.value, Threshold::Services { .. })).count() > 1 {
            out.push(PolicyIssue::error(scope_path(i), "a rule has at most one services scope"));
            cond_ok = false;
        }
        if p.action == Action::Delay && p.delay_minutes == 0 {
            out.push(PolicyIssue::warning(
                format!("{}.delay_minutes", path()),
                "DELAY with 0 minutes: the pipeline is told to wait for nothing",
            ));
        }
        if p.action != Action::Delay && p.delay_minutes != 0 {
            out.push(PolicyIssue::warning(
                format!("{}.delay_minutes", path()),
                format!("delay_minutes is ignored for {}", p.action),
            ));
        }
        let analysis = if cond_ok { rule_set(p).map(Analysed::new) } else { None };
        if cond_ok && analysis.is_none() {
            out.push(PolicyIssue::error(
                path(),
                format!(
                    "rule {} can never match: its conditions contradict each other or the signal's possible values",
                    p.id
                ),
            ));
        }
        analysed.push(analysis);
    }
    // Priority ties are legal (file order decides) but easy to get wrong. Evaluation order is a
    // stable sort by priority: a tie is a run in it, in file order, by ascending priority.
    let order = set.order();
    for run in order.chunk_by(|&a, &b| set.policies[a].priority == set.policies[b].priority) {
        if let [first, _, ..] = run {
            let ids: Vec<&str> = run.iter().map(|&i| set.policies[i].id.as_str()).collect();
            out.push(PolicyIssue::warning(
                format!("{}.priority", policy_path(*first)),
                format!(
                    "priority {} is shared by {}; file order decides between them",
                    set.policies[*first].priority,
                    ids.join(", ")
                ),
            ));
        }
    }
    // Shadowing: B is unreachable when every input matching B matches an earlier A.
    if out.iter().all(|i| i.severity != Severity::Error) {
        let shadowed: Vec<(usize, usize)> = match shadowing {
            Shadowing::Indexed => shadowed_indexed(&order, &analysed),
            Shadowing::Pairwise => shadowed_pairwise(set, &order),
        };
        for (b, a) in shadowed {
            let pb = &set.policies[b];
            let pa = &set.policies[a];
            out.push(PolicyIssue::error(
                policy_path(b),
                format!(
                    "rule {} ({}) is unreachable: every input it matches is already matched by {} ({}), which is evaluated first",
                    pb.id, pb.action, pa.id, pa.action
                ),
            ));
        }
        let has_catch_all = match shadowing {
            Shadowing::Indexed => analysed.iter().flatten().any(|a| a.sets.iter().all(|s| s.everything)),
            Shadowing::Pairwise => {
                set.policies.iter().any(|p| rule_set(p).is_some_and(|s| s.iter().all(|(_, c)| c.is_everything())))
            }
        };
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

/// The reference search: every rule against every earlier one, the sets rebuilt per pair.
/// Returns `(shadowed, first container)` file indices in evaluation order.
fn shadowed_pairwise(set: &PolicySet, order: &[usize]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    for (pos, &b) in order.iter().enumerate() {
        let Some(bset) = rule_set(&set.policies[b]) else { continue };
        for &a in &order[..pos] {
            let Some(aset) = rule_set(&set.policies[a]) else { continue };
            if rule_subset(&bset, &aset) {
                found.push((b, a));
                break;
            }
        }
    }
    found
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
    /// Free text matched by a `services:` scope with at least one `*`: `(globs ∪ plus) \ minus`.
    /// Always infinite, so never empty.
    Globs(GlobSet),
}

/// Text accepted by a scope's globs (each with a `*`) and literal names, minus some values.
#[derive(Debug, Clone, PartialEq)]
struct GlobSet {
    globs: Vec<String>,
    plus: Vec<String>,
    minus: Vec<String>,
}

fn all_stars(g: &str) -> bool {
    g.bytes().all(|b| b == b'*')
}

/// The literal text before a glob's first `*`.
fn glob_prefix(g: &str) -> &str {
    &g[..g.find('*').unwrap_or(g.len())]
}

/// The literal text after a glob's last `*`.
fn glob_suffix(g: &str) -> &str {
    &g[g.rfind('*').map_or(0, |i| i + 1)..]
}

/// A sufficient test for `L(inner) ⊆ L(outer)`, both globs with a `*`: `outer` is all stars, the
/// same glob, or `P*S` with `inner` starting with `P` and ending with `S` (its first and last
/// literal parts are apart, so every match of `inner` is a match of `outer`). Other pairs are
/// reported as not contained: the lint may miss shadowing between two such scopes, never
/// invent it.
fn glob_covers(outer: &str, inner: &str) -> bool {
    if all_stars(outer) || outer == inner {
        return true;
    }
    if outer.bytes().filter(|&b| b == b'*').count() != 1 {
        return false;
    }
    glob_prefix(inner).starts_with(glob_prefix(outer)) && glob_suffix(inner).ends_with(glob_suffix(outer))
}

impl GlobSet {
    fn contains(&self, v: &str) -> bool {
        !self.minus.iter().any(|m| m == v)
            && (self.plus.iter().any(|p| p == v) || self.globs.iter().any(|g| service_matches(g, v)))
    }
    fn is_everything(&self) -> bool {
        self.minus.is_empty() && self.globs.iter().any(|g| all_stars(g))
    }
}

/// `sub ⊆ sup` where at least one side is a scope's [`GlobSet`]; allocates nothing.
fn glob_subset(sub: &ValueSet, sup: &ValueSet) -> bool {
    match (sub, sup) {
        (ValueSet::Discrete { values, complement: false, .. }, ValueSet::Globs(g)) => {
            values.iter().all(|v| g.contains(v))
        }
        // Text outside finitely many values: only an all-star glob covers it.
        (ValueSet::Discrete { values, complement: true, .. }, ValueSet::Globs(g)) => {
            g.globs.iter().any(|x| all_stars(x)) && g.minus.iter().all(|m| values.contains(m))
        }
        (ValueSet::Globs(_), ValueSet::Discrete { complement: false, .. }) => false,
        (ValueSet::Globs(g), ValueSet::Discrete { values, complement: true, .. }) => {
            values.iter().all(|v| !g.contains(v))
        }
        (ValueSet::Globs(b), ValueSet::Globs(a)) => {
            a.minus.iter().all(|m| !b.contains(m))
                && b.plus.iter().all(|p| a.contains(p))
                && b.globs.iter().all(|gb| a.globs.iter().any(|ga| glob_covers(ga, gb)))
        }
        _ => false,
    }
}

impl ValueSet {
    fn is_empty(&self) -> bool {
        match self {
            ValueSet::Numbers(v) => v.iter().all(Interval::is_empty),
            ValueSet::Discrete { values, complement: false, .. } => values.is_empty(),
            ValueSet::Discrete { values, complement: true, domain } => {
                domain.as_ref().is_some_and(|d| d.iter().all(|x| values.contains(x)))
            }
            ValueSet::Globs(_) => false,
        }
    }
    fn is_everything(&self) -> bool {
        match self {
            ValueSet::Numbers(v) => complement_numbers(v).iter().all(Interval::is_empty),
            ValueSet::Discrete { values, complement: true, .. } => values.is_empty(),
            ValueSet::Discrete { values, complement: false, domain } => {
                domain.as_ref().is_some_and(|d| d.iter().all(|x| values.contains(x)))
            }
            ValueSet::Globs(g) => g.is_everything(),
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
    if let Threshold::Services { services } = &c.value {
        if def.kind != SignalKind::Text || c.operator != Operator::In {
            return None;
        }
        let (globs, plus): (Vec<String>, Vec<String>) = services.iter().cloned().partition(|g| g.contains('*'));
        // Names without a `*` are the same set as `service in [...]`.
        return Some(if globs.is_empty() {
            ValueSet::Discrete { values: plus, complement: false, domain: None }
        } else {
            ValueSet::Globs(GlobSet { globs, plus, minus: Vec::new() })
        });
    }
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
                    Threshold::Scalar(_) | Threshold::Services { .. } => return None,
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
        (ValueSet::Discrete { values, complement: false, domain }, ValueSet::Globs(g))
        | (ValueSet::Globs(g), ValueSet::Discrete { values, complement: false, domain }) => ValueSet::Discrete {
            values: values.iter().filter(|v| g.contains(v)).cloned().collect(),
            complement: false,
            domain: domain.clone(),
        },
        (ValueSet::Discrete { values, complement: true, .. }, ValueSet::Globs(g))
        | (ValueSet::Globs(g), ValueSet::Discrete { values, complement: true, .. }) => {
            let mut minus = g.minus.clone();
            minus.extend(values.iter().filter(|v| !g.minus.contains(v)).cloned());
            ValueSet::Globs(GlobSet {
                globs: g.globs.clone(),
                plus: g.plus.iter().filter(|p| !values.contains(p)).cloned().collect(),
                minus,
            })
        }
        // Mixed kinds cannot happen for one signal, and `check` refuses two scopes in a rule.
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
        _ => glob_subset(sub, sup),
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
// The indexed shadowing search: every rule's sets prepared once, rules indexed by the literal
// text values they require, so each rule is compared only with earlier rules that could
// contain it, and comparing two rules allocates nothing.

/// One signal's accepted values in a rule, with what subset tests need computed up front.
struct Prepared {
    signal: String,
    /// The signal's bit in [`Analysed::restricts`] / [`Analysed::names`].
    bit: u64,
    set: ValueSet,
    everything: bool,
    /// Numbers: the complement (`x ⊆ self` ⟺ `x ∩ complement = ∅`).
    complement: Vec<Interval>,
    /// Discrete complement over a known domain: the accepted values written out.
    listed: Option<Vec<String>>,
}

/// A rule's sets, prepared.
struct Analysed {
    sets: Vec<Prepared>,
    /// Signals on which the rule accepts less than everything.
    restricts: u64,
    /// Signals the rule has a set for.
    names: u64,
}

fn signal_bit(name: &str) -> u64 {
    // Past 63 signals bits are shared: the mask test stays a necessary condition.
    let pos = signals::CATALOGUE.iter().position(|d| d.name == name).unwrap_or(63);
    1u64 << pos.min(63)
}

impl Analysed {
    fn new(sets: Vec<(String, ValueSet)>) -> Self {
        let mut restricts = 0;
        let mut names = 0;
        let sets: Vec<Prepared> = sets
            .into_iter()
            .map(|(signal, set)| {
                let bit = signal_bit(&signal);
                let everything = set.is_everything();
                names |= bit;
                if !everything {
                    restricts |= bit;
                }
                let complement = match &set {
                    ValueSet::Numbers(v) => complement_numbers(v),
                    _ => Vec::new(),
                };
                // A finite set is its own listing (`subset_prepared` reads `values`); only a
                // complement over a known domain is written out.
                let listed = match &set {
                    ValueSet::Discrete { values, complement: true, domain } => {
                        domain.as_ref().map(|d| d.iter().filter(|x| !values.contains(x)).cloned().collect())
                    }
                    _ => None,
                };
                Prepared { signal, bit, set, everything, complement, listed }
            })
            .collect();
        Analysed { sets, restricts, names }
    }

    /// The text signal whose literal values this rule is indexed under, if any: a finite set
    /// of free-text values (`service eq x`, a scope of names) or a scope whose every glob
    /// starts with a literal prefix.
    fn anchor(&self) -> Option<&Prepared> {
        self.sets.iter().find(|p| match &p.set {
            ValueSet::Discrete { complement: false, domain: None, .. } => true,
            ValueSet::Globs(g) => g.globs.iter().all(|x| !glob_prefix(x).is_empty()),
            _ => false,
        })
    }
}

/// [`set_subset`] over prepared sets, allocating nothing.
fn subset_prepared(sub: &Prepared, sup: &Prepared) -> bool {
    match (&sub.set, &sup.set) {
        (ValueSet::Numbers(s), ValueSet::Numbers(_)) => {
            s.iter().all(|x| sup.complement.iter().all(|y| x.intersect(y).is_empty()))
        }
        (
            ValueSet::Discrete { values: vs, complement: cs, .. },
            ValueSet::Discrete { values: vp, complement: cp, .. },
        ) => match (listing(sub, vs, *cs), listing(sup, vp, *cp)) {
            (Some(s), Some(p)) => s.iter().all(|x| p.contains(x)),
            (Some(s), None) => s.iter().all(|x| !vp.contains(x)),
            (None, Some(_)) => false,
            (None, None) => vp.iter().all(|x| vs.contains(x)),
        },
        _ => glob_subset(&sub.set, &sup.set),
    }
}

/// A discrete set's accepted values listed, when finite; `None` for a complement of free text.
fn listing<'a>(p: &'a Prepared, values: &'a [String], complement: bool) -> Option<&'a [String]> {
    if complement { p.listed.as_deref() } else { Some(values) }
}

/// [`rule_subset`] over prepared rules: every input accepted by `b` is accepted by `a`.
fn subset_analysed(b: &Analysed, a: &Analysed) -> bool {
    // `a` restricting a signal `b` does not name cannot contain `b`.
    if a.restricts & !b.names != 0 {
        return false;
    }
    a.sets.iter().all(|ap| match b.sets.iter().find(|bp| bp.bit == ap.bit && bp.signal == ap.signal) {
        Some(bp) => subset_prepared(bp, ap),
        None => ap.everything,
    })
}

/// Positions (in evaluation order) of the rules that could contain a given rule.
#[derive(Default)]
struct RuleIndex<'a> {
    /// (signal, value) → rules requiring the value (their anchor lists it, or a scope names it).
    literal: std::collections::HashMap<(&'a str, &'a str), Vec<usize>>,
    /// (signal, literal prefix) → rules whose anchor scope has a glob starting with it.
    prefix: std::collections::HashMap<(&'a str, &'a str), Vec<usize>>,
    /// Byte lengths of the prefixes in `prefix`, so a lookup tries only those.
    prefix_lens: Vec<usize>,
    /// Rules without an anchor, grouped by the signals they restrict.
    general: Vec<(u64, Vec<usize>)>,
}

fn push_once(list: &mut Vec<usize>, pos: usize) {
    if list.last() != Some(&pos) {
        list.push(pos);
    }
}

impl<'a> RuleIndex<'a> {
    fn build(order: &[usize], analysed: &'a [Option<Analysed>]) -> Self {
        let mut ix = RuleIndex::default();
        for (pos, &r) in order.iter().enumerate() {
            let Some(a) = &analysed[r] else { continue };
            match a.anchor() {
                Some(p) => match &p.set {
                    ValueSet::Discrete { values, .. } => {
                        for v in values {
                            push_once(ix.literal.entry((&p.signal, v)).or_default(), pos);
                        }
                    }
                    ValueSet::Globs(g) => {
                        for v in &g.plus {
                            push_once(ix.literal.entry((&p.signal, v)).or_default(), pos);
                        }
                        for x in &g.globs {
                            let pre = glob_prefix(x);
                            if !ix.prefix_lens.contains(&pre.len()) {
                                ix.prefix_lens.push(pre.len());
                            }
                            push_once(ix.prefix.entry((&p.signal, pre)).or_default(), pos);
                        }
                    }
                    ValueSet::Numbers(_) => {}
                },
                None => match ix.general.iter_mut().find(|(m, _)| *m == a.restricts) {
                    Some((_, list)) => list.push(pos),
                    None => ix.general.push((a.restricts, vec![pos])),
                },
            }
        }
        ix.prefix_lens.sort_unstable();
        ix
    }

    /// The first rule in evaluation order, before position `pos`, that contains `b`.
    fn first_container(
        &self,
        pos: usize,
        b: &Analysed,
        order: &[usize],
        analysed: &[Option<Analysed>],
    ) -> Option<usize> {
        let mut best = pos;
        let mut scan = |list: &[usize]| {
            for &pa in list {
                if pa >= best {
                    break;
                }
                if analysed[order[pa]].as_ref().is_some_and(|a| subset_analysed(b, a)) {
                    best = pa;
                    break;
                }
            }
        };
        for (mask, list) in &self.general {
            if mask & !b.names == 0 {
                scan(list);
            }
        }
        for p in &b.sets {
            // A rule anchored on a signal contains `b` only if `b` accepts finitely many of its
            // values (all of which the anchor must accept, the first one included) or is a
            // scope whose globs the anchor's globs cover (which then share a literal prefix).
            let probe = match &p.set {
                ValueSet::Discrete { values, complement: false, domain: None } => match values.first() {
                    Some(v) => {
                        if let Some(list) = self.literal.get(&(p.signal.as_str(), v.as_str())) {
                            scan(list);
                        }
                        v.as_str()
                    }
                    None => continue,
                },
                ValueSet::Globs(g) => match g.globs.first() {
                    Some(x) => glob_prefix(x),
                    None => continue,
                },
                _ => continue,
            };
            for &len in &self.prefix_lens {
                if len == 0 || len > probe.len() {
                    continue;
                }
                let Some(pre) = probe.get(..len) else { continue };
                if let Some(list) = self.prefix.get(&(p.signal.as_str(), pre)) {
                    scan(list);
                }
            }
        }
        (best < pos).then_some(best)
    }
}

/// The indexed search: `(shadowed, first container)` file indices in evaluation order, the
/// same pairs as [`shadowed_pairwise`].
fn shadowed_indexed(order: &[usize], analysed: &[Option<Analysed>]) -> Vec<(usize, usize)> {
    let index = RuleIndex::build(order, analysed);
    let mut found = Vec::new();
    for (pos, &b) in order.iter().enumerate() {
        let Some(bset) = &analysed[b] else { continue };
        if let Some(pa) = index.first_container(pos, bset, order, analysed) {
            found.push((b, order[pa]));
        }
    }
    found
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
        let mut text = String::new();
        self.describe_into(&mut text);
        text
    }

    /// [`ConditionOutcome::describe`], appended to `text` (a 10,000-rule trace writes one per
    /// rule: no string of its own each).
    pub fn describe_into(&self, text: &mut String) {
        use std::fmt::Write;
        text.push_str(&self.signal);
        text.push(' ');
        text.push_str(self.operator.symbol());
        // Writing into a String cannot fail.
        let _ = write!(text, " {} (actual {}): ", self.threshold, self.actual);
        text.push_str(if self.result { "true" } else { "false" });
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
        (Operator::In, Threshold::Services { services }) => match actual {
            SignalValue::Text(service) => Ok(services.iter().any(|g| service_matches(g, service))),
            _ => Err(mismatch()),
        },
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

/// What would stop a matched rule matching: the negation of each condition, except a
/// `services:` scope — the service being deployed is not something to change — unless the scope
/// is all the rule tests.
fn counterfactual_options(conditions: &[ConditionOutcome]) -> Vec<String> {
    let changeable: Vec<String> =
        conditions.iter().filter(|c| !matches!(c.threshold, Threshold::Services { .. })).map(negation).collect();
    if changeable.is_empty() { conditions.iter().map(negation).collect() } else { changeable }
}

/// Evaluates a set over one snapshot of signals. The set is checked first; a set with errors
/// is refused.
pub fn evaluate(set: &PolicySet, signals: &Signals) -> Result<Decision, EvalError> {
    let issues = check(set);
    if let Some(first) = issues.iter().find(|i| i.severity == Severity::Error) {
        return Err(EvalError::InvalidSet(format!("{}: {}", first.path, first.message)));
    }
    evaluate_checked(set, signals)
}

/// [`evaluate`] without its [`check`], for a caller that has just run [`check`] on this very
/// set and refused it on any error (the gate, whose loader checks every set it reads): the
/// second check was as costly as the whole evaluation of a 10,000-rule set. Same decision and
/// trace as [`evaluate`] for such a set; never give it a set that was not checked.
pub fn evaluate_checked(set: &PolicySet, signals: &Signals) -> Result<Decision, EvalError> {
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
            // A rule scoped to other services says nothing about this one: its other signals
            // are not read (one missing there must not stop a fleet's decision).
            if !result && matches!(c.value, Threshold::Services { .. }) {
                break;
            }
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
            let mut why = String::with_capacity(96);
            why.push_str("not matched: ");
            for (i, c) in conditions.iter().filter(|c| !c.result).enumerate() {
                if i > 0 {
                    why.push_str("; ");
                }
                c.describe_into(&mut why);
            }
            why
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
                any_of: counterfactual_options(&t.conditions),
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
