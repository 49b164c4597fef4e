//! The governor config's `slack:` block: Slack approvals and messages (issue 13): channel, users map, on-call.

use std::path::Path;

use serde::Deserialize;

use crate::common::Diags;

/// The `slack:` block, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlackConfig {}

/// The `slack:` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlackSpec {}

/// Checks the block, reporting every problem through `d` (fields under `slack.`); `dir` is the
/// config file's directory, for relative paths.
pub(crate) fn read_slack(d: &mut Diags, spec: &SlackSpec, dir: Option<&Path>) -> SlackConfig {
    let _ = (d, spec, dir);
    SlackConfig {}
}
