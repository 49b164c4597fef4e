//! Group commit: one writer per store in a long-lived process (`guardrail serve`).
//!
//! A [`SharedStore`] owns one writer thread with its own connection. An append through one of
//! its handles sends its draft(s) to the writer and waits; the writer takes everything pending
//! (up to [`MAX_BATCH`] records), seals it in arrival order after the chain head in ONE
//! transaction (each record's `prev_hash` the previous one's hash, each record's outbox rows
//! beside it) and commits it with one durable commit — one WAL fsync on SQLite, one flushed
//! commit under the chain-head lock on PostgreSQL — then answers every waiter with its own
//! record. Nobody is answered before the commit returned, so "the answer is sent only after
//! its record is durable" holds for each of them. When the transaction fails, every waiter of
//! that batch gets the error (nothing of it is in the chain; the writer reconnects for the
//! next batch): fail closed, as a single append does.
//!
//! Claims ([`AuditStore::append_claim`]), linked pairs ([`AuditStore::append_linked`]) and
//! guarded claims ([`AuditStore::append_guarded_claim`]) ride the same group commit, in arrival order among the other appends: the writer decides each
//! claim under the write lock by one lookup in the claim index, and against the claims sealed
//! earlier in the same batch, so of concurrent claimants exactly one wins; a held claim is not
//! appended and its waiter gets the holder while the rest of the batch proceeds (see
//! [`crate::plan`]). Several processes (replicas) on one store each have their own writer;
//! their batches serialise on the store's lock as single appends did, so the chain stays one
//! chain and one claim index.
//!
//! On SQLite the outbox's writes (a deliverer's leases and marks, retries, pruning) go through
//! the writer too, run on its connection after the batch's commit: on a pooled connection they
//! competed for the database's one write lock with the writer, and SQLite's busy handler
//! waits by sleeping. (PostgreSQL locks rows, not the database: they stay on the pool.)
//!
//! Reads go through a small pool of connections (opened on demand, kept while they work), so a
//! request no longer opens a connection (SQLite: open, pragmas, schema check; PostgreSQL: TCP,
//! TLS, authentication) before it can read.
//!
//! [`share`] registers the store under its spec for this process; [`crate::open_store`] with
//! exactly that spec then returns a handle on it, so every component of the server that opens
//! "the configured store" (the deploy gate's recorder, the governor's log, the views) uses the
//! writer and the pool without knowing. The registration ends when the last [`Arc`] of the
//! [`SharedStore`] is dropped (the writer finishes what is queued and stops).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak, mpsc};
use std::thread::JoinHandle;

use guardrail_core::audit::{ChainedRecord, RecordDraft, VerifyReport};

use crate::outbox::{ChannelKind, DueEntry, OutboxEntry, OutboxRouter, OutboxState, OutboxStatus, Retry};
use crate::plan::{ClaimGuard, LinkedClaim, LinkedDraft, Outcome, Unit, Work};
use crate::prepared::Prepared;
use crate::sqlite::CheckpointMode;
use crate::{AuditStore, Backend, Claim, ListQuery, StoreError, open_backend, validate_draft};

/// Most records one group commit seals: bounds the transaction (and the time the chain lock is
/// held) when a burst queues more.
pub const MAX_BATCH: usize = 512;

/// Idle read connections kept per shared store.
const MAX_IDLE_READERS: usize = 32;

/// The stores shared in this process, by spec.
static SHARED: Mutex<Vec<(String, Weak<SharedStore>)>> = Mutex::new(Vec::new());

/// The shared store registered under exactly `spec`, if it is alive.
pub(crate) fn shared(spec: &str) -> Option<Arc<SharedStore>> {
    let map = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    map.iter().find(|(s, _)| s == spec).and_then(|(_, w)| w.upgrade())
}

