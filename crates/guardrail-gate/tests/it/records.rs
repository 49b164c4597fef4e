//! Deploy records written before their bodies were typed (release c139dc0: `guardrail gate`,
//! `POST /api/gate`, `POST /api/simulate`, MCP `evaluate_deploy`, each with and without the
//! optional parts) decode into the body types and re-encode to the same canonical bytes, so
//! their hashes hold; and the decisions among them replay identically.

use guardrail_core::audit::{RecordDraft, canonical_bytes, record_hash};
use guardrail_gate::gate::{
    self, DecisionRecordBody, ERROR_KIND, ErrorRecordBody, RECORD_KIND, SIMULATION_KIND, SimulationRecordBody,
};
use serde::Deserialize;
use serde_json::Value;

/// One record as the store held it (`store` names the capture it came from).
#[derive(Debug, Deserialize)]
struct Fixture {
    store: String,
    seq: i64,
    kind: String,
    recorded_at: String,
    prev_hash: String,
    hash: String,
    body: Value,
}

fn fixtures() -> Vec<Fixture> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/deploy-records-c139dc0.jsonl");
    let text = std::fs::read_to_string(path).expect("fixture");
    text.lines().map(|l| serde_json::from_str(l).expect("fixture line")).collect()
}

fn reencoded(kind: &str, body: &Value) -> Value {
    match kind {
        RECORD_KIND => gate::encode(&gate::decode::<DecisionRecordBody>(body).expect("decision body")),
        SIMULATION_KIND => gate::encode(&gate::decode::<SimulationRecordBody>(body).expect("simulation body")),
        ERROR_KIND => gate::encode(&gate::decode::<ErrorRecordBody>(body).expect("error body")),
        other => panic!("not a deploy kind: {other}"),
    }
}

#[test]
fn records_written_before_the_types_reencode_to_their_canonical_bytes() {
    let all = fixtures();
    for f in &all {
        let draft = RecordDraft { kind: f.kind.clone(), recorded_at: f.recorded_at.clone(), body: f.body.clone() };
        // The fixture is what the store held: its hash verifies.
        assert_eq!(record_hash(f.seq, &f.prev_hash, &draft), f.hash, "{} #{}", f.store, f.seq);
        let again = RecordDraft { body: reencoded(&f.kind, &f.body), ..draft.clone() };
        let (before, after) =
            (canonical_bytes(f.seq, &f.prev_hash, &draft), canonical_bytes(f.seq, &f.prev_hash, &again));
        assert!(
            before == after,
            "{} #{} {}:\n{}\n{}",
            f.store,
            f.seq,
            f.kind,
            String::from_utf8_lossy(&before),
            String::from_utf8_lossy(&after)
        );
    }
    // The captures hold every optional part: who asked (with a role, without one, nobody),
    // settings unresolved, every optional setting, a what-if, each kind.
    let has = |p: &dyn Fn(&Fixture) -> bool| all.iter().any(p);
    assert!(has(&|f| f.kind == RECORD_KIND && f.body.get("requested_by").is_none()));
    assert!(has(&|f| f.kind == RECORD_KIND && f.body["requested_by"]["role"] == "deployer"));
    assert!(has(&|f| f.kind == RECORD_KIND && f.body["requested_by"]["via"] == "mcp-stdio"));
    assert!(has(&|f| f.kind == RECORD_KIND && f.body["ci"]["provider"] == "github-actions"));
    assert!(has(&|f| f.kind == RECORD_KIND
        && f.body["settings"]["cost_tag"].is_string()
        && f.body["settings"]["cost_service"].is_string()
        && f.body["settings"]["cost_format"] == "focus"));
    assert!(has(&|f| f.kind == RECORD_KIND && f.body["settings"]["max_age"].is_u64()));
    assert!(has(&|f| f.kind == RECORD_KIND && f.body["counterfactual"].is_null()));
    assert!(has(
        &|f| f.kind == SIMULATION_KIND && f.body["simulated_signals"].as_object().is_some_and(|m| !m.is_empty())
    ));
    assert!(has(&|f| f.kind == ERROR_KIND && f.body["settings"].is_null() && f.body["requested_by"]["via"] == "http"));
    assert!(has(&|f| f.kind == ERROR_KIND && f.body["settings"].is_object() && f.body.get("requested_by").is_none()));
}

