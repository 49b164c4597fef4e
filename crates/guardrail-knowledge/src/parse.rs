//! Reading knowledge documents from text: the original's `sample_data.json` shape, and
//! runbook files a user adds. Every error names the source and the field path.
//!
//! Documents are data, not rules: an action policy's `blocked_actions` are matched through the
//! action vocabulary in `guardrail_core::remediation`, and nothing here can change a gate
//! threshold.

use std::path::Path;

use serde_json::{Map, Value};

use guardrail_core::remediation::{ActionPolicy, Incident, Severity, Stance, valid_service_name};

use crate::{EvidenceDoc, KnowledgeDocs, KnowledgeError, Provenance, Runbook, SampleData};

/// Text format of a knowledge file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (one document).
    Yaml,
    /// Markdown with YAML front matter (runbooks only).
    Markdown,
}

impl Format {
    /// By extension: `.yaml`/`.yml` → YAML, `.md`/`.markdown` → Markdown, anything else JSON.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("yaml" | "yml") => Format::Yaml,
            Some("md" | "markdown") => Format::Markdown,
            _ => Format::Json,
        }
    }
}

/// Longest text field accepted in a document (64 KiB of characters).
pub const MAX_FIELD_CHARS: usize = 64 * 1024;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An object being read, with its path for error messages.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    origin: &'a str,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: String, origin: &'a str) -> Result<Obj<'a>, KnowledgeError> {
        match v {
            Value::Object(map) => Ok(Obj { map, path, origin }),
            other => Err(KnowledgeError::Invalid {
                origin: origin.to_string(),
                field: if path.is_empty() { "(top level)".into() } else { path },
                message: format!("must be an object, found {}", kind(other)),
            }),
        }
    }

    fn field(&self, name: &str) -> String {
        if self.path.is_empty() { name.to_string() } else { format!("{}.{name}", self.path) }
    }

    fn err(&self, field: &str, message: impl Into<String>) -> KnowledgeError {
        KnowledgeError::Invalid { origin: self.origin.to_string(), field: self.field(field), message: message.into() }
    }

    fn only(&self, allowed: &[&str]) -> Result<(), KnowledgeError> {
        for k in self.map.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(self.err(k, format!("unknown field; expected one of {}", allowed.join(", "))));
            }
        }
        Ok(())
    }

    fn opt_str(&self, name: &str) -> Result<Option<String>, KnowledgeError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                if s.chars().count() > MAX_FIELD_CHARS {
                    return Err(self.err(name, format!("is longer than {MAX_FIELD_CHARS} characters")));
                }
                Ok(Some(s.clone()))
            }
            Some(other) => Err(self.err(name, format!("must be a string, found {}", kind(other)))),
        }
    }

    fn req_str(&self, name: &str) -> Result<String, KnowledgeError> {
        self.opt_str(name)?.ok_or_else(|| self.err(name, "is missing"))
    }

    fn id(&self) -> Result<String, KnowledgeError> {
        let id = self.req_str("id")?;
        if id.trim().is_empty() || id.chars().any(char::is_control) || id.chars().count() > 256 {
            return Err(self.err("id", "must be 1–256 characters without control characters"));
        }
        Ok(id)
    }

    fn service(&self, wildcard: bool) -> Result<String, KnowledgeError> {
        let s = self.req_str("service")?;
        if (wildcard && s == "*") || valid_service_name(&s) {
            return Ok(s);
        }
        let hint = if wildcard { " or *" } else { "; runbooks are per service, * is not accepted" };
        Err(self.err("service", format!("\"{s}\" is not a service name (A–Z a–z 0–9 - _ . : /){hint}")))
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, KnowledgeError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(name, format!("must be true or false, found {}", kind(other)))),
        }
    }

    fn str_list(&self, name: &str) -> Result<Vec<String>, KnowledgeError> {
        match self.map.get(name) {
            None => Err(self.err(name, "is missing")),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.err(&format!("{name}[{i}]"), format!("must be a string, found {}", kind(other)))),
                })
                .collect(),
            Some(other) => Err(self.err(name, format!("must be a list of strings, found {}", kind(other)))),
        }
    }
}

