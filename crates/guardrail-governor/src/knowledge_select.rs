//! Which knowledge base an entry point uses, and with it where `query_live_logs` reads: one
//! resolution for `incident run|execute|resolve`, `approve`, every `kb` subcommand, `guardrail
//! serve`'s governor endpoints and `guardrail mcp` (stdio and HTTP), so none of them can
//! disagree about precedence.
//!
//! Precedence ([`select_knowledge`]), first that says something wins:
//! 1. the command's `--kb` (a file, or an `http(s)://` cluster URL);
//! 2. `GUARDRAIL_KB` (the same);
//! 3. the governor config's `knowledge:` block (`guardrail_config::KnowledgeConfig`): a SQLite
//!    `path`, or an Elasticsearch cluster with its index names, credentials variables, CA file,
//!    timeout and retries;
//! 4. [`DEFAULT_KB`].
//!
//! A cluster named by URL (1, 2) takes the original's index names and its credentials from
//! `GUARDRAIL_ES_API_KEY`, or `GUARDRAIL_ES_USERNAME` with `GUARDRAIL_ES_PASSWORD`, and extra
//! trusted CAs from `GUARDRAIL_ES_CA_FILE`; a block names its own variables, and a variable it
//! names that is unset is an error, never anonymous access.
//!
//! Live logs ([`KnowledgeChoice::live_logs`]): a logs file (`--logs`) when one is given, else,
//! when the knowledge base is an Elasticsearch cluster, its logs index (`knowledge.indices.logs`,
//! by default the original's `kibana_sample_data_logs`) through [`ElasticLogs`] unless its
//! block says `live_logs: false` (a cluster kept for knowledge only), else none. A
//! cluster that cannot answer the logs search is a tool error, which stops the pipeline (could
//! not decide): it is never "no logs", which the stress phase would record as "no telemetry".

use std::path::{Path, PathBuf};

use guardrail_config::{ElasticCredentials, ElasticsearchSettings, KnowledgeBackend, KnowledgeConfig};
use guardrail_knowledge::{
    ElasticAuth, ElasticConfig, ElasticKnowledgeStore, KnowledgeError, KnowledgeStore, SqliteKnowledgeStore,
};

use crate::logs::{ElasticLogs, LogsError, LogsSource, LogsSummary, NdjsonLogs};

/// Default knowledge base, relative to the working directory.
pub const DEFAULT_KB: &str = ".guardrail/knowledge.db";
/// The variable naming the knowledge base when no `--kb` does.
pub const KB_ENV: &str = "GUARDRAIL_KB";
/// An API key for a cluster named by URL.
pub const ES_API_KEY: &str = "GUARDRAIL_ES_API_KEY";
/// A user name for a cluster named by URL (with [`ES_PASSWORD`]).
pub const ES_USERNAME: &str = "GUARDRAIL_ES_USERNAME";
/// The password of [`ES_USERNAME`].
pub const ES_PASSWORD: &str = "GUARDRAIL_ES_PASSWORD";
/// A PEM file of extra trusted CAs for a cluster named by URL.
pub const ES_CA_FILE: &str = "GUARDRAIL_ES_CA_FILE";

/// What said which knowledge base to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnowledgeOrigin {
    /// The command's `--kb`.
    Flag,
    /// `GUARDRAIL_KB`.
    Environment,
    /// The governor config's `knowledge:` block.
    Config,
    /// Nothing: [`DEFAULT_KB`].
    Default,
}

/// The knowledge base in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnowledgeChoice {
    /// A SQLite FTS5 file.
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What chose it.
        origin: KnowledgeOrigin,
    },
    /// An Elasticsearch cluster.
    Elasticsearch {
        /// The client's settings, secrets read.
        config: ElasticConfig,
        /// The logs index `query_live_logs` reads; `None` when the block says `live_logs:
        /// false` (then, as without any logs source, `query_live_logs` is "not configured").
        logs_index: Option<String>,
        /// What chose it.
        origin: KnowledgeOrigin,
    },
}

