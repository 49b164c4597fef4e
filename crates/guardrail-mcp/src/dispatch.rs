//! Tool dispatch: the role a call needs, [`call_tool`] over the registry, the registry's tools in
//! rmcp's types.

use jiff::Timestamp;
use serde_json::Value;

use guardrail_governor::{NdjsonLogs, ToolContext, ToolError, ToolRegistry};
use guardrail_knowledge::{KnowledgeStore, SqliteKnowledgeStore};

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
    /// The tool failed: `kind` is `invalid_arguments`, `knowledge`, `logs` or `unavailable`.
    Failed {
        /// The class of failure.
        kind: &'static str,
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
    // The tools only search and plan: the knowledge base is opened read-only.
    let kb: Box<dyn KnowledgeStore> = match SqliteKnowledgeStore::open_read_only(&cfg.kb) {
        Ok(k) => Box::new(k),
        Err(e) => Box::new(MissingKnowledge(e.to_string())),
    };
    let logs = match &cfg.logs {
        None => None,
        Some(p) => match NdjsonLogs::open(p) {
            Ok(l) => Some(l),
            Err(e) => return CallOutcome::Failed { kind: "logs", message: e.to_string() },
        },
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
        Err(e) => {
            let kind = match &e {
                ToolError::InvalidArguments { .. } => "invalid_arguments",
                ToolError::Knowledge { .. } => "knowledge",
                ToolError::Logs { .. } => "logs",
                _ => "unavailable",
            };
            CallOutcome::Failed { kind, message: e.to_string() }
        }
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
