//! The remediation governor's pure part: incidents, the action vocabulary, action-policy
//! matching, the stress arithmetic and the gate.
//!
//! The original governor asked a model for every number its gate compared (support and
//! contradiction counts, policy conflicts, the final position), so a crafted incident could
//! steer the gate by steering the model. Here the adapters (`guardrail-knowledge`,
//! `guardrail-governor`) only *retrieve*: documents with their recorded stance, the action
//! policies for a service, log counts. Everything that turns retrieval into a decision is in
//! this module, over typed values:
//!
//! 1. [`Incident::from_json_value`] refuses anything that is not one of the five fields with
//!    the right type; [`Severity`] is a closed enum.
//! 2. [`normalise_action`] maps prose ("Restart the payments-api pods") and identifiers
//!    (`restart_api_pods`) onto one vocabulary, so [`policy_conflicts`] cannot be dodged by
//!    rewording (the original matched exact tokens and never fired on prose).
//! 3. [`assess_stress`] counts support and contradiction documents by their recorded stance
//!    and applies the original's confidence arithmetic (§2.5 of the reference note).
//! 4. [`gate`] applies the original's rules in its order, then Guardrail's: critical severity
//!    needs FORCE_OVERRIDE, and configurable rules over the deploy gate's [`Signals`] (reusing
//!    the policy language's [`Condition`] and its comparison) can require approval.
//!
//! Rules and thresholds come only from [`RemediationRules`], which only configuration builds;
//! no incident text, document text or model output is ever read as a rule.
//!
//! The contract structs ([`PlanOutput`], [`StressOutput`], [`GateOutput`]) serialise exactly to
//! the original's JSON schemas (`additionalProperties: false`), so Guardrail's own detail lives
//! in sibling structs ([`StressAssessment`], [`GateDecision`]), never inside a contract object.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::{
    self, Action, Condition, DefaultRule, Operator, Policy, PolicyIssue, PolicySet, Scalar, Threshold,
};
use crate::pyround::py_round;
use crate::signals::{SignalValue, Signals};

/// The position the original's stress phase takes on hard evidence.
pub const PAUSE_POSITION: &str = "pause_and_request_dba_approval";
/// The action proposed when no reviewed runbook covers the incident's service.
pub const FALLBACK_ACTION: &str = "investigate_and_escalate";
/// `execution_mode` of anything that is not executed.
pub const ESCALATE_TO_HUMAN: &str = "escalate_to_human";

// ---------------------------------------------------------------------------------------
// Severity and incidents.

/// Incident severity. A closed set: anything else is an error, never a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical: the gate blocks and requires FORCE_OVERRIDE (see [`RemediationRules`]).
    Critical,
}

impl Severity {
    /// Every severity, in increasing order.
    pub const ALL: [Severity; 4] = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];
    /// The accepted names, for error messages.
    pub const NAMES: &'static str = "low, medium, high, critical";

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a severity name: exactly `low`, `medium`, `high` or `critical`. Nothing else is
    /// accepted (no case folding, trimming, punctuation or synonyms), so `"CRITICAL!!"` or
    /// `"High"` is an error naming the field rather than a guess; the original compared
    /// `severity == "high"` in one place and lower-cased it in another, which disagreed.
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Severity::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown severity \"{s}\"; expected one of {}", Severity::NAMES))
        })
    }
}

/// An incident, as in the original's scenarios and `sample_data.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// Identifier, e.g. `inc-001`.
    pub id: String,
    /// The affected service, e.g. `payments-api`.
    pub service: String,
    /// Severity.
    pub severity: Severity,
    /// One line, as reported. Data only: it feeds retrieval queries, never a rule.
    pub summary: String,
    /// As reported. Data only.
    pub symptoms: String,
}

/// Why an incident was refused. `field` is the field path, e.g. `severity` or
/// `incidents[1].severity`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    /// The text is not JSON.
    #[error("incident is not valid JSON: {0}")]
    Syntax(String),
    /// The value is not an object.
    #[error("{path}: an incident must be a JSON object, found {found}")]
    NotAnObject {
        /// Where (empty for the top level).
        path: String,
        /// What was found instead.
        found: &'static str,
    },
    /// A field is missing or wrong.
    #[error("incident field `{field}`: {message}")]
    Field {
        /// Field path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl IncidentError {
    /// The field path the error is about, if it is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            IncidentError::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Longest accepted summary or symptoms text, in characters. Bounds retrieval cost; a real
/// report is a few lines.
pub const MAX_INCIDENT_TEXT: usize = 8192;

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn join_path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() { field.to_string() } else { format!("{prefix}.{field}") }
}

/// True for a service name Guardrail accepts: 1–128 characters from `A–Z a–z 0–9 - _ . : /`.
/// In particular `*` (the policies' wildcard) is not a service.
pub fn valid_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= 128
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
}

impl Incident {
    /// Parses an incident object. Unknown extra fields are ignored (scenario files may carry
    /// notes); the five fields are required with the right type.
    pub fn from_json_value(v: &Value) -> Result<Incident, IncidentError> {
        Incident::from_json_value_at(v, "")
    }

    /// As [`Incident::from_json_value`], with field paths prefixed by `path` (e.g. `incidents[1]`).
    pub fn from_json_value_at(v: &Value, path: &str) -> Result<Incident, IncidentError> {
        let Value::Object(map) = v else {
            let path = if path.is_empty() { "(top level)".to_string() } else { path.to_string() };
            return Err(IncidentError::NotAnObject { path, found: json_kind(v) });
        };
        let text = |name: &str| -> Result<String, IncidentError> {
            let field = join_path(path, name);
            match map.get(name) {
                None => Err(IncidentError::Field { field, message: "is missing".into() }),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(IncidentError::Field {
                    field,
                    message: format!("must be a string, found {}", json_kind(other)),
                }),
            }
        };
        let id = text("id")?;
        if id.trim().is_empty() || id.chars().any(char::is_control) {
            return Err(IncidentError::Field {
                field: join_path(path, "id"),
                message: "must be non-empty and without control characters".into(),
            });
        }
        let service = text("service")?;
        if !valid_service_name(&service) {
            return Err(IncidentError::Field {
                field: join_path(path, "service"),
                message: format!("\"{service}\" is not a service name (1–128 characters from A–Z a–z 0–9 - _ . : /)"),
            });
        }
        let severity_text = text("severity")?;
        let severity = Severity::parse(&severity_text).ok_or_else(|| IncidentError::Field {
            field: join_path(path, "severity"),
            message: format!("\"{severity_text}\" is not a severity; expected one of {}", Severity::NAMES),
        })?;
        let summary = text("summary")?;
        let symptoms = text("symptoms")?;
        for (name, value) in [("summary", &summary), ("symptoms", &symptoms)] {
            if value.chars().count() > MAX_INCIDENT_TEXT {
                return Err(IncidentError::Field {
                    field: join_path(path, name),
                    message: format!("is longer than {MAX_INCIDENT_TEXT} characters"),
                });
            }
        }
        Ok(Incident { id, service, severity, summary, symptoms })
    }

    /// Parses incident JSON text.
    pub fn from_json_str(text: &str) -> Result<Incident, IncidentError> {
        let v: Value = serde_json::from_str(text).map_err(|e| IncidentError::Syntax(e.to_string()))?;
        Incident::from_json_value(&v)
    }
}

// ---------------------------------------------------------------------------------------
// Action vocabulary.

/// The actions the sample runbooks and the original pipeline name. Each is a set of required
/// word groups plus words that may accompany them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanonicalAction {
    /// Restart (bounce, recycle) the service's pods.
    RestartApiPods,
    /// Throttle traffic and tune the connection pool.
    ThrottleTrafficAndTunePool,
    /// Scale the worker pool.
    ScaleWorkerPool,
    /// Investigate and escalate to a human (the fallback).
    InvestigateAndEscalate,
    /// Pause and ask a DBA to approve (the original's hard-evidence position).
    PauseAndRequestDbaApproval,
}

