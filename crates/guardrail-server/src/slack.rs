//! `POST /slack/interactions` and `POST /slack/events`: approvals from Slack, with Slack's
//! signed requests as the proof of who clicked, and the governor's rules unchanged.
//!
//! Every request is verified on its raw body before anything parses it
//! ([`guardrail_notify::slack_verify`]: `X-Slack-Signature`, a timestamp within 5 minutes,
//! constant-time compare, a signature accepted once). The Slack user id of a verified request
//! becomes an identity only through the governor config's `slack.users` map; an unmapped user
//! is refused and the refusal recorded with the Slack user and team ids. The approval itself is
//! [`Pipeline::approve`](guardrail_governor::pipeline::Pipeline::approve) over the HTTP
//! approvals' own wiring (`governor_api::wiring::pipeline`, `ServerLog`), the function behind
//! `guardrail approve` and `POST /api/incidents/{id}/approve`: self-approval,
//! critical-without-force-override, approver-not-listed and changed-plan refusals are theirs,
//! recorded with the Slack ids as `requested_by`, and the hash an approval is bound to is the
//! one in the button (or in the message a thread reply answers).
//!
//! Slack wants an answer within 3 seconds: the handlers verify, parse and acknowledge; opening
//! the modal, the approval, the execution and the messages about them run afterwards on the
//! blocking pool. A Slack retry (`X-Slack-Retry-Num`) of an event already received, or a second
//! delivery of one interaction, acts once: event ids and interaction ids are remembered
//! ([`Seen`]), and across replicas the chain holds (a second grant releases nothing; one
//! execution per authorisation).
//!
//! These routes are not in `/api/openapi.json`: Slack, not an API client, calls them, with its
//! own authentication (signatures, not bearer tokens) and its own payload formats.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use guardrail_config::SlackConfig;
use guardrail_core::approval::ApprovalKind;
use guardrail_governor::approve::ApprovalInput;
use guardrail_governor::pipeline::ApproveOutcome;
use guardrail_governor::record::{RefusalBody, encode};
use guardrail_governor::store_log::AuditLog;

use crate::auth::{Caller, Role};
use crate::governor_api::audit_log::ServerLog;
use crate::governor_api::views::load;
use crate::governor_api::wiring;
use guardrail_notify::blocks::{self, ActionValue, DecisionKind, Links, MODAL_CALLBACK, ModalMetadata, REASON_INPUT};
use guardrail_notify::slack::{Message, SlackClient, SlackRequestedBy};
use guardrail_notify::slack_verify::{ReplayCache, Verifier, VerifyError};
use serde::{Deserialize, Serialize};

use crate::state::AppState;

/// The two Slack routes (merged into the router outside the documented route table).
pub fn routes() -> Router<AppState> {
    Router::new().route("/slack/interactions", post(interactions)).route("/slack/events", post(events))
}

