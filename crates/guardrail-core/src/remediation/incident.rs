//! Incidents and their severity: the closed [`Severity`] enum and [`Incident`], read strictly
//! from JSON (five fields, each of the right type).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Incident severity. A closed set: anything else is an error, never a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical: the gate blocks and requires FORCE_OVERRIDE (see [`RemediationRules`](super::RemediationRules)).
    Critical,
}

impl Severity {
    /// Every severity, in increasing order.
    pub const ALL: [Severity; 4] = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];
    /// The accepted names, for error messages.
    pub const NAMES: &'static str = "low, medium, high, critical";

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a severity name: exactly `low`, `medium`, `high` or `critical`. Nothing else is
    /// accepted (no case folding, trimming, punctuation or synonyms), so `"CRITICAL!!"` or
    /// `"High"` is an error naming the field rather than a guess; the original compared
    /// `severity == "high"` in one place and lower-cased it in another, which disagreed.
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Severity::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown severity \"{s}\"; expected one of {}", Severity::NAMES))
        })
    }
}

/// An incident, as in the original's scenarios and `sample_data.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// Identifier, e.g. `inc-001`.
    pub id: String,
    /// The affected service, e.g. `payments-api`.
    pub service: String,
    /// Severity.
    pub severity: Severity,
    /// One line, as reported. Data only: it feeds retrieval queries, never a rule.
    pub summary: String,
    /// As reported. Data only.
    pub symptoms: String,
}

/// Why an incident was refused. `field` is the field path, e.g. `severity` or
/// `incidents[1].severity`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    /// The text is not JSON.
    #[error("incident is not valid JSON: {0}")]
    Syntax(String),
    /// The value is not an object.
    #[error("{path}: an incident must be a JSON object, found {found}")]
    NotAnObject {
        /// Where (empty for the top level).
        path: String,
        /// What was found instead.
        found: &'static str,
    },
    /// A field is missing or wrong.
    #[error("incident field `{field}`: {message}")]
    Field {
        /// Field path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl IncidentError {
    /// The field path the error is about, if it is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            IncidentError::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Longest accepted summary or symptoms text, in characters. Bounds retrieval cost; a real
/// report is a few lines.
pub const MAX_INCIDENT_TEXT: usize = 8192;

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn join_path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() { field.to_string() } else { format!("{prefix}.{field}") }
}

/// True for a service name Guardrail accepts: 1–128 characters from `A–Z a–z 0–9 - _ . : /`.
/// In particular `*` (the policies' wildcard) is not a service.
pub fn valid_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= 128
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
}

impl Incident {
    /// Parses an incident object. Unknown extra fields are ignored (scenario files may carry
    /// notes); the five fields are required with the right type.
    pub fn from_json_value(v: &Value) -> Result<Incident, IncidentError> {
        Incident::from_json_value_at(v, "")
    }

    /// As [`Incident::from_json_value`], with field paths prefixed by `path` (e.g. `incidents[1]`).
    pub fn from_json_value_at(v: &Value, path: &str) -> Result<Incident, IncidentError> {
        let Value::Object(map) = v else {
            let path = if path.is_empty() { "(top level)".to_string() } else { path.to_string() };
            return Err(IncidentError::NotAnObject { path, found: json_kind(v) });
        };
        let text = |name: &str| -> Result<String, IncidentError> {
            let field = join_path(path, name);
            match map.get(name) {
                None => Err(IncidentError::Field { field, message: "is missing".into() }),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(IncidentError::Field {
                    field,
                    message: format!("must be a string, found {}", json_kind(other)),
                }),
            }
        };
        let id = text("id")?;
        if id.trim().is_empty() || id.chars().any(char::is_control) {
            return Err(IncidentError::Field {
                field: join_path(path, "id"),
                message: "must be non-empty and without control characters".into(),
            });
        }
        let service = text("service")?;
        if !valid_service_name(&service) {
            return Err(IncidentError::Field {
                field: join_path(path, "service"),
                message: format!("\"{service}\" is not a service name (1–128 characters from A–Z a–z 0–9 - _ . : /)"),
            });
        }
        let severity_text = text("severity")?;
        let severity = Severity::parse(&severity_text).ok_or_else(|| IncidentError::Field {
            field: join_path(path, "severity"),
            message: format!("\"{severity_text}\" is not a severity; expected one of {}", Severity::NAMES),
        })?;
        let summary = text("summary")?;
        let symptoms = text("symptoms")?;
        for (name, value) in [("summary", &summary), ("symptoms", &symptoms)] {
            if value.chars().count() > MAX_INCIDENT_TEXT {
                return Err(IncidentError::Field {
                    field: join_path(path, name),
                    message: format!("is longer than {MAX_INCIDENT_TEXT} characters"),
                });
            }
        }
        Ok(Incident { id, service, severity, summary, symptoms })
    }

    /// Parses incident JSON text.
    pub fn from_json_str(text: &str) -> Result<Incident, IncidentError> {
        let v: Value = serde_json::from_str(text).map_err(|e| IncidentError::Syntax(e.to_string()))?;
        Incident::from_json_value(&v)
    }
}
