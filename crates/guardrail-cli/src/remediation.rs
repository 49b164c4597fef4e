//! Shared wiring of the remediation commands (`incident`, `approve`, `kb`): where the knowledge
//! base and the governor config are, the audit record kinds, the approval queue and the
//! executors.
//!
//! **The approval queue is derived from the audit trail**, not kept in a table of its own: a
//! pending approval is an `approval_request` record not yet followed by a grant, a newer
//! decision for the same incident, or a consuming execution. One source of truth, on the same
//! hash chain as deploy decisions (so editing the queue is editing the chain, which
//! `guardrail audit verify` reports), and it works on both store backends. [`incident_states`]
//! folds the records, in chain order, into one [`IncidentState`] per incident.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use guardrail_core::approval::{ExecutorKind, GovernorConfig};
use guardrail_core::audit::{ChainedRecord, RecordDraft};
use guardrail_gate::audit_cmd::{self, StoreArgs};
use guardrail_gate::exit::Exit;
use guardrail_gate::inputs::EnvLookup;
use guardrail_governor::Executor;
use guardrail_governor::pipeline::NoExecutor;
use guardrail_governor::pipeline::StoreLog;
use guardrail_store::AppendError;
use serde_json::Value;

/// Audit record kinds written by the governor (defined in `guardrail_governor::queue`).
pub use guardrail_governor::queue::kinds;

/// Default knowledge base, relative to the working directory.
pub use guardrail_governor::knowledge_select::DEFAULT_KB;
/// Governor config read when present and no other is named.
pub const DEFAULT_GOVERNOR_CONFIG: &str = ".guardrail/governor.yaml";

/// Where the knowledge base is.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KbArgs {
    /// Knowledge base: a SQLite FTS5 file or an Elasticsearch URL (http(s)://host:9200)
    /// [env: GUARDRAIL_KB] [default: the governor config's knowledge: block, else
    /// .guardrail/knowledge.db]
    #[arg(long, value_name = "PATH|URL", global = true)]
    pub kb: Option<PathBuf>,
}

impl KbArgs {
    /// The knowledge base in force: `--kb`, else `GUARDRAIL_KB`, else `config`'s `knowledge:`
    /// block, else [`DEFAULT_KB`] ([`guardrail_governor::knowledge_select::select_knowledge`], the
    /// one resolution every command and `guardrail serve` use).
    pub fn select(
        &self,
        config: Option<&LoadedConfig>,
        env: EnvLookup<'_>,
    ) -> Result<guardrail_governor::KnowledgeChoice, String> {
        let block = config.and_then(|c| c.knowledge.as_ref());
        guardrail_governor::select_knowledge(self.kb.as_deref(), block, env).map_err(|e| e.to_string())
    }
}

/// Opens the knowledge base in force: read-only (planning, searching) unless `write` (learning,
/// reviews). A missing SQLite file names the command that creates it; an Elasticsearch cluster
/// that cannot answer is an error here, never an empty knowledge base later.
pub fn open_knowledge(
    choice: &guardrail_governor::KnowledgeChoice,
    write: bool,
) -> Result<Box<dyn guardrail_knowledge::KnowledgeStore>, String> {
    let opened = if write { choice.open_writable() } else { choice.open_read_only() };
    opened.map_err(|e| match e {
        guardrail_knowledge::KnowledgeError::NotFound(_) => format!(
            "{e} (run `guardrail kb load examples/governor/sample_data.json{}`)",
            if choice.file() == Some(Path::new(DEFAULT_KB)) {
                String::new()
            } else {
                format!(" --kb {}", choice.describe())
            }
        ),
        e => e.to_string(),
    })
}

/// Where the governor config is.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Governor config (approvers per severity, executors) [env: GUARDRAIL_GOVERNOR_CONFIG]
    /// [default: .guardrail/governor.yaml when it exists; else nobody may approve and the executor is dry-run]
    #[arg(long, value_name = "FILE", global = true)]
    pub governor_config: Option<PathBuf>,
}