/// Why a Slack request is not acted on. One status per variant ([`SlackFailure::status`]).
#[derive(Debug, thiserror::Error)]
pub enum SlackFailure {
    /// `SLACK_SIGNING_SECRET` is not set, or the governor config has no `slack:` block.
    #[error("Slack is not configured on this server: {0}")]
    NotConfigured(&'static str),
    /// The governor config in force does not read: nothing is decided on it (Slack retries
    /// an event, and shows the person an error for an interaction).
    #[error("the governor config is invalid on this server; nothing is decided until it is fixed")]
    GovernorBroken,
    /// The signature does not verify.
    #[error("{0}")]
    Unverified(#[from] VerifyError),
    /// Verified, but not a payload this endpoint reads.
    #[error("not a Slack payload this endpoint reads: {0}")]
    BadPayload(String),
}

impl SlackFailure {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            SlackFailure::NotConfigured(_) => StatusCode::NOT_FOUND,
            SlackFailure::GovernorBroken => StatusCode::SERVICE_UNAVAILABLE,
            SlackFailure::Unverified(_) => StatusCode::UNAUTHORIZED,
            SlackFailure::BadPayload(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for SlackFailure {
    fn into_response(self) -> Response {
        (self.status(), self.to_string()).into_response()
    }
}

/// What the Slack endpoints keep between requests, per signing secret: the verifier (with its
/// replay cache) and the event and interaction ids already acted on.
struct Inbound {
    verifier: Verifier,
    seen: Mutex<ReplayCache>,
}

/// The process's verifiers, by sha256 of the signing secret. A signature replayed to another
/// server of the same process (same secret) is a replay too.
fn inbound(secret: &str) -> Arc<Inbound> {
    static ALL: OnceLock<Mutex<BTreeMap<String, Arc<Inbound>>>> = OnceLock::new();
    let key = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes()));
    let mut all = ALL.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    all.entry(key)
        .or_insert_with(|| {
            Arc::new(Inbound { verifier: Verifier::new(secret), seen: Mutex::new(ReplayCache::default()) })
        })
        .clone()
}

/// Remembers an event or interaction id; false when it was acted on before.
fn first_time(inb: &Inbound, id: &str) -> bool {
    let now = jiff::Timestamp::now().as_second();
    inb.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(id, now)
}

/// Verifies the request; the server's Slack settings on success.
fn verify(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(Arc<Inbound>, SlackConfig), SlackFailure> {
    let env = &state.config().env;
    let secret = env
        .get("SLACK_SIGNING_SECRET")
        .filter(|s| !s.trim().is_empty())
        .ok_or(SlackFailure::NotConfigured("SLACK_SIGNING_SECRET is not set"))?;
    let inb = inbound(secret.trim());
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    inb.verifier.verify(
        h("x-slack-signature"),
        h("x-slack-request-timestamp"),
        body,
        jiff::Timestamp::now().as_second(),
    )?;
    let config = slack_config(state)?;
    Ok((inb, config))
}

/// The governor config's `slack:` block in force (fails closed: while the file is broken,
/// Slack requests are refused).
fn slack_config(state: &AppState) -> Result<SlackConfig, SlackFailure> {
    let view = state.refresh_governor();
    if view.broken.is_some() {
        return Err(SlackFailure::GovernorBroken);
    }
    view.blocks.slack.clone().ok_or(SlackFailure::NotConfigured("the governor config has no slack: block"))
}

/// The Slack side of one request.
struct Slack {
    config: SlackConfig,
    client: Option<SlackClient>,
}

impl Slack {
    /// Posts, logging (never raising) a failure: the decision is in the chain either way.
    fn post(&self, what: &str, m: &Message, ephemeral: bool) {
        let Some(c) = &self.client else { return };
        let r = if ephemeral { c.post_ephemeral(m).map(|_| ()) } else { c.post_message(m).map(|_| ()) };
        if let Err(e) = r {
            eprintln!("guardrail serve: Slack {what}: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Wire formats (Slack's, as documented for interactivity and the Events API).

/// `application/x-www-form-urlencoded` body of an interaction: one field, `payload`.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (percent_decode(k)? == name).then(|| percent_decode(v)).flatten()
    })
}

/// Decodes one form-encoded component (`+` is a space, `%XX` a byte); `None` if not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[derive(Debug, Deserialize)]
struct SlackUser {
    id: String,
    #[serde(default)]
    team_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SlackTeam {
    id: String,
}

#[derive(Debug, Deserialize)]
struct SlackChannelRef {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Container {
    #[serde(default)]
    message_ts: Option<String>,
    #[serde(default)]
    channel_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ActionPayload {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    action_ts: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ViewPayload {
    id: String,
    callback_id: String,
    #[serde(default)]
    private_metadata: String,
    state: ViewState,
}

#[derive(Debug, Deserialize)]
struct ViewState {
    /// block_id → action_id → the input's value.
    values: BTreeMap<String, BTreeMap<String, InputValue>>,
}

#[derive(Debug, Deserialize)]
struct InputValue {
    #[serde(default)]
    value: Option<String>,
}

/// An interaction payload.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Interaction {
    BlockActions {
        user: SlackUser,
        #[serde(default)]
        team: Option<SlackTeam>,
        trigger_id: String,
        #[serde(default)]
        container: Option<Container>,
        #[serde(default)]
        channel: Option<SlackChannelRef>,
        actions: Vec<ActionPayload>,
    },
    ViewSubmission {
        user: SlackUser,
        #[serde(default)]
        team: Option<SlackTeam>,
        view: ViewPayload,
    },
    #[serde(other)]
    Other,
}

/// The answer to a `view_submission` that shows an error under the reason input.
#[derive(Serialize)]
struct ViewErrors {
    response_action: &'static str,
    errors: BTreeMap<&'static str, String>,
}

/// Events API envelope.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EventEnvelope {
    UrlVerification {
        challenge: String,
    },
    EventCallback {
        #[serde(default)]
        team_id: Option<String>,
        event_id: String,
        event: Box<Event>,
    },
    #[serde(other)]
    Other,
}

/// The event (only `message` is read; other fields are ignored).
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    subtype: Option<String>,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    thread_ts: Option<String>,
}

/// The `url_verification` answer.
#[derive(Serialize)]
struct Challenge {
    challenge: String,
}

// ---------------------------------------------------------------------------------------
// Handlers.

/// Who acted, from a verified request.
#[derive(Debug, Clone)]
struct Who {
    user: String,
    team: Option<String>,
}

/// Where the incident's message is.
#[derive(Debug, Clone, Default)]
struct Place {
    channel: Option<String>,
    message_ts: Option<String>,
}

/// `POST /slack/interactions`.
pub async fn interactions(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match interaction(&state, &headers, &body) {
        Ok(r) => r,
        Err(f) => {
            eprintln!("guardrail serve: /slack/interactions refused: {f}");
            f.into_response()
        }
    }
}

fn interaction(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, SlackFailure> {
    let (inb, config) = verify(state, headers, body)?;
    let payload = form_field(body, "payload").ok_or_else(|| SlackFailure::BadPayload("no payload field".into()))?;
    let parsed: Interaction =
        serde_json::from_str(&payload).map_err(|e| SlackFailure::BadPayload(format!("payload: {e}")))?;
    match parsed {
        Interaction::BlockActions { user, team, trigger_id, container, channel, actions } => {
            let who = Who { user: user.id, team: team.map(|t| t.id).or(user.team_id) };
            let place = Place {
                channel: container.as_ref().and_then(|c| c.channel_id.clone()).or(channel.map(|c| c.id)),
                message_ts: container.and_then(|c| c.message_ts),
            };
            let Some((kind, value, action_ts)) = actions.into_iter().find_map(|a| {
                let kind = DecisionKind::from_action_id(&a.action_id)?;
                let value: ActionValue = serde_json::from_str(a.value.as_deref()?).ok()?;
                Some((kind, value, a.action_ts))
            }) else {
                return Ok(StatusCode::OK.into_response());
            };
            if !first_time(&inb, &format!("action:{}:{}", who.user, action_ts.unwrap_or(trigger_id.clone()))) {
                return Ok(StatusCode::OK.into_response());
            }
            spawn(state, config, move |st, slack| open_modal(st, slack, who, kind, value, place, &trigger_id));
            Ok(StatusCode::OK.into_response())
        }
        Interaction::ViewSubmission { user, team, view } => {
            if view.callback_id != MODAL_CALLBACK {
                return Ok(StatusCode::OK.into_response());
            }
            let meta: ModalMetadata = serde_json::from_str(&view.private_metadata)
                .map_err(|e| SlackFailure::BadPayload(format!("private_metadata: {e}")))?;
            let reason = view
                .state
                .values
                .get(REASON_INPUT)
                .and_then(|b| b.get(REASON_INPUT))
                .and_then(|v| v.value.clone())
                .map(|r| r.trim().to_string())
                .unwrap_or_default();
            if reason.is_empty() {
                let errors = BTreeMap::from([(
                    REASON_INPUT,
                    "A reason is required: it is recorded with the decision.".to_string(),
                )]);
                return Ok(axum::Json(ViewErrors { response_action: "errors", errors }).into_response());
            }
            let who = Who { user: user.id, team: team.map(|t| t.id).or(user.team_id) };
            if !first_time(&inb, &format!("view:{}:{}", view.id, who.user)) {
                return Ok(StatusCode::OK.into_response());
            }
            let place = Place { channel: meta.channel.clone(), message_ts: meta.message_ts.clone() };
            spawn(state, config, move |st, slack| decide(st, slack, &who, meta.kind, &meta.value, reason, &place));
            Ok(StatusCode::OK.into_response())
        }
        Interaction::Other => Ok(StatusCode::OK.into_response()),
    }
}

/// `POST /slack/events`.
pub async fn events(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match event(&state, &headers, &body) {
        Ok(r) => r,
        Err(f) => {
            eprintln!("guardrail serve: /slack/events refused: {f}");
            f.into_response()
        }
    }
}

fn event(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, SlackFailure> {
    let (inb, config) = verify(state, headers, body)?;
    let env: EventEnvelope = serde_json::from_slice(body).map_err(|e| SlackFailure::BadPayload(e.to_string()))?;
    match env {
        EventEnvelope::UrlVerification { challenge } => Ok(axum::Json(Challenge { challenge }).into_response()),
        EventEnvelope::EventCallback { team_id, event_id, event } => {
            // Slack retries an event it thinks was not received (X-Slack-Retry-Num); the id
            // makes the second delivery a no-op whatever the header says.
            if !first_time(&inb, &format!("event:{event_id}")) {
                return Ok(StatusCode::OK.into_response());
            }
            let Some(cmd) = thread_command(&event) else { return Ok(StatusCode::OK.into_response()) };
            spawn(state, config, move |st, slack| thread_reply(st, slack, team_id, cmd));
            Ok(StatusCode::OK.into_response())
        }
        EventEnvelope::Other => Ok(StatusCode::OK.into_response()),
    }
}

/// Runs slow work after the acknowledgement, on the blocking pool, with the Slack client
/// (a blocking HTTP client, which must be made and dropped off the async threads). Without
/// `SLACK_BOT_TOKEN` the work still verifies and records; it only cannot answer in Slack.
fn spawn(state: &AppState, config: SlackConfig, f: impl FnOnce(&AppState, &Slack) + Send + 'static) {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let client = match SlackClient::from_env(&state.config().env) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("guardrail serve: Slack client: {e}");
                None
            }
        };
        f(&state, &Slack { config, client });
    });
}

// ---------------------------------------------------------------------------------------
// Thread replies.

/// `APPROVE <reason>` / `FORCE_OVERRIDE <reason>` in an incident's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ThreadCommand {
    kind: DecisionKind,
    reason: String,
    user: String,
    channel: String,
    thread_ts: String,
}

/// The command in a message event, if it is a person's thread reply that starts with one.
fn thread_command(e: &Event) -> Option<ThreadCommand> {
    if e.kind != "message" || e.subtype.is_some() || e.bot_id.is_some() {
        return None;
    }
    let (thread_ts, ts) = (e.thread_ts.as_ref()?, e.ts.as_ref()?);
    if thread_ts == ts {
        return None;
    }
    let text = e.text.as_deref()?.trim();
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let kind = match word {
        "APPROVE" => DecisionKind::Approve,
        "FORCE_OVERRIDE" => DecisionKind::ForceOverride,
        _ => return None,
    };
    Some(ThreadCommand {
        kind,
        reason: rest.trim().to_string(),
        user: e.user.clone()?,
        channel: e.channel.clone()?,
        thread_ts: thread_ts.clone(),
    })
}

/// `conversations.replies` (the thread's first message) request, as query parameters.
#[derive(Serialize)]
struct RepliesRequest<'a> {
    channel: &'a str,
    ts: &'a str,
    limit: u32,
    inclusive: bool,
}

/// `conversations.replies` answer: the messages, their blocks read only for the buttons.
#[derive(Deserialize)]
struct Replies {
    messages: Vec<RootMessage>,
}

#[derive(Deserialize)]
struct RootMessage {
    ts: String,
    #[serde(default)]
    blocks: Vec<LooseBlock>,
}

#[derive(Deserialize)]
struct LooseBlock {
    #[serde(default)]
    elements: Vec<LooseElement>,
}

#[derive(Deserialize)]
struct LooseElement {
    #[serde(default)]
    action_id: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

/// The incident and binding hash of the message a thread answers: its buttons' value. None
/// when the message has no Guardrail buttons (not an incident, or already decided).
fn thread_subject(client: &SlackClient, channel: &str, ts: &str) -> Result<Option<ActionValue>, String> {
    let r: Replies = client
        .call("conversations.replies", &RepliesRequest { channel, ts, limit: 1, inclusive: true })
        .map_err(|e| e.to_string())?;
    Ok(r.messages.iter().find(|m| m.ts == ts).and_then(|m| {
        m.blocks.iter().flat_map(|b| &b.elements).find_map(|e| {
            DecisionKind::from_action_id(e.action_id.as_deref()?)?;
            serde_json::from_str(e.value.as_deref()?).ok()
        })
    }))
}

fn thread_reply(state: &AppState, slack: &Slack, team: Option<String>, cmd: ThreadCommand) {
    let who = Who { user: cmd.user.clone(), team };
    let place = Place { channel: Some(cmd.channel.clone()), message_ts: Some(cmd.thread_ts.clone()) };
    let Some(client) = &slack.client else {
        eprintln!(
            "guardrail serve: Slack thread reply: SLACK_BOT_TOKEN is not set, the thread's incident cannot be read"
        );
        return;
    };
    let value = match thread_subject(client, &cmd.channel, &cmd.thread_ts) {
        Ok(Some(v)) => v,
        Ok(None) => {
            ephemeral(
                slack,
                &who,
                &place,
                "This thread's message has no pending Guardrail decision: nothing was approved.".into(),
            );
            return;
        }
        Err(e) => {
            eprintln!("guardrail serve: Slack thread reply: {e}");
            ephemeral(
                slack,
                &who,
                &place,
                "The incident message could not be read from Slack: nothing was approved; try again.".into(),
            );
            return;
        }
    };
    if cmd.reason.is_empty() {
        ephemeral(
            slack,
            &who,
            &place,
            format!(
                "`{}` needs a reason: `{} <reason>`. Nothing was recorded.",
                cmd.kind.label(),
                match cmd.kind {
                    DecisionKind::ForceOverride => "FORCE_OVERRIDE",
                    _ => "APPROVE",
                }
            ),
        );
        return;
    }
    decide(state, slack, &who, cmd.kind, &value, cmd.reason, &place);
}

// ---------------------------------------------------------------------------------------
// The decision.

fn ephemeral(slack: &Slack, who: &Who, place: &Place, text: String) {
    let Some(channel) = place.channel.clone() else { return };
    let m = Message {
        channel,
        text,
        user: Some(who.user.clone()),
        thread_ts: place.message_ts.clone(),
        ..Message::default()
    };
    slack.post("ephemeral answer", &m, true);
}

fn open_modal(
    state: &AppState,
    slack: &Slack,
    who: Who,
    kind: DecisionKind,
    value: ActionValue,
    place: Place,
    trigger: &str,
) {
    // An unmapped user gets no modal: the refusal is recorded now.
    if slack.config.identity(&who.user, who.team.as_deref()).is_none() {
        refuse_unmapped(state, slack, &who, kind, &value, &place);
        return;
    }
    let Some(client) = &slack.client else {
        eprintln!("guardrail serve: Slack button: SLACK_BOT_TOKEN is not set, the reason modal cannot open");
        return;
    };
    let meta = ModalMetadata { value, kind, channel: place.channel, message_ts: place.message_ts };
    if let Err(e) = client.open_view(trigger, &blocks::reason_modal(&meta)) {
        eprintln!("guardrail serve: Slack views.open: {e}");
    }
}

/// The provenance merged into every record a Slack request writes.
#[derive(Serialize)]
struct Extra {
    requested_by: SlackRequestedBy,
}

fn provenance(who: &Who, identity: Option<&str>, place: &Place) -> serde_json::Value {
    encode(&Extra {
        requested_by: SlackRequestedBy {
            identity: identity.map(str::to_string),
            via: "slack".into(),
            slack_user_id: who.user.clone(),
            slack_team_id: who.team.clone(),
            slack_channel: place.channel.clone(),
            slack_message_ts: place.message_ts.clone(),
        },
    })
}

/// The store as the governor's log, through the server's own [`ServerLog`] (the HTTP
/// approvals' log: audit-write failures in `/metrics`, an `audit` event per record).
fn open_log(state: &AppState, now: jiff::Timestamp) -> Result<ServerLog<'_>, String> {
    ServerLog::open(state, now).map_err(|_| "the audit store does not open (see the server log)".to_string())
}

/// Appends an `approval_refused` outside the approval rules (the person has no identity, or
/// declined), with the Slack provenance.
fn record_refusal(state: &AppState, body: RefusalBody, extra: serde_json::Value) -> Result<String, String> {
    let mut log = open_log(state, jiff::Timestamp::now())?;
    let mut b = encode(&body);
    if let (Some(o), serde_json::Value::Object(more)) = (b.as_object_mut(), extra) {
        o.extend(more);
    }
    let rec = log.append(guardrail_governor::queue::kinds::APPROVAL_REFUSED, b).map_err(|e| e.to_string())?;
    Ok(rec.id())
}

fn kind_name(kind: DecisionKind) -> &'static str {
    match kind {
        DecisionKind::Approve => "approve",
        DecisionKind::ForceOverride => "force_override",
        DecisionKind::Reject => "reject",
    }
}

