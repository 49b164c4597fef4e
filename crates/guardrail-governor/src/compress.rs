//! Compress: the context a model-backed planner sends is cut to a budget, and every cut is
//! recorded ([`CompressReport`]).
//!
//! The budget depends on the reliability profile's context mode, as the original decided it
//! (reference governor.md §2.6, where it was only recorded): `full_context` for a high (and, in
//! Guardrail, critical) incident, `compressed_context` otherwise. Tokens are estimated as bytes
//! / 4 ([`estimate_tokens`]); the provider's own counts are recorded beside them in the
//! transcript.
//!
//! Order of cuts: every item's free text is first shortened to the per-item cap (so one long
//! runbook cannot crowd all others out), then items are kept in rank order while they fit; the
//! incident is never dropped (only its fields shortened). Dropping context can only make the
//! model's plan worse, never the gate more permissive: the gate re-derives every number from
//! retrieval.

use guardrail_core::remediation::Severity;
use serde::Serialize;
use serde_json::Value;

use crate::transcript::{CompressReport, Cut, estimate_tokens};

/// The original's context mode (§2.6): what budget applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextMode {
    /// High and critical incidents: the larger budget.
    FullContext,
    /// Everything else.
    CompressedContext,
}

impl ContextMode {
    /// The mode for an incident's severity.
    pub fn for_severity(s: Severity) -> ContextMode {
        match s {
            Severity::High | Severity::Critical => ContextMode::FullContext,
            _ => ContextMode::CompressedContext,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContextMode::FullContext => "full_context",
            ContextMode::CompressedContext => "compressed_context",
        }
    }
}

/// Context budgets, in estimated tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ContextBudget {
    /// Budget of the initial context in `full_context` mode (default 6000).
    pub full_tokens: u64,
    /// Budget of the initial context in `compressed_context` mode (default 2000).
    pub compressed_tokens: u64,
    /// Cap of one item's free text (default 600).
    pub max_item_tokens: u64,
    /// Cap of one tool result sent back during the loop (default 1500).
    pub max_tool_result_tokens: u64,
}

impl Default for ContextBudget {
    fn default() -> Self {
        ContextBudget { full_tokens: 6000, compressed_tokens: 2000, max_item_tokens: 600, max_tool_result_tokens: 1500 }
    }
}

impl ContextBudget {
    /// The budget for `mode`.
    pub fn for_mode(&self, mode: ContextMode) -> u64 {
        match mode {
            ContextMode::FullContext => self.full_tokens,
            ContextMode::CompressedContext => self.compressed_tokens,
        }
    }
}

/// One piece of context: a runbook, an evidence document, the logs summary, the incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContextItem {
    /// `incident`, `runbook`, `evidence`, `logs`.
    pub kind: &'static str,
    /// Its id (document id, `incident`, `logs`).
    pub id: String,
    /// Short structured fields (title, stance, service, score, counts).
    pub meta: Value,
    /// The free text, which compress may shorten.
    pub text: String,
}

impl ContextItem {
    fn tokens(&self) -> u64 {
        estimate_tokens(&serde_json::to_string(self).unwrap_or_default())
    }
}

const CUT_MARK: &str = " …[cut by compress]";

/// `text` shortened to about `max_tokens` (at a character boundary), with a mark.
pub fn shorten(text: &str, max_tokens: u64) -> Option<String> {
    let max_bytes = usize::try_from(max_tokens.saturating_mul(4)).unwrap_or(usize::MAX);
    if text.len() <= max_bytes {
        return None;
    }
    let mut end = max_bytes.saturating_sub(CUT_MARK.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!("{}{CUT_MARK}", &text[..end]))
}

/// Cuts `items` (in rank order; `incident` items are kept whatever the budget) to `budget`
/// tokens, shortening each item's text to `max_item_tokens` first. Returns what is kept, in the
/// same order, and the report.
pub fn compress(items: Vec<ContextItem>, budget: u64, max_item_tokens: u64) -> (Vec<ContextItem>, CompressReport) {
    let tokens_before: u64 = items.iter().map(ContextItem::tokens).sum();
    let mut report = CompressReport { budget_tokens: budget, tokens_before, ..CompressReport::default() };
    let mut kept = Vec::with_capacity(items.len());
    let mut used = 0u64;
    for mut item in items {
        let before = item.tokens();
        if let Some(short) = shorten(&item.text, max_item_tokens) {
            item.text = short;
            report.cuts.push(Cut {
                kind: item.kind.into(),
                id: item.id.clone(),
                how: "truncated".into(),
                tokens_before: before,
                tokens_after: item.tokens(),
            });
        }
        let t = item.tokens();
        if item.kind != "incident" && used + t > budget {
            report.cuts.push(Cut {
                kind: item.kind.into(),
                id: item.id.clone(),
                how: "dropped".into(),
                tokens_before: before,
                tokens_after: 0,
            });
            continue;
        }
        used += t;
        kept.push(item);
    }
    report.tokens_after = used;
    (kept, report)
}

/// A tool result cut to `max_tokens`, and the cut to record when it was.
pub fn cap_tool_result(call_id: &str, content: String, max_tokens: u64) -> (String, Option<Cut>) {
    match shorten(&content, max_tokens) {
        None => (content, None),
        Some(short) => {
            let cut = Cut {
                kind: "tool_result".into(),
                id: call_id.to_string(),
                how: "truncated".into(),
                tokens_before: estimate_tokens(&content),
                tokens_after: estimate_tokens(&short),
            };
            (short, Some(cut))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: &'static str, id: &str, text_len: usize) -> ContextItem {
        ContextItem { kind, id: id.into(), meta: Value::Null, text: "é".repeat(text_len) }
    }

    #[test]
    fn items_are_shortened_then_dropped_in_rank_order_and_every_cut_is_recorded() {
        let items =
            vec![item("incident", "incident", 5000), item("runbook", "rb-1", 100), item("runbook", "rb-2", 3000)];
        let (kept, report) = compress(items, 400, 200);
        let ids: Vec<&str> = kept.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["incident", "rb-1"], "{report:?}");
        let cuts: Vec<(&str, &str)> = report.cuts.iter().map(|c| (c.id.as_str(), c.how.as_str())).collect();
        assert_eq!(cuts, [("incident", "truncated"), ("rb-2", "truncated"), ("rb-2", "dropped")]);
        assert!(report.tokens_after < report.tokens_before);
        assert!(kept[0].text.ends_with(CUT_MARK));
    }

    #[test]
    fn nothing_is_cut_within_budget() {
        let (kept, report) = compress(vec![item("runbook", "a", 10)], 1000, 600);
        assert_eq!(kept.len(), 1);
        assert!(report.cuts.is_empty());
        assert_eq!(report.tokens_after, report.tokens_before);
    }

    #[test]
    fn tool_results_are_capped_at_a_char_boundary() {
        let (s, cut) = cap_tool_result("c1", "ü".repeat(1000), 10);
        assert!(s.len() <= 40 + 2 && s.ends_with(CUT_MARK), "{s}");
        assert_eq!(cut.unwrap().id, "c1");
        assert_eq!(cap_tool_result("c2", "short".into(), 10), ("short".to_string(), None));
    }
}
