//! Guardrail's Prometheus source.
//!
//! One job: run an SLO's `prometheus:` block ([`PrometheusSpec`]) against a Prometheus HTTP
//! API at one instant and write down what came back as a [`Snapshot`]. The gate records the
//! snapshot's JSON as the decision's metrics input, so `guardrail replay` re-evaluates exactly
//! what was read; the arithmetic (burn rates, tiers, the no-data rule) is
//! `guardrail_core::burn`'s.
//!
//! Three instant queries per decision, whatever the number of windows ([`query`]):
//! 1. errors and totals over every burn window and the SLO period, batched with
//!    `label_replace(…) or …`;
//! 2. p95 and p99 (`histogram_quantile`) — not sent when the spec has no latency source (a
//!    Sloth/OpenSLO spec without Guardrail's latency annotation: [`Snapshot::latency_unavailable`]);
//! 3. the time of the newest sample (`max(timestamp(SELECTOR))`).
//!
//! A query error, an empty result or a non-finite value is not an `Err` here: it is written
//! into [`Snapshot::problems`] and becomes `no_data` in the core. `Err` ([`FetchError`]) is
//! for configuration the gate cannot run at all (no URL, a URL it cannot use).

pub mod client;
pub mod fixture;
pub mod query;

use std::collections::BTreeMap;

use guardrail_core::burn::{Counts, Observation, PrometheusSpec, Window};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Why the source could not be queried at all (as opposed to "no data").
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Neither `prometheus.url` nor `--prometheus` / `GUARDRAIL_PROMETHEUS_URL` is set.
    #[error("prometheus: no URL: set prometheus.url in the SLO file, --prometheus URL or GUARDRAIL_PROMETHEUS_URL")]
    NoUrl,
    /// The URL cannot be used.
    #[error("prometheus URL {url}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The configuration cannot be turned into queries.
    #[error(transparent)]
    Config(#[from] query::NoFreshnessSelector),
    /// The CA file (`ca_file`, `--prometheus-ca`) cannot be read or used.
    #[error("prometheus CA file {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] client::ClientError),
}

/// A metrics input that is not a snapshot [`Snapshot::to_json`] wrote (a recorded one that was
/// edited, or a metrics file given where the SLO file names a Prometheus source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not JSON of the snapshot's shape.
    #[error("not a Prometheus snapshot: {reason}")]
    Json {
        /// serde_json's reason (with line and column).
        reason: String,
    },
    /// JSON of the shape, from another source.
    #[error("not a Prometheus snapshot: source is {source_name:?}")]
    Source {
        /// The `source` it names.
        source_name: String,
    },
    /// A timestamp that does not parse.
    #[error("{field} {value:?}: {reason}")]
    Field {
        /// `evaluated_at` or `newest_sample_at`.
        field: String,
        /// The text.
        value: String,
        /// Why it is not a timestamp.
        reason: String,
    },
    /// A `counts` key that is not a window.
    #[error("counts.{window}: {problem}")]
    Window {
        /// The key.
        window: String,
        /// Why it is not a window.
        #[source]
        problem: guardrail_core::freshness::DurationError,
    },
}

/// One query as sent, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryLog {
    /// `counts`, `latency` or `freshness`.
    pub name: String,
    /// The PromQL sent.
    pub expr: String,
    /// HTTP attempts made.
    pub attempts: u32,
    /// Samples returned.
    pub samples: usize,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// Counts read for one window (`null` when not read).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CountsRead {
    /// Failed events.
    pub errors: Option<f64>,
    /// All events.
    pub total: Option<f64>,
}

/// Percentiles read, in milliseconds (`null` when not read).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencyRead {
    /// p95.
    pub p95: Option<f64>,
    /// p99.
    pub p99: Option<f64>,
}

/// Everything one decision read from Prometheus. Serialised as the decision's metrics input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `prometheus`.
    pub source: String,
    /// Base URL queried.
    pub url: String,
    /// Service name from the spec.
    pub service: String,
    /// Evaluation time of every query (RFC 3339).
    pub evaluated_at: String,
    /// The queries, in the order sent.
    pub queries: Vec<QueryLog>,
    /// Counts by window (`5m`, …, `30d`).
    pub counts: BTreeMap<String, CountsRead>,
    /// p95/p99 in ms.
    pub latency_ms: LatencyRead,
    /// Newest sample behind the total counter (RFC 3339).
    pub newest_sample_at: Option<String>,
    /// Everything that makes this snapshot "no data".
    pub problems: Vec<String>,
    /// Set when the spec has no latency source (an SLO spec without Guardrail's latency
    /// annotation): no latency query was sent and the latency signals are unavailable, with
    /// this reason. Absent from snapshots that read latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_unavailable: Option<String>,
}

