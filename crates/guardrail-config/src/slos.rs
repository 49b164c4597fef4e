//! `config/slos.yaml` → [`SloSpec`].

use guardrail_core::slo::{BurnThresholds, SloSpec};

use crate::common::{Diags, Format, Loaded, Unknown, check_keys, mapping, number, optional, parse_as, required};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::Node;

/// Reads an SLO file (YAML, or JSON when the name ends in `.json`).
///
/// Required: `slos.availability.target` and `slos.latency.p95_threshold_ms` (numbers).
/// Optional: `slos.latency.p99_threshold_ms`, `burn_rate.thresholds.{medium,high,critical}`
/// (defaults 2, 5, 10; `low` is accepted and ignored, as in the seed tool). `window_days`,
/// `description` and `error_budget` are accepted and ignored; `prometheus` is read by
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
