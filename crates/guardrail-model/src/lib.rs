//! Guardrail's model backends: one trait, [`ChatModel`], and two adapters that speak the
//! providers' documented wire formats —
//!
//! - [`openai::OpenAi`]: OpenAI-compatible Chat Completions (`POST {base}/chat/completions`,
//!   bearer key; OpenAI, Azure OpenAI's compatible endpoint, vLLM, Ollama, LM Studio), with tool
//!   calling (`tools`, `tool_calls`, `role: "tool"`);
//! - [`anthropic::Anthropic`]: Anthropic Messages (`POST {base}/v1/messages`, `x-api-key`,
//!   `anthropic-version: 2023-06-01`), with `tool_use` / `tool_result` content blocks.
//!
//! A caller builds a provider-neutral [`ChatRequest`] and reads a [`ChatResponse`]; each adapter
//! translates to and from its typed wire structs (`openai::wire`, `anthropic::wire`), which are
//! `pub` so tests and the loopback servers speak exactly what the adapters send.
//!
//! Every call is bounded: a connect timeout, an overall deadline that covers all attempts and
//! pauses, and at most [`Limits::max_retries`] retries on 408/409/429/5xx (529 is Anthropic's
//! "overloaded"), honouring `retry-after-ms` / `Retry-After` up to [`Limits::max_retry_wait`]
//! and never past the deadline. Error bodies become [`ModelError::Api`] with the provider's
//! `type`/`code` and message. The API key lives in an [`ApiKey`], whose `Debug` hides it; it is
//! never put in an error (a provider that echoes it back has it replaced by `<redacted>`).
//!
//! The client is blocking (reqwest's blocking client, rustls with the compiled-in Mozilla
//! roots, as guardrail-prometheus): from inside an async runtime call it through
//! `spawn_blocking`.
//!
//! [`explainer`] uses it to narrate a gate decision; it never changes one.

pub mod agent_builder;
pub mod anthropic;
pub mod explainer;
mod http;
pub mod openai;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which provider's API an adapter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI-compatible Chat Completions.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl Provider {
    /// The lower-case name (`openai`, `anthropic`), as `EXPLAINER_BACKEND` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    /// The environment variable that holds the key.
    pub fn key_var(self) -> &'static str {
        match self {
            Provider::OpenAi => "OPENAI_API_KEY",
            Provider::Anthropic => "ANTHROPIC_API_KEY",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An API key. `Debug` prints `ApiKey(<redacted>)` and there is no `Display`, so a key cannot
/// reach a log line, an error or a record by formatting a config.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; `None` when it is empty or only blanks (an unset key, as the SDKs treat it).
    pub fn new(key: impl Into<String>) -> Option<ApiKey> {
        let key = key.into().trim().to_string();
        (!key.is_empty()).then_some(ApiKey(key))
    }

    /// The key itself, for the one header that carries it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced by `<redacted>`.
    pub(crate) fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "<redacted>")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Time and retry bounds of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// TCP (and TLS) connect timeout of one attempt.
    pub connect_timeout: Duration,
    /// Overall deadline of one [`ChatModel::chat`] call: every attempt and every pause between
    /// attempts fit in it.
    pub deadline: Duration,
    /// Retries after the first attempt (on 408/409/429/5xx and connection failures).
    pub max_retries: u32,
    /// The longest pause honoured from `Retry-After` (a longer one is cut to this).
    pub max_retry_wait: Duration,
}

impl Default for Limits {
    /// 5 s to connect, 60 s overall, 2 retries, pauses of at most 10 s: a narrative or a plan
    /// step takes seconds; a pipeline must not hang on a provider that does not answer.
    fn default() -> Limits {
        Limits {
            connect_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
            max_retries: 2,
            max_retry_wait: Duration::from_secs(10),
        }
    }
}

/// What an adapter needs: where, who, which model, how long.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The API's base URL (`https://api.openai.com/v1`, `https://api.anthropic.com`).
    pub base_url: String,
    /// The key.
    pub api_key: ApiKey,
    /// The model name sent in each request.
    pub model: String,
    /// Bounds.
    pub limits: Limits,
}

