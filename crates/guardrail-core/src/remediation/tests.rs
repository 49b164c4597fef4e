use serde_json::Value;

use crate::signals::{SignalValue, Signals};

use super::*;

fn inc(service: &str, severity: Severity) -> Incident {
    Incident { id: "inc-t".into(), service: service.into(), severity, summary: "s".into(), symptoms: "y".into() }
}

fn plan(action: &str, claims: &[&str]) -> PlanOutput {
    PlanOutput {
        incident_id: "inc-t".into(),
        proposed_action: action.into(),
        rationale: "r".into(),
        key_claims: claims.iter().map(|s| s.to_string()).collect(),
        confidence_initial: 5.0,
        retrieved_context_ids: vec![],
    }
}

fn ev(id: &str, service: &str, stance: Stance) -> EvidenceRef {
    EvidenceRef { id: id.into(), service: service.into(), stance }
}

fn sample_policies() -> Vec<ActionPolicy> {
    vec![
        ActionPolicy {
            id: "pol-approval-01".into(),
            service: "payments-api".into(),
            blocked_actions: vec!["restart_api_pods".into()],
            severities: vec![Severity::High],
            rule: "High severity production restart requires approval.".into(),
        },
        ActionPolicy {
            id: "pol-general-01".into(),
            service: "*".into(),
            blocked_actions: vec![],
            severities: vec![Severity::Low, Severity::Medium, Severity::High],
            rule: "All actions must be logged.".into(),
        },
    ]
}

#[test]
fn severity_is_closed() {
    assert_eq!(Severity::parse("high"), Some(Severity::High));
    assert_eq!(Severity::parse("critical"), Some(Severity::Critical));
    for bad in ["CRITICAL!!", "CRITICAL", "High", " high", "sev1", "", "urgent"] {
        assert_eq!(Severity::parse(bad), None, "{bad}");
    }
}

#[test]
fn incident_errors_name_the_field() {
    let base = serde_json::json!({"id": "i", "service": "svc", "severity": "high", "summary": "s", "symptoms": "y"});
    assert!(Incident::from_json_value(&base).is_ok());
    let cases: Vec<(&str, Value)> = vec![
        ("severity", Value::String("CRITICAL!!".into())),
        ("severity", serde_json::json!(3)),
        ("severity", Value::Null),
        ("service", Value::String("*".into())),
        ("service", Value::String("".into())),
        ("id", serde_json::json!(["x"])),
        ("summary", serde_json::json!({"a": 1})),
    ];
    for (field, value) in cases {
        let mut v = base.clone();
        v[field] = value.clone();
        let e = Incident::from_json_value(&v).unwrap_err();
        assert_eq!(e.field(), Some(field), "{field}={value}: {e}");
    }
    for field in ["id", "service", "severity", "summary", "symptoms"] {
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove(field);
        let e = Incident::from_json_value_at(&v, "incidents[3]").unwrap_err();
        assert_eq!(e.field(), Some(format!("incidents[3].{field}").as_str()), "{e}");
        assert!(e.to_string().contains("missing"), "{e}");
    }
    assert!(matches!(Incident::from_json_str("[1]"), Err(IncidentError::NotAnObject { .. })));
    assert!(matches!(Incident::from_json_str("{"), Err(IncidentError::Syntax(_))));
}

#[test]
fn vocabulary_maps_prose_and_identifiers() {
    let svc = Some("payments-api");
    for (text, want) in [
        ("restart_api_pods", "restart_api_pods"),
        ("Restart the payments-api pods", "restart_api_pods"),
        ("bounce all API pods now", "restart_api_pods"),
        ("Throttle traffic and tune the connection pool", "throttle_traffic_and_tune_pool"),
        ("throttle_traffic_and_tune_pool", "throttle_traffic_and_tune_pool"),
        ("scale_worker_pool", "scale_worker_pool"),
        ("Scale up the worker pool", "scale_worker_pool"),
        ("investigate_and_escalate", "investigate_and_escalate"),
        ("pause_and_request_dba_approval", "pause_and_request_dba_approval"),
    ] {
        let n = normalise_action(text, svc);
        assert_eq!(n.id, want, "{text}");
        assert!(n.canonical.is_some(), "{text}");
    }
    let n = normalise_action("kubectl delete ns prod", svc);
    assert_eq!(n.id, "kubectl_delete_ns_prod");
    assert_eq!(n.canonical, None);
    assert!(n.mentions.is_empty());
    assert_eq!(n.classes(), vec![ActionClass::Unknown]);

    let n = normalise_action("restart_api_pods_and_reset_connection_pool", svc);
    assert_eq!(n.canonical, None);
    assert_ne!(n.id, "restart_api_pods");
    assert_eq!(n.mentions, vec![CanonicalAction::RestartApiPods]);
    assert_eq!(n.classes(), vec![ActionClass::Restart, ActionClass::Unknown]);
}

