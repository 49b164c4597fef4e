//! Keeping filesystem paths out of HTTP responses.
//!
//! The gate's messages name files with their full path (`/srv/x/config/policies.yaml:12:3: …`),
//! which is right on a terminal and wrong over HTTP. Every JSON value the server sends goes
//! through a [`Redactor`]: the known input paths (as given and canonicalised), the `--root`
//! directory and the working directory are replaced by the file name or `.`, and any other
//! absolute path left in a string is cut down to its last component.

use std::borrow::Cow;
use std::path::Path;

/// Rewrites strings so they carry file names, not paths.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (from, to), longest `from` first.
    pairs: Vec<(String, String)>,
    /// Some `from` has no `/` (a relative input path without a directory). When none has,
    /// a string without `/` has nothing to redact — most strings of an answer — and is left
    /// as it is without a copy ([`Redactor::text_cow`]).
    slashless: bool,
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into())
}

impl Redactor {
    /// A redactor for these input files, `--root` directory (if any) and the working directory.
    pub fn new(files: &[&Path], dirs: &[&Path]) -> Redactor {
        let mut pairs = Vec::new();
        for f in files {
            let name = file_name(f);
            pairs.push((f.display().to_string(), name.clone()));
            if let Ok(c) = std::fs::canonicalize(f) {
                pairs.push((c.display().to_string(), name.clone()));
            }
        }
        let mut dirs: Vec<std::path::PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
        if let Ok(cwd) = std::env::current_dir() {
            dirs.push(cwd);
        }
        for d in dirs {
            let mut forms = vec![d.display().to_string()];
            if let Ok(c) = std::fs::canonicalize(&d) {
                forms.push(c.display().to_string());
            }
            for f in forms {
                if f.len() > 1 && f != "." {
                    pairs.push((format!("{}/", f.trim_end_matches('/')), String::new()));
                }
            }
        }
        pairs.retain(|(from, _)| !from.is_empty());
        pairs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        pairs.dedup();
        let slashless = pairs.iter().any(|(from, _)| !from.contains('/'));
        Redactor { pairs, slashless }
    }

    /// One string.
    pub fn text(&self, s: &str) -> String {
        self.text_cow(s).into_owned()
    }

    /// One string, borrowed when there is nothing to redact: every pair's `from` (unless
    /// [`Redactor::slashless`]) and every absolute path has a `/`.
    pub fn text_cow<'s>(&self, s: &'s str) -> Cow<'s, str> {
        if !self.slashless && !s.contains('/') {
            return Cow::Borrowed(s);
        }
        let mut out = s.to_string();
        for (from, to) in &self.pairs {
            if out.contains(from.as_str()) {
                out = out.replace(from.as_str(), to);
            }
        }
        Cow::Owned(scrub_absolute_paths(&out))
    }

    /// Every string in a JSON value, in place (keys are left alone: they are field names).
    pub fn value(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = self.text_cow(s)
                    && r != *s
                {
                    *s = r;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.value(x)),
            serde_json::Value::Object(o) => o.iter_mut().for_each(|(_, x)| self.value(x)),
            _ => {}
        }
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '~' | '+' | '@')
}

/// True when `chars[..colon]` ends with a URL scheme other than `file` (`https`, `git+ssh`):
/// the `//` after it starts a URL's authority, not a path.
fn after_url_scheme(chars: &[char], colon: usize) -> bool {
    let is_scheme_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
    let mut k = colon;
    while k > 0 && is_scheme_char(chars[k - 1]) {
        k -= 1;
    }
    let scheme: String = chars[k..colon].iter().collect();
    scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && !scheme.eq_ignore_ascii_case("file")
}

/// Replaces every absolute path (a `/` at the start of a word followed by at least one more
/// `/`-separated component) with its last component: `/a/b/c.yaml:3` → `c.yaml:3`. A URL
/// (`https://ci.example/runs/7`: a scheme, `:` and `//`) is left whole; a `file:` URL is a path.
pub fn scrub_absolute_paths(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let at_word_start = i == 0 || !is_path_char(chars[i - 1]);
        if chars[i] == '/' && at_word_start {
            let mut j = i;
            while j < chars.len() && is_path_char(chars[j]) {
                j += 1;
            }
            let token: String = chars[i..j].iter().collect();
            let url = i > 0 && chars[i - 1] == ':' && token.starts_with("//") && after_url_scheme(&chars, i - 1);
            if url {
                out.push_str(&token);
                i = j;
                continue;
            }
            let parts: Vec<&str> = token.split('/').filter(|p| !p.is_empty()).collect();
            if parts.len() >= 2 {
                out.push_str(parts.last().copied().unwrap_or_default());
                i = j;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_become_file_names() {
        let r = Redactor::new(&[Path::new("/srv/app/config/policies.yaml")], &[Path::new("/srv/app")]);
        assert_eq!(
            r.text("/srv/app/config/policies.yaml:12:3: rules[0]: unknown signal"),
            "policies.yaml:12:3: rules[0]: unknown signal"
        );
        // Other files under the root keep only their place in the seed layout.
        assert_eq!(r.text("see /srv/app/data/other.json"), "see data/other.json");
    }

    #[test]
    fn unknown_absolute_paths_are_cut_but_prose_is_kept() {
        assert_eq!(scrub_absolute_paths("open /var/lib/x/audit.db: denied"), "open audit.db: denied");
        assert_eq!(scrub_absolute_paths("p95/p99 and 3 req/s, failed / total"), "p95/p99 and 3 req/s, failed / total");
        assert_eq!(scrub_absolute_paths("/healthz"), "/healthz");
    }

    #[test]
    fn urls_are_kept_whole_but_file_urls_and_double_slash_paths_are_cut() {
        for url in [
            "https://gitlab.example/acme/shop/-/pipelines/7",
            "see http://ci.example/runs/1 now",
            "git+ssh://git@host/acme/shop.git",
        ] {
            assert_eq!(scrub_absolute_paths(url), url);
        }
        assert_eq!(scrub_absolute_paths("file:///srv/app/config/policies.yaml"), "file:policies.yaml");
        assert_eq!(scrub_absolute_paths("at //srv/app/audit.db"), "at audit.db");
        assert_eq!(scrub_absolute_paths("x://srv/a/b"), "x://srv/a/b");
        assert_eq!(scrub_absolute_paths("3://srv/a/b"), "3:b");
    }

    #[test]
    fn a_string_without_a_slash_is_kept_unless_a_relative_input_has_none() {
        let r = Redactor::new(&[Path::new("/srv/app/config/policies.yaml")], &[Path::new("/srv/app")]);
        assert!(!r.slashless);
        assert!(matches!(r.text_cow("policy p1 matched: error_budget_pct lt 30"), Cow::Borrowed(_)));
        assert_eq!(r.text("policies.yaml:3: /srv/app/config/policies.yaml"), "policies.yaml:3: policies.yaml");
        // `..` as an input file is shown as `.`: the one kind of pair without a slash that
        // changes text, so such a redactor looks at every string.
        let r = Redactor::new(&[Path::new("..")], &[]);
        assert!(r.slashless);
        assert_eq!(r.text("up .. here"), "up . here");
    }

    #[test]
    fn values_are_walked() {
        let r = Redactor::new(&[Path::new("/d/cost.json")], &[]);
        let mut v = serde_json::json!({"a": ["/d/cost.json: bad"], "b": {"path": "/d/cost.json"}, "n": 1});
        r.value(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["cost.json: bad"], "b": {"path": "cost.json"}, "n": 1}));
    }
}
