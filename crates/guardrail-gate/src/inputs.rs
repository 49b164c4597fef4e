//! Where the gate's inputs come from (flags, then the seed tool's environment variables, then
//! the seed layout under `--root`), and reading them once into memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use guardrail_config::Source;
use guardrail_core::cost::CostThresholds;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// The four input files a deploy decision is made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputPaths {
    /// `config/policies.yaml` (`--policies`, `POLICIES_PATH`).
    pub policies: PathBuf,
    /// `config/slos.yaml` (`--slos`, `SLO_CONFIG`).
    pub slos: PathBuf,
    /// `data/metrics.json` (`--metrics`, `SLO_METRICS`).
    pub metrics: PathBuf,
    /// `data/cost.json` (`--cost`, `COST_DATA`).
    pub cost: PathBuf,
    /// Prometheus URL override (`--prometheus`, `GUARDRAIL_PROMETHEUS_URL`) for an SLO file
    /// with a `prometheus:` block.
    pub prometheus_url: Option<String>,
    /// Per-request Prometheus timeout, ms (`--prometheus-timeout-ms`,
    /// `GUARDRAIL_PROMETHEUS_TIMEOUT_MS`; [`prometheus_timeout_ms`]): wins over the
    /// `prometheus:` block's and a Sloth/OpenSLO spec's `timeout_ms`. `Err` for an invalid
    /// value: reading the live metrics then fails (exit 3) rather than falling back to the
    /// file's timeout.
    #[serde(skip)]
    pub prometheus_timeout_ms: Result<Option<u64>, SettingError>,
    /// PEM file of CA certificates to trust for an `https://` Prometheus (`--prometheus-ca`,
    /// `GUARDRAIL_PROMETHEUS_CA`; [`prometheus_ca`]): wins over the `prometheus:` block's and a
    /// Sloth/OpenSLO spec's `ca_file`. `Err` for a file that is missing or not PEM: reading
    /// the live metrics then fails (exit 3) rather than falling back to the file's.
    #[serde(skip)]
    pub prometheus_ca: Result<Option<PathBuf>, SettingError>,
    /// Evaluation time for the Prometheus queries (`--now`); the clock when absent.
    pub at: Option<Timestamp>,
    /// The selected service (`--service`, `GUARDRAIL_SERVICE`): picks the SLO of a Sloth or
    /// OpenSLO file (cost rows are picked by `--cost-tag` / `--cost-service`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The selected SLO of that service, when it has several (`--slo-name`,
    /// `GUARDRAIL_SLO_NAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_name: Option<String>,
}

/// Input options as given on the command line (all optional).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InputArgs {
    /// Directory holding the seed layout (config/, data/). Default: the current directory.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Policy file [env: POLICIES_PATH] [default: ROOT/config/policies.yaml]
    #[arg(long, value_name = "FILE")]
    pub policies: Option<PathBuf>,
    /// SLO spec: slos.yaml, or a Sloth prometheus/v1 or OpenSLO v1 file (detected by content;
    /// decided from Prometheus, one SLO picked with --service / --slo-name) [env: SLO_CONFIG]
    /// [default: ROOT/config/slos.yaml]
    #[arg(long, value_name = "FILE")]
    pub slos: Option<PathBuf>,
    /// Metrics snapshot [env: SLO_METRICS] [default: ROOT/data/metrics.json]
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Daily cost series [env: COST_DATA] [default: ROOT/data/cost.json]
    #[arg(long, value_name = "FILE")]
    pub cost: Option<PathBuf>,
    /// Week-over-week % at which spend is "rising" and a spike [env: COST_WARN_PCT] [default: 20]
    #[arg(long, value_name = "PCT")]
    pub cost_warn_pct: Option<String>,
    /// Week-over-week % at which spend is "spiking" [env: COST_BLOCK_PCT] [default: 30]
    #[arg(long, value_name = "PCT")]
    pub cost_block_pct: Option<String>,
    /// Refuse metrics or cost data whose collected_at is older than this (90s, 15m, 24h, 7d)
    /// [env: GUARDRAIL_MAX_AGE] [default: no limit]
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Evaluate as of this RFC 3339 time instead of the clock (for what-if runs and tests)
    #[arg(long, value_name = "TIMESTAMP")]
    pub now: Option<String>,
    /// Prometheus base URL for an SLO file with a `prometheus:` block (overrides
    /// prometheus.url) [env: GUARDRAIL_PROMETHEUS_URL]
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// Per-request Prometheus timeout in milliseconds, 1 to 60000, for the `prometheus:` block
    /// and Sloth/OpenSLO specs (overrides their timeout_ms) [env: GUARDRAIL_PROMETHEUS_TIMEOUT_MS]
    /// [default: the file's timeout_ms, else 2000 for the block and 5000 for a spec]
    #[arg(long, value_name = "MS", allow_hyphen_values = true)]
    pub prometheus_timeout_ms: Option<String>,
    /// PEM file of CA certificates to trust for an https:// Prometheus, besides the built-in
    /// roots (overrides the `prometheus:` block's and a Sloth/OpenSLO spec's ca_file)
    /// [env: GUARDRAIL_PROMETHEUS_CA]
    #[arg(long, value_name = "FILE")]
    pub prometheus_ca: Option<PathBuf>,
    /// Service whose SLO to decide on, when the Sloth/OpenSLO file holds several (it does not
    /// select cost rows: see --cost-tag, --cost-service) [env: GUARDRAIL_SERVICE]
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// SLO to decide on, when the Sloth/OpenSLO file has several for the service
    /// [env: GUARDRAIL_SLO_NAME]
    #[arg(long, value_name = "NAME")]
    pub slo_name: Option<String>,
    /// Layout of the cost file: native (cost.json), focus (FOCUS 1.x CSV) or aws-ce (Cost
    /// Explorer GetCostAndUsage JSON) [env: GUARDRAIL_COST_FORMAT] [default: by extension and
    /// content]
    #[arg(long, value_name = "FORMAT")]
    pub cost_format: Option<String>,
    /// Days before the newest one that form the cost anomaly score's baseline
    /// [env: GUARDRAIL_COST_BASELINE_DAYS] [default: 28]
    #[arg(long, value_name = "DAYS")]
    pub cost_baseline_days: Option<String>,
    /// The application's rows of a billing export, by tag: FOCUS Tags, Cost Explorer grouped
    /// by TAG KEY; VALUE must be the metrics' service [env: GUARDRAIL_COST_TAG]
    /// [default: every row of the file]
    #[arg(long, value_name = "KEY=VALUE")]
    pub cost_tag: Option<String>,
    /// Only this provider service's rows of a billing export: FOCUS ServiceName, Cost Explorer
    /// grouped by SERVICE (e.g. "Amazon Elastic Compute Cloud") [env: GUARDRAIL_COST_SERVICE]
    /// [default: every service]
    #[arg(long, value_name = "NAME")]
    pub cost_service: Option<String>,
}

