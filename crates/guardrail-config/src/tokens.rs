//! Bearer tokens: the hashed tokens file shared by `guardrail serve --tokens` (HTTP and MCP
//! callers) and the governor commands of the CLI (`--tokens` / `GUARDRAIL_TOKENS`, or the
//! governor config's `tokens:` key), so both read one format with one parser.
//!
//! The tokens file (YAML, or JSON when its name ends in `.json`) stores only the sha256 of each
//! token, so a leaked file does not leak a usable token:
//!
//! ```yaml
//! tokens:
//!   - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//!     identity: ci-pipeline        # who the caller is; recorded in the audit trail
//!     role: deployer               # viewer | deployer | approver | admin
//! ```
//!
//! `guardrail token hash` prints the sha256 of a token read from standard input (or use
//! `printf %s "$TOKEN" | sha256sum`). A caller presents the token (`Authorization: Bearer
//! TOKEN` over HTTP, `--token` / `GUARDRAIL_TOKEN` on the command line); it is hashed and the
//! hash looked up.

use std::collections::BTreeMap;
use std::path::Path;

use crate::source::Source;
use crate::yaml::{self, Node};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May read only: no write endpoint; over MCP (`--mcp`), the read-only tools.
    Viewer,
    /// May ask for deploy decisions (`POST /api/gate`, `POST /api/simulate`) and propose
    /// remediations (`POST /api/incidents`).
    Deployer,
    /// May approve or override governor actions and act on them (`POST
    /// /api/incidents/{id}/approve`, `/force-override`, `/execute`, `/resolve`); not a deployer.
    Approver,
    /// Everything.
    Admin,
}

impl Role {
    /// The role named `s` in a tokens file, if any.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "deployer" => Some(Role::Deployer),
            "approver" => Some(Role::Approver),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    /// The role's name as written in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
    /// True when this role may call an endpoint that needs `need`.
    pub fn allows(self, need: Role) -> bool {
        self == Role::Admin || self == need
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// Identity from the tokens file (never from the request body).
    pub identity: String,
    /// Role from the tokens file.
    pub role: Role,
}

/// A problem in the tokens file; the message carries file, field, line and column.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TokensError(pub String);

/// The loaded tokens: sha256 (lowercase hex) → caller.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: BTreeMap<String, Caller>,
}

/// The sha256 of a token, lowercase hex: what the tokens file stores.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn at(src: &Source, n: &Node, field: &str, msg: &str) -> String {
    match n.anchor_pos() {
        Some((l, c)) => format!("{}:{l}:{c}: {field}: {msg}", src.path.display()),
        None => format!("{}: {field}: {msg}", src.path.display()),
    }
}

impl Tokens {
    /// Reads a tokens file, reporting every problem found.
    pub fn load(path: &Path) -> Result<Tokens, Vec<TokensError>> {
        let src = crate::read_source(path).map_err(|e| vec![TokensError(e.to_string())])?;
        Tokens::parse(&src)
    }

