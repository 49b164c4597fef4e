//! `guardrail notify status|deliver`, and the CLI's side of the notification outbox: the
//! routing table installed before any store is opened (so the records this command appends
//! get their Slack/Jira/Elasticsearch-mirror rows in their own transaction), and the short
//! best-effort delivery pass after a command that appended records.
//!
//! Delivery is never in the decision path: it runs after the command has decided, recorded
//! and printed; its failures leave rows pending (for `guardrail serve` or a later `guardrail
//! notify deliver`) and never change the command's exit code.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use guardrail_config::GovernorFile;
use guardrail_notify::outbox::PassReport;
use guardrail_notify::routing::{AUDIT_ES_ENV, Routes, deliverer};
use guardrail_store::{AuditStore, OutboxEntry, OutboxState, OutboxStatus};
use serde::Serialize;

use crate::audit_cmd::{self, StoreArgs};
use crate::exit::Exit;
use crate::inputs::EnvLookup;
use crate::remediation::{ConfigArgs, DEFAULT_GOVERNOR_CONFIG};

/// The variables the destinations read (nothing else of the environment is passed on).
const ENV_VARS: [&str; 6] =
    ["JIRA_URL", "JIRA_EMAIL", "JIRA_API_TOKEN", "JIRA_PROJECT_KEY", "SLACK_BOT_TOKEN", "SLACK_API_URL"];

/// How long the inline pass after a command may take in all.
const INLINE_DEADLINE: Duration = Duration::from_secs(3);

/// `guardrail notify …`.
#[derive(clap::Subcommand, Debug)]
pub enum NotifyCommand {
    /// The outbox's delivery state: pending, failed and delivered counts, the oldest pending
    /// notification's age, and the failed ones with their last error.
    Status {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        governor: ConfigArgs,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: NotifyFormat,
        /// Rows listed per state (failed, pending).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Deliver what is due now, once (what `guardrail serve` does every few seconds). Exit 0
    /// when the pass ran (what failed stays pending or failed, and is listed), 3 when the store
    /// or a configured destination cannot be used.
    Deliver {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        governor: ConfigArgs,
        /// Deliver now: failed notifications go back to pending (attempts reset), and pending
        /// ones waiting for their next attempt are due at once (after an outage).
        #[arg(long)]
        retry_failed: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: NotifyFormat,
    },
}

/// Output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum NotifyFormat {
    /// Readable text.
    Text,
    /// One JSON object on stdout.
    Json,
}

/// One outbox row, as `notify status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutboxRowView {
    /// Row id.
    pub id: i64,
    /// The record it describes (seq).
    pub record_seq: i64,
    /// `slack`, `jira`, `slack_deploy`.
    pub channel: String,
    /// The incident, when ordered by one.
    pub incident: Option<String>,
    /// `pending`, `delivered`, `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Next attempt (pending rows), RFC 3339.
    pub next_attempt_at: Option<String>,
    /// The last error.
    pub last_error: Option<String>,
    /// What the destination named (a Jira key, a Slack `channel/ts`).
    pub reference: Option<String>,
}

/// `guardrail notify status --format json`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NotifyStatusView {
    /// The store (password redacted).
    pub store: String,
    /// Not delivered yet.
    pub pending: u64,
    /// Given up on.
    pub failed: u64,
    /// Delivered.
    pub delivered: u64,
    /// The oldest pending notification's record time, RFC 3339.
    pub oldest_pending_at: Option<String>,
    /// Its age in seconds.
    pub oldest_pending_age_seconds: Option<u64>,
    /// What the governor config routes to (`slack`, `jira`; empty: nothing is enqueued).
    pub routed: Vec<String>,
    /// Failed rows, newest first.
    pub failed_rows: Vec<OutboxRowView>,
    /// Pending rows, newest first.
    pub pending_rows: Vec<OutboxRowView>,
}

/// `guardrail notify deliver --format json`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NotifyDeliverView {
    /// Rows made due now first (`--retry-failed`: failed ones and those waiting on a backoff).
    pub requeued: u64,
    /// Delivered in this pass.
    pub delivered: u32,
    /// Failed an attempt, retried later.
    pub retrying: u32,
    /// Given up on in this pass.
    pub failed: u32,
    /// Due rows this process has no destination for (no token configured).
    pub no_destination: u32,
    /// Due rows another deliverer is sending.
    pub leased_elsewhere: u32,
    /// One line per failed attempt.
    pub problems: Vec<String>,
    /// The state after the pass.
    pub status: NotifyStatusView,
}

