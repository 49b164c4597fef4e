//! Signed checkpoints of the audit chain: `guardrail audit keygen | checkpoint | verify
//! --checkpoint`, and the checkpoint `gate --format github` publishes in the job summary.
//!
//! Exit codes (the same as `audit verify`): 0 the chain verifies and still holds the signed
//! records; 1 it does not (a record edited, removed, reordered, the chain rebuilt), or the
//! checkpoint's signature does not verify with the given key (forged, altered, another key or
//! another chain), or `checkpoint` was asked to sign a broken chain; 3 a key, checkpoint or
//! store cannot be read (missing, unparseable, not a checkpoint); 64 usage.

use std::path::{Path, PathBuf};

use guardrail_checkpoint::{Checkpoint, CheckpointError, NoteError, SigningKey};
use guardrail_store::checkpoint::{self as files, CheckpointFileError};
use serde::Serialize;

use crate::exit::Exit;

/// The environment variable naming the private key file, for `gate` and `audit checkpoint`.
pub const KEY_ENV: &str = "GUARDRAIL_CHECKPOINT_KEY";

fn cannot(msg: impl std::fmt::Display) -> Exit {
    eprintln!("guardrail: could not decide (exit {}):", Exit::CannotDecide);
    eprintln!("  error: {msg}");
    Exit::CannotDecide
}

/// The key file in force: the flag, else `GUARDRAIL_CHECKPOINT_KEY`.
pub fn key_path(flag: Option<PathBuf>, env: crate::inputs::EnvLookup<'_>) -> Option<PathBuf> {
    flag.or_else(|| env(KEY_ENV).filter(|v| !v.trim().is_empty()).map(PathBuf::from))
}

/// `PREFIX.key` / `PREFIX.pub` (the suffix is appended, never substituted: `ci/audit.v2`
/// gives `ci/audit.v2.key`).
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `guardrail audit keygen PREFIX [--name NAME]`: a new Ed25519 key pair; the private key in
/// `PREFIX.key` (mode 0600), the verifier key in `PREFIX.pub`. Refuses to overwrite either.
pub fn keygen(prefix: &Path, name: Option<String>) -> Exit {
    let name = match name {
        Some(n) => n,
        None => match prefix.file_name().and_then(|n| n.to_str()) {
            Some(n) => n.to_string(),
            None => {
                eprintln!("guardrail audit keygen: {} has no file name to name the key; give --name", prefix.display());
                return Exit::Usage;
            }
        },
    };
    let (key_file, pub_file) = (with_suffix(prefix, ".key"), with_suffix(prefix, ".pub"));
    for p in [&key_file, &pub_file] {
        if p.exists() {
            return cannot(CheckpointFileError::Exists { path: p.clone() });
        }
    }
    let mut seed = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut seed) {
        return cannot(format!("the operating system's random source failed: {e}"));
    }
    let key = match SigningKey::from_seed(&name, seed) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("guardrail audit keygen: --name: {e}");
            return Exit::Usage;
        }
    };
    let vkey = key.verifier().encode();
    if let Err(e) = files::create_new(&key_file, &format!("{}\n", key.encode()), true) {
        return cannot(e);
    }
    if let Err(e) = files::create_new(&pub_file, &format!("{vkey}\n"), false) {
        // Leave no half pair behind.
        let _ = std::fs::remove_file(&key_file);
        return cannot(e);
    }
    println!(
        "wrote {} (private key, mode 0600: keep it out of the audit database and its backups)",
        key_file.display()
    );
    println!("wrote {} (verifier key):", pub_file.display());
    println!("{vkey}");
    Exit::Ok
}

/// Reads the private key, warning when others than its owner may read it.
fn load_key(key_file: &Path) -> Result<SigningKey, CheckpointFileError> {
    let key = files::load_signing_key(key_file)?;
    if let Some(mode) = files::exposed_key_mode(key_file) {
        eprintln!(
            "guardrail: warning: the checkpoint key {} is readable by others (mode {mode:o}); `chmod 600` it",
            key_file.display()
        );
    }
    Ok(key)
}

