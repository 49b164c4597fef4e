//! The governor config's `planner:` block: which planner proposes remediations (issue 12).
//!
//! ```yaml
//! planner:
//!   backend: openai            # builtin (the default) | openai | anthropic | agent-builder
//!   model: gpt-4o              # optional; --model / GUARDRAIL_MODEL win over it
//!   base_url: http://127.0.0.1:11434/v1   # optional: the API's base (openai, anthropic) or
//!                              # Kibana's URL (agent-builder); else the provider's variable
//!   agent_id: guardrail-sre    # agent-builder only; else ELASTIC_AGENT_ID
//!   budget:
//!     rounds: 6                # tool rounds at most
//!     tokens: 60000            # input + output tokens of the whole plan at most
//!     timeout_seconds: 120     # wall clock of the whole plan at most
//!     tool_calls: 24           # tool calls at most, over all rounds
//!   fallback: none             # none (the default: a failed model plan blocks and escalates)
//!                              # | builtin (plan with the built-in planner, recorded as a fallback)
//! ```
//!
//! No secret is ever in this file: keys come from the environment (`OPENAI_API_KEY`,
//! `ANTHROPIC_API_KEY`, `ELASTIC_API_KEY`), and an unknown key such as `api_key:` is an error.
//! Nothing here can change a gate rule: the planner only proposes; the gate decides.

use std::path::Path;

use serde::Deserialize;

use crate::common::Diags;
use crate::de::present;

/// Most tool rounds accepted.
pub const MAX_ROUNDS: u32 = 50;
/// Most tokens accepted for one plan.
pub const MAX_TOKENS: u64 = 2_000_000;
/// Longest plan accepted, seconds.
pub const MAX_PLAN_SECONDS: u64 = 600;
/// Most tool calls accepted for one plan.
pub const MAX_TOOL_CALLS: u32 = 200;

/// Which planner proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum PlannerBackend {
    /// The deterministic built-in planner (no model, no network).
    #[default]
    Builtin,
    /// A model through OpenAI-compatible Chat Completions.
    OpenAi,
    /// A model through Anthropic Messages.
    Anthropic,
    /// A Kibana Agent Builder agent (converse API), which calls Guardrail's MCP tools itself.
    AgentBuilder,
}

impl PlannerBackend {
    /// Every backend, in the order the docs list them.
    pub const ALL: [PlannerBackend; 4] =
        [PlannerBackend::Builtin, PlannerBackend::OpenAi, PlannerBackend::Anthropic, PlannerBackend::AgentBuilder];

    /// The name as flags, variables and this file spell it.
    pub fn name(self) -> &'static str {
        match self {
            PlannerBackend::Builtin => "builtin",
            PlannerBackend::OpenAi => "openai",
            PlannerBackend::Anthropic => "anthropic",
            PlannerBackend::AgentBuilder => "agent-builder",
        }
    }

    /// Parses a name (trimmed, case-insensitive; `agent_builder` accepted for `agent-builder`).
    /// `None` for anything else: the caller fails closed, never guesses.
    pub fn parse(value: &str) -> Option<PlannerBackend> {
        match value.trim().to_ascii_lowercase().as_str() {
            "builtin" | "built-in" => Some(PlannerBackend::Builtin),
            "openai" => Some(PlannerBackend::OpenAi),
            "anthropic" => Some(PlannerBackend::Anthropic),
            "agent-builder" | "agent_builder" => Some(PlannerBackend::AgentBuilder),
            _ => None,
        }
    }

    /// The names, for messages: `builtin, openai, anthropic, agent-builder`.
    pub fn names() -> String {
        PlannerBackend::ALL.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
    }
}

impl std::fmt::Display for PlannerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What happens when a model plan fails (timeout, transport, refusal, invalid plan, budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum PlannerFallback {
    /// Nothing: the incident is blocked and escalated with the reason (fail closed).
    #[default]
    None,
    /// The built-in planner plans instead; the fallback and its reason are recorded.
    Builtin,
}

impl PlannerFallback {
    /// The name as this file spells it.
    pub fn name(self) -> &'static str {
        match self {
            PlannerFallback::None => "none",
            PlannerFallback::Builtin => "builtin",
        }
    }
}

/// The bounds of one model plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlannerBudget {
    /// Tool rounds at most.
    pub rounds: u32,
    /// Input + output tokens of the whole plan at most.
    pub tokens: u64,
    /// Wall clock of the whole plan at most, seconds.
    pub timeout_seconds: u64,
    /// Tool calls at most, over all rounds.
    pub tool_calls: u32,
}

impl Default for PlannerBudget {
    /// 6 rounds, 60,000 tokens, 120 s, 24 tool calls (the model planner's own defaults, and the
    /// original's converse timeout): enough for the retrieval tools and a plan, short enough
    /// that an incident is never held up by a model that wanders.
    fn default() -> PlannerBudget {
        PlannerBudget { rounds: 6, tokens: 60_000, timeout_seconds: 120, tool_calls: 24 }
    }
}

