//! Kibana Agent Builder's converse API, the original governor's planning path: `POST
//! {kibana}/api/agent_builder/converse` with `Authorization: ApiKey {ELASTIC_API_KEY}` and
//! `kbn-xsrf`, body `{"input", "agent_id"}`. The agent runs in Kibana and calls its tools itself
//! (Guardrail's MCP server, registered there); the synchronous answer is one conversation round:
//! the steps it took (tool calls with their parameters and results, reasoning), the final
//! `response.message`, and `model_usage` (connector, model, LLM calls, tokens).
//!
//! Unlike the original (no timeout but 120 s, no retry, errors printed and swallowed, the tool
//! calls never looked at), every call here is bounded by [`Limits`] — a connect timeout, one
//! deadline for all attempts, at most [`Limits::max_retries`] retries on 408/409/429/5xx
//! honouring `Retry-After` —, errors are typed ([`AgentBuilderError`]), and the steps are read
//! into [`AgentToolCall`]s so the caller can record and budget what the agent did. The API key
//! is an [`ApiKey`]: never in `Debug`, an error or a log line (a Kibana that echoes it back has
//! it replaced by `<redacted>`).
//!
//! Blocking, like the other adapters: call it through `spawn_blocking` from async code.

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::http::{root_cause, snippet, truncate};
use crate::{ApiKey, Limits, Usage, shown_url};

/// `ELASTIC_AGENT_ID` when unset: the original's default.
pub const DEFAULT_AGENT_ID: &str = "agent-builder";

/// The environment variable naming Kibana's base URL.
pub const KIBANA_URL_VAR: &str = "ELASTIC_KIBANA_URL";
/// The variable the original derived the Kibana URL from (`.es.` → `.kb.`) when
/// [`KIBANA_URL_VAR`] is unset.
pub const ELASTIC_URL_VAR: &str = "ELASTIC_URL";
/// The environment variable holding the API key (`Authorization: ApiKey …`).
pub const API_KEY_VAR: &str = "ELASTIC_API_KEY";
/// The environment variable naming the agent.
pub const AGENT_ID_VAR: &str = "ELASTIC_AGENT_ID";

/// The path of the synchronous converse endpoint.
pub const CONVERSE_PATH: &str = "/api/agent_builder/converse";

/// The most of a success body read (a round with many tool results is still megabytes at most).
const MAX_BODY: u64 = 16 * 1024 * 1024;
/// The shortest key replaced in a success body (see [`AgentBuilder::converse`]).
const MIN_REDACTED_KEY: usize = 16;

/// The request and response bodies as Kibana documents them (`ChatRequestBodyPayload`,
/// `ChatResponse` = a `ConversationRound` without `id`/`input`, plus `conversation_id`). Unknown
/// response fields are ignored, and so are step types other than `tool_call` and `reasoning`
/// (Kibana adds new ones between releases).
pub mod wire {
    use serde::{Deserialize, Serialize};

