//! Cost analysis: week-over-week change of a daily spend series.
//!
//! Same formulas and rounding as the seed tool (reference note §1.2) on every series it
//! handled correctly. Where it did not, Guardrail differs on purpose, and says so:
//! - windows are **calendar days** ending at the newest date, not record counts: the current
//!   week is the 7 days ending at the newest date, the previous week the 7 days before it;
//! - dates are parsed (ISO `YYYY-MM-DD`) and sorted as dates, never as strings;
//! - fewer than 14 days, a gap, a duplicate date, or a negative or non-finite cost is an
//!   error, never an overlapping window or a silent `0 %`;
//! - a previous week that sums to zero makes the change undefined: an error, not `0 %`.
//!
//! Besides week-over-week, [`anomaly_score`] gives a robust score of the newest day against
//! a baseline of the days before it (median and MAD), and days the source marks as estimated
//! (AWS Cost Explorer's `Estimated: true`) are carried through to the report: they are used
//! like any other day, never dropped, so an estimate cannot hide a spike.

use jiff::civil::Date;
use serde::Serialize;

use crate::pyround::{py_round, py_sum_floats};

/// One day's spend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DailyCost {
    /// Calendar day (UTC).
    #[schemars(with = "String")]
    pub date: Date,
    /// Spend that day, in the series currency.
    pub cost: f64,
}

/// A service's daily spend (`data/cost.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct CostSeries {
    /// Service name (`"unknown"` when absent, as in the seed tool).
    pub service: String,
    /// Currency code (`"USD"` when absent).
    pub currency: String,
    /// Monthly budget, when the source states one (`cost.json`'s `budget_usd_monthly`).
    /// `None` — e.g. every billing export — makes the utilisation *unavailable*, never 0 %.
    pub budget_usd_monthly: Option<f64>,
    /// The records in file order; [`analyse`] sorts them by date.
    pub daily: Vec<DailyCost>,
    /// Passed through to reports untouched.
    pub cost_breakdown: serde_json::Value,
    /// When the series was exported, when the file says.
    pub collected_at: Option<jiff::Timestamp>,
    /// Days the source marks as estimated, not final (AWS Cost Explorer `Estimated: true`).
    /// They are analysed like every other day and reported in [`CostReport::estimated_days`].
    pub estimated_days: Vec<Date>,
}

/// Week-over-week thresholds in percent (`COST_WARN_PCT`, `COST_BLOCK_PCT`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CostThresholds {
    /// At or above: trend `rising` and `spike_detected`.
    pub warn_pct: f64,
    /// At or above: trend `spiking`.
    pub block_pct: f64,
    /// At or below: trend `falling` (the seed hard-coded −10).
    pub falling_pct: f64,
    /// Days before the newest one that form the anomaly score's baseline
    /// (`--cost-baseline-days`, default [`DEFAULT_BASELINE_DAYS`]).
    pub anomaly_baseline_days: u32,
}

/// Default anomaly baseline: the 28 days before the newest day.
pub const DEFAULT_BASELINE_DAYS: u32 = 28;

impl Default for CostThresholds {
    fn default() -> Self {
        CostThresholds {
            warn_pct: 20.0,
            block_pct: 30.0,
            falling_pct: -10.0,
            anomaly_baseline_days: DEFAULT_BASELINE_DAYS,
        }
    }
}

/// Why a cost series cannot be analysed. `field` is a path in the seed layout.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CostError {
    /// Dotted field path, e.g. `daily_costs[3].cost`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl CostError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CostError { field: field.into(), reason: reason.into() }
    }
}

/// Cost trend label used by policies (`cost_trend` signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CostTrend {
    /// Between the falling and warn thresholds.
    Stable,
    /// At or above warn, below block.
    Rising,
    /// At or above block.
    Spiking,
    /// At or below the falling threshold.
    Falling,
}