/// Why the knowledge base in force cannot be set up (nothing was contacted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnowledgeSelectError {
    /// The credentials variables are missing, contradictory or unset.
    #[error("{0}")]
    Credentials(String),
    /// The CA file could not be read.
    #[error("{what} {path}: {message}")]
    CaFile {
        /// Which setting named it (`knowledge.ca_file`, `GUARDRAIL_ES_CA_FILE=`).
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// Where the knowledge base is: `named` (`--kb`), else `GUARDRAIL_KB`, else `block` (the
/// governor config's `knowledge:`), else [`DEFAULT_KB`] (see the module doc). Secrets and the CA
/// file are read now, from `env` and the file system; nothing is contacted.
pub fn select_knowledge(
    named: Option<&Path>,
    block: Option<&KnowledgeConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<KnowledgeChoice, KnowledgeSelectError> {
    let from_env = env(KB_ENV).filter(|v| !v.trim().is_empty()).map(PathBuf::from);
    let (named, origin) = match (named, from_env) {
        (Some(p), _) => (Some(p.to_path_buf()), KnowledgeOrigin::Flag),
        (None, Some(p)) => (Some(p), KnowledgeOrigin::Environment),
        (None, None) => (None, KnowledgeOrigin::Config),
    };
    if let Some(kb) = named {
        return match cluster_url(&kb) {
            Some(url) => Ok(KnowledgeChoice::Elasticsearch {
                config: elastic_from_env(url, env)?,
                logs_index: Some(guardrail_config::KnowledgeIndices::default().logs),
                origin,
            }),
            None => Ok(KnowledgeChoice::Sqlite { path: kb, origin }),
        };
    }
    match block.map(|k| &k.backend) {
        Some(KnowledgeBackend::Elasticsearch(es)) => Ok(KnowledgeChoice::Elasticsearch {
            config: elastic_from_config(es, env)?,
            logs_index: es.live_logs.then(|| es.indices.logs.clone()),
            origin: KnowledgeOrigin::Config,
        }),
        Some(KnowledgeBackend::Sqlite { path: Some(p) }) => {
            Ok(KnowledgeChoice::Sqlite { path: p.clone(), origin: KnowledgeOrigin::Config })
        }
        _ => Ok(KnowledgeChoice::Sqlite { path: PathBuf::from(DEFAULT_KB), origin: KnowledgeOrigin::Default }),
    }
}

/// The cluster URL a `--kb` value is, when it is `http://` or `https://`.
fn cluster_url(kb: &Path) -> Option<&str> {
    kb.to_str().filter(|u| u.starts_with("http://") || u.starts_with("https://"))
}

/// A cluster named by URL: the original's indices, credentials and CA from the `GUARDRAIL_ES_*`
/// variables.
fn elastic_from_env(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<ElasticConfig, KnowledgeSelectError> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut cfg = ElasticConfig::new(url);
    cfg.auth = match (var(ES_API_KEY), var(ES_USERNAME), var(ES_PASSWORD)) {
        (Some(_), Some(_), _) => {
            return Err(KnowledgeSelectError::Credentials(format!(
                "set {ES_API_KEY} or {ES_USERNAME} with {ES_PASSWORD}, not both"
            )));
        }
        (Some(key), None, _) => Some(ElasticAuth::ApiKey(key.trim().to_string())),
        (None, Some(user), Some(password)) => Some(ElasticAuth::Basic { user, password }),
        (None, Some(_), None) => {
            return Err(KnowledgeSelectError::Credentials(format!("{ES_USERNAME} is set but {ES_PASSWORD} is not")));
        }
        (None, None, _) => None,
    };
    if let Some(ca) = var(ES_CA_FILE) {
        let pem = std::fs::read(&ca).map_err(|e| KnowledgeSelectError::CaFile {
            what: "GUARDRAIL_ES_CA_FILE=",
            path: ca.clone(),
            message: e.to_string(),
        })?;
        cfg.ca_pem = Some(pem);
    }
    Ok(cfg)
}

/// Why a block's cluster connection could not be set up from the environment and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionSetupError {
    /// The variable the block names for a secret is unset or empty.
    MissingSecret {
        /// The block's field that names it (`api_key_env`, `password_env`).
        field: &'static str,
        /// The variable.
        var: String,
    },
    /// The CA file could not be read.
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The client settings for a cluster a checked block describes (`knowledge:` or
/// `audit_mirror:`): the API key or password read from the variable the block names (unset or
/// empty is an error, never anonymous access; surrounding whitespace dropped), the CA file read,
/// timeout and retries as `guardrail-config` checked them. The one place a block's connection
/// becomes a client's settings.
pub fn cluster_connection(
    url: &str,
    credentials: Option<&ElasticCredentials>,
    ca_file: Option<&Path>,
    timeout_ms: u64,
    retries: u32,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ElasticConfig, ConnectionSetupError> {
    let secret = |field: &'static str, var: &str| {
        env(var)
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.trim().to_string())
            .ok_or_else(|| ConnectionSetupError::MissingSecret { field, var: var.to_string() })
    };
    let mut cfg = ElasticConfig::new(url);
    cfg.auth = match credentials {
        None => None,
        Some(ElasticCredentials::ApiKeyEnv(var)) => Some(ElasticAuth::ApiKey(secret("api_key_env", var)?)),
        Some(ElasticCredentials::Basic { username, password_env }) => {
            Some(ElasticAuth::Basic { user: username.clone(), password: secret("password_env", password_env)? })
        }
    };
    if let Some(ca) = ca_file {
        cfg.ca_pem = Some(
            std::fs::read(ca)
                .map_err(|e| ConnectionSetupError::CaFile { path: ca.display().to_string(), reason: e.to_string() })?,
        );
    }
    cfg.timeout = std::time::Duration::from_millis(timeout_ms);
    cfg.retries = retries;
    Ok(cfg)
}

/// The client a `knowledge:` block (backend `elasticsearch`) names: [`cluster_connection`] with
/// the block's index names.
pub fn elastic_from_config(
    es: &ElasticsearchSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ElasticConfig, KnowledgeSelectError> {
    let mut cfg =
        cluster_connection(&es.url, es.credentials.as_ref(), es.ca_file.as_deref(), es.timeout_ms, es.retries, env)
            .map_err(|e| match e {
                ConnectionSetupError::MissingSecret { var, .. } => KnowledgeSelectError::Credentials(format!(
                    "knowledge: {var} is not set (the block names it for the Elasticsearch credentials)"
                )),
                ConnectionSetupError::CaFile { path, reason } => {
                    KnowledgeSelectError::CaFile { what: "knowledge.ca_file", path, message: reason }
                }
            })?;
    cfg.indices = guardrail_knowledge::elastic::Indices {
        runbooks: es.indices.runbooks.clone(),
        evidence: es.indices.evidence.clone(),
        policies: es.indices.policies.clone(),
    };
    Ok(cfg)
}

impl KnowledgeChoice {
    /// The file or the cluster's URL, as records and messages name it.
    pub fn describe(&self) -> String {
        match self {
            KnowledgeChoice::Sqlite { path, .. } => path.display().to_string(),
            KnowledgeChoice::Elasticsearch { config, .. } => config.url.clone(),
        }
    }

    /// What chose it.
    pub fn origin(&self) -> KnowledgeOrigin {
        match self {
            KnowledgeChoice::Sqlite { origin, .. } | KnowledgeChoice::Elasticsearch { origin, .. } => *origin,
        }
    }

    /// The SQLite file, when it is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            KnowledgeChoice::Sqlite { path, .. } => Some(path),
            KnowledgeChoice::Elasticsearch { .. } => None,
        }
    }

    /// Opens it for planning and searching: a SQLite file read-only, a cluster whose indices must
    /// exist ([`ElasticKnowledgeStore::open`]: an unreachable cluster is an error here, not an
    /// empty result later).
    pub fn open_read_only(&self) -> Result<Box<dyn KnowledgeStore>, KnowledgeError> {
        match self {
            KnowledgeChoice::Sqlite { path, .. } => Ok(Box::new(SqliteKnowledgeStore::open_read_only(path)?)),
            KnowledgeChoice::Elasticsearch { config, .. } => Ok(Box::new(ElasticKnowledgeStore::open(config.clone())?)),
        }
    }

    /// Opens an existing one for writing (learning, reviews).
    pub fn open_writable(&self) -> Result<Box<dyn KnowledgeStore>, KnowledgeError> {
        match self {
            KnowledgeChoice::Sqlite { path, .. } => Ok(Box::new(SqliteKnowledgeStore::open(path)?)),
            KnowledgeChoice::Elasticsearch { config, .. } => Ok(Box::new(ElasticKnowledgeStore::open(config.clone())?)),
        }
    }

    /// The live logs `query_live_logs` reads: `file` (`--logs`) when given, else this cluster's
    /// logs index when it is one and reads logs, else none (see the module doc).
    pub fn live_logs(&self, file: Option<NdjsonLogs>) -> Result<Option<LiveLogsSource>, LogsError> {
        match (file, self) {
            (Some(f), _) => Ok(Some(LiveLogsSource::File(f))),
            (None, KnowledgeChoice::Elasticsearch { config, logs_index: Some(index), .. }) => {
                Ok(Some(LiveLogsSource::Elastic(ElasticLogs::connect(config.clone(), index)?)))
            }
            (None, KnowledgeChoice::Elasticsearch { logs_index: None, .. } | KnowledgeChoice::Sqlite { .. }) => {
                Ok(None)
            }
        }
    }
}

/// Read-only SQLite knowledge bases kept open between the requests of a long-running server
/// (`guardrail serve`), so a proposal does not open the file, read its schema, register the
/// ranking function and prepare its statements again: each of those cost more than the
/// searches themselves (`open_read_only` and `sqlite3Reprepare` were ~20 % of a proposal).
///
/// A connection is handed to one request at a time ([`PooledKnowledge`]) and comes back when
/// that request ends. While out it holds one read transaction
/// ([`SqliteKnowledgeStore::begin_read`]): the request's searches read one state of the file,
/// and its cached answers are checked against the file once, not at every search. It is only reused while the file is the one it was opened on: the
/// file's device, inode, size, mtime and ctime (and its `-wal` file's size and times) are
/// compared on every checkout, so a file replaced on disk (renamed over, copied over, rewritten
/// with its mtime put back: the ctime still moves) is opened afresh, and a file that cannot be
/// read is opened the plain way (its error is the answer, as before). The old inode cannot be
/// reused while a kept connection holds it open. An Elasticsearch cluster is opened per
/// checkout as before: its open checks that the indices exist, which is the fail-closed
/// answer a request must get when they do not.
#[derive(Debug, Default)]
pub struct KnowledgePool {
    slots: std::sync::Mutex<Vec<PoolSlot>>,
    /// The cluster client last opened, with the config it was opened for: its indices were
    /// checked once ([`ElasticKnowledgeStore::open`]), and its HTTP connections are kept, so
    /// a request does not pay three `_count` calls and a new TLS connection. A later call on a
    /// deleted index still fails (404 is an error, never an empty result); a changed config
    /// opens (and checks) a new client.
    cluster: std::sync::Mutex<Option<(ElasticConfig, ElasticKnowledgeStore)>>,
}

/// The idle connections to one file as it was when they were opened.
#[derive(Debug)]
struct PoolSlot {
    path: PathBuf,
    stamp: FileStamp,
    idle: Vec<SqliteKnowledgeStore>,
}

/// What says a file is still the one a connection was opened on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    main: StatStamp,
    wal: Option<StatStamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct StatStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl StatStamp {
    fn of(path: &Path) -> Option<StatStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        m.is_file().then(|| StatStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let main = StatStamp::of(path)?;
        let mut wal = path.as_os_str().to_os_string();
        wal.push("-wal");
        Some(FileStamp { main, wal: StatStamp::of(Path::new(&wal)) })
    }
}

/// Files whose connections are kept (the server's knowledge base, and another while a config
/// change moves it); more evict the oldest.
const POOL_FILES: usize = 4;
/// Idle connections kept per file: one per concurrent request up to this; more are closed.
const POOL_IDLE: usize = 64;

impl KnowledgePool {
    /// An empty pool.
    pub fn new() -> KnowledgePool {
        KnowledgePool::default()
    }

    /// `choice` opened read-only ([`KnowledgeChoice::open_read_only`]), from the pool when a
    /// connection to the same unchanged file is idle; given back when the guard drops.
    pub fn open_read_only(&self, choice: &KnowledgeChoice) -> Result<PooledKnowledge<'_>, KnowledgeError> {
        let path = match choice {
            KnowledgeChoice::Sqlite { path, .. } => path,
            KnowledgeChoice::Elasticsearch { config, .. } => {
                return Ok(PooledKnowledge { held: Held::Other(Box::new(self.cluster(config)?)), home: None });
            }
        };
        let Some(stamp) = FileStamp::of(path) else {
            // Missing or unreadable: the plain open says why, and nothing is kept.
            return Ok(PooledKnowledge { held: Held::Other(choice.open_read_only()?), home: None });
        };
        let reused = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Connections to what the file was before are closed (dropped) here.
            slots.retain(|s| s.path != *path || s.stamp == stamp);
            slots.iter_mut().find(|s| s.path == *path).and_then(|s| s.idle.pop())
        };
        let store = match reused {
            Some(s) => s,
            None => SqliteKnowledgeStore::open_read_only(path)?,
        };
        // One read transaction for the request's searches: they see one state of the file, and
        // the kept answers are checked against it once ([`SqliteKnowledgeStore::begin_read`]).
        // Not held (busy, say): each search checks on its own, as before.
        store.begin_read();
        Ok(PooledKnowledge { held: Held::Sqlite(Some(store)), home: Some((self, path.clone(), stamp)) })
    }

    /// The kept client for `config`, else a new one opened (indices checked) and kept. Opened
    /// with no lock held: a slow cluster does not hold up other requests' lookups.
    fn cluster(&self, config: &ElasticConfig) -> Result<ElasticKnowledgeStore, KnowledgeError> {
        let kept = self.cluster.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, store)) = kept.as_ref().filter(|(c, _)| c == config) {
            return Ok(store.clone());
        }
        drop(kept);
        let store = ElasticKnowledgeStore::open(config.clone())?;
        *self.cluster.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((config.clone(), store.clone()));
        Ok(store)
    }

    fn give_back(&self, path: PathBuf, stamp: FileStamp, store: SqliteKnowledgeStore) {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match slots.iter_mut().find(|s| s.path == path) {
            // Only to the slot of the file as it was opened: a connection to a replaced file
            // is closed.
            Some(s) if s.stamp == stamp => {
                if s.idle.len() < POOL_IDLE {
                    s.idle.push(store);
                }
            }
            Some(_) => {}
            None => {
                if slots.len() >= POOL_FILES {
                    slots.remove(0);
                }
                slots.push(PoolSlot { path, stamp, idle: vec![store] });
            }
        }
    }

    /// Idle connections kept (tests).
    pub fn idle(&self) -> usize {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().map(|s| s.idle.len()).sum()
    }
}

