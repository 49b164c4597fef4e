//! The signals a policy condition may test, and their values for one evaluation.
//!
//! The catalogue is closed: a condition naming a signal that is not listed here is a
//! configuration error (the seed tool silently never matched it, which could demote a BLOCK
//! rule through a typo). Each signal has a kind that fixes which operators and thresholds make
//! sense for it.
//!
//! A signal whose source the inputs lack is [`SignalValue::Unavailable`] with the reason, never a
//! stand-in value (the seed's 0 % budget utilisation without a budget let a budget rule pass):
//! a rule that reads it cannot be decided. The tests below hold one case per signal.

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
        description: "spend in the series over the monthly budget, percent (unavailable without a budget: billing \
                      exports have none)",
    },
    SignalDef {
        name: "service",
        kind: SignalKind::Text,
        range: None,
        description: "service name from the metrics (unavailable when they name none)",
    },
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

/// The seed's service name for data that names none (`"unknown"`): the service is not known.
pub const UNKNOWN_SERVICE: &str = "unknown";

/// Looks a signal up by name.
pub fn lookup(name: &str) -> Option<&'static SignalDef> {
    CATALOGUE.iter().find(|d| d.name == name)
}

/// A signal's value in one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
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
    #[schemars(with = "()")]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
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
        s.set(
            "cost_budget_utilisation_pct",
            match cost.budget_utilisation_pct {
                Some(v) => SignalValue::Number(v),
                None => SignalValue::Unavailable(
                    cost.budget_unavailable.clone().unwrap_or_else(|| crate::cost::NO_BUDGET.to_string()),
                ),
            },
        );
        // "unknown" is the seed's stand-in for a metrics file without `service`: not a name a
        // rule may compare with.
        s.set(
            "service",
            if slo.details.service == UNKNOWN_SERVICE {
                SignalValue::Unavailable("the metrics name no service".into())
            } else {
                SignalValue::Text(slo.details.service.clone())
            },
        );
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

#[cfg(test)]
mod tests {
    //! One case per catalogue signal: its value when its source is there, and what it is when
    //! the source is missing — *unavailable* with the reason, never a stand-in number — or why
    //! it is always known.

    use super::*;
    use crate::burn::{self, BurnConfig, Counts, Observation};
    use crate::cost::{self, CostSeries, CostThresholds, DailyCost};
    use crate::slo::{self, BurnThresholds, MetricsSnapshot, Num, SloSpec};

    fn spec(p99_limit: Option<Num>) -> SloSpec {
        SloSpec {
            availability_target_pct: Num::float(99.9),
            p95_threshold_ms: Num::int(500),
            p99_threshold_ms: p99_limit,
            burn: BurnThresholds::default(),
        }
    }

    fn metrics(service: &str, p99: Option<Num>) -> MetricsSnapshot {
        MetricsSnapshot {
            service: service.into(),
            total_requests: 1_000_000,
            failed_requests: 500,
            latency_p95_ms: Num::int(480),
            latency_p99_ms: p99,
            hourly_burn_rate: vec![crate::pyround::PyNumber::Float(0.5); 3],
            collected_at: None,
            count_literals: Default::default(),
        }
    }

    fn file_slo(service: &str, p99: Option<Num>, p99_limit: Option<Num>) -> SloReport {
        slo::evaluate(&spec(p99_limit), &metrics(service, p99)).expect("valid metrics")
    }

    fn full_slo() -> SloReport {
        file_slo("checkout-api", Some(Num::int(890)), Some(Num::int(1000)))
    }

    /// An SLO report from a Prometheus observation: with or without data, with or without a
    /// latency source.
    fn live_slo(data: bool, latency: bool) -> SloReport {
        let cfg = BurnConfig::default();
        let now: jiff::Timestamp = "2026-12-01T06:00:00Z".parse().expect("time");
        let counts = if data {
            cfg.ranges().into_iter().map(|w| (w, Counts { errors: 0.0, total: 10.0 * w.0 as f64 })).collect()
        } else {
            Default::default()
        };
        let obs = Observation {
            service: "checkout-api".into(),
            evaluated_at: now,
            counts,
            latency_p95_ms: latency.then_some(400.0),
            latency_p99_ms: latency.then_some(700.0),
            newest_sample_at: Some(now),
            problems: if data { vec![] } else { vec!["query counts: HTTP 503".into()] },
            latency_unavailable: (!latency).then(|| "the SLO spec names no latency source".to_string()),
        };
        burn::evaluate(&spec(Some(Num::int(1000))), &cfg, &obs).expect("a report")
    }

    fn cost_report(budget: Option<f64>, baseline_days: u32) -> CostReport {
        let start = jiff::civil::date(2026, 1, 1);
        let series = CostSeries {
            service: "checkout-api".into(),
            currency: "USD".into(),
            budget_usd_monthly: budget,
            daily: (0..14)
                .map(|i| DailyCost { date: start.checked_add(jiff::Span::new().days(i)).expect("date"), cost: 100.0 })
                .collect(),
            cost_breakdown: serde_json::json!({}),
            collected_at: None,
            estimated_days: vec![],
        };
        let t = CostThresholds { anomaly_baseline_days: baseline_days, ..CostThresholds::default() };
        cost::analyse(&series, &t).expect("a valid series")
    }

    fn with_windows(mut s: Signals) -> Signals {
        crate::freeze::apply(&crate::freeze::status(&[], "2026-12-01T06:00:00Z".parse().expect("time")), &mut s);
        s
    }

