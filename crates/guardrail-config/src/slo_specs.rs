//! SLO definitions in Sloth's `prometheus/v1` format and OpenSLO v1 `kind: SLO` objects →
//! [`ImportedSlo`]s: the availability objective and the error/total queries of the
//! `prometheus:` block (`WINDOW_PLACEHOLDER`, `{{.window}}`, in both queries).
//!
//! - Sloth: one spec or several separated by `---` (one service each), each with
//!   `version: prometheus/v1`, `service`, `slos[].name`, `slos[].objective` (percent),
//!   `slos[].sli.events.error_query` / `total_query` (Sloth's `{{.window}}` is Guardrail's
//!   too). `sli.raw` and `sli.plugin` are refused: Guardrail needs the raw counts.
//! - OpenSLO v1: one or more YAML documents (`---`); each `kind: SLO` has `spec.service`,
//!   `spec.objectives[]` (exactly one, `target` as a ratio or `targetPercent`), an inline
//!   `spec.indicator` or an `indicatorRef` to a `kind: SLI` document of the same file, whose
//!   `spec.ratioMetric` names `bad` or `good`, and `total`, each
//!   `metricSource.spec.query` (a Prometheus source; the query must contain `{{.window}}`).
//!   With `good`, the error query is `(total) - (good)`. `timeWindow[0].duration` becomes the
//!   period.
//!
//! `guardrail gate` reads these when the `--slos` file is one of them ([`detect_slo_spec`];
//! `slos.yaml` is read as before): [`load_spec_slo`] selects one SLO (`--service`,
//! `--slo-name`) and turns it into Guardrail's SLO targets and Prometheus source.
//!
//! Counts, not rates: Sloth's queries are usually `rate(…[{{.window}}])`, a per-second rate,
//! which would defeat the minimum-events guard (20 req/s over 1h is "20 events"). Every
//! `rate(` is rewritten to `increase(` (the same figure times the window length, which is
//! what `increase` is), so the burn rates are unchanged and the guard sees event counts.
//! `irate(` is refused (the last two samples are not a count over the window).
//!
//! Latency: neither format carries p95/p99. An optional Guardrail extension names a
//! histogram (or a query with `{{.quantile}}`) and the limits; without it no latency query is
//! sent and the latency signals are unavailable (a rule reading them cannot decide, exit 3).
//! - Sloth: `slos[].guardrail: {latency_histogram: …, p95_threshold_ms: 500, …}` (Sloth's
//!   loader ignores keys it does not know);
//! - OpenSLO: the SLO's `metadata.annotations` with `guardrail.dev/` keys
//!   (`guardrail.dev/latency_histogram: '…'`, `guardrail.dev/p95_threshold_ms: "500"`).
//!
//! Keys: `latency_histogram` or `latency_query`, `latency_window` (default 1h),
//! `latency_unit` (seconds or milliseconds), `p95_threshold_ms` (required with a latency
//! source), `p99_threshold_ms`, `min_events` (default 100 per window), and the Prometheus
//! client's `timeout_ms` (per request, 1 to 60000, default [`SPEC_TIMEOUT_MS`]) and `retries`
//! (0 to 5, default [`SPEC_RETRIES`]) and `ca_file` (a PEM file of CA certificates to trust
//! for an `https://` Prometheus, relative to the spec file's directory, checked when read), as
//! in the `prometheus:` block. The gate's `--prometheus-timeout-ms` /
//! `GUARDRAIL_PROMETHEUS_TIMEOUT_MS` win over `timeout_ms`, `--prometheus-ca` /
//! `GUARDRAIL_PROMETHEUS_CA` over `ca_file`.

use std::collections::BTreeMap;

use guardrail_core::burn::{BurnConfig, LatencySource, PrometheusSpec, Window};
use guardrail_core::slo::{BurnThresholds, Num, SloSpec};

use crate::common::{Diags, Format, Loaded, get, mapping, number, parse_as, required, string};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::prometheus::{MAX_PROMETHEUS_RETRIES, MAX_PROMETHEUS_TIMEOUT_MS, QUANTILE_PLACEHOLDER, WINDOW_PLACEHOLDER};
use crate::source::Source;
use crate::yaml::Node;

/// Which format an SLO definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SloSpecFormat {
    /// Sloth `prometheus/v1`.
    Sloth,
    /// OpenSLO v1.
    OpenSlo,
}

/// One SLO of a Sloth or OpenSLO file, in the terms of Guardrail's `prometheus:` block.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedSlo {
    /// Source format.
    pub format: SloSpecFormat,
    /// Service.
    pub service: String,
    /// SLO name.
    pub name: String,
    /// Availability objective, percent (99.9).
    pub objective_pct: f64,
    /// PromQL for failed events over `{{.window}}`.
    pub error_query: String,
    /// PromQL for all events over `{{.window}}`.
    pub total_query: String,
    /// SLO period when the file says (OpenSLO `timeWindow`).
    pub period: Option<Window>,
    /// True when a query's `rate(` was rewritten to `increase(` (see the module docs).
    pub rate_converted: bool,
    /// Guardrail's extension: latency source and limits, minimum events.
    pub extras: SpecExtras,
}

/// Guardrail's optional extension of an SLO spec (Sloth `guardrail:`, OpenSLO
/// `guardrail.dev/` annotations).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpecExtras {
    /// p95/p99 source; `None`: latency is not read and its signals are unavailable.
    pub latency: Option<LatencySource>,
    /// Range for the percentiles (default 1h).
    pub latency_window: Option<Window>,
    /// Multiplier to milliseconds (1000 for seconds, the default).
    pub latency_to_ms: Option<f64>,
    /// p95 limit, ms (required with a latency source).
    pub p95_threshold_ms: Option<Num>,
    /// p99 limit, ms.
    pub p99_threshold_ms: Option<Num>,
    /// Minimum events per window (default 100).
    pub min_events: Option<u64>,
    /// Per-request Prometheus timeout, ms (default [`SPEC_TIMEOUT_MS`]).
    pub timeout_ms: Option<u64>,
    /// Retries of a failed Prometheus request (default [`SPEC_RETRIES`]).
    pub retries: Option<u32>,
    /// PEM file of CA certificates to trust for an `https://` Prometheus, resolved against the
    /// spec file's directory (checked to be readable PEM when read).
    pub ca_file: Option<std::path::PathBuf>,
}

/// Per-request Prometheus timeout of a spec without `timeout_ms`, ms.
pub const SPEC_TIMEOUT_MS: u64 = 5000;
/// Retries of a spec without `retries`.
pub const SPEC_RETRIES: u32 = 2;

