//! Billing exports → [`CostSeries`]: FOCUS 1.x CSV and AWS Cost Explorer `GetCostAndUsage`
//! JSON, besides the seed's `cost.json` ([`crate::load_cost`]).
//!
//! Every format is normalised into one daily series. Which rows are the spend ([`CostSelection`]):
//! - by default **the whole file**, every row summed per day: a billing export is the bill,
//!   and FOCUS `ServiceName` / Cost Explorer's `SERVICE` name the *provider's* services
//!   ("Amazon Elastic Compute Cloud"), not the application;
//! - **the application's rows by tag** (`--cost-tag KEY=VALUE`): FOCUS rows whose `Tags` JSON
//!   object has `KEY: VALUE`; Cost Explorer groups keyed `KEY$VALUE` in a response grouped by
//!   `TAG` `KEY` (a response not grouped by that tag is refused). The value is the series'
//!   service, which the gate compares with the metrics' service;
//! - optionally **provider services** (`--cost-service NAME`): FOCUS `ServiceName`, Cost
//!   Explorer's `SERVICE` dimension groups. A name or tag the file does not have is an error
//!   listing the ones it has.
//!
//! What is checked here (all fail closed):
//! - **currency**: the selected rows must share one currency; mixed currencies are
//!   an error naming the lines, never a sum of dollars and euros;
//! - **days**: FOCUS rows are summed per UTC calendar day of `ChargePeriodStart` (many line
//!   items per day is normal); a charge period longer than one day is an error (attributing a
//!   month's fee to its first day would fake a spike). A Cost Explorer day listed twice is an
//!   error; a day the file covers without a selected row or group is a day with no spend
//!   (AWS leaves zero-cost groups out); a day missing from the file is a gap, which
//!   `cost::analyse` reports;
//! - **budget**: an export states no monthly budget, so the budget utilisation is unavailable;
//! - **estimates**: Cost Explorer days with `"Estimated": true` are kept (and summed like the
//!   others) and listed in [`CostSeries::estimated_days`];
//! - a Cost Explorer response with a `NextPageToken` is one page of several: an error.
//!
//! Positions: errors name the CSV line or the JSON line and column; the series' days are also
//! positioned as `daily_costs[i]` (the first row or result of day *i*), so errors the core
//! finds later point into the export.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use guardrail_core::cost::{CostSeries, DailyCost};
use jiff::civil::Date;

use crate::common::{Diags, Loaded};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::{self, Node, NodeValue};

/// Which layout a cost file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CostFormat {
    /// The seed's `cost.json` (`{daily_costs: [{date, cost}]}`), JSON or YAML.
    Native,
    /// A FOCUS 1.x CSV export.
    Focus,
    /// An AWS Cost Explorer `GetCostAndUsage` JSON response.
    AwsCe,
}

impl CostFormat {
    /// Name as given to `--cost-format`.
    pub fn as_str(self) -> &'static str {
        match self {
            CostFormat::Native => "native",
            CostFormat::Focus => "focus",
            CostFormat::AwsCe => "aws-ce",
        }
    }
}

/// A `--cost-format` value that names no layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cost format {given:?}: expected native, focus or aws-ce")]
pub struct CostFormatError {
    /// The value as given.
    pub given: String,
}

impl FromStr for CostFormat {
    type Err = CostFormatError;
    fn from_str(s: &str) -> Result<Self, CostFormatError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "native" | "guardrail" => Ok(CostFormat::Native),
            "focus" | "focus-csv" => Ok(CostFormat::Focus),
            "aws-ce" | "aws" | "cost-explorer" => Ok(CostFormat::AwsCe),
            _ => Err(CostFormatError { given: s.to_string() }),
        }
    }
}

/// The format of a cost file: `.csv` is FOCUS; JSON whose top level has `ResultsByTime` is
/// Cost Explorer; anything else is the native layout.
pub fn detect_cost_format(src: &Source) -> CostFormat {
    let ext = src.path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if ext.as_deref() == Some("csv") {
        return CostFormat::Focus;
    }
    if ext.as_deref() == Some("yaml") || ext.as_deref() == Some("yml") {
        return CostFormat::Native;
    }
    match serde_json::from_str::<serde_json::Value>(&src.text) {
        Ok(serde_json::Value::Object(m)) if m.contains_key("ResultsByTime") => CostFormat::AwsCe,
        _ => CostFormat::Native,
    }
}

/// A tag that selects the application's rows of a billing export (`--cost-tag KEY=VALUE`,
/// `GUARDRAIL_COST_TAG`): FOCUS rows whose `Tags` object has `KEY: VALUE`, Cost Explorer groups
/// keyed `KEY$VALUE` in a response grouped by that tag. The value names the application, so it
/// is what the gate compares with the metrics' service. Written `KEY=VALUE` (split at the first
/// `=`; both sides trimmed and non-empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostTag {
    /// Tag key, e.g. `app`.
    pub key: String,
    /// Tag value, e.g. `checkout-api`.
    pub value: String,
}

