//! One deploy decision: load the snapshot, evaluate, shape the output and the audit record.

use guardrail_config::{Source, SourceMap};
use guardrail_core::cost::{self, CostReport};
use guardrail_core::freeze::TimeWindow;
use guardrail_core::freshness;
use guardrail_core::policy::{
    self, Action, ConditionOutcome, Counterfactual, DecidedBy, Decision, PolicySet, RuleTrace,
};
use guardrail_core::signals::Signals;
use guardrail_core::slo::{self, SloReport};
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

fn located(src: &Source, map: &SourceMap, field: &str, reason: &str) -> String {
    match map.locate(field) {
        Some((line, col)) if line > 0 => format!("{}:{line}:{col}: {field}: {reason}", src.path.display()),
        _ => format!("{}: {field}: {reason}", src.path.display()),
    }
}

fn errors_of(errs: Vec<guardrail_config::ConfigError>) -> Vec<String> {
    errs.into_iter().map(|e| e.to_string()).collect()
}

/// SLO block from the SLO spec and a metrics snapshot, with the freshness check. When the SLO
/// file has a `prometheus:` block, `metrics` is the Prometheus snapshot taken by
/// `inputs::read_metrics` and the burn rates come from `guardrail_core::burn`.
pub fn evaluate_slo(slos: &Source, metrics: &Source, settings: &Settings) -> Result<SloReport, Vec<String>> {
    match crate::inputs::live_source(slos, settings.service.as_deref(), settings.slo_name.as_deref())
        .map_err(errors_of)?
    {
        Some(crate::inputs::LiveSource::Block(prom)) => {
            let spec = guardrail_config::load_slos(slos).map_err(errors_of)?;
            return evaluate_live_slo(slos, metrics, settings, &spec.value, &prom.value.burn, &prom.map);
        }
        Some(crate::inputs::LiveSource::Spec(s)) => {
            return evaluate_live_slo(slos, metrics, settings, &s.value.slo, &s.value.prometheus.burn, &s.map);
        }
        None => {}
    }
    let spec = guardrail_config::load_slos(slos).map_err(errors_of);
    let snap = guardrail_config::load_metrics(metrics).map_err(errors_of);
    let (spec, snap) = match (spec, snap) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let mut errs = a.err().unwrap_or_default();
            errs.extend(b.err().unwrap_or_default());
            return Err(errs);
        }
    };
    if let Err(e) = freshness::check(snap.value.collected_at, settings.now, settings.max_age) {
        return Err(vec![located(metrics, &snap.map, "collected_at", &e)]);
    }
    if let Err(e) = spec.value.validate() {
        return Err(vec![located(slos, &spec.map, &e.field, &e.reason)]);
    }
    slo::evaluate(&spec.value, &snap.value).map_err(|e| vec![located(metrics, &snap.map, &e.field, &e.reason)])
}

fn evaluate_live_slo(
    slos: &Source,
    metrics: &Source,
    settings: &Settings,
    spec: &guardrail_core::slo::SloSpec,
    burn: &guardrail_core::burn::BurnConfig,
    map: &SourceMap,
) -> Result<SloReport, Vec<String>> {
    let bad = |e: String| {
        vec![format!(
            "{}: {e} (the SLO file names a Prometheus source, so the metrics input must be the snapshot the gate fetched)",
            metrics.path.display()
        )]
    };
    let obs = guardrail_prometheus::Snapshot::from_json(&metrics.text).and_then(|s| s.to_observation()).map_err(bad)?;
    if let Err(e) = freshness::check(Some(obs.evaluated_at), settings.now, settings.max_age) {
        return Err(vec![format!("{}: evaluated_at: {e}", metrics.path.display())]);
    }
    guardrail_core::burn::evaluate(spec, burn, &obs).map_err(|e| vec![located(slos, map, &e.field, &e.reason)])
}

/// Cost block from a cost series, with the freshness check.
pub fn evaluate_cost(cost_src: &Source, settings: &Settings) -> Result<CostReport, Vec<String>> {
    let series = guardrail_config::load_cost_as(cost_src, settings.cost_format, &settings.cost_selection())
        .map_err(errors_of)?;
    if let Err(e) = freshness::check(series.value.collected_at, settings.now, settings.max_age) {
        return Err(vec![located(cost_src, &series.map, "collected_at", &e)]);
    }
    cost::analyse(&series.value, &settings.cost).map_err(|e| {
        if e.field == "thresholds" {
            vec![format!("cost thresholds: {}", e.reason)]
        } else {
            vec![located(cost_src, &series.map, &e.field, &e.reason)]
        }
    })
}

