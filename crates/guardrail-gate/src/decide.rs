//! One deploy decision, decided and recorded: the sequence every adapter (`guardrail gate`,
//! `POST /api/gate`, the MCP tool `evaluate_deploy`) runs, written once.
//!
//! [`decide_and_record`] evaluates a snapshot of the inputs, appends the `deploy_decision`
//! record, and withholds the decision when that append fails; when the inputs cannot decide it
//! appends a `deploy_error` record instead. It returns a [`GateOutcome`], which the adapters
//! only render (exit code, HTTP status, tool result). What it never does: report a decision
//! whose record is not durably in the chain *and* its mirror.

use std::path::Path;
use std::time::{Duration, Instant};

use guardrail_config::tokens::Role;
use guardrail_core::audit::{BodyHead, ChainedRecord, EncodedDraft, RecordDraft};
use guardrail_core::policy::Action;
use guardrail_store::{AppendError, KeptInput};
use jiff::Timestamp;
use serde::Serialize;

use crate::ci::{self, CiContext};
use crate::exit::{ErrorDetail, ErrorKind};
use crate::gate::{self, AuditRef, Evaluation};
use crate::inputs::{self, EnvLookup, InputArgs, InputDigest, InputPaths, Settings, Sources};
use crate::view::GateView;

/// Who asked for a decision, recorded with it (and with a `deploy_error`) as `requested_by`:
/// an authenticated identity, never a string the caller typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RequestedBy {
    /// The token's identity; `null` for a local MCP client over stdio (the user who started
    /// the process).
    pub identity: Option<String>,
    /// The token's role, when the transport checks one (`POST /api/gate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// `http`, `mcp-http` or `mcp-stdio`.
    pub via: &'static str,
}

/// The transports that record a `requested_by` ([`RequestedBy::via`]).
pub const VIAS: [&str; 3] = ["http", "mcp-http", "mcp-stdio"];

/// [`RequestedBy`] as a record holds it, before `via` is checked against [`VIAS`].
#[derive(serde::Deserialize)]
struct RecordedRequester {
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    role: Option<Role>,
    via: String,
}

/// Read back from a record: `via` must be one of [`VIAS`] and `role` a role's name (a record
/// naming anything else was not written by Guardrail). `via` is a `&'static str`, which serde's
/// derive cannot read into.
impl<'de> serde::Deserialize<'de> for RequestedBy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RequestedBy, D::Error> {
        use serde::de::Error;
        let r = RecordedRequester::deserialize(d)?;
        let via = VIAS
            .into_iter()
            .find(|v| *v == r.via)
            .ok_or_else(|| D::Error::custom(format!("unknown via {:?}", r.via)))?;
        Ok(RequestedBy { identity: r.identity, role: r.role, via })
    }
}

/// Where a gate run appends its records, and for whom.
#[derive(Debug, Clone, Copy)]
pub struct Recorder<'a> {
    /// The audit store spec (`sqlite:…`, a path, `postgres://…`).
    pub store: &'a str,
    /// The JSONL mirror directory, when configured.
    pub jsonl: Option<&'a Path>,
    /// Recorded as `requested_by` (the CLI records none: the record's `ci` says who ran it).
    pub requested_by: Option<&'a RequestedBy>,
}

/// The inputs of one decision, read once.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The four input files, as read.
    pub sources: Sources,
    /// Thresholds, maximum age and evaluation time.
    pub settings: Settings,
}

/// One reason a gate run could not decide, typed as it was found: its file, position and field
/// (or flag / variable) are read from these fields, never out of the message. `Display` is the
/// message the gate prints and the `deploy_error` record holds.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GateProblem {
    /// A flag's or variable's value the settings cannot use.
    #[error(transparent)]
    Setting(inputs::SettingError),
    /// An input that could not be read (a live source's problems: one per line).
    #[error(transparent)]
    Input(inputs::InputError),
    /// The inputs, read, cannot decide.
    #[error(transparent)]
    Evaluation(gate::Problem),
    /// A problem its caller holds only as the message: no file, position or field is taken out
    /// of it.
    #[error("{0}")]
    Message(String),
}

impl GateProblem {
    /// Its details for the `gate --format json` error object (all `cannot_decide`: the run was
    /// undecided and its `deploy_error` record attempted, whatever the problem's class).
    pub fn details(&self) -> Vec<ErrorDetail> {
        let details = match self {
            GateProblem::Setting(s) => vec![ErrorDetail::setting(s)],
            GateProblem::Input(e) => ErrorDetail::input(e),
            GateProblem::Evaluation(p) => vec![ErrorDetail::problem(p)],
            GateProblem::Message(m) => vec![ErrorDetail::text(ErrorKind::CannotDecide, m.clone())],
        };
        details.into_iter().map(|d| ErrorDetail { kind: ErrorKind::CannotDecide, ..d }).collect()
    }
}

/// A gate run that could not decide, with what its `deploy_error` record holds.
#[derive(Debug)]
pub struct Undecided {
    /// Every problem found.
    pub problems: Vec<GateProblem>,
    /// The inputs' paths and digests (of the bytes read, or of the files as they are).
    pub digests: Vec<InputDigest>,
    /// The settings, when they could be resolved (boxed: an error stays small).
    pub settings: Option<Box<Settings>>,
    /// How long the evaluation ran, when it ran.
    pub evaluated_in: Option<Duration>,
}

