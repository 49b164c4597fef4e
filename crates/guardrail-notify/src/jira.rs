//! The Jira Cloud REST v3 client and the Jira [`Channel`]: one issue per incident, a comment
//! at each step, a transition when it is resolved.
//!
//! Wire format as Atlassian documents it
//! (<https://developer.atlassian.com/cloud/jira/platform/rest/v3/>), Basic auth
//! `email:api_token` as the original (`JIRA_URL`, `JIRA_EMAIL`, `JIRA_API_TOKEN`,
//! `JIRA_PROJECT_KEY`):
//! - `POST /rest/api/3/search/jql` `{jql, fields, maxResults}` → `{issues: [{id, key}]}`: the
//!   incident's issue, found by its label `guardrail-incident-<id>`, before anything is created;
//! - `POST /rest/api/3/issue` `{fields: {project: {key}, summary, issuetype: {name}, labels,
//!   priority: {name}, description: ADF}}` → 201 `{id, key, self}`;
//! - `POST /rest/api/3/issue/{key}/comment` `{body: ADF}` → 201;
//! - `GET /rest/api/3/issue/{key}/transitions` → `{transitions: [{id, name, to}]}`, then
//!   `POST …/transitions` `{transition: {id}}` → 204, the transition chosen by its name
//!   (`jira.resolve_transition`, default `Done`, case-insensitive).
//!
//! Errors come back as Jira's error collection `{"errorMessages": [...], "errors": {field:
//! message}}` and are kept in [`JiraError::Http`]. 429 and 5xx (with `Retry-After` when sent),
//! timeouts and connection failures are retryable; 400, 401, 403, 404 are not (a retry cannot
//! fix a bad token or a refused field). The API token is never in a `Debug`, a message or a log.
//!
//! **One issue per incident.** The outbox delivers an incident's Jira rows one at a time, in
//! order, under a lease ([`guardrail_store::AuditStore::outbox_lease`]), so two processes never
//! create concurrently; and before creating, the issue is looked up by the incident's label, so
//! a process that died between creating the issue and recording it does not create a second
//! one. The key is kept as the outbox row's reference (later rows comment on it) and recorded
//! in the audit chain as a `jira_issue_linked` record ([`JiraIssueLinkedBody`]), appended as a
//! claim keyed `jira:<incident>` so the chain holds at most one per incident.
//!
//! Comments are delivered at least once: a comment posted just before a crash is posted again
//! by the retry (Jira has no idempotency key for comments); each names its audit record id.

use std::collections::BTreeMap;
use std::time::Duration;

use guardrail_config::JiraConfig;
use guardrail_core::audit::ChainedRecord;
use guardrail_core::error_text::error_chain;
use guardrail_core::remediation::Severity;
use guardrail_governor::record::{
    ApprovalRequestBody, ClaimReleaseBody, DecisionBody, ErrorBody, ExecutionBody, ExecutionRefusedBody, GrantBody,
    RecordKind, RefusalBody, ResolvedBody, decode,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::adf::{Block, Doc, Inline};
use crate::channel::{ChainNote, Channel, ChannelKind, Delivered, DeliveryContext, DeliveryError, Notification};

/// The record kind that records an incident's Jira issue in the chain.
pub const LINK_RECORD_KIND: &str = "jira_issue_linked";

/// Jira's limit on a summary.
const MAX_SUMMARY: usize = 255;

/// Everything needed to talk to one Jira site.
#[derive(Clone)]
pub struct JiraSettings {
    /// Site root, no trailing slash (`https://example.atlassian.net`).
    pub base_url: String,
    /// The account's email (Basic auth user).
    pub email: String,
    api_token: String,
    /// Project key.
    pub project_key: String,
    /// Issue type name.
    pub issue_type: String,
    /// Labels on every issue (besides the incident's own).
    pub labels: Vec<String>,
    /// Priority name per severity.
    pub priorities: BTreeMap<Severity, String>,
    /// The resolution transition's name.
    pub resolve_transition: String,
    /// Per-call timeout.
    pub timeout: Duration,
    /// The dashboard's base URL, for links.
    pub dashboard_url: Option<String>,
}

impl std::fmt::Debug for JiraSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraSettings")
            .field("base_url", &self.base_url)
            .field("email", &self.email)
            .field("api_token", &"***")
            .field("project_key", &self.project_key)
            .finish_non_exhaustive()
    }
}

