//! The tool registry: the only way planners and the stress phase reach knowledge and logs.
//!
//! Each tool is defined once, here, as a [`ToolSpec`]: name, description, annotations, the
//! argument type its handler deserializes and the result type it returns. The JSON Schemas a
//! client sees (`inputSchema`, `outputSchema`) are generated from those two types
//! ([`input_schema_for`], [`output_schema_for`]), so the schema and the handler cannot disagree
//! about a field's name, type, default or range: the argument structs refuse unknown fields
//! (`additionalProperties: false`), and every bound the handler checks (`top_k` 1–20,
//! `window_minutes` 1–1440, service names) is also in the schema through `#[schemars(...)]`.
//!
//! The built-in planner and stress phase call tools through a [`ToolRunner`]
//! ([`ToolRunner::call_tool`] with the typed arguments), which goes through the same JSON
//! handler a model or an MCP client reaches and records every call in the trace; so what a
//! model may call and what Guardrail itself calls cannot drift apart.
//! [`ToolRegistry::builtin`] holds the four retrieval tools the planners use;
//! [`ToolRegistry::guardrail`] adds Guardrail's own tools ([`crate::guardrail_tools`]) for the
//! MCP server, from the same definitions.
//!
//! Argument names are the original MCP server's (`query`, `service`, `top_k`; `service`,
//! `action`, `severity`). Guardrail adds optional arguments only (`stance` for
//! `search_evidence`, `service` and `window_minutes` for `query_live_logs`), refuses unknown
//! ones, and requires a real service name where the original searched every service when
//! `service` was empty.

use std::borrow::Cow;
use std::sync::LazyLock;

use jiff::{SignedDuration, Timestamp};
use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use guardrail_core::pyround::py_round;
use guardrail_core::remediation::{
    PolicyConflict, Severity, Stance, normalise_action, policy_conflicts, valid_service_name,
};
use guardrail_knowledge::{KnowledgeError, KnowledgeStore};

use crate::PipelineError;
use crate::logs::{LogsError, LogsSource, LogsSummary};

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

/// Reads only, the same arguments give the same answer, nothing outside Guardrail's own inputs.
pub const READ_ONLY: ToolAnnotations =
    ToolAnnotations { read_only: true, destructive: false, idempotent: true, open_world: false };

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
    #[error("{tool}: {source}")]
    State {
        /// The tool.
        tool: &'static str,
        /// Why.
        source: Box<crate::guardrail_tools::StateError>,
    },
    /// The tool cannot answer here (no Guardrail state configured, a result that would not
    /// serialise, a pipeline failure other than a tool's).
    #[error("{tool}: {message}")]
    Unavailable {
        /// The tool.
        tool: &'static str,
        /// Why.
        message: String,
    },
}

/// One tool's definition: the single source for its JSON handler, its schemas and its typed
/// callers. Implemented by a unit struct per tool ([`SearchRunbooks`], …,
/// [`crate::guardrail_tools::SloStatus`], …).
pub trait ToolSpec: 'static {
    /// Name, as in the original MCP server.
    const NAME: &'static str;
    /// What it does, for people and models.
    const DESCRIPTION: &'static str;
    /// Hints.
    const ANNOTATIONS: ToolAnnotations;
    /// What the handler deserializes; `inputSchema` is generated from it (deserialize
    /// contract), so it must refuse unknown fields and say every bound the handler checks.
    type Args: DeserializeOwned + JsonSchema;
    /// What the handler returns; `outputSchema` is generated from it (serialize contract).
    type Output: Serialize + JsonSchema;
    /// The handler, on arguments that deserialized.
    fn run(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError>;
}

/// A tool's handler, over JSON (what a model or an MCP client sends and reads).
pub type ToolHandler = fn(&ToolContext<'_>, Value) -> Result<Value, ToolError>;

/// One tool, type-erased: what the registry lists and calls. Built only by [`Tool::of`].
#[derive(Clone)]
pub struct Tool {
    /// Name, as in the original MCP server.
    pub name: &'static str,
    /// What it does, for people and models.
    pub description: &'static str,
    /// JSON Schema (draft 2020-12) of its arguments, generated from [`ToolSpec::Args`].
    pub input_schema: Value,
    /// JSON Schema (draft 2020-12) of its result as an MCP client receives it in
    /// `structuredContent` (an object; see [`Tool::structured`]), generated from
    /// [`ToolSpec::Output`].
    pub output_schema: Value,
    /// Hints.
    pub annotations: ToolAnnotations,
    /// The code.
    pub handler: ToolHandler,
    /// The result is not an object: `structuredContent` wraps it as `{"result": …}`.
    wraps_output: bool,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool").field("name", &self.name).finish_non_exhaustive()
    }
}

