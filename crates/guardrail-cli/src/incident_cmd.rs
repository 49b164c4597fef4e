//! `guardrail incident run|list|show|execute|resolve`: the remediation pipeline from the
//! command line. Decide-and-act (plan → stress → gate, the records, the claimed execution or
//! the queue) is [`guardrail_governor::pipeline`], shared with `guardrail serve`; this module
//! builds its inputs from flags and renders its outcome, and does the learning of `resolve`.
//!
//! Order of effects (fail closed): the decision is recorded *before* anything runs, and an
//! action whose decision could not be recorded never runs (exit 3). Nothing is proposed,
//! executed, released or resolved without an authenticated identity ([`crate::identity`]: a
//! token's, or the OS account's; `--as` may only restate it).

use std::path::PathBuf;

use guardrail_core::audit::ChainedRecord;
use guardrail_gate::audit_cmd::StoreArgs;
use guardrail_gate::exit::Exit;
use guardrail_gate::inputs::EnvLookup;
use guardrail_governor::pipeline::{ExecuteOutcome, Execution, Next, Pipeline, RunOutcome, StoreLog};
use guardrail_governor::record::{
    ApprovalRequestBody, ClaimBody, ClaimReleaseBody, DecisionBody, ExecutionBody, ExecutionRefusedBody, GrantBody,
    RecordKind, RefusalBody, ResolvedBody, RunContext, decode, encode,
};
use guardrail_governor::views::{
    CouldNotDecide, CouldNotDecideView, ExecuteRefusal, ExecutedView, ExecutionStep, IncidentDetail, IncidentSummary,
    RecordRef, Refused, RegateView, ReleaseClaimView, ReleaseRefusalView, Released, ResolveView, RunStatus, RunView,
    WithExit,
};
use guardrail_governor::{Governor, KnowledgeChoice, LiveLogsSource, LogsSource, NdjsonLogs, PipelineOutcome};
use guardrail_knowledge::KnowledgeStore;
use serde_json::Value;

use crate::identity::{Act, Actor, AuthArgs, establish};
use crate::remediation::{
    ConfigArgs, ExecutorChoice, KbArgs, LoadedConfig, OutFormat, PlannerFlags, append_failure, executor, fail,
    load_states, load_trail, now,
};
use guardrail_governor::planner_select::PlannerChoice;

