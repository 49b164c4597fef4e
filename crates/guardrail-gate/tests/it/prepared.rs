//! `gate::Prepared` / `decide::decide_prepared`: inputs parsed once and evaluated at many
//! clocks give exactly what the one-shot path gives at each clock — the same output, the same
//! record body bytes, the same problems.

use std::path::{Path, PathBuf};

use guardrail_core::audit::{RecordDraft, canonical_bytes};
use guardrail_gate::ci::CiContext;
use guardrail_gate::decide::{self, Snapshot, Undecided};
use guardrail_gate::gate::{self, Prepared};
use guardrail_gate::inputs::InputArgs;
use jiff::Timestamp;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/deploy-gate")
}

fn snapshot(args: &InputArgs) -> Snapshot {
    decide::read_snapshot(args, &|_| None, Timestamp::now()).unwrap_or_else(|u| panic!("{:?}", u.messages()))
}

fn args(root: &Path) -> InputArgs {
    InputArgs { root: Some(root.to_path_buf()), now: Some("2026-02-21T00:00:00Z".into()), ..InputArgs::default() }
}

/// Canonical bytes of a decision's record body and its output, or the messages of why not.
type Outcome = Result<(Vec<u8>, String), Vec<String>>;

fn outcome(d: Result<decide::Decided, Undecided>) -> Outcome {
    let d = d.map_err(|u| u.messages())?;
    let draft = RecordDraft { kind: gate::RECORD_KIND.into(), recorded_at: "t".into(), body: d.record_body() };
    Ok((canonical_bytes(1, "0", &draft), serde_json::to_string_pretty(&d.output()).unwrap()))
}

/// At each clock, `decide_prepared` and `decide` on a fresh snapshot agree byte for byte.
fn agree_at_every_clock(args: &InputArgs, clocks: &[&str]) -> Vec<Outcome> {
    let snap = snapshot(args);
    let ci = CiContext { service: Some("checkout-api".into()), ..CiContext::default() };
    let prepared = Prepared::new(snap.sources.clone(), snap.settings.clone());
    assert!(prepared.is_for(&snap.sources, &snap.settings));
    let mut seen = Vec::new();
    for clock in clocks {
        let now: Timestamp = clock.parse().unwrap();
        let once = outcome(decide::decide(
            Snapshot { sources: snap.sources.clone(), settings: prepared.settings_at(now) },
            ci.clone(),
            false,
            None,
        ));
        let again = outcome(decide::decide_prepared(&prepared, now, ci.clone(), false, None));
        assert_eq!(once, again, "at {clock}");
        seen.push(again);
    }
    seen
}

#[test]
fn a_prepared_snapshot_decides_as_the_one_shot_path_at_every_clock() {
    let clocks = ["2026-02-21T00:00:00Z", "2026-02-21T00:10:00Z", "2026-03-01T12:00:00Z"];
    let seen = agree_at_every_clock(&args(&examples()), &clocks);
    assert!(seen.iter().all(Result::is_ok), "{seen:?}");
    // The clock is in the record (settings.now, retry_after): different bytes per clock.
    assert_ne!(seen[0], seen[1]);
}

#[test]
fn freshness_is_checked_at_each_clock_with_the_one_shot_paths_message() {
    let mut a = args(&examples());
    a.max_age = Some("2d".into());
    // Fresh, then older than two days, then in the future (metrics collected 2026-02-20).
    let clocks = ["2026-02-21T00:00:00Z", "2026-02-25T00:00:00Z", "2026-02-10T00:00:00Z"];
    let seen = agree_at_every_clock(&a, &clocks);
    assert!(seen[0].is_ok());
    for stale in &seen[1..] {
        let errs = stale.as_ref().unwrap_err();
        assert!(errs.iter().any(|e| e.contains("metrics.json") && e.contains("collected_at")), "{errs:?}");
    }
}

#[test]
fn inputs_that_cannot_decide_give_the_same_problems_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let copy = |rel: &str| {
        let to = root.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(examples().join(rel), &to).unwrap();
    };
    for rel in ["config/policies.yaml", "config/slos.yaml", "data/metrics.json", "data/cost.json"] {
        copy(rel);
    }
    // A bad policy file, a metrics file with a non-number, and a stale-checked clock: every
    // problem of every input, in the one-shot path's order.
    std::fs::write(root.join("config/policies.yaml"), "policies:\n  - id: P1\n    action: EXPLODE\n").unwrap();
    let metrics = std::fs::read_to_string(root.join("data/metrics.json")).unwrap();
    std::fs::write(
        root.join("data/metrics.json"),
        metrics.replacen("\"collected_at\"", "\"x\": \"y\", \"collected_at\"", 1),
    )
    .unwrap();
    let mut a = args(root);
    a.max_age = Some("1h".into());
    let seen = agree_at_every_clock(&a, &["2026-02-20T00:30:00Z", "2026-02-22T00:00:00Z"]);
    for s in &seen {
        let errs = s.as_ref().unwrap_err();
        assert!(errs.iter().any(|e| e.contains("policies.yaml")), "{errs:?}");
    }
    assert_ne!(seen[0], seen[1], "the second clock adds the stale metrics");
}

#[test]
fn a_prepared_snapshot_is_only_for_its_own_inputs_and_settings() {
    let snap = snapshot(&args(&examples()));
    let prepared = Prepared::new(snap.sources.clone(), snap.settings.clone());
    let later = prepared.settings_at("2027-01-01T00:00:00Z".parse().unwrap());
    assert!(prepared.is_for(&snap.sources, &later), "the clock does not matter");
    let mut other = snap.settings.clone();
    other.service = Some("payments-api".into());
    assert!(!prepared.is_for(&snap.sources, &other));
    let mut changed = snap.sources.clone();
    changed.metrics.sha256 = "0".repeat(64);
    assert!(!prepared.is_for(&changed, &snap.settings));
}
