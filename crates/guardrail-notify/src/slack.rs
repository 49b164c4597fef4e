//! The Slack Web API client (<https://api.slack.com/web>) and the Slack [`Channel`]s.
//!
//! [`SlackClient`] calls `chat.postMessage`, `chat.update`, `chat.postEphemeral`,
//! `conversations.open` and `views.open` as Slack documents them: `POST {SLACK_API_URL}/{method}`
//! with `Authorization: Bearer {SLACK_BOT_TOKEN}` and a JSON body. Slack answers HTTP 200 with
//! `{"ok": false, "error": "..."}` for most failures; [`SlackError::delivery`] sorts them into
//! retryable (`ratelimited` or HTTP 429 with `Retry-After`, 5xx, Slack's own transient errors,
//! timeouts and connection failures) and permanent (`invalid_auth`, `not_in_channel`,
//! `channel_not_found`, a refused payload, …). The token is never logged, printed or put in an
//! error.
//!
//! [`SlackChannel`] renders an outbox notification's record ([`crate::blocks`]) and delivers
//! it: the incident message for a `remediation_decision` (with the buttons when blocked, and an
//! urgent DM to the on-call users for high and critical), then thread replies and the update
//! that replaces the buttons with who decided, and the deploy gate's BLOCK/DELAY message.

use std::collections::BTreeMap;
use std::time::Duration;

use guardrail_config::SlackConfig;
use guardrail_governor::record::{
    DecisionBody, ExecutionBody, ExecutionRefusedBody, GrantBody, RefusalBody, ResolvedBody, decode,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::blocks::{self, Block, Decided, IncidentSummary, Links, View};
use crate::channel::{Channel, ChannelKind, Delivered, DeliveryContext, DeliveryError, Notification};

/// Slack's Web API, unless `SLACK_API_URL` says otherwise (a loopback server in tests).
pub const DEFAULT_API_URL: &str = "https://slack.com/api";

/// How long one call may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Slack `error` codes worth retrying (Slack's own transient failures).
const TRANSIENT: [&str; 5] = ["ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"];

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    /// `{"ok": false, "error": code}`.
    #[error("Slack {method}: {code}")]
    Api {
        /// The method called.
        method: String,
        /// Slack's error code (`invalid_auth`, `channel_not_found`, …).
        code: String,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// A non-200 answer (429, 5xx, …).
    #[error("Slack {method}: HTTP {status}")]
    Http {
        /// The method called.
        method: String,
        /// The status.
        status: u16,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// No answer (timeout, connection refused, TLS).
    #[error("Slack {method}: {reason}")]
    Transport {
        /// The method called.
        method: String,
        /// Why (never the token: reqwest's errors name the URL, which carries none).
        reason: String,
    },
    /// An answer that is not Slack's JSON.
    #[error("Slack {method}: unreadable answer: {reason}")]
    BadAnswer {
        /// The method called.
        method: String,
        /// Why.
        reason: String,
    },
    /// No bot token configured.
    #[error("SLACK_BOT_TOKEN is not set")]
    NoToken,
}

impl SlackError {
    /// Whether trying again later may work.
    pub fn retryable(&self) -> bool {
        match self {
            SlackError::Api { code, .. } => TRANSIENT.contains(&code.as_str()),
            SlackError::Http { status, .. } => *status == 429 || *status >= 500,
            SlackError::Transport { .. } => true,
            SlackError::BadAnswer { .. } | SlackError::NoToken => false,
        }
    }

    /// As the outbox sees it.
    pub fn delivery(&self) -> DeliveryError {
        let retry_after = match self {
            SlackError::Api { retry_after, .. } | SlackError::Http { retry_after, .. } => *retry_after,
            _ => None,
        };
        if self.retryable() {
            DeliveryError::Retryable { reason: self.to_string(), retry_after }
        } else {
            DeliveryError::Permanent { reason: self.to_string() }
        }
    }
}

/// Slack's answer envelope.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(flatten)]
    data: Option<T>,
}

/// `chat.postMessage` / `chat.update` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Posted {
    /// The channel id.
    pub channel: String,
    /// The message's `ts`.
    pub ts: String,
}