fn refuse_unmapped(state: &AppState, slack: &Slack, who: &Who, kind: DecisionKind, value: &ActionValue, place: &Place) {
    let message = format!(
        "Slack user {} (team {}) is not mapped to a Guardrail identity (governor config slack.users): refused",
        who.user,
        who.team.as_deref().unwrap_or("unknown")
    );
    let body = RefusalBody {
        incident_id: value.incident_id.clone(),
        kind: kind_name(kind).into(),
        approver: String::new(),
        reason: None,
        code: "slack_user_not_mapped".into(),
        message: message.clone(),
        request_record: None,
        binding_hash: None,
        reviewed_hash: Some(value.binding_hash.clone()),
    };
    let text = match record_refusal(state, body, provenance(who, None, place)) {
        Ok(id) => {
            format!(":no_entry: Refused: your Slack user is not mapped to a Guardrail identity. Recorded as `{id}`.")
        }
        Err(e) => {
            eprintln!("guardrail serve: Slack refusal could not be recorded: {e}");
            ":no_entry: Refused: your Slack user is not mapped to a Guardrail identity.".into()
        }
    };
    ephemeral(slack, who, place, text);
}

/// The decision of a verified Slack user: identity from the users map, then the governor's
/// approval (the same function as the CLI and HTTP), then the messages about it.
fn decide(
    state: &AppState,
    slack: &Slack,
    who: &Who,
    kind: DecisionKind,
    value: &ActionValue,
    reason: String,
    place: &Place,
) {
    let Some(identity) = slack.config.identity(&who.user, who.team.as_deref()).map(str::to_string) else {
        refuse_unmapped(state, slack, who, kind, value, place);
        return;
    };
    let extra = provenance(who, Some(&identity), place);
    let approval_kind = match kind {
        DecisionKind::Approve => ApprovalKind::Approve,
        DecisionKind::ForceOverride => ApprovalKind::ForceOverride,
        DecisionKind::Reject => {
            reject(state, slack, who, &identity, value, reason, place, extra);
            return;
        }
    };
    let view = state.refresh_governor();
    if let Some(why) = &view.broken {
        eprintln!("guardrail serve: Slack approval: {why}");
        ephemeral(
            slack,
            who,
            place,
            ":warning: The governor config is invalid on the server: nothing was approved.".into(),
        );
        return;
    }
    let now = jiff::Timestamp::now();
    let mut log = match open_log(state, now) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("guardrail serve: Slack approval: audit store: {e}");
            ephemeral(slack, who, place, ":warning: The audit store is unavailable: nothing was approved.".into());
            return;
        }
    };
    let input = ApprovalInput {
        incident_id: value.incident_id.clone(),
        kind: approval_kind,
        approver: identity.clone(),
        reason: Some(reason),
        reviewed_hash: Some(value.binding_hash.clone()),
    };
    let governor = guardrail_governor::Governor::default();
    let exec = wiring::executor(&view);
    // The Slack user's identity acts as a token's would over HTTP: the same pipeline.
    let caller = Caller { identity: identity.clone(), role: Role::Approver };
    let p = wiring::pipeline(state, &view, &caller, &governor, None, &exec, None, now);
    let mut read = || load(state);
    let outcome = p.approve(&mut log, &mut read, &input, Some(&extra));
    drop(log);
    report(state, slack, who, place, value, outcome);
}