/// A `--cost-tag` value that is not `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CostTagError {
    /// No `=`.
    #[error("expected KEY=VALUE (e.g. app=checkout-api), got {given:?}")]
    NoEquals {
        /// The value as given.
        given: String,
    },
    /// An empty key or value.
    #[error("expected KEY=VALUE with a non-empty key and value (e.g. app=checkout-api), got {given:?}")]
    Empty {
        /// The value as given.
        given: String,
    },
}

impl FromStr for CostTag {
    type Err = CostTagError;
    fn from_str(s: &str) -> Result<Self, CostTagError> {
        let Some((key, value)) = s.split_once('=') else {
            return Err(CostTagError::NoEquals { given: s.to_string() });
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(CostTagError::Empty { given: s.to_string() });
        }
        Ok(CostTag { key: key.to_string(), value: value.to_string() })
    }
}

impl std::fmt::Display for CostTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl serde::Serialize for CostTag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Which rows of a billing export are the spend. Both empty: every row (the whole file is the
/// spend, summed per day). Both set: rows that match both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostSelection {
    /// The application's rows, by tag (`--cost-tag`).
    pub tag: Option<CostTag>,
    /// The provider's service (`--cost-service`): FOCUS `ServiceName`, Cost Explorer's
    /// `SERVICE` dimension, e.g. `Amazon Elastic Compute Cloud`.
    pub provider_service: Option<String>,
    /// The SLO selection (`--service`), which does **not** select cost rows. It is only used to
    /// refuse an export with several provider services one of which has that very name and no
    /// other selection: earlier versions let `--service` pick those rows, and summing the whole file
    /// instead would change such a pipeline's decision silently.
    pub slo_service: Option<String>,
}

impl CostSelection {
    fn is_all(&self) -> bool {
        self.tag.is_none() && self.provider_service.is_none()
    }

    /// The application the selected rows belong to: the tag's value, else `"unknown"` (a
    /// provider service or a whole file is no application; the gate compares only this).
    fn application(&self) -> String {
        self.tag.as_ref().map_or_else(|| "unknown".to_string(), |t| t.value.clone())
    }
}

/// Reads a cost file in `format` (detected when `None`, see [`detect_cost_format`]), keeping the
/// rows `selection` picks (a billing export only: the seed's `cost.json` is one service's series
/// and refuses a selection).
pub fn load_cost_as(
    src: &Source,
    format: Option<CostFormat>,
    selection: &CostSelection,
) -> Result<Loaded<CostSeries>, Vec<ConfigError>> {
    match format.unwrap_or_else(|| detect_cost_format(src)) {
        CostFormat::Native => {
            let loaded = crate::load_cost(src)?;
            let given = [
                selection.tag.as_ref().map(|t| format!("a cost tag ({t}: --cost-tag / GUARDRAIL_COST_TAG)")),
                selection
                    .provider_service
                    .as_ref()
                    .map(|s| format!("a provider service ({s:?}: --cost-service / GUARDRAIL_COST_SERVICE)")),
            ];
            if let Some(what) = given.into_iter().flatten().next() {
                return Err(vec![loaded.error_at(
                    "",
                    format!(
                        "{what} selects rows of a billing export (FOCUS CSV, Cost Explorer JSON); this file is \
                         the native layout, one service's series ({:?}), which has no such rows: remove the selection",
                        loaded.value.service
                    ),
                )]);
            }
            Ok(loaded)
        }
        CostFormat::Focus => load_focus(src, selection),
        CostFormat::AwsCe => load_aws_ce(src, selection),
    }
}

/// Names listed in an error, each cut to 80 characters and at most 50 of them: the file
/// decides how long a service name or tag is, and a message must stay readable and cheap.
fn quoted_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let mut out: Vec<String> = Vec::new();
    for (i, s) in items.into_iter().enumerate() {
        if i == 50 {
            out.push("…".to_string());
            break;
        }
        match s.char_indices().nth(80) {
            Some((cut, _)) => out.push(format!("{:?}… ({} characters)", &s[..cut], s.chars().count())),
            None => out.push(format!("{s:?}")),
        }
    }
    out.join(", ")
}

/// The refusal for `--service` naming one of several provider services (see
/// [`CostSelection::slo_service`]), when it applies.
fn slo_service_guard(sel: &CostSelection, services: &BTreeSet<String>, column: &str) -> Option<String> {
    let name = sel.slo_service.as_deref()?;
    (sel.is_all() && services.len() > 1 && services.contains(name)).then(|| {
        format!(
            "has {} provider services, one of them {name:?}, and --service / GUARDRAIL_SERVICE no longer selects \
             cost rows (it picks the SLO of a Sloth/OpenSLO file). Select the rows with --cost-service {name:?} \
             ({column}), or the application's with --cost-tag KEY=VALUE; without either the whole file is the spend. \
             Services: {}",
            services.len(),
            quoted_list(services)
        )
    })
}

/// The error for a provider service the file does not have.
fn no_such_service(want: &str, services: &BTreeSet<String>) -> String {
    if services.is_empty() {
        format!("has no service {want:?}: no row names a provider service")
    } else {
        format!("has no provider service {want:?}; the services in this file are: {}", quoted_list(services))
    }
}

