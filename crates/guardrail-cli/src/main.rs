//! `guardrail`: the command-line entry point. See `guardrail --help`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use guardrail::audit_cmd::{self, StoreArgs};
use guardrail::ci;
use guardrail::exit::{self, Exit};
use guardrail::gate;
use guardrail::inputs::{self, InputArgs};
use guardrail::render::{self, Style};
use guardrail_gate::decide;
// This crate's print macros: a closed stdout pipe ends the output instead of panicking.
use guardrail::{eprintln, print, println};

// mimalloc instead of glibc's malloc: a decision allocates many small, short-lived values (the
// policy tree, JSON bodies), and glibc's consolidation and free-list upkeep were about a third
// of the CPU of a recorded decision and of a 10,000-rule gate (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "guardrail", version, about = "The deterministic trust boundary between a change and production.")]
#[command(after_help = "Exit codes: 0 ALLOW or WARN, 1 DELAY (or WARN with --fail-on-warn), 2 BLOCK, \
3 could not decide (bad, missing or stale input, invalid policies, audit write failed), 64 usage error.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    /// A readable report.
    Text,
    /// JSON only on stdout.
    Json,
    /// The text report plus GitHub Actions annotation, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY.
    Github,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Decide whether a deploy may go ahead (ALLOW, WARN, DELAY, BLOCK) and record it.
    Gate {
        #[command(flatten)]
        inputs: InputArgs,
        #[command(flatten)]
        store: StoreArgs,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Exit 1 on WARN instead of 0.
        #[arg(long)]
        fail_on_warn: bool,
        /// Colour in the text report.
        #[arg(long, value_enum, default_value = "auto")]
        color: ColorChoice,
        /// With --format github: sign the audit chain's checkpoint with this private key
        /// (`guardrail audit keygen`) and publish it in the job summary
        /// [env: GUARDRAIL_CHECKPOINT_KEY]
        #[arg(long, value_name = "PREFIX.key")]
        checkpoint_key: Option<PathBuf>,
    },
    /// Show the SLO signals (availability, error budget, burn rate, latency).
    Slo {
        #[command(flatten)]
        inputs: InputArgs,
        /// Output format (text or json).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Show the cost signals (week-over-week change, trend, spike).
    Cost {
        #[command(flatten)]
        inputs: InputArgs,
        /// Output format (text or json).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Explain the decision the gate would take, in plain language (records nothing).
    Explain {
        #[command(flatten)]
        inputs: InputArgs,
        /// Who writes the narrative: rule (default), openai or anthropic [env: EXPLAINER_BACKEND].
        /// A model's text is labelled; on any failure the rule-based text is shown with a warning.
        #[arg(long, value_name = "BACKEND")]
        explainer: Option<String>,
        /// The model for --explainer openai|anthropic [default: OPENAI_MODEL / ANTHROPIC_MODEL,
        /// else gpt-4o / claude-3-5-sonnet-20241022].
        #[arg(long)]
        model: Option<String>,
    },
    /// Policy file tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Read and verify the audit trail.
    Audit {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Remediation governor: run incidents through plan → stress → gate → execute; list, show,
    /// execute, resolve. Exit 0 executed (or dry run), 10 awaiting approval, 11 refused,
    /// 12 execution failed, 14 not authenticated, 15 role not permitted, 3 could not decide,
    /// 64 usage.
    Incident {
        #[command(subcommand)]
        command: guardrail::incident_cmd::IncidentCommand,
    },
    /// Approve (or --force-override) an incident's blocked action, then execute it. Who
    /// approves is your token's identity (with a tokens file) or your OS account.
    Approve(guardrail::approve_cmd::ApproveArgs),
    /// The governor's knowledge base: load, search, review, stats.
    Kb {
        #[command(subcommand)]
        command: guardrail::kb_cmd::KbCommand,
    },
    /// Serve the HTTP API and the dashboard on the same inputs as `gate` (127.0.0.1:8080 by
    /// default). POST endpoints need a bearer token from --tokens.
    Serve(ServeArgs),
    /// MCP server over stdio (or streamable HTTP at /mcp with --http): the governor's tools
    /// and the deploy gate's, on the same inputs as `gate` and the stores of `incident`.
    Mcp(guardrail::mcp_cmd::McpArgs),
    /// Bearer tokens for `guardrail serve`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Re-evaluate a recorded decision from its recorded inputs and compare.
    Replay {
        /// Record id (`SEQ`, `SEQ-HASHPREFIX` or a hash prefix).
        record: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Output format (text or json).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Notifications (Slack, Jira): the outbox's delivery state, and a delivery pass now.
    Notify {
        #[command(subcommand)]
        command: guardrail::notify_cmd::NotifyCommand,
    },
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    inputs: InputArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on. Anything but a loopback address exposes the API to the network.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    bind: std::net::SocketAddr,
    /// Tokens file: the sha256 of each token with its identity and role (see `guardrail token
    /// hash`). Without one, POST /api/gate and /api/simulate refuse [env: GUARDRAIL_TOKENS]
    /// [default: the governor config's `tokens:`, read at start]
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// How often the input files are checked for changes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    reload_interval_ms: u64,
    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, value_name = "BYTES", default_value_t = 65536)]
    max_body_bytes: usize,
    /// Also serve MCP (streamable HTTP) at /mcp: the tools of `guardrail mcp`, behind the
    /// same tokens (any role reads; propose_remediation and recording evaluate_deploy need
    /// deployer or admin). Needs --tokens.
    #[arg(long)]
    mcp: bool,
    #[command(flatten)]
    kb: guardrail::remediation::KbArgs,
    /// Live logs (NDJSON) for the query_live_logs tool of POST /api/incidents and of MCP
    /// [default: the logs index of an Elasticsearch knowledge base, else none]
    #[arg(long, value_name = "FILE")]
    logs: Option<PathBuf>,
    /// Feed the deploy gate's signals (evaluated on the served inputs) to the governor's signal
    /// rules for POST /api/incidents, as `incident run --signals-root` does.
    #[arg(long)]
    governor_signals: bool,
    /// Approvers per severity for POST /api/incidents/{id}/approve|force-override (as for
    /// `guardrail approve`).
    #[command(flatten)]
    governor: guardrail::remediation::ConfigArgs,
    /// Who plans for POST /api/incidents (and MCP's propose_remediation with --mcp).
    #[command(flatten)]
    planner: guardrail::remediation::PlannerFlags,
    /// Who writes the narrative of /api/explain, the dashboard and /api/simulate: rule (the
    /// default), openai or anthropic — labelled, the rule text on any failure [env:
    /// EXPLAINER_BACKEND]
    #[arg(long, value_name = "BACKEND")]
    explainer: Option<String>,
    /// Sign checkpoints of the audit chain with this private key (`guardrail audit keygen`)
    /// into --checkpoint-dir [env: GUARDRAIL_CHECKPOINT_KEY]
    #[arg(long, value_name = "PREFIX.key", requires = "checkpoint_dir")]
    checkpoint_key: Option<PathBuf>,
    /// Directory for checkpoint-<count>.txt and latest (written atomically; created if missing).
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Sign a checkpoint after this many new records.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every_records: u64,
    /// Sign a checkpoint after this many minutes if any record was added.
    #[arg(long, value_name = "M", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every_minutes: u64,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Print the sha256 of a token read from standard input, for the tokens file. With
    /// --identity and --role, print a ready tokens-file entry instead.
    Hash {
        /// Identity the token stands for (recorded with every decision it asks for).
        #[arg(long, requires = "role")]
        identity: Option<String>,
        /// viewer (read-only MCP tools), deployer, approver or admin.
        #[arg(long, requires = "identity", value_parser = ["viewer", "deployer", "approver", "admin"])]
        role: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Check a policy file: unknown signals/operators/actions, type mismatches, unreachable
    /// rules, missing catch-all, duplicate ids. Exit 3 on errors, 0 when clean.
    Lint {
        /// The file (or --policies FILE, as for `gate`) [default: POLICIES_PATH, else
        /// ROOT/config/policies.yaml]
        #[arg(conflicts_with = "policies")]
        file: Option<PathBuf>,
        /// Policy file, as `gate --policies` [env: POLICIES_PATH]
        #[arg(long, value_name = "FILE")]
        policies: Option<PathBuf>,
        /// Directory holding the seed layout, as `gate --root` [default: the current directory]
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Output format (text or json).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Newest records first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only this kind (e.g. deploy_decision).
        #[arg(long)]
        kind: Option<String>,
        /// Output format (text or json).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// One record in full (JSON).
    Show {
        /// Record id.
        record: String,
    },
    /// Check the whole hash chain (and, with --checkpoint, that it still holds the records a
    /// signed checkpoint covers). Exit 0 intact, 1 broken or not held or the checkpoint's
    /// signature does not verify, 3 unreadable.
    Verify {
        /// Output format (text or json).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// A signed checkpoint (`guardrail audit checkpoint`, `serve --checkpoint-dir`).
        #[arg(long, value_name = "FILE", requires = "public_key")]
        checkpoint: Option<PathBuf>,
        /// The verifier key the checkpoint must be signed by (PREFIX.pub).
        #[arg(long, value_name = "PREFIX.pub", requires = "checkpoint")]
        public_key: Option<PathBuf>,
    },
    /// Rebuild the Elasticsearch audit mirror from the chain (verified first: a broken chain is
    /// refused and nothing sent); re-running is harmless. Exit 0 every record written, 1 the
    /// chain does not verify, 3 the store or the cluster failed or records were refused (each
    /// named).
    Export(guardrail::audit_export::ExportArgs),
    /// Make an Ed25519 key pair for signed checkpoints: PREFIX.key (private, mode 0600) and
    /// PREFIX.pub (the verifier key). Refuses to overwrite either.
    Keygen {
        /// Path prefix of the two files.
        prefix: PathBuf,
        /// Key name, which is also the checkpoints' origin (the chain's name), e.g.
        /// example.com/payments-audit [default: PREFIX's file name]
        #[arg(long)]
        name: Option<String>,
    },
    /// Sign a checkpoint of the chain (origin, record count, head hash; a C2SP signed note).
    /// Exit 0 signed, 1 the chain does not verify (nothing signed), 3 unreadable.
    Checkpoint {
        /// Private key file (`guardrail audit keygen`) [env: GUARDRAIL_CHECKPOINT_KEY]
        #[arg(long, value_name = "PREFIX.key")]
        key: Option<PathBuf>,
        /// Write the checkpoint to FILE (atomically) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

fn env_lookup(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

fn main() -> ExitCode {
    // Before anything opens a database: SQLite allocates through mimalloc too (a record of
    // megabytes no longer costs a fresh mmap, its page faults and an munmap per buffer).
    guardrail_store::use_global_allocator();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => exit::Exit::Ok,
                clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => exit::Exit::Usage,
                _ => exit::Exit::Usage,
            };
            let _ = e.print();
            // args_os: std::env::args panics on an argument that is not UTF-8.
            let args = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned());
            if code == exit::Exit::Usage && gate_wants_json(args) {
                // clap's own first line ("unexpected argument '--x' found"), without styling.
                let rendered = e.render().to_string();
                let first = rendered.lines().next().unwrap_or("invalid command line");
                let message = first.strip_prefix("error: ").unwrap_or(first).to_string();
                print_error_json(exit::ErrorDetail::text(
                    exit::ErrorKind::Usage,
                    format!("{message} (see guardrail gate --help)"),
                ));
            }
            let _ = render::out::finish_stdout();
            return code.into();
        }
    };
    // The outbox's routing table before any store is opened (serve installs its own, per
    // store); after a command that appended records, one short best-effort delivery pass,
    // which never changes the exit code.
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let appends = matches!(cli.command, Command::Gate { .. } | Command::Incident { .. } | Command::Approve(_));
    let outbox = match cli.command {
        Command::Serve(_) => guardrail::notify_cmd::CliOutbox::default(),
        _ => guardrail::notify_cmd::install(&args, &env_lookup),
    };
    let mut code = run(cli);
    if appends {
        outbox.inline_pass();
    }
    // A closed pipe is the reader's choice and keeps the command's own exit code; any other
    // failure to write stdout means the output was not delivered, so success becomes exit 3.
    if let Some(e) = render::out::finish_stdout() {
        eprintln!("guardrail: could not write to standard output: {e}");
        if code == Exit::Ok {
            code = Exit::CannotDecide;
        }
    }
    ExitCode::from(code)
}

/// Whether the command line is `gate … --format json` (so even a command line clap refuses
/// answers with a JSON error object on stdout).
fn gate_wants_json(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    args.first().map(String::as_str) == Some("gate")
        && (args.iter().any(|a| a == "--format=json") || args.windows(2).any(|w| w[0] == "--format" && w[1] == "json"))
}

/// Prints on stdout the error object of `gate --format json` ([`exit::ErrorOutput`]) for a
/// command line clap refused.
fn print_error_json(error: exit::ErrorDetail) {
    let out = exit::ErrorOutput::of(vec![error], None);
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
}

/// A flag or environment variable with a bad value: exit 64, nothing read or recorded.
fn usage<E: std::fmt::Display>(errors: &[E]) -> Exit {
    refuse(Exit::Usage, errors)
}

/// [`usage`] for the value errors of the input flags ([`inputs::usage_problems`]), if any.
fn check_usage(args: &InputArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Exit> {
    let errors = inputs::usage_problems(args, env);
    if errors.is_empty() { Ok(()) } else { Err(usage(&errors)) }
}

/// Could not decide: exit 3.
fn fail<E: std::fmt::Display>(errors: &[E]) -> Exit {
    refuse(Exit::CannotDecide, errors)
}

/// Prints the errors under the heading of `code` (usage error or could not decide) and returns it.
fn refuse<E: std::fmt::Display>(code: Exit, errors: &[E]) -> Exit {
    if code == Exit::Usage {
        eprintln!("guardrail: usage error (exit {code}):");
    } else {
        eprintln!("guardrail: could not decide (exit {code}):");
    }
    for e in errors {
        eprintln!("  error: {e}");
    }
    code
}

/// [`refuse`] for settings that cannot be resolved: a usage error when any value is bad, else
/// could not decide (the `--prometheus-ca` file).
fn settings_refused(e: &inputs::SettingsErrors) -> Exit {
    refuse(e.exit(), &e.all().collect::<Vec<_>>())
}

fn run(cli: Cli) -> Exit {
    let env: &dyn Fn(&str) -> Option<String> = &env_lookup;
    match cli.command {
        Command::Gate { inputs, store, format, fail_on_warn, color, checkpoint_key } => {
            let code = run_gate(&inputs, &store, format, fail_on_warn, color, env);
            // A policy cache entry still being written is finished before the process exits.
            guardrail_gate::policy_cache::finish();
            let github = format == Format::Github;
            guardrail::checkpoint_cmd::after_gate(code, github, checkpoint_key, &store.spec(env), env)
        }
        Command::Slo { inputs, format } => {
            if let Err(code) = check_usage(&inputs, env) {
                return code;
            }
            let paths = inputs::resolve_paths(&inputs, env);
            let settings = match inputs::settings(&inputs, env, jiff::Timestamp::now()) {
                Ok(s) => s,
                Err(e) => return settings_refused(&e),
            };
            let (slos, metrics) = match inputs::slo_inputs(&paths) {
                (Ok(a), Ok(b)) => (a, b),
                (a, b) => return fail(&[a.err(), b.err()].into_iter().flatten().collect::<Vec<_>>()),
            };
            match gate::slo_report(&slos, &metrics, &settings) {
                Err(e) => fail(&e),
                Ok(r) => report(format, &r, || render::slo_lines(&r, style(ColorChoice::Auto, env))),
            }
        }
        Command::Cost { inputs, format } => {
            if let Err(code) = check_usage(&inputs, env) {
                return code;
            }
            let paths = inputs::resolve_paths(&inputs, env);
            let settings = match inputs::settings(&inputs, env, jiff::Timestamp::now()) {
                Ok(s) => s,
                Err(e) => return settings_refused(&e),
            };
            let src = match guardrail_config::read_source(&paths.cost) {
                Ok(s) => s,
                Err(e) => return fail(&[e]),
            };
            match gate::cost_report(&src, &settings) {
                Err(e) => fail(&e),
                Ok(r) => report(format, &r, || render::cost_lines(&r, style(ColorChoice::Auto, env))),
            }
        }
        Command::Explain { inputs, explainer, model } => {
            if let Err(code) = check_usage(&inputs, env) {
                return code;
            }
            // EXPLAINER_BACKEND / --explainer choose who writes the text, nothing else: the
            // decision and the exit code are the gate's, and any model failure shows the rule text.
            let (explainer, warnings) =
                guardrail_model::explainer::Explainer::from_env(explainer.as_deref(), model.as_deref(), env);
            for w in warnings {
                eprintln!("guardrail: warning: {w}");
            }
            let paths = inputs::resolve_paths(&inputs, env);
            let settings = match inputs::settings(&inputs, env, jiff::Timestamp::now()) {
                Ok(s) => s,
                Err(e) => return settings_refused(&e),
            };
            let sources = match inputs::sources(&paths) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            match gate::evaluation(sources, settings) {
                Err(e) => fail(&e),
                Ok(ev) => {
                    let rule_text = || {
                        let generated = ev.settings.now.strftime("%Y-%m-%d %H:%M UTC").to_string();
                        let policies_path = ev.sources.policies.path.display().to_string();
                        guardrail_core::explain::narrative(&guardrail_core::explain::NarrativeInput {
                            decision: &ev.decision,
                            slo: &ev.slo,
                            cost: &ev.cost,
                            generated_at: &generated,
                            policies_path: &policies_path,
                        })
                    };
                    // A model writes from the gate's one view (what `gate --format json` prints),
                    // without the CI context: explain records nothing, and $USER, branch and
                    // commit are not the model provider's business.
                    let ci = ci::CiContext::default();
                    let mut view = gate::output(&ev, &ci, false);
                    // Nor the local directories: the inputs by file name, as the server shows them.
                    let inputs = &mut view.inputs;
                    for digest in [&mut inputs.policies, &mut inputs.slos, &mut inputs.metrics, &mut inputs.cost] {
                        if let Some(name) = std::path::Path::new(&digest.path).file_name() {
                            digest.path = name.to_string_lossy().into_owned();
                        }
                    }
                    let summary = format!("{} by policy {}", ev.decision.action, ev.decision.policy_id);
                    let narrative = explainer.explain(&view, &summary, rule_text);
                    if let Some(w) = &narrative.warning {
                        eprintln!("guardrail: warning: {w}");
                    }
                    print!("{}", narrative.text);
                    Exit::Ok
                }
            }
        }
        Command::Policy { command: PolicyCommand::Lint { file, policies, root, format } } => {
            // The file the gate would read: positional or --policies, then POLICIES_PATH, then
            // ROOT/config/policies.yaml.
            let args = InputArgs { root, policies: file.or(policies), ..InputArgs::default() };
            lint(&inputs::resolve_paths(&args, env).policies, format)
        }
        Command::Audit { store, command } => run_audit(&store, command, env),
        Command::Replay { record, store, format } => replay(&store.spec(env), &record, format),
        Command::Serve(args) => serve(args, env),
        Command::Token { command: TokenCommand::Hash { identity, role } } => token_hash(identity, role),
        Command::Incident { command } => guardrail::incident_cmd::run(command, env),
        Command::Approve(args) => guardrail::approve_cmd::run(args, env),
        Command::Kb { command } => guardrail::kb_cmd::run(command, env),
        Command::Mcp(args) => guardrail::mcp_cmd::run(args, env),
        Command::Notify { command } => guardrail::notify_cmd::run(command, env),
    }
}

/// Prints a report: its JSON with `--format json`, else its text lines. Exit 0.
fn report<T: serde::Serialize>(format: Format, value: &T, lines: impl FnOnce() -> Vec<String>) -> Exit {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        for l in lines() {
            println!("{l}");
        }
    }
    Exit::Ok
}

fn style(choice: ColorChoice, env: &dyn Fn(&str) -> Option<String>) -> Style {
    let color = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stdout().is_terminal() && env("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    Style { color }
}

/// Prints a gate run that did not decide on stderr (its JSON error object is the view's): the
/// errors, and the `deploy_error` record that holds them or why it could not be written either.
fn report_not_decided(outcome: &decide::GateOutcome) -> Exit {
    match outcome {
        decide::GateOutcome::Withheld { reason, .. } => fail(&[reason]),
        decide::GateOutcome::CannotDecide { undecided, record: Ok(rec) } => {
            let code = fail(&undecided.problems);
            eprintln!("  (recorded as audit record {})", rec.id());
            code
        }
        decide::GateOutcome::CannotDecide { undecided, record: Err(e) } => {
            let mut all = undecided.messages();
            all.push(e.to_string());
            fail(&all)
        }
        // Not reached: a recorded decision has a view, not an error.
        decide::GateOutcome::Recorded { .. } => Exit::CannotDecide,
    }
}

fn run_gate(
    args: &InputArgs,
    store: &StoreArgs,
    format: Format,
    fail_on_warn: bool,
    color: ColorChoice,
    env: &dyn Fn(&str) -> Option<String>,
) -> Exit {
    let usage_errors = inputs::usage_problems(args, env);
    if !usage_errors.is_empty() {
        if format == Format::Json {
            let out = exit::ErrorOutput::of(usage_errors.iter().map(exit::ErrorDetail::setting).collect(), None);
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        return usage(&usage_errors);
    }
    if let Some(w) = ci::explainer_warning(env) {
        eprintln!("guardrail: warning: {w}");
    }
    let (spec, jsonl) = (store.spec(env), store.jsonl(env));
    let recorder = decide::Recorder { store: &spec, jsonl: jsonl.as_deref(), requested_by: None };
    // Every run from here on appends a record (the decision, or why it could not decide): the
    // store is opened meanwhile on another thread.
    guardrail_gate::audit_cmd::open_ahead(&spec);
    // Checked policy sets are kept between runs (GUARDRAIL_CACHE_DIR; `off` turns it off).
    guardrail_gate::policy_cache::enable(env);
    let snapshot = decide::read_snapshot(args, env, jiff::Timestamp::now());
    let ci = ci::from_env(env);
    let decided = snapshot.and_then(|s| decide::decide(s, ci.clone(), fail_on_warn, None));
    // `--format json` is rendered on another thread while the record is appended (megabytes at
    // 10,000 rules), and printed only once the record is in the chain.
    let json = format == Format::Json;
    let (outcome, pending) = decide::record_outcome_meanwhile(decided, &ci, &recorder, |d| {
        json.then(|| guardrail_gate::view::PendingJson::render(&d.view()))
    });
    // Never dropped: freeing a 10,000-rule decision's trees took longer than printing it, and
    // the process ends right after this command.
    let outcome = std::mem::ManuallyDrop::new(outcome);
    if let Some(w) = outcome.decided().and_then(|d| d.service_warning.as_ref()) {
        eprintln!("guardrail: warning: {w}");
    }
    // `--format json` prints the view: the decision, or the error object of a run that did not
    // decide (guardrail_gate::view, the same for every surface).
    let out = match outcome.view() {
        guardrail_gate::view::GateReport::Decision(view) => *view,
        guardrail_gate::view::GateReport::Error(error) => {
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&error).unwrap_or_default());
            }
            return report_not_decided(&outcome);
        }
    };
    match format {
        Format::Json => {
            let pending = std::mem::ManuallyDrop::new(pending.flatten());
            match pending.as_ref().zip(out.audit.as_ref()).and_then(|(p, a)| p.parts_with_audit(a)) {
                Some((head, audit, tail)) => render::out::stdout_bytes(&[head, &audit, tail]),
                None => render::out::stdout_json_pretty(&out),
            }
        }
        Format::Text => print!("{}", render::gate_report(&out, style(color, env))),
        Format::Github => {
            print!("{}", render::gate_report(&out, style(color, env)));
            if let Some(a) = render::github_annotation(&out) {
                println!("{a}");
            }
            if let Some(path) = env("GITHUB_OUTPUT").filter(|v| !v.is_empty()) {
                let text = format!(
                    "decision={}\ndelay_minutes={}\npolicy_id={}\n",
                    out.action, out.delay_minutes, out.policy_id
                );
                if let Err(e) = render::append_file(&PathBuf::from(&path), &text) {
                    return fail(&[format!("GITHUB_OUTPUT {path}: could not write the decision outputs: {e}")]);
                }
            }
            if let Some(path) = env("GITHUB_STEP_SUMMARY").filter(|v| !v.is_empty())
                && let Err(e) = render::append_file(&PathBuf::from(&path), &render::github_summary(&out))
            {
                return fail(&[format!("GITHUB_STEP_SUMMARY {path}: could not write the summary: {e}")]);
            }
        }
    }
    out.exit_code
}

/// `policy lint --format json` (fields in the order they always had: alphabetical).
#[derive(serde::Serialize)]
struct LintView<'a> {
    errors: usize,
    file: String,
    findings: Vec<LintFinding<'a>>,
    warnings: usize,
}

