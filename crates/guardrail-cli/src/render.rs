//! Human-readable output: terminal reports (coloured on a TTY unless `NO_COLOR`), and the
//! GitHub Actions outputs, annotations and step summary.

use std::io::Write;
use std::path::Path;

use guardrail_core::cost::CostReport;
use guardrail_core::policy::Action;
use guardrail_core::slo::SloReport;

use crate::gate::GateOutput;

/// ANSI styling that can be switched off.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Emit escape codes.
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
    /// Bold.
    pub fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    /// Dimmed.
    pub fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
    /// Colour for an action.
    pub fn action(&self, a: Action) -> String {
        let code = match a {
            Action::Allow => "1;32",
            Action::Warn => "1;33",
            Action::Delay => "1;35",
            Action::Block => "1;31",
        };
        self.paint(code, a.as_str())
    }
    /// Green when ok, red otherwise.
    pub fn ok(&self, ok: bool, t: &str) -> String {
        self.paint(if ok { "32" } else { "31" }, t)
    }
}

fn icon(a: Action) -> &'static str {
    match a {
        Action::Allow => "✅",
        Action::Warn => "⚠️ ",
        Action::Delay => "⏳",
        Action::Block => "🚫",
    }
}

/// Budget bar of 10 cells.
pub fn budget_bar(pct: f64) -> String {
    let filled = ((pct / 100.0 * 10.0).round() as i64).clamp(0, 10) as usize;
    format!("[{}{}]", "█".repeat(filled), "░".repeat(10 - filled))
}

/// The SLO section lines.
pub fn slo_lines(s: &SloReport, st: Style) -> Vec<String> {
    if let Some(p) = &s.prometheus
        && p.no_data
    {
        return vec![
            format!("  Service            {}", s.details.service),
            format!("  Source             {}: {}", p.source, st.ok(false, "NO DATA")),
            format!("  Why                {}", p.no_data_reasons.join("; ")),
            format!("  Overall            {}", st.ok(false, "NO DATA (never ALLOW without a no_data rule)")),
        ];
    }
    let mut v = vec![
        format!("  Service            {}", s.details.service),
        format!(
            "  Availability       {:.4}%  target {}%  {}",
            s.availability_pct,
            s.details.availability_target_pct,
            st.ok(s.availability_compliant, if s.availability_compliant { "ok" } else { "BELOW TARGET" })
        ),
        format!(
            "  Error budget left  {:6.2}%  {}  ({} of {} requests failed)",
            s.error_budget_pct,
            budget_bar(s.error_budget_pct),
            s.details.failed_requests,
            s.details.total_requests
        ),
        format!(
            "  Burn rate          {}  ×{:.2} (mean of last 3; 24h mean ×{:.2})",
            s.burn_rate.as_str().to_uppercase(),
            s.burn_rate_value,
            s.details.avg_burn_rate
        ),
        format!(
            "  Latency p95        {} ms  limit {} ms  {}",
            s.latency_p95_ms,
            s.details.latency_target_p95_ms,
            st.ok(s.latency_compliant, if s.latency_compliant { "ok" } else { "BREACHED" })
        ),
    ];
    v.push(match (s.latency_p99_ms, s.details.latency_target_p99_ms, s.latency_p99_compliant) {
        (Some(p), Some(limit), Some(ok)) => {
            format!("  Latency p99        {p} ms  limit {limit} ms  {}", st.ok(ok, if ok { "ok" } else { "BREACHED" }))
        }
        (Some(p), _, _) => format!("  Latency p99        {p} ms"),
        (None, _, _) => "  Latency p99        not reported".to_string(),
    });
    v.push(format!("  Overall            {}", st.ok(s.healthy, if s.healthy { "HEALTHY" } else { "DEGRADED" })));
    // An SLO spec without a latency source: latency is not read (its signals are unavailable).
    if let Some(why) = s.prometheus.as_ref().and_then(|p| p.latency_unavailable.as_deref()) {
        v.retain(|l| !l.starts_with("  Latency p"));
        let at = v.iter().position(|l| l.starts_with("  Overall")).unwrap_or(v.len());
        v.insert(at, format!("  Latency            {} ({why})", st.ok(false, "NOT READ")));
        if let Some(line) = v.iter_mut().find(|l| l.starts_with("  Overall")) {
            *line = format!("  Overall            {}", st.ok(false, "UNKNOWN (latency not read)"));
        }
    }
    if let Some(p) = &s.prometheus {
        prometheus_lines(p, st, &mut v);
    }
    v
}

