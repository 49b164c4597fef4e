//! `guardrail kb load|search|review|stats`: the governor's knowledge base (SQLite FTS5).
//!
//! `kb load FILE` reads the original's `sample_data.json` shape (JSON or YAML: an object with
//! `runbooks`, `evidence`, `policies` and/or `incidents`) or one runbook file (YAML, JSON, or
//! Markdown with front matter), creating the knowledge base when it does not exist. Loading is
//! idempotent and never overwrites a document with different content.
//!
//! A directory loads every `.json`, `.yaml`/`.yml` and `.md`/`.markdown` file in it (not
//! recursively), in name order, each file whole or not at all; the first failing file stops the
//! load, naming it, with the files before it loaded. A JSON file over
//! [`guardrail_knowledge::MAX_FILE_BYTES`] is streamed one document at a time
//! ([`KnowledgeStore::load_stream`], one transaction), so a 100,000-runbook export loads in one
//! command. When standard error is a terminal, a progress line counts files and documents;
//! otherwise nothing is drawn (logs and pipes stay clean).
//!
//! `kb stats` prints the counts as text, or as JSON with `--format json`.
//!
//! The knowledge base is the one every remediation command uses
//! ([`crate::remediation::KbArgs::select`]): `--kb` (a file, or `http(s)://host:9200` for an
//! Elasticsearch cluster with the original's indices and credentials from `GUARDRAIL_ES_API_KEY`
//! or `GUARDRAIL_ES_USERNAME` + `GUARDRAIL_ES_PASSWORD`, extra trusted CAs from
//! `GUARDRAIL_ES_CA_FILE`), else `GUARDRAIL_KB`, else the governor config's `knowledge:` block
//! (its own index names, credentials variables, CA file, timeout and retries), else
//! `.guardrail/knowledge.db`. Against a cluster, `kb load` creates the indices with the
//! original's mappings and sends `_bulk` requests of [`guardrail_knowledge::STREAM_BATCH`]
//! documents. Any cluster failure is an error (exit 3).
//!
//! `kb review RUNBOOK` makes a learned runbook usable by the planner. The reviewer is
//! authenticated ([`crate::identity`]: a token with role `approver` or `admin`, or the OS
//! account; `--as` may only restate it); the person who learned it cannot review it. The review
//! is recorded on the audit chain before it is applied.

use std::path::{Path, PathBuf};

use guardrail_gate::audit_cmd::StoreArgs;
use guardrail_gate::exit::Exit;
use guardrail_gate::inputs::EnvLookup;
use guardrail_governor::KnowledgeChoice;
use guardrail_governor::record;
use guardrail_knowledge::parse::Format;
use guardrail_knowledge::{
    ElasticKnowledgeStore, KnowledgeStore, LoadReport, MAX_FILE_BYTES, SqliteKnowledgeStore, read_text,
};
use serde::Serialize;
use serde_json::Value;

use crate::identity::{Act, AuthArgs, establish};
use guardrail_governor::views::{RecordRef, ReviewView, Reviewed};

use crate::remediation::{
    ConfigArgs, KbArgs, LoadedConfig, OutFormat, append, append_failure, fail, kinds, now, open_knowledge,
};

