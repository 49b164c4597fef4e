//! The SQLite FTS5 store over the original's sample data: filters, ranking, review gating,
//! idempotent loads, and failures that must be errors rather than empty results.

use std::path::PathBuf;

use guardrail_knowledge::{
    EvidenceDoc, KnowledgeError, KnowledgeStore, Provenance, Runbook, SqliteKnowledgeStore, Stance,
};

fn sample_path() -> PathBuf {
    guardrail_test_support::examples("governor").join("sample_data.json")
}

fn loaded() -> SqliteKnowledgeStore {
    let mut s = SqliteKnowledgeStore::open_in_memory().unwrap();
    let (report, incidents) = s.load_sample_data(&sample_path()).unwrap();
    assert_eq!(report.added, 10);
    assert_eq!(incidents.len(), 2);
    s
}

#[test]
fn fts5_is_compiled_in_and_sample_data_loads() {
    let s = loaded();
    let st = s.stats().unwrap();
    assert_eq!((st.runbooks_reviewed, st.runbooks_unreviewed, st.evidence, st.policies), (3, 0, 5, 2));
    s.verify().unwrap();
}

#[test]
fn runbooks_rank_by_bm25_within_the_service() {
    let s = loaded();
    let hits = s
        .search_runbooks(
            "P99 latency jumped from 220ms to 1400ms timeouts, db connection saturation",
            "payments-api",
            3,
        )
        .unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.runbook.id.as_str()).collect();
    // Connection-pool exhaustion matches "connection" and "saturation"; the first commit's
    // token-overlap ranking put it first too.
    assert_eq!(ids, vec!["rbk-api-02", "rbk-api-01"]);
    assert!(hits[0].score >= hits[1].score);
    assert!(s.search_runbooks("latency", "billing-batch", 3).unwrap().is_empty());
    assert!(s.search_runbooks("latency", "*", 3).unwrap().is_empty(), "* is not a runbook service");
    // No words: the service's runbooks by id.
    let all: Vec<String> =
        s.search_runbooks("  -- ", "payments-api", 5).unwrap().into_iter().map(|h| h.runbook.id).collect();
    assert_eq!(all, vec!["rbk-api-01", "rbk-api-02"]);
}

#[test]
fn evidence_filters_by_service_and_stance() {
    let s = loaded();
    let sup = s.search_evidence("restart db latency", "payments-api", 3, Some(Stance::Support)).unwrap();
    assert_eq!(sup.iter().map(|h| h.doc.id.as_str()).collect::<Vec<_>>(), vec!["ev-100"]);
    let con = s.search_evidence("restart db latency", "payments-api", 3, Some(Stance::Contradict)).unwrap();
    let mut ids: Vec<&str> = con.iter().map(|h| h.doc.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, vec!["ev-101", "ev-102"]);
    assert!(s.search_evidence("restart", "elastic-downloads", 3, None).unwrap().is_empty());
}

#[test]
fn fts_syntax_in_queries_is_inert() {
    let s = loaded();
    for q in ["\"", "NEAR(a b)", "title:restart", "restart*", "' OR 1=1 --", "AND OR NOT"] {
        s.search_runbooks(q, "payments-api", 3).unwrap();
        s.search_evidence(q, "payments-api", 3, None).unwrap();
    }
}

#[test]
fn wildcard_policies_apply_to_every_service() {
    let s = loaded();
    let ids: Vec<String> = s.policies_for("payments-api").unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(ids, vec!["pol-approval-01", "pol-general-01"]);
    let ids: Vec<String> = s.policies_for("billing-batch").unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(ids, vec!["pol-general-01"]);
}

fn learned(id: &str, reviewed: bool) -> Runbook {
    Runbook {
        id: id.into(),
        service: "payments-api".into(),
        title: "Latency latency latency".into(),
        recommended_action: "kubectl delete ns prod".into(),
        body: "P99 latency timeouts db connection saturation".into(),
        reviewed,
        provenance: Provenance {
            source: "agent_learning".into(),
            origin: Some("inc-001".into()),
            reviewed_by: None,
            recorded_at: None,
            learned: None,
        },
    }
}

#[test]
fn unreviewed_runbooks_are_never_returned() {
    let mut s = loaded();
    s.add_runbook(&learned("rbk-learned-1", false)).unwrap();
    let hits = s.search_runbooks("P99 latency timeouts db connection saturation", "payments-api", 10).unwrap();
    assert!(hits.iter().all(|h| h.runbook.id != "rbk-learned-1"));
    assert_eq!(s.stats().unwrap().runbooks_unreviewed, 1);
    // Still readable by id, for review.
    assert!(!s.runbook("rbk-learned-1").unwrap().unwrap().reviewed);
}

#[test]
fn loading_is_idempotent_and_never_overwrites() {
    let mut s = loaded();
    let (again, _) = s.load_sample_data(&sample_path()).unwrap();
    assert_eq!((again.added, again.unchanged), (0, 10));
    let mut poisoned = learned("rbk-api-01", false);
    poisoned.service = "payments-api".into();
    assert!(matches!(s.add_runbook(&poisoned), Err(KnowledgeError::Conflict { kind: "runbook", .. })));
    let ev = EvidenceDoc {
        id: "ev-100".into(),
        service: "payments-api".into(),
        stance: Stance::Contradict,
        text: "x".into(),
    };
    assert!(matches!(s.add_evidence(&ev), Err(KnowledgeError::Conflict { .. })));
}