/// `guardrail incident …`.
#[derive(Debug, clap::Subcommand)]
pub enum IncidentCommand {
    /// Run incidents (a scenario file, a list, or sample_data.json) through plan → stress →
    /// gate; execute what the gate validates, queue what it blocks. Exit 0 executed (or dry
    /// run), 10 blocked awaiting approval, 12 execution failed, 3 could not decide.
    Run {
        /// Incident JSON file.
        file: PathBuf,
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Every incident in the audit trail with its state.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutFormat,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// One incident: state, the pending approval (with its plan hash), and its records.
    Show {
        /// Incident id.
        incident: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutFormat,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Execute the authorised action of an incident. `--action` naming anything else is not
    /// executed: it goes through the gate again (and into the queue if blocked).
    Execute {
        /// Incident id.
        incident: String,
        /// The action to run [default: the authorised one].
        #[arg(long)]
        action: Option<String>,
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Release the incident's newest execution claim when it has no result (the executor died
    /// between claim and result), so the authorised action can be executed again. Only an
    /// approver (or force-overrider) of the incident's severity, with a reason; recorded as a
    /// `claim_release`. Exit 0 released, 11 refused (not an approver, a result exists, no stale
    /// claim), 64 no reason, 3 could not decide.
    ReleaseClaim {
        /// Incident id.
        incident: String,
        /// Who releases it: may only restate the identity of your token (or OS account).
        #[arg(long = "as", value_name = "USER")]
        actor: Option<String>,
        #[command(flatten)]
        auth: AuthArgs,
        /// Why the executor is believed dead (required).
        #[arg(long)]
        reason: String,
        /// Time (RFC 3339) [default: now]
        #[arg(long)]
        now: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutFormat,
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Record how an incident was resolved and learn an (unreviewed) runbook from it.
    Resolve {
        /// Incident id.
        incident: String,
        /// What resolved it (the learned runbook's body).
        #[arg(long)]
        summary: String,
        /// Who resolved it: may only restate the identity of your token (or OS account).
        #[arg(long = "as", value_name = "USER")]
        actor: Option<String>,
        #[command(flatten)]
        auth: AuthArgs,
        /// The action that resolved it [default: the last action executed for it].
        #[arg(long)]
        action: Option<String>,
        /// Time (RFC 3339) [default: now]
        #[arg(long)]
        now: Option<String>,
        /// Output format (json: the view `POST /api/incidents/{id}/resolve` answers).
        #[arg(long, value_enum, default_value = "text")]
        format: OutFormat,
        #[command(flatten)]
        kb: KbArgs,
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// What `incident run` and `incident execute` share: who asks, the live inputs of a (re-)gate,
/// the executor and where records go.
#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// Who asks for the remediation (the proposer, who cannot approve it): may only restate
    /// the identity of your token (or, without a tokens file, of your OS account)
    #[arg(long = "as", value_name = "USER")]
    actor: Option<String>,
    #[command(flatten)]
    auth: AuthArgs,
    /// Live logs (NDJSON, one request per line) for the query_live_logs tool [default: the
    /// logs index of an Elasticsearch knowledge base (knowledge.indices.logs; not with knowledge.live_logs: false), else none]
    #[arg(long, value_name = "FILE")]
    logs: Option<PathBuf>,
    /// Deploy-gate inputs (DIR/config/policies.yaml, slos.yaml, data/metrics.json, cost.json,
    /// resolved as `guardrail gate --root DIR`): their SLO/cost signals feed the gate's
    /// signal rules (e.g. a critical burn rate makes restarts and scaling need approval).
    #[arg(long, value_name = "DIR")]
    signals_root: Option<PathBuf>,
    /// Executor [default: the config's executor.default, else dry-run]
    #[arg(long, value_enum)]
    executor: Option<ExecutorChoice>,
    /// Evaluation time (RFC 3339) [default: now]
    #[arg(long)]
    now: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: OutFormat,
    #[command(flatten)]
    kb: KbArgs,
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    planner: PlannerFlags,
}

impl PipelineArgs {
    /// The context both commands run in, with the deploy signals read when `--signals-root`
    /// is given. `Err` is the exit code, the errors already printed (see [`Ctx::new`]).
    fn context<'a>(&'a self, env: EnvLookup<'a>, act: Act) -> Result<Ctx<'a>, Exit> {
        let mut ctx = Ctx::new(
            env,
            &self.store,
            &self.config,
            &self.kb,
            self.logs.clone(),
            self.executor,
            self.now.as_deref(),
            (&self.auth, self.actor.as_deref(), act),
        )?;
        // Chosen before the deploy signals are read and anything is recorded: an unknown planner
        // or a model planner without its key stops here (64 / 3), never falls back to another.
        // `execute` runs an authorised action or re-gates a requested one, which plans without a
        // model: the config's planner: block is not set up for it (an approved action must not
        // wait on a model key), while a flag or variable given to it is still checked.
        let block = if act == Act::Execute { None } else { ctx.cfg.planner.as_ref() };
        ctx.planner = self.planner.select_or_report(block, env, "guardrail")?;
        if let Some(root) = &self.signals_root {
            ctx.signals = Some(deploy_signals(root, env, ctx.now).map_err(|e| fail(&e))?);
        }
        Ok(ctx)
    }
}

/// Runs one `incident` subcommand; returns the exit code.
pub fn run(cmd: IncidentCommand, env: EnvLookup<'_>) -> Exit {
    match cmd {
        IncidentCommand::Run { file, pipeline } => {
            let ctx = match pipeline.context(env, Act::Propose) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let incidents = match guardrail_governor::load_incidents(&file) {
                Ok(i) if i.is_empty() => return fail(&[format!("{}: holds no incident", file.display())]),
                Ok(i) => i,
                Err(e) => return fail(&[e.to_string()]),
            };
            // A SQLite file or an Elasticsearch cluster (--kb, GUARDRAIL_KB, the config's
            // knowledge: block); its live logs too. Either failing decides nothing.
            let knowledge = match ctx.live_logs().and_then(|_| ctx.open_knowledge()) {
                Ok(k) => k,
                Err(e) => return fail(&[e]),
            };
            let mut log = match ctx.log() {
                Ok(l) => l,
                Err(e) => return fail(&[e]),
            };
            let governor = ctx.planner.governor();
            let exec = executor(&ctx.cfg.config, ctx.executor);
            let p = ctx.pipeline(&governor, Some(&*knowledge), &exec);
            let results: Vec<Outcome> = incidents
                .iter()
                .map(|i| {
                    let origin = encode(&FileOrigin { file: file.display().to_string() });
                    ctx.render_run(&i.id, p.decide_and_act(&mut log, i, origin), None)
                })
                .collect();
            report(&results, pipeline.format)
        }
        IncidentCommand::List { format, store } => list(&store, env, format),
        IncidentCommand::Show { incident, format, store } => show(&store, env, &incident, format),
        IncidentCommand::Execute { incident, action, pipeline } => {
            let ctx = match pipeline.context(env, Act::Execute) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let out = ctx.execute_incident(&incident, action.as_deref());
            report(&[out], pipeline.format)
        }
        IncidentCommand::ReleaseClaim { incident, actor: who, auth, reason, now: at, format, config, store } => {
            release_claim(env, &store, &config, (&auth, who.as_deref()), &incident, &reason, at.as_deref(), format)
        }
        IncidentCommand::Resolve {
            incident,
            summary,
            actor: who,
            auth,
            action,
            now: at,
            format,
            kb,
            config,
            store,
        } => {
            let cfg = match config.load(env) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            let actor = match establish(&auth, who.as_deref(), cfg.tokens.as_deref(), Act::Resolve, env) {
                Ok(a) => a,
                Err(r) => return r.report(),
            };
            let choice = match kb.select(Some(&cfg), env) {
                Ok(c) => c,
                Err(e) => return fail(&[e]),
            };
            resolve(env, &store, &choice, &incident, &summary, &actor.name, action.as_deref(), at.as_deref(), format)
        }
    }
}

/// Where an incident came from, recorded as the decision's `origin`.
#[derive(serde::Serialize)]
struct FileOrigin {
    file: String,
}

/// What one incident came to.
pub struct Outcome {
    /// JSON for `--format json`: the outcome's view ([`guardrail_governor::views`]) with
    /// `exit_code` ([`WithExit`]).
    pub json: Value,
    /// Lines for the text report.
    pub text: Vec<String>,
    /// Exit code.
    pub code: Exit,
}

impl Outcome {
    fn error(incident: &str, errors: Vec<String>) -> Outcome {
        let mut text = vec![format!("{incident}: COULD NOT DECIDE (exit {})", Exit::CannotDecide)];
        text.extend(errors.iter().map(|e| format!("  error: {e}")));
        let view = CouldNotDecideView {
            incident_id: incident.to_string(),
            status: CouldNotDecide::CouldNotDecide,
            errors,
            audit: None,
        };
        Outcome::of(view, text, Exit::CannotDecide)
    }

    /// The outcome of a view, its report lines and its exit code.
    pub(crate) fn of<V: serde::Serialize>(view: V, text: Vec<String>, code: Exit) -> Outcome {
        Outcome { json: encode(&WithExit { view, exit_code: code.code() }), text, code }
    }
}

/// `--format json` of `incident run|execute|release-claim` and `approve`: the exit code of the
/// whole command and each result.
#[derive(serde::Serialize)]
struct Report<'a> {
    exit_code: u8,
    results: Vec<&'a Value>,
}

/// Prints results; the exit code is 3 if any could not decide, else 12 if an execution failed,
/// else 11 if something was refused, else 10 if any awaits approval, else 0.
pub fn report(results: &[Outcome], format: OutFormat) -> Exit {
    let codes_seen: Vec<Exit> = results.iter().map(|r| r.code).collect();
    let code = [Exit::CannotDecide, Exit::ExecutionFailed, Exit::Refused, Exit::AwaitingApproval]
        .into_iter()
        .find(|c| codes_seen.contains(c))
        .unwrap_or(Exit::Ok);
    match format {
        OutFormat::Json => {
            let v = Report { exit_code: code.code(), results: results.iter().map(|r| &r.json).collect() };
            println!("{}", serde_json::to_string_pretty(&encode(&v)).unwrap_or_default());
        }
        OutFormat::Text => {
            for (i, r) in results.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                for l in &r.text {
                    if r.code == Exit::CannotDecide {
                        eprintln!("{l}");
                    } else {
                        println!("{l}");
                    }
                }
            }
        }
    }
    code
}

pub(crate) struct Ctx<'a> {
    pub(crate) env: EnvLookup<'a>,
    pub(crate) store: &'a StoreArgs,
    pub(crate) cfg: LoadedConfig,
    /// The knowledge base in force ([`KbArgs::select`]), or why it cannot be set up (kept, not
    /// reported at once: an authorised execution does not need it).
    knowledge: Result<KnowledgeChoice, String>,
    /// The live logs (`--logs`, else an Elasticsearch knowledge base's logs index), or why the
    /// cluster's cannot be reached.
    logs: Result<Option<LiveLogsSource>, String>,
    pub(crate) executor: Option<ExecutorChoice>,
    pub(crate) now: jiff::Timestamp,
    pub(crate) actor: String,
    /// How `actor` was established (recorded with the governor config).
    pub(crate) identity: Actor,
    /// Deploy signals for the gate's signal rules, with where they came from.
    pub(crate) signals: Option<(guardrail_core::signals::Signals, Value)>,
    /// Who plans (`--planner`, `GUARDRAIL_PLANNER`, the config's `planner:`, else builtin).
    pub(crate) planner: PlannerChoice,
}

/// The deploy gate's signals for `root` (the same resolution and checks as `guardrail gate
/// --root`): any problem with those inputs is a could-not-decide.
fn deploy_signals(
    root: &std::path::Path,
    env: EnvLookup<'_>,
    now: jiff::Timestamp,
) -> Result<(guardrail_core::signals::Signals, Value), Vec<String>> {
    use guardrail_gate::{gate, inputs};
    let args = inputs::InputArgs { root: Some(root.to_path_buf()), ..Default::default() };
    let paths = inputs::resolve_paths(&args, env);
    // The messages are the flags' user-facing text (this command's errors are lines).
    let settings = inputs::settings(&args, env, now).map_err(|e| e.all().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let sources = inputs::sources(&paths).map_err(|es| es.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let digests = vec![
        inputs::digest(&sources.policies),
        inputs::digest(&sources.slos),
        inputs::digest(&sources.metrics),
        inputs::digest(&sources.cost),
    ];
    let ev = gate::evaluation(sources, settings)
        .map_err(|e| e.iter().map(|p| format!("--signals-root: {p}")).collect::<Vec<_>>())?;
    /// Where the signals came from, recorded with the decision as `deploy_signals`.
    #[derive(serde::Serialize)]
    struct SignalsMeta<'a> {
        root: String,
        inputs: Vec<inputs::InputDigest>,
        signals: &'a guardrail_core::signals::Signals,
    }
    let meta = encode(&SignalsMeta { root: root.display().to_string(), inputs: digests, signals: &ev.signals });
    Ok((ev.signals, meta))
}

impl<'a> Ctx<'a> {
    /// Loads the config, the time and the logs source, then establishes who acts
    /// ([`crate::identity::establish`]: a token's identity, or the OS account; `--as` may only
    /// restate it). `Err` is the exit code, the errors already printed: 3 for the inputs, the
    /// identity's own codes (64, 14, 15) for who acts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        env: EnvLookup<'a>,
        store: &'a StoreArgs,
        config: &ConfigArgs,
        kb: &KbArgs,
        logs: Option<PathBuf>,
        executor: Option<ExecutorChoice>,
        at: Option<&str>,
        (auth, claimed, act): (&AuthArgs, Option<&str>, Act),
    ) -> Result<Ctx<'a>, Exit> {
        let now = Some(now(at).map_err(|e| crate::remediation::bad_now(&e))?);
        let mut errors = Vec::new();
        let cfg = config.load(env).map_err(|e| errors.extend(e)).ok();
        let logs = match logs {
            None => None,
            Some(p) => NdjsonLogs::open(&p).map_err(|e| errors.push(format!("--logs: {e}"))).ok(),
        };
        match (cfg, now, errors.is_empty()) {
            (Some(cfg), Some(now), true) => {
                for w in &cfg.warnings {
                    eprintln!("guardrail: warning: {w}");
                }
                let identity = establish(auth, claimed, cfg.tokens.as_deref(), act, env).map_err(|r| r.report())?;
                let actor = identity.name.clone();
                let knowledge = kb.select(Some(&cfg), env);
                let logs = match &knowledge {
                    Ok(k) => k.live_logs(logs).map_err(|e| e.to_string()),
                    // Without a knowledge base nothing plans, so nothing reads the logs either.
                    Err(e) => Err(e.clone()),
                };
                Ok(Ctx {
                    env,
                    store,
                    cfg,
                    knowledge,
                    logs,
                    executor,
                    now,
                    actor,
                    identity,
                    signals: None,
                    planner: PlannerChoice::builtin(),
                })
            }
            _ => Err(fail(&errors)),
        }
    }

    /// The governor config in force (file and hash) and how the actor was authenticated, as
    /// recorded with every decision and grant.
    pub(crate) fn governor_config(&self) -> Value {
        self.cfg.describe_as(Some(self.identity.describe()))
    }

    pub(crate) fn at(&self) -> String {
        self.now.to_string()
    }

    /// The audit log of this run (the store opened once), records stamped with `now`.
    pub(crate) fn log(&self) -> Result<StoreLog, String> {
        crate::remediation::open_log(self.store, self.env, &self.at()).map_err(|e| e.to_string())
    }

    /// The knowledge base in force, read-only ([`crate::remediation::open_knowledge`]).
    fn open_knowledge(&self) -> Result<Box<dyn KnowledgeStore>, String> {
        crate::remediation::open_knowledge(self.knowledge.as_ref().map_err(Clone::clone)?, false)
    }

    /// The live logs in force, or why they cannot be read.
    fn live_logs(&self) -> Result<Option<&dyn LogsSource>, String> {
        match &self.logs {
            Ok(l) => Ok(l.as_ref().map(|l| l as &dyn LogsSource)),
            Err(e) => Err(format!("live logs: {e}")),
        }
    }

    /// The pipeline over this context.
    pub(crate) fn pipeline<'p>(
        &'p self,
        governor: &'p Governor,
        kb: Option<&'p dyn KnowledgeStore>,
        exec: &'p Result<Box<dyn guardrail_governor::Executor>, guardrail_governor::pipeline::NoExecutor>,
    ) -> Pipeline<'p> {
        Pipeline {
            governor,
            config: &self.cfg.config,
            run: RunContext {
                proposer: self.actor.clone(),
                knowledge_base: self.knowledge.as_ref().map(KnowledgeChoice::describe).unwrap_or_default(),
                logs: self.live_logs().ok().flatten().map(LogsSource::describe),
                deploy_signals: self.signals.as_ref().map(|(_, m)| m.clone()),
                governor_config: self.governor_config(),
            },
            knowledge: kb,
            logs: self.live_logs().ok().flatten(),
            signals: self.signals.as_ref().map(|(s, _)| s),
            executor: exec.as_ref().map(Box::as_ref).map_err(|e| *e),
            now: self.now,
        }
    }

    /// One incident run as the report shows it (`regate`: it re-gated another action).
    fn render_run(&self, incident_id: &str, run: RunOutcome, regate: Option<RegateView>) -> Outcome {
        let (outcome, decision, next) = match run {
            RunOutcome::NoProposer(e) => return Outcome::error(incident_id, vec![e]),
            RunOutcome::CouldNotDecide { failure, record } => {
                let mut errors = vec![failure.error.to_string()];
                match record {
                    Ok(r) => errors.push(format!("(recorded as audit record {})", r.id())),
                    Err(e) => errors.push(append_failure("the error", "it is not in the trail as such", &e)),
                }
                return Outcome::error(incident_id, errors);
            }
            RunOutcome::Withheld { outcome, error } => {
                let what = format!("decision {}", outcome.gate.output.decision.as_str());
                return Outcome::error(
                    incident_id,
                    vec![append_failure(&what, "it is withheld and nothing runs", &error)],
                );
            }
            RunOutcome::Decided { outcome, decision, next } => (outcome, decision, next),
        };
        let incident = &outcome.incident;
        let view = RunView { regate, ..RunView::decided(&outcome, &decision, &self.actor) };
        let mut text = summary_lines(&outcome, &view.binding_hash);
        text.push(format!("  audit       decision {}", decision.id()));
        match next {
            Next::Executed(exec) => {
                let (step, exec_text, code) = render_execution(&exec, outcome.gated_action());
                text.splice(0..1, [format!("{} — {}", text[0], exec_text[0])]);
                text.extend(exec_text.into_iter().skip(1));
                Outcome::of(view.executed(step, code == Exit::Ok), text, code)
            }
            Next::QueueNotRecorded(e) => Outcome::error(
                &incident.id,
                vec![append_failure("the approval request", "the blocked action is not reliably queued", &e)],
            ),
            Next::Queued { request, requires } => {
                let eligible = self.cfg.config.approvals.for_severity(incident.severity).clone();
                let view = view.queued(&request, requires);
                text[0] = format!("{} — BLOCKED, awaiting approval (exit {})", text[0], Exit::AwaitingApproval);
                text.push(format!("  queued      approval request {}", request.id()));
                let who = if requires == "force_override" { &eligible.force_override } else { &eligible.approvers };
                let who = if who.is_empty() { "nobody (see --governor-config)".to_string() } else { who.join(", ") };
                if requires == "force_override" {
                    text.push(format!(
                        "  next        guardrail approve {} --force-override --reason TEXT   (may override: {who})",
                        incident.id
                    ));
                } else {
                    text.push(format!(
                        "  next        guardrail approve {} [--reason TEXT]   (may approve: {who}; not {})",
                        incident.id, self.actor
                    ));
                }
                Outcome::of(view, text, Exit::AwaitingApproval)
            }
        }
    }

    /// `incident execute`: the authorised action, or a re-gate for another.
    fn execute_incident(&self, incident_id: &str, action: Option<&str>) -> Outcome {
        // One open of the store: the queue is read over the connection the records go to.
        let mut log = match self.log() {
            Ok(l) => l,
            Err(e) => return Outcome::error(incident_id, vec![e]),
        };
        let states = match log.states() {
            Ok(s) => s,
            Err(e) => return Outcome::error(incident_id, vec![e.to_string()]),
        };
        // The knowledge base is needed only for a re-gate (another action asked for): a missing
        // one, or a cluster that does not answer, must not stop (or delay) an authorised
        // execution, and a re-gate without one cannot decide. Logs that cannot be read withhold
        // it too: a re-gate must not stress without them.
        let kb = match action {
            Some(_) => self.live_logs().and_then(|_| self.open_knowledge()),
            None => Err("no re-gate".to_string()),
        };
        // A re-gate plans the requested action (RequestedActionPlanner), whoever plans runs.
        let governor = self.planner.governor();
        let exec = executor(&self.cfg.config, self.executor);
        let p = self.pipeline(&governor, kb.as_ref().ok().map(|k| &**k), &exec);
        match p.execute_incident(&mut log, &states, incident_id, action) {
            ExecuteOutcome::CannotExecute(e) => Outcome::error(incident_id, vec![e.to_string()]),
            ExecuteOutcome::AwaitingApproval { action } => Outcome::of(
                ExecuteRefusal::awaiting_approval(states.get(incident_id), incident_id, &action),
                vec![format!(
                    "{incident_id}: {action} is blocked and awaits approval (exit {}); see guardrail incident show {incident_id}",
                    Exit::AwaitingApproval
                )],
                Exit::AwaitingApproval,
            ),
            ExecuteOutcome::Executed(exec) => {
                let wanted = exec_action(&exec).unwrap_or_default();
                let (execution, text, code) = render_execution(&exec, &wanted);
                let mut t = vec![format!("{incident_id}: {}", text[0])];
                t.extend(text.into_iter().skip(1));
                let view = ExecutedView {
                    incident_id: incident_id.to_string(),
                    status: RunStatus::of_execution(code == Exit::Ok),
                    execution,
                };
                Outcome::of(view, t, code)
            }
            ExecuteOutcome::AlreadyExecuted { execution } => {
                let e: ExecutionBody = decode(&execution.body).unwrap_or_default();
                let claim = e.claim_record.as_deref().unwrap_or("none");
                let by = Some(e.requested_by.as_str()).filter(|b| !b.is_empty()).unwrap_or("someone");
                Outcome::of(
                    ExecuteRefusal::already_executed(incident_id, &execution),
                    vec![format!(
                        "{incident_id}: NOT EXECUTED again (exit {}): it already ran as record {} (claim {claim}, requested by {by}); \
                         a new run needs a new decision (guardrail incident run)",
                        Exit::Refused,
                        execution.id()
                    )],
                    Exit::Refused,
                )
            }
            ExecuteOutcome::RefusalNotRecorded(e) => Outcome::error(
                incident_id,
                vec![append_failure("the refusal of the other action", "it is not gated again", &e)],
            ),
            ExecuteOutcome::Regated { requested, instead_of, refused, run } => {
                let regate = RegateView {
                    requested_action: requested.clone(),
                    instead_of: instead_of.clone(),
                    refusal_record: refused.as_ref().map(ChainedRecord::id),
                };
                let mut o = self.render_run(incident_id, *run, Some(regate));
                if let (Err(e), true) = (&kb, o.code == Exit::CannotDecide) {
                    o.text.push(format!("  error: {e}"));
                }
                o.text.insert(
                    0,
                    format!("{incident_id}: {requested:?} is not the authorised {instead_of}; it went through the gate again:"),
                );
                o
            }
        }
    }
}

