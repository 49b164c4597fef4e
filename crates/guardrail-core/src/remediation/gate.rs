//! The gate: [`gate`] and the record of its decision ([`GateDecision`], [`Comparison`]).

use serde::Serialize;

use crate::policy::{self, Action, DefaultRule, Operator, Policy, PolicySet, Scalar, Threshold};
use crate::pyround::py_round;
use crate::signals::{SignalValue, Signals};

use super::{
    ActionClass, CanonicalAction, ESCALATE_TO_HUMAN, GateOutput, NormalisedAction, PlanOutput, RemediationRules,
    RuleEffect, Severity, SignalRule, StressOutput, Verdict, check_rules, normalise_action,
};

/// One compared value: `input operator threshold` with the actual value and the result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The rule it belongs to.
    pub rule: String,
    /// What was compared (a gate input or a deploy signal).
    pub input: String,
    /// Operator.
    pub operator: Operator,
    /// Threshold, from the rules.
    pub threshold: Threshold,
    /// The actual value.
    pub actual: SignalValue,
    /// Whether the comparison held.
    pub held: bool,
}

/// The gate's decision: the contract object plus everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateDecision {
    /// The contract object.
    pub output: GateOutput,
    /// The rule that decided: the first that fired, or `validated` for an execution.
    pub rule: String,
    /// Every rule that fired, in evaluation order.
    pub fired: Vec<String>,
    /// Every value compared, for every rule, fired or not.
    pub compared: Vec<Comparison>,
    /// A human must approve before anything runs (every block).
    pub requires_approval: bool,
    /// An ordinary approval is refused; only FORCE_OVERRIDE releases it.
    pub requires_force_override: bool,
    /// Position changed or confidence fell by at least `disagreement_delta`.
    pub disagreement_detected: bool,
    /// `accept_planner_action`, `execute_with_guardrails` or `escalate_for_human_approval`.
    pub arbiter_resolution: String,
    /// What would run: the final position when executing, else `escalate_to_human`.
    pub execution_mode: String,
    /// The action's classes (from the vocabulary), as used by the signal rules.
    pub action_classes: Vec<ActionClass>,
    /// Things worth knowing that decided nothing (e.g. signal rules skipped without signals).
    pub notes: Vec<String>,
}

fn num(v: f64) -> Threshold {
    Threshold::Scalar(Scalar::Number(v))
}

fn text(s: &str) -> Threshold {
    Threshold::Scalar(Scalar::Text(s.to_string()))
}

fn clamp_unit(v: f64, hi: f64) -> f64 {
    if v.is_finite() { v.clamp(0.0, hi) } else { 0.0 }
}

/// Rule ids the gate uses besides `signal:<id>` for signal rules.
pub mod rule_ids {
    /// Plan and stress are about different incidents, or violate their contracts.
    pub const INVALID_INPUTS: &str = "invalid_inputs";
    /// The rule set itself is invalid.
    pub const INVALID_RULES: &str = "invalid_rules";
    /// A conflicting action policy.
    pub const POLICY_CONFLICT: &str = "policy_conflict";
    /// Too many verified contradictions.
    pub const MULTIPLE_CONTRADICTIONS: &str = "multiple_contradictions";
    /// Too little evidence.
    pub const INSUFFICIENT_COVERAGE: &str = "insufficient_coverage";
    /// Critical severity.
    pub const CRITICAL_SEVERITY: &str = "critical_severity";
    /// A fabricated authority was not rejected.
    pub const FABRICATION_NOT_REJECTED: &str = "fabrication_not_rejected";
    /// Deploy signals were required and not given.
    pub const DEPLOY_SIGNALS_MISSING: &str = "deploy_signals_missing";
    /// The final position is not the action that was checked.
    pub const POSITION_CHANGED: &str = "position_changed";
    /// The plan is itself an escalation (investigate and escalate, pause for approval).
    pub const ESCALATION_ONLY: &str = "escalation_only";
    /// A model-backed planner's plan was not used (timeout, refusal, invalid answer, an action
    /// not offered, a budget exhausted): the incident is escalated, whatever else holds.
    pub const PLANNER_FAILED: &str = "planner_failed";
    /// Nothing fired.
    pub const VALIDATED: &str = "validated";
}

