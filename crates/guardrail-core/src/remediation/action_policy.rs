//! Action policies ([`ActionPolicy`]) and [`policy_conflicts`]: which policies forbid an action,
//! matched on the normalised vocabulary so rewording cannot dodge them.

use serde::{Deserialize, Serialize};

use super::{NormalisedAction, Severity, normalise_action};

/// An action policy, as in the original's `policies` index: for `service` (or `*`, any
/// service), the `blocked_actions` may not be executed automatically at `severities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionPolicy {
    /// Identifier, e.g. `pol-approval-01`.
    pub id: String,
    /// A service name, or `*` for every service.
    pub service: String,
    /// Actions (identifiers or prose) that conflict with this policy.
    pub blocked_actions: Vec<String>,
    /// Severities at which the policy applies.
    pub severities: Vec<Severity>,
    /// Why, for people.
    pub rule: String,
}

/// One policy conflict, with what matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyConflict {
    /// Policy id.
    pub id: String,
    /// The policy's service (`*` or the incident's).
    pub service: String,
    /// The blocked action as written in the policy.
    pub blocked_action: String,
    /// The proposed action's normalised id.
    pub matched_as: String,
    /// How it matched: `same_action` (same normalised id), `mentions` (the proposed text
    /// contains the blocked canonical action) or `phrase` (the blocked words occur in order).
    pub how: String,
    /// The incident's severity.
    pub severity: Severity,
    /// The policy's rule text.
    pub rule: String,
}

fn contains_phrase(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The policies the proposed action conflicts with, ordered by policy id.
///
/// A policy applies when its service is `*` or `service`, and `severity` is one of its
/// severities. It conflicts when one of its blocked actions, normalised, is the proposed
/// action, is a canonical action the proposal mentions, or (for blocked actions outside the
/// vocabulary) occurs as a phrase in the proposal.
pub fn policy_conflicts(
    policies: &[ActionPolicy],
    service: &str,
    action: &NormalisedAction,
    severity: Severity,
) -> Vec<PolicyConflict> {
    let mut out = Vec::new();
    for p in policies {
        if !(p.service == "*" || p.service == service) || !p.severities.contains(&severity) {
            continue;
        }
        let policy_service = if p.service == "*" { None } else { Some(p.service.as_str()) };
        for blocked in &p.blocked_actions {
            let b = normalise_action(blocked, policy_service);
            if b.words.is_empty() {
                continue;
            }
            let how = if b.id == action.id {
                Some("same_action")
            } else if b.canonical.is_some_and(|c| action.mentions.contains(&c)) {
                Some("mentions")
            } else if b.canonical.is_none() && contains_phrase(&action.words, &b.words) {
                Some("phrase")
            } else {
                None
            };
            if let Some(how) = how {
                out.push(PolicyConflict {
                    id: p.id.clone(),
                    service: p.service.clone(),
                    blocked_action: blocked.clone(),
                    matched_as: action.id.clone(),
                    how: how.to_string(),
                    severity,
                    rule: p.rule.clone(),
                });
                break;
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out.dedup_by(|a, b| a.id == b.id);
    out
}