/// Shares the store `spec` names in this process: one writer thread doing group commits and a
/// pool of read connections; [`crate::open_store`]`(spec)` returns handles on it while the
/// returned [`Arc`] (or a clone) is alive. Opens one connection now, so a store that cannot be
/// opened is an error here (nothing is registered). Sharing a spec already shared returns the
/// same store.
pub fn share(spec: &str) -> Result<Arc<SharedStore>, StoreError> {
    if let Some(live) = shared(spec) {
        return Ok(live);
    }
    // Connected with no lock held: a store that is slow to answer (or down) must not hold up
    // every other open of a store in this process.
    let first = open_backend(spec)?;
    let mut map = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    map.retain(|(_, w)| w.strong_count() > 0);
    if let Some(live) = map.iter().find(|(s, _)| s == spec).and_then(|(_, w)| w.upgrade()) {
        // Shared by another thread meanwhile: theirs it is (ours is closed).
        return Ok(live);
    }
    let described = Arc::new(OnceLock::new());
    let _ = described.set(describe(&first));
    let stats = Arc::new(Stats::default());
    let checkpoints = Arc::new(Checkpoints { limit: AtomicU64::new(WAL_LIMIT), restart_due: AtomicBool::new(false) });
    let (jobs, rx) = mpsc::channel();
    let writer = {
        let (spec, described, stats, limit) = (spec.to_string(), described.clone(), stats.clone(), checkpoints.clone());
        std::thread::Builder::new()
            .name("guardrail-store-writer".into())
            .spawn(move || write_loop(&spec, &described, &stats, &limit, &rx))
            .map_err(|source| StoreError::Io { path: "(group commit writer thread)".into(), source })?
    };
    let sqlite = matches!(first, Backend::Sqlite(_));
    let store = Arc::new(SharedStore {
        spec: spec.to_string(),
        sqlite,
        jobs,
        writer: Mutex::new(Some(writer)),
        readers: Mutex::new(vec![first]),
        described,
        stats,
        checkpoints,
    });
    map.push((spec.to_string(), Arc::downgrade(&store)));
    Ok(store)
}

/// A store shared by the threads of one process: one writer doing group commits, a pool of
/// read connections. See the module documentation and [`share`].
pub struct SharedStore {
    spec: String,
    /// A SQLite store: its outbox writes go through the writer.
    sqlite: bool,
    jobs: mpsc::Sender<Job>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Backend>>,
    described: Arc<OnceLock<String>>,
    stats: Arc<Stats>,
    /// A SQLite store's WAL limit, shared with its writer and checkpointer.
    checkpoints: Arc<Checkpoints>,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore").field("store", &self.described.get()).finish_non_exhaustive()
    }
}

/// How many group commits the writer made and how many records they carried.
#[derive(Debug, Default)]
struct Stats {
    commits: AtomicU64,
    records: AtomicU64,
}

/// Counters of a [`SharedStore`]'s writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupStats {
    /// Transactions committed with appended records (claims included).
    pub commits: u64,
    /// Records they appended.
    pub records: u64,
}

impl SharedStore {
    /// A handle for one user (a request): appends through the writer, reads through the pool.
    pub fn handle(self: &Arc<Self>) -> impl AuditStore + use<> {
        Handle { shared: self.clone(), reader: None, router: None, reusable: true }
    }

    /// The counters of the writer so far.
    pub fn stats(&self) -> GroupStats {
        GroupStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            records: self.stats.records.load(Ordering::Relaxed),
        }
    }

    /// Sets the WAL length (bytes of frames in the log) past which a SQLite store's WAL is
    /// restarted, between two group commits, once a passive checkpoint has found it longer
    /// (default 64 MiB): the next commit writes the file from its beginning again, so the file
    /// stays near this length (it passes it by what is written until the restart). No effect on
    /// PostgreSQL.
    pub fn set_wal_limit(&self, bytes: u64) {
        self.checkpoints.limit.store(bytes, Ordering::Relaxed);
    }

    fn submit<T>(&self, job: impl FnOnce(mpsc::SyncSender<Result<T, StoreError>>) -> Job) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let stopped =
            || StoreError::InvalidRecord("the store's group-commit writer has stopped; nothing was appended".into());
        self.jobs.send(job(reply)).map_err(|_| stopped())?;
        // A writer that drops the reply without answering panicked inside the batch: whatever
        // it was doing was not committed (the transaction rolls back with the connection).
        answer.recv().unwrap_or_else(|_| Err(stopped()))
    }
}

impl Drop for SharedStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has answered what is queued.
        self.jobs = mpsc::channel().0;
        // The idle connections are closed on a thread of their own: closing a PostgreSQL
        // connection blocks on its own runtime, which panics on a thread that drives async
        // tasks (a server drops its state there).
        let idle = std::mem::take(&mut *self.readers.lock().unwrap_or_else(PoisonError::into_inner));
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
        if let Some(w) = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = w.join();
        }
    }
}

fn describe(b: &Backend) -> String {
    match b {
        Backend::Sqlite(s) => s.describe(),
        Backend::Postgres(p) => p.describe(),
    }
}

