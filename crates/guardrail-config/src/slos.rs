//! `config/slos.yaml` → [`SloSpec`].

use guardrail_core::slo::{BurnThresholds, SloSpec};

use crate::common::{
    Diags, Format, Loaded, Unknown, check_keys, mapping, number, optional, parse_as, required, string,
};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::Node;

/// Reads an SLO file (YAML, or JSON when the name ends in `.json`).
///
/// Required: `slos.availability.target` and `slos.latency.p95_threshold_ms` (numbers).
/// Optional: `slos.latency.p99_threshold_ms`, `burn_rate.thresholds.{medium,high,critical}`
/// (defaults 2, 5, 10; `low` is accepted and ignored, as in the seed tool). `window_days` and
/// `description` are accepted and ignored; `error_budget.alert_thresholds` is checked as
/// strictly as `burn_rate.thresholds` (known keys, numbers from 0 to 100, in increasing
/// order) and, as in the seed tool, not used; `prometheus` is read by
/// [`crate::load_prometheus`]. Then [`SloSpec::validate`] runs
/// and its error is positioned.
pub fn load_slos(src: &Source) -> Result<Loaded<SloSpec>, Vec<ConfigError>> {
    let root = parse_as(src, Format::Yaml)?;
    let mut d = Diags::new(src, SourceMap::from_node(&root));
    let spec = read(&mut d, &root);
    if let Some(spec) = &spec
        && !d.has_errors()
        && let Err(e) = spec.validate()
    {
        d.error(e.field, e.reason);
    }
    d.finish(spec)
}

fn read(d: &mut Diags, root: &Node) -> Option<SloSpec> {
    let top = mapping(d, "", root)?;
    check_keys(
        d,
        "",
        top,
        &["slos", "burn_rate", "error_budget", "version", "description", "prometheus"],
        Unknown::WarnUnlessTypoOf(&["slos", "burn_rate"]),
        |_| false,
    );

    let slos = required(d, "", top, "slos", "the SLO targets").and_then(|n| mapping(d, "slos", n));
    let mut target = None;
    let mut p95 = None;
    let mut p99 = None;
    if let Some(slos) = slos {
        check_keys(
            d,
            "slos",
            slos,
            &["availability", "latency"],
            Unknown::WarnUnlessTypoOf(&["availability", "latency"]),
            |_| false,
        );
        let p = "slos.availability";
        if let Some(av) = required(d, "slos", slos, "availability", "").and_then(|n| mapping(d, p, n)) {
            check_keys(
                d,
                p,
                av,
                &["target", "window_days", "description"],
                Unknown::WarnUnlessTypoOf(&["target"]),
                |_| false,
            );
            target = required(d, p, av, "target", "the availability target in percent, e.g. 99.9")
                .and_then(|n| number(d, "slos.availability.target", n));
        }
        let p = "slos.latency";
        if let Some(lat) = required(d, "slos", slos, "latency", "").and_then(|n| mapping(d, p, n)) {
            check_keys(
                d,
                p,
                lat,
                &["p95_threshold_ms", "p99_threshold_ms", "window_days", "description"],
                Unknown::WarnUnlessTypoOf(&["p95_threshold_ms", "p99_threshold_ms"]),
                |_| false,
            );
            p95 = required(d, p, lat, "p95_threshold_ms", "the p95 latency limit in milliseconds")
                .and_then(|n| number(d, "slos.latency.p95_threshold_ms", n));
            if let Some(n) = optional(lat, "p99_threshold_ms") {
                p99 = Some(number(d, "slos.latency.p99_threshold_ms", n));
            }
        }
    }

    let mut burn = Some(BurnThresholds::default());
    if let Some(node) = crate::common::get(top, "burn_rate") {
        burn = read_burn(d, node);
    }
    if let Some(node) = crate::common::get(top, "error_budget") {
        check_error_budget(d, node);
    }

    Some(SloSpec {
        availability_target_pct: target?,
        p95_threshold_ms: p95?,
        p99_threshold_ms: match p99 {
            None => None,
            Some(v) => Some(v?),
        },
        burn: burn?,
    })
}

fn read_burn(d: &mut Diags, node: &Node) -> Option<BurnThresholds> {
    let mut t = BurnThresholds::default();
    let br = mapping(d, "burn_rate", node)?;
    check_keys(d, "burn_rate", br, &["thresholds"], Unknown::WarnUnlessTypoOf(&["thresholds"]), |_| false);
    let Some(th) = crate::common::get(br, "thresholds") else { return Some(t) };
    let th = mapping(d, "burn_rate.thresholds", th)?;
    check_keys(d, "burn_rate.thresholds", th, &["low", "medium", "high", "critical"], Unknown::Error, |_| false);
    let mut ok = true;
    for (name, slot) in [("medium", &mut t.medium), ("high", &mut t.high), ("critical", &mut t.critical)] {
        if let Some(n) = crate::common::get(th, name) {
            match number(d, &format!("burn_rate.thresholds.{name}"), n) {
                Some(v) => *slot = v.value,
                None => ok = false,
            }
        }
    }
    ok.then_some(t)
}

/// `error_budget:` (the seed's `alert_thresholds`: percentages of the budget consumed at
/// which to warn, escalate and block). Nothing reads them, in the seed tool or here, but a
/// value that could not mean anything (`block_pct: "banana"`, 150, or thresholds out of
/// order) is an error, so the file says what it appears to say.
fn check_error_budget(d: &mut Diags, node: &Node) {
    let Some(eb) = mapping(d, "error_budget", node) else { return };
    check_keys(d, "error_budget", eb, &["alert_thresholds", "description"], Unknown::Error, |_| false);
    if let Some(n) = crate::common::get(eb, "description") {
        string(d, "error_budget.description", n);
    }
    let p = "error_budget.alert_thresholds";
    let Some(th) = crate::common::get(eb, "alert_thresholds") else { return };
    let Some(th) = mapping(d, p, th) else { return };
    const KEYS: [&str; 3] = ["warning_pct", "critical_pct", "block_pct"];
    check_keys(d, p, th, &KEYS, Unknown::Error, |_| false);
    let mut present: Vec<(&str, f64)> = Vec::new();
    for key in KEYS {
        let field = format!("{p}.{key}");
        let Some(n) = crate::common::get(th, key) else { continue };
        let Some(v) = number(d, &field, n) else { continue };
        if !(0.0..=100.0).contains(&v.value) {
            d.error(field, format!("must be a percentage of the error budget consumed, from 0 to 100, got {v}"));
            continue;
        }
        present.push((key, v.value));
    }
    for pair in present.windows(2) {
        let ((lower_key, lower), (upper_key, upper)) = (pair[0], pair[1]);
        if lower > upper {
            d.error(
                format!("{p}.{upper_key}"),
                format!("must not be below {lower_key} ({lower}): thresholds increase warning ≤ critical ≤ block, got {upper}"),
            );
        }
    }
}