/// `chat.postEphemeral` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct EphemeralPosted {
    /// Its `ts`.
    pub message_ts: String,
}

/// `conversations.open` answer.
#[derive(Debug, Clone, Deserialize)]
struct Opened {
    channel: OpenedChannel,
}

#[derive(Debug, Clone, Deserialize)]
struct OpenedChannel {
    id: String,
}

/// `views.open` answer (its view is not needed).
#[derive(Debug, Clone, Deserialize)]
struct ViewOpened {}

/// `chat.postMessage`, `chat.update` and `chat.postEphemeral` request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Channel id or name.
    pub channel: String,
    /// Fallback text.
    pub text: String,
    /// Blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Block>,
    /// A thread reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    /// The message to update (`chat.update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// The person to show it to (`chat.postEphemeral`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Links stay links (no previews of internal URLs).
    #[serde(default)]
    pub unfurl_links: bool,
}

/// `conversations.open` request body.
#[derive(Serialize)]
struct OpenRequest<'a> {
    users: &'a str,
}

/// `views.open` request body.
#[derive(Serialize)]
struct ViewsOpen<'a> {
    trigger_id: &'a str,
    view: &'a View,
}

/// A Slack Web API client with a bot token.
#[derive(Clone)]
pub struct SlackClient {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl std::fmt::Debug for SlackClient {
    // The token never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient").field("base", &self.base).field("token", &"<redacted>").finish()
    }
}

impl SlackClient {
    /// A client for `base` (`https://slack.com/api`) with `token`, each call at most `timeout`.
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<SlackClient, SlackError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SlackError::Transport { method: "client".into(), reason: e.to_string() })?;
        Ok(SlackClient { base: base.trim_end_matches('/').to_string(), token: token.to_string(), http })
    }

    /// From the environment: `SLACK_BOT_TOKEN` (absent or empty: `Ok(None)`, Slack is off)
    /// and `SLACK_API_URL` (default [`DEFAULT_API_URL`]).
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Option<SlackClient>, SlackError> {
        let Some(token) = env.get("SLACK_BOT_TOKEN").filter(|t| !t.trim().is_empty()) else { return Ok(None) };
        let base = env.get("SLACK_API_URL").filter(|u| !u.trim().is_empty()).map_or(DEFAULT_API_URL, |u| u.trim());
        SlackClient::new(base, token.trim(), DEFAULT_TIMEOUT).map(Some)
    }

    /// Calls `method` with a JSON body and decodes Slack's answer.
    pub fn call<B: Serialize, T: DeserializeOwned>(&self, method: &str, body: &B) -> Result<T, SlackError> {
        let url = format!("{}/{method}", self.base);
        let res =
            self.http.post(url).bearer_auth(&self.token).json(body).send().map_err(|e| SlackError::Transport {
                method: method.into(),
                // without_url: the URL is the configured one; keep the message short and stable.
                reason: e.without_url().to_string(),
            })?;
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| guardrail_core::retry_after::parse(v, jiff::Timestamp::now()));
        let status = res.status();
        if !status.is_success() {
            return Err(SlackError::Http { method: method.into(), status: status.as_u16(), retry_after });
        }
        let text = res.text().map_err(|e| SlackError::Transport { method: method.into(), reason: e.to_string() })?;
        let env: Envelope<T> = serde_json::from_str(&text)
            .map_err(|e| SlackError::BadAnswer { method: method.into(), reason: e.to_string() })?;
        match (env.ok, env.data) {
            (true, Some(data)) => Ok(data),
            (true, None) => Err(SlackError::BadAnswer { method: method.into(), reason: "ok without data".into() }),
            (false, _) => Err(SlackError::Api {
                method: method.into(),
                code: env.error.unwrap_or_else(|| "unknown_error".into()),
                retry_after,
            }),
        }
    }

    /// `chat.postMessage`.
    pub fn post_message(&self, m: &Message) -> Result<Posted, SlackError> {
        self.call("chat.postMessage", m)
    }

    /// `chat.update` (`m.ts` names the message).
    pub fn update(&self, m: &Message) -> Result<Posted, SlackError> {
        self.call("chat.update", m)
    }

    /// `chat.postEphemeral` (`m.user` sees it, nobody else).
    pub fn post_ephemeral(&self, m: &Message) -> Result<EphemeralPosted, SlackError> {
        self.call("chat.postEphemeral", m)
    }

    /// `conversations.open` with one user: the DM channel's id.
    pub fn open_dm(&self, user: &str) -> Result<String, SlackError> {
        self.call::<_, Opened>("conversations.open", &OpenRequest { users: user }).map(|o| o.channel.id)
    }

    /// `views.open`: shows a modal for the interaction `trigger_id` (valid 3 s).
    pub fn open_view(&self, trigger_id: &str, view: &View) -> Result<(), SlackError> {
        self.call::<_, ViewOpened>("views.open", &ViewsOpen { trigger_id, view }).map(|_| ())
    }
}

