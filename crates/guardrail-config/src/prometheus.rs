//! The optional `prometheus:` block of `slos.yaml` → [`PrometheusSpec`].
//!
//! ```yaml
//! prometheus:
//!   url: http://127.0.0.1:9090        # optional: --prometheus / GUARDRAIL_PROMETHEUS_URL win;
//!                                     # http:// or https://
//!   ca_file: certs/internal-ca.pem    # optional: PEM CA(s) to trust for https, besides the
//!                                     # built-in roots; relative to this file's directory;
//!                                     # --prometheus-ca / GUARDRAIL_PROMETHEUS_CA win
//!   service: checkout-api
//!   error_query: sum(increase(http_requests_total{job="checkout",code=~"5.."}[{{.window}}])) or vector(0)
//!   total_query: sum(increase(http_requests_total{job="checkout"}[{{.window}}]))
//!   latency:
//!     histogram: http_request_duration_seconds_bucket{job="checkout"}   # or query: with {{.quantile}}
//!     window: 1h                      # default 1h
//!     unit: seconds                   # seconds (default) or milliseconds
//!   freshness_query: max(timestamp(up{job="checkout"}))   # optional, derived from total_query
//!   period: 30d                       # default 30d
//!   max_sample_age: 5m                # default 5m
//!   timeout_ms: 2000                  # per request, default 2000
//!   retries: 2                        # default 2
//!   min_events: 100                   # or {default: 100, 5m: 20}
//!   tiers:                            # default: the SRE Workbook's four
//!     - {name: page_fast, long: 1h, short: 5m, factor: 14.4, label: critical}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use guardrail_core::burn::{BurnConfig, LatencySource, PrometheusSpec, Tier, Window};
use guardrail_core::slo::BurnLabel;

use crate::common::{
    Diags, Format, Loaded, Unknown, check_keys, count, get, mapping, number, parse_as, required, string,
};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::{Node, NodeValue};

/// Placeholder for the window in `error_query` / `total_query` (Sloth's spelling).
pub const WINDOW_PLACEHOLDER: &str = "{{.window}}";
/// Placeholder for the quantile in `latency.query`.
pub const QUANTILE_PLACEHOLDER: &str = "{{.quantile}}";
/// Longest per-request Prometheus timeout a `prometheus:` block, an SLO spec's `timeout_ms` or
/// the gate's `--prometheus-timeout-ms` may ask for, ms.
pub const MAX_PROMETHEUS_TIMEOUT_MS: u64 = 60_000;
/// Most retries of a failed Prometheus request a `prometheus:` block or an SLO spec may ask for.
pub const MAX_PROMETHEUS_RETRIES: u32 = 5;

const KEYS: &[&str] = &[
    "url",
    "ca_file",
    "service",
    "error_query",
    "total_query",
    "latency",
    "freshness_query",
    "period",
    "max_sample_age",
    "timeout_ms",
    "retries",
    "min_events",
    "tiers",
];

/// Reads the `prometheus:` block of an SLO file, if it has one. Errors are positioned like the
/// rest of the file's; the block is checked for consistency ([`BurnConfig::validate`]).
pub fn load_prometheus(src: &Source) -> Result<Option<Loaded<PrometheusSpec>>, Vec<ConfigError>> {
    let root = parse_as(src, Format::Yaml)?;
    let mut d = Diags::new(src, SourceMap::from_node(&root));
    let Some(top) = root.as_map() else { return Ok(None) };
    let Some(node) = get(top, "prometheus") else { return Ok(None) };
    let spec = read(&mut d, node);
    if let Some(spec) = &spec
        && !d.has_errors()
        && let Err(e) = spec.burn.validate()
    {
        d.error(e.field, e.reason);
    }
    d.finish(spec).map(Some)
}

