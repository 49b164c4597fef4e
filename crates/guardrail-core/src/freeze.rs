//! Change freezes and planned-maintenance windows: is a deploy at `now` inside one?
//!
//! Pure: the windows and their time zones come in as data (the config crate resolves IANA
//! names against the tz database bundled into the binary), and `now` is a parameter.
//!
//! A window is either a fixed range (`start` ≤ t < `end`, civil times in the window's zone) or
//! a recurrence: `DTSTART` plus a duration, repeated by an RFC 5545 `RRULE` subset —
//! `FREQ=DAILY|WEEKLY|MONTHLY`, `INTERVAL`, `BYDAY` (with an ordinal such as `1MO`/`-1FR` for
//! MONTHLY), `BYMONTHDAY` (negative counts from the month's end), `UNTIL`, `COUNT`; `WKST` is
//! Monday. Occurrences are civil times in the zone (a 09:00 window stays at 09:00 across a DST
//! change; a time in a DST gap moves forward, a repeated one takes the first instance), and
//! each lasts the duration in elapsed time.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// Freeze or maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// A change freeze (`in_freeze`).
    Freeze,
    /// Planned maintenance (`in_maintenance`).
    Maintenance,
}

/// Recurrence frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum Freq {
    /// Every `INTERVAL` days.
    Daily,
    /// Every `INTERVAL` weeks (weeks start on Monday).
    Weekly,
    /// Every `INTERVAL` months.
    Monthly,
}

/// The supported part of an RFC 5545 RRULE.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RRule {
    /// `FREQ`.
    pub freq: Freq,
    /// `INTERVAL` (≥ 1).
    pub interval: u32,
    /// `BYDAY`: weekday with an optional ordinal (MONTHLY only; 0 = every such day).
    #[serde(skip)]
    pub by_day: Vec<(i8, Weekday)>,
    /// `BYMONTHDAY` (1..=31 or -31..=-1).
    pub by_month_day: Vec<i8>,
    /// `UNTIL`: the last allowed occurrence start (inclusive), as an instant.
    #[schemars(with = "Option<String>")]
    pub until: Option<Timestamp>,
    /// `COUNT`: number of occurrences.
    pub count: Option<u32>,
}

/// When a window applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `start` ≤ t < `end`, civil times in the window's zone.
    Fixed {
        /// First instant inside.
        start: DateTime,
        /// First instant after.
        end: DateTime,
    },
    /// Occurrences of `rule` from `dtstart`, each lasting `duration`.
    Recurring {
        /// First occurrence (civil time in the zone).
        dtstart: DateTime,
        /// Length of each occurrence.
        duration: SignedDuration,
        /// The recurrence.
        rule: RRule,
    },
}

/// A named freeze or maintenance window.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeWindow {
    /// Name (`freeze_name`).
    pub name: String,
    /// Freeze or maintenance.
    pub kind: WindowKind,
    /// IANA name of the zone, for reports.
    pub tz_name: String,
    /// The zone.
    pub tz: TimeZone,
    /// When.
    pub schedule: Schedule,
}

/// A window that contains `now`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ActiveWindow {
    /// Its name.
    pub name: String,
    /// Freeze or maintenance.
    pub kind: WindowKind,
    /// Start of the occurrence containing `now`.
    #[schemars(with = "String")]
    pub start: Timestamp,
    /// End of that occurrence (exclusive).
    #[schemars(with = "String")]
    pub end: Timestamp,
    /// Its zone.
    pub timezone: String,
}

/// Which windows are active at one instant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, schemars::JsonSchema)]
pub struct FreezeStatus {
    /// The instant checked.
    #[schemars(with = "Option<String>")]
    pub at: Option<Timestamp>,
    /// Every active window, in file order.
    pub active: Vec<ActiveWindow>,
}

impl FreezeStatus {
    /// True when a freeze is active.
    pub fn in_freeze(&self) -> bool {
        self.active.iter().any(|w| w.kind == WindowKind::Freeze)
    }
    /// True when a maintenance window is active.
    pub fn in_maintenance(&self) -> bool {
        self.active.iter().any(|w| w.kind == WindowKind::Maintenance)
    }
    /// Name of the first active window of `kind`, or `""`.
    pub fn name_of(&self, kind: WindowKind) -> &str {
        self.active.iter().find(|w| w.kind == kind).map_or("", |w| w.name.as_str())
    }
}

