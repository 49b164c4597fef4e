// Guardrail dashboard. No framework, no build step. Every piece of text from the server goes
// into the page with textContent or as an SVG text node: nothing from policies, inputs or
// records is ever parsed as HTML. Updates arrive over server-sent events (/api/events); the
// page does not poll.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function setText(id, text) {
  $(id).textContent = text === undefined || text === null ? "—" : String(text);
}

function badge(text, level) {
  return el("span", text, "badge " + (level || ""));
}

function num(v, dp) {
  return typeof v === "number" ? v.toFixed(dp) : "—";
}

function budgetLevel(pct) {
  return pct < 10 ? "bad" : pct < 30 ? "mid" : pct < 60 ? "info" : "good";
}

const COLOURS = { good: "#3fb950", mid: "#d29922", info: "#58a6ff", bad: "#f85149" };

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  let body;
  try {
    body = await r.json();
  } catch (e) {
    body = { ok: false, error: "the server answered " + r.status + " without JSON" };
  }
  return body;
}

// ------------------------------------------------------------------ banner

function showError(message) {
  const b = $("banner");
  b.className = "card wide ERROR";
  setText("action", "NO DECISION");
  $("action").className = "act BLOCK";
  setText("policy", "");
  setText("reason", "The gate cannot decide on the current inputs, so nothing may be deployed until they are fixed.");
  setText("remediation", "");
  setText("counterfactual", "");
  $("delay").hidden = true;
  clear($("badges"));
  const errs = $("errors");
  clear(errs);
  for (const line of String(message).split("\n")) errs.appendChild(el("div", line));
}

function showDecision(d) {
  const b = $("banner");
  b.className = "card wide " + d.action;
  setText("action", d.action);
  $("action").className = "act " + d.action;
  setText("policy", "[" + d.policy_id + "] " + d.policy_name);
  setText("reason", d.reason);
  setText("remediation", d.remediation);
  setText("counterfactual", d.counterfactual ? d.counterfactual.summary : "");
  const delay = $("delay");
  if (d.delay_minutes > 0) {
    delay.hidden = false;
    delay.textContent = "wait " + d.delay_minutes + " min";
  } else {
    delay.hidden = true;
  }
  clear($("errors"));
  const badges = $("badges");
  clear(badges);
  badges.appendChild(badge("Budget " + num(d.slo.error_budget_pct, 1) + " %", budgetLevel(d.slo.error_budget_pct)));
  const burn = { low: "good", medium: "mid", high: "bad", critical: "bad" }[d.slo.burn_rate] || "";
  badges.appendChild(badge("Burn " + String(d.slo.burn_rate).toUpperCase(), burn));
  badges.appendChild(badge(d.cost.spike_detected ? "Cost ⚠ spike" : "Cost ✓ stable", d.cost.spike_detected ? "bad" : "good"));
  for (const w of d.warnings || []) badges.appendChild(badge("policy warning: " + w, "mid"));
}

// ------------------------------------------------------------------ SLO

function bar(id, pct, level) {
  const b = $(id);
  b.style.width = Math.max(0, Math.min(100, pct)) + "%";
  b.style.background = COLOURS[level] || COLOURS.info;
}

function sparkline(svg, values, threshold) {
  clear(svg);
  if (!values || values.length === 0) {
    svg.appendChild(svgEl("text", { x: 8, y: 45 }, "no hourly burn rates in the metrics"));
    return;
  }
  const W = 480, H = 90, pad = 6;
  const max = Math.max(...values, 1);
  const x = (i) => pad + (i * (W - 2 * pad)) / Math.max(1, values.length - 1);
  const y = (v) => H - pad - (v / max) * (H - 2 * pad);
  const pts = values.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
  svg.appendChild(svgEl("polyline", { points: pts, fill: "none", stroke: "#58a6ff", "stroke-width": 2 }));
  if (threshold <= max) {
    svg.appendChild(svgEl("line", { x1: pad, x2: W - pad, y1: y(threshold), y2: y(threshold), stroke: "#f85149", "stroke-dasharray": "4 3" }));
    svg.appendChild(svgEl("text", { x: W - 60, y: y(threshold) - 3 }, "high " + threshold + "×"));
  }
  svg.appendChild(svgEl("text", { x: pad, y: 11 }, "max " + max.toFixed(2) + "×"));
}

