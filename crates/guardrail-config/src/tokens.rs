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
use std::path::{Path, PathBuf};

use crate::common::{Diags, suggest};
use crate::de::{from_node, parse_own};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::source::Source;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// A problem with the tokens file: it cannot be trusted or read, or a value in it is wrong (at
/// its file, field, line and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokensError {
    /// Its metadata cannot be read (missing, no permission).
    #[error("{}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// Its group or everyone may write it, so anyone could add a token.
    #[error(
        "{} is writable by its group or by everyone (mode {mode:04o}), so anyone could add a token: chmod go-w it",
        path.display()
    )]
    Writable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file cannot be read as text, or a value in it is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The loaded tokens: sha256 (lowercase hex) → caller.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: BTreeMap<String, Caller>,
}

/// The sha256 of a token, lowercase hex: what the tokens file stores.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The file as written (values are checked by [`Tokens::parse`], all of them).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensSpec {
    tokens: Vec<TokenSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSpec {
    sha256: String,
    identity: String,
    role: String,
}

/// Refuses a tokens file that anyone but its owner may write (group- or world-writable, as ssh
/// refuses such keys): whoever can add a line to it can issue themselves any identity and role.
/// Returns the file's owner (uid), which the CLI records.
pub fn check_file_mode(path: &Path) -> Result<u32, TokensError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| TokensError::Unreadable { path: path.to_path_buf(), reason: e.to_string() })?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(TokensError::Writable { path: path.to_path_buf(), mode });
    }
    Ok(meta.uid())
}

const ROLES: &[&str] = &["viewer", "deployer", "approver", "admin"];

impl Tokens {
    /// Reads a tokens file, reporting every problem found. A file its group or everyone may
    /// write is refused first ([`check_file_mode`]).
    pub fn load(path: &Path) -> Result<Tokens, Vec<TokensError>> {
        check_file_mode(path).map_err(|e| vec![e])?;
        let src = crate::read_source(path).map_err(|e| vec![TokensError::Config(e)])?;
        Tokens::parse(&src)
    }

