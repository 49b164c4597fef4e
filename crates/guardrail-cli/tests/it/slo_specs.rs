//! `guardrail gate --slos FILE` with a Sloth `prometheus/v1` or an OpenSLO v1 file, deciding from
//! the fixture's live Prometheus (a healthy, a burning, a low-traffic and a silent service; see
//! `guardrail_prometheus::fixture`). The format is detected from the file's content; `--service`
//! and `--slo-name` pick the SLO. Expected figures are worked out by hand from the fixture's
//! table. No skipping: without Debian's `prometheus` package (`scripts/test` installs it) these
//! tests fail.

use crate::common;

use common::Scratch;
use guardrail_gate::prometheus::fixture::LocalPrometheus;

fn prom() -> &'static LocalPrometheus {
    LocalPrometheus::shared().unwrap_or_else(|e| panic!("the local Prometheus could not be started: {e}"))
}

const POLICIES: &str = r#"policies:
  - id: P000
    name: SLO data unavailable
    priority: 0
    action: DELAY
    conditions:
      no_data: {operator: eq, value: true}
    reason: The SLO signals could not be read from Prometheus
    remediation: Check Prometheus and the queries, then retry.
    delay_minutes: 15
  - id: P001
    name: Too little traffic to judge the burn rate
    priority: 1
    action: DELAY
    conditions:
      burn_rate_insufficient_data: {operator: eq, value: true}
    reason: Too few events in the burn-rate windows
    remediation: Wait for more traffic.
    delay_minutes: 10
  - id: P002
    name: Fast burn
    priority: 2
    action: BLOCK
    conditions:
      burn_rate: {operator: in, value: [critical, high]}
    reason: The error budget is burning fast
    remediation: Stop and fix the errors.
  - id: P999
    name: Healthy
    priority: 99
    action: ALLOW
    conditions: {}
    reason: Signals healthy
    remediation: None
"#;

/// A Sloth file: one service, one SLO per fixture service. Queries as Sloth users write them,
/// with `rate(…)` (read as `increase(…)`); the healthy SLO carries Guardrail's latency extension.
fn sloth() -> String {
    let mut s = String::from("version: \"prometheus/v1\"\nservice: \"fixture\"\nlabels: {owner: sre}\nslos:\n");
    for svc in ["healthy", "burning", "low-traffic", "silent"] {
        s.push_str(&format!(
            "  - name: {svc}\n    objective: 99.9\n    description: {svc} requests\n    sli:\n      events:\n        error_query: sum(rate(http_requests_total{{service=\"{svc}\",code=\"500\"}}[{{{{.window}}}}]))\n        total_query: sum(rate(http_requests_total{{service=\"{svc}\"}}[{{{{.window}}}}]))\n"
        ));
        if svc == "healthy" {
            s.push_str("    guardrail:\n      latency_histogram: http_request_duration_seconds_bucket{service=\"healthy\"}\n      p95_threshold_ms: 500\n      p99_threshold_ms: 1000\n");
        }
        s.push_str("    alerting: {name: Availability, page_alert: {labels: {severity: page}}}\n");
    }
    s
}

/// An OpenSLO file: one SLO per fixture service (several services in one file), `good`/`total`
/// ratio metrics over a shared SLI for `healthy`, inline `bad`/`total` for the others, a 28-day
/// window for `burning`.
fn openslo() -> String {
    let mut s = String::from(
        "apiVersion: openslo/v1\nkind: SLI\nmetadata: {name: healthy-ratio}\nspec:\n  ratioMetric:\n    counter: true\n    good: {metricSource: {type: Prometheus, spec: {query: 'sum(increase(http_requests_total{service=\"healthy\",code=\"200\"}[{{.window}}]))'}}}\n    total: {metricSource: {type: Prometheus, spec: {query: 'sum(increase(http_requests_total{service=\"healthy\"}[{{.window}}]))'}}}\n",
    );
    s.push_str("---\napiVersion: openslo/v1\nkind: SLO\nmetadata:\n  name: healthy-availability\n  annotations:\n    guardrail.dev/latency_histogram: 'http_request_duration_seconds_bucket{service=\"healthy\"}'\n    guardrail.dev/p95_threshold_ms: \"500\"\nspec:\n  service: healthy\n  budgetingMethod: Occurrences\n  objectives: [{target: 0.999}]\n  indicatorRef: healthy-ratio\n");
    for svc in ["burning", "low-traffic", "silent"] {
        let window = if svc == "burning" { "  timeWindow: [{duration: 28d, isRolling: true}]\n" } else { "" };
        s.push_str(&format!(
            "---\napiVersion: openslo/v1\nkind: SLO\nmetadata: {{name: {svc}-availability}}\nspec:\n  service: {svc}\n  budgetingMethod: Occurrences\n{window}  objectives: [{{targetPercent: 99.9}}]\n  indicator:\n    metadata: {{name: {svc}-errors}}\n    spec:\n      ratioMetric:\n        counter: true\n        bad: {{metricSource: {{type: Prometheus, spec: {{query: 'sum(increase(http_requests_total{{service=\"{svc}\",code=\"500\"}}[{{{{.window}}}}]))'}}}}}}\n        total: {{metricSource: {{type: Prometheus, spec: {{query: 'sum(increase(http_requests_total{{service=\"{svc}\"}}[{{{{.window}}}}]))'}}}}}}\n"
        ));
    }
    s
}

