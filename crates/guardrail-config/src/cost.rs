//! `data/cost.json` → [`CostSeries`].

use guardrail_core::cost::{CostSeries, DailyCost};

use crate::common::{
    Diags, Format, Loaded, Unknown, check_keys, date, get, mapping, number, optional, parse_as, required, string,
    timestamp, to_json,
};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::{Node, NodeValue};

/// Reads a daily cost series (JSON, or YAML when the name ends in `.yaml`/`.yml`).
///
/// Required: `daily_costs`, a non-empty list of `{date: "YYYY-MM-DD", cost: number}`.
/// Optional: `budget_usd_monthly` (number ≥ 0; absent: no budget, so the utilisation is
/// unavailable — the seed assumed 0 and reported 0 %), `service` (default `"unknown"`),
/// `currency` (default `"USD"`), `cost_breakdown` (anything, passed through; default `{}`),
/// `collected_at` (RFC 3339). The series is not analysed here: the caller runs
/// `cost::analyse` with its thresholds and positions its errors with [`Loaded::error_at`].
pub fn load_cost(src: &Source) -> Result<Loaded<CostSeries>, Vec<ConfigError>> {
    let root = parse_as(src, Format::Json)?;
    let mut d = Diags::new(src, SourceMap::from_node(&root));
    let series = read(&mut d, &root);
    d.finish(series)
}

/// Every key read from the top level.
const TOP_KEYS: &[&str] =
    &["service", "currency", "collected_at", "daily_costs", "budget_usd_monthly", "cost_breakdown"];

fn read(d: &mut Diags, root: &Node) -> Option<CostSeries> {
    let top = mapping(d, "", root)?;
    check_keys(d, "", top, TOP_KEYS, Unknown::WarnUnlessTypoOf(TOP_KEYS), |_| false);
    let daily = required(d, "", top, "daily_costs", "the list of {date, cost} records").and_then(|n| read_days(d, n));

    let budget = match get(top, "budget_usd_monthly") {
        None => Some(None),
        Some(n) => match number(d, "budget_usd_monthly", n) {
            Some(v) if v.value.is_finite() && v.value >= 0.0 => Some(Some(v.value)),
            Some(v) => {
                d.error("budget_usd_monthly", format!("must be a finite, non-negative amount, got {v}"));
                None
            }
            None => None,
        },
    };
    let text = |d: &mut Diags, key: &str, default: &str| match get(top, key) {
        None => Some(default.to_string()),
        Some(n) => string(d, key, n),
    };
    let service = text(d, "service", "unknown");
    let currency = text(d, "currency", "USD");
    let cost_breakdown =
        get(top, "cost_breakdown").map_or_else(|| serde_json::Value::Object(serde_json::Map::new()), to_json);
    let collected_at = match optional(top, "collected_at") {
        Some(n) => timestamp(d, "collected_at", n).map(Some),
        None => Some(None),
    };

    Some(CostSeries {
        service: service?,
        currency: currency?,
        budget_usd_monthly: budget?,
        daily: daily?,
        cost_breakdown,
        collected_at: collected_at?,
        estimated_days: Vec::new(),
    })
}

fn read_days(d: &mut Diags, node: &Node) -> Option<Vec<DailyCost>> {
    let p = "daily_costs";
    let items = match &node.value {
        NodeValue::Seq(items) => items,
        _ => {
            d.error(p, format!("must be a list of {{date, cost}} records, got {}", node.describe()));
            return None;
        }
    };
    if items.is_empty() {
        d.error(p, "is empty: no spend to compare");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let Some(entry) = mapping(d, &ip, item) else {
            ok = false;
            continue;
        };
        check_keys(d, &ip, entry, &["date", "cost"], Unknown::WarnUnlessTypoOf(&["date", "cost"]), |_| false);
        let date = required(d, &ip, entry, "date", "").and_then(|n| date(d, &format!("{ip}.date"), n));
        let cost = required(d, &ip, entry, "cost", "").and_then(|n| number(d, &format!("{ip}.cost"), n));
        match (date, cost) {
            (Some(date), Some(cost)) => out.push(DailyCost { date, cost: cost.value }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}
