//! The Messages adapter against a loopback server speaking Anthropic's wire format.

use std::time::{Duration, Instant};

use guardrail_model::anthropic::{Anthropic, wire};
use guardrail_model::{ChatModel, ChatRequest, Message, ModelError, StopReason, ToolCall, ToolSpec};
use serde_json::json;

use crate::server::{KEY, Reply, assert_no_key, body, config, header, serve};

fn message(content: serde_json::Value, stop: &str) -> serde_json::Value {
    // The documented 200 body.
    json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    })
}

fn text_answer(text: &str) -> Reply {
    Reply::json(200, message(json!([{"type": "text", "text": text}]), "end_turn"))
}

fn model(url: &str) -> Anthropic {
    Anthropic::new(config(url.to_string(), "claude-sonnet-4-5")).unwrap()
}

fn hello() -> ChatRequest {
    ChatRequest {
        system: Some("be brief".into()),
        messages: vec![Message::User("hello".into())],
        ..ChatRequest::default()
    }
}

#[test]
fn a_message_is_posted_with_the_key_and_version_headers_and_read() {
    let srv = serve(vec![text_answer("Deploys are delayed.")]);
    let answer = model(&srv.url).chat(&hello()).unwrap();
    assert_eq!(answer.text.as_deref(), Some("Deploys are delayed."));
    assert_eq!(answer.model, "claude-sonnet-4-5-20250929");
    assert_eq!(answer.stop, StopReason::EndTurn);
    assert_eq!((answer.usage.input_tokens, answer.usage.output_tokens), (2095, 503));
    let r = &srv.requests()[0];
    assert!(r.head.starts_with("POST /v1/messages HTTP/1.1\r\n"), "{}", r.head);
    assert_eq!(header(r, "x-api-key").as_deref(), Some(KEY));
    assert_eq!(header(r, "anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(header(r, "authorization"), None);
    assert_eq!(
        body(r),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": "be brief",
               "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]})
    );
}

#[test]
fn tool_use_and_tool_result_blocks_have_the_documented_shape() {
    let srv = serve(vec![Reply::json(
        200,
        message(
            json!([
                {"type": "thinking", "thinking": "…", "signature": "sig"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "search_runbooks", "input": {"service": "checkout"}}
            ]),
            "tool_use",
        ),
    )]);
    let schema = json!({"type": "object", "properties": {"service": {"type": "string"}}});
    let request = ChatRequest {
        system: None,
        messages: vec![
            Message::User("plan".into()),
            Message::Assistant {
                text: Some("checking".into()),
                tool_calls: vec![
                    ToolCall { id: "toolu_1".into(), name: "slo_status".into(), arguments: "{}".into() },
                    ToolCall { id: "toolu_2".into(), name: "cost_status".into(), arguments: "{\"days\":7}".into() },
                ],
            },
            Message::ToolResult { call_id: "toolu_1".into(), content: "{\"ok\":true}".into(), is_error: false },
            Message::ToolResult { call_id: "toolu_2".into(), content: "unknown argument days".into(), is_error: true },
        ],
        tools: vec![ToolSpec {
            name: "search_runbooks".into(),
            description: "Runbooks".into(),
            input_schema: schema.clone(),
        }],
        max_tokens: Some(2048),
        temperature: Some(0.0),
    };
    let answer = model(&srv.url).chat(&request).unwrap();
    assert_eq!(answer.stop, StopReason::ToolUse);
    assert_eq!(answer.text.as_deref(), Some("Let me look."));
    assert_eq!(answer.tool_calls.len(), 1);
    assert_eq!(answer.tool_calls[0].id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(answer.tool_calls[0].arguments_json().unwrap(), json!({"service": "checkout"}));
    let sent = body(&srv.requests()[0]);
    assert_eq!(
        sent,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 2048,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "plan"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "checking"},
                    {"type": "tool_use", "id": "toolu_1", "name": "slo_status", "input": {}},
                    {"type": "tool_use", "id": "toolu_2", "name": "cost_status", "input": {"days": 7}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{\"ok\":true}"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "unknown argument days", "is_error": true}
                ]}
            ],
            "tools": [{"name": "search_runbooks", "description": "Runbooks", "input_schema": schema}],
            "temperature": 0.0
        })
    );
    let typed: wire::MessagesRequest = serde_json::from_value(sent.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), sent);
}