/// A loaded governor config and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The config.
    pub config: GovernorConfig,
    /// Its `tokens:` file (resolved against the config's directory), if any: who acts is then
    /// a token's identity ([`crate::identity`]).
    pub tokens: Option<PathBuf>,
    /// The file, or `None` for the built-in empty default.
    pub path: Option<PathBuf>,
    /// The file's sha256.
    pub sha256: Option<String>,
    /// Warnings, as text.
    pub warnings: Vec<String>,
    /// Its `planner:` block, if any (the planner when no flag or variable chooses one).
    pub planner: Option<guardrail_config::PlannerConfig>,
    /// Its `knowledge:` block, if any (the knowledge base when neither `--kb` nor
    /// `GUARDRAIL_KB` names one).
    pub knowledge: Option<guardrail_config::KnowledgeConfig>,
}

impl ConfigArgs {
    /// The file a long-running server watches: the named one (which must exist), else the
    /// default path (which may appear later).
    pub fn source(&self, env: EnvLookup<'_>) -> guardrail_server::state::GovernorSource {
        match self.named(env) {
            Some(path) => guardrail_server::state::GovernorSource { path, required: true },
            None => guardrail_server::state::GovernorSource {
                path: PathBuf::from(DEFAULT_GOVERNOR_CONFIG),
                required: false,
            },
        }
    }

    fn named(&self, env: EnvLookup<'_>) -> Option<PathBuf> {
        self.governor_config
            .clone()
            .or_else(|| env("GUARDRAIL_GOVERNOR_CONFIG").filter(|v| !v.trim().is_empty()).map(PathBuf::from))
    }

    /// Loads the config: the named file (which must exist), else the default path when it
    /// exists, else the empty config (nobody approves, dry-run).
    pub fn load(&self, env: EnvLookup<'_>) -> Result<LoadedConfig, Vec<String>> {
        let path = match self.named(env) {
            Some(p) => p,
            None if Path::new(DEFAULT_GOVERNOR_CONFIG).is_file() => PathBuf::from(DEFAULT_GOVERNOR_CONFIG),
            None => {
                return Ok(LoadedConfig {
                    config: GovernorConfig::default(),
                    tokens: None,
                    path: None,
                    sha256: None,
                    warnings: vec![],
                    planner: None,
                    knowledge: None,
                });
            }
        };
        let read = guardrail_config::read_governor(&path)
            .map_err(|es| es.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        Ok(LoadedConfig {
            config: read.file.config,
            tokens: read.file.tokens,
            path: Some(path),
            sha256: Some(read.sha256),
            warnings: read.warnings,
            planner: read.file.planner,
            knowledge: read.file.knowledge,
        })
    }
}

impl LoadedConfig {
    /// For records: the file and its hash.
    pub fn describe(&self) -> Value {
        self.describe_as(None)
    }

    /// For records: the file and its hash, and how the actor was authenticated (`None`: not
    /// said).
    pub fn describe_as(&self, authenticated_by: Option<Value>) -> Value {
        /// The governor config in force, as recorded with decisions and grants.
        #[derive(serde::Serialize)]
        struct Described<'a> {
            path: Option<String>,
            sha256: &'a Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            authenticated_by: Option<Value>,
        }
        let path = self.path.as_ref().map(|p| p.display().to_string());
        guardrail_governor::record::encode(&Described { path, sha256: &self.sha256, authenticated_by })
    }
}

/// Who plans, on the command line (`incident run|execute`, `serve`, `mcp`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlannerFlags {
    /// Who proposes the remediation: builtin, openai, anthropic or agent-builder [env:
    /// GUARDRAIL_PLANNER] [default: the governor config's planner.backend, else builtin]. A model
    /// only proposes: the gate decides, and a failed model plan blocks and escalates (exit 10)
    #[arg(long, value_name = "PLANNER")]
    pub planner: Option<String>,
    /// The model (agent-builder: the Kibana connector) [env: GUARDRAIL_MODEL] [default: the
    /// config's planner.model, else OPENAI_MODEL / ANTHROPIC_MODEL, else the provider's default]
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
}

