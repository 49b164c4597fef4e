//! `guardrail serve`: the HTTP API and dashboard over the deploy gate.
//!
//! Every handler ([`api`]) is a thin adapter over `guardrail-gate` (the same code path as
//! `guardrail gate`) and the audit store; the decision is always `guardrail_core`'s.
//!
//! - **Compatibility** with the original dashboard's API (`{"ok": true, "data": …}` /
//!   `{"ok": false, "error": "…"}`, plus an `errors` list): `GET /api/slo`, `/api/cost`,
//!   `/api/decision`, `/api/explain`, `/api/audit`, `/api/all`, `POST /api/simulate`.
//! - **New:** `POST /api/gate` (a pipeline asks for a decision, which is audited like
//!   `guardrail gate`'s), `GET /api/audit/verify`, `/healthz`, `/readyz`, `/metrics`
//!   (Prometheus text), `/api/openapi.json`, `/api/events` (server-sent events), and the
//!   dashboard at `/`.
//! - **Inputs** are read once per change ([`state`]): a background task checks each file's
//!   stamp (size, modification and change time, inode) every `reload_interval` — and re-reads
//!   and hashes a file modified within [`RACY_WINDOW`] of the last read, so a same-size rewrite
//!   within one file-time tick is not missed — and swaps in a new immutable snapshot, so a
//!   request never sees a half-updated set, and an invalid set answers `ok: false` (503) —
//!   never ALLOW.
//! - **Security:** loopback by default; `POST` endpoints need `Authorization: Bearer TOKEN`
//!   matched against a tokens file of sha256 hashes ([`auth`]), each token with a role —
//!   `viewer` (no write endpoint; the read-only MCP tools), `deployer` (gate, simulate,
//!   propose), `approver` (approve, force-override, execute, resolve), `admin` (all) — as
//!   [`route_table`] lists per route; strict
//!   `Content-Type: application/json` (415), a body limit (413), unknown fields rejected (400);
//!   responses never carry filesystem paths ([`redact`]) or internal errors (those go to stderr).
//!
//! - **Documentation:** `/api/openapi.json` is generated ([`openapi`]) from the route table
//!   (`routes()` below: each route registered with its handler) and the types: a handler's
//!   extractors give the request body, role and parameters, its return type the success body
//!   ([`wire`]); the route adds the failures only the handler knows. schemathesis checks a real
//!   server against it in the test command (`scripts/schemathesis`).
//!
//! - **Governor** ([`governor_api`]): `GET /api/incidents`, `GET /api/incidents/{id}`,
//!   `GET /api/approvals`, `POST /api/incidents` (role `deployer`/`admin`; the token's identity
//!   is the proposer), `POST /api/incidents/{id}/approve` and `/force-override` (role
//!   `approver`/`admin`; the approver is the token's identity only), `POST
//!   /api/incidents/{id}/execute` and `/resolve` (role `approver`/`admin`) — adapters over
//!   `guardrail_governor` (`pipeline`, `queue`, `approve`, `learn`), the same code as
//!   `guardrail incident` and `guardrail approve`, on the same audit chain; `incident` and
//!   `approval` events on `/api/events`.
//!
//!   An action the gate validates or a grant releases runs as the CLI runs it: hash-checked,
//!   claimed (one execution among concurrent callers), with the config's `executor.default`
//!   (dry-run unless configured), recorded.
//!
//! - **Dashboard:** an incidents card (state, verdict, gate reasons, evidence, plan hash) with
//!   approve / force-override buttons that use the token entered for the simulation;
//!   `tests/it/browser_approval.rs` performs an approval in headless Chromium.

#![warn(missing_docs)]

