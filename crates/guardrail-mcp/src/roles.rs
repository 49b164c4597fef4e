//! Who calls and with which role.

/// A token's role, as far as MCP tools go (the roles of `guardrail serve`'s tokens file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpRole {
    /// Read-only tools only.
    Viewer,
    /// Read-only tools, `propose_remediation`, `evaluate_deploy` with `record: true`.
    Deployer,
    /// Read-only tools (approvals are not MCP tools).
    Approver,
    /// Everything.
    Admin,
}

impl McpRole {
    /// The role's name as in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            McpRole::Viewer => "viewer",
            McpRole::Deployer => "deployer",
            McpRole::Approver => "approver",
            McpRole::Admin => "admin",
        }
    }

    /// True when this role may call a tool that needs `need`
    /// ([`required_role`](crate::required_role)).
    pub fn allows(self, need: McpRole) -> bool {
        need == McpRole::Viewer || self == McpRole::Admin || self == need
    }
}

/// Who calls: an authenticated HTTP caller (identity and role from the tokens file, put in the
/// request's extensions by the bearer check), or the local process over stdio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpCaller {
    /// Over streamable HTTP, with the token's identity and role.
    Http(String, McpRole),
    /// Over stdio (the client started this process; no role check).
    Stdio,
}
