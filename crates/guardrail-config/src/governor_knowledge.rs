//! The governor config's `knowledge:` block: the knowledge backend (issue 14): SQLite file or
//! Elasticsearch.
//!
//! ```yaml
//! knowledge:
//!   backend: elasticsearch        # sqlite (the default) | elasticsearch
//!   path: .guardrail/knowledge.db # sqlite only, optional (relative to this file); --kb wins
//!   url: https://es.internal:9200 # elasticsearch only, required; no user:password@ in it
//!   indices:                      # optional; the original's names by default
//!     runbooks: runbooks-demo
//!     evidence: evidence-demo
//!     policies: policies-demo
//!     logs: kibana_sample_data_logs
//!   live_logs: true               # query_live_logs reads indices.logs (default); false: the
//!                                 # cluster is knowledge only, no logs are read from it
//!   api_key_env: GUARDRAIL_ES_API_KEY      # the variable holding an API key, or:
//!   username: guardrail                    # basic authentication, with
//!   password_env: GUARDRAIL_ES_PASSWORD    # the variable holding the password
//!   ca_file: certs/es-ca.pem      # optional PEM CA(s) to trust besides the built-in roots
//!   timeout_ms: 5000              # one request, 1-60000 (default 5000)
//!   retries: 2                    # of a connection failure, 429, 502-504; 0-5 (default 2)
//! ```
//!
//! No secret is ever in this file: only the names of the variables holding them, which the
//! process reads when it connects (a variable that is unset then is an error, not anonymous
//! access). An unknown key such as `api_key:` is an error.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::common::Diags;
use crate::de::present;

/// Longest request timeout accepted, milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// Most retries accepted.
pub const MAX_RETRIES: u64 = 5;

/// The original's index names (`runbooks-demo`, `evidence-demo`, `policies-demo`,
/// `kibana_sample_data_logs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KnowledgeIndices {
    /// Runbooks.
    pub runbooks: String,
    /// Evidence documents.
    pub evidence: String,
    /// Action policies.
    pub policies: String,
    /// Logs read by `query_live_logs` (Kibana's sample web-logs shape), unless the block says
    /// `live_logs: false` ([`ElasticsearchSettings::live_logs`]).
    pub logs: String,
}

impl Default for KnowledgeIndices {
    fn default() -> KnowledgeIndices {
        KnowledgeIndices {
            runbooks: "runbooks-demo".into(),
            evidence: "evidence-demo".into(),
            policies: "policies-demo".into(),
            logs: "kibana_sample_data_logs".into(),
        }
    }
}

/// How Guardrail authenticates to Elasticsearch: names of environment variables, never values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ElasticCredentials {
    /// `Authorization: ApiKey $VAR`.
    ApiKeyEnv(String),
    /// Basic authentication as `username` with the password in `$password_env`.
    Basic {
        /// User name.
        username: String,
        /// The variable holding the password.
        password_env: String,
    },
}

/// The Elasticsearch backend's settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ElasticsearchSettings {
    /// Base URL (`http://` or `https://`), without credentials.
    pub url: String,
    /// Index names.
    pub indices: KnowledgeIndices,
    /// Credentials, if any.
    pub credentials: Option<ElasticCredentials>,
    /// Extra trusted CA file (checked to be readable PEM), resolved against the config's
    /// directory.
    pub ca_file: Option<PathBuf>,
    /// One request's timeout, milliseconds.
    pub timeout_ms: u64,
    /// Retries of a connection failure, 429, 502-504.
    pub retries: u32,
    /// Whether `query_live_logs` reads the cluster's logs index (`indices.logs`): `live_logs:`,
    /// true by default. `false` keeps the cluster as the knowledge base only, for a cluster
    /// without a logs index (every `incident run` would otherwise stop on the missing index):
    /// `query_live_logs` then answers "not configured", as with no logs source at all, unless
    /// `--logs` names a file. With `false`, naming `indices.logs` is an error (one of the two is
    /// a mistake).
    pub live_logs: bool,
}

