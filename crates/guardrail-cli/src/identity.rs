//! Who is acting on a governor command, from something the person cannot simply type.
//!
//! - **With a tokens file** (`--tokens FILE`, else `GUARDRAIL_TOKENS`, else the governor
//!   config's `tokens:`; the format of `guardrail serve --tokens`, [`guardrail_config::tokens`])
//!   every governor command needs `--token TOKEN` (or `GUARDRAIL_TOKEN`): the identity and the
//!   role are the token's, and the role must permit the command as it does on the HTTP API
//!   (`incident run` needs `deployer`; `approve`, `incident execute|resolve|release-claim` and
//!   `kb review` need `approver`; `admin` may do all).
//! - **Without one**, the identity is the OS account of the process: the real uid and its
//!   passwd entry (`getuid` + `getpwuid_r`), never `USER`, `LOGNAME` or `GUARDRAIL_USER`, which
//!   anyone can set.
//!
//! Either way `--as NAME` may only restate the identity; any other name is refused. A refusal
//! records nothing: nobody was established to record it for.
//!
//! Exit codes: 64 a tokens file is configured but no token was given (or a token without a
//! tokens file), [`Exit::Unauthenticated`] (14) the token is not in the file, `--as` differs from the
//! token's or the OS account's identity, or the OS account cannot be read; [`Exit::Forbidden`] (15)
//! the token's role does not permit the command; 3 the tokens file cannot be read or parsed.

use std::path::{Path, PathBuf};

use guardrail_config::tokens::{Role, Tokens};
use guardrail_core::approval::valid_user;
use guardrail_gate::inputs::EnvLookup;
use serde_json::Value;

use guardrail_gate::exit::Exit;

/// `--token` and `--tokens`, shared by every governor command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// Your bearer token, when a tokens file is configured; prefer the environment variable,
    /// which does not show in the process list [env: GUARDRAIL_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Tokens file (the format of `guardrail serve --tokens`): with one, the identity and role
    /// are your token's [env: GUARDRAIL_TOKENS] [default: the governor config's `tokens:`; with
    /// none, the identity is your OS account]
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
}

/// What a governor command is about to do, and so which role its token needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// `incident run`: propose (as `POST /api/incidents`).
    Propose,
    /// `incident execute` (as `POST /api/incidents/{id}/execute`).
    Execute,
    /// `approve` (as `POST /api/incidents/{id}/approve|force-override`).
    Approve,
    /// `incident release-claim`.
    ReleaseClaim,
    /// `incident resolve` (as `POST /api/incidents/{id}/resolve`).
    Resolve,
    /// `kb review`.
    Review,
}

impl Act {
    /// The command, as the user typed it.
    pub fn command(self) -> &'static str {
        match self {
            Act::Propose => "incident run",
            Act::Execute => "incident execute",
            Act::Approve => "approve",
            Act::ReleaseClaim => "incident release-claim",
            Act::Resolve => "incident resolve",
            Act::Review => "kb review",
        }
    }

    /// The role a token needs (or `admin`), as on the HTTP API.
    pub fn role(self) -> Role {
        match self {
            Act::Propose => Role::Deployer,
            _ => Role::Approver,
        }
    }
}

/// How the identity was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticated {
    /// A token from a tokens file.
    Token {
        /// The tokens file.
        file: PathBuf,
        /// Where its name came from (`--tokens`, `GUARDRAIL_TOKENS`, the governor config).
        from: &'static str,
        /// The file's sha256.
        sha256: String,
        /// The token's role.
        role: Role,
        /// The tokens file's owner (uid).
        owner_uid: u32,
        /// Whether the real uid running the command may write the tokens file: then the file
        /// cannot prove who the caller is (they could have issued themselves any token), so a
        /// warning is printed and the records say so.
        writable_by_caller: bool,
    },
    /// The OS account of the process.
    OsAccount {
        /// The real uid.
        uid: u32,
    },
}

/// The person acting, and how that is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The identity (the token's, or the OS account's name).
    pub name: String,
    /// How it was established.
    pub by: Authenticated,
}

/// How the identity was established, as the audit records carry it (`authenticated_by`, next
/// to the governor config). Object keys are sorted in the records either way, so the bytes are
/// those the `json!` object this replaces gave.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum AuthenticatedBy {
    /// A token from a tokens file.
    Token {
        /// Its role.
        role: Role,
        /// The tokens file.
        tokens_file: String,
        /// Its owner (uid).
        tokens_file_owner_uid: u32,
        /// Whether the caller may write it (then it proves nothing about who they are).
        tokens_file_writable_by_caller: bool,
        /// The file's sha256.
        tokens_sha256: String,
    },
    /// The OS account of the process.
    OsAccount {
        /// The real uid.
        uid: u32,
    },
}

