//! The governor config's `jira:` block: the Jira ticket lifecycle (issue 13): project, transitions.

use std::path::Path;

use serde::Deserialize;

use crate::common::Diags;

/// The `jira:` block, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JiraConfig {}

/// The `jira:` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JiraSpec {}

/// Checks the block, reporting every problem through `d` (fields under `jira.`); `dir` is the
/// config file's directory, for relative paths.
pub(crate) fn read_jira(d: &mut Diags, spec: &JiraSpec, dir: Option<&Path>) -> JiraConfig {
    let _ = (d, spec, dir);
    JiraConfig {}
}
