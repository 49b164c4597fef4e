//! Which records get outbox rows, and the process's destinations: built once from the
//! governor config and the environment, by `guardrail serve` and the CLI.
//!
//! [`Routes`] is the store's [`OutboxRouter`]: it reads only the draft (kind and body) and
//! the config, so every append path enqueues the same rows whoever wrote the record.
//! - Jira (when the `jira:` block is present or `JIRA_URL` is set): every step of an incident —
//!   decision, could-not-decide, approval request, refusal, grant, override, execution,
//!   refused execution, claim release, resolution — keyed by the incident.
//! - Slack (when the `slack:` block is present): the decision, grants and overrides, refusals,
//!   executions, refused executions and the resolution, keyed by the incident.
//! - Slack deploy (the `slack:` block's `deploy_channels`): `deploy_decision` records whose
//!   action is BLOCK or DELAY and whose service has a channel; no ordering key.
//! - Elasticsearch (the `audit_mirror:` block, or `GUARDRAIL_AUDIT_ES` / `--audit-es`): every
//!   record, deploy or governor, its copy in the audit mirror (`crate::es_mirror`); no ordering
//!   key (each copy stands alone and is idempotent).
//!
//! Rows are routed by configuration, not by credentials: a CLI run without `SLACK_BOT_TOKEN`
//! still enqueues, and `guardrail serve` (which has it) delivers.

use std::collections::BTreeMap;
use std::sync::Arc;

use guardrail_config::{AuditMirrorConfig, GovernorFile, JiraConfig, NotifyConfig, SlackConfig};
use guardrail_core::audit::RecordDraft;
use guardrail_core::policy::Action;
use guardrail_governor::record::RecordKind;
use guardrail_store::{ChannelKind, OutboxRouter, OutboxTarget};

use crate::channel::Channel;
use crate::es_mirror::{EsMirror, EsMirrorChannel, MirrorSetupError};
use crate::jira::{JiraChannel, JiraClient, JiraSettings, JiraSetupError};
use crate::outbox::{Deliverer, RetryPolicy};
use crate::slack::{SlackChannel, SlackClient};

/// The kinds that become Jira comments (the first one creates the issue).
const JIRA_KINDS: [RecordKind; 10] = [
    RecordKind::RemediationDecision,
    RecordKind::RemediationError,
    RecordKind::ApprovalRequest,
    RecordKind::ApprovalRefused,
    RecordKind::ApprovalGranted,
    RecordKind::ForceOverride,
    RecordKind::RemediationExecution,
    RecordKind::ExecutionRefused,
    RecordKind::ClaimRelease,
    RecordKind::IncidentResolved,
];

/// The kinds the Slack incident channel posts.
const SLACK_KINDS: [RecordKind; 7] = [
    RecordKind::RemediationDecision,
    RecordKind::ApprovalRefused,
    RecordKind::ApprovalGranted,
    RecordKind::ForceOverride,
    RecordKind::RemediationExecution,
    RecordKind::ExecutionRefused,
    RecordKind::IncidentResolved,
];

/// The outbox routing table.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    slack: Option<SlackConfig>,
    jira: bool,
    mirror: Option<AuditMirrorConfig>,
}

/// The variable naming the audit mirror's cluster (`--audit-es` sets it for the process).
pub const AUDIT_ES_ENV: &str = "GUARDRAIL_AUDIT_ES";

/// The audit mirror in force: the `audit_mirror:` block, with its URL replaced by
/// `GUARDRAIL_AUDIT_ES` when that is set (its index, credentials, CA file and timeouts kept);
/// without a block, `GUARDRAIL_AUDIT_ES` alone is a mirror with the defaults (index
/// `guardrail-audit`, no credentials).
pub fn mirror_config(block: Option<&AuditMirrorConfig>, env: &BTreeMap<String, String>) -> Option<AuditMirrorConfig> {
    let url = env.get(AUDIT_ES_ENV).map(|u| u.trim()).filter(|u| !u.is_empty());
    match (block, url) {
        (Some(b), Some(u)) => Some(AuditMirrorConfig {
            url: u.trim_end_matches('/').to_string(),
            shares_knowledge_connection: false,
            ..b.clone()
        }),
        (Some(b), None) => Some(b.clone()),
        (None, Some(u)) => Some(AuditMirrorConfig::at(u)),
        (None, None) => None,
    }
}