    /// Parses a tokens file already read.
    pub fn parse(src: &Source) -> Result<Tokens, Vec<TokensError>> {
        let is_json = src.path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let root = if is_json { yaml::parse_json(src) } else { yaml::parse_yaml(src) }
            .map_err(|es| es.into_iter().map(|e| TokensError(e.to_string())).collect::<Vec<_>>())?;
        let mut errors = Vec::new();
        let mut by_hash = BTreeMap::new();
        let Some(map) = root.as_map() else {
            return Err(vec![TokensError(at(src, &root, "(file)", "expected a mapping with a `tokens` list"))]);
        };
        for (k, v) in map {
            if k != "tokens" {
                errors.push(at(src, v, k, "unknown key (expected only `tokens`)"));
            }
        }
        match root.get("tokens").and_then(|t| t.as_seq()) {
            None => errors.push(at(src, &root, "tokens", "missing or not a list")),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let field = format!("tokens[{i}]");
                    let Some(entries) = item.as_map() else {
                        errors.push(at(src, item, &field, "expected a mapping with sha256, identity and role"));
                        continue;
                    };
                    for (k, v) in entries {
                        if !matches!(k.as_str(), "sha256" | "identity" | "role") {
                            errors.push(at(src, v, &format!("{field}.{k}"), "unknown key"));
                        }
                    }
                    let text = |key: &str, errors: &mut Vec<String>| -> Option<String> {
                        match item.get(key) {
                            None => {
                                errors.push(at(src, item, &format!("{field}.{key}"), "missing"));
                                None
                            }
                            Some(n) => match n.as_str() {
                                Some(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                                _ => {
                                    errors.push(at(src, n, &format!("{field}.{key}"), "expected a non-empty string"));
                                    None
                                }
                            },
                        }
                    };
                    let sha = text("sha256", &mut errors);
                    let identity = text("identity", &mut errors);
                    let role = text("role", &mut errors);
                    let sha = sha.and_then(|s| {
                        let s = s.to_ascii_lowercase();
                        if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
                            Some(s)
                        } else {
                            let n = item.get("sha256").unwrap_or(item);
                            errors.push(at(
                                src,
                                n,
                                &format!("{field}.sha256"),
                                "expected 64 hex digits (the sha256 of the token; see `guardrail token hash`)",
                            ));
                            None
                        }
                    });
                    let role = role.and_then(|r| match Role::parse(&r) {
                        Some(r) => Some(r),
                        None => {
                            let n = item.get("role").unwrap_or(item);
                            errors.push(at(
                                src,
                                n,
                                &format!("{field}.role"),
                                &format!("unknown role \"{r}\" (viewer, deployer, approver, admin)"),
                            ));
                            None
                        }
                    });
                    if let (Some(sha), Some(identity), Some(role)) = (sha, identity, role) {
                        match by_hash.entry(sha) {
                            std::collections::btree_map::Entry::Occupied(_) => {
                                errors.push(at(src, item, &format!("{field}.sha256"), "the same token is listed twice"))
                            }
                            std::collections::btree_map::Entry::Vacant(v) => {
                                v.insert(Caller { identity, role });
                            }
                        }
                    }
                }
            }
        }
        if errors.is_empty() { Ok(Tokens { by_hash }) } else { Err(errors.into_iter().map(TokensError).collect()) }
    }

    /// Builds a token set directly (for tests and embedding): `(token hash, identity, role)`.
    pub fn from_hashes(entries: &[(&str, &str, Role)]) -> Tokens {
        Tokens {
            by_hash: entries
                .iter()
                .map(|(h, id, role)| (h.to_ascii_lowercase(), Caller { identity: (*id).to_string(), role: *role }))
                .collect(),
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The caller a presented token belongs to, if any. Every stored hash is compared in
    /// constant time, so timing does not tell how much of a hash matched.
    pub fn check(&self, token: &str) -> Option<Caller> {
        let presented = Sha256::digest(token.as_bytes());
        let mut found = None;
        for (hash, caller) in &self.by_hash {
            let Ok(stored) = hex::decode(hash) else { continue };
            if stored.len() == presented.len() {
                let diff = stored.iter().zip(presented.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
                if diff == 0 {
                    found = Some(caller.clone());
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Tokens, Vec<TokensError>> {
        Tokens::parse(&Source::from_text("tokens.yaml", text))
    }

    #[test]
    fn hash_matches_sha256sum() {
        // printf %s test | sha256sum
        assert_eq!(hash_token("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    }

    #[test]
    fn loads_and_checks() {
        let t = parse(&format!(
            "tokens:\n  - sha256: {}\n    identity: ci\n    role: deployer\n  - sha256: {}\n    identity: root\n    role: admin\n",
            hash_token("a"),
            hash_token("b")
        ))
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.check("a"), Some(Caller { identity: "ci".into(), role: Role::Deployer }));
        assert_eq!(t.check("b").map(|c| c.role), Some(Role::Admin));
        assert_eq!(t.check("c"), None);
        assert_eq!(t.check(""), None);
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let errs = parse("tokens:\n  - sha256: abc\n    identity: ci\n    role: boss\n    extra: 1\n").unwrap_err();
        let all: Vec<String> = errs.iter().map(|e| e.0.clone()).collect();
        assert!(all.iter().any(|e| e.contains("tokens.yaml:2:") && e.contains("64 hex digits")), "{all:?}");
        assert!(all.iter().any(|e| e.contains("tokens.yaml:4:") && e.contains("unknown role \"boss\"")), "{all:?}");
        assert!(all.iter().any(|e| e.contains("tokens[0].extra") && e.contains("unknown key")), "{all:?}");
        assert!(parse("nope: []\n").is_err());
        assert!(parse("[]").is_err());
    }

    #[test]
    fn roles() {
        assert!(Role::Admin.allows(Role::Deployer));
        assert!(Role::Deployer.allows(Role::Deployer));
        assert!(!Role::Approver.allows(Role::Deployer));
        // A viewer may call no write endpoint.
        for need in [Role::Deployer, Role::Approver, Role::Admin] {
            assert!(!Role::Viewer.allows(need));
        }
        assert_eq!(Role::parse("viewer"), Some(Role::Viewer));
    }
}