/// The gate (reference note §2.7, plus Guardrail's rules). Pure and total: it always decides,
/// and anything it cannot vouch for blocks.
///
/// Order: inputs sane → policy conflicts → contradictions ≥ `block_at_contradictions` →
/// coverage < `min_evidence_coverage` with no support → critical severity (FORCE_OVERRIDE) →
/// fabricated authority not rejected → deploy-signal rules → a final position that differs
/// from the checked action → a plan that is itself an escalation. Reasons accumulate in that
/// order, as in the original (the last two only when nothing else fired); `rule` names the
/// first that fired. Each step is a function below, in that order.
pub fn gate(
    plan: &PlanOutput,
    stress: &StressOutput,
    incident_severity: Severity,
    deploy_signals: Option<&Signals>,
    rules: &RemediationRules,
) -> GateDecision {
    gate_planned(plan, stress, incident_severity, deploy_signals, rules, None)
}

/// [`gate`] with the planner's failure, when a model-backed planner's plan was not used
/// (`planner_failure` names why). A failure fires [`rule_ids::PLANNER_FAILED`] right after the
/// input checks, so the decision blocks and names it; without one this is exactly [`gate`]
/// (nothing is compared for it, so decisions recorded before the step replay identically).
pub fn gate_planned(
    plan: &PlanOutput,
    stress: &StressOutput,
    incident_severity: Severity,
    deploy_signals: Option<&Signals>,
    rules: &RemediationRules,
    planner_failure: Option<&str>,
) -> GateDecision {
    let mut findings = Findings::default();
    check_inputs(&mut findings, plan, stress, rules);
    check_planner(&mut findings, planner_failure);
    let derived = Derived::of(plan, stress, rules);
    check_policy_conflicts(&mut findings, stress);
    check_contradictions(&mut findings, stress, rules);
    check_coverage(&mut findings, stress, rules, derived.total_support);
    check_severity(&mut findings, incident_severity, rules);
    check_fabrication(&mut findings, stress);
    let action = normalise_action(&plan.proposed_action, None);
    let classes = action.classes();
    check_signal_rules(&mut findings, &classes, deploy_signals, rules);
    check_position(&mut findings, plan, stress, derived.position_changed);
    check_escalation_only(&mut findings, &action);
    conclude(findings, plan, stress, &derived, classes)
}

/// What the steps have found so far, in evaluation order.
#[derive(Default)]
struct Findings {
    /// Every value compared, fired or not.
    compared: Vec<Comparison>,
    /// Every rule that fired.
    fired: Vec<String>,
    /// The reasons of the contract object.
    reasons: Vec<String>,
    /// Things worth knowing that decided nothing.
    notes: Vec<String>,
    /// A fired rule demands FORCE_OVERRIDE.
    force_override: bool,
}

impl Findings {
    /// Records `input operator threshold` against `actual` for `rule`; returns `held`.
    fn compare(
        &mut self,
        rule: &str,
        input: &str,
        operator: Operator,
        threshold: Threshold,
        actual: SignalValue,
        held: bool,
    ) -> bool {
        self.compared.push(Comparison { rule: rule.into(), input: input.into(), operator, threshold, actual, held });
        held
    }

    /// `rule` fired, for `reason`.
    fn fire(&mut self, rule: &str, reason: impl Into<String>) {
        self.fired.push(rule.into());
        self.reasons.push(reason.into());
    }
}

/// The original's derived values (§2.7 steps 1–3).
struct Derived {
    /// `confidence_initial - confidence_post_stress`, unrounded.
    raw_delta: f64,
    position_changed: bool,
    act: u8,
    iii: f64,
    ri: f64,
    per: f64,
    /// Support documents over all claims.
    total_support: usize,
    /// Position changed or confidence fell by at least `disagreement_delta`.
    disagreement: bool,
}

impl Derived {
    fn of(plan: &PlanOutput, stress: &StressOutput, rules: &RemediationRules) -> Derived {
        let raw_delta = plan.confidence_initial - stress.confidence_post_stress;
        let position_changed = plan.proposed_action != stress.position_after_stress;
        let contract_valid = !plan.proposed_action.is_empty() && plan.confidence_initial >= 0.0;
        Derived {
            raw_delta,
            position_changed,
            act: u8::from(position_changed || raw_delta >= rules.act_delta),
            iii: stress.integration_quality,
            ri: if position_changed { 0.0 } else { 0.7 },
            per: if contract_valid { 0.2 } else { 0.6 },
            total_support: stress.claim_evidence.iter().map(|c| c.support_docs.len()).sum(),
            disagreement: position_changed || raw_delta >= rules.disagreement_delta,
        }
    }
}

