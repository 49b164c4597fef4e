//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys, in the key encodings
//! of Go's `golang.org/x/mod/sumdb/note`, so keys and notes are interchangeable with it.
//!
//! A note is its text (lines, each ending in a newline), a blank line, then one line per
//! signature: `— <key name> <base64(4-byte key id || signature)>`. The signature covers the
//! text including its final newline, not the blank line.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest, Sha256};

/// Signature type byte of Ed25519 in signed notes and verifier keys.
pub const ALG_ED25519: u8 = 0x01;

/// At most this many signature lines are read (the spec asks verifiers to accept at least 16;
/// Go's implementation stops at 100): bounds the work an oversized note can cause.
pub const MAX_SIGNATURES: usize = 100;

/// Why a key could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key name is empty, has a space, a `+` or a control character.
    #[error("invalid key name {0:?}: it must be non-empty, without spaces, `+` or control characters")]
    InvalidName(String),
    /// The text is not `[PRIVATE+KEY+]<name>+<8 hex digits>+<base64>`.
    #[error("malformed {kind} key: {reason}")]
    Malformed {
        /// `private` or `verifier`.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The key material is not Ed25519 (signature type byte).
    #[error("{kind} key uses signature type {alg:#04x}; only Ed25519 (0x01) is supported")]
    UnsupportedAlgorithm {
        /// `private` or `verifier`.
        kind: &'static str,
        /// The type byte found.
        alg: u8,
    },
    /// The key id in the text is not the one the name and key give.
    #[error("{kind} key {name}: key id {stated:08x} does not match the key (expected {computed:08x})")]
    KeyIdMismatch {
        /// `private` or `verifier`.
        kind: &'static str,
        /// Key name.
        name: String,
        /// Key id written in the text.
        stated: u32,
        /// Key id computed from the name and public key.
        computed: u32,
    },
}

/// Why a note could not be signed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The text is not a signed note (syntax).
    #[error("malformed signed note: {0}")]
    Malformed(String),
    /// No signature line is from the expected key (name and key id).
    #[error("the note carries no signature by key {name}+{key_id:08x} (signed by: {signers})")]
    NotSignedByKey {
        /// Expected key name.
        name: String,
        /// Expected key id.
        key_id: u32,
        /// The `name+keyid` of every signature present, comma-separated.
        signers: String,
    },
    /// A signature from the expected key does not verify over the text.
    #[error("signature by key {name}+{key_id:08x} does not verify: the signed text was changed or forged")]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key id.
        key_id: u32,
    },
}

/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A valid key name: non-empty, no Unicode space, no `+` (the signed-note rule), and no
/// control character (a note may hold none).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// Splits `<name>+<hex id>+<base64>` (after any `PRIVATE+KEY+`), checks the name and id syntax
/// and decodes the key material to `(type byte, 32 bytes)`.
fn split_key(kind: &'static str, text: &str) -> Result<(String, u32, [u8; 32]), KeyError> {
    let malformed = |reason: &str| KeyError::Malformed { kind, reason: reason.to_string() };
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("expected <name>+<8 hex digits>+<base64 key>"));
    };
    if !is_valid_name(name) {
        return Err(KeyError::InvalidName(name.to_string()));
    }
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("the key id is not 8 hex digits"));
    }
    let id = u32::from_str_radix(id_hex, 16).map_err(|_| malformed("the key id is not 8 hex digits"))?;
    let raw = BASE64.decode(key64).map_err(|e| malformed(&format!("the key is not standard base64 ({e})")))?;
    let Some((&alg, key)) = raw.split_first() else {
        return Err(malformed("the key is empty"));
    };
    if alg != ALG_ED25519 {
        return Err(KeyError::UnsupportedAlgorithm { kind, alg });
    }
    let key: [u8; 32] =
        key.try_into().map_err(|_| malformed(&format!("an Ed25519 key is 32 bytes, this one is {}", key.len())))?;
    Ok((name.to_string(), id, key))
}

/// An Ed25519 signing key with its name (the private half; keep it out of the database).
#[derive(Clone)]
pub struct SigningKey {
    name: String,
    key_id: u32,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        write!(f, "SigningKey({}+{:08x})", self.name, self.key_id)
    }
}

impl SigningKey {
    /// The key for `name` from a 32-byte Ed25519 seed (draw it from the OS random source).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, KeyError> {
        if !is_valid_name(name) {
            return Err(KeyError::InvalidName(name.to_string()));
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Ok(SigningKey { name: name.to_string(), key_id, key })
    }

    /// Reads `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>` (surrounding whitespace
    /// ignored), checking that the key id matches the derived public key.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or(KeyError::Malformed {
            kind: "private",
            reason: "it does not start with PRIVATE+KEY+ (is this the .pub file?)".into(),
        })?;
        let (name, stated, seed) = split_key("private", rest)?;
        let key = Self::from_seed(&name, seed)?;
        if key.key_id != stated {
            return Err(KeyError::KeyIdMismatch { kind: "private", name, stated, computed: key.key_id });
        }
        Ok(key)
    }

    /// The private key text (no newline). Secret.
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey { name: self.name.clone(), key_id: self.key_id, key: self.key.verifying_key() }
    }

    /// Signs `text` (which must end in a newline and be valid note text) and returns the
    /// whole note: text, blank line, signature line.
    pub fn sign_note(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut raw = Vec::with_capacity(68);
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        Ok(format!("{text}\n\u{2014} {} {}\n", self.name, BASE64.encode(raw)))
    }
}

