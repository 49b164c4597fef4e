//! A loopback Jira Cloud site for the tests of the Jira channel (the notify crate, `guardrail
//! notify` and `guardrail serve`'s outbox worker). It speaks REST v3 as Atlassian documents it:
//! - Basic auth (`email:api-token`) on every call: anything else is 401 with
//!   `WWW-Authenticate: Basic realm="protected-area"`;
//! - `POST /rest/api/3/search/jql` (`{"jql": …}`; the `labels = "…"` clause Guardrail sends is
//!   honoured) → `{"issues": [{id, key, self}], "isLast": true}`;
//! - `POST /rest/api/3/issue` → 201 `{id, key, self}`; the fields are checked as Jira checks them:
//!   a known project (`SRE`, keys `SRE-1`, `SRE-2`, …), a summary, an issue type, a description
//!   in Atlassian Document Format, labels without spaces, and a `Blocker` priority is refused as a
//!   field not on the screen;
//! - `POST /rest/api/3/issue/{key}/comment` (an ADF `body`) → 201 with the comment;
//!   `GET …/transitions` → To Do (11), In Progress (21), Done (31); `POST …/transitions` → 204;
//!   an unknown issue is 404;
//! - every error body is Jira's error collection `{"errorMessages": [...], "errors": {...}}`;
//!   [`Mode`] makes the site answer 503 (an outage), 429 with `Retry-After`, or nothing (a hang).
//!
//! The fake reads requests as `serde_json::Value`: it stands in for an arbitrary server, so it
//! checks whatever arrives rather than trusting Guardrail's types.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{Request, basic_auth, header, method_and_target, read_request, write_response};

/// The one project the site has.
pub const PROJECT: &str = "SRE";

/// How the site answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// As Jira does.
    Normal,
    /// 503 with an error collection (an outage).
    Down,
    /// 429 with `Retry-After: n`.
    RateLimited(u64),
    /// Accepts the connection and answers nothing for this long.
    Hang(Duration),
}

/// One issue as the site keeps it.
#[derive(Debug, Clone)]
pub struct Issue {
    /// The numeric id (10000, 10001, …).
    pub id: u64,
    /// `SRE-1`, `SRE-2`, ….
    pub key: String,
    /// The create request's body as it arrived (`{"fields": {...}}`).
    pub create: Value,
    /// The ADF body of every comment, in order.
    pub comments: Vec<Value>,
    /// The status name (`To Do` until transitioned).
    pub status: String,
}

struct State {
    mode: Mode,
    auth: String,
    issues: Vec<Issue>,
    log: Vec<String>,
    auth_seen: Vec<String>,
    create_delay: Duration,
}

/// A running site on 127.0.0.1 (it lives as long as the test process).
pub struct FakeJira {
    /// `http://127.0.0.1:PORT`, the site's base URL (`JIRA_URL`).
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeJira {
    /// A site that takes Basic auth with `email` and `api_token`, with no issues.
    pub fn start(email: &str, api_token: &str) -> FakeJira {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Normal,
            auth: basic_auth(email, api_token),
            issues: Vec::new(),
            log: Vec::new(),
            auth_seen: Vec::new(),
            create_delay: Duration::ZERO,
        }));
        let shared = Arc::clone(&state);
        let base = url.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let (state, base) = (Arc::clone(&shared), base.clone());
                std::thread::spawn(move || handle(&mut s, &state, &base));
            }
        });
        FakeJira { url, state }
    }

    /// How the next requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Issue creation answers this late (to widen race windows).
    pub fn slow_creates(&self, d: Duration) {
        self.state.lock().unwrap().create_delay = d;
    }

    /// The issues so far, in creation order.
    pub fn issues(&self) -> Vec<Issue> {
        self.state.lock().unwrap().issues.clone()
    }

    /// `METHOD path` of every request so far.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// The `Authorization` header of every request so far (empty when absent).
    pub fn auth_headers(&self) -> Vec<String> {
        self.state.lock().unwrap().auth_seen.clone()
    }
}

fn respond(s: &mut TcpStream, status: u16, extra: &[(&str, &str)], body: &str) {
    let mut headers = vec![("Connection", "close")];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json;charset=UTF-8"));
    }
    headers.extend_from_slice(extra);
    let _ = write_response(s, status, &headers, body);
}

/// Jira's error collection.
fn errors(messages: &[&str], fields: &[(&str, &str)]) -> String {
    let errors: BTreeMap<&str, &str> = fields.iter().copied().collect();
    json!({"errorMessages": messages, "errors": errors}).to_string()
}

