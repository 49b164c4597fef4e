//! The Elasticsearch backend: the same [`KnowledgeStore`] over the REST API, for teams whose
//! knowledge already lives in a cluster (the original kept it in `runbooks-demo`,
//! `evidence-demo` and `policies-demo`).
//!
//! Calls, all blocking reqwest over rustls (*ring*, the compiled-in Mozilla roots plus an
//! optional PEM CA file; never unverified), each with one timeout and at most `retries` retries
//! of a connection failure, 429 or 502/503/504:
//! - `PUT /{index}` creates an index with the original's mappings (`mappings/*.json`: its fields
//!   and types, plus `reviewed` and the stored, unindexed `provenance`) and an analyser —
//!   standard tokenizer, lowercase, ASCII folding, Porter stemming — so words match as SQLite's
//!   `porter unicode61` does; an index that exists already is left as it is.
//! - `POST /_bulk?refresh=wait_for` adds documents with `create` actions: an id that exists
//!   (409) is fetched (`POST /_mget`) and compared, identical is "unchanged", different is
//!   [`KnowledgeError::Conflict`] — a document is never replaced. Any other failed item makes the
//!   whole call [`KnowledgeError::Bulk`], naming every failed document (status, type, reason).
//!   Elasticsearch has no transactions: the items that succeeded stay.
//! - `POST /{index}/_search`: a `bool` query whose `must` is the words — for runbooks a
//!   `combined_fields` query over `title^2` and `body` (BM25F: one document frequency per word
//!   over both fields, the title's counts and length weighted ×2, which is what SQLite FTS5's
//!   `bm25(runbooks_fts, 2.0, 1.0)` computes; per-field `match` clauses would rank differently),
//!   for evidence a `match` on `text` — and `term`/`terms` filters on the keywords (`service`,
//!   `reviewed`, `stance`); sorted by `_score` then `id`. A response that `timed_out` or has
//!   failed shards is an error, not a partial answer.
//! - `POST /{index}/_count`, `GET /{index}/_doc/{id}`, and for a review `PUT
//!   /{index}/_doc/{id}?if_seq_no=…&if_primary_term=…` (a concurrent change is a conflict).
//!
//! **Fail closed.** Every failure — connection refused, timeout, TLS, 401/403, 404 index, 429
//! after retries, 5xx, an answer that does not parse — is a [`KnowledgeError`] (mostly
//! [`KnowledgeError::Unavailable`]), which the pipeline records as "could not decide"; it is never
//! read as "no runbooks". Scores are Elasticsearch's BM25 (Lucene's, per shard), not SQLite's:
//! the same documents rank in the same order on the sample data, the numbers differ.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use guardrail_core::remediation::{ActionPolicy, Stance};

use crate::{
    EvidenceDoc, EvidenceHit, KnowledgeDocs, KnowledgeError, KnowledgeStats, KnowledgeStore, LoadReport, Runbook,
    RunbookHit, sum,
};

/// The original's index names.
pub const DEFAULT_RUNBOOKS_INDEX: &str = "runbooks-demo";
/// The original's evidence index.
pub const DEFAULT_EVIDENCE_INDEX: &str = "evidence-demo";
/// The original's policies index.
pub const DEFAULT_POLICIES_INDEX: &str = "policies-demo";
/// The original's logs index (Kibana's sample web logs).
pub const DEFAULT_LOGS_INDEX: &str = "kibana_sample_data_logs";

/// Most documents one `_search` asks for (policies of a service; searches ask for `k`).
const MAX_POLICIES: usize = 10_000;

const RUNBOOKS_MAPPING: &str = include_str!("mappings/runbooks.json");
const EVIDENCE_MAPPING: &str = include_str!("mappings/evidence.json");
const POLICIES_MAPPING: &str = include_str!("mappings/policies.json");

/// Index names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indices {
    /// Runbooks (`runbooks-demo`).
    pub runbooks: String,
    /// Evidence (`evidence-demo`).
    pub evidence: String,
    /// Action policies (`policies-demo`).
    pub policies: String,
}

impl Default for Indices {
    fn default() -> Indices {
        Indices {
            runbooks: DEFAULT_RUNBOOKS_INDEX.into(),
            evidence: DEFAULT_EVIDENCE_INDEX.into(),
            policies: DEFAULT_POLICIES_INDEX.into(),
        }
    }
}

/// How requests authenticate. The secret never appears in Debug, errors or logs.
#[derive(Clone, PartialEq, Eq)]
pub enum ElasticAuth {
    /// `Authorization: ApiKey <value>` (the base64 `id:api_key` Elasticsearch hands out).
    ApiKey(String),
    /// HTTP basic authentication.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for ElasticAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ElasticAuth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            ElasticAuth::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
        }
    }
}