/// Settings that are not files but change the decision; recorded in every audit record.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Settings {
    /// Cost trend thresholds.
    pub cost: CostThresholds,
    /// Maximum age of `collected_at` in seconds, if any.
    #[serde(serialize_with = "ser_opt_duration")]
    #[schemars(with = "Option<i64>")]
    pub max_age: Option<SignedDuration>,
    /// Evaluation time (RFC 3339).
    #[schemars(with = "String")]
    pub now: Timestamp,
    /// The selected service (`--service`, `GUARDRAIL_SERVICE`), for files with several.
    pub service: Option<String>,
    /// The cost file's layout when given (`--cost-format`); detected otherwise.
    #[schemars(with = "Option<CostFormatSchema>")]
    pub cost_format: Option<guardrail_config::CostFormat>,
    /// The SLO selected by name in a Sloth/OpenSLO file (`--slo-name`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_name: Option<String>,
    /// The billing export's rows of the application (`--cost-tag KEY=VALUE`, recorded as
    /// `"KEY=VALUE"`); absent: every row.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub cost_tag: Option<guardrail_config::CostTag>,
    /// The billing export's provider service (`--cost-service`); absent: every service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_service: Option<String>,
}

impl Settings {
    /// The rows of a billing export these settings select.
    pub fn cost_selection(&self) -> guardrail_config::CostSelection {
        guardrail_config::CostSelection {
            tag: self.cost_tag.clone(),
            provider_service: self.cost_service.clone(),
            slo_service: self.service.clone(),
        }
    }
}

/// The schema of [`guardrail_config::CostFormat`] as recorded (`--cost-format`'s names;
/// guardrail-config does not depend on schemars).
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)] // only its schema is used
enum CostFormatSchema {
    Native,
    Focus,
    AwsCe,
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<SignedDuration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_i64(d.as_secs()),
        None => s.serialize_none(),
    }
}

/// Where a setting's value came from: a flag, or (without the flag) its environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, e.g. `--max-age`.
    Flag(&'static str),
    /// An environment variable, e.g. `GUARDRAIL_MAX_AGE`.
    Variable(&'static str),
}

impl Origin {
    /// The flag or variable as the user writes it.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Flag(n) | Origin::Variable(n) => n,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A flag or environment variable whose value cannot be used: which one and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingError {
    /// The flag or environment variable.
    pub origin: Origin,
    /// What is wrong with its value.
    pub problem: SettingProblem,
}

/// `ORIGIN: PROBLEM`; the threshold order names both thresholds instead.
impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.problem {
            SettingProblem::ThresholdOrder { warn, block } => {
                write!(f, "COST_WARN_PCT ({warn}) is above COST_BLOCK_PCT ({block}): {}", self.problem)
            }
            p => write!(f, "{}: {p}", self.origin),
        }
    }
}

impl std::error::Error for SettingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.problem)
    }
}

impl SettingError {
    fn new(origin: Origin, problem: SettingProblem) -> SettingError {
        SettingError { origin, problem }
    }

    /// Whether this is a usage error (a bad value, exit 64) rather than an input that cannot be
    /// used (the `--prometheus-ca` file, exit 3).
    pub fn is_usage(&self) -> bool {
        !matches!(self.problem, SettingProblem::CaFile(_))
    }
}

