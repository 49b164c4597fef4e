//! The governor's parts from the server's state: the config in force, the executor, the
//! knowledge base, the deploy gate's signals and the [`Pipeline`] over them.

use guardrail_governor::pipeline::{NoExecutor, Pipeline};
use guardrail_governor::record::RunContext;
use serde_json::Value;

use crate::api::ApiError;
use crate::auth::Caller;
use crate::state::{AppState, GovernorView};

use guardrail_governor::knowledge_select::{KnowledgePool, PooledKnowledge};
use guardrail_governor::{KnowledgeChoice, LiveLogsSource, LogsSource};
use guardrail_knowledge::KnowledgeStore;

use super::status::{GovernorFailure, kb_unavailable, unavailable_with_code};

pub(crate) fn executor(gov: &GovernorView) -> Result<Box<dyn guardrail_governor::Executor>, NoExecutor> {
    guardrail_governor::record::executor_for(&gov.config, None)
}

/// The governor that plans for one request: the planner chosen at start (`serve --planner`,
/// `GUARDRAIL_PLANNER`), else the `planner:` block of the config in force, else the built-in
/// planner — the same selection as `guardrail incident run`
/// ([`guardrail_governor::planner_select`]). A block that names a model planner which cannot be
/// set up (no key in the server's environment) is a 503 naming why: nothing is planned by a
/// planner the operator did not choose.
pub(crate) fn governor(state: &AppState, view: &GovernorView) -> Result<guardrail_governor::Governor, ApiError> {
    use guardrail_governor::planner_select::{PlannerArgs, select_planner};
    if let Some(choice) = &state.config().governor.planner {
        return Ok(choice.governor());
    }
    // The server's environment (`ServerConfig::env`, read once at start), as the explainer's.
    let env = |k: &str| state.config().env.get(k).cloned();
    let choice = select_planner(PlannerArgs::default(), view.blocks.planner.as_ref(), &env).map_err(|e| {
        eprintln!("guardrail serve: planner: {e}");
        unavailable_with_code("planner_unavailable", state.redactor().text(&e.to_string()))
    })?;
    Ok(choice.governor())
}

/// The governor config in force, re-read if its file changed; a 503 naming the file (not its
/// directory) while it does not read or parse: nothing is decided on a config the operator
/// did not mean.
pub(crate) fn governor_in_force(state: &AppState) -> Result<std::sync::Arc<GovernorView>, ApiError> {
    let view = state.refresh_governor();
    if let Some(why) = &view.broken {
        return Err(unavailable_with_code("governor_config_invalid", why.clone()));
    }
    Ok(view)
}

/// The knowledge base in force for one request: `serve --kb`, else `GUARDRAIL_KB` (the
/// server's environment), else the `knowledge:` block of the config in force, else the default
/// file — the one resolution every command uses
/// ([`guardrail_governor::knowledge_select::select_knowledge`]). Credentials the block names but
/// the environment lacks are a 503 naming the variable: nothing is decided without the
/// knowledge base the operator chose.
pub(crate) fn knowledge(state: &AppState, view: &GovernorView) -> Result<KnowledgeChoice, ApiError> {
    let env = |k: &str| state.config().env.get(k).cloned();
    let named = state.config().governor.kb.as_deref();
    guardrail_governor::select_knowledge(named, view.blocks.knowledge.as_ref(), &env).map_err(|e| {
        eprintln!("guardrail serve: knowledge: {e}");
        unavailable_with_code("knowledge_unavailable", state.redactor().text(&format!("knowledge: {e}")))
    })
}

/// Opens the knowledge base in force for writing (learning: `resolve`); a missing or
/// unreadable one, or a cluster that does not answer, is a 503 ([`kb_unavailable`]).
pub(crate) fn open_kb(state: &AppState, kb: &KnowledgeChoice) -> Result<Box<dyn KnowledgeStore>, ApiError> {
    kb.open_writable().map_err(|e| kb_unavailable(state, e))
}

