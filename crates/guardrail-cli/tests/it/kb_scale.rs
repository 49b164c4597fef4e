//! `guardrail kb` at scale and against Elasticsearch, through the real binary: directories of
//! knowledge files, a JSON file over the whole-text limit streamed in one transaction, `kb stats`
//! as text and JSON, and `--kb http(s)://…` — answers read from a loopback cluster, failures
//! exit 3 with the reason (never an empty result).

use std::path::Path;

use guardrail_test_support::model::{Reply, serve_with};
use serde_json::Value;

use crate::common::{guardrail, run};

fn kb(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = guardrail();
    c.current_dir(dir).env_remove("GUARDRAIL_KB").args(args);
    for k in ["GUARDRAIL_ES_API_KEY", "GUARDRAIL_ES_USERNAME", "GUARDRAIL_ES_PASSWORD", "GUARDRAIL_ES_CA_FILE"] {
        c.env_remove(k);
    }
    run(c)
}

fn runbook(id: &str, service: &str, body: &str) -> Value {
    serde_json::json!({"id": id, "service": service, "title": "Latency triage", "recommended_action": "restart_api_pods", "body": body})
}

#[test]
fn a_directory_loads_file_by_file_and_stats_print_as_text_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    let rb = |i: usize| runbook(&format!("rb-{i}"), "payments-api", "latency spike restart pods");
    std::fs::write(docs.join("01-runbooks.json"), serde_json::json!({"runbooks": [rb(1), rb(2)]}).to_string()).unwrap();
    std::fs::write(
        docs.join("02-evidence.json"),
        r#"{"evidence": [{"id": "ev-1", "service": "*", "stance": "support", "text": "restart helped"}]}"#,
    )
    .unwrap();
    std::fs::write(
        docs.join("03-triage.md"),
        "---\nservice: billing-batch\nrecommended_action: scale_worker_pool\n---\n# Queue delay\n\nScale workers.\n",
    )
    .unwrap();
    std::fs::write(docs.join("notes.txt"), "not a knowledge file").unwrap();
    let (code, out, err) = kb(dir.path(), &["kb", "load", "docs", "--kb", "kb.db"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().filter(|l| l.contains(" added, ")).count(), 3, "{out}");
    assert!(out.contains("01-runbooks.json: 2 added, 0 unchanged"), "{out}");
    assert!(out.ends_with("knowledge base: 3 reviewed runbook(s), 0 unreviewed, 1 evidence, 0 policies\n"), "{out}");
    assert_eq!(err, "", "no progress drawn when stderr is not a terminal");

    let (code, out, _) = kb(dir.path(), &["kb", "stats", "--kb", "kb.db"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "knowledge base kb.db\n  runbooks           3 reviewed, 0 awaiting review\n  evidence           1\n  policies           0\n"
    );
    let (code, out, _) = kb(dir.path(), &["kb", "stats", "--kb", "kb.db", "--format", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, serde_json::json!({"runbooks_reviewed": 3, "runbooks_unreviewed": 0, "evidence": 1, "policies": 0}));

    // Loading again is idempotent; an empty directory is an error.
    let (code, out, _) = kb(dir.path(), &["kb", "load", "docs", "--kb", "kb.db"]);
    assert_eq!(code, 0);
    assert!(out.contains("01-runbooks.json: 0 added, 2 unchanged"), "{out}");
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let (code, _, err) = kb(dir.path(), &["kb", "load", "empty", "--kb", "kb.db"]);
    assert_eq!(code, 3);
    assert!(err.contains("no .json, .yaml, .yml, .md or .markdown files"), "{err}");
}

/// A JSON file over 16 MiB (the whole-text limit) is streamed in one transaction: it loads, and
/// one bad document at its end leaves the knowledge base as it was.
#[test]
fn a_file_over_the_whole_text_limit_streams_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let filler = "mitigation ".repeat(5_000); // 55,000 characters, under the 64 KiB field limit
    let runbooks: Vec<Value> =
        (0..320).map(|i| runbook(&format!("rb-{i:03}"), "payments-api", &format!("{filler} step{i}"))).collect();
    let big = |runbooks: &[Value]| serde_json::json!({"runbooks": runbooks}).to_string();
    let text = big(&runbooks);
    assert!(text.len() as u64 > guardrail_knowledge::MAX_FILE_BYTES);
    std::fs::write(dir.path().join("big.json"), &text).unwrap();
    let (code, out, err) = kb(dir.path(), &["kb", "load", "big.json", "--kb", "kb.db"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("big.json: 320 added, 0 unchanged → kb.db\n"), "{out}");
    let (code, out, _) = kb(dir.path(), &["kb", "search", "step317", "--service", "payments-api", "--kb", "kb.db"]);
    assert_eq!(code, 0);
    assert!(out.contains("rb-317"), "{out}");

    // Another big file of new runbooks whose last document is bad.
    let mut runbooks: Vec<Value> =
        (0..320).map(|i| runbook(&format!("rb-new-{i:03}"), "payments-api", &format!("{filler} other{i}"))).collect();
    runbooks.push(serde_json::json!({"id": "rb-bad", "service": "payments-api"}));
    std::fs::write(dir.path().join("bad.json"), big(&runbooks)).unwrap();
    let (code, _, err) = kb(dir.path(), &["kb", "load", "bad.json", "--kb", "kb.db"]);
    assert_eq!(code, 3);
    assert!(err.contains("bad.json: runbooks[320].recommended_action: is missing"), "{err}");
    let (_, out, _) = kb(dir.path(), &["kb", "stats", "--kb", "kb.db", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["runbooks_reviewed"], 320, "nothing of bad.json stayed");
}

/// `--kb http://…`: the cluster answers `kb stats` (three index checks, four counts), with the
/// API key from `GUARDRAIL_ES_API_KEY`; a cluster that refuses or is not there is exit 3 with the
/// reason, for `kb search` and `kb load` alike.
#[test]
fn elasticsearch_knowledge_through_the_cli_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let count = r#"{"count":3,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0}}"#;
    let es = serve_with(move |_, req| {
        if !req.head.lines().any(|l| l.eq_ignore_ascii_case("authorization: ApiKey a2V5OnNlY3JldA==")) {
            return Reply::json(
                401,
                r#"{"error":{"root_cause":[{"type":"security_exception","reason":"missing authentication credentials"}],"type":"security_exception","reason":"missing authentication credentials"},"status":401}"#,
            );
        }
        if req.head.starts_with("POST /") && req.head.contains("/_count ") {
            Reply::json(200, count)
        } else {
            Reply::json(
                400,
                r#"{"error":{"root_cause":[],"type":"illegal_argument_exception","reason":"unexpected"},"status":400}"#,
            )
        }
    });
    let mut c = guardrail();
    c.current_dir(dir.path())
        .env("GUARDRAIL_ES_API_KEY", "a2V5OnNlY3JldA==")
        .args(["kb", "stats", "--kb", &es.url, "--format", "json"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!({"runbooks_reviewed": 3, "runbooks_unreviewed": 3, "evidence": 3, "policies": 3})
    );
    assert_eq!(es.hits(), 7);

    // Without the key: refused, exit 3, Elasticsearch's reason, the key never printed.
    let (code, out, err) = kb(dir.path(), &["kb", "search", "latency", "--service", "payments-api", "--kb", &es.url]);
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    assert!(err.contains("(HTTP 401): security_exception: missing authentication credentials"), "{err}");

    // Nothing listening: exit 3, never "no reviewed runbooks match".
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, out, err) = kb(dir.path(), &["kb", "search", "latency", "--service", "payments-api", "--kb", &url]);
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    assert!(err.contains(&format!("knowledge backend {url} unavailable")), "{err}");
    let sample = guardrail_test_support::examples("governor").join("sample_data.json");
    let (code, _, err) = kb(dir.path(), &["kb", "load", sample.to_str().unwrap(), "--kb", &url]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("unavailable"), "{err}");
}

/// `incident run --kb http://…` plans against the cluster; one that is not there is no
/// knowledge: the run cannot decide (exit 3, the backend named), never a plan from nothing.
#[test]
fn an_incident_run_against_an_unreachable_cluster_cannot_decide() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let incident = guardrail_test_support::examples("governor").join("scenarios/incident_high.json");
    let store = dir.path().join("audit.db");
    let mut c = guardrail();
    c.current_dir(dir.path()).env("USER", "alice").args([
        "incident",
        "run",
        incident.to_str().unwrap(),
        "--kb",
        &url,
        "--store",
        store.to_str().unwrap(),
    ]);
    let (code, out, err) = run(c);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("unavailable") && err.contains(&url), "{err}");
    assert!(!out.contains("executed"), "{out}");
}