    /// `POST /api/agent_builder/converse` body.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ConverseRequest {
        /// The message to the agent.
        pub input: String,
        /// Which agent.
        pub agent_id: String,
        /// An earlier conversation to continue (Guardrail starts a new one every time, as the
        /// original did).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub conversation_id: Option<String>,
        /// The connector (LLM) to use instead of the agent's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub connector_id: Option<String>,
    }

    /// The 200 body: one conversation round.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ConverseResponse {
        /// The conversation it happened in.
        pub conversation_id: String,
        /// The round's id (recent releases).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub round_id: Option<String>,
        /// The trace id(s) when tracing is on (a string, or a list in recent releases).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub trace_id: Option<serde_json::Value>,
        /// `completed`, … (recent releases).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status: Option<String>,
        /// What the agent did before answering, in order.
        #[serde(default)]
        pub steps: Vec<Step>,
        /// The final answer.
        pub response: AssistantResponse,
        /// When the round started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub started_at: Option<String>,
        /// Milliseconds to the first token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub time_to_first_token: Option<u64>,
        /// Milliseconds to the last token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub time_to_last_token: Option<u64>,
        /// Model usage of the round.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub model_usage: Option<ModelUsage>,
    }

    /// `response`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AssistantResponse {
        /// The agent's text.
        pub message: String,
    }

    /// One step of the round, tagged by `type`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Step {
        /// `{"type": "tool_call", "tool_call_id", "tool_id", "params", "results"}`.
        ToolCall(ToolCallStep),
        /// `{"type": "reasoning", "reasoning"}`.
        Reasoning {
            /// Plain-text reasoning.
            reasoning: String,
        },
        /// A step type this client does not read.
        #[serde(other)]
        Other,
    }

    /// A tool call with its results.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ToolCallStep {
        /// The call's id, as the LLM returned it.
        pub tool_call_id: String,
        /// The tool (for an MCP tool, the id Kibana gave it).
        pub tool_id: String,
        /// The arguments.
        #[serde(default)]
        pub params: serde_json::Value,
        /// What the tool returned.
        #[serde(default)]
        pub results: Vec<ToolResult>,
    }

    /// One result of a tool call: `{"tool_result_id", "type", "data"}`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ToolResult {
        /// Its id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tool_result_id: Option<String>,
        /// `other`, `error`, `resource`, `tabular_data`, `query`, …
        #[serde(rename = "type")]
        pub kind: String,
        /// The payload.
        #[serde(default)]
        pub data: serde_json::Value,
    }

    /// `model_usage`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
    pub struct ModelUsage {
        /// The connector used.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub connector_id: Option<String>,
        /// LLM calls made in the round.
        #[serde(default)]
        pub llm_calls: u64,
        /// Input tokens of the round.
        #[serde(default)]
        pub input_tokens: u64,
        /// Output tokens of the round.
        #[serde(default)]
        pub output_tokens: u64,
        /// The model, when the provider said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub model: Option<String>,
    }

    /// Kibana's error body (hapi Boom): `{"statusCode", "error", "message"}`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ErrorResponse {
        /// The HTTP status.
        #[serde(default)]
        pub status_code: Option<u16>,
        /// The status text (`Bad Request`, `Unauthorized`, …).
        #[serde(default)]
        pub error: Option<String>,
        /// What went wrong.
        pub message: String,
    }
}

/// Where the agent is and who calls it.
#[derive(Debug, Clone)]
pub struct AgentBuilderConfig {
    /// Kibana's base URL (with a `/s/{space}` suffix for a space other than the default).
    pub kibana_url: String,
    /// The API key.
    pub api_key: ApiKey,
    /// The agent.
    pub agent_id: String,
    /// The Kibana connector (LLM) to use instead of the agent's default, if set.
    pub connector_id: Option<String>,
    /// Bounds.
    pub limits: Limits,
}

impl AgentBuilderConfig {
    /// The bounds the original used for one converse call (120 s), with the adapters' connect
    /// timeout and retries: an agent round makes several LLM and tool calls.
    pub fn default_limits() -> Limits {
        Limits { deadline: Duration::from_secs(120), ..Limits::default() }
    }

    /// The config from the environment: `ELASTIC_KIBANA_URL` (else `ELASTIC_URL` with `.es.`
    /// replaced by `.kb.`, as the original derived it), `ELASTIC_API_KEY`, `ELASTIC_AGENT_ID`
    /// (default [`DEFAULT_AGENT_ID`]). A missing URL or key is an error naming the variable.
    pub fn from_env(
        get: &dyn Fn(&str) -> Option<String>,
        limits: Limits,
    ) -> Result<AgentBuilderConfig, AgentBuilderError> {
        let set = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let kibana_url = set(get(KIBANA_URL_VAR))
            .or_else(|| set(get(ELASTIC_URL_VAR)).filter(|u| u.contains(".es.")).map(|u| u.replacen(".es.", ".kb.", 1)))
            .ok_or(AgentBuilderError::MissingSetting { var: KIBANA_URL_VAR })?;
        let api_key =
            get(API_KEY_VAR).and_then(ApiKey::new).ok_or(AgentBuilderError::MissingSetting { var: API_KEY_VAR })?;
        let agent_id = set(get(AGENT_ID_VAR)).unwrap_or_else(|| DEFAULT_AGENT_ID.to_string());
        Ok(AgentBuilderConfig { kibana_url, api_key, agent_id, connector_id: None, limits })
    }
}

/// A tool call the agent made, read from a `tool_call` step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentToolCall {
    /// The call's id.
    pub id: String,
    /// The tool.
    pub tool_id: String,
    /// Its arguments.
    pub params: serde_json::Value,
    /// Its results, as Kibana reported them.
    pub results: Vec<wire::ToolResult>,
}

