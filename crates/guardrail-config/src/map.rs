//! Field path → position, so that errors found after parsing (including the core's) can be
//! pointed at a line and column.

use std::collections::HashMap;

use crate::yaml::{Node, NodeValue, join};

/// Positions of every field of a file, keyed by dotted path (`policies[2].conditions.burn_rate`).
///
/// A mapping entry is positioned at its key, a list item at the item, the whole document
/// (path `""`) at its first value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    positions: HashMap<String, (usize, usize)>,
}

impl SourceMap {
    /// An empty map (every lookup gives `None`).
    pub fn new() -> Self {
        SourceMap::default()
    }

    /// Records the position of every field under `root`. Unknown positions (0) are skipped.
    pub fn from_node(root: &Node) -> Self {
        let mut map = SourceMap::new();
        map.walk(String::new(), root);
        map
    }

    fn walk(&mut self, path: String, node: &Node) {
        if let Some((line, col)) = node.anchor_pos() {
            self.positions.insert(path.clone(), (line, col));
        }
        match &node.value {
            NodeValue::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk(format!("{path}[{i}]"), item);
                }
            }
            NodeValue::Map(entries) => {
                for (k, v) in entries {
                    self.walk(join(&path, k), v);
                }
            }
            _ => {}
        }
    }

    /// Records (or replaces) one position.
    pub fn insert(&mut self, field: impl Into<String>, line: usize, col: usize) {
        if line > 0 {
            self.positions.insert(field.into(), (line, col));
        }
    }

    /// The position recorded for exactly this path.
    pub fn get(&self, field: &str) -> Option<(usize, usize)> {
        self.positions.get(field).copied()
    }

    /// The position of `field`, or of its nearest recorded parent: `daily_costs[3].cost`, then
    /// `daily_costs[3]`, then `daily_costs`, then the document. `None` when nothing is known
    /// (e.g. a JSON file whose positions could not be recovered).
    pub fn locate(&self, field: &str) -> Option<(usize, usize)> {
        let mut f = field;
        loop {
            if let Some(p) = self.get(f) {
                return Some(p);
            }
            if f.is_empty() {
                return None;
            }
            f = parent(f);
        }
    }

    /// Number of recorded paths.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}

/// `a.b[3]` → `a.b`, `a.b` → `a`, `a` → ``.
fn parent(f: &str) -> &str {
    if f.ends_with(']')
        && let Some(i) = f.rfind('[')
    {
        return &f[..i];
    }
    match f.rfind('.') {
        Some(i) => &f[..i],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::parent;

    #[test]
    fn parents() {
        assert_eq!(parent("daily_costs[3].cost"), "daily_costs[3]");
        assert_eq!(parent("daily_costs[3]"), "daily_costs");
        assert_eq!(parent("daily_costs"), "");
        assert_eq!(parent("policies[2].conditions.burn_rate.value[1]"), "policies[2].conditions.burn_rate.value");
    }
}
