//! Counters and the evaluation latency histogram, rendered in the Prometheus text format
//! (version 0.0.4) at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the evaluation latency histogram buckets.
pub const LATENCY_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    decisions: Mutex<BTreeMap<(String, String, String), u64>>,
    undecided: Mutex<BTreeMap<String, u64>>,
    audit_write_failures: AtomicU64,
    reloads: AtomicU64,
    inputs_valid: AtomicU64,
    buckets: Vec<AtomicU64>,
    latency_sum_nanos: AtomicU64,
    latency_count: AtomicU64,
    outbox: Mutex<Option<OutboxGauges>>,
}

/// The outbox's state as last read by the delivery thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct OutboxGauges {
    pending: u64,
    failed: u64,
    delivered: u64,
    oldest_pending_age_seconds: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            decisions: Mutex::default(),
            undecided: Mutex::default(),
            audit_write_failures: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            inputs_valid: AtomicU64::new(0),
            buckets: LATENCY_BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            latency_sum_nanos: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
            outbox: Mutex::new(None),
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// A recorded decision from `endpoint` (`gate`, `simulate`).
    pub fn decision(&self, endpoint: &str, action: &str, rule: &str) {
        if let Ok(mut m) = self.decisions.lock() {
            *m.entry((endpoint.to_string(), action.to_string(), rule.to_string())).or_insert(0) += 1;
        }
    }
    /// A request that could not be decided (bad inputs, or the record could not be written).
    pub fn undecided(&self, endpoint: &str) {
        if let Ok(mut m) = self.undecided.lock() {
            *m.entry(endpoint.to_string()).or_insert(0) += 1;
        }
    }
    /// An audit append that failed.
    pub fn audit_write_failure(&self) {
        self.audit_write_failures.fetch_add(1, Ordering::Relaxed);
    }
    /// A snapshot rebuilt after its inputs changed; `valid` says whether it can decide.
    pub fn reloaded(&self, valid: bool) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.inputs_valid.store(u64::from(valid), Ordering::Relaxed);
    }
    /// One evaluation of the policy set (snapshot rebuild, gate or simulate).
    pub fn observe_evaluation(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (b, bound) in self.buckets.iter().zip(LATENCY_BUCKETS) {
            if secs <= *bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }
    /// The notification outbox as read at `now_ms` (`crate::outbox_worker`).
    pub fn outbox(&self, status: &guardrail_store::OutboxStatus, now_ms: i64) {
        let age = status.oldest_pending_ms.map_or(0, |t| u64::try_from(now_ms.saturating_sub(t) / 1000).unwrap_or(0));
        if let Ok(mut g) = self.outbox.lock() {
            *g = Some(OutboxGauges {
                pending: status.pending,
                failed: status.failed,
                delivered: status.delivered,
                oldest_pending_age_seconds: age,
            });
        }
    }

    /// Audit write failures so far.
    pub fn audit_write_failures(&self) -> u64 {
        self.audit_write_failures.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP guardrail_decisions_total Deploy decisions recorded in the audit trail, by endpoint, action and winning rule."
        );
        let _ = writeln!(s, "# TYPE guardrail_decisions_total counter");
        if let Ok(m) = self.decisions.lock() {
            for ((endpoint, action, rule), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "guardrail_decisions_total{{endpoint=\"{}\",action=\"{}\",rule=\"{}\"}} {n}",
                    escape(endpoint),
                    escape(action),
                    escape(rule)
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP guardrail_undecided_total Requests answered without a decision (invalid inputs or an audit write failure), by endpoint."
        );
        let _ = writeln!(s, "# TYPE guardrail_undecided_total counter");
        if let Ok(m) = self.undecided.lock() {
            for (endpoint, n) in m.iter() {
                let _ = writeln!(s, "guardrail_undecided_total{{endpoint=\"{}\"}} {n}", escape(endpoint));
            }
        }
        let _ = writeln!(
            s,
            "# HELP guardrail_audit_write_failures_total Audit records that could not be appended (the decision was withheld)."
        );
        let _ = writeln!(s, "# TYPE guardrail_audit_write_failures_total counter");
        let _ = writeln!(s, "guardrail_audit_write_failures_total {}", self.audit_write_failures());
        let _ = writeln!(s, "# HELP guardrail_input_reloads_total Times the input snapshot was rebuilt.");
        let _ = writeln!(s, "# TYPE guardrail_input_reloads_total counter");
        let _ = writeln!(s, "guardrail_input_reloads_total {}", self.reloads.load(Ordering::Relaxed));
        let _ = writeln!(s, "# HELP guardrail_inputs_valid 1 when the current input snapshot can decide, else 0.");
        let _ = writeln!(s, "# TYPE guardrail_inputs_valid gauge");
        let _ = writeln!(s, "guardrail_inputs_valid {}", self.inputs_valid.load(Ordering::Relaxed));
        let _ = writeln!(
            s,
            "# HELP guardrail_evaluation_duration_seconds Time to evaluate one snapshot (parse, SLO, cost, policies)."
        );
        let _ = writeln!(s, "# TYPE guardrail_evaluation_duration_seconds histogram");
        for (b, bound) in self.buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(
                s,
                "guardrail_evaluation_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(s, "guardrail_evaluation_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(s, "guardrail_evaluation_duration_seconds_sum {sum}");
        let _ = writeln!(s, "guardrail_evaluation_duration_seconds_count {count}");
        // Only once the delivery thread has read the outbox (no Slack/Jira configured: absent).
        if let Some(g) = self.outbox.lock().ok().and_then(|g| *g) {
            let gauges = [
                ("guardrail_outbox_pending", "Notifications (Slack, Jira) not delivered yet.", g.pending),
                (
                    "guardrail_outbox_failed",
                    "Notifications given up on (guardrail notify deliver --retry-failed).",
                    g.failed,
                ),
                ("guardrail_outbox_delivered", "Notifications delivered.", g.delivered),
                (
                    "guardrail_outbox_oldest_pending_age_seconds",
                    "Age of the oldest undelivered notification's record (0 when none).",
                    g.oldest_pending_age_seconds,
                ),
            ];
            for (name, help, v) in gauges {
                let _ = writeln!(s, "# HELP {name} {help}");
                let _ = writeln!(s, "# TYPE {name} gauge");
                let _ = writeln!(s, "{name} {v}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.decision("gate", "DELAY", "P005");
        m.decision("gate", "DELAY", "P005");
        m.undecided("gate");
        m.audit_write_failure();
        m.observe_evaluation(Duration::from_micros(300));
        m.observe_evaluation(Duration::from_millis(30));
        let t = m.render();
        assert!(t.contains("guardrail_decisions_total{endpoint=\"gate\",action=\"DELAY\",rule=\"P005\"} 2"), "{t}");
        assert!(t.contains("guardrail_undecided_total{endpoint=\"gate\"} 1"));
        assert!(t.contains("guardrail_audit_write_failures_total 1"));
        assert!(t.contains("guardrail_evaluation_duration_seconds_bucket{le=\"0.0001\"} 0"));
        assert!(t.contains("guardrail_evaluation_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(t.contains("guardrail_evaluation_duration_seconds_bucket{le=\"0.05\"} 2"));
        assert!(t.contains("guardrail_evaluation_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(t.contains("guardrail_evaluation_duration_seconds_count 2"));
        assert!(!t.contains("guardrail_outbox_pending"), "no outbox gauges before the outbox is read");
        let st = guardrail_store::OutboxStatus { pending: 3, failed: 1, delivered: 7, oldest_pending_ms: Some(1_000) };
        m.outbox(&st, 91_500);
        let t = m.render();
        assert!(t.contains("guardrail_outbox_pending 3\n") && t.contains("guardrail_outbox_failed 1\n"), "{t}");
        assert!(t.contains("guardrail_outbox_oldest_pending_age_seconds 90\n"), "{t}");
        assert!(t.contains("# TYPE guardrail_outbox_delivered gauge"));
    }
}
