//! The MCP server's configuration: the gate's inputs, the knowledge base, logs and audit store.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::Timestamp;

use guardrail_gate::inputs::InputArgs;
use guardrail_governor::tools::DEFAULT_LOGS_WINDOW_MINUTES;

/// Everything the MCP server reads. The same inputs as `guardrail gate` (resolved the same way,
/// flags → environment → `--root` defaults) and the knowledge base, logs and audit store the
/// `incident` commands use.
#[derive(Debug, Clone)]
pub struct McpConfig {
    /// The deploy gate's inputs and settings flags.
    pub inputs: InputArgs,
    /// The environment the inputs and settings are resolved against (`POLICIES_PATH`, …).
    pub env: BTreeMap<String, String>,
    /// The audit store spec (`sqlite:…`, `postgres://…`).
    pub store_spec: String,
    /// The JSON-lines audit mirror, when configured.
    pub audit_jsonl: Option<PathBuf>,
    /// The knowledge base (a SQLite FTS5 file or an Elasticsearch cluster), opened read-side
    /// on each call; chosen as every command chooses it
    /// ([`guardrail_governor::knowledge_select::select_knowledge`]).
    pub knowledge: guardrail_governor::KnowledgeChoice,
    /// Live logs (NDJSON) for `query_live_logs`, when configured; without it, an Elasticsearch
    /// knowledge base's logs index ([`guardrail_governor::KnowledgeChoice::live_logs`]).
    pub logs: Option<PathBuf>,
    /// Default live-logs window, minutes.
    pub logs_window_minutes: u32,
    /// A fixed evaluation time (tests, replays); `None` reads the clock on each call.
    pub now: Option<Timestamp>,
    /// Who plans for `propose_remediation` (`guardrail mcp --planner`, `GUARDRAIL_PLANNER`, the
    /// governor config's `planner:`, else the built-in planner), chosen once at start.
    pub planner: guardrail_governor::planner_select::PlannerChoice,
}

impl McpConfig {
    /// A configuration with default inputs, the given store and knowledge base file, no logs.
    pub fn new(inputs: InputArgs, store_spec: String, kb: PathBuf) -> McpConfig {
        let origin = guardrail_governor::knowledge_select::KnowledgeOrigin::Flag;
        McpConfig::with_knowledge(inputs, store_spec, guardrail_governor::KnowledgeChoice::Sqlite { path: kb, origin })
    }

    /// A configuration with default inputs, the given store and knowledge base, no logs.
    pub fn with_knowledge(
        inputs: InputArgs,
        store_spec: String,
        knowledge: guardrail_governor::KnowledgeChoice,
    ) -> McpConfig {
        McpConfig {
            inputs,
            env: BTreeMap::new(),
            store_spec,
            audit_jsonl: None,
            knowledge,
            logs: None,
            logs_window_minutes: DEFAULT_LOGS_WINDOW_MINUTES,
            now: None,
            planner: guardrail_governor::planner_select::PlannerChoice::builtin(),
        }
    }
}
