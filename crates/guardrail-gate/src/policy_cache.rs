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
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first bytes of an entry, before its content's sha256.
const MAGIC: &str = "guardrail-policy-cache v1 ";

static CACHE: OnceLock<Option<Cache>> = OnceLock::new();

/// The entry being written in the background ([`Cache::put_in_background`]).
static PENDING: Mutex<Option<std::thread::JoinHandle<()>>> = Mutex::new(None);

/// Where entries are kept, and the identity of this binary.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    binary: String,
}

/// One entry: what it was made from, and the checked set with its warnings.
#[derive(Serialize, Deserialize)]
struct Entry {
    binary: String,
    path: String,
    sha256: String,
    set: PolicySet,
    warnings: Vec<String>,
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

    /// The entry's file for `src`: one per policy path and binary (a new version of the file
    /// replaces the entry of the last one).
    fn file(&self, src: &Source) -> PathBuf {
        let mut h = Sha256::new();
        h.update(self.binary.as_bytes());
        h.update([0]);
        h.update(src.path.as_os_str().as_encoded_bytes());
        self.dir.join(format!("policies-{}.json", hex::encode(&h.finalize()[..16])))
    }

    /// The checked set and its warnings for exactly `src`, if an intact entry has them.
    pub fn get(&self, src: &Source) -> Option<(PolicySet, Vec<String>)> {
        let bytes = read_private(&self.file(src))?;
        let rest = bytes.strip_prefix(MAGIC.as_bytes())?;
        let (sum, content) = (rest.get(..64)?, rest.get(65..)?);
        if rest.get(64) != Some(&b'\n') || hex::encode(Sha256::digest(content)).as_bytes() != sum {
            return None;
        }
        let e: Entry = serde_json::from_slice(content).ok()?;
        let ours = e.binary == self.binary && e.sha256 == src.sha256 && e.path == path_text(&src.path);
        ours.then_some((e.set, e.warnings))
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
        #[derive(Serialize)]
        struct EntryRef<'a> {
            binary: &'a str,
            path: String,
            sha256: &'a str,
            set: &'a PolicySet,
            warnings: &'a [String],
        }
        let entry = EntryRef { binary: &self.binary, path: path_text(&src.path), sha256: &src.sha256, set, warnings };
        let Ok(content) = serde_json::to_vec(&entry) else { return };
        let _ = write_private(&self.dir, &self.file(src), &content);
    }
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
