//! The canonical JSON text of a value, written straight from its `Serialize` implementation.
//!
//! An audit record's body is hashed and stored as `serde_json::to_string(&serde_json::to_value(x))`:
//! compact, every object's keys in the order of serde_json's map (a `BTreeMap<String, _>`:
//! byte order; the `preserve_order` feature is never enabled, see [`crate::audit`]). Building
//! that intermediate `Value` is most of the cost of a large record (a 10,000-rule gate decision
//! is ~11 MB of JSON: ~100,000 small maps, each key and string allocated, then freed).
//! [`to_string`] writes the same text in one pass into one buffer: each object's entries are
//! written as they come and, when they did not come in key order, reordered in place when the
//! object ends (one copy of that object's bytes; nothing to do for an object already in order).
//!
//! It gives exactly the text of the `Value` route, with the same conventions:
//! - a repeated key keeps its last value (a `BTreeMap` insert replaces), at its sorted place;
//! - numbers are written by serde_json (`f32` and 128-bit integers through a `Value`, as
//!   `to_value` converts them; a non-finite float is `null`);
//! - map keys are what `to_value` accepts: strings, chars, booleans, integers, unit variants,
//!   newtypes of those.
//!
//! Anything else a `Value` would take differently (a float map key) is an [`Error`], never a
//! different text: callers fall back to the `Value` route on an error. Tests compare the two on
//! arbitrary values.

use std::borrow::Cow;

use serde::ser::{self, Serialize};
use sha2::{Digest, Sha256};

/// Why a value has no canonical text here (the caller falls back to `serde_json::to_value`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("canonical JSON: {0}")]
pub struct Error(String);

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(e.to_string())
    }
}

/// The canonical text of `value`: `serde_json::to_string(&serde_json::to_value(value)?)`, written
/// without the intermediate `Value`.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    to_string_with_capacity(value, 0)
}

/// [`to_string`] into a buffer of `capacity` bytes to start with (a caller that knows the text is
/// megabytes long saves the buffer's regrowth).
pub fn to_string_with_capacity<T: Serialize + ?Sized>(value: &T, capacity: usize) -> Result<String, Error> {
    let mut w = Canon { out: Out::new(capacity), scratch: Vec::new(), entries: Vec::new() };
    value.serialize(&mut w)?;
    // Only serde_json's writer and copies of whole entries wrote into it: valid UTF-8.
    String::from_utf8(std::mem::take(&mut w.out.buf)).map_err(|e| Error(e.to_string()))
}

/// [`to_string_with_capacity`], and the SHA-256 state of `prefix` followed by the text, hashed on
/// another thread while the text is written (a record's hash covers `{"body":` and its body's
/// text: [`crate::audit::BodyHead`]). At 10,000 rules the text is 8.5 MB, ~5 ms of hashing that
/// no longer follows the writing. What the thread hashes is the settled part of the text: all of
/// it but the innermost objects still open below the outermost one, which may still reorder
/// their entries when they end (the outermost one is taken to be in order already, as a
/// decision's body is: should it reorder, the text is hashed again here from its start, the
/// same state, only later). A short text (a `capacity` under 1 MiB), or one with no thread to
/// hash it, is hashed here after it is written.
pub fn to_string_hashed<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
    prefix: &[u8],
) -> Result<(String, Sha256), Error> {
    write_hashed(value, capacity, prefix).map(|(text, state, _)| (text, state))
}

/// How [`write_hashed`]'s text was hashed (for tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashedBy {
    /// On the thread, as it was written (the rest after it ended).
    Thread,
    /// On the thread until the buffer had to grow, then here.
    ThreadThenHere,
    /// Here, from the start: no thread, or the outermost object reordered.
    Here,
}

