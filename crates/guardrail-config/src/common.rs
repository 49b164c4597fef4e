//! Shared pieces of the loaders: the finding collector, typed readers over [`Node`]s and
//! "did you mean" suggestions.

use std::path::PathBuf;

use guardrail_core::policy::Severity;
use guardrail_core::slo::{CountLiteral, Num};

use crate::error::{ConfigError, Finding, split_pos};
use crate::map::SourceMap;
use crate::source::Source;
use crate::yaml::{self, Node, NodeValue, join};

/// A value read from a file, with the positions of its fields and any warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The value.
    pub value: T,
    /// Field path → position, to locate errors found later (e.g. by `cost::analyse`).
    pub map: SourceMap,
    /// The file it came from.
    pub file: PathBuf,
    /// Things worth a look that do not stop the gate (unknown keys, …).
    pub warnings: Vec<ConfigError>,
}

impl<T> Loaded<T> {
    /// An error about `field` of this file, positioned at the field or its nearest parent.
    /// Use it for errors the core reports later (`SloError`, `CostError`).
    pub fn error_at(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.file, field, self.map.locate(field), message)
    }
}

/// The format a loader expects when the file name does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Yaml,
    Json,
}

/// The format by extension (`.json` → JSON, `.yaml`/`.yml` → YAML), else `default`.
pub(crate) fn format_of(src: &Source, default: Format) -> Format {
    let ext = src.path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ => default,
    }
}

/// Parses by extension (`.json` → JSON, `.yaml`/`.yml` → YAML), else as `default`.
pub(crate) fn parse_as(src: &Source, default: Format) -> Result<Node, Vec<ConfigError>> {
    match format_of(src, default) {
        Format::Json => yaml::parse_json(src),
        Format::Yaml => yaml::parse_yaml(src),
    }
}

/// Collects findings, positioning each through the source map.
pub(crate) struct Diags {
    pub file: PathBuf,
    pub map: SourceMap,
    pub items: Vec<Finding>,
}

impl Diags {
    pub fn new(src: &Source, map: SourceMap) -> Self {
        Diags { file: src.path.clone(), map, items: Vec::new() }
    }

    pub fn push(&mut self, severity: Severity, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        let (line, col) = split_pos(self.map.locate(&field));
        self.items.push(Finding { severity, file: self.file.clone(), field, line, col, message: message.into() });
    }

    /// A finding about key `key` of the mapping at `parent`, positioned at the key (`field`
    /// is their join) but naming a long key by its start only ([`shown_key`]), so a
    /// multi-megabyte key is not copied into the report.
    pub fn push_key(&mut self, severity: Severity, field: &str, parent: &str, key: &str, message: String) {
        let (line, col) = split_pos(self.map.locate(field));
        let field = if key.chars().nth(MAX_KEY_SHOWN).is_some() {
            join(parent, &format!("{}…", shown_prefix(key)))
        } else {
            field.to_string()
        };
        self.items.push(Finding { severity, file: self.file.clone(), field, line, col, message });
    }

    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, field, message);
    }

    pub fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, field, message);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Finding::is_error)
    }

    /// `Ok` with the value and the warnings when there is a value and no error.
    pub fn finish<T>(self, value: Option<T>) -> Result<Loaded<T>, Vec<ConfigError>> {
        let mut items = self.items;
        sort_findings(&mut items);
        let (errors, warnings): (Vec<Finding>, Vec<Finding>) = items.into_iter().partition(Finding::is_error);
        match value {
            Some(value) if errors.is_empty() => Ok(Loaded {
                value,
                map: self.map,
                file: self.file,
                warnings: warnings.iter().map(Finding::to_error).collect(),
            }),
            _ if errors.is_empty() => Err(vec![ConfigError::file(&self.file, "could not be read")]),
            _ => Err(errors.iter().map(Finding::to_error).collect()),
        }
    }
}

