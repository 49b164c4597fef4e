//! Recording at a fleet's rate: many concurrent `POST /api/gate` go through the server's shared
//! store (one writer, group commits). Every answered decision is in the chain exactly once, as
//! the record it was answered with, and the chain verifies — on SQLite and PostgreSQL, with two
//! servers (replicas) on one PostgreSQL chain, and a store that refuses to append withholds
//! every concurrent decision.

use std::collections::BTreeSet;

use guardrail_store::open_store;

use crate::common::{DEPLOYER, Scratch, Server};

/// `clients` tasks each send `per_client` `POST /api/gate` with their own commit; returns every
/// answer's `(seq, hash, commit)`.
async fn load(servers: &[&Server], clients: usize, per_client: usize) -> Vec<(i64, String, String)> {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let srv = servers[c % servers.len()];
        let (client, url) = (srv.client.clone(), srv.url("/api/gate"));
        tasks.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            for i in 0..per_client {
                let commit = format!("c{c}-{i}");
                let body = format!(
                    r#"{{"ci": {{"provider": "github-actions", "commit": "{commit}", "service": "checkout-api"}}}}"#
                );
                let r = client
                    .post(&url)
                    .bearer_auth(DEPLOYER)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: serde_json::Value = r.json().await.unwrap();
                assert_eq!(status, 200, "{v}");
                let a = &v["data"]["audit"];
                assert_eq!(v["data"]["ci"]["commit"], commit.as_str());
                answered.push((a["seq"].as_i64().unwrap(), a["hash"].as_str().unwrap().to_string(), commit));
            }
            answered
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Every answer is the stored record at its seq (the same hash, the same commit), each once,
/// and the chain is whole. (Off the async threads: the PostgreSQL client blocks.)
async fn check_chain(spec: &str, answered: &[(i64, String, String)], expected: usize) {
    let (spec, answered) = (spec.to_string(), answered.to_vec());
    tokio::task::spawn_blocking(move || check_chain_now(&spec, &answered, expected)).await.unwrap();
}

fn check_chain_now(spec: &str, answered: &[(i64, String, String)], expected: usize) {
    let mut store = open_store(spec).unwrap();
    let records = store.all().unwrap();
    assert_eq!(records.len(), expected);
    assert_eq!(answered.len(), expected);
    for (seq, hash, commit) in answered {
        let rec = &records[(*seq - 1) as usize];
        assert_eq!(rec.seq, *seq);
        assert_eq!(&rec.hash, hash, "the answer names the stored record");
        assert_eq!(rec.body["ci"]["commit"], commit.as_str(), "record {seq} is the decision answered with it");
    }
    let commits: BTreeSet<&str> = records.iter().map(|r| r.body["ci"]["commit"].as_str().unwrap()).collect();
    assert_eq!(commits.len(), expected, "every decision is recorded exactly once");
    let rep = store.verify().unwrap();
    assert!(rep.ok(), "{:?}", rep.breaks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_gate_decisions_are_each_recorded_once_in_one_chain_sqlite() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    let answered = load(&[&srv], 16, 12).await;
    check_chain(&s.store(), &answered, 16 * 12).await;
    let stats = srv.state.share_store().expect("the store is shared").stats();
    assert_eq!(stats.records, 16 * 12, "every record went through the group commit");
}

/// A fresh PostgreSQL schema for one test (dropped at the end with psql, best effort).
struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    fn new() -> PgSchema {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let url = std::env::var("GUARDRAIL_TEST_PG_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("gr_rec_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        PgSchema { url, name }
    }

    /// The store spec, spelled with `scheme` (`postgres` or `postgresql`).
    fn spec(&self, scheme: &str) -> String {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, r)| r);
        let sep = if rest.contains('?') { '&' } else { '?' };
        format!("{scheme}://{rest}{sep}schema={}", self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .arg(&self.url)
            .args(["-q", "-c", &format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name)])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_gate_decisions_are_each_recorded_once_in_one_chain_postgres() {
    let pg = PgSchema::new();
    let s = Scratch::new();
    let mut cfg = s.config();
    cfg.store = pg.spec("postgres");
    let srv = Server::start(cfg).await;
    let answered = load(&[&srv], 16, 8).await;
    check_chain(&pg.spec("postgres"), &answered, 16 * 8).await;
}

/// Two replicas on one PostgreSQL chain (each with its own writer: the spec spelled two ways
/// keeps them two stores in this one test process, as two processes would be) under load at
/// once: one valid chain holding every decision either answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_postgres_chain_keep_one_chain() {
    let pg = PgSchema::new();
    let s = Scratch::new();
    let (mut a, mut b) = (s.config(), s.config());
    a.store = pg.spec("postgres");
    b.store = pg.spec("postgresql");
    let (ra, rb) = (Server::start(a).await, Server::start(b).await);
    let sa = ra.state.share_store().unwrap();
    let sb = rb.state.share_store().unwrap();
    assert!(!std::sync::Arc::ptr_eq(&sa, &sb), "two writers");
    let answered = load(&[&ra, &rb], 16, 8).await;
    check_chain(&pg.spec("postgres"), &answered, 16 * 8).await;
    assert!(sa.stats().records > 0 && sb.stats().records > 0, "both replicas recorded");
}

/// A store that refuses to append (its head anchor moved behind the server's back): every
/// concurrent decision is withheld (503), none is answered as recorded, nothing is appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_group_commit_withholds_every_decision() {
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    let (st, _) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!(st, 200);
    let raw = rusqlite::Connection::open(s.store()).unwrap();
    raw.execute_batch("UPDATE chain_head SET seq = 9 WHERE id = 1").unwrap();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (client, url) = (srv.client.clone(), srv.url("/api/gate"));
        tasks.push(tokio::spawn(async move {
            let r = client.post(&url).bearer_auth(DEPLOYER).header("content-type", "application/json").body("{}");
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 503, "{v}");
        assert!(v["error"].as_str().unwrap().contains("withheld"), "{v}");
        assert!(v["data"].is_null() || v["data"]["audit"].is_null(), "{v}");
    }
    raw.execute_batch("UPDATE chain_head SET seq = 1 WHERE id = 1").unwrap();
    let mut store = open_store(&s.store()).unwrap();
    assert_eq!(store.all().unwrap().len(), 1, "nothing of the failed commits is in the chain");
    // Sound again: the next decision is recorded.
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["audit"]["seq"], 2);
}

