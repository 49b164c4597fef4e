//! The audit trail through the CLI: list, show, verify, replay, JSONL mirror, tampering and
//! many concurrent gate processes.

use crate::common;
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

/// A policy file from 64 KiB is kept once by the SQLite store, named by each record, and read
/// back by `replay`; a kept text that was altered fails the replay with the input named.
#[test]
fn a_large_policy_file_is_kept_apart_and_replayed() {
    let s = Scratch::new();
    let seed = std::fs::read_to_string(s.path("config/policies.yaml")).unwrap();
    s.write("config/policies.yaml", &format!("{seed}\n# {}\n", "x".repeat(70_000)));
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let (code, v) = gate_json(&s, &[]);
            assert_eq!(code, 1);
            v["audit"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    let (code, out, _) = audit(&s, &["show", &ids[1]]);
    assert_eq!(code, 0);
    let rec: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rec["body"]["input_content"]["kept_apart"], serde_json::json!(["policies"]));
    assert!(rec["body"]["input_content"].get("policies").is_none(), "{out}");
    let kept: i64 = sqlite(&s).query_row("SELECT count(*) FROM audit_inputs", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, 1);
    let (code, out, _) = audit(&s, &["verify"]);
    assert_eq!(code, 0, "{out}");
    s.write("config/policies.yaml", "{ bad");
    for id in &ids {
        let mut c = guardrail();
        c.args(["replay", id, "--format", "json", "--store"]).arg(s.store());
        let (code, out, err) = run(c);
        assert_eq!(code, 0, "{out}{err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["identical"], true);
    }
    sqlite(&s).execute("UPDATE audit_inputs SET text = replace(text, 'P005', 'P00X')", []).unwrap();
    let mut c = guardrail();
    c.args(["replay", &ids[0], "--store"]).arg(s.store());
    let (code, out, err) = run(c);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("policies"), "{err}");
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

// Signed checkpoints: `audit keygen`, `audit checkpoint`, `audit verify --checkpoint`, and the
// checkpoint `gate --format github` publishes.

/// `audit keygen SCRATCH/ck --name example.com/test-audit` → (PREFIX.key, PREFIX.pub).
fn keygen(s: &Scratch) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut c = guardrail();
    c.args(["audit", "keygen"]).arg(s.path("ck")).args(["--name", "example.com/test-audit"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}{err}");
    (s.path("ck.key"), s.path("ck.pub"))
}

/// `audit checkpoint --key KEY --out SCRATCH/NAME`.
fn sign_checkpoint(s: &Scratch, key: &std::path::Path, name: &str) -> std::path::PathBuf {
    let out = s.path(name);
    let mut c = guardrail();
    c.args(["audit", "checkpoint", "--key"]).arg(key).arg("--out").arg(&out).arg("--store").arg(s.store());
    let (code, o, e) = run(c);
    assert_eq!(code, 0, "{o}{e}");
    out
}

/// `audit verify --checkpoint CP --public-key PUB`.
fn verify_checkpoint(s: &Scratch, cp: &std::path::Path, public: &std::path::Path) -> (i32, String, String) {
    let mut c = guardrail();
    c.args(["audit", "verify", "--checkpoint"]).arg(cp).arg("--public-key").arg(public).arg("--store").arg(s.store());
    run(c)
}

/// Three gate records, a key pair and a checkpoint of the three.
fn signed_three(s: &Scratch) -> (std::path::PathBuf, std::path::PathBuf) {
    three_records(s);
    let (key, public) = keygen(s);
    let cp = sign_checkpoint(s, &key, "cp-3.txt");
    (cp, public)
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites() {
    let s = Scratch::new();
    let (key, public) = keygen(&s);
    let k = std::fs::read_to_string(&key).unwrap();
    let p = std::fs::read_to_string(&public).unwrap();
    assert!(k.starts_with("PRIVATE+KEY+example.com/test-audit+"), "{k}");
    // The sumdb/note verifier key: name+8 hex digits+base64(0x01 || 32-byte key).
    let parts: Vec<&str> = p.trim().splitn(3, '+').collect();
    assert_eq!(parts[0], "example.com/test-audit");
    assert_eq!(parts[1].len(), 8, "{p}");
    assert!(parts[2].starts_with('A') && parts[2].len() == 44, "{p}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let mut c = guardrail();
    c.args(["audit", "keygen"]).arg(s.path("ck"));
    let (code, _, err) = run(c);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), k, "the key was not overwritten");
}

#[test]
fn checkpoint_holds_while_the_chain_only_grows() {
    let s = Scratch::new();
    let (cp, public) = signed_three(&s);
    let note = std::fs::read_to_string(&cp).unwrap();
    let lines: Vec<&str> = note.lines().collect();
    assert_eq!(lines[0], "example.com/test-audit");
    assert_eq!(lines[1], "3");
    assert_eq!(lines[3], "");
    assert!(lines[4].starts_with("\u{2014} example.com/test-audit "), "{note}");
    let (code, out, err) = verify_checkpoint(&s, &cp, &public);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("still holds the signed records (0 appended since)"), "{out}");
    three_records(&s);
    let (code, out, err) = verify_checkpoint(&s, &cp, &public);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(3 appended since)"), "{out}");
    // JSON carries the same verdict.
    let mut c = guardrail();
    c.args(["audit", "verify", "--format", "json", "--checkpoint"]).arg(&cp).arg("--public-key").arg(&public);
    c.arg("--store").arg(s.store());
    let (code, out, _) = run(c);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["checkpoint"]["holds"], true);
    assert_eq!(v["checkpoint"]["size"], 3);
    assert_eq!(
        (v["ok"].clone(), v["records"].clone(), v["breaks"].clone()),
        (true.into(), 6.into(), serde_json::json!([]))
    );
    // A checkpoint that cannot be read: `ok` false and the checkpoint's problem, no chain fields.
    std::fs::write(s.path("garbage.txt"), "not a checkpoint\n").unwrap();
    let mut c = guardrail();
    c.args(["audit", "verify", "--format", "json", "--checkpoint"]).arg(s.path("garbage.txt"));
    c.arg("--public-key").arg(&public).arg("--store").arg(s.store());
    let (code, out, _) = run(c);
    assert_eq!(code, 3, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["checkpoint", "ok"], "{v}");
    assert_eq!((v["ok"].clone(), v["checkpoint"]["holds"].clone()), (false.into(), false.into()));
    assert!(v["checkpoint"]["problem"].as_str().unwrap().contains("garbage.txt"), "{v}");
}