/// Jira is on but cannot be used as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JiraSetupError {
    /// A variable that must be set is not.
    #[error("Jira is configured (the governor config's `jira:` block or JIRA_URL) but {0} is not set")]
    Missing(&'static str),
    /// A value is unusable.
    #[error("{name}: {reason}")]
    Invalid {
        /// The variable or field.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

impl JiraSettings {
    /// The settings from the `jira:` block and the environment (`env`: a snapshot of it).
    /// `Ok(None)` when Jira is off: no block and no `JIRA_URL`.
    pub fn resolve(
        config: Option<&JiraConfig>,
        env: &BTreeMap<String, String>,
    ) -> Result<Option<JiraSettings>, JiraSetupError> {
        let var = |k: &str| env.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let url = config.and_then(|c| c.url.clone()).or_else(|| var("JIRA_URL"));
        if config.is_none() && url.is_none() {
            return Ok(None);
        }
        let defaults = JiraConfig::default();
        let c = config.unwrap_or(&defaults);
        let base_url = url.ok_or(JiraSetupError::Missing("JIRA_URL"))?.trim_end_matches('/').to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(JiraSetupError::Invalid {
                name: "JIRA_URL",
                reason: format!("{base_url:?} is not an http(s) URL"),
            });
        }
        let email = var("JIRA_EMAIL").ok_or(JiraSetupError::Missing("JIRA_EMAIL"))?;
        let api_token = var("JIRA_API_TOKEN").ok_or(JiraSetupError::Missing("JIRA_API_TOKEN"))?;
        let project_key = c
            .project_key
            .clone()
            .or_else(|| var("JIRA_PROJECT_KEY"))
            .unwrap_or_else(|| JiraConfig::DEFAULT_PROJECT_KEY.to_string());
        Ok(Some(JiraSettings {
            base_url,
            email,
            api_token,
            project_key,
            issue_type: c.issue_type.clone(),
            labels: c.labels.clone(),
            priorities: c.priorities.clone(),
            resolve_transition: c.resolve_transition.clone(),
            timeout: Duration::from_secs(c.timeout_seconds),
            dashboard_url: None,
        }))
    }

    /// Settings for tests and tools: everything explicit, defaults from [`JiraConfig`].
    pub fn new(base_url: &str, email: &str, api_token: &str, project_key: &str) -> JiraSettings {
        let c = JiraConfig::default();
        JiraSettings {
            base_url: base_url.trim_end_matches('/').to_string(),
            email: email.to_string(),
            api_token: api_token.to_string(),
            project_key: project_key.to_string(),
            issue_type: c.issue_type,
            labels: c.labels,
            priorities: c.priorities,
            resolve_transition: c.resolve_transition,
            timeout: Duration::from_secs(c.timeout_seconds),
            dashboard_url: None,
        }
    }

    /// The browser link of an issue.
    pub fn browse_url(&self, key: &str) -> String {
        format!("{}/browse/{key}", self.base_url)
    }
}

/// A failed Jira call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JiraError {
    /// Jira answered with an error status.
    #[error("Jira {method} {path}: HTTP {status}{}", messages_suffix(messages))]
    Http {
        /// `GET` or `POST`.
        method: &'static str,
        /// The path called.
        path: String,
        /// The status.
        status: u16,
        /// `errorMessages` and `errors` (as `field: message`), when the body had them.
        messages: Vec<String>,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// No answer (connection refused, timeout, TLS).
    #[error("Jira {method} {path}: {reason}")]
    Transport {
        /// `GET` or `POST`.
        method: &'static str,
        /// The path called.
        path: String,
        /// What happened (never the credentials).
        reason: String,
    },
    /// An answer that is not what Jira documents.
    #[error("Jira {path}: unexpected answer: {reason}")]
    Decode {
        /// The path called.
        path: String,
        /// Why.
        reason: String,
    },
    /// The resolution transition is not available on the issue.
    #[error("Jira issue {key}: no transition named {wanted:?} (available: {})", available.join(", "))]
    NoTransition {
        /// The issue.
        key: String,
        /// The configured name.
        wanted: String,
        /// What Jira offered.
        available: Vec<String>,
    },
}

fn messages_suffix(messages: &[String]) -> String {
    if messages.is_empty() { String::new() } else { format!(": {}", messages.join("; ")) }
}

impl JiraError {
    /// Whether a retry can help, as a [`DeliveryError`].
    pub fn delivery(&self) -> DeliveryError {
        match self {
            JiraError::Http { status, retry_after, .. } if *status == 429 || *status >= 500 || *status == 408 => {
                DeliveryError::Retryable { reason: self.to_string(), retry_after: *retry_after }
            }
            JiraError::Transport { .. } => DeliveryError::Retryable { reason: self.to_string(), retry_after: None },
            _ => DeliveryError::Permanent { reason: self.to_string() },
        }
    }
}

/// Jira's error collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCollection {
    /// Messages not about one field.
    #[serde(rename = "errorMessages", default)]
    pub error_messages: Vec<String>,
    /// Field → message.
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
}

