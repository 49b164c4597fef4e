//! The signals a policy condition may test, and their values for one evaluation.
//!
//! The catalogue is closed: a condition naming a signal that is not listed here is a
//! configuration error (the seed tool silently never matched it, which could demote a BLOCK
//! rule through a typo). Each signal has a kind that fixes which operators and thresholds make
//! sense for it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cost::{CostReport, CostTrend};
use crate::slo::{BurnLabel, SloReport};

/// What kind of value a signal carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// A number: every operator applies; thresholds are numbers.
    Number,
    /// A boolean: `eq`, `neq`, `in`; thresholds are booleans.
    Bool,
    /// One of a closed set of labels: `eq`, `neq`, `in`; thresholds must be known labels.
    Label(&'static [&'static str]),
    /// Free text (e.g. a service name): `eq`, `neq`, `in`.
    Text,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct SignalDef {
    /// Name used in policies.
    pub name: &'static str,
    /// Kind of value.
    pub kind: SignalKind,
    /// Inclusive range of possible values for numeric signals (used to spot rules that can
    /// never match).
    pub range: Option<(f64, f64)>,
    /// One line for people.
    pub description: &'static str,
}

const BURN_LABELS: &[&str] = &["low", "medium", "high", "critical"];
const TREND_LABELS: &[&str] = &["stable", "rising", "spiking", "falling"];

/// Every signal a condition may name. The first seven are the seed tool's.
pub const CATALOGUE: &[SignalDef] = &[
    SignalDef {
        name: "error_budget_pct",
        kind: SignalKind::Number,
        range: Some((0.0, 100.0)),
        description: "error budget left over the SLO window, percent",
    },
    SignalDef {
        name: "burn_rate",
        kind: SignalKind::Label(BURN_LABELS),
        range: None,
        description: "burn-rate label from the recent burn value",
    },
    SignalDef {
        name: "availability_pct",
        kind: SignalKind::Number,
        range: Some((0.0, 100.0)),
        description: "successful share of requests, percent",
    },
    SignalDef {
        name: "latency_compliant",
        kind: SignalKind::Bool,
        range: None,
        description: "p95 latency at or below its limit",
    },
    SignalDef {
        name: "cost_spike_pct",
        kind: SignalKind::Number,
        range: Some((-100.0, f64::INFINITY)),
        description: "week-over-week spend change, percent",
    },
    SignalDef {
        name: "cost_spike_detected",
        kind: SignalKind::Bool,
        range: None,
        description: "spend change at or above the warn threshold",
    },
    SignalDef {
        name: "cost_trend",
        kind: SignalKind::Label(TREND_LABELS),
        range: None,
        description: "spend trend label",
    },
    SignalDef {
        name: "burn_rate_value",
        kind: SignalKind::Number,
        range: Some((0.0, f64::INFINITY)),
        description: "recent burn multiple (mean of the last three values)",
    },
    SignalDef {
        name: "latency_p95_ms",
        kind: SignalKind::Number,
        range: Some((0.0, f64::INFINITY)),
        description: "observed p95 latency, ms",
    },
    SignalDef {
        name: "latency_p99_ms",
        kind: SignalKind::Number,
        range: Some((0.0, f64::INFINITY)),
        description: "observed p99 latency, ms (unavailable when not reported)",
    },
    SignalDef {
        name: "latency_p99_compliant",
        kind: SignalKind::Bool,
        range: None,
        description: "p99 at or below slos.latency.p99_threshold_ms (unavailable without both)",
    },
    SignalDef {
        name: "availability_compliant",
        kind: SignalKind::Bool,
        range: None,
        description: "availability at or above target",
    },
    SignalDef {
        name: "cost_budget_utilisation_pct",
        kind: SignalKind::Number,
        range: Some((0.0, f64::INFINITY)),
        description: "spend in the series over the monthly budget, percent",
    },
    SignalDef { name: "service", kind: SignalKind::Text, range: None, description: "service name from the metrics" },
    SignalDef {
        name: "no_data",
        kind: SignalKind::Bool,
        range: None,
        description: "the live SLO source (Prometheus) could not be read: query error, empty result or stale sample",
    },
    SignalDef {
        name: "burn_rate_insufficient_data",
        kind: SignalKind::Bool,
        range: None,
        description: "too few events in the burn-rate windows to decide the burn-rate label",
    },
    SignalDef {
        name: "cost_anomaly_score",
        kind: SignalKind::Number,
        range: Some((-crate::cost::ANOMALY_SCORE_CAP, crate::cost::ANOMALY_SCORE_CAP)),
        description: "newest day's spend against the baseline: (latest - median) / (1.4826 MAD), clamped to ±1000 \
                      (unavailable when the series is shorter than the baseline)",
    },
    SignalDef {
        name: "cost_has_estimated_days",
        kind: SignalKind::Bool,
        range: None,
        description: "the cost series contains days the source marks as estimated (not final)",
    },
    SignalDef {
        name: "in_freeze",
        kind: SignalKind::Bool,
        range: None,
        description: "now is inside a change freeze of the policy file's freezes: block",
    },
    SignalDef {
        name: "freeze_name",
        kind: SignalKind::Text,
        range: None,
        description: "name of the active freeze (first in file order), empty when none",
    },
    SignalDef {
        name: "in_maintenance",
        kind: SignalKind::Bool,
        range: None,
        description: "now is inside a planned-maintenance window of the policy file's maintenance: block",
    },
    SignalDef {
        name: "maintenance_name",
        kind: SignalKind::Text,
        range: None,
        description: "name of the active maintenance window, empty when none",
    },
];