impl CostTrend {
    /// The label as policies spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            CostTrend::Stable => "stable",
            CostTrend::Rising => "rising",
            CostTrend::Spiking => "spiking",
            CostTrend::Falling => "falling",
        }
    }
    /// Every label.
    pub const ALL: [CostTrend; 4] = [CostTrend::Stable, CostTrend::Rising, CostTrend::Spiking, CostTrend::Falling];
}

/// Supporting figures, in the seed tool's `details` order.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CostDetails {
    /// Currency code.
    pub currency: String,
    /// Previous-week mean, 2 dp.
    pub prev_week_avg: f64,
    /// Current-week mean, 2 dp.
    pub curr_week_avg: f64,
    /// Week-over-week change, 2 dp.
    pub wow_change_pct: f64,
    /// Passed through from the input.
    pub cost_breakdown: serde_json::Value,
    /// Warn threshold in force.
    pub warn_threshold: f64,
    /// Block threshold in force.
    pub block_threshold: f64,
}

/// A calendar window, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Window {
    /// First day.
    #[schemars(with = "String")]
    pub start: Date,
    /// Last day.
    #[schemars(with = "String")]
    pub end: Date,
}

/// The evaluated cost block: the seed tool's keys and order, then Guardrail's additions.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CostReport {
    /// Service name.
    pub service: String,
    /// Current-week mean per day, 2 dp.
    pub current_week_avg_usd: f64,
    /// Previous-week mean per day, 2 dp.
    pub previous_week_avg_usd: f64,
    /// Change from the unrounded means, 2 dp.
    pub wow_change_pct: f64,
    /// Trend label.
    pub trend: CostTrend,
    /// Change at or above the warn threshold.
    pub spike_detected: bool,
    /// Monthly budget (`null` when the source states none).
    pub budget_usd: Option<f64>,
    /// Sum of every record in the series, 2 dp (the seed's name; not month-to-date).
    pub mtd_spend_usd: f64,
    /// `mtd_spend_usd` over the budget in percent, 2 dp; `null` when there is no budget or
    /// it is 0 (then [`CostReport::budget_unavailable`] says why). The seed wrote 0 %, which
    /// let a budget rule pass on data that has no budget at all.
    pub budget_utilisation_pct: Option<f64>,
    /// Supporting figures.
    pub details: CostDetails,
    /// The current calendar week.
    pub current_week: Window,
    /// The previous calendar week.
    pub previous_week: Window,
    /// Spend within the calendar month of the newest day, 2 dp.
    pub month_to_date_usd: f64,
    /// The whole series sorted by date, for charts.
    pub daily_costs: Vec<DailyCost>,
    /// Days of the series the source marks as estimated (sorted; empty when none).
    #[schemars(with = "Vec<String>")]
    pub estimated_days: Vec<Date>,
    /// The robust anomaly score of the newest day.
    pub anomaly: Anomaly,
    /// Why `budget_utilisation_pct` is `null` (absent when it has a value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_unavailable: Option<String>,
}

/// Why no budget utilisation can be computed for a series without a monthly budget.
pub const NO_BUDGET: &str = "the cost data states no monthly budget (budget_usd_monthly in cost.json; billing \
                             exports carry none), so the budget utilisation is not known";

/// Why there is no budget utilisation ([`budget_utilisation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoUtilisation {
    /// The cost data states no monthly budget.
    #[error("{}", NO_BUDGET)]
    NoBudget,
    /// The monthly budget is 0.
    #[error("the monthly budget is 0, so the budget utilisation is undefined")]
    ZeroBudget,
}

/// Utilisation of `budget` by `spend` in percent, 2 dp (the seed's formula), or why there is
/// none: no budget, or a budget of 0 (any spend over nothing is undefined, not 0 %).
pub fn budget_utilisation(spend: f64, budget: Option<f64>) -> Result<f64, NoUtilisation> {
    match budget {
        None => Err(NoUtilisation::NoBudget),
        Some(b) if b > 0.0 => Ok(py_round(spend / b * 100.0, 2)),
        Some(_) => Err(NoUtilisation::ZeroBudget),
    }
}

