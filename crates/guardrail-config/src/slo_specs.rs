//! SLO definitions in Sloth's `prometheus/v1` format and OpenSLO v1 `kind: SLO` objects →
//! [`ImportedSlo`]s: the availability objective and the error/total queries of the
//! `prometheus:` block (`WINDOW_PLACEHOLDER`, `{{.window}}`, in both queries).
//!
//! - Sloth: one spec or several separated by `---` (one service each), each with
//!   `version: prometheus/v1`, `service`, `slos[].name`, `slos[].objective` (percent),
//!   `slos[].sli.events.error_query` / `total_query` (Sloth's `{{.window}}` is Guardrail's
//!   too, also when written `{{ .window }}` as Sloth allows). `sli.raw` and `sli.plugin` cannot be decided on: Guardrail needs the raw counts.
//!   A service's SLO names are unique (Sloth refuses duplicates too).
//! - OpenSLO v1: one or more YAML documents (`---`); each `kind: SLO` has `spec.service`,
//!   `spec.budgetingMethod` (required), `spec.objectives[]` (exactly one, `target` as a ratio
//!   or `targetPercent`), an inline `spec.indicator` or an `indicatorRef` to a `kind: SLI`
//!   document of the same file, whose `spec.ratioMetric` names `bad` or `good`, and `total`,
//!   each `metricSource.spec.query` (a Prometheus source; the query must contain
//!   `{{.window}}`). With `good`, the error query is `(total) - (good)`.
//!   `timeWindow[0].duration` (OpenSLO's duration shorthand: a positive whole number and `m`,
//!   `h`, `d`, `w`, `M`, `Q` or `Y`) becomes the period.
//!
//! What Guardrail computes is an occurrences budget over a rolling window: bad events / all
//! events over the last `period`. An SLO that asks for something else is valid in its format
//! but cannot be decided on, and says so instead of being computed differently: OpenSLO's
//! `Timeslices` / `RatioTimeslices` budgeting, a calendar-aligned `timeWindow` (`isRolling:
//! false` or `calendar:`), a rolling window in months, quarters or years (no fixed length),
//! several objectives, a `thresholdMetric` or raw ratio indicator, a non-Prometheus metric
//! source; Sloth's `sli.raw` and `sli.plugin`. Those refusals are kept with the SLO
//! ([`ImportedSlo::cannot_decide`]) and only reported when that SLO is selected, so one such
//! SLO does not make the rest of the file unusable. So is a total query whose freshness check
//! cannot be derived (no series selector before `[{{.window}}]`) while the extension gives no
//! `freshness_query`.
//!
//! Other SLO formats (Sloth's Kubernetes `PrometheusServiceLevel`, Pyrra's
//! `ServiceLevelObjective`, other OpenSLO versions, Nobl9, Google Cloud Monitoring SLOs, a
//! Prometheus Operator `PrometheusRule`) are recognised by [`classify_slo_file`] and refused as
//! not supported, naming the format, instead of being read as `slos.yaml`.
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
//! source), `p99_threshold_ms`, `min_events` (default 100 per window), `freshness_query`
//! (PromQL returning the Unix time of the newest sample; default `max(timestamp(SELECTOR))`
//! with the total query's selector), and the Prometheus
//! client's `timeout_ms` (per request, 1 to 60000, default [`SPEC_TIMEOUT_MS`]) and `retries`
//! (0 to 5, default [`SPEC_RETRIES`]) and `ca_file` (a PEM file of CA certificates to trust
//! for an `https://` Prometheus, relative to the spec file's directory, checked when read), as
//! in the `prometheus:` block. The gate's `--prometheus-timeout-ms` /
//! `GUARDRAIL_PROMETHEUS_TIMEOUT_MS` win over `timeout_ms`, `--prometheus-ca` /
//! `GUARDRAIL_PROMETHEUS_CA` over `ca_file`.

use std::collections::BTreeMap;

use guardrail_core::burn::{BurnConfig, LatencySource, PrometheusSpec, Window, selector_before_window};
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
    /// Why Guardrail cannot decide on this SLO although the file is valid (a budgeting method,
    /// time window or indicator it does not compute, a freshness check it cannot derive),
    /// positioned; reported by [`load_spec_slo`] when this SLO is selected. When not empty, the
    /// objective, queries and period above are not meaningful.
    pub cannot_decide: Vec<ConfigError>,
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
    /// PromQL returning the Unix time of the newest sample; `None`: derived from the total
    /// query's series selector.
    pub freshness_query: Option<String>,
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
    let chosen =
        select_slo(&loaded.value, service, slo).map_err(|e| vec![loaded.error_at(field, e.to_string())])?.clone();
    if !chosen.cannot_decide.is_empty() {
        let mut errors = chosen.cannot_decide;
        errors.sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.col.unwrap_or(0)));
        return Err(errors);
    }
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
        freshness_query: x.freshness_query.clone(),
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

/// A query [`counts_from_rate`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `irate(` gives no count of events over the window.
    #[error(
        "uses irate(), the rate between the last two samples, which is not a count of events \
         over the window; use increase() (or rate(), which Guardrail reads as increase())"
    )]
    Irate,
}