/// The read-only knowledge bases kept open between requests. One per process, not per
/// server: a connection is keyed by the file it reads and checked against the file on every
/// checkout ([`KnowledgePool`]), so two servers in one process (tests) can share it.
static KB_POOL: std::sync::LazyLock<KnowledgePool> = std::sync::LazyLock::new(KnowledgePool::new);

/// Opens the knowledge base in force read-only, for what only plans and searches (propose,
/// execute's re-gate): a SQLite file's connection kept from an earlier request while the file
/// is unchanged ([`KnowledgePool`]); the same 503 as [`open_kb`].
pub(crate) fn open_kb_read_only(state: &AppState, kb: &KnowledgeChoice) -> Result<PooledKnowledge<'static>, ApiError> {
    KB_POOL.open_read_only(kb).map_err(|e| kb_unavailable(state, e))
}

/// The live logs for `query_live_logs`: `serve --logs` when given, else an Elasticsearch
/// knowledge base's logs index ([`KnowledgeChoice::live_logs`]); a cluster client that cannot
/// be built is a 503, never "no logs".
pub(crate) fn live_logs(state: &AppState, kb: &KnowledgeChoice) -> Result<Option<LiveLogsSource>, ApiError> {
    kb.live_logs(state.config().governor.logs.clone()).map_err(|e| {
        eprintln!("guardrail serve: live logs: {e}");
        unavailable_with_code("logs_unavailable", state.redactor().text(&format!("live logs: {e}")))
    })
}

/// The deploy gate's signals from the server's own inputs (the snapshot `GET /api/decision`
/// answers from), when `guardrail serve --governor-signals` is on; an input problem is a 503
/// (could not decide), never "no signals".
pub(crate) fn deploy_signals(state: &AppState) -> Result<Option<(guardrail_core::signals::Signals, Value)>, ApiError> {
    if !state.config().governor.deploy_signals {
        return Ok(None);
    }
    state.refresh();
    let snap = state.snapshot();
    let undecidable = |e: Vec<guardrail_gate::decide::GateProblem>| {
        let messages: Vec<String> = e.iter().map(ToString::to_string).collect();
        eprintln!("guardrail serve: deploy signals: {}", messages.join("; "));
        GovernorFailure::Unavailable.error("the deploy gate's inputs cannot be evaluated, so nothing can be decided")
    };
    let sources = snap.sources().map_err(undecidable)?;
    let digests: Vec<_> = [&sources.policies, &sources.slos, &sources.metrics, &sources.cost]
        .into_iter()
        .map(guardrail_gate::inputs::digest)
        .collect();
    // The same settings (and clock, or the server's --now) as GET /api/decision.
    let settings = state.settings_now().map_err(undecidable)?;
    let ev = guardrail_gate::gate::evaluation(sources, settings).map_err(|problems| {
        undecidable(problems.into_iter().map(guardrail_gate::decide::GateProblem::Evaluation).collect())
    })?;
    /// Where the signals came from, recorded with the decision as `deploy_signals`.
    #[derive(serde::Serialize)]
    struct SignalsMeta<'a> {
        source: &'static str,
        inputs: Vec<guardrail_gate::inputs::InputDigest>,
        signals: &'a guardrail_core::signals::Signals,
    }
    let meta = SignalsMeta { source: "guardrail serve inputs", inputs: digests, signals: &ev.signals };
    let mut meta = guardrail_governor::record::encode(&meta);
    state.redactor().value(&mut meta);
    Ok(Some((ev.signals, meta)))
}

/// The knowledge base and live logs one request plans over.
pub(crate) struct Retrieval<'a> {
    /// The knowledge base in force (`None`: it could not be set up).
    pub choice: Option<&'a KnowledgeChoice>,
    /// It, opened (`None`: it could not be, and nothing that needs it is decided).
    pub store: Option<&'a dyn KnowledgeStore>,
    /// The live logs, if any.
    pub logs: Option<&'a LiveLogsSource>,
}

