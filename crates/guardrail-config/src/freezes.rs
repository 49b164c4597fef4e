//! The `freezes:` and `maintenance:` blocks of the policy file → [`TimeWindow`]s.
//!
//! They live in the policy file, beside the rules that use `in_freeze` / `in_maintenance`:
//! one file to review, and the audit record (which holds the policy file's full text) replays
//! the same windows.
//!
//! ```yaml
//! freezes:
//!   - name: black-friday                  # required, unique across both lists
//!     timezone: America/New_York          # IANA name, required
//!     start: 2026-11-26T00:00:00          # fixed range: civil times in the zone, end exclusive
//!     end: 2026-12-01T00:00:00
//!   - name: weekend
//!     timezone: Europe/Berlin
//!     rrule: FREQ=WEEKLY;BYDAY=SA,SU      # recurring: RFC 5545 subset (see guardrail_core::freeze)
//!     dtstart: 2026-01-03T00:00:00
//!     duration: 24h                        # 90s, 15m, 24h, 7d
//! maintenance:
//!   - name: db-patching
//!     timezone: UTC
//!     rrule: FREQ=MONTHLY;BYDAY=1TU
//!     dtstart: 2026-01-06T02:00:00
//!     duration: 2h
//! ```
//!
//! Time zones come from the IANA database bundled into the binary (jiff's `tzdb-bundle-always`),
//! not from `/usr/share/zoneinfo`: the same on every machine (a fresh Debian without `tzdata`
//! included), and a replay decides with the same rules. An unknown zone, a range that ends
//! before it starts, a bad RRULE or duration is an error with its line and column.

use guardrail_core::freeze::{Schedule, TimeWindow, WindowKind, parse_rrule};
use jiff::civil::DateTime;

use crate::common::{Diags, Format, Loaded, Unknown, check_keys, get, mapping, parse_as, required, string};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::Node;

const KEYS: &[&str] = &["name", "timezone", "start", "end", "rrule", "dtstart", "duration", "description"];

/// Reads the freeze and maintenance windows of a policy file (none when it has neither block).
pub fn load_freezes(src: &Source) -> Result<Loaded<Vec<TimeWindow>>, Vec<ConfigError>> {
    let root = parse_as(src, Format::Yaml)?;
    read_freezes(src, &root)
}

/// [`load_freezes`] on a policy file already parsed (`root` is `src`'s tree), so that
/// [`load_policies`](crate::load_policies) reads rules and windows from one parse.
pub(crate) fn read_freezes(src: &Source, root: &Node) -> Result<Loaded<Vec<TimeWindow>>, Vec<ConfigError>> {
    let mut d = Diags::new(src, SourceMap::from_node(root));
    let mut out = Vec::new();
    let mut ok = true;
    if let Some(top) = root.as_map() {
        for (key, kind) in [("freezes", WindowKind::Freeze), ("maintenance", WindowKind::Maintenance)] {
            let Some(node) = get(top, key) else { continue };
            let Some(items) = node.as_seq() else {
                d.error(key, format!("must be a list of windows, got {}", node.describe()));
                ok = false;
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                match read_window(&mut d, &format!("{key}[{i}]"), item, kind) {
                    Some(w) => out.push((format!("{key}[{i}]"), w)),
                    None => ok = false,
                }
            }
        }
    }
    let mut names = std::collections::BTreeMap::new();
    for (path, w) in &out {
        if let Some(first) = names.insert(w.name.clone(), path.clone()) {
            d.error(format!("{path}.name"), format!("{:?} is already the name of {first}", w.name));
            ok = false;
        }
    }
    d.finish(ok.then(|| out.into_iter().map(|(_, w)| w).collect()))
}

fn civil(d: &mut Diags, path: &str, node: &Node) -> Option<DateTime> {
    let s = string(d, path, node)?;
    if s.ends_with('Z') || s.contains('+') || s.get(19..).is_some_and(|r| r.contains('-')) {
        d.error(
            path,
            format!(
                "must be a civil time without offset (the zone is `timezone`), e.g. 2026-11-26T00:00:00, got {s:?}"
            ),
        );
        return None;
    }
    match s.parse::<DateTime>() {
        Ok(t) => Some(t),
        Err(e) => {
            d.error(path, format!("{s:?} is not a date-time like 2026-11-26T00:00:00: {e}"));
            None
        }
    }
}

fn read_window(d: &mut Diags, p: &str, node: &Node, kind: WindowKind) -> Option<TimeWindow> {
    let m = mapping(d, p, node)?;
    check_keys(d, p, m, KEYS, Unknown::Error, |_| false);
    let f = |k: &str| format!("{p}.{k}");
    let name = required(d, p, m, "name", "").and_then(|n| string(d, &f("name"), n));
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        d.error(f("name"), "must not be empty");
        return None;
    }
    let tz_name = required(d, p, m, "timezone", "an IANA zone such as Europe/Berlin or UTC")
        .and_then(|n| string(d, &f("timezone"), n));
    let tz = tz_name.as_deref().and_then(|z| match jiff::tz::TimeZoneDatabase::bundled().get(z) {
        Ok(tz) => Some(tz),
        Err(_) => {
            d.error(
                f("timezone"),
                format!("{z:?} is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)"),
            );
            None
        }
    });
    let fixed = get(m, "start").is_some() || get(m, "end").is_some();
    let recurring = get(m, "rrule").is_some() || get(m, "dtstart").is_some() || get(m, "duration").is_some();
    let schedule = match (fixed, recurring) {
        (true, true) => {
            d.error(p, "give either start/end (a fixed range) or rrule/dtstart/duration (a recurrence), not both");
            None
        }
        (false, false) => {
            d.error(p, "needs start and end (a fixed range) or rrule, dtstart and duration (a recurrence)");
            None
        }
        (true, false) => {
            let start = required(d, p, m, "start", "").and_then(|n| civil(d, &f("start"), n));
            let end = required(d, p, m, "end", "").and_then(|n| civil(d, &f("end"), n));
            match (start, end) {
                (Some(s), Some(e)) if s < e => Some(Schedule::Fixed { start: s, end: e }),
                (Some(s), Some(e)) => {
                    d.error(f("end"), format!("{e} is not after start {s}"));
                    None
                }
                _ => None,
            }
        }
        (false, true) => {
            let dtstart = required(d, p, m, "dtstart", "").and_then(|n| civil(d, &f("dtstart"), n));
            let duration = required(d, p, m, "duration", "how long each occurrence lasts (e.g. 2h)")
                .and_then(|n| string(d, &f("duration"), n))
                .and_then(|t| match guardrail_core::freshness::parse_duration(&t) {
                    Ok(v) if v.is_positive() => Some(v),
                    Ok(_) => {
                        d.error(f("duration"), "must be longer than 0");
                        None
                    }
                    Err(e) => {
                        d.error(f("duration"), e);
                        None
                    }
                });
            let rule = required(d, p, m, "rrule", "").and_then(|n| string(d, &f("rrule"), n));
            let rule = match (rule, &tz) {
                (Some(r), Some(tz)) => match parse_rrule(&r, tz) {
                    Ok(rule) => Some(rule),
                    Err(e) => {
                        d.error(f("rrule"), e);
                        None
                    }
                },
                _ => None,
            };
            match (dtstart, duration, rule) {
                (Some(dtstart), Some(duration), Some(rule)) => Some(Schedule::Recurring { dtstart, duration, rule }),
                _ => None,
            }
        }
    };
    Some(TimeWindow { name: name?, kind, tz_name: tz_name?, tz: tz?, schedule: schedule? })
}
