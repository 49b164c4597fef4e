//! A `serde` [`Deserializer`](de::Deserializer) over the positioned tree ([`Node`]), so that
//! Guardrail's own formats derive `Deserialize` and still report every problem with the file,
//! the field path, the line and the column.
//!
//! How errors get their place: the deserializer knows which node and which field path it is
//! reading. An error raised while a node is read (by the type's visitor, a `missing_field`, an
//! `unknown_variant`, a custom error from a hand-written `Deserialize`) comes back through that
//! node's `deserialize_*` call, which names it with the node's path, records it as a finding in
//! the loader's `Diags` (positioned by the `SourceMap`: a mapping entry at
//! its key) and hands up an error that is already reported, so the parents pass it on.
//!
//! Messages say what a user wrote, not what Rust wanted: `must be a whole number, got the
//! string "30"`, `approvals.high.approvers: is required`, `"webhok" is not one of dry-run,
//! command, webhook; did you mean "webhook"?`.
//!
//! Unknown keys: a struct's keys are checked against the fields serde names before any is read,
//! the way every other loader does (`check_keys`): each unknown key is an error at its line
//! with a "did you mean" (bounded: `suggest`), *all* of them are reported, and then the known
//! keys are read. Own-format structs also carry `#[serde(deny_unknown_fields)]`, so no other
//! deserializer can read them leniently either.
//!
//! Limits worth knowing: serde stops a struct at its first failing field, so past unknown keys
//! one shape error per file is reported; checks of values (a user name, a hash, a URL) belong
//! in the loader after deserializing, where they can all be collected. `#[serde(flatten)]` is
//! not used with this deserializer (a flattened struct's fields are not in the list the unknown
//! key check sees).

use std::cell::RefCell;
use std::fmt;

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, EnumAccess, Expected, MapAccess, SeqAccess, Unexpected, VariantAccess, Visitor,
};

use crate::common::{Diags, Format, Loaded, Unknown, check_keys, shown_key, suggest};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::{self, Node, NodeValue, join};

/// Reads one of Guardrail's own formats: YAML with the YAML 1.2 core schema
/// ([`yaml::parse_yaml12`]), or JSON when the file name ends in `.json`, deserialized into `T`.
/// Every error names the file, field path, line and column.
pub fn load_own<T>(src: &Source) -> Result<Loaded<T>, Vec<ConfigError>>
where
    T: for<'de> Deserialize<'de>,
{
    let root = parse_own(src)?;
    let mut d = Diags::new(src, SourceMap::from_node(&root));
    let value = from_node(&mut d, &root);
    d.finish(value)
}

/// The tree of an own-format file: JSON by extension, else YAML 1.2 core.
pub(crate) fn parse_own(src: &Source) -> Result<Node, Vec<ConfigError>> {
    match crate::common::format_of(src, Format::Yaml) {
        Format::Json => yaml::parse_json(src),
        Format::Yaml => yaml::parse_yaml12(src),
    }
}

/// Deserializes `root` into a `T`; every problem becomes an error finding in `d`. The value
/// comes back whenever serde could build it, even when unknown keys were reported, so the
/// caller can go on checking values and report those problems too; the caller then ends
/// with [`Diags::finish`], which refuses when any error was recorded.
pub(crate) fn from_node<'de, T: Deserialize<'de>>(d: &mut Diags, root: &'de Node) -> Option<T> {
    from_node_at(d, root, "")
}

