//! The Elasticsearch backend's own behaviour against the loopback cluster: index creation with
//! the original's mappings, credentials, retries, and every failure a typed error — never an
//! empty answer.

use std::time::Duration;

use guardrail_knowledge::{ElasticAuth, ElasticConfig, ElasticKnowledgeStore, KnowledgeError, KnowledgeStore};
use serde_json::json;

use guardrail_test_support::elastic::FakeEs;

fn sample_path() -> std::path::PathBuf {
    guardrail_test_support::examples("governor").join("sample_data.json")
}

fn cfg(es: &FakeEs) -> ElasticConfig {
    let mut c = ElasticConfig::new(&es.url);
    c.timeout = Duration::from_millis(2000);
    c
}

fn loaded(c: ElasticConfig) -> ElasticKnowledgeStore {
    let mut s = ElasticKnowledgeStore::create(c).unwrap();
    s.load_sample_data(&sample_path()).unwrap();
    s
}

fn status_of(e: &KnowledgeError) -> Option<u16> {
    match e {
        KnowledgeError::Unavailable { status, .. } => *status,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn indices_are_created_with_the_originals_mappings_once() {
    let es = FakeEs::start();
    ElasticKnowledgeStore::create(cfg(&es)).unwrap();
    // The original's fields and types (../shared/fixtures/governor/mappings/*.mapping.json).
    let originals = [
        (
            "runbooks-demo",
            json!({"id": "keyword", "service": "keyword", "title": "text", "recommended_action": "keyword", "body": "text"}),
        ),
        ("evidence-demo", json!({"id": "keyword", "service": "keyword", "stance": "keyword", "text": "text"})),
        (
            "policies-demo",
            json!({"id": "keyword", "service": "keyword", "blocked_actions": "keyword", "severities": "keyword", "rule": "text"}),
        ),
    ];
    for (index, fields) in originals {
        let m = es.mapping(index).unwrap_or_else(|| panic!("{index} created"));
        for (field, ty) in fields.as_object().unwrap() {
            assert_eq!(&m["mappings"]["properties"][field]["type"], ty, "{index}.{field}");
        }
        assert_eq!(
            m["settings"]["analysis"]["analyzer"]["default"]["filter"],
            json!(["lowercase", "asciifolding", "porter_stem"])
        );
    }
    // A second create finds them (400 resource_already_exists_exception) and goes on.
    ElasticKnowledgeStore::create(cfg(&es)).unwrap();
    let puts = es.log().iter().filter(|(l, _)| l.starts_with("PUT /")).count();
    assert_eq!(puts, 6);
}

#[test]
fn a_cluster_without_the_indices_is_an_error_not_an_empty_knowledge_base() {
    let es = FakeEs::start();
    let e = ElasticKnowledgeStore::open(cfg(&es)).unwrap_err();
    assert_eq!(status_of(&e), Some(404));
    assert!(e.to_string().contains("index_not_found_exception: no such index [runbooks-demo]"), "{e}");
    let s = ElasticKnowledgeStore::connect(cfg(&es)).unwrap();
    let e = s.search_runbooks("latency", "payments-api", 3).unwrap_err();
    assert_eq!(status_of(&e), Some(404));
}

#[test]
fn an_unreachable_cluster_is_unavailable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = ElasticConfig::new(&format!("http://127.0.0.1:{port}"));
    c.retries = 1;
    let s = ElasticKnowledgeStore::connect(c).unwrap();
    let e = s.search_runbooks("latency", "payments-api", 3).unwrap_err();
    assert_eq!(status_of(&e), None);
    assert!(e.to_string().starts_with(&format!("knowledge backend http://127.0.0.1:{port} unavailable: ")), "{e}");
    assert!(ElasticKnowledgeStore::connect(ElasticConfig::new("es.internal:9200")).is_err(), "a URL needs a scheme");
}

#[test]
fn credentials_are_sent_and_refusals_are_errors() {
    let es = FakeEs::start();
    es.require_auth("ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==");
    let e = ElasticKnowledgeStore::create(cfg(&es)).unwrap_err();
    assert_eq!(status_of(&e), Some(401));
    assert!(e.to_string().contains("security_exception: missing authentication credentials"), "{e}");
    let mut wrong = cfg(&es);
    wrong.auth = Some(ElasticAuth::ApiKey("bm9wZQ==".into()));
    let e = ElasticKnowledgeStore::create(wrong).unwrap_err();
    assert!(e.to_string().contains("unable to authenticate with provided credentials"), "{e}");
    assert!(!e.to_string().contains("bm9wZQ=="), "the key stays out of errors: {e}");
    let mut right = cfg(&es);
    right.auth = Some(ElasticAuth::ApiKey("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==".into()));
    let s = loaded(right);
    assert_eq!(s.stats().unwrap().runbooks_reviewed, 3);

    let es = FakeEs::start();
    es.require_auth("Basic Z3VhcmRyYWlsOmh1bnRlcjI="); // guardrail:hunter2
    let mut basic = cfg(&es);
    basic.auth = Some(ElasticAuth::Basic { user: "guardrail".into(), password: "hunter2".into() });
    assert_eq!(loaded(basic).stats().unwrap().evidence, 5);
    // No 401 is retried.
    let attempts = es.log().len();
    let _ = ElasticKnowledgeStore::connect(cfg(&es)).unwrap().stats();
    assert_eq!(es.log().len(), attempts + 1);
}

#[test]
fn rate_limits_and_unavailable_nodes_are_retried_then_errors() {
    let es = FakeEs::start();
    let s = loaded(cfg(&es));
    // Two 429s, then the answer: retries = 2 absorbs them.
    es.fail_next(&[429, 503]);
    assert_eq!(s.search_runbooks("latency", "payments-api", 3).unwrap().len(), 1);
    // Three: the third is the error, with Elasticsearch's reason.
    es.fail_next(&[429, 429, 429]);
    let e = s.search_runbooks("latency", "payments-api", 3).unwrap_err();
    assert_eq!(status_of(&e), Some(429));
    assert!(e.to_string().contains("es_rejected_execution_exception"), "{e}");
    es.fail_next(&[503, 503, 503]);
    let e = s.policies_for("payments-api").unwrap_err();
    assert_eq!(status_of(&e), Some(503));
    assert!(e.to_string().contains("master_not_discovered_exception"), "{e}");
    // A 500 is not retried.
    let before = es.log().len();
    es.fail_next(&[500]);
    let e = s.search_evidence("restart", "payments-api", 3, None).unwrap_err();
    assert_eq!(status_of(&e), Some(500));
    assert!(e.to_string().contains("search_phase_execution_exception: all shards failed"), "{e}");
    assert_eq!(es.log().len(), before + 1);
}

/// A `Retry-After` the call can afford is waited (not the client's own short pause); a longer
/// one ends the call at once with the pause in the error, so a queue waits that long.
#[test]
fn the_clusters_retry_after_is_honoured() {
    let es = FakeEs::start();
    let s = loaded(cfg(&es));
    es.retry_after(Some("1"));
    es.fail_next(&[429]);
    let start = std::time::Instant::now();
    assert_eq!(s.search_runbooks("latency", "payments-api", 3).unwrap().len(), 1);
    assert!(start.elapsed() >= Duration::from_millis(950), "waited {:?}, not the asked 1 s", start.elapsed());

    // Longer than the call's 2 s timeout: not retried, the pause reported.
    let before = es.log().len();
    es.retry_after(Some("120"));
    es.fail_next(&[503, 503, 503]);
    let e = s.policies_for("payments-api").unwrap_err();
    assert_eq!(es.log().len(), before + 1, "a pause longer than the timeout is not slept in the call");
    let KnowledgeError::Unavailable { status: Some(503), retry_after: Some(wait), .. } = &e else {
        panic!("expected a 503 with its pause, got {e:?}")
    };
    assert_eq!(*wait, Duration::from_secs(120));
    assert!(e.to_string().contains("retry after 120 s"), "{e}");

    // An HTTP date in the past is "now"; garbage is the client's own backoff.
    es.fail_next(&[]);
    for value in ["Sun, 06 Dec 2020 10:00:00 GMT", "soon"] {
        es.retry_after(Some(value));
        es.fail_next(&[429]);
        assert_eq!(s.search_runbooks("latency", "payments-api", 3).unwrap().len(), 1, "{value}");
    }
}

#[test]
fn partial_answers_and_slow_clusters_are_errors() {
    let es = FakeEs::start();
    let s = loaded(cfg(&es));
    es.time_out_searches();
    let e = s.search_runbooks("latency", "payments-api", 3).unwrap_err();
    assert!(e.to_string().contains("timed out (partial results refused)"), "{e}");

    let es = FakeEs::start();
    let mut c = cfg(&es);
    c.timeout = Duration::from_millis(150);
    c.retries = 0;
    let s = loaded(c);
    es.delay(Duration::from_millis(600));
    let e = s.search_runbooks("latency", "payments-api", 3).unwrap_err();
    assert_eq!(status_of(&e), None);
    assert!(e.to_string().contains("no answer within 150 ms"), "{e}");
}

#[test]
fn bulk_partial_failures_name_every_failed_document() {
    let es = FakeEs::start();
    es.reject_ids(&["ev-101", "pol-general-01"]);
    let mut s = ElasticKnowledgeStore::create(cfg(&es)).unwrap();
    let e = s.load_sample_data(&sample_path()).unwrap_err();
    match &e {
        KnowledgeError::Bulk { added, failed, .. } => {
            assert_eq!(*added, 8);
            let ids: Vec<&str> = failed.iter().map(|f| f.id.as_str()).collect();
            assert_eq!(ids, ["ev-101", "pol-general-01"]);
            assert_eq!((failed[0].status, failed[0].kind.as_str()), (429, "es_rejected_execution_exception"));
        }
        other => panic!("expected Bulk, got {other:?}"),
    }
    assert!(
        e.to_string().contains("2 document(s) failed to load (8 added): ev-101 (429 es_rejected_execution_exception"),
        "{e}"
    );
    // The bulk request is NDJSON with `create` actions (never `index`: nothing is replaced).
    let (line, body) = es.log().into_iter().find(|(l, _)| l.starts_with("POST /_bulk")).unwrap();
    assert_eq!(line, "POST /_bulk?refresh=wait_for");
    assert!(body.ends_with('\n'));
    assert!(
        body.lines().next().unwrap().starts_with(r#"{"create":{"_index":"runbooks-demo","_id":"rbk-api-01"}}"#),
        "{body}"
    );
}

#[test]
fn a_review_is_a_conditional_write() {
    let es = FakeEs::start();
    let mut s = loaded(cfg(&es));
    let mut r = s.runbook("rbk-api-01").unwrap().unwrap();
    r.id = "rbk-learned-2".into();
    r.reviewed = false;
    s.add_runbook(&r).unwrap();
    s.mark_reviewed("rbk-learned-2", "bob", "2026-01-02T00:00:00Z").unwrap();
    let (line, _) = es.log().into_iter().rev().find(|(l, _)| l.starts_with("PUT /runbooks-demo/_doc/")).unwrap();
    assert!(line.contains("if_seq_no=") && line.contains("&if_primary_term=1&refresh=wait_for"), "{line}");
    assert_eq!(es.doc("runbooks-demo", "rbk-learned-2").unwrap()["provenance"]["reviewed_by"], "bob");
}

/// The loopback cluster, loaded by Guardrail, read and written by Elasticsearch's official
/// Python client as an independent peer: the same search, count, get, a `_bulk` with a conflict
/// and errors as the client types them — so the fake's wire shapes are the ones real clients
/// accept, not only the ones Guardrail sends. Fails without the client when
/// `GUARDRAIL_REQUIRE_ES_PYTHON` is set (as `scripts/test` may set it).
#[test]
fn the_official_python_client_reads_what_guardrail_wrote() {
    let Some(py) = guardrail_test_support::elastic::python_client() else { return };
    let es = FakeEs::start();
    loaded(cfg(&es));
    let script = r#"
import json, sys
import elasticsearch
from elasticsearch import Elasticsearch, helpers
es = Elasticsearch(sys.argv[1], request_timeout=5)
out = {}
r = es.search(index="runbooks-demo", size=3,
    query={"bool": {"must": [{"combined_fields": {"query": "p99 latency timeouts db connection saturation",
                                                   "fields": ["title^2", "body"], "operator": "or"}}],
                    "filter": [{"term": {"service": {"value": "payments-api"}}}, {"term": {"reviewed": {"value": True}}}]}},
    sort=[{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}])
out["search"] = [h["_id"] for h in r["hits"]["hits"]]
out["total"] = r["hits"]["total"]["value"]
out["count"] = es.count(index="evidence-demo", query={"terms": {"service": ["payments-api", "*"]}})["count"]
out["get"] = es.get(index="runbooks-demo", id="rbk-api-01")["_source"]["recommended_action"]
ok, errors = helpers.bulk(es, [
    {"_op_type": "create", "_index": "evidence-demo", "_id": "ev-900", "_source": {"id": "ev-900", "service": "*", "stance": "support", "text": "x"}},
    {"_op_type": "create", "_index": "evidence-demo", "_id": "ev-100", "_source": {"id": "ev-100", "service": "*", "stance": "support", "text": "x"}},
], raise_on_error=False, refresh="wait_for")
out["bulk"] = [ok, [e["create"]["status"] for e in errors], [e["create"]["error"]["type"] for e in errors]]
try:
    es.search(index="no-such-index", query={"match_all": {}})
except elasticsearch.NotFoundError as e:
    out["missing"] = e.error
print(json.dumps(out))
"#;
    let o = std::process::Command::new(&py).args(["-c", script, &es.url]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["search"], json!(["rbk-api-02", "rbk-api-01"]), "{v}");
    assert_eq!((v["total"].as_u64(), v["count"].as_u64()), (Some(2), Some(3)), "{v}");
    assert_eq!(v["get"], "restart_api_pods");
    assert_eq!(v["bulk"], json!([1, [409], ["version_conflict_engine_exception"]]), "{v}");
    assert_eq!(v["missing"], "index_not_found_exception");
    // And Guardrail reads what the official client wrote.
    let s = ElasticKnowledgeStore::open(cfg(&es)).unwrap();
    assert_eq!(s.stats().unwrap().evidence, 6);
}
