//! Error-budget burn from raw event counts: the Google SRE Workbook's multi-window,
//! multi-burn-rate alerting arithmetic, as plain functions over data.
//!
//! An adapter (today `guardrail-prometheus`) reads, for each window, how many events failed
//! and how many there were in total ([`Counts`]), the p95/p99 latency and the time of the
//! newest sample, and hands them over as an [`Observation`]. [`evaluate`] turns that into the
//! usual [`SloReport`] (so policies see the same signals as with a metrics file) with a
//! [`BurnReport`] attached that holds every figure compared.
//!
//! Definitions (Workbook, chapter 5):
//! - error ratio over a window = errors / total;
//! - burn rate = error ratio / (1 − target), so 1× spends exactly the whole budget over the
//!   SLO period and 14.4× over one hour spends 14.4 · 1h / 30d = 2 % of it;
//! - a tier fires when the burn rate exceeds its factor over *both* its long and its short
//!   window (the short window makes the alert reset quickly once the problem stops).
//!
//! Fail-closed rules:
//! - A query error, an empty result, a sample older than the freshness limit, impossible
//!   numbers or no traffic at all over the period are **no data**: the SLO signals are
//!   unavailable and the `no_data` signal is true. [`check_decision`] then refuses an ALLOW
//!   or WARN unless the deciding rule tests `no_data`.
//! - A window with fewer events than its minimum is **insufficient**: its burn rate is not
//!   used. A tier is only *quiet* when a window with enough events proves it cannot fire; when
//!   a tier that could raise the label cannot be decided, the `burn_rate` label is unavailable
//!   and `burn_rate_insufficient_data` is true — never a silent `low`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::freshness;
use crate::policy::{Action, Decision};
use crate::pyround::py_round;
use crate::signals::{SignalValue, Signals};
use crate::slo::{self, BurnLabel, Num, SloDetails, SloError, SloReport, SloSpec};

/// A time window, in whole seconds. Written like PromQL ranges: `5m`, `1h`, `3d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window(pub u64);

impl Window {
    /// Parses `5m`, `30m`, `1h`, `6h`, `1d`, `30d` (or plain seconds).
    pub fn parse(text: &str) -> Result<Window, freshness::DurationError> {
        let d = freshness::parse_duration(text)?;
        Ok(Window(d.as_secs().unsigned_abs()))
    }

    /// Length in seconds.
    pub fn seconds(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Window {
    /// The largest unit that divides the window exactly: `3d`, `6h`, `30m`, `90s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        if s > 0 && s.is_multiple_of(86_400) {
            write!(f, "{}d", s / 86_400)
        } else if s > 0 && s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s > 0 && s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// As serialised: `5m`, `1h`, `30d`.
impl schemars::JsonSchema for Window {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Window".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[0-9]+[smhd]$" })
    }
}

/// The vector selector written just before the first `[{{.window}}]` of a query, e.g.
/// `http_requests_total{job="api"}` in `sum(increase(http_requests_total{job="api"}[{{.window}}]))`:
/// the series whose newest sample the freshness check looks at (`max(timestamp(SELECTOR))`).
/// Shared by the Prometheus source (which derives the check) and the Sloth/OpenSLO loader
/// (which refuses, at load time, an SLO whose check cannot be derived nor is given).
pub fn selector_before_window(q: &str) -> Option<String> {
    let at = q.find("[{{.window}}]")?;
    let head = q[..at].trim_end();
    let bytes = head.as_bytes();
    let mut start = head.len();
    if head.ends_with('}') {
        // Find the `{` that opens this matcher list, outside quoted label values.
        let mut open = None;
        let mut quote: Option<u8> = None;
        let mut escaped = false;
        for (i, &b) in bytes.iter().enumerate() {
            if let Some(qc) = quote {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == qc {
                    quote = None;
                }
                continue;
            }
            match b {
                b'"' | b'\'' | b'`' => quote = Some(b),
                b'{' => open = Some(i),
                _ => {}
            }
        }
        start = open?;
    }
    let name_start = head[..start]
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
        .last()
        .map_or(start, |(i, _)| i);
    let sel = head[name_start..].trim();
    if sel.is_empty() || sel.starts_with(|c: char| c.is_ascii_digit()) { None } else { Some(sel.to_string()) }
}

/// The SRE Workbook's windows: 5m, 30m, 1h, 2h, 6h, 1d, 3d.
pub const WORKBOOK_WINDOWS: [Window; 7] =
    [Window(300), Window(1800), Window(3600), Window(7200), Window(21_600), Window(86_400), Window(259_200)];

/// Default SLO period: 30 days.
pub const DEFAULT_PERIOD: Window = Window(30 * 86_400);

/// Default minimum number of events a window needs before its burn rate counts.
pub const DEFAULT_MIN_EVENTS: u64 = 100;

/// Default freshness limit for the newest sample: 5 minutes.
pub const DEFAULT_MAX_SAMPLE_AGE: Window = Window(300);

/// One multi-window alerting tier: fires when the burn rate exceeds `factor` over both
/// windows, and then sets the `burn_rate` label to at least `label`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Tier {
    /// Name, e.g. `page_fast`.
    pub name: String,
    /// Long window, e.g. 1h.
    pub long: Window,
    /// Short window, e.g. 5m.
    pub short: Window,
    /// Burn-rate factor both windows must exceed, e.g. 14.4.
    pub factor: f64,
    /// Label the tier maps to.
    pub label: BurnLabel,
}

