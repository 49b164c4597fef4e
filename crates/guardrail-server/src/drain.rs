//! A request's body is read before any answer is made to it, so that an answer made from the
//! headers alone (401 and 403 from the bearer check, 421 from the host check, 415, 404, 405…)
//! leaves the connection usable.
//!
//! Why: when a handler answers without reading the body, hyper (1.x) polls the unread body
//! once after the response and, finding it not all there, closes the connection — but the
//! response has already gone out without `Connection: close`, advertising keep-alive. A
//! keep-alive client that writes a POST's head and body as two segments (Python's httpx and
//! requests, curl for large bodies) and reuses its pooled connection before the FIN arrives
//! gets "Server disconnected without sending a response", and a body arriving after the close
//! draws a reset. POST is not idempotent, so a correct client does not retry. (The same bug,
//! fixed the same way, in `guardrail_mcp::http`'s bearer layer.)
//!
//! [`read_body_first`] therefore reads the whole body — bounded by the body limit and
//! [`BODY_WAIT`] — and hands it on as one `Bytes` (no copy beyond the one the handler's
//! extractor would have made: the extractor then takes that `Bytes` as is, and Slack's
//! signature check still sees the exact bytes). A body it cannot read whole in that bound —
//! declared or found larger than the limit, broken, or slower — is not waited for: the
//! request goes on as before, with what was read put back in front of the rest of the body, so
//! the handler answers exactly what it answered before (413 with its own message, 401, …), and
//! that answer says `Connection: close`, which is what RFC 9112 §9.6 asks of a server that is
//! going to close (and what Go's net/http does). A request with no body (GET, the event
//! stream) passes through untouched.

use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio_stream::StreamExt;

/// How long a body may take to arrive, after its head, before the request goes on without
/// waiting for it (its answer then closes the connection). The same bound as the MCP server's.
pub(crate) const BODY_WAIT: Duration = Duration::from_secs(10);

/// How far [`read_body_first`] got.
enum Read {
    /// The whole body, within the limit.
    Whole(Bytes),
    /// Not all of it: what was read (possibly nothing), then the rest (which may still fail).
    Partial(Vec<Bytes>, Option<axum::Error>),
}

/// The middleware (state: the body limit in bytes, the router's `DefaultBodyLimit`): see the
/// module documentation.
pub(crate) async fn read_body_first(State(limit): State<usize>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // A body declared larger than the limit is refused (413) whatever it holds: not read.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    let read = if declared.is_some_and(|n| n > limit as u64) {
        Read::Partial(Vec::new(), None)
    } else {
        read_within(&mut stream, limit).await
    };
    match read {
        Read::Whole(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Read::Partial(chunks, error) => {
            // The handler sees the body as it would have: what was read, then the failure or
            // the rest of the stream.
            let front = tokio_stream::iter(chunks.into_iter().map(Ok::<Bytes, axum::Error>));
            let body = match error {
                Some(e) => Body::from_stream(front.chain(tokio_stream::once(Err(e)))),
                None => Body::from_stream(front.chain(stream)),
            };
            let mut resp = next.run(Request::from_parts(parts, body)).await;
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
    }
}

/// Reads `stream` to its end if it holds at most `limit` bytes and ends within [`BODY_WAIT`].
async fn read_within(stream: &mut axum::body::BodyDataStream, limit: usize) -> Read {
    let deadline = tokio::time::Instant::now() + BODY_WAIT;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => {
                len = len.saturating_add(chunk.len());
                chunks.push(chunk);
                if len > limit {
                    return Read::Partial(chunks, None);
                }
            }
            Ok(Some(Err(e))) => return Read::Partial(chunks, Some(e)),
            Ok(None) => break,
            Err(_elapsed) => return Read::Partial(chunks, None),
        }
    }
    // One chunk (a small body, the usual case) is handed on as is; several are joined once —
    // the copy the handler's `Bytes` extractor would otherwise make.
    let whole = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut joined = Vec::with_capacity(len);
            for c in &chunks {
                joined.extend_from_slice(c);
            }
            Bytes::from(joined)
        }
    };
    Read::Whole(whole)
}