/// Where the cluster is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElasticConfig {
    /// Base URL, `http://` or `https://` (a path prefix is kept).
    pub url: String,
    /// Index names.
    pub indices: Indices,
    /// Credentials, if the cluster needs them.
    pub auth: Option<ElasticAuth>,
    /// Extra trusted CA certificates (the text of a PEM file).
    pub ca_pem: Option<Vec<u8>>,
    /// One request's timeout (connect and answer).
    pub timeout: Duration,
    /// Retries of a connection failure, 429 or 502/503/504.
    pub retries: u32,
}

impl ElasticConfig {
    /// A config for `url` with the original's index names, no credentials, a 5 s timeout and
    /// 2 retries.
    pub fn new(url: &str) -> ElasticConfig {
        ElasticConfig {
            url: url.trim_end_matches('/').to_string(),
            indices: Indices::default(),
            auth: None,
            ca_pem: None,
            timeout: Duration::from_secs(5),
            retries: 2,
        }
    }
}

/// A knowledge store in Elasticsearch. Cloning shares the HTTP client (its connections).
#[derive(Clone)]
pub struct ElasticKnowledgeStore {
    http: reqwest::blocking::Client,
    cfg: ElasticConfig,
}

impl std::fmt::Debug for ElasticKnowledgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticKnowledgeStore").field("url", &self.cfg.url).field("indices", &self.cfg.indices).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Wire types: the query DSL as far as it is used, and the answers read.

/// A query clause (externally tagged: `{"bool": {...}}`, `{"match": {...}}`, …).
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum Query<'a> {
    Bool(Box<BoolQuery<'a>>),
    Match(BTreeMap<&'a str, MatchParams<'a>>),
    CombinedFields(CombinedFields<'a>),
    Term(BTreeMap<&'a str, TermParams<'a>>),
    Terms(BTreeMap<&'a str, Vec<&'a str>>),
    MatchAll(Empty),
}

#[derive(Debug, Serialize)]
struct Empty {}

#[derive(Debug, Default, Serialize)]
struct BoolQuery<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    must: Vec<Query<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    should: Vec<Query<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    filter: Vec<Query<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    minimum_should_match: Option<u32>,
}

#[derive(Debug, Serialize)]
struct MatchParams<'a> {
    query: &'a str,
    boost: f64,
}

/// BM25F over several text fields as if they were one (Elasticsearch 7.13+): one document
/// frequency per word over all the fields, field boosts weighting term counts and lengths.
#[derive(Debug, Serialize)]
struct CombinedFields<'a> {
    query: &'a str,
    fields: &'a [&'a str],
    operator: &'static str,
}

#[derive(Debug, Serialize)]
struct TermParams<'a> {
    value: TermValue<'a>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum TermValue<'a> {
    Str(&'a str),
    Bool(bool),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum Order {
    Asc,
    Desc,
}

#[derive(Debug, Serialize)]
struct SortOrder {
    order: Order,
}

#[derive(Debug, Serialize)]
struct SearchBody<'a> {
    size: usize,
    query: Query<'a>,
    sort: Vec<BTreeMap<&'static str, SortOrder>>,
}

#[derive(Debug, Serialize)]
struct CountBody<'a> {
    query: Query<'a>,
}

#[derive(Debug, Deserialize)]
struct SearchResponse<T> {
    #[serde(default)]
    timed_out: bool,
    #[serde(rename = "_shards", default)]
    shards: Option<Shards>,
    hits: Hits<T>,
}

#[derive(Debug, Deserialize)]
struct Shards {
    #[serde(default)]
    failed: u64,
}

#[derive(Debug, Deserialize)]
struct Hits<T> {
    hits: Vec<Hit<T>>,
}

#[derive(Debug, Deserialize)]
struct Hit<T> {
    #[serde(rename = "_score", default)]
    score: Option<f64>,
    #[serde(rename = "_source")]
    source: T,
}

#[derive(Debug, Deserialize)]
struct CountResponse {
    count: u64,
    #[serde(rename = "_shards", default)]
    shards: Option<Shards>,
}

#[derive(Debug, Deserialize)]
struct GetResponse<T> {
    found: bool,
    #[serde(rename = "_seq_no", default)]
    seq_no: Option<u64>,
    #[serde(rename = "_primary_term", default)]
    primary_term: Option<u64>,
    #[serde(rename = "_source", default = "Option::default")]
    source: Option<T>,
}

#[derive(Debug, Serialize)]
struct BulkAction<'a> {
    create: BulkTarget<'a>,
}

