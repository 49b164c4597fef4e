//! Guardrail's MCP server: `guardrail mcp` (stdio) and `/mcp` (streamable HTTP) for
//! `guardrail serve --mcp`.
//!
//! A thin adapter. The tools — name, description, JSON schema, annotations and handler — are
//! [`guardrail_governor::ToolRegistry::guardrail`]: the four retrieval tools the built-in
//! planner calls (`search_runbooks`, `search_evidence`, `check_policy_conflicts`,
//! `query_live_logs`, with the original MCP server's argument names) and Guardrail's own
//! (`slo_status`, `cost_status`, `evaluate_deploy`, `explain_decision`, `propose_remediation`,
//! `incident_status`). `tools/list` is the registry's `mcp_tools_list()` read into rmcp's types;
//! `tools/call` runs the registry's handler. No decision logic lives here: [`GateState`] only
//! reads the configured files and the audit store for [`GuardrailState`], and the gate rules
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
//! Built on the official Rust SDK, `rmcp` 3.11: [`rmcp::ServerHandler`] (tools listed from our
//! own JSON schemas — the `#[tool]` macros would derive a second schema from Rust types, so they
//! are not used), [`rmcp::transport::stdio`], and [`StreamableHttpService`] mounted in axum.
//! What rmcp does not do, and this crate does: bearer-token checks for the HTTP transport
//! (rmcp's `auth` feature is an OAuth *client*; a resource server's token check is left to the
//! host application), which [`http_router`] adds as an axum layer answering 401 with
//! `WWW-Authenticate: Bearer` before any MCP processing, and JSON-RPC errors for a JSON body
//! that is not a message (`-32700` Parse error, `-32600` Invalid Request, `-32602` Invalid
//! params, HTTP 400, [`jsonrpc_errors`]) where rmcp would answer 415.

pub mod jsonrpc_errors;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ErrorData, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};

use guardrail_core::audit::ChainedRecord;
use guardrail_core::signals::Signals;
use guardrail_gate::decide::{self, GateOutcome, Recorder, RequestedBy, Snapshot, Undecided, decide_and_record};
use guardrail_gate::gate::{self, Evaluation};
use guardrail_gate::inputs::{self, InputArgs};
use guardrail_gate::{audit_cmd, ci};
use guardrail_governor::guardrail_tools::GuardrailState;
use guardrail_governor::tools::DEFAULT_LOGS_WINDOW_MINUTES;
use guardrail_governor::{NdjsonLogs, ToolContext, ToolError, ToolRegistry};
use guardrail_knowledge::{KnowledgeError, KnowledgeStore, SqliteKnowledgeStore};
use guardrail_store::AppendError;

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
    /// The knowledge base (SQLite FTS5 file), opened read-side on each call.
    pub kb: PathBuf,
    /// Live logs (NDJSON) for `query_live_logs`, when configured.
    pub logs: Option<PathBuf>,
    /// Default live-logs window, minutes.
    pub logs_window_minutes: u32,
    /// A fixed evaluation time (tests, replays); `None` reads the clock on each call.
    pub now: Option<Timestamp>,
}

impl McpConfig {
    /// A configuration with default inputs, the given store and knowledge base, no logs.
    pub fn new(inputs: InputArgs, store_spec: String, kb: PathBuf) -> McpConfig {
        McpConfig {
            inputs,
            env: BTreeMap::new(),
            store_spec,
            audit_jsonl: None,
            kb,
            logs: None,
            logs_window_minutes: DEFAULT_LOGS_WINDOW_MINUTES,
            now: None,
        }
    }
}

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

    fn evaluation(&self, now: Timestamp) -> Result<Evaluation, String> {
        let ci = ci::from_env(|_| None);
        self.snapshot(now)
            .and_then(|s| decide::decide(s, ci, false, None))
            .map(|d| d.evaluation)
            .map_err(|u| u.errors.join("; "))
    }
}

/// The tool error of an `evaluate_deploy` that was asked to record and could not decide: the
/// reason and the `deploy_error` record (or that it could not be written either).
fn cannot_decide(undecided: &Undecided, record: &Result<ChainedRecord, AppendError>) -> String {
    let reason = undecided.errors.join("; ");
    let kind = gate::ERROR_KIND;
    match record {
        Ok(rec) => format!("could not decide: {reason} (recorded as {kind} audit record {})", rec.id()),
        Err(e) => match e.in_chain() {
            Some(r) => format!(
                "could not decide: {reason} (recorded as {kind} audit record {}; its JSONL mirror copy failed: {e})",
                r.id()
            ),
            None => format!("could not decide: {reason}; the {kind} record could not be written either: {e}"),
        },
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| format!("could not serialise the result: {e}"))
}

