//! Block Kit messages (<https://api.slack.com/block-kit>) rendered from typed records: the
//! incident message with its Approve / Force override / Reject buttons, the line that replaces
//! the buttons once someone decided, the modal that asks for the reason, thread replies, and
//! the deploy gate's BLOCK/DELAY message.
//!
//! Everything here is a typed struct serialised as Slack documents it; no `json!`. Text that
//! comes from an incident, a plan or a model (service names, reasons, claims) is escaped
//! ([`escape`]) so it cannot mention `@channel`, link elsewhere or break the markup. Nothing
//! rendered here decides anything: a button only carries the incident and the binding hash the
//! person saw, and the approval is decided by the governor's rules when it comes back.

use guardrail_governor::record::{DecisionBody, GrantBody, RefusalBody};
use serde::{Deserialize, Serialize};

/// `action_id` of the Approve button.
pub const ACTION_APPROVE: &str = "guardrail_approve";
/// `action_id` of the Force override button.
pub const ACTION_FORCE_OVERRIDE: &str = "guardrail_force_override";
/// `action_id` of the Reject button.
pub const ACTION_REJECT: &str = "guardrail_reject";
/// `callback_id` of the reason modal.
pub const MODAL_CALLBACK: &str = "guardrail_decision";
/// `block_id` / `action_id` of the modal's reason input.
pub const REASON_INPUT: &str = "reason";
/// `block_id` of the incident message's buttons.
pub const ACTIONS_BLOCK: &str = "guardrail_actions";

/// Slack's limits: a section's text, a button's value, a modal's private_metadata.
const MAX_SECTION: usize = 3000;

/// Escapes the three characters Slack's markup reserves (`&`, `<`, `>`), so text from an
/// incident or a model cannot mention people, link elsewhere or break a message.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Cuts `s` to at most `max` characters (with `…`), on a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A text object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Text {
    /// Markup (already escaped by the renderer).
    Mrkdwn {
        /// The text.
        text: String,
    },
    /// Plain text.
    PlainText {
        /// The text.
        text: String,
        /// Whether Slack turns `:emoji:` names into emoji.
        #[serde(default)]
        emoji: bool,
    },
}

impl Text {
    /// Markup.
    pub fn md(text: impl Into<String>) -> Text {
        Text::Mrkdwn { text: cut(&text.into(), MAX_SECTION) }
    }
    /// Plain text.
    pub fn plain(text: impl Into<String>) -> Text {
        Text::PlainText { text: text.into(), emoji: false }
    }
}

/// A button of an actions block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    /// Always `button`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Which button ([`ACTION_APPROVE`], …).
    pub action_id: String,
    /// Label.
    pub text: Text,
    /// What comes back when it is pressed ([`ActionValue`] as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `primary` or `danger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// A link button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A plain-text input element of a modal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlainTextInput {
    /// Always `plain_text_input`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub action_id: String,
    /// Several lines.
    pub multiline: bool,
    /// Shortest accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
}

/// A layout block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// A title.
    Header {
        /// Plain text.
        text: Text,
    },
    /// Text and fields.
    Section {
        /// The text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<Text>,
        /// Two-column fields.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fields: Option<Vec<Text>>,
    },
    /// Small print.
    Context {
        /// Its texts.
        elements: Vec<Text>,
    },
    /// Buttons.
    Actions {
        /// Its id.
        block_id: String,
        /// The buttons.
        elements: Vec<Button>,
    },
    /// A line.
    Divider {},
    /// A modal's input.
    Input {
        /// Its id.
        block_id: String,
        /// Label.
        label: Text,
        /// The element.
        element: PlainTextInput,
        /// May be left empty.
        #[serde(default)]
        optional: bool,
    },
}

impl Block {
    fn section(text: impl Into<String>) -> Block {
        Block::Section { text: Some(Text::md(text)), fields: None }
    }
}

/// What a person decides from a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// APPROVE.
    Approve,
    /// FORCE_OVERRIDE.
    ForceOverride,
    /// Decline to release it (recorded; the action stays blocked).
    Reject,
}

