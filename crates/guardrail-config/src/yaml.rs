//! A positioned node tree for YAML and JSON inputs.
//!
//! YAML is read with `saphyr-parser` events and resolved the way PyYAML's `safe_load` (YAML
//! 1.1) resolves plain scalars, because the files Guardrail reads were written for, and read
//! by, the seed tool's PyYAML:
//! - `yes/no/on/off` (and their `Yes/YES/...` spellings) are booleans, as are `true/false`;
//!   a node keeps a note that it came from one of the YAML-1.1-only words
//!   ([`Node::yaml11_bool`]) so that the policy lint can warn;
//! - `~`, `null`, `Null`, `NULL` and the empty scalar are null;
//! - integers: decimal with optional sign and `_`, `0x..`, `0b..`, a leading `0` for octal,
//!   and base-60 `1:30`; `0o17` is *not* an integer in YAML 1.1 (it is the string `"0o17"`);
//! - floats need a dot (`1.5`, `1.`, `.5`, `1.0e+3`, `.inf`, `-.inf`, `.nan`): `1e3` and
//!   `-.5` are strings, exactly as PyYAML reads them;
//! - quoted and block scalars are always strings; PyYAML's timestamp resolution is not
//!   reproduced (an unquoted date stays a string);
//! - the tags `!!str`, `!!int`, `!!float`, `!!bool`, `!!null` (and `!!seq`, `!!map` on
//!   collections) are honoured; any other tag is an error;
//! - anchors and aliases are resolved by copying, merge keys (`<<`) are applied as PyYAML
//!   does, and the nodes aliases copy are capped ([`MAX_NODES`]) against alias bombs
//!   ("billion laughs"); the nodes written in the file are bounded by its size
//!   ([`MAX_WRITTEN_NODES`], far above what a 16 MiB file of real configuration holds);
//! - duplicate keys are an error naming both lines (PyYAML silently kept the last one), keys
//!   must be strings, and a file must hold a single document.
//!
//! Guardrail's own formats (the governor config, the tokens file) are read with the YAML 1.2
//! core schema instead ([`parse_yaml12`]): `on`/`yes`/`no`/`off` are strings, `1e3` is a
//! number, a leading `0` is not octal, no base 60 and no merge keys. The dialect goes with the
//! file, never with a block inside it: the policy file (with its `freezes:` block) is the
//! seed's file and stays YAML 1.1.
//!
//! JSON is parsed by `serde_json` first, for JSON-accurate syntax errors, and then by the YAML
//! parser with JSON scalar rules to recover positions. When the second pass fails or
//! disagrees (JSON that is not valid YAML, e.g. odd tab use), the tree from `serde_json` is
//! used without positions (line and column 0).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::ConfigError;
use crate::source::Source;

/// Most nodes aliases may add to a YAML document (each alias counts every node it copies), and
/// most nodes a JSON document may hold. A 10,000-rule policy file writes ~200,000 nodes and
/// copies none: it is the expansion that is bounded, not honest size.
pub const MAX_NODES: usize = 200_000;

/// Most nodes a YAML document may write out (without aliases). Only a degenerate file reaches
/// it (`[0,0,0,…]` in 16 MiB); it bounds the memory such a file takes.
pub const MAX_WRITTEN_NODES: usize = 4_000_000;

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 128;