/// The `planner:` block, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlannerConfig {
    /// Which planner.
    pub backend: PlannerBackend,
    /// The model name, if set.
    pub model: Option<String>,
    /// The API's (or Kibana's) base URL, if set: an http(s) URL.
    pub base_url: Option<String>,
    /// The Agent Builder agent, if set.
    pub agent_id: Option<String>,
    /// Bounds.
    pub budget: PlannerBudget,
    /// What a failed model plan turns into.
    pub fallback: PlannerFallback,
}

/// The `planner:` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlannerSpec {
    #[serde(default, deserialize_with = "present")]
    backend: Option<String>,
    #[serde(default, deserialize_with = "present")]
    model: Option<String>,
    #[serde(default, deserialize_with = "present")]
    base_url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    agent_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    budget: Option<BudgetSpec>,
    #[serde(default, deserialize_with = "present")]
    fallback: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetSpec {
    #[serde(default, deserialize_with = "present")]
    rounds: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    tokens: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    timeout_seconds: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    tool_calls: Option<u64>,
}

/// Checks the block, reporting every problem through `d` (fields under `planner.`); `dir` is the
/// config file's directory, for relative paths (the block has none).
pub(crate) fn read_planner(d: &mut Diags, spec: &PlannerSpec, dir: Option<&Path>) -> PlannerConfig {
    let _ = dir;
    let mut cfg = PlannerConfig::default();
    match spec.backend.as_deref() {
        None => d.error("planner.backend", format!("is required ({})", PlannerBackend::names())),
        Some(b) => match PlannerBackend::parse(b) {
            Some(b) => cfg.backend = b,
            None => d.error("planner.backend", format!("{b:?} is not a planner ({})", PlannerBackend::names())),
        },
    }
    let text = |d: &mut Diags, field: &str, v: &Option<String>| -> Option<String> {
        let v = v.as_deref()?;
        let t = v.trim();
        if t.is_empty() || t.chars().any(char::is_control) {
            d.error(field, "must be a non-empty name without control characters");
            return None;
        }
        Some(t.to_string())
    };
    cfg.model = text(d, "planner.model", &spec.model);
    cfg.agent_id = text(d, "planner.agent_id", &spec.agent_id);
    if let Some(url) = text(d, "planner.base_url", &spec.base_url) {
        match url_problem(&url) {
            Some(why) => d.error("planner.base_url", format!("{url:?} is not usable: {why}")),
            None => cfg.base_url = Some(url),
        }
    }
    if let Some(b) = &spec.budget {
        cfg.budget = read_budget(d, b);
    }
    match spec.fallback.as_deref().map(|f| f.trim().to_ascii_lowercase()) {
        None => {}
        Some(f) if f == "none" => cfg.fallback = PlannerFallback::None,
        Some(f) if f == "builtin" || f == "built-in" => cfg.fallback = PlannerFallback::Builtin,
        Some(_) => d.error(
            "planner.fallback",
            format!("{:?} is not a fallback (none, builtin)", spec.fallback.as_deref().unwrap_or_default()),
        ),
    }
    // Settings that do nothing for the backend chosen are named, so nobody believes they act.
    if cfg.backend == PlannerBackend::Builtin {
        for (field, set) in [
            ("planner.model", spec.model.is_some()),
            ("planner.base_url", spec.base_url.is_some()),
            ("planner.agent_id", spec.agent_id.is_some()),
            ("planner.budget", spec.budget.is_some()),
            ("planner.fallback", spec.fallback.is_some()),
        ] {
            if set {
                d.warning(field, "is ignored: the built-in planner uses no model");
            }
        }
    } else if cfg.backend != PlannerBackend::AgentBuilder && spec.agent_id.is_some() {
        d.warning("planner.agent_id", format!("is ignored: only agent-builder uses it, not {}", cfg.backend));
    }
    cfg
}

fn read_budget(d: &mut Diags, b: &BudgetSpec) -> PlannerBudget {
    let mut out = PlannerBudget::default();
    let mut bounded = |field: &str, v: Option<u64>, max: u64| -> Option<u64> {
        let v = v?;
        if v == 0 || v > max {
            d.error(field, format!("{v} is out of range (1 to {max})"));
            return None;
        }
        Some(v)
    };
    if let Some(r) = bounded("planner.budget.rounds", b.rounds, u64::from(MAX_ROUNDS)) {
        // Bounded by MAX_ROUNDS above, so it fits.
        out.rounds = u32::try_from(r).unwrap_or(MAX_ROUNDS);
    }
    if let Some(t) = bounded("planner.budget.tokens", b.tokens, MAX_TOKENS) {
        out.tokens = t;
    }
    if let Some(s) = bounded("planner.budget.timeout_seconds", b.timeout_seconds, MAX_PLAN_SECONDS) {
        out.timeout_seconds = s;
    }
    if let Some(c) = bounded("planner.budget.tool_calls", b.tool_calls, u64::from(MAX_TOOL_CALLS)) {
        // Bounded by MAX_TOOL_CALLS above, so it fits.
        out.tool_calls = u32::try_from(c).unwrap_or(MAX_TOOL_CALLS);
    }
    out
}