#[test]
fn a_failed_batch_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    // The second runbook clashes with the first store content only after the first is added.
    std::fs::write(
        &bad,
        r#"{"runbooks":[{"id":"new-1","service":"payments-api","recommended_action":"x"}],
            "evidence":[{"id":"ev-100","service":"payments-api","stance":"contradict","text":"changed"}]}"#,
    )
    .unwrap();
    let mut s = loaded();
    assert!(s.load_sample_data(&bad).is_err());
    assert!(s.runbook("new-1").unwrap().is_none(), "the batch is atomic");
}

#[test]
fn missing_and_broken_indexes_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join(".guardrail/knowledge.db");
    assert!(matches!(SqliteKnowledgeStore::open(&missing), Err(KnowledgeError::NotFound(_))));

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a sqlite database, not even close, just text............").unwrap();
    assert!(matches!(SqliteKnowledgeStore::open(&garbage), Err(KnowledgeError::Index { .. })));

    let created = dir.path().join("kb/knowledge.db");
    {
        let mut s = SqliteKnowledgeStore::create(&created).unwrap();
        s.load_sample_data(&sample_path()).unwrap();
    }
    let s = SqliteKnowledgeStore::open(&created).unwrap();
    assert_eq!(s.stats().unwrap().evidence, 5);
    drop(s);
    // Drop the evidence index behind the store's back.
    rusqlite::Connection::open(&created).unwrap().execute_batch("DROP TABLE evidence_fts").unwrap();
    assert!(matches!(SqliteKnowledgeStore::open(&created), Err(KnowledgeError::Index { .. })));
}

#[test]
fn runbook_files_load() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("restart.md");
    std::fs::write(
        &md,
        "---\nservice: payments-api\nrecommended_action: Restart the payments-api pods\n---\n# Rolling restart\nRestart pods one at a time.\n",
    )
    .unwrap();
    let mut s = loaded();
    assert_eq!(s.add_runbook_file(&md).unwrap().added, 1);
    let r = s.runbook("restart").unwrap().unwrap();
    assert_eq!(r.title, "Rolling restart");
    assert_eq!(r.provenance.origin.as_deref(), Some(md.display().to_string().as_str()));
}

#[test]
fn review_makes_a_learned_runbook_searchable_once() {
    let mut s = loaded();
    s.add_runbook(&learned("rbk-learned-1", false)).unwrap();
    assert!(
        s.search_runbooks("latency timeouts", "payments-api", 10)
            .unwrap()
            .iter()
            .all(|h| h.runbook.id != "rbk-learned-1")
    );
    let r = s.mark_reviewed("rbk-learned-1", "bob", "2026-11-24T10:00:00Z").unwrap();
    assert!(r.reviewed);
    assert_eq!(r.provenance.reviewed_by.as_deref(), Some("bob"));
    assert_eq!(s.runbook("rbk-learned-1").unwrap().unwrap(), r);
    assert!(
        s.search_runbooks("latency timeouts", "payments-api", 10)
            .unwrap()
            .iter()
            .any(|h| h.runbook.id == "rbk-learned-1")
    );
    // Twice, or a runbook that does not exist: errors naming it.
    let e = s.mark_reviewed("rbk-learned-1", "bob", "2026-11-24T10:00:00Z").unwrap_err();
    assert!(e.to_string().contains("already reviewed"), "{e}");
    let e = s.mark_reviewed("nope", "bob", "2026-11-24T10:00:00Z").unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    s.verify().unwrap();
}

#[test]
fn a_read_only_open_reads_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("knowledge.db");
    {
        let mut s = SqliteKnowledgeStore::create(&path).unwrap();
        s.load_sample_data(&sample_path()).unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let mut s = SqliteKnowledgeStore::open_read_only(&path).unwrap();
    assert_eq!(s.stats().unwrap().evidence, 5);
    assert!(!s.search_runbooks("db connection saturation", "payments-api", 3).unwrap().is_empty());
    // A write through a read-only store is an error, not a silent change.
    let mut copy = s.search_runbooks("latency", "payments-api", 1).unwrap()[0].runbook.clone();
    copy.id = "rbk-new-1".into();
    match s.add_runbook(&copy) {
        Err(KnowledgeError::Index { message, .. }) => assert!(message.contains("readonly"), "{message}"),
        other => panic!("{other:?}"),
    }
    drop(s);
    assert_eq!(std::fs::read(&path).unwrap(), before, "a read-only open changes nothing on disk");
    // The same refusals as a writable open: missing file, not a knowledge base.
    assert!(matches!(
        SqliteKnowledgeStore::open_read_only(&dir.path().join("nope.db")),
        Err(KnowledgeError::NotFound(_))
    ));
    rusqlite::Connection::open(&path).unwrap().execute_batch("DROP TABLE policies_fts").unwrap();
    match SqliteKnowledgeStore::open_read_only(&path) {
        Err(KnowledgeError::Index { message, .. }) => assert!(message.contains("policies_fts"), "{message}"),
        other => panic!("{other:?}"),
    }
}