#[test]
fn normalisation_is_idempotent() {
    for text in ["Restart the payments-api pods", "kubectl delete ns prod", "Scale up the worker pool", "", "a--b"] {
        let once = normalise_action(text, Some("payments-api"));
        let twice = normalise_action(&once.id, Some("payments-api"));
        assert_eq!(once.id, twice.id, "{text}");
    }
}

proptest::proptest! {
    #[test]
    fn normalisation_is_idempotent_and_never_aliases(text in "[a-zA-Z_ -]{0,40}") {
        let once = normalise_action(&text, Some("payments-api"));
        let twice = normalise_action(&once.id, Some("payments-api"));
        proptest::prop_assert_eq!(&once.id, &twice.id);
        if once.canonical.is_none() {
            proptest::prop_assert!(CanonicalAction::ALL.iter().all(|a| a.id() != once.id));
        }
    }
}

#[test]
fn policy_matching_survives_prose() {
    let pols = sample_policies();
    let svc = "payments-api";
    for text in [
        "restart_api_pods",
        "Restart_API_Pods",
        "Restart the payments-api pods",
        "restart api pods and reset connection pool",
    ] {
        let a = normalise_action(text, Some(svc));
        let got = policy_conflicts(&pols, svc, &a, Severity::High);
        assert_eq!(got.len(), 1, "{text}: {got:?}");
        assert_eq!(got[0].id, "pol-approval-01");
    }
    let a = normalise_action("restart_api_pods", Some(svc));
    assert!(policy_conflicts(&pols, svc, &a, Severity::Medium).is_empty());
    assert!(policy_conflicts(&pols, "billing-batch", &a, Severity::High).is_empty());
    let t = normalise_action("throttle_traffic_and_tune_pool", Some(svc));
    assert!(policy_conflicts(&pols, svc, &t, Severity::High).is_empty());
}

#[test]
fn phrase_policies_match_inside_longer_actions() {
    let pols = vec![ActionPolicy {
        id: "pol-ns".into(),
        service: "*".into(),
        blocked_actions: vec!["delete namespace".into()],
        severities: Severity::ALL.to_vec(),
        rule: "never".into(),
    }];
    let a = normalise_action("kubectl delete namespace payments --force", Some("payments"));
    assert_eq!(policy_conflicts(&pols, "payments", &a, Severity::Low).len(), 1);
}

#[test]
fn stress_counts_by_recorded_stance() {
    let p = plan("throttle_traffic_and_tune_pool", &["c1", "c2"]);
    let r = |claim: &str| ClaimRetrieval {
        claim: claim.into(),
        support_hits: vec![
            ev("ev-100", "payments-api", Stance::Support),
            ev("ev-101", "payments-api", Stance::Contradict),
        ],
        contradiction_hits: vec![
            ev("ev-101", "payments-api", Stance::Contradict),
            ev("ev-102", "payments-api", Stance::Contradict),
            ev("ev-x", "other", Stance::Contradict),
        ],
    };
    let s =
        assess_stress(&inc("payments-api", Severity::High), &p, &[r("c1"), r("c2")], &[], &RemediationRules::default())
            .unwrap();
    assert_eq!(s.support_count, 2);
    assert_eq!(s.output.contradiction_count, 4);
    assert_eq!(s.output.integration_quality, 1.0);
    assert_eq!(s.output.confidence_post_stress, 1.0);
    assert_eq!(s.output.position_after_stress, PAUSE_POSITION);
    assert!(s.hard_evidence);
    assert_eq!(s.ignored_hits.len(), 4, "{:?}", s.ignored_hits);
    assert_eq!(s.distinct_contradiction_docs, vec!["ev-101", "ev-102"]);
}

