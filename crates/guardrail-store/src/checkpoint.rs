//! Signed checkpoints of a store's chain: the I/O around the pure formats of
//! [`guardrail_checkpoint`] — reading key files, signing the chain a store holds, comparing a
//! checkpoint with it, and writing checkpoint files atomically.
//!
//! Signing verifies the whole chain first and refuses a broken one: a checkpoint must never
//! vouch for records that already fail verification.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use guardrail_checkpoint::{
    Checkpoint, CheckpointError, KeyError, PrefixProblem, PrefixReport, SigningKey, VerifierKey,
};
use guardrail_core::audit::{ChainBreak, GENESIS_HASH, VerifyReport};

use crate::{AuditStore, StoreError};

/// Largest key or checkpoint file read (a checkpoint with a hundred signatures is ~10 KiB):
/// a larger file is refused before it is parsed.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What went wrong reading keys, signing or writing checkpoints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointFileError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than [`MAX_FILE_BYTES`] or not UTF-8 text.
    #[error("{}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key file does not hold a valid key.
    #[error("{}: {source}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: KeyError,
    },
    /// A key file to be created exists already.
    #[error("{} already exists; refusing to overwrite a key (move it away or choose another prefix)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The chain does not verify, so it is not signed.
    #[error(
        "the audit chain in {store} is broken ({} problem(s), first at record {}: {}); refusing to sign a checkpoint of it",
        breaks.len(), breaks.first().map_or(0, |b| b.seq), breaks.first().map_or("", |b| b.problem.as_str())
    )]
    ChainBroken {
        /// The store.
        store: String,
        /// Every problem `verify` found.
        breaks: Vec<ChainBreak>,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checkpoint could not be made (should not happen with a verified chain).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// Reads a text file of at most [`MAX_FILE_BYTES`].
pub fn read_small_text(path: &Path) -> Result<String, CheckpointFileError> {
    let io = |source| CheckpointFileError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_FILE_BYTES + 1), &mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(CheckpointFileError::Unreadable {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_FILE_BYTES} bytes; not a key or checkpoint"),
        });
    }
    String::from_utf8(bytes)
        .map_err(|_| CheckpointFileError::Unreadable { path: path.to_path_buf(), reason: "not UTF-8 text".into() })
}

/// Reads a private key file (`PRIVATE+KEY+…`).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, CheckpointFileError> {
    SigningKey::parse(&read_small_text(path)?)
        .map_err(|source| CheckpointFileError::Key { path: path.to_path_buf(), source })
}

/// The permission bits of a private key file that others than its owner may read or write
/// (`Some(mode)`), for a warning: `keygen` creates it 0600, but a copy made from a CI secret
/// often gets the umask's 0644. `None` when only the owner can, or off Unix.
pub fn exposed_key_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Reads a verifier key file (`<name>+<key id>+<key>`).
pub fn load_verifier_key(path: &Path) -> Result<VerifierKey, CheckpointFileError> {
    VerifierKey::parse(&read_small_text(path)?)
        .map_err(|source| CheckpointFileError::Key { path: path.to_path_buf(), source })
}

/// A checkpoint signed for a store: the checkpoint and the note text.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    /// What was signed.
    pub checkpoint: Checkpoint,
    /// The signed note (the file's content).
    pub note: String,
}

/// Verifies the chain `store` holds and signs its checkpoint with `key` (origin: the key's
/// name). Refuses a chain that does not verify.
pub fn sign_store(store: &mut dyn AuditStore, key: &SigningKey) -> Result<SignedCheckpoint, CheckpointFileError> {
    let report = store.verify()?;
    if !report.ok() {
        return Err(CheckpointFileError::ChainBroken { store: store.describe(), breaks: report.breaks });
    }
    let head = report.head.as_deref().unwrap_or(GENESIS_HASH);
    let checkpoint = Checkpoint::new(key.name(), report.records as u64, head)?;
    let note = checkpoint.sign(key)?;
    Ok(SignedCheckpoint { checkpoint, note })
}