/// Bound on the recurrence periods walked from `DTSTART` (a daily rule over 100 years is
/// ~36 500): beyond it the window counts as active, failing closed.
pub const MAX_PERIODS: u64 = 200_000;

fn instant(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    tz.to_timestamp(dt).ok()
}

/// The dates of one period of a rule, in order.
fn period_dates(rule: &RRule, period_start: Date, dtstart: Date) -> Vec<Date> {
    let mut out = Vec::new();
    match rule.freq {
        Freq::Daily => {
            if rule.by_day.is_empty() || rule.by_day.iter().any(|(_, w)| *w == period_start.weekday()) {
                out.push(period_start);
            }
        }
        Freq::Weekly => {
            let days: Vec<Weekday> = if rule.by_day.is_empty() {
                vec![dtstart.weekday()]
            } else {
                rule.by_day.iter().map(|(_, w)| *w).collect()
            };
            for off in 0..7i64 {
                if let Ok(d) = period_start.checked_add(jiff::Span::new().days(off))
                    && days.contains(&d.weekday())
                {
                    out.push(d);
                }
            }
        }
        Freq::Monthly => {
            let first = period_start.first_of_month();
            let len = first.days_in_month();
            for day in 1..=len {
                let Ok(d) = Date::new(first.year(), first.month(), day) else { continue };
                let by_md = rule.by_month_day.iter().any(|&m| m == day || (m < 0 && len + 1 + m == day));
                let by_wd = rule.by_day.iter().any(|&(n, w)| {
                    if d.weekday() != w {
                        return false;
                    }
                    if n == 0 {
                        return true;
                    }
                    let nth = (day - 1) / 7 + 1;
                    let nth_from_end = -((len - day) / 7 + 1);
                    n == nth || n == nth_from_end
                });
                let plain = rule.by_month_day.is_empty() && rule.by_day.is_empty() && day == dtstart.day();
                // RFC 5545: BYMONTHDAY and BYDAY together both have to hold.
                let hit = match (rule.by_month_day.is_empty(), rule.by_day.is_empty()) {
                    (true, true) => plain,
                    (false, true) => by_md,
                    (true, false) => by_wd,
                    (false, false) => by_md && by_wd,
                };
                if hit {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// The occurrence of a recurring window containing `now`, if any. `None` in the outer option
/// means the walk hit [`MAX_PERIODS`].
fn recurring_hit(
    tz: &TimeZone,
    dtstart: DateTime,
    duration: SignedDuration,
    rule: &RRule,
    now: Timestamp,
) -> Option<Option<(Timestamp, Timestamp)>> {
    let start_date = dtstart.date();
    let first_period = match rule.freq {
        Freq::Daily => start_date,
        Freq::Weekly => start_date
            .checked_sub(jiff::Span::new().days(i64::from(start_date.weekday().to_monday_zero_offset())))
            .ok()?,
        Freq::Monthly => start_date.first_of_month(),
    };
    let step = i64::from(rule.interval.max(1));
    let mut seen: u32 = 0;
    let mut period: u64 = 0;
    loop {
        if period > MAX_PERIODS {
            return None;
        }
        let k = period as i64 * step;
        let span = match rule.freq {
            Freq::Daily => jiff::Span::new().days(k),
            Freq::Weekly => jiff::Span::new().weeks(k),
            Freq::Monthly => jiff::Span::new().months(k),
        };
        let Ok(pstart) = first_period.checked_add(span) else { return Some(None) };
        // Past now (and past any occurrence that could still be running): stop.
        let Some(pinst) = instant(tz, pstart.to_datetime(jiff::civil::Time::midnight())) else { return Some(None) };
        if pinst > now && pinst.duration_since(now) > SignedDuration::from_hours(48) {
            return Some(None);
        }
        for d in period_dates(rule, pstart, start_date) {
            let occ = d.to_datetime(dtstart.time());
            if occ < dtstart {
                continue;
            }
            let Some(s) = instant(tz, occ) else { continue };
            if let Some(until) = rule.until
                && s > until
            {
                return Some(None);
            }
            if let Some(c) = rule.count
                && seen >= c
            {
                return Some(None);
            }
            seen += 1;
            if s > now {
                return Some(None);
            }
            let e = s.checked_add(duration).ok()?;
            if now < e {
                return Some(Some((s, e)));
            }
        }
        period += 1;
    }
}

/// Every window active at `now`. A recurrence too long to walk ([`MAX_PERIODS`]) counts as
/// active (fail closed) with an occurrence of `[now, now]`.
pub fn status(windows: &[TimeWindow], now: Timestamp) -> FreezeStatus {
    let mut active = Vec::new();
    for w in windows {
        let hit = match &w.schedule {
            Schedule::Fixed { start, end } => match (instant(&w.tz, *start), instant(&w.tz, *end)) {
                (Some(s), Some(e)) if s <= now && now < e => Some((s, e)),
                (Some(_), Some(_)) => None,
                _ => Some((now, now)),
            },
            Schedule::Recurring { dtstart, duration, rule } => {
                recurring_hit(&w.tz, *dtstart, *duration, rule, now).unwrap_or(Some((now, now)))
            }
        };
        if let Some((start, end)) = hit {
            active.push(ActiveWindow { name: w.name.clone(), kind: w.kind, start, end, timezone: w.tz_name.clone() });
        }
    }
    FreezeStatus { at: Some(now), active }
}

/// Sets `in_freeze`, `freeze_name`, `in_maintenance` and `maintenance_name`.
pub fn apply(status: &FreezeStatus, s: &mut crate::signals::Signals) {
    use crate::signals::SignalValue;
    s.set("in_freeze", SignalValue::Bool(status.in_freeze()));
    s.set("freeze_name", SignalValue::Text(status.name_of(WindowKind::Freeze).to_string()));
    s.set("in_maintenance", SignalValue::Bool(status.in_maintenance()));
    s.set("maintenance_name", SignalValue::Text(status.name_of(WindowKind::Maintenance).to_string()));
}

/// Why an RRULE is refused ([`parse_rrule`]). `value` fields hold the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RRuleError {
    /// A part without `=`.
    #[error("{part:?} is not KEY=VALUE")]
    NotKeyValue {
        /// The part.
        part: String,
    },
    /// `FREQ` other than DAILY, WEEKLY, MONTHLY.
    #[error("FREQ={value} is not supported (DAILY, WEEKLY or MONTHLY)")]
    UnsupportedFreq {
        /// The frequency, upper-cased.
        value: String,
    },
    /// `INTERVAL` out of 1..=1000.
    #[error("INTERVAL={value} must be a whole number from 1 to 1000")]
    BadInterval {
        /// The value.
        value: String,
    },
    /// `COUNT` below 1 or not a number.
    #[error("COUNT={value} must be a whole number ≥ 1")]
    BadCount {
        /// The value.
        value: String,
    },
    /// `UNTIL` not a date or date-time.
    #[error("UNTIL={value} must be YYYYMMDD or YYYYMMDDTHHMMSS[Z]")]
    UntilFormat {
        /// The value.
        value: String,
    },
    /// `UNTIL` in the right shape but not a time that exists (Feb 30, a skipped hour…).
    #[error("UNTIL={value}: {reason}")]
    UntilInvalid {
        /// The value.
        value: String,
        /// jiff's reason.
        reason: String,
    },
    /// A `BYDAY` entry that is not a weekday.
    #[error("BYDAY value {value:?} is not a weekday (MO, TU, WE, TH, FR, SA, SU)")]
    NotAWeekday {
        /// The entry.
        value: String,
    },
    /// A `BYDAY` ordinal out of 1..5 / -5..-1.
    #[error("BYDAY ordinal in {value:?} must be 1..5 or -5..-1")]
    BadOrdinal {
        /// The entry.
        value: String,
    },
    /// A `BYMONTHDAY` entry out of 1..31 / -31..-1.
    #[error("BYMONTHDAY value {value:?} must be 1..31 or -31..-1")]
    BadMonthDay {
        /// The entry.
        value: String,
    },
    /// A key this parser does not implement.
    #[error("{key} is not supported (FREQ, INTERVAL, BYDAY, BYMONTHDAY, UNTIL, COUNT)")]
    UnsupportedKey {
        /// The key, upper-cased.
        key: String,
    },
    /// No `FREQ`.
    #[error("FREQ is required")]
    NoFreq,
    /// Both `UNTIL` and `COUNT`.
    #[error("UNTIL and COUNT must not both be given (RFC 5545)")]
    UntilAndCount,
    /// `BYMONTHDAY` without `FREQ=MONTHLY`.
    #[error("BYMONTHDAY is supported with FREQ=MONTHLY only")]
    MonthDayNeedsMonthly,
    /// An ordinal `BYDAY` without `FREQ=MONTHLY`.
    #[error("an ordinal BYDAY (like 1MO) needs FREQ=MONTHLY")]
    OrdinalNeedsMonthly,
}

/// Parses the supported RRULE subset (`FREQ=WEEKLY;BYDAY=SA,SU;UNTIL=…`). `UNTIL` is UTC when
/// it ends in `Z`, else a civil time in `tz`.
pub fn parse_rrule(text: &str, tz: &TimeZone) -> Result<RRule, RRuleError> {
    let body = text.trim().strip_prefix("RRULE:").unwrap_or(text.trim());
    let mut freq = None;
    let mut rule =
        RRule { freq: Freq::Daily, interval: 1, by_day: vec![], by_month_day: vec![], until: None, count: None };
    for part in body.split(';').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| RRuleError::NotKeyValue { part: part.to_string() })?;
        let (k, v) = (k.trim().to_ascii_uppercase(), v.trim());
        match k.as_str() {
            "FREQ" => {
                freq = Some(match v.to_ascii_uppercase().as_str() {
                    "DAILY" => Freq::Daily,
                    "WEEKLY" => Freq::Weekly,
                    "MONTHLY" => Freq::Monthly,
                    other => return Err(RRuleError::UnsupportedFreq { value: other.to_string() }),
                })
            }
            "INTERVAL" => {
                rule.interval = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| RRuleError::BadInterval { value: v.to_string() })?
            }
            "COUNT" => {
                rule.count = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| RRuleError::BadCount { value: v.to_string() })?,
                )
            }
            "UNTIL" => rule.until = Some(parse_until(v, tz)?),
            "BYDAY" => {
                for d in v.split(',') {
                    rule.by_day.push(parse_byday(d.trim())?);
                }
            }
            "BYMONTHDAY" => {
                for d in v.split(',') {
                    let n = d.trim().parse::<i8>().ok().filter(|n| *n != 0 && (-31..=31).contains(n));
                    rule.by_month_day.push(n.ok_or_else(|| RRuleError::BadMonthDay { value: d.to_string() })?);
                }
            }
            "WKST" if v.eq_ignore_ascii_case("MO") => {}
            other => return Err(RRuleError::UnsupportedKey { key: other.to_string() }),
        }
    }
    rule.freq = freq.ok_or(RRuleError::NoFreq)?;
    if rule.until.is_some() && rule.count.is_some() {
        return Err(RRuleError::UntilAndCount);
    }
    if rule.freq != Freq::Monthly && !rule.by_month_day.is_empty() {
        return Err(RRuleError::MonthDayNeedsMonthly);
    }
    if rule.freq != Freq::Monthly && rule.by_day.iter().any(|(n, _)| *n != 0) {
        return Err(RRuleError::OrdinalNeedsMonthly);
    }
    Ok(rule)
}

