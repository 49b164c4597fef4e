//! The Elasticsearch audit mirror end to end against the loopback cluster: rows written in the
//! record's own append, delivered, redelivered without duplicates, held through an outage, a
//! refused credential and a rate limit; `export` rebuilding an emptied index, refusing a broken
//! chain, naming the records a partial `_bulk` failure left out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use guardrail_config::{AuditMirrorConfig, ElasticCredentials};
use guardrail_core::audit::{ChainedRecord, RecordDraft};
use guardrail_notify::es_mirror::{AUDIT_MAPPING, EsMirror, ExportError, export};
use guardrail_notify::outbox::{Deliverer, RetryPolicy};
use guardrail_notify::routing::{Routes, mirror_channel, mirror_config};
use guardrail_store::{AuditStore, ChannelKind, OutboxState, SqliteStore};
use guardrail_test_support::elastic::FakeEs;
use serde_json::{Value, json};

const T0: i64 = 1_796_551_200_000;

struct Clock(AtomicI64);

impl Clock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.0.load(Ordering::SeqCst)).unwrap()
    }
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

fn clock() -> Clock {
    Clock(AtomicI64::new(T0 + 1_000))
}

fn cfg(url: &str) -> AuditMirrorConfig {
    AuditMirrorConfig { retries: 0, timeout_ms: 2_000, ..AuditMirrorConfig::at(url) }
}

fn store_at(path: &std::path::Path, url: &str) -> SqliteStore {
    let mut s = SqliteStore::open(path).unwrap();
    s.set_outbox_router(Some(Arc::new(Routes::new(None, false).with_mirror(Some(cfg(url))))));
    s
}

fn deliverer(cfg: &AuditMirrorConfig, env: &BTreeMap<String, String>) -> Deliverer {
    let policy = RetryPolicy { max_attempts: 3, base: Duration::from_secs(30), cap: Duration::from_secs(600) };
    Deliverer::new(vec![mirror_channel(Some(cfg), env, None).unwrap().unwrap()], policy)
}

fn append(store: &mut dyn AuditStore, kind: &str, body: Value) -> ChainedRecord {
    store.append(RecordDraft { kind: kind.into(), recorded_at: "2026-12-06T10:00:00Z".into(), body }).unwrap()
}

fn some_records(store: &mut dyn AuditStore) -> Vec<ChainedRecord> {
    vec![
        append(store, "deploy_decision", json!({"action": "BLOCK", "free": {"form": [1, "two"]}})),
        append(store, "remediation_decision", json!({"incident_id": "inc-7", "action": {"type": "restart"}})),
        append(store, "approval_granted", json!({"incident_id": "inc-7", "action": "restart", "approver": "bob"})),
    ]
}

#[test]
fn every_record_gets_a_row_in_its_append_and_is_delivered_once_per_id() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(&dir.path().join("a.db"), &es.url);
    let recs = some_records(&mut store);
    let mut rows = store.outbox_entries(None, None, 100).unwrap();
    rows.sort_by_key(|r| r.record_seq);
    assert_eq!(rows.len(), 3, "one row per record, whatever its kind: {rows:?}");
    for (row, rec) in rows.iter().zip(&recs) {
        assert_eq!(
            (row.channel, row.record_seq, row.ordering_key.as_deref()),
            (ChannelKind::Elasticsearch, rec.seq, None)
        );
        assert_eq!(row.state, OutboxState::Pending);
    }

    let c = clock();
    let d = deliverer(&cfg(&es.url), &BTreeMap::new());
    let r = d.deliver_due(&mut store, &|| c.now(), None).unwrap();
    assert_eq!((r.delivered, r.retrying, r.failed), (3, 0, 0), "{r:?}");
    let mapping = es.mapping("guardrail-audit").expect("the index was created, with its mapping");
    assert_eq!(mapping, serde_json::from_str::<Value>(AUDIT_MAPPING).unwrap());
    assert_eq!(mapping["mappings"]["properties"]["body"], json!({"type": "object", "enabled": false}));
    let docs = es.docs("guardrail-audit");
    assert_eq!(docs.keys().cloned().collect::<Vec<_>>(), recs.iter().map(ChainedRecord::id).collect::<Vec<_>>());
    let doc = &docs[&recs[1].id()];
    assert_eq!(doc["seq"], json!(2));
    assert_eq!(doc["kind"], json!("remediation_decision"));
    assert_eq!(
        (doc["hash"].as_str(), doc["prev_hash"].as_str()),
        (Some(recs[1].hash.as_str()), Some(recs[0].hash.as_str()))
    );
    assert_eq!(doc["incident_id"], json!("inc-7"));
    assert_eq!(doc["body"], recs[1].body, "the body as chained");
    let delivered = store.outbox_entries(Some(recs[0].seq), Some(OutboxState::Delivered), 10).unwrap();
    assert_eq!(delivered[0].reference.as_deref(), Some(format!("guardrail-audit/{}", recs[0].id()).as_str()));

    // Redelivery (a retried row, an export) writes the same documents under the same ids.
    let before = es.docs("guardrail-audit");
    let mirror = EsMirror::connect(&cfg(&es.url), &BTreeMap::new(), None).unwrap();
    let rep = export(&mut store, &mirror, 2, &mut |_, _| {}).unwrap();
    assert_eq!((rep.records, rep.written, rep.batches, rep.created_index), (3, 3, 2, false), "{rep:?}");
    assert_eq!(es.docs("guardrail-audit"), before, "no duplicate, no change");
    let puts = es.lines().iter().filter(|l| l.starts_with("PUT /guardrail-audit")).count();
    assert_eq!(puts, 2, "each process creates (or finds) the index once: {:?}", es.lines());
}