fn ms_to_rfc3339(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms).ok().map(|t| t.to_string())
}

fn row_view(e: &OutboxEntry) -> OutboxRowView {
    OutboxRowView {
        id: e.id,
        record_seq: e.record_seq,
        channel: e.channel.as_str().to_string(),
        incident: e.ordering_key.clone(),
        state: match e.state {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Failed => "failed",
        }
        .to_string(),
        attempts: e.attempts,
        next_attempt_at: (e.state == OutboxState::Pending).then(|| ms_to_rfc3339(e.next_attempt_ms)).flatten(),
        last_error: e.last_error.clone(),
        reference: e.reference.clone(),
    }
}

/// A snapshot of the variables the destinations read: the fixed ones, `GUARDRAIL_AUDIT_ES`
/// (or `audit_es`, the `--audit-es` flag, instead), and the credential variables the config's
/// `audit_mirror:` block names.
fn env_map(env: EnvLookup<'_>, file: Option<&GovernorFile>, audit_es: Option<String>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> =
        ENV_VARS.iter().filter_map(|k| env(k).map(|v| (k.to_string(), v))).collect();
    if let Some(url) = audit_es.or_else(|| env(AUDIT_ES_ENV)) {
        out.insert(AUDIT_ES_ENV.to_string(), url);
    }
    let creds = file.and_then(|f| f.audit_mirror.as_ref()).and_then(|m| m.credentials.as_ref());
    let var = match creds {
        Some(guardrail_config::ElasticCredentials::ApiKeyEnv(v)) => Some(v),
        Some(guardrail_config::ElasticCredentials::Basic { password_env, .. }) => Some(password_env),
        None => None,
    };
    if let Some(var) = var
        && let Some(v) = env(var)
    {
        out.insert(var.clone(), v);
    }
    out
}

/// `--audit-es URL` anywhere on the command line (the flag is global).
fn audit_es_flag(args: &[String]) -> Option<String> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == "--audit-es" { args.get(i + 1).cloned() } else { a.strip_prefix("--audit-es=").map(str::to_string) }
    })
}

/// The governor config the command line names (`--governor-config` anywhere in it), else
/// `GUARDRAIL_GOVERNOR_CONFIG`, else the default path when it exists.
fn governor_path(args: &[String], env: EnvLookup<'_>) -> Option<PathBuf> {
    let flag = args.iter().enumerate().find_map(|(i, a)| {
        if a == "--governor-config" {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix("--governor-config=").map(str::to_string)
        }
    });
    flag.or_else(|| env("GUARDRAIL_GOVERNOR_CONFIG").filter(|v| !v.trim().is_empty())).map(PathBuf::from).or_else(
        || std::path::Path::new(DEFAULT_GOVERNOR_CONFIG).is_file().then(|| PathBuf::from(DEFAULT_GOVERNOR_CONFIG)),
    )
}

/// The store the command line names (`--store` anywhere in it: the flag is global), else
/// `GUARDRAIL_STORE`, else the default.
fn store_spec(args: &[String], env: EnvLookup<'_>) -> String {
    let flag = args.iter().enumerate().find_map(|(i, a)| {
        if a == "--store" { args.get(i + 1).cloned() } else { a.strip_prefix("--store=").map(str::to_string) }
    });
    StoreArgs { store: flag, audit_jsonl: None, audit_es: None }.spec(env)
}

/// What the CLI's outbox needs from one command line: the config and the environment.
#[derive(Debug, Default)]
pub struct CliOutbox {
    file: Option<GovernorFile>,
    env: BTreeMap<String, String>,
    routes: Routes,
    store: String,
}

/// Installs the outbox routing table for this process, from the governor config the command
/// line uses (an unreadable config installs none: the command itself reports it and records
/// nothing). Call before any store is opened.
pub fn install(args: &[String], env: EnvLookup<'_>) -> CliOutbox {
    let file = governor_path(args, env).and_then(|p| match guardrail_config::read_governor(&p) {
        Ok(r) => Some(r.file),
        Err(_) => {
            // The governor commands refuse such a config themselves (and record nothing); the
            // gate's record stands, only its notifications cannot be queued: say so.
            if args.first().map(String::as_str) == Some("gate") {
                eprintln!(
                "guardrail: warning: the governor config {} does not read, so no Slack/Jira notification or audit_mirror: copy is queued by this command",
                p.display()
                );
            }
            None
        }
    });
    let vars = env_map(env, file.as_ref(), audit_es_flag(args));
    let routes = guardrail_notify::routing::install_routes(file.as_ref(), &vars);
    CliOutbox { file, env: vars, routes, store: store_spec(args, env) }
}

