//! The explainer over the loopback servers: the model's narrative, labelled; the rule-based text
//! and a warning on any failure.

use std::time::Duration;

use guardrail_model::explainer::{Explainer, SYSTEM_PROMPT};
use serde_json::json;

use crate::server::{KEY, Reply, body, serve};

fn decision() -> serde_json::Value {
    json!({"action": "BLOCK", "policy_id": "block-critical-burn", "reason": "burning fast"})
}

fn env(backend: &'static str, url: String) -> impl Fn(&str) -> Option<String> {
    move |k: &str| match k {
        "EXPLAINER_BACKEND" => Some(backend.to_string()),
        "OPENAI_BASE_URL" => Some(format!("{url}/v1")),
        "ANTHROPIC_BASE_URL" => Some(url.clone()),
        "OPENAI_API_KEY" | "ANTHROPIC_API_KEY" => Some(KEY.to_string()),
        "EXPLAINER_TIMEOUT_SECONDS" => Some("2".to_string()),
        _ => None,
    }
}

#[test]
fn openai_writes_the_narrative_from_the_decision_json_and_it_is_labelled() {
    let srv = serve(vec![Reply::json(
        200,
        json!({"object": "chat.completion", "model": "gpt-4o-2024-08-06",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "The deploy is blocked.\u{1b}[2J"}, "finish_reason": "stop"}]}),
    )]);
    let (ex, warnings) = Explainer::from_env(None, None, &env("openai", srv.url.clone()));
    assert!(warnings.is_empty(), "{warnings:?}");
    let n = ex.explain(&decision(), "BLOCK by policy block-critical-burn", || panic!("rule text not needed"));
    assert_eq!(
        n.text,
        "(written by openai/gpt-4o-2024-08-06 from the gate's decision JSON; the decision is the gate's: BLOCK by policy block-critical-burn)\n\nThe deploy is blocked.[2J\n"
    );
    assert_eq!(n.written_by.as_deref(), Some("openai/gpt-4o-2024-08-06"));
    assert_eq!(n.warning, None);
    // The original's request: gpt-4o, temperature 0.3, its system message, the decision indented 2.
    let sent = body(&srv.requests()[0]);
    assert_eq!(sent["model"], "gpt-4o");
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": SYSTEM_PROMPT}));
    let user = sent["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("non-technical stakeholder"), "{user}");
    assert!(
        user.ends_with(&format!("Decision JSON:\n{}", serde_json::to_string_pretty(&decision()).unwrap())),
        "{user}"
    );
}

#[test]
fn anthropic_writes_the_narrative_with_the_model_flag() {
    let srv = serve(vec![Reply::json(
        200,
        json!({"type": "message", "role": "assistant", "model": "claude-x", "content": [{"type": "text", "text": "Blocked."}],
               "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}),
    )]);
    let (ex, _) = Explainer::from_env(Some("Anthropic"), Some("claude-x"), &env("rule", srv.url.clone()));
    let n = ex.explain(&decision(), "BLOCK", || panic!("rule text not needed"));
    assert!(n.text.starts_with("(written by anthropic/claude-x from"), "{}", n.text);
    let sent = body(&srv.requests()[0]);
    assert_eq!((sent["model"].as_str(), sent["max_tokens"].as_u64()), (Some("claude-x"), Some(1024)));
}

#[test]
fn any_failure_falls_back_to_the_rule_text_with_a_warning() {
    let failures = vec![
        Reply::json(500, json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}}))
            .header("retry-after-ms", "1"),
        Reply::json(
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        ),
        Reply::json(200, "not json"),
        Reply::json(
            200,
            json!({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "no"}, "finish_reason": "stop"}]}),
        ),
        Reply::json(200, "{}").after(Duration::from_secs(10)),
    ];
    for reply in failures {
        let srv = serve(vec![reply.clone()]);
        let (ex, _) = Explainer::from_env(None, None, &env("openai", srv.url.clone()));
        let n = ex.explain(&decision(), "BLOCK", || "RULE TEXT\n".into());
        assert_eq!(n.text, "RULE TEXT\n", "{reply:?}");
        assert_eq!(n.written_by, None);
        let w = n.warning.unwrap();
        assert!(w.starts_with("the model explainer failed (openai: "), "{w}");
        assert!(w.ends_with("; showing the rule-based explanation"), "{w}");
        assert!(!w.contains(KEY), "{w}");
    }
}
