//! Billing exports → [`CostSeries`]: FOCUS 1.x CSV and AWS Cost Explorer `GetCostAndUsage`
//! JSON, besides the seed's `cost.json` ([`crate::load_cost`]).
//!
//! Every format is normalised into one daily series for one service. What is checked here
//! (all fail closed):
//! - **service**: a file with several services needs a selection (`--service`); without one,
//!   or with a name the file does not have, the error lists the services it has;
//! - **currency**: the selected service's rows must share one currency; mixed currencies are
//!   an error naming the lines, never a sum of dollars and euros;
//! - **days**: FOCUS rows are summed per UTC calendar day of `ChargePeriodStart` (many line
//!   items per day is normal); a charge period longer than one day is an error (attributing a
//!   month's fee to its first day would fake a spike). A Cost Explorer day listed twice is an
//!   error; a day in `ResultsByTime` without a group for the service is a day with no spend
//!   (AWS leaves zero-cost groups out); a day missing from the file is a gap, which
//!   `cost::analyse` reports;
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

impl FromStr for CostFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "native" | "guardrail" => Ok(CostFormat::Native),
            "focus" | "focus-csv" => Ok(CostFormat::Focus),
            "aws-ce" | "aws" | "cost-explorer" => Ok(CostFormat::AwsCe),
            _ => Err(format!("unknown cost format {s:?}: expected native, focus or aws-ce")),
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

/// Reads a cost file in `format` (detected when `None`, see [`detect_cost_format`]) for the
/// selected `service` (required when the file has several).
pub fn load_cost_as(
    src: &Source,
    format: Option<CostFormat>,
    service: Option<&str>,
) -> Result<Loaded<CostSeries>, Vec<ConfigError>> {
    match format.unwrap_or_else(|| detect_cost_format(src)) {
        CostFormat::Native => {
            let loaded = crate::load_cost(src)?;
            if let Some(want) = service
                && loaded.value.service != want
                && loaded.value.service != "unknown"
            {
                return Err(vec![loaded.error_at(
                    "service",
                    format!("the cost data is for {:?} but --service selects {want:?}", loaded.value.service),
                )]);
            }
            Ok(loaded)
        }
        CostFormat::Focus => load_focus(src, service),
        CostFormat::AwsCe => load_aws_ce(src, service),
    }
}

fn pick_service(d: &mut Diags, field: &str, services: &BTreeSet<String>, want: Option<&str>) -> Option<String> {
    let list = services.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    match want {
        Some(w) if services.contains(w) => Some(w.to_string()),
        Some(w) => {
            d.error(field, format!("has no service {w:?}; the services in this file are: {list}"));
            None
        }
        None if services.len() == 1 => services.iter().next().cloned(),
        None if services.is_empty() => {
            d.error(field, "names no service: no cost rows");
            None
        }
        None => {
            d.error(
                field,
                format!("has {} services, so one must be selected with --service NAME: {list}", services.len()),
            );
            None
        }
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
        budget_usd_monthly: 0.0,
        daily,
        cost_breakdown: serde_json::json!({}),
        collected_at: None,
        estimated_days,
    }
}

// ---------------------------------------------------------------------------------------------
// FOCUS 1.x CSV

const FOCUS_SERVICE: &str = "(no ServiceName)";

/// The UTC calendar day of a FOCUS datetime (`2026-01-01T00:00:00Z`, `2026-01-01 00:00:00`,
/// with or without an offset, or a bare date).
fn focus_instant(s: &str) -> Result<(Date, Option<jiff::Timestamp>), String> {
    let t = s.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok((ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).date(), Some(ts)));
    }
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        let ts = jiff::tz::TimeZone::UTC.to_timestamp(dt).map_err(|e| e.to_string())?;
        return Ok((dt.date(), Some(ts)));
    }
    if let Ok(d) = t.parse::<Date>() {
        return Ok((d, None));
    }
    Err(format!("{s:?} is not an ISO 8601 date-time (e.g. 2026-01-01T00:00:00Z)"))
}