/// One converse round, read.
#[derive(Debug, Clone, PartialEq)]
pub struct ConverseAnswer {
    /// The conversation.
    pub conversation_id: String,
    /// The agent's final text (`response.message`).
    pub message: String,
    /// The tool calls it made, in order.
    pub tool_calls: Vec<AgentToolCall>,
    /// Its reasoning steps, in order.
    pub reasoning: Vec<String>,
    /// The model, when Kibana said.
    pub model: Option<String>,
    /// The connector, when Kibana said.
    pub connector_id: Option<String>,
    /// LLM calls made in the round (0 when Kibana did not say).
    pub llm_calls: u64,
    /// Tokens of the round (0 when Kibana did not say).
    pub usage: Usage,
    /// HTTP attempts it took.
    pub attempts: u32,
    /// The body as received, for the transcript (it holds no key: the key is only ever in a
    /// request header, and an echo of it is redacted).
    pub raw: serde_json::Value,
}

/// One agent behind one converse endpoint. Blocking; bounded by its [`Limits`].
pub trait Converse: Send + Sync {
    /// The agent's id.
    fn agent_id(&self) -> &str;
    /// The connector asked for instead of the agent's default, if any.
    fn connector_id(&self) -> Option<&str> {
        None
    }
    /// One round: `input` to the agent, its answer back (a new conversation each time).
    fn converse(&self, input: &str) -> Result<ConverseAnswer, AgentBuilderError>;
}

/// Why a converse call gave no usable answer. No variant holds the key.
#[derive(Debug, thiserror::Error)]
pub enum AgentBuilderError {
    /// A required setting is not in the environment.
    #[error("agent-builder: {var} is not set")]
    MissingSetting {
        /// The variable to set.
        var: &'static str,
    },
    /// The Kibana URL is not an http(s) URL.
    #[error("agent-builder: Kibana URL {url:?} is not usable: {reason}")]
    BadUrl {
        /// The URL (credentials removed).
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client or the request could not be built.
    #[error("agent-builder: could not set up the request: {reason}")]
    Client {
        /// Why.
        reason: String,
    },
    /// Kibana could not be reached, or its answer not read.
    #[error("agent-builder: could not reach {url}: {reason}")]
    Transport {
        /// Endpoint.
        url: String,
        /// Root cause.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("agent-builder: no answer from {url} within {}s", .deadline.as_secs_f64())]
    Timeout {
        /// Endpoint.
        url: String,
        /// The deadline.
        deadline: Duration,
    },
    /// Kibana answered with an error status.
    #[error("agent-builder: HTTP {status}{}: {message}", .kind.as_deref().map(|k| format!(" {k}")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// The status text of the error body (`Bad Request`, …).
        kind: Option<String>,
        /// The message.
        message: String,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// Retryable failures until retries or the deadline ran out.
    #[error("agent-builder: gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<AgentBuilderError>,
    },
    /// A 2xx answer with an empty `response.message`.
    #[error("agent-builder: the agent's answer is empty (conversation {conversation_id})")]
    Empty {
        /// The conversation.
        conversation_id: String,
    },
    /// A 2xx answer that is not a converse response.
    #[error("agent-builder: the answer is not a converse response: {reason}")]
    InvalidResponse {
        /// What did not parse.
        reason: String,
    },
}

impl AgentBuilderError {
    /// Whether another attempt may succeed: 408/409/429/5xx and connection failures.
    pub fn retryable(&self) -> bool {
        match self {
            AgentBuilderError::Api { status, .. } => matches!(status, 408 | 409 | 429) || *status >= 500,
            AgentBuilderError::Transport { .. } => true,
            _ => false,
        }
    }
}

/// The converse client.
#[derive(Debug)]
pub struct AgentBuilder {
    http: reqwest::blocking::Client,
    url: String,
    agent_id: String,
    connector_id: Option<String>,
    key: ApiKey,
    limits: Limits,
}

impl AgentBuilder {
    /// A client for `config` (checks the URL; sends nothing).
    pub fn new(config: AgentBuilderConfig) -> Result<AgentBuilder, AgentBuilderError> {
        let base = config.kibana_url.trim();
        let bad = |reason: String| AgentBuilderError::BadUrl { url: shown_url(base), reason };
        let parsed = reqwest::Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(format!("scheme {} (http or https)", parsed.scheme())));
        }
        if config.agent_id.trim().is_empty() {
            return Err(AgentBuilderError::MissingSetting { var: AGENT_ID_VAR });
        }
        let url = format!("{}{CONVERSE_PATH}", base.trim_end_matches('/'));
        // Proxies from the environment are honoured, as for the model APIs.
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(config.limits.connect_timeout)
            .timeout(config.limits.deadline)
            .user_agent(concat!("guardrail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AgentBuilderError::Client { reason: root_cause(&e) })?;
        Ok(AgentBuilder {
            http,
            url,
            agent_id: config.agent_id.trim().to_string(),
            connector_id: config.connector_id.map(|c| c.trim().to_string()).filter(|c| !c.is_empty()),
            key: config.api_key,
            limits: config.limits,
        })
    }

    /// The connector asked for, if any.
    pub fn connector_id(&self) -> Option<&str> {
        self.connector_id.as_deref()
    }

    /// The endpoint called.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The wire body for `input`.
    pub fn body(&self, input: &str) -> wire::ConverseRequest {
        wire::ConverseRequest {
            input: input.to_string(),
            agent_id: self.agent_id.clone(),
            conversation_id: None,
            connector_id: self.connector_id.clone(),
        }
    }

    fn headers(&self) -> Result<HeaderMap, AgentBuilderError> {
        let mut key = HeaderValue::from_str(&format!("ApiKey {}", self.key.expose())).map_err(|_| {
            AgentBuilderError::Client { reason: format!("{API_KEY_VAR} holds bytes an HTTP header cannot carry") }
        })?;
        // Sensitive: reqwest's and http's Debug hide it.
        key.set_sensitive(true);
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, key);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // Kibana refuses a state-changing request without it (CSRF protection).
        h.insert(HeaderName::from_static("kbn-xsrf"), HeaderValue::from_static("true"));
        Ok(h)
    }

