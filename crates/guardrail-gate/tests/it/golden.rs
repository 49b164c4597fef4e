//! `guardrail gate --format json` as pipelines parse it: the view of a gate run
//! ([`GateOutcome::view`]) prints exactly what release c139dc0 printed (field names, order,
//! values), for decisions, errors and a withheld decision. The captures are in
//! `tests/fixtures/golden/`, with the examples' directory written `<ROOT>`; the record's id,
//! hash and store are taken from the capture (they hash the capture's paths).

use std::path::{Path, PathBuf};

use guardrail_gate::ci::{self, CiContext};
use guardrail_gate::decide::{self, GateOutcome, Recorder};
use guardrail_gate::inputs::InputArgs;
use guardrail_gate::view::GateReport;
use serde_json::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/deploy-gate")
}

fn golden(name: &str) -> String {
    let path = format!("{}/tests/fixtures/golden/gate-{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("golden")
}

fn args(root: &Path) -> InputArgs {
    InputArgs { root: Some(root.to_path_buf()), now: Some("2026-02-21T00:00:00Z".into()), ..InputArgs::default() }
}

/// Runs the gate as `guardrail gate --format json` does and prints its view the same way
/// (`serde_json::to_string_pretty` and a newline), with the capture's record identity.
fn run(name: &str, args: &InputArgs, ci: CiContext, store: Option<&Path>) -> (String, String) {
    let want = golden(name);
    let captured: Value = serde_json::from_str(&want).expect("golden json");
    let dir = tempfile::tempdir().unwrap();
    let store = store.map(Path::to_path_buf).unwrap_or_else(|| dir.path().join("g.db"));
    let spec = format!("sqlite:{}", store.display());
    let recorder = Recorder { store: &spec, jsonl: None, requested_by: None };
    let snapshot = decide::read_snapshot(args, &|_| None, jiff::Timestamp::now());
    let outcome = decide::decide_and_record(snapshot, ci, false, &recorder);
    let printed = match outcome.view() {
        GateReport::Decision(mut view) => {
            let a = view.audit.as_mut().expect("recorded");
            a.id = captured["audit"]["id"].as_str().unwrap().into();
            a.hash = captured["audit"]["hash"].as_str().unwrap().into();
            a.store = captured["audit"]["store"].as_str().unwrap().into();
            a.seq = captured["audit"]["seq"].as_i64().unwrap();
            serde_json::to_string_pretty(&view).unwrap()
        }
        GateReport::Error(mut err) => {
            if !matches!(outcome, GateOutcome::Withheld { .. }) {
                err.audit_record = captured["audit_record"].as_str().map(str::to_string);
            }
            serde_json::to_string_pretty(&err).unwrap()
        }
    };
    let root = examples().display().to_string();
    let printed = (printed + "\n").replace(&root, "<ROOT>").replace(&store.display().to_string(), "<STORE>");
    (printed, want)
}

fn check(name: &str, args: &InputArgs, ci: CiContext) {
    let (printed, want) = run(name, args, ci, None);
    assert!(printed == want, "gate-{name}.json differs:\n{}", diff(&want, &printed));
}

fn diff(want: &str, got: &str) -> String {
    let mut out = String::new();
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            out.push_str(&format!("line {}: want {w}\n         got  {g}\n", i + 1));
        }
    }
    if want.lines().count() != got.lines().count() {
        out.push_str(&format!("{} lines wanted, {} printed\n", want.lines().count(), got.lines().count()));
    }
    out
}

#[test]
fn decisions_print_as_before() {
    let ex = examples();
    check("delay", &args(&ex), ci::from_env(|_| None));
    for s in ["allow", "block"] {
        let a = InputArgs { metrics: Some(ex.join(format!("scenarios/{s}/metrics.json"))), ..args(&ex) };
        check(s, &a, ci::from_env(|_| None));
    }
    let a = InputArgs { policies: Some(ex.join("config/policies-with-freezes.yaml")), ..args(&ex) };
    check("freeze", &a, ci::from_env(|_| None));
}

#[test]
fn every_setting_and_the_ci_context_print_as_before() {
    let ex = examples();
    let a = InputArgs {
        now: Some("2026-02-20T12:00:00Z".into()),
        max_age: Some("7d".into()),
        cost_warn_pct: Some("12.5".into()),
        cost_baseline_days: Some("14".into()),
        ..args(&ex)
    };
    check("maxage", &a, ci::from_env(|_| None));
    let a = InputArgs {
        cost: Some(ex.join("data/focus.csv")),
        cost_format: Some("focus".into()),
        cost_tag: Some("app=checkout-api".into()),
        cost_service: Some("Amazon Elastic Compute Cloud".into()),
        service: Some("checkout-api".into()),
        ..args(&ex)
    };
    check("focus", &a, ci::from_env(|_| None));
    let env = |k: &str| {
        let v = match k {
            "GITHUB_ACTIONS" => "true",
            "GITHUB_REPOSITORY" => "acme/shop",
            "GITHUB_REF_NAME" => "main",
            "GITHUB_SHA" => "abc123",
            "GITHUB_ACTOR" => "octocat",
            "SERVICE_NAME" => "checkout-api",
            "GITHUB_SERVER_URL" => "https://github.com",
            "GITHUB_RUN_ID" => "42",
            _ => return None,
        };
        Some(v.to_string())
    };
    check("ci", &args(&ex), ci::from_env(env));
}

#[test]
fn runs_that_do_not_decide_print_the_error_object_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere");
    let (printed, want) = run("err", &args(&nowhere), CiContext::default(), None);
    let printed = printed.replace(&nowhere.display().to_string(), "<NOWHERE>");
    assert!(printed == want, "gate-err.json differs:\n{}", diff(&want, &printed));
    // A directory is not a SQLite file: the decision cannot be recorded and is withheld.
    let (printed, want) = run("withheld", &args(&examples()), CiContext::default(), Some(dir.path()));
    assert!(printed == want, "gate-withheld.json differs:\n{}", diff(&want, &printed));
}

/// The view's JSON Schema as an output (the serialize contract: what the OpenAPI document's
/// responses and the MCP output schema render) names exactly the fields `--format json` prints,
/// requires the ones always printed, and lets those printed as `null` be null.
#[test]
fn the_views_schema_names_the_printed_fields() {
    let generator = schemars::generate::SchemaSettings::draft2020_12().for_serialize().into_generator();
    let schema = generator.into_root_schema_for::<guardrail_gate::view::GateView<'static>>();
    let v = schema.as_value();
    let props: Vec<String> = v["properties"].as_object().unwrap().keys().cloned().collect();
    let printed: Value = serde_json::from_str(&golden("delay")).unwrap();
    let mut keys: Vec<String> = printed.as_object().unwrap().keys().cloned().collect();
    keys.push("requested_by".into()); // printed when an authenticated caller asked (HTTP, MCP)
    keys.sort();
    assert_eq!(props, keys);
    let required: Vec<&str> = v["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(!required.contains(&"requested_by") && required.contains(&"action") && required.contains(&"retry_after"));
    assert_eq!(v["properties"]["retry_after"]["type"], serde_json::json!(["string", "null"]));
    // Every decision the captures hold fits the schema's required list (null where printed so).
    for name in ["delay", "allow", "block", "freeze", "ci", "focus", "maxage"] {
        let printed: Value = serde_json::from_str(&golden(name)).unwrap();
        assert!(required.iter().all(|k| printed.get(*k).is_some()), "{name}");
    }
}