impl DecisionKind {
    /// The button's `action_id`.
    pub fn action_id(self) -> &'static str {
        match self {
            DecisionKind::Approve => ACTION_APPROVE,
            DecisionKind::ForceOverride => ACTION_FORCE_OVERRIDE,
            DecisionKind::Reject => ACTION_REJECT,
        }
    }
    /// The kind of a button's `action_id`.
    pub fn from_action_id(id: &str) -> Option<DecisionKind> {
        [DecisionKind::Approve, DecisionKind::ForceOverride, DecisionKind::Reject]
            .into_iter()
            .find(|k| k.action_id() == id)
    }
    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            DecisionKind::Approve => "Approve",
            DecisionKind::ForceOverride => "Force override",
            DecisionKind::Reject => "Reject",
        }
    }
    /// The past tense, for the line that replaces the buttons.
    pub fn past(self) -> &'static str {
        match self {
            DecisionKind::Approve => "approved",
            DecisionKind::ForceOverride => "force-overrode",
            DecisionKind::Reject => "rejected",
        }
    }
}

/// A button's `value` (and, with the message it came from, a modal's `private_metadata`):
/// the incident and the binding hash the person was shown. The approval is bound to this hash:
/// if the gated plan changed since, the governor refuses it (`plan_changed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionValue {
    /// The incident.
    pub incident_id: String,
    /// The binding hash shown in the message.
    pub binding_hash: String,
}

/// A modal's `private_metadata`: what was pressed, on which message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModalMetadata {
    /// Incident and hash.
    #[serde(flatten)]
    pub value: ActionValue,
    /// Which button.
    pub kind: DecisionKind,
    /// The message's channel.
    pub channel: Option<String>,
    /// The message's `ts`.
    pub message_ts: Option<String>,
}

/// The evidence part of a decision's stress assessment, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
struct Assessment {
    support_count: u32,
    distinct_support_docs: Vec<String>,
    distinct_contradiction_docs: Vec<String>,
    policy_conflicts: Vec<serde_json::Value>,
    confidence_rule: String,
}

/// What the incident message says, from a `remediation_decision` record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentSummary {
    /// The incident.
    pub incident_id: String,
    /// Its service.
    pub service: String,
    /// Its severity.
    pub severity: String,
    /// The gated action.
    pub gated_action: String,
    /// `execute` or `block_and_escalate`.
    pub decision: String,
    /// The deciding rule.
    pub rule: String,
    /// Its reasons.
    pub reasons: Vec<String>,
    /// Evidence, one line.
    pub evidence: String,
    /// The binding hash.
    pub binding_hash: String,
    /// Only a FORCE_OVERRIDE releases it.
    pub requires_force_override: bool,
    /// The decision record's id.
    pub record_id: String,
}

impl IncidentSummary {
    /// The summary of a decision record body.
    pub fn from_decision(b: &DecisionBody, record_id: &str) -> IncidentSummary {
        let a: Assessment = serde_json::from_value(b.outcome_part("/stress/assessment")).unwrap_or_default();
        let evidence = format!(
            "supporting documents: {} ({} distinct) · contradicting: {} · policy conflicts: {}{}",
            a.support_count,
            a.distinct_support_docs.len(),
            a.distinct_contradiction_docs.len(),
            a.policy_conflicts.len(),
            if a.confidence_rule.is_empty() { String::new() } else { format!(" · {}", a.confidence_rule) }
        );
        IncidentSummary {
            incident_id: b.incident_id.clone(),
            service: b.service().unwrap_or("unknown").to_string(),
            severity: b.severity().unwrap_or("unknown").to_string(),
            gated_action: b.gated_action.clone(),
            decision: b.decision.clone(),
            rule: b.rule.clone(),
            reasons: b.reasons.clone(),
            evidence,
            binding_hash: b.binding_hash.clone(),
            requires_force_override: b.requires_force_override,
            record_id: record_id.to_string(),
        }
    }

    /// Whether the gate let it run without a person.
    pub fn executes(&self) -> bool {
        self.decision == "execute"
    }

    /// The one-line fallback text (notifications, screen readers).
    pub fn fallback(&self) -> String {
        let what = if self.executes() { "validated, running" } else { "blocked: approval needed" };
        format!(
            "[{}] {} — {} {} ({})",
            self.severity.to_uppercase(),
            self.service,
            self.gated_action,
            what,
            self.incident_id
        )
    }
}

