//! Staleness of input snapshots: a months-old metrics file must not gate today's deploy.

use jiff::{SignedDuration, Timestamp};

/// Largest clock skew tolerated for a `collected_at` in the future.
pub const MAX_FUTURE_SKEW: SignedDuration = SignedDuration::from_secs(300);

/// Why a snapshot is too old (or too new) to decide on: [`check_age`]'s error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// `collected_at` is more than [`MAX_FUTURE_SKEW`] ahead of the evaluation time.
    #[error("collected_at {at} is {} in the future (evaluation time {now})", human(*ahead))]
    InTheFuture {
        /// The snapshot's `collected_at`.
        at: Timestamp,
        /// The evaluation time.
        now: Timestamp,
        /// How far ahead.
        ahead: SignedDuration,
    },
    /// A maximum age is set and the snapshot has no `collected_at`.
    #[error("no collected_at: cannot prove the data is younger than the maximum age {}", human(*max_age))]
    Undated {
        /// The maximum age.
        max_age: SignedDuration,
    },
    /// Older than the maximum age.
    #[error("collected_at {at} is {} old, older than the maximum age {}", human(*age), human(*max_age))]
    TooOld {
        /// The snapshot's `collected_at`.
        at: Timestamp,
        /// Its age at the evaluation time.
        age: SignedDuration,
        /// The maximum age.
        max_age: SignedDuration,
    },
}

/// Checks one `collected_at` against `now`.
///
/// - A timestamp more than [`MAX_FUTURE_SKEW`] in the future is always an error (impossible).
/// - With `max_age` set, a missing timestamp or one older than `max_age` is an error.
pub fn check_age(
    collected_at: Option<Timestamp>,
    now: Timestamp,
    max_age: Option<SignedDuration>,
) -> Result<(), Stale> {
    if let Some(at) = collected_at {
        let ahead = at.duration_since(now);
        if ahead > MAX_FUTURE_SKEW {
            return Err(Stale::InTheFuture { at, now, ahead });
        }
    }
    let Some(max_age) = max_age else { return Ok(()) };
    match collected_at {
        None => Err(Stale::Undated { max_age }),
        Some(at) => {
            let age = now.duration_since(at);
            if age > max_age { Err(Stale::TooOld { at, age, max_age }) } else { Ok(()) }
        }
    }
}

/// `3d 4h`, `15m`, `42s`.
pub fn human(d: SignedDuration) -> String {
    let mut s = d.as_secs().unsigned_abs();
    let days = s / 86_400;
    s %= 86_400;
    let hours = s / 3600;
    s %= 3600;
    let mins = s / 60;
    let secs = s % 60;
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days}d"));
    }
    if hours > 0 {
        parts.push(format!("{hours}h"));
    }
    if mins > 0 && days == 0 {
        parts.push(format!("{mins}m"));
    }
    if parts.is_empty() {
        parts.push(format!("{secs}s"));
    }
    parts.join(" ")
}

/// Why a text is not a duration ([`parse_duration`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No leading whole number.
    #[error("\"{text}\" is not a duration like 90s, 15m, 24h or 7d")]
    NotADuration {
        /// The text as given.
        text: String,
    },
    /// A unit other than s, m, h or d.
    #[error("\"{text}\": unknown unit \"{unit}\" (use s, m, h or d)")]
    UnknownUnit {
        /// The text as given.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// Zero.
    #[error("\"{text}\": the duration must be positive")]
    NotPositive {
        /// The text as given.
        text: String,
    },
    /// More seconds than a duration holds.
    #[error("\"{text}\": the duration is too long")]
    TooLong {
        /// The text as given.
        text: String,
    },
}

/// Parses `90`, `90s`, `15m`, `24h`, `7d` into a positive duration.
pub fn parse_duration(text: &str) -> Result<SignedDuration, DurationError> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], t[i..].trim()),
        None => (t, "s"),
    };
    let n: i64 = num.parse().map_err(|_| DurationError::NotADuration { text: text.to_string() })?;
    let scale: i64 = match unit {
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return Err(DurationError::UnknownUnit { text: text.to_string(), unit: unit.to_string() }),
    };
    // A user's number times the unit must not overflow (a panic in debug builds).
    let secs = n.checked_mul(scale).ok_or_else(|| DurationError::TooLong { text: text.to_string() })?;
    if secs <= 0 {
        return Err(DurationError::NotPositive { text: text.to_string() });
    }
    Ok(SignedDuration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness() {
        let now: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
        let old: Timestamp = "2026-02-20T00:00:00Z".parse().unwrap();
        assert!(check_age(Some(old), now, None).is_ok());
        assert!(check_age(Some(old), now, Some(SignedDuration::from_hours(24))).is_err());
        assert!(check_age(None, now, Some(SignedDuration::from_hours(24))).is_err());
        let future: Timestamp = "2026-11-24T11:00:00Z".parse().unwrap();
        assert!(check_age(Some(future), now, None).is_err());
        assert_eq!(parse_duration("15m").unwrap(), SignedDuration::from_secs(900));
        assert_eq!(parse_duration("0s"), Err(DurationError::NotPositive { text: "0s".into() }));
        assert_eq!(parse_duration("abc"), Err(DurationError::NotADuration { text: "abc".into() }));
        let e = parse_duration("5w").unwrap_err();
        assert_eq!(e, DurationError::UnknownUnit { text: "5w".into(), unit: "w".into() });
        assert_eq!(e.to_string(), "\"5w\": unknown unit \"w\" (use s, m, h or d)");
        assert_eq!(
            parse_duration("999999999999999999d"),
            Err(DurationError::TooLong { text: "999999999999999999d".into() })
        );
        assert!(matches!(check_age(None, now, Some(SignedDuration::from_hours(24))), Err(Stale::Undated { .. })));
        assert!(matches!(check_age(Some(future), now, None), Err(Stale::InTheFuture { .. })));
        assert_eq!(
            check_age(Some(old), now, Some(SignedDuration::from_hours(24))).unwrap_err().to_string(),
            "collected_at 2026-02-20T00:00:00Z is 277d 10h old, older than the maximum age 1d"
        );
    }
}