/// `structuredContent` for a result that is not an object: MCP wants an object there, and
/// `{"result": …}` is what the original's FastMCP server sent for a list.
#[derive(Serialize, JsonSchema)]
struct Wrapped<T> {
    result: T,
}

fn settings(contract: Contract) -> SchemaSettings {
    // Subschemas inline (no `$ref`/`$defs`): some MCP clients and models do not resolve
    // references. Draft 2020-12, as MCP specifies for tool schemas.
    let mut s = SchemaSettings::draft2020_12();
    s.inline_subschemas = true;
    s.contract = contract;
    s
}

fn root_schema<T: JsonSchema>(contract: Contract) -> Value {
    let schema = SchemaGenerator::new(settings(contract)).into_root_schema_for::<T>();
    let mut v = schema.to_value();
    // The meta-schema and the Rust type's name and doc are noise in a tool listing (the tool
    // has its own name and description).
    if let Value::Object(m) = &mut v {
        m.remove("$schema");
        m.remove("title");
        m.remove("description");
    }
    v
}

fn is_object_schema(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("object")
}

/// The `inputSchema` of arguments of type `T`: what `T`'s `Deserialize` accepts.
pub fn input_schema_for<T: JsonSchema>() -> Value {
    root_schema::<T>(Contract::Deserialize)
}

/// The `outputSchema` of results of type `T`: what `T`'s `Serialize` writes, wrapped in
/// `{"result": …}` when that is not an object (as [`Tool::structured`] wraps the value).
pub fn output_schema_for<T: JsonSchema>() -> Value {
    output_schema_and_wrapping::<T>().0
}

/// The output schema, and whether the result is wrapped to fit it.
fn output_schema_and_wrapping<T: JsonSchema>() -> (Value, bool) {
    let direct = root_schema::<T>(Contract::Serialize);
    if is_object_schema(&direct) { (direct, false) } else { (root_schema::<Wrapped<T>>(Contract::Serialize), true) }
}

fn decode_args<T: DeserializeOwned>(tool: &'static str, v: Value) -> Result<T, ToolError> {
    // A missing argument object means "no arguments" (MCP clients send none for empty schemas).
    let v = if v.is_null() { Value::Object(Map::new()) } else { v };
    serde_json::from_value(v).map_err(|e| ToolError::InvalidArguments { tool, message: e.to_string() })
}

fn handle<T: ToolSpec>(ctx: &ToolContext<'_>, v: Value) -> Result<Value, ToolError> {
    let args = decode_args::<T::Args>(T::NAME, v)?;
    let out = T::run(ctx, args)?;
    serde_json::to_value(&out)
        .map_err(|e| ToolError::Unavailable { tool: T::NAME, message: format!("could not serialise the result: {e}") })
}

impl Tool {
    /// The tool a [`ToolSpec`] defines, with its schemas generated from its types.
    pub fn of<T: ToolSpec>() -> Tool {
        let (output_schema, wraps_output) = output_schema_and_wrapping::<T::Output>();
        Tool {
            name: T::NAME,
            description: T::DESCRIPTION,
            input_schema: input_schema_for::<T::Args>(),
            output_schema,
            annotations: T::ANNOTATIONS,
            handler: handle::<T>,
            wraps_output,
        }
    }

    /// A result of this tool as MCP `structuredContent`: the result itself when it is an
    /// object, `{"result": …}` otherwise — what [`Tool::output_schema`] describes.
    pub fn structured(&self, result: Value) -> Value {
        match result {
            Value::Object(_) if !self.wraps_output => result,
            result => serde_json::to_value(Wrapped { result }).unwrap_or(Value::Null),
        }
    }
}

/// The set of tools.
#[derive(Debug, Clone)]
pub struct ToolRegistry {
    tools: std::sync::Arc<[Tool]>,
}

