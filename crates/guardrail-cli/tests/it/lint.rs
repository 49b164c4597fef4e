//! `guardrail policy lint`.

use crate::common;
use common::*;

fn lint(s: &Scratch) -> (i32, String, String) {
    let mut c = guardrail();
    c.args(["policy", "lint"]).arg(s.path("config/policies.yaml"));
    run(c)
}

#[test]
fn shipped_policies_are_clean() {
    let s = Scratch::new();
    let (code, out, _) = lint(&s);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8 rule(s), 0 error(s)"), "{out}");
}

#[test]
fn reports_every_error_with_position() {
    let s = Scratch::new();
    s.edit("config/policies.yaml", "operator: lt\n        value: 10", "operator: less\n        value: 10");
    s.edit("config/policies.yaml", "id: P003", "id: P002");
    s.edit("config/policies.yaml", "action: WARN", "action: PAGE");
    let (code, out, _) = lint(&s);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("policies.yaml:11:"), "{out}");
    assert!(out.contains("less"), "{out}");
    assert!(out.contains("duplicate"), "{out}");
    assert!(out.contains("PAGE"), "{out}");
}

#[test]
fn a_condition_without_operator_is_an_error() {
    let s = Scratch::new();
    s.edit("config/policies.yaml", "        operator: lt\n        value: 30\n", "        value: 30\n");
    let (code, out, _) = lint(&s);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("rule P005: is required"), "{out}");
    assert!(out.contains("policies[4].conditions.error_budget_pct.operator"), "{out}");
}

#[test]
fn shadowed_rule_is_unreachable() {
    let s = Scratch::new();
    // P004 (burn in [high, critical]) moved before P002 (budget < 20 AND burn in [high, critical]):
    // every input P002 matches is already matched by P004.
    s.edit("config/policies.yaml", "    priority: 4\n", "    priority: 0\n");
    let (code, out, _) = lint(&s);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("unreachable"), "{out}");
    assert!(out.contains("P004"), "{out}");
}

#[test]
fn catch_all_not_last_shadows_everything_after_it() {
    let s = Scratch::new();
    s.edit("config/policies.yaml", "    priority: 99\n", "    priority: 3\n");
    let (code, out, _) = lint(&s);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("P008"), "{out}");
}

#[test]
fn yaml_1_1_booleans_are_flagged() {
    let s = Scratch::new();
    s.edit("config/policies.yaml", "value: false", "value: no");
    let (code, out, _) = lint(&s);
    assert_eq!(code, 0, "a warning, not an error: {out}");
    assert!(out.contains("warning"), "{out}");
}

#[test]
fn the_file_comes_from_the_argument_policies_policies_path_or_root_like_the_gate() {
    let s = Scratch::new();
    s.edit("config/policies.yaml", "action: WARN", "action: PAGE");
    let file = s.path("config/policies.yaml");
    let lint_with = |args: &[&str], env: Option<&std::path::Path>| {
        let mut c = guardrail();
        c.current_dir(std::env::temp_dir()).args(["policy", "lint"]).args(args);
        if let Some(p) = env {
            c.env("POLICIES_PATH", p);
        }
        run(c)
    };
    let path = file.to_str().unwrap();
    for (args, env) in [
        (vec![path], None),
        (vec!["--policies", path], None),
        (vec![], Some(file.as_path())),
        (vec!["--root", s.root().to_str().unwrap()], None),
    ] {
        let (code, out, err) = lint_with(&args, env);
        assert_eq!(code, 3, "{args:?} {env:?}: {out}{err}");
        assert!(out.contains("PAGE") && out.contains(path), "{args:?}: {out}");
    }
    // The flag wins over the variable (as for the gate); a file and --policies together are a
    // usage error.
    let clean = Scratch::new();
    let (code, out, _) = lint_with(&["--policies", clean.path("config/policies.yaml").to_str().unwrap()], Some(&file));
    assert_eq!(code, 0, "{out}");
    assert_eq!(lint_with(&[path, "--policies", path], None).0, 64);
}
