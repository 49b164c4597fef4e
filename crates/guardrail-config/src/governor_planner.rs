//! The governor config's `planner:` block: the model planner (issue 12): backend, model, budgets, fallback.

use std::path::Path;

use serde::Deserialize;

use crate::common::Diags;

/// The `planner:` block, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlannerConfig {}

/// The `planner:` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlannerSpec {}

/// Checks the block, reporting every problem through `d` (fields under `planner.`); `dir` is the
/// config file's directory, for relative paths.
pub(crate) fn read_planner(d: &mut Diags, spec: &PlannerSpec, dir: Option<&Path>) -> PlannerConfig {
    let _ = (d, spec, dir);
    PlannerConfig {}
}
