//! SLO maths: availability, error budget left, burn-rate label and latency compliance.
//!
//! The formulas, their order of operations and the rounding reproduce the seed tool
//! (reference note §1.1) so that every valid input gives the same numbers. What the seed did
//! with impossible input (zero traffic counted as 100 % available, negative counts giving more
//! than 100 % budget, an empty burn series crashing) is refused here with an [`SloError`]
//! naming the field, so the gate can fail closed.

use serde::Serialize;

use crate::pyround::{PyNumber, py_int_true_div, py_round, py_sum};

/// A number read from a file that remembers whether it was written as an integer, so that
/// reports echo `480` as `480` and `99.9` as `99.9`, as the seed tool did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num {
    /// The value as a float (all maths uses this).
    pub value: f64,
    /// True when the source wrote an integer literal.
    pub integer: bool,
}

impl Num {
    /// A number that was written as a float.
    pub fn float(value: f64) -> Self {
        Num { value, integer: false }
    }
    /// A number that was written as an integer.
    pub fn int(value: i64) -> Self {
        Num { value: value as f64, integer: true }
    }
}

impl Serialize for Num {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.integer && self.value.fract() == 0.0 && self.value.abs() < 9.0e15 {
            s.serialize_i64(self.value as i64)
        } else {
            s.serialize_f64(self.value)
        }
    }
}

/// A JSON number (an integer when the file wrote one).
impl schemars::JsonSchema for Num {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Number".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "number" })
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.integer && self.value.fract() == 0.0 {
            write!(f, "{}", self.value as i64)
        } else {
            write!(f, "{}", self.value)
        }
    }
}

/// Burn-rate thresholds (multiples of the sustainable rate), checked top-down with `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct BurnThresholds {
    /// At or above this the label is `medium`.
    pub medium: f64,
    /// At or above this the label is `high`.
    pub high: f64,
    /// At or above this the label is `critical`.
    pub critical: f64,
}

impl Default for BurnThresholds {
    /// The seed tool's defaults when `burn_rate.thresholds` is absent.
    fn default() -> Self {
        BurnThresholds { medium: 2.0, high: 5.0, critical: 10.0 }
    }
}

/// The service-level objectives one service is held to (`config/slos.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct SloSpec {
    /// Availability target in percent, e.g. 99.9. Must be in (0, 100].
    pub availability_target_pct: Num,
    /// p95 latency limit in milliseconds (a p95 equal to the limit passes).
    pub p95_threshold_ms: Num,
    /// p99 latency limit in milliseconds; the seed tool ignored it, Guardrail exposes
    /// `latency_p99_compliant` when it is set.
    pub p99_threshold_ms: Option<Num>,
    /// Burn-rate label thresholds.
    pub burn: BurnThresholds,
}

/// One service's measured signals over the SLO window (`data/metrics.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Service name (`"unknown"` when the file has none, as in the seed tool).
    pub service: String,
    /// Requests over the window.
    pub total_requests: u64,
    /// Failed requests over the window.
    pub failed_requests: u64,
    /// Observed p95 latency in milliseconds.
    pub latency_p95_ms: Num,
    /// Observed p99 latency in milliseconds, when reported.
    pub latency_p99_ms: Option<Num>,
    /// Burn-rate multipliers, oldest first (the seed tool's `hourly_burn_rate`), each an int
    /// or a float as written: Python 3.12's `sum()` treats the two differently.
    pub hourly_burn_rate: Vec<PyNumber>,
    /// When the snapshot was taken, when the file says.
    pub collected_at: Option<jiff::Timestamp>,
    /// How `total_requests` and `failed_requests` were written.
    pub count_literals: CountLiterals,
}

/// How a count was written in the file. The seed's Python keeps an integer literal an exact
/// `int` (two ints divide exactly, correctly rounded) but computes with a float literal such
/// as `2592000.0` in floating point; Guardrail does the same with each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountLiteral {
    /// Written as an integer (`2592000`).
    #[default]
    Integer,
    /// Written as a whole-number float (`2592000.0`, `2.592e6`).
    Float,
}