/// File order: by line and column, unknown positions last, ties kept in the order found.
pub(crate) fn sort_findings(items: &mut [Finding]) {
    items.sort_by_key(|f| (f.line.unwrap_or(usize::MAX), f.col.unwrap_or(0)));
}

/// The entries of a mapping, or an error naming what was found instead.
pub(crate) fn mapping<'n>(d: &mut Diags, path: &str, node: &'n Node) -> Option<&'n [(String, Node)]> {
    match node.as_map() {
        Some(m) => Some(m),
        None => {
            d.error(path, format!("must be a mapping, got {}", node.describe()));
            None
        }
    }
}

/// An entry by key.
pub(crate) fn get<'n>(entries: &'n [(String, Node)], key: &str) -> Option<&'n Node> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// A required entry; reports `parent.key: is required` when absent.
pub(crate) fn required<'n>(
    d: &mut Diags,
    parent: &str,
    entries: &'n [(String, Node)],
    key: &str,
    why: &str,
) -> Option<&'n Node> {
    let node = get(entries, key);
    if node.is_none() {
        let msg = if why.is_empty() { "is required".to_string() } else { format!("is required: {why}") };
        d.error(join(parent, key), msg);
    }
    node
}

/// An optional entry, where `null` means absent.
pub(crate) fn optional<'n>(entries: &'n [(String, Node)], key: &str) -> Option<&'n Node> {
    get(entries, key).filter(|n| !n.is_null())
}

/// A hint for a number written as text.
fn numeric_text_hint(s: &str) -> &'static str {
    let t = s.trim();
    if t.parse::<f64>().is_err() {
        ""
    } else if t.starts_with("-.") || t.starts_with("+.") {
        " (YAML 1.1, as PyYAML reads it, takes -.5 as text: write -0.5)"
    } else if t.contains(['e', 'E']) {
        " (a number in quotes is text: remove the quotes; YAML 1.1, as PyYAML reads it, also takes 1e3 as text: write 1000 or 1.0e+3)"
    } else {
        " (a number in quotes is text: remove the quotes)"
    }
}

/// A number (an integer literal stays marked as one).
pub(crate) fn number(d: &mut Diags, path: &str, node: &Node) -> Option<Num> {
    match &node.value {
        NodeValue::Int(i) => Some(Num::int(*i)),
        NodeValue::Float(f) => Some(Num::float(*f)),
        NodeValue::Str(s) => {
            d.error(path, format!("must be a number, got the string {s:?}{}", numeric_text_hint(s)));
            None
        }
        _ => {
            d.error(path, format!("must be a number, got {}", node.describe()));
            None
        }
    }
}

/// A non-negative whole number; an integral float such as `2592000.0` is accepted.
pub(crate) fn count(d: &mut Diags, path: &str, node: &Node) -> Option<u64> {
    count_as_written(d, path, node).map(|(v, _)| v)
}

/// The largest count accepted, written either way: `i64::MAX`, the largest integer the
/// readers hold exactly. One rule for both forms, because both are computed as the seed's
/// Python computes them (ints exactly, floats in floating point).
pub(crate) const MAX_COUNT: u64 = i64::MAX as u64;

