//! `POST /api/incidents` over an Elasticsearch knowledge base that the watched governor config's
//! `knowledge:` block names (the loopback cluster of guardrail-knowledge's conformance tests):
//! the plan is made from the cluster's runbooks, `query_live_logs` reads its logs index, and a
//! cluster that is not there is a 503 naming why, with nothing planned or recorded.

use crate::common;

use common::{DEPLOYER, Scratch, Server};
use guardrail_governor::record::{DecisionBody, decode};
use guardrail_knowledge::{ElasticAuth, ElasticConfig, ElasticKnowledgeStore, KnowledgeStore as _};
use guardrail_server::state::GovernorSource;
use guardrail_server::{GovernorSettings, ServerConfig};
use guardrail_test_support::elastic::FakeEs;
use serde_json::{Value, json};

const KEY: &str = "c2VydmVyOmtleQ==";

fn governor_dir() -> std::path::PathBuf {
    common::examples().join("../governor")
}

/// The bundled governor config plus a `knowledge:` block for `url`, written to the scratch
/// directory and watched (as `guardrail serve` watches it); the key in the server's environment.
fn config(s: &Scratch, url: &str) -> ServerConfig {
    let mut text = std::fs::read_to_string(governor_dir().join("governor.yaml")).unwrap();
    text.push_str(&format!(
        "knowledge:\n  backend: elasticsearch\n  url: {url}\n  indices: {{runbooks: srv-runbooks, evidence: srv-evidence, policies: srv-policies, logs: srv-logs}}\n  api_key_env: ES_SERVER_KEY\n  timeout_ms: 2000\n  retries: 0\n"
    ));
    s.write("governor.yaml", &text);
    let mut cfg = s.config();
    cfg.env.insert("ES_SERVER_KEY".into(), KEY.into());
    cfg.env.remove("GUARDRAIL_KB");
    cfg.governor = GovernorSettings {
        source: Some(GovernorSource { path: s.path("governor.yaml"), required: true }),
        ..Default::default()
    };
    cfg
}

fn decisions(s: &Scratch) -> Vec<DecisionBody> {
    let mut store = guardrail_store::open_store(&s.store()).unwrap();
    let records = store.all().unwrap();
    records.iter().filter(|r| r.kind == "remediation_decision").map(|r| decode(&r.body).unwrap()).collect()
}

#[tokio::test]
async fn an_incident_is_planned_from_the_configured_cluster_and_its_logs() {
    let es = FakeEs::start();
    es.require_auth(&format!("ApiKey {KEY}"));
    let mut cfg = ElasticConfig::new(&es.url);
    cfg.auth = Some(ElasticAuth::ApiKey(KEY.into()));
    cfg.indices = guardrail_knowledge::elastic::Indices {
        runbooks: "srv-runbooks".into(),
        evidence: "srv-evidence".into(),
        policies: "srv-policies".into(),
    };
    let url = es.url.clone();
    let logs_at = |minutes: i64| (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(minutes)).to_string();
    let docs = [
        ("a", json!({"timestamp": logs_at(2), "host": "payments-api", "response": "503", "bytes": 300})),
        ("b", json!({"timestamp": logs_at(3), "host": "payments-api", "response": "200", "bytes": 5000})),
        ("c", json!({"timestamp": logs_at(120), "host": "payments-api", "response": "500", "bytes": 10})),
    ];
    tokio::task::spawn_blocking(move || {
        let mut store = ElasticKnowledgeStore::create(cfg).unwrap();
        store.load_sample_data(&governor_dir().join("sample_data.json")).unwrap();
    })
    .await
    .unwrap();
    es.index_docs("srv-logs", &docs.iter().map(|(id, d)| (*id, d.clone())).collect::<Vec<_>>());

    let s = Scratch::new();
    let srv = Server::start(config(&s, &url)).await;
    let incident = std::fs::read_to_string(governor_dir().join("scenarios/incident_high.json")).unwrap();
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &incident).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["status"], "awaiting_approval", "{v}");
    let body = decisions(&s).pop().expect("the decision is recorded");
    assert_eq!(body.knowledge_base, url);
    assert_eq!(body.logs.as_deref(), Some(format!("elasticsearch:{url}/srv-logs").as_str()));
    let trace = body.outcome["trace"].as_array().cloned().unwrap_or_default();
    let logs = trace.iter().find(|t| t["tool"] == "query_live_logs").expect("query_live_logs in the trace");
    let r: &Value = &logs["result"];
    assert_eq!(
        (r["available"].as_bool(), r["total"].as_u64(), r["server_error_count"].as_u64()),
        (Some(true), Some(2), Some(1)),
        "{r}"
    );
    let sent: Vec<String> = es.log().into_iter().map(|(line, _)| line).collect();
    for want in ["POST /srv-runbooks/_search", "POST /srv-evidence/_search", "POST /srv-logs/_search"] {
        assert!(sent.iter().any(|l| l == want), "{want}: {sent:?}");
    }

    // POST /resolve learns into the same cluster's runbooks index, unreviewed.
    let body = r#"{"summary": "drained the db pool", "action": "restart_api_pods"}"#;
    let (st, v) = srv.post("/api/incidents/inc-live-001/resolve", Some(common::APPROVER), body).await;
    assert_eq!(st, 200, "{v}");
    let id = v["data"]["runbook"]["id"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();
    let learned = es.doc("srv-runbooks", &id).expect("the learned runbook is in the block's index");
    assert_eq!(learned["reviewed"], false, "{learned}");
}

#[tokio::test]
async fn a_configured_cluster_that_is_down_answers_503_and_records_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = Scratch::new();
    let srv = Server::start(config(&s, &format!("http://127.0.0.1:{port}"))).await;
    let incident = std::fs::read_to_string(governor_dir().join("scenarios/incident_high.json")).unwrap();
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &incident).await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["code"], "knowledge_unavailable", "{v}");
    let msg = v.to_string();
    assert!(msg.contains("cannot answer") && msg.contains("nothing can be decided"), "{msg}");
    assert!(decisions(&s).is_empty(), "nothing planned on empty knowledge");

    // The block's key missing from the server's environment: a 503 naming the variable.
    let s = Scratch::new();
    let mut cfg = config(&s, &format!("http://127.0.0.1:{port}"));
    cfg.env.remove("ES_SERVER_KEY");
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/incidents", Some(DEPLOYER), &incident).await;
    assert_eq!((st, v["code"].as_str()), (503, Some("knowledge_unavailable")), "{v}");
    assert!(v.to_string().contains("ES_SERVER_KEY is not set"), "{v}");
}
