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

use jiff::civil::Date;
use serde::Serialize;

use crate::pyround::py_round;

/// One day's spend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DailyCost {
    /// Calendar day (UTC).
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
    /// Monthly budget (0 when absent: no utilisation is computed).
    pub budget_usd_monthly: f64,
    /// The records in file order; [`analyse`] sorts them by date.
    pub daily: Vec<DailyCost>,
    /// Passed through to reports untouched.
    pub cost_breakdown: serde_json::Value,
    /// When the series was exported, when the file says.
    pub collected_at: Option<jiff::Timestamp>,
}

/// Week-over-week thresholds in percent (`COST_WARN_PCT`, `COST_BLOCK_PCT`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostThresholds {
    /// At or above: trend `rising` and `spike_detected`.
    pub warn_pct: f64,
    /// At or above: trend `spiking`.
    pub block_pct: f64,
    /// At or below: trend `falling` (the seed hard-coded −10).
    pub falling_pct: f64,
}

impl Default for CostThresholds {
    fn default() -> Self {
        CostThresholds { warn_pct: 20.0, block_pct: 30.0, falling_pct: -10.0 }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    /// First day.
    pub start: Date,
    /// Last day.
    pub end: Date,
}

/// The evaluated cost block: the seed tool's keys and order, then Guardrail's additions.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// Monthly budget.
    pub budget_usd: f64,
    /// Sum of every record in the series, 2 dp (the seed's name; not month-to-date).
    pub mtd_spend_usd: f64,
    /// `mtd_spend_usd` over the budget in percent, 2 dp (0 without a budget).
    pub budget_utilisation_pct: f64,
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
}

/// Days in the two compared windows.
pub const WINDOW_DAYS: usize = 7;

fn mean(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for x in xs {
        s += x;
    }
    s / xs.len() as f64
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
    if !series.budget_usd_monthly.is_finite() || series.budget_usd_monthly < 0.0 {
        return Err(CostError::new(
            "budget_usd_monthly",
            format!("must be a finite, non-negative amount, got {}", series.budget_usd_monthly),
        ));
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
    let mut total = 0.0;
    for a in &amounts {
        total += a;
    }
    let mtd = py_round(total, 2);
    let utilisation =
        if series.budget_usd_monthly > 0.0 { py_round(mtd / series.budget_usd_monthly * 100.0, 2) } else { 0.0 };
    let newest = days[n - 1].date;
    let mut month_total = 0.0;
    for d in days.iter().filter(|d| d.date.year() == newest.year() && d.date.month() == newest.month()) {
        month_total += d.cost;
    }
    let trend = trend_for(wow, t);
    Ok(CostReport {
        service: series.service.clone(),
        current_week_avg_usd: py_round(curr_avg, 2),
        previous_week_avg_usd: py_round(prev_avg, 2),
        wow_change_pct: wow,
        trend,
        spike_detected: wow >= t.warn_pct,
        budget_usd: series.budget_usd_monthly,
        mtd_spend_usd: mtd,
        budget_utilisation_pct: utilisation,
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
    })
}