/// [`count`], and whether it was written as an integer or as a whole-number float.
pub(crate) fn count_as_written(d: &mut Diags, path: &str, node: &Node) -> Option<(u64, CountLiteral)> {
    let too_large = |shown: String| format!("{shown} is too large: a count is a whole number from 0 to {MAX_COUNT}");
    match &node.value {
        NodeValue::Int(i) if *i >= 0 => Some((*i as u64, CountLiteral::Integer)),
        NodeValue::Int(i) => {
            d.error(path, format!("must not be negative, got {i}"));
            None
        }
        NodeValue::Float(f) if !f.is_finite() => {
            d.error(path, format!("must be a whole number, got {}", yaml::fmt_float(*f)));
            None
        }
        NodeValue::Float(f) if *f < 0.0 => {
            d.error(path, format!("must not be negative, got {}", yaml::fmt_float(*f)));
            None
        }
        NodeValue::Float(f) if f.fract() != 0.0 => {
            d.error(path, format!("must be a whole number, got {}", yaml::fmt_float(*f)));
            None
        }
        // 2^63 is the first float above i64::MAX; an integer literal above i64::MAX reaches
        // here as a float too (the JSON and YAML readers hold integers as i64).
        NodeValue::Float(f) if *f >= 9_223_372_036_854_775_808.0 => {
            d.error(path, too_large(yaml::fmt_float(*f)));
            None
        }
        // Whole and below 2^63: the conversion is exact.
        NodeValue::Float(f) => Some((*f as u64, CountLiteral::Float)),
        NodeValue::Str(s) => {
            d.error(path, format!("must be a whole number, got the string {s:?}{}", numeric_text_hint(s)));
            None
        }
        _ => {
            d.error(path, format!("must be a whole number, got {}", node.describe()));
            None
        }
    }
}

/// A string.
pub(crate) fn string(d: &mut Diags, path: &str, node: &Node) -> Option<String> {
    match &node.value {
        NodeValue::Str(s) => Some(s.clone()),
        _ => {
            d.error(path, format!("must be a string, got {}", node.describe()));
            None
        }
    }
}

/// True for `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (RFC 3339; `t`/`z` and a space separator
/// are allowed as RFC 3339 permits).
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(b.len() >= 20
        && (0..4).all(d)
        && at(4, b'-')
        && d(5)
        && d(6)
        && at(7, b'-')
        && d(8)
        && d(9)
        && matches!(b[10], b'T' | b't' | b' ')
        && d(11)
        && d(12)
        && at(13, b':')
        && d(14)
        && d(15)
        && at(16, b':')
        && d(17)
        && d(18))
    {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        let start = i;
        while d(i) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => i + 6 == b.len() && d(i + 1) && d(i + 2) && at(i + 3, b':') && d(i + 4) && d(i + 5),
        _ => false,
    }
}

/// An RFC 3339 timestamp with an offset.
pub(crate) fn timestamp(d: &mut Diags, path: &str, node: &Node) -> Option<jiff::Timestamp> {
    let s = string(d, path, node)?;
    let example = "e.g. 2026-02-20T00:00:00Z";
    if !is_rfc3339(&s) {
        d.error(path, format!("must be an RFC 3339 timestamp with a UTC offset ({example}), got {s:?}"));
        return None;
    }
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => Some(t),
        Err(e) => {
            d.error(path, format!("{s:?} is not a valid timestamp ({example}): {e}"));
            None
        }
    }
}

/// A calendar date written `YYYY-MM-DD`.
pub(crate) fn date(d: &mut Diags, path: &str, node: &Node) -> Option<jiff::civil::Date> {
    let s = string(d, path, node)?;
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    if !shape {
        d.error(path, format!("must be an ISO date YYYY-MM-DD (e.g. 2026-02-20), got {s:?}"));
        return None;
    }
    match s.parse::<jiff::civil::Date>() {
        Ok(date) => Some(date),
        Err(e) => {
            d.error(path, format!("{s:?} is not a calendar date: {e}"));
            None
        }
    }
}

/// What to do with keys a block does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unknown {
    /// Always an error.
    Error,
    /// Always a warning.
    Warn,
    /// A warning, but an error when the key is a likely typo of one of these keys (keys
    /// that are read) and that key is absent: its value would silently fall back to a default.
    WarnUnlessTypoOf(&'static [&'static str]),
}

/// Unknown keys listed one by one per mapping; the rest are summed up in one finding, so a
/// file of a million stray keys costs a million cheap checks, not a million messages.
pub(crate) const MAX_UNKNOWN_KEYS_LISTED: usize = 50;