/// [`from_node`] for a node inside the file, whose field path is `path` (`freezes[1]`).
pub(crate) fn from_node_at<'de, T: Deserialize<'de>>(d: &mut Diags, root: &'de Node, path: &str) -> Option<T> {
    let placeholder = Diags { file: d.file.clone(), map: SourceMap::new(), items: Vec::new() };
    let cx = RefCell::new(std::mem::replace(d, placeholder));
    let result = T::deserialize(NodeDe { node: root, path: path.to_string(), cx: &cx });
    *d = cx.into_inner();
    match result {
        Ok(value) => Some(value),
        Err(DeError::Pending(kind)) => {
            // Every call locates its errors, so this is only a safety net.
            let (field, message) = kind.render(path, || root.describe());
            d.error(field, message);
            None
        }
        Err(DeError::Reported { .. }) => None,
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on an `Option` field: an absent key
/// is `None`, but `key: null` (or `key:` with nothing) is read as the field's type and so
/// refused (`must be a string, got null`). A config key left empty must not quietly mean "not
/// set" (for `tokens:`, that would switch identity from tokens to the OS account).
pub fn present<'de, D: de::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A list of strings, described in an error as `what` (`must be a list of user names, got
/// the string "alice"`).
pub(crate) struct StringList(pub &'static str);

impl<'de> Visitor<'de> for StringList {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(s) = seq.next_element::<String>()? {
            out.push(s);
        }
        Ok(out)
    }
}

/// An error from deserializing a tree: first what went wrong, then (once the node that was
/// being read names it) where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeError {
    /// Raised, not yet placed.
    Pending(Problem),
    /// Placed and recorded as a finding.
    Reported {
        /// Dotted field path.
        field: String,
        /// `(line, col)`, when known.
        pos: Option<(usize, usize)>,
        /// What is wrong.
        message: String,
    },
}

/// What went wrong, before it is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A message from a `Deserialize` impl.
    Custom(String),
    /// The value has the wrong type or is out of the type's range; `expected` as serde says it.
    Wrong {
        /// What the type wanted (`u64`, `a sequence`, `struct Foo`, or a visitor's own words).
        expected: String,
    },
    /// A required field is absent.
    MissingField(&'static str),
    /// A name (a key or an enum value) is not one of `expected`.
    UnknownName {
        /// What was written.
        name: String,
        /// The accepted names.
        expected: &'static [&'static str],
        /// True for a key (message "unknown key"), false for a value.
        key: bool,
    },
}

impl Problem {
    /// `(field, message)` for a problem met while reading the node at `path`.
    fn render(self, path: &str, got: impl FnOnce() -> String) -> (String, String) {
        match self {
            Problem::Custom(m) => (path.to_string(), m),
            Problem::Wrong { expected } => (path.to_string(), format!("must be {}, got {}", plain(&expected), got())),
            Problem::MissingField(f) => (join(path, f), "is required".to_string()),
            Problem::UnknownName { name, expected, key } => {
                let mut msg = if key {
                    format!("unknown key {}", shown_key(&name))
                } else if expected.is_empty() {
                    format!("{} is not accepted here", shown_key(&name))
                } else {
                    format!("{} is not one of {}", shown_key(&name), expected.join(", "))
                };
                if let Some(s) = suggest(&name, expected) {
                    msg.push_str(&format!("; did you mean {s:?}?"));
                }
                (path.to_string(), msg)
            }
        }
    }
}

/// serde's names for what it expected, in the words of the file.
fn plain(expected: &str) -> String {
    let words = match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a sequence" => "a list",
        "a map" => "a mapping",
        "a borrowed string" | "a string" | "a character" | "a char" => "a string",
        "unit" => "null",
        "field identifier" | "variant identifier" => "a name",
        e if e.starts_with("struct ") => "a mapping",
        e if e.starts_with("tuple") || e.starts_with("an array") => "a list",
        e if e.starts_with("enum ") => "one of its names",
        e => return e.to_string(),
    };
    words.to_string()
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeError::Pending(p) => {
                let (field, message) = p.clone().render("", || "another value".to_string());
                if field.is_empty() { f.write_str(&message) } else { write!(f, "{field}: {message}") }
            }
            DeError::Reported { field, pos, message } => {
                if let Some((line, col)) = pos {
                    write!(f, "{line}:{col}: ")?;
                }
                if !field.is_empty() {
                    write!(f, "{field}: ")?;
                }
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::Pending(Problem::Custom(msg.to_string()))
    }
    fn invalid_type(_: Unexpected<'_>, exp: &dyn Expected) -> Self {
        DeError::Pending(Problem::Wrong { expected: exp.to_string() })
    }
    fn invalid_value(_: Unexpected<'_>, exp: &dyn Expected) -> Self {
        DeError::Pending(Problem::Wrong { expected: exp.to_string() })
    }
    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        DeError::Pending(Problem::Custom(format!("must be {}, got {len} item(s)", plain(&exp.to_string()))))
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::Pending(Problem::UnknownName { name: variant.to_string(), expected, key: false })
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::Pending(Problem::UnknownName { name: field.to_string(), expected, key: true })
    }
    fn missing_field(field: &'static str) -> Self {
        DeError::Pending(Problem::MissingField(field))
    }
}

type Cx = RefCell<Diags>;