/// What the writer is asked to do.
enum Job {
    /// One unit of work for the next group commit, and where its outcome goes.
    Append { work: Work, reply: mpsc::SyncSender<Result<Outcome, StoreError>> },
    /// An outbox write on a shared SQLite store, run on the writer's connection (or given the
    /// error opening it) after the batch's commit; it answers its caller itself.
    Run(Outboxed),
}

/// An outbox write queued for the writer ([`Job::Run`]).
type Outboxed = Box<dyn FnOnce(Result<&mut dyn AuditStore, StoreError>) + Send>;

impl Job {
    fn records(&self) -> usize {
        match self {
            Job::Append { work, .. } => work.unit.records(),
            Job::Run(_) => 0,
        }
    }
}

/// Group commits between two wake-ups of a shared SQLite store's checkpointer (a gate record
/// is a few pages, so the WAL stays around a few MiB at most).
const COMMITS_PER_CHECKPOINT: u32 = 32;

/// The WAL length (bytes of frames in the log) past which a shared SQLite store's WAL is
/// restarted after the checkpointer's passive pass ([`SharedStore::set_wal_limit`] changes it).
const WAL_LIMIT: u64 = 64 << 20;

/// The checkpointer of a shared SQLite store: on its own thread and connection, so the writer's
/// commits never wait for a checkpoint's fsyncs (inline, they were two more fsyncs for nearly
/// every group commit). Woken by the writer every [`COMMITS_PER_CHECKPOINT`] commits; passive
/// checkpoints while the store is shared, one truncating checkpoint when it stops (the WAL
/// short for the next process, as a CLI append leaves it).
///
/// A passive checkpoint copies frames only up to the oldest snapshot a reader holds, and the
/// writer starts the WAL over only once everything was copied and no reader uses the WAL. Under
/// constant load some reader always holds a snapshot, so that never happened and the WAL grew
/// without bound (hundreds of MB after a minute of proposals, every read slower as the WAL's
/// index grew: approval p99 181 ms against 71-80 ms after a manual checkpoint). So when the
/// log is still longer than the limit after a passive pass, the checkpointer asks the writer
/// ([`Checkpoints::restart_due`]) for a restarting checkpoint, and waits for it before its
/// next pass (two checkpoints never run at once: SQLite would refuse the second).
fn checkpointer(spec: String, wake: mpsc::Receiver<()>, shared: Arc<Checkpoints>) {
    let Ok(Backend::Sqlite(mut conn)) = open_backend(&spec) else { return };
    while wake.recv().is_ok() {
        // Coalesce the wake-ups queued meanwhile: one checkpoint covers them.
        while wake.try_recv().is_ok() {}
        if shared.restart_due.load(Ordering::Acquire) {
            continue;
        }
        let log = conn.checkpoint(CheckpointMode::Passive);
        if log.is_some_and(|bytes| bytes > shared.limit.load(Ordering::Relaxed)) {
            // A passive pass that could not copy the whole WAL (a reader's snapshot) leaves
            // the pages it copied unsynced in the database file; the restarting checkpoint
            // syncs the file first, and on the writer's thread that was tens of MB (measured
            // 40-115 ms with a 64 MiB WAL, every append waiting). Synced here, it only has
            // the few pages written since. (Best effort: SQLite syncs whatever is left.)
            if let Ok(f) = std::fs::File::open(conn.path()) {
                let _ = f.sync_data();
            }
            shared.restart_due.store(true, Ordering::Release);
        }
    }
    conn.checkpoint(CheckpointMode::Truncate);
}

/// What a shared SQLite store's writer and checkpointer share.
#[derive(Debug)]
struct Checkpoints {
    /// The log length past which the WAL is restarted ([`SharedStore::set_wal_limit`]).
    limit: AtomicU64,
    /// Set by the checkpointer after a passive pass that left the log past `limit`; the writer
    /// restarts it between two batches and clears it.
    restart_due: AtomicBool,
}

