//! A request answered from its headers alone (401, 403…) must leave the connection usable when
//! its body arrives after its head, as keep-alive clients (Python's httpx and requests) write
//! it: head and body in two writes. Before `drain.rs`, the 401 went out ahead of the body
//! without `Connection: close` and hyper then closed the connection; the next request on it
//! met a closed socket ("Server disconnected without sending a response"). A body the server
//! does not read whole (larger than the limit) is answered with `Connection: close`.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;

use guardrail_test_support::http::read_response;

/// `POST path` with `headers`, its head and body written apart (the body a moment later), then
/// `GET /healthz` on the same connection; both responses as read.
fn post_in_two_writes(base: &str, path: &str, headers: &str, body: &str) -> [Option<(String, String)>; 2] {
    let addr = base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_nodelay(true).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // Time for the server to act on the head alone (before the fix: answer and close). Not an
    // assertion: with the fix the outcome does not depend on it.
    std::thread::sleep(Duration::from_millis(200));
    // Either write may meet a connection the server closed; what it answered is what is checked.
    let _ = s.write_all(body.as_bytes());
    let _ = s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes());
    let mut r = BufReader::new(s);
    [read_response(&mut r), read_response(&mut r)]
}

async fn exchange(base: &str, path: &str, headers: &str, body: &str) -> [Option<(String, String)>; 2] {
    let (b, p, h, d) = (base.to_string(), path.to_string(), headers.to_string(), body.to_string());
    tokio::task::spawn_blocking(move || post_in_two_writes(&b, &p, &h, &d)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_post_keeps_the_connection_usable_when_its_body_arrives_after_the_head() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    let gate = r#"{"ci": {"branch": "main"}}"#;
    let incident = r#"{"id": "inc-1", "service": "payments-api", "severity": "high", "summary": "late body"}"#;
    let viewer = format!("Authorization: Bearer {VIEWER}\r\n");
    for (path, headers, body, status) in [
        ("/api/gate", "", gate, "401"),
        ("/api/gate", "Authorization: Bearer wrong\r\n", gate, "401"),
        ("/api/incidents", "", incident, "401"),
        ("/api/incidents", viewer.as_str(), incident, "403"),
        ("/api/no-such-endpoint", "", gate, "404"),
    ] {
        let [first, second] = exchange(&srv.base, path, headers, body).await;
        let (head, _) = first.unwrap_or_else(|| panic!("{path}: no answer"));
        assert!(head.starts_with(&format!("http/1.1 {status}")), "{path}: {head}");
        assert!(!head.contains("connection: close"), "{path}: {head}");
        let (head, body) = second.unwrap_or_else(|| panic!("{path}: the connection was closed after the {status}"));
        assert!(head.starts_with("http/1.1 200"), "{path}, then /healthz: {head}");
        assert!(body.contains("\"ok\":true"), "{body}");
    }
    // The body still reaches the handler whole: an accepted gate request after a late body.
    let [first, second] =
        exchange(&srv.base, "/api/gate", &format!("Authorization: Bearer {DEPLOYER}\r\n"), gate).await;
    let (head, body) = first.expect("the decision");
    assert!(head.starts_with("http/1.1 200"), "{head} {body}");
    assert!(body.contains("\"action\""), "{body}");
    assert!(second.is_some_and(|(h, _)| h.starts_with("http/1.1 200")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_with_connection_close() {
    let s = Scratch::new();
    let mut cfg = s.config();
    cfg.max_body_bytes = 1024;
    let srv = Server::start(cfg).await;
    let big = format!("{{\"ci\": {{\"branch\": \"{}\"}}}}", "x".repeat(4096));
    // Declared too large (Content-Length), refused or not: the server does not read the body,
    // so it says it closes, and the handler's own 413 (or 401) is the answer.
    for (headers, status) in [(format!("Authorization: Bearer {DEPLOYER}\r\n"), "413"), (String::new(), "401")] {
        let [first, _] = exchange(&srv.base, "/api/gate", &headers, &big).await;
        let (head, body) = first.expect("an answer");
        assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        if status == "413" {
            assert!(body.contains("the body is larger than 1024 bytes"), "{body}");
        }
    }
    // Chunked, no length declared: found too large while read, the same.
    let addr = srv.base.trim_start_matches("http://").to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        let head = format!(
            "POST /api/gate HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAuthorization: Bearer {DEPLOYER}\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let _ = s.write_all(head.as_bytes());
        let chunk = "x".repeat(600);
        for _ in 0..4 {
            let _ = s.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
        }
        let _ = s.write_all(b"0\r\n\r\n");
        read_response(&mut BufReader::new(s))
    })
    .await
    .unwrap();
    let (head, _) = answer.expect("an answer");
    assert!(head.starts_with("http/1.1 413") && head.contains("connection: close"), "{head}");
}
