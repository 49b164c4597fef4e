//! Reads Guardrail's input files into core types, failing closed.
//!
//! Every problem is reported with the file, the dotted field path
//! (`policies[2].conditions.burn_rate.value`), the line and column where known, and the
//! reason; loaders collect every problem they can find rather than stopping at the first,
//! and nothing here panics on input.
//!
//! - [`read_source`]: reads a file (size limit, UTF-8, not empty) and hashes it.
//! - [`yaml`]: the positioned node tree; the seed's YAML files are resolved like PyYAML's
//!   `safe_load` (YAML 1.1), Guardrail's own formats with the YAML 1.2 core schema, JSON like
//!   JSON. The dialect goes with the file.
//! - [`de`]: a serde `Deserializer` over that tree, for the formats that derive
//!   `Deserialize` (governor config, tokens file, freeze windows), with the same messages.
//! - [`SourceMap`]: field path → line and column, with fallback to the nearest parent, to
//!   position errors the core finds later.
//! - [`load_slos`], [`load_metrics`], [`load_cost`]: data files → [`Loaded`] values.
//! - [`load_cost_as`]: a cost file in any supported layout (the seed's, FOCUS 1.x CSV, AWS
//!   Cost Explorer JSON; [`detect_cost_format`]) for one selected service.
//! - [`load_prometheus`]: the optional `prometheus:` block of the SLO file (live counts).
//! - [`load_spec_slo`]: one SLO of a Sloth `prometheus/v1` or OpenSLO v1 file
//!   ([`classify_slo_file`]) as SLO targets and a Prometheus source.
//! - [`load_freezes`]: the policy file's `freezes:` and `maintenance:` windows.
//! - [`load_governor_config`]: the remediation governor's approvers and executors.
//! - [`tokens`]: the hashed bearer-tokens file (`guardrail serve --tokens`, the governor
//!   commands' `--tokens`) and its roles.
//! - [`load_policies`]: the policy file → [`PolicyLoad`] (the set, when its structure could be
//!   read, plus every finding, including those of `guardrail_core::policy::check`).
//!
//! Format by file name: `.json` is read as JSON and `.yaml`/`.yml` as YAML; other names are
//! read as the loader's usual format (YAML for SLOs and policies, JSON for metrics and cost).
//!
//! Choices worth knowing (all fail closed):
//! - In the seed's files, YAML scalars follow PyYAML 1.1 exactly, including its surprises: `1e3`, `-.5` and `0o17`
//!   are strings; `yes/no/on/off` are booleans (the policy lint warns on them in conditions);
//!   unquoted dates stay strings.
//! - Duplicate keys, non-string keys, unknown tags, several documents, documents whose aliases
//!   copy more than [`yaml::MAX_NODES`] values and documents holding more than
//!   [`yaml::MAX_WRITTEN_NODES`] values are errors.
//! - Unknown keys: inside a rule or a condition, in `default_action` and in
//!   `burn_rate.thresholds`, an error (with "did you mean"); elsewhere a warning, except a
//!   likely typo (edit distance ≤ 2) of a key that is read and absent, which is an error
//!   because its value would silently fall back to a default.
//! - `null` counts as absent only for `latency_percentiles.p99_ms`/`p99`,
//!   `slos.latency.p99_threshold_ms`, `collected_at`, and the policy file's `version` and
//!   `description`; elsewhere it is an error (and `conditions: null` always is).
//! - Numbers in quotes are never read as numbers (the seed's `float()` accepted `"1500"`).

#![warn(missing_docs)]

mod audit_mirror;
mod common;
mod cost;
mod cost_exports;
pub mod de;
mod error;
mod freezes;
mod governor;
mod governor_jira;
mod governor_knowledge;
mod governor_notify;
mod governor_planner;
mod governor_slack;
mod map;
mod metrics;
mod policies;
mod prometheus;
mod slo_specs;
mod slos;
pub mod source;
pub mod tokens;
pub mod yaml;

pub use audit_mirror::{AuditMirrorConfig, DEFAULT_AUDIT_INDEX};
pub use common::Loaded;
pub use cost::load_cost;
pub use cost_exports::{
    CostFormat, CostFormatError, CostSelection, CostTag, CostTagError, detect_cost_format, load_cost_as,
};
pub use error::{ConfigError, Finding, has_errors};
pub use freezes::load_freezes;
pub use governor::{
    GovernorFile, MAX_TIMEOUT_SECONDS, ReadGovernorConfig, load_governor_config, load_governor_file, read_governor,
};
pub use governor_jira::JiraConfig;
pub use governor_knowledge::KnowledgeConfig;
pub use governor_knowledge::{
    ElasticCredentials, ElasticsearchSettings, KnowledgeBackend, KnowledgeIndices, index_name_problem,
};
pub use governor_notify::NotifyConfig;
pub use governor_planner::{PlannerBackend, PlannerBudget, PlannerConfig, PlannerFallback};
pub use governor_slack::SlackConfig;
pub use map::SourceMap;
pub use metrics::load_metrics;
pub use policies::{DEFAULT_PRIORITY, PolicyLoad, load_policies};
pub use prometheus::{
    CaFileError, MAX_PROMETHEUS_RETRIES, MAX_PROMETHEUS_TIMEOUT_MS, PemError, QUANTILE_PLACEHOLDER, UrlError,
    WINDOW_PLACEHOLDER, check_ca_file, check_ca_pem, check_url, load_prometheus,
};
pub use slo_specs::{
    ANNOTATION_PREFIX, ImportedSlo, OpenSloDuration, OpenSloDurationError, QueryError, SPEC_RETRIES, SPEC_TIMEOUT_MS,
    SelectError, SloSpecFormat, SpecExtras, SpecSlo, classify_slo_file, counts_from_rate, detect_slo_spec,
    load_slo_specs, load_spec_slo, parse_openslo_duration, select_slo,
};
pub use slos::load_slos;
pub use source::{Source, read_source};
