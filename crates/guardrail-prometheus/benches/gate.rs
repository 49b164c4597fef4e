//! One gate decision against a local Prometheus (the test fixture's 30-day history): the three
//! batched queries for all windows and tiers of one service, the burn arithmetic, policy
//! evaluation and the no-data check (`inputs::sources` + `gate::evaluation`; the durable
//! audit append is measured by `scripts/bench`). Prints the number of queries per decision and
//! the median latency of 200 plain decisions after criterion's own report.
//! Targets: at most 8 queries and 50 ms.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use guardrail_gate::gate;
use guardrail_gate::inputs::{self, InputArgs};
use guardrail_prometheus::Snapshot;
use guardrail_prometheus::fixture::LocalPrometheus;

const POLICIES: &str = "policies:
  - {id: P000, name: No data, priority: 0, action: DELAY, delay_minutes: 15, reason: no data, remediation: retry,
     conditions: {no_data: {operator: eq, value: true}}}
  - {id: P001, name: Low traffic, priority: 1, action: DELAY, delay_minutes: 10, reason: few events, remediation: wait,
     conditions: {burn_rate_insufficient_data: {operator: eq, value: true}}}
  - {id: P002, name: Fast burn, priority: 2, action: BLOCK, reason: burning, remediation: fix,
     conditions: {burn_rate: {operator: in, value: [high, critical]}}}
  - {id: P999, name: Healthy, priority: 99, action: ALLOW, reason: ok, remediation: none, conditions: {}}
";

fn main() {
    let p = LocalPrometheus::shared().unwrap_or_else(|e| panic!("the local Prometheus could not be started: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = dir.path();
    for sub in ["config", "data"] {
        std::fs::create_dir_all(root.join(sub)).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(root.join("config/policies.yaml"), POLICIES).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        root.join("config/slos.yaml"),
        "slos:\n  availability: {target: 99.9}\n  latency: {p95_threshold_ms: 1500}\nprometheus:\n  service: checkout-api\n  error_query: 'sum(increase(http_requests_total{service=\"burning\",code=\"500\"}[{{.window}}]))'\n  total_query: 'sum(increase(http_requests_total{service=\"burning\"}[{{.window}}]))'\n  latency:\n    histogram: 'http_request_duration_seconds_bucket{service=\"burning\"}'\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cost = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/deploy-gate/data/cost.json");
    std::fs::copy(cost, root.join("data/cost.json")).unwrap_or_else(|e| panic!("{e}"));

    let args = InputArgs {
        root: Some(root.to_path_buf()),
        prometheus: Some(p.url.clone()),
        now: Some(p.end.to_string()),
        ..InputArgs::default()
    };
    let env = |_: &str| None;
    let paths = inputs::resolve_paths(&args, &env);
    let settings = inputs::settings(&args, &env, p.end).unwrap_or_else(|e| panic!("{e:?}"));
    let decide = || {
        let sources = inputs::sources(&paths).unwrap_or_else(|e| panic!("{e:?}"));
        gate::evaluation(sources, settings.clone()).unwrap_or_else(|e| panic!("{e:?}"))
    };

    let ev = decide();
    let snap = Snapshot::from_json(&ev.sources.metrics.text).unwrap_or_else(|e| panic!("{e}"));
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    assert_eq!(ev.decision.policy_id, "P002", "the burning service must be blocked");

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("prometheus_gate_decision", |b| b.iter(|| black_box(decide())));
    c.final_summary();

    let median_of = |f: &dyn Fn()| -> Duration {
        let mut t: Vec<Duration> = (0..200)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed()
            })
            .collect();
        t.sort();
        t[t.len() / 2]
    };
    // Where the time goes: the queries (sources) and everything after them (evaluation).
    let fetch = median_of(&|| {
        black_box(inputs::sources(&paths).ok());
    });
    let sources = inputs::sources(&paths).unwrap_or_else(|e| panic!("{e:?}"));
    let evaluate = median_of(&|| {
        black_box(gate::evaluation(sources.clone(), settings.clone()).ok());
    });
    println!(
        "prometheus source: median {:.2} ms reading the inputs (the three queries), {:.2} ms evaluating them",
        fetch.as_secs_f64() * 1000.0,
        evaluate.as_secs_f64() * 1000.0
    );

    let mut times: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            black_box(decide());
            t.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    let p95 = times[times.len() * 95 / 100];
    println!(
        "prometheus source: {} queries per decision (target <= 8); median {:.2} ms, p95 {:.2} ms over {} decisions (target <= 50 ms); decision {} by {}",
        snap.query_count(),
        median.as_secs_f64() * 1000.0,
        p95.as_secs_f64() * 1000.0,
        times.len(),
        ev.decision.action,
        ev.decision.policy_id
    );
}