impl Undecided {
    /// A failure before the inputs were read: the digests are of the files as they are now.
    pub fn before_reading(problems: Vec<GateProblem>, paths: &InputPaths, settings: Option<Settings>) -> Undecided {
        let settings = settings.map(Box::new);
        let digests = [&paths.policies, &paths.slos, &paths.metrics, &paths.cost]
            .iter()
            .map(|p| inputs::digest_path(p))
            .collect();
        Undecided { problems, digests, settings, evaluated_in: None }
    }

    /// A failure after the inputs were read: the digests are of the bytes read.
    pub fn after_reading(problems: Vec<GateProblem>, sources: &Sources, settings: Option<Settings>) -> Undecided {
        let settings = settings.map(Box::new);
        let digests = [&sources.policies, &sources.slos, &sources.metrics, &sources.cost]
            .iter()
            .map(|s| inputs::digest(s))
            .collect();
        Undecided { problems, digests, settings, evaluated_in: None }
    }

    /// The problems' messages, as printed and as the `deploy_error` record holds them (a live
    /// source's problems stay one multi-line message, as they always were recorded).
    pub fn messages(&self) -> Vec<String> {
        self.problems.iter().map(ToString::to_string).collect()
    }

    /// The `gate --format json` details of every problem, in order.
    pub fn details(&self) -> Vec<ErrorDetail> {
        self.problems.iter().flat_map(GateProblem::details).collect()
    }
}

/// Resolves the settings with `now` and reads the inputs once, as `guardrail gate` and the
/// MCP tools do (flags → environment → `--root` defaults).
pub fn read_snapshot(args: &InputArgs, env: EnvLookup<'_>, now: Timestamp) -> Result<Snapshot, Undecided> {
    let paths = inputs::resolve_paths(args, env);
    // The checked set kept for the policy file, read while its text is read and hashed.
    if let Some(cache) = crate::policy_cache::active() {
        cache.prefetch(&paths.policies);
    }
    let settings = inputs::settings(args, env, now)
        .map_err(|e| Undecided::before_reading(e.all().cloned().map(GateProblem::Setting).collect(), &paths, None))?;
    let sources = inputs::sources(&paths).map_err(|es| {
        Undecided::before_reading(es.into_iter().map(GateProblem::Input).collect(), &paths, Some(settings.clone()))
    })?;
    Ok(Snapshot { sources, settings })
}

/// A decision with what it is reported with.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The evaluation (warnings include [`Decided::service_warning`]).
    pub evaluation: Evaluation,
    /// The CI context, recorded with the decision.
    pub ci: CiContext,
    /// Whether WARN exits 1.
    pub fail_on_warn: bool,
    /// Recorded and reported as `requested_by`.
    pub requested_by: Option<RequestedBy>,
    /// The CI context names another service than the signals' ([`ci::service_mismatch`]).
    pub service_warning: Option<String>,
    /// How long the evaluation ran.
    pub evaluated_in: Duration,
}

impl Decided {
    /// The output (`--format json`, the HTTP answer, the tool result), without its record.
    pub fn output(&self) -> GateView<'_> {
        let mut out = gate::output(&self.evaluation, &self.ci, self.fail_on_warn);
        out.requested_by = self.requested_by.as_ref();
        out
    }

    /// The decided action.
    pub fn action(&self) -> Action {
        self.evaluation.decision.action
    }

    /// The `deploy_decision` record body: the output plus the inputs' full text.
    pub fn record(&self) -> gate::DecisionRecordBody {
        gate::DecisionRecordBody::new(&self.output(), &self.evaluation.sources)
    }

    /// [`Decided::record`], encoded as it is appended ([`gate::DecisionRecordBody::encode`]:
    /// the same value, encoded once).
    pub fn record_body(&self) -> serde_json::Value {
        gate::DecisionRecordBody::encode(&self.output(), &self.evaluation.sources)
    }

    /// [`Decided::record_body`] as the text the store keeps and the chain hashes
    /// ([`gate::DecisionRecordBody::encode_text`]), written without the value.
    pub fn record_text(&self) -> Result<String, guardrail_core::canonical_json::Error> {
        gate::DecisionRecordBody::encode_text(&self.output(), &self.evaluation.sources)
    }

    /// [`Decided::record_text`] and the record's hash state up to the end of the body, hashed
    /// while the text is written ([`gate::DecisionRecordBody::encode_text_hashed`]).
    pub fn record_text_hashed(&self) -> Result<(String, BodyHead), guardrail_core::canonical_json::Error> {
        self.record_text_kept_apart(&[])
    }

    /// [`Decided::record_text_hashed`] without the text of the inputs `kept_apart` names
    /// ([`gate::kept_apart`]), which the store keeps instead.
    pub fn record_text_kept_apart(
        &self,
        kept_apart: &[&'static str],
    ) -> Result<(String, BodyHead), guardrail_core::canonical_json::Error> {
        gate::DecisionRecordBody::encode_text_hashed(&self.output(), &self.evaluation.sources, kept_apart)
    }
}

/// Evaluates a snapshot (no record): what `evaluate_deploy` answers when not asked to record.
pub fn decide(
    snapshot: Snapshot,
    ci: CiContext,
    fail_on_warn: bool,
    requested_by: Option<&RequestedBy>,
) -> Result<Decided, Undecided> {
    // What a deploy_error would hold, taken before the evaluation consumes the snapshot (the
    // digests are the recorded sha256s: no copy of the inputs' text).
    let if_undecided = Undecided::after_reading(Vec::new(), &snapshot.sources, Some(snapshot.settings.clone()));
    let started = Instant::now();
    let evaluated = gate::evaluation(snapshot.sources, snapshot.settings);
    decided(evaluated, started.elapsed(), if_undecided, ci, fail_on_warn, requested_by)
}

