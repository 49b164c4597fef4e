//! Helpers shared by Guardrail's integration tests: a dev-dependency of the crates whose
//! `tests/it` use them, never a dependency of a library or the binary.
//!
//! Only what more than one crate's tests need lives here (the paths of the bundled examples,
//! a test certificate authority, reading one HTTP request off a loopback socket); helpers of
//! one crate's tests stay in that crate's `tests/it`.

pub mod http;
pub mod tls;

use std::path::PathBuf;

/// The workspace's root directory (this crate is `crates/guardrail-test-support`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `examples/<name>` of the workspace, e.g. `examples("governor")`, `examples("deploy-gate")`.
pub fn examples(name: &str) -> PathBuf {
    workspace_root().join("examples").join(name)
}
