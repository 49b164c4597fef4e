//! One deploy decision: load the snapshot, evaluate, shape the output and the audit record.

use std::path::PathBuf;

use guardrail_config::{ConfigError, Source, SourceMap};
use guardrail_core::audit::BodyHead;
use guardrail_core::cost::{self, CostReport};
use guardrail_core::freeze::TimeWindow;
use guardrail_core::freshness;
use guardrail_core::policy::{self, Action, Decision, PolicySet};
use guardrail_core::signals::Signals;
use guardrail_core::slo::{self, SloReport};
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::Serialize;

use crate::ci::CiContext;
use crate::inputs::{InputDigest, Settings, Sources, digest};

/// A decision with everything it was made from.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The inputs, as read.
    pub sources: Sources,
    /// Thresholds, maximum age and evaluation time.
    pub settings: Settings,
    /// The policy set that decided.
    pub policies: PolicySet,
    /// Policy lint warnings (errors would have stopped the evaluation).
    pub warnings: Vec<String>,
    /// SLO block.
    pub slo: SloReport,
    /// Cost block.
    pub cost: CostReport,
    /// Signal values the rules saw.
    pub signals: Signals,
    /// The decision.
    pub decision: Decision,
    /// Freeze and maintenance windows active at the evaluation time (the policy file's
    /// `freezes:` / `maintenance:`).
    pub freeze: guardrail_core::freeze::FreezeStatus,
}

/// Why the inputs could not decide: one problem, about one input (file, field path, line and
/// column where known) or about how the inputs go together. The messages are those the gate has
/// always printed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// An input file's problem, placed at its field: unreadable, invalid, stale, or a value the
    /// SLO or cost computation refuses.
    #[error(transparent)]
    Input(#[from] ConfigError),
    /// A policy lint error (`FILE:LINE:COL: error: FIELD: MESSAGE`).
    #[error("{0}")]
    Policy(guardrail_config::Finding),
    /// The SLO file names a Prometheus source, and the metrics input is not the snapshot the
    /// gate fetched from it.
    #[error(
        "{}: {reason} (the SLO file names a Prometheus source, so the metrics input must be the snapshot the gate fetched)",
        metrics.display()
    )]
    NotASnapshot {
        /// The metrics input.
        metrics: PathBuf,
        /// Why it is not a snapshot.
        reason: String,
    },
    /// The cost thresholds contradict each other.
    #[error("cost thresholds: {reason}")]
    CostThresholds {
        /// How.
        reason: String,
    },
    /// The SLO signals and the cost data are for different services.
    #[error(
        "{}: service: {} but the metrics ({}) are for {slo_service:?}; point both at the same service",
        cost.display(),
        match cost_tag {
            Some(tag) => format!("the cost rows tagged {tag} (--cost-tag) are for {cost_service:?}"),
            None => format!("the cost data is for {cost_service:?}"),
        },
        metrics.display()
    )]
    ServiceMismatch {
        /// The cost input.
        cost: PathBuf,
        /// The `--cost-tag` that selected its rows (`KEY=VALUE`), if any.
        cost_tag: Option<String>,
        /// The service the cost data is for.
        cost_service: String,
        /// The metrics input.
        metrics: PathBuf,
        /// The service the SLO signals are for.
        slo_service: String,
    },
    /// The policies cannot decide on these signals; with why the SLO signals could not be read,
    /// when they could not (the URL and error of each failed query).
    #[error("{}: {source}{}", policies.display(), no_data_because(no_data))]
    Undecidable {
        /// The policy file.
        policies: PathBuf,
        /// Why they cannot decide.
        source: DecideError,
        /// Why the SLO signals are `no_data`, when they are.
        no_data: Vec<String>,
    },
}

fn no_data_because(reasons: &[String]) -> String {
    if reasons.is_empty() { String::new() } else { format!("\n  no data because: {}", reasons.join("; ")) }
}

/// The messages of `problems`, as the text-reporting callers print them.
pub fn texts(problems: Vec<Problem>) -> Vec<String> {
    problems.iter().map(Problem::to_string).collect()
}

/// A problem at `field` of `src`, positioned by `map`.
fn located(src: &Source, map: &SourceMap, field: &str, reason: impl Into<String>) -> Problem {
    Problem::Input(ConfigError::at(src.path.clone(), field, map.locate(field), reason))
}

fn inputs(errs: Vec<ConfigError>) -> Vec<Problem> {
    errs.into_iter().map(Problem::Input).collect()
}

/// Both results, or every problem of either.
fn both<A, B>(a: Result<A, Vec<Problem>>, b: Result<B, Vec<Problem>>) -> Result<(A, B), Vec<Problem>> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err(a.err().into_iter().chain(b.err()).flatten().collect()),
    }
}

/// A report computed before the clock is known: the problems found before its freshness
/// check, or the time stamp that check takes and the report (or the problems) after it. Every
/// step of the SLO and cost blocks but the freshness check is independent of the evaluation
/// time, so [`Prepared`] computes them once.
#[derive(Debug, Clone)]
enum Staged<T> {
    /// The inputs could not be read far enough to check their age.
    Failed(Vec<Problem>),
    /// What the freshness check takes, and the result after it.
    Dated {
        /// The input's time stamp (`collected_at`, or a Prometheus snapshot's `evaluated_at`).
        at: Option<Timestamp>,
        /// Where a stale time stamp is reported.
        stale: StaleAt,
        /// The report, or why it could not be computed.
        report: Result<T, Vec<Problem>>,
    },
}

/// Where a freshness problem is reported: the file, field and position the gate has always
/// named.
#[derive(Debug, Clone)]
struct StaleAt {
    file: PathBuf,
    field: &'static str,
    pos: Option<(usize, usize)>,
}

impl<T: Clone> Staged<T> {
    /// The report at `now`: the freshness problem first, as the one-shot path always checked
    /// the age before computing the report.
    fn at(&self, now: Timestamp, max_age: Option<jiff::SignedDuration>) -> Result<T, Vec<Problem>> {
        match self {
            Staged::Failed(p) => Err(p.clone()),
            Staged::Dated { at, stale, report } => {
                check_fresh(*at, stale, now, max_age)?;
                report.clone()
            }
        }
    }

    /// [`Staged::at`] without copying the report.
    fn into_at(self, now: Timestamp, max_age: Option<jiff::SignedDuration>) -> Result<T, Vec<Problem>> {
        match self {
            Staged::Failed(p) => Err(p),
            Staged::Dated { at, stale, report } => {
                check_fresh(at, &stale, now, max_age)?;
                report
            }
        }
    }
}

fn check_fresh(
    at: Option<Timestamp>,
    stale: &StaleAt,
    now: Timestamp,
    max_age: Option<jiff::SignedDuration>,
) -> Result<(), Vec<Problem>> {
    freshness::check_age(at, now, max_age)
        .map_err(|e| vec![Problem::Input(ConfigError::at(stale.file.clone(), stale.field, stale.pos, e.to_string()))])
}