/// The writer's restarting checkpoint, between two batches, when the checkpointer asked for
/// one. Run here and not on the checkpointer's connection because a checkpoint that restarts
/// the WAL needs the write lock, and the writer, committing batch after batch, holds it nearly
/// all the time: the checkpointer's busy handler polled in vain (measured: most attempts ran
/// out their wait). Here the lock is free, the passive pass has already copied nearly
/// everything, and what is left is waiting for the readers still in the old WAL (reads of a
/// few ms; reads that start meanwhile read the database file). The next batch waits meanwhile
/// (and grows). A reader that outlasts the wait only postpones it to the checkpointer's next
/// pass. Restart, not truncate: truncating a 64 MiB WAL cost 20-36 ms in `ftruncate` on this
/// thread, every append waiting; a restarted WAL keeps its file and is overwritten from the
/// beginning, so the file stays bounded near the limit without being freed and grown again.
fn restart_if_due(backend: &mut Option<Backend>, shared: &Checkpoints) {
    if !shared.restart_due.load(Ordering::Acquire) {
        return;
    }
    if let Some(Backend::Sqlite(conn)) = backend {
        conn.checkpoint(CheckpointMode::Restart);
    }
    shared.restart_due.store(false, Ordering::Release);
}

fn write_loop(
    spec: &str,
    described: &OnceLock<String>,
    stats: &Stats,
    checkpoints_shared: &Arc<Checkpoints>,
    rx: &mpsc::Receiver<Job>,
) {
    let mut backend: Option<Backend> = None;
    let mut wake: Option<mpsc::Sender<()>> = None;
    let mut checkpoints: Option<JoinHandle<()>> = None;
    let mut since_checkpoint = 0u32;
    while let Ok(first) = rx.recv() {
        let mut n = first.records();
        let mut jobs = vec![first];
        while n < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.records();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        // A panic inside one batch (a router, a driver) must not stop the writer: its waiters
        // get an error (their reply senders are dropped) and the connection is reopened.
        let done = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_jobs(spec, described, stats, &mut backend, jobs);
        }));
        if done.is_err() {
            backend = None;
        }
        restart_if_due(&mut backend, checkpoints_shared);
        since_checkpoint += 1;
        if matches!(backend, Some(Backend::Sqlite(_))) && since_checkpoint >= COMMITS_PER_CHECKPOINT {
            since_checkpoint = 0;
            if wake.is_none() {
                let (tx, rx) = mpsc::channel();
                let (spec, shared) = (spec.to_string(), checkpoints_shared.clone());
                checkpoints = std::thread::Builder::new()
                    .name("guardrail-store-checkpoint".into())
                    .spawn(move || checkpointer(spec, rx, shared))
                    .ok();
                wake = checkpoints.as_ref().map(|_| tx);
            }
            if let Some(w) = &wake {
                let _ = w.send(());
            }
        }
    }
    // The writer's connection closes first, then the checkpointer truncates the WAL.
    drop(backend);
    drop(wake);
    if let Some(c) = checkpoints {
        let _ = c.join();
    }
}

/// One group commit of `jobs`, in arrival order: one transaction, one durable commit, then
/// every waiter answered with its own outcome (its records, a claim's holder, or its own
/// refusal) — or, when the transaction fails, all of them with the error.
fn run_jobs(spec: &str, described: &OnceLock<String>, stats: &Stats, backend: &mut Option<Backend>, jobs: Vec<Job>) {
    let mut replies = Vec::with_capacity(jobs.len());
    let mut work = Vec::with_capacity(jobs.len());
    let mut runs = Vec::new();
    for job in jobs {
        match job {
            Job::Append { work: w, reply } => {
                work.push(w);
                replies.push(reply);
            }
            Job::Run(f) => runs.push(f),
        }
    }
    commit(spec, described, stats, backend, work, replies);
    for f in runs {
        match connected(spec, described, backend) {
            Ok(b) => f(Ok(b.store())),
            Err(e) => f(Err(e)),
        }
    }
}

/// The group commit of `work`, each outcome to its reply.
fn commit(
    spec: &str,
    described: &OnceLock<String>,
    stats: &Stats,
    backend: &mut Option<Backend>,
    work: Vec<Work>,
    replies: Vec<mpsc::SyncSender<Result<Outcome, StoreError>>>,
) {
    if work.is_empty() {
        return;
    }
    match connected(spec, described, backend).and_then(|b| b.append_tx(work)) {
        Ok(outcomes) => {
            let appended: usize = outcomes
                .iter()
                .map(|o| match o {
                    Outcome::Appended(r) => r.len(),
                    Outcome::FirstHeld(..) => 1,
                    Outcome::Held(_) | Outcome::Refused(_) => 0,
                })
                .sum();
            if appended > 0 {
                count(stats, appended);
            }
            if outcomes.len() != replies.len() {
                // Cannot happen (one outcome per unit); answering anyway would misattribute.
                let e = Arc::new(StoreError::Corrupt {
                    seq: 0,
                    reason: "a group commit answered another number of appends than it was given".into(),
                });
                for reply in replies {
                    let _ = reply.send(Err(StoreError::GroupCommit(e.clone())));
                }
                return;
            }
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            // Reconnect for the next batch: the connection may be what failed.
            *backend = None;
            // Alone in its batch, the append gets the store's error as a single append would.
            if let [reply] = replies.as_slice() {
                let _ = reply.send(Err(e));
                return;
            }
            let e = Arc::new(e);
            for reply in replies {
                let _ = reply.send(Err(StoreError::GroupCommit(e.clone())));
            }
        }
    }
}

