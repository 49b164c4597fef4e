//! EXPLAINER_BACKEND on the server: `/api/explain` and `POST /api/simulate`'s `explanation` are
//! written by a loopback model speaking OpenAI's wire format, labelled; on failure the rule text
//! with `explainer_warning`; statuses and decisions unchanged; one model call per decision.

use guardrail_test_support::model::{ModelServer, Reply};

use crate::common::{DEPLOYER, Scratch, Server};

const KEY: &str = "sk-server-test-KEY-00aa11bb22cc";

/// A loopback model answering every request with `status`/`body` (the scripted server of
/// `guardrail-test-support`); its OpenAI base URL and the server, which counts requests.
fn model(status: u16, body: String) -> (String, ModelServer) {
    let server = guardrail_test_support::model::serve(vec![Reply::json(status, body).header("retry-after-ms", "1")]);
    (format!("{}/v1", server.url), server)
}

fn answer(text: &str) -> String {
    serde_json::json!({"object": "chat.completion", "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
    .to_string()
}

fn config(s: &Scratch, url: &str, key: Option<&str>) -> guardrail_server::ServerConfig {
    let mut cfg = s.config();
    cfg.env.insert("EXPLAINER_BACKEND".into(), "openai".into());
    cfg.env.insert("OPENAI_BASE_URL".into(), url.into());
    cfg.env.insert("EXPLAINER_TIMEOUT_SECONDS".into(), "2".into());
    if let Some(k) = key {
        cfg.env.insert("OPENAI_API_KEY".into(), k.into());
    }
    cfg
}

#[tokio::test]
async fn the_model_writes_api_explain_once_per_decision_and_simulate_explanations() {
    let s = Scratch::new();
    let (url, calls) = model(200, answer("Deploys wait 15 minutes."));
    let srv = Server::start(config(&s, &url, Some(KEY))).await;
    let (st, ex) = srv.get("/api/explain").await;
    assert_eq!(st, 200);
    assert_eq!(
        ex["data"]["text"],
        "(written by openai/gpt-4o-2024-08-06 from the gate's decision JSON; the decision is the gate's: DELAY by policy P005)\n\nDeploys wait 15 minutes.\n"
    );
    assert_eq!(ex["data"]["written_by"], "openai/gpt-4o-2024-08-06");
    assert!(ex["data"].get("explainer_warning").is_none(), "{ex}");
    let (st2, again) = srv.get("/api/explain").await;
    assert_eq!((st2, &again), (200, &ex));
    assert_eq!(calls.hits(), 1, "one model call per decision, not per request");
    // The decision is the gate's: /api/decision is unchanged by the explainer.
    let (_, d) = srv.get("/api/decision").await;
    assert_eq!(d["data"]["action"], "DELAY");

    let (st, v) = srv.post("/api/simulate", Some(DEPLOYER), r#"{"signals": {"error_budget_pct": 5}}"#).await;
    assert_eq!(st, 200, "{v}");
    let text = v["data"]["explanation"].as_str().unwrap();
    assert!(text.starts_with("(written by openai/gpt-4o-2024-08-06 from the gate's decision JSON; the decision is the gate's: BLOCK by policy"), "{text}");
    assert_eq!(v["data"]["action"], "BLOCK");
}

#[tokio::test]
async fn a_failing_model_leaves_the_rule_text_and_says_why() {
    let s = Scratch::new();
    let rule = {
        let srv = Server::start(s.config()).await;
        let (st, ex) = srv.get("/api/explain").await;
        assert_eq!(st, 200);
        assert_eq!(ex["data"].as_object().unwrap().len(), 1, "the seed's shape without a model: {ex}");
        ex["data"]["text"].as_str().unwrap().to_string()
    };
    let error = serde_json::json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}});
    let (url, _) = model(500, error.to_string());
    for (name, key) in [("500", Some(KEY)), ("no key", None)] {
        let srv = Server::start(config(&s, &url, key)).await;
        let (st, ex) = srv.get("/api/explain").await;
        assert_eq!(st, 200, "{name}");
        assert_eq!(ex["data"]["text"], rule.as_str(), "{name}");
        let w = ex["data"]["explainer_warning"].as_str().unwrap();
        assert!(
            w.contains(if key.is_some() { "HTTP 500 server_error: boom" } else { "set OPENAI_API_KEY" }),
            "{name}: {w}"
        );
        assert!(!w.contains(KEY));
        let (st, v) = srv.post("/api/simulate", Some(DEPLOYER), "{}").await;
        assert_eq!(st, 200, "{name}: {v}");
        assert_eq!(v["data"]["explanation"], rule.as_str(), "{name}");
    }
}