/// The governor config's `knowledge:` block chooses the knowledge base when neither `--kb` nor
/// `GUARDRAIL_KB` does: an Elasticsearch block whose cluster is not there cannot decide (exit 3,
/// the URL named); `--kb` still wins over the block.
#[test]
fn the_governor_configs_knowledge_block_chooses_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("governor.yaml");
    std::fs::write(
        &config,
        format!("knowledge:\n  backend: elasticsearch\n  url: {url}\n  timeout_ms: 500\n  retries: 0\n"),
    )
    .unwrap();
    let incident = guardrail_test_support::examples("governor").join("scenarios/incident_high.json");
    let store = dir.path().join("audit.db");
    let mut c = guardrail();
    c.current_dir(dir.path()).env("USER", "alice").args([
        "incident",
        "run",
        incident.to_str().unwrap(),
        "--governor-config",
        config.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    let (code, out, err) = run(c);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains(&url), "{err}");

    // --kb names a file that does not exist: that file is what is refused, not the cluster.
    let mut c = guardrail();
    c.current_dir(dir.path()).env("USER", "alice").args([
        "incident",
        "run",
        incident.to_str().unwrap(),
        "--governor-config",
        config.to_str().unwrap(),
        "--kb",
        "missing.db",
        "--store",
        store.to_str().unwrap(),
    ]);
    let (code, out, err) = run(c);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("missing.db") && !err.contains(&url), "{err}");
}
