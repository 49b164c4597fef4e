//! Signed checkpoints of Guardrail's audit hash chain.
//!
//! The audit chain's head anchor lives in the same database as the records, so whoever can
//! write the database can rewrite history and recompute every hash: the chain then verifies.
//! A *checkpoint* is a statement "the chain named ORIGIN had N records and its record N had
//! hash H", signed with a key that does not live in the database. Kept anywhere else (a
//! directory written by `guardrail serve`, a CI job summary), it lets `guardrail audit verify
//! --checkpoint` prove that the first N records are still exactly the signed ones.
//!
//! Formats are the C2SP ones, so standard tooling (Go's `golang.org/x/mod/sumdb/note`, the
//! transparency-dev tools) can read and check them:
//!
//! - [`note`]: [signed notes](https://c2sp.org/signed-note) with Ed25519 keys — the private
//!   key text `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>` and the verifier key
//!   `<name>+<hex key id>+<base64(0x01 || public key)>` of `sumdb/note`, key id =
//!   `SHA-256(name || 0x0A || 0x01 || public key)[:4]`.
//! - [`checkpoint`]: the [tlog-checkpoint](https://c2sp.org/tlog-checkpoint) body — origin
//!   line, record count, base64 of the head hash — and the comparison of a checkpoint with a
//!   stored chain ([`checkpoint::check_prefix`]).
//!
//! Everything here is pure: no files, no clock, no randomness (a key is made from a seed the
//! caller draws).

#![warn(missing_docs)]

pub mod checkpoint;
pub mod note;

pub use checkpoint::{Checkpoint, CheckpointError, PrefixProblem, PrefixReport, check_prefix};
pub use note::{KeyError, NoteError, SigningKey, VerifierKey};
