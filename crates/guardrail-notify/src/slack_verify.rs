//! Slack request signatures (<https://api.slack.com/authentication/verifying-requests-from-slack>)
//! and replay refusal.
//!
//! Slack signs every request it sends to an app: `X-Slack-Signature` is `v0=` followed by the
//! hex HMAC-SHA256, keyed with the app's signing secret, of `v0:{X-Slack-Request-Timestamp}:{raw
//! body}`. [`Verifier::verify`] checks it over the raw bytes (before anything parses them),
//! refuses a timestamp more than [`MAX_SKEW`] from now in either direction, compares in
//! constant time, and refuses a signature it has already accepted ([`ReplayCache`]).
//!
//! The replay cache is in memory and per process: a second replica does not see the first's
//! entries. What makes a replayed approval harmless across replicas is the chain: an approval
//! is decided against the queue in the audit store, so a second identical grant releases
//! nothing (`ApproveOutcome::ReleasedByAnother` / `not_pending`), and the claim admits one
//! execution per authorisation.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How far a request's timestamp may be from the server's clock (Slack's recommendation).
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Most signatures remembered at once; past this the oldest are forgotten first (they are
/// also the first to fall outside [`MAX_SKEW`], after which their timestamp refuses them).
pub const REPLAY_CAPACITY: usize = 100_000;

/// HMAC-SHA256 (RFC 2104) over `sha2`: the workspace's `hmac` crate is built against another
/// `digest` major version than its `sha2`, and the construction is this short.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

/// `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`: the signature Slack sends.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut base = Vec::with_capacity(body.len() + timestamp.len() + 4);
    base.extend_from_slice(b"v0:");
    base.extend_from_slice(timestamp.as_bytes());
    base.push(b':');
    base.extend_from_slice(body);
    format!("v0={}", hex::encode(hmac_sha256(secret, &base)))
}

/// Equal bytes, in time that depends only on the lengths (which are public: `v0=` + 64 hex).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a request is refused. Messages never include the secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `X-Slack-Signature` or `X-Slack-Request-Timestamp` header.
    #[error("the request is not signed (missing {header})")]
    Missing {
        /// The missing header.
        header: &'static str,
    },
    /// The timestamp is not a whole number of seconds.
    #[error("X-Slack-Request-Timestamp {value:?} is not a Unix time in seconds")]
    BadTimestamp {
        /// As sent.
        value: String,
    },
    /// Older (or further ahead) than [`MAX_SKEW`].
    #[error("X-Slack-Request-Timestamp is {skew_seconds} s from the server's clock (at most 300 s accepted)")]
    Stale {
        /// Absolute distance from now, seconds.
        skew_seconds: u64,
    },
    /// The signature does not match the body and timestamp.
    #[error("X-Slack-Signature does not match the request")]
    Mismatch,
    /// The same signature was accepted before.
    #[error("this request was already received (replayed signature)")]
    Replayed,
}

/// Signatures accepted within the skew window, to refuse a replay. Bounded: entries older
/// than [`MAX_SKEW`] are dropped, and at [`REPLAY_CAPACITY`] the oldest go first.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl ReplayCache {
    /// Records `sig` accepted at `now` (Unix seconds); false if it was seen already.
    pub fn insert(&mut self, sig: &str, now: i64) -> bool {
        let horizon = now - MAX_SKEW.as_secs() as i64 * 2;
        while let Some((t, _)) = self.order.front() {
            if *t >= horizon && self.order.len() < REPLAY_CAPACITY {
                break;
            }
            if let Some((_, s)) = self.order.pop_front() {
                self.seen.remove(&s);
            }
        }
        if self.seen.contains_key(sig) {
            return false;
        }
        self.seen.insert(sig.to_string(), now);
        self.order.push_back((now, sig.to_string()));
        true
    }

    /// Signatures held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Checks Slack's signatures with one signing secret, remembering what it accepted.
pub struct Verifier {
    secret: Vec<u8>,
    seen: Mutex<ReplayCache>,
}