/// Links shown in the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// The incident's Jira issue (`{JIRA_URL}/browse/KEY`) and key.
    pub jira: Option<(String, String)>,
    /// The dashboard's base URL.
    pub dashboard: Option<String>,
}

/// Who decided what, when: replaces the buttons after a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// What.
    pub kind: DecisionKind,
    /// The Guardrail identity.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// Why.
    pub reason: Option<String>,
    /// The record that holds it.
    pub record_id: String,
}

impl Decided {
    /// From an `approval_granted` / `force_override` record's body.
    pub fn from_grant(g: &GrantBody, at: &str, record_id: &str) -> Decided {
        let kind = if g.kind == "force_override" { DecisionKind::ForceOverride } else { DecisionKind::Approve };
        Decided {
            kind,
            by: g.approver.clone(),
            at: at.to_string(),
            reason: g.reason.clone(),
            record_id: record_id.into(),
        }
    }

    /// The line.
    pub fn line(&self) -> String {
        let why = self.reason.as_deref().map(|r| format!(": “{}”", escape(r))).unwrap_or_default();
        format!(
            ":white_check_mark: *{}* {} at {}{} (record `{}`)",
            escape(&self.by),
            self.kind.past(),
            escape(&self.at),
            why,
            escape(&self.record_id)
        )
    }
}

fn button(kind: DecisionKind, value: &ActionValue, style: Option<&str>) -> Button {
    Button {
        kind: "button".into(),
        action_id: kind.action_id().into(),
        text: Text::plain(kind.label()),
        // A typed value of two short strings: serialising cannot fail.
        value: Some(serde_json::to_string(value).unwrap_or_default()),
        style: style.map(str::to_string),
        url: None,
    }
}

/// The incident message: header, fields, the deciding rule and reasons, evidence, binding
/// hash, links, and either the buttons (blocked, undecided) or who decided.
pub fn incident_blocks(s: &IncidentSummary, links: &Links, decided: Option<&Decided>) -> Vec<Block> {
    let header = if s.executes() {
        format!("Remediation validated: {} ({})", s.service, s.severity.to_uppercase())
    } else if s.requires_force_override {
        format!("Blocked, FORCE_OVERRIDE required: {} ({})", s.service, s.severity.to_uppercase())
    } else {
        format!("Blocked, approval required: {} ({})", s.service, s.severity.to_uppercase())
    };
    let mut blocks = vec![
        Block::Header { text: Text::plain(cut(&header, 150)) },
        Block::Section {
            text: None,
            fields: Some(vec![
                Text::md(format!("*Incident*\n{}", escape(&s.incident_id))),
                Text::md(format!("*Service*\n{}", escape(&s.service))),
                Text::md(format!("*Severity*\n{}", escape(&s.severity))),
                Text::md(format!("*Gated action*\n`{}`", escape(&s.gated_action))),
            ]),
        },
    ];
    let reasons: Vec<String> = s.reasons.iter().take(5).map(|r| format!("• {}", escape(r))).collect();
    blocks.push(Block::section(format!("*Deciding rule:* `{}`\n{}", escape(&s.rule), reasons.join("\n"))));
    blocks.push(Block::section(format!("*Evidence:* {}", escape(&s.evidence))));
    let mut ctx = vec![Text::md(format!(
        "binding hash `{}` · decision record `{}`",
        escape(&s.binding_hash),
        escape(&s.record_id)
    ))];
    if let Some((url, key)) = &links.jira {
        ctx.push(Text::md(format!("Jira: <{}|{}>", escape(url), escape(key))));
    }
    if let Some(d) = &links.dashboard {
        ctx.push(Text::md(format!("<{}/#incident={}|Open in Guardrail>", escape(d), escape(&s.incident_id))));
    }
    blocks.push(Block::Context { elements: ctx });
    match decided {
        Some(d) => blocks.push(Block::section(d.line())),
        None if !s.executes() => {
            let value = ActionValue { incident_id: s.incident_id.clone(), binding_hash: s.binding_hash.clone() };
            let mut buttons = Vec::new();
            if !s.requires_force_override {
                buttons.push(button(DecisionKind::Approve, &value, Some("primary")));
            }
            buttons.push(button(DecisionKind::ForceOverride, &value, Some("danger")));
            buttons.push(button(DecisionKind::Reject, &value, None));
            blocks.push(Block::Actions { block_id: ACTIONS_BLOCK.into(), elements: buttons });
            let how = if s.requires_force_override {
                "Critical: APPROVE is refused; FORCE_OVERRIDE with a reason, or reply `FORCE_OVERRIDE <reason>` in this thread."
            } else {
                "Approve or force-override with a reason, or reply `APPROVE <reason>` / `FORCE_OVERRIDE <reason>` in this thread."
            };
            blocks.push(Block::Context { elements: vec![Text::md(how)] });
        }
        None => {}
    }
    blocks
}

