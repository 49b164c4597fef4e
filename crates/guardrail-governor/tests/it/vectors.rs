//! The reference note's §6.2 first-commit vectors: the built-in planner and the computed
//! stress phase, offline, reproduce the original's first commit on the sample data and the
//! three scenarios. Every contract object validates against its schema.

use guardrail_core::remediation::{PAUSE_POSITION, Verdict};
use guardrail_governor::tools::LiveLogs;
use guardrail_governor::{NdjsonLogs, ToolContext, run_pipeline};

use crate::common::{all_incidents, assert_contracts, now, sample_store};

struct Expected {
    action: &'static str,
    coverage: f64,
    support: usize,
    contradictions: u32,
    conf: (f64, f64),
    act: u8,
    adaptability: f64,
    decision: Verdict,
    rule: &'static str,
    reasons: &'static [&'static str],
}

fn expected(id: &str) -> Expected {
    match id {
        "inc-001" | "inc-live-001" => Expected {
            action: "throttle_traffic_and_tune_pool",
            coverage: 1.0,
            support: 2,
            contradictions: 4,
            conf: (5.0, 1.0),
            act: 1,
            adaptability: 0.8,
            decision: Verdict::BlockAndEscalate,
            rule: "multiple_contradictions",
            reasons: &[
                "Multiple technical contradictions",
                "Planner/Verifier disagreement detected; escalated to human",
            ],
        },
        "inc-002" | "inc-live-002" => Expected {
            action: "scale_worker_pool",
            coverage: 1.0,
            support: 4,
            contradictions: 0,
            conf: (5.0, 5.0),
            act: 0,
            adaptability: 0.0,
            decision: Verdict::Execute,
            rule: "validated",
            reasons: &["Validated against runbooks and live telemetry; safety threshold passed."],
        },
        "inc-live-downloads-503" => Expected {
            action: "investigate_and_escalate",
            coverage: 0.0,
            support: 0,
            contradictions: 0,
            conf: (5.0, 5.0),
            act: 0,
            adaptability: 0.0,
            decision: Verdict::BlockAndEscalate,
            rule: "insufficient_coverage",
            reasons: &["Insufficient evidence coverage for safe auto-remediation"],
        },
        other => panic!("no vector for {other}"),
    }
}

#[test]
fn first_commit_vectors_are_reproduced() {
    let (store, _) = sample_store();
    let ctx = ToolContext::new(&store, now());
    let incidents = all_incidents();
    assert_eq!(incidents.len(), 5);
    for inc in &incidents {
        let o = run_pipeline(inc, &ctx).unwrap_or_else(|e| panic!("{}: {e}", inc.id));
        let want = expected(&inc.id);
        let (plan, stress, gate) = (&o.plan.output, &o.stress.assessment.output, &o.gate);
        let support: usize = stress.claim_evidence.iter().map(|c| c.support_docs.len()).sum();
        assert_eq!(plan.proposed_action, want.action, "{}", inc.id);
        assert_eq!(stress.integration_quality, want.coverage, "{}", inc.id);
        assert_eq!(support, want.support, "{}", inc.id);
        assert_eq!(stress.contradiction_count, want.contradictions, "{}", inc.id);
        assert!(stress.policy_conflicts.is_empty(), "{}", inc.id);
        assert_eq!((gate.output.confidence_initial, gate.output.confidence_final), want.conf, "{}", inc.id);
        assert_eq!(gate.output.act, want.act, "{}", inc.id);
        assert_eq!(gate.output.adaptability_score, want.adaptability, "{}", inc.id);
        assert_eq!(gate.output.decision, want.decision, "{}", inc.id);
        assert_eq!(gate.rule, want.rule, "{}", inc.id);
        assert_eq!(gate.output.reasons, want.reasons, "{}", inc.id);
        assert_contracts(&o);
        if want.decision == Verdict::BlockAndEscalate {
            assert_eq!(gate.execution_mode, "escalate_to_human");
            assert_eq!(gate.arbiter_resolution, "escalate_for_human_approval");
            assert!(gate.requires_approval);
        } else {
            assert_eq!(gate.execution_mode, want.action);
            assert_eq!(gate.arbiter_resolution, "accept_planner_action");
        }
        // No incident here is critical, so no FORCE_OVERRIDE.
        assert!(!gate.requires_force_override);
    }
}