/// Longest key, in characters, that is quoted whole in a message or compared for a "did you
/// mean": keys are short words, and a multi-megabyte key (JSON allows one) must cost no more
/// than a short one.
pub(crate) const MAX_KEY_SHOWN: usize = 64;

/// The first [`MAX_KEY_SHOWN`] characters of `k`.
fn shown_prefix(k: &str) -> &str {
    k.char_indices().nth(MAX_KEY_SHOWN).map_or(k, |(cut, _)| &k[..cut])
}

/// A key for a message: quoted whole when short, else its start and its length.
pub(crate) fn shown_key(k: &str) -> String {
    match k.char_indices().nth(MAX_KEY_SHOWN) {
        None => format!("{k:?}"),
        Some((cut, _)) => format!("{:?}… ({} characters)", &k[..cut], k.chars().count()),
    }
}

/// Reports keys not in `known` (`allow` says which other keys pass silently).
pub(crate) fn check_keys(
    d: &mut Diags,
    path: &str,
    entries: &[(String, Node)],
    known: &[&str],
    mode: Unknown,
    allow: impl Fn(&str) -> bool,
) {
    let (mut listed, mut unlisted, mut unlisted_errors) = (0usize, 0usize, 0usize);
    let mut first_unlisted: Option<&str> = None;
    for (k, _) in entries {
        if known.contains(&k.as_str()) || allow(k) {
            continue;
        }
        let suggestion = suggest(k, known);
        let typo_of_absent = |read: &[&str]| suggestion.is_some_and(|s| read.contains(&s) && get(entries, s).is_none());
        let is_error = match mode {
            Unknown::Error => true,
            Unknown::WarnUnlessTypoOf(read) => typo_of_absent(read),
            Unknown::Warn => false,
        };
        if listed == MAX_UNKNOWN_KEYS_LISTED {
            unlisted += 1;
            unlisted_errors += usize::from(is_error);
            first_unlisted.get_or_insert(k);
            continue;
        }
        listed += 1;
        let mut msg = format!("unknown key {}", shown_key(k));
        if let Some(s) = suggestion {
            msg.push_str(&format!("; did you mean {s:?}?"));
        }
        let field = join(path, k);
        let severity = if is_error {
            Severity::Error
        } else {
            msg.push_str("; it is ignored");
            Severity::Warning
        };
        d.push_key(severity, &field, path, k, msg);
    }
    if let Some(first) = first_unlisted {
        let severity = if unlisted_errors > 0 { Severity::Error } else { Severity::Warning };
        let msg = format!(
            "{unlisted} more unknown key(s), not listed one by one (only the first {MAX_UNKNOWN_KEYS_LISTED} are), \
             from {}{}",
            shown_key(first),
            if unlisted_errors > 0 { format!("; {unlisted_errors} of them refused") } else { "; ignored".to_string() }
        );
        d.push_key(severity, &join(path, first), path, first, msg);
    }
}

/// The closest known word within edit distance 2 (case-insensitive), if any. A word longer
/// than [`MAX_KEY_SHOWN`] characters gets none, and each comparison is a banded one
/// ([`osa_distance_within`]), so the work per word is bounded whatever its length.
pub(crate) fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    const MAX_EDITS: usize = 2;
    if word.chars().nth(MAX_KEY_SHOWN).is_some() {
        return None;
    }
    let w = word.to_ascii_lowercase();
    known
        .iter()
        .filter_map(|k| osa_distance_within(&w, &k.to_ascii_lowercase(), MAX_EDITS).map(|dist| (dist, *k)))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), or `None`
