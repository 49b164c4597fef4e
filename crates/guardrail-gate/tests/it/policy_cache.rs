//! The policy cache (`guardrail_gate::policy_cache`): an entry gives back exactly the checked
//! set and warnings the text gives, only for the same bytes at the same path, and an entry
//! that is corrupt, truncated, for other bytes or writable by others is ignored.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use guardrail_config::Source;
use guardrail_gate::gate;
use guardrail_gate::policy_cache::{Cache, dir_from};

fn seed() -> Source {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/deploy-gate/config/policies.yaml");
    guardrail_config::read_source(&p).unwrap()
}

/// A set with awkward floats, scoped rules and a lint warning (a lower-case action).
fn awkward() -> Source {
    let text = r#"version: "2"
policies:
  - id: A
    name: "tenths"
    priority: 1
    action: DELAY
    delay_minutes: 7
    services: ["pay-*", "checkout-api"]
    conditions:
      error_budget_pct: {operator: lt, value: 0.1}
      cost_spike_pct: {operator: gte, value: 33.333333333333336}
    reason: "r\n\"quoted\" é"
    remediation: "m"
  - id: B
    name: "tiny"
    priority: 2
    action: warn
    conditions:
      error_budget_pct: {operator: lt, value: 1.0e-7}
      burn_rate: {operator: in, value: ["high", "critical"]}
    reason: "r"
    remediation: "m"
  - id: Z
    name: "all"
    priority: 3
    action: ALLOW
    conditions: {}
    reason: "r"
    remediation: "m"
"#;
    Source::from_text("/policies/awkward.yaml", text)
}

fn cache(dir: &Path) -> Cache {
    Cache::new(dir.to_path_buf()).expect("the test binary has an identity")
}

fn only_entry(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[test]
fn an_entry_gives_back_exactly_what_the_text_gives() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir.path().join("guardrail"));
    for src in [seed(), awkward()] {
        let (set, windows, warnings) = gate::policy_set(&src).unwrap();
        assert!(windows.is_empty());
        assert!(c.get(&src).is_none(), "nothing kept yet");
        c.put_in_background(&src, &set, &warnings);
        guardrail_gate::policy_cache::finish();
        assert_eq!(c.get(&src), Some((set, warnings)), "{}", src.path.display());
    }
    let (_, _, warnings) = gate::policy_set(&awkward()).unwrap();
    assert!(!warnings.is_empty(), "the awkward set has a warning to keep");
    // The directory only its owner may enter, each entry only its owner may read.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("guardrail")), 0o700);
    for e in std::fs::read_dir(dir.path().join("guardrail")).unwrap() {
        assert_eq!(mode(&e.unwrap().path()), 0o600);
    }
}

/// An entry read ahead ([`Cache::prefetch`]) is the entry `get` reads, trusted the same way; a
/// read-ahead of another file does not stand in for this one.
#[test]
fn an_entry_read_ahead_is_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir.path().join("cache"));
    // A file large enough to be read ahead (a small one is read when asked for).
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, format!("{}# {}\n", awkward().text, "x".repeat(200 << 10))).unwrap();
    let src = guardrail_config::read_source(&path).unwrap();
    let (set, _, warnings) = gate::policy_set(&src).unwrap();
    c.put(&src, &set, &warnings);
    c.prefetch(&src.path);
    assert_eq!(c.get(&src), Some((set.clone(), warnings.clone())));
    c.prefetch(Path::new("/policies/other.yaml"));
    assert_eq!(c.get(&src), Some((set, warnings)));
    // Read ahead, then the file changed: not its entry.
    c.prefetch(&src.path);
    let edited = Source::from_text(&src.path, format!("{}\n", src.text));
    assert!(c.get(&edited).is_none());
}

