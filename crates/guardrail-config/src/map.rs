//! Field path → position, so that errors found after parsing (including the core's) can be
//! pointed at a line and column.

use std::collections::HashMap;

use crate::yaml::{Node, NodeValue};

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
        map.walk(&mut String::new(), root);
        map
    }

    /// Depth-first over `node`, with `path` its field path. One buffer serves the whole walk
    /// (each child's suffix is pushed, then truncated away): a gate decision maps every field of
    /// four files, and a `format!` per node was a quarter of its instructions.
    fn walk(&mut self, path: &mut String, node: &Node) {
        if let Some((line, col)) = node.anchor_pos() {
            self.positions.insert(path.clone(), (line, col));
        }
        let len = path.len();
        match &node.value {
            NodeValue::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    use std::fmt::Write as _;
                    // Writing to a String cannot fail.
                    let _ = write!(path, "[{i}]");
                    self.walk(path, item);
                    path.truncate(len);
                }
            }
            NodeValue::Map(entries) => {
                for (k, v) in entries {
                    // As `yaml::join`: `parent.key`, or `key` at the top.
                    if len > 0 {
                        path.push('.');
                    }
                    path.push_str(k);
                    self.walk(path, v);
                    path.truncate(len);
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
    use super::{SourceMap, parent};
    use crate::source::Source;

    #[test]
    fn every_field_is_positioned_by_its_dotted_path() {
        let src = Source::from_text("t.yaml", "a:\n  b:\n    - x: 1\n    - y: [2, 3]\nc: 4\n");
        let root = crate::yaml::parse_yaml(&src).expect("valid YAML");
        let map = SourceMap::from_node(&root);
        assert_eq!(map.get("a"), Some((1, 1)));
        assert_eq!(map.get("a.b"), Some((2, 3)));
        assert_eq!(map.get("a.b[0].x"), Some((3, 7)));
        assert_eq!(map.get("a.b[1].y"), Some((4, 7)));
        assert_eq!(map.get("a.b[1].y[1]"), Some((4, 14)));
        assert_eq!(map.get("c"), Some((5, 1)));
        assert_eq!(map.get("a.c"), None);
    }

    #[test]
    fn parents() {
        assert_eq!(parent("daily_costs[3].cost"), "daily_costs[3]");
        assert_eq!(parent("daily_costs[3]"), "daily_costs");
        assert_eq!(parent("daily_costs"), "");
        assert_eq!(parent("policies[2].conditions.burn_rate.value[1]"), "policies[2].conditions.burn_rate.value");
    }
}
