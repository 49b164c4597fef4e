//! `guardrail mcp`: the MCP server (`guardrail-mcp`) over standard input and output, or over
//! streamable HTTP at `/mcp` with `--http ADDR` (bearer tokens from `--tokens`, as for
//! `guardrail serve`). The inputs are the gate's (`--root`, `--policies`, …) and the
//! knowledge base, logs and audit store of the `incident` commands.

use std::path::PathBuf;
use std::sync::Arc;

use guardrail_gate::audit_cmd::StoreArgs;
use guardrail_gate::exit::Exit;
use guardrail_gate::inputs::{EnvLookup, InputArgs};
use guardrail_mcp::{HttpOptions, McpConfig, StdioEnd, TokenVerifier};

use crate::remediation::{ConfigArgs, KbArgs, PlannerFlags};

/// `guardrail mcp …`.
#[derive(Debug, clap::Args)]
pub struct McpArgs {
    #[command(flatten)]
    inputs: InputArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    kb: KbArgs,
    /// Live logs (NDJSON, one request per line) for the query_live_logs tool [default: the
    /// logs index of an Elasticsearch knowledge base (knowledge.indices.logs; not with knowledge.live_logs: false), else none]
    #[arg(long, value_name = "FILE")]
    logs: Option<PathBuf>,
    /// Default live-logs window, minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = guardrail_governor::tools::DEFAULT_LOGS_WINDOW_MINUTES)]
    logs_window_minutes: u32,
    /// Serve streamable HTTP at http://ADDR/mcp instead of stdio. Anything but a loopback
    /// address exposes the tools to the network.
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// Tokens file for --http (the format of `guardrail serve --tokens`; every role may call
    /// the read-only tools, propose_remediation and evaluate_deploy with record: true need
    /// deployer or admin) [env: GUARDRAIL_TOKENS]
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// Who plans for propose_remediation.
    #[command(flatten)]
    planner: PlannerFlags,
    /// The governor config whose `planner:` and `knowledge:` blocks choose the planner and the
    /// knowledge base when no flag or variable does.
    #[command(flatten)]
    governor: ConfigArgs,
}

/// The exit status of `guardrail mcp` over stdio when the client closed the server's standard
/// output (it hung up; an answer could not be written): 141, what a shell reports for a writer
/// killed by SIGPIPE (128 + 13), so supervisors and scripts that already read 141 as "the reader
/// went away" read it right. Nothing is printed. The tool calls that were running have finished
/// (their audit records are written) and none was started after. Closing standard input, MCP's
/// own shutdown for stdio, still exits 0.
pub const CLIENT_GONE_EXIT: i32 = 141;

fn fail(msg: &str) -> Exit {
    eprintln!("guardrail mcp: {msg}");
    Exit::CannotDecide
}

/// The MCP server's configuration from the gate's input flags, the store flags, the knowledge
/// base in force ([`KbArgs::select`]) and a logs file, resolved as `guardrail gate` and
/// `guardrail incident` resolve them (also used by `guardrail serve --mcp`).
pub fn config(
    inputs: &InputArgs,
    store: &StoreArgs,
    knowledge: guardrail_governor::KnowledgeChoice,
    logs: Option<PathBuf>,
    env: EnvLookup<'_>,
) -> McpConfig {
    let mut cfg = McpConfig::with_knowledge(inputs.clone(), store.spec(env), knowledge);
    cfg.env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    cfg.audit_jsonl = store.jsonl(env);
    cfg.logs = logs;
    // The tools' `now` (the live-logs window) is the gate's `--now` when given; an invalid one
    // is reported by the gate tools on every call.
    cfg.now = inputs.now.as_deref().and_then(|t| t.parse().ok());
    cfg
}

