//! `guardrail audit export --to es`: rebuilds the Elasticsearch audit mirror from the chain
//! (`guardrail_notify::es_mirror::export`).
//!
//! Which cluster: `--url`, else `--audit-es` / `GUARDRAIL_AUDIT_ES`, else the governor
//! config's `audit_mirror:` block (whose index, credentials, CA file and timeouts apply in every
//! case); `--index` names another index. Exit 0 every record written, 1 the chain does not
//! verify (nothing sent), 3 the store or the cluster failed or some records were refused (each
//! named); 64 (usage) no cluster named. Re-running is harmless: documents are written under the
//! record's id.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use guardrail_config::AuditMirrorConfig;
use guardrail_notify::es_mirror::{EsMirror, ExportError, ExportReport, export};
use guardrail_notify::routing::{AUDIT_ES_ENV, mirror_config};
use serde::Serialize;

use crate::audit_cmd::{self, StoreArgs};
use crate::exit::Exit;
use crate::inputs::EnvLookup;
use crate::remediation::ConfigArgs;

/// Where an export goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportTarget {
    /// The Elasticsearch audit mirror.
    Es,
}

/// `guardrail audit export`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Where to.
    #[arg(long, value_enum)]
    pub to: ExportTarget,
    /// The cluster [default: --audit-es / GUARDRAIL_AUDIT_ES, else the governor config's
    /// audit_mirror: block]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The index [default: the audit_mirror: block's, else guardrail-audit]
    #[arg(long)]
    pub index: Option<String>,
    /// Records per _bulk call.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// Output format (text or json).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    #[command(flatten)]
    pub governor: ConfigArgs,
}

/// What `--format json` prints.
#[derive(Debug, Serialize)]
struct ExportView {
    store: String,
    url: String,
    index: String,
    records: usize,
    written: usize,
    batches: usize,
    created_index: bool,
    failed: Vec<FailedView>,
}

#[derive(Debug, Serialize)]
struct FailedView {
    record: String,
    index: String,
    status: u16,
    error_type: String,
    reason: String,
}

fn problem(code: Exit, lines: &[String]) -> Exit {
    eprintln!("guardrail: audit export: failed (exit {code}):");
    for l in lines {
        eprintln!("  error: {l}");
    }
    code
}

/// The mirror an export writes to, from the flags, the environment and the config.
fn target(args: &ExportArgs, store: &StoreArgs, env: EnvLookup<'_>) -> Result<AuditMirrorConfig, (Exit, Vec<String>)> {
    let loaded = args.governor.load(env).map_err(|e| (Exit::CannotDecide, e))?;
    let block = match &loaded.path {
        None => None,
        Some(p) => {
            guardrail_config::read_governor(p)
                .map_err(|es| (Exit::CannotDecide, es.iter().map(ToString::to_string).collect::<Vec<_>>()))?
                .file
                .audit_mirror
        }
    };
    let url = args.url.clone().or_else(|| store.es(env));
    let vars: BTreeMap<String, String> = url.into_iter().map(|u| (AUDIT_ES_ENV.to_string(), u)).collect();
    let Some(mut cfg) = mirror_config(block.as_ref(), &vars) else {
        return Err((
            Exit::Usage,
            vec![
                "no cluster: give --url, --audit-es or GUARDRAIL_AUDIT_ES, or an audit_mirror: block in the governor config"
                    .into(),
            ],
        ));
    };
    if let Some(i) = &args.index {
        if let Some(why) = guardrail_config::index_name_problem(i) {
            return Err((Exit::Usage, vec![format!("--index {i:?} {why}")]));
        }
        cfg.index = i.clone();
    }
    if guardrail_config::check_url(&cfg.url).is_err() || cfg.url.split('/').nth(2).is_some_and(|a| a.contains('@')) {
        return Err((Exit::Usage, vec!["the cluster URL must be http(s)://host[:port] without credentials".into()]));
    }
    Ok(cfg)
}

/// The variables the mirror's credentials are read from (only those).
fn secrets(cfg: &AuditMirrorConfig, env: EnvLookup<'_>) -> BTreeMap<String, String> {
    let var = match &cfg.credentials {
        Some(guardrail_config::ElasticCredentials::ApiKeyEnv(v)) => Some(v),
        Some(guardrail_config::ElasticCredentials::Basic { password_env, .. }) => Some(password_env),
        None => None,
    };
    var.and_then(|v| env(v).map(|value| (v.clone(), value))).into_iter().collect()
}

/// Runs `guardrail audit export`.
pub fn run(store: &StoreArgs, args: &ExportArgs, env: EnvLookup<'_>) -> Exit {
    let ExportTarget::Es = args.to;
    let cfg = match target(args, store, env) {
        Ok(c) => c,
        Err((code, lines)) => return problem(code, &lines),
    };
    let mirror = match EsMirror::connect(&cfg, &secrets(&cfg, env), None) {
        Ok(m) => m,
        Err(e) => return problem(Exit::CannotDecide, &[e.to_string()]),
    };
    let spec = store.spec(env);
    let mut s = match audit_cmd::open(&spec) {
        Ok(s) => s,
        Err(e) => return problem(Exit::CannotDecide, &[e.to_string()]),
    };
    let tty = std::io::stderr().is_terminal() && args.format == "text";
    let mut progress = |done: usize, total: usize| {
        if tty {
            eprint!("\r  {done}/{total} records");
        }
    };
    let outcome = export(s.as_mut(), &mirror, args.batch as usize, &mut progress);
    if tty {
        eprintln!();
    }
    let report = match outcome {
        Ok(r) => r,
        Err(e @ ExportError::BrokenChain { .. }) => return problem(Exit::Delay, &[format!("audit store {spec}: {e}")]),
        Err(ExportError::Store(e)) => return problem(Exit::CannotDecide, &[format!("audit store {spec}: {e}")]),
        Err(e @ ExportError::Cluster { .. }) => return problem(Exit::CannotDecide, &[e.to_string()]),
    };
    print(&s.describe(), &mirror, &report, args.format == "json");
    if report.failed.is_empty() {
        Exit::Ok
    } else {
        problem(
            Exit::CannotDecide,
            &[format!(
                "{} record(s) not written (listed above); fix the cause and run the export again",
                report.refused_records
            )],
        )
    }
}

fn print(store: &str, mirror: &EsMirror, r: &ExportReport, json: bool) {
    if json {
        let view = ExportView {
            store: store.to_string(),
            url: mirror.url().to_string(),
            index: mirror.index().to_string(),
            records: r.records,
            written: r.written,
            batches: r.batches,
            created_index: r.created_index,
            failed: r
                .failed
                .iter()
                .map(|f| FailedView {
                    record: f.record_id.clone(),
                    index: f.index.clone(),
                    status: f.status,
                    error_type: f.kind.clone(),
                    reason: f.reason.clone(),
                })
                .collect(),
        };
        println!("{}", serde_json::to_string_pretty(&view).unwrap_or_default());
        return;
    }
    println!(
        "exported {} of {} record(s) from {store} to {}/{} in {} _bulk call(s){}",
        r.written,
        r.records,
        mirror.url(),
        mirror.index(),
        r.batches,
        if r.created_index { " (index created)" } else { "" }
    );
    for f in &r.failed {
        println!("  not written: {f}");
    }
}
