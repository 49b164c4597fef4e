//! The Sloth, OpenSLO and Pyrra projects' own example files (tests/fixtures/specs, copied
//! unmodified; see the NOTICE there): each one either loads into the SLO Guardrail decides on,
//! or is refused with a positioned reason that says what is not supported — never read as
//! `slos.yaml`, never computed with other semantics. Every file in the folder is covered.

use std::path::{Path, PathBuf};

use guardrail_config::{
    ConfigError, SloSpecFormat, Source, classify_slo_file, load_slo_specs, load_spec_slo, read_source,
};
use guardrail_core::burn::Window;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/specs")
}

fn spec(rel: &str) -> Source {
    read_source(&dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The same file with some text replaced (kept at the fixture's path).
fn edited(rel: &str, edits: &[(&str, &str)]) -> Source {
    let mut s = spec(rel);
    for (from, to) in edits {
        assert!(s.text.contains(from), "{rel} has no {from:?}");
        s.text = s.text.replace(from, to);
    }
    s
}

/// Every error is positioned and says what is not supported.
fn refused(errors: &[ConfigError], says: &[(&str, &str)]) {
    for e in errors {
        assert!(e.line.is_some(), "unpositioned: {e}");
    }
    for (field, text) in says {
        assert!(
            errors.iter().any(|e| e.field.ends_with(field) && e.message.contains(text)),
            "no {field}: {text:?} in {errors:#?}"
        );
    }
}

fn format_refusal(rel: &str, line: usize, says: &str) {
    let e = classify_slo_file(&spec(rel)).expect_err(rel);
    assert_eq!((e.field.as_str(), e.line, e.col), ("apiVersion", Some(line), Some(1)), "{rel}: {e}");
    assert!(e.message.contains(says), "{rel}: {e}");
    assert!(!e.message.contains("prometheus: block"), "{rel}: {e}");
}

#[test]
fn sloth_examples_load_or_say_what_is_not_supported() {
    // getting-started: rate( read as increase(, one SLO.
    let l = load_spec_slo(&spec("sloth/getting-started.yml"), None, None).unwrap();
    assert_eq!((l.value.imported.service.as_str(), l.value.imported.objective_pct), ("myservice", 99.9));
    assert!(l.value.imported.rate_converted);
    assert_eq!(
        l.value.prometheus.total_query,
        "sum(increase(http_request_duration_seconds_count{job=\"myservice\"}[{{.window}}]))"
    );
    assert_eq!(l.value.prometheus.burn.period, Window(30 * 86_400));
    // no-alerts: multi-line queries.
    let l = load_spec_slo(&spec("sloth/no-alerts.yml"), None, None).unwrap();
    assert_eq!(l.value.imported.objective_pct, 99.99);
    // multifile: two specs (the file starts with ---), one service each.
    let all = load_slo_specs(&spec("sloth/multifile.yml")).unwrap().value;
    assert_eq!(all.iter().map(|s| s.service.as_str()).collect::<Vec<_>>(), ["myservice", "myservice2"]);
    let e = load_spec_slo(&spec("sloth/multifile.yml"), None, None).unwrap_err();
    assert!(e[0].message.contains("--service"), "{e:?}");
    let l = load_spec_slo(&spec("sloth/multifile.yml"), Some("myservice2"), None).unwrap();
    assert_eq!(l.value.imported.objective_pct, 99.99);
    // home-wifi: subqueries, no series selector before [{{.window}}]: the freshness query is
    // asked for where it can be set.
    for (i, name) in ["good-wifi-client-satisfaction", "risk-wifi-client-satisfaction"].iter().enumerate() {
        let e = load_spec_slo(&spec("sloth/home-wifi.yml"), None, Some(name)).unwrap_err();
        refused(
            &e,
            &[(&format!("slos[{i}].sli.events.total_query"), &format!("set slos[{i}].guardrail.freshness_query"))],
        );
    }
    let with = edited(
        "sloth/home-wifi.yml",
        &[(
            "    description: \"Will warn us that we don't have a good wifi at home.\"\n",
            "    description: \"Will warn us that we don't have a good wifi at home.\"\n    guardrail: {freshness_query: max(timestamp(unifipoller_client_satisfaction_ratio))}\n",
        )],
    );
    let l = load_spec_slo(&with, None, Some("good-wifi-client-satisfaction")).unwrap();
    assert_eq!(
        l.value.prometheus.freshness_query.as_deref(),
        Some("max(timestamp(unifipoller_client_satisfaction_ratio))")
    );
    assert_eq!(l.value.imported.objective_pct, 95.0);
    // raw, plugin SLIs and SLO plugin chains: valid Sloth, not decided on.
    refused(
        &load_spec_slo(&spec("sloth/raw-home-wifi.yml"), None, None).unwrap_err(),
        &[("slos[0].sli.raw", "error-ratio SLI")],
    );
    refused(
        &load_spec_slo(&spec("sloth/plugin-getting-started.yml"), None, None).unwrap_err(),
        &[("slos[0].sli.plugin", "Sloth SLI plugin")],
    );
    refused(
        &load_spec_slo(&spec("sloth/slo-plugin-getting-started.yml"), None, None).unwrap_err(),
        &[("slo_plugins.chain", "Sloth SLO plugins"), ("slos[0].plugins.chain", "Sloth SLO plugins")],
    );
    // Other formats in Sloth's examples: its Kubernetes resources, OpenSLO v1alpha.
    format_refusal(
        "sloth/k8s-getting-started.yml",
        6,
        "kind: PrometheusServiceLevel is Sloth's Kubernetes resource, which Guardrail does not read (yet)",
    );
    format_refusal("sloth/windows-7d.yaml", 1, "kind: AlertWindows is a Sloth Kubernetes resource, not an SLO spec");
    format_refusal("sloth/openslo-getting-started.yml", 6, "\"openslo/v1alpha\" is not a supported SLO spec version");
}

/// Every example file of the OpenSLO repository: each is OpenSLO v1 (2w, 1w and 1m windows
/// read), and each asks for something Guardrail does not compute, which is named.
#[test]
fn every_openslo_example_is_read_and_refused_for_what_it_asks() {
    for rel in [
        "openslo/occurences-slo.yaml",
        "openslo/ratio-timeslices.yaml",
        "openslo/timeslices-slo.yaml",
        "openslo/low-traffic-timeslices-slo.yaml",
    ] {
        assert_eq!(classify_slo_file(&spec(rel)).unwrap(), Some(SloSpecFormat::OpenSlo), "{rel}");
        // The file reads: its SLO is listed, with why it cannot be decided on.
        let l = load_slo_specs(&spec(rel)).unwrap_or_else(|e| panic!("{rel}: {e:?}"));
        assert_eq!(l.value.len(), 1, "{rel}");
        assert!(!l.value[0].cannot_decide.is_empty(), "{rel}");
        for e in &l.value[0].cannot_decide {
            assert!(!e.field.contains("duration"), "{rel}: the duration is read: {e}");
        }
    }
    refused(
        &load_spec_slo(&spec("openslo/occurences-slo.yaml"), None, None).unwrap_err(),
        &[("spec.indicator.spec.thresholdMetric", "is not supported (yet)")],
    );
    refused(
        &load_spec_slo(&spec("openslo/ratio-timeslices.yaml"), None, None).unwrap_err(),
        &[
            ("spec.budgetingMethod", "RatioTimeslices is not supported (yet)"),
            ("ratioMetric.good.metricSource.type", "is \"Any\"; Guardrail reads Prometheus metric sources only"),
            ("ratioMetric.total.metricSource.type", "is \"Any\""),
        ],
    );
    refused(
        &load_spec_slo(&spec("openslo/timeslices-slo.yaml"), None, None).unwrap_err(),
        &[
            ("spec.budgetingMethod", "Timeslices is not supported (yet)"),
            ("spec.timeWindow[0].calendar", "a calendar-aligned time window"),
            ("spec.objectives", "has 2 objectives"),
            ("ratioMetric.good.metricSource.type", "is \"Any\""),
        ],
    );
    refused(
        &load_spec_slo(&spec("openslo/low-traffic-timeslices-slo.yaml"), None, None).unwrap_err(),
        &[
            ("spec.budgetingMethod", "Timeslices is not supported (yet)"),
            ("spec.timeWindow[0].calendar", "a calendar-aligned time window"),
        ],
    );
    // The same example as an Occurrences SLO over Prometheus: decided on, two weeks rolling.
    let occurrences = edited(
        "openslo/ratio-timeslices.yaml",
        &[
            ("budgetingMethod: RatioTimeslices", "budgetingMethod: Occurrences"),
            ("type: Any", "type: Prometheus"),
            (
                "        good: # In most cases it is easier to think about timeslices in ratio metrics.\n          metricSource:\n            type: Prometheus # Here put any service that holds information you need.\n            spec: # Fields necessary to query service for the data.\n              query: Any",
                "        good:\n          metricSource:\n            type: Prometheus\n            spec:\n              query: sum(rate(http_requests_total{code!~\"5..\"}[{{.window}}]))",
            ),
            ("query: Any", "query: sum(rate(http_requests_total[{{.window}}]))"),
        ],
    );
    let l = load_spec_slo(&occurrences, None, None).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(l.value.prometheus.burn.period, Window(14 * 86_400));
    assert_eq!(l.value.imported.objective_pct, 99.0);
    assert_eq!(
        l.value.prometheus.error_query,
        "(sum(increase(http_requests_total[{{.window}}]))) - (sum(increase(http_requests_total{code!~\"5..\"}[{{.window}}])))"
    );
}

#[test]
fn pyrra_examples_are_named_as_not_supported() {
    format_refusal(
        "pyrra/caddy-response-latency.yaml",
        1,
        "\"pyrra.dev/v1alpha1\" kind: ServiceLevelObjective is a Pyrra SLO",
    );
    format_refusal("pyrra/prometheus-http.yaml", 1, "is a Pyrra SLO, which Guardrail does not read (yet)");
    format_refusal("pyrra/slo-apiserver-read-response-errors.yaml", 1, "is a Pyrra SLO");
}

/// No file in the folder escapes the tests above.
#[test]
fn every_fixture_is_covered() {
    let covered = [
        "NOTICE",
        "sloth/getting-started.yml",
        "sloth/no-alerts.yml",
        "sloth/multifile.yml",
        "sloth/home-wifi.yml",
        "sloth/raw-home-wifi.yml",
        "sloth/plugin-getting-started.yml",
        "sloth/slo-plugin-getting-started.yml",
        "sloth/k8s-getting-started.yml",
        "sloth/windows-7d.yaml",
        "sloth/openslo-getting-started.yml",
        "openslo/occurences-slo.yaml",
        "openslo/ratio-timeslices.yaml",
        "openslo/timeslices-slo.yaml",
        "openslo/low-traffic-timeslices-slo.yaml",
        "pyrra/caddy-response-latency.yaml",
        "pyrra/prometheus-http.yaml",
        "pyrra/slo-apiserver-read-response-errors.yaml",
    ];
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(at).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut found = Vec::new();
    walk(&dir(), &dir(), &mut found);
    found.sort();
    let mut want: Vec<String> = covered.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want);
}

/// Mangled copies of every example (characters and whole lines deleted, swapped, duplicated,
/// YAML punctuation inserted) never panic: each is read, refused or listed.
#[test]
fn mangled_examples_never_panic() {
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n.max(1)
        }
    }
    const PIECES: &[&str] = &[
        "",
        " ",
        "\n",
        ":",
        "-",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "'",
        "---\n",
        "#",
        "\u{e9}",
        "{{.window}}",
        "[{{.window}}]",
        "0",
        "1M",
        "w",
        "isRolling: false",
        "calendar: {}",
        "raw: {}",
        "apiVersion: pyrra.dev/v1alpha1\n",
    ];
    let mut files = Vec::new();
    for sub in ["sloth", "openslo", "pyrra"] {
        for entry in std::fs::read_dir(dir().join(sub)).unwrap() {
            files.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
    }
    let mut rng = Lcg(0x0915);
    for _ in 0..150 {
        for text in &files {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            for _ in 0..1 + rng.next(4) {
                let at = rng.next(lines.len());
                match rng.next(4) {
                    0 if !lines.is_empty() => {
                        lines.remove(at);
                    }
                    1 if !lines.is_empty() => {
                        let dup = lines[at].clone();
                        lines.insert(at, dup);
                    }
                    2 if !lines.is_empty() => {
                        let mut chars: Vec<char> = lines[at].chars().collect();
                        let piece = PIECES[rng.next(PIECES.len())];
                        let pos = rng.next(chars.len() + 1);
                        for (i, c) in piece.chars().enumerate() {
                            chars.insert(pos + i, c);
                        }
                        lines[at] = chars.into_iter().collect();
                    }
                    _ if !lines.is_empty() => {
                        let other = rng.next(lines.len());
                        lines.swap(at, other);
                    }
                    _ => {}
                }
            }
            let src = Source::from_text("mangled.yaml", lines.join("\n"));
            if let Ok(Some(_)) = classify_slo_file(&src) {
                let _ = load_spec_slo(&src, None, None);
                if let Ok(all) = load_slo_specs(&src) {
                    for s in &all.value {
                        let _ = load_spec_slo(&src, Some(&s.service), Some(&s.name));
                    }
                }
            }
        }
    }
}
