//! Where the gate's inputs come from (flags, then the seed tool's environment variables, then
//! the seed layout under `--root`), and reading them once into memory.

use std::path::{Path, PathBuf};

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
    /// `prometheus:` block's and a Sloth/OpenSLO spec's `timeout_ms`. `Err` is the message for
    /// an invalid value: reading the live metrics then fails (exit 3) rather than falling back
    /// to the file's timeout.
    #[serde(skip)]
    pub prometheus_timeout_ms: Result<Option<u64>, String>,
    /// PEM file of CA certificates to trust for an `https://` Prometheus (`--prometheus-ca`,
    /// `GUARDRAIL_PROMETHEUS_CA`; [`prometheus_ca`]): wins over the `prometheus:` block's and a
    /// Sloth/OpenSLO spec's `ca_file`. `Err` is the message for a file that is missing or not
    /// PEM: reading the live metrics then fails (exit 3) rather than falling back to the file's.
    #[serde(skip)]
    pub prometheus_ca: Result<Option<PathBuf>, String>,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Cost trend thresholds.
    pub cost: CostThresholds,
    /// Maximum age of `collected_at`, if any.
    #[serde(serialize_with = "ser_opt_duration")]
    pub max_age: Option<SignedDuration>,
    /// Evaluation time.
    pub now: Timestamp,
    /// The selected service (`--service`, `GUARDRAIL_SERVICE`), for files with several.
    pub service: Option<String>,
    /// The cost file's layout when given (`--cost-format`); detected otherwise.
    pub cost_format: Option<guardrail_config::CostFormat>,
    /// The SLO selected by name in a Sloth/OpenSLO file (`--slo-name`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_name: Option<String>,
    /// The billing export's rows of the application (`--cost-tag KEY=VALUE`, recorded as
    /// `"KEY=VALUE"`); absent: every row.
    #[serde(skip_serializing_if = "Option::is_none")]
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

fn ser_opt_duration<S: serde::Serializer>(d: &Option<SignedDuration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_i64(d.as_secs()),
        None => s.serialize_none(),
    }
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
pub fn prometheus_timeout_ms(args: &InputArgs, env: EnvLookup<'_>) -> Result<Option<u64>, String> {
    let (origin, text) = match &args.prometheus_timeout_ms {
        Some(t) => ("--prometheus-timeout-ms", t.clone()),
        None => match env_nonempty(env, "GUARDRAIL_PROMETHEUS_TIMEOUT_MS") {
            Some(t) => ("GUARDRAIL_PROMETHEUS_TIMEOUT_MS", t),
            None => return Ok(None),
        },
    };
    let max = guardrail_config::MAX_PROMETHEUS_TIMEOUT_MS;
    match text.trim().parse::<u64>() {
        Ok(ms) if (1..=max).contains(&ms) => Ok(Some(ms)),
        _ => Err(format!("{origin}: expected a whole number of milliseconds from 1 to {max}, got \"{text}\"")),
    }
}

/// The CA file given by `--prometheus-ca` or, without the flag, `GUARDRAIL_PROMETHEUS_CA`:
/// `Ok(None)` when neither is set; an error naming the flag or variable when the file cannot be
/// read or is not PEM with at least one certificate ([`guardrail_config::check_ca_file`]).
pub fn prometheus_ca(args: &InputArgs, env: EnvLookup<'_>) -> Result<Option<PathBuf>, String> {
    let (origin, path) = match &args.prometheus_ca {
        Some(p) => ("--prometheus-ca", p.clone()),
        None => match env_nonempty(env, "GUARDRAIL_PROMETHEUS_CA") {
            Some(p) => ("GUARDRAIL_PROMETHEUS_CA", PathBuf::from(p.trim())),
            None => return Ok(None),
        },
    };
    guardrail_config::check_ca_file(&path).map(|()| Some(path)).map_err(|e| format!("{origin}: {e}"))
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
    var: &str,
    flag_name: &str,
    default: f64,
) -> Result<f64, String> {
    let (text, origin) = match flag {
        Some(t) => (t.clone(), format!("--{flag_name}")),
        None => match env_nonempty(env, var) {
            Some(t) => (t, format!("environment variable {var}")),
            None => return Ok(default),
        },
    };
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{origin}: expected a finite number of percent, got \"{text}\"")),
    }
}

