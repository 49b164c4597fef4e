//! Process exit codes. Only a real decision exits 0–2.
//!
//! [`Exit`] is the one table of every code the `guardrail` binary exits with (the deploy gate's,
//! the remediation commands' and `audit verify`/`replay`'s); every command function returns
//! one and `main` converts it once. The numbers are an interface: pipelines branch on them, and
//! the README's tables list them (a test checks both agree).

/// Every exit code of `guardrail`, with what it means. The discriminant is the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Exit {
    /// ALLOW, WARN (without `--fail-on-warn`), or a report/command that succeeded; for the
    /// remediation commands: executed (or dry-run recorded), approved and executed.
    Ok = 0,
    /// DELAY, or WARN with `--fail-on-warn`; for `audit verify`/`replay`: chain broken /
    /// decision differs.
    Delay = 1,
    /// BLOCK.
    Block = 2,
    /// Could not decide: unreadable, invalid, impossible or stale input, a config error, no rule
    /// matched without a default, or the audit record could not be written.
    CannotDecide = 3,
    /// Blocked: the remediation action waits in the approval queue.
    AwaitingApproval = 10,
    /// An approval (or review, or claim release) was refused and recorded; nothing ran.
    Refused = 11,
    /// The authorised action was executed and failed, or the executor could not run it.
    ExecutionFailed = 12,
    /// `approve` (and `kb review`): the record IS in the audit chain, but its JSONL mirror copy
    /// failed; after a grant nothing further ran.
    MirrorFailed = 13,
    /// Who acts could not be established (unknown token, `--as` naming someone else, no passwd
    /// entry); nothing recorded.
    Unauthenticated = 14,
    /// The token's role does not permit the command; nothing recorded.
    Forbidden = 15,
    /// Command-line usage error (clap's own default would be 2, which means BLOCK here).
    Usage = 64,
}

impl Exit {
    /// Every exit code, in ascending order.
    pub const ALL: [Exit; 11] = [
        Exit::Ok,
        Exit::Delay,
        Exit::Block,
        Exit::CannotDecide,
        Exit::AwaitingApproval,
        Exit::Refused,
        Exit::ExecutionFailed,
        Exit::MirrorFailed,
        Exit::Unauthenticated,
        Exit::Forbidden,
        Exit::Usage,
    ];

    /// The process exit code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The exit code of a decision: ALLOW 0, WARN 0 (1 with `fail_on_warn`), DELAY 1, BLOCK 2.
    /// "Could not decide" is [`Exit::CannotDecide`] and is not an action.
    pub const fn for_decision(action: guardrail_core::policy::Action, fail_on_warn: bool) -> Exit {
        use guardrail_core::policy::Action;
        match action {
            Action::Allow => Exit::Ok,
            Action::Warn if fail_on_warn => Exit::Delay,
            Action::Warn => Exit::Ok,
            Action::Delay => Exit::Delay,
            Action::Block => Exit::Block,
        }
    }

    /// The variant for a process exit status (as `std::process::ExitStatus::code` gives it), if
    /// it is one of Guardrail's.
    pub fn from_code(code: i32) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| i32::from(e.code()) == code)
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(e.code())
    }
}

/// The code, as messages print it (`(exit 3)`).
impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// The code, as JSON outputs and records carry it (`"exit_code": 3`).
impl serde::Serialize for Exit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.code())
    }
}

/// The code as an integer, one of [`Exit::ALL`] (what [`Serialize`](serde::Serialize) writes).
impl schemars::JsonSchema for Exit {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ExitCode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        schemars::json_schema!({
            "type": "integer",
            "enum": codes,
            "description": "The process exit code: 0 ALLOW/WARN, 1 DELAY (or WARN with --fail-on-warn), 2 BLOCK, 3 could not decide, 64 usage; 10-15 the remediation commands'.",
        })
    }
}

/// Why a command did not decide, as `guardrail gate --format json` prints it on stdout (so a
/// pipeline that parses stdout sees the reason, not an empty document), with the exit code.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorOutput {
    /// The first problem (the one a pipeline shows).
    pub error: ErrorDetail,
    /// Every problem found, the first included.
    pub errors: Vec<ErrorDetail>,
    /// [`Exit::CannotDecide`] or [`Exit::Usage`].
    pub exit_code: Exit,
    /// The `deploy_error` audit record that holds the failure, when one was written.
    pub audit_record: Option<String>,
}