#[test]
fn decisions_written_before_the_types_replay_identically() {
    let decisions: Vec<Fixture> = fixtures().into_iter().filter(|f| f.kind == RECORD_KIND).collect();
    assert!(decisions.len() >= 10);
    for f in decisions {
        let body: DecisionRecordBody = gate::decode(&f.body).expect("decision body");
        let id = format!("{}-{}", f.seq, &f.hash[..12]);
        let r = gate::replay(id.clone(), &body).unwrap_or_else(|e| panic!("{} #{}: {e:?}", f.store, f.seq));
        assert!(r.identical, "{} #{}: {:?}", f.store, f.seq, r.differing_fields);
        assert_eq!(
            (r.record, r.recorded_action, r.replayed_action),
            (id, body.verdict.action, body.verdict.action.unwrap())
        );
    }
}

#[test]
fn a_record_that_lacks_what_replay_needs_says_what() {
    let mut body: DecisionRecordBody =
        gate::decode(&fixtures().into_iter().find(|f| f.kind == RECORD_KIND).unwrap().body).unwrap();
    let mut tampered = body.clone();
    if let Some(c) = tampered.input_content.as_mut() {
        c.cost.push(' ');
    }
    let e = gate::replay("1-x".into(), &tampered).unwrap_err();
    assert_eq!(e, [gate::ReplayError::Record(gate::RecordError::DigestMismatch { input: "cost" })]);
    assert_eq!(e[0].to_string(), "recorded content of cost does not match its recorded sha256");
    body.run.settings = None;
    body.input_content = None;
    let e: Vec<String> = gate::replay("1-x".into(), &body).unwrap_err().iter().map(|e| e.to_string()).collect();
    assert_eq!(e, ["record has no input_content.policies", "record has no settings"]);
}

#[test]
fn a_simulation_is_a_decision_with_the_replaced_signals() {
    let f = fixtures()
        .into_iter()
        .find(|f| f.kind == SIMULATION_KIND && f.body["simulated_signals"] != serde_json::json!({}))
        .unwrap();
    let s: SimulationRecordBody = gate::decode(&f.body).unwrap();
    assert_eq!(s.decision.verdict.action.map(|a| a.as_str()), f.body["action"].as_str());
    assert_eq!(s.simulated_signals.get("error_budget_pct"), Some(&serde_json::json!(5.0)));
}

/// The old-chain fixture (a store written by release 4b21396, in guardrail-governor's tests):
/// its deploy records decode, re-encode to their canonical bytes, and replay as they did.
#[test]
fn the_old_chain_fixtures_deploy_records_reencode_and_replay() {
    let fixture =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../guardrail-governor/tests/fixtures/chain-4b21396/guardrail.db");
    // A copy: opening a store may write to it.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("guardrail.db");
    std::fs::copy(fixture, &db).unwrap();
    let mut store = guardrail_store::open_store(&db.display().to_string()).unwrap();
    let records = store.all().unwrap();
    let mut seen = (0, 0);
    for r in records.iter().filter(|r| r.kind.starts_with("deploy_")) {
        let draft = RecordDraft { kind: r.kind.clone(), recorded_at: r.recorded_at.clone(), body: r.body.clone() };
        let again = RecordDraft { body: reencoded(&r.kind, &r.body), ..draft.clone() };
        assert!(
            canonical_bytes(r.seq, &r.prev_hash, &draft) == canonical_bytes(r.seq, &r.prev_hash, &again),
            "#{}",
            r.seq
        );
        if r.kind == RECORD_KIND {
            let body: DecisionRecordBody = gate::decode(&r.body).unwrap();
            let replayed = gate::replay(r.id(), &body).unwrap();
            // As the CLI's golden output of this chain has it (guardrail-governor's
            // golden-sqlite.txt, `replay 2`): record 2 DIFFERS in cost, signals.
            let expected: &[&str] = if r.seq == 2 { &["cost", "signals"] } else { &[] };
            assert_eq!(replayed.differing_fields, expected, "#{}", r.seq);
            seen.0 += 1;
        } else {
            seen.1 += 1;
        }
    }
    assert_eq!(seen, (4, 1), "four decisions and one error");
}