    fn post(&self, body: Vec<u8>) -> Result<(String, u32), AgentBuilderError> {
        let headers = self.headers()?;
        let start = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let remaining = self.limits.deadline.saturating_sub(start.elapsed());
            if remaining.is_zero() {
                return Err(wrap(attempts, self.timeout()));
            }
            let failure = match self.once(&headers, &body, remaining) {
                Ok(text) => return Ok((text, attempts)),
                Err(e) => e,
            };
            if matches!(failure, AgentBuilderError::Timeout { .. })
                || !failure.retryable()
                || attempts > self.limits.max_retries
            {
                return Err(wrap(attempts, failure));
            }
            let pause = match &failure {
                AgentBuilderError::Api { retry_after: Some(d), .. } => *d,
                _ => backoff(attempts),
            }
            .min(self.limits.max_retry_wait);
            // A pause that would end past the deadline is not taken: the caller learns now.
            if start.elapsed() + pause >= self.limits.deadline {
                return Err(wrap(attempts, failure));
            }
            std::thread::sleep(pause);
        }
    }

    fn once(&self, headers: &HeaderMap, body: &[u8], remaining: Duration) -> Result<String, AgentBuilderError> {
        let sent = self.http.post(&self.url).headers(headers.clone()).timeout(remaining).body(body.to_vec()).send();
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() && !e.is_connect() => return Err(self.timeout()),
            Err(e) => return Err(self.transport(&e)),
        };
        let status = resp.status();
        let retry_after = crate::http::retry_after(resp.headers(), jiff::Timestamp::now());
        let mut text = String::new();
        if let Err(e) = resp.take(MAX_BODY).read_to_string(&mut text) {
            let timed_out = e.kind() == std::io::ErrorKind::TimedOut
                || std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<reqwest::Error>())
                    .is_some_and(reqwest::Error::is_timeout);
            return Err(if timed_out { self.timeout() } else { self.transport(&e) });
        }
        if status.is_success() {
            // The round goes into the planner transcript: a key Kibana echoed back must not. Only
            // a key long enough to be one is replaced (Elastic API keys are ~60 base64
            // characters); replacing a short test key would corrupt the agent's answer.
            let echoed = self.key.expose().len() >= MIN_REDACTED_KEY && text.contains(self.key.expose());
            return Ok(if echoed { self.key.redact(&text) } else { text });
        }
        let (kind, message) = match parse_error(&text) {
            Some(parsed) => parsed,
            None => (None, snippet(&text)),
        };
        Err(AgentBuilderError::Api {
            status: status.as_u16(),
            kind: kind.map(|k| self.key.redact(&k)),
            message: truncate(&self.key.redact(&message)),
            retry_after,
        })
    }

    fn timeout(&self) -> AgentBuilderError {
        AgentBuilderError::Timeout { url: shown_url(&self.url), deadline: self.limits.deadline }
    }

    fn transport(&self, e: &dyn std::error::Error) -> AgentBuilderError {
        AgentBuilderError::Transport { url: shown_url(&self.url), reason: truncate(&self.key.redact(&root_cause(e))) }
    }
}

impl Converse for AgentBuilder {
    fn agent_id(&self) -> &str {
        &self.agent_id
    }

