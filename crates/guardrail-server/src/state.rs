//! The server's state: its configuration and the current input snapshot.
//!
//! The four input files are read once per change, not once per request. A background task
//! ([`AppState::refresh`], every `reload_interval`) compares each file's [`Stamp`] (size,
//! modification and change times to the nanosecond, device and inode) with the last read; when
//! one differs it re-reads all four and builds a new [`Snapshot`], which replaces the old one
//! atomically (`ArcSwap`), so a request holds one consistent set from start to end.
//!
//! A stamp alone can miss a change: file times are only as fine as the file system (a second on
//! some, two on FAT) and the kernel's clock tick, so a file rewritten in place with the same size
//! within one tick of the last read keeps its stamp. As git does for its index ("racy git"), a
//! file whose modification time is not at least [`RACY_WINDOW`] older than the last read is
//! re-read at every refresh and compared by sha256, until it has been quiet for that long; only
//! then is the stamp trusted on its own. A change is therefore never missed, and a quiet file is
//! still read once. The snapshot is also re-evaluated from the texts already
//! in memory at each tick, so time-dependent results (`--max-age` staleness, `retry_after`)
//! stay current without re-reading anything.
//!
//! A snapshot whose inputs cannot decide still exists: it carries the typed problems (as
//! `guardrail gate` has them, with their files, positions and fields) and every endpoint that
//! needs a decision answers `ok: false` with their messages, redacted (file names, never paths)
//! where the answer is built; `POST /api/gate` hands the problems on to its `deploy_error` record.
//!
//! The governor config ([`GovernorSettings::source`]) is watched the same way and swapped in
//! as a [`GovernorView`] when it changes (so copying a config into place, as the README's tour
//! does, takes effect without a restart); the config in force is logged (path and sha256) at
//! start and at each change. A config that no longer reads or parses is not silently replaced
//! by the last good one: the view keeps the last good config for the record but is marked
//! broken, every governor action that needs the config (propose, approve, force-override,
//! execute) is refused with 503 naming the file, and the error is logged, until the file is
//! fixed. The deploy-gate endpoints are not affected.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use axum::body::Bytes;
use axum::http::StatusCode;
use guardrail_config::Source;
use guardrail_gate::ci::CiContext;
use guardrail_gate::decide::GateProblem;
use guardrail_gate::gate::{self, Evaluation};
use guardrail_gate::inputs::{self, InputArgs, InputError, InputPaths, Settings, Sources};
use guardrail_governor::queue::{IncidentFold, IncidentState, TrailError, incident_states};
use guardrail_model::explainer::{Explainer, PerVersion};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::auth::Tokens;
use crate::metrics::Metrics;
use crate::redact::Redactor;
use crate::wire::{All, Envelope, ErrorBody, Explanation, False, InputsSummary, True};

/// Default limit for request bodies.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// How `guardrail serve` was configured.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the inputs are (the same flags as `guardrail gate`).
    pub inputs: InputArgs,
    /// The environment the inputs and settings are resolved against (captured once at start).
    pub env: BTreeMap<String, String>,
    /// Audit store spec (`sqlite:PATH`, a path, or `postgres://…`).
    pub store: String,
    /// Optional JSONL mirror directory.
    pub audit_jsonl: Option<PathBuf>,
    /// Bearer tokens for write endpoints; `None` refuses every write.
    pub tokens: Option<Tokens>,
    /// Request body limit in bytes.
    pub max_body_bytes: usize,
    /// How often the inputs are checked for changes and re-evaluated.
    pub reload_interval: Duration,
    /// When set, only requests whose `Host` header is one of these (`127.0.0.1:8080`, …) are
    /// answered: a web page that rebinds its own DNS name to 127.0.0.1 cannot read the API.
    /// [`crate::run`] sets it to the loopback names of the port when bound to loopback.
    pub allowed_hosts: Option<Vec<String>>,
    /// The remediation governor's settings (approvers, knowledge base) for the incident and
    /// approval endpoints.
    pub governor: GovernorSettings,
}

/// What the governor endpoints need beyond the audit store.
#[derive(Debug, Clone, Default)]
pub struct GovernorSettings {
    /// Approvers per severity and the executor settings (the same file as `guardrail approve
    /// --governor-config`); the default lets nobody approve.
    pub config: guardrail_core::approval::GovernorConfig,
    /// The config's file and sha256, recorded with every grant (as the CLI records it).
    pub description: Value,
    /// The knowledge base `serve --kb` names (a file or an Elasticsearch URL), which wins;
    /// `None`: `GUARDRAIL_KB` (in `env`), else the `knowledge:` block in force, else the default
    /// file, resolved per request ([`guardrail_governor::knowledge_select::select_knowledge`]).
    pub kb: Option<PathBuf>,
    /// Where the config comes from, to reload it when it changes; `None` keeps `config` for
    /// the server's life (tests, embedding).
    pub source: Option<GovernorSource>,
    /// Live logs for the `query_live_logs` tool of `POST /api/incidents`, fixed at start
    /// (`guardrail serve --logs`); a request never names a file.
    pub logs: Option<guardrail_governor::NdjsonLogs>,
    /// Whether the deploy gate's signals, evaluated on the served inputs, feed the governor's
    /// signal rules (`guardrail serve --governor-signals`), as `incident run --signals-root`.
    pub deploy_signals: bool,
    /// The config's other blocks (`planner:`, `slack:`, `jira:`, `notify:`) when it is fixed
    /// (`source: None`); a watched file's come from each read.
    pub blocks: GovernorBlocks,
    /// The planner chosen at start by `serve --planner` / `--model` or `GUARDRAIL_PLANNER`
    /// (fixed for the server's life); `None`: the `planner:` block in force chooses, else the
    /// built-in planner (`governor_api::wiring::governor`).
    pub planner: Option<guardrail_governor::planner_select::PlannerChoice>,
}