fn window(d: &mut Diags, path: &str, node: &Node) -> Option<Window> {
    let text = match &node.value {
        NodeValue::Str(s) => s.clone(),
        NodeValue::Int(i) if *i > 0 => i.to_string(),
        _ => {
            d.error(path, format!("must be a duration like 5m, 1h or 30d, got {}", node.describe()));
            return None;
        }
    };
    match Window::parse(&text) {
        Ok(w) => Some(w),
        Err(e) => {
            d.error(path, e.to_string());
            None
        }
    }
}

fn query(d: &mut Diags, path: &str, node: &Node, placeholder: &str) -> Option<String> {
    let q = string(d, path, node)?;
    if q.trim().is_empty() {
        d.error(path, "is empty");
        return None;
    }
    if !placeholder.is_empty() && !q.contains(placeholder) {
        d.error(path, format!("must contain {placeholder}, where Guardrail puts each window (e.g. [{placeholder}])"));
        return None;
    }
    Some(q)
}

fn label(d: &mut Diags, path: &str, node: &Node) -> Option<BurnLabel> {
    let s = string(d, path, node)?;
    match BurnLabel::ALL.iter().find(|l| l.as_str() == s) {
        Some(l) => Some(*l),
        None => {
            d.error(path, format!("must be one of low, medium, high, critical, got {s:?}"));
            None
        }
    }
}

fn read(d: &mut Diags, node: &Node) -> Option<PrometheusSpec> {
    let p = "prometheus";
    let m = mapping(d, p, node)?;
    check_keys(d, p, m, KEYS, Unknown::Error, |_| false);
    let f = |k: &str| format!("{p}.{k}");

    let url = match get(m, "url") {
        None => Some(None),
        Some(n) => string(d, &f("url"), n).and_then(|u| match check_url(&u) {
            Ok(()) => Some(Some(u)),
            Err(e) => {
                d.error(f("url"), e.to_string());
                None
            }
        }),
    };
    let ca_file = match get(m, "ca_file") {
        None => Some(None),
        Some(n) => ca_file(d, &f("ca_file"), n).map(Some),
    };
    let service = match get(m, "service") {
        None => Some("unknown".to_string()),
        Some(n) => string(d, &f("service"), n),
    };
    let error_query = required(d, p, m, "error_query", "PromQL for failed events over {{.window}}")
        .and_then(|n| query(d, &f("error_query"), n, WINDOW_PLACEHOLDER));
    let total_query = required(d, p, m, "total_query", "PromQL for all events over {{.window}}")
        .and_then(|n| query(d, &f("total_query"), n, WINDOW_PLACEHOLDER));
    let freshness_query = match get(m, "freshness_query") {
        None => Some(None),
        Some(n) => query(d, &f("freshness_query"), n, "").map(Some),
    };

    let mut latency = None;
    let mut latency_window = Some(Window(3600));
    let mut latency_to_ms = Some(1000.0);
    if let Some(lat) = required(d, p, m, "latency", "a histogram selector or query for p95/p99")
        .and_then(|n| mapping(d, &f("latency"), n))
    {
        let lp = f("latency");
        check_keys(d, &lp, lat, &["histogram", "query", "window", "unit"], Unknown::Error, |_| false);
        latency = match (get(lat, "histogram"), get(lat, "query")) {
            (Some(h), None) => query(d, &format!("{lp}.histogram"), h, "").map(LatencySource::Histogram),
            (None, Some(q)) => query(d, &format!("{lp}.query"), q, QUANTILE_PLACEHOLDER).map(LatencySource::Query),
            (Some(_), Some(_)) => {
                d.error(lp.clone(), "give either histogram or query, not both");
                None
            }
            (None, None) => {
                d.error(lp.clone(), "needs histogram (a _bucket selector) or query (with {{.quantile}})");
                None
            }
        };
        if let Some(n) = get(lat, "window") {
            latency_window = window(d, &format!("{lp}.window"), n);
        }
        if let Some(n) = get(lat, "unit") {
            latency_to_ms = match string(d, &format!("{lp}.unit"), n).as_deref() {
                Some("seconds" | "s") => Some(1000.0),
                Some("milliseconds" | "ms") => Some(1.0),
                Some(other) => {
                    d.error(format!("{lp}.unit"), format!("must be seconds or milliseconds, got {other:?}"));
                    None
                }
                None => None,
            };
        }
    }

    let mut burn = BurnConfig::default();
    let mut ok = true;
    if let Some(n) = get(m, "period") {
        match window(d, &f("period"), n) {
            Some(w) => burn.period = w,
            None => ok = false,
        }
    }
    if let Some(n) = get(m, "max_sample_age") {
        match window(d, &f("max_sample_age"), n) {
            Some(w) => burn.max_sample_age = w,
            None => ok = false,
        }
    }
    let timeout_ms = match get(m, "timeout_ms") {
        None => Some(2000),
        Some(n) => count(d, &f("timeout_ms"), n).and_then(|v| {
            if (1..=MAX_PROMETHEUS_TIMEOUT_MS).contains(&v) {
                Some(v)
            } else {
                d.error(
                    f("timeout_ms"),
                    format!("must be between 1 and {MAX_PROMETHEUS_TIMEOUT_MS} milliseconds, got {v}"),
                );
                None
            }
        }),
    };
    let retries = match get(m, "retries") {
        None => Some(2),
        Some(n) => count(d, &f("retries"), n).and_then(|v| {
            if v <= u64::from(MAX_PROMETHEUS_RETRIES) {
                Some(v as u32)
            } else {
                d.error(f("retries"), format!("must be at most {MAX_PROMETHEUS_RETRIES}, got {v}"));
                None
            }
        }),
    };
    if let Some(n) = get(m, "min_events") {
        ok &= read_min_events(d, n, &mut burn);
    }
    if let Some(n) = get(m, "tiers") {
        match read_tiers(d, n) {
            Some(t) => burn.tiers = t,
            None => ok = false,
        }
    }

    Some(PrometheusSpec {
        url: url?,
        service: service?,
        error_query: error_query?,
        total_query: total_query?,
        latency: Some(latency?),
        latency_window: latency_window?,
        latency_to_ms: latency_to_ms?,
        freshness_query: freshness_query?,
        timeout_ms: timeout_ms?,
        retries: retries?,
        ca_file: ca_file?,
        burn: if ok { burn } else { return None },
    })
}

