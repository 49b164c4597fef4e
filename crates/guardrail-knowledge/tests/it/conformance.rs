//! The knowledge tests every backend must pass, written once and run against each: the SQLite
//! FTS5 store and the Elasticsearch store (against the loopback cluster
//! `guardrail_test_support::elastic::FakeEs`). They compare documents and their order, never
//! score values: each engine has its own BM25.

use std::path::PathBuf;

use guardrail_knowledge::{
    ElasticConfig, ElasticKnowledgeStore, EvidenceDoc, KnowledgeError, KnowledgeStore, LearnedFrom, Provenance,
    Runbook, SqliteKnowledgeStore, Stance,
};

use guardrail_test_support::elastic::FakeEs;

/// A fresh, empty store of one backend (and the cluster behind it, kept alive with it).
pub struct Fresh {
    pub name: &'static str,
    pub store: Box<dyn KnowledgeStore>,
    pub _es: Option<FakeEs>,
}

pub fn backends() -> Vec<Fresh> {
    let es = FakeEs::start();
    let store = ElasticKnowledgeStore::create(ElasticConfig::new(&es.url)).expect("create the indices");
    vec![
        Fresh { name: "sqlite", store: Box::new(SqliteKnowledgeStore::open_in_memory().unwrap()), _es: None },
        Fresh { name: "elasticsearch", store: Box::new(store), _es: Some(es) },
    ]
}

fn sample_path() -> PathBuf {
    guardrail_test_support::examples("governor").join("sample_data.json")
}

/// Every backend with the sample data loaded.
fn loaded() -> Vec<Fresh> {
    let mut all = backends();
    for b in &mut all {
        let (report, incidents) = b.store.load_sample_data(&sample_path()).unwrap();
        assert_eq!((report.added, report.unchanged, incidents.len()), (10, 0, 2), "{}", b.name);
    }
    all
}

fn runbook_ids(s: &dyn KnowledgeStore, q: &str, service: &str, k: usize) -> Vec<String> {
    s.search_runbooks(q, service, k).unwrap().into_iter().map(|h| h.runbook.id).collect()
}

fn evidence_ids(s: &dyn KnowledgeStore, q: &str, service: &str, k: usize, stance: Option<Stance>) -> Vec<String> {
    s.search_evidence(q, service, k, stance).unwrap().into_iter().map(|h| h.doc.id).collect()
}

#[test]
fn sample_data_counts() {
    for b in loaded() {
        let st = b.store.stats().unwrap();
        assert_eq!(
            (st.runbooks_reviewed, st.runbooks_unreviewed, st.evidence, st.policies),
            (3, 0, 5, 2),
            "{}",
            b.name
        );
    }
}

#[test]
fn runbooks_rank_within_the_service() {
    for b in loaded() {
        let s = b.store.as_ref();
        let q = "P99 latency jumped from 220ms to 1400ms timeouts, db connection saturation";
        assert_eq!(runbook_ids(s, q, "payments-api", 3), ["rbk-api-02", "rbk-api-01"], "{}", b.name);
        let hits = s.search_runbooks(q, "payments-api", 3).unwrap();
        assert!(hits[0].score >= hits[1].score && hits[1].score > 0.0, "{}", b.name);
        assert_eq!(runbook_ids(s, "latency spike restart", "payments-api", 1), ["rbk-api-01"], "{}", b.name);
        assert!(runbook_ids(s, "latency", "billing-batch", 3).is_empty(), "{}", b.name);
        assert!(runbook_ids(s, "latency", "*", 3).is_empty(), "{}: * is not a runbook service", b.name);
        assert!(runbook_ids(s, "latency", "no-such-service", 3).is_empty(), "{}", b.name);
        // Stemming: "restarts" finds "restart(s)" on both engines.
        assert_eq!(runbook_ids(s, "restarts", "payments-api", 5), ["rbk-api-01", "rbk-api-02"], "{}", b.name);
        // No words: the service's runbooks by id, score 0.
        let all = s.search_runbooks("  -- ", "payments-api", 5).unwrap();
        assert_eq!(all.iter().map(|h| h.runbook.id.as_str()).collect::<Vec<_>>(), ["rbk-api-01", "rbk-api-02"]);
        assert!(all.iter().all(|h| h.score == 0.0), "{}", b.name);
        assert_eq!(runbook_ids(s, "", "payments-api", 1), ["rbk-api-01"], "{}", b.name);
    }
}