/// Which knowledge backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KnowledgeBackend {
    /// The embedded SQLite FTS5 file; `path` when the block names one (`--kb` /
    /// `GUARDRAIL_KB` win over it).
    Sqlite {
        /// The file, resolved against the config's directory.
        path: Option<PathBuf>,
    },
    /// An Elasticsearch cluster.
    Elasticsearch(ElasticsearchSettings),
}

/// The `knowledge:` block, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KnowledgeConfig {
    /// The backend and its settings.
    pub backend: KnowledgeBackend,
}

impl Default for KnowledgeConfig {
    fn default() -> KnowledgeConfig {
        KnowledgeConfig { backend: KnowledgeBackend::Sqlite { path: None } }
    }
}

/// The `knowledge:` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KnowledgeSpec {
    #[serde(default, deserialize_with = "present")]
    backend: Option<String>,
    #[serde(default, deserialize_with = "present")]
    path: Option<String>,
    #[serde(default, deserialize_with = "present")]
    url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    indices: Option<IndicesSpec>,
    #[serde(default, deserialize_with = "present")]
    api_key_env: Option<String>,
    #[serde(default, deserialize_with = "present")]
    username: Option<String>,
    #[serde(default, deserialize_with = "present")]
    password_env: Option<String>,
    #[serde(default, deserialize_with = "present")]
    ca_file: Option<String>,
    #[serde(default, deserialize_with = "present")]
    timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    retries: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    live_logs: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicesSpec {
    #[serde(default, deserialize_with = "present")]
    runbooks: Option<String>,
    #[serde(default, deserialize_with = "present")]
    evidence: Option<String>,
    #[serde(default, deserialize_with = "present")]
    policies: Option<String>,
    #[serde(default, deserialize_with = "present")]
    logs: Option<String>,
}

/// Why an index name is not one Elasticsearch accepts (its documented rules), if it is not.
pub fn index_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 255 {
        Some("must be 1-255 bytes")
    } else if name != name.to_lowercase() {
        Some("must be lower case")
    } else if name.starts_with(['-', '_', '+']) {
        Some("must not start with -, _ or +")
    } else if name == "." || name == ".." {
        Some("must not be . or ..")
    } else if name
        .chars()
        .any(|c| matches!(c, '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':') || c.is_control())
    {
        Some("must not contain \\ / * ? \" < > | , # : spaces or control characters")
    } else {
        None
    }
}

/// Whether `name` is an environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub(crate) fn env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An Elasticsearch connection's fields as a block writes them (`knowledge:` and
/// `audit_mirror:` take the same ones).
pub(crate) struct ConnectionFields<'a> {
    pub(crate) api_key_env: &'a Option<String>,
    pub(crate) username: &'a Option<String>,
    pub(crate) password_env: &'a Option<String>,
    pub(crate) ca_file: &'a Option<String>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) retries: Option<u64>,
}

/// Those fields checked.
pub(crate) struct Connection {
    pub(crate) credentials: Option<ElasticCredentials>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) timeout_ms: u64,
    pub(crate) retries: u32,
}

/// Checks a cluster's URL, reporting at `{block}.url`: an `http(s)://` URL without credentials
/// (never echoed: the part before `@` is a secret), without a trailing `/`.
pub(crate) fn check_cluster_url(d: &mut Diags, block: &str, url: &str) -> Option<String> {
    match crate::prometheus::check_url(url) {
        Err(e) => {
            d.error(format!("{block}.url"), e.to_string());
            None
        }
        Ok(()) if url.split('/').nth(2).is_some_and(|authority| authority.contains('@')) => {
            d.error(
                format!("{block}.url"),
                "carries credentials (user:password@); use api_key_env or username/password_env",
            );
            None
        }
        Ok(()) => Some(url.trim_end_matches('/').to_string()),
    }
}