/// Why no checkpoint was signed ([`sign`]).
#[derive(Debug)]
pub enum SignError {
    /// The private key cannot be read or is not a key.
    Key(CheckpointFileError),
    /// The audit store cannot be opened (the error names it).
    Open(crate::audit_cmd::OpenError),
    /// The chain does not verify: nothing is signed over a broken chain (exit 1).
    ChainBroken(CheckpointFileError),
    /// The store could not be read.
    Store {
        /// The store spec.
        spec: String,
        /// Why.
        error: CheckpointFileError,
    },
}

impl SignError {
    /// Exit 1 for a broken chain (as `audit verify`), else 3.
    pub fn exit(&self) -> Exit {
        if matches!(self, SignError::ChainBroken(_)) { Exit::Delay } else { Exit::CannotDecide }
    }
}

// The CLI crate has no thiserror; Display and Error are written out.
impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignError::Key(e) => write!(f, "checkpoint key {e}"),
            SignError::Open(e) => write!(f, "{e}"),
            SignError::ChainBroken(e) => write!(f, "{e}"),
            SignError::Store { spec, error } => write!(f, "audit store {spec}: {error}"),
        }
    }
}

impl std::error::Error for SignError {}

/// Signs the checkpoint of the store `spec`'s chain with the key in `key_file`.
pub fn sign(spec: &str, key_file: &Path) -> Result<files::SignedCheckpoint, SignError> {
    let key = load_key(key_file).map_err(SignError::Key)?;
    let mut store = crate::audit_cmd::open(spec).map_err(SignError::Open)?;
    files::sign_store(store.as_mut(), &key).map_err(|e| match e {
        CheckpointFileError::ChainBroken { .. } => SignError::ChainBroken(e),
        error => SignError::Store { spec: spec.to_string(), error },
    })
}

/// `guardrail audit checkpoint --key FILE [--out FILE]`.
pub fn checkpoint(spec: &str, key_file: Option<PathBuf>, out: Option<PathBuf>) -> Exit {
    let Some(key_file) = key_file else {
        eprintln!("guardrail audit checkpoint: no key: give --key PREFIX.key or set {KEY_ENV}");
        return Exit::Usage;
    };
    let signed = match sign(spec, &key_file) {
        Ok(s) => s,
        Err(e @ SignError::ChainBroken(_)) => {
            eprintln!("guardrail audit checkpoint: {e}");
            eprintln!("  (run `guardrail audit verify` for every problem)");
            return e.exit();
        }
        Err(e) => return cannot(e),
    };
    match out {
        None => print!("{}", signed.note),
        Some(path) => {
            if let Err(e) = files::write_atomic(&path, &signed.note) {
                return cannot(e);
            }
            eprintln!(
                "checkpoint of {} record(s), head {}, written to {}",
                signed.checkpoint.size,
                signed.checkpoint.head_hex(),
                path.display()
            );
        }
    }
    Exit::Ok
}

/// `audit verify --format json`: the chain's own verification, with the checkpoint when one was
/// checked. The fields are in the order they always had (alphabetical).
#[derive(Debug, Serialize)]
pub struct VerifyView<'a> {
    /// Every break found, in order (absent when the checkpoint failed before the chain was read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaks: Option<&'a [guardrail_core::audit::ChainBreak]>,
    /// The checkpoint checked (`--checkpoint`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<CheckpointJson>,
    /// The chain head's hash (`null` for an empty chain; absent as `breaks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<&'a Option<String>>,
    /// Intact (and, with a checkpoint, still holding its records).
    pub ok: bool,
    /// Records checked (absent as `breaks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<usize>,
}

impl<'a> VerifyView<'a> {
    /// The view of a chain's verification report.
    pub fn of(rep: &'a guardrail_core::audit::VerifyReport) -> VerifyView<'a> {
        VerifyView {
            breaks: Some(&rep.breaks),
            checkpoint: None,
            head: Some(&rep.head),
            ok: rep.ok(),
            records: Some(rep.records),
        }
    }

    /// A checkpoint that failed before the chain was compared with it.
    fn checkpoint_failed(checkpoint: CheckpointJson) -> VerifyView<'static> {
        VerifyView { breaks: None, checkpoint: Some(checkpoint), head: None, ok: false, records: None }
    }
}