function showSlo(s) {
  const d = s.details || {};
  const health = $("slo-health");
  clear(health);
  health.appendChild(badge(s.healthy ? "Healthy" : "Degraded", s.healthy ? "good" : "bad"));
  setText("slo-avail", num(s.availability_pct, 4) + " % (target " + d.availability_target_pct + " %)");
  setText("slo-budget", num(s.error_budget_pct, 2) + " %");
  bar("slo-budget-bar", s.error_budget_pct, budgetLevel(s.error_budget_pct));
  setText("slo-burn", String(s.burn_rate).toUpperCase() + " ×" + num(s.burn_rate_value, 2));
  const live = s.prometheus || {};
  if (live.latency_unavailable) {
    // An SLO spec without Guardrail's latency extension: latency is not read at all.
    clear(health);
    health.appendChild(badge("Unknown (latency not read)", "mid"));
    setText("slo-p95", "not read: " + live.latency_unavailable);
    setText("slo-p99", "not read");
  } else if (typeof s.latency_p95_ms !== "number") {
    setText("slo-p95", live.no_data ? "no data" : "not reported");
    setText("slo-p99", live.no_data ? "no data" : "not reported");
  } else {
    setText("slo-p95", s.latency_p95_ms + " ms (limit " + d.latency_target_p95_ms + " ms)" + (s.latency_compliant ? "" : " ✗"));
    setText("slo-p99", s.latency_p99_ms === null ? "not reported" :
      s.latency_p99_ms + " ms" + (d.latency_target_p99_ms ? " (limit " + d.latency_target_p99_ms + " ms)" : ""));
  }
  const fmt = (n) => (typeof n === "number" ? n.toLocaleString() : "—");
  setText("slo-req", fmt(d.failed_requests) + " / " + fmt(d.total_requests));
  sparkline($("burn-chart"), d.hourly_burn_rates, 5);
}

// ------------------------------------------------------------------ cost

function costChart(svg, days) {
  clear(svg);
  if (!days || days.length === 0) {
    svg.appendChild(svgEl("text", { x: 8, y: 75 }, "no daily costs"));
    return;
  }
  const W = 480, H = 150, left = 34, bottom = 18, top = 8;
  const max = Math.max(...days.map((d) => d.cost), 1);
  const slot = (W - left - 4) / days.length;
  const h = (v) => ((H - bottom - top) * v) / max;
  for (const frac of [0, 0.5, 1]) {
    const yy = H - bottom - (H - bottom - top) * frac;
    svg.appendChild(svgEl("line", { x1: left, x2: W, y1: yy, y2: yy, stroke: "#2a3542" }));
    svg.appendChild(svgEl("text", { x: 2, y: yy + 3 }, (max * frac).toFixed(0)));
  }
  days.forEach((d, i) => {
    const bh = h(d.cost);
    const rect = svgEl("rect", {
      x: (left + i * slot + 1).toFixed(1), y: (H - bottom - bh).toFixed(1),
      width: Math.max(1, slot - 2).toFixed(1), height: bh.toFixed(1),
      fill: i >= days.length - 7 ? "#58a6ff" : "#3b4b5e", class: "cost-bar",
    });
    rect.appendChild(svgEl("title", {}, d.date + ": " + d.cost.toFixed(2)));
    svg.appendChild(rect);
  });
  svg.appendChild(svgEl("text", { x: left, y: H - 4 }, days[0].date));
  svg.appendChild(svgEl("text", { x: W - 62, y: H - 4 }, days[days.length - 1].date));
}

function showCost(c) {
  const spike = $("cost-spike");
  clear(spike);
  spike.appendChild(badge(c.spike_detected ? "⚠ Spike" : "✓ Stable", c.spike_detected ? "bad" : "good"));
  const wow = $("cost-wow");
  wow.textContent = (c.wow_change_pct > 0 ? "+" : "") + num(c.wow_change_pct, 2) + " %";
  wow.style.color = c.wow_change_pct > 10 ? COLOURS.bad : c.wow_change_pct < -5 ? COLOURS.good : "";
  setText("cost-trend", c.trend);
  const cur = (c.details && c.details.currency) || "";
  setText("cost-avgs", num(c.previous_week_avg_usd, 2) + " → " + num(c.current_week_avg_usd, 2) + " " + cur);
  const used = c.budget_utilisation_pct;
  // No budget (a billing export states none): say so, never draw 0 % of a budget.
  setText("cost-budget", typeof used === "number"
    ? num(c.mtd_spend_usd, 2) + " / " + num(c.budget_usd, 2) + " " + cur + " (" + num(used, 1) + " %)"
    : num(c.mtd_spend_usd, 2) + " " + cur + " (no monthly budget: utilisation unavailable)");
  bar("cost-budget-bar", used, used > 90 ? "bad" : used > 70 ? "mid" : "good");
  costChart($("cost-chart"), c.daily_costs);
}