/// One finding of [`LintView`].
#[derive(serde::Serialize)]
struct LintFinding<'a> {
    col: Option<usize>,
    field: &'a str,
    line: Option<usize>,
    message: &'a str,
    severity: guardrail_core::policy::Severity,
}

fn lint(path: &std::path::Path, format: Format) -> Exit {
    let src = match guardrail_config::read_source(path) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let load = guardrail_config::load_policies(&src);
    let errors = load.findings.iter().filter(|f| f.severity == guardrail_core::policy::Severity::Error).count();
    let warnings = load.findings.len() - errors;
    if format == Format::Json {
        let findings = load
            .findings
            .iter()
            .map(|f| LintFinding {
                col: f.col,
                field: &f.field,
                line: f.line,
                message: &f.message,
                severity: f.severity,
            })
            .collect();
        let v = LintView { errors, file: path.display().to_string(), findings, warnings };
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for f in &load.findings {
            println!("{f}");
        }
        let rules = load.set.as_ref().map(|s| s.policies.len()).unwrap_or(0);
        println!("{}: {rules} rule(s), {errors} error(s), {warnings} warning(s)", path.display());
    }
    if errors > 0 { Exit::CannotDecide } else { Exit::Ok }
}

fn run_audit(store: &StoreArgs, command: AuditCommand, env: &dyn Fn(&str) -> Option<String>) -> Exit {
    let spec = store.spec(env);
    // Signed checkpoints (`checkpoint_cmd`): opened there, or no store at all (keygen).
    let command = match command {
        AuditCommand::Keygen { prefix, name } => return guardrail::checkpoint_cmd::keygen(&prefix, name),
        AuditCommand::Export(a) => return guardrail::audit_export::run(store, &a, env),
        AuditCommand::Checkpoint { key, out } => {
            let key = guardrail::checkpoint_cmd::key_path(key, env);
            return guardrail::checkpoint_cmd::checkpoint(&spec, key, out);
        }
        AuditCommand::Verify { format, checkpoint: Some(cp), public_key: Some(pk) } => {
            return guardrail::checkpoint_cmd::verify(&spec, &cp, &pk, format == Format::Json);
        }
        other => other,
    };
    let mut s = match audit_cmd::open(&spec) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    match command {
        AuditCommand::List { limit, kind, format } => {
            let q = guardrail_store::ListQuery { limit, before_seq: None, kind };
            match s.list(&q) {
                Err(e) => fail(&[format!("audit store {spec}: {e}")]),
                Ok(records) => {
                    if format == Format::Json {
                        println!("{}", serde_json::to_string_pretty(&records).unwrap_or_default());
                    } else {
                        if !records.is_empty() {
                            println!("{}", render::audit_list_header());
                        }
                        for r in &records {
                            println!("{}", render::audit_list_line(&r.id(), &r.recorded_at, &r.kind, &r.body));
                        }
                    }
                    Exit::Ok
                }
            }
        }
        AuditCommand::Show { record } => match s.find(&record) {
            Err(e) => fail(&[format!("audit store {spec}: {e}")]),
            Ok(None) => fail(&[format!("audit store {spec}: no record {record}")]),
            Ok(Some(r)) => {
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("id".into(), r.id().into());
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                Exit::Ok
            }
        },
        AuditCommand::Keygen { .. } | AuditCommand::Checkpoint { .. } | AuditCommand::Export(_) => Exit::Usage, // handled above
        AuditCommand::Verify { format, .. } => match s.verify() {
            Err(e) => fail(&[format!("audit store {spec}: {e}")]),
            Ok(rep) => {
                if format == Format::Json {
                    let view = guardrail::checkpoint_cmd::VerifyView::of(&rep);
                    println!("{}", serde_json::to_string_pretty(&view).unwrap_or_default());
                } else {
                    for l in guardrail::checkpoint_cmd::chain_lines(&rep) {
                        println!("{l}");
                    }
                }
                if rep.ok() { Exit::Ok } else { Exit::Delay }
            }
        },
    }
}

