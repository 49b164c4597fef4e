//! The stdio transport (`guardrail mcp`).
//!
//! The session ends when the client closes the server's standard input (MCP's own shutdown
//! for stdio: [`StdioEnd::InputClosed`]), or when it stops reading: the first answer written to
//! a closed standard output (`EPIPE`, or a reset socket) ends it as [`StdioEnd::ClientGone`].
//! rmcp alone would log that failed write and carry on, reading and running the tool calls
//! that follow (a recording `evaluate_deploy` among them) for a client that can no longer hear
//! the answers; during initialization it failed the whole command as an error.
//!
//! Either way no tool call is cut short: the session ends only once the calls already running
//! have finished (and their audit records are written), and none starts after that
//! ([`GuardrailMcp::close`]).

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rmcp::ServiceExt;
use tokio::io::AsyncWrite;

use crate::config::McpConfig;
use crate::handler::{GuardrailMcp, McpError};

/// How a stdio session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioEnd {
    /// The client closed the server's standard input: the end MCP specifies.
    InputClosed,
    /// The client closed the server's standard output (it hung up): an answer could not be
    /// written. Nothing more can reach the client, so nothing more is said, not even on
    /// standard error (often closed with it).
    ClientGone,
}

/// The first error writing standard output, and a wake-up for whoever ends the session on it.
#[derive(Default)]
struct OutputFailure {
    error: OnceLock<std::io::Error>,
    notify: tokio::sync::Notify,
}

impl OutputFailure {
    fn note(&self, e: &std::io::Error) {
        if self.error.set(std::io::Error::new(e.kind(), e.to_string())).is_ok() {
            // A stored permit: the watcher wakes even if it is not waiting yet.
            self.notify.notify_one();
        }
    }

    /// The client closed its end: the only way a write to a pipe (`EPIPE`) or a socket
    /// (reset) fails when the reader is gone.
    fn client_gone(&self) -> Option<bool> {
        self.error
            .get()
            .map(|e| matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset))
    }
}

/// Standard output, noting the first write error in an [`OutputFailure`].
struct WatchedStdout {
    inner: tokio::io::Stdout,
    failure: Arc<OutputFailure>,
}

impl WatchedStdout {
    fn watch<T>(&self, r: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Err(e)) = &r {
            self.failure.note(e);
        }
        r
    }
}

impl AsyncWrite for WatchedStdout {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(r)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(r)
    }
}

/// Serves MCP over standard input and output until the client closes either (see the module
/// documentation). Standard input is read by a blocking thread nothing can interrupt: after a
/// [`StdioEnd::ClientGone`] the caller should not wait for it (shut the runtime down in the
/// background; the tool calls have finished).
pub async fn serve_stdio(cfg: McpConfig) -> Result<StdioEnd, McpError> {
    let handler = GuardrailMcp::new(cfg)?;
    let failure = Arc::new(OutputFailure::default());
    let stdout = WatchedStdout { inner: tokio::io::stdout(), failure: failure.clone() };
    let served = match handler.clone().serve((tokio::io::stdin(), stdout)).await {
        Ok(running) => {
            let stop = running.cancellation_token();
            let watcher = {
                let failure = failure.clone();
                tokio::spawn(async move {
                    failure.notify.notified().await;
                    stop.cancel();
                })
            };
            let quit = running.waiting().await;
            watcher.abort();
            quit.map(|_| ()).map_err(McpError::Session)
        }
        Err(e) => Err(McpError::Initialize(Box::new(e))),
    };
    handler.close().await;
    match (served, failure.client_gone()) {
        (Err(e @ McpError::Session(_)), _) => Err(e),
        (_, Some(true)) => Ok(StdioEnd::ClientGone),
        // Standard output failed otherwise (a full disk behind `> file`): answers were lost.
        (_, Some(false)) => Err(McpError::Output(failure.error.get().map(|e| e.to_string()).unwrap_or_default())),
        (served, None) => served.map(|()| StdioEnd::InputClosed),
    }
}