/// The SLO block before the clock: every step of [`slo_report`] but the freshness check.
fn slo_staged(slos: &Source, metrics: &Source, settings: &Settings) -> Staged<SloReport> {
    let live = match crate::inputs::live_source(slos, settings.service.as_deref(), settings.slo_name.as_deref()) {
        Ok(l) => l,
        Err(e) => return Staged::Failed(inputs(e)),
    };
    match live {
        Some(crate::inputs::LiveSource::Block(prom)) => match guardrail_config::load_slos(slos) {
            Ok(spec) => live_slo_staged(slos, metrics, &spec.value, &prom.value.burn, &prom.map),
            Err(e) => Staged::Failed(inputs(e)),
        },
        Some(crate::inputs::LiveSource::Spec(s)) => {
            live_slo_staged(slos, metrics, &s.value.slo, &s.value.prometheus.burn, &s.map)
        }
        None => {
            let (spec, snap) = match both(
                guardrail_config::load_slos(slos).map_err(inputs),
                guardrail_config::load_metrics(metrics).map_err(inputs),
            ) {
                Ok(both) => both,
                Err(p) => return Staged::Failed(p),
            };
            let stale =
                StaleAt { file: metrics.path.clone(), field: "collected_at", pos: snap.map.locate("collected_at") };
            let report = match spec.value.validate() {
                Err(e) => Err(vec![located(slos, &spec.map, &e.field, e.reason)]),
                Ok(()) => slo::evaluate(&spec.value, &snap.value)
                    .map_err(|e| vec![located(metrics, &snap.map, &e.field, e.reason)]),
            };
            Staged::Dated { at: snap.value.collected_at, stale, report }
        }
    }
}

/// SLO block from the SLO spec and a metrics snapshot, with the freshness check. When the SLO
/// file has a `prometheus:` block, `metrics` is the Prometheus snapshot taken by
/// `inputs::read_metrics` and the burn rates come from `guardrail_core::burn`.
pub fn slo_report(slos: &Source, metrics: &Source, settings: &Settings) -> Result<SloReport, Vec<Problem>> {
    slo_staged(slos, metrics, settings).into_at(settings.now, settings.max_age)
}

fn live_slo_staged(
    slos: &Source,
    metrics: &Source,
    spec: &guardrail_core::slo::SloSpec,
    burn: &guardrail_core::burn::BurnConfig,
    map: &SourceMap,
) -> Staged<SloReport> {
    let obs = match guardrail_prometheus::Snapshot::from_json(&metrics.text).and_then(|s| s.to_observation()) {
        Ok(o) => o,
        Err(e) => {
            return Staged::Failed(vec![Problem::NotASnapshot {
                metrics: metrics.path.clone(),
                reason: e.to_string(),
            }]);
        }
    };
    let stale = StaleAt { file: metrics.path.clone(), field: "evaluated_at", pos: None };
    let report =
        guardrail_core::burn::evaluate(spec, burn, &obs).map_err(|e| vec![located(slos, map, &e.field, e.reason)]);
    Staged::Dated { at: Some(obs.evaluated_at), stale, report }
}

/// The cost block before the clock: every step of [`cost_report`] but the freshness check.
fn cost_staged(cost_src: &Source, settings: &Settings) -> Staged<CostReport> {
    let series = match guardrail_config::load_cost_as(cost_src, settings.cost_format, &settings.cost_selection()) {
        Ok(s) => s,
        Err(e) => return Staged::Failed(inputs(e)),
    };
    let stale = StaleAt { file: cost_src.path.clone(), field: "collected_at", pos: series.map.locate("collected_at") };
    let report = cost::analyse(&series.value, &settings.cost).map_err(|e| {
        if e.field == "thresholds" {
            vec![Problem::CostThresholds { reason: e.reason }]
        } else {
            vec![located(cost_src, &series.map, &e.field, e.reason)]
        }
    });
    Staged::Dated { at: series.value.collected_at, stale, report }
}

/// Cost block from a cost series, with the freshness check.
pub fn cost_report(cost_src: &Source, settings: &Settings) -> Result<CostReport, Vec<Problem>> {
    cost_staged(cost_src, settings).into_at(settings.now, settings.max_age)
}

/// Loads and validates a policy set and its freeze/maintenance windows (one parse), with the
/// lint warnings; errors include every lint error found. When the process turned the policy
/// cache on (`guardrail gate`: [`crate::policy_cache`]), a set checked before from the same
/// bytes by the same binary is read from it instead, and a set read here is kept in it.
pub fn policy_set(src: &Source) -> Result<(PolicySet, Vec<TimeWindow>, Vec<String>), Vec<Problem>> {
    let Some(cache) = crate::policy_cache::active() else { return parsed_policy_set(src) };
    if let Some((set, warnings)) = cache.get(src) {
        return Ok((set, Vec::new(), warnings));
    }
    let parsed = parsed_policy_set(src);
    // Only a set without windows: the windows' time zones and schedules are not kept.
    if let Ok((set, windows, warnings)) = &parsed
        && windows.is_empty()
    {
        cache.put_in_background(src, set, warnings);
    }
    parsed
}

/// [`policy_set`] from the text.
fn parsed_policy_set(src: &Source) -> Result<(PolicySet, Vec<TimeWindow>, Vec<String>), Vec<Problem>> {
    let load = guardrail_config::load_policies(src);
    let (errors, warnings): (Vec<_>, Vec<_>) = load.findings.into_iter().partition(|f| f.is_error());
    let warnings: Vec<String> = warnings.iter().map(|f| f.to_string()).collect();
    if !errors.is_empty() {
        return Err(errors.into_iter().map(Problem::Policy).collect());
    }
    match load.set {
        Some(set) => Ok((set, load.windows, warnings)),
        None => Err(vec![Problem::Input(ConfigError::file(
            src.path.clone(),
            "the policy file could not be read as a policy set",
        ))]),
    }
}

/// The checked policy set, its windows and its lint warnings ([`policy_set`]).
type CheckedPolicies = (PolicySet, Vec<TimeWindow>, Vec<String>);

/// A snapshot's inputs parsed and checked once, to be evaluated at any number of clocks: the
/// policy set (read and linted), the SLO block and the cost block computed up to their
/// freshness checks, which are all that depend on the evaluation time. Evaluating it
/// ([`Prepared::evaluate`]) gives exactly what [`evaluation`] gives for the same sources and
/// settings with that `now` — [`evaluation`] *is* `Prepared::new(..).into_evaluation()` — so a
/// server that keeps one per version of its inputs records the same bytes as the CLI.
///
/// It holds problems as well as values: inputs that cannot decide are found once, and every
/// evaluation reports them (with the freshness problems of that clock, in the same order).
/// Pure: no I/O and no clock.
#[derive(Debug, Clone)]
pub struct Prepared {
    sources: Sources,
    settings: Settings,
    policies: Result<CheckedPolicies, Vec<Problem>>,
    slo: Staged<SloReport>,
    cost: Staged<CostReport>,
}

impl Prepared {
    /// Parses and checks `sources` with `settings` (whose `now` is only the default clock of
    /// [`Prepared::into_evaluation`]; [`Prepared::evaluate`] takes its own).
    pub fn new(sources: Sources, settings: Settings) -> Prepared {
        let policies = policy_set(&sources.policies);
        Prepared::with_policies(sources, settings, policies)
    }

    /// [`Prepared::new`] reading the policy set from its text even when the process turned the
    /// policy cache on: what `replay` does.
    pub fn from_text(sources: Sources, settings: Settings) -> Prepared {
        let policies = parsed_policy_set(&sources.policies);
        Prepared::with_policies(sources, settings, policies)
    }