#[test]
fn an_unreachable_cluster_leaves_rows_pending_until_it_answers() {
    let es = FakeEs::start();
    // Nothing listens on port 1.
    let down = cfg("http://127.0.0.1:1");
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(&dir.path().join("a.db"), &es.url);
    let recs = some_records(&mut store);
    assert_eq!(store.verify().unwrap().records, 3, "the appends stand");
    let c = clock();
    let r = deliverer(&down, &BTreeMap::new()).deliver_due(&mut store, &|| c.now(), None).unwrap();
    assert_eq!((r.delivered, r.retrying, r.failed), (0, 3, 0), "{r:?}");
    assert!(r.problems[0].contains("audit mirror http://127.0.0.1:1 unavailable"), "{:?}", r.problems);
    let st = store.outbox_status().unwrap();
    assert_eq!((st.pending, st.failed, st.delivered), (3, 0, 0));

    // 503 and 429 from the cluster are retried the same way.
    // One row per call, so the 503 and the 429 each meet a row (batches: tests/es_batch.rs).
    let live = deliverer(&AuditMirrorConfig { batch_size: 1, ..cfg(&es.url) }, &BTreeMap::new());
    c.advance(Duration::from_secs(31));
    es.fail_next(&[503, 429]);
    let r = live.deliver_due(&mut store, &|| c.now(), None).unwrap();
    assert_eq!((r.delivered, r.retrying), (1, 2), "{r:?}");
    assert!(r.problems.iter().any(|p| p.contains("(HTTP 503): master_not_discovered_exception")), "{:?}", r.problems);
    assert!(r.problems.iter().any(|p| p.contains("(HTTP 429): es_rejected_execution_exception")), "{:?}", r.problems);
    c.advance(Duration::from_secs(120));
    let r = live.deliver_due(&mut store, &|| c.now(), None).unwrap();
    assert_eq!((r.delivered, r.retrying, r.failed), (2, 0, 0), "{r:?}");
    assert_eq!(es.docs("guardrail-audit").len(), recs.len());
}

#[test]
fn a_refused_credential_fails_the_rows_and_names_no_secret() {
    let es = FakeEs::start();
    es.require_auth("ApiKey right-key");
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(&dir.path().join("a.db"), &es.url);
    some_records(&mut store);
    let keyed =
        AuditMirrorConfig { credentials: Some(ElasticCredentials::ApiKeyEnv("MIRROR_KEY".into())), ..cfg(&es.url) };
    // The variable unset: a setup error naming the variable.
    let e = mirror_channel(Some(&keyed), &BTreeMap::new(), None).err().expect("unset key refused");
    assert!(e.to_string().contains("MIRROR_KEY (named by audit_mirror's api_key_env) is not set"), "{e}");

    let wrong = BTreeMap::from([("MIRROR_KEY".to_string(), "wrong-key-s3cret".to_string())]);
    let c = clock();
    let r = deliverer(&keyed, &wrong).deliver_due(&mut store, &|| c.now(), None).unwrap();
    assert_eq!((r.delivered, r.failed), (0, 3), "a 401 needs a person, not retries: {r:?}");
    let failed = store.outbox_entries(None, Some(OutboxState::Failed), 10).unwrap();
    let why = failed[0].last_error.clone().unwrap();
    assert!(why.contains("(HTTP 401): security_exception"), "{why}");
    assert!(r.problems.iter().chain([&why]).all(|p| !p.contains("s3cret")), "{:?}", r.problems);

    // Fixed key, rows put back: delivered.
    let right = BTreeMap::from([("MIRROR_KEY".to_string(), "right-key".to_string())]);
    assert_eq!(store.outbox_retry_failed(c.now().as_millisecond()).unwrap(), 3);
    let r = deliverer(&keyed, &right).deliver_due(&mut store, &|| c.now(), None).unwrap();
    assert_eq!(r.delivered, 3, "{r:?}");
}