fn count(stats: &Stats, records: usize) {
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats.records.fetch_add(records as u64, Ordering::Relaxed);
}

/// The writer's connection, (re)opened when there is none.
fn connected<'b>(
    spec: &str,
    described: &OnceLock<String>,
    backend: &'b mut Option<Backend>,
) -> Result<&'b mut Backend, StoreError> {
    if backend.is_none() {
        let b = match open_backend(spec)? {
            Backend::Sqlite(s) => Backend::Sqlite(s.without_inline_checkpoint()),
            other => other,
        };
        let _ = described.set(describe(&b));
        *backend = Some(b);
    }
    // Set just above when it was not.
    backend.as_mut().ok_or_else(|| StoreError::InvalidRecord("no writer connection".into()))
}

/// One user's view of a [`SharedStore`]: appends through the writer, reads over a pooled
/// connection taken on first use and given back when the handle is dropped (unless it failed).
struct Handle {
    shared: Arc<SharedStore>,
    reader: Option<Backend>,
    router: Option<Arc<dyn OutboxRouter>>,
    reusable: bool,
}

impl Handle {
    fn read<T>(&mut self, f: impl FnOnce(&mut dyn AuditStore) -> Result<T, StoreError>) -> Result<T, StoreError> {
        if self.reader.is_none() {
            let idle = self.shared.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
            self.reader = Some(match idle {
                Some(b) => b,
                None => open_backend(&self.shared.spec)?,
            });
        }
        let Some(reader) = self.reader.as_mut() else {
            return Err(StoreError::InvalidRecord("no read connection".into()));
        };
        let r = f(reader.store());
        if matches!(r, Err(StoreError::Sqlite { .. } | StoreError::Postgres { .. } | StoreError::Io { .. })) {
            // The connection may be what failed: do not hand it to the next request.
            self.reusable = false;
        }
        r
    }
}

impl Handle {
    /// Queues `unit` for the next group commit and waits for its outcome.
    fn submit(&mut self, unit: Unit) -> Result<Outcome, StoreError> {
        let work = Work { unit, router: self.router.clone() };
        self.shared.submit(|reply| Job::Append { work, reply })
    }

    /// An outbox write: through the writer on SQLite (see the module documentation), on a
    /// pooled connection otherwise.
    fn write<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut dyn AuditStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if !self.shared.sqlite {
            return self.read(f);
        }
        self.shared.submit(|reply| {
            Job::Run(Box::new(move |store: Result<&mut dyn AuditStore, StoreError>| {
                let _ = reply.send(store.and_then(f));
            }))
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(b) = self.reader.take()
            && self.reusable
        {
            let mut idle = self.shared.readers.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(b);
            }
        }
    }
}

impl AuditStore for Handle {
    fn append(&mut self, draft: RecordDraft) -> Result<ChainedRecord, StoreError> {
        crate::one(self.append_batch(vec![draft])?)
    }

    fn append_batch(&mut self, drafts: Vec<RecordDraft>) -> Result<Vec<ChainedRecord>, StoreError> {
        // Checked here, so one request's bad draft never fails the others' group commit, and
        // serialised (the position-independent part hashed) on the caller's thread, not under
        // the writer's lock: the writer only seals.
        let drafts = crate::prepare(drafts)?;
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        self.submit(Unit::Records(drafts))?.appended()
    }

    fn append_claim(&mut self, draft: RecordDraft, claim: &str) -> Result<Claim, StoreError> {
        crate::validate_claim(&draft, claim)?;
        let draft = Box::new(Prepared::new(draft)?);
        self.submit(Unit::Claim(draft, claim.to_string()))?.claim()
    }

    fn append_linked(
        &mut self,
        first: RecordDraft,
        then: LinkedDraft,
    ) -> Result<(ChainedRecord, ChainedRecord), StoreError> {
        validate_draft(&first)?;
        let first = Box::new(Prepared::new(first)?);
        self.submit(Unit::Linked(first, then))?.linked()
    }

