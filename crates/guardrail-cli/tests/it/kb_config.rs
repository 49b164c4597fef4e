//! The governor config's `knowledge:` block reaches every command that uses knowledge, through
//! the real binary and the loopback Elasticsearch of guardrail-test-support (`elastic::FakeEs`):
//! `kb load|stats|search|review` and `incident run|resolve` read and write the block's cluster
//! (its index names, its credentials variable), `query_live_logs` answers from its logs index,
//! and a cluster that is not there, or a logs index that cannot answer, decides nothing (exit 3,
//! the reason named) — never a plan from empty knowledge or "no logs".

use std::path::{Path, PathBuf};

use guardrail_governor::record::{DecisionBody, decode};
use guardrail_test_support::elastic::FakeEs;
use serde_json::{Value, json};

use crate::common::{guardrail, run};

const KEY: &str = "a2V5OnNlY3JldA==";

fn examples() -> PathBuf {
    guardrail_test_support::examples("governor")
}

/// A working directory whose `.guardrail/governor.yaml` is the bundled config plus a
/// `knowledge:` block for `url` (custom index names, the API key in `ES_TEST_KEY`).
fn workdir(url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".guardrail")).unwrap();
    let mut text = std::fs::read_to_string(examples().join("governor.yaml")).unwrap();
    text.push_str(&format!(
        "knowledge:\n  backend: elasticsearch\n  url: {url}\n  indices:\n    runbooks: team-runbooks\n    evidence: team-evidence\n    policies: team-policies\n    logs: team-logs\n  api_key_env: ES_TEST_KEY\n  timeout_ms: 2000\n  retries: 0\n"
    ));
    std::fs::write(dir.path().join(".guardrail/governor.yaml"), text).unwrap();
    dir
}

/// `guardrail ARGS` in `dir` as `user` (presenting the user's test token), with the block's key
/// set and nothing else naming a knowledge base, a config or credentials.
fn gr(dir: &Path, user: &str, args: &[&str]) -> (i32, String, String) {
    let tokens = crate::common::write_test_tokens(dir);
    let mut args = args.to_vec();
    if matches!(args.get(..2), Some(["incident", _] | ["kb", "review"])) {
        args.extend(["--as", user]);
    }
    let mut c = guardrail();
    for k in [
        "GUARDRAIL_KB",
        "GUARDRAIL_GOVERNOR_CONFIG",
        "GUARDRAIL_TOKENS",
        "GUARDRAIL_USER",
        "GUARDRAIL_ES_API_KEY",
        "GUARDRAIL_ES_USERNAME",
        "GUARDRAIL_ES_PASSWORD",
        "GUARDRAIL_ES_CA_FILE",
    ] {
        c.env_remove(k);
    }
    c.current_dir(dir).env("GUARDRAIL_TOKENS", tokens).env("ES_TEST_KEY", KEY).args(crate::common::as_token(&args));
    run(c)
}

/// Kibana's sample web-logs shape: `timestamp`, `host`, `response` as text, `bytes`.
fn log(at: &str, host: &str, response: &str, bytes: u64) -> Value {
    json!({"timestamp": at, "host": host, "response": response, "bytes": bytes, "request": "/v1/charge"})
}

fn decisions(dir: &Path) -> Vec<DecisionBody> {
    let (code, out, err) =
        gr(dir, "alice", &["audit", "list", "--kind", "remediation_decision", "--format", "json", "--limit", "100"]);
    assert_eq!(code, 0, "{err}");
    let records: Vec<Value> = serde_json::from_str(&out).unwrap();
    records.iter().map(|r| decode::<DecisionBody>(&r["body"]).unwrap()).collect()
}

/// A loopback cluster taking the block's API key, and a working directory whose block names it.
fn cluster() -> (FakeEs, tempfile::TempDir) {
    let es = FakeEs::start();
    es.require_auth(&format!("ApiKey {KEY}"));
    let dir = workdir(&es.url);
    (es, dir)
}