#[test]
fn export_rebuilds_an_emptied_index_with_the_same_documents() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(&dir.path().join("a.db"), &es.url);
    for i in 0..7 {
        append(&mut store, "deploy_decision", json!({"n": i}));
    }
    let c = clock();
    deliverer(&cfg(&es.url), &BTreeMap::new()).deliver_due(&mut store, &|| c.now(), None).unwrap();
    let delivered = es.docs("guardrail-audit");
    assert_eq!(delivered.len(), 7);

    let mirror = EsMirror::connect(&cfg(&es.url), &BTreeMap::new(), None).unwrap();
    // Deleted by hand (DELETE /guardrail-audit), then rebuilt from the chain.
    let http = reqwest::blocking::Client::new();
    assert!(http.delete(format!("{}/guardrail-audit", es.url)).send().unwrap().status().is_success());
    let mut seen = Vec::new();
    let rep = export(&mut store, &mirror, 3, &mut |done, total| seen.push((done, total))).unwrap();
    assert_eq!((rep.records, rep.written, rep.batches, rep.created_index), (7, 7, 3, true), "{rep:?}");
    assert_eq!(seen, vec![(3, 7), (6, 7), (7, 7)]);
    assert_eq!(es.docs("guardrail-audit"), delivered, "the same documents");
    assert_eq!(es.mapping("guardrail-audit").unwrap(), serde_json::from_str::<Value>(AUDIT_MAPPING).unwrap());
    assert!(es.lines().last().unwrap().starts_with("POST /_bulk?refresh=wait_for"), "{:?}", es.lines());
}

#[test]
fn export_names_the_records_a_partial_bulk_failure_left_out() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(&dir.path().join("a.db"), &es.url);
    let recs = some_records(&mut store);
    es.fail_item(&recs[0].id(), 400);
    es.fail_item(&recs[2].id(), 429);
    let mirror = EsMirror::connect(&cfg(&es.url), &BTreeMap::new(), None).unwrap();
    let rep = export(&mut store, &mirror, 500, &mut |_, _| {}).unwrap();
    assert_eq!((rep.written, rep.failed.len()), (1, 2), "{rep:?}");
    assert_eq!(rep.failed[0].record_id, recs[0].id());
    assert_eq!((rep.failed[0].status, rep.failed[0].kind.as_str()), (400, "mapper_parsing_exception"));
    assert!(!rep.failed[0].retryable() && rep.failed[1].retryable());
    assert!(
        rep.failed[1]
            .to_string()
            .starts_with(&format!("record {} (guardrail-audit): 429 es_rejected_execution_exception", recs[2].id())),
        "{}",
        rep.failed[1]
    );
    assert_eq!(rep.refused_records, 2);
    assert_eq!(es.docs("guardrail-audit").keys().cloned().collect::<Vec<_>>(), vec![recs[1].id()]);

    // The same failure through the outbox: a refused document is failed, a rejected one retried.
    let c = clock();
    let r = deliverer(&cfg(&es.url), &BTreeMap::new()).deliver_due(&mut store, &|| c.now(), None).unwrap();
    assert_eq!((r.delivered, r.failed, r.retrying), (1, 1, 1), "{r:?}");

    // The whole call failing stops the export with what was done.
    es.heal_items();
    es.fail_next(&[503]);
    let Err(ExportError::Cluster { partial, .. }) = export(&mut store, &mirror, 2, &mut |_, _| {}) else {
        panic!("a 503 is an error")
    };
    assert_eq!(partial.written, 0);
    let e = export(&mut store, &mirror, 2, &mut |_, _| {}).unwrap();
    assert_eq!((e.written, e.failed.len()), (3, 0));
}

#[test]
fn export_refuses_a_broken_chain_and_sends_nothing() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = store_at(&path, &es.url);
    some_records(&mut store);
    drop(store);
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute("UPDATE audit_records SET body = replace(body, 'bob', 'eve') WHERE seq = 3", []).unwrap();
    drop(db);
    let mut store = store_at(&path, &es.url);
    let mirror = EsMirror::connect(&cfg(&es.url), &BTreeMap::new(), None).unwrap();
    let Err(e @ ExportError::BrokenChain { first_seq: 3, .. }) = export(&mut store, &mirror, 500, &mut |_, _| {})
    else {
        panic!("a broken chain exported")
    };
    assert!(e.to_string().contains("nothing exported"), "{e}");
    assert_eq!(es.lines(), Vec::<String>::new(), "not one request");
}

