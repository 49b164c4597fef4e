//! Keeps `/api/openapi.json` true: the served document is the generated one, every registered
//! route is documented, every documented operation is registered and answers (not 404/405),
//! and every response the tests see for a documented status is listed. Goes through the router
//! in-process (tower `oneshot`). schemathesis (scripts/schemathesis) then checks every response
//! of a real server against the schemas.

use crate::common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Scratch;
use guardrail_server::{AppState, Role, route_table, router};
use serde_json::Value;
use tower::ServiceExt;

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    out
}

fn generated() -> Value {
    guardrail_server::openapi::document()
}

/// The document `GET /api/openapi.json` serves.
async fn served() -> Value {
    let s = Scratch::new();
    let app = router(AppState::new(s.config()));
    let req = Request::builder().uri("/api/openapi.json").body(Body::empty()).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    assert_eq!(served().await, generated());
}

/// A type used as a request and as a response describes itself the same way both times (one
/// schema per name in `components`).
#[test]
fn no_schema_name_means_two_things() {
    let (_, conflicts) = guardrail_server::openapi::build(&guardrail_server::operations());
    assert!(conflicts.is_empty(), "schemas that differ as request and response: {conflicts:?}");
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let doc = generated();
    assert_eq!(doc["openapi"], "3.1.0");
    let routed: BTreeSet<(String, String)> =
        route_table().into_iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    let docs = documented(&doc);
    let undocumented: Vec<_> = routed.difference(&docs).collect();
    let unrouted: Vec<_> = docs.difference(&routed).collect();
    assert!(undocumented.is_empty(), "routes missing from openapi.json: {undocumented:?}");
    assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
    }
    // Write operations declare the bearer scheme and the refusals the server gives.
    for (m, p) in &docs {
        if m == "POST" {
            let op = &doc["paths"][p]["post"];
            assert_eq!(op["security"][0]["bearer"], serde_json::json!([]), "{p}");
            for code in ["400", "401", "403", "413", "415"] {
                assert!(op["responses"].get(code).is_some(), "{p} does not document {code}");
            }
        }
    }
}

/// Every route's documented role is the router's: an operation with a role declares the bearer
/// scheme and `x-required-role`, an open one neither.
#[test]
fn every_route_documents_the_role_it_needs() {
    let doc = generated();
    let scheme = doc["components"]["securitySchemes"]["bearer"]["description"].as_str().unwrap();
    for role in ["viewer", "deployer", "approver", "admin"] {
        assert!(scheme.contains(&format!("`{role}`")), "the bearer scheme does not describe {role}");
    }
    for (method, path, role) in route_table() {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        match role {
            Some(r) => {
                assert_eq!(op["x-required-role"], r.as_str(), "{method} {path}");
                assert_eq!(op["security"][0]["bearer"], serde_json::json!([]), "{method} {path}");
                let forbidden = op["responses"]["403"]["description"].as_str().unwrap_or_default();
                assert!(forbidden.contains(&format!("`{}`", r.as_str())), "{method} {path}: 403 names the role");
            }
            None => {
                assert!(op.get("x-required-role").is_none(), "{method} {path} is open");
                assert!(op.get("security").is_none(), "{method} {path} is open");
            }
        }
    }
    let roles: Vec<(&str, Option<Role>)> =
        route_table().into_iter().filter(|(m, _, _)| *m == "POST").map(|(_, p, r)| (p, r)).collect();
    assert!(roles.contains(&("/api/incidents/{id}/execute", Some(Role::Approver))), "{roles:?}");
    assert!(roles.contains(&("/api/incidents/{id}/resolve", Some(Role::Approver))), "{roles:?}");
}