/// Why `url` is not an http(s) URL with a host, or `None`. Credentials in it are refused too:
/// keys come from the environment, never from this file.
fn url_problem(url: &str) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some("it is not a URL (http://… or https://…)".into());
    };
    let rest_ok = || -> Option<String> {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Some("credentials do not belong in the URL (keys come from the environment)".into());
        }
        if authority.is_empty() || authority.starts_with(':') {
            return Some("it has no host".into());
        }
        None
    };
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => rest_ok(),
        other => Some(format!("scheme {other} (http or https)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;
    use crate::governor::load_governor_file;

    fn load(text: &str) -> Result<(Option<PlannerConfig>, Vec<String>), Vec<String>> {
        load_governor_file(&Source::from_text("g.yaml", format!("approvals: {{}}\n{text}")))
            .map(|l| (l.value.planner, l.warnings.iter().map(|w| w.to_string()).collect()))
            .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn a_full_block_is_read() {
        let (cfg, warnings) = load(
            "planner:\n  backend: OpenAI\n  model: gpt-4o-mini\n  base_url: http://127.0.0.1:11434/v1\n  budget:\n    rounds: 4\n    tokens: 20000\n    timeout_seconds: 30\n    tool_calls: 9\n  fallback: builtin\n",
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            cfg.unwrap(),
            PlannerConfig {
                backend: PlannerBackend::OpenAi,
                model: Some("gpt-4o-mini".into()),
                base_url: Some("http://127.0.0.1:11434/v1".into()),
                agent_id: None,
                budget: PlannerBudget { rounds: 4, tokens: 20_000, timeout_seconds: 30, tool_calls: 9 },
                fallback: PlannerFallback::Builtin,
            }
        );
    }

    #[test]
    fn defaults_fill_what_is_left_out_and_absence_is_none() {
        let (cfg, _) = load("planner:\n  backend: agent_builder\n  agent_id: sre\n").unwrap();
        let cfg = cfg.unwrap();
        assert_eq!(cfg.backend, PlannerBackend::AgentBuilder);
        assert_eq!(cfg.agent_id.as_deref(), Some("sre"));
        assert_eq!(cfg.budget, PlannerBudget::default());
        assert_eq!(cfg.fallback, PlannerFallback::None);
        assert_eq!(load("").unwrap().0, None);
    }

    #[test]
    fn every_problem_is_reported_at_its_field_and_line() {
        let errors = load(
            "planner:\n  backend: gpt\n  base_url: ftp://x\n  budget:\n    rounds: 0\n    tokens: 9999999999\n  fallback: maybe\n",
        )
        .unwrap_err();
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(
            has("g.yaml:3:3: planner.backend: \"gpt\" is not a planner (builtin, openai, anthropic, agent-builder)"),
            "{errors:#?}"
        );
        assert!(has("planner.base_url: \"ftp://x\" is not usable: scheme ftp"), "{errors:#?}");
        assert!(has("g.yaml:6:5: planner.budget.rounds: 0 is out of range (1 to 50)"), "{errors:#?}");
        assert!(has("planner.budget.tokens: 9999999999 is out of range"), "{errors:#?}");
        assert!(has("g.yaml:8:3: planner.fallback: \"maybe\" is not a fallback (none, builtin)"), "{errors:#?}");
        assert_eq!(errors.len(), 5, "{errors:#?}");
    }

    #[test]
    fn a_key_in_the_file_is_refused_and_a_missing_backend_is_an_error() {
        let errors = load("planner:\n  backend: openai\n  api_key: sk-123\n").unwrap_err();
        assert!(errors.iter().any(|e| e.contains("planner.api_key")), "{errors:#?}");
        assert!(errors.iter().all(|e| !e.contains("sk-123")), "{errors:#?}");
        let errors = load("planner:\n  model: gpt-4o\n").unwrap_err();
        assert!(errors.iter().any(|e| e.contains("planner.backend: is required")), "{errors:#?}");
        let errors = load("planner:\n  backend: openai\n  base_url: https://user:pw@api.example\n").unwrap_err();
        assert!(errors.iter().any(|e| e.contains("credentials do not belong")), "{errors:#?}");
    }

    #[test]
    fn settings_the_backend_ignores_are_warned_about() {
        let (cfg, warnings) = load("planner:\n  backend: builtin\n  model: gpt-4o\n").unwrap();
        assert_eq!(cfg.unwrap().backend, PlannerBackend::Builtin);
        assert!(warnings.iter().any(|w| w.contains("planner.model") && w.contains("ignored")), "{warnings:?}");
        let (_, warnings) = load("planner:\n  backend: anthropic\n  agent_id: sre\n").unwrap();
        assert!(warnings.iter().any(|w| w.contains("planner.agent_id")), "{warnings:?}");
    }

    #[test]
    fn backend_names_round_trip() {
        for b in PlannerBackend::ALL {
            assert_eq!(PlannerBackend::parse(b.name()), Some(b));
        }
        assert_eq!(PlannerBackend::parse(" Agent-Builder "), Some(PlannerBackend::AgentBuilder));
        assert_eq!(PlannerBackend::parse("llama"), None);
    }
}
