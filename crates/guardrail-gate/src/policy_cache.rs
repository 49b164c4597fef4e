//! A cache of checked policy sets for `guardrail gate`, keyed by the policy file's path and
//! sha256 and by the binary that wrote it.
//!
//! Reading and checking a policy file is most of a gate run at fleet scale (a 10,000-rule file
//! is 3.6 MB of YAML), and a pipeline gates many deploys against the same file. After a run
//! that read the file and found no error, the set and its lint warnings are kept in
//! `$GUARDRAIL_CACHE_DIR` (else `$XDG_CACHE_HOME/guardrail`, else `~/.cache/guardrail`;
//! `GUARDRAIL_CACHE_DIR=off` turns it off); the next run on the same bytes at the same path, by
//! the same binary, reads the set from there instead of parsing the YAML again.
//!
//! Why that is safe to trust:
//! - The entry is in the same trust domain as the policy file: it is written by the user who
//!   runs the gate, in a directory only that user can write (created mode 0700; an entry in a
//!   directory or file that others may write is not read), mode 0600, through a temporary
//!   file and a rename (a reader sees a whole entry or none).
//! - It is used only for exactly the bytes it was made from: its key holds the policy text's
//!   sha256, its path, the binary's version and the binary's size and modification time (a
//!   rebuilt binary, whose checker may differ, never reads an older binary's entry).
//! - It is never trusted partly: the entry carries the sha256 of its own content, and an entry
//!   that is unreadable, corrupt, truncated, for other bytes or another binary is ignored and
//!   rebuilt from the text.
//! - Only sets without errors and without freeze or maintenance windows are kept, so a cached
//!   run decides with the same rules and prints the same warnings; a file with errors is always
//!   parsed (the errors, with their lines, come from the text).
//! - The decision record still holds the policy text and its sha256, and `guardrail replay`
//!   (like `policy lint` and the server) always parses the text: a cache entry can never make a
//!   record unverifiable or change what a replay decides.
//!
//! Nothing here is used unless the process turns it on ([`enable`]): only `guardrail gate` does,
//! and it waits for an entry being written before it exits ([`finish`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use guardrail_config::Source;
use guardrail_core::policy::PolicySet;
use sha2::{Digest, Sha256};

/// The first bytes of an entry, before its content's sha256. v2: the content is [`codec`]'s
/// binary form (v1 was JSON: decoding it was most of a warm 10,000-rule run's reading).
const MAGIC: &str = "guardrail-policy-cache v2 ";

static CACHE: OnceLock<Option<Cache>> = OnceLock::new();

/// The size of a policy file from which [`Cache::prefetch`] reads its entry on a thread of its
/// own (~300 rules).
const PREFETCH_FROM_BYTES: u64 = 100 << 10;

/// The entry being read in the background ([`Cache::prefetch`]): its file, and the reading.
type Prefetch = (PathBuf, std::thread::JoinHandle<Option<Entry>>);
static PREFETCH: Mutex<Option<Prefetch>> = Mutex::new(None);

/// The entry being written in the background ([`Cache::put_in_background`]).
static PENDING: Mutex<Option<std::thread::JoinHandle<()>>> = Mutex::new(None);

/// Where entries are kept, and the identity of this binary.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    binary: String,
}

/// The directory `env` names for the cache (`None`: off, or no home to put it in).
pub fn dir_from(env: crate::inputs::EnvLookup<'_>) -> Option<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    match set("GUARDRAIL_CACHE_DIR") {
        Some(v) if v.trim() == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => set("XDG_CACHE_HOME")
            .map(|x| PathBuf::from(x).join("guardrail"))
            .or_else(|| set("HOME").map(|h| PathBuf::from(h).join(".cache").join("guardrail"))),
    }
}

/// Turns the cache on for this process (the first call wins), in the directory `env` names.
/// Without an identity for the running binary it stays off.
pub fn enable(env: crate::inputs::EnvLookup<'_>) {
    CACHE.get_or_init(|| Cache::new(dir_from(env)?));
}

/// Waits for an entry being written by [`Cache::put_in_background`], if any: a process that
/// turned the cache on calls it before it exits (an entry cut short would only leave a
/// temporary file behind, never a partial entry).
pub fn finish() {
    let pending = PENDING.lock().ok().and_then(|mut p| p.take());
    if let Some(h) = pending {
        let _ = h.join();
    }
}

/// The cache, when this process turned it on.
pub fn active() -> Option<&'static Cache> {
    CACHE.get().and_then(Option::as_ref)
}