/// A broad class of action, for rules such as "a restart while the budget burns needs approval".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionClass {
    /// Restarts pods or processes.
    Restart,
    /// Changes capacity.
    Scale,
    /// Sheds or limits traffic, tunes pools.
    Throttle,
    /// Hands over to a human.
    Escalate,
    /// Stops and waits for approval.
    Pause,
    /// Not in the vocabulary: nothing is known about what it does.
    Unknown,
}

impl ActionClass {
    /// Every class.
    pub const ALL: [ActionClass; 6] = [
        ActionClass::Restart,
        ActionClass::Scale,
        ActionClass::Throttle,
        ActionClass::Escalate,
        ActionClass::Pause,
        ActionClass::Unknown,
    ];

    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionClass::Restart => "restart",
            ActionClass::Scale => "scale",
            ActionClass::Throttle => "throttle",
            ActionClass::Escalate => "escalate",
            ActionClass::Pause => "pause",
            ActionClass::Unknown => "unknown",
        }
    }

    /// Parses a class name (exact, lower case).
    pub fn parse(s: &str) -> Option<ActionClass> {
        ActionClass::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

const RESTART: &[&str] = &[
    "restart",
    "restarts",
    "restarted",
    "restarting",
    "reboot",
    "reboots",
    "rebooted",
    "rebooting",
    "bounce",
    "bounced",
    "bouncing",
    "recycle",
    "recycled",
    "recycling",
];
const PODS: &[&str] = &[
    "pod",
    "pods",
    "api",
    "apis",
    "container",
    "containers",
    "replica",
    "replicas",
    "instance",
    "instances",
    "deployment",
    "deployments",
];
const THROTTLE: &[&str] =
    &["throttle", "throttles", "throttled", "throttling", "ratelimit", "ratelimiting", "shed", "shedding"];
const TUNE: &[&str] = &[
    "tune",
    "tunes",
    "tuned",
    "tuning",
    "retune",
    "adjust",
    "adjusted",
    "adjusting",
    "resize",
    "resizing",
    "reconfigure",
];
const POOL: &[&str] = &["pool", "pools", "pooling", "connection", "connections"];
const SCALE: &[&str] = &["scale", "scales", "scaled", "scaling", "upscale", "autoscale"];
const WORKERS: &[&str] = &["worker", "workers"];
const INVESTIGATE: &[&str] = &["investigate", "investigating", "investigation", "diagnose", "triage"];
const ESCALATE: &[&str] = &["escalate", "escalating", "escalation", "page"];
const PAUSE: &[&str] = &["pause", "pausing", "paused", "hold", "halt", "freeze"];
const APPROVAL: &[&str] = &["approval", "approvals", "approve", "signoff"];

/// Words that carry no action meaning and may appear anywhere.
const FILLER: &[&str] = &[
    "the",
    "a",
    "an",
    "all",
    "any",
    "of",
    "for",
    "on",
    "in",
    "to",
    "and",
    "then",
    "with",
    "its",
    "their",
    "our",
    "it",
    "them",
    "now",
    "immediately",
    "please",
    "up",
    "out",
    "service",
    "services",
];

struct ActionSpec {
    action: CanonicalAction,
    id: &'static str,
    class: ActionClass,
    /// Every group must contribute at least one word.
    required: &'static [&'static [&'static str]],
    /// Further words that may appear without changing the meaning.
    allowed: &'static [&'static str],
}

const SPECS: &[ActionSpec] = &[
    ActionSpec {
        action: CanonicalAction::RestartApiPods,
        id: "restart_api_pods",
        class: ActionClass::Restart,
        required: &[RESTART, PODS],
        allowed: &["rollout", "rolling"],
    },
    ActionSpec {
        action: CanonicalAction::ThrottleTrafficAndTunePool,
        id: "throttle_traffic_and_tune_pool",
        class: ActionClass::Throttle,
        required: &[THROTTLE, TUNE, POOL],
        allowed: &["traffic", "requests", "request", "inbound", "ingress", "settings", "size", "db", "database"],
    },
    ActionSpec {
        action: CanonicalAction::ScaleWorkerPool,
        id: "scale_worker_pool",
        class: ActionClass::Scale,
        required: &[SCALE, WORKERS],
        allowed: &["pool", "pools"],
    },
    ActionSpec {
        action: CanonicalAction::InvestigateAndEscalate,
        id: "investigate_and_escalate",
        class: ActionClass::Escalate,
        required: &[INVESTIGATE, ESCALATE],
        allowed: &["human", "humans", "oncall", "engineer"],
    },
    ActionSpec {
        action: CanonicalAction::PauseAndRequestDbaApproval,
        id: "pause_and_request_dba_approval",
        class: ActionClass::Pause,
        required: &[PAUSE, APPROVAL],
        allowed: &["request", "requesting", "dba", "dbas", "ask", "seek", "from"],
    },
];

impl CanonicalAction {
    /// Every canonical action.
    pub const ALL: [CanonicalAction; 5] = [
        CanonicalAction::RestartApiPods,
        CanonicalAction::ThrottleTrafficAndTunePool,
        CanonicalAction::ScaleWorkerPool,
        CanonicalAction::InvestigateAndEscalate,
        CanonicalAction::PauseAndRequestDbaApproval,
    ];

    fn spec(self) -> &'static ActionSpec {
        // SPECS lists every variant; the fallback is unreachable but keeps this total.
        SPECS.iter().find(|s| s.action == self).unwrap_or(&SPECS[0])
    }

    /// The identifier, e.g. `restart_api_pods`.
    pub fn id(self) -> &'static str {
        self.spec().id
    }

    /// Its class.
    pub fn class(self) -> ActionClass {
        self.spec().class
    }
}

/// An action after normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NormalisedAction {
    /// The canonical identifier when the text names exactly one canonical action; otherwise
    /// the text in snake_case (which, by construction, is never a canonical identifier).
    pub id: String,
    /// The canonical action the whole text names, if any.
    pub canonical: Option<CanonicalAction>,
    /// Every canonical action whose required words all occur in the text, even alongside other
    /// words ("restart pods and drop the database" mentions `restart_api_pods`). Policy
    /// matching uses this, so a blocked action cannot be hidden inside a longer instruction.
    pub mentions: Vec<CanonicalAction>,
    /// The words that carry meaning (filler removed), lower case, in order.
    pub words: Vec<String>,
}

impl NormalisedAction {
    /// The classes this action belongs to: those of every mentioned canonical action, plus
    /// `unknown` when the text is not exactly one canonical action.
    pub fn classes(&self) -> Vec<ActionClass> {
        let mut out: Vec<ActionClass> = self.mentions.iter().map(|a| a.class()).collect();
        if self.canonical.is_none() {
            out.push(ActionClass::Unknown);
        }
        out.sort();
        out.dedup();
        out
    }
}

fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect()
}

/// Lower-case snake_case: every run of characters that are not letters or digits becomes one
/// `_`, with none at either end. `"Restart the payments-api pods!"` → `restart_the_payments_api_pods`.
pub fn snake_case(text: &str) -> String {
    words_of(text).join("_")
}

/// Maps an action, prose or identifier, onto the vocabulary.
///
/// `service` (the incident's, or the policy's when it is not `*`) lets its own words qualify
/// the action: for `payments-api`, "Restart the payments-api pods" is exactly
/// `restart_api_pods`. Without it the same text still *mentions* `restart_api_pods`.
pub fn normalise_action(text: &str, service: Option<&str>) -> NormalisedAction {
    let all = words_of(text);
    let service_words: Vec<String> = service.map(words_of).unwrap_or_default();
    let words: Vec<String> = all.into_iter().filter(|w| !FILLER.contains(&w.as_str())).collect();
    let has = |group: &[&str]| words.iter().any(|w| group.contains(&w.as_str()));
    let mut mentions = Vec::new();
    let mut exact = Vec::new();
    for spec in SPECS {
        if !spec.required.iter().all(|g| has(g)) {
            continue;
        }
        mentions.push(spec.action);
        let explained = words.iter().all(|w| {
            let w = w.as_str();
            spec.required.iter().any(|g| g.contains(&w))
                || spec.allowed.contains(&w)
                || service_words.iter().any(|s| s == w)
        });
        if explained {
            exact.push(spec.action);
        }
    }
    mentions.sort();
    // Two exact readings would be an ambiguity in the vocabulary; refuse to pick one.
    let canonical = if exact.len() == 1 { Some(exact[0]) } else { None };
    let id = match canonical {
        Some(a) => a.id().to_string(),
        None => {
            let s = snake_case(text);
            // A text whose snake_case is a canonical id but which did not normalise to it
            // cannot exist (its words are exactly that action's words); keep the guarantee
            // explicit anyway so unknown prose never aliases a known action.
            if CanonicalAction::ALL.iter().any(|a| a.id() == s) { format!("unrecognised_{s}") } else { s }
        }
    };
    NormalisedAction { id, canonical, mentions, words }
}