/// Looks a signal up by name.
pub fn lookup(name: &str) -> Option<&'static SignalDef> {
    CATALOGUE.iter().find(|d| d.name == name)
}

/// A signal's value in one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SignalValue {
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A label or text.
    Text(String),
    /// The inputs do not provide this signal; the string says why. A rule that needs it
    /// cannot be decided.
    #[serde(serialize_with = "ser_unavailable")]
    Unavailable(String),
}

fn ser_unavailable<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

impl std::fmt::Display for SignalValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignalValue::Number(n) => write!(f, "{n}"),
            SignalValue::Bool(b) => write!(f, "{b}"),
            SignalValue::Text(t) => write!(f, "{t}"),
            SignalValue::Unavailable(why) => write!(f, "unavailable ({why})"),
        }
    }
}

/// The signal values of one evaluation, by name (sorted, so serialisation is stable).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Signals(pub BTreeMap<String, SignalValue>);

impl Signals {
    /// The value of a signal, or `None` if the name is not in this set at all.
    pub fn get(&self, name: &str) -> Option<&SignalValue> {
        self.0.get(name)
    }

    /// Sets a value.
    pub fn set(&mut self, name: &str, v: SignalValue) {
        self.0.insert(name.to_string(), v);
    }

    /// Builds every catalogue signal from an SLO report and a cost report.
    pub fn from_reports(slo: &SloReport, cost: &CostReport) -> Signals {
        let mut s = Signals::default();
        s.set("error_budget_pct", SignalValue::Number(slo.error_budget_pct));
        s.set("burn_rate", SignalValue::Text(label(slo.burn_rate).to_string()));
        s.set("availability_pct", SignalValue::Number(slo.availability_pct));
        s.set("latency_compliant", SignalValue::Bool(slo.latency_compliant));
        s.set("cost_spike_pct", SignalValue::Number(cost.wow_change_pct));
        s.set("cost_spike_detected", SignalValue::Bool(cost.spike_detected));
        s.set("cost_trend", SignalValue::Text(trend(cost.trend).to_string()));
        s.set("burn_rate_value", SignalValue::Number(slo.burn_rate_value));
        s.set("latency_p95_ms", SignalValue::Number(slo.latency_p95_ms.value));
        s.set(
            "latency_p99_ms",
            match slo.latency_p99_ms {
                Some(v) => SignalValue::Number(v.value),
                None => SignalValue::Unavailable("the metrics report no p99 latency".into()),
            },
        );
        s.set(
            "latency_p99_compliant",
            match slo.latency_p99_compliant {
                Some(b) => SignalValue::Bool(b),
                None if slo.latency_p99_ms.is_none() => {
                    SignalValue::Unavailable("the metrics report no p99 latency".into())
                }
                None => SignalValue::Unavailable("slos.latency.p99_threshold_ms is not set".into()),
            },
        );
        s.set("availability_compliant", SignalValue::Bool(slo.availability_compliant));
        s.set("cost_budget_utilisation_pct", SignalValue::Number(cost.budget_utilisation_pct));
        s.set("service", SignalValue::Text(slo.details.service.clone()));
        s.set("no_data", SignalValue::Bool(false));
        s.set("burn_rate_insufficient_data", SignalValue::Bool(false));
        s.set(
            "cost_anomaly_score",
            match (cost.anomaly.score, &cost.anomaly.unavailable) {
                (Some(v), _) => SignalValue::Number(v),
                (None, Some(why)) => SignalValue::Unavailable(why.clone()),
                (None, None) => SignalValue::Unavailable("no anomaly score".into()),
            },
        );
        s.set("cost_has_estimated_days", SignalValue::Bool(!cost.estimated_days.is_empty()));
        if let Some(p) = &slo.prometheus {
            p.apply(&mut s);
        }
        s
    }
}

fn label(l: BurnLabel) -> &'static str {
    l.as_str()
}

fn trend(t: CostTrend) -> &'static str {
    t.as_str()
}
