//! Guardrail's MCP server: `guardrail mcp` (stdio) and `/mcp` (streamable HTTP) for
//! `guardrail serve --mcp`.
//!
//! A thin adapter. The tools — name, description, input and output schemas, annotations and
//! handler — are [`guardrail_governor::ToolRegistry::guardrail`], one
//! [`ToolSpec`](guardrail_governor::tools::ToolSpec) each: the four retrieval tools the built-in
//! planner calls (`search_runbooks`, `search_evidence`, `check_policy_conflicts`,
//! `query_live_logs`, with the original MCP server's argument names) and Guardrail's own
//! (`slo_status`, `cost_status`, `evaluate_deploy`, `explain_decision`, `propose_remediation`,
//! `incident_status`). Their `inputSchema` and `outputSchema` are generated from the argument and
//! result types the handlers use. `tools/list` is the registry's
//! [`mcp_tools`](guardrail_governor::ToolRegistry::mcp_tools) in rmcp's types; `tools/call` runs
//! the registry's handler and answers `structuredContent` as the `outputSchema` describes it (MCP
//! 2025-06-18), with the result's JSON as text content for older clients. No decision logic
//! lives here: [`GateState`] only reads the configured files and the audit store for
//! [`GuardrailState`](guardrail_governor::guardrail_tools::GuardrailState), and the gate rules
//! and thresholds come from those files, never from a request.
//!
//! Errors (MCP 2025-11-25): an unknown tool is a JSON-RPC error (`-32602`); bad arguments and
//! inputs that cannot be evaluated are tool results with `isError: true` and a
//! `{"error", "kind"}` object, so a model can read and correct them.
//!
//! Roles (HTTP only, [`required_role`]): any valid token may list the tools and call the
//! read-only ones; `propose_remediation` and `evaluate_deploy` with `record: true` (which
//! appends to the audit trail) need a `deployer` (or `admin`) token, as `POST /api/incidents`
//! and `POST /api/gate` do. A token whose role is not enough gets a JSON-RPC error (`-32600`,
//! `data.reason = "forbidden"`, naming the tool, the role needed and the token's) and nothing
//! runs. Over stdio there is no token: the client is the local user who started the process,
//! with that user's access to the files, so every tool is callable (as with the CLI).
//!
//! When `evaluate_deploy` is asked to record and the gate cannot decide, a `deploy_error`
//! record is appended (as `guardrail gate` and `POST /api/gate` do), and the error names the
//! reason (without filesystem paths over HTTP) and the record.
//!
//! Built on the official Rust SDK, `rmcp` 3.11: [`rmcp::ServerHandler`] (tools listed from the
//! registry — rmcp's `#[tool]` macros would define the tools here, apart from the planner that
//! calls the same ones, so they are not used), [`rmcp::transport::stdio`], and
//! [`StreamableHttpService`](rmcp::transport::StreamableHttpService) mounted in axum.
//! What rmcp does not do, and this crate does: bearer-token checks for the HTTP transport
//! (rmcp's `auth` feature is an OAuth *client*; a resource server's token check is left to the
//! host application), which [`http_router`] adds as an axum layer answering 401 with
//! `WWW-Authenticate: Bearer` before any MCP processing, and JSON-RPC errors for a JSON body
//! that is not a message (`-32700` Parse error, `-32600` Invalid Request, `-32602` Invalid
//! params, HTTP 400, [`jsonrpc_errors`]) where rmcp would answer 415.

pub mod jsonrpc_errors;

// One job each: `config` (what the server reads), `gate_state` (the gate's inputs and the audit
// store for the Guardrail tools), `dispatch` (roles per tool and `call_tool`), `redact` (paths
// out of HTTP answers), `handler` (rmcp's `ServerHandler`), `roles` (who calls), `stdio` and
// `http` (the transports, the latter with the bearer-token check).
mod config;
mod dispatch;
mod gate_state;
mod handler;
mod http;
mod redact;
mod roles;
mod stdio;

pub use config::McpConfig;
pub use dispatch::{CallOutcome, FailureKind, call_tool, required_role, rmcp_tools};
pub use gate_state::GateState;
pub use handler::{GuardrailMcp, McpError};
pub use http::{HttpOptions, TokenVerifier, http_router, serve_http};
pub use redact::redact_paths;
pub use roles::{McpCaller, McpRole};
pub use stdio::{StdioEnd, serve_stdio};
