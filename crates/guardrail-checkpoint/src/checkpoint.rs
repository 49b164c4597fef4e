//! The checkpoint body (<https://c2sp.org/tlog-checkpoint>) for Guardrail's audit chain, and
//! its comparison with a stored chain.
//!
//! ```text
//! example.com/payments-audit        origin: names the chain; always the signing key's name
//! 42                                the number of records (decimal, no leading zeros)
//! q1lX4p0b…=                        base64 of the 32-byte hash of record 42 (the head)
//!
//! — example.com/payments-audit <base64(key id || Ed25519 signature)>
//! ```
//!
//! Guardrail's chain is a linear hash chain, not an RFC 6962 Merkle tree: the third line is the
//! head record's hash (`sha256` of its canonical bytes, which include the previous record's
//! hash), so it commits to every record before it. Tools that expect a Merkle root can read
//! and verify the note but cannot build inclusion or consistency proofs from it. An empty chain
//! is size `0` with the all-zero genesis hash.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::note::{NoteError, SigningKey, VerifierKey, is_valid_name};

/// Why a checkpoint could not be made, read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The signed note is malformed or its signature does not verify.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The signed text is not a checkpoint body.
    #[error("malformed checkpoint: {0}")]
    Body(String),
    /// The checkpoint names another chain than the key's.
    #[error(
        "the checkpoint is for chain {origin:?} but the key is {key:?} (a checkpoint's origin is its signing key's name)"
    )]
    OriginMismatch {
        /// The checkpoint's origin line.
        origin: String,
        /// The verifier key's name.
        key: String,
    },
    /// A head hash given to sign is not 64 hex digits.
    #[error("head hash {0:?} is not a sha256 in hex (64 hex digits)")]
    InvalidHead(String),
}

/// A checkpoint: the chain `origin` had `size` records and record `size` had hash `head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The chain's name (the signing key's name).
    pub origin: String,
    /// Number of records covered.
    pub size: u64,
    /// Hash of record `size` (all zeros for an empty chain).
    pub head: [u8; 32],
    /// Optional extension lines after the head (read and kept, never written by Guardrail).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The checkpoint of a chain of `size` records whose last record has hash `head_hex`
    /// (lower- or upper-case hex; the genesis hash, 64 zeros, for an empty chain).
    pub fn new(origin: &str, size: u64, head_hex: &str) -> Result<Self, CheckpointError> {
        let head = decode_hex32(head_hex).ok_or_else(|| CheckpointError::InvalidHead(head_hex.to_string()))?;
        if !is_valid_name(origin) {
            return Err(CheckpointError::Body(format!("origin {origin:?} is not a valid key name")));
        }
        Ok(Checkpoint { origin: origin.to_string(), size, head, extensions: Vec::new() })
    }

    /// The head hash in lower-case hex, as the audit store writes it.
    pub fn head_hex(&self) -> String {
        hex::encode(self.head)
    }

    /// The note text: origin, size, base64 head, extension lines, each ending in a newline.
    pub fn body(&self) -> String {
        let mut out = format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.head));
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }

    /// Reads a note text as a checkpoint body (at least three non-empty lines; see the module
    /// documentation).
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let body = |m: String| CheckpointError::Body(m);
        let lines: Vec<&str> = text
            .strip_suffix('\n')
            .ok_or_else(|| body("the text does not end in a newline".into()))?
            .split('\n')
            .collect();
        if lines.len() < 3 {
            return Err(body(format!("expected origin, size and head hash lines, found {} line(s)", lines.len())));
        }
        if let Some(n) = lines.iter().position(|l| l.is_empty()) {
            return Err(body(format!("line {} is empty", n + 1)));
        }
        let origin = lines[0].to_string();
        let size_text = lines[1];
        let size = match size_text.parse::<u64>() {
            Ok(n)
                if size_text.bytes().all(|b| b.is_ascii_digit())
                    && (size_text == "0" || !size_text.starts_with('0')) =>
            {
                n
            }
            _ => return Err(body(format!("line 2 {size_text:?} is not a record count (decimal, no leading zeros)"))),
        };
        let head: [u8; 32] = BASE64
            .decode(lines[2])
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| body(format!("line 3 {:?} is not the base64 of a 32-byte hash", lines[2])))?;
        Ok(Checkpoint { origin, size, head, extensions: lines[3..].iter().map(|s| s.to_string()).collect() })
    }

    /// Signs this checkpoint with `key`; the origin must be the key's name.
    pub fn sign(&self, key: &SigningKey) -> Result<String, CheckpointError> {
        if self.origin != key.name() {
            return Err(CheckpointError::OriginMismatch { origin: self.origin.clone(), key: key.name().to_string() });
        }
        Ok(key.sign_note(&self.body())?)
    }

    /// Verifies `note`'s signature by `key` and reads the checkpoint in it; its origin must
    /// be the key's name.
    pub fn open(note: &str, key: &VerifierKey) -> Result<Self, CheckpointError> {
        let text = key.open(note)?;
        let cp = Self::parse_body(text)?;
        if cp.origin != key.name() {
            return Err(CheckpointError::OriginMismatch { origin: cp.origin, key: key.name().to_string() });
        }
        Ok(cp)
    }
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

