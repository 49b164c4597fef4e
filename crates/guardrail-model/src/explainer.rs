//! The LLM explainer: a model writes the plain-language narrative of a gate decision from the
//! decision's JSON, as the original deploy gate's `EXPLAINER_BACKEND=openai|anthropic` did —
//! but labelled as model-written, bounded in time, and falling back to the rule-based narrative
//! on any failure (no key, unreachable, timeout, error status, refusal, empty or broken answer).
//! It is text about a decision: it never changes one, nor an exit code or an HTTP status.
//!
//! `EXPLAINER_BACKEND` (or `--explainer`): `rule` / `rule_based` (the default) / `openai` /
//! `anthropic`, lower-cased as the original did; anything else falls back to rules with a
//! warning. `EXPLAINER_TIMEOUT_SECONDS` bounds the whole call (default 30).

use std::time::Duration;

use crate::{ChatModel, ChatRequest, Limits, Message, ModelConfig, ModelError, Provider, connect};

/// The original's system message.
pub const SYSTEM_PROMPT: &str = "You are an expert SRE narrating deployment decisions.";

/// The default bound of one narrative (all attempts): long enough for a model to write a few
/// paragraphs, short enough that `guardrail explain` in a pipeline does not hang.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most characters of model text kept (a runaway answer is cut, not printed whole).
const MAX_NARRATIVE_CHARS: usize = 20_000;

/// Which explainer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The deterministic, rule-based narrative.
    Rule,
    /// A model through this provider's API.
    Model(Provider),
}

impl Backend {
    /// Parses `EXPLAINER_BACKEND` / `--explainer` (trimmed, lower-cased).
    pub fn parse(value: &str) -> Result<Backend, UnknownBackend> {
        match value.trim().to_lowercase().as_str() {
            "" | "rule" | "rules" | "rule_based" | "rule-based" | "deterministic" => Ok(Backend::Rule),
            "openai" => Ok(Backend::Model(Provider::OpenAi)),
            "anthropic" => Ok(Backend::Model(Provider::Anthropic)),
            _ => Err(UnknownBackend { value: value.to_string() }),
        }
    }
}

/// An `EXPLAINER_BACKEND` value that names no backend. Its message is the start-up warning:
/// the original fell back to rules silently; Guardrail falls back too, but says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("EXPLAINER_BACKEND={value} is unknown (rule, openai, anthropic); using the rule-based explainer")]
pub struct UnknownBackend {
    /// The value as given (not trimmed nor lower-cased), so the warning shows what was set.
    pub value: String,
}

/// The warning for an `EXPLAINER_BACKEND` value that names no backend ([`UnknownBackend`]'s
/// message). `None` for every known value and when unset.
pub fn backend_warning(value: Option<&str>) -> Option<String> {
    Backend::parse(value?).err().map(|e| e.to_string())
}

/// The narrative and how it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrative {
    /// The text to show: the labelled model narrative, or the rule-based one.
    pub text: String,
    /// `provider/model` when a model wrote it.
    pub written_by: Option<String>,
    /// Why the rule-based text is shown although a model was asked for.
    pub warning: Option<String>,
}

/// A configured explainer: rule-based, a model, or a model that cannot be used (its error is
/// the fallback's warning at every narrative, so a missing key is seen where the text is).
pub struct Explainer {
    backend: Backend,
    model: Result<Option<Box<dyn ChatModel>>, String>,
}

impl std::fmt::Debug for Explainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let model = match &self.model {
            Ok(Some(m)) => format!("{}/{}", m.provider(), m.model()),
            Ok(None) => "rule".to_string(),
            Err(e) => format!("unavailable: {e}"),
        };
        f.debug_struct("Explainer").field("backend", &self.backend).field("model", &model).finish()
    }
}

impl Explainer {
    /// The rule-based explainer.
    pub fn rule() -> Explainer {
        Explainer { backend: Backend::Rule, model: Ok(None) }
    }

    /// An explainer over `model` (tests, or a caller that built its own adapter).
    pub fn with_model(model: Box<dyn ChatModel>) -> Explainer {
        Explainer { backend: Backend::Model(model.provider()), model: Ok(Some(model)) }
    }