/// `{key}` reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRef {
    /// The key.
    pub key: String,
}

/// `{name}` reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRef {
    /// The name.
    pub name: String,
}

/// `{id}` reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRef {
    /// The id.
    pub id: String,
}

/// `POST /rest/api/3/issue`'s body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateIssue {
    /// The fields.
    pub fields: IssueFields,
}

/// The fields of a new issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueFields {
    /// Project.
    pub project: KeyRef,
    /// One line.
    pub summary: String,
    /// Issue type.
    pub issuetype: NameRef,
    /// Labels (the incident's own first).
    pub labels: Vec<String>,
    /// Priority, when the severity maps to one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub priority: Option<NameRef>,
    /// ADF.
    pub description: Doc,
}

/// `POST /rest/api/3/issue`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedIssue {
    /// Numeric id, as a string.
    pub id: String,
    /// `SRE-24`.
    pub key: String,
    /// The issue's REST URL.
    #[serde(rename = "self", default)]
    pub self_url: String,
}

/// `POST /rest/api/3/issue/{key}/comment`'s body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddComment {
    /// ADF.
    pub body: Doc,
}

/// The part of a comment answer that is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentCreated {
    /// Comment id.
    pub id: String,
}

/// `GET /rest/api/3/issue/{key}/transitions`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transitions {
    /// Available transitions.
    pub transitions: Vec<Transition>,
}

/// One transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Id.
    pub id: String,
    /// Name (`Done`).
    pub name: String,
    /// Target status, when Jira says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NameRef>,
}

/// `POST …/transitions`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoTransition {
    /// Which.
    pub transition: IdRef,
}

/// `POST /rest/api/3/search/jql`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchJql {
    /// The query.
    pub jql: String,
    /// Fields wanted.
    pub fields: Vec<String>,
    /// At most.
    #[serde(rename = "maxResults")]
    pub max_results: u32,
}

/// `POST /rest/api/3/search/jql`'s answer (the parts used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    /// Matching issues.
    #[serde(default)]
    pub issues: Vec<FoundIssue>,
}

/// A found issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundIssue {
    /// Id.
    pub id: String,
    /// Key.
    pub key: String,
}

/// A blocking Jira Cloud REST v3 client.
pub struct JiraClient {
    http: reqwest::blocking::Client,
    settings: JiraSettings,
}

impl std::fmt::Debug for JiraClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraClient").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// The pause in a `Retry-After` header (Jira sends seconds; a date is read too).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    guardrail_core::retry_after::parse(v, jiff::Timestamp::now())
}

impl JiraClient {
    /// A client for `settings`. Builds a blocking HTTP client: call it outside an async context.
    pub fn new(settings: JiraSettings) -> Result<JiraClient, JiraSetupError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("guardrail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| JiraSetupError::Invalid { name: "JIRA_URL", reason: format!("HTTP client: {e}") })?;
        Ok(JiraClient { http, settings })
    }

    /// The settings in use.
    pub fn settings(&self) -> &JiraSettings {
        &self.settings
    }

