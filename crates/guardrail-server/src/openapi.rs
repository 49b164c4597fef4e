//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated — never written by hand.
//!
//! Each route in [`crate::route_table`] is registered with its handler, and the handler's
//! signature documents it ([`DocHandler`]): the request body is the `T` of its
//! [`StrictJson<T>`](crate::api::StrictJson) (and brings 400, 413 and 415), the role is its
//! extractor's ([`Deployer`](crate::api::Deployer), [`Approver`](crate::governor_api::Approver):
//! the bearer scheme, `x-required-role`, 401 and 403), path and query parameters come from
//! `Path` and `Query<Q>`, and the success body is the `T` of its [`Answer<T>`](crate::wire::Answer)
//! or [`Cached<T>`](crate::wire::Cached). What the signature cannot say — the other failure
//! statuses of a handler — the route adds next to the registration ([`OperationDoc::fails`]).
//! The schemas are schemars' (JSON Schema 2020-12, OpenAPI 3.1's dialect) for the same types
//! the handlers deserialize and serialize, so the document cannot drift from the code: the one
//! derive serves the audit records, the HTTP API and the MCP tools.
//!
//! Request and response schemas come from two generators: a request type is described as it
//! deserializes (`#[serde(default)]` fields optional, `deny_unknown_fields` closed) and a
//! response as it serializes (a `skip_serializing_if` field optional). A type used both ways
//! must describe itself the same way in both; [`build`] reports any name whose two schemas differ.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::Sse;
use axum::response::{Html, Response};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::api::{ApiError, Deployer, StrictJson};
use crate::auth::Role;
use crate::governor_api::Approver;
use crate::wire::ErrorBody;

/// Produces a type's schema (a `$ref` into `components/schemas` for named types).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The [`SchemaFn`] of `T`.
pub fn schema_of<T: JsonSchema>() -> SchemaFn {
    fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
        g.subschema_for::<T>()
    }
    of::<T>
}

/// A documented response body.
#[derive(Clone, Copy)]
pub enum Content {
    /// `application/json` with this schema.
    Json(SchemaFn),
    /// Another media type (the dashboard's HTML and script, Prometheus text, server-sent
    /// events), not described further.
    Other(&'static str),
}

/// One documented response of an operation.
#[derive(Clone)]
pub struct ResponseDoc {
    /// What it means.
    pub description: Cow<'static, str>,
    /// Its body.
    pub content: Content,
}

/// Everything the document says about one operation.
#[derive(Clone, Default)]
pub struct OperationDoc {
    /// One line.
    pub summary: &'static str,
    /// The role its bearer token needs (`None`: open).
    pub role: Option<Role>,
    /// The JSON body it reads (deserialize contract).
    pub request: Option<SchemaFn>,
    /// Its query string's fields (a struct; each property is one parameter).
    pub query: Option<SchemaFn>,
    /// Its responses by status.
    pub responses: BTreeMap<u16, ResponseDoc>,
}

impl OperationDoc {
    /// Adds (or replaces) a response.
    pub fn respond(&mut self, status: u16, description: impl Into<Cow<'static, str>>, content: Content) {
        self.responses.insert(status, ResponseDoc { description: description.into(), content });
    }

    /// Adds a failure answered with the error envelope ([`ErrorBody`]).
    pub fn fail(&mut self, status: u16, description: impl Into<Cow<'static, str>>) {
        self.respond(status, description, Content::Json(schema_of::<ErrorBody>()));
    }