// The server logs to stderr through these, not std's (textual scope shadows the prelude's in
// every module below): std's panic when stderr is a closed pipe (`guardrail serve 2>&1 | head`,
// a log collector that went away), which under panic = "abort" ends the server.
// `guardrail_gate::out::stderr` ignores the error instead.
macro_rules! eprintln {
    ($($arg:tt)*) => { guardrail_gate::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

pub mod api;
pub mod auth;
pub mod checkpoints;
mod drain;
mod gov_doc;
pub mod governor_api;
pub mod metrics;
pub mod openapi;
pub mod outbox_worker;
pub mod redact;
pub mod slack;
pub mod state;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderValue, header};
use axum::routing::{MethodFilter, on};

pub use auth::{Caller, McpRoleExt, Role, Tokens, hash_token};
pub use openapi::{DocHandler, Operation, OperationDoc};

use openapi::Content;
pub use state::{AppState, GovernorBlocks, GovernorSettings, RACY_WINDOW, ServerConfig};

/// One route: method (`GET`/`POST`), path, and the role its bearer token needs (`None`: open,
/// no token; an `admin` token may do everything a role may). The role is the one the
/// handler's extractor enforces ([`api::Deployer`], [`governor_api::Approver`]), read from the
/// handler's signature ([`openapi::DocHandler`]); the OpenAPI test checks the document against
/// it and every role's token against the handler.
pub type RouteEntry = (&'static str, &'static str, Option<Role>);

struct Routes {
    router: Router<AppState>,
    operations: Vec<Operation>,
}

/// The documentation a route adds to what its handler's signature says: a summary and the
/// failures only the handler knows.
fn doc(summary: &'static str) -> OperationDoc {
    OperationDoc::default().summary(summary)
}

impl Routes {
    /// Routes `method path` to `h` and records its documentation: what the handler's signature
    /// says, then what the route adds (more specific: its summary, its failures).
    fn add<H, T, D>(mut self, method: MethodFilter, path: &'static str, h: H, mut doc: OperationDoc) -> Self
    where
        H: Handler<T, AppState> + DocHandler<D>,
        T: 'static,
    {
        let mut merged = OperationDoc::default();
        H::document(&mut merged);
        merged.summary = doc.summary;
        merged.responses.append(&mut doc.responses);
        self.router = self.router.route(path, on(method, h));
        let method = if method == MethodFilter::POST { "POST" } else { "GET" };
        self.operations.push(Operation { method, path, doc: merged });
        self
    }
    fn get<H: Handler<T, AppState> + DocHandler<D>, T: 'static, D>(
        self,
        path: &'static str,
        h: H,
        doc: OperationDoc,
    ) -> Self {
        self.add(MethodFilter::GET, path, h, doc)
    }
    fn post<H: Handler<T, AppState> + DocHandler<D>, T: 'static, D>(
        self,
        path: &'static str,
        h: H,
        doc: OperationDoc,
    ) -> Self {
        self.add(MethodFilter::POST, path, h, doc)
    }
}

const STORE_UNAVAILABLE: &str = "The audit store is unavailable.";

fn routes() -> Routes {
    use governor_api as gov;
    Routes { router: Router::new(), operations: Vec::new() }
        .get("/", api::dashboard, doc("The dashboard (one HTML page embedded in the binary)."))
        .get("/assets/dashboard.js", api::dashboard_js, doc("The dashboard's script.").responds(200, "JavaScript.", Content::Other("text/javascript")))
        .get("/api/slo", api::slo, doc("SLO signals of the current inputs."))
        .get("/api/cost", api::cost, doc("Cost signals of the current inputs (independent of the metrics)."))
        .get("/api/decision", api::decision, doc("What the gate decides on the current inputs. Records nothing."))
        .get("/api/explain", api::explain, doc("The decision in plain language."))
        .get("/api/all", api::all, doc("SLO, cost, decision and explanation from one snapshot."))
        .get("/api/audit", api::audit, doc("Audit records, newest first.").fails(&[(503, STORE_UNAVAILABLE)]))
        .get(
            "/api/audit/verify",
            api::audit_verify,
            doc("Recompute every hash of the audit chain (`intact` false when broken).").fails(&[(503, STORE_UNAVAILABLE)]),
        )
        .post(
            "/api/simulate",
            api::simulate,
            doc("What-if: evaluate the current inputs, optionally with some signals replaced; recorded as a `deploy_simulation` record.")
                .fails(&[
                    (422, "The policies cannot decide with these signal values."),
                    (503, "Could not decide, or the simulation could not be recorded."),
                ]),
        )
        .post(
            "/api/gate",
            api::gate_endpoint,
            doc("A pipeline asks for a deploy decision; it is recorded in the audit trail exactly like `guardrail gate` records it, with the token's identity as `requested_by`. BLOCK and DELAY are answers too (200): read `data.action` / `data.exit_code`.")
                .fails(&[(503, "Could not decide (the could-not-decide is recorded, see `audit`), or the decision could not be recorded and is withheld.")]),
        )
        .get("/api/incidents", gov::list, gov_doc::list())
        .post("/api/incidents", gov::propose, gov_doc::propose())
        .get("/api/incidents/{id}", gov::show, gov_doc::show())
        .get("/api/approvals", gov::approvals, gov_doc::approvals())
        .post("/api/incidents/{id}/approve", gov::approve, gov_doc::approve(false))
        .post("/api/incidents/{id}/force-override", gov::force_override, gov_doc::approve(true))
        .post("/api/incidents/{id}/execute", gov::execute, gov_doc::execute())
        .post("/api/incidents/{id}/resolve", gov::resolve, gov_doc::resolve())
        .get("/api/events", api::events, doc("Server-sent events: `hello` (current state), `inputs` (files changed), `decision` (current decision changed), `audit` (a record was appended), `incident` (an incident was proposed and decided), `approval` (an approval was refused or granted)."))
        .get("/api/openapi.json", api::openapi, doc("This document (OpenAPI 3.1, generated from the route table and the types).").responds(200, "OpenAPI 3.1.", Content::Other("application/json")))
        .get("/healthz", api::healthz, doc("Liveness."))
        .get("/readyz", api::readyz, doc("Readiness: the inputs can decide and the audit store opens.").fails(&[(503, "Not ready; the reasons (no paths).")]))
        .get("/metrics", api::metrics, doc("Prometheus metrics: guardrail_decisions_total{endpoint,action,rule}, guardrail_undecided_total, guardrail_audit_write_failures_total, guardrail_evaluation_duration_seconds (histogram), guardrail_input_reloads_total, guardrail_inputs_valid; once Slack or Jira is configured, the notification outbox's gauges guardrail_outbox_pending, guardrail_outbox_failed, guardrail_outbox_delivered, guardrail_outbox_oldest_pending_age_seconds.").responds(200, "Text exposition format 0.0.4.", Content::Other("text/plain")))
}