/// Who asked, when a Slack user did: merged into the approval record (`requested_by`), so the
/// chain holds the Slack user and team ids behind the identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackRequestedBy {
    /// The Guardrail identity the users map gave (`null`: unmapped, refused).
    pub identity: Option<String>,
    /// Always `slack`.
    pub via: String,
    /// The Slack user id (from the signed request).
    pub slack_user_id: String,
    /// The Slack team (workspace) id.
    pub slack_team_id: Option<String>,
    /// Where: channel id.
    pub slack_channel: Option<String>,
    /// The incident message's ts (the thread).
    pub slack_message_ts: Option<String>,
}

/// The provenance part of a record body written from Slack.
#[derive(Debug, Clone, Deserialize)]
struct Provenance {
    #[serde(default)]
    requested_by: Option<serde_json::Value>,
}

impl SlackRequestedBy {
    /// The Slack provenance of a record body, if it came from Slack.
    pub fn of(body: &serde_json::Value) -> Option<SlackRequestedBy> {
        let p: Provenance = serde_json::from_value(body.clone()).ok()?;
        let r: SlackRequestedBy = serde_json::from_value(p.requested_by?).ok()?;
        (r.via == "slack").then_some(r)
    }
}

/// A Slack destination: incidents ([`ChannelKind::Slack`]) or deploy decisions
/// ([`ChannelKind::SlackDeploy`]).
#[derive(Debug, Clone)]
pub struct SlackChannel {
    client: SlackClient,
    config: SlackConfig,
    kind: ChannelKind,
}

impl SlackChannel {
    /// The incidents channel.
    pub fn incidents(client: SlackClient, config: SlackConfig) -> SlackChannel {
        SlackChannel { client, config, kind: ChannelKind::Slack }
    }

    /// The deploy decisions channel(s).
    pub fn deploys(client: SlackClient, config: SlackConfig) -> SlackChannel {
        SlackChannel { client, config, kind: ChannelKind::SlackDeploy }
    }

    fn links(&self, ctx: &DeliveryContext) -> Links {
        links(&self.config, ctx)
    }

    /// The incident's thread, or a retryable error while its first message is not posted.
    fn thread(ctx: &DeliveryContext) -> Result<(String, String), DeliveryError> {
        ctx.slack_thread.clone().ok_or_else(|| DeliveryError::Retryable {
            reason: "the incident's Slack message is not posted yet".into(),
            retry_after: None,
        })
    }

    fn reply(&self, ctx: &DeliveryContext, text: String) -> Result<Delivered, DeliveryError> {
        let (channel, ts) = Self::thread(ctx)?;
        let m = Message { channel, text, thread_ts: Some(ts), ..Message::default() };
        let p = self.client.post_message(&m).map_err(|e| e.delivery())?;
        Ok(Delivered { reference: Some(format!("{}/{}", p.channel, p.ts)) })
    }

