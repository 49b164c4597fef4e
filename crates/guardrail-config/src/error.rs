//! Errors and findings that name the file, the field path and, when known, the line and column.

use std::fmt;
use std::path::PathBuf;

use guardrail_core::policy::Severity;

/// Something wrong with an input file: which file, which field, where, and why.
///
/// `field` is a dotted path in the file's layout (`policies[2].conditions.burn_rate.value`,
/// `daily_costs[3].cost`, `slos.availability.target`); it is empty when the problem is the
/// file as a whole (unreadable, not UTF-8, a syntax error outside any field). `line` and `col`
/// are 1-based and `None` when unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, as given.
    pub file: PathBuf,
    /// Dotted field path, or empty for the whole file.
    pub field: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub col: Option<usize>,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl ConfigError {
    /// An error about a whole file, without position.
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ConfigError { file: file.into(), field: String::new(), line: None, col: None, message: message.into() }
    }

    /// An error at a field, positioned at `pos` (a `(line, col)` pair; 0 means unknown).
    pub fn at(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        pos: Option<(usize, usize)>,
        message: impl Into<String>,
    ) -> Self {
        let (line, col) = split_pos(pos);
        ConfigError { file: file.into(), field: field.into(), line, col, message: message.into() }
    }

    /// The same problem as a [`Finding`] of the given severity.
    pub fn to_finding(&self, severity: Severity) -> Finding {
        Finding {
            severity,
            file: self.file.clone(),
            field: self.field.clone(),
            line: self.line,
            col: self.col,
            message: self.message.clone(),
        }
    }
}

pub(crate) fn split_pos(pos: Option<(usize, usize)>) -> (Option<usize>, Option<usize>) {
    match pos {
        Some((line, col)) if line > 0 => (Some(line), if col > 0 { Some(col) } else { None }),
        _ => (None, None),
    }
}

fn write_location(
    f: &mut fmt::Formatter<'_>,
    file: &std::path::Path,
    line: Option<usize>,
    col: Option<usize>,
) -> fmt::Result {
    write!(f, "{}", file.display())?;
    if let Some(line) = line {
        write!(f, ":{line}")?;
        if let Some(col) = col {
            write!(f, ":{col}")?;
        }
    }
    Ok(())
}

impl fmt::Display for ConfigError {
    /// `FILE:LINE:COL: FIELD: MESSAGE`, leaving out what is unknown or empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_location(f, &self.file, self.line, self.col)?;
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One lint finding about a policy file (or a warning about any input file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error (the gate must not decide with this file) or warning.
    pub severity: Severity,
    /// The file, as given.
    pub file: PathBuf,
    /// Dotted field path, or empty for the whole file.
    pub field: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub col: Option<usize>,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl Finding {
    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The finding as a [`ConfigError`] (dropping the severity).
    pub fn to_error(&self) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            field: self.field.clone(),
            line: self.line,
            col: self.col,
            message: self.message.clone(),
        }
    }
}

impl fmt::Display for Finding {
    /// `FILE:LINE:COL: error|warning: FIELD: MESSAGE`, leaving out what is unknown or empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_location(f, &self.file, self.line, self.col)?;
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {sev}")?;
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// True when any finding is an error: the caller must refuse to decide.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(Finding::is_error)
}