/// What is wrong with a flag's or variable's value ([`SettingError`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingProblem {
    /// `--cost-warn-pct`, `--cost-block-pct`: not a finite number.
    #[error("expected a finite number of percent, got \"{given}\"")]
    NotAPercent {
        /// The value as given.
        given: String,
    },
    /// The warn threshold above the block threshold (the error names both).
    #[error("the thresholds are in the wrong order")]
    ThresholdOrder {
        /// The warn threshold.
        warn: f64,
        /// The block threshold.
        block: f64,
    },
    /// `--max-age`.
    #[error(transparent)]
    Duration(#[from] guardrail_core::freshness::DurationError),
    /// `--cost-format`.
    #[error(transparent)]
    CostFormat(#[from] guardrail_config::CostFormatError),
    /// `--cost-tag`.
    #[error(transparent)]
    CostTag(#[from] guardrail_config::CostTagError),
    /// `--cost-service` given empty.
    #[error("expected a provider service name, got an empty one")]
    EmptyCostService,
    /// `--cost-baseline-days` outside 3..=366.
    #[error("expected a whole number of days from 3 to 366, got \"{given}\"")]
    BaselineDays {
        /// The value as given.
        given: String,
    },
    /// `--prometheus-timeout-ms` outside 1..=max.
    #[error("expected a whole number of milliseconds from 1 to {max}, got \"{given}\"")]
    TimeoutMs {
        /// The value as given.
        given: String,
        /// The largest timeout accepted.
        max: u64,
    },
    /// `--prometheus`: not an http(s) URL with a host.
    #[error("prometheus URL {url}: {reason}")]
    PrometheusUrl {
        /// The URL.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// `--prometheus-ca`: the file cannot be read or is not PEM certificates (an input
    /// problem, exit 3, not a usage error).
    #[error(transparent)]
    CaFile(#[from] guardrail_config::CaFileError),
    /// `--now`: not an RFC 3339 timestamp.
    #[error("\"{given}\" is not an RFC 3339 timestamp ({reason})")]
    NotATimestamp {
        /// The value as given.
        given: String,
        /// jiff's reason.
        reason: String,
    },
}

/// Reads an environment variable, treating an empty value as unset.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn env_nonempty(env: EnvLookup<'_>, key: &str) -> Option<String> {
    env(key).filter(|v| !v.trim().is_empty())
}

/// The per-request Prometheus timeout given by `--prometheus-timeout-ms` or, without the flag,
/// `GUARDRAIL_PROMETHEUS_TIMEOUT_MS`: `Ok(None)` when neither is set; an error naming the flag
/// or variable for anything but a whole number of milliseconds from 1 to
/// [`guardrail_config::MAX_PROMETHEUS_TIMEOUT_MS`].
pub fn prometheus_timeout_ms(args: &InputArgs, env: EnvLookup<'_>) -> Result<Option<u64>, SettingError> {
    let (origin, text) = match &args.prometheus_timeout_ms {
        Some(t) => (Origin::Flag("--prometheus-timeout-ms"), t.clone()),
        None => match env_nonempty(env, "GUARDRAIL_PROMETHEUS_TIMEOUT_MS") {
            Some(t) => (Origin::Variable("GUARDRAIL_PROMETHEUS_TIMEOUT_MS"), t),
            None => return Ok(None),
        },
    };
    let max = guardrail_config::MAX_PROMETHEUS_TIMEOUT_MS;
    match text.trim().parse::<u64>() {
        Ok(ms) if (1..=max).contains(&ms) => Ok(Some(ms)),
        _ => Err(SettingError::new(origin, SettingProblem::TimeoutMs { given: text, max })),
    }
}

/// The CA file given by `--prometheus-ca` or, without the flag, `GUARDRAIL_PROMETHEUS_CA`:
/// `Ok(None)` when neither is set; an error naming the flag or variable when the file cannot be
/// read or is not PEM with at least one certificate ([`guardrail_config::check_ca_file`]).
pub fn prometheus_ca(args: &InputArgs, env: EnvLookup<'_>) -> Result<Option<PathBuf>, SettingError> {
    let (origin, path) = match &args.prometheus_ca {
        Some(p) => (Origin::Flag("--prometheus-ca"), p.clone()),
        None => match env_nonempty(env, "GUARDRAIL_PROMETHEUS_CA") {
            Some(p) => (Origin::Variable("GUARDRAIL_PROMETHEUS_CA"), PathBuf::from(p.trim())),
            None => return Ok(None),
        },
    };
    guardrail_config::check_ca_file(&path).map(|()| Some(path)).map_err(|e| SettingError::new(origin, e.into()))
}

/// Resolves the four paths: flag, then environment variable, then `ROOT/…`.
pub fn resolve_paths(args: &InputArgs, env: EnvLookup<'_>) -> InputPaths {
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("."));
    let pick = |flag: &Option<PathBuf>, var: &str, default: &str| -> PathBuf {
        flag.clone().or_else(|| env_nonempty(env, var).map(PathBuf::from)).unwrap_or_else(|| root.join(default))
    };
    InputPaths {
        policies: pick(&args.policies, "POLICIES_PATH", "config/policies.yaml"),
        slos: pick(&args.slos, "SLO_CONFIG", "config/slos.yaml"),
        metrics: pick(&args.metrics, "SLO_METRICS", "data/metrics.json"),
        cost: pick(&args.cost, "COST_DATA", "data/cost.json"),
        prometheus_url: args.prometheus.clone().or_else(|| env_nonempty(env, "GUARDRAIL_PROMETHEUS_URL")),
        prometheus_timeout_ms: prometheus_timeout_ms(args, env),
        prometheus_ca: prometheus_ca(args, env),
        at: args.now.as_deref().and_then(|t| t.parse().ok()),
        service: args.service.clone().or_else(|| env_nonempty(env, "GUARDRAIL_SERVICE")).map(|v| v.trim().to_string()),
        slo_name: args
            .slo_name
            .clone()
            .or_else(|| env_nonempty(env, "GUARDRAIL_SLO_NAME"))
            .map(|v| v.trim().to_string()),
    }
}

fn number_setting(
    flag: &Option<String>,
    env: EnvLookup<'_>,
    var: &'static str,
    flag_name: &'static str,
    default: f64,
) -> Result<f64, SettingError> {
    let (text, origin) = match flag {
        Some(t) => (t.clone(), Origin::Flag(flag_name)),
        None => match env_nonempty(env, var) {
            Some(t) => (t, Origin::Variable(var)),
            None => return Ok(default),
        },
    };
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(SettingError::new(origin, SettingProblem::NotAPercent { given: text })),
    }
}

/// The problems with the *values* of flags and their environment variables (a number that is
/// not one, `--now yesterday`, an unknown `--cost-format`, thresholds in the wrong order): usage
/// errors, so a command refuses them with exit 64 before reading an input or recording anything.
/// Every error [`settings`] reports is one of these except a `--prometheus-ca` /
/// `GUARDRAIL_PROMETHEUS_CA` file that cannot be read or is not PEM: that is an input file, and
/// the gate cannot decide (exit 3) as with any other unreadable input.
pub fn usage_problems(args: &InputArgs, env: EnvLookup<'_>) -> Vec<SettingError> {
    match settings(args, env, Timestamp::UNIX_EPOCH) {
        Ok(_) => Vec::new(),
        Err(e) => e.usage,
    }
}

/// What is wrong with the settings, by who has to fix what.
#[derive(Debug, Clone, PartialEq, Default, thiserror::Error)]
#[error("{}", self.all().map(SettingError::to_string).collect::<Vec<_>>().join("; "))]
pub struct SettingsErrors {
    /// Bad flag or variable values ([`usage_problems`]).
    pub usage: Vec<SettingError>,
    /// Files named by a flag that cannot be used (the `--prometheus-ca` file).
    pub input: Vec<SettingError>,
}

impl SettingsErrors {
    /// Every problem, the usage errors first.
    pub fn all(&self) -> impl Iterator<Item = &SettingError> {
        self.usage.iter().chain(&self.input)
    }

    /// The exit code: a usage error when there is one (64), else could not decide (3).
    pub fn exit(&self) -> crate::exit::Exit {
        if self.usage.is_empty() { crate::exit::Exit::CannotDecide } else { crate::exit::Exit::Usage }
    }
}

/// Resolves thresholds, maximum age and evaluation time. `clock` is the wall clock, used only
/// when `--now` is absent. Every problem is reported, not only the first.
pub fn settings(args: &InputArgs, env: EnvLookup<'_>, clock: Timestamp) -> Result<Settings, SettingsErrors> {
    let mut errors = Vec::new();
    let mut input_errors = Vec::new();
    let warn = number_setting(&args.cost_warn_pct, env, "COST_WARN_PCT", "--cost-warn-pct", 20.0)
        .map_err(|e| errors.push(e))
        .ok();
    let block = number_setting(&args.cost_block_pct, env, "COST_BLOCK_PCT", "--cost-block-pct", 30.0)
        .map_err(|e| errors.push(e))
        .ok();
    if let (Some(w), Some(b)) = (warn, block)
        && w > b
    {
        let origin = if args.cost_warn_pct.is_some() {
            Origin::Flag("--cost-warn-pct")
        } else {
            Origin::Variable("COST_WARN_PCT")
        };
        errors.push(SettingError::new(origin, SettingProblem::ThresholdOrder { warn: w, block: b }));
    }
    let max_age = match args
        .max_age
        .clone()
        .map(|v| (Origin::Flag("--max-age"), v))
        .or_else(|| env_nonempty(env, "GUARDRAIL_MAX_AGE").map(|v| (Origin::Variable("GUARDRAIL_MAX_AGE"), v)))
    {
        None => None,
        Some((origin, text)) => match guardrail_core::freshness::parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(SettingError::new(origin, e.into()));
                None
            }
        },
    };
    let pick = |flag: &Option<String>, var: &'static str, name: &'static str| {
        flag.clone()
            .map(|v| (Origin::Flag(name), v))
            .or_else(|| env_nonempty(env, var).map(|v| (Origin::Variable(var), v)))
    };
    let service = pick(&args.service, "GUARDRAIL_SERVICE", "--service").map(|(_, v)| v.trim().to_string());
    let slo_name = pick(&args.slo_name, "GUARDRAIL_SLO_NAME", "--slo-name").map(|(_, v)| v.trim().to_string());
    let cost_format = match pick(&args.cost_format, "GUARDRAIL_COST_FORMAT", "--cost-format") {
        None => None,
        Some((origin, text)) => match text.parse::<guardrail_config::CostFormat>() {
            Ok(f) => Some(f),
            Err(e) => {
                errors.push(SettingError::new(origin, e.into()));
                None
            }
        },
    };
    let cost_tag = match pick(&args.cost_tag, "GUARDRAIL_COST_TAG", "--cost-tag") {
        None => None,
        Some((origin, text)) => match text.parse::<guardrail_config::CostTag>() {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(SettingError::new(origin, e.into()));
                None
            }
        },
    };
    let cost_service = match pick(&args.cost_service, "GUARDRAIL_COST_SERVICE", "--cost-service") {
        None => None,
        Some((_, text)) if !text.trim().is_empty() => Some(text.trim().to_string()),
        Some((origin, _)) => {
            errors.push(SettingError::new(origin, SettingProblem::EmptyCostService));
            None
        }
    };
    let baseline = match pick(&args.cost_baseline_days, "GUARDRAIL_COST_BASELINE_DAYS", "--cost-baseline-days") {
        None => guardrail_core::cost::DEFAULT_BASELINE_DAYS,
        Some((origin, text)) => match text.trim().parse::<u32>() {
            Ok(n) if (3..=366).contains(&n) => n,
            _ => {
                errors.push(SettingError::new(origin, SettingProblem::BaselineDays { given: text }));
                guardrail_core::cost::DEFAULT_BASELINE_DAYS
            }
        },
    };
    if let Err(e) = prometheus_timeout_ms(args, env) {
        errors.push(e);
    }
    if let Some((origin, url)) = pick(&args.prometheus, "GUARDRAIL_PROMETHEUS_URL", "--prometheus")
        && let Err(e) = guardrail_prometheus::check_url(url.trim())
    {
        let problem = match e {
            guardrail_prometheus::FetchError::BadUrl { url, reason } => SettingProblem::PrometheusUrl { url, reason },
            // check_url reports nothing else; keep whatever it says all the same.
            other => SettingProblem::PrometheusUrl { url: url.trim().to_string(), reason: other.to_string() },
        };
        errors.push(SettingError::new(origin, problem));
    }
    if let Err(e) = prometheus_ca(args, env) {
        input_errors.push(e);
    }
    let now = match &args.now {
        None => clock,
        Some(text) => match text.parse::<Timestamp>() {
            Ok(t) => t,
            Err(e) => {
                errors.push(SettingError::new(
                    Origin::Flag("--now"),
                    SettingProblem::NotATimestamp { given: text.clone(), reason: e.to_string() },
                ));
                clock
            }
        },
    };
    if !errors.is_empty() || !input_errors.is_empty() {
        return Err(SettingsErrors { usage: errors, input: input_errors });
    }
    Ok(Settings {
        cost: CostThresholds {
            warn_pct: warn.unwrap_or(20.0),
            block_pct: block.unwrap_or(30.0),
            anomaly_baseline_days: baseline,
            ..CostThresholds::default()
        },
        max_age,
        now,
        service,
        cost_format,
        slo_name,
        cost_tag,
        cost_service,
    })
}