    /// Adds failures answered with the error envelope, in a route's registration.
    pub fn fails(mut self, failures: &[(u16, &'static str)]) -> Self {
        for (status, description) in failures {
            self.fail(*status, *description);
        }
        self
    }

    /// Adds a failure whose body is `T` (an error envelope with more fields).
    pub fn fails_with<T: JsonSchema>(mut self, status: u16, description: &'static str) -> Self {
        self.respond(status, description, Content::Json(schema_of::<T>()));
        self
    }

    /// Adds a response, in a route's registration.
    pub fn responds(mut self, status: u16, description: &'static str, content: Content) -> Self {
        self.respond(status, description, content);
        self
    }

    /// Sets the summary.
    pub fn summary(mut self, summary: &'static str) -> Self {
        self.summary = summary;
        self
    }
}

/// What one handler argument (an extractor) says about its operation.
pub trait DocArg {
    /// Adds to the operation's documentation.
    fn document(_op: &mut OperationDoc) {}
}

/// What a handler's return type says about its operation.
pub trait DocReturn {
    /// Adds to the operation's documentation.
    fn document(_op: &mut OperationDoc) {}
}

/// A handler whose signature documents its operation: every argument is a [`DocArg`] and the
/// return type a [`DocReturn`]. Implemented for every `async fn` of up to six such arguments.
pub trait DocHandler<Args> {
    /// The operation's documentation as far as the signature tells.
    fn document(op: &mut OperationDoc);
}

macro_rules! doc_handler {
    ($($arg:ident),*) => {
        impl<F, Fut, R, $($arg,)*> DocHandler<($($arg,)*)> for F
        where
            F: FnOnce($($arg,)*) -> Fut,
            Fut: Future<Output = R>,
            R: DocReturn,
            $($arg: DocArg,)*
        {
            fn document(op: &mut OperationDoc) {
                $($arg::document(op);)*
                R::document(op);
            }
        }
    };
}
doc_handler!();
doc_handler!(A1);
doc_handler!(A1, A2);
doc_handler!(A1, A2, A3);
doc_handler!(A1, A2, A3, A4);
doc_handler!(A1, A2, A3, A4, A5);
doc_handler!(A1, A2, A3, A4, A5, A6);

impl<S> DocArg for State<S> {}

/// A path parameter (`/api/incidents/{id}`): documented from the path template itself.
impl DocArg for Path<String> {}

impl<Q: JsonSchema> DocArg for Query<Q> {
    fn document(op: &mut OperationDoc) {
        op.query = Some(schema_of::<Q>());
        op.fail(400, "The query string is not valid (an unknown parameter, a value out of range).");
    }
}

impl<Q: JsonSchema> DocArg for Result<Query<Q>, QueryRejection> {
    fn document(op: &mut OperationDoc) {
        <Query<Q> as DocArg>::document(op);
    }
}

impl<T: JsonSchema> DocArg for StrictJson<T> {
    fn document(op: &mut OperationDoc) {
        op.request = Some(schema_of::<T>());
        body_refusals(op);
    }
}

/// The refusals of every JSON body ([`StrictJson`]).
pub fn body_refusals(op: &mut OperationDoc) {
    op.fail(400, "The body is not a JSON object of the documented shape (a missing or unknown field, a wrong type, an empty id).");
    op.fail(413, "The body is larger than the server's limit (`--max-body-bytes`).");
    op.fail(415, "The body was not sent as `Content-Type: application/json`.");
}

/// The bearer-token refusals of an operation that needs `role`.
pub fn auth_refusals(op: &mut OperationDoc, role: Role) {
    op.role = Some(role);
    op.fail(
        401,
        "No valid bearer token (missing, malformed or unknown), or the server has no tokens file: write endpoints are disabled.",
    );
    op.fail(403, format!("The token's role may not call this operation: it needs `{}` (or `admin`).", role.as_str()));
}

impl DocArg for Deployer {
    fn document(op: &mut OperationDoc) {
        auth_refusals(op, Role::Deployer);
    }
}

impl DocArg for Approver {
    fn document(op: &mut OperationDoc) {
        auth_refusals(op, Role::Approver);
    }
}

/// A handler returning a bare [`Response`] documents its success at the registration.
impl DocReturn for Response {}

/// Failure statuses are the route's ([`OperationDoc::fails`]): an [`ApiError`] can carry any.
impl DocReturn for ApiError {}

impl<T: DocReturn, E: DocReturn> DocReturn for Result<T, E> {
    fn document(op: &mut OperationDoc) {
        T::document(op);
        E::document(op);
    }
}

impl<T> DocReturn for Html<T> {
    fn document(op: &mut OperationDoc) {
        op.respond(200, "The dashboard.", Content::Other("text/html"));
    }
}

impl<S> DocReturn for Sse<S> {
    fn document(op: &mut OperationDoc) {
        op.respond(
            200,
            "Server-sent events: `hello` at once, then `inputs`, `decision`, `audit`, `incident`, `approval`.",
            Content::Other("text/event-stream"),
        );
    }
}

/// One route as documented: method, path and what its handler and registration say.
#[derive(Clone)]
pub struct Operation {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path template (`/api/incidents/{id}`).
    pub path: &'static str,
    /// Its documentation.
    pub doc: OperationDoc,
}

const DESCRIPTION: &str = "The deterministic trust boundary between a change and production: `guardrail serve`. \
Every JSON answer is `{\"ok\": true, \"data\": …}` or `{\"ok\": false, \"error\": \"…\", \"errors\": […]}`. \
Read endpoints are open (the server binds 127.0.0.1 by default); POST endpoints need `Authorization: Bearer TOKEN` \
with the role named by the operation's `x-required-role` (`deployer` or `approver`; `admin` may do both; `viewer` \
may do neither): 401 without a valid token, 403 with a token of another role. When bound to loopback, a request \
whose `Host` is not 127.0.0.1, localhost or [::1] on the server's port gets 421 (DNS-rebinding protection). Unknown \
paths get 404 and wrong methods 405, both as `{\"ok\": false, …}`. Governor endpoints: incidents, the approval \
queue, approve / force-override, execute and resolve (adapters over guardrail-governor, the same code as \
`guardrail incident` / `approve`). This document is generated from the server's route table and types.";

const BEARER: &str = "A token whose sha256 is in the server's tokens file (`--tokens`), which maps it to an \
identity and a role: `viewer` (may call no POST endpoint here; over `--mcp`, the read-only tools), `deployer` \
(POST /api/gate, /api/simulate, /api/incidents), `approver` (POST /api/incidents/{id}/approve, /force-override, \
/execute, /resolve; not a deployer), `admin` (everything). Each POST operation names the role it needs in \
`x-required-role`; an `admin` token may do what any role may. The identity recorded (requested_by, proposer, \
approver) is always the token's, never the body's.";

fn generator(serialize: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    let settings = if serialize { settings.for_serialize() } else { settings.for_deserialize() };
    settings.into_generator()
}

// ---------------------------------------------------------------- the document's objects

/// The OpenAPI 3.1 document (the parts Guardrail uses).
#[derive(Serialize)]
struct Document {
    openapi: &'static str,
    info: Info,
    servers: Vec<Server>,
    components: Components,
    paths: BTreeMap<&'static str, BTreeMap<String, OperationObject>>,
}

#[derive(Serialize)]
struct Info {
    title: &'static str,
    version: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
struct Server {
    url: &'static str,
}

#[derive(Serialize)]
struct Components {
    #[serde(rename = "securitySchemes")]
    security_schemes: BTreeMap<&'static str, SecurityScheme>,
    schemas: Map<String, Value>,
}

#[derive(Serialize)]
struct SecurityScheme {
    #[serde(rename = "type")]
    kind: &'static str,
    scheme: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
struct OperationObject {
    #[serde(rename = "operationId")]
    operation_id: String,
    summary: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parameters: Vec<Parameter>,
    /// `[{"bearer": []}]` for an operation with a role.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    security: Vec<BTreeMap<&'static str, [(); 0]>>,
    #[serde(rename = "x-required-role", skip_serializing_if = "Option::is_none")]
    required_role: Option<&'static str>,
    #[serde(rename = "requestBody", skip_serializing_if = "Option::is_none")]
    request_body: Option<RequestBody>,
    responses: BTreeMap<String, ResponseObject>,
}

#[derive(Serialize)]
struct Parameter {
    name: String,
    #[serde(rename = "in")]
    location: &'static str,
    required: bool,
    schema: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Value>,
}

#[derive(Serialize)]
struct RequestBody {
    required: bool,
    content: BTreeMap<&'static str, MediaType>,
}

#[derive(Serialize)]
struct MediaType {
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<Value>,
}

#[derive(Serialize)]
struct ResponseObject {
    description: String,
    content: BTreeMap<&'static str, MediaType>,
}

/// The parameters of a query struct: one per property, `null` dropped from its type (a query
/// parameter is present or absent).
fn query_parameters(schema: SchemaFn) -> Vec<Parameter> {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .for_deserialize()
        .into_generator();
    let root = schema(&mut g).to_value();
    let required: Vec<&str> =
        root.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let mut out = Vec::new();
    for (name, prop) in root.get("properties").and_then(Value::as_object).into_iter().flatten() {
        let mut prop = prop.clone();
        let description = prop.as_object_mut().and_then(|o| o.remove("description"));
        if let Some(Value::Array(types)) = prop.get_mut("type") {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                let only = types.remove(0);
                prop["type"] = only;
            }
        }
        out.push(Parameter {
            name: name.clone(),
            location: "query",
            required: required.contains(&name.as_str()),
            schema: prop,
            description,
        });
    }
    out
}

/// The parameters of a path template (`/api/incidents/{id}`): each a non-empty string.
fn path_parameters(path: &str) -> Vec<Parameter> {
    let non_empty = schemars::json_schema!({"type": "string", "minLength": 1}).to_value();
    path.split('/')
        .filter_map(|p| p.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
        .map(|name| Parameter {
            name: name.to_string(),
            location: "path",
            required: true,
            schema: non_empty.clone(),
            description: None,
        })
        .collect()
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let part = part.trim_start_matches('{').trim_end_matches('}');
        id.push('_');
        id.extend(part.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }));
    }
    if path == "/" { format!("{id}_dashboard") } else { id }
}

fn json_content(schema: Value) -> BTreeMap<&'static str, MediaType> {
    BTreeMap::from([("application/json", MediaType { schema: Some(schema) })])
}

/// The document, and the names of schemas that describe themselves differently as a request
/// and as a response (must be none: the test asserts it).
pub fn build(operations: &[Operation]) -> (Value, Vec<String>) {
    let mut responses_gen = generator(true);
    let mut requests_gen = generator(false);
    let mut paths: BTreeMap<&'static str, BTreeMap<String, OperationObject>> = BTreeMap::new();
    for op in operations {
        let doc = &op.doc;
        let mut parameters = path_parameters(op.path);
        if let Some(q) = doc.query {
            parameters.extend(query_parameters(q));
        }
        let responses = doc
            .responses
            .iter()
            .map(|(status, r)| {
                let content = match r.content {
                    Content::Json(f) => json_content(f(&mut responses_gen).to_value()),
                    Content::Other(media) => BTreeMap::from([(media, MediaType { schema: None })]),
                };
                (status.to_string(), ResponseObject { description: r.description.to_string(), content })
            })
            .collect();
        let object = OperationObject {
            operation_id: operation_id(op.method, op.path),
            summary: doc.summary,
            parameters,
            security: doc.role.iter().map(|_| BTreeMap::from([("bearer", [])])).collect(),
            required_role: doc.role.map(Role::as_str),
            request_body: doc
                .request
                .map(|f| RequestBody { required: true, content: json_content(f(&mut requests_gen).to_value()) }),
            responses,
        };
        paths.entry(op.path).or_default().insert(op.method.to_ascii_lowercase(), object);
    }
    let mut schemas = responses_gen.take_definitions(true);
    let mut conflicts = Vec::new();
    for (name, schema) in requests_gen.take_definitions(true) {
        match schemas.get(&name) {
            Some(existing) if *existing != schema => conflicts.push(name),
            Some(_) => {}
            None => {
                schemas.insert(name, schema);
            }
        }
    }
    let doc = Document {
        openapi: "3.1.0",
        info: Info { title: "Guardrail", version: env!("CARGO_PKG_VERSION"), description: DESCRIPTION },
        // Relative: the server's own origin, whatever address it is bound to.
        servers: vec![Server { url: "/" }],
        components: Components {
            security_schemes: BTreeMap::from([(
                "bearer",
                SecurityScheme { kind: "http", scheme: "bearer", description: BEARER },
            )]),
            schemas,
        },
        paths,
    };
    (serde_json::to_value(doc).unwrap_or(Value::Null), conflicts)
}

/// The document for the server's routes.
pub fn document() -> Value {
    build(&crate::operations()).0
}
