//! The Kibana Agent Builder converse client against a loopback server speaking Kibana's wire
//! format (the documented `ChatResponse` round and hapi's error body).

use std::time::{Duration, Instant};

use guardrail_model::agent_builder::{
    AgentBuilder, AgentBuilderConfig, AgentBuilderError, Converse, DEFAULT_AGENT_ID, wire,
};
use guardrail_model::{ApiKey, Limits};
use serde_json::json;

use crate::server::{KEY, Reply, body, header, limits, serve};

fn client(url: &str) -> AgentBuilder {
    client_with(url, limits())
}

fn client_with(url: &str, limits: Limits) -> AgentBuilder {
    AgentBuilder::new(AgentBuilderConfig {
        kibana_url: url.to_string(),
        api_key: ApiKey::new(KEY).unwrap(),
        agent_id: "guardrail-sre".into(),
        connector_id: None,
        limits,
    })
    .unwrap()
}

/// A documented round: a tool call with its results, reasoning, the answer, model usage.
fn round(message: &str) -> serde_json::Value {
    json!({
        "conversation_id": "5b0c8c3e-7c3c-4a5e-9d0a-3a2b1c0d9e8f",
        "round_id": "e1f2a3b4-0000-4000-8000-000000000001",
        "status": "completed",
        "steps": [
            {"type": "reasoning", "reasoning": "Searching runbooks for checkout-api."},
            {"type": "tool_call", "tool_call_id": "call_9f2", "tool_id": "guardrail.search_runbooks",
             "params": {"query": "5xx after deploy", "service": "checkout-api"},
             "results": [{"tool_result_id": "r1", "type": "other",
                          "data": {"hits": [{"id": "rb-1", "action": "rollback_last_deploy"}]}}]},
            {"type": "tool_call", "tool_call_id": "call_9f3", "tool_id": "guardrail.check_policy_conflicts",
             "params": {"action": "rollback_last_deploy", "service": "checkout-api"}, "results": []}
        ],
        "response": {"message": message},
        "started_at": "2026-12-06T10:00:00.000Z",
        "time_to_first_token": 812,
        "time_to_last_token": 2407,
        "model_usage": {"connector_id": "elastic-llm", "llm_calls": 3, "input_tokens": 5120,
                        "output_tokens": 230, "model": "gpt-4.1"}
    })
}

#[test]
fn a_converse_call_has_the_documented_headers_and_body_and_the_round_is_read() {
    let srv = serve(vec![Reply::json(200, round("{\"proposed_action\": \"rollback_last_deploy\"}"))]);
    let answer = client(&format!("{}/", srv.url)).converse("plan for incident INC-1").unwrap();
    assert_eq!(answer.conversation_id, "5b0c8c3e-7c3c-4a5e-9d0a-3a2b1c0d9e8f");
    assert_eq!(answer.message, "{\"proposed_action\": \"rollback_last_deploy\"}");
    assert_eq!(answer.tool_calls.len(), 2);
    assert_eq!(answer.tool_calls[0].tool_id, "guardrail.search_runbooks");
    assert_eq!(answer.tool_calls[0].params, json!({"query": "5xx after deploy", "service": "checkout-api"}));
    assert_eq!(answer.tool_calls[0].results[0].kind, "other");
    assert_eq!(answer.reasoning, vec!["Searching runbooks for checkout-api.".to_string()]);
    assert_eq!(answer.model.as_deref(), Some("gpt-4.1"));
    assert_eq!(answer.connector_id.as_deref(), Some("elastic-llm"));
    assert_eq!((answer.llm_calls, answer.usage.input_tokens, answer.usage.output_tokens), (3, 5120, 230));
    assert_eq!(answer.attempts, 1);

    let r = &srv.requests()[0];
    assert!(r.head.starts_with("POST /api/agent_builder/converse HTTP/1.1\r\n"), "{}", r.head);
    assert_eq!(header(r, "authorization"), Some(format!("ApiKey {KEY}")));
    assert_eq!(header(r, "kbn-xsrf").as_deref(), Some("true"));
    assert_eq!(header(r, "content-type").as_deref(), Some("application/json"));
    // A new conversation each time, as the original: no conversation_id, no connector_id.
    assert_eq!(body(r), json!({"input": "plan for incident INC-1", "agent_id": "guardrail-sre"}));
    let sent: wire::ConverseRequest = serde_json::from_str(&r.body).unwrap();
    assert_eq!(sent.conversation_id, None);
}

#[test]
fn a_connector_is_sent_when_one_is_chosen() {
    let srv = serve(vec![Reply::json(200, round("ok"))]);
    let c = AgentBuilder::new(AgentBuilderConfig {
        kibana_url: srv.url.clone(),
        api_key: ApiKey::new(KEY).unwrap(),
        agent_id: "guardrail-sre".into(),
        connector_id: Some("claude-connector".into()),
        limits: limits(),
    })
    .unwrap();
    c.converse("x").unwrap();
    assert_eq!(
        body(&srv.requests()[0]),
        json!({"input": "x", "agent_id": "guardrail-sre", "connector_id": "claude-connector"})
    );
}

#[test]
fn an_older_round_without_model_usage_still_reads() {
    // 9.1's ChatResponse: conversation_id, steps, response (trace_id optional).
    let srv = serve(vec![Reply::json(
        200,
        json!({"conversation_id": "c-old", "steps": [], "response": {"message": "done"}}),
    )]);
    let a = client(&srv.url).converse("x").unwrap();
    assert_eq!((a.message.as_str(), a.model, a.llm_calls), ("done", None, 0));
}