/// The governor config's blocks beyond approvers and executor, as last read: who the planner
/// is, where Slack and Jira are. Swapped with the rest of the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GovernorBlocks {
    /// `planner:`.
    pub planner: Option<guardrail_config::PlannerConfig>,
    /// `slack:`.
    pub slack: Option<guardrail_config::SlackConfig>,
    /// `jira:`.
    pub jira: Option<guardrail_config::JiraConfig>,
    /// `notify:`.
    pub notify: Option<guardrail_config::NotifyConfig>,
    /// `audit_mirror:` (the Elasticsearch copy of every record, delivered by the outbox).
    pub audit_mirror: Option<guardrail_config::AuditMirrorConfig>,
    /// `knowledge:`.
    pub knowledge: Option<guardrail_config::KnowledgeConfig>,
}

impl GovernorBlocks {
    fn of(file: &guardrail_config::GovernorFile) -> GovernorBlocks {
        GovernorBlocks {
            planner: file.planner.clone(),
            slack: file.slack.clone(),
            jira: file.jira.clone(),
            notify: file.notify.clone(),
            audit_mirror: file.audit_mirror.clone(),
            knowledge: file.knowledge.clone(),
        }
    }
}

/// The governor config file `guardrail serve` watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernorSource {
    /// The file.
    pub path: PathBuf,
    /// True when it was named (`--governor-config`, `GUARDRAIL_GOVERNOR_CONFIG`): a missing
    /// file is then an error. False for the default `.guardrail/governor.yaml`, which may be
    /// absent (nobody may approve) and appear later.
    pub required: bool,
}

/// The governor config in force.
#[derive(Debug, Clone)]
pub struct GovernorView {
    /// Approvers and executor settings (the last good ones).
    pub config: guardrail_core::approval::GovernorConfig,
    /// The planner, Slack, Jira and notify blocks (the last good ones).
    pub blocks: GovernorBlocks,
    /// File and sha256, recorded with every decision and grant.
    pub description: Value,
    /// Why governor actions are refused: the file no longer reads or parses (the message
    /// names the file, never its directory). `None` when the config is good.
    pub broken: Option<String>,
    /// The errors behind `broken` (with the full path: for the log only).
    errors: Vec<String>,
    stamp: Option<Stamp>,
    read_at: SystemTime,
}

impl GovernorView {
    fn fixed(settings: &GovernorSettings) -> GovernorView {
        GovernorView {
            config: settings.config.clone(),
            blocks: settings.blocks.clone(),
            description: settings.description.clone(),
            broken: None,
            errors: Vec::new(),
            stamp: None,
            read_at: SystemTime::now(),
        }
    }

    /// Logs why the config cannot be used (full paths: stderr is the operator's).
    pub fn log_errors(&self, path: &std::path::Path) {
        eprintln!(
            "guardrail serve: governor config {} cannot be used; governor actions are refused until it is fixed \
             (the last good config is not used for them):",
            path.display()
        );
        for e in &self.errors {
            eprintln!("  error: {e}");
        }
    }

    /// A one-line description of the config in force, for the log.
    pub fn describe(&self) -> String {
        let path = self.description.get("path").and_then(Value::as_str);
        let sha = self.description.get("sha256").and_then(Value::as_str);
        match (path, sha) {
            (Some(p), Some(h)) => format!("{p} (sha256 {h})"),
            _ => "none (nobody may approve or force-override; executions are dry runs)".into(),
        }
    }
}

/// Reads the governor config of `source` (`Ok(None)`: the optional default file is absent).
fn read_governor(source: &GovernorSource) -> Result<Option<guardrail_config::ReadGovernorConfig>, Vec<String>> {
    if !source.required && !source.path.exists() {
        return Ok(None);
    }
    // The messages are what the log and the refusal show (the refusal without the directory).
    guardrail_config::read_governor(&source.path).map(Some).map_err(|es| es.iter().map(ToString::to_string).collect())
}

fn governor_view(
    source: &GovernorSource,
    last: Option<&GovernorView>,
    stamp: Option<Stamp>,
    read_at: SystemTime,
) -> GovernorView {
    match read_governor(source) {
        Ok(Some(r)) => GovernorView {
            blocks: GovernorBlocks::of(&r.file),
            config: r.file.config,
            description: json!({"path": source.path.display().to_string(), "sha256": r.sha256}),
            broken: None,
            errors: Vec::new(),
            stamp,
            read_at,
        },
        Ok(None) => GovernorView {
            config: Default::default(),
            blocks: GovernorBlocks::default(),
            description: json!({"path": null, "sha256": null}),
            broken: None,
            errors: Vec::new(),
            stamp,
            read_at,
        },
        Err(errors) => {
            let name = source.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            GovernorView {
                config: last.map(|l| l.config.clone()).unwrap_or_default(),
                blocks: last.map(|l| l.blocks.clone()).unwrap_or_default(),
                description: last.map(|l| l.description.clone()).unwrap_or(Value::Null),
                broken: Some(format!(
                    "the governor config {name} cannot be used ({} error(s), see the server log), so governor \
                     actions are refused until it is fixed",
                    errors.len()
                )),
                errors,
                stamp,
                read_at,
            }
        }
    }
}

impl ServerConfig {
    /// A configuration with defaults for everything but the inputs and the store.
    pub fn new(inputs: InputArgs, store: String) -> ServerConfig {
        ServerConfig {
            inputs,
            env: BTreeMap::new(),
            store,
            audit_jsonl: None,
            tokens: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            reload_interval: Duration::from_secs(1),
            allowed_hosts: None,
            governor: GovernorSettings::default(),
        }
    }

    fn env_lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |k: &str| self.env.get(k).cloned()
    }
}

/// A precomputed response: status and JSON bytes.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Body (`{"ok":…}`).
    pub body: Bytes,
}