impl GuardrailState for GateState {
    fn slo_status(&self, now: Timestamp) -> Result<Value, String> {
        let env = self.lookup();
        let paths = inputs::resolve_paths(&self.cfg.inputs, &env);
        let settings = inputs::resolve_settings(&self.cfg.inputs, &env, now).map_err(|e| e.join("; "))?;
        let slos = inputs::read(&paths.slos)?;
        let metrics = inputs::read_metrics(&paths, &slos)?;
        to_value(&gate::evaluate_slo(&slos, &metrics, &settings).map_err(|e| e.join("; "))?)
    }

    fn cost_status(&self, now: Timestamp) -> Result<Value, String> {
        let env = self.lookup();
        let paths = inputs::resolve_paths(&self.cfg.inputs, &env);
        let settings = inputs::resolve_settings(&self.cfg.inputs, &env, now).map_err(|e| e.join("; "))?;
        let src = inputs::read(&paths.cost)?;
        to_value(&gate::evaluate_cost(&src, &settings).map_err(|e| e.join("; "))?)
    }

    fn evaluate_deploy(&self, now: Timestamp, record: bool) -> Result<Value, String> {
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
                GateOutcome::Withheld { reason, .. } => return Err(reason.to_string()),
                GateOutcome::CannotDecide { undecided, record } => return Err(cannot_decide(&undecided, &record)),
            }
        } else {
            let decided = snapshot
                .and_then(|s| decide::decide(s, ci, false, Some(&self.requested_by)))
                .map_err(|u| u.errors.join("; "))?;
            (decided, None)
        };
        let mut out = decided.output();
        out.audit = audit;
        let mut v = to_value(&out)?;
        if let Value::Object(m) = &mut v {
            m.insert("recorded".into(), json!(record));
        }
        Ok(v)
    }

    fn explain_decision(&self, now: Timestamp) -> Result<Value, String> {
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
        Ok(json!({
            "action": ev.decision.action,
            "policy_id": ev.decision.policy_id,
            "verdict": explain::verdict(ev.decision.action, ev.decision.delay_minutes),
            "contributing_factors": explain::contributing_factors(&ev.decision, &ev.slo, &ev.cost),
            "also_noted": explain::also_noted(&ev.decision, &ev.slo, &ev.cost),
            "recommendations": explain::recommendations(&ev.decision, &ev.slo, &ev.cost),
            "narrative": text,
            "evaluated_at": ev.settings.now.to_string(),
        }))
    }

    fn deploy_signals(&self, now: Timestamp) -> Result<Signals, String> {
        self.evaluation(now).map(|ev| ev.signals).map_err(|e| format!("the deploy gate's signals: {e}"))
    }

    fn records(&self) -> Result<Vec<ChainedRecord>, String> {
        let mut s = audit_cmd::open(&self.cfg.store_spec)?;
        s.all().map_err(|e| format!("audit store {}: {e}", self.cfg.store_spec))
    }
}

/// A knowledge store that is not there: every read fails with the reason (a missing knowledge
/// base is an error for the retrieval tools, never "no results"; the other tools work).
struct MissingKnowledge(String);

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

/// Keeps filesystem paths out of what an HTTP caller sees (as `guardrail serve` does for its
/// API): the configured files become their names, and any other absolute path in a string is
/// cut to its last component. Over stdio the client runs on this machine and sees full paths.
pub fn redact_paths(cfg: &McpConfig, v: &mut Value) {
    let lookup = |k: &str| cfg.env.get(k).cloned();
    let paths = inputs::resolve_paths(&cfg.inputs, &lookup);
    let mut files: Vec<PathBuf> = vec![paths.policies, paths.slos, paths.metrics, paths.cost, cfg.kb.clone()];
    files.extend(cfg.logs.clone());
    files.push(PathBuf::from(cfg.store_spec.strip_prefix("sqlite:").unwrap_or(&cfg.store_spec)));
    let mut pairs: Vec<(String, String)> = Vec::new();
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        pairs.push((f.display().to_string(), name.clone()));
        if let Ok(c) = std::fs::canonicalize(f) {
            pairs.push((c.display().to_string(), name));
        }
    }
    pairs.retain(|(from, to)| !from.is_empty() && !to.is_empty() && from != to);
    pairs.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
    redact_value(v, &pairs);
}

fn redact_value(v: &mut Value, pairs: &[(String, String)]) {
    match v {
        Value::String(s) => {
            let mut out = s.clone();
            for (from, to) in pairs {
                if out.contains(from.as_str()) {
                    out = out.replace(from.as_str(), to);
                }
            }
            *s = cut_absolute_paths(&out);
        }
        Value::Array(xs) => xs.iter_mut().for_each(|x| redact_value(x, pairs)),
        Value::Object(m) => m.values_mut().for_each(|x| redact_value(x, pairs)),
        _ => {}
    }
}

