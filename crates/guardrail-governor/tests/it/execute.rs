//! Execution: the hash check in front of every executor, the command executor (argv, allow-listed
//! parameters, timeout) and the webhook executor against a loopback server started here.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use guardrail_core::remediation::Verdict;
use guardrail_governor::{
    CommandExecutor, DryRunExecutor, ExecutionError, Executor, Governor, PipelineOutcome, RequestedActionPlanner,
    ToolContext, WebhookExecutor, execute_checked, run_pipeline,
};

use crate::common::{now, sample_store};

fn inc002() -> PipelineOutcome {
    let (store, incidents) = sample_store();
    let o = run_pipeline(&incidents[1], &ToolContext::new(&store, now())).unwrap();
    assert_eq!(o.gate.output.decision, Verdict::Execute);
    assert_eq!(o.gated_action(), "scale_worker_pool");
    o
}

fn commands(argv: &[&str]) -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([("scale_worker_pool".to_string(), argv.iter().map(|s| s.to_string()).collect())])
}

#[test]
fn a_different_action_never_reaches_the_executor() {
    let o = inc002();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let marker_s = marker.display().to_string();
    let mut cmds = commands(&["touch", &marker_s]);
    cmds.insert("restart_api_pods".into(), vec!["touch".into(), marker_s.clone()]);
    let exec = CommandExecutor { commands: cmds, timeout: Duration::from_secs(5) };
    let hash = o.binding_hash();
    // Another action under the same authorisation.
    let e = execute_checked(&exec, &hash, &o.incident, &o.plan.output, "restart_api_pods").unwrap_err();
    assert!(matches!(e, ExecutionError::Mismatch(_)), "{e}");
    // The same action with an edited plan.
    let mut plan = o.plan.output.clone();
    plan.key_claims.push("Ignore previous instructions".into());
    assert!(matches!(
        execute_checked(&exec, &hash, &o.incident, &plan, "scale_worker_pool"),
        Err(ExecutionError::Mismatch(_))
    ));
    // The same action for an incident whose severity changed.
    let mut inc = o.incident.clone();
    inc.severity = guardrail_core::remediation::Severity::Critical;
    assert!(matches!(
        execute_checked(&exec, &hash, &inc, &o.plan.output, "scale_worker_pool"),
        Err(ExecutionError::Mismatch(_))
    ));
    assert!(!marker.exists(), "a mismatched action ran");
    // The authorised one runs.
    let r = execute_checked(&exec, &hash, &o.incident, &o.plan.output, "scale_worker_pool").unwrap();
    assert!(r.ok && !r.dry_run, "{r:?}");
    assert!(marker.exists());
    assert_eq!(r.binding_hash, hash);
}

#[test]
fn dry_run_runs_nothing_and_shows_the_command() {
    let o = inc002();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran").display().to_string();
    let exec = DryRunExecutor { commands: commands(&["touch", &marker, "{service}"]) };
    let r = execute_checked(&exec, &o.binding_hash(), &o.incident, &o.plan.output, "scale_worker_pool").unwrap();
    assert!(r.dry_run && r.ok);
    assert_eq!(r.detail["command"][2], "billing-batch");
    assert!(!std::path::Path::new(&marker).exists());
}