#[derive(Debug, Serialize)]
struct BulkTarget<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: &'a str,
}

#[derive(Debug, Deserialize)]
struct BulkResponse {
    items: Vec<BTreeMap<String, BulkItem>>,
}

#[derive(Debug, Deserialize)]
struct BulkItem {
    #[serde(rename = "_id", default)]
    id: Option<String>,
    status: u16,
    #[serde(default)]
    error: Option<ErrorCause>,
}

#[derive(Debug, Serialize)]
struct MgetBody<'a> {
    docs: Vec<BulkTarget<'a>>,
}

#[derive(Debug, Deserialize)]
struct MgetResponse {
    docs: Vec<MgetDoc>,
}

#[derive(Debug, Deserialize)]
struct MgetDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(default)]
    found: bool,
    #[serde(rename = "_source", default)]
    source: Option<serde_json::Value>,
}

/// Elasticsearch's error object (`error.type`, `error.reason`).
#[derive(Debug, Clone, Deserialize)]
struct ErrorCause {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ErrorField {
    Cause(ErrorCause),
    Text(String),
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorField,
}

/// One failed item of a `_bulk` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkFailure {
    /// Document id.
    pub id: String,
    /// HTTP status of the item.
    pub status: u16,
    /// Elasticsearch's error type, e.g. `mapper_parsing_exception`.
    pub kind: String,
    /// Its reason.
    pub reason: String,
}

/// One item of a `_bulk` answer ([`ElasticKnowledgeStore::bulk_items`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkOutcome {
    /// The item's `_id`, as answered.
    pub id: Option<String>,
    /// The item's HTTP status.
    pub status: u16,
    /// `error.type` and `error.reason`, when the item failed.
    pub error: Option<(String, String)>,
}

impl std::fmt::Display for BulkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} {}: {})", self.id, self.status, self.kind, self.reason)
    }
}

// ---------------------------------------------------------------------------------------------

/// The words of a query as [`crate::sqlite::fts_query`] takes them (letters and digits, lower
/// case, unique, at most [`crate::sqlite::MAX_QUERY_WORDS`]), joined by spaces: the same words
/// reach both backends, and a `match` query does not parse operators anyway.
fn words(text: &str) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let w = w.to_lowercase();
        if !out.contains(&w) {
            out.push(w);
        }
        if out.len() == crate::sqlite::MAX_QUERY_WORDS {
            break;
        }
    }
    (!out.is_empty()).then(|| out.join(" "))
}

fn term<'a>(field: &'a str, value: TermValue<'a>) -> Query<'a> {
    Query::Term(BTreeMap::from([(field, TermParams { value })]))
}

fn matches<'a>(field: &'a str, query: &'a str, boost: f64) -> Query<'a> {
    Query::Match(BTreeMap::from([(field, MatchParams { query, boost })]))
}

fn by_score_then_id() -> Vec<BTreeMap<&'static str, SortOrder>> {
    vec![
        BTreeMap::from([("_score", SortOrder { order: Order::Desc })]),
        BTreeMap::from([("id", SortOrder { order: Order::Asc })]),
    ]
}

fn by_id() -> Vec<BTreeMap<&'static str, SortOrder>> {
    vec![BTreeMap::from([("id", SortOrder { order: Order::Asc })])]
}

/// The retried statuses: rate limiting and a gateway or node that is not ready.
fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

enum Method {
    Get,
    Put,
    Post,
}