// Schemas are generated once per process: the pipeline builds a registry per run, and the
// registries share the tools (a registry is never changed). A copy per registry cloned every
// schema's JSON tree on each proposal and dropped it after (~4 % of `guardrail serve`'s CPU).
static BUILTIN: LazyLock<std::sync::Arc<[Tool]>> = LazyLock::new(|| {
    std::sync::Arc::from(vec![
        Tool::of::<SearchRunbooks>(),
        Tool::of::<SearchEvidence>(),
        Tool::of::<CheckPolicyConflicts>(),
        Tool::of::<QueryLiveLogs>(),
    ])
});

static GUARDRAIL: LazyLock<std::sync::Arc<[Tool]>> = LazyLock::new(|| {
    let mut tools = BUILTIN.to_vec();
    tools.extend(crate::guardrail_tools::tools());
    std::sync::Arc::from(tools)
});

impl ToolRegistry {
    /// The four built-in tools: `search_runbooks`, `search_evidence`, `check_policy_conflicts`,
    /// `query_live_logs`.
    pub fn builtin() -> ToolRegistry {
        ToolRegistry { tools: BUILTIN.clone() }
    }

    /// The built-in tools followed by Guardrail's own (`slo_status`, `cost_status`,
    /// `evaluate_deploy`, `explain_decision`, `propose_remediation`, `incident_status`): the
    /// set the MCP server offers. Their handlers need [`ToolContext::guardrail`].
    pub fn guardrail() -> ToolRegistry {
        ToolRegistry { tools: GUARDRAIL.clone() }
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

    /// The tools as MCP tool definitions (`tools/list`'s `tools`).
    pub fn mcp_tools(&self) -> Vec<McpTool> {
        self.tools
            .iter()
            .map(|t| McpTool {
                name: t.name,
                description: t.description,
                input_schema: t.input_schema.clone(),
                output_schema: t.output_schema.clone(),
                annotations: McpToolAnnotations {
                    read_only_hint: t.annotations.read_only,
                    destructive_hint: t.annotations.destructive,
                    idempotent_hint: t.annotations.idempotent,
                    open_world_hint: t.annotations.open_world,
                },
            })
            .collect()
    }

    /// The tools as an MCP `tools/list` result.
    pub fn mcp_tools_list(&self) -> Value {
        serde_json::to_value(McpToolList { tools: self.mcp_tools() }).unwrap_or(Value::Null)
    }
}

/// A tool as MCP's `tools/list` describes it (2025-06-18: with `outputSchema`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpTool {
    /// Name.
    pub name: &'static str,
    /// Description.
    pub description: &'static str,
    /// Arguments' JSON Schema.
    pub input_schema: Value,
    /// `structuredContent`'s JSON Schema.
    pub output_schema: Value,
    /// Hints.
    pub annotations: McpToolAnnotations,
}

/// MCP's tool annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpToolAnnotations {
    /// Reads only.
    pub read_only_hint: bool,
    /// May destroy something.
    pub destructive_hint: bool,
    /// Calling twice with the same arguments has no further effect.
    pub idempotent_hint: bool,
    /// Reaches entities outside Guardrail's own inputs.
    pub open_world_hint: bool,
}

/// An MCP `tools/list` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpToolList {
    /// The tools.
    pub tools: Vec<McpTool>,
}

/// Which phase made a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Planning.
    Plan,
    /// Stress.
    Stress,
}

/// One tool call in the trace. No timestamps: the pipeline reads no clock, and the same inputs
/// give the same trace.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
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

/// The `result` of a failed call in the trace.
#[derive(Serialize)]
struct TracedError {
    error: String,
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

    /// Calls a tool by name with JSON arguments (what a model sends) and records the call.
    pub fn call(&mut self, phase: Phase, tool: &str, arguments: Value) -> Result<Value, ToolError> {
        self.call_traced(phase, tool, arguments).cloned()
    }

    /// Calls a tool and records the call; the result is the one in the trace (not copied).
    fn call_traced(&mut self, phase: Phase, tool: &str, arguments: Value) -> Result<&Value, ToolError> {
        let outcome = self.registry.call(tool, self.ctx, arguments.clone());
        let (ok, result, error) = match outcome {
            Ok(v) => (true, v, None),
            Err(e) => {
                (false, serde_json::to_value(TracedError { error: e.to_string() }).unwrap_or(Value::Null), Some(e))
            }
        };
        self.trace.push(TraceEntry {
            seq: self.trace.len() as u32 + 1,
            phase,
            tool: tool.to_string(),
            arguments,
            ok,
            result,
        });
        match error {
            Some(e) => Err(e),
            // The entry just pushed.
            None => Ok(&self.trace[self.trace.len() - 1].result),
        }
    }

