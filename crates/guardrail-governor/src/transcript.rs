//! The planner transcript: everything a model-backed planner exchanged with its model, typed,
//! so it can be recorded on the chain (record kind `planner_transcript`, appended before the
//! `remediation_decision` that holds its id and hash) and printed by `incident show`.
//!
//! What is in it: the model and provider, the settings the loop ran under, every request (the
//! messages added since the previous one, so the conversation is reconstructable without
//! quadratic copies) and response (text, tool calls, stop reason, usage, attempts, latency), every
//! tool call the model asked for and what it got back (including refusals of unknown or
//! disallowed tools and invalid arguments), what compress cut, the actions Guardrail offered, the
//! plan as the model reported it (confidence, counts, "approved by" text: recorded, never read by
//! the gate), and how the loop ended: accepted, failed (with the reason), or replaced by the
//! built-in planner (with the reason).
//!
//! What is never in it: API keys (the adapters never expose them; nothing here holds a config).
//!
//! Bodies read leniently (`#[serde(default)]`), as every other record body.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The record kind of a transcript. Not (yet) a [`crate::record::RecordKind`] variant: the
/// queue fold ignores it (it decides nothing) and the decision that follows it names it.
pub const PLANNER_TRANSCRIPT: &str = "planner_transcript";

/// The body of a `planner_transcript` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TranscriptBody {
    /// The incident planned for.
    pub incident_id: String,
    /// The transcript.
    pub transcript: Transcript,
}

/// Where a decision's transcript is on the chain (in `remediation_decision.planner_transcript`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TranscriptRef {
    /// The `planner_transcript` record's id (`<seq>-<hash prefix>`).
    pub record: String,
    /// Its full chain hash.
    pub hash: String,
    /// The planner (`openai`, `anthropic`, `agent-builder`).
    pub planner: String,
    /// The model as the provider named it.
    pub model: String,
    /// How the loop ended (`accepted`, `failed`, `fallback`).
    pub outcome: String,
    /// The failure or fallback reason, when there is one.
    pub reason: Option<String>,
}

/// A model-backed planner's transcript.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Transcript {
    /// The planner (`openai`, `anthropic`, `agent-builder`).
    pub planner: String,
    /// The provider's API (`openai`, `anthropic`, `kibana`).
    pub provider: String,
    /// The model asked for.
    pub model: String,
    /// The model that answered, as the provider named it (the last answer's).
    pub answered_by: Option<String>,
    /// The settings the loop ran under.
    pub settings: TranscriptSettings,
    /// The system prompt sent (fixed text; the incident is never in it).
    pub system_prompt: String,
    /// The tools offered to the model (names).
    pub tools_offered: Vec<String>,
    /// The actions Guardrail offered (the only ones it accepts).
    pub offered_actions: Vec<OfferedAction>,
    /// What compress did to the context sent.
    pub compress: CompressReport,
    /// Every model call, in order.
    pub exchanges: Vec<Exchange>,
    /// Every tool call the model asked for, in order.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Totals.
    pub usage: TranscriptUsage,
    /// The model's final answer text, as sent.
    pub final_answer: Option<String>,
    /// The plan as the model reported it (recorded, never decisive).
    pub reported: Option<ReportedPlan>,
    /// How it ended.
    pub outcome: TranscriptOutcome,
    /// Why the model's plan was not used, when it was not.
    pub failure: Option<PlannerFailure>,
    /// The built-in planner's fallback, when the settings asked for one.
    pub fallback: Option<String>,
}

impl Transcript {
    /// The reason to show: the failure's message, else the fallback's.
    pub fn reason(&self) -> Option<String> {
        self.failure.as_ref().map(|f| f.to_string()).or_else(|| self.fallback.clone())
    }
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TranscriptOutcome {
    /// The model's plan was accepted (its action was offered; the gate judges it).
    Accepted,
    /// The model's plan was not used: the incident is planned as investigate-and-escalate and
    /// the gate blocks it (`planner_failed`).
    #[default]
    Failed,
    /// The model's plan was not used: the built-in planner planned instead.
    Fallback,
}

impl TranscriptOutcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TranscriptOutcome::Accepted => "accepted",
            TranscriptOutcome::Failed => "failed",
            TranscriptOutcome::Fallback => "fallback",
        }
    }
}

/// The loop's settings as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TranscriptSettings {
    /// Most tool rounds.
    pub max_tool_rounds: u32,
    /// Most tokens (input + output, all calls).
    pub max_total_tokens: u64,
    /// Wall-clock budget of the whole loop, in milliseconds.
    pub wall_clock_ms: u64,
    /// The context budget applied (tokens, estimated).
    pub context_budget_tokens: u64,
    /// `full_context` or `compressed_context`.
    pub context_mode: String,
    /// `none` or `builtin`.
    pub fallback: String,
}