fn exec_action(e: &Execution) -> Option<String> {
    match e {
        Execution::Done { body, .. } => Some(body.action.clone()),
        Execution::ClaimHeld { holder } => decode::<ClaimBody>(&holder.body).ok().map(|b| b.action),
        _ => None,
    }
}

/// An execution step as its view, report lines and exit code: 0 ran (or dry run) and
/// recorded, 12 ran and failed (or the executor could not run it), 11 another execution holds
/// the claim, 3 no executor, or the claim or the result could not be recorded.
pub(crate) fn render_execution(e: &Execution, action: &str) -> (ExecutionStep, Vec<String>, Exit) {
    let step = ExecutionStep::of(e, |err| append_failure("the execution claim", "nothing runs", err));
    match e {
        Execution::Unavailable(msg) => (step, vec![format!("NOT EXECUTED: {msg}")], Exit::CannotDecide),
        Execution::ClaimHeld { holder } => {
            let claim: ClaimBody = decode(&holder.body).unwrap_or_default();
            let by = Some(claim.requested_by.as_str()).filter(|b| !b.is_empty()).unwrap_or("someone");
            (
                step,
                vec![
                    format!("NOT EXECUTED (exit {}): another execution of {action} holds the claim", Exit::Refused),
                    format!("  claim       held by record {} (requested by {by})", holder.id()),
                    format!(
                        "  if it died  guardrail incident release-claim {} --reason TEXT   (as an approver)",
                        claim.incident_id
                    ),
                ],
                Exit::Refused,
            )
        }
        Execution::ClaimNotRecorded(err) => {
            let msg = append_failure("the execution claim", "nothing runs", err);
            (step, vec![format!("NOT EXECUTED: {msg}")], Exit::CannotDecide)
        }
        Execution::Done { body, result, claim, record } => {
            let ok = body.ok;
            let code = if ok { Exit::Ok } else { Exit::ExecutionFailed };
            let mut text = vec![match (result, ok) {
                (Ok(r), true) if r.dry_run => format!("DRY RUN of {action} recorded (exit {code})"),
                (Ok(_), true) => format!("EXECUTED {action} (exit {code})"),
                (Ok(_), false) => format!("EXECUTED {action}, which FAILED (exit {code})"),
                (Err(_), _) => format!("NOT EXECUTED (exit {code})"),
            }];
            match result {
                Ok(r) => text.push(format!("  executor    {} {}", r.executor, r.detail)),
                Err(e) => text.push(format!("  error       {e}")),
            }
            if let Some(c) = claim {
                text.push(format!("  claim       {}", c.id()));
            }
            match record {
                Ok(r) => {
                    text.push(format!("  audit       execution {}", r.id()));
                    (step, text, code)
                }
                Err(e) => {
                    let msg = append_failure("the execution result", "the trail is incomplete", e);
                    text.push(format!("  error       {msg}"));
                    (step, text, Exit::CannotDecide)
                }
            }
        }
    }
}