/// `/a/b/c.yaml:3:1: x` → `c.yaml:3:1: x`. A path starts with `/` at the start of the text or
/// after a space, quote, `(`, `=` or `:` (not `//`, so URLs stay) and ends at white space, a
/// quote, `,`, `)` or `:`.
fn cut_absolute_paths(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut prev: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let starts = c == '/'
            && !rest.starts_with("//")
            && prev.is_none_or(|p| p.is_whitespace() || matches!(p, '"' | '\'' | '(' | '=' | ':'));
        if starts {
            let end = rest
                .find(|ch: char| ch.is_whitespace() || matches!(ch, '"' | '\'' | ',' | ')' | ':'))
                .unwrap_or(rest.len());
            let path = &rest[..end];
            out.push_str(path.rsplit('/').find(|p| !p.is_empty()).unwrap_or("."));
            prev = path.chars().last();
            rest = &rest[end..];
        } else {
            out.push(c);
            prev = Some(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The registry's tools in rmcp's types (from `ToolRegistry::mcp_tools_list`, so the schema and
/// annotations sent are the registry's own).
pub fn rmcp_tools(registry: &ToolRegistry) -> Result<Vec<rmcp::model::Tool>, serde_json::Error> {
    let list = registry.mcp_tools_list();
    let tools = list.get("tools").cloned().unwrap_or(Value::Array(vec![]));
    serde_json::from_value(tools)
}

struct Shared {
    cfg: McpConfig,
    registry: ToolRegistry,
    tools: Vec<rmcp::model::Tool>,
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
    /// The transport failed.
    #[error("MCP transport: {0}")]
    Transport(String),
}

impl GuardrailMcp {
    /// A handler over a configuration with [`ToolRegistry::guardrail`].
    pub fn new(cfg: McpConfig) -> Result<GuardrailMcp, McpError> {
        let registry = ToolRegistry::guardrail();
        let tools = rmcp_tools(&registry)?;
        Ok(GuardrailMcp { shared: Arc::new(Shared { cfg, registry, tools }) })
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
        let outcome =
            tokio::task::spawn_blocking(move || call_tool(&shared.cfg, &shared.registry, &name, args, &caller))
                .await
                .map_err(|e| ErrorData::internal_error(format!("tool call did not complete: {e}"), None))?;
        match outcome {
            CallOutcome::Ok(v) => Ok(CallToolResponse::Complete(structured(v, false))),
            CallOutcome::UnknownTool(n) => {
                Err(ErrorData::invalid_params(format!("unknown tool \"{n}\""), Some(json!({"tool": n}))))
            }
            CallOutcome::Failed { kind, message } => {
                Ok(CallToolResponse::Complete(structured(json!({"error": message, "kind": kind}), true)))
            }
            CallOutcome::Forbidden { tool, needs, role } => Err(ErrorData::invalid_request(
                format!(
                    "tool \"{tool}\" needs a {} (or admin) token; this token's role is {}",
                    needs.as_str(),
                    role.as_str()
                ),
                Some(
                    json!({"reason": "forbidden", "tool": tool, "required_role": needs.as_str(), "role": role.as_str()}),
                ),
            )),
        }
    }
}

/// `structuredContent` must be an object: a list result is wrapped as `{"result": …}` (as the
/// original's FastMCP server did); the text content is the result's JSON as is.
fn structured(v: Value, is_error: bool) -> CallToolResult {
    let text = rmcp::model::ContentBlock::text(v.to_string());
    let object = if v.is_object() { v } else { json!({ "result": v }) };
    let mut r = if is_error { CallToolResult::structured_error(object) } else { CallToolResult::structured(object) };
    r.content = vec![text];
    r
}

/// Serves MCP over standard input and output until the client closes it.
pub async fn serve_stdio(cfg: McpConfig) -> Result<(), McpError> {
    let handler = GuardrailMcp::new(cfg)?;
    let running = handler.serve(rmcp::transport::stdio()).await.map_err(|e| McpError::Transport(e.to_string()))?;
    running.waiting().await.map_err(|e| McpError::Transport(e.to_string()))?;
    Ok(())
}

/// Checks a bearer token; returns the caller's identity and role, or `None` to refuse.
pub type TokenVerifier = Arc<dyn Fn(&str) -> Option<(String, McpRole)> + Send + Sync>;

/// A token's role, as far as MCP tools go (the roles of `guardrail serve`'s tokens file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpRole {
    /// Read-only tools only.
    Viewer,
    /// Read-only tools, `propose_remediation`, `evaluate_deploy` with `record: true`.
    Deployer,
    /// Read-only tools (approvals are not MCP tools).
    Approver,
    /// Everything.
    Admin,
}

impl McpRole {
    /// The role's name as in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            McpRole::Viewer => "viewer",
            McpRole::Deployer => "deployer",
            McpRole::Approver => "approver",
            McpRole::Admin => "admin",
        }
    }

    /// True when this role may call a tool that needs `need` ([`required_role`]).
    pub fn allows(self, need: McpRole) -> bool {
        need == McpRole::Viewer || self == McpRole::Admin || self == need
    }
}

/// Who calls: an authenticated HTTP caller (identity and role from the tokens file, put in the
/// request's extensions by the bearer check), or the local process over stdio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpCaller {
    /// Over streamable HTTP, with the token's identity and role.
    Http(String, McpRole),
    /// Over stdio (the client started this process; no role check).
    Stdio,
}