    /// The explainer `flag` (`--explainer`) or else `EXPLAINER_BACKEND` asks for, with the model
    /// from `model_flag` (`--model`) or the provider's variables, and the start-up warnings
    /// (an unknown backend, an unreadable timeout; a model that cannot be used is
    /// [`Explainer::unavailable`], and the warning of every narrative). Sends nothing.
    pub fn from_env(
        flag: Option<&str>,
        model_flag: Option<&str>,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> (Explainer, Vec<String>) {
        let mut warnings = Vec::new();
        let value = flag.map(str::to_string).or_else(|| get("EXPLAINER_BACKEND"));
        let backend = match value.as_deref().map(Backend::parse) {
            None => Backend::Rule,
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                warnings.push(e.to_string());
                Backend::Rule
            }
        };
        let Backend::Model(provider) = backend else {
            return (Explainer::rule(), warnings);
        };
        let mut limits = Limits { deadline: DEFAULT_TIMEOUT, ..Limits::default() };
        if let Some(raw) = get("EXPLAINER_TIMEOUT_SECONDS").filter(|v| !v.trim().is_empty()) {
            match raw.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => limits.deadline = Duration::from_secs_f64(s),
                _ => warnings.push(format!(
                    "EXPLAINER_TIMEOUT_SECONDS={raw} is not a number of seconds in (0, 3600]; using {}",
                    DEFAULT_TIMEOUT.as_secs()
                )),
            }
        }
        limits.connect_timeout = limits.connect_timeout.min(limits.deadline);
        let model = ModelConfig::from_env(provider, get, model_flag, limits).and_then(|c| connect(provider, c));
        let model = model.map(Some).map_err(|e| unavailable(&e));
        (Explainer { backend, model }, warnings)
    }

    /// Which backend was asked for.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Why the model asked for cannot be used (no key, a bad base URL), for a start-up log line;
    /// every narrative then falls back with the same text as its warning.
    pub fn unavailable(&self) -> Option<&str> {
        self.model.as_ref().err().map(String::as_str)
    }

    /// `provider/model` when a model is configured and usable.
    pub fn model_name(&self) -> Option<String> {
        match &self.model {
            Ok(Some(m)) => Some(format!("{}/{}", m.provider(), m.model())),
            _ => None,
        }
    }

    /// The narrative of `decision` (the gate's typed view, sent as JSON). `summary` names the
    /// decision in the label (e.g. `BLOCK by policy block-critical-burn`); `rule` is the
    /// rule-based narrative, made only when it is shown.
    pub fn explain(&self, decision: &impl serde::Serialize, summary: &str, rule: impl FnOnce() -> String) -> Narrative {
        let model = match &self.model {
            Ok(None) => return Narrative { text: rule(), written_by: None, warning: None },
            Ok(Some(m)) => m,
            Err(why) => return Narrative { text: rule(), written_by: None, warning: Some(why.clone()) },
        };
        match narrate(model.as_ref(), decision) {
            Ok((written_by, body)) => Narrative {
                text: format!(
                    "(written by {written_by} from the gate's decision JSON; the decision is the gate's: {summary})\n\n{body}\n"
                ),
                written_by: Some(written_by),
                warning: None,
            },
            Err(e) => Narrative { text: rule(), written_by: None, warning: Some(failed(&e)) },
        }
    }
}

/// An explainer that writes one narrative per version of its inputs: a server answers every
/// `GET /api/explain` of one snapshot with the same text, and a model is asked once per snapshot,
/// not once per request (each call costs money and seconds; an anonymous reader must not be able
/// to multiply them). Concurrent callers of one version wait for the first one's narrative.
#[derive(Debug)]
pub struct PerVersion {
    explainer: Explainer,
    last: std::sync::Mutex<Option<(u64, Narrative)>>,
}

impl PerVersion {
    /// Wraps `explainer`.
    pub fn new(explainer: Explainer) -> PerVersion {
        PerVersion { explainer, last: std::sync::Mutex::new(None) }
    }

    /// The explainer.
    pub fn explainer(&self) -> &Explainer {
        &self.explainer
    }

    /// The narrative of inputs `version` (as [`Explainer::explain`]) and whether it was written
    /// now (`false`: from the cache, so its warning was already logged). A fallback narrative is
    /// cached too: a failing model is tried again at the next version, not at every request.
    pub fn explain(
        &self,
        version: u64,
        decision: &impl serde::Serialize,
        summary: &str,
        rule: impl FnOnce() -> String,
    ) -> (Narrative, bool) {
        // A poisoned lock only means another request panicked mid-narrative; the cache is still
        // a (version, text) pair or empty, so keep using it.
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((v, n)) = last.as_ref()
            && *v == version
        {
            return (n.clone(), false);
        }
        let n = self.explainer.explain(decision, summary, rule);
        *last = Some((version, n.clone()));
        (n, true)
    }
}

/// The user prompt: the original's instruction, then `Decision JSON:` and the decision indented 2.
pub fn prompt(decision_json: &str) -> String {
    format!(
        "You are an expert Site Reliability Engineer. Explain the following deployment decision in plain \
         language for a non-technical stakeholder: what the reliability and cost signals show, why the \
         gate reached this decision, and what the next steps are. The decision was made by a deterministic \
         gate and is final: describe it; do not change, question or override it.\n\nDecision JSON:\n{decision_json}"
    )
}

/// The request the explainer sends for `decision_json`.
pub fn request(decision_json: &str) -> ChatRequest {
    ChatRequest {
        system: Some(SYSTEM_PROMPT.to_string()),
        messages: vec![Message::User(prompt(decision_json))],
        tools: Vec::new(),
        max_tokens: None,
        temperature: Some(0.3),
    }
}