fn summary_lines(o: &PipelineOutcome, hash: &str) -> Vec<String> {
    let st = &o.stress.assessment.output;
    let support: usize = st.claim_evidence.iter().map(|c| c.support_docs.len()).sum();
    let runbook = o.plan.runbook.as_ref().map(|r| format!(" (runbook {})", r.id)).unwrap_or_default();
    let conflicts = if st.policy_conflicts.is_empty() { "none".to_string() } else { st.policy_conflicts.join(", ") };
    let mut out = vec![
        format!("{} ({}, {})", o.incident.id, o.incident.service, o.incident.severity),
        format!("  plan        {}: {}{runbook}", o.plan.planner, o.gated_action()),
        format!(
            "  evidence    coverage {:.2}, support {support}, contradictions {}, policy conflicts {conflicts}",
            st.integration_quality, st.contradiction_count
        ),
        format!("  gate        {} by rule {}", o.gate.output.decision.as_str(), o.gate.rule),
    ];
    for (i, r) in o.gate.output.reasons.iter().enumerate() {
        out.push(format!("  {}  - {r}", if i == 0 { "reasons   " } else { "          " }));
    }
    out.push(format!("  plan hash   {hash}"));
    out
}

fn list(store: &StoreArgs, env: EnvLookup<'_>, format: OutFormat) -> Exit {
    let states = match load_states(store, env) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let rows: Vec<IncidentSummary> = states.values().map(IncidentSummary::new).collect();
    match format {
        OutFormat::Json => println!("{}", serde_json::to_string_pretty(&encode(&rows)).unwrap_or_default()),
        OutFormat::Text => {
            if rows.is_empty() {
                println!("no incidents recorded");
            }
            for r in &rows {
                println!(
                    "{:<26} {:<18} {:<9} {:<32} {}",
                    r.incident_id,
                    r.status.as_str(),
                    r.severity.as_deref().unwrap_or("-"),
                    r.action.as_deref().unwrap_or("-"),
                    r.last_record,
                );
            }
        }
    }
    Exit::Ok
}