#[test]
fn checkpoint_catches_a_record_edited_in_place() {
    let s = Scratch::new();
    let (cp, public) = signed_three(&s);
    sqlite(&s)
        .execute("UPDATE audit_records SET body = replace(body, '\"DELAY\"', '\"ALLOW\"') WHERE seq = 2", [])
        .unwrap();
    let (code, out, _) = verify_checkpoint(&s, &cp, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT HELD: record 2 (within the 3 signed record(s)) fails verification"), "{out}");
}

#[test]
fn checkpoint_catches_removed_records_even_with_the_anchor_moved() {
    let s = Scratch::new();
    let (cp, public) = signed_three(&s);
    // Remove the last signed record and move the head anchor back, as someone with write
    // access would: `audit verify` alone finds nothing.
    let db = sqlite(&s);
    db.execute_batch(
        "DELETE FROM audit_records WHERE seq = 3;
         UPDATE chain_head SET seq = 2, hash = (SELECT hash FROM audit_records WHERE seq = 2);",
    )
    .unwrap();
    drop(db);
    let (code, out, _) = audit(&s, &["verify"]);
    assert_eq!(code, 0, "the truncation is invisible to the chain alone: {out}");
    let (code, out, _) = verify_checkpoint(&s, &cp, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("has no record 3 (it holds 2): records were removed"), "{out}");
    // A record removed from the middle breaks the chain within the signed records.
    let s = Scratch::new();
    let (cp, public) = signed_three(&s);
    sqlite(&s).execute("DELETE FROM audit_records WHERE seq = 2", []).unwrap();
    let (code, out, _) = verify_checkpoint(&s, &cp, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT HELD"), "{out}");
}

#[test]
fn checkpoint_catches_reordered_records() {
    let s = Scratch::new();
    let (cp, public) = signed_three(&s);
    sqlite(&s)
        .execute_batch(
            "CREATE TEMP TABLE t AS SELECT * FROM audit_records;
             UPDATE audit_records SET hash = 'placeholder' WHERE seq = 3;
             UPDATE audit_records SET body = (SELECT body FROM t WHERE seq = 3), hash = (SELECT hash FROM t WHERE seq = 3) WHERE seq = 1;
             UPDATE audit_records SET body = (SELECT body FROM t WHERE seq = 1), hash = (SELECT hash FROM t WHERE seq = 1) WHERE seq = 3;",
        )
        .unwrap();
    let (code, out, _) = verify_checkpoint(&s, &cp, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT HELD"), "{out}");
}

/// Rewrites the chain as an attacker with write access would: record 2's action changed and
/// every hash and the anchor recomputed, so the chain verifies on its own.
fn rebuild_with_recomputed_hashes(s: &Scratch) {
    use guardrail_core::audit::{ChainedRecord, RecordDraft, seal};
    let db = sqlite(s);
    let mut rows = db.prepare("SELECT kind, recorded_at, body FROM audit_records ORDER BY seq").unwrap();
    let drafts: Vec<RecordDraft> = rows
        .query_map([], |r| {
            let body: String = r.get(2)?;
            Ok(RecordDraft { kind: r.get(0)?, recorded_at: r.get(1)?, body: serde_json::from_str(&body).unwrap() })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(rows);
    let mut rebuilt: Vec<ChainedRecord> = Vec::new();
    for (i, mut d) in drafts.into_iter().enumerate() {
        if i == 1 {
            d.body["action"] = "ALLOW".into();
        }
        rebuilt.push(seal(rebuilt.last(), d));
    }
    db.execute("DELETE FROM audit_records", []).unwrap();
    for r in &rebuilt {
        db.execute(
            "INSERT INTO audit_records (seq, kind, recorded_at, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                r.seq,
                r.kind,
                r.recorded_at,
                serde_json::to_string(&r.body).unwrap(),
                r.prev_hash,
                r.hash
            ],
        )
        .unwrap();
    }
    let last = rebuilt.last().unwrap();
    db.execute("UPDATE chain_head SET seq = ?1, hash = ?2", rusqlite::params![last.seq, last.hash]).unwrap();
}

#[test]
fn checkpoint_catches_a_chain_rebuilt_with_recomputed_hashes() {
    let s = Scratch::new();
    let (cp, public) = signed_three(&s);
    rebuild_with_recomputed_hashes(&s);
    let (code, out, _) = audit(&s, &["verify"]);
    assert_eq!(code, 0, "the rewrite is invisible to the chain alone: {out}");
    let (code, out, _) = verify_checkpoint(&s, &cp, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("audit chain intact"), "{out}");
    assert!(out.contains("NOT HELD: record 3 has hash"), "{out}");
    assert!(out.contains("the first 3 record(s) are not the ones signed"), "{out}");
}

#[test]
fn a_checkpoint_that_does_not_verify_fails_and_an_unreadable_one_cannot_decide() {
    let s = Scratch::new();
    let (cp, public) = signed_three(&s);
    // Altered count: the signature no longer covers the text.
    let note = std::fs::read_to_string(&cp).unwrap();
    s.write("forged.txt", &note.replacen("\n3\n", "\n2\n", 1));
    let (code, out, _) = verify_checkpoint(&s, &s.path("forged.txt"), &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not verify"), "{out}");
    // Signed by another key (same name: an attacker's own key pair).
    let mut c = guardrail();
    c.args(["audit", "keygen"]).arg(s.path("other")).args(["--name", "example.com/test-audit"]);
    assert_eq!(run(c).0, 0);
    let (code, out, _) = verify_checkpoint(&s, &cp, &s.path("other.pub"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("signature does not verify"), "{out}");
    // Missing or unparseable files: exit 3, naming the file.
    let (code, _, err) = verify_checkpoint(&s, &s.path("missing.txt"), &public);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("missing.txt"), "{err}");
    s.write("garbage.txt", "not a note\n");
    let (code, _, err) = verify_checkpoint(&s, &s.path("garbage.txt"), &public);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("malformed signed note"), "{err}");
    let (code, _, err) = verify_checkpoint(&s, &cp, &s.path("ck.key"));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("this is a private key"), "{err}");
    // --checkpoint without --public-key is a usage error.
    let mut c = guardrail();
    c.args(["audit", "verify", "--checkpoint"]).arg(&cp).arg("--store").arg(s.store());
    assert_eq!(run(c).0, 64);
}

#[test]
fn checkpoint_refuses_to_sign_a_broken_chain() {
    let s = Scratch::new();
    three_records(&s);
    let (key, _) = keygen(&s);
    sqlite(&s).execute("DELETE FROM audit_records WHERE seq = 2", []).unwrap();
    let mut c = guardrail();
    c.args(["audit", "checkpoint", "--key"]).arg(&key).arg("--store").arg(s.store());
    let (code, out, err) = run(c);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "nothing signed: {out}");
    assert!(err.contains("refusing to sign"), "{err}");
}

#[test]
fn gate_github_publishes_the_checkpoint_in_the_job_summary() {
    let s = Scratch::new();
    three_records(&s);
    let (key, public) = keygen(&s);
    let summary = s.path("summary.md");
    let mut c = s.gate(&["--format", "github"]);
    c.env("GITHUB_STEP_SUMMARY", &summary).env("GUARDRAIL_CHECKPOINT_KEY", &key);
    let (code, out, err) = run(c);
    assert_eq!(code, 1, "the decision's exit code is kept: {out}{err}");
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.contains("### Audit checkpoint"), "{text}");
    // The fenced block is the signed note, byte for byte: save it and verify the store.
    let block = text.split("```text\n").nth(1).and_then(|b| b.split("```").next()).unwrap();
    assert!(block.starts_with("example.com/test-audit\n4\n"), "{block}");
    s.write("from-summary.txt", block);
    let (code, out, err) = verify_checkpoint(&s, &s.path("from-summary.txt"), &public);
    assert_eq!(code, 0, "{out}{err}");
    // Without --format github the key is not used, and says so.
    let mut c = s.gate(&["--format", "json", "--checkpoint-key"]);
    c.arg(&key);
    let (code, _, err) = run(c);
    assert_eq!(code, 1);
    assert!(err.contains("only used with --format github"), "{err}");
    // A key that cannot be read: the decision is recorded, but the run cannot vouch for it.
    let mut c = s.gate(&["--format", "github", "--checkpoint-key"]);
    c.arg(s.path("nope.key")).env("GITHUB_STEP_SUMMARY", &summary);
    let (code, _, err) = run(c);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("nope.key") && err.contains("the decision is recorded"), "{err}");
}