/// One action Guardrail offers: a reviewed runbook of the incident's service, or the escalation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct OfferedAction {
    /// The normalised action id the plan must name.
    pub action: String,
    /// The runbook it comes from (`None` for the escalation).
    pub runbook_id: Option<String>,
    /// The runbook's title.
    pub title: Option<String>,
    /// The action as the runbook writes it.
    pub recommended_action: Option<String>,
    /// The runbook's body (the "how"), as retrieved.
    pub body: Option<String>,
    /// Its retrieval score.
    pub score: Option<f64>,
}

/// What compress did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CompressReport {
    /// The budget (estimated tokens: bytes / 4, rounded up).
    pub budget_tokens: u64,
    /// Estimated tokens of the context before compress.
    pub tokens_before: u64,
    /// Estimated tokens of the context after compress.
    pub tokens_after: u64,
    /// Items dropped or shortened.
    pub cuts: Vec<Cut>,
    /// Tool results shortened during the loop.
    pub tool_result_cuts: Vec<Cut>,
}

/// One thing compress cut.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Cut {
    /// `runbook`, `evidence`, `logs`, `incident`, `tool_result`.
    pub kind: String,
    /// The item (document id, field name, tool call id).
    pub id: String,
    /// `dropped` or `truncated`.
    pub how: String,
    /// Estimated tokens before.
    pub tokens_before: u64,
    /// Estimated tokens after (0 when dropped).
    pub tokens_after: u64,
}

/// One model call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Exchange {
    /// From 1.
    pub round: u32,
    /// The messages added since the previous call (the first call: the whole conversation).
    pub sent: Vec<TranscriptMessage>,
    /// Estimated tokens of the whole request (bytes / 4).
    pub estimated_input_tokens: u64,
    /// The answer, when there was one.
    pub response: Option<ExchangeResponse>,
    /// Why there was none (transport, timeout, API error, refusal), without secrets.
    pub error: Option<String>,
    /// Wall-clock time of the call, milliseconds.
    pub latency_ms: f64,
}

/// A model answer as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ExchangeResponse {
    /// The model as the provider named it.
    pub model: String,
    /// Its text.
    pub text: Option<String>,
    /// Its tool calls.
    pub tool_calls: Vec<RecordedToolCall>,
    /// Why it stopped (`end_turn`, `tool_use`, `max_tokens`, or the provider's word).
    pub stop: String,
    /// Tokens sent, as reported.
    pub input_tokens: u64,
    /// Tokens generated, as reported.
    pub output_tokens: u64,
    /// HTTP attempts.
    pub attempts: u32,
}

/// A tool call as the model wrote it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RecordedToolCall {
    /// The provider's call id.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as written (JSON text, or not).
    pub arguments: String,
}

/// One message of the conversation, provider-neutral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum TranscriptMessage {
    /// What Guardrail said.
    User {
        /// The text.
        text: String,
    },
    /// What the model said before.
    Assistant {
        /// Its text.
        text: Option<String>,
        /// Its tool calls.
        tool_calls: Vec<RecordedToolCall>,
    },
    /// A tool result.
    ToolResult {
        /// The call it answers.
        call_id: String,
        /// The result.
        content: String,
        /// Whether the call failed.
        is_error: bool,
    },
}

/// A tool call and what came of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ToolCallRecord {
    /// The round it was asked in.
    pub round: u32,
    /// The provider's call id.
    pub id: String,
    /// The tool's name as asked.
    pub name: String,
    /// The arguments as written.
    pub arguments: String,
    /// Whether it ran and succeeded.
    pub ok: bool,
    /// Why it did not: `unknown_tool`, `not_allowed`, `invalid_arguments`, `failed`.
    pub refused: Option<String>,
    /// The result or error text sent back (after compress).
    pub result: String,
    /// Its position in the pipeline's tool trace, when it went through the registry.
    pub trace_seq: Option<u32>,
}

/// Totals over the loop.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TranscriptUsage {
    /// Model calls made.
    pub calls: u32,
    /// Tool rounds used.
    pub tool_rounds: u32,
    /// Tool calls asked for.
    pub tool_calls: u32,
    /// Input tokens (as reported; estimated where the provider reported none).
    pub input_tokens: u64,
    /// Output tokens (as reported).
    pub output_tokens: u64,
    /// Whether any count is an estimate (bytes / 4).
    pub estimated: bool,
    /// Wall-clock time of the loop, milliseconds.
    pub elapsed_ms: f64,
}