/// A store still holds the checkpoint's records: `signed` of them, `stored` in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixReport {
    /// Records the checkpoint covers.
    pub signed: u64,
    /// Records the store holds now.
    pub stored: u64,
}

/// How a store fails to hold a checkpoint's records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixProblem {
    /// There is no record at the checkpoint's position.
    #[error(
        "the checkpoint covers {signed} record(s) but the store has no record {signed} (it holds {stored}): \
         records were removed, or the chain was rebuilt shorter"
    )]
    Missing {
        /// Records the checkpoint covers.
        signed: u64,
        /// Records the store holds.
        stored: u64,
    },
    /// The record at the checkpoint's position has another hash.
    #[error(
        "record {seq} has hash {stored_hash} but the checkpoint signed {signed_hash} for it: the first {seq} \
         record(s) are not the ones signed (a record was edited, removed, inserted or reordered and the hashes \
         recomputed, or the chain was rebuilt)"
    )]
    Rewritten {
        /// The checkpoint's size.
        seq: u64,
        /// The hash the checkpoint signed (hex).
        signed_hash: String,
        /// The hash stored now (as stored).
        stored_hash: String,
    },
    /// A checkpoint of an empty chain with a head other than the genesis hash.
    #[error("the checkpoint covers 0 records but its head hash is {0}, not the genesis hash (all zeros)")]
    EmptyWithHead(String),
}