fn write_hashed<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
    prefix: &[u8],
) -> Result<(String, Sha256, HashedBy), Error> {
    let mut w = Canon { out: Out::new(capacity), scratch: Vec::new(), entries: Vec::new() };
    if capacity >= HASH_ON_THREAD_FROM {
        w.out.start_hashing(prefix);
    }
    let written = value.serialize(&mut w);
    let by = if matches!(w.out.hashing, Hashing::Stopped { .. }) { HashedBy::ThreadThenHere } else { HashedBy::Thread };
    let hashed = w.out.stop_hashing();
    written?;
    let (state, by) = match hashed {
        Some((mut state, upto)) => {
            state.update(&w.out.buf[upto..]);
            (state, by)
        }
        None => {
            let mut state = Sha256::new();
            state.update(prefix);
            state.update(&w.out.buf);
            (state, HashedBy::Here)
        }
    };
    let text = String::from_utf8(std::mem::take(&mut w.out.buf)).map_err(|e| Error(e.to_string()))?;
    Ok((text, state, by))
}

/// The writer: the text so far, a buffer reused to reorder an object's entries, and the entries
/// of the objects still open (each object's above those of the objects around it: one vector
/// for the whole text instead of one per object).
struct Canon {
    out: Out,
    scratch: Vec<u8>,
    entries: Vec<Entry>,
}

/// The capacity (the caller's estimate of the text's length) from which [`to_string_hashed`]
/// hashes on another thread: below, the thread's start costs about what it saves (a 1 MB text
/// hashes in ~0.6 ms).
const HASH_ON_THREAD_FROM: usize = 1 << 20;

/// Bytes handed to the hashing thread at a time (fewer, larger hand-overs; the thread follows
/// the writer closely enough for the last one to be hashed soon after the text ends).
const HAND_OVER: usize = 256 << 10;

/// The text being written and, while it is hashed on another thread ([`to_string_hashed`]), what
/// of it was handed over. The thread reads `buf[..handed]` while this thread writes after it, so
/// two rules hold while it runs: `buf` never reallocates (a write that needs more room first
/// stops the thread) and nothing below `handed` is written again (a reorder that would, stops
/// it and spoils its hash).
struct Out {
    buf: Vec<u8>,
    /// Where each object still open starts (its `{`), outermost first: below the first of them
    /// inside the outermost one, the text is settled.
    open: Vec<usize>,
    hashing: Hashing,
    /// The length past which a write must first stop the thread (the buffer's capacity while
    /// it runs, else unlimited).
    limit: usize,
    /// The length from which the settled text is looked at again for handing over.
    next_hand_over: usize,
}

/// The hashing of the text on another thread.
enum Hashing {
    /// Not asked for, or the thread could not be started: hashed after the text is written.
    Off,
    /// The thread hashes what it is handed.
    On {
        /// Sends each new end of the handed-over prefix.
        to: std::sync::mpsc::Sender<usize>,
        thread: std::thread::JoinHandle<Sha256>,
        handed: usize,
    },
    /// Stopped before a reallocation: the state of the prefix and the text up to `upto`.
    Stopped { state: Sha256, upto: usize },
    /// Bytes already hashed were written again: hashed afresh after the text is written.
    Spoiled,
}

/// The buffer's address, sent to the hashing thread.
struct Base(*const u8);
// SAFETY: the pointer is only read through, by one thread, in the ranges `Out` hands over, which
// the writing thread no longer writes nor frees while that thread runs (see `Out`).
unsafe impl Send for Base {}

impl Base {
    /// The address (a method, so a closure takes the whole `Base`, which is `Send`).
    fn get(&self) -> *const u8 {
        self.0
    }
}

impl Out {
    fn new(capacity: usize) -> Out {
        Out {
            buf: Vec::with_capacity(capacity),
            open: Vec::new(),
            hashing: Hashing::Off,
            limit: usize::MAX,
            next_hand_over: usize::MAX,
        }
    }

