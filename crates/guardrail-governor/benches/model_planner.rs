//! What the model planner adds per incident over the built-in planner, with a loopback model
//! that answers instantly (issue 12's target: at most 5 ms): plan → stress → gate in process on
//! the sample data, the built-in planner against the model planner over the OpenAI and Anthropic
//! adapters (a final answer at once, and one tool round first). Before timing, it prints the
//! tokens each sample incident sends before and after compress (estimated, bytes / 4), for the
//! sample knowledge base and for one with long documents.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use guardrail_core::remediation::Incident;
use guardrail_governor::model_planner::{ModelPlanner, ModelPlannerSettings};
use guardrail_governor::{Governor, ToolContext, load_incidents};
use guardrail_knowledge::{KnowledgeStore, SqliteKnowledgeStore};
use guardrail_model::{ApiKey, ChatModel, Limits, ModelConfig};
use guardrail_test_support::model::{Call, ModelServer, anthropic, openai, serve_with};

fn plan(i: &Incident, action: &str) -> String {
    format!(
        r#"{{"incident_id":"{}","proposed_action":"{action}","rationale":"r","key_claims":["c"],"confidence_initial":7,"retrieved_context_ids":[]}}"#,
        i.id
    )
}

fn config(base_url: String, model: &str) -> ModelConfig {
    let limits = Limits {
        connect_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(10),
        max_retries: 0,
        max_retry_wait: Duration::ZERO,
    };
    ModelConfig { base_url, api_key: ApiKey::new("sk-bench").expect("key"), model: model.into(), limits }
}

fn openai_model(srv: &ModelServer) -> Arc<dyn ChatModel> {
    Arc::new(guardrail_model::openai::OpenAi::new(config(format!("{}/v1", srv.url), "gpt-4o")).expect("adapter"))
}

fn anthropic_model(srv: &ModelServer) -> Arc<dyn ChatModel> {
    Arc::new(guardrail_model::anthropic::Anthropic::new(config(srv.url.clone(), "claude")).expect("adapter"))
}

fn model_governor(model: Arc<dyn ChatModel>) -> Governor {
    Governor { planner: Box::new(ModelPlanner::new(model, ModelPlannerSettings::default())), ..Governor::default() }
}

/// Prints the compress report of one run per incident.
fn report_tokens(label: &str, store: &SqliteKnowledgeStore, incidents: &[Incident], now: jiff::Timestamp) {
    for i in incidents {
        let p = plan(i, "investigate_and_escalate");
        let srv = serve_with(move |_, _| openai::text(&p));
        let g = model_governor(openai_model(&srv));
        let ctx = ToolContext::new(store, now);
        let o = g.run(i, &ctx, None).expect("pipeline");
        let t = o.plan.transcript.expect("a transcript");
        let sent = srv.requests().first().map(|r| r.body.len() as u64 / 4).unwrap_or_default();
        eprintln!(
            "tokens {label} {} ({}): context {} → {} (budget {}, {} cuts); first request ≈ {sent} tokens",
            i.id,
            t.settings.context_mode,
            t.compress.tokens_before,
            t.compress.tokens_after,
            t.compress.budget_tokens,
            t.compress.cuts.len(),
        );
    }
}

fn bench(c: &mut Criterion) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/governor");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = SqliteKnowledgeStore::create(&dir.path().join("knowledge.db")).expect("knowledge base");
    let (_, mut incidents) = store.load_sample_data(&examples.join("sample_data.json")).expect("sample data");
    incidents.extend(load_incidents(&examples.join("scenarios/incident_high.json")).expect("scenario"));
    let now: jiff::Timestamp = "2026-11-24T10:00:00Z".parse().expect("time");

    report_tokens("sample-kb", &store, &incidents, now);
    // A knowledge base with long documents: 20 evidence documents of ~12 kB per service.
    let mut data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(examples.join("sample_data.json")).expect("read")).expect("json");
    let long = "latency queue lag workers database saturation pool timeouts ".repeat(200);
    for (n, service) in ["payments-api", "billing-batch"].iter().enumerate() {
        for k in 0..20 {
            data["evidence"].as_array_mut().expect("evidence").push(serde_json::json!({
                "id": format!("ev-long-{n}-{k}"), "service": service, "stance": "support", "text": long.clone(),
            }));
        }
    }
    let big_path = dir.path().join("big.json");
    std::fs::write(&big_path, data.to_string()).expect("write");
    let mut big = SqliteKnowledgeStore::create(&dir.path().join("big.db")).expect("knowledge base");
    big.load_sample_data(&big_path).expect("big data");
    report_tokens("long-docs-kb", &big, &incidents, now);

    let inc = incidents.iter().find(|i| i.id == "inc-002").expect("inc-002").clone();
    let ctx = ToolContext::new(&store, now);
    let mut group = c.benchmark_group("planner per incident (inc-002, plan+stress+gate)");
    let builtin = Governor::default();
    group.bench_function("builtin", |b| b.iter(|| black_box(builtin.run(black_box(&inc), &ctx, None).expect("run"))));

    let answer = plan(&inc, "scale_worker_pool");
    let a = answer.clone();
    let srv = serve_with(move |_, _| openai::text(&a));
    let g = model_governor(openai_model(&srv));
    group.bench_function("openai loopback, final answer", |b| {
        b.iter(|| black_box(g.run(black_box(&inc), &ctx, None).expect("run")))
    });
    let a = answer.clone();
    let srv_a = serve_with(move |_, _| anthropic::text(&a));
    let ga = model_governor(anthropic_model(&srv_a));
    group.bench_function("anthropic loopback, final answer", |b| {
        b.iter(|| black_box(ga.run(black_box(&inc), &ctx, None).expect("run")))
    });
    // One tool round first: odd requests ask for search_runbooks, even ones answer.
    let a = answer.clone();
    let srv_t = serve_with(move |n, _| {
        if n % 2 == 0 {
            openai::tool_calls(&[Call::new(
                "c1",
                "search_runbooks",
                r#"{"query":"queue lag","service":"billing-batch"}"#,
            )])
        } else {
            openai::text(&a)
        }
    });
    let gt = model_governor(openai_model(&srv_t));
    group.bench_function("openai loopback, one tool round", |b| {
        b.iter(|| black_box(gt.run(black_box(&inc), &ctx, None).expect("run")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