#[test]
fn inc_001_details_match_the_first_commit() {
    let (store, incidents) = sample_store();
    let ctx = ToolContext::new(&store, now());
    let o = run_pipeline(&incidents[0], &ctx).unwrap();
    let s = &o.stress.assessment;
    assert_eq!(o.plan.output.retrieved_context_ids, vec!["rbk-api-02", "rbk-api-01"]);
    assert_eq!(o.plan.runbook.as_ref().unwrap().id, "rbk-api-02");
    assert_eq!(s.output.position_after_stress, PAUSE_POSITION);
    assert_eq!(s.distinct_contradiction_docs, vec!["ev-101", "ev-102"]);
    assert_eq!(s.distinct_support_docs, vec!["ev-100"]);
    assert!(s.hard_evidence);
    assert!(o.gate.disagreement_detected);
    assert_eq!(o.gate.output.confidence_delta, 4.0);
    // The compared values say why: 4 contradictions >= 2.
    let c = o.gate.compared.iter().find(|c| c.input == "contradiction_count").unwrap();
    assert!(c.held);
    assert_eq!(c.actual.to_string(), "4");
    assert_eq!(c.threshold.to_string(), "2");
    // Trace: plan search, logs, 2 claims × 2 evidence searches, policy check.
    let tools: Vec<&str> = o.trace.iter().map(|t| t.tool.as_str()).collect();
    assert_eq!(
        tools,
        vec![
            "search_runbooks",
            "query_live_logs",
            "search_evidence",
            "search_evidence",
            "search_evidence",
            "search_evidence",
            "check_policy_conflicts"
        ]
    );
    assert!(o.trace.iter().all(|t| t.ok));
}

#[test]
fn the_pipeline_is_deterministic() {
    let (store, incidents) = sample_store();
    let ctx = ToolContext::new(&store, now());
    for inc in &incidents {
        let a = serde_json::to_string(&run_pipeline(inc, &ctx).unwrap()).unwrap();
        let b = serde_json::to_string(&run_pipeline(inc, &ctx).unwrap()).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn telemetry_is_recorded_and_decides_nothing() {
    let (store, incidents) = sample_store();
    let logs = NdjsonLogs::open(&crate::common::examples().join("logs.ndjson")).unwrap();
    let ctx = ToolContext::new(&store, now()).with_logs(&logs);
    let o = run_pipeline(&incidents[0], &ctx).unwrap();
    let LiveLogs::Available(w) = &o.stress.telemetry else { panic!("logs are configured: {:?}", o.stress.telemetry) };
    assert_eq!((w.counts.total, w.counts.server_error_count, w.counts.error_rate), (5, 3, Some(0.6)), "{w:?}");
    // The JSON as the trace and views carry it.
    let t = serde_json::to_value(&o.stress.telemetry).unwrap();
    assert_eq!(t["available"], true);
    assert_eq!(t["total"], 5, "{t}");
    assert_eq!(t["server_error_count"], 3, "{t}");
    assert_eq!(t["error_rate"], 0.6, "{t}");
    assert_eq!(o.gate.rule, "multiple_contradictions");
    let without = run_pipeline(&incidents[0], &ToolContext::new(&store, now())).unwrap();
    assert!(matches!(without.stress.telemetry, LiveLogs::Unavailable(_)), "{:?}", without.stress.telemetry);
    assert_eq!(serde_json::to_value(&without.stress.telemetry).unwrap()["available"], false);
    assert_eq!(serde_json::to_value(&o.gate).unwrap(), serde_json::to_value(&without.gate).unwrap());
}