fn parse_byday(d: &str) -> Result<(i8, Weekday), RRuleError> {
    let not_a_weekday = || RRuleError::NotAWeekday { value: d.to_string() };
    if d.len() < 2 || !d.is_char_boundary(d.len() - 2) {
        return Err(not_a_weekday());
    }
    let (num, wd) = d.split_at(d.len() - 2);
    let w = match wd.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Monday,
        "TU" => Weekday::Tuesday,
        "WE" => Weekday::Wednesday,
        "TH" => Weekday::Thursday,
        "FR" => Weekday::Friday,
        "SA" => Weekday::Saturday,
        "SU" => Weekday::Sunday,
        _ => return Err(not_a_weekday()),
    };
    let n = if num.is_empty() {
        0
    } else {
        num.parse::<i8>()
            .ok()
            .filter(|n| *n != 0 && (-5..=5).contains(n))
            .ok_or_else(|| RRuleError::BadOrdinal { value: d.to_string() })?
    };
    Ok((n, w))
}

fn parse_until(v: &str, tz: &TimeZone) -> Result<Timestamp, RRuleError> {
    let bad = || RRuleError::UntilFormat { value: v.to_string() };
    let invalid = |e: jiff::Error| RRuleError::UntilInvalid { value: v.to_string(), reason: e.to_string() };
    let (body, utc) = match v.strip_suffix('Z') {
        Some(b) => (b, true),
        None => (v, false),
    };
    let b = body.as_bytes();
    if !(b.len() == 8 || (b.len() == 15 && b[8] == b'T'))
        || !body.chars().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit())
    {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| body[r].parse::<i16>().map_err(|_| bad());
    let date = Date::new(n(0..4)?, n(4..6)? as i8, n(6..8)? as i8).map_err(invalid)?;
    let dt = if b.len() == 15 {
        // Not `Date::at`, which panics on an hour like 25.
        DateTime::from_parts(
            date,
            jiff::civil::Time::new(n(9..11)? as i8, n(11..13)? as i8, n(13..15)? as i8, 0).map_err(invalid)?,
        )
    } else {
        date.to_datetime(jiff::civil::Time::new(23, 59, 59, 0).map_err(invalid)?)
    };
    let zone = if utc { TimeZone::UTC } else { tz.clone() };
    zone.to_timestamp(dt).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn db() -> jiff::tz::TimeZoneDatabase {
        jiff::tz::TimeZoneDatabase::bundled()
    }

    fn weekly_weekend(tz: &str) -> TimeWindow {
        let tz_v = db().get(tz).unwrap();
        TimeWindow {
            name: "weekend".into(),
            kind: WindowKind::Freeze,
            tz_name: tz.into(),
            schedule: Schedule::Recurring {
                dtstart: date(2026, 1, 3).at(0, 0, 0, 0),
                duration: SignedDuration::from_hours(24),
                rule: parse_rrule("FREQ=WEEKLY;BYDAY=SA,SU", &tz_v).unwrap(),
            },
            tz: tz_v,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn weekly_weekend_in_a_zone() {
        let w = [weekly_weekend("Europe/Berlin")];
        // Saturday 2026-02-21 00:30 Berlin = Friday 23:30 UTC: inside.
        assert!(status(&w, at("2026-02-20T23:30:00Z")).in_freeze());
        // Friday 22:59 UTC = 23:59 Berlin: outside.
        assert!(!status(&w, at("2026-02-20T22:59:00Z")).in_freeze());
        // Sunday 23:00 Berlin (22:00 UTC) inside; Monday 00:00 Berlin outside.
        assert!(status(&w, at("2026-02-22T22:00:00Z")).in_freeze());
        assert!(!status(&w, at("2026-02-22T23:00:00Z")).in_freeze());
        let st = status(&w, at("2026-02-21T12:00:00Z"));
        assert_eq!(st.name_of(WindowKind::Freeze), "weekend");
        assert_eq!(st.active[0].start, at("2026-02-20T23:00:00Z"));
        assert_eq!(st.active[0].end, at("2026-02-21T23:00:00Z"));
    }

    #[test]
    fn dst_keeps_the_civil_time() {
        // Daily 09:00–10:00 New York: 14:00Z in winter, 13:00Z in summer.
        let tz = db().get("America/New_York").unwrap();
        let w = [TimeWindow {
            name: "standup".into(),
            kind: WindowKind::Maintenance,
            tz_name: "America/New_York".into(),
            schedule: Schedule::Recurring {
                dtstart: date(2026, 1, 1).at(9, 0, 0, 0),
                duration: SignedDuration::from_hours(1),
                rule: parse_rrule("FREQ=DAILY", &tz).unwrap(),
            },
            tz,
        }];
        assert!(status(&w, at("2026-01-15T14:30:00Z")).in_maintenance());
        assert!(!status(&w, at("2026-01-15T13:30:00Z")).in_maintenance());
        assert!(status(&w, at("2026-07-15T13:30:00Z")).in_maintenance());
        assert!(!status(&w, at("2026-07-15T14:30:00Z")).in_maintenance());
        assert!(!status(&w, at("2026-07-15T14:30:00Z")).in_freeze());
    }

    #[test]
    fn monthly_ordinal_bymonthday_interval_count_until() {
        let tz = TimeZone::UTC;
        let mk = |rule: &str, dtstart: DateTime, hours: i64| TimeWindow {
            name: "m".into(),
            kind: WindowKind::Freeze,
            tz_name: "UTC".into(),
            schedule: Schedule::Recurring {
                dtstart,
                duration: SignedDuration::from_hours(hours),
                rule: parse_rrule(rule, &tz).unwrap(),
            },
            tz: tz.clone(),
        };
        // Last Friday of the month: 2026-02-27.
        let w = [mk("FREQ=MONTHLY;BYDAY=-1FR", date(2026, 1, 1).at(0, 0, 0, 0), 24)];
        assert!(status(&w, at("2026-02-27T12:00:00Z")).in_freeze());
        assert!(!status(&w, at("2026-02-20T12:00:00Z")).in_freeze());
        // Last day of the month (-1): 2026-02-28.
        let w = [mk("FREQ=MONTHLY;BYMONTHDAY=-1", date(2026, 1, 1).at(0, 0, 0, 0), 24)];
        assert!(status(&w, at("2026-02-28T01:00:00Z")).in_freeze());
        assert!(!status(&w, at("2026-02-27T01:00:00Z")).in_freeze());
        // Every other day from Jan 1: Jan 3 yes, Jan 4 no.
        let w = [mk("FREQ=DAILY;INTERVAL=2", date(2026, 1, 1).at(0, 0, 0, 0), 1)];
        assert!(status(&w, at("2026-01-03T00:30:00Z")).in_freeze());
        assert!(!status(&w, at("2026-01-04T00:30:00Z")).in_freeze());
        // COUNT=2: Jan 1 and 2 only.
        let w = [mk("FREQ=DAILY;COUNT=2", date(2026, 1, 1).at(0, 0, 0, 0), 1)];
        assert!(status(&w, at("2026-01-02T00:30:00Z")).in_freeze());
        assert!(!status(&w, at("2026-01-03T00:30:00Z")).in_freeze());
        // UNTIL inclusive.
        let w = [mk("FREQ=DAILY;UNTIL=20260105T000000Z", date(2026, 1, 1).at(0, 0, 0, 0), 1)];
        assert!(status(&w, at("2026-01-05T00:30:00Z")).in_freeze());
        assert!(!status(&w, at("2026-01-06T00:30:00Z")).in_freeze());
        // Before DTSTART nothing.
        let w = [mk("FREQ=DAILY", date(2026, 1, 10).at(0, 0, 0, 0), 1)];
        assert!(!status(&w, at("2026-01-09T00:30:00Z")).in_freeze());
    }

    #[test]
    fn fixed_range_half_open() {
        let tz = db().get("America/New_York").unwrap();
        let w = [TimeWindow {
            name: "black-friday".into(),
            kind: WindowKind::Freeze,
            tz_name: "America/New_York".into(),
            schedule: Schedule::Fixed {
                start: date(2026, 11, 26).at(0, 0, 0, 0),
                end: date(2026, 12, 1).at(0, 0, 0, 0),
            },
            tz,
        }];
        assert!(status(&w, at("2026-11-26T05:00:00Z")).in_freeze());
        assert!(!status(&w, at("2026-11-26T04:59:59Z")).in_freeze());
        assert!(!status(&w, at("2026-12-01T05:00:00Z")).in_freeze());
    }

    #[test]
    fn bad_rules_are_refused() {
        let tz = TimeZone::UTC;
        for (r, needle) in [
            ("BYDAY=MO", "FREQ is required"),
            ("FREQ=YEARLY", "not supported"),
            ("FREQ=WEEKLY;BYDAY=XX", "not a weekday"),
            ("FREQ=WEEKLY;BYDAY=1MO", "needs FREQ=MONTHLY"),
            ("FREQ=DAILY;COUNT=2;UNTIL=20260101", "both"),
            ("FREQ=DAILY;BYSETPOS=1", "BYSETPOS is not supported"),
            ("FREQ=DAILY;INTERVAL=0", "INTERVAL"),
            ("FREQ=DAILY;UNTIL=20260101T250000Z", "UNTIL=20260101T250000Z: "),
            ("FREQ=DAILY;UNTIL=20260230", "UNTIL=20260230: "),
            ("FREQ=WEEKLY;BYDAY=éA", "not a weekday"),
        ] {
            let e = parse_rrule(r, &tz).unwrap_err().to_string();
            assert!(e.contains(needle), "{r}: {e}");
        }
        assert_eq!(parse_rrule("BYDAY=MO", &tz), Err(RRuleError::NoFreq));
        assert_eq!(
            parse_rrule("FREQ=DAILY;BYSETPOS=1", &tz),
            Err(RRuleError::UnsupportedKey { key: "BYSETPOS".into() })
        );
    }
}