fn show(store: &StoreArgs, env: EnvLookup<'_>, incident: &str, format: OutFormat) -> Exit {
    let (records, states) = match load_trail(store, env) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let Some(st) = states.get(incident) else {
        return fail(&[format!("no incident {incident} in the audit trail ({})", store.spec(env))]);
    };
    // The newest decision's planner transcript (a record of its own, named by id and hash).
    let detail = IncidentDetail::new(st).with_transcript(&records);
    match format {
        OutFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&encode(&detail)).unwrap_or_default());
        }
        OutFormat::Text => {
            let claims = guardrail_governor::claims::claims(st);
            let summary = IncidentSummary::new(st);
            println!("{incident}: {}", st.status());
            let fields = [
                ("service", &summary.service),
                ("severity", &summary.severity),
                ("action", &summary.action),
                ("decision", &summary.decision),
                ("binding_hash", &summary.binding_hash),
                ("request_record", &summary.request_record),
                ("requires", &summary.requires),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    println!("  {k:<16} {v}");
                }
            }
            if let Some(d) = &st.decision {
                for r in decode::<DecisionBody>(&d.body).map(|b| b.reasons).unwrap_or_default() {
                    println!("  reason           {r}");
                }
            }
            if let Some(r) = &detail.planner_transcript {
                for l in crate::render::transcript_lines(r, detail.transcript.as_ref()) {
                    println!("{l}");
                }
            }
            if !claims.is_empty() {
                println!("  claims:");
                for c in &claims {
                    println!("    {:<20} {}", c.record.id(), c.describe());
                }
            }
            println!("  records:");
            for r in &st.records {
                let detail = record_detail(r);
                println!("    {:<20} {:<22} {detail}", r.id(), r.kind);
            }
        }
    }
    Exit::Ok
}

