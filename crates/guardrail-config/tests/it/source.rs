//! Reading files: every refusal names the file.

use std::io::Write;

use guardrail_config::source::{MAX_BYTES, sha256_hex};
use guardrail_config::{Source, load_metrics, load_policies, read_source};

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(bytes).expect("write");
    path
}

#[test]
fn reads_and_hashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(&dir, "p.yaml", b"policies: []\n");
    let src = read_source(&path).expect("reads");
    assert_eq!(src.text, "policies: []\n");
    assert_eq!(src.sha256, sha256_hex(b"policies: []\n"));
    assert_eq!(src.sha256.len(), 64);
    assert_eq!(src, Source::from_text(&path, "policies: []\n"));
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.yaml");
    let e = read_source(&path).expect_err("missing");
    assert_eq!(e.file, path);
    assert_eq!(e.to_string(), format!("{}: file not found", path.display()));
}

#[test]
fn directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = read_source(dir.path()).expect_err("dir");
    assert!(e.message.contains("directory"), "{e}");
}

#[test]
fn empty_and_whitespace_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in [("a.json", &b""[..]), ("b.yaml", &b"  \n\t\n"[..])] {
        let path = write(&dir, name, bytes);
        let e = read_source(&path).expect_err("empty");
        assert_eq!(e.message, "is empty");
        assert_eq!(e.file, path);
    }
}

#[test]
fn not_utf8() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(&dir, "m.json", b"{\n  \"service\": \"caf\xe9\"\n}\n");
    let e = read_source(&path).expect_err("latin-1");
    assert_eq!((e.line, e.col), (Some(2), Some(18)));
    assert!(e.message.contains("UTF-8"), "{e}");
}

#[test]
fn too_large() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.json");
    let f = std::fs::File::create(&path).expect("create");
    f.set_len(MAX_BYTES + 1).expect("sparse file");
    let e = read_source(&path).expect_err("too large");
    assert!(e.message.contains("too large"), "{e}");
}

#[test]
fn byte_order_mark_is_skipped_by_the_parsers() {
    let src = Source::from_text(
        "m.json",
        "\u{feff}{\"total_requests\": 5, \"failed_requests\": 0, \"latency_percentiles\": {\"p95_ms\": 1}, \"hourly_burn_rate\": [1]}",
    );
    assert!(load_metrics(&src).is_ok());
    let src = Source::from_text("p.yaml", "\u{feff}policies: []\ndefault_action: BLOCK\n");
    let l = load_policies(&src);
    assert!(l.findings.is_empty(), "{:#?}", l.findings);
}
