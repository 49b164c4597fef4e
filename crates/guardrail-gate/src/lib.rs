//! The deploy gate as a library, shared by every adapter (the `guardrail` CLI, the HTTP server).
//!
//! It resolves where the inputs come from ([`inputs`]: flags, then the seed tool's environment
//! variables, then the `--root` layout), reads them once into a snapshot, evaluates that
//! snapshot ([`gate::evaluation`] → `guardrail_core::policy::evaluate`), shapes the output
//! ([`view::GateView`], one view for every surface) and the record body
//! ([`gate::DecisionRecordBody`], built by `decide::Decided::record`) and appends records
//! ([`audit_cmd`]);
//! [`decide::decide_and_record`] is that sequence — evaluate, record, withhold on failure, or
//! record a `deploy_error` — written once for every adapter.
//! Nothing here decides on its own: the decision is the core's; this crate is the wiring
//! between the core, the config loaders, the audit stores and the outside world.
//!
//! It lives apart from the binary so that `guardrail-server` can use exactly the same code
//! path as `guardrail gate` without a dependency cycle (`guardrail` → `guardrail-server` →
//! `guardrail-gate`).

pub mod audit_cmd;
pub mod ci;
pub mod decide;
pub mod exit;
pub mod gate;
pub mod inputs;
pub mod out;
pub mod policy_cache;
pub mod view;

/// The Prometheus source (re-exported so adapters and tests reach its snapshot and fixture).
pub use guardrail_prometheus as prometheus;
