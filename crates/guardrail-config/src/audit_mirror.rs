//! The governor config's `audit_mirror:` block: an optional copy of every audit record in an
//! Elasticsearch index (issue 14). The chain stays the record of truth; the mirror is for
//! searching and dashboards, and `guardrail audit export --to es` rebuilds it from the chain.
//!
//! ```yaml
//! audit_mirror:
//!   index: guardrail-audit            # optional (this default)
//!   url: https://es.internal:9200     # optional when the knowledge: block is backend:
//!                                     # elasticsearch: the mirror then uses that block's URL,
//!                                     # credentials, CA file, timeout and retries
//!   api_key_env: GUARDRAIL_ES_API_KEY # only with url: the variable holding an API key, or
//!   username: guardrail               # basic authentication, with
//!   password_env: GUARDRAIL_ES_PASSWORD
//!   ca_file: certs/es-ca.pem          # only with url
//!   timeout_ms: 5000                  # only with url; 1-60000 (default 5000)
//!   retries: 2                        # only with url; 0-5 (default 2)
//!   workflow_events_index: workflow_events       # optional: also the original's documents per
//!   action_executions_index: action_executions   # remediation decision (absent: not written)
//!   batch_size: 500                   # optional: records per `_bulk` call of the outbox's
//!                                     # delivery, 1-10000 (default 500)
//! ```
//!
//! As in `knowledge:`, no secret is ever in this file: only the names of the variables that
//! hold them. Connection settings without a `url` are an error (they would be silently
//! replaced by the knowledge block's).

use std::path::PathBuf;

use serde::Deserialize;

use crate::common::Diags;
use crate::de::present;
use crate::governor_knowledge::{
    Connection, ConnectionFields, ElasticCredentials, KnowledgeBackend, KnowledgeConfig, check_cluster_url,
    check_connection, index_name_problem,
};

/// Records per `_bulk` call of the outbox's delivery when the block does not say: ~0.5-1 MB
/// of documents per request at typical record sizes, well under Elasticsearch's 100 MB
/// `http.max_content_length`, and enough that one call per tick keeps up with thousands of
/// records a second.
pub const DEFAULT_MIRROR_BATCH: usize = 500;

/// The largest `audit_mirror.batch_size`.
pub const MAX_MIRROR_BATCH: usize = 10_000;

/// The mirror's index when the block does not name one.
pub const DEFAULT_AUDIT_INDEX: &str = "guardrail-audit";

/// The `audit_mirror:` block, checked: where the copies go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditMirrorConfig {
    /// Base URL (`http://` or `https://`), without credentials.
    pub url: String,
    /// The index holding one document per record.
    pub index: String,
    /// Credentials, if any (names of variables).
    pub credentials: Option<ElasticCredentials>,
    /// Extra trusted CA file.
    pub ca_file: Option<PathBuf>,
    /// One request's timeout, milliseconds.
    pub timeout_ms: u64,
    /// Retries of a connection failure, 429, 502-504.
    pub retries: u32,
    /// True when the connection is the `knowledge:` block's.
    pub shares_knowledge_connection: bool,
    /// Also the original's `workflow_events` document of each remediation decision, in this
    /// index (`None`: not written).
    pub workflow_events_index: Option<String>,
    /// Also the original's `action_executions` document of each remediation decision.
    pub action_executions_index: Option<String>,
    /// Records (outbox rows) per `_bulk` call of the outbox's delivery.
    pub batch_size: usize,
}

impl AuditMirrorConfig {
    /// A mirror at `url` with the defaults (index `guardrail-audit`, no credentials, 5 s, 2
    /// retries): what `--audit-es URL` / `GUARDRAIL_AUDIT_ES` mean without a block.
    pub fn at(url: &str) -> AuditMirrorConfig {
        AuditMirrorConfig {
            url: url.trim().trim_end_matches('/').to_string(),
            index: DEFAULT_AUDIT_INDEX.to_string(),
            credentials: None,
            ca_file: None,
            timeout_ms: 5_000,
            retries: 2,
            shares_knowledge_connection: false,
            workflow_events_index: None,
            action_executions_index: None,
            batch_size: DEFAULT_MIRROR_BATCH,
        }
    }
}