/// Names a pending error with `path` and records it; a reported one passes through.
fn place(cx: &Cx, path: &str, got: impl FnOnce() -> String, e: DeError) -> DeError {
    match e {
        DeError::Pending(problem) => {
            let (field, message) = problem.render(path, got);
            let mut d = cx.borrow_mut();
            let pos = d.map.locate(&field);
            d.error(field.clone(), message.clone());
            DeError::Reported { field, pos, message }
        }
        reported => reported,
    }
}

/// Reads one node.
struct NodeDe<'de, 'c> {
    node: &'de Node,
    path: String,
    cx: &'c Cx,
}

impl<'de> NodeDe<'de, '_> {
    fn fail(&self, e: DeError) -> DeError {
        place(self.cx, &self.path, || self.node.describe(), e)
    }

    fn wrong(exp: &dyn Expected) -> DeError {
        DeError::Pending(Problem::Wrong { expected: exp.to_string() })
    }

    fn seq(&self, items: &'de [Node]) -> SeqDe<'de, '_> {
        SeqDe { items, next: 0, path: &self.path, cx: self.cx }
    }

    fn map(&self, entries: &'de [(String, Node)], known: Option<&'static [&'static str]>) -> MapDe<'de, '_> {
        MapDe { entries, next: 0, value: None, known, path: &self.path, cx: self.cx }
    }

    /// A whole number held as an integer, or as a float without a fraction (`30.0`).
    fn whole(&self) -> Option<i64> {
        match self.node.value {
            NodeValue::Int(i) => Some(i),
            // Below 2^63 in magnitude the conversion is exact.
            NodeValue::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0 => {
                Some(f as i64)
            }
            _ => None,
        }
    }
}

macro_rules! integer {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            let r = match self.whole() {
                Some(i) => v.visit_i64(i),
                None => Err(Self::wrong(&v)),
            };
            r.map_err(|e| self.fail(e))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'de, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            NodeValue::Null => v.visit_unit(),
            NodeValue::Bool(b) => v.visit_bool(*b),
            NodeValue::Int(i) => v.visit_i64(*i),
            NodeValue::Float(f) => v.visit_f64(*f),
            NodeValue::Str(s) => v.visit_borrowed_str(s),
            NodeValue::Seq(items) => visit_all_items(v, self.seq(items)),
            NodeValue::Map(entries) => v.visit_map(self.map(entries, None)),
        };
        r.map_err(|e| self.fail(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.node.value {
            NodeValue::Bool(b) => v.visit_bool(b),
            _ => Err(Self::wrong(&v)),
        };
        r.map_err(|e| self.fail(e))
    }

    integer!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
             deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(v)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.node.value {
            NodeValue::Int(i) => v.visit_f64(i as f64),
            NodeValue::Float(f) => v.visit_f64(f),
            _ => Err(Self::wrong(&v)),
        };
        r.map_err(|e| self.fail(e))
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            NodeValue::Str(s) => v.visit_borrowed_str(s),
            _ => Err(Self::wrong(&v)),
        };
        r.map_err(|e| self.fail(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_any(v)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_any(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            return v.visit_none().map_err(|e| self.fail(e));
        }
        // The inner value is this same node: its errors are placed by the inner call.
        v.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.node.value {
            NodeValue::Null => v.visit_unit(),
            _ => Err(Self::wrong(&v)),
        };
        r.map_err(|e| self.fail(e))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            NodeValue::Seq(items) => visit_all_items(v, self.seq(items)),
            _ => Err(Self::wrong(&v)),
        };
        r.map_err(|e| self.fail(e))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, _: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            NodeValue::Map(entries) => v.visit_map(self.map(entries, None)),
            _ => Err(Self::wrong(&v)),
        };
        r.map_err(|e| self.fail(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            NodeValue::Map(entries) => {
                // Every unknown key is reported here, with its line and a suggestion; the
                // visitor then sees only the known ones.
                check_keys(&mut self.cx.borrow_mut(), &self.path, entries, fields, Unknown::Error, |_| false);
                v.visit_map(self.map(entries, Some(fields)))
            }
            _ => Err(Self::wrong(&v)),
        };
        r.map_err(|e| self.fail(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            // `kind: webhook`: a unit variant.
            NodeValue::Str(s) => {
                v.visit_enum(EnumDe { name: s, name_path: self.path.clone(), content: None, cx: self.cx })
            }
            // `{webhook: {...}}`: a variant with content, externally tagged.
            NodeValue::Map(entries) if entries.len() == 1 => {
                let (name, content) = &entries[0];
                v.visit_enum(EnumDe { name, name_path: join(&self.path, name), content: Some(content), cx: self.cx })
            }
            _ => Err(Self::wrong(&v)),
        };
        r.map_err(|e| self.fail(e))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

/// `visit_seq`, then an error if the visitor left items unread (a tuple of the wrong length).
fn visit_all_items<'de, V: Visitor<'de>>(v: V, mut seq: SeqDe<'de, '_>) -> Result<V::Value, DeError> {
    let value = v.visit_seq(&mut seq)?;
    let left = seq.items.len() - seq.next;
    if left > 0 {
        return Err(DeError::Pending(Problem::Custom(format!(
            "has {} items, {left} more than expected",
            seq.items.len()
        ))));
    }
    Ok(value)
}

struct SeqDe<'de, 'p> {
    items: &'de [Node],
    next: usize,
    path: &'p str,
    cx: &'p Cx,
}

impl<'de> SeqAccess<'de> for &mut SeqDe<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.get(self.next) else { return Ok(None) };
        let path = format!("{}[{}]", self.path, self.next);
        self.next += 1;
        seed.deserialize(NodeDe { node, path, cx: self.cx }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

struct MapDe<'de, 'p> {
    entries: &'de [(String, Node)],
    next: usize,
    /// The entry whose key was just read.
    value: Option<&'de (String, Node)>,
    /// A struct's fields: other keys are skipped (already reported).
    known: Option<&'static [&'static str]>,
    path: &'p str,
    cx: &'p Cx,
}

impl<'de> MapAccess<'de> for MapDe<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        while let Some(entry) = self.entries.get(self.next) {
            self.next += 1;
            if self.known.is_some_and(|known| !known.contains(&entry.0.as_str())) {
                continue;
            }
            self.value = Some(entry);
            let key = KeyDe { key: &entry.0, path: join(self.path, &entry.0), cx: self.cx };
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, node)) = self.value.take() else {
            return Err(DeError::Pending(Problem::Custom("a value was read before its key".to_string())));
        };
        seed.deserialize(NodeDe { node, path: join(self.path, key), cx: self.cx })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.next)
    }
}