#[allow(clippy::too_many_arguments)]
fn reject(
    state: &AppState,
    slack: &Slack,
    who: &Who,
    identity: &str,
    value: &ActionValue,
    reason: String,
    place: &Place,
    extra: serde_json::Value,
) {
    let body = RefusalBody {
        incident_id: value.incident_id.clone(),
        kind: "reject".into(),
        approver: identity.to_string(),
        reason: Some(reason.clone()),
        code: "rejected".into(),
        message: format!("{identity} rejected the action in Slack; it stays blocked"),
        request_record: None,
        binding_hash: None,
        reviewed_hash: Some(value.binding_hash.clone()),
    };
    match record_refusal(state, body, extra) {
        Ok(id) => {
            if let (Some(channel), Some(ts)) = (&place.channel, &place.message_ts) {
                let text = format!(
                    ":no_entry_sign: *{}* rejected at {}: “{}” — the action stays blocked (record `{id}`)",
                    blocks::escape(identity),
                    jiff::Timestamp::now(),
                    blocks::escape(&reason)
                );
                let m = Message { channel: channel.clone(), text, thread_ts: Some(ts.clone()), ..Message::default() };
                slack.post("thread reply", &m, false);
            }
        }
        Err(e) => {
            eprintln!("guardrail serve: Slack rejection could not be recorded: {e}");
            ephemeral(slack, who, place, ":warning: The rejection could not be recorded.".into());
        }
    }
}

