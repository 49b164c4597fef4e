//! Freeze and maintenance windows through the real binary: the shipped example
//! (`policies-with-freezes.yaml`) at instants inside and outside each window, the emergency
//! list, and exit 3 with file, line and field for bad windows.

use crate::common;
use common::*;

fn scratch() -> Scratch {
    let s = Scratch::new();
    std::fs::copy(examples().join("config/policies-with-freezes.yaml"), s.path("config/freezes.yaml")).unwrap();
    s.write("data/metrics.json", &metrics_with(2_592_000, 500, 300, &[0.5; 24]));
    s
}

fn decide(s: &Scratch, now: &str) -> (i32, serde_json::Value) {
    gate_json(s, &["--policies", s.path("config/freezes.yaml").to_str().unwrap(), "--now", now])
}

#[test]
fn weekday_outside_windows_allows() {
    let s = scratch();
    // Wednesday 2026-02-25 12:00 UTC.
    let (code, v) = decide(&s, "2026-02-25T12:00:00Z");
    assert_eq!((code, v["action"].as_str()), (0, Some("ALLOW")), "{v}");
    assert_eq!(v["signals"]["in_freeze"], false);
    assert_eq!(v["signals"]["freeze_name"], "");
    assert_eq!(v["signals"]["in_maintenance"], false);
    assert_eq!(v["freeze"]["active"], serde_json::json!([]));
}

#[test]
fn weekend_freeze_in_berlin_time_blocks() {
    let s = scratch();
    // Friday 23:30 UTC is Saturday 00:30 in Berlin.
    let (code, v) = decide(&s, "2026-02-20T23:30:00Z");
    assert_eq!((code, v["policy_id"].as_str()), (2, Some("F002")), "{v}");
    assert_eq!(v["signals"]["in_freeze"], true);
    assert_eq!(v["signals"]["freeze_name"], "weekend");
    assert_eq!(v["freeze"]["active"][0]["start"], "2026-02-20T23:00:00Z");
    assert_eq!(v["freeze"]["active"][0]["end"], "2026-02-21T23:00:00Z");
    assert_eq!(v["conditions"][0]["signal"], "in_freeze");
    assert_eq!(v["conditions"][0]["actual"], true);
    // Friday 22:30 UTC is 23:30 Friday in Berlin: not frozen.
    let (code, v) = decide(&s, "2026-02-20T22:30:00Z");
    assert_eq!(code, 0, "{v}");
    // The text report names the window.
    let (_, out, _) =
        run(s.gate(&["--policies", s.path("config/freezes.yaml").to_str().unwrap(), "--now", "2026-02-21T12:00:00Z"]));
    assert!(out.contains("Freeze    weekend (2026-02-20T23:00:00Z to 2026-02-21T23:00:00Z, Europe/Berlin)"), "{out}");
}

#[test]
fn fixed_range_in_new_york_and_the_emergency_list() {
    let s = scratch();
    // Thursday 2026-11-26 05:00 UTC = 00:00 in New York: black-friday starts.
    let (code, v) = decide(&s, "2026-11-26T05:00:00Z");
    assert_eq!((code, v["policy_id"].as_str()), (2, Some("F002")), "{v}");
    assert_eq!(v["signals"]["freeze_name"], "black-friday");
    let (code, _) = decide(&s, "2026-11-26T04:59:59Z");
    assert_eq!(code, 0);
    // payments-api is on the emergency list: WARN, not BLOCK.
    s.write(
        "data/metrics.json",
        &metrics_with(2_592_000, 500, 300, &[0.5; 24]).replace("checkout-api", "payments-api"),
    );
    s.write("data/cost.json", &s.read("data/cost.json").replace("checkout-api", "payments-api"));
    let (code, v) = decide(&s, "2026-11-26T05:00:00Z");
    assert_eq!((code, v["policy_id"].as_str(), v["action"].as_str()), (0, Some("F001"), Some("WARN")), "{v}");
}

#[test]
fn first_tuesday_maintenance_delays() {
    let s = scratch();
    // 2026-03-03 is the first Tuesday of March; 02:00–04:00 UTC.
    let (code, v) = decide(&s, "2026-03-03T03:00:00Z");
    assert_eq!((code, v["policy_id"].as_str()), (1, Some("F003")), "{v}");
    assert_eq!(v["signals"]["in_maintenance"], true);
    assert_eq!(v["signals"]["maintenance_name"], "db-patching");
    let (code, _) = decide(&s, "2026-03-10T03:00:00Z");
    assert_eq!(code, 0, "second Tuesday is not a maintenance day");
}