/// Runs the server until the client disconnects (stdio: exit 0 when it closes standard input,
/// [`CLIENT_GONE_EXIT`] when it closes standard output) or the process is interrupted (HTTP).
pub fn run(args: McpArgs, env: EnvLookup<'_>) -> Exit {
    // A bad flag value (`--now yesterday`, `--cost-warn-pct abc`) is a usage error, as for `gate`.
    let usage = guardrail_gate::inputs::usage_problems(&args.inputs, env);
    if !usage.is_empty() {
        let problems: Vec<String> = usage.iter().map(ToString::to_string).collect();
        eprintln!("guardrail mcp: usage error (exit {}): {}", Exit::Usage, problems.join("; "));
        return Exit::Usage;
    }
    if let Some(w) = guardrail_gate::ci::explainer_warning(env) {
        eprintln!("guardrail mcp: warning: {w}");
    }
    if args.logs_window_minutes == 0 || args.logs_window_minutes > guardrail_governor::tools::MAX_WINDOW_MINUTES {
        return fail("--logs-window-minutes: must be 1–1440");
    }
    let governor = match args.governor.load(env) {
        Ok(g) => g,
        Err(es) => return fail(&format!("governor config: {}", es.join("; "))),
    };
    // --kb, GUARDRAIL_KB, the config's knowledge: block, else the default file: as every
    // command. Credentials a block names but the environment lacks refuse to start.
    let knowledge = match args.kb.select(Some(&governor), env) {
        Ok(k) => k,
        Err(e) => return fail(&format!("knowledge: {e}")),
    };
    let mut cfg = config(&args.inputs, &args.store, knowledge, args.logs, env);
    cfg.logs_window_minutes = args.logs_window_minutes;
    // Chosen once, before serving: an unknown planner or a model planner without its key
    // refuses to start (64 / 3) rather than fail every proposal.
    cfg.planner = match args.planner.select_or_report(governor.planner.as_ref(), env, "guardrail mcp") {
        Ok(p) => p,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("could not start the runtime: {e}")),
    };
    match args.http {
        None => {
            let served = rt.block_on(guardrail_mcp::serve_stdio(cfg));
            // serve_stdio returns once no tool call runs any more; what may still run is
            // tokio's blocking read of standard input, which nothing can interrupt and which a
            // client that closed only our standard output may never end. Not waited for.
            rt.shutdown_background();
            match served {
                Ok(StdioEnd::InputClosed) => Exit::Ok,
                // Quiet (standard error is often gone with standard output, and `eprintln!`
                // would panic on it) and distinct: not a Guardrail decision code, the status a
                // shell reports for a writer whose reader left (128 + SIGPIPE).
                Ok(StdioEnd::ClientGone) => std::process::exit(CLIENT_GONE_EXIT),
                Err(e) => fail(&e.to_string()),
            }
        }
        Some(addr) => {
            let file =
                args.tokens.or_else(|| env("GUARDRAIL_TOKENS").filter(|v| !v.trim().is_empty()).map(PathBuf::from));
            let Some(file) = file else {
                return fail("--http needs --tokens FILE (every MCP request needs a bearer token)");
            };
            let tokens = match guardrail_server::auth::Tokens::load(&file) {
                Ok(t) if t.is_empty() => return fail(&format!("{}: holds no token", file.display())),
                Ok(t) => t,
                Err(es) => return fail(&es.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")),
            };
            let verify: TokenVerifier = Arc::new(move |t: &str| {
                tokens.check(t).map(|c| (c.identity, guardrail_server::McpRoleExt::to_mcp(c.role)))
            });
            let mut opts = HttpOptions::default();
            if !addr.ip().is_loopback() {
                // Bound beyond loopback on purpose: accept the Host it was asked for too.
                opts.allowed_hosts.push(addr.ip().to_string());
            }
            let router = match guardrail_mcp::http_router(cfg, verify, opts) {
                Ok(r) => r,
                Err(e) => return fail(&e.to_string()),
            };
            let served = rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("could not listen on {addr}: {e}"))?;
                let local = listener.local_addr().map_err(|e| e.to_string())?;
                eprintln!("guardrail mcp: streamable HTTP on http://{local}/mcp");
                let shutdown = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                guardrail_mcp::serve_http(listener, router, shutdown).await.map_err(|e| e.to_string())
            });
            match served {
                Ok(()) => Exit::Ok,
                Err(e) => fail(&e),
            }
        }
    }
}
