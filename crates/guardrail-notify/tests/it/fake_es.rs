//! A loopback Elasticsearch for the audit mirror's tests, speaking the REST API's shapes for
//! every call the mirror makes, as Elasticsearch 8 documents and sends them:
//! - `PUT /{index}` with a body of `mappings` → `{"acknowledged": true, "shards_acknowledged":
//!   true, "index": …}`, or 400 `resource_already_exists_exception` when it exists;
//! - `POST /_bulk` NDJSON (`index` / `create` action lines, each followed by its source; the body
//!   must end in a newline) → `{"took", "errors", "items": [{"index": {"_index", "_id",
//!   "_version", "result": "created"|"updated", "_shards", "_seq_no", "_primary_term",
//!   "status": 201|200}}]}`; failed items carry `status` and `error.type` / `error.reason`: an
//!   injected 400 `mapper_parsing_exception` or 429 `es_rejected_execution_exception` per id, a
//!   field outside a `dynamic: strict` mapping 400 `strict_dynamic_mapping_exception`; a missing
//!   index is created on the fly, as `action.auto_create_index` (on by default) does;
//! - `DELETE /{index}` → `{"acknowledged": true}` or 404 `index_not_found_exception`;
//! - `GET /{index}/_doc/{id}` → the document with `found: true`, or 404 `found: false`;
//! - injected whole-call errors: 401 `security_exception` (with the `WWW-Authenticate`
//!   headers), 429 `es_rejected_execution_exception`, 503 `master_not_discovered_exception`;
//!   a wrong or missing `Authorization` header is 401 (a missing one passes with anonymous
//!   access enabled).
//!
//! It reads requests as `serde_json::Value`: it stands in for an arbitrary server.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use guardrail_test_support::http::{Request, read_request};
use serde_json::{Value, json};

#[derive(Default)]
struct Index {
    mapping: Value,
    docs: BTreeMap<String, (Value, u64)>,
}

#[derive(Default)]
struct State {
    indices: BTreeMap<String, Index>,
    seq: u64,
    auth: Option<String>,
    anonymous: bool,
    fail_next: Vec<u16>,
    item_errors: HashMap<String, u16>,
    log: Vec<String>,
}

/// A running fake cluster.
pub struct FakeEs {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeEs {
    /// A cluster with no index.
    pub fn start() -> FakeEs {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let state = Arc::clone(&shared);
                std::thread::spawn(move || {
                    while let Some(req) = read_request(&mut s) {
                        let (status, body) = answer(&mut state.lock().unwrap(), &req);
                        let text = body.to_string();
                        let mut head = format!(
                            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nX-elastic-product: Elasticsearch\r\n",
                            reason(status),
                            text.len()
                        );
                        if status == 401 {
                            head.push_str("WWW-Authenticate: Basic realm=\"security\" charset=\"UTF-8\"\r\n");
                            head.push_str("WWW-Authenticate: ApiKey\r\n");
                        }
                        head.push_str("\r\n");
                        if s.write_all(head.as_bytes()).and_then(|()| s.write_all(text.as_bytes())).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeEs { url, state }
    }

    /// Every request must carry this `Authorization` header.
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

    /// `_bulk` items with this `_id` fail with `status` (400 mapper_parsing_exception, 429).
    pub fn fail_item(&self, id: &str, status: u16) {
        self.state.lock().unwrap().item_errors.insert(id.to_string(), status);
    }

    /// Items fail no longer.
    pub fn heal_items(&self) {
        self.state.lock().unwrap().item_errors.clear();
    }

    /// `METHOD path` of every request so far.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// The mapping an index was created with (`Null` when auto-created).
    pub fn mapping(&self, index: &str) -> Option<Value> {
        self.state.lock().unwrap().indices.get(index).map(|i| i.mapping.clone())
    }

    /// Every document of an index, by `_id`.
    pub fn docs(&self, index: &str) -> BTreeMap<String, Value> {
        let st = self.state.lock().unwrap();
        st.indices
            .get(index)
            .map(|i| i.docs.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
            .unwrap_or_default()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

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
        s => error(s, "internal_server_error", "injected"),
    }
}

fn answer(st: &mut State, req: &Request) -> (u16, Value) {
    let line = req.head.lines().next().unwrap_or_default().to_string();
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    st.log.push(format!("{method} {target}"));
    let path = target.split_once('?').map_or(target.as_str(), |(p, _)| p).to_string();
    if let Some(want) = &st.auth {
        let got = req.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("authorization").then(|| v.trim().to_string())
        });
        if got.as_deref() != Some(want.as_str()) && !(got.is_none() && st.anonymous) {
            return match got {
                None => injected(401, &path),
                Some(_) => error(
                    401,
                    "security_exception",
                    "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
                ),
            };
        }
    }
    if !st.fail_next.is_empty() {
        let s = st.fail_next.remove(0);
        return injected(s, &path);
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("PUT", [index]) if !index.starts_with('_') => {
            if st.indices.contains_key(*index) {
                let (s, mut v) =
                    error(400, "resource_already_exists_exception", &format!("index [{index}/Xk3d9Q] already exists"));
                v["error"]["index"] = json!(index);
                return (s, v);
            }
            let mapping: Value = match serde_json::from_str(&req.body) {
                Ok(v) => v,
                Err(e) => return error(400, "parse_exception", &format!("request body is not JSON: {e}")),
            };
            st.indices.insert(index.to_string(), Index { mapping, docs: BTreeMap::new() });
            (200, json!({"acknowledged": true, "shards_acknowledged": true, "index": index}))
        }
        ("DELETE", [index]) => match st.indices.remove(*index) {
            Some(_) => (200, json!({"acknowledged": true})),
            None => error(404, "index_not_found_exception", &format!("no such index [{index}]")),
        },
        ("POST" | "PUT", ["_bulk"]) => bulk(st, &req.body),
        ("GET", [index, "_doc", id]) => {
            let Some(ix) = st.indices.get(*index) else {
                return error(404, "index_not_found_exception", &format!("no such index [{index}]"));
            };
            match ix.docs.get(*id) {
                Some((src, seq)) => (
                    200,
                    json!({"_index": index, "_id": id, "_version": 1, "_seq_no": seq, "_primary_term": 1, "found": true, "_source": src}),
                ),
                None => (404, json!({"_index": index, "_id": id, "found": false})),
            }
        }
        _ => error(400, "illegal_argument_exception", &format!("no handler for [{method}] {path}")),
    }
}

/// The fields a `dynamic: strict` mapping refuses in `source`, if it is strict.
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
            return error(400, "illegal_argument_exception", &format!("Malformed action/metadata line, got {op}"));
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
        let fail = |status: u16, kind: &str, reason: String| json!({op.as_str(): {"_index": index, "_id": id, "status": status, "error": {"type": kind, "reason": reason, "index": index}}});
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
    (200, json!({"took": 4, "errors": errors, "items": items}))
}