    /// Every source present.
    fn full() -> Signals {
        with_windows(Signals::from_reports(&full_slo(), &cost_report(Some(2800.0), 7)))
    }

    /// What a signal is when its source is missing.
    enum Missing {
        /// Unavailable in this evaluation, with a reason containing the text.
        Unavailable(fn() -> Signals, &'static str),
        /// Not set at all (a rule reading it cannot decide: "not provided by the inputs").
        Absent(fn() -> Signals),
        /// Always known when the inputs parse at all; the text says why.
        AlwaysKnown(&'static str),
    }

    fn no_prometheus_data() -> Signals {
        Signals::from_reports(&live_slo(false, true), &cost_report(Some(2800.0), 7))
    }
    fn no_latency_source() -> Signals {
        Signals::from_reports(&live_slo(true, false), &cost_report(Some(2800.0), 7))
    }
    fn no_p99_in_metrics() -> Signals {
        Signals::from_reports(&file_slo("checkout-api", None, Some(Num::int(1000))), &cost_report(Some(2800.0), 7))
    }
    fn no_p99_limit() -> Signals {
        Signals::from_reports(&file_slo("checkout-api", Some(Num::int(890)), None), &cost_report(Some(2800.0), 7))
    }
    fn no_service() -> Signals {
        Signals::from_reports(&file_slo("unknown", Some(Num::int(890)), None), &cost_report(Some(2800.0), 7))
    }
    fn no_budget() -> Signals {
        Signals::from_reports(&full_slo(), &cost_report(None, 7))
    }
    fn zero_budget() -> Signals {
        Signals::from_reports(&full_slo(), &cost_report(Some(0.0), 7))
    }
    fn short_series() -> Signals {
        Signals::from_reports(&full_slo(), &cost_report(Some(2800.0), 28))
    }
    fn no_policy_windows() -> Signals {
        Signals::from_reports(&full_slo(), &cost_report(Some(2800.0), 7))
    }

    #[test]
    fn every_signal_is_its_value_or_unavailable_never_a_default() {
        use Missing::*;
        use SignalValue::{Bool, Number, Text};
        let t = |s: &str| Text(s.to_string());
        let no_data = Unavailable(no_prometheus_data, "no data from");
        let cases: Vec<(&str, SignalValue, Missing)> = vec![
            ("error_budget_pct", Number(50.0), no_data),
            ("burn_rate", t("low"), Unavailable(no_prometheus_data, "HTTP 503")),
            ("availability_pct", Number(99.95), Unavailable(no_prometheus_data, "no data from")),
            ("latency_compliant", Bool(true), Unavailable(no_latency_source, "names no latency source")),
            ("cost_spike_pct", Number(0.0), AlwaysKnown("a series that cannot be compared is an error (exit 3)")),
            ("cost_spike_detected", Bool(false), AlwaysKnown("from the week-over-week change")),
            ("cost_trend", t("stable"), AlwaysKnown("from the week-over-week change")),
            ("burn_rate_value", Number(0.5), Unavailable(no_prometheus_data, "no data from")),
            ("latency_p95_ms", Number(480.0), Unavailable(no_latency_source, "names no latency source")),
            ("latency_p99_ms", Number(890.0), Unavailable(no_p99_in_metrics, "no p99 latency")),
            ("latency_p99_compliant", Bool(true), Unavailable(no_p99_limit, "p99_threshold_ms is not set")),
            ("availability_compliant", Bool(true), Unavailable(no_prometheus_data, "no data from")),
            ("cost_budget_utilisation_pct", Number(50.0), Unavailable(no_budget, "no monthly budget")),
            ("service", t("checkout-api"), Unavailable(no_service, "name no service")),
            ("no_data", Bool(false), AlwaysKnown("it is the availability of the SLO source itself")),
            ("burn_rate_insufficient_data", Bool(false), Unavailable(no_prometheus_data, "no data from")),
            ("cost_anomaly_score", Number(0.0), Unavailable(short_series, "needs 28")),
            ("cost_has_estimated_days", Bool(false), AlwaysKnown("whether the source marks any day as estimated")),
            ("in_freeze", Bool(false), Absent(no_policy_windows)),
            ("freeze_name", t(""), Absent(no_policy_windows)),
            ("in_maintenance", Bool(false), Absent(no_policy_windows)),
            ("maintenance_name", t(""), Absent(no_policy_windows)),
        ];
        let names: Vec<&str> = cases.iter().map(|c| c.0).collect();
        let catalogue: Vec<&str> = CATALOGUE.iter().map(|d| d.name).collect();
        assert_eq!(names, catalogue, "one case per catalogue signal, in catalogue order");
        let present = full();
        for (name, value, missing) in cases {
            assert_eq!(present.get(name), Some(&value), "{name} with every source present");
            match missing {
                Unavailable(scenario, why) => match scenario().get(name) {
                    Some(SignalValue::Unavailable(reason)) => assert!(reason.contains(why), "{name}: {reason}"),
                    other => panic!("{name} without its source: expected unavailable ({why}), got {other:?}"),
                },
                Absent(scenario) => assert_eq!(scenario().get(name), None, "{name}"),
                AlwaysKnown(why) => assert!(!why.is_empty(), "{name}: say why it is always known"),
            }
        }
        // A budget of 0 is no budget to measure against either.
        match zero_budget().get("cost_budget_utilisation_pct") {
            Some(SignalValue::Unavailable(reason)) => assert!(reason.contains("budget is 0"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