/// Reads a mapping key (a string): its errors are placed at the key.
struct KeyDe<'de, 'c> {
    key: &'de str,
    path: String,
    cx: &'c Cx,
}

impl<'de> de::Deserializer<'de> for KeyDe<'de, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let key = self.key;
        v.visit_borrowed_str(key).map_err(|e| place(self.cx, &self.path, || format!("the key {}", shown_key(key)), e))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// An enum written as its variant's name, or as a one-key mapping `{variant: content}`.
struct EnumDe<'de, 'c> {
    name: &'de str,
    /// Where the name is: the node itself, or the one key.
    name_path: String,
    content: Option<&'de Node>,
    cx: &'c Cx,
}

impl<'de, 'c> EnumAccess<'de> for EnumDe<'de, 'c> {
    type Error = DeError;
    type Variant = VariantDe<'de, 'c>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self::Variant), DeError> {
        let name = self.name;
        let key = KeyDe { key: name, path: self.name_path.clone(), cx: self.cx };
        let value = seed.deserialize(key)?;
        Ok((value, VariantDe { content: self.content, path: self.name_path, cx: self.cx }))
    }
}

struct VariantDe<'de, 'c> {
    content: Option<&'de Node>,
    path: String,
    cx: &'c Cx,
}

impl<'de, 'c> VariantDe<'de, 'c> {
    fn content(self, wanted: &str) -> Result<NodeDe<'de, 'c>, DeError> {
        match self.content {
            Some(node) => Ok(NodeDe { node, path: self.path, cx: self.cx }),
            None => Err(place(
                self.cx,
                &self.path,
                || "a name alone".to_string(),
                DeError::Pending(Problem::Wrong { expected: format!("a mapping {{name: {wanted}}}") }),
            )),
        }
    }
}

