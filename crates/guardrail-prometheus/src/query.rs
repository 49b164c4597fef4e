//! PromQL building and response parsing: pure functions, no I/O.
//!
//! Every window and both counters go into **one** instant query: each instance of the user's
//! query is tagged with a `guardrail_series` label (`errors@5m`, `total@1h`, …) by
//! `label_replace`, and the instances are joined with `or`. p95 and p99 are a second query
//! the same way, and the freshness check a third: three queries per decision, whatever the
//! number of windows.

use std::collections::BTreeMap;

use guardrail_core::burn::{LatencySource, PrometheusSpec, Window};

/// Label Guardrail adds to tell the batched series apart.
pub const SERIES_LABEL: &str = "guardrail_series";

/// `{{.window}}` as Sloth spells it.
pub const WINDOW: &str = "{{.window}}";
/// `{{.quantile}}`.
pub const QUANTILE: &str = "{{.quantile}}";

fn tag(expr: &str, value: &str) -> String {
    format!("label_replace(({expr}), \"{SERIES_LABEL}\", \"{value}\", \"\", \"\")")
}

/// The counts query: errors and totals over every window and the period, in one expression.
pub fn counts_query(spec: &PrometheusSpec) -> String {
    let mut parts = Vec::new();
    for w in spec.burn.ranges() {
        let ws = w.to_string();
        parts.push(tag(&spec.error_query.replace(WINDOW, &ws), &format!("errors@{ws}")));
        parts.push(tag(&spec.total_query.replace(WINDOW, &ws), &format!("total@{ws}")));
    }
    parts.join(" or ")
}

/// The latency query: p95 and p99 in one expression (`None` when the spec has no latency
/// source).
pub fn latency_query(spec: &PrometheusSpec) -> Option<String> {
    let latency = spec.latency.as_ref()?;
    let w = spec.latency_window.to_string();
    let one = |q: &str| match latency {
        LatencySource::Histogram(sel) => {
            format!("histogram_quantile({q}, sum by (le) (rate({sel}[{w}])))")
        }
        LatencySource::Query(t) => t.replace(QUANTILE, q).replace(WINDOW, &w),
    };
    Some(format!("{} or {}", tag(&one("0.95"), "p95"), tag(&one("0.99"), "p99")))
}

/// A spec without a freshness query whose total query names no series selector to derive one
/// from ([`freshness_query`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "prometheus.freshness_query: cannot find the series selector in total_query ({total_query:?}) to check the \
     age of its newest sample; set freshness_query (PromQL returning a Unix time)"
)]
pub struct NoFreshnessSelector {
    /// The total query.
    pub total_query: String,
}

/// The freshness query: the configured one, or `max(timestamp(SELECTOR))` with the selector
/// the total query applies its window to.
pub fn freshness_query(spec: &PrometheusSpec) -> Result<String, NoFreshnessSelector> {
    if let Some(q) = &spec.freshness_query {
        return Ok(q.clone());
    }
    match selector_before_window(&spec.total_query) {
        Some(sel) => Ok(format!("max(timestamp({sel}))")),
        None => Err(NoFreshnessSelector { total_query: spec.total_query.clone() }),
    }
}

/// The vector selector written just before the first `[{{.window}}]` of a query (in the core:
/// the Sloth/OpenSLO loader checks at load time that it can be derived).
pub use guardrail_core::burn::selector_before_window;

/// One sample of an instant-vector result: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value (`NaN`, `+Inf` as Prometheus writes them).
    pub value: f64,
}

/// Why a `/api/v1/query` response body holds no samples ([`parse_vector`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Not JSON.
    #[error("the response is not JSON ({reason}): {excerpt}")]
    NotJson {
        /// serde_json's reason.
        reason: String,
        /// The body's first 120 characters.
        excerpt: String,
    },
    /// Prometheus's own error (`status` other than `success`).
    #[error("Prometheus answered {kind}: {message}")]
    Prometheus {
        /// Its `errorType`.
        kind: String,
        /// Its `error`.
        message: String,
    },
    /// No `data`.
    #[error("the response has no data")]
    NoData,
    /// A result other than an instant vector.
    #[error("expected an instant vector, got a {result_type:?} result")]
    NotAVector {
        /// Its `resultType`.
        result_type: String,
    },
    /// No `result` list.
    #[error("the response has no result list")]
    NoResult,
    /// A sample without `[time, value]`.
    #[error("a sample has no [time, value] pair")]
    NoValue,
    /// A sample value that is not a number.
    #[error("a sample value {text:?} is not a number")]
    NotANumber {
        /// The value as sent.
        text: String,
    },
}