/// Why `v` is not an Atlassian Document Format document (`{"type": "doc", "version": 1,
/// "content": [...]}`, every node an object with a `type`, text nodes with non-empty `text`).
fn adf_problem(v: &Value) -> Option<&'static str> {
    fn node(n: &Value) -> Option<&'static str> {
        let Some(kind) = n["type"].as_str() else { return Some("a node without a type") };
        if kind == "text" && n["text"].as_str().is_none_or(str::is_empty) {
            return Some("a text node without text");
        }
        match n.get("content") {
            None => None,
            Some(Value::Array(children)) => children.iter().find_map(node),
            Some(_) => Some("content that is not an array"),
        }
    }
    if v["type"] != "doc" || v["version"] != 1 || !v["content"].is_array() {
        return Some("not a doc of version 1");
    }
    v["content"].as_array().into_iter().flatten().find_map(node)
}

/// The 400 body for a create request Jira would refuse, if any.
fn create_problem(body: &Value) -> Option<String> {
    let f = body.get("fields").filter(|f| f.is_object());
    let Some(f) = f else {
        return Some(errors(&["Invalid request payload. Refer to the REST API documentation and try again."], &[]));
    };
    if f["project"]["key"].as_str() != Some(PROJECT) {
        return Some(errors(&[], &[("project", "valid project is required")]));
    }
    if f["summary"].as_str().is_none_or(|s| s.trim().is_empty()) {
        return Some(errors(&[], &[("summary", "You must specify a summary of the issue.")]));
    }
    if f["issuetype"]["name"].as_str().or(f["issuetype"]["id"].as_str()).is_none() {
        return Some(errors(&[], &[("issuetype", "Specify an issue type")]));
    }
    if let Some(d) = f.get("description")
        && adf_problem(d).is_some()
    {
        return Some(errors(
            &[],
            &[("description", "Operation value must be an Atlassian Document (see the Atlassian Document Format)")],
        ));
    }
    if let Some(labels) = f.get("labels") {
        let ok = labels.as_array().is_some_and(|ls| ls.iter().all(|l| l.as_str().is_some_and(|l| !l.contains(' '))));
        if !ok {
            return Some(errors(&[], &[("labels", "The label 'x y' contains spaces which is invalid.")]));
        }
    }
    if f["priority"]["name"] == "Blocker" {
        return Some(errors(
            &[],
            &[("priority", "Field 'priority' cannot be set. It is not on the appropriate screen, or unknown.")],
        ));
    }
    None
}

fn handle(s: &mut TcpStream, st: &Arc<Mutex<State>>, base: &str) {
    let Some(req) = read_request(s) else { return };
    let (method, path) = method_and_target(&req);
    let auth = header(&req, "authorization").unwrap_or_default();
    let (mode, want) = {
        let mut g = st.lock().unwrap();
        g.log.push(format!("{method} {path}"));
        g.auth_seen.push(auth.clone());
        (g.mode.clone(), g.auth.clone())
    };
    match mode {
        Mode::Normal => {}
        Mode::Down => return respond(s, 503, &[], &errors(&["Jira is down for maintenance."], &[])),
        Mode::RateLimited(secs) => {
            let secs = secs.to_string();
            return respond(
                s,
                429,
                &[("Retry-After", &secs), ("X-RateLimit-Reason", "jira-burst-based")],
                &errors(&["Rate limit exceeded."], &[]),
            );
        }
        Mode::Hang(d) => return std::thread::sleep(d),
    }
    if auth != want {
        return respond(
            s,
            401,
            &[("WWW-Authenticate", "Basic realm=\"protected-area\"")],
            &errors(&["You are not authenticated. Authentication required to perform this operation."], &[]),
        );
    }
    let (status, body) = answer(st, &req, &method, &path, base);
    respond(s, status, &[], &body);
}