/// The incident views' fold is kept and extended with the records appended since; a store
/// whose chain changed under it (the record the fold stopped at is gone) is folded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_states_fold_only_what_was_appended_since() {
    use guardrail_core::audit::RecordDraft;
    use guardrail_governor::queue::{incident_states, kinds};
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    let (state, spec) = (srv.state.clone(), s.store());
    tokio::task::spawn_blocking(move || {
        let decision = |inc: &str, decision: &str| RecordDraft {
            kind: kinds::DECISION.into(),
            recorded_at: "2026-02-21T00:00:00Z".into(),
            body: serde_json::json!({"incident_id": inc, "decision": decision, "gated_action": "restart", "binding_hash": "h"}),
        };
        let summary = |m: &std::collections::BTreeMap<String, guardrail_governor::queue::IncidentState>| {
            m.values()
                .map(|st| (st.incident_id.clone(), st.records.len(), st.decision.as_ref().map(|d| d.id())))
                .collect::<Vec<_>>()
        };
        let mut store = open_store(&spec).unwrap();
        assert!(state.incident_states().unwrap().is_empty());
        store.append(decision("INC-1", "execute")).unwrap();
        store.append(decision("INC-2", "block")).unwrap();
        assert_eq!(summary(&state.incident_states().unwrap()), summary(&incident_states(&store.all().unwrap())));
        store.append(decision("INC-1", "block")).unwrap();
        let st = state.incident_states().unwrap();
        assert_eq!(st["INC-1"].records.len(), 2, "the newer record is folded in");
        assert_eq!(summary(&st), summary(&incident_states(&store.all().unwrap())));
        // The chain replaced behind the server's back: the fold starts over.
        drop(store);
        let raw = rusqlite::Connection::open(&spec).unwrap();
        let genesis = guardrail_core::audit::GENESIS_HASH;
        // The claim index beside the chain is emptied with it (its documented rebuild), else the
        // store refuses to append after records it had indexed went missing.
        let reset = format!(
            "DELETE FROM audit_records; DELETE FROM audit_claims; DELETE FROM audit_claim_kinds; \
             UPDATE chain_head SET seq = 0, hash = '{genesis}', claims_seq = NULL WHERE id = 1"
        );
        raw.execute_batch(&reset).unwrap();
        let mut store = open_store(&spec).unwrap();
        store.append(decision("INC-7", "execute")).unwrap();
        let st = state.incident_states().unwrap();
        assert_eq!(st.keys().collect::<Vec<_>>(), vec!["INC-7"], "{:?}", summary(&st));
    })
    .await
    .unwrap();
}

/// The server keeps its inputs parsed and checked once per version (`Snapshot::prepared`). A
/// decision asked for right after a file changed in place — same size, modification time put
/// back, no reload tick in between — is decided and recorded on the new text, never on the
/// prepared old one; and its answer and record are those of a server started on the new text.
#[tokio::test]
async fn a_decision_right_after_a_change_is_made_on_the_new_inputs() {
    let s = Scratch::new();
    let mut cfg = s.config();
    // No tick: only the request's own check can notice the change.
    cfg.reload_interval = std::time::Duration::from_secs(3600);
    let srv = Server::start(cfg).await;
    let (st, v) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!((st, &v["data"]["policy_id"], &v["data"]["delay_minutes"]), (200, &"P005".into(), &15.into()), "{v}");

    let policies = std::fs::read_to_string(s.path("config/policies.yaml")).unwrap();
    let changed = policies.replacen("delay_minutes: 15", "delay_minutes: 45", 1);
    s.rewrite_keeping_mtime("config/policies.yaml", &changed);
    let (st, after) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!((st, &after["data"]["delay_minutes"]), (200, &45.into()), "{after}");

    // A server that starts on the changed text answers and records the same.
    let fresh = Scratch::new();
    fresh.write("config/policies.yaml", &changed);
    let fresh_srv = Server::start(fresh.config()).await;
    let (st, expected) = fresh_srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!(st, 200, "{expected}");
    let without_audit = |v: &serde_json::Value| {
        let mut d = v["data"].clone();
        d.as_object_mut().unwrap().remove("audit");
        d
    };
    assert_eq!(without_audit(&after), without_audit(&expected));
    let (spec, fresh_spec) = (s.store(), fresh.store());
    tokio::task::spawn_blocking(move || {
        let ours = open_store(&spec).unwrap().get(2).unwrap().unwrap();
        let theirs = open_store(&fresh_spec).unwrap().get(1).unwrap().unwrap();
        // The inputs' paths are each scratch directory's; everything else is the same.
        let strip = |mut b: serde_json::Value| {
            for (_, input) in b["inputs"].as_object_mut().unwrap().iter_mut() {
                input.as_object_mut().unwrap().remove("path");
            }
            b
        };
        assert_eq!((&ours.kind, &ours.recorded_at), (&theirs.kind, &theirs.recorded_at));
        assert_eq!(strip(ours.body), strip(theirs.body));
    })
    .await
    .unwrap();
}
