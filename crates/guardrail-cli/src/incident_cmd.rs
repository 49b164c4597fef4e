//! `guardrail incident run|list|show|execute|resolve`: the remediation pipeline from the
//! command line. Plan → stress → gate run in `guardrail-governor`; this module adds the audit
//! records, the approval queue entry of a blocked action, execution of an executable one, and
//! learning from a resolution.
//!
//! Order of effects (fail closed): the decision is recorded *before* anything runs, and an
//! action whose decision could not be recorded never runs (exit 3).

use std::path::PathBuf;

use guardrail_core::approval::valid_user;
use guardrail_core::audit::ChainedRecord;
use guardrail_core::remediation::{Incident, MAX_INCIDENT_TEXT, Verdict, normalise_action};
use guardrail_gate::audit_cmd::StoreArgs;
use guardrail_gate::inputs::EnvLookup;
use guardrail_governor::{ExecutionError, Governor, NdjsonLogs, PipelineOutcome, RequestedActionPlanner, ToolContext};
use guardrail_knowledge::{KnowledgeStore, LearnedFrom, Provenance, Runbook, SqliteKnowledgeStore};
use serde_json::{Value, json};

use crate::remediation::{
    ConfigArgs, ExecutorChoice, IncidentState, KbArgs, LoadedConfig, OutFormat, actor, append, codes, decision_parts,
    executor, fail, kinds, load_states, now,
};

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
    /// Record how an incident was resolved and learn an (unreviewed) runbook from it.
    Resolve {
        /// Incident id.
        incident: String,
        /// What resolved it (the learned runbook's body).
        #[arg(long)]
        summary: String,
        /// Who resolved it.
        #[arg(long = "as", value_name = "USER")]
        actor: String,
        /// The action that resolved it [default: the last action executed for it].
        #[arg(long)]
        action: Option<String>,
        /// Time (RFC 3339) [default: now]
        #[arg(long)]
        now: Option<String>,
        #[command(flatten)]
        kb: KbArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// What `incident run` and `incident execute` share: who asks, the live inputs of a (re-)gate,
/// the executor and where records go.
#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// Who asks for the remediation (the proposer, who cannot approve it)
    /// [default: GUARDRAIL_USER, then USER]
    #[arg(long = "as", value_name = "USER")]
    actor: Option<String>,
    /// Live logs (NDJSON, one request per line) for the query_live_logs tool.
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
}

impl PipelineArgs {
    /// The context both commands run in, with the deploy signals read when `--signals-root`
    /// is given.
    fn context<'a>(&'a self, env: EnvLookup<'a>) -> Result<Ctx<'a>, Vec<String>> {
        let mut ctx = Ctx::new(
            env,
            &self.store,
            &self.config,
            &self.kb,
            self.logs.clone(),
            self.executor,
            self.now.as_deref(),
            self.actor.as_deref(),
        )?;
        if let Some(root) = &self.signals_root {
            ctx.signals = Some(deploy_signals(root, env, ctx.now)?);
        }
        Ok(ctx)
    }
}

/// Runs one `incident` subcommand; returns the exit code.
pub fn run(cmd: IncidentCommand, env: EnvLookup<'_>) -> i32 {
    match cmd {
        IncidentCommand::Run { file, pipeline } => {
            let ctx = match pipeline.context(env) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            let incidents = match guardrail_governor::load_incidents(&file) {
                Ok(i) if i.is_empty() => return fail(&[format!("{}: holds no incident", file.display())]),
                Ok(i) => i,
                Err(e) => return fail(&[e.to_string()]),
            };
            let knowledge = match open_kb(&ctx.kb) {
                Ok(k) => k,
                Err(e) => return fail(&[e]),
            };
            let governor = Governor::default();
            let results: Vec<Outcome> = incidents
                .iter()
                .map(|i| ctx.decide_and_act(&governor, i, &knowledge, json!({"file": file.display().to_string()})))
                .collect();
            report(&results, pipeline.format)
        }
        IncidentCommand::List { format, store } => list(&store, env, format),
        IncidentCommand::Show { incident, format, store } => show(&store, env, &incident, format),
        IncidentCommand::Execute { incident, action, pipeline } => {
            let ctx = match pipeline.context(env) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            let out = ctx.execute_authorised(&incident, action.as_deref());
            report(&[out], pipeline.format)
        }
        IncidentCommand::Resolve { incident, summary, actor: who, action, now: at, kb, store } => {
            resolve(env, &store, &kb, &incident, &summary, &who, action.as_deref(), at.as_deref())
        }
    }
}