fn scratch(file: &str, text: &str) -> Scratch {
    let s = Scratch::new();
    s.write("config/policies.yaml", POLICIES);
    s.write(file, text);
    std::fs::remove_file(s.path("data/metrics.json")).unwrap();
    // The bundled cost.json names checkout-api; without a service it goes with any.
    s.edit("data/cost.json", "\"service\": \"checkout-api\",", "");
    s
}

fn gate(s: &Scratch, file: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let p = prom();
    let now = p.end.to_string();
    let slos = s.path(file).display().to_string();
    // The queries answer in milliseconds, but on a loaded CI machine a spec's default five
    // seconds can pass, and a timed-out query is "no data": another decision.
    let mut args = vec!["--now", now.as_str(), "--prometheus", p.url.as_str(), "--format", "json", "--slos", &slos];
    args.extend_from_slice(&["--prometheus-timeout-ms", "60000"]);
    args.extend_from_slice(extra);
    let out = s.gate(&args).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (code, json, stderr)
}

fn window<'a>(j: &'a serde_json::Value, w: &str) -> &'a serde_json::Value {
    j["slo"]["prometheus"]["windows"].as_array().unwrap().iter().find(|x| x["window"] == w).unwrap()
}

const SLOTH: &str = "config/sloth.yaml";
const OPENSLO: &str = "config/openslo.yaml";