    fn send<B: Serialize>(&self, method: &'static str, path: &str, body: Option<&B>) -> Result<String, JiraError> {
        let url = format!("{}{path}", self.settings.base_url);
        let req = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        };
        let mut req = req
            .basic_auth(&self.settings.email, Some(&self.settings.api_token))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        // reqwest's error text names the URL, never the Authorization header.
        let transport = |e: reqwest::Error| JiraError::Transport {
            method,
            path: path.to_string(),
            reason: if e.is_timeout() {
                format!("timed out after {:?}", self.settings.timeout)
            } else {
                error_chain(&e)
            },
        };
        let resp = req.send().map_err(transport)?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let text = resp.text().map_err(transport)?;
        if status.is_success() {
            return Ok(text);
        }
        let messages = match serde_json::from_str::<ErrorCollection>(&text) {
            Ok(c) => {
                c.error_messages.into_iter().chain(c.errors.into_iter().map(|(k, v)| format!("{k}: {v}"))).collect()
            }
            Err(_) if text.trim().is_empty() => Vec::new(),
            // Not Jira's JSON (a proxy's page): a short excerpt, for the operator.
            Err(_) => vec![text.chars().take(200).collect()],
        };
        Err(JiraError::Http { method, path: path.to_string(), status: status.as_u16(), messages, retry_after: wait })
    }

    fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, JiraError> {
        let text = self.send(method, path, body)?;
        serde_json::from_str(&text).map_err(|e| JiraError::Decode { path: path.to_string(), reason: e.to_string() })
    }

    /// Issues of this project carrying `label`.
    pub fn search_label(&self, label: &str) -> Result<Vec<FoundIssue>, JiraError> {
        let body = SearchJql {
            // Labels and project keys are checked to need no escaping (no quotes, no spaces).
            jql: format!("project = \"{}\" AND labels = \"{label}\" ORDER BY created ASC", self.settings.project_key),
            fields: vec!["key".into()],
            max_results: 10,
        };
        let found: SearchResults = self.call("POST", "/rest/api/3/search/jql", Some(&body))?;
        Ok(found.issues)
    }

    /// Creates an issue.
    pub fn create_issue(&self, fields: IssueFields) -> Result<CreatedIssue, JiraError> {
        self.call("POST", "/rest/api/3/issue", Some(&CreateIssue { fields }))
    }

    /// Adds a comment.
    pub fn add_comment(&self, key: &str, body: Doc) -> Result<CommentCreated, JiraError> {
        self.call("POST", &format!("/rest/api/3/issue/{key}/comment"), Some(&AddComment { body }))
    }

    /// The transitions available on an issue.
    pub fn transitions(&self, key: &str) -> Result<Vec<Transition>, JiraError> {
        let t: Transitions = self.call::<(), _>("GET", &format!("/rest/api/3/issue/{key}/transitions"), None)?;
        Ok(t.transitions)
    }

    /// Takes a transition (by id).
    pub fn transition(&self, key: &str, id: &str) -> Result<(), JiraError> {
        let body = DoTransition { transition: IdRef { id: id.to_string() } };
        self.send("POST", &format!("/rest/api/3/issue/{key}/transitions"), Some(&body)).map(|_| ())
    }
}

/// The label that names an incident's issue: `guardrail-incident-<id>`, characters Jira labels
/// cannot hold (whitespace) and JQL would need quoted replaced by `_`, with a digest of the id
/// appended when anything was replaced so two ids never share a label.
pub fn incident_label(incident_id: &str) -> String {
    let clean: String = incident_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    let mut label = format!("guardrail-incident-{clean}");
    if clean != incident_id {
        let digest = hex::encode(sha2::Sha256::digest(incident_id.as_bytes()));
        label.push('-');
        label.push_str(&digest[..8]);
    }
    label.chars().take(255).collect()
}

/// The body of a `jira_issue_linked` record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct JiraIssueLinkedBody {
    /// `jira:<incident id>` (one per incident, [`guardrail_store::AuditStore::append_claim`]).
    pub claim: String,
    /// The incident.
    pub incident_id: String,
    /// The issue key (`SRE-24`).
    pub issue_key: String,
    /// The issue's browser link.
    pub issue_url: String,
    /// The record whose delivery created (or found) the issue, `seq-hash12`.
    pub record: String,
}

/// The Jira [`Channel`].
#[derive(Debug)]
pub struct JiraChannel {
    client: JiraClient,
}

/// The incident a record is about (every governor body has `incident_id`).
#[derive(Deserialize)]
struct IncidentOf {
    #[serde(default)]
    incident_id: String,
}