/// Rewrites `rate(` to `increase(` outside quoted strings (see the module docs); `irate(` is
/// refused. Returns the query and whether anything changed.
pub fn counts_from_rate(q: &str) -> Result<(String, bool), QueryError> {
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
                "irate" if call => return Err(QueryError::Irate),
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
    "freshness_query",
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
                Some(Err(e)) => d.error(path, e.to_string()),
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
            "freshness_query" => match string(d, path, node) {
                Some(q) if q.trim().is_empty() => d.error(path, "is empty"),
                Some(q) => x.freshness_query = Some(q),
                None => {}
            },
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

/// Like [`detect_slo_spec`], but a file in another SLO format is an error at its
/// `apiVersion` (or `version`) line naming the format, instead of being read as `slos.yaml`:
/// another version of OpenSLO (`openslo/v1alpha`, `openslo.com/v2alpha`) or of Sloth's spec,
/// Sloth's Kubernetes resources (`sloth.slok.dev/…`), Pyrra's `ServiceLevelObjective`
/// (`pyrra.dev/…`), Nobl9 (`n9/…`), a Prometheus Operator `PrometheusRule`, any other
/// Kubernetes-style object (`apiVersion` and `kind` at the top, no `slos:`), or a Google Cloud
/// Monitoring SLO (`serviceLevelIndicator`).
pub fn classify_slo_file(src: &Source) -> Result<Option<SloSpecFormat>, ConfigError> {
    if let Some(f) = detect_slo_spec(src) {
        return Ok(Some(f));
    }
    let refuse =
        |field: &str, line: usize, message: String| Err(ConfigError::at(&src.path, field, Some((line, 1)), message));
    // Top-level keys of each YAML document (a line-based look: these files need not parse).
    let mut doc = TopLevel::default();
    let lines: Vec<&str> = src.text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let end_of_doc = line.trim_end() == "---" || i + 1 == lines.len();
        if line.trim_end() != "---" {
            doc.read(i + 1, line);
        }
        if !end_of_doc {
            continue;
        }
        let current = std::mem::take(&mut doc);
        if let Some((line, version)) = &current.version
            && version.starts_with("prometheus/")
        {
            return refuse(
                "version",
                *line,
                format!("{version:?} is not a supported SLO spec version; Guardrail reads prometheus/v1 (Sloth)"),
            );
        }
        if let Some(line) = current.google_sli {
            return refuse(
                "serviceLevelIndicator",
                line,
                "is a Google Cloud Monitoring SLO (serviceLevelIndicator, goal), which Guardrail does not read \
                 (yet); it reads its own slos.yaml, Sloth prometheus/v1 and OpenSLO v1 files"
                    .into(),
            );
        }
        let Some((line, api)) = &current.api_version else { continue };
        let kind = current.kind.as_deref().unwrap_or("");
        let lower = api.to_ascii_lowercase();
        let reads = "Guardrail reads its own slos.yaml, Sloth prometheus/v1 and OpenSLO v1 files";
        let message = if lower.starts_with("openslo/") || lower.starts_with("openslo.com/") {
            format!("{api:?} is not a supported SLO spec version; Guardrail reads openslo/v1 (OpenSLO v1)")
        } else if lower.starts_with("sloth.slok.dev/") && kind == "PrometheusServiceLevel" {
            format!(
                "{api:?} kind: PrometheusServiceLevel is Sloth's Kubernetes resource, which Guardrail does not \
                 read (yet); it reads Sloth's plain spec: the same SLOs with version: \"prometheus/v1\", service \
                 and slos at the top level, error_query/total_query for errorQuery/totalQuery"
            )
        } else if lower.starts_with("sloth.slok.dev/") {
            format!("{api:?} kind: {kind} is a Sloth Kubernetes resource, not an SLO spec; {reads}")
        } else if lower.starts_with("pyrra.dev/") {
            format!("{api:?} kind: {kind} is a Pyrra SLO, which Guardrail does not read (yet); {reads}")
        } else if lower.starts_with("n9/") {
            format!("{api:?} kind: {kind} is a Nobl9 object, which Guardrail does not read (yet); {reads}")
        } else if lower.starts_with("monitoring.coreos.com/") {
            format!(
                "{api:?} kind: {kind} is a Prometheus Operator object (generated rules, not SLO definitions); \
                 give the Sloth or OpenSLO file the rules were generated from"
            )
        } else if !kind.is_empty() && !current.slos {
            format!(
                "{api:?} kind: {kind} is not an SLO file format Guardrail reads (its own slos.yaml, Sloth \
                 prometheus/v1, OpenSLO v1)"
            )
        } else {
            continue;
        };
        return refuse("apiVersion", *line, message);
    }
    Ok(None)
}

/// The top-level keys [`classify_slo_file`] looks at in one YAML document: `apiVersion`,
/// `version` and `kind` with their lines, whether `slos` is there, and the line of a Google
/// Cloud `serviceLevelIndicator` key (YAML at the top, or JSON at any depth).
#[derive(Default)]
struct TopLevel {
    api_version: Option<(usize, String)>,
    version: Option<(usize, String)>,
    kind: Option<String>,
    slos: bool,
    google_sli: Option<usize>,
}

impl TopLevel {
    fn read(&mut self, number: usize, line: &str) {
        let trimmed = line.trim_start();
        if trimmed.starts_with("\"serviceLevelIndicator\"") {
            self.google_sli.get_or_insert(number);
        }
        if line.starts_with([' ', '\t', '#', '-']) {
            return;
        }
        let Some((key, value)) = line.split_once(':') else { return };
        let unquote = |t: &str| t.trim().trim_matches(['"', '\'']).to_string();
        let key = unquote(key);
        let value = value.split(" #").next().unwrap_or("");
        let value = unquote(value);
        match key.as_str() {
            "apiVersion" => {
                self.api_version.get_or_insert((number, value));
            }
            "version" => {
                self.version.get_or_insert((number, value));
            }
            "kind" => {
                self.kind.get_or_insert(value);
            }
            "slos" => self.slos = true,
            "serviceLevelIndicator" => {
                self.google_sli.get_or_insert(number);
            }
            _ => {}
        }
    }
}

/// A refusal positioned through `d`'s map, kept with an SLO ([`ImportedSlo::cannot_decide`]).
fn refusal(d: &Diags, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    let field = field.into();
    let pos = d.map.locate(&field);
    ConfigError::at(&d.file, field, pos, message)
}

/// The refusal of an SLO whose freshness check cannot be derived from its total query (and the
/// extension gives no `freshness_query`); `set_at` says where to set it.
fn freshness_refusal(
    d: &Diags,
    extras: &SpecExtras,
    total_query: &str,
    field: &str,
    set_at: &str,
) -> Option<ConfigError> {
    if extras.freshness_query.is_some() || selector_before_window(total_query).is_some() {
        return None;
    }
    Some(refusal(
        d,
        field,
        format!(
            "has no series selector just before [{WINDOW_PLACEHOLDER}] (like \
             http_requests_total{{job=\"api\"}}[{WINDOW_PLACEHOLDER}]), so Guardrail cannot derive the freshness \
             check (the age of the newest sample); set {set_at} to PromQL returning the Unix time of the newest \
             sample, e.g. max(timestamp(METRIC{{…}}))"
        ),
    ))
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

/// Why [`select_slo`] found no single SLO. The lists are `service/name`, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// No SLO of the selected service.
    #[error("has no SLO for service {service:?}; it has: {}", available.join(", "))]
    NoSuchService {
        /// The service asked for.
        service: String,
        /// Every SLO of the file.
        available: Vec<String>,
    },
    /// SLOs of several services and no `--service`.
    #[error(
        "has SLOs for {services} services, so one must be selected with --service NAME: {}",
        available.join(", ")
    )]
    ServiceNeeded {
        /// How many services.
        services: usize,
        /// Their SLOs.
        available: Vec<String>,
    },
    /// No SLO of that name (for the service).
    #[error("has no SLO {name:?}; it has: {}", available.join(", "))]
    NoSuchSlo {
        /// The name asked for.
        name: String,
        /// The service's SLOs.
        available: Vec<String>,
    },
    /// Several SLOs of the service and no `--slo-name`.
    #[error("has {} SLOs for {service:?}, so one must be selected by name: {}", available.len(), available.join(", "))]
    NameNeeded {
        /// The service.
        service: String,
        /// Its SLOs.
        available: Vec<String>,
    },
}

/// Picks the SLO for `service` (and, when the service has several, `slo`): an error listing
/// the choices when the selection is missing or matches nothing.
pub fn select_slo<'a>(
    slos: &'a [ImportedSlo],
    service: Option<&str>,
    slo: Option<&str>,
) -> Result<&'a ImportedSlo, SelectError> {
    let list = |xs: &[&ImportedSlo]| xs.iter().map(|s| format!("{}/{}", s.service, s.name)).collect::<Vec<_>>();
    let all: Vec<&ImportedSlo> = slos.iter().collect();
    let by_service: Vec<&ImportedSlo> = match service {
        Some(svc) => all.iter().copied().filter(|s| s.service == svc).collect(),
        None => all.clone(),
    };
    if by_service.is_empty() {
        return Err(SelectError::NoSuchService { service: service.unwrap_or("").to_string(), available: list(&all) });
    }
    let services: std::collections::BTreeSet<&str> = by_service.iter().map(|s| s.service.as_str()).collect();
    if services.len() > 1 {
        return Err(SelectError::ServiceNeeded { services: services.len(), available: list(&by_service) });
    }
    match (slo, by_service.as_slice()) {
        (Some(name), xs) => xs
            .iter()
            .copied()
            .find(|s| s.name == name)
            .ok_or_else(|| SelectError::NoSuchSlo { name: name.to_string(), available: list(xs) }),
        (None, [one]) => Ok(one),
        (None, xs) => Err(SelectError::NameNeeded { service: xs[0].service.clone(), available: list(xs) }),
    }
}

