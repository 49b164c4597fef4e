//! Reading an input file: size limit, UTF-8, not empty, and a content hash for the audit log.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::ConfigError;

/// Largest input accepted, in bytes (16 MiB). Real inputs are a few kilobytes; anything
/// bigger is a mistake (a log, a dump) and is refused before parsing.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// One input file, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The path as given.
    pub path: PathBuf,
    /// The content, exactly as read (UTF-8).
    pub text: String,
    /// Lower-case hex sha256 of the bytes read (the same bytes as `text`).
    pub sha256: String,
}

impl Source {
    /// A source from text already in memory (tests, replay). The hash is computed here.
    pub fn from_text(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        let text = text.into();
        let sha256 = sha256_hex(text.as_bytes());
        Source { path: path.into(), text, sha256 }
    }
}

/// Lower-case hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads a file for parsing. Refuses, with an error naming the file: a missing or unreadable
/// file, a directory, a file over [`MAX_BYTES`], content that is not UTF-8 (with the line and
/// column of the first bad byte), and an empty or whitespace-only file.
pub fn read_source(path: &Path) -> Result<Source, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| ConfigError::file(path, io_reason(&e)))?;
    if meta.is_dir() {
        return Err(ConfigError::file(path, "is a directory, not a file"));
    }
    if meta.len() > MAX_BYTES {
        return Err(too_big(path, meta.len()));
    }
    let file = std::fs::File::open(path).map_err(|e| ConfigError::file(path, io_reason(&e)))?;
    // Read at most one byte past the limit: special files report a length of 0.
    // Sized from the metadata: growing a megabytes-long buffer by doubling copies it again and
    // again (a 10,000-rule policy file is 3.6 MB).
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(|e| ConfigError::file(path, io_reason(&e)))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_big(path, bytes.len() as u64));
    }
    let sha256 = sha256_hex(&bytes);
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let prefix = &e.as_bytes()[..valid];
            let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = prefix.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let col = String::from_utf8_lossy(&prefix[line_start..]).chars().count() + 1;
            return Err(ConfigError {
                file: path.to_path_buf(),
                field: String::new(),
                line: Some(line),
                col: Some(col),
                message: format!("is not valid UTF-8 (bad byte at offset {valid}); save the file as UTF-8"),
            });
        }
    };
    if text.trim_start_matches('\u{feff}').trim().is_empty() {
        return Err(ConfigError::file(path, "is empty"));
    }
    Ok(Source { path: path.to_path_buf(), text, sha256 })
}

fn too_big(path: &Path, len: u64) -> ConfigError {
    ConfigError::file(path, format!("is too large ({len} bytes; the limit is {MAX_BYTES} bytes, 16 MiB)"))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_string(),
        std::io::ErrorKind::PermissionDenied => "cannot be read: permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory, not a file".to_string(),
        _ => format!("cannot be read: {e}"),
    }
}