/// Options of the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// `Host` values accepted (DNS-rebinding protection). Default: loopback names only.
    pub allowed_hosts: Vec<String>,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            max_body_bytes: 1024 * 1024,
        }
    }
}

async fn require_bearer(State(verify): State<TokenVerifier>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match token.and_then(|t| verify(t)) {
        Some((identity, role)) => {
            req.extensions_mut().insert(McpCaller::Http(identity, role));
            let delete = req.method() == axum::http::Method::DELETE;
            let resp = next.run(req).await;
            // rmcp answers a session's DELETE with 202; the spec names no code, and clients
            // (the Python SDK) expect 200 or 204 for a session that is now gone.
            if delete && resp.status() == StatusCode::ACCEPTED { StatusCode::NO_CONTENT.into_response() } else { resp }
        }
        None => {
            let error = if token.is_some() { "invalid_token" } else { "invalid_request" };
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, format!("Bearer realm=\"guardrail-mcp\", error=\"{error}\""))],
                axum::Json(json!({"ok": false, "error": "a valid bearer token is required"})),
            )
                .into_response()
        }
    }
}

/// An axum router serving MCP's streamable HTTP transport at `/mcp` (POST for messages, GET
/// for the server's event stream, DELETE to end a session), behind a bearer-token check.
/// Sessions (`Mcp-Session-Id`), `Accept` negotiation, `MCP-Protocol-Version` checks and
/// `202 Accepted` for notifications are rmcp's [`StreamableHttpService`]. Merge it into a
/// server's router (`.merge(…)`); bind it to loopback unless told otherwise.
pub fn http_router(cfg: McpConfig, verify: TokenVerifier, opts: HttpOptions) -> Result<axum::Router, McpError> {
    let handler = GuardrailMcp::new(cfg)?;
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(opts.allowed_hosts)
        .with_max_request_body_bytes(opts.max_body_bytes)
        .with_sse_keep_alive(Some(std::time::Duration::from_secs(15)));
    let service =
        StreamableHttpService::new(move || Ok(handler.clone()), Arc::new(LocalSessionManager::default()), config);
    Ok(axum::Router::new()
        .route_service("/mcp", service)
        // Inner: a JSON body that is not a message gets a JSON-RPC error; outer: the token first.
        .layer(middleware::from_fn_with_state(opts.max_body_bytes, jsonrpc_errors::reject_malformed))
        .layer(middleware::from_fn_with_state(verify, require_bearer)))
}

/// Serves [`http_router`] on a listener until `shutdown` resolves.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), McpError> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await.map_err(|e| McpError::Transport(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::cut_absolute_paths;

    #[test]
    fn absolute_paths_are_cut_to_their_last_component_and_urls_kept() {
        assert_eq!(
            cut_absolute_paths("/srv/x/config/policies.yaml:12:3: unknown signal"),
            "policies.yaml:12:3: unknown signal"
        );
        assert_eq!(cut_absolute_paths("store sqlite:/var/lib/g/audit.db failed"), "store sqlite:audit.db failed");
        assert_eq!(cut_absolute_paths("ndjson:/tmp/a/logs.ndjson"), "ndjson:logs.ndjson");
        assert_eq!(cut_absolute_paths("see \"/etc/guardrail/\" (or /opt/x)"), "see \"guardrail\" (or x)");
        assert_eq!(cut_absolute_paths("http://127.0.0.1:9090/api/v1/query"), "http://127.0.0.1:9090/api/v1/query");
        assert_eq!(cut_absolute_paths("a/b/c and 3/4 and /"), "a/b/c and 3/4 and .");
        assert_eq!(cut_absolute_paths("é /ü/ö.txt"), "é ö.txt");
    }
}