/// A Prometheus (or webhook) base URL [`check_url`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Neither `http://` nor `https://`.
    #[error("{url:?} must start with http:// or https://")]
    Scheme {
        /// The URL as given.
        url: String,
    },
    /// Nothing (or a path) after the scheme.
    #[error("{url:?} has no host")]
    NoHost {
        /// The URL as given.
        url: String,
    },
}

/// A Prometheus base URL must be `http://` or `https://` (rustls; an internal CA through
/// `ca_file` / `--prometheus-ca`) and name a host.
pub fn check_url(url: &str) -> Result<(), UrlError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| UrlError::Scheme { url: url.to_string() })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(UrlError::NoHost { url: url.to_string() });
    }
    Ok(())
}

/// Reads a `ca_file` field (the `prometheus:` block's, or an SLO spec extension's): a path,
/// relative to the directory of the file being read, to a readable PEM file of CA
/// certificates ([`check_ca_file`]). Errors are the field's.
pub(crate) fn ca_file(d: &mut Diags, path: &str, node: &Node) -> Option<PathBuf> {
    let text = string(d, path, node)?;
    ca_file_text(d, path, &text)
}

/// [`ca_file`] for a value already read as text.
pub(crate) fn ca_file_text(d: &mut Diags, path: &str, text: &str) -> Option<PathBuf> {
    if text.trim().is_empty() {
        d.error(path, "is empty: give the path of a PEM file of CA certificates");
        return None;
    }
    let file = match d.file.parent() {
        Some(dir) => dir.join(text.trim()),
        None => PathBuf::from(text.trim()),
    };
    match check_ca_file(&file) {
        Ok(()) => Some(file),
        Err(e) => {
            d.error(path, e.to_string());
            None
        }
    }
}

