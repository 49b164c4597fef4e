//! Process exit codes. Only a real decision exits 0–2.

/// ALLOW, WARN (without `--fail-on-warn`), or a report/command that succeeded.
pub const OK: i32 = 0;
/// DELAY, or WARN with `--fail-on-warn`; for `audit verify`/`replay`: chain broken / decision differs.
pub const DELAY: i32 = 1;
/// BLOCK.
pub const BLOCK: i32 = 2;
/// Could not decide: unreadable, invalid, impossible or stale input, a config error, no rule
/// matched without a default, or the audit record could not be written.
pub const CANNOT_DECIDE: i32 = 3;
/// Command-line usage error (clap's own default would be 2, which means BLOCK here).
pub const USAGE: i32 = 64;