/// `{"ok": true, "data": …}` or `{"ok": false, "error": "…", "errors": […]}`: serialized
/// through a `Value`, so the keys are in order (the bytes the seed-compatible endpoints have
/// always sent).
pub fn envelope<T: serde::Serialize>(result: &Result<T, Vec<String>>, error_status: StatusCode) -> Reply {
    let (status, v) = match result {
        Ok(data) => (StatusCode::OK, serde_json::to_value(Envelope { ok: True, data })),
        Err(errors) => (error_status, serde_json::to_value(ErrorBody::new(errors))),
    };
    let v = v.unwrap_or(Value::Null);
    Reply { status, body: Bytes::from(serde_json::to_vec(&v).unwrap_or_default()) }
}

/// The error envelope.
pub fn error_value(errors: &[String]) -> Value {
    serde_json::to_value(ErrorBody::new(errors)).unwrap_or(Value::Null)
}

/// How long after its last modification a file's stamp is not trusted on its own: longer than
/// the coarsest file-time granularity in use (two seconds on FAT, one on ext3, HFS+ and some
/// network file systems), plus the kernel's coarse clock tick.
pub const RACY_WINDOW: Duration = Duration::from_secs(3);

/// What the file system says about a file, to notice changes without reading it: size,
/// modification time, and on Unix the change time (to the nanosecond), device and inode (a
/// file replaced by rename is a new inode even when its times and size match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// `(dev, ino, ctime seconds, ctime nanoseconds)`.
    #[cfg(unix)]
    unix: (u64, u64, i64, i64),
}

fn stamp(p: &std::path::Path) -> Option<Stamp> {
    let m = std::fs::metadata(p).ok()?;
    #[cfg(unix)]
    let unix = {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
    };
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        #[cfg(unix)]
        unix,
    })
}

/// Whether the inputs must be read again: a stamp differs (a file appeared, vanished or was
/// touched), or a file was modified so close to the last read (`read_at`) that a later change
/// within the same time tick would leave its stamp as it is. A file without a readable
/// modification time is never trusted.
pub(crate) fn must_reread(old: &[Option<Stamp>], new: &[Option<Stamp>], read_at: SystemTime) -> bool {
    if old != new {
        return true;
    }
    let trusted_before = read_at.checked_sub(RACY_WINDOW).unwrap_or(SystemTime::UNIX_EPOCH);
    new.iter().flatten().any(|s| s.modified.is_none_or(|m| m >= trusted_before))
}

/// One consistent view of the inputs and everything computed from them.
#[derive(Debug)]
pub struct Snapshot {
    /// Bumped each time the input texts change.
    pub version: u64,
    /// When this snapshot was evaluated.
    pub built_at: Timestamp,
    stamps: Vec<Option<Stamp>>,
    /// When `reads` were read (just after `stamps` were taken).
    read_at: SystemTime,
    /// Policies, SLOs, metrics, cost.
    reads: Reads,
    /// The SLO file asks for live Prometheus metrics (see [`Snapshot::live_metrics`]).
    live: bool,
    /// The evaluation, or why there is none (not redacted: see [`shown`]).
    pub evaluation: Result<Evaluation, Vec<GateProblem>>,
    /// The inputs parsed and checked once, which `POST /api/gate` evaluates at its own clock
    /// ([`AppState::prepared_now`]); `None` when they or the settings could not be read.
    /// Kept from one snapshot to the next while the texts and settings stay the same.
    pub prepared: Option<Arc<gate::Prepared>>,
    /// `/api/slo` data (redacted).
    pub slo: Result<Value, Vec<GateProblem>>,
    /// `/api/cost` data (redacted).
    pub cost: Result<Value, Vec<GateProblem>>,
    /// `/api/decision` data (redacted).
    pub decision: Result<Value, Vec<GateProblem>>,
    /// `/api/explain` text.
    pub explanation: Result<String, Vec<GateProblem>>,
    /// Precomputed responses.
    pub replies: Replies,
}

/// The four reads (policies, SLOs, metrics, cost), each the source or why it could not be read.
type Reads = [Result<Source, InputError>; 4];

/// Problems as an answer shows them: each message, redacted (file names, never paths).
pub fn shown(r: &Redactor, problems: &[GateProblem]) -> Vec<String> {
    problems.iter().map(|p| r.text(&p.to_string())).collect()
}

/// Precomputed responses of the read endpoints.
#[derive(Debug, Clone)]
pub struct Replies {
    /// `GET /api/slo`.
    pub slo: Reply,
    /// `GET /api/cost`.
    pub cost: Reply,
    /// `GET /api/decision`.
    pub decision: Reply,
    /// `GET /api/explain`.
    pub explain: Reply,
    /// `GET /api/all`.
    pub all: Reply,
}

impl Snapshot {
    /// The sources, when all four files could be read.
    pub fn sources(&self) -> Result<Sources, Vec<GateProblem>> {
        sources(&self.reads)
    }

    /// True when the SLO file asks for live Prometheus metrics.
    fn live_metrics(&self) -> bool {
        self.live
    }

    /// What identifies the decision (or the errors), to tell when it changed. Leaves out what
    /// moves with the clock alone (`retry_after`, `evaluated_at`), so a steady decision does
    /// not send an event at every tick.
    fn decision_key(&self) -> Value {
        match &self.decision {
            Ok(d) => {
                let mut key = gate::fingerprint(d);
                if let Some(o) = key.as_object_mut() {
                    o.remove("retry_after");
                }
                key
            }
            Err(e) => json!({"errors": e.iter().map(ToString::to_string).collect::<Vec<_>>()}),
        }
    }
}

/// Something the dashboard should know about, sent on `/api/events`.
#[derive(Debug, Clone)]
pub struct ServerEvent {
    /// `inputs` (the files changed), `decision` (the current decision changed) or `audit`
    /// (a record was appended).
    pub kind: &'static str,
    /// JSON payload.
    pub data: Value,
}