fn undecodable(r: &ChainedRecord, e: &dyn std::fmt::Display) -> DeliveryError {
    DeliveryError::Permanent { reason: format!("record {} ({}) does not decode: {e}", r.id(), r.kind) }
}

fn body<T: DeserializeOwned>(r: &ChainedRecord) -> Result<T, DeliveryError> {
    decode(&r.body).map_err(|e| undecodable(r, &e))
}

/// `text` cut to `max` characters, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

fn line(label: &str, value: &str) -> Vec<Inline> {
    vec![Inline::strong(format!("{label}: ")), Inline::plain(value)]
}

fn code_line(label: &str, value: &str) -> Vec<Inline> {
    vec![Inline::strong(format!("{label}: ")), Inline::code(value)]
}

impl JiraChannel {
    /// The channel over `client`.
    pub fn new(client: JiraClient) -> JiraChannel {
        JiraChannel { client }
    }

    /// The client.
    pub fn client(&self) -> &JiraClient {
        &self.client
    }

    /// What the record says, as ADF blocks (the description's body or a comment).
    fn describe(&self, r: &ChainedRecord, ctx: &DeliveryContext) -> Result<Vec<Block>, DeliveryError> {
        let id = r.id();
        let mut blocks = Vec::new();
        let kind = RecordKind::parse(&r.kind);
        match kind {
            Some(RecordKind::RemediationDecision) => {
                let b: DecisionBody = body(r)?;
                blocks.push(Block::heading(3, &format!("Gate verdict: {}", b.decision)));
                blocks.push(Block::paragraph(code_line("Rule", &b.rule)));
                blocks.push(Block::paragraph(code_line("Gated action", &b.gated_action)));
                if !b.reasons.is_empty() {
                    blocks.push(Block::bullets(b.reasons.iter().map(|x| vec![Inline::plain(x.as_str())]).collect()));
                }
                if b.requires_force_override {
                    blocks
                        .push(Block::paragraph(vec![Inline::plain("Critical: only FORCE_OVERRIDE can authorise it.")]));
                }
                blocks.push(Block::paragraph(code_line("Plan hash", &b.binding_hash)));
                blocks.push(Block::paragraph(line("Proposed by", &b.proposer)));
            }
            Some(RecordKind::RemediationError) => {
                let b: ErrorBody = body(r)?;
                blocks.push(Block::heading(3, "Could not decide"));
                blocks.push(Block::bullets(b.errors.iter().map(|x| vec![Inline::plain(x.as_str())]).collect()));
            }
            Some(RecordKind::ApprovalRequest) => {
                let b: ApprovalRequestBody = body(r)?;
                blocks.push(Block::heading(3, &format!("Approval requested ({})", b.requires)));
                blocks.push(Block::paragraph(code_line("Action", &b.action)));
                let who =
                    b.eligible.approvers.iter().chain(b.eligible.force_override.iter()).cloned().collect::<Vec<_>>();
                blocks.push(Block::paragraph(line(
                    "Eligible",
                    &if who.is_empty() { "nobody".into() } else { who.join(", ") },
                )));
                blocks.push(Block::paragraph(code_line("Decision record", &b.decision_record)));
            }
            Some(RecordKind::ApprovalRefused) => {
                let b: RefusalBody = body(r)?;
                blocks.push(Block::heading(3, &format!("{} refused ({})", b.kind, b.code)));
                blocks.push(Block::paragraph(line("By", &b.approver)));
                blocks.push(Block::paragraph(vec![Inline::plain(b.message.as_str())]));
            }
            Some(k @ (RecordKind::ApprovalGranted | RecordKind::ForceOverride)) => {
                let b: GrantBody = body(r)?;
                let what = if k == RecordKind::ForceOverride { "FORCE_OVERRIDE" } else { "Approved" };
                blocks.push(Block::heading(3, &format!("{what} by {}", b.approver)));
                blocks.push(Block::paragraph(code_line("Action", &b.action)));
                if let Some(reason) = &b.reason {
                    blocks.push(Block::paragraph(line("Reason", reason)));
                }
                blocks.push(Block::paragraph(code_line("Plan hash", &b.binding_hash)));
            }
            Some(RecordKind::RemediationExecution) => {
                let b: ExecutionBody = body(r)?;
                let outcome = match (b.ran, b.ok) {
                    (true, true) => "succeeded".to_string(),
                    (true, false) => format!("failed: {}", b.error.as_deref().unwrap_or("see the record")),
                    (false, _) => format!("did not start: {}", b.error.as_deref().unwrap_or("see the record")),
                };
                blocks.push(Block::heading(3, &format!("Execution {outcome}")));
                blocks.push(Block::paragraph(code_line("Action", &b.action)));
                blocks.push(Block::paragraph(line("Executor", &b.executor)));
                blocks.push(Block::paragraph(line("Authorised by", &b.authorised_by)));
            }
            Some(RecordKind::ExecutionRefused) => {
                let b: ExecutionRefusedBody = body(r)?;
                blocks.push(Block::heading(3, "Execution refused"));
                blocks.push(Block::paragraph(vec![Inline::plain(b.message.as_str())]));
            }
            Some(RecordKind::ClaimRelease) => {
                let b: ClaimReleaseBody = body(r)?;
                blocks.push(Block::heading(3, &format!("Execution claim released by {}", b.released_by)));
                blocks.push(Block::paragraph(line("Reason", &b.reason)));
            }
            Some(RecordKind::IncidentResolved) => {
                let b: ResolvedBody = body(r)?;
                blocks.push(Block::heading(3, &format!("Resolved by {}", b.by)));
                blocks.push(Block::paragraph(vec![Inline::plain(b.summary.as_str())]));
                if !b.runbook_id.is_empty() {
                    blocks.push(Block::paragraph(code_line("Learned runbook (unreviewed)", &b.runbook_id)));
                }
            }
            _ => {
                blocks.push(Block::heading(3, &r.kind));
            }
        }
        let mut audit = code_line("Audit record", &id);
        if let Some(base) = ctx.dashboard_url.as_deref().or(self.client.settings.dashboard_url.as_deref()) {
            audit.push(Inline::plain(" · "));
            audit.push(Inline::link("dashboard", format!("{}/", base.trim_end_matches('/'))));
        }
        blocks.push(Block::paragraph(audit));
        Ok(blocks)
    }