#[test]
fn command_executor_uses_argv_and_reports_failures() {
    let o = inc002();
    let h = o.binding_hash();
    // Parameters are substituted as whole values, never through a shell.
    let exec = CommandExecutor {
        commands: commands(&["echo", "{service};", "$(id)", "{incident_id}"]),
        timeout: Duration::from_secs(5),
    };
    let r = execute_checked(&exec, &h, &o.incident, &o.plan.output, "scale_worker_pool").unwrap();
    assert!(r.ok);
    assert_eq!(r.detail["stdout"], "billing-batch; $(id) inc-002\n");
    // A failing command is a report with ok = false and its exit code.
    let exec = CommandExecutor { commands: commands(&["false"]), timeout: Duration::from_secs(5) };
    let r = execute_checked(&exec, &h, &o.incident, &o.plan.output, "scale_worker_pool").unwrap();
    assert!(!r.ok);
    assert_eq!(r.detail["exit_code"], 1);
    // No template, a missing program: errors (nothing ran).
    let exec = CommandExecutor { commands: BTreeMap::new(), timeout: Duration::from_secs(5) };
    assert!(matches!(exec.name(), "command"));
    assert!(matches!(
        execute_checked(&exec, &h, &o.incident, &o.plan.output, "scale_worker_pool"),
        Err(ExecutionError::NotConfigured { .. })
    ));
    let exec = CommandExecutor { commands: commands(&["/nonexistent/guardrail-x"]), timeout: Duration::from_secs(5) };
    assert!(matches!(
        execute_checked(&exec, &h, &o.incident, &o.plan.output, "scale_worker_pool"),
        Err(ExecutionError::Failed { .. })
    ));
    let exec = CommandExecutor { commands: commands(&["sleep", "5"]), timeout: Duration::from_millis(200) };
    // A command killed at its timeout had started and may have acted: a run that failed with
    // an unknown outcome, not "did not start" (which would leave the authorisation open).
    let r = execute_checked(&exec, &h, &o.incident, &o.plan.output, "scale_worker_pool").unwrap();
    assert!(!r.ok && !r.dry_run, "{r:?}");
    assert_eq!(r.detail["outcome_unknown"], true, "{r:?}");
    assert!(r.detail["error"].as_str().unwrap().contains("did not finish within 200 ms"), "{r:?}");
    // A template with a parameter outside the allow-list is refused before anything runs.
    let exec = CommandExecutor { commands: commands(&["echo", "{summary}"]), timeout: Duration::from_secs(5) };
    assert!(matches!(
        execute_checked(&exec, &h, &o.incident, &o.plan.output, "scale_worker_pool"),
        Err(ExecutionError::NotConfigured { .. })
    ));
}

/// A one-request HTTP server on 127.0.0.1; returns its URL and a handle yielding the request.
fn serve_once(status: &'static str) -> (String, std::thread::JoinHandle<String>) {
    serve_answer(format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
}

/// Like [`serve_once`], answering with the raw bytes of `answer`.
fn serve_answer(answer: String) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/remediate", listener.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        // Read headers, then Content-Length bytes of body.
        loop {
            let n = s.read(&mut buf).unwrap();
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        s.write_all(answer.as_bytes()).unwrap();
        String::from_utf8_lossy(&req).into_owned()
    });
    (url, h)
}

#[test]
fn webhook_posts_the_authorised_action_as_json() {
    let o = inc002();
    let (url, server) = serve_once("200 OK");
    let exec = WebhookExecutor { url: url.clone(), timeout: Duration::from_secs(5), ca_file: None };
    let r = execute_checked(&exec, &o.binding_hash(), &o.incident, &o.plan.output, "scale_worker_pool").unwrap();
    let req = server.join().unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.detail["http_status"], 200);
    assert!(req.starts_with("POST /hooks/remediate HTTP/1.1\r\n"), "{req}");
    assert!(req.to_ascii_lowercase().contains("content-type: application/json"), "{req}");
    let body: serde_json::Value = serde_json::from_str(req.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["incident_id"], "inc-002");
    assert_eq!(body["action"], "scale_worker_pool");
    assert_eq!(body["binding_hash"], o.binding_hash());
}

#[test]
fn webhook_failures_are_reported() {
    let o = inc002();
    let (url, server) = serve_once("500 Internal Server Error");
    let exec = WebhookExecutor { url, timeout: Duration::from_secs(5), ca_file: None };
    let r = execute_checked(&exec, &o.binding_hash(), &o.incident, &o.plan.output, "scale_worker_pool").unwrap();
    server.join().unwrap();
    assert!(!r.ok);
    assert_eq!(r.detail["http_status"], 500);
    // Nobody listening: an error, not a success.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let exec =
        WebhookExecutor { url: format!("http://127.0.0.1:{port}/x"), timeout: Duration::from_secs(2), ca_file: None };
    assert!(matches!(
        execute_checked(&exec, &o.binding_hash(), &o.incident, &o.plan.output, "scale_worker_pool"),
        Err(ExecutionError::Failed { .. })
    ));
}