/// Opens an existing knowledge base, with the command that creates one when it is missing.
pub fn open_kb(path: &std::path::Path) -> Result<SqliteKnowledgeStore, String> {
    SqliteKnowledgeStore::open(path).map_err(|e| match e {
        guardrail_knowledge::KnowledgeError::NotFound(_) => format!(
            "{e} (run `guardrail kb load examples/governor/sample_data.json{}`)",
            if path == std::path::Path::new(crate::remediation::DEFAULT_KB) {
                String::new()
            } else {
                format!(" --kb {}", path.display())
            }
        ),
        e => e.to_string(),
    })
}

/// What one incident came to.
pub struct Outcome {
    /// JSON for `--format json`.
    pub json: Value,
    /// Lines for the text report.
    pub text: Vec<String>,
    /// Exit code.
    pub code: i32,
}

impl Outcome {
    fn error(incident: &str, errors: Vec<String>) -> Outcome {
        let mut text = vec![format!("{incident}: COULD NOT DECIDE (exit {})", codes::CANNOT_DECIDE)];
        text.extend(errors.iter().map(|e| format!("  error: {e}")));
        Outcome {
            json: json!({"incident_id": incident, "status": "could_not_decide", "errors": errors, "exit_code": codes::CANNOT_DECIDE}),
            text,
            code: codes::CANNOT_DECIDE,
        }
    }
}

