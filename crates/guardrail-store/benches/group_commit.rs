//! Group commit at the store: 64 gate-sized records appended one commit each, as one
//! `append_batch`, and by 16 threads through one shared store (`share`), on a SQLite file in
//! the system temp directory (a real disk: every commit is an fsync). What `guardrail serve`'s
//! recording rate rests on; the HTTP figures are `scripts/bench-http`'s.

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

criterion_group!(benches, bench);
criterion_main!(benches);
