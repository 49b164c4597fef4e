//! The tool registry: the only way planners and the stress phase reach knowledge and logs.
//!
//! Each tool is defined once, here: name, description, JSON input schema, annotations and a
//! handler. The built-in planner and stress phase call tools through a [`ToolRunner`], which
//! records every call in the trace; a future model-backed planner (or an MCP server) is handed
//! the same definitions, so what a model may call and what Guardrail itself calls cannot
//! drift apart. [`ToolRegistry::builtin`] holds the four retrieval tools the planners use;
//! [`ToolRegistry::guardrail`] adds Guardrail's own tools ([`crate::guardrail_tools`]) for the
//! MCP server, from the same definitions.
//!
//! Argument names are the original MCP server's (`query`, `service`, `top_k`; `service`,
//! `action`, `severity`). Guardrail adds optional arguments only (`stance` for
//! `search_evidence`, `service` and `window_minutes` for `query_live_logs`), refuses unknown
//! ones, and requires a real service name where the original searched every service when
//! `service` was empty.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use guardrail_core::pyround::py_round;
use guardrail_core::remediation::{Severity, Stance, normalise_action, policy_conflicts, valid_service_name};
use guardrail_knowledge::{KnowledgeError, KnowledgeStore};

use crate::logs::{LogsError, LogsSource};

/// What tools may reach. `now` is the end of the live-logs window: tools never read a clock.
#[derive(Clone, Copy)]
pub struct ToolContext<'a> {
    /// The knowledge store.
    pub store: &'a dyn KnowledgeStore,
    /// The live logs, when configured.
    pub logs: Option<&'a dyn LogsSource>,
    /// The evaluation time.
    pub now: Timestamp,
    /// Default length of the live-logs window, minutes.
    pub logs_window_minutes: u32,
    /// The deploy gate and the audit trail, for Guardrail's own tools (`None` for planners).
    pub guardrail: Option<&'a dyn crate::guardrail_tools::GuardrailState>,
}

/// Default live-logs window: 15 minutes.
pub const DEFAULT_LOGS_WINDOW_MINUTES: u32 = 15;