fn serve(args: ServeArgs, env: &dyn Fn(&str) -> Option<String>) -> Exit {
    // The served inputs are re-read on change, but a bad flag value would never change: refuse
    // it at start-up rather than answer 503 forever.
    if let Err(code) = check_usage(&args.inputs, env) {
        return code;
    }
    for w in ci::explainer_warning(env).into_iter().chain(ci::dashboard_warnings(env)) {
        eprintln!("guardrail serve: warning: {w}");
    }
    // The MCP tools' configuration is built once the governor config is read (its knowledge:
    // block may choose the knowledge base).
    let mcp_inputs = args.mcp.then(|| args.inputs.clone());
    let mut mcp = None;
    let mut cfg = guardrail_server::ServerConfig::new(args.inputs, args.store.spec(env));
    cfg.env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    // --explainer wins over EXPLAINER_BACKEND: the server's explainer reads its environment map.
    if let Some(b) = &args.explainer {
        cfg.env.insert("EXPLAINER_BACKEND".into(), b.clone());
    }
    // --audit-es reaches the outbox worker the way GUARDRAIL_AUDIT_ES does: through the
    // environment map it routes and delivers by.
    if let Some(url) = args.store.es(env) {
        cfg.env.insert("GUARDRAIL_AUDIT_ES".into(), url);
    }
    cfg.audit_jsonl = args.store.jsonl(env);
    cfg.max_body_bytes = args.max_body_bytes;
    cfg.reload_interval = std::time::Duration::from_millis(args.reload_interval_ms.max(50));
    // The governor config's `tokens:` is the last fallback, as for every governor command
    // (guardrail::identity): a config that names its tokens file serves with it.
    let config_tokens;
    match args.governor.load(env) {
        Ok(g) => {
            for w in &g.warnings {
                eprintln!("guardrail serve: warning: {w}");
            }
            config_tokens = g.tokens.clone();
            let logs = match args.logs.as_deref().map(guardrail_governor::NdjsonLogs::open).transpose() {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("guardrail serve: --logs: {e}");
                    return Exit::CannotDecide;
                }
            };
            // Checked at start (a planner that cannot be set up refuses to serve); fixed for the
            // server's life when a flag or variable chose it, else the watched planner: block
            // chooses per request.
            let planner = match args.planner.select_or_report(g.planner.as_ref(), env, "guardrail serve") {
                Ok(p) => p,
                Err(code) => return code,
            };
            // Said only when a model plans (the first line of a default start is the address).
            if planner.backend != guardrail_config::PlannerBackend::Builtin {
                eprintln!("guardrail serve: planner: {}", planner.describe());
            }
            if let Some(inputs) = &mcp_inputs {
                // Chosen once for the MCP tools, as `guardrail mcp` chooses it; the API's
                // endpoints choose per request from the config in force.
                let knowledge = match args.kb.select(Some(&g), env) {
                    Ok(k) => k,
                    Err(e) => {
                        eprintln!("guardrail serve: knowledge: {e}");
                        return Exit::CannotDecide;
                    }
                };
                let mut m = guardrail::mcp_cmd::config(inputs, &args.store, knowledge, args.logs.clone(), env);
                m.planner = planner.clone();
                mcp = Some(m);
            }
            let fixed = args.planner.model.is_some()
                || matches!(
                    planner.origin,
                    guardrail_governor::planner_select::ChoiceOrigin::Flag
                        | guardrail_governor::planner_select::ChoiceOrigin::Environment
                );
            cfg.governor = guardrail_server::GovernorSettings {
                description: g.describe(),
                config: g.config,
                // --kb only: GUARDRAIL_KB, the knowledge: block in force and the default file
                // are resolved per request (guardrail_governor::knowledge_select).
                kb: args.kb.kb.clone(),
                logs,
                deploy_signals: args.governor_signals,
                // Watched and reloaded when it changes (guardrail_server::state), the blocks too.
                source: Some(args.governor.source(env)),
                blocks: Default::default(),
                planner: fixed.then_some(planner),
            };
        }
        Err(es) => {
            eprintln!("guardrail serve: governor config:");
            for e in es {
                eprintln!("  error: {e}");
            }
            return Exit::CannotDecide;
        }
    }
    let tokens_file = args
        .tokens
        .or_else(|| env("GUARDRAIL_TOKENS").filter(|v| !v.trim().is_empty()).map(PathBuf::from))
        .or(config_tokens);
    let checkpoints = match guardrail::checkpoint_cmd::serve_options(
        guardrail::checkpoint_cmd::key_path(args.checkpoint_key, env),
        args.checkpoint_dir,
        args.checkpoint_every_records,
        args.checkpoint_every_minutes,
    ) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let opts = guardrail_server::ServeOptions { bind: args.bind, tokens_file, mcp, checkpoints };
    match guardrail_server::run(cfg, opts) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("guardrail serve: {e}");
            Exit::CannotDecide
        }
    }
}

