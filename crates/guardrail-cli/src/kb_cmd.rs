//! `guardrail kb load|search|review|stats`: the governor's knowledge base (SQLite FTS5).
//!
//! `kb load FILE` reads the original's `sample_data.json` shape (JSON or YAML: an object with
//! `runbooks`, `evidence`, `policies` and/or `incidents`) or one runbook file (YAML, JSON, or
//! Markdown with front matter), creating the knowledge base when it does not exist. Loading is
//! idempotent and never overwrites a document with different content.
//!
//! `kb review RUNBOOK` makes a learned runbook usable by the planner. The reviewer is
//! authenticated ([`crate::identity`]: a token with role `approver` or `admin`, or the OS
//! account; `--as` may only restate it); the person who learned it cannot review it. The review
//! is recorded on the audit chain before it is applied.

use std::path::{Path, PathBuf};

use guardrail_gate::audit_cmd::StoreArgs;
use guardrail_gate::exit::Exit;
use guardrail_gate::inputs::EnvLookup;
use guardrail_governor::record;
use guardrail_knowledge::parse::Format;
use guardrail_knowledge::{KnowledgeStore, SqliteKnowledgeStore, read_text};
use serde::Serialize;
use serde_json::Value;

use crate::identity::{Act, AuthArgs, establish};
use crate::incident_cmd::{open_kb, open_kb_read_only};
use guardrail_governor::views::{RecordRef, ReviewView, Reviewed};

use crate::remediation::{ConfigArgs, KbArgs, OutFormat, append, append_failure, fail, kinds, now};

/// `guardrail kb …`.
#[derive(Debug, clap::Subcommand)]
pub enum KbCommand {
    /// Load sample_data.json (runbooks, evidence, policies) or one runbook file
    /// (.yaml/.yml/.json/.md) into the knowledge base, creating it if needed.
    Load {
        /// The file.
        file: PathBuf,
        #[command(flatten)]
        kb: KbArgs,
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
        #[command(flatten)]
        kb: KbArgs,
    },
}

/// Runs one `kb` subcommand; returns the exit code.
pub fn run(cmd: KbCommand, env: EnvLookup<'_>) -> Exit {
    match cmd {
        KbCommand::Load { file, kb } => load(&file, &kb.path(env)),
        KbCommand::Search { query, service, evidence, k, format, kb } => {
            search(&kb.path(env), &query, &service, evidence, k, format)
        }
        KbCommand::Review { runbook, actor, auth, now: at, kb, config, store, format } => {
            let cfg = match config.load(env) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            let actor = match establish(&auth, actor.as_deref(), cfg.tokens.as_deref(), Act::Review, env) {
                Ok(a) => a,
                Err(r) => return r.report(),
            };
            review(env, &kb.path(env), &store, &runbook, &actor.name, at.as_deref(), format)
        }
        KbCommand::Stats { kb } => {
            match open_kb_read_only(&kb.path(env)).and_then(|s| s.stats().map_err(|e| e.to_string())) {
                Ok(st) => {
                    println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
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

fn load(file: &Path, kb: &Path) -> Exit {
    let sample = match is_sample_data(file) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let mut store = match SqliteKnowledgeStore::create(kb) {
        Ok(s) => s,
        Err(e) => return fail(&[e.to_string()]),
    };
    let result = if sample {
        store.load_sample_data(file).map(|(r, incidents)| (r, incidents.len()))
    } else {
        store.add_runbook_file(file).map(|r| (r, 0))
    };
    match result.and_then(|r| store.stats().map(|s| (r, s))) {
        Ok(((report, incidents), st)) => {
            println!(
                "{}: {} added, {} unchanged{} → {}",
                file.display(),
                report.added,
                report.unchanged,
                if incidents > 0 {
                    format!(" ({incidents} incidents not stored: run them with `guardrail incident run`)")
                } else {
                    String::new()
                },
                kb.display()
            );
            println!(
                "knowledge base: {} reviewed runbook(s), {} unreviewed, {} evidence, {} policies",
                st.runbooks_reviewed, st.runbooks_unreviewed, st.evidence, st.policies
            );
            Exit::Ok
        }
        Err(e) => fail(&[e.to_string()]),
    }
}

fn search(kb: &Path, query: &str, service: &str, evidence: bool, k: usize, format: OutFormat) -> Exit {
    if !guardrail_core::remediation::valid_service_name(service) {
        return fail(&[format!("--service {service:?}: not a service name (1-128 of A-Z a-z 0-9 - _ . : /)")]);
    }
    let store = match open_kb_read_only(kb) {
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
    kb: &Path,
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
    let mut knowledge = match open_kb(kb) {
        Ok(s) => s,
        Err(e) => return fail(&[e]),
    };
    let runbook = match knowledge.runbook(id) {
        Ok(Some(r)) => r,
        Ok(None) => return fail(&[format!("no runbook {id:?} in {}", kb.display())]),
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