/// The default tiers and their default labels:
///
/// | tier | long | short | factor | budget spent over the long window | label |
/// |---|---|---|---|---|---|
/// | `page_fast` | 1h | 5m | 14.4 | 2 % | critical |
/// | `page_slow` | 6h | 30m | 6 | 5 % | high |
/// | `ticket_fast` | 1d | 2h | 3 | 10 % | medium |
/// | `ticket_slow` | 3d | 6h | 1 | 10 % | medium |
///
/// No tier firing is `low`.
pub fn workbook_tiers() -> Vec<Tier> {
    let t = |name: &str, long: u64, short: u64, factor: f64, label: BurnLabel| Tier {
        name: name.into(),
        long: Window(long),
        short: Window(short),
        factor,
        label,
    };
    vec![
        t("page_fast", 3600, 300, 14.4, BurnLabel::Critical),
        t("page_slow", 21_600, 1800, 6.0, BurnLabel::High),
        t("ticket_fast", 86_400, 7200, 3.0, BurnLabel::Medium),
        t("ticket_slow", 259_200, 21_600, 1.0, BurnLabel::Medium),
    ]
}

/// How burn rates are computed and labelled (the `prometheus:` block of `slos.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct BurnConfig {
    /// SLO period for availability and error budget (default 30d).
    pub period: Window,
    /// Alerting tiers, checked all together; the label is the highest firing tier's.
    pub tiers: Vec<Tier>,
    /// Minimum events per window (default [`DEFAULT_MIN_EVENTS`]).
    pub min_events: u64,
    /// Per-window overrides of `min_events`.
    pub min_events_by_window: BTreeMap<Window, u64>,
    /// The newest sample must be at most this old (default 5m).
    pub max_sample_age: Window,
}

impl Default for BurnConfig {
    fn default() -> Self {
        BurnConfig {
            period: DEFAULT_PERIOD,
            tiers: workbook_tiers(),
            min_events: DEFAULT_MIN_EVENTS,
            min_events_by_window: BTreeMap::new(),
            max_sample_age: DEFAULT_MAX_SAMPLE_AGE,
        }
    }
}

impl BurnConfig {
    /// Every window a tier uses, shortest first, without duplicates.
    pub fn windows(&self) -> Vec<Window> {
        let mut w: Vec<Window> = self.tiers.iter().flat_map(|t| [t.long, t.short]).collect();
        w.sort();
        w.dedup();
        w
    }

    /// The burn windows plus the period: every range the adapter must read.
    pub fn ranges(&self) -> Vec<Window> {
        let mut w = self.windows();
        w.push(self.period);
        w.sort();
        w.dedup();
        w
    }

    /// Minimum events for one window.
    pub fn min_events_for(&self, w: Window) -> u64 {
        self.min_events_by_window.get(&w).copied().unwrap_or(self.min_events)
    }

    /// The window whose burn rate is reported as `burn_rate_value`: the first tier's long
    /// window (1h by default).
    pub fn value_window(&self) -> Option<Window> {
        self.tiers.first().map(|t| t.long)
    }

    /// Checks the configuration on its own. Field paths are those of `slos.yaml`.
    pub fn validate(&self) -> Result<(), SloError> {
        let err = |field: &str, reason: String| Err(SloError { field: field.into(), reason });
        if self.period.0 == 0 {
            return err("prometheus.period", "must be positive".into());
        }
        if self.max_sample_age.0 == 0 {
            return err("prometheus.max_sample_age", "must be positive".into());
        }
        if self.tiers.is_empty() {
            return err("prometheus.tiers", "needs at least one tier".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, t) in self.tiers.iter().enumerate() {
            let p = format!("prometheus.tiers[{i}]");
            if t.name.trim().is_empty() {
                return err(&format!("{p}.name"), "is empty".into());
            }
            if !names.insert(t.name.as_str()) {
                return err(&format!("{p}.name"), format!("duplicate tier name {:?}", t.name));
            }
            if !(t.factor.is_finite() && t.factor > 0.0) {
                return err(&format!("{p}.factor"), format!("must be a positive number, got {}", t.factor));
            }
            if t.short.0 == 0 || t.short >= t.long {
                return err(
                    &format!("{p}.short"),
                    format!(
                        "the short window ({}) must be positive and shorter than the long one ({})",
                        t.short, t.long
                    ),
                );
            }
            if t.long > self.period {
                return err(
                    &format!("{p}.long"),
                    format!("the long window ({}) is longer than the SLO period ({})", t.long, self.period),
                );
            }
        }
        Ok(())
    }
}

/// Where the latency percentiles come from.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LatencySource {
    /// A classic histogram's bucket selector, e.g.
    /// `http_request_duration_seconds_bucket{job="checkout"}`; the adapter asks for
    /// `histogram_quantile(q, sum by (le) (rate(SELECTOR[window])))`.
    Histogram(String),
    /// A PromQL template with `{{.quantile}}` (and optionally `{{.window}}`) placeholders.
    Query(String),
}

/// A live SLO source: the `prometheus:` block of `slos.yaml`. Pure data; the
/// `guardrail-prometheus` adapter runs it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PrometheusSpec {
    /// Base URL (`http://host:9090`); `--prometheus` / `GUARDRAIL_PROMETHEUS_URL` override it.
    pub url: Option<String>,
    /// Service name reported with the signals (default `unknown`).
    pub service: String,
    /// PromQL for failed events over `{{.window}}` (e.g. `sum(increase(…[{{.window}}]))`).
    pub error_query: String,
    /// PromQL for all events over `{{.window}}`.
    pub total_query: String,
    /// p95/p99 source. `None` (an SLO spec without Guardrail's latency annotation): no latency
    /// query is sent and the latency signals are unavailable, so a rule that reads them cannot
    /// decide (exit 3).
    pub latency: Option<LatencySource>,
    /// Range for the latency percentiles (default 1h).
    pub latency_window: Window,
    /// Multiplier from the query's unit to milliseconds (1000 for seconds, the default).
    pub latency_to_ms: f64,
    /// PromQL returning the Unix time of the newest sample; derived from `total_query` when
    /// absent (`max(timestamp(SELECTOR))`).
    pub freshness_query: Option<String>,
    /// Timeout of one HTTP request, in milliseconds (default 2000).
    pub timeout_ms: u64,
    /// Retries after a failed request (connection error, timeout, HTTP 5xx); default 2.
    pub retries: u32,
    /// PEM file of CA certificates to trust for an `https://` URL, besides the built-in
    /// (Mozilla) roots: the `prometheus:` block's or the spec extension's `ca_file`, resolved
    /// against the SLO file's directory by the loader; `--prometheus-ca` /
    /// `GUARDRAIL_PROMETHEUS_CA` win. A path only: the core never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Burn-rate windows, tiers and guards.
    pub burn: BurnConfig,
}

