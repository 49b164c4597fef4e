//! The remediation governor over HTTP: thin adapters over `guardrail-governor`.
//!
//! - `GET /api/incidents`, `GET /api/incidents/{id}`, `GET /api/approvals` read the audit
//!   chain and fold it with [`guardrail_governor::queue::incident_states`] — the same fold as
//!   `guardrail incident list|show` and the MCP `incident_status` tool.
//! - `POST /api/incidents` (role `deployer` or `admin`: whoever may ask the deploy gate may
//!   propose a remediation; the token's identity is the proposer, who can never approve it)
//!   runs [`guardrail_governor::pipeline::Pipeline::decide_and_act`] — the same decide-and-act
//!   as `guardrail incident run` — over the knowledge base in force, the server's live logs
//!   (`--logs`, else an Elasticsearch knowledge base's logs index) and, with
//!   `--governor-signals`, the deploy gate's signals of the served inputs. The knowledge base is
//!   resolved per request as every command resolves it
//!   ([`guardrail_governor::knowledge_select`]: `serve --kb`, `GUARDRAIL_KB`, the `knowledge:`
//!   block of the config in force, the default file); one that cannot answer is a 503
//!   (`knowledge_unavailable`) and nothing is planned. No file path ever comes from a request.
//! - `POST /api/incidents/{id}/approve` and `/force-override` decide with
//!   [`guardrail_governor::approve::decide_pending`] — the same function as `guardrail
//!   approve` — and record the refusal or the grant on the same chain. The approver is the
//!   bearer token's identity (role `approver` or `admin`); a body naming anyone is rejected
//!   (unknown field, 400). A grant that is not in the chain is not granted (503); one in the
//!   chain whose JSONL mirror copy failed IS granted, and the answer says so (503,
//!   `recorded_mirror_failed`, the record id) and runs nothing yet.
//! - `POST /api/incidents/{id}/execute` (role `approver`/`admin`) is `guardrail incident
//!   execute` ([`guardrail_governor::pipeline::Pipeline::execute_incident`]); `POST
//!   /api/incidents/{id}/resolve` (role `approver`/`admin`) is `guardrail incident resolve`
//!   ([`guardrail_governor::learn::resolve`]): an unreviewed runbook with provenance.
//!
//! The governor config is the one in force
//! ([`AppState::refresh_governor`](crate::state::AppState::refresh_governor): reloaded when
//! its file changes). While it does not read or parse, propose, approve, force-override and
//! execute answer 503 (`governor_config_invalid`) naming the file, and record nothing. An
//! approval of an incident the trail does not hold is a 404 and records nothing.
//!
//! Every execution — after the gate, a grant or `/execute` — is
//! [`guardrail_governor::pipeline::execute_claimed`]: hash-checked, then an `execution_claim`
//! appended under the store's lock (one winner among concurrent callers; a loser gets 409
//! `claim_held` naming the claim), with the governor config's `executor.default` (dry-run
//! unless configured), its result recorded as `remediation_execution`.

// One job each: `views` (the answers' shapes), `status` (failures as HTTP statuses),
// `audit_log` (the store as the governor's `AuditLog`), `wiring` (the pipeline from the
// server's state), and the handlers by route: `incidents`, `approvals`, `execute`, `resolve`.
mod approvals;
pub(crate) mod audit_log;
mod execute;
mod incidents;
mod resolve;
mod status;
pub(crate) mod views;
pub(crate) mod wiring;

pub use approvals::{ApproveRequest, Approver, approvals, approve, force_override};
pub use execute::{ExecuteRequest, execute};
pub use incidents::{IncidentRequest, SeverityName, list, propose, show};
pub use resolve::{ResolveRequest, resolve};
