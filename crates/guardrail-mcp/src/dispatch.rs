//! Tool dispatch: the role a call needs, [`call_tool`] over the registry, the registry's tools in
//! rmcp's types.

use jiff::Timestamp;
use serde_json::Value;

use guardrail_governor::{NdjsonLogs, ToolContext, ToolError, ToolRegistry};
use guardrail_knowledge::KnowledgeStore;

use crate::config::McpConfig;
use crate::gate_state::{GateState, MissingKnowledge};
use crate::redact::redact_paths;
use crate::roles::{McpCaller, McpRole};

/// The outcome of one tool call: a result, or an error a client reads as `isError: true`.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// The tool's result.
    Ok(Value),
    /// No such tool (a protocol error).
    UnknownTool(String),
    /// The tool failed.
    Failed {
        /// The class of failure.
        kind: FailureKind,
        /// The message, naming the argument or the input.
        message: String,
    },
    /// The HTTP caller's role may not call this tool (with these arguments); nothing ran.
    Forbidden {
        /// The tool.
        tool: String,
        /// The role it needs.
        needs: McpRole,
        /// The caller's role.
        role: McpRole,
    },
}

/// The class of a failed call, the `kind` of its `{"error", "kind"}` result: what a client (or
/// a model) can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The arguments do not fit the tool's schema: correct them.
    InvalidArguments,
    /// The knowledge base failed (missing, unreadable, a broken index).
    Knowledge,
    /// The live logs could not be read.
    Logs,
    /// What the tool reads could not be evaluated (the gate's inputs, the audit store).
    Unavailable,
}

impl FailureKind {
    fn of(e: &ToolError) -> FailureKind {
        match e {
            ToolError::InvalidArguments { .. } => FailureKind::InvalidArguments,
            ToolError::Knowledge { .. } => FailureKind::Knowledge,
            ToolError::Logs { .. } => FailureKind::Logs,
            ToolError::UnknownTool(_) | ToolError::State { .. } | ToolError::Unavailable { .. } => {
                FailureKind::Unavailable
            }
        }
    }
}

/// The role a tool call needs over HTTP: [`McpRole::Deployer`] for `propose_remediation` and
/// for `evaluate_deploy` with `record: true` (it appends to the audit trail); any valid token
/// ([`McpRole::Viewer`]) for the read-only tools.
pub fn required_role(tool: &str, arguments: &Value) -> McpRole {
    match tool {
        "propose_remediation" => McpRole::Deployer,
        "evaluate_deploy" if arguments.get("record") == Some(&Value::Bool(true)) => McpRole::Deployer,
        _ => McpRole::Viewer,
    }
}

/// Calls a tool of [`ToolRegistry::guardrail`] against a configuration, synchronously (files,
/// SQLite). Both transports come here; so can tests.
pub fn call_tool(
    cfg: &McpConfig,
    registry: &ToolRegistry,
    name: &str,
    arguments: Value,
    caller: &McpCaller,
) -> CallOutcome {
    if registry.get(name).is_none() {
        return CallOutcome::UnknownTool(name.to_string());
    }
    if let McpCaller::Http(_, role) = caller {
        let needs = required_role(name, &arguments);
        if !role.allows(needs) {
            return CallOutcome::Forbidden { tool: name.to_string(), needs, role: *role };
        }
    }
    let now = cfg.now.unwrap_or_else(Timestamp::now);
    // The tools only search and plan: the knowledge base is opened read-only. One that cannot
    // be opened (a missing file, a cluster that does not answer) fails every read with why.
    let kb: Box<dyn KnowledgeStore> = match cfg.knowledge.open_read_only() {
        Ok(k) => k,
        Err(e) => Box::new(MissingKnowledge(e.to_string())),
    };
    let file = match &cfg.logs {
        None => None,
        Some(p) => match NdjsonLogs::open(p) {
            Ok(l) => Some(l),
            Err(e) => return CallOutcome::Failed { kind: FailureKind::Logs, message: e.to_string() },
        },
    };
    // The logs file, else an Elasticsearch knowledge base's logs index.
    let logs = match cfg.knowledge.live_logs(file) {
        Ok(l) => l,
        Err(e) => return CallOutcome::Failed { kind: FailureKind::Logs, message: e.to_string() },
    };
    let state = GateState::new(cfg.clone(), caller);
    let mut ctx = ToolContext::new(kb.as_ref(), now).with_guardrail(&state);
    ctx.logs_window_minutes = cfg.logs_window_minutes;
    if let Some(l) = &logs {
        ctx = ctx.with_logs(l);
    }
    let outcome = match registry.call(name, &ctx, arguments) {
        Ok(v) => CallOutcome::Ok(v),
        Err(ToolError::UnknownTool(n)) => CallOutcome::UnknownTool(n),
        Err(e) => CallOutcome::Failed { kind: FailureKind::of(&e), message: e.to_string() },
    };
    match (caller, outcome) {
        (McpCaller::Http(..), CallOutcome::Ok(mut v)) => {
            redact_paths(cfg, &mut v);
            CallOutcome::Ok(v)
        }
        (McpCaller::Http(..), CallOutcome::Failed { kind, message }) => {
            let mut v = Value::String(message);
            redact_paths(cfg, &mut v);
            CallOutcome::Failed { kind, message: v.as_str().unwrap_or_default().to_string() }
        }
        (_, o) => o,
    }
}

/// The registry's tools in rmcp's types (from [`ToolRegistry::mcp_tools`], so the name,
/// description, generated input and output schemas and annotations sent are the registry's own).
pub fn rmcp_tools(registry: &ToolRegistry) -> Result<Vec<rmcp::model::Tool>, serde_json::Error> {
    // Our typed definition and rmcp's share MCP's wire form; going through it keeps every field
    // (rmcp's `Tool` is non-exhaustive).
    registry.mcp_tools().iter().map(|t| serde_json::to_value(t).and_then(serde_json::from_value)).collect()
}