/// An Ed25519 verifier key with its name (the public half).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    /// Reads `<name>+<hex key id>+<base64(0x01 || public key)>` (surrounding whitespace
    /// ignored), checking the key id and that the key is a valid Ed25519 point.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.starts_with("PRIVATE+KEY+") {
            return Err(KeyError::Malformed {
                kind: "verifier",
                reason: "this is a private key; give the .pub file".into(),
            });
        }
        let (name, stated, public) = split_key("verifier", text)?;
        let computed = key_id(&name, &public);
        if computed != stated {
            return Err(KeyError::KeyIdMismatch { kind: "verifier", name, stated, computed });
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public).map_err(|_| KeyError::Malformed {
            kind: "verifier",
            reason: "the public key is not a valid Ed25519 point".into(),
        })?;
        Ok(VerifierKey { name, key_id: stated, key })
    }

    /// The verifier key text (no newline).
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Checks `note` and returns its text (with the final newline) when it carries a valid
    /// signature by this key. Signatures by other keys are ignored, as the spec requires; a
    /// signature by this key (same name and key id) that does not verify rejects the note.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let (text, sigs) = split_note(note)?;
        let mut verified = false;
        let mut signers = Vec::new();
        for (i, line) in sigs.lines().enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(NoteError::Malformed(format!("more than {MAX_SIGNATURES} signature lines")));
            }
            let (name, id, sig) = parse_signature_line(line)?;
            signers.push(format!("{name}+{id:08x}"));
            if name != self.name || id != self.key_id {
                continue;
            }
            let valid = <[u8; 64]>::try_from(sig.as_slice())
                .map(|b| ed25519_dalek::Signature::from_bytes(&b))
                .is_ok_and(|s| self.key.verify(text.as_bytes(), &s).is_ok());
            if !valid {
                return Err(NoteError::InvalidSignature { name: self.name.clone(), key_id: self.key_id });
            }
            verified = true;
        }
        if verified {
            Ok(text)
        } else {
            Err(NoteError::NotSignedByKey { name: self.name.clone(), key_id: self.key_id, signers: signers.join(", ") })
        }
    }
}

/// The note rules every text must follow: ends in a newline, no control character but the
/// newline. (`&str` is UTF-8 already.)
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text does not end in a newline".into()));
    }
    check_chars(text)
}

fn check_chars(s: &str) -> Result<(), NoteError> {
    match s.char_indices().find(|&(_, c)| c < ' ' && c != '\n') {
        Some((at, c)) => Err(NoteError::Malformed(format!("control character {:#04x} at byte {at}", c as u32))),
        None => Ok(()),
    }
}

/// Splits a note at its last blank line into (text with its final newline, signature block).
fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    check_chars(note)?;
    let split = note.rfind("\n\n").ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    if sigs.is_empty() {
        return Err(NoteError::Malformed("no signature lines after the blank line".into()));
    }
    if !sigs.ends_with('\n') {
        return Err(NoteError::Malformed("the last signature line does not end in a newline".into()));
    }
    Ok((text, sigs))
}

