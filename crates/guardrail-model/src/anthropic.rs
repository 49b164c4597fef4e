//! Anthropic Messages: `POST {base}/v1/messages` with `x-api-key: {ANTHROPIC_API_KEY}` and
//! `anthropic-version: 2023-06-01`.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::http::{Transport, secret_header};
use crate::{
    ChatModel, ChatRequest, ChatResponse, Message, ModelConfig, ModelError, Provider, StopReason, ToolCall, Usage,
    endpoint,
};

/// `ANTHROPIC_BASE_URL` when unset (the official SDKs' default).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// `ANTHROPIC_MODEL` when unset (the original explainer's default).
pub const DEFAULT_MODEL: &str = "claude-3-5-sonnet-20241022";
/// The API version header value.
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` when the request does not say (the API requires one; the original's value).
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// The request and response bodies as Anthropic documents them (the fields Guardrail sends and
/// reads; unknown response fields are ignored, unknown content blocks kept as
/// [`wire::ContentBlock::Other`]).
pub mod wire {
    use serde::{Deserialize, Serialize};

    /// `POST /v1/messages` body.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct MessagesRequest {
        /// Model name.
        pub model: String,
        /// Output token cap (required).
        pub max_tokens: u32,
        /// System prompt (top level, not a message).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub system: Option<String>,
        /// Alternating user / assistant turns, user first.
        pub messages: Vec<InputMessage>,
        /// Tools offered (omitted when none).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tools: Vec<Tool>,
        /// Sampling temperature.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub temperature: Option<f32>,
    }

    /// `user` or `assistant`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Role {
        /// `"user"`.
        User,
        /// `"assistant"`.
        Assistant,
    }

    /// One turn: a role and its content blocks.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct InputMessage {
        /// Who.
        pub role: Role,
        /// Blocks.
        pub content: Vec<ContentBlock>,
    }

    /// A content block, tagged by `type`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum ContentBlock {
        /// `{"type": "text", "text"}`.
        Text {
            /// Text.
            text: String,
        },
        /// `{"type": "tool_use", "id", "name", "input"}`: the model calls a tool.
        ToolUse {
            /// Call id (`toolu_…`).
            id: String,
            /// Tool name.
            name: String,
            /// Arguments object.
            input: serde_json::Value,
        },
        /// `{"type": "tool_result", "tool_use_id", "content", "is_error"?}`: in a user turn.
        ToolResult {
            /// The call answered.
            tool_use_id: String,
            /// Result text.
            content: String,
            /// Whether the call failed.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            is_error: bool,
        },
        /// A block type Guardrail does not use (`thinking`, `server_tool_use`, …): ignored.
        #[serde(other)]
        Other,
    }

    /// A tool: `{"name", "description", "input_schema"}`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Tool {
        /// Name.
        pub name: String,
        /// Description.
        pub description: String,
        /// JSON Schema of the input object.
        pub input_schema: serde_json::Value,
    }

    /// The 200 body (`"type": "message"`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct MessagesResponse {
        /// `msg_…`.
        #[serde(default)]
        pub id: Option<String>,
        /// `"message"`.
        #[serde(rename = "type")]
        pub kind: String,
        /// `"assistant"`.
        #[serde(default)]
        pub role: Option<Role>,
        /// The model that answered.
        #[serde(default)]
        pub model: Option<String>,
        /// Blocks.
        pub content: Vec<ContentBlock>,
        /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `pause_turn`, `refusal`.
        #[serde(default)]
        pub stop_reason: Option<String>,
        /// The stop sequence hit.
        #[serde(default)]
        pub stop_sequence: Option<String>,
        /// Tokens.
        #[serde(default)]
        pub usage: Option<MessagesUsage>,
    }

    /// `usage`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
    pub struct MessagesUsage {
        /// Input tokens.
        #[serde(default)]
        pub input_tokens: u64,
        /// Output tokens.
        #[serde(default)]
        pub output_tokens: u64,
    }

    /// The error body: `{"type": "error", "error": {"type", "message"}}`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ErrorResponse {
        /// `"error"`.
        #[serde(rename = "type")]
        pub kind: String,
        /// The error.
        pub error: ErrorObject,
    }

    /// The error object.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ErrorObject {
        /// `authentication_error`, `rate_limit_error`, `overloaded_error`, …
        #[serde(rename = "type")]
        pub kind: String,
        /// Message.
        pub message: String,
    }
}

/// The Messages adapter.
#[derive(Debug)]
pub struct Anthropic {
    transport: Transport,
    model: String,
}

impl Anthropic {
    /// An adapter for `config` (checks the base URL; sends nothing).
    pub fn new(config: ModelConfig) -> Result<Anthropic, ModelError> {
        let url = endpoint(Provider::Anthropic, &config.base_url, "/v1/messages")?;
        let transport = Transport::new(Provider::Anthropic, url, config.api_key, config.limits)?;
        Ok(Anthropic { transport, model: config.model })
    }
}

/// The wire body of `request` for `model`. Consecutive neutral messages of one role become one
/// turn (the API wants turns to alternate; several tool results answer one assistant turn).
pub fn request_body(model: &str, request: &ChatRequest) -> wire::MessagesRequest {
    let mut messages: Vec<wire::InputMessage> = Vec::new();
    for m in &request.messages {
        let (role, blocks) = match m {
            Message::User(text) => (wire::Role::User, vec![wire::ContentBlock::Text { text: text.clone() }]),
            Message::Assistant { text, tool_calls } => {
                let mut blocks: Vec<wire::ContentBlock> =
                    text.iter().map(|t| wire::ContentBlock::Text { text: t.clone() }).collect();
                blocks.extend(tool_calls.iter().map(|c| {
                    wire::ContentBlock::ToolUse {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        // Calls came from this API, so their arguments are an object; anything else
                        // is sent as `{}` rather than failing the turn.
                        input: c
                            .arguments_json()
                            .ok()
                            .filter(serde_json::Value::is_object)
                            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new())),
                    }
                }));
                (wire::Role::Assistant, blocks)
            }
            Message::ToolResult { call_id, content, is_error } => (
                wire::Role::User,
                vec![wire::ContentBlock::ToolResult {
                    tool_use_id: call_id.clone(),
                    content: content.clone(),
                    is_error: *is_error,
                }],
            ),
        };
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(wire::InputMessage { role, content: blocks }),
        }
    }
    wire::MessagesRequest {
        model: model.to_string(),
        max_tokens: request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        system: request.system.clone(),
        messages,
        tools: request
            .tools
            .iter()
            .map(|t| wire::Tool {
                name: t.name.clone(),
                description: t.description.clone(),
                input_schema: t.input_schema.clone(),
            })
            .collect(),
        temperature: request.temperature,
    }
}

/// Reads a 200 body into the neutral answer (refusals and empty answers are errors).
pub fn read_response(text: &str, attempts: u32) -> Result<ChatResponse, ModelError> {
    let provider = Provider::Anthropic;
    let msg: wire::MessagesResponse =
        serde_json::from_str(text).map_err(|e| ModelError::InvalidResponse { provider, reason: e.to_string() })?;
    if msg.kind != "message" {
        return Err(ModelError::InvalidResponse { provider, reason: format!("type {:?}, not \"message\"", msg.kind) });
    }
    let stop_reason = msg.stop_reason.unwrap_or_default();
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in msg.content {
        match block {
            wire::ContentBlock::Text { text } => texts.push(text),
            wire::ContentBlock::ToolUse { id, name, input } => {
                tool_calls.push(ToolCall { id, name, arguments: input.to_string() })
            }
            wire::ContentBlock::ToolResult { .. } | wire::ContentBlock::Other => {}
        }
    }
    let text = Some(texts.join("")).filter(|t| !t.trim().is_empty());
    if stop_reason == "refusal" {
        return Err(ModelError::Refusal { provider, message: text.unwrap_or_else(|| "stop_reason refusal".into()) });
    }
    if text.is_none() && tool_calls.is_empty() {
        return Err(ModelError::Empty {
            provider,
            stop: if stop_reason.is_empty() { "none".into() } else { stop_reason },
        });
    }
    let stop = match stop_reason.as_str() {
        "end_turn" | "stop_sequence" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_string()),
    };
    let usage = msg.usage.unwrap_or_default();
    Ok(ChatResponse {
        model: msg.model.unwrap_or_default(),
        text,
        tool_calls,
        stop,
        usage: Usage { input_tokens: usage.input_tokens, output_tokens: usage.output_tokens },
        attempts,
    })
}

/// `{"type": "error", "error": {"type", "message"}}` → (type, message).
pub fn parse_error(body: &str) -> Option<(Option<String>, String)> {
    let e = serde_json::from_str::<wire::ErrorResponse>(body).ok()?;
    (e.kind == "error").then_some((Some(e.error.kind), e.error.message))
}

impl ChatModel for Anthropic {
    fn provider(&self) -> Provider {
        Provider::Anthropic
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let key = secret_header(Provider::Anthropic, self.transport.key().expose())?;
        let headers = HeaderMap::from_iter([
            (HeaderName::from_static("x-api-key"), key),
            (HeaderName::from_static("anthropic-version"), HeaderValue::from_static(API_VERSION)),
        ]);
        let body = request_body(&self.model, request);
        self.transport.exchange(headers, &body, parse_error, read_response, &self.model)
    }
}