/// Failed and total events over one window, as read (extrapolated counts may be fractional).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Counts {
    /// Failed events.
    pub errors: f64,
    /// All events.
    pub total: f64,
}

/// What an adapter read for one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Service name.
    pub service: String,
    /// The time the queries were evaluated at.
    pub evaluated_at: Timestamp,
    /// Counts per window (burn windows and the period); a window missing here had no data.
    pub counts: BTreeMap<Window, Counts>,
    /// p95 latency in ms, when read.
    pub latency_p95_ms: Option<f64>,
    /// p99 latency in ms, when read.
    pub latency_p99_ms: Option<f64>,
    /// Time of the newest sample behind the counts, when read.
    pub newest_sample_at: Option<Timestamp>,
    /// Problems the adapter met (query errors, empty results…): each one means no data.
    pub problems: Vec<String>,
    /// Why latency was not read at all (no latency source configured). Then missing p95/p99
    /// are not "no data": only the latency signals are unavailable, with this reason.
    pub latency_unavailable: Option<String>,
}

/// The allowed share of bad events, `1 − target/100`.
pub fn budget_fraction(target_pct: f64) -> f64 {
    1.0 - target_pct / 100.0
}

/// Seconds of total outage the period allows: `(1 − target) · period`. 99.9 % over 30 days
/// allows 2592 s = 43.2 minutes.
pub fn allowed_outage_seconds(target_pct: f64, period: Window) -> f64 {
    budget_fraction(target_pct) * period.0 as f64
}

/// Burn rate of an error ratio: `ratio / (1 − target)`. 1× spends the budget exactly over the
/// period.
pub fn burn_rate(error_ratio: f64, target_pct: f64) -> f64 {
    error_ratio / budget_fraction(target_pct)
}

/// Share of the whole period's budget spent by burning at `burn` for `window`:
/// `burn · window / period`. 14.4× for 1h of a 30-day period spends 0.02 (2 %).
pub fn budget_spent(burn: f64, window: Window, period: Window) -> f64 {
    burn * window.0 as f64 / period.0 as f64
}

/// One window's figures.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct WindowReport {
    /// The window.
    pub window: Window,
    /// Failed events (null when not read).
    pub errors: Option<f64>,
    /// All events (null when not read).
    pub total: Option<f64>,
    /// errors / total.
    pub error_ratio: Option<f64>,
    /// error ratio / (1 − target).
    pub burn_rate: Option<f64>,
    /// The minimum events this window needs.
    pub min_events: u64,
    /// `total >= min_events`.
    pub sufficient: bool,
}

/// Whether a tier fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TierState {
    /// Both windows have enough events and exceed the factor.
    Firing,
    /// A window with enough events is at or below the factor: the tier cannot fire.
    Quiet,
    /// Neither proven firing nor proven quiet: too few events.
    InsufficientData,
}

/// One tier's outcome with the values compared.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TierReport {
    /// Tier name.
    pub name: String,
    /// Long window.
    pub long: Window,
    /// Short window.
    pub short: Window,
    /// Factor both must exceed.
    pub factor: f64,
    /// Label when firing.
    pub label: BurnLabel,
    /// Burn rate over the long window (null when too few events).
    pub long_burn_rate: Option<f64>,
    /// Burn rate over the short window (null when too few events).
    pub short_burn_rate: Option<f64>,
    /// Outcome.
    pub state: TierState,
}

/// Everything the burn evaluation compared, attached to the SLO report as `prometheus`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct BurnReport {
    /// Where the counts came from (`prometheus`).
    pub source: String,
    /// True when the SLO signals could not be read (see `no_data_reasons`).
    pub no_data: bool,
    /// Why there is no data.
    pub no_data_reasons: Vec<String>,
    /// When the queries were evaluated.
    pub evaluated_at: String,
    /// Newest sample behind the counts.
    pub newest_sample_at: Option<String>,
    /// Its age in seconds at `evaluated_at`.
    pub sample_age_seconds: Option<i64>,
    /// The freshness limit, seconds.
    pub max_sample_age_seconds: u64,
    /// The SLO period.
    pub period: Window,
    /// Error budget spent over the period, as a share of the budget (period burn rate).
    pub budget_spent: Option<f64>,
    /// Per window, shortest first (the period last).
    pub windows: Vec<WindowReport>,
    /// Per tier, in configuration order.
    pub tiers: Vec<TierReport>,
    /// The label (null when it cannot be determined).
    pub label: Option<BurnLabel>,
    /// True when the label could not be determined because windows had too few events.
    pub insufficient_data: bool,
    /// Which windows were short of events.
    pub insufficient_reason: Option<String>,
    /// The window reported as `burn_rate_value`.
    pub burn_rate_value_window: Option<Window>,
    /// Its burn rate (null when too few events).
    pub burn_rate_value: Option<f64>,
    /// Why the latency signals are unavailable when no latency source is configured (absent
    /// otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_unavailable: Option<String>,
}

