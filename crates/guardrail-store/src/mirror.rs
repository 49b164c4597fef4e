//! The optional JSONL mirror in the seed tool's layout, `<dir>/decisions-YYYY-MM-DD.jsonl`.
//!
//! The store is the record of truth; the mirror is a convenience for tools that read the seed's
//! files. Each line is `{"timestamp": <recorded_at>, <body fields…>, "audit_seq": n,
//! "audit_hash": "…"}`, written like Python's `json.dumps` defaults (`", "` / `": "`
//! separators, non-ASCII escaped) so it reads like the seed's own lines. The file's date is the
//! UTC date of the record's `recorded_at` — not a second clock read, so a record written at
//! midnight lands in the file its timestamp names.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use guardrail_core::audit::ChainedRecord;
use serde::ser::{SerializeMap, Serializer};

use crate::StoreError;

/// Keys the mirror itself writes; a body field with one of these names is left out of the line
/// (the record's own timestamp, seq and hash are authoritative).
const RESERVED: [&str; 3] = ["timestamp", "audit_seq", "audit_hash"];

/// Appends records to a mirror directory. Equivalent to calling [`mirror_jsonl`] with the same
/// directory each time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlMirror {
    dir: PathBuf,
}

impl JsonlMirror {
    /// A mirror writing into `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JsonlMirror { dir: dir.into() }
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `record` and fsyncs; returns the file written.
    pub fn write(&self, record: &ChainedRecord) -> Result<PathBuf, StoreError> {
        mirror_jsonl(&self.dir, record)
    }
}

/// Appends one line for `record` to `<dir>/decisions-YYYY-MM-DD.jsonl` (UTC date of
/// `recorded_at`), creating the directory and file as needed, and fsyncs it before returning.
/// Returns the file written. Fails with [`StoreError::InvalidRecord`] if `recorded_at` is not an
/// RFC 3339 timestamp.
pub fn mirror_jsonl(dir: &Path, record: &ChainedRecord) -> Result<PathBuf, StoreError> {
    let ts: jiff::Timestamp = record.recorded_at.parse().map_err(|e| {
        StoreError::InvalidRecord(format!(
            "record {}: recorded_at {:?} is not an RFC 3339 timestamp ({e})",
            record.id(),
            record.recorded_at
        ))
    })?;
    let date = ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let path = dir.join(format!("decisions-{}.jsonl", date.strftime("%Y-%m-%d")));
    let mut line = mirror_line(record)?;
    line.push(b'\n');

    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    // create_new tells us whether this call created the file, in which case the directory entry
    // must be fsynced too for the line to survive a crash.
    let (mut file, created) = match OpenOptions::new().append(true).create_new(true).open(&path) {
        Ok(f) => (f, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            (OpenOptions::new().append(true).open(&path).map_err(io_err(&path))?, false)
        }
        Err(e) => return Err(StoreError::Io { path, source: e }),
    };
    // One write of the whole line: with O_APPEND, concurrent writers' lines do not interleave.
    file.write_all(&line).map_err(io_err(&path))?;
    file.sync_data().map_err(io_err(&path))?;
    if created {
        sync_dir(dir)?;
    }
    Ok(path)
}

/// The line's bytes (without the newline).
fn mirror_line(record: &ChainedRecord) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    let mut map = ser
        .serialize_map(None)
        .map_err(|e| StoreError::InvalidRecord(format!("record {}: cannot write mirror line: {e}", record.id())))?;
    let fail = |e: serde_json::Error| {
        StoreError::InvalidRecord(format!("record {}: cannot write mirror line: {e}", record.id()))
    };
    map.serialize_entry("timestamp", &record.recorded_at).map_err(fail)?;
    match &record.body {
        serde_json::Value::Object(fields) => {
            for (k, v) in fields.iter().filter(|(k, _)| !RESERVED.contains(&k.as_str())) {
                map.serialize_entry(k, v).map_err(fail)?;
            }
        }
        other => map.serialize_entry("body", other).map_err(fail)?,
    }
    map.serialize_entry("audit_seq", &record.seq).map_err(fail)?;
    map.serialize_entry("audit_hash", &record.hash).map_err(fail)?;
    map.end().map_err(fail)?;
    Ok(out)
}

/// Python `json.dumps` defaults: `", "` and `": "` separators, and `ensure_ascii` (everything
/// outside printable ASCII as `\uXXXX`, astral characters as surrogate pairs).
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        // Fragments never contain characters serde_json escapes itself (quotes, backslash,
        // control characters), so only DEL and non-ASCII are left to escape here.
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{u:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Fsyncs a directory so entries created in it (a new database or mirror file) survive a crash.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })
}

/// Directories cannot be opened (and need no fsync) on other platforms.
#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(body: serde_json::Value) -> ChainedRecord {
        ChainedRecord {
            seq: 3,
            kind: "deploy_decision".into(),
            recorded_at: "2026-11-24T10:00:00Z".into(),
            body,
            prev_hash: "00".into(),
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn line_is_python_shaped() {
        let line = mirror_line(&rec(serde_json::json!({"b": [1, 2], "a": "é😀\u{7f}", "timestamp": "x"}))).unwrap();
        let text = String::from_utf8(line).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"timestamp": "2026-11-24T10:00:00Z", "a": "\u00e9\ud83d\ude00\u007f", "b": [1, 2], "audit_seq": 3, "audit_hash": "{}"}}"#,
                "ab".repeat(32)
            )
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["a"], "é😀\u{7f}");
    }

    #[test]
    fn non_object_body_goes_under_body() {
        let text = String::from_utf8(mirror_line(&rec(serde_json::json!([1, "x"]))).unwrap()).unwrap();
        assert!(text.contains(r#""body": [1, "x"]"#), "{text}");
    }
}