// ------------------------------------------------------------------ trace, explanation

function showTrace(d) {
  const body = $("trace");
  clear(body);
  for (const t of d.trace || []) {
    const tr = el("tr");
    if (t.winner) tr.className = "winner";
    else if (t.matched) tr.className = "also";
    tr.appendChild(el("td", t.id));
    tr.appendChild(el("td", t.name));
    tr.appendChild(el("td", t.action, "act " + t.action));
    const res = el("td");
    if (t.winner) res.appendChild(el("span", "winner", "tag winner"));
    else if (t.matched) res.appendChild(el("span", "also matched", "tag also"));
    else res.appendChild(el("span", "not matched", "muted"));
    tr.appendChild(res);
    tr.appendChild(el("td", t.why, "muted"));
    body.appendChild(tr);
  }
  if (d.decided_by === "default") {
    const tr = el("tr", undefined, "winner");
    tr.appendChild(el("td", d.policy_id));
    tr.appendChild(el("td", d.policy_name));
    tr.appendChild(el("td", d.action, "act " + d.action));
    const res = el("td");
    res.appendChild(el("span", "default action", "tag winner"));
    tr.appendChild(res);
    tr.appendChild(el("td", "no rule matched", "muted"));
    body.appendChild(tr);
  }
}

// ------------------------------------------------------------------ audit