/// Reads a runbook object. `source` is the provenance used when the object does not say;
/// `reviewed` defaults to true except for `source: agent_learning`.
fn runbook_from(o: &Obj<'_>, source: &str, origin: Option<String>) -> Result<Runbook, KnowledgeError> {
    o.only(&["id", "service", "title", "recommended_action", "body", "reviewed", "source", "reviewed_by"])?;
    let id = o.id()?;
    let service = o.service(false)?;
    let title = o.opt_str("title")?.unwrap_or_default();
    let recommended_action = o.req_str("recommended_action")?;
    if recommended_action.trim().is_empty() {
        return Err(o.err("recommended_action", "is empty"));
    }
    let body = o.opt_str("body")?.unwrap_or_default();
    let source = o.opt_str("source")?.unwrap_or_else(|| source.to_string());
    let reviewed = o.opt_bool("reviewed")?.unwrap_or(source != "agent_learning");
    let reviewed_by = o.opt_str("reviewed_by")?;
    Ok(Runbook {
        id,
        service,
        title,
        recommended_action,
        body,
        reviewed,
        provenance: Provenance { source, origin, reviewed_by, recorded_at: None, learned: None },
    })
}

fn evidence_from(o: &Obj<'_>) -> Result<EvidenceDoc, KnowledgeError> {
    o.only(&["id", "service", "stance", "text"])?;
    let id = o.id()?;
    let service = o.service(true)?;
    let stance_text = o.req_str("stance")?;
    let stance = Stance::parse(&stance_text)
        .ok_or_else(|| o.err("stance", format!("\"{stance_text}\" is not a stance; expected support or contradict")))?;
    let text = o.req_str("text")?;
    Ok(EvidenceDoc { id, service, stance, text })
}

fn policy_from(o: &Obj<'_>) -> Result<ActionPolicy, KnowledgeError> {
    o.only(&["id", "service", "blocked_actions", "severities", "rule"])?;
    let id = o.id()?;
    let service = o.service(true)?;
    let blocked_actions = o.str_list("blocked_actions")?;
    let mut severities = Vec::new();
    for (i, s) in o.str_list("severities")?.into_iter().enumerate() {
        let sev = Severity::parse(&s).ok_or_else(|| {
            o.err(
                &format!("severities[{i}]"),
                format!("\"{s}\" is not a severity; expected one of {}", Severity::NAMES),
            )
        })?;
        severities.push(sev);
    }
    let rule = o.opt_str("rule")?.unwrap_or_default();
    Ok(ActionPolicy { id, service, blocked_actions, severities, rule })
}

fn parse_value(text: &str, origin: &str, format: Format) -> Result<Value, KnowledgeError> {
    match format {
        Format::Yaml => crate::yaml::to_json(text)
            .map_err(|e| KnowledgeError::Syntax { origin: origin.into(), message: e.to_string() }),
        Format::Json | Format::Markdown => serde_json::from_str(text)
            .map_err(|e| KnowledgeError::Syntax { origin: origin.into(), message: format!("invalid JSON: {e}") }),
    }
}

fn items<'a>(v: Option<&'a Value>, name: &str, origin: &str) -> Result<&'a [Value], KnowledgeError> {
    match v {
        None => Ok(&[]),
        Some(Value::Array(xs)) => Ok(xs),
        Some(other) => Err(KnowledgeError::Invalid {
            origin: origin.into(),
            field: name.into(),
            message: format!("must be a list, found {}", kind(other)),
        }),
    }
}

/// Parses the original's `sample_data.json` shape: an object with optional `runbooks`,
/// `evidence`, `policies` and `incidents` lists. Unknown top-level keys are refused (a typo
/// such as `policy` would otherwise load a knowledge base without its policies).
pub fn parse_sample_data(text: &str, origin: &str, format: Format) -> Result<SampleData, KnowledgeError> {
    let format = if format == Format::Markdown { Format::Json } else { format };
    let v = parse_value(text, origin, format)?;
    let top = Obj::new(&v, String::new(), origin)?;
    top.only(&["runbooks", "evidence", "policies", "incidents"])?;
    let mut docs = KnowledgeDocs::default();
    for (i, r) in items(top.map.get("runbooks"), "runbooks", origin)?.iter().enumerate() {
        docs.runbooks.push(runbook_from(
            &Obj::new(r, format!("runbooks[{i}]"), origin)?,
            "sample_data",
            Some(origin.into()),
        )?);
    }
    for (i, e) in items(top.map.get("evidence"), "evidence", origin)?.iter().enumerate() {
        docs.evidence.push(evidence_from(&Obj::new(e, format!("evidence[{i}]"), origin)?)?);
    }
    for (i, p) in items(top.map.get("policies"), "policies", origin)?.iter().enumerate() {
        docs.policies.push(policy_from(&Obj::new(p, format!("policies[{i}]"), origin)?)?);
    }
    let mut incidents = Vec::new();
    for (i, inc) in items(top.map.get("incidents"), "incidents", origin)?.iter().enumerate() {
        let path = format!("incidents[{i}]");
        incidents.push(Incident::from_json_value_at(inc, &path).map_err(|e| KnowledgeError::Invalid {
            origin: origin.into(),
            field: e.field().unwrap_or(&path).to_string(),
            message: e.to_string(),
        })?);
    }
    check_unique(&docs, origin)?;
    Ok(SampleData { docs, incidents })
}