impl BurnReport {
    /// Overrides the SLO signals that this report makes unavailable and sets `no_data` and
    /// `burn_rate_insufficient_data`. Called by [`Signals::from_reports`].
    pub fn apply(&self, s: &mut Signals) {
        s.set("no_data", SignalValue::Bool(self.no_data));
        if self.no_data {
            let why = format!("no data from {}: {}", self.source, self.no_data_reasons.join("; "));
            for name in SLO_SIGNALS {
                s.set(name, SignalValue::Unavailable(why.clone()));
            }
            s.set("burn_rate_insufficient_data", SignalValue::Unavailable(why));
            return;
        }
        s.set("burn_rate_insufficient_data", SignalValue::Bool(self.insufficient_data));
        if let Some(why) = &self.latency_unavailable {
            for name in LATENCY_SIGNALS {
                s.set(name, SignalValue::Unavailable(why.clone()));
            }
        }
        if self.label.is_none() {
            let why = format!(
                "insufficient data: {}",
                self.insufficient_reason.as_deref().unwrap_or("too few events to decide the burn-rate tiers")
            );
            s.set("burn_rate", SignalValue::Unavailable(why));
        }
        if self.burn_rate_value.is_none() {
            let w = self.burn_rate_value_window.map(|w| w.to_string()).unwrap_or_default();
            s.set("burn_rate_value", SignalValue::Unavailable(format!("insufficient data: too few events over {w}")));
        }
    }
}

/// The signals that come from the SLO source and become unavailable without data.
pub const SLO_SIGNALS: [&str; 9] = [
    "error_budget_pct",
    "burn_rate",
    "availability_pct",
    "latency_compliant",
    "burn_rate_value",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_p99_compliant",
    "availability_compliant",
];

/// The SLO signals that come from the latency query.
pub const LATENCY_SIGNALS: [&str; 4] =
    ["latency_compliant", "latency_p95_ms", "latency_p99_ms", "latency_p99_compliant"];

/// Per-window figures.
pub fn window_report(w: Window, c: Option<Counts>, target_pct: f64, min_events: u64) -> WindowReport {
    match c {
        None => WindowReport {
            window: w,
            errors: None,
            total: None,
            error_ratio: None,
            burn_rate: None,
            min_events,
            sufficient: false,
        },
        Some(c) => {
            let ratio = if c.total > 0.0 { Some(c.errors / c.total) } else { None };
            WindowReport {
                window: w,
                errors: Some(c.errors),
                total: Some(c.total),
                error_ratio: ratio,
                burn_rate: ratio.map(|r| burn_rate(r, target_pct)),
                min_events,
                sufficient: c.total > 0.0 && c.total >= min_events as f64,
            }
        }
    }
}

/// A tier's state from its two windows' reports (a window counts only when sufficient).
pub fn tier_state(t: &Tier, long: &WindowReport, short: &WindowReport) -> TierState {
    let usable = |w: &WindowReport| if w.sufficient { w.burn_rate } else { None };
    match (usable(long), usable(short)) {
        (Some(l), Some(s)) if l > t.factor && s > t.factor => TierState::Firing,
        (Some(l), _) if l <= t.factor => TierState::Quiet,
        (_, Some(s)) if s <= t.factor => TierState::Quiet,
        _ => TierState::InsufficientData,
    }
}

/// The label from the tiers' outcomes: the highest firing tier's label (`low` when none
/// fires), or `None` when a tier that could raise it further could not be decided.
pub fn label_of(tiers: &[TierReport]) -> Option<BurnLabel> {
    let firing = tiers.iter().filter(|t| t.state == TierState::Firing).map(|t| t.label).max_by_key(|l| rank(*l));
    let floor = firing.unwrap_or(BurnLabel::Low);
    let undecided_above = tiers.iter().any(|t| t.state == TierState::InsufficientData && rank(t.label) > rank(floor));
    if undecided_above { None } else { Some(floor) }
}

fn rank(l: BurnLabel) -> u8 {
    match l {
        BurnLabel::Low => 0,
        BurnLabel::Medium => 1,
        BurnLabel::High => 2,
        BurnLabel::Critical => 3,
    }
}

/// Why a window's counts cannot be believed (they make the window no data).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Implausible {
    /// NaN or infinite.
    #[error("non-finite counts (errors {errors}, total {total})")]
    NonFinite {
        /// Error events.
        errors: f64,
        /// All events.
        total: f64,
    },
    /// Below zero.
    #[error("negative counts (errors {errors}, total {total})")]
    Negative {
        /// Error events.
        errors: f64,
        /// All events.
        total: f64,
    },
    /// More errors than events.
    #[error("more errors ({errors}) than events ({total})")]
    MoreErrorsThanEvents {
        /// Error events.
        errors: f64,
        /// All events.
        total: f64,
    },
}

fn plausible(c: &Counts) -> Result<(), Implausible> {
    let (errors, total) = (c.errors, c.total);
    if !(errors.is_finite() && total.is_finite()) {
        return Err(Implausible::NonFinite { errors, total });
    }
    if errors < 0.0 || total < 0.0 {
        return Err(Implausible::Negative { errors, total });
    }
    // Extrapolated increases of two counters can differ in the last bits.
    if errors > total * (1.0 + 1e-9) {
        return Err(Implausible::MoreErrorsThanEvents { errors, total });
    }
    Ok(())
}