fn load_focus(src: &Source, want: Option<&str>) -> Result<Loaded<CostSeries>, Vec<ConfigError>> {
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
    let (Some(start_i), Some(service_i), Some(currency_i), Some(cost_i)) = (start_i, service_i, currency_i, cost_i)
    else {
        return d.finish(None);
    };

    struct Row {
        line: usize,
        service: String,
        currency: String,
        date: Date,
        cost: f64,
    }
    let mut rows = Vec::new();
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
                d.error(f, e);
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
        rows.push(Row { line, service, currency: cell(currency_i).to_string(), date, cost });
    }
    if d.has_errors() {
        return d.finish(None);
    }
    let services: BTreeSet<String> = rows.iter().map(|r| r.service.clone()).collect();
    let Some(service) = pick_service(&mut d, "ServiceName", &services, want) else {
        return d.finish(None);
    };
    let mut currencies: BTreeMap<&str, usize> = BTreeMap::new();
    let mut days: BTreeMap<Date, Day> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.service == service) {
        currencies.entry(&r.currency).or_insert(r.line);
        let day = days.entry(r.date).or_insert_with(|| Day { pos: (r.line, 1), ..Day::default() });
        day.cost += r.cost;
    }
    if currencies.len() > 1 {
        let list = currencies.iter().map(|(c, l)| format!("{c:?} (first at line {l})")).collect::<Vec<_>>();
        let first = currencies.values().copied().max().unwrap_or(1);
        let f = format!("line {first}.BillingCurrency");
        d.map.insert(f.clone(), first, 1);
        d.error(f, format!("mixed currencies for {service:?}: {}; convert to one currency first", list.join(", ")));
        return d.finish(None);
    }
    let currency = currencies.keys().next().map_or_else(|| "USD".to_string(), |c| c.to_string());
    let series = series_from_days(&mut d.map, service, currency, days);
    d.finish(Some(series))
}

// ---------------------------------------------------------------------------------------------
// AWS Cost Explorer GetCostAndUsage

/// Cost metrics Cost Explorer can return (`UsageQuantity` and `NormalizedUsageAmount` are not
/// spend).
const CE_COST_METRICS: &[&str] =
    &["UnblendedCost", "AmortizedCost", "BlendedCost", "NetUnblendedCost", "NetAmortizedCost"];

fn load_aws_ce(src: &Source, want: Option<&str>) -> Result<Loaded<CostSeries>, Vec<ConfigError>> {
    let root = yaml::parse_json(src)?;
    let mut d = Diags::new(src, SourceMap::from_node(&root));
    let series = read_ce(&mut d, &root, want);
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

fn read_ce(d: &mut Diags, root: &Node, want: Option<&str>) -> Option<CostSeries> {
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
    if let Some(defs) = get(top, "GroupDefinitions").and_then(Node::as_seq) {
        let keys: Vec<&str> =
            defs.iter().filter_map(|g| g.as_map().and_then(|m| get(m, "Key")).and_then(Node::as_str)).collect();
        if !defs.is_empty() && keys != ["SERVICE"] {
            d.error(
                "GroupDefinitions",
                format!("groups by {keys:?}; Guardrail reads ungrouped results or results grouped by SERVICE only"),
            );
            return None;
        }
    }
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

    // First pass: which metric, whether grouped, which services.
    let mut metrics = BTreeSet::new();
    let mut services = BTreeSet::new();
    let mut grouped = false;
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
            if let Some(k) = get(gm, "Keys").and_then(Node::as_seq).and_then(|k| k.first()).and_then(Node::as_str) {
                services.insert(k.to_string());
            }
        }
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
    let service = if grouped {
        pick_service(d, "ResultsByTime", &services, want)?
    } else {
        want.unwrap_or("unknown").to_string()
    };

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
            for (j, g) in get(m, "Groups").and_then(Node::as_seq).unwrap_or(&[]).iter().enumerate() {
                let gp = format!("{p}.Groups[{j}]");
                let Some(gm) = g.as_map() else { continue };
                let key = get(gm, "Keys").and_then(Node::as_seq).and_then(|k| k.first()).and_then(Node::as_str);
                if key != Some(service.as_str()) {
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
        d.error(last, format!("mixed currencies for {service:?}: {}; convert to one currency first", list.join(", ")));
        return None;
    }
    if d.has_errors() {
        return None;
    }
    let currency = currencies.into_keys().next().unwrap_or_else(|| "USD".to_string());
    Some(series_from_days(&mut d.map, service, currency, days))
}