impl Actor {
    /// How the identity was established, typed.
    pub fn authenticated_by(&self) -> AuthenticatedBy {
        match &self.by {
            Authenticated::Token { file, sha256, role, owner_uid, writable_by_caller, .. } => AuthenticatedBy::Token {
                role: *role,
                tokens_file: file.display().to_string(),
                tokens_file_owner_uid: *owner_uid,
                tokens_file_writable_by_caller: *writable_by_caller,
                tokens_sha256: sha256.clone(),
            },
            Authenticated::OsAccount { uid } => AuthenticatedBy::OsAccount { uid: *uid },
        }
    }

    /// [`Actor::authenticated_by`] as a JSON value, for the records' bodies the callers assemble.
    pub fn describe(&self) -> Value {
        serde_json::to_value(self.authenticated_by()).unwrap_or(Value::Null)
    }
}

/// Why no identity was established. Nothing was recorded. [`Refusal::exit`] is its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The tokens file cannot be read, is writable by others, or does not parse (3).
    TokensFile {
        /// Where its name came from.
        from: &'static str,
        /// Every problem, naming the file (and field, line, column when it is about one).
        reason: String,
    },
    /// A tokens file is configured and no token was given (64).
    NoToken {
        /// The tokens file.
        file: PathBuf,
        /// Where its name came from.
        from: &'static str,
        /// The command, as typed.
        command: &'static str,
    },
    /// The token is not in the file (14).
    UnknownToken {
        /// The tokens file.
        file: PathBuf,
        /// Where its name came from.
        from: &'static str,
    },
    /// The token's role does not permit the command (15).
    RoleNotPermitted {
        /// The token's identity.
        identity: String,
        /// Its role.
        role: Role,
        /// The command, as typed.
        command: &'static str,
        /// The role the command needs.
        needs: Role,
        /// The tokens file.
        file: PathBuf,
    },
    /// `--as` names someone other than the token's identity (14).
    ClaimNotToken {
        /// What `--as` said.
        claimed: String,
        /// The token's identity.
        identity: String,
        /// The tokens file.
        file: PathBuf,
    },
    /// A token and no tokens file to check it against (64).
    TokenWithoutFile,
    /// The OS account cannot be named (14).
    OsAccount(OsAccountError),
    /// `--as` names someone other than the OS account (14).
    ClaimNotAccount {
        /// What `--as` said.
        claimed: String,
        /// The account's name.
        name: String,
        /// Its uid.
        uid: u32,
    },
    /// The identity is not a valid user name (14).
    NotAUserName {
        /// The identity.
        name: String,
    },
}

/// Why the OS account running the command cannot be named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsAccountError {
    /// The uid has no passwd entry.
    NoPasswdEntry {
        /// The real uid.
        uid: u32,
    },
    /// The passwd database could not be read.
    Unreadable {
        /// The real uid.
        uid: u32,
        /// The system's reason.
        reason: String,
    },
}

// The CLI crate has no thiserror; Display and Error are written out.
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TokensFile { from, reason } => write!(f, "tokens file (from {from}): {reason}"),
            Refusal::NoToken { file, from, command } => write!(
                f,
                "a tokens file is configured ({}, from {from}), so `guardrail {command}` needs your token: \
                 set GUARDRAIL_TOKEN (or pass --token)",
                file.display()
            ),
            Refusal::UnknownToken { file, from } => {
                write!(f, "the token given is not in the tokens file {} (from {from})", file.display())
            }
            Refusal::RoleNotPermitted { identity, role, command, needs, file } => write!(
                f,
                "{identity}'s token has role {}; `guardrail {command}` needs role {} or admin (tokens file {})",
                role.as_str(),
                needs.as_str(),
                file.display()
            ),
            Refusal::ClaimNotToken { claimed, identity, file } => write!(
                f,
                "--as {claimed} differs from the token's identity {identity} (tokens file {}): the identity is \
                 the token's; drop --as",
                file.display()
            ),
            Refusal::TokenWithoutFile => f.write_str(
                "a token was given (--token or GUARDRAIL_TOKEN) but no tokens file is configured \
                 (--tokens, GUARDRAIL_TOKENS or the governor config's tokens:), so it cannot be checked",
            ),
            Refusal::OsAccount(e) => write!(f, "{e}"),
            Refusal::ClaimNotAccount { claimed, name, uid } => write!(
                f,
                "--as {claimed} differs from the OS account {name} (uid {uid}) running this command: without a \
                 tokens file the identity is the OS account, and --as may only restate it (configure a \
                 tokens file to act under another identity)"
            ),
            Refusal::NotAUserName { name } => {
                write!(f, "the identity {name:?} is not a user name (1-64 of A-Z a-z 0-9 . _ @ -)")
            }
        }
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Refusal::OsAccount(e) => Some(e),
            _ => None,
        }
    }
}