/// A knowledge base opened through a [`KnowledgePool`], used by one request: derefs to the
/// store; a kept SQLite connection goes back to the pool when this drops.
pub struct PooledKnowledge<'p> {
    held: Held,
    home: Option<(&'p KnowledgePool, PathBuf, FileStamp)>,
}

enum Held {
    Sqlite(Option<SqliteKnowledgeStore>),
    Other(Box<dyn KnowledgeStore>),
}

impl std::fmt::Debug for PooledKnowledge<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledKnowledge").field("pooled", &self.home.is_some()).finish()
    }
}

impl std::ops::Deref for PooledKnowledge<'_> {
    type Target = dyn KnowledgeStore;

    fn deref(&self) -> &Self::Target {
        match &self.held {
            // `Some` until dropped.
            Held::Sqlite(Some(s)) => s,
            Held::Sqlite(None) => unreachable!("a pooled store is taken only on drop"),
            Held::Other(b) => b.as_ref(),
        }
    }
}

impl Drop for PooledKnowledge<'_> {
    fn drop(&mut self) {
        if let (Held::Sqlite(store), Some((pool, path, stamp))) = (&mut self.held, self.home.take())
            && let Some(store) = store.take()
            // Ended before it is idle (a writer waits for every reader); a connection still in a
            // transaction after that is closed, not kept.
            && store.end_read()
        {
            pool.give_back(path, stamp, store);
        }
    }
}