/// Loads and validates a policy set and its freeze/maintenance windows (one parse); errors
/// include every lint error found.
pub fn load_policies(src: &Source) -> Result<(PolicySet, Vec<TimeWindow>, Vec<String>), Vec<String>> {
    let load = guardrail_config::load_policies(src);
    let (errors, warnings): (Vec<_>, Vec<_>) =
        load.findings.iter().partition(|f| f.severity == guardrail_core::policy::Severity::Error);
    let warnings: Vec<String> = warnings.iter().map(|f| f.to_string()).collect();
    if !errors.is_empty() {
        return Err(errors.iter().map(|f| f.to_string()).collect());
    }
    match load.set {
        Some(set) => Ok((set, load.windows, warnings)),
        None => Err(vec![format!("{}: the policy file could not be read as a policy set", src.path.display())]),
    }
}

/// Evaluates a full snapshot. Every problem found is reported, not just the first.
pub fn evaluate(sources: Sources, settings: Settings) -> Result<Evaluation, Vec<String>> {
    let policies = load_policies(&sources.policies);
    let slo = evaluate_slo(&sources.slos, &sources.metrics, &settings);
    let cost = evaluate_cost(&sources.cost, &settings);
    let ((policies, windows, warnings), slo, cost) = match (policies, slo, cost) {
        (Ok(p), Ok(s), Ok(c)) => (p, s, c),
        (p, s, c) => {
            let mut errs = p.err().unwrap_or_default();
            errs.extend(s.err().unwrap_or_default());
            errs.extend(c.err().unwrap_or_default());
            return Err(errs);
        }
    };
    // Signals from two services would decide one deploy on another's health: a wrong file,
    // never a decision. "unknown" (no `service` key, as the seed allowed; a billing export
    // without --cost-tag, whose rows name no application) matches anything.
    if slo.details.service != cost.service && slo.details.service != "unknown" && cost.service != "unknown" {
        let cost_side = match &settings.cost_tag {
            Some(tag) => format!("the cost rows tagged {tag} (--cost-tag) are for {:?}", cost.service),
            None => format!("the cost data is for {:?}", cost.service),
        };
        return Err(vec![format!(
            "{}: service: {cost_side} but the metrics ({}) are for {:?}; point both at the same service",
            sources.cost.path.display(),
            sources.metrics.path.display(),
            slo.details.service
        )]);
    }
    let mut signals = Signals::from_reports(&slo, &cost);
    let freeze = guardrail_core::freeze::status(&windows, settings.now);
    guardrail_core::freeze::apply(&freeze, &mut signals);
    // When the SLO signals could not be read, say why (the URL and the error of each failed
    // query, e.g. a refused TLS certificate) next to the rule that cannot decide on them.
    let decision = decide(&policies, &signals).map_err(|e| {
        let mut msg = format!("{}: {e}", sources.policies.path.display());
        if let Some(r) = slo.prometheus.as_ref().filter(|r| !r.no_data_reasons.is_empty()) {
            msg.push_str(&format!("\n  no data because: {}", r.no_data_reasons.join("; ")));
        }
        vec![msg]
    })?;
    Ok(Evaluation { sources, settings, policies, warnings, slo, cost, signals, decision, freeze })
}

/// The decision for a set of signal values: the policies' first match, refused when it would
/// let a deploy through on data that could not be read. [`evaluate`] decides with this, and so
/// does every adapter that decides on other signal values (the server's what-if simulation).
pub fn decide(policies: &PolicySet, signals: &Signals) -> Result<Decision, String> {
    let decision = policy::evaluate(policies, signals).map_err(|e| e.to_string())?;
    // No data or too few events never lets a deploy through unless a rule says so.
    guardrail_core::burn::check_decision(signals, &decision)?;
    Ok(decision)
}

/// The seed tool's trace entry (`evaluated_policies`).
#[derive(Debug, Clone, Serialize)]
pub struct SeedTrace<'a> {
    /// Rule id.
    pub id: &'a str,
    /// Rule name.
    pub name: &'a str,
    /// Whether it matched.
    pub matched: bool,
    /// Its action.
    pub action: Action,
}

/// Counterfactual block.
#[derive(Debug, Clone, Serialize)]
pub struct CounterfactualOut<'a> {
    /// One line, e.g. `ALLOW needs error_budget_pct >= 30; now 18.98`.
    pub summary: String,
    /// Per rule.
    pub rules: &'a [Counterfactual],
}

/// The four inputs' digests.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct InputsOut {
    /// Policies.
    pub policies: InputDigest,
    /// SLO spec.
    pub slos: InputDigest,
    /// Metrics.
    pub metrics: InputDigest,
    /// Cost.
    pub cost: InputDigest,
}