/// [`decide`] on inputs parsed and checked once ([`gate::Prepared`]), at the clock `now`: the
/// same decision, output and record body as `decide` of the prepared sources with the prepared
/// settings at `now`, without parsing anything again. What a long-running server calls for
/// each request while its inputs do not change.
pub fn decide_prepared(
    prepared: &gate::Prepared,
    now: Timestamp,
    ci: CiContext,
    fail_on_warn: bool,
    requested_by: Option<&RequestedBy>,
) -> Result<Decided, Undecided> {
    let if_undecided = Undecided::after_reading(Vec::new(), prepared.sources(), Some(prepared.settings_at(now)));
    let started = Instant::now();
    let evaluated = prepared.evaluate(now);
    decided(evaluated, started.elapsed(), if_undecided, ci, fail_on_warn, requested_by)
}

fn decided(
    evaluated: Result<Evaluation, Vec<gate::Problem>>,
    evaluated_in: Duration,
    if_undecided: Undecided,
    ci: CiContext,
    fail_on_warn: bool,
    requested_by: Option<&RequestedBy>,
) -> Result<Decided, Undecided> {
    let mut evaluation = evaluated.map_err(|ps| Undecided {
        problems: ps.into_iter().map(GateProblem::Evaluation).collect(),
        evaluated_in: Some(evaluated_in),
        ..if_undecided
    })?;
    let service_warning = ci::service_mismatch(&ci, &evaluation.slo.details.service);
    if let Some(w) = &service_warning {
        evaluation.warnings.push(w.clone());
    }
    Ok(Decided { evaluation, ci, fail_on_warn, requested_by: requested_by.cloned(), service_warning, evaluated_in })
}

/// Why a decision was withheld: its record could not be appended and mirrored. The one
/// wording of the withheld message ([`Withheld::public`] is the same without the decision and
/// the store's error, for callers who may not see paths).
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", message(&format!("decision {action} ({policy_id})"), source.in_chain()))]
pub struct Withheld {
    /// The withheld action.
    pub action: Action,
    /// The rule that decided it.
    pub policy_id: String,
    /// The failed append: not in the chain, or in the chain with a failed mirror copy.
    #[source]
    pub source: AppendError,
}

fn message(subject: &str, in_chain: Option<&ChainedRecord>) -> String {
    match in_chain {
        None => format!("{subject} could not be recorded in the audit trail, so it is withheld"),
        Some(rec) => format!(
            "{subject} IS recorded in the audit chain as record {}, but its JSONL mirror copy failed, so it is withheld",
            rec.id()
        ),
    }
}

impl Withheld {
    /// The record, when it is in the chain and only its mirror copy failed.
    pub fn in_chain(&self) -> Option<&ChainedRecord> {
        self.source.in_chain()
    }

    /// The message without the action, the rule and the store's error (which names paths).
    pub fn public(&self) -> String {
        message("the decision", self.in_chain())
    }
}

/// What became of a gate run.
#[derive(Debug)]
pub enum GateOutcome {
    /// Decided, and the decision is in the chain (and its mirror).
    Recorded {
        /// The decision.
        decided: Box<Decided>,
        /// Its `deploy_decision` record (with a `null` body when the store took the body as
        /// text: a CLI run without a JSONL mirror; [`Decided::record_body`] is the body).
        record: Box<ChainedRecord>,
        /// The record as the output names it (`store`: as the store describes itself).
        audit: AuditRef,
    },
    /// Decided, but the record could not be appended and mirrored: the decision is withheld.
    Withheld {
        /// The decision (not to be reported).
        decided: Box<Decided>,
        /// Why.
        reason: Withheld,
    },
    /// The inputs could not decide; a `deploy_error` record was attempted.
    CannotDecide {
        /// The problems.
        undecided: Undecided,
        /// The `deploy_error` record, or why it could not be appended and mirrored.
        record: Result<ChainedRecord, AppendError>,
    },
}

impl GateOutcome {
    /// The decision, when there is one (recorded or withheld).
    pub fn decided(&self) -> Option<&Decided> {
        match self {
            GateOutcome::Recorded { decided, .. } | GateOutcome::Withheld { decided, .. } => Some(decided),
            GateOutcome::CannotDecide { .. } => None,
        }
    }

    /// How long the evaluation ran, when it ran.
    pub fn evaluated_in(&self) -> Option<Duration> {
        match self {
            GateOutcome::Recorded { decided, .. } | GateOutcome::Withheld { decided, .. } => Some(decided.evaluated_in),
            GateOutcome::CannotDecide { undecided, .. } => undecided.evaluated_in,
        }
    }
}

/// Appends `body` as a `kind` record.
fn append(
    recorder: &Recorder<'_>,
    kind: &str,
    at: String,
    body: serde_json::Value,
) -> Result<(ChainedRecord, String), AppendError> {
    let draft = RecordDraft { kind: kind.into(), recorded_at: at, body };
    crate::audit_cmd::append_typed(recorder.store, recorder.jsonl.map(Path::to_path_buf).as_ref(), draft)
}

/// Appends the `deploy_error` record of a run that could not decide (with the clock now).
pub fn record_undecided(
    undecided: &Undecided,
    ci: &CiContext,
    recorder: &Recorder<'_>,
) -> Result<ChainedRecord, AppendError> {
    let at = Timestamp::now().to_string();
    let body = gate::ErrorRecordBody::new(undecided, ci, &at, recorder.requested_by);
    append(recorder, gate::ERROR_KIND, at.clone(), gate::encode(&body)).map(|(r, _)| r)
}