/// One tool the model may call: its name, what it does, and its arguments' JSON Schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name (`search_runbooks`).
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: serde_json::Value,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's call id, echoed back in the result.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// The arguments as the model wrote them: JSON text. OpenAI sends a string that may not be
    /// JSON at all; the loop answers such a call with an error result instead of failing, so the
    /// text is kept as is ([`ToolCall::arguments_json`] parses it).
    pub arguments: String,
}

impl ToolCall {
    /// The arguments parsed, or why they are not JSON.
    pub fn arguments_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.arguments)
    }
}

/// One turn of the conversation, provider-neutral.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// What the user (Guardrail) says.
    User(String),
    /// What the model said before: text and/or tool calls.
    Assistant {
        /// Its text.
        text: Option<String>,
        /// Its tool calls.
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call.
    ToolResult {
        /// [`ToolCall::id`].
        call_id: String,
        /// The result (JSON text or an error message).
        content: String,
        /// Whether the call failed (unknown tool, invalid arguments).
        is_error: bool,
    },
}

/// A chat request, provider-neutral.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The system prompt.
    pub system: Option<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools the model may call (none: a plain completion).
    pub tools: Vec<ToolSpec>,
    /// Output token cap (Anthropic requires one: 1024 when `None`; OpenAI's
    /// `max_completion_tokens`, omitted when `None`).
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its answer (`stop` / `end_turn`).
    EndTurn,
    /// It wants tool results (`tool_calls` / `tool_use`).
    ToolUse,
    /// It hit the token cap (`length` / `max_tokens`).
    MaxTokens,
    /// Anything else the provider reported, verbatim.
    Other(String),
}

/// Token usage of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens sent.
    pub input_tokens: u64,
    /// Tokens generated.
    pub output_tokens: u64,
}

/// A model's answer, provider-neutral.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The model that answered, as the provider names it.
    pub model: String,
    /// Its text (the text blocks joined), if any.
    pub text: Option<String>,
    /// The tool calls it asked for.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Tokens.
    pub usage: Usage,
    /// HTTP attempts it took (1 + retries used).
    pub attempts: u32,
}

/// One model behind one API. Blocking; bounded by its [`Limits`].
pub trait ChatModel: Send + Sync {
    /// Which API.
    fn provider(&self) -> Provider;
    /// The model name sent.
    fn model(&self) -> &str;
    /// One request, with the adapter's retries.
    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError>;
}

/// Why a model call gave no usable answer. No variant holds the key: messages that came from the
/// provider have it replaced by `<redacted>`.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No key in the environment.
    #[error("{provider}: no API key: set {var}")]
    MissingKey {
        /// Provider.
        provider: Provider,
        /// The variable to set.
        var: &'static str,
    },
    /// The base URL is not an http(s) URL.
    #[error("{provider}: base URL {url:?} is not usable: {reason}")]
    BadBaseUrl {
        /// Provider.
        provider: Provider,
        /// The URL given (credentials in it removed).
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("{provider}: could not set up the HTTP client: {reason}")]
    Client {
        /// Provider.
        provider: Provider,
        /// Why.
        reason: String,
    },
    /// The request could not be sent or its answer not read (connection refused, reset, TLS).
    #[error("{provider}: could not reach {url}: {reason}")]
    Transport {
        /// Provider.
        provider: Provider,
        /// Endpoint.
        url: String,
        /// Root cause.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("{provider}: no answer from {url} within {}s", .deadline.as_secs_f64())]
    Timeout {
        /// Provider.
        provider: Provider,
        /// Endpoint.
        url: String,
        /// The deadline that passed.
        deadline: Duration,
    },
    /// The API answered with an error status.
    #[error("{provider}: HTTP {status}{}: {message}", .kind.as_deref().map(|k| format!(" {k}")).unwrap_or_default())]
    Api {
        /// Provider.
        provider: Provider,
        /// HTTP status.
        status: u16,
        /// The error's `type` / `code` (`invalid_api_key`, `authentication_error`,
        /// `overloaded_error`, …), when the body says.
        kind: Option<String>,
        /// The error's message (or the start of a body that is not the API's error object).
        message: String,
        /// `Retry-After` as sent, when it was.
        retry_after: Option<Duration>,
    },
    /// Retryable failures until the retries or the deadline ran out; `last` is the final one.
    #[error("{provider}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Provider.
        provider: Provider,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<ModelError>,
    },
    /// The model declined to answer (OpenAI `message.refusal` or `finish_reason:
    /// content_filter`; Anthropic `stop_reason: refusal`).
    #[error("{provider}: the model refused: {message}")]
    Refusal {
        /// Provider.
        provider: Provider,
        /// The refusal text, or the reason reported.
        message: String,
    },
    /// A 2xx answer with neither text nor tool calls.
    #[error("{provider}: the model's answer is empty (stop reason {stop})")]
    Empty {
        /// Provider.
        provider: Provider,
        /// The reported stop reason.
        stop: String,
    },
    /// A 2xx answer that is not the API's response object.
    #[error("{provider}: the answer is not a {provider} response: {reason}")]
    InvalidResponse {
        /// Provider.
        provider: Provider,
        /// What did not parse.
        reason: String,
    },
}

