//! Plain-language explanations of a deploy decision.
//!
//! The seed tool's narrative used its own hard-coded bands (budget < 10 "critical", < 30
//! "low"; cost ≥ 20/30 %) that could disagree with the policies that actually decided, and it
//! listed overlapping bullets ("running low" and "recovering" for the same budget). Here the
//! contributing factors are the conditions of the rules that matched, worded per signal, so the
//! narrative can never contradict the decision; observations that no rule used (a p95 breach
//! under a BLOCK, a cost spike under a DELAY) follow as "also noted".

use crate::cost::CostReport;
use crate::policy::{Action, ConditionOutcome, Decision, Operator};
use crate::signals::SignalValue;
use crate::slo::SloReport;

const RULE: &str = "────────────────────────────────────────────────────────────";

/// Everything the narrative needs; `generated_at` is passed in (the core reads no clock).
pub struct NarrativeInput<'a> {
    /// The decision.
    pub decision: &'a Decision,
    /// The SLO block it was made from.
    pub slo: &'a SloReport,
    /// The cost block it was made from.
    pub cost: &'a CostReport,
    /// When, as text (e.g. `2026-11-24 10:00 UTC`).
    pub generated_at: &'a str,
    /// Where the policies came from, for the "if you disagree" section.
    pub policies_path: &'a str,
}

/// The verb phrase for an action, e.g. `has been DELAYED by 15 minutes`.
pub fn verdict(action: Action, delay_minutes: u32) -> String {
    match action {
        Action::Block => "Deployment has been BLOCKED.".into(),
        Action::Delay => format!("Deployment has been DELAYED by {delay_minutes} minutes."),
        Action::Warn => "Deployment is ALLOWED with a WARNING.".into(),
        Action::Allow => "Deployment is ALLOWED.".into(),
    }
}

/// Words for one compared condition, e.g. "Error budget left is 18.98%, below 30%."
pub fn describe_condition(c: &ConditionOutcome, slo: &SloReport, cost: &CostReport) -> String {
    let rel = match c.operator {
        Operator::Lt => "below",
        Operator::Lte => "at or below",
        Operator::Gt => "above",
        Operator::Gte => "at or above",
        Operator::Eq => "equal to",
        Operator::Neq => "not equal to",
        Operator::In => "one of",
    };
    let t = &c.threshold;
    match (c.signal.as_str(), &c.actual) {
        ("error_budget_pct", SignalValue::Number(v)) => {
            format!("Error budget left is {v:.2}%, {rel} {t}%: a smaller margin before the SLO is breached.")
        }
        ("burn_rate", SignalValue::Text(label)) => format!(
            "The error budget is burning at {:.1}× the sustainable rate (label {}, {rel} {t}).",
            slo.burn_rate_value,
            label.to_uppercase()
        ),
        ("cost_spike_pct", SignalValue::Number(v)) => format!(
            "Cloud spend changed {v:+.2}% week over week (${:.2} → ${:.2}/day), {rel} {t}%.",
            cost.previous_week_avg_usd, cost.current_week_avg_usd
        ),
        ("latency_compliant", SignalValue::Bool(false)) => format!(
            "p95 latency ({} ms) exceeds the SLO target ({} ms).",
            slo.latency_p95_ms, slo.details.latency_target_p95_ms
        ),
        ("availability_pct", SignalValue::Number(v)) => {
            format!("Availability is {v:.4}% (target {}%), {rel} {t}%.", slo.details.availability_target_pct)
        }
        ("no_data", SignalValue::Bool(true)) => format!(
            "The SLO signals could not be read from Prometheus ({}).",
            slo.prometheus.as_ref().map(|p| p.no_data_reasons.join("; ")).unwrap_or_default()
        ),
        ("burn_rate_insufficient_data", SignalValue::Bool(true)) => format!(
            "Too few events to judge the burn rate ({}).",
            slo.prometheus.as_ref().and_then(|p| p.insufficient_reason.clone()).unwrap_or_default()
        ),
        (signal, actual) => format!("{signal} is {actual}, {rel} {t}."),
    }
}

fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(format!("{indent}{line}"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(format!("{indent}{line}"));
    }
    lines.join("\n")
}

fn section(out: &mut String, title: &str) {
    out.push_str(RULE);
    out.push('\n');
    out.push_str(title);
    out.push('\n');
    out.push_str(RULE);
    out.push('\n');
}

