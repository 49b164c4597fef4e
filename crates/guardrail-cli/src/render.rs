//! Human-readable output: terminal reports (coloured on a TTY unless `NO_COLOR`), and the
//! GitHub Actions outputs, annotations and step summary.

use std::io::Write;
use std::path::Path;

use guardrail_core::cost::CostReport;
use guardrail_core::policy::Action;
use guardrail_core::slo::SloReport;

use guardrail_gate::view::GateView;

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
        if c.service == guardrail_core::signals::UNKNOWN_SERVICE {
            // A billing export names an application only through --cost-tag.
            "  Service            unknown (the cost data names no application; --cost-tag selects one's rows)"
                .to_string()
        } else {
            format!("  Service            {}", c.service)
        },
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
        match (c.budget_usd, c.budget_utilisation_pct) {
            (Some(budget), Some(pct)) => format!(
                "  Spend in series    ${:.2}  of ${budget:.2} monthly budget ({pct:.2}%); this month ${:.2}",
                c.mtd_spend_usd, c.month_to_date_usd
            ),
            _ => format!(
                "  Spend in series    ${:.2}; this month ${:.2}\n  Monthly budget     unavailable: {}",
                c.mtd_spend_usd,
                c.month_to_date_usd,
                c.budget_unavailable.as_deref().unwrap_or(guardrail_core::cost::NO_BUDGET)
            ),
        },
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
pub fn gate_report(o: &GateView<'_>, st: Style) -> String {
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
pub fn github_annotation(o: &GateView<'_>) -> Option<String> {
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
pub fn github_summary(o: &GateView<'_>) -> String {
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

/// Standard output and error as every command writes them: [`guardrail_gate::out`] (shared with
/// `guardrail serve`), here under the path this crate's print macros use.
pub use guardrail_gate::out;

/// The job-summary section holding the audit chain's signed checkpoint (`gate --format
/// github` with a checkpoint key): the note verbatim in a code fence longer than any run of
/// backticks in it, so the copy outside the database is byte-exact.
pub fn github_checkpoint_summary(note: &str) -> String {
    let longest = note.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!(
        "### Audit checkpoint\n\nThe audit chain's signed checkpoint after this decision. Save the block as a file \
         and check the store later with `guardrail audit verify --checkpoint FILE --public-key KEY.pub`.\n\n\
         {fence}text\n{note}{fence}\n\n"
    )
}

/// Appends to a file named by an environment variable (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY).
pub fn append_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// The cells of one `guardrail audit list` row beyond id, time and kind: what the record is
/// about (the deploy action, or the remediation action and its verdict or result), the rule or
/// outcome, who acted, and the subject (service of a deploy, incident of the governor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCells {
    /// `DELAY`, `restart_api_pods → block_and_escalate`, `scale_worker_pool (ok)`, …
    pub action: String,
    /// The policy id, the governor's rule, or what happened (`needs approve`, `self_approval`).
    pub rule: String,
    /// The identity that asked, proposed, approved, executed, resolved or reviewed.
    pub by: String,
    /// The service of a deploy record, the incident of a governor record.
    pub subject: String,
}

/// Reads the cells of a record of `kind` from its body (the same reading as the dashboard's
/// audit table). A value the record lacks is `-`. The governor's and the deploy gate's records
/// are decoded into their typed bodies ([`guardrail_governor::record`],
/// [`guardrail_gate::gate::DecisionRecordBody`] and the others); kinds this version does not
/// know, and bodies that do not decode, are read by field name.
pub fn audit_cells(kind: &str, b: &serde_json::Value) -> AuditCells {
    let cell = |v: Option<String>| v.map(|v| terminal_safe(&v, 60)).unwrap_or_else(|| "-".into());
    let typed = match guardrail_governor::record::RecordKind::parse(kind) {
        Some(k) => governor_cells(k, b),
        None if kind == guardrail_governor::transcript::PLANNER_TRANSCRIPT => transcript_cells(b),
        None => deploy_cells(kind, b),
    };
    if let Some([action, rule, by, subject]) = typed {
        return AuditCells { action: cell(action), rule: cell(rule), by: cell(by), subject: cell(subject) };
    }
    // A kind this version does not know, or a body that does not decode as its kind: the
    // fields every kind of record names the same way.
    let s = |p: &str| b.pointer(p).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(str::to_string);
    let who = s("/requested_by/identity")
        .or_else(|| s("/requested_by"))
        .or_else(|| s("/released_by"))
        .or_else(|| s("/approver"))
        .or_else(|| s("/proposer"))
        .or_else(|| s("/by"))
        .or_else(|| s("/reviewer"))
        .or_else(|| s("/ci/actor"));
    let incident = s("/incident_id").map(|i| format!("incident {i}"));
    let service = s("/slo/details/service").or_else(|| s("/ci/service")).or_else(|| s("/service"));
    let action = s("/action").or_else(|| s("/gated_action"));
    let rule = s("/rule").or_else(|| s("/policy_id"));
    let subject = if kind.starts_with("deploy_") { service.or(incident) } else { incident.or(service) };
    AuditCells { action: cell(action), rule: cell(rule), by: cell(who), subject: cell(subject) }
}

/// A planner transcript: how the loop ended, the planner and model, the incident.
fn transcript_cells(b: &serde_json::Value) -> Option<[Option<String>; 4]> {
    let t: guardrail_governor::transcript::TranscriptBody = serde_json::from_value(b.clone()).ok()?;
    let some = |v: &str| Some(v.to_string()).filter(|v| !v.is_empty());
    let model = t.transcript.answered_by.as_deref().unwrap_or(&t.transcript.model);
    Some([
        some(&format!("plan {}", t.transcript.outcome.as_str())),
        some(&format!("{} {model}", t.transcript.planner)),
        None,
        some(&t.incident_id).map(|i| format!("incident {i}")),
    ])
}

/// Action, rule, who and subject of a governor record, from its typed body (`None` for a body
/// that does not decode).
fn governor_cells(kind: guardrail_governor::record::RecordKind, b: &serde_json::Value) -> Option<[Option<String>; 4]> {
    use guardrail_governor::record::{
        ApprovalRequestBody, ClaimBody, ClaimReleaseBody, DecisionBody, ErrorBody, ExecutionBody, ExecutionRefusedBody,
        GrantBody, RecordKind, RefusalBody, ResolvedBody, ReviewedBody, decode,
    };
    // An empty value is a missing one.
    fn some(v: &str) -> Option<String> {
        Some(v.to_string()).filter(|v| !v.is_empty())
    }
    fn with_reason(what: &str, reason: Option<&str>) -> String {
        match reason.filter(|r| !r.is_empty()) {
            Some(r) => format!("{what}: {r}"),
            None => what.to_string(),
        }
    }
    let incident = |id: &str| some(id).map(|i| format!("incident {i}"));
    Some(match kind {
        RecordKind::RemediationDecision => {
            let d: DecisionBody = decode(b).ok()?;
            let action = match (some(&d.gated_action), some(&d.decision)) {
                (Some(g), Some(v)) => Some(format!("{g} → {v}")),
                (g, v) => g.or(v),
            };
            [action, some(&d.rule), some(&d.proposer), incident(&d.incident_id)]
        }
        RecordKind::RemediationError => {
            let e: ErrorBody = decode(b).ok()?;
            let no = (Some("NO DECISION".to_string()), Some("could not decide".to_string()));
            [no.0, no.1, some(&e.proposer), incident(&e.incident_id)]
        }
        RecordKind::ApprovalRequest => {
            let r: ApprovalRequestBody = decode(b).ok()?;
            let needs = some(&r.requires).map(|x| format!("needs {x}"));
            [some(&r.action), needs, some(&r.proposer), incident(&r.incident_id)]
        }
        RecordKind::ApprovalRefused => {
            let r: RefusalBody = decode(b).ok()?;
            [Some("refused".into()), some(&r.code), some(&r.approver), incident(&r.incident_id)]
        }
        RecordKind::ApprovalGranted | RecordKind::ForceOverride => {
            let g: GrantBody = decode(b).ok()?;
            let what = if kind == RecordKind::ForceOverride { "force override" } else { "approved" };
            let who = some(&g.approver).or_else(|| some(&g.proposer));
            [some(&g.action), Some(with_reason(what, g.reason.as_deref())), who, incident(&g.incident_id)]
        }
        RecordKind::ExecutionClaim => {
            let c: ClaimBody = decode(b).ok()?;
            let claim = some(&c.claim).map(|k| format!("claim {k}"));
            [some(&c.action), claim, some(&c.requested_by), incident(&c.incident_id)]
        }
        RecordKind::ClaimRelease => {
            let r: ClaimReleaseBody = decode(b).ok()?;
            let what = some(&r.claim).map(|c| format!("released {c}")).unwrap_or_else(|| "released".into());
            let action = r.action.as_deref().and_then(some);
            [action, Some(with_reason(&what, Some(&r.reason))), some(&r.released_by), incident(&r.incident_id)]
        }
        RecordKind::RemediationExecution => {
            let e: ExecutionBody = decode(b).ok()?;
            let result = if e.ok {
                "ok"
            } else if e.ran {
                "failed"
            } else {
                "not run"
            };
            let who = some(&e.requested_by).or_else(|| e.approver.as_deref().and_then(some));
            let executor = some(&e.executor).map(|x| format!("executor {x}"));
            [some(&e.action).map(|a| format!("{a} ({result})")), executor, who, incident(&e.incident_id)]
        }
        RecordKind::ExecutionRefused => {
            let r: ExecutionRefusedBody = decode(b).ok()?;
            let why = match some(&r.authorised_action) {
                Some(a) => format!("refused: authorised is {a}"),
                None => "refused: not the authorised action".into(),
            };
            [some(&r.requested_action), Some(why), some(&r.requested_by), incident(&r.incident_id)]
        }
        RecordKind::IncidentResolved => {
            let r: ResolvedBody = decode(b).ok()?;
            let learned = some(&r.runbook_id).map(|x| format!("learned {x}"));
            [some(&r.action), learned, some(&r.by), incident(&r.incident_id).or_else(|| some(&r.service))]
        }
        RecordKind::RunbookReviewed => {
            let r: ReviewedBody = decode(b).ok()?;
            let reviewed = some(&r.runbook_id).map(|x| format!("reviewed {x}"));
            let subject = r.incident_id.as_deref().and_then(incident).or_else(|| some(&r.service));
            [some(&r.recommended_action), reviewed, some(&r.by), subject]
        }
    })
}

/// Action, rule, who and subject of a deploy record (`deploy_decision`, `deploy_simulation`,
/// `deploy_error`), from its typed body; `None` for another kind or a body that does not decode.
/// Who asked is the authenticated requester, else the CI context's actor; the subject is the
/// service of the signals, else the CI context's.
fn deploy_cells(kind: &str, b: &serde_json::Value) -> Option<[Option<String>; 4]> {
    use guardrail_gate::gate::{self, DecisionRecordBody, ErrorRecordBody, RecordedRun};
    fn some(v: &str) -> Option<String> {
        Some(v.to_string()).filter(|v| !v.is_empty())
    }
    let who = |run: &RecordedRun| {
        let asked = run.requested_by.as_ref().and_then(|r| r.identity.as_deref()).and_then(some);
        asked.or_else(|| run.ci.actor.as_deref().and_then(some))
    };
    Some(match kind {
        gate::RECORD_KIND | gate::SIMULATION_KIND => {
            // A simulation is a decision with its replaced signals beside it.
            let d: DecisionRecordBody = gate::decode(b).ok()?;
            let service = d.service().filter(|s| !s.is_empty()).or_else(|| d.run.ci.service.as_deref().and_then(some));
            [d.verdict.action.map(|a| a.to_string()), some(&d.verdict.policy_id), who(&d.run), service]
        }
        gate::ERROR_KIND => {
            let e: ErrorRecordBody = gate::decode(b).ok()?;
            let service = e.run.ci.service.as_deref().and_then(some);
            [Some("NO DECISION".into()), Some("could not decide".into()), who(&e.run), service]
        }
        _ => return None,
    })
}

/// One line of `guardrail audit list`: id, time, kind, then [`audit_cells`].
pub fn audit_list_line(id: &str, recorded_at: &str, kind: &str, body: &serde_json::Value) -> String {
    let c = audit_cells(kind, body);
    let kind = terminal_safe(kind, 40);
    audit_list_line_raw([id, recorded_at, &kind, &c.action, &c.rule, &c.by, &c.subject])
}

/// The header line of `guardrail audit list`.
pub fn audit_list_header() -> String {
    audit_list_line_raw(["ID", "RECORDED AT", "KIND", "ACTION", "RULE / OUTCOME", "BY", "SUBJECT"])
}

fn audit_list_line_raw(c: [&str; 7]) -> String {
    let line = format!("{:<22} {:<31} {:<21} {:<40} {:<28} {:<16} {}", c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
    line.trim_end().to_string()
}

/// The planner transcript of `incident show`: which planner and model, how the loop ended and
/// why, the settings, the actions offered, what compress cut, each model call (what was sent,
/// what came back, tokens, latency), each tool call and its result, and the plan as the model
/// reported it (recorded, never decisive). Model and tool text is untrusted: control characters
/// are shown escaped and long texts cut (`--format json` has it whole).
pub fn transcript_lines(
    r: &guardrail_governor::TranscriptRef,
    t: Option<&guardrail_governor::Transcript>,
) -> Vec<String> {
    let safe = |v: &str, max: usize| terminal_safe(v, max);
    let mut v = vec![format!(
        "  planner          {} {} ({}) — transcript record {}",
        safe(&r.planner, 40),
        safe(&r.model, 80),
        safe(&r.outcome, 20),
        safe(&r.record, 40)
    )];
    if let Some(reason) = &r.reason {
        v.push(format!("  planner reason   {}", safe(reason, 300)));
    }
    let Some(t) = t else {
        v.push("  transcript       NOT FOUND in the trail with the hash the decision names".into());
        return v;
    };
    v.push("  transcript:".into());
    v.push(format!(
        "    model          {} asked via {}{}",
        safe(&t.model, 80),
        safe(&t.provider, 20),
        t.answered_by.as_deref().map(|m| format!(", answered by {}", safe(m, 80))).unwrap_or_default()
    ));
    let st = &t.settings;
    v.push(format!(
        "    budget         {} tool rounds, {} tokens, {} ms; fallback {}",
        st.max_tool_rounds,
        st.max_total_tokens,
        st.wall_clock_ms,
        safe(&st.fallback, 20)
    ));
    if !st.context_mode.is_empty() {
        let c = &t.compress;
        v.push(format!(
            "    compress       {} ({} tokens): {} → {} tokens, {} cut(s){}",
            safe(&st.context_mode, 30),
            st.context_budget_tokens,
            c.tokens_before,
            c.tokens_after,
            c.cuts.len() + c.tool_result_cuts.len(),
            c.cuts
                .iter()
                .chain(&c.tool_result_cuts)
                .map(|x| format!("; {} {} {}", safe(&x.kind, 20), safe(&x.id, 60), safe(&x.how, 12)))
                .collect::<String>()
        ));
    }
    let offered: Vec<String> = t
        .offered_actions
        .iter()
        .map(|o| match &o.runbook_id {
            Some(id) => format!("{} ({})", safe(&o.action, 60), safe(id, 60)),
            None => safe(&o.action, 60),
        })
        .collect();
    v.push(format!("    offered        {}", offered.join(", ")));
    if !t.tools_offered.is_empty() {
        v.push(format!("    tools          {}", safe(&t.tools_offered.join(", "), 300)));
    }
    for x in &t.exchanges {
        let sent: usize = x
            .sent
            .iter()
            .map(|m| match m {
                guardrail_governor::transcript::TranscriptMessage::User { text } => text.len(),
                guardrail_governor::transcript::TranscriptMessage::Assistant { text, .. } => {
                    text.as_deref().map_or(0, str::len)
                }
                guardrail_governor::transcript::TranscriptMessage::ToolResult { content, .. } => content.len(),
            })
            .sum();
        let head = format!(
            "    call {:<9} sent {} message(s), {sent} bytes (~{} tokens), {:.0} ms",
            x.round,
            x.sent.len(),
            x.estimated_input_tokens,
            x.latency_ms
        );
        v.push(head);
        match (&x.response, &x.error) {
            (Some(a), _) => {
                v.push(format!(
                    "      answer       {} stop {}, {} in / {} out tokens, {} attempt(s)",
                    safe(&a.model, 60),
                    safe(&a.stop, 20),
                    a.input_tokens,
                    a.output_tokens,
                    a.attempts
                ));
                for c in &a.tool_calls {
                    v.push(format!("      asks         {} {}", safe(&c.name, 60), safe(&c.arguments, 200)));
                }
                if let Some(text) = &a.text {
                    v.push(format!("      text         {}", safe(text, 300)));
                }
            }
            (None, Some(e)) => v.push(format!("      error        {}", safe(e, 300))),
            (None, None) => {}
        }
    }
    for c in &t.tool_calls {
        let status = match (&c.refused, c.ok) {
            (Some(why), _) => format!("REFUSED {}", safe(why, 30)),
            (None, true) => "ok".to_string(),
            (None, false) => "failed".to_string(),
        };
        v.push(format!(
            "    tool {:<9} {} {} → {status}: {}",
            format!("{}.{}", c.round, safe(&c.id, 24)),
            safe(&c.name, 60),
            safe(&c.arguments, 160),
            safe(&c.result, 160)
        ));
    }
    if let Some(p) = &t.reported {
        let ignored: Vec<&str> = p.ignored_fields.keys().map(String::as_str).collect();
        v.push(format!(
            "    reported       action {:?}, confidence {}{} (recorded as reported; the gate reads none of it)",
            safe(&p.proposed_action, 120),
            p.confidence_initial.map(|c| c.to_string()).unwrap_or_else(|| "none".into()),
            if ignored.is_empty() {
                String::new()
            } else {
                format!(", ignored fields: {}", safe(&ignored.join(", "), 200))
            }
        ));
    }
    let u = &t.usage;
    v.push(format!(
        "    usage          {} call(s), {} tool round(s), {} tool call(s), {} in / {} out tokens{}, {:.0} ms",
        u.calls,
        u.tool_rounds,
        u.tool_calls,
        u.input_tokens,
        u.output_tokens,
        if u.estimated { " (estimated)" } else { "" },
        u.elapsed_ms
    ));
    let outcome = match t.reason() {
        Some(why) => format!("{}: {}", t.outcome.as_str(), safe(&why, 300)),
        None => t.outcome.as_str().to_string(),
    };
    v.push(format!("    outcome        {outcome}"));
    v
}

/// A recorded value as one terminal cell: control characters (an escape sequence in an
/// incident id or a reason) shown escaped, never sent to the terminal, and at most `max`
/// characters (`…` when cut).
fn terminal_safe(v: &str, max: usize) -> String {
    let mut out = String::new();
    for ch in v.chars() {
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(1)).collect::<String>() + "…";
    }
    out
}

#[cfg(test)]
mod audit_list_tests {
    use super::*;
    use serde_json::json;

    fn cells(kind: &str, b: serde_json::Value) -> [String; 4] {
        let c = audit_cells(kind, &b);
        [c.action, c.rule, c.by, c.subject]
    }

    #[test]
    fn deploy_records_show_action_rule_requester_and_service() {
        let b = json!({"action": "DELAY", "policy_id": "P005", "ci": {"actor": "octocat"},
            "slo": {"details": {"service": "checkout-api"}}});
        assert_eq!(cells("deploy_decision", b), ["DELAY", "P005", "octocat", "checkout-api"]);
        let b = json!({"action": "ALLOW", "policy_id": "P008", "ci": {"actor": "octocat", "service": "shop"},
            "requested_by": {"identity": "ci-pipeline", "role": "deployer", "via": "http"}});
        assert_eq!(cells("deploy_decision", b.clone()), ["ALLOW", "P008", "ci-pipeline", "shop"]);
        assert_eq!(cells("deploy_simulation", b)[..2], ["ALLOW", "P008"]);
        // A local MCP client has no identity: the CI context's actor then.
        let b = json!({"action": "BLOCK", "policy_id": "P001", "ci": {"actor": "octocat"},
            "requested_by": {"identity": null, "via": "mcp-stdio"}});
        assert_eq!(cells("deploy_decision", b)[2], "octocat");
        let b = json!({"outcome": "error", "errors": ["x"], "ci": {"service": "shop"}});
        assert_eq!(cells("deploy_error", b), ["NO DECISION", "could not decide", "-", "shop"]);
    }

    #[test]
    fn a_planner_transcript_shows_its_outcome_planner_and_incident() {
        let b = json!({"incident_id": "inc-1", "transcript": {"planner": "openai", "model": "gpt-4o",
            "answered_by": "gpt-4o-2024-08-06", "outcome": "failed"}});
        assert_eq!(cells("planner_transcript", b), ["plan failed", "openai gpt-4o-2024-08-06", "-", "incident inc-1"]);
    }

    #[test]
    fn governor_records_show_the_action_the_verdict_and_who() {
        let dec = json!({"gated_action": "throttle", "decision": "block_and_escalate", "rule": "multiple_contradictions",
            "proposer": "alice", "incident_id": "inc-1"});
        assert_eq!(
            cells("remediation_decision", dec),
            ["throttle → block_and_escalate", "multiple_contradictions", "alice", "incident inc-1"]
        );
        let req = json!({"action": "throttle", "requires": "approve", "proposer": "alice", "incident_id": "inc-1"});
        assert_eq!(cells("approval_request", req), ["throttle", "needs approve", "alice", "incident inc-1"]);
        let refused = json!({"approver": "alice", "code": "self_approval", "incident_id": "inc-1"});
        assert_eq!(cells("approval_refused", refused), ["refused", "self_approval", "alice", "incident inc-1"]);
        let granted = json!({"action": "throttle", "approver": "bob", "proposer": "alice", "reason": "looked"});
        assert_eq!(cells("approval_granted", granted)[..3], ["throttle", "approved: looked", "bob"]);
        let fo = json!({"action": "throttle", "approver": "ic", "reason": "CAB-1"});
        assert_eq!(cells("force_override", fo)[..3], ["throttle", "force override: CAB-1", "ic"]);
        let claim = json!({"action": "throttle", "claim": "7-ab#0", "requested_by": "bob"});
        assert_eq!(cells("execution_claim", claim)[..3], ["throttle", "claim 7-ab#0", "bob"]);
        let ex = json!({"action": "throttle", "ok": true, "ran": true, "executor": "dry-run", "requested_by": "bob",
            "approver": "carol"});
        assert_eq!(cells("remediation_execution", ex)[..3], ["throttle (ok)", "executor dry-run", "bob"]);
        let failed = json!({"action": "throttle", "ok": false, "ran": true});
        assert_eq!(cells("remediation_execution", failed)[0], "throttle (failed)");
        let not_run = json!({"action": "throttle", "ok": false, "ran": false});
        assert_eq!(cells("remediation_execution", not_run)[0], "throttle (not run)");
        let rel = json!({"action": "throttle", "claim": "7-ab#0", "claimed_by": "bob", "released_by": "carol",
            "reason": "executor died", "incident_id": "inc-1"});
        assert_eq!(
            cells("claim_release", rel),
            ["throttle", "released 7-ab#0: executor died", "carol", "incident inc-1"]
        );
        let xr = json!({"requested_action": "drop_db", "authorised_action": "throttle", "requested_by": "bob"});
        assert_eq!(cells("execution_refused", xr)[..3], ["drop_db", "refused: authorised is throttle", "bob"]);
        let res = json!({"action": "scale", "by": "bob", "runbook_id": "learned-1", "incident_id": "inc-2"});
        assert_eq!(cells("incident_resolved", res), ["scale", "learned learned-1", "bob", "incident inc-2"]);
        let rev =
            json!({"runbook_id": "learned-1", "by": "carol", "recommended_action": "scale", "incident_id": "inc-2"});
        assert_eq!(cells("runbook_reviewed", rev), ["scale", "reviewed learned-1", "carol", "incident inc-2"]);
        let err = json!({"outcome": "error", "errors": ["no kb"], "proposer": "dave", "incident_id": "inc-3"});
        assert_eq!(cells("remediation_error", err), ["NO DECISION", "could not decide", "dave", "incident inc-3"]);
    }

    #[test]
    fn recorded_text_cannot_drive_the_terminal_and_long_text_is_cut() {
        let b = json!({"action": "x\u{1b}[2Jy", "approver": "bob", "reason": "r".repeat(200)});
        let c = audit_cells("approval_granted", &b);
        assert_eq!(c.action, "x\\u{1b}[2Jy");
        assert_eq!(c.rule.chars().count(), 60);
        assert!(c.rule.ends_with('…'));
        assert!(!audit_list_line("1-a", "t", "approval_granted", &b).contains('\u{1b}'));
        assert_eq!(cells("something_new", json!({}))[..], ["-", "-", "-", "-"]);
        // A body that does not decode as its kind is read by the names every kind uses.
        let odd = json!({"action": "DELAY", "policy_id": "P005", "delay_minutes": "soon", "ci": {"actor": "octocat"}});
        assert_eq!(cells("deploy_decision", odd), ["DELAY", "P005", "octocat", "-"]);
        let newer = json!({"gated_action": "scale", "rule": "r1", "by": "bob", "incident_id": "inc-9"});
        assert_eq!(cells("something_new", newer), ["scale", "r1", "bob", "incident inc-9"]);
    }
}
