//! The Slack Web API client and the Slack channels against the loopback Slack of
//! guardrail-test-support, which answers as Slack documents it: HTTP 200 with `{"ok": true, …}`
//! or `{"ok": false, "error": "…"}`, `ratelimited` with `Retry-After`, HTTP 429 and 5xx, and an
//! answer that never comes.

use std::time::Duration;

use guardrail_config::SlackConfig;
use guardrail_core::audit::ChainedRecord;
use guardrail_governor::record::{DecisionBody, GrantBody, encode};
use guardrail_notify::blocks::{ACTION_APPROVE, ACTION_FORCE_OVERRIDE, ACTION_REJECT, ActionValue, Block};
use guardrail_notify::channel::{Channel, ChannelKind, DeliveryContext, DeliveryError, Notification};
use guardrail_notify::slack::{Message, SlackChannel, SlackClient, SlackError};
use guardrail_test_support::slack::{FakeSlack, Reply};

const TOKEN: &str = "xoxb-test-0123456789-secret";

/// A Slack client for the fake, with [`TOKEN`].
trait Client {
    fn client(&self) -> SlackClient;
}

impl Client for FakeSlack {
    fn client(&self) -> SlackClient {
        SlackClient::new(&self.url, TOKEN, Duration::from_millis(800)).unwrap()
    }
}

fn message() -> Message {
    Message { channel: "C0INCIDENTS".into(), text: "hello".into(), ..Message::default() }
}