/// A modal view (`views.open`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Always `modal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// [`MODAL_CALLBACK`].
    pub callback_id: String,
    /// [`ModalMetadata`] as JSON.
    pub private_metadata: String,
    /// Title.
    pub title: Text,
    /// Submit label.
    pub submit: Text,
    /// Close label.
    pub close: Text,
    /// Blocks.
    pub blocks: Vec<Block>,
}

/// The modal that asks for the reason of a decision.
pub fn reason_modal(meta: &ModalMetadata) -> View {
    View {
        kind: "modal".into(),
        callback_id: MODAL_CALLBACK.into(),
        // Two short strings and a few ids: cannot fail.
        private_metadata: serde_json::to_string(meta).unwrap_or_default(),
        title: Text::plain(cut(meta.kind.label(), 24)),
        submit: Text::plain(meta.kind.label()),
        close: Text::plain("Cancel"),
        blocks: vec![
            Block::section(format!(
                "*{}* incident *{}*, binding hash `{}`.",
                meta.kind.label(),
                escape(&meta.value.incident_id),
                escape(&meta.value.binding_hash)
            )),
            Block::Input {
                block_id: REASON_INPUT.into(),
                label: Text::plain("Reason (recorded in the audit chain)"),
                element: PlainTextInput {
                    kind: "plain_text_input".into(),
                    action_id: REASON_INPUT.into(),
                    multiline: true,
                    min_length: Some(3),
                },
                optional: false,
            },
        ],
    }
}

/// A thread reply about a refusal (sent to the person only, as an ephemeral message, when
/// the refusal came from Slack).
pub fn refusal_text(r: &RefusalBody, record_id: &str) -> String {
    format!(
        ":no_entry: {} by *{}* refused ({}): {} (record `{}`)",
        escape(&r.kind),
        escape(&r.approver),
        escape(&r.code),
        escape(&r.message),
        escape(record_id)
    )
}