/// Shared state behind every handler.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) cfg: ServerConfig,
    pub(crate) paths: InputPaths,
    pub(crate) redactor: Redactor,
    pub(crate) snapshot: ArcSwap<Snapshot>,
    pub(crate) metrics: Metrics,
    pub(crate) events: broadcast::Sender<ServerEvent>,
    pub(crate) shutdown: tokio::sync::watch::Sender<bool>,
    reload: Mutex<()>,
    governor: ArcSwap<GovernorView>,
    governor_reload: Mutex<()>,
    /// Who writes `/api/explain`'s and `/api/simulate`'s narrative (EXPLAINER_BACKEND, read at
    /// start): one model narrative per decision, the rule text on any failure.
    explainer: PerVersion,
    /// The audit store, shared by the requests (see [`AppState::share_store`]).
    store: std::sync::OnceLock<Arc<guardrail_store::SharedStore>>,
    /// The incident views' fold, kept between calls ([`AppState::incident_states`]).
    fold: Mutex<IncidentFold>,
    /// The reads of the store into the fold ([`AppState::with_incident_states_at`]).
    fold_reads: FoldReads,
}

/// The reads of the store into the kept fold, one at a time, each serving every call that
/// began before it started.
#[derive(Default)]
pub(crate) struct FoldReads {
    state: Mutex<ReadCount>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct ReadCount {
    /// Reads started so far.
    started: u64,
    /// The last read that ended with the fold up to date.
    done: u64,
    /// A read is under way.
    reading: bool,
}

/// Ends a read of [`FoldReads`] when dropped: marks it done when it kept the fold up to date,
/// and wakes the waiters either way.
struct ReadEnding<'a> {
    reads: &'a FoldReads,
    generation: u64,
    kept: bool,
}

impl Drop for ReadEnding<'_> {
    fn drop(&mut self) {
        let mut r = self.reads.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        r.reading = false;
        if self.kept {
            r.done = r.done.max(self.generation);
        }
        self.reads.changed.notify_all();
    }
}

impl AppState {
    /// Resolves the input paths and builds the first snapshot (reads the files once).
    pub fn new(cfg: ServerConfig) -> AppState {
        let paths = inputs::resolve_paths(&cfg.inputs, &cfg.env_lookup());
        let root = cfg.inputs.root.clone();
        let files = [&paths.policies, &paths.slos, &paths.metrics, &paths.cost];
        let file_refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
        let dirs: Vec<&std::path::Path> = root.iter().map(|p| p.as_path()).collect();
        let redactor = Redactor::new(&file_refs, &dirs);
        let metrics = Metrics::default();
        let stamps = files.iter().map(|p| stamp(p)).collect();
        let read_at = SystemTime::now();
        let reads = read_all(&paths);
        let first = build(&cfg, &redactor, &metrics, 1, stamps, (read_at, reads), None);
        metrics.reloaded(first.evaluation.is_ok());
        let (events, _) = broadcast::channel(64);
        let governor = match &cfg.governor.source {
            None => GovernorView::fixed(&cfg.governor),
            Some(src) => {
                let stamp = stamp(&src.path);
                governor_view(src, None, stamp, SystemTime::now())
            }
        };
        // EXPLAINER_BACKEND, the seed's variable: read once, at start; a model that cannot be used
        // (no key) is said now, and every narrative then falls back to the rule text.
        let (explainer, warnings) = Explainer::from_env(None, None, &cfg.env_lookup());
        for w in warnings.iter().map(String::as_str).chain(explainer.unavailable()) {
            eprintln!("guardrail serve: warning: {w}");
        }
        if let Some(m) = explainer.model_name() {
            eprintln!("guardrail serve: explainer: {m} (labelled; the rule-based text on any failure)");
        }
        let store = std::sync::OnceLock::new();
        match guardrail_store::share(&cfg.store) {
            Ok(shared) => {
                let _ = store.set(shared);
            }
            // Said once; every recording request tries again (and fails closed meanwhile).
            Err(e) => eprintln!("guardrail serve: warning: the audit store does not open yet: {e}"),
        }
        AppState(Arc::new(Inner {
            explainer: PerVersion::new(explainer),
            store,
            fold: Mutex::new(IncidentFold::default()),
            fold_reads: FoldReads::default(),
            cfg,
            paths,
            redactor,
            snapshot: ArcSwap::from_pointee(first),
            metrics,
            events,
            shutdown: tokio::sync::watch::Sender::new(false),
            reload: Mutex::new(()),
            governor: ArcSwap::from_pointee(governor),
            governor_reload: Mutex::new(()),
        }))
    }

    /// The governor config in force (see [`AppState::refresh_governor`]).
    pub fn governor(&self) -> Arc<GovernorView> {
        self.0.governor.load_full()
    }

    /// Re-reads the governor config when its file changed (stamp, or content while racy, as
    /// the inputs) and swaps the new view in, logging the config now in force. Cheap when
    /// nothing changed (one `stat`); called at every refresh and before every governor action.
    pub fn refresh_governor(&self) -> Arc<GovernorView> {
        let inner = &self.0;
        let Some(src) = &inner.cfg.governor.source else { return self.governor() };
        let unchanged = |old: &GovernorView, now: &Option<Stamp>| {
            !must_reread(std::slice::from_ref(&old.stamp), std::slice::from_ref(now), old.read_at)
        };
        // The file as the view in force saw it: answered without the reload lock, which every
        // concurrent governor request would otherwise queue on for its `stat`.
        let old = inner.governor.load_full();
        if unchanged(&old, &stamp(&src.path)) {
            return old;
        }
        let Ok(_guard) = inner.governor_reload.lock() else { return self.governor() };
        // Under the lock, again: another request may have swapped a re-read view in meanwhile.
        let old = inner.governor.load_full();
        let now_stamp = stamp(&src.path);
        if unchanged(&old, &now_stamp) {
            return old;
        }
        let new = governor_view(src, Some(&old), now_stamp, SystemTime::now());
        if new.broken.is_some() && (old.broken.is_none() || old.stamp != new.stamp) {
            new.log_errors(&src.path);
        } else if new.broken.is_none() && (new.description != old.description || old.broken.is_some()) {
            eprintln!("guardrail serve: governor config in force: {}", new.describe());
        }
        let new = Arc::new(new);
        inner.governor.store(new.clone());
        new
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.0.snapshot.load_full()
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.0.cfg
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The path redactor used for every response.
    pub fn redactor(&self) -> &Redactor {
        &self.0.redactor
    }

    /// The explainer (EXPLAINER_BACKEND).
    pub fn explainer(&self) -> &PerVersion {
        &self.0.explainer
    }

    /// Subscribes to server events.
    pub fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.0.events.subscribe()
    }