#[test]
fn stress_refuses_misaligned_retrievals() {
    let p = plan("scale_worker_pool", &["c1", "c2"]);
    let one = ClaimRetrieval { claim: "c1".into(), support_hits: vec![], contradiction_hits: vec![] };
    let rules = RemediationRules::default();
    let i = inc("billing-batch", Severity::Medium);
    assert!(assess_stress(&i, &p, std::slice::from_ref(&one), &[], &rules).is_err());
    let other = ClaimRetrieval { claim: "zz".into(), ..one.clone() };
    assert!(assess_stress(&i, &p, &[one, other], &[], &rules).is_err());
}

#[test]
fn stress_never_raises_confidence() {
    let mut p = plan("scale_worker_pool", &["c"]);
    p.confidence_initial = 0.5;
    let r = ClaimRetrieval { claim: "c".into(), support_hits: vec![], contradiction_hits: vec![] };
    let s = assess_stress(&inc("b", Severity::Low), &p, &[r], &[], &RemediationRules::default()).unwrap();
    assert_eq!(s.output.confidence_post_stress, 0.5);
}

fn clean_stress(p: &PlanOutput) -> StressOutput {
    StressOutput {
        incident_id: p.incident_id.clone(),
        claim_evidence: p
            .key_claims
            .iter()
            .map(|c| ClaimEvidence { claim: c.clone(), support_docs: vec!["ev-1".into()], contradiction_docs: vec![] })
            .collect(),
        contradiction_count: 0,
        policy_conflicts: vec![],
        fabricated_authority_rejected: true,
        confidence_post_stress: p.confidence_initial,
        position_after_stress: p.proposed_action.clone(),
        integration_quality: 1.0,
    }
}

#[test]
fn clean_inputs_execute() {
    let p = plan("scale_worker_pool", &["c"]);
    let d = gate(&p, &clean_stress(&p), Severity::Medium, None, &RemediationRules::default());
    assert_eq!(d.output.decision, Verdict::Execute);
    assert_eq!(d.rule, rule_ids::VALIDATED);
    assert_eq!(d.output.reasons, vec!["Validated against runbooks and live telemetry; safety threshold passed."]);
    assert_eq!(d.execution_mode, "scale_worker_pool");
    assert!(!d.requires_approval && !d.requires_force_override);
    assert_eq!(d.notes.len(), 1, "burn-rate rule skipped without signals: {:?}", d.notes);
}

/// A planner failure blocks whatever the evidence says and is the deciding rule; without one,
/// `gate_planned` is `gate` (nothing compared for it, so older decisions replay identically).
#[test]
fn a_planner_failure_blocks_and_is_named() {
    let p = plan("scale_worker_pool", &["c"]);
    let rules = RemediationRules::default();
    let s = clean_stress(&p);
    assert_eq!(
        gate_planned(&p, &s, Severity::Medium, None, &rules, None),
        gate(&p, &s, Severity::Medium, None, &rules)
    );
    let d = gate_planned(&p, &s, Severity::Medium, None, &rules, Some("the model call failed: HTTP 500"));
    assert_eq!(d.output.decision, Verdict::BlockAndEscalate);
    assert_eq!(d.rule, rule_ids::PLANNER_FAILED);
    assert!(d.output.reasons[0].contains("HTTP 500"), "{:?}", d.output.reasons);
    assert!(d.requires_approval && !d.requires_force_override);
    assert_eq!(d.compared[0].rule, rule_ids::PLANNER_FAILED);
}

#[test]
fn critical_requires_force_override() {
    let p = plan("scale_worker_pool", &["c"]);
    let d = gate(&p, &clean_stress(&p), Severity::Critical, None, &RemediationRules::default());
    assert_eq!(d.output.decision, Verdict::BlockAndEscalate);
    assert_eq!(d.rule, rule_ids::CRITICAL_SEVERITY);
    assert!(d.requires_force_override && d.requires_approval);
}

