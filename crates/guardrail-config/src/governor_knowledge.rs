//! The governor config's `knowledge:` block: the knowledge backend (issue 14): SQLite file or Elasticsearch.

use std::path::Path;

use serde::Deserialize;

use crate::common::Diags;

/// The `knowledge:` block, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KnowledgeConfig {}

/// The `knowledge:` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KnowledgeSpec {}

/// Checks the block, reporting every problem through `d` (fields under `knowledge.`); `dir` is the
/// config file's directory, for relative paths.
pub(crate) fn read_knowledge(d: &mut Diags, spec: &KnowledgeSpec, dir: Option<&Path>) -> KnowledgeConfig {
    let _ = (d, spec, dir);
    KnowledgeConfig {}
}