    /// Sends an event to every subscriber (none listening is fine).
    pub fn publish(&self, kind: &'static str, data: Value) {
        let _ = self.0.events.send(ServerEvent { kind, data });
    }

    /// [`AppState::publish`] of the event `data` builds, built only while some event stream
    /// listens: with none, a sent event is dropped unseen, so a recording request (an
    /// approval publishes three) need not encode and redact it.
    pub fn publish_with(&self, kind: &'static str, data: impl FnOnce() -> Value) {
        if self.0.events.receiver_count() > 0 {
            self.publish(kind, data());
        }
    }

    /// Tells long-lived responses (the event streams) to end, so a graceful shutdown can finish.
    pub fn begin_shutdown(&self) {
        self.0.shutdown.send_replace(true);
    }

    /// Resolves once [`AppState::begin_shutdown`] has been called.
    pub fn shutting_down(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    }

    /// Settings resolved against the wall clock now (or `--now`).
    pub fn settings_now(&self) -> Result<Settings, Vec<GateProblem>> {
        let cfg = &self.0.cfg;
        settings_at(cfg, Timestamp::now())
    }

    /// The inputs of one decision made now (`POST /api/gate`), holding no lock across I/O.
    /// Files: the snapshot's texts while no file changed (one `stat` each; a change, or a file
    /// still within [`RACY_WINDOW`], goes through [`AppState::refresh`] first). Live metrics:
    /// fetched for this decision alone, as `guardrail gate` fetches them at every run —
    /// concurrent decisions fetch concurrently instead of queueing behind one global refresh.
    /// Re-evaluating the whole snapshot (the read endpoints' answers) is the tick's job.
    pub fn sources_now(&self) -> Result<Sources, Vec<GateProblem>> {
        let snap = self.snapshot();
        if snap.live_metrics() {
            return sources(&read_all(&self.0.paths));
        }
        let p = &self.0.paths;
        let stamps: Vec<Option<Stamp>> = [&p.policies, &p.slos, &p.metrics, &p.cost].iter().map(|f| stamp(f)).collect();
        if !must_reread(&snap.stamps, &stamps, snap.read_at) {
            return snap.sources();
        }
        self.refresh();
        let snap = self.snapshot();
        if snap.live_metrics() {
            // The files changed to a live source just now: fetch for this decision too.
            return sources(&read_all(&self.0.paths));
        }
        snap.sources()
    }

    /// The snapshot's prepared inputs for a decision made now, when no file changed since they
    /// were read (one `stat` each, as [`AppState::sources_now`]; a change, or a file still
    /// within [`RACY_WINDOW`], goes through [`AppState::refresh`] first). `None` with live
    /// metrics (fetched per decision) or inputs that cannot be read: the caller then takes the
    /// general path, [`AppState::sources_now`].
    pub fn prepared_now(&self) -> Option<Arc<gate::Prepared>> {
        let snap = self.snapshot();
        if snap.live_metrics() {
            return None;
        }
        let p = &self.0.paths;
        let stamps: Vec<Option<Stamp>> = [&p.policies, &p.slos, &p.metrics, &p.cost].iter().map(|f| stamp(f)).collect();
        if !must_reread(&snap.stamps, &stamps, snap.read_at) {
            return snap.prepared.clone();
        }
        self.refresh();
        let snap = self.snapshot();
        if snap.live_metrics() { None } else { snap.prepared.clone() }
    }

    /// The incidents folded from the configured store's records — incrementally: the fold is
    /// kept, and each call reads only the records appended since it last stopped (plus the
    /// record it stopped at, to see that the chain it folded is still the stored one; when not
    /// — the store replaced or rewritten — the whole chain is folded again). The store is read
    /// with no lock held; the fold's lock covers only folding the new records in.
    pub fn incident_states(&self) -> Result<BTreeMap<String, IncidentState>, TrailError> {
        self.with_incident_states(BTreeMap::clone)
    }

    /// [`AppState::incident_states`] given to `f` instead of copied (an approval needs one
    /// incident, and copying every record of every incident dominated it).
    pub fn with_incident_states<R>(
        &self,
        f: impl FnOnce(&BTreeMap<String, IncidentState>) -> R,
    ) -> Result<R, TrailError> {
        self.with_incident_states_at(|states, _| f(states))
    }

