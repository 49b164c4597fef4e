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
//!
//! A window derives `Deserialize` and is read through [`crate::de`], each window on its own
//! so that every window's problems are reported. The blocks are Guardrail's, but the file is
//! the seed's policy file, so they are read as the rest of it is: YAML 1.1 as PyYAML reads it
//! (`name: on` is the boolean true, and the message says so). The dialect goes with the file.

use guardrail_core::freeze::{Schedule, TimeWindow, WindowKind, parse_rrule};
use jiff::civil::DateTime;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::common::{Diags, Format, Loaded, get, parse_as};
use crate::de::{from_node_at, present};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::Node;

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

fn civil(d: &mut Diags, path: &str, s: &str) -> Option<DateTime> {
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

/// One window as written. Its values are checked by [`read_window`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowSpec {
    name: String,
    #[serde(default, deserialize_with = "present")]
    timezone: Option<String>,
    #[serde(default, deserialize_with = "present")]
    start: Option<String>,
    #[serde(default, deserialize_with = "present")]
    end: Option<String>,
    #[serde(default, deserialize_with = "present")]
    rrule: Option<String>,
    #[serde(default, deserialize_with = "present")]
    dtstart: Option<String>,
    #[serde(default, deserialize_with = "present")]
    duration: Option<String>,
    /// For the people who keep the file.
    #[serde(default, rename = "description")]
    _description: Option<IgnoredAny>,
}

/// A required value the spec holds as an `Option` (to give a hint when it is absent).
fn needed<'s>(d: &mut Diags, p: &str, key: &str, value: &'s Option<String>, why: &str) -> Option<&'s str> {
    if value.is_none() {
        let msg = if why.is_empty() { "is required".to_string() } else { format!("is required: {why}") };
        d.error(format!("{p}.{key}"), msg);
    }
    value.as_deref()
}

fn read_window(d: &mut Diags, p: &str, node: &Node, kind: WindowKind) -> Option<TimeWindow> {
    // Each window on its own, so that the problems of every window are reported.
    let spec: WindowSpec = from_node_at(d, node, p)?;
    let f = |k: &str| format!("{p}.{k}");
    if spec.name.trim().is_empty() {
        d.error(f("name"), "must not be empty");
        return None;
    }
    let tz_name = needed(d, p, "timezone", &spec.timezone, "an IANA zone such as Europe/Berlin or UTC");
    let tz = tz_name.and_then(|z| match jiff::tz::TimeZoneDatabase::bundled().get(z) {
        Ok(tz) => Some(tz),
        Err(_) => {
            d.error(
                f("timezone"),
                format!("{z:?} is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)"),
            );
            None
        }
    });
    let fixed = spec.start.is_some() || spec.end.is_some();
    let recurring = spec.rrule.is_some() || spec.dtstart.is_some() || spec.duration.is_some();
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
            let start = needed(d, p, "start", &spec.start, "").and_then(|s| civil(d, &f("start"), s));
            let end = needed(d, p, "end", &spec.end, "").and_then(|s| civil(d, &f("end"), s));
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
            let dtstart = needed(d, p, "dtstart", &spec.dtstart, "").and_then(|s| civil(d, &f("dtstart"), s));
            let duration = needed(d, p, "duration", &spec.duration, "how long each occurrence lasts (e.g. 2h)")
                .and_then(|t| match guardrail_core::freshness::parse_duration(t) {
                    Ok(v) if v.is_positive() => Some(v),
                    Ok(_) => {
                        d.error(f("duration"), "must be longer than 0");
                        None
                    }
                    Err(e) => {
                        d.error(f("duration"), e.to_string());
                        None
                    }
                });
            let rule = needed(d, p, "rrule", &spec.rrule, "");
            let rule = match (rule, &tz) {
                (Some(r), Some(tz)) => match parse_rrule(r, tz) {
                    Ok(rule) => Some(rule),
                    Err(e) => {
                        d.error(f("rrule"), e.to_string());
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
    Some(TimeWindow { name: spec.name, kind, tz_name: tz_name?.to_string(), tz: tz?, schedule: schedule? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        load_freezes(&Source::from_text("p.yaml", text)).unwrap_err().into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn windows_are_read_and_every_windows_problems_are_reported() {
        let text = "freezes:\n  - name: bf\n    timezone: UTC\n    start: 2026-11-26T00:00:00\n    end: 2026-12-01T00:00:00\n\
                    maintenance:\n  - {name: db, timezone: UTC, rrule: FREQ=DAILY, dtstart: 2026-01-06T02:00:00, duration: 2h}\n";
        let w = load_freezes(&Source::from_text("p.yaml", text)).unwrap().value;
        assert_eq!(w.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["bf", "db"]);
        let text = "freezes:\n  - name: a\n    timezon: UTC\n    start: 2026-11-26T00:00:00\n    end: 2026-12-01T00:00:00\n\
                    \x20 - name: b\n    timezone: Mars/Base\n    start: 2026-11-26T00:00:00\n    end: 2026-11-01T00:00:00\n";
        assert_eq!(
            errors(text),
            [
                "p.yaml:2:5: freezes[0].timezone: is required: an IANA zone such as Europe/Berlin or UTC",
                "p.yaml:3:5: freezes[0].timezon: unknown key \"timezon\"; did you mean \"timezone\"?",
                "p.yaml:7:5: freezes[1].timezone: \"Mars/Base\" is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)",
                "p.yaml:9:5: freezes[1].end: 2026-11-01T00:00:00 is not after start 2026-11-26T00:00:00",
            ]
        );
        // The policy file is the seed's: YAML 1.1, and the message says why `on` is not a name.
        let e =
            errors("freezes:\n  - {name: on, timezone: UTC, start: 2026-11-26T00:00:00, end: 2026-12-01T00:00:00}\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("p.yaml:2:6: freezes[0].name: must be a string, got the boolean true (YAML 1.1"),
            "{e:?}"
        );
        assert_eq!(
            errors("freezes:\n  - {timezone: UTC, start: 2026-11-26T00:00:00, end: 2026-12-01T00:00:00}\n"),
            ["p.yaml:2:5: freezes[0].name: is required"]
        );
        assert_eq!(errors("maintenance: {}\n"), ["p.yaml:1:1: maintenance: must be a list of windows, got a mapping"]);
    }
}