#[test]
fn sloth_healthy_is_allowed_with_counts_not_rates_and_latency_from_the_extension() {
    let s = scratch(SLOTH, &sloth());
    let (code, j, err) = gate(&s, SLOTH, &["--service", "fixture", "--slo-name", "healthy"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!((j["action"].as_str(), j["policy_id"].as_str()), (Some("ALLOW"), Some("P999")));
    // 1 error in 2400 requests per 2-minute step: availability 1 − 1/2400, budget 1 − 0.041667/0.1.
    assert_eq!(j["slo"]["availability_pct"], 99.958333);
    assert_eq!(j["slo"]["error_budget_pct"], 58.33);
    assert_eq!(j["slo"]["burn_rate"], "low");
    assert_eq!(j["slo"]["details"]["service"], "fixture");
    // rate() was read as increase(): 30 steps of 2400 in the hour, not 20 requests/s.
    assert_eq!(window(&j, "1h")["total"], 72_000.0);
    assert_eq!(window(&j, "1h")["errors"], 30.0);
    assert_eq!(window(&j, "30d")["total"], 51_840_000.0);
    // Burn over 1h: (30/72000) / 0.001 = 0.416…
    assert_eq!(j["slo"]["burn_rate_value"], 0.42);
    // p95: rank 2280 of 2400 falls in (0.25, 0.5] holding 2160..2352 → 0.25 + 120/192 · 0.25 s.
    assert_eq!(j["slo"]["latency_p95_ms"], 406.25);
    assert_eq!(j["slo"]["latency_p99_ms"], 750.0);
    assert_eq!(j["signals"]["latency_compliant"], true);
    assert!(j["slo"]["prometheus"].get("latency_unavailable").is_none());
}

#[test]
fn sloth_burning_low_traffic_and_silent() {
    let s = scratch(SLOTH, &sloth());
    let (code, j, err) = gate(&s, SLOTH, &["--service", "fixture", "--slo-name", "burning"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(j["policy_id"], "P002");
    // 48 errors in 2400 per step during the last hour: 0.02 / 0.001 = 20× over 1h and 5m.
    assert_eq!(j["slo"]["burn_rate_value"], 20.0);
    assert_eq!(j["slo"]["burn_rate"], "critical");
    assert_eq!(window(&j, "1h")["errors"], 1440.0);
    // Over 30 days: 21600 + 47·30 = 23010 errors of 51,840,000.
    assert_eq!(window(&j, "30d")["errors"], 23_010.0);
    assert_eq!(j["slo"]["availability_pct"], 99.955613);
    // No latency extension on this SLO: latency is not read and its signals are unavailable.
    assert!(j["signals"]["latency_p95_ms"].is_null());
    assert!(j["slo"]["prometheus"]["latency_unavailable"].as_str().unwrap().contains("no latency source"));

    // Low traffic: 2 requests per step, 60 in the hour, below the minimum of 100 even though
    // the query is a rate() — insufficient data, never a silent "low".
    let (code, j, err) = gate(&s, SLOTH, &["--service", "fixture", "--slo-name", "low-traffic"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(j["policy_id"], "P001");
    assert_eq!(j["signals"]["burn_rate_insufficient_data"], true);
    assert_eq!(window(&j, "1h")["total"], 60.0);
    assert_eq!(window(&j, "1h")["sufficient"], false);
    assert!(j["signals"]["burn_rate"].is_null());

    // Silent: no sample in the last two hours → no data.
    let (code, j, err) = gate(&s, SLOTH, &["--service", "fixture", "--slo-name", "silent"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(j["policy_id"], "P000");
    assert_eq!(j["signals"]["no_data"], true);
}

#[test]
fn openslo_services_from_one_file() {
    let s = scratch(OPENSLO, &openslo());
    // healthy: good/total, error = total − good.
    let (code, j, err) = gate(&s, OPENSLO, &["--service", "healthy"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(j["slo"]["availability_pct"], 99.958333);
    assert_eq!(j["slo"]["error_budget_pct"], 58.33);
    assert_eq!(j["slo"]["latency_p95_ms"], 406.25);
    assert_eq!(j["slo"]["details"]["service"], "healthy");
    // burning over its 28-day window: 20160 + 1410 = 21570 errors of 48,384,000 →
    // availability 99.955419, budget 1 − 0.0445808/0.1 = 55.42 %.
    let (code, j, err) = gate(&s, OPENSLO, &["--service", "burning"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(j["slo"]["prometheus"]["period"], "28d");
    assert_eq!(window(&j, "28d")["errors"], 21_570.0);
    assert_eq!(window(&j, "28d")["total"], 48_384_000.0);
    assert_eq!(j["slo"]["availability_pct"], 99.955419);
    assert_eq!(j["slo"]["error_budget_pct"], 55.42);
    assert_eq!(j["slo"]["burn_rate"], "critical");
    let (code, j, err) = gate(&s, OPENSLO, &["--service", "low-traffic"]);
    assert_eq!((code, j["policy_id"].as_str()), (1, Some("P001")), "{err}");
    let (code, j, err) = gate(&s, OPENSLO, &["--service", "silent"]);
    assert_eq!((code, j["policy_id"].as_str()), (1, Some("P000")), "{err}");
    // Several services and none selected: exit 3, the choices listed.
    let (code, _, err) = gate(&s, OPENSLO, &[]);
    assert_eq!(code, 3);
    assert!(err.contains("has SLOs for 4 services, so one must be selected with --service NAME"), "{err}");
}

#[test]
fn a_rule_on_latency_without_a_latency_source_cannot_decide() {
    let s = scratch(SLOTH, &sloth());
    s.edit(
        "config/policies.yaml",
        "  - id: P999",
        "  - id: P010\n    name: Slow\n    priority: 10\n    action: WARN\n    conditions:\n      latency_p95_ms: {operator: gt, value: 800}\n    reason: slow\n    remediation: look\n  - id: P999",
    );
    // burning has no latency extension; its burn rule decides first (BLOCK), so fine.
    let (code, _, err) = gate(&s, SLOTH, &["--service", "fixture", "--slo-name", "burning"]);
    assert_eq!(code, 2, "{err}");
    // A service whose decision reaches the latency rule: exit 3, the reason named. (The
    // healthy SLO with its extension reads latency and decides.)
    let text = sloth().replace("    guardrail:\n      latency_histogram: http_request_duration_seconds_bucket{service=\"healthy\"}\n      p95_threshold_ms: 500\n      p99_threshold_ms: 1000\n", "");
    s.write(SLOTH, &text);
    let (code, _, err) = gate(&s, SLOTH, &["--service", "fixture", "--slo-name", "healthy"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("rule P010 needs signal latency_p95_ms, which is unavailable"), "{err}");
    assert!(err.contains("no latency source"), "{err}");
    s.write(SLOTH, &sloth());
    let (code, j, err) = gate(&s, SLOTH, &["--service", "fixture", "--slo-name", "healthy"]);
    assert_eq!((code, j["policy_id"].as_str()), (0, Some("P999")), "{err}");
}

#[test]
fn bad_specs_exit_3_with_file_line_and_column() {
    let p = prom();
    let now = p.end.to_string();
    let run = |file: &str, text: &str, extra: &[&str]| {
        let s = scratch(file, text);
        let slos = s.path(file).display().to_string();
        let mut args = vec!["--now", now.as_str(), "--prometheus", p.url.as_str(), "--slos", slos.as_str()];
        args.extend_from_slice(extra);
        let out = s.gate(&args).output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
    };
    // Unknown service.
    let (code, err) = run(SLOTH, &sloth(), &["--service", "payments"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("sloth.yaml:2:1: service: has no SLO for service \"payments\"; it has: fixture/healthy"),
        "{err}"
    );
    // Unknown SLO name.
    let (code, err) = run(SLOTH, &sloth(), &["--slo-name", "nope"]);
    assert_eq!(code, 3);
    assert!(err.contains("has no SLO \"nope\""), "{err}");
    // A missing query.
    let text = sloth().replacen(
        "        total_query: sum(rate(http_requests_total{service=\"healthy\"}[{{.window}}]))\n",
        "",
        1,
    );
    let (code, err) = run(SLOTH, &text, &["--slo-name", "healthy"]);
    assert_eq!(code, 3);
    assert!(err.contains("sloth.yaml:9:7: slos[0].sli.events"), "{err}");
    assert!(err.contains("total_query"), "{err}");
    // Objective out of range.
    let (code, err) =
        run(SLOTH, &sloth().replacen("objective: 99.9", "objective: 100.5", 1), &["--slo-name", "healthy"]);
    assert_eq!(code, 3);
    assert!(err.contains("sloth.yaml:6:5: slos[0].objective: must be a percentage between 0 and 100"), "{err}");
    let (code, err) = run(OPENSLO, &openslo().replacen("target: 0.999", "target: 99.9", 1), &["--service", "healthy"]);
    assert_eq!(code, 3);
    assert!(err.contains("openslo.yaml:20:17: spec.objectives[0].target: must be a ratio between 0 and 1"), "{err}");
    // Wrong versions.
    let (code, err) =
        run(OPENSLO, &openslo().replace("apiVersion: openslo/v1", "apiVersion: openslo/v2"), &["--service", "healthy"]);
    assert_eq!(code, 3);
    assert!(err.contains("openslo.yaml:1:1: apiVersion: \"openslo/v2\" is not a supported SLO spec version"), "{err}");
    let (code, err) = run(SLOTH, &sloth().replace("prometheus/v1", "prometheus/v2"), &[]);
    assert_eq!(code, 3);
    assert!(err.contains("sloth.yaml:1:1: version: \"prometheus/v2\" is not a supported SLO spec version"), "{err}");
    // The extension's Prometheus timeout: 0 is refused, positioned.
    let text =
        sloth().replacen("      p99_threshold_ms: 1000\n", "      p99_threshold_ms: 1000\n      timeout_ms: 0\n", 1);
    let (code, err) = run(SLOTH, &text, &["--slo-name", "healthy"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(
            "sloth.yaml:16:7: slos[0].guardrail.timeout_ms: must be a whole number of milliseconds from 1 to 60000, got 0"
        ),
        "{err}"
    );
    // --prometheus-timeout-ms / GUARDRAIL_PROMETHEUS_TIMEOUT_MS: 0, negative, not a number.
    for bad in ["0", "-5", "soon"] {
        let (code, err) = run(SLOTH, &sloth(), &["--slo-name", "healthy", "--prometheus-timeout-ms", bad]);
        assert_eq!(code, 64, "a bad flag value is a usage error: {bad}: {err}");
        assert!(
            err.contains(&format!(
                "--prometheus-timeout-ms: expected a whole number of milliseconds from 1 to 60000, got \"{bad}\""
            )),
            "{bad}: {err}"
        );
        let s = scratch(SLOTH, &sloth());
        let slos = s.path(SLOTH).display().to_string();
        let out = s
            .gate(&["--now", &now, "--prometheus", &p.url, "--slos", &slos, "--slo-name", "healthy"])
            .env("GUARDRAIL_PROMETHEUS_TIMEOUT_MS", bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{bad}: {err}");
        assert!(
            err.contains("GUARDRAIL_PROMETHEUS_TIMEOUT_MS: expected a whole number of milliseconds"),
            "{bad}: {err}"
        );
    }
    // The flag wins over the variable.
    let s = scratch(SLOTH, &sloth());
    let slos = s.path(SLOTH).display().to_string();
    let out = s
        .gate(&[
            "--now",
            &now,
            "--prometheus",
            &p.url,
            "--slos",
            &slos,
            "--slo-name",
            "healthy",
            "--prometheus-timeout-ms",
            "60000",
        ])
        .env("GUARDRAIL_PROMETHEUS_TIMEOUT_MS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // No URL: a spec is always read from Prometheus.
    let s = scratch(SLOTH, &sloth());
    let slos = s.path(SLOTH).display().to_string();
    let out = s.gate(&["--now", &now, "--slos", &slos, "--slo-name", "healthy"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no URL is set: give --prometheus URL"));
}

#[test]
fn a_spec_decision_replays_identically_without_prometheus() {
    let s = scratch(OPENSLO, &openslo());
    let (code, _, err) = gate(&s, OPENSLO, &["--service", "burning"]);
    assert_eq!(code, 2, "{err}");
    let out = common::guardrail().args(["replay", "1", "--store", &s.store()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("identical (BLOCK by P002)"));
}

#[test]
fn reports_without_a_latency_source_say_so_and_never_print_nan() {
    let s = scratch(SLOTH, &sloth());
    let p = prom();
    let now = p.end.to_string();
    let slos = s.path(SLOTH).display().to_string();
    let summary = s.path("summary.md");
    let base = ["--now", now.as_str(), "--prometheus", p.url.as_str(), "--slos", slos.as_str()];
    let sel = ["--service", "fixture", "--slo-name", "burning"];
    for format in ["text", "github"] {
        let out = s
            .gate(&[&base[..], &sel[..], &["--format", format]].concat())
            .env("GITHUB_STEP_SUMMARY", &summary)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(!report.contains("NaN"), "{format}: {report}");
        if format == "text" {
            assert!(report.contains("Latency            NOT READ (the SLO spec names no latency source"), "{report}");
            assert!(report.contains("Overall            UNKNOWN (latency not read)"), "{report}");
            assert!(report.contains("Tiers ") && !report.contains("Latency p95"), "{report}");
        }
    }
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(!text.contains("NaN"), "{text}");
    assert!(text.contains("| p95 latency | **not read** (the SLO spec names no latency source"), "{text}");
    // guardrail slo and explain read the same spec.
    let out = common::guardrail()
        .args(["slo", "--root"])
        .arg(s.root())
        .args(&base[..])
        .args(&sel[..])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["burn_rate"], "critical");
    assert!(j["prometheus"]["latency_unavailable"].is_string());
    let out =
        common::guardrail().args(["explain", "--root"]).arg(s.root()).args(&base[..]).args(&sel[..]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("NaN"), "{text}");
    assert!(text.contains("Latency p95/p99    : not read (the SLO spec names no latency source"), "{text}");
}

/// Runs the gate on `text` as `file` and returns the exit code and stderr (stdout is JSON).
fn gate_text(file: &str, text: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let s = scratch(file, text);
    gate(&s, file, extra)
}

#[test]
fn openslo_weeks_are_a_period_and_what_is_not_computed_exits_3_naming_the_field() {
    // 2w, as in every official OpenSLO example: a 14-day rolling period.
    let text = openslo().replace("duration: 28d, isRolling: true", "duration: 2w, isRolling: true");
    let (code, j, err) = gate_text(OPENSLO, &text, &["--service", "burning"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(j["slo"]["prometheus"]["period"], "14d");
    // Timeslices, a calendar-aligned window, a rolling month: exit 3 at the field; the file's
    // other SLOs still decide.
    for (from, to, says) in [
        (
            "service: burning\n  budgetingMethod: Occurrences",
            "service: burning\n  budgetingMethod: Timeslices",
            "spec.budgetingMethod: Timeslices is not supported (yet)",
        ),
        (
            "duration: 28d, isRolling: true",
            "duration: 1M, isRolling: false, calendar: {startTime: 2026-01-01 00:00:00, timeZone: UTC}",
            "spec.timeWindow[0].calendar: a calendar-aligned time window",
        ),
        ("duration: 28d, isRolling: true", "duration: 1M, isRolling: true", "no fixed length"),
    ] {
        let text = openslo().replace(from, to);
        let (code, _, err) = gate_text(OPENSLO, &text, &["--service", "burning"]);
        assert_eq!(code, 3, "{to}: {err}");
        assert!(err.contains(says) && err.contains("openslo.yaml:"), "{to}: {err}");
        let (code, j, err) = gate_text(OPENSLO, &text, &["--service", "healthy"]);
        assert_eq!((code, j["policy_id"].as_str()), (0, Some("P999")), "{to}: {err}");
    }
}

#[test]
fn one_raw_slo_does_not_make_the_sloth_file_unusable() {
    let text = format!(
        "{}  - name: ratio\n    objective: 99\n    sli:\n      raw:\n        error_ratio_query: 1 - avg_over_time(up[{{{{.window}}}}])\n    alerting: {{name: Ratio}}\n",
        sloth()
    );
    let (code, j, err) = gate_text(SLOTH, &text, &["--slo-name", "healthy"]);
    assert_eq!((code, j["policy_id"].as_str()), (0, Some("P999")), "{err}");
    let (code, _, err) = gate_text(SLOTH, &text, &["--slo-name", "ratio"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("slos[4].sli.raw: is an error-ratio SLI, which Guardrail cannot decide on"), "{err}");
}

#[test]
fn duplicate_sloth_slo_names_exit_3_with_both_lines() {
    let text = sloth().replacen("  - name: burning\n", "  - name: healthy\n", 1);
    let (code, _, err) = gate_text(SLOTH, &text, &["--slo-name", "healthy"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(
            "sloth.yaml:17:5: slos[1].name: \"healthy\" is already an SLO of service \"fixture\" (line 5); SLO names must be unique"
        ),
        "{err}"
    );
}

#[test]
fn a_freshness_query_the_gate_cannot_derive_is_asked_for_where_it_can_be_set() {
    // A subquery: no series selector right before [{{.window}}].
    let sub = sloth().replacen(
        "total_query: sum(rate(http_requests_total{service=\"healthy\"}[{{.window}}]))",
        "total_query: sum(increase((http_requests_total{service=\"healthy\"})[{{.window}}:1m]))",
        1,
    );
    let (code, _, err) = gate_text(SLOTH, &sub, &["--slo-name", "healthy"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("slos[0].sli.events.total_query: has no series selector"), "{err}");
    assert!(err.contains("set slos[0].guardrail.freshness_query to PromQL"), "{err}");
    let set = sub.replacen(
        "    guardrail:\n",
        "    guardrail:\n      freshness_query: max(timestamp(http_requests_total{service=\"healthy\"}))\n",
        1,
    );
    let (code, j, err) = gate_text(SLOTH, &set, &["--slo-name", "healthy"]);
    assert!((0..=2).contains(&code), "{err}");
    assert_eq!(j["slo"]["details"]["service"], "fixture", "{err}");
}

#[test]
fn other_slo_formats_exit_3_naming_the_format() {
    let specs = concat!(env!("CARGO_MANIFEST_DIR"), "/../guardrail-config/tests/fixtures/specs/");
    for (rel, says) in [
        (
            "sloth/k8s-getting-started.yml",
            "kind: PrometheusServiceLevel is Sloth's Kubernetes resource, which Guardrail does not read (yet)",
        ),
        (
            "pyrra/caddy-response-latency.yaml",
            "kind: ServiceLevelObjective is a Pyrra SLO, which Guardrail does not read (yet)",
        ),
        ("sloth/openslo-getting-started.yml", "\"openslo/v1alpha\" is not a supported SLO spec version"),
    ] {
        let text = std::fs::read_to_string(format!("{specs}{rel}")).unwrap();
        let s = scratch("config/slos.yaml", &text);
        let slos = s.path("config/slos.yaml").display().to_string();
        for extra in [&["--prometheus", "http://127.0.0.1:9"][..], &[][..]] {
            let mut args = vec!["--slos", slos.as_str()];
            args.extend_from_slice(extra);
            let out = s.gate(&args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(3), "{rel}: {err}");
            assert!(err.contains(says) && err.contains("slos.yaml:"), "{rel}: {err}");
            assert!(!err.contains("has no prometheus: block"), "{rel}: {err}");
        }
    }
}
