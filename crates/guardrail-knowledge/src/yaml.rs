//! YAML text → `serde_json::Value`, for runbook files.
//!
//! Built on the workspace's `saphyr-parser` events rather than a YAML loader crate, for two
//! reasons: aliases are refused (a loader that expands them copies nodes, and nested aliases
//! grow exponentially: the "billion laughs" document), and plain scalars resolve with the YAML
//! 1.2 core schema only, so `yes`/`no`/`on` stay strings instead of turning into booleans.
//! Errors carry the line and column.

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

enum Frame {
    Seq(Vec<Value>),
    Map(Map<String, Value>, Option<String>),
}

/// Why a runbook's YAML is refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {problem}")]
pub struct YamlError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub problem: YamlProblem,
}

/// What is wrong with a runbook's YAML ([`YamlError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlProblem {
    /// The parser's own syntax error.
    #[error("{0}")]
    Syntax(String),
    /// A second `---` document.
    #[error("only one YAML document per file is read")]
    SeveralDocuments,
    /// `*name`.
    #[error("aliases (*name) are not supported")]
    Alias,
    /// A tag on a sequence or mapping.
    #[error("tags are not supported")]
    CollectionTag,
    /// A tag other than `!!str` on a scalar.
    #[error("tags other than !!str are not supported")]
    ScalarTag,
    /// A key given twice in one mapping.
    #[error("duplicate key \"{0}\"")]
    DuplicateKey(String),
    /// A sequence or mapping as a key.
    #[error("mapping keys must be plain text")]
    ComplexKey,
    /// The parser's events did not nest (not expected from saphyr).
    #[error("unbalanced {0}")]
    Unbalanced(&'static str),
    /// An integer beyond i64.
    #[error("integer {0} is out of range")]
    IntegerRange(String),
    /// Looks like a float and is not one.
    #[error("{0} is not a number")]
    NotANumber(String),
    /// `.inf`, `.nan`, or a float that overflows.
    #[error("{0} is not a finite number")]
    NotFinite(String),
}

fn at(span: &saphyr_parser::Span, problem: YamlProblem) -> YamlError {
    YamlError { line: span.start.line(), column: span.start.col() + 1, problem }
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
fn resolve_plain(s: &str) -> Result<Value, YamlProblem> {
    Ok(match s {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => {
            let body = s.strip_prefix(['-', '+']).unwrap_or(s);
            if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
                match s.parse::<i64>() {
                    Ok(i) => Value::Number(i.into()),
                    Err(_) => return Err(YamlProblem::IntegerRange(s.to_string())),
                }
            } else if looks_like_float(body) {
                let f: f64 = s.parse().map_err(|_| YamlProblem::NotANumber(s.to_string()))?;
                Value::Number(Number::from_f64(f).ok_or_else(|| YamlProblem::NotFinite(s.to_string()))?)
            } else if matches!(body, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN") {
                return Err(YamlProblem::NotFinite(s.to_string()));
            } else {
                Value::String(s.to_string())
            }
        }
    })
}

fn looks_like_float(body: &str) -> bool {
    // [0-9]*(\.[0-9]*)?([eE][-+]?[0-9]+)? with at least one digit and a dot or exponent.
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let has_digit = !int.is_empty() || frac.is_some_and(|f| !f.is_empty());
    let exp_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        }
    };
    has_digit && digits(int) && frac.is_none_or(digits) && exp_ok && (frac.is_some() || exponent.is_some())
}

/// Parses one YAML document into a JSON value. Mapping keys must be scalars and unique;
/// anchors may be declared but aliases are refused; tags other than `!!str` are refused.
pub fn to_json(text: &str) -> Result<Value, YamlError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Value> = None;
    let mut documents = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| YamlError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            problem: YamlProblem::Syntax(e.info().to_string()),
        })?;
        let value = match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => continue,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(at(&span, YamlProblem::SeveralDocuments));
                }
                continue;
            }
            Event::Alias(_) => return Err(at(&span, YamlProblem::Alias)),
            Event::SequenceStart(_, tag) | Event::MappingStart(_, tag) if tag.is_some() => {
                return Err(at(&span, YamlProblem::CollectionTag));
            }
            Event::SequenceStart(..) => {
                stack.push(Frame::Seq(Vec::new()));
                continue;
            }
            Event::MappingStart(..) => {
                stack.push(Frame::Map(Map::new(), None));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(v)) => Value::Array(v),
                _ => return Err(at(&span, YamlProblem::Unbalanced("sequence"))),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(m, None)) => Value::Object(m),
                _ => return Err(at(&span, YamlProblem::Unbalanced("mapping"))),
            },
            Event::Scalar(raw, style, _, tag) => {
                let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix == "str");
                if tag.is_some() && !is_str_tag {
                    return Err(at(&span, YamlProblem::ScalarTag));
                }
                // A scalar where a mapping key is expected is the key, as written.
                if let Some(Frame::Map(m, key @ None)) = stack.last_mut() {
                    if m.contains_key(raw.as_ref()) {
                        return Err(at(&span, YamlProblem::DuplicateKey(raw.into_owned())));
                    }
                    *key = Some(raw.into_owned());
                    continue;
                }
                if style == ScalarStyle::Plain && !is_str_tag {
                    resolve_plain(&raw).map_err(|e| at(&span, e))?
                } else {
                    Value::String(raw.into_owned())
                }
            }
        };
        match stack.last_mut() {
            None => root = Some(value),
            Some(Frame::Seq(v)) => v.push(value),
            Some(Frame::Map(m, key)) => match key.take() {
                Some(k) => {
                    m.insert(k, value);
                }
                None => return Err(at(&span, YamlProblem::ComplexKey)),
            },
        }
    }
    Ok(root.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn core_schema_scalars() {
        let v = to_json("a: yes\nb: true\nc: 12\nd: 1.5\ne: ~\nf: '12'\ng: [x, 2]\nh: |\n  line\n").unwrap();
        assert_eq!(
            v,
            json!({"a": "yes", "b": true, "c": 12, "d": 1.5, "e": null, "f": "12", "g": ["x", 2], "h": "line\n"})
        );
    }

    #[test]
    fn refuses_aliases_duplicates_and_tags() {
        let e = to_json("a: &x 1\nb: *x\n").unwrap_err();
        assert_eq!((e.line, e.column, &e.problem), (2, 4, &YamlProblem::Alias));
        assert_eq!(e.to_string(), "line 2, column 4: aliases (*name) are not supported");
        let e = to_json("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.problem, YamlProblem::DuplicateKey("a".into()));
        assert!(e.to_string().contains("duplicate key \"a\""), "{e}");
        assert_eq!(to_json("a: !!binary abc\n").unwrap_err().problem, YamlProblem::ScalarTag);
        assert_eq!(to_json("a: .nan\n").unwrap_err().problem, YamlProblem::NotFinite(".nan".into()));
        let e = to_json("a: [1\n").unwrap_err();
        assert!(matches!(e.problem, YamlProblem::Syntax(_)), "{e:?}");
        assert!(e.to_string().starts_with("line"), "{e}");
        assert_eq!(to_json("a: 1\n---\nb: 2\n").unwrap_err().problem, YamlProblem::SeveralDocuments);
    }
}