#[test]
fn an_invalid_key_is_a_typed_401_and_the_key_is_not_shown() {
    let srv = serve(vec![Reply::json(
        401,
        json!({"type": "error", "error": {"type": "authentication_error", "message": format!("invalid x-api-key {KEY}")},
               "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}),
    )]);
    let e = model(&srv.url).chat(&hello()).unwrap_err();
    match &e {
        ModelError::Api { status: 401, kind: Some(kind), message, .. } => {
            assert_eq!(kind, "authentication_error");
            assert_eq!(message, "invalid x-api-key <redacted>");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(srv.requests().len(), 1);
    assert_no_key(&e);
}

#[test]
fn overloaded_529_is_retried_after_the_servers_pause() {
    let srv = serve(vec![
        Reply::json(529, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
            .header("retry-after", "1"),
        text_answer("ok"),
    ]);
    let t = Instant::now();
    let answer = model(&srv.url).chat(&hello()).unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert_eq!((answer.text.as_deref(), answer.attempts), (Some("ok"), 2));
}

#[test]
fn overloaded_until_the_retries_run_out_names_the_last_error() {
    let srv = serve(vec![
        Reply::json(529, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
            .header("retry-after-ms", "5"),
    ]);
    let e = model(&srv.url).chat(&hello()).unwrap_err();
    assert_eq!(e.to_string(), "anthropic: gave up after 3 attempts: anthropic: HTTP 529 overloaded_error: Overloaded");
}

#[test]
fn a_pause_past_the_deadline_is_not_taken() {
    let srv = serve(vec![
        Reply::json(429, json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}))
            .header("retry-after", "60"),
    ]);
    let mut cfg = config(srv.url.clone(), "claude-sonnet-4-5");
    cfg.limits.max_retry_wait = Duration::from_secs(60);
    cfg.limits.deadline = Duration::from_secs(3);
    let t = Instant::now();
    let e = Anthropic::new(cfg).unwrap().chat(&hello()).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(
        matches!(e, ModelError::Api { status: 429, retry_after: Some(d), .. } if d == Duration::from_secs(60)),
        "{e:?}"
    );
}

#[test]
fn timeouts_refusals_garbage_and_empty_answers_are_typed_errors() {
    let srv = serve(vec![text_answer("late").after(Duration::from_secs(10))]);
    let mut cfg = config(srv.url.clone(), "claude-sonnet-4-5");
    cfg.limits.deadline = Duration::from_millis(300);
    assert!(matches!(Anthropic::new(cfg).unwrap().chat(&hello()), Err(ModelError::Timeout { .. })));

    let srv = serve(vec![Reply::json(200, message(json!([]), "refusal"))]);
    assert!(matches!(model(&srv.url).chat(&hello()), Err(ModelError::Refusal { .. })));

    let srv = serve(vec![Reply::json(200, "{\"type\": \"message\", \"content\": [")]);
    assert!(matches!(model(&srv.url).chat(&hello()), Err(ModelError::InvalidResponse { .. })));

    // An error object with a 200 status is not an answer.
    let srv = serve(vec![Reply::json(200, json!({"type": "error", "error": {"type": "api_error", "message": "x"}}))]);
    assert!(matches!(model(&srv.url).chat(&hello()), Err(ModelError::InvalidResponse { .. })));

    let srv = serve(vec![Reply::json(200, message(json!([{"type": "text", "text": ""}]), "max_tokens"))]);
    match model(&srv.url).chat(&hello()) {
        Err(ModelError::Empty { stop, .. }) => assert_eq!(stop, "max_tokens"),
        other => panic!("{other:?}"),
    }
}
