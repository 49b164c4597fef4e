//! [`GateState`]: the Guardrail tools' view of the gate's inputs and the audit store (and the
//! `deploy_error` record of an `evaluate_deploy` that cannot decide).

use jiff::Timestamp;

use guardrail_config::read_source;
use guardrail_core::audit::ChainedRecord;
use guardrail_core::cost::CostReport;
use guardrail_core::signals::Signals;
use guardrail_core::slo::SloReport;
use guardrail_gate::ci;
use guardrail_gate::decide::{self, GateOutcome, Recorder, RequestedBy, Snapshot, Undecided, decide_and_record};
use guardrail_gate::gate::{self, Evaluation};
use guardrail_gate::inputs::{self, InputError};
use guardrail_governor::guardrail_tools::{DecisionExplanation, DeployEvaluation, GuardrailState, StateError};
use guardrail_knowledge::{KnowledgeError, KnowledgeStore};

use crate::config::McpConfig;
use crate::roles::McpCaller;

/// [`GuardrailState`] over the configured files and audit store: each call reads one fresh
/// snapshot of the inputs and evaluates it with `guardrail-gate`, exactly as `guardrail gate`.
#[derive(Debug, Clone)]
pub struct GateState {
    cfg: McpConfig,
    requested_by: RequestedBy,
}

impl GateState {
    /// The state over a configuration, for a caller (recorded as `requested_by` in a
    /// `deploy_decision` that `evaluate_deploy` is asked to record).
    pub fn new(cfg: McpConfig, caller: &McpCaller) -> GateState {
        let requested_by = match caller {
            McpCaller::Http(identity, _) => {
                RequestedBy { identity: Some(identity.clone()), role: None, via: "mcp-http" }
            }
            McpCaller::Stdio => RequestedBy { identity: None, role: None, via: "mcp-stdio" },
        };
        GateState { cfg, requested_by }
    }

    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |k| self.cfg.env.get(k).cloned()
    }

    fn snapshot(&self, now: Timestamp) -> Result<Snapshot, Undecided> {
        decide::read_snapshot(&self.cfg.inputs, &self.lookup(), now)
    }

    fn evaluation(&self, now: Timestamp) -> Result<Evaluation, StateError> {
        let ci = ci::from_env(|_| None);
        self.snapshot(now)
            .and_then(|s| decide::decide(s, ci, false, None))
            .map(|d| d.evaluation)
            .map_err(|u| StateError::Undecided { problems: u.messages() })
    }
}

impl GuardrailState for GateState {
    fn planner(&self) -> guardrail_governor::planner_select::PlannerChoice {
        self.cfg.planner.clone()
    }

    fn slo_status(&self, now: Timestamp) -> Result<SloReport, StateError> {
        let env = self.lookup();
        let paths = inputs::resolve_paths(&self.cfg.inputs, &env);
        let settings = inputs::settings(&self.cfg.inputs, &env, now)?;
        let slos = read_source(&paths.slos).map_err(InputError::from)?;
        let metrics = inputs::metrics_input(&paths, &slos)?;
        gate::slo_report(&slos, &metrics, &settings).map_err(|problems| StateError::Block { problems })
    }

    fn cost_status(&self, now: Timestamp) -> Result<CostReport, StateError> {
        let env = self.lookup();
        let paths = inputs::resolve_paths(&self.cfg.inputs, &env);
        let settings = inputs::settings(&self.cfg.inputs, &env, now)?;
        let src = read_source(&paths.cost).map_err(InputError::from)?;
        gate::cost_report(&src, &settings).map_err(|problems| StateError::Block { problems })
    }

    fn evaluate_deploy(&self, now: Timestamp, record: bool) -> Result<DeployEvaluation, StateError> {
        // No CI context: the caller is an MCP client, not a pipeline.
        let ci = ci::from_env(|_| None);
        let snapshot = self.snapshot(now);
        let (decided, audit) = if record {
            let cfg = &self.cfg;
            let recorder = Recorder {
                store: &cfg.store_spec,
                jsonl: cfg.audit_jsonl.as_deref(),
                requested_by: Some(&self.requested_by),
            };
            match decide_and_record(snapshot, ci, false, &recorder) {
                GateOutcome::Recorded { decided, audit, .. } => (*decided, Some(audit)),
                GateOutcome::Withheld { reason, .. } => return Err(StateError::Withheld(Box::new(reason))),
                GateOutcome::CannotDecide { undecided, record } => {
                    return Err(StateError::NotDecided { problems: undecided.messages(), record: Box::new(record) });
                }
            }
        } else {
            let decided = snapshot
                .and_then(|s| decide::decide(s, ci, false, Some(&self.requested_by)))
                .map_err(|u| StateError::Undecided { problems: u.messages() })?;
            (decided, None)
        };
        Ok(DeployEvaluation { decided, audit })
    }