#[test]
fn evidence_filters_by_service_and_stance() {
    for b in loaded() {
        let s = b.store.as_ref();
        let sup = evidence_ids(s, "restart db latency", "payments-api", 3, Some(Stance::Support));
        assert_eq!(sup, ["ev-100"], "{}", b.name);
        let mut con = evidence_ids(s, "restart db latency", "payments-api", 3, Some(Stance::Contradict));
        con.sort();
        assert_eq!(con, ["ev-101", "ev-102"], "{}", b.name);
        let batch = evidence_ids(s, "worker pool scaling", "billing-batch", 5, None);
        assert_eq!(batch, ["ev-103", "ev-104"], "{}", b.name);
        // `*`: every service's evidence.
        let all = evidence_ids(s, "saturation", "*", 10, None);
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, ["ev-102", "ev-104"], "{}", b.name);
        assert_eq!(evidence_ids(s, "", "billing-batch", 10, None), ["ev-103", "ev-104"], "{}", b.name);
    }
}

#[test]
fn query_syntax_is_inert() {
    for b in loaded() {
        let s = b.store.as_ref();
        for q in [
            "latency OR",
            "NEAR(latency restart)",
            "title:latency",
            "\"latency",
            "latency*",
            "AND",
            "'; DROP TABLE runbooks; --",
            "{\"match_all\": {}}",
        ] {
            let r = s.search_runbooks(q, "payments-api", 5);
            assert!(r.is_ok(), "{}: {q}: {r:?}", b.name);
        }
        assert_eq!(runbook_ids(s, "title:latency", "payments-api", 5), ["rbk-api-01"], "{}", b.name);
    }
}

#[test]
fn wildcard_policies_apply_to_every_service() {
    for b in loaded() {
        let s = b.store.as_ref();
        let ids = |svc: &str| s.policies_for(svc).unwrap().into_iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids("payments-api"), ["pol-approval-01", "pol-general-01"], "{}", b.name);
        assert_eq!(ids("billing-batch"), ["pol-general-01"], "{}", b.name);
        let p = s.policies_for("payments-api").unwrap();
        assert_eq!(p[0].blocked_actions, ["restart_api_pods"], "{}", b.name);
    }
}

fn learned(id: &str, reviewed: bool) -> Runbook {
    Runbook {
        id: id.into(),
        service: "payments-api".into(),
        title: "Learned: latency spike fix".into(),
        recommended_action: "restart_api_pods".into(),
        body: "latency spike restart".into(),
        reviewed,
        provenance: Provenance {
            source: "agent_learning".into(),
            origin: Some("inc-9".into()),
            reviewed_by: None,
            recorded_at: Some("2026-01-01T00:00:00Z".into()),
            learned: Some(LearnedFrom {
                incident_id: "inc-9".into(),
                audit_record: "7-abcdef123456".into(),
                learned_by: "alice".into(),
            }),
        },
    }
}

#[test]
fn unreviewed_runbooks_are_never_returned_and_review_makes_them_searchable_once() {
    for mut b in loaded() {
        let s = b.store.as_mut();
        assert_eq!(s.add_runbook(&learned("rbk-learned-1", false)).unwrap().added, 1, "{}", b.name);
        assert!(!runbook_ids(s, "latency spike restart", "payments-api", 10).contains(&"rbk-learned-1".to_string()));
        assert_eq!(s.stats().unwrap().runbooks_unreviewed, 1, "{}", b.name);
        let got = s.runbook("rbk-learned-1").unwrap().expect("readable by id");
        assert_eq!(got, learned("rbk-learned-1", false), "{}: stored as written, provenance included", b.name);
        let r = s.mark_reviewed("rbk-learned-1", "bob", "2026-01-02T00:00:00Z").unwrap();
        assert!(r.reviewed);
        assert_eq!(r.provenance.reviewed_by.as_deref(), Some("bob"));
        assert!(
            runbook_ids(s, "latency spike restart", "payments-api", 10).contains(&"rbk-learned-1".to_string()),
            "{}",
            b.name
        );
        assert_eq!(s.runbook("rbk-learned-1").unwrap(), Some(r), "{}", b.name);
        let again = s.mark_reviewed("rbk-learned-1", "carol", "2026-01-03T00:00:00Z");
        assert!(matches!(again, Err(KnowledgeError::Invalid { .. })), "{}: {again:?}", b.name);
        let missing = s.mark_reviewed("rbk-nope", "carol", "2026-01-03T00:00:00Z");
        assert!(matches!(missing, Err(KnowledgeError::Invalid { .. })), "{}: {missing:?}", b.name);
        assert_eq!(s.runbook("rbk-nope").unwrap(), None, "{}", b.name);
        let st = s.stats().unwrap();
        assert_eq!((st.runbooks_reviewed, st.runbooks_unreviewed), (4, 0), "{}", b.name);
    }
}