fn check_unique(docs: &KnowledgeDocs, origin: &str) -> Result<(), KnowledgeError> {
    let dup = |kind: &str, ids: Vec<&str>| -> Result<(), KnowledgeError> {
        let mut seen = std::collections::HashSet::new();
        for (i, id) in ids.into_iter().enumerate() {
            if !seen.insert(id) {
                return Err(KnowledgeError::Invalid {
                    origin: origin.into(),
                    field: format!("{kind}[{i}].id"),
                    message: format!("duplicate id \"{id}\""),
                });
            }
        }
        Ok(())
    };
    dup("runbooks", docs.runbooks.iter().map(|r| r.id.as_str()).collect())?;
    dup("evidence", docs.evidence.iter().map(|r| r.id.as_str()).collect())?;
    dup("policies", docs.policies.iter().map(|r| r.id.as_str()).collect())
}

/// Splits Markdown into YAML front matter and body. The file must start with a `---` line;
/// the front matter ends at the next `---` (or `...`) line.
fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n"))?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        if trimmed == "---" || trimmed == "..." {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

/// Parses one runbook file a user adds. JSON and YAML files hold one runbook object, a list
/// of them, or `{runbooks: [...]}`. A Markdown file is one runbook: YAML front matter with
/// `service` and `recommended_action` (and optionally `id`, default the file stem, `title`,
/// default the first `# ` heading, `reviewed`), and the Markdown after it as the body.
/// Runbooks from files are `reviewed: true` unless they say otherwise: adding a file is a
/// person's act.
pub fn parse_runbook_file(text: &str, path: &Path) -> Result<Vec<Runbook>, KnowledgeError> {
    let origin = path.display().to_string();
    let format = Format::from_path(path);
    let runbooks = if format == Format::Markdown {
        let (front, body) = split_front_matter(text).ok_or_else(|| KnowledgeError::Syntax {
            origin: origin.clone(),
            message: "a Markdown runbook starts with YAML front matter between --- lines (service, recommended_action)"
                .into(),
        })?;
        let mut v = parse_value(front, &origin, Format::Yaml)?;
        let Value::Object(map) = &mut v else {
            return Err(KnowledgeError::Invalid {
                origin,
                field: "(front matter)".into(),
                message: "must be a mapping".into(),
            });
        };
        if map.contains_key("body") {
            return Err(KnowledgeError::Invalid {
                origin,
                field: "body".into(),
                message: "the body of a Markdown runbook is the text after the front matter".into(),
            });
        }
        let body = body.trim();
        if !map.contains_key("id")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            map.insert("id".into(), Value::String(stem.to_string()));
        }
        if !map.contains_key("title")
            && let Some(h) = body.lines().find_map(|l| l.strip_prefix("# "))
        {
            map.insert("title".into(), Value::String(h.trim().to_string()));
        }
        map.insert("body".into(), Value::String(body.to_string()));
        vec![runbook_from(&Obj::new(&v, String::new(), &origin)?, "file", Some(origin.clone()))?]
    } else {
        let v = parse_value(text, &origin, format)?;
        let list: Vec<(String, &Value)> = match &v {
            Value::Array(xs) => xs.iter().enumerate().map(|(i, x)| (format!("[{i}]"), x)).collect(),
            Value::Object(m) if m.contains_key("runbooks") => {
                let top = Obj::new(&v, String::new(), &origin)?;
                top.only(&["runbooks"])?;
                items(m.get("runbooks"), "runbooks", &origin)?
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (format!("runbooks[{i}]"), x))
                    .collect()
            }
            other => vec![(String::new(), other)],
        };
        let mut out = Vec::new();
        for (p, x) in list {
            out.push(runbook_from(&Obj::new(x, p, &origin)?, "file", Some(origin.clone()))?);
        }
        out
    };
    check_unique(&KnowledgeDocs { runbooks: runbooks.clone(), ..KnowledgeDocs::default() }, &origin)?;
    Ok(runbooks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: KnowledgeError) -> String {
        match e {
            KnowledgeError::Invalid { field, .. } => field,
            other => panic!("not a field error: {other}"),
        }
    }

    #[test]
    fn sample_data_errors_name_the_field() {
        let bad =
            r#"{"policies":[{"id":"p","service":"*","blocked_actions":[],"severities":["low","urgent"],"rule":""}]}"#;
        assert_eq!(field_of(parse_sample_data(bad, "t", Format::Json).unwrap_err()), "policies[0].severities[1]");
        let bad = r#"{"evidence":[{"id":"e","service":"s","stance":"maybe","text":""}]}"#;
        assert_eq!(field_of(parse_sample_data(bad, "t", Format::Json).unwrap_err()), "evidence[0].stance");
        let bad = r#"{"incidents":[{"id":"i","service":"s","severity":"CRITICAL!!","summary":"","symptoms":""}]}"#;
        assert_eq!(field_of(parse_sample_data(bad, "t", Format::Json).unwrap_err()), "incidents[0].severity");
        let bad = r#"{"policy":[]}"#;
        assert_eq!(field_of(parse_sample_data(bad, "t", Format::Json).unwrap_err()), "policy");
        let bad = r#"{"runbooks":[{"id":"r","service":"*","recommended_action":"x"}]}"#;
        assert_eq!(field_of(parse_sample_data(bad, "t", Format::Json).unwrap_err()), "runbooks[0].service");
        let dup = r#"{"evidence":[{"id":"e","service":"s","stance":"support","text":""},{"id":"e","service":"s","stance":"support","text":""}]}"#;
        assert_eq!(field_of(parse_sample_data(dup, "t", Format::Json).unwrap_err()), "evidence[1].id");
    }

    #[test]
    fn markdown_runbook_with_front_matter() {
        let md = "---\nservice: payments-api\nrecommended_action: Restart the payments-api pods\n---\n# Restart pods\n\nBounce them.\n";
        let rbs = parse_runbook_file(md, Path::new("runbooks/rbk-md.md")).unwrap();
        assert_eq!(rbs.len(), 1);
        let r = &rbs[0];
        assert_eq!((r.id.as_str(), r.title.as_str()), ("rbk-md", "Restart pods"));
        assert!(r.body.contains("Bounce them."));
        assert!(r.reviewed);
        assert_eq!(r.provenance.source, "file");
        assert!(parse_runbook_file("# no front matter\n", Path::new("x.md")).is_err());
    }

    #[test]
    fn yaml_and_json_runbook_files() {
        let y = "- id: a\n  service: svc\n  recommended_action: scale_worker_pool\n- id: b\n  service: svc\n  recommended_action: x\n  reviewed: false\n";
        let rbs = parse_runbook_file(y, Path::new("r.yaml")).unwrap();
        assert_eq!(rbs.len(), 2);
        assert!(!rbs[1].reviewed);
        let j = r#"{"id":"c","service":"svc","recommended_action":"x","source":"agent_learning"}"#;
        let rbs = parse_runbook_file(j, Path::new("r.json")).unwrap();
        assert!(!rbs[0].reviewed, "learned runbooks start unreviewed");
        let typo = "id: a\nservice: svc\nrecomended_action: x\n";
        assert_eq!(field_of(parse_runbook_file(typo, Path::new("r.yml")).unwrap_err()), "recomended_action");
    }
}

