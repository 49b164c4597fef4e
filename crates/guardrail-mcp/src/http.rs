//! The streamable HTTP transport at `/mcp` behind a bearer-token check.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use crate::config::McpConfig;
use crate::handler::{GuardrailMcp, McpError};
use crate::jsonrpc_errors;
use crate::roles::{McpCaller, McpRole};

/// Checks a bearer token; returns the caller's identity and role, or `None` to refuse.
pub type TokenVerifier = Arc<dyn Fn(&str) -> Option<(String, McpRole)> + Send + Sync>;

/// Options of the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// `Host` values accepted (DNS-rebinding protection). Default: loopback names only.
    pub allowed_hosts: Vec<String>,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// What the bearer-token layer needs: the verifier, and how much of a refused request's body it
/// reads before answering.
#[derive(Clone)]
struct BearerCheck {
    verify: TokenVerifier,
    max_body_bytes: usize,
}

/// How long a refused request's body may take to arrive before the 401 is sent without it.
const REFUSED_BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn require_bearer(State(check): State<BearerCheck>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match token.and_then(|t| (check.verify)(t)) {
        Some((identity, role)) => {
            req.extensions_mut().insert(McpCaller::Http(identity, role));
            let delete = req.method() == axum::http::Method::DELETE;
            let resp = next.run(req).await;
            // rmcp answers a session's DELETE with 202; the spec names no code, and clients
            // (the Python SDK) expect 200 or 204 for a session that is now gone.
            if delete && resp.status() == StatusCode::ACCEPTED { StatusCode::NO_CONTENT.into_response() } else { resp }
        }
        None => {
            let error = if token.is_some() { "invalid_token" } else { "invalid_request" };
            // The 401 is decided from the headers alone, but it is only sent once the body has
            // been read. Answered ahead of its body, hyper closes the connection right after the
            // response (a body it cannot drain in one read), yet the response does not say so:
            // a keep-alive client (the Python SDK's httpx) that reuses the pooled connection
            // before the FIN arrives gets "Server disconnected without sending a response", and
            // a body arriving after the close draws a reset (RFC 9112 §9.6). A body that is too
            // large, broken or slow is not waited for: the 401 then says `Connection: close`.
            let drained =
                tokio::time::timeout(REFUSED_BODY_WAIT, axum::body::to_bytes(req.into_body(), check.max_body_bytes))
                    .await
                    .is_ok_and(|read| read.is_ok());
            let challenge = format!("Bearer realm=\"guardrail-mcp\", error=\"{error}\"");
            let body = axum::Json(Unauthorized { ok: false, error: "a valid bearer token is required" });
            if drained {
                (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)], body).into_response()
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, challenge), (header::CONNECTION, "close".to_string())],
                    body,
                )
                    .into_response()
            }
        }
    }
}

/// The body of a 401: the shape `guardrail serve`'s API answers an unauthenticated request with.
#[derive(serde::Serialize)]
struct Unauthorized {
    ok: bool,
    error: &'static str,
}

/// An axum router serving MCP's streamable HTTP transport at `/mcp` (POST for messages, GET
/// for the server's event stream, DELETE to end a session), behind a bearer-token check.
/// Sessions (`Mcp-Session-Id`), `Accept` negotiation, `MCP-Protocol-Version` checks and
/// `202 Accepted` for notifications are rmcp's [`StreamableHttpService`]. Merge it into a
/// server's router (`.merge(…)`); bind it to loopback unless told otherwise.
pub fn http_router(cfg: McpConfig, verify: TokenVerifier, opts: HttpOptions) -> Result<axum::Router, McpError> {
    let handler = GuardrailMcp::new(cfg)?;
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(opts.allowed_hosts)
        .with_max_request_body_bytes(opts.max_body_bytes)
        .with_sse_keep_alive(Some(std::time::Duration::from_secs(15)));
    let service =
        StreamableHttpService::new(move || Ok(handler.clone()), Arc::new(LocalSessionManager::default()), config);
    Ok(axum::Router::new()
        .route_service("/mcp", service)
        // Inner: a JSON body that is not a message gets a JSON-RPC error; outer: the token first.
        .layer(middleware::from_fn_with_state(opts.max_body_bytes, jsonrpc_errors::reject_malformed))
        .layer(middleware::from_fn_with_state(
            BearerCheck { verify, max_body_bytes: opts.max_body_bytes },
            require_bearer,
        )))
}

/// Serves [`http_router`] on a listener until `shutdown` resolves.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), McpError> {
    Ok(axum::serve(listener, router).with_graceful_shutdown(shutdown).await?)
}