/// when it exceeds `max`. Only the diagonal band of width `2·max + 1` is computed (a cell
/// further out is already more than `max` edits away), so the cost is O(len · max).
pub(crate) fn osa_distance_within(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    if n.abs_diff(m) > max {
        return None;
    }
    let far = max + 1; // any value above max stands for "too far"
    // Three rows of the full table; cells outside the band hold `far`.
    let mut prev2 = vec![far; m + 1];
    let mut prev: Vec<usize> = (0..=m).map(|j| j.min(far)).collect();
    let mut cur = vec![far; m + 1];
    for i in 1..=n {
        cur.fill(far);
        if i <= max {
            cur[0] = i;
        }
        let lo = i.saturating_sub(max).max(1);
        let hi = (i + max).min(m);
        for j in lo..=hi {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v.min(far);
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[m];
    (d <= max).then_some(d)
}

/// A node as JSON (for pass-through fields). Non-finite floats become `null`.
pub(crate) fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &node.value {
        NodeValue::Null => Value::Null,
        NodeValue::Bool(b) => Value::Bool(*b),
        NodeValue::Int(i) => Value::from(*i),
        NodeValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        NodeValue::Str(s) => Value::String(s.clone()),
        NodeValue::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeValue::Map(entries) => Value::Object(entries.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert!(is_rfc3339("2026-02-20T00:00:00Z"));
        assert!(is_rfc3339("2026-02-20T00:00:00.123+05:30"));
        assert!(is_rfc3339("2026-02-20 00:00:00z"));
        assert!(!is_rfc3339("2026-02-20T00:00:00"));
        assert!(!is_rfc3339("2026-02-20"));
        assert!(!is_rfc3339("20260220T000000Z"));
        assert!(!is_rfc3339("02/20/2026 00:00:00Z"));
    }

    /// The banded distance agrees with the full table wherever it answers.
    #[test]
    fn banded_distance_matches_the_full_table() {
        fn full(a: &str, b: &str) -> usize {
            let a: Vec<char> = a.chars().collect();
            let b: Vec<char> = b.chars().collect();
            let mut dp = vec![vec![0usize; b.len() + 1]; a.len() + 1];
            for (i, row) in dp.iter_mut().enumerate() {
                row[0] = i;
            }
            for (j, cell) in dp[0].iter_mut().enumerate() {
                *cell = j;
            }
            for i in 1..=a.len() {
                for j in 1..=b.len() {
                    let cost = usize::from(a[i - 1] != b[j - 1]);
                    let mut v = (dp[i - 1][j] + 1).min(dp[i][j - 1] + 1).min(dp[i - 1][j - 1] + cost);
                    if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                        v = v.min(dp[i - 2][j - 2] + 1);
                    }
                    dp[i][j] = v;
                }
            }
            dp[a.len()][b.len()]
        }
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "acb",
            "priority",
            "pirority",
            "prioirty",
            "remediation",
            "remediaton",
            "reason",
            "p95_ms",
            "p95",
            "p99_ms",
            "total_requests",
            "total_request",
            "totl_requests",
            "xyz",
            "ca",
            "abc",
            "ä",
            "äb",
        ];
        for a in words {
            for b in words {
                for max in 0..4 {
                    let want = full(a, b);
                    let got = osa_distance_within(a, b, max);
                    assert_eq!(got, (want <= max).then_some(want), "{a:?} {b:?} within {max}");
                }
            }
        }
    }

    #[test]
    fn long_keys_get_no_suggestion_and_are_shown_by_their_start() {
        let key = "a".repeat(3 << 20);
        assert_eq!(suggest(&key, &["a", "aa"]), None);
        let near = format!("{}x", "p".repeat(MAX_KEY_SHOWN));
        assert_eq!(suggest(&near, &[near.as_str()]), None);
        let shown = shown_key(&key);
        assert!(shown.len() < 100, "{shown}");
        assert!(shown.ends_with(&format!("… ({} characters)", 3 << 20)), "{shown}");
        assert_eq!(shown_key("short"), "\"short\"");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("remediaton", &["reason", "remediation"]), Some("remediation"));
        assert_eq!(suggest("pirority", &["priority", "id"]), Some("priority"));
        assert_eq!(suggest("zzz", &["priority", "id"]), None);
        assert_eq!(suggest("LT", &["lt", "gt"]), Some("lt"));
    }
}
