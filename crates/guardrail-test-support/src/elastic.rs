//! A loopback Elasticsearch 8 for the tests of everything that talks to a cluster (the
//! knowledge base's `ElasticKnowledgeStore`, `query_live_logs` over a logs index, the audit
//! mirror, the official Python client as a peer). It speaks the REST API's request and response
//! shapes as Elasticsearch documents and sends them:
//! - `PUT /{index}` with its body (`mappings`, `settings`) → `{"acknowledged": true,
//!   "shards_acknowledged": true, "index": …}`, or 400 `resource_already_exists_exception`;
//!   `DELETE /{index}` → `{"acknowledged": true}` or 404 `index_not_found_exception`;
//! - `_bulk` NDJSON (`index` / `create` action lines, each followed by its source; the body must
//!   end in a newline) with per-item results: 201 created / 200 updated, 409
//!   `version_conflict_engine_exception` for a `create` of an existing id, 400
//!   `strict_dynamic_mapping_exception` for a field outside a `dynamic: strict` mapping, injected
//!   per-id 429 `es_rejected_execution_exception` or 400 `mapper_parsing_exception`; a missing
//!   index is created on the fly, as `action.auto_create_index` (on by default) does;
//! - `_mget`, `_count`, `_search` with `bool` / `match` / `combined_fields` / `term` / `terms` /
//!   `range` / `match_all`, `sort`, `size`, `track_total_hits` and `aggs` (`filter`, `avg`);
//!   `match` and `combined_fields` score with Lucene's BM25 / BM25F (k1 = 1.2, b = 0.75, idf =
//!   ln(1 + (N − n + 0.5) / (n + 0.5))) over lowercased words with a crude suffix stemmer, enough
//!   for the sample data to rank as the real engine ranks it;
//! - `GET /{index}/_doc/{id}` (404 `found: false`), `PUT /{index}/_doc/{id}` with `if_seq_no` /
//!   `if_primary_term` (409 on a stale pair); 404 `index_not_found_exception` for a missing index;
//! - `Authorization` checked when required (401 `security_exception` with the
//!   `WWW-Authenticate` headers; a missing header passes with anonymous access enabled), and
//!   injected whole-call errors: 401, 429 `es_rejected_execution_exception`, 503
//!   `master_not_discovered_exception`, 500 `search_phase_execution_exception`; searches that
//!   answer `timed_out: true`; answers sent late (a cluster that hangs).
//!
//! The fake reads requests as `serde_json::Value`: it stands in for an arbitrary server, so it
//! looks at whatever arrives rather than at Guardrail's types.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{Request, header, method_and_target, read_request, write_response};

#[derive(Default)]
struct Index {
    /// The body the index was created with (`Null` when auto-created or created bare).
    mapping: Value,
    docs: BTreeMap<String, (Value, u64)>,
}

#[derive(Default)]
struct State {
    indices: BTreeMap<String, Index>,
    seq: u64,
    /// The `Authorization` header every request must carry, when set.
    auth: Option<String>,
    /// A request without `Authorization` passes (anonymous access enabled).
    anonymous: bool,
    /// Statuses for the next requests, one each (401, 429, 500, 503).
    fail_next: Vec<u16>,
    /// `Retry-After` sent with an injected 429 or 503 (Elasticsearch's circuit breakers and
    /// proxies in front of a cluster send one).
    retry_after: Option<String>,
    /// `_bulk` items failing with this status, by `_id`.
    item_errors: HashMap<String, u16>,
    /// Every search answers `timed_out: true`.
    time_out_searches: bool,
    /// Answer this late.
    delay: Duration,
    /// `METHOD target` of every request, and its body.
    log: Vec<(String, String)>,
}

