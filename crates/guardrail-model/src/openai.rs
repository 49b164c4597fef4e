//! OpenAI-compatible Chat Completions: `POST {base}/chat/completions` with
//! `Authorization: Bearer {OPENAI_API_KEY}`. The same body works for OpenAI, vLLM, Ollama and
//! LM Studio (their `/v1` compatibility endpoints) and Azure OpenAI's v1 endpoint.

use reqwest::header::{AUTHORIZATION, HeaderMap};

use crate::http::{Transport, secret_header};
use crate::{
    ChatModel, ChatRequest, ChatResponse, Message, ModelConfig, ModelError, Provider, StopReason, ToolCall, Usage,
    endpoint,
};

/// `OPENAI_BASE_URL` when unset (the official SDKs' default).
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// `OPENAI_MODEL` when unset (the original explainer's default).
pub const DEFAULT_MODEL: &str = "gpt-4o";

/// The request and response bodies as OpenAI documents them (the fields Guardrail sends and
/// reads; unknown response fields are ignored).
pub mod wire {
    use serde::{Deserialize, Serialize};

    /// The `type` of a tool and of a tool call: always `"function"`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
    #[serde(rename_all = "lowercase")]
    pub enum FunctionType {
        /// `"function"`.
        #[default]
        Function,
    }

    /// `POST /chat/completions` body.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatCompletionRequest {
        /// Model name.
        pub model: String,
        /// The conversation, system message first.
        pub messages: Vec<RequestMessage>,
        /// Tools offered (omitted when none).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tools: Vec<Tool>,
        /// Sampling temperature.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub temperature: Option<f32>,
        /// Output token cap (the current name; `max_tokens` is deprecated).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_completion_tokens: Option<u32>,
    }

    /// One input message, tagged by `role`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "role", rename_all = "lowercase")]
    pub enum RequestMessage {
        /// `{"role": "system", "content"}`.
        System {
            /// Text.
            content: String,
        },
        /// `{"role": "user", "content"}`.
        User {
            /// Text.
            content: String,
        },
        /// `{"role": "assistant", "content"?, "tool_calls"?}`: an earlier answer, sent back.
        Assistant {
            /// Text (null when it only called tools).
            #[serde(default)]
            content: Option<String>,
            /// Its tool calls.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            tool_calls: Vec<ToolCall>,
        },
        /// `{"role": "tool", "tool_call_id", "content"}`: one tool call's result.
        Tool {
            /// The call answered.
            tool_call_id: String,
            /// Result text.
            content: String,
        },
    }

    /// `{"type": "function", "function": {...}}` in `tools`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Tool {
        /// `"function"`.
        #[serde(rename = "type")]
        pub kind: FunctionType,
        /// The function.
        pub function: FunctionDefinition,
    }

    /// A tool's name, description and parameters schema.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct FunctionDefinition {
        /// Name.
        pub name: String,
        /// Description.
        pub description: String,
        /// JSON Schema of the arguments object.
        pub parameters: serde_json::Value,
    }

    /// `{"id", "type": "function", "function": {"name", "arguments"}}` in `tool_calls`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ToolCall {
        /// Call id.
        pub id: String,
        /// `"function"`.
        #[serde(rename = "type", default)]
        pub kind: FunctionType,
        /// Name and arguments.
        pub function: FunctionCall,
    }

    /// A call's function: the arguments are a JSON-encoded string (which the model may get wrong).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct FunctionCall {
        /// Tool name.
        pub name: String,
        /// Arguments, JSON text.
        pub arguments: String,
    }

    /// The 200 body (`"object": "chat.completion"`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatCompletion {
        /// Response id.
        #[serde(default)]
        pub id: Option<String>,
        /// `"chat.completion"`.
        #[serde(default)]
        pub object: Option<String>,
        /// Unix seconds.
        #[serde(default)]
        pub created: Option<i64>,
        /// The model that answered.
        #[serde(default)]
        pub model: Option<String>,
        /// The answers (Guardrail asks for one).
        pub choices: Vec<Choice>,
        /// Tokens.
        #[serde(default)]
        pub usage: Option<CompletionUsage>,
    }

    /// One answer.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Choice {
        /// Position.
        #[serde(default)]
        pub index: u32,
        /// The message.
        pub message: ResponseMessage,
        /// `stop`, `length`, `tool_calls`, `content_filter` (null while streaming).
        #[serde(default)]
        pub finish_reason: Option<String>,
    }

    /// The assistant's message.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ResponseMessage {
        /// `"assistant"`.
        #[serde(default)]
        pub role: Option<String>,
        /// Text (null when it only calls tools or refuses).
        #[serde(default)]
        pub content: Option<String>,
        /// Set when the model refused.
        #[serde(default)]
        pub refusal: Option<String>,
        /// Tool calls (absent or null when none).
        #[serde(default)]
        pub tool_calls: Option<Vec<ToolCall>>,
    }

    /// `usage`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
    pub struct CompletionUsage {
        /// Input tokens.
        #[serde(default)]
        pub prompt_tokens: u64,
        /// Output tokens.
        #[serde(default)]
        pub completion_tokens: u64,
        /// Both.
        #[serde(default)]
        pub total_tokens: u64,
    }

    /// The error body: `{"error": {"message", "type", "param", "code"}}`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ErrorResponse {
        /// The error.
        pub error: ErrorObject,
    }

    /// The error object.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ErrorObject {
        /// Human-readable message.
        pub message: String,
        /// `invalid_request_error`, `insufficient_quota`, …
        #[serde(rename = "type", default)]
        pub kind: Option<String>,
        /// The offending parameter.
        #[serde(default)]
        pub param: Option<String>,
        /// `invalid_api_key`, `rate_limit_exceeded`, … (a string, sometimes a number or null).
        #[serde(default)]
        pub code: Option<serde_json::Value>,
    }
}