/// `kb load` of the bundled sample data into the block's cluster.
fn load_sample(dir: &Path) {
    let sample = examples().join("sample_data.json");
    let (code, _, err) = gr(dir, "alice", &["kb", "load", sample.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

/// `incident run` of the bundled high-severity incident as carol at 10:00, with `extra` args.
fn run_high(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let incident = examples().join("scenarios/incident_high.json");
    let mut args = vec!["incident", "run", incident.to_str().unwrap(), "--now", "2026-11-24T10:00:00Z"];
    args.extend_from_slice(extra);
    gr(dir, "carol", &args)
}

#[test]
fn the_knowledge_block_reaches_kb_incident_and_live_logs() {
    let (es, dir) = cluster();
    let d = dir.path();
    let sample = examples().join("sample_data.json");

    // kb load: the block's indices, created and filled on the cluster (no local file).
    let (code, out, err) = gr(d, "alice", &["kb", "load", sample.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("→ {}", es.url)), "{out}");
    assert!(es.mapping("team-runbooks").is_some() && es.mapping("runbooks-demo").is_none());
    assert!(!d.join(".guardrail/knowledge.db").exists(), "nothing written to the default file");

    // kb stats and kb search answer from it, as the SQLite store answers the same data.
    let (code, out, err) = gr(d, "alice", &["kb", "stats", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"runbooks_reviewed": 3, "runbooks_unreviewed": 0, "evidence": 5, "policies": 2})
    );
    let (code, out, _) = gr(d, "alice", &["kb", "stats"]);
    assert_eq!(code, 0);
    assert!(out.starts_with(&format!("knowledge base {}\n", es.url)), "{out}");
    let search = ["kb", "search", "latency db connection", "--service", "payments-api", "--format", "json"];
    let (code, out, err) = gr(d, "alice", &search);
    assert_eq!(code, 0, "{err}");
    let ids = |out: &str| -> Vec<String> {
        let rows: Vec<Value> = serde_json::from_str(out).unwrap();
        rows.iter().map(|r| r["id"].as_str().unwrap_or_default().to_string()).collect()
    };
    let from_es = ids(&out);
    let (code, _, err) = gr(d, "alice", &["kb", "load", sample.to_str().unwrap(), "--kb", "local.db"]);
    assert_eq!(code, 0, "{err}");
    let mut local = search.to_vec();
    local.extend(["--kb", "local.db"]);
    let (code, out, _) = gr(d, "alice", &local);
    assert_eq!(code, 0);
    assert!(!from_es.is_empty());
    assert_eq!(from_es, ids(&out), "the same runbooks in the same order as the SQLite store");

    // incident run plans from the cluster; query_live_logs reads the block's logs index.
    es.index_docs(
        "team-logs",
        &[
            ("l1", log("2026-11-24T09:47:12.000Z", "payments-api", "200", 5120)),
            ("l2", log("2026-11-24T09:49:03.000Z", "payments-api", "504", 312)),
            ("l3", log("2026-11-24T09:52:40.000Z", "payments-api", "503", 298)),
            ("l4", log("2026-11-24T09:55:00.000Z", "payments-api", "404", 100)),
            ("l5", log("2026-11-24T09:56:00.000Z", "checkout-web", "500", 100)),
            ("l6", log("2026-11-24T09:30:00.000Z", "payments-api", "500", 100)),
        ],
    );
    let (code, out, err) = run_high(d, &[]);
    assert_eq!(code, 10, "high severity: blocked, awaiting approval\n{out}{err}");
    let body = decisions(d).pop().expect("a decision recorded");
    assert_eq!(body.knowledge_base, es.url);
    assert_eq!(body.logs.as_deref(), Some(format!("elasticsearch:{}/team-logs", es.url).as_str()));
    let trace = body.outcome["trace"].as_array().cloned().unwrap_or_default();
    let logs = trace.iter().find(|t| t["tool"] == "query_live_logs").expect("query_live_logs in the trace");
    assert_eq!(logs["ok"], true, "{logs}");
    let r = &logs["result"];
    assert_eq!((r["available"].as_bool(), r["total"].as_u64()), (Some(true), Some(4)), "{r}");
    assert_eq!((r["error_count"].as_u64(), r["server_error_count"].as_u64()), (Some(3), Some(2)), "{r}");
    assert_eq!(r["error_rate"].as_f64(), Some(0.5), "{r}");
    let sent = es.log();
    assert!(sent.iter().any(|(line, _)| line == "POST /team-logs/_search"), "{sent:?}");

    // incident resolve learns into the cluster's runbooks index; kb review (another person)
    // marks it reviewed there.
    let (code, out, err) = gr(
        d,
        "carol",
        &[
            "incident",
            "resolve",
            "inc-live-001",
            "--summary",
            "drained the db pool and restarted the api pods",
            "--action",
            "restart_api_pods",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let id =
        v["results"][0]["runbook"]["id"].as_str().unwrap_or_else(|| panic!("the learned runbook: {v}")).to_string();
    let learned = es.doc("team-runbooks", &id).expect("the learned runbook is in the block's index");
    assert_eq!(learned["reviewed"], false, "{learned}");
    let (code, out, err) = gr(d, "carol", &["kb", "review", &id]);
    assert_eq!(code, 11, "who learned it cannot review it\n{out}{err}");
    let (code, out, err) = gr(d, "bob", &["kb", "review", &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(es.doc("team-runbooks", &id).unwrap()["reviewed"], true);
    let (_, out, _) = gr(d, "alice", &["kb", "stats", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["runbooks_reviewed"], 4);
}

/// A block whose cluster is not there: every command that needs knowledge exits 3 naming the
/// cluster, and nothing plans, learns or reviews; `--kb` still wins over the block.
#[test]
fn a_block_whose_cluster_is_down_decides_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = workdir(&url);
    let d = dir.path();
    let sample = examples().join("sample_data.json");
    let incident = examples().join("scenarios/incident_high.json");
    for args in [
        vec!["kb", "stats"],
        vec!["kb", "search", "latency", "--service", "payments-api"],
        vec!["kb", "load", sample.to_str().unwrap()],
        vec!["kb", "review", "rb-x"],
        vec!["incident", "run", incident.to_str().unwrap()],
        vec!["incident", "resolve", "inc-live-001", "--summary", "s", "--action", "restart_api_pods"],
    ] {
        let (code, out, err) = gr(d, "bob", &args);
        assert_eq!(code, 3, "{args:?}: {out}{err}");
        assert!(err.contains(&format!("knowledge backend {url} unavailable")), "{args:?}: {err}");
        assert!(!out.contains("no reviewed runbooks") && !out.contains("EXECUTED"), "{args:?}: {out}");
    }
    assert!(decisions(d).is_empty(), "no decision from empty knowledge");

    // The block's credentials variable unset: refused before anything is contacted.
    let mut c = guardrail();
    c.current_dir(d).env_remove("GUARDRAIL_KB").env_remove("ES_TEST_KEY").env("USER", "bob").args(["kb", "stats"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 3);
    assert!(err.contains("knowledge: ES_TEST_KEY is not set"), "{err}");

    // --kb names a file: that file is used, not the block's cluster.
    let (code, out, err) = gr(d, "bob", &["kb", "load", sample.to_str().unwrap(), "--kb", "k.db"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = gr(d, "bob", &["kb", "stats", "--kb", "k.db"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("knowledge base k.db\n"), "{out}");
}

/// The knowledge answers but its logs index does not (missing, or the cluster fails the logs
/// search): the run cannot decide, recorded as such with the logs index named — never a plan
/// stressed as if the logs were quiet.
#[test]
fn a_logs_index_that_cannot_answer_blocks_the_run() {
    let (_es, dir) = cluster();
    let d = dir.path();
    load_sample(d);
    let (code, out, err) = run_high(d, &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("team-logs") && err.contains("index_not_found_exception"), "{err}");
    assert!(decisions(d).is_empty(), "nothing decided without the logs");
    let (code, out, _) = gr(d, "alice", &["audit", "list", "--kind", "remediation_error", "--format", "json"]);
    assert_eq!(code, 0);
    assert!(out.contains("team-logs"), "the error is recorded with the logs index: {out}");

    // A logs file given on the command line wins over the cluster's logs index.
    let logs = examples().join("logs.ndjson");
    let (code, out, err) = run_high(d, &["--logs", logs.to_str().unwrap()]);
    assert_eq!(code, 10, "{out}{err}");
    let body = decisions(d).pop().unwrap();
    assert_eq!(body.logs.as_deref(), Some(format!("ndjson:{}", logs.display()).as_str()));
}

/// `live_logs: false` keeps the cluster as the knowledge base only: the same cluster without a
/// logs index decides (`query_live_logs` is "not configured", as with no logs source), and
/// nothing asks the cluster for logs.
#[test]
fn live_logs_false_runs_without_the_logs_index() {
    let (es, dir) = cluster();
    let d = dir.path();
    let cfg = d.join(".guardrail/governor.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("    logs: team-logs\n", "  live_logs: false\n");
    std::fs::write(&cfg, text).unwrap();
    load_sample(d);
    let (code, out, err) = run_high(d, &[]);
    assert_eq!(code, 10, "decided (awaiting approval), not stopped on a logs index: {out}{err}");
    let body = decisions(d).pop().expect("the decision");
    assert_eq!(body.logs, None, "no logs source");
    assert!(!es.lines().iter().any(|l| l.contains("logs")), "the cluster was never asked for logs: {:?}", es.lines());
}

/// `guardrail mcp` (stdio) takes the knowledge base from the block too: the retrieval tools
/// answer from the cluster, `query_live_logs` from its logs index; a cluster that is not there
/// is a tool error of kind `knowledge`, never an empty list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrail_mcp_over_stdio_reads_the_blocks_cluster() {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;

    let (es, dir) = cluster();
    let d = dir.path().to_path_buf();
    guardrail_test_support::copy_deploy_gate_inputs(&d);
    load_sample(&d);
    es.index_docs(
        "team-logs",
        &[
            ("l1", log("2026-11-24T09:58:00.000Z", "payments-api", "502", 10)),
            ("l2", log("2026-11-24T09:59:00.000Z", "payments-api", "200", 30)),
        ],
    );
    let call = |name: &'static str, v: Value| {
        CallToolRequestParams::new(name).with_arguments(v.as_object().cloned().unwrap_or_default())
    };
    let start = |url_dir: &Path| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_guardrail"));
        cmd.current_dir(url_dir).args(["mcp", "--now", "2026-11-24T10:00:00Z"]).env("ES_TEST_KEY", KEY);
        for k in ["GUARDRAIL_KB", "GUARDRAIL_STORE", "GUARDRAIL_GOVERNOR_CONFIG", "GUARDRAIL_ES_API_KEY"] {
            cmd.env_remove(k);
        }
        rmcp::transport::TokioChildProcess::new(cmd).unwrap()
    };
    let client = ().serve(start(&d)).await.expect("initialize over stdio");
    let r = client
        .call_tool(call("search_runbooks", json!({"query": "latency db connections", "service": "payments-api"})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let hits = r.structured_content.clone().unwrap_or(Value::Null);
    assert!(hits.to_string().contains("payments-api"), "{hits}");
    let r = client.call_tool(call("query_live_logs", json!({"service": "payments-api"}))).await.unwrap();
    let v = r.structured_content.clone().unwrap_or(Value::Null);
    assert_eq!(
        (v["available"].as_bool(), v["total"].as_u64(), v["server_error_count"].as_u64()),
        (Some(true), Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(v["source"], format!("elasticsearch:{}/team-logs", es.url));
    client.cancel().await.unwrap();

    // The same block, the cluster gone.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = workdir(&format!("http://127.0.0.1:{port}"));
    guardrail_test_support::copy_deploy_gate_inputs(down.path());
    let client = ().serve(start(down.path())).await.expect("initialize over stdio");
    let r = client
        .call_tool(call("search_runbooks", json!({"query": "latency", "service": "payments-api"})))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true), "{r:?}");
    let v = r.structured_content.clone().unwrap_or(Value::Null);
    assert_eq!(v["kind"], "knowledge", "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("unavailable"), "{v}");
    let r = client.call_tool(call("query_live_logs", json!({"service": "payments-api"}))).await.unwrap();
    assert_eq!(r.is_error, Some(true), "no logs is not quiet logs: {r:?}");
    client.cancel().await.unwrap();
}