/// How `total_requests` and `failed_requests` were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CountLiterals {
    /// `total_requests`.
    pub total: CountLiteral,
    /// `failed_requests`.
    pub failed: CountLiteral,
}

/// Why a snapshot or spec cannot be evaluated. `field` is the path of the offending field in
/// the seed file layout, so an adapter can say which file and field is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SloError {
    /// Dotted field path, e.g. `failed_requests` or `slos.availability.target`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl SloError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        SloError { field: field.to_string(), reason: reason.into() }
    }
}

/// The burn-rate label used by policies (`burn_rate` signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BurnLabel {
    /// Below the medium threshold.
    Low,
    /// At or above the medium threshold.
    Medium,
    /// At or above the high threshold.
    High,
    /// At or above the critical threshold.
    Critical,
}

impl BurnLabel {
    /// The label as policies spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            BurnLabel::Low => "low",
            BurnLabel::Medium => "medium",
            BurnLabel::High => "high",
            BurnLabel::Critical => "critical",
        }
    }

    /// Every label, lowest first.
    pub const ALL: [BurnLabel; 4] = [BurnLabel::Low, BurnLabel::Medium, BurnLabel::High, BurnLabel::Critical];
}

/// Extra figures carried in the SLO report, in the seed tool's `details` order.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SloDetails {
    /// Requests over the window.
    pub total_requests: u64,
    /// Failed requests over the window.
    pub failed_requests: u64,
    /// The availability target.
    pub availability_target_pct: Num,
    /// The p95 limit.
    pub latency_target_p95_ms: Num,
    /// Mean of every burn value, rounded to 2 dp.
    pub avg_burn_rate: f64,
    /// Mean of the last three burn values, rounded to 2 dp.
    pub recent_burn_rate: f64,
    /// The burn series as read.
    pub hourly_burn_rates: Vec<f64>,
    /// Service name.
    pub service: String,
    /// The p99 limit, when configured (Guardrail addition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_target_p99_ms: Option<Num>,
}

/// The evaluated SLO block, serialised with the seed tool's keys and order.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SloReport {
    /// Successful share of requests in percent, rounded to 6 dp.
    pub availability_pct: f64,
    /// Error budget left in percent, rounded to 2 dp, within [0, 100].
    pub error_budget_pct: f64,
    /// Burn label from the recent burn value.
    pub burn_rate: BurnLabel,
    /// Recent burn value (mean of the last three), rounded to 2 dp.
    pub burn_rate_value: f64,
    /// Observed p95.
    pub latency_p95_ms: Num,
    /// Observed p99 (`null` when the metrics do not report one; the seed tool copied p95).
    pub latency_p99_ms: Option<Num>,
    /// p95 at or below its limit.
    pub latency_compliant: bool,
    /// Availability at or above target.
    pub availability_compliant: bool,
    /// Availability and latency compliant, budget at least 20 %, label low or medium.
    pub healthy: bool,
    /// Supporting figures.
    pub details: SloDetails,
    /// p99 at or below its limit, when both are known (Guardrail addition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p99_compliant: Option<bool>,
    /// Burn-rate windows, tiers and data checks, when the counts came from a live source
    /// (`prometheus:` in `slos.yaml`); absent for a metrics file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<crate::burn::BurnReport>,
}