/// The problems with the *values* of flags and their environment variables (a number that is
/// not one, `--now yesterday`, an unknown `--cost-format`, thresholds in the wrong order): usage
/// errors, so a command refuses them with exit 64 before reading an input or recording anything.
/// Every error [`resolve_settings`] reports is one of these except a `--prometheus-ca` /
/// `GUARDRAIL_PROMETHEUS_CA` file that cannot be read or is not PEM: that is an input file, and
/// the gate cannot decide (exit 3) as with any other unreadable input.
pub fn usage_errors(args: &InputArgs, env: EnvLookup<'_>) -> Vec<String> {
    match settings(args, env, Timestamp::UNIX_EPOCH) {
        Ok(_) => Vec::new(),
        Err(e) => e.usage,
    }
}

/// What is wrong with the settings, by who has to fix what.
struct SettingsErrors {
    /// Bad flag or variable values ([`usage_errors`]).
    usage: Vec<String>,
    /// Files named by a flag that cannot be used (the `--prometheus-ca` file).
    input: Vec<String>,
}

/// Resolves thresholds, maximum age and evaluation time. `clock` is the wall clock, used only
/// when `--now` is absent.
pub fn resolve_settings(args: &InputArgs, env: EnvLookup<'_>, clock: Timestamp) -> Result<Settings, Vec<String>> {
    settings(args, env, clock).map_err(|e| e.usage.into_iter().chain(e.input).collect())
}

