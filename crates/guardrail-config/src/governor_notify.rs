//! The governor config's `notify:` block: the notification outbox's delivery (issue 13).
//!
//! ```yaml
//! notify:
//!   max_attempts: 8               # then the row is `failed` (re-deliver: guardrail notify deliver --retry-failed)
//!   backoff_base_seconds: 30      # attempt n waits base * 2^(n-1), at most the cap
//!   backoff_cap_seconds: 3600
//!   interval_seconds: 5           # how often `guardrail serve` looks for due rows
//! ```
//!
//! A `Retry-After` from Slack or Jira is honoured (capped at `backoff_cap_seconds`) and does
//! not use up an attempt: a rate limit delays a notification, it never drops it.

use std::path::Path;

use serde::Deserialize;

use crate::common::Diags;
use crate::de::present;

/// Attempts before a row is given up on, by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// First retry's wait, seconds, by default.
pub const DEFAULT_BACKOFF_BASE_SECONDS: u64 = 30;
/// Longest wait between attempts, seconds, by default.
pub const DEFAULT_BACKOFF_CAP_SECONDS: u64 = 3600;
/// How often `serve` delivers, seconds, by default.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 5;

/// The `notify:` block, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotifyConfig {
    /// Attempts before `failed`.
    pub max_attempts: u32,
    /// First retry's wait, seconds.
    pub backoff_base_seconds: u64,
    /// Longest wait, seconds.
    pub backoff_cap_seconds: u64,
    /// `serve`'s delivery interval, seconds.
    pub interval_seconds: u64,
}

impl Default for NotifyConfig {
    fn default() -> NotifyConfig {
        NotifyConfig {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_base_seconds: DEFAULT_BACKOFF_BASE_SECONDS,
            backoff_cap_seconds: DEFAULT_BACKOFF_CAP_SECONDS,
            interval_seconds: DEFAULT_INTERVAL_SECONDS,
        }
    }
}

/// The `notify:` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NotifySpec {
    #[serde(default, deserialize_with = "present")]
    max_attempts: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    backoff_base_seconds: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    backoff_cap_seconds: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    interval_seconds: Option<u64>,
}

/// Checks the block, reporting every problem through `d` (fields under `notify.`); `dir` is the
/// config file's directory, for relative paths.
pub(crate) fn read_notify(d: &mut Diags, spec: &NotifySpec, dir: Option<&Path>) -> NotifyConfig {
    let _ = dir;
    let mut cfg = NotifyConfig::default();
    if let Some(n) = bounded(d, "max_attempts", spec.max_attempts, 100) {
        cfg.max_attempts = u32::try_from(n).unwrap_or(DEFAULT_MAX_ATTEMPTS);
    }
    if let Some(n) = bounded(d, "backoff_base_seconds", spec.backoff_base_seconds, 86_400) {
        cfg.backoff_base_seconds = n;
    }
    if let Some(n) = bounded(d, "backoff_cap_seconds", spec.backoff_cap_seconds, 7 * 86_400) {
        cfg.backoff_cap_seconds = n;
    }
    if let Some(n) = bounded(d, "interval_seconds", spec.interval_seconds, 3600) {
        cfg.interval_seconds = n;
    }
    if cfg.backoff_cap_seconds < cfg.backoff_base_seconds {
        d.error("notify.backoff_cap_seconds", "must not be below backoff_base_seconds");
    }
    cfg
}

/// `v` when it is within 1..=max, else an error at `notify.{field}`.
fn bounded(d: &mut Diags, field: &str, v: Option<u64>, max: u64) -> Option<u64> {
    let v = v?;
    if v == 0 || v > max {
        d.error(format!("notify.{field}"), format!("must be 1..={max}, got {v}"));
        None
    } else {
        Some(v)
    }
}
