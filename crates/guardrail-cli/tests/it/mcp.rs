//! `guardrail mcp` over stdio with rmcp's client driving the built binary as a child process,
//! and the independent client (the official Python SDK, `scripts/mcp_client_check.py`) over
//! stdio and streamable HTTP (`guardrail mcp --http`).

use std::path::PathBuf;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

const NOW: &str = "2026-11-24T10:00:00Z";

fn repo() -> PathBuf {
    guardrail_test_support::workspace_root()
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["config", "data"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    for f in ["config/policies.yaml", "config/slos.yaml", "data/metrics.json", "data/cost.json"] {
        std::fs::copy(repo().join("examples/deploy-gate").join(f), dir.path().join(f)).unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .arg("kb")
        .arg("load")
        .arg(repo().join("examples/governor/sample_data.json"))
        .arg("--kb")
        .arg(dir.path().join("kb.db"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

fn call(name: &'static str, v: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name).with_arguments(v.as_object().cloned().unwrap_or_default())
}

fn body(r: &CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_lists_and_calls_every_tool_over_stdio() {
    let dir = fixture();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_guardrail"));
    cmd.arg("mcp")
        .arg("--root")
        .arg(dir.path())
        .arg("--kb")
        .arg(dir.path().join("kb.db"))
        .arg("--store")
        .arg(dir.path().join("audit.db"))
        .arg("--logs")
        .arg(repo().join("examples/governor/logs.ndjson"))
        .args(["--now", NOW])
        .env_remove("GUARDRAIL_STORE")
        .env_remove("GUARDRAIL_KB");
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.expect("initialize over stdio");
    let info = client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().map(|s| s.name.as_str()), Some("guardrail"));

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    let registry = guardrail_governor::ToolRegistry::guardrail();
    let want: Vec<String> = registry.tools().iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, want);
    assert_eq!(names.len(), 10);

    let incident = json!({"id": "inc-001", "service": "payments-api", "severity": "high",
        "summary": "P99 latency jumped from 220ms to 1400ms", "symptoms": "timeouts, db connection saturation"});
    let good = [
        ("search_runbooks", json!({"query": "latency db connections", "service": "payments-api"})),
        ("search_evidence", json!({"query": "restart", "service": "payments-api", "top_k": 5})),
        ("check_policy_conflicts", json!({"service": "payments-api", "action": "restart_service", "severity": "low"})),
        ("query_live_logs", json!({"service": "payments-api", "window_minutes": 30})),
        ("slo_status", json!({})),
        ("cost_status", json!({})),
        ("evaluate_deploy", json!({})),
        ("explain_decision", json!({})),
        ("propose_remediation", json!({"incident": incident})),
        ("incident_status", json!({})),
    ];
    for (name, args) in good {
        let r = client.call_tool(call(name, args)).await.unwrap();
        assert_ne!(r.is_error, Some(true), "{name}: {r:?}");
        assert!(body(&r).is_object(), "{name}");
        // Results are checked against the listed outputSchema in guardrail-mcp's tests and by the
        // Python SDK client below; here: every tool lists one.
        let listed = tools.iter().find(|t| t.name == name).unwrap();
        assert!(listed.output_schema.is_some(), "{name}: no outputSchema");
    }
    let records = || {
        let spec = dir.path().join("audit.db").display().to_string();
        guardrail::audit_cmd::open(&spec).unwrap().all().unwrap().len()
    };
    assert_eq!(records(), 0, "nothing asked to record, nothing recorded");

    // The same decision as `guardrail gate` on the same inputs.
    let r = client.call_tool(call("evaluate_deploy", json!({"record": true}))).await.unwrap();
    let mcp = body(&r);
    assert_eq!(mcp["recorded"], true);
    assert_eq!(records(), 1);
    assert_eq!(mcp["requested_by"]["via"], "mcp-stdio");
    let gate = std::process::Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .arg("gate")
        .arg("--root")
        .arg(dir.path())
        .arg("--store")
        .arg(dir.path().join("gate-audit.db"))
        .args(["--now", NOW, "--format", "json"])
        .output()
        .unwrap();
    let gate: Value = serde_json::from_slice(&gate.stdout).unwrap();
    for k in ["action", "policy_id", "reason", "delay_minutes", "signals", "conditions"] {
        assert_eq!(mcp[k], gate[k], "{k}");
    }

    // The incident recorded by `guardrail incident run` shows in incident_status.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["incident", "run"])
        .arg(repo().join("examples/governor/scenarios/incident_high.json"))
        .args(["--now", NOW, "--format", "json"]) // no tokens file: the proposer is the OS account
        .env_remove("GUARDRAIL_TOKENS")
        .arg("--kb")
        .arg(dir.path().join("kb.db"))
        .arg("--store")
        .arg(dir.path().join("audit.db"))
        .output()
        .unwrap();
    let ran: Value = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
    let id = ran.pointer("/results/0/incident_id").and_then(Value::as_str).unwrap_or_default();
    assert!(!id.is_empty(), "{ran}");
    // A proposal for the same incident is the decision `incident run` recorded (it ran without
    // deploy signals), bound to the same hash, and still records nothing.
    let scenario: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("examples/governor/scenarios/incident_high.json")).unwrap(),
    )
    .unwrap();
    let before = records();
    let p = body(
        &client
            .call_tool(call("propose_remediation", json!({"incident": scenario, "deploy_signals": false})))
            .await
            .unwrap(),
    );
    assert_eq!(p["decision"], ran["results"][0]["decision"], "{p}");
    assert_eq!(p["action"], ran["results"][0]["action"], "{p}");
    assert_eq!(p["binding_hash"], ran["results"][0]["binding_hash"]);
    assert_eq!(p["rule"], ran["results"][0]["rule"]);
    assert_eq!(p["deploy_signals_used"], false);
    assert_eq!(records(), before);
    let all = body(&client.call_tool(call("incident_status", json!({}))).await.unwrap());
    let listed = all["incidents"].as_array().unwrap();
    assert!(listed.iter().any(|i| i["incident_id"] == id), "{all}");
    let one = body(&client.call_tool(call("incident_status", json!({"incident_id": id}))).await.unwrap());
    assert_eq!(one["status"], "awaiting_approval", "{one}");
    // The pending request is the approval_request `incident run` appended (the newest record).
    let chain = guardrail::audit_cmd::open(&dir.path().join("audit.db").display().to_string()).unwrap().all().unwrap();
    let request = chain.iter().rev().find(|r| r.kind == "approval_request").expect("an approval request");
    assert_eq!(one["request_record"], json!(request.id()), "{one}");
    assert_eq!(one["pending"]["request_record"], json!(request.id()), "{one}");
    let r = client.call_tool(call("incident_status", json!({"incident_id": "no-such"}))).await.unwrap();
    assert_eq!(r.is_error, Some(true));

    // Bad arguments, unknown tool.
    let r = client
        .call_tool(call(
            "check_policy_conflicts",
            json!({"service": "payments-api", "action": "x", "severity": "urgent"}),
        ))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(body(&r)["error"].as_str().unwrap().contains("severity"));
    let r = client.call_tool(call("search_runbooks", json!({"query": "x", "service": "bad service!"}))).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(client.call_tool(call("no_such_tool", json!({}))).await.is_err());

    // Stdio has no role check, and a recording evaluate_deploy that cannot decide appends a
    // deploy_error (over stdio the local user sees the file's full path).
    let policies = dir.path().join("config/policies.yaml");
    let text = std::fs::read_to_string(&policies).unwrap();
    std::fs::write(&policies, text.replacen("error_budget_pct:", "error_budget_percent:", 1)).unwrap();
    let before = records();
    let r = client.call_tool(call("evaluate_deploy", json!({"record": true}))).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    let msg = body(&r)["error"].as_str().unwrap().to_string();
    assert!(msg.contains("could not decide: ") && msg.contains("(recorded as deploy_error audit record"), "{msg}");
    assert!(msg.contains(&policies.display().to_string()), "{msg}");
    assert_eq!(records(), before + 1);
    client.cancel().await.unwrap();
}

/// `guardrail mcp` over stdio with piped standard streams, for raw JSON-RPC lines.
fn stdio_server(dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .arg("mcp")
        .arg("--root")
        .arg(dir)
        .arg("--kb")
        .arg(dir.join("kb.db"))
        .arg("--store")
        .arg(dir.join("audit.db"))
        .args(["--now", NOW])
        .env_remove("GUARDRAIL_STORE")
        .env_remove("GUARDRAIL_KB")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;

/// Waits for the server to exit with standard input held open, as a client that closed only
/// standard output would. If the server failed to notice the hang-up, standard input is closed
/// after a while so the test fails on the exit code (0) instead of hanging.
fn exit_with_stdin_open(mut child: std::process::Child) -> (Option<i32>, String) {
    use std::io::Read;
    let stdin = child.stdin.take();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _ = wait.recv_timeout(std::time::Duration::from_secs(120));
        drop(stdin);
    });
    let status = child.wait().unwrap();
    let _ = done.send(());
    holder.join().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.code(), stderr)
}