impl From<OsAccountError> for Refusal {
    fn from(e: OsAccountError) -> Refusal {
        Refusal::OsAccount(e)
    }
}

impl std::fmt::Display for OsAccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OsAccountError::NoPasswdEntry { uid } => {
                write!(f, "the OS account (uid {uid}) has no passwd entry, so nobody can be named as acting")
            }
            OsAccountError::Unreadable { uid, reason } => {
                write!(f, "the OS account (uid {uid}) could not be read from the passwd database: {reason}")
            }
        }
    }
}

impl std::error::Error for OsAccountError {}

impl Refusal {
    /// The exit code: 64 (usage), [`Exit::Unauthenticated`], [`Exit::Forbidden`] or 3.
    pub fn exit(&self) -> Exit {
        match self {
            Refusal::TokensFile { .. } => Exit::CannotDecide,
            Refusal::NoToken { .. } | Refusal::TokenWithoutFile => Exit::Usage,
            Refusal::RoleNotPermitted { .. } => Exit::Forbidden,
            Refusal::UnknownToken { .. }
            | Refusal::ClaimNotToken { .. }
            | Refusal::OsAccount(_)
            | Refusal::ClaimNotAccount { .. }
            | Refusal::NotAUserName { .. } => Exit::Unauthenticated,
        }
    }

    /// Prints the refusal and returns its exit code.
    pub fn report(&self) -> Exit {
        let code = self.exit();
        let what = match code {
            Exit::Usage => "usage error",
            Exit::Unauthenticated => "not authenticated",
            Exit::Forbidden => "not permitted",
            _ => "could not decide",
        };
        eprintln!("guardrail: {what} (exit {code}): {self}; nothing was recorded");
        code
    }
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|v| !v.trim().is_empty())
}

/// Establishes who runs `act`: see the module documentation. `claimed` is `--as`;
/// `config_tokens` the governor config's `tokens:` file.
pub fn establish(
    args: &AuthArgs,
    claimed: Option<&str>,
    config_tokens: Option<&Path>,
    act: Act,
    env: EnvLookup<'_>,
) -> Result<Actor, Refusal> {
    let file = args
        .tokens
        .clone()
        .map(|p| (p, "--tokens"))
        .or_else(|| nonempty(env("GUARDRAIL_TOKENS")).map(|p| (PathBuf::from(p), "GUARDRAIL_TOKENS")))
        .or_else(|| config_tokens.map(|p| (p.to_path_buf(), "the governor config's tokens:")));
    let token = args.token.clone().filter(|t| !t.is_empty()).or_else(|| nonempty(env("GUARDRAIL_TOKEN")));
    let claimed = claimed.map(str::trim);
    let command = act.command();
    let actor = match file {
        Some((file, from)) => {
            let file_refused = |reason: String| Refusal::TokensFile { from, reason };
            let src = guardrail_config::read_source(&file).map_err(|e| file_refused(e.to_string()))?;
            let (owner_uid, writable_by_caller) = tokens_file_trust(&file).map_err(|e| file_refused(e.to_string()))?;
            let tokens = Tokens::parse(&src)
                .map_err(|es| file_refused(es.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))?;
            let Some(token) = token else {
                return Err(Refusal::NoToken { file, from, command });
            };
            let Some(caller) = tokens.check(&token) else {
                return Err(Refusal::UnknownToken { file, from });
            };
            if !caller.role.allows(act.role()) {
                return Err(Refusal::RoleNotPermitted {
                    identity: caller.identity,
                    role: caller.role,
                    command,
                    needs: act.role(),
                    file,
                });
            }
            if let Some(c) = claimed.filter(|c| *c != caller.identity) {
                return Err(Refusal::ClaimNotToken { claimed: c.to_string(), identity: caller.identity, file });
            }
            if writable_by_caller {
                eprintln!(
                    "guardrail: warning: you (uid {}) can write the tokens file {}, so it cannot prove who you \
                     are; keep it owned and writable only by the operator account (the records note this)",
                    nix::unistd::getuid(),
                    file.display()
                );
            }
            Actor {
                name: caller.identity,
                by: Authenticated::Token {
                    file,
                    from,
                    sha256: src.sha256.clone(),
                    role: caller.role,
                    owner_uid,
                    writable_by_caller,
                },
            }
        }
        None => {
            if token.is_some() {
                return Err(Refusal::TokenWithoutFile);
            }
            let (uid, name) = os_account()?;
            if let Some(c) = claimed.filter(|c| *c != name) {
                return Err(Refusal::ClaimNotAccount { claimed: c.to_string(), name, uid });
            }
            Actor { name, by: Authenticated::OsAccount { uid } }
        }
    };
    if !valid_user(&actor.name) {
        return Err(Refusal::NotAUserName { name: actor.name });
    }
    Ok(actor)
}