/// The reason recorded when the spec has no latency source.
pub const NO_LATENCY_SOURCE: &str = "the SLO spec names no latency source (Guardrail's extension: Sloth guardrail: or \
     OpenSLO guardrail.dev/ annotations with latency_histogram and p95_threshold_ms), so p95/p99 are not read";

/// The value in `source` that marks a snapshot.
pub const SOURCE: &str = "prometheus";

impl Snapshot {
    /// Reads a snapshot written by [`Snapshot::to_json`].
    pub fn from_json(text: &str) -> Result<Snapshot, SnapshotError> {
        let s: Snapshot = serde_json::from_str(text).map_err(|e| SnapshotError::Json { reason: e.to_string() })?;
        if s.source != SOURCE {
            return Err(SnapshotError::Source { source_name: s.source });
        }
        Ok(s)
    }

    /// Pretty JSON (what the audit record holds).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The core's view of the snapshot.
    pub fn to_observation(&self) -> Result<Observation, SnapshotError> {
        let time = |field: &str, text: &str| {
            text.parse::<Timestamp>().map_err(|e| SnapshotError::Field {
                field: field.to_string(),
                value: text.to_string(),
                reason: e.to_string(),
            })
        };
        let evaluated_at = time("evaluated_at", &self.evaluated_at)?;
        let newest_sample_at = match &self.newest_sample_at {
            None => None,
            Some(t) => Some(time("newest_sample_at", t)?),
        };
        let mut counts = BTreeMap::new();
        for (w, c) in &self.counts {
            let w = Window::parse(w).map_err(|e| SnapshotError::Window { window: w.clone(), problem: e })?;
            if let (Some(errors), Some(total)) = (c.errors, c.total) {
                counts.insert(w, Counts { errors, total });
            }
        }
        Ok(Observation {
            service: self.service.clone(),
            evaluated_at,
            counts,
            latency_p95_ms: self.latency_ms.p95,
            latency_p99_ms: self.latency_ms.p99,
            newest_sample_at,
            problems: self.problems.clone(),
            latency_unavailable: self.latency_unavailable.clone(),
        })
    }

    /// Number of queries sent (the benchmark's figure; the target is at most 8).
    pub fn query_count(&self) -> usize {
        self.queries.len()
    }
}

/// The URL in force: `override_url` (flag or environment) else the spec's.
pub fn resolve_url(spec: &PrometheusSpec, override_url: Option<&str>) -> Result<String, FetchError> {
    let url = override_url.map(str::to_string).or_else(|| spec.url.clone()).ok_or(FetchError::NoUrl)?;
    check_url(&url)?;
    Ok(url)
}

/// Whether `url` can name a Prometheus server (`http://` or `https://` and a host); the CLI
/// checks `--prometheus` / `GUARDRAIL_PROMETHEUS_URL` with it as a flag value (a usage error).
pub fn check_url(url: &str) -> Result<(), FetchError> {
    let bad = |reason: &str| Err(FetchError::BadUrl { url: url.to_string(), reason: reason.to_string() });
    let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else {
        return bad("must start with http:// or https://");
    };
    if rest.is_empty() || rest.starts_with('/') {
        return bad("has no host");
    }
    Ok(())
}

