//! `POST /api/incidents` planned by the planner `guardrail serve` chose (the same selection as
//! `guardrail incident run`): a model over a loopback OpenAI server and a Kibana Agent Builder
//! agent over a loopback converse endpoint, the transcript in `GET /api/incidents/{id}`, a
//! failing model blocked and escalated, and a `planner:` block that cannot be set up answered 503.

use std::sync::Arc;

use crate::common;

use common::{DEPLOYER, Scratch, Server};
use guardrail_governor::ModelPlannerSettings;
use guardrail_governor::planner_select::{ChoiceOrigin, PlannerChoice};
use guardrail_knowledge::KnowledgeStore as _;
use guardrail_model::agent_builder::{AgentBuilder, AgentBuilderConfig};
use guardrail_model::{ApiKey, Limits, ModelConfig};
use guardrail_server::{GovernorBlocks, GovernorSettings, Role, ServerConfig, Tokens, hash_token};
use guardrail_test_support::model::{Call, Reply, openai, serve};
use serde_json::{Value, json};

const KEY: &str = "sk-server-SECRET-0123456789";

fn governor_dir() -> std::path::PathBuf {
    common::examples().join("../governor")
}

fn medium() -> String {
    std::fs::read_to_string(governor_dir().join("scenarios").join("incident_medium.json")).unwrap()
}

fn plan(action: &str) -> String {
    json!({
        "incident_id": "inc-live-002",
        "proposed_action": action,
        "rationale": "rbk-batch-01",
        "key_claims": ["slow workers"],
        "confidence_initial": 7,
        "retrieved_context_ids": ["rbk-batch-01"]
    })
    .to_string()
}

fn config(s: &Scratch, planner: Option<PlannerChoice>, blocks: GovernorBlocks) -> ServerConfig {
    let mut cfg = s.config();
    cfg.tokens = Some(Tokens::from_hashes(&[(&hash_token(DEPLOYER), "ci-pipeline", Role::Deployer)]));
    let src = guardrail_config::read_source(&governor_dir().join("governor.yaml")).unwrap();
    let loaded = guardrail_config::load_governor_config(&src).unwrap();
    let kb = s.path("knowledge.db");
    let mut store = guardrail_knowledge::SqliteKnowledgeStore::create(&kb).unwrap();
    store.load_sample_data(&governor_dir().join("sample_data.json")).unwrap();
    cfg.governor = GovernorSettings {
        config: loaded.value,
        description: json!({"path": "governor.yaml", "sha256": src.sha256}),
        kb: Some(kb),
        planner,
        blocks,
        ..Default::default()
    };
    cfg
}

fn limits() -> Limits {
    Limits {
        connect_timeout: std::time::Duration::from_secs(2),
        deadline: std::time::Duration::from_secs(10),
        max_retries: 0,
        max_retry_wait: std::time::Duration::from_millis(10),
    }
}

/// Builds off the runtime: reqwest's blocking client refuses to start inside an async context
/// (the CLI builds the choice before `serve` starts its runtime).
fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

fn openai_choice(base: String) -> PlannerChoice {
    let cfg = ModelConfig {
        base_url: base,
        api_key: ApiKey::new(KEY).unwrap(),
        model: "gpt-4o-mini".into(),
        limits: limits(),
    };
    let model = guardrail_model::openai::OpenAi::new(cfg).unwrap();
    PlannerChoice::with_model(Arc::new(model), ModelPlannerSettings::default(), ChoiceOrigin::Flag)
}