/// One line about a governor record for `incident show` (empty for other kinds, or a body that
/// does not decode).
fn record_detail(r: &ChainedRecord) -> String {
    fn d<T: serde::de::DeserializeOwned + Default>(r: &ChainedRecord) -> T {
        decode(&r.body).unwrap_or_default()
    }
    let Some(kind) = RecordKind::parse(&r.kind) else {
        return String::new();
    };
    match kind {
        RecordKind::RemediationDecision => {
            let b: DecisionBody = d(r);
            format!("{} {} ({})", b.decision, b.gated_action, b.rule)
        }
        RecordKind::ApprovalRequest => {
            let b: ApprovalRequestBody = d(r);
            format!("requires {} (proposer {})", b.requires, b.proposer)
        }
        RecordKind::ApprovalRefused => {
            let b: RefusalBody = d(r);
            format!("{} by {}: {}", b.kind, b.approver, b.message)
        }
        RecordKind::ApprovalGranted | RecordKind::ForceOverride => {
            let b: GrantBody = d(r);
            format!("by {} ({})", b.approver, b.reason.unwrap_or_default())
        }
        RecordKind::RemediationExecution => {
            let b: ExecutionBody = d(r);
            format!("{} {} ok={}", b.executor, b.action, b.ok)
        }
        RecordKind::ExecutionClaim => {
            let b: ClaimBody = d(r);
            format!("{} {} by {} ({})", b.executor, b.action, b.requested_by, b.claim)
        }
        RecordKind::ExecutionRefused => {
            let b: ExecutionRefusedBody = d(r);
            format!("{} is not the authorised {}", b.requested_action, b.authorised_action)
        }
        RecordKind::ClaimRelease => {
            let b: ClaimReleaseBody = d(r);
            format!("claim {} released by {}: {}", b.claim, b.released_by, b.reason)
        }
        RecordKind::IncidentResolved => {
            let b: ResolvedBody = d(r);
            format!("by {}: learned runbook {}", b.by, b.runbook_id)
        }
        RecordKind::RemediationError | RecordKind::RunbookReviewed => String::new(),
    }
}

