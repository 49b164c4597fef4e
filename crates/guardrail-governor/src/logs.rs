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
    fn a_missing_file_is_an_error() {
        assert!(NdjsonLogs::open(Path::new("/nonexistent/guardrail/logs.ndjson")).is_err());
    }
}