/// Step 0: plan and stress that disagree with their contracts or with each other, and rules
/// that do not pass their own lint, block.
fn check_inputs(findings: &mut Findings, plan: &PlanOutput, stress: &StressOutput, rules: &RemediationRules) {
    let invalid = input_violations(plan, stress);
    if !invalid.is_empty() {
        findings.fire(rule_ids::INVALID_INPUTS, format!("Gate inputs are invalid: {}", invalid.join("; ")));
    }
    let rule_errors: Vec<String> = check_rules(rules)
        .into_iter()
        .filter(|i| i.severity == policy::Severity::Error)
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect();
    if !rule_errors.is_empty() {
        findings.fire(rule_ids::INVALID_RULES, format!("Remediation rules are invalid: {}", rule_errors.join("; ")));
    }
}

/// Step 0b: a planner that failed blocks. The failure is data about the planner (recorded by
/// the adapter, never read from the model's words as a rule); the threshold is fixed: none.
fn check_planner(findings: &mut Findings, failure: Option<&str>) {
    let Some(why) = failure else { return };
    findings.compare(
        rule_ids::PLANNER_FAILED,
        "planner_failure",
        Operator::Neq,
        text("none"),
        SignalValue::Text(why.to_string()),
        true,
    );
    findings.fire(
        rule_ids::PLANNER_FAILED,
        format!("The model planner failed ({why}); nothing it proposed is executed; escalated to human"),
    );
}

/// Contract violations of plan and stress, and every way they disagree with each other.
fn input_violations(plan: &PlanOutput, stress: &StressOutput) -> Vec<String> {
    let mut invalid: Vec<String> = plan.contract_violations();
    invalid.extend(stress.contract_violations());
    if plan.incident_id != stress.incident_id {
        invalid.push(format!("plan is for {} but stress is for {}", plan.incident_id, stress.incident_id));
    }
    if stress.claim_evidence.len() != plan.key_claims.len() {
        invalid.push(format!(
            "stress has {} claim entries for {} plan claims",
            stress.claim_evidence.len(),
            plan.key_claims.len()
        ));
    }
    let listed: usize = stress.claim_evidence.iter().map(|c| c.contradiction_docs.len()).sum();
    if listed != stress.contradiction_count as usize {
        invalid.push(format!(
            "contradiction_count {} disagrees with the {listed} contradicting documents listed",
            stress.contradiction_count
        ));
    }
    invalid
}

/// Step 1: any conflicting action policy blocks.
fn check_policy_conflicts(findings: &mut Findings, stress: &StressOutput) {
    let n_conflicts = stress.policy_conflicts.len();
    if findings.compare(
        rule_ids::POLICY_CONFLICT,
        "policy_conflicts",
        Operator::Gt,
        num(0.0),
        SignalValue::Number(n_conflicts as f64),
        n_conflicts > 0,
    ) {
        findings.fire(rule_ids::POLICY_CONFLICT, format!("Policy conflict: {}", stress.policy_conflicts.join(", ")));
    }
}

/// Step 2: contradictions at or above `block_at_contradictions` block.
fn check_contradictions(findings: &mut Findings, stress: &StressOutput, rules: &RemediationRules) {
    let c = stress.contradiction_count;
    if findings.compare(
        rule_ids::MULTIPLE_CONTRADICTIONS,
        "contradiction_count",
        Operator::Gte,
        num(f64::from(rules.block_at_contradictions)),
        SignalValue::Number(f64::from(c)),
        c >= rules.block_at_contradictions,
    ) {
        findings.fire(rule_ids::MULTIPLE_CONTRADICTIONS, "Multiple technical contradictions");
    }
}

/// Step 3: coverage below `min_evidence_coverage` with no support at all blocks (both
/// comparisons recorded; the rule is their AND).
fn check_coverage(findings: &mut Findings, stress: &StressOutput, rules: &RemediationRules, total_support: usize) {
    let iii = stress.integration_quality;
    let low = findings.compare(
        rule_ids::INSUFFICIENT_COVERAGE,
        "evidence_coverage",
        Operator::Lt,
        num(rules.min_evidence_coverage),
        SignalValue::Number(iii),
        // NaN coverage is not "enough coverage".
        iii.is_nan() || iii < rules.min_evidence_coverage,
    );
    let none = findings.compare(
        rule_ids::INSUFFICIENT_COVERAGE,
        "total_support",
        Operator::Eq,
        num(0.0),
        SignalValue::Number(total_support as f64),
        total_support == 0,
    );
    if low && none {
        findings.fire(rule_ids::INSUFFICIENT_COVERAGE, "Insufficient evidence coverage for safe auto-remediation");
    }
}