/// Checks a connection's credentials (names of variables, never secrets), CA file, timeout and
/// retries, every problem at `{block}.{field}`.
pub(crate) fn check_connection(d: &mut Diags, block: &str, f: ConnectionFields<'_>) -> Connection {
    let var = |d: &mut Diags, field: &str, v: &Option<String>| -> Option<String> {
        let v = v.as_deref()?.trim();
        if env_name(v) {
            Some(v.to_string())
        } else {
            d.error(
                format!("{block}.{field}"),
                format!("{v:?} is not an environment variable name (the secret itself never goes in this file)"),
            );
            None
        }
    };
    let api_key_env = var(d, "api_key_env", f.api_key_env);
    let password_env = var(d, "password_env", f.password_env);
    let username = f.username.as_deref().map(str::trim).map(str::to_string);
    if username.as_deref().is_some_and(|u| u.is_empty() || u.contains(':') || u.chars().any(char::is_control)) {
        d.error(format!("{block}.username"), "must be a non-empty name without : or control characters");
    }
    let credentials = match (api_key_env, username, password_env) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            d.error(format!("{block}.api_key_env"), "give either api_key_env or username with password_env, not both");
            None
        }
        (Some(k), None, None) => Some(ElasticCredentials::ApiKeyEnv(k)),
        (None, Some(username), Some(password_env)) => Some(ElasticCredentials::Basic { username, password_env }),
        (None, Some(_), None) => {
            d.error(format!("{block}.password_env"), "is required with username");
            None
        }
        (None, None, Some(_)) => {
            d.error(format!("{block}.username"), "is required with password_env");
            None
        }
        (None, None, None) => None,
    };
    let ca_file = f.ca_file.as_deref().and_then(|p| crate::prometheus::ca_file_text(d, &format!("{block}.ca_file"), p));
    let timeout_ms = match f.timeout_ms {
        None => 5_000,
        Some(t) if (1..=MAX_TIMEOUT_MS).contains(&t) => t,
        Some(t) => {
            d.error(format!("{block}.timeout_ms"), format!("{t} is outside 1-{MAX_TIMEOUT_MS}"));
            5_000
        }
    };
    let retries = match f.retries {
        None => 2,
        Some(r) if r <= MAX_RETRIES => r as u32,
        Some(r) => {
            d.error(format!("{block}.retries"), format!("{r} is outside 0-{MAX_RETRIES}"));
            2
        }
    };
    Connection { credentials, ca_file, timeout_ms, retries }
}