    fn with_policies(
        sources: Sources,
        settings: Settings,
        policies: Result<CheckedPolicies, Vec<Problem>>,
    ) -> Prepared {
        let slo = slo_staged(&sources.slos, &sources.metrics, &settings);
        let cost = cost_staged(&sources.cost, &settings);
        Prepared { sources, settings, policies, slo, cost }
    }

    /// The inputs it was prepared from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// The settings it was prepared with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether it was prepared from these inputs (same paths and sha256s) and these settings
    /// (`now` aside): whether [`Prepared::evaluate`] may stand for `evaluation(sources,
    /// settings)`.
    pub fn is_for(&self, sources: &Sources, settings: &Settings) -> bool {
        let same = |a: &Source, b: &Source| a.path == b.path && a.sha256 == b.sha256;
        same(&self.sources.policies, &sources.policies)
            && same(&self.sources.slos, &sources.slos)
            && same(&self.sources.metrics, &sources.metrics)
            && same(&self.sources.cost, &sources.cost)
            && Settings { now: settings.now, ..self.settings.clone() } == *settings
    }

    /// The settings with the clock `now`.
    pub fn settings_at(&self, now: Timestamp) -> Settings {
        Settings { now, ..self.settings.clone() }
    }

    /// Evaluates at `now`: [`evaluation`] of the same sources with [`Prepared::settings_at`]
    /// `now`, without reading or checking anything again.
    pub fn evaluate(&self, now: Timestamp) -> Result<Evaluation, Vec<Problem>> {
        let settings = self.settings_at(now);
        let policies = self.policies.clone();
        let slo = self.slo.at(now, settings.max_age);
        let cost = self.cost.at(now, settings.max_age);
        decide_on(self.sources.clone(), settings, policies, slo, cost)
    }

    /// Evaluates at the settings' own `now`, consuming it (no copies): the one-shot path.
    pub fn into_evaluation(self) -> Result<Evaluation, Vec<Problem>> {
        let Prepared { sources, settings, policies, slo, cost } = self;
        let slo = slo.into_at(settings.now, settings.max_age);
        let cost = cost.into_at(settings.now, settings.max_age);
        decide_on(sources, settings, policies, slo, cost)
    }
}

/// Evaluates a full snapshot. Every problem found is reported, not just the first.
pub fn evaluation(sources: Sources, settings: Settings) -> Result<Evaluation, Vec<Problem>> {
    Prepared::new(sources, settings).into_evaluation()
}

/// The decision from the three blocks (or every problem of any of them).
fn decide_on(
    sources: Sources,
    settings: Settings,
    policies: Result<CheckedPolicies, Vec<Problem>>,
    slo: Result<SloReport, Vec<Problem>>,
    cost: Result<CostReport, Vec<Problem>>,
) -> Result<Evaluation, Vec<Problem>> {
    let (((policies, windows, warnings), slo), cost) = both(both(policies, slo), cost)?;
    // Signals from two services would decide one deploy on another's health: a wrong file,
    // never a decision. "unknown" (no `service` key, as the seed allowed; a billing export
    // without --cost-tag, whose rows name no application) matches anything.
    if slo.details.service != cost.service && slo.details.service != "unknown" && cost.service != "unknown" {
        return Err(vec![Problem::ServiceMismatch {
            cost: sources.cost.path.clone(),
            cost_tag: settings.cost_tag.as_ref().map(|t| t.to_string()),
            cost_service: cost.service.clone(),
            metrics: sources.metrics.path.clone(),
            slo_service: slo.details.service.clone(),
        }]);
    }
    let mut signals = Signals::from_reports(&slo, &cost);
    let freeze = guardrail_core::freeze::status(&windows, settings.now);
    guardrail_core::freeze::apply(&freeze, &mut signals);
    // When the SLO signals could not be read, say why (the URL and the error of each failed
    // query, e.g. a refused TLS certificate) next to the rule that cannot decide on them.
    // `policy_set` refused the set on any error of `policy::check`: no second check.
    let decision = decide_checked(&policies, &signals).map_err(|source| {
        let no_data = slo.prometheus.as_ref().map(|r| r.no_data_reasons.clone()).unwrap_or_default();
        vec![Problem::Undecidable { policies: sources.policies.path.clone(), source, no_data }]
    })?;
    Ok(Evaluation { sources, settings, policies, warnings, slo, cost, signals, decision, freeze })
}