/// The router's table is what the handlers enforce: for every route with a role, a token of
/// each role is refused with 403 exactly when that role may not (admin may everything, viewer
/// nothing), and otherwise gets past authentication; an open route needs no token.
#[tokio::test]
async fn each_roles_token_is_refused_exactly_where_the_table_says() {
    let s = Scratch::new();
    let app = router(AppState::new(s.config()));
    let tokens = [
        (Role::Viewer, common::VIEWER),
        (Role::Deployer, common::DEPLOYER),
        (Role::Approver, common::APPROVER),
        (Role::Admin, common::ADMIN),
    ];
    for (method, path, need) in route_table() {
        let Some(need) = need else {
            if path == "/api/events" {
                continue; // an endless stream
            }
            let req = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
            let st = app.clone().oneshot(req).await.unwrap().status();
            assert!(st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN, "{method} {path}: {st}");
            continue;
        };
        for (role, token) in tokens {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from("{}"))
                .unwrap();
            let st = app.clone().oneshot(req).await.unwrap().status();
            assert_ne!(st, StatusCode::UNAUTHORIZED, "{method} {path} with a {} token", role.as_str());
            if role.allows(need) {
                assert_ne!(st, StatusCode::FORBIDDEN, "{method} {path}: a {} token may", role.as_str());
            } else {
                assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}: a {} token may not", role.as_str());
            }
        }
    }
}