/// The time (`--now`, or the clock), the audit log stamped with it (the store opened once)
/// and the incidents folded from that store, for a command that appends `what` (`.0`; `.1`
/// says what does not happen if it cannot). `Err` is the exit code, the error printed.
type Trail = (String, StoreLog, std::collections::BTreeMap<String, guardrail_governor::queue::IncidentState>);
fn open_trail(store: &StoreArgs, env: EnvLookup<'_>, at: Option<&str>, what: (&str, &str)) -> Result<Trail, Exit> {
    let at = now(at).map_err(|e| crate::remediation::bad_now(&e))?.to_string();
    let mut log =
        crate::remediation::open_log(store, env, &at).map_err(|e| fail(&[append_failure(what.0, what.1, &e)]))?;
    let states = log.states().map_err(|e| fail(&[e.to_string()]))?;
    Ok((at, log, states))
}

/// `incident release-claim`: [`guardrail_governor::claims::release_claim`] over the trail, read
/// and appended through one store connection.
#[allow(clippy::too_many_arguments)]
fn release_claim(
    env: EnvLookup<'_>,
    store: &StoreArgs,
    config: &ConfigArgs,
    (auth, claimed): (&AuthArgs, Option<&str>),
    incident_id: &str,
    reason: &str,
    at: Option<&str>,
    format: OutFormat,
) -> Exit {
    use guardrail_governor::claims::{ReleaseInput, ReleaseOutcome, ReleaseRefusal};
    if reason.trim().is_empty() {
        eprintln!(
            "guardrail: usage error (exit {}): --reason is required: say why the executor is believed dead",
            Exit::Usage
        );
        return Exit::Usage;
    }
    let cfg = match config.load(env) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let actor = match establish(auth, claimed, cfg.tokens.as_deref(), Act::ReleaseClaim, env) {
        Ok(a) => a,
        Err(r) => return r.report(),
    };
    let who = actor.name.as_str();
    let (_, mut log, states) = match open_trail(store, env, at, ("the claim release", "nothing is released")) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let input = ReleaseInput { incident_id: incident_id.into(), by: who.into(), reason: reason.into() };
    let outcome = match guardrail_governor::claims::release_claim(&mut log, &states, &input, &cfg.config.approvals) {
        ReleaseOutcome::CannotDecide(e) => return fail(&[e.to_string()]),
        ReleaseOutcome::NotRecorded(e) => {
            return fail(&[append_failure("the claim release", "the claim is not released", &e)]);
        }
        ReleaseOutcome::Refused { refusal: ReleaseRefusal::NoReason, message } => {
            eprintln!("guardrail: usage error (exit {}): {message}", Exit::Usage);
            return Exit::Usage;
        }
        ReleaseOutcome::Refused { refusal, message } => {
            let text = vec![format!(
                "{incident_id}: claim release by {} REFUSED (exit {}): {message}",
                who.trim(),
                Exit::Refused
            )];
            let view = ReleaseRefusalView {
                incident_id: incident_id.to_string(),
                status: Refused::Refused,
                code: refusal.code().to_string(),
                message,
                release_record: None,
            };
            Outcome::of(view, text, Exit::Refused)
        }
        ReleaseOutcome::AlreadyReleasedBy(holder) => {
            let claim = decode::<ClaimReleaseBody>(&holder.body).map(|b| b.claim).unwrap_or_default();
            let message = format!("claim {claim} was released first by record {}", holder.id());
            let text = vec![format!("{incident_id}: {message} (exit {})", Exit::Refused)];
            let view = ReleaseRefusalView {
                incident_id: incident_id.to_string(),
                status: Refused::Refused,
                code: "already_released".into(),
                message,
                release_record: Some(holder.id()),
            };
            Outcome::of(view, text, Exit::Refused)
        }
        ReleaseOutcome::Released { claim, record } => Outcome::of(
            ReleaseClaimView {
                incident_id: incident_id.to_string(),
                status: Released::Released,
                claim: claim.view(),
                audit: RecordRef::of(&record),
            },
            vec![
                format!("{incident_id}: claim {} RELEASED by {} (exit {})", claim.key(), who.trim(), Exit::Ok),
                format!("  was         {}", claim.describe()),
                format!("  audit       claim_release {}", record.id()),
                format!("  next        guardrail incident execute {incident_id}   (claims the next attempt)"),
            ],
            Exit::Ok,
        ),
    };
    report(&[outcome], format)
}