#[test]
fn post_message_is_the_documented_request() {
    let slack = FakeSlack::start();
    let posted = slack.client().post_message(&message()).unwrap();
    assert_eq!(posted.channel, "C0INCIDENTS");
    assert!(posted.ts.starts_with("1765000000."));
    let calls = slack.calls();
    assert_eq!(calls.len(), 1);
    let head = calls[0].head.to_ascii_lowercase();
    assert!(head.starts_with("post /api/chat.postmessage http/1.1"), "{head}");
    assert!(head.contains(&format!("authorization: bearer {}", TOKEN.to_ascii_lowercase())), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(calls[0].body["channel"], "C0INCIDENTS");
    assert_eq!(calls[0].body["unfurl_links"], false);
}

#[test]
fn slack_errors_are_sorted_into_permanent_and_retryable() {
    let slack = FakeSlack::start();
    let c = slack.client();
    for code in ["invalid_auth", "not_in_channel", "channel_not_found"] {
        slack.then(Reply::Body(format!(r#"{{"ok":false,"error":"{code}"}}"#), None));
        let e = c.post_message(&message()).unwrap_err();
        assert!(matches!(&e, SlackError::Api { code: got, .. } if got == code), "{e:?}");
        assert!(matches!(e.delivery(), DeliveryError::Permanent { .. }), "{code}");
    }
    // `ratelimited` as an ok:false body with Retry-After, and as HTTP 429.
    slack.then(Reply::Body(r#"{"ok":false,"error":"ratelimited"}"#.into(), Some(30)));
    let e = c.post_message(&message()).unwrap_err();
    assert_eq!(
        e.delivery(),
        DeliveryError::Retryable {
            reason: "Slack chat.postMessage: ratelimited".into(),
            retry_after: Some(Duration::from_secs(30))
        }
    );
    slack.then(Reply::Status(429, Some(7)));
    let e = c.post_message(&message()).unwrap_err();
    assert!(
        matches!(e.delivery(), DeliveryError::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(7))
    );
    slack.then(Reply::Status(503, None));
    assert!(matches!(c.post_message(&message()).unwrap_err().delivery(), DeliveryError::Retryable { .. }));
    slack.then(Reply::Body(r#"{"ok":false,"error":"internal_error"}"#.into(), None));
    assert!(matches!(c.post_message(&message()).unwrap_err().delivery(), DeliveryError::Retryable { .. }));
    slack.then(Reply::Body("<html>not json</html>".into(), None));
    assert!(matches!(c.post_message(&message()).unwrap_err(), SlackError::BadAnswer { .. }));
    // No answer within the timeout: retryable, and the token is in no error or debug output.
    slack.then(Reply::Stall(Duration::from_secs(3)));
    let e = c.post_message(&message()).unwrap_err();
    assert!(matches!(e, SlackError::Transport { .. }), "{e:?}");
    assert!(e.retryable());
    for text in [e.to_string(), format!("{e:?}"), format!("{c:?}")] {
        assert!(!text.contains(TOKEN), "{text}");
    }
}

#[test]
fn connection_refused_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = SlackClient::new(&format!("http://127.0.0.1:{port}/api"), TOKEN, Duration::from_millis(500)).unwrap();
    assert!(matches!(c.post_message(&message()).unwrap_err().delivery(), DeliveryError::Retryable { .. }));
}

fn config() -> SlackConfig {
    SlackConfig {
        channel: "C0INCIDENTS".into(),
        on_call: vec!["U0ONCALL".into()],
        deploy_channels: [("payments-api".to_string(), "C0DEPLOYS".to_string())].into(),
        dashboard_url: Some("https://guardrail.example".into()),
        ..SlackConfig::default()
    }
}

fn record(seq: i64, kind: &str, body: serde_json::Value) -> ChainedRecord {
    ChainedRecord {
        seq,
        kind: kind.into(),
        recorded_at: "2026-12-06T12:00:00Z".into(),
        body,
        prev_hash: "0".repeat(64),
        hash: format!("{seq:0>64}"),
    }
}

fn decision(severity: &str, decision: &str) -> ChainedRecord {
    let body = DecisionBody {
        incident_id: "inc-001".into(),
        incident: serde_json::from_str(&format!(r#"{{"service":"payments-api","severity":"{severity}"}}"#)).unwrap(),
        gated_action: "restart_api_pods".into(),
        binding_hash: "ab".repeat(32),
        decision: decision.into(),
        rule: "hard_evidence".into(),
        reasons: vec!["3 contradicting runbooks".into()],
        requires_force_override: severity == "critical",
        ..DecisionBody::default()
    };
    record(7, "remediation_decision", encode(&body))
}

fn notification(channel: ChannelKind, record: ChainedRecord) -> Notification {
    Notification { outbox_id: 1, channel, record, attempts: 0 }
}

fn buttons(body: &serde_json::Value) -> Vec<(String, ActionValue)> {
    let blocks: Vec<Block> = serde_json::from_value(body["blocks"].clone()).unwrap();
    blocks
        .into_iter()
        .filter_map(|b| match b {
            Block::Actions { elements, .. } => Some(elements),
            _ => None,
        })
        .flatten()
        .map(|b| (b.action_id, serde_json::from_str(b.value.as_deref().unwrap()).unwrap()))
        .collect()
}

#[test]
fn a_blocked_decision_posts_buttons_and_dms_the_on_call() {
    let slack = FakeSlack::start();
    let ch = SlackChannel::incidents(slack.client(), config());
    let d = ch.deliver(
        &notification(ChannelKind::Slack, decision("high", "block_and_escalate")),
        &DeliveryContext::default(),
    );
    let reference = d.unwrap().reference.unwrap();
    let calls = slack.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, ["chat.postMessage", "conversations.open", "chat.postMessage"]);
    assert_eq!(reference, format!("C0INCIDENTS/{}", "1765000000.000001"));
    let b = buttons(&calls[0].body);
    let ids: Vec<&str> = b.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [ACTION_APPROVE, ACTION_FORCE_OVERRIDE, ACTION_REJECT]);
    assert!(b.iter().all(|(_, v)| v.incident_id == "inc-001" && v.binding_hash == "ab".repeat(32)));
    let text = calls[0].body.to_string();
    for part in [
        "payments-api",
        "restart_api_pods",
        "hard_evidence",
        "3 contradicting runbooks",
        "7-000000000000",
        "https://guardrail.example/#incident=inc-001",
    ] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    assert_eq!(calls[1].body["users"], "U0ONCALL");
    assert_eq!(calls[2].body["channel"], "D0DM000001");

    // A validated (executing) decision has no buttons and wakes nobody.
    let slack = FakeSlack::start();
    let ch = SlackChannel::incidents(slack.client(), config());
    ch.deliver(&notification(ChannelKind::Slack, decision("high", "execute")), &DeliveryContext::default()).unwrap();
    let calls = slack.calls();
    assert_eq!(calls.len(), 1);
    assert!(buttons(&calls[0].body).is_empty());
}

#[test]
fn a_grant_replaces_the_buttons_and_replies_in_the_thread() {
    let slack = FakeSlack::start();
    let ch = SlackChannel::incidents(slack.client(), config());
    let grant = GrantBody {
        incident_id: "inc-001".into(),
        kind: "force_override".into(),
        approver: "carol".into(),
        reason: Some("failover verified".into()),
        action: "restart_api_pods".into(),
        binding_hash: "ab".repeat(32),
        ..GrantBody::default()
    };
    let n = notification(ChannelKind::Slack, record(9, "force_override", encode(&grant)));
    // Before the incident's message is posted: retry later, nothing sent.
    assert!(matches!(ch.deliver(&n, &DeliveryContext::default()), Err(DeliveryError::Retryable { .. })));
    assert!(slack.calls().is_empty());
    let ctx = DeliveryContext {
        slack_thread: Some(("C0INCIDENTS".into(), "1765000000.000001".into())),
        decision: Some(decision("critical", "block_and_escalate")),
        ..DeliveryContext::default()
    };
    ch.deliver(&n, &ctx).unwrap();
    let calls = slack.calls();
    assert_eq!(calls.iter().map(|c| c.method.as_str()).collect::<Vec<_>>(), ["chat.update", "chat.postMessage"]);
    assert_eq!(calls[0].body["ts"], "1765000000.000001");
    assert!(buttons(&calls[0].body).is_empty(), "the buttons are gone");
    let update = calls[0].body.to_string();
    assert!(
        update.contains("*carol* force-overrode at 2026-12-06T12:00:00Z") && update.contains("failover verified"),
        "{update}"
    );
    assert!(update.contains("restart_api_pods"), "re-rendered from the decision: {update}");
    assert_eq!(calls[1].body["thread_ts"], "1765000000.000001");

    // A failed update (the bot left the channel) is permanent.
    slack.then(Reply::Body(r#"{"ok":false,"error":"not_in_channel"}"#.into(), None));
    assert!(matches!(ch.deliver(&n, &ctx), Err(DeliveryError::Permanent { .. })));
}

#[test]
fn deploy_block_goes_to_the_services_channel_and_allow_to_none() {
    use guardrail_core::policy::Action;
    use guardrail_gate::gate::DecisionRecordBody;
    let slack = FakeSlack::start();
    let ch = SlackChannel::deploys(slack.client(), config());
    assert_eq!(ch.kind(), ChannelKind::SlackDeploy);
    let mut body = DecisionRecordBody::default();
    body.verdict.action = Some(Action::Block);
    body.verdict.policy_id = "budget-exhausted".into();
    body.verdict.policy_name = "Error budget exhausted".into();
    body.verdict.reason = "error budget below 10%".into();
    body.verdict.conditions = serde_json::from_str(
        r#"[{"signal":"error_budget_pct","operator":"<","threshold":10,"actual":4.2,"result":true}]"#,
    )
    .unwrap();
    body.counterfactual =
        serde_json::from_str(r#"{"summary":"ALLOW needs error_budget_pct >= 10; now 4.2","rules":[]}"#).unwrap();
    body.run.ci.service = Some("payments-api".into());
    let n = notification(ChannelKind::SlackDeploy, record(3, "deploy_decision", serde_json::to_value(&body).unwrap()));
    let d = ch.deliver(&n, &DeliveryContext::default()).unwrap();
    assert!(d.reference.unwrap().starts_with("C0DEPLOYS/"));
    let calls = slack.calls();
    let text = calls[0].body.to_string();
    for part in [
        "Deploy BLOCK: payments-api",
        "budget-exhausted",
        "error_budget_pct &lt; 10",
        "actual 4.2",
        "ALLOW needs error_budget_pct &gt;= 10",
    ] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    body.verdict.action = Some(Action::Allow);
    let n = notification(ChannelKind::SlackDeploy, record(4, "deploy_decision", serde_json::to_value(&body).unwrap()));
    assert_eq!(ch.deliver(&n, &DeliveryContext::default()).unwrap().reference, None);
    body.verdict.action = Some(Action::Delay);
    body.run.ci.service = Some("search".into());
    let n = notification(ChannelKind::SlackDeploy, record(5, "deploy_decision", serde_json::to_value(&body).unwrap()));
    assert_eq!(ch.deliver(&n, &DeliveryContext::default()).unwrap().reference, None, "no channel for search");
    assert_eq!(slack.calls().len(), 1);
}

#[test]
fn views_open_and_ephemeral_are_the_documented_requests() {
    use guardrail_notify::blocks::{DecisionKind, ModalMetadata, reason_modal};
    let slack = FakeSlack::start();
    let c = slack.client();
    let meta = ModalMetadata {
        value: ActionValue { incident_id: "inc-001".into(), binding_hash: "ab".repeat(32) },
        kind: DecisionKind::Approve,
        channel: Some("C0INCIDENTS".into()),
        message_ts: Some("1.2".into()),
    };
    c.open_view("123.456.abc", &reason_modal(&meta)).unwrap();
    c.post_ephemeral(&Message { user: Some("U1".into()), ..message() }).unwrap();
    let calls = slack.calls();
    assert_eq!(calls[0].method, "views.open");
    assert_eq!(calls[0].body["trigger_id"], "123.456.abc");
    assert_eq!(calls[0].body["view"]["type"], "modal");
    assert_eq!(calls[0].body["view"]["blocks"][1]["type"], "input");
    assert_eq!(calls[1].method, "chat.postEphemeral");
    assert_eq!(calls[1].body["user"], "U1");
}