/// The four files, read once.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Policies.
    pub policies: Source,
    /// SLO spec.
    pub slos: Source,
    /// Metrics.
    pub metrics: Source,
    /// Cost.
    pub cost: Source,
}

/// Path and digest of one input, for reports and audit records.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct InputDigest {
    /// Path as given.
    pub path: String,
    /// sha256 of the bytes read, when they could be read.
    pub sha256: Option<String>,
    /// Size in bytes.
    pub bytes: Option<usize>,
}

/// Why an input could not be read (the gate cannot decide: exit 3). Clone (the fetch errors
/// shared): the server's snapshot keeps each read's problem until the files change.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InputError {
    /// A file that cannot be read.
    #[error(transparent)]
    File(#[from] guardrail_config::ConfigError),
    /// The SLO file names a live source that is invalid (every problem, one per line).
    #[error("{}", .0.iter().map(guardrail_config::ConfigError::to_string).collect::<Vec<_>>().join("\n"))]
    LiveSource(Vec<guardrail_config::ConfigError>),
    /// `--prometheus` given for an SLO file that names no Prometheus queries.
    #[error(
        "--prometheus / GUARDRAIL_PROMETHEUS_URL is set but {} has no prometheus: block naming the queries",
        slos.display()
    )]
    UrlWithoutQueries {
        /// The SLO file.
        slos: PathBuf,
    },
    /// A Sloth/OpenSLO file and no Prometheus URL.
    #[error(
        "{}: an SLO spec is read from Prometheus, and no URL is set: give --prometheus URL or \
         GUARDRAIL_PROMETHEUS_URL",
        slos.display()
    )]
    NoPrometheusUrl {
        /// The SLO file.
        slos: PathBuf,
    },
    /// `--prometheus-timeout-ms` or `--prometheus-ca` cannot be used for the live metrics.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The Prometheus URL in force cannot be used.
    #[error(transparent)]
    PrometheusUrl(Arc<guardrail_prometheus::FetchError>),
    /// Prometheus could not be queried at all (configuration, not "no data").
    #[error("{}: {source}", slos.display())]
    Prometheus {
        /// The SLO file that names the source.
        slos: PathBuf,
        /// Why.
        #[source]
        source: Arc<guardrail_prometheus::FetchError>,
    },
}