/// Where the decision was recorded.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRef {
    /// Record id (`seq-hashprefix`).
    pub id: String,
    /// Sequence number.
    pub seq: i64,
    /// Record hash.
    pub hash: String,
    /// Store description.
    pub store: String,
}

/// `--format json` output and the core of the audit record. The first fields are the seed
/// tool's decision keys in its order.
#[derive(Debug, Clone, Serialize)]
pub struct GateOutput<'a> {
    /// ALLOW, WARN, DELAY or BLOCK.
    pub action: Action,
    /// Winning rule id.
    pub policy_id: &'a str,
    /// Winning rule name.
    pub policy_name: &'a str,
    /// Why.
    pub reason: &'a str,
    /// What to do.
    pub remediation: &'a str,
    /// Minutes to wait (DELAY only).
    pub delay_minutes: u32,
    /// Seed-compatible trace.
    pub evaluated_policies: Vec<SeedTrace<'a>>,
    /// SLO block.
    pub slo: &'a SloReport,
    /// Cost block.
    pub cost: &'a CostReport,
    /// When to ask again (DELAY only).
    pub retry_after: Option<String>,
    /// The process exit code for this decision.
    pub exit_code: crate::exit::Exit,
    /// Rule or default action.
    pub decided_by: DecidedBy,
    /// Winning rule's conditions with the compared values.
    pub conditions: &'a [ConditionOutcome],
    /// Every rule, matched or not, and why.
    pub trace: &'a [RuleTrace],
    /// What would change a non-ALLOW outcome.
    pub counterfactual: Option<CounterfactualOut<'a>>,
    /// Every signal value.
    pub signals: &'a Signals,
    /// Active freeze and maintenance windows.
    pub freeze: &'a guardrail_core::freeze::FreezeStatus,
    /// Input paths and digests.
    pub inputs: InputsOut,
    /// Thresholds, maximum age, evaluation time.
    pub settings: &'a Settings,
    /// Policy lint warnings.
    pub warnings: &'a [String],
    /// RFC 3339 evaluation time.
    pub evaluated_at: String,
    /// CI context.
    pub ci: &'a CiContext,
    /// `guardrail X.Y.Z`.
    pub tool: String,
    /// Audit record, once written.
    pub audit: Option<AuditRef>,
    /// Who asked, when an authenticated caller did (`POST /api/gate`, MCP); absent for the CLI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<&'a crate::decide::RequestedBy>,
}

/// Builds the output for an evaluation.
pub fn output<'a>(ev: &'a Evaluation, ci: &'a CiContext, fail_on_warn: bool) -> GateOutput<'a> {
    let d = &ev.decision;
    let retry_after = (d.action == Action::Delay).then(|| {
        let t = ev.settings.now + jiff::SignedDuration::from_mins(i64::from(d.delay_minutes));
        t.to_string()
    });
    GateOutput {
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
        tool: format!("guardrail {}", env!("CARGO_PKG_VERSION")),
        audit: None,
        requested_by: None,
    }
}

/// Kind of audit record written by the gate.
pub const RECORD_KIND: &str = "deploy_decision";
/// Kind of audit record written when the gate could not decide.
pub const ERROR_KIND: &str = "deploy_error";

/// The audit body for a decision: the output plus the inputs' full text, so that `replay`
/// can re-evaluate exactly what was decided.
pub fn audit_body(out: &GateOutput<'_>, sources: &Sources) -> serde_json::Value {
    let mut body = serde_json::to_value(out).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = body.as_object_mut() {
        obj.remove("audit");
        obj.insert("outcome".into(), "decided".into());
        let content = serde_json::json!({
            "policies": sources.policies.text,
            "slos": sources.slos.text,
            "metrics": sources.metrics.text,
            "cost": sources.cost.text,
        });
        obj.insert("input_content".into(), content);
    }
    body
}

/// The body of a `deploy_error` record: a run that could not decide. Serialises to exactly
/// the keys such records have always had (`settings: null` when unresolved; `requested_by`
/// only when someone authenticated asked), so their canonical bytes are unchanged.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRecordBody<'a> {
    /// Always `error`.
    pub outcome: &'static str,
    /// Always [`crate::exit::Exit::CannotDecide`].
    pub exit_code: crate::exit::Exit,
    /// Every problem found.
    pub errors: &'a [String],
    /// The inputs' paths and digests.
    pub inputs: &'a [InputDigest],
    /// The settings, when they could be resolved.
    pub settings: Option<&'a Settings>,
    /// RFC 3339 time of the attempt.
    pub evaluated_at: &'a str,
    /// CI context.
    pub ci: &'a CiContext,
    /// `guardrail X.Y.Z`.
    pub tool: String,
    /// Who asked, when an authenticated caller did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<&'a crate::decide::RequestedBy>,
}