/// `guardrail kb …`.
#[derive(Debug, clap::Subcommand)]
pub enum KbCommand {
    /// Load sample_data.json (runbooks, evidence, policies) or one runbook file
    /// (.yaml/.yml/.json/.md) into the knowledge base, creating it if needed.
    Load {
        /// The file, or a directory of them.
        file: PathBuf,
        #[command(flatten)]
        kb: KbArgs,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Search reviewed runbooks (or evidence with --evidence) of one service, BM25 ranked.
    Search {
        /// Query text.
        query: String,
        /// Service (exact).
        #[arg(long)]
        service: String,
        /// Search evidence documents instead of runbooks.
        #[arg(long)]
        evidence: bool,
        /// How many results.
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutFormat,
        #[command(flatten)]
        kb: KbArgs,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Mark a learned (unreviewed) runbook reviewed, so the planner may use it.
    Review {
        /// Runbook id.
        runbook: String,
        /// The reviewer (not the person who learned it): may only restate the identity of your
        /// token (or, without a tokens file, of your OS account).
        #[arg(long = "as", value_name = "USER")]
        actor: Option<String>,
        #[command(flatten)]
        auth: AuthArgs,
        /// Time (RFC 3339) [default: now]
        #[arg(long)]
        now: Option<String>,
        #[command(flatten)]
        kb: KbArgs,
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        store: StoreArgs,
        /// Output format: `json` prints the review (runbook_id, status, reviewed_by, audit).
        #[arg(long, value_enum, default_value = "text")]
        format: OutFormat,
    },
    /// Counts of runbooks (reviewed, unreviewed), evidence and policies.
    Stats {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutFormat,
        #[command(flatten)]
        kb: KbArgs,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// The governor config (for its `knowledge:` block) and the knowledge base in force; `Err` is
/// the exit code, the errors printed.
fn knowledge(kb: &KbArgs, config: &ConfigArgs, env: EnvLookup<'_>) -> Result<(LoadedConfig, KnowledgeChoice), Exit> {
    let cfg = config.load(env).map_err(|e| fail(&e))?;
    let choice = kb.select(Some(&cfg), env).map_err(|e| fail(&[e]))?;
    Ok((cfg, choice))
}

/// Runs one `kb` subcommand; returns the exit code.
pub fn run(cmd: KbCommand, env: EnvLookup<'_>) -> Exit {
    match cmd {
        KbCommand::Load { file, kb, config } => match knowledge(&kb, &config, env) {
            Ok((_, choice)) => load(&file, &choice),
            Err(code) => code,
        },
        KbCommand::Search { query, service, evidence, k, format, kb, config } => match knowledge(&kb, &config, env) {
            Ok((_, choice)) => search(&choice, &query, &service, evidence, k, format),
            Err(code) => code,
        },
        KbCommand::Review { runbook, actor, auth, now: at, kb, config, store, format } => {
            let (cfg, choice) = match knowledge(&kb, &config, env) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let actor = match establish(&auth, actor.as_deref(), cfg.tokens.as_deref(), Act::Review, env) {
                Ok(a) => a,
                Err(r) => return r.report(),
            };
            review(env, &choice, &store, &runbook, &actor.name, at.as_deref(), format)
        }
        KbCommand::Stats { format, kb, config } => {
            let choice = match knowledge(&kb, &config, env) {
                Ok((_, c)) => c,
                Err(code) => return code,
            };
            match open_knowledge(&choice, false).and_then(|s| s.stats().map_err(|e| e.to_string())) {
                Ok(st) => {
                    match format {
                        OutFormat::Json => println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default()),
                        OutFormat::Text => {
                            println!("knowledge base {}", choice.describe());
                            println!(
                                "  runbooks   {:>9} reviewed, {} awaiting review",
                                st.runbooks_reviewed, st.runbooks_unreviewed
                            );
                            println!("  evidence   {:>9}", st.evidence);
                            println!("  policies   {:>9}", st.policies);
                        }
                    }
                    Exit::Ok
                }
                Err(e) => fail(&[e]),
            }
        }
    }
}

/// True when the file is in the sample-data shape (an object with a collection key).
fn is_sample_data(file: &Path) -> Result<bool, String> {
    let format = Format::from_path(file);
    if format == Format::Markdown {
        return Ok(false);
    }
    let text = read_text(file).map_err(|e| e.to_string())?;
    let v: Value = match format {
        Format::Yaml => guardrail_knowledge::yaml::to_json(&text).map_err(|e| format!("{}: {e}", file.display()))?,
        _ => serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", file.display()))?,
    };
    Ok(v.as_object()
        .is_some_and(|m| ["runbooks", "evidence", "policies", "incidents"].iter().any(|k| m.contains_key(*k))))
}

fn load(file: &Path, kb: &KnowledgeChoice) -> Exit {
    let target = match kb {
        KnowledgeChoice::Elasticsearch { config, .. } => {
            ElasticKnowledgeStore::create(config.clone()).map(Target::Elastic).map_err(|e| e.to_string())
        }
        KnowledgeChoice::Sqlite { path, .. } => {
            SqliteKnowledgeStore::create(path).map(Target::Sqlite).map_err(|e| e.to_string())
        }
    };
    match target {
        Ok(target) => load_into(file, target, &kb.describe()),
        Err(e) => fail(&[e]),
    }
}

/// Where `kb load` writes.
enum Target {
    Sqlite(SqliteKnowledgeStore),
    Elastic(ElasticKnowledgeStore),
}

impl Target {
    fn store(&mut self) -> &mut dyn KnowledgeStore {
        match self {
            Target::Sqlite(s) => s,
            Target::Elastic(s) => s,
        }
    }
}

fn load_into(file: &Path, mut target: Target, kb: &str) -> Exit {
    let files = if file.is_dir() {
        match knowledge_files(file) {
            Ok(f) if f.is_empty() => {
                return fail(&[format!("{}: no .json, .yaml, .yml, .md or .markdown files", file.display())]);
            }
            Ok(f) => f,
            Err(e) => return fail(&[e]),
        }
    } else {
        vec![file.to_path_buf()]
    };
    let mut bar = Progress::new(files.len());
    let mut added = 0u64;
    for (i, f) in files.iter().enumerate() {
        bar.file(i, f);
        let result = load_one(target.store(), f, &mut bar);
        let ((report, incidents), st) =
            match result.and_then(|r| target.store().stats().map(|s| (r, s)).map_err(|e| e.to_string())) {
                Ok(r) => r,
                Err(e) => {
                    bar.clear();
                    return fail(&[e]);
                }
            };
        bar.clear();
        added += report.added;
        println!(
            "{}: {} added, {} unchanged{} → {}",
            f.display(),
            report.added,
            report.unchanged,
            if incidents > 0 {
                format!(" ({incidents} incidents not stored: run them with `guardrail incident run`)")
            } else {
                String::new()
            },
            kb
        );
        if i + 1 == files.len() {
            println!(
                "knowledge base: {} reviewed runbook(s), {} unreviewed, {} evidence, {} policies",
                st.runbooks_reviewed, st.runbooks_unreviewed, st.evidence, st.policies
            );
        }
    }
    // After a large load, one FTS5 segment per index instead of dozens: searches read one
    // b-tree per word. Results do not change; below the threshold it is not worth the time.
    if let Target::Sqlite(store) = &target
        && added >= OPTIMIZE_AFTER
        && let Err(e) = store.optimize()
    {
        return fail(&[e.to_string()]);
    }
    Exit::Ok
}

/// Documents added by one `kb load` above which the FTS5 indexes are merged afterwards.
const OPTIMIZE_AFTER: u64 = 5_000;

/// The knowledge files of a directory, by name.
fn knowledge_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if path.is_file() && matches!(ext.as_deref(), Some("json" | "yaml" | "yml" | "md" | "markdown")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads one file: streamed when it is JSON over the whole-text limit, else as before.
fn load_one(store: &mut dyn KnowledgeStore, file: &Path, bar: &mut Progress) -> Result<(LoadReport, usize), String> {
    let size = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?.len();
    if size > MAX_FILE_BYTES && Format::from_path(file) == Format::Json {
        let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, f);
        bar.size(size);
        return store
            .load_stream(&mut reader, &file.display().to_string(), &mut |n| bar.docs(n))
            .map_err(|e| e.to_string());
    }
    let sample = is_sample_data(file)?;
    let result = if sample {
        store.load_sample_data(file).map(|(r, incidents)| (r, incidents.len()))
    } else {
        store.add_runbook_file(file).map(|r| (r, 0))
    };
    result.map_err(|e| e.to_string())
}

/// A one-line progress display on standard error, drawn only when it is a terminal.
struct Progress {
    tty: bool,
    files: usize,
    file: usize,
    name: String,
    size: u64,
    drawn: bool,
}

impl Progress {
    fn new(files: usize) -> Progress {
        use std::io::IsTerminal;
        Progress { tty: std::io::stderr().is_terminal(), files, file: 0, name: String::new(), size: 0, drawn: false }
    }

    fn file(&mut self, i: usize, path: &Path) {
        self.file = i;
        self.size = 0;
        self.name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if self.files > 1 {
            self.draw(&format!("[{}/{}] {}", i + 1, self.files, self.name));
        }
    }

    fn size(&mut self, size: u64) {
        self.size = size;
    }

    fn docs(&mut self, n: u64) {
        let of = if self.files > 1 { format!("[{}/{}] ", self.file + 1, self.files) } else { String::new() };
        let mib = self.size as f64 / (1024.0 * 1024.0);
        self.draw(&format!("{of}{}: {n} documents ({mib:.0} MiB file)", self.name));
    }

    fn draw(&mut self, line: &str) {
        if self.tty {
            // \r and erase-to-end-of-line: one line, rewritten in place.
            eprint!("\r\x1b[2K{line}");
            self.drawn = true;
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}

fn search(kb: &KnowledgeChoice, query: &str, service: &str, evidence: bool, k: usize, format: OutFormat) -> Exit {
    if !guardrail_core::remediation::valid_service_name(service) {
        return fail(&[format!("--service {service:?}: not a service name (1-128 of A-Z a-z 0-9 - _ . : /)")]);
    }
    let store = match open_knowledge(kb, false) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let k = k.clamp(1, 100);
    let hits = if evidence {
        store
            .search_evidence(query, service, k, None)
            .map(|h| SearchRows::Evidence(h.into_iter().map(EvidenceRow::of).collect()))
    } else {
        store
            .search_runbooks(query, service, k)
            .map(|h| SearchRows::Runbooks(h.into_iter().map(RunbookRow::of).collect()))
    };
    let rows = match hits {
        Ok(rows) => rows,
        Err(e) => return fail(&[e.to_string()]),
    };
    match format {
        OutFormat::Json => println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default()),
        OutFormat::Text => match &rows {
            SearchRows::Evidence(rows) if rows.is_empty() => println!("no evidence of {service} match"),
            SearchRows::Runbooks(rows) if rows.is_empty() => println!("no reviewed runbooks of {service} match"),
            SearchRows::Evidence(rows) => {
                for r in rows {
                    let stance = r.stance.as_str().unwrap_or("-");
                    println!("{:>9.4}  {:<12} {:<10} {}", r.score, r.id, stance, r.text);
                }
            }
            SearchRows::Runbooks(rows) => {
                for r in rows {
                    println!("{:>9.4}  {:<16} {} → {}", r.score, r.id, r.title, r.recommended_action);
                }
            }
        },
    }
    Exit::Ok
}

/// The results of `kb search`, as `--format json` prints them: a list of one kind of row.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum SearchRows {
    Evidence(Vec<EvidenceRow>),
    Runbooks(Vec<RunbookRow>),
}

/// One evidence hit. The fields are in the order `--format json` has always printed them
/// (alphabetical).
#[derive(Debug, Serialize)]
struct EvidenceRow {
    id: String,
    score: f64,
    service: String,
    /// The document's stance, as it serialises.
    stance: Value,
    text: String,
}

impl EvidenceRow {
    fn of(h: guardrail_knowledge::EvidenceHit) -> EvidenceRow {
        let stance = record::encode(&h.doc.stance);
        EvidenceRow { id: h.doc.id, score: h.score, service: h.doc.service, stance, text: h.doc.text }
    }
}

/// One runbook hit, fields in the order `--format json` has always printed them.
#[derive(Debug, Serialize)]
struct RunbookRow {
    id: String,
    /// The provenance with its keys sorted, as it has always been printed.
    provenance: Value,
    recommended_action: String,
    score: f64,
    service: String,
    title: String,
}

impl RunbookRow {
    fn of(h: guardrail_knowledge::RunbookHit) -> RunbookRow {
        let r = h.runbook;
        RunbookRow {
            id: r.id,
            provenance: record::encode(&r.provenance),
            recommended_action: r.recommended_action,
            score: h.score,
            service: r.service,
            title: r.title,
        }
    }
}

fn review(
    env: EnvLookup<'_>,
    kb: &KnowledgeChoice,
    store: &StoreArgs,
    id: &str,
    who: &str,
    at: Option<&str>,
    format: OutFormat,
) -> Exit {
    let who = who.trim();
    let at = match now(at) {
        Ok(t) => t.to_string(),
        Err(e) => return crate::remediation::bad_now(&e),
    };
    let mut knowledge = match open_knowledge(kb, true) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let runbook = match knowledge.runbook(id) {
        Ok(Some(r)) => r,
        Ok(None) => return fail(&[format!("no runbook {id:?} in {}", kb.describe())]),
        Err(e) => return fail(&[e.to_string()]),
    };
    if runbook.reviewed {
        return fail(&[format!(
            "runbook {id} is already reviewed (by {})",
            runbook.provenance.reviewed_by.as_deref().unwrap_or("its source")
        )]);
    }
    if let Some(l) = &runbook.provenance.learned
        && l.learned_by.eq_ignore_ascii_case(who)
    {
        eprintln!(
            "guardrail: review REFUSED (exit {}): {who} learned runbook {id} from {} and cannot review it; another person must",
            Exit::Refused,
            l.incident_id
        );
        return Exit::Refused;
    }
    let body = record::encode(&record::ReviewedBody {
        runbook_id: id.to_string(),
        by: who.to_string(),
        service: runbook.service.clone(),
        recommended_action: runbook.recommended_action.clone(),
        provenance: record::encode(&runbook.provenance),
        incident_id: runbook.provenance.learned.as_ref().map(|l| l.incident_id.clone()),
    });
    // A review in the chain whose mirror copy failed IS recorded: it is applied (the knowledge
    // base follows the chain), and the mirror failure reported with exit 13.
    let (rec, done) = match append(store, env, kinds::RUNBOOK_REVIEWED, &at, body) {
        Ok(r) => (r, Exit::Ok),
        Err(e) => match e.in_chain().cloned() {
            None => {
                return fail(&[append_failure("the review", "the runbook stays unreviewed", &e)]);
            }
            Some(r) => {
                eprintln!("guardrail: {}", append_failure("the review", "the mirror lacks it (exit 13)", &e));
                (r, Exit::MirrorFailed)
            }
        },
    };
    match knowledge.mark_reviewed(id, who, &at) {
        Ok(r) => {
            match format {
                OutFormat::Json => {
                    let view = ReviewView {
                        runbook_id: id.to_string(),
                        status: Reviewed::Reviewed,
                        reviewed_by: who.to_string(),
                        audit: RecordRef::of(&rec),
                    };
                    println!("{}", serde_json::to_string_pretty(&view).unwrap_or_default());
                }
                OutFormat::Text => {
                    println!(
                        "runbook {id} ({} → {}) reviewed by {who} (audit record {})",
                        r.service,
                        r.recommended_action,
                        rec.id()
                    );
                    println!("  the planner may now use it; the gate still judges every action it proposes");
                }
            }
            done
        }
        Err(e) => fail(&[format!("review recorded as {} but not applied: {e}", rec.id())]),
    }
}
