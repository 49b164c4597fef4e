//! The Chat Completions adapter against a loopback server speaking OpenAI's wire format.

use std::time::{Duration, Instant};

use guardrail_model::openai::{OpenAi, wire};
use guardrail_model::{ChatModel, ChatRequest, Message, ModelError, StopReason, ToolCall, ToolSpec};
use serde_json::json;

use crate::server::{KEY, Reply, assert_no_key, body, config, header, serve};

fn completion(message: serde_json::Value, finish: &str) -> serde_json::Value {
    // The documented 200 body.
    json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                  "prompt_tokens_details": {"cached_tokens": 0}},
        "service_tier": "default"
    })
}

fn text_answer(text: &str) -> Reply {
    Reply::json(
        200,
        completion(json!({"role": "assistant", "content": text, "refusal": null, "annotations": []}), "stop"),
    )
}

fn hello() -> ChatRequest {
    ChatRequest {
        system: Some("be brief".into()),
        messages: vec![Message::User("hello".into())],
        temperature: Some(0.3),
        ..ChatRequest::default()
    }
}

fn model(url: &str) -> OpenAi {
    OpenAi::new(config(format!("{url}/v1"), "gpt-4o")).unwrap()
}

#[test]
fn a_completion_is_posted_with_the_bearer_key_and_read() {
    let srv = serve(vec![text_answer("Deploys are blocked.")]);
    let answer = model(&srv.url).chat(&hello()).unwrap();
    assert_eq!(answer.text.as_deref(), Some("Deploys are blocked."));
    assert_eq!(answer.model, "gpt-4o-2024-08-06");
    assert_eq!(answer.stop, StopReason::EndTurn);
    assert_eq!((answer.usage.input_tokens, answer.usage.output_tokens, answer.attempts), (19, 10, 1));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].head.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"), "{}", reqs[0].head);
    assert_eq!(header(&reqs[0], "authorization").as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(header(&reqs[0], "content-type").as_deref(), Some("application/json"));
    assert_eq!(
        body(&reqs[0]),
        json!({
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
            "temperature": 0.3
        })
    );
}

#[test]
fn tools_tool_calls_and_tool_results_have_the_documented_shape() {
    let call = json!({"id": "call_abc123", "type": "function",
                      "function": {"name": "search_runbooks", "arguments": "{\"service\":\"checkout\"}"}});
    let srv = serve(vec![Reply::json(
        200,
        completion(json!({"role": "assistant", "content": null, "tool_calls": [call]}), "tool_calls"),
    )]);
    let schema = json!({"type": "object", "properties": {"service": {"type": "string"}}, "required": ["service"]});
    let request = ChatRequest {
        system: None,
        messages: vec![
            Message::User("plan".into()),
            Message::Assistant {
                text: None,
                tool_calls: vec![ToolCall { id: "call_1".into(), name: "slo_status".into(), arguments: "{}".into() }],
            },
            Message::ToolResult { call_id: "call_1".into(), content: "{\"ok\":true}".into(), is_error: false },
        ],
        tools: vec![ToolSpec {
            name: "search_runbooks".into(),
            description: "Runbooks".into(),
            input_schema: schema.clone(),
        }],
        max_tokens: Some(256),
        temperature: None,
    };
    let answer = model(&srv.url).chat(&request).unwrap();
    assert_eq!(answer.stop, StopReason::ToolUse);
    assert_eq!(answer.text, None);
    assert_eq!(
        answer.tool_calls,
        vec![ToolCall {
            id: "call_abc123".into(),
            name: "search_runbooks".into(),
            arguments: "{\"service\":\"checkout\"}".into()
        }]
    );
    assert_eq!(answer.tool_calls[0].arguments_json().unwrap(), json!({"service": "checkout"}));
    let sent = body(&srv.requests()[0]);
    assert_eq!(
        sent,
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": "plan"},
                {"role": "assistant", "content": null,
                 "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "slo_status", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"ok\":true}"}
            ],
            "tools": [{"type": "function", "function": {"name": "search_runbooks", "description": "Runbooks", "parameters": schema}}],
            "max_completion_tokens": 256
        })
    );
    // The typed wire reads what it writes.
    let typed: wire::ChatCompletionRequest = serde_json::from_value(sent.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), sent);
}