/// Why a set of signal values could not decide.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecideError {
    /// The policies could not evaluate them (an invalid set, no rule matched without a default).
    #[error(transparent)]
    Policy(#[from] policy::EvalError),
    /// The decision would let a deploy through on SLO data that could not be read.
    #[error(transparent)]
    UnreadData(#[from] guardrail_core::burn::UnreadDataDecision),
}

/// The decision for a set of signal values: the policies' first match, refused when it would
/// let a deploy through on data that could not be read. [`evaluation`] decides with this, and so
/// does every adapter that decides on other signal values (the server's what-if simulation).
pub fn decide(policies: &PolicySet, signals: &Signals) -> Result<Decision, DecideError> {
    let decision = policy::evaluate(policies, signals)?;
    // No data or too few events never lets a deploy through unless a rule says so.
    guardrail_core::burn::check_decision(signals, &decision)?;
    Ok(decision)
}

/// [`decide`] for a set [`policy_set`] read (checked, refused on any error).
fn decide_checked(policies: &PolicySet, signals: &Signals) -> Result<Decision, DecideError> {
    let decision = policy::evaluate_checked(policies, signals)?;
    guardrail_core::burn::check_decision(signals, &decision)?;
    Ok(decision)
}

use crate::view::GateView;
pub use crate::view::{AuditRef, CounterfactualOut, InputsOut, SeedTrace};

/// Builds the output for an evaluation.
pub fn output<'a>(ev: &'a Evaluation, ci: &'a CiContext, fail_on_warn: bool) -> GateView<'a> {
    let d = &ev.decision;
    let retry_after = (d.action == Action::Delay).then(|| {
        let t = ev.settings.now + jiff::SignedDuration::from_mins(i64::from(d.delay_minutes));
        t.to_string()
    });
    GateView {
        action: d.action,
        policy_id: &d.policy_id,
        policy_name: &d.policy_name,
        reason: &d.reason,
        remediation: &d.remediation,
        delay_minutes: d.delay_minutes,
        evaluated_policies: d
            .trace
            .iter()
            .map(|t| SeedTrace { id: &t.id, name: &t.name, matched: t.matched, action: t.action })
            .collect(),
        slo: &ev.slo,
        cost: &ev.cost,
        retry_after,
        exit_code: crate::exit::Exit::for_decision(d.action, fail_on_warn),
        decided_by: d.decided_by,
        conditions: &d.conditions,
        trace: &d.trace,
        counterfactual: d
            .counterfactual_summary()
            .map(|summary| CounterfactualOut { summary, rules: &d.counterfactual }),
        signals: &ev.signals,
        freeze: &ev.freeze,
        inputs: InputsOut {
            policies: digest(&ev.sources.policies),
            slos: digest(&ev.sources.slos),
            metrics: digest(&ev.sources.metrics),
            cost: digest(&ev.sources.cost),
        },
        settings: &ev.settings,
        warnings: &ev.warnings,
        evaluated_at: ev.settings.now.to_string(),
        ci,
        tool: tool(),
        audit: None,
        requested_by: None,
    }
}

/// Kind of audit record written by the gate.
pub const RECORD_KIND: &str = "deploy_decision";
/// Kind of audit record written when the gate could not decide.
pub const ERROR_KIND: &str = "deploy_error";
/// Kind of audit record of a what-if decision (`POST /api/simulate`): never a deploy decision,
/// and `replay` does not take it.
pub const SIMULATION_KIND: &str = "deploy_simulation";

/// Encodes a typed body for appending. A body is strings, numbers, booleans and the core's
/// reports, which serialise without failing (no non-string map keys, no non-finite floats).
pub fn encode<T: Serialize + ?Sized>(body: &T) -> serde_json::Value {
    serde_json::to_value(body).unwrap_or(serde_json::Value::Null)
}

/// Decodes a deploy record body into its typed form. Unknown fields are ignored and missing
/// ones take their defaults (empty, `null`), so records written by older releases still read.
pub fn decode<T: serde::de::DeserializeOwned>(body: &serde_json::Value) -> Result<T, serde_json::Error> {
    T::deserialize(body)
}

/// The body of a `deploy_decision` record: the decision as `--format json` printed it (less its
/// `audit`, which names the record itself), `outcome: "decided"` and the inputs' full text.
///
/// Its serialisation is the record's canonical JSON: the field names, `null` for an absent
/// value and the numbers are what the chain hashes, so they never change (pinned by
/// `tests/it/records.rs` against bodies written before this type existed). The fields
/// `replay`, `audit list` and the HTTP audit view read are typed; the core's reports (SLO,
/// cost, signals, rule trace, counterfactual, freeze windows) are kept as recorded JSON,
/// because `replay` compares them as recorded and records of older releases hold older
/// shapes of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(default)]
pub struct DecisionRecordBody {
    /// The decision and what it was decided on: what a replay must reproduce.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The seed tool's trace ([`SeedTrace`] per rule).
    pub evaluated_policies: serde_json::Value,
    /// The exit code the decision was reported with.
    pub exit_code: u8,
    /// What would change a non-ALLOW outcome ([`CounterfactualOut`]), `null` for ALLOW.
    pub counterfactual: serde_json::Value,
    /// Active freeze and maintenance windows.
    pub freeze: serde_json::Value,
    /// The inputs' paths and digests.
    pub inputs: Option<InputsOut>,
    /// Policy lint warnings (and a CI context for another service).
    pub warnings: Vec<String>,
    /// When, with what settings, for whom, by which version.
    #[serde(flatten)]
    pub run: RecordedRun,
    /// Always `decided`.
    pub outcome: String,
    /// The four inputs' full text, for `replay` (absent only in what [`DecisionRecordBody::shown`]
    /// gives).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_content: Option<InputContent>,
}

/// [`DecisionRecordBody`] borrowing the decision's typed parts ([`DecisionRecordBody::encode`]):
/// the same field names, flattening and skipped fields, so both encode to the same value.
#[derive(Serialize)]
struct BodyRef<'a> {
    #[serde(flatten)]
    verdict: VerdictRef<'a>,
    evaluated_policies: &'a [SeedTrace<'a>],
    exit_code: u8,
    counterfactual: &'a Option<CounterfactualOut<'a>>,
    freeze: &'a guardrail_core::freeze::FreezeStatus,
    inputs: &'a InputsOut,
    warnings: &'a [String],
    #[serde(flatten)]
    run: RunRef<'a>,
    outcome: &'static str,
    input_content: ContentRef<'a>,
}

/// [`Verdict`], borrowed.
#[derive(Serialize)]
struct VerdictRef<'a> {
    #[serde(with = "action_name")]
    action: Option<Action>,
    policy_id: &'a str,
    policy_name: &'a str,
    reason: &'a str,
    remediation: &'a str,
    delay_minutes: u32,
    retry_after: &'a Option<String>,
    decided_by: &'a policy::DecidedBy,
    conditions: &'a [policy::ConditionOutcome],
    trace: &'a [policy::RuleTrace],
    signals: &'a Signals,
    slo: &'a SloReport,
    cost: &'a CostReport,
}

/// [`BodyRef`] with its flattened parts merged and every field in key order, so that its
/// canonical text ([`DecisionRecordBody::encode_text`]) is written in one pass: the body of a
/// 10,000-rule decision is megabytes, and an object whose fields come out of order is reordered
/// by a copy of all its bytes. A test checks that both give the same text.
#[derive(Serialize)]
struct SortedBodyRef<'a> {
    #[serde(with = "action_name")]
    action: Option<Action>,
    ci: &'a CiContext,
    #[serde(serialize_with = "sorted::conditions")]
    conditions: &'a [policy::ConditionOutcome],
    cost: &'a CostReport,
    counterfactual: &'a Option<CounterfactualOut<'a>>,
    decided_by: &'a policy::DecidedBy,
    delay_minutes: u32,
    evaluated_at: &'a str,
    #[serde(serialize_with = "sorted::seed_traces")]
    evaluated_policies: &'a [SeedTrace<'a>],
    exit_code: u8,
    freeze: &'a guardrail_core::freeze::FreezeStatus,
    input_content: ContentRef<'a>,
    inputs: &'a InputsOut,
    outcome: &'static str,
    policy_id: &'a str,
    policy_name: &'a str,
    reason: &'a str,
    remediation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_by: Option<&'a crate::decide::RequestedBy>,
    retry_after: &'a Option<String>,
    settings: &'a SettingsBody,
    signals: &'a Signals,
    slo: &'a SloReport,
    tool: &'a str,
    #[serde(serialize_with = "sorted::traces")]
    trace: &'a [policy::RuleTrace],
    warnings: &'a [String],
}

/// The record's many small objects (a rule's trace entry, a compared condition, the seed tool's
/// trace entry) with their fields in key order, for [`SortedBodyRef`]: their types serialise in
/// the `--format json` order, and 30,000 objects out of order are 30,000 sorts and copies for the
/// canonical writer. The fields are taken apart whole, so a new field does not compile until it
/// is written here too, and a test compares the text with the value route's.
mod sorted {
    use guardrail_core::policy::{Action, ConditionOutcome, Operator, RuleTrace, Threshold};
    use guardrail_core::signals::SignalValue;
    use serde::{Serialize, Serializer};

    use crate::view::SeedTrace;

    #[derive(Serialize)]
    struct Condition<'a> {
        actual: &'a SignalValue,
        operator: &'a Operator,
        result: bool,
        signal: &'a str,
        threshold: &'a Threshold,
    }

    fn condition(c: &ConditionOutcome) -> Condition<'_> {
        let ConditionOutcome { signal, operator, threshold, actual, result } = c;
        Condition { actual, operator, result: *result, signal, threshold }
    }

    struct Conditions<'a>(&'a [ConditionOutcome]);

    impl Serialize for Conditions<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().map(condition))
        }
    }

    #[derive(Serialize)]
    struct Trace<'a> {
        action: &'a Action,
        conditions: Conditions<'a>,
        id: &'a str,
        matched: bool,
        name: &'a str,
        priority: i64,
        why: &'a str,
        winner: bool,
    }

    #[derive(Serialize)]
    struct Seed<'a> {
        action: &'a Action,
        id: &'a str,
        matched: bool,
        name: &'a str,
    }

    pub(super) fn conditions<S: Serializer>(c: &&[ConditionOutcome], s: S) -> Result<S::Ok, S::Error> {
        Conditions(c).serialize(s)
    }

    pub(super) fn traces<S: Serializer>(t: &&[RuleTrace], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(t.iter().map(|t| {
            let RuleTrace { id, name, action, priority, matched, winner, why, conditions } = t;
            Trace {
                action,
                conditions: Conditions(conditions),
                id,
                matched: *matched,
                name,
                priority: *priority,
                why,
                winner: *winner,
            }
        }))
    }

    pub(super) fn seed_traces<S: Serializer>(t: &&[SeedTrace<'_>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(t.iter().map(|t| {
            let SeedTrace { id, name, matched, action } = t;
            Seed { action, id, matched: *matched, name }
        }))
    }
}