/// One value in a file, with the position where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: NodeValue,
    /// 1-based line of the value (0 when unknown).
    pub line: usize,
    /// 1-based column of the value, in characters (0 when unknown).
    pub col: usize,
    /// For a mapping value: where its key is written, `(line, col)`.
    pub key_at: Option<(usize, usize)>,
    /// True for a plain scalar read as a boolean only because YAML 1.1 says so
    /// (`yes/no/on/off` in any of their spellings).
    pub yaml11_bool: bool,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// `null`, `~` or nothing.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A float literal (including `.inf` and `.nan`).
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// A node at a position (0, 0 for unknown).
    pub fn new(value: NodeValue, line: usize, col: usize) -> Self {
        Node { value, line, col, key_at: None, yaml11_bool: false }
    }

    /// `(line, col)` of the value, when known.
    pub fn pos(&self) -> Option<(usize, usize)> {
        (self.line > 0).then_some((self.line, self.col))
    }

    /// Where the node is best pointed at: its key when it is a mapping value, else itself.
    pub fn anchor_pos(&self) -> Option<(usize, usize)> {
        self.key_at.filter(|(l, _)| *l > 0).or_else(|| self.pos())
    }

    /// The entries when this is a mapping.
    pub fn as_map(&self) -> Option<&[(String, Node)]> {
        match &self.value {
            NodeValue::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items when this is a list.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The text when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A mapping entry by key (`None` when absent or when this is not a mapping).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// True for null.
    pub fn is_null(&self) -> bool {
        matches!(self.value, NodeValue::Null)
    }

    /// Number of nodes in this subtree, itself included.
    pub fn count(&self) -> usize {
        match &self.value {
            NodeValue::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            NodeValue::Map(entries) => 1 + entries.iter().map(|(_, v)| v.count()).sum::<usize>(),
            _ => 1,
        }
    }

    /// What the value is, for messages: `null`, `the boolean true`, `the string "500"`, …
    pub fn describe(&self) -> String {
        match &self.value {
            NodeValue::Null => "null".to_string(),
            NodeValue::Bool(b) if self.yaml11_bool => {
                format!("the boolean {b} (YAML 1.1, as PyYAML reads it, takes yes/no/on/off as booleans)")
            }
            NodeValue::Bool(b) => format!("the boolean {b}"),
            NodeValue::Int(i) => format!("the integer {i}"),
            NodeValue::Float(f) => format!("the number {}", fmt_float(*f)),
            NodeValue::Str(s) => format!("the string {s:?}"),
            NodeValue::Seq(_) => "a list".to_string(),
            NodeValue::Map(_) => "a mapping".to_string(),
        }
    }
}

/// A float as Python's `repr` writes it for ordinary values (`1.0`, `99.9`, `inf`, `nan`).
pub fn fmt_float(f: f64) -> String {
    if f.is_nan() {
        "nan".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".to_string() } else { "-inf".to_string() }
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// How plain scalars are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    /// PyYAML `safe_load`.
    Yaml11,
    /// The YAML 1.2 core schema, for Guardrail's own formats ([`parse_yaml12`]).
    Yaml12,
    /// JSON literals only (`null`, `true`, `false`, numbers).
    Json,
}

/// Parses a YAML source into a positioned tree, collecting every error found (a syntax error
/// stops the parse; duplicate keys, bad keys and bad tags are all reported).
pub fn parse_yaml(src: &Source) -> Result<Node, Vec<ConfigError>> {
    let built = build(&src.path, strip_bom(&src.text), Schema::Yaml11);
    match (built.root, built.errors.is_empty()) {
        (Some(root), true) => Ok(root),
        (_, false) => Err(built.errors),
        (None, true) => Ok(Node::new(NodeValue::Null, 1, 1)),
    }
}

/// Parses a YAML source of one of Guardrail's own formats (the governor config, the tokens
/// file) into a positioned tree with the YAML 1.2 core schema: only `true`/`false` (any case
/// of their first letter or all) are booleans, so `on`, `yes`, `no` and `off` are strings;
/// integers are decimal, `0o17` or `0x1F` (a leading `0` is not octal and `1:30` is a
/// string); `1e3` and `-.5` are numbers; merge keys (`<<`, a YAML 1.1 type) are plain keys.
/// Everything else (tags, aliases, the node cap, duplicate and non-string keys, one
/// document) is as in [`parse_yaml`].
pub fn parse_yaml12(src: &Source) -> Result<Node, Vec<ConfigError>> {
    let built = build(&src.path, strip_bom(&src.text), Schema::Yaml12);
    match (built.root, built.errors.is_empty()) {
        (Some(root), true) => Ok(root),
        (_, false) => Err(built.errors),
        (None, true) => Ok(Node::new(NodeValue::Null, 1, 1)),
    }
}

/// Parses a JSON source into a positioned tree (see the module docs).
pub fn parse_json(src: &Source) -> Result<Node, Vec<ConfigError>> {
    let text = strip_bom(&src.text);
    let (tree, dups) = match json_tree(text) {
        Ok(x) => x,
        Err(e) => return Err(vec![json_syntax_error(&src.path, text, &e)]),
    };
    let built = build(&src.path, text, Schema::Json);
    if !built.fatal
        && let Some(root) = built.root
    {
        if !built.errors.is_empty() {
            return Err(built.errors);
        }
        if same(&root, &tree) {
            return Ok(root);
        }
    }
    if !dups.is_empty() {
        return Err(dups
            .into_iter()
            .map(|(path, key)| {
                ConfigError::at(
                    &src.path,
                    join(&path, &key),
                    None,
                    format!("duplicate key {key:?} in the same object; each key may appear once"),
                )
            })
            .collect());
    }
    Ok(tree)
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// `parent.key`, or `key` at the top level.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

// ---------------------------------------------------------------------------------------
// The event-driven builder.

enum KeyState {
    /// The next node is a key.
    Expect,
    /// The next node is the value of this key.
    Key(String, usize, usize),
    /// The next node is merged (`<<`).
    Merge,
    /// The key was bad (already reported); the next node is dropped.
    Skip,
}

enum Frame {
    Seq {
        line: usize,
        col: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        col: usize,
        anchor: usize,
        entries: Vec<(String, Node)>,
        index: Keys,
        key: KeyState,
        merges: Vec<Node>,
    },
}

/// The keys of a mapping being built, for duplicate keys and merges: a scan of its entries while
/// it is small (almost every mapping is: a policy rule has eight keys, and a fleet's file has
/// tens of thousands of them), a hash map once it has more than [`SCAN_KEYS`].
#[derive(Default)]
struct Keys(Option<HashMap<String, usize>>);

const SCAN_KEYS: usize = 16;

impl Keys {
    /// The line where `name` is first written (for a merged key, where its value is).
    fn line(&self, entries: &[(String, Node)], name: &str) -> Option<usize> {
        match &self.0 {
            Some(ix) => ix.get(name).copied(),
            None => entries.iter().find(|(k, _)| k == name).map(|(_, n)| n.key_at.map_or(n.line, |(l, _)| l)),
        }
    }

    /// Records the entry just pushed, written at `line`.
    fn added(&mut self, entries: &[(String, Node)], line: usize) {
        match &mut self.0 {
            Some(ix) => {
                if let Some((k, _)) = entries.last() {
                    ix.insert(k.clone(), line);
                }
            }
            None if entries.len() > SCAN_KEYS => {
                let mut ix: HashMap<String, usize> =
                    entries.iter().map(|(k, n)| (k.clone(), n.key_at.map_or(n.line, |(l, _)| l))).collect();
                if let Some((k, _)) = entries.last() {
                    ix.insert(k.clone(), line);
                }
                self.0 = Some(ix);
            }
            None => {}
        }
    }
}

struct Built {
    root: Option<Node>,
    errors: Vec<ConfigError>,
    /// The parse stopped early (syntax error or a limit).
    fatal: bool,
}

struct Builder<'a> {
    file: &'a Path,
    schema: Schema,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes written in the file.
    nodes: usize,
    /// Nodes copied by aliases.
    copied: usize,
    errors: Vec<ConfigError>,
    root: Option<Node>,
    documents: usize,
}

/// Marker for an error that stops the parse (already recorded).
struct Stop;

fn build(file: &Path, text: &str, schema: Schema) -> Built {
    let mut b = Builder {
        file,
        schema,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        copied: 0,
        errors: Vec::new(),
        root: None,
        documents: 0,
    };
    let mut parser = Parser::new_from_str(text);
    let mut fatal = false;
    while let Some(next) = parser.next_event() {
        match next {
            Ok((ev, span)) => {
                if b.event(ev, span).is_err() {
                    fatal = true;
                    break;
                }
            }
            Err(e) => {
                let m = e.marker();
                b.errors.push(ConfigError::at(
                    file,
                    "",
                    Some((m.line(), m.col() + 1)),
                    format!("YAML syntax error: {}", e.info()),
                ));
                fatal = true;
                break;
            }
        }
    }
    Built { root: b.root, errors: b.errors, fatal }
}

fn tag_name(tag: &Tag) -> String {
    if let Some(s) = core_tag(tag) {
        format!("!!{s}")
    } else if tag.handle == "!" {
        format!("!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

fn core_tag(tag: &Tag) -> Option<&str> {
    const CORE: &str = "tag:yaml.org,2002:";
    if tag.handle == CORE {
        Some(&tag.suffix)
    } else if tag.handle.is_empty() {
        tag.suffix.strip_prefix(CORE)
    } else {
        None
    }
}

impl Builder<'_> {
    fn error(&mut self, field: String, pos: (usize, usize), message: impl Into<String>) {
        self.errors.push(ConfigError::at(self.file, field, Some(pos), message));
    }

    fn stop(&mut self, field: String, pos: (usize, usize), message: impl Into<String>) -> Result<(), Stop> {
        self.error(field, pos, message);
        Err(Stop)
    }

    /// Path of the collection at stack index `k` (the keys and indices of frames below it).
    fn path_to(&self, k: usize) -> String {
        let mut path = String::new();
        for frame in &self.stack[..k] {
            match frame {
                Frame::Seq { items, .. } => path.push_str(&format!("[{}]", items.len())),
                Frame::Map { key: KeyState::Key(name, ..), .. } => path = join(&path, name),
                Frame::Map { key: KeyState::Merge, .. } => path = join(&path, "<<"),
                Frame::Map { .. } => {}
            }
        }
        path
    }

    /// Path of the node being read now.
    fn path_here(&self) -> String {
        self.path_to(self.stack.len())
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: KeyState::Expect, .. }))
    }

    /// One node written in the file.
    fn count(&mut self, pos: (usize, usize)) -> Result<(), Stop> {
        self.nodes = self.nodes.saturating_add(1);
        if self.nodes > MAX_WRITTEN_NODES {
            let path = self.path_here();
            return self.stop(
                path,
                pos,
                format!("the document holds more than {MAX_WRITTEN_NODES} values; refusing to read it"),
            );
        }
        Ok(())
    }

    /// `n` nodes copied by an alias: the alias-bomb guard. Checked before the copy is made, so
    /// a billion-laughs document stops after copying at most [`MAX_NODES`] nodes.
    fn count_copies(&mut self, n: usize, pos: (usize, usize)) -> Result<(), Stop> {
        self.copied = self.copied.saturating_add(n);
        if self.copied > MAX_NODES {
            let path = self.path_here();
            return self.stop(
                path,
                pos,
                format!(
                    "the document expands to more than {MAX_NODES} values through aliases (an alias bomb: aliases count every copy); refusing to read it"
                ),
            );
        }
        Ok(())
    }

    fn set_key(&mut self, state: KeyState) {
        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
            *key = state;
        }
    }

    /// A node used as a mapping key (taken, so its text becomes the key without a copy).
    fn key(&mut self, node: Node, pos: (usize, usize)) {
        match node.value {
            NodeValue::Str(s) => self.set_key(KeyState::Key(s, pos.0, pos.1)),
            _ => {
                let path = self.path_here();
                let what = node.describe();
                self.error(
                    path,
                    pos,
                    format!("mapping keys must be strings, but this key is {what}; quote it if it is a name"),
                );
                self.set_key(KeyState::Skip);
            }
        }
    }

    fn event(&mut self, ev: Event<'_>, span: Span) -> Result<(), Stop> {
        let pos = (span.start.line(), span.start.col() + 1);
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return self.stop(
                        String::new(),
                        pos,
                        "the file holds more than one YAML document (`---`); it must hold exactly one",
                    );
                }
                Ok(())
            }
            Event::Scalar(text, style, anchor, tag) => self.scalar(text, style, anchor, tag.as_deref(), pos),
            Event::Alias(id) => {
                let Some(size) = self.anchors.get(&id).map(|(_, n)| *n) else {
                    let path = self.path_here();
                    return self.stop(path, pos, "alias to an anchor that is not complete here (a recursive alias)");
                };
                self.count_copies(size, pos)?;
                let Some((node, _)) = self.anchors.get(&id) else { return Ok(()) };
                let node = node.clone();
                if self.expecting_key() {
                    self.key(node, pos);
                    return Ok(());
                }
                self.push(node);
                Ok(())
            }
            Event::SequenceStart(anchor, tag) => {
                self.open(pos, tag.as_deref(), "seq")?;
                self.stack.push(Frame::Seq { line: pos.0, col: pos.1, anchor, items: Vec::new() });
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                self.open(pos, tag.as_deref(), "map")?;
                self.stack.push(Frame::Map {
                    line: pos.0,
                    col: pos.1,
                    anchor,
                    entries: Vec::new(),
                    index: Keys::default(),
                    key: KeyState::Expect,
                    merges: Vec::new(),
                });
                Ok(())
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { line, col, anchor, items }) = self.stack.pop() {
                    let node = Node::new(NodeValue::Seq(items), line, col);
                    self.finish(node, anchor);
                }
                Ok(())
            }
            Event::MappingEnd => {
                if let Some(Frame::Map { line, col, anchor, mut entries, mut index, merges, .. }) = self.stack.pop() {
                    // Only a merge error needs the path: building it for every mapping was 6 %
                    // of reading a 5,000-rule policy file.
                    let path = if merges.is_empty() { String::new() } else { self.path_here() };
                    for m in merges {
                        let maps: Vec<Vec<(String, Node)>> = match m.value {
                            NodeValue::Map(pairs) => vec![pairs],
                            NodeValue::Seq(items) => {
                                let mut maps = Vec::new();
                                for item in items {
                                    match item.value {
                                        NodeValue::Map(pairs) => maps.push(pairs),
                                        _ => self.error(
                                            join(&path, "<<"),
                                            (item.line, item.col),
                                            "a merge key (`<<`) list may hold only mappings",
                                        ),
                                    }
                                }
                                maps
                            }
                            _ => {
                                self.error(
                                    join(&path, "<<"),
                                    (m.line, m.col),
                                    "a merge key (`<<`) takes a mapping or a list of mappings",
                                );
                                Vec::new()
                            }
                        };
                        // Explicit keys win, then earlier merged mappings (PyYAML's order).
                        for pairs in maps {
                            for (k, v) in pairs {
                                if index.line(&entries, &k).is_none() {
                                    let line = v.line;
                                    entries.push((k, v));
                                    index.added(&entries, line);
                                }
                            }
                        }
                    }
                    let node = Node::new(NodeValue::Map(entries), line, col);
                    self.finish(node, anchor);
                }
                Ok(())
            }
        }
    }

    /// Checks before a collection starts.
    fn open(&mut self, pos: (usize, usize), tag: Option<&Tag>, kind: &str) -> Result<(), Stop> {
        self.count(pos)?;
        if self.expecting_key() {
            let path = self.path_here();
            let what = if kind == "seq" { "a list" } else { "a mapping" };
            return self.stop(path, pos, format!("mapping keys must be strings, not {what}"));
        }
        if self.stack.len() >= MAX_DEPTH {
            let path = self.path_here();
            return self.stop(path, pos, format!("nested more than {MAX_DEPTH} levels deep"));
        }
        if let Some(tag) = tag
            && core_tag(tag) != Some(kind)
        {
            let path = self.path_here();
            self.error(path, pos, format!("unsupported tag {}", tag_name(tag)));
        }
        Ok(())
    }

    /// A collection is complete: record its anchor and place it.
    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            let n = node.count();
            self.anchors.insert(anchor, (node.clone(), n));
        }
        self.push(node);
    }

    fn scalar(
        &mut self,
        text: Cow<'_, str>,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        pos: (usize, usize),
    ) -> Result<(), Stop> {
        self.count(pos)?;
        let is_key = self.expecting_key();
        if is_key && self.schema == Schema::Yaml11 && style == ScalarStyle::Plain && tag.is_none() && text == "<<" {
            self.set_key(KeyState::Merge);
            return Ok(());
        }
        // A quoted, untagged scalar is its text (as in `resolve`): take the parser's string
        // rather than copying it — most of a policy file's values are quoted.
        let resolved = if tag.is_none() && style != ScalarStyle::Plain {
            Ok((NodeValue::Str(text.into_owned()), false))
        } else {
            resolve(&text, style, tag, self.schema)
        };
        let (value, yaml11_bool) = match resolved {
            Ok(v) => v,
            Err(e) => {
                let path = self.path_here();
                self.error(path, pos, e.to_string());
                if is_key {
                    self.set_key(KeyState::Skip);
                    return Ok(());
                }
                (NodeValue::Null, false)
            }
        };
        let node = Node { value, line: pos.0, col: pos.1, key_at: None, yaml11_bool };
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), 1));
        }
        if is_key {
            self.key(node, pos);
        } else {
            self.push(node);
        }
        Ok(())
    }

    /// Places a complete value in the collection being built (or as the document root).
    fn push(&mut self, mut node: Node) {
        let depth = self.stack.len();
        // A duplicate key needs the path, which borrows the stack: check it first.
        let dup = match self.stack.last() {
            Some(Frame::Map { key: KeyState::Key(name, line, col), index, entries, .. }) => {
                index.line(entries, name).map(|first| (name.clone(), first, (*line, *col)))
            }
            _ => None,
        };
        if let Some((name, first, pos)) = dup {
            let path = join(&self.path_to(depth - 1), &name);
            self.error(
                path,
                pos,
                format!(
                    "duplicate key {name:?} (lines {first} and {}); each key may appear once in a mapping (PyYAML silently kept the last one)",
                    pos.0
                ),
            );
            self.set_key(KeyState::Expect);
            return;
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => {
                node.key_at = None;
                items.push(node);
            }
            Some(Frame::Map { key, entries, index, merges, .. }) => match std::mem::replace(key, KeyState::Expect) {
                KeyState::Key(name, line, col) => {
                    node.key_at = Some((line, col));
                    entries.push((name, node));
                    index.added(entries, line);
                }
                KeyState::Merge => merges.push(node),
                KeyState::Skip | KeyState::Expect => {}
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Scalar resolution.

/// A scalar that cannot be read as its tag or its look says (the tree records it as an error at
/// the scalar's position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ScalarError {
    #[error("{text:?} is not a boolean ({tag})")]
    NotABool { text: String, tag: String },
    #[error("{text:?} is not a number ({tag})")]
    TaggedNotANumber { text: String, tag: String },
    #[error("{problem} ({tag})")]
    TaggedInt { problem: Box<ScalarError>, tag: String },
    #[error("unsupported tag {tag}; only !!str, !!int, !!float, !!bool and !!null are read")]
    UnsupportedTag { tag: String },
    #[error("{text:?} is out of range for an integer")]
    IntRange { text: String },
    #[error("{text:?} is not a valid integer")]
    NotAnInt { text: String },
    #[error("{text:?} is not a valid number")]
    NotANumber { text: String },
}

fn resolve(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    schema: Schema,
) -> Result<(NodeValue, bool), ScalarError> {
    if let Some(tag) = tag {
        let name = tag_name(tag);
        return match core_tag(tag) {
            Some("str") => Ok((NodeValue::Str(text.to_string()), false)),
            Some("null") => Ok((NodeValue::Null, false)),
            Some("bool") => match (text.to_ascii_lowercase().as_str(), schema) {
                ("true", _) | ("yes" | "on", Schema::Yaml11 | Schema::Json) => Ok((NodeValue::Bool(true), false)),
                ("false", _) | ("no" | "off", Schema::Yaml11 | Schema::Json) => Ok((NodeValue::Bool(false), false)),
                _ => Err(ScalarError::NotABool { text: text.to_string(), tag: name }),
            },
            Some("int") => construct_int(text)
                .map(|i| (NodeValue::Int(i), false))
                .map_err(|e| ScalarError::TaggedInt { problem: Box::new(e), tag: name }),
            Some("float") => construct_float(text)
                .map(|f| (NodeValue::Float(f), false))
                .ok_or_else(|| ScalarError::TaggedNotANumber { text: text.to_string(), tag: name }),
            _ => Err(ScalarError::UnsupportedTag { tag: name }),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok((NodeValue::Str(text.to_string()), false));
    }
    match schema {
        Schema::Yaml11 => resolve_plain_yaml11(text),
        Schema::Yaml12 => resolve_plain_yaml12(text).map(|v| (v, false)),
        Schema::Json => Ok((resolve_plain_json(text), false)),
    }
}

/// The YAML 1.2 core schema's plain scalars (spec 10.3.2).
fn resolve_plain_yaml12(s: &str) -> Result<NodeValue, ScalarError> {
    Ok(match s {
        "" | "~" | "null" | "Null" | "NULL" => NodeValue::Null,
        "true" | "True" | "TRUE" => NodeValue::Bool(true),
        "false" | "False" | "FALSE" => NodeValue::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => NodeValue::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => NodeValue::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => NodeValue::Float(f64::NAN),
        _ => {
            let (_, neg, body) = split_sign(s);
            let radix = |digits: &str, radix: u32| {
                // `[-+]?` applies to decimal integers only; `0o`/`0x` take no sign.
                if s.starts_with(['-', '+']) {
                    return Ok(NodeValue::Str(s.to_string()));
                }
                i64::from_str_radix(digits, radix)
                    .map(NodeValue::Int)
                    .map_err(|_| ScalarError::IntRange { text: s.to_string() })
            };
            if let Some(d) = body.strip_prefix("0o").filter(|d| all(d, |b| (b'0'..=b'7').contains(&b))) {
                return radix(d, 8);
            }
            if let Some(d) = body.strip_prefix("0x").filter(|d| all(d, |b| b.is_ascii_hexdigit())) {
                return radix(d, 16);
            }
            if all(body, |b| b.is_ascii_digit()) {
                let range = || ScalarError::IntRange { text: s.to_string() };
                let magnitude: i128 = body.parse().map_err(|_| range())?;
                let v = if neg { -magnitude } else { magnitude };
                return i64::try_from(v).map(NodeValue::Int).map_err(|_| range());
            }
            if is_yaml12_float(body) {
                return s
                    .parse::<f64>()
                    .map(NodeValue::Float)
                    .map_err(|_| ScalarError::NotANumber { text: s.to_string() });
            }
            NodeValue::Str(s.to_string())
        }
    })
}

/// `(\.[0-9]+ | [0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (the sign already split off).
fn is_yaml12_float(body: &str) -> bool {
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (int.is_empty() && all(frac, |b| b.is_ascii_digit()))
                || (all(int, |b| b.is_ascii_digit()) && frac.bytes().all(|b| b.is_ascii_digit()))
        }
        None => all(mantissa, |b| b.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| all(e.strip_prefix(['-', '+']).unwrap_or(e), |b| b.is_ascii_digit()));
    mantissa_ok && exponent_ok
}

fn resolve_plain_yaml11(s: &str) -> Result<(NodeValue, bool), ScalarError> {
    let v = match s {
        "" | "~" | "null" | "Null" | "NULL" => NodeValue::Null,
        "true" | "True" | "TRUE" => NodeValue::Bool(true),
        "false" | "False" | "FALSE" => NodeValue::Bool(false),
        "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Ok((NodeValue::Bool(true), true)),
        "no" | "No" | "NO" | "off" | "Off" | "OFF" => return Ok((NodeValue::Bool(false), true)),
        _ => {
            if is_yaml11_int(s) {
                NodeValue::Int(construct_int(s)?)
            } else if is_yaml11_float(s) {
                NodeValue::Float(construct_float(s).ok_or_else(|| ScalarError::NotANumber { text: s.to_string() })?)
            } else {
                NodeValue::Str(s.to_string())
            }
        }
    };
    Ok((v, false))
}

fn resolve_plain_json(s: &str) -> NodeValue {
    match s {
        "null" => NodeValue::Null,
        "true" => NodeValue::Bool(true),
        "false" => NodeValue::Bool(false),
        _ => {
            let numeric = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
            if !numeric {
                return NodeValue::Str(s.to_string());
            }
            let integral = s.bytes().all(|b| b.is_ascii_digit() || b == b'-');
            if integral && let Ok(i) = s.parse::<i64>() {
                return NodeValue::Int(i);
            }
            match s.parse::<f64>() {
                Ok(f) => NodeValue::Float(f),
                Err(_) => NodeValue::Str(s.to_string()),
            }
        }
    }
}

fn split_sign(s: &str) -> (bool, bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, true, &s[1..]),
        Some(b'+') => (true, false, &s[1..]),
        _ => (false, false, s),
    }
}

