//! `guardrail explain` with a model explainer (EXPLAINER_BACKEND / --explainer) against loopback
//! servers speaking the providers' wire formats: the model's narrative, labelled; on any failure
//! the rule-based text and a warning; the exit code is the same either way.

use std::time::Duration;

use guardrail_test_support::model::{ModelServer, Reply};

use crate::common::{Scratch, guardrail, run};

const KEY: &str = "sk-cli-test-KEY-9f8e7d6c5b4a";

/// A loopback server answering every request with `status` and `body` after `delay` (the
/// scripted server of `guardrail-test-support`); its URL and the server, which keeps the requests.
fn serve(status: u16, body: String, delay: Duration) -> (String, ModelServer) {
    let server = guardrail_test_support::model::serve(vec![
        Reply::json(status, body).header("retry-after-ms", "1").after(delay),
    ]);
    (server.url.clone(), server)
}

fn openai_answer(text: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940}
    })
    .to_string()
}

/// `guardrail explain` on the scratch data with the model variables of `env` only.
fn explain(s: &Scratch, env: &[(&str, String)], args: &[&str]) -> (i32, String, String) {
    let mut c = guardrail();
    for k in [
        "EXPLAINER_BACKEND",
        "EXPLAINER_TIMEOUT_SECONDS",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_MODEL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
    ] {
        c.env_remove(k);
    }
    c.arg("explain").arg("--root").arg(s.root()).args(["--now", "2026-02-21T00:00:00Z"]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run(c)
}

/// Environment variables for one run.
type Env = Vec<(&'static str, String)>;

fn openai_env(url: &str) -> Env {
    vec![
        ("EXPLAINER_BACKEND", "openai".into()),
        ("OPENAI_BASE_URL", format!("{url}/v1")),
        ("OPENAI_API_KEY", KEY.into()),
        ("EXPLAINER_TIMEOUT_SECONDS", "2".into()),
    ]
}

#[test]
fn the_model_writes_the_narrative_labelled_and_the_exit_code_is_unchanged() {
    let s = Scratch::new();
    let (rule_code, rule_text, _) = explain(&s, &[], &[]);
    assert!(rule_text.contains("Deployment has been DELAYED by 15 minutes."), "{rule_text}");

    let (url, seen) =
        serve(200, openai_answer("The deploy waits 15 minutes: the error budget is low."), Duration::ZERO);
    let mut env = openai_env(&url);
    env.push(("USER", "alice-the-operator".into()));
    env.push(("COMMIT_SHA", "deadbeefcafe".into()));
    let (code, out, err) = explain(&s, &env, &[]);
    assert_eq!(code, rule_code);
    assert_eq!(
        out,
        "(written by openai/gpt-4o-2024-08-06 from the gate's decision JSON; the decision is the gate's: DELAY by policy P005)\n\nThe deploy waits 15 minutes: the error budget is low.\n"
    );
    assert_eq!(err, "");
    // The model got the gate's typed view as JSON, and the key only in the header.
    let reqs = seen.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].head.starts_with("POST /v1/chat/completions "), "{}", reqs[0].head);
    assert!(reqs[0].head.contains(&format!("Bearer {KEY}")));
    let sent: serde_json::Value = serde_json::from_str(&reqs[0].body).unwrap();
    let prompt = sent["messages"][1]["content"].as_str().unwrap();
    let json_text = prompt.split_once("Decision JSON:\n").unwrap().1;
    let view: serde_json::Value = serde_json::from_str(json_text).unwrap();
    // Not the local directories (the inputs by file name)…
    assert!(!json_text.contains(&s.root().display().to_string()), "{json_text}");
    assert_eq!(view["inputs"]["policies"]["path"], "policies.yaml");
    // …nor the CI context: who runs it and what commit are not the provider's business.
    assert!(!json_text.contains("alice-the-operator") && !json_text.contains("deadbeefcafe"), "{json_text}");
    assert_eq!(
        (view["action"].as_str(), view["policy_id"].as_str(), view["delay_minutes"].as_u64()),
        (Some("DELAY"), Some("P005"), Some(15))
    );
}

#[test]
fn the_flags_choose_the_backend_and_model() {
    let s = Scratch::new();
    let body = serde_json::json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [{"type": "text", "text": "Delayed."}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 900, "output_tokens": 3}})
    .to_string();
    let (url, seen) = serve(200, body, Duration::ZERO);
    let env = vec![
        ("EXPLAINER_BACKEND", "openai".to_string()),
        ("ANTHROPIC_BASE_URL", url),
        ("ANTHROPIC_API_KEY", KEY.to_string()),
    ];
    let (code, out, _) = explain(&s, &env, &["--explainer", "anthropic", "--model", "claude-test"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("(written by anthropic/claude-test from the gate's decision JSON"), "{out}");
    let reqs = seen.requests();
    assert!(reqs[0].head.starts_with("POST /v1/messages "));
    assert!(reqs[0].head.contains("anthropic-version: 2023-06-01"));
}

#[test]
fn a_failing_model_falls_back_to_the_rule_text_with_a_warning() {
    let s = Scratch::new();
    let (rule_code, rule_text, _) = explain(&s, &[], &[]);
    let error = serde_json::json!({"error": {"message": "The server had an error", "type": "server_error", "param": null, "code": null}});
    let cases: Vec<(&str, Env, &str)> = vec![
        (
            "500",
            openai_env(&serve(500, error.to_string(), Duration::ZERO).0),
            "gave up after 3 attempts: openai: HTTP 500 server_error",
        ),
        ("timeout", openai_env(&serve(200, openai_answer("late"), Duration::from_secs(10)).0), "no answer from"),
        (
            "no key",
            openai_env(&serve(200, openai_answer("x"), Duration::ZERO).0)
                .into_iter()
                .filter(|(k, _)| *k != "OPENAI_API_KEY")
                .collect(),
            "no API key: set OPENAI_API_KEY",
        ),
        ("garbage", openai_env(&serve(200, "<html>".into(), Duration::ZERO).0), "is not a openai response"),
    ];
    for (name, env, why) in cases {
        let t = std::time::Instant::now();
        let (code, out, err) = explain(&s, &env, &[]);
        assert_eq!(code, rule_code, "{name}");
        assert_eq!(out, rule_text, "{name}: the rule-based text, unchanged");
        assert!(err.starts_with("guardrail: warning: the model explainer "), "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
        assert!(!err.contains(KEY), "{name}: {err}");
        assert!(t.elapsed() < Duration::from_secs(8), "{name}: bounded, took {:?}", t.elapsed());
    }
}

#[test]
fn an_unknown_backend_is_named_and_the_rule_text_shown() {
    let s = Scratch::new();
    let (_, rule_text, _) = explain(&s, &[], &[]);
    let (code, out, err) = explain(&s, &[("EXPLAINER_BACKEND", "llama".into())], &[]);
    assert_eq!(code, 0);
    assert_eq!(out, rule_text);
    assert_eq!(
        err,
        "guardrail: warning: EXPLAINER_BACKEND=llama is unknown (rule, openai, anthropic); using the rule-based explainer\n"
    );
    let (_, out, err) = explain(&s, &[("EXPLAINER_BACKEND", "RULE_BASED".into())], &[]);
    assert_eq!((out, err), (rule_text, String::new()));
}