/// Answers in Slack: a refusal to the person only; a grant replaces the buttons with who
/// decided, and the execution's outcome goes to the thread.
fn report(state: &AppState, slack: &Slack, who: &Who, place: &Place, value: &ActionValue, outcome: ApproveOutcome) {
    let (rec, execution) = match outcome {
        ApproveOutcome::Refused { refused, record } => {
            let id = match &record {
                Ok(r) => format!(" Recorded as `{}`.", r.id()),
                Err(e) => {
                    eprintln!("guardrail serve: Slack refusal could not be recorded: {e}");
                    String::new()
                }
            };
            let text = format!(
                ":no_entry: Refused ({}): {}.{id}",
                refused.code,
                blocks::escape(&state.redactor().text(&refused.message))
            );
            ephemeral(slack, who, place, text);
            return;
        }
        ApproveOutcome::CannotDecide(e) => {
            eprintln!("guardrail serve: Slack approval of {}: {e}", value.incident_id);
            ephemeral(
                slack,
                who,
                place,
                ":warning: The incident's records cannot be read: nothing was approved.".into(),
            );
            return;
        }
        ApproveOutcome::NotGranted(e) => {
            eprintln!("guardrail serve: Slack approval of {}: {e}", value.incident_id);
            ephemeral(
                slack,
                who,
                place,
                ":warning: The approval could not be recorded: it is NOT granted and nothing ran.".into(),
            );
            return;
        }
        ApproveOutcome::GrantedMirrorFailed { error, .. } => {
            eprintln!("guardrail serve: Slack approval of {}: {error}", value.incident_id);
            ephemeral(
                slack,
                who,
                place,
                ":warning: Granted, but its mirror copy failed: nothing ran now; `guardrail incident execute` runs it."
                    .into(),
            );
            return;
        }
        ApproveOutcome::ReleasedByAnother { record, by } => {
            let by = by.map(|b| format!(" by `{b}`")).unwrap_or_default();
            ephemeral(
                slack,
                who,
                place,
                format!(":information_source: Already released{by}: your grant (`{}`) released nothing.", record.id()),
            );
            return;
        }
        ApproveOutcome::Unconfirmed { record, error } => {
            eprintln!("guardrail serve: Slack approval of {}: {error}", value.incident_id);
            ephemeral(
                slack,
                who,
                place,
                format!(":warning: Granted (`{}`), but the queue could not be re-read: nothing ran.", record.id()),
            );
            return;
        }
        ApproveOutcome::Released { record, execution, .. } => (record, execution),
    };
    let (Some(channel), Some(ts)) = (place.channel.clone(), place.message_ts.clone()) else { return };
    // The root message again, with the decision instead of the buttons, at once (the outbox
    // sends the same update, and the thread replies about the grant and the execution, as it
    // does for a grant from the CLI or the HTTP API).
    let decision = load(state).ok().and_then(|s| s.get(&value.incident_id).and_then(|st| st.decision.clone()));
    let links = Links { jira: None, dashboard: slack.config.dashboard_url.clone() };
    let update = match guardrail_notify::slack::decided_update(&channel, &ts, &rec, decision.as_ref(), &links) {
        Ok((m, _)) => m,
        Err(e) => {
            eprintln!("guardrail serve: Slack update: the grant {} does not decode: {e}", rec.id());
            return;
        }
    };
    if let Some(c) = &slack.client
        && let Err(e) = c.update(&update)
    {
        eprintln!("guardrail serve: Slack chat.update: {e}");
    }
    if !execution.succeeded() {
        // A grant whose action did not run is news for the person who gave it.
        ephemeral(
            slack,
            who,
            place,
            format!(
                ":warning: Granted (`{}`), but the action did not run successfully: see the incident's thread and `guardrail incident show {}`.",
                rec.id(),
                value.incident_id
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_field(b"a=1&payload=%7B%22x%22%3A+1%7D", "payload").as_deref(), Some("{\"x\": 1}"));
        assert_eq!(form_field(b"payload=%E2%9C%93", "payload").as_deref(), Some("✓"));
        assert_eq!(form_field(b"payload=%ZZ", "payload"), None);
        assert_eq!(form_field(b"payload=%4", "payload"), None);
        assert_eq!(form_field(b"other=1", "payload"), None);
    }

    fn msg(text: &str, thread: Option<&str>) -> Event {
        Event {
            kind: "message".into(),
            subtype: None,
            bot_id: None,
            user: Some("U1AB".into()),
            text: Some(text.into()),
            channel: Some("C1AB".into()),
            ts: Some("2.0".into()),
            thread_ts: thread.map(str::to_string),
        }
    }

    #[test]
    fn thread_commands() {
        let c = thread_command(&msg("APPROVE  db is back ", Some("1.0"))).unwrap();
        assert_eq!((c.kind, c.reason.as_str(), c.thread_ts.as_str()), (DecisionKind::Approve, "db is back", "1.0"));
        let c = thread_command(&msg("FORCE_OVERRIDE failover done", Some("1.0"))).unwrap();
        assert_eq!(c.kind, DecisionKind::ForceOverride);
        assert!(thread_command(&msg("APPROVE x", None)).is_none(), "not in a thread");
        assert!(thread_command(&msg("approve x", Some("1.0"))).is_none(), "the words are upper case");
        assert!(thread_command(&msg("I APPROVE", Some("1.0"))).is_none());
        let mut bot = msg("APPROVE x", Some("1.0"));
        bot.bot_id = Some("B1".into());
        assert!(thread_command(&bot).is_none(), "bots never approve");
        assert_eq!(thread_command(&msg("APPROVE", Some("1.0"))).unwrap().reason, "");
    }
}