/// What `GET /api/audit` showed of a deploy record before the types (the body without
/// `input_content`, each input's path cut to its file name) is the typed body's `shown()`.
#[test]
fn the_audit_view_of_a_deploy_record_is_its_shown_body() {
    fn by_keys(body: &Value) -> Value {
        let mut body = body.clone();
        let obj = body.as_object_mut().unwrap();
        obj.remove("input_content");
        let name = |p: &mut Value| {
            if let Some(s) = p.as_str() {
                *p = Value::from(std::path::Path::new(s).file_name().unwrap().to_string_lossy().into_owned());
            }
        };
        match obj.get_mut("inputs") {
            Some(Value::Object(ins)) => ins.values_mut().for_each(|d| name(&mut d["path"])),
            Some(Value::Array(ins)) => ins.iter_mut().for_each(|d| name(&mut d["path"])),
            _ => {}
        }
        body
    }
    for f in fixtures() {
        let shown = match f.kind.as_str() {
            RECORD_KIND => gate::encode(&gate::decode::<DecisionRecordBody>(&f.body).unwrap().shown()),
            SIMULATION_KIND => gate::encode(&gate::decode::<SimulationRecordBody>(&f.body).unwrap().shown()),
            _ => gate::encode(&gate::decode::<ErrorRecordBody>(&f.body).unwrap().shown()),
        };
        assert_eq!(shown, by_keys(&f.body), "{} #{}", f.store, f.seq);
    }
}

/// The body types' schemas name exactly the fields the records hold.
#[test]
fn the_body_schemas_name_the_recorded_fields() {
    let all = fixtures();
    let keys = |kind: &str, with_requester: bool| -> Vec<String> {
        let f = all.iter().find(|f| f.kind == kind && f.body.get("requested_by").is_some() == with_requester).unwrap();
        f.body.as_object().unwrap().keys().cloned().collect()
    };
    let props = |s: schemars::Schema| -> Vec<String> {
        s.as_value()["properties"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(props(schemars::schema_for!(DecisionRecordBody)), keys(RECORD_KIND, true));
    assert_eq!(props(schemars::schema_for!(ErrorRecordBody)), keys(ERROR_KIND, true));
    let sim = schemars::schema_for!(SimulationRecordBody);
    assert_eq!(props(sim), keys(SIMULATION_KIND, true));
}

/// `SettingsBody` serialises as `Settings` does, for every optional setting, and reads back as
/// the same settings.
#[test]
fn recorded_settings_are_the_settings_serialisation_and_read_back() {
    use guardrail_gate::gate::SettingsBody;
    use guardrail_gate::inputs::{InputArgs, settings};
    let clock = jiff::Timestamp::UNIX_EPOCH;
    let all = InputArgs {
        now: Some("2026-02-20T12:00:00Z".into()),
        max_age: Some("7d".into()),
        cost_warn_pct: Some("12.5".into()),
        cost_block_pct: Some("31".into()),
        cost_baseline_days: Some("14".into()),
        cost_format: Some("aws-ce".into()),
        cost_tag: Some("app=checkout-api".into()),
        cost_service: Some("Amazon S3".into()),
        service: Some("checkout-api".into()),
        slo_name: Some("availability".into()),
        ..InputArgs::default()
    };
    for args in [InputArgs::default(), all] {
        let s = settings(&args, &|_| None, clock).expect("valid settings");
        let body = SettingsBody::of(&s);
        assert_eq!(gate::encode(&body), gate::encode(&s));
        assert_eq!(body.to_settings().expect("reads back"), s);
    }
}