#[test]
fn the_environment_names_the_mirror_and_keeps_the_blocks_settings() {
    let env = BTreeMap::from([("GUARDRAIL_AUDIT_ES".to_string(), "http://es.other:9200/".to_string())]);
    assert_eq!(mirror_config(None, &env), Some(AuditMirrorConfig::at("http://es.other:9200")));
    let block = AuditMirrorConfig { index: "audit-prod".into(), ..AuditMirrorConfig::at("http://es:9200") };
    let m = mirror_config(Some(&block), &env).unwrap();
    assert_eq!((m.url.as_str(), m.index.as_str()), ("http://es.other:9200", "audit-prod"));
    assert_eq!(mirror_config(Some(&block), &BTreeMap::new()), Some(block));
    assert_eq!(mirror_config(None, &BTreeMap::new()), None);
    let routes = Routes::new(None, false).with_mirror(mirror_config(None, &env));
    assert_eq!(routes.names(), vec!["elasticsearch"]);
    assert!(!routes.is_empty());
}

/// Elasticsearch's official Python client as an independent peer of the loopback cluster: it
/// reads the document the mirror delivered, creates the index again (and gets the
/// `resource_already_exists_exception` the mirror reads as "exists"), writes with `_bulk`
/// `index` actions and gets a partial failure typed as the mirror reads it, and is refused
/// with `security_exception` — so the fake's shapes are the ones a real client accepts, not
/// only the ones Guardrail sends. Fails without the client when `GUARDRAIL_REQUIRE_ES_PYTHON`
/// is set (as `scripts/test` sets it).
#[test]
fn the_official_python_client_reads_what_the_mirror_wrote() {
    let Some(py) = guardrail_test_support::elastic::python_client() else { return };
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(&dir.path().join("a.db"), &es.url);
    let recs = some_records(&mut store);
    let c = clock();
    let r = deliverer(&cfg(&es.url), &BTreeMap::new()).deliver_due(&mut store, &|| c.now(), None).unwrap();
    assert_eq!(r.delivered, 3);
    es.fail_item("peer-bad", 400);
    let script = r#"
import json, sys
import elasticsearch
from elasticsearch import Elasticsearch, helpers
es = Elasticsearch(sys.argv[1], request_timeout=5)
out = {}
d = es.get(index="guardrail-audit", id=sys.argv[2])
out["doc"] = [d["found"], d["_source"]["kind"], d["_source"]["incident_id"], d["_source"]["record_id"]]
try:
    es.indices.create(index="guardrail-audit", mappings={"dynamic": "strict"})
except elasticsearch.BadRequestError as e:
    out["exists"] = e.error
src = {"record_id": "peer-1", "seq": 99, "kind": "peer", "recorded_at": "2026-12-06T10:00:00Z",
       "hash": "h", "prev_hash": "p", "body": {"any": ["shape", 1]}}
ok, errors = helpers.bulk(es, [
    {"_op_type": "index", "_index": "guardrail-audit", "_id": "peer-1", "_source": src},
    {"_op_type": "index", "_index": "guardrail-audit", "_id": "peer-bad", "_source": src},
    {"_op_type": "index", "_index": "guardrail-audit", "_id": "peer-2", "_source": dict(src, surprise=1)},
], raise_on_error=False)
out["bulk"] = [ok, [e["index"]["status"] for e in errors], [e["index"]["error"]["type"] for e in errors]]
try:
    Elasticsearch(sys.argv[1], api_key="bm9wZTpub3Bl", request_timeout=5).get(index="guardrail-audit", id="peer-1")
except elasticsearch.AuthenticationException as e:
    out["auth"] = [e.meta.status, e.error]
print(json.dumps(out))
"#;
    // Anonymous access allowed (as a cluster may), a wrong API key refused.
    es.require_auth("ApiKey right-key");
    es.allow_anonymous();
    let out = std::process::Command::new(&py).args(["-c", script, &es.url, &recs[1].id()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["doc"], json!([true, "remediation_decision", "inc-7", recs[1].id()]), "{v}");
    assert_eq!(v["exists"], "resource_already_exists_exception", "{v}");
    assert_eq!(
        v["bulk"],
        json!([1, [400, 400], ["mapper_parsing_exception", "strict_dynamic_mapping_exception"]]),
        "{v}"
    );
    assert_eq!(v["auth"], json!([401, "security_exception"]), "{v}");
    // And the mirror's export puts its own documents back beside the peer's.
    let mirror = EsMirror::connect(&cfg(&es.url), &BTreeMap::new(), None).unwrap();
    assert_eq!(export(&mut store, &mirror, 500, &mut |_, _| {}).unwrap().written, 3);
    assert_eq!(es.docs("guardrail-audit").len(), 4);
}
