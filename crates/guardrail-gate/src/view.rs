//! The deploy gate's one view: what `guardrail gate --format json` prints, what `POST /api/gate`
//! answers (inside the seed's `{"ok": true, "data": …}`) and what the MCP tool `evaluate_deploy`
//! returns — one type, [`GateView`], built from a [`GateOutcome`] ([`GateOutcome::view`], a
//! [`GateReport`]) or
//! from a decision not recorded ([`Decided::view`]), so a field has one name on every surface.
//!
//! Its fields are the `--format json` fields pipelines parse (`action`, `policy_id`,
//! `delay_minutes`, `retry_after`, …), in that order; `tests/it/golden.rs` pins them. The
//! surfaces differ only in what they add around it: `POST /api/simulate` the what-if
//! ([`SimulationView`]), `evaluate_deploy` whether it recorded ([`EvaluateDeployView`]).
//!
//! A run that did not decide — the inputs could not decide, or the decision was withheld because
//! its record failed — is [`UndecidedView`], the error object `gate --format json` prints on
//! stdout.

use std::collections::BTreeMap;

use guardrail_core::cost::CostReport;
use guardrail_core::policy::{Action, ConditionOutcome, Counterfactual, DecidedBy, RuleTrace};
use guardrail_core::signals::Signals;
use guardrail_core::slo::SloReport;
use schemars::JsonSchema;
use serde::Serialize;

use crate::ci::CiContext;
use crate::decide::{Decided, GateOutcome};
use crate::exit::{ErrorDetail, ErrorKind, ErrorOutput};
use crate::inputs::{InputDigest, Settings};

/// The seed tool's trace entry (`evaluated_policies`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CounterfactualOut<'a> {
    /// One line, e.g. `ALLOW needs error_budget_pct >= 30; now 18.98`.
    pub summary: String,
    /// Per rule.
    pub rules: &'a [Counterfactual],
}

/// The four inputs' digests.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Serialize, JsonSchema)]
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

/// The deploy gate's one view: `--format json` output, `POST /api/gate`'s `data`,
/// `evaluate_deploy`'s result, and the core of the `deploy_decision` record. The first fields are
/// the seed tool's decision keys in its order; pipelines parse them, so names and order stay.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GateView<'a> {
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

/// A decision's `--format json` text rendered before its record is appended (on another thread,
/// while the store appends it: at 10,000 rules the text is megabytes), completed with the
/// record's `audit` once it is in the chain. Printed only then: an answer never precedes its
/// durable record. [`PendingJson::with_audit`] gives exactly [`crate::out::json_pretty`] of the
/// view with that `audit` (a test pins it).
#[derive(Debug, Clone)]
pub struct PendingJson(Vec<u8>);

/// Where the view without a record has its `audit`: a top-level field, so at one indentation
/// level, on a line of its own (a string's own line breaks are escaped in JSON: no value can
/// hold this byte sequence).
const NO_AUDIT: &[u8] = b"\n  \"audit\": null";

impl PendingJson {
    /// Renders `view`, which has no record yet (`audit: None`).
    pub fn render(view: &GateView<'_>) -> PendingJson {
        // About 800 bytes a rule (its two trace entries, pretty): one allocation, no regrowth.
        PendingJson(crate::out::json_pretty_with_capacity(view, view.trace.len() * 800 + (64 << 10)))
    }

    /// The text with `audit` in place of the missing record (`None` if the view rendered had
    /// one, or did not render).
    pub fn with_audit(&self, audit: &AuditRef) -> Option<Vec<u8>> {
        let (head, object, tail) = self.parts_with_audit(audit)?;
        Some([head, object.as_slice(), tail].concat())
    }

    /// [`PendingJson::with_audit`] in its three parts, to be written one after the other (no
    /// copy of the megabytes around the record's `audit`): the text before it, the `audit`
    /// object, the text after it.
    pub fn parts_with_audit(&self, audit: &AuditRef) -> Option<(&[u8], Vec<u8>, &[u8])> {
        let at = self.0.windows(NO_AUDIT.len()).rposition(|w| w == NO_AUDIT)?;
        // The object as the pretty printer writes it one level down: every line after the
        // first indented by two more spaces (its strings hold no raw line breaks).
        let object = serde_json::to_string_pretty(audit).ok()?.replace('\n', "\n  ");
        let null_at = at + NO_AUDIT.len() - "null".len();
        Some((&self.0[..null_at], object.into_bytes(), &self.0[at + NO_AUDIT.len()..]))
    }
}

/// The error object of a run that did not decide, with the exit code (3).
pub type UndecidedView = ErrorOutput;

impl Decided {
    /// The view of this decision, without a record (`evaluate_deploy` not asked to record, or
    /// before the record is appended).
    pub fn view(&self) -> GateView<'_> {
        self.output()
    }
}

/// What a gate run shows: the decision, or the error object of a run that did not decide.
/// Serialises as the one or the other (what `gate --format json` prints).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum GateReport<'a> {
    /// Decided and recorded.
    Decision(Box<GateView<'a>>),
    /// Not decided, or withheld.
    Error(UndecidedView),
}

impl GateReport<'_> {
    /// The process exit code of this run.
    pub fn exit_code(&self) -> crate::exit::Exit {
        match self {
            GateReport::Decision(v) => v.exit_code,
            GateReport::Error(e) => e.exit_code,
        }
    }
}

impl GateOutcome {
    /// The view of a gate run: the decision with its record, or why there is none. A withheld
    /// decision is never shown: its view is the error (`not_recorded`), naming the record when
    /// it is in the chain and only its mirror copy failed.
    pub fn view(&self) -> GateReport<'_> {
        match self {
            GateOutcome::Recorded { decided, audit, .. } => {
                let mut view = decided.view();
                view.audit = Some(audit.clone());
                GateReport::Decision(Box::new(view))
            }
            GateOutcome::Withheld { reason, .. } => GateReport::Error(ErrorOutput::of(
                vec![ErrorDetail::text(ErrorKind::NotRecorded, reason.to_string())],
                None,
            )),
            GateOutcome::CannotDecide { undecided, record: Ok(rec) } => {
                GateReport::Error(ErrorOutput::of(undecided.details(), Some(rec.id())))
            }
            GateOutcome::CannotDecide { undecided, record: Err(e) } => {
                let mut all = undecided.details();
                all.push(ErrorDetail::text(ErrorKind::CannotDecide, e.to_string()));
                // A failed mirror copy: the record is in the chain all the same.
                GateReport::Error(ErrorOutput::of(all, e.in_chain().map(|r| r.id())))
            }
        }
    }
}

/// `evaluate_deploy`'s result: the view, and whether the decision was recorded (the tool
/// records only when asked; `audit` is then the record).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EvaluateDeployView<'a> {
    /// The decision.
    #[serde(flatten)]
    pub view: GateView<'a>,
    /// Whether it was recorded (`audit` names the record).
    pub recorded: bool,
}

/// `POST /api/simulate`'s answer: the view of a what-if decision (recorded as a
/// `deploy_simulation`), with its explanation and the signal values that replaced the
/// measured ones.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SimulationView<'a> {
    /// The decision.
    #[serde(flatten)]
    pub view: GateView<'a>,
    /// The narrative explanation.
    pub explanation: String,
    /// Always `true`.
    pub simulated: bool,
    /// The replaced signal values, by name.
    pub simulated_signals: BTreeMap<&'a str, &'a guardrail_core::signals::SignalValue>,
}