/// A store compared with a checkpoint: the chain's own verification, and whether it still
/// holds the checkpoint's records.
#[derive(Debug, Clone)]
pub struct CheckpointComparison {
    /// The chain's own verification (links, hashes, head anchor).
    pub report: VerifyReport,
    /// Whether record `size` still carries the signed hash.
    pub prefix: Result<PrefixReport, PrefixProblem>,
}

impl CheckpointComparison {
    /// Both hold: the chain verifies and extends the checkpoint.
    pub fn ok(&self) -> bool {
        self.report.ok() && self.prefix.is_ok()
    }

    /// Breaks found by the chain's own verification within the signed records (seq <= size):
    /// those records are not the signed ones even if record `size` kept its hash.
    pub fn breaks_within(&self, size: u64) -> Vec<&ChainBreak> {
        self.report.breaks.iter().filter(|b| u64::try_from(b.seq).is_ok_and(|s| s <= size)).collect()
    }
}

/// Compares `checkpoint` with the chain `store` holds, from one read.
pub fn compare_store(store: &mut dyn AuditStore, checkpoint: &Checkpoint) -> Result<CheckpointComparison, StoreError> {
    let seq = i64::try_from(checkpoint.size).unwrap_or(i64::MAX);
    let (report, hash) = store.verify_at(seq)?;
    let prefix = guardrail_checkpoint::check_prefix(checkpoint, report.records as u64, hash.as_deref());
    Ok(CheckpointComparison { report, prefix })
}

/// Writes `content` to `path` atomically: a temporary file in the same directory, flushed to
/// disk, renamed over `path`, and the directory entry flushed; a reader sees the old file or
/// the new one, never a part.
pub fn write_atomic(path: &Path, content: &str) -> Result<(), CheckpointFileError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CheckpointFileError::Io { path: p.clone(), source }
    };
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let written = file.write_all(content.as_bytes()).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    crate::mirror::sync_dir(dir).map_err(CheckpointFileError::Store)
}

/// Writes `signed` into `dir` (created if missing) as `checkpoint-<size>.txt` and `latest`,
/// each atomically, and returns the numbered file's path.
pub fn write_to_dir(dir: &Path, signed: &SignedCheckpoint) -> Result<PathBuf, CheckpointFileError> {
    std::fs::create_dir_all(dir).map_err(|source| CheckpointFileError::Io { path: dir.to_path_buf(), source })?;
    let numbered = dir.join(format!("checkpoint-{}.txt", signed.checkpoint.size));
    write_atomic(&numbered, &signed.note)?;
    write_atomic(&dir.join("latest"), &signed.note)?;
    Ok(numbered)
}

/// Creates `path` with `content`, failing if it exists; with `private`, readable by the owner
/// only (mode 0600 on Unix, set at creation, so the key is never readable by others).
pub fn create_new(path: &Path, content: &str, private: bool) -> Result<(), CheckpointFileError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = opts.open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => CheckpointFileError::Exists { path: path.to_path_buf() },
        _ => CheckpointFileError::Io { path: path.to_path_buf(), source },
    })?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| CheckpointFileError::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("latest");
        write_atomic(&p, "one\n").unwrap();
        write_atomic(&p, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("latest")]);
    }

    #[test]
    fn create_new_refuses_to_overwrite_and_keeps_keys_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        create_new(&p, "secret\n", true).unwrap();
        assert!(matches!(create_new(&p, "other\n", true), Err(CheckpointFileError::Exists { .. })));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "secret\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(exposed_key_mode(&p), None);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(exposed_key_mode(&p), Some(0o644));
        }
    }

    #[test]
    fn oversized_files_are_refused_unparsed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, "a".repeat(MAX_FILE_BYTES as usize + 1)).unwrap();
        assert!(matches!(load_verifier_key(&p), Err(CheckpointFileError::Unreadable { .. })));
    }
}
