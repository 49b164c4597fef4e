//! Loopback model servers speaking the providers' documented wire formats, for tests of anything
//! that calls a model through `guardrail-model`: OpenAI Chat Completions (`POST
//! /v1/chat/completions`: `choices[].message` with `content`, `refusal`, `tool_calls`,
//! `finish_reason`, `usage`; error bodies `{"error": {message, type, param, code}}`) and
//! Anthropic Messages (`POST /v1/messages`: `content` blocks `text` / `tool_use`, `stop_reason`,
//! `usage`; error bodies `{"type": "error", "error": {type, message}}`, 529 overloaded).
//!
//! A server answers each request with a scripted [`Reply`]: from a list in order (the last one
//! repeats, [`serve`]) or from a function of the request's index and contents ([`serve_with`]),
//! after an optional delay (a model that does not answer in time), with any headers
//! (`Retry-After`). Every request is kept ([`ModelServer::requests`]).
//!
//! Bodies are built as JSON text here (this crate has no JSON library); [`json_string`] escapes.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::{Request, read_request, write_response};

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body (JSON text).
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    /// A body (JSON text, or a JSON value) with `status`.
    pub fn json(status: u16, body: impl ToString) -> Reply {
        Reply { status, headers: Vec::new(), body: body.to_string(), delay: Duration::ZERO }
    }

    /// The same reply with one more header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The same reply, sent after `delay`.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A running loopback model server.
pub struct ModelServer {
    /// `http://127.0.0.1:PORT` (OpenAI-compatible base URLs add `/v1`).
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl ModelServer {
    /// The requests read so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.requests.lock().map(|r| r.len()).unwrap_or_default()
    }
}

/// A server answering the n-th request with `script[n]` (the last one repeats).
pub fn serve(script: Vec<Reply>) -> ModelServer {
    assert!(!script.is_empty(), "a script needs at least one reply");
    serve_with(move |n, _| script[n.min(script.len() - 1)].clone())
}

/// A server answering the n-th request (from 0) with `answer(n, request)`.
pub fn serve_with(answer: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> ModelServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("a bound address"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        let mut n = 0usize;
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let Some(req) = read_request(&mut s) else { continue };
            let reply = answer(n, &req);
            n += 1;
            if let Ok(mut r) = seen.lock() {
                r.push(req);
            }
            std::thread::spawn(move || {
                std::thread::sleep(reply.delay);
                let mut headers = vec![("content-type", "application/json"), ("connection", "close")];
                headers.extend(reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                let _ = write_response(&mut s, reply.status, &headers, &reply.body);
            });
        }
    });
    ModelServer { url, requests }
}

/// `s` as a JSON string literal (quotes included).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One tool call a scripted model asks for: its id, the tool's name and the arguments as JSON
/// text (sent as written, so a test can send arguments that are not JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The call id.
    pub id: String,
    /// The tool.
    pub name: String,
    /// The arguments, JSON text (or not).
    pub arguments: String,
}

impl Call {
    /// A call.
    pub fn new(id: &str, name: &str, arguments: &str) -> Call {
        Call { id: id.into(), name: name.into(), arguments: arguments.into() }
    }
}

/// OpenAI Chat Completions bodies.
pub mod openai {
    use super::{Call, Reply, json_string};

    /// The model name answers carry.
    pub const MODEL: &str = "gpt-4o-2024-08-06";

    fn completion(message: &str, finish: &str, usage: (u64, u64)) -> String {
        format!(
            r#"{{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,"model":"{MODEL}","choices":[{{"index":0,"message":{message},"logprobs":null,"finish_reason":"{finish}"}}],"usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0}}}},"service_tier":"default"}}"#,
            usage.0,
            usage.1,
            usage.0 + usage.1
        )
    }

    /// A final text answer (`finish_reason: stop`).
    pub fn text(content: &str) -> Reply {
        text_with_usage(content, (420, 80))
    }