/// The Chat Completions adapter.
#[derive(Debug)]
pub struct OpenAi {
    transport: Transport,
    model: String,
}

impl OpenAi {
    /// An adapter for `config` (checks the base URL; sends nothing).
    pub fn new(config: ModelConfig) -> Result<OpenAi, ModelError> {
        let url = endpoint(Provider::OpenAi, &config.base_url, "/chat/completions")?;
        let transport = Transport::new(Provider::OpenAi, url, config.api_key, config.limits)?;
        Ok(OpenAi { transport, model: config.model })
    }

    /// The wire body for `request`.
    pub fn body(&self, request: &ChatRequest) -> wire::ChatCompletionRequest {
        request_body(&self.model, request)
    }
}

/// The wire body of `request` for `model`.
pub fn request_body(model: &str, request: &ChatRequest) -> wire::ChatCompletionRequest {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        messages.push(wire::RequestMessage::System { content: system.clone() });
    }
    for m in &request.messages {
        messages.push(match m {
            Message::User(text) => wire::RequestMessage::User { content: text.clone() },
            Message::Assistant { text, tool_calls } => wire::RequestMessage::Assistant {
                content: text.clone(),
                tool_calls: tool_calls
                    .iter()
                    .map(|c| wire::ToolCall {
                        id: c.id.clone(),
                        kind: wire::FunctionType::Function,
                        function: wire::FunctionCall { name: c.name.clone(), arguments: c.arguments.clone() },
                    })
                    .collect(),
            },
            // Chat Completions has no error flag on a tool result: the content says it.
            Message::ToolResult { call_id, content, .. } => {
                wire::RequestMessage::Tool { tool_call_id: call_id.clone(), content: content.clone() }
            }
        });
    }
    wire::ChatCompletionRequest {
        model: model.to_string(),
        messages,
        tools: request
            .tools
            .iter()
            .map(|t| wire::Tool {
                kind: wire::FunctionType::Function,
                function: wire::FunctionDefinition {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: t.input_schema.clone(),
                },
            })
            .collect(),
        temperature: request.temperature,
        max_completion_tokens: request.max_tokens,
    }
}

/// Reads a 200 body into the neutral answer (refusals and empty answers are errors).
pub fn read_response(text: &str, attempts: u32) -> Result<ChatResponse, ModelError> {
    let provider = Provider::OpenAi;
    let completion: wire::ChatCompletion =
        serde_json::from_str(text).map_err(|e| ModelError::InvalidResponse { provider, reason: e.to_string() })?;
    let choice = completion
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ModelError::InvalidResponse { provider, reason: "no choices".into() })?;
    let finish = choice.finish_reason.unwrap_or_default();
    if let Some(refusal) = choice.message.refusal.filter(|r| !r.trim().is_empty()) {
        return Err(ModelError::Refusal { provider, message: refusal });
    }
    if finish == "content_filter" {
        return Err(ModelError::Refusal { provider, message: "finish_reason content_filter".into() });
    }
    let text = choice.message.content.filter(|t| !t.trim().is_empty());
    let tool_calls: Vec<ToolCall> = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .map(|c| ToolCall { id: c.id, name: c.function.name, arguments: c.function.arguments })
        .collect();
    if text.is_none() && tool_calls.is_empty() {
        return Err(ModelError::Empty { provider, stop: if finish.is_empty() { "none".into() } else { finish } });
    }
    let stop = match finish.as_str() {
        "stop" => StopReason::EndTurn,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_string()),
    };
    let usage = completion.usage.unwrap_or_default();
    Ok(ChatResponse {
        model: completion.model.unwrap_or_default(),
        text,
        tool_calls,
        stop,
        usage: Usage { input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens },
        attempts,
    })
}

/// `{"error": {...}}` → (code or type, message).
pub fn parse_error(body: &str) -> Option<(Option<String>, String)> {
    let e = serde_json::from_str::<wire::ErrorResponse>(body).ok()?.error;
    let code = match e.code {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Some((code.or(e.kind), e.message))
}

impl ChatModel for OpenAi {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let bearer = secret_header(Provider::OpenAi, &format!("Bearer {}", self.transport.key().expose()))?;
        let headers = HeaderMap::from_iter([(AUTHORIZATION, bearer)]);
        self.transport.exchange(headers, &self.body(request), parse_error, read_response, &self.model)
    }
}