    /// [`AppState::with_incident_states`], `f` also given the seq of the last record folded
    /// into the states it sees (what an approval decided on ends there); `None` for a chain
    /// whose links do not hold (folded as it is, not kept).
    pub fn with_incident_states_at<R>(
        &self,
        f: impl FnOnce(&BTreeMap<String, IncidentState>, Option<i64>) -> R,
    ) -> Result<R, TrailError> {
        // Group reads: a read of the store that starts after this call began sees everything
        // committed before it, so one such read, whoever makes it, serves every call waiting
        // for it. Without this, concurrent calls (an approval each) each read and decoded the
        // same new records, and all but one threw them away.
        let reads = &self.0.fold_reads;
        let mut r = reads.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let need = r.started + 1;
        loop {
            if r.done >= need {
                drop(r);
                let fold = self.0.fold.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let at = fold.last_seq();
                return Ok(f(fold.states(), Some(at)));
            }
            if r.reading {
                r = reads.changed.wait(r).unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            r.reading = true;
            r.started += 1;
            let generation = r.started;
            drop(r);
            // Ends the read (also when it panics): the waiters then find it done, or one of
            // them reads again.
            let mut ending = ReadEnding { reads, generation, kept: false };
            let read = self.read_into_fold();
            ending.kept = matches!(read, Ok(None));
            drop(ending);
            match read {
                Ok(None) => r = reads.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
                // A chain whose links do not hold (verify names where): folded as it is, not kept.
                Ok(Some(all)) => return Ok(f(&incident_states(&all), None)),
                Err(e) => return Err(e),
            }
        }
    }

    /// One read of the store into the kept fold: the records after where it stopped (after
    /// checking the record it stopped at is still the stored one), or, when the chain does not
    /// continue it, the whole chain folded again. `Some(records)`: a chain whose links do not
    /// hold, not kept.
    fn read_into_fold(&self) -> Result<Option<Vec<guardrail_core::audit::ChainedRecord>>, TrailError> {
        let spec = &self.0.cfg.store;
        let unreadable = |e: guardrail_store::StoreError| TrailError::Store {
            store: guardrail_store::redact_url(spec),
            message: e.to_string(),
        };
        let mut store: Box<dyn guardrail_store::AuditStore> = match self.share_store() {
            Some(shared) => Box::new(shared.handle()),
            None => guardrail_store::open_store(spec).map_err(unreadable)?,
        };
        let lock = || self.0.fold.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (from, hash) = {
            let fold = lock();
            (fold.last_seq(), fold.last_hash().map(str::to_string))
        };
        let still_there = match &hash {
            None => true,
            // The hash alone: the record was read strictly when it was folded.
            Some(h) => store.hash_at(from).map_err(unreadable)?.is_some_and(|stored| stored == *h),
        };
        if still_there {
            let mut newer = store.records_after(from).map_err(unreadable)?;
            let mut fold = lock();
            // A call that did not wait (the full fold below) may have folded some meanwhile.
            let done = fold.last_seq();
            newer.retain(|r| r.seq > done);
            if fold.extend(&newer) {
                return Ok(None);
            }
        }
        let all = store.all().map_err(unreadable)?;
        let mut fresh = IncidentFold::default();
        if !fresh.extend(&all) {
            return Ok(Some(all));
        }
        *lock() = fresh;
        Ok(None)
    }

    /// The store this server records to, shared by its requests ([`guardrail_store::share`]):
    /// one writer doing group commits and a pool of read connections, which every open of the
    /// configured store in this process (`open_store(spec)`) then uses. Shared at start; when
    /// the store could not be opened then, tried again here at each recording request (until
    /// then each request opens the store itself and fails as before: nothing is recorded or
    /// decided on a store that does not open).
    pub fn share_store(&self) -> Option<Arc<guardrail_store::SharedStore>> {
        if let Some(s) = self.0.store.get() {
            return Some(s.clone());
        }
        let shared = guardrail_store::share(&self.0.cfg.store).ok()?;
        Some(self.0.store.get_or_init(|| shared).clone())
    }

    /// Checks the files for changes, re-reads them when one changed, re-evaluates, and swaps
    /// the snapshot in. When the SLO file has a `prometheus:` block the metrics are a live
    /// query, so they are fetched again at every refresh (as `guardrail gate` fetches them at
    /// every run). Blocking (file system, network): call from a blocking thread. Returns true
    /// when the input files changed.
    pub fn refresh(&self) -> bool {
        self.refresh_governor();
        let inner = &self.0;
        let Ok(_guard) = inner.reload.lock() else { return false };
        let old = inner.snapshot.load_full();
        let p = &inner.paths;
        let files = [&p.policies, &p.slos, &p.metrics, &p.cost];
        let stamps: Vec<Option<Stamp>> = files.iter().map(|f| stamp(f)).collect();
        let live = old.live_metrics();
        let (read_at, reads, changed) = if live || must_reread(&old.stamps, &stamps, old.read_at) {
            let read_at = SystemTime::now();
            let reads = read_all(p);
            let same = reads.iter().zip(old.reads.iter()).enumerate().all(|(i, (a, b))| match (a, b) {
                // A live snapshot differs at every fetch (it carries its time); its changes
                // show as decision events, not as changed files.
                (Ok(_), Ok(_)) if i == 2 && live => true,
                (Ok(a), Ok(b)) => a.sha256 == b.sha256,
                (Err(a), Err(b)) => a.to_string() == b.to_string(),
                _ => false,
            });
            (read_at, reads, !same)
        } else {
            (old.read_at, old.reads.clone(), false)
        };
        let version = if changed { old.version + 1 } else { old.version };
        let new =
            build(&inner.cfg, &inner.redactor, &inner.metrics, version, stamps, (read_at, reads), old.prepared.clone());
        let decision_changed = new.decision_key() != old.decision_key();
        if changed {
            inner.metrics.reloaded(new.evaluation.is_ok());
        }
        let summary = serde_json::to_value(summary(&inner.redactor, &new)).unwrap_or(Value::Null);
        inner.snapshot.store(Arc::new(new));
        if changed {
            self.publish("inputs", summary.clone());
        }
        if decision_changed {
            self.publish("decision", summary);
        }
        changed
    }
}

/// True when the SLO file of `reads` asks for live Prometheus metrics.
fn live_metrics(reads: &Reads) -> bool {
    matches!(reads.get(1), Some(Ok(slos)) if matches!(guardrail_config::load_prometheus(slos), Ok(Some(_))))
}

/// Reads the four inputs as `guardrail gate` does (`inputs::metrics_input`: the metrics file, or
/// a Prometheus snapshot when the SLO file has a `prometheus:` block).
fn read_all(paths: &InputPaths) -> Reads {
    // Each result keeps its problem: a snapshot answers with it (redacted) until the files
    // change.
    let read = |p: &std::path::Path| guardrail_config::read_source(p).map_err(InputError::File);
    let slos = read(&paths.slos);
    let metrics = match &slos {
        Ok(s) => inputs::metrics_input(paths, s),
        Err(_) => read(&paths.metrics),
    };
    [read(&paths.policies), slos, metrics, read(&paths.cost)]
}

/// The sources, when all four reads succeeded; otherwise every read's problem, in order.
fn sources(reads: &Reads) -> Result<Sources, Vec<GateProblem>> {
    match reads {
        [Ok(p), Ok(s), Ok(m), Ok(c)] => {
            Ok(Sources { policies: p.clone(), slos: s.clone(), metrics: m.clone(), cost: c.clone() })
        }
        _ => Err(reads.iter().filter_map(|r| r.as_ref().err().cloned()).map(GateProblem::Input).collect()),
    }
}

/// Settings resolved against `clock` (or `--now`), with every problem.
fn settings_at(cfg: &ServerConfig, clock: Timestamp) -> Result<Settings, Vec<GateProblem>> {
    inputs::settings(&cfg.inputs, &cfg.env_lookup(), clock)
        .map_err(|e| e.all().cloned().map(GateProblem::Setting).collect())
}

/// The evaluation's problems as the gate's.
fn evaluation_problems(problems: Vec<gate::Problem>) -> Vec<GateProblem> {
    problems.into_iter().map(GateProblem::Evaluation).collect()
}

/// A short description of a snapshot for events and `/readyz` (its problems redacted by `r`).
pub fn summary(r: &Redactor, s: &Snapshot) -> InputsSummary {
    match &s.evaluation {
        Ok(ev) => InputsSummary::Valid {
            version: s.version,
            valid: True,
            action: ev.decision.action,
            policy_id: ev.decision.policy_id.clone(),
        },
        Err(e) => InputsSummary::Invalid { version: s.version, valid: False, errors: shown(r, e) },
    }
}

fn redacted<T: serde::Serialize>(r: &Redactor, v: &T) -> Result<Value, Vec<GateProblem>> {
    // Our own types always encode; should one not, the answer says so (no input is at fault).
    let mut v =
        serde_json::to_value(v).map_err(|e| vec![GateProblem::Message(format!("could not encode the result: {e}"))])?;
    r.value(&mut v);
    Ok(v)
}

/// `result` as its answer, the problems shown by [`shown`].
fn answer<T: serde::Serialize>(r: &Redactor, result: &Result<T, Vec<GateProblem>>, error_status: StatusCode) -> Reply {
    envelope(&result.as_ref().map_err(|e| shown(r, e)), error_status)
}

/// The CI context of a decision shown by a read endpoint (nobody asked to deploy).
pub fn read_only_ci() -> CiContext {
    CiContext { provider: "http".into(), ..CiContext::default() }
}

/// `GET /api/explain` with a model explainer: the model's labelled narrative of the snapshot's
/// decision view (already redacted), written once per decision (keyed by the snapshot's version
/// and decision, so a live-metrics snapshot whose decision changes is explained again), or the
/// rule text with `explainer_warning` when the model fails. Blocking (the model is called
/// over HTTP): call from a blocking thread. Without an evaluation: the snapshot's reply.
pub fn model_explanation(state: &AppState, snap: &Snapshot) -> Reply {
    let (Ok(ev), Ok(decision), Ok(rule)) = (&snap.evaluation, &snap.decision, &snap.explanation) else {
        return snap.replies.explain.clone();
    };
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (snap.version, snap.decision_key().to_string()).hash(&mut h);
        h.finish()
    };
    let summary = format!("{} by policy {}", ev.decision.action, ev.decision.policy_id);
    let (n, fresh) = state.explainer().explain(key, decision, &summary, || rule.clone());
    if let (Some(w), true) = (&n.warning, fresh) {
        eprintln!("guardrail serve: warning: /api/explain: {w}");
    }
    let r = state.redactor();
    let data = Explanation {
        text: r.text(&n.text),
        written_by: n.written_by,
        explainer_warning: n.warning.map(|w| r.text(&w)),
    };
    envelope(&Ok(data), StatusCode::SERVICE_UNAVAILABLE)
}

