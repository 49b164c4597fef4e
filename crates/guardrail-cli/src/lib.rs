//! The `guardrail` binary's library half: wiring between the pure core, the config loaders,
//! the audit stores and the process (files, environment, clock, exit codes).
//!
//! Everything that reads the outside world lives here or in the adapter crates; the decision
//! itself is `guardrail_core::policy::evaluate`. One [`gate::Evaluation`] is computed once per
//! run from one snapshot of the inputs, and that same snapshot is what gets printed and audited.

// Every module of this crate and the binary print through these instead of std's macros
// (textual scope shadows the prelude's): a closed stdout pipe ends the output quietly instead
// of panicking (exit 134 under panic = "abort"), and a failing stderr is ignored. See
// `render::out`.
/// `print!` that survives a closed standard output ([`render::out::stdout`]).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::render::out::stdout(format_args!($($arg)*)) };
}
/// `println!` that survives a closed standard output ([`render::out::stdout`]).
#[macro_export]
macro_rules! println {
    () => { $crate::render::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::render::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}
/// `eprint!` that ignores a failing standard error ([`render::out::stderr`]).
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::render::out::stderr(format_args!($($arg)*)) };
}
/// `eprintln!` that ignores a failing standard error ([`render::out::stderr`]).
#[macro_export]
macro_rules! eprintln {
    () => { $crate::render::out::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::render::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

// The gate's wiring lives in `guardrail-gate` (shared with `guardrail-server`); re-exported
// here so `guardrail::gate`, `guardrail::inputs`, … keep their paths.
pub use guardrail_gate::{audit_cmd, ci, exit, gate, inputs};
pub mod approve_cmd;
pub mod audit_export;
pub mod checkpoint_cmd;
pub mod identity;
pub mod incident_cmd;
pub mod kb_cmd;
pub mod mcp_cmd;
pub mod notify_cmd;
pub mod remediation;
pub mod render;