/// Appends a decided record (`kind`: `deploy_decision`, or the server's `deploy_simulation`)
/// with `body`; on failure the decision is [`Withheld`].
pub fn record_decided(
    decided: &Decided,
    kind: &str,
    body: serde_json::Value,
    recorder: &Recorder<'_>,
) -> Result<(ChainedRecord, AuditRef), Withheld> {
    let d = &decided.evaluation.decision;
    match append(recorder, kind, decided.evaluation.settings.now.to_string(), body) {
        Ok((rec, store)) => {
            let audit = AuditRef { id: rec.id(), seq: rec.seq, hash: rec.hash.clone(), store };
            Ok((rec, audit))
        }
        Err(source) => Err(Withheld { action: d.action, policy_id: d.policy_id.clone(), source }),
    }
}

/// [`record_decided`] of the `deploy_decision` record, its body appended as the canonical text
/// written from the decision's types ([`Decided::record_text`]) when the store may take it as
/// text: a CLI run (nobody authenticated asked, so not a server, whose store routes each record
/// to its outbox by its body) without a JSONL mirror (which copies the body). The store keeps and
/// hashes the same bytes either way; at 10,000 rules the value tree it saves was a fifth of the
/// run. Not for PostgreSQL: its store reads the text back into a value (slower than building
/// the value). The record returned then has a `null` body (the decision is the caller's).
fn record_decided_as_text(decided: &Decided, recorder: &Recorder<'_>) -> Result<(ChainedRecord, AuditRef), Withheld> {
    let draft = encoded_draft(decided, recorder);
    append_decided(decided, draft, recorder)
}

/// The `deploy_decision` draft as its canonical text, hashed while written, when the store may
/// take it as text (see [`record_decided_as_text`]), and the inputs it leaves for the store to
/// keep ([`gate::kept_apart`]: the large ones; only SQLite keeps inputs, and this route is not
/// PostgreSQL's); `None` for the value route.
fn encoded_draft(decided: &Decided, recorder: &Recorder<'_>) -> Option<(EncodedDraft, Vec<&'static str>)> {
    let kept = match (recorder.jsonl, recorder.requested_by) {
        (None, None) if !is_postgres(recorder.store) => gate::kept_apart(&decided.evaluation.sources),
        _ => return None,
    };
    let (body_text, body_head) = decided.record_text_kept_apart(&kept).ok()?;
    let draft = EncodedDraft {
        kind: gate::RECORD_KIND.into(),
        recorded_at: decided.evaluation.settings.now.to_string(),
        body_text,
        body_head: Some(body_head),
    };
    Some((draft, kept))
}