/// Every route the server answers, as registered (the OpenAPI test compares this list with
/// the document).
pub fn route_table() -> Vec<RouteEntry> {
    routes().operations.into_iter().map(|o| (o.method, o.path, o.doc.role)).collect()
}

/// Every route with its documentation, as registered: what `/api/openapi.json` is built from.
pub fn operations() -> Vec<Operation> {
    routes().operations
}

/// The loopback `Host` values a browser sends for a server on `port`.
pub fn loopback_hosts(port: u16) -> Vec<String> {
    vec![format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")]
}

async fn check_host(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(allowed) = &state.config().allowed_hosts {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(|h| h.to_ascii_lowercase());
        if !host.is_some_and(|h| allowed.contains(&h)) {
            return api::ApiError::of(
                api::Failure::Misdirected,
                "this server only answers requests addressed to its loopback name (Host header)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    r
}

/// The application: every route, the body limit, the JSON 404/405 answers and the security
/// headers.
pub fn router(state: AppState) -> Router {
    let limit = state.config().max_body_bytes;
    routes()
        .router
        // Slack's signed endpoints: outside the documented table (Slack calls them, with its
        // own signatures and payloads, not bearer tokens): `slack.rs`.
        .merge(slack::routes())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), check_host))
        // Outside every early answer (the host check's included): `drain.rs`.
        .layer(axum::middleware::from_fn_with_state(limit, drain::read_body_first))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Re-checks the inputs every `reload_interval` until the process ends.
pub fn spawn_refresher(state: AppState) -> tokio::task::JoinHandle<()> {
    let every = state.config().reload_interval.max(Duration::from_millis(50));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let s = state.clone();
            let _ = tokio::task::spawn_blocking(move || s.refresh()).await;
        }
    })
}

/// Serves on an already-bound listener until `shutdown` resolves (the refresher included).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, None, shutdown).await
}

/// As [`serve`], with another router merged in beside the API (`guardrail serve --mcp`: the
/// MCP endpoint from `guardrail_mcp::http_router`, which brings its own auth and host checks).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    extra: Option<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let refresher = spawn_refresher(state.clone());
    // Notifications are delivered off the request path; stopped when the server returns.
    let outbox = outbox_worker::OutboxWorker::spawn(state.clone())?;
    let st = state.clone();
    let shutdown = async move {
        shutdown.await;
        st.begin_shutdown();
    };
    let app = match extra {
        Some(extra) => router(state).merge(extra),
        None => router(state),
    };
    let result = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    refresher.abort();
    // Joining waits for a delivery in progress (bounded by its HTTP timeouts): off the runtime.
    let _ = tokio::task::spawn_blocking(move || drop(outbox)).await;
    result
}

