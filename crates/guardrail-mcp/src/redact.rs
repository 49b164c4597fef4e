//! Keeps filesystem paths out of what an HTTP caller sees.

use std::path::PathBuf;

use serde_json::Value;

use guardrail_gate::inputs::{self};

use crate::config::McpConfig;

/// Keeps filesystem paths out of what an HTTP caller sees (as `guardrail serve` does for its
/// API): the configured files become their names, and any other absolute path in a string is
/// cut to its last component. Over stdio the client runs on this machine and sees full paths.
pub fn redact_paths(cfg: &McpConfig, v: &mut Value) {
    let lookup = |k: &str| cfg.env.get(k).cloned();
    let paths = inputs::resolve_paths(&cfg.inputs, &lookup);
    let mut files: Vec<PathBuf> = vec![paths.policies, paths.slos, paths.metrics, paths.cost];
    files.extend(cfg.knowledge.file().map(PathBuf::from));
    files.extend(cfg.logs.clone());
    files.push(PathBuf::from(cfg.store_spec.strip_prefix("sqlite:").unwrap_or(&cfg.store_spec)));
    let mut pairs: Vec<(String, String)> = Vec::new();
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        pairs.push((f.display().to_string(), name.clone()));
        if let Ok(c) = std::fs::canonicalize(f) {
            pairs.push((c.display().to_string(), name));
        }
    }
    pairs.retain(|(from, to)| !from.is_empty() && !to.is_empty() && from != to);
    pairs.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
    redact_value(v, &pairs);
}

fn redact_value(v: &mut Value, pairs: &[(String, String)]) {
    match v {
        Value::String(s) => {
            let mut out = s.clone();
            for (from, to) in pairs {
                if out.contains(from.as_str()) {
                    out = out.replace(from.as_str(), to);
                }
            }
            *s = cut_absolute_paths(&out);
        }
        Value::Array(xs) => xs.iter_mut().for_each(|x| redact_value(x, pairs)),
        Value::Object(m) => m.values_mut().for_each(|x| redact_value(x, pairs)),
        _ => {}
    }
}

/// `/a/b/c.yaml:3:1: x` → `c.yaml:3:1: x`. A path starts with `/` at the start of the text or
/// after a space, quote, `(`, `=` or `:` (not `//`, so URLs stay) and ends at white space, a
/// quote, `,`, `)` or `:`.
fn cut_absolute_paths(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut prev: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let starts = c == '/'
            && !rest.starts_with("//")
            && prev.is_none_or(|p| p.is_whitespace() || matches!(p, '"' | '\'' | '(' | '=' | ':'));
        if starts {
            let end = rest
                .find(|ch: char| ch.is_whitespace() || matches!(ch, '"' | '\'' | ',' | ')' | ':'))
                .unwrap_or(rest.len());
            let path = &rest[..end];
            out.push_str(path.rsplit('/').find(|p| !p.is_empty()).unwrap_or("."));
            prev = path.chars().last();
            rest = &rest[end..];
        } else {
            out.push(c);
            prev = Some(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::cut_absolute_paths;

    #[test]
    fn absolute_paths_are_cut_to_their_last_component_and_urls_kept() {
        assert_eq!(
            cut_absolute_paths("/srv/x/config/policies.yaml:12:3: unknown signal"),
            "policies.yaml:12:3: unknown signal"
        );
        assert_eq!(cut_absolute_paths("store sqlite:/var/lib/g/audit.db failed"), "store sqlite:audit.db failed");
        assert_eq!(cut_absolute_paths("ndjson:/tmp/a/logs.ndjson"), "ndjson:logs.ndjson");
        assert_eq!(cut_absolute_paths("see \"/etc/guardrail/\" (or /opt/x)"), "see \"guardrail\" (or x)");
        assert_eq!(cut_absolute_paths("http://127.0.0.1:9090/api/v1/query"), "http://127.0.0.1:9090/api/v1/query");
        assert_eq!(cut_absolute_paths("a/b/c and 3/4 and /"), "a/b/c and 3/4 and .");
        assert_eq!(cut_absolute_paths("é /ü/ö.txt"), "é ö.txt");
    }
}
