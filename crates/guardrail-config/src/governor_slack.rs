//! The governor config's `slack:` block: Slack approvals and messages (issue 13).
//!
//! ```yaml
//! slack:
//!   channel: C0123INCIDENTS           # where incident messages go (a channel id or #name)
//!   team: T0123ABC                    # optional: requests from any other workspace are refused
//!   users:                            # Slack user id → Guardrail identity (who approves)
//!     U0123ABC: bob
//!     U0456DEF: carol
//!   on_call: [U0123ABC]               # urgent DM for high and critical incidents
//!   deploy_channels:                  # optional: deploy BLOCK/DELAY messages, per service
//!     payments-api: C0456DEPLOYS
//!     "*": C0789DEPLOYS               # any other service
//!   dashboard_url: https://guardrail.internal/
//! ```
//!
//! The users map is the only way a Slack click becomes an identity: the Slack user id comes
//! from a signed request, the identity from this file; an unmapped user is refused. The
//! identities are checked like the approvers' names, so a mapped user still approves only
//! what `approvals:` lets that identity approve. Secrets (bot token, signing secret) are never
//! in this file: they come from the environment (`SLACK_BOT_TOKEN`, `SLACK_SIGNING_SECRET`).

use std::collections::BTreeMap;
use std::path::Path;

use guardrail_core::approval::valid_user;
use serde::{Deserialize, Deserializer};

use crate::common::Diags;
use crate::de::{StringList, present};

/// The key of `deploy_channels` that matches any service not listed.
pub const ANY_SERVICE: &str = "*";

/// The `slack:` block, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlackConfig {
    /// The incidents channel (id such as `C0123ABC`, or `#name`).
    pub channel: String,
    /// The only workspace (team id) whose requests are accepted, if set.
    pub team: Option<String>,
    /// Slack user id → Guardrail identity.
    pub users: BTreeMap<String, String>,
    /// Slack user ids to DM for high and critical incidents.
    pub on_call: Vec<String>,
    /// Deploy BLOCK/DELAY channel per service ([`ANY_SERVICE`] for the rest); empty: none.
    pub deploy_channels: BTreeMap<String, String>,
    /// The dashboard's base URL, for links in messages.
    pub dashboard_url: Option<String>,
}

impl SlackConfig {
    /// The Guardrail identity of a Slack user, if mapped (and, with `team` set, only for that
    /// workspace's requests).
    pub fn identity(&self, user_id: &str, team_id: Option<&str>) -> Option<&str> {
        if let Some(team) = &self.team
            && team_id != Some(team.as_str())
        {
            return None;
        }
        self.users.get(user_id).map(String::as_str)
    }

    /// The deploy channel for `service`, if any.
    pub fn deploy_channel(&self, service: &str) -> Option<&str> {
        self.deploy_channels.get(service).or_else(|| self.deploy_channels.get(ANY_SERVICE)).map(String::as_str)
    }
}

/// The `slack:` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlackSpec {
    #[serde(default, deserialize_with = "present")]
    channel: Option<String>,
    #[serde(default, deserialize_with = "present")]
    team: Option<String>,
    #[serde(default, deserialize_with = "present")]
    users: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "present")]
    on_call: Option<SlackIds>,
    #[serde(default, deserialize_with = "present")]
    deploy_channels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "present")]
    dashboard_url: Option<String>,
}

/// A list of Slack user ids.
#[derive(Debug)]
struct SlackIds(Vec<String>);

impl<'de> Deserialize<'de> for SlackIds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(StringList("a list of Slack user ids")).map(SlackIds)
    }
}

/// A Slack object id: a letter prefix and upper-case letters and digits (`U0123ABC`).
fn slack_id(s: &str, prefixes: &[char]) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if prefixes.contains(&c))
        && (3..=32).contains(&s.len())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A channel: an id (`C…`, `G…`, `D…`) or a `#name` (lower-case letters, digits, `-`, `_`).
fn channel_ok(s: &str) -> bool {
    if let Some(name) = s.strip_prefix('#') {
        return (1..=80).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    }
    slack_id(s, &['C', 'G', 'D'])
}

const USER_PREFIXES: [char; 2] = ['U', 'W'];