/// The contributing factors: every condition of every matched rule up to and including the
/// winner (rules below the winner did not affect the outcome), deduplicated.
pub fn contributing_factors(d: &Decision, slo: &SloReport, cost: &CostReport) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if d.action == Action::Allow {
        return out;
    }
    for t in &d.trace {
        if t.matched && t.action != Action::Allow {
            for c in &t.conditions {
                let s = describe_condition(c, slo, cost);
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        if t.winner {
            break;
        }
    }
    out
}

/// Observations worth a look that did not drive the decision.
pub fn also_noted(d: &Decision, slo: &SloReport, cost: &CostReport) -> Vec<String> {
    let used: Vec<&str> = d
        .trace
        .iter()
        .filter(|t| t.matched && t.action != Action::Allow)
        .flat_map(|t| t.conditions.iter().map(|c| c.signal.as_str()))
        .collect();
    let mut out = Vec::new();
    // Without data the SLO figures are unknown, not breached.
    let slo_known = !slo.prometheus.as_ref().is_some_and(|p| p.no_data);
    // Without a latency source (an SLO spec without Guardrail's extension) latency is not read.
    let latency_read = slo.prometheus.as_ref().is_none_or(|p| p.latency_unavailable.is_none());
    if slo_known && latency_read && !slo.latency_compliant && !used.contains(&"latency_compliant") {
        out.push(format!(
            "p95 latency ({} ms) is above its target ({} ms).",
            slo.latency_p95_ms, slo.details.latency_target_p95_ms
        ));
    }
    if slo_known && !slo.availability_compliant && !used.contains(&"availability_pct") {
        out.push(format!(
            "Availability ({:.4}%) is below the SLO target ({}%).",
            slo.availability_pct, slo.details.availability_target_pct
        ));
    }
    if cost.spike_detected && !used.contains(&"cost_spike_pct") && !used.contains(&"cost_spike_detected") {
        out.push(format!(
            "Cloud spend rose {:+.2}% week over week (trend {}).",
            cost.wow_change_pct,
            cost.trend.as_str().to_uppercase()
        ));
    }
    if slo.latency_p99_compliant == Some(false) {
        out.push(format!(
            "p99 latency ({} ms) is above its target.",
            slo.latency_p99_ms.map(|v| v.to_string()).unwrap_or_default()
        ));
    }
    out
}

/// Recommended next steps for the decision and signals.
pub fn recommendations(d: &Decision, slo: &SloReport, cost: &CostReport) -> Vec<String> {
    let mut out = Vec::new();
    // A live source's label may be unknown (no data, too few events): then it is not "hot".
    let label = match &slo.prometheus {
        Some(p) if p.no_data => None,
        Some(p) => p.label,
        None => Some(slo.burn_rate),
    };
    let hot = matches!(label, Some(crate::slo::BurnLabel::High | crate::slo::BurnLabel::Critical));
    if slo.prometheus.as_ref().is_some_and(|p| p.no_data) {
        out.push("Check that Prometheus answers and that the SLO queries return fresh data.".to_string());
    }
    match d.action {
        Action::Block => {
            out.push("Freeze deployments to this service until the blocking condition clears.".to_string())
        }
        Action::Delay => out.push(format!(
            "Wait {} minutes, then run the gate again; the decision is re-evaluated from fresh signals.",
            d.delay_minutes
        )),
        Action::Warn => out.push("Deploy only with a reviewer aware of the warning below.".to_string()),
        Action::Allow => {}
    }
    if matches!(d.action, Action::Block | Action::Delay) && hot {
        out.push("Investigate recent error logs and traces; consider rolling back the last change.".into());
    }
    if matches!(d.action, Action::Block | Action::Delay)
        && !slo.latency_compliant
        && slo.latency_p95_ms.value.is_finite()
    {
        out.push("Profile the slowest request handlers and recent dependency changes.".into());
    }
    if cost.spike_detected {
        out.push("Open a FinOps review of the resources whose spend grew this week.".into());
    }
    if d.action != Action::Allow && slo.error_budget_pct < 30.0 {
        out.push("Prefer a canary or staged rollout while the error budget is low.".into());
    }
    if d.action == Action::Allow {
        out.push("All policies passed. Proceed with your standard review and rollout process.".into());
    }
    out
}

fn reliability(out: &mut String, slo: &SloReport) {
    if let Some(p) = slo.prometheus.as_ref().filter(|p| p.no_data) {
        out.push_str(&format!("  • No data from {}: {}\n", p.source, p.no_data_reasons.join("; ")));
        return;
    }
    out.push_str(&format!(
        "  • Availability       : {:.4}%  (target {}%)\n",
        slo.availability_pct, slo.details.availability_target_pct
    ));
    out.push_str(&format!("  • Error budget left  : {:.2}%\n", slo.error_budget_pct));
    match slo.prometheus.as_ref() {
        Some(p) if p.label.is_none() => out.push_str(&format!(
            "  • Burn rate          : insufficient data ({})\n",
            p.insufficient_reason.as_deref().unwrap_or("")
        )),
        Some(p) if p.burn_rate_value.is_none() => out.push_str(&format!(
            "  • Burn rate          : {}  (too few events for a value)\n",
            slo.burn_rate.as_str().to_uppercase()
        )),
        _ => out.push_str(&format!(
            "  • Burn rate          : {}  (×{:.1} the sustainable rate)\n",
            slo.burn_rate.as_str().to_uppercase(),
            slo.burn_rate_value
        )),
    }
    if let Some(why) = slo.prometheus.as_ref().and_then(|p| p.latency_unavailable.as_deref()) {
        out.push_str(&format!("  • Latency p95/p99    : not read ({why})\n"));
        return;
    }
    out.push_str(&format!(
        "  • Latency p95        : {} ms  ({} target {} ms)\n",
        slo.latency_p95_ms,
        if slo.latency_compliant { "within" } else { "above" },
        slo.details.latency_target_p95_ms
    ));
    match slo.latency_p99_ms {
        Some(v) => out.push_str(&format!("  • Latency p99        : {v} ms\n")),
        None => out.push_str("  • Latency p99        : not reported\n"),
    }
}

/// The full narrative (`guardrail explain`).
pub fn narrative(input: &NarrativeInput<'_>) -> String {
    let NarrativeInput { decision: d, slo, cost, generated_at, policies_path } = *input;
    let mut out = String::new();
    out.push_str("GUARDRAIL — DEPLOYMENT DECISION EXPLAINED\n\n");
    out.push_str(&format!("Generated : {generated_at}\n"));
    out.push_str(&format!("Service   : {}\n", slo.details.service));
    out.push_str(&format!("Decision  : {}\n", d.action));
    out.push_str(&format!("Policy    : [{}] {}\n\n", d.policy_id, d.policy_name));

    section(&mut out, "SUMMARY");
    out.push_str(&verdict(d.action, d.delay_minutes));
    out.push_str("\n\n");
    out.push_str(&wrap(&d.reason, 60, ""));
    out.push_str("\n\n");

    let factors = contributing_factors(d, slo, cost);
    if !factors.is_empty() {
        section(&mut out, "CONTRIBUTING FACTORS");
        for (i, f) in factors.iter().enumerate() {
            out.push_str(&format!("  {}. {}\n", i + 1, f));
        }
        out.push('\n');
    }
    let noted = also_noted(d, slo, cost);
    if !noted.is_empty() {
        section(&mut out, "ALSO NOTED");
        for n in &noted {
            out.push_str(&format!("  • {n}\n"));
        }
        out.push('\n');
    }
    if let Some(summary) = d.counterfactual_summary() {
        section(&mut out, "WHAT WOULD CHANGE THE DECISION");
        out.push_str(&wrap(&summary, 58, "  "));
        out.push_str("\n\n");
    }

    section(&mut out, "RELIABILITY SIGNALS");
    reliability(&mut out, slo);
    out.push('\n');

    section(&mut out, "FINOPS SIGNALS");
    out.push_str(&format!(
        "  • Week-over-week change : {:+.2}%  ({})\n",
        cost.wow_change_pct,
        cost.trend.as_str().to_uppercase()
    ));
    out.push_str(&format!(
        "  • Current week avg      : ${:.2}/day  ({} to {})\n",
        cost.current_week_avg_usd, cost.current_week.start, cost.current_week.end
    ));
    out.push_str(&format!(
        "  • Previous week avg     : ${:.2}/day  ({} to {})\n",
        cost.previous_week_avg_usd, cost.previous_week.start, cost.previous_week.end
    ));
    out.push_str(&match (cost.budget_usd, cost.budget_utilisation_pct) {
        (Some(budget), Some(pct)) => format!(
            "  • Spend in series       : ${:.2}  of ${budget:.2} monthly budget ({pct:.2}%)\n",
            cost.mtd_spend_usd
        ),
        _ => format!("  • Spend in series       : ${:.2}  (budget utilisation unavailable)\n", cost.mtd_spend_usd),
    });
    out.push_str(&format!("  • Spike detected        : {}\n\n", if cost.spike_detected { "YES" } else { "NO" }));

    let recs = recommendations(d, slo, cost);
    if !recs.is_empty() {
        section(&mut out, "RECOMMENDED ACTIONS");
        for (i, r) in recs.iter().enumerate() {
            out.push_str(&format!("  {}. {}\n", i + 1, r));
        }
        out.push('\n');
    }

    section(&mut out, "CONTEXT & NEXT STEPS");
    out.push_str(&wrap(&d.remediation, 58, "  "));
    out.push_str("\n\n  If you believe this decision is incorrect:\n");
    out.push_str(&format!("    • Review the active policies in {policies_path} (guardrail policy lint)\n"));
    out.push_str("    • Check the signals with guardrail slo and guardrail cost\n");
    out.push_str("    • Escalate to the on-call SRE team with this report and its audit record id\n");
    out.push_str(RULE);
    out.push('\n');
    out
}