/// Sloth's templates accept spaces inside the braces (`{{ .window }}`; its check is the regex
/// `{{ *\.window *}}`): the same placeholder, written as Guardrail's `{{.window}}`.
fn normalise_window(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    let mut rest = q;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let inner = after.trim_start_matches(' ');
        if let Some(tail) = inner.strip_prefix(".window").map(|t| t.trim_start_matches(' '))
            && let Some(tail) = tail.strip_prefix("}}")
        {
            out.push_str(WINDOW_PLACEHOLDER);
            rest = tail;
        } else {
            out.push_str("{{");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn query(d: &mut Diags, path: &str, node: &Node) -> Option<(String, bool)> {
    let q = normalise_window(&string(d, path, node)?);
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
            d.error(path, e.to_string());
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
    // (service, SLO name) → line of its first definition, across the file's specs.
    let mut seen: BTreeMap<(String, String), Option<usize>> = BTreeMap::new();
    for document in documents(src) {
        let doc = &document.src;
        let root = match parse_document(&document) {
            Ok(r) => r,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let mut d = Diags::new(doc, SourceMap::from_node(&root));
        let version = root.as_map().and_then(|m| get(m, "version")).and_then(Node::as_str);
        if version != Some("prometheus/v1") {
            d.error("version", "every spec of a Sloth file needs version: prometheus/v1");
        }
        let v = read_sloth(&mut d, &root, &mut seen);
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

fn read_sloth(
    d: &mut Diags,
    root: &Node,
    seen: &mut BTreeMap<(String, String), Option<usize>>,
) -> Option<Vec<ImportedSlo>> {
    let top = mapping(d, "", root)?;
    let service =
        required(d, "", top, "service", "the service the SLOs are for").and_then(|n| string(d, "service", n))?;
    let slos = required(d, "", top, "slos", "the list of SLOs")?;
    let Some(items) = slos.as_seq() else {
        d.error("slos", format!("must be a list, got {}", slos.describe()));
        return None;
    };
    let mut out = Vec::new();
    // Sloth's SLO plugins rewrite the rules Sloth generates (the denominator-corrected plugin
    // changes how the SLI is computed); Guardrail computes from the queries alone.
    let has_chain =
        |n: &Node| n.as_map().and_then(|m| get(m, "chain")).and_then(Node::as_seq).is_some_and(|c| !c.is_empty());
    let plugins_say = "is a chain of Sloth SLO plugins, which change the rules Sloth generates (e.g. \
                       sloth.dev/contrib/denominator_corrected_rules/v1 changes how the SLI is computed); Guardrail \
                       computes from the SLI queries alone, so it cannot decide on this SLO as Sloth would (not \
                       supported)";
    let spec_plugins = get(top, "slo_plugins").is_some_and(has_chain);
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
        if let Some(name) = &name {
            let line = d.map.locate(&format!("{p}.name")).map(|(l, _)| l);
            if let Some(first) = seen.get(&(service.clone(), name.clone())) {
                let at = first.map(|l| format!(" (line {l})")).unwrap_or_default();
                d.error(
                    format!("{p}.name"),
                    format!(
                        "{name:?} is already an SLO of service {service:?}{at}; SLO names must be unique within a \
                         service (Sloth refuses duplicates too), so --slo-name can pick one"
                    ),
                );
            } else {
                seen.insert((service.clone(), name.clone()), line);
            }
        }
        let mut cannot_decide = Vec::new();
        if spec_plugins {
            cannot_decide.push(refusal(d, "slo_plugins.chain", plugins_say));
        }
        if get(m, "plugins").is_some_and(has_chain) {
            cannot_decide.push(refusal(d, format!("{p}.plugins.chain"), plugins_say));
        }
        let sli = required(d, &p, m, "sli", "").and_then(|n| mapping(d, &format!("{p}.sli"), n));
        let mut queries = None;
        if let Some(sli) = sli {
            let sp = format!("{p}.sli");
            let kinds: Vec<&str> = ["events", "raw", "plugin"].into_iter().filter(|k| get(sli, k).is_some()).collect();
            match kinds.as_slice() {
                ["events"] => {
                    if let Some(ev) = get(sli, "events").and_then(|n| mapping(d, &format!("{sp}.events"), n)) {
                        let ep = format!("{sp}.events");
                        let e = required(d, &ep, ev, "error_query", "")
                            .and_then(|n| query(d, &format!("{ep}.error_query"), n));
                        let t = required(d, &ep, ev, "total_query", "")
                            .and_then(|n| query(d, &format!("{ep}.total_query"), n));
                        if let (Some(e), Some(t)) = (e, t) {
                            queries = Some((e, t));
                        }
                    }
                }
                ["raw"] => cannot_decide.push(refusal(
                    d,
                    format!("{sp}.raw"),
                    "is an error-ratio SLI, which Guardrail cannot decide on: it needs the error and total event \
                     counts (sli.events: error_query and total_query) for its minimum-events guard",
                )),
                ["plugin"] => cannot_decide.push(refusal(
                    d,
                    format!("{sp}.plugin"),
                    "is a Sloth SLI plugin, whose queries Sloth's plugin writes when it generates rules; Guardrail \
                     cannot decide on it: give the queries as sli.events (error_query and total_query)",
                )),
                [] => d.error(&sp, "needs events (error_query and total_query)"),
                several => d.error(&sp, format!("has {}: give exactly one SLI type", several.join(" and "))),
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
        let (Some(name), Some(objective_pct)) = (name, objective) else { continue };
        if let Some(((_, _), (total_query, _))) = &queries
            && let Some(r) = freshness_refusal(
                d,
                &extras,
                total_query,
                &format!("{p}.sli.events.total_query"),
                &format!("{p}.guardrail.freshness_query"),
            )
        {
            cannot_decide.push(r);
        }
        let ((error_query, ce), (total_query, ct)) = match queries {
            Some(q) => q,
            None if !cannot_decide.is_empty() => ((String::new(), false), (String::new(), false)),
            None => continue,
        };
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
            cannot_decide,
        });
    }
    (!d.has_errors()).then_some(out)
}

/// One document of a multi-document YAML file: its own text, and how many lines of the file
/// come before it (added to every position, so errors point into the file).
struct Document {
    src: Source,
    lines_before: usize,
}

/// Splits a multi-document YAML text at `---` lines (linear in the file: each document keeps
/// only its own text, and its positions are shifted after parsing).
fn documents(src: &Source) -> Vec<Document> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0usize;
    let mut push = |current: &mut String, start: usize| {
        if !current.trim().is_empty() {
            let text = std::mem::take(current);
            out.push(Document {
                src: Source { path: src.path.clone(), text, sha256: src.sha256.clone() },
                lines_before: start,
            });
        }
        current.clear();
    };
    for (i, line) in src.text.lines().enumerate() {
        if line.trim_end() == "---" {
            push(&mut current, start);
            start = i + 1;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    push(&mut current, start);
    out
}

/// Parses one document, with the file's line numbers.
fn parse_document(doc: &Document) -> Result<Node, Vec<ConfigError>> {
    fn shift(n: &mut Node, by: usize) {
        if n.line > 0 {
            n.line += by;
        }
        if let Some((l, _)) = n.key_at.as_mut()
            && *l > 0
        {
            *l += by;
        }
        match &mut n.value {
            crate::yaml::NodeValue::Seq(xs) => xs.iter_mut().for_each(|x| shift(x, by)),
            crate::yaml::NodeValue::Map(m) => m.iter_mut().for_each(|(_, v)| shift(v, by)),
            _ => {}
        }
    }
    match parse_as(&doc.src, Format::Yaml) {
        Ok(mut root) => {
            shift(&mut root, doc.lines_before);
            Ok(root)
        }
        Err(mut errors) => {
            for e in &mut errors {
                if let Some(l) = e.line.as_mut() {
                    *l += doc.lines_before;
                }
            }
            Err(errors)
        }
    }
}

/// An OpenSLO v1 duration shorthand (`timeWindow[].duration`, `timeSliceWindow`): a positive
/// whole number and a case-sensitive unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenSloDuration {
    /// `m`, `h`, `d`, `w` (a week is 7 days): a fixed number of seconds.
    Fixed(Window),
    /// `M`, `Q`, `Y`: calendar months (a quarter is 3, a year 12), which have no fixed length.
    Months(u64),
}

/// A text that is not an OpenSLO duration shorthand ([`parse_openslo_duration`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be an OpenSLO duration: a positive whole number and one of m (minutes), h, d, w (weeks), \
     M (months), Q (quarters), Y (years), e.g. 28d or 4w; got {text:?}"
)]
pub struct OpenSloDurationError {
    /// The text as given.
    pub text: String,
}

/// Reads an OpenSLO duration shorthand: `12h`, `4w`, `1M`, `1Q`, `365d`, `1Y` (the spec's
/// examples). Nothing else: no seconds, no sign, no spaces, no combined units.
pub fn parse_openslo_duration(text: &str) -> Result<OpenSloDuration, OpenSloDurationError> {
    let bad = || OpenSloDurationError { text: text.to_string() };
    let Some(unit) = text.chars().last() else { return Err(bad()) };
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    let seconds = |per: u64| n.checked_mul(per).map(|s| OpenSloDuration::Fixed(Window(s))).ok_or_else(bad);
    let months = |per: u64| n.checked_mul(per).map(OpenSloDuration::Months).ok_or_else(bad);
    match unit {
        'm' => seconds(60),
        'h' => seconds(3600),
        'd' => seconds(86_400),
        'w' => seconds(7 * 86_400),
        'M' => months(1),
        'Q' => months(3),
        'Y' => months(12),
        _ => Err(bad()),
    }
}

/// One `good`/`bad`/`total` metric of a ratio indicator: its Prometheus query. A metric
/// source of another type is kept in `cannot` (valid OpenSLO, not read by Guardrail).
fn metric_query(
    d: &mut Diags,
    cannot: &mut Vec<ConfigError>,
    path: &str,
    m: &[(String, Node)],
    key: &str,
) -> Option<(String, bool)> {
    let node = get(m, key)?;
    let p = format!("{path}.{key}");
    let mm = mapping(d, &p, node)?;
    let ms = required(d, &p, mm, "metricSource", "").and_then(|n| mapping(d, &format!("{p}.metricSource"), n))?;
    let msp = format!("{p}.metricSource");
    if let Some(t) = get(ms, "type").and_then(Node::as_str)
        && !t.eq_ignore_ascii_case("prometheus")
    {
        cannot.push(refusal(
            d,
            format!("{msp}.type"),
            format!("is {t:?}; Guardrail reads Prometheus metric sources only"),
        ));
        return None;
    }
    let spec = required(d, &msp, ms, "spec", "").and_then(|n| mapping(d, &format!("{msp}.spec"), n))?;
    required(d, &format!("{msp}.spec"), spec, "query", "").and_then(|n| query(d, &format!("{msp}.spec.query"), n))
}

/// The name in a document's `metadata.name`.
fn metadata_name(m: &[(String, Node)]) -> Option<&str> {
    get(m, "metadata").and_then(Node::as_map).and_then(|md| get(md, "name")).and_then(Node::as_str)
}

fn load_openslo(src: &Source) -> Result<Loaded<Vec<ImportedSlo>>, Vec<ConfigError>> {
    let docs = documents(src);
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    for doc in &docs {
        match parse_document(doc) {
            Ok(root) => parsed.push((&doc.src, root)),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Every document is OpenSLO v1; SLI documents by name, for indicatorRef; names are unique
    // per kind (an indicatorRef or --slo-name must not pick one of two silently).
    let mut slis: BTreeMap<String, usize> = BTreeMap::new();
    let mut names: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, (doc, root)) in parsed.iter().enumerate() {
        let Some(m) = root.as_map() else { continue };
        let mut d = Diags::new(doc, SourceMap::from_node(root));
        match get(m, "apiVersion").and_then(Node::as_str) {
            Some("openslo/v1") => {}
            other => d.error(
                "apiVersion",
                format!(
                    "every document of an OpenSLO file needs apiVersion: openslo/v1, got {}",
                    other.map(|v| format!("{v:?}")).unwrap_or_else(|| "none".into())
                ),
            ),
        }
        let kind = get(m, "kind").and_then(Node::as_str).unwrap_or("");
        if let Some(name) = metadata_name(m) {
            let line = d.map.locate("metadata.name").map_or(0, |(l, _)| l);
            match names.get(&(kind.to_string(), name.to_string())) {
                Some(first) => d.error(
                    "metadata.name",
                    format!(
                        "{name:?} is already the name of a kind: {kind} document (line {first}); names must be \
                         unique per kind (OpenSLO), so a reference or --slo-name picks one"
                    ),
                ),
                None => {
                    names.insert((kind.to_string(), name.to_string()), line);
                    if kind == "SLI" {
                        slis.insert(name.to_string(), i);
                    }
                }
            }
        }
        if d.has_errors() {
            errors.extend(d.finish::<()>(None).err().unwrap_or_default());
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut out = Vec::new();
    let mut first_map = None;
    for (doc, root) in &parsed {
        let Some(m) = root.as_map() else { continue };
        if get(m, "kind").and_then(Node::as_str) != Some("SLO") {
            continue;
        }
        let mut d = Diags::new(doc, SourceMap::from_node(root));
        // Valid OpenSLO that Guardrail does not compute: reported when this SLO is selected.
        let mut cannot: Vec<ConfigError> = Vec::new();
        let Some(name) = metadata_name(m).map(str::to_string) else {
            d.error("metadata", "needs a name");
            errors.extend(d.finish::<()>(None).err().unwrap_or_default());
            continue;
        };
        let Some(spec) = required(&mut d, "", m, "spec", "").and_then(|n| n.as_map()) else {
            errors.extend(d.finish::<()>(None).err().unwrap_or_default());
            continue;
        };
        let service = required(&mut d, "spec", spec, "service", "").and_then(|n| string(&mut d, "spec.service", n));
        match get(spec, "budgetingMethod").map(|n| (n, n.as_str())) {
            Some((_, Some("Occurrences"))) => {}
            Some((_, Some(method @ ("Timeslices" | "RatioTimeslices")))) => cannot.push(refusal(
                &d,
                "spec.budgetingMethod",
                format!(
                    "{method} is not supported (yet): Guardrail computes Occurrences budgets only (bad events / \
                     all events over the window), not budgets of time slices, and does not decide on this SLO with \
                     other semantics"
                ),
            )),
            Some((n, _)) => d.error(
                "spec.budgetingMethod",
                format!("must be Occurrences, Timeslices or RatioTimeslices, got {}", n.describe()),
            ),
            None => d.error(
                "spec",
                "needs budgetingMethod (required by OpenSLO v1): Occurrences is the one Guardrail computes",
            ),
        }
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
            Some([]) => {
                d.error("spec.objectives", "is empty: give one objective, e.g. [{target: 0.999}]");
                None
            }
            Some(xs) => {
                cannot.push(refusal(
                    &d,
                    "spec.objectives",
                    format!("has {} objectives; Guardrail decides on exactly one (not supported yet)", xs.len()),
                ));
                None
            }
            None => {
                d.error("spec", "needs objectives: [{target: 0.999}]");
                None
            }
        };
        let period = openslo_period(&mut d, &mut cannot, spec);
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
        let extras = {
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
            read_extras(&mut d, "metadata.annotations", &annotations, true)
        };
        let mut queries = None;
        if let Some(ind) = ind_root {
            let mut di = match ind_doc {
                Some(doc) => Diags::new(doc, SourceMap::from_node(ind)),
                None => Diags::new(doc, SourceMap::from_node(root)),
            };
            let join = |k: &str| if ind_path.is_empty() { k.to_string() } else { format!("{ind_path}.{k}") };
            let ind_spec = ind.as_map().and_then(|im| get(im, "spec")).and_then(Node::as_map);
            match ind_spec.map(|s| (get(s, "ratioMetric").and_then(Node::as_map), get(s, "thresholdMetric"))) {
                Some((None, Some(_))) => cannot.push(refusal(
                    &di,
                    join("spec.thresholdMetric"),
                    "is not supported (yet): a threshold on one metric's values (e.g. latency under 500 ms) is not \
                     an event count; Guardrail reads ratioMetric (good or bad, and total) over Prometheus",
                )),
                None | Some((None, None)) => di.error(
                    join("spec"),
                    "needs ratioMetric (good or bad, and total): Guardrail reads ratio metrics over Prometheus",
                ),
                Some((Some(rm), _)) => {
                    let rp = join("spec.ratioMetric");
                    let total = metric_query(&mut di, &mut cannot, &rp, rm, "total");
                    let bad = metric_query(&mut di, &mut cannot, &rp, rm, "bad");
                    let good = metric_query(&mut di, &mut cannot, &rp, rm, "good");
                    if get(rm, "total").is_none() && get(rm, "raw").is_none() {
                        di.error(&rp, "needs total");
                    }
                    if get(rm, "bad").is_none() && get(rm, "good").is_none() {
                        if get(rm, "raw").is_some() {
                            cannot.push(refusal(
                                &di,
                                format!("{rp}.raw"),
                                "is a precomputed ratio, which is not supported: Guardrail needs the event counts \
                                 (good or bad, and total) for its minimum-events guard",
                            ));
                        } else {
                            di.error(&rp, "needs bad or good");
                        }
                    }
                    let error_query = match (bad, good) {
                        (Some(b), _) => Some(b),
                        (None, Some((g, cg))) => total.as_ref().map(|(t, ct)| (format!("({t}) - ({g})"), cg || *ct)),
                        (None, None) => None,
                    };
                    if let (Some(e), Some(t)) = (error_query, total) {
                        if let Some(r) = freshness_refusal(
                            &di,
                            &extras,
                            &t.0,
                            &format!("{rp}.total.metricSource.spec.query"),
                            &format!("the SLO {name:?}'s annotation {ANNOTATION_PREFIX}freshness_query"),
                        ) {
                            cannot.push(r);
                        }
                        queries = Some((e, t));
                    }
                }
            }
            if di.has_errors() {
                errors.extend(di.finish::<()>(None).err().unwrap_or_default());
                continue;
            }
        }
        if d.has_errors() {
            errors.extend(d.finish::<()>(None).err().unwrap_or_default());
            continue;
        }
        let Some(service) = service else { continue };
        let imported = match (objective, period, queries) {
            _ if !cannot.is_empty() => ImportedSlo {
                format: SloSpecFormat::OpenSlo,
                service,
                name,
                objective_pct: f64::NAN,
                error_query: String::new(),
                total_query: String::new(),
                period: None,
                rate_converted: false,
                extras,
                cannot_decide: cannot,
            },
            (Some(objective_pct), Some(period), Some(((error_query, ce), (total_query, ct)))) => ImportedSlo {
                format: SloSpecFormat::OpenSlo,
                service,
                name,
                objective_pct,
                error_query,
                total_query,
                period,
                rate_converted: ce || ct,
                extras,
                cannot_decide: Vec::new(),
            },
            _ => {
                errors.push(ConfigError::at(&doc.path, "spec", root.anchor_pos(), "could not be read"));
                continue;
            }
        };
        out.push(imported);
        first_map.get_or_insert_with(|| SourceMap::from_node(root));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if out.is_empty() {
        return Err(vec![ConfigError::file(&src.path, "has no kind: SLO document")]);
    }
    Ok(Loaded { value: out, map: first_map.unwrap_or_default(), file: src.path.clone(), warnings: Vec::new() })
}

/// `spec.timeWindow`: `Some(None)` when absent (the default period), `Some(Some(w))` for a
/// rolling window Guardrail can compute, `None` when it is invalid (an error in `d`) or
/// valid but not computed (a refusal in `cannot`: calendar-aligned, or a rolling window in
/// months, quarters or years, or one shorter than the longest burn-rate window).
fn openslo_period(d: &mut Diags, cannot: &mut Vec<ConfigError>, spec: &[(String, Node)]) -> Option<Option<Window>> {
    let Some(tw) = get(spec, "timeWindow") else { return Some(None) };
    let one = match tw.as_seq() {
        Some([one]) => one,
        Some(xs) => {
            d.error("spec.timeWindow", format!("must list exactly one time window (OpenSLO v1), got {}", xs.len()));
            return None;
        }
        None => {
            d.error("spec.timeWindow", format!("must be a list of one time window, got {}", tw.describe()));
            return None;
        }
    };
    let w = mapping(d, "spec.timeWindow[0]", one)?;
    let duration = match get(w, "duration") {
        None => {
            d.error("spec.timeWindow[0]", "needs a duration, e.g. 28d or 4w");
            None
        }
        Some(n) => match n.as_str().map(parse_openslo_duration) {
            Some(Ok(x)) => Some(x),
            Some(Err(e)) => {
                d.error("spec.timeWindow[0].duration", e.to_string());
                None
            }
            None => {
                d.error(
                    "spec.timeWindow[0].duration",
                    format!("must be a duration like 28d or 4w, got {}", n.describe()),
                );
                None
            }
        },
    };
    let rolling = match get(w, "isRolling").map(|n| (n, &n.value)) {
        None => None,
        Some((_, crate::yaml::NodeValue::Bool(b))) => Some(*b),
        Some((n, _)) => {
            d.error("spec.timeWindow[0].isRolling", format!("must be true or false, got {}", n.describe()));
            return None;
        }
    };
    let duration = duration?;
    // Calendar-aligned: `calendar:` given, or isRolling: false (the spec assumes false when
    // calendar is present).
    if get(w, "calendar").is_some() || rolling == Some(false) {
        let at =
            if get(w, "calendar").is_some() { "spec.timeWindow[0].calendar" } else { "spec.timeWindow[0].isRolling" };
        cannot.push(refusal(
            d,
            at,
            "a calendar-aligned time window (isRolling: false, calendar: …) is not supported (yet): Guardrail \
             computes the budget over a rolling window; use isRolling: true and a duration such as 28d or 4w",
        ));
        return None;
    }
    match duration {
        OpenSloDuration::Months(_) => {
            cannot.push(refusal(
                d,
                "spec.timeWindow[0].duration",
                "is in months, quarters or years, which have no fixed length: a rolling window needs one; give it \
                 in days or weeks (e.g. 30d, 4w, 90d); M, Q and Y suit calendar-aligned windows, which Guardrail \
                 does not compute (yet)",
            ));
            None
        }
        OpenSloDuration::Fixed(period) => {
            let burn = BurnConfig { period, ..BurnConfig::default() };
            if let Err(e) = burn.validate() {
                cannot.push(refusal(
                    d,
                    "spec.timeWindow[0].duration",
                    format!("{period} cannot be Guardrail's SLO period: {}: {}", e.field, e.reason),
                ));
                return None;
            }
            Some(Some(period))
        }
    }
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
  budgetingMethod: Occurrences
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
        assert!(matches!(&e, SelectError::NameNeeded { service, .. } if service == "checkout-api"), "{e:?}");
        let e = e.to_string();
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
        assert!(matches!(e, SelectError::ServiceNeeded { services: 2, .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("2 services") && e.contains("--service") && e.contains("search/search-availability"), "{e}");
        let e = select_slo(&l.value, Some("payments"), None).unwrap_err().to_string();
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
        assert_eq!(e[0].line, Some(32));
        // A non-Prometheus source is valid OpenSLO: refused when that SLO is selected.
        let bad = OPENSLO.replace(
            "type: Prometheus, spec: {query: 'sum(increase(http_requests_total{",
            "type: Datadog, spec: {query: 'sum(increase(http_requests_total{",
        );
        assert_eq!(load_slo_specs(&src("openslo.yaml", &bad)).unwrap().value.len(), 2);
        let e = load_spec_slo(&src("openslo.yaml", &bad), Some("checkout-api"), None).unwrap_err();
        assert!(e[0].field.ends_with("bad.metricSource.type"), "{:?}", e[0]);
        assert_eq!(e[0].line, Some(23), "{:?}", e[0]);
        assert!(load_spec_slo(&src("openslo.yaml", &bad), Some("search"), None).is_ok());
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
        assert_eq!(counts_from_rate("sum(irate(x[{{.window}}]))"), Err(QueryError::Irate));
        assert!(QueryError::Irate.to_string().contains("uses irate()"));
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
        let e = select_slo(&l.value, None, None).unwrap_err().to_string();
        assert!(e.contains("2 services"), "{e}");
        // Positions in the second spec are the file's lines.
        let bad = two.replace("name: availability\n    objective: 99.5", "name: availability\n    objective: 0");
        let e = load_slo_specs(&src("two.yaml", &bad)).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].line), ("slos[0].objective", Some(23)), "{e:?}");
        let bad = two.replace("version: prometheus/v1\nservice: search", "service: search");
        let e = load_slo_specs(&src("two.yaml", &bad)).unwrap_err();
        assert_eq!(e[0].field, "version", "{e:?}");
    }

    #[test]
    fn openslo_durations_follow_the_spec_shorthand() {
        use OpenSloDuration::{Fixed, Months};
        for (text, want) in [
            ("5m", Fixed(Window(300))),
            ("12h", Fixed(Window(12 * 3600))),
            ("28d", Fixed(Window(28 * 86_400))),
            ("1w", Fixed(Window(7 * 86_400))),
            ("2w", Fixed(Window(14 * 86_400))),
            ("4w", Fixed(Window(28 * 86_400))),
            ("1M", Months(1)),
            ("1Q", Months(3)),
            ("2Q", Months(6)),
            ("1Y", Months(12)),
        ] {
            assert_eq!(parse_openslo_duration(text), Ok(want), "{text}");
        }
        // Case-sensitive units, positive whole numbers, one word, nothing else.
        for bad in [
            "",
            "d",
            "0d",
            "-1d",
            "+1d",
            "1.5d",
            "30s",
            "1D",
            "1W",
            "1 d",
            " 1d",
            "1h30m",
            "28",
            "99999999999999999999d",
            "30000000000000000w",
        ] {
            let e = parse_openslo_duration(bad).unwrap_err();
            assert_eq!(e.text, bad);
            let e = e.to_string();
            assert!(e.contains("must be an OpenSLO duration") && e.contains("4w"), "{bad}: {e}");
        }
    }

    /// The OpenSLO SLO of the unit tests with `spec` lines replaced.
    fn openslo_with(budgeting: &str, window: &str) -> String {
        OPENSLO.replace(
            "  budgetingMethod: Occurrences\n  timeWindow: [{duration: 28d, isRolling: true}]\n",
            &format!("{budgeting}{window}"),
        )
    }

    #[test]
    fn weeks_are_a_rolling_period_and_months_quarters_years_are_refused_for_rolling_windows() {
        let occurrences = "  budgetingMethod: Occurrences\n";
        let l = load_spec_slo(
            &src("o.yaml", &openslo_with(occurrences, "  timeWindow: [{duration: 2w, isRolling: true}]\n")),
            Some("checkout-api"),
            None,
        )
        .unwrap();
        assert_eq!(l.value.prometheus.burn.period, Window(14 * 86_400));
        let l = load_spec_slo(
            &src("o.yaml", &openslo_with(occurrences, "  timeWindow:\n    - duration: 1w\n")),
            Some("checkout-api"),
            None,
        )
        .unwrap();
        assert_eq!(l.value.prometheus.burn.period, Window(7 * 86_400));
        for unit in ["1M", "1Q", "1Y"] {
            let text = openslo_with(occurrences, &format!("  timeWindow: [{{duration: {unit}, isRolling: true}}]\n"));
            // The file reads (another SLO may be selected); this one cannot be decided on.
            assert!(load_spec_slo(&src("o.yaml", &text), Some("search"), None).is_ok());
            let e = load_spec_slo(&src("o.yaml", &text), Some("checkout-api"), None).unwrap_err();
            assert_eq!(
                (e.len(), e[0].field.as_str(), e[0].line),
                (1, "spec.timeWindow[0].duration", Some(16)),
                "{e:?}"
            );
            assert!(e[0].message.contains("no fixed length") && e[0].message.contains("30d, 4w"), "{e:?}");
        }
        // Shorter than the longest burn-rate window (3d): named, not silently computed.
        let text = openslo_with(occurrences, "  timeWindow: [{duration: 2d, isRolling: true}]\n");
        let e = load_spec_slo(&src("o.yaml", &text), Some("checkout-api"), None).unwrap_err();
        assert!(
            e[0].field == "spec.timeWindow[0].duration" && e[0].message.contains("longer than the SLO period"),
            "{e:?}"
        );
        // Not a duration: an error of the file.
        let e =
            load_slo_specs(&src("o.yaml", &openslo_with(occurrences, "  timeWindow: [{duration: 2x}]\n"))).unwrap_err();
        assert!(e[0].field == "spec.timeWindow[0].duration" && e[0].message.contains("OpenSLO duration"), "{e:?}");
        let e = load_slo_specs(&src(
            "o.yaml",
            &openslo_with(occurrences, "  timeWindow: [{duration: 1w}, {duration: 2w}]\n"),
        ))
        .unwrap_err();
        assert!(e[0].field == "spec.timeWindow" && e[0].message.contains("exactly one"), "{e:?}");
    }

    #[test]
    fn timeslices_and_calendar_windows_are_refused_not_computed_as_occurrences() {
        let rolling = "  timeWindow: [{duration: 28d, isRolling: true}]\n";
        for method in ["Timeslices", "RatioTimeslices"] {
            let text = openslo_with(&format!("  budgetingMethod: {method}\n"), rolling);
            let e = load_spec_slo(&src("o.yaml", &text), Some("checkout-api"), None).unwrap_err();
            assert_eq!((e.len(), e[0].field.as_str(), e[0].line), (1, "spec.budgetingMethod", Some(15)), "{e:?}");
            assert!(e[0].message.starts_with(&format!("{method} is not supported (yet)")), "{e:?}");
            assert!(load_spec_slo(&src("o.yaml", &text), Some("search"), None).is_ok());
        }
        let occurrences = "  budgetingMethod: Occurrences\n";
        for (window, field) in [
            (
                "  timeWindow:\n    - duration: 1M\n      calendar: {startTime: 2022-01-01 12:00:00, timeZone: America/New_York}\n",
                "spec.timeWindow[0].calendar",
            ),
            (
                "  timeWindow:\n    - duration: 1Q\n      isRolling: false\n      calendar: {startTime: 2022-01-01 12:00:00, timeZone: UTC}\n",
                "spec.timeWindow[0].calendar",
            ),
            ("  timeWindow: [{duration: 28d, isRolling: false}]\n", "spec.timeWindow[0].isRolling"),
        ] {
            let text = openslo_with(occurrences, window);
            let e = load_spec_slo(&src("o.yaml", &text), Some("checkout-api"), None).unwrap_err();
            assert_eq!((e.len(), e[0].field.as_str()), (1, field), "{e:?}");
            assert!(
                e[0].message.starts_with("a calendar-aligned time window")
                    && e[0].message.contains("not supported (yet)"),
                "{e:?}"
            );
            assert!(e[0].line.is_some(), "{e:?}");
        }
        // budgetingMethod is required by OpenSLO v1; another value is a mistake.
        let e = load_slo_specs(&src("o.yaml", &openslo_with("", rolling))).unwrap_err();
        assert!(e[0].field == "spec" && e[0].message.contains("needs budgetingMethod"), "{e:?}");
        let e = load_slo_specs(&src("o.yaml", &openslo_with("  budgetingMethod: occurrences\n", rolling))).unwrap_err();
        assert!(e[0].field == "spec.budgetingMethod" && e[0].message.contains("must be Occurrences"), "{e:?}");
        // Several objectives, a threshold metric: refused when selected.
        let two = OPENSLO.replace(
            "objectives: [{displayName: good, target: 0.999}]",
            "objectives: [{target: 0.999}, {target: 0.99}]",
        );
        let e = load_spec_slo(&src("o.yaml", &two), Some("checkout-api"), None).unwrap_err();
        assert!(e[0].field == "spec.objectives" && e[0].message.contains("has 2 objectives"), "{e:?}");
    }

    const SLOTH_RAW_AND_EVENTS: &str = r#"version: prometheus/v1
service: svc
slos:
  - name: ratio
    objective: 99
    sli:
      raw:
        error_ratio_query: 1 - avg_over_time(ok_ratio[{{.window}}])
  - name: plugged
    objective: 99
    sli:
      plugin: {id: sloth-common/availability, options: {job: x}}
  - name: events
    objective: 99.5
    sli:
      events:
        error_query: sum(rate(req_total{code="500"}[{{.window}}]))
        total_query: sum(rate(req_total[{{.window}}]))
"#;

    #[test]
    fn a_raw_or_plugin_slo_only_matters_when_it_is_selected() {
        let f = src("sloth.yaml", SLOTH_RAW_AND_EVENTS);
        let l = load_spec_slo(&f, None, Some("events")).unwrap();
        assert_eq!(l.value.imported.objective_pct, 99.5);
        let e = load_spec_slo(&f, None, Some("ratio")).unwrap_err();
        assert_eq!((e.len(), e[0].field.as_str(), e[0].line), (1, "slos[0].sli.raw", Some(7)), "{e:?}");
        assert!(e[0].message.contains("error-ratio SLI") && e[0].message.contains("sli.events"), "{e:?}");
        let e = load_spec_slo(&f, None, Some("plugged")).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].line), ("slos[1].sli.plugin", Some(12)), "{e:?}");
        // Without a name: the choice is listed, nothing is picked.
        let e = load_spec_slo(&f, None, None).unwrap_err();
        assert!(e[0].message.contains("svc/ratio, svc/plugged, svc/events"), "{e:?}");
        // SLO plugins change what Sloth computes: refused for the SLOs they apply to.
        let chained = SLOTH_RAW_AND_EVENTS.replace(
            "    objective: 99.5\n",
            "    objective: 99.5\n    plugins: {chain: [{id: sloth.dev/contrib/denominator_corrected_rules/v1}]}\n",
        );
        let e = load_spec_slo(&src("sloth.yaml", &chained), None, Some("events")).unwrap_err();
        assert!(e[0].field == "slos[2].plugins.chain" && e[0].message.contains("SLO plugins"), "{e:?}");
        let spec_wide = SLOTH_RAW_AND_EVENTS
            .replace("service: svc\n", "service: svc\nslo_plugins:\n  chain:\n    - id: sloth.dev/core/debug/v1\n");
        let e = load_spec_slo(&src("sloth.yaml", &spec_wide), None, Some("events")).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].line), ("slo_plugins.chain", Some(4)), "{e:?}");
        // Both SLI types at once is a mistake of the file.
        let both = SLOTH_RAW_AND_EVENTS
            .replace("      plugin: {id", "      events: {error_query: x, total_query: y}\n      plugin: {id");
        let e = load_slo_specs(&src("sloth.yaml", &both)).unwrap_err();
        assert!(e[0].field == "slos[1].sli" && e[0].message.contains("exactly one SLI type"), "{e:?}");
    }

    #[test]
    fn duplicate_slo_names_are_refused_with_both_lines() {
        let dup = SLOTH.replace("name: \"login-availability\"", "name: \"requests-availability\"");
        let e = load_slo_specs(&src("sloth.yaml", &dup)).unwrap_err();
        assert_eq!((e.len(), e[0].field.as_str(), e[0].line), (1, "slos[1].name", Some(12)), "{e:?}");
        assert!(
            e[0].message.contains("\"requests-availability\" is already an SLO of service \"checkout-api\" (line 5)"),
            "{e:?}"
        );
        // Across the specs of one file, for the same service.
        let again = format!(
            "{SLOTH}---\nversion: prometheus/v1\nservice: checkout-api\nslos:\n  - name: login-availability\n    objective: 99\n    sli: {{events: {{error_query: 'e[{{{{.window}}}}]', total_query: 't[{{{{.window}}}}]'}}}}\n"
        );
        let e = load_slo_specs(&src("sloth.yaml", &again)).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].line), ("slos[0].name", Some(22)), "{e:?}");
        assert!(e[0].message.contains("(line 12)"), "{e:?}");
        // The same name for another service is another SLO.
        assert!(
            load_slo_specs(&src(
                "sloth.yaml",
                &again
                    .replace("service: checkout-api\nslos:\n  - name: login", "service: login\nslos:\n  - name: login")
            ))
            .is_ok()
        );
        // OpenSLO: names are unique per kind.
        let dup = OPENSLO.replace("metadata: {name: search-availability}", "metadata: {name: checkout-availability}");
        let e = load_slo_specs(&src("o.yaml", &dup)).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].line), ("metadata.name", Some(28)), "{e:?}");
        assert!(e[0].message.contains("kind: SLO document (line 12)"), "{e:?}");
    }

    #[test]
    fn a_freshness_query_is_set_in_the_extension_when_it_cannot_be_derived() {
        let sub = SLOTH.replace(
            "total_query: sum(increase(login_total[{{.window}}]))",
            "total_query: sum_over_time((count(login_up))[{{.window}}:])",
        );
        let f = src("sloth.yaml", &sub);
        let e = load_spec_slo(&f, None, Some("login-availability")).unwrap_err();
        assert_eq!((e.len(), e[0].field.as_str(), e[0].line), (1, "slos[1].sli.events.total_query", Some(17)), "{e:?}");
        assert!(e[0].message.contains("set slos[1].guardrail.freshness_query to PromQL"), "{e:?}");
        assert!(load_spec_slo(&f, None, Some("requests-availability")).is_ok());
        let set = sub.replace(
            "    objective: 99.5\n",
            "    objective: 99.5\n    guardrail: {freshness_query: max(timestamp(login_up))}\n",
        );
        let l = load_spec_slo(&src("sloth.yaml", &set), None, Some("login-availability")).unwrap();
        assert_eq!(l.value.prometheus.freshness_query.as_deref(), Some("max(timestamp(login_up))"));
        // Derived when it can be: nothing set.
        let l = load_spec_slo(&f, None, Some("requests-availability")).unwrap();
        assert_eq!(l.value.prometheus.freshness_query, None);
        let e = load_slo_specs(&src(
            "sloth.yaml",
            &set.replace("freshness_query: max(timestamp(login_up))", "freshness_query: ''"),
        ))
        .unwrap_err();
        assert!(e[0].field == "slos[1].guardrail.freshness_query" && e[0].message == "is empty", "{e:?}");
        // OpenSLO: the annotation.
        let sub = OPENSLO
            .replace("'sum(increase(search_total[{{.window}}]))'", "'sum_over_time((count(search_up))[{{.window}}:])'");
        let e = load_spec_slo(&src("o.yaml", &sub), Some("search"), None).unwrap_err();
        assert_eq!(
            (e[0].field.as_str(), e[0].line),
            ("spec.ratioMetric.total.metricSource.spec.query", Some(8)),
            "{e:?}"
        );
        assert!(e[0].message.contains("guardrail.dev/freshness_query"), "{e:?}");
        let set = sub.replace(
            "metadata: {name: search-availability}",
            "metadata:\n  name: search-availability\n  annotations: {guardrail.dev/freshness_query: 'max(timestamp(search_up))'}",
        );
        let l = load_spec_slo(&src("o.yaml", &set), Some("search"), None).unwrap();
        assert_eq!(l.value.prometheus.freshness_query.as_deref(), Some("max(timestamp(search_up))"));
    }

    #[test]
    fn other_slo_formats_are_named_not_read_as_slos_yaml() {
        let refused = |text: &str| classify_slo_file(&src("x.yaml", text)).unwrap_err();
        let e = refused(
            "# comment\napiVersion: sloth.slok.dev/v1\nkind: PrometheusServiceLevel\nspec:\n  service: a\n  slos: []\n",
        );
        assert_eq!((e.field.as_str(), e.line, e.col), ("apiVersion", Some(2), Some(1)));
        assert!(
            e.message
                .contains("PrometheusServiceLevel is Sloth's Kubernetes resource, which Guardrail does not read (yet)"),
            "{e}"
        );
        let e = refused("apiVersion: sloth.slok.dev/v1\nkind: AlertWindows\nspec: {sloPeriod: 7d}\n");
        assert!(e.message.contains("AlertWindows is a Sloth Kubernetes resource, not an SLO spec"), "{e}");
        let e = refused("apiVersion: pyrra.dev/v1alpha1\nkind: ServiceLevelObjective\nspec: {target: '99'}\n");
        assert!(e.message.contains("is a Pyrra SLO, which Guardrail does not read (yet)"), "{e}");
        let e = refused("apiVersion: n9/v1alpha\nkind: SLO\n");
        assert!(e.message.contains("Nobl9"), "{e}");
        let e = refused("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n");
        assert!(e.message.contains("Prometheus Operator"), "{e}");
        let e = refused("apiVersion: openslo.com/v2alpha\nkind: SLO\n");
        assert!(e.message.contains("\"openslo.com/v2alpha\" is not a supported SLO spec version"), "{e}");
        let e = refused("---\napiVersion: v1\nkind: ConfigMap\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("kind: ConfigMap is not an SLO file format Guardrail reads"), "{e}");
        let e = refused("{\n  \"displayName\": \"99% good\",\n  \"serviceLevelIndicator\": {},\n  \"goal\": 0.99\n}\n");
        assert_eq!((e.field.as_str(), e.line), ("serviceLevelIndicator", Some(3)));
        assert!(e.message.contains("Google Cloud Monitoring SLO"), "{e}");
        // Guardrail's slos.yaml, even with an extra kind: key, is still slos.yaml.
        assert_eq!(classify_slo_file(&src("s.yaml", "kind: x\napiVersion: y\nslos: {}\n")).unwrap(), None);
        assert_eq!(classify_slo_file(&src("s.yaml", "")).unwrap(), None);
    }

    #[test]
    fn positions_of_later_documents_and_their_syntax_errors_are_the_files() {
        let text = format!("{OPENSLO}---\napiVersion: openslo/v1\nkind: SLO\nmetadata: {{name: [unclosed\n");
        let e = load_slo_specs(&src("o.yaml", &text)).unwrap_err();
        assert!(e[0].line.is_some_and(|l| l >= 37), "{e:?}");
        let text = format!("{OPENSLO}---\napiVersion: openslo/v1alpha\nkind: Service\nmetadata: {{name: x}}\n");
        let e = load_slo_specs(&src("o.yaml", &text)).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].line), ("apiVersion", Some(35)), "{e:?}");
    }

    #[test]
    fn sloth_window_placeholders_with_spaces_are_the_same_placeholder() {
        assert_eq!(
            normalise_window("a[{{ .window }}] b[{{.window  }}] c[{{   .window}}]"),
            "a[{{.window}}] b[{{.window}}] c[{{.window}}]"
        );
        assert_eq!(
            normalise_window("{{ .Window }} {{ .windows }} {{.window} {{"),
            "{{ .Window }} {{ .windows }} {{.window} {{"
        );
        let spaced = SLOTH.replace("[{{.window}}]", "[{{ .window }}]");
        let l = load_slo_specs(&src("sloth.yaml", &spaced)).unwrap();
        assert_eq!(l.value[1].total_query, "sum(increase(login_total[{{.window}}]))");
    }
}