#[test]
fn postgres_checkpoint_through_the_cli() {
    let base =
        std::env::var("GUARDRAIL_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("gr_cp_{}_{}", std::process::id(), jiff::Timestamp::now().as_nanosecond() % 1_000_000_000);
    let mut client = postgres::Client::connect(&base, postgres::NoTls)
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required for this test (scripts/test starts it): {e}"));
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let s = Scratch::new();
    for _ in 0..3 {
        let mut c = guardrail();
        c.arg("gate").arg("--root").arg(s.root());
        c.args(["--store", &url, "--format", "json", "--now", "2026-02-21T00:00:00Z"]);
        let (code, _, err) = run(c);
        assert_eq!(code, 1, "{err}");
    }
    let (key, public) = keygen(&s);
    let mut c = guardrail();
    c.args(["audit", "checkpoint", "--key"]).arg(&key).args(["--store", &url]);
    let (code, note, err) = run(c);
    assert_eq!(code, 0, "{err}");
    s.write("pg-cp.txt", &note);
    let verify = |s: &Scratch| {
        let mut c = guardrail();
        c.args(["audit", "verify", "--checkpoint"]).arg(s.path("pg-cp.txt")).arg("--public-key").arg(&public);
        c.args(["--store", &url]);
        run(c)
    };
    let (code, out, err) = verify(&s);
    assert_eq!(code, 0, "{out}{err}");
    client
        .batch_execute(&format!(
            "DELETE FROM {schema}.audit_records WHERE seq = 3;
             UPDATE {schema}.chain_head SET seq = 2, hash = (SELECT hash FROM {schema}.audit_records WHERE seq = 2);"
        ))
        .unwrap();
    let (code, out, _) = verify(&s);
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("has no record 3"), "{out}");
}
