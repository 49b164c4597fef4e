//! JSON-RPC errors for POST bodies that are not MCP messages, in front of rmcp's
//! [`StreamableHttpService`](rmcp::transport::StreamableHttpService).
//!
//! rmcp answers any body it cannot deserialize with HTTP 415 and a text body. JSON-RPC 2.0
//! (§5.1) says a body that is not JSON gets error -32700 "Parse error" and valid JSON that is
//! not a request object gets -32600 "Invalid Request", both with `"id": null`; the MCP
//! reference servers (the TypeScript and Python SDKs) send these with HTTP 400. This layer does
//! that for `Content-Type: application/json` POSTs and passes everything else through
//! unchanged: a wrong `Content-Type` stays rmcp's 415, `Accept` and session handling stay
//! rmcp's. It reads every POST body before anything answers (see [`reject_malformed`]).
//!
//! What counts as a message is rmcp's own parse ([`ClientJsonRpcMessage`]), so the two never
//! disagree. A body that is a request (`jsonrpc: "2.0"`, a string `method`, an id that is a
//! string or number) but that rmcp refuses has parameters that do not fit the method: -32602
//! "Invalid params", with the request's id.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{ClientJsonRpcMessage, ErrorCode};
use serde::Serialize;
use serde_json::Value;

/// A JSON-RPC 2.0 error response. `id` is serialised as `null` when the request's id could
/// not be read (JSON-RPC 2.0 §5).
#[derive(Debug, Serialize)]
pub struct JsonRpcErrorReply {
    jsonrpc: &'static str,
    id: Option<Value>,
    error: JsonRpcErrorObject,
}

#[derive(Debug, Serialize)]
struct JsonRpcErrorObject {
    code: i32,
    message: String,
}

impl JsonRpcErrorReply {
    fn new(code: ErrorCode, message: String, id: Option<Value>) -> JsonRpcErrorReply {
        JsonRpcErrorReply { jsonrpc: "2.0", id, error: JsonRpcErrorObject { code: code.0, message } }
    }
}

impl IntoResponse for JsonRpcErrorReply {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, axum::Json(self)).into_response()
    }
}

/// What is wrong with a POST body, or `None` when rmcp can take it.
pub fn check_body(bytes: &[u8]) -> Option<JsonRpcErrorReply> {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Some(JsonRpcErrorReply::new(ErrorCode::PARSE_ERROR, format!("Parse error: {e}"), None)),
    };
    let refused = match serde_json::from_value::<ClientJsonRpcMessage>(value.clone()) {
        Ok(_) => return None,
        Err(e) => e,
    };
    let object = value.as_object();
    let id = object.and_then(|o| o.get("id")).filter(|id| id.is_string() || id.is_number()).cloned();
    let is_request = object.is_some_and(|o| {
        o.get("jsonrpc").and_then(Value::as_str) == Some("2.0") && o.get("method").is_some_and(Value::is_string)
    });
    Some(match (is_request, id) {
        (true, Some(id)) => {
            JsonRpcErrorReply::new(ErrorCode::INVALID_PARAMS, format!("Invalid params: {refused}"), Some(id))
        }
        (_, id) => {
            let why = if value.is_array() {
                "batches are not supported by MCP (since 2025-06-18); send one message per request".to_string()
            } else {
                format!("not a JSON-RPC 2.0 request, notification or response: {refused}")
            };
            JsonRpcErrorReply::new(ErrorCode::INVALID_REQUEST, format!("Invalid Request: {why}"), id)
        }
    })
}

/// The axum middleware: reads a POST's body (up to `max_body_bytes`, else 413 as rmcp), answers
/// [`check_body`]'s error for a JSON one, or hands the request on with the same bytes.
///
/// Every POST body is read here, whatever its `Content-Type`, so that no answer (rmcp's 406,
/// 415, 403 for a foreign `Host`, 404 for an unknown session) goes out ahead of its request's
/// body: hyper closes a connection whose request body was left unread, after a response that
/// did not say so, and a keep-alive client reusing it fails ("Server disconnected without
/// sending a response"). A body that cannot be read whole (too large, broken) is answered
/// with `Connection: close`, so the client opens a new connection for its next request.
pub async fn reject_malformed(State(max_body_bytes): State<usize>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .is_some_and(|essence| essence.eq_ignore_ascii_case("application/json"));
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            // http-body-util's LengthLimitError, somewhere in the chain (by type, not by text).
            let mut too_large = false;
            let mut cur: Option<&dyn std::error::Error> = Some(&e);
            while let Some(err) = cur {
                too_large |= err.is::<http_body_util::LengthLimitError>();
                cur = err.source();
            }
            let close = [(header::CONNECTION, "close")];
            return if too_large {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    close,
                    format!("Payload Too Large: request body exceeds {max_body_bytes} bytes"),
                )
                    .into_response()
            } else {
                (StatusCode::BAD_REQUEST, close, format!("could not read the request body: {e}")).into_response()
            };
        }
    };
    if is_json && let Some(reply) = check_body(&bytes) {
        return reply.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_and_id(body: &str) -> Option<(i32, Option<Value>)> {
        check_body(body.as_bytes()).map(|r| (r.error.code, r.id))
    }

    #[test]
    fn parse_errors_invalid_requests_and_params() {
        assert_eq!(code_and_id("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\""), Some((-32700, None)));
        assert_eq!(code_and_id(""), Some((-32700, None)));
        assert_eq!(code_and_id("42"), Some((-32600, None)));
        assert_eq!(code_and_id("[]"), Some((-32600, None)));
        assert_eq!(code_and_id("{\"id\": 7, \"method\": \"tools/list\"}"), Some((-32600, Some(Value::from(7)))));
        assert_eq!(code_and_id("{\"jsonrpc\": \"2.0\", \"id\": {\"a\": 1}, \"method\": \"x\"}"), Some((-32600, None)));
        // A known method whose params do not fit.
        assert_eq!(
            code_and_id("{\"jsonrpc\": \"2.0\", \"id\": \"r1\", \"method\": \"tools/call\", \"params\": 5}"),
            Some((-32602, Some(Value::from("r1"))))
        );
        // Messages rmcp takes go through.
        assert_eq!(code_and_id("{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"tools/list\"}"), None);
        assert_eq!(code_and_id("{\"jsonrpc\": \"2.0\", \"method\": \"notifications/initialized\"}"), None);
    }

    #[test]
    fn the_reply_has_a_null_id() {
        let reply = check_body(b"{oops").unwrap();
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(json["jsonrpc"], "2.0");
        assert!(json.as_object().unwrap().contains_key("id") && json["id"].is_null(), "{json}");
        assert_eq!(json["error"]["code"], -32700);
        assert!(json["error"]["message"].as_str().unwrap().starts_with("Parse error"), "{json}");
    }
}