/// How many distinct tag keys an error lists at most.
const MAX_LISTED_KEYS: usize = 50;

/// The error for a tag no selected row carries; `keys` are tag keys the file has (FOCUS), to
/// spot a provider's prefix (`user:app`) or a different spelling.
fn no_such_tag(tag: &CostTag, values: &BTreeSet<String>, keys: &BTreeSet<String>) -> String {
    if values.is_empty() && keys.is_empty() {
        format!("has no row tagged {tag}: no row has the tag {:?} at all", tag.key)
    } else if values.is_empty() {
        let more = if keys.len() >= MAX_LISTED_KEYS { ", …" } else { "" };
        format!(
            "has no row tagged {tag}: no row has the tag {:?} at all; the tag keys in this file are: {}{more}",
            tag.key,
            quoted_list(keys)
        )
    } else {
        format!("has no row tagged {tag}; the values of tag {:?} in this file are: {}", tag.key, quoted_list(values))
    }
}

/// Per day: amount, first position, and whether any part is estimated.
#[derive(Default)]
struct Day {
    cost: f64,
    pos: (usize, usize),
    estimated: bool,
}

fn series_from_days(map: &mut SourceMap, service: String, currency: String, days: BTreeMap<Date, Day>) -> CostSeries {
    let mut daily = Vec::with_capacity(days.len());
    let mut estimated_days = Vec::new();
    for (i, (date, day)) in days.into_iter().enumerate() {
        map.insert(format!("daily_costs[{i}]"), day.pos.0, day.pos.1);
        if day.estimated {
            estimated_days.push(date);
        }
        daily.push(DailyCost { date, cost: day.cost });
    }
    CostSeries {
        service,
        currency,
        // A billing export states spend, never a budget.
        budget_usd_monthly: None,
        daily,
        cost_breakdown: serde_json::Value::Object(serde_json::Map::new()),
        collected_at: None,
        estimated_days,
    }
}

// ---------------------------------------------------------------------------------------------
// FOCUS 1.x CSV

const FOCUS_SERVICE: &str = "(no ServiceName)";

/// A FOCUS cell that cannot be read (recorded as an error at its row and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum FocusCellError {
    #[error("{text:?} is not an ISO 8601 date-time (e.g. 2026-01-01T00:00:00Z)")]
    NotADateTime { text: String },
    #[error("{text:?}: {reason}")]
    NoSuchInstant { text: String, reason: String },
    #[error("must be a JSON object of tags ({{\"app\": \"checkout-api\"}}), got {found}")]
    TagsNotAnObject { found: String },
    #[error("must be a JSON object of tags ({{\"app\": \"checkout-api\"}}): {reason}")]
    TagsNotJson { reason: String },
}

/// The UTC calendar day of a FOCUS datetime (`2026-01-01T00:00:00Z`, `2026-01-01 00:00:00`,
/// with or without an offset, or a bare date).
fn focus_instant(s: &str) -> Result<(Date, Option<jiff::Timestamp>), FocusCellError> {
    let t = s.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok((ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).date(), Some(ts)));
    }
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        let ts = jiff::tz::TimeZone::UTC
            .to_timestamp(dt)
            .map_err(|e| FocusCellError::NoSuchInstant { text: s.to_string(), reason: e.to_string() })?;
        return Ok((dt.date(), Some(ts)));
    }
    if let Ok(d) = t.parse::<Date>() {
        return Ok((d, None));
    }
    Err(FocusCellError::NotADateTime { text: s.to_string() })
}

/// Whether a FOCUS `Tags` cell (a JSON object, or empty / `null` for no tags) has `tag`. A
/// string value is compared as is; a `true` (a valueless tag) or a number by its JSON text.
fn focus_tag_value(cell: &str, key: &str, keys: &mut BTreeSet<String>) -> Result<Option<String>, FocusCellError> {
    let t = cell.trim();
    if t.is_empty() || t == "null" {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(serde_json::Value::Object(m)) => Ok({
            for k in m.keys() {
                if keys.len() >= MAX_LISTED_KEYS {
                    break;
                }
                if !keys.contains(k) {
                    keys.insert(k.clone());
                }
            }
            match m.get(key) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(v)) => Some(v.clone()),
                Some(other) => Some(other.to_string()),
            }
        }),
        Ok(other) => Err(FocusCellError::TagsNotAnObject { found: other.to_string() }),
        Err(e) => Err(FocusCellError::TagsNotJson { reason: e.to_string() }),
    }
}