/// Prints results; the exit code is 3 if any could not decide, else 12 if an execution failed,
/// else 11 if something was refused, else 10 if any awaits approval, else 0.
pub fn report(results: &[Outcome], format: OutFormat) -> i32 {
    let codes_seen: Vec<i32> = results.iter().map(|r| r.code).collect();
    let code = [codes::CANNOT_DECIDE, codes::EXECUTION_FAILED, codes::REFUSED, codes::AWAITING_APPROVAL]
        .into_iter()
        .find(|c| codes_seen.contains(c))
        .unwrap_or(codes::EXECUTED);
    match format {
        OutFormat::Json => {
            let v = json!({"exit_code": code, "results": results.iter().map(|r| r.json.clone()).collect::<Vec<_>>()});
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        OutFormat::Text => {
            for (i, r) in results.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                for l in &r.text {
                    if r.code == codes::CANNOT_DECIDE {
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
    kb: PathBuf,
    logs: Option<NdjsonLogs>,
    executor: Option<ExecutorChoice>,
    pub(crate) now: jiff::Timestamp,
    pub(crate) actor: String,
    /// Deploy signals for the gate's signal rules, with where they came from.
    pub(crate) signals: Option<(guardrail_core::signals::Signals, Value)>,
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
    let settings = inputs::resolve_settings(&args, env, now)?;
    let sources = inputs::read_sources(&paths)?;
    let digests = vec![
        inputs::digest(&sources.policies),
        inputs::digest(&sources.slos),
        inputs::digest(&sources.metrics),
        inputs::digest(&sources.cost),
    ];
    let ev = gate::evaluate(sources, settings)
        .map_err(|e| e.into_iter().map(|m| format!("--signals-root: {m}")).collect::<Vec<_>>())?;
    let meta = json!({"root": root.display().to_string(), "inputs": digests, "signals": ev.signals});
    Ok((ev.signals, meta))
}

impl<'a> Ctx<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        env: EnvLookup<'a>,
        store: &'a StoreArgs,
        config: &ConfigArgs,
        kb: &KbArgs,
        logs: Option<PathBuf>,
        executor: Option<ExecutorChoice>,
        at: Option<&str>,
        who: Option<&str>,
    ) -> Result<Ctx<'a>, Vec<String>> {
        let mut errors = Vec::new();
        let cfg = config.load(env).map_err(|e| errors.extend(e)).ok();
        let now = now(at).map_err(|e| errors.push(e)).ok();
        let logs = match logs {
            None => None,
            Some(p) => NdjsonLogs::open(&p).map_err(|e| errors.push(format!("--logs: {e}"))).ok(),
        };
        let actor = actor(who, env).unwrap_or_else(|| "unknown".into());
        if !valid_user(&actor) {
            errors.push(format!("--as {actor:?}: not a user name (1-64 of A-Z a-z 0-9 . _ @ -)"));
        }
        match (cfg, now, errors.is_empty()) {
            (Some(cfg), Some(now), true) => {
                for w in &cfg.warnings {
                    eprintln!("guardrail: warning: {w}");
                }
                Ok(Ctx { env, store, cfg, kb: kb.path(env), logs, executor, now, actor, signals: None })
            }
            _ => Err(errors),
        }
    }

    pub(crate) fn at(&self) -> String {
        self.now.to_string()
    }

    pub(crate) fn append(&self, kind: &str, body: Value) -> Result<ChainedRecord, String> {
        append(self.store, self.env, kind, &self.at(), body)
    }

    /// Plan → stress → gate for one incident, recorded; then execution or the queue.
    fn decide_and_act(
        &self,
        governor: &Governor,
        incident: &Incident,
        kb: &SqliteKnowledgeStore,
        origin: Value,
    ) -> Outcome {
        let mut ctx = ToolContext::new(kb, self.now);
        if let Some(l) = &self.logs {
            ctx = ctx.with_logs(l);
        }
        let run = guardrail_governor::record::RunContext {
            proposer: self.actor.clone(),
            knowledge_base: self.kb.display().to_string(),
            logs: self.logs.as_ref().map(guardrail_governor::LogsSource::describe),
            deploy_signals: self.signals.as_ref().map(|(_, m)| m.clone()),
            governor_config: self.cfg.describe(),
        };
        let outcome = match governor.run(incident, &ctx, self.signals.as_ref().map(|(s, _)| s)) {
            Ok(o) => o,
            Err(f) => {
                let mut errors = vec![f.error.to_string()];
                let body = guardrail_governor::record::error_body(incident, &origin, &run, &f);
                match self.append(kinds::ERROR, body) {
                    Ok(r) => errors.push(format!("(recorded as audit record {})", r.id())),
                    Err(e) => errors.push(e),
                }
                return Outcome::error(&incident.id, errors);
            }
        };
        let hash = outcome.binding_hash();
        let decision = outcome.gate.output.decision;
        let body = guardrail_governor::record::decision_body(incident, &origin, &run, &outcome);
        let rec = match self.append(kinds::DECISION, body) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::error(
                    &incident.id,
                    vec![format!("decision {} was NOT recorded, so nothing runs: {e}", decision.as_str())],
                );
            }
        };
        let mut json = json!({
            "incident_id": incident.id,
            "service": incident.service,
            "severity": incident.severity,
            "decision": decision.as_str(),
            "rule": outcome.gate.rule,
            "reasons": outcome.gate.output.reasons,
            "action": outcome.gated_action(),
            "binding_hash": hash,
            "plan": outcome.plan,
            "stress": outcome.stress.assessment,
            "gate": outcome.gate,
            "audit": {"decision": rec.id()},
        });
        let mut text = summary_lines(&outcome, &hash);
        text.push(format!("  audit       decision {}", rec.id()));
        if decision == Verdict::Execute {
            let auth = crate::remediation::Authorisation {
                record: rec.id(),
                by: "gate".into(),
                approver: None,
                action: outcome.gated_action().to_string(),
                binding_hash: hash.clone(),
            };
            let (exec_json, exec_text, code) =
                self.run_executor(&auth, &outcome.incident, &outcome.plan.output, outcome.gated_action());
            json["execution"] = exec_json;
            json["status"] = if code == codes::EXECUTED { "executed".into() } else { "execution_failed".into() };
            json["exit_code"] = code.into();
            text.splice(0..1, [format!("{} — {}", text[0], exec_text[0])]);
            text.extend(exec_text.into_iter().skip(1));
            return Outcome { json, text, code };
        }
        // Blocked: into the queue.
        let requires = guardrail_governor::record::requires(incident, &outcome);
        let eligible = self.cfg.config.approvals.for_severity(incident.severity).clone();
        let body = guardrail_governor::record::approval_request_body(
            incident,
            &outcome,
            &run,
            &rec.id(),
            &self.cfg.config.approvals,
        );
        match self.append(kinds::APPROVAL_REQUEST, body) {
            Ok(req) => {
                json["audit"]["approval_request"] = req.id().into();
                json["status"] = "awaiting_approval".into();
                json["requires"] = requires.into();
                json["exit_code"] = codes::AWAITING_APPROVAL.into();
                text[0] = format!("{} — BLOCKED, awaiting approval (exit {})", text[0], codes::AWAITING_APPROVAL);
                text.push(format!("  queued      approval request {}", req.id()));
                let who = if requires == "force_override" { &eligible.force_override } else { &eligible.approvers };
                let who = if who.is_empty() { "nobody (see --governor-config)".to_string() } else { who.join(", ") };
                if requires == "force_override" {
                    text.push(format!(
                        "  next        guardrail approve {} --force-override --as USER --reason TEXT   (may override: {who})",
                        incident.id
                    ));
                } else {
                    text.push(format!(
                        "  next        guardrail approve {} --as USER [--reason TEXT]   (may approve: {who}; not {})",
                        incident.id, self.actor
                    ));
                }
                Outcome { json, text, code: codes::AWAITING_APPROVAL }
            }
            Err(e) => Outcome::error(&incident.id, vec![format!("the approval request was NOT recorded: {e}")]),
        }
    }

    /// Runs the executor on an authorised action and records the result.
    pub(crate) fn run_executor(
        &self,
        auth: &crate::remediation::Authorisation,
        incident: &Incident,
        plan: &guardrail_core::remediation::PlanOutput,
        action: &str,
    ) -> (Value, Vec<String>, i32) {
        let exec = match executor(&self.cfg.config, self.executor) {
            Ok(e) => e,
            Err(e) => return (json!({"error": e}), vec![format!("NOT EXECUTED: {e}")], codes::CANNOT_DECIDE),
        };
        let (body, result) =
            guardrail_governor::record::execute_authorised(exec.as_ref(), auth, incident, plan, action, &self.actor);
        let ok = body["ok"] == true;
        let rec = self.append(kinds::EXECUTION, body.clone());
        let code = if ok { codes::EXECUTED } else { codes::EXECUTION_FAILED };
        let mut text = vec![match (&result, ok) {
            (Ok(r), true) if r.dry_run => format!("DRY RUN of {action} recorded (exit {code})"),
            (Ok(_), true) => format!("EXECUTED {action} (exit {code})"),
            (Ok(_), false) => format!("EXECUTED {action}, which FAILED (exit {code})"),
            (Err(_), _) => format!("NOT EXECUTED (exit {code})"),
        }];
        match &result {
            Ok(r) => text.push(format!("  executor    {} {}", r.executor, r.detail)),
            Err(e) => text.push(format!("  error       {e}")),
        }
        let mut v = body;
        match rec {
            Ok(r) => {
                text.push(format!("  audit       execution {}", r.id()));
                v["audit"] = r.id().into();
                (v, text, code)
            }
            Err(e) => {
                text.push(format!("  error       the execution result was NOT recorded: {e}"));
                (v, text, codes::CANNOT_DECIDE)
            }
        }
    }

    /// `incident execute`: the authorised action, or a re-gate for another.
    fn execute_authorised(&self, incident_id: &str, action: Option<&str>) -> Outcome {
        let states = match load_states(self.store, self.env) {
            Ok(s) => s,
            Err(e) => return Outcome::error(incident_id, vec![e]),
        };
        let Some(st) = states.get(incident_id) else {
            return Outcome::error(incident_id, vec![format!("no incident {incident_id} in the audit trail")]);
        };
        let Some(d) = &st.decision else {
            return Outcome::error(incident_id, vec![format!("no decision is recorded for {incident_id}")]);
        };
        let (incident, plan, gated) = match decision_parts(d) {
            Ok(p) => p,
            Err(e) => return Outcome::error(incident_id, vec![e]),
        };
        let requested = action.map(|a| normalise_action(a, Some(&incident.service)).id);
        let Some(auth) = st.authorised.clone() else {
            if st.pending.is_some() && requested.as_deref().is_none_or(|a| a == gated) {
                let text = vec![format!(
                    "{incident_id}: {gated} is blocked and awaits approval (exit {}); see guardrail incident show {incident_id}",
                    codes::AWAITING_APPROVAL
                )];
                return Outcome {
                    json: json!({"incident_id": incident_id, "status": "awaiting_approval", "exit_code": codes::AWAITING_APPROVAL}),
                    text,
                    code: codes::AWAITING_APPROVAL,
                };
            }
            if requested.is_none() {
                return Outcome::error(
                    incident_id,
                    vec![format!("nothing is authorised to run for {incident_id} (status {})", st.status())],
                );
            }
            return self.regate(&incident, &gated, action.unwrap_or_default(), json!({"reason": "no authorisation"}));
        };
        let wanted = requested.clone().unwrap_or_else(|| auth.action.clone());
        match guardrail_governor::authorise(&auth.binding_hash, &incident, &plan, &wanted) {
            Ok(_) => {
                let (exec_json, text, code) = self.run_executor(&auth, &incident, &plan, &wanted);
                let mut t = vec![format!("{incident_id}: {}", text[0])];
                t.extend(text.into_iter().skip(1));
                Outcome {
                    json: json!({"incident_id": incident_id, "status": if code == 0 {"executed"} else {"execution_failed"}, "execution": exec_json, "exit_code": code}),
                    text: t,
                    code,
                }
            }
            Err(mismatch) => {
                let body = json!({
                    "incident_id": incident_id,
                    "requested_action": wanted,
                    "authorised_action": auth.action,
                    "authorised_by_record": auth.record,
                    "binding_hash": auth.binding_hash,
                    "found_hash": mismatch.found,
                    "requested_by": self.actor,
                    "message": ExecutionError::Mismatch(mismatch.clone()).to_string(),
                });
                if let Err(e) = self.append(kinds::EXECUTION_REFUSED, body) {
                    return Outcome::error(incident_id, vec![e]);
                }
                self.regate(
                    &incident,
                    &auth.action,
                    action.unwrap_or_default(),
                    json!({"reason": mismatch.to_string()}),
                )
            }
        }
    }

    /// Sends another action for the same incident back through the whole gate.
    fn regate(&self, incident: &Incident, gated: &str, action: &str, why: Value) -> Outcome {
        let kb = match open_kb(&self.kb) {
            Ok(k) => k,
            Err(e) => return Outcome::error(&incident.id, vec![e]),
        };
        let governor = Governor {
            planner: Box::new(RequestedActionPlanner { base: Default::default(), action: action.to_string() }),
            ..Governor::default()
        };
        let mut o = self.decide_and_act(
            &governor,
            incident,
            &kb,
            json!({"regate": {"requested_action": action, "instead_of": gated, "why": why}}),
        );
        o.text.insert(
            0,
            format!("{}: {action:?} is not the authorised {gated}; it went through the gate again:", incident.id),
        );
        o
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

fn list(store: &StoreArgs, env: EnvLookup<'_>, format: OutFormat) -> i32 {
    let states = match load_states(store, env) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let rows: Vec<Value> = states.values().map(state_summary).collect();
    match format {
        OutFormat::Json => println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default()),
        OutFormat::Text => {
            if rows.is_empty() {
                println!("no incidents recorded");
            }
            for r in &rows {
                println!(
                    "{:<26} {:<18} {:<9} {:<32} {}",
                    r["incident_id"].as_str().unwrap_or("-"),
                    r["status"].as_str().unwrap_or("-"),
                    r["severity"].as_str().unwrap_or("-"),
                    r["action"].as_str().unwrap_or("-"),
                    r["last_record"].as_str().unwrap_or("-"),
                );
            }
        }
    }
    codes::EXECUTED
}

fn state_summary(st: &IncidentState) -> Value {
    let d = st.decision.as_ref().map(|d| &d.body);
    json!({
        "incident_id": st.incident_id,
        "status": st.status(),
        "severity": d.and_then(|b| b.pointer("/incident/severity")).cloned(),
        "service": d.and_then(|b| b.pointer("/incident/service")).cloned(),
        "action": d.and_then(|b| b.get("gated_action")).cloned(),
        "decision": d.and_then(|b| b.get("decision")).cloned(),
        "binding_hash": d.and_then(|b| b.get("binding_hash")).cloned(),
        "pending_request": st.pending.as_ref().map(ChainedRecord::id),
        "requires": st.pending.as_ref().and_then(|p| p.body.get("requires")).cloned(),
        "authorised_by": st.authorised.as_ref().map(|a| a.record.clone()),
        "last_record": st.last_record(),
    })
}

fn show(store: &StoreArgs, env: EnvLookup<'_>, incident: &str, format: OutFormat) -> i32 {
    let states = match load_states(store, env) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let Some(st) = states.get(incident) else {
        return fail(&[format!("no incident {incident} in the audit trail ({})", store.spec(env))]);
    };
    let summary = state_summary(st);
    match format {
        OutFormat::Json => {
            let mut v = summary;
            v["records"] = st
                .records
                .iter()
                .map(|r| json!({"id": r.id(), "kind": r.kind, "recorded_at": r.recorded_at, "body": r.body}))
                .collect::<Vec<_>>()
                .into();
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        OutFormat::Text => {
            println!("{incident}: {}", st.status());
            for k in ["service", "severity", "action", "decision", "binding_hash", "pending_request", "requires"] {
                if let Some(v) = summary.get(k).filter(|v| !v.is_null()) {
                    println!("  {k:<16} {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
                }
            }
            if let Some(d) = &st.decision {
                for r in d.body.get("reasons").and_then(Value::as_array).into_iter().flatten() {
                    println!("  reason           {}", r.as_str().unwrap_or_default());
                }
            }
            println!("  records:");
            for r in &st.records {
                let b = &r.body;
                let detail = match r.kind.as_str() {
                    kinds::DECISION => format!("{} {} ({})", s(b, "decision"), s(b, "gated_action"), s(b, "rule")),
                    kinds::APPROVAL_REQUEST => format!("requires {} (proposer {})", s(b, "requires"), s(b, "proposer")),
                    kinds::APPROVAL_REFUSED => format!("{} by {}: {}", s(b, "kind"), s(b, "approver"), s(b, "message")),
                    kinds::APPROVAL_GRANTED | kinds::FORCE_OVERRIDE => {
                        format!("by {} ({})", s(b, "approver"), s(b, "reason"))
                    }
                    kinds::EXECUTION => format!(
                        "{} {} ok={}",
                        s(b, "executor"),
                        s(b, "action"),
                        b.get("ok").and_then(Value::as_bool).unwrap_or(false)
                    ),
                    kinds::EXECUTION_REFUSED => {
                        format!("{} is not the authorised {}", s(b, "requested_action"), s(b, "authorised_action"))
                    }
                    kinds::RESOLVED => format!("by {}: learned runbook {}", s(b, "by"), s(b, "runbook_id")),
                    _ => String::new(),
                };
                println!("    {:<20} {:<22} {detail}", r.id(), r.kind);
            }
        }
    }
    codes::EXECUTED
}

fn s<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
fn resolve(
    env: EnvLookup<'_>,
    store: &StoreArgs,
    kb: &KbArgs,
    incident_id: &str,
    summary: &str,
    who: &str,
    action: Option<&str>,
    at: Option<&str>,
) -> i32 {
    let mut errors = Vec::new();
    if !valid_user(who.trim()) {
        errors.push(format!("--as {who:?}: not a user name (1-64 of A-Z a-z 0-9 . _ @ -)"));
    }
    let summary = summary.trim();
    if summary.is_empty() {
        errors.push("--summary: is empty".into());
    } else if summary.chars().count() > MAX_INCIDENT_TEXT {
        errors.push(format!("--summary: is longer than {MAX_INCIDENT_TEXT} characters"));
    }
    let at = match now(at) {
        Ok(t) => t.to_string(),
        Err(e) => {
            errors.push(e);
            String::new()
        }
    };
    if !errors.is_empty() {
        return fail(&errors);
    }
    let states = match load_states(store, env) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let Some(st) = states.get(incident_id) else {
        return fail(&[format!("no incident {incident_id} in the audit trail ({})", store.spec(env))]);
    };
    let (incident, _, _) = match st.decided() {
        Ok(p) => p,
        Err(e) => return fail(&[e]),
    };
    let executed = st
        .records
        .iter()
        .rev()
        .find(|r| r.kind == kinds::EXECUTION && r.body.get("ok").and_then(Value::as_bool) == Some(true));
    let action = match (action, executed) {
        (Some(a), _) => normalise_action(a, Some(&incident.service)).id,
        (None, Some(r)) => s(&r.body, "action").to_string(),
        (None, None) => {
            return fail(&[format!("{incident_id}: nothing was executed for it; say what resolved it with --action")]);
        }
    };
    if action.is_empty() {
        return fail(&["--action: has no words".into()]);
    }
    let mut knowledge = match open_kb(&kb.path(env)) {
        Ok(k) => k,
        Err(e) => return fail(&[e]),
    };
    let slug: String =
        incident_id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let n = st.records.iter().filter(|r| r.kind == kinds::RESOLVED).count() + 1;
    let runbook_id = format!("learned-{slug}-{n}");
    match knowledge.runbook(&runbook_id) {
        Ok(None) => {}
        Ok(Some(_)) => return fail(&[format!("runbook {runbook_id} already exists in the knowledge base")]),
        Err(e) => return fail(&[e.to_string()]),
    }
    let body = json!({
        "incident_id": incident_id,
        "by": who.trim(),
        "summary": summary,
        "action": action,
        "runbook_id": runbook_id,
        "service": incident.service,
        "decision_record": st.decision.as_ref().map(ChainedRecord::id),
        "execution_record": executed.map(ChainedRecord::id),
        "reviewed": false,
    });
    let rec = match append(store, env, kinds::RESOLVED, &at, body) {
        Ok(r) => r,
        Err(e) => return fail(&[format!("the resolution was NOT recorded, so nothing is learned: {e}")]),
    };
    let title: String = summary.chars().take(80).collect();
    let runbook = Runbook {
        id: runbook_id.clone(),
        service: incident.service.clone(),
        title: format!("Learned from {incident_id}: {title}"),
        recommended_action: action.clone(),
        body: summary.to_string(),
        reviewed: false,
        provenance: Provenance {
            source: "learned".into(),
            origin: Some(format!("incident {incident_id}")),
            reviewed_by: None,
            recorded_at: Some(at),
            learned: Some(LearnedFrom {
                incident_id: incident_id.to_string(),
                audit_record: rec.id(),
                learned_by: who.trim().to_string(),
            }),
        },
    };
    if let Err(e) = knowledge.add_runbook(&runbook) {
        return fail(&[format!("resolution recorded as {} but the runbook could not be stored: {e}", rec.id())]);
    }
    println!("{incident_id}: resolved by {} (audit record {})", who.trim(), rec.id());
    println!("  learned runbook {runbook_id} ({} → {action}), UNREVIEWED:", incident.service);
    println!("  the planner will not use it until another person runs `guardrail kb review {runbook_id} --as USER`");
    codes::EXECUTED
}