/// The text report of a chain's verification: intact with its head, or each break.
pub fn chain_lines(rep: &guardrail_core::audit::VerifyReport) -> Vec<String> {
    if rep.ok() {
        return vec![format!(
            "audit chain intact: {} record(s), head {}",
            rep.records,
            rep.head.as_deref().unwrap_or("(empty)")
        )];
    }
    let mut lines = vec![format!("audit chain BROKEN: {} problem(s) in {} record(s)", rep.breaks.len(), rep.records)];
    lines.extend(rep.breaks.iter().map(|b| format!("  record {}: {}", b.seq, b.problem)));
    lines
}

/// The checkpoint part of `audit verify --format json`.
#[derive(Debug, Serialize)]
struct CheckpointJson {
    file: String,
    origin: Option<String>,
    size: Option<u64>,
    head: Option<String>,
    /// Whether the store still holds the signed records (and the signature verified).
    holds: bool,
    problem: Option<String>,
}

/// `guardrail audit verify --checkpoint FILE --public-key FILE`: the chain's own verification,
/// plus whether it still holds the records the checkpoint signed. `spec` is the store.
pub fn verify(spec: &str, checkpoint_file: &Path, public_key: &Path, json: bool) -> Exit {
    let fail_cp = |code: Exit, problem: String| {
        if json {
            let cp = CheckpointJson {
                file: checkpoint_file.display().to_string(),
                origin: None,
                size: None,
                head: None,
                holds: false,
                problem: Some(problem.clone()),
            };
            println!("{}", serde_json::to_string_pretty(&VerifyView::checkpoint_failed(cp)).unwrap_or_default());
        }
        if code == Exit::CannotDecide {
            cannot(problem)
        } else {
            if !json {
                println!("checkpoint {} does NOT verify: {problem}", checkpoint_file.display());
            }
            code
        }
    };
    let vkey = match files::load_verifier_key(public_key) {
        Ok(k) => k,
        Err(e) => return fail_cp(Exit::CannotDecide, format!("public key {e}")),
    };
    let note = match files::read_small_text(checkpoint_file) {
        Ok(t) => t,
        Err(e) => return fail_cp(Exit::CannotDecide, format!("checkpoint {e}")),
    };
    let cp = match Checkpoint::open(&note, &vkey) {
        Ok(cp) => cp,
        Err(e) => {
            // A note that cannot be read is "cannot decide"; one that reads but whose signature
            // does not hold (altered, forged, another key or chain) is a failed verification.
            let code = match &e {
                CheckpointError::Note(NoteError::Malformed(_)) | CheckpointError::Body(_) => Exit::CannotDecide,
                _ => Exit::Delay,
            };
            let problem = match &e {
                CheckpointError::Note(NoteError::NotSignedByKey { .. }) => {
                    format!("signature does not verify with {}: {e}", public_key.display())
                }
                _ => e.to_string(),
            };
            return fail_cp(code, format!("{}: {problem}", checkpoint_file.display()));
        }
    };
    let mut store = match crate::audit_cmd::open(spec) {
        Ok(s) => s,
        Err(e) => return cannot(e),
    };
    let cmp = match files::compare_store(store.as_mut(), &cp) {
        Ok(c) => c,
        Err(e) => return cannot(format!("audit store {spec}: {e}")),
    };
    let within = cmp.breaks_within(cp.size);
    let problem = match (&cmp.prefix, within.first()) {
        (Err(p), _) => Some(p.to_string()),
        (Ok(_), Some(first)) => Some(format!(
            "record {} (within the {} signed record(s)) fails verification ({}): the store no longer holds the \
             signed records",
            first.seq, cp.size, first.problem
        )),
        (Ok(_), None) => None,
    };
    let rep = &cmp.report;
    if json {
        let v = VerifyView {
            ok: cmp.ok(),
            checkpoint: Some(CheckpointJson {
                file: checkpoint_file.display().to_string(),
                origin: Some(cp.origin.clone()),
                size: Some(cp.size),
                head: Some(cp.head_hex()),
                holds: problem.is_none(),
                problem: problem.clone(),
            }),
            ..VerifyView::of(rep)
        };
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for l in chain_lines(rep) {
            println!("{l}");
        }
        match &problem {
            None => println!(
                "checkpoint {} ({} record(s), head {}) signed by {}+{:08x}: the chain still holds the signed \
                 records ({} appended since)",
                cp.origin,
                cp.size,
                cp.head_hex(),
                vkey.name(),
                vkey.key_id(),
                (rep.records as u64).saturating_sub(cp.size)
            ),
            Some(p) => {
                println!("checkpoint {} ({} record(s), head {}) NOT HELD: {p}", cp.origin, cp.size, cp.head_hex())
            }
        }
    }
    if cmp.ok() { Exit::Ok } else { Exit::Delay }
}