impl<'a> ErrorRecordBody<'a> {
    /// The body for `undecided`, attempted at `at`.
    pub fn new(
        undecided: &'a crate::decide::Undecided,
        ci: &'a CiContext,
        at: &'a str,
        requested_by: Option<&'a crate::decide::RequestedBy>,
    ) -> ErrorRecordBody<'a> {
        ErrorRecordBody {
            outcome: "error",
            exit_code: crate::exit::Exit::CannotDecide,
            errors: &undecided.errors,
            inputs: &undecided.digests,
            settings: undecided.settings.as_deref(),
            evaluated_at: at,
            ci,
            tool: format!("guardrail {}", env!("CARGO_PKG_VERSION")),
            requested_by,
        }
    }
}

/// Rebuilds the sources recorded in a decision record (checking each digest).
pub fn sources_from_record(body: &serde_json::Value) -> Result<Sources, String> {
    let one = |name: &str| -> Result<Source, String> {
        let path = body
            .pointer(&format!("/inputs/{name}/path"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("record has no inputs.{name}.path"))?;
        let text = body
            .pointer(&format!("/input_content/{name}"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("record has no input_content.{name}"))?;
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
        let recorded = body.pointer(&format!("/inputs/{name}/sha256")).and_then(|v| v.as_str()).unwrap_or("");
        if sha != recorded {
            return Err(format!("recorded content of {name} does not match its recorded sha256"));
        }
        Ok(Source { path: path.into(), text: text.to_string(), sha256: sha })
    };
    Ok(Sources { policies: one("policies")?, slos: one("slos")?, metrics: one("metrics")?, cost: one("cost")? })
}

/// Rebuilds the settings recorded in a decision record.
pub fn settings_from_record(body: &serde_json::Value) -> Result<Settings, String> {
    let s = body.get("settings").ok_or("record has no settings")?;
    let num = |p: &str| s.pointer(p).and_then(|v| v.as_f64()).ok_or_else(|| format!("record has no settings{p}"));
    let now = s
        .get("now")
        .and_then(|v| v.as_str())
        .ok_or("record has no settings.now")?
        .parse::<jiff::Timestamp>()
        .map_err(|e| format!("settings.now: {e}"))?;
    Ok(Settings {
        cost: guardrail_core::cost::CostThresholds {
            warn_pct: num("/cost/warn_pct")?,
            block_pct: num("/cost/block_pct")?,
            falling_pct: num("/cost/falling_pct")?,
            // Records from before the anomaly score have no baseline: the default then.
            anomaly_baseline_days: match s.pointer("/cost/anomaly_baseline_days") {
                None => guardrail_core::cost::DEFAULT_BASELINE_DAYS,
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("settings.cost.anomaly_baseline_days is not a whole number")?,
            },
        },
        max_age: s.get("max_age").and_then(|v| v.as_i64()).map(jiff::SignedDuration::from_secs),
        now,
        service: s.get("service").and_then(|v| v.as_str()).map(str::to_string),
        slo_name: s.get("slo_name").and_then(|v| v.as_str()).map(str::to_string),
        cost_format: match s.get("cost_format").and_then(|v| v.as_str()) {
            None => None,
            Some(f) => Some(f.parse().map_err(|e| format!("settings.cost_format: {e}"))?),
        },
        // The rows the decision was made from: a record without them read every row.
        cost_tag: match s.get("cost_tag").and_then(|v| v.as_str()) {
            None => None,
            Some(t) => Some(t.parse().map_err(|e| format!("settings.cost_tag: {e}"))?),
        },
        cost_service: s.get("cost_service").and_then(|v| v.as_str()).map(str::to_string),
    })
}

/// The parts of a decision that must be identical on replay.
pub fn fingerprint(body: &serde_json::Value) -> serde_json::Value {
    let keys = [
        "action",
        "policy_id",
        "policy_name",
        "reason",
        "remediation",
        "delay_minutes",
        "retry_after",
        "decided_by",
        "conditions",
        "trace",
        "signals",
        "slo",
        "cost",
    ];
    let mut out = serde_json::Map::new();
    for k in keys {
        out.insert(k.to_string(), body.get(k).cloned().unwrap_or(serde_json::Value::Null));
    }
    serde_json::Value::Object(out)
}