/// Bound on the anomaly score's magnitude: scores are clamped to ±`ANOMALY_SCORE_CAP`, which
/// is also what a change from a constant baseline scores (see [`anomaly_score`]).
pub const ANOMALY_SCORE_CAP: f64 = 1000.0;

/// The MAD scale factor for normally distributed data (1/Φ⁻¹(3/4)).
pub const MAD_SCALE: f64 = 1.4826;

/// Mean absolute deviation scale factor used when the MAD is 0 (√(π/2), as in the modified
/// z-score of Iglewicz and Hoaglin).
pub const MEAN_AD_SCALE: f64 = 1.2533;

/// How the spread of the baseline was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyScale {
    /// `1.4826 × MAD`.
    Mad,
    /// The MAD is 0 (more than half the baseline days are equal): `1.2533 × mean absolute
    /// deviation from the median`.
    MeanAbsoluteDeviation,
    /// Every baseline day is the same amount: no spread at all. The score is 0 when the newest
    /// day equals it and ±[`ANOMALY_SCORE_CAP`] otherwise.
    ConstantBaseline,
}

/// The anomaly score of the newest day against the days before it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Anomaly {
    /// Baseline length asked for.
    pub baseline_days: u32,
    /// The newest day.
    #[schemars(with = "String")]
    pub latest_date: Date,
    /// Its spend.
    pub latest: f64,
    /// The baseline window (the `baseline_days` days before the newest), when there are enough
    /// days.
    pub baseline: Option<Window>,
    /// Median of the baseline, 2 dp.
    pub median: Option<f64>,
    /// Median absolute deviation from the median, 2 dp.
    pub mad: Option<f64>,
    /// How the spread was measured.
    pub scale_method: Option<AnomalyScale>,
    /// `(latest − median) / scale`, 2 dp, clamped to ±[`ANOMALY_SCORE_CAP`]; `None` when the
    /// series is shorter than the baseline (then `unavailable` says why).
    pub score: Option<f64>,
    /// Why there is no score.
    pub unavailable: Option<String>,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

