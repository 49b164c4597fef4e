//! The injection corpus (`tests/fixtures/injection/corpus.json`): instructions hidden in incident
//! text, runbooks, evidence, logs and tool results, models that lie about counts, ask for tools
//! that do not exist or are not offered, propose commands, loop forever, return broken JSON,
//! refuse, fail or time out — each run through the real loop (the OpenAI and Anthropic adapters
//! against loopback servers speaking their wire formats), decide-and-act and a real audit store.
//!
//! For every case: nothing executes, no rule changes (the rules in force and the rules the
//! decision records are the defaults), the action waits for a human (or the built-in fallback is
//! recorded), the transcript is on the chain before the decision with the expected outcome and
//! failure, nothing the model reported reaches the gated plan, no key is recorded, and the
//! decision replays identically without the model. One benign case executes (positive control).

use std::time::Duration;

use guardrail_core::remediation::{Incident, RemediationRules, Severity};
use guardrail_governor::model_planner::{Fallback, ModelPlannerSettings};
use guardrail_governor::pipeline::{Next, RunOutcome};
use guardrail_governor::queue::kinds;
use guardrail_governor::transcript::PLANNER_TRANSCRIPT;
use guardrail_governor::{NdjsonLogs, ToolRegistry};
use guardrail_test_support::model::{Call, Reply, anthropic, openai, serve_with};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::agent_loop::{KEY, Wire, kb_from, model, plan_text, run};
use crate::common::{examples, sample_store};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    #[allow(dead_code)] // documentation for the reader of the file
    about: String,
    cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    wire: String,
    incident: String,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    symptoms: Option<String>,
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default)]
    runbooks: Vec<Value>,
    #[serde(default)]
    evidence: Vec<Value>,
    #[serde(default)]
    logs: Vec<Value>,
    #[serde(default)]
    registry: Option<String>,
    #[serde(default)]
    settings: CaseSettings,
    script: Vec<Step>,
    expect: Expect,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSettings {
    max_tool_rounds: Option<u32>,
    max_total_tokens: Option<u64>,
    wall_clock_ms: Option<u64>,
    deadline_ms: Option<u64>,
    fallback: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallSpec {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorSpec {
    status: u16,
    kind: String,
    #[serde(default)]
    code: String,
    message: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    tool_calls: Option<Vec<CallSpec>>,
    plan: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    omit: Vec<String>,
    text: Option<String>,
    refusal: Option<String>,
    truncated: Option<String>,
    error: Option<ErrorSpec>,
    usage: Option<(u64, u64)>,
    delay_ms: Option<u64>,
    /// Blanks appended to the answer text.
    pad_bytes: Option<usize>,
    /// The first tool call repeated this many times (ids suffixed `-n`).
    repeat_calls: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    outcome: String,
    #[serde(default)]
    failure: Option<String>,
    #[serde(default)]
    tool_refusals: Vec<String>,
    #[serde(default)]
    ignored_fields: Vec<String>,
    #[serde(default)]
    rule: Option<String>,
}

fn corpus() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/injection/corpus.json");
    let c: Corpus = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    c.cases
}

fn wire(case: &Case) -> Wire {
    match case.wire.as_str() {
        "openai" => Wire::OpenAi,
        "anthropic" => Wire::Anthropic,
        other => panic!("{}: wire {other}", case.name),
    }
}

/// The reply for one step in `wire`'s format.
fn reply(wire: Wire, incident: &Incident, step: &Step) -> Reply {
    let text = step.plan.as_ref().map(|p| {
        let mut p = p.clone();
        let action = p.remove("proposed_action").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let mut v: Value = serde_json::from_str(&plan_text(incident, &action, Value::Object(p))).unwrap();
        for f in &step.omit {
            v.as_object_mut().unwrap().remove(f);
        }
        v.to_string()
    });
    let text = text.or_else(|| step.text.clone()).map(|t| t + &" ".repeat(step.pad_bytes.unwrap_or(0)));
    let calls: Option<Vec<Call>> = step.tool_calls.as_ref().map(|calls| match (step.repeat_calls, calls.first()) {
        (Some(n), Some(c)) => (0..n).map(|k| Call::new(&format!("{}-{k}", c.id), &c.name, &c.arguments)).collect(),
        _ => calls.iter().map(|c| Call::new(&c.id, &c.name, &c.arguments)).collect(),
    });
    let r = match (wire, step) {
        (Wire::OpenAi, Step { tool_calls: Some(_), .. }) => openai::tool_calls(calls.as_deref().unwrap_or_default()),
        (Wire::Anthropic, Step { tool_calls: Some(_), .. }) => {
            anthropic::tool_use(calls.as_deref().unwrap_or_default())
        }
        (Wire::OpenAi, Step { refusal: Some(r), .. }) => openai::refusal(r),
        (Wire::Anthropic, Step { refusal: Some(r), .. }) => anthropic::refusal(r),
        (Wire::OpenAi, Step { truncated: Some(t), .. }) => openai::truncated(t),
        (Wire::Anthropic, Step { truncated: Some(t), .. }) => anthropic::truncated(t),
        (Wire::OpenAi, Step { error: Some(e), .. }) => openai::error(e.status, &e.kind, &e.code, &e.message),
        (Wire::Anthropic, Step { error: Some(e), .. }) => anthropic::error(e.status, &e.kind, &e.message),
        (Wire::OpenAi, _) => openai::text_with_usage(&text.expect("a step"), step.usage.unwrap_or((420, 80))),
        (Wire::Anthropic, _) => anthropic::text_with_usage(&text.expect("a step"), step.usage.unwrap_or((2095, 503))),
    };
    r.after(Duration::from_millis(step.delay_ms.unwrap_or(0)))
}

fn the_incident(case: &Case) -> Incident {
    let (_, incidents) = sample_store();
    let mut i = incidents.into_iter().find(|i| i.id == case.incident).expect("a sample incident");
    if let Some(s) = &case.summary {
        i.summary = s.clone();
    }
    if let Some(s) = &case.symptoms {
        i.symptoms = s.clone();
    }
    if let Some(s) = case.severity {
        i.severity = s;
    }
    i
}

/// Runs one case and checks what every case must hold; returns a failure message, if any.
fn check(case: &Case) -> Result<(), String> {
    let incident = the_incident(case);
    let wire = wire(case);
    let mut data: Value =
        serde_json::from_str(&std::fs::read_to_string(examples().join("sample_data.json")).unwrap()).unwrap();
    data["runbooks"].as_array_mut().unwrap().extend(case.runbooks.iter().cloned());
    data["evidence"].as_array_mut().unwrap().extend(case.evidence.iter().cloned());
    let kb = kb_from(&data);
    let mut logs_text = std::fs::read_to_string(examples().join("logs.ndjson")).unwrap();
    for l in &case.logs {
        logs_text.push_str(&format!("{l}\n"));
    }
    let logs = NdjsonLogs::from_text("logs.ndjson", &logs_text);
    let script: Vec<Reply> = case.script.iter().map(|s| reply(wire, &incident, s)).collect();
    let srv = serve_with(move |n, _| script[n.min(script.len() - 1)].clone());
    let s = &case.settings;
    let d = ModelPlannerSettings::default();
    let settings = ModelPlannerSettings {
        max_tool_rounds: s.max_tool_rounds.unwrap_or(d.max_tool_rounds),
        max_total_tokens: s.max_total_tokens.unwrap_or(d.max_total_tokens),
        wall_clock: s.wall_clock_ms.map(Duration::from_millis).unwrap_or(d.wall_clock),
        fallback: match s.fallback.as_deref() {
            Some("builtin") => Fallback::Builtin,
            _ => Fallback::None,
        },
        ..d
    };
    let registry = match case.registry.as_deref() {
        Some("guardrail") => ToolRegistry::guardrail(),
        _ => ToolRegistry::builtin(),
    };
    let deadline = Duration::from_millis(s.deadline_ms.unwrap_or(5000));
    let ran = run(model(wire, &srv, deadline), settings, registry, &kb, Some(&logs), &incident);

    let summary = match &ran.outcome {
        RunOutcome::Decided { outcome, .. } => format!(
            "rule {} plan {} failure {:?}",
            outcome.gate.rule, outcome.plan.output.proposed_action, outcome.plan.failure
        ),
        other => format!("{other:?}"),
    };
    let fail = |what: String| Err(format!("{what}\n  ({summary})"));
    // Zero executions, zero rule changes.
    if !ran.executed.is_empty() {
        return fail(format!("executed {:?}", ran.executed));
    }
    if ran.rules_after != RemediationRules::default() {
        return fail("the rules changed".into());
    }
    let RunOutcome::Decided { outcome, next, .. } = &ran.outcome else { return fail("not decided".into()) };
    if !matches!(next, Next::Queued { .. }) {
        return fail("not queued for approval".into());
    }
    let body = ran.decision_body();
    if body.decision != "block_and_escalate" {
        return fail(format!("decision {}", body.decision));
    }
    if body.gate_inputs["rules"] != serde_json::to_value(RemediationRules::default()).unwrap() {
        return fail("the recorded rules are not the defaults".into());
    }
    // The transcript, before the decision, named by it.
    let pos = |k: &str| ran.records.iter().position(|r| r.kind == k);
    if !(pos(PLANNER_TRANSCRIPT) < pos(kinds::DECISION) && pos(PLANNER_TRANSCRIPT).is_some()) {
        return fail("the transcript is not before the decision".into());
    }
    let t = ran.transcript().transcript;
    let r = body.planner_transcript.clone().unwrap_or_default();
    if r.outcome != case.expect.outcome || t.outcome.as_str() != case.expect.outcome {
        return fail(format!(
            "outcome {} / {}, expected {}; failure {:?}",
            r.outcome,
            t.outcome.as_str(),
            case.expect.outcome,
            t.failure
        ));
    }
    if let Some(kind) = &case.expect.failure {
        let got = t.failure.as_ref().map(|f| f.kind());
        if got != Some(kind.as_str()) {
            return fail(format!("failure {got:?} ({:?}), expected {kind}", t.failure));
        }
    }
    match case.expect.outcome.as_str() {
        "failed" => {
            if outcome.gate.rule != "planner_failed"
                || outcome.plan.output.proposed_action != "investigate_and_escalate"
            {
                return fail(format!("rule {} for {}", outcome.gate.rule, outcome.plan.output.proposed_action));
            }
        }
        "fallback" => {
            if !outcome.plan.planner.ends_with("+builtin-fallback") || r.reason.is_none() {
                return fail(format!("planner {} reason {:?}", outcome.plan.planner, r.reason));
            }
        }
        _ => {
            if outcome.gate.rule == "planner_failed" {
                return fail("accepted, yet planner_failed".into());
            }
        }
    }
    if let Some(rule) = &case.expect.rule
        && &outcome.gate.rule != rule
    {
        return fail(format!("rule {}, expected {rule}", outcome.gate.rule));
    }
    let refusals: Vec<&str> = t.tool_calls.iter().filter_map(|c| c.refused.as_deref()).collect();
    if refusals != case.expect.tool_refusals.iter().map(String::as_str).collect::<Vec<_>>() {
        return fail(format!("tool refusals {refusals:?}"));
    }
    // Nothing the model reported reaches the gated plan.
    if outcome.plan.output.confidence_initial != 5.0 {
        return fail(format!("gated confidence {}", outcome.plan.output.confidence_initial));
    }
    if let Some(rep) = &t.reported {
        for f in &case.expect.ignored_fields {
            if !rep.ignored_fields.contains_key(f) {
                return fail(format!("{f} not recorded as ignored: {:?}", rep.ignored_fields));
            }
        }
        for claim in &rep.key_claims {
            if outcome.plan.output.key_claims.contains(claim) && !claim.is_empty() {
                return fail(format!("the model's claim {claim:?} was gated"));
            }
        }
    } else if !case.expect.ignored_fields.is_empty() {
        return fail("nothing reported".into());
    }
    for rec in &ran.records {
        if rec.body.to_string().contains(KEY) {
            return fail(format!("the key is in {}", rec.kind));
        }
    }
    // Data never spells a delimiter: each request holds each tag twice, where the system prompt
    // names it and where the user message writes it.
    for (n, req) in srv.requests().iter().enumerate() {
        for tag in ["<incident_data>", "</incident_data>", "<context_data>", "</context_data>"] {
            if req.body.matches(tag).count() != 2 {
                return fail(format!("request {n} holds {tag} {} times", req.body.matches(tag).count()));
            }
        }
    }
    // Replay without the model: the same decision.
    let hits = srv.hits();
    let rep = guardrail_governor::replay::replay_decision(ran.decision(), &RemediationRules::default())
        .map_err(|e| e.to_string())?;
    if !rep.identical {
        return fail(format!("replay differs: {:?}", rep.differing_fields));
    }
    let tr = guardrail_governor::replay::replay_transcript(ran.decision(), &ran.records).map_err(|e| e.to_string())?;
    if tr.as_ref().is_none_or(|t| !t.hash_matches || t.plan_reproduced == Some(false)) {
        return fail(format!("transcript replay {tr:?}"));
    }
    if srv.hits() != hits {
        return fail("replay called the model".into());
    }
    Ok(())
}

/// At least 30 cases, both wire formats, every one blocked or fallback-recorded, none executed.
#[test]
fn the_corpus_never_executes_and_never_changes_a_rule() {
    let cases = corpus();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for w in ["openai", "anthropic"] {
        assert!(cases.iter().filter(|c| c.wire == w).count() >= 10, "{w}");
    }
    // Run in parallel: the slow cases (retries, deadlines) wait on sockets, not on the CPU.
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> =
            cases.iter().map(|c| s.spawn(move || check(c).err().map(|e| format!("{}: {e}", c.name)))).collect();
        handles.into_iter().filter_map(|h| h.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// The positive control: a benign incident and an honest model, and the gate-validated action
/// runs once (so the corpus's zero executions is not a planner that can never execute).
#[test]
fn a_benign_case_executes() {
    let (kb, incidents) = sample_store();
    let incident = incidents.into_iter().find(|i| i.id == "inc-002").unwrap();
    for wire in [Wire::OpenAi, Wire::Anthropic] {
        let plan = plan_text(&incident, "scale_worker_pool", json!({}));
        let srv = serve_with(move |_, _| match wire {
            Wire::OpenAi => openai::text(&plan),
            Wire::Anthropic => anthropic::text(&plan),
        });
        let ran = run(
            model(wire, &srv, Duration::from_secs(5)),
            ModelPlannerSettings::default(),
            ToolRegistry::builtin(),
            &kb,
            None,
            &incident,
        );
        assert_eq!(ran.executed, ["scale_worker_pool"], "{wire:?}: {:?}", ran.outcome);
        assert_eq!(ran.rules_after, RemediationRules::default());
    }
}
