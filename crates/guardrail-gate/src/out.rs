//! Standard output and error as the binary and the server write them (through their crates'
//! own `print!` / `println!` / `eprintln!`, which call these).
//!
//! A reader that stops early (`guardrail audit list | head -1`) closes the pipe; std's macros
//! panic on the `BrokenPipe` that follows, and with `panic = "abort"` that is exit 134 and a
//! panic message. Here a closed pipe only ends the output: later writes are dropped and the
//! command finishes and exits with its own code (a gate that decided BLOCK still exits 2 — a
//! reader closing the pipe never turns a decision into success). Any other write error (a full
//! disk behind `> file`) is kept for [`finish_stdout`], which reports it.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);
static FAILURE: Mutex<Option<String>> = Mutex::new(None);

fn note(e: std::io::Error) {
    CLOSED.store(true, Ordering::SeqCst);
    if e.kind() != std::io::ErrorKind::BrokenPipe
        && let Ok(mut f) = FAILURE.lock()
    {
        f.get_or_insert_with(|| e.to_string());
    }
}

/// Writes to standard output; see the module documentation for errors.
pub fn stdout(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::SeqCst) {
        return;
    }
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        note(e);
    }
}

/// Writes `value` as pretty JSON and a newline on standard output: the bytes of
/// `println!("{}", serde_json::to_string_pretty(value)?)`, streamed instead of held (a decision
/// at 10,000 rules is megabytes of JSON). See the module documentation for errors.
pub fn stdout_json_pretty<T: serde::Serialize + ?Sized>(value: &T) {
    if CLOSED.load(Ordering::SeqCst) {
        return;
    }
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let written = serde_json::to_writer_pretty(&mut w, value)
        .map_err(std::io::Error::from)
        .and_then(|()| w.write_all(b"\n"))
        .and_then(|()| w.flush());
    if let Err(e) = written {
        note(e);
    }
}

/// `value` as pretty JSON and a newline: the bytes [`stdout_json_pretty`] writes, held.
pub fn json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    json_pretty_with_capacity(value, 64 << 10)
}

/// [`json_pretty`] into a buffer of `capacity` bytes to start with.
pub fn json_pretty_with_capacity<T: serde::Serialize + ?Sized>(value: &T, capacity: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(capacity);
    // Into memory: only a value that cannot be serialised fails, and then nothing is printed.
    if serde_json::to_writer_pretty(&mut bytes, value).is_err() {
        bytes.clear();
        return bytes;
    }
    bytes.push(b'\n');
    bytes
}

/// Writes `parts` to standard output, one after the other; see the module documentation for
/// errors.
pub fn stdout_bytes(parts: &[&[u8]]) {
    if CLOSED.load(Ordering::SeqCst) {
        return;
    }
    let written = {
        let mut out = std::io::stdout().lock();
        parts.iter().try_for_each(|p| out.write_all(p)).and_then(|()| out.flush())
    };
    if let Err(e) = written {
        note(e);
    }
}

/// Writes to standard error, ignoring errors: there is nowhere left to report them, and a
/// closed stderr must not end a command (or a server) early.
pub fn stderr(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Whether standard output was closed by its reader (or failed).
pub fn closed() -> bool {
    CLOSED.load(Ordering::SeqCst)
}

/// Flushes standard output; the first write error that was not a closed pipe, if any.
pub fn finish_stdout() -> Option<String> {
    if !CLOSED.load(Ordering::SeqCst)
        && let Err(e) = std::io::stdout().lock().flush()
    {
        note(e);
    }
    FAILURE.lock().ok().and_then(|f| f.clone())
}