/// Step 4: critical severity blocks and demands FORCE_OVERRIDE (when the rules say so; only
/// then is the comparison recorded).
fn check_severity(findings: &mut Findings, incident_severity: Severity, rules: &RemediationRules) {
    if rules.critical_requires_force_override
        && findings.compare(
            rule_ids::CRITICAL_SEVERITY,
            "severity",
            Operator::Eq,
            text("critical"),
            SignalValue::Text(incident_severity.as_str().into()),
            incident_severity == Severity::Critical,
        )
    {
        findings.fire(rule_ids::CRITICAL_SEVERITY, "Critical severity: remediation requires FORCE_OVERRIDE by a human");
        findings.force_override = true;
    }
}

/// Step 5: a fabricated authority that was not rejected blocks (the original only added a
/// reason).
fn check_fabrication(findings: &mut Findings, stress: &StressOutput) {
    if findings.compare(
        rule_ids::FABRICATION_NOT_REJECTED,
        "fabricated_authority_rejected",
        Operator::Eq,
        Threshold::Scalar(Scalar::Bool(false)),
        SignalValue::Bool(stress.fabricated_authority_rejected),
        !stress.fabricated_authority_rejected,
    ) {
        findings.fire(rule_ids::FABRICATION_NOT_REJECTED, "Fabricated authority was not rejected");
    }
}

/// Step 6: the deploy-signal rules that apply to the action's classes, each evaluated by the
/// policy language over the deploy signals. A rule that cannot be evaluated fires (fail
/// closed); without signals a rule fires only when the rules require signals (once, as
/// `deploy_signals_missing`), else it is noted.
fn check_signal_rules(
    findings: &mut Findings,
    classes: &[ActionClass],
    deploy_signals: Option<&Signals>,
    rules: &RemediationRules,
) {
    let class_actual = SignalValue::Text(classes.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","));
    let mut signals_missing_noted = false;
    for r in &rules.signal_rules {
        let rule = format!("signal:{}", r.id);
        let applies = r.action_classes.is_empty() || r.action_classes.iter().any(|c| classes.contains(c));
        let wanted = Threshold::List(r.action_classes.iter().map(|c| Scalar::Text(c.as_str().into())).collect());
        if !r.action_classes.is_empty() {
            findings.compare(&rule, "action_class", Operator::In, wanted, class_actual.clone(), applies);
        }
        if !applies {
            continue;
        }
        let Some(signals) = deploy_signals else {
            if rules.require_deploy_signals {
                if !signals_missing_noted {
                    findings.fire(
                        rule_ids::DEPLOY_SIGNALS_MISSING,
                        "Deploy signals are required by the rules but were not given",
                    );
                    signals_missing_noted = true;
                }
            } else {
                findings.notes.push(format!("signal rule {} not evaluated: no deploy signals were given", r.id));
            }
            continue;
        };
        let (matched, outcomes, failure) = match policy::evaluate(&signal_rule_policy(r), signals) {
            Ok(d) => {
                let outcomes = d.trace.first().map(|t| t.conditions.clone()).unwrap_or_default();
                (d.action == Action::Block, outcomes, None)
            }
            // A signal the rule needs is unavailable, or the rule is invalid: fail closed.
            Err(e) => (true, Vec::new(), Some(e.to_string())),
        };
        for o in outcomes {
            findings.compare(&rule, &o.signal, o.operator, o.threshold, o.actual, o.result);
        }
        if matched {
            let reason = match failure {
                None => format!("{} (rule {})", r.description, r.id),
                Some(why) => format!("Rule {} could not be evaluated ({why}); failing closed", r.id),
            };
            findings.fire(&rule, reason);
            if r.effect == RuleEffect::RequireForceOverride {
                findings.force_override = true;
            }
        }
    }
}

/// A signal rule as a one-policy set of the policy language: BLOCK when its conditions hold,
/// else ALLOW.
fn signal_rule_policy(r: &SignalRule) -> PolicySet {
    PolicySet {
        version: None,
        description: None,
        policies: vec![Policy {
            id: r.id.clone(),
            name: r.description.clone(),
            priority: 0,
            action: Action::Block,
            conditions: r.when.clone(),
            reason: r.description.clone(),
            remediation: String::new(),
            delay_minutes: 0,
        }],
        default_action: Some(DefaultRule {
            action: Action::Allow,
            reason: String::new(),
            remediation: String::new(),
            delay_minutes: 0,
        }),
    }
}

