//! The governor config's `notify:` block: the notification outbox (issue 13): retries, backoff.

use std::path::Path;

use serde::Deserialize;

use crate::common::Diags;

/// The `notify:` block, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotifyConfig {}

/// The `notify:` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NotifySpec {}

/// Checks the block, reporting every problem through `d` (fields under `notify.`); `dir` is the
/// config file's directory, for relative paths.
pub(crate) fn read_notify(d: &mut Diags, spec: &NotifySpec, dir: Option<&Path>) -> NotifyConfig {
    let _ = (d, spec, dir);
    NotifyConfig {}
}