impl SloSpec {
    /// Checks the spec on its own: target in (0, 100], positive latency limits, and burn
    /// thresholds in strictly increasing order (medium < high < critical).
    pub fn validate(&self) -> Result<(), SloError> {
        let t = self.availability_target_pct.value;
        if !t.is_finite() || t <= 0.0 || t > 100.0 {
            return Err(SloError::new(
                "slos.availability.target",
                format!("must be a percentage in (0, 100], got {t}"),
            ));
        }
        let p95 = self.p95_threshold_ms.value;
        if !p95.is_finite() || p95 <= 0.0 {
            return Err(SloError::new(
                "slos.latency.p95_threshold_ms",
                format!("must be a positive number of milliseconds, got {p95}"),
            ));
        }
        if let Some(p99) = self.p99_threshold_ms {
            if !p99.value.is_finite() || p99.value <= 0.0 {
                return Err(SloError::new(
                    "slos.latency.p99_threshold_ms",
                    format!("must be a positive number of milliseconds, got {}", p99.value),
                ));
            }
            if p99.value < p95 {
                return Err(SloError::new(
                    "slos.latency.p99_threshold_ms",
                    format!("p99 limit {} is below the p95 limit {p95}", p99.value),
                ));
            }
        }
        let b = self.burn;
        for (name, v) in [("medium", b.medium), ("high", b.high), ("critical", b.critical)] {
            if !v.is_finite() || v < 0.0 {
                return Err(SloError::new(
                    &format!("burn_rate.thresholds.{name}"),
                    format!("must be a non-negative number, got {v}"),
                ));
            }
        }
        if !(b.medium < b.high && b.high < b.critical) {
            return Err(SloError::new(
                "burn_rate.thresholds",
                format!(
                    "thresholds must increase medium < high < critical, got medium {}, high {}, critical {}",
                    b.medium, b.high, b.critical
                ),
            ));
        }
        Ok(())
    }
}