/// Evaluates an observation against a spec and a burn configuration. Spec and configuration
/// errors are `Err` (the gate cannot decide); data problems give a report with `no_data`.
pub fn evaluate(spec: &SloSpec, cfg: &BurnConfig, obs: &Observation) -> Result<SloReport, SloError> {
    let latency_off = obs.latency_unavailable.is_some();
    if latency_off {
        // No latency source: the latency limits are not used (and may be absent, NaN).
        let mut checked = spec.clone();
        checked.p95_threshold_ms = Num::float(1.0);
        checked.p99_threshold_ms = None;
        checked.validate()?;
    } else {
        spec.validate()?;
    }
    cfg.validate()?;
    let target = spec.availability_target_pct.value;
    if target >= 100.0 {
        return Err(SloError {
            field: "slos.availability.target".into(),
            reason: "a 100% target leaves no error budget, so there is no burn rate to compute".into(),
        });
    }

    // The adapter's problems are the precise ones; the generic "missing" reasons below only
    // speak when it reported none.
    let mut reasons = obs.problems.clone();
    let quiet_adapter = obs.problems.is_empty();
    for w in cfg.ranges() {
        match obs.counts.get(&w) {
            None if quiet_adapter => reasons.push(format!("no result for the {w} window")),
            None => {}
            Some(c) => {
                if let Err(e) = plausible(c) {
                    reasons.push(format!("{w} window: {e}"));
                }
            }
        }
    }
    let age = obs.newest_sample_at.map(|at| obs.evaluated_at.duration_since(at).as_secs());
    match age {
        None if quiet_adapter => reasons.push("the time of the newest sample is unknown".into()),
        None => {}
        Some(a) if a > cfg.max_sample_age.0 as i64 => reasons.push(format!(
            "the newest sample is {} old, older than the freshness limit {}",
            freshness::human(jiff::SignedDuration::from_secs(a)),
            cfg.max_sample_age
        )),
        Some(a) if a < -freshness::MAX_FUTURE_SKEW.as_secs() => {
            reasons.push(format!("the newest sample is {}s in the future", -a))
        }
        Some(_) => {}
    }
    let period_counts = obs.counts.get(&cfg.period).copied();
    if let Some(c) = period_counts
        && c.total <= 0.0
    {
        reasons.push(format!("no events at all over the {} period", cfg.period));
    }
    for (name, v) in [("p95", obs.latency_p95_ms), ("p99", obs.latency_p99_ms)] {
        if latency_off {
            break;
        }
        match v {
            None if quiet_adapter => reasons.push(format!("no {name} latency")),
            None => {}
            Some(x) if !x.is_finite() || x < 0.0 => reasons.push(format!("{name} latency is {x}")),
            Some(_) => {}
        }
    }

    let windows: Vec<WindowReport> = cfg
        .ranges()
        .into_iter()
        .map(|w| window_report(w, obs.counts.get(&w).copied(), target, cfg.min_events_for(w)))
        .collect();
    let find = |w: Window| windows.iter().find(|r| r.window == w);

    let mut report = BurnReport {
        source: "prometheus".into(),
        no_data: !reasons.is_empty(),
        no_data_reasons: reasons,
        evaluated_at: obs.evaluated_at.to_string(),
        newest_sample_at: obs.newest_sample_at.map(|t| t.to_string()),
        sample_age_seconds: age,
        max_sample_age_seconds: cfg.max_sample_age.0,
        period: cfg.period,
        budget_spent: find(cfg.period).and_then(|r| r.burn_rate),
        windows: windows.clone(),
        tiers: Vec::new(),
        label: None,
        insufficient_data: false,
        insufficient_reason: None,
        burn_rate_value_window: cfg.value_window(),
        burn_rate_value: None,
        latency_unavailable: obs.latency_unavailable.clone(),
    };

    if report.no_data {
        return Ok(no_data_report(spec, obs, report));
    }

    let mut tiers = Vec::with_capacity(cfg.tiers.len());
    for t in &cfg.tiers {
        let (Some(long), Some(short)) = (find(t.long), find(t.short)) else {
            return Err(SloError {
                field: "prometheus.tiers".into(),
                reason: format!("tier {} has no windows", t.name),
            });
        };
        let usable = |w: &WindowReport| if w.sufficient { w.burn_rate } else { None };
        tiers.push(TierReport {
            name: t.name.clone(),
            long: t.long,
            short: t.short,
            factor: t.factor,
            label: t.label,
            long_burn_rate: usable(long),
            short_burn_rate: usable(short),
            state: tier_state(t, long, short),
        });
    }
    let label = label_of(&tiers);
    let short_windows: Vec<String> = windows
        .iter()
        .filter(|w| w.window != cfg.period && !w.sufficient)
        .map(|w| format!("{} has {} events, minimum {}", w.window, w.total.unwrap_or(0.0), w.min_events))
        .collect();
    report.insufficient_data = label.is_none();
    report.insufficient_reason = if label.is_none() { Some(short_windows.join("; ")) } else { None };
    report.label = label;
    report.tiers = tiers;
    report.burn_rate_value =
        cfg.value_window().and_then(find).and_then(|w| if w.sufficient { w.burn_rate } else { None });

    let Some(pc) = period_counts else {
        return Ok(no_data_report(spec, obs, report));
    };
    let availability = py_round((1.0 - pc.errors / pc.total) * 100.0, 6);
    let failed = pc.errors.round().max(0.0) as u64;
    let budget = slo::error_budget_pct(availability, target, failed);
    // Microsecond precision: enough for a limit in ms, and no float noise in the reports.
    let p95 = Num::float(py_round(obs.latency_p95_ms.unwrap_or(f64::NAN), 3));
    let p99 = obs.latency_p99_ms.map(|v| Num::float(py_round(v, 3)));
    // Without a latency source this is false (NaN compares false), and the signal is unavailable.
    let latency_compliant = !latency_off && p95.value <= spec.p95_threshold_ms.value;
    let availability_compliant = availability >= target;
    let healthy = availability_compliant
        && latency_compliant
        && budget >= 20.0
        && matches!(label, Some(BurnLabel::Low | BurnLabel::Medium));
    let value = report.burn_rate_value;
    Ok(SloReport {
        availability_pct: availability,
        error_budget_pct: budget,
        // Unknown label: reported as the worst case; the signal itself is unavailable.
        burn_rate: label.unwrap_or(BurnLabel::Critical),
        burn_rate_value: value.map_or(f64::NAN, |v| py_round(v, 2)),
        latency_p95_ms: p95,
        latency_p99_ms: p99,
        latency_compliant,
        availability_compliant,
        healthy,
        details: SloDetails {
            total_requests: pc.total.round().max(0.0) as u64,
            failed_requests: failed,
            availability_target_pct: spec.availability_target_pct,
            latency_target_p95_ms: spec.p95_threshold_ms,
            avg_burn_rate: report.budget_spent.map_or(f64::NAN, |v| py_round(v, 2)),
            recent_burn_rate: value.map_or(f64::NAN, |v| py_round(v, 2)),
            hourly_burn_rates: Vec::new(),
            service: obs.service.clone(),
            latency_target_p99_ms: spec.p99_threshold_ms,
        },
        latency_p99_compliant: match (p99, spec.p99_threshold_ms) {
            (Some(v), Some(limit)) => Some(v.value <= limit.value),
            _ => None,
        },
        prometheus: Some(report),
    })
}

