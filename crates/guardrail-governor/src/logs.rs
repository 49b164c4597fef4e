//! Live error telemetry.
//!
//! The original's `query_live_logs` aggregated Kibana's `kibana_sample_data_logs` index
//! (`error_count` = responses ≥ 400, average `bytes`). [`NdjsonLogs`] reads the same kind of
//! records from a JSON-lines file, one request per line, and adds the 5xx share for one service
//! over a window that ends at a `now` the caller passes (nothing here reads a clock).
//!
//! Accepted fields (first present wins): time `@timestamp` or `timestamp` (RFC 3339; a
//! date-time without offset is UTC; a number is epoch milliseconds); service `service`,
//! `service.name`, `host`, `host.name` (flattened or nested); status `response`, `status`,
//! `http.response.status_code` (number or digits); size `bytes`. A line that is not JSON or
//! lacks a time or a status is counted in `skipped_lines`, not guessed at.
//!
//! [`ElasticLogs`] asks an Elasticsearch logs index of the original's shape (Kibana's
//! `kibana_sample_data_logs`: `timestamp` a date, `response` text with a `.keyword`, `bytes` a
//! long, `host` text with a `.keyword`) for the same counts in one `size: 0` search with
//! aggregations, as the original's `query_live_logs` did: the window is a `range` on
//! `timestamp` (`gt` start, `lte` end), the service a `term` on any of `service`,
//! `service.name`, `host.keyword`, `host.name` (fields a mapping lacks match nothing),
//! `error_count` a `filter` aggregation `response.keyword ≥ "400"` (three-digit statuses compare
//! as text the way they do as numbers), `server_error_count` the same from `"500"`, `avg_bytes`
//! an `avg` of `bytes`. A failed, timed-out or partial (failed shards) answer is an error, never
//! "no errors".

use std::io::BufRead;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use guardrail_core::pyround::py_round;

/// Counts over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogsSummary {
    /// Requests in the window (for the service, when one was given).
    pub total: u64,
    /// Responses ≥ 400 (the original's `error_count`).
    pub error_count: u64,
    /// Responses ≥ 500.
    pub server_error_count: u64,
    /// `server_error_count / total`, six decimals; `null` without requests.
    pub error_rate: Option<f64>,
    /// Mean `bytes` of the requests that carry it, two decimals (the original's `avg_bytes`);
    /// `null` when none does.
    pub avg_bytes: Option<f64>,
    /// Lines that could not be read as a request record.
    pub skipped_lines: u64,
}

/// Why the logs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// The Elasticsearch logs index could not answer (or answered only in part).
    #[error("logs index {index}: {source}")]
    Elastic {
        /// The index.
        index: String,
        /// Why (boxed: every tool error carries this enum, and it stays small).
        source: Box<guardrail_knowledge::KnowledgeError>,
    },
    /// The file could not be opened or read.
    #[error("logs {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A source of live request logs.
pub trait LogsSource {
    /// Where the logs come from, for the trace.
    fn describe(&self) -> String;

    /// Counts for `service` (or all services) with `start < time ≤ end`.
    fn summary(&self, service: Option<&str>, start: Timestamp, end: Timestamp) -> Result<LogsSummary, LogsError>;
}

/// JSON-lines logs in a file (streamed on each query) or in memory.
#[derive(Debug, Clone)]
pub struct NdjsonLogs {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    File(PathBuf),
    Text { name: String, text: String },
}

impl NdjsonLogs {
    /// Logs in a file, which must exist now (a configured but missing source is an error, not
    /// "no errors").
    pub fn open(path: &Path) -> Result<NdjsonLogs, LogsError> {
        std::fs::metadata(path).map_err(|source| LogsError::Io { path: path.to_path_buf(), source })?;
        Ok(NdjsonLogs { inner: Inner::File(path.to_path_buf()) })
    }

    /// Logs held in memory.
    pub fn from_text(name: &str, text: &str) -> NdjsonLogs {
        NdjsonLogs { inner: Inner::Text { name: name.to_string(), text: text.to_string() } }
    }
}

impl LogsSource for NdjsonLogs {
    fn describe(&self) -> String {
        match &self.inner {
            Inner::File(p) => format!("ndjson:{}", p.display()),
            Inner::Text { name, .. } => format!("ndjson:{name}"),
        }
    }

    fn summary(&self, service: Option<&str>, start: Timestamp, end: Timestamp) -> Result<LogsSummary, LogsError> {
        let mut acc = Accumulator::default();
        match &self.inner {
            Inner::Text { text, .. } => {
                for line in text.lines() {
                    acc.line(line, service, start, end);
                }
            }
            Inner::File(path) => {
                let io = |source| LogsError::Io { path: path.clone(), source };
                let f = std::fs::File::open(path).map_err(io)?;
                for line in std::io::BufReader::new(f).lines() {
                    acc.line(&line.map_err(io)?, service, start, end);
                }
            }
        }
        Ok(acc.finish())
    }
}