impl ElasticKnowledgeStore {
    /// A client for the cluster; sends nothing. A CA file that holds no certificate is an error.
    pub fn connect(cfg: ElasticConfig) -> Result<ElasticKnowledgeStore, KnowledgeError> {
        let location = cfg.url.clone();
        let bad = |message: String| KnowledgeError::Unavailable {
            location: location.clone(),
            status: None,
            message,
            retry_after: None,
        };
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(bad("the URL must start with http:// or https://".into()));
        }
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .no_proxy()
            .user_agent(concat!("guardrail/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| bad(format!("the CA file is not PEM: {}", root_cause(&e))))?;
            if certs.is_empty() {
                return Err(bad("the CA file holds no certificate".into()));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(|e| bad(root_cause(&e)))?;
        Ok(ElasticKnowledgeStore { http, cfg })
    }

    /// Connects and checks that the three indices exist (`GET /{index}/_count`): a missing index
    /// is [`KnowledgeError::Unavailable`] with status 404, never an empty knowledge base.
    pub fn open(cfg: ElasticConfig) -> Result<ElasticKnowledgeStore, KnowledgeError> {
        let store = Self::connect(cfg)?;
        for index in [&store.cfg.indices.runbooks, &store.cfg.indices.evidence, &store.cfg.indices.policies] {
            store.count(index, Query::MatchAll(Empty {}))?;
        }
        Ok(store)
    }

    /// Connects and creates any missing index with the original's mappings (for `kb load`).
    pub fn create(cfg: ElasticConfig) -> Result<ElasticKnowledgeStore, KnowledgeError> {
        let store = Self::connect(cfg)?;
        for (index, mapping) in [
            (&store.cfg.indices.runbooks, RUNBOOKS_MAPPING),
            (&store.cfg.indices.evidence, EVIDENCE_MAPPING),
            (&store.cfg.indices.policies, POLICIES_MAPPING),
        ] {
            store.create_index(index, mapping)?;
        }
        Ok(store)
    }

    /// The config in force.
    pub fn config(&self) -> &ElasticConfig {
        &self.cfg
    }

    /// One `POST /{index}/_search` with a caller's typed body and answer, through the same
    /// client, credentials, timeout and retries: for other readers of the cluster (the logs
    /// index of `query_live_logs`). Checking `timed_out` and failed shards is the caller's.
    pub fn search_index<B: Serialize, T: for<'de> Deserialize<'de>>(
        &self,
        index: &str,
        body: &B,
    ) -> Result<T, KnowledgeError> {
        self.post_json(&format!("/{}/_search", encode_path(index)), body)
    }

    fn create_index(&self, index: &str, mapping: &str) -> Result<(), KnowledgeError> {
        self.ensure_index(index, mapping).map(|_| ())
    }

    /// `PUT /{index}` with `body` (its settings and mappings), through the same client: for
    /// other writers to the cluster (the audit mirror). `true` when it was created, `false`
    /// when it existed already (`resource_already_exists_exception`: left as it is).
    pub fn ensure_index(&self, index: &str, body: &str) -> Result<bool, KnowledgeError> {
        match self.send(Method::Put, &format!("/{}", encode_path(index)), Some(body.to_string()), "application/json") {
            Ok(_) => Ok(true),
            // Created before (by us or by whoever set the cluster up): left as it is.
            Err(KnowledgeError::Unavailable { status: Some(400), message, .. })
                if message.starts_with("resource_already_exists_exception") =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// One `POST /_bulk` of a caller's NDJSON (`items` action/source pairs), through the same
    /// client, credentials, timeout and retries (a 429 or 5xx of the whole call is retried;
    /// items are not): each item's outcome in order, for callers that choose their own actions
    /// (the audit mirror's `index` with `_id`). An answer with another number of items is an
    /// error. `refresh` adds `?refresh=wait_for`.
    pub fn bulk_items(&self, ndjson: String, items: usize, refresh: bool) -> Result<Vec<BulkOutcome>, KnowledgeError> {
        let path = if refresh { "/_bulk?refresh=wait_for" } else { "/_bulk" };
        let text = self.send(Method::Post, path, Some(ndjson), "application/x-ndjson")?;
        let r: BulkResponse = self.decode(&text, "/_bulk")?;
        if r.items.len() != items {
            return Err(self.unavailable(None, format!("_bulk answered {} items for {items} actions", r.items.len())));
        }
        let mut out = Vec::with_capacity(items);
        for item in r.items {
            let Some(item) = item.into_values().next() else {
                return Err(self.unavailable(None, "_bulk answered an empty item".into()));
            };
            out.push(BulkOutcome {
                id: item.id,
                status: item.status,
                error: item.error.map(|c| (c.kind, c.reason.unwrap_or_default())),
            });
        }
        Ok(out)
    }

    fn rate_limited(&self, status: u16, message: String, retry_after: Duration) -> KnowledgeError {
        KnowledgeError::Unavailable {
            location: self.cfg.url.clone(),
            status: Some(status),
            message: format!("{message} (the cluster asks to retry after {} s)", retry_after.as_secs_f64().ceil()),
            retry_after: Some(retry_after),
        }
    }

    fn unavailable(&self, status: Option<u16>, message: String) -> KnowledgeError {
        KnowledgeError::Unavailable { location: self.cfg.url.clone(), status, message, retry_after: None }
    }

    /// One call with retries; the body of a 2xx answer, else a typed error with Elasticsearch's
    /// `error.type: reason`.
    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        content_type: &str,
    ) -> Result<String, KnowledgeError> {
        let url = format!("{}{path}", self.cfg.url);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = match method {
                Method::Get => self.http.get(&url),
                Method::Put => self.http.put(&url),
                Method::Post => self.http.post(&url),
            };
            req = match &self.cfg.auth {
                Some(ElasticAuth::ApiKey(key)) => req.header("Authorization", format!("ApiKey {key}")),
                Some(ElasticAuth::Basic { user, password }) => req.basic_auth(user, Some(password)),
                None => req,
            };
            if let Some(b) = &body {
                req = req.header("Content-Type", content_type).body(b.clone());
            }
            let last = attempt > self.cfg.retries;
            let pause = Duration::from_millis(100 * u64::from(attempt));
            match req.send() {
                Err(e) => {
                    let why = if e.is_timeout() {
                        format!("no answer within {} ms", self.cfg.timeout.as_millis())
                    } else {
                        root_cause(&e)
                    };
                    if last || !(e.is_connect() || e.is_timeout()) {
                        return Err(self.unavailable(None, format!("{why} ({} {path})", method_name(&method))));
                    }
                    std::thread::sleep(pause);
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let asked = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| guardrail_core::retry_after::parse(v, jiff::Timestamp::now()));
                    let text = resp.text().map_err(|e| {
                        self.unavailable(Some(status), format!("reading the answer: {}", root_cause(&e)))
                    })?;
                    if (200..300).contains(&status) {
                        return Ok(text);
                    }
                    if retryable(status) && !last {
                        // The cluster's own pause, when it names one this call can afford to
                        // wait (at most its timeout); a longer one ends the call, and the pause
                        // goes with the error so a queue waits that long, not less.
                        match asked {
                            Some(wait) if wait > self.cfg.timeout => {
                                return Err(self.rate_limited(status, error_text(&text, status), wait));
                            }
                            Some(wait) => std::thread::sleep(wait),
                            None => std::thread::sleep(pause),
                        }
                        continue;
                    }
                    return Err(match asked {
                        Some(wait) if retryable(status) => self.rate_limited(status, error_text(&text, status), wait),
                        _ => self.unavailable(Some(status), error_text(&text, status)),
                    });
                }
            }
        }
    }

    fn post_json<B: Serialize, T: for<'de> Deserialize<'de>>(&self, path: &str, body: &B) -> Result<T, KnowledgeError> {
        let body =
            serde_json::to_string(body).map_err(|e| self.unavailable(None, format!("encoding a request: {e}")))?;
        let text = self.send(Method::Post, path, Some(body), "application/json")?;
        self.decode(&text, path)
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, text: &str, path: &str) -> Result<T, KnowledgeError> {
        serde_json::from_str(text)
            .map_err(|e| self.unavailable(None, format!("an answer to {path} that does not parse: {e}")))
    }

    fn search<T: for<'de> Deserialize<'de>>(
        &self,
        index: &str,
        body: &SearchBody<'_>,
    ) -> Result<Vec<Hit<T>>, KnowledgeError> {
        let path = format!("/{index}/_search");
        let r: SearchResponse<T> = self.post_json(&path, body)?;
        // A partial answer is not knowledge: a timed-out search or a failed shard may have
        // left out exactly the runbook that matters.
        if r.timed_out {
            return Err(self.unavailable(None, format!("{path}: the search timed out (partial results refused)")));
        }
        if let Some(s) = r.shards.filter(|s| s.failed > 0) {
            return Err(
                self.unavailable(None, format!("{path}: {} shard(s) failed (partial results refused)", s.failed))
            );
        }
        Ok(r.hits.hits)
    }

    fn count(&self, index: &str, query: Query<'_>) -> Result<u64, KnowledgeError> {
        let path = format!("/{index}/_count");
        let r: CountResponse = self.post_json(&path, &CountBody { query })?;
        if let Some(s) = r.shards.filter(|s| s.failed > 0) {
            return Err(self.unavailable(None, format!("{path}: {} shard(s) failed", s.failed)));
        }
        Ok(r.count)
    }

    fn get<T: for<'de> Deserialize<'de>>(
        &self,
        index: &str,
        id: &str,
    ) -> Result<Option<GetResponse<T>>, KnowledgeError> {
        let path = format!("/{index}/_doc/{}", encode_path(id));
        match self.send(Method::Get, &path, None, "") {
            Ok(text) => {
                let r: GetResponse<T> = self.decode(&text, &path)?;
                Ok(r.found.then_some(r))
            }
            // A missing document is `{"found": false}` with 404; a missing index is an error
            // body with `index_not_found_exception`, which stays an error.
            Err(KnowledgeError::Unavailable { status: Some(404), message, .. }) if message.starts_with("not found") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Adds documents with one `_bulk` call; see the module documentation for conflicts.
    fn bulk(&self, docs: &[(&str, &str, serde_json::Value)]) -> Result<LoadReport, KnowledgeError> {
        if docs.is_empty() {
            return Ok(LoadReport::default());
        }
        let mut ndjson = String::new();
        for (index, id, source) in docs {
            let action = serde_json::to_string(&BulkAction { create: BulkTarget { index, id } })
                .map_err(|e| self.unavailable(None, format!("encoding a request: {e}")))?;
            ndjson.push_str(&action);
            ndjson.push('\n');
            ndjson.push_str(&source.to_string());
            ndjson.push('\n');
        }
        let text = self.send(Method::Post, "/_bulk?refresh=wait_for", Some(ndjson), "application/x-ndjson")?;
        let r: BulkResponse = self.decode(&text, "/_bulk")?;
        if r.items.len() != docs.len() {
            return Err(
                self.unavailable(None, format!("_bulk answered {} items for {} documents", r.items.len(), docs.len()))
            );
        }
        let mut report = LoadReport::default();
        let mut existing: Vec<usize> = Vec::new();
        let mut failed: Vec<BulkFailure> = Vec::new();
        for (i, item) in r.items.into_iter().enumerate() {
            let Some(item) = item.into_values().next() else {
                return Err(self.unavailable(None, "_bulk answered an empty item".into()));
            };
            match (item.status, item.error) {
                (200..=299, None) => report.added += 1,
                (409, _) => existing.push(i),
                (status, error) => {
                    let cause = error.unwrap_or(ErrorCause { kind: "unknown".into(), reason: None });
                    failed.push(BulkFailure {
                        id: item.id.unwrap_or_else(|| docs[i].1.to_string()),
                        status,
                        kind: cause.kind,
                        reason: cause.reason.unwrap_or_default(),
                    });
                }
            }
        }
        if !failed.is_empty() {
            return Err(KnowledgeError::Bulk { location: self.cfg.url.clone(), added: report.added, failed });
        }
        if !existing.is_empty() {
            report = sum(report, self.compare_existing(docs, &existing)?);
        }
        Ok(report)
    }

    /// The documents `create` found existing: identical is unchanged, different a conflict.
    fn compare_existing(
        &self,
        docs: &[(&str, &str, serde_json::Value)],
        which: &[usize],
    ) -> Result<LoadReport, KnowledgeError> {
        let body = MgetBody { docs: which.iter().map(|&i| BulkTarget { index: docs[i].0, id: docs[i].1 }).collect() };
        let r: MgetResponse = self.post_json("/_mget", &body)?;
        let mut report = LoadReport::default();
        for (&i, got) in which.iter().zip(r.docs) {
            let (index, id, source) = &docs[i];
            if got.id != *id || !got.found {
                return Err(self.unavailable(None, format!("{index}/{id}: exists by _bulk but not by _mget")));
            }
            if got.source.as_ref() == Some(source) {
                report.unchanged += 1;
            } else {
                let kind = if *index == self.cfg.indices.runbooks {
                    "runbook"
                } else if *index == self.cfg.indices.evidence {
                    "evidence"
                } else {
                    "policy"
                };
                return Err(KnowledgeError::Conflict { kind, id: id.to_string() });
            }
        }
        Ok(report)
    }

    fn source<T: Serialize>(&self, doc: &T) -> Result<serde_json::Value, KnowledgeError> {
        serde_json::to_value(doc).map_err(|e| self.unavailable(None, format!("encoding a document: {e}")))
    }
}

fn method_name(m: &Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Put => "PUT",
        Method::Post => "POST",
    }
}

/// A document id in a URL path: everything but unreserved characters percent-encoded.
fn encode_path(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `type: reason` from Elasticsearch's error body, or the status and the start of the body.
/// A 404 without an error object (a missing document) reads `not found`.
fn error_text(body: &str, status: u16) -> String {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody { error: ErrorField::Cause(c) }) => match c.reason {
            Some(r) => format!("{}: {r}", c.kind),
            None => c.kind,
        },
        Ok(ErrorBody { error: ErrorField::Text(t) }) => t,
        Err(_) if status == 404 => "not found".into(),
        Err(_) => {
            let start: String = body.chars().take(200).collect();
            format!("HTTP {status}: {start}")
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl KnowledgeStore for ElasticKnowledgeStore {
    fn search_runbooks(&self, query: &str, service: &str, k: usize) -> Result<Vec<RunbookHit>, KnowledgeError> {
        let words = words(query);
        let mut b = BoolQuery {
            filter: vec![term("service", TermValue::Str(service)), term("reviewed", TermValue::Bool(true))],
            ..BoolQuery::default()
        };
        let sort = match &words {
            Some(w) => {
                b.must = vec![Query::CombinedFields(CombinedFields {
                    query: w,
                    fields: &["title^2", "body"],
                    operator: "or",
                })];
                by_score_then_id()
            }
            None => by_id(),
        };
        let body = SearchBody { size: k.min(crate::sqlite::MAX_K), query: Query::Bool(Box::new(b)), sort };
        let hits: Vec<Hit<Runbook>> = self.search(&self.cfg.indices.runbooks, &body)?;
        Ok(hits
            .into_iter()
            .map(|h| RunbookHit {
                score: if words.is_some() { h.score.unwrap_or(0.0) } else { 0.0 },
                runbook: h.source,
            })
            .collect())
    }

    fn search_evidence(
        &self,
        query: &str,
        service: &str,
        k: usize,
        stance: Option<Stance>,
    ) -> Result<Vec<EvidenceHit>, KnowledgeError> {
        let words = words(query);
        let mut b = BoolQuery::default();
        if service != "*" {
            b.filter.push(Query::Terms(BTreeMap::from([("service", vec![service, "*"])])));
        }
        if let Some(s) = stance {
            b.filter.push(term("stance", TermValue::Str(s.as_str())));
        }
        let sort = match &words {
            Some(w) => {
                b.must = vec![matches("text", w, 1.0)];
                by_score_then_id()
            }
            None => by_id(),
        };
        let body = SearchBody { size: k.min(crate::sqlite::MAX_K), query: Query::Bool(Box::new(b)), sort };
        let hits: Vec<Hit<EvidenceDoc>> = self.search(&self.cfg.indices.evidence, &body)?;
        Ok(hits
            .into_iter()
            .map(|h| EvidenceHit { score: if words.is_some() { h.score.unwrap_or(0.0) } else { 0.0 }, doc: h.source })
            .collect())
    }

    fn policies_for(&self, service: &str) -> Result<Vec<ActionPolicy>, KnowledgeError> {
        let b = BoolQuery {
            filter: vec![Query::Terms(BTreeMap::from([("service", vec![service, "*"])]))],
            ..BoolQuery::default()
        };
        let body = SearchBody { size: MAX_POLICIES, query: Query::Bool(Box::new(b)), sort: by_id() };
        let hits: Vec<Hit<ActionPolicy>> = self.search(&self.cfg.indices.policies, &body)?;
        Ok(hits.into_iter().map(|h| h.source).collect())
    }

    fn runbook(&self, id: &str) -> Result<Option<Runbook>, KnowledgeError> {
        Ok(self.get::<Runbook>(&self.cfg.indices.runbooks, id)?.and_then(|r| r.source))
    }

    fn stats(&self) -> Result<KnowledgeStats, KnowledgeError> {
        let reviewed = |v: bool| {
            Query::Bool(Box::new(BoolQuery {
                filter: vec![term("reviewed", TermValue::Bool(v))],
                ..BoolQuery::default()
            }))
        };
        Ok(KnowledgeStats {
            runbooks_reviewed: self.count(&self.cfg.indices.runbooks, reviewed(true))?,
            runbooks_unreviewed: self.count(&self.cfg.indices.runbooks, reviewed(false))?,
            evidence: self.count(&self.cfg.indices.evidence, Query::MatchAll(Empty {}))?,
            policies: self.count(&self.cfg.indices.policies, Query::MatchAll(Empty {}))?,
        })
    }

    fn add_runbook(&mut self, runbook: &Runbook) -> Result<LoadReport, KnowledgeError> {
        self.add_docs(&KnowledgeDocs { runbooks: vec![runbook.clone()], ..KnowledgeDocs::default() })
    }

    fn add_evidence(&mut self, doc: &EvidenceDoc) -> Result<LoadReport, KnowledgeError> {
        self.add_docs(&KnowledgeDocs { evidence: vec![doc.clone()], ..KnowledgeDocs::default() })
    }

    fn add_policy(&mut self, policy: &ActionPolicy) -> Result<LoadReport, KnowledgeError> {
        self.add_docs(&KnowledgeDocs { policies: vec![policy.clone()], ..KnowledgeDocs::default() })
    }

    /// One `_bulk` call for the whole batch.
    fn add_docs(&mut self, docs: &KnowledgeDocs) -> Result<LoadReport, KnowledgeError> {
        let ix = &self.cfg.indices;
        let mut items: Vec<(&str, &str, serde_json::Value)> = Vec::new();
        for r in &docs.runbooks {
            items.push((&ix.runbooks, &r.id, self.source(r)?));
        }
        for e in &docs.evidence {
            items.push((&ix.evidence, &e.id, self.source(e)?));
        }
        for p in &docs.policies {
            items.push((&ix.policies, &p.id, self.source(p)?));
        }
        self.bulk(&items)
    }

    /// Reads the runbook with its sequence number and writes it back only if nobody changed it
    /// since (`if_seq_no` / `if_primary_term`); a concurrent change is a conflict.
    fn mark_reviewed(&mut self, id: &str, reviewer: &str, reviewed_at: &str) -> Result<Runbook, KnowledgeError> {
        let index = self.cfg.indices.runbooks.clone();
        let invalid = |message: String| KnowledgeError::Invalid {
            origin: self.cfg.url.clone(),
            field: "runbook".into(),
            message,
        };
        let Some(got) = self.get::<Runbook>(&index, id)? else {
            return Err(invalid(format!("no runbook {id:?}")));
        };
        let (Some(mut r), Some(seq_no), Some(term)) = (got.source, got.seq_no, got.primary_term) else {
            return Err(
                self.unavailable(None, format!("{index}/{id}: the answer lacks _source, _seq_no or _primary_term"))
            );
        };
        if r.reviewed {
            return Err(invalid(format!(
                "runbook {id} is already reviewed (by {})",
                r.provenance.reviewed_by.as_deref().unwrap_or("its source")
            )));
        }
        r.reviewed = true;
        r.provenance.reviewed_by = Some(reviewer.to_string());
        r.provenance.recorded_at = Some(reviewed_at.to_string());
        let body =
            serde_json::to_string(&r).map_err(|e| self.unavailable(None, format!("encoding a document: {e}")))?;
        let path =
            format!("/{index}/_doc/{}?if_seq_no={seq_no}&if_primary_term={term}&refresh=wait_for", encode_path(id));
        match self.send(Method::Put, &path, Some(body), "application/json") {
            Ok(_) => Ok(r),
            Err(KnowledgeError::Unavailable { status: Some(409), .. }) => {
                Err(KnowledgeError::Conflict { kind: "runbook", id: id.into() })
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_dsl_serialises_as_elasticsearch_documents_it() {
        let b = BoolQuery {
            must: vec![Query::CombinedFields(CombinedFields {
                query: "db latency",
                fields: &["title^2", "body"],
                operator: "or",
            })],
            should: vec![matches("text", "db", 1.0)],
            filter: vec![term("service", TermValue::Str("payments-api")), term("reviewed", TermValue::Bool(true))],
            minimum_should_match: Some(1),
        };
        let body = SearchBody { size: 3, query: Query::Bool(Box::new(b)), sort: by_score_then_id() };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"size":3,"query":{"bool":{"must":[{"combined_fields":{"query":"db latency","fields":["title^2","body"],"operator":"or"}}],"should":[{"match":{"text":{"query":"db","boost":1.0}}}],"filter":[{"term":{"service":{"value":"payments-api"}}},{"term":{"reviewed":{"value":true}}}],"minimum_should_match":1}},"sort":[{"_score":{"order":"desc"}},{"id":{"order":"asc"}}]}"#
        );
    }

    #[test]
    fn error_bodies_read_as_type_and_reason() {
        let body = r#"{"error":{"root_cause":[{"type":"security_exception","reason":"missing authentication credentials for REST request [/runbooks-demo/_search]"}],"type":"security_exception","reason":"missing authentication credentials for REST request [/runbooks-demo/_search]","header":{"WWW-Authenticate":"Basic realm=\"security\" charset=\"UTF-8\""}},"status":401}"#;
        assert_eq!(
            error_text(body, 401),
            "security_exception: missing authentication credentials for REST request [/runbooks-demo/_search]"
        );
        assert_eq!(error_text(r#"{"_index":"x","_id":"y","found":false}"#, 404), "not found");
        assert_eq!(error_text("<html>bad gateway</html>", 502), "HTTP 502: <html>bad gateway</html>");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let mut cfg = ElasticConfig::new("https://es.internal:9200/");
        cfg.auth = Some(ElasticAuth::Basic { user: "guardrail".into(), password: "hunter2".into() });
        assert!(!format!("{cfg:?}").contains("hunter2"));
        cfg.auth = Some(ElasticAuth::ApiKey("c2VjcmV0".into()));
        assert!(!format!("{cfg:?}").contains("c2VjcmV0"));
        assert_eq!(cfg.url, "https://es.internal:9200");
    }

    #[test]
    fn ids_are_percent_encoded_in_paths() {
        assert_eq!(encode_path("rbk-api_01.x~"), "rbk-api_01.x~");
        assert_eq!(encode_path("a/b c?d#é"), "a%2Fb%20c%3Fd%23%C3%A9");
    }
}
