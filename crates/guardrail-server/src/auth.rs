//! Bearer tokens for the write endpoints.
//!
//! The tokens file format and its parser live in [`guardrail_config::tokens`] (shared with the
//! CLI's governor commands, `--tokens` / `GUARDRAIL_TOKENS`); this module re-exports them and
//! maps a role to the MCP endpoint's roles. A request presents `Authorization: Bearer TOKEN`;
//! the server hashes it and looks the hash up. Without a tokens file every write endpoint
//! refuses.

pub use guardrail_config::tokens::{Caller, Role, Tokens, TokensError, hash_token};

/// The same role for the MCP endpoint's per-tool check (`guardrail_mcp::required_role`).
pub trait McpRoleExt {
    /// The MCP role of this role.
    fn to_mcp(self) -> guardrail_mcp::McpRole;
}

impl McpRoleExt for Role {
    fn to_mcp(self) -> guardrail_mcp::McpRole {
        match self {
            Role::Viewer => guardrail_mcp::McpRole::Viewer,
            Role::Deployer => guardrail_mcp::McpRole::Deployer,
            Role::Approver => guardrail_mcp::McpRole::Approver,
            Role::Admin => guardrail_mcp::McpRole::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_roles() {
        assert_eq!(Role::Viewer.to_mcp(), guardrail_mcp::McpRole::Viewer);
        assert_eq!(Role::Admin.to_mcp(), guardrail_mcp::McpRole::Admin);
    }
}