    fn start_hashing(&mut self, prefix: &[u8]) {
        let (to, from) = std::sync::mpsc::channel::<usize>();
        let base = Base(self.buf.as_ptr());
        let mut state = Sha256::new();
        state.update(prefix);
        let spawned = std::thread::Builder::new().name("record-hash".into()).spawn(move || {
            let mut done = 0;
            for end in from {
                // SAFETY: `Out` hands over ends only within the buffer's written length, in
                // increasing order, and neither writes below them nor moves or frees the buffer
                // before this thread is joined (see `Out`).
                let settled = unsafe { std::slice::from_raw_parts(base.get().add(done), end - done) };
                state.update(settled);
                done = end;
            }
            state
        });
        if let Ok(thread) = spawned {
            self.hashing = Hashing::On { to, thread, handed: 0 };
            self.limit = self.buf.capacity();
            self.next_hand_over = HAND_OVER;
        }
    }

    /// Joins the thread: the state after the prefix and the text up to the returned length, or
    /// `None` when the text must be hashed from its start.
    fn stop_hashing(&mut self) -> Option<(Sha256, usize)> {
        match std::mem::replace(&mut self.hashing, Hashing::Spoiled) {
            Hashing::On { to, thread, handed } => {
                drop(to);
                thread.join().ok().map(|state| (state, handed))
            }
            Hashing::Stopped { state, upto } => Some((state, upto)),
            Hashing::Off | Hashing::Spoiled => None,
        }
    }

    /// Before writing `n` bytes: a buffer that would grow moves, so the thread stops first.
    /// (Every write of serde_json's comes here, a few bytes at a time: one comparison while
    /// there is room, or no thread.)
    #[inline]
    fn room(&mut self, n: usize) {
        if self.buf.len() + n > self.limit {
            self.stop_before_growing();
        }
    }

    #[cold]
    #[inline(never)]
    fn stop_before_growing(&mut self) {
        self.limit = usize::MAX;
        self.next_hand_over = usize::MAX;
        if matches!(self.hashing, Hashing::On { .. }) {
            self.hashing = match self.stop_hashing() {
                Some((state, upto)) => Hashing::Stopped { state, upto },
                None => Hashing::Spoiled,
            };
        }
    }

    /// After a write: hands the settled text over once there may be enough of it.
    #[inline]
    fn settled(&mut self) {
        if self.buf.len() >= self.next_hand_over {
            self.hand_over();
        }
    }

    #[cold]
    #[inline(never)]
    fn hand_over(&mut self) {
        let Hashing::On { to, handed, .. } = &mut self.hashing else {
            self.next_hand_over = usize::MAX;
            return;
        };
        // The outermost object is taken to stay in order; those inside it may not.
        let end = if self.open.first() == Some(&0) { self.open.get(1) } else { self.open.first() };
        let end = end.copied().unwrap_or(self.buf.len());
        if end >= *handed + HAND_OVER && to.send(end).is_ok() {
            *handed = end;
        }
        // Looked at again once that much more is written (an object still open keeps the
        // settled end where it is until it ends: Object::close calls this again).
        self.next_hand_over = self.buf.len() + HAND_OVER / 4;
    }

    #[inline]
    fn push(&mut self, b: u8) {
        self.room(1);
        self.buf.push(b);
    }

    #[inline]
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.room(bytes.len());
        self.buf.extend_from_slice(bytes);
        self.settled();
    }

    /// `"bytes"` and then `after`, in one reservation (bytes that need no escaping).
    #[inline]
    fn quoted(&mut self, bytes: &[u8], after: &[u8]) {
        self.room(bytes.len() + 2 + after.len());
        self.buf.push(b'"');
        self.buf.extend_from_slice(bytes);
        self.buf.push(b'"');
        self.buf.extend_from_slice(after);
        self.settled();
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    /// Drops the text from `at` on, to write it again (an object's entries reordered).
    fn truncate(&mut self, at: usize) {
        if let Hashing::On { handed, .. } = &self.hashing
            && at < *handed
        {
            let _ = self.stop_hashing();
            self.hashing = Hashing::Spoiled;
        }
        if let Hashing::Stopped { upto, .. } = &self.hashing
            && at < *upto
        {
            self.hashing = Hashing::Spoiled;
        }
        self.buf.truncate(at);
    }
}

impl Drop for Out {
    /// The thread reads the buffer until it is joined: joined before the buffer is freed, when
    /// the text is dropped unfinished (a serialisation that panicked).
    fn drop(&mut self) {
        if matches!(self.hashing, Hashing::On { .. }) {
            let _ = self.stop_hashing();
        }
    }
}

