//! The pause a server asks for in a `Retry-After` header (RFC 9110 §10.2.3): delta-seconds or an
//! HTTP date. One reading for every client (Slack, Jira, Elasticsearch, model APIs), so a
//! provider that answers with a date is honoured by all of them alike.
//!
//! Pure: the caller passes the header's text and the time to measure a date from.

use std::time::Duration;

use jiff::Timestamp;

/// The longest pause read from a header (a day): a larger or absurd value is cut to this, so a
/// hostile or broken server cannot park a retry forever. Callers cap it further.
pub const MAX: Duration = Duration::from_secs(86_400);

/// Seconds as `Retry-After` sends them (integers; fractions are accepted, as some providers
/// send them). `None` when not a finite, non-negative number.
fn seconds(value: &str) -> Option<Duration> {
    let v = value.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)?;
    Some(Duration::from_secs_f64(v.min(MAX.as_secs_f64())))
}

/// A `Retry-After` value: delta-seconds, else an HTTP date (IMF-fixdate, RFC 2822 style) measured
/// from `now`; a date in the past is no pause. `None` when absent or unreadable (the caller's own
/// backoff applies).
pub fn parse(value: &str, now: Timestamp) -> Option<Duration> {
    if let Some(d) = seconds(value) {
        return Some(d);
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value.trim()).ok()?;
    let wait = at.duration_since(now);
    Some(if wait.is_negative() { Duration::ZERO } else { wait.unsigned_abs().min(MAX) })
}

/// A `retry-after-ms` value (OpenAI, Anthropic): milliseconds.
pub fn parse_millis(value: &str) -> Option<Duration> {
    seconds(value).map(|d| (d / 1000).min(MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-06T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn seconds_dates_and_nonsense() {
        assert_eq!(parse("7", now()), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 1.5 ", now()), Some(Duration::from_millis(1500)));
        assert_eq!(parse("Sun, 06 Dec 2026 12:00:30 GMT", now()), Some(Duration::from_secs(30)));
        assert_eq!(parse("Sun, 06 Dec 2026 11:00:00 GMT", now()), Some(Duration::ZERO));
        assert_eq!(parse("99999999999", now()), Some(MAX));
        for bad in ["", "-1", "NaN", "inf", "soon", "1e400"] {
            assert_eq!(parse(bad, now()).filter(|d| *d != MAX), None, "{bad:?}");
        }
        assert_eq!(parse_millis("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_millis("x"), None);
    }
}