fn answer(st: &Arc<Mutex<State>>, req: &Request, method: &str, path: &str, base: &str) -> (u16, String) {
    let not_found = || (404, errors(&["No such endpoint."], &[]));
    let body: Value = match serde_json::from_str(&req.body) {
        Ok(v) => v,
        Err(_) if req.body.is_empty() => Value::Null,
        Err(e) => return (400, errors(&[&format!("Invalid request payload: {e}")], &[])),
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("POST", ["rest", "api", "3", "search", "jql"]) => {
            let Some(jql) = body["jql"].as_str() else {
                return (
                    400,
                    errors(&["Invalid request payload. Refer to the REST API documentation and try again."], &[]),
                );
            };
            // Only the shape Guardrail sends: project = "K" AND labels = "L" ….
            let label = jql.split("labels = \"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
            let g = st.lock().unwrap();
            let issues: Vec<Value> = g
                .issues
                .iter()
                .filter(|i| i.create["fields"]["labels"].as_array().is_some_and(|ls| ls.iter().any(|l| l == label)))
                .map(|i| json!({"id": i.id.to_string(), "key": i.key, "self": format!("{base}/rest/api/3/issue/{}", i.id)}))
                .collect();
            (200, json!({"issues": issues, "isLast": true}).to_string())
        }
        ("POST", ["rest", "api", "3", "issue"]) => {
            if let Some(problem) = create_problem(&body) {
                return (400, problem);
            }
            let delay = st.lock().unwrap().create_delay;
            std::thread::sleep(delay);
            let mut g = st.lock().unwrap();
            let id = 10_000 + g.issues.len() as u64;
            let key = format!("{PROJECT}-{}", g.issues.len() + 1);
            g.issues.push(Issue { id, key: key.clone(), create: body, comments: Vec::new(), status: "To Do".into() });
            (
                201,
                json!({"id": id.to_string(), "key": key, "self": format!("{base}/rest/api/3/issue/{id}")}).to_string(),
            )
        }
        (m, ["rest", "api", "3", "issue", key, what]) => {
            let mut g = st.lock().unwrap();
            let Some(issue) = g.issues.iter_mut().find(|i| i.key == *key) else {
                return (404, errors(&["Issue does not exist or you do not have permission to see it."], &[]));
            };
            match (m, *what) {
                ("POST", "comment") => {
                    if adf_problem(&body["body"]).is_some() {
                        return (400, errors(&[], &[("comment", "Comment body is not valid ADF.")]));
                    }
                    issue.comments.push(body["body"].clone());
                    let n = 20_000 + issue.comments.len();
                    let out = json!({"id": n.to_string(), "self": format!("{base}/rest/api/3/issue/{}/comment/{n}", issue.id),
                        "author": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Guardrail"},
                        "body": body["body"], "created": "2026-12-06T10:00:00.000+0000"});
                    (201, out.to_string())
                }
                ("GET", "transitions") => {
                    let t = |id: &str, name: &str| {
                        json!({"id": id, "name": name, "hasScreen": false, "isGlobal": true,
                        "isInitial": false, "isAvailable": true, "isConditional": false,
                        "to": {"self": format!("{base}/rest/api/3/status/{id}"), "name": name, "id": id,
                               "statusCategory": {"id": 3, "key": "done", "name": name}}})
                    };
                    let out = json!({"expand": "transitions", "transitions": [t("11", "To Do"), t("21", "In Progress"), t("31", "Done")]});
                    (200, out.to_string())
                }
                ("POST", "transitions") => {
                    let name = match body["transition"]["id"].as_str() {
                        Some("11") => "To Do",
                        Some("21") => "In Progress",
                        Some("31") => "Done",
                        Some(other) => {
                            let msg = format!("Transition id '{other}' is not valid for this issue.");
                            return (400, errors(&[&msg], &[]));
                        }
                        None => return (400, errors(&["Invalid transition payload."], &[])),
                    };
                    issue.status = name.into();
                    (204, String::new())
                }
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adf_documents_are_checked() {
        let ok = json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}]});
        assert_eq!(adf_problem(&ok), None);
        assert!(adf_problem(&json!("plain text")).is_some());
        let empty_text = json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}]});
        assert!(adf_problem(&empty_text).is_some());
    }

    #[test]
    fn create_requests_are_checked_as_jira_does() {
        let good = json!({"fields": {"project": {"key": "SRE"}, "summary": "s", "issuetype": {"name": "Task"}, "labels": ["a"]}});
        assert_eq!(create_problem(&good), None);
        let mut other = good.clone();
        other["fields"]["project"]["key"] = json!("OPS");
        assert!(create_problem(&other).unwrap().contains("valid project is required"));
        let mut spaced = good.clone();
        spaced["fields"]["labels"] = json!(["a b"]);
        assert!(create_problem(&spaced).unwrap().contains("labels"));
        let mut blocker = good;
        blocker["fields"]["priority"] = json!({"name": "Blocker"});
        assert!(create_problem(&blocker).unwrap().contains("cannot be set"));
    }
}