/// A running fake cluster (it lives as long as the test process).
pub struct FakeEs {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeEs {
    /// Starts a cluster with no indices.
    pub fn start() -> FakeEs {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let state = Arc::clone(&shared);
                // Keep-alive: one thread per connection, requests answered in turn.
                std::thread::spawn(move || {
                    while let Some(req) = read_request(&mut s) {
                        let (status, body, delay, retry_after) = {
                            let mut st = state.lock().unwrap();
                            let (status, body) = answer(&mut st, &req);
                            let retry_after = st.retry_after.clone().filter(|_| matches!(status, 429 | 503));
                            (status, body, st.delay, retry_after)
                        };
                        std::thread::sleep(delay);
                        let mut headers =
                            vec![("content-type", "application/json"), ("X-elastic-product", "Elasticsearch")];
                        if status == 401 {
                            headers.push(("WWW-Authenticate", "Basic realm=\"security\" charset=\"UTF-8\""));
                            headers.push(("WWW-Authenticate", "ApiKey"));
                        }
                        if let Some(v) = &retry_after {
                            headers.push(("Retry-After", v));
                        }
                        if write_response(&mut s, status, &headers, &body.to_string()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeEs { url, state }
    }

    /// Requires this `Authorization` header on every request.
    pub fn require_auth(&self, header: &str) {
        self.state.lock().unwrap().auth = Some(header.to_string());
    }

    /// Requests without an `Authorization` header pass (anonymous access enabled); one with
    /// another header than [`FakeEs::require_auth`]'s is still refused.
    pub fn allow_anonymous(&self) {
        self.state.lock().unwrap().anonymous = true;
    }

    /// The next requests answer these statuses, one each.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state.lock().unwrap().fail_next = statuses.to_vec();
    }

    /// Injected 429 and 503 answers carry this `Retry-After` value (`None`: no header).
    pub fn retry_after(&self, value: Option<&str>) {
        self.state.lock().unwrap().retry_after = value.map(str::to_string);
    }

    /// `_bulk` items with these ids are rejected with 429 `es_rejected_execution_exception`.
    pub fn reject_ids(&self, ids: &[&str]) {
        for id in ids {
            self.fail_item(id, 429);
        }
    }

    /// `_bulk` items with this `_id` fail with `status` (429 es_rejected_execution_exception,
    /// any other status mapper_parsing_exception).
    pub fn fail_item(&self, id: &str, status: u16) {
        self.state.lock().unwrap().item_errors.insert(id.to_string(), status);
    }

    /// `_bulk` items fail no longer.
    pub fn heal_items(&self) {
        self.state.lock().unwrap().item_errors.clear();
    }

    /// Searches answer `timed_out: true`.
    pub fn time_out_searches(&self) {
        self.state.lock().unwrap().time_out_searches = true;
    }

    /// Answers after `d`.
    pub fn delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// `METHOD target` of every request so far, with its body.
    pub fn log(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().log.clone()
    }

    /// `METHOD target` of every request so far.
    pub fn lines(&self) -> Vec<String> {
        self.state.lock().unwrap().log.iter().map(|(line, _)| line.clone()).collect()
    }

    /// The body an index was created with (`Null` when auto-created).
    pub fn mapping(&self, index: &str) -> Option<Value> {
        self.state.lock().unwrap().indices.get(index).map(|i| i.mapping.clone())
    }

    /// Stores documents in `index` (created, unmapped, when missing) as an indexing client would
    /// have: for data Guardrail only reads, such as a logs index.
    pub fn index_docs(&self, index: &str, docs: &[(&str, Value)]) {
        let mut st = self.state.lock().unwrap();
        for (id, src) in docs {
            st.seq += 1;
            let seq = st.seq;
            st.indices.entry(index.to_string()).or_default().docs.insert(id.to_string(), (src.clone(), seq));
        }
    }

    /// The stored source of a document.
    pub fn doc(&self, index: &str, id: &str) -> Option<Value> {
        self.state.lock().unwrap().indices.get(index).and_then(|i| i.docs.get(id).map(|d| d.0.clone()))
    }

    /// Every document of an index, by `_id` (empty when the index does not exist).
    pub fn docs(&self, index: &str) -> BTreeMap<String, Value> {
        let st = self.state.lock().unwrap();
        st.indices
            .get(index)
            .map(|i| i.docs.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
            .unwrap_or_default()
    }
}

/// A Python with Elasticsearch's official client (`pip install elasticsearch`), for the tests
/// that use it as an independent peer of [`FakeEs`]: `GUARDRAIL_ES_PYTHON`, else the test venv
/// `scripts/test` makes (`target/mcp-venv`). `None` (the caller skips, saying so) when there is
/// none; a panic instead when `GUARDRAIL_REQUIRE_ES_PYTHON` is set (as `scripts/test` may set it).
pub fn python_client() -> Option<String> {
    let found = crate::python_with("GUARDRAIL_ES_PYTHON", "elasticsearch");
    if found.is_none() {
        assert!(
            std::env::var_os("GUARDRAIL_REQUIRE_ES_PYTHON").is_none(),
            "GUARDRAIL_REQUIRE_ES_PYTHON is set but no Python has the elasticsearch package"
        );
        eprintln!("skipped: no Python with the elasticsearch package (set GUARDRAIL_ES_PYTHON)");
    }
    found
}

/// Elasticsearch's error body.
fn error(status: u16, kind: &str, reason: &str) -> (u16, Value) {
    (
        status,
        json!({"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}, "status": status}),
    )
}

fn injected(status: u16, path: &str) -> (u16, Value) {
    match status {
        401 => {
            error(401, "security_exception", &format!("missing authentication credentials for REST request [{path}]"))
        }
        429 => error(
            429,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=0]",
        ),
        503 => error(503, "master_not_discovered_exception", "no master node found"),
        _ => error(status, "search_phase_execution_exception", "all shards failed"),
    }
}

fn no_index(index: &str) -> (u16, Value) {
    let (s, mut v) = error(404, "index_not_found_exception", &format!("no such index [{index}]"));
    v["error"]["index"] = json!(index);
    v["error"]["resource.type"] = json!("index_or_alias");
    (s, v)
}

fn answer(st: &mut State, req: &Request) -> (u16, Value) {
    let (method, target) = method_and_target(req);
    st.log.push((format!("{method} {target}"), req.body.clone()));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if let Some(want) = &st.auth {
        let got = header(req, "authorization");
        if got.as_deref() != Some(want.as_str()) && !(got.is_none() && st.anonymous) {
            return if got.is_none() {
                injected(401, path)
            } else {
                error(
                    401,
                    "security_exception",
                    "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
                )
            };
        }
    }
    if !st.fail_next.is_empty() {
        let s = st.fail_next.remove(0);
        return injected(s, path);
    }
    let segs: Vec<String> = path.trim_start_matches('/').split('/').map(percent_decode).collect();
    let body: Value = if req.body.trim().is_empty() || path == "/_bulk" {
        Value::Null
    } else {
        match serde_json::from_str(&req.body) {
            Ok(v) => v,
            Err(e) => return error(400, "parse_exception", &format!("request body is required / not JSON: {e}")),
        }
    };
    match (method.as_str(), segs.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
        ("PUT", [index]) if !index.starts_with('_') => {
            if st.indices.contains_key(*index) {
                let (s, mut v) =
                    error(400, "resource_already_exists_exception", &format!("index [{index}/Xk3d9Q] already exists"));
                v["error"]["index"] = json!(index);
                return (s, v);
            }
            st.indices.insert(index.to_string(), Index { mapping: body, docs: BTreeMap::new() });
            (200, json!({"acknowledged": true, "shards_acknowledged": true, "index": index}))
        }
        ("DELETE", [index]) if !index.starts_with('_') => match st.indices.remove(*index) {
            Some(_) => (200, json!({"acknowledged": true})),
            None => no_index(index),
        },
        // Elasticsearch takes both verbs here (the official Python client sends PUT).
        ("POST" | "PUT", ["_bulk"]) => bulk(st, &req.body),
        ("POST" | "GET", ["_mget"]) => {
            let docs: Vec<Value> = body["docs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|d| {
                    let (index, id) = (d["_index"].as_str().unwrap_or_default(), d["_id"].as_str().unwrap_or_default());
                    match st.indices.get(index).and_then(|i| i.docs.get(id)) {
                        Some((src, seq)) => json!({"_index": index, "_id": id, "_version": 1, "_seq_no": seq, "_primary_term": 1, "found": true, "_source": src}),
                        None => json!({"_index": index, "_id": id, "found": false}),
                    }
                })
                .collect();
            (200, json!({"docs": docs}))
        }
        ("POST" | "GET", [index, "_search"]) => {
            let Some(ix) = st.indices.get(*index) else { return no_index(index) };
            search(index, ix, &body, st.time_out_searches)
        }
        ("POST" | "GET", [index, "_count"]) => {
            let Some(ix) = st.indices.get(*index) else { return no_index(index) };
            let q = if body.is_null() { json!({"match_all": {}}) } else { body["query"].clone() };
            let stats = Stats::of(ix);
            let n = ix.docs.values().filter(|(src, _)| eval(&q, src, &stats).is_some()).count();
            (200, json!({"count": n, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}))
        }
        ("GET", [index, "_doc", id]) => {
            let Some(ix) = st.indices.get(*index) else { return no_index(index) };
            match ix.docs.get(*id) {
                Some((src, seq)) => (
                    200,
                    json!({"_index": index, "_id": id, "_version": 1, "_seq_no": seq, "_primary_term": 1, "found": true, "_source": src}),
                ),
                None => (404, json!({"_index": index, "_id": id, "found": false})),
            }
        }
        ("PUT", [index, "_doc", id]) => {
            let params: BTreeMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
            st.seq += 1;
            let seq = st.seq;
            let Some(ix) = st.indices.get_mut(*index) else { return no_index(index) };
            let current = ix.docs.get(*id).map(|d| d.1);
            if let (Some(want), Some(term)) = (params.get("if_seq_no"), params.get("if_primary_term"))
                && (current.map(|c| c.to_string()).as_deref() != Some(*want) || *term != "1")
            {
                return error(
                    409,
                    "version_conflict_engine_exception",
                    &format!(
                        "[{id}]: version conflict, required seqNo [{want}], primary term [{term}]. current document has seqNo [{}] and primary term [1]",
                        current.unwrap_or(0)
                    ),
                );
            }
            ix.docs.insert(id.to_string(), (body, seq));
            (
                200,
                json!({"_index": index, "_id": id, "_version": 2, "result": "updated", "_shards": {"total": 1, "successful": 1, "failed": 0}, "_seq_no": seq, "_primary_term": 1}),
            )
        }
        _ => error(400, "illegal_argument_exception", &format!("no handler for [{method}] {path}")),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first field a `dynamic: strict` mapping refuses in `source`, if it is strict.
fn strict_violation(mapping: &Value, source: &Value) -> Option<String> {
    let m = &mapping["mappings"];
    if m["dynamic"] != json!("strict") {
        return None;
    }
    source.as_object()?.keys().find(|k| m["properties"].get(k.as_str()).is_none()).cloned()
}

fn bulk(st: &mut State, body: &str) -> (u16, Value) {
    if !body.ends_with('\n') {
        return error(400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]");
    }
    let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let action: Value = serde_json::from_str(pair[0]).unwrap_or(Value::Null);
        let Some((op, meta)) = action.as_object().and_then(|o| o.iter().next()).map(|(k, v)| (k.clone(), v.clone()))
        else {
            return error(400, "illegal_argument_exception", &format!("Malformed action/metadata line [{}]", pair[0]));
        };
        if op != "index" && op != "create" {
            return error(
                400,
                "illegal_argument_exception",
                &format!("Malformed action/metadata line [{}], expected index or create but found [{op}]", pair[0]),
            );
        }
        let Some(source) = pair.get(1).and_then(|l| serde_json::from_str::<Value>(l).ok()).filter(Value::is_object)
        else {
            return error(
                400,
                "illegal_argument_exception",
                "The bulk request must have a source after each index action",
            );
        };
        let index = meta["_index"].as_str().unwrap_or_default().to_string();
        let id = meta["_id"].as_str().unwrap_or_default().to_string();
        st.seq += 1;
        let seq = st.seq;
        let fail = |status: u16, kind: &str, reason: String| json!({op.as_str(): {"_index": index, "_id": id, "status": status, "error": {"type": kind, "reason": reason, "index": index, "shard": "0"}}});
        let item = match st.item_errors.get(&id) {
            Some(429) => fail(
                429,
                "es_rejected_execution_exception",
                format!("rejected execution of primary operation [shard_detail=[{index}][0][P]]"),
            ),
            Some(&s) => fail(
                s,
                "mapper_parsing_exception",
                "failed to parse field [recorded_at] of type [date] in document".to_string(),
            ),
            None => {
                let ix = st.indices.entry(index.clone()).or_default();
                if let Some(field) = strict_violation(&ix.mapping, &source) {
                    fail(
                        400,
                        "strict_dynamic_mapping_exception",
                        format!(
                            "[1:2] mapping set to strict, dynamic introduction of [{field}] within [_doc] is not allowed"
                        ),
                    )
                } else if op == "create" && ix.docs.contains_key(&id) {
                    fail(
                        409,
                        "version_conflict_engine_exception",
                        format!("[{id}]: version conflict, document already exists (current version [1])"),
                    )
                } else {
                    let existed = ix.docs.insert(id.clone(), (source, seq)).is_some();
                    let (result, status) = if existed { ("updated", 200) } else { ("created", 201) };
                    json!({op.as_str(): {"_index": index, "_id": id, "_version": if existed { 2 } else { 1 }, "result": result,
                        "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": seq, "_primary_term": 1, "status": status}})
                }
            }
        };
        errors |= item[op.as_str()].get("error").is_some();
        items.push(item);
    }
    (200, json!({"took": 3, "errors": errors, "items": items}))
}

/// Per-index statistics for BM25: documents with the field, their total length, and document
/// frequency per (field, term).
struct Stats {
    docs: BTreeMap<String, (u64, u64)>,
    df: BTreeMap<(String, String), u64>,
    /// For the runbooks' `combined_fields` (`title^2,body^1`): documents and total weighted
    /// length, and document frequency per word over both fields.
    combined: BTreeMap<String, (u64, f64)>,
    combined_df: BTreeMap<(String, String), u64>,
}

impl Stats {
    fn of(ix: &Index) -> Stats {
        let mut docs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut df: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (src, _) in ix.docs.values() {
            for field in ["title", "body", "text", "rule"] {
                if let Some(t) = src[field].as_str() {
                    let toks = analyse(t);
                    let e = docs.entry(field.to_string()).or_default();
                    e.0 += 1;
                    e.1 += toks.len() as u64;
                    for t in toks.into_iter().collect::<HashSet<_>>() {
                        *df.entry((field.to_string(), t)).or_default() += 1;
                    }
                }
            }
        }
        let mut combined: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        let mut combined_df: BTreeMap<(String, String), u64> = BTreeMap::new();
        let key = "title^2,body^1".to_string();
        for (src, _) in ix.docs.values() {
            if src.get("title").is_none() && src.get("body").is_none() {
                continue;
            }
            let t = src["title"].as_str().map(analyse).unwrap_or_default();
            let b = src["body"].as_str().map(analyse).unwrap_or_default();
            let e = combined.entry(key.clone()).or_default();
            e.0 += 1;
            e.1 += 2.0 * t.len() as f64 + b.len() as f64;
            for w in t.into_iter().chain(b).collect::<HashSet<_>>() {
                *combined_df.entry((key.clone(), w)).or_default() += 1;
            }
        }
        Stats { docs, df, combined, combined_df }
    }
}

/// Lowercased words (letters and digits) with a crude English suffix stemmer.
fn analyse(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let w = w.to_lowercase();
            for suffix in ["ing", "ed", "es", "s"] {
                if let Some(stem) = w.strip_suffix(suffix)
                    && stem.len() >= 3
                {
                    return stem.to_string();
                }
            }
            w
        })
        .collect()
}

/// A document's field as a query names it: the key as written (`service.name` flattened), else
/// the dotted path into nested objects, else — for `x.keyword`, the keyword sub-field dynamic
/// mapping gives a text field — the text field `x`.
fn source_field<'a>(src: &'a Value, field: &str) -> Option<&'a Value> {
    if let Some(v) = src.get(field) {
        return Some(v);
    }
    let nested = field.split('.').try_fold(src, |cur, part| cur.get(part));
    nested.or_else(|| source_field(src, field.strip_suffix(".keyword")?))
}

/// Elasticsearch's order of two values of one field: numbers as numbers (a numeric string too),
/// dates (`2026-11-24T09:45:00Z`, `….000Z`) as instants, other strings as keywords.
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    let number = |v: &Value| v.as_f64().or_else(|| v.as_str()?.trim().parse::<f64>().ok());
    if a.is_number() || b.is_number() {
        return number(a)?.partial_cmp(&number(b)?);
    }
    let (a, b) = (a.as_str()?, b.as_str()?);
    // A UTC date-time without its `Z` and with its fraction to nanoseconds compares as text.
    let instant = |s: &str| -> Option<String> {
        let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
        let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
        (secs.len() == 19 && secs.as_bytes()[10] == b'T').then(|| format!("{secs}.{frac:0<9}"))
    };
    match (instant(a), instant(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => Some(a.cmp(b)),
    }
}

fn field_matches(v: &Value, want: &Value) -> bool {
    match v {
        Value::Array(xs) => xs.iter().any(|x| x == want),
        other => other == want,
    }
}

/// The document's score under `q`, or `None` when it does not match.
fn eval(q: &Value, src: &Value, stats: &Stats) -> Option<f64> {
    let (kind, body) = q.as_object()?.iter().next()?;
    match kind.as_str() {
        "match_all" => Some(1.0),
        "term" => {
            let (field, p) = body.as_object()?.iter().next()?;
            let want = p.get("value").unwrap_or(p);
            field_matches(source_field(src, field)?, want).then_some(0.0)
        }
        "range" => {
            let (field, bounds) = body.as_object()?.iter().next()?;
            let v = source_field(src, field)?;
            let holds = |op: &str, want: fn(std::cmp::Ordering) -> bool| {
                bounds.get(op).is_none_or(|b| compare(v, b).is_some_and(want))
            };
            (holds("gt", |o| o.is_gt())
                && holds("gte", |o| o.is_ge())
                && holds("lt", |o| o.is_lt())
                && holds("lte", |o| o.is_le()))
            .then_some(0.0)
        }
        "terms" => {
            let (field, values) = body.as_object()?.iter().next()?;
            values.as_array()?.iter().any(|w| field_matches(&src[field], w)).then_some(0.0)
        }
        "match" => {
            let (field, p) = body.as_object()?.iter().next()?;
            let (text, boost) = match p {
                Value::String(s) => (s.clone(), 1.0),
                _ => (p["query"].as_str()?.to_string(), p["boost"].as_f64().unwrap_or(1.0)),
            };
            let doc = analyse(src[field].as_str()?);
            let (n_docs, total) = stats.docs.get(field.as_str()).copied().unwrap_or((0, 0));
            let avgdl = if n_docs == 0 { 1.0 } else { total as f64 / n_docs as f64 };
            let mut score = 0.0;
            let mut any = false;
            for t in analyse(&text) {
                let tf = doc.iter().filter(|d| **d == t).count() as f64;
                if tf == 0.0 {
                    continue;
                }
                any = true;
                let n = stats.df.get(&(field.clone(), t)).copied().unwrap_or(0) as f64;
                let idf = (1.0 + (n_docs as f64 - n + 0.5) / (n + 0.5)).ln();
                let norm = tf + 1.2 * (1.0 - 0.75 + 0.75 * doc.len() as f64 / avgdl);
                score += idf * tf * 2.2 / norm;
            }
            any.then_some(score * boost)
        }
        "combined_fields" => {
            // BM25F (Lucene's CombinedFieldQuery): per-word counts and document lengths summed
            // over the fields with their boosts, one document frequency over all of them.
            let text = body["query"].as_str()?;
            let fields: Vec<(String, f64)> = body["fields"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .map(|f| match f.split_once('^') {
                    Some((name, b)) => (name.to_string(), b.parse().unwrap_or(1.0)),
                    None => (f.to_string(), 1.0),
                })
                .collect();
            let key = fields.iter().map(|(f, b)| format!("{f}^{b}")).collect::<Vec<_>>().join(",");
            let (n_docs, total_len) = stats.combined.get(&key).copied().unwrap_or((0, 0.0));
            let avgdl = if n_docs == 0 { 1.0 } else { total_len / n_docs as f64 };
            let toks: Vec<(Vec<String>, f64)> =
                fields.iter().map(|(f, b)| (src[f].as_str().map(analyse).unwrap_or_default(), *b)).collect();
            let dl: f64 = toks.iter().map(|(t, b)| t.len() as f64 * b).sum();
            let mut score = 0.0;
            let mut any = false;
            let mut seen = HashSet::new();
            for t in analyse(text) {
                if !seen.insert(t.clone()) {
                    continue;
                }
                let tf: f64 = toks.iter().map(|(ts, b)| ts.iter().filter(|x| **x == t).count() as f64 * b).sum();
                if tf == 0.0 {
                    continue;
                }
                any = true;
                let n = stats.combined_df.get(&(key.clone(), t)).copied().unwrap_or(0) as f64;
                let idf = (1.0 + (n_docs as f64 - n + 0.5) / (n + 0.5)).ln();
                score += idf * tf * 2.2 / (tf + 1.2 * (1.0 - 0.75 + 0.75 * dl / avgdl));
            }
            any.then_some(score)
        }
        "bool" => {
            let list = |k: &str| body.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
            let mut score = 0.0;
            for c in list("must") {
                score += eval(&c, src, stats)?;
            }
            for c in list("filter") {
                eval(&c, src, stats)?;
            }
            let should = list("should");
            let mut hits = 0;
            for c in &should {
                if let Some(s) = eval(c, src, stats) {
                    hits += 1;
                    score += s;
                }
            }
            let min = body.get("minimum_should_match").and_then(Value::as_u64).unwrap_or(
                if should.is_empty() || !list("must").is_empty() || !list("filter").is_empty() { 0 } else { 1 },
            );
            (hits >= min).then_some(score)
        }
        _ => None,
    }
}

fn search(index: &str, ix: &Index, body: &Value, timed_out: bool) -> (u16, Value) {
    let q = body.get("query").cloned().unwrap_or(json!({"match_all": {}}));
    let stats = Stats::of(ix);
    let mut hits: Vec<(String, f64, Value)> = ix
        .docs
        .iter()
        .filter_map(|(id, (src, _))| eval(&q, src, &stats).map(|s| (id.clone(), s, src.clone())))
        .collect();
    let sort: Vec<(String, bool)> = body["sort"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            let (f, o) = s.as_object()?.iter().next()?;
            Some((f.clone(), o["order"].as_str() == Some("desc")))
        })
        .collect();
    hits.sort_by(|a, b| {
        for (field, desc) in &sort {
            let ord = if field == "_score" {
                a.1.total_cmp(&b.1)
            } else {
                a.2[field].as_str().unwrap_or_default().cmp(b.2[field].as_str().unwrap_or_default())
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
    let total = hits.len();
    // Aggregations over every hit (the logs search's `filter` counts and `avg`).
    let mut aggregations = serde_json::Map::new();
    for (name, agg) in body["aggs"].as_object().into_iter().flatten() {
        let value = if let Some(filter) = agg.get("filter") {
            json!({"doc_count": hits.iter().filter(|(_, _, src)| eval(filter, src, &stats).is_some()).count()})
        } else if let Some(field) = agg["avg"]["field"].as_str() {
            let xs: Vec<f64> = hits.iter().filter_map(|(_, _, src)| source_field(src, field)?.as_f64()).collect();
            let avg = (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
            json!({"value": avg})
        } else {
            return error(400, "x_content_parse_exception", &format!("[{name}] unknown aggregation type"));
        };
        aggregations.insert(name.clone(), value);
    }
    let size = body["size"].as_u64().unwrap_or(10) as usize;
    let out: Vec<Value> = hits
        .into_iter()
        .take(size)
        .map(|(id, score, src)| json!({"_index": index, "_id": id, "_score": score, "_source": src, "sort": [score, id]}))
        .collect();
    let mut answer = json!({"took": 2, "timed_out": timed_out, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
               "hits": {"total": {"value": total, "relation": "eq"}, "max_score": null, "hits": out}});
    if body.get("aggs").is_some() {
        answer["aggregations"] = Value::Object(aggregations);
    }
    (200, answer)
}