/// Where the SLO file says the SLO signals come from, when it names a Prometheus source.
#[derive(Debug, Clone)]
pub enum LiveSource {
    /// `slos.yaml` with a `prometheus:` block (the targets are `slos.yaml`'s).
    Block(Box<guardrail_config::Loaded<guardrail_core::burn::PrometheusSpec>>),
    /// A Sloth `prometheus/v1` or OpenSLO v1 file, one SLO selected.
    Spec(Box<guardrail_config::Loaded<guardrail_config::SpecSlo>>),
}

impl LiveSource {
    /// The Prometheus source.
    pub fn prometheus(&self) -> &guardrail_core::burn::PrometheusSpec {
        match self {
            LiveSource::Block(l) => &l.value,
            LiveSource::Spec(l) => &l.value.prometheus,
        }
    }
}

/// Reads the SLO file's live source: a Sloth/OpenSLO file (by content,
/// [`guardrail_config::classify_slo_file`]; `service` and `slo_name` select the SLO), else the
/// `prometheus:` block of `slos.yaml`, else `None` (the metrics file is the input).
pub fn live_source(
    slos: &Source,
    service: Option<&str>,
    slo_name: Option<&str>,
) -> Result<Option<LiveSource>, Vec<guardrail_config::ConfigError>> {
    match guardrail_config::classify_slo_file(slos) {
        Err(e) => Err(vec![e]),
        Ok(Some(_)) => {
            guardrail_config::load_spec_slo(slos, service, slo_name).map(|l| Some(LiveSource::Spec(Box::new(l))))
        }
        Ok(None) => guardrail_config::load_prometheus(slos).map(|b| b.map(|b| LiveSource::Block(Box::new(b)))),
    }
}

/// The metrics input: the metrics file, or, when the SLO file names a Prometheus source (a
/// `prometheus:` block, or a Sloth/OpenSLO file: [`live_source`]), a snapshot of the
/// Prometheus queries taken now (its JSON becomes the input that is evaluated and recorded). A
/// query that fails is recorded in the snapshot (no data), not an error here; errors are for
/// configuration that cannot run (no URL, an invalid block or spec, no such service).
pub fn metrics_input(paths: &InputPaths, slos: &Source) -> Result<Source, InputError> {
    let live = match live_source(slos, paths.service.as_deref(), paths.slo_name.as_deref()) {
        Err(errs) => return Err(InputError::LiveSource(errs)),
        Ok(None) if paths.prometheus_url.is_some() => {
            return Err(InputError::UrlWithoutQueries { slos: slos.path.clone() });
        }
        Ok(None) => return Ok(guardrail_config::read_source(&paths.metrics)?),
        Ok(Some(live)) => live,
    };
    if matches!(live, LiveSource::Spec(_)) && paths.prometheus_url.is_none() {
        return Err(InputError::NoPrometheusUrl { slos: slos.path.clone() });
    }
    let mut spec = live.prometheus().clone();
    if let Some(ms) = paths.prometheus_timeout_ms.clone()? {
        spec.timeout_ms = ms;
    }
    if let Some(ca) = paths.prometheus_ca.clone()? {
        spec.ca_file = Some(ca);
    }
    let url = guardrail_prometheus::resolve_url(&spec, paths.prometheus_url.as_deref())
        .map_err(|e| InputError::PrometheusUrl(Arc::new(e)))?;
    let snap = guardrail_prometheus::fetch(&spec, &url, paths.at.unwrap_or_else(Timestamp::now))
        .map_err(|e| InputError::Prometheus { slos: slos.path.clone(), source: Arc::new(e) })?;
    let text = snap.to_json();
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
    Ok(Source { path: PathBuf::from(format!("prometheus:{url}")), text, sha256 })
}