impl CliOutbox {
    /// After a command that appended records: one short delivery pass (at most
    /// [`INLINE_DEADLINE`]), when anything is routed at all. Prints one line only when
    /// notifications remain undelivered.
    pub fn inline_pass(&self) {
        if self.routes.is_empty() {
            return;
        }
        let Ok(mut store) = audit_cmd::open(&self.store) else { return };
        // Nothing waiting (the usual case for a gate run): no destination is even set up.
        match store.outbox_status() {
            Ok(st) if st.pending > 0 => {}
            _ => return,
        }
        let d = match deliverer(self.file.as_ref(), &self.env, Some(Duration::from_secs(2))) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("guardrail: notifications wait: {e} (guardrail notify status)");
                return;
            }
        };
        let deadline = Instant::now() + INLINE_DEADLINE;
        if let Ok(r) = d.deliver_due(store.as_mut(), &jiff::Timestamp::now, Some(deadline))
            && (r.retrying + r.failed + r.no_channel > 0 || r.stopped_at_deadline)
            && let Ok(st) = store.outbox_status()
            && st.pending + st.failed > 0
        {
            eprintln!(
                "guardrail: notifications: {} delivered now, {} pending, {} failed (guardrail notify status)",
                r.delivered, st.pending, st.failed
            );
        }
    }
}

fn status_view(store: &mut dyn AuditStore, routed: Vec<String>, limit: usize) -> Result<NotifyStatusView, String> {
    let st: OutboxStatus = store.outbox_status().map_err(|e| e.to_string())?;
    let now = jiff::Timestamp::now().as_millisecond();
    let failed_rows = store.outbox_entries(None, Some(OutboxState::Failed), limit).map_err(|e| e.to_string())?;
    let pending_rows = store.outbox_entries(None, Some(OutboxState::Pending), limit).map_err(|e| e.to_string())?;
    Ok(NotifyStatusView {
        store: store.describe(),
        pending: st.pending,
        failed: st.failed,
        delivered: st.delivered,
        oldest_pending_at: st.oldest_pending_ms.and_then(ms_to_rfc3339),
        oldest_pending_age_seconds: st.oldest_pending_ms.map(|t| u64::try_from((now - t).max(0) / 1000).unwrap_or(0)),
        routed,
        failed_rows: failed_rows.iter().map(row_view).collect(),
        pending_rows: pending_rows.iter().map(row_view).collect(),
    })
}

fn routed_names(file: Option<&GovernorFile>, env: &BTreeMap<String, String>) -> Vec<String> {
    Routes::from_config(file, env).names().into_iter().map(str::to_string).collect()
}

fn print_status(v: &NotifyStatusView) {
    println!("outbox of {}", v.store);
    if v.routed.is_empty() {
        println!(
            "  routed: nothing (no slack:, jira: or audit_mirror: block in the governor config, no JIRA_URL, no GUARDRAIL_AUDIT_ES)"
        );
    } else {
        println!("  routed: {}", v.routed.join(", "));
    }
    println!("  pending {}, failed {}, delivered {}", v.pending, v.failed, v.delivered);
    if let (Some(at), Some(age)) = (&v.oldest_pending_at, v.oldest_pending_age_seconds) {
        println!("  oldest pending: {at} ({age} s ago)");
    }
    for (title, rows) in [("failed", &v.failed_rows), ("pending", &v.pending_rows)] {
        if rows.is_empty() {
            continue;
        }
        println!("{title}:");
        for r in rows.iter() {
            let incident = r.incident.as_deref().map(|i| format!(" incident {i}")).unwrap_or_default();
            let next = r.next_attempt_at.as_deref().map(|t| format!(", next {t}")).unwrap_or_default();
            println!("  #{} {} record {}{incident}: {} attempt(s){next}", r.id, r.channel, r.record_seq, r.attempts);
            if let Some(e) = &r.last_error {
                println!("      last error: {e}");
            }
        }
    }
    if v.failed > 0 {
        println!("re-deliver the failed ones with: guardrail notify deliver --retry-failed");
    }
}

fn could_not(errors: &[String]) -> Exit {
    eprintln!("guardrail: notify: could not run (exit {}):", Exit::CannotDecide);
    for e in errors {
        eprintln!("  error: {e}");
    }
    Exit::CannotDecide
}