fn settings(args: &InputArgs, env: EnvLookup<'_>, clock: Timestamp) -> Result<Settings, SettingsErrors> {
    let mut errors = Vec::new();
    let mut input_errors = Vec::new();
    let warn = number_setting(&args.cost_warn_pct, env, "COST_WARN_PCT", "cost-warn-pct", 20.0)
        .map_err(|e| errors.push(e))
        .ok();
    let block = number_setting(&args.cost_block_pct, env, "COST_BLOCK_PCT", "cost-block-pct", 30.0)
        .map_err(|e| errors.push(e))
        .ok();
    if let (Some(w), Some(b)) = (warn, block)
        && w > b
    {
        errors
            .push(format!("COST_WARN_PCT ({w}) is above COST_BLOCK_PCT ({b}): the thresholds are in the wrong order"));
    }
    let max_age = match args
        .max_age
        .clone()
        .map(|v| ("--max-age", v))
        .or_else(|| env_nonempty(env, "GUARDRAIL_MAX_AGE").map(|v| ("GUARDRAIL_MAX_AGE", v)))
    {
        None => None,
        Some((origin, text)) => match guardrail_core::freshness::parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(format!("{origin}: {e}"));
                None
            }
        },
    };
    let pick = |flag: &Option<String>, var: &'static str, name: &'static str| {
        flag.clone().map(|v| (name, v)).or_else(|| env_nonempty(env, var).map(|v| (var, v)))
    };
    let service = pick(&args.service, "GUARDRAIL_SERVICE", "--service").map(|(_, v)| v.trim().to_string());
    let slo_name = pick(&args.slo_name, "GUARDRAIL_SLO_NAME", "--slo-name").map(|(_, v)| v.trim().to_string());
    let cost_format = match pick(&args.cost_format, "GUARDRAIL_COST_FORMAT", "--cost-format") {
        None => None,
        Some((origin, text)) => match text.parse::<guardrail_config::CostFormat>() {
            Ok(f) => Some(f),
            Err(e) => {
                errors.push(format!("{origin}: {e}"));
                None
            }
        },
    };
    let cost_tag = match pick(&args.cost_tag, "GUARDRAIL_COST_TAG", "--cost-tag") {
        None => None,
        Some((origin, text)) => match text.parse::<guardrail_config::CostTag>() {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(format!("{origin}: {e}"));
                None
            }
        },
    };
    let cost_service = match pick(&args.cost_service, "GUARDRAIL_COST_SERVICE", "--cost-service") {
        None => None,
        Some((_, text)) if !text.trim().is_empty() => Some(text.trim().to_string()),
        Some((origin, _)) => {
            errors.push(format!("{origin}: expected a provider service name, got an empty one"));
            None
        }
    };
    let baseline = match pick(&args.cost_baseline_days, "GUARDRAIL_COST_BASELINE_DAYS", "--cost-baseline-days") {
        None => guardrail_core::cost::DEFAULT_BASELINE_DAYS,
        Some((origin, text)) => match text.trim().parse::<u32>() {
            Ok(n) if (3..=366).contains(&n) => n,
            _ => {
                errors.push(format!("{origin}: expected a whole number of days from 3 to 366, got \"{text}\""));
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
        errors.push(format!("{origin}: {e}"));
    }
    if let Err(e) = prometheus_ca(args, env) {
        input_errors.push(e);
    }
    let now = match &args.now {
        None => clock,
        Some(text) => match text.parse::<Timestamp>() {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("--now: \"{text}\" is not an RFC 3339 timestamp ({e})"));
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
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct InputDigest {
    /// Path as given.
    pub path: String,
    /// sha256 of the bytes read, when they could be read.
    pub sha256: Option<String>,
    /// Size in bytes.
    pub bytes: Option<usize>,
}

/// Reads one file.
pub fn read(path: &Path) -> Result<Source, String> {
    guardrail_config::read_source(path).map_err(|e| e.to_string())
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
pub fn read_metrics(paths: &InputPaths, slos: &Source) -> Result<Source, String> {
    let live = match live_source(slos, paths.service.as_deref(), paths.slo_name.as_deref()) {
        Err(errs) => return Err(errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")),
        Ok(None) if paths.prometheus_url.is_some() => {
            return Err(format!(
                "--prometheus / GUARDRAIL_PROMETHEUS_URL is set but {} has no prometheus: block naming the queries",
                slos.path.display()
            ));
        }
        Ok(None) => return read(&paths.metrics),
        Ok(Some(live)) => live,
    };
    if matches!(live, LiveSource::Spec(_)) && paths.prometheus_url.is_none() {
        return Err(format!(
            "{}: an SLO spec is read from Prometheus, and no URL is set: give --prometheus URL or \
             GUARDRAIL_PROMETHEUS_URL",
            slos.path.display()
        ));
    }
    let mut spec = live.prometheus().clone();
    if let Some(ms) = paths.prometheus_timeout_ms.clone()? {
        spec.timeout_ms = ms;
    }
    if let Some(ca) = paths.prometheus_ca.clone()? {
        spec.ca_file = Some(ca);
    }
    let url = guardrail_prometheus::resolve_url(&spec, paths.prometheus_url.as_deref()).map_err(|e| e.to_string())?;
    let snap = guardrail_prometheus::fetch(&spec, &url, paths.at.unwrap_or_else(Timestamp::now))
        .map_err(|e| format!("{}: {e}", slos.path.display()))?;
    let text = snap.to_json();
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
    Ok(Source { path: PathBuf::from(format!("prometheus:{url}")), text, sha256 })
}

/// The SLO file and the metrics input (from Prometheus when the SLO file says so), each read
/// once: what `guardrail slo` needs.
pub fn read_slo_inputs(paths: &InputPaths) -> (Result<Source, String>, Result<Source, String>) {
    let slos = read(&paths.slos);
    let metrics = match &slos {
        Ok(s) => read_metrics(paths, s),
        Err(_) => read(&paths.metrics),
    };
    (slos, metrics)
}

/// Reads all four inputs (the metrics from Prometheus when the SLO file says so, see
/// [`read_metrics`]), reporting every one that fails.
pub fn read_sources(paths: &InputPaths) -> Result<Sources, Vec<String>> {
    let (slos, metrics) = read_slo_inputs(paths);
    let results = [read(&paths.policies), slos, metrics, read(&paths.cost)];
    let errors: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let [Ok(policies), Ok(slos), Ok(metrics), Ok(cost)] = results else {
        return Err(vec!["internal error: inputs vanished after reading".into()]);
    };
    Ok(Sources { policies, slos, metrics, cost })
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
            assert!(e.starts_with("--prometheus-timeout-ms: "), "{e}");
            assert!(e.contains(&format!("got \"{bad}\"")) && e.contains("from 1 to 60000"), "{e}");
            let errors = resolve_settings(&args(Some(bad)), &|_| None, clock).unwrap_err();
            assert_eq!(errors, vec![e.clone()]);
            let env = |k: &str| (k == "GUARDRAIL_PROMETHEUS_TIMEOUT_MS").then(|| bad.to_string());
            let e = prometheus_timeout_ms(&args(None), &env).unwrap_err();
            assert!(e.starts_with("GUARDRAIL_PROMETHEUS_TIMEOUT_MS: "), "{e}");
            assert!(resolve_settings(&args(None), &env, clock).is_err());
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
        assert!(e.starts_with("--prometheus-ca: ") && e.contains("cannot be read"), "{e}");
        assert_eq!(resolve_settings(&flag(&missing), &|_| None, Timestamp::UNIX_EPOCH).unwrap_err(), vec![e]);
        let text = dir.join("notes.txt");
        std::fs::write(&text, "not a certificate\n").expect("write");
        let env_text = |k: &str| (k == "GUARDRAIL_PROMETHEUS_CA").then(|| text.display().to_string());
        let e = prometheus_ca(&InputArgs::default(), &env_text).unwrap_err();
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
            let usage = usage_errors(a, &none);
            assert_eq!(usage.len(), 1, "{a:?}: {usage:?}");
            assert_eq!(Err(usage), resolve_settings(a, &none, Timestamp::UNIX_EPOCH), "{a:?}");
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
            let usage = usage_errors(&InputArgs::default(), &env);
            assert!(usage.len() == 1 && usage[0].contains(var), "{var}: {usage:?}");
        }
        assert!(usage_errors(&InputArgs::default(), &none).is_empty());
        let ca = InputArgs { prometheus_ca: Some("/nonexistent/ca.pem".into()), ..InputArgs::default() };
        assert!(usage_errors(&ca, &none).is_empty(), "a missing CA file is an input error (exit 3)");
        assert!(resolve_settings(&ca, &none, Timestamp::UNIX_EPOCH).is_err());
    }

    #[test]
    fn the_cost_selection_comes_from_the_flags_then_the_environment_and_is_recorded() {
        let clock = Timestamp::UNIX_EPOCH;
        let env = |k: &str| match k {
            "GUARDRAIL_COST_TAG" => Some("app=search".to_string()),
            "GUARDRAIL_COST_SERVICE" => Some("Amazon S3".to_string()),
            _ => None,
        };
        let from_env = resolve_settings(&InputArgs::default(), &env, clock).expect("valid");
        assert_eq!(from_env.cost_tag.as_ref().map(|t| t.to_string()).as_deref(), Some("app=search"));
        assert_eq!(from_env.cost_service.as_deref(), Some("Amazon S3"));
        let flags = InputArgs {
            cost_tag: Some("app=checkout-api".into()),
            cost_service: Some(" Amazon Elastic Compute Cloud ".into()),
            service: Some("checkout-api".into()),
            ..InputArgs::default()
        };
        let s = resolve_settings(&flags, &env, clock).expect("valid");
        let sel = s.cost_selection();
        assert_eq!(sel.tag.as_ref().map(|t| (t.key.as_str(), t.value.as_str())), Some(("app", "checkout-api")));
        assert_eq!(sel.provider_service.as_deref(), Some("Amazon Elastic Compute Cloud"));
        assert_eq!(sel.slo_service.as_deref(), Some("checkout-api"));
        // Recorded as text, and read back by replay as the same selection.
        let body = serde_json::json!({ "settings": s });
        assert_eq!(body["settings"]["cost_tag"], "app=checkout-api");
        let back = crate::gate::settings_from_record(&body).expect("settings");
        assert_eq!(back, s);
        // Unset: not recorded at all, and every row.
        let none = resolve_settings(&InputArgs::default(), &|_| None, clock).expect("valid");
        let v = serde_json::to_value(&none).expect("json");
        assert!(v.get("cost_tag").is_none() && v.get("cost_service").is_none(), "{v}");
        // A tag without a key or value names the flag or the variable.
        for bad in ["novalue", "app=", "=x"] {
            let a = InputArgs { cost_tag: Some(bad.into()), ..InputArgs::default() };
            let e = resolve_settings(&a, &|_| None, clock).unwrap_err();
            assert!(e.len() == 1 && e[0].starts_with("--cost-tag: ") && e[0].contains("KEY=VALUE"), "{e:?}");
            let env = |k: &str| (k == "GUARDRAIL_COST_TAG").then(|| bad.to_string());
            let e = resolve_settings(&InputArgs::default(), &env, clock).unwrap_err();
            assert!(e[0].starts_with("GUARDRAIL_COST_TAG: "), "{e:?}");
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

    fn paths(url: &str, timeout: Result<Option<u64>, String>) -> InputPaths {
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
        let m = read_metrics(&paths(&url, Ok(Some(200))), &spec).expect("a snapshot");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
        assert!(m.text.contains("timed out"), "{}", m.text);
        // An invalid override is an error, not the spec's timeout.
        let e = read_metrics(&paths(&url, Err("--prometheus-timeout-ms: bad".into())), &spec).unwrap_err();
        assert_eq!(e, "--prometheus-timeout-ms: bad");
        // The same for the `prometheus:` block of slos.yaml.
        let block = Source::from_text(
            "slos.yaml",
            "slos:\n  availability: {target: 99.9}\n  latency: {p95_threshold_ms: 500}\nprometheus:\n  service: s\n  error_query: sum(increase(e[{{.window}}]))\n  total_query: sum(increase(t[{{.window}}]))\n  latency:\n    histogram: h_bucket\n  timeout_ms: 60000\n  retries: 0\n",
        );
        let started = std::time::Instant::now();
        let m = read_metrics(&paths(&url, Ok(Some(200))), &block).expect("a snapshot");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
        assert!(m.text.contains("timed out"), "{}", m.text);
    }
}
