//! The audit trail through the CLI: list, show, verify, replay, JSONL mirror, tampering and
//! many concurrent gate processes.

mod common;
use common::*;

fn audit(s: &Scratch, args: &[&str]) -> (i32, String, String) {
    let mut c = guardrail();
    c.arg("audit").args(args).arg("--store").arg(s.store());
    run(c)
}

#[test]
fn every_gate_run_is_recorded_and_replayable() {
    let s = Scratch::new();
    let (code, v) = gate_json(&s, &[]);
    assert_eq!(code, 1);
    let id = v["audit"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["audit"]["seq"], 1);
    let (code, out, _) = audit(&s, &["show", &id]);
    assert_eq!(code, 0);
    let rec: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rec["kind"], "deploy_decision");
    assert_eq!(rec["body"]["action"], "DELAY");
    assert_eq!(rec["body"]["inputs"]["metrics"]["sha256"], v["inputs"]["metrics"]["sha256"]);
    assert!(rec["body"]["input_content"]["policies"].as_str().unwrap().contains("P005"));
    let (code, out, _) = audit(&s, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 1 record"), "{out}");

    // Replay from the recorded inputs, even after the files on disk change.
    s.write("data/metrics.json", "{ bad");
    let mut c = guardrail();
    c.args(["replay", &id, "--format", "json", "--store"]).arg(s.store());
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["identical"], true);
    assert_eq!(r["replayed_action"], "DELAY");
}

#[test]
fn jsonl_mirror_uses_the_seed_layout() {
    let s = Scratch::new();
    let dir = s.path("data/audit");
    let mut c = s.gate(&["--format", "json", "--audit-jsonl"]);
    c.arg(&dir);
    let (code, _, err) = run(c);
    assert_eq!(code, 1, "{err}");
    let file = dir.join("decisions-2026-02-21.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["timestamp"], "2026-02-21T00:00:00Z");
    assert_eq!(line["action"], "DELAY");
    assert_eq!(line["policy_id"], "P005");
}

fn sqlite(s: &Scratch) -> rusqlite::Connection {
    rusqlite::Connection::open(s.path("audit.db")).unwrap()
}

fn three_records(s: &Scratch) {
    for _ in 0..3 {
        let (code, _) = gate_json(s, &[]);
        assert_eq!(code, 1);
    }
}

#[test]
fn verify_detects_an_edited_record() {
    let s = Scratch::new();
    three_records(&s);
    let db = sqlite(&s);
    db.execute("UPDATE audit_records SET body = replace(body, '\"DELAY\"', '\"ALLOW\"') WHERE seq = 2", []).unwrap();
    drop(db);
    let (code, out, _) = audit(&s, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record 2"), "{out}");
}

#[test]
fn verify_detects_a_deleted_record() {
    let s = Scratch::new();
    three_records(&s);
    sqlite(&s).execute("DELETE FROM audit_records WHERE seq = 2", []).unwrap();
    let (code, out, _) = audit(&s, &["verify"]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn verify_detects_reordered_records() {
    let s = Scratch::new();
    three_records(&s);
    let db = sqlite(&s);
    // Swap the contents of records 1 and 3, keeping their sequence numbers.
    db.execute_batch(
        "CREATE TEMP TABLE t AS SELECT * FROM audit_records;
         UPDATE audit_records SET recorded_at = (SELECT recorded_at FROM t WHERE seq = 3), body = (SELECT body FROM t WHERE seq = 3), prev_hash = (SELECT prev_hash FROM t WHERE seq = 3), hash = (SELECT hash FROM t WHERE seq = 3) || 'x' WHERE seq = 1;
         UPDATE audit_records SET recorded_at = (SELECT recorded_at FROM t WHERE seq = 1), body = (SELECT body FROM t WHERE seq = 1), prev_hash = (SELECT prev_hash FROM t WHERE seq = 1), hash = (SELECT hash FROM t WHERE seq = 1) WHERE seq = 3;
         UPDATE audit_records SET hash = substr(hash, 1, 64) WHERE seq = 1;",
    )
    .unwrap();
    drop(db);
    let (code, out, _) = audit(&s, &["verify"]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn many_gate_processes_keep_one_chain() {
    let s = Scratch::new();
    let procs = 12;
    let per = 4;
    let mut handles = Vec::new();
    for _ in 0..procs {
        let root = s.root().to_path_buf();
        let store = s.store();
        handles.push(std::thread::spawn(move || {
            for _ in 0..per {
                let mut c = guardrail();
                c.arg("gate").arg("--root").arg(&root).arg("--store").arg(&store).args([
                    "--format",
                    "json",
                    "--now",
                    "2026-02-21T00:00:00Z",
                ]);
                let (code, out, err) = run(c);
                assert_eq!(code, 1, "{out}{err}");
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let (code, out, _) = audit(&s, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("intact: {} record", procs * per)), "{out}");
    let (_, out, _) = audit(&s, &["list", "--limit", "1000", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut seqs: Vec<i64> = v.as_array().unwrap().iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=(procs * per) as i64).collect::<Vec<_>>());
}

#[test]
fn postgres_store_through_the_cli() {
    let base =
        std::env::var("GUARDRAIL_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    // An isolated schema per run, via libpq's `options` parameter.
    let schema = format!("gr_cli_{}_{}", std::process::id(), jiff::Timestamp::now().as_nanosecond() % 1_000_000_000);
    let mut client = postgres::Client::connect(&base, postgres::NoTls)
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required for this test (scripts/test starts it): {e}"));
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let s = Scratch::new();
    let mut handles = Vec::new();
    for _ in 0..6 {
        let root = s.root().to_path_buf();
        let url = url.clone();
        handles.push(std::thread::spawn(move || {
            for _ in 0..3 {
                let mut c = guardrail();
                c.arg("gate").arg("--root").arg(&root).args([
                    "--store",
                    &url,
                    "--format",
                    "json",
                    "--now",
                    "2026-02-21T00:00:00Z",
                ]);
                let (code, out, err) = run(c);
                assert_eq!(code, 1, "{out}{err}");
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let mut c = guardrail();
    c.args(["audit", "verify", "--store", &url]);
    let (code, out, err) = run(c);
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact: 18 record"), "{out}");
}