fn all(s: &str, f: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(f)
}

/// PyYAML's YAML 1.1 int regex.
fn is_yaml11_int(s: &str) -> bool {
    let (_, _, body) = split_sign(s);
    if let Some(d) = body.strip_prefix("0b") {
        return all(d, |b| b == b'0' || b == b'1' || b == b'_');
    }
    if let Some(d) = body.strip_prefix("0x") {
        return all(d, |b| b.is_ascii_hexdigit() || b == b'_');
    }
    if body == "0" {
        return true;
    }
    if let Some(d) = body.strip_prefix('0') {
        return all(d, |b| (b'0'..=b'7').contains(&b) || b == b'_');
    }
    let bytes = body.as_bytes();
    if !matches!(bytes.first(), Some(b'1'..=b'9')) {
        return false;
    }
    let mut parts = body.split(':');
    let head = parts.next().unwrap_or("");
    if !all(head, |b| b.is_ascii_digit() || b == b'_') {
        return false;
    }
    parts.all(is_base60_digit)
}

/// `[0-5]?[0-9]`
fn is_base60_digit(p: &str) -> bool {
    match p.as_bytes() {
        [d] => d.is_ascii_digit(),
        [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
        _ => false,
    }
}

/// PyYAML's `construct_yaml_int`, with range checks.
fn construct_int(s: &str) -> Result<i64, ScalarError> {
    let cleaned = s.replace('_', "");
    let (_, neg, body) = split_sign(&cleaned);
    let bad = || ScalarError::NotAnInt { text: s.to_string() };
    let range = || ScalarError::IntRange { text: s.to_string() };
    let magnitude: i128 = if body == "0" {
        0
    } else if let Some(d) = body.strip_prefix("0b") {
        i128::from_str_radix(d, 2).map_err(|_| bad())?
    } else if let Some(d) = body.strip_prefix("0x") {
        i128::from_str_radix(d, 16).map_err(|_| bad())?
    } else if body.starts_with('0') {
        i128::from_str_radix(body, 8).map_err(|_| bad())?
    } else if body.contains(':') {
        let mut acc: i128 = 0;
        for part in body.split(':') {
            let d = part.parse::<i128>().map_err(|_| bad())?;
            acc = acc.checked_mul(60).and_then(|a| a.checked_add(d)).ok_or_else(bad)?;
        }
        acc
    } else {
        if !all(body, |b| b.is_ascii_digit()) {
            return Err(bad());
        }
        body.parse::<i128>().map_err(|_| range())?
    };
    let v = if neg { -magnitude } else { magnitude };
    i64::try_from(v).map_err(|_| range())
}

/// PyYAML's YAML 1.1 float regex.
fn is_yaml11_float(s: &str) -> bool {
    let (signed, _, body) = split_sign(s);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    if !signed && matches!(body, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let b = body.as_bytes();
    let mut i = 0;
    let digits_us = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && (b[*i].is_ascii_digit() || b[*i] == b'_') {
            *i += 1;
        }
        *i - start
    };
    let exponent = |i: &mut usize| -> bool {
        // ([eE][-+][0-9]+)? then the end.
        if *i == b.len() {
            return true;
        }
        if !matches!(b[*i], b'e' | b'E') {
            return false;
        }
        *i += 1;
        if *i >= b.len() || !matches!(b[*i], b'-' | b'+') {
            return false;
        }
        *i += 1;
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start && *i == b.len()
    };
    if b.first() == Some(&b'.') {
        // \.[0-9][0-9_]*([eE][-+][0-9]+)?  (no sign allowed)
        if signed || b.len() < 2 || !b[1].is_ascii_digit() {
            return false;
        }
        i = 1;
        digits_us(&mut i);
        return exponent(&mut i);
    }
    if !b.first().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    digits_us(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        digits_us(&mut i);
        return exponent(&mut i);
    }
    // Base 60: [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        if i + 1 < b.len() && (b'0'..=b'5').contains(&b[i]) && b[i + 1].is_ascii_digit() {
            i += 2;
        } else if i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        } else {
            return false;
        }
        groups += 1;
    }
    if groups == 0 || i >= b.len() || b[i] != b'.' {
        return false;
    }
    i += 1;
    digits_us(&mut i);
    i == b.len()
}