/// Burn-rate lines for counts read from Prometheus: the label from the tiers, each window's
/// burn rate and each tier's state (replaces the file source's "mean of last 3" line).
fn prometheus_lines(p: &guardrail_core::burn::BurnReport, st: Style, v: &mut Vec<String>) {
    use guardrail_core::burn::TierState;
    let over = p.burn_rate_value_window.map(|w| w.to_string()).unwrap_or_default();
    let burn = match (p.label, p.burn_rate_value) {
        (Some(l), Some(x)) => format!("  Burn rate          {}  ×{x:.2} over {over}", l.as_str().to_uppercase()),
        (Some(l), None) => {
            format!("  Burn rate          {}  (too few events over {over} for a value)", l.as_str().to_uppercase())
        }
        (None, _) => format!(
            "  Burn rate          {}  ({})",
            st.ok(false, "INSUFFICIENT DATA"),
            p.insufficient_reason.as_deref().unwrap_or("")
        ),
    };
    if let Some(line) = v.iter_mut().find(|l| l.starts_with("  Burn rate")) {
        *line = burn;
    }
    let windows: Vec<String> = p
        .windows
        .iter()
        .filter(|w| w.window != p.period)
        .map(|w| match (w.burn_rate, w.sufficient) {
            (Some(b), true) => format!("{} ×{b:.2}", w.window),
            (Some(b), false) => format!("{} ×{b:.2}*", w.window),
            (None, _) => format!("{} -", w.window),
        })
        .collect();
    let tiers: Vec<String> = p
        .tiers
        .iter()
        .map(|t| {
            let state = match t.state {
                TierState::Firing => st.ok(false, "FIRING"),
                TierState::Quiet => "quiet".to_string(),
                TierState::InsufficientData => st.ok(false, "undecided"),
            };
            format!("{} >{}× {}+{} {state}", t.name, t.factor, t.long, t.short)
        })
        .collect();
    let at = v.iter().position(|l| l.starts_with("  Latency")).unwrap_or(v.len());
    v.insert(at, format!("  Tiers              {}", tiers.join(" · ")));
    v.insert(at, format!("  Windows            {}  (* too few events)", windows.join("  ")));
}

/// The cost section lines.
pub fn cost_lines(c: &CostReport, _st: Style) -> Vec<String> {
    vec![
        format!("  Service            {}", c.service),
        format!(
            "  Previous week      ${:.2}/day  ({} to {})",
            c.previous_week_avg_usd, c.previous_week.start, c.previous_week.end
        ),
        format!(
            "  Current week       ${:.2}/day  ({} to {})",
            c.current_week_avg_usd, c.current_week.start, c.current_week.end
        ),
        format!("  Week over week     {:+.2}%  trend {}", c.wow_change_pct, c.trend.as_str().to_uppercase()),
        format!(
            "  Spike              {}  (warn at {}%, spiking at {}%)",
            if c.spike_detected { "YES" } else { "no" },
            c.details.warn_threshold,
            c.details.block_threshold
        ),
        format!(
            "  Spend in series    ${:.2}  of ${:.2} monthly budget ({:.2}%); this month ${:.2}",
            c.mtd_spend_usd, c.budget_usd, c.budget_utilisation_pct, c.month_to_date_usd
        ),
        match (c.anomaly.score, &c.anomaly.unavailable) {
            (Some(score), _) => format!(
                "  Anomaly score      {score:+.2}  ({} vs median ${:.2} of the {} days before)",
                c.anomaly.latest_date,
                c.anomaly.median.unwrap_or(0.0),
                c.anomaly.baseline_days
            ),
            (None, why) => format!("  Anomaly score      n/a ({})", why.as_deref().unwrap_or("no baseline")),
        },
        if c.estimated_days.is_empty() {
            "  Estimated days     none".to_string()
        } else {
            let days: Vec<String> = c.estimated_days.iter().map(|d| d.to_string()).collect();
            format!("  Estimated days     {} (not final: {})", days.len(), days.join(", "))
        },
    ]
}