/// Live logs in an Elasticsearch index of the original's `kibana_sample_data_logs` shape.
#[derive(Debug)]
pub struct ElasticLogs {
    client: guardrail_knowledge::ElasticKnowledgeStore,
    index: String,
}

impl ElasticLogs {
    /// Logs in `index` of the cluster `cfg` names (nothing is sent until a query).
    pub fn connect(cfg: guardrail_knowledge::ElasticConfig, index: &str) -> Result<ElasticLogs, LogsError> {
        let client = guardrail_knowledge::ElasticKnowledgeStore::connect(cfg)
            .map_err(|source| LogsError::Elastic { index: index.to_string(), source: Box::new(source) })?;
        Ok(ElasticLogs { client, index: index.to_string() })
    }
}

/// The aggregation search: wire types as Elasticsearch documents them.
mod es {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize)]
    pub struct Body<'a> {
        pub size: u32,
        pub track_total_hits: bool,
        pub query: Query<'a>,
        pub aggs: Aggs,
    }

    #[derive(Debug, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Query<'a> {
        Bool(Box<Bool<'a>>),
        Range(BTreeMap<&'static str, Range>),
        Term(BTreeMap<&'static str, Term<'a>>),
    }

    #[derive(Debug, Default, Serialize)]
    pub struct Bool<'a> {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub filter: Vec<Query<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub should: Vec<Query<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub minimum_should_match: Option<u32>,
    }

    #[derive(Debug, Default, Serialize)]
    pub struct Range {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub gt: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub gte: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub lte: Option<String>,
    }

    #[derive(Debug, Serialize)]
    pub struct Term<'a> {
        pub value: &'a str,
    }

    #[derive(Debug, Serialize)]
    pub struct Aggs {
        pub error_count: FilterAgg,
        pub server_error_count: FilterAgg,
        pub avg_response_size: AvgAgg,
    }

    #[derive(Debug, Serialize)]
    pub struct FilterAgg {
        pub filter: Query<'static>,
    }

    #[derive(Debug, Serialize)]
    pub struct AvgAgg {
        pub avg: Field,
    }

    #[derive(Debug, Serialize)]
    pub struct Field {
        pub field: &'static str,
    }

    #[derive(Debug, Deserialize)]
    pub struct Answer {
        #[serde(default)]
        pub timed_out: bool,
        #[serde(rename = "_shards", default)]
        pub shards: Option<Shards>,
        pub hits: Hits,
        pub aggregations: Aggregations,
    }

    #[derive(Debug, Deserialize)]
    pub struct Shards {
        #[serde(default)]
        pub failed: u64,
    }

    #[derive(Debug, Deserialize)]
    pub struct Hits {
        pub total: Total,
    }

    #[derive(Debug, Deserialize)]
    pub struct Total {
        pub value: u64,
        pub relation: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct Aggregations {
        pub error_count: Count,
        pub server_error_count: Count,
        pub avg_response_size: Avg,
    }

    #[derive(Debug, Deserialize)]
    pub struct Count {
        pub doc_count: u64,
    }

    #[derive(Debug, Deserialize)]
    pub struct Avg {
        pub value: Option<f64>,
    }
}

/// The search [`ElasticLogs`] sends for `service` over `start < timestamp ≤ end`.
fn logs_search(service: Option<&str>, start: Timestamp, end: Timestamp) -> es::Body<'_> {
    use std::collections::BTreeMap;
    let window = es::Range { gt: Some(start.to_string()), lte: Some(end.to_string()), ..es::Range::default() };
    let mut filter = vec![es::Query::Range(BTreeMap::from([("timestamp", window)]))];
    if let Some(s) = service {
        let should = ["service", "service.name", "host.keyword", "host.name"]
            .into_iter()
            .map(|f| es::Query::Term(BTreeMap::from([(f, es::Term { value: s })])))
            .collect();
        filter.push(es::Query::Bool(Box::new(es::Bool {
            should,
            minimum_should_match: Some(1),
            ..es::Bool::default()
        })));
    }
    let from = |status: &str| es::FilterAgg {
        filter: es::Query::Range(BTreeMap::from([(
            "response.keyword",
            es::Range { gte: Some(status.to_string()), ..es::Range::default() },
        )])),
    };
    es::Body {
        size: 0,
        track_total_hits: true,
        query: es::Query::Bool(Box::new(es::Bool { filter, ..es::Bool::default() })),
        aggs: es::Aggs {
            error_count: from("400"),
            server_error_count: from("500"),
            avg_response_size: es::AvgAgg { avg: es::Field { field: "bytes" } },
        },
    }
}