/// A CA file [`check_ca_file`] refuses; the message names the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaFileError {
    /// Cannot be read (missing, a directory, no permission).
    #[error("{}: cannot be read: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// Not UTF-8 text (e.g. a DER certificate).
    #[error("{}: not a PEM file (not text; a DER certificate must be converted to PEM)", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// Text, but not PEM certificates.
    #[error("{}: {problem}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with its PEM.
        #[source]
        problem: PemError,
    },
}

/// What is wrong with PEM text meant to hold CA certificates ([`check_ca_pem`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// A block of another kind, e.g. a private key.
    #[error("line {line}: a {label} block; a CA file holds only CERTIFICATE blocks")]
    NotACertificate {
        /// 1-based line of its BEGIN.
        line: usize,
        /// Its label.
        label: String,
    },
    /// `END X` after `BEGIN Y`.
    #[error("line {line}: END {end} closes BEGIN {begin}")]
    Mismatched {
        /// 1-based line of the END.
        line: usize,
        /// The END's label.
        end: String,
        /// The BEGIN's label.
        begin: String,
    },
    /// A block whose body is not base64.
    #[error("line {line}: the certificate before this line is not valid base64")]
    NotBase64 {
        /// 1-based line of the END.
        line: usize,
    },
    /// A BEGIN without END.
    #[error("a BEGIN {label} block is never closed")]
    Unclosed {
        /// Its label.
        label: String,
    },
    /// No certificate at all.
    #[error("not a PEM file: no -----BEGIN CERTIFICATE----- block")]
    NoCertificate,
}

/// Checks that `path` is a readable PEM file holding at least one `CERTIFICATE` block with a
/// base64 body, and nothing but certificates (a private key is refused: the file is for trust
/// only). The message names the path; what a TLS library makes of the certificates is checked
/// again when the client is built.
pub fn check_ca_file(path: &Path) -> Result<(), CaFileError> {
    let bytes =
        std::fs::read(path).map_err(|e| CaFileError::Unreadable { path: path.to_path_buf(), reason: e.to_string() })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| CaFileError::NotText { path: path.to_path_buf() })?;
    check_ca_pem(text).map(|_| ()).map_err(|problem| CaFileError::Pem { path: path.to_path_buf(), problem })
}

/// Counts the `CERTIFICATE` blocks of PEM text; an error for text with none, an unterminated
/// or malformed block, or a block of another kind (e.g. a private key).
pub fn check_ca_pem(text: &str) -> Result<usize, PemError> {
    let mut certs = 0;
    let mut open: Option<(String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let n = i + 1;
        match &mut open {
            None => {
                if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
                    if label != "CERTIFICATE" {
                        return Err(PemError::NotACertificate { line: n, label: label.to_string() });
                    }
                    open = Some((label.to_string(), String::new()));
                }
            }
            Some((label, body)) => {
                if let Some(end) = line.strip_prefix("-----END ").and_then(|l| l.strip_suffix("-----")) {
                    if end != label {
                        return Err(PemError::Mismatched { line: n, end: end.to_string(), begin: label.clone() });
                    }
                    let ok = !body.is_empty()
                        && body.len() % 4 == 0
                        && body
                            .trim_end_matches('=')
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
                    if !ok {
                        return Err(PemError::NotBase64 { line: n });
                    }
                    certs += 1;
                    open = None;
                } else {
                    body.push_str(line);
                }
            }
        }
    }
    match (open, certs) {
        (Some((label, _)), _) => Err(PemError::Unclosed { label }),
        (None, 0) => Err(PemError::NoCertificate),
        (None, n) => Ok(n),
    }
}