    /// Parses a tokens file already read: one of Guardrail's own formats (YAML 1.2 core
    /// schema, or JSON by extension), through [`crate::de`].
    pub fn parse(src: &Source) -> Result<Tokens, Vec<TokensError>> {
        let to_errors = |es: Vec<ConfigError>| es.into_iter().map(TokensError::Config).collect::<Vec<_>>();
        let root = parse_own(src).map_err(to_errors)?;
        let mut d = Diags::new(src, SourceMap::from_node(&root));
        if root.as_map().is_none() {
            d.error("", format!("expected a mapping with a `tokens` list, got {}", root.describe()));
            return d.finish(None::<Tokens>).map_err(to_errors).map(|l| l.value);
        }
        let mut by_hash = BTreeMap::new();
        if let Some(spec) = from_node::<TokensSpec>(&mut d, &root) {
            for (i, item) in spec.tokens.iter().enumerate() {
                let field = |key: &str| format!("tokens[{i}].{key}");
                let mut text = |key: &str, value: &str| {
                    let trimmed = value.trim();
                    if trimmed.is_empty() {
                        d.error(field(key), "expected a non-empty string");
                    }
                    (!trimmed.is_empty()).then(|| trimmed.to_string())
                };
                let sha = text("sha256", &item.sha256).map(|s| s.to_ascii_lowercase());
                let identity = text("identity", &item.identity);
                let role = text("role", &item.role);
                let sha = sha.filter(|s| {
                    let ok = s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit());
                    if !ok {
                        d.error(
                            field("sha256"),
                            "expected 64 hex digits (the sha256 of the token; see `guardrail token hash`)",
                        );
                    }
                    ok
                });
                let role = role.and_then(|r| {
                    let parsed = Role::parse(&r);
                    if parsed.is_none() {
                        let mut msg = format!("unknown role \"{r}\" (viewer, deployer, approver, admin)");
                        if let Some(s) = suggest(&r, ROLES) {
                            msg.push_str(&format!("; did you mean {s:?}?"));
                        }
                        d.error(field("role"), msg);
                    }
                    parsed
                });
                if let (Some(sha), Some(identity), Some(role)) = (sha, identity, role) {
                    match by_hash.entry(sha) {
                        std::collections::btree_map::Entry::Occupied(_) => {
                            d.error(field("sha256"), "the same token is listed twice")
                        }
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert(Caller { identity, role });
                        }
                    }
                }
            }
        }
        d.finish(Some(Tokens { by_hash })).map(|l| l.value).map_err(to_errors)
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
    fn a_tokens_file_others_may_write_is_refused_by_load() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        let text = format!("tokens:\n  - sha256: {}\n    identity: ci\n    role: deployer\n", hash_token("a"));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(Tokens::load(&path).unwrap().len(), 1);
        for mode in [0o664, 0o646, 0o666] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let es = Tokens::load(&path).unwrap_err();
            assert_eq!(es, [TokensError::Writable { path: path.clone(), mode }]);
            let m = es[0].to_string();
            assert!(m.contains("writable by its group or by everyone") && m.contains("chmod go-w"), "{m}");
        }
    }

    #[test]
    fn roles_schema_lists_the_names_a_tokens_file_accepts() {
        // Wire schemas (OpenAPI, MCP) embed this one, so it must name exactly what
        // `Role::parse` and serde accept.
        let schema = serde_json::to_value(schemars::schema_for!(Role)).unwrap();
        let names: Vec<&str> = schema["oneOf"]
            .as_array()
            .map(|vs| vs.iter().filter_map(|v| v["const"].as_str()).collect())
            .or_else(|| schema["enum"].as_array().map(|vs| vs.iter().filter_map(|v| v.as_str()).collect()))
            .unwrap();
        assert_eq!(names, ["viewer", "deployer", "approver", "admin"]);
        for n in names {
            assert_eq!(Role::parse(n).map(Role::as_str), Some(n));
        }
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
        assert!(errs.iter().all(|e| matches!(e, TokensError::Config(c) if c.line.is_some())), "{errs:?}");
        let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(all.iter().any(|e| e.contains("tokens.yaml:2:") && e.contains("64 hex digits")), "{all:?}");
        assert!(all.iter().any(|e| e.contains("tokens.yaml:4:") && e.contains("unknown role \"boss\"")), "{all:?}");
        assert!(all.iter().any(|e| e.contains("tokens[0].extra") && e.contains("unknown key")), "{all:?}");
        assert!(parse("nope: []\n").is_err());
        assert!(parse("[]").is_err());
    }

    /// Own format: YAML 1.2 core schema, serde's shape errors with positions, then every value.
    #[test]
    fn own_format_messages() {
        let h = hash_token("a");
        let t = parse(&format!("tokens:\n  - {{sha256: {h}, identity: on, role: admin}}\n")).unwrap();
        assert_eq!(t.check("a").map(|c| c.identity), Some("on".to_string()));
        let msgs = |text: &str| parse(text).unwrap_err().into_iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert_eq!(
            msgs(&format!(
                "tokens:\n  - {{sha256: {h}, identity: ci, role: admn}}\n  - {{sha256: '{h}', identity: ' ', role: viewer}}\n"
            )),
            [
                "tokens.yaml:2:94: tokens[0].role: unknown role \"admn\" (viewer, deployer, approver, admin); did you mean \"admin\"?",
                "tokens.yaml:3:82: tokens[1].identity: expected a non-empty string",
            ]
        );
        assert_eq!(
            msgs(&format!("tokens:\n  - {{sha256: {h}, role: admin}}\n")),
            ["tokens.yaml:2:5: tokens[0].identity: is required"]
        );
        assert_eq!(
            msgs("token: []\n"),
            [
                "tokens.yaml:1:1: token: unknown key \"token\"; did you mean \"tokens\"?",
                "tokens.yaml:1:1: tokens: is required",
            ]
        );
        assert_eq!(msgs("tokens: {}\n"), ["tokens.yaml:1:1: tokens: must be a list, got a mapping"]);
        assert_eq!(msgs("[]\n"), ["tokens.yaml:1:1: expected a mapping with a `tokens` list, got a list"]);
        assert_eq!(
            msgs(&format!(
                "tokens:\n  - {{sha256: {h}, identity: a, role: admin}}\n  - {{sha256: {}, identity: b, role: viewer}}\n",
                h.to_uppercase()
            )),
            ["tokens.yaml:3:6: tokens[1].sha256: the same token is listed twice"]
        );
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