/// One document read from a stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// A runbook.
    Runbook(Runbook),
    /// An evidence document.
    Evidence(EvidenceDoc),
    /// An action policy.
    Policy(ActionPolicy),
}

/// Reads a JSON file in the `sample_data.json` shape from `reader` one document at a time,
/// handing each to `sink` as soon as it is read and checked: memory stays bounded by one
/// document however large the file (the whole-text readers stop at
/// [`crate::MAX_FILE_BYTES`]). The checks are [`parse_sample_data`]'s: the same fields, the same
/// messages naming `runbooks[i].field`, unknown top-level keys refused, duplicate ids within
/// the file refused. Incidents are checked and counted, not kept. The first error stops the
/// read; what `sink` already received is the caller's to roll back.
pub fn stream_sample_data<R: std::io::Read>(
    reader: R,
    origin: &str,
    sink: &mut dyn FnMut(Doc) -> Result<(), KnowledgeError>,
) -> Result<usize, KnowledgeError> {
    use serde::de::Deserializer as _;
    let mut state = StreamState { origin, sink, failed: None, incidents: 0, seen: Default::default() };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = (&mut de).deserialize_map(TopVisitor { state: &mut state }).and_then(|()| de.end());
    if let Some(e) = state.failed.take() {
        return Err(e);
    }
    result.map_err(|e| KnowledgeError::Syntax { origin: origin.into(), message: format!("invalid JSON: {e}") })?;
    Ok(state.incidents)
}