impl<'a> ToolContext<'a> {
    /// A context over a store, without logs, with the default window.
    pub fn new(store: &'a dyn KnowledgeStore, now: Timestamp) -> ToolContext<'a> {
        ToolContext { store, logs: None, now, logs_window_minutes: DEFAULT_LOGS_WINDOW_MINUTES, guardrail: None }
    }

    /// The same context with a logs source.
    pub fn with_logs(self, logs: &'a dyn LogsSource) -> ToolContext<'a> {
        ToolContext { logs: Some(logs), ..self }
    }

    /// The same context with the deploy gate and audit trail, for Guardrail's own tools.
    pub fn with_guardrail(self, state: &'a dyn crate::guardrail_tools::GuardrailState) -> ToolContext<'a> {
        ToolContext { guardrail: Some(state), ..self }
    }
}

/// Hints for clients, as in MCP's tool annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ToolAnnotations {
    /// Reads only.
    pub read_only: bool,
    /// May destroy something.
    pub destructive: bool,
    /// Calling twice with the same arguments has no further effect.
    pub idempotent: bool,
    /// Reaches entities outside Guardrail's own configured files and stores.
    pub open_world: bool,
}

/// Why a tool call failed. A failed retrieval is an error for the pipeline, never "no results".
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// No tool by that name.
    #[error("unknown tool \"{0}\"")]
    UnknownTool(String),
    /// Arguments that do not fit the tool's schema.
    #[error("{tool}: invalid arguments: {message}")]
    InvalidArguments {
        /// The tool.
        tool: &'static str,
        /// What is wrong, naming the argument.
        message: String,
    },
    /// The knowledge store failed.
    #[error("{tool}: {source}")]
    Knowledge {
        /// The tool.
        tool: &'static str,
        /// The store's error.
        source: KnowledgeError,
    },
    /// The logs source failed.
    #[error("{tool}: {source}")]
    Logs {
        /// The tool.
        tool: &'static str,
        /// The source's error.
        source: LogsError,
    },
    /// What the tool reads could not be evaluated (missing or invalid inputs, a store error).
    #[error("{tool}: {message}")]
    Unavailable {
        /// The tool.
        tool: &'static str,
        /// Why.
        message: String,
    },
}

/// A tool's handler.
pub type ToolHandler = fn(&ToolContext<'_>, Value) -> Result<Value, ToolError>;

/// One tool.
#[derive(Clone)]
pub struct Tool {
    /// Name, as in the original MCP server.
    pub name: &'static str,
    /// What it does, for people and models.
    pub description: &'static str,
    /// JSON Schema (draft 2020-12) of its arguments.
    pub input_schema: Value,
    /// Hints.
    pub annotations: ToolAnnotations,
    /// The code.
    pub handler: ToolHandler,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The set of tools.
#[derive(Debug, Clone)]
pub struct ToolRegistry {
    tools: Vec<Tool>,
}

const READ_ONLY: ToolAnnotations =
    ToolAnnotations { read_only: true, destructive: false, idempotent: true, open_world: false };

impl ToolRegistry {
    /// The four built-in tools: `search_runbooks`, `search_evidence`, `check_policy_conflicts`,
    /// `query_live_logs`.
    pub fn builtin() -> ToolRegistry {
        ToolRegistry {
            tools: vec![
                Tool {
                    name: "search_runbooks",
                    description: "Search reviewed runbooks of one service by relevance (BM25 over title and body).",
                    input_schema: json!({
                        "type": "object",
                        "properties": {
                            "query": {"type": "string"},
                            "service": {"type": "string"},
                            "top_k": {"type": "integer", "default": 3, "minimum": 1, "maximum": MAX_TOP_K}
                        },
                        "required": ["query", "service"],
                        "additionalProperties": false
                    }),
                    annotations: READ_ONLY,
                    handler: search_runbooks,
                },
                Tool {
                    name: "search_evidence",
                    description: "Search evidence documents of one service (with the documents for every service), or of all services with service '*', by relevance; each has a recorded stance, support or contradict.",
                    input_schema: json!({
                        "type": "object",
                        "properties": {
                            "query": {"type": "string"},
                            "service": {"type": "string"},
                            "top_k": {"type": "integer", "default": 3, "minimum": 1, "maximum": MAX_TOP_K},
                            "stance": {"type": "string", "enum": ["support", "contradict"]}
                        },
                        "required": ["query", "service"],
                        "additionalProperties": false
                    }),
                    annotations: READ_ONLY,
                    handler: search_evidence,
                },
                Tool {
                    name: "check_policy_conflicts",
                    description: "List the action policies that forbid automatically executing an action for a service at a severity. Prose actions are normalised first.",
                    input_schema: json!({
                        "type": "object",
                        "properties": {
                            "service": {"type": "string"},
                            "action": {"type": "string"},
                            "severity": {"type": "string", "enum": ["low", "medium", "high", "critical"]}
                        },
                        "required": ["service", "action", "severity"],
                        "additionalProperties": false
                    }),
                    annotations: READ_ONLY,
                    handler: check_policy_conflicts,
                },
                Tool {
                    name: "query_live_logs",
                    description: "Recent request and error counts from the live logs, for one service or all, over a window ending now.",
                    input_schema: json!({
                        "type": "object",
                        "properties": {
                            "service": {"type": "string"},
                            "window_minutes": {"type": "integer", "minimum": 1, "maximum": MAX_WINDOW_MINUTES}
                        },
                        "additionalProperties": false
                    }),
                    annotations: READ_ONLY,
                    handler: query_live_logs,
                },
            ],
        }
    }

    /// The built-in tools followed by Guardrail's own (`slo_status`, `cost_status`,
    /// `evaluate_deploy`, `explain_decision`, `propose_remediation`, `incident_status`): the
    /// set the MCP server offers. Their handlers need [`ToolContext::guardrail`].
    pub fn guardrail() -> ToolRegistry {
        let mut r = ToolRegistry::builtin();
        r.tools.extend(crate::guardrail_tools::tools());
        r
    }

    /// Every tool, in registration order.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// A tool by name.
    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Calls a tool.
    pub fn call(&self, name: &str, ctx: &ToolContext<'_>, args: Value) -> Result<Value, ToolError> {
        let tool = self.get(name).ok_or_else(|| ToolError::UnknownTool(name.to_string()))?;
        (tool.handler)(ctx, args)
    }

    /// The tools as an MCP `tools/list` result.
    pub fn mcp_tools_list(&self) -> Value {
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "description": t.description,
                    "inputSchema": t.input_schema,
                    "annotations": {
                        "readOnlyHint": t.annotations.read_only,
                        "destructiveHint": t.annotations.destructive,
                        "idempotentHint": t.annotations.idempotent,
                        "openWorldHint": t.annotations.open_world
                    }
                })
            })
            .collect();
        json!({ "tools": tools })
    }
}

