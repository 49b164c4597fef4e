//! The Prometheus source against a real Prometheus serving a known 30-day history
//! (`guardrail_prometheus::fixture`): every figure is checked against values worked out by
//! hand from the fixture's table. There is no skipping: without `prometheus` and `promtool`
//! (Debian's `prometheus` package, which `scripts/test` installs) these tests fail.
//!
//! Hand computation, per 2-minute step: `healthy` serves 2400 requests with 1 error, so over
//! a window of n steps errors = n and total = 2400·n; the error ratio is 1/2400 and the burn
//! rate (1/2400)/0.001 = 0.41667 in every window. Windows: 5m = 2.5 steps, 30m = 15, 1h = 30,
//! 2h = 60, 6h = 180, 1d = 720, 3d = 2160, 30d = 21600.

use guardrail_core::burn::{self, TierState, Window};
use guardrail_core::signals::{SignalValue, Signals};
use guardrail_core::slo::{BurnLabel, SloReport};
use guardrail_prometheus::fixture::LocalPrometheus;
use guardrail_prometheus::{Snapshot, fetch};

fn prom() -> &'static LocalPrometheus {
    LocalPrometheus::shared().unwrap_or_else(|e| panic!("the local Prometheus could not be started: {e}"))
}

const SLOS: &str =
    "slos:\n  availability: {target: 99.9}\n  latency: {p95_threshold_ms: 500, p99_threshold_ms: 1000}\n";

fn slos_yaml(service: &str, extra: &str) -> String {
    format!(
        "{SLOS}prometheus:\n  service: {service}\n  error_query: 'sum(increase(http_requests_total{{service=\"{service}\",code=\"500\"}}[{{{{.window}}}}]))'\n  total_query: 'sum(increase(http_requests_total{{service=\"{service}\"}}[{{{{.window}}}}]))'\n  latency:\n    histogram: 'http_request_duration_seconds_bucket{{service=\"{service}\"}}'\n  retries: 0\n{extra}"
    )
}

fn source(text: &str) -> guardrail_config::Source {
    guardrail_config::Source { path: "slos.yaml".into(), text: text.into(), sha256: String::new() }
}

/// Fetches at `at` (default: the end of the history) and evaluates.
fn observe_at(yaml: &str, url: &str, at: jiff::Timestamp) -> (Snapshot, SloReport) {
    let src = source(yaml);
    let spec = guardrail_config::load_slos(&src).unwrap_or_else(|e| panic!("{e:?}")).value;
    let prom_spec = guardrail_config::load_prometheus(&src).unwrap_or_else(|e| panic!("{e:?}")).unwrap().value;
    let snap = fetch(&prom_spec, url, at).unwrap();
    // Evaluate what the gate records: the snapshot's JSON, read back.
    let reread = Snapshot::from_json(&snap.to_json()).unwrap();
    assert_eq!(reread, snap);
    let report = burn::evaluate(&spec, &prom_spec.burn, &reread.to_observation().unwrap()).unwrap();
    (snap, report)
}