/// The SLO file and the metrics input (from Prometheus when the SLO file says so), each read
/// once: what `guardrail slo` needs.
pub fn slo_inputs(paths: &InputPaths) -> (Result<Source, InputError>, Result<Source, InputError>) {
    let slos = guardrail_config::read_source(&paths.slos).map_err(InputError::from);
    let metrics = match &slos {
        Ok(s) => metrics_input(paths, s),
        Err(_) => guardrail_config::read_source(&paths.metrics).map_err(InputError::from),
    };
    (slos, metrics)
}

/// Reads all four inputs (the metrics from Prometheus when the SLO file says so, see
/// [`metrics_input`]), reporting every one that fails.
pub fn sources(paths: &InputPaths) -> Result<Sources, Vec<InputError>> {
    let (slos, metrics) = slo_inputs(paths);
    let policies = guardrail_config::read_source(&paths.policies).map_err(InputError::from);
    let cost = guardrail_config::read_source(&paths.cost).map_err(InputError::from);
    match (policies, slos, metrics, cost) {
        (Ok(policies), Ok(slos), Ok(metrics), Ok(cost)) => Ok(Sources { policies, slos, metrics, cost }),
        (p, s, m, c) => Err([p.err(), s.err(), m.err(), c.err()].into_iter().flatten().collect()),
    }
}

/// Digest of a source.
pub fn digest(s: &Source) -> InputDigest {
    InputDigest { path: s.path.display().to_string(), sha256: Some(s.sha256.clone()), bytes: Some(s.text.len()) }
}

