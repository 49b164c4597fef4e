//! A scripted loopback HTTP server: answers each connection with the next reply of its script
//! (the last one repeats) and keeps every request it read.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardrail_model::{ApiKey, Limits, ModelConfig};
use guardrail_test_support::http::{Request, read_request};

/// A key that must never appear in an error, a Debug or a log line.
pub const KEY: &str = "sk-test-SECRET-0123456789abcdef";

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Wait this long before answering (a model that does not answer in time).
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply { status, headers: Vec::new(), body: body.to_string(), delay: Duration::ZERO }
    }
    pub fn raw(status: u16, body: &str) -> Reply {
        Reply { status, headers: Vec::new(), body: body.to_string(), delay: Duration::ZERO }
    }
    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// The running server.
pub struct Scripted {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Scripted {
    /// The requests read so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// Starts a server answering with `script`.
pub fn serve(script: Vec<Reply>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        let mut n = 0usize;
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let Some(req) = read_request(&mut s) else { continue };
            seen.lock().unwrap().push(req);
            let reply = script[n.min(script.len() - 1)].clone();
            n += 1;
            std::thread::spawn(move || {
                std::thread::sleep(reply.delay);
                let mut head = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    reply.status,
                    reply.body.len()
                );
                for (k, v) in &reply.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(reply.body.as_bytes());
            });
        }
    });
    Scripted { url, requests }
}

/// Short bounds, so the failure tests finish quickly.
pub fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(5),
        max_retries: 2,
        max_retry_wait: Duration::from_secs(2),
    }
}

pub fn config(base_url: String, model: &str) -> ModelConfig {
    ModelConfig { base_url, api_key: ApiKey::new(KEY).unwrap(), model: model.to_string(), limits: limits() }
}

/// The request's body as JSON.
pub fn body(r: &Request) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap()
}

/// The value of header `name` (lower-case) in `r`.
pub fn header(r: &Request, name: &str) -> Option<String> {
    r.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Asserts the key is in none of an error's renderings.
pub fn assert_no_key(e: &guardrail_model::ModelError) {
    assert!(!e.to_string().contains(KEY), "Display shows the key: {e}");
    assert!(!format!("{e:?}").contains(KEY), "Debug shows the key: {e:?}");
}