impl PlannerFlags {
    /// The planner: these flags, else `GUARDRAIL_PLANNER` / `GUARDRAIL_MODEL`, else `config`'s
    /// `planner:` block, else the built-in planner ([`guardrail_governor::planner_select`]).
    pub fn select(
        &self,
        config: Option<&guardrail_config::PlannerConfig>,
        env: EnvLookup<'_>,
    ) -> Result<guardrail_governor::planner_select::PlannerChoice, guardrail_governor::planner_select::PlannerSelectError>
    {
        let args = guardrail_governor::planner_select::PlannerArgs {
            planner: self.planner.as_deref(),
            model: self.model.as_deref(),
        };
        guardrail_governor::planner_select::select_planner(args, config, env)
    }

    /// [`PlannerFlags::select`], a failure printed with its exit code (64 for a bad name, 3 for
    /// a model planner that cannot be set up), nothing planned or recorded.
    pub fn select_or_report(
        &self,
        config: Option<&guardrail_config::PlannerConfig>,
        env: EnvLookup<'_>,
        command: &str,
    ) -> Result<guardrail_governor::planner_select::PlannerChoice, Exit> {
        self.select(config, env).map_err(|e| {
            let code = e.exit();
            if code == Exit::Usage {
                eprintln!("{command}: {e}");
            } else {
                eprintln!("{command}: could not decide (exit {code}):");
                eprintln!("  error: {e}");
            }
            code
        })
    }
}

/// Which executor, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorChoice {
    /// Record what would run (default unless the config says otherwise).
    DryRun,
    /// Run the action's command template (argv, no shell).
    Command,
    /// POST the action to the configured webhook.
    Webhook,
}

/// Output format of the remediation commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    /// A readable report.
    Text,
    /// JSON on stdout.
    Json,
}

/// Builds the executor: the command-line choice, else the config's default.
pub fn executor(cfg: &GovernorConfig, choice: Option<ExecutorChoice>) -> Result<Box<dyn Executor>, NoExecutor> {
    let kind = match choice {
        Some(ExecutorChoice::DryRun) => ExecutorKind::DryRun,
        Some(ExecutorChoice::Command) => ExecutorKind::Command,
        Some(ExecutorChoice::Webhook) => ExecutorKind::Webhook,
        None => cfg.executor.default,
    };
    guardrail_governor::record::executor_for(cfg, Some(kind))
}

/// Appends one record (and its JSONL mirror copy, when configured). The error says whether
/// the record is in the chain ([`AppendError::in_chain`]); report it with [`append_failure`].
pub fn append(
    store: &StoreArgs,
    env: EnvLookup<'_>,
    kind: &str,
    at: &str,
    body: Value,
) -> Result<ChainedRecord, AppendError> {
    let mut log = open_log(store, env, at)?;
    let draft = RecordDraft { kind: kind.into(), recorded_at: at.into(), body };
    guardrail_store::append_mirrored(log.store(), store.jsonl(env).as_deref(), draft)
}

/// The audit log the pipeline writes to: the store (opened once) and its mirror, records
/// stamped `at`.
pub fn open_log(store: &StoreArgs, env: EnvLookup<'_>, at: &str) -> Result<StoreLog, AppendError> {
    let spec = store.spec(env);
    let s = guardrail_store::open_store(&spec)
        .map_err(|e| AppendError::NotInChain { store: guardrail_store::redact_url(&spec), source: Box::new(e) })?;
    let at: jiff::Timestamp = at.parse().map_err(|e| AppendError::NotInChain {
        store: s.describe(),
        source: Box::new(guardrail_store::StoreError::InvalidRecord(format!("recorded_at {at:?}: {e}"))),
    })?;
    Ok(StoreLog::new(s, store.jsonl(env), at))
}

