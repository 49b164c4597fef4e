//! `guardrail serve --checkpoint-key … --checkpoint-dir …`: signs a checkpoint of the audit
//! chain every N records or M minutes into a directory outside the database.
//!
//! A thread with its own store connection looks at the newest record every `poll` (records
//! are appended by this server and by any `guardrail gate` sharing the store, so it polls
//! rather than hooking appends) and signs when `every_records` records were added since the
//! last checkpoint, or `every` elapsed and the chain grew. One checkpoint is written at start.
//! Each is `checkpoint-<count>.txt` and `latest`, both written atomically (temp file, rename).
//! Signing verifies the whole chain first ([`guardrail_store::checkpoint::sign_store`]); a
//! chain that does not verify is never signed, and the refusal is logged at every attempt.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use guardrail_checkpoint::SigningKey;
use guardrail_store::checkpoint as files;
use guardrail_store::{AuditStore, ListQuery};

/// When and where checkpoints are written.
#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    /// The signing key (its name is the checkpoints' origin).
    pub key: SigningKey,
    /// Directory for `checkpoint-<count>.txt` and `latest` (created if missing).
    pub dir: PathBuf,
    /// Sign after this many new records (at least 1).
    pub every_records: u64,
    /// Sign after this long if the chain grew at all.
    pub every: Duration,
    /// How often the chain's length is looked at.
    pub poll: Duration,
}

/// The running writer; dropping it (or [`stop`](Self::stop)) ends the thread.
#[derive(Debug)]
pub struct CheckpointWriter {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CheckpointWriter {
    /// Starts the writer on the store `spec` (its own connection).
    pub fn spawn(spec: String, opts: CheckpointOptions) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new().name("checkpoints".into()).spawn(move || run(&spec, &opts, &rx))?;
        Ok(CheckpointWriter { stop: Some(tx), thread: Some(thread) })
    }

    /// Stops the thread and waits for it (a checkpoint being written is finished first).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The writer's memory: the size last signed, when, and when to try again after a failure.
struct Last {
    size: Option<u64>,
    at: Instant,
    retry_at: Option<Instant>,
}

/// How long a failed checkpoint (a broken chain, an unwritable directory) waits before the
/// next attempt, so a broken chain is not re-verified and re-logged at every poll.
const RETRY_AFTER: Duration = Duration::from_secs(30);

fn run(spec: &str, opts: &CheckpointOptions, stop: &mpsc::Receiver<()>) {
    let mut store: Option<Box<dyn AuditStore>> = None;
    let mut last = Last { size: None, at: Instant::now(), retry_at: None };
    loop {
        tick(spec, opts, &mut store, &mut last);
        match stop.recv_timeout(opts.poll) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // A message or a dropped sender: stop.
            _ => return,
        }
    }
}

/// One look at the chain; signs and writes when due. Errors are logged and retried at the
/// next poll (the connection is reopened after a store error).
fn tick(spec: &str, opts: &CheckpointOptions, store: &mut Option<Box<dyn AuditStore>>, last: &mut Last) {
    if last.retry_at.is_some_and(|t| Instant::now() < t) {
        return;
    }
    let s = match store {
        Some(s) => s,
        None => match guardrail_store::open_store(spec) {
            Ok(s) => store.insert(s),
            Err(e) => {
                eprintln!("guardrail serve: checkpoint: audit store: {e}");
                return;
            }
        },
    };
    let newest = match s.list(&ListQuery { limit: 1, before_seq: None, kind: None }) {
        Ok(r) => r.first().map_or(0, |r| u64::try_from(r.seq).unwrap_or(0)),
        Err(e) => {
            eprintln!("guardrail serve: checkpoint: audit store {}: {e}", s.describe());
            *store = None;
            return;
        }
    };
    let due = match last.size {
        None => true,
        Some(size) => {
            newest.saturating_sub(size) >= opts.every_records.max(1)
                || (newest != size && last.at.elapsed() >= opts.every)
        }
    };
    if !due {
        return;
    }
    match files::sign_store(s.as_mut(), &opts.key).and_then(|signed| {
        let path = files::write_to_dir(&opts.dir, &signed)?;
        Ok((signed, path))
    }) {
        Ok((signed, path)) => {
            eprintln!(
                "guardrail serve: checkpoint of {} record(s) written to {}",
                signed.checkpoint.size,
                path.display()
            );
            *last = Last { size: Some(signed.checkpoint.size), at: Instant::now(), retry_at: None };
        }
        Err(e) => {
            eprintln!("guardrail serve: checkpoint NOT written (next attempt in {}s): {e}", RETRY_AFTER.as_secs());
            last.retry_at = Some(Instant::now() + RETRY_AFTER);
            if matches!(e, files::CheckpointFileError::Store(_)) {
                *store = None;
            }
        }
    }
}