fn load_focus(src: &Source, sel: &CostSelection) -> Result<Loaded<CostSeries>, Vec<ConfigError>> {
    let mut map = SourceMap::new();
    map.insert("", 1, 1);
    map.insert("daily_costs", 1, 1);
    let mut d = Diags::new(src, map);
    let text = src.text.strip_prefix('\u{feff}').unwrap_or(&src.text);
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(text.as_bytes());
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(vec![ConfigError::at(&src.path, "", Some((1, 1)), format!("not a CSV file: {e}"))]),
    };
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let header_err = |d: &mut Diags, msg: String| {
        d.map.insert("header", 1, 1);
        d.error("header", msg);
    };
    let start_i = col("ChargePeriodStart");
    let end_i = col("ChargePeriodEnd");
    let service_i = col("ServiceName");
    let currency_i = col("BillingCurrency");
    let tags_i = col("Tags");
    let (cost_i, cost_name) = match (col("EffectiveCost"), col("BilledCost")) {
        (Some(i), _) => (Some(i), "EffectiveCost"),
        (None, Some(i)) => (Some(i), "BilledCost"),
        (None, None) => (None, "EffectiveCost"),
    };
    for (i, name) in [(start_i, "ChargePeriodStart"), (service_i, "ServiceName"), (currency_i, "BillingCurrency")] {
        if i.is_none() {
            header_err(&mut d, format!("has no {name} column; a FOCUS 1.x export needs it"));
        }
    }
    if cost_i.is_none() {
        header_err(&mut d, "has neither an EffectiveCost nor a BilledCost column".into());
    }
    if let Some(tag) = &sel.tag
        && tags_i.is_none()
    {
        header_err(&mut d, format!("has no Tags column, so no row can be selected by the tag {tag} (--cost-tag)"));
    }
    let (Some(start_i), Some(service_i), Some(currency_i), Some(cost_i)) = (start_i, service_i, currency_i, cost_i)
    else {
        return d.finish(None);
    };
    if d.has_errors() {
        return d.finish(None);
    }

    struct Row {
        line: usize,
        service: String,
        /// The selected tag's value on this row, when a tag is selected and the row has it.
        tag_value: Option<String>,
        currency: String,
        date: Date,
        cost: f64,
    }
    let mut rows = Vec::new();
    let mut tag_keys = BTreeSet::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                let field = format!("line {line}");
                d.map.insert(field.clone(), line, 1);
                d.error(field, format!("not a valid CSV row: {e}"));
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line() as usize);
        let cell = |i: usize| rec.get(i).unwrap_or("").trim();
        let at = |d: &mut Diags, name: &str| {
            let field = format!("line {line}.{name}");
            d.map.insert(field.clone(), line, 1);
            field
        };
        let date = match focus_instant(cell(start_i)) {
            Ok((date, start)) => {
                if let (Some(ei), Some(start)) = (end_i, start)
                    && !cell(ei).is_empty()
                    && let Ok((_, Some(end))) = focus_instant(cell(ei))
                    && end.duration_since(start) > jiff::SignedDuration::from_hours(24)
                {
                    let f = at(&mut d, "ChargePeriodEnd");
                    d.error(
                        f,
                        format!(
                            "the charge period {} to {} is longer than one day; Guardrail needs a daily (or finer) export",
                            cell(start_i),
                            cell(ei)
                        ),
                    );
                    continue;
                }
                date
            }
            Err(e) => {
                let f = at(&mut d, "ChargePeriodStart");
                d.error(f, e.to_string());
                continue;
            }
        };
        let cost = match cell(cost_i).parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => {
                let f = at(&mut d, cost_name);
                d.error(f, format!("must be a finite amount, got {:?}", cell(cost_i)));
                continue;
            }
        };
        let service = match cell(service_i) {
            "" => FOCUS_SERVICE.to_string(),
            s => s.to_string(),
        };
        // Tags are read only when they select rows: an unused column cannot refuse a file.
        let tag_value = match (&sel.tag, tags_i) {
            (Some(tag), Some(ti)) => match focus_tag_value(cell(ti), &tag.key, &mut tag_keys) {
                Ok(v) => v,
                Err(e) => {
                    let f = at(&mut d, "Tags");
                    d.error(f, e.to_string());
                    continue;
                }
            },
            _ => None,
        };
        rows.push(Row { line, service, tag_value, currency: cell(currency_i).to_string(), date, cost });
    }
    if d.has_errors() {
        return d.finish(None);
    }
    if rows.is_empty() {
        d.error("daily_costs", "has no cost rows");
        return d.finish(None);
    }
    let services: BTreeSet<String> = rows.iter().map(|r| r.service.clone()).collect();
    if let Some(msg) = slo_service_guard(sel, &services, "ServiceName") {
        header_err(&mut d, format!("ServiceName {msg}"));
        return d.finish(None);
    }
    if let Some(want) = &sel.provider_service
        && !services.contains(want)
    {
        header_err(&mut d, format!("ServiceName {}", no_such_service(want, &services)));
        return d.finish(None);
    }
    let in_service = |r: &Row| sel.provider_service.as_ref().is_none_or(|s| &r.service == s);
    let selected = |r: &Row| in_service(r) && sel.tag.as_ref().is_none_or(|t| r.tag_value.as_ref() == Some(&t.value));
    if let Some(tag) = &sel.tag
        && !rows.iter().any(selected)
    {
        let values: BTreeSet<String> =
            rows.iter().filter(|r| in_service(r)).filter_map(|r| r.tag_value.clone()).collect();
        let mut msg = format!("Tags {}", no_such_tag(tag, &values, &tag_keys));
        if let Some(s) = &sel.provider_service {
            msg.push_str(&format!(" (among the rows of provider service {s:?})"));
        }
        header_err(&mut d, msg);
        return d.finish(None);
    }
    // Every day the export covers (any row) is a day of the series: a day without a selected
    // row is a day of no spend for the selection, as Cost Explorer leaves out zero-cost groups.
    let mut days: BTreeMap<Date, Day> = BTreeMap::new();
    for r in &rows {
        days.entry(r.date).or_insert_with(|| Day { pos: (r.line, 1), ..Day::default() });
    }
    let mut currencies: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows.iter().filter(|r| selected(r)) {
        currencies.entry(&r.currency).or_insert(r.line);
        if let Some(day) = days.get_mut(&r.date) {
            day.cost += r.cost;
        }
    }
    let what = selection_label(sel);
    if currencies.len() > 1 {
        let list = currencies.iter().map(|(c, l)| format!("{c:?} (first at line {l})")).collect::<Vec<_>>();
        let first = currencies.values().copied().max().unwrap_or(1);
        let f = format!("line {first}.BillingCurrency");
        d.map.insert(f.clone(), first, 1);
        d.error(f, format!("mixed currencies for {what}: {}; convert to one currency first", list.join(", ")));
        return d.finish(None);
    }
    let currency = currencies.keys().next().map_or_else(|| "USD".to_string(), |c| c.to_string());
    let series = series_from_days(&mut d.map, sel.application(), currency, days);
    d.finish(Some(series))
}