    fn decision(&self, n: &Notification, ctx: &DeliveryContext) -> Result<Delivered, DeliveryError> {
        let body: DecisionBody = decode(&n.record.body).map_err(|e| undecodable(n, &e))?;
        let s = IncidentSummary::from_decision(&body, &n.record.id());
        let m = Message {
            channel: self.config.channel.clone(),
            text: s.fallback(),
            blocks: blocks::incident_blocks(&s, &self.links(ctx), None),
            ..Message::default()
        };
        let posted = self.client.post_message(&m).map_err(|e| e.delivery())?;
        if !s.executes() && matches!(s.severity.as_str(), "high" | "critical") {
            // Best effort: the channel message is delivered; a failed DM must not repost it.
            for user in &self.config.on_call {
                let dm = self.client.open_dm(user).and_then(|dm| {
                    self.client.post_message(&Message {
                        channel: dm,
                        text: format!(
                            ":rotating_light: {} — decision needed in <#{}> (incident {})",
                            blocks::escape(&s.fallback()),
                            posted.channel,
                            blocks::escape(&s.incident_id)
                        ),
                        ..Message::default()
                    })
                });
                if let Err(e) = dm {
                    guardrail_gate::out::stderr(format_args!("guardrail: urgent Slack DM to {user}: {e}\n"));
                }
            }
        }
        Ok(Delivered { reference: Some(format!("{}/{}", posted.channel, posted.ts)) })
    }

    fn grant(&self, n: &Notification, ctx: &DeliveryContext) -> Result<Delivered, DeliveryError> {
        let (channel, ts) = Self::thread(ctx)?;
        let (update, decided) = decided_update(&channel, &ts, &n.record, ctx.decision.as_ref(), &self.links(ctx))
            .map_err(|e| undecodable(n, &e))?;
        self.client.update(&update).map_err(|e| e.delivery())?;
        self.reply(ctx, decided.line())
    }

    fn deploy(&self, n: &Notification, ctx: &DeliveryContext) -> Result<Delivered, DeliveryError> {
        if n.record.kind != guardrail_gate::gate::RECORD_KIND {
            return Ok(Delivered::default());
        }
        let body = guardrail_gate::gate::decode_decision(&n.record.body).map_err(|e| undecodable(n, &e))?;
        let action = body.verdict.action;
        use guardrail_core::policy::Action;
        if !matches!(action, Some(Action::Block) | Some(Action::Delay)) {
            return Ok(Delivered::default());
        }
        let service = body.run.ci.service.clone().or_else(|| body.service()).unwrap_or_else(|| "unknown".into());
        let Some(channel) = self.config.deploy_channel(&service) else { return Ok(Delivered::default()) };
        let dashboard = ctx.dashboard_url.as_deref().or(self.config.dashboard_url.as_deref());
        let (text, blocks) = blocks::deploy_blocks(&service, &body, &n.record.id(), dashboard);
        let m = Message { channel: channel.to_string(), text, blocks, ..Message::default() };
        let p = self.client.post_message(&m).map_err(|e| e.delivery())?;
        Ok(Delivered { reference: Some(format!("{}/{}", p.channel, p.ts)) })
    }
}

/// The links of a message: the Jira issue (the outbox's browse link) and the dashboard.
pub fn links(config: &SlackConfig, ctx: &DeliveryContext) -> Links {
    Links {
        jira: ctx.jira_key.as_ref().map(|k| (ctx.jira_url.clone().unwrap_or_default(), k.clone())),
        dashboard: ctx.dashboard_url.clone().or_else(|| config.dashboard_url.clone()),
    }
}