/// After `gate`: with `--format github` and a checkpoint key, signs the chain's checkpoint
/// and appends it to `GITHUB_STEP_SUMMARY`, so a copy lives outside the database. `code` is
/// the gate's exit code; a usage error publishes nothing. A checkpoint that cannot be made or
/// published turns the result into exit 3 (the decision stays recorded; the message says so).
pub fn after_gate(
    code: Exit,
    github: bool,
    key_flag: Option<PathBuf>,
    spec: &str,
    env: crate::inputs::EnvLookup<'_>,
) -> Exit {
    let Some(key_file) = key_path(key_flag, env) else {
        return code;
    };
    if code == Exit::Usage {
        return code;
    }
    if !github {
        eprintln!(
            "guardrail: warning: the checkpoint key ({}) is only used with --format github (job summary); \
             no checkpoint was published",
            key_file.display()
        );
        return code;
    }
    let Some(summary) = env("GITHUB_STEP_SUMMARY").filter(|v| !v.is_empty()) else {
        eprintln!("guardrail: warning: GITHUB_STEP_SUMMARY is not set: no checkpoint was published");
        return code;
    };
    let signed = match sign(spec, &key_file) {
        Ok(s) => s,
        Err(e) => {
            return cannot(format!("the decision is recorded, but its checkpoint could not be published: {e}"));
        }
    };
    let text = crate::render::github_checkpoint_summary(&signed.note);
    if let Err(e) = crate::render::append_file(&PathBuf::from(&summary), &text) {
        return cannot(format!("GITHUB_STEP_SUMMARY {summary}: could not write the checkpoint: {e}"));
    }
    code
}

/// `serve --checkpoint-key/--checkpoint-dir/--checkpoint-every-*`: the writer's options, the
/// key read now (a key that cannot be read stops `serve` with exit 3; a directory without a
/// key is a usage error).
pub fn serve_options(
    key: Option<PathBuf>,
    dir: Option<PathBuf>,
    every_records: u64,
    every_minutes: u64,
) -> Result<Option<guardrail_server::checkpoints::CheckpointOptions>, Exit> {
    let (key, dir) = match (key, dir) {
        (None, None) => return Ok(None),
        (Some(k), Some(d)) => (k, d),
        (None, Some(_)) => {
            eprintln!("guardrail serve: --checkpoint-dir needs --checkpoint-key (or {KEY_ENV})");
            return Err(Exit::Usage);
        }
        // Only from GUARDRAIL_CHECKPOINT_KEY (clap makes the flag require a directory): that
        // variable is also the gate's, so without a directory serve writes no checkpoints.
        (Some(_), None) => return Ok(None),
    };
    let key = load_key(&key).map_err(|e| cannot(format!("--checkpoint-key {e}")))?;
    Ok(Some(guardrail_server::checkpoints::CheckpointOptions {
        key,
        dir,
        every_records,
        every: std::time::Duration::from_secs(every_minutes.saturating_mul(60)),
        poll: std::time::Duration::from_secs(1),
    }))
}