#[test]
fn an_entry_is_only_for_the_same_bytes_at_the_same_path() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(dir.path());
    let src = awkward();
    let (set, _, warnings) = gate::policy_set(&src).unwrap();
    c.put(&src, &set, &warnings);
    let edited = Source::from_text(&src.path, src.text.replace("value: 0.1", "value: 0.2"));
    assert!(c.get(&edited).is_none(), "other bytes at the same path");
    let moved = Source::from_text("/elsewhere/awkward.yaml", src.text.clone());
    assert!(c.get(&moved).is_none(), "the same bytes at another path (the warnings name the path)");
    // The edited file's entry replaces the last one: one entry per path.
    let (set2, _, w2) = gate::policy_set(&edited).unwrap();
    c.put(&edited, &set2, &w2);
    only_entry(dir.path());
    assert!(c.get(&src).is_none());
    assert_eq!(c.get(&edited), Some((set2, w2)));
}

#[test]
fn a_damaged_or_foreign_entry_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(dir.path());
    let src = awkward();
    let (set, _, warnings) = gate::policy_set(&src).unwrap();
    c.put(&src, &set, &warnings);
    let file = only_entry(dir.path());
    let good = std::fs::read(&file).unwrap();
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() - 10].to_vec()),
        ("empty", Vec::new()),
        ("a changed value, checksum kept", {
            // The first threshold 0.1 (its f64 bits) becomes 0.9.
            let (from, to) = (0.1_f64.to_bits().to_le_bytes(), 0.9_f64.to_bits().to_le_bytes());
            let at = good.windows(8).position(|w| w == from).unwrap();
            let mut g = good.clone();
            g[at..at + 8].copy_from_slice(&to);
            g
        }),
        ("another format", {
            let mut g = good.clone();
            g[0] = b'G';
            g
        }),
        ("not an entry, checksum right", {
            let content = b"{not an entry";
            let sum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content));
            format!("guardrail-policy-cache v2 {sum}\n{{not an entry").into_bytes()
        }),
        ("an entry cut short, checksum right", {
            let header = good.iter().position(|b| *b == b'\n').unwrap() + 1;
            let content = &good[header..good.len() - 3];
            let sum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content));
            [format!("guardrail-policy-cache v2 {sum}\n").as_bytes(), content].concat()
        }),
        ("an entry with more after it, checksum right", {
            let header = good.iter().position(|b| *b == b'\n').unwrap() + 1;
            let content = [&good[header..], b"x"].concat();
            let sum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content));
            [format!("guardrail-policy-cache v2 {sum}\n").as_bytes(), &content].concat()
        }),
    ];
    for (what, bytes) in damaged {
        assert!(bytes != good, "{what}");
        std::fs::write(&file, &bytes).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(c.get(&src).is_none(), "{what}");
    }
    // Intact, but writable by others: not read.
    std::fs::write(&file, &good).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(c.get(&src).is_some());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(c.get(&src).is_none(), "a file others may write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(c.get(&src).is_none(), "a directory others may write");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    // A cache that cannot be written is only slower.
    let blocked = dir.path().join("a-file");
    std::fs::write(&blocked, "").unwrap();
    let nowhere = cache(&blocked.join("sub"));
    nowhere.put(&src, &set, &warnings);
    assert!(nowhere.get(&src).is_none());
}

#[test]
fn the_cache_directory_comes_from_the_environment() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    assert_eq!(dir_from(&env(&[("GUARDRAIL_CACHE_DIR", "off"), ("HOME", "/h")])), None);
    assert_eq!(dir_from(&env(&[("GUARDRAIL_CACHE_DIR", "/c"), ("HOME", "/h")])), Some(PathBuf::from("/c")));
    assert_eq!(dir_from(&env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])), Some(PathBuf::from("/x/guardrail")));
    assert_eq!(dir_from(&env(&[("HOME", "/h")])), Some(PathBuf::from("/h/.cache/guardrail")));
    assert_eq!(
        dir_from(&env(&[("GUARDRAIL_CACHE_DIR", " "), ("HOME", "/h")])),
        Some(PathBuf::from("/h/.cache/guardrail"))
    );
    assert_eq!(dir_from(&env(&[])), None);
}