impl std::io::Write for Out {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Canon {
    /// A leaf, as serde_json writes it compactly.
    fn leaf<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        v.serialize(&mut serde_json::Serializer::new(&mut self.out)).map_err(Error::from)
    }

    /// A string, as serde_json writes it: one copy between its quotes when nothing in it is
    /// escaped (serde_json escapes only `"`, `\` and the control characters below U+0020),
    /// instead of serde_json's writes of the quotes and each run apart.
    fn string(&mut self, v: &str) -> Result<(), Error> {
        if needs_escaping(v.as_bytes()) {
            return self.leaf(v);
        }
        self.out.quoted(v.as_bytes(), b"");
        Ok(())
    }

    /// A leaf through a `Value`, for the types `to_value` converts (f32, 128-bit integers).
    fn via_value<T: Serialize>(&mut self, v: T) -> Result<(), Error> {
        let value = serde_json::to_value(v)?;
        self.leaf(&value)
    }
}

/// Whether serde_json escapes something in `bytes`: `"`, `\\` or a control character below U+0020
/// (it writes everything else, multi-byte UTF-8 included, as it is).
fn needs_escaping(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// One entry of an object being written: its key and where its `"key":value` bytes are.
struct Entry {
    key: Cow<'static, str>,
    start: usize,
    end: usize,
}

/// An object being written ([`ser::SerializeStruct`], [`ser::SerializeMap`]).
struct Object<'a> {
    w: &'a mut Canon,
    /// Where this object's entries start in [`Canon::entries`].
    base: usize,
    /// A map's key waiting for its value.
    pending: Option<String>,
    /// For a struct or map variant: close one more brace (`{"Variant":{…}}`).
    variant: bool,
}

impl<'a> Object<'a> {
    fn open(w: &'a mut Canon, variant: Option<&'static str>) -> Result<Object<'a>, Error> {
        let start = w.out.len();
        w.out.open.push(start);
        if let Some(v) = variant {
            w.out.push(b'{');
            w.leaf(v)?;
            w.out.push(b':');
        }
        w.out.push(b'{');
        let base = w.entries.len();
        Ok(Object { w, base, pending: None, variant: variant.is_some() })
    }

    fn entry<T: Serialize + ?Sized>(&mut self, key: Cow<'static, str>, value: &T) -> Result<(), Error> {
        let first = self.w.entries.len() == self.base;
        let start = self.w.out.len() + usize::from(!first);
        let k = key.as_bytes();
        if needs_escaping(k) {
            if !first {
                self.w.out.push(b',');
            }
            self.w.leaf(key.as_ref())?;
            self.w.out.push(b':');
        } else if first {
            self.w.out.quoted(k, b":");
        } else {
            self.w.out.push(b',');
            self.w.out.quoted(k, b":");
        }
        value.serialize(&mut *self.w)?;
        // The entries of objects inside this value were taken off the stack when they closed.
        self.w.entries.push(Entry { key, start, end: self.w.out.len() });
        Ok(())
    }

    fn close(self) -> Result<(), Error> {
        let Object { w, base, variant, .. } = self;
        let entries = &mut w.entries[base..];
        let in_order = entries.windows(2).all(|p| p[0].key < p[1].key);
        if !in_order {
            // Stable: equal keys keep their order, and the last of them is the one kept.
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            let first = entries.iter().map(|e| e.start).min().unwrap_or(w.out.len());
            w.scratch.clear();
            w.scratch.extend_from_slice(&w.out.buf[first..]);
            w.out.truncate(first);
            let mut written = false;
            for (i, e) in entries.iter().enumerate() {
                if entries.get(i + 1).is_some_and(|next| next.key == e.key) {
                    continue;
                }
                if written {
                    w.out.push(b',');
                }
                w.out.extend_from_slice(&w.scratch[e.start - first..e.end - first]);
                written = true;
            }
        }
        w.entries.truncate(base);
        w.out.push(b'}');
        if variant {
            w.out.push(b'}');
        }
        w.out.open.pop();
        // An object inside the outermost one ended: what it held is settled now.
        if w.out.open.len() <= 1 && w.out.next_hand_over != usize::MAX {
            w.out.hand_over();
        }
        Ok(())
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.entry(Cow::Borrowed(key), value)
    }

    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeStructVariant for Object<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.entry(Cow::Borrowed(key), value)
    }

    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.pending = Some(key.serialize(KeyText)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self.pending.take().ok_or_else(|| Error("a map value without its key".into()))?;
        self.entry(Cow::Owned(key), value)
    }

    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// An array being written (sequences, tuples; `variant`: `{"Variant":[…]}`).