/// Checks the block, reporting every problem through `d` (fields under `slack.`); `dir` is the
/// config file's directory, for relative paths.
pub(crate) fn read_slack(d: &mut Diags, spec: &SlackSpec, dir: Option<&Path>) -> SlackConfig {
    let _ = dir; // nothing in the block is a path
    let mut cfg = SlackConfig::default();
    match &spec.channel {
        Some(c) if channel_ok(c.trim()) => cfg.channel = c.trim().to_string(),
        Some(c) => d.error("slack.channel", format!("{c:?} is not a channel id (C0123ABC) or #name")),
        None => d.error("slack.channel", "is required: the channel incident messages are posted to"),
    }
    if let Some(t) = &spec.team {
        if slack_id(t.trim(), &['T', 'E']) {
            cfg.team = Some(t.trim().to_string());
        } else {
            d.error("slack.team", format!("{t:?} is not a Slack team id (T0123ABC)"));
        }
    }
    match &spec.users {
        Some(users) => {
            for (id, who) in users {
                let p = format!("slack.users.{id}");
                if !slack_id(id, &USER_PREFIXES) {
                    d.error(&p, format!("{id:?} is not a Slack user id (U0123ABC)"));
                } else if !valid_user(who.trim()) {
                    d.error(&p, format!("{who:?} is not a user name (1-64 of A-Z a-z 0-9 . _ @ -)"));
                } else {
                    cfg.users.insert(id.clone(), who.trim().to_string());
                }
            }
        }
        None => d.warning("slack.users", "is absent: every Slack approval will be refused (no user is mapped)"),
    }
    if let Some(SlackIds(ids)) = &spec.on_call {
        for (i, id) in ids.iter().enumerate() {
            if slack_id(id.trim(), &USER_PREFIXES) {
                cfg.on_call.push(id.trim().to_string());
            } else {
                d.error(format!("slack.on_call[{i}]"), format!("{id:?} is not a Slack user id (U0123ABC)"));
            }
        }
    }
    if let Some(chans) = &spec.deploy_channels {
        for (service, chan) in chans {
            if channel_ok(chan.trim()) {
                cfg.deploy_channels.insert(service.clone(), chan.trim().to_string());
            } else {
                d.error(
                    format!("slack.deploy_channels.{service}"),
                    format!("{chan:?} is not a channel id (C0123ABC) or #name"),
                );
            }
        }
    }
    if let Some(u) = &spec.dashboard_url {
        match crate::prometheus::check_url(u) {
            Ok(()) => cfg.dashboard_url = Some(u.trim_end_matches('/').to_string()),
            Err(e) => d.error("slack.dashboard_url", e.to_string()),
        }
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Source, load_governor_file};

    fn load(text: &str) -> Result<(Option<SlackConfig>, Vec<String>), Vec<String>> {
        load_governor_file(&Source::from_text("g.yaml", text))
            .map(|l| (l.value.slack, l.warnings.iter().map(ToString::to_string).collect()))
            .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn reads_the_block() {
        let (cfg, _) = load(
            "approvals: {}\nslack:\n  channel: C0123INC\n  team: T0001\n  users: {U0123ABC: bob, W0456DEF: carol}\n  on_call: [U0123ABC]\n  deploy_channels: {payments-api: '#deploys', '*': C0999}\n  dashboard_url: https://g.example/\n",
        )
        .unwrap();
        let cfg = cfg.unwrap();
        assert_eq!(cfg.channel, "C0123INC");
        assert_eq!(cfg.identity("U0123ABC", Some("T0001")), Some("bob"));
        assert_eq!(cfg.identity("U0123ABC", Some("T0002")), None, "another workspace");
        assert_eq!(cfg.identity("U0123ABC", None), None);
        assert_eq!(cfg.identity("U9", Some("T0001")), None);
        assert_eq!(cfg.on_call, ["U0123ABC"]);
        assert_eq!(cfg.deploy_channel("payments-api"), Some("#deploys"));
        assert_eq!(cfg.deploy_channel("search"), Some("C0999"));
        assert_eq!(cfg.dashboard_url.as_deref(), Some("https://g.example"));
    }

    #[test]
    fn without_team_any_workspace_maps() {
        let (cfg, _) = load("approvals: {}\nslack: {channel: '#inc', users: {U1AB: bob}}\n").unwrap();
        assert_eq!(cfg.unwrap().identity("U1AB", Some("T9")), Some("bob"));
    }

    #[test]
    fn every_problem_is_reported_at_its_field() {
        let e = load(
            "approvals: {}\nslack:\n  users: {bob: U0123, U0123ABC: 'no spaces'}\n  on_call: [alice]\n  team: x\n  deploy_channels: {a: 'not a channel'}\n  dashboard_url: ftp://x\n",
        )
        .unwrap_err();
        let all = e.join("\n");
        for field in [
            "slack.channel",
            "slack.users.bob",
            "slack.users.U0123ABC",
            "slack.on_call[0]",
            "slack.team",
            "slack.deploy_channels.a",
            "slack.dashboard_url",
        ] {
            assert!(all.contains(field), "{field} missing from {all}");
        }
        let e = load("approvals: {}\nslack: {channel: C1AB, user: {}}\n").unwrap_err();
        assert!(e[0].contains("slack.user"), "{e:?}");
    }

    #[test]
    fn no_users_warns() {
        let (_, w) = load("approvals: {}\nslack: {channel: C1AB}\n").unwrap();
        assert!(w.iter().any(|w| w.contains("slack.users")), "{w:?}");
    }
}