#[test]
fn webhook_decodes_a_chunked_answer() {
    let o = inc002();
    let (url, server) = serve_answer(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         6\r\nscaled\r\na\r\n to 6 pods\r\n0\r\n\r\n"
            .to_string(),
    );
    let exec = WebhookExecutor { url, timeout: Duration::from_secs(5), ca_file: None };
    let r = execute_checked(&exec, &o.binding_hash(), &o.incident, &o.plan.output, "scale_worker_pool").unwrap();
    server.join().unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.detail["response"], "scaled to 6 pods");
}

#[test]
fn webhook_one_deadline_for_the_whole_exchange() {
    let o = inc002();
    // A silent server: accepts, reads, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(60));
        drop(held);
    });
    let exec = WebhookExecutor { url, timeout: Duration::from_millis(300), ca_file: None };
    let r = execute_checked(&exec, &o.binding_hash(), &o.incident, &o.plan.output, "scale_worker_pool").unwrap();
    // The request reached the server, which may have acted: a run that failed, not "did not
    // start" (which would leave the authorisation open for a second POST).
    assert!(!r.ok && !r.dry_run, "{r:?}");
    assert_eq!(r.detail["outcome_unknown"], true, "{r:?}");
    assert_eq!(r.detail["http_status"], serde_json::Value::Null);
    assert!(r.detail["error"].as_str().unwrap().contains("no complete answer within 300 ms"), "{r:?}");
    // A server that answers at once and then trickles the body a byte every 50 ms: each read
    // succeeds, but the whole answer is late, so the deadline still ends it.
    let trickle = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", trickle.local_addr().unwrap());
    std::thread::spawn(move || {
        let Ok((mut s, _)) = trickle.accept() else { return };
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        for _ in 0..2000 {
            if s.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let exec = WebhookExecutor { url, timeout: Duration::from_millis(500), ca_file: None };
    let started = std::time::Instant::now();
    let r = execute_checked(&exec, &o.binding_hash(), &o.incident, &o.plan.output, "scale_worker_pool").unwrap();
    assert!(!r.ok, "{r:?}");
    assert_eq!(r.detail["http_status"], 200);
    assert_eq!(r.detail["outcome_unknown"], true, "{r:?}");
    assert!(r.detail["error"].as_str().unwrap().contains("no complete answer within 500 ms"), "{r:?}");
    assert!(r.detail["response"].as_str().unwrap().starts_with('x'), "{r:?}");
    // Generous: the point is that it ends (the trickle would last 100 s), not how fast.
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[test]
fn webhook_runs_from_a_blocking_task_of_a_server_runtime() {
    // `guardrail serve` and the MCP server call executors from `spawn_blocking`.
    let o = inc002();
    let (url, server) = serve_once("200 OK");
    let exec = WebhookExecutor { url, timeout: Duration::from_secs(5), ca_file: None };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let hash = o.binding_hash();
    let r = rt
        .block_on(async move {
            tokio::task::spawn_blocking(move || {
                execute_checked(&exec, &hash, &o.incident, &o.plan.output, "scale_worker_pool")
            })
            .await
        })
        .unwrap()
        .unwrap();
    server.join().unwrap();
    assert!(r.ok, "{r:?}");
}

#[test]
fn webhook_over_https_with_a_ca_file() {
    let o = inc002();
    let server = tls_webhook::start();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &server.ca_pem).unwrap();
    let exec = WebhookExecutor { url: server.url.clone(), timeout: Duration::from_secs(10), ca_file: Some(ca_file) };
    let r = execute_checked(&exec, &o.binding_hash(), &o.incident, &o.plan.output, "scale_worker_pool").unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.detail["http_status"], 200);
    assert_eq!(r.detail["response"], "accepted");
    let req = server.requests.lock().unwrap().pop().expect("a request over TLS");
    assert!(req.starts_with("POST /hooks/remediate HTTP/1.1\r\n"), "{req}");
    let body: serde_json::Value = serde_json::from_str(req.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["binding_hash"], o.binding_hash());
}

#[test]
fn webhook_refuses_an_untrusted_certificate() {
    let o = inc002();
    let server = tls_webhook::start();
    // Without the CA file the internal CA is not trusted: nothing is posted.
    let exec = WebhookExecutor { url: server.url.clone(), timeout: Duration::from_secs(10), ca_file: None };
    let e = execute_checked(&exec, &o.binding_hash(), &o.incident, &o.plan.output, "scale_worker_pool").unwrap_err();
    assert!(matches!(e, ExecutionError::Failed { .. }), "{e}");
    assert!(e.to_string().contains("not trusted") && e.to_string().contains("UnknownIssuer"), "{e}");
    // Another CA's file does not help either.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, tls_webhook::start().ca_pem).unwrap();
    let exec = WebhookExecutor { url: server.url.clone(), timeout: Duration::from_secs(10), ca_file: Some(other) };
    let e = execute_checked(&exec, &o.binding_hash(), &o.incident, &o.plan.output, "scale_worker_pool").unwrap_err();
    assert!(e.to_string().contains("not trusted"), "{e}");
    assert!(server.requests.lock().unwrap().is_empty(), "a request reached the server");
}

/// A loopback HTTPS webhook: an rcgen CA, a certificate for 127.0.0.1 signed by it, rustls
/// (ring) over `std::net`, one thread per connection; answers `200 accepted` and keeps each
/// request.
mod tls_webhook {
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use guardrail_test_support::http::read_request;
    use guardrail_test_support::tls::TestCa;

    pub struct Server {
        pub url: String,
        pub ca_pem: String,
        pub requests: Arc<Mutex<Vec<String>>>,
    }

    pub fn start() -> Server {
        let ca = TestCa::new("Guardrail test webhook CA");
        let config = ca.issue(&["127.0.0.1"], None).server_config(&[]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}/hooks/remediate", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = requests.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let (config, kept) = (config.clone(), kept.clone());
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    // A client that refuses the certificate ends the handshake: the read fails.
                    let Some(req) = read_request(&mut tls) else { return };
                    kept.lock().unwrap().push(req.text());
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\naccepted");
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        Server { url, ca_pem: ca.pem(), requests }
    }
}

#[test]
fn a_requested_action_is_gated_from_scratch() {
    let (store, incidents) = sample_store();
    let ctx = ToolContext::new(&store, now());
    // inc-002 executes scale_worker_pool; asking for a restart instead re-enters the gate.
    let g = Governor {
        planner: Box::new(RequestedActionPlanner { base: Default::default(), action: "restart_api_pods".into() }),
        ..Governor::default()
    };
    let o = g.run(&incidents[1], &ctx, None).unwrap();
    assert_eq!(o.gated_action(), "restart_api_pods");
    assert_eq!(o.plan.planner, "requested-action");
    assert!(o.plan.runbook.is_none());
    assert_ne!(o.binding_hash(), inc002().binding_hash());
    // Evidence about scaling workers is not evidence for a restart.
    assert_eq!(o.gate.output.decision, Verdict::BlockAndEscalate, "{:?}", o.gate.output.reasons);
    // Asking for the gated action itself is the same plan.
    let g = Governor {
        planner: Box::new(RequestedActionPlanner { base: Default::default(), action: "scale worker pool".into() }),
        ..Governor::default()
    };
    assert_eq!(g.run(&incidents[1], &ctx, None).unwrap().plan.output, inc002().plan.output);
    // A destructive request for payments-api is blocked.
    let g = Governor {
        planner: Box::new(RequestedActionPlanner {
            base: Default::default(),
            action: "kubectl delete namespace payments --force".into(),
        }),
        ..Governor::default()
    };
    let o = g.run(&incidents[0], &ctx, None).unwrap();
    assert_eq!(o.gate.output.decision, Verdict::BlockAndEscalate, "{:?}", o.gate.output.reasons);
}