fn load(governor: &ConfigArgs, env: EnvLookup<'_>) -> Result<Option<GovernorFile>, Vec<String>> {
    let loaded = governor.load(env)?;
    match loaded.path {
        None => Ok(None),
        Some(p) => guardrail_config::read_governor(&p)
            .map(|r| Some(r.file))
            .map_err(|es| es.iter().map(ToString::to_string).collect()),
    }
}

/// `--retry-failed`: failed rows back to pending, and pending rows waiting on their backoff
/// due at `now_ms` (their attempts and last error kept). Only rows whose next attempt is in
/// the future are touched: a row being sent right now was due, so it is left to its deliverer.
fn due_now(store: &mut dyn AuditStore, now_ms: i64) -> Result<u64, guardrail_store::StoreError> {
    let mut n = store.outbox_retry_failed(now_ms)?;
    for e in store.outbox_entries(None, Some(OutboxState::Pending), usize::MAX)? {
        if e.next_attempt_ms > now_ms {
            let error = e.last_error.as_deref().unwrap_or("");
            store.outbox_mark_failed(e.id, e.attempts, guardrail_store::Retry::At(now_ms), error)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Runs `guardrail notify …`.
pub fn run(cmd: NotifyCommand, env: EnvLookup<'_>) -> Exit {
    match cmd {
        NotifyCommand::Status { store, governor, format, limit } => {
            let file = match load(&governor, env) {
                Ok(f) => f,
                Err(es) => return could_not(&es),
            };
            let vars = env_map(env, file.as_ref(), store.audit_es.clone());
            let mut s = match audit_cmd::open(&store.spec(env)) {
                Ok(s) => s,
                Err(e) => return could_not(&[e.to_string()]),
            };
            match status_view(s.as_mut(), routed_names(file.as_ref(), &vars), limit) {
                Ok(v) if format == NotifyFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    Exit::Ok
                }
                Ok(v) => {
                    print_status(&v);
                    Exit::Ok
                }
                Err(e) => could_not(&[e]),
            }
        }
        NotifyCommand::Deliver { store, governor, retry_failed, format } => {
            let file = match load(&governor, env) {
                Ok(f) => f,
                Err(es) => return could_not(&es),
            };
            let vars = env_map(env, file.as_ref(), store.audit_es.clone());
            let d = match deliverer(file.as_ref(), &vars, None) {
                Ok(d) => d,
                Err(e) => return could_not(&[e.to_string()]),
            };
            let mut s = match audit_cmd::open(&store.spec(env)) {
                Ok(s) => s,
                Err(e) => return could_not(&[e.to_string()]),
            };
            let requeued = if retry_failed {
                match due_now(s.as_mut(), jiff::Timestamp::now().as_millisecond()) {
                    Ok(n) => n,
                    Err(e) => return could_not(&[e.to_string()]),
                }
            } else {
                0
            };
            let report: PassReport = match d.deliver_due(s.as_mut(), &jiff::Timestamp::now, None) {
                Ok(r) => r,
                Err(e) => return could_not(&[e.to_string()]),
            };
            let status = match status_view(s.as_mut(), routed_names(file.as_ref(), &vars), 20) {
                Ok(v) => v,
                Err(e) => return could_not(&[e]),
            };
            let view = NotifyDeliverView {
                requeued,
                delivered: report.delivered,
                retrying: report.retrying,
                failed: report.failed,
                no_destination: report.no_channel,
                leased_elsewhere: report.leased_elsewhere,
                problems: report.problems,
                status,
            };
            if format == NotifyFormat::Json {
                println!("{}", serde_json::to_string_pretty(&view).unwrap_or_default());
            } else {
                if requeued > 0 {
                    println!("{requeued} notification(s) made due now (failed or waiting for a retry)");
                }
                println!(
                    "delivered {}, will retry {}, given up {}, no destination configured {}, being sent elsewhere {}",
                    view.delivered, view.retrying, view.failed, view.no_destination, view.leased_elsewhere
                );
                for p in &view.problems {
                    println!("  {p}");
                }
                print_status(&view.status);
            }
            Exit::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_found_anywhere_on_the_command_line() {
        let args: Vec<String> =
            ["incident", "run", "--store", "x.db", "--governor-config=g.yaml"].iter().map(|s| s.to_string()).collect();
        let none: EnvLookup<'_> = &|_| None;
        assert_eq!(store_spec(&args, none), "x.db");
        assert_eq!(governor_path(&args, none), Some(PathBuf::from("g.yaml")));
        let env: EnvLookup<'_> = &|k| (k == "GUARDRAIL_STORE").then(|| "y.db".to_string());
        assert_eq!(store_spec(&["gate".to_string()], env), "y.db");
    }
}