/// A deploy decision's message (BLOCK and DELAY): the verdict, the rule, the values compared
/// and the counterfactual.
pub fn deploy_blocks(
    service: &str,
    b: &guardrail_gate::gate::DecisionRecordBody,
    record_id: &str,
    dashboard: Option<&str>,
) -> (String, Vec<Block>) {
    /// The counterfactual's one line, as recorded.
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Counterfactual {
        summary: String,
    }
    /// One compared condition, as recorded ([`guardrail_core::policy::ConditionOutcome`]).
    #[derive(Deserialize)]
    struct Condition {
        signal: String,
        operator: serde_json::Value,
        threshold: serde_json::Value,
        actual: serde_json::Value,
        result: bool,
    }
    let v = &b.verdict;
    let action = v.action.map(|a| format!("{a:?}").to_uppercase()).unwrap_or_else(|| "UNKNOWN".into());
    let compact = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let conditions: Vec<Condition> = serde_json::from_value(v.conditions.clone()).unwrap_or_default();
    let compared: Vec<String> = conditions
        .iter()
        .map(|c| {
            format!(
                "• `{} {} {}` — actual {}: {}",
                escape(&c.signal),
                escape(&compact(&c.operator)),
                escape(&compact(&c.threshold)),
                escape(&compact(&c.actual)),
                c.result
            )
        })
        .collect();
    let cf: Counterfactual = serde_json::from_value(b.counterfactual.clone()).unwrap_or_default();
    let mut head = format!("Deploy {action}: {service}");
    if v.delay_minutes > 0 {
        head.push_str(&format!(" (retry in {} min)", v.delay_minutes));
    }
    let text = format!("{head} — rule {} ({})", v.policy_id, record_id);
    let mut blocks = vec![
        Block::Header { text: Text::plain(cut(&head, 150)) },
        Block::section(format!("*Rule:* `{}` {}\n{}", escape(&v.policy_id), escape(&v.policy_name), escape(&v.reason))),
    ];
    if !compared.is_empty() {
        blocks.push(Block::section(format!("*Values compared*\n{}", compared.join("\n"))));
    }
    if !cf.summary.is_empty() {
        blocks.push(Block::section(format!("*What would change it:* {}", escape(&cf.summary))));
    }
    if !v.remediation.is_empty() {
        blocks.push(Block::section(format!("*Next:* {}", escape(&v.remediation))));
    }
    let mut ctx = vec![Text::md(format!("record `{}` · {}", escape(record_id), escape(&b.run.evaluated_at)))];
    if let Some(d) = dashboard {
        ctx.push(Text::md(format!("<{}/|Open in Guardrail>", escape(d))));
    }
    blocks.push(Block::Context { elements: ctx });
    (text, blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(force: bool, decision: &str) -> IncidentSummary {
        IncidentSummary {
            incident_id: "inc-001".into(),
            service: "payments-api".into(),
            severity: if force { "critical" } else { "high" }.into(),
            gated_action: "restart_api_pods".into(),
            decision: decision.into(),
            rule: "hard_evidence".into(),
            reasons: vec!["3 contradicting documents <!channel>".into()],
            evidence: "supporting documents: 1".into(),
            binding_hash: "ab".repeat(32),
            requires_force_override: force,
            record_id: "7-0123456789ab".into(),
        }
    }

    fn buttons(blocks: &[Block]) -> Vec<Button> {
        blocks
            .iter()
            .filter_map(|b| match b {
                Block::Actions { elements, .. } => Some(elements.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn blocked_message_carries_incident_and_hash_in_every_button() {
        let blocks = incident_blocks(&summary(false, "block_and_escalate"), &Links::default(), None);
        let b = buttons(&blocks);
        let ids: Vec<&str> = b.iter().map(|b| b.action_id.as_str()).collect();
        assert_eq!(ids, [ACTION_APPROVE, ACTION_FORCE_OVERRIDE, ACTION_REJECT]);
        for button in &b {
            let v: ActionValue = serde_json::from_str(button.value.as_deref().unwrap()).unwrap();
            assert_eq!(v, ActionValue { incident_id: "inc-001".into(), binding_hash: "ab".repeat(32) });
        }
        let text = serde_json::to_string(&blocks).unwrap();
        assert!(text.contains("&lt;!channel&gt;") && !text.contains("<!channel>"), "escaped: {text}");
        assert!(text.contains("\"type\":\"header\"") && text.contains("\"type\":\"mrkdwn\""));
    }

    #[test]
    fn critical_offers_no_approve_and_decided_replaces_buttons() {
        let s = summary(true, "block_and_escalate");
        let ids: Vec<String> =
            buttons(&incident_blocks(&s, &Links::default(), None)).into_iter().map(|b| b.action_id).collect();
        assert_eq!(ids, [ACTION_FORCE_OVERRIDE, ACTION_REJECT]);
        let d = Decided {
            kind: DecisionKind::ForceOverride,
            by: "carol".into(),
            at: "2026-12-06T12:00:00Z".into(),
            reason: Some("db failover done".into()),
            record_id: "9-abc".into(),
        };
        let blocks = incident_blocks(&s, &Links::default(), Some(&d));
        assert!(buttons(&blocks).is_empty());
        let text = serde_json::to_string(&blocks).unwrap();
        assert!(text.contains("*carol* force-overrode at 2026-12-06T12:00:00Z"), "{text}");
        assert!(buttons(&incident_blocks(&summary(false, "execute"), &Links::default(), None)).is_empty());
    }

    #[test]
    fn modal_round_trips_its_metadata() {
        let meta = ModalMetadata {
            value: ActionValue { incident_id: "inc-1".into(), binding_hash: "ff".repeat(32) },
            kind: DecisionKind::Approve,
            channel: Some("C1".into()),
            message_ts: Some("1.2".into()),
        };
        let v = reason_modal(&meta);
        assert_eq!(serde_json::from_str::<ModalMetadata>(&v.private_metadata).unwrap(), meta);
        assert!(v.private_metadata.len() < 3000);
    }
}
