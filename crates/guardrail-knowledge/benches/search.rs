//! In-process knowledge search at scale: 10,000 and 100,000 runbooks (a fifth as much evidence)
//! over 500 services, generated with the same word distribution as `scripts/gen-kb`, plus the
//! shipped sample. The whole-process figures (`kb search`, `incident run`) are `scripts/bench`'s.
//!
//! ```sh
//! cargo bench -p guardrail-knowledge --bench search -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use guardrail_knowledge::{
    EvidenceDoc, KnowledgeDocs, KnowledgeStore, Provenance, Runbook, SqliteKnowledgeStore, Stance,
};

const SRE: &[&str] = &[
    "latency",
    "spike",
    "restart",
    "pods",
    "api",
    "database",
    "connection",
    "pool",
    "saturation",
    "timeout",
    "error",
    "rate",
    "queue",
    "backlog",
    "worker",
    "scale",
    "throttle",
    "traffic",
    "rollback",
    "deploy",
    "canary",
    "memory",
    "leak",
    "cpu",
    "throttling",
    "disk",
    "pressure",
    "node",
    "drain",
    "failover",
    "replica",
    "lag",
    "cache",
    "eviction",
    "dns",
    "tls",
    "certificate",
    "expiry",
    "gateway",
    "proxy",
];

/// xorshift: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    /// A word with Zipf-Mandelbrot weight 1/(k+40) over the SRE words then 4,000 fillers
    /// (rejection sampling against the first word's weight).
    fn word(&mut self) -> String {
        loop {
            let k = self.below(SRE.len() + 4000);
            if self.below(1_000_000) < 40 * 1_000_000 / (k + 40) {
                return if k < SRE.len() { SRE[k].to_string() } else { format!("w{k}") };
            }
        }
    }

    fn text(&mut self, n: usize) -> String {
        (0..n).map(|_| self.word()).collect::<Vec<_>>().join(" ")
    }
}

fn store(runbooks: usize) -> SqliteKnowledgeStore {
    let mut rng = Rng(0x5EED_0014);
    let services: Vec<String> = ["payments-api".to_string(), "billing-batch".to_string()]
        .into_iter()
        .chain((0..498).map(|i| format!("svc-{i:04}")))
        .collect();
    let mut docs = KnowledgeDocs::default();
    for i in 0..runbooks {
        let n = 30 + rng.below(50);
        docs.runbooks.push(Runbook {
            id: format!("rbk-gen-{i:06}"),
            service: services[rng.below(services.len())].clone(),
            title: rng.text(3),
            recommended_action: "restart_api_pods".into(),
            body: rng.text(n),
            reviewed: true,
            provenance: Provenance {
                source: "bench".into(),
                origin: None,
                reviewed_by: None,
                recorded_at: None,
                learned: None,
            },
        });
    }
    for i in 0..runbooks / 5 {
        let n = 12 + rng.below(28);
        docs.evidence.push(EvidenceDoc {
            id: format!("ev-gen-{i:06}"),
            service: if rng.below(50) == 0 { "*".into() } else { services[rng.below(services.len())].clone() },
            stance: if rng.below(2) == 0 { Stance::Support } else { Stance::Contradict },
            text: rng.text(n),
        });
    }
    let mut s = SqliteKnowledgeStore::open_in_memory().expect("in-memory store");
    s.add_docs(&docs).expect("load");
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/governor/sample_data.json");
    s.load_sample_data(&sample).expect("sample data");
    s.optimize().expect("optimize");
    s
}

fn search(c: &mut Criterion) {
    for n in [10_000, 100_000] {
        let s = store(n);
        let mut g = c.benchmark_group(format!("knowledge_{}k", n / 1000));
        g.bench_function("search_runbooks", |b| {
            b.iter(|| s.search_runbooks("latency spike restart", "payments-api", 5).expect("search"))
        });
        g.bench_function("search_evidence_service", |b| {
            b.iter(|| s.search_evidence("restart db latency", "payments-api", 5, None).expect("search"))
        });
        g.bench_function("search_evidence_all_services", |b| {
            b.iter(|| s.search_evidence("restart db latency", "*", 5, None).expect("search"))
        });
        g.finish();
    }
}

criterion_group!(benches, search);
criterion_main!(benches);