/// The documented CI context of a request is `guardrail_gate::ci::CiContext`'s wire format as
/// `CiRequest` reads it: the same field names, each a string or null, nothing else allowed.
#[test]
fn the_ci_context_schema_is_the_ci_context_type() {
    let doc = generated();
    let schema = &doc["components"]["schemas"]["CiRequest"];
    assert_eq!(schema["additionalProperties"], false);
    let props = schema["properties"].as_object().unwrap();
    let documented: Vec<String> = props.keys().cloned().collect();
    assert_eq!(documented, guardrail_gate::ci::CiContext::field_names());
    for (k, p) in props {
        assert_eq!(p["type"], serde_json::json!(["string", "null"]), "{k}");
    }
    let gate = &doc["paths"]["/api/gate"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let body_ref = gate["$ref"].as_str().unwrap_or_default().trim_start_matches("#/components/schemas/").to_string();
    let body = if body_ref.is_empty() { gate.clone() } else { doc["components"]["schemas"][&body_ref].clone() };
    // `ci` is the context or `null` (the server accepts `{"ci": null}`).
    let ci = &body["properties"]["ci"];
    let refs: Vec<&Value> = std::iter::once(ci).chain(ci["anyOf"].as_array().into_iter().flatten()).collect();
    assert!(refs.iter().any(|s| s["$ref"] == "#/components/schemas/CiRequest"), "{body}");
    assert!(refs.iter().any(|s| s["type"] == "null"), "{body}");
}

#[tokio::test]
async fn every_documented_operation_answers_with_a_documented_status() {
    let s = Scratch::new();
    let state = AppState::new(s.config());
    let app = router(state);
    let doc = generated();
    for (method, path) in documented(&doc) {
        let mut req = Request::builder().method(method.as_str()).uri(&path);
        let body = if method == "POST" {
            req = req
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {}", common::DEPLOYER));
            Body::from("{}")
        } else {
            Body::empty()
        };
        let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        // A templated path (`/api/incidents/{id}`) is routed; the literal id names nothing, so
        // its documented 404 is fine as long as it is the handler's and not the fallback's.
        if status == StatusCode::NOT_FOUND && path.contains('{') {
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert!(!v["error"].as_str().unwrap_or_default().contains("no such endpoint"), "{method} {path}: {v}");
            let code = status.as_u16().to_string();
            let responses = &doc["paths"][&path][method.to_ascii_lowercase()]["responses"];
            assert!(responses.get(&code).is_some(), "{method} {path} answered {code}, which is not documented");
            continue;
        }
        assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let code = status.as_u16().to_string();
        let responses = &doc["paths"][&path][method.to_ascii_lowercase()]["responses"];
        assert!(responses.get(&code).is_some(), "{method} {path} answered {code}, which is not documented");
        if path == "/api/events" {
            continue; // an endless stream
        }
        let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let documented_types: Vec<String> =
            responses[&code]["content"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        assert!(
            documented_types.iter().any(|t| ctype.starts_with(t.as_str())),
            "{method} {path}: content-type {ctype} not in {documented_types:?}"
        );
    }
}

/// One request of the tour: method, path template, path, token, content type, body.
type Exchange<'a> = (&'a str, &'a str, String, Option<&'a str>, Option<&'a str>, String);

/// What is wrong with `body` against the schema the document declares for `method template`
/// answering `status` (the document is the schema's root, so its `$ref`s resolve).
fn schema_errors(doc: &Value, method: &str, template: &str, status: StatusCode, body: &Value) -> Vec<String> {
    let op = &doc["paths"][template][method.to_ascii_lowercase()];
    let code = status.as_u16().to_string();
    let schema = &op["responses"][&code]["content"]["application/json"]["schema"];
    if schema.is_null() {
        return vec![format!("{code} is not documented")];
    }
    let mut root = doc.clone();
    root["x-under-test"] = schema.clone();
    root["$ref"] = "#/x-under-test".into();
    let validator = jsonschema::draft202012::new(&root).unwrap();
    validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// Every answer in a tour of the API — the deploy gate's reads and writes, the governor's
/// proposals, refusals and reads, and the refusals every write shares — is valid against the
/// schema the document declares for its status (schemathesis does this at random against a
/// real server in the test command; this is the same check, fixed and in-process).
#[tokio::test]
async fn every_answer_matches_its_documented_schema() {
    let s = Scratch::new();
    let mut cfg = s.config();
    let governor = common::examples().join("../governor");
    let src = guardrail_config::read_source(&governor.join("governor.yaml")).unwrap();
    let kb = s.path("knowledge.db");
    let mut store = guardrail_knowledge::SqliteKnowledgeStore::create(&kb).unwrap();
    guardrail_knowledge::KnowledgeStore::load_sample_data(&mut store, &governor.join("sample_data.json")).unwrap();
    cfg.governor = guardrail_server::GovernorSettings {
        config: guardrail_config::load_governor_config(&src).unwrap().value,
        kb: Some(kb),
        ..Default::default()
    };
    let app = router(AppState::new(cfg));
    let doc = generated();
    let scenario = |name: &str| std::fs::read_to_string(governor.join("scenarios").join(name)).unwrap();
    let json = Some("application/json");
    let exchanges: Vec<Exchange> = vec![
        ("POST", "/api/gate", "/api/gate".into(), Some(common::DEPLOYER), json, "{}".into()),
        ("POST", "/api/gate", "/api/gate".into(), Some(common::DEPLOYER), json, r#"{"ci": null}"#.into()),
        (
            "POST",
            "/api/gate",
            "/api/gate".into(),
            Some(common::ADMIN),
            json,
            r#"{"ci": {"repository": "acme/shop", "commit": "abc123", "provider": null}, "fail_on_warn": true}"#.into(),
        ),
        ("POST", "/api/gate", "/api/gate".into(), None, json, "{}".into()),
        ("POST", "/api/gate", "/api/gate".into(), Some(common::VIEWER), json, "{}".into()),
        ("POST", "/api/gate", "/api/gate".into(), Some(common::DEPLOYER), Some("text/plain"), "{}".into()),
        ("POST", "/api/gate", "/api/gate".into(), Some(common::DEPLOYER), json, r#"{"ci": {"who": "me"}}"#.into()),
        (
            "POST",
            "/api/simulate",
            "/api/simulate".into(),
            Some(common::DEPLOYER),
            json,
            r#"{"signals": {"error_budget_pct": 5, "cost_trend": "rising", "no_data": false}}"#.into(),
        ),
        (
            "POST",
            "/api/simulate",
            "/api/simulate".into(),
            Some(common::DEPLOYER),
            json,
            r#"{"signals": {"nope": 1}}"#.into(),
        ),
        (
            "POST",
            "/api/incidents",
            "/api/incidents".into(),
            Some(common::DEPLOYER),
            json,
            scenario("incident_high.json"),
        ),
        (
            "POST",
            "/api/incidents",
            "/api/incidents".into(),
            Some(common::DEPLOYER),
            json,
            scenario("incident_medium.json"),
        ),
        ("POST", "/api/incidents", "/api/incidents".into(), Some(common::DEPLOYER), json, r#"{"id": "x"}"#.into()),
        (
            "POST",
            "/api/incidents/{id}/approve",
            "/api/incidents/inc-live-001/approve".into(),
            Some(common::APPROVER),
            json,
            r#"{"binding_hash": "000000000000"}"#.into(),
        ),
        (
            "POST",
            "/api/incidents/{id}/approve",
            "/api/incidents/no-such-incident/approve".into(),
            Some(common::APPROVER),
            json,
            r#"{"binding_hash": "000000000000"}"#.into(),
        ),
        (
            "POST",
            "/api/incidents/{id}/execute",
            "/api/incidents/inc-live-001/execute".into(),
            Some(common::APPROVER),
            json,
            "{}".into(),
        ),
        (
            "POST",
            "/api/incidents/{id}/resolve",
            "/api/incidents/no-such-incident/resolve".into(),
            Some(common::APPROVER),
            json,
            r#"{"summary": "restarted"}"#.into(),
        ),
        ("GET", "/api/slo", "/api/slo".into(), None, None, String::new()),
        ("GET", "/api/cost", "/api/cost".into(), None, None, String::new()),
        ("GET", "/api/decision", "/api/decision".into(), None, None, String::new()),
        ("GET", "/api/explain", "/api/explain".into(), None, None, String::new()),
        ("GET", "/api/all", "/api/all".into(), None, None, String::new()),
        ("GET", "/api/audit", "/api/audit".into(), None, None, String::new()),
        ("GET", "/api/audit", "/api/audit?limit=2&kind=deploy_decision".into(), None, None, String::new()),
        ("GET", "/api/audit", "/api/audit?limit=0".into(), None, None, String::new()),
        ("GET", "/api/audit/verify", "/api/audit/verify".into(), None, None, String::new()),
        ("GET", "/api/incidents", "/api/incidents".into(), None, None, String::new()),
        ("GET", "/api/incidents/{id}", "/api/incidents/inc-live-001".into(), None, None, String::new()),
        ("GET", "/api/incidents/{id}", "/api/incidents/no-such-incident".into(), None, None, String::new()),
        ("GET", "/api/approvals", "/api/approvals".into(), None, None, String::new()),
        ("GET", "/healthz", "/healthz".into(), None, None, String::new()),
        ("GET", "/readyz", "/readyz".into(), None, None, String::new()),
    ];
    // The check bites: a wrong answer is refused.
    let dead = serde_json::json!({"ok": true, "data": {"status": "dead"}});
    assert!(!schema_errors(&doc, "GET", "/healthz", StatusCode::OK, &dead).is_empty(), "a dead /healthz passed");
    let mut statuses = BTreeSet::new();
    for (method, template, path, token, ctype, body) in exchanges {
        let mut req = Request::builder().method(method).uri(&path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        let resp = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let errors = schema_errors(&doc, method, template, status, &v);
        assert!(errors.is_empty(), "{method} {path} {status}: the answer does not match its schema: {errors:#?}\n{v}");
        statuses.insert(status.as_u16());
    }
    // The tour reaches the answers worth checking: success, every refusal of a write, the
    // governor's conflicts and the missing incident.
    for code in [200, 400, 401, 403, 404, 409, 415] {
        assert!(statuses.contains(&code), "no exchange answered {code}: {statuses:?}");
    }
}

/// Every write's body is documented as closed (`additionalProperties: false`), as the server
/// reads it (`deny_unknown_fields`): a field the server refuses is never one the document allows,
/// and nothing unknown is ever recorded. Checked against the server too: an unknown field is 400.
#[tokio::test]
async fn every_write_body_is_closed_in_the_document_and_on_the_server() {
    let doc = generated();
    let s = Scratch::new();
    let app = router(AppState::new(s.config()));
    for (method, path, role) in route_table() {
        if method != "POST" {
            continue;
        }
        let schema = &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"];
        let name = schema["$ref"].as_str().unwrap_or_default().trim_start_matches("#/components/schemas/");
        let body = &doc["components"]["schemas"][name];
        assert_eq!(body["additionalProperties"], false, "POST {path}: {schema} / {body}");
        let token = match role {
            Some(Role::Approver) => common::APPROVER,
            _ => common::DEPLOYER,
        };
        let req = Request::builder()
            .method("POST")
            .uri(path.replace("{id}", "inc-x"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(r#"{"x-unknown": 1}"#))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "POST {path} with an unknown field");
    }
}