/// Compares a checkpoint with a stored chain: `stored` records, and `stored_hash_at_size` the
/// stored hash of the record whose seq is the checkpoint's size (`None`: no such record).
///
/// Because every record's hash covers the previous record's hash, an intact chain whose record
/// `size` has the signed hash holds exactly the signed records 1..=size. The chain's own
/// verification (links and recomputed hashes) is the caller's: a record edited in place
/// without recomputing hashes keeps record `size`'s hash and is found only there.
pub fn check_prefix(
    cp: &Checkpoint,
    stored: u64,
    stored_hash_at_size: Option<&str>,
) -> Result<PrefixReport, PrefixProblem> {
    if cp.size == 0 {
        if cp.head != [0; 32] {
            return Err(PrefixProblem::EmptyWithHead(cp.head_hex()));
        }
        return Ok(PrefixReport { signed: 0, stored });
    }
    let Some(hash) = stored_hash_at_size else {
        return Err(PrefixProblem::Missing { signed: cp.size, stored });
    };
    if decode_hex32(hash) != Some(cp.head) {
        return Err(PrefixProblem::Rewritten {
            seq: cp.size,
            signed_hash: cp.head_hex(),
            stored_hash: hash.to_string(),
        });
    }
    Ok(PrefixReport { signed: cp.size, stored })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "0a4c0d9e1f2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5";

    fn key() -> SigningKey {
        SigningKey::from_seed("example.com/audit", [9; 32]).unwrap()
    }

    #[test]
    fn sign_and_open_round_trip() {
        let k = key();
        let cp = Checkpoint::new("example.com/audit", 42, HEAD).unwrap();
        let note = cp.sign(&k).unwrap();
        let text = format!("example.com/audit\n42\n{}\n\n\u{2014} example.com/audit ", BASE64.encode(cp.head));
        assert!(note.starts_with(&text), "{note}");
        let back = Checkpoint::open(&note, &k.verifier()).unwrap();
        assert_eq!(back, cp);
        assert_eq!(back.head_hex(), HEAD);
    }

    #[test]
    fn c2sp_tlog_checkpoint_example_body_parses() {
        // The body of the example in c2sp.org/tlog-checkpoint.
        let cp = Checkpoint::parse_body(
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        )
        .unwrap();
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, 20852163);
        assert_eq!(cp.head_hex(), "0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62");
        assert!(cp.extensions.is_empty());
        let with_ext = Checkpoint::parse_body(&format!("{}ext line\n", cp.body())).unwrap();
        assert_eq!(with_ext.extensions, vec!["ext line".to_string()]);
        assert_eq!(with_ext.body(), format!("{}ext line\n", cp.body()));
    }

    #[test]
    fn bad_bodies_are_refused() {
        let ok = "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert!(Checkpoint::parse_body(ok).is_ok());
        for bad in [
            "o\n1\n",
            "o\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n+1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n18446744073709551616\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",
            "o\n1\nAAAA\n",
            "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",
        ] {
            assert!(matches!(Checkpoint::parse_body(bad), Err(CheckpointError::Body(_))), "{bad:?}");
        }
        assert!(matches!(Checkpoint::new("o", 1, "abc"), Err(CheckpointError::InvalidHead(_))));
    }

    #[test]
    fn origin_must_be_the_key_name() {
        let k = key();
        let other = Checkpoint::new("example.com/other", 1, HEAD).unwrap();
        assert!(matches!(other.sign(&k), Err(CheckpointError::OriginMismatch { .. })));
        // A note signed by the right key but naming another chain.
        let note = k.sign_note(&other.body()).unwrap();
        assert!(matches!(Checkpoint::open(&note, &k.verifier()), Err(CheckpointError::OriginMismatch { .. })));
    }

    #[test]
    fn a_changed_count_or_head_does_not_verify() {
        let k = key();
        let note = Checkpoint::new("example.com/audit", 42, HEAD).unwrap().sign(&k).unwrap();
        let forged = note.replacen("\n42\n", "\n41\n", 1);
        assert!(matches!(
            Checkpoint::open(&forged, &k.verifier()),
            Err(CheckpointError::Note(NoteError::InvalidSignature { .. }))
        ));
        let stranger = SigningKey::from_seed("example.com/audit", [1; 32]).unwrap();
        assert!(matches!(
            Checkpoint::open(&note, &stranger.verifier()),
            Err(CheckpointError::Note(NoteError::NotSignedByKey { .. }))
        ));
    }

    #[test]
    fn prefix_comparison() {
        let cp = Checkpoint::new("o", 3, HEAD).unwrap();
        assert_eq!(check_prefix(&cp, 5, Some(HEAD)), Ok(PrefixReport { signed: 3, stored: 5 }));
        assert_eq!(check_prefix(&cp, 3, Some(&HEAD.to_uppercase())), Ok(PrefixReport { signed: 3, stored: 3 }));
        assert_eq!(check_prefix(&cp, 2, None), Err(PrefixProblem::Missing { signed: 3, stored: 2 }));
        let other = "1".repeat(64);
        match check_prefix(&cp, 3, Some(&other)) {
            Err(e @ PrefixProblem::Rewritten { seq: 3, .. }) => {
                assert!(e.to_string().contains(&other) && e.to_string().contains(HEAD), "{e}")
            }
            r => panic!("{r:?}"),
        }
        assert!(matches!(check_prefix(&cp, 3, Some("not hex")), Err(PrefixProblem::Rewritten { .. })));
        let empty = Checkpoint::new("o", 0, &"0".repeat(64)).unwrap();
        assert_eq!(check_prefix(&empty, 7, None), Ok(PrefixReport { signed: 0, stored: 7 }));
        let odd = Checkpoint::new("o", 0, HEAD).unwrap();
        assert!(matches!(check_prefix(&odd, 0, None), Err(PrefixProblem::EmptyWithHead(_))));
    }
}
