//! Guardrail HTTP server (in progress).