/// Checks the block, reporting every problem through `d` (fields under `knowledge.`); `dir` is the
/// config file's directory, for relative paths.
pub(crate) fn read_knowledge(d: &mut Diags, spec: &KnowledgeSpec, dir: Option<&Path>) -> KnowledgeConfig {
    let elastic = match spec.backend.as_deref().map(|b| b.trim().to_ascii_lowercase()) {
        None => false,
        Some(b) if b == "sqlite" => false,
        Some(b) if b == "elasticsearch" => true,
        Some(b) => {
            d.error("knowledge.backend", format!("{b:?} is not a knowledge backend (sqlite, elasticsearch)"));
            return KnowledgeConfig::default();
        }
    };
    let resolve = |p: &str| match dir {
        Some(dir) => dir.join(p),
        None => PathBuf::from(p),
    };
    if !elastic {
        // Settings of the other backend are mistakes, not silently ignored.
        let others = [
            ("url", spec.url.is_some()),
            ("indices", spec.indices.is_some()),
            ("api_key_env", spec.api_key_env.is_some()),
            ("username", spec.username.is_some()),
            ("password_env", spec.password_env.is_some()),
            ("ca_file", spec.ca_file.is_some()),
            ("timeout_ms", spec.timeout_ms.is_some()),
            ("retries", spec.retries.is_some()),
            ("live_logs", spec.live_logs.is_some()),
        ];
        for (field, set) in others {
            if set {
                d.error(format!("knowledge.{field}"), "is only for backend: elasticsearch");
            }
        }
        let path = match spec.path.as_deref().map(str::trim) {
            Some("") => {
                d.error("knowledge.path", "is empty");
                None
            }
            Some(p) => Some(resolve(p)),
            None => None,
        };
        return KnowledgeConfig { backend: KnowledgeBackend::Sqlite { path } };
    }
    if spec.path.is_some() {
        d.error("knowledge.path", "is only for backend: sqlite");
    }
    let url = match spec.url.as_deref().map(str::trim) {
        None => {
            d.error("knowledge.url", "is required for backend: elasticsearch");
            String::new()
        }
        Some(u) => check_cluster_url(d, "knowledge", u).unwrap_or_default(),
    };
    let mut indices = KnowledgeIndices::default();
    if let Some(ix) = &spec.indices {
        for (field, value, slot) in [
            ("runbooks", &ix.runbooks, &mut indices.runbooks),
            ("evidence", &ix.evidence, &mut indices.evidence),
            ("policies", &ix.policies, &mut indices.policies),
            ("logs", &ix.logs, &mut indices.logs),
        ] {
            if let Some(v) = value {
                match index_name_problem(v) {
                    Some(why) => d.error(format!("knowledge.indices.{field}"), format!("{v:?} {why}")),
                    None => *slot = v.clone(),
                }
            }
        }
    }
    let live_logs = spec.live_logs.unwrap_or(true);
    if !live_logs && spec.indices.as_ref().is_some_and(|ix| ix.logs.is_some()) {
        d.error("knowledge.indices.logs", "is never read with live_logs: false (remove one of them)");
    }
    let Connection { credentials, ca_file, timeout_ms, retries } = check_connection(
        d,
        "knowledge",
        ConnectionFields {
            api_key_env: &spec.api_key_env,
            username: &spec.username,
            password_env: &spec.password_env,
            ca_file: &spec.ca_file,
            timeout_ms: spec.timeout_ms,
            retries: spec.retries,
        },
    );
    KnowledgeConfig {
        backend: KnowledgeBackend::Elasticsearch(ElasticsearchSettings {
            url,
            indices,
            credentials,
            ca_file,
            timeout_ms,
            retries,
            live_logs,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Source, load_governor_file};

    fn knowledge(text: &str) -> Result<Option<KnowledgeConfig>, Vec<String>> {
        load_governor_file(&Source::from_text("g.yaml", text))
            .map(|f| f.value.knowledge)
            .map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn absent_and_sqlite_blocks() {
        assert_eq!(knowledge("approvals: {}\n").unwrap(), None);
        assert_eq!(knowledge("knowledge: {}\n").unwrap(), Some(KnowledgeConfig::default()));
        let k = knowledge("knowledge: {backend: sqlite, path: kb/k.db}\n").unwrap().unwrap();
        assert_eq!(k.backend, KnowledgeBackend::Sqlite { path: Some(PathBuf::from("kb/k.db")) });
    }

    #[test]
    fn an_elasticsearch_block_with_defaults_and_every_setting() {
        let k = knowledge("knowledge:\n  backend: elasticsearch\n  url: https://es.internal:9200/\n").unwrap().unwrap();
        let KnowledgeBackend::Elasticsearch(es) = k.backend else { panic!("elasticsearch") };
        assert_eq!(es.url, "https://es.internal:9200");
        assert_eq!(es.indices, KnowledgeIndices::default());
        assert_eq!(es.indices.logs, "kibana_sample_data_logs");
        assert_eq!((es.credentials, es.ca_file, es.timeout_ms, es.retries), (None, None, 5000, 2));
        assert!(es.live_logs, "the logs index is read by default");
        let text = "knowledge:\n  backend: elasticsearch\n  url: http://127.0.0.1:9200\n  indices: {runbooks: rb, logs: web-logs}\n  username: guardrail\n  password_env: ES_PASSWORD\n  timeout_ms: 800\n  retries: 0\n";
        let KnowledgeBackend::Elasticsearch(es) = knowledge(text).unwrap().unwrap().backend else { panic!() };
        assert_eq!(
            (es.indices.runbooks.as_str(), es.indices.evidence.as_str(), es.indices.logs.as_str()),
            ("rb", "evidence-demo", "web-logs")
        );
        assert_eq!(
            es.credentials,
            Some(ElasticCredentials::Basic { username: "guardrail".into(), password_env: "ES_PASSWORD".into() })
        );
        assert_eq!((es.timeout_ms, es.retries), (800, 0));
        let text = "knowledge: {backend: elasticsearch, url: 'http://h:9200', api_key_env: GUARDRAIL_ES_API_KEY}\n";
        let KnowledgeBackend::Elasticsearch(es) = knowledge(text).unwrap().unwrap().backend else { panic!() };
        assert_eq!(es.credentials, Some(ElasticCredentials::ApiKeyEnv("GUARDRAIL_ES_API_KEY".into())));
    }

    #[test]
    fn every_problem_is_reported_at_its_field() {
        let all = |text: &str| knowledge(text).unwrap_err().join("\n");
        let e = all("knowledge: {backend: solr}\n");
        assert!(e.contains("knowledge.backend") && e.contains("\"solr\" is not a knowledge backend"), "{e}");
        let e = all("knowledge: {backend: elasticsearch}\n");
        assert!(e.contains("knowledge.url: is required"), "{e}");
        let e = all("knowledge: {backend: elasticsearch, url: 'https://u:p@es:9200', api_key: abc}\n");
        assert!(e.contains("knowledge.api_key"), "unknown key refused: {e}");
        let e = all("knowledge: {backend: elasticsearch, url: 'https://u:p@es:9200'}\n");
        assert!(e.contains("knowledge.url") && e.contains("carries credentials"), "{e}");
        let e = all(
            "knowledge:\n  backend: elasticsearch\n  url: ftp://es\n  indices: {runbooks: Runbooks, evidence: '_x'}\n  api_key_env: 'not a var'\n  username: u\n  timeout_ms: 0\n  retries: 9\n  path: k.db\n",
        );
        for want in [
            "knowledge.url",
            "knowledge.indices.runbooks",
            "must be lower case",
            "knowledge.indices.evidence",
            "knowledge.api_key_env",
            "knowledge.timeout_ms: 0 is outside 1-60000",
            "knowledge.retries: 9 is outside 0-5",
            "knowledge.path: is only for backend: sqlite",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = all("knowledge: {url: 'http://es:9200', username: u}\n");
        assert!(e.contains("knowledge.url: is only for backend: elasticsearch"), "{e}");
        let e = all("knowledge: {backend: elasticsearch, url: 'http://es:9200', username: u}\n");
        assert!(e.contains("knowledge.password_env: is required with username"), "{e}");
        let e = all("knowledge: {backend: elasticsearch, url: 'http://es:9200', ca_file: nope.pem}\n");
        assert!(e.contains("knowledge.ca_file") && e.contains("nope.pem"), "{e}");
    }

    #[test]
    fn live_logs_false_keeps_the_cluster_for_knowledge_only() {
        let text = "knowledge: {backend: elasticsearch, url: 'http://es:9200', live_logs: false}\n";
        let KnowledgeBackend::Elasticsearch(es) = knowledge(text).unwrap().unwrap().backend else { panic!() };
        assert!(!es.live_logs);
        assert_eq!(es.indices, KnowledgeIndices::default(), "the knowledge indices are unchanged");
        let text =
            "knowledge: {backend: elasticsearch, url: 'http://es:9200', live_logs: true, indices: {logs: web}}\n";
        let KnowledgeBackend::Elasticsearch(es) = knowledge(text).unwrap().unwrap().backend else { panic!() };
        assert!(es.live_logs && es.indices.logs == "web");
        let all = |text: &str| knowledge(text).unwrap_err().join("\n");
        let e =
            all("knowledge: {backend: elasticsearch, url: 'http://es:9200', live_logs: false, indices: {logs: web}}\n");
        assert!(e.contains("knowledge.indices.logs: is never read with live_logs: false"), "{e}");
        let e = all("knowledge: {live_logs: false}\n");
        assert!(e.contains("knowledge.live_logs: is only for backend: elasticsearch"), "{e}");
        let e = all("knowledge: {backend: elasticsearch, url: 'http://es:9200', live_logs: none}\n");
        assert!(e.contains("knowledge.live_logs: must be a boolean"), "{e}");
    }
}