impl MetricsSnapshot {
    /// Checks that the snapshot describes something possible: some traffic, no more failures
    /// than requests, a non-empty burn series of finite non-negative values, finite latencies.
    pub fn validate(&self) -> Result<(), SloError> {
        if self.total_requests == 0 {
            return Err(SloError::new(
                "total_requests",
                "is 0: with no traffic the availability and error budget are unknown",
            ));
        }
        if self.failed_requests > self.total_requests {
            return Err(SloError::new(
                "failed_requests",
                format!(
                    "{} failed requests is more than the {} total requests",
                    self.failed_requests, self.total_requests
                ),
            ));
        }
        for (field, v) in [
            ("latency_percentiles.p95_ms", Some(self.latency_p95_ms)),
            ("latency_percentiles.p99_ms", self.latency_p99_ms),
        ] {
            if let Some(v) = v
                && (!v.value.is_finite() || v.value < 0.0)
            {
                return Err(SloError::new(field, format!("must be a finite, non-negative latency, got {}", v.value)));
            }
        }
        if self.hourly_burn_rate.is_empty() {
            return Err(SloError::new("hourly_burn_rate", "is empty: the burn rate is unknown"));
        }
        for (i, v) in self.hourly_burn_rate.iter().enumerate() {
            let x = v.as_f64();
            if !x.is_finite() || x < 0.0 {
                return Err(SloError::new(
                    &format!("hourly_burn_rate[{i}]"),
                    format!("must be a finite, non-negative multiplier, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Label for a recent burn value, top-down with `>=` (the `low` threshold is never needed).
pub fn burn_label(recent: f64, t: &BurnThresholds) -> BurnLabel {
    if recent >= t.critical {
        BurnLabel::Critical
    } else if recent >= t.high {
        BurnLabel::High
    } else if recent >= t.medium {
        BurnLabel::Medium
    } else {
        BurnLabel::Low
    }
}

/// `sum(xs) / len(xs)` as the seed's runtime, Python 3.12, computes it: `sum()` is
/// compensated there for floats (Neumaier), not the left-to-right sum of 3.11 and earlier,
/// and a sum of ints stays an int, divided exactly.
fn mean(xs: &[PyNumber]) -> f64 {
    let len = xs.len() as i128;
    match py_sum(xs.iter().copied()) {
        PyNumber::Int(total) => py_int_true_div(total, len).unwrap_or(f64::NAN),
        PyNumber::Float(total) => total / len as f64,
    }
}

/// Availability in percent, rounded to 6 dp, for counts written as integers: Python divides
/// the two ints exactly (correctly rounded), also above 2^53 where `f64` counts would drift.
pub fn availability_pct(total: u64, failed: u64) -> f64 {
    availability_pct_as_written(total, failed, CountLiterals::default())
}

/// Availability in percent, rounded to 6 dp, in the seed's order of operations
/// (`round((max(0, total - failed) / total) * 100, 6)`) and with its number types: ints are
/// subtracted and divided exactly; a count written as a float makes the subtraction and the
/// division floating point, the int converted first, as Python does. `total` must be > 0.
pub fn availability_pct_as_written(total: u64, failed: u64, literals: CountLiterals) -> f64 {
    let as_python = |v: u64, literal| match literal {
        CountLiteral::Integer => PyNumber::Int(i128::from(v)),
        // The reader only accepts whole floats up to 2^63 - 1, so this is the float written.
        CountLiteral::Float => PyNumber::Float(v as f64),
    };
    let (t, f) = (as_python(total, literals.total), as_python(failed, literals.failed));
    // `max(0, total - failed)` keeps the int 0 unless the difference is positive.
    let success = match (t, f) {
        (PyNumber::Int(t), PyNumber::Int(f)) => PyNumber::Int((t - f).max(0)),
        _ => {
            let d = t.as_f64() - f.as_f64();
            if d > 0.0 { PyNumber::Float(d) } else { PyNumber::Int(0) }
        }
    };
    let ratio = match (success, t) {
        (PyNumber::Int(s), PyNumber::Int(t)) => py_int_true_div(s, t).unwrap_or(f64::NAN),
        _ => success.as_f64() / t.as_f64(),
    };
    py_round(ratio * 100.0, 6)
}

/// Error budget left in percent (2 dp, clamped to [0, 100]) from the rounded availability.
pub fn error_budget_pct(availability_pct: f64, target_pct: f64, failed: u64) -> f64 {
    let allowed_fail_pct = 100.0 - target_pct;
    let actual_fail_pct = 100.0 - availability_pct;
    let consumed = if allowed_fail_pct > 0.0 {
        actual_fail_pct / allowed_fail_pct * 100.0
    } else if failed > 0 {
        100.0
    } else {
        0.0
    };
    // The seed clamps only below; with validated counts the value never exceeds 100, but
    // clamping above too keeps the invariant true whatever the caller passes.
    py_round((100.0 - consumed).clamp(0.0, 100.0), 2)
}

/// Evaluates one snapshot against a spec. Both are validated first.
pub fn evaluate(spec: &SloSpec, m: &MetricsSnapshot) -> Result<SloReport, SloError> {
    spec.validate()?;
    m.validate()?;
    let availability = availability_pct_as_written(m.total_requests, m.failed_requests, m.count_literals);
    let target = spec.availability_target_pct.value;
    let budget = error_budget_pct(availability, target, m.failed_requests);

    let series = &m.hourly_burn_rate;
    let recent_slice = if series.len() >= 3 { &series[series.len() - 3..] } else { &series[..] };
    let recent = mean(recent_slice);
    let avg = mean(series);
    let label = burn_label(recent, &spec.burn);

    let latency_compliant = m.latency_p95_ms.value <= spec.p95_threshold_ms.value;
    let availability_compliant = availability >= target;
    let healthy = availability_compliant
        && latency_compliant
        && budget >= 20.0
        && matches!(label, BurnLabel::Low | BurnLabel::Medium);
    let latency_p99_compliant = match (m.latency_p99_ms, spec.p99_threshold_ms) {
        (Some(v), Some(limit)) => Some(v.value <= limit.value),
        _ => None,
    };

    Ok(SloReport {
        availability_pct: availability,
        error_budget_pct: budget,
        burn_rate: label,
        burn_rate_value: py_round(recent, 2),
        latency_p95_ms: m.latency_p95_ms,
        latency_p99_ms: m.latency_p99_ms,
        latency_compliant,
        availability_compliant,
        healthy,
        details: SloDetails {
            total_requests: m.total_requests,
            failed_requests: m.failed_requests,
            availability_target_pct: spec.availability_target_pct,
            latency_target_p95_ms: spec.p95_threshold_ms,
            avg_burn_rate: py_round(avg, 2),
            recent_burn_rate: py_round(recent, 2),
            hourly_burn_rates: series.iter().map(|v| v.as_f64()).collect(),
            service: m.service.clone(),
            latency_target_p99_ms: spec.p99_threshold_ms,
        },
        latency_p99_compliant,
        prometheus: None,
    })
}