/// The class of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
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
    /// The object for problems already typed (see [`ErrorDetail::config`], [`ErrorDetail::setting`],
    /// [`ErrorDetail::input`]): the exit code is [`Exit::Usage`] when every problem is a usage
    /// error, else [`Exit::CannotDecide`].
    pub fn of(errors: Vec<ErrorDetail>, audit_record: Option<String>) -> ErrorOutput {
        let mut errors = errors;
        if errors.is_empty() {
            errors.push(ErrorDetail::text(ErrorKind::CannotDecide, "could not decide"));
        }
        let usage = errors.iter().all(|e| e.kind == ErrorKind::Usage);
        let exit_code = if usage { Exit::Usage } else { Exit::CannotDecide };
        ErrorOutput { error: errors[0].clone(), errors, exit_code, audit_record }
    }
}

impl ErrorDetail {
    /// An input file's problem: its file, position and field, from the error's own fields.
    pub fn config(kind: ErrorKind, e: &guardrail_config::ConfigError) -> ErrorDetail {
        ErrorDetail {
            kind,
            message: e.to_string(),
            file: Some(e.file.display().to_string()),
            line: e.line,
            column: e.line.and(e.col),
            field: (!e.field.is_empty()).then(|| e.field.clone()),
        }
    }

    /// A flag's or variable's bad value (a usage error; the `--prometheus-ca` file: could not
    /// decide), naming the flag or variable as the field.
    pub fn setting(e: &crate::inputs::SettingError) -> ErrorDetail {
        let kind = if e.is_usage() { ErrorKind::Usage } else { ErrorKind::CannotDecide };
        ErrorDetail {
            kind,
            message: e.to_string(),
            file: None,
            line: None,
            column: None,
            field: Some(e.origin.name().to_string()),
        }
    }

    /// A problem known by its message alone (a refused command line, a withheld decision, a
    /// failed append): no file, position or field.
    pub fn text(kind: ErrorKind, message: impl Into<String>) -> ErrorDetail {
        ErrorDetail { kind, message: message.into(), file: None, line: None, column: None, field: None }
    }

    /// A could-not-decide with nothing but its message.
    fn message(e: &dyn std::fmt::Display) -> ErrorDetail {
        ErrorDetail::text(ErrorKind::CannotDecide, e.to_string())
    }

    /// A policy lint finding: its file, position and field.
    pub fn finding(kind: ErrorKind, f: &guardrail_config::Finding) -> ErrorDetail {
        ErrorDetail {
            kind,
            message: f.to_string(),
            file: Some(f.file.display().to_string()),
            line: f.line,
            column: f.line.and(f.col),
            field: (!f.field.is_empty()).then(|| f.field.clone()),
        }
    }

    /// Why evaluated inputs cannot decide ([`crate::gate::Problem`]): the input file each
    /// problem is about, and its position and field when it has them.
    pub fn problem(p: &crate::gate::Problem) -> ErrorDetail {
        use crate::gate::Problem;
        let in_file = |file: &std::path::Path, field: Option<&str>| ErrorDetail {
            file: Some(file.display().to_string()),
            field: field.map(str::to_string),
            ..ErrorDetail::message(p)
        };
        match p {
            Problem::Input(c) => ErrorDetail::config(ErrorKind::CannotDecide, c),
            Problem::Policy(f) => ErrorDetail::finding(ErrorKind::CannotDecide, f),
            Problem::NotASnapshot { metrics, .. } => in_file(metrics, None),
            Problem::ServiceMismatch { cost, .. } => in_file(cost, Some("service")),
            Problem::Undecidable { policies, .. } => in_file(policies, None),
            Problem::CostThresholds { .. } => ErrorDetail::message(p),
        }
    }

