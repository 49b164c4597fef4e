//! A VFS that coalesces the contiguous writes of a WAL file into one `pwrite`.
//!
//! SQLite writes a WAL frame as two writes, its 24-byte header and then its page, so a 10,000-rule
//! gate record (~2,100 frames of 4 KiB) costs ~4,200 `pwrite`s. This VFS wraps the default
//! (unix) VFS: for a file opened with `SQLITE_OPEN_WAL` it copies contiguous writes into one
//! buffer and writes the buffer with one call of the wrapped file's `xWrite`. Every other file
//! (the database, journals, temporary files) goes straight through.
//!
//! When the buffer is written (flushed):
//! - before any other method on that file runs (`xRead`, `xSync`, `xTruncate`, `xFileSize`,
//!   `xClose`, the locks, `xFileControl`, `xSectorSize`, `xShm*`, `xFetch`, …), so the wrapped
//!   file never sees a call that could observe bytes still in the buffer;
//! - before a write that does not continue the buffer, or would take it past [`CAP`];
//! - right after the page of a commit frame (a frame header whose "database size after commit"
//!   is not zero). SQLite publishes a commit in the shared wal-index right after writing its
//!   frames; under `synchronous=FULL` an `xSync` of the WAL comes first (which flushes anyway),
//!   but under `NORMAL` or `OFF` nothing touches the WAL file in between, and another
//!   connection would then read frames that are not in the file yet. Flushing at the commit
//!   frame keeps the buffer to frames no other connection can see.
//!
//! Fail closed: a failed or short flush is the SQLite error of the call that triggered it (the
//! wrapped `xWrite` turns a short `pwrite` into `SQLITE_FULL` or `SQLITE_IOERR_WRITE`), and the
//! buffered bytes are dropped, so no later call can report them written. The methods whose result
//! SQLite ignores (`xUnlock`, `xClose`, `xShmBarrier`, …) can only find uncommitted frames in the
//! buffer, because a commit frame was flushed by the write that completed it.
//!
//! Registered once, not as the default VFS: open a connection with
//! `Connection::open_with_flags_and_vfs(path, flags, wal_vfs::name()?)`.

use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name this VFS is registered under.
const NAME: &CStr = c"guardrail-wal-coalesce";

/// The most a WAL buffer holds before it is flushed: 16 MiB, about two 10,000-rule gate records
/// (an 8.5 MB record is ~8.7 MB of frames). A single write this large goes straight through.
/// Must stay below `i32::MAX`, the most one `xWrite` can take.
pub(crate) const CAP: usize = 16 << 20;

/// The most one flush hands the wrapped `xWrite` at a time: the unix VFS's limit (see
/// [`File::flush`]) rounded down to 4 KiB.
const CHUNK: usize = 0x1f000;

/// Capacity a buffer keeps after a flush; a larger one is freed, so a long-lived connection
/// does not hold on to the memory of its largest transaction.
const KEEP: usize = 1 << 20;

/// Size of a WAL frame header and of the WAL file header (SQLite's WAL file format).
const FRAME_HEADER: usize = 24;
const WAL_HEADER: i64 = 32;

/// The registered VFS, or the SQLite error that prevented its registration.
static REGISTERED: OnceLock<Result<(), c_int>> = OnceLock::new();

/// The wrapped VFS (the default VFS when this one was registered). Set once, before
/// registration, and never freed (SQLite's built-in VFSes live as long as the process).
static INNER: OnceLock<InnerVfs> = OnceLock::new();

struct InnerVfs(*mut ffi::sqlite3_vfs);
// SAFETY: a VFS object is immutable after registration and SQLite calls it from any thread
// (the unix VFS is thread-safe); the pointer is only read.
unsafe impl Send for InnerVfs {}
unsafe impl Sync for InnerVfs {}

