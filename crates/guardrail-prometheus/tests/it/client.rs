//! The HTTP client's timeouts and bounded retries, against a scripted loopback server (no
//! Prometheus needed): a 503 is retried and the next answer used; a 400 is not retried; a
//! server that never answers times out on every attempt; each outcome is recorded.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use guardrail_prometheus::client::{Client, QueryFailure, RequestFailure};
use guardrail_prometheus::query::ResponseError;
use guardrail_test_support::http::read_request;

const OK: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"42"]}]}}"#;

/// A server answering request i with `script[i]` (status, body), the last entry thereafter.
/// `None` as status means: read the request and never answer.
fn serve(script: Vec<(Option<u16>, &'static str)>) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let i = h.fetch_add(1, Ordering::SeqCst);
            // The script answers even a request that arrived cut short.
            let _ = read_request(&mut s);
            let (status, body) = script[i.min(script.len() - 1)];
            match status {
                None => held.push(s),
                Some(code) => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            }
        }
    });
    (url, hits)
}

fn at() -> jiff::Timestamp {
    "2026-12-01T06:00:00Z".parse().unwrap()
}

#[test]
fn a_503_is_retried_and_the_next_answer_used() {
    let (url, hits) =
        serve(vec![(Some(503), r#"{"status":"error","errorType":"unavailable","error":"starting"}"#), (Some(200), OK)]);
    let a = Client::new(&url, 2000, 2).unwrap().query("up", at());
    assert_eq!(a.attempts, 2);
    assert_eq!(a.result.unwrap()[0].value, 42.0);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test]
fn retries_are_bounded() {
    let (url, hits) = serve(vec![(Some(503), "busy")]);
    let a = Client::new(&url, 2000, 2).unwrap().query("up", at());
    assert_eq!(a.attempts, 3);
    let e = a.result.unwrap_err();
    assert!(matches!(&e, QueryFailure::ServerError { status, .. } if status.starts_with("503")), "{e:?}");
    assert!(e.to_string().contains("HTTP 503"), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[test]
fn a_rejected_query_is_not_retried() {
    let (url, hits) =
        serve(vec![(Some(400), r#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#)]);
    let a = Client::new(&url, 2000, 2).unwrap().query("up[", at());
    assert_eq!(a.attempts, 1);
    let e = a.result.unwrap_err();
    assert!(matches!(&e, QueryFailure::Response { error: ResponseError::Prometheus { .. }, .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("{url}/api/v1/query: HTTP 400 Bad Request: Prometheus answered bad_data: parse error at char 4")
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn a_server_that_never_answers_times_out_on_every_attempt() {
    let (url, hits) = serve(vec![(None, "")]);
    let a = Client::new(&url, 200, 1).unwrap().query("up", at());
    assert_eq!(a.attempts, 2);
    let e = a.result.unwrap_err();
    assert!(matches!(e, QueryFailure::Request { what: RequestFailure::TimedOut, .. }), "{e:?}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test]
fn an_answer_that_is_not_prometheus_is_an_error() {
    let (url, _) = serve(vec![(Some(200), "<html>proxy login</html>")]);
    let a = Client::new(&url, 2000, 2).unwrap().query("up", at());
    assert_eq!(a.attempts, 1);
    let e = a.result.unwrap_err();
    assert!(matches!(e, QueryFailure::Response { error: ResponseError::NotJson { .. }, .. }), "{e:?}");
    assert!(e.to_string().contains("the response is not JSON"), "{e}");
}

#[test]
fn a_ca_file_without_a_certificate_is_refused() {
    // The text of a file that is not PEM: no certificate to trust, so no client.
    let e = Client::with_ca("https://127.0.0.1:9", 100, 0, Some(b"hello\n")).unwrap_err();
    assert!(e.to_string().contains("holds no certificate"), "{e}");
    // Without a CA, an https:// client is built (the built-in roots).
    assert!(Client::with_ca("https://127.0.0.1:9", 100, 0, None).is_ok());
}