impl Routes {
    /// Slack messages per `slack` (absent: none); Jira when `jira`.
    pub fn new(slack: Option<SlackConfig>, jira: bool) -> Routes {
        Routes { slack, jira, mirror: None }
    }

    /// Every record also to the audit mirror `mirror` (`None`: not).
    pub fn with_mirror(mut self, mirror: Option<AuditMirrorConfig>) -> Routes {
        self.mirror = mirror;
        self
    }

    /// The audit mirror records are routed to, if any.
    pub fn mirror(&self) -> Option<&AuditMirrorConfig> {
        self.mirror.as_ref()
    }

    /// The destinations records are routed to (`slack`, `jira`, `elasticsearch`), for
    /// `guardrail notify status`.
    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.slack.is_some() {
            out.push(ChannelKind::Slack.as_str());
        }
        if self.jira {
            out.push(ChannelKind::Jira.as_str());
        }
        if self.mirror.is_some() {
            out.push(ChannelKind::Elasticsearch.as_str());
        }
        out
    }

    /// From the governor config (if any) and the environment (`JIRA_URL` turns Jira on,
    /// `GUARDRAIL_AUDIT_ES` the audit mirror).
    pub fn from_config(file: Option<&GovernorFile>, env: &BTreeMap<String, String>) -> Routes {
        Routes::from_blocks(file.and_then(|f| f.slack.as_ref()), file.and_then(|f| f.jira.as_ref()), env)
            .with_mirror(mirror_config(file.and_then(|f| f.audit_mirror.as_ref()), env))
    }

    /// From the config's `slack:` and `jira:` blocks and the environment.
    pub fn from_blocks(
        slack: Option<&SlackConfig>,
        jira: Option<&JiraConfig>,
        env: &BTreeMap<String, String>,
    ) -> Routes {
        let jira = jira.is_some() || env.get("JIRA_URL").is_some_and(|v| !v.trim().is_empty());
        Routes { slack: slack.cloned(), jira, mirror: None }
    }

    /// True when no record gets a row.
    pub fn is_empty(&self) -> bool {
        self.slack.is_none() && !self.jira && self.mirror.is_none()
    }

    fn deploy_target(&self, draft: &RecordDraft) -> Option<OutboxTarget> {
        let slack = self.slack.as_ref()?;
        if draft.kind != guardrail_gate::gate::RECORD_KIND || slack.deploy_channels.is_empty() {
            return None;
        }
        let body = guardrail_gate::gate::decode_decision(&draft.body).ok()?;
        if !matches!(body.verdict.action, Some(Action::Block | Action::Delay)) {
            return None;
        }
        let service = body.run.ci.service.clone().or_else(|| body.service()).unwrap_or_default();
        slack.deploy_channel(&service)?;
        Some(OutboxTarget { channel: ChannelKind::SlackDeploy, ordering_key: None })
    }
}

impl OutboxRouter for Routes {
    fn route(&self, draft: &RecordDraft) -> Vec<OutboxTarget> {
        let mut out = self.notifications(draft);
        if self.mirror.is_some() {
            out.push(OutboxTarget { channel: ChannelKind::Elasticsearch, ordering_key: None });
        }
        out
    }
}