/// Registers the VFS (once per process; later calls return the same result) and returns its
/// name, for `Connection::open_with_flags_and_vfs`.
///
/// Fails when SQLite has no default VFS or rejects the registration.
pub(crate) fn name() -> Result<&'static CStr, rusqlite::Error> {
    match REGISTERED.get_or_init(register) {
        Ok(()) => Ok(NAME),
        Err(code) => Err(rusqlite::Error::SqliteFailure(ffi::Error::new(*code), None)),
    }
}

fn register() -> Result<(), c_int> {
    // SAFETY: sqlite3_initialize is idempotent and thread-safe; a null name asks for the
    // default VFS, which SQLite never frees.
    let inner = unsafe {
        let rc = ffi::sqlite3_initialize();
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
        ffi::sqlite3_vfs_find(ptr::null())
    };
    if inner.is_null() {
        return Err(ffi::SQLITE_ERROR);
    }
    let inner = INNER.get_or_init(|| InnerVfs(inner)).0;
    // SAFETY: `inner` is a live VFS object (see above).
    let base = unsafe { *inner };
    let inner_size = usize::try_from(base.szOsFile).map_err(|_| ffi::SQLITE_ERROR)?;
    let size = c_int::try_from(inner_offset() + round8(inner_size)).map_err(|_| ffi::SQLITE_ERROR)?;
    // Everything but xOpen (and the file size and name) is the wrapped VFS's own: those methods
    // get this VFS's object, whose mxPathname and pAppData are copied from the wrapped one.
    let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
        szOsFile: size,
        pNext: ptr::null_mut(),
        zName: NAME.as_ptr(),
        xOpen: Some(x_open),
        ..base
    }));
    // SAFETY: `vfs` is leaked, so it outlives every connection; 0 = not the default VFS.
    let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 0) };
    if rc == ffi::SQLITE_OK { Ok(()) } else { Err(rc) }
}

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Where the wrapped file starts in the memory SQLite allocates for one of ours (8-aligned, as
/// SQLite aligns file objects).
fn inner_offset() -> usize {
    round8(std::mem::size_of::<File>())
}

/// One open file: SQLite's `sqlite3_file` header (so a pointer to it is a pointer to this), the
/// wrapped file (in the same allocation, after this struct) and the WAL buffer.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// Whether writes are buffered (a WAL file).
    coalesce: bool,
    /// The last write was the header of a commit frame: flush after the next write (its page).
    commit_pending: bool,
    /// The error of a flush run by a method that cannot report one (`xShmBarrier`, …), for the
    /// next method that can: the dropped bytes must fail their transaction.
    poisoned: c_int,
    /// File offset of the buffer's first byte.
    start: i64,
    buf: Buffer,
}

/// The bytes of contiguous writes, in blocks of [`CHUNK`] bytes (each block one `xWrite` when
/// flushed): growing it never copies what it holds, and it touches its memory once.
#[derive(Default)]
struct Buffer {
    blocks: Vec<Vec<u8>>,
    /// Emptied blocks kept for the next transaction (at most [`KEEP`] bytes of them).
    spare: Vec<Vec<u8>>,
    len: usize,
}