/// The block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditMirrorSpec {
    #[serde(default, deserialize_with = "present")]
    url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    index: Option<String>,
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
    workflow_events_index: Option<String>,
    #[serde(default, deserialize_with = "present")]
    action_executions_index: Option<String>,
    #[serde(default, deserialize_with = "present")]
    batch_size: Option<u64>,
}

/// Checks the block (fields under `audit_mirror.`); `knowledge` is the same file's
/// `knowledge:` block, whose connection a block without `url` uses.
pub(crate) fn read_audit_mirror(
    d: &mut Diags,
    spec: &AuditMirrorSpec,
    knowledge: Option<&KnowledgeConfig>,
) -> Option<AuditMirrorConfig> {
    let mut extra = |field: &str, v: &Option<String>| -> Option<String> {
        let v = v.as_deref()?.trim();
        match index_name_problem(v) {
            Some(why) => {
                d.error(format!("audit_mirror.{field}"), format!("{v:?} {why}"));
                None
            }
            None => Some(v.to_string()),
        }
    };
    let workflow_events_index = extra("workflow_events_index", &spec.workflow_events_index);
    let action_executions_index = extra("action_executions_index", &spec.action_executions_index);
    let batch_size = match spec.batch_size {
        None => DEFAULT_MIRROR_BATCH,
        Some(n) if (1..=MAX_MIRROR_BATCH as u64).contains(&n) => n as usize,
        Some(n) => {
            d.error("audit_mirror.batch_size", format!("{n} is outside 1-{MAX_MIRROR_BATCH}"));
            DEFAULT_MIRROR_BATCH
        }
    };
    let index = match spec.index.as_deref().map(str::trim) {
        None => DEFAULT_AUDIT_INDEX.to_string(),
        Some(i) => match index_name_problem(i) {
            Some(why) => {
                d.error("audit_mirror.index", format!("{i:?} {why}"));
                return None;
            }
            None => i.to_string(),
        },
    };
    let Some(url) = spec.url.as_deref().map(str::trim) else {
        let own = [
            ("api_key_env", spec.api_key_env.is_some()),
            ("username", spec.username.is_some()),
            ("password_env", spec.password_env.is_some()),
            ("ca_file", spec.ca_file.is_some()),
            ("timeout_ms", spec.timeout_ms.is_some()),
            ("retries", spec.retries.is_some()),
        ];
        let mut bad = false;
        for (field, set) in own {
            if set {
                d.error(format!("audit_mirror.{field}"), "is only for a mirror with its own url");
                bad = true;
            }
        }
        return match knowledge.map(|k| &k.backend) {
            Some(KnowledgeBackend::Elasticsearch(es)) if !bad => Some(AuditMirrorConfig {
                url: es.url.clone(),
                index,
                credentials: es.credentials.clone(),
                ca_file: es.ca_file.clone(),
                timeout_ms: es.timeout_ms,
                retries: es.retries,
                shares_knowledge_connection: true,
                workflow_events_index,
                action_executions_index,
                batch_size,
            }),
            Some(KnowledgeBackend::Elasticsearch(_)) => None,
            _ => {
                d.error(
                    "audit_mirror.url",
                    "is required (or a knowledge: block with backend: elasticsearch, whose connection is then used)",
                );
                None
            }
        };
    };
    let url = check_cluster_url(d, "audit_mirror", url)?;
    let Connection { credentials, ca_file, timeout_ms, retries } = check_connection(
        d,
        "audit_mirror",
        ConnectionFields {
            api_key_env: &spec.api_key_env,
            username: &spec.username,
            password_env: &spec.password_env,
            ca_file: &spec.ca_file,
            timeout_ms: spec.timeout_ms,
            retries: spec.retries,
        },
    );
    Some(AuditMirrorConfig {
        url,
        index,
        credentials,
        ca_file,
        timeout_ms,
        retries,
        shares_knowledge_connection: false,
        workflow_events_index,
        action_executions_index,
        batch_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Source, load_governor_file};

    fn mirror(text: &str) -> Result<Option<AuditMirrorConfig>, String> {
        load_governor_file(&Source::from_text("g.yaml", text))
            .map(|f| f.value.audit_mirror)
            .map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))
    }

    #[test]
    fn absent_own_url_and_the_knowledge_connection() {
        assert_eq!(mirror("approvals: {}\n").unwrap(), None);
        let m = mirror("audit_mirror: {url: 'http://127.0.0.1:9200/'}\n").unwrap().unwrap();
        assert_eq!(m, AuditMirrorConfig::at("http://127.0.0.1:9200"));
        let text = "audit_mirror:\n  url: https://es:9200\n  index: audit-prod\n  username: g\n  password_env: ES_PW\n  timeout_ms: 900\n  retries: 0\n";
        let m = mirror(text).unwrap().unwrap();
        assert_eq!((m.index.as_str(), m.timeout_ms, m.retries), ("audit-prod", 900, 0));
        assert_eq!(m.batch_size, DEFAULT_MIRROR_BATCH);
        let b = mirror("audit_mirror: {url: 'http://es:9200', batch_size: 2000}\n").unwrap().unwrap();
        assert_eq!(b.batch_size, 2000);
        assert_eq!((&m.workflow_events_index, &m.action_executions_index), (&None, &None));
        let w = mirror("audit_mirror: {url: 'http://es:9200', workflow_events_index: workflow_events, action_executions_index: action_executions}\n")
            .unwrap()
            .unwrap();
        assert_eq!(w.workflow_events_index.as_deref(), Some("workflow_events"));
        assert_eq!(w.action_executions_index.as_deref(), Some("action_executions"));
        let e = mirror("audit_mirror: {url: 'http://es:9200', workflow_events_index: Workflow}\n").unwrap_err();
        assert!(e.contains("audit_mirror.workflow_events_index") && e.contains("lower case"), "{e}");
        assert_eq!(
            m.credentials,
            Some(ElasticCredentials::Basic { username: "g".into(), password_env: "ES_PW".into() })
        );
        let text = "knowledge: {backend: elasticsearch, url: 'http://kb:9200', api_key_env: KB_KEY, retries: 1}\naudit_mirror: {}\n";
        let m = mirror(text).unwrap().unwrap();
        assert_eq!((m.url.as_str(), m.index.as_str(), m.retries), ("http://kb:9200", DEFAULT_AUDIT_INDEX, 1));
        assert_eq!(m.credentials, Some(ElasticCredentials::ApiKeyEnv("KB_KEY".into())));
        assert!(m.shares_knowledge_connection);
    }

    #[test]
    fn every_problem_at_its_field() {
        let e = mirror("audit_mirror: {}\n").unwrap_err();
        assert!(e.contains("audit_mirror.url: is required"), "{e}");
        let e = mirror("knowledge: {backend: elasticsearch, url: 'http://kb:9200'}\naudit_mirror: {api_key_env: K}\n")
            .unwrap_err();
        assert!(e.contains("audit_mirror.api_key_env: is only for a mirror with its own url"), "{e}");
        let e = mirror("audit_mirror: {url: 'https://u:p@es:9200'}\n").unwrap_err();
        assert!(e.contains("audit_mirror.url: carries credentials") && !e.contains("u:p@es"), "{e}");
        let e = mirror("audit_mirror: {url: 'http://es:9200', index: Audit}\n").unwrap_err();
        assert!(e.contains("audit_mirror.index") && e.contains("lower case"), "{e}");
        let e = mirror("audit_mirror: {url: 'http://es:9200', api_key: abc}\n").unwrap_err();
        assert!(e.contains("api_key"), "{e}");
        let e = mirror(
            "audit_mirror: {url: 'http://es:9200', api_key_env: 'the key', timeout_ms: 0, retries: 6, batch_size: 0}\n",
        )
        .unwrap_err();
        for want in
            ["audit_mirror.api_key_env", "audit_mirror.timeout_ms", "audit_mirror.retries", "audit_mirror.batch_size"]
        {
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