    /// An input that could not be read: one detail per problem it holds.
    pub fn input(e: &crate::inputs::InputError) -> Vec<ErrorDetail> {
        use crate::inputs::InputError;
        match e {
            InputError::File(c) => vec![ErrorDetail::config(ErrorKind::CannotDecide, c)],
            InputError::LiveSource(cs) => cs.iter().map(|c| ErrorDetail::config(ErrorKind::CannotDecide, c)).collect(),
            InputError::Setting(s) => {
                vec![ErrorDetail { kind: ErrorKind::CannotDecide, ..ErrorDetail::setting(s) }]
            }
            // About the SLO file as a whole (its live source), or about no file.
            InputError::UrlWithoutQueries { slos }
            | InputError::NoPrometheusUrl { slos }
            | InputError::Prometheus { slos, .. } => {
                vec![ErrorDetail { file: Some(slos.display().to_string()), ..ErrorDetail::message(e) }]
            }
            InputError::PrometheusUrl(_) => vec![ErrorDetail::message(e)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_give_their_details_without_parsing() {
        let c = guardrail_config::ConfigError::at("config/slos.yaml", "slos.availability", Some((3, 5)), "bad");
        let d = ErrorDetail::config(ErrorKind::CannotDecide, &c);
        assert_eq!(
            (d.file.as_deref(), d.line, d.column, d.field.as_deref(), d.message.as_str()),
            (
                Some("config/slos.yaml"),
                Some(3),
                Some(5),
                Some("slos.availability"),
                "config/slos.yaml:3:5: slos.availability: bad"
            )
        );
        let args = crate::inputs::InputArgs {
            cost_warn_pct: Some("40".into()),
            cost_block_pct: Some("30".into()),
            ..Default::default()
        };
        let usage = crate::inputs::usage_problems(&args, &|_| None);
        let d = ErrorDetail::setting(&usage[0]);
        // The parser left the field of this message null: its head is not a flag.
        assert_eq!((d.kind, d.field.as_deref(), d.file.as_deref()), (ErrorKind::Usage, Some("--cost-warn-pct"), None));
        let out = ErrorOutput::of(vec![d], None);
        assert_eq!(out.exit_code, Exit::Usage);
        let e = crate::inputs::InputError::UrlWithoutQueries { slos: "config/slos.yaml".into() };
        let ds = ErrorDetail::input(&e);
        assert_eq!(
            (ds.len(), ds[0].file.as_deref(), ds[0].kind),
            (1, Some("config/slos.yaml"), ErrorKind::CannotDecide)
        );
        let two = crate::inputs::InputError::LiveSource(vec![c.clone(), c]);
        assert_eq!(ErrorDetail::input(&two).len(), 2);
        assert_eq!(ErrorOutput::of(ErrorDetail::input(&two), None).exit_code, Exit::CannotDecide);
    }

    /// The codes in the README's exit-code tables (`| code | meaning |`), cell `0 / 1` included.
    fn readme_exit_codes() -> std::collections::BTreeSet<i32> {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));
        let mut codes = std::collections::BTreeSet::new();
        let mut in_table = false;
        for line in readme.lines() {
            let line = line.trim();
            if !line.starts_with('|') {
                in_table = false;
                continue;
            }
            let first = line.trim_start_matches('|').split('|').next().unwrap_or("").trim();
            if first == "code" {
                in_table = true;
                continue;
            }
            if in_table && !first.starts_with('-') {
                for n in first.split('/') {
                    codes.insert(n.trim().parse::<i32>().unwrap_or_else(|_| panic!("README row {line:?}: not a code")));
                }
            }
        }
        codes
    }

    #[test]
    fn the_readme_lists_exactly_the_exit_codes_of_the_enum() {
        let documented = readme_exit_codes();
        let ours: std::collections::BTreeSet<i32> = Exit::ALL.iter().map(|e| i32::from(e.code())).collect();
        assert_eq!(documented, ours, "README exit-code tables vs Exit");
    }

    #[test]
    fn exit_codes_keep_their_numbers() {
        // Pipelines branch on these numbers: they never change.
        let numbers: Vec<(Exit, u8)> = Exit::ALL.iter().map(|e| (*e, e.code())).collect();
        assert_eq!(
            numbers,
            [
                (Exit::Ok, 0),
                (Exit::Delay, 1),
                (Exit::Block, 2),
                (Exit::CannotDecide, 3),
                (Exit::AwaitingApproval, 10),
                (Exit::Refused, 11),
                (Exit::ExecutionFailed, 12),
                (Exit::MirrorFailed, 13),
                (Exit::Unauthenticated, 14),
                (Exit::Forbidden, 15),
                (Exit::Usage, 64),
            ]
        );
        assert_eq!(
            (Exit::CannotDecide.to_string(), serde_json::json!(Exit::Usage)),
            ("3".to_string(), serde_json::json!(64))
        );
        assert!(Exit::ALL.windows(2).all(|w| w[0] < w[1]), "ALL is ascending and complete");
        assert_eq!(Exit::from_code(13), Some(Exit::MirrorFailed));
        assert_eq!(Exit::from_code(4), None);
        assert_eq!(std::process::ExitCode::from(Exit::Usage), std::process::ExitCode::from(64));
    }

    #[test]
    fn a_decision_has_one_exit_code() {
        use guardrail_core::policy::Action;
        let codes: Vec<(Exit, Exit)> = [Action::Allow, Action::Warn, Action::Delay, Action::Block]
            .into_iter()
            .map(|a| (Exit::for_decision(a, false), Exit::for_decision(a, true)))
            .collect();
        assert_eq!(
            codes,
            [(Exit::Ok, Exit::Ok), (Exit::Ok, Exit::Delay), (Exit::Delay, Exit::Delay), (Exit::Block, Exit::Block)]
        );
    }

    fn fields(d: &ErrorDetail) -> (Option<&str>, Option<usize>, Option<usize>, Option<&str>) {
        (d.file.as_deref(), d.line, d.column, d.field.as_deref())
    }

    /// The details the message parser used to read out of these messages, now taken from the
    /// typed problems: the same file, position and field.
    #[test]
    fn typed_problems_give_their_file_position_and_field() {
        use crate::gate::Problem;
        use guardrail_config::{ConfigError, Finding};
        use guardrail_core::policy::Severity;
        let lint = Finding {
            severity: Severity::Error,
            file: "config/policies.yaml".into(),
            field: "policies[0].conditions.x.operator".into(),
            line: Some(11),
            col: Some(9),
            message: "unknown operator \"less\"".into(),
        };
        let d = ErrorDetail::problem(&Problem::Policy(lint));
        assert_eq!(
            d.message,
            "config/policies.yaml:11:9: error: policies[0].conditions.x.operator: unknown operator \"less\""
        );
        assert_eq!(
            fields(&d),
            (Some("config/policies.yaml"), Some(11), Some(9), Some("policies[0].conditions.x.operator"))
        );
        let stale =
            ConfigError::at("./data/metrics.json", "collected_at", Some((4, 3)), "collected_at 2026-02-20 is 2d old");
        let d = ErrorDetail::problem(&Problem::Input(stale));
        assert_eq!(fields(&d), (Some("./data/metrics.json"), Some(4), Some(3), Some("collected_at")));
        let missing = ConfigError::file("/nonexist", "file not found");
        let d = ErrorDetail::problem(&Problem::Input(missing));
        assert_eq!(
            (fields(&d), d.message.as_str()),
            ((Some("/nonexist"), None, None, None), "/nonexist: file not found")
        );
        let mismatch = Problem::ServiceMismatch {
            cost: "data/cost.json".into(),
            cost_tag: None,
            cost_service: "a".into(),
            metrics: "data/metrics.json".into(),
            slo_service: "b".into(),
        };
        let d = ErrorDetail::problem(&mismatch);
        assert!(d.message.starts_with("data/cost.json: service: "), "{}", d.message);
        assert_eq!(fields(&d), (Some("data/cost.json"), None, None, Some("service")));
        let d = ErrorDetail::problem(&Problem::CostThresholds { reason: "warn above block".into() });
        assert_eq!((fields(&d), d.kind), ((None, None, None, None), ErrorKind::CannotDecide));
        // A message known only as text keeps only the message, whatever it looks like.
        let d = ErrorDetail::text(ErrorKind::NotRecorded, "x.yaml:1:2: f: decision DELAY (P005) was NOT recorded");
        assert_eq!(fields(&d), (None, None, None, None));
    }

    /// The gate's problems as a could-not-decide object: every detail `cannot_decide` (a bad
    /// setting included: the run was undecided and recorded, exit 3), a live source's problems
    /// one detail each while its record keeps the one multi-line message.
    #[test]
    fn undecided_problems_are_cannot_decide_one_detail_per_problem() {
        use crate::decide::GateProblem;
        use guardrail_config::ConfigError;
        let args = crate::inputs::InputArgs { now: Some("yesterday-ish".into()), ..Default::default() };
        let setting = crate::inputs::usage_problems(&args, &|_| None).remove(0);
        let d = GateProblem::Setting(setting).details();
        assert_eq!(
            (d.len(), d[0].kind, d[0].field.as_deref(), d[0].file.as_deref()),
            (1, ErrorKind::CannotDecide, Some("--now"), None)
        );
        let a = ConfigError::at("config/slos.yaml", "prometheus.url", Some((2, 8)), "not a URL");
        let b = ConfigError::at("config/slos.yaml", "prometheus.queries", Some((3, 3)), "missing");
        let live = GateProblem::Input(crate::inputs::InputError::LiveSource(vec![a, b]));
        assert_eq!(live.to_string().lines().count(), 2, "recorded as one message, as before");
        let d = live.details();
        assert_eq!(
            d.iter().map(|d| (d.line, d.field.as_deref())).collect::<Vec<_>>(),
            [(Some(2), Some("prometheus.url")), (Some(3), Some("prometheus.queries"))]
        );
        let out = ErrorOutput::of(d, Some("3-abc".into()));
        assert_eq!((out.exit_code, out.errors.len(), &out.error), (Exit::CannotDecide, 2, &out.errors[0]));
    }

    #[test]
    fn the_object_has_the_first_error_every_error_and_the_exit_code() {
        let usage =
            |m: &str| ErrorDetail { field: Some(m.into()), ..ErrorDetail::text(ErrorKind::Usage, format!("{m}: bad")) };
        let o = ErrorOutput::of(vec![usage("--now"), usage("--max-age")], None);
        assert_eq!((o.exit_code, o.errors.len(), o.error.field.as_deref()), (Exit::Usage, 2, Some("--now")));
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["error"]["kind"], "usage");
        assert_eq!(v["exit_code"], 64);
        let o = ErrorOutput::of(Vec::new(), Some("3-abc".into()));
        assert_eq!((o.exit_code, o.error.message.as_str()), (Exit::CannotDecide, "could not decide"));
    }
}