/// Which phase made a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Planning.
    Plan,
    /// Stress.
    Stress,
}

/// One tool call in the trace. No timestamps: the pipeline reads no clock, and the same inputs
/// give the same trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceEntry {
    /// Position, from 1.
    pub seq: u32,
    /// Phase.
    pub phase: Phase,
    /// Tool name.
    pub tool: String,
    /// Arguments as sent.
    pub arguments: Value,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result, or `{"error": …}`.
    pub result: Value,
}

/// Calls tools and keeps the trace.
pub struct ToolRunner<'r, 'c> {
    registry: &'r ToolRegistry,
    ctx: &'r ToolContext<'c>,
    trace: Vec<TraceEntry>,
}

impl<'r, 'c> ToolRunner<'r, 'c> {
    /// A runner with an empty trace.
    pub fn new(registry: &'r ToolRegistry, ctx: &'r ToolContext<'c>) -> ToolRunner<'r, 'c> {
        ToolRunner { registry, ctx, trace: Vec::new() }
    }

    /// Calls a tool and records the call.
    pub fn call(&mut self, phase: Phase, tool: &str, arguments: Value) -> Result<Value, ToolError> {
        let outcome = self.registry.call(tool, self.ctx, arguments.clone());
        let (ok, result) = match &outcome {
            Ok(v) => (true, v.clone()),
            Err(e) => (false, json!({ "error": e.to_string() })),
        };
        self.trace.push(TraceEntry {
            seq: self.trace.len() as u32 + 1,
            phase,
            tool: tool.to_string(),
            arguments,
            ok,
            result,
        });
        outcome
    }

    /// The registry.
    pub fn registry(&self) -> &ToolRegistry {
        self.registry
    }

    /// The trace so far.
    pub fn trace(&self) -> &[TraceEntry] {
        &self.trace
    }

    /// The trace, consuming the runner.
    pub fn into_trace(self) -> Vec<TraceEntry> {
        self.trace
    }
}

// ---------------------------------------------------------------------------------------
// Handlers.

/// Largest `top_k`.
pub const MAX_TOP_K: u32 = 20;
/// Largest live-logs window: one day.
pub const MAX_WINDOW_MINUTES: u32 = 1440;

fn default_k() -> u32 {
    3
}

fn args<T: for<'de> Deserialize<'de>>(tool: &'static str, v: Value) -> Result<T, ToolError> {
    // A missing argument object means "no arguments" (MCP clients send none for empty schemas).
    let v = if v.is_null() { json!({}) } else { v };
    serde_json::from_value(v).map_err(|e| ToolError::InvalidArguments { tool, message: e.to_string() })
}

/// The `service` value of `search_evidence` that means every service.
pub const ALL_SERVICES: &str = "*";

fn check_service(tool: &'static str, service: &str) -> Result<(), ToolError> {
    if valid_service_name(service) {
        Ok(())
    } else {
        Err(ToolError::InvalidArguments {
            tool,
            message: format!("service: \"{service}\" is not a service name (1–128 of A–Z a–z 0–9 - _ . : /)"),
        })
    }
}