/// The live logs in force: a JSON-lines file or an Elasticsearch logs index.
#[derive(Debug)]
pub enum LiveLogsSource {
    /// `--logs FILE`.
    File(NdjsonLogs),
    /// The knowledge cluster's logs index.
    Elastic(ElasticLogs),
}

impl LogsSource for LiveLogsSource {
    fn describe(&self) -> String {
        match self {
            LiveLogsSource::File(l) => l.describe(),
            LiveLogsSource::Elastic(l) => l.describe(),
        }
    }

    fn summary(
        &self,
        service: Option<&str>,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
    ) -> Result<LogsSummary, LogsError> {
        match self {
            LiveLogsSource::File(l) => l.summary(service, start, end),
            LiveLogsSource::Elastic(l) => l.summary(service, start, end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(text: &str) -> KnowledgeConfig {
        let file = guardrail_config::load_governor_file(&guardrail_config::Source::from_text("g.yaml", text)).unwrap();
        file.value.knowledge.expect("a knowledge block")
    }

    const ES_BLOCK: &str = "knowledge:\n  backend: elasticsearch\n  url: https://es.internal:9200\n  indices: {runbooks: rb, logs: web-logs}\n  username: guardrail\n  password_env: ES_PW\n  timeout_ms: 900\n  retries: 1\n";

    #[test]
    fn flag_then_variable_then_block_then_default() {
        let es = block(ES_BLOCK);
        let env = |k: &str| (k == "ES_PW").then(|| "hunter2".to_string());
        let none = |_: &str| None;
        let kb_env = |k: &str| match k {
            KB_ENV => Some("from-env.db".to_string()),
            _ => None,
        };
        let flag = select_knowledge(Some(Path::new("flag.db")), Some(&es), &kb_env).unwrap();
        assert_eq!(flag, KnowledgeChoice::Sqlite { path: "flag.db".into(), origin: KnowledgeOrigin::Flag });
        let var = select_knowledge(None, Some(&es), &kb_env).unwrap();
        assert_eq!(var, KnowledgeChoice::Sqlite { path: "from-env.db".into(), origin: KnowledgeOrigin::Environment });
        let KnowledgeChoice::Elasticsearch { config, logs_index, origin } =
            select_knowledge(None, Some(&es), &env).unwrap()
        else {
            panic!("the block's cluster");
        };
        assert_eq!(
            (config.url.as_str(), logs_index.as_deref(), origin),
            ("https://es.internal:9200", Some("web-logs"), KnowledgeOrigin::Config)
        );
        assert_eq!((config.indices.runbooks.as_str(), config.indices.evidence.as_str()), ("rb", "evidence-demo"));
        assert_eq!(config.auth, Some(ElasticAuth::Basic { user: "guardrail".into(), password: "hunter2".into() }));
        assert_eq!((config.timeout, config.retries), (std::time::Duration::from_millis(900), 1));
        let sqlite_block = block("knowledge: {backend: sqlite, path: kb/k.db}\n");
        assert_eq!(
            select_knowledge(None, Some(&sqlite_block), &none).unwrap(),
            KnowledgeChoice::Sqlite { path: "kb/k.db".into(), origin: KnowledgeOrigin::Config }
        );
        assert_eq!(
            select_knowledge(None, Some(&block("knowledge: {}\n")), &none).unwrap(),
            KnowledgeChoice::Sqlite { path: DEFAULT_KB.into(), origin: KnowledgeOrigin::Default }
        );
        assert_eq!(select_knowledge(None, None, &none).unwrap().describe(), DEFAULT_KB);
    }

    #[test]
    fn an_unset_credentials_variable_is_an_error_never_anonymous_access() {
        let es = block(ES_BLOCK);
        let e = select_knowledge(None, Some(&es), &|_: &str| None).unwrap_err();
        assert_eq!(e.to_string(), "knowledge: ES_PW is not set (the block names it for the Elasticsearch credentials)");
        let url = |k: &str| match k {
            KB_ENV => Some("http://127.0.0.1:9200".to_string()),
            ES_USERNAME => Some("u".to_string()),
            _ => None,
        };
        let e = select_knowledge(None, None, &url).unwrap_err();
        assert_eq!(e.to_string(), "GUARDRAIL_ES_USERNAME is set but GUARDRAIL_ES_PASSWORD is not");
    }

    fn kb_with(path: &Path, evidence: &[(&str, &str)]) {
        use guardrail_knowledge::{EvidenceDoc, Stance};
        let mut kb = SqliteKnowledgeStore::create(path).unwrap();
        for (id, text) in evidence {
            let doc = EvidenceDoc {
                id: (*id).into(),
                service: "payments-api".into(),
                stance: Stance::Support,
                text: (*text).into(),
            };
            kb.add_evidence(&doc).unwrap();
        }
    }

    fn found(kb: &dyn KnowledgeStore) -> Vec<String> {
        let hits = kb.search_evidence("connection saturation", "payments-api", 10, None).unwrap();
        hits.into_iter().map(|h| h.doc.id).collect()
    }

    /// The cluster's indices are checked once per config, not per request; a changed config
    /// opens (and checks) a new client; a cluster that went away is still an error.
    #[test]
    fn the_pool_keeps_one_checked_cluster_client_per_config() {
        let es = guardrail_test_support::elastic::FakeEs::start();
        let mut config = ElasticConfig::new(&es.url);
        config.timeout = std::time::Duration::from_secs(5);
        ElasticKnowledgeStore::create(config.clone())
            .unwrap()
            .load_sample_data(&guardrail_test_support::examples("governor").join("sample_data.json"))
            .unwrap();
        let choice =
            KnowledgeChoice::Elasticsearch { config: config.clone(), logs_index: None, origin: KnowledgeOrigin::Flag };
        let counts = || es.lines().iter().filter(|l| l.contains("/_count")).count();
        let pool = KnowledgePool::new();
        let before = counts();
        for _ in 0..3 {
            let kb = pool.open_read_only(&choice).unwrap();
            assert_eq!(found(&*kb), ["ev-102"]);
        }
        assert_eq!(counts(), before + 3, "three indices checked once, not per request");

        let mut other = config.clone();
        other.retries = 0;
        let changed =
            KnowledgeChoice::Elasticsearch { config: other, logs_index: None, origin: KnowledgeOrigin::Config };
        assert_eq!(found(&*pool.open_read_only(&changed).unwrap()), ["ev-102"]);
        assert_eq!(counts(), before + 6, "a new config is checked again");

        es.fail_next(&[503, 503, 503, 503, 503, 503]);
        let kb = pool.open_read_only(&changed).unwrap();
        let e = kb.search_evidence("connection saturation", "payments-api", 10, None).unwrap_err();
        assert!(e.to_string().contains("503"), "a kept client still fails closed: {e}");
    }

    #[test]
    fn the_pool_reuses_a_connection_only_while_the_file_is_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        kb_with(&path, &[("ev-1", "db connection saturation")]);
        let choice = KnowledgeChoice::Sqlite { path: path.clone(), origin: KnowledgeOrigin::Flag };
        let pool = KnowledgePool::new();
        {
            let kb = pool.open_read_only(&choice).unwrap();
            assert_eq!(found(&*kb), ["ev-1"]);
            assert_eq!(pool.idle(), 0);
        }
        assert_eq!(pool.idle(), 1, "given back");
        {
            let (a, b) = (pool.open_read_only(&choice).unwrap(), pool.open_read_only(&choice).unwrap());
            assert_eq!(pool.idle(), 0, "the kept one, and a second opened for the second request");
            assert_eq!((found(&*a), found(&*b)), (vec!["ev-1".to_string()], vec!["ev-1".to_string()]));
        }
        assert_eq!(pool.idle(), 2);
        // Replaced on disk (renamed over): the kept connections are closed, the new file read.
        let other = dir.path().join("other.db");
        kb_with(&other, &[("ev-2", "connection pool saturation")]);
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(found(&*pool.open_read_only(&choice).unwrap()), ["ev-2"]);
        assert_eq!(pool.idle(), 1);
        // Written in place: seen.
        let mut w = SqliteKnowledgeStore::open(&path).unwrap();
        let doc = guardrail_knowledge::EvidenceDoc {
            id: "ev-3".into(),
            service: "payments-api".into(),
            stance: guardrail_knowledge::Stance::Support,
            text: "saturation of every connection".into(),
        };
        w.add_evidence(&doc).unwrap();
        drop(w);
        let mut ids = found(&*pool.open_read_only(&choice).unwrap());
        ids.sort();
        assert_eq!(ids, ["ev-2", "ev-3"]);
        // Copied over in place with its mtime put back: the ctime moved, so it is reopened.
        let third = dir.path().join("third.db");
        kb_with(&third, &[("ev-4", "connection saturation again")]);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, std::fs::read(&third).unwrap()).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
        assert_eq!(found(&*pool.open_read_only(&choice).unwrap()), ["ev-4"]);
        // Gone: the plain open's error, nothing kept.
        std::fs::remove_file(&path).unwrap();
        let e = pool.open_read_only(&choice).unwrap_err();
        let plain = choice.open_read_only().err().expect("a missing file does not open");
        assert_eq!(e.to_string(), plain.to_string());
    }

    /// A checked-out connection reads one state of the file: a commit from elsewhere waits
    /// until the request gives it back, and the next request reads what was committed.
    #[test]
    fn a_checked_out_connection_reads_one_state_until_it_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        kb_with(&path, &[("ev-1", "db connection saturation")]);
        let choice = KnowledgeChoice::Sqlite { path: path.clone(), origin: KnowledgeOrigin::Flag };
        let pool = KnowledgePool::new();
        let kb = pool.open_read_only(&choice).unwrap();
        assert_eq!(found(&*kb), ["ev-1"]);
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let mut w = SqliteKnowledgeStore::open(&writer_path).unwrap();
            let doc = guardrail_knowledge::EvidenceDoc {
                id: "ev-3".into(),
                service: "payments-api".into(),
                stance: guardrail_knowledge::Stance::Support,
                text: "saturation of every connection".into(),
            };
            w.add_evidence(&doc).map(|_| std::time::Instant::now())
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!writer.is_finished(), "the commit waits for the request's read");
        assert_eq!(found(&*kb), ["ev-1"], "the same state all through the request");
        let given_back = std::time::Instant::now();
        drop(kb);
        let committed = writer.join().unwrap().expect("the commit lands once the read ends");
        assert!(committed >= given_back);
        let mut ids = found(&*pool.open_read_only(&choice).unwrap());
        ids.sort();
        assert_eq!(ids, ["ev-1", "ev-3"]);
    }

    #[test]
    fn a_cluster_reads_its_logs_index_and_a_logs_file_wins() {
        let env = |k: &str| match k {
            ES_API_KEY => Some("k".to_string()),
            _ => None,
        };
        let es = select_knowledge(Some(Path::new("http://127.0.0.1:9")), None, &env).unwrap();
        let logs = es.live_logs(None).unwrap().expect("the cluster's logs");
        assert_eq!(logs.describe(), "elasticsearch:http://127.0.0.1:9/kibana_sample_data_logs");
        let file = es.live_logs(Some(NdjsonLogs::from_text("l.ndjson", ""))).unwrap().unwrap();
        assert_eq!(file.describe(), "ndjson:l.ndjson");
        let sqlite = select_knowledge(Some(Path::new("k.db")), None, &env).unwrap();
        assert!(sqlite.live_logs(None).unwrap().is_none());
    }

    #[test]
    fn a_cluster_kept_for_knowledge_only_reads_no_logs() {
        let env = |k: &str| match k {
            "ES_PW" => Some("hunter2".to_string()),
            _ => None,
        };
        let text = "knowledge:\n  backend: elasticsearch\n  url: https://es.internal:9200\n  indices: {runbooks: rb}\n  live_logs: false\n  username: guardrail\n  password_env: ES_PW\n";
        let choice = select_knowledge(None, Some(&block(text)), &env).unwrap();
        let KnowledgeChoice::Elasticsearch { config, logs_index, .. } = &choice else { panic!("the block's cluster") };
        assert_eq!((config.url.as_str(), config.indices.runbooks.as_str()), ("https://es.internal:9200", "rb"));
        assert_eq!(*logs_index, None);
        // query_live_logs is then "not configured", as with no source at all; --logs still wins.
        assert!(choice.live_logs(None).unwrap().is_none());
        let file = choice.live_logs(Some(NdjsonLogs::from_text("l.ndjson", ""))).unwrap().unwrap();
        assert_eq!(file.describe(), "ndjson:l.ndjson");
        // The default (no live_logs:) reads the logs index.
        let default = select_knowledge(None, Some(&block(&text.replace("  live_logs: false\n", ""))), &env).unwrap();
        let logs = default.live_logs(None).unwrap().expect("the cluster's logs");
        assert_eq!(logs.describe(), "elasticsearch:https://es.internal:9200/kibana_sample_data_logs");
    }
}
