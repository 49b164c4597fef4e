//! The model-backed planner end to end: the real loop (`ModelPlanner`) over the real adapters
//! (`guardrail_model::openai`, `::anthropic`) against loopback servers speaking each API's wire
//! format, through `Pipeline::decide_and_act` onto a real audit store. What the model is sent
//! (the incident as delimited data, read-only tools only), what is recorded (the transcript as a
//! record of its own before the decision, which names it), replay without the model, compress,
//! retries, the built-in fallback, and `accept_plan` on its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardrail_core::approval::GovernorConfig;
use guardrail_core::audit::ChainedRecord;
use guardrail_core::remediation::{Incident, RemediationRules, Severity};
use guardrail_governor::contracts::PLAN_OUTPUT_SCHEMA;
use guardrail_governor::model_planner::{DEFAULT_ALLOWED_TOOLS, Fallback, ModelPlanner, ModelPlannerSettings};
use guardrail_governor::pipeline::{Next, Pipeline, RunOutcome, StoreLog};
use guardrail_governor::queue::{incident_states, kinds};
use guardrail_governor::record::{DecisionBody, RunContext, decode, encode};
use guardrail_governor::transcript::{
    OfferedAction, PLANNER_TRANSCRIPT, PlannerFailure, TranscriptBody, TranscriptOutcome,
};
use guardrail_governor::views::IncidentDetail;
use guardrail_governor::{
    AuthorisedAction, ExecutionError, ExecutionReport, Executor, Governor, LogsSource, ToolRegistry, accept_plan,
};
use guardrail_knowledge::{KnowledgeStore, SqliteKnowledgeStore};
use guardrail_model::{ApiKey, ChatModel, Limits, ModelConfig};
use guardrail_store::SqliteStore;
use guardrail_test_support::http::Request;
use guardrail_test_support::model::{Call, ModelServer, anthropic, openai, serve, serve_with};
use serde_json::{Value, json};

use crate::common::{examples, now, sample_store, schema_errors};

/// A key that must appear in no record.
pub const KEY: &str = "sk-test-AGENT-LOOP-0123456789";

/// Which wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
}

/// Records every action it is asked to run.
#[derive(Default)]
pub struct Recording(pub Mutex<Vec<String>>);

impl Executor for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn execute(&self, a: &AuthorisedAction) -> Result<ExecutionReport, ExecutionError> {
        self.0.lock().unwrap().push(a.action().to_string());
        Ok(ExecutionReport {
            executor: "recording".into(),
            action: a.action().into(),
            binding_hash: a.binding_hash().into(),
            dry_run: true,
            ok: true,
            detail: json!({}),
        })
    }
}

/// Short bounds so failure cases finish quickly.
pub fn limits(deadline: Duration) -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(2),
        deadline,
        max_retries: 1,
        max_retry_wait: Duration::from_millis(100),
    }
}

/// The adapter for `wire` against `srv`.
pub fn model(wire: Wire, srv: &ModelServer, deadline: Duration) -> Arc<dyn ChatModel> {
    let (base, name) = match wire {
        Wire::OpenAi => (format!("{}/v1", srv.url), "gpt-4o"),
        Wire::Anthropic => (srv.url.clone(), "claude-sonnet-4-5"),
    };
    let config = ModelConfig {
        base_url: base,
        api_key: ApiKey::new(KEY).unwrap(),
        model: name.into(),
        limits: limits(deadline),
    };
    match wire {
        Wire::OpenAi => Arc::new(guardrail_model::openai::OpenAi::new(config).unwrap()),
        Wire::Anthropic => Arc::new(guardrail_model::anthropic::Anthropic::new(config).unwrap()),
    }
}

/// What one run through the pipeline left.
pub struct Ran {
    pub outcome: RunOutcome,
    pub records: Vec<ChainedRecord>,
    pub executed: Vec<String>,
    pub rules_after: RemediationRules,
}