impl Buffer {
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn extend(&mut self, mut data: &[u8]) {
        self.len += data.len();
        while !data.is_empty() {
            let block = match self.blocks.last_mut() {
                Some(b) if b.len() < CHUNK => b,
                _ => {
                    let block = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(CHUNK));
                    self.blocks.push(block);
                    // Just pushed, so there is a last block.
                    let Some(b) = self.blocks.last_mut() else { return };
                    b
                }
            };
            let take = (CHUNK - block.len()).min(data.len());
            block.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Empties the buffer, keeping up to [`KEEP`] bytes of blocks for reuse.
    fn clear(&mut self) {
        self.len = 0;
        for mut block in self.blocks.drain(..) {
            if self.spare.len() * CHUNK < KEEP {
                block.clear();
                self.spare.push(block);
            }
        }
    }
}

impl File {
    /// Writes the buffer through the wrapped `xWrite` and empties it; the buffered bytes are
    /// dropped even when the write fails (SQLite then fails the transaction).
    ///
    /// The unix VFS writes at most 128 KiB - 1 per call (it masks the length with `0x1ffff`),
    /// so the buffer goes out in [`CHUNK`]-sized calls: ~70 `pwrite`s for an 8.5 MB record
    /// instead of ~4,200.
    ///
    /// # Safety
    /// `self.inner` must be an open file.
    unsafe fn flush(&mut self) -> c_int {
        if self.buf.is_empty() {
            return ffi::SQLITE_OK;
        }
        let mut rc = ffi::SQLITE_OK;
        let mut at = self.start;
        for block in &self.buf.blocks {
            // SAFETY: `inner` is open (caller).
            rc = unsafe { write_through(self.inner, block, at) };
            if rc != ffi::SQLITE_OK {
                break;
            }
            at += block.len() as i64; // at most CHUNK
        }
        self.buf.clear();
        rc
    }

    /// Flushes before a method other than `xWrite`.
    ///
    /// # Safety
    /// As [`File::flush`].
    unsafe fn settle(&mut self) -> c_int {
        self.commit_pending = false;
        let poisoned = std::mem::replace(&mut self.poisoned, ffi::SQLITE_OK);
        if poisoned != ffi::SQLITE_OK {
            return poisoned;
        }
        unsafe { self.flush() }
    }

    /// Flushes before a method that cannot report an error; a failure is kept for the next
    /// method that can.
    ///
    /// # Safety
    /// As [`File::flush`].
    unsafe fn settle_or_poison(&mut self) {
        self.commit_pending = false;
        let rc = unsafe { self.flush() };
        if rc != ffi::SQLITE_OK && self.poisoned == ffi::SQLITE_OK {
            self.poisoned = rc;
        }
    }