/// [`RecordedRun`], borrowed.
#[derive(Serialize)]
struct RunRef<'a> {
    settings: &'a SettingsBody,
    evaluated_at: &'a str,
    ci: &'a CiContext,
    tool: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_by: Option<&'a crate::decide::RequestedBy>,
}

/// [`InputContent`], borrowed; its fields in key order, so its canonical text is written in
/// place (out of order, the object would be reordered by a copy of the policy text). An input
/// kept apart ([`KEEP_APART_FROM`]) is named in `kept_apart` instead of written.
#[derive(Serialize)]
struct ContentRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    kept_apart: &'a [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policies: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slos: Option<&'a str>,
}

impl<'a> ContentRef<'a> {
    /// Every input's text in the record.
    fn inline(sources: &'a Sources) -> ContentRef<'a> {
        ContentRef::without(sources, &[])
    }

    /// The inputs `kept_apart` names ([`kept_apart`]) left out, the others' text in the record.
    fn without(sources: &'a Sources, kept_apart: &'a [&'static str]) -> ContentRef<'a> {
        let text = |name: &str, s: &'a Source| (!kept_apart.contains(&name)).then_some(s.text.as_str());
        ContentRef {
            cost: text("cost", &sources.cost),
            kept_apart,
            metrics: text("metrics", &sources.metrics),
            policies: text("policies", &sources.policies),
            slos: text("slos", &sources.slos),
        }
    }
}

/// The size from which an input's text is kept apart from a decision record written for a store
/// that keeps inputs ([`guardrail_store::AuditStore::keep_inputs`]): stored once per distinct
/// text, under its SHA-256 (which the record's `inputs` already holds and the chain covers), and
/// named in the record's `input_content.kept_apart`. A fleet's 10,000-rule policy file is
/// megabytes; every gate run copied it into the chain again. The seed's files are a few KiB and
/// stay in the record, whose bytes are then exactly as before.
pub const KEEP_APART_FROM: usize = 64 << 10;

/// The inputs of `sources` whose text is kept apart ([`KEEP_APART_FROM`]), by their
/// `input_content` names, in key order.
pub fn kept_apart(sources: &Sources) -> Vec<&'static str> {
    INPUT_NAMES
        .into_iter()
        .filter(|name| source_named(sources, name).is_some_and(|s| s.text.len() >= KEEP_APART_FROM))
        .collect()
}

/// The four inputs' names in `input_content`, in key order.
const INPUT_NAMES: [&str; 4] = ["cost", "metrics", "policies", "slos"];

/// The source `input_content` names `name`.
pub fn source_named<'a>(sources: &'a Sources, name: &str) -> Option<&'a Source> {
    match name {
        "cost" => Some(&sources.cost),
        "metrics" => Some(&sources.metrics),
        "policies" => Some(&sources.policies),
        "slos" => Some(&sources.slos),
        _ => None,
    }
}

/// The full text of the four inputs a decision was made from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(default)]
pub struct InputContent {
    /// Policies.
    pub policies: String,
    /// SLO spec.
    pub slos: String,
    /// Metrics.
    pub metrics: String,
    /// Cost.
    pub cost: String,
    /// The inputs (`policies`, `slos`, `metrics`, `cost`) whose text is not in the record but
    /// kept apart by the store under the SHA-256 the record's `inputs` gives
    /// ([`KEEP_APART_FROM`]); their fields above are absent (empty) until
    /// [`DecisionRecordBody::fill_kept_apart`] reads them back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_apart: Vec<String>,
}

/// [`Settings`] as recorded (`settings` of a deploy record): read back by `replay`.
/// Its serialisation is `Settings`' own, so a record's settings re-encode to the same bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(default)]
pub struct SettingsBody {
    /// Cost trend thresholds.
    pub cost: CostThresholdsBody,
    /// Maximum age of `collected_at` in seconds, if any.
    pub max_age: Option<i64>,
    /// Evaluation time (RFC 3339).
    pub now: String,
    /// The selected service.
    pub service: Option<String>,
    /// The cost file's layout when given (`native`, `focus`, `aws-ce`).
    pub cost_format: Option<String>,
    /// The SLO selected by name; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_name: Option<String>,
    /// The billing export's rows of the application (`KEY=VALUE`); absent: every row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_tag: Option<String>,
    /// The billing export's provider service; absent: every service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_service: Option<String>,
}

/// The cost thresholds as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(default)]
pub struct CostThresholdsBody {
    /// Week-over-week % at which spend is rising.
    pub warn_pct: Option<f64>,
    /// Week-over-week % at which spend is spiking.
    pub block_pct: Option<f64>,
    /// Week-over-week % at or below which spend is falling.
    pub falling_pct: Option<f64>,
    /// The anomaly baseline in days; absent in records from before the anomaly score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly_baseline_days: Option<u32>,
}