/// Step 7: what executes must be what was checked (the original executed the verifier's
/// string). Fires only when nothing else has.
fn check_position(findings: &mut Findings, plan: &PlanOutput, stress: &StressOutput, position_changed: bool) {
    let blocked_so_far = !findings.fired.is_empty();
    if findings.compare(
        rule_ids::POSITION_CHANGED,
        "final_position",
        Operator::Neq,
        text(&plan.proposed_action),
        SignalValue::Text(stress.position_after_stress.clone()),
        position_changed,
    ) && !blocked_so_far
    {
        findings.fire(rule_ids::POSITION_CHANGED, "Final position differs from the checked action; escalated to human");
    }
}

/// Step 8: a plan to escalate or pause has nothing to execute: it is a block by nature. Only
/// evidence found for such a plan (e.g. documents about the service that match its words)
/// could otherwise make it "execute". Fires only when nothing else has.
fn check_escalation_only(findings: &mut Findings, action: &NormalisedAction) {
    let escalation = matches!(
        action.canonical,
        Some(CanonicalAction::InvestigateAndEscalate | CanonicalAction::PauseAndRequestDbaApproval)
    );
    if findings.compare(
        rule_ids::ESCALATION_ONLY,
        "proposed_action",
        Operator::In,
        Threshold::List(vec![
            Scalar::Text(CanonicalAction::InvestigateAndEscalate.id().into()),
            Scalar::Text(CanonicalAction::PauseAndRequestDbaApproval.id().into()),
        ]),
        SignalValue::Text(action.id.clone()),
        escalation,
    ) && findings.fired.is_empty()
    {
        findings
            .fire(rule_ids::ESCALATION_ONLY, "The plan is to escalate to a human; nothing is executed automatically");
    }
}

/// The arbiter (§2.7 steps 9–10): how a disagreement between planner and verifier is
/// resolved for `verdict`, adding its reason to `reasons`.
fn arbiter(disagreement: bool, verdict: Verdict, reasons: &mut Vec<String>) -> &'static str {
    match (disagreement, verdict) {
        (true, Verdict::Execute) => {
            reasons.push("Planner/Verifier disagreement detected; executing with guardrails".into());
            "execute_with_guardrails"
        }
        (true, Verdict::BlockAndEscalate) => {
            reasons.push("Planner/Verifier disagreement detected; escalated to human".into());
            "escalate_for_human_approval"
        }
        (false, Verdict::BlockAndEscalate) => "escalate_for_human_approval",
        (false, Verdict::Execute) => "accept_planner_action",
    }
}

/// The verdict, the arbiter, the contract object and the decision, from what the steps found.
fn conclude(
    findings: Findings,
    plan: &PlanOutput,
    stress: &StressOutput,
    derived: &Derived,
    classes: Vec<ActionClass>,
) -> GateDecision {
    let Findings { compared, fired, mut reasons, notes, force_override } = findings;
    let decision = if fired.is_empty() { Verdict::Execute } else { Verdict::BlockAndEscalate };
    let arbiter = arbiter(derived.disagreement, decision, &mut reasons);
    if decision == Verdict::Execute && reasons.is_empty() {
        reasons.push("Validated against runbooks and live telemetry; safety threshold passed.".into());
    }
    let Derived { raw_delta, act, iii, ri, per, .. } = *derived;
    let adaptability = f64::from(act) * iii * (1.0 - ri) * (1.0 - per);
    let output = GateOutput {
        incident_id: plan.incident_id.clone(),
        initial_position: plan.proposed_action.clone(),
        final_position: stress.position_after_stress.clone(),
        confidence_initial: clamp_unit(plan.confidence_initial, 10.0),
        confidence_final: clamp_unit(stress.confidence_post_stress, 10.0),
        confidence_delta: clamp_unit(py_round(raw_delta, 2), 10.0),
        act,
        iii: clamp_unit(iii, 1.0),
        ri,
        per,
        adaptability_score: clamp_unit(py_round(adaptability, 4), 1.0),
        decision,
        reasons,
    };
    let execution_mode = match decision {
        Verdict::Execute => stress.position_after_stress.clone(),
        Verdict::BlockAndEscalate => ESCALATE_TO_HUMAN.to_string(),
    };
    GateDecision {
        output,
        rule: fired.first().cloned().unwrap_or_else(|| rule_ids::VALIDATED.to_string()),
        fired,
        compared,
        requires_approval: decision == Verdict::BlockAndEscalate,
        requires_force_override: force_override && decision == Verdict::BlockAndEscalate,
        disagreement_detected: derived.disagreement,
        arbiter_resolution: arbiter.to_string(),
        execution_mode,
        action_classes: classes,
        notes,
    }
}