#[test]
fn kibana_errors_are_typed_with_status_and_message_and_4xx_is_not_retried() {
    let srv = serve(vec![Reply::json(
        401,
        json!({"statusCode": 401, "error": "Unauthorized", "message": "[security_exception]: unable to authenticate with provided credentials"}),
    )]);
    let e = client(&srv.url).converse("x").unwrap_err();
    match &e {
        AgentBuilderError::Api { status: 401, kind: Some(k), message, .. } => {
            assert_eq!(k, "Unauthorized");
            assert!(message.contains("unable to authenticate"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(srv.requests().len(), 1);
    assert!(!e.to_string().contains(KEY) && !format!("{e:?}").contains(KEY));
}

#[test]
fn a_404_for_an_unknown_agent_names_it() {
    let srv = serve(vec![Reply::json(
        404,
        json!({"statusCode": 404, "error": "Not Found", "message": "Agent guardrail-sre not found"}),
    )]);
    let e = client(&srv.url).converse("x").unwrap_err();
    assert!(e.to_string().contains("HTTP 404 Not Found: Agent guardrail-sre not found"), "{e}");
}

#[test]
fn a_503_is_retried_honouring_retry_after_then_succeeds() {
    let srv = serve(vec![
        Reply::json(503, json!({"statusCode": 503, "error": "Service Unavailable", "message": "busy"}))
            .header("retry-after", "0"),
        Reply::json(200, round("ok")),
    ]);
    let a = client(&srv.url).converse("x").unwrap();
    assert_eq!((a.message.as_str(), a.attempts), ("ok", 2));
    assert_eq!(srv.requests().len(), 2);
}

#[test]
fn retries_are_bounded_and_the_last_failure_is_named() {
    let srv = serve(vec![
        Reply::json(429, json!({"statusCode": 429, "error": "Too Many Requests", "message": "slow down"}))
            .header("retry-after", "0"),
    ]);
    let e = client(&srv.url).converse("x").unwrap_err();
    match &e {
        AgentBuilderError::Exhausted { attempts: 3, last } => {
            assert!(matches!(**last, AgentBuilderError::Api { status: 429, .. }), "{last:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(srv.requests().len(), 3);
}

#[test]
fn a_silent_kibana_times_out_within_the_deadline() {
    let srv = serve(vec![Reply::json(200, round("late")).after(Duration::from_secs(5))]);
    let limits = Limits { deadline: Duration::from_millis(400), ..limits() };
    let start = Instant::now();
    let e = client_with(&srv.url, limits).converse("x").unwrap_err();
    assert!(matches!(e, AgentBuilderError::Timeout { .. }), "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
}

#[test]
fn an_unreachable_kibana_is_a_transport_error_after_the_retries() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let limits = Limits { max_retry_wait: Duration::from_millis(10), ..limits() };
    let e = client_with(&format!("http://127.0.0.1:{port}"), limits).converse("x").unwrap_err();
    let last = match &e {
        AgentBuilderError::Exhausted { last, .. } => last.as_ref(),
        other => other,
    };
    assert!(matches!(last, AgentBuilderError::Transport { .. }), "{e:?}");
}

#[test]
fn a_body_that_is_not_a_round_is_invalid_and_an_echoed_key_is_redacted() {
    let srv = serve(vec![Reply::json(200, "<html>login</html>")]);
    let e = client(&srv.url).converse("x").unwrap_err();
    assert!(matches!(e, AgentBuilderError::InvalidResponse { .. }), "{e:?}");

    let srv = serve(vec![Reply::json(
        400,
        json!({"statusCode": 400, "error": "Bad Request", "message": format!("bad header ApiKey {KEY}")}),
    )]);
    let e = client(&srv.url).converse("x").unwrap_err();
    assert!(e.to_string().contains("<redacted>") && !e.to_string().contains(KEY), "{e}");
}

#[test]
fn a_non_http_url_or_an_empty_agent_is_refused_before_sending() {
    let cfg = |url: &str, agent: &str| AgentBuilderConfig {
        kibana_url: url.into(),
        api_key: ApiKey::new(KEY).unwrap(),
        agent_id: agent.into(),
        connector_id: None,
        limits: limits(),
    };
    assert!(matches!(AgentBuilder::new(cfg("ftp://kb", "a")), Err(AgentBuilderError::BadUrl { .. })));
    assert!(matches!(AgentBuilder::new(cfg("kibana", "a")), Err(AgentBuilderError::BadUrl { .. })));
    assert!(matches!(AgentBuilder::new(cfg("http://kb", " ")), Err(AgentBuilderError::MissingSetting { .. })));
    let c = AgentBuilder::new(cfg("http://user:pw@kb:5601/s/sre", DEFAULT_AGENT_ID)).unwrap();
    assert_eq!(c.url(), "http://user:pw@kb:5601/s/sre/api/agent_builder/converse");
    assert!(!format!("{c:?}").contains(KEY));
}

#[test]
fn a_short_key_does_not_corrupt_the_answer_and_a_real_one_echoed_is_redacted() {
    let message = "{\"key_claims\": [\"k\"]}";
    let srv = serve(vec![Reply::json(200, round(message))]);
    let short = AgentBuilder::new(AgentBuilderConfig {
        kibana_url: srv.url.clone(),
        api_key: ApiKey::new("k").unwrap(),
        agent_id: "a".into(),
        connector_id: None,
        limits: limits(),
    })
    .unwrap();
    assert_eq!(short.converse("x").unwrap().message, message);
    let srv = serve(vec![Reply::json(200, round(&format!("my key is {KEY}")))]);
    let a = client(&srv.url).converse("x").unwrap();
    assert_eq!(a.message, "my key is <redacted>");
    assert!(!a.raw.to_string().contains(KEY));
}
