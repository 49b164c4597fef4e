//! An SLO file with a `prometheus:` block: the server fetches the metrics from Prometheus as
//! `guardrail gate` does (a real Prometheus serving the fixture's known history), decides the
//! same, and records the fetched snapshot. Needs `prometheus` and `promtool` (Debian's
//! `prometheus` package, which `scripts/test` installs); no skipping.

use crate::common;

use common::{DEPLOYER, Scratch, Server};
use guardrail_gate::inputs::{self, InputArgs};
use guardrail_prometheus::fixture::LocalPrometheus;

/// The SLO file for `service`. The per-request timeout is the longest allowed: the queries
/// answer in milliseconds, but on a loaded CI machine the default two seconds can pass, and a
/// timed-out query is "no data", another decision.
fn slos_yaml(service: &str) -> String {
    format!(
        "slos:\n  availability: {{target: 99.9}}\n  latency: {{p95_threshold_ms: 500, p99_threshold_ms: 1000}}\nprometheus:\n  service: {service}\n  error_query: 'sum(increase(http_requests_total{{service=\"{service}\",code=\"500\"}}[{{{{.window}}}}]))'\n  total_query: 'sum(increase(http_requests_total{{service=\"{service}\"}}[{{{{.window}}}}]))'\n  latency:\n    histogram: 'http_request_duration_seconds_bucket{{service=\"{service}\"}}'\n  retries: 0\n  timeout_ms: 60000\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_are_fetched_decided_and_recorded_like_the_gate() {
    let prom = tokio::task::spawn_blocking(|| {
        LocalPrometheus::shared().unwrap_or_else(|e| panic!("the local Prometheus could not be started: {e}"))
    })
    .await
    .unwrap();
    let s = Scratch::new();
    s.write("config/slos.yaml", &slos_yaml("healthy"));
    let cost = std::fs::read_to_string(s.path("data/cost.json")).unwrap().replace("checkout-api", "healthy");
    s.write("data/cost.json", &cost);
    let mut cfg = s.config();
    cfg.inputs.now = Some(prom.end.to_string());
    cfg.inputs.prometheus = Some(prom.url.clone());

    // What `guardrail gate` decides on the same flags.
    let args = InputArgs {
        root: Some(s.root().to_path_buf()),
        now: Some(prom.end.to_string()),
        prometheus: Some(prom.url.clone()),
        ..InputArgs::default()
    };
    let cli = tokio::task::spawn_blocking(move || {
        let env = |_: &str| None;
        let paths = inputs::resolve_paths(&args, &env);
        let settings = inputs::settings(&args, &env, jiff::Timestamp::now()).unwrap();
        let ev = guardrail_gate::gate::evaluation(inputs::sources(&paths).unwrap(), settings).unwrap();
        (ev.decision.action.as_str().to_string(), ev.decision.policy_id.clone())
    })
    .await
    .unwrap();

    let srv = Server::start(cfg).await;
    let (st, d) = srv.get("/api/decision").await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(
        (d["data"]["action"].as_str().unwrap(), d["data"]["policy_id"].as_str().unwrap()),
        (cli.0.as_str(), cli.1.as_str())
    );
    let metrics_path = d["data"]["inputs"]["metrics"]["path"].as_str().unwrap();
    assert!(metrics_path.starts_with("prometheus:"), "{metrics_path}");
    assert!(d["data"]["slo"]["prometheus"].is_object(), "the SLO block is the live one: {}", d["data"]["slo"]);

    let (st, g) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(g["data"]["action"], d["data"]["action"]);
    let mut store = guardrail_store::open_store(&s.store()).unwrap();
    let rec = store.get(1).unwrap().unwrap();
    let recorded = rec.body["input_content"]["metrics"].as_str().unwrap();
    assert!(
        guardrail_prometheus::Snapshot::from_json(recorded).is_ok(),
        "the fetched snapshot is recorded: {recorded}"
    );
}

/// `guardrail serve` over a Sloth file: the service is picked by `--service`, the decision is
/// the gate's, the SLO block says latency is not read, and `POST /api/gate` records the
/// snapshot with the selection in its settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sloth_spec_is_served_like_the_gate_decides_it() {
    let prom = tokio::task::spawn_blocking(|| {
        LocalPrometheus::shared().unwrap_or_else(|e| panic!("the local Prometheus could not be started: {e}"))
    })
    .await
    .unwrap();
    let s = Scratch::new();
    let mut sloth = String::from("version: prometheus/v1\nservice: burning\nslos:\n");
    sloth.push_str("  - name: availability\n    objective: 99.9\n    sli:\n      events:\n        error_query: sum(rate(http_requests_total{service=\"burning\",code=\"500\"}[{{.window}}]))\n        total_query: sum(rate(http_requests_total{service=\"burning\"}[{{.window}}]))\n");
    // A generous timeout (Guardrail's extension, no latency source): see `slos_yaml`.
    sloth.push_str("    guardrail: {timeout_ms: 60000, retries: 0}\n");
    s.write("config/slos.yaml", &sloth);
    let cost = std::fs::read_to_string(s.path("data/cost.json")).unwrap().replace("checkout-api", "burning");
    s.write("data/cost.json", &cost);
    let mut cfg = s.config();
    cfg.inputs.now = Some(prom.end.to_string());
    cfg.inputs.prometheus = Some(prom.url.clone());
    cfg.inputs.service = Some("burning".into());
    let srv = Server::start(cfg).await;
    let (st, d) = srv.get("/api/slo").await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["data"]["burn_rate"], "critical", "{d}");
    assert_eq!(d["data"]["burn_rate_value"], 20.0);
    assert_eq!(d["data"]["details"]["service"], "burning");
    assert!(d["data"]["prometheus"]["latency_unavailable"].as_str().unwrap().contains("no latency source"));
    assert!(d["data"]["latency_p95_ms"].is_null(), "{d}");
    let (st, g) = srv.post("/api/gate", Some(DEPLOYER), "{}").await;
    assert_eq!(st, 200, "{g}");
    // The bundled policies decide on the critical burn (P004, DELAY) before their latency rule
    // (P007), which is not evaluated; the signals the rules saw have no latency.
    assert_eq!((g["data"]["action"].as_str(), g["data"]["policy_id"].as_str()), (Some("DELAY"), Some("P004")));
    let p007 = g["data"]["trace"].as_array().unwrap().iter().find(|t| t["id"] == "P007").unwrap();
    assert!(p007["why"].as_str().unwrap().contains("latency_compliant is unavailable"), "{p007}");
    assert!(g["data"]["signals"]["latency_p95_ms"].is_null(), "{g}");
    let mut store = guardrail_store::open_store(&s.store()).unwrap();
    let rec = store.get(1).unwrap().unwrap();
    assert_eq!(rec.body["settings"]["service"], "burning");
    let snap =
        guardrail_prometheus::Snapshot::from_json(rec.body["input_content"]["metrics"].as_str().unwrap()).unwrap();
    assert_eq!(snap.query_count(), 2, "counts and freshness; no latency query");
    assert!(snap.latency_unavailable.is_some());
}