fn narrate(model: &dyn ChatModel, decision: &impl serde::Serialize) -> Result<(String, String), ModelError> {
    let provider = model.provider();
    let json = serde_json::to_string_pretty(decision)
        .map_err(|e| ModelError::Client { provider, reason: format!("the decision is not encodable: {e}") })?;
    let answer = model.chat(&request(&json))?;
    let text = answer.text.as_deref().map(printable).unwrap_or_default();
    if text.is_empty() {
        // A tool call or only control characters: nothing to show.
        return Err(ModelError::Empty { provider, stop: format!("{:?}", answer.stop) });
    }
    let name = if answer.model.is_empty() { model.model() } else { answer.model.as_str() };
    Ok((format!("{provider}/{name}"), text))
}

/// The model's text without terminal control sequences (a narrative is printed to a terminal
/// and served to a browser; only newlines and tabs are kept), trimmed and length-capped.
fn printable(text: &str) -> String {
    let clean: String =
        text.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\t').take(MAX_NARRATIVE_CHARS).collect();
    clean.trim().to_string()
}

fn unavailable(e: &ModelError) -> String {
    format!("the model explainer is unavailable ({e}); using the rule-based explainer")
}

fn failed(e: &ModelError) -> String {
    format!("the model explainer failed ({e}); showing the rule-based explanation")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_narrative_per_version() {
        let env = |k: &str| (k == "EXPLAINER_BACKEND").then(|| "openai".to_string());
        let cached = PerVersion::new(Explainer::from_env(None, None, &env).0);
        let calls = std::cell::Cell::new(0);
        let rule = || {
            calls.set(calls.get() + 1);
            format!("rule {}", calls.get())
        };
        let (n, fresh) = cached.explain(1, &1, "ALLOW", rule);
        assert_eq!((n.text.as_str(), fresh), ("rule 1", true));
        let (n, fresh) = cached.explain(1, &1, "ALLOW", || unreachable!("cached"));
        assert_eq!((n.text.as_str(), fresh), ("rule 1", false));
        assert_eq!(cached.explain(2, &1, "ALLOW", rule).0.text, "rule 2");
        assert!(cached.explain(2, &1, "ALLOW", rule).0.warning.unwrap().contains("OPENAI_API_KEY"));
    }

    #[test]
    fn backends_parse_as_the_original_lower_cased_them() {
        for v in ["rule", "RULE_BASED", "rule-based", " rules ", ""] {
            assert_eq!(Backend::parse(v), Ok(Backend::Rule), "{v}");
        }
        assert_eq!(Backend::parse("OpenAI"), Ok(Backend::Model(Provider::OpenAi)));
        assert_eq!(Backend::parse("anthropic"), Ok(Backend::Model(Provider::Anthropic)));
        assert_eq!(Backend::parse(" Llama"), Err(UnknownBackend { value: " Llama".to_string() }));
        assert_eq!(backend_warning(None), None);
        assert_eq!(backend_warning(Some("openai")), None);
        assert_eq!(
            backend_warning(Some("llama")).as_deref(),
            Some("EXPLAINER_BACKEND=llama is unknown (rule, openai, anthropic); using the rule-based explainer")
        );
    }

    #[test]
    fn printable_drops_escape_sequences_and_keeps_lines() {
        assert_eq!(printable("\u{1b}[31mred\u{1b}[0m\r\nline 2\t!\u{7}"), "[31mred[0m\nline 2\t!");
        assert_eq!(printable(" \n\u{0} "), "");
    }

    #[test]
    fn a_missing_key_is_a_start_up_warning_and_a_fallback_naming_the_variable() {
        let env = |k: &str| (k == "EXPLAINER_BACKEND").then(|| "anthropic".to_string());
        let (ex, warnings) = Explainer::from_env(None, None, &env);
        assert_eq!(ex.backend(), Backend::Model(Provider::Anthropic));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(ex.unavailable().unwrap().contains("set ANTHROPIC_API_KEY"), "{ex:?}");
        assert_eq!(ex.model_name(), None);
        let n = ex.explain(&serde_json::json!({"action": "BLOCK"}), "BLOCK", || "RULE TEXT".into());
        assert_eq!(n.text, "RULE TEXT");
        assert_eq!(n.written_by, None);
        assert!(n.warning.unwrap().contains("ANTHROPIC_API_KEY"));
    }

    #[test]
    fn the_flag_wins_over_the_variable_and_a_bad_timeout_is_named() {
        let env = |k: &str| match k {
            "EXPLAINER_BACKEND" => Some("openai".to_string()),
            "EXPLAINER_TIMEOUT_SECONDS" => Some("forever".to_string()),
            _ => None,
        };
        let (ex, warnings) = Explainer::from_env(Some("rule"), None, &env);
        assert_eq!(ex.backend(), Backend::Rule);
        assert!(warnings.is_empty());
        let (_, warnings) = Explainer::from_env(None, None, &env);
        assert!(warnings.iter().any(|w| w.contains("EXPLAINER_TIMEOUT_SECONDS=forever")), "{warnings:?}");
    }
}
