//! Helpers shared by Guardrail's integration tests: a dev-dependency of the crates whose
//! `tests/it` use them, never a dependency of a library or the binary.
//!
//! Only what more than one crate's tests need lives here (the paths of the bundled examples,
//! a test certificate authority, reading and answering one HTTP request on a loopback socket,
//! and the loopback servers several crates talk to: model providers, Elasticsearch
//! ([`elastic::FakeEs`]) and Jira Cloud ([`jira::FakeJira`])); helpers of one crate's tests stay
//! in that crate's `tests/it`.

pub mod elastic;
pub mod http;
pub mod jira;
pub mod model;
pub mod slack;
pub mod tls;

use std::path::{Path, PathBuf};

/// The workspace's root directory (this crate is `crates/guardrail-test-support`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Python that can `import module` (an official client used as an independent peer):
/// `$env_var` when set, else the test venv `scripts/test` makes (`target/mcp-venv`).
pub fn python_with(env_var: &str, module: &str) -> Option<String> {
    let venv = workspace_root().join("target/mcp-venv/bin/python");
    let candidates = [std::env::var(env_var).ok(), Some(venv.to_string_lossy().into_owned())];
    candidates.into_iter().flatten().find(|py| {
        std::process::Command::new(py)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// `examples/<name>` of the workspace, e.g. `examples("governor")`, `examples("deploy-gate")`.
pub fn examples(name: &str) -> PathBuf {
    workspace_root().join("examples").join(name)
}

/// Copies the deploy gate's four bundled input files (`config/policies.yaml`, `config/slos.yaml`,
/// `data/metrics.json`, `data/cost.json`) into `dir`, the layout `guardrail gate` reads by
/// default. Panics on I/O errors: a test scratch directory that cannot be written is a broken
/// test machine.
pub fn copy_deploy_gate_inputs(dir: &Path) {
    for sub in ["config", "data"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create scratch sub-directory");
    }
    for f in ["config/policies.yaml", "config/slos.yaml", "data/metrics.json", "data/cost.json"] {
        std::fs::copy(examples("deploy-gate").join(f), dir.join(f)).expect("copy a bundled example file");
    }
}