    fn append_then_claim(
        &mut self,
        first: RecordDraft,
        then: LinkedClaim,
    ) -> Result<(ChainedRecord, Claim), StoreError> {
        validate_draft(&first)?;
        let first = Box::new(Prepared::new(first)?);
        self.submit(Unit::LinkedClaim(first, then))?.then_claim()
    }

    fn append_guarded_claim(
        &mut self,
        first: RecordDraft,
        guard: ClaimGuard,
    ) -> Result<(ChainedRecord, Option<Claim>), StoreError> {
        validate_draft(&first)?;
        let first = Box::new(Prepared::new(first)?);
        self.submit(Unit::Guarded(first, guard))?.guarded()
    }

    fn get(&mut self, seq: i64) -> Result<Option<ChainedRecord>, StoreError> {
        self.read(|s| s.get(seq))
    }

    fn hash_at(&mut self, seq: i64) -> Result<Option<String>, StoreError> {
        self.read(|s| s.hash_at(seq))
    }

    fn find(&mut self, id_or_seq: &str) -> Result<Option<ChainedRecord>, StoreError> {
        self.read(|s| s.find(id_or_seq))
    }

    fn list(&mut self, query: &ListQuery) -> Result<Vec<ChainedRecord>, StoreError> {
        self.read(|s| s.list(query))
    }

    fn all(&mut self) -> Result<Vec<ChainedRecord>, StoreError> {
        self.read(|s| s.all())
    }

    fn records_after(&mut self, after: i64) -> Result<Vec<ChainedRecord>, StoreError> {
        self.read(|s| s.records_after(after))
    }

    fn verify(&mut self) -> Result<VerifyReport, StoreError> {
        self.read(|s| s.verify())
    }

    fn verify_at(&mut self, seq: i64) -> Result<(VerifyReport, Option<String>), StoreError> {
        self.read(|s| s.verify_at(seq))
    }

    fn describe(&self) -> String {
        match self.shared.described.get() {
            Some(d) => d.clone(),
            None => crate::redact_url(&self.shared.spec),
        }
    }

    fn set_outbox_router(&mut self, router: Option<Arc<dyn OutboxRouter>>) {
        self.router = router;
    }

    fn outbox_due(&mut self, now_ms: i64, limit: usize) -> Result<Vec<DueEntry>, StoreError> {
        self.read(|s| s.outbox_due(now_ms, limit))
    }

    fn outbox_lease(&mut self, id: i64, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        self.write(move |s| s.outbox_lease(id, now_ms, until_ms))
    }

    fn outbox_mark_delivered(&mut self, id: i64, reference: Option<&str>, now_ms: i64) -> Result<(), StoreError> {
        let reference = reference.map(str::to_string);
        self.write(move |s| s.outbox_mark_delivered(id, reference.as_deref(), now_ms))
    }

    fn outbox_mark_failed(&mut self, id: i64, attempts: u32, retry: Retry, error: &str) -> Result<(), StoreError> {
        let error = error.to_string();
        self.write(move |s| s.outbox_mark_failed(id, attempts, retry, &error))
    }

    fn outbox_lease_many(&mut self, ids: &[i64], now_ms: i64, until_ms: i64) -> Result<Vec<i64>, StoreError> {
        let ids = ids.to_vec();
        self.write(move |s| s.outbox_lease_many(&ids, now_ms, until_ms))
    }

    fn outbox_mark_many(&mut self, marks: &[crate::OutboxMark]) -> Result<(), StoreError> {
        let marks = marks.to_vec();
        self.write(move |s| s.outbox_mark_many(&marks))
    }

    fn outbox_retry_failed(&mut self, now_ms: i64) -> Result<u64, StoreError> {
        self.write(move |s| s.outbox_retry_failed(now_ms))
    }

    fn outbox_prune_delivered(&mut self, delivered_before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        self.write(move |s| s.outbox_prune_delivered(delivered_before_ms, limit))
    }

    fn outbox_status(&mut self) -> Result<OutboxStatus, StoreError> {
        self.read(|s| s.outbox_status())
    }

    fn outbox_entries(
        &mut self,
        record_seq: Option<i64>,
        state: Option<OutboxState>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.read(|s| s.outbox_entries(record_seq, state, limit))
    }

    fn outbox_reference(&mut self, channel: ChannelKind, ordering_key: &str) -> Result<Option<String>, StoreError> {
        self.read(|s| s.outbox_reference(channel, ordering_key))
    }
}