impl std::fmt::Debug for Verifier {
    // The secret never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("secret", &"<redacted>").finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for the app's signing secret (`SLACK_SIGNING_SECRET`).
    pub fn new(secret: &str) -> Verifier {
        Verifier { secret: secret.as_bytes().to_vec(), seen: Mutex::new(ReplayCache::default()) }
    }

    /// Verifies one request: `signature` and `timestamp` are the headers' values (absent:
    /// `None`), `body` the raw bytes, `now` the server's Unix time in seconds. On success the
    /// signature is remembered, so the same request is refused next time.
    pub fn verify(
        &self,
        signature_header: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let sig = signature_header.ok_or(VerifyError::Missing { header: "X-Slack-Signature" })?;
        let ts = timestamp.ok_or(VerifyError::Missing { header: "X-Slack-Request-Timestamp" })?;
        let t: i64 =
            ts.trim().parse().map_err(|_| VerifyError::BadTimestamp { value: ts.chars().take(40).collect() })?;
        let skew = now.abs_diff(t);
        if skew > MAX_SKEW.as_secs() {
            return Err(VerifyError::Stale { skew_seconds: skew });
        }
        let expected = signature(&self.secret, ts, body);
        if !constant_time_eq(expected.as_bytes(), sig.trim().as_bytes()) {
            return Err(VerifyError::Mismatch);
        }
        // A poisoned lock only means another request panicked mid-insert; the map is still a
        // map, and refusing every later request would lock Slack out.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.insert(&expected, now) {
            return Err(VerifyError::Replayed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 4231's HMAC-SHA256 test cases 1-4, 6 and 7 (5 is a truncated output).
    #[test]
    fn rfc_4231_vectors() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (
                hex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, want) in cases {
            assert_eq!(hex::encode(hmac_sha256(&key, &data)), want);
        }
    }

    /// The example of Slack's documentation (verifying requests from Slack).
    #[test]
    fn slack_documentation_example() {
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            signature(b"8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body.as_bytes()),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }

    #[test]
    fn accepts_once_and_refuses_forged_stale_and_replayed() {
        let v = Verifier::new("secret");
        let now = 1_800_000_000;
        let ts = now.to_string();
        let sig = signature(b"secret", &ts, b"payload=1");
        assert_eq!(v.verify(Some(&sig), Some(&ts), b"payload=1", now), Ok(()));
        assert_eq!(v.verify(Some(&sig), Some(&ts), b"payload=1", now + 1), Err(VerifyError::Replayed));
        assert_eq!(v.verify(Some(&sig), Some(&ts), b"payload=2", now), Err(VerifyError::Mismatch));
        let forged = signature(b"other", &ts, b"payload=3");
        assert_eq!(v.verify(Some(&forged), Some(&ts), b"payload=3", now), Err(VerifyError::Mismatch));
        let old = (now - 301).to_string();
        let sig = signature(b"secret", &old, b"x");
        assert_eq!(v.verify(Some(&sig), Some(&old), b"x", now), Err(VerifyError::Stale { skew_seconds: 301 }));
        let ahead = (now + 400).to_string();
        let sig = signature(b"secret", &ahead, b"x");
        assert!(matches!(v.verify(Some(&sig), Some(&ahead), b"x", now), Err(VerifyError::Stale { .. })));
        assert_eq!(v.verify(None, Some(&ts), b"x", now), Err(VerifyError::Missing { header: "X-Slack-Signature" }));
        assert!(matches!(v.verify(Some("v0=00"), Some("soon"), b"x", now), Err(VerifyError::BadTimestamp { .. })));
        assert!(!format!("{v:?}").contains("secret\""));
    }

    #[test]
    fn replay_cache_forgets_outside_the_window() {
        let mut c = ReplayCache::default();
        assert!(c.insert("a", 1000));
        assert!(!c.insert("a", 1001));
        assert!(c.insert("b", 1000 + 601));
        // "a" is older than two skew windows: gone (its timestamp refuses it anyway).
        assert_eq!(c.len(), 1);
    }
}