/// The body of a `deploy_simulation` record (`POST /api/simulate`): the decision with the
/// signal values that replaced the measured ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(default)]
pub struct SimulationRecordBody {
    /// The decision, as a `deploy_decision` records it.
    #[serde(flatten)]
    pub decision: DecisionRecordBody,
    /// The replaced signal values, by name.
    pub simulated_signals: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The body of a `deploy_error` record: a run that could not decide. Serialises to exactly
/// the keys such records have always had (`settings: null` when unresolved; `requested_by`
/// only when someone authenticated asked), so their canonical bytes are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(default)]
pub struct ErrorRecordBody {
    /// Always `error`.
    pub outcome: String,
    /// Always 3 ([`crate::exit::Exit::CannotDecide`]).
    pub exit_code: u8,
    /// Every problem found.
    pub errors: Vec<String>,
    /// The inputs' paths and digests.
    pub inputs: Vec<InputDigest>,
    /// When, with what settings (when they could be resolved), for whom, by which version.
    #[serde(flatten)]
    pub run: RecordedRun,
}

/// What every deploy record holds about the run that wrote it (flattened into the body).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(default)]
pub struct RecordedRun {
    /// Thresholds, maximum age, evaluation time (`null` when they could not be resolved).
    pub settings: Option<SettingsBody>,
    /// RFC 3339 time of the evaluation (or of the attempt).
    pub evaluated_at: String,
    /// CI context.
    pub ci: CiContext,
    /// `guardrail X.Y.Z`.
    pub tool: String,
    /// Who asked, when an authenticated caller did (`POST /api/gate`, MCP); absent for the CLI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<crate::decide::RequestedBy>,
}

fn tool() -> String {
    format!("guardrail {}", env!("CARGO_PKG_VERSION"))
}

impl ErrorRecordBody {
    /// The body for `undecided`, attempted at `at`.
    pub fn new(
        undecided: &crate::decide::Undecided,
        ci: &CiContext,
        at: &str,
        requested_by: Option<&crate::decide::RequestedBy>,
    ) -> ErrorRecordBody {
        ErrorRecordBody {
            outcome: "error".into(),
            exit_code: crate::exit::Exit::CannotDecide.code(),
            errors: undecided.messages(),
            inputs: undecided.digests.clone(),
            run: RecordedRun {
                settings: undecided.settings.as_deref().map(SettingsBody::of),
                evaluated_at: at.to_string(),
                ci: ci.clone(),
                tool: tool(),
                requested_by: requested_by.cloned(),
            },
        }
    }
}

/// The file name of a recorded path (what the audit views show instead of the path).
fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

impl SimulationRecordBody {
    /// The body as the audit views show it ([`DecisionRecordBody::shown`]).
    pub fn shown(&self) -> SimulationRecordBody {
        SimulationRecordBody { decision: self.decision.shown(), simulated_signals: self.simulated_signals.clone() }
    }
}

impl ErrorRecordBody {
    /// The body as the audit views show it: each input's file name instead of its path.
    pub fn shown(&self) -> ErrorRecordBody {
        let inputs = self.inputs.iter().map(|d| InputDigest { path: file_name(&d.path), ..d.clone() }).collect();
        ErrorRecordBody { inputs, ..self.clone() }
    }
}

impl DecisionRecordBody {
    /// The body of a decision reported as `out`, made from `sources`.
    pub fn new(out: &GateView<'_>, sources: &Sources) -> DecisionRecordBody {
        DecisionRecordBody {
            verdict: Verdict {
                action: Some(out.action),
                policy_id: out.policy_id.to_string(),
                policy_name: out.policy_name.to_string(),
                reason: out.reason.to_string(),
                remediation: out.remediation.to_string(),
                delay_minutes: out.delay_minutes,
                retry_after: out.retry_after.clone(),
                decided_by: encode(&out.decided_by),
                conditions: encode(out.conditions),
                trace: encode(out.trace),
                signals: encode(out.signals),
                slo: encode(out.slo),
                cost: encode(out.cost),
            },
            evaluated_policies: encode(&out.evaluated_policies),
            exit_code: out.exit_code.code(),
            counterfactual: encode(&out.counterfactual),
            freeze: encode(out.freeze),
            inputs: Some(out.inputs.clone()),
            warnings: out.warnings.to_vec(),
            run: RecordedRun {
                settings: Some(SettingsBody::of(out.settings)),
                evaluated_at: out.evaluated_at.clone(),
                ci: out.ci.clone(),
                tool: out.tool.clone(),
                requested_by: out.requested_by.cloned(),
            },
            outcome: "decided".into(),
            input_content: Some(InputContent {
                policies: sources.policies.text.clone(),
                slos: sources.slos.text.clone(),
                metrics: sources.metrics.text.clone(),
                cost: sources.cost.text.clone(),
                kept_apart: Vec::new(),
            }),
        }
    }

    /// [`DecisionRecordBody::new`], encoded as it is appended: the same JSON value (a test
    /// checks it), serialised once from the decision's own types instead of through the
    /// per-field JSON values of [`DecisionRecordBody`], and with one copy of the inputs' text
    /// instead of two (at 10,000 rules the policy text is megabytes).
    pub fn encode(out: &GateView<'_>, sources: &Sources) -> serde_json::Value {
        let settings = SettingsBody::of(out.settings);
        let body = BodyRef {
            verdict: VerdictRef {
                action: Some(out.action),
                policy_id: out.policy_id,
                policy_name: out.policy_name,
                reason: out.reason,
                remediation: out.remediation,
                delay_minutes: out.delay_minutes,
                retry_after: &out.retry_after,
                decided_by: &out.decided_by,
                conditions: out.conditions,
                trace: out.trace,
                signals: out.signals,
                slo: out.slo,
                cost: out.cost,
            },
            evaluated_policies: &out.evaluated_policies,
            exit_code: out.exit_code.code(),
            counterfactual: &out.counterfactual,
            freeze: out.freeze,
            inputs: &out.inputs,
            warnings: out.warnings,
            run: RunRef {
                settings: &settings,
                evaluated_at: &out.evaluated_at,
                ci: out.ci,
                tool: &out.tool,
                requested_by: out.requested_by,
            },
            outcome: "decided",
            input_content: ContentRef::inline(sources),
        };
        encode(&body)
    }

    /// [`DecisionRecordBody::encode`] as its canonical text (what the store keeps and the chain
    /// hashes: `serde_json::to_string` of that value), written straight from the decision's
    /// types without the value ([`guardrail_core::canonical_json`]). An error only for a value
    /// the canonical writer does not take (none of a decision's): the caller encodes the value.
    pub fn encode_text(out: &GateView<'_>, sources: &Sources) -> Result<String, guardrail_core::canonical_json::Error> {
        DecisionRecordBody::with_text_writer(out, sources, &[], |body, capacity| {
            guardrail_core::canonical_json::to_string_with_capacity(body, capacity)
        })
    }