struct Array<'a> {
    w: &'a mut Canon,
    first: bool,
    variant: bool,
}

impl<'a> Array<'a> {
    fn open(w: &'a mut Canon, variant: Option<&'static str>) -> Result<Array<'a>, Error> {
        if let Some(v) = variant {
            w.out.push(b'{');
            w.leaf(v)?;
            w.out.push(b':');
        }
        w.out.push(b'[');
        Ok(Array { w, first: true, variant: variant.is_some() })
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
        value.serialize(&mut *self.w)
    }

    fn close(self) -> Result<(), Error> {
        self.w.out.push(b']');
        if self.variant {
            self.w.out.push(b'}');
        }
        Ok(())
    }
}

macro_rules! array_impl {
    ($trait:ident, $method:ident) => {
        impl ser::$trait for Array<'_> {
            type Ok = ();
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }

            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    };
}

array_impl!(SerializeSeq, serialize_element);
array_impl!(SerializeTuple, serialize_element);
array_impl!(SerializeTupleStruct, serialize_field);
array_impl!(SerializeTupleVariant, serialize_field);

impl<'a> ser::Serializer for &'a mut Canon {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Array<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.leaf(&v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.leaf(&v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.leaf(&v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.leaf(&v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.via_value(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.leaf(&v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.leaf(&v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.leaf(&v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.leaf(&v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.via_value(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.via_value(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        // serde_json writes a finite f64 alone as it writes a Value holding it; non-finite: null.
        self.leaf(&v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.leaf(&v)
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.string(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        // A Value holds bytes as an array of numbers; serde_json writes them the same way.
        self.leaf(v)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<(), Error> {
        self.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        self.leaf(variant)?;
        self.out.push(b':');
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Array<'a>, Error> {
        Array::open(self, None)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Array<'a>, Error> {
        Array::open(self, None)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Array<'a>, Error> {
        Array::open(self, None)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Array<'a>, Error> {
        Array::open(self, Some(variant))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Object<'a>, Error> {
        Object::open(self, None)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Object<'a>, Error> {
        Object::open(self, None)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Object<'a>, Error> {
        Object::open(self, Some(variant))
    }
}

/// A map key as `to_value` turns it into a string key.
struct KeyText;

fn not_a_key() -> Error {
    Error("a map key that is not a string, an integer, a boolean or a unit variant".into())
}

macro_rules! int_key {
    ($($method:ident: $t:ty),*) => {
        $(fn $method(self, v: $t) -> Result<String, Error> {
            Ok(v.to_string())
        })*
    };
}

impl ser::Serializer for KeyText {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = ser::Impossible<String, Error>;
    type SerializeTuple = ser::Impossible<String, Error>;
    type SerializeTupleStruct = ser::Impossible<String, Error>;
    type SerializeTupleVariant = ser::Impossible<String, Error>;
    type SerializeMap = ser::Impossible<String, Error>;
    type SerializeStruct = ser::Impossible<String, Error>;
    type SerializeStructVariant = ser::Impossible<String, Error>;

    int_key!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128);

    fn serialize_bool(self, v: bool) -> Result<String, Error> {
        Ok(if v { "true" } else { "false" }.to_string())
    }
    fn serialize_char(self, v: char) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_str(self, v: &str) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<String, Error> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<String, Error> {
        value.serialize(self)
    }
    // Float keys: serde_json formats them with its own float writer; not needed here, so the
    // caller falls back to the Value route rather than risk another text.
    fn serialize_f32(self, _v: f32) -> Result<String, Error> {
        Err(not_a_key())
    }
    fn serialize_f64(self, _v: f64) -> Result<String, Error> {
        Err(not_a_key())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, Error> {
        Err(not_a_key())
    }
    fn serialize_none(self) -> Result<String, Error> {
        Err(not_a_key())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<String, Error> {
        Err(not_a_key())
    }
    fn serialize_unit(self) -> Result<String, Error> {
        Err(not_a_key())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<String, Error> {
        Err(not_a_key())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String, Error> {
        Err(not_a_key())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(not_a_key())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(not_a_key())
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeTupleStruct, Error> {
        Err(not_a_key())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(not_a_key())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(not_a_key())
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct, Error> {
        Err(not_a_key())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(not_a_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::{BTreeMap, HashMap};

    fn via_value<T: Serialize>(v: &T) -> String {
        serde_json::to_string(&serde_json::to_value(v).unwrap()).unwrap()
    }

    fn same<T: Serialize>(v: &T) {
        assert_eq!(to_string(v).unwrap(), via_value(v));
        let _ = hashed_as_written(v, 0);
    }

    /// [`to_string_hashed`] writes the text [`to_string`] writes, and its state is the hash of
    /// the prefix and that text.
    fn hashed_as_written<T: Serialize>(v: &T, capacity: usize) -> (String, HashedBy) {
        let (text, state, by) = write_hashed(v, capacity, b"{\"body\":").unwrap();
        assert_eq!(text, to_string(v).unwrap());
        let mut expected = Sha256::new();
        expected.update(b"{\"body\":");
        expected.update(text.as_bytes());
        assert_eq!(state.finalize(), expected.finalize());
        (text, by)
    }

    /// Megabytes hashed on the thread while written: in order; with objects inside reordering
    /// (settled only once they end); with the outermost object reordering (hashed again); with
    /// the buffer regrowing (the thread stops first); and a top-level array of objects.
    #[test]
    fn a_large_text_is_hashed_as_written() {
        #[derive(serde::Serialize)]
        struct Entry {
            zed: String,
            id: usize,
            alpha: bool,
        }
        #[derive(serde::Serialize)]
        struct Sorted<'a> {
            a_policies: &'a str,
            b_trace: &'a [Entry],
            c_last: u8,
        }
        #[derive(serde::Serialize)]
        struct Unsorted<'a> {
            b_trace: &'a [Entry],
            a_policies: &'a str,
        }
        let policies = "rule: \"quoted\"\n".repeat(100_000);
        let trace: Vec<Entry> =
            (0..20_000).map(|id| Entry { zed: format!("svc-{id:05}"), id, alpha: id % 3 == 0 }).collect();
        let sorted = Sorted { a_policies: &policies, b_trace: &trace, c_last: 7 };
        let unsorted = Unsorted { b_trace: &trace, a_policies: &policies };
        let big = 8 << 20;
        let (text, by) = hashed_as_written(&sorted, big);
        assert!(text.len() > 2 * HAND_OVER, "{} bytes", text.len());
        assert_eq!((text.as_str(), by), (via_value(&sorted).as_str(), HashedBy::Thread));
        assert_eq!(hashed_as_written(&sorted, 0).1, HashedBy::Here);
        assert_eq!(hashed_as_written(&sorted, text.len() / 2).1, HashedBy::ThreadThenHere);
        let (text, by) = hashed_as_written(&unsorted, big);
        assert_eq!((text, by), (via_value(&unsorted), HashedBy::Here));
        assert_eq!(hashed_as_written(&trace, big).1, HashedBy::Thread);
    }

    #[derive(serde::Serialize)]
    enum E {
        Unit,
        New(u8),
        Tuple(u8, &'static str),
        Struct { z: u8, a: Option<u8> },
    }

    #[derive(serde::Serialize)]
    struct Inner {
        zeta: f64,
        alpha: Vec<E>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        mid: (),
    }

    #[derive(serde::Serialize)]
    struct Outer {
        b: &'static str,
        #[serde(flatten)]
        inner: Inner,
        a: BTreeMap<String, f32>,
        #[serde(flatten)]
        extra: HashMap<String, i128>,
        c: Option<Box<Outer>>,
        bytes: &'static [u8],
        ch: char,
    }

    #[test]
    fn the_text_of_the_value_route() {
        for v in [
            json!(null),
            json!({}),
            json!([]),
            json!({"b": 1, "a": [2.5, -0.0, 1e300, 1.0, null, true], "": {"y": "x\n\"y\"\u{7f}\u{1}é", "x": {}}}),
            json!("just </text>"),
            json!(12345678901234567_u64),
            json!(-9007199254740993_i64),
        ] {
            same(&v);
        }
        let outer = |c| Outer {
            b: "b",
            inner: Inner {
                zeta: 0.1 + 0.2,
                alpha: vec![E::Unit, E::New(3), E::Tuple(1, "t"), E::Struct { z: 1, a: None }],
                skipped: None,
                mid: (),
            },
            a: [("z".to_string(), 0.1_f32), ("é".to_string(), f32::NAN), ("A".to_string(), 3.0)].into(),
            extra: [("bb".to_string(), 1_i128 << 62), ("aa".to_string(), -5)].into(),
            c,
            bytes: b"\x00\xff",
            ch: '\u{2028}',
        };
        same(&outer(Some(Box::new(outer(None)))));
        same(&[f64::NAN, f64::INFINITY, 5e-324, 123456.789]);
        same(&BTreeMap::from([(3_u8, "three"), (10, "ten")]));
        same(&HashMap::from([(true, 1), (false, 2)]));
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        #[derive(serde::Serialize)]
        struct Twice {
            b: u8,
            #[serde(flatten)]
            more: BTreeMap<&'static str, u8>,
        }
        same(&Twice { b: 1, more: [("b", 2), ("a", 3), ("c", 4)].into() });
        same(&Twice { b: 1, more: [("b", 2)].into() });
    }

    #[test]
    fn a_float_map_key_is_refused() {
        // The Value route formats it with its own float writer: the caller takes that route.
        struct F;
        impl Serialize for F {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(&1.5_f64, &1)?;
                m.end()
            }
        }
        assert!(to_string(&F).is_err());
    }

    /// A JSON-like tree whose maps keep their entries in the order (and with the repeats) given.
    #[derive(Debug, Clone)]
    enum Node {
        Null,
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(String),
        Arr(Vec<Node>),
        Map(Vec<(String, Node)>),
    }

    impl Serialize for Node {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::{SerializeMap, SerializeSeq};
            match self {
                Node::Null => s.serialize_unit(),
                Node::Bool(b) => s.serialize_bool(*b),
                Node::Int(i) => s.serialize_i64(*i),
                Node::Float(f) => s.serialize_f64(*f),
                Node::Str(t) => s.serialize_str(t),
                Node::Arr(items) => {
                    let mut seq = s.serialize_seq(Some(items.len()))?;
                    for i in items {
                        seq.serialize_element(i)?;
                    }
                    seq.end()
                }
                Node::Map(entries) => {
                    let mut m = s.serialize_map(None)?;
                    for (k, v) in entries {
                        m.serialize_entry(k, v)?;
                    }
                    m.end()
                }
            }
        }
    }

    fn node() -> impl proptest::strategy::Strategy<Value = Node> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Node::Null),
            any::<bool>().prop_map(Node::Bool),
            any::<i64>().prop_map(Node::Int),
            any::<f64>().prop_map(Node::Float),
            "[a-c\\u{0}-\\u{1f}\"\\\\é\\u{2028}]{0,4}".prop_map(Node::Str),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Node::Arr),
                proptest::collection::vec(("[a-cé_]{0,3}", inner), 0..6).prop_map(Node::Map),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_tree_writes_as_its_value_does(n in node()) {
            proptest::prop_assert_eq!(to_string(&n).unwrap(), via_value(&n));
        }
    }
}
