//! A loopback HTTPS server that answers `/api/v1/query` like Prometheus, for the TLS tests.
//!
//! Certificates are made at test time (`guardrail_test_support::tls::TestCa`): a CA ("internal
//! CA") and a server certificate for `127.0.0.1` / `localhost` signed by it. The server speaks rustls over a
//! plain `std::net::TcpListener` (one thread per connection), reads the form-encoded POST
//! Guardrail sends and answers with a fixed, healthy history in Prometheus's JSON:
//! every `guardrail_series` tag of the batched counts and latency queries gets a value
//! (`errors@…` 1, `total@…` 10000, `p95` 0.1 s, `p99` 0.2 s), and the freshness query (no tag)
//! gets the query's own evaluation time.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use guardrail_test_support::http::read_request;
use guardrail_test_support::tls::TestCa;

/// A running server and the CA that signed its certificate.
pub struct TlsPrometheus {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// Connections accepted so far (one per HTTP attempt: the server closes each).
    pub connections: Arc<AtomicUsize>,
}

impl TlsPrometheus {
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Starts a server on a free loopback port; it runs until the test process ends.
pub fn start() -> TlsPrometheus {
    let ca = TestCa::new("Guardrail test internal CA");
    let leaf = ca.issue(&["127.0.0.1", "localhost"], Some("prometheus.test"));
    let config = leaf.server_config(&[ca.cert()]);

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                // A client that refuses the certificate ends the handshake here: the read fails.
                let Some(request) = read_request(&mut tls) else { return };
                let answer = answer(&request.body);
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    TlsPrometheus { url, ca_pem: ca.pem(), connections }
}

/// `application/x-www-form-urlencoded` value decoding.
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(x)) => {
                out.push(x);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The Prometheus answer to the form `body` (fields `query` and `time`).
fn answer(body: &str) -> String {
    let field = |name: &str| {
        body.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(decode)).unwrap_or_default()
    };
    let (query, time) = (field("query"), field("time"));
    let marker = "\"guardrail_series\", \"";
    let mut result = Vec::new();
    for part in query.split(marker).skip(1) {
        let tag = part.split('"').next().unwrap_or_default();
        let value = if tag.starts_with("errors@") {
            "1"
        } else if tag.starts_with("total@") {
            "10000"
        } else if tag == "p95" {
            "0.1"
        } else {
            "0.2"
        };
        result.push(format!(r#"{{"metric":{{"guardrail_series":"{tag}"}},"value":[{time},"{value}"]}}"#));
    }
    if result.is_empty() {
        // The freshness query: the newest sample is as new as the evaluation time.
        result.push(format!(r#"{{"metric":{{}},"value":[{time},"{time}"]}}"#));
    }
    format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#, result.join(","))
}