    /// [`DecisionRecordBody::encode_text`], and the record's hash state up to the end of the
    /// body, hashed on another thread while the text is written ([`BodyHead::encode`]).
    /// The inputs `kept_apart` names ([`kept_apart`]) are left out of the text and named in its
    /// `input_content.kept_apart`: the store must keep them ([`guardrail_store::AuditStore::keep_inputs`]).
    pub fn encode_text_hashed(
        out: &GateView<'_>,
        sources: &Sources,
        kept_apart: &[&'static str],
    ) -> Result<(String, BodyHead), guardrail_core::canonical_json::Error> {
        DecisionRecordBody::with_text_writer(out, sources, kept_apart, |body, capacity| {
            BodyHead::encode(body, capacity)
        })
    }

    /// `write` given the body in key order (without the inputs `kept_apart` names) and the
    /// capacity its text needs.
    fn with_text_writer<R>(
        out: &GateView<'_>,
        sources: &Sources,
        kept_apart: &[&'static str],
        write: impl FnOnce(&SortedBodyRef<'_>, usize) -> R,
    ) -> R {
        let settings = SettingsBody::of(out.settings);
        let body = SortedBodyRef {
            action: Some(out.action),
            ci: out.ci,
            conditions: out.conditions,
            cost: out.cost,
            counterfactual: &out.counterfactual,
            decided_by: &out.decided_by,
            delay_minutes: out.delay_minutes,
            evaluated_at: &out.evaluated_at,
            evaluated_policies: &out.evaluated_policies,
            exit_code: out.exit_code.code(),
            freeze: out.freeze,
            input_content: ContentRef::without(sources, kept_apart),
            inputs: &out.inputs,
            outcome: "decided",
            policy_id: out.policy_id,
            policy_name: out.policy_name,
            reason: out.reason,
            remediation: out.remediation,
            requested_by: out.requested_by,
            retry_after: &out.retry_after,
            settings: &settings,
            signals: out.signals,
            slo: out.slo,
            tool: &out.tool,
            trace: out.trace,
            warnings: out.warnings,
        };
        // The inputs' text (escaped: a little longer) and a few hundred bytes a rule for the two
        // traces: one allocation for the whole text.
        let texts = [
            ("policies", &sources.policies),
            ("slos", &sources.slos),
            ("metrics", &sources.metrics),
            ("cost", &sources.cost),
        ]
        .iter()
        .filter(|(name, _)| !kept_apart.contains(name))
        .map(|(_, s)| s.text.len())
        .sum::<usize>();
        let capacity = texts + texts / 8 + out.trace.len() * 640 + (64 << 10);
        write(&body, capacity)
    }

    /// The body as the audit views show it (`GET /api/audit`): without the inputs' full text,
    /// and with each input's file name instead of its path.
    pub fn shown(&self) -> DecisionRecordBody {
        let mut shown = DecisionRecordBody { input_content: None, ..self.clone() };
        if let Some(inputs) = shown.inputs.as_mut() {
            for d in [&mut inputs.policies, &mut inputs.slos, &mut inputs.metrics, &mut inputs.cost] {
                *d = InputDigest { path: file_name(&d.path), ..d.clone() };
            }
        }
        shown
    }

    /// Reads back the text of the inputs the record names in `input_content.kept_apart`, by the
    /// SHA-256 its `inputs` gives, with `read` (the store's [`guardrail_store::AuditStore::kept_input`]);
    /// [`DecisionRecordBody::sources`] then checks each digest as for text in the record.
    /// A record without kept inputs is left as it is.
    pub fn fill_kept_apart<E>(
        &mut self,
        mut read: impl FnMut(&str) -> Result<Option<String>, E>,
    ) -> Result<(), KeptInputError<E>> {
        let (Some(inputs), Some(content)) = (&self.inputs, self.input_content.as_mut()) else {
            return Ok(());
        };
        for name in std::mem::take(&mut content.kept_apart) {
            let (digest, slot) = match name.as_str() {
                "policies" => (&inputs.policies, &mut content.policies),
                "slos" => (&inputs.slos, &mut content.slos),
                "metrics" => (&inputs.metrics, &mut content.metrics),
                "cost" => (&inputs.cost, &mut content.cost),
                _ => return Err(KeptInputError::UnknownInput { name }),
            };
            let Some(sha256) = digest.sha256.as_deref() else {
                return Err(KeptInputError::NoDigest { name });
            };
            match read(sha256) {
                Ok(Some(text)) => *slot = text,
                Ok(None) => return Err(KeptInputError::Missing { name, sha256: sha256.to_string() }),
                Err(source) => return Err(KeptInputError::Store { name, source }),
            }
        }
        Ok(())
    }

    /// Rebuilds the sources recorded in the decision (checking each digest).
    pub fn sources(&self) -> Result<Sources, RecordError> {
        let (Some(inputs), Some(content)) = (&self.inputs, &self.input_content) else {
            let missing = if self.inputs.is_none() { "inputs.policies.path" } else { "input_content.policies" };
            return Err(RecordError::Missing { field: missing.into() });
        };
        let one = |name: &'static str, digest: &InputDigest, text: &str| -> Result<Source, RecordError> {
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
            if digest.sha256.as_deref() != Some(sha.as_str()) {
                return Err(RecordError::DigestMismatch { input: name });
            }
            Ok(Source { path: digest.path.clone().into(), text: text.to_string(), sha256: sha })
        };
        Ok(Sources {
            policies: one("policies", &inputs.policies, &content.policies)?,
            slos: one("slos", &inputs.slos, &content.slos)?,
            metrics: one("metrics", &inputs.metrics, &content.metrics)?,
            cost: one("cost", &inputs.cost, &content.cost)?,
        })
    }

    /// The service the decision's signals are for (the SLO block's `details.service`), when the
    /// record names one.
    pub fn service(&self) -> Option<String> {
        /// The part of the SLO block ([`SloReport`]) that names the service.
        #[derive(serde::Deserialize)]
        struct Slo {
            details: Details,
        }
        #[derive(serde::Deserialize)]
        struct Details {
            service: String,
        }
        decode::<Slo>(&self.verdict.slo).ok().map(|s| s.details.service)
    }

    /// The parts of the decision that must be identical on replay, as recorded.
    pub fn fingerprint(&self) -> &Verdict {
        &self.verdict
    }
}

/// The decision and the values it was decided on: the parts of a decision that must be
/// identical on replay (and that tell the server's dashboard the decision changed). Flattened
/// into [`DecisionRecordBody`]: the field names are the record's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(default)]
pub struct Verdict {
    /// ALLOW, WARN, DELAY or BLOCK (`null` only in a record that lacks it).
    #[serde(with = "action_name")]
    #[schemars(with = "Option<Action>")]
    pub action: Option<Action>,
    /// Winning rule id.
    pub policy_id: String,
    /// Winning rule name.
    pub policy_name: String,
    /// Why.
    pub reason: String,
    /// What to do.
    pub remediation: String,
    /// Minutes to wait (DELAY only).
    pub delay_minutes: u32,
    /// When to ask again (DELAY only).
    pub retry_after: Option<String>,
    /// `rule` or `default` ([`DecidedBy`](guardrail_core::policy::DecidedBy)).
    pub decided_by: serde_json::Value,
    /// The winning rule's conditions ([`ConditionOutcome`](guardrail_core::policy::ConditionOutcome)s).
    pub conditions: serde_json::Value,
    /// Every rule and why it matched or not ([`RuleTrace`](guardrail_core::policy::RuleTrace)s).
    pub trace: serde_json::Value,
    /// Every signal value ([`Signals`]).
    pub signals: serde_json::Value,
    /// The SLO block ([`SloReport`]).
    pub slo: serde_json::Value,
    /// The cost block ([`CostReport`]).
    pub cost: serde_json::Value,
}

impl Verdict {
    /// The names of the fields that differ from `other`'s, in alphabetical order (as `replay`
    /// has always listed them).
    pub fn differing(&self, other: &Verdict) -> Vec<&'static str> {
        let same = [
            ("action", self.action == other.action),
            ("conditions", self.conditions == other.conditions),
            ("cost", self.cost == other.cost),
            ("decided_by", self.decided_by == other.decided_by),
            ("delay_minutes", self.delay_minutes == other.delay_minutes),
            ("policy_id", self.policy_id == other.policy_id),
            ("policy_name", self.policy_name == other.policy_name),
            ("reason", self.reason == other.reason),
            ("remediation", self.remediation == other.remediation),
            ("retry_after", self.retry_after == other.retry_after),
            ("signals", self.signals == other.signals),
            ("slo", self.slo == other.slo),
            ("trace", self.trace == other.trace),
        ];
        same.into_iter().filter(|(_, same)| !same).map(|(name, _)| name).collect()
    }
}

impl SettingsBody {
    /// The settings as a record holds them: `Settings`' own serialisation (durations in
    /// seconds, the cost tag as `KEY=VALUE`, the layout by its `--cost-format` name), which a test
    /// checks field for field.
    pub fn of(s: &Settings) -> SettingsBody {
        SettingsBody {
            cost: CostThresholdsBody {
                warn_pct: Some(s.cost.warn_pct),
                block_pct: Some(s.cost.block_pct),
                falling_pct: Some(s.cost.falling_pct),
                anomaly_baseline_days: Some(s.cost.anomaly_baseline_days),
            },
            max_age: s.max_age.map(|d| d.as_secs()),
            now: s.now.to_string(),
            service: s.service.clone(),
            cost_format: s.cost_format.map(|f| f.as_str().to_string()),
            slo_name: s.slo_name.clone(),
            cost_tag: s.cost_tag.as_ref().map(|t| t.to_string()),
            cost_service: s.cost_service.clone(),
        }
    }