/// PyYAML's `construct_yaml_float` (also used for `!!float`, which accepts any number).
fn construct_float(s: &str) -> Option<f64> {
    let cleaned = s.replace('_', "").to_ascii_lowercase();
    let (_, neg, body) = split_sign(&cleaned);
    let sign = if neg { -1.0 } else { 1.0 };
    if body == ".inf" {
        return Some(sign * f64::INFINITY);
    }
    if body == ".nan" {
        return Some(f64::NAN);
    }
    if body.contains(':') {
        let mut acc = 0.0;
        for part in body.split(':') {
            acc = acc * 60.0 + part.parse::<f64>().ok()?;
        }
        return Some(sign * acc);
    }
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    body.parse::<f64>().ok().map(|f| sign * f)
}

// ---------------------------------------------------------------------------------------
// JSON via serde_json.

/// Structural equality ignoring positions (floats within a relative 1e-12: serde_json's
/// default float parsing is not always correctly rounded).
fn same(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (NodeValue::Null, NodeValue::Null) => true,
        (NodeValue::Bool(x), NodeValue::Bool(y)) => x == y,
        (NodeValue::Int(x), NodeValue::Int(y)) => x == y,
        (NodeValue::Float(x), NodeValue::Float(y)) => {
            x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()) || (x.is_nan() && y.is_nan())
        }
        (NodeValue::Str(x), NodeValue::Str(y)) => x == y,
        (NodeValue::Seq(x), NodeValue::Seq(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (NodeValue::Map(x), NodeValue::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((kp, p), (kq, q))| kp == kq && same(p, q))
        }
        _ => false,
    }
}