/// One selected SLO of a spec file, as Guardrail's SLO targets and Prometheus source.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecSlo {
    /// The SLO as read.
    pub imported: ImportedSlo,
    /// Targets: the objective as the availability target; the latency limits of the
    /// extension (NaN when there is no latency source: not used).
    pub slo: SloSpec,
    /// The Prometheus source: the spec's queries, period and the extension; the URL comes from
    /// `--prometheus` / `GUARDRAIL_PROMETHEUS_URL`.
    pub prometheus: PrometheusSpec,
}

/// Reads a Sloth/OpenSLO file and selects one SLO (`service`, then `slo` by name; see
/// [`select_slo`]). A selection that matches nothing is an error positioned at the file's
/// service field, listing the choices.
pub fn load_spec_slo(
    src: &Source,
    service: Option<&str>,
    slo: Option<&str>,
) -> Result<Loaded<SpecSlo>, Vec<ConfigError>> {
    let loaded = load_slo_specs(src)?;
    let field = match loaded.value.first().map(|s| s.format) {
        Some(SloSpecFormat::OpenSlo) => "spec.service",
        _ => "service",
    };
    let chosen = select_slo(&loaded.value, service, slo).map_err(|e| vec![loaded.error_at(field, e)])?.clone();
    let x = &chosen.extras;
    let slo_spec = SloSpec {
        availability_target_pct: Num::float(chosen.objective_pct),
        p95_threshold_ms: x.p95_threshold_ms.unwrap_or(Num::float(f64::NAN)),
        p99_threshold_ms: x.p99_threshold_ms,
        burn: BurnThresholds::default(),
    };
    let mut burn = BurnConfig::default();
    if let Some(p) = chosen.period {
        burn.period = p;
    }
    if let Some(n) = x.min_events {
        burn.min_events = n;
    }
    let prometheus = PrometheusSpec {
        url: None,
        service: chosen.service.clone(),
        error_query: chosen.error_query.clone(),
        total_query: chosen.total_query.clone(),
        latency: x.latency.clone(),
        latency_window: x.latency_window.unwrap_or(Window(3600)),
        latency_to_ms: x.latency_to_ms.unwrap_or(1000.0),
        freshness_query: None,
        timeout_ms: x.timeout_ms.unwrap_or(SPEC_TIMEOUT_MS),
        retries: x.retries.unwrap_or(SPEC_RETRIES),
        ca_file: x.ca_file.clone(),
        burn,
    };
    if let Err(e) = prometheus.burn.validate() {
        let at = if chosen.period.is_some() { "spec.timeWindow[0].duration" } else { field };
        return Err(vec![loaded.error_at(at, format!("{}: {}", e.field, e.reason))]);
    }
    Ok(Loaded {
        value: SpecSlo { imported: chosen, slo: slo_spec, prometheus },
        map: loaded.map,
        file: loaded.file,
        warnings: loaded.warnings,
    })
}

/// Rewrites `rate(` to `increase(` outside quoted strings (see the module docs); `irate(` is
/// refused. Returns the query and whether anything changed.
pub fn counts_from_rate(q: &str) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(q.len() + 8);
    let mut changed = false;
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(qc) = quote {
            out.push(c);
            if c == '\\' && qc != '`' {
                if let Some(&n) = chars.get(i + 1) {
                    out.push(n);
                    i += 1;
                }
            } else if c == qc {
                quote = None;
            }
            i += 1;
            continue;
        }
        if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
            out.push(c);
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let call = chars.get(j) == Some(&'(');
            match word.as_str() {
                "rate" if call => {
                    out.push_str("increase");
                    changed = true;
                }
                "irate" if call => {
                    return Err("uses irate(), the rate between the last two samples, which is not a count of events \
                         over the window; use increase() (or rate(), which Guardrail reads as increase())"
                        .into());
                }
                _ => out.push_str(&word),
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    Ok((out, changed))
}

const EXTRA_KEYS: &[&str] = &[
    "latency_histogram",
    "latency_query",
    "latency_window",
    "latency_unit",
    "p95_threshold_ms",
    "p99_threshold_ms",
    "min_events",
    "timeout_ms",
    "retries",
    "ca_file",
];

/// Annotation prefix of Guardrail's keys in OpenSLO `metadata.annotations`.
pub const ANNOTATION_PREFIX: &str = "guardrail.dev/";