    /// A final text answer with the given `(prompt_tokens, completion_tokens)`.
    pub fn text_with_usage(content: &str, usage: (u64, u64)) -> Reply {
        let msg =
            format!(r#"{{"role":"assistant","content":{},"refusal":null,"annotations":[]}}"#, json_string(content));
        Reply::json(200, completion(&msg, "stop", usage))
    }

    /// An answer asking for tool calls (`finish_reason: tool_calls`).
    pub fn tool_calls(calls: &[Call]) -> Reply {
        let calls: Vec<String> = calls
            .iter()
            .map(|c| {
                format!(
                    r#"{{"id":{},"type":"function","function":{{"name":{},"arguments":{}}}}}"#,
                    json_string(&c.id),
                    json_string(&c.name),
                    json_string(&c.arguments)
                )
            })
            .collect();
        let msg = format!(
            r#"{{"role":"assistant","content":null,"tool_calls":[{}],"refusal":null,"annotations":[]}}"#,
            calls.join(",")
        );
        Reply::json(200, completion(&msg, "tool_calls", (350, 40)))
    }

    /// A refusal (`message.refusal`).
    pub fn refusal(why: &str) -> Reply {
        let msg = format!(r#"{{"role":"assistant","content":null,"refusal":{},"annotations":[]}}"#, json_string(why));
        Reply::json(200, completion(&msg, "stop", (300, 12)))
    }

    /// An answer cut at the token cap (`finish_reason: length`).
    pub fn truncated(content: &str) -> Reply {
        let msg = format!(r#"{{"role":"assistant","content":{},"refusal":null}}"#, json_string(content));
        Reply::json(200, completion(&msg, "length", (300, 1024)))
    }

    /// An error body, as the API sends it.
    pub fn error(status: u16, kind: &str, code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            format!(
                r#"{{"error":{{"message":{},"type":{},"param":null,"code":{}}}}}"#,
                json_string(message),
                json_string(kind),
                json_string(code)
            ),
        )
    }

    /// 429 with `Retry-After: {seconds}`.
    pub fn rate_limited(seconds: u32) -> Reply {
        error(429, "requests", "rate_limit_exceeded", "Rate limit reached for gpt-4o in organization org-x.")
            .header("retry-after", &seconds.to_string())
    }
}

/// Anthropic Messages bodies.
pub mod anthropic {
    use super::{Call, Reply, json_string};

    /// The model name answers carry.
    pub const MODEL: &str = "claude-sonnet-4-5-20250929";

    fn message(content: &str, stop: &str, usage: (u64, u64)) -> String {
        format!(
            r#"{{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"{MODEL}","content":[{content}],"stop_reason":"{stop}","stop_sequence":null,"usage":{{"input_tokens":{},"output_tokens":{},"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}}"#,
            usage.0, usage.1
        )
    }

    fn text_block(t: &str) -> String {
        format!(r#"{{"type":"text","text":{}}}"#, json_string(t))
    }

    /// A final text answer (`stop_reason: end_turn`).
    pub fn text(content: &str) -> Reply {
        text_with_usage(content, (2095, 503))
    }

    /// A final text answer with the given `(input_tokens, output_tokens)`.
    pub fn text_with_usage(content: &str, usage: (u64, u64)) -> Reply {
        Reply::json(200, message(&text_block(content), "end_turn", usage))
    }

    /// An answer cut at the token cap (`stop_reason: max_tokens`).
    pub fn truncated(content: &str) -> Reply {
        Reply::json(200, message(&text_block(content), "max_tokens", (1500, 1024)))
    }

    /// An answer with `tool_use` blocks (`stop_reason: tool_use`); each call's arguments must be
    /// a JSON object (Anthropic sends `input` as an object, never as text).
    pub fn tool_use(calls: &[Call]) -> Reply {
        let mut blocks = vec![text_block("Let me look that up.")];
        blocks.extend(calls.iter().map(|c| {
            format!(
                r#"{{"type":"tool_use","id":{},"name":{},"input":{}}}"#,
                json_string(&c.id),
                json_string(&c.name),
                c.arguments
            )
        }));
        Reply::json(200, message(&blocks.join(","), "tool_use", (1800, 60)))
    }

    /// A refusal (`stop_reason: refusal`).
    pub fn refusal(why: &str) -> Reply {
        Reply::json(200, message(&text_block(why), "refusal", (1500, 10)))
    }

    /// An error body, as the API sends it.
    pub fn error(status: u16, kind: &str, message: &str) -> Reply {
        Reply::json(
            status,
            format!(
                r#"{{"type":"error","error":{{"type":{},"message":{}}},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}}"#,
                json_string(kind),
                json_string(message)
            ),
        )
    }

    /// 529 overloaded.
    pub fn overloaded() -> Reply {
        error(529, "overloaded_error", "Overloaded")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
    }
}