    /// Calls a tool with typed arguments and reads its typed result. The call goes through the
    /// registry's JSON handler, exactly as a model's would (same validation, same trace), so a
    /// registry without the tool refuses it. The result is read from the trace's copy.
    pub fn call_tool<T: ToolSpec>(&mut self, phase: Phase, args: &T::Args) -> Result<T::Output, PipelineError>
    where
        T::Args: Serialize,
        T::Output: DeserializeOwned,
    {
        let arguments = serde_json::to_value(args)
            .map_err(|e| ToolError::InvalidArguments { tool: T::NAME, message: e.to_string() })?;
        let raw = self.call_traced(phase, T::NAME, arguments)?;
        T::Output::deserialize(raw)
            .map_err(|e| PipelineError::ToolOutput { tool: T::NAME.into(), message: e.to_string() })
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
// Argument types shared by several tools.

/// Largest `top_k`.
pub const MAX_TOP_K: u32 = 20;
/// Largest live-logs window: one day.
pub const MAX_WINDOW_MINUTES: u32 = 1440;
/// Default `top_k`.
pub const DEFAULT_TOP_K: u32 = 3;

fn default_k() -> u32 {
    DEFAULT_TOP_K
}

/// The `service` value of `search_evidence` that means every service.
pub const ALL_SERVICES: &str = "*";

/// [`valid_service_name`] as a JSON Schema pattern (the schema/handler agreement test checks
/// them against each other).
pub const SERVICE_PATTERN: &str = r"^[A-Za-z0-9._:/-]{1,128}$";
/// A service name or [`ALL_SERVICES`].
const SERVICE_OR_ALL_PATTERN: &str = r"^(\*|[A-Za-z0-9._:/-]{1,128})$";

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

/// A severity argument: exactly one of [`Severity::ALL`]'s names. Its own `Deserialize` keeps
/// the message naming the argument (`severity: "urgent" is not one of …`, as the other
/// arguments' messages do); its schema is [`Severity`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SeverityArg(pub Severity);

impl<'de> Deserialize<'de> for SeverityArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Severity::parse(&s)
            .map(SeverityArg)
            .ok_or_else(|| serde::de::Error::custom(format!("severity: \"{s}\" is not one of {}", Severity::NAMES)))
    }
}

impl JsonSchema for SeverityArg {
    fn schema_name() -> Cow<'static, str> {
        Severity::schema_name()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        Severity::json_schema(g)
    }
}

// ---------------------------------------------------------------------------------------
// search_runbooks

/// `search_runbooks`.
#[derive(Debug, Clone, Copy)]
pub struct SearchRunbooks;

/// `search_runbooks`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookArgs {
    /// Words to search for.
    pub query: String,
    /// The service whose runbooks are searched.
    #[schemars(regex(pattern = SERVICE_PATTERN))]
    pub service: String,
    /// How many runbooks.
    #[serde(default = "default_k")]
    #[schemars(range(min = 1, max = MAX_TOP_K))]
    pub top_k: u32,
}

/// A `search_runbooks` result item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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

impl ToolSpec for SearchRunbooks {
    const NAME: &'static str = "search_runbooks";
    const DESCRIPTION: &'static str =
        "Search reviewed runbooks of one service by relevance (BM25 over title and body).";
    const ANNOTATIONS: ToolAnnotations = READ_ONLY;
    type Args = RunbookArgs;
    type Output = Vec<RunbookResult>;