fn check_k(tool: &'static str, k: u32) -> Result<usize, ToolError> {
    if (1..=MAX_TOP_K).contains(&k) {
        Ok(k as usize)
    } else {
        Err(ToolError::InvalidArguments { tool, message: format!("top_k: {k} is outside 1–{MAX_TOP_K}") })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunbookArgs {
    query: String,
    service: String,
    #[serde(default = "default_k")]
    top_k: u32,
}

/// A `search_runbooks` result item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookResult {
    /// Runbook id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Recommended action, as written (the original's field name).
    pub action: String,
    /// Body.
    pub body: String,
    /// Service.
    pub service: String,
    /// Always true (the store returns reviewed runbooks only); planners check it anyway.
    pub reviewed: bool,
    /// BM25 score, six decimals.
    pub score: f64,
}

fn search_runbooks(ctx: &ToolContext<'_>, v: Value) -> Result<Value, ToolError> {
    const TOOL: &str = "search_runbooks";
    let a: RunbookArgs = args(TOOL, v)?;
    check_service(TOOL, &a.service)?;
    let k = check_k(TOOL, a.top_k)?;
    let hits = ctx
        .store
        .search_runbooks(&a.query, &a.service, k)
        .map_err(|source| ToolError::Knowledge { tool: TOOL, source })?;
    let out: Vec<RunbookResult> = hits
        .into_iter()
        .map(|h| RunbookResult {
            id: h.runbook.id,
            title: h.runbook.title,
            action: h.runbook.recommended_action,
            body: h.runbook.body,
            service: h.runbook.service,
            reviewed: h.runbook.reviewed,
            score: py_round(h.score, 6),
        })
        .collect();
    Ok(json!(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceArgs {
    query: String,
    service: String,
    #[serde(default = "default_k")]
    top_k: u32,
    #[serde(default)]
    stance: Option<Stance>,
}

/// A `search_evidence` result item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceResult {
    /// Document id.
    pub id: String,
    /// Text.
    pub text: String,
    /// Recorded stance.
    pub stance: Stance,
    /// Service (or `*`).
    pub service: String,
    /// BM25 score, six decimals.
    pub score: f64,
}

fn search_evidence(ctx: &ToolContext<'_>, v: Value) -> Result<Value, ToolError> {
    const TOOL: &str = "search_evidence";
    let a: EvidenceArgs = args(TOOL, v)?;
    // `*` (offered by the description) searches every service's evidence.
    if a.service != ALL_SERVICES {
        check_service(TOOL, &a.service)?;
    }
    let k = check_k(TOOL, a.top_k)?;
    let hits = ctx
        .store
        .search_evidence(&a.query, &a.service, k, a.stance)
        .map_err(|source| ToolError::Knowledge { tool: TOOL, source })?;
    let out: Vec<EvidenceResult> = hits
        .into_iter()
        .map(|h| EvidenceResult {
            id: h.doc.id,
            text: h.doc.text,
            stance: h.doc.stance,
            service: h.doc.service,
            score: py_round(h.score, 6),
        })
        .collect();
    Ok(json!(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyArgs {
    service: String,
    action: String,
    severity: String,
}

fn check_policy_conflicts(ctx: &ToolContext<'_>, v: Value) -> Result<Value, ToolError> {
    const TOOL: &str = "check_policy_conflicts";
    let a: PolicyArgs = args(TOOL, v)?;
    check_service(TOOL, &a.service)?;
    let severity = Severity::parse(&a.severity).ok_or_else(|| ToolError::InvalidArguments {
        tool: TOOL,
        message: format!("severity: \"{}\" is not one of {}", a.severity, Severity::NAMES),
    })?;
    if a.action.trim().is_empty() {
        return Err(ToolError::InvalidArguments { tool: TOOL, message: "action: is empty".into() });
    }
    let policies = ctx.store.policies_for(&a.service).map_err(|source| ToolError::Knowledge { tool: TOOL, source })?;
    let action = normalise_action(&a.action, Some(&a.service));
    Ok(json!(policy_conflicts(&policies, &a.service, &action, severity)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsArgs {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    window_minutes: Option<u32>,
}

fn query_live_logs(ctx: &ToolContext<'_>, v: Value) -> Result<Value, ToolError> {
    const TOOL: &str = "query_live_logs";
    let a: LogsArgs = args(TOOL, v)?;
    if let Some(s) = &a.service {
        check_service(TOOL, s)?;
    }
    let minutes = a.window_minutes.unwrap_or(ctx.logs_window_minutes);
    if !(1..=MAX_WINDOW_MINUTES).contains(&minutes) {
        return Err(ToolError::InvalidArguments {
            tool: TOOL,
            message: format!("window_minutes: {minutes} is outside 1–{MAX_WINDOW_MINUTES}"),
        });
    }
    let Some(logs) = ctx.logs else {
        return Ok(json!({
            "available": false,
            "reason": "no live logs source is configured",
            "service": a.service,
        }));
    };
    let start = ctx.now.checked_sub(SignedDuration::from_mins(i64::from(minutes))).map_err(|e| {
        ToolError::InvalidArguments { tool: TOOL, message: format!("window_minutes: cannot start the window: {e}") }
    })?;
    let s =
        logs.summary(a.service.as_deref(), start, ctx.now).map_err(|source| ToolError::Logs { tool: TOOL, source })?;
    Ok(json!({
        "available": true,
        "source": logs.describe(),
        "service": a.service,
        "window_start": start.to_string(),
        "window_end": ctx.now.to_string(),
        "total": s.total,
        "error_count": s.error_count,
        "server_error_count": s.server_error_count,
        "error_rate": s.error_rate,
        "avg_bytes": s.avg_bytes,
        "skipped_lines": s.skipped_lines,
    }))
}
