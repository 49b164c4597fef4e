//! Group commit at the store: 64 gate-sized records appended one commit each, as one
//! `append_batch`, and by 16 threads through one shared store (`share`), on a SQLite file in
//! the system temp directory (a real disk: every commit is an fsync). What `guardrail serve`'s
//! recording rate rests on; the HTTP figures are `scripts/bench-http`'s.
//!
//! `claims_16_threads`: 64 execution claims (an approval's) by 16 threads through one shared
//! store whose chain already holds 5,000 claim records: `distinct` (every claim a new key, all
//! win) and `racing` (16 threads on the same 4 keys: 4 win, 60 are told the holder).

use std::sync::{Arc, Barrier};

use criterion::{Criterion, criterion_group, criterion_main};
use guardrail_core::audit::RecordDraft;
use guardrail_store::{AuditStore, open_store, share};

/// A draft about the size of a deploy decision's record (it carries the inputs' text).
fn draft(i: usize) -> RecordDraft {
    RecordDraft {
        kind: "deploy_decision".into(),
        recorded_at: "2026-02-21T00:00:00Z".into(),
        body: serde_json::json!({"i": i, "input_content": {"policies": "x".repeat(12_000)}}),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sqlite_64_records");
    g.sample_size(10);
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let spec = format!("sqlite:{}", dir.path().join("bench.db").display());

    g.bench_function("one_commit_each", |b| {
        let mut store = open_store(&spec).expect("open");
        b.iter(|| {
            for i in 0..64 {
                store.append(draft(i)).expect("append");
            }
        })
    });
    g.bench_function("append_batch", |b| {
        let mut store = open_store(&spec).expect("open");
        b.iter(|| store.append_batch((0..64).map(draft).collect()).expect("append_batch"))
    });
    g.bench_function("shared_16_threads", |b| {
        let shared = share(&spec).expect("share");
        b.iter(|| {
            let barrier = Arc::new(Barrier::new(16));
            let joins: Vec<_> = (0..16)
                .map(|t| {
                    let (shared, barrier) = (shared.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        let mut h = shared.handle();
                        for i in 0..4 {
                            h.append(draft(t * 4 + i)).expect("append");
                        }
                    })
                })
                .collect();
            joins.into_iter().for_each(|j| j.join().expect("appender"));
        })
    });
    g.finish();
}

/// An execution claim's draft (about the size of the governor's).
fn claim_draft(key: &str) -> RecordDraft {
    RecordDraft {
        kind: "execution_claim".into(),
        recorded_at: "2026-02-21T00:00:00Z".into(),
        body: serde_json::json!({
            "claim": key,
            "incident_id": "inc-1",
            "action": "rollback",
            "binding_hash": "b".repeat(64),
            "authorised_by_record": format!("12-{}", "a".repeat(12)),
            "requested_by": "bench",
            "executor": "dry-run",
        }),
    }
}

fn claims(c: &mut Criterion) {
    let mut g = c.benchmark_group("claims_16_threads");
    g.sample_size(10);
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let spec = format!("sqlite:{}", dir.path().join("claims.db").display());
    {
        let mut store = open_store(&spec).expect("open");
        for chunk in 0..10 {
            let drafts = (0..500).map(|i| claim_draft(&format!("old-{chunk}-{i}"))).collect();
            store.append_batch(drafts).expect("fill");
        }
    }
    let shared = share(&spec).expect("share");
    let run = |racing: bool, round: usize| {
        let barrier = Arc::new(Barrier::new(16));
        let joins: Vec<_> = (0..16)
            .map(|t| {
                let (shared, barrier) = (shared.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut h = shared.handle();
                    for i in 0..4 {
                        let key = if racing { format!("race-{round}-{i}") } else { format!("new-{round}-{t}-{i}") };
                        h.append_claim(claim_draft(&key), &key).expect("claim");
                    }
                })
            })
            .collect();
        joins.into_iter().for_each(|j| j.join().expect("claimant"));
    };
    let mut round = 0usize;
    g.bench_function("distinct", |b| {
        b.iter(|| {
            round += 1;
            run(false, round);
        })
    });
    g.bench_function("racing", |b| {
        b.iter(|| {
            round += 1;
            run(true, round);
        })
    });
    g.finish();
}

/// A body shaped like a 10,000-rule gate decision's: many small objects, about 8 MB of JSON.
fn large_draft() -> RecordDraft {
    let rules: Vec<serde_json::Value> = (0..40_000)
        .map(|i| {
            serde_json::json!({
                "id": format!("rule-{i}"),
                "when": {"service": "payments-api", "slo_burn_gt": 2.5, "cost_delta_pct_gt": 10},
                "then": "BLOCK",
                "reason": "burn and cost above the limits for this service tier",
            })
        })
        .collect();
    RecordDraft {
        kind: "deploy_decision".into(),
        recorded_at: "2026-02-21T00:00:00Z".into(),
        body: serde_json::json!({"rules": rules}),
    }
}

/// One small append right after a large record (what the next gate run does at 10,000 rules):
/// the append's own cost, the large record appended outside the measurement.
fn after_large(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_after_8mb_record");
    g.sample_size(10);
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let spec = format!("sqlite:{}", dir.path().join("large.db").display());
    let mut store = open_store(&spec).expect("open");
    let large = large_draft();
    g.bench_function("sqlite", |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters {
                store.append(large.clone()).expect("large");
                let t = std::time::Instant::now();
                store.append(draft(0)).expect("append");
                spent += t.elapsed();
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, bench, claims, after_large);
criterion_main!(benches);