impl<'de> VariantAccess<'de> for VariantDe<'de, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.content {
            None => Ok(()),
            Some(node) => Err(place(
                self.cx,
                &self.path,
                || node.describe(),
                DeError::Pending(Problem::Custom("takes no value: write the name alone".to_string())),
            )),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self.content("its value")?)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_tuple(self.content("a list")?, len, v)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], v: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self.content("a mapping")?, "", fields, v)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        count: u32,
        ratio: f64,
        enabled: bool,
        #[serde(default)]
        note: Option<String>,
        inner: Inner,
        #[serde(default)]
        items: Vec<Inner>,
        #[serde(default)]
        by_name: BTreeMap<String, Vec<String>>,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        pair: Option<(u8, String)>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        level: i64,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "kebab-case", deny_unknown_fields)]
    enum Mode {
        DryRun,
        Webhook { url: String },
        Retries(u8),
    }

    fn load<T: for<'de> Deserialize<'de>>(name: &str, text: &str) -> Result<T, Vec<String>> {
        load_own::<T>(&Source::from_text(name, text))
            .map(|l| l.value)
            .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    const GOOD: &str = "name: api\ncount: 3\nratio: 1e-3\nenabled: true\ninner: {level: -2, tags: [a]}\n\
        items:\n  - level: 1\n  - {level: 2}\nby_name: {x: [on, off]}\nmode: dry-run\npair: [7, seven]\n";

    #[test]
    fn reads_types_nested_structs_lists_maps_enums_options() {
        let v: Outer = load("f.yaml", GOOD).unwrap();
        assert_eq!(v.name, "api");
        assert_eq!(v.count, 3);
        assert_eq!(v.ratio, 0.001); // YAML 1.2: 1e-3 is a number
        assert!(v.enabled);
        assert_eq!(v.note, None);
        assert_eq!(v.inner, Inner { level: -2, tags: vec!["a".into()] });
        assert_eq!(v.items.iter().map(|i| i.level).collect::<Vec<_>>(), [1, 2]);
        // YAML 1.2: on/off are strings.
        assert_eq!(v.by_name["x"], ["on", "off"]);
        assert_eq!(v.mode, Some(Mode::DryRun));
        assert_eq!(v.pair, Some((7, "seven".into())));
        let v: Outer = load("f.yaml", &GOOD.replace("mode: dry-run", "mode: {webhook: {url: 'https://h'}}")).unwrap();
        assert_eq!(v.mode, Some(Mode::Webhook { url: "https://h".into() }));
        let v: Outer = load("f.yaml", &GOOD.replace("mode: dry-run", "mode: {retries: 2}")).unwrap();
        assert_eq!(v.mode, Some(Mode::Retries(2)));
        // The same through JSON, and an integral float read as a count.
        let json = r#"{"name": "api", "count": 3.0, "ratio": 1, "enabled": false, "inner": {"level": 0}}"#;
        let v: Outer = load("f.json", json).unwrap();
        assert_eq!((v.count, v.ratio, v.enabled), (3, 1.0, false));
    }

    #[test]
    fn every_unknown_key_is_reported_at_its_line_with_a_suggestion() {
        let text = GOOD.replace("count: 3", "count: 3\ncuont: 4").replace("level: -2", "levle: -2, level: -2");
        let e = load::<Outer>("f.yaml", &text).unwrap_err();
        assert_eq!(
            e,
            [
                "f.yaml:3:1: cuont: unknown key \"cuont\"; did you mean \"count\"?",
                "f.yaml:6:9: inner.levle: unknown key \"levle\"; did you mean \"level\"?",
            ]
        );
        let e = load::<Outer>("f.yaml", &format!("{GOOD}zzz: 1\n")).unwrap_err();
        assert_eq!(e, ["f.yaml:12:1: zzz: unknown key \"zzz\""]);
        // In a list item, the path names the item.
        let e = load::<Outer>("f.yaml", &GOOD.replace("  - {level: 2}", "  - {level: 2, tag: [x]}")).unwrap_err();
        assert_eq!(e, ["f.yaml:8:16: items[1].tag: unknown key \"tag\"; did you mean \"tags\"?"]);
    }

    #[test]
    fn wrong_types_name_the_field_position_and_what_was_written() {
        let cases = [
            ("count: 3", "count: '3'", "f.yaml:2:1: count: must be a whole number, got the string \"3\""),
            ("count: 3", "count: -1", "f.yaml:2:1: count: must be a whole number, got the integer -1"),
            ("count: 3", "count: 1.5", "f.yaml:2:1: count: must be a whole number, got the number 1.5"),
            (
                "count: 3",
                "count: 99999999999",
                "f.yaml:2:1: count: must be a whole number, got the integer 99999999999",
            ),
            ("enabled: true", "enabled: yes", "f.yaml:4:1: enabled: must be a boolean, got the string \"yes\""),
            ("name: api", "name: [api]", "f.yaml:1:1: name: must be a string, got a list"),
            ("name: api", "name:", "f.yaml:1:1: name: must be a string, got null"),
            ("inner: {level: -2, tags: [a]}", "inner: [1]", "f.yaml:5:1: inner: must be a mapping, got a list"),
            ("tags: [a]}", "tags: a}", "f.yaml:5:20: inner.tags: must be a list, got the string \"a\""),
            ("  - level: 1", "  - level: x", "f.yaml:7:5: items[0].level: must be an integer, got the string \"x\""),
            (
                "by_name: {x: [on, off]}",
                "by_name: {x: [on, 1]}",
                "f.yaml:9:19: by_name.x[1]: must be a string, got the integer 1",
            ),
            ("ratio: 1e-3", "ratio: .nan.", "f.yaml:3:1: ratio: must be a number, got the string \".nan.\""),
            ("pair: [7, seven]", "pair: [7, seven, 8]", "f.yaml:11:1: pair: has 3 items, 1 more than expected"),
            ("pair: [7, seven]", "pair: [300, x]", "f.yaml:11:8: pair[0]: must be a whole number, got the integer 300"),
        ];
        for (from, to, want) in cases {
            let text = GOOD.replace(from, to);
            assert_ne!(text, GOOD, "{from}");
            let e = load::<Outer>("f.yaml", &text).unwrap_err();
            assert_eq!(e, [want], "{to}");
        }
    }

    #[test]
    fn missing_fields_and_enum_names() {
        let e = load::<Outer>("f.yaml", &GOOD.replace("count: 3\n", "")).unwrap_err();
        assert_eq!(e, ["f.yaml:1:1: count: is required"]);
        let e = load::<Outer>("f.yaml", &GOOD.replace("  - {level: 2}", "  - {tags: []}")).unwrap_err();
        assert_eq!(e, ["f.yaml:8:5: items[1].level: is required"]);
        let e = load::<Outer>("f.yaml", &GOOD.replace("mode: dry-run", "mode: dry-rnu")).unwrap_err();
        assert_eq!(
            e,
            ["f.yaml:10:1: mode: \"dry-rnu\" is not one of dry-run, webhook, retries; did you mean \"dry-run\"?"]
        );
        let e = load::<Outer>("f.yaml", &GOOD.replace("mode: dry-run", "mode: {webhook: {uri: x}}")).unwrap_err();
        assert_eq!(
            e,
            [
                "f.yaml:10:8: mode.webhook.url: is required",
                "f.yaml:10:18: mode.webhook.uri: unknown key \"uri\"; did you mean \"url\"?"
            ]
        );
        let e = load::<Outer>("f.yaml", &GOOD.replace("mode: dry-run", "mode: webhook")).unwrap_err();
        assert!(e[0].starts_with("f.yaml:10:1: mode: must be a mapping {name: a mapping}"), "{e:?}");
        let e = load::<Outer>("f.yaml", "[1, 2]\n").unwrap_err();
        assert_eq!(e, ["f.yaml:1:1: must be a mapping, got a list"]);
    }

    #[test]
    fn own_formats_read_yaml_1_2_and_seed_files_keep_1_1() {
        #[derive(Debug, Deserialize)]
        struct Words {
            a: String,
            b: String,
        }
        let w: Words = load("own.yaml", "a: on\nb: no\n").unwrap();
        assert_eq!((w.a.as_str(), w.b.as_str()), ("on", "no"));
        // The same text through the 1.1 tree (the seed's files) holds booleans, which a
        // string field refuses, with PyYAML named as the reason.
        let root = yaml::parse_yaml(&Source::from_text("seed.yaml", "a: on\nb: no\n")).unwrap();
        let src = Source::from_text("seed.yaml", "");
        let mut d = Diags::new(&src, SourceMap::from_node(&root));
        assert!(from_node::<Words>(&mut d, &root).is_none());
        let msg = d.items[0].to_string();
        assert!(msg.starts_with("seed.yaml:1:1: error: a: must be a string, got the boolean true (YAML 1.1"), "{msg}");
    }
}
