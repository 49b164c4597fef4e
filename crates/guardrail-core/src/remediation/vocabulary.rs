//! The action vocabulary: [`normalise_action`] maps prose ("Restart the payments-api pods") and
//! identifiers (`restart_api_pods`) onto one set of [`CanonicalAction`]s and [`ActionClass`]es.

use serde::{Deserialize, Serialize};

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