/// The plan as the model wrote it. Recorded as reported; the gate reads none of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ReportedPlan {
    /// The action it proposed, verbatim.
    pub proposed_action: String,
    /// Its rationale.
    pub rationale: String,
    /// Its claims.
    pub key_claims: Vec<String>,
    /// Its confidence (the gate reads Guardrail's fixed initial confidence instead).
    pub confidence_initial: Option<f64>,
    /// The context ids it says it used.
    pub retrieved_context_ids: Vec<String>,
    /// Fields outside the plan contract (counts, "approved_by", …), ignored.
    pub ignored_fields: serde_json::Map<String, Value>,
}

/// Why a model's plan was not used. Each names what failed; none is a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlannerFailure {
    /// The model could not be reached or answered with an error (transport, timeout, 4xx/5xx).
    #[error("the model call failed: {message}")]
    Model {
        /// The adapter's error, without secrets.
        message: String,
    },
    /// The model refused.
    #[error("the model refused: {message}")]
    Refusal {
        /// Its words.
        message: String,
    },
    /// The round, token or wall-clock budget ran out before a final plan.
    #[error("the {budget} budget is exhausted ({detail})")]
    Budget {
        /// `tool_rounds`, `tokens` or `wall_clock`.
        budget: String,
        /// The numbers.
        detail: String,
    },
    /// The final answer is not one JSON object.
    #[error("the final answer is not a JSON object: {message}")]
    InvalidJson {
        /// The parser's words.
        message: String,
    },
    /// The final answer violates `plan_output.schema.json`.
    #[error("the plan violates plan_output.schema.json: {message}")]
    Schema {
        /// Which field, why.
        message: String,
    },
    /// The plan is for another incident.
    #[error("the plan is for incident {found:?}, not {expected:?}")]
    WrongIncident {
        /// The incident planned for.
        expected: String,
        /// What the plan says.
        found: String,
    },
    /// The proposed action is a free-text command, not an action of the vocabulary.
    #[error("the proposed action is a free-text command ({matched}), never executed: {action:?}")]
    Destructive {
        /// The action as written.
        action: String,
        /// What gave it away.
        matched: String,
    },
    /// The proposed action is not one the knowledge base offers for the service.
    #[error("the proposed action {action:?} is not offered for {service} (offered: {offered})")]
    NotOffered {
        /// The normalised action.
        action: String,
        /// The service.
        service: String,
        /// The offered action ids, comma-separated.
        offered: String,
    },
}

impl PlannerFailure {
    /// The short kind (`model`, `refusal`, `budget`, `invalid_json`, `schema`, `wrong_incident`,
    /// `destructive`, `not_offered`).
    pub fn kind(&self) -> &'static str {
        match self {
            PlannerFailure::Model { .. } => "model",
            PlannerFailure::Refusal { .. } => "refusal",
            PlannerFailure::Budget { .. } => "budget",
            PlannerFailure::InvalidJson { .. } => "invalid_json",
            PlannerFailure::Schema { .. } => "schema",
            PlannerFailure::WrongIncident { .. } => "wrong_incident",
            PlannerFailure::Destructive { .. } => "destructive",
            PlannerFailure::NotOffered { .. } => "not_offered",
        }
    }
}

/// Estimated tokens of a text: bytes / 4, rounded up (the usual rule of thumb for English and
/// JSON with BPE tokenisers; used where a provider reports no count, and by compress).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// The JSON Schema of a `planner_transcript` record's body, for documents that describe the
/// audit records (beside [`crate::record::body_schemas`]).
pub fn body_schema() -> schemars::Schema {
    schemars::schema_for!(TranscriptBody)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body reads leniently (nothing required) and names what it writes.
    #[test]
    fn the_body_schema_requires_nothing_and_names_the_fields() {
        let schema = body_schema();
        let v = schema.as_value();
        assert!(v.get("required").is_none(), "{v}");
        let props = v["properties"].as_object().unwrap();
        assert_eq!(props.keys().collect::<Vec<_>>(), ["incident_id", "transcript"]);
        let written = serde_json::to_value(TranscriptBody::default()).unwrap();
        let read: TranscriptBody = serde_json::from_value(serde_json::json!({"incident_id": "i"})).unwrap();
        assert_eq!(read.transcript, Transcript::default());
        assert_eq!(written["transcript"]["outcome"], "failed", "a transcript that says nothing reads as failed");
    }

    #[test]
    fn failures_name_their_kind_and_round_trip() {
        let f = PlannerFailure::Budget { budget: "tool_rounds".into(), detail: "6 rounds".into() };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["kind"], "budget");
        assert_eq!(serde_json::from_value::<PlannerFailure>(v).unwrap(), f);
        assert_eq!(f.kind(), "budget");
        assert_eq!(estimate_tokens("abcde"), 2);
    }
}