    fn run(ctx: &ToolContext<'_>, a: RunbookArgs) -> Result<Vec<RunbookResult>, ToolError> {
        check_service(Self::NAME, &a.service)?;
        let k = check_k(Self::NAME, a.top_k)?;
        let hits = ctx
            .store
            .search_runbooks(&a.query, &a.service, k)
            .map_err(|source| ToolError::Knowledge { tool: Self::NAME, source })?;
        Ok(hits
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
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// search_evidence

/// `search_evidence`.
#[derive(Debug, Clone, Copy)]
pub struct SearchEvidence;

/// `search_evidence`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceArgs {
    /// Words to search for.
    pub query: String,
    /// The service (its documents and those for every service), or `*` for all services.
    #[schemars(regex(pattern = SERVICE_OR_ALL_PATTERN))]
    pub service: String,
    /// How many documents.
    #[serde(default = "default_k")]
    #[schemars(range(min = 1, max = MAX_TOP_K))]
    pub top_k: u32,
    /// Only documents with this recorded stance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stance: Option<Stance>,
}

/// A `search_evidence` result item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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

impl ToolSpec for SearchEvidence {
    const NAME: &'static str = "search_evidence";
    const DESCRIPTION: &'static str = "Search evidence documents of one service (with the documents for every service), or of all services with service '*', by relevance; each has a recorded stance, support or contradict.";
    const ANNOTATIONS: ToolAnnotations = READ_ONLY;
    type Args = EvidenceArgs;
    type Output = Vec<EvidenceResult>;

    fn run(ctx: &ToolContext<'_>, a: EvidenceArgs) -> Result<Vec<EvidenceResult>, ToolError> {
        // `*` (offered by the description) searches every service's evidence.
        if a.service != ALL_SERVICES {
            check_service(Self::NAME, &a.service)?;
        }
        let k = check_k(Self::NAME, a.top_k)?;
        let hits = ctx
            .store
            .search_evidence(&a.query, &a.service, k, a.stance)
            .map_err(|source| ToolError::Knowledge { tool: Self::NAME, source })?;
        Ok(hits
            .into_iter()
            .map(|h| EvidenceResult {
                id: h.doc.id,
                text: h.doc.text,
                stance: h.doc.stance,
                service: h.doc.service,
                score: py_round(h.score, 6),
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// check_policy_conflicts

/// `check_policy_conflicts`.
#[derive(Debug, Clone, Copy)]
pub struct CheckPolicyConflicts;

/// `check_policy_conflicts`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyArgs {
    /// The service.
    #[schemars(regex(pattern = SERVICE_PATTERN))]
    pub service: String,
    /// The action, as an identifier or in prose (normalised first).
    #[schemars(regex(pattern = r"\S"))]
    pub action: String,
    /// The incident's severity.
    pub severity: SeverityArg,
}

impl ToolSpec for CheckPolicyConflicts {
    const NAME: &'static str = "check_policy_conflicts";
    const DESCRIPTION: &'static str = "List the action policies that forbid automatically executing an action for a service at a severity. Prose actions are normalised first.";
    const ANNOTATIONS: ToolAnnotations = READ_ONLY;
    type Args = PolicyArgs;
    type Output = Vec<PolicyConflict>;

    fn run(ctx: &ToolContext<'_>, a: PolicyArgs) -> Result<Vec<PolicyConflict>, ToolError> {
        check_service(Self::NAME, &a.service)?;
        if a.action.trim().is_empty() {
            return Err(ToolError::InvalidArguments { tool: Self::NAME, message: "action: is empty".into() });
        }
        let policies =
            ctx.store.policies_for(&a.service).map_err(|source| ToolError::Knowledge { tool: Self::NAME, source })?;
        let action = normalise_action(&a.action, Some(&a.service));
        Ok(policy_conflicts(&policies, &a.service, &action, a.severity.0))
    }
}

// ---------------------------------------------------------------------------------------
// query_live_logs

/// `query_live_logs`.
#[derive(Debug, Clone, Copy)]
pub struct QueryLiveLogs;

/// `query_live_logs`'s arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    /// One service; all services when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SERVICE_PATTERN))]
    pub service: Option<String>,
    /// Length of the window ending now, minutes (the configured default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_WINDOW_MINUTES))]
    pub window_minutes: Option<u32>,
}

/// A `query_live_logs` result: the counts, or why there are none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(extend("type" = "object"))]
pub enum LiveLogs {
    /// A logs source is configured: counts over the window.
    Available(LogsWindow),
    /// No logs source is configured (not an error: the stress phase records it as telemetry).
    Unavailable(LogsUnavailable),
}

/// Counts over a window of the live logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogsWindow {
    /// Always true.
    #[schemars(extend("const" = true))]
    pub available: bool,
    /// Where the logs come from.
    pub source: String,
    /// The service counted, or `null` for all.
    pub service: Option<String>,
    /// Start of the window (exclusive), RFC 3339.
    pub window_start: String,
    /// End of the window (inclusive, the evaluation time), RFC 3339.
    pub window_end: String,
    /// The counts.
    #[serde(flatten)]
    pub counts: LogsSummary,
}

/// No live logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogsUnavailable {
    /// Always false.
    #[schemars(extend("const" = false))]
    pub available: bool,
    /// Why.
    pub reason: String,
    /// The service asked for, or `null`.
    pub service: Option<String>,
}

impl ToolSpec for QueryLiveLogs {
    const NAME: &'static str = "query_live_logs";
    const DESCRIPTION: &'static str =
        "Recent request and error counts from the live logs, for one service or all, over a window ending now.";
    const ANNOTATIONS: ToolAnnotations = READ_ONLY;
    type Args = LogsArgs;
    type Output = LiveLogs;

    fn run(ctx: &ToolContext<'_>, a: LogsArgs) -> Result<LiveLogs, ToolError> {
        const TOOL: &str = QueryLiveLogs::NAME;
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
            return Ok(LiveLogs::Unavailable(LogsUnavailable {
                available: false,
                reason: "no live logs source is configured".into(),
                service: a.service,
            }));
        };
        let start = ctx.now.checked_sub(SignedDuration::from_mins(i64::from(minutes))).map_err(|e| {
            ToolError::InvalidArguments { tool: TOOL, message: format!("window_minutes: cannot start the window: {e}") }
        })?;
        let s = logs
            .summary(a.service.as_deref(), start, ctx.now)
            .map_err(|source| ToolError::Logs { tool: TOOL, source })?;
        Ok(LiveLogs::Available(LogsWindow {
            available: true,
            source: logs.describe(),
            service: a.service,
            window_start: start.to_string(),
            window_end: ctx.now.to_string(),
            counts: s,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registries built per run share one copy of the tools and their schemas (built once per
    /// process), and list the same tools as before.
    #[test]
    fn registries_share_their_tools() {
        let (a, b) = (ToolRegistry::builtin(), ToolRegistry::builtin());
        assert!(std::sync::Arc::ptr_eq(&a.tools, &b.tools));
        let names: Vec<&str> = a.tools().iter().map(|t| t.name).collect();
        assert_eq!(names, ["search_runbooks", "search_evidence", "check_policy_conflicts", "query_live_logs"]);
        let g = ToolRegistry::guardrail();
        assert!(std::sync::Arc::ptr_eq(&g.tools, &ToolRegistry::guardrail().tools));
        assert_eq!(g.tools()[..4].iter().map(|t| t.name).collect::<Vec<_>>(), names);
        assert!(g.tools().len() > 4);
    }

    /// A typed call answers what its traced result reads as, and the trace keeps that result;
    /// a refused call is traced with its error and answers the error.
    #[test]
    fn a_typed_call_reads_its_result_from_the_trace() {
        use guardrail_knowledge::{KnowledgeStore, SqliteKnowledgeStore};
        let mut kb = SqliteKnowledgeStore::open_in_memory().unwrap();
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/governor");
        kb.load_sample_data(&examples.join("sample_data.json")).unwrap();
        let ctx = ToolContext::new(&kb, "2026-11-24T10:00:00Z".parse().unwrap());
        let registry = ToolRegistry::builtin();
        let mut runner = ToolRunner::new(&registry, &ctx);
        let args = EvidenceArgs {
            query: "db connection saturation timeouts".into(),
            service: "payments-api".into(),
            top_k: 3,
            stance: Some(Stance::Contradict),
        };
        let hits = runner.call_tool::<SearchEvidence>(Phase::Stress, &args).unwrap();
        assert!(!hits.is_empty());
        let traced = &runner.trace()[0];
        assert!(traced.ok);
        assert_eq!(traced.result, serde_json::to_value(&hits).unwrap());
        assert_eq!(traced.arguments, serde_json::to_value(&args).unwrap());
        let bad = EvidenceArgs { top_k: 99, ..args };
        assert!(runner.call_tool::<SearchEvidence>(Phase::Stress, &bad).is_err());
        let refused = &runner.trace()[1];
        assert!(!refused.ok && refused.result["error"].as_str().unwrap().contains("top_k: 99"));
        assert!(runner.call(Phase::Plan, "search_evidence", serde_json::to_value(&bad).unwrap()).is_err());
        assert_eq!(runner.trace().len(), 3);
    }
}
