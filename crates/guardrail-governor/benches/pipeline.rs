//! In-process cost of one incident end to end on the sample data: plan → stress → gate over the
//! SQLite FTS5 knowledge base on disk, then the binding hash and a hash-checked dry-run
//! execution. (The whole process, with audit appends, is `guardrail incident run`.)

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use guardrail_governor::{DryRunExecutor, ToolContext, execute_checked, load_incidents, run_pipeline};
use guardrail_knowledge::{KnowledgeStore, SqliteKnowledgeStore};

fn bench(c: &mut Criterion) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/governor");
    let dir = tempfile::tempdir().expect("tempdir");
    let kb = dir.path().join("knowledge.db");
    let mut store = SqliteKnowledgeStore::create(&kb).expect("knowledge base");
    let (_, incidents) = store.load_sample_data(&examples.join("sample_data.json")).expect("sample data");
    let high = load_incidents(&examples.join("scenarios/incident_high.json")).expect("scenario");
    let now = "2026-11-24T10:00:00Z".parse().expect("time");
    let ctx = ToolContext::new(&store, now);
    c.bench_function("incident_high: plan+stress+gate (blocked)", |b| {
        b.iter(|| black_box(run_pipeline(black_box(&high[0]), &ctx).expect("pipeline")))
    });
    let exec = DryRunExecutor::default();
    c.bench_function("inc-002: plan+stress+gate+hash-checked dry run", |b| {
        b.iter(|| {
            let o = run_pipeline(black_box(&incidents[1]), &ctx).expect("pipeline");
            let h = o.binding_hash();
            black_box(execute_checked(&exec, &h, &o.incident, &o.plan.output, o.gated_action()).expect("execute"))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