    /// The new issue's fields for an incident first seen in `r`.
    fn new_issue(
        &self,
        r: &ChainedRecord,
        ctx: &DeliveryContext,
        incident_id: &str,
    ) -> Result<IssueFields, DeliveryError> {
        let decision = if r.kind == RecordKind::RemediationDecision.as_str() { Some(r) } else { ctx.decision.as_ref() };
        let d: Option<DecisionBody> = decision.map(body).transpose()?;
        let service = d.as_ref().and_then(|d| d.service()).unwrap_or("unknown service").to_string();
        let severity = d.as_ref().and_then(|d| d.severity()).unwrap_or("unknown").to_string();
        let what = d
            .as_ref()
            .and_then(|d| d.incident.get("summary").and_then(|v| v.as_str()).map(str::to_string))
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| r.kind.replace('_', " "));
        let summary = cut(&format!("Guardrail {incident_id}: {service} ({severity}) — {what}"), MAX_SUMMARY);
        let s = &self.client.settings;
        let priority = Severity::ALL
            .into_iter()
            .find(|x| x.as_str() == severity)
            .and_then(|x| s.priorities.get(&x))
            .map(|name| NameRef { name: name.clone() });
        let mut labels = vec![incident_label(incident_id)];
        labels.extend(s.labels.iter().filter(|l| !labels.contains(l)).cloned().collect::<Vec<_>>());
        let mut content = vec![
            Block::paragraph(line("Incident", incident_id)),
            Block::paragraph(line("Service", &service)),
            Block::paragraph(line("Severity", &severity)),
        ];
        content.extend(self.describe(r, ctx)?);
        content.push(Block::paragraph(vec![Inline::plain(
            "Opened by Guardrail. Every step is commented here with its audit record id; the audit chain is authoritative.",
        )]));
        Ok(IssueFields {
            project: KeyRef { key: s.project_key.clone() },
            summary,
            issuetype: NameRef { name: s.issue_type.clone() },
            labels,
            priority,
            description: Doc::new(content),
        })
    }
}