impl LogsSource for ElasticLogs {
    fn describe(&self) -> String {
        format!("elasticsearch:{}/{}", self.client.config().url, self.index)
    }

    fn summary(&self, service: Option<&str>, start: Timestamp, end: Timestamp) -> Result<LogsSummary, LogsError> {
        let err = |message: String| LogsError::Elastic {
            index: self.index.clone(),
            source: Box::new(guardrail_knowledge::KnowledgeError::Unavailable {
                location: self.client.config().url.clone(),
                status: None,
                message,
                retry_after: None,
            }),
        };
        let a: es::Answer = self
            .client
            .search_index(&self.index, &logs_search(service, start, end))
            .map_err(|source| LogsError::Elastic { index: self.index.clone(), source: Box::new(source) })?;
        if a.timed_out {
            return Err(err("the search timed out (partial counts refused)".into()));
        }
        if let Some(s) = a.shards.filter(|s| s.failed > 0) {
            return Err(err(format!("{} shard(s) failed (partial counts refused)", s.failed)));
        }
        if a.hits.total.relation != "eq" {
            return Err(err(format!("the total is a bound ({}), not a count", a.hits.total.relation)));
        }
        let total = a.hits.total.value;
        let server = a.aggregations.server_error_count.doc_count;
        Ok(LogsSummary {
            total,
            error_count: a.aggregations.error_count.doc_count,
            server_error_count: server,
            error_rate: (total > 0).then(|| py_round(server as f64 / total as f64, 6)),
            avg_bytes: a.aggregations.avg_response_size.value.filter(|v| v.is_finite()).map(|v| py_round(v, 2)),
            skipped_lines: 0,
        })
    }
}

/// Summarises JSON-lines text (the pure part of [`NdjsonLogs`]).
pub fn summarise(text: &str, service: Option<&str>, start: Timestamp, end: Timestamp) -> LogsSummary {
    let mut acc = Accumulator::default();
    for line in text.lines() {
        acc.line(line, service, start, end);
    }
    acc.finish()
}

#[derive(Default)]
struct Accumulator {
    total: u64,
    errors: u64,
    server_errors: u64,
    bytes_sum: f64,
    bytes_n: u64,
    skipped: u64,
}

fn field<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    // Flattened ("service.name": …) first, then nested.
    if let Some(x) = v.get(dotted) {
        return Some(x);
    }
    let mut cur = v;
    for part in dotted.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

fn timestamp_of(v: &Value) -> Option<Timestamp> {
    let raw = field(v, "@timestamp").or_else(|| field(v, "timestamp"))?;
    match raw {
        Value::String(s) => s.parse::<Timestamp>().ok().or_else(|| {
            let dt: jiff::civil::DateTime = s.parse().ok()?;
            jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()
        }),
        Value::Number(n) => Timestamp::from_millisecond(n.as_i64()?).ok(),
        _ => None,
    }
}