/// Runs the three queries at `at` (concurrently) and records the answers. Data problems land in
/// [`Snapshot::problems`] (a refused TLS certificate included: no data); only configuration
/// problems are `Err` (a `ca_file` that cannot be read or holds no usable certificate among
/// them). The CA file, when `spec.ca_file` names one, is read here, once per decision.
pub fn fetch(spec: &PrometheusSpec, url: &str, at: Timestamp) -> Result<Snapshot, FetchError> {
    check_url(url)?;
    let freshness = query::freshness_query(spec)?;
    let ca =
        match &spec.ca_file {
            None => None,
            Some(p) => Some(std::fs::read(p).map_err(|e| FetchError::Ca {
                path: p.display().to_string(),
                reason: format!("cannot be read: {e}"),
            })?),
        };
    let client = client::Client::with_ca(url, spec.timeout_ms, spec.retries, ca.as_deref()).map_err(|e| match &spec
        .ca_file
    {
        Some(p) => FetchError::Ca { path: p.display().to_string(), reason: e.to_string() },
        None => FetchError::Client(e),
    })?;
    let mut snap = Snapshot {
        source: SOURCE.into(),
        url: url.to_string(),
        service: spec.service.clone(),
        evaluated_at: at.to_string(),
        queries: Vec::new(),
        counts: BTreeMap::new(),
        latency_ms: LatencyRead::default(),
        newest_sample_at: None,
        problems: Vec::new(),
        latency_unavailable: spec.latency.is_none().then(|| NO_LATENCY_SOURCE.to_string()),
    };

    // The queries go out together (one thread each) and are recorded in a fixed order: counts,
    // latency (when the spec has a latency source), freshness.
    let latency = query::latency_query(spec);
    let has_latency = latency.is_some();
    let mut exprs = vec![("counts", query::counts_query(spec))];
    exprs.extend(latency.map(|l| ("latency", l)));
    exprs.push(("freshness", freshness));
    let answers: Vec<client::Answer> = std::thread::scope(|scope| {
        let handles: Vec<_> = exprs.iter().map(|(_, e)| scope.spawn(|| client.query(e, at))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(client::Answer { result: Err(client::QueryFailure::Panicked), attempts: 0 }))
            .collect()
    });
    let mut answers = exprs.into_iter().zip(answers);
    let mut run = |snap: &mut Snapshot| -> Option<BTreeMap<String, f64>> {
        let ((name, expr), answer) = answers.next()?;
        let (values, error, samples) = match answer.result {
            Ok(samples) => {
                let n = samples.len();
                let (values, dup) = query::by_series_or_plain(&samples);
                snap.problems.extend(dup.into_iter().map(|p| format!("{name} query: {p}")));
                (Some(values), None, n)
            }
            Err(e) => {
                snap.problems.push(format!("{name} query failed: {e}"));
                // Recorded as text: the snapshot is the decision's input, read back by replay.
                (None, Some(e.to_string()), 0)
            }
        };
        snap.queries.push(QueryLog { name: name.into(), expr, attempts: answer.attempts, samples, error });
        values
    };

    if let Some(v) = run(&mut snap) {
        for w in spec.burn.ranges() {
            let mut read = CountsRead { errors: None, total: None };
            for (kind, slot) in [("errors", &mut read.errors), ("total", &mut read.total)] {
                let tag = query::counts_tag(kind, w);
                match v.get(&tag) {
                    None => snap.problems.push(format!(
                        "{kind} query returned no result for {w}{}",
                        if kind == "errors" {
                            " (if no errors is normal, end error_query with `or vector(0)`)"
                        } else {
                            ""
                        }
                    )),
                    Some(x) if !x.is_finite() => snap.problems.push(format!("{kind} over {w} is {x}")),
                    Some(x) => *slot = Some(*x),
                }
            }
            snap.counts.insert(w.to_string(), read);
        }
    }

    if has_latency && let Some(v) = run(&mut snap) {
        for (q, slot) in [("p95", &mut snap.latency_ms.p95), ("p99", &mut snap.latency_ms.p99)] {
            match v.get(q) {
                None => snap.problems.push(format!("latency query returned no {q}")),
                Some(x) if !x.is_finite() => {
                    snap.problems.push(format!("{q} latency is {x} (no observations over {}?)", spec.latency_window))
                }
                Some(x) => *slot = Some(x * spec.latency_to_ms),
            }
        }
    }

    if let Some(v) = run(&mut snap) {
        let newest = v
            .values()
            .copied()
            .filter(|x| x.is_finite())
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        match newest {
            None => snap.problems.push(
                "no recent sample: the freshness query is empty (nothing within Prometheus's lookback, 5m by default)"
                    .into(),
            ),
            Some(secs) => match Timestamp::from_millisecond((secs * 1000.0).round() as i64) {
                Ok(t) => snap.newest_sample_at = Some(t.to_string()),
                Err(e) => snap.problems.push(format!("the freshness query returned {secs}, not a Unix time: {e}")),
            },
        }
    }
    Ok(snap)
}