/// Digest of a path that may not have been readable.
pub fn digest_path(p: &Path) -> InputDigest {
    match guardrail_config::read_source(p) {
        Ok(s) => digest(&s),
        Err(_) => InputDigest { path: p.display().to_string(), sha256: None, bytes: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flag: Option<&str>) -> InputArgs {
        InputArgs { prometheus_timeout_ms: flag.map(str::to_string), ..InputArgs::default() }
    }

    #[test]
    fn the_prometheus_timeout_comes_from_the_flag_then_the_environment() {
        let none = |_: &str| None;
        let env = |k: &str| (k == "GUARDRAIL_PROMETHEUS_TIMEOUT_MS").then(|| "7000".to_string());
        assert_eq!(prometheus_timeout_ms(&args(None), &none), Ok(None));
        assert_eq!(prometheus_timeout_ms(&args(None), &env), Ok(Some(7000)));
        assert_eq!(prometheus_timeout_ms(&args(Some("60000")), &env), Ok(Some(60_000)));
        assert_eq!(resolve_paths(&args(Some(" 250 ")), &env).prometheus_timeout_ms, Ok(Some(250)));
        // An empty variable is unset.
        let empty = |_: &str| Some(" ".to_string());
        assert_eq!(prometheus_timeout_ms(&args(None), &empty), Ok(None));
    }

    #[test]
    fn an_invalid_prometheus_timeout_names_the_flag_or_variable_and_cannot_decide() {
        let clock = Timestamp::UNIX_EPOCH;
        for bad in ["0", "-5", "soon", "1.5", "60001"] {
            let e = prometheus_timeout_ms(&args(Some(bad)), &|_| None).unwrap_err();
            assert_eq!(e.origin, Origin::Flag("--prometheus-timeout-ms"));
            assert_eq!(e.problem, SettingProblem::TimeoutMs { given: bad.to_string(), max: 60_000 });
            let errors = settings(&args(Some(bad)), &|_| None, clock).unwrap_err();
            assert_eq!(errors.usage, vec![e.clone()]);
            assert_eq!(errors.exit(), crate::exit::Exit::Usage);
            let e = e.to_string();
            assert!(e.starts_with("--prometheus-timeout-ms: "), "{e}");
            assert!(e.contains(&format!("got \"{bad}\"")) && e.contains("from 1 to 60000"), "{e}");
            let errors: Vec<String> =
                settings(&args(Some(bad)), &|_| None, clock).unwrap_err().all().map(ToString::to_string).collect();
            assert_eq!(errors, vec![e.clone()]);
            let env = |k: &str| (k == "GUARDRAIL_PROMETHEUS_TIMEOUT_MS").then(|| bad.to_string());
            let e = prometheus_timeout_ms(&args(None), &env).unwrap_err().to_string();
            assert!(e.starts_with("GUARDRAIL_PROMETHEUS_TIMEOUT_MS: "), "{e}");
            assert!(settings(&args(None), &env, clock).is_err());
        }
    }

    #[test]
    fn the_prometheus_ca_comes_from_the_flag_then_the_environment_and_is_checked() {
        let dir = std::env::temp_dir().join(format!("guardrail-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("ca.pem");
        std::fs::write(&good, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").expect("write");
        let other = dir.join("other.pem");
        std::fs::copy(&good, &other).expect("copy");
        let flag = |p: &Path| InputArgs { prometheus_ca: Some(p.to_path_buf()), ..InputArgs::default() };
        let env_other = |k: &str| (k == "GUARDRAIL_PROMETHEUS_CA").then(|| other.display().to_string());
        assert_eq!(prometheus_ca(&InputArgs::default(), &|_| None), Ok(None));
        assert_eq!(prometheus_ca(&InputArgs::default(), &env_other), Ok(Some(other.clone())));
        assert_eq!(prometheus_ca(&flag(&good), &env_other), Ok(Some(good.clone())));
        assert_eq!(resolve_paths(&flag(&good), &|_| None).prometheus_ca, Ok(Some(good.clone())));
        // Missing or not PEM: an error naming the flag or the variable, and no decision.
        let missing = dir.join("missing.pem");
        let e = prometheus_ca(&flag(&missing), &|_| None).unwrap_err();
        assert!(!e.is_usage());
        assert!(
            matches!(&e.problem, SettingProblem::CaFile(guardrail_config::CaFileError::Unreadable { path, .. }) if *path == missing),
            "{e:?}"
        );
        let all = settings(&flag(&missing), &|_| None, Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!((all.usage.len(), all.input.len(), all.exit()), (0, 1, crate::exit::Exit::CannotDecide));
        let e = e.to_string();
        assert!(e.starts_with("--prometheus-ca: ") && e.contains("cannot be read"), "{e}");
        assert_eq!(all.all().map(ToString::to_string).collect::<Vec<_>>(), vec![e]);
        let text = dir.join("notes.txt");
        std::fs::write(&text, "not a certificate\n").expect("write");
        let env_text = |k: &str| (k == "GUARDRAIL_PROMETHEUS_CA").then(|| text.display().to_string());
        let e = prometheus_ca(&InputArgs::default(), &env_text).unwrap_err().to_string();
        assert!(e.starts_with("GUARDRAIL_PROMETHEUS_CA: ") && e.contains("not a PEM file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_bad_flag_or_variable_value_is_a_usage_error_and_an_unreadable_ca_file_is_not() {
        let none = |_: &str| None;
        let flags = [
            InputArgs { cost_warn_pct: Some("abc".into()), ..InputArgs::default() },
            InputArgs { cost_block_pct: Some("NaN".into()), ..InputArgs::default() },
            InputArgs { cost_warn_pct: Some("40".into()), cost_block_pct: Some("30".into()), ..InputArgs::default() },
            InputArgs { max_age: Some("soon".into()), ..InputArgs::default() },
            InputArgs { now: Some("yesterday".into()), ..InputArgs::default() },
            InputArgs { cost_format: Some("xls".into()), ..InputArgs::default() },
            InputArgs { cost_baseline_days: Some("1".into()), ..InputArgs::default() },
            InputArgs { prometheus_timeout_ms: Some("0".into()), ..InputArgs::default() },
            InputArgs { prometheus: Some("prometheus:9090".into()), ..InputArgs::default() },
        ];
        for a in &flags {
            let usage = usage_problems(a, &none);
            assert_eq!(usage.len(), 1, "{a:?}: {usage:?}");
            assert!(usage[0].is_usage(), "{a:?}");
            let all = settings(a, &none, Timestamp::UNIX_EPOCH).unwrap_err();
            assert_eq!((all.exit(), all.input.len()), (crate::exit::Exit::Usage, 0), "{a:?}");
            assert_eq!(all.usage, usage, "{a:?}");
        }
        for (var, bad) in [
            ("COST_WARN_PCT", "abc"),
            ("COST_BLOCK_PCT", "inf"),
            ("GUARDRAIL_MAX_AGE", "1 fortnight"),
            ("GUARDRAIL_COST_FORMAT", "xls"),
            ("GUARDRAIL_COST_BASELINE_DAYS", "many"),
            ("GUARDRAIL_PROMETHEUS_TIMEOUT_MS", "-1"),
            ("GUARDRAIL_PROMETHEUS_URL", "ftp://prometheus"),
        ] {
            let env = |k: &str| (k == var).then(|| bad.to_string());
            let usage = usage_problems(&InputArgs::default(), &env);
            assert!(usage.len() == 1 && usage[0].origin == Origin::Variable(var), "{var}: {usage:?}");
            assert!(usage[0].to_string().starts_with(&format!("{var}: ")), "{}", usage[0]);
        }
        assert!(usage_problems(&InputArgs::default(), &none).is_empty());
        let ca = InputArgs { prometheus_ca: Some("/nonexistent/ca.pem".into()), ..InputArgs::default() };
        assert!(usage_problems(&ca, &none).is_empty(), "a missing CA file is an input error (exit 3)");
        assert_eq!(settings(&ca, &none, Timestamp::UNIX_EPOCH).unwrap_err().exit(), crate::exit::Exit::CannotDecide);
    }

    #[test]
    fn setting_errors_name_the_flag_or_variable_and_keep_their_text() {
        let none = |_: &str| None;
        let order =
            InputArgs { cost_warn_pct: Some("40".into()), cost_block_pct: Some("30".into()), ..InputArgs::default() };
        let e = settings(&order, &none, Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!(e.usage[0].problem, SettingProblem::ThresholdOrder { warn: 40.0, block: 30.0 });
        assert_eq!(
            e.usage[0].to_string(),
            "COST_WARN_PCT (40) is above COST_BLOCK_PCT (30): the thresholds are in the wrong order"
        );
        let env = |k: &str| (k == "COST_WARN_PCT").then(|| "abc".to_string());
        let e = usage_problems(&InputArgs::default(), &env);
        assert_eq!(e[0].origin, Origin::Variable("COST_WARN_PCT"));
        assert_eq!(e[0].to_string(), "COST_WARN_PCT: expected a finite number of percent, got \"abc\"");
        let now = InputArgs { now: Some("yesterday".into()), max_age: Some("5w".into()), ..InputArgs::default() };
        let e = usage_problems(&now, &none);
        assert!(matches!(e[0].problem, SettingProblem::Duration(_)), "{e:?}");
        assert_eq!(e[0].to_string(), "--max-age: \"5w\": unknown unit \"w\" (use s, m, h or d)");
        assert!(matches!(e[1].problem, SettingProblem::NotATimestamp { .. }), "{e:?}");
        assert!(e[1].to_string().starts_with("--now: \"yesterday\" is not an RFC 3339 timestamp ("), "{}", e[1]);
        let url = InputArgs { prometheus: Some("prometheus:9090".into()), ..InputArgs::default() };
        assert_eq!(
            usage_problems(&url, &none)[0].to_string(),
            "--prometheus: prometheus URL prometheus:9090: must start with http:// or https://"
        );
    }

    #[test]
    fn the_cost_selection_comes_from_the_flags_then_the_environment_and_is_recorded() {
        let clock = Timestamp::UNIX_EPOCH;
        let env = |k: &str| match k {
            "GUARDRAIL_COST_TAG" => Some("app=search".to_string()),
            "GUARDRAIL_COST_SERVICE" => Some("Amazon S3".to_string()),
            _ => None,
        };
        let from_env = settings(&InputArgs::default(), &env, clock).expect("valid");
        assert_eq!(from_env.cost_tag.as_ref().map(|t| t.to_string()).as_deref(), Some("app=search"));
        assert_eq!(from_env.cost_service.as_deref(), Some("Amazon S3"));
        let flags = InputArgs {
            cost_tag: Some("app=checkout-api".into()),
            cost_service: Some(" Amazon Elastic Compute Cloud ".into()),
            service: Some("checkout-api".into()),
            ..InputArgs::default()
        };
        let s = settings(&flags, &env, clock).expect("valid");
        let sel = s.cost_selection();
        assert_eq!(sel.tag.as_ref().map(|t| (t.key.as_str(), t.value.as_str())), Some(("app", "checkout-api")));
        assert_eq!(sel.provider_service.as_deref(), Some("Amazon Elastic Compute Cloud"));
        assert_eq!(sel.slo_service.as_deref(), Some("checkout-api"));
        // Recorded as text, and read back by replay as the same selection.
        let body = serde_json::json!({ "settings": s });
        assert_eq!(body["settings"]["cost_tag"], "app=checkout-api");
        let recorded: crate::gate::SettingsBody = crate::gate::decode(&body["settings"]).expect("settings");
        let back = recorded.to_settings().expect("settings");
        assert_eq!(back, s);
        // Unset: not recorded at all, and every row.
        let none = settings(&InputArgs::default(), &|_| None, clock).expect("valid");
        let v = serde_json::to_value(&none).expect("json");
        assert!(v.get("cost_tag").is_none() && v.get("cost_service").is_none(), "{v}");
        // A tag without a key or value names the flag or the variable.
        for bad in ["novalue", "app=", "=x"] {
            let a = InputArgs { cost_tag: Some(bad.into()), ..InputArgs::default() };
            let e = settings(&a, &|_| None, clock).unwrap_err().usage;
            assert!(e.len() == 1 && matches!(e[0].problem, SettingProblem::CostTag(_)), "{e:?}");
            let m = e[0].to_string();
            assert!(m.starts_with("--cost-tag: ") && m.contains("KEY=VALUE"), "{m}");
            let env = |k: &str| (k == "GUARDRAIL_COST_TAG").then(|| bad.to_string());
            let e = settings(&InputArgs::default(), &env, clock).unwrap_err().usage;
            assert_eq!(e[0].origin, Origin::Variable("GUARDRAIL_COST_TAG"), "{e:?}");
        }
    }

    /// A server that accepts connections and never answers.
    fn silent_server() -> (std::net::TcpListener, String) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        (l, url)
    }

    fn sloth(extension: &str) -> Source {
        Source::from_text(
            "sloth.yaml",
            format!(
                "version: prometheus/v1\nservice: s\nslos:\n  - name: a\n    objective: 99.9\n    sli:\n      events:\n        error_query: sum(increase(e[{{{{.window}}}}]))\n        total_query: sum(increase(t[{{{{.window}}}}]))\n{extension}"
            ),
        )
    }

    fn paths(url: &str, timeout: Result<Option<u64>, SettingError>) -> InputPaths {
        let mut p = resolve_paths(&InputArgs::default(), &|_| None);
        p.prometheus_url = Some(url.to_string());
        p.prometheus_timeout_ms = timeout;
        p.at = Some(Timestamp::UNIX_EPOCH);
        p
    }

    #[test]
    fn the_flag_timeout_wins_over_the_spec_and_the_block() {
        let (_listener, url) = silent_server();
        // The spec asks for a minute; the override's 200 ms is what the requests wait.
        let spec = sloth("    guardrail: {timeout_ms: 60000, retries: 0}\n");
        let started = std::time::Instant::now();
        let m = metrics_input(&paths(&url, Ok(Some(200))), &spec).expect("a snapshot");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
        assert!(m.text.contains("timed out"), "{}", m.text);
        // An invalid override is an error, not the spec's timeout.
        let bad = SettingError::new(
            Origin::Flag("--prometheus-timeout-ms"),
            SettingProblem::TimeoutMs { given: "bad".into(), max: 1 },
        );
        let e = metrics_input(&paths(&url, Err(bad.clone())), &spec).unwrap_err();
        assert!(matches!(&e, InputError::Setting(s) if *s == bad), "{e:?}");
        assert_eq!(
            e.to_string(),
            "--prometheus-timeout-ms: expected a whole number of milliseconds from 1 to 1, got \"bad\""
        );
        // The same for the `prometheus:` block of slos.yaml.
        let block = Source::from_text(
            "slos.yaml",
            "slos:\n  availability: {target: 99.9}\n  latency: {p95_threshold_ms: 500}\nprometheus:\n  service: s\n  error_query: sum(increase(e[{{.window}}]))\n  total_query: sum(increase(t[{{.window}}]))\n  latency:\n    histogram: h_bucket\n  timeout_ms: 60000\n  retries: 0\n",
        );
        let started = std::time::Instant::now();
        let m = metrics_input(&paths(&url, Ok(Some(200))), &block).expect("a snapshot");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
        assert!(m.text.contains("timed out"), "{}", m.text);
    }
}