    fn connector_id(&self) -> Option<&str> {
        self.connector_id.as_deref()
    }

    fn converse(&self, input: &str) -> Result<ConverseAnswer, AgentBuilderError> {
        let body = serde_json::to_vec(&self.body(input))
            .map_err(|e| AgentBuilderError::Client { reason: format!("request not encodable: {e}") })?;
        let (text, attempts) = self.post(body)?;
        read_response(&text, attempts)
    }
}

/// Reads a 200 body (an empty `response.message` is [`AgentBuilderError::Empty`]).
pub fn read_response(text: &str, attempts: u32) -> Result<ConverseAnswer, AgentBuilderError> {
    let invalid = |e: serde_json::Error| AgentBuilderError::InvalidResponse { reason: e.to_string() };
    let raw: serde_json::Value = serde_json::from_str(text).map_err(invalid)?;
    let round: wire::ConverseResponse = serde_json::from_value(raw.clone()).map_err(invalid)?;
    if round.response.message.trim().is_empty() {
        return Err(AgentBuilderError::Empty { conversation_id: round.conversation_id });
    }
    let mut tool_calls = Vec::new();
    let mut reasoning = Vec::new();
    for step in round.steps {
        match step {
            wire::Step::ToolCall(c) => tool_calls.push(AgentToolCall {
                id: c.tool_call_id,
                tool_id: c.tool_id,
                params: c.params,
                results: c.results,
            }),
            wire::Step::Reasoning { reasoning: r } => reasoning.push(r),
            wire::Step::Other => {}
        }
    }
    let usage = round.model_usage.unwrap_or_default();
    Ok(ConverseAnswer {
        conversation_id: round.conversation_id,
        message: round.response.message,
        tool_calls,
        reasoning,
        model: usage.model,
        connector_id: usage.connector_id,
        llm_calls: usage.llm_calls,
        usage: Usage { input_tokens: usage.input_tokens, output_tokens: usage.output_tokens },
        attempts,
        raw,
    })
}

/// Kibana's `{"statusCode", "error", "message"}` → (status text, message).
pub fn parse_error(body: &str) -> Option<(Option<String>, String)> {
    let e = serde_json::from_str::<wire::ErrorResponse>(body).ok()?;
    Some((e.error, e.message))
}

fn wrap(attempts: u32, last: AgentBuilderError) -> AgentBuilderError {
    if attempts > 1 { AgentBuilderError::Exhausted { attempts, last: Box::new(last) } } else { last }
}

/// 0.5 s, 1 s, 2 s, … when the server does not say.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.saturating_sub(1).min(10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kibana_url_comes_from_its_variable_or_is_derived_as_the_original_did() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let get = env(&[("ELASTIC_URL", "https://x.es.eu.cloud:443"), ("ELASTIC_API_KEY", "k")]);
        let c = AgentBuilderConfig::from_env(&get, Limits::default()).unwrap();
        assert_eq!(c.kibana_url, "https://x.kb.eu.cloud:443");
        assert_eq!(c.agent_id, DEFAULT_AGENT_ID);
        let get = env(&[("ELASTIC_KIBANA_URL", "http://kb"), ("ELASTIC_API_KEY", " "), ("ELASTIC_AGENT_ID", "sre")]);
        let e = AgentBuilderConfig::from_env(&get, Limits::default()).unwrap_err();
        assert!(matches!(e, AgentBuilderError::MissingSetting { var: API_KEY_VAR }), "{e}");
        let get = env(&[("ELASTIC_URL", "http://localhost:9200"), ("ELASTIC_API_KEY", "k")]);
        let e = AgentBuilderConfig::from_env(&get, Limits::default()).unwrap_err();
        assert!(matches!(e, AgentBuilderError::MissingSetting { var: KIBANA_URL_VAR }), "{e}");
    }

    #[test]
    fn unknown_step_types_are_skipped_and_an_empty_message_is_an_error() {
        let body = r#"{"conversation_id":"c1","steps":[{"type":"compaction","x":1},
            {"type":"reasoning","reasoning":"look"}],"response":{"message":"  "}}"#;
        assert!(matches!(read_response(body, 1), Err(AgentBuilderError::Empty { .. })));
        let body = body.replace("\"  \"", "\"ok\"");
        let a = read_response(&body, 1).unwrap();
        assert_eq!(a.reasoning, vec!["look".to_string()]);
        assert!(a.tool_calls.is_empty());
        assert_eq!(a.usage, Usage::default());
    }
}