#[test]
fn burn_rate_rule_needs_approval_for_restart_and_scale_only() {
    let mut sig = Signals::default();
    sig.set("burn_rate", SignalValue::Text("critical".into()));
    let rules = RemediationRules::default();
    for (action, blocks) in
        [("scale_worker_pool", true), ("restart_api_pods", true), ("throttle_traffic_and_tune_pool", false)]
    {
        let p = plan(action, &["c"]);
        let d = gate(&p, &clean_stress(&p), Severity::Medium, Some(&sig), &rules);
        assert_eq!(d.output.decision == Verdict::BlockAndEscalate, blocks, "{action}: {d:?}");
        if blocks {
            assert_eq!(d.rule, "signal:burn-critical-restart-scale");
            assert!(d.requires_approval && !d.requires_force_override);
            assert!(d.compared.iter().any(|c| c.input == "burn_rate" && c.held));
        }
    }
    sig.set("burn_rate", SignalValue::Text("low".into()));
    let p = plan("scale_worker_pool", &["c"]);
    let d = gate(&p, &clean_stress(&p), Severity::Medium, Some(&sig), &rules);
    assert_eq!(d.output.decision, Verdict::Execute);
    assert!(d.compared.iter().any(|c| c.input == "burn_rate" && !c.held));
}

#[test]
fn unavailable_signal_fails_closed_and_missing_signals_can_be_required() {
    let p = plan("scale_worker_pool", &["c"]);
    let s = clean_stress(&p);
    let d = gate(&p, &s, Severity::Low, Some(&Signals::default()), &RemediationRules::default());
    assert_eq!(d.output.decision, Verdict::BlockAndEscalate, "{d:?}");
    let rules = RemediationRules { require_deploy_signals: true, ..RemediationRules::default() };
    let d = gate(&p, &s, Severity::Low, None, &rules);
    assert_eq!(d.rule, rule_ids::DEPLOY_SIGNALS_MISSING);
}

#[test]
fn invalid_rules_and_inputs_block() {
    let p = plan("scale_worker_pool", &["c"]);
    let s = clean_stress(&p);
    let rules = RemediationRules { min_evidence_coverage: f64::NAN, ..RemediationRules::default() };
    assert_eq!(gate(&p, &s, Severity::Low, None, &rules).rule, rule_ids::INVALID_RULES);
    let mut other = s.clone();
    other.incident_id = "inc-other".into();
    assert_eq!(gate(&p, &other, Severity::Low, None, &RemediationRules::default()).rule, rule_ids::INVALID_INPUTS);
    let mut understated = s.clone();
    understated.claim_evidence[0].contradiction_docs = vec!["ev-a".into(), "ev-b".into()];
    let d = gate(&p, &understated, Severity::Low, None, &RemediationRules::default());
    assert_eq!(d.rule, rule_ids::INVALID_INPUTS);
    let mut wild = s.clone();
    wild.confidence_post_stress = 99.0;
    let d = gate(&p, &wild, Severity::Low, None, &RemediationRules::default());
    assert_eq!(d.rule, rule_ids::INVALID_INPUTS);
    assert!(d.output.confidence_final <= 10.0);
}

#[test]
fn an_escalation_plan_never_executes() {
    let p = plan("investigate_and_escalate", &["c"]);
    let d = gate(&p, &clean_stress(&p), Severity::Low, None, &RemediationRules::default());
    assert_eq!(d.output.decision, Verdict::BlockAndEscalate);
    assert_eq!(d.rule, rule_ids::ESCALATION_ONLY);
}

#[test]
fn changed_position_never_executes() {
    let p = plan("scale_worker_pool", &["c"]);
    let mut s = clean_stress(&p);
    s.position_after_stress = "drop_database_and_restore_from_backup".into();
    let d = gate(&p, &s, Severity::Low, None, &RemediationRules::default());
    assert_eq!(d.output.decision, Verdict::BlockAndEscalate);
    assert_eq!(d.rule, rule_ids::POSITION_CHANGED);
}

#[test]
fn check_rules_reroots_condition_paths() {
    let mut rules = RemediationRules::default();
    rules.signal_rules[0].when[0].signal = "burn".into();
    let issues = check_rules(&rules);
    assert!(issues.iter().any(|i| i.path == "signal_rules[0].when.burn"), "{issues:?}");
}