#[allow(clippy::too_many_arguments)]
fn resolve(
    env: EnvLookup<'_>,
    store: &StoreArgs,
    kb: &KnowledgeChoice,
    incident_id: &str,
    summary: &str,
    who: &str,
    action: Option<&str>,
    at: Option<&str>,
    format: OutFormat,
) -> Exit {
    use guardrail_governor::learn::{LearnError, Resolution, ResolutionField};
    let (at, mut log, states) = match open_trail(store, env, at, ("the resolution", "nothing is learned")) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let mut knowledge = match crate::remediation::open_knowledge(kb, true) {
        Ok(k) => k,
        Err(e) => return fail(&[e]),
    };
    let r = Resolution { incident_id, summary, by: who, action, at: &at };
    let learned = match guardrail_governor::learn::resolve(&mut log, &states, &mut *knowledge, &r) {
        Ok(l) => l,
        Err(LearnError::Fields(problems)) => {
            // Named by the flags that carry them.
            let e: Vec<String> = problems
                .iter()
                .map(|p| match &p.field {
                    ResolutionField::By { given } => format!("--as {given:?}: {}", p.reason),
                    ResolutionField::Summary => format!("--summary: {}", p.reason),
                    ResolutionField::Action => format!("--action: {}", p.reason),
                })
                .collect();
            return fail(&[e.join("; ")]);
        }
        Err(LearnError::NothingExecuted { .. }) => {
            return fail(&[format!("{incident_id}: nothing was executed for it; say what resolved it with --action")]);
        }
        Err(LearnError::NotRecorded(e)) => return fail(&[append_failure("the resolution", "nothing is learned", &e)]),
        Err(e) => return fail(&[format!("{e} ({})", store.spec(env))]),
    };
    let rec = &learned.record;
    let runbook = &learned.runbook;
    if let Some(e) = &learned.mirror_error {
        eprintln!("guardrail: {}", append_failure("the resolution", "the mirror lacks it", e));
    }
    if let Some(e) = &learned.runbook_error {
        return fail(&[format!("resolution recorded as {} but the runbook could not be stored: {e}", rec.id())]);
    }
    let code = if learned.mirror_error.is_some() { Exit::CannotDecide } else { Exit::Ok };
    if format == OutFormat::Json {
        let view = ResolveView::new(incident_id, who, &learned);
        report(&[Outcome::of(view, Vec::new(), code)], format);
        return code;
    }
    println!("{incident_id}: resolved by {} (audit record {})", who.trim(), rec.id());
    println!("  learned runbook {} ({} → {}), UNREVIEWED:", runbook.id, runbook.service, runbook.recommended_action);
    println!("  the planner will not use it until another person runs `guardrail kb review {}`", runbook.id);
    code
}