fn token_hash(identity: Option<String>, role: Option<String>) -> Exit {
    let mut token = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut token) {
        eprintln!("guardrail token hash: could not read the token from standard input: {e}");
        return Exit::Usage;
    }
    let token = token.trim_end_matches(['\n', '\r']);
    if token.trim().is_empty() {
        eprintln!(
            "guardrail token hash: no token on standard input (e.g. `printf %s \"$TOKEN\" | guardrail token hash`)"
        );
        return Exit::Usage;
    }
    let hash = guardrail_server::hash_token(token);
    match (identity, role) {
        (Some(identity), Some(role)) => {
            println!("  - sha256: {hash}\n    identity: {}\n    role: {role}", serde_json::Value::from(identity))
        }
        _ => println!("{hash}"),
    }
    Exit::Ok
}

fn replay(spec: &str, id: &str, format: Format) -> Exit {
    let mut s = match audit_cmd::open(spec) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let rec = match s.find(id) {
        Ok(Some(r)) => r,
        Ok(None) => return fail(&[format!("audit store {spec}: no record {id}")]),
        Err(e) => return fail(&[format!("audit store {spec}: {e}")]),
    };
    if rec.kind == guardrail::remediation::kinds::DECISION {
        return guardrail::remediation::replay_decision(&rec, format == Format::Json);
    }
    if rec.kind != gate::RECORD_KIND {
        return fail(&[format!(
            "record {} is a {} record; only {} and {} records can be replayed",
            rec.id(),
            rec.kind,
            gate::RECORD_KIND,
            guardrail::remediation::kinds::DECISION
        )]);
    }
    let mut body = match gate::decode_decision(&rec.body) {
        Ok(b) => b,
        Err(e) => return fail(&[e]),
    };
    // Large inputs the record names instead of carrying: read back from the store (their
    // digests, which the chain covers, are checked by the replay).
    if let Err(e) = body.fill_kept_apart(|sha256| s.kept_input(sha256)) {
        return fail(&[format!("audit store {spec}: record {}: {e}", rec.id())]);
    }
    let r = match gate::replay(rec.id(), &body) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else if r.identical {
        println!(
            "record {}: replayed decision is identical ({} by {})",
            r.record, r.replayed_action, r.replayed_policy_id
        );
    } else {
        println!("record {}: replayed decision DIFFERS in {}", r.record, r.differing_fields.join(", "));
    }
    if r.identical { Exit::Ok } else { Exit::Delay }
}