/// The report when there is no data: every figure is NaN (serialised as `null`), the label is
/// the worst case, nothing is compliant or healthy, and the signals are unavailable.
fn no_data_report(spec: &SloSpec, obs: &Observation, mut report: BurnReport) -> SloReport {
    report.no_data = true;
    if report.no_data_reasons.is_empty() {
        report.no_data_reasons.push("no counts for the SLO period".into());
    }
    SloReport {
        availability_pct: f64::NAN,
        error_budget_pct: f64::NAN,
        burn_rate: BurnLabel::Critical,
        burn_rate_value: f64::NAN,
        latency_p95_ms: Num::float(f64::NAN),
        latency_p99_ms: None,
        latency_compliant: false,
        availability_compliant: false,
        healthy: false,
        details: SloDetails {
            total_requests: 0,
            failed_requests: 0,
            availability_target_pct: spec.availability_target_pct,
            latency_target_p95_ms: spec.p95_threshold_ms,
            avg_burn_rate: f64::NAN,
            recent_burn_rate: f64::NAN,
            hourly_burn_rates: Vec::new(),
            service: obs.service.clone(),
            latency_target_p99_ms: spec.p99_threshold_ms,
        },
        latency_p99_compliant: None,
        prometheus: Some(report),
    }
}

/// A decision [`check_decision`] refuses: it would let a deploy through on data that could not
/// be read, without its rule testing for that.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnreadDataDecision {
    /// `no_data` is true and the deciding rule does not test it.
    #[error(
        "the SLO signals could not be read (no_data), and {} would {action} without testing no_data; \
         add a rule on no_data (e.g. `no_data: {{operator: eq, value: true}}` → DELAY) ahead of the SLO rules",
        deciding_rule(policy_id)
    )]
    NoData {
        /// The deciding rule (`DEFAULT` for the default action).
        policy_id: String,
        /// What it would do (ALLOW or WARN).
        action: Action,
    },
    /// `burn_rate_insufficient_data` is true and the deciding rule tests neither it nor `no_data`.
    #[error(
        "the burn rate has too few events to be decided (burn_rate_insufficient_data), and {} would {action} \
         without testing it; add a rule on burn_rate_insufficient_data ahead of the burn-rate rules",
        deciding_rule(policy_id)
    )]
    InsufficientData {
        /// The deciding rule (`DEFAULT` for the default action).
        policy_id: String,
        /// What it would do (ALLOW or WARN).
        action: Action,
    },
}

fn deciding_rule(policy_id: &str) -> String {
    if policy_id == "DEFAULT" { "the default action".to_string() } else { format!("rule {policy_id}") }
}