/// How errors name the selected rows.
fn selection_label(sel: &CostSelection) -> String {
    match (&sel.tag, &sel.provider_service) {
        (None, None) => "the file".to_string(),
        (Some(t), None) => format!("the rows tagged {t}"),
        (None, Some(s)) => format!("{s:?}"),
        (Some(t), Some(s)) => format!("the rows of {s:?} tagged {t}"),
    }
}

// ---------------------------------------------------------------------------------------------
// AWS Cost Explorer GetCostAndUsage

/// Cost metrics Cost Explorer can return (`UsageQuantity` and `NormalizedUsageAmount` are not
/// spend).
const CE_COST_METRICS: &[&str] =
    &["UnblendedCost", "AmortizedCost", "BlendedCost", "NetUnblendedCost", "NetAmortizedCost"];

fn load_aws_ce(src: &Source, sel: &CostSelection) -> Result<Loaded<CostSeries>, Vec<ConfigError>> {
    let root = yaml::parse_json(src)?;
    let mut d = Diags::new(src, SourceMap::from_node(&root));
    let series = read_ce(&mut d, &root, sel);
    d.finish(series)
}

fn get<'n>(m: &'n [(String, Node)], k: &str) -> Option<&'n Node> {
    m.iter().find(|(key, _)| key == k).map(|(_, v)| v)
}

fn ce_amount(d: &mut Diags, path: &str, metric: &Node) -> Option<(f64, String)> {
    let Some(m) = metric.as_map() else {
        d.error(path, format!("must be a mapping {{Amount, Unit}}, got {}", metric.describe()));
        return None;
    };
    let amount = match get(m, "Amount").map(|n| &n.value) {
        Some(NodeValue::Str(s)) => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                d.error(format!("{path}.Amount"), format!("must be a decimal amount, got {s:?}"));
                None
            }
        },
        Some(NodeValue::Int(i)) => Some(*i as f64),
        Some(NodeValue::Float(f)) if f.is_finite() => Some(*f),
        Some(_) => {
            d.error(format!("{path}.Amount"), "must be a decimal amount (a string, as AWS writes it)");
            None
        }
        None => {
            d.error(path, "has no Amount");
            None
        }
    };
    let unit = match get(m, "Unit").and_then(Node::as_str) {
        Some(u) => Some(u.to_string()),
        None => {
            d.error(path, "has no Unit (the currency)");
            None
        }
    };
    Some((amount?, unit?))
}

/// What a Cost Explorer response is grouped by: the position of each group key in `Keys`.
#[derive(Default)]
struct CeGrouping {
    /// Position of the `DIMENSION` `SERVICE` key.
    service: Option<usize>,
    /// `TAG` keys by position.
    tags: Vec<(usize, String)>,
    /// Every group-by as written, for messages.
    described: Vec<String>,
}

fn ce_grouping(d: &mut Diags, top: &[(String, Node)]) -> Option<CeGrouping> {
    let mut g = CeGrouping::default();
    let Some(defs) = get(top, "GroupDefinitions").and_then(Node::as_seq) else {
        return Some(g);
    };
    for (i, def) in defs.iter().enumerate() {
        let m = def.as_map();
        let ty = m.and_then(|m| get(m, "Type")).and_then(Node::as_str).unwrap_or("");
        let key = m.and_then(|m| get(m, "Key")).and_then(Node::as_str).unwrap_or("");
        g.described.push(format!("{ty} {key}"));
        match (ty, key) {
            ("DIMENSION", "SERVICE") => g.service = Some(i),
            ("TAG", k) if !k.is_empty() => g.tags.push((i, k.to_string())),
            _ => {
                d.error(
                    format!("GroupDefinitions[{i}]"),
                    format!(
                        "groups by {ty} {key:?}; Guardrail reads results ungrouped or grouped by DIMENSION SERVICE \
                         and/or TAG keys only"
                    ),
                );
                return None;
            }
        }
    }
    Some(g)
}