fn observe(service: &str, extra: &str) -> (Snapshot, SloReport) {
    let p = prom();
    observe_at(&slos_yaml(service, extra), &p.url, p.end)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn assert_close(what: &str, got: Option<f64>, want: f64) {
    let g = got.unwrap_or_else(|| panic!("{what}: no value, expected {want}"));
    assert!(close(g, want), "{what}: got {g}, expected {want}");
}

/// Checks the windows' (errors, total) and burn rates against a hand-made table.
fn assert_windows(snap: &Snapshot, r: &SloReport, table: &[(&str, f64, f64, f64)]) {
    let p = r.prometheus.as_ref().unwrap();
    assert_eq!(p.windows.len(), table.len());
    for (w, errors, total, burn) in table {
        let c = snap.counts.get(*w).unwrap_or_else(|| panic!("no counts for {w}"));
        assert_close(&format!("errors@{w}"), c.errors, *errors);
        assert_close(&format!("total@{w}"), c.total, *total);
        let wr = p.windows.iter().find(|x| x.window.to_string() == *w).unwrap();
        assert_close(&format!("burn@{w}"), wr.burn_rate, *burn);
    }
}

fn signals(r: &SloReport) -> Signals {
    let mut s = Signals::default();
    r.prometheus.as_ref().unwrap().apply(&mut s);
    s
}

#[test]
fn healthy_service_figures_match_the_hand_computation() {
    let (snap, r) = observe("healthy", "");
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    let b = 1.0 / 2400.0 / 0.001;
    assert_windows(
        &snap,
        &r,
        &[
            ("5m", 2.5, 6000.0, b),
            ("30m", 15.0, 36_000.0, b),
            ("1h", 30.0, 72_000.0, b),
            ("2h", 60.0, 144_000.0, b),
            ("6h", 180.0, 432_000.0, b),
            ("1d", 720.0, 1_728_000.0, b),
            ("3d", 2160.0, 5_184_000.0, b),
            ("30d", 21_600.0, 51_840_000.0, b),
        ],
    );
    let p = r.prometheus.as_ref().unwrap();
    assert!(!p.no_data);
    // 1 − 1/2400 = 99.958333 %; budget left 1 − 0.41667 = 58.33 %.
    assert_eq!(r.availability_pct, 99.958333);
    assert_eq!(r.error_budget_pct, 58.33);
    assert_close("budget spent", p.budget_spent, b);
    assert!(p.tiers.iter().all(|t| t.state == TierState::Quiet), "{:?}", p.tiers);
    assert_eq!(p.label, Some(BurnLabel::Low));
    assert_eq!(r.burn_rate, BurnLabel::Low);
    assert_eq!(r.burn_rate_value, 0.42);
    // Per step 1440 ≤ 0.1 s, 720 ≤ 0.25 s, 192 ≤ 0.5 s, 48 ≤ 1 s. p95: rank 0.95·2400 = 2280 in
    // (0.25, 0.5]: 0.25 + 0.25·(2280 − 2160)/192 = 0.40625 s. p99: rank 2376 in (0.5, 1]:
    // 0.5 + 0.5·(2376 − 2352)/48 = 0.75 s.
    assert_close("p95", Some(r.latency_p95_ms.value), 406.25);
    assert_close("p99", r.latency_p99_ms.map(|n| n.value), 750.0);
    assert!(r.latency_compliant && r.availability_compliant && r.healthy);
    assert_eq!(r.details.total_requests, 51_840_000);
    assert_eq!(r.details.failed_requests, 21_600);
    assert_eq!(p.newest_sample_at.as_deref(), Some(prom().end.to_string().as_str()));
    assert_eq!(p.sample_age_seconds, Some(0));
    let s = signals(&r);
    assert_eq!(s.get("no_data"), Some(&SignalValue::Bool(false)));
    assert_eq!(s.get("burn_rate_insufficient_data"), Some(&SignalValue::Bool(false)));
}

#[test]
fn burning_service_fires_the_fast_page_tier() {
    let (snap, r) = observe("burning", "");
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    // 48 errors per step during the last hour (2 %, 20×), 1 per step before.
    // 2h: 30 + 30·48 = 1470 of 144000; 6h: 150 + 1440 = 1590 of 432000; 1d: 690 + 1440 = 2130
    // of 1728000; 3d: 2130 + 1440 = 3570 of 5184000; 30d: 21570 + 1440 = 23010 of 51840000.
    let burn = |e: f64, t: f64| e / t / 0.001;
    assert_windows(
        &snap,
        &r,
        &[
            ("5m", 120.0, 6000.0, 20.0),
            ("30m", 720.0, 36_000.0, 20.0),
            ("1h", 1440.0, 72_000.0, 20.0),
            ("2h", 1470.0, 144_000.0, burn(1470.0, 144_000.0)),
            ("6h", 1590.0, 432_000.0, burn(1590.0, 432_000.0)),
            ("1d", 2130.0, 1_728_000.0, burn(2130.0, 1_728_000.0)),
            ("3d", 3570.0, 5_184_000.0, burn(3570.0, 5_184_000.0)),
            ("30d", 23_010.0, 51_840_000.0, burn(23_010.0, 51_840_000.0)),
        ],
    );
    assert!(close(burn(1470.0, 144_000.0), 10.208_333_333_333_334));
    assert!(close(burn(1590.0, 432_000.0), 3.680_555_555_555_556));
    let p = r.prometheus.as_ref().unwrap();
    let states: Vec<TierState> = p.tiers.iter().map(|t| t.state).collect();
    // page_fast: 20 > 14.4 over 1h and 5m; page_slow: 6h 3.68 ≤ 6; ticket_fast: 1d 1.23 ≤ 3;
    // ticket_slow: 3d 0.69 ≤ 1.
    assert_eq!(states, [TierState::Firing, TierState::Quiet, TierState::Quiet, TierState::Quiet]);
    assert_eq!(r.burn_rate, BurnLabel::Critical);
    assert_eq!(r.burn_rate_value, 20.0);
    // 1 − 23010/51840000 = 99.955613 %; budget left 100 − 0.044387/0.1·100 = 55.61 %.
    assert_eq!(r.availability_pct, 99.955613);
    assert_eq!(r.error_budget_pct, 55.61);
    // Per step 240/480/960/648/72: p95 rank 2280 in (0.5, 1]: 0.5 + 0.5·(2280 − 1680)/648;
    // p99 rank 2376 lies in +Inf, so the highest finite bound, 1 s. Latencies are reported to
    // the microsecond: 962.962962… ms is 962.963.
    assert!(close((0.5 + 0.5 * 600.0 / 648.0) * 1000.0, 962.962_962_962_963));
    assert_eq!(r.latency_p95_ms.value, 962.963);
    assert_close("p99", r.latency_p99_ms.map(|n| n.value), 1000.0);
    assert!(!r.latency_compliant);
    assert!(!r.healthy);
}

#[test]
fn low_traffic_service_is_insufficient_data_never_low() {
    let (snap, r) = observe("low-traffic", "");
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    // 2 requests per step; 1 error per step during the last 30 minutes.
    assert_windows(
        &snap,
        &r,
        &[
            ("5m", 2.5, 5.0, 500.0),
            ("30m", 15.0, 30.0, 500.0),
            ("1h", 15.0, 60.0, 250.0),
            ("2h", 15.0, 120.0, 125.0),
            ("6h", 15.0, 360.0, 15.0 / 360.0 / 0.001),
            ("1d", 15.0, 1440.0, 15.0 / 1440.0 / 0.001),
            ("3d", 15.0, 4320.0, 15.0 / 4320.0 / 0.001),
            ("30d", 15.0, 43_200.0, 15.0 / 43_200.0 / 0.001),
        ],
    );
    let p = r.prometheus.as_ref().unwrap();
    let sufficient: Vec<(String, bool)> = p.windows.iter().map(|w| (w.window.to_string(), w.sufficient)).collect();
    let want: Vec<(String, bool)> = [
        ("5m", false),
        ("30m", false),
        ("1h", false),
        ("2h", true),
        ("6h", true),
        ("1d", true),
        ("3d", true),
        ("30d", true),
    ]
    .iter()
    .map(|(w, b)| (w.to_string(), *b))
    .collect();
    assert_eq!(sufficient, want);
    let states: Vec<TierState> = p.tiers.iter().map(|t| t.state).collect();
    // page_fast: 1h and 5m both short of 100 events; page_slow: 6h 41.7 > 6 but 30m short;
    // ticket_fast: 1d 10.4 > 3 and 2h 125 > 3; ticket_slow: 3d 3.47 > 1 and 6h 41.7 > 1.
    assert_eq!(
        states,
        [TierState::InsufficientData, TierState::InsufficientData, TierState::Firing, TierState::Firing]
    );
    // Medium fires, but the undecided page tiers could raise it: the label is unknown.
    assert_eq!(p.label, None);
    assert!(p.insufficient_data);
    assert_eq!(
        p.insufficient_reason.as_deref(),
        Some("5m has 5 events, minimum 100; 30m has 30 events, minimum 100; 1h has 60 events, minimum 100")
    );
    assert_eq!(p.burn_rate_value, None);
    let s = signals(&r);
    assert_eq!(s.get("burn_rate_insufficient_data"), Some(&SignalValue::Bool(true)));
    assert!(matches!(s.get("burn_rate"), Some(SignalValue::Unavailable(_))));
    assert!(matches!(s.get("burn_rate_value"), Some(SignalValue::Unavailable(_))));
    // The period has enough events: 1 − 15/43200 = 99.965278 %, budget 65.28 %.
    assert_eq!(r.availability_pct, 99.965278);
    assert_eq!(r.error_budget_pct, 65.28);
    // Per step 1 ≤ 0.1 s and 1 ≤ 0.25 s: p95 = 0.1 + 0.15·(1.9 − 1)/1 = 0.235 s, p99 0.247 s.
    assert_close("p95", Some(r.latency_p95_ms.value), 235.0);
    assert_close("p99", r.latency_p99_ms.map(|n| n.value), 247.0);
    assert!(!r.healthy);
}

#[test]
fn the_minimum_events_guard_is_configurable() {
    // With a minimum of 1 event in the short windows the page tier is decided: 250× over 1h
    // and 500× over 5m exceed 14.4, so the low-traffic service pages.
    let (_, r) = observe("low-traffic", "  min_events: {default: 100, 5m: 1, 30m: 1, 1h: 1}\n");
    let p = r.prometheus.as_ref().unwrap();
    assert_eq!(p.tiers[0].state, TierState::Firing);
    assert_eq!(p.label, Some(BurnLabel::Critical));
    assert!(!p.insufficient_data);
    assert_close("burn@1h", p.burn_rate_value, 250.0);
}

#[test]
fn silent_service_is_no_data() {
    // Its samples stop two hours before the end.
    let (snap, r) = observe("silent", "");
    let p = r.prometheus.as_ref().unwrap();
    assert!(p.no_data);
    for needle in [
        "errors query returned no result for 5m",
        "total query returned no result for 1h",
        "no recent sample: the freshness query is empty",
    ] {
        assert!(p.no_data_reasons.iter().any(|x| x.contains(needle)), "{needle} not in {:?}", p.no_data_reasons);
    }
    // The windows that still reach its samples were read (extrapolated past the last one).
    assert!(snap.counts["1d"].total.is_some_and(|t| t > 2400.0 * 660.0));
    assert!(r.availability_pct.is_nan() && !r.healthy);
    let s = signals(&r);
    assert_eq!(s.get("no_data"), Some(&SignalValue::Bool(true)));
    for name in burn::SLO_SIGNALS {
        assert!(matches!(s.get(name), Some(SignalValue::Unavailable(_))), "{name}");
    }
}

#[test]
fn stale_sample_is_no_data() {
    // Four minutes after the newest sample, with a two-minute freshness limit.
    let p = prom();
    let at = p.end.checked_add(jiff::SignedDuration::from_secs(240)).unwrap();
    let (_, r) = observe_at(&slos_yaml("healthy", "  max_sample_age: 2m\n"), &p.url, at);
    let b = r.prometheus.as_ref().unwrap();
    assert!(b.no_data);
    assert_eq!(b.sample_age_seconds, Some(240));
    assert!(
        b.no_data_reasons.iter().any(|x| x == "the newest sample is 4m old, older than the freshness limit 2m"),
        "{:?}",
        b.no_data_reasons
    );
}

#[test]
fn unknown_service_is_no_data() {
    let (snap, r) = observe("no-such-service", "");
    assert!(r.prometheus.as_ref().unwrap().no_data);
    assert_eq!(snap.queries.len(), 3);
    assert!(snap.queries.iter().all(|q| q.error.is_none() && q.samples == 0), "{:?}", snap.queries);
    assert!(snap.problems.iter().any(|x| x.contains("end error_query with `or vector(0)`")));
}

#[test]
fn query_errors_are_no_data_after_bounded_retries() {
    // A closed port: every query is retried twice, then recorded as failed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let yaml = slos_yaml("healthy", "").replace("  retries: 0\n", "  retries: 2\n");
    let (snap, r) = observe_at(&yaml, &format!("http://127.0.0.1:{closed}"), prom().end);
    assert!(r.prometheus.as_ref().unwrap().no_data);
    assert!(snap.queries.iter().all(|q| q.attempts == 3), "{:?}", snap.queries);
    assert!(snap.problems.iter().all(|x| x.contains("could not connect")), "{:?}", snap.problems);
    // A query Prometheus rejects (HTTP 400) is not retried.
    let yaml = slos_yaml("healthy", "").replace("code=\"500\"}[", "code=\"500\"}[[");
    assert!(yaml.contains("[[{{.window}}]"));
    let p = prom();
    let (snap, r) = observe_at(&yaml.replace("  retries: 0\n", "  retries: 2\n"), &p.url, p.end);
    assert!(r.prometheus.as_ref().unwrap().no_data);
    let counts = &snap.queries[0];
    assert_eq!(counts.name, "counts");
    assert_eq!(counts.attempts, 1);
    assert!(counts.error.as_deref().unwrap().contains("bad_data"), "{counts:?}");
}

#[test]
fn one_decision_is_three_queries() {
    let (snap, _) = observe("healthy", "");
    let names: Vec<&str> = snap.queries.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["counts", "latency", "freshness"]);
    assert!(snap.query_count() <= 8);
    assert_eq!(snap.queries[0].samples, 16, "8 ranges × errors and total in one query");
    assert_eq!(burn::BurnConfig::default().ranges().last(), Some(&Window(30 * 86_400)));
}