fn read_min_events(d: &mut Diags, node: &Node, burn: &mut BurnConfig) -> bool {
    let p = "prometheus.min_events";
    if let NodeValue::Map(entries) = &node.value {
        let mut by = BTreeMap::new();
        let mut ok = true;
        for (k, v) in entries {
            let path = format!("{p}.{k}");
            let Some(n) = count(d, &path, v) else {
                ok = false;
                continue;
            };
            if k == "default" {
                burn.min_events = n;
                continue;
            }
            match Window::parse(k) {
                Ok(w) => {
                    by.insert(w, n);
                }
                Err(e) => {
                    d.error(path, format!("keys are windows (5m, 1h…) or default: {e}"));
                    ok = false;
                }
            }
        }
        burn.min_events_by_window = by;
        ok
    } else {
        match count(d, p, node) {
            Some(n) => {
                burn.min_events = n;
                true
            }
            None => false,
        }
    }
}

fn read_tiers(d: &mut Diags, node: &Node) -> Option<Vec<Tier>> {
    let p = "prometheus.tiers";
    let Some(items) = node.as_seq() else {
        d.error(p, format!("must be a list of tiers, got {}", node.describe()));
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let Some(m) = mapping(d, &ip, item) else {
            ok = false;
            continue;
        };
        check_keys(d, &ip, m, &["name", "long", "short", "factor", "label"], Unknown::Error, |_| false);
        let name = required(d, &ip, m, "name", "").and_then(|n| string(d, &format!("{ip}.name"), n));
        let long = required(d, &ip, m, "long", "the long window").and_then(|n| window(d, &format!("{ip}.long"), n));
        let short = required(d, &ip, m, "short", "the short window").and_then(|n| window(d, &format!("{ip}.short"), n));
        let factor = required(d, &ip, m, "factor", "the burn-rate factor both windows must exceed")
            .and_then(|n| number(d, &format!("{ip}.factor"), n));
        let lab = required(d, &ip, m, "label", "low, medium, high or critical")
            .and_then(|n| label(d, &format!("{ip}.label"), n));
        match (name, long, short, factor, lab) {
            (Some(name), Some(long), Some(short), Some(factor), Some(label)) => {
                out.push(Tier { name, long, short, factor: factor.value, label })
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source { path: "slos.yaml".into(), text: text.into(), sha256: String::new() }
    }

    const BASE: &str = "slos:\n  availability: {target: 99.9}\n  latency: {p95_threshold_ms: 500}\n";

    #[test]
    fn absent_block_is_none() {
        assert!(load_prometheus(&src(BASE)).unwrap().is_none());
    }

    #[test]
    fn full_block_reads_with_defaults() {
        let text = format!(
            "{BASE}prometheus:\n  url: http://127.0.0.1:9090\n  service: checkout\n  error_query: 'sum(increase(e[{{{{.window}}}}]))'\n  total_query: 'sum(increase(t[{{{{.window}}}}]))'\n  latency:\n    histogram: 'h_bucket{{job=\"x\"}}'\n  min_events: {{default: 50, 5m: 10}}\n"
        );
        let spec = load_prometheus(&src(&text)).unwrap().unwrap().value;
        assert_eq!(spec.url.as_deref(), Some("http://127.0.0.1:9090"));
        assert_eq!(spec.burn.min_events, 50);
        assert_eq!(spec.burn.min_events_for(Window(300)), 10);
        assert_eq!(spec.burn.tiers.len(), 4);
        assert_eq!(spec.latency_window, Window(3600));
        assert_eq!(spec.latency_to_ms, 1000.0);
        assert_eq!(spec.timeout_ms, 2000);
    }

    #[test]
    fn the_readme_example_reads() {
        // README.md, "SLOs from Prometheus": plain YAML scalars holding PromQL.
        let readme = include_str!("../../../README.md");
        let start = readme.find("```yaml\nslos:\n  availability: {target: 99.9}\n  latency: {p95_threshold_ms: 500, p99_threshold_ms: 1000}\nprometheus:").expect("README example");
        let body = &readme[start + 8..];
        let text = &body[..body.find("```").unwrap()];
        let spec = load_prometheus(&src(text)).unwrap_or_else(|e| panic!("{e:?}")).unwrap().value;
        assert_eq!(spec.url.as_deref(), Some("http://prometheus.internal:9090"));
        assert!(spec.error_query.ends_with("[{{.window}}])) or vector(0)"), "{}", spec.error_query);
        assert_eq!(
            spec.latency,
            Some(LatencySource::Histogram("http_request_duration_seconds_bucket{job=\"checkout\"}".into()))
        );
        assert_eq!(spec.burn.min_events, 100);
        assert!(crate::load_slos(&src(text)).is_ok());
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn an_https_url_and_a_ca_file_relative_to_the_slo_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("certs/ca.pem"), PEM).unwrap();
        let text = format!(
            "{BASE}prometheus:\n  url: https://prom.internal:9090\n  ca_file: certs/ca.pem\n  error_query: 'sum(increase(e[{{{{.window}}}}]))'\n  total_query: 'sum(increase(t[{{{{.window}}}}]))'\n  latency: {{histogram: h_bucket}}\n"
        );
        let src = Source { path: dir.path().join("slos.yaml"), text, sha256: String::new() };
        let spec = load_prometheus(&src).unwrap().unwrap().value;
        assert_eq!(spec.url.as_deref(), Some("https://prom.internal:9090"));
        assert_eq!(spec.ca_file, Some(dir.path().join("certs/ca.pem")));
    }

    #[test]
    fn a_missing_or_non_pem_ca_file_is_an_error_at_the_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "hello\n").unwrap();
        for (file, needle) in [
            ("missing.pem", "cannot be read"),
            ("notes.txt", "not a PEM file"),
            ("key.pem", "PRIVATE KEY block"),
            ("''", "is empty"),
        ] {
            let text = format!(
                "{BASE}prometheus:\n  ca_file: {file}\n  error_query: 'sum(increase(e[{{{{.window}}}}]))'\n  total_query: 'sum(increase(t[{{{{.window}}}}]))'\n  latency: {{histogram: h_bucket}}\n"
            );
            let src = Source { path: dir.path().join("slos.yaml"), text, sha256: String::new() };
            let errs = load_prometheus(&src).unwrap_err();
            let joined = errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
            assert!(joined.contains("slos.yaml:5:3: prometheus.ca_file"), "{file}: {joined}");
            assert!(joined.contains(needle), "{file}: {joined}");
        }
    }

    #[test]
    fn pem_checks() {
        assert_eq!(check_ca_pem(&format!("{PEM}{PEM}")), Ok(2));
        let e = check_ca_pem("-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap_err();
        assert_eq!(e, PemError::Unclosed { label: "CERTIFICATE".into() });
        assert_eq!(e.to_string(), "a BEGIN CERTIFICATE block is never closed");
        let e = check_ca_pem("-----BEGIN CERTIFICATE-----\nM!IB\n-----END CERTIFICATE-----\n").unwrap_err();
        assert_eq!(e, PemError::NotBase64 { line: 3 });
        assert!(e.to_string().contains("base64"));
        assert_eq!(check_ca_pem(""), Err(PemError::NoCertificate));
        assert!(PemError::NoCertificate.to_string().contains("no -----BEGIN CERTIFICATE-----"));
        let e = check_ca_pem("-----BEGIN PRIVATE KEY-----\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1: a PRIVATE KEY block; a CA file holds only CERTIFICATE blocks");
    }

    #[test]
    fn errors_are_positioned() {
        let text = format!(
            "{BASE}prometheus:\n  url: ftp://prom\n  error_query: 'sum(e)'\n  total_query: 'sum(increase(t[{{{{.window}}}}]))'\n  latency: {{histogram: h_bucket}}\n  tiers:\n    - {{name: a, long: 5m, short: 1h, factor: 2, label: severe}}\n"
        );
        let errs = load_prometheus(&src(&text)).unwrap_err();
        let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let joined = all.join("\n");
        assert!(joined.contains("slos.yaml:5:3: prometheus.url"), "{joined}");
        assert!(joined.contains("must start with http:// or https://"), "{joined}");
        assert!(joined.contains("prometheus.error_query: must contain {{.window}}"), "{joined}");
        assert!(joined.contains("prometheus.tiers[0].label"), "{joined}");
    }
}