/// The narrative for an evaluation, naming the policy file by its file name only.
pub fn narrative(ev: &Evaluation) -> String {
    let generated = ev.settings.now.strftime("%Y-%m-%d %H:%M UTC").to_string();
    let policies = ev
        .sources
        .policies
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "the policy file".into());
    guardrail_core::explain::narrative(&guardrail_core::explain::NarrativeInput {
        decision: &ev.decision,
        slo: &ev.slo,
        cost: &ev.cost,
        generated_at: &generated,
        policies_path: &policies,
    })
}

fn build(
    cfg: &ServerConfig,
    r: &Redactor,
    metrics: &Metrics,
    version: u64,
    stamps: Vec<Option<Stamp>>,
    (read_at, reads): (SystemTime, Reads),
    last: Option<Arc<gate::Prepared>>,
) -> Snapshot {
    let now = Timestamp::now();
    let settings = settings_at(cfg, now);
    let read = |i: usize| -> Result<&Source, Vec<GateProblem>> {
        reads[i].as_ref().map_err(|e| vec![GateProblem::Input(e.clone())])
    };
    let slo = match (&settings, read(1), read(2)) {
        (Ok(st), Ok(s), Ok(m)) => gate::slo_report(s, m, st).map_err(evaluation_problems),
        (st, s, m) => Err([st.as_ref().err().cloned(), s.err(), m.err()].into_iter().flatten().flatten().collect()),
    };
    let cost = match (&settings, read(3)) {
        (Ok(st), Ok(c)) => gate::cost_report(c, st).map_err(evaluation_problems),
        (st, c) => Err([st.as_ref().err().cloned(), c.err()].into_iter().flatten().flatten().collect()),
    };
    let started = Instant::now();
    // Parsed and checked once per version of the texts (and settings): the last snapshot's
    // when it is for the same ones.
    let (prepared, evaluation) = match (sources(&reads), settings) {
        (Ok(src), Ok(st)) => {
            let prepared = match last {
                Some(p) if p.is_for(&src, &st) => p,
                _ => Arc::new(gate::Prepared::new(src, st.clone())),
            };
            let evaluation = prepared.evaluate(st.now).map_err(evaluation_problems);
            (Some(prepared), evaluation)
        }
        (a, b) => (None, Err([a.err(), b.err()].into_iter().flatten().flatten().collect())),
    };
    metrics.observe_evaluation(started.elapsed());
    let slo = slo.and_then(|s| redacted(r, &s));
    let cost = cost.and_then(|c| redacted(r, &c));
    let ci = read_only_ci();
    let decision = match &evaluation {
        Ok(ev) => redacted(r, &gate::output(ev, &ci, false)),
        Err(e) => Err(e.clone()),
    };
    let explanation = match &evaluation {
        Ok(ev) => Ok(r.text(&narrative(ev))),
        Err(e) => Err(e.clone()),
    };
    let all = match (&evaluation, &decision, &explanation) {
        (Ok(ev), Ok(d), Ok(x)) => Ok(All {
            slo: redacted(r, &ev.slo).unwrap_or(Value::Null),
            cost: redacted(r, &ev.cost).unwrap_or(Value::Null),
            decision: d.clone(),
            explanation: x.clone(),
        }),
        (Err(e), _, _) => Err(e.clone()),
        (_, Err(e), _) | (_, _, Err(e)) => Err(e.clone()),
    };
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    let replies = Replies {
        slo: answer(r, &slo, unavailable),
        cost: answer(r, &cost, unavailable),
        decision: answer(r, &decision, unavailable),
        explain: answer(r, &explanation.clone().map(Explanation::rule), unavailable),
        all: answer(r, &all, unavailable),
    };
    let live = live_metrics(&reads);
    Snapshot {
        version,
        built_at: now,
        stamps,
        read_at,
        reads,
        live,
        evaluation,
        prepared,
        slo,
        cost,
        decision,
        explanation,
        replies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn s(len: u64, modified: u64) -> Option<Stamp> {
        Some(Stamp {
            len,
            modified: Some(at(modified)),
            #[cfg(unix)]
            unix: (1, 2, modified as i64, 0),
        })
    }

    #[test]
    fn unreadable_inputs_stay_typed_problems_until_an_answer_shows_them() {
        let dir = std::path::Path::new("/srv/secret-dir");
        let missing =
            |name: &str| Err(InputError::File(guardrail_config::ConfigError::file(dir.join(name), "not found")));
        let reads: Reads =
            [missing("policies.yaml"), missing("slos.yaml"), missing("metrics.json"), missing("cost.json")];
        let Err(problems) = sources(&reads) else { panic!("four unreadable files gave sources") };
        // Each read's problem, in order, with its file (POST /api/gate records them as the CLI does).
        let files: Vec<_> = problems
            .iter()
            .map(|p| match p {
                GateProblem::Input(InputError::File(c)) => c.file.clone(),
                other => panic!("not a file problem: {other:?}"),
            })
            .collect();
        assert_eq!(files, ["policies.yaml", "slos.yaml", "metrics.json", "cost.json"].map(|n| dir.join(n)));
        // Shown: the message as before, without the directory.
        let r = Redactor::new(&[&dir.join("metrics.json")], &[dir]);
        let shown = shown(&r, &problems);
        assert_eq!(shown.len(), 4);
        assert!(shown.iter().all(|m| !m.contains("secret-dir") && m.contains("not found")), "{shown:?}");
        assert!(shown[2].starts_with("metrics.json"), "{shown:?}");
    }

    #[test]
    fn a_changed_stamp_is_reread() {
        assert!(must_reread(&[s(10, 100)], &[s(11, 100)], at(1000)));
        assert!(must_reread(&[s(10, 100)], &[s(10, 101)], at(1000)));
        assert!(must_reread(&[s(10, 100)], &[None], at(1000)));
        assert!(must_reread(&[None], &[s(10, 100)], at(1000)));
    }

    #[test]
    fn a_quiet_file_is_trusted_by_its_stamp() {
        assert!(!must_reread(&[s(10, 100), None], &[s(10, 100), None], at(1000)));
        // Modified just over the window before the last read.
        let last = 100 + RACY_WINDOW.as_secs() + 1;
        assert!(!must_reread(&[s(10, 100)], &[s(10, 100)], at(last)));
    }

    #[test]
    fn a_file_modified_close_to_the_last_read_is_reread_though_its_stamp_is_unchanged() {
        // Same size, same times: a rewrite within one tick of the file-time clock looks like
        // this. Read at the same second, or within the window after it, it must be hashed again.
        for read in [100, 101, 100 + RACY_WINDOW.as_secs() - 1, 100 + RACY_WINDOW.as_secs()] {
            assert!(must_reread(&[s(10, 100)], &[s(10, 100)], at(read)), "read at {read}");
        }
        // A modification time after the read (a clock step, a copied tree) is never trusted.
        assert!(must_reread(&[s(10, 2000)], &[s(10, 2000)], at(1000)));
        // One racy file among quiet ones is enough.
        assert!(must_reread(&[s(10, 100), s(5, 998)], &[s(10, 100), s(5, 998)], at(1000)));
    }

    #[test]
    fn a_file_without_a_modification_time_is_never_trusted() {
        let none = Some(Stamp {
            len: 1,
            modified: None,
            #[cfg(unix)]
            unix: (1, 2, 0, 0),
        });
        assert!(must_reread(std::slice::from_ref(&none), std::slice::from_ref(&none), at(1000)));
    }
}