impl Channel for JiraChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Jira
    }

    fn deliver(&self, n: &Notification, ctx: &DeliveryContext) -> Result<Delivered, DeliveryError> {
        let r = &n.record;
        let IncidentOf { incident_id } = body(r)?;
        if incident_id.trim().is_empty() {
            return Err(DeliveryError::Permanent { reason: format!("record {} names no incident", r.id()) });
        }
        let resolved = r.kind == RecordKind::IncidentResolved.as_str();
        let (key, described) = match &ctx.jira_key {
            Some(k) => (k.clone(), false),
            None => {
                let label = incident_label(&incident_id);
                match self.client.search_label(&label).map_err(|e| e.delivery())?.into_iter().next() {
                    // Created by an earlier attempt that died before recording it.
                    Some(found) => (found.key, false),
                    None => {
                        let fields = self.new_issue(r, ctx, &incident_id)?;
                        (self.client.create_issue(fields).map_err(|e| e.delivery())?.key, true)
                    }
                }
            }
        };
        // The transition is looked up before anything is posted, so a missing transition fails
        // without a comment that a re-delivery would post again.
        let transition = if resolved {
            let wanted = &self.client.settings.resolve_transition;
            let available = self.client.transitions(&key).map_err(|e| e.delivery())?;
            match available.iter().find(|t| t.name.eq_ignore_ascii_case(wanted)) {
                Some(t) => Some(t.id.clone()),
                None => {
                    let e = JiraError::NoTransition {
                        key: key.clone(),
                        wanted: wanted.clone(),
                        available: available.into_iter().map(|t| t.name).collect(),
                    };
                    return Err(e.delivery());
                }
            }
        } else {
            None
        };
        if !described {
            self.client.add_comment(&key, Doc::new(self.describe(r, ctx)?)).map_err(|e| e.delivery())?;
        }
        if let Some(id) = transition {
            self.client.transition(&key, &id).map_err(|e| e.delivery())?;
        }
        Ok(Delivered { reference: Some(key) })
    }

    fn chain_note(&self, n: &Notification, ctx: &DeliveryContext, delivered: &Delivered) -> Option<ChainNote> {
        if ctx.jira_key.is_some() {
            return None;
        }
        let key = delivered.reference.clone()?;
        let IncidentOf { incident_id } = decode(&n.record.body).ok()?;
        let body = JiraIssueLinkedBody {
            claim: format!("jira:{incident_id}"),
            incident_id,
            issue_url: self.client.settings.browse_url(&key),
            issue_key: key,
            record: n.record.id(),
        };
        let claim = body.claim.clone();
        Some(ChainNote { kind: LINK_RECORD_KIND.into(), body: serde_json::to_value(&body).ok()?, claim })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_jql_safe() {
        assert_eq!(incident_label("inc-001"), "guardrail-incident-inc-001");
        let a = incident_label("inc 1");
        let b = incident_label("inc_1");
        assert_ne!(a, b);
        assert!(a.starts_with("guardrail-incident-inc_1-") && !a.contains(' '));
        assert!(incident_label("x\"y").chars().all(|c| c != '"'));
    }

    #[test]
    fn errors_sort_into_retryable_and_permanent() {
        let http = |status| JiraError::Http {
            method: "POST",
            path: "/rest/api/3/issue".into(),
            status,
            messages: vec!["priority: Field 'priority' cannot be set.".into()],
            retry_after: Some(Duration::from_secs(7)),
        };
        assert!(
            matches!(http(429).delivery(), DeliveryError::Retryable { retry_after: Some(d), .. } if d.as_secs() == 7)
        );
        assert!(matches!(http(503).delivery(), DeliveryError::Retryable { .. }));
        assert!(matches!(http(400).delivery(), DeliveryError::Permanent { .. }));
        assert!(matches!(http(401).delivery(), DeliveryError::Permanent { .. }));
        assert!(http(400).to_string().contains("priority: Field 'priority' cannot be set."));
    }

    #[test]
    fn the_token_is_not_in_debug() {
        let s = JiraSettings::new("https://x.atlassian.net/", "a@b.c", "s3cr3t-token", "SRE");
        assert!(!format!("{s:?}").contains("s3cr3t"));
        assert_eq!(s.browse_url("SRE-1"), "https://x.atlassian.net/browse/SRE-1");
    }
}