/// Parses a `/api/v1/query` response body. `Err` carries Prometheus's own error or the shape
/// problem.
pub fn parse_vector(body: &str) -> Result<Vec<Sample>, ResponseError> {
    let v: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| ResponseError::NotJson { reason: e.to_string(), excerpt: excerpt(body) })?;
    let status = v.get("status").and_then(|s| s.as_str()).unwrap_or("");
    if status != "success" {
        let kind = v.get("errorType").and_then(|s| s.as_str()).unwrap_or("error");
        let msg = v.get("error").and_then(|s| s.as_str()).unwrap_or("no error message");
        return Err(ResponseError::Prometheus { kind: kind.to_string(), message: msg.to_string() });
    }
    let data = v.get("data").ok_or(ResponseError::NoData)?;
    let rtype = data.get("resultType").and_then(|s| s.as_str()).unwrap_or("");
    if rtype != "vector" {
        return Err(ResponseError::NotAVector { result_type: rtype.to_string() });
    }
    let result = data.get("result").and_then(|r| r.as_array()).ok_or(ResponseError::NoResult)?;
    let mut out = Vec::with_capacity(result.len());
    for item in result {
        let labels = item
            .get("metric")
            .and_then(|m| m.as_object())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
            .unwrap_or_default();
        let text = item
            .get("value")
            .and_then(|p| p.as_array())
            .and_then(|p| p.get(1))
            .and_then(|s| s.as_str())
            .ok_or(ResponseError::NoValue)?;
        let value = parse_value(text).ok_or_else(|| ResponseError::NotANumber { text: text.to_string() })?;
        out.push(Sample { labels, value });
    }
    Ok(out)
}

/// Prometheus's float text: `1.5`, `NaN`, `+Inf`, `-Inf`.
pub fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

fn excerpt(body: &str) -> String {
    let t: String = body.chars().take(120).collect();
    if body.chars().count() > 120 { format!("{t}…") } else { t }
}

/// Groups samples by their `guardrail_series` tag. A tag seen more than once means the user's
/// query returned several series (it needs an aggregation such as `sum`).
pub fn by_series(samples: &[Sample]) -> (BTreeMap<String, f64>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for s in samples {
        let Some(tag) = s.labels.get(SERIES_LABEL) else {
            problems.push("a result has no guardrail_series label".into());
            continue;
        };
        *seen.entry(tag.clone()).or_default() += 1;
        out.insert(tag.clone(), s.value);
    }
    for (tag, n) in seen {
        if n > 1 {
            out.remove(&tag);
            problems.push(format!("{tag}: the query returned {n} series, not one; aggregate it (e.g. sum(…))"));
        }
    }
    (out, problems)
}

/// Like [`by_series`], but samples without the tag (a plain query such as the freshness one)
/// are kept under `#0`, `#1`, … without a duplicate check.
pub fn by_series_or_plain(samples: &[Sample]) -> (BTreeMap<String, f64>, Vec<String>) {
    let (tagged, plain): (Vec<Sample>, Vec<Sample>) =
        samples.iter().cloned().partition(|s| s.labels.contains_key(SERIES_LABEL));
    let (mut out, problems) = by_series(&tagged);
    for (i, s) in plain.iter().enumerate() {
        out.insert(format!("#{i}"), s.value);
    }
    (out, problems)
}