/// `— <name> <base64(key id || signature)>` → (name, key id, signature bytes).
fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let malformed = |why: &str| NoteError::Malformed(format!("signature line {line:?}: {why}"));
    let rest =
        line.strip_prefix("\u{2014} ").ok_or_else(|| malformed("it does not start with an em dash and a space"))?;
    let (name, b64) = rest.split_once(' ').ok_or_else(|| malformed("expected a key name and a signature"))?;
    if !is_valid_name(name) {
        return Err(malformed("invalid key name"));
    }
    let raw = BASE64.decode(b64).map_err(|_| malformed("the signature is not standard base64"))?;
    if raw.len() < 5 {
        return Err(malformed("the signature is too short"));
    }
    let id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    Ok((name, id, raw[4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers from Go's golang.org/x/mod/sumdb/note (note_test.go: TestNewSigner, TestSign,
    // TestOpen): the same private key must give the same verifier key and, Ed25519 being
    // deterministic, byte for byte the same signed note.
    const PETER_SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    #[test]
    fn go_sumdb_note_known_answers() {
        let signer = SigningKey::parse(PETER_SKEY).unwrap();
        assert_eq!(signer.name(), "PeterNeumann");
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.encode(), PETER_SKEY);
        assert_eq!(signer.verifier().encode(), PETER_VKEY);
        let note = signer.sign_note(TEXT).unwrap();
        assert_eq!(note, format!("{TEXT}\n{PETER_SIG}"));

        let peter = VerifierKey::parse(PETER_VKEY).unwrap();
        assert_eq!(peter.open(&note).unwrap(), TEXT);
        // A second signature by a key we do not check is ignored, in either order.
        assert_eq!(peter.open(&format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}")).unwrap(), TEXT);
        let enoch = VerifierKey::parse(ENOCH_VKEY).unwrap();
        assert_eq!(enoch.open(&format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}")).unwrap(), TEXT);
    }

    #[test]
    fn c2sp_signed_note_example() {
        // The example of c2sp.org/signed-note ("Verifier keys").
        let vkey = VerifierKey::parse("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k").unwrap();
        let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        assert_eq!(vkey.open(note).unwrap(), "This is an example message.\n");
    }

    #[test]
    fn tampering_is_refused() {
        let peter = VerifierKey::parse(PETER_VKEY).unwrap();
        // Changed text.
        let changed = format!("{}\n{PETER_SIG}", TEXT.replace("answer", "ANSWER"));
        assert_eq!(
            peter.open(&changed),
            Err(NoteError::InvalidSignature { name: "PeterNeumann".into(), key_id: 0xc74f20a3 })
        );
        // Changed signature bytes (as in Go's test: "ABCD" spliced in).
        let sig = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert!(matches!(peter.open(&format!("{TEXT}\n{sig}")), Err(NoteError::InvalidSignature { .. })));
        // Signed only by another key.
        let only_enoch = format!("{TEXT}\n{ENOCH_SIG}");
        match peter.open(&only_enoch) {
            Err(NoteError::NotSignedByKey { signers, .. }) => assert_eq!(signers, "EnochRoot+af0cfe78"),
            other => panic!("{other:?}"),
        }
        // Same name, another key id: an unknown key, ignored, so not signed by ours.
        let renamed = ENOCH_SIG.replace("EnochRoot", "PeterNeumann");
        assert!(matches!(peter.open(&format!("{TEXT}\n{renamed}")), Err(NoteError::NotSignedByKey { .. })));
    }

    #[test]
    fn malformed_notes_are_refused() {
        let peter = VerifierKey::parse(PETER_VKEY).unwrap();
        // Go's badMsgs.
        let bad = [
            TEXT.to_string(),
            format!("{TEXT}\n"),
            format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            format!("\x01{TEXT}\n{PETER_SIG}"),
            format!(
                "{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
            ),
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
        ];
        for msg in &bad {
            assert!(matches!(peter.open(msg), Err(NoteError::Malformed(_))), "{msg:?}");
        }
        let many = format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES + 1));
        assert!(matches!(peter.open(&many), Err(NoteError::Malformed(_))));
        let signer = SigningKey::parse(PETER_SKEY).unwrap();
        assert!(matches!(signer.sign_note("no newline"), Err(NoteError::Malformed(_))));
        assert!(matches!(signer.sign_note("tab\there\n"), Err(NoteError::Malformed(_))));
    }

    #[test]
    fn malformed_keys_are_refused() {
        // Go's TestNewVerifier manglings: every proper substring and every byte bumped by one.
        let b = PETER_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i != 0 || j != b.len() {
                    let s = String::from_utf8_lossy(&b[i..j]);
                    assert!(VerifierKey::parse(&s).is_err(), "{s}");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] += 1;
            let s = String::from_utf8_lossy(&m);
            assert!(VerifierKey::parse(&s).is_err(), "{s}");
        }
        // Go's "unknown algorithm, with adjusted key hash".
        assert_eq!(
            VerifierKey::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
            Err(KeyError::UnsupportedAlgorithm { kind: "verifier", alg: 0x65 })
        );
        let sk = PETER_SKEY.as_bytes();
        for i in 0..sk.len() {
            let mut m = sk.to_vec();
            m[i] += 1;
            let s = String::from_utf8_lossy(&m);
            assert!(SigningKey::parse(&s).is_err(), "{s}");
        }
        assert!(matches!(SigningKey::parse(PETER_VKEY), Err(KeyError::Malformed { .. })));
        assert!(matches!(VerifierKey::parse(PETER_SKEY), Err(KeyError::Malformed { .. })));
        assert!(matches!(SigningKey::from_seed("has space", [7; 32]), Err(KeyError::InvalidName(_))));
        assert!(matches!(SigningKey::from_seed("a+b", [7; 32]), Err(KeyError::InvalidName(_))));
        assert!(matches!(SigningKey::from_seed("", [7; 32]), Err(KeyError::InvalidName(_))));
    }

    #[test]
    fn generated_keys_round_trip() {
        let k = SigningKey::from_seed("example.com/audit", [42; 32]).unwrap();
        let again = SigningKey::parse(&format!("{}\n", k.encode())).unwrap();
        assert_eq!(again.encode(), k.encode());
        let v = VerifierKey::parse(&k.verifier().encode()).unwrap();
        assert_eq!(v, k.verifier());
        let note = k.sign_note("a\nb\n").unwrap();
        assert_eq!(v.open(&note).unwrap(), "a\nb\n");
        assert!(!format!("{k:?}").contains(&k.encode()[20..]), "Debug must not print the key");
    }
}