    /// A write to a WAL file.
    ///
    /// # Safety
    /// As [`File::flush`]; `data` is the caller's `iAmt` bytes.
    unsafe fn write(&mut self, data: &[u8], offset: i64) -> c_int {
        let after_commit_header = std::mem::replace(&mut self.commit_pending, false);
        let poisoned = std::mem::replace(&mut self.poisoned, ffi::SQLITE_OK);
        if poisoned != ffi::SQLITE_OK {
            return poisoned;
        }
        let continues = !self.buf.is_empty()
            && i64::try_from(self.buf.len()).is_ok_and(|len| self.start.checked_add(len) == Some(offset))
            && self.buf.len() + data.len() <= CAP;
        if !continues {
            let rc = unsafe { self.flush() };
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if data.len() >= CAP {
            // Too large to buffer: straight through (the buffer is empty here).
            // SAFETY: `inner` is open (caller).
            return unsafe { write_through(self.inner, data, offset) };
        }
        if self.buf.is_empty() {
            self.start = offset;
        }
        self.buf.extend(data);
        if after_commit_header {
            // The page of a commit frame: the transaction's frames go out now (see the module doc).
            return unsafe { self.flush() };
        }
        if is_commit_frame_header(data, offset) {
            self.commit_pending = true;
            if self.buf.len() == data.len() {
                // Nothing before it in the buffer: SQLite may be rewriting the header of a
                // frame already written (walRewriteChecksums), with no page write to follow.
                // Write it now so it is never left behind a commit.
                return unsafe { self.flush() };
            }
        }
        ffi::SQLITE_OK
    }
}

/// Writes `data` at `offset` through the wrapped file's `xWrite`, [`CHUNK`] bytes a call; the
/// first failure is the result.
///
/// # Safety
/// `inner` must be an open file.
unsafe fn write_through(inner: *mut ffi::sqlite3_file, data: &[u8], offset: i64) -> c_int {
    // SAFETY: caller.
    let Some(write) = (unsafe { methods(inner) }).and_then(|m| m.xWrite) else { return ffi::SQLITE_IOERR_WRITE };
    let mut at = offset;
    for chunk in data.chunks(CHUNK) {
        // CHUNK fits both conversions.
        let (Ok(len), Ok(step)) = (c_int::try_from(chunk.len()), i64::try_from(chunk.len())) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        // SAFETY: caller; `chunk` is valid for `len` bytes.
        let rc = unsafe { write(inner, chunk.as_ptr().cast(), len, at) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        at += step;
    }
    ffi::SQLITE_OK
}

/// Whether a WAL write is the header of a commit frame: 24 bytes after the WAL header whose
/// second big-endian word ("database size in pages after commit") is not zero.
fn is_commit_frame_header(data: &[u8], offset: i64) -> bool {
    data.len() == FRAME_HEADER && offset >= WAL_HEADER && data.get(4..8).is_some_and(|w| w != [0; 4])
}

/// The wrapped file's methods, if it is open.
///
/// # Safety
/// `inner` points to a file object SQLite allocated for the wrapped VFS.
unsafe fn methods<'a>(inner: *mut ffi::sqlite3_file) -> Option<&'a ffi::sqlite3_io_methods> {
    // SAFETY: caller; the methods table is static in the wrapped VFS.
    unsafe { (*inner).pMethods.as_ref() }
}

/// Our file behind SQLite's pointer.
///
/// # Safety
/// `f` was opened by [`x_open`] with methods set (SQLite calls methods only then).
unsafe fn file<'a>(f: *mut ffi::sqlite3_file) -> &'a mut File {
    // SAFETY: caller; `base` is the first field of the repr(C) `File`.
    unsafe { &mut *f.cast::<File>() }
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    f: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(inner_vfs) = INNER.get().map(|v| v.0) else { return ffi::SQLITE_ERROR };
    // SAFETY: SQLite allocated szOsFile bytes at `f`, 8-aligned: our struct, then the wrapped
    // file at `inner_offset()`.
    unsafe {
        let inner = f.cast::<u8>().add(inner_offset()).cast::<ffi::sqlite3_file>();
        let this = f.cast::<File>();
        ptr::write(
            this,
            File {
                base: ffi::sqlite3_file { pMethods: ptr::null() },
                inner,
                coalesce: flags & ffi::SQLITE_OPEN_WAL != 0,
                commit_pending: false,
                poisoned: ffi::SQLITE_OK,
                start: 0,
                buf: Buffer::default(),
            },
        );
        (*inner).pMethods = ptr::null();
        let Some(open) = (*inner_vfs).xOpen else {
            ptr::drop_in_place(this);
            return ffi::SQLITE_ERROR;
        };
        let rc = open(inner_vfs, name, inner, flags, out_flags);
        match methods(inner) {
            // SQLite calls xClose when pMethods is set, even after a failed open; so ours is set
            // exactly when the wrapped file's is, with the same version (xShm*, xFetch).
            Some(m) => (*this).base.pMethods = &METHODS[usize::try_from(m.iVersion.clamp(1, 3) - 1).unwrap_or(0)],
            None => ptr::drop_in_place(this),
        }
        rc
    }
}

/// Calls the wrapped file's method `$m` with `$args` after flushing; a failed flush is the
/// call's result. `$missing` is the result when the wrapped file lacks the method.
macro_rules! forward {
    ($f:ident, $m:ident, $missing:expr $(, $arg:expr)*) => {{
        // SAFETY: SQLite calls a method only on a file our x_open opened.
        let this = unsafe { file($f) };
        let rc = unsafe { this.settle() };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        match unsafe { methods(this.inner) }.and_then(|m| m.$m) {
            Some(method) => unsafe { method(this.inner $(, $arg)*) },
            None => $missing,
        }
    }};
}

/// As [`forward!`], but for a method that releases something (a lock, a mapping): it runs even
/// when the flush fails, whose error is then the result.
macro_rules! forward_always {
    ($f:ident, $m:ident, $missing:expr $(, $arg:expr)*) => {{
        // SAFETY: SQLite calls a method only on a file our x_open opened.
        let this = unsafe { file($f) };
        let flushed = unsafe { this.settle() };
        let rc = match unsafe { methods(this.inner) }.and_then(|m| m.$m) {
            Some(method) => unsafe { method(this.inner $(, $arg)*) },
            None => $missing,
        };
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            rc
        }
    }};
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file once, after which it does not use it until a new open.
    unsafe {
        let this = file(f);
        let flushed = this.settle();
        let rc = match methods(this.inner).and_then(|m| m.xClose) {
            Some(close) => close(this.inner),
            None => ffi::SQLITE_OK,
        };
        ptr::drop_in_place(f.cast::<File>());
        if flushed != ffi::SQLITE_OK { flushed } else { rc }
    }
}

unsafe extern "C" fn x_read(f: *mut ffi::sqlite3_file, buf: *mut c_void, amt: c_int, offset: i64) -> c_int {
    forward!(f, xRead, ffi::SQLITE_IOERR_READ, buf, amt, offset)
}

unsafe extern "C" fn x_write(f: *mut ffi::sqlite3_file, data: *const c_void, amt: c_int, offset: i64) -> c_int {
    // SAFETY: SQLite calls a method only on a file our x_open opened.
    let this = unsafe { file(f) };
    if this.coalesce
        && let Ok(len) = usize::try_from(amt)
        && !data.is_null()
    {
        // SAFETY: SQLite passes `amt` readable bytes at `data`.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        return unsafe { this.write(bytes, offset) };
    }
    match unsafe { methods(this.inner) }.and_then(|m| m.xWrite) {
        Some(write) => unsafe { write(this.inner, data, amt, offset) },
        None => ffi::SQLITE_IOERR_WRITE,
    }
}

unsafe extern "C" fn x_truncate(f: *mut ffi::sqlite3_file, size: i64) -> c_int {
    forward!(f, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size)
}

unsafe extern "C" fn x_sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    forward!(f, xSync, ffi::SQLITE_IOERR_FSYNC, flags)
}

unsafe extern "C" fn x_file_size(f: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    forward!(f, xFileSize, ffi::SQLITE_IOERR_FSTAT, size)
}

unsafe extern "C" fn x_lock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward!(f, xLock, ffi::SQLITE_IOERR_LOCK, level)
}