// ---------------------------------------------------------------------------------------
// Action policies.

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

// ---------------------------------------------------------------------------------------
// Contracts (serialise exactly to contracts/*.schema.json).

/// `plan_output.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanOutput {
    /// Incident id.
    pub incident_id: String,
    /// The action, normalised.
    pub proposed_action: String,
    /// Why, in words.
    pub rationale: String,
    /// What the action relies on; at least one.
    pub key_claims: Vec<String>,
    /// 0–10.
    pub confidence_initial: f64,
    /// Ids of the runbooks retrieved.
    pub retrieved_context_ids: Vec<String>,
}

/// One claim's evidence in `stress_output.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimEvidence {
    /// The claim.
    pub claim: String,
    /// Supporting document ids.
    pub support_docs: Vec<String>,
    /// Verified contradicting document ids.
    pub contradiction_docs: Vec<String>,
}

/// `stress_output.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StressOutput {
    /// Incident id.
    pub incident_id: String,
    /// One entry per plan claim, in order.
    pub claim_evidence: Vec<ClaimEvidence>,
    /// Verified contradicting documents, counted per claim (the first commit's count).
    pub contradiction_count: u32,
    /// Ids of the conflicting action policies.
    pub policy_conflicts: Vec<String>,
    /// Always true: no model takes part in Guardrail's stress phase, so no fabricated
    /// authority can be accepted.
    pub fabricated_authority_rejected: bool,
    /// 0–10.
    pub confidence_post_stress: f64,
    /// The plan's action, or [`PAUSE_POSITION`] on hard evidence.
    pub position_after_stress: String,
    /// Share of claims with at least one document, 0–1.
    pub integration_quality: f64,
}

/// The gate's two outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Go ahead automatically.
    Execute,
    /// Do not act automatically; a human decides.
    BlockAndEscalate,
}

impl Verdict {
    /// As in the contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Execute => "execute",
            Verdict::BlockAndEscalate => "block_and_escalate",
        }
    }
}

/// `gate_output.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateOutput {
    /// Incident id.
    pub incident_id: String,
    /// The plan's action.
    pub initial_position: String,
    /// The stress phase's position.
    pub final_position: String,
    /// 0–10.
    pub confidence_initial: f64,
    /// 0–10.
    pub confidence_final: f64,
    /// Initial minus final, 0–10, two decimals.
    pub confidence_delta: f64,
    /// 1 when the position changed or confidence fell by at least `act_delta`.
    pub act: u8,
    /// Integration quality (= evidence coverage).
    pub iii: f64,
    /// 0 when the position changed, else 0.7.
    pub ri: f64,
    /// 0.2 when the plan's output contract holds, else 0.6.
    pub per: f64,
    /// `act × iii × (1 − ri) × (1 − per)`, four decimals.
    pub adaptability_score: f64,
    /// The decision.
    pub decision: Verdict,
    /// Why, in order.
    pub reasons: Vec<String>,
}

fn range_violation(out: &mut Vec<String>, name: &str, v: f64, lo: f64, hi: f64) {
    if !(v.is_finite() && (lo..=hi).contains(&v)) {
        out.push(format!("{name} {v} is outside [{lo}, {hi}]"));
    }
}

impl PlanOutput {
    /// Violations of the contract that the types do not already rule out (ranges, sizes).
    pub fn contract_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.key_claims.is_empty() {
            out.push("key_claims is empty (the contract needs at least one)".into());
        }
        range_violation(&mut out, "confidence_initial", self.confidence_initial, 0.0, 10.0);
        out
    }
}

impl StressOutput {
    /// Violations of the contract that the types do not already rule out.
    pub fn contract_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        range_violation(&mut out, "confidence_post_stress", self.confidence_post_stress, 0.0, 10.0);
        range_violation(&mut out, "integration_quality", self.integration_quality, 0.0, 1.0);
        out
    }
}

// ---------------------------------------------------------------------------------------
// Rules.

/// What a deploy-signal rule demands when it fires. Either way the decision is
/// `block_and_escalate`; the difference is what a human must say to release it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleEffect {
    /// An ordinary approval releases it.
    RequireApproval,
    /// Only FORCE_OVERRIDE releases it.
    RequireForceOverride,
}

/// A rule over the deploy gate's signals, scoped to classes of action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalRule {
    /// Unique id, e.g. `burn-critical-restart-scale`.
    pub id: String,
    /// Why, for people; becomes the reason when the rule fires.
    pub description: String,
    /// ANDed conditions in the policy language (signal names from [`crate::signals::CATALOGUE`]).
    pub when: Vec<Condition>,
    /// The rule applies when the action is in one of these classes; empty means any action.
    pub action_classes: Vec<ActionClass>,
    /// What it demands.
    pub effect: RuleEffect,
}

/// Every rule and threshold the stress arithmetic and the gate use. Built by configuration
/// only; [`Default`] is the original governor's values plus one deploy-signal rule (burn rate
/// critical and a restart or scale action ⇒ approval), which cannot fire without deploy
/// signals, so the original's results are unchanged. [`RemediationRules::original`] has no
/// signal rules at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemediationRules {
    /// Block when this many verified contradictions (or more) were found. Original: 2.
    pub block_at_contradictions: u32,
    /// Block when coverage is below this and there is no supporting document. Original: 0.34.
    pub min_evidence_coverage: f64,
    /// Critical severity blocks and requires FORCE_OVERRIDE. The original's README promised
    /// this, only its demo implemented it.
    pub critical_requires_force_override: bool,
    /// Confidence lost per verified contradiction. Original: 0.9.
    pub contradiction_penalty: f64,
    /// Further confidence lost on hard evidence. Original: 1.5.
    pub hard_evidence_penalty: f64,
    /// Confidence never falls below this. Original: 1.0.
    pub confidence_floor: f64,
    /// `act` is 1 when confidence fell by at least this. Original: 2.0.
    pub act_delta: f64,
    /// Planner/verifier disagreement when confidence fell by at least this. Original: 1.0.
    pub disagreement_delta: f64,
    /// Rules over deploy signals, in order.
    pub signal_rules: Vec<SignalRule>,
    /// When true, a missing deploy-signal snapshot blocks (fail-closed); when false the signal
    /// rules are skipped and the decision notes it.
    pub require_deploy_signals: bool,
}

impl RemediationRules {
    /// The original governor's thresholds and no signal rules.
    pub fn original() -> RemediationRules {
        RemediationRules {
            block_at_contradictions: 2,
            min_evidence_coverage: 0.34,
            critical_requires_force_override: true,
            contradiction_penalty: 0.9,
            hard_evidence_penalty: 1.5,
            confidence_floor: 1.0,
            act_delta: 2.0,
            disagreement_delta: 1.0,
            signal_rules: Vec::new(),
            require_deploy_signals: false,
        }
    }

    /// The default signal rule: burn rate critical and a restart or scale action ⇒ approval.
    pub fn burn_rate_rule() -> SignalRule {
        SignalRule {
            id: "burn-critical-restart-scale".into(),
            description: "The error budget is burning at a critical rate: restarts and scaling need human approval"
                .into(),
            when: vec![Condition {
                signal: "burn_rate".into(),
                operator: Operator::Eq,
                value: Threshold::Scalar(Scalar::Text("critical".into())),
            }],
            action_classes: vec![ActionClass::Restart, ActionClass::Scale],
            effect: RuleEffect::RequireApproval,
        }
    }
}

impl Default for RemediationRules {
    fn default() -> Self {
        RemediationRules { signal_rules: vec![RemediationRules::burn_rate_rule()], ..RemediationRules::original() }
    }
}