impl Routes {
    /// The Slack and Jira rows of `draft`.
    fn notifications(&self, draft: &RecordDraft) -> Vec<OutboxTarget> {
        let Some(kind) = RecordKind::parse(&draft.kind) else {
            return self.deploy_target(draft).into_iter().collect();
        };
        let Some(incident) = draft.body.get("incident_id").and_then(|v| v.as_str()).filter(|s| !s.is_empty()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if self.slack.is_some() && SLACK_KINDS.contains(&kind) {
            out.push(OutboxTarget { channel: ChannelKind::Slack, ordering_key: Some(incident.to_string()) });
        }
        if self.jira && JIRA_KINDS.contains(&kind) {
            out.push(OutboxTarget { channel: ChannelKind::Jira, ordering_key: Some(incident.to_string()) });
        }
        out
    }
}

/// Why the destinations could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Jira.
    #[error(transparent)]
    Jira(#[from] JiraSetupError),
    /// Slack.
    #[error("Slack: {0}")]
    Slack(String),
    /// The audit mirror.
    #[error(transparent)]
    Mirror(#[from] MirrorSetupError),
}

impl Routes {
    /// As a store router (`None` when no record would be routed).
    pub fn router(&self) -> Option<Arc<dyn OutboxRouter>> {
        if self.is_empty() { None } else { Some(Arc::new(self.clone())) }
    }
}

/// Installs [`Routes::from_config`] as the process's outbox router (or clears it when no
/// record would be routed). Call before opening a store.
pub fn install_routes(file: Option<&GovernorFile>, env: &BTreeMap<String, String>) -> Routes {
    let routes = Routes::from_config(file, env);
    guardrail_store::install_router(routes.router());
    routes
}

/// The destinations this process can reach, from the governor config and the environment:
/// Jira when configured (its credentials must then be set: a configured Jira without them is
/// an error, not silence), Slack incidents and deploys when the `slack:` block is present and
/// `SLACK_BOT_TOKEN` is set. `timeout` overrides the per-call timeouts (the CLI's inline pass
/// uses a short one). Builds blocking HTTP clients: call it outside an async context.
pub fn deliverer(
    file: Option<&GovernorFile>,
    env: &BTreeMap<String, String>,
    timeout: Option<std::time::Duration>,
) -> Result<Deliverer, SetupError> {
    let blocks = (file.and_then(|f| f.slack.as_ref()), file.and_then(|f| f.jira.as_ref()));
    let d = deliverer_from(blocks.0, blocks.1, file.and_then(|f| f.notify.as_ref()), env, timeout)?;
    let mirror = mirror_config(file.and_then(|f| f.audit_mirror.as_ref()), env);
    Ok(match mirror_channel(mirror.as_ref(), env, timeout)? {
        Some(c) => d.with_channel(c),
        None => d,
    })
}

/// The audit mirror's destination for `cfg` (`None` without one), credentials read from `env`.
pub fn mirror_channel(
    cfg: Option<&AuditMirrorConfig>,
    env: &BTreeMap<String, String>,
    timeout: Option<std::time::Duration>,
) -> Result<Option<Arc<dyn Channel>>, SetupError> {
    let Some(cfg) = cfg else { return Ok(None) };
    let mirror = EsMirror::connect(cfg, env, timeout)?;
    Ok(Some(Arc::new(EsMirrorChannel::new(Arc::new(mirror)))))
}

/// [`deliverer`] from the config's blocks.
pub fn deliverer_from(
    slack: Option<&SlackConfig>,
    jira: Option<&JiraConfig>,
    notify: Option<&NotifyConfig>,
    env: &BTreeMap<String, String>,
    timeout: Option<std::time::Duration>,
) -> Result<Deliverer, SetupError> {
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    let jira = JiraSettings::resolve(jira, env)?;
    let jira_browse = jira.as_ref().map(|s| s.base_url.clone());
    if let Some(mut s) = jira {
        if let Some(t) = timeout {
            s.timeout = s.timeout.min(t);
        }
        channels.push(Arc::new(JiraChannel::new(JiraClient::new(s)?)));
    }
    let slack_cfg = slack.cloned();
    if let Some(cfg) = &slack_cfg
        && let Some(client) = SlackClient::from_env(env).map_err(|e| SetupError::Slack(e.to_string()))?
    {
        channels.push(Arc::new(SlackChannel::incidents(client.clone(), cfg.clone())));
        channels.push(Arc::new(SlackChannel::deploys(client, cfg.clone())));
    }
    let policy = notify.map(RetryPolicy::from).unwrap_or_default();
    let dashboard = slack_cfg.and_then(|c| c.dashboard_url);
    Ok(Deliverer::new(channels, policy).with_dashboard_url(dashboard).with_jira_browse(jira_browse))
}