/// Appends the [`encoded_draft`] (its inputs kept apart first), or the body as a value without
/// one or when the store keeps no inputs.
fn append_decided(
    decided: &Decided,
    draft: Option<(EncodedDraft, Vec<&'static str>)>,
    recorder: &Recorder<'_>,
) -> Result<(ChainedRecord, AuditRef), Withheld> {
    let as_value = || record_decided(decided, gate::RECORD_KIND, decided.record_body(), recorder);
    let Some((draft, kept)) = draft else {
        return as_value();
    };
    let sources = &decided.evaluation.sources;
    let kept: Vec<KeptInput<'_>> = kept
        .iter()
        .filter_map(|name| gate::source_named(sources, name))
        .map(|s| KeptInput { sha256: &s.sha256, text: &s.text })
        .collect();
    let d = &decided.evaluation.decision;
    match crate::audit_cmd::append_encoded(recorder.store, draft, &kept) {
        Ok(Some((rec, store))) => {
            let audit = AuditRef { id: rec.id(), seq: rec.seq, hash: rec.hash.clone(), store };
            Ok((rec, audit))
        }
        Ok(None) => as_value(),
        Err(source) => Err(Withheld { action: d.action, policy_id: d.policy_id.clone(), source }),
    }
}

/// The deploy gate: evaluates `snapshot` (or takes the reason it could not be read), records the
/// decision — or, when it cannot decide, a `deploy_error` — and withholds a decision whose record
/// failed. The one implementation behind `guardrail gate`, `POST /api/gate` and `evaluate_deploy`.
pub fn decide_and_record(
    snapshot: Result<Snapshot, Undecided>,
    ci: CiContext,
    fail_on_warn: bool,
    recorder: &Recorder<'_>,
) -> GateOutcome {
    let decided = snapshot.and_then(|s| decide(s, ci.clone(), fail_on_warn, recorder.requested_by));
    record_outcome(decided, &ci, recorder)
}

/// The second half of [`decide_and_record`]: records a decision made by [`decide`] or
/// [`decide_prepared`] (withheld when its record fails), or the `deploy_error` of a run that
/// could not decide. `ci` is the context the decision was asked with (recorded with an error).
pub fn record_outcome(decided: Result<Decided, Undecided>, ci: &CiContext, recorder: &Recorder<'_>) -> GateOutcome {
    let decided = match decided {
        Ok(d) => d,
        Err(undecided) => {
            let record = record_undecided(&undecided, ci, recorder);
            return GateOutcome::CannotDecide { undecided, record };
        }
    };
    match record_decided_as_text(&decided, recorder) {
        Ok((record, audit)) => GateOutcome::Recorded { decided: Box::new(decided), record: Box::new(record), audit },
        Err(reason) => GateOutcome::Withheld { decided: Box::new(decided), reason },
    }
}

/// Whether `spec` names a PostgreSQL store (as `guardrail_store::open_store` tells them apart).
fn is_postgres(spec: &str) -> bool {
    let lower = spec.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// The number of rules from which [`record_outcome_meanwhile`] runs its work on another thread
/// (below, starting a thread costs about what it saves).
const MEANWHILE_FROM_RULES: usize = 200;

/// [`record_outcome`], running `meanwhile` on the decision on another thread while its record
/// is appended (the CLI renders its `--format json` answer there, printed only once the record
/// is in the chain); before it, on this thread, for a decision of fewer than
/// [`MEANWHILE_FROM_RULES`] rules. `None` for `meanwhile`'s result when the inputs could not
/// decide or no thread could be started.
pub fn record_outcome_meanwhile<T: Send>(
    decided: Result<Decided, Undecided>,
    ci: &CiContext,
    recorder: &Recorder<'_>,
    meanwhile: impl FnOnce(&Decided) -> T + Send,
) -> (GateOutcome, Option<T>) {
    let decided = match decided {
        Ok(d) => d,
        Err(undecided) => return (record_outcome(Err(undecided), ci, recorder), None),
    };
    let (recorded, done) = if decided.evaluation.decision.trace.len() < MEANWHILE_FROM_RULES {
        // A small decision: a thread would cost more than it saves.
        let done = meanwhile(&decided);
        (record_decided_as_text(&decided, recorder), Some(done))
    } else {
        std::thread::scope(|s| {
            let d = &decided;
            // `meanwhile` on a thread of its own from the start, beside the record's text (whose
            // hash is written along with it on another thread) and the append: with the large
            // inputs kept apart, the append of a 10,000-rule record is shorter than rendering its
            // answer, so an answer started after the text was the run's last thing to finish.
            let side =
                std::thread::Builder::new().name("gate-render".into()).spawn_scoped(s, move || meanwhile(d)).ok();
            let draft = encoded_draft(d, recorder);
            let recorded = append_decided(d, draft, recorder);
            (recorded, side.and_then(|h| h.join().ok()))
        })
    };
    let outcome = match recorded {
        Ok((record, audit)) => GateOutcome::Recorded { decided: Box::new(decided), record: Box::new(record), audit },
        Err(reason) => GateOutcome::Withheld { decided: Box::new(decided), reason },
    };
    (outcome, done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/deploy-gate")
    }

    fn args(root: PathBuf) -> InputArgs {
        InputArgs { root: Some(root), now: Some("2026-02-21T00:00:00Z".into()), ..InputArgs::default() }
    }

    fn snapshot(args: &InputArgs) -> Result<Snapshot, Undecided> {
        read_snapshot(args, &|_| None, Timestamp::now())
    }

    fn records(store: &Path) -> Vec<ChainedRecord> {
        let mut s = guardrail_store::open_store(&store.display().to_string()).unwrap();
        let q = guardrail_store::ListQuery { limit: 100, before_seq: None, kind: None };
        let mut list = s.list(&q).unwrap();
        list.sort_by_key(|r| r.seq);
        list
    }

    fn who() -> RequestedBy {
        RequestedBy { identity: Some("ci-bot".into()), role: Some(Role::Deployer), via: "http" }
    }

    #[test]
    fn a_decision_is_recorded_with_who_asked_and_reported_with_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("g.db");
        let spec = store.display().to_string();
        let who = who();
        let rec = Recorder { store: &spec, jsonl: None, requested_by: Some(&who) };
        let GateOutcome::Recorded { decided, record, .. } =
            decide_and_record(snapshot(&args(examples())), CiContext::default(), false, &rec)
        else {
            panic!("not recorded")
        };
        assert_eq!(decided.action(), Action::Delay);
        let chain = records(&store);
        assert_eq!(chain.len(), 1);
        assert_eq!((chain[0].kind.as_str(), chain[0].id()), (gate::RECORD_KIND, record.id()));
        assert_eq!(
            chain[0].body["requested_by"],
            serde_json::json!({"identity": "ci-bot", "role": "deployer", "via": "http"})
        );
        assert_eq!(chain[0].body["policy_id"], decided.evaluation.decision.policy_id.as_str());
        assert_eq!(chain[0].body, decided.record_body(), "the record holds what is reported");
        assert!(chain[0].body.get("audit").is_none());
    }

    /// The record body encoded once from the decision's types is the typed body's value, for
    /// every action (the scenarios), with and without who asked and a CI context.
    #[test]
    fn the_record_body_is_encoded_once_to_the_typed_bodys_value() {
        let who = who();
        for scenario in [None, Some("allow"), Some("warn"), Some("block")] {
            let mut a = args(examples());
            a.metrics = scenario.map(|s| examples().join("scenarios").join(s).join("metrics.json"));
            for (ci, by) in [
                (CiContext::default(), None),
                (CiContext { service: Some("x".into()), ..CiContext::default() }, Some(&who)),
            ] {
                let d = decide(snapshot(&a).unwrap(), ci, scenario == Some("warn"), by).unwrap();
                assert_eq!(d.record_body(), gate::encode(&d.record()), "{scenario:?}");
                // The canonical text written from the types is the value's text: the bytes the
                // store keeps and the chain hashes.
                let text = d.record_text().unwrap();
                assert_eq!(text, serde_json::to_string(&d.record_body()).unwrap(), "{scenario:?}");
                // And hashed while written: the head of that text.
                let (hashed_text, head) = d.record_text_hashed().unwrap();
                assert_eq!(hashed_text, text, "{scenario:?}");
                assert_eq!(head, BodyHead::of(&text), "{scenario:?}");
                let draft = guardrail_core::audit::EncodedDraft {
                    kind: gate::RECORD_KIND.into(),
                    recorded_at: "2026-02-21T00:00:00Z".into(),
                    body_text: text,
                    body_head: Some(head),
                };
                assert!(draft.is_canonical());
            }
        }
    }

    /// A CLI run appends the body as the text written from the types: the record the store
    /// keeps reads back as the value route's body, with the hash the value route gives.
    #[test]
    fn a_cli_run_appends_the_body_as_text_with_the_value_routes_hash() {
        for scenario in [None, Some("allow"), Some("warn"), Some("block")] {
            let mut a = args(examples());
            a.metrics = scenario.map(|s| examples().join("scenarios").join(s).join("metrics.json"));
            let dir = tempfile::tempdir().unwrap();
            let (as_text, as_value) = (dir.path().join("text.db"), dir.path().join("value.db"));
            let (text_spec, value_spec) = (as_text.display().to_string(), as_value.display().to_string());
            let cli = Recorder { store: &text_spec, jsonl: None, requested_by: None };
            let by_value = Recorder { store: &value_spec, jsonl: None, requested_by: None };
            for _ in 0..2 {
                let d = decide(snapshot(&a).unwrap(), CiContext::default(), false, None).unwrap();
                let (t, _) = record_decided_as_text(&d, &cli).unwrap();
                let (v, _) = record_decided(&d, gate::RECORD_KIND, d.record_body(), &by_value).unwrap();
                assert_eq!(t.body, serde_json::Value::Null, "not decoded back");
                assert_eq!((t.seq, &t.prev_hash, &t.hash), (v.seq, &v.prev_hash, &v.hash), "{scenario:?}");
                let kept = records(&as_text).pop().unwrap();
                assert_eq!((&kept.body, &kept.hash), (&d.record_body(), &v.hash));
            }
            let mut s = guardrail_store::open_store(&text_spec).unwrap();
            assert!(s.verify().unwrap().ok());
        }
    }

    /// A policy file from [`gate::KEEP_APART_FROM`] bytes: the seed's, padded with a comment.
    fn large_policies(dir: &Path, pad: usize) -> PathBuf {
        let seed = std::fs::read_to_string(examples().join("config/policies.yaml")).unwrap();
        let path = dir.join(format!("policies-{pad}.yaml"));
        std::fs::write(&path, format!("{seed}\n# {}\n", "x".repeat(pad))).unwrap();
        path
    }

    /// A large input is kept once by a SQLite store and named by the records (whose hash is that
    /// of their text as stored); reading it back gives the sources the decision was made from.
    /// The small inputs stay in the record.
    #[test]
    fn a_large_input_is_kept_apart_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("g.db").display().to_string();
        let cli = Recorder { store: &spec, jsonl: None, requested_by: None };
        let mut a = args(examples());
        a.policies = Some(large_policies(dir.path(), gate::KEEP_APART_FROM));
        for run in 0..2 {
            let d = decide(snapshot(&a).unwrap(), CiContext::default(), false, None).unwrap();
            assert_eq!(gate::kept_apart(&d.evaluation.sources), ["policies"]);
            let (t, _) = record_decided_as_text(&d, &cli).unwrap();
            let kept = records(Path::new(&spec)).pop().unwrap();
            assert_eq!(kept.hash, t.hash, "run {run}");
            let content = &kept.body["input_content"];
            assert_eq!(content["kept_apart"], serde_json::json!(["policies"]));
            assert!(content.get("policies").is_none(), "the text is not in the record");
            assert_eq!(content["slos"].as_str(), Some(d.evaluation.sources.slos.text.as_str()));
            let mut body = gate::decode_decision(&kept.body).unwrap();
            let mut s = guardrail_store::open_store(&spec).unwrap();
            body.fill_kept_apart(|sha| s.kept_input(sha)).unwrap();
            let sources = body.sources().unwrap();
            assert_eq!(sources.policies.text, d.evaluation.sources.policies.text);
            let replayed = gate::replay(kept.id(), &body).unwrap();
            assert!(replayed.identical, "{:?}", replayed.differing_fields);
            assert!(s.verify().unwrap().ok());
        }
        let db = rusqlite::Connection::open(dir.path().join("g.db")).unwrap();
        let n: i64 = db.query_row("SELECT count(*) FROM audit_inputs", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1, "kept once for both records");
        // One byte below the size: in the record, as before.
        a.policies = Some(large_policies(dir.path(), 10));
        let d = decide(snapshot(&a).unwrap(), CiContext::default(), false, None).unwrap();
        assert!(gate::kept_apart(&d.evaluation.sources).is_empty());
        record_decided_as_text(&d, &cli).unwrap();
        assert_eq!(records(Path::new(&spec)).pop().unwrap().body, d.record_body());
    }

    /// A kept text that is missing, or not the one the record's digest names, fails the replay
    /// with the reason; the store's other errors are passed on.
    #[test]
    fn a_kept_input_that_is_gone_or_altered_fails_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("g.db").display().to_string();
        let cli = Recorder { store: &spec, jsonl: None, requested_by: None };
        let mut a = args(examples());
        a.policies = Some(large_policies(dir.path(), gate::KEEP_APART_FROM));
        let d = decide(snapshot(&a).unwrap(), CiContext::default(), false, None).unwrap();
        record_decided_as_text(&d, &cli).unwrap();
        let kept = records(Path::new(&spec)).pop().unwrap();
        let body = gate::decode_decision(&kept.body).unwrap();
        let db = rusqlite::Connection::open(dir.path().join("g.db")).unwrap();
        db.execute("UPDATE audit_inputs SET text = text || ' '", []).unwrap();
        let mut altered = body.clone();
        let mut s = guardrail_store::open_store(&spec).unwrap();
        altered.fill_kept_apart(|sha| s.kept_input(sha)).unwrap();
        assert!(matches!(altered.sources(), Err(gate::RecordError::DigestMismatch { input: "policies" })));
        db.execute("DELETE FROM audit_inputs", []).unwrap();
        let mut gone = body.clone();
        let err = gone.fill_kept_apart(|sha| s.kept_input(sha)).unwrap_err();
        assert!(matches!(&err, gate::KeptInputError::Missing { name, .. } if name == "policies"), "{err}");
        let mut failing = body.clone();
        let err = failing.fill_kept_apart(|_| Err::<Option<String>, _>("disk gone")).unwrap_err();
        assert_eq!(err.to_string(), "reading the policies text this record keeps apart: disk gone");
        let mut unknown = body;
        if let Some(c) = unknown.input_content.as_mut() {
            c.kept_apart = vec!["secrets".into()];
        }
        let err = unknown.fill_kept_apart(|sha| s.kept_input(sha)).unwrap_err();
        assert!(matches!(err, gate::KeptInputError::UnknownInput { .. }), "{err}");
    }

    /// A store that keeps no inputs (a server's shared store, which appends on its writer
    /// thread; PostgreSQL's never gets here) gets the text in the record: the value route.
    #[test]
    fn a_store_that_keeps_no_inputs_gets_the_text_in_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("g.db").display().to_string();
        let shared = guardrail_store::share(&spec).unwrap();
        let cli = Recorder { store: &spec, jsonl: None, requested_by: None };
        let mut a = args(examples());
        a.policies = Some(large_policies(dir.path(), gate::KEEP_APART_FROM));
        let d = decide(snapshot(&a).unwrap(), CiContext::default(), false, None).unwrap();
        record_decided_as_text(&d, &cli).unwrap();
        drop(shared);
        assert_eq!(records(Path::new(&spec)).pop().unwrap().body, d.record_body());
    }

    #[test]
    fn postgresql_stores_take_the_value() {
        for spec in ["postgres://u@h/db", "PostgreSQL://h/db?schema=x"] {
            assert!(is_postgres(spec), "{spec}");
        }
        for spec in ["sqlite:g.db", "g.db", "/tmp/postgres/g.db", "sqlite:postgres://x"] {
            assert!(!is_postgres(spec), "{spec}");
        }
    }

    /// The answer rendered while the record is appended, completed with the record, is the
    /// answer rendered after it.
    #[test]
    fn the_answer_rendered_meanwhile_is_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("g.db").display().to_string();
        let rec = Recorder { store: &spec, jsonl: None, requested_by: None };
        for scenario in [None, Some("allow"), Some("block")] {
            let mut a = args(examples());
            a.metrics = scenario.map(|s| examples().join("scenarios").join(s).join("metrics.json"));
            let d = decide(snapshot(&a).unwrap(), CiContext::default(), false, None);
            let (outcome, pending) = record_outcome_meanwhile(d, &CiContext::default(), &rec, |d| {
                crate::view::PendingJson::render(&d.view())
            });
            let crate::view::GateReport::Decision(view) = outcome.view() else { panic!("not decided") };
            let audit = view.audit.clone().unwrap();
            assert_eq!(pending.unwrap().with_audit(&audit).unwrap(), crate::out::json_pretty(&view), "{scenario:?}");
        }
        // A view that has its record already is not completed twice.
        let d = decide(snapshot(&args(examples())).unwrap(), CiContext::default(), false, None).unwrap();
        let mut v = d.view();
        v.audit = Some(AuditRef { id: "1-ab".into(), seq: 1, hash: "ab".into(), store: "s".into() });
        assert!(crate::view::PendingJson::render(&v).with_audit(v.audit.as_ref().unwrap()).is_none());
    }

    #[test]
    fn a_ci_context_for_another_service_is_warned_about_and_recorded_for_every_adapter() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("g.db");
        let spec = store.display().to_string();
        let rec = Recorder { store: &spec, jsonl: None, requested_by: None };
        let ci = CiContext { service: Some("payments-api".into()), ..CiContext::default() };
        let GateOutcome::Recorded { decided, .. } = decide_and_record(snapshot(&args(examples())), ci, false, &rec)
        else {
            panic!("not recorded")
        };
        let w = decided.service_warning.clone().unwrap();
        assert!(w.contains("\"payments-api\" but the signals are \"checkout-api\"'s"), "{w}");
        assert_eq!(records(&store)[0].body["warnings"], serde_json::json!([w]));
    }

    #[test]
    fn a_decision_whose_mirror_copy_fails_is_in_the_chain_but_withheld() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("g.db");
        let spec = store.display().to_string();
        // A file where the mirror directory should be: the copy cannot be written.
        let not_a_dir = dir.path().join("mirror");
        std::fs::write(&not_a_dir, "").unwrap();
        let rec = Recorder { store: &spec, jsonl: Some(&not_a_dir), requested_by: None };
        let GateOutcome::Withheld { decided, reason } =
            decide_and_record(snapshot(&args(examples())), CiContext::default(), false, &rec)
        else {
            panic!("not withheld")
        };
        let chain = records(&store);
        assert_eq!(chain.len(), 1, "the record IS in the chain");
        assert_eq!(reason.in_chain().map(|r| r.id()), Some(chain[0].id()));
        assert_eq!(reason.action, decided.action());
        let msg = reason.to_string();
        assert!(
            msg.starts_with(&format!(
                "decision DELAY ({}) IS recorded in the audit chain as record {}",
                reason.policy_id,
                chain[0].id()
            )),
            "{msg}"
        );
        assert_eq!(
            reason.public(),
            format!(
                "the decision IS recorded in the audit chain as record {}, but its JSONL mirror copy failed, so it is withheld",
                chain[0].id()
            )
        );
        assert!(chain[0].body.get("requested_by").is_none(), "the CLI records no requested_by");
    }

    #[test]
    fn a_decision_that_cannot_be_appended_is_withheld_and_not_in_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        // A directory is not a SQLite file: nothing can be appended.
        let spec = dir.path().display().to_string();
        let rec = Recorder { store: &spec, jsonl: None, requested_by: None };
        let GateOutcome::Withheld { reason, .. } =
            decide_and_record(snapshot(&args(examples())), CiContext::default(), false, &rec)
        else {
            panic!("not withheld")
        };
        assert!(reason.in_chain().is_none());
        assert!(matches!(reason.source, AppendError::NotInChain { .. }));
        assert!(
            reason.to_string().contains("could not be recorded in the audit trail, so it is withheld: audit store")
        );
        assert_eq!(reason.public(), "the decision could not be recorded in the audit trail, so it is withheld");
    }

    #[test]
    fn inputs_that_cannot_decide_record_a_deploy_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("g.db");
        let spec = store.display().to_string();
        let who = RequestedBy { identity: None, role: None, via: "mcp-stdio" };
        let rec = Recorder { store: &spec, jsonl: None, requested_by: Some(&who) };
        let missing = args(dir.path().join("nowhere"));
        let GateOutcome::CannotDecide { undecided, record } =
            decide_and_record(snapshot(&missing), CiContext::default(), false, &rec)
        else {
            panic!("decided")
        };
        // The JSON error object names the missing files from the typed problems.
        let details = undecided.details();
        assert!(
            details.iter().all(|d| d.kind == crate::exit::ErrorKind::CannotDecide
                && d.file.as_deref().is_some_and(|f| f.contains("nowhere"))),
            "{details:?}"
        );
        assert!(undecided.settings.is_some(), "the settings resolved; the files were not there");
        let record = record.unwrap();
        let chain = records(&store);
        assert_eq!((chain.len(), chain[0].kind.as_str(), chain[0].id()), (1, gate::ERROR_KIND, record.id()));
        let body = &chain[0].body;
        assert_eq!(body["outcome"], "error");
        assert_eq!(body["exit_code"], crate::exit::Exit::CannotDecide.code());
        // The record holds the messages, as printed.
        assert_eq!(body["errors"], serde_json::json!(undecided.messages()));
        assert_eq!(body["requested_by"], serde_json::json!({"identity": null, "via": "mcp-stdio"}));
        assert_eq!(body["inputs"].as_array().map(Vec::len), Some(4));
    }

    #[test]
    fn a_deploy_error_that_cannot_be_appended_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().display().to_string();
        let rec = Recorder { store: &spec, jsonl: None, requested_by: None };
        let missing = args(dir.path().join("nowhere"));
        let GateOutcome::CannotDecide { undecided, record } =
            decide_and_record(snapshot(&missing), CiContext::default(), false, &rec)
        else {
            panic!("decided")
        };
        assert!(!undecided.problems.is_empty());
        assert!(matches!(record, Err(AppendError::NotInChain { .. })));
    }

    /// `requested_by` reads back as written, and only as Guardrail writes it (a known transport,
    /// a known role).
    #[test]
    fn who_asked_reads_back_only_as_written() {
        for who in [who(), RequestedBy { identity: None, role: None, via: "mcp-stdio" }] {
            let back: RequestedBy = serde_json::from_value(serde_json::to_value(&who).unwrap()).unwrap();
            assert_eq!(back, who);
        }
        for odd in [
            serde_json::json!({"identity": "x", "via": "carrier-pigeon"}),
            serde_json::json!({"identity": "x", "role": "root", "via": "http"}),
            serde_json::json!({"identity": "x"}),
        ] {
            assert!(serde_json::from_value::<RequestedBy>(odd.clone()).is_err(), "{odd}");
        }
    }

    #[test]
    fn the_error_body_serialises_as_the_records_written_before_it() {
        // Canonical bytes must not change: the same keys, `settings: null` kept, no
        // `requested_by` when nobody is named.
        let paths = inputs::resolve_paths(&args(PathBuf::from("/nowhere")), &|_| None);
        let u = Undecided::before_reading(vec![GateProblem::Message("x: bad".into())], &paths, None);
        let ci = CiContext::default();
        let typed = serde_json::to_value(gate::ErrorRecordBody::new(&u, &ci, "2026-02-21T00:00:00Z", None)).unwrap();
        let before = serde_json::json!({
            "outcome": "error",
            "exit_code": crate::exit::Exit::CannotDecide.code(),
            "errors": ["x: bad"],
            "inputs": u.digests,
            "settings": null,
            "evaluated_at": "2026-02-21T00:00:00Z",
            "ci": ci,
            "tool": format!("guardrail {}", env!("CARGO_PKG_VERSION")),
        });
        assert_eq!(typed, before);
    }
}