unsafe extern "C" fn x_unlock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward_always!(f, xUnlock, ffi::SQLITE_IOERR_UNLOCK, level)
}

unsafe extern "C" fn x_check_reserved_lock(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    forward!(f, xCheckReservedLock, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, out)
}

unsafe extern "C" fn x_file_control(f: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    forward!(f, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
}

/// xSectorSize and xDeviceCharacteristics cannot report an error: a failed flush is reported
/// by the next call that can (the bytes are already dropped, and that call fails).
unsafe extern "C" fn x_sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls a method only on a file our x_open opened.
    let this = unsafe { file(f) };
    unsafe { this.settle_or_poison() };
    match unsafe { methods(this.inner) }.and_then(|m| m.xSectorSize) {
        Some(method) => unsafe { method(this.inner) },
        None => 4096,
    }
}

unsafe extern "C" fn x_device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls a method only on a file our x_open opened.
    let this = unsafe { file(f) };
    unsafe { this.settle_or_poison() };
    match unsafe { methods(this.inner) }.and_then(|m| m.xDeviceCharacteristics) {
        Some(method) => unsafe { method(this.inner) },
        None => 0,
    }
}

unsafe extern "C" fn x_shm_map(
    f: *mut ffi::sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    forward!(f, xShmMap, ffi::SQLITE_IOERR_SHMMAP, page, size, extend, out)
}