/// Reads the extension from `(key, path, node)` entries. `text_values`: OpenSLO annotations,
/// whose values are strings (numbers are then read from the text).
fn read_extras(d: &mut Diags, base: &str, entries: &[(String, String, &Node)], text_values: bool) -> SpecExtras {
    let mut x = SpecExtras::default();
    let clean_before = !d.has_errors();
    let num = |d: &mut Diags, path: &str, node: &Node| -> Option<f64> {
        match (&node.value, text_values) {
            (crate::yaml::NodeValue::Str(t), true) => match t.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => Some(v),
                _ => {
                    d.error(path, format!("must be a number, got {t:?}"));
                    None
                }
            },
            _ => number(d, path, node).map(|n| n.value),
        }
    };
    for (key, path, node) in entries {
        let path = path.as_str();
        match key.as_str() {
            "latency_histogram" | "latency_query" => {
                if x.latency.is_some() {
                    d.error(path, "give either latency_histogram or latency_query, not both");
                    continue;
                }
                let Some(q) = string(d, path, node) else { continue };
                if q.trim().is_empty() {
                    d.error(path, "is empty");
                } else if key == "latency_query" && !q.contains(QUANTILE_PLACEHOLDER) {
                    d.error(path, format!("must contain {QUANTILE_PLACEHOLDER}"));
                } else if key == "latency_query" {
                    x.latency = Some(LatencySource::Query(q));
                } else {
                    x.latency = Some(LatencySource::Histogram(q));
                }
            }
            "latency_window" => match string(d, path, node).map(|t| Window::parse(&t)) {
                Some(Ok(w)) if w.0 > 0 => x.latency_window = Some(w),
                Some(Ok(_)) => d.error(path, "must be positive"),
                Some(Err(e)) => d.error(path, e),
                None => {}
            },
            "latency_unit" => match string(d, path, node).as_deref() {
                Some("seconds" | "s") => x.latency_to_ms = Some(1000.0),
                Some("milliseconds" | "ms") => x.latency_to_ms = Some(1.0),
                Some(other) => d.error(path, format!("must be seconds or milliseconds, got {other:?}")),
                None => {}
            },
            "p95_threshold_ms" | "p99_threshold_ms" => {
                if let Some(v) = num(d, path, node) {
                    if v > 0.0 {
                        let n = Some(Num::float(v));
                        if key == "p95_threshold_ms" { x.p95_threshold_ms = n } else { x.p99_threshold_ms = n }
                    } else {
                        d.error(path, format!("must be a positive number of milliseconds, got {v}"));
                    }
                }
            }
            "min_events" => {
                if let Some(v) = num(d, path, node) {
                    if v >= 0.0 && v.fract() == 0.0 && v <= 1e15 {
                        x.min_events = Some(v as u64);
                    } else {
                        d.error(path, format!("must be a whole number of events, got {v}"));
                    }
                }
            }
            "timeout_ms" => {
                if let Some(v) = num(d, path, node) {
                    if v.fract() == 0.0 && (1.0..=MAX_PROMETHEUS_TIMEOUT_MS as f64).contains(&v) {
                        x.timeout_ms = Some(v as u64);
                    } else {
                        d.error(
                            path,
                            format!(
                                "must be a whole number of milliseconds from 1 to {MAX_PROMETHEUS_TIMEOUT_MS}, got {v}"
                            ),
                        );
                    }
                }
            }
            "retries" => {
                if let Some(v) = num(d, path, node) {
                    if v.fract() == 0.0 && (0.0..=f64::from(MAX_PROMETHEUS_RETRIES)).contains(&v) {
                        x.retries = Some(v as u32);
                    } else {
                        d.error(path, format!("must be a whole number from 0 to {MAX_PROMETHEUS_RETRIES}, got {v}"));
                    }
                }
            }
            "ca_file" => x.ca_file = crate::prometheus::ca_file(d, path, node),
            other => {
                let hint = crate::common::suggest(other, EXTRA_KEYS)
                    .map(|k| format!(" (did you mean {k}?)"))
                    .unwrap_or_default();
                d.error(path, format!("is not a Guardrail key{hint}; known: {}", EXTRA_KEYS.join(", ")));
            }
        }
    }
    if !clean_before || d.has_errors() {
        return x;
    }
    match (&x.latency, x.p95_threshold_ms, x.p99_threshold_ms) {
        (Some(_), None, _) => d.error(base, "names a latency source but no p95_threshold_ms"),
        (None, Some(_), _) | (None, _, Some(_)) => {
            d.error(base, "gives latency limits but no latency_histogram or latency_query to compare them with")
        }
        (Some(_), Some(p95), Some(p99)) if p99.value < p95.value => {
            d.error(base, format!("p99_threshold_ms {} is below p95_threshold_ms {}", p99.value, p95.value))
        }
        _ => {}
    }
    x
}

/// The format of an SLO file, when it is Sloth or OpenSLO (`None`: Guardrail's `slos.yaml`).
pub fn detect_slo_spec(src: &Source) -> Option<SloSpecFormat> {
    for line in src.text.lines().map(str::trim) {
        let unquoted = line.replace(['"', '\''], "");
        if unquoted == "version: prometheus/v1" {
            return Some(SloSpecFormat::Sloth);
        }
        if unquoted == "apiVersion: openslo/v1" {
            return Some(SloSpecFormat::OpenSlo);
        }
    }
    None
}

/// Like [`detect_slo_spec`], but a file that looks like a spec of another version (a top-level
/// `apiVersion: openslo/…` other than `openslo/v1`, or `version: prometheus/…` other than
/// `prometheus/v1`) is an error at that line instead of being read as `slos.yaml`.
pub fn classify_slo_file(src: &Source) -> Result<Option<SloSpecFormat>, ConfigError> {
    if let Some(f) = detect_slo_spec(src) {
        return Ok(Some(f));
    }
    for (i, line) in src.text.lines().enumerate() {
        let unquoted = line.replace(['"', '\''], "");
        let unquoted = unquoted.trim_end();
        let (field, value, wanted) = if let Some(v) = unquoted
            .strip_prefix("apiVersion:")
            .map(str::trim)
            .filter(|v| v.to_ascii_lowercase().starts_with("openslo/"))
        {
            ("apiVersion", v, "openslo/v1 (OpenSLO v1)")
        } else if let Some(v) =
            unquoted.strip_prefix("version:").map(str::trim).filter(|v| v.starts_with("prometheus/"))
        {
            ("version", v, "prometheus/v1 (Sloth)")
        } else {
            continue;
        };
        return Err(ConfigError::at(
            &src.path,
            field,
            Some((i + 1, 1)),
            format!("{value:?} is not a supported SLO spec version; Guardrail reads {wanted}"),
        ));
    }
    Ok(None)
}

/// Reads every SLO of a Sloth or OpenSLO file.
pub fn load_slo_specs(src: &Source) -> Result<Loaded<Vec<ImportedSlo>>, Vec<ConfigError>> {
    match detect_slo_spec(src) {
        Some(SloSpecFormat::Sloth) => load_sloth(src),
        Some(SloSpecFormat::OpenSlo) => load_openslo(src),
        None => Err(vec![ConfigError::file(
            &src.path,
            "is neither a Sloth (version: prometheus/v1) nor an OpenSLO (apiVersion: openslo/v1) file",
        )]),
    }
}

/// Picks the SLO for `service` (and, when the service has several, `slo`): an error listing
/// the choices when the selection is missing or matches nothing.
pub fn select_slo<'a>(
    slos: &'a [ImportedSlo],
    service: Option<&str>,
    slo: Option<&str>,
) -> Result<&'a ImportedSlo, String> {
    let list =
        |xs: &[&ImportedSlo]| xs.iter().map(|s| format!("{}/{}", s.service, s.name)).collect::<Vec<_>>().join(", ");
    let all: Vec<&ImportedSlo> = slos.iter().collect();
    let by_service: Vec<&ImportedSlo> = match service {
        Some(svc) => all.iter().copied().filter(|s| s.service == svc).collect(),
        None => all.clone(),
    };
    if by_service.is_empty() {
        return Err(format!("has no SLO for service {:?}; it has: {}", service.unwrap_or(""), list(&all)));
    }
    let services: std::collections::BTreeSet<&str> = by_service.iter().map(|s| s.service.as_str()).collect();
    if services.len() > 1 {
        return Err(format!(
            "has SLOs for {} services, so one must be selected with --service NAME: {}",
            services.len(),
            list(&by_service)
        ));
    }
    match (slo, by_service.as_slice()) {
        (Some(name), xs) => xs
            .iter()
            .copied()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("has no SLO {name:?}; it has: {}", list(xs))),
        (None, [one]) => Ok(one),
        (None, xs) => {
            Err(format!("has {} SLOs for {:?}, so one must be selected by name: {}", xs.len(), xs[0].service, list(xs)))
        }
    }
}