struct StreamState<'a, 'b> {
    origin: &'a str,
    sink: &'b mut dyn FnMut(Doc) -> Result<(), KnowledgeError>,
    /// The document error that stopped the read (serde's error only says "stopped").
    failed: Option<KnowledgeError>,
    incidents: usize,
    seen: [std::collections::HashSet<String>; 3],
}

impl StreamState<'_, '_> {
    fn fail<E: serde::de::Error>(&mut self, e: KnowledgeError) -> E {
        self.failed = Some(e);
        E::custom("stopped at an invalid document")
    }

    fn item<E: serde::de::Error>(&mut self, list: List, i: usize, v: Value) -> Result<(), E> {
        let path = format!("{}[{i}]", list.name());
        let doc = match list {
            List::Incidents => {
                Incident::from_json_value_at(&v, &path).map(|_| None).map_err(|e| KnowledgeError::Invalid {
                    origin: self.origin.into(),
                    field: e.field().unwrap_or(&path).to_string(),
                    message: e.to_string(),
                })
            }
            _ => Obj::new(&v, path.clone(), self.origin).and_then(|o| match list {
                List::Runbooks => {
                    runbook_from(&o, "sample_data", Some(self.origin.into())).map(|r| Some(Doc::Runbook(r)))
                }
                List::Evidence => evidence_from(&o).map(|e| Some(Doc::Evidence(e))),
                _ => policy_from(&o).map(|p| Some(Doc::Policy(p))),
            }),
        };
        let doc = match doc {
            Ok(Some(d)) => d,
            Ok(None) => {
                self.incidents += 1;
                return Ok(());
            }
            Err(e) => return Err(self.fail(e)),
        };
        let (slot, id) = match &doc {
            Doc::Runbook(r) => (0, &r.id),
            Doc::Evidence(e) => (1, &e.id),
            Doc::Policy(p) => (2, &p.id),
        };
        if !self.seen[slot].insert(id.clone()) {
            let e = KnowledgeError::Invalid {
                origin: self.origin.into(),
                field: format!("{path}.id"),
                message: format!("duplicate id \"{id}\""),
            };
            return Err(self.fail(e));
        }
        (self.sink)(doc).map_err(|e| self.fail(e))
    }
}

#[derive(Debug, Clone, Copy)]
enum List {
    Runbooks,
    Evidence,
    Policies,
    Incidents,
}

impl List {
    fn name(self) -> &'static str {
        match self {
            List::Runbooks => "runbooks",
            List::Evidence => "evidence",
            List::Policies => "policies",
            List::Incidents => "incidents",
        }
    }
}

struct TopVisitor<'s, 'a, 'b> {
    state: &'s mut StreamState<'a, 'b>,
}

impl<'de> serde::de::Visitor<'de> for TopVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with runbooks, evidence, policies and/or incidents")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        const KEYS: [&str; 4] = ["runbooks", "evidence", "policies", "incidents"];
        while let Some(key) = map.next_key::<String>()? {
            let list = match key.as_str() {
                "runbooks" => List::Runbooks,
                "evidence" => List::Evidence,
                "policies" => List::Policies,
                "incidents" => List::Incidents,
                _ => {
                    let e = KnowledgeError::Invalid {
                        origin: self.state.origin.into(),
                        field: key,
                        message: format!("unknown field; expected one of {}", KEYS.join(", ")),
                    };
                    return Err(self.state.fail(e));
                }
            };
            map.next_value_seed(ListSeed { state: self.state, list })?;
        }
        Ok(())
    }
}

struct ListSeed<'s, 'a, 'b> {
    state: &'s mut StreamState<'a, 'b>,
    list: List,
}

impl<'de> serde::de::DeserializeSeed<'de> for ListSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ListSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a list of {}", self.list.name())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(v) = seq.next_element::<Value>()? {
            self.state.item(self.list, i, v)?;
            i += 1;
        }
        Ok(())
    }
}