/// The tag of a window's counter: `errors@5m`.
pub fn counts_tag(kind: &str, w: Window) -> String {
    format!("{kind}@{w}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardrail_core::burn::BurnConfig;

    fn spec() -> PrometheusSpec {
        PrometheusSpec {
            url: None,
            service: "api".into(),
            error_query: "sum(increase(http_requests_total{job=\"api\",code=~\"5..\"}[{{.window}}])) or vector(0)"
                .into(),
            total_query: "sum(increase(http_requests_total{job=\"api\"}[{{.window}}]))".into(),
            latency: Some(LatencySource::Histogram("http_request_duration_seconds_bucket{job=\"api\"}".into())),
            latency_window: Window(3600),
            latency_to_ms: 1000.0,
            freshness_query: None,
            timeout_ms: 1000,
            ca_file: None,
            retries: 0,
            burn: BurnConfig::default(),
        }
    }

    #[test]
    fn one_counts_query_holds_every_window_and_both_counters() {
        let q = counts_query(&spec());
        assert_eq!(q.matches(" or label_replace(").count(), 15, "{q}");
        for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"] {
            assert!(q.contains(&format!("\"errors@{w}\"")), "{w}");
            assert!(q.contains(&format!("\"total@{w}\"")), "{w}");
            assert!(q.contains(&format!("[{w}]")), "{w}");
        }
        assert!(!q.contains(WINDOW));
        assert!(q.starts_with(
            "label_replace((sum(increase(http_requests_total{job=\"api\",code=~\"5..\"}[5m])) or vector(0)), \"guardrail_series\", \"errors@5m\", \"\", \"\")"
        ));
    }

    #[test]
    fn latency_and_freshness_queries() {
        let q = latency_query(&spec()).unwrap();
        assert_eq!(
            q,
            "label_replace((histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job=\"api\"}[1h])))), \"guardrail_series\", \"p95\", \"\", \"\") or label_replace((histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{job=\"api\"}[1h])))), \"guardrail_series\", \"p99\", \"\", \"\")"
        );
        assert_eq!(freshness_query(&spec()).unwrap(), "max(timestamp(http_requests_total{job=\"api\"}))");
        let mut s = spec();
        s.latency = Some(LatencySource::Query("my_p{{.quantile}}_over{{.window}}".into()));
        assert!(latency_query(&s).unwrap().contains("my_p0.99_over1h"));
    }

    #[test]
    fn selectors_are_found_before_the_window() {
        assert_eq!(selector_before_window("rate(x[{{.window}}])").as_deref(), Some("x"));
        assert_eq!(
            selector_before_window("sum(increase(a:b_total{l=\"}{\", m='x'} [{{.window}}]))").as_deref(),
            Some("a:b_total{l=\"}{\", m='x'}")
        );
        assert_eq!(
            selector_before_window("sum(rate({__name__=\"x\"}[{{.window}}]))").as_deref(),
            Some("{__name__=\"x\"}")
        );
        assert_eq!(selector_before_window("sum(x)"), None);
        assert_eq!(selector_before_window("(sum(x))[{{.window}}]"), None);
    }

    #[test]
    fn responses_parse_or_explain() {
        let ok = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"guardrail_series":"total@5m"},"value":[1,"6000"]},
            {"metric":{"guardrail_series":"p95"},"value":[1,"NaN"]}]}}"#;
        let s = parse_vector(ok).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].value, 6000.0);
        assert!(s[1].value.is_nan());
        let (m, p) = by_series(&s);
        assert_eq!(m.len(), 2);
        assert!(p.is_empty());
        let err = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        let e = parse_vector(err).unwrap_err();
        assert_eq!(e, ResponseError::Prometheus { kind: "bad_data".into(), message: "parse error".into() });
        assert_eq!(e.to_string(), "Prometheus answered bad_data: parse error");
        let e = parse_vector("<html>").unwrap_err();
        assert!(matches!(&e, ResponseError::NotJson { excerpt, .. } if excerpt == "<html>"), "{e:?}");
        assert!(e.to_string().starts_with("the response is not JSON"), "{e}");
        let dup = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"guardrail_series":"total@5m","code":"200"},"value":[1,"1"]},
            {"metric":{"guardrail_series":"total@5m","code":"500"},"value":[1,"2"]}]}}"#;
        let (m, p) = by_series(&parse_vector(dup).unwrap());
        assert!(m.is_empty());
        assert!(p[0].contains("returned 2 series"), "{p:?}");
    }
}