/// The client hangs up (closes the server's standard output): a quiet, distinct exit (141, as a
/// shell reports a writer whose reader left), whether it happens during initialization or
/// after; the recording calls the server had read have finished, their records whole.
#[test]
fn a_client_that_closes_standard_output_ends_the_stdio_server_quietly_with_141() {
    use std::io::{BufRead, Write};
    assert_eq!(guardrail::mcp_cmd::CLIENT_GONE_EXIT, 141);
    let dir = fixture();

    // Before initialization: the initialize answer cannot be written.
    let mut child = stdio_server(dir.path());
    drop(child.stdout.take());
    writeln!(child.stdin.as_mut().unwrap(), "{INITIALIZE}").unwrap();
    let (code, stderr) = exit_with_stdin_open(child);
    assert_eq!(code, Some(141), "{stderr}");
    assert_eq!(stderr, "", "nothing is printed");

    // After initialization, with recording calls sent after the hang-up: the first answer
    // cannot be written, the session ends, and every call the server started has recorded.
    let mut child = stdio_server(dir.path());
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let stdin = child.stdin.as_mut().unwrap();
    writeln!(stdin, "{INITIALIZE}").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("\"serverInfo\""), "{line}");
    writeln!(stdin, r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#).unwrap();
    drop(out);
    for id in 2..5 {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "evaluate_deploy", "arguments": {"record": true}}});
        // The server may already have stopped reading.
        let _ = writeln!(stdin, "{call}");
    }
    let (code, stderr) = exit_with_stdin_open(child);
    assert_eq!(code, Some(141), "{stderr}");
    assert_eq!(stderr, "");
    let spec = dir.path().join("audit.db").display().to_string();
    let records = guardrail::audit_cmd::open(&spec).unwrap().all().unwrap();
    assert!((1..=3).contains(&records.len()), "{} records", records.len());
    assert!(records.iter().all(|r| r.kind == "deploy_decision"));
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["audit", "verify", "--store", &spec])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));

    // Closing standard input (MCP's shutdown for stdio) is still a clean exit 0.
    let mut child = stdio_server(dir.path());
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    writeln!(child.stdin.as_mut().unwrap(), "{INITIALIZE}").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// The official Python SDK as an independent client. scripts/test installs it and sets
/// GUARDRAIL_MCP_PYTHON; with GUARDRAIL_REQUIRE_MCP_PYTHON=1 (also set there) a missing
/// interpreter fails the test instead of skipping it.
#[test]
fn python_sdk_client_drives_both_transports() {
    let Some(python) = std::env::var_os("GUARDRAIL_MCP_PYTHON").filter(|p| !p.is_empty()) else {
        assert!(
            std::env::var("GUARDRAIL_REQUIRE_MCP_PYTHON").as_deref() != Ok("1"),
            "GUARDRAIL_MCP_PYTHON (a python with the `mcp` package) is required"
        );
        eprintln!("skipped: set GUARDRAIL_MCP_PYTHON to a python with the `mcp` package (scripts/test does)");
        return;
    };
    let out = std::process::Command::new(python)
        .arg(repo().join("scripts/mcp_client_check.py"))
        .arg(env!("CARGO_BIN_EXE_guardrail"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("stdio: 10 tools listed and called"), "{stdout}");
    assert!(stdout.contains("http: 10 tools listed and called"), "{stdout}");
    assert!(stdout.contains("http: missing and wrong tokens refused with 401"), "{stdout}");
    assert!(stdout.contains("serve --mcp: 10 tools listed and called"), "{stdout}");
    assert!(stdout.contains("serve --mcp: missing and wrong tokens refused with 401"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Session termination failed"), "the SDK's DELETE is answered 204: {stderr}");
}

/// A `guardrail serve` child process, killed on drop.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_mcp_mounts_the_tools_at_slash_mcp_beside_the_api() {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use std::io::{BufRead, Read, Write};

    let dir = fixture();
    let token = "serve-mcp-token-51ab";
    let viewer = "serve-mcp-viewer-token-0c4e";
    let hash_of = |t: &str| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_guardrail"))
            .args(["token", "hash"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(t.as_bytes()).unwrap();
        String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap().trim().to_string()
    };
    let (hash, viewer_hash) = (hash_of(token), hash_of(viewer));
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!(
            "tokens:\n  - sha256: {hash}\n    identity: mcp-client\n    role: deployer\n  - sha256: {viewer_hash}\n    identity: reader\n    role: viewer\n"
        ),
    )
    .unwrap();

    // Without a tokens file --mcp refuses to start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["serve", "--mcp", "--bind", "127.0.0.1:0", "--root"])
        .arg(dir.path())
        .env_remove("GUARDRAIL_TOKENS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mcp needs --tokens"));

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["serve", "--mcp", "--bind", "127.0.0.1:0", "--now", NOW, "--root"])
        .arg(dir.path())
        .arg("--tokens")
        .arg(&tokens)
        .arg("--kb")
        .arg(dir.path().join("kb.db"))
        .arg("--store")
        .arg(dir.path().join("audit.db"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let _served = Served(child);
    let mut url = String::new();
    for _ in 0..10 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(u) = line.trim().strip_prefix("guardrail serve: MCP (streamable HTTP) at ") {
            url = u.to_string();
            break;
        }
    }
    assert!(url.ends_with("/mcp"), "no MCP address announced");
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = stderr.read_to_string(&mut sink);
    });

    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.clone()).auth_header(token),
    );
    let client = ().serve(transport).await.expect("initialize over serve --mcp");
    assert_eq!(client.list_all_tools().await.unwrap().len(), 10);
    let r = client.call_tool(call("evaluate_deploy", json!({}))).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let mcp_decision = body(&r);
    let r = client
        .call_tool(call("search_runbooks", json!({"query": "latency", "service": "payments-api"})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    client.cancel().await.unwrap();

    // A viewer token (from the tokens file's roles) reads, and may not propose.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.clone()).auth_header(viewer),
    );
    let client = ().serve(transport).await.expect("initialize with a viewer token");
    let r = client.call_tool(call("slo_status", json!({}))).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let incident =
        json!({"id": "inc-v", "service": "payments-api", "severity": "high", "summary": "s", "symptoms": "s"});
    let e = client.call_tool(call("propose_remediation", json!({"incident": incident}))).await.unwrap_err();
    assert!(e.to_string().contains("needs a deployer (or admin) token; this token's role is viewer"), "{e}");
    client.cancel().await.unwrap();

    // The API on the same port gives the same decision; a wrong token gets no MCP session.
    let addr = url.trim_start_matches("http://").trim_end_matches("/mcp").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(s, "GET /api/decision HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let json_start = resp.find("\r\n\r\n").map(|i| i + 4).unwrap_or(0);
    let api: Value = serde_json::from_str(resp[json_start..].trim()).unwrap_or(Value::Null);
    assert_eq!(api["data"]["action"], mcp_decision["action"], "{resp}");
    assert_eq!(api["data"]["policy_id"], mcp_decision["policy_id"]);
    let wrong = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).auth_header("wrong"),
    );
    assert!(().serve(wrong).await.is_err());
}