impl ModelError {
    /// Whether another attempt may succeed: 408/409/429/5xx (incl. Anthropic's 529) and
    /// connection failures. A 4xx like 401 or 400 will answer the same again.
    pub fn retryable(&self) -> bool {
        match self {
            ModelError::Api { status, .. } => matches!(status, 408 | 409 | 429) || *status >= 500,
            ModelError::Transport { .. } => true,
            _ => false,
        }
    }
}

/// `url` without `user:password@` (never shown, as a key would not be).
pub(crate) fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.split('@').next_back().unwrap_or(url).to_string(),
    }
}

/// The endpoint `{base}{path}` after checking the base is an http(s) URL.
pub(crate) fn endpoint(provider: Provider, base: &str, path: &str) -> Result<String, ModelError> {
    let bad = |reason: String| ModelError::BadBaseUrl { provider, url: shown_url(base), reason };
    let parsed = reqwest::Url::parse(base.trim()).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!("scheme {} (http or https)", parsed.scheme())));
    }
    Ok(format!("{}{path}", base.trim().trim_end_matches('/')))
}

impl ModelConfig {
    /// The config of `provider` from the environment: `OPENAI_BASE_URL` / `OPENAI_API_KEY` /
    /// `OPENAI_MODEL` (defaults `https://api.openai.com/v1`, `gpt-4o`, as the official SDKs and
    /// the original explainer), or `ANTHROPIC_BASE_URL` / `ANTHROPIC_API_KEY` / `ANTHROPIC_MODEL`
    /// (defaults `https://api.anthropic.com`, `claude-3-5-sonnet-20241022`). `model` (a
    /// `--model` flag) wins over the variable. No key is [`ModelError::MissingKey`].
    pub fn from_env(
        provider: Provider,
        get: &dyn Fn(&str) -> Option<String>,
        model: Option<&str>,
        limits: Limits,
    ) -> Result<ModelConfig, ModelError> {
        let (base_var, model_var, default_base, default_model) = match provider {
            Provider::OpenAi => ("OPENAI_BASE_URL", "OPENAI_MODEL", openai::DEFAULT_BASE_URL, openai::DEFAULT_MODEL),
            Provider::Anthropic => {
                ("ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL", anthropic::DEFAULT_BASE_URL, anthropic::DEFAULT_MODEL)
            }
        };
        let set = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let api_key = get(provider.key_var())
            .and_then(ApiKey::new)
            .ok_or(ModelError::MissingKey { provider, var: provider.key_var() })?;
        Ok(ModelConfig {
            base_url: set(get(base_var)).unwrap_or_else(|| default_base.to_string()),
            api_key,
            model: set(model.map(str::to_string))
                .or_else(|| set(get(model_var)))
                .unwrap_or_else(|| default_model.to_string()),
            limits,
        })
    }
}

/// The adapter for `provider` with `config`.
pub fn connect(provider: Provider, config: ModelConfig) -> Result<Box<dyn ChatModel>, ModelError> {
    Ok(match provider {
        Provider::OpenAi => Box::new(openai::OpenAi::new(config)?),
        Provider::Anthropic => Box::new(anthropic::Anthropic::new(config)?),
    })
}