/// Validates a rule set: finite, in-range thresholds; unique, non-empty signal-rule ids; every
/// condition valid in the policy language. Paths look like `signal_rules[0].when.burn_rate`.
pub fn check_rules(rules: &RemediationRules) -> Vec<PolicyIssue> {
    let mut out = Vec::new();
    let mut number = |name: &str, v: f64, lo: f64, hi: f64| {
        if !(v.is_finite() && (lo..=hi).contains(&v)) {
            out.push(PolicyIssue::error(name, format!("{v} is outside [{lo}, {hi}]")));
        }
    };
    number("min_evidence_coverage", rules.min_evidence_coverage, 0.0, 1.0);
    number("contradiction_penalty", rules.contradiction_penalty, 0.0, 10.0);
    number("hard_evidence_penalty", rules.hard_evidence_penalty, 0.0, 10.0);
    number("confidence_floor", rules.confidence_floor, 0.0, 10.0);
    number("act_delta", rules.act_delta, 0.0, 10.0);
    number("disagreement_delta", rules.disagreement_delta, 0.0, 10.0);
    if rules.block_at_contradictions == 0 {
        out.push(PolicyIssue::error(
            "block_at_contradictions",
            "0 would block every incident, with or without contradictions; use 1 or more",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in rules.signal_rules.iter().enumerate() {
        let path = format!("signal_rules[{i}]");
        if r.id.trim().is_empty() {
            out.push(PolicyIssue::error(format!("{path}.id"), "id is empty"));
        } else if !seen.insert(r.id.as_str()) {
            out.push(PolicyIssue::error(format!("{path}.id"), format!("duplicate id \"{}\"", r.id)));
        }
        if r.when.is_empty() {
            out.push(PolicyIssue::warning(
                format!("{path}.when"),
                "no conditions: the rule fires for every matching action whenever deploy signals are given",
            ));
        }
        for c in &r.when {
            for issue in policy::check_condition(0, c) {
                // check_condition speaks of policies[0].conditions.X; re-root the path here.
                let suffix = issue.path.strip_prefix("policies[0].conditions").unwrap_or(&issue.path);
                out.push(PolicyIssue {
                    severity: issue.severity,
                    path: format!("{path}.when{suffix}"),
                    message: issue.message,
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Stress arithmetic.

/// A document's recorded stance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stance {
    /// The document supports the claim's action.
    Support,
    /// The document contradicts it.
    Contradict,
}

impl Stance {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Stance::Support => "support",
            Stance::Contradict => "contradict",
        }
    }

    /// Parses `support` or `contradict` exactly.
    pub fn parse(s: &str) -> Option<Stance> {
        match s {
            "support" => Some(Stance::Support),
            "contradict" => Some(Stance::Contradict),
            _ => None,
        }
    }
}

/// A retrieved evidence document, as far as the arithmetic needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    /// Document id.
    pub id: String,
    /// The document's service (`*` for any).
    pub service: String,
    /// Its recorded stance.
    pub stance: Stance,
}

/// What retrieval found for one claim: the hits of the support-oriented search and of the
/// contradiction-oriented search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRetrieval {
    /// The claim (must equal the plan's claim at the same index).
    pub claim: String,
    /// Hits of the support search.
    pub support_hits: Vec<EvidenceRef>,
    /// Hits of the contradiction search.
    pub contradiction_hits: Vec<EvidenceRef>,
}

/// Guardrail's detail next to the stress contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StressAssessment {
    /// The contract object.
    pub output: StressOutput,
    /// Policy conflicts with what matched.
    pub policy_conflicts: Vec<PolicyConflict>,
    /// Supporting documents counted per claim.
    pub support_count: u32,
    /// Distinct supporting documents.
    pub distinct_support_docs: Vec<String>,
    /// Distinct verified contradicting documents.
    pub distinct_contradiction_docs: Vec<String>,
    /// Policy conflicts or at least `block_at_contradictions` contradictions.
    pub hard_evidence: bool,
    /// Confidence lost to contradictions.
    pub contradiction_penalty: f64,
    /// How the post-stress confidence was reached, in words.
    pub confidence_rule: String,
    /// Hits dropped because their stance or service did not fit the search they came from.
    pub ignored_hits: Vec<String>,
}

/// Why the stress arithmetic could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StressError {
    /// The retrievals do not line up with the plan's claims.
    #[error("retrieval for claim {index} does not match the plan: {message}")]
    Misaligned {
        /// Claim index.
        index: usize,
        /// Details.
        message: String,
    },
    /// The plan violates its contract.
    #[error("the plan violates its contract: {0}")]
    InvalidPlan(String),
}

/// The stress phase's arithmetic over retrieval results (reference note §2.5 and §2.12).
///
/// Support documents are the support-search hits whose recorded stance is `support`;
/// verified contradictions are the contradiction-search hits whose recorded stance is
/// `contradict`. A hit for another service (other than `*`) is ignored, whatever the
/// retrieval layer did. Counts are per claim, as in the first commit (one document retrieved
/// for two claims counts twice), which is the conservative reading.
pub fn assess_stress(
    incident: &Incident,
    plan: &PlanOutput,
    retrievals: &[ClaimRetrieval],
    conflicts: &[PolicyConflict],
    rules: &RemediationRules,
) -> Result<StressAssessment, StressError> {
    let violations = plan.contract_violations();
    if !violations.is_empty() {
        return Err(StressError::InvalidPlan(violations.join("; ")));
    }
    if retrievals.len() != plan.key_claims.len() {
        return Err(StressError::Misaligned {
            index: retrievals.len().min(plan.key_claims.len()),
            message: format!("{} retrievals for {} claims", retrievals.len(), plan.key_claims.len()),
        });
    }
    let service_ok = |e: &EvidenceRef| e.service == incident.service || e.service == "*";
    let mut claim_evidence = Vec::with_capacity(retrievals.len());
    let mut ignored = Vec::new();
    let mut support_count: u32 = 0;
    let mut contradiction_count: u32 = 0;
    let mut covered = 0usize;
    let mut distinct_support: Vec<String> = Vec::new();
    let mut distinct_contra: Vec<String> = Vec::new();
    for (i, (r, claim)) in retrievals.iter().zip(&plan.key_claims).enumerate() {
        if &r.claim != claim {
            return Err(StressError::Misaligned { index: i, message: format!("claim text differs: {:?}", r.claim) });
        }
        let mut support_docs = Vec::new();
        for h in &r.support_hits {
            if h.stance == Stance::Support && service_ok(h) {
                if !support_docs.contains(&h.id) {
                    support_docs.push(h.id.clone());
                }
            } else {
                ignored.push(format!(
                    "claim {i}: {} ({}, {}) in the support search",
                    h.id,
                    h.stance.as_str(),
                    h.service
                ));
            }
        }
        let mut contradiction_docs = Vec::new();
        for h in &r.contradiction_hits {
            if h.stance == Stance::Contradict && service_ok(h) {
                if !contradiction_docs.contains(&h.id) {
                    contradiction_docs.push(h.id.clone());
                }
            } else {
                ignored.push(format!(
                    "claim {i}: {} ({}, {}) in the contradiction search",
                    h.id,
                    h.stance.as_str(),
                    h.service
                ));
            }
        }
        if !support_docs.is_empty() || !contradiction_docs.is_empty() {
            covered += 1;
        }
        support_count += support_docs.len() as u32;
        contradiction_count += contradiction_docs.len() as u32;
        for d in &support_docs {
            if !distinct_support.contains(d) {
                distinct_support.push(d.clone());
            }
        }
        for d in &contradiction_docs {
            if !distinct_contra.contains(d) {
                distinct_contra.push(d.clone());
            }
        }
        claim_evidence.push(ClaimEvidence { claim: claim.clone(), support_docs, contradiction_docs });
    }
    distinct_support.sort();
    distinct_contra.sort();

    let initial = plan.confidence_initial;
    let penalty = rules.contradiction_penalty * f64::from(contradiction_count);
    let mut conf = (initial - penalty).max(rules.confidence_floor);
    let mut rule = format!(
        "{initial:.2} − {:.2}×{contradiction_count} contradictions = {:.2}, floor {:.2} → {conf:.2}",
        rules.contradiction_penalty,
        initial - penalty,
        rules.confidence_floor
    );
    let hard = !conflicts.is_empty() || contradiction_count >= rules.block_at_contradictions;
    let mut position = plan.proposed_action.clone();
    if hard {
        position = PAUSE_POSITION.to_string();
        conf = (conf - rules.hard_evidence_penalty).max(rules.confidence_floor);
        rule.push_str(&format!(
            "; hard evidence − {:.2}, floor {:.2} → {conf:.2}",
            rules.hard_evidence_penalty, rules.confidence_floor
        ));
    }
    // Stress can only lower confidence (the original let a verifier raise it, and a floor above
    // a low initial confidence would too, which gives the negative deltas its schema forbids).
    if conf > initial {
        conf = initial;
        rule.push_str(&format!("; capped at the initial {initial:.2}"));
    }
    let n = plan.key_claims.len().max(1);
    let integration_quality = (covered as f64 / n as f64).min(1.0);
    let output = StressOutput {
        incident_id: plan.incident_id.clone(),
        claim_evidence,
        contradiction_count,
        policy_conflicts: conflicts.iter().map(|c| c.id.clone()).collect(),
        fabricated_authority_rejected: true,
        confidence_post_stress: py_round(conf, 2),
        position_after_stress: position,
        integration_quality,
    };
    Ok(StressAssessment {
        output,
        policy_conflicts: conflicts.to_vec(),
        support_count,
        distinct_support_docs: distinct_support,
        distinct_contradiction_docs: distinct_contra,
        hard_evidence: hard,
        contradiction_penalty: penalty,
        confidence_rule: rule,
        ignored_hits: ignored,
    })
}

// ---------------------------------------------------------------------------------------
// The gate.

/// One compared value: `input operator threshold` with the actual value and the result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The rule it belongs to.
    pub rule: String,
    /// What was compared (a gate input or a deploy signal).
    pub input: String,
    /// Operator.
    pub operator: Operator,
    /// Threshold, from the rules.
    pub threshold: Threshold,
    /// The actual value.
    pub actual: SignalValue,
    /// Whether the comparison held.
    pub held: bool,
}

/// The gate's decision: the contract object plus everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateDecision {
    /// The contract object.
    pub output: GateOutput,
    /// The rule that decided: the first that fired, or `validated` for an execution.
    pub rule: String,
    /// Every rule that fired, in evaluation order.
    pub fired: Vec<String>,
    /// Every value compared, for every rule, fired or not.
    pub compared: Vec<Comparison>,
    /// A human must approve before anything runs (every block).
    pub requires_approval: bool,
    /// An ordinary approval is refused; only FORCE_OVERRIDE releases it.
    pub requires_force_override: bool,
    /// Position changed or confidence fell by at least `disagreement_delta`.
    pub disagreement_detected: bool,
    /// `accept_planner_action`, `execute_with_guardrails` or `escalate_for_human_approval`.
    pub arbiter_resolution: String,
    /// What would run: the final position when executing, else `escalate_to_human`.
    pub execution_mode: String,
    /// The action's classes (from the vocabulary), as used by the signal rules.
    pub action_classes: Vec<ActionClass>,
    /// Things worth knowing that decided nothing (e.g. signal rules skipped without signals).
    pub notes: Vec<String>,
}