/// Why `guardrail serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The tokens file is invalid (every problem, one per line).
    #[error("tokens file: {}", .0.join("\n  "))]
    Tokens(Vec<String>),
    /// The address could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or the server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// What `guardrail serve` needs beyond the [`ServerConfig`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (default `127.0.0.1:8080`).
    pub bind: SocketAddr,
    /// Tokens file, if any.
    pub tokens_file: Option<PathBuf>,
    /// Also serve MCP (streamable HTTP) at `/mcp` over these inputs; needs a tokens file.
    pub mcp: Option<guardrail_mcp::McpConfig>,
    /// Write signed checkpoints of the audit chain ([`checkpoints`]).
    pub checkpoints: Option<checkpoints::CheckpointOptions>,
}

/// Runs the server until Ctrl-C (blocking; builds its own runtime).
pub fn run(mut cfg: ServerConfig, opts: ServeOptions) -> Result<(), ServerError> {
    if let Some(path) = &opts.tokens_file {
        let t =
            Tokens::load(path).map_err(|es| ServerError::Tokens(es.into_iter().map(|e| e.to_string()).collect()))?;
        cfg.tokens = Some(t);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.bind)
            .await
            .map_err(|source| ServerError::Bind { addr: opts.bind, source })?;
        let addr = listener.local_addr()?;
        if addr.ip().is_loopback() {
            cfg.allowed_hosts = Some(loopback_hosts(addr.port()));
        }
        let tokens = cfg.tokens.as_ref().map(|t| t.len());
        let mcp = match (opts.mcp, cfg.tokens.clone()) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(ServerError::Tokens(vec![
                    "--mcp needs --tokens: every MCP request needs a bearer token".into(),
                ]));
            }
            (Some(m), Some(t)) => {
                let verify: guardrail_mcp::TokenVerifier =
                    std::sync::Arc::new(move |tok: &str| t.check(tok).map(|c| (c.identity, c.role.to_mcp())));
                let http = guardrail_mcp::HttpOptions {
                    allowed_hosts: cfg.allowed_hosts.clone().unwrap_or_default(),
                    max_body_bytes: cfg.max_body_bytes,
                };
                Some(guardrail_mcp::http_router(m, verify, http).map_err(|e| std::io::Error::other(e.to_string()))?)
            }
        };
        // The first read may query Prometheus with a blocking client: off the async threads.
        let state = tokio::task::spawn_blocking(move || AppState::new(cfg))
            .await
            .map_err(|e| std::io::Error::other(format!("could not read the inputs: {e}")))?;
        eprintln!("guardrail serve: listening on http://{addr}/ (dashboard at /, API under /api/)");
        // Announced only once the inputs are read, so a client that waits for this line finds
        // the endpoint ready.
        if mcp.is_some() {
            eprintln!("guardrail serve: MCP (streamable HTTP) at http://{addr}/mcp");
        }
        if !addr.ip().is_loopback() {
            eprintln!(
                "guardrail serve: warning: {addr} is not a loopback address; the API is reachable from the network"
            );
        }
        match tokens {
            None => eprintln!("guardrail serve: no --tokens file: POST /api/gate, /api/simulate, /api/incidents and approvals are disabled"),
            Some(n) => eprintln!("guardrail serve: {n} token(s) loaded"),
        }
        let governor = state.governor();
        match (&governor.broken, &state.config().governor.source) {
            (Some(_), Some(src)) => governor.log_errors(&src.path),
            _ => eprintln!("guardrail serve: governor config in force: {}", governor.describe()),
        }
        if let Some(src) = state.config().governor.source.as_ref().filter(|s| !s.required) {
            eprintln!("guardrail serve: watching {} for a governor config (reloaded when it changes)", src.path.display());
        }
        if let Err(e) = &state.snapshot().evaluation {
            eprintln!("guardrail serve: the inputs cannot decide yet (answering ok:false until fixed):");
            for m in e {
                eprintln!("  error: {m}");
            }
        }
        // Stopped (and joined) when the server returns.
        let _checkpoints = match opts.checkpoints {
            None => None,
            Some(c) => {
                eprintln!(
                    "guardrail serve: signed checkpoints ({}) to {} every {} record(s) or {} minute(s)",
                    c.key.name(),
                    c.dir.display(),
                    c.every_records,
                    c.every.as_secs() / 60
                );
                Some(checkpoints::CheckpointWriter::spawn(state.config().store.clone(), c)?)
            }
        };
        serve_with(listener, state, mcp, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(())
    })
}
