//! Field path → position, so that errors found after parsing (including the core's) can be
//! pointed at a line and column.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

use crate::yaml::{Node, NodeValue};

/// Positions of every field of a file, keyed by dotted path (`policies[2].conditions.burn_rate`).
///
/// A mapping entry is positioned at its key, a list item at the item, the whole document
/// (path `""`) at its first value.
///
/// Paths are stored as their 64-bit FNV-1a hash, not as strings: every input of every decision
/// is mapped, nearly always to position no error at all, and a `String` per node was a sixth
/// of a gate's instructions. The hash of a path is extended segment by segment during the walk,
/// so no path is ever built. Two paths of one file sharing a hash (odds around 10⁻¹³ for a
/// file of thousands of fields) would only misplace the line:column of an error message.
///
/// A map made by [`SourceMap::lazy`] keeps the parsed tree and walks it only at its first
/// lookup: a valid policy file of 10,000 rules is never looked up, and walking its ~230,000
/// nodes was a tenth of a `gate`'s instructions. Both kinds answer every lookup the same.
#[derive(Clone, Default)]
pub struct SourceMap {
    positions: OnceLock<Positions>,
    /// The tree still to walk (a lazy map whose positions are not built yet).
    root: Option<Arc<Node>>,
}

type Positions = HashMap<u64, (usize, usize), BuildHasherDefault<PreHashed>>;

impl fmt::Debug for SourceMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceMap").field("positions", self.positions()).finish()
    }
}

/// Two maps are equal when they position the same paths the same way (lazy or not).
impl PartialEq for SourceMap {
    fn eq(&self, other: &Self) -> bool {
        self.positions() == other.positions()
    }
}

impl Eq for SourceMap {}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, continued from `h` over `bytes`.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// FNV-1a of `[i]`, continued from `h`, without formatting into a buffer.
fn fnv_index(h: u64, i: usize) -> u64 {
    let mut digits = [0u8; 20];
    let mut n = i;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    fnv(fnv(fnv(h, b"["), &digits[at..]), b"]")
}

/// The keys are already FNV hashes: hashing them again would only cost time.
#[derive(Debug, Clone, Copy, Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv(self.0 ^ FNV_OFFSET, bytes);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl SourceMap {
    /// An empty map (every lookup gives `None`).
    pub fn new() -> Self {
        SourceMap::default()
    }

    /// Records the position of every field under `root`. Unknown positions (0) are skipped.
    pub fn from_node(root: &Node) -> Self {
        let mut positions = Positions::default();
        walk(&mut positions, FNV_OFFSET, true, root);
        SourceMap { positions: OnceLock::from(positions), root: None }
    }

    /// The positions of every field under `root`, recorded at the first lookup (or `len`,
    /// `insert`, comparison): for a file that is read through and only looked up when
    /// something is wrong with it. Holds the tree until then.
    pub fn lazy(root: Arc<Node>) -> Self {
        SourceMap { positions: OnceLock::new(), root: Some(root) }
    }

    /// The positions, walking the tree on first use.
    fn positions(&self) -> &Positions {
        self.positions.get_or_init(|| {
            let mut positions = Positions::default();
            if let Some(root) = &self.root {
                walk(&mut positions, FNV_OFFSET, true, root);
            }
            positions
        })
    }

    /// Records (or replaces) one position.
    pub fn insert(&mut self, field: impl AsRef<str>, line: usize, col: usize) {
        if line > 0 {
            self.positions();
            if let Some(positions) = self.positions.get_mut() {
                positions.insert(fnv(FNV_OFFSET, field.as_ref().as_bytes()), (line, col));
            }
        }
    }

    /// The position recorded for exactly this path.
    pub fn get(&self, field: &str) -> Option<(usize, usize)> {
        self.positions().get(&fnv(FNV_OFFSET, field.as_bytes())).copied()
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
        self.positions().len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.positions().is_empty()
    }
}

/// Depth-first over `node`, whose path hashes to `path` (`root`: the path is empty).
fn walk(positions: &mut Positions, path: u64, root: bool, node: &Node) {
    if let Some((line, col)) = node.anchor_pos() {
        positions.insert(path, (line, col));
    }
    match &node.value {
        NodeValue::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(positions, fnv_index(path, i), false, item);
            }
        }
        NodeValue::Map(entries) => {
            for (k, v) in entries {
                // As `yaml::join`: `parent.key`, or `key` while the path is still empty.
                let child = if root { fnv(path, k.as_bytes()) } else { fnv(fnv(path, b"."), k.as_bytes()) };
                walk(positions, child, root && k.is_empty(), v);
            }
        }
        _ => {}
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
        assert_eq!(map.locate("a.b[0].x.deeper"), Some((3, 7)));

        // A list at the top, and an empty key (the path stays empty under it, as `yaml::join`).
        let src = Source::from_text("t.yaml", "- a: 1\n- \"\": {x: 2}\n");
        let map = SourceMap::from_node(&crate::yaml::parse_yaml(&src).expect("valid YAML"));
        assert_eq!(map.get("[0].a"), Some((1, 3)));
        assert!(map.get("[1].x").is_none() && map.get("[1]..x").is_some(), "{map:?}");

        let mut map = SourceMap::new();
        map.insert("daily_costs[3]", 4, 1);
        map.insert(String::from("daily_costs[3]"), 5, 2);
        assert_eq!(map.get("daily_costs[3]"), Some((5, 2)));
        assert_eq!(map.locate("daily_costs[3].cost"), Some((5, 2)));
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn a_lazy_map_answers_as_the_eager_one() {
        let src = Source::from_text("t.yaml", "a:\n  b:\n    - x: 1\n    - y: [2, 3]\nc: 4\n\"\": {z: 5}\n");
        let root = crate::yaml::parse_yaml(&src).expect("valid YAML");
        let eager = SourceMap::from_node(&root);
        let lazy = SourceMap::lazy(std::sync::Arc::new(root));
        for f in ["", "a", "a.b", "a.b[0].x", "a.b[1].y[1]", "c", "z", "a.c", "a.b[0].x.deeper"] {
            assert_eq!(lazy.get(f), eager.get(f), "{f}");
            assert_eq!(lazy.locate(f), eager.locate(f), "{f}");
        }
        assert_eq!(lazy.len(), eager.len());
        assert_eq!(lazy, eager);
        assert_eq!(format!("{lazy:?}"), format!("{eager:?}"));

        // An insert into a lazy map first records the tree's positions.
        let src = Source::from_text("t.yaml", "a: 1\n");
        let mut lazy = SourceMap::lazy(std::sync::Arc::new(crate::yaml::parse_yaml(&src).expect("valid YAML")));
        lazy.insert("b", 7, 1);
        // The document (path "") is positioned too.
        assert_eq!((lazy.get("a"), lazy.get("b"), lazy.len()), (Some((1, 1)), Some((7, 1)), 3));
        assert!(SourceMap::new().is_empty());
    }

    #[test]
    fn parents() {
        assert_eq!(parent("daily_costs[3].cost"), "daily_costs[3]");
        assert_eq!(parent("daily_costs[3]"), "daily_costs");
        assert_eq!(parent("daily_costs"), "");
        assert_eq!(parent("policies[2].conditions.burn_rate.value[1]"), "policies[2].conditions.burn_rate.value");
    }
}
