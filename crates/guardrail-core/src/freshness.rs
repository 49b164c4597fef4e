//! Staleness of input snapshots: a months-old metrics file must not gate today's deploy.

use jiff::{SignedDuration, Timestamp};

/// Largest clock skew tolerated for a `collected_at` in the future.
pub const MAX_FUTURE_SKEW: SignedDuration = SignedDuration::from_secs(300);

/// Checks one `collected_at` against `now`.
///
/// - A timestamp more than [`MAX_FUTURE_SKEW`] in the future is always an error (impossible).
/// - With `max_age` set, a missing timestamp or one older than `max_age` is an error.
///
/// Returns a sentence describing the problem.
pub fn check(collected_at: Option<Timestamp>, now: Timestamp, max_age: Option<SignedDuration>) -> Result<(), String> {
    if let Some(at) = collected_at {
        let ahead = at.duration_since(now);
        if ahead > MAX_FUTURE_SKEW {
            return Err(format!("collected_at {at} is {} in the future (evaluation time {now})", human(ahead)));
        }
    }
    let Some(max) = max_age else { return Ok(()) };
    match collected_at {
        None => Err(format!("no collected_at: cannot prove the data is younger than the maximum age {}", human(max))),
        Some(at) => {
            let age = now.duration_since(at);
            if age > max {
                Err(format!("collected_at {at} is {} old, older than the maximum age {}", human(age), human(max)))
            } else {
                Ok(())
            }
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

/// Parses `90`, `90s`, `15m`, `24h`, `7d` into a positive duration.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], t[i..].trim()),
        None => (t, "s"),
    };
    let n: i64 = num.parse().map_err(|_| format!("\"{text}\" is not a duration like 90s, 15m, 24h or 7d"))?;
    let secs = match unit {
        "s" | "sec" | "secs" => n,
        "m" | "min" | "mins" => n * 60,
        "h" | "hour" | "hours" => n * 3600,
        "d" | "day" | "days" => n * 86_400,
        _ => return Err(format!("\"{text}\": unknown unit \"{unit}\" (use s, m, h or d)")),
    };
    if secs <= 0 {
        return Err(format!("\"{text}\": the duration must be positive"));
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
        assert!(check(Some(old), now, None).is_ok());
        assert!(check(Some(old), now, Some(SignedDuration::from_hours(24))).is_err());
        assert!(check(None, now, Some(SignedDuration::from_hours(24))).is_err());
        let future: Timestamp = "2026-11-24T11:00:00Z".parse().unwrap();
        assert!(check(Some(future), now, None).is_err());
        assert_eq!(parse_duration("15m").unwrap(), SignedDuration::from_secs(900));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5w").is_err());
    }
}