async function loadAudit() {
  const [list, verify] = await Promise.all([getJSON("/api/audit?limit=20"), getJSON("/api/audit/verify")]);
  const chain = $("chain");
  clear(chain);
  if (verify.ok) {
    const v = verify.data;
    chain.appendChild(v.intact
      ? badge("chain intact · " + v.records + " record(s)", "good")
      : badge("chain BROKEN · " + v.breaks.length + " problem(s)", "bad"));
    if (!v.intact) for (const br of v.breaks) chain.appendChild(badge("record " + br.seq + ": " + br.problem, "bad"));
  } else {
    chain.appendChild(badge(verify.error, "bad"));
  }
  const body = $("audit");
  clear(body);
  if (!list.ok) {
    const tr = el("tr");
    const td = el("td", list.error);
    td.colSpan = 6;
    tr.appendChild(td);
    body.appendChild(tr);
    return;
  }
  for (const r of list.data) {
    const c = auditCells(r);
    const tr = el("tr");
    tr.dataset.kind = r.kind;
    tr.appendChild(el("td", r.id));
    tr.appendChild(el("td", String(r.timestamp).replace("T", " ").slice(0, 19)));
    tr.appendChild(el("td", r.kind));
    tr.appendChild(el("td", c.action, c.cls));
    tr.appendChild(el("td", c.rule));
    tr.appendChild(el("td", c.by));
    body.appendChild(tr);
  }
  if (list.data.length === 0) {
    const tr = el("tr");
    const td = el("td", "no records yet", "muted");
    td.colSpan = 6;
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

const DEPLOY_ACTIONS = ["ALLOW", "WARN", "DELAY", "BLOCK"];

// Who a record names: an identity object ({identity, via}) or a plain name.
function who(v) {
  if (!v) return null;
  if (typeof v === "string") return v;
  return typeof v.identity === "string" ? v.identity : null;
}

// The Action, Rule and Requested-by cells of one audit row. Deploy records carry the gate's
// action and rule; the governor's records carry the remediation action they are about (the
// gated action of a remediation_decision), their rule or outcome, and who acted.
function auditCells(r) {
  const by = who(r.requested_by) || who(r.released_by) || (r.ci && r.ci.actor) || r.approver || r.proposer || r.reviewer || r.by || "—";
  if (DEPLOY_ACTIONS.includes(r.action)) return { action: r.action, cls: "act " + r.action, rule: r.policy_id || "—", by };
  if (r.outcome === "error" && !r.incident_id) return { action: "could not decide", cls: "act BLOCK", rule: "—", by };
  let action = r.gated_action || r.action || r.requested_action || r.authorised_action || null;
  let rule = r.rule || null;
  switch (r.kind) {
    case "remediation_decision":
      if (action && r.decision) action += " → " + r.decision;
      break;
    case "planner_transcript":
      // A model's plan: how the loop ended, which planner and model (the transcript itself is
      // in the incident's detail).
      if (r.transcript) {
        action = "plan " + (r.transcript.outcome || "?");
        rule = (r.transcript.planner || "") + " " + (r.transcript.answered_by || r.transcript.model || "");
      }
      break;
    case "approval_request":
      rule = rule || (r.requires ? "needs " + r.requires : null);
      break;
    case "approval_granted":
      rule = rule || "approved" + (r.reason ? ": " + r.reason : "");
      break;
    case "force_override":
      rule = rule || "force override" + (r.reason ? ": " + r.reason : "");
      break;
    case "execution_claim":
      rule = rule || (r.executor ? "claimed for " + r.executor : "claimed");
      break;
    case "claim_release":
      // As `guardrail audit list`: the released claim and why; who released it is `by`.
      rule = rule || (r.claim ? "released " + r.claim : "released") + (r.reason ? ": " + r.reason : "");
      break;
    case "approval_refused":
      action = action || "refused";
      rule = rule || r.code || null;
      break;
    case "remediation_execution":
      if (action) action += r.ok === true ? " (ok)" : r.ran === true ? " (failed)" : " (not run)";
      rule = rule || (r.executor ? "executor " + r.executor : null);
      break;
    case "execution_refused":
      rule = rule || "refused: not the authorised action";
      break;
    default:
      break;
  }
  if (!action && r.incident_id) action = "incident " + r.incident_id;
  return { action: action || "—", cls: action && DEPLOY_ACTIONS.includes(action) ? "act " + action : "", rule: rule || "—", by };
}

// ------------------------------------------------------------------ loading

async function loadAll() {
  const all = await getJSON("/api/all");
  setText("updated", "Updated " + new Date().toLocaleTimeString());
  if (all.ok) {
    showDecision(all.data.decision);
    showSlo(all.data.slo);
    showCost(all.data.cost);
    showTrace(all.data.decision);
    setText("explanation", all.data.explanation);
    // With a model explainer (EXPLAINER_BACKEND), /api/explain carries its labelled narrative
    // (`written_by`) while /api/all keeps the rule text: show the model's (as text, never HTML).
    // When the model failed, the rule text stays and the warning says why (never silently).
    getJSON("/api/explain").then((ex) => {
      if (!ex.ok) return;
      if (ex.data.written_by) setText("explanation", ex.data.text);
      else if (ex.data.explainer_warning) {
        setText("explanation", all.data.explanation + "\n\n[model explainer unavailable, rule-based text shown: " + ex.data.explainer_warning + "]");
      }
    }).catch(() => {});
    return;
  }
  showError(all.error);
  clear($("trace"));
  setText("explanation", "");
  // The SLO and cost blocks may still be readable on their own.
  const [slo, cost] = await Promise.all([getJSON("/api/slo"), getJSON("/api/cost")]);
  if (slo.ok) showSlo(slo.data);
  else showUnavailable("slo-health", "burn-chart", slo.error);
  if (cost.ok) showCost(cost.data);
  else showUnavailable("cost-spike", "cost-chart", cost.error);
}

function showUnavailable(badgeId, chartId, message) {
  const b = $(badgeId);
  clear(b);
  b.appendChild(badge("unavailable", "bad"));
  // The card's figures are from inputs that no longer read: blank them, never leave the last
  // good values next to an "unavailable" badge.
  const card = b.closest("section");
  if (card) {
    for (const v of card.querySelectorAll(".row span:not(.k)")) v.textContent = "—";
    for (const fill of card.querySelectorAll(".bar > div")) fill.style.width = "0%";
  }
  const svg = $(chartId);
  clear(svg);
  svg.appendChild(svgEl("text", { x: 8, y: 20 }, String(message).split("\n")[0]));
}

async function simulate() {
  const out = $("sim-result");
  clear(out);
  const token = $("token").value.trim();
  if (!token) {
    out.appendChild(el("div", "Enter a deployer token first.", "muted"));
    return;
  }
  const r = await fetch("/api/simulate", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
    body: "{}",
  });
  let v;
  try {
    v = await r.json();
  } catch (e) {
    v = { ok: false, error: "the server answered " + r.status };
  }
  if (!v.ok) {
    out.appendChild(el("div", v.error, "badge bad"));
    return;
  }
  const d = v.data;
  const head = el("div");
  head.appendChild(el("strong", d.action, "act " + d.action));
  head.appendChild(el("span", " [" + d.policy_id + "] " + d.policy_name + " — recorded as " + d.audit.id));
  out.appendChild(head);
  out.appendChild(el("pre", d.explanation));
}

// ------------------------------------------------------------------ incidents

const LEVEL = { awaiting_approval: "mid", executed: "good", authorised: "info", execution_failed: "bad", error: "bad" };

// The notification outbox's delivery state (Slack, Jira), from /metrics' gauges: shown only
// once the server's outbox worker has read the outbox (Slack or Jira configured).
async function loadOutbox(into) {
  let text;
  try {
    const r = await fetch("/metrics", { headers: { Accept: "text/plain" } });
    if (!r.ok) return;
    text = await r.text();
  } catch (e) {
    return;
  }
  const gauge = (name) => {
    const line = text.split("\n").find((l) => l.startsWith(name + " "));
    return line === undefined ? null : Number(line.slice(name.length + 1));
  };
  const pending = gauge("guardrail_outbox_pending");
  const failed = gauge("guardrail_outbox_failed");
  if (pending === null || failed === null) return;
  const age = gauge("guardrail_outbox_oldest_pending_age_seconds") || 0;
  const words = "notifications: " + pending + " pending" + (pending ? " (oldest " + age + " s)" : "") + ", " + failed + " failed";
  into.appendChild(badge(words, failed ? "bad" : pending ? "mid" : "good"));
}

async function loadIncidents() {
  const [list, queue] = await Promise.all([getJSON("/api/incidents"), getJSON("/api/approvals")]);
  const qb = $("queue-badge");
  clear(qb);
  if (queue.ok) qb.appendChild(badge(queue.data.length + " awaiting approval", queue.data.length ? "mid" : "good"));
  loadOutbox(qb);
  const body = $("incidents");
  clear(body);
  const row = (text) => {
    const tr = el("tr");
    const td = el("td", text, "muted");
    td.colSpan = 7;
    tr.appendChild(td);
    body.appendChild(tr);
  };
  if (!list.ok) return row(list.error);
  if (list.data.length === 0) return row("no incidents yet");
  // An open incident whose state moved on elsewhere (approved, executed) loses its stale
  // "Awaiting …" label and its buttons.
  const open = $("incident-detail").dataset.incident;
  const current = open && list.data.find((i) => i.incident_id === open);
  if (current) settle(open, current.status);
  for (const i of list.data) {
    const tr = el("tr");
    tr.appendChild(el("td", i.incident_id));
    tr.appendChild(el("td", i.service || "—"));
    tr.appendChild(el("td", i.severity || "—"));
    const st = el("td");
    st.appendChild(badge(i.status, LEVEL[i.status] || "info"));
    tr.appendChild(st);
    tr.appendChild(el("td", i.decision || "—"));
    tr.appendChild(el("td", i.action || "—"));
    const td = el("td");
    const b = el("button", "details");
    b.addEventListener("click", () => showIncident(i.incident_id).catch((e) => setText("incident-detail", String(e))));
    td.appendChild(b);
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

const STATUS_TEXT = {
  awaiting_approval: "awaiting approval",
  authorised: "authorised, not yet executed",
  executed: "executed",
  execution_failed: "execution failed",
  resolved: "resolved",
  decided: "decided",
  error: "error",
};

// Brings the open incident's heading and approval label up to `status`; once it is no longer
// awaiting approval the buttons are disabled and the label says what happened instead.
function settle(id, status) {
  const detail = $("incident-detail");
  if (detail.dataset.incident !== id) return;
  const head = detail.querySelector("h3");
  if (head) head.textContent = id + " — " + status;
  if (status === "awaiting_approval") return;
  const label = $("incident-awaiting");
  if (label) {
    label.textContent = "No longer awaiting approval: " + (STATUS_TEXT[status] || status);
    label.className = "badge " + (LEVEL[status] || "info");
  }
  for (const b of detail.querySelectorAll("button")) b.disabled = true;
}

async function showIncident(id) {
  const out = $("incident-detail");
  clear(out);
  out.dataset.incident = id;
  const v = await getJSON("/api/incidents/" + encodeURIComponent(id));
  if (!v.ok) {
    out.appendChild(el("div", v.error, "badge bad"));
    return;
  }
  const d = v.data;
  out.appendChild(el("h3", d.incident_id + " — " + d.status));
  out.appendChild(el("div", "Binding hash: " + (d.binding_hash || "—")));
  out.appendChild(el("div", "Gate reasons:"));
  const reasons = el("ul");
  for (const r of Array.isArray(d.reasons) ? d.reasons : []) reasons.appendChild(el("li", typeof r === "string" ? r : JSON.stringify(r)));
  out.appendChild(reasons);
  out.appendChild(el("div", "Evidence (key claims):"));
  const claims = el("ul");
  const ev = (d.evidence && d.evidence.key_claims) || [];
  for (const c of Array.isArray(ev) ? ev : []) claims.appendChild(el("li", c));
  out.appendChild(claims);
  const p = d.pending;
  if (!p) return;
  const awaiting = el("div", "Awaiting " + p.requires + " (proposed by " + p.proposer + ")", "badge mid");
  awaiting.id = "incident-awaiting";
  out.appendChild(awaiting);
  const reason = el("input");
  reason.id = "approve-reason";
  reason.placeholder = "reason (required for force-override)";
  const approve = el("button", "Approve");
  approve.id = "approve";
  const force = el("button", "Force-override");
  force.id = "force-override";
  const result = el("div");
  result.id = "approve-result";
  const send = (kind) => decide(d.incident_id, kind, p.binding_hash, reason.value, result).catch((e) => setText("approve-result", String(e)));
  approve.addEventListener("click", () => send("approve"));
  force.addEventListener("click", () => send("force-override"));
  const line = el("p");
  for (const n of [reason, approve, force]) line.appendChild(n);
  out.appendChild(line);
  out.appendChild(result);
}

async function decide(id, kind, bindingHash, reason, out) {
  clear(out);
  const token = $("token").value.trim();
  if (!token) {
    out.appendChild(el("div", "Enter an approver token (below) first.", "muted"));
    return;
  }
  const body = { binding_hash: bindingHash };
  if (reason.trim()) body.reason = reason.trim();
  const r = await fetch("/api/incidents/" + encodeURIComponent(id) + "/" + kind, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
    body: JSON.stringify(body),
  });
  let v;
  try {
    v = await r.json();
  } catch (e) {
    v = { ok: false, error: "the server answered " + r.status };
  }
  if (!v.ok) {
    out.appendChild(el("div", (v.code ? v.code + ": " : "") + v.error, "badge bad"));
    return;
  }
  const g = v.data.grant;
  out.appendChild(el("div", g.kind + " by " + g.approver + " — " + v.data.status + " (recorded as " + (g.audit && g.audit.id) + ")", "badge good"));
  // The incident is no longer pending: its heading, label and buttons follow, the result stays.
  settle(id, v.data.status);
  loadIncidents().catch(() => {});
}

function connect() {
  const dot = $("live-dot");
  const es = new EventSource("/api/events");
  es.addEventListener("hello", () => {
    dot.className = "dot live";
    setText("live-text", "live");
    loadAll();
    loadAudit();
  });
  es.addEventListener("inputs", () => loadAll());
  es.addEventListener("decision", () => loadAll());
  es.addEventListener("audit", () => loadAudit());
  es.addEventListener("incident", () => loadIncidents().catch(() => {}));
  es.addEventListener("approval", () => { loadIncidents().catch(() => {}); loadAudit().catch(() => {}); });
  es.onerror = () => {
    dot.className = "dot down";
    setText("live-text", "disconnected — reconnecting");
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("simulate").addEventListener("click", () => simulate().catch((e) => setText("sim-result", String(e))));
  loadAll().catch((e) => showError(String(e)));
  loadAudit().catch(() => {});
  loadIncidents().catch(() => {});
  connect();
});