/// Whether a tokens file can be trusted to say who is acting: refused when anyone but its
/// owner may write it (group- or world-writable, as ssh refuses such keys); otherwise its owner
/// and whether the real uid running this command may write it. Root may write every file and
/// can act as anyone on the machine anyway, so root is not reported as a writer.
fn tokens_file_trust(file: &Path) -> Result<(u32, bool), guardrail_config::tokens::TokensError> {
    let owner = guardrail_config::tokens::check_file_mode(file)?;
    let uid = nix::unistd::getuid();
    let writable = !uid.is_root() && nix::unistd::access(file, nix::unistd::AccessFlags::W_OK).is_ok();
    Ok((owner, writable))
}

/// The OS account of this process: the real uid and its passwd entry's name.
pub fn os_account() -> Result<(u32, String), OsAccountError> {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => Ok((uid.as_raw(), u.name)),
        Ok(None) => Err(OsAccountError::NoPasswdEntry { uid: uid.as_raw() }),
        Err(e) => Err(OsAccountError::Unreadable { uid: uid.as_raw(), reason: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn tokens_file(dir: &Path) -> PathBuf {
        let p = dir.join("tokens.yaml");
        let entry = |t: &str, id: &str, role: &str| {
            format!("  - sha256: {}\n    identity: {id}\n    role: {role}\n", guardrail_config::tokens::hash_token(t))
        };
        let text = format!(
            "tokens:\n{}{}{}",
            entry("t-dave", "dave", "deployer"),
            entry("t-bob", "bob", "approver"),
            entry("t-root", "root-admin", "admin")
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_token_names_the_actor_and_its_role_must_permit_the_act() {
        let dir = tempfile::tempdir().unwrap();
        let file = tokens_file(dir.path());
        let args = |t: &str| AuthArgs { token: Some(t.into()), tokens: Some(file.clone()) };
        let a = establish(&args("t-bob"), None, None, Act::Approve, &no_env).unwrap();
        assert_eq!(a.name, "bob");
        assert!(matches!(a.by, Authenticated::Token { role: Role::Approver, .. }));
        // --as may restate it, nothing else.
        assert!(establish(&args("t-bob"), Some("bob"), None, Act::Approve, &no_env).is_ok());
        let r = establish(&args("t-bob"), Some("incident-commander"), None, Act::Approve, &no_env).unwrap_err();
        assert_eq!(r.exit(), Exit::Unauthenticated);
        assert!(
            matches!(&r, Refusal::ClaimNotToken { claimed, identity, .. } if claimed == "incident-commander" && identity == "bob"),
            "{r:?}"
        );
        assert!(r.to_string().contains("--as incident-commander differs from the token's identity bob"), "{r}");
        // The role of the HTTP API.
        let r = establish(&args("t-dave"), None, None, Act::Approve, &no_env).unwrap_err();
        assert_eq!(r.exit(), Exit::Forbidden);
        assert!(matches!(&r, Refusal::RoleNotPermitted { role: Role::Deployer, needs: Role::Approver, .. }), "{r:?}");
        assert!(r.to_string().contains("dave's token has role deployer") && r.to_string().contains("approver"), "{r}");
        assert!(establish(&args("t-dave"), None, None, Act::Propose, &no_env).is_ok());
        assert_eq!(establish(&args("t-bob"), None, None, Act::Propose, &no_env).unwrap_err().exit(), Exit::Forbidden);
        for act in [Act::Propose, Act::Execute, Act::Approve, Act::ReleaseClaim, Act::Resolve, Act::Review] {
            assert!(establish(&args("t-root"), None, None, act, &no_env).is_ok());
        }
        // Unknown and missing tokens.
        let r = establish(&args("guess"), None, None, Act::Approve, &no_env).unwrap_err();
        assert_eq!(r, Refusal::UnknownToken { file: file.clone(), from: "--tokens" });
        assert_eq!(r.exit(), Exit::Unauthenticated);
        assert!(r.to_string().contains("not in the tokens file") && r.to_string().contains("tokens.yaml"), "{r}");
        let none = AuthArgs { token: None, tokens: Some(file.clone()) };
        let r = establish(&none, Some("bob"), None, Act::Approve, &no_env).unwrap_err();
        assert_eq!(r.exit(), Exit::Usage);
        assert!(r.to_string().contains("GUARDRAIL_TOKEN"), "{r}");
    }

    #[test]
    fn a_tokens_file_others_may_write_proves_nothing() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = tokens_file(dir.path());
        let args = AuthArgs { token: Some("t-bob".into()), tokens: Some(file.clone()) };
        for mode in [0o666, 0o620, 0o602] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = establish(&args, None, None, Act::Approve, &no_env).unwrap_err();
            assert_eq!(r.exit(), Exit::CannotDecide, "{mode:o}");
            let m = r.to_string();
            assert!(m.contains("writable by its group or by everyone") && m.contains("chmod go-w"), "{m}");
        }
        // Owner-only write: accepted, and the records say who owns it and whether the caller may
        // write it (root may write anything and is not reported as a writer).
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let a = establish(&args, None, None, Act::Approve, &no_env).unwrap();
        let uid = nix::unistd::getuid();
        let Authenticated::Token { owner_uid, writable_by_caller, .. } = a.by.clone() else { panic!("{a:?}") };
        assert_eq!(owner_uid, uid.as_raw());
        assert_eq!(writable_by_caller, !uid.is_root());
        assert_eq!(a.describe()["tokens_file_writable_by_caller"], !uid.is_root());
        // The record's object is what the json! it replaced gave.
        assert_eq!(
            a.describe(),
            serde_json::json!({
                "method": "token", "tokens_file": file.display().to_string(), "tokens_sha256": a.describe()["tokens_sha256"],
                "role": "approver", "tokens_file_owner_uid": uid.as_raw(), "tokens_file_writable_by_caller": !uid.is_root(),
            })
        );
    }

    #[test]
    fn the_tokens_file_comes_from_the_flag_the_environment_or_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = tokens_file(dir.path());
        let f = file.display().to_string();
        let env = |k: &str| match k {
            "GUARDRAIL_TOKENS" => Some(f.clone()),
            "GUARDRAIL_TOKEN" => Some("t-bob".to_string()),
            _ => None,
        };
        let a = establish(&AuthArgs::default(), None, None, Act::Approve, &env).unwrap();
        assert_eq!(a.name, "bob");
        let a = establish(
            &AuthArgs { token: Some("t-dave".into()), tokens: None },
            None,
            Some(&file),
            Act::Propose,
            &no_env,
        )
        .unwrap();
        assert!(matches!(&a.by, Authenticated::Token { from: "the governor config's tokens:", .. }), "{a:?}");
        // An unreadable or invalid tokens file cannot decide (3), naming the file.
        let missing = AuthArgs { token: Some("t-bob".into()), tokens: Some(dir.path().join("nope.yaml")) };
        let r = establish(&missing, None, None, Act::Approve, &no_env).unwrap_err();
        assert_eq!(r.exit(), Exit::CannotDecide);
        assert!(r.to_string().contains("nope.yaml"), "{r}");
    }

    #[test]
    fn without_a_tokens_file_the_identity_is_the_os_account_not_an_env_variable() {
        let (uid, name) = os_account().unwrap();
        let env = |k: &str| match k {
            "USER" | "LOGNAME" | "GUARDRAIL_USER" => Some("incident-commander".to_string()),
            _ => None,
        };
        let a = establish(&AuthArgs::default(), None, None, Act::Approve, &env).unwrap();
        assert_eq!(a, Actor { name: name.clone(), by: Authenticated::OsAccount { uid } });
        assert_eq!(a.describe(), serde_json::json!({"method": "os_account", "uid": uid}));
        assert!(establish(&AuthArgs::default(), Some(&name), None, Act::Approve, &env).is_ok());
        let r = establish(&AuthArgs::default(), Some("incident-commander"), None, Act::Approve, &env).unwrap_err();
        assert_eq!(r.exit(), Exit::Unauthenticated);
        assert!(r.to_string().contains(&format!("differs from the OS account {name} (uid {uid})")), "{r}");
        // A token with nothing to check it against is refused, not ignored.
        let r = establish(&AuthArgs { token: Some("x".into()), tokens: None }, None, None, Act::Propose, &no_env)
            .unwrap_err();
        assert_eq!((r.exit(), r), (Exit::Usage, Refusal::TokenWithoutFile));
    }
}