unsafe extern "C" fn x_shm_lock(f: *mut ffi::sqlite3_file, offset: c_int, n: c_int, flags: c_int) -> c_int {
    if flags & ffi::SQLITE_SHM_UNLOCK != 0 {
        forward_always!(f, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, offset, n, flags)
    } else {
        forward!(f, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, offset, n, flags)
    }
}

unsafe extern "C" fn x_shm_barrier(f: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite calls a method only on a file our x_open opened.
    let this = unsafe { file(f) };
    unsafe { this.settle_or_poison() };
    if let Some(method) = unsafe { methods(this.inner) }.and_then(|m| m.xShmBarrier) {
        unsafe { method(this.inner) }
    }
}

unsafe extern "C" fn x_shm_unmap(f: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    forward_always!(f, xShmUnmap, ffi::SQLITE_OK, delete)
}

unsafe extern "C" fn x_fetch(f: *mut ffi::sqlite3_file, offset: i64, amt: c_int, out: *mut *mut c_void) -> c_int {
    forward!(f, xFetch, ffi::SQLITE_OK, offset, amt, out)
}

unsafe extern "C" fn x_unfetch(f: *mut ffi::sqlite3_file, offset: i64, p: *mut c_void) -> c_int {
    forward_always!(f, xUnfetch, ffi::SQLITE_OK, offset, p)
}

const fn io_methods(version: c_int) -> ffi::sqlite3_io_methods {
    ffi::sqlite3_io_methods {
        iVersion: version,
        xClose: Some(x_close),
        xRead: Some(x_read),
        xWrite: Some(x_write),
        xTruncate: Some(x_truncate),
        xSync: Some(x_sync),
        xFileSize: Some(x_file_size),
        xLock: Some(x_lock),
        xUnlock: Some(x_unlock),
        xCheckReservedLock: Some(x_check_reserved_lock),
        xFileControl: Some(x_file_control),
        xSectorSize: Some(x_sector_size),
        xDeviceCharacteristics: Some(x_device_characteristics),
        xShmMap: if version >= 2 { Some(x_shm_map) } else { None },
        xShmLock: if version >= 2 { Some(x_shm_lock) } else { None },
        xShmBarrier: if version >= 2 { Some(x_shm_barrier) } else { None },
        xShmUnmap: if version >= 2 { Some(x_shm_unmap) } else { None },
        xFetch: if version >= 3 { Some(x_fetch) } else { None },
        xUnfetch: if version >= 3 { Some(x_unfetch) } else { None },
    }
}

/// Method tables for wrapped files of io_methods version 1, 2 and 3 (SQLite asks for xShm* only
/// from version 2 and xFetch only from 3; a newer wrapped version is served as 3).
static METHODS: [ffi::sqlite3_io_methods; 3] = [io_methods(1), io_methods(2), io_methods(3)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_blocks_hold_contiguous_bytes() {
        let mut buf = Buffer::default();
        let data: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(4120) {
            buf.extend(piece);
        }
        assert_eq!(buf.len(), data.len());
        assert_eq!(buf.blocks.len(), 4);
        assert!(buf.blocks[..3].iter().all(|b| b.len() == CHUNK));
        assert_eq!(buf.blocks.concat(), data);
        buf.clear();
        assert!(buf.is_empty() && buf.blocks.is_empty());
        assert!(buf.spare.len() * CHUNK <= KEEP + CHUNK);
        buf.extend(&data[..10]);
        assert_eq!(buf.blocks.concat(), &data[..10]);
    }

    #[test]
    fn commit_frame_headers() {
        let mut header = [0u8; FRAME_HEADER];
        header[3] = 7; // page number
        assert!(!is_commit_frame_header(&header, 32));
        header[7] = 9; // database size after commit
        assert!(is_commit_frame_header(&header, 32));
        assert!(!is_commit_frame_header(&header, 0), "the WAL header's first 24 bytes");
        assert!(!is_commit_frame_header(&[1; 4096], 56), "a page");
    }
}