impl Cache {
    /// A cache in `dir` for the running binary (`None` when the binary cannot be identified).
    pub fn new(dir: PathBuf) -> Option<Cache> {
        use std::os::unix::fs::MetadataExt;
        let exe = std::env::current_exe().ok()?;
        let meta = std::fs::metadata(&exe).ok()?;
        let binary = format!(
            "guardrail {} {} {} {}.{}",
            env!("CARGO_PKG_VERSION"),
            exe.display(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        Some(Cache { dir, binary })
    }

    /// The entry's file for the policy file at `path`: one per policy path and binary (a new
    /// version of the file replaces the entry of the last one).
    fn file(&self, path: &Path) -> PathBuf {
        let mut h = Sha256::new();
        h.update(self.binary.as_bytes());
        h.update([0]);
        h.update(path.as_os_str().as_encoded_bytes());
        self.dir.join(format!("policies-{}.bin", hex::encode(&h.finalize()[..16])))
    }

    /// The checked set and its warnings for exactly `src`, if an intact entry has them (read by
    /// [`Cache::prefetch`] when it was asked for this file, else now).
    pub fn get(&self, src: &Source) -> Option<(PolicySet, Vec<String>)> {
        let file = self.file(&src.path);
        let prefetched = PREFETCH.lock().ok().and_then(|mut p| p.take()).filter(|(f, _)| *f == file);
        let entry = match prefetched {
            Some((_, reading)) => reading.join().ok()?,
            None => read_entry(&file),
        }?;
        // Only for what it was made from: this binary, this path, these bytes.
        let ours = entry.binary == self.binary && entry.path == path_text(&src.path) && entry.sha256 == src.sha256;
        ours.then_some((entry.set, entry.warnings))
    }

    /// Starts reading and decoding the entry for the policy file at `path` on a thread of its
    /// own, for the [`Cache::get`] of that file: the run reads the inputs and hashes them
    /// meanwhile (at 10,000 rules, 3.6 MB of policy text to hash and a 2.3 MB entry to check and
    /// decode). What it reads is trusted only as `get` trusts an entry: same binary, path and
    /// sha256. When no thread can be started, `get` reads the entry itself.
    pub fn prefetch(&self, path: &Path) {
        // A small file is read and hashed in less time than a thread takes to start.
        if std::fs::metadata(path).map_or(true, |m| m.len() < PREFETCH_FROM_BYTES) {
            return;
        }
        let file = self.file(path);
        let Ok(mut slot) = PREFETCH.lock() else { return };
        let reading = {
            let file = file.clone();
            std::thread::Builder::new().name("policy-cache-read".into()).spawn(move || read_entry(&file))
        };
        *slot = reading.ok().map(|r| (file, r));
    }

    /// [`Cache::put`] on a thread of its own, so that a run that parsed the file does not
    /// wait for the entry (serialising a 10,000-rule set is a few percent of such a run):
    /// [`finish`] waits for it before the process exits. When no thread can be started, nothing
    /// is kept.
    pub fn put_in_background(&self, src: &Source, set: &PolicySet, warnings: &[String]) {
        let (cache, src, set, warnings) = (self.clone(), src.clone(), set.clone(), warnings.to_vec());
        let Ok(mut pending) = PENDING.lock() else { return };
        if let Some(earlier) = pending.take() {
            let _ = earlier.join();
        }
        let spawned =
            std::thread::Builder::new().name("policy-cache".into()).spawn(move || cache.put(&src, &set, &warnings));
        *pending = spawned.ok();
    }

    /// Keeps `set` and `warnings` for `src` (best effort: a cache that cannot be written is
    /// only slower).
    pub fn put(&self, src: &Source, set: &PolicySet, warnings: &[String]) {
        let mut w = codec::Writer::default();
        w.str(&self.binary);
        w.str(&path_text(&src.path));
        w.str(&src.sha256);
        w.set(set);
        w.strings(warnings);
        let _ = write_private(&self.dir, &self.file(&src.path), &w.0);
    }
}

/// An intact entry as read: what it was made from, the set and the warnings.
struct Entry {
    binary: String,
    path: String,
    sha256: String,
    set: PolicySet,
    warnings: Vec<String>,
}

/// The entry in `file`, if it is private, checksummed and whole.
fn read_entry(file: &Path) -> Option<Entry> {
    let bytes = read_private(file)?;
    let rest = bytes.strip_prefix(MAGIC.as_bytes())?;
    let (sum, content) = (rest.get(..64)?, rest.get(65..)?);
    if rest.get(64) != Some(&b'\n') || hex::encode(Sha256::digest(content)).as_bytes() != sum {
        return None;
    }
    let mut r = codec::Reader::new(content);
    let (binary, path, sha256) = (r.str()?.to_owned(), r.str()?.to_owned(), r.str()?.to_owned());
    let set = r.set()?;
    let warnings = r.strings()?;
    r.finished().then_some(Entry { binary, path, sha256, set, warnings })
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// The file's bytes, when it and its directory can be written by their owner only.
fn read_private(file: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let dir = std::fs::metadata(file.parent()?).ok()?;
    let mut f = std::fs::File::open(file).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.mode() & 0o022 != 0 || dir.mode() & 0o022 != 0 {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).ok()?.saturating_add(1));
    f.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// Writes `MAGIC sha256\ncontent` to `file` through a temporary file and a rename, mode 0600,
/// in `dir` (created mode 0700).
fn write_private(dir: &Path, file: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let tmp = dir.join(format!(".tmp-{}-{nanos}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(MAGIC.as_bytes())?;
        f.write_all(hex::encode(Sha256::digest(content)).as_bytes())?;
        f.write_all(b"\n")?;
        f.write_all(content)?;
        std::fs::rename(&tmp, file)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The entry's binary form: what it was made from (binary, path, sha256), the checked set and the
/// warnings, every field in declaration order; strings as a little-endian `u32` length and their
/// UTF-8 bytes, numbers little-endian (floats by their bits: exact), enums as one byte, options
/// and threshold shapes by a tag byte. Reading is strict: a bad tag, a short or overlong entry, a
/// string that is not UTF-8 is no entry (the text is parsed instead). A change to the set's types
/// does not compile here until this is updated (the structs are built and taken apart whole);
/// MAGIC's version and the binary's identity in the key keep an older entry from being read.
mod codec {
    use guardrail_core::policy::{Action, Condition, DefaultRule, Operator, Policy, PolicySet, Scalar, Threshold};

    const ACTIONS: [Action; 4] = [Action::Allow, Action::Warn, Action::Delay, Action::Block];
    const OPERATORS: [Operator; 7] =
        [Operator::Lt, Operator::Lte, Operator::Gt, Operator::Gte, Operator::Eq, Operator::Neq, Operator::In];

    #[derive(Default)]
    pub(super) struct Writer(pub(super) Vec<u8>);

    impl Writer {
        fn u8(&mut self, v: u8) {
            self.0.push(v);
        }
        fn u32(&mut self, v: usize) {
            // Lengths and counts of a policy file that was read whole into memory.
            self.0.extend_from_slice(&u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes());
        }
        pub(super) fn str(&mut self, s: &str) {
            self.u32(s.len());
            self.0.extend_from_slice(s.as_bytes());
        }
        fn opt_str(&mut self, s: &Option<String>) {
            match s {
                None => self.u8(0),
                Some(s) => {
                    self.u8(1);
                    self.str(s);
                }
            }
        }
        pub(super) fn strings(&mut self, v: &[String]) {
            self.u32(v.len());
            for s in v {
                self.str(s);
            }
        }
        fn action(&mut self, a: Action) {
            self.u8(ACTIONS.iter().position(|x| *x == a).unwrap_or(0) as u8);
        }
        fn scalar(&mut self, s: &Scalar) {
            match s {
                Scalar::Number(n) => {
                    self.u8(0);
                    self.0.extend_from_slice(&n.to_bits().to_le_bytes());
                }
                Scalar::Bool(b) => {
                    self.u8(1);
                    self.u8(u8::from(*b));
                }
                Scalar::Text(t) => {
                    self.u8(2);
                    self.str(t);
                }
            }
        }
        pub(super) fn set(&mut self, set: &PolicySet) {
            let PolicySet { version, description, policies, default_action } = set;
            self.opt_str(version);
            self.opt_str(description);
            self.u32(policies.len());
            for p in policies {
                let Policy { id, name, priority, action, conditions, reason, remediation, delay_minutes } = p;
                self.str(id);
                self.str(name);
                self.0.extend_from_slice(&priority.to_le_bytes());
                self.action(*action);
                self.u32(conditions.len());
                for Condition { signal, operator, value } in conditions {
                    self.str(signal);
                    self.u8(OPERATORS.iter().position(|x| x == operator).unwrap_or(0) as u8);
                    match value {
                        Threshold::Scalar(s) => {
                            self.u8(0);
                            self.scalar(s);
                        }
                        Threshold::List(items) => {
                            self.u8(1);
                            self.u32(items.len());
                            for s in items {
                                self.scalar(s);
                            }
                        }
                        Threshold::Services { services } => {
                            self.u8(2);
                            self.strings(services);
                        }
                    }
                }
                self.str(reason);
                self.str(remediation);
                self.0.extend_from_slice(&delay_minutes.to_le_bytes());
            }
            match default_action {
                None => self.u8(0),
                Some(DefaultRule { action, reason, remediation, delay_minutes }) => {
                    self.u8(1);
                    self.action(*action);
                    self.str(reason);
                    self.str(remediation);
                    self.0.extend_from_slice(&delay_minutes.to_le_bytes());
                }
            }
        }
    }

    pub(super) struct Reader<'a> {
        rest: &'a [u8],
    }

    impl<'a> Reader<'a> {
        pub(super) fn new(bytes: &'a [u8]) -> Reader<'a> {
            Reader { rest: bytes }
        }
        pub(super) fn finished(&self) -> bool {
            self.rest.is_empty()
        }
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let (head, rest) = self.rest.split_at_checked(n)?;
            self.rest = rest;
            Some(head)
        }
        fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
            self.take(N)?.try_into().ok()
        }
        fn u8(&mut self) -> Option<u8> {
            Some(self.take(1)?[0])
        }
        fn len(&mut self) -> Option<usize> {
            usize::try_from(u32::from_le_bytes(self.array()?)).ok()
        }
        /// A count of items of at least `min` bytes each: never more than the bytes left could
        /// hold (so a damaged count cannot reserve gigabytes).
        fn count(&mut self, min: usize) -> Option<usize> {
            let n = self.len()?;
            (n.saturating_mul(min) <= self.rest.len()).then_some(n)
        }
        /// `n` items read by `item`, into a vector of exactly that capacity. (Collecting the
        /// `Option`s would grow it by doubling from empty, its size hint being 0: at 1,000 rules
        /// the policies' reallocations alone touched two fresh 2 MiB pages of the allocator's
        /// arena, each zeroed by the kernel, on the critical path of a warm gate.) `n` comes
        /// from [`Self::count`], so the capacity is bounded by the bytes left.
        fn items<T>(&mut self, n: usize, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(item(self)?);
            }
            Some(items)
        }
        pub(super) fn str(&mut self) -> Option<&'a str> {
            let n = self.len()?;
            std::str::from_utf8(self.take(n)?).ok()
        }
        fn string(&mut self) -> Option<String> {
            self.str().map(str::to_owned)
        }
        fn opt_string(&mut self) -> Option<Option<String>> {
            match self.u8()? {
                0 => Some(None),
                1 => self.string().map(Some),
                _ => None,
            }
        }
        pub(super) fn strings(&mut self) -> Option<Vec<String>> {
            let n = self.count(4)?;
            self.items(n, Self::string)
        }
        fn action(&mut self) -> Option<Action> {
            ACTIONS.get(usize::from(self.u8()?)).copied()
        }
        fn scalar(&mut self) -> Option<Scalar> {
            Some(match self.u8()? {
                0 => Scalar::Number(f64::from_bits(u64::from_le_bytes(self.array()?))),
                1 => match self.u8()? {
                    0 => Scalar::Bool(false),
                    1 => Scalar::Bool(true),
                    _ => return None,
                },
                2 => Scalar::Text(self.string()?),
                _ => return None,
            })
        }
        fn condition(&mut self) -> Option<Condition> {
            let signal = self.string()?;
            let operator = *OPERATORS.get(usize::from(self.u8()?))?;
            let value = match self.u8()? {
                0 => Threshold::Scalar(self.scalar()?),
                1 => {
                    let n = self.count(2)?;
                    Threshold::List(self.items(n, Self::scalar)?)
                }
                2 => Threshold::Services { services: self.strings()? },
                _ => return None,
            };
            Some(Condition { signal, operator, value })
        }
        fn policy(&mut self) -> Option<Policy> {
            let id = self.string()?;
            let name = self.string()?;
            let priority = i64::from_le_bytes(self.array()?);
            let action = self.action()?;
            let n = self.count(6)?;
            let conditions = self.items(n, Self::condition)?;
            let reason = self.string()?;
            let remediation = self.string()?;
            let delay_minutes = u32::from_le_bytes(self.array()?);
            Some(Policy { id, name, priority, action, conditions, reason, remediation, delay_minutes })
        }
        pub(super) fn set(&mut self) -> Option<PolicySet> {
            let version = self.opt_string()?;
            let description = self.opt_string()?;
            let n = self.count(25)?;
            let policies = self.items(n, Self::policy)?;
            let default_action = match self.u8()? {
                0 => None,
                1 => {
                    let action = self.action()?;
                    let reason = self.string()?;
                    let remediation = self.string()?;
                    let delay_minutes = u32::from_le_bytes(self.array()?);
                    Some(DefaultRule { action, reason, remediation, delay_minutes })
                }
                _ => return None,
            };
            Some(PolicySet { version, description, policies, default_action })
        }
    }
}