fn refuses(s: &Scratch, needles: &[&str]) {
    let (code, out, err) =
        run(s.gate(&["--format", "json", "--policies", s.path("config/freezes.yaml").to_str().unwrap()]));
    assert_eq!(code, 3, "stdout: {out}\nstderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

#[test]
fn bad_windows_are_refused_with_file_line_and_field() {
    let s = scratch();
    s.edit("config/freezes.yaml", "timezone: Europe/Berlin", "timezone: Europe/Berlinn");
    refuses(&s, &["freezes.yaml:13:", "freezes[1].timezone", "Europe/Berlinn", "IANA"]);

    let s = scratch();
    s.edit("config/freezes.yaml", "FREQ=WEEKLY;BYDAY=SA,SU", "FREQ=WEEKLY;BYDAY=SA,SX");
    refuses(&s, &["freezes.yaml:14:", "freezes[1].rrule", "\"SX\""]);

    let s = scratch();
    s.edit("config/freezes.yaml", "end: 2026-12-01T00:00:00", "end: 2026-11-01T00:00:00");
    refuses(&s, &["freezes[0].end", "not after start"]);

    let s = scratch();
    s.edit("config/freezes.yaml", "start: 2026-11-26T00:00:00", "start: 2026-11-26T00:00:00Z");
    refuses(&s, &["freezes[0].start", "without offset"]);

    let s = scratch();
    s.edit("config/freezes.yaml", "duration: 2h", "duration: 2 fortnights");
    refuses(&s, &["maintenance[0].duration", "unknown unit"]);

    let s = scratch();
    s.edit("config/freezes.yaml", "name: weekend", "name: black-friday");
    refuses(&s, &["freezes[1].name", "already the name of freezes[0]"]);

    let s = scratch();
    s.edit("config/freezes.yaml", "    duration: 24h\n", "    duration: 24h\n    end: 2026-01-04T00:00:00\n");
    refuses(&s, &["freezes[1]", "not both"]);
}

#[test]
fn policy_lint_checks_the_windows_too() {
    let s = scratch();
    let file = s.path("config/freezes.yaml");
    let (code, out, err) = run({
        let mut c = guardrail();
        c.args(["policy", "lint"]).arg(&file);
        c
    });
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    s.edit("config/freezes.yaml", "timezone: Europe/Berlin", "timezone: Europe/Berlinn");
    let (code, out, err) = run({
        let mut c = guardrail();
        c.args(["policy", "lint"]).arg(&file);
        c
    });
    let all = format!("{out}{err}");
    assert_eq!(code, 3, "{all}");
    assert!(all.contains("freezes.yaml:13:") && all.contains("freezes[1].timezone"), "{all}");
}

#[test]
fn freeze_rules_without_windows_never_match_and_typos_are_errors() {
    let s = scratch();
    // No windows: in_freeze is false, the seed rules decide.
    let text = s.read("config/freezes.yaml");
    let (_, rest) = text.split_once("policies:\n").unwrap();
    s.write("config/freezes.yaml", &format!("version: \"1.0\"\npolicies:\n{rest}"));
    let (code, v) = decide(&s, "2026-02-21T12:00:00Z");
    assert_eq!((code, v["signals"]["in_freeze"].as_bool()), (0, Some(false)), "{v}");
    // A misspelt signal is an error, not a rule that never matches.
    s.edit("config/freezes.yaml", "in_freeze:", "in_freze:");
    refuses(&s, &["in_freze"]);
}

#[test]
fn a_freeze_decision_replays_identically() {
    let s = scratch();
    let (code, v) = decide(&s, "2026-02-21T12:00:00Z");
    assert_eq!(code, 2, "{v}");
    let id = v["audit"]["id"].as_str().unwrap().to_string();
    std::fs::remove_file(s.path("config/freezes.yaml")).unwrap();
    let mut c = guardrail();
    c.args(["replay", &id, "--format", "json", "--store"]).arg(s.store());
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["identical"], true, "{r}");
    assert_eq!(r["replayed_action"], "BLOCK");
}
