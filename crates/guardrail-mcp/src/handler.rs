//! The rmcp [`ServerHandler`]: lists the registry's tools and calls them through [`call_tool`].

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ErrorData, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};
use serde_json::Value;

use guardrail_governor::ToolRegistry;

use crate::config::McpConfig;
use crate::dispatch::{CallOutcome, FailureKind, call_tool, rmcp_tools};
use crate::roles::McpCaller;

struct Shared {
    cfg: McpConfig,
    registry: ToolRegistry,
    tools: Vec<rmcp::model::Tool>,
    /// `true` once [`GuardrailMcp::close`] has run. Every tool call holds a read lock while it
    /// runs, so closing (the write lock) waits for the calls running and refuses later ones.
    closed: std::sync::RwLock<bool>,
}

/// The MCP server handler. Cheap to clone (one per HTTP session).
#[derive(Clone)]
pub struct GuardrailMcp {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GuardrailMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardrailMcp").field("tools", &self.shared.tools.len()).finish_non_exhaustive()
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The registry's tool list could not be read as MCP tools (a bug).
    #[error("the tool registry is not a valid MCP tool list: {0}")]
    Registry(#[from] serde_json::Error),
    /// The client did not complete MCP's initialization (stdio; boxed: an error stays small).
    #[error("MCP transport: {0}")]
    Initialize(Box<rmcp::service::ServerInitializeError>),
    /// The session's task ended abnormally (stdio).
    #[error("MCP transport: {0}")]
    Session(#[from] tokio::task::JoinError),
    /// The HTTP listener failed.
    #[error("MCP transport: {0}")]
    Io(#[from] std::io::Error),
    /// Standard output failed other than by the client closing it (stdio): answers were lost.
    #[error("MCP transport: could not write to standard output: {0}")]
    Output(String),
}

impl GuardrailMcp {
    /// A handler over a configuration with [`ToolRegistry::guardrail`].
    pub fn new(cfg: McpConfig) -> Result<GuardrailMcp, McpError> {
        let registry = ToolRegistry::guardrail();
        let tools = rmcp_tools(&registry)?;
        let closed = std::sync::RwLock::new(false);
        Ok(GuardrailMcp { shared: Arc::new(Shared { cfg, registry, tools, closed }) })
    }

    /// Waits for the tool calls running to finish (a recording call has then written its audit
    /// record), and refuses every later one. For a transport that ends while calls may still run
    /// in their blocking threads, which outlive the session's tasks.
    pub async fn close(&self) {
        let shared = self.shared.clone();
        // The write lock waits for the calls' read locks, so it is taken on a blocking thread.
        let _ = tokio::task::spawn_blocking(move || {
            *shared.closed.write().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        })
        .await;
    }
}

impl ServerHandler for GuardrailMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("guardrail", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Guardrail: the deploy gate (slo_status, cost_status, evaluate_deploy, explain_decision) and the \
                 remediation governor (search_runbooks, search_evidence, check_policy_conflicts, query_live_logs, \
                 propose_remediation, incident_status). Tools read; none executes a remediation or changes a rule.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.shared.tools.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // Over HTTP the bearer check put the caller in the request's extensions; rmcp hands
        // the request's parts to the handler. No parts: stdio.
        let caller = match context.extensions.get::<axum::http::request::Parts>() {
            Some(parts) => match parts.extensions.get::<McpCaller>() {
                Some(c) => c.clone(),
                None => return Err(ErrorData::invalid_request("unauthenticated HTTP request", None)),
            },
            None => McpCaller::Stdio,
        };
        let shared = self.shared.clone();
        let name = request.name.to_string();
        let args = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        let outcome = {
            let (shared, name) = (shared.clone(), name.clone());
            tokio::task::spawn_blocking(move || {
                // Held for the whole call: see `Shared::closed`.
                let closed = shared.closed.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                if *closed {
                    return CallOutcome::Failed {
                        kind: FailureKind::Unavailable,
                        message: "the MCP session is ending; the tool was not called".to_string(),
                    };
                }
                call_tool(&shared.cfg, &shared.registry, &name, args, &caller)
            })
            .await
            .map_err(|e| ErrorData::internal_error(format!("tool call did not complete: {e}"), None))?
        };
        match outcome {
            CallOutcome::Ok(v) => {
                // `call_tool` answered, so the tool exists; its definition shapes the
                // structured content its `outputSchema` describes.
                let tool = shared
                    .registry
                    .get(&name)
                    .ok_or_else(|| ErrorData::internal_error(format!("tool \"{name}\" left the registry"), None))?;
                let structured = tool.structured(v.clone());
                Ok(CallToolResponse::Complete(result(v, structured, false)))
            }
            CallOutcome::UnknownTool(n) => {
                let data = serde_json::to_value(UnknownToolData { tool: &n }).ok();
                Err(ErrorData::invalid_params(format!("unknown tool \"{n}\""), data))
            }
            CallOutcome::Failed { kind, message } => {
                let v = serde_json::to_value(ToolFailure { error: message, kind }).unwrap_or(Value::Null);
                Ok(CallToolResponse::Complete(result(v.clone(), v, true)))
            }
            CallOutcome::Forbidden { tool, needs, role } => Err(ErrorData::invalid_request(
                format!(
                    "tool \"{tool}\" needs a {} (or admin) token; this token's role is {}",
                    needs.as_str(),
                    role.as_str()
                ),
                serde_json::to_value(ForbiddenData {
                    reason: "forbidden",
                    tool: &tool,
                    required_role: needs.as_str(),
                    role: role.as_str(),
                })
                .ok(),
            )),
        }
    }
}

/// The `data` of the JSON-RPC error for an unknown tool.
#[derive(serde::Serialize)]
struct UnknownToolData<'a> {
    tool: &'a str,
}

/// The `data` of the JSON-RPC error for a caller whose role may not call the tool.
#[derive(serde::Serialize)]
struct ForbiddenData<'a> {
    /// Always `forbidden`.
    reason: &'static str,
    tool: &'a str,
    required_role: &'static str,
    role: &'static str,
}

/// A failed call's content (`isError: true`): the message, naming the argument or the input,
/// and its class (`invalid_arguments`, `knowledge`, `logs`, `unavailable`). Clients do not check
/// an error against the tool's `outputSchema` (MCP 2025-06-18).
#[derive(serde::Serialize)]
struct ToolFailure {
    error: String,
    kind: FailureKind,
}

/// A tool result: `structuredContent` as the tool's `outputSchema` describes it
/// ([`guardrail_governor::Tool::structured`]: a list is wrapped as `{"result": …}`, as the
/// original's FastMCP server did), and the text content — the result's JSON as is — for clients
/// older than structured content.
fn result(v: Value, structured: Value, is_error: bool) -> CallToolResult {
    let text = rmcp::model::ContentBlock::text(v.to_string());
    let mut r =
        if is_error { CallToolResult::structured_error(structured) } else { CallToolResult::structured(structured) };
    r.content = vec![text];
    r
}