struct JsonState {
    nodes: Cell<usize>,
    dups: RefCell<Vec<(String, String)>>,
}

struct NodeSeed<'a> {
    st: &'a JsonState,
    path: String,
}

impl NodeSeed<'_> {
    fn bump<E: de::Error>(&self) -> Result<(), E> {
        let n = self.st.nodes.get() + 1;
        self.st.nodes.set(n);
        // JSON has no aliases: only the written size is bounded, as for YAML's written nodes.
        if n > MAX_WRITTEN_NODES {
            return Err(E::custom(format!(
                "the document holds more than {MAX_WRITTEN_NODES} values; refusing to read it"
            )));
        }
        Ok(())
    }

    fn leaf<E: de::Error>(&self, v: NodeValue) -> Result<Node, E> {
        self.bump()?;
        Ok(Node::new(v, 0, 0))
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        self.leaf(NodeValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        self.leaf(NodeValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        match i64::try_from(v) {
            Ok(i) => self.leaf(NodeValue::Int(i)),
            Err(_) => self.leaf(NodeValue::Float(v as f64)),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        self.leaf(NodeValue::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        self.leaf(NodeValue::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        self.leaf(NodeValue::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        self.leaf(NodeValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        self.leaf(NodeValue::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        self.bump()?;
        let mut items = Vec::new();
        loop {
            let seed = NodeSeed { st: self.st, path: format!("{}[{}]", self.path, items.len()) };
            match seq.next_element_seed(seed)? {
                Some(n) => items.push(n),
                None => break,
            }
        }
        Ok(Node::new(NodeValue::Seq(items), 0, 0))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        self.bump()?;
        let mut entries: Vec<(String, Node)> = Vec::new();
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(NodeSeed { st: self.st, path: join(&self.path, &k) })?;
            if seen.insert(k.clone()) {
                entries.push((k, v));
            } else {
                self.st.dups.borrow_mut().push((self.path.clone(), k));
            }
        }
        Ok(Node::new(NodeValue::Map(entries), 0, 0))
    }
}

type DupKeys = Vec<(String, String)>;

fn json_tree(text: &str) -> Result<(Node, DupKeys), serde_json::Error> {
    let st = JsonState { nodes: Cell::new(0), dups: RefCell::new(Vec::new()) };
    let mut de = serde_json::Deserializer::from_str(text);
    let node = NodeSeed { st: &st, path: String::new() }.deserialize(&mut de)?;
    de.end()?;
    Ok((node, st.dups.into_inner()))
}

fn json_syntax_error(file: &Path, text: &str, e: &serde_json::Error) -> ConfigError {
    let mut msg = e.to_string();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    let line = e.line();
    let hint = line > 0 && text.lines().nth(line - 1).is_some_and(|l| l.contains("NaN") || l.contains("Infinity"));
    let mut message = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => format!("JSON syntax error: {msg}"),
        _ => msg,
    };
    if hint {
        message.push_str(
            "; NaN and Infinity are not valid JSON numbers (the seed tool's Python parser accepted them): write a number or remove the field",
        );
    }
    let pos = (line > 0).then_some((line, e.column()));
    ConfigError::at(file, "", pos, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> NodeValue {
        resolve_plain_yaml11(s).map(|(v, _)| v).unwrap_or(NodeValue::Str(format!("ERR {s}")))
    }

    #[test]
    fn yaml11_scalars() {
        assert_eq!(y("yes"), NodeValue::Bool(true));
        assert_eq!(y("OFF"), NodeValue::Bool(false));
        assert_eq!(y("y"), NodeValue::Str("y".into()));
        assert_eq!(y("~"), NodeValue::Null);
        assert_eq!(y(""), NodeValue::Null);
        assert_eq!(y("1_000"), NodeValue::Int(1000));
        assert_eq!(y("-0x1F"), NodeValue::Int(-31));
        assert_eq!(y("017"), NodeValue::Int(15));
        assert_eq!(y("0b101"), NodeValue::Int(5));
        assert_eq!(y("0o17"), NodeValue::Str("0o17".into()));
        assert_eq!(y("09"), NodeValue::Str("09".into()));
        assert_eq!(y("1:30"), NodeValue::Int(90));
        assert_eq!(y("1.5"), NodeValue::Float(1.5));
        assert_eq!(y("1."), NodeValue::Float(1.0));
        assert_eq!(y(".5"), NodeValue::Float(0.5));
        assert_eq!(y("-.5"), NodeValue::Str("-.5".into()));
        assert_eq!(y("1e3"), NodeValue::Str("1e3".into()));
        assert_eq!(y("1.0e+3"), NodeValue::Float(1000.0));
        assert_eq!(y("1.0e3"), NodeValue::Str("1.0e3".into()));
        assert_eq!(y("-.inf"), NodeValue::Float(f64::NEG_INFINITY));
        assert_eq!(y("1:30.5"), NodeValue::Float(90.5));
        assert!(matches!(y(".nan"), NodeValue::Float(f) if f.is_nan()));
        assert_eq!(y("-.nan"), NodeValue::Str("-.nan".into()));
        assert_eq!(y("99999999999999999999"), NodeValue::Str("ERR 99999999999999999999".into()));
        assert_eq!(y("2026-02-20"), NodeValue::Str("2026-02-20".into()));
        assert!(resolve_plain_yaml11("on").is_ok_and(|(_, legacy)| legacy));
        assert!(resolve_plain_yaml11("true").is_ok_and(|(_, legacy)| !legacy));
    }

    fn y12(s: &str) -> NodeValue {
        resolve_plain_yaml12(s).unwrap_or(NodeValue::Str(format!("ERR {s}")))
    }

    /// The same words, read by the two dialects: what changes for Guardrail's own formats.
    #[test]
    fn yaml12_core_scalars_differ_from_yaml11_where_the_spec_does() {
        for (word, v11, v12) in [
            ("on", NodeValue::Bool(true), NodeValue::Str("on".into())),
            ("yes", NodeValue::Bool(true), NodeValue::Str("yes".into())),
            ("No", NodeValue::Bool(false), NodeValue::Str("No".into())),
            ("1e3", NodeValue::Str("1e3".into()), NodeValue::Float(1000.0)),
            ("-.5", NodeValue::Str("-.5".into()), NodeValue::Float(-0.5)),
            ("0o17", NodeValue::Str("0o17".into()), NodeValue::Int(15)),
            ("017", NodeValue::Int(15), NodeValue::Int(17)),
            ("1:30", NodeValue::Int(90), NodeValue::Str("1:30".into())),
            ("1_000", NodeValue::Int(1000), NodeValue::Str("1_000".into())),
            ("0b101", NodeValue::Int(5), NodeValue::Str("0b101".into())),
        ] {
            assert_eq!(y(word), v11, "1.1 {word}");
            assert_eq!(y12(word), v12, "1.2 {word}");
        }
        for (word, same) in [
            ("true", NodeValue::Bool(true)),
            ("FALSE", NodeValue::Bool(false)),
            ("~", NodeValue::Null),
            ("", NodeValue::Null),
            ("-12", NodeValue::Int(-12)),
            ("0x1F", NodeValue::Int(31)),
            ("1.5", NodeValue::Float(1.5)),
            ("1.", NodeValue::Float(1.0)),
            ("-.inf", NodeValue::Float(f64::NEG_INFINITY)),
            ("2026-02-20", NodeValue::Str("2026-02-20".into())),
            ("y", NodeValue::Str("y".into())),
        ] {
            assert_eq!(y(word), same, "1.1 {word}");
            assert_eq!(y12(word), same, "1.2 {word}");
        }
        assert!(matches!(y12(".nan"), NodeValue::Float(f) if f.is_nan()));
        assert_eq!(y12("-0x1F"), NodeValue::Str("-0x1F".into()));
        assert_eq!(y12("1.2.3"), NodeValue::Str("1.2.3".into()));
        assert_eq!(y12("e3"), NodeValue::Str("e3".into()));
        assert_eq!(y12("99999999999999999999"), NodeValue::Str("ERR 99999999999999999999".into()));
    }

    #[test]
    fn yaml12_trees_keep_merge_keys_as_keys_and_refuse_yes_as_bool_tag() {
        let src = Source::from_text("own.yaml", "a: on\n<<: {b: 1}\n");
        let root = parse_yaml12(&src).unwrap();
        assert_eq!(root.get("a").and_then(Node::as_str), Some("on"));
        assert!(!root.get("a").unwrap().yaml11_bool);
        assert!(root.get("<<").is_some() && root.get("b").is_none());
        let e = parse_yaml12(&Source::from_text("own.yaml", "a: !!bool yes\n")).unwrap_err();
        assert!(e[0].to_string().contains("own.yaml:1:4") && e[0].message.contains("not a boolean"), "{e:?}");
        let root = parse_yaml(&Source::from_text("seed.yaml", "a: on\n")).unwrap();
        assert_eq!(root.get("a").map(|n| &n.value), Some(&NodeValue::Bool(true)));
    }

    #[test]
    fn json_scalars() {
        assert_eq!(resolve_plain_json("480"), NodeValue::Int(480));
        assert_eq!(resolve_plain_json("-0"), NodeValue::Int(0));
        assert_eq!(resolve_plain_json("1e3"), NodeValue::Float(1000.0));
        assert_eq!(resolve_plain_json("99.9"), NodeValue::Float(99.9));
        assert_eq!(resolve_plain_json("2592000.0"), NodeValue::Float(2_592_000.0));
    }
}