/// The truth about a failed append of `what`: NOT recorded (nothing is in the chain), or
/// recorded as record X with a failed mirror copy. `then` says what follows (e.g. "nothing
/// runs").
pub fn append_failure(what: &str, then: &str, e: &AppendError) -> String {
    match e.in_chain() {
        None => format!("{what} was NOT recorded, so {then}: {e}"),
        Some(r) => format!(
            "{what} IS recorded in the audit chain as record {}, but its JSONL mirror copy failed, so {then}: {e}",
            r.id()
        ),
    }
}

/// Prints "could not decide" errors and returns 3.
pub fn fail(errors: &[String]) -> Exit {
    eprintln!("guardrail: could not decide (exit {}):", Exit::CannotDecide);
    for e in errors {
        eprintln!("  error: {e}");
    }
    Exit::CannotDecide
}

// The queue fold lives in `guardrail-governor` (shared with the MCP server).
pub use guardrail_governor::queue::{Authorisation, IncidentState, decision_parts, incident_states};

/// Reads the whole trail from the store and folds the governor's records (the trail too: a
/// decision's planner transcript is a record of its own, outside the fold).
pub fn load_trail(
    store: &StoreArgs,
    env: EnvLookup<'_>,
) -> Result<(Vec<ChainedRecord>, BTreeMap<String, IncidentState>), String> {
    let spec = store.spec(env);
    let mut s = audit_cmd::open(&spec).map_err(|e| e.to_string())?;
    let records = s.all().map_err(|e| format!("audit store {spec}: {e}"))?;
    let states = incident_states(&records);
    Ok((records, states))
}

/// Reads the governor's records from the store and folds them.
pub fn load_states(store: &StoreArgs, env: EnvLookup<'_>) -> Result<BTreeMap<String, IncidentState>, String> {
    let spec = store.spec(env);
    let mut s = audit_cmd::open(&spec).map_err(|e| e.to_string())?;
    let records = s.all().map_err(|e| format!("audit store {spec}: {e}"))?;
    Ok(incident_states(&records))
}

/// `guardrail replay` of a `remediation_decision`: the pure gate re-run on the record's own
/// inputs ([`guardrail_governor::replay::replay_decision`]) with the rules in force, compared
/// with what was recorded. Exit 0 identical, 1 different, 3 could not replay (a field of the
/// record is missing or unreadable, named).
pub fn replay_decision(rec: &ChainedRecord, json: bool) -> Exit {
    let rules = guardrail_governor::Governor::default().rules;
    let r = match guardrail_governor::replay::replay_decision(rec, &rules) {
        Ok(r) => r,
        Err(e) => return fail(&[e.to_string()]),
    };
    // Exit 1 (the code DELAY shares) for a replay that differs, as `audit verify` for a broken chain.
    let code = if r.identical { Exit::Ok } else { Exit::Delay };
    let recorded = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    if json {
        let v = guardrail_governor::views::WithExit {
            view: guardrail_governor::views::ReplayView::new(rec, &r),
            exit_code: code.code(),
        };
        println!("{}", serde_json::to_string_pretty(&guardrail_governor::record::encode(&v)).unwrap_or_default());
    } else if r.identical {
        println!(
            "record {}: replayed remediation decision is identical ({} by rule {}, incident {})",
            r.record, r.replayed_decision, r.replayed_rule, r.incident_id
        );
    } else {
        println!("record {}: replayed remediation decision DIFFERS in {}", r.record, r.differing_fields.join(", "));
        println!("  recorded    {} by rule {}", recorded(&r.recorded_decision), recorded(&r.recorded_rule));
        println!("  replayed    {} by rule {}", r.replayed_decision, r.replayed_rule);
    }
    code
}

/// The evaluation time: `--now`, else the clock.
pub fn now(given: Option<&str>) -> Result<jiff::Timestamp, String> {
    match given {
        Some(t) => t.parse().map_err(|e| format!("--now {t:?}: not an RFC 3339 timestamp: {e}")),
        None => Ok(jiff::Timestamp::now()),
    }
}