fn read_ce(d: &mut Diags, root: &Node, sel: &CostSelection) -> Option<CostSeries> {
    let Some(top) = root.as_map() else {
        d.error("", format!("must be a GetCostAndUsage response object, got {}", root.describe()));
        return None;
    };
    if let Some(tok) = get(top, "NextPageToken")
        && !tok.is_null()
    {
        d.error(
            "NextPageToken",
            "is set: this is one page of a longer response; fetch every page and concatenate ResultsByTime",
        );
        return None;
    }
    let grouping = ce_grouping(d, top)?;
    let grouped_by = if grouping.described.is_empty() {
        "is not grouped (no GroupDefinitions)".to_string()
    } else {
        format!("groups by {}", grouping.described.join(" and "))
    };
    // Where the selected tag and service are in each group's Keys.
    let tag_pos = match &sel.tag {
        None => None,
        Some(tag) => match grouping.tags.iter().find(|(_, k)| *k == tag.key) {
            Some((i, _)) => Some(*i),
            None => {
                d.error(
                    "GroupDefinitions",
                    format!(
                        "the response {grouped_by}, so its rows cannot be selected by the tag {tag} (--cost-tag): \
                         request it grouped by the tag (GroupBy Type=TAG,Key={})",
                        tag.key
                    ),
                );
                return None;
            }
        },
    };
    let service_pos = match (&sel.provider_service, grouping.service) {
        (None, p) => p,
        (Some(_), Some(p)) => Some(p),
        (Some(s), None) => {
            d.error(
                "GroupDefinitions",
                format!(
                    "the response {grouped_by}, so its rows cannot be selected by the provider service {s:?} \
                     (--cost-service): request it grouped by service (GroupBy Type=DIMENSION,Key=SERVICE)"
                ),
            );
            return None;
        }
    };
    let Some(results) = get(top, "ResultsByTime") else {
        d.error("", "has no ResultsByTime: not a Cost Explorer GetCostAndUsage response");
        return None;
    };
    let Some(results) = results.as_seq() else {
        d.error("ResultsByTime", format!("must be a list, got {}", results.describe()));
        return None;
    };
    if results.is_empty() {
        d.error("ResultsByTime", "is empty: no spend to compare");
        return None;
    }
    let key_at = |gm: &[(String, Node)], i: usize| -> Option<String> {
        get(gm, "Keys").and_then(Node::as_seq).and_then(|k| k.get(i)).and_then(Node::as_str).map(str::to_string)
    };
    let tag_key = sel.tag.as_ref().map(|t| format!("{}${}", t.key, t.value));
    let in_service = |gm: &[(String, Node)]| match (&sel.provider_service, service_pos) {
        (Some(want), Some(p)) => key_at(gm, p).as_deref() == Some(want.as_str()),
        _ => true,
    };
    let selected = |gm: &[(String, Node)]| {
        in_service(gm)
            && match (&tag_key, tag_pos) {
                (Some(want), Some(p)) => key_at(gm, p).as_deref() == Some(want.as_str()),
                _ => true,
            }
    };

    // First pass: which metric, whether grouped, which services and tag values.
    let mut metrics = BTreeSet::new();
    let mut services = BTreeSet::new();
    let mut tag_values = BTreeSet::new();
    let mut grouped = false;
    let mut any_selected = false;
    for r in results {
        let Some(m) = r.as_map() else { continue };
        if let Some(t) = get(m, "Total").and_then(Node::as_map) {
            metrics.extend(t.iter().map(|(k, _)| k.clone()));
        }
        for g in get(m, "Groups").and_then(Node::as_seq).unwrap_or(&[]) {
            grouped = true;
            let Some(gm) = g.as_map() else { continue };
            if let Some(ms) = get(gm, "Metrics").and_then(Node::as_map) {
                metrics.extend(ms.iter().map(|(k, _)| k.clone()));
            }
            if let Some(k) = service_pos.and_then(|p| key_at(gm, p)) {
                services.insert(k);
            }
            if let (Some(tag), Some(p)) = (&sel.tag, tag_pos)
                && in_service(gm)
                && let Some(k) = key_at(gm, p)
            {
                let value = k.strip_prefix(&format!("{}$", tag.key)).unwrap_or(&k);
                tag_values.insert(if value.is_empty() { "(untagged)".to_string() } else { value.to_string() });
            }
            any_selected |= selected(gm);
        }
    }
    if grouped && grouping.described.is_empty() && !sel.is_all() {
        d.error("ResultsByTime", "has Groups but no GroupDefinitions, so Guardrail cannot tell what the groups are");
        return None;
    }
    if let Some(msg) = slo_service_guard(sel, &services, "the SERVICE dimension") {
        d.error("GroupDefinitions", format!("the response {msg}"));
        return None;
    }
    if let Some(want) = &sel.provider_service
        && !services.contains(want)
    {
        d.error("ResultsByTime", no_such_service(want, &services));
        return None;
    }
    if let Some(tag) = &sel.tag
        && !any_selected
    {
        d.error("ResultsByTime", no_such_tag(tag, &tag_values, &BTreeSet::new()));
        return None;
    }
    let cost_metrics: Vec<&String> = metrics.iter().filter(|m| CE_COST_METRICS.contains(&m.as_str())).collect();
    let metric = match cost_metrics.as_slice() {
        [one] => (*one).clone(),
        [] => {
            d.error(
                "ResultsByTime",
                format!(
                    "has no cost metric (one of {CE_COST_METRICS:?}); found {:?}",
                    metrics.iter().collect::<Vec<_>>()
                ),
            );
            return None;
        }
        several => {
            d.error(
                "ResultsByTime",
                format!("has several cost metrics {several:?}; request one (Metrics=[\"UnblendedCost\"]) so the figure is unambiguous"),
            );
            return None;
        }
    };
    let what = selection_label(sel);

    let mut days: BTreeMap<Date, Day> = BTreeMap::new();
    let mut first_index: BTreeMap<Date, usize> = BTreeMap::new();
    let mut currencies: BTreeMap<String, String> = BTreeMap::new();
    for (i, r) in results.iter().enumerate() {
        let p = format!("ResultsByTime[{i}]");
        let Some(m) = r.as_map() else {
            d.error(&p, format!("must be a mapping, got {}", r.describe()));
            continue;
        };
        let period = get(m, "TimePeriod").and_then(Node::as_map);
        let start = period
            .and_then(|t| get(t, "Start"))
            .and_then(|n| crate::common::date(d, &format!("{p}.TimePeriod.Start"), n));
        let end =
            period.and_then(|t| get(t, "End")).and_then(|n| crate::common::date(d, &format!("{p}.TimePeriod.End"), n));
        let (Some(start), Some(end)) = (start, end) else {
            if period.is_none() {
                d.error(&p, "has no TimePeriod {Start, End}");
            }
            continue;
        };
        if start.tomorrow().ok() != Some(end) {
            d.error(
                format!("{p}.TimePeriod"),
                format!("runs from {start} to {end}; Guardrail needs Granularity DAILY (End = Start + 1 day)"),
            );
            continue;
        }
        if let Some(prev) = first_index.get(&start) {
            d.error(
                format!("{p}.TimePeriod.Start"),
                format!("day {start} appears twice (first as ResultsByTime[{prev}])"),
            );
            continue;
        }
        first_index.insert(start, i);
        let estimated = match get(m, "Estimated").map(|n| &n.value) {
            None | Some(NodeValue::Null) => false,
            Some(NodeValue::Bool(b)) => *b,
            Some(_) => {
                d.error(format!("{p}.Estimated"), "must be true or false");
                continue;
            }
        };
        let pos = r.anchor_pos().unwrap_or((0, 0));
        let mut amount = 0.0;
        if grouped {
            // A day without a selected group is a day of no spend: AWS leaves zero-cost
            // groups out.
            for (j, g) in get(m, "Groups").and_then(Node::as_seq).unwrap_or(&[]).iter().enumerate() {
                let gp = format!("{p}.Groups[{j}]");
                let Some(gm) = g.as_map() else { continue };
                if !selected(gm) {
                    continue;
                }
                let mp = format!("{gp}.Metrics.{metric}");
                match get(gm, "Metrics").and_then(Node::as_map).and_then(|ms| get(ms, &metric)) {
                    Some(n) => {
                        if let Some((a, unit)) = ce_amount(d, &mp, n) {
                            amount += a;
                            currencies.entry(unit).or_insert(mp);
                        }
                    }
                    None => d.error(format!("{gp}.Metrics"), format!("has no {metric}")),
                }
            }
        } else {
            let mp = format!("{p}.Total.{metric}");
            match get(m, "Total").and_then(Node::as_map).and_then(|t| get(t, &metric)) {
                Some(n) => {
                    if let Some((a, unit)) = ce_amount(d, &mp, n) {
                        amount = a;
                        currencies.entry(unit).or_insert(mp);
                    }
                }
                None => d.error(&p, format!("has no Total.{metric}")),
            }
        }
        days.insert(start, Day { cost: amount, pos, estimated });
    }
    if currencies.len() > 1 {
        let list = currencies.iter().map(|(c, at)| format!("{c:?} (first at {at})")).collect::<Vec<_>>();
        let last = currencies.values().next_back().cloned().unwrap_or_default();
        d.error(last, format!("mixed currencies for {what}: {}; convert to one currency first", list.join(", ")));
        return None;
    }
    if d.has_errors() {
        return None;
    }
    let currency = currencies.into_keys().next().unwrap_or_else(|| "USD".to_string());
    Some(series_from_days(&mut d.map, sel.application(), currency, days))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(tag: Option<&str>, service: Option<&str>) -> CostSelection {
        CostSelection {
            tag: tag.map(|t| t.parse().expect("a tag")),
            provider_service: service.map(str::to_string),
            slo_service: None,
        }
    }

    #[test]
    fn cost_tags_are_key_equals_value() {
        let t: CostTag = " app = checkout-api ".parse().unwrap();
        assert_eq!((t.key.as_str(), t.value.as_str()), ("app", "checkout-api"));
        assert_eq!(t.to_string(), "app=checkout-api");
        assert_eq!("k=a=b".parse::<CostTag>().unwrap().value, "a=b");
        for bad in ["novalue", "app=", "=x", " = ", ""] {
            assert!(bad.parse::<CostTag>().unwrap_err().to_string().contains("KEY=VALUE"), "{bad:?}");
        }
        assert_eq!(serde_json::to_value(&t).unwrap(), serde_json::json!("app=checkout-api"));
        assert_eq!("novalue".parse::<CostTag>(), Err(CostTagError::NoEquals { given: "novalue".into() }));
        assert_eq!("app=".parse::<CostTag>(), Err(CostTagError::Empty { given: "app=".into() }));
        assert_eq!("xls".parse::<CostFormat>(), Err(CostFormatError { given: "xls".into() }));
    }

    const FOCUS: &str = "ChargePeriodStart,EffectiveCost,BillingCurrency,ServiceName,Tags\n\
        2026-01-01T00:00:00Z,10,USD,EC2,\"{\"\"app\"\": \"\"a\"\"}\"\n\
        2026-01-01T00:00:00Z,1,USD,S3,\"{\"\"app\"\": \"\"a\"\"}\"\n\
        2026-01-01T00:00:00Z,100,USD,EC2,\"{\"\"app\"\": \"\"b\"\", \"\"flag\"\": true}\"\n\
        2026-01-01T00:00:00Z,1000,USD,S3,\n\
        2026-01-02T00:00:00Z,20,USD,EC2,\"{\"\"app\"\": \"\"b\"\"}\"\n";

    fn focus(sel: &CostSelection) -> Result<CostSeries, String> {
        load_cost_as(&Source::from_text("f.csv", FOCUS), None, sel)
            .map(|l| l.value)
            .map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))
    }

    fn costs(s: &CostSeries) -> Vec<f64> {
        s.daily.iter().map(|d| d.cost).collect()
    }

    #[test]
    fn focus_rows_are_the_whole_file_or_the_selection() {
        let all = focus(&sel(None, None)).unwrap();
        assert_eq!((costs(&all), all.service.as_str(), all.budget_usd_monthly), (vec![1111.0, 20.0], "unknown", None));
        // The tag's rows over every provider service; a covered day without one is 0.
        let a = focus(&sel(Some("app=a"), None)).unwrap();
        assert_eq!((costs(&a), a.service.as_str()), (vec![11.0, 0.0], "a"));
        assert_eq!(costs(&focus(&sel(Some("app=a"), Some("EC2"))).unwrap()), vec![10.0, 0.0]);
        assert_eq!(costs(&focus(&sel(None, Some("S3"))).unwrap()), vec![1001.0, 0.0]);
        // A valueless tag is `true`.
        assert_eq!(costs(&focus(&sel(Some("flag=true"), None)).unwrap()), vec![100.0, 0.0]);
        let e = focus(&sel(Some("app=c"), None)).unwrap_err();
        assert!(e.contains("no row tagged app=c") && e.contains("\"a\", \"b\""), "{e}");
        let e = focus(&sel(Some("app=b"), Some("S3"))).unwrap_err();
        assert!(e.contains("among the rows of provider service \"S3\""), "{e}");
        let e = focus(&sel(None, Some("RDS"))).unwrap_err();
        assert!(e.contains("no provider service \"RDS\"") && e.contains("\"EC2\", \"S3\""), "{e}");
    }

    #[test]
    fn a_missing_tag_key_lists_the_keys_and_long_names_are_cut() {
        let e = focus(&sel(Some("user:app=a"), None)).unwrap_err();
        assert!(
            e.contains("no row has the tag \"user:app\" at all; the tag keys in this file are: \"app\", \"flag\""),
            "{e}"
        );
        let long = "x".repeat(100_000);
        let text = format!(
            "ChargePeriodStart,EffectiveCost,BillingCurrency,ServiceName\n2026-01-01,1,USD,{long}\n2026-01-01,1,USD,b\n"
        );
        let s = CostSelection { provider_service: Some("c".into()), ..CostSelection::default() };
        let e = load_cost_as(&Source::from_text("f.csv", text), None, &s).unwrap_err()[0].to_string();
        assert!(e.len() < 400 && e.contains("… (100000 characters)"), "{}", &e[..e.len().min(400)]);
    }

    #[test]
    fn service_naming_one_of_several_provider_services_is_refused_not_summed() {
        let mut s = sel(None, None);
        s.slo_service = Some("EC2".into());
        let e = focus(&s).unwrap_err();
        assert!(e.contains("--cost-service \"EC2\"") && e.contains("no longer selects"), "{e}");
        // A name the file does not have, or an explicit selection, is no ambiguity.
        s.slo_service = Some("checkout-api".into());
        assert!(focus(&s).is_ok());
        s.slo_service = Some("EC2".into());
        s.provider_service = Some("S3".into());
        assert!(focus(&s).is_ok());
    }
}