fn num(v: f64) -> Threshold {
    Threshold::Scalar(Scalar::Number(v))
}

fn text(s: &str) -> Threshold {
    Threshold::Scalar(Scalar::Text(s.to_string()))
}

fn clamp_unit(v: f64, hi: f64) -> f64 {
    if v.is_finite() { v.clamp(0.0, hi) } else { 0.0 }
}

/// Rule ids the gate uses besides `signal:<id>` for signal rules.
pub mod rule_ids {
    /// Plan and stress are about different incidents, or violate their contracts.
    pub const INVALID_INPUTS: &str = "invalid_inputs";
    /// The rule set itself is invalid.
    pub const INVALID_RULES: &str = "invalid_rules";
    /// A conflicting action policy.
    pub const POLICY_CONFLICT: &str = "policy_conflict";
    /// Too many verified contradictions.
    pub const MULTIPLE_CONTRADICTIONS: &str = "multiple_contradictions";
    /// Too little evidence.
    pub const INSUFFICIENT_COVERAGE: &str = "insufficient_coverage";
    /// Critical severity.
    pub const CRITICAL_SEVERITY: &str = "critical_severity";
    /// A fabricated authority was not rejected.
    pub const FABRICATION_NOT_REJECTED: &str = "fabrication_not_rejected";
    /// Deploy signals were required and not given.
    pub const DEPLOY_SIGNALS_MISSING: &str = "deploy_signals_missing";
    /// The final position is not the action that was checked.
    pub const POSITION_CHANGED: &str = "position_changed";
    /// The plan is itself an escalation (investigate and escalate, pause for approval).
    pub const ESCALATION_ONLY: &str = "escalation_only";
    /// Nothing fired.
    pub const VALIDATED: &str = "validated";
}