/// The full gate report.
pub fn gate_report(o: &GateOutput<'_>, st: Style) -> String {
    let mut out = String::new();
    let line = "─".repeat(64);
    out.push_str(&format!("{}\n", st.dim(&line)));
    out.push_str(&format!("  Decision  {} {}    exit {}\n", icon(o.action), st.action(o.action), o.exit_code));
    out.push_str(&format!("  Policy    [{}] {}\n", o.policy_id, o.policy_name));
    out.push_str(&format!("  Reason    {}\n", o.reason));
    for w in &o.freeze.active {
        let kind = match w.kind {
            guardrail_core::freeze::WindowKind::Freeze => "Freeze",
            guardrail_core::freeze::WindowKind::Maintenance => "Maint.",
        };
        out.push_str(&format!("  {kind}    {} ({} to {}, {})\n", w.name, w.start, w.end, w.timezone));
    }
    if o.action == Action::Delay {
        out.push_str(&format!(
            "  Delay     {} minutes — ask again after {}\n",
            o.delay_minutes,
            o.retry_after.as_deref().unwrap_or("?")
        ));
    }
    out.push_str(&format!("  Next      {}\n", o.remediation));
    if !o.conditions.is_empty() {
        out.push_str("  Because\n");
        for c in o.conditions {
            out.push_str(&format!(
                "    • {} {} {}  (actual {})\n",
                c.signal,
                c.operator.symbol(),
                c.threshold,
                c.actual
            ));
        }
    }
    if let Some(cf) = &o.counterfactual {
        out.push_str(&format!("  To allow  {}\n", cf.summary));
    }
    out.push_str(&format!("{}\n  {}\n", st.dim(&line), st.bold("SLO")));
    for l in slo_lines(o.slo, st) {
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str(&format!("{}\n  {}\n", st.dim(&line), st.bold("Cost")));
    for l in cost_lines(o.cost, st) {
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str(&format!("{}\n  {}\n", st.dim(&line), st.bold("Policies (first match wins)")));
    for t in o.trace {
        let mark = if t.winner {
            st.bold("▶ decided")
        } else if t.matched {
            "  also matched".to_string()
        } else {
            String::new()
        };
        out.push_str(&format!("    {:<6} {:<6} {:<40} {}\n", t.id, t.action.as_str(), truncate(&t.name, 40), mark));
    }
    for w in o.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    out.push_str(&format!("{}\n", st.dim(&line)));
    if let Some(a) = &o.audit {
        out.push_str(&format!("  Audit     record {} in {}\n", a.id, a.store));
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// GitHub workflow command for the decision (annotation).
pub fn github_annotation(o: &GateOutput<'_>) -> Option<String> {
    let esc = |s: &str| s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    match o.action {
        Action::Allow => None,
        Action::Warn => Some(format!("::warning title=Deployment Warning ({})::{}", o.policy_id, esc(o.reason))),
        Action::Delay => Some(format!(
            "::warning title=Deployment Delayed {} min ({})::{} Retry after {}.",
            o.delay_minutes,
            o.policy_id,
            esc(o.reason),
            o.retry_after.as_deref().unwrap_or("?")
        )),
        Action::Block => Some(format!("::error title=Deployment Blocked ({})::{}", o.policy_id, esc(o.reason))),
    }
}

/// Markdown step summary.
pub fn github_summary(o: &GateOutput<'_>) -> String {
    let mut s = String::new();
    s.push_str(&format!("## Guardrail: {} {}\n\n", icon(o.action), o.action));
    s.push_str(&format!(
        "**Policy** `{}` {}  \n**Reason** {}  \n**Next** {}\n\n",
        o.policy_id,
        md(o.policy_name),
        md(o.reason),
        md(o.remediation)
    ));
    if let Some(r) = &o.retry_after {
        s.push_str(&format!("**Retry after** {r} ({} minutes)\n\n", o.delay_minutes));
    }
    if let Some(cf) = &o.counterfactual {
        s.push_str(&format!("**To allow** {}\n\n", md(&cf.summary)));
    }
    s.push_str("| signal | value |\n|---|---|\n");
    match &o.slo.prometheus {
        Some(p) if p.no_data => s.push_str(&format!(
            "| SLO signals | **no data** from {}: {} |\n",
            p.source,
            md(&p.no_data_reasons.join("; "))
        )),
        _ => {
            s.push_str(&format!("| error budget left | {:.2}% |\n", o.slo.error_budget_pct));
            match &o.slo.prometheus {
                Some(p) if p.label.is_none() => s.push_str("| burn rate | **insufficient data** |\n"),
                _ => s.push_str(&format!(
                    "| burn rate | {} (×{:.2}) |\n",
                    o.slo.burn_rate.as_str(),
                    o.slo.burn_rate_value
                )),
            }
            s.push_str(&format!("| availability | {:.4}% |\n", o.slo.availability_pct));
            match o.slo.prometheus.as_ref().and_then(|p| p.latency_unavailable.as_deref()) {
                Some(why) => s.push_str(&format!("| p95 latency | **not read** ({}) |\n", md(why))),
                None => s.push_str(&format!(
                    "| p95 latency | {} ms (limit {} ms) |\n",
                    o.slo.latency_p95_ms, o.slo.details.latency_target_p95_ms
                )),
            }
        }
    }
    s.push_str(&format!("| cost week over week | {:+.2}% ({}) |\n\n", o.cost.wow_change_pct, o.cost.trend.as_str()));
    s.push_str("| rule | action | matched |\n|---|---|---|\n");
    for t in o.trace {
        let m = if t.winner {
            "**decided**"
        } else if t.matched {
            "yes"
        } else {
            ""
        };
        s.push_str(&format!("| {} {} | {} | {} |\n", t.id, md(&t.name), t.action, m));
    }
    if let Some(a) = &o.audit {
        s.push_str(&format!("\nAudit record `{}`\n", a.id));
    }
    s
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('<', "&lt;").replace('>', "&gt;")
}

/// Appends to a file named by an environment variable (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY).
pub fn append_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
