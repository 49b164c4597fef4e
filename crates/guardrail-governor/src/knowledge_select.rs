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
//! by default the original's `kibana_sample_data_logs`) through [`ElasticLogs`], else none. A
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
        /// The logs index `query_live_logs` reads.
        logs_index: String,
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
                logs_index: guardrail_config::KnowledgeIndices::default().logs,
                origin,
            }),
            None => Ok(KnowledgeChoice::Sqlite { path: kb, origin }),
        };
    }
    match block.map(|k| &k.backend) {
        Some(KnowledgeBackend::Elasticsearch(es)) => Ok(KnowledgeChoice::Elasticsearch {
            config: elastic_from_config(es, env)?,
            logs_index: es.indices.logs.clone(),
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

/// The client a `knowledge:` block (backend `elasticsearch`) names: index names, timeout and
/// retries as `guardrail-config` checked them; the API key or password read from the variable
/// the block names (unset or empty is an error, never anonymous access); the CA file read.
pub fn elastic_from_config(
    es: &ElasticsearchSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ElasticConfig, KnowledgeSelectError> {
    let secret = |var: &str| {
        env(var).filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_string()).ok_or_else(|| {
            KnowledgeSelectError::Credentials(format!(
                "knowledge: {var} is not set (the block names it for the Elasticsearch credentials)"
            ))
        })
    };
    let mut cfg = ElasticConfig::new(&es.url);
    cfg.indices = guardrail_knowledge::elastic::Indices {
        runbooks: es.indices.runbooks.clone(),
        evidence: es.indices.evidence.clone(),
        policies: es.indices.policies.clone(),
    };
    cfg.auth = match &es.credentials {
        None => None,
        Some(ElasticCredentials::ApiKeyEnv(var)) => Some(ElasticAuth::ApiKey(secret(var)?)),
        Some(ElasticCredentials::Basic { username, password_env }) => {
            Some(ElasticAuth::Basic { user: username.clone(), password: secret(password_env)? })
        }
    };
    if let Some(ca) = &es.ca_file {
        cfg.ca_pem = Some(std::fs::read(ca).map_err(|e| KnowledgeSelectError::CaFile {
            what: "knowledge.ca_file",
            path: ca.display().to_string(),
            message: e.to_string(),
        })?);
    }
    cfg.timeout = std::time::Duration::from_millis(es.timeout_ms);
    cfg.retries = es.retries;
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
    /// logs index when it is one, else none (see the module doc).
    pub fn live_logs(&self, file: Option<NdjsonLogs>) -> Result<Option<LiveLogsSource>, LogsError> {
        match (file, self) {
            (Some(f), _) => Ok(Some(LiveLogsSource::File(f))),
            (None, KnowledgeChoice::Elasticsearch { config, logs_index, .. }) => {
                Ok(Some(LiveLogsSource::Elastic(ElasticLogs::connect(config.clone(), logs_index)?)))
            }
            (None, KnowledgeChoice::Sqlite { .. }) => Ok(None),
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
            (config.url.as_str(), logs_index.as_str(), origin),
            ("https://es.internal:9200", "web-logs", KnowledgeOrigin::Config)
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
}