fn status_of(v: &Value) -> Option<u16> {
    let raw = ["response", "status", "http.response.status_code"].iter().find_map(|k| field(v, k))?;
    match raw {
        Value::Number(n) => n.as_u64().and_then(|x| u16::try_from(x).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn belongs_to(v: &Value, service: &str) -> bool {
    ["service", "service.name", "host", "host.name"]
        .iter()
        .any(|k| field(v, k).and_then(Value::as_str).is_some_and(|s| s == service))
}

impl Accumulator {
    fn line(&mut self, line: &str, service: Option<&str>, start: Timestamp, end: Timestamp) {
        if line.trim().is_empty() {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            self.skipped += 1;
            return;
        };
        let (Some(ts), Some(status)) = (timestamp_of(&v), status_of(&v)) else {
            self.skipped += 1;
            return;
        };
        if ts <= start || ts > end || service.is_some_and(|s| !belongs_to(&v, s)) {
            return;
        }
        self.total += 1;
        if status >= 400 {
            self.errors += 1;
        }
        if status >= 500 {
            self.server_errors += 1;
        }
        if let Some(b) = v.get("bytes").and_then(Value::as_f64).filter(|b| b.is_finite()) {
            self.bytes_sum += b;
            self.bytes_n += 1;
        }
    }

    fn finish(self) -> LogsSummary {
        LogsSummary {
            total: self.total,
            error_count: self.errors,
            server_error_count: self.server_errors,
            error_rate: (self.total > 0).then(|| py_round(self.server_errors as f64 / self.total as f64, 6)),
            avg_bytes: (self.bytes_n > 0).then(|| py_round(self.bytes_sum / self.bytes_n as f64, 2)),
            skipped_lines: self.skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn five_xx_share_over_the_window_for_one_service() {
        let text = r#"
{"@timestamp":"2026-11-24T09:50:00Z","service":"payments-api","response":503,"bytes":100}
{"@timestamp":"2026-11-24T09:55:00Z","service":"payments-api","response":"200","bytes":300}
{"timestamp":"2026-11-24T09:58:00","host":"payments-api","status":404}
{"@timestamp":"2026-11-24T09:59:00Z","service":{"name":"payments-api"},"http.response.status_code":500}
{"@timestamp":"2026-11-24T09:40:00Z","service":"payments-api","response":503}
{"@timestamp":"2026-11-24T10:05:00Z","service":"payments-api","response":503}
{"@timestamp":"2026-11-24T09:56:00Z","service":"billing-batch","response":503}
not json
{"service":"payments-api","response":500}
"#;
        let s = summarise(text, Some("payments-api"), ts("2026-11-24T09:45:00Z"), ts("2026-11-24T10:00:00Z"));
        assert_eq!((s.total, s.error_count, s.server_error_count, s.skipped_lines), (4, 3, 2, 2));
        assert_eq!(s.error_rate, Some(0.5));
        assert_eq!(s.avg_bytes, Some(200.0));
        let all = summarise(text, None, ts("2026-11-24T09:45:00Z"), ts("2026-11-24T10:00:00Z"));
        assert_eq!(all.total, 5);
        let none = summarise("", Some("x"), ts("2026-11-24T09:45:00Z"), ts("2026-11-24T10:00:00Z"));
        assert_eq!((none.total, none.error_rate), (0, None));
    }

    #[test]
    fn the_elasticsearch_search_is_the_originals_aggregation() {
        let body = logs_search(Some("payments-api"), ts("2026-11-24T09:45:00Z"), ts("2026-11-24T10:00:00Z"));
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"size":0,"track_total_hits":true,"query":{"bool":{"filter":["#,
                r#"{"range":{"timestamp":{"gt":"2026-11-24T09:45:00Z","lte":"2026-11-24T10:00:00Z"}}},"#,
                r#"{"bool":{"should":[{"term":{"service":{"value":"payments-api"}}},{"term":{"service.name":{"value":"payments-api"}}},"#,
                r#"{"term":{"host.keyword":{"value":"payments-api"}}},{"term":{"host.name":{"value":"payments-api"}}}],"minimum_should_match":1}}]}},"#,
                r#""aggs":{"error_count":{"filter":{"range":{"response.keyword":{"gte":"400"}}}},"#,
                r#""server_error_count":{"filter":{"range":{"response.keyword":{"gte":"500"}}}},"#,
                r#""avg_response_size":{"avg":{"field":"bytes"}}}}"#
            )
        );
    }

    #[test]
    fn elasticsearch_counts_and_failures() {
        use guardrail_test_support::model::{Reply, serve};
        let answer = r#"{"took":4,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},
            "hits":{"total":{"value":40,"relation":"eq"},"max_score":null,"hits":[]},
            "aggregations":{"error_count":{"doc_count":7},"server_error_count":{"doc_count":3},"avg_response_size":{"value":5664.333333}}}"#;
        let unauthorised = r#"{"error":{"root_cause":[{"type":"security_exception","reason":"missing authentication credentials for REST request [/kibana_sample_data_logs/_search]"}],"type":"security_exception","reason":"missing authentication credentials for REST request [/kibana_sample_data_logs/_search]"},"status":401}"#;
        let partial = answer.replace(r#""failed":0"#, r#""failed":1"#);
        let server = serve(vec![Reply::json(200, answer), Reply::json(401, unauthorised), Reply::json(200, partial)]);
        let logs =
            ElasticLogs::connect(guardrail_knowledge::ElasticConfig::new(&server.url), "kibana_sample_data_logs")
                .unwrap();
        let (start, end) = (ts("2026-11-24T09:45:00Z"), ts("2026-11-24T10:00:00Z"));
        let s = logs.summary(Some("payments-api"), start, end).unwrap();
        assert_eq!((s.total, s.error_count, s.server_error_count, s.skipped_lines), (40, 7, 3, 0));
        assert_eq!((s.error_rate, s.avg_bytes), (Some(0.075), Some(5664.33)));
        let req = &server.requests()[0];
        assert!(req.head.starts_with("POST /kibana_sample_data_logs/_search HTTP/1.1"), "{}", req.head);
        let e = logs.summary(None, start, end).unwrap_err().to_string();
        assert!(
            e.contains("kibana_sample_data_logs") && e.contains("HTTP 401") && e.contains("security_exception"),
            "{e}"
        );
        let e = logs.summary(None, start, end).unwrap_err().to_string();
        assert!(e.contains("1 shard(s) failed"), "{e}");
        assert_eq!(logs.describe(), format!("elasticsearch:{}/kibana_sample_data_logs", server.url));
    }

    #[test]
    fn a_missing_file_is_an_error() {
        assert!(NdjsonLogs::open(Path::new("/nonexistent/guardrail/logs.ndjson")).is_err());
    }
}
