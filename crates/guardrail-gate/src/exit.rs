//! Process exit codes. Only a real decision exits 0–2.

/// ALLOW, WARN (without `--fail-on-warn`), or a report/command that succeeded.
pub const OK: i32 = 0;
/// DELAY, or WARN with `--fail-on-warn`; for `audit verify`/`replay`: chain broken / decision differs.
pub const DELAY: i32 = 1;
/// BLOCK.
pub const BLOCK: i32 = 2;
/// Could not decide: unreadable, invalid, impossible or stale input, a config error, no rule
/// matched without a default, or the audit record could not be written.
pub const CANNOT_DECIDE: i32 = 3;
/// Command-line usage error (clap's own default would be 2, which means BLOCK here).
pub const USAGE: i32 = 64;

/// Why a command did not decide, as `guardrail gate --format json` prints it on stdout (so a
/// pipeline that parses stdout sees the reason, not an empty document), with the exit code.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ErrorOutput {
    /// The first problem (the one a pipeline shows).
    pub error: ErrorDetail,
    /// Every problem found, the first included.
    pub errors: Vec<ErrorDetail>,
    /// [`CANNOT_DECIDE`] or [`USAGE`].
    pub exit_code: i32,
    /// The `deploy_error` audit record that holds the failure, when one was written.
    pub audit_record: Option<String>,
}

/// The class of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A flag or environment variable with a bad value, or a bad command line (exit 64;
    /// nothing recorded).
    Usage,
    /// An input that is missing, unreadable, invalid, impossible or stale, or a policy set that
    /// cannot decide (exit 3).
    CannotDecide,
    /// A decision was made but could not be recorded, so it is withheld (exit 3).
    NotRecorded,
}

/// One problem: the message as printed on stderr, and the file, position and field (or flag
/// / variable) it names, when it names them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErrorDetail {
    /// The class of failure.
    pub kind: ErrorKind,
    /// The full message (`config/policies.yaml:11:9: error: policies[0]…: unknown operator …`).
    pub message: String,
    /// The input file (or `prometheus:URL` source) the message names.
    pub file: Option<String>,
    /// 1-based line in `file`.
    pub line: Option<usize>,
    /// 1-based column in `file`.
    pub column: Option<usize>,
    /// The field path in `file`, or for a usage error the flag or environment variable.
    pub field: Option<String>,
}

impl ErrorOutput {
    /// The object for `messages` (in the forms the gate prints: `FILE:LINE:COL: FIELD: reason`,
    /// `FILE: reason`, `--flag: reason`, `VARIABLE: reason`), all of `kind`.
    pub fn new(kind: ErrorKind, messages: &[String], audit_record: Option<String>) -> ErrorOutput {
        let mut errors: Vec<ErrorDetail> = messages.iter().map(|m| ErrorDetail::parse(kind, m)).collect();
        if errors.is_empty() {
            errors.push(ErrorDetail::parse(kind, "could not decide"));
        }
        let exit_code = if kind == ErrorKind::Usage { USAGE } else { CANNOT_DECIDE };
        ErrorOutput { error: errors[0].clone(), errors, exit_code, audit_record }
    }
}

fn is_field_path(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.[]$-/".contains(c))
}

fn is_variable(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

impl ErrorDetail {
    /// Reads the file, position and field out of a message (the messages are built from typed
    /// errors in one format; anything that does not fit it keeps only the message).
    pub fn parse(kind: ErrorKind, message: &str) -> ErrorDetail {
        let mut d =
            ErrorDetail { kind, message: message.to_string(), file: None, line: None, column: None, field: None };
        let Some((head, rest)) = message.split_once(": ") else { return d };
        if let Some(var) = head.strip_prefix("environment variable ").filter(|v| is_variable(v)) {
            d.field = Some(var.to_string());
            return d;
        }
        if head.starts_with("--") || is_variable(head) {
            d.field = Some(head.to_string());
            return d;
        }
        if head.contains(char::is_whitespace) {
            return d;
        }
        // FILE:LINE:COL — only a pair of numbers is a position (a URL's port is not).
        let mut file = head;
        let mut parts = head.rsplitn(3, ':');
        if let (Some(col), Some(line), Some(f)) = (parts.next(), parts.next(), parts.next())
            && let (Ok(line), Ok(col)) = (line.parse::<usize>(), col.parse::<usize>())
        {
            d.line = Some(line);
            d.column = Some(col);
            file = f;
        }
        if !(file.contains('/') || file.contains('.')) {
            return d;
        }
        d.file = Some(file.to_string());
        let rest = rest.strip_prefix("error: ").or_else(|| rest.strip_prefix("warning: ")).unwrap_or(rest);
        if let Some((field, _)) = rest.split_once(": ")
            && is_field_path(field)
        {
            d.field = Some(field.to_string());
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(m: &str) -> (Option<String>, Option<usize>, Option<usize>, Option<String>) {
        let d = ErrorDetail::parse(ErrorKind::CannotDecide, m);
        assert_eq!(d.message, m);
        (d.file, d.line, d.column, d.field)
    }

    #[test]
    fn messages_give_their_file_position_and_field() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            parse("config/policies.yaml:11:9: error: policies[0].conditions.x.operator: unknown operator \"less\""),
            (s("config/policies.yaml"), Some(11), Some(9), s("policies[0].conditions.x.operator"))
        );
        assert_eq!(
            parse("./data/metrics.json:4:3: collected_at: collected_at 2026-02-20 is 2d old"),
            (s("./data/metrics.json"), Some(4), Some(3), s("collected_at"))
        );
        assert_eq!(parse("/nonexist: file not found"), (s("/nonexist"), None, None, None));
        assert_eq!(
            parse("prometheus:http://127.0.0.1:9090: no data"),
            (s("prometheus:http://127.0.0.1:9090"), None, None, None),
            "a port is not a position"
        );
        assert_eq!(parse("--cost-warn-pct: expected a number, got \"abc\""), (None, None, None, s("--cost-warn-pct")));
        assert_eq!(parse("environment variable COST_WARN_PCT: expected"), (None, None, None, s("COST_WARN_PCT")));
        assert_eq!(parse("GUARDRAIL_PROMETHEUS_CA: not PEM"), (None, None, None, s("GUARDRAIL_PROMETHEUS_CA")));
        assert_eq!(parse("decision DELAY (P005) was NOT recorded: disk full"), (None, None, None, None));
        assert_eq!(parse("no colon at all"), (None, None, None, None));
    }

    #[test]
    fn the_object_has_the_first_error_every_error_and_the_exit_code() {
        let o = ErrorOutput::new(ErrorKind::Usage, &["--now: bad".into(), "--max-age: bad".into()], None);
        assert_eq!((o.exit_code, o.errors.len(), o.error.field.as_deref()), (USAGE, 2, Some("--now")));
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["error"]["kind"], "usage");
        assert_eq!(v["exit_code"], 64);
        let o = ErrorOutput::new(ErrorKind::CannotDecide, &[], Some("3-abc".into()));
        assert_eq!((o.exit_code, o.error.message.as_str()), (CANNOT_DECIDE, "could not decide"));
    }
}
