//! The gate's rules ([`RemediationRules`], [`SignalRule`]), built only by configuration, and
//! [`check_rules`], their lint.

use serde::{Deserialize, Serialize};

use crate::policy::{self, Condition, Operator, PolicyIssue, Scalar, Threshold};

use super::ActionClass;

/// What a deploy-signal rule demands when it fires. Either way the decision is
/// `block_and_escalate`; the difference is what a human must say to release it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleEffect {
    /// An ordinary approval releases it.
    RequireApproval,
    /// Only FORCE_OVERRIDE releases it.
    RequireForceOverride,
}

/// A rule over the deploy gate's signals, scoped to classes of action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalRule {
    /// Unique id, e.g. `burn-critical-restart-scale`.
    pub id: String,
    /// Why, for people; becomes the reason when the rule fires.
    pub description: String,
    /// ANDed conditions in the policy language (signal names from [`crate::signals::CATALOGUE`]).
    pub when: Vec<Condition>,
    /// The rule applies when the action is in one of these classes; empty means any action.
    pub action_classes: Vec<ActionClass>,
    /// What it demands.
    pub effect: RuleEffect,
}

/// Every rule and threshold the stress arithmetic and the gate use. Built by configuration
/// only; [`Default`] is the original governor's values plus one deploy-signal rule (burn rate
/// critical and a restart or scale action ⇒ approval), which cannot fire without deploy
/// signals, so the original's results are unchanged. [`RemediationRules::original`] has no
/// signal rules at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemediationRules {
    /// Block when this many verified contradictions (or more) were found. Original: 2.
    pub block_at_contradictions: u32,
    /// Block when coverage is below this and there is no supporting document. Original: 0.34.
    pub min_evidence_coverage: f64,
    /// Critical severity blocks and requires FORCE_OVERRIDE. The original's README promised
    /// this, only its demo implemented it.
    pub critical_requires_force_override: bool,
    /// Confidence lost per verified contradiction. Original: 0.9.
    pub contradiction_penalty: f64,
    /// Further confidence lost on hard evidence. Original: 1.5.
    pub hard_evidence_penalty: f64,
    /// Confidence never falls below this. Original: 1.0.
    pub confidence_floor: f64,
    /// `act` is 1 when confidence fell by at least this. Original: 2.0.
    pub act_delta: f64,
    /// Planner/verifier disagreement when confidence fell by at least this. Original: 1.0.
    pub disagreement_delta: f64,
    /// Rules over deploy signals, in order.
    pub signal_rules: Vec<SignalRule>,
    /// When true, a missing deploy-signal snapshot blocks (fail-closed); when false the signal
    /// rules are skipped and the decision notes it.
    pub require_deploy_signals: bool,
}

impl RemediationRules {
    /// The original governor's thresholds and no signal rules.
    pub fn original() -> RemediationRules {
        RemediationRules {
            block_at_contradictions: 2,
            min_evidence_coverage: 0.34,
            critical_requires_force_override: true,
            contradiction_penalty: 0.9,
            hard_evidence_penalty: 1.5,
            confidence_floor: 1.0,
            act_delta: 2.0,
            disagreement_delta: 1.0,
            signal_rules: Vec::new(),
            require_deploy_signals: false,
        }
    }

    /// The default signal rule: burn rate critical and a restart or scale action ⇒ approval.
    pub fn burn_rate_rule() -> SignalRule {
        SignalRule {
            id: "burn-critical-restart-scale".into(),
            description: "The error budget is burning at a critical rate: restarts and scaling need human approval"
                .into(),
            when: vec![Condition {
                signal: "burn_rate".into(),
                operator: Operator::Eq,
                value: Threshold::Scalar(Scalar::Text("critical".into())),
            }],
            action_classes: vec![ActionClass::Restart, ActionClass::Scale],
            effect: RuleEffect::RequireApproval,
        }
    }
}

impl Default for RemediationRules {
    fn default() -> Self {
        RemediationRules { signal_rules: vec![RemediationRules::burn_rate_rule()], ..RemediationRules::original() }
    }
}

/// Validates a rule set: finite, in-range thresholds; unique, non-empty signal-rule ids; every
/// condition valid in the policy language. Paths look like `signal_rules[0].when.burn_rate`.
pub fn check_rules(rules: &RemediationRules) -> Vec<PolicyIssue> {
    let mut out = Vec::new();
    let mut number = |name: &str, v: f64, lo: f64, hi: f64| {
        if !(v.is_finite() && (lo..=hi).contains(&v)) {
            out.push(PolicyIssue::error(name, format!("{v} is outside [{lo}, {hi}]")));
        }
    };
    number("min_evidence_coverage", rules.min_evidence_coverage, 0.0, 1.0);
    number("contradiction_penalty", rules.contradiction_penalty, 0.0, 10.0);
    number("hard_evidence_penalty", rules.hard_evidence_penalty, 0.0, 10.0);
    number("confidence_floor", rules.confidence_floor, 0.0, 10.0);
    number("act_delta", rules.act_delta, 0.0, 10.0);
    number("disagreement_delta", rules.disagreement_delta, 0.0, 10.0);
    if rules.block_at_contradictions == 0 {
        out.push(PolicyIssue::error(
            "block_at_contradictions",
            "0 would block every incident, with or without contradictions; use 1 or more",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in rules.signal_rules.iter().enumerate() {
        let path = format!("signal_rules[{i}]");
        if r.id.trim().is_empty() {
            out.push(PolicyIssue::error(format!("{path}.id"), "id is empty"));
        } else if !seen.insert(r.id.as_str()) {
            out.push(PolicyIssue::error(format!("{path}.id"), format!("duplicate id \"{}\"", r.id)));
        }
        if r.when.is_empty() {
            out.push(PolicyIssue::warning(
                format!("{path}.when"),
                "no conditions: the rule fires for every matching action whenever deploy signals are given",
            ));
        }
        for c in &r.when {
            for issue in policy::check_condition(0, c) {
                // check_condition speaks of policies[0].conditions.X; re-root the path here.
                let suffix = issue.path.strip_prefix("policies[0].conditions").unwrap_or(&issue.path);
                out.push(PolicyIssue {
                    severity: issue.severity,
                    path: format!("{path}.when{suffix}"),
                    message: issue.message,
                });
            }
        }
    }
    out
}