#[test]
fn arguments_that_are_not_json_are_kept_for_the_loop_to_answer() {
    let call = json!({"id": "call_x", "type": "function", "function": {"name": "query_live_logs", "arguments": "{service: checkout"}});
    let srv = serve(vec![Reply::json(
        200,
        completion(json!({"role": "assistant", "content": null, "tool_calls": [call]}), "tool_calls"),
    )]);
    let answer = model(&srv.url).chat(&hello()).unwrap();
    assert_eq!(answer.tool_calls[0].arguments, "{service: checkout");
    assert!(answer.tool_calls[0].arguments_json().is_err());
}

#[test]
fn an_invalid_key_is_a_typed_401_not_retried_and_the_key_is_not_shown() {
    // OpenAI's body quotes (part of) the key; this server quotes all of it.
    let srv = serve(vec![Reply::json(
        401,
        json!({"error": {"message": format!("Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com/account/api-keys."),
                         "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
    )]);
    let e = model(&srv.url).chat(&hello()).unwrap_err();
    match &e {
        ModelError::Api { status: 401, kind: Some(kind), message, .. } => {
            assert_eq!(kind, "invalid_api_key");
            assert!(message.starts_with("Incorrect API key provided: <redacted>."), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.retryable());
    assert_eq!(srv.requests().len(), 1);
    assert_no_key(&e);
    assert_eq!(e.to_string().lines().count(), 1);
}

#[test]
fn a_429_with_retry_after_is_waited_out_then_answered() {
    let srv = serve(vec![
        Reply::json(429, json!({"error": {"message": "Rate limit reached for gpt-4o", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}))
            .header("retry-after", "1"),
        text_answer("ok"),
    ]);
    let t = Instant::now();
    let answer = model(&srv.url).chat(&hello()).unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!((answer.text.as_deref(), answer.attempts), (Some("ok"), 2));
    assert_eq!(srv.requests().len(), 2);
}

#[test]
fn a_long_retry_after_is_capped() {
    let srv = serve(vec![Reply::json(503, "").header("retry-after", "3600"), text_answer("ok")]);
    let mut cfg = config(format!("{}/v1", srv.url), "gpt-4o");
    cfg.limits.max_retry_wait = Duration::from_millis(100);
    let t = Instant::now();
    let answer = OpenAi::new(cfg).unwrap().chat(&hello()).unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(answer.attempts, 2);
}

#[test]
fn server_errors_are_retried_a_bounded_number_of_times() {
    let srv = serve(vec![Reply::json(
        500,
        json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}}),
    )
    .header("retry-after-ms", "10")]);
    let e = model(&srv.url).chat(&hello()).unwrap_err();
    match &e {
        ModelError::Exhausted { attempts: 3, last, .. } => {
            assert!(matches!(**last, ModelError::Api { status: 500, .. }), "{last:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(srv.requests().len(), 3);
    assert!(
        e.to_string().contains("gave up after 3 attempts: openai: HTTP 500 server_error: The server had an error"),
        "{e}"
    );
}

#[test]
fn a_model_that_does_not_answer_times_out_at_the_deadline() {
    let srv = serve(vec![text_answer("too late").after(Duration::from_secs(10))]);
    let mut cfg = config(format!("{}/v1", srv.url), "gpt-4o");
    cfg.limits.deadline = Duration::from_millis(400);
    let t = Instant::now();
    let e = OpenAi::new(cfg).unwrap().chat(&hello()).unwrap_err();
    assert!(matches!(e, ModelError::Timeout { .. }), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_no_key(&e);
}

#[test]
fn garbage_refusals_and_empty_answers_are_typed_errors() {
    let srv = serve(vec![Reply::json(200, "<html>proxy says hi</html>")]);
    assert!(matches!(model(&srv.url).chat(&hello()), Err(ModelError::InvalidResponse { .. })));

    let srv = serve(vec![Reply::json(200, json!({"object": "chat.completion", "choices": []}))]);
    assert!(matches!(model(&srv.url).chat(&hello()), Err(ModelError::InvalidResponse { .. })));

    let srv = serve(vec![Reply::json(
        200,
        completion(json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}), "stop"),
    )]);
    match model(&srv.url).chat(&hello()) {
        Err(ModelError::Refusal { message, .. }) => assert_eq!(message, "I can't help with that."),
        other => panic!("{other:?}"),
    }

    let srv = serve(vec![Reply::json(200, completion(json!({"role": "assistant", "content": ""}), "content_filter"))]);
    assert!(matches!(model(&srv.url).chat(&hello()), Err(ModelError::Refusal { .. })));

    let srv = serve(vec![Reply::json(200, completion(json!({"role": "assistant", "content": "  "}), "length"))]);
    match model(&srv.url).chat(&hello()) {
        Err(ModelError::Empty { stop, .. }) => assert_eq!(stop, "length"),
        other => panic!("{other:?}"),
    }

    // A non-JSON error page keeps its status and the start of its text.
    let srv = serve(vec![Reply::json(404, "<h1>Not Found</h1>")]);
    match model(&srv.url).chat(&hello()) {
        Err(ModelError::Api { status: 404, kind: None, message, .. }) => assert_eq!(message, "<h1>Not Found</h1>"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn nobody_listening_is_a_transport_error_after_the_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = config(format!("http://127.0.0.1:{port}/v1"), "gpt-4o");
    cfg.limits.max_retries = 1;
    let e = OpenAi::new(cfg).unwrap().chat(&hello()).unwrap_err();
    match &e {
        ModelError::Exhausted { attempts: 2, last, .. } => {
            assert!(matches!(**last, ModelError::Transport { .. }), "{last:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_no_key(&e);
}

#[test]
fn config_and_adapter_debug_do_not_show_the_key_and_bad_urls_are_refused() {
    let cfg = config("http://127.0.0.1:1/v1".into(), "gpt-4o");
    assert!(!format!("{cfg:?}").contains(KEY), "{cfg:?}");
    assert!(!format!("{:?}", OpenAi::new(cfg.clone()).unwrap()).contains(KEY));
    let e = OpenAi::new(guardrail_model::ModelConfig { base_url: "ftp://user:pw@host/v1".into(), ..cfg }).unwrap_err();
    assert!(matches!(e, ModelError::BadBaseUrl { .. }), "{e:?}");
    assert!(!e.to_string().contains("pw"), "{e}");
}

#[test]
fn the_environment_gives_base_url_key_and_model_with_the_originals_defaults() {
    use guardrail_model::{Limits, ModelConfig, Provider};
    let env = |k: &str| match k {
        "OPENAI_API_KEY" => Some(KEY.to_string()),
        "OPENAI_MODEL" => Some("gpt-4.1-mini".to_string()),
        _ => None,
    };
    let cfg = ModelConfig::from_env(Provider::OpenAi, &env, None, Limits::default()).unwrap();
    assert_eq!((cfg.base_url.as_str(), cfg.model.as_str()), ("https://api.openai.com/v1", "gpt-4.1-mini"));
    let cfg = ModelConfig::from_env(Provider::OpenAi, &env, Some("o4-mini"), Limits::default()).unwrap();
    assert_eq!(cfg.model, "o4-mini");
    let none = |_: &str| None;
    let e = ModelConfig::from_env(Provider::OpenAi, &none, None, Limits::default()).unwrap_err();
    assert_eq!(e.to_string(), "openai: no API key: set OPENAI_API_KEY");
    let cfg = ModelConfig::from_env(
        Provider::Anthropic,
        &|k: &str| (k == "ANTHROPIC_API_KEY").then(|| KEY.into()),
        None,
        Limits::default(),
    )
    .unwrap();
    assert_eq!(
        (cfg.base_url.as_str(), cfg.model.as_str()),
        ("https://api.anthropic.com", "claude-3-5-sonnet-20241022")
    );
}
