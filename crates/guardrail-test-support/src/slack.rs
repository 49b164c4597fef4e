//! A loopback Slack Web API for the tests of the Slack client and channels (the notify crate)
//! and of `guardrail serve`'s Slack endpoints. It answers as Slack documents it: HTTP 200 with
//! `{"ok": true, …}` for `chat.postMessage` (`channel`, `ts`, `message`), `chat.update`,
//! `chat.postEphemeral` (`message_ts`), `conversations.open` (`channel.id`), `views.open`
//! (`view`) and `conversations.replies` (the message posted or updated at `ts`, with its
//! blocks, else `thread_not_found`); `{"ok": false, "error": "unknown_method"}` otherwise.
//!
//! Scripted answers ([`FakeSlack::then`]) come first, one per request: an `ok: false` body (with
//! `Retry-After` for `ratelimited`), an HTTP status (429, 5xx), or no answer at all. Every
//! request is kept ([`FakeSlack::calls`]) with its head, so a test can check the token and the
//! content type.
//!
//! Message timestamps are `1765000000.NNNNNN`, NNNNNN counting requests from 1.

use std::collections::{BTreeMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{method_and_target, read_request, write_response};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// The Web API method (`chat.postMessage`).
    pub method: String,
    /// The request line and headers.
    pub head: String,
    /// The JSON body (`Null` when it is not JSON).
    pub body: Value,
}

/// A scripted answer, used instead of Slack's success answer for one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// HTTP 200 with this body, and `Retry-After` when given.
    Body(String, Option<u64>),
    /// This status with `{}`, and `Retry-After` when given.
    Status(u16, Option<u64>),
    /// No answer for this long, then the connection closes.
    Stall(Duration),
}

/// A running fake Slack (it lives as long as the test process; clones share it).
#[derive(Clone)]
pub struct FakeSlack {
    /// The API base, `http://127.0.0.1:PORT/api` (`SLACK_API_URL`).
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    /// ts → the blocks of the message posted or updated there.
    messages: Arc<Mutex<BTreeMap<String, Value>>>,
}

impl FakeSlack {
    /// Starts a fake with no script and no messages.
    pub fn start() -> FakeSlack {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let fake = FakeSlack {
            url: format!("http://{}/api", listener.local_addr().expect("a bound address")),
            calls: Arc::default(),
            script: Arc::default(),
            messages: Arc::default(),
        };
        let f = fake.clone();
        std::thread::spawn(move || {
            let mut n = 0u32;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(req) = read_request(&mut stream) else { continue };
                let method = method_and_target(&req).1.trim_start_matches("/api/").to_string();
                let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
                f.calls.lock().unwrap().push(Call {
                    method: method.clone(),
                    head: req.head.clone(),
                    body: body.clone(),
                });
                n += 1;
                let next = f.script.lock().unwrap().pop_front();
                let (status, retry, text) = match next {
                    Some(Reply::Body(b, retry)) => (200, retry, b),
                    Some(Reply::Status(code, retry)) => (code, retry, "{}".to_string()),
                    Some(Reply::Stall(d)) => {
                        std::thread::sleep(d);
                        continue;
                    }
                    None => (200, None, f.success(&method, &body, n).to_string()),
                };
                let retry = retry.map(|r| r.to_string());
                let mut headers = vec![("Content-Type", "application/json; charset=utf-8"), ("Connection", "close")];
                if let Some(r) = &retry {
                    headers.push(("Retry-After", r));
                }
                let _ = write_response(&mut stream, status, &headers, &text);
            }
        });
        fake
    }

    /// Answers the next request (after those already scripted) with `r`.
    pub fn then(&self, r: Reply) {
        self.script.lock().unwrap().push_back(r);
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The bodies of the requests to `method` so far, in order.
    pub fn bodies(&self, method: &str) -> Vec<Value> {
        self.calls.lock().unwrap().iter().filter(|c| c.method == method).map(|c| c.body.clone()).collect()
    }

    /// The blocks of every message posted or updated so far, by `ts`.
    pub fn messages(&self) -> BTreeMap<String, Value> {
        self.messages.lock().unwrap().clone()
    }

    /// Slack's documented success answer to `method`; the `n`-th request's timestamp.
    fn success(&self, method: &str, body: &Value, n: u32) -> Value {
        let channel = body["channel"].as_str().unwrap_or("C0000000000");
        let ts = format!("1765000000.{n:06}");
        match method {
            "chat.postMessage" => {
                self.messages.lock().unwrap().insert(ts.clone(), body["blocks"].clone());
                json!({"ok": true, "channel": channel, "ts": ts,
                       "message": {"type": "message", "subtype": "bot_message", "text": "…", "ts": ts, "bot_id": "B0BOT"}})
            }
            "chat.update" => {
                let at = body["ts"].as_str().unwrap_or_default();
                self.messages.lock().unwrap().insert(at.to_string(), body["blocks"].clone());
                json!({"ok": true, "channel": channel, "ts": at, "text": "…"})
            }
            "chat.postEphemeral" => json!({"ok": true, "message_ts": ts}),
            "conversations.open" => json!({"ok": true, "channel": {"id": "D0DM000001"}}),
            "views.open" => json!({"ok": true, "view": {"id": "V0VIEW", "type": "modal"}}),
            "conversations.replies" => {
                let at = body["ts"].as_str().unwrap_or_default();
                match self.messages.lock().unwrap().get(at) {
                    Some(blocks) => json!({"ok": true, "has_more": false,
                        "messages": [{"type": "message", "ts": at, "text": "", "blocks": blocks}]}),
                    None => json!({"ok": false, "error": "thread_not_found"}),
                }
            }
            _ => json!({"ok": false, "error": "unknown_method"}),
        }
    }
}