    fn explain_decision(&self, now: Timestamp) -> Result<DecisionExplanation, StateError> {
        use guardrail_core::explain;
        let ev = self.evaluation(now)?;
        let generated = ev.settings.now.strftime("%Y-%m-%d %H:%M UTC").to_string();
        let policies_path = ev.sources.policies.path.display().to_string();
        let text = explain::narrative(&explain::NarrativeInput {
            decision: &ev.decision,
            slo: &ev.slo,
            cost: &ev.cost,
            generated_at: &generated,
            policies_path: &policies_path,
        });
        Ok(DecisionExplanation {
            action: ev.decision.action,
            policy_id: ev.decision.policy_id.clone(),
            verdict: explain::verdict(ev.decision.action, ev.decision.delay_minutes),
            contributing_factors: explain::contributing_factors(&ev.decision, &ev.slo, &ev.cost),
            also_noted: explain::also_noted(&ev.decision, &ev.slo, &ev.cost),
            recommendations: explain::recommendations(&ev.decision, &ev.slo, &ev.cost),
            narrative: text,
            evaluated_at: ev.settings.now.to_string(),
        })
    }

    fn deploy_signals(&self, now: Timestamp) -> Result<Signals, StateError> {
        self.evaluation(now).map(|ev| ev.signals)
    }

    fn records(&self) -> Result<Vec<ChainedRecord>, StateError> {
        let store = &self.cfg.store_spec;
        let failed = |source| StateError::Store { store: store.clone(), source };
        guardrail_store::open_store(store).and_then(|mut s| s.all()).map_err(failed)
    }
}

/// A knowledge store that is not there: every read fails with the reason (a missing knowledge
/// base is an error for the retrieval tools, never "no results"; the other tools work).
pub(crate) struct MissingKnowledge(pub(crate) String);

impl MissingKnowledge {
    fn err<T>(&self) -> Result<T, KnowledgeError> {
        Err(KnowledgeError::Index { location: "knowledge base".into(), message: self.0.clone() })
    }
}

impl KnowledgeStore for MissingKnowledge {
    fn search_runbooks(
        &self,
        _: &str,
        _: &str,
        _: usize,
    ) -> Result<Vec<guardrail_knowledge::RunbookHit>, KnowledgeError> {
        self.err()
    }
    fn search_evidence(
        &self,
        _: &str,
        _: &str,
        _: usize,
        _: Option<guardrail_core::remediation::Stance>,
    ) -> Result<Vec<guardrail_knowledge::EvidenceHit>, KnowledgeError> {
        self.err()
    }
    fn policies_for(&self, _: &str) -> Result<Vec<guardrail_core::remediation::ActionPolicy>, KnowledgeError> {
        self.err()
    }
    fn runbook(&self, _: &str) -> Result<Option<guardrail_knowledge::Runbook>, KnowledgeError> {
        self.err()
    }
    fn stats(&self) -> Result<guardrail_knowledge::KnowledgeStats, KnowledgeError> {
        self.err()
    }
    fn add_runbook(
        &mut self,
        _: &guardrail_knowledge::Runbook,
    ) -> Result<guardrail_knowledge::LoadReport, KnowledgeError> {
        self.err()
    }
    fn add_evidence(
        &mut self,
        _: &guardrail_knowledge::EvidenceDoc,
    ) -> Result<guardrail_knowledge::LoadReport, KnowledgeError> {
        self.err()
    }
    fn add_policy(
        &mut self,
        _: &guardrail_core::remediation::ActionPolicy,
    ) -> Result<guardrail_knowledge::LoadReport, KnowledgeError> {
        self.err()
    }
}