/// The `chat.update` of an incident's message after a grant: the message re-rendered from its
/// decision record with who decided what and when instead of the buttons (without the
/// decision record, a short message that still says it). The server's Slack endpoint and the
/// outbox both send it; it is the same message for the same grant, so the second is a no-op.
pub fn decided_update(
    channel: &str,
    ts: &str,
    grant: &guardrail_core::audit::ChainedRecord,
    decision: Option<&guardrail_core::audit::ChainedRecord>,
    links: &Links,
) -> Result<(Message, Decided), serde_json::Error> {
    let g: GrantBody = decode(&grant.body)?;
    let decided = Decided::from_grant(&g, &grant.recorded_at, &grant.id());
    let blocks = match decision.and_then(|r| decode::<DecisionBody>(&r.body).ok().map(|b| (r, b))) {
        Some((r, b)) => blocks::incident_blocks(&IncidentSummary::from_decision(&b, &r.id()), links, Some(&decided)),
        None => vec![Block::Section { text: Some(blocks::Text::md(decided.line())), fields: None }],
    };
    let update = Message {
        channel: channel.to_string(),
        ts: Some(ts.to_string()),
        text: format!("{} {} {} ({})", g.approver, decided.kind.past(), g.action, g.incident_id),
        blocks,
        ..Message::default()
    };
    Ok((update, decided))
}

fn undecodable(n: &Notification, e: &dyn std::fmt::Display) -> DeliveryError {
    DeliveryError::Permanent { reason: format!("record {} ({}) does not decode: {e}", n.record.id(), n.record.kind) }
}

impl Channel for SlackChannel {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn deliver(&self, n: &Notification, ctx: &DeliveryContext) -> Result<Delivered, DeliveryError> {
        if self.kind == ChannelKind::SlackDeploy {
            return self.deploy(n, ctx);
        }
        let id = n.record.id();
        match n.record.kind.as_str() {
            "remediation_decision" => self.decision(n, ctx),
            "approval_granted" | "force_override" => self.grant(n, ctx),
            "approval_refused" => {
                let r: RefusalBody = decode(&n.record.body).map_err(|e| undecodable(n, &e))?;
                // A refusal of a Slack request is answered to that person only, by the
                // endpoint that received it; others (CLI, HTTP) are news for the thread.
                if SlackRequestedBy::of(&n.record.body).is_some() {
                    return Ok(Delivered::default());
                }
                self.reply(ctx, blocks::refusal_text(&r, &id))
            }
            "remediation_execution" => {
                let x: ExecutionBody = decode(&n.record.body).map_err(|e| undecodable(n, &e))?;
                let outcome = match (x.ran, x.ok) {
                    (true, true) => ":white_check_mark: succeeded".to_string(),
                    (true, false) => {
                        format!(":x: failed: {}", blocks::escape(x.error.as_deref().unwrap_or("see record")))
                    }
                    (false, _) => format!(
                        ":warning: did not start: {}",
                        blocks::escape(x.error.as_deref().unwrap_or("see record"))
                    ),
                };
                self.reply(
                    ctx,
                    format!(
                        "Execution of `{}` ({}, executor {}): {outcome} (record `{id}`)",
                        blocks::escape(&x.action),
                        blocks::escape(&x.authorised_by),
                        blocks::escape(&x.executor)
                    ),
                )
            }
            "execution_refused" => {
                let x: ExecutionRefusedBody = decode(&n.record.body).map_err(|e| undecodable(n, &e))?;
                self.reply(ctx, format!(":no_entry: execution refused: {} (record `{id}`)", blocks::escape(&x.message)))
            }
            "incident_resolved" => {
                let x: ResolvedBody = decode(&n.record.body).map_err(|e| undecodable(n, &e))?;
                self.reply(
                    ctx,
                    format!(
                        ":large_green_circle: resolved by *{}*: {} (record `{id}`)",
                        blocks::escape(&x.by),
                        blocks::escape(&x.summary)
                    ),
                )
            }
            _ => Ok(Delivered::default()),
        }
    }
}