fn query(d: &mut Diags, path: &str, node: &Node) -> Option<(String, bool)> {
    let q = string(d, path, node)?;
    if q.trim().is_empty() {
        d.error(path, "is empty");
        return None;
    }
    if !q.contains(WINDOW_PLACEHOLDER) {
        d.error(
            path,
            format!(
                "must contain {WINDOW_PLACEHOLDER}, where Guardrail puts each window (e.g. [{WINDOW_PLACEHOLDER}])"
            ),
        );
        return None;
    }
    match counts_from_rate(&q) {
        Ok(r) => Some(r),
        Err(e) => {
            d.error(path, e);
            None
        }
    }
}

/// A Sloth file: one spec, or several separated by `---` (one service each, as `sloth
/// generate` reads them); positions are the file's.
fn load_sloth(src: &Source) -> Result<Loaded<Vec<ImportedSlo>>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut first_map = None;
    for doc in documents(src) {
        let root = match parse_as(&doc, Format::Yaml) {
            Ok(r) => r,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let mut d = Diags::new(&doc, SourceMap::from_node(&root));
        let version = root.as_map().and_then(|m| get(m, "version")).and_then(Node::as_str);
        if version != Some("prometheus/v1") {
            d.error("version", "every spec of a Sloth file needs version: prometheus/v1");
        }
        let v = read_sloth(&mut d, &root);
        match d.finish(v) {
            Ok(l) => {
                out.extend(l.value);
                warnings.extend(l.warnings);
                first_map.get_or_insert(l.map);
            }
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if out.is_empty() {
        return Err(vec![ConfigError::file(&src.path, "has no Sloth spec")]);
    }
    Ok(Loaded { value: out, map: first_map.unwrap_or_default(), file: src.path.clone(), warnings })
}

fn read_sloth(d: &mut Diags, root: &Node) -> Option<Vec<ImportedSlo>> {
    let top = mapping(d, "", root)?;
    let service =
        required(d, "", top, "service", "the service the SLOs are for").and_then(|n| string(d, "service", n))?;
    let slos = required(d, "", top, "slos", "the list of SLOs")?;
    let Some(items) = slos.as_seq() else {
        d.error("slos", format!("must be a list, got {}", slos.describe()));
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("slos[{i}]");
        let Some(m) = mapping(d, &p, item) else { continue };
        let name = required(d, &p, m, "name", "").and_then(|n| string(d, &format!("{p}.name"), n));
        let objective = required(d, &p, m, "objective", "percent, e.g. 99.9")
            .and_then(|n| number(d, &format!("{p}.objective"), n))
            .and_then(|v| {
                if v.value > 0.0 && v.value < 100.0 {
                    Some(v.value)
                } else {
                    d.error(
                        format!("{p}.objective"),
                        format!("must be a percentage between 0 and 100 (exclusive), got {v}"),
                    );
                    None
                }
            });
        let sli = required(d, &p, m, "sli", "").and_then(|n| mapping(d, &format!("{p}.sli"), n));
        let mut queries = None;
        if let Some(sli) = sli {
            let sp = format!("{p}.sli");
            if get(sli, "raw").is_some() || get(sli, "plugin").is_some() {
                d.error(&sp, "only sli.events (error_query and total_query) is supported: Guardrail needs the raw counts, not a ratio");
            } else if let Some(ev) = required(d, &sp, sli, "events", "error_query and total_query")
                .and_then(|n| mapping(d, &format!("{sp}.events"), n))
            {
                let ep = format!("{sp}.events");
                let e = required(d, &ep, ev, "error_query", "").and_then(|n| query(d, &format!("{ep}.error_query"), n));
                let t = required(d, &ep, ev, "total_query", "").and_then(|n| query(d, &format!("{ep}.total_query"), n));
                if let (Some(e), Some(t)) = (e, t) {
                    queries = Some((e, t));
                }
            }
        }
        let extras = match get(m, "guardrail") {
            None => SpecExtras::default(),
            Some(g) => {
                let gp = format!("{p}.guardrail");
                match mapping(d, &gp, g) {
                    Some(gm) => {
                        let entries: Vec<(String, String, &Node)> =
                            gm.iter().map(|(k, v)| (k.clone(), format!("{gp}.{k}"), v)).collect();
                        read_extras(d, &gp, &entries, false)
                    }
                    None => SpecExtras::default(),
                }
            }
        };
        if let (Some(name), Some(objective_pct), Some(((error_query, ce), (total_query, ct)))) =
            (name, objective, queries)
        {
            out.push(ImportedSlo {
                format: SloSpecFormat::Sloth,
                service: service.clone(),
                name,
                objective_pct,
                error_query,
                total_query,
                period: None,
                rate_converted: ce || ct,
                extras,
            });
        }
    }
    (!d.has_errors()).then_some(out)
}

/// Splits a multi-document YAML text at `---` lines, padding each document with blank lines
/// so that positions stay those of the whole file.
fn documents(src: &Source) -> Vec<Source> {
    let mut texts = Vec::new();
    let mut current = String::new();
    let mut start = 0usize;
    for (i, line) in src.text.lines().enumerate() {
        if line.trim_end() == "---" {
            if !current.trim().is_empty() {
                texts.push("\n".repeat(start) + &current);
            }
            current.clear();
            start = i + 1;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.trim().is_empty() {
        texts.push("\n".repeat(start) + &current);
    }
    texts.into_iter().map(|text| Source { path: src.path.clone(), text, sha256: src.sha256.clone() }).collect()
}

fn metric_query(d: &mut Diags, path: &str, m: &[(String, Node)], key: &str) -> Option<(String, bool)> {
    let node = get(m, key)?;
    let p = format!("{path}.{key}");
    let mm = mapping(d, &p, node)?;
    let ms = required(d, &p, mm, "metricSource", "").and_then(|n| mapping(d, &format!("{p}.metricSource"), n))?;
    let msp = format!("{p}.metricSource");
    if let Some(t) = get(ms, "type").and_then(Node::as_str)
        && !t.eq_ignore_ascii_case("prometheus")
    {
        d.error(format!("{msp}.type"), format!("is {t:?}; Guardrail reads Prometheus metric sources only"));
        return None;
    }
    let spec = required(d, &msp, ms, "spec", "").and_then(|n| mapping(d, &format!("{msp}.spec"), n))?;
    required(d, &format!("{msp}.spec"), spec, "query", "").and_then(|n| query(d, &format!("{msp}.spec.query"), n))
}

fn load_openslo(src: &Source) -> Result<Loaded<Vec<ImportedSlo>>, Vec<ConfigError>> {
    let docs = documents(src);
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    for doc in &docs {
        match parse_as(doc, Format::Yaml) {
            Ok(root) => parsed.push((doc, root)),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // SLI documents by name, for indicatorRef.
    let mut slis: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (_, root)) in parsed.iter().enumerate() {
        if let Some(m) = root.as_map()
            && get(m, "kind").and_then(Node::as_str) == Some("SLI")
            && let Some(name) =
                get(m, "metadata").and_then(Node::as_map).and_then(|md| get(md, "name")).and_then(Node::as_str)
        {
            slis.insert(name.to_string(), i);
        }
    }
    let mut out = Vec::new();
    let mut first_map = None;
    for (doc, root) in &parsed {
        let mut d = Diags::new(doc, SourceMap::from_node(root));
        let Some(m) = root.as_map() else { continue };
        if get(m, "kind").and_then(Node::as_str) != Some("SLO") {
            continue;
        }
        let name = get(m, "metadata")
            .and_then(Node::as_map)
            .and_then(|md| get(md, "name"))
            .and_then(Node::as_str)
            .map(str::to_string);
        let Some(name) = name else {
            d.error("metadata", "needs a name");
            errors.extend(d.finish::<()>(None).err().unwrap_or_default());
            continue;
        };
        let Some(spec) = required(&mut d, "", m, "spec", "").and_then(|n| n.as_map()) else {
            errors.extend(d.finish::<()>(None).err().unwrap_or_default());
            continue;
        };
        let service = required(&mut d, "spec", spec, "service", "").and_then(|n| string(&mut d, "spec.service", n));
        let objective = match get(spec, "objectives").and_then(Node::as_seq) {
            Some([one]) => {
                let om = one.as_map().unwrap_or(&[]);
                match (get(om, "target"), get(om, "targetPercent")) {
                    (Some(t), _) => number(&mut d, "spec.objectives[0].target", t).and_then(|v| {
                        (v.value > 0.0 && v.value < 1.0).then_some(v.value * 100.0).or_else(|| {
                            d.error(
                                "spec.objectives[0].target",
                                format!("must be a ratio between 0 and 1 (exclusive), got {v}"),
                            );
                            None
                        })
                    }),
                    (None, Some(t)) => number(&mut d, "spec.objectives[0].targetPercent", t).and_then(|v| {
                        (v.value > 0.0 && v.value < 100.0).then_some(v.value).or_else(|| {
                            d.error(
                                "spec.objectives[0].targetPercent",
                                format!("must be between 0 and 100 (exclusive), got {v}"),
                            );
                            None
                        })
                    }),
                    (None, None) => {
                        d.error("spec.objectives[0]", "needs target (a ratio such as 0.999) or targetPercent");
                        None
                    }
                }
            }
            Some(xs) => {
                d.error("spec.objectives", format!("has {} objectives; Guardrail decides on exactly one", xs.len()));
                None
            }
            None => {
                d.error("spec", "needs objectives: [{target: 0.999}]");
                None
            }
        };
        let period = match get(spec, "timeWindow")
            .and_then(Node::as_seq)
            .and_then(|w| w.first())
            .and_then(Node::as_map)
            .and_then(|w| get(w, "duration"))
        {
            Some(n) => match n.as_str().map(Window::parse) {
                Some(Ok(w)) => Some(Some(w)),
                _ => {
                    d.error(
                        "spec.timeWindow[0].duration",
                        format!("must be a duration like 28d or 720h, got {}", n.describe()),
                    );
                    None
                }
            },
            None => Some(None),
        };
        // The indicator: inline, or a reference to a kind: SLI document.
        let (ind_doc, ind_path, ind_root): (Option<&Source>, String, Option<&Node>) =
            match (get(spec, "indicator"), get(spec, "indicatorRef")) {
                (Some(n), _) => (None, "spec.indicator".to_string(), Some(n)),
                (None, Some(r)) => match r.as_str().and_then(|n| slis.get(n)) {
                    Some(&i) => (Some(parsed[i].0), String::new(), Some(&parsed[i].1)),
                    None => {
                        d.error(
                            "spec.indicatorRef",
                            format!("names no kind: SLI document of this file ({})", r.describe()),
                        );
                        (None, String::new(), None)
                    }
                },
                (None, None) => {
                    d.error("spec", "needs an indicator (or an indicatorRef to a kind: SLI document)");
                    (None, String::new(), None)
                }
            };
        let mut queries = None;
        if let Some(ind) = ind_root {
            let mut di = match ind_doc {
                Some(doc) => Diags::new(doc, SourceMap::from_node(ind)),
                None => Diags::new(doc, SourceMap::from_node(root)),
            };
            let join = |k: &str| if ind_path.is_empty() { k.to_string() } else { format!("{ind_path}.{k}") };
            let rm = ind
                .as_map()
                .and_then(|im| get(im, "spec"))
                .and_then(Node::as_map)
                .and_then(|s| get(s, "ratioMetric"))
                .and_then(Node::as_map);
            match rm {
                None => di.error(
                    join("spec"),
                    "needs ratioMetric (good or bad, and total): Guardrail reads ratio metrics over Prometheus",
                ),
                Some(rm) => {
                    let rp = join("spec.ratioMetric");
                    let total = metric_query(&mut di, &rp, rm, "total");
                    let bad = metric_query(&mut di, &rp, rm, "bad");
                    let good = metric_query(&mut di, &rp, rm, "good");
                    if total.is_none() && !di.has_errors() {
                        di.error(&rp, "needs total");
                    }
                    let error_query = match (bad, good) {
                        (Some(b), _) => Some(b),
                        (None, Some((g, cg))) => total.as_ref().map(|(t, ct)| (format!("({t}) - ({g})"), cg || *ct)),
                        (None, None) => {
                            if !di.has_errors() {
                                di.error(&rp, "needs bad or good");
                            }
                            None
                        }
                    };
                    if let (Some(e), Some(t)) = (error_query, total) {
                        queries = Some((e, t));
                    }
                }
            }
            if di.has_errors() {
                errors.extend(di.finish::<()>(None).err().unwrap_or_default());
                queries = None;
            }
        }
        let annotations: Vec<(String, String, &Node)> = get(m, "metadata")
            .and_then(Node::as_map)
            .and_then(|md| get(md, "annotations"))
            .and_then(Node::as_map)
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix(ANNOTATION_PREFIX)
                            .map(|short| (short.to_string(), format!("metadata.annotations.{k}"), v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let extras = read_extras(&mut d, "metadata.annotations", &annotations, true);
        if let (Some(service), Some(objective_pct), Some(period), Some(((error_query, ce), (total_query, ct)))) =
            (service, objective, period, queries)
            && !d.has_errors()
        {
            out.push(ImportedSlo {
                format: SloSpecFormat::OpenSlo,
                service,
                name,
                objective_pct,
                error_query,
                total_query,
                period,
                rate_converted: ce || ct,
                extras,
            });
        }
        if d.has_errors() {
            errors.extend(d.finish::<()>(None).err().unwrap_or_default());
        } else if first_map.is_none() {
            first_map = Some(SourceMap::from_node(root));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if out.is_empty() {
        return Err(vec![ConfigError::file(&src.path, "has no kind: SLO document")]);
    }
    Ok(Loaded { value: out, map: first_map.unwrap_or_default(), file: src.path.clone(), warnings: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, text: &str) -> Source {
        Source { path: name.into(), text: text.into(), sha256: String::new() }
    }

    const SLOTH: &str = r#"version: "prometheus/v1"
service: "checkout-api"
labels: {team: payments}
slos:
  - name: "requests-availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(increase(http_requests_total{service="checkout-api",code=~"5.."}[{{.window}}]))
        total_query: sum(increase(http_requests_total{service="checkout-api"}[{{.window}}]))
    alerting: {name: CheckoutAvailability, page_alert: {disable: true}}
  - name: "login-availability"
    objective: 99.5
    sli:
      events:
        error_query: sum(increase(login_total{code=~"5.."}[{{.window}}]))
        total_query: sum(increase(login_total[{{.window}}]))
"#;

    const OPENSLO: &str = r#"apiVersion: openslo/v1
kind: SLI
metadata: {name: search-ratio}
spec:
  ratioMetric:
    counter: true
    good: {metricSource: {type: Prometheus, spec: {query: 'sum(increase(search_total{code!~"5.."}[{{.window}}]))'}}}
    total: {metricSource: {type: Prometheus, spec: {query: 'sum(increase(search_total[{{.window}}]))'}}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: checkout-availability}
spec:
  service: checkout-api
  budgetingMethod: Occurrences
  timeWindow: [{duration: 28d, isRolling: true}]
  objectives: [{displayName: good, target: 0.999}]
  indicator:
    metadata: {name: checkout-errors}
    spec:
      ratioMetric:
        counter: true
        bad: {metricSource: {type: Prometheus, spec: {query: 'sum(increase(http_requests_total{code=~"5.."}[{{.window}}]))'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'sum(increase(http_requests_total[{{.window}}]))'}}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: search-availability}
spec:
  service: search
  objectives: [{targetPercent: 99.5}]
  indicatorRef: search-ratio
"#;

    #[test]
    fn sloth_maps_objective_and_event_queries() {
        let l = load_slo_specs(&src("sloth.yaml", SLOTH)).unwrap();
        assert_eq!(l.value.len(), 2);
        let s = &l.value[0];
        assert_eq!(
            (s.format, s.service.as_str(), s.name.as_str(), s.objective_pct),
            (SloSpecFormat::Sloth, "checkout-api", "requests-availability", 99.9)
        );
        assert!(s.error_query.contains("code=~\"5..\"") && s.error_query.contains("{{.window}}"));
        // One service, two SLOs: the SLO must be named.
        let e = select_slo(&l.value, Some("checkout-api"), None).unwrap_err();
        assert!(e.contains("checkout-api/requests-availability, checkout-api/login-availability"), "{e}");
        assert_eq!(select_slo(&l.value, None, Some("login-availability")).unwrap().objective_pct, 99.5);
    }

    #[test]
    fn openslo_bad_good_total_and_several_services() {
        let l = load_slo_specs(&src("openslo.yaml", OPENSLO)).unwrap();
        assert_eq!(l.value.len(), 2);
        let c = select_slo(&l.value, Some("checkout-api"), None).unwrap();
        assert_eq!(c.objective_pct, 99.9);
        assert_eq!(c.period, Some(Window(28 * 86_400)));
        assert!(c.error_query.starts_with("sum(increase(http_requests_total{code=~"));
        // good/total: error = total − good.
        let s = select_slo(&l.value, Some("search"), None).unwrap();
        assert_eq!(
            s.error_query,
            "(sum(increase(search_total[{{.window}}]))) - (sum(increase(search_total{code!~\"5..\"}[{{.window}}])))"
        );
        assert_eq!(s.objective_pct, 99.5);
        let e = select_slo(&l.value, None, None).unwrap_err();
        assert!(e.contains("2 services") && e.contains("--service") && e.contains("search/search-availability"), "{e}");
        let e = select_slo(&l.value, Some("payments"), None).unwrap_err();
        assert!(e.contains("no SLO for service \"payments\""), "{e}");
    }

    #[test]
    fn errors_name_the_field_and_line() {
        let bad = SLOTH.replace("objective: 99.9", "objective: 999");
        let e = load_slo_specs(&src("sloth.yaml", &bad)).unwrap_err();
        assert_eq!(e[0].field, "slos[0].objective");
        assert_eq!(e[0].line, Some(6));
        let bad = SLOTH.replace(
            "total_query: sum(increase(login_total[{{.window}}]))",
            "total_query: sum(increase(login_total[5m]))",
        );
        let e = load_slo_specs(&src("sloth.yaml", &bad)).unwrap_err();
        assert_eq!(e[0].field, "slos[1].sli.events.total_query");
        assert!(e[0].message.contains("{{.window}}"));
        // Positions in the third document of an OpenSLO file are the file's lines.
        let bad = OPENSLO.replace("targetPercent: 99.5", "targetPercent: 150");
        let e = load_slo_specs(&src("openslo.yaml", &bad)).unwrap_err();
        assert_eq!(e[0].field, "spec.objectives[0].targetPercent");
        assert_eq!(e[0].line, Some(31));
        let bad = OPENSLO.replace(
            "type: Prometheus, spec: {query: 'sum(increase(http_requests_total{",
            "type: Datadog, spec: {query: 'sum(increase(http_requests_total{",
        );
        let e = load_slo_specs(&src("openslo.yaml", &bad)).unwrap_err();
        assert!(e[0].field.ends_with("bad.metricSource.type"), "{:?}", e[0]);
        let bad = OPENSLO.replace("indicatorRef: search-ratio", "indicatorRef: nope");
        let e = load_slo_specs(&src("openslo.yaml", &bad)).unwrap_err();
        assert_eq!(e[0].field, "spec.indicatorRef");
    }

    #[test]
    fn detection() {
        assert_eq!(detect_slo_spec(&src("a", SLOTH)), Some(SloSpecFormat::Sloth));
        assert_eq!(detect_slo_spec(&src("a", OPENSLO)), Some(SloSpecFormat::OpenSlo));
        assert_eq!(detect_slo_spec(&src("a", "slos:\n  availability: {target: 99.9}\n")), None);
    }

    #[test]
    fn rate_becomes_increase_and_irate_is_refused() {
        let (q, changed) =
            counts_from_rate("sum(rate(x_total{job=\"rate(\"}[{{.window}}])) / sum(rate (y[{{.window}}]))").unwrap();
        assert!(changed);
        assert_eq!(q, "sum(increase(x_total{job=\"rate(\"}[{{.window}}])) / sum(increase (y[{{.window}}]))");
        let (q, changed) = counts_from_rate("sum(increase(x[{{.window}}])) or vector(0)").unwrap();
        assert!(!changed);
        assert_eq!(q, "sum(increase(x[{{.window}}])) or vector(0)");
        // A metric or label called rate is not the function.
        assert!(!counts_from_rate("sum(rate_total{rate=\"1\"}[{{.window}}])").unwrap().1);
        assert!(counts_from_rate("sum(irate(x[{{.window}}]))").unwrap_err().contains("irate"));
        let sloth = SLOTH.replace("sum(increase(login_total[{{.window}}]))", "sum(rate(login_total[{{.window}}]))");
        let l = load_slo_specs(&src("sloth.yaml", &sloth)).unwrap();
        assert_eq!(l.value[1].total_query, "sum(increase(login_total[{{.window}}]))");
        assert!(l.value[1].rate_converted && !l.value[0].rate_converted);
        let bad = SLOTH.replace("sum(increase(login_total[{{.window}}]))", "sum(irate(login_total[{{.window}}]))");
        let e = load_slo_specs(&src("sloth.yaml", &bad)).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].line), ("slos[1].sli.events.total_query", Some(17)));
    }

    #[test]
    fn guardrail_extension_gives_latency_and_limits() {
        let sloth = SLOTH.replace(
            "    alerting: {name: CheckoutAvailability",
            "    guardrail: {latency_histogram: 'h_bucket{job=\"c\"}', p95_threshold_ms: 500, p99_threshold_ms: 900, min_events: 10}\n    alerting: {name: CheckoutAvailability",
        );
        let l = load_spec_slo(&src("sloth.yaml", &sloth), Some("checkout-api"), Some("requests-availability")).unwrap();
        let v = &l.value;
        assert_eq!(v.prometheus.latency, Some(LatencySource::Histogram("h_bucket{job=\"c\"}".into())));
        assert_eq!(v.prometheus.burn.min_events, 10);
        assert_eq!(v.prometheus.service, "checkout-api");
        assert_eq!(v.slo.p95_threshold_ms.value, 500.0);
        assert_eq!(v.slo.availability_target_pct.value, 99.9);
        // Without the extension: no latency source, NaN limits.
        let l = load_spec_slo(&src("sloth.yaml", SLOTH), None, Some("login-availability")).unwrap();
        assert_eq!(l.value.prometheus.latency, None);
        assert!(l.value.slo.p95_threshold_ms.value.is_nan());
        // OpenSLO annotations, values as text.
        let open = OPENSLO.replace(
            "metadata: {name: search-availability}",
            "metadata:\n  name: search-availability\n  annotations:\n    guardrail.dev/latency_histogram: 'h_bucket'\n    guardrail.dev/p95_threshold_ms: \"250\"\n    other.org/x: y",
        );
        let l = load_spec_slo(&src("openslo.yaml", &open), Some("search"), None).unwrap();
        assert_eq!(l.value.slo.p95_threshold_ms.value, 250.0);
        assert_eq!(l.value.prometheus.burn.period, Window(30 * 86_400));
        let l = load_spec_slo(&src("openslo.yaml", &open), Some("checkout-api"), None).unwrap();
        assert_eq!(l.value.prometheus.burn.period, Window(28 * 86_400));
        // Mistakes are positioned.
        let bad = open.replace("guardrail.dev/p95_threshold_ms: \"250\"", "guardrail.dev/p95_treshold_ms: \"250\"");
        let e = load_slo_specs(&src("openslo.yaml", &bad)).unwrap_err();
        assert!(
            e.iter().any(|e| e.field == "metadata.annotations.guardrail.dev/p95_treshold_ms"
                && e.message.contains("did you mean p95_threshold_ms")),
            "{e:?}"
        );
        let bad = open.replace("guardrail.dev/p95_threshold_ms: \"250\"", "guardrail.dev/p95_threshold_ms: fast");
        let e = load_slo_specs(&src("openslo.yaml", &bad)).unwrap_err();
        assert_eq!((e.len(), e[0].line), (1, Some(32)), "{e:?}");
    }

    #[test]
    fn the_extension_sets_the_prometheus_timeout_and_retries() {
        // Defaults: 5 s, 2 retries.
        let l = load_spec_slo(&src("sloth.yaml", SLOTH), None, Some("login-availability")).unwrap();
        assert_eq!((l.value.prometheus.timeout_ms, l.value.prometheus.retries), (SPEC_TIMEOUT_MS, SPEC_RETRIES));
        assert_eq!((SPEC_TIMEOUT_MS, SPEC_RETRIES), (5000, 2));
        let with = |x: &str| {
            SLOTH.replace(
                "    alerting: {name: CheckoutAvailability",
                &format!("    guardrail: {{{x}}}\n    alerting: {{name: CheckoutAvailability"),
            )
        };
        let l = load_spec_slo(
            &src("sloth.yaml", &with("timeout_ms: 60000, retries: 0")),
            None,
            Some("requests-availability"),
        )
        .unwrap();
        assert_eq!((l.value.prometheus.timeout_ms, l.value.prometheus.retries), (60_000, 0));
        // 0, negative, too long, fractional, not a number: positioned errors naming the field.
        for (x, says) in [
            ("timeout_ms: 0", "from 1 to 60000, got 0"),
            ("timeout_ms: -5", "from 1 to 60000, got -5"),
            ("timeout_ms: 60001", "from 1 to 60000, got 60001"),
            ("timeout_ms: 1.5", "whole number of milliseconds"),
            ("timeout_ms: soon", "number"),
            ("retries: 6", "from 0 to 5, got 6"),
            ("retries: -1", "from 0 to 5, got -1"),
        ] {
            let e = load_slo_specs(&src("sloth.yaml", &with(x))).unwrap_err();
            let key = x.split(':').next().unwrap();
            assert_eq!(e.len(), 1, "{x}: {e:?}");
            assert_eq!(e[0].field, format!("slos[0].guardrail.{key}"), "{x}: {e:?}");
            assert!(e[0].message.contains(says), "{x}: {e:?}");
            assert!(e[0].line.is_some() && e[0].col.is_some(), "{x}: {e:?}");
        }
        // OpenSLO annotations, values as text.
        let open = |v: &str| {
            OPENSLO.replace(
                "metadata: {name: search-availability}",
                &format!("metadata:\n  name: search-availability\n  annotations:\n    guardrail.dev/timeout_ms: \"{v}\"\n    guardrail.dev/retries: \"1\""),
            )
        };
        let l = load_spec_slo(&src("openslo.yaml", &open("60000")), Some("search"), None).unwrap();
        assert_eq!((l.value.prometheus.timeout_ms, l.value.prometheus.retries), (60_000, 1));
        for v in ["0", "-1", "2s"] {
            let e = load_slo_specs(&src("openslo.yaml", &open(v))).unwrap_err();
            assert_eq!(e.len(), 1, "{v}: {e:?}");
            assert_eq!(e[0].field, "metadata.annotations.guardrail.dev/timeout_ms", "{v}: {e:?}");
        }
    }

    #[test]
    fn the_extension_names_a_ca_file_relative_to_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
            .unwrap();
        let at = |name: &str, text: String| Source { path: dir.path().join(name), text, sha256: String::new() };
        let with = |x: &str| {
            SLOTH.replace(
                "    alerting: {name: CheckoutAvailability",
                &format!("    guardrail: {{{x}}}\n    alerting: {{name: CheckoutAvailability"),
            )
        };
        let l = load_spec_slo(&at("sloth.yaml", with("ca_file: ca.pem")), None, Some("requests-availability")).unwrap();
        assert_eq!(l.value.prometheus.ca_file, Some(dir.path().join("ca.pem")));
        let e = load_slo_specs(&at("sloth.yaml", with("ca_file: nope.pem"))).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "slos[0].guardrail.ca_file", "{e:?}");
        assert!(e[0].message.contains("nope.pem: cannot be read"), "{e:?}");
        let open = |v: &str| {
            OPENSLO.replace(
                "metadata: {name: search-availability}",
                &format!("metadata:\n  name: search-availability\n  annotations:\n    guardrail.dev/ca_file: \"{v}\""),
            )
        };
        let l = load_spec_slo(&at("openslo.yaml", open("ca.pem")), Some("search"), None).unwrap();
        assert_eq!(l.value.prometheus.ca_file, Some(dir.path().join("ca.pem")));
        let e = load_slo_specs(&at("openslo.yaml", open("slos.txt"))).unwrap_err();
        assert_eq!(e[0].field, "metadata.annotations.guardrail.dev/ca_file", "{e:?}");
    }

    #[test]
    fn unknown_service_and_wrong_version_are_positioned() {
        let e = load_spec_slo(&src("sloth.yaml", SLOTH), Some("payments"), None).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].line, e[0].col), ("service", Some(2), Some(1)), "{e:?}");
        assert!(e[0].message.contains("checkout-api/requests-availability"), "{e:?}");
        let e = load_spec_slo(&src("openslo.yaml", OPENSLO), Some("payments"), None).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].line), ("spec.service", Some(14)), "{e:?}");
        let v2 = SLOTH.replace("prometheus/v1", "prometheus/v2");
        let e = classify_slo_file(&src("sloth.yaml", &v2)).unwrap_err();
        assert_eq!((e.line, e.col), (Some(1), Some(1)));
        assert!(e.to_string().contains("\"prometheus/v2\" is not a supported SLO spec version"), "{e}");
        let e = classify_slo_file(&src("o.yaml", &OPENSLO.replace("openslo/v1", "openslo/v1alpha"))).unwrap_err();
        assert_eq!(e.field, "apiVersion");
        assert_eq!(classify_slo_file(&src("s.yaml", "version: 1\nslos: {}\n")).unwrap(), None);
    }

    #[test]
    fn the_readme_examples_read() {
        let readme = include_str!("../../../README.md");
        let block = |marker: &str| {
            let start = readme.find(marker).unwrap_or_else(|| panic!("README has no {marker}"));
            let body = &readme[start..];
            body[..body.find("```").unwrap()].to_string()
        };
        let sloth = block("# config/checkout.sloth.yaml");
        let l = load_spec_slo(&src("checkout.sloth.yaml", &sloth), None, None).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(l.value.imported.service, "checkout-api");
        assert!(l.value.imported.rate_converted);
        assert!(l.value.prometheus.total_query.starts_with("sum(increase(http_requests_total{job=\"checkout\"}"));
        assert_eq!(l.value.slo.p95_threshold_ms.value, 500.0);
        let open = block("# config/slos.openslo.yaml");
        let l =
            load_spec_slo(&src("slos.openslo.yaml", &open), Some("search"), None).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(l.value.prometheus.burn.period, Window(28 * 86_400));
        assert_eq!(l.value.imported.objective_pct, 99.5);
        assert_eq!(l.value.slo.p95_threshold_ms.value, 300.0);
        assert!(l.value.prometheus.latency.is_some());
    }

    #[test]
    fn a_sloth_file_with_several_specs_holds_several_services() {
        let two = format!(
            "{SLOTH}---\nversion: prometheus/v1\nservice: search\nslos:\n  - name: availability\n    objective: 99.5\n    sli:\n      events:\n        error_query: sum(rate(s{{code=\"500\"}}[{{{{.window}}}}]))\n        total_query: sum(rate(s[{{{{.window}}}}]))\n"
        );
        let l = load_slo_specs(&src("two.yaml", &two)).unwrap();
        assert_eq!(l.value.len(), 3);
        let s = select_slo(&l.value, Some("search"), None).unwrap();
        assert_eq!((s.objective_pct, s.total_query.as_str()), (99.5, "sum(increase(s[{{.window}}]))"));
        let e = select_slo(&l.value, None, None).unwrap_err();
        assert!(e.contains("2 services"), "{e}");
        // Positions in the second spec are the file's lines.
        let bad = two.replace("name: availability\n    objective: 99.5", "name: availability\n    objective: 0");
        let e = load_slo_specs(&src("two.yaml", &bad)).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].line), ("slos[0].objective", Some(23)), "{e:?}");
        let bad = two.replace("version: prometheus/v1\nservice: search", "service: search");
        let e = load_slo_specs(&src("two.yaml", &bad)).unwrap_err();
        assert_eq!(e[0].field, "version", "{e:?}");
    }
}