#[test]
fn loading_is_idempotent_and_never_overwrites() {
    for mut b in loaded() {
        let s = b.store.as_mut();
        let (again, _) = s.load_sample_data(&sample_path()).unwrap();
        assert_eq!((again.added, again.unchanged), (0, 10), "{}", b.name);
        let mut changed = s.runbook("rbk-api-01").unwrap().unwrap();
        changed.body = "something else".into();
        let e = s.add_runbook(&changed);
        assert!(matches!(e, Err(KnowledgeError::Conflict { kind: "runbook", .. })), "{}: {e:?}", b.name);
        let ev = EvidenceDoc {
            id: "ev-100".into(),
            service: "payments-api".into(),
            stance: Stance::Contradict,
            text: "x".into(),
        };
        assert!(matches!(s.add_evidence(&ev), Err(KnowledgeError::Conflict { kind: "evidence", .. })), "{}", b.name);
        assert!(s.runbook("rbk-api-01").unwrap().unwrap().body.starts_with("If latency spikes"), "{}", b.name);
    }
}

#[test]
fn runbook_files_load() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("rbk-md-1.md");
    std::fs::write(
        &md,
        "---\nservice: billing-batch\nrecommended_action: scale_worker_pool\n---\n# Queue delay triage\n\nWhen queue delay rises, scale workers.\n",
    )
    .unwrap();
    for mut b in backends() {
        let s = b.store.as_mut();
        assert_eq!(s.add_runbook_file(&md).unwrap().added, 1, "{}", b.name);
        let hits = s.search_runbooks("queue delay", "billing-batch", 5).unwrap();
        assert_eq!(hits.len(), 1, "{}", b.name);
        assert_eq!(hits[0].runbook.title, "Queue delay triage", "{}", b.name);
        assert_eq!(hits[0].runbook.provenance.source, "file", "{}", b.name);
    }
}

#[test]
fn a_streamed_file_loads_like_the_whole_text() {
    let text = std::fs::read_to_string(sample_path()).unwrap();
    for mut b in backends() {
        let mut seen = Vec::new();
        let (report, incidents) =
            b.store.load_stream(&mut text.as_bytes(), "sample_data.json", &mut |n| seen.push(n)).unwrap();
        assert_eq!((report.added, incidents), (10, 2), "{}", b.name);
        assert_eq!(seen.last(), Some(&10), "{}", b.name);
        let q = "P99 latency jumped from 220ms to 1400ms timeouts, db connection saturation";
        assert_eq!(runbook_ids(b.store.as_ref(), q, "payments-api", 3), ["rbk-api-02", "rbk-api-01"], "{}", b.name);
        // The streamed runbooks carry the same provenance as the whole-text reader's.
        let r = b.store.runbook("rbk-api-01").unwrap().unwrap();
        assert_eq!(
            (r.provenance.source.as_str(), r.provenance.origin.as_deref()),
            ("sample_data", Some("sample_data.json"))
        );
    }
}

#[test]
fn a_streamed_file_with_a_bad_document_names_it() {
    let text = r#"{"runbooks": [{"id": "a", "service": "s", "recommended_action": "x"},
                                {"id": "b", "service": "s", "recommended_action": 7}]}"#;
    for mut b in backends() {
        let e = b.store.load_stream(&mut text.as_bytes(), "big.json", &mut |_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "big.json: runbooks[1].recommended_action: must be a string, found a number",
            "{}",
            b.name
        );
        let dup = r#"{"evidence": [{"id": "e", "service": "*", "stance": "support", "text": "t"},
                                   {"id": "e", "service": "*", "stance": "support", "text": "t"}]}"#;
        let e = b.store.load_stream(&mut dup.as_bytes(), "dup.json", &mut |_| ()).unwrap_err();
        assert_eq!(e.to_string(), "dup.json: evidence[1].id: duplicate id \"e\"", "{}", b.name);
        let e = b.store.load_stream(&mut r#"{"policy": []}"#.as_bytes(), "typo.json", &mut |_| ()).unwrap_err();
        assert!(e.to_string().starts_with("typo.json: policy: unknown field"), "{}: {e}", b.name);
        let e = b.store.load_stream(&mut r#"{"runbooks": [ {"id": "#.as_bytes(), "cut.json", &mut |_| ()).unwrap_err();
        assert!(matches!(e, KnowledgeError::Syntax { .. }), "{}: {e}", b.name);
    }
}