/// Refuses a decision that would let a deploy through on data that could not be read.
///
/// When `no_data` is true, an ALLOW or WARN stands only if the deciding rule tests `no_data`;
/// when `burn_rate_insufficient_data` is true, only if it tests that signal or `no_data`.
/// DELAY and BLOCK always stand (they do not let the deploy through). The `Err` says why, for
/// the "could not decide" report (exit 3).
pub fn check_decision(signals: &Signals, d: &Decision) -> Result<(), UnreadDataDecision> {
    if matches!(d.action, Action::Delay | Action::Block) {
        return Ok(());
    }
    let is_true = |name: &str| signals.get(name) == Some(&SignalValue::Bool(true));
    let tests = |name: &str| d.conditions.iter().any(|c| c.signal == name);
    let (policy_id, action) = (d.policy_id.clone(), d.action);
    if is_true("no_data") && !tests("no_data") {
        return Err(UnreadDataDecision::NoData { policy_id, action });
    }
    if is_true("burn_rate_insufficient_data") && !tests("burn_rate_insufficient_data") && !tests("no_data") {
        return Err(UnreadDataDecision::InsufficientData { policy_id, action });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn workbook_outage_allowance_and_budget_spend() {
        // A 99.9 % SLO over 30 days allows 43.2 minutes of full outage.
        let secs = allowed_outage_seconds(99.9, DEFAULT_PERIOD);
        assert!(close(secs, 2592.0), "{secs}");
        assert!(close(secs / 60.0, 43.2));
        // 14.4× for one hour spends 2 % of the budget; 6× for 6 hours 5 %; 1× for 3 days 10 %;
        // 3× for a day 10 %; 1× for the whole period 100 %.
        assert!(close(budget_spent(14.4, Window(3600), DEFAULT_PERIOD), 0.02));
        assert!(close(budget_spent(6.0, Window(21_600), DEFAULT_PERIOD), 0.05));
        assert!(close(budget_spent(1.0, Window(259_200), DEFAULT_PERIOD), 0.10));
        assert!(close(budget_spent(3.0, Window(86_400), DEFAULT_PERIOD), 0.10));
        assert!(close(budget_spent(1.0, DEFAULT_PERIOD, DEFAULT_PERIOD), 1.0));
        // Burn rate 14.4 at 99.9 % is an error ratio of 1.44 %.
        assert!(close(burn_rate(0.0144, 99.9), 14.4));
        // A full outage (ratio 1) at 99.9 % burns 1000×: the budget lasts 43.2 minutes.
        assert!(close(DEFAULT_PERIOD.0 as f64 / burn_rate(1.0, 99.9) / 60.0, 43.2));
    }

    #[test]
    fn windows_parse_and_print_like_promql() {
        let names: Vec<String> = WORKBOOK_WINDOWS.iter().map(|w| w.to_string()).collect();
        assert_eq!(names, ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]);
        assert_eq!(Window::parse("30d").unwrap(), DEFAULT_PERIOD);
        assert_eq!(Window(90).to_string(), "90s");
        assert!(Window::parse("1w").is_err());
        let cfg = BurnConfig::default();
        assert_eq!(cfg.windows(), WORKBOOK_WINDOWS.to_vec());
        assert_eq!(cfg.ranges().len(), 8);
        assert_eq!(cfg.value_window(), Some(Window(3600)));
    }

    fn wr(w: u64, burn: f64, total: f64) -> WindowReport {
        let ratio = burn * 0.001;
        window_report(Window(w), Some(Counts { errors: ratio * total, total }), 99.9, 100)
    }

    #[test]
    fn a_tier_needs_both_windows_above_the_factor() {
        let t = &workbook_tiers()[0];
        assert_eq!(tier_state(t, &wr(3600, 20.0, 1e5), &wr(300, 20.0, 1e4)), TierState::Firing);
        // Long window over, short under: the problem has stopped; quiet.
        assert_eq!(tier_state(t, &wr(3600, 20.0, 1e5), &wr(300, 2.0, 1e4)), TierState::Quiet);
        // Under the factor over the long window.
        assert_eq!(tier_state(t, &wr(3600, 14.0, 1e5), &wr(300, 20.0, 1e4)), TierState::Quiet);
        // Too few events in the short window, long window over: undecided.
        assert_eq!(tier_state(t, &wr(3600, 20.0, 1e5), &wr(300, 20.0, 10.0)), TierState::InsufficientData);
        // Too few events in the short window, but the long window proves it quiet.
        assert_eq!(tier_state(t, &wr(3600, 1.0, 1e5), &wr(300, 20.0, 10.0)), TierState::Quiet);
        // Neither window has enough events.
        assert_eq!(tier_state(t, &wr(3600, 0.0, 50.0), &wr(300, 0.0, 5.0)), TierState::InsufficientData);
    }

    fn tr(label: BurnLabel, state: TierState) -> TierReport {
        TierReport {
            name: "t".into(),
            long: Window(3600),
            short: Window(300),
            factor: 1.0,
            label,
            long_burn_rate: None,
            short_burn_rate: None,
            state,
        }
    }

    #[test]
    fn label_is_the_highest_firing_tier_or_unknown() {
        use BurnLabel::*;
        use TierState::*;
        assert_eq!(label_of(&[tr(Critical, Quiet), tr(High, Quiet)]), Some(Low));
        assert_eq!(label_of(&[tr(Critical, Quiet), tr(High, Firing), tr(Medium, Firing)]), Some(High));
        // An undecided critical tier above a firing medium one: the label is unknown.
        assert_eq!(label_of(&[tr(Critical, InsufficientData), tr(Medium, Firing)]), None);
        // An undecided medium tier under a firing critical one does not matter.
        assert_eq!(label_of(&[tr(Critical, Firing), tr(Medium, InsufficientData)]), Some(Critical));
        assert_eq!(label_of(&[tr(Medium, InsufficientData)]), None);
    }

    fn spec() -> SloSpec {
        SloSpec {
            availability_target_pct: Num::float(99.9),
            p95_threshold_ms: Num::int(500),
            p99_threshold_ms: Some(Num::int(1000)),
            burn: slo::BurnThresholds::default(),
        }
    }

    fn obs(rate_total: f64, ratio: f64) -> Observation {
        let now: Timestamp = "2026-12-01T06:00:00Z".parse().unwrap();
        let cfg = BurnConfig::default();
        let counts = cfg
            .ranges()
            .into_iter()
            .map(|w| {
                let total = rate_total * w.0 as f64;
                (w, Counts { errors: total * ratio, total })
            })
            .collect();
        Observation {
            service: "svc".into(),
            evaluated_at: now,
            counts,
            latency_p95_ms: Some(400.0),
            latency_p99_ms: Some(700.0),
            newest_sample_at: Some(now),
            problems: Vec::new(),
            latency_unavailable: None,
        }
    }

    #[test]
    fn steady_burn_gives_figures_and_labels() {
        let cfg = BurnConfig::default();
        // 10 req/s with 0.05 % errors: burn 0.5 everywhere.
        let r = evaluate(&spec(), &cfg, &obs(10.0, 0.0005)).unwrap();
        let p = r.prometheus.as_ref().unwrap();
        assert!(!p.no_data);
        assert_eq!(p.label, Some(BurnLabel::Low));
        assert_eq!(r.availability_pct, 99.95);
        assert_eq!(r.error_budget_pct, 50.0);
        assert!(close(p.burn_rate_value.unwrap(), 0.5));
        assert!(r.healthy);
        // 2 % errors: 20× everywhere, every tier fires, the label is the highest: critical.
        let r = evaluate(&spec(), &cfg, &obs(10.0, 0.02)).unwrap();
        let p = r.prometheus.as_ref().unwrap();
        assert!(p.tiers.iter().all(|t| t.state == TierState::Firing));
        assert_eq!(r.burn_rate, BurnLabel::Critical);
        assert_eq!(r.error_budget_pct, 0.0);
        // 0.4 % errors: 4×: only ticket_fast (3×) and ticket_slow (1×) fire: medium.
        let r = evaluate(&spec(), &cfg, &obs(10.0, 0.004)).unwrap();
        assert_eq!(r.burn_rate, BurnLabel::Medium);
        let mut s = Signals::default();
        r.prometheus.as_ref().unwrap().apply(&mut s);
        assert_eq!(s.get("no_data"), Some(&SignalValue::Bool(false)));
        assert_eq!(s.get("burn_rate_insufficient_data"), Some(&SignalValue::Bool(false)));
    }

    #[test]
    fn low_traffic_is_insufficient_never_low() {
        // 0.01 req/s: 3 events in 5m, 36 in 1h, 216 in 6h: the page tiers cannot be decided.
        let r = evaluate(&spec(), &BurnConfig::default(), &obs(0.01, 0.0)).unwrap();
        let p = r.prometheus.as_ref().unwrap();
        assert!(!p.no_data);
        assert_eq!(p.label, None);
        assert!(p.insufficient_data);
        assert!(p.insufficient_reason.as_deref().unwrap().contains("5m has 3 events, minimum 100"));
        assert_eq!(p.burn_rate_value, None);
        let mut s = Signals::default();
        p.apply(&mut s);
        assert_eq!(s.get("burn_rate_insufficient_data"), Some(&SignalValue::Bool(true)));
        assert!(matches!(s.get("burn_rate"), Some(SignalValue::Unavailable(_))));
        // A lower minimum for the short windows makes it decidable again.
        let mut cfg = BurnConfig { min_events: 1, ..BurnConfig::default() };
        cfg.min_events_by_window.insert(Window(300), 1);
        let r = evaluate(&spec(), &cfg, &obs(0.01, 0.0)).unwrap();
        assert_eq!(r.prometheus.unwrap().label, Some(BurnLabel::Low));
    }

    #[test]
    fn missing_stale_or_impossible_data_is_no_data() {
        let cfg = BurnConfig::default();
        let mut o = obs(10.0, 0.0);
        o.counts.remove(&Window(300));
        let r = evaluate(&spec(), &cfg, &o).unwrap();
        let p = r.prometheus.as_ref().unwrap();
        assert!(p.no_data);
        assert_eq!(p.no_data_reasons, ["no result for the 5m window"]);
        assert!(r.availability_pct.is_nan());
        assert!(!r.healthy);

        let mut o = obs(10.0, 0.0);
        o.newest_sample_at = Some("2026-12-01T05:50:00Z".parse().unwrap());
        let p = evaluate(&spec(), &cfg, &o).unwrap().prometheus.unwrap();
        assert_eq!(p.no_data_reasons, ["the newest sample is 10m old, older than the freshness limit 5m"]);

        let mut o = obs(10.0, 0.0);
        o.counts.insert(Window(3600), Counts { errors: 5.0, total: 1.0 });
        o.problems.push("query counts: HTTP 503".into());
        let p = evaluate(&spec(), &cfg, &o).unwrap().prometheus.unwrap();
        assert_eq!(p.no_data_reasons.len(), 2);

        let mut o = obs(10.0, 0.0);
        for c in o.counts.values_mut() {
            *c = Counts { errors: 0.0, total: 0.0 };
        }
        let r = evaluate(&spec(), &cfg, &o).unwrap();
        assert!(r.prometheus.as_ref().unwrap().no_data);
        let mut s = Signals::default();
        r.prometheus.as_ref().unwrap().apply(&mut s);
        assert_eq!(s.get("no_data"), Some(&SignalValue::Bool(true)));
        for name in SLO_SIGNALS {
            assert!(matches!(s.get(name), Some(SignalValue::Unavailable(_))), "{name}");
        }
        // NaN figures serialise as null, not as a made-up number.
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["availability_pct"].is_null());
        assert!(v["error_budget_pct"].is_null());
    }

    #[test]
    fn config_is_validated() {
        let mut cfg = BurnConfig::default();
        cfg.tiers[0].short = Window(7200);
        assert_eq!(cfg.validate().unwrap_err().field, "prometheus.tiers[0].short");
        let mut cfg = BurnConfig::default();
        cfg.tiers[1].name = "page_fast".into();
        assert_eq!(cfg.validate().unwrap_err().field, "prometheus.tiers[1].name");
        let cfg = BurnConfig { period: Window(86_400), ..BurnConfig::default() };
        assert_eq!(cfg.validate().unwrap_err().field, "prometheus.tiers[3].long");
        let mut s = spec();
        s.availability_target_pct = Num::int(100);
        assert!(evaluate(&s, &BurnConfig::default(), &obs(1.0, 0.0)).is_err());
    }

    #[test]
    fn without_a_latency_source_only_the_latency_signals_are_unavailable() {
        let mut o = obs(10.0, 0.0001);
        o.latency_p95_ms = None;
        o.latency_p99_ms = None;
        o.latency_unavailable = Some("the SLO spec names no latency source".into());
        let mut sp = spec();
        sp.p95_threshold_ms = Num::float(f64::NAN);
        sp.p99_threshold_ms = None;
        let r = evaluate(&sp, &BurnConfig::default(), &o).unwrap();
        let p = r.prometheus.as_ref().unwrap();
        assert!(!p.no_data, "{:?}", p.no_data_reasons);
        assert_eq!(r.burn_rate, BurnLabel::Low);
        assert!(!r.latency_compliant);
        let mut s = Signals::default();
        p.apply(&mut s);
        for name in LATENCY_SIGNALS {
            assert_eq!(
                s.get(name),
                Some(&SignalValue::Unavailable("the SLO spec names no latency source".into())),
                "{name}"
            );
        }
        assert_eq!(s.get("no_data"), Some(&SignalValue::Bool(false)));
        // The availability and burn signals are left as the report has them.
        assert_eq!(s.get("availability_pct"), None);
        assert_eq!(s.get("burn_rate"), None);
        // A latency source that answered nothing is still no data.
        let mut o = obs(10.0, 0.0001);
        o.latency_p95_ms = None;
        assert!(evaluate(&spec(), &BurnConfig::default(), &o).unwrap().prometheus.unwrap().no_data);
    }
}