#[tokio::test]
async fn a_model_planner_chosen_at_start_plans_proposals_and_the_transcript_is_shown() {
    let model = serve(vec![
        openai::tool_calls(&[Call::new("c1", "search_runbooks", r#"{"query":"queue lag","service":"billing-batch"}"#)]),
        openai::text(&plan("scale_worker_pool")),
    ]);
    let s = Scratch::new();
    let srv = Server::start(config(
        &s,
        Some(off_runtime({
            let base = format!("{}/v1", model.url);
            move || openai_choice(base)
        })),
        GovernorBlocks::default(),
    ))
    .await;
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &medium()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["decision"], "execute", "{v}");
    assert_eq!(v["data"]["plan"]["planner"], "openai", "{v}");
    assert_eq!(model.hits(), 2);
    let (st, inc) = srv.get("/api/incidents/inc-live-002").await;
    assert_eq!(st, 200, "{inc}");
    assert_eq!(inc["data"]["planner_transcript"]["planner"], "openai", "{inc}");
    assert_eq!(inc["data"]["transcript"]["outcome"], "accepted", "{inc}");
    assert!(!inc.to_string().contains(KEY));
}

#[tokio::test]
async fn an_agent_builder_planner_plans_through_kibana_converse() {
    let round = json!({
        "conversation_id": "c-1",
        "steps": [{"type": "tool_call", "tool_call_id": "t1", "tool_id": "guardrail.search_runbooks",
                   "params": {"service": "billing-batch"}, "results": []}],
        "response": {"message": plan("scale_worker_pool")},
        "model_usage": {"connector_id": "c", "llm_calls": 2, "input_tokens": 900, "output_tokens": 60, "model": "gpt-4.1"}
    });
    let kibana = serve(vec![Reply::json(200, round.to_string())]);
    let url = kibana.url.clone();
    let choice = off_runtime(move || {
        let agent = AgentBuilder::new(AgentBuilderConfig {
            kibana_url: url,
            api_key: ApiKey::new(KEY).unwrap(),
            agent_id: "guardrail-sre".into(),
            connector_id: None,
            limits: limits(),
        })
        .unwrap();
        PlannerChoice::with_agent(Arc::new(agent), ModelPlannerSettings::default(), ChoiceOrigin::Environment)
    });
    let s = Scratch::new();
    let srv = Server::start(config(&s, Some(choice), GovernorBlocks::default())).await;
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &medium()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["decision"], "execute", "{v}");
    assert_eq!(v["data"]["plan"]["planner"], "agent-builder", "{v}");
    let req = &kibana.requests()[0];
    assert!(req.head.starts_with("POST /api/agent_builder/converse "), "{}", req.head);
    let (_, inc) = srv.get("/api/incidents/inc-live-002").await;
    let t = &inc["data"]["transcript"];
    assert_eq!(t["provider"], "kibana", "{inc}");
    assert_eq!(t["tool_calls"][0]["name"], "guardrail.search_runbooks", "{inc}");
}

#[tokio::test]
async fn a_failing_model_blocks_and_escalates_the_proposal() {
    let model =
        serve(vec![openai::error(401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided")]);
    let s = Scratch::new();
    let srv = Server::start(config(
        &s,
        Some(off_runtime({
            let base = format!("{}/v1", model.url);
            move || openai_choice(base)
        })),
        GovernorBlocks::default(),
    ))
    .await;
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &medium()).await;
    assert_eq!(st, 200, "{v}");
    let d: &Value = &v["data"];
    assert_eq!(
        (d["decision"].as_str(), d["rule"].as_str()),
        (Some("block_and_escalate"), Some("planner_failed")),
        "{v}"
    );
    assert_eq!(d["status"], "awaiting_approval", "{v}");
    assert!(d["reasons"].to_string().contains("invalid_api_key"), "{v}");
    assert!(d["execution"].is_null(), "{v}");
}

#[tokio::test]
async fn the_planner_block_in_force_chooses_when_nothing_was_chosen_at_start() {
    let model = serve(vec![openai::text(&plan("scale_worker_pool"))]);
    let blocks = GovernorBlocks {
        planner: Some(guardrail_config::PlannerConfig {
            backend: guardrail_config::PlannerBackend::OpenAi,
            base_url: Some(format!("{}/v1", model.url)),
            model: Some("from-the-block".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let s = Scratch::new();
    let mut cfg = config(&s, None, blocks);
    cfg.env.insert("OPENAI_API_KEY".into(), KEY.into());
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &medium()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["plan"]["planner"], "openai", "{v}");
    let sent: Value = serde_json::from_str(&model.requests()[0].body).unwrap();
    assert_eq!(sent["model"], "from-the-block");
}

#[tokio::test]
async fn a_planner_block_without_its_key_answers_503_and_decides_nothing() {
    // The block chooses agent-builder; the key is never in the file, and not in the server's
    // environment either.
    let blocks = GovernorBlocks {
        planner: Some(guardrail_config::PlannerConfig {
            backend: guardrail_config::PlannerBackend::AgentBuilder,
            base_url: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let s = Scratch::new();
    let mut cfg = config(&s, None, blocks);
    cfg.env.remove("ELASTIC_API_KEY");
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &medium()).await;
    assert_eq!(st, 503, "{v}");
    assert!(v["error"].to_string().contains("ELASTIC_API_KEY is not set"), "{v}");
    let (_, list) = srv.get("/api/incidents").await;
    assert_eq!(list["data"], json!([]), "{list}");
}
