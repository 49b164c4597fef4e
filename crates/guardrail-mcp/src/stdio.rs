//! The stdio transport (`guardrail mcp`).

use rmcp::ServiceExt;

use crate::config::McpConfig;
use crate::handler::{GuardrailMcp, McpError};

/// Serves MCP over standard input and output until the client closes it.
pub async fn serve_stdio(cfg: McpConfig) -> Result<(), McpError> {
    let handler = GuardrailMcp::new(cfg)?;
    let running = handler.serve(rmcp::transport::stdio()).await.map_err(|e| McpError::Initialize(Box::new(e)))?;
    running.waiting().await?;
    Ok(())
}
