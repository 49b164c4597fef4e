//! `data/metrics.json` → [`MetricsSnapshot`].

use guardrail_core::pyround::PyNumber;
use guardrail_core::slo::{CountLiterals, MetricsSnapshot};

use crate::common::{
    Diags, Format, Loaded, Unknown, check_keys, count, count_as_written, get, mapping, number, optional, parse_as,
    required, string, timestamp,
};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::{Node, NodeValue};

/// Reads a metrics snapshot (JSON, or YAML when the name ends in `.yaml`/`.yml`).
///
/// Required: `total_requests`, `failed_requests` (non-negative whole numbers),
/// `latency_percentiles.p95_ms` (number) and `hourly_burn_rate` (a non-empty list of numbers;
/// the seed tool assumed `[1.0]` when it was missing, Guardrail refuses). Optional:
/// `latency_percentiles.p99_ms` (or the seed's fallback `p99`), `service` (default
/// `"unknown"`), `collected_at` (RFC 3339). `window_days`, `error_types`, `regions` and other
/// percentiles are accepted and ignored. Then [`MetricsSnapshot::validate`] runs and its
/// error is positioned.
pub fn load_metrics(src: &Source) -> Result<Loaded<MetricsSnapshot>, Vec<ConfigError>> {
    let root = parse_as(src, Format::Json)?;
    let mut d = Diags::new(src, SourceMap::from_node(&root));
    let snap = read(&mut d, &root);
    if let Some(snap) = &snap
        && !d.has_errors()
        && let Err(e) = snap.validate()
    {
        d.error(e.field, e.reason);
    }
    d.finish(snap)
}

/// `p50`, `p90_ms`, `p999_ms`, …
fn is_percentile_key(k: &str) -> bool {
    let body = k.strip_suffix("_ms").unwrap_or(k);
    body.strip_prefix('p').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn read(d: &mut Diags, root: &Node) -> Option<MetricsSnapshot> {
    let top = mapping(d, "", root)?;
    check_keys(
        d,
        "",
        top,
        &[
            "service",
            "window_days",
            "collected_at",
            "total_requests",
            "failed_requests",
            "latency_percentiles",
            "hourly_burn_rate",
            "error_types",
            "regions",
        ],
        Unknown::WarnUnlessTypoOf(&[
            "service",
            "collected_at",
            "total_requests",
            "failed_requests",
            "latency_percentiles",
            "hourly_burn_rate",
        ]),
        |_| false,
    );
    let total = required(d, "", top, "total_requests", "the number of requests over the window")
        .and_then(|n| count_as_written(d, "total_requests", n));
    let failed = required(d, "", top, "failed_requests", "the number of failed requests over the window")
        .and_then(|n| count_as_written(d, "failed_requests", n));

    let mut p95 = None;
    let mut p99 = Some(None);
    let lp = "latency_percentiles";
    if let Some(lat) = required(d, "", top, lp, "").and_then(|n| mapping(d, lp, n)) {
        check_keys(
            d,
            lp,
            lat,
            &["p95_ms", "p99_ms", "p99"],
            Unknown::WarnUnlessTypoOf(&["p95_ms", "p99_ms", "p99"]),
            is_percentile_key,
        );
        p95 = required(d, lp, lat, "p95_ms", "the observed p95 latency in milliseconds")
            .and_then(|n| number(d, "latency_percentiles.p95_ms", n));
        if let Some(n) = optional(lat, "p99_ms") {
            p99 = number(d, "latency_percentiles.p99_ms", n).map(Some);
            if optional(lat, "p99").is_some() {
                d.warning("latency_percentiles.p99", "ignored: latency_percentiles.p99_ms is used");
            }
        } else if let Some(n) = optional(lat, "p99") {
            p99 = number(d, "latency_percentiles.p99", n).map(Some);
        }
    }

    let burn = read_burn(d, top);

    // The seed ignores `window_days`; a window of no days cannot hold the counts above, so a
    // zero, negative or fractional one means the file is wrong, not that the budget is full.
    if let Some(n) = optional(top, "window_days")
        && let Some(days) = count(d, "window_days", n)
        && days == 0
    {
        d.error("window_days", "must be at least 1 day, got 0");
    }

    let service = match optional(top, "service") {
        Some(n) => string(d, "service", n),
        None if get(top, "service").is_some() => {
            d.error("service", "is null; remove it (the service is then \"unknown\") or give a name");
            None
        }
        None => Some("unknown".to_string()),
    };
    let collected_at = match optional(top, "collected_at") {
        Some(n) => timestamp(d, "collected_at", n).map(Some),
        None => Some(None),
    };

    let ((total, total_literal), (failed, failed_literal)) = (total?, failed?);
    Some(MetricsSnapshot {
        service: service?,
        total_requests: total,
        failed_requests: failed,
        latency_p95_ms: p95?,
        latency_p99_ms: p99?,
        hourly_burn_rate: burn?,
        collected_at: collected_at?,
        count_literals: CountLiterals { total: total_literal, failed: failed_literal },
    })
}

fn read_burn(d: &mut Diags, top: &[(String, Node)]) -> Option<Vec<PyNumber>> {
    let p = "hourly_burn_rate";
    let Some(node) = get(top, p) else {
        d.error(p, "is missing: the burn rate is unknown; the seed tool silently assumed 1.0×");
        return None;
    };
    let items = match &node.value {
        NodeValue::Seq(items) => items,
        NodeValue::Null => {
            d.error(p, "is null: the burn rate is unknown");
            return None;
        }
        _ => {
            d.error(p, format!("must be a list of burn-rate multipliers, got {}", node.describe()));
            return None;
        }
    };
    if items.is_empty() {
        d.error(p, "is empty: the burn rate is unknown");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        // An integer stays an int: Python 3.12's sum() adds ints and floats differently.
        match &item.value {
            NodeValue::Int(v) => out.push(PyNumber::Int(i128::from(*v))),
            _ => match number(d, &format!("{p}[{i}]"), item) {
                Some(v) => out.push(PyNumber::Float(v.value)),
                None => ok = false,
            },
        }
    }
    ok.then_some(out)
}
