//! Guardrail's pure core.
//!
//! Everything in this crate is a plain function over data: it never reads a file, the
//! environment or a clock, and it never blocks or spawns. Time is always a parameter
//! (`now: jiff::Timestamp`). Adapters (file sources, stores, the CLI, servers) live in other
//! crates and call into this one, which keeps decisions reproducible: the same inputs give
//! the same decision, byte for byte, which is what `guardrail replay` relies on.
//!
//! Map of the modules:
//! - [`pyround`]: Python-compatible rounding (`round(x, n)`), needed for parity with the seed tool.
//! - [`slo`]: availability, error budget, burn-rate label, latency compliance.
//! - [`burn`]: burn rates from raw counts over the SRE Workbook windows, multi-window tiers,
//!   minimum-events guard and the no-data rule (the Prometheus source).
//! - [`cost`]: calendar-day week-over-week analysis of a daily spend series.
//! - [`freeze`]: change freezes and maintenance windows (fixed ranges, an RRULE subset, time
//!   zones): which are active at `now`.
//! - [`signals`]: the catalogue of signals a policy may test, and their values for one evaluation.
//! - [`policy`]: the policy language (AST), its validation, and first-match evaluation with a trace.
//! - [`explain`]: the plain-language narrative and counterfactuals for a decision.
//! - [`audit`]: canonical record bytes and the hash chain used by every audit store.
//! - [`canonical_json`]: a record body's canonical text, written without an intermediate `Value`.
//! - [`approval`]: who may release a blocked remediation, the plan/action binding hash, and
//!   execution authorisation.
//! - [`remediation`]: the remediation governor's incidents, action vocabulary, policy matching,
//!   stress arithmetic and gate.

pub mod approval;
pub mod audit;
pub mod burn;
pub mod canonical_json;
pub mod cost;
pub mod error_text;
pub mod explain;
pub mod freeze;
pub mod freshness;
pub mod policy;
pub mod pyround;
pub mod remediation;
pub mod retry_after;
pub mod signals;
pub mod slo;

pub use policy::{Action, Decision};