/// The pipeline over the server's configuration for what plans nothing (an approval's
/// execution of what was authorised): `kb` if the caller has one, the logs file of `serve
/// --logs` if any.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pipeline<'p>(
    state: &'p AppState,
    view: &'p GovernorView,
    caller: &Caller,
    governor: &'p guardrail_governor::Governor,
    kb: Option<&'p dyn KnowledgeStore>,
    exec: &'p Result<Box<dyn guardrail_governor::Executor>, NoExecutor>,
    signals: Option<&'p (guardrail_core::signals::Signals, Value)>,
    now: jiff::Timestamp,
) -> Pipeline<'p> {
    let mut p = planning_pipeline(
        state,
        view,
        caller,
        governor,
        Retrieval { choice: None, store: kb, logs: None },
        exec,
        signals,
        now,
    );
    let logs = state.config().governor.logs.as_ref();
    p.run.logs = logs.map(|l| {
        let mut d = Value::String(l.describe());
        state.redactor().value(&mut d);
        d.as_str().unwrap_or_default().to_string()
    });
    p.logs = logs.map(|l| l as &dyn LogsSource);
    p
}

/// The pipeline over the server's configuration, proposed (or requested) by the token's
/// identity, planning over `retrieval`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn planning_pipeline<'p>(
    state: &'p AppState,
    view: &'p GovernorView,
    caller: &Caller,
    governor: &'p guardrail_governor::Governor,
    retrieval: Retrieval<'p>,
    exec: &'p Result<Box<dyn guardrail_governor::Executor>, NoExecutor>,
    signals: Option<&'p (guardrail_core::signals::Signals, Value)>,
    now: jiff::Timestamp,
) -> Pipeline<'p> {
    // A file by its name (no path in records an HTTP caller may read), a cluster by its URL.
    let kb_name = match retrieval.choice {
        Some(KnowledgeChoice::Sqlite { path, .. }) => {
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        }
        Some(es @ KnowledgeChoice::Elasticsearch { .. }) => es.describe(),
        None => String::new(),
    };
    Pipeline {
        governor,
        config: &view.config,
        run: RunContext {
            proposer: caller.identity.clone(),
            knowledge_base: kb_name,
            logs: retrieval.logs.map(|l| {
                let mut d = Value::String(l.describe());
                state.redactor().value(&mut d);
                d.as_str().unwrap_or_default().to_string()
            }),
            deploy_signals: signals.map(|(_, m)| m.clone()),
            governor_config: view.description.clone(),
        },
        knowledge: retrieval.store,
        logs: retrieval.logs.map(|l| l as &dyn LogsSource),
        signals: signals.map(|(s, _)| s),
        executor: exec.as_ref().map(Box::as_ref).map_err(|e| *e),
        now,
    }
}

/// One incident's detail with its newest decision's planner transcript (a record of its own,
/// outside the queue fold, found by the id and hash the decision names); `None` when the trail
/// holds no such incident.
pub(crate) fn incident_detail(
    state: &AppState,
    id: &str,
) -> Result<Option<guardrail_governor::views::IncidentDetail>, guardrail_governor::queue::TrailError> {
    use guardrail_governor::queue::TrailError;
    let spec = state.config().store.clone();
    let unreadable = |message: String| TrailError::Store { store: guardrail_store::redact_url(&spec), message };
    let mut store = guardrail_gate::audit_cmd::open(&spec).map_err(|e| unreadable(e.source.to_string()))?;
    let records = store.all().map_err(|e| unreadable(e.to_string()))?;
    let states = guardrail_governor::queue::incident_states(&records);
    Ok(states.get(id).map(|st| guardrail_governor::views::IncidentDetail::new(st).with_transcript(&records)))
}