fn sorted(xs: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = xs.collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Robust anomaly score of the newest day of a date-sorted, gap-free series (as returned by
/// [`normalise`]): `(latest − median) / (1.4826 · MAD)` over the `baseline_days` days before
/// the newest. A MAD of 0 is handled explicitly (see [`AnomalyScale`]); the score is always a
/// finite number. Fewer days than `1 + baseline_days`, or a baseline of 0 days, gives no score.
pub fn anomaly_score(days: &[DailyCost], baseline_days: u32) -> Option<Anomaly> {
    let (last, before) = days.split_last()?;
    let mut a = Anomaly {
        baseline_days,
        latest_date: last.date,
        latest: last.cost,
        baseline: None,
        median: None,
        mad: None,
        scale_method: None,
        score: None,
        unavailable: None,
    };
    let n = baseline_days as usize;
    if n < 3 {
        a.unavailable = Some(format!("a baseline of {baseline_days} day(s) is too short; at least 3 are needed"));
        return Some(a);
    }
    if before.len() < n {
        a.unavailable = Some(format!(
            "the series has {} day(s) before {}; the anomaly baseline needs {n}",
            before.len(),
            last.date
        ));
        return Some(a);
    }
    let base = &before[before.len() - n..];
    let vals = sorted(base.iter().map(|d| d.cost));
    let med = median(&vals);
    let mad = median(&sorted(vals.iter().map(|v| (v - med).abs())));
    let diff = last.cost - med;
    let (method, score) = if mad > 0.0 {
        (AnomalyScale::Mad, diff / (MAD_SCALE * mad))
    } else {
        let deviations: Vec<f64> = vals.iter().map(|v| (v - med).abs()).collect();
        let mean_ad = py_sum_floats(&deviations) / vals.len() as f64;
        if mean_ad > 0.0 {
            (AnomalyScale::MeanAbsoluteDeviation, diff / (MEAN_AD_SCALE * mean_ad))
        } else if diff == 0.0 {
            (AnomalyScale::ConstantBaseline, 0.0)
        } else {
            (AnomalyScale::ConstantBaseline, ANOMALY_SCORE_CAP.copysign(diff))
        }
    };
    a.baseline = Some(Window { start: base[0].date, end: base[n - 1].date });
    a.median = Some(py_round(med, 2));
    a.mad = Some(py_round(mad, 2));
    a.scale_method = Some(method);
    a.score = Some(py_round(score.clamp(-ANOMALY_SCORE_CAP, ANOMALY_SCORE_CAP), 2));
    Some(a)
}

/// Days in the two compared windows.
pub const WINDOW_DAYS: usize = 7;

/// `sum(xs) / len(xs)` as the seed's Python 3.12 runtime computes it (compensated sum).
fn mean(xs: &[f64]) -> f64 {
    py_sum_floats(xs) / xs.len() as f64
}

/// Sorts and checks a series, returning it in date order.
pub fn normalise(series: &CostSeries) -> Result<Vec<DailyCost>, CostError> {
    if series.daily.is_empty() {
        return Err(CostError::new("daily_costs", "is empty: no spend to compare"));
    }
    for (i, d) in series.daily.iter().enumerate() {
        if !d.cost.is_finite() {
            return Err(CostError::new(
                format!("daily_costs[{i}].cost"),
                format!("must be a finite amount, got {}", d.cost),
            ));
        }
        if d.cost < 0.0 {
            return Err(CostError::new(
                format!("daily_costs[{i}].cost"),
                format!("must not be negative, got {}", d.cost),
            ));
        }
    }
    let mut days = series.daily.clone();
    days.sort_by_key(|d| d.date);
    for pair in days.windows(2) {
        let (a, b) = (pair[0].date, pair[1].date);
        if a == b {
            return Err(CostError::new("daily_costs", format!("date {a} appears more than once")));
        }
        let next = a.tomorrow().map_err(|e| CostError::new("daily_costs", e.to_string()))?;
        if next != b {
            return Err(CostError::new("daily_costs", format!("gap in the series: no record between {a} and {b}")));
        }
    }
    if days.len() < 2 * WINDOW_DAYS {
        return Err(CostError::new(
            "daily_costs",
            format!("has {} day(s); week-over-week needs at least {} consecutive days", days.len(), 2 * WINDOW_DAYS),
        ));
    }
    Ok(days)
}

/// Trend label for a week-over-week change.
pub fn trend_for(wow: f64, t: &CostThresholds) -> CostTrend {
    if wow >= t.block_pct {
        CostTrend::Spiking
    } else if wow >= t.warn_pct {
        CostTrend::Rising
    } else if wow <= t.falling_pct {
        CostTrend::Falling
    } else {
        CostTrend::Stable
    }
}

/// Analyses a series with the given thresholds.
pub fn analyse(series: &CostSeries, t: &CostThresholds) -> Result<CostReport, CostError> {
    if !(t.warn_pct.is_finite() && t.block_pct.is_finite() && t.falling_pct.is_finite()) {
        return Err(CostError::new("thresholds", "cost thresholds must be finite numbers"));
    }
    if t.warn_pct > t.block_pct {
        return Err(CostError::new(
            "thresholds",
            format!("warn threshold {} is above block threshold {}", t.warn_pct, t.block_pct),
        ));
    }
    if let Some(b) = series.budget_usd_monthly
        && (!b.is_finite() || b < 0.0)
    {
        return Err(CostError::new("budget_usd_monthly", format!("must be a finite, non-negative amount, got {b}")));
    }
    let days = normalise(series)?;
    let n = days.len();
    let amounts: Vec<f64> = days.iter().map(|d| d.cost).collect();
    let prev = &amounts[n - 2 * WINDOW_DAYS..n - WINDOW_DAYS];
    let curr = &amounts[n - WINDOW_DAYS..];
    let prev_avg = mean(prev);
    let curr_avg = mean(curr);
    if prev_avg <= 0.0 {
        return Err(CostError::new(
            "daily_costs",
            format!(
                "the previous week ({} to {}) has no spend, so the week-over-week change is undefined",
                days[n - 2 * WINDOW_DAYS].date,
                days[n - WINDOW_DAYS - 1].date
            ),
        ));
    }
    let wow = py_round((curr_avg - prev_avg) / prev_avg * 100.0, 2);
    let mtd = py_round(py_sum_floats(&amounts), 2);
    let utilisation = budget_utilisation(mtd, series.budget_usd_monthly);
    let newest = days[n - 1].date;
    let this_month: Vec<f64> = days
        .iter()
        .filter(|d| d.date.year() == newest.year() && d.date.month() == newest.month())
        .map(|d| d.cost)
        .collect();
    let month_total = py_sum_floats(&this_month);
    let trend = trend_for(wow, t);
    let anomaly = anomaly_score(&days, t.anomaly_baseline_days)
        .ok_or_else(|| CostError::new("daily_costs", "is empty: no spend to compare"))?;
    let mut estimated: Vec<Date> = series.estimated_days.clone();
    estimated.sort();
    estimated.dedup();
    Ok(CostReport {
        service: series.service.clone(),
        current_week_avg_usd: py_round(curr_avg, 2),
        previous_week_avg_usd: py_round(prev_avg, 2),
        wow_change_pct: wow,
        trend,
        spike_detected: wow >= t.warn_pct,
        budget_usd: series.budget_usd_monthly,
        mtd_spend_usd: mtd,
        budget_utilisation_pct: utilisation.as_ref().ok().copied(),
        details: CostDetails {
            currency: series.currency.clone(),
            prev_week_avg: py_round(prev_avg, 2),
            curr_week_avg: py_round(curr_avg, 2),
            wow_change_pct: wow,
            cost_breakdown: series.cost_breakdown.clone(),
            warn_threshold: t.warn_pct,
            block_threshold: t.block_pct,
        },
        current_week: Window { start: days[n - WINDOW_DAYS].date, end: newest },
        previous_week: Window { start: days[n - 2 * WINDOW_DAYS].date, end: days[n - WINDOW_DAYS - 1].date },
        month_to_date_usd: py_round(month_total, 2),
        daily_costs: days,
        estimated_days: estimated,
        anomaly,
        // The report carries the sentence: it is a wire field of the JSON output and the API.
        budget_unavailable: utilisation.err().map(|e| e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(costs: &[f64]) -> Vec<DailyCost> {
        let start = jiff::civil::date(2026, 1, 1);
        costs
            .iter()
            .enumerate()
            .map(|(i, c)| DailyCost { date: start.checked_add(jiff::Span::new().days(i as i64)).unwrap(), cost: *c })
            .collect()
    }

    #[test]
    fn anomaly_score_is_median_over_scaled_mad() {
        // Baseline 10, 12, 14, 16, 18: median 14, deviations 4 2 0 2 4 → MAD 2.
        let a = anomaly_score(&days(&[10.0, 12.0, 14.0, 16.0, 18.0, 20.0]), 5).unwrap();
        assert_eq!(a.median, Some(14.0));
        assert_eq!(a.mad, Some(2.0));
        assert_eq!(a.scale_method, Some(AnomalyScale::Mad));
        // (20 − 14) / (1.4826 × 2) = 2.0235…
        assert_eq!(a.score, Some(2.02));
        assert_eq!(a.baseline.unwrap().start, jiff::civil::date(2026, 1, 1));
        assert_eq!(a.baseline.unwrap().end, jiff::civil::date(2026, 1, 5));
    }

    #[test]
    fn baseline_is_the_days_before_the_newest() {
        // The first day is outside a 3-day baseline: 1000 must not move the median.
        let a = anomaly_score(&days(&[1000.0, 10.0, 11.0, 12.0, 11.0]), 3).unwrap();
        assert_eq!(a.median, Some(11.0));
        assert_eq!(a.score, Some(0.0));
    }

    #[test]
    fn zero_mad_falls_back_to_mean_absolute_deviation() {
        // 10 ×4 and 20: MAD 0, mean absolute deviation 2.
        let a = anomaly_score(&days(&[10.0, 10.0, 10.0, 10.0, 20.0, 30.0]), 5).unwrap();
        assert_eq!(a.mad, Some(0.0));
        assert_eq!(a.scale_method, Some(AnomalyScale::MeanAbsoluteDeviation));
        // (30 − 10) / (1.2533 × 2) = 7.978…
        assert_eq!(a.score, Some(7.98));
    }

    #[test]
    fn constant_baseline_scores_zero_or_the_cap_never_nan() {
        let same = anomaly_score(&days(&[10.0; 6]), 5).unwrap();
        assert_eq!((same.scale_method, same.score), (Some(AnomalyScale::ConstantBaseline), Some(0.0)));
        let up = anomaly_score(&days(&[10.0, 10.0, 10.0, 10.0, 10.0, 10.01]), 5).unwrap();
        assert_eq!(up.score, Some(ANOMALY_SCORE_CAP));
        let down = anomaly_score(&days(&[10.0, 10.0, 10.0, 10.0, 10.0, 0.0]), 5).unwrap();
        assert_eq!(down.score, Some(-ANOMALY_SCORE_CAP));
    }

    #[test]
    fn short_series_has_no_score_and_says_why() {
        let a = anomaly_score(&days(&[1.0; 14]), 28).unwrap();
        assert_eq!(a.score, None);
        assert!(a.unavailable.unwrap().contains("needs 28"));
        let tiny = anomaly_score(&days(&[1.0; 14]), 2).unwrap();
        assert!(tiny.unavailable.unwrap().contains("too short"));
    }

    #[test]
    fn huge_scores_are_clamped() {
        let mut c = vec![10.0, 10.1, 10.0, 10.1, 10.0];
        c.push(1e12);
        assert_eq!(anomaly_score(&days(&c), 5).unwrap().score, Some(ANOMALY_SCORE_CAP));
    }

    #[test]
    fn estimated_days_are_reported_and_still_counted() {
        let mut costs = vec![50.0; 28];
        costs.push(500.0);
        let d = days(&costs);
        let last = d[28].date;
        let series = CostSeries {
            service: "s".into(),
            currency: "USD".into(),
            budget_usd_monthly: None,
            daily: d,
            cost_breakdown: serde_json::json!({}),
            collected_at: None,
            estimated_days: vec![last, last],
        };
        let r = analyse(&series, &CostThresholds::default()).unwrap();
        assert_eq!(r.estimated_days, vec![last]);
        assert!(r.spike_detected, "the estimated spike day still counts");
        assert_eq!(r.anomaly.score, Some(ANOMALY_SCORE_CAP));
    }

    #[test]
    fn utilisation_is_unavailable_without_a_budget_never_zero() {
        let series = |budget| CostSeries {
            service: "s".into(),
            currency: "USD".into(),
            budget_usd_monthly: budget,
            daily: days(&[100.0; 14]),
            cost_breakdown: serde_json::json!({}),
            collected_at: None,
            estimated_days: vec![],
        };
        let t = CostThresholds::default();
        let r = analyse(&series(None), &t).unwrap();
        assert_eq!((r.budget_usd, r.budget_utilisation_pct), (None, None));
        assert!(r.budget_unavailable.as_deref().unwrap().contains("no monthly budget"), "{r:?}");
        let r = analyse(&series(Some(0.0)), &t).unwrap();
        assert_eq!(r.budget_utilisation_pct, None);
        assert!(r.budget_unavailable.as_deref().unwrap().contains("budget is 0"), "{r:?}");
        let r = analyse(&series(Some(1000.0)), &t).unwrap();
        assert_eq!((r.budget_usd, r.budget_utilisation_pct, r.budget_unavailable), (Some(1000.0), Some(140.0), None));
        assert!(analyse(&series(Some(-1.0)), &t).is_err());
    }
}