/// The gate (reference note §2.7, plus Guardrail's rules). Pure and total: it always decides,
/// and anything it cannot vouch for blocks.
///
/// Order: inputs sane → policy conflicts → contradictions ≥ `block_at_contradictions` →
/// coverage < `min_evidence_coverage` with no support → critical severity (FORCE_OVERRIDE) →
/// fabricated authority not rejected → deploy-signal rules → a final position that differs
/// from the checked action → a plan that is itself an escalation. Reasons accumulate in that
/// order, as in the original (the last two only when nothing else fired); `rule` names the
/// first that fired.
pub fn gate(
    plan: &PlanOutput,
    stress: &StressOutput,
    incident_severity: Severity,
    deploy_signals: Option<&Signals>,
    rules: &RemediationRules,
) -> GateDecision {
    use rule_ids::*;
    let mut compared: Vec<Comparison> = Vec::new();
    let mut fired: Vec<String> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut force_override = false;
    let mut cmp = |rule: &str, input: &str, operator: Operator, threshold: Threshold, actual: SignalValue, held| {
        compared.push(Comparison { rule: rule.into(), input: input.into(), operator, threshold, actual, held });
        held
    };

    // 0. Inputs and rules we can vouch for.
    let mut invalid: Vec<String> = plan.contract_violations();
    invalid.extend(stress.contract_violations());
    if plan.incident_id != stress.incident_id {
        invalid.push(format!("plan is for {} but stress is for {}", plan.incident_id, stress.incident_id));
    }
    if stress.claim_evidence.len() != plan.key_claims.len() {
        invalid.push(format!(
            "stress has {} claim entries for {} plan claims",
            stress.claim_evidence.len(),
            plan.key_claims.len()
        ));
    }
    let listed: usize = stress.claim_evidence.iter().map(|c| c.contradiction_docs.len()).sum();
    if listed != stress.contradiction_count as usize {
        invalid.push(format!(
            "contradiction_count {} disagrees with the {listed} contradicting documents listed",
            stress.contradiction_count
        ));
    }
    if !invalid.is_empty() {
        fired.push(INVALID_INPUTS.into());
        reasons.push(format!("Gate inputs are invalid: {}", invalid.join("; ")));
    }
    let rule_errors: Vec<String> = check_rules(rules)
        .into_iter()
        .filter(|i| i.severity == policy::Severity::Error)
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect();
    if !rule_errors.is_empty() {
        fired.push(INVALID_RULES.into());
        reasons.push(format!("Remediation rules are invalid: {}", rule_errors.join("; ")));
    }

    // The original's derived values (§2.7 step 1–3).
    let raw_delta = plan.confidence_initial - stress.confidence_post_stress;
    let position_changed = plan.proposed_action != stress.position_after_stress;
    let act: u8 = u8::from(position_changed || raw_delta >= rules.act_delta);
    let iii = stress.integration_quality;
    let ri = if position_changed { 0.0 } else { 0.7 };
    let contract_valid = !plan.proposed_action.is_empty() && plan.confidence_initial >= 0.0;
    let per = if contract_valid { 0.2 } else { 0.6 };
    let total_support: usize = stress.claim_evidence.iter().map(|c| c.support_docs.len()).sum();
    let disagreement = position_changed || raw_delta >= rules.disagreement_delta;

    // 1. Policy conflicts.
    let n_conflicts = stress.policy_conflicts.len();
    if cmp(
        POLICY_CONFLICT,
        "policy_conflicts",
        Operator::Gt,
        num(0.0),
        SignalValue::Number(n_conflicts as f64),
        n_conflicts > 0,
    ) {
        fired.push(POLICY_CONFLICT.into());
        reasons.push(format!("Policy conflict: {}", stress.policy_conflicts.join(", ")));
    }
    // 2. Contradictions.
    let c = stress.contradiction_count;
    if cmp(
        MULTIPLE_CONTRADICTIONS,
        "contradiction_count",
        Operator::Gte,
        num(f64::from(rules.block_at_contradictions)),
        SignalValue::Number(f64::from(c)),
        c >= rules.block_at_contradictions,
    ) {
        fired.push(MULTIPLE_CONTRADICTIONS.into());
        reasons.push("Multiple technical contradictions".into());
    }
    // 3. Coverage (both comparisons recorded; the rule is their AND).
    let low = cmp(
        INSUFFICIENT_COVERAGE,
        "evidence_coverage",
        Operator::Lt,
        num(rules.min_evidence_coverage),
        SignalValue::Number(iii),
        // NaN coverage is not "enough coverage".
        iii.is_nan() || iii < rules.min_evidence_coverage,
    );
    let none = cmp(
        INSUFFICIENT_COVERAGE,
        "total_support",
        Operator::Eq,
        num(0.0),
        SignalValue::Number(total_support as f64),
        total_support == 0,
    );
    if low && none {
        fired.push(INSUFFICIENT_COVERAGE.into());
        reasons.push("Insufficient evidence coverage for safe auto-remediation".into());
    }
    // 4. Critical severity.
    if rules.critical_requires_force_override
        && cmp(
            CRITICAL_SEVERITY,
            "severity",
            Operator::Eq,
            text("critical"),
            SignalValue::Text(incident_severity.as_str().into()),
            incident_severity == Severity::Critical,
        )
    {
        fired.push(CRITICAL_SEVERITY.into());
        force_override = true;
        reasons.push("Critical severity: remediation requires FORCE_OVERRIDE by a human".into());
    }
    // 5. Fabricated authority (the original only added a reason; Guardrail blocks).
    if cmp(
        FABRICATION_NOT_REJECTED,
        "fabricated_authority_rejected",
        Operator::Eq,
        Threshold::Scalar(Scalar::Bool(false)),
        SignalValue::Bool(stress.fabricated_authority_rejected),
        !stress.fabricated_authority_rejected,
    ) {
        fired.push(FABRICATION_NOT_REJECTED.into());
        reasons.push("Fabricated authority was not rejected".into());
    }
    // 6. Deploy-signal rules.
    let action = normalise_action(&plan.proposed_action, None);
    let classes = action.classes();
    let class_actual = SignalValue::Text(classes.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","));
    let mut signals_missing_noted = false;
    for r in &rules.signal_rules {
        let rule = format!("signal:{}", r.id);
        let applies = r.action_classes.is_empty() || r.action_classes.iter().any(|c| classes.contains(c));
        let wanted = Threshold::List(r.action_classes.iter().map(|c| Scalar::Text(c.as_str().into())).collect());
        if !r.action_classes.is_empty() {
            cmp(&rule, "action_class", Operator::In, wanted, class_actual.clone(), applies);
        }
        if !applies {
            continue;
        }
        let Some(signals) = deploy_signals else {
            if rules.require_deploy_signals {
                if !signals_missing_noted {
                    fired.push(DEPLOY_SIGNALS_MISSING.into());
                    reasons.push("Deploy signals are required by the rules but were not given".into());
                    signals_missing_noted = true;
                }
            } else {
                notes.push(format!("signal rule {} not evaluated: no deploy signals were given", r.id));
            }
            continue;
        };
        let set = PolicySet {
            version: None,
            description: None,
            policies: vec![Policy {
                id: r.id.clone(),
                name: r.description.clone(),
                priority: 0,
                action: Action::Block,
                conditions: r.when.clone(),
                reason: r.description.clone(),
                remediation: String::new(),
                delay_minutes: 0,
            }],
            default_action: Some(DefaultRule {
                action: Action::Allow,
                reason: String::new(),
                remediation: String::new(),
                delay_minutes: 0,
            }),
        };
        let (matched, outcomes, failure) = match policy::evaluate(&set, signals) {
            Ok(d) => {
                let outcomes = d.trace.first().map(|t| t.conditions.clone()).unwrap_or_default();
                (d.action == Action::Block, outcomes, None)
            }
            // A signal the rule needs is unavailable, or the rule is invalid: fail closed.
            Err(e) => (true, Vec::new(), Some(e.to_string())),
        };
        for o in outcomes {
            cmp(&rule, &o.signal, o.operator, o.threshold, o.actual, o.result);
        }
        if matched {
            fired.push(rule.clone());
            if r.effect == RuleEffect::RequireForceOverride {
                force_override = true;
            }
            match failure {
                None => reasons.push(format!("{} (rule {})", r.description, r.id)),
                Some(why) => reasons.push(format!("Rule {} could not be evaluated ({why}); failing closed", r.id)),
            }
        }
    }
    // 7. What executes must be what was checked (the original executed the verifier's string).
    let blocked_so_far = !fired.is_empty();
    if cmp(
        POSITION_CHANGED,
        "final_position",
        Operator::Neq,
        text(&plan.proposed_action),
        SignalValue::Text(stress.position_after_stress.clone()),
        position_changed,
    ) && !blocked_so_far
    {
        fired.push(POSITION_CHANGED.into());
        reasons.push("Final position differs from the checked action; escalated to human".into());
    }
    // 8. A plan to escalate or pause has nothing to execute: it is a block by nature. Only
    // evidence found for such a plan (e.g. documents about the service that match its words)
    // could otherwise make it "execute".
    let escalation = matches!(
        action.canonical,
        Some(CanonicalAction::InvestigateAndEscalate | CanonicalAction::PauseAndRequestDbaApproval)
    );
    if cmp(
        ESCALATION_ONLY,
        "proposed_action",
        Operator::In,
        Threshold::List(vec![
            Scalar::Text(CanonicalAction::InvestigateAndEscalate.id().into()),
            Scalar::Text(CanonicalAction::PauseAndRequestDbaApproval.id().into()),
        ]),
        SignalValue::Text(action.id.clone()),
        escalation,
    ) && fired.is_empty()
    {
        fired.push(ESCALATION_ONLY.into());
        reasons.push("The plan is to escalate to a human; nothing is executed automatically".into());
    }

    let decision = if fired.is_empty() { Verdict::Execute } else { Verdict::BlockAndEscalate };
    // Arbiter (§2.7 step 9–10).
    let arbiter = match (disagreement, decision) {
        (true, Verdict::Execute) => {
            reasons.push("Planner/Verifier disagreement detected; executing with guardrails".into());
            "execute_with_guardrails"
        }
        (true, Verdict::BlockAndEscalate) => {
            reasons.push("Planner/Verifier disagreement detected; escalated to human".into());
            "escalate_for_human_approval"
        }
        (false, Verdict::BlockAndEscalate) => "escalate_for_human_approval",
        (false, Verdict::Execute) => "accept_planner_action",
    };
    if decision == Verdict::Execute && reasons.is_empty() {
        reasons.push("Validated against runbooks and live telemetry; safety threshold passed.".into());
    }
    let adaptability = f64::from(act) * iii * (1.0 - ri) * (1.0 - per);
    let output = GateOutput {
        incident_id: plan.incident_id.clone(),
        initial_position: plan.proposed_action.clone(),
        final_position: stress.position_after_stress.clone(),
        confidence_initial: clamp_unit(plan.confidence_initial, 10.0),
        confidence_final: clamp_unit(stress.confidence_post_stress, 10.0),
        confidence_delta: clamp_unit(py_round(raw_delta, 2), 10.0),
        act,
        iii: clamp_unit(iii, 1.0),
        ri,
        per,
        adaptability_score: clamp_unit(py_round(adaptability, 4), 1.0),
        decision,
        reasons,
    };
    let execution_mode = match decision {
        Verdict::Execute => stress.position_after_stress.clone(),
        Verdict::BlockAndEscalate => ESCALATE_TO_HUMAN.to_string(),
    };
    GateDecision {
        output,
        rule: fired.first().cloned().unwrap_or_else(|| VALIDATED.to_string()),
        fired,
        compared,
        requires_approval: decision == Verdict::BlockAndEscalate,
        requires_force_override: force_override && decision == Verdict::BlockAndEscalate,
        disagreement_detected: disagreement,
        arbiter_resolution: arbiter.to_string(),
        execution_mode,
        action_classes: classes,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(service: &str, severity: Severity) -> Incident {
        Incident { id: "inc-t".into(), service: service.into(), severity, summary: "s".into(), symptoms: "y".into() }
    }

    fn plan(action: &str, claims: &[&str]) -> PlanOutput {
        PlanOutput {
            incident_id: "inc-t".into(),
            proposed_action: action.into(),
            rationale: "r".into(),
            key_claims: claims.iter().map(|s| s.to_string()).collect(),
            confidence_initial: 5.0,
            retrieved_context_ids: vec![],
        }
    }

    fn ev(id: &str, service: &str, stance: Stance) -> EvidenceRef {
        EvidenceRef { id: id.into(), service: service.into(), stance }
    }

    fn sample_policies() -> Vec<ActionPolicy> {
        vec![
            ActionPolicy {
                id: "pol-approval-01".into(),
                service: "payments-api".into(),
                blocked_actions: vec!["restart_api_pods".into()],
                severities: vec![Severity::High],
                rule: "High severity production restart requires approval.".into(),
            },
            ActionPolicy {
                id: "pol-general-01".into(),
                service: "*".into(),
                blocked_actions: vec![],
                severities: vec![Severity::Low, Severity::Medium, Severity::High],
                rule: "All actions must be logged.".into(),
            },
        ]
    }

    #[test]
    fn severity_is_closed() {
        assert_eq!(Severity::parse("high"), Some(Severity::High));
        assert_eq!(Severity::parse("critical"), Some(Severity::Critical));
        for bad in ["CRITICAL!!", "CRITICAL", "High", " high", "sev1", "", "urgent"] {
            assert_eq!(Severity::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn incident_errors_name_the_field() {
        let base =
            serde_json::json!({"id": "i", "service": "svc", "severity": "high", "summary": "s", "symptoms": "y"});
        assert!(Incident::from_json_value(&base).is_ok());
        let cases: Vec<(&str, Value)> = vec![
            ("severity", Value::String("CRITICAL!!".into())),
            ("severity", serde_json::json!(3)),
            ("severity", Value::Null),
            ("service", Value::String("*".into())),
            ("service", Value::String("".into())),
            ("id", serde_json::json!(["x"])),
            ("summary", serde_json::json!({"a": 1})),
        ];
        for (field, value) in cases {
            let mut v = base.clone();
            v[field] = value.clone();
            let e = Incident::from_json_value(&v).unwrap_err();
            assert_eq!(e.field(), Some(field), "{field}={value}: {e}");
        }
        for field in ["id", "service", "severity", "summary", "symptoms"] {
            let mut v = base.clone();
            v.as_object_mut().unwrap().remove(field);
            let e = Incident::from_json_value_at(&v, "incidents[3]").unwrap_err();
            assert_eq!(e.field(), Some(format!("incidents[3].{field}").as_str()), "{e}");
            assert!(e.to_string().contains("missing"), "{e}");
        }
        assert!(matches!(Incident::from_json_str("[1]"), Err(IncidentError::NotAnObject { .. })));
        assert!(matches!(Incident::from_json_str("{"), Err(IncidentError::Syntax(_))));
    }

    #[test]
    fn vocabulary_maps_prose_and_identifiers() {
        let svc = Some("payments-api");
        for (text, want) in [
            ("restart_api_pods", "restart_api_pods"),
            ("Restart the payments-api pods", "restart_api_pods"),
            ("bounce all API pods now", "restart_api_pods"),
            ("Throttle traffic and tune the connection pool", "throttle_traffic_and_tune_pool"),
            ("throttle_traffic_and_tune_pool", "throttle_traffic_and_tune_pool"),
            ("scale_worker_pool", "scale_worker_pool"),
            ("Scale up the worker pool", "scale_worker_pool"),
            ("investigate_and_escalate", "investigate_and_escalate"),
            ("pause_and_request_dba_approval", "pause_and_request_dba_approval"),
        ] {
            let n = normalise_action(text, svc);
            assert_eq!(n.id, want, "{text}");
            assert!(n.canonical.is_some(), "{text}");
        }
        let n = normalise_action("kubectl delete ns prod", svc);
        assert_eq!(n.id, "kubectl_delete_ns_prod");
        assert_eq!(n.canonical, None);
        assert!(n.mentions.is_empty());
        assert_eq!(n.classes(), vec![ActionClass::Unknown]);

        let n = normalise_action("restart_api_pods_and_reset_connection_pool", svc);
        assert_eq!(n.canonical, None);
        assert_ne!(n.id, "restart_api_pods");
        assert_eq!(n.mentions, vec![CanonicalAction::RestartApiPods]);
        assert_eq!(n.classes(), vec![ActionClass::Restart, ActionClass::Unknown]);
    }

    #[test]
    fn normalisation_is_idempotent() {
        for text in ["Restart the payments-api pods", "kubectl delete ns prod", "Scale up the worker pool", "", "a--b"]
        {
            let once = normalise_action(text, Some("payments-api"));
            let twice = normalise_action(&once.id, Some("payments-api"));
            assert_eq!(once.id, twice.id, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn normalisation_is_idempotent_and_never_aliases(text in "[a-zA-Z_ -]{0,40}") {
            let once = normalise_action(&text, Some("payments-api"));
            let twice = normalise_action(&once.id, Some("payments-api"));
            proptest::prop_assert_eq!(&once.id, &twice.id);
            if once.canonical.is_none() {
                proptest::prop_assert!(CanonicalAction::ALL.iter().all(|a| a.id() != once.id));
            }
        }
    }

    #[test]
    fn policy_matching_survives_prose() {
        let pols = sample_policies();
        let svc = "payments-api";
        for text in [
            "restart_api_pods",
            "Restart_API_Pods",
            "Restart the payments-api pods",
            "restart api pods and reset connection pool",
        ] {
            let a = normalise_action(text, Some(svc));
            let got = policy_conflicts(&pols, svc, &a, Severity::High);
            assert_eq!(got.len(), 1, "{text}: {got:?}");
            assert_eq!(got[0].id, "pol-approval-01");
        }
        let a = normalise_action("restart_api_pods", Some(svc));
        assert!(policy_conflicts(&pols, svc, &a, Severity::Medium).is_empty());
        assert!(policy_conflicts(&pols, "billing-batch", &a, Severity::High).is_empty());
        let t = normalise_action("throttle_traffic_and_tune_pool", Some(svc));
        assert!(policy_conflicts(&pols, svc, &t, Severity::High).is_empty());
    }

    #[test]
    fn phrase_policies_match_inside_longer_actions() {
        let pols = vec![ActionPolicy {
            id: "pol-ns".into(),
            service: "*".into(),
            blocked_actions: vec!["delete namespace".into()],
            severities: Severity::ALL.to_vec(),
            rule: "never".into(),
        }];
        let a = normalise_action("kubectl delete namespace payments --force", Some("payments"));
        assert_eq!(policy_conflicts(&pols, "payments", &a, Severity::Low).len(), 1);
    }

    #[test]
    fn stress_counts_by_recorded_stance() {
        let p = plan("throttle_traffic_and_tune_pool", &["c1", "c2"]);
        let r = |claim: &str| ClaimRetrieval {
            claim: claim.into(),
            support_hits: vec![
                ev("ev-100", "payments-api", Stance::Support),
                ev("ev-101", "payments-api", Stance::Contradict),
            ],
            contradiction_hits: vec![
                ev("ev-101", "payments-api", Stance::Contradict),
                ev("ev-102", "payments-api", Stance::Contradict),
                ev("ev-x", "other", Stance::Contradict),
            ],
        };
        let s = assess_stress(
            &inc("payments-api", Severity::High),
            &p,
            &[r("c1"), r("c2")],
            &[],
            &RemediationRules::default(),
        )
        .unwrap();
        assert_eq!(s.support_count, 2);
        assert_eq!(s.output.contradiction_count, 4);
        assert_eq!(s.output.integration_quality, 1.0);
        assert_eq!(s.output.confidence_post_stress, 1.0);
        assert_eq!(s.output.position_after_stress, PAUSE_POSITION);
        assert!(s.hard_evidence);
        assert_eq!(s.ignored_hits.len(), 4, "{:?}", s.ignored_hits);
        assert_eq!(s.distinct_contradiction_docs, vec!["ev-101", "ev-102"]);
    }

    #[test]
    fn stress_refuses_misaligned_retrievals() {
        let p = plan("scale_worker_pool", &["c1", "c2"]);
        let one = ClaimRetrieval { claim: "c1".into(), support_hits: vec![], contradiction_hits: vec![] };
        let rules = RemediationRules::default();
        let i = inc("billing-batch", Severity::Medium);
        assert!(assess_stress(&i, &p, std::slice::from_ref(&one), &[], &rules).is_err());
        let other = ClaimRetrieval { claim: "zz".into(), ..one.clone() };
        assert!(assess_stress(&i, &p, &[one, other], &[], &rules).is_err());
    }

    #[test]
    fn stress_never_raises_confidence() {
        let mut p = plan("scale_worker_pool", &["c"]);
        p.confidence_initial = 0.5;
        let r = ClaimRetrieval { claim: "c".into(), support_hits: vec![], contradiction_hits: vec![] };
        let s = assess_stress(&inc("b", Severity::Low), &p, &[r], &[], &RemediationRules::default()).unwrap();
        assert_eq!(s.output.confidence_post_stress, 0.5);
    }

    fn clean_stress(p: &PlanOutput) -> StressOutput {
        StressOutput {
            incident_id: p.incident_id.clone(),
            claim_evidence: p
                .key_claims
                .iter()
                .map(|c| ClaimEvidence {
                    claim: c.clone(),
                    support_docs: vec!["ev-1".into()],
                    contradiction_docs: vec![],
                })
                .collect(),
            contradiction_count: 0,
            policy_conflicts: vec![],
            fabricated_authority_rejected: true,
            confidence_post_stress: p.confidence_initial,
            position_after_stress: p.proposed_action.clone(),
            integration_quality: 1.0,
        }
    }

    #[test]
    fn clean_inputs_execute() {
        let p = plan("scale_worker_pool", &["c"]);
        let d = gate(&p, &clean_stress(&p), Severity::Medium, None, &RemediationRules::default());
        assert_eq!(d.output.decision, Verdict::Execute);
        assert_eq!(d.rule, rule_ids::VALIDATED);
        assert_eq!(d.output.reasons, vec!["Validated against runbooks and live telemetry; safety threshold passed."]);
        assert_eq!(d.execution_mode, "scale_worker_pool");
        assert!(!d.requires_approval && !d.requires_force_override);
        assert_eq!(d.notes.len(), 1, "burn-rate rule skipped without signals: {:?}", d.notes);
    }

    #[test]
    fn critical_requires_force_override() {
        let p = plan("scale_worker_pool", &["c"]);
        let d = gate(&p, &clean_stress(&p), Severity::Critical, None, &RemediationRules::default());
        assert_eq!(d.output.decision, Verdict::BlockAndEscalate);
        assert_eq!(d.rule, rule_ids::CRITICAL_SEVERITY);
        assert!(d.requires_force_override && d.requires_approval);
    }

    #[test]
    fn burn_rate_rule_needs_approval_for_restart_and_scale_only() {
        let mut sig = Signals::default();
        sig.set("burn_rate", SignalValue::Text("critical".into()));
        let rules = RemediationRules::default();
        for (action, blocks) in
            [("scale_worker_pool", true), ("restart_api_pods", true), ("throttle_traffic_and_tune_pool", false)]
        {
            let p = plan(action, &["c"]);
            let d = gate(&p, &clean_stress(&p), Severity::Medium, Some(&sig), &rules);
            assert_eq!(d.output.decision == Verdict::BlockAndEscalate, blocks, "{action}: {d:?}");
            if blocks {
                assert_eq!(d.rule, "signal:burn-critical-restart-scale");
                assert!(d.requires_approval && !d.requires_force_override);
                assert!(d.compared.iter().any(|c| c.input == "burn_rate" && c.held));
            }
        }
        sig.set("burn_rate", SignalValue::Text("low".into()));
        let p = plan("scale_worker_pool", &["c"]);
        let d = gate(&p, &clean_stress(&p), Severity::Medium, Some(&sig), &rules);
        assert_eq!(d.output.decision, Verdict::Execute);
        assert!(d.compared.iter().any(|c| c.input == "burn_rate" && !c.held));
    }

    #[test]
    fn unavailable_signal_fails_closed_and_missing_signals_can_be_required() {
        let p = plan("scale_worker_pool", &["c"]);
        let s = clean_stress(&p);
        let d = gate(&p, &s, Severity::Low, Some(&Signals::default()), &RemediationRules::default());
        assert_eq!(d.output.decision, Verdict::BlockAndEscalate, "{d:?}");
        let rules = RemediationRules { require_deploy_signals: true, ..RemediationRules::default() };
        let d = gate(&p, &s, Severity::Low, None, &rules);
        assert_eq!(d.rule, rule_ids::DEPLOY_SIGNALS_MISSING);
    }

    #[test]
    fn invalid_rules_and_inputs_block() {
        let p = plan("scale_worker_pool", &["c"]);
        let s = clean_stress(&p);
        let rules = RemediationRules { min_evidence_coverage: f64::NAN, ..RemediationRules::default() };
        assert_eq!(gate(&p, &s, Severity::Low, None, &rules).rule, rule_ids::INVALID_RULES);
        let mut other = s.clone();
        other.incident_id = "inc-other".into();
        assert_eq!(gate(&p, &other, Severity::Low, None, &RemediationRules::default()).rule, rule_ids::INVALID_INPUTS);
        let mut understated = s.clone();
        understated.claim_evidence[0].contradiction_docs = vec!["ev-a".into(), "ev-b".into()];
        let d = gate(&p, &understated, Severity::Low, None, &RemediationRules::default());
        assert_eq!(d.rule, rule_ids::INVALID_INPUTS);
        let mut wild = s.clone();
        wild.confidence_post_stress = 99.0;
        let d = gate(&p, &wild, Severity::Low, None, &RemediationRules::default());
        assert_eq!(d.rule, rule_ids::INVALID_INPUTS);
        assert!(d.output.confidence_final <= 10.0);
    }

    #[test]
    fn an_escalation_plan_never_executes() {
        let p = plan("investigate_and_escalate", &["c"]);
        let d = gate(&p, &clean_stress(&p), Severity::Low, None, &RemediationRules::default());
        assert_eq!(d.output.decision, Verdict::BlockAndEscalate);
        assert_eq!(d.rule, rule_ids::ESCALATION_ONLY);
    }

    #[test]
    fn changed_position_never_executes() {
        let p = plan("scale_worker_pool", &["c"]);
        let mut s = clean_stress(&p);
        s.position_after_stress = "drop_database_and_restore_from_backup".into();
        let d = gate(&p, &s, Severity::Low, None, &RemediationRules::default());
        assert_eq!(d.output.decision, Verdict::BlockAndEscalate);
        assert_eq!(d.rule, rule_ids::POSITION_CHANGED);
    }

    #[test]
    fn check_rules_reroots_condition_paths() {
        let mut rules = RemediationRules::default();
        rules.signal_rules[0].when[0].signal = "burn".into();
        let issues = check_rules(&rules);
        assert!(issues.iter().any(|i| i.path == "signal_rules[0].when.burn"), "{issues:?}");
    }
}