/// A `--now` that is not a timestamp is a usage error (exit 64), reported before anything is
/// read or recorded.
pub fn bad_now(error: &str) -> Exit {
    eprintln!("guardrail: usage error (exit {}): {error}", Exit::Usage);
    Exit::Usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardrail_core::audit::seal;

    fn chain(items: &[(&str, Value)]) -> Vec<ChainedRecord> {
        let mut out: Vec<ChainedRecord> = Vec::new();
        for (kind, body) in items {
            let d =
                RecordDraft { kind: (*kind).into(), recorded_at: "2026-11-24T10:00:00Z".into(), body: body.clone() };
            let r = seal(out.last(), d);
            out.push(r);
        }
        out
    }

    fn id_of(records: &[ChainedRecord], seq: usize) -> String {
        records[seq - 1].id()
    }

    #[test]
    fn the_queue_folds_from_the_chain() {
        use serde_json::json;
        let blocked =
            json!({"incident_id": "i", "decision": "block_and_escalate", "gated_action": "a", "binding_hash": "h1"});
        let mut recs = chain(&[(kinds::DECISION, blocked.clone())]);
        let d1 = id_of(&recs, 1);
        recs = chain(&[
            (kinds::DECISION, blocked.clone()),
            (kinds::APPROVAL_REQUEST, json!({"incident_id": "i", "decision_record": d1, "binding_hash": "h1"})),
        ]);
        let st = &incident_states(&recs)["i"];
        assert_eq!(st.status(), "awaiting_approval");
        let req = id_of(&recs, 2);
        // A grant for another request releases nothing; the right one does, once.
        let mut items = vec![
            (kinds::DECISION, blocked.clone()),
            (kinds::APPROVAL_REQUEST, json!({"incident_id": "i", "decision_record": d1, "binding_hash": "h1"})),
            (
                kinds::APPROVAL_GRANTED,
                json!({"incident_id": "i", "request_record": "9-ffffffffffff", "action": "a", "binding_hash": "h1", "kind": "approve"}),
            ),
        ];
        assert_eq!(incident_states(&chain(&items))["i"].status(), "awaiting_approval");
        items.push((kinds::APPROVAL_GRANTED, json!({"incident_id": "i", "request_record": req, "action": "a", "binding_hash": "h1", "kind": "approve", "approver": "bob"})));
        let recs = chain(&items);
        let grant = id_of(&recs, 4);
        let st = &incident_states(&recs)["i"];
        assert_eq!(st.status(), "authorised");
        assert_eq!(st.authorised.as_ref().map(|a| a.record.clone()), Some(grant.clone()));
        // A second grant does not replace the first.
        items.push((kinds::APPROVAL_GRANTED, json!({"incident_id": "i", "request_record": req, "action": "a", "binding_hash": "h1", "kind": "approve", "approver": "carol"})));
        let st = &incident_states(&chain(&items))["i"];
        assert_eq!(st.authorised.as_ref().map(|a| a.record.clone()), Some(grant.clone()));
        // An execution that did not start leaves it open; one that ran consumes it.
        items.push((
            kinds::EXECUTION,
            json!({"incident_id": "i", "authorised_by_record": grant, "ran": false, "ok": false}),
        ));
        assert_eq!(incident_states(&chain(&items))["i"].status(), "authorised");
        items.push((
            kinds::EXECUTION,
            json!({"incident_id": "i", "authorised_by_record": grant, "ran": true, "ok": true}),
        ));
        assert_eq!(incident_states(&chain(&items))["i"].status(), "executed");
        // A newer decision supersedes everything before it.
        items.push((kinds::DECISION, blocked));
        let st = &incident_states(&chain(&items))["i"];
        assert_eq!(st.status(), "decided");
        assert!(st.pending.is_none() && st.authorised.is_none());
        // Records of other kinds, or without an incident, are not part of any incident.
        let other = chain(&[("deploy_decision", json!({"incident_id": "i"})), (kinds::DECISION, json!({}))]);
        assert!(incident_states(&other).is_empty());
    }
}