impl Ran {
    /// The transcript record's body.
    pub fn transcript(&self) -> TranscriptBody {
        let r = self.records.iter().find(|r| r.kind == PLANNER_TRANSCRIPT).expect("a planner_transcript record");
        decode(&r.body).unwrap()
    }

    /// The decision record.
    pub fn decision(&self) -> &ChainedRecord {
        self.records.iter().find(|r| r.kind == kinds::DECISION).expect("a decision record")
    }

    pub fn decision_body(&self) -> DecisionBody {
        decode(&self.decision().body).unwrap()
    }
}

/// Runs `incident` through decide-and-act with a model planner over `model`.
pub fn run(
    model: Arc<dyn ChatModel>,
    settings: ModelPlannerSettings,
    registry: ToolRegistry,
    kb: &SqliteKnowledgeStore,
    logs: Option<&dyn LogsSource>,
    incident: &Incident,
) -> Ran {
    let governor = Governor { registry, planner: Box::new(ModelPlanner::new(model, settings)), ..Governor::default() };
    let exec = Recording::default();
    let config = GovernorConfig::default();
    let p = Pipeline {
        governor: &governor,
        config: &config,
        run: RunContext { proposer: "dave".into(), knowledge_base: "test".into(), ..Default::default() },
        knowledge: Some(kb),
        logs,
        signals: None,
        executor: Ok(&exec),
        now: now(),
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Box::new(SqliteStore::open(dir.path().join("audit.db")).unwrap());
    let mut log = StoreLog::new(store, None, now());
    let outcome = p.decide_and_act(&mut log, incident, json!({"test": "agent_loop"}));
    let records = log.store().all().unwrap();
    let executed = exec.0.lock().unwrap().clone();
    Ran { outcome, records, executed, rules_after: governor.rules.clone() }
}

/// A plan as JSON text for `incident`, `action`, with `extra` fields merged.
pub fn plan_text(incident: &Incident, action: &str, extra: Value) -> String {
    let mut v = json!({
        "incident_id": incident.id,
        "proposed_action": action,
        "rationale": "The runbook matches the symptoms.",
        "key_claims": ["Scaling the worker pool clears the backlog"],
        "confidence_initial": 7.5,
        "retrieved_context_ids": ["rbk-batch-01"],
    });
    if let (Some(o), Value::Object(more)) = (v.as_object_mut(), extra) {
        o.extend(more);
    }
    v.to_string()
}

fn body(r: &Request) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

fn inc(id: &str) -> Incident {
    let (_, incidents) = sample_store();
    incidents.into_iter().find(|i| i.id == id).unwrap()
}

/// A benign incident planned over OpenAI's wire: one tool round, then a plan for an offered
/// action, which the gate validates and which runs once, after the transcript and the decision.
#[test]
fn openai_plans_with_tools_and_the_gate_validated_action_runs() {
    let (kb, _) = sample_store();
    let incident = inc("inc-002");
    let plan = plan_text(&incident, "scale_worker_pool", json!({}));
    let srv = serve(vec![
        openai::tool_calls(&[Call::new(
            "call_1",
            "search_runbooks",
            r#"{"query":"queue lag","service":"billing-batch","top_k":3}"#,
        )]),
        openai::text(&plan),
    ]);
    let ran = run(
        model(Wire::OpenAi, &srv, Duration::from_secs(5)),
        ModelPlannerSettings::default(),
        ToolRegistry::builtin(),
        &kb,
        None,
        &incident,
    );
    let RunOutcome::Decided { outcome, next: Next::Executed(e), decision } = &ran.outcome else {
        panic!("executes: {:?}", ran.outcome);
    };
    assert!(e.succeeded());
    let view = guardrail_governor::views::RunView::decided(outcome, decision, "dave");
    assert_eq!(view.planner_transcript.as_ref().map(|r| r.outcome.as_str()), Some("accepted"));
    assert_eq!(ran.executed, ["scale_worker_pool"]);
    assert_eq!(outcome.plan.planner, "openai");
    // Order: the transcript, then the decision that names it, then the claim and the execution.
    let kinds_written: Vec<&str> = ran.records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds_written, [PLANNER_TRANSCRIPT, kinds::DECISION, kinds::EXECUTION_CLAIM, kinds::EXECUTION]);
    let d = ran.decision_body();
    let r = d.planner_transcript.as_ref().expect("the decision names its transcript");
    assert_eq!((r.record.as_str(), r.hash.as_str()), (ran.records[0].id().as_str(), ran.records[0].hash.as_str()));
    assert_eq!((r.planner.as_str(), r.model.as_str(), r.outcome.as_str()), ("openai", openai::MODEL, "accepted"));

    let t = ran.transcript().transcript;
    assert_eq!(t.outcome, TranscriptOutcome::Accepted);
    assert_eq!(t.exchanges.len(), 2);
    assert_eq!((t.usage.calls, t.usage.tool_rounds, t.usage.tool_calls), (2, 1, 1));
    assert_eq!((t.usage.input_tokens, t.usage.output_tokens), (350 + 420, 40 + 80));
    assert!(t.tool_calls[0].ok && t.tool_calls[0].trace_seq.is_some(), "{:?}", t.tool_calls);
    assert!(t.exchanges.iter().all(|x| x.latency_ms >= 0.0 && x.response.is_some()));
    assert_eq!(t.tools_offered, ["search_runbooks", "search_evidence", "check_policy_conflicts", "query_live_logs"]);
    let offered: Vec<&str> = t.offered_actions.iter().map(|o| o.action.as_str()).collect();
    assert_eq!(offered, ["scale_worker_pool", "investigate_and_escalate"]);
    // The model's call went through the registry: it is in the pipeline's trace, phase plan.
    let trace_tools: Vec<&str> = outcome.trace.iter().map(|t| t.tool.as_str()).collect();
    assert_eq!(&trace_tools[..4], ["search_runbooks", "search_evidence", "query_live_logs", "search_runbooks"]);

    // What the model was sent: the incident as data between delimiters, the tools by the wire's
    // names, the tool result back as a `tool` message.
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    let first = body(&reqs[0]);
    let user = first["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("<incident_data>\n{\"id\":\"inc-002\""), "{user}");
    let tools: Vec<&str> =
        first["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(tools, t.tools_offered);
    let second = body(&reqs[1]);
    let msgs = second["messages"].as_array().unwrap();
    assert_eq!(msgs.last().unwrap()["role"], "tool");
    assert_eq!(msgs.last().unwrap()["tool_call_id"], "call_1");
    // No secret in any record.
    for rec in &ran.records {
        assert!(!rec.body.to_string().contains(KEY));
    }
    // The gated plan satisfies the contract.
    let errors = schema_errors(PLAN_OUTPUT_SCHEMA, &serde_json::to_value(&outcome.plan.output).unwrap());
    assert!(errors.is_empty(), "{errors:?}");
}

/// The same over Anthropic's wire (tool_use / tool_result blocks); replay re-runs the gate and
/// re-checks the recorded answer without a model; `incident show`'s detail carries the transcript.
#[test]
fn anthropic_plans_and_replay_needs_no_model() {
    let (kb, _) = sample_store();
    let incident = inc("inc-002");
    let plan = plan_text(&incident, "Scale the worker pool", json!({}));
    let srv = serve(vec![
        anthropic::tool_use(&[Call::new(
            "toolu_01",
            "search_evidence",
            r#"{"query":"worker pool","service":"billing-batch"}"#,
        )]),
        anthropic::text(&plan),
    ]);
    let ran = run(
        model(Wire::Anthropic, &srv, Duration::from_secs(5)),
        ModelPlannerSettings::default(),
        ToolRegistry::builtin(),
        &kb,
        None,
        &incident,
    );
    assert_eq!(ran.executed, ["scale_worker_pool"], "{:?}", ran.outcome);
    let second = body(&srv.requests()[1]);
    let last = second["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["tool_use_id"], "toolu_01");
    let hits = srv.hits();

    let rep = guardrail_governor::replay::replay_decision(ran.decision(), &RemediationRules::default()).unwrap();
    assert!(rep.identical, "{:?}", rep.differing_fields);
    let tr = guardrail_governor::replay::replay_transcript(ran.decision(), &ran.records).unwrap().unwrap();
    assert!(tr.hash_matches && tr.plan_reproduced == Some(true), "{tr:?}");
    // The typed bodies are the canonical JSON: decoding and re-encoding gives the same bytes.
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
    let t = &ran.records[0];
    assert_eq!(bytes(&encode(&decode::<TranscriptBody>(&t.body).unwrap())), bytes(&t.body));
    let d = ran.decision();
    assert_eq!(bytes(&encode(&decode::<DecisionBody>(&d.body).unwrap())), bytes(&d.body));
    assert_eq!(srv.hits(), hits, "replay called the model");

    let states = incident_states(&ran.records);
    let detail = IncidentDetail::new(&states["inc-002"]).with_transcript(&ran.records);
    assert_eq!(detail.planner_transcript.as_ref().unwrap().outcome, "accepted");
    assert_eq!(detail.transcript.as_ref().unwrap().exchanges.len(), 2);
    let v = serde_json::to_value(&detail).unwrap();
    assert_eq!(v["transcript"]["planner"], "anthropic");
}

/// A 429 with `Retry-After` is retried by the adapter; the attempts are recorded.
#[test]
fn a_rate_limited_call_is_retried_and_the_attempts_recorded() {
    let (kb, _) = sample_store();
    let incident = inc("inc-002");
    let srv = serve(vec![openai::rate_limited(0), openai::text(&plan_text(&incident, "scale_worker_pool", json!({})))]);
    let ran = run(
        model(Wire::OpenAi, &srv, Duration::from_secs(5)),
        ModelPlannerSettings::default(),
        ToolRegistry::builtin(),
        &kb,
        None,
        &incident,
    );
    assert_eq!(ran.executed, ["scale_worker_pool"]);
    let t = ran.transcript().transcript;
    assert_eq!(t.exchanges[0].response.as_ref().unwrap().attempts, 2);
}

/// A failed model with `fallback: builtin`: the built-in planner plans, and the fallback and its
/// reason are recorded (transcript, decision reference, plan's planner name).
#[test]
fn the_builtin_fallback_is_recorded_with_its_reason() {
    let (kb, _) = sample_store();
    let incident = inc("inc-002");
    let srv = serve(vec![openai::text("{\"incident_id\": \"inc-002\", ")]);
    let settings = ModelPlannerSettings { fallback: Fallback::Builtin, ..ModelPlannerSettings::default() };
    let ran =
        run(model(Wire::OpenAi, &srv, Duration::from_secs(5)), settings, ToolRegistry::builtin(), &kb, None, &incident);
    let RunOutcome::Decided { outcome, .. } = &ran.outcome else { panic!("{:?}", ran.outcome) };
    assert_eq!(outcome.plan.planner, "openai+builtin-fallback");
    assert!(outcome.plan.failure.is_none(), "the built-in plan is gated as usual");
    let t = ran.transcript().transcript;
    assert_eq!(t.outcome, TranscriptOutcome::Fallback);
    assert!(matches!(t.failure, Some(PlannerFailure::InvalidJson { .. })), "{:?}", t.failure);
    let r = ran.decision_body().planner_transcript.unwrap();
    assert_eq!(r.outcome, "fallback");
    assert!(r.reason.unwrap().contains("not a JSON object"));
}

/// Without a fallback a failed model blocks: the plan escalates, the gate names `planner_failed`,
/// the action waits for approval (the CLI's exit 10), and replay reproduces it.
#[test]
fn a_failed_model_blocks_and_names_the_failure() {
    let (kb, _) = sample_store();
    let incident = inc("inc-002");
    let srv = serve(vec![openai::error(500, "server_error", "internal", "The server had an error")]);
    let ran = run(
        model(Wire::OpenAi, &srv, Duration::from_secs(5)),
        ModelPlannerSettings::default(),
        ToolRegistry::builtin(),
        &kb,
        None,
        &incident,
    );
    let RunOutcome::Decided { outcome, next: Next::Queued { .. }, .. } = &ran.outcome else {
        panic!("queued for approval: {:?}", ran.outcome)
    };
    assert!(ran.executed.is_empty());
    assert_eq!(outcome.gate.rule, "planner_failed");
    assert_eq!(outcome.plan.output.proposed_action, "investigate_and_escalate");
    assert!(outcome.gate.output.reasons[0].contains("HTTP 500"), "{:?}", outcome.gate.output.reasons);
    assert_eq!(srv.hits(), 2, "one retry");
    let rep = guardrail_governor::replay::replay_decision(ran.decision(), &RemediationRules::default()).unwrap();
    assert!(rep.identical, "{:?}", rep.differing_fields);
    assert_eq!(rep.replayed_rule, "planner_failed");
    let tr = guardrail_governor::replay::replay_transcript(ran.decision(), &ran.records).unwrap().unwrap();
    assert_eq!((tr.outcome.as_str(), tr.plan_reproduced), ("failed", Some(true)));
}

/// Compress: a knowledge base with long documents is cut to the context budget; the cuts and
/// the estimated tokens before and after are recorded, and the model is sent the cut context.
#[test]
fn compress_cuts_long_context_and_records_every_cut() {
    let mut data: Value =
        serde_json::from_str(&std::fs::read_to_string(examples().join("sample_data.json")).unwrap()).unwrap();
    let long = "Queue lag on billing batch workers. ".repeat(400);
    for i in 0..12 {
        data["evidence"].as_array_mut().unwrap().push(json!({
            "id": format!("ev-long-{i}"), "service": "billing-batch", "stance": "support",
            "text": format!("worker pool queue lag {i} {long}"),
        }));
    }
    let kb = kb_from(&data);
    let incident = inc("inc-002");
    let srv = serve(vec![openai::text(&plan_text(&incident, "scale_worker_pool", json!({})))]);
    let settings = ModelPlannerSettings { evidence_k: 10, ..ModelPlannerSettings::default() };
    let ran =
        run(model(Wire::OpenAi, &srv, Duration::from_secs(5)), settings, ToolRegistry::builtin(), &kb, None, &incident);
    let t = ran.transcript().transcript;
    let c = &t.compress;
    assert_eq!((t.settings.context_mode.as_str(), c.budget_tokens), ("compressed_context", 2000));
    assert!(c.tokens_before > 10_000 && c.tokens_after <= 2000, "{} → {}", c.tokens_before, c.tokens_after);
    assert!(c.cuts.iter().any(|x| x.how == "truncated") && c.cuts.iter().any(|x| x.how == "dropped"), "{:?}", c.cuts);
    let sent = srv.requests()[0].body.len() as u64 / 4;
    assert!(sent < c.tokens_before, "sent ~{sent} tokens");
}

/// Builds a knowledge base from sample-data JSON.
pub fn kb_from(data: &Value) -> SqliteKnowledgeStore {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample_data.json");
    std::fs::write(&path, data.to_string()).unwrap();
    let mut s = SqliteKnowledgeStore::open_in_memory().unwrap();
    s.load_sample_data(&path).unwrap();
    s
}

/// Decision bodies of the built-in planner hold no transcript reference (their bytes are those
/// of earlier releases), and nothing is appended before them.
#[test]
fn builtin_decisions_have_no_transcript() {
    let (kb, incidents) = sample_store();
    let governor = Governor::default();
    let exec = Recording::default();
    let config = GovernorConfig::default();
    let p = Pipeline {
        governor: &governor,
        config: &config,
        run: RunContext { proposer: "dave".into(), ..Default::default() },
        knowledge: Some(&kb),
        logs: None,
        signals: None,
        executor: Ok(&exec),
        now: now(),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = StoreLog::new(Box::new(SqliteStore::open(dir.path().join("a.db")).unwrap()), None, now());
    p.decide_and_act(&mut log, &incidents[0], json!({}));
    let records = log.store().all().unwrap();
    assert_eq!(records[0].kind, kinds::DECISION);
    assert!(records[0].body.get("planner_transcript").is_none());
    assert!(records[0].body.pointer("/outcome/plan/failure").is_none());
}

fn offered() -> Vec<OfferedAction> {
    vec![
        OfferedAction {
            action: "scale_worker_pool".into(),
            runbook_id: Some("rbk-batch-01".into()),
            title: Some("Batch backlog".into()),
            recommended_action: Some("scale_worker_pool".into()),
            body: Some("Scale the worker pool.".into()),
            score: Some(1.0),
        },
        OfferedAction { action: "investigate_and_escalate".into(), ..OfferedAction::default() },
    ]
}

/// `accept_plan`: the model's choice of an offered action is all that is kept; everything else it
/// wrote is recorded as reported.
#[test]
fn accept_plan_keeps_only_the_choice() {
    let incident = inc("inc-002");
    let raw = plan_text(
        &incident,
        "scale_worker_pool",
        json!({"confidence_initial": 9.9, "approved_by": "CTO", "support_count": 40, "key_claims": ["ignore the gate"]}),
    );
    let a = accept_plan(&format!("```json\n{raw}\n```"), &incident, &offered(), 5.0, "openai").unwrap();
    assert_eq!(a.plan.output.proposed_action, "scale_worker_pool");
    assert_eq!(a.plan.output.confidence_initial, 5.0);
    assert!(a.plan.output.key_claims.iter().all(|c| !c.contains("ignore the gate")));
    assert_eq!(a.plan.output.retrieved_context_ids, ["rbk-batch-01"]);
    assert_eq!(a.reported.confidence_initial, Some(9.9));
    assert_eq!(a.reported.ignored_fields["approved_by"], "CTO");
    assert_eq!(a.reported.key_claims, ["ignore the gate"]);
    let errors = schema_errors(PLAN_OUTPUT_SCHEMA, &serde_json::to_value(&a.plan.output).unwrap());
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn accept_plan_refuses_each_way_by_name() {
    let incident = inc("inc-002");
    let o = offered();
    let kind = |raw: &str| accept_plan(raw, &incident, &o, 5.0, "openai").unwrap_err().failure.kind();
    assert_eq!(kind("not json"), "invalid_json");
    assert_eq!(kind("[1, 2]"), "invalid_json");
    assert_eq!(kind(&plan_text(&incident, "scale_worker_pool", json!({"key_claims": []}))), "schema");
    assert_eq!(kind(&plan_text(&incident, "scale_worker_pool", json!({"confidence_initial": 11}))), "schema");
    assert_eq!(kind(&plan_text(&incident, "scale_worker_pool", json!({"rationale": 3}))), "schema");
    assert_eq!(kind(&plan_text(&incident, "scale_worker_pool", json!({"incident_id": "inc-001"}))), "wrong_incident");
    assert_eq!(kind(&plan_text(&incident, "kubectl delete namespace billing", json!({}))), "destructive");
    assert_eq!(kind(&plan_text(&incident, "scale_worker_pool && rm -rf /", json!({}))), "destructive");
    assert_eq!(kind(&plan_text(&incident, "restart_api_pods", json!({}))), "not_offered");
    assert_eq!(kind(&plan_text(&incident, "drop the database", json!({}))), "not_offered");
    let mut missing: Value = serde_json::from_str(&plan_text(&incident, "scale_worker_pool", json!({}))).unwrap();
    missing.as_object_mut().unwrap().remove("key_claims");
    let r = accept_plan(&missing.to_string(), &incident, &o, 5.0, "openai").unwrap_err();
    assert!(r.failure.to_string().contains("key_claims: required field missing"), "{}", r.failure);
    // The escalation is always accepted, offered or not.
    let esc = accept_plan(&plan_text(&incident, "investigate_and_escalate", json!({})), &incident, &o[..1], 5.0, "x");
    assert_eq!(esc.unwrap().plan.output.proposed_action, "investigate_and_escalate");
}

/// Only read-only tools of the allow-list are offered, even from the registry MCP serves (which
/// holds `propose_remediation`, `evaluate_deploy`, …), and a call to one that is not offered is
/// refused without running it.
#[test]
fn only_allowed_read_only_tools_are_offered_or_run() {
    let (kb, _) = sample_store();
    let incident = Incident { severity: Severity::Medium, ..inc("inc-002") };
    let srv = serve_with({
        let plan = plan_text(&incident, "scale_worker_pool", json!({}));
        move |n, _| match n {
            0 => openai::tool_calls(&[Call::new("c1", "propose_remediation", "{}")]),
            _ => openai::text(&plan),
        }
    });
    let ran = run(
        model(Wire::OpenAi, &srv, Duration::from_secs(5)),
        ModelPlannerSettings::default(),
        ToolRegistry::guardrail(),
        &kb,
        None,
        &incident,
    );
    let t = ran.transcript().transcript;
    for name in &t.tools_offered {
        assert!(DEFAULT_ALLOWED_TOOLS.contains(&name.as_str()), "{name}");
    }
    assert!(!t.tools_offered.iter().any(|n| n == "propose_remediation" || n == "evaluate_deploy"));
    assert_eq!(t.tool_calls[0].refused.as_deref(), Some("not_allowed"));
    assert_eq!(t.tool_calls[0].trace_seq, None, "never ran");
}

/// A server that reports no usage (some OpenAI-compatible servers do not): the loop counts the
/// request's estimate (bytes / 4) against the token budget and says the count is an estimate.
#[test]
fn without_reported_usage_tokens_are_estimated_and_budgeted() {
    let (kb, _) = sample_store();
    let incident = inc("inc-002");
    let plan = plan_text(&incident, "scale_worker_pool", json!({}));
    let body = json!({
        "id": "chatcmpl-local", "object": "chat.completion", "created": 1741569952, "model": "local-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": plan}, "finish_reason": "stop"}],
    });
    let srv = serve(vec![guardrail_test_support::model::Reply::json(200, body.to_string())]);
    let ran = run(
        model(Wire::OpenAi, &srv, Duration::from_secs(5)),
        ModelPlannerSettings::default(),
        ToolRegistry::builtin(),
        &kb,
        None,
        &incident,
    );
    assert_eq!(ran.executed, ["scale_worker_pool"], "{:?}", ran.outcome);
    let t = ran.transcript().transcript;
    assert!(t.usage.estimated);
    assert_eq!(t.usage.input_tokens, t.exchanges[0].estimated_input_tokens);
    assert!(t.usage.input_tokens > 500, "{}", t.usage.input_tokens);
    // The same with a budget below the estimate: refused before the call, fail closed.
    let srv2 = serve(vec![guardrail_test_support::model::Reply::json(200, body.to_string())]);
    let tight = ModelPlannerSettings { max_total_tokens: 100, ..ModelPlannerSettings::default() };
    let ran =
        run(model(Wire::OpenAi, &srv2, Duration::from_secs(5)), tight, ToolRegistry::builtin(), &kb, None, &incident);
    assert!(ran.executed.is_empty());
    assert_eq!(srv2.hits(), 0, "no call past the budget");
    assert!(
        matches!(ran.transcript().transcript.failure, Some(PlannerFailure::Budget { ref budget, .. }) if budget == "tokens")
    );
}