    /// The settings a decision was made with.
    pub fn to_settings(&self) -> Result<Settings, RecordError> {
        // The field paths as `replay` has always named them.
        let missing = |field: &str| RecordError::Missing { field: format!("settings{field}") };
        let bad = |field: &str, reason: String| RecordError::Invalid { field: format!("settings.{field}"), reason };
        let c = &self.cost;
        if self.now.is_empty() {
            return Err(missing(".now"));
        }
        let now = self.now.parse::<jiff::Timestamp>().map_err(|e| bad("now", e.to_string()))?;
        Ok(Settings {
            cost: guardrail_core::cost::CostThresholds {
                warn_pct: c.warn_pct.ok_or_else(|| missing("/cost/warn_pct"))?,
                block_pct: c.block_pct.ok_or_else(|| missing("/cost/block_pct"))?,
                falling_pct: c.falling_pct.ok_or_else(|| missing("/cost/falling_pct"))?,
                // Records from before the anomaly score have no baseline: the default then.
                anomaly_baseline_days: c.anomaly_baseline_days.unwrap_or(guardrail_core::cost::DEFAULT_BASELINE_DAYS),
            },
            max_age: self.max_age.map(jiff::SignedDuration::from_secs),
            now,
            service: self.service.clone(),
            slo_name: self.slo_name.clone(),
            cost_format: match &self.cost_format {
                None => None,
                Some(f) => {
                    Some(f.parse::<guardrail_config::CostFormat>().map_err(|e| bad("cost_format", e.to_string()))?)
                }
            },
            // The rows the decision was made from: a record without them read every row.
            cost_tag: match &self.cost_tag {
                None => None,
                Some(t) => Some(t.parse::<guardrail_config::CostTag>().map_err(|e| bad("cost_tag", e.to_string()))?),
            },
            cost_service: self.cost_service.clone(),
        })
    }
}

/// A deploy record that cannot be replayed: what it lacks or holds wrongly. The messages are
/// those `guardrail replay` has always printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The body does not decode as a deploy record.
    #[error("record body: {reason}")]
    Body {
        /// serde's message.
        reason: String,
    },
    /// A field the replay needs is missing.
    #[error("record has no {field}")]
    Missing {
        /// The field's path (`settings.now`, `input_content.slos`, `settings/cost/warn_pct`).
        field: String,
    },
    /// A field holds a value that does not parse.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field's path.
        field: String,
        /// Why.
        reason: String,
    },
    /// An input's recorded text does not hash to its recorded digest.
    #[error("recorded content of {input} does not match its recorded sha256")]
    DigestMismatch {
        /// `policies`, `slos`, `metrics` or `cost`.
        input: &'static str,
    },
}

/// Decodes a `deploy_decision` (or `deploy_simulation`) body.
pub fn decode_decision(body: &serde_json::Value) -> Result<DecisionRecordBody, RecordError> {
    decode(body).map_err(|e| RecordError::Body { reason: e.to_string() })
}

/// The parts of a decision that must be identical on replay, of a decision's JSON (a record
/// body or an output); `null` for what it lacks.
pub fn fingerprint(body: &serde_json::Value) -> serde_json::Value {
    match decode_decision(body) {
        Ok(b) => encode(b.fingerprint()),
        Err(_) => serde_json::Value::Null,
    }
}

/// `action` as its upper-case name; `null` when absent. Reading is strict: a record's action is
/// one of the four or the record is not a deploy decision this version can read.
mod action_name {
    use guardrail_core::policy::Action;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(a: &Option<Action>, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Some(a) => s.serialize_str(a.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Action>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(name) => Action::parse(&name)
                .filter(|a| a.as_str() == name)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown action {name:?}"))),
        }
    }
}

/// `guardrail replay` of a `deploy_decision`: the recorded decision re-evaluated from its own
/// inputs and settings, and which of its [`Verdict`] fields differ. `--format json` prints
/// it (the fields in the order they always had).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ReplayView {
    /// The fields that differ (empty when identical).
    pub differing_fields: Vec<&'static str>,
    /// Whether the replayed decision is identical.
    pub identical: bool,
    /// The record's id.
    pub record: String,
    /// The recorded action.
    #[serde(with = "action_name")]
    #[schemars(with = "Option<Action>")]
    pub recorded_action: Option<Action>,
    /// The action decided now.
    pub replayed_action: Action,
    /// The rule that decided now (the text report names it).
    #[serde(skip)]
    pub replayed_policy_id: String,
}

/// Why the text of an input a record keeps apart ([`DecisionRecordBody::fill_kept_apart`]) could
/// not be read back.
#[derive(Debug, thiserror::Error)]
pub enum KeptInputError<E> {
    /// `kept_apart` names something that is not one of the four inputs.
    #[error("input_content.kept_apart names {name:?}, which is not an input (policies, slos, metrics, cost)")]
    UnknownInput {
        /// The name.
        name: String,
    },
    /// The record gives no digest for an input it keeps apart.
    #[error("input_content.kept_apart names {name}, but inputs.{name}.sha256 is absent")]
    NoDigest {
        /// The input.
        name: String,
    },
    /// The store holds no text under the digest.
    #[error("the {name} text this record keeps apart (sha256 {sha256}) is not in the store")]
    Missing {
        /// The input.
        name: String,
        /// Its digest.
        sha256: String,
    },
    /// The store could not be read.
    #[error("reading the {name} text this record keeps apart: {source}")]
    Store {
        /// The input.
        name: String,
        /// Why.
        source: E,
    },
}

/// Why a recorded decision cannot be replayed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    /// The record lacks what the replay needs, or holds it wrongly.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The recorded inputs cannot decide with this version.
    #[error(transparent)]
    Problem(#[from] Problem),
}

/// Re-evaluates the decision recorded as `record` (its id) with `body`. Errors: everything the
/// record lacks, or every reason its inputs cannot decide now.
pub fn replay(record: String, body: &DecisionRecordBody) -> Result<ReplayView, Vec<ReplayError>> {
    let settings = body.run.settings.as_ref().ok_or(RecordError::Missing { field: "settings".into() });
    let (sources, settings) = match (body.sources(), settings.and_then(SettingsBody::to_settings)) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => return Err([a.err(), b.err()].into_iter().flatten().map(ReplayError::from).collect()),
    };
    // From the recorded text, never from a cache: a replay checks what the record holds.
    let ev = Prepared::from_text(sources, settings)
        .into_evaluation()
        .map_err(|ps| ps.into_iter().map(ReplayError::from).collect::<Vec<_>>())?;
    // WARN exited 1 only with --fail-on-warn: the recorded exit code says whether it was given.
    let fail_on_warn = body.exit_code == 1 && ev.decision.action == Action::Warn;
    let now = DecisionRecordBody::new(&output(&ev, &body.run.ci, fail_on_warn), &ev.sources).verdict;
    let differing_fields = now.differing(body.fingerprint());
    Ok(ReplayView {
        identical: differing_fields.is_empty(),
        differing_fields,
        record,
        recorded_action: body.verdict.action,
        replayed_action: ev.decision.action,
        replayed_policy_id: ev.decision.policy_id.clone(),
    })
}
